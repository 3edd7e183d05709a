#include "proxy/tls/client_context.h"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "proxy/tls/server_name.h"
#include "proxy/tls/ssl_ex_data.h"

namespace sluice {
namespace {

constexpr unsigned char kAlpnHttp11[] = {8,   'h', 't', 't', 'p',
                                         '/', '1', '.', '1'};

// Per connection: where the session of this connection is stored.
struct ClientInfo {
  std::string session_key;  // "host:port"
  TlsClientContext* owner = nullptr;
};
using ClientData = SslExData<ClientInfo>;

absl::Status SslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", DrainOpenSslErrors()));
}

}  // namespace

TlsClientContext::TlsClientContext(const Clock* clock, Options options)
    : clock_(clock), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<TlsClientContext>> TlsClientContext::Create(
    const Clock* clock, Options options) {
  std::unique_ptr<TlsClientContext> client(
      new TlsClientContext(clock, std::move(options)));
  client->ctx_.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* ctx = client->ctx_.get();
  if (ctx == nullptr) return SslError("SSL_CTX_new");
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return SslError("TLS versions");
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  const std::string& ca_file = client->options_.ca_file;
  if (!ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          ca_file, ": cannot load CA certificates: ", DrainOpenSslErrors()));
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return SslError("cannot load the system trust store");
  }
  if (client->options_.session_cache_capacity > 0) {
    // Sessions are kept here, by "host:port", not in OpenSSL's own cache
    // (which a client would never look up by origin).
    SSL_CTX_set_session_cache_mode(
        ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, &OnNewSession);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  return client;
}

absl::Status TlsClientContext::PrepareClient(SSL* ssl, std::string_view host,
                                             uint16_t port) {
  absl::StatusOr<ServerName> name = NormalizeServerName(host);
  if (!name.ok()) return name.status();
  const bool v6 = name->is_ip && name->text.find(':') != std::string::npos;
  std::string key = v6 ? absl::StrCat("[", name->text, "]:", port)
                       : absl::StrCat(name->text, ":", port);

  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (name->is_ip) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, name->text.c_str()) != 1) {
      return SslError("X509_VERIFY_PARAM_set1_ip_asc");
    }
  } else {
    if (SSL_set_tlsext_host_name(ssl, name->text.c_str()) != 1) {
      return SslError("SNI");
    }
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, name->text.c_str()) != 1) {
      return SslError("SSL_set1_host");
    }
  }
  X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(clock_->WallNow()));
  // SSL_set_alpn_protos returns 0 on success.
  if (SSL_set_alpn_protos(ssl, kAlpnHttp11, sizeof(kAlpnHttp11)) != 0) {
    return SslError("ALPN");
  }

  if (options_.session_cache_capacity > 0) {
    std::shared_ptr<SSL_SESSION> session;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = index_.find(key);
      if (it != index_.end()) session = it->second->session;
    }
    if (session != nullptr) {
      if (SSL_set_session(ssl, session.get()) != 1) {
        return SslError("SSL_set_session");
      }
      sessions_offered_.fetch_add(1, std::memory_order_relaxed);
    }
    if (!ClientData::Set(
            ssl, ClientInfo{.session_key = std::move(key), .owner = this})) {
      return SslError("SSL_set_ex_data");
    }
  }
  SSL_set_connect_state(ssl);
  return absl::OkStatus();
}

// OpenSSL calls this when a session is ready to be kept: after a TLS 1.2
// handshake, or for each NewSessionTicket of TLS 1.3 (read after the
// handshake). Returning 1 keeps OpenSSL's reference to `session`.
int TlsClientContext::OnNewSession(SSL* ssl, SSL_SESSION* session) {
  ClientInfo* info = ClientData::Get(ssl);
  if (info == nullptr || info->owner == nullptr) return 0;
  info->owner->Store(info->session_key, session);
  return 1;
}

void TlsClientContext::Store(const std::string& key, SSL_SESSION* session) {
  std::shared_ptr<SSL_SESSION> owned(session, SSL_SESSION_free);
  std::lock_guard<std::mutex> lock(mu_);
  ++sessions_stored_;
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->session = std::move(owned);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.push_front(Cached{.key = key, .session = std::move(owned)});
  index_.emplace(key, lru_.begin());
  while (lru_.size() > options_.session_cache_capacity) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
    ++session_evictions_;
  }
}

TlsClientContext::Stats TlsClientContext::stats() const {
  Stats out;
  out.handshakes = static_cast<uint64_t>(SSL_CTX_sess_connect_good(ctx_.get()));
  out.resumed = static_cast<uint64_t>(SSL_CTX_sess_hits(ctx_.get()));
  out.sessions_offered = sessions_offered_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  out.sessions_stored = sessions_stored_;
  out.session_evictions = session_evictions_;
  out.cached_sessions = lru_.size();
  return out;
}

std::string_view VerifyResultName(long verify_result) {
  switch (verify_result) {
    case X509_V_OK:
      return "ok";
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "not_yet_valid";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
      return "unknown_issuer";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return "wrong_host";
    case X509_V_ERR_CERT_REVOKED:
      return "revoked";
    default:
      return "other";
  }
}

}  // namespace sluice
