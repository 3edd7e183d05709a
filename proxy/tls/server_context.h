#ifndef SLUICE_PROXY_TLS_SERVER_CONTEXT_H_
#define SLUICE_PROXY_TLS_SERVER_CONTEXT_H_

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proxy/tls/openssl_util.h"

namespace sluice {

class LeafCache;

// The proxy's server side of TLS, towards its own clients after CONNECT
// (docs/https.md): the settings every server SSL_CTX gets, and the
// "dispatch" context a connection is accepted with, which picks the minted
// leaf for the connection's host during the handshake.
//
// Which name a connection gets a certificate for: the CONNECT host, always.
// Routing and the SSRF checks were done on that host, so a certificate for
// any other name would let a client talk to one host while the proxy dials
// another. A client that sends SNI must send the CONNECT host (compared
// after NormalizeServerName: case and one trailing dot do not matter); a
// different SNI name fails the handshake with an unrecognized_name alert.
// A client that sends no SNI (an IP literal, some old clients) gets the
// CONNECT host's leaf.
//
// ALPN: only "http/1.1" is ever selected. A client that offers no ALPN, or
// offers ALPN without "http/1.1" (only "h2", say), completes the handshake
// with no protocol selected; it then speaks HTTP/1.1 or gives up on its
// side (RFC 9113 h2-only clients, such as gRPC, fail after the handshake;
// an HTTP/2 preface reaching the HTTP/1.1 parser is a malformed request).
//
// Server-side session resumption is off (no tickets, no session cache):
// every handshake is a full one with the current leaf, so a resumed
// session can never outlive a leaf or carry one host's session into
// another's tunnel.
//
// Thread-safety: the dispatch context may accept connections on any number
// of threads; minting happens inside the handshake of the connection that
// needs it (LeafCache). The TlsServerContext and its LeafCache must outlive
// every SSL made from ctx().
class TlsServerContext {
 public:
  // Why the dispatch callback refused a handshake.
  enum class Refusal {
    kNone,
    kNoConnectHost,  // SetConnectHost was not called for the connection
    kSniMismatch,    // the client's SNI names another host than CONNECT
    kMintFailed,     // the leaf cache could not produce a context
  };

  struct Stats {
    uint64_t accepted = 0;  // handshakes switched to a leaf context
    uint64_t sni_mismatch = 0;
    uint64_t no_connect_host = 0;
    uint64_t mint_failed = 0;
  };

  // Applies the server settings: TLS 1.2 to 1.3; no compression, no
  // renegotiation, the server's cipher order; TLS 1.2 ciphers only ECDHE
  // with AES-GCM or ChaCha20-Poly1305; no 0-RTT; no session resumption;
  // the ALPN callback above; SSL_MODE_RELEASE_BUFFERS.
  static absl::Status ApplyServerSettings(SSL_CTX* ctx);

  // A server context with the settings above, presenting `leaf` with
  // `key`, and `ca` as its chain.
  static absl::StatusOr<SslCtxPtr> NewLeafContext(X509* leaf, EVP_PKEY* key,
                                                  X509* ca);

  // The dispatch context over `cache` (which must outlive it).
  static absl::StatusOr<std::unique_ptr<TlsServerContext>> Create(
      LeafCache* cache);

  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;

  // The dispatch SSL_CTX: it holds no certificate; its servername callback
  // switches each connection to its host's leaf context (SSL_set_SSL_CTX).
  SSL_CTX* ctx() const { return ctx_.get(); }

  // A new SSL from ctx(), in accept state, for a client that CONNECTed to
  // `connect_host`; the caller attaches its BIO or socket.
  absl::StatusOr<SslPtr> NewConnection(std::string_view connect_host) const;

  // Records the CONNECT host of `ssl` (an SSL made from ctx() by someone
  // else, an Asio stream say), which the handshake needs. Uses its own
  // ex_data slot, never SSL app data. Call before the handshake.
  static absl::Status SetConnectHost(SSL* ssl, std::string_view connect_host);

  // Why the handshake of `ssl` was refused by the dispatch callback
  // (kNone when it was not, or has not run).
  static Refusal RefusalOf(const SSL* ssl);
  static std::string_view RefusalName(Refusal refusal);

  Stats stats() const;

 private:
  explicit TlsServerContext(LeafCache* cache);
  static int OnServerName(SSL* ssl, int* alert, void* arg);

  LeafCache* const cache_;
  SslCtxPtr ctx_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> sni_mismatch_{0};
  std::atomic<uint64_t> no_connect_host_{0};
  std::atomic<uint64_t> mint_failed_{0};
};

}  // namespace sluice

#endif  // SLUICE_PROXY_TLS_SERVER_CONTEXT_H_
