// Session::HandleForward: forwarding of absolute-form requests. Dials (or
// reuses) the origin, rewrites the head, relays the body both ways, and
// handles 100-continue, a pooled connection the origin had closed, and the
// transparent retry of a throttled request (session_retry.cc).

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/egress/dialer.h"
#include "proxy/http/http_head.h"
#include "proxy/limit/limit_gate.h"
#include "proxy/limit/rate_limiter.h"
#include "proxy/pause/bucket_pause.h"
#include "proxy/server/http_relay.h"
#include "proxy/server/proxy_context.h"
#include "proxy/server/session.h"
#include "proxy/server/session_request.h"
#include "proxy/server/upstream_pool.h"
#include "proxy/stats/pause_metrics.h"
#include "proxy/stats/proxy_metrics.h"

namespace sluice {

asio::awaitable<bool> Session::HandleForward(RequestState& rs) {
  auto& req = rs.parser->get();
  ForwardTarget ft;
  if (auto bad = ParseForwardTarget(Sv(req.target()), ft)) {
    co_return co_await SendError(rs, bad->status, bad->reason, bad->detail);
  }
  rs.host = ft.host;
  rs.port = ft.port;
  rs.path = ft.path;

  if (!co_await ApplyLimit(rs)) co_return rs.keep_after_reject;

  // Dial: a pooled connection, or a fresh one through the SSRF guard.
  const std::string pool_key = rs.host + ":" + std::to_string(rs.port);
  std::unique_ptr<beast::tcp_stream> up = ctx_.pool->Take(pool_key);
  bool reused = up != nullptr;
  if (reused) ctx_.metrics->OnPoolReuse();
  auto dial = [&]() -> asio::awaitable<std::optional<DialResult>> {
    TimePoint t0 = ctx_.clock->Now();
    DialResult d = co_await DialOrigin(rs.host, rs.port, *ctx_.guard,
                                       ctx_.config->timeouts.connect);
    ctx_.metrics->ObserveConnect(ctx_.clock->Now() - t0,
                                 d.stream ? "" : d.reason);
    if (!d.stream) co_return d;
    up = std::move(d.stream);
    ctx_.metrics->OnPoolNew();
    co_return std::nullopt;
  };
  if (!up) {
    if (auto failed = co_await dial()) {
      rs.outcome = failed->status == 403   ? RequestOutcome::kDeniedSsrf
                   : failed->status == 504 ? RequestOutcome::kUpstreamTimeout
                                           : RequestOutcome::kUpstreamError;
      co_return co_await SendError(rs, failed->status, failed->reason,
                                   failed->detail);
    }
  }

  // Rewrite the head for the origin.
  const bool expect_continue =
      beast::iequals(req[http::field::expect], "100-continue");
  req.erase(http::field::expect);
  bool client_close = StripHopByHop(req.base());
  if (client_close) rs.client_keep_alive = false;
  AppendVia(req.base(), req.version());
  req.version(11);
  req.target(ft.origin_target);
  req.set(http::field::host, ft.host_header);

  if (!relay_buf_)
    relay_buf_ = std::make_unique<char[]>(ctx_.config->limits.buffer_bytes);
  RelayBuffer buf{relay_buf_.get(), ctx_.config->limits.buffer_bytes};
  beast::flat_buffer up_buf;
  std::optional<http::response_parser<http::buffer_body>> resp;
  // Each pass sends the request once; a throttled answer on a route with
  // transparent retry waits out the pause in the limit's queue and goes
  // around again (docs/pause.md).
  const bool copy_body = WantsBodyCopy(rs);
  for (int sends = 1;; ++sends) {
    const TimePoint sent_at = ctx_.clock->Now();
    for (int attempt = 0;; ++attempt) {
      if (expect_continue && rs.body_pending && attempt == 0) {
        // The origin sees no Expect; sluice invites the body itself once the
        // request has passed the limiter and the origin is connected.
        static constexpr std::string_view k100 =
            "HTTP/1.1 100 Continue\r\n\r\n";
        stream_.expires_after(ctx_.config->timeouts.body_idle);
        auto [cec, cn] =
            co_await asio::async_write(stream_, asio::buffer(k100), kNoThrow);
        if (cec) co_return false;
      }
      RelayError re;
      if (copy_body && sends == 1 && attempt == 0) {
        // Keep the body for a transparent retry (docs/pause.md).
        re.ec = co_await CopyRequestBody(rs);
        re.reading = true;
      }
      if (!re.ec) {
        // A full copy is sent again on each pass; a body that did not fit
        // (its start is in the copy) streams once and is never retried.
        if (rs.body_pending) rs.body_streamed = true;
        RelayBuffer copy{rs.body_copy.data(), rs.body_copy.size()};
        re = co_await RelayMessage<true>(stream_, buffer_, *rs.parser, *up, buf,
                                         ctx_.config->timeouts.body_idle,
                                         rs.bytes_in, false, copy,
                                         &body_deadline_);
      }
      DisarmHeadDeadline();  // no client read is pending any more
      if (re.ec) {
        if (re.reading) {
          rs.outcome = re.ec == beast::error::timeout
                           ? RequestOutcome::kClientTimeout
                           : RequestOutcome::kBadRequest;
          const unsigned st = re.ec == beast::error::timeout ? 408 : 400;
          std::string detail = "request body: " + re.ec.message();
          co_return co_await SendError(rs, st, "bad_body", std::move(detail));
        }
        if (reused && attempt == 0 && rs.bytes_in == 0 &&
            rs.parser->is_done()) {
          // A pooled connection the origin had closed: try a fresh one once.
          reused = false;
          if (auto failed = co_await dial()) {
            rs.outcome = RequestOutcome::kUpstreamError;
            co_return co_await SendError(rs, failed->status, failed->reason,
                                         failed->detail);
          }
          continue;
        }
        rs.outcome = re.ec == beast::error::timeout
                         ? RequestOutcome::kUpstreamTimeout
                         : RequestOutcome::kUpstreamError;
        const unsigned st = re.ec == beast::error::timeout ? 504 : 502;
        co_return co_await SendError(rs, st, "upstream_write",
                                     "sending to the origin failed");
      }
      rs.body_pending = false;

      // Read the response head, skipping interim 1xx responses.
      beast::error_code rec;
      for (;;) {
        resp.emplace();
        resp->header_limit(
            static_cast<uint32_t>(ctx_.config->limits.max_header_bytes));
        resp->body_limit(boost::none);
        if (req.method() == http::verb::head) resp->skip(true);
        up->expires_after(ctx_.config->timeouts.upstream_response);
        auto [ec, n] =
            co_await http::async_read_header(*up, up_buf, *resp, kNoThrow);
        rec = ec;
        if (rec) break;
        unsigned code = resp->get().result_int();
        if (code >= 100 && code < 200 && code != 101) continue;
        break;
      }
      if (rec && reused && attempt == 0 && up_buf.size() == 0 &&
          rs.bytes_in == 0 && rec != beast::error::timeout) {
        reused = false;
        if (auto failed = co_await dial()) {
          rs.outcome = RequestOutcome::kUpstreamError;
          co_return co_await SendError(rs, failed->status, failed->reason,
                                       failed->detail);
        }
        continue;
      }
      if (rec) {
        bool timeout = rec == beast::error::timeout;
        rs.outcome = timeout ? RequestOutcome::kUpstreamTimeout
                             : RequestOutcome::kUpstreamError;
        // Named locals: GCC 12 mishandles conditional temporaries inside
        // co_await expressions.
        const unsigned st = timeout ? 504 : 502;
        std::string reason = timeout ? "upstream_timeout" : "upstream_response";
        std::string detail =
            timeout ? std::string("the origin did not answer in time")
                    : "the origin sent an invalid response: " + rec.message();
        co_return co_await SendError(rs, st, std::move(reason),
                                     std::move(detail));
      }
      break;
    }
    rs.upstream_time = ctx_.clock->Now() - sent_at;
    ctx_.metrics->OnUpstreamStatus(resp->get().result_int());
    UpstreamAnswer answer;
    if (rs.pause) {
      answer = co_await NoteUpstreamAnswer(rs, *up, up_buf, *resp);
    }
    std::string_view refusal = "off";
    if (answer.throttled) {
      refusal = RetryRefusal(rs, req.method(), sends);
      if (!refusal.empty() && refusal != "off") {
        ctx_.pause_metrics->OnRetrySkipped(rs.limit, refusal);
      }
    }
    if (!answer.throttled || !refusal.empty()) {
      if (answer.body_ec) {
        // The start of a throttle's body, read to look for a marker, did
        // not arrive: nothing has been sent to the client yet.
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
      break;
    }
    // Retry: drop this connection (the throttle's body is not wanted), queue
    // behind the pause, then send again on a fresh connection.
    ctx_.pause_metrics->OnRetried(rs.limit);
    up.reset();
    up_buf.clear();
    reused = false;
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
    if (auto failed = co_await dial()) {
      rs.outcome = RequestOutcome::kUpstreamError;
      co_return co_await SendError(rs, failed->status, failed->reason,
                                   failed->detail);
    }
  }

  auto& res = resp->get();
  const unsigned code = res.result_int();
  rs.status = code;
  if (code == 101) {
    rs.outcome = RequestOutcome::kUpstreamError;
    co_return co_await SendError(rs, 502, "upgrade",
                                 "protocol upgrades are not proxied");
  }
  const bool upstream_keep = resp->keep_alive();
  const bool no_body = req.method() == http::verb::head || code == 204 ||
                       code == 304 || code < 200;
  StripHopByHop(res.base());
  AppendVia(res.base(), res.version());
  if (!rs.quota_mode.empty()) {
    res.set("x-sluice-quota",
            beast::string_view(rs.quota_mode.data(), rs.quota_mode.size()));
  }
  if (!no_body) {
    bool framed = res.has_content_length() || res.chunked();
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
  RelayBuffer prefix{rs.response_prefix.data(), rs.response_prefix.size()};
  RelayError re = co_await RelayMessage<false>(*up, up_buf, *resp, stream_, buf,
                                               ctx_.config->timeouts.body_idle,
                                               rs.bytes_out, no_body, prefix);
  if (re.ec) {
    // The head is already on its way to the client: all we can do is close.
    rs.outcome = re.reading ? (re.ec == beast::error::timeout
                                   ? RequestOutcome::kUpstreamTimeout
                                   : RequestOutcome::kUpstreamError)
                            : RequestOutcome::kClientTimeout;
    co_return false;
  }
  if (upstream_keep && resp->is_done() && up_buf.size() == 0) {
    ctx_.pool->Put(pool_key, std::move(up));
  }
  co_return rs.client_keep_alive;
}

}  // namespace sluice
