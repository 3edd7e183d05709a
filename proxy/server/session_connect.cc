// Session::HandleConnect: CONNECT requests. Checks the port allowlist and
// the limit, dials through the SSRF guard, then tunnels bytes until either
// side is done.

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>

#include "proxy/egress/dialer.h"
#include "proxy/http/http_head.h"
#include "proxy/server/session.h"
#include "proxy/server/session_request.h"
#include "proxy/server/tunnel.h"
#include "proxy/stats/proxy_metrics.h"

namespace sluice {

asio::awaitable<bool> Session::HandleConnect(RequestState& rs) {
  auto& req = rs.parser->get();
  if (auto bad = ParseConnectTarget(Sv(req.target()), rs.host, rs.port)) {
    co_return co_await SendError(rs, bad->status, bad->reason, bad->detail);
  }
  const auto& ports = ctx_.config->connect.allowed_ports;
  if (std::find(ports.begin(), ports.end(), rs.port) == ports.end()) {
    rs.outcome = RequestOutcome::kDeniedPort;
    co_return co_await SendError(rs, 403, "port_not_allowed",
                                 "CONNECT to this port is not allowed");
  }
  rs.path = "";
  // A tunnel is one request as far as limits go: sluice cannot see the
  // requests inside it.
  if (!co_await ApplyLimit(rs)) co_return rs.keep_after_reject;

  TimePoint t0 = ctx_.clock->Now();
  DialResult d = co_await DialOrigin(rs.host, rs.port, *ctx_.guard,
                                     ctx_.config->timeouts.connect, ctx_.clock);
  ctx_.metrics->ObserveConnect(ctx_.clock->Now() - t0, d.error);
  if (!d.stream) co_return co_await SendDialFailure(rs, d);
  std::string ok = rs.client_version == 10
                       ? "HTTP/1.0 200 Connection established\r\n"
                       : "HTTP/1.1 200 Connection established\r\n";
  if (!rs.quota_mode.empty()) {
    ok.append("x-sluice-quota: ").append(rs.quota_mode).append("\r\n");
  }
  ok.append("\r\n");
  stream_.tcp().expires_after(ctx_.config->timeouts.body_idle);
  auto [wec, wn] =
      co_await asio::async_write(stream_, asio::buffer(ok), kNoThrow);
  if (wec) co_return false;
  rs.status = 200;
  rs.outcome = RequestOutcome::kTunnel;
  // Bytes the client sent after the CONNECT head (e.g. an eager TLS hello).
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

}  // namespace sluice
