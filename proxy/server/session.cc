#include "proxy/server/session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <optional>
#include <vector>

#include "absl/strings/numbers.h"
#include "common/time/duration.h"
#include "proxy/http/http_head.h"
#include "proxy/http/http_rules.h"
#include "proxy/http/router.h"
#include "proxy/limit/keyed_limiter.h"
#include "proxy/limit/limit_gate.h"
#include "proxy/pause/bucket_pause.h"
#include "proxy/server/relay_buffer_cache.h"
#include "proxy/server/session_request.h"
#include "proxy/stats/access_log.h"
#include "proxy/stats/pause_metrics.h"
#include "proxy/stats/proxy_metrics.h"

namespace sluice {

namespace {

constexpr std::string_view kCrlfCrlf = "\r\n\r\n";

}  // namespace

Session::Session(tcp::socket socket, ProxyContext& ctx)
    : ctx_(ctx),
      stream_(std::move(socket)),
      head_timer_(stream_.get_executor()) {
  boost::system::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  if (!ec)
    client_addr_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  ctx_.connections.fetch_add(1);
  ctx_.metrics->OnConnectionOpened();
}

Session::~Session() {
  ctx_.connections.fetch_sub(1);
  ctx_.metrics->OnConnectionClosed();
}

void Session::Start() {
  asio::co_spawn(
      stream_.get_executor(),
      [self = shared_from_this()] { return self->Run(); },
      [](std::exception_ptr e) {
        // Nothing may escape a session; record and drop.
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            spdlog::error("session failed: {}", ex.what());
          } catch (...) {
            spdlog::error("session failed: unknown exception");
          }
        }
      });
}

void Session::Close(bool force) {
  asio::post(stream_.get_executor(), [self = shared_from_this(), force] {
    self->close_requested_ = true;
    if (force || self->idle_) {
      boost::system::error_code ec;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      self->stream_.socket().close(ec);
    }
  });
}

asio::awaitable<void> Session::Run() {
  buffer_.max_size(ctx_.config->limits.max_header_bytes +
                   ctx_.config->limits.buffer_bytes);
  bool first = true;
  for (;;) {
    RequestState rs;
    // Wait for the first byte of the next request.
    if (buffer_.size() == 0) {
      idle_ = true;
      if (close_requested_ || ctx_.draining.load()) break;
      // An idle connection keeps no buffer it does not need: a kept-alive
      // tunnel may wait for minutes, and a sidecar may hold thousands.
      RelayBufferCache::Give(std::move(relay_buf_),
                             ctx_.config->limits.buffer_bytes);
      if (buffer_.capacity() > kIdleReadBytes) buffer_.shrink_to_fit();
      stream_.tcp().expires_after(first ? ctx_.config->timeouts.header_read
                                        : ctx_.config->timeouts.client_idle);
      auto [ec, n] = co_await stream_.async_read_some(
          buffer_.prepare(std::min<size_t>(kIdleReadBytes, buffer_.max_size())),
          kNoThrow);
      buffer_.commit(n);
      idle_ = false;
      if (ec || n == 0) break;  // closed, idle timeout or shutdown
    }
    idle_ = false;
    first = false;
    rs.start = ctx_.clock->Now();
    if (!co_await ReadHead(rs)) {
      if (rs.status != 0) Finish(rs);
      break;
    }
    auto& req = rs.parser->get();
    bool keep;
    if (req.method() == http::verb::connect) {
      keep = co_await HandleConnect(rs);
    } else {
      keep = co_await HandleForward(rs);
    }
    Finish(rs);
    if (!keep || close_requested_ || ctx_.draining.load()) break;
  }
  boost::system::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.socket().close(ec);
}

void Session::ArmHeadDeadline(Duration d) {
  const uint64_t gen = ++head_gen_;
  head_timed_out_ = false;
  head_timer_.expires_after(d);
  // Runs on the session's strand (the timer shares its executor).
  head_timer_.async_wait(
      [weak = weak_from_this(), gen](boost::system::error_code ec) {
        auto self = weak.lock();
        if (ec || !self || self->head_gen_ != gen) return;
        self->head_timed_out_ = true;
        boost::system::error_code ignored;
        self->stream_.socket().cancel(ignored);
      });
}

void Session::DisarmHeadDeadline() {
  ++head_gen_;
  head_timer_.cancel();
}

asio::awaitable<bool> Session::ReadHead(RequestState& rs) {
  const auto& limits = ctx_.config->limits;
  stream_.tcp().expires_never();
  ArmHeadDeadline(ctx_.config->timeouts.header_read);
  struct Disarm {
    Session* s;
    ~Disarm() { s->DisarmHeadDeadline(); }
  } disarm{this};
  size_t scanned = 0;
  size_t head_len = 0;
  for (;;) {
    std::string_view data(static_cast<const char*>(buffer_.data().data()),
                          buffer_.size());
    size_t from = scanned >= 3 ? scanned - 3 : 0;
    size_t pos = data.find(kCrlfCrlf, from);
    if (pos != std::string_view::npos) {
      head_len = pos + kCrlfCrlf.size();
      break;
    }
    // A line that ends in a bare LF never ends the head: the head rules
    // run on each new part at once rather than wait for the head deadline
    // (RFC 9112 lets a recipient refuse it; a proxy that guessed where such
    // a head ends could be smuggled past). The part starts two bytes back,
    // past a LF already checked, so a CRLF or a fold split across reads is
    // seen whole.
    size_t part = scanned >= 2 ? scanned - 2 : 0;
    if (part < data.size() && part > 0 && data[part] == '\n') ++part;
    if (auto bad = CheckRawRequestHead(data.substr(part))) {
      co_await SendError(rs, bad->status, bad->reason, bad->detail);
      co_return false;
    }
    scanned = data.size();
    if (data.size() > limits.max_header_bytes) {
      HttpRuleError e = OversizedHeadError(data, limits.max_uri_bytes);
      co_await SendError(rs, e.status, e.reason, e.detail);
      co_return false;
    }
    size_t room = limits.max_header_bytes + kCrlfCrlf.size() + 1 - data.size();
    auto [ec, n] = co_await stream_.async_read_some(
        buffer_.prepare(std::min<size_t>(room, 16384)), kNoThrow);
    buffer_.commit(n);
    if (head_timed_out_) {
      DisarmHeadDeadline();
      rs.outcome = RequestOutcome::kClientTimeout;
      co_await SendError(rs, 408, "header_timeout",
                         "the request head did not arrive in time");
      co_return false;
    }
    if (ec) co_return false;
  }
  std::string_view head(static_cast<const char*>(buffer_.data().data()),
                        head_len);
  if (head_len > limits.max_header_bytes + kCrlfCrlf.size()) {
    HttpRuleError e = OversizedHeadError(head, limits.max_uri_bytes);
    co_await SendError(rs, e.status, e.reason, e.detail);
    co_return false;
  }
  rs.parser.emplace();
  if (auto bad = ParseRequestHead(head, limits.max_uri_bytes, *rs.parser)) {
    co_await SendError(rs, bad->status, bad->reason, bad->detail);
    co_return false;
  }
  buffer_.consume(head.size());
  auto& req = rs.parser->get();
  rs.method = std::string(Sv(req.method_string()));
  rs.client_version = req.version();
  rs.client_keep_alive = rs.parser->keep_alive() && req.version() >= 11;
  rs.body_pending = !rs.parser->is_done();
  co_return true;
}

asio::awaitable<bool> Session::ApplyLimit(RequestState& rs) {
  auto match = ctx_.router->Find(rs.host, rs.path, rs.method, rs.scheme);
  if (!match) co_return true;
  rs.route_index = match->index;
  rs.route = RouteLabel(*match->route);
  LimitRuntime* lr = ctx_.route_limits[match->index];
  if (!lr) co_return true;
  rs.limit_rt = lr;
  rs.limit = lr->config->name;
  const LimitConfig& lc = *lr->config;
  auto& req = rs.parser->get();

  double cost = lc.cost;
  if (!lc.cost_header.empty()) {
    auto it = req.find(lc.cost_header);
    double v = 0;
    if (it != req.end() &&
        absl::SimpleAtod(
            absl::string_view(it->value().data(), it->value().size()), &v) &&
        std::isfinite(v) && v >= 0) {
      cost = std::min(v, lc.EffectiveMaxCost());
    }
  }
  Duration max_wait = lc.max_wait;
  if (!ctx_.config->headers.max_wait.empty()) {
    auto it = req.find(ctx_.config->headers.max_wait);
    if (it != req.end()) {
      auto d = ParseConfigDuration(Sv(it->value()));
      if (d.ok() && *d < max_wait) max_wait = *d;  // shorten, never lengthen
    }
  }
  RateLimiter* limiter = lr->shared.get();
  std::shared_ptr<RateLimiter> keyed;  // keeps a per-key limiter alive
  if (lr->keyed) {
    auto it = req.find(lc.per_key->header);
    std::string_view key =
        it == req.end() ? std::string_view() : Sv(it->value());
    keyed = lr->keyed->GetOrCreate(key, ctx_.clock->Now());
    limiter = keyed.get();
    if (!limiter) {
      rs.outcome = RequestOutcome::kLimitedKeyOverflow;
      rs.keep_after_reject =
          co_await SendLimited(rs, "key_overflow", std::chrono::seconds(1));
      co_return false;
    }
  }
  const bool paused_at_entry =
      limiter->pause() && limiter->pause()->PhaseAt(ctx_.clock->Now()) ==
                              PauseSchedule::Phase::kPaused;
  LimitGate::Result r = co_await ctx_.gate->Acquire(*limiter, cost, max_wait);
  const TimePoint now = ctx_.clock->Now();
  rs.quota_mode = lr->QuotaMode(now, limiter);
  ctx_.metrics->OnQueueDepth(rs.limit, limiter->queue_depth());
  rs.wait = r.waited;
  if (r.outcome == AcquireOutcome::kAdmitted) {
    ctx_.metrics->OnAdmitted(rs.limit, r.waited);
    rs.pause = limiter->pause();
    rs.admitted_at = now;
    if (ctx_.config->routes[match->index].retry.on_throttle) {
      // Only a route with transparent retry may queue this request again.
      rs.limiter = keyed ? keyed : lr->shared;
      rs.cost = cost;
      rs.deadline = rs.start + max_wait;
    }
    if (paused_at_entry) ctx_.pause_metrics->OnHeld(rs.limit);
    co_return true;
  }
  if (const auto& t = limiter->pause()) {
    // Refused while the upstream is paused: the app is told to come back
    // when the pause ends, not when a token would have.
    const Duration pause_left = t->Remaining(now);
    if (pause_left > Duration::zero()) {
      r.retry_after = std::max(r.retry_after, pause_left);
      ctx_.pause_metrics->OnShed(rs.limit);
    }
  }
  switch (r.outcome) {
    case AcquireOutcome::kAdmitted:
      co_return true;
    case AcquireOutcome::kQueued:  // not returned by the gate
    case AcquireOutcome::kRejectedWait:
      rs.outcome = RequestOutcome::kLimitedWaitExceeded;
      rs.keep_after_reject =
          co_await SendLimited(rs, "wait_exceeded", r.retry_after);
      co_return false;
    case AcquireOutcome::kRejectedQueueFull:
      rs.outcome = RequestOutcome::kLimitedQueueFull;
      rs.keep_after_reject =
          co_await SendLimited(rs, "queue_full", r.retry_after);
      co_return false;
    case AcquireOutcome::kRejectedTooCostly:
      rs.outcome = RequestOutcome::kLimitedTooCostly;
      rs.keep_after_reject =
          co_await SendLimited(rs, "too_costly", r.retry_after);
      co_return false;
  }
  co_return false;
}

asio::awaitable<bool> Session::SendLimited(RequestState& rs, std::string reason,
                                           Duration retry_after) {
  rs.limited_by_sluice = true;
  ctx_.metrics->OnRejected(rs.limit, reason);
  // "Never" (no prediction) is reported as an hour: still a valid header.
  retry_after = std::clamp<Duration>(retry_after, Duration::zero(),
                                     std::chrono::hours(1));
  const auto ms =
      std::chrono::ceil<std::chrono::milliseconds>(retry_after).count();
  const auto secs = std::max<int64_t>(1, (ms + 999) / 1000);
  http::response<http::string_body> res{http::status::too_many_requests,
                                        rs.client_version};
  res.set(http::field::retry_after, std::to_string(secs));
  res.set("x-sluice-limited", "local");
  // The OpenAI and Anthropic SDKs honour this: sluice already waited (or
  // knows the wait), so the SDK should not retry on its own as well.
  res.set("x-should-retry", "false");
  res.set("x-sluice-retry-after-ms", std::to_string(ms));
  res.set("x-sluice-limit", rs.limit);
  boost::json::object body;
  body["error"] = "rate_limited";
  body["reason"] = reason;
  body["limit"] = rs.limit;
  body["route"] = rs.route;
  body["retry_after_ms"] = ms;
  body["limited_by"] = "sluice";
  res.body() = boost::json::serialize(body) + "\n";
  rs.status = 429;
  co_return co_await SendResponse(rs, res);
}

asio::awaitable<bool> Session::SendError(RequestState& rs, unsigned status,
                                         std::string reason,
                                         std::string detail) {
  if (rs.outcome == RequestOutcome::kForwarded) {
    rs.outcome = RequestOutcome::kUpstreamError;
  }
  http::response<http::string_body> res{static_cast<http::status>(status),
                                        rs.client_version};
  boost::json::object body;
  body["error"] = std::string(http::obsolete_reason(res.result()));
  body["reason"] = reason;
  body["detail"] = detail;
  body["proxy"] = "sluice";
  res.set("x-sluice-error", reason);
  res.body() = boost::json::serialize(body) + "\n";
  rs.status = status;
  co_return co_await SendResponse(rs, res);
}

asio::awaitable<bool> Session::SendResponse(
    RequestState& rs, http::response<http::string_body>& res) {
  if (rs.answered) co_return false;
  // If the client's body was not read, the connection's framing is lost.
  bool keep = rs.client_keep_alive && !rs.body_pending && rs.parser &&
              !close_requested_ && !ctx_.draining.load() &&
              res.result_int() != 408 && res.result_int() != 400 &&
              res.result_int() != 431 && res.result_int() != 414;
  if (!rs.quota_mode.empty()) {
    res.set("x-sluice-quota",
            beast::string_view(rs.quota_mode.data(), rs.quota_mode.size()));
  }
  res.version(11);
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(keep);
  res.prepare_payload();
  rs.bytes_out += res.body().size();
  stream_.tcp().expires_after(ctx_.config->timeouts.body_idle);
  auto [ec, n] = co_await http::async_write(stream_, res, kNoThrow);
  if (ec) co_return false;
  co_return keep;
}

void Session::Finish(RequestState& rs) {
  const TimePoint end = ctx_.clock->Now();
  ctx_.metrics->OnRequest(rs.route, rs.outcome);
  ctx_.metrics->OnBytes(rs.bytes_in, rs.bytes_out);
  if (!ctx_.access_log) return;
  AccessRecord rec;
  rec.method = rs.method;
  rec.host = rs.host;
  rec.path = rs.path;
  rec.route = rs.route;
  rec.limit = rs.limit;
  rec.status = static_cast<int>(rs.status);
  rec.outcome = OutcomeName(rs.outcome);
  rec.wait = rs.wait;
  rec.upstream_duration = rs.upstream_time;
  rec.total_duration = end - rs.start;
  rec.bytes_in = rs.bytes_in;
  rec.bytes_out = rs.bytes_out;
  rec.client = client_addr_;
  rec.limited_by_sluice = rs.limited_by_sluice;
  ctx_.access_log->Write(rec);
}

}  // namespace sluice
