#include "proxy/server/tls_endpoints.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

// An Asio context over an SSL_CTX the TLS room owns: Asio frees its handle
// at destruction, so it gets a reference of its own.
std::unique_ptr<boost::asio::ssl::context> Wrap(SSL_CTX* ctx) {
  SSL_CTX_up_ref(ctx);
  return std::make_unique<boost::asio::ssl::context>(ctx);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsEndpoints>> TlsEndpoints::Create(
    Options options, const Clock* clock) {
  std::unique_ptr<TlsEndpoints> e(new TlsEndpoints());
  if (options.intercepts) {
    auto authority = CertAuthority::Load(options.ca_cert, options.ca_key, clock,
                                         options.authority);
    if (!authority.ok()) {
      return absl::Status(
          authority.status().code(),
          absl::StrCat("intercept.ca: ", authority.status().message()));
    }
    e->authority_ = std::move(*authority);
    e->leaves_ =
        std::make_unique<LeafCache>(e->authority_.get(), clock, options.leaves);
    auto server = TlsServerContext::Create(e->leaves_.get());
    if (!server.ok()) return server.status();
    e->server_ = std::move(*server);
    e->server_asio_ = Wrap(e->server_->ctx());
    e->intercepts_ = std::move(options.intercepts);
  }
  if (options.client) {
    auto client = TlsClientContext::Create(clock, std::move(options.origins));
    if (!client.ok()) {
      return absl::Status(
          client.status().code(),
          absl::StrCat("upstream_tls: ", client.status().message()));
    }
    e->client_ = std::move(*client);
    e->client_asio_ = Wrap(e->client_->ctx());
    for (const std::string& host : options.insecure_skip_verify) {
      e->insecure_.insert(absl::AsciiStrToLower(host));
    }
  }
  return e;
}

bool TlsEndpoints::Intercepts(std::string_view host) const {
  return intercepts_ && intercepts_(host);
}

absl::Status TlsEndpoints::PrepareServer(SSL* ssl,
                                         std::string_view connect_host) {
  return TlsServerContext::SetConnectHost(ssl, connect_host);
}

absl::Status TlsEndpoints::PrepareClient(SSL* ssl, std::string_view host,
                                         uint16_t port) {
  absl::Status s = client_->PrepareClient(ssl, host, port);
  if (!s.ok()) return s;
  if (!insecure_.empty() && insecure_.contains(absl::AsciiStrToLower(
                                absl::string_view(host.data(), host.size())))) {
    SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
    unverified_.fetch_add(1, std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

TlsEndpoints::Stats TlsEndpoints::stats() const {
  Stats s;
  if (leaves_) s.leaves = leaves_->stats();
  if (server_) s.server = server_->stats();
  if (client_) s.client = client_->stats();
  s.unverified = unverified_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace sluice
