// Session::HandleForward: forwarding of absolute-form requests, in stages
// (docs/architecture.md): the target, admission (ApplyLimit, session.cc),
// the upstream exchange (dial or reuse, send, read the response head, with
// the re-dial of a pooled connection the origin had closed and the
// transparent retry of a throttled request), and the relay of the
// response.

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/egress/dialer.h"
#include "proxy/http/http_head.h"
#include "proxy/limit/limit_gate.h"
#include "proxy/pause/bucket_pause.h"
#include "proxy/server/http_relay.h"
#include "proxy/server/proxy_context.h"
#include "proxy/server/relay_buffer_cache.h"
#include "proxy/server/session.h"
#include "proxy/server/session_request.h"
#include "proxy/server/tls_endpoints.h"
#include "proxy/server/upstream_pool.h"
#include "proxy/stats/pause_metrics.h"
#include "proxy/stats/proxy_metrics.h"
#include "proxy/stats/tls_metrics.h"
#include "proxy/tls/client_context.h"

namespace sluice {
namespace {

// What a failed dial means to the client.
struct DialAnswer {
  unsigned status;
  RequestOutcome outcome;
};

DialAnswer AnswerFor(DialError error) {
  switch (error) {
    case DialError::kBadHost:
      return {400, RequestOutcome::kBadRequest};
    case DialError::kDenied:
      return {403, RequestOutcome::kDeniedSsrf};
    case DialError::kDnsTimeout:
    case DialError::kConnectTimeout:
      return {504, RequestOutcome::kUpstreamTimeout};
    case DialError::kNone:
    case DialError::kDns:
    case DialError::kRefused:
    case DialError::kConnect:
      break;
  }
  return {502, RequestOutcome::kUpstreamError};
}

}  // namespace

asio::awaitable<bool> Session::HandleForward(RequestState& rs) {
  auto& req = rs.parser->get();
  ForwardTarget ft;
  if (tunnel_) {
    // Inside a tunnel sluice reads: the origin is the tunnel's.
    if (auto bad = ParseTunnelTarget(
            Sv(req.target()), Sv(req[http::field::host]), *tunnel_, ft)) {
      co_return co_await SendError(rs, bad->status, bad->reason, bad->detail);
    }
    rs.scheme = tunnel_->tls ? RouteScheme::kHttps : RouteScheme::kHttp;
    rs.origin_tls = tunnel_->tls;
  } else if (auto bad = ParseForwardTarget(Sv(req.target()), ft)) {
    co_return co_await SendError(rs, bad->status, bad->reason, bad->detail);
  }
  rs.host = ft.host;
  rs.port = ft.port;
  rs.path = ft.path;

  if (!co_await ApplyLimit(rs)) co_return rs.keep_after_reject;
  if (!tunnel_ && rs.route_index &&
      ctx_.config->routes[*rs.route_index].originate_tls) {
    // TLS origination: the app's http:// request goes out as https.
    rs.origin_tls = true;
    if (!ft.explicit_port) rs.port = 443;
  }

  Upstream up;
  up.pool_key = (rs.origin_tls ? "https://" : "") + rs.host + ":" +
                std::to_string(rs.port);
  up.stream = ctx_.pool->Take(up.pool_key);
  up.reused = up.stream != nullptr;
  if (up.reused) {
    ctx_.metrics->OnPoolReuse();
  } else if (auto failed = co_await Dial(rs, up)) {
    co_return co_await SendUpstreamFailure(rs, *failed);
  }
  RewriteRequestHead(rs, ft);
  if (auto sent = co_await Exchange(rs, up)) co_return *sent;
  co_return co_await RelayResponse(rs, up);
}

asio::awaitable<std::optional<Session::UpstreamFailure>> Session::Dial(
    RequestState& rs, Upstream& up) {
  const TimePoint t0 = ctx_.clock->Now();
  DialResult d = co_await DialOrigin(rs.host, rs.port, *ctx_.guard,
                                     ctx_.config->timeouts.connect, ctx_.clock);
  ctx_.metrics->ObserveConnect(ctx_.clock->Now() - t0, d.error);
  if (!d.stream) co_return FailureOf(d);
  up.stream = std::make_unique<MaybeTlsStream>(std::move(*d.stream));
  up.buf.clear();
  up.reused = false;
  if (rs.origin_tls) {
    if (auto failed = co_await StartOriginTls(rs, *up.stream)) {
      up.stream.reset();
      co_return failed;
    }
  }
  ctx_.metrics->OnPoolNew();
  co_return std::nullopt;
}

asio::awaitable<std::optional<Session::UpstreamFailure>>
Session::StartOriginTls(RequestState& rs, MaybeTlsStream& stream) {
  if (ctx_.tls == nullptr || !ctx_.tls->has_client()) {
    co_return UpstreamFailure{502, RequestOutcome::kUpstreamError,
                              "upstream_tls", "no TLS client is configured"};
  }
  MaybeTlsStream::TlsLayer& tls = stream.StartTls(ctx_.tls->client());
  if (absl::Status s =
          ctx_.tls->PrepareClient(tls.native_handle(), rs.host, rs.port);
      !s.ok()) {
    co_return UpstreamFailure{502, RequestOutcome::kUpstreamError,
                              "upstream_tls", std::string(s.message())};
  }
  stream.tcp().expires_after(ctx_.config->timeouts.connect);
  auto [ec] =
      co_await tls.async_handshake(asio::ssl::stream_base::client, kNoThrow);
  if (!ec) co_return std::nullopt;
  const long verify = SSL_get_verify_result(tls.native_handle());
  const bool timeout = ec == beast::error::timeout;
  std::string reason = "tls_handshake";
  std::string detail =
      "the TLS handshake with the origin failed: " + ec.message();
  if (timeout) {
    reason = "tls_timeout";
    detail = "the TLS handshake with the origin did not finish in time";
  } else if (verify != X509_V_OK) {
    reason = "tls_" + std::string(VerifyResultName(verify));
    detail = std::string("the origin's certificate failed verification: ") +
             X509_verify_cert_error_string(verify);
  }
  ctx_.tls_metrics->OnOriginTlsFailure(reason);
  co_return UpstreamFailure{timeout ? 504u : 502u,
                            timeout ? RequestOutcome::kUpstreamTimeout
                                    : RequestOutcome::kUpstreamError,
                            std::move(reason), std::move(detail)};
}

Session::UpstreamFailure Session::FailureOf(const DialResult& failed) {
  const DialAnswer answer = AnswerFor(failed.error);
  return UpstreamFailure{answer.status, answer.outcome,
                         std::string(failed.reason()), failed.detail};
}

asio::awaitable<bool> Session::SendDialFailure(RequestState& rs,
                                               const DialResult& failed) {
  co_return co_await SendUpstreamFailure(rs, FailureOf(failed));
}

asio::awaitable<bool> Session::SendUpstreamFailure(
    RequestState& rs, const UpstreamFailure& failed) {
  rs.outcome = failed.outcome;
  co_return co_await SendError(rs, failed.status, failed.reason, failed.detail);
}

void Session::RewriteRequestHead(RequestState& rs, const ForwardTarget& ft) {
  auto& req = rs.parser->get();
  // The origin sees no Expect; sluice invites the body itself once the
  // request has passed the limiter and the origin is connected.
  rs.expect_continue = beast::iequals(req[http::field::expect], "100-continue");
  req.erase(http::field::expect);
  if (StripHopByHop(req.base())) rs.client_keep_alive = false;
  AppendVia(req.base(), req.version());
  req.version(11);
  req.target(ft.origin_target);
  req.set(http::field::host, ft.host_header);
}

RelayBuffer Session::RelayBuf() {
  if (!relay_buf_) {
    relay_buf_ = RelayBufferCache::Take(ctx_.config->limits.buffer_bytes);
  }
  return RelayBuffer{relay_buf_.get(), ctx_.config->limits.buffer_bytes};
}

asio::awaitable<std::optional<bool>> Session::Exchange(RequestState& rs,
                                                       Upstream& up) {
  const http::verb method = rs.parser->get().method();
  // Each pass sends the request once; a throttled answer on a route with
  // transparent retry waits out the pause in the limit's queue and goes
  // around again (docs/pause.md).
  for (int sends = 1;; ++sends) {
    const TimePoint sent_at = ctx_.clock->Now();
    if (auto sent = co_await SendAndReadHead(rs, up, sends)) co_return sent;
    rs.upstream_time = ctx_.clock->Now() - sent_at;
    ctx_.metrics->OnUpstreamStatus(up.response->get().result_int());
    UpstreamAnswer answer;
    if (rs.pause) {
      answer =
          co_await NoteUpstreamAnswer(rs, *up.stream, up.buf, *up.response);
    }
    std::string_view refusal = "off";
    if (answer.throttled) {
      refusal = RetryRefusal(rs, method, sends);
      if (!refusal.empty() && refusal != "off") {
        ctx_.pause_metrics->OnRetrySkipped(rs.limit, refusal);
      }
    }
    if (!answer.throttled || !refusal.empty()) {
      if (!answer.body_ec) co_return std::nullopt;
      // The start of a throttle's body, read to look for a marker, did not
      // arrive: nothing has been sent to the client yet.
      const bool timeout = answer.body_ec == beast::error::timeout;
      rs.outcome = timeout ? RequestOutcome::kUpstreamTimeout
                           : RequestOutcome::kUpstreamError;
      const unsigned st = timeout ? 504 : 502;
      std::string reason = timeout ? "upstream_timeout" : "upstream_response";
      std::string detail =
          "reading the response body: " + answer.body_ec.message();
      co_return co_await SendError(rs, st, std::move(reason),
                                   std::move(detail));
    }
    // Retry: drop this connection (the throttle's body is not wanted), queue
    // behind the pause, then send again on a fresh connection.
    ctx_.pause_metrics->OnRetried(rs.limit);
    up.stream.reset();
    up.buf.clear();
    const Duration left = rs.deadline - ctx_.clock->Now();
    LimitGate::Result again =
        co_await ctx_.gate->Acquire(*rs.limiter, rs.cost, left);
    if (again.outcome != AcquireOutcome::kAdmitted) {
      rs.outcome = RequestOutcome::kLimitedWaitExceeded;
      const Duration retry_after =
          std::max(again.retry_after, rs.pause->Remaining(ctx_.clock->Now()));
      co_return co_await SendLimited(rs, "wait_exceeded", retry_after);
    }
    rs.admitted_at = ctx_.clock->Now();
    if (auto failed = co_await Dial(rs, up)) {
      co_return co_await SendUpstreamFailure(rs, *failed);
    }
  }
}

asio::awaitable<std::optional<bool>> Session::SendAndReadHead(RequestState& rs,
                                                              Upstream& up,
                                                              int sends) {
  for (int attempt = 0;; ++attempt) {
    if (attempt == 0 && rs.expect_continue && rs.body_pending) {
      static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.tcp().expires_after(ctx_.config->timeouts.body_idle);
      auto [cec, cn] =
          co_await asio::async_write(stream_, asio::buffer(k100), kNoThrow);
      if (cec) co_return false;
    }
    RelayError re;
    if (attempt == 0 && sends == 1 && WantsBodyCopy(rs)) {
      // Keep the body for a transparent retry (docs/pause.md).
      re.ec = co_await CopyRequestBody(rs);
      re.reading = true;
    }
    if (!re.ec) {
      // A full copy is sent again on each pass; a body that did not fit
      // (its start is in the copy) streams once and is never retried.
      if (rs.body_pending) rs.body_streamed = true;
      re = co_await RelayMessage<true>(
          {.from = stream_,
           .from_buf = buffer_,
           .parser = *rs.parser,
           .to = *up.stream,
           .buf = RelayBuf(),
           .idle = ctx_.config->timeouts.body_idle,
           .body_bytes = rs.bytes_in,
           .prefix = {rs.body_copy.data(), rs.body_copy.size()},
           .read_deadline = &body_deadline_});
    }
    DisarmHeadDeadline();  // no client read is pending any more
    if (re.ec && re.reading) {
      rs.outcome = re.ec == beast::error::timeout
                       ? RequestOutcome::kClientTimeout
                       : RequestOutcome::kBadRequest;
      const unsigned st = re.ec == beast::error::timeout ? 408 : 400;
      std::string detail = "request body: " + re.ec.message();
      co_return co_await SendError(rs, st, "bad_body", std::move(detail));
    }
    const bool wrote = !re.ec;
    beast::error_code ec = re.ec;
    if (wrote) {
      rs.body_pending = false;
      ec = co_await ReadResponseHead(rs, up);
      if (!ec) co_return std::nullopt;
    }
    if (attempt == 0 && OriginClosedIdle(rs, up, ec)) {
      // A pooled connection the origin had closed: try a fresh one once.
      if (auto failed = co_await Dial(rs, up)) {
        co_return co_await SendUpstreamFailure(rs, *failed);
      }
      continue;
    }
    const bool timeout = ec == beast::error::timeout;
    rs.outcome = timeout ? RequestOutcome::kUpstreamTimeout
                         : RequestOutcome::kUpstreamError;
    // Named locals: GCC 12 mishandles conditional temporaries inside
    // co_await expressions.
    const unsigned st = timeout ? 504 : 502;
    std::string reason;
    std::string detail;
    if (!wrote) {
      reason = "upstream_write";
      detail = "sending to the origin failed";
    } else if (timeout) {
      reason = "upstream_timeout";
      detail = "the origin did not answer in time";
    } else {
      reason = "upstream_response";
      detail = "the origin sent an invalid response: " + ec.message();
    }
    co_return co_await SendError(rs, st, std::move(reason), std::move(detail));
  }
}

bool Session::OriginClosedIdle(const RequestState& rs, const Upstream& up,
                               beast::error_code ec) const {
  // Only a connection from the pool, before any byte of this request's
  // body left the client and before any byte of an answer came back, and
  // not a timeout (an origin that is slow is not a connection it closed):
  // the request can go again, whole, on a fresh connection.
  return up.reused && rs.bytes_in == 0 && rs.parser->is_done() &&
         up.buf.size() == 0 && ec != beast::error::timeout;
}

asio::awaitable<beast::error_code> Session::ReadResponseHead(RequestState& rs,
                                                             Upstream& up) {
  const bool head = rs.parser->get().method() == http::verb::head;
  // Interim 1xx responses are skipped (101 is an answer: it is refused when
  // relayed).
  for (;;) {
    up.response.emplace();
    up.response->header_limit(
        static_cast<uint32_t>(ctx_.config->limits.max_header_bytes));
    up.response->body_limit(boost::none);
    if (head) up.response->skip(true);
    up.stream->tcp().expires_after(ctx_.config->timeouts.upstream_response);
    auto [ec, n] = co_await http::async_read_header(*up.stream, up.buf,
                                                    *up.response, kNoThrow);
    if (ec) co_return ec;
    const unsigned code = up.response->get().result_int();
    if (code < 100 || code >= 200 || code == 101) co_return ec;
  }
}

asio::awaitable<bool> Session::RelayResponse(RequestState& rs, Upstream& up) {
  auto& req = rs.parser->get();
  auto& res = up.response->get();
  const unsigned code = res.result_int();
  rs.status = code;
  if (code == 101) {
    rs.outcome = RequestOutcome::kUpstreamError;
    co_return co_await SendError(rs, 502, "upgrade",
                                 "protocol upgrades are not proxied");
  }
  const bool upstream_keep = up.response->keep_alive();
  const bool no_body = req.method() == http::verb::head || code == 204 ||
                       code == 304 || code < 200;
  StripHopByHop(res.base());
  AppendVia(res.base(), res.version());
  if (!rs.quota_mode.empty()) {
    res.set("x-sluice-quota",
            beast::string_view(rs.quota_mode.data(), rs.quota_mode.size()));
  }
  if (!no_body) {
    const bool framed = res.has_content_length() || res.chunked();
    if (!framed) {
      if (rs.client_version >= 11) {
        res.chunked(true);
      } else {
        rs.client_keep_alive = false;
      }
    } else if (res.chunked() && rs.client_version < 11) {
      res.chunked(false);
      rs.client_keep_alive = false;
    }
  }
  if (ctx_.draining.load() || close_requested_) rs.client_keep_alive = false;
  res.version(11);
  res.keep_alive(rs.client_keep_alive);
  rs.outcome = RequestOutcome::kForwarded;

  // A throttle's body start read to look for a marker goes out first.
  rs.bytes_out += rs.response_prefix.size();
  RelayError re = co_await RelayMessage<false>(
      {.from = *up.stream,
       .from_buf = up.buf,
       .parser = *up.response,
       .to = stream_,
       .buf = RelayBuf(),
       .idle = ctx_.config->timeouts.body_idle,
       .body_bytes = rs.bytes_out,
       .head_only = no_body,
       .prefix = {rs.response_prefix.data(), rs.response_prefix.size()}});
  if (re.ec) {
    // The head is already on its way to the client: all we can do is close.
    rs.outcome = re.reading ? (re.ec == beast::error::timeout
                                   ? RequestOutcome::kUpstreamTimeout
                                   : RequestOutcome::kUpstreamError)
                            : RequestOutcome::kClientTimeout;
    co_return false;
  }
  if (upstream_keep && up.response->is_done() && up.buf.size() == 0) {
    ctx_.pool->Put(up.pool_key, std::move(up.stream));
  }
  co_return rs.client_keep_alive;
}

}  // namespace sluice
