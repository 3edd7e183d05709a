#include "proxy/server/tunnel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <functional>
#include <optional>
#include <string>

#include "common/time/clock.h"
#include "proxy/io/await.h"
#include "tests/testing/wait_for.h"

namespace sluice {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// A FakeClock that counts its reads. While no byte moves, only the
// tunnel's watchdog reads it, once each time it looks.
class CountingClock final : public Clock {
 public:
  TimePoint Now() const override {
    reads_.fetch_add(1, std::memory_order_relaxed);
    return fake_.Now();
  }
  absl::Time WallNow() const override { return fake_.WallNow(); }
  void Advance(Duration d) { fake_.Advance(d); }
  int reads() const { return reads_.load(std::memory_order_relaxed); }

 private:
  FakeClock fake_;
  mutable std::atomic<int> reads_{0};
};

// Two loopback connections: app <-> client_side and upstream_side <->
// origin. The tunnel under test joins client_side and upstream_side.
class TunnelTest : public ::testing::Test {
 protected:
  TunnelTest()
      : acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)),
        app_(io_),
        origin_(io_),
        client_side_(io_),
        upstream_side_(io_) {
    app_.connect(acceptor_.local_endpoint());
    client_side_.socket() = acceptor_.accept();
    origin_.connect(acceptor_.local_endpoint());
    upstream_side_.socket() = acceptor_.accept();
  }

  void StartTunnel(Duration idle, size_t buffer_bytes, Clock* clock) {
    asio::co_spawn(
        io_,
        RelayTunnel(client_side_, upstream_side_, idle, buffer_bytes, clock),
        [this](std::exception_ptr e, TunnelStats s) {
          ASSERT_FALSE(e);
          stats_ = s;
        });
  }

  // Runs the io's ready handlers until `done` holds (true), for at most
  // test::kWaitDeadline of real time (false). The watchdog's timer is
  // Asio's, on real time: its looks come every 10 ms here.
  bool RunUntil(const std::function<bool()>& done) {
    return test::WaitFor([&] {
      io_.poll();
      return done();
    });
  }

  // Runs the io until the watchdog has looked at the clock `looks` more
  // times (true), or the tunnel has ended (false).
  bool RunLooks(CountingClock& clock, int looks) {
    const int until = clock.reads() + looks;
    return RunUntil(
               [&] { return clock.reads() >= until || stats_.has_value(); }) &&
           !stats_.has_value();
  }

  // Reads from `s` until EOF (or error); returns what arrived.
  static asio::awaitable<std::string> ReadAll(tcp::socket& s) {
    std::string out;
    char buf[4096];
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kNoThrow);
      out.append(buf, n);
      if (ec) co_return out;
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  tcp::socket app_;
  tcp::socket origin_;
  boost::beast::tcp_stream client_side_;
  boost::beast::tcp_stream upstream_side_;
  std::optional<TunnelStats> stats_;
};

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 61);
  return s;
}

TEST_F(TunnelTest, RelaysBothWaysAndHonoursHalfClose) {
  // Small buffers: every direction needs many reads and writes.
  FakeClock clock;
  StartTunnel(hours(1), 7, &clock);
  const std::string request = Pattern(100000, 'a');
  const std::string response = Pattern(70000, 'A');
  std::string got_at_origin, got_at_app;
  bool done = false;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        // The app sends its request and half-closes.
        auto [wec, wn] =
            co_await asio::async_write(app_, asio::buffer(request), kNoThrow);
        EXPECT_FALSE(wec);
        app_.shutdown(tcp::socket::shutdown_send);
        // The origin sees all of it, then EOF ...
        got_at_origin = co_await ReadAll(origin_);
        // ... and can still answer through the other half.
        auto [oec, on] = co_await asio::async_write(
            origin_, asio::buffer(response), kNoThrow);
        EXPECT_FALSE(oec);
        origin_.shutdown(tcp::socket::shutdown_send);
        got_at_app = co_await ReadAll(app_);
        done = true;
      },
      asio::detached);
  io_.run_for(std::chrono::seconds(60));
  ASSERT_TRUE(done);
  EXPECT_EQ(got_at_origin, request);
  EXPECT_EQ(got_at_app, response);
  ASSERT_TRUE(stats_.has_value());
  EXPECT_EQ(stats_->client_to_upstream, request.size());
  EXPECT_EQ(stats_->upstream_to_client, response.size());
  EXPECT_FALSE(stats_->idle_timeout);
  EXPECT_FALSE(client_side_.socket().is_open());
  EXPECT_FALSE(upstream_side_.socket().is_open());
}

TEST_F(TunnelTest, OriginResetReachesTheAppAsEndOfStream) {
  FakeClock clock;
  StartTunnel(hours(1), 1024, &clock);
  origin_.set_option(asio::socket_base::linger(true, 0));
  origin_.close();  // RST towards the tunnel
  std::string got_at_app;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        got_at_app = co_await ReadAll(app_);
        app_.close();  // the app gives up in turn; the tunnel can end
      },
      asio::detached);
  io_.run_for(std::chrono::seconds(60));
  ASSERT_TRUE(stats_.has_value());
  EXPECT_FALSE(stats_->idle_timeout);
  EXPECT_TRUE(got_at_app.empty());
}

TEST_F(TunnelTest, IdleWatchdogClosesOnlyAfterIdleTimeWithoutBytes) {
  CountingClock clock;
  // idle/4 = 10 ms: the watchdog looks at the fake clock every 10 ms.
  const Duration idle = milliseconds(40);
  StartTunnel(idle, 1024, &clock);
  // (The tunnel's start reads the clock once too.)
  EXPECT_TRUE(RunLooks(clock, 3)) << "closed though no fake time has passed";

  // A byte moves after 30 ms: the idle period starts again.
  clock.Advance(milliseconds(30));
  asio::write(app_, asio::buffer("x", 1));
  char byte = 0;
  bool relayed = false;
  origin_.async_read_some(
      asio::buffer(&byte, 1),
      [&](boost::system::error_code ec, size_t n) { relayed = !ec && n == 1; });
  ASSERT_TRUE(RunUntil([&] { return relayed; }));
  EXPECT_EQ(byte, 'x');
  // Past `idle` since the start, 1 ns short of it since the byte.
  clock.Advance(idle - nanoseconds(1));
  EXPECT_TRUE(RunLooks(clock, 2)) << "closed before idle since the byte";

  // `idle` since the byte: the next look closes the tunnel.
  clock.Advance(nanoseconds(1));
  const int looks_before = clock.reads();
  ASSERT_TRUE(RunUntil(
      [&] { return stats_.has_value() || clock.reads() > looks_before + 1; }));
  ASSERT_TRUE(stats_.has_value()) << "still open after a look";
  EXPECT_EQ(clock.reads(), looks_before + 1);
  EXPECT_TRUE(stats_->idle_timeout);
  EXPECT_EQ(stats_->client_to_upstream, 1u);
  // Both ends were closed.
  boost::system::error_code ec;
  app_.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset)
      << ec.message();
  origin_.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset)
      << ec.message();
}

}  // namespace
}  // namespace sluice
