#include "proxy/egress/dialer.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <optional>
#include <string>

#include "common/time/clock.h"
#include "proxy/egress/ip_address.h"
#include "proxy/egress/ssrf_guard.h"

namespace sluice {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using std::chrono::seconds;

const IpAddress kLoopback = IpAddress::V4(0x7f000001);
constexpr Duration kTimeout = seconds(10);

// A clock that moves on by `step` each time it is read, as if each stage of
// the dial took that long.
class SteppingClock final : public Clock {
 public:
  explicit SteppingClock(Duration step) : step_(step) {}
  TimePoint Now() const override {
    const TimePoint now = fake_.Now();
    fake_.Advance(step_);
    return now;
  }
  absl::Time WallNow() const override { return fake_.WallNow(); }

 private:
  const Duration step_;
  mutable FakeClock fake_;
};

// Runs DialOrigin to completion on `io` (the real timers bound it), with
// the budget kept on `clock`.
DialResult Dial(asio::io_context& io, const std::string& host, uint16_t port,
                const SsrfGuard& guard, Clock* clock) {
  std::optional<DialResult> out;
  asio::co_spawn(io, DialOrigin(host, port, guard, kTimeout, clock),
                 [&out](std::exception_ptr e, DialResult r) {
                   ASSERT_FALSE(e);
                   out = std::move(r);
                 });
  io.restart();
  io.run_for(seconds(30));
  EXPECT_TRUE(out.has_value());
  return out ? std::move(*out) : DialResult{};
}

// The same on a clock that stands still.
DialResult Dial(asio::io_context& io, const std::string& host, uint16_t port,
                const SsrfGuard& guard) {
  FakeClock clock;
  return Dial(io, host, port, guard, &clock);
}

SsrfGuard AllowLoopback() {
  auto cidr = ParseCidr("127.0.0.0/8");
  EXPECT_TRUE(cidr.ok());
  return SsrfGuard({*cidr}, {});
}

TEST(DialOriginTest, DeniesLoopbackByDefault) {
  asio::io_context io;
  tcp::acceptor listener(io,
                         tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const uint16_t port = listener.local_endpoint().port();
  SsrfGuard guard({}, {});
  DialResult r = Dial(io, "127.0.0.1", port, guard);
  EXPECT_EQ(r.stream, nullptr);
  EXPECT_EQ(r.error, DialError::kDenied);
  EXPECT_EQ(r.denial, DenyReason::kLoopback);
  EXPECT_EQ(r.reason(), "loopback");
  // Other spellings of the same address are classified too, without DNS.
  for (const char* host :
       {"2130706433", "0x7f000001", "127.1", "::1", "::ffff:127.0.0.1"}) {
    DialResult s = Dial(io, host, port, guard);
    EXPECT_EQ(s.error, DialError::kDenied) << host;
    EXPECT_EQ(s.stream, nullptr) << host;
  }
}

TEST(DialOriginTest, ConnectsToAnAllowlistedAddress) {
  asio::io_context io;
  tcp::acceptor listener(io,
                         tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const uint16_t port = listener.local_endpoint().port();
  SsrfGuard guard = AllowLoopback();
  DialResult r = Dial(io, "127.0.0.1", port, guard);
  ASSERT_NE(r.stream, nullptr) << r.reason() << ": " << r.detail;
  EXPECT_EQ(r.peer, "127.0.0.1:" + std::to_string(port));
  tcp::socket accepted = listener.accept();
  EXPECT_EQ(accepted.remote_endpoint(), r.stream->socket().local_endpoint());
}

TEST(DialOriginTest, NeverDialsItsOwnListenerEvenWhenAllowlisted) {
  asio::io_context io;
  tcp::acceptor listener(io,
                         tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const uint16_t port = listener.local_endpoint().port();
  SsrfGuard guard = AllowLoopback();
  guard.AddSelf(kLoopback, port);
  DialResult r = Dial(io, "127.0.0.1", port, guard);
  EXPECT_EQ(r.stream, nullptr);
  EXPECT_EQ(r.error, DialError::kDenied);
  EXPECT_EQ(r.reason(), "self_listener");
}

TEST(DialOriginTest, RefusedConnectionIsRefused) {
  asio::io_context io;
  uint16_t port;
  {
    tcp::acceptor closed(io,
                         tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    port = closed.local_endpoint().port();
  }  // nothing listens there any more
  SsrfGuard guard = AllowLoopback();
  DialResult r = Dial(io, "127.0.0.1", port, guard);
  EXPECT_EQ(r.stream, nullptr);
  EXPECT_EQ(r.error, DialError::kRefused);
  EXPECT_EQ(r.reason(), "refused");
}

TEST(DialOriginTest, TimeSpentBeforeConnectingComesOutOfTheTimeout) {
  asio::io_context io;
  tcp::acceptor listener(io,
                         tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  listener.non_blocking(true);
  const uint16_t port = listener.local_endpoint().port();
  SsrfGuard guard = AllowLoopback();
  // Half the budget gone before the connect: the other half is enough.
  SteppingClock half(kTimeout / 2);
  DialResult r = Dial(io, "127.0.0.1", port, guard, &half);
  ASSERT_NE(r.stream, nullptr) << r.reason() << ": " << r.detail;
  boost::system::error_code ec;
  listener.accept(ec);
  EXPECT_FALSE(ec) << ec.message();
  // All of it gone: a connect timeout, and no connection is even tried.
  SteppingClock all(kTimeout);
  r = Dial(io, "127.0.0.1", port, guard, &all);
  EXPECT_EQ(r.stream, nullptr);
  EXPECT_EQ(r.error, DialError::kConnectTimeout);
  EXPECT_EQ(r.reason(), "connect_timeout");
  listener.accept(ec);
  EXPECT_EQ(ec, asio::error::would_block) << ec.message();
}

TEST(DialOriginTest, MalformedNumericHostIsABadHostWithoutDns) {
  asio::io_context io;
  SsrfGuard guard({}, {});
  for (const char* host : {"256.1.1.1", "1.2.3.4.5", "0x1g"}) {
    DialResult r = Dial(io, host, 80, guard);
    EXPECT_EQ(r.error, DialError::kBadHost) << host;
    EXPECT_EQ(r.reason(), "bad_host") << host;
  }
}

}  // namespace
}  // namespace sluice
