#ifndef SLUICE_PROXY_SERVER_TLS_ENDPOINTS_H_
#define SLUICE_PROXY_SERVER_TLS_ENDPOINTS_H_

#include <openssl/ssl.h>

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/time/clock.h"
#include "proxy/tls/cert_authority.h"
#include "proxy/tls/client_context.h"
#include "proxy/tls/leaf_cache.h"
#include "proxy/tls/server_context.h"

namespace sluice {

// The proxy's two ends of TLS as a session uses them (docs/https.md): which
// CONNECT hosts it intercepts and the context their client handshakes run
// on (minted leaves), and the context of its handshakes with https://
// origins. Built once at start by the app; either end may be absent.
//
// Thread-safety: every method may be called from any thread at once.
class TlsEndpoints {
 public:
  struct Options {
    // Interception: whether a CONNECT host is one to intercept (set only
    // when interception is on), the CA's files and the leaves' settings.
    std::function<bool(std::string_view host)> intercepts;
    std::string ca_cert;
    std::string ca_key;
    CertAuthority::Options authority;
    LeafCache::Options leaves;
    // Towards origins: whether to build that end at all (some route
    // originates TLS, or interception is on), its CA bundle and session
    // cache, and the hosts whose certificates go unverified.
    bool client = false;
    TlsClientContext::Options origins;
    std::vector<std::string> insecure_skip_verify;
  };

  // Loads the CA (errors name "intercept.ca" and the file) and builds the
  // contexts. `clock` dates minted leaves and verifications; it must
  // outlive this.
  static absl::StatusOr<std::unique_ptr<TlsEndpoints>> Create(
      Options options, const Clock* clock);

  // Whether CONNECTs to `host` are intercepted.
  bool Intercepts(std::string_view host) const;
  // The context intercepted clients' handshakes run on (with the CONNECT
  // host attached by PrepareServer); only when interception is on.
  boost::asio::ssl::context& server() { return *server_asio_; }
  // Attaches the CONNECT host to a server SSL before its handshake.
  static absl::Status PrepareServer(SSL* ssl, std::string_view connect_host);

  // Whether there is a client end (towards origins).
  bool has_client() const { return client_asio_ != nullptr; }
  boost::asio::ssl::context& client() { return *client_asio_; }
  // Prepares a client SSL to connect to host:port: SNI, verification of
  // the name, ALPN, a session to resume. A host in insecure_skip_verify is
  // not verified (and counted).
  absl::Status PrepareClient(SSL* ssl, std::string_view host, uint16_t port);

  struct Stats {
    LeafCache::Stats leaves;
    TlsServerContext::Stats server;
    TlsClientContext::Stats client;
    uint64_t unverified = 0;  // handshakes to insecure_skip_verify hosts
  };
  Stats stats() const;

 private:
  TlsEndpoints() = default;

  std::function<bool(std::string_view)> intercepts_;
  std::unique_ptr<CertAuthority> authority_;
  std::unique_ptr<LeafCache> leaves_;
  std::unique_ptr<TlsServerContext> server_;
  std::unique_ptr<boost::asio::ssl::context> server_asio_;
  std::unique_ptr<TlsClientContext> client_;
  std::unique_ptr<boost::asio::ssl::context> client_asio_;
  absl::flat_hash_set<std::string> insecure_;
  std::atomic<uint64_t> unverified_{0};
};

}  // namespace sluice

#endif  // SLUICE_PROXY_SERVER_TLS_ENDPOINTS_H_
