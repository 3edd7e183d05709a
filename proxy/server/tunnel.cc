#include "proxy/server/tunnel.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <vector>

#include "proxy/io/await.h"

namespace sluice {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

// Copies from `from` to `to` until EOF or error; records activity.
asio::awaitable<void> Pump(tcp::socket& from, tcp::socket& to,
                           size_t buffer_bytes, uint64_t& counter,
                           TimePoint& last, Clock* clock) {
  std::vector<char> buf(buffer_bytes);
  for (;;) {
    auto [rec, n] = co_await from.async_read_some(
        asio::buffer(buf.data(), buf.size()), kNoThrow);
    if (n > 0) {
      last = clock->Now();
      auto [wec, wn] =
          co_await asio::async_write(to, asio::buffer(buf.data(), n), kNoThrow);
      counter += wn;
      last = clock->Now();
      if (wec) break;
    }
    if (rec) break;
  }
  // Half-close: tell the other side no more bytes are coming this way.
  boost::system::error_code ignored;
  to.shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<bool> Watchdog(const TimePoint& last, Duration idle,
                               Clock* clock) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto tick = std::max<Duration>(idle / 4, std::chrono::milliseconds(10));
  for (;;) {
    timer.expires_after(tick);
    auto [ec] = co_await timer.async_wait(kNoThrow);
    if (ec) co_return false;  // cancelled: the relay finished first
    if (clock->Now() - last >= idle) co_return true;
  }
}

}  // namespace

asio::awaitable<TunnelStats> RelayTunnel(boost::beast::tcp_stream& client,
                                         boost::beast::tcp_stream& upstream,
                                         Duration idle, size_t buffer_bytes,
                                         Clock* clock) {
  TunnelStats stats;
  client.expires_never();
  upstream.expires_never();
  auto last = clock->Now();
  auto result =
      co_await ((Pump(client.socket(), upstream.socket(), buffer_bytes,
                      stats.client_to_upstream, last, clock) &&
                 Pump(upstream.socket(), client.socket(), buffer_bytes,
                      stats.upstream_to_client, last, clock)) ||
                Watchdog(last, idle, clock));
  if (result.index() == 1) stats.idle_timeout = std::get<1>(result);
  boost::system::error_code ignored;
  client.socket().close(ignored);
  upstream.socket().close(ignored);
  co_return stats;
}

}  // namespace sluice
