#ifndef SLUICE_PROXY_SERVER_SESSION_REQUEST_H_
#define SLUICE_PROXY_SERVER_SESSION_REQUEST_H_

// Internal to the Session implementation (session*.cc): the state of one
// request/response exchange and small helpers shared by those files.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/time/clock.h"
#include "proxy/io/await.h"
#include "proxy/server/proxy_context.h"
#include "proxy/stats/proxy_metrics.h"

namespace sluice {

// Shorthands for session*.cc, the only files that include this header.
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

inline std::string_view Sv(beast::string_view s) {
  return {s.data(), s.size()};
}

// Per-request state, alive for one request/response exchange.
class BucketPause;
class RateLimiter;

struct RequestState {
  std::optional<
      boost::beast::http::request_parser<boost::beast::http::buffer_body>>
      parser;
  TimePoint start{};
  unsigned client_version = 11;
  bool client_keep_alive = true;
  bool body_pending = false;  // request body not (fully) read from client
  // The client sent "Expect: 100-continue": sluice sends the 100 itself
  // once the request has been admitted and the origin is connected.
  bool expect_continue = false;
  std::string method;
  std::string host;
  uint16_t port = 80;
  std::string path;  // without query: never logged with secrets
  // How the request reached sluice: plain http://, or inside an
  // intercepted https:// tunnel.
  RouteScheme scheme = RouteScheme::kHttp;
  // The origin is reached over TLS: the request came from an intercepted
  // tunnel, or its route originates TLS.
  bool origin_tls = false;
  std::string route = "unmatched";
  std::optional<size_t> route_index;
  std::string limit;
  LimitRuntime* limit_rt = nullptr;
  // The admitted bucket's pause state (null when throttles are not handled)
  // and when the request was admitted: the upstream's answer is fed back.
  std::shared_ptr<BucketPause> pause;
  TimePoint admitted_at{};
  // What a transparent retry needs to queue again: the limiter (kept alive:
  // a per-key one may be evicted otherwise), the cost and the deadline of
  // the request's max wait.
  std::shared_ptr<RateLimiter> limiter;
  double cost = 1;
  TimePoint deadline{};
  // The request body read into memory (retry routes, at most
  // retry.max_body_bytes + 1 bytes): all of it, sent again on each pass, or
  // the start of a body too large to keep, relayed once before the rest.
  std::string body_copy;
  // A body went (or is going) upstream without a full copy: never retried.
  bool body_streamed = false;
  // The first bytes of a throttle's body, read to look for an ignore rule's
  // marker (throttle.body_peek_bytes at most); relayed before the rest.
  std::string response_prefix;
  // x-sluice-quota for every response to this request; "" when the limit
  // is not leased. Points at a static string (LeaseModeName).
  std::string_view quota_mode;
  RequestOutcome outcome = RequestOutcome::kBadRequest;
  unsigned status = 0;
  bool limited_by_sluice = false;
  bool keep_after_reject = false;  // connection reusable after a local 429
  // The client already has a response (a CONNECT's 200): no other may be
  // written; an error closes the connection instead.
  bool answered = false;
  Duration wait{};
  Duration upstream_time{};
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_SERVER_SESSION_REQUEST_H_
