#include "proxy/session.h"

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
#include "common/duration.h"
#include "proxy/access_log.h"
#include "proxy/http_head.h"
#include "proxy/http_relay.h"
#include "proxy/keyed_limiter.h"
#include "proxy/limit_gate.h"
#include "proxy/metrics.h"
#include "proxy/resolver.h"
#include "proxy/router.h"
#include "proxy/tunnel.h"
#include "proxy/upstream_pool.h"

namespace sluice {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kCrlfCrlf = "\r\n\r\n";

std::string_view Sv(beast::string_view s) { return {s.data(), s.size()}; }

}  // namespace

// Per-request state, alive for one request/response exchange.
struct RequestState {
  std::optional<http::request_parser<http::buffer_body>> parser;
  TimePoint start{};
  unsigned client_version = 11;
  bool client_keep_alive = true;
  bool body_pending = false;  // request body not (fully) read from client
  std::string method;
  std::string host;
  uint16_t port = 80;
  std::string path;  // without query: never logged with secrets
  std::string route = "unmatched";
  std::optional<size_t> route_index;
  std::string limit;
  LimitRuntime* limit_rt = nullptr;
  RequestOutcome outcome = RequestOutcome::kBadRequest;
  unsigned status = 0;
  bool limited_by_sluice = false;
  bool keep_after_reject = false;  // connection reusable after a local 429
  Duration wait{};
  Duration upstream_time{};
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

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
      stream_.expires_after(first ? ctx_.config->timeouts.header_read
                                  : ctx_.config->timeouts.client_idle);
      auto [ec, n] = co_await stream_.async_read_some(
          buffer_.prepare(std::min<size_t>(16384, buffer_.max_size())),
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
  stream_.expires_never();
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
  const TimePoint sent_at = ctx_.clock->Now();
  beast::flat_buffer up_buf;
  std::optional<http::response_parser<http::buffer_body>> resp;
  for (int attempt = 0;; ++attempt) {
    if (expect_continue && rs.body_pending && attempt == 0) {
      // The origin sees no Expect; sluice invites the body itself once the
      // request has passed the limiter and the origin is connected.
      static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(ctx_.config->timeouts.body_idle);
      auto [cec, cn] =
          co_await asio::async_write(stream_, asio::buffer(k100), kNoThrow);
      if (cec) co_return false;
    }
    RelayError re = co_await RelayMessage<true>(
        stream_, buffer_, *rs.parser, *up, buf, ctx_.config->timeouts.body_idle,
        rs.bytes_in, false);
    if (re.ec) {
      if (re.reading) {
        rs.outcome = re.ec == beast::error::timeout
                         ? RequestOutcome::kClientTimeout
                         : RequestOutcome::kBadRequest;
        const unsigned st = re.ec == beast::error::timeout ? 408 : 400;
        std::string detail = "request body: " + re.ec.message();
        co_return co_await SendError(rs, st, "bad_body", std::move(detail));
      }
      if (reused && attempt == 0 && rs.bytes_in == 0 && rs.parser->is_done()) {
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

  auto& res = resp->get();
  const unsigned code = res.result_int();
  rs.status = code;
  ctx_.metrics->OnUpstreamStatus(code);
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

  RelayError re = co_await RelayMessage<false>(*up, up_buf, *resp, stream_, buf,
                                               ctx_.config->timeouts.body_idle,
                                               rs.bytes_out, no_body);
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
                                     ctx_.config->timeouts.connect);
  ctx_.metrics->ObserveConnect(ctx_.clock->Now() - t0,
                               d.stream ? "" : d.reason);
  if (!d.stream) {
    rs.outcome = d.status == 403   ? RequestOutcome::kDeniedSsrf
                 : d.status == 504 ? RequestOutcome::kUpstreamTimeout
                                   : RequestOutcome::kUpstreamError;
    co_return co_await SendError(rs, d.status, d.reason, d.detail);
  }
  std::string ok = rs.client_version == 10
                       ? "HTTP/1.0 200 Connection established\r\n\r\n"
                       : "HTTP/1.1 200 Connection established\r\n\r\n";
  stream_.expires_after(ctx_.config->timeouts.body_idle);
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
  TunnelStats stats = co_await RelayTunnel(stream_, *d.stream,
                                           ctx_.config->timeouts.tunnel_idle,
                                           ctx_.config->limits.buffer_bytes);
  ctx_.metrics->OnTunnelClosed();
  rs.bytes_in += stats.client_to_upstream;
  rs.bytes_out += stats.upstream_to_client;
  co_return false;
}

asio::awaitable<bool> Session::ApplyLimit(RequestState& rs) {
  auto match = ctx_.router->Find(rs.host, rs.path, rs.method);
  if (!match) co_return true;
  rs.route_index = match->index;
  rs.route = RouteLabel(*match->route, match->index);
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
  LimitGate::Result r = co_await ctx_.gate->Acquire(*limiter, cost, max_wait);
  ctx_.metrics->OnQueueDepth(rs.limit, limiter->queue_depth());
  rs.wait = r.waited;
  switch (r.outcome) {
    case AcquireOutcome::kAdmitted:
      ctx_.metrics->OnAdmitted(rs.limit, r.waited);
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

std::string Session::RouteLabel(const RouteConfig& route, size_t index) {
  std::string label = route.host.empty() ? "*" : route.host;
  label += route.path_prefix;
  return label;
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
  // If the client's body was not read, the connection's framing is lost.
  bool keep = rs.client_keep_alive && !rs.body_pending && rs.parser &&
              !close_requested_ && !ctx_.draining.load() &&
              res.result_int() != 408 && res.result_int() != 400 &&
              res.result_int() != 431 && res.result_int() != 414;
  res.version(11);
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(keep);
  res.prepare_payload();
  rs.bytes_out += res.body().size();
  stream_.expires_after(ctx_.config->timeouts.body_idle);
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
