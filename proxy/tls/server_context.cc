#include "proxy/tls/server_context.h"

#include <openssl/err.h>
#include <openssl/tls1.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "proxy/tls/leaf_cache.h"
#include "proxy/tls/server_name.h"
#include "proxy/tls/ssl_ex_data.h"

namespace sluice {
namespace {

// TLS 1.2: forward secrecy (ECDHE) and AEAD only. TLS 1.3's suites are
// all AEAD with forward secrecy already.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr char kTls13Ciphers[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
    "TLS_CHACHA20_POLY1305_SHA256";

// ALPN wire format: one length-prefixed protocol name.
constexpr unsigned char kAlpnHttp11[] = {8,   'h', 't', 't', 'p',
                                         '/', '1', '.', '1'};

// Per connection: the CONNECT host (normalised) and why the handshake was
// refused, if it was.
struct ConnectionInfo {
  std::string connect_host;
  TlsServerContext::Refusal refusal = TlsServerContext::Refusal::kNone;
};
using ConnectionData = SslExData<ConnectionInfo>;

// Selects "http/1.1" when the client offers it; otherwise no protocol
// (SSL_TLSEXT_ERR_NOACK: the handshake goes on without ALPN).
int SelectHttp11(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                 const unsigned char* in, unsigned int inlen, void* /*arg*/) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpnHttp11, sizeof(kAlpnHttp11),
                            in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

absl::Status SslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", DrainOpenSslErrors()));
}

}  // namespace

absl::Status TlsServerContext::ApplyServerSettings(SSL_CTX* ctx) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return SslError("TLS versions");
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_TICKET);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, kTls13Ciphers) != 1) {
    return SslError("cipher list");
  }
  if (SSL_CTX_set_max_early_data(ctx, 0) != 1 ||
      SSL_CTX_set_recv_max_early_data(ctx, 0) != 1) {
    return SslError("early data");
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_set_num_tickets(ctx, 0) != 1) return SslError("tickets");
  SSL_CTX_set_alpn_select_cb(ctx, SelectHttp11, nullptr);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return absl::OkStatus();
}

absl::StatusOr<SslCtxPtr> TlsServerContext::NewLeafContext(X509* leaf,
                                                           EVP_PKEY* key,
                                                           X509* ca) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return SslError("SSL_CTX_new");
  if (absl::Status s = ApplyServerSettings(ctx.get()); !s.ok()) return s;
  if (SSL_CTX_use_certificate(ctx.get(), leaf) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), key) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1 ||
      SSL_CTX_add1_chain_cert(ctx.get(), ca) != 1) {
    return SslError("leaf certificate");
  }
  return ctx;
}

TlsServerContext::TlsServerContext(LeafCache* cache) : cache_(cache) {}

absl::StatusOr<std::unique_ptr<TlsServerContext>> TlsServerContext::Create(
    LeafCache* cache) {
  std::unique_ptr<TlsServerContext> server(new TlsServerContext(cache));
  server->ctx_.reset(SSL_CTX_new(TLS_server_method()));
  if (!server->ctx_) return SslError("SSL_CTX_new");
  if (absl::Status s = ApplyServerSettings(server->ctx_.get()); !s.ok()) {
    return s;
  }
  SSL_CTX_set_tlsext_servername_callback(server->ctx_.get(), &OnServerName);
  SSL_CTX_set_tlsext_servername_arg(server->ctx_.get(), server.get());
  return server;
}

// Runs during ClientHello processing, for every ClientHello (with or
// without SNI), after version negotiation and before the certificate is
// chosen: the connection switches to the leaf context here.
int TlsServerContext::OnServerName(SSL* ssl, int* alert, void* arg) {
  auto* self = static_cast<TlsServerContext*>(arg);
  ConnectionInfo* info = ConnectionData::Get(ssl);
  if (info == nullptr || info->connect_host.empty()) {
    // Recorded for RefusalOf (best effort: the slot may fail to allocate).
    ConnectionData::Set(ssl,
                        ConnectionInfo{.refusal = Refusal::kNoConnectHost});
    self->no_connect_host_.fetch_add(1, std::memory_order_relaxed);
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) {
    absl::StatusOr<ServerName> sni_name = NormalizeServerName(sni);
    if (!sni_name.ok() || sni_name->text != info->connect_host) {
      info->refusal = Refusal::kSniMismatch;
      self->sni_mismatch_.fetch_add(1, std::memory_order_relaxed);
      *alert = SSL_AD_UNRECOGNIZED_NAME;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
  }
  absl::StatusOr<std::shared_ptr<SSL_CTX>> leaf_ctx =
      self->cache_->Get(info->connect_host);
  if (!leaf_ctx.ok() ||
      SSL_set_SSL_CTX(ssl, leaf_ctx->get()) != leaf_ctx->get()) {
    ERR_clear_error();
    info->refusal = Refusal::kMintFailed;
    self->mint_failed_.fetch_add(1, std::memory_order_relaxed);
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  self->accepted_.fetch_add(1, std::memory_order_relaxed);
  return SSL_TLSEXT_ERR_OK;
}

absl::StatusOr<SslPtr> TlsServerContext::NewConnection(
    std::string_view connect_host) const {
  SslPtr ssl(SSL_new(ctx_.get()));
  if (!ssl) return SslError("SSL_new");
  if (absl::Status s = SetConnectHost(ssl.get(), connect_host); !s.ok()) {
    return s;
  }
  SSL_set_accept_state(ssl.get());
  return ssl;
}

absl::Status TlsServerContext::SetConnectHost(SSL* ssl,
                                              std::string_view connect_host) {
  absl::StatusOr<ServerName> host = NormalizeServerName(connect_host);
  if (!host.ok()) return host.status();
  if (!ConnectionData::Set(ssl, ConnectionInfo{.connect_host = host->text})) {
    return SslError("SSL_set_ex_data");
  }
  return absl::OkStatus();
}

TlsServerContext::Refusal TlsServerContext::RefusalOf(const SSL* ssl) {
  const ConnectionInfo* info = ConnectionData::Get(ssl);
  return info == nullptr ? Refusal::kNone : info->refusal;
}

std::string_view TlsServerContext::RefusalName(Refusal refusal) {
  switch (refusal) {
    case Refusal::kNone:
      return "";
    case Refusal::kNoConnectHost:
      return "no_connect_host";
    case Refusal::kSniMismatch:
      return "sni_mismatch";
    case Refusal::kMintFailed:
      return "mint_failed";
  }
  return "unknown";
}

TlsServerContext::Stats TlsServerContext::stats() const {
  return Stats{
      .accepted = accepted_.load(std::memory_order_relaxed),
      .sni_mismatch = sni_mismatch_.load(std::memory_order_relaxed),
      .no_connect_host = no_connect_host_.load(std::memory_order_relaxed),
      .mint_failed = mint_failed_.load(std::memory_order_relaxed),
  };
}

}  // namespace sluice
