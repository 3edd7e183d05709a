#ifndef SLUICE_PROXY_TLS_CLIENT_CONTEXT_H_
#define SLUICE_PROXY_TLS_CLIENT_CONTEXT_H_

#include <openssl/ssl.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/time/clock.h"
#include "proxy/tls/openssl_util.h"

namespace sluice {

struct TlsClientOptions {
  // PEM file of the CAs to trust instead of the system store; empty: the
  // system store (SSL_CTX_set_default_verify_paths).
  std::string ca_file;
  // Sessions kept for resumption, one per "host:port", least recently
  // stored dropped first. 0 turns resumption off.
  size_t session_cache_capacity = 1000;
};

// The proxy's client side of TLS, towards origins: one SSL_CTX that
// verifies every origin (TLS 1.2 or 1.3, SSL_VERIFY_PEER against the
// system's trust store or a configured CA bundle), and a bounded cache of
// sessions for resumption, keyed by "host:port".
//
// Time: certificates are checked against clock->WallNow() (set on each
// connection by PrepareClient), not the system clock. Session lifetimes
// are OpenSSL's own (it dates sessions with the system clock).
// Thread-safety: PrepareClient, stats() and the session callback may run
// on any number of threads at once. One SSL is used by one thread at a
// time, as OpenSSL requires. The context and the clock must outlive every
// SSL made from ctx().
class TlsClientContext {
 public:
  using Options = TlsClientOptions;

  struct Stats {
    uint64_t handshakes = 0;  // completed client handshakes
    uint64_t resumed = 0;     // of which resumed a cached session
    uint64_t sessions_offered = 0;
    uint64_t sessions_stored = 0;
    uint64_t session_evictions = 0;
    size_t cached_sessions = 0;
  };

  static absl::StatusOr<std::unique_ptr<TlsClientContext>> Create(
      const Clock* clock, Options options = {});

  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  SSL_CTX* ctx() const { return ctx_.get(); }

  // Prepares `ssl` (made from ctx()) to connect to `host`:`port`: SNI
  // (not for an IP literal, RFC 6066), verification of the certificate
  // against `host` (SSL_set1_host; X509_VERIFY_PARAM_set1_ip_asc for an IP
  // literal, brackets allowed around IPv6), verification time from the
  // clock, ALPN "http/1.1", connect state, and the session last stored for
  // "host:port", if any. InvalidArgument for a host that is neither a DNS
  // name nor an IP literal (NormalizeServerName).
  absl::Status PrepareClient(SSL* ssl, std::string_view host, uint16_t port);

  Stats stats() const;

 private:
  TlsClientContext(const Clock* clock, Options options);
  static int OnNewSession(SSL* ssl, SSL_SESSION* session);
  void Store(const std::string& key, SSL_SESSION* session);

  const Clock* const clock_;
  const Options options_;
  SslCtxPtr ctx_;

  struct Cached {
    std::string key;
    std::shared_ptr<SSL_SESSION> session;
  };
  using List = std::list<Cached>;
  mutable std::mutex mu_;
  List lru_;  // most recently stored first
  absl::flat_hash_map<std::string, List::iterator> index_;
  uint64_t sessions_stored_ = 0;
  uint64_t session_evictions_ = 0;
  std::atomic<uint64_t> sessions_offered_{0};
};

// A short name for an X509 verification result (SSL_get_verify_result):
//   "ok"             X509_V_OK
//   "expired"        the certificate (or one in its chain) has expired
//   "not_yet_valid"  not valid yet
//   "unknown_issuer" no trusted chain: issuer not found locally, a
//                    self-signed certificate, an untrusted root
//   "wrong_host"     the certificate is for another name or address
//   "revoked"        revoked
//   "other"          anything else
// Pure and thread-safe.
std::string_view VerifyResultName(long verify_result);

}  // namespace sluice

#endif  // SLUICE_PROXY_TLS_CLIENT_CONTEXT_H_
