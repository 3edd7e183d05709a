#include "proxy/server/upstream_pool.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <utility>
#include <vector>

#include "common/time/clock.h"

namespace sluice {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using std::chrono::seconds;

// Connected loopback pairs: the "origin" end stays here, the "proxy" end
// goes into the pool as a tcp_stream.
class UpstreamPoolTest : public ::testing::Test {
 protected:
  UpstreamPoolTest()
      : acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {}

  // Returns a connected stream; its peer is kept in origins_.
  std::unique_ptr<UpstreamPool::Stream> Connect() {
    tcp::socket client(io_);
    client.connect(acceptor_.local_endpoint());
    origins_.push_back(std::make_unique<tcp::socket>(acceptor_.accept()));
    return std::make_unique<UpstreamPool::Stream>(std::move(client));
  }

  // True when the origin end of a pooled connection sees the pool's end
  // closed (EOF, or a reset when unread bytes were discarded). Never
  // blocks: a connection still open reads as "would block".
  static bool PeerClosed(tcp::socket& origin) {
    origin.non_blocking(true);
    char byte;
    boost::system::error_code ec;
    origin.read_some(asio::buffer(&byte, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::vector<std::unique_ptr<tcp::socket>> origins_;
  FakeClock clock_;
};

TEST_F(UpstreamPoolTest, TakesBackAConnectionPutForTheSameHostOnly) {
  UpstreamPool pool({.max_idle_per_host = 4,
                     .max_idle_total = 8,
                     .idle_timeout = seconds(30)},
                    &clock_);
  auto s = Connect();
  UpstreamPool::Stream* raw = s.get();
  pool.Put("a.example:80", std::move(s));
  EXPECT_EQ(pool.idle(), 1u);
  EXPECT_EQ(pool.Take("b.example:80"), nullptr);
  EXPECT_EQ(pool.Take("a.example:8080"), nullptr);
  auto got = pool.Take("a.example:80");
  EXPECT_EQ(got.get(), raw);
  EXPECT_EQ(pool.idle(), 0u);
  EXPECT_EQ(pool.reused(), 1u);
  EXPECT_EQ(pool.Take("a.example:80"), nullptr);  // handed out once only
}

TEST_F(UpstreamPoolTest, MostRecentlyUsedComesBackFirst) {
  UpstreamPool pool({.max_idle_per_host = 4,
                     .max_idle_total = 8,
                     .idle_timeout = seconds(30)},
                    &clock_);
  auto first = Connect();
  auto second = Connect();
  UpstreamPool::Stream* raw_first = first.get();
  UpstreamPool::Stream* raw_second = second.get();
  pool.Put("h:80", std::move(first));
  clock_.Advance(seconds(1));
  pool.Put("h:80", std::move(second));
  EXPECT_EQ(pool.Take("h:80").get(), raw_second);
  EXPECT_EQ(pool.Take("h:80").get(), raw_first);
}

TEST_F(UpstreamPoolTest, PerHostBoundDropsTheOldest) {
  UpstreamPool pool({.max_idle_per_host = 2,
                     .max_idle_total = 8,
                     .idle_timeout = seconds(30)},
                    &clock_);
  std::vector<UpstreamPool::Stream*> raw;
  for (int i = 0; i < 3; ++i) {
    auto s = Connect();
    raw.push_back(s.get());
    pool.Put("h:80", std::move(s));
    clock_.Advance(seconds(1));
  }
  EXPECT_EQ(pool.idle(), 2u);
  EXPECT_TRUE(PeerClosed(*origins_[0]));  // the oldest was closed
  // Another host is unaffected by h's bound.
  pool.Put("other:80", Connect());
  EXPECT_EQ(pool.idle(), 3u);
  EXPECT_EQ(pool.Take("h:80").get(), raw[2]);
  EXPECT_EQ(pool.Take("h:80").get(), raw[1]);
  EXPECT_EQ(pool.Take("h:80"), nullptr);
}

TEST_F(UpstreamPoolTest, TotalBoundEvictsTheOldestAcrossHosts) {
  UpstreamPool pool({.max_idle_per_host = 4,
                     .max_idle_total = 2,
                     .idle_timeout = seconds(30)},
                    &clock_);
  pool.Put("a:80", Connect());
  clock_.Advance(seconds(1));
  pool.Put("b:80", Connect());
  clock_.Advance(seconds(1));
  pool.Put("c:80", Connect());
  EXPECT_EQ(pool.idle(), 2u);
  EXPECT_TRUE(PeerClosed(*origins_[0]));
  EXPECT_EQ(pool.Take("a:80"), nullptr);
  EXPECT_NE(pool.Take("b:80"), nullptr);
  EXPECT_NE(pool.Take("c:80"), nullptr);
}

TEST_F(UpstreamPoolTest, ZeroBoundsDisablePooling) {
  UpstreamPool per_host({.max_idle_per_host = 0,
                         .max_idle_total = 8,
                         .idle_timeout = seconds(30)},
                        &clock_);
  per_host.Put("h:80", Connect());
  EXPECT_EQ(per_host.idle(), 0u);
  EXPECT_EQ(per_host.Take("h:80"), nullptr);
  UpstreamPool total({.max_idle_per_host = 8,
                      .max_idle_total = 0,
                      .idle_timeout = seconds(30)},
                     &clock_);
  total.Put("h:80", Connect());
  EXPECT_EQ(total.idle(), 0u);
  per_host.Put("h:80", nullptr);  // ignored
  EXPECT_EQ(per_host.idle(), 0u);
}

TEST_F(UpstreamPoolTest, IdleConnectionsExpire) {
  UpstreamPool pool({.max_idle_per_host = 4,
                     .max_idle_total = 8,
                     .idle_timeout = seconds(30)},
                    &clock_);
  pool.Put("h:80", Connect());
  clock_.Advance(seconds(29));
  auto still_fresh = pool.Take("h:80");
  ASSERT_NE(still_fresh, nullptr);
  pool.Put("h:80", std::move(still_fresh));  // idle time starts again
  clock_.Advance(seconds(30));
  EXPECT_EQ(pool.Take("h:80"), nullptr);
  EXPECT_EQ(pool.idle(), 0u);
  EXPECT_TRUE(PeerClosed(*origins_[0]));
  EXPECT_EQ(pool.reused(), 1u);
}

TEST_F(UpstreamPoolTest, SweepClosesOnlyExpiredConnections) {
  UpstreamPool pool({.max_idle_per_host = 4,
                     .max_idle_total = 8,
                     .idle_timeout = seconds(30)},
                    &clock_);
  pool.Put("old:80", Connect());
  clock_.Advance(seconds(20));
  pool.Put("new:80", Connect());
  clock_.Advance(seconds(10));
  pool.Sweep();
  EXPECT_EQ(pool.idle(), 1u);
  EXPECT_TRUE(PeerClosed(*origins_[0]));
  EXPECT_EQ(pool.Take("old:80"), nullptr);
  EXPECT_NE(pool.Take("new:80"), nullptr);
}

TEST_F(UpstreamPoolTest, ConnectionClosedByTheOriginIsNotReused) {
  UpstreamPool pool({.max_idle_per_host = 4,
                     .max_idle_total = 8,
                     .idle_timeout = seconds(30)},
                    &clock_);
  auto fresh = Connect();
  UpstreamPool::Stream* raw_fresh = fresh.get();
  pool.Put("h:80", std::move(fresh));
  pool.Put("h:80", Connect());
  // The origin closes the most recent connection while it is pooled.
  origins_[1]->close();
  EXPECT_EQ(pool.Take("h:80").get(), raw_fresh);  // the stale one is skipped
  EXPECT_EQ(pool.idle(), 0u);
}

TEST_F(UpstreamPoolTest, ConnectionWithUnsolicitedBytesIsNotReused) {
  UpstreamPool pool({.max_idle_per_host = 4,
                     .max_idle_total = 8,
                     .idle_timeout = seconds(30)},
                    &clock_);
  pool.Put("h:80", Connect());
  asio::write(*origins_[0], asio::buffer("HTTP/1.1 400 Bad\r\n", 18));
  EXPECT_EQ(pool.Take("h:80"), nullptr);
  EXPECT_EQ(pool.reused(), 0u);
  EXPECT_TRUE(PeerClosed(*origins_[0]));
}

TEST_F(UpstreamPoolTest, ClearClosesEverything) {
  UpstreamPool pool({.max_idle_per_host = 4,
                     .max_idle_total = 8,
                     .idle_timeout = seconds(30)},
                    &clock_);
  pool.Put("a:80", Connect());
  pool.Put("b:80", Connect());
  pool.Clear();
  EXPECT_EQ(pool.idle(), 0u);
  EXPECT_TRUE(PeerClosed(*origins_[0]));
  EXPECT_TRUE(PeerClosed(*origins_[1]));
  EXPECT_EQ(pool.Take("a:80"), nullptr);
}

}  // namespace
}  // namespace sluice
