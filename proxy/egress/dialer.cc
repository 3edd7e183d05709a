#include "proxy/egress/dialer.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <vector>

#include "proxy/io/await.h"

namespace sluice {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

IpAddress FromAsio(const asio::ip::address& a) {
  if (a.is_v4()) return IpAddress::V4(a.to_v4().to_uint());
  return IpAddress::V6(a.to_v6().to_bytes());
}

asio::ip::address ToAsio(const IpAddress& ip) {
  if (ip.v4) {
    asio::ip::address_v4::bytes_type b;
    std::copy_n(ip.bytes.begin(), 4, b.begin());
    return asio::ip::address_v4(b);
  }
  asio::ip::address_v6::bytes_type b;
  std::copy_n(ip.bytes.begin(), 16, b.begin());
  return asio::ip::address_v6(b);
}

DialResult Fail(DialError error, std::string detail) {
  DialResult r;
  r.error = error;
  r.detail = std::move(detail);
  return r;
}

}  // namespace

std::string_view DialResult::reason() const {
  if (error == DialError::kDenied) return DenyReasonName(denial);
  return DialErrorName(error);
}

asio::awaitable<DialResult> DialOrigin(const std::string& host, uint16_t port,
                                       const SsrfGuard& guard, Duration timeout,
                                       Clock* clock) {
  auto ex = co_await asio::this_coro::executor;
  const TimePoint deadline = clock->Now() + timeout;

  std::vector<tcp::endpoint> candidates;
  HostLiteral literal = ParseHostLiteral(host);
  if (literal.kind == HostKind::kInvalid) {
    co_return Fail(DialError::kBadHost,
                   "the host looks numeric but is not a valid address");
  }
  if (literal.kind == HostKind::kAddress) {
    candidates.emplace_back(ToAsio(literal.address), port);
  } else {
    tcp::resolver resolver(ex);
    asio::steady_timer timer(ex, timeout);
    auto which = co_await (
        resolver.async_resolve(host, std::to_string(port), kNoThrow) ||
        timer.async_wait(kNoThrow));
    if (which.index() == 1) {
      co_return Fail(DialError::kDnsTimeout, "timed out resolving " + host);
    }
    auto [ec, results] = std::get<0>(std::move(which));
    if (ec) {
      co_return Fail(DialError::kDns,
                     "could not resolve " + host + ": " + ec.message());
    }
    for (const auto& entry : results) candidates.push_back(entry.endpoint());
  }

  // Classify every address; dial only the ones that passed.
  std::vector<tcp::endpoint> allowed;
  DenyReason first_denial = DenyReason::kNone;
  for (const auto& ep : candidates) {
    DenyReason why = guard.Check(FromAsio(ep.address()), ep.port());
    if (why == DenyReason::kNone) {
      allowed.push_back(ep);
    } else if (first_denial == DenyReason::kNone) {
      first_denial = why;
    }
  }
  if (allowed.empty()) {
    if (first_denial == DenyReason::kNone) {
      co_return Fail(DialError::kDns, "no addresses for " + host);
    }
    DialResult r =
        Fail(DialError::kDenied, "destination address is not allowed");
    r.denial = first_denial;
    co_return r;
  }

  auto stream = std::make_unique<beast::tcp_stream>(ex);
  const Duration remaining = deadline - clock->Now();
  if (remaining <= Duration::zero()) {
    co_return Fail(DialError::kConnectTimeout,
                   "timed out connecting to " + host);
  }
  stream->expires_after(remaining);
  auto [ec, ep] = co_await stream->async_connect(allowed, kNoThrow);
  if (ec == beast::error::timeout) {
    co_return Fail(DialError::kConnectTimeout,
                   "timed out connecting to " + host);
  }
  if (ec) {
    co_return Fail(ec == asio::error::connection_refused ? DialError::kRefused
                                                         : DialError::kConnect,
                   "could not connect to " + host + ": " + ec.message());
  }
  stream->expires_never();
  boost::system::error_code ignored;
  stream->socket().set_option(tcp::no_delay(true), ignored);
  DialResult ok;
  ok.peer = ep.address().to_string() + ":" + std::to_string(ep.port());
  ok.stream = std::move(stream);
  co_return ok;
}

}  // namespace sluice
