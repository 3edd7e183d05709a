// The pause's side of Session::HandleForward (docs/pause.md): classifying
// the upstream's answers, with a look at the start of a throttle's body when
// an ignore rule has a body marker, and the body copy and the decision of a
// transparent retry.

#include <boost/beast/http.hpp>
#include <vector>

#include "absl/strings/ascii.h"
#include "proxy/pause/bucket_pause.h"
#include "proxy/pause/throttle_rules.h"
#include "proxy/server/http_relay.h"
#include "proxy/server/session.h"
#include "proxy/server/session_request.h"
#include "proxy/stats/pause_metrics.h"

namespace sluice {
namespace {

bool RetriesMethod(const RetryConfig& retry, http::verb method) {
  if (retry.all_methods) return true;
  switch (method) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::options:
    case http::verb::put:
    case http::verb::delete_:
    case http::verb::trace:
      return true;
    default:
      return false;
  }
}

}  // namespace

bool Session::WantsBodyCopy(const RequestState& rs) const {
  if (!rs.body_pending || !rs.route_index || !rs.limiter || !rs.pause) {
    return false;  // nothing to send again, or throttles are not read
  }
  const RetryConfig& retry = ctx_.config->routes[*rs.route_index].retry;
  if (!retry.on_throttle || !RetriesMethod(retry, rs.parser->get().method())) {
    return false;
  }
  const boost::optional<uint64_t> length = rs.parser->content_length();
  if (length) return *length <= retry.max_body_bytes;
  return rs.parser->chunked();
}

asio::awaitable<beast::error_code> Session::CopyRequestBody(RequestState& rs) {
  const size_t max = ctx_.config->routes[*rs.route_index].retry.max_body_bytes;
  // A known length is read exactly; a chunked body gets one byte more than
  // the limit, which tells a body that ends at the limit from a longer one.
  const boost::optional<uint64_t> length = rs.parser->content_length();
  rs.body_copy.resize(length ? static_cast<size_t>(*length) : max + 1);
  const PrefixRead pr = co_await ReadBodyPrefix<true>(
      {.from = stream_,
       .from_buf = buffer_,
       .parser = *rs.parser,
       .dst = {rs.body_copy.data(), rs.body_copy.size()},
       .timeout = ctx_.config->timeouts.body_idle,
       .per_read = true,
       .read_deadline = &body_deadline_});
  DisarmHeadDeadline();
  rs.body_copy.resize(pr.size);
  rs.bytes_in += pr.size;
  if (!pr.ec && rs.parser->is_done() && pr.size <= max) {
    rs.body_pending = false;
  }
  co_return pr.ec;
}

std::string_view Session::RetryRefusal(const RequestState& rs,
                                       http::verb method, int sends) const {
  if (!rs.route_index || !rs.limiter) return "off";
  const RetryConfig& retry = ctx_.config->routes[*rs.route_index].retry;
  if (!retry.on_throttle) return "off";
  if (!RetriesMethod(retry, method)) return "method";
  if (rs.body_streamed) return "body";
  if (sends >= retry.max_attempts) return "attempts";
  if (ctx_.clock->Now() >= rs.deadline) return "deadline";
  return "";
}

void Session::NoteAnswered(RequestState& rs,
                           const http::response_header<>& head, TimePoint now) {
  rs.pause->OnAnswered(rs.admitted_at, now);
  if (!rs.pause->WantsStatedLimit(now)) return;
  std::vector<HeaderRef> headers;
  for (const auto& f : head) {
    // Only limit headers matter: skip the parse when there are none.
    if (beast::string_view name = f.name_string();
        name.size() >= 9 &&
        absl::AsciiStrToLower(absl::string_view(name.data(), name.size()))
                .find("ratelimit") != std::string::npos) {
      headers.push_back(HeaderRef{Sv(name), Sv(f.value())});
    }
  }
  if (headers.empty()) return;
  if (auto stated = StatedLimitOf(rs.limit_rt->config->throttle, headers,
                                  ctx_.clock->WallNow())) {
    rs.pause->NoteStatedLimit(BucketPause::StatedLimit{
        .limit = stated->limit, .window = stated->window});
  }
}

asio::awaitable<Session::UpstreamAnswer> Session::NoteUpstreamAnswer(
    RequestState& rs, MaybeTlsStream& up, beast::flat_buffer& up_buf,
    http::response_parser<http::buffer_body>& resp) {
  UpstreamAnswer out;
  rs.response_prefix.clear();
  const ThrottleConfig& tc = rs.limit_rt->config->throttle;
  const int code = static_cast<int>(resp.get().result_int());
  if (!MayBeThrottle(tc, code)) {
    NoteAnswered(rs, resp.get(), ctx_.clock->Now());
    co_return out;
  }
  std::vector<HeaderRef> headers;
  headers.reserve(24);
  for (const auto& f : resp.get()) {
    headers.push_back(HeaderRef{Sv(f.name_string()), Sv(f.value())});
  }
  const absl::Time wall = ctx_.clock->WallNow();
  ThrottleVerdict v = ClassifyResponse(tc, code, headers, wall);
  if (v.wants_body) {
    // Only a throttle that a body marker could excuse is read ahead; the
    // head's fields stay valid while the parser reads the body.
    rs.response_prefix.resize(tc.body_peek_bytes);
    const PrefixRead pr = co_await ReadBodyPrefix<false>(
        {.from = up,
         .from_buf = up_buf,
         .parser = resp,
         .dst = {rs.response_prefix.data(), rs.response_prefix.size()},
         .timeout = ctx_.config->timeouts.upstream_response});
    rs.response_prefix.resize(pr.size);
    out.body_ec = pr.ec;
    // A body that stopped early is judged by what arrived.
    v = ClassifyResponse(tc, code, headers, wall,
                         std::string_view(rs.response_prefix));
    std::string_view result = "failed";
    if (!pr.ec) result = v.throttled() ? "no_marker" : "marker";
    ctx_.pause_metrics->OnBodyPeek(rs.limit, result);
  }
  const TimePoint now = ctx_.clock->Now();
  if (!v.throttled()) {
    if (v.kind == ThrottleVerdict::Kind::kIgnored) {
      ctx_.pause_metrics->OnThrottle(rs.limit, "ignored");
    }
    NoteAnswered(rs, resp.get(), now);
    co_return out;
  }
  ctx_.pause_metrics->OnThrottle(rs.limit, v.reason);
  rs.pause->OnThrottled(
      {.status = static_cast<uint32_t>(code),
       .hint = v.hint,
       .reason = v.reason,
       .broadcast = v.kind == ThrottleVerdict::Kind::kBroadcast,
       .admitted_at = rs.admitted_at,
       .limit = v.limit,
       .window = v.window},
      now);
  out.throttled = true;
  co_return out;
}

}  // namespace sluice
