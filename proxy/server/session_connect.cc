// Session::HandleConnect: CONNECT requests. Checks the port allowlist.
// A tunnel to a host sluice intercepts, or to port 80, is answered at once
// and read by sluice itself (docs/https.md): TLS with a minted
// certificate, or plain HTTP; every request inside then takes the same
// path as an http:// one. Any other tunnel is opaque: the limit counts the
// tunnel, sluice dials through the SSRF guard and relays bytes until
// either side is done.

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>

#include "proxy/egress/dialer.h"
#include "proxy/http/http_head.h"
#include "proxy/server/session.h"
#include "proxy/server/session_request.h"
#include "proxy/server/tls_endpoints.h"
#include "proxy/server/tunnel.h"
#include "proxy/stats/proxy_metrics.h"
#include "proxy/stats/tls_metrics.h"
#include "proxy/tls/client_hello_peek.h"

namespace sluice {
namespace {

std::string ConnectOk(const RequestState& rs) {
  std::string ok = rs.client_version == 10
                       ? "HTTP/1.0 200 Connection established\r\n"
                       : "HTTP/1.1 200 Connection established\r\n";
  if (!rs.quota_mode.empty()) {
    ok.append("x-sluice-quota: ").append(rs.quota_mode).append("\r\n");
  }
  ok.append("\r\n");
  return ok;
}

}  // namespace

asio::awaitable<bool> Session::HandleConnect(RequestState& rs) {
  auto& req = rs.parser->get();
  if (tunnel_) {
    co_return co_await SendError(rs, 400, "connect_in_tunnel",
                                 "CONNECT inside a tunnel is not supported");
  }
  if (auto bad = ParseConnectTarget(Sv(req.target()), rs.host, rs.port)) {
    co_return co_await SendError(rs, bad->status, bad->reason, bad->detail);
  }
  // A tunnel is a request of neither scheme: only routes that name no
  // scheme limit it (the requests read inside an intercepted one get
  // theirs in HandleForward).
  rs.scheme = RouteScheme::kAny;
  const auto& ports = ctx_.config->connect.allowed_ports;
  if (std::find(ports.begin(), ports.end(), rs.port) == ports.end()) {
    rs.outcome = RequestOutcome::kDeniedPort;
    co_return co_await SendError(rs, 403, "port_not_allowed",
                                 "CONNECT to this port is not allowed");
  }
  rs.path = "";
  const bool intercept = ctx_.tls != nullptr && ctx_.tls->Intercepts(rs.host);
  if ((intercept || rs.port == 80) && !rs.body_pending) {
    co_return co_await ReadTunnel(rs, intercept);
  }
  // A tunnel is one request as far as limits go: sluice cannot see the
  // requests inside it.
  if (!co_await ApplyLimit(rs)) co_return rs.keep_after_reject;
  co_return co_await OpenTunnel(rs, /*answered=*/false);
}

asio::awaitable<bool> Session::OpenTunnel(RequestState& rs, bool answered) {
  TimePoint t0 = ctx_.clock->Now();
  DialResult d = co_await DialOrigin(rs.host, rs.port, *ctx_.guard,
                                     ctx_.config->timeouts.connect, ctx_.clock);
  ctx_.metrics->ObserveConnect(ctx_.clock->Now() - t0, d.error);
  if (!d.stream) {
    // Once the 200 is out, only closing tells the client.
    if (answered) co_return false;
    co_return co_await SendDialFailure(rs, d);
  }
  if (!answered) {
    const std::string ok = ConnectOk(rs);
    stream_.tcp().expires_after(ctx_.config->timeouts.body_idle);
    auto [wec, wn] =
        co_await asio::async_write(stream_, asio::buffer(ok), kNoThrow);
    if (wec) co_return false;
  }
  rs.status = 200;
  rs.outcome = RequestOutcome::kTunnel;
  // Bytes the client sent after the CONNECT head (an eager TLS hello, or
  // what a read tunnel looked at).
  if (buffer_.size() > 0) {
    d.stream->expires_after(ctx_.config->timeouts.body_idle);
    auto [fec, fn] =
        co_await asio::async_write(*d.stream, buffer_.data(), kNoThrow);
    if (fec) co_return false;
    rs.bytes_in += fn;
    buffer_.consume(buffer_.size());
  }
  ctx_.metrics->OnTunnelOpened();
  TunnelStats stats = co_await RelayTunnel(
      stream_.tcp(), *d.stream, ctx_.config->timeouts.tunnel_idle,
      ctx_.config->limits.buffer_bytes, ctx_.clock);
  ctx_.metrics->OnTunnelClosed();
  rs.bytes_in += stats.client_to_upstream;
  rs.bytes_out += stats.upstream_to_client;
  co_return false;
}

asio::awaitable<bool> Session::ReadTunnel(RequestState& rs, bool intercept) {
  const std::string ok = ConnectOk(rs);
  stream_.tcp().expires_after(ctx_.config->timeouts.body_idle);
  auto [wec, wn] =
      co_await asio::async_write(stream_, asio::buffer(ok), kNoThrow);
  if (wec) co_return false;
  rs.status = 200;
  rs.answered = true;
  // What does the client speak? Its first bytes tell, within the head
  // deadline; they stay in buffer_ for whoever reads next.
  const PeekResult peek = co_await PeekTunnel();
  if (peek == PeekResult::kNeedMore) {
    rs.outcome = RequestOutcome::kClientTimeout;
    co_return false;  // silence, or the connection ended
  }
  if (peek == PeekResult::kHttp) {
    tunnel_ = TunnelOrigin{.host = rs.host, .port = rs.port, .tls = false};
    rs.outcome = RequestOutcome::kIntercepted;
    ctx_.tls_metrics->OnTunnelRead("http");
    co_return true;
  }
  if (peek != PeekResult::kTls || !intercept) {
    // Not HTTP, and not TLS sluice may terminate: an opaque tunnel after
    // all. It counts against the limit as any tunnel does.
    if (!co_await ApplyLimit(rs)) co_return false;
    co_return co_await OpenTunnel(rs, /*answered=*/true);
  }
  // TLS: the handshake takes the bytes already read, and must finish
  // within the head deadline (a client that stalls it is closed).
  MaybeTlsStream::TlsLayer& tls = stream_.StartTls(ctx_.tls->server());
  if (!TlsEndpoints::PrepareServer(tls.native_handle(), rs.host).ok()) {
    co_return false;
  }
  ArmHeadDeadline(ctx_.config->timeouts.header_read);
  auto [hec, used] = co_await tls.async_handshake(
      asio::ssl::stream_base::server, buffer_.data(), kNoThrow);
  const bool timed_out = head_timed_out_;
  DisarmHeadDeadline();
  buffer_.consume(used);
  if (hec) {
    rs.outcome = timed_out ? RequestOutcome::kClientTimeout
                           : RequestOutcome::kBadRequest;
    ctx_.tls_metrics->OnTunnelRead(
        timed_out ? "handshake_timeout"
                  : HandshakeFailure(tls.native_handle(), hec));
    co_return false;
  }
  tunnel_ = TunnelOrigin{.host = rs.host, .port = rs.port, .tls = true};
  rs.outcome = RequestOutcome::kIntercepted;
  ctx_.tls_metrics->OnTunnelRead("tls");
  co_return true;
}

asio::awaitable<PeekResult> Session::PeekTunnel() {
  ArmHeadDeadline(ctx_.config->timeouts.header_read);
  struct Disarm {
    Session* s;
    ~Disarm() { s->DisarmHeadDeadline(); }
  } disarm{this};
  for (;;) {
    const std::string_view seen(static_cast<const char*>(buffer_.data().data()),
                                buffer_.size());
    const PeekResult r = PeekClientBytes(seen);
    if (r != PeekResult::kNeedMore) co_return r;
    auto [ec, n] = co_await stream_.tcp().socket().async_read_some(
        buffer_.prepare(kMaxPeekBytes), kNoThrow);
    buffer_.commit(n);
    if (ec || head_timed_out_) co_return PeekResult::kNeedMore;
  }
}

std::string_view Session::HandshakeFailure(SSL* ssl, beast::error_code ec) {
  const auto refusal = TlsServerContext::RefusalOf(ssl);
  if (refusal != TlsServerContext::Refusal::kNone) {
    return TlsServerContext::RefusalName(refusal);
  }
  if (ec == asio::ssl::error::stream_truncated || ec == asio::error::eof ||
      ec == asio::error::connection_reset) {
    return "closed";
  }
  // The client refused our certificate (it does not trust the CA), asked
  // for a protocol version or cipher we do not offer, or sent garbage.
  if (ec.category() == asio::error::get_ssl_category()) {
    switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
      case SSL_R_UNSUPPORTED_PROTOCOL:
      case SSL_R_WRONG_VERSION_NUMBER:
      case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        return "protocol_version";
      case SSL_R_NO_SHARED_CIPHER:
        return "no_shared_cipher";
      case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        return "client_rejected_certificate";
      default:
        break;
    }
  }
  return "handshake";
}

}  // namespace sluice
