#include "proxy/lease/fast_path_client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol/fast_path_codec.h"
#include "common/time/clock.h"
#include "tests/testing/fast_path_test_peer.h"
#include "tests/testing/wait_for.h"

namespace sluice {
namespace {

using sluice::v1::FastPathBody;
using sluice::v1::SidecarMessage;
using std::chrono::microseconds;
using std::chrono::milliseconds;

// The quota server's side: a UDP socket on loopback that answers the
// sidecar at the address its datagrams come from.
class Server {
 public:
  Server() {
    offer_.set_port(peer_.port());
    offer_.set_key(NewFastPathKey());
    offer_.set_token(77);
  }

  const sluice::v1::FastPathOffer& offer() const { return offer_; }
  void OfferLeases() { offer_.set_leases(true); }
  std::string peer() const {
    return "ipv4:127.0.0.1:" + std::to_string(offer_.port() + 1);
  }

  // The next datagram from the sidecar within 5 s, hellos skipped unless
  // `hellos` (a hello is said on Use(), once more on the welcome, and
  // again whenever the fake clock passes the next hello's time).
  std::optional<FastPathBody> Receive(bool hellos = false) {
    while (true) {
      auto body = peer_.Receive(offer_, FastPathDirection::kUp);
      if (!body || hellos || !body->has_hello()) return body;
    }
  }

  // Sends to where the last datagram came from.
  void Send(uint64_t seq, const FastPathBody& body,
            FastPathDirection dir = FastPathDirection::kDown) {
    peer_.Send(offer_, dir, seq, body);
  }

 private:
  FastPathTestPeer peer_;
  sluice::v1::FastPathOffer offer_;
};

FastPathBody Welcome() {
  FastPathBody b;
  b.mutable_welcome();
  return b;
}

FastPathBody PauseBody(uint64_t id) {
  FastPathBody b;
  b.mutable_pause()->mutable_bucket()->set_resource("api");
  b.mutable_pause()->set_pause_id(id);
  b.mutable_pause()->set_remaining_ms(1000);
  return b;
}

SidecarMessage Report(uint64_t id) {
  SidecarMessage m;
  m.mutable_throttle()->mutable_bucket()->set_resource("api");
  m.mutable_throttle()->set_report_id(id);
  return m;
}

class FastPathClientTest : public ::testing::Test {
 protected:
  FastPathClientTest()
      : client_(
            [this](const sluice::v1::Pause& p) {
              std::lock_guard lock(mu_);
              pauses_.push_back(p.pause_id());
              cv_.notify_all();
            },
            [this](SidecarMessage m) {
              std::lock_guard lock(mu_);
              to_stream_.push_back(std::move(m));
              cv_.notify_all();
            },
            [this](uint64_t token, const sluice::v1::LeaseGrant& g) {
              std::lock_guard lock(mu_);
              grants_.emplace_back(token, g.seq());
              cv_.notify_all();
            },
            &clock_) {}

  // Waits for the reader thread to hand something on.
  template <typename Pred>
  bool WaitFor(Pred pred) {
    std::unique_lock lock(mu_);
    return test::WaitOn(cv_, lock, pred);
  }

  size_t StreamCopies() {
    std::lock_guard lock(mu_);
    return to_stream_.size();
  }

  // Use() the offer, read the hello, welcome it and wait until it counts.
  void Connect() {
    ASSERT_TRUE(client_.Use(server_.peer(), server_.offer()).ok());
    auto hello = server_.Receive(/*hellos=*/true);
    ASSERT_TRUE(hello.has_value());
    ASSERT_TRUE(hello->has_hello());
    EXPECT_FALSE(hello->hello().welcomed());
    server_.Send(1, Welcome());
    ASSERT_TRUE(WaitUp());
    // At once, a hello that says the welcome came.
    auto confirm = server_.Receive(/*hellos=*/true);
    ASSERT_TRUE(confirm.has_value());
    ASSERT_TRUE(confirm->has_hello());
    EXPECT_TRUE(confirm->hello().welcomed());
  }

  // The welcome is handled on the reader thread: wait for it.
  bool WaitUp() {
    return test::WaitFor([&] { return client_.stats().up; });
  }

  // Only the test moves time; the reader looks at it on Sync().
  FakeClock clock_;
  Server server_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint64_t> pauses_;
  std::vector<SidecarMessage> to_stream_;
  std::vector<std::pair<uint64_t, uint64_t>> grants_;  // token, seq
  FastPathClient client_;  // last: its reader uses the members above
};

TEST_F(FastPathClientTest, PausesFromTheServerReachTheHandler) {
  Connect();
  server_.Send(2, PauseBody(5));
  ASSERT_TRUE(WaitFor([&] { return !pauses_.empty(); }));
  EXPECT_EQ(pauses_[0], 5u);
  EXPECT_EQ(client_.stats().in_ok, 2u);  // the welcome and the pause
}

TEST_F(FastPathClientTest, ForgedAndReplayedPausesAreDropped) {
  Connect();
  server_.Send(1, PauseBody(1));  // seq 1 again: the welcome's
  server_.Send(3, PauseBody(2), FastPathDirection::kUp);  // reflected
  FastPathBody hello;
  hello.mutable_hello();
  server_.Send(4, hello);         // an up-only message sent down
  server_.Send(5, PauseBody(3));  // the good one
  ASSERT_TRUE(WaitFor([&] { return !pauses_.empty(); }));
  EXPECT_EQ(pauses_, std::vector<uint64_t>{3});
  EXPECT_EQ(client_.stats().in_rejected, 3u);
}

TEST_F(FastPathClientTest, ReportsGoAsDatagramsThenOnTheStreamOnceUp) {
  ASSERT_TRUE(client_.Use(server_.peer(), server_.offer()).ok());
  ASSERT_TRUE(server_.Receive(/*hellos=*/true).has_value());  // hello
  // Not welcomed yet: the datagram leaves, the caller sends on the stream.
  EXPECT_FALSE(client_.SendThrottle(Report(1)));
  auto first = server_.Receive();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->throttle().report_id(), 1u);
  server_.Send(1, Welcome());
  ASSERT_TRUE(WaitUp());
  EXPECT_TRUE(client_.SendThrottle(Report(2)));
  auto second = server_.Receive();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->throttle().report_id(), 2u);
  // The stream's copy follows the delay later, not sooner.
  const microseconds delay(FastPathClient::kStreamCopyDelayUs);
  client_.Sync();
  EXPECT_EQ(StreamCopies(), 0u) << "no time has passed";
  clock_.Advance(delay - microseconds(1));
  client_.Sync();
  EXPECT_EQ(StreamCopies(), 0u) << "1 us before the delay ends";
  clock_.Advance(microseconds(1));
  client_.Sync();
  ASSERT_EQ(StreamCopies(), 1u);
  EXPECT_EQ(to_stream_[0].throttle().report_id(), 2u);
}

SidecarMessage DemandMsg(uint64_t seen) {
  SidecarMessage m;
  m.mutable_demand()->mutable_bucket()->set_resource("api");
  m.mutable_demand()->set_grant_seq_seen(seen);
  return m;
}

FastPathBody GrantBody(uint64_t seq) {
  FastPathBody b;
  b.mutable_grant()->mutable_bucket()->set_resource("api");
  b.mutable_grant()->set_tokens(3);
  b.mutable_grant()->set_seq(seq);
  return b;
}

TEST_F(FastPathClientTest, ReportsGoAsDatagramsOnlyWhileLeasing) {
  server_.OfferLeases();
  EXPECT_FALSE(client_.SendDemand(DemandMsg(1)));  // no offer
  ASSERT_TRUE(client_.Use(server_.peer(), server_.offer()).ok());
  ASSERT_TRUE(server_.Receive(/*hellos=*/true).has_value());  // hello
  EXPECT_FALSE(client_.SendDemand(DemandMsg(1)));  // not welcomed yet
  EXPECT_FALSE(client_.stats().leasing);
  server_.Send(1, Welcome());
  ASSERT_TRUE(WaitUp());
  EXPECT_TRUE(client_.stats().leasing);
  EXPECT_TRUE(client_.SendDemand(DemandMsg(7)));
  auto got = server_.Receive();
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->has_demand());
  EXPECT_EQ(got->demand().grant_seq_seen(), 7u);
  EXPECT_EQ(client_.stats().demand_sent, 1u);
}

TEST_F(FastPathClientTest, GrantsReachTheHandlerWithTheOffersToken) {
  server_.OfferLeases();
  Connect();
  server_.Send(2, GrantBody(12));
  ASSERT_TRUE(WaitFor([&] { return !grants_.empty(); }));
  EXPECT_EQ(grants_[0], (std::pair<uint64_t, uint64_t>{77, 12}));
  EXPECT_EQ(client_.stats().grants_in, 1u);
}

TEST_F(FastPathClientTest, WithoutLeasesReportsStayOnTheStream) {
  Connect();  // the offer does not say leases
  EXPECT_FALSE(client_.stats().leasing);
  EXPECT_FALSE(client_.SendDemand(DemandMsg(1)));
  server_.Send(2, GrantBody(1));  // refused
  server_.Send(3, PauseBody(4));  // handled after it
  ASSERT_TRUE(WaitFor([&] { return !pauses_.empty(); }));
  EXPECT_TRUE(grants_.empty());
  EXPECT_EQ(client_.stats().in_rejected, 1u);
}

TEST_F(FastPathClientTest, SilenceFromTheServerEndsLeasing) {
  server_.OfferLeases();
  Connect();  // hellos from now on go unanswered
  EXPECT_TRUE(client_.SendDemand(DemandMsg(1)));
  // The last welcome came at the clock's current time.
  clock_.Advance(milliseconds(FastPathClient::kLeaseSilenceMs));
  client_.Sync();  // the hellos due meanwhile leave, unanswered
  EXPECT_TRUE(client_.stats().leasing) << "silent exactly kLeaseSilenceMs";
  EXPECT_TRUE(client_.SendDemand(DemandMsg(2)));
  clock_.Advance(milliseconds(1));
  client_.Sync();
  EXPECT_FALSE(client_.stats().leasing);
  EXPECT_FALSE(client_.SendDemand(DemandMsg(3)));  // the stream's now
  EXPECT_TRUE(client_.stats().up);  // pauses still try datagrams first
  EXPECT_EQ(client_.stats().demand_sent, 2u);
}

TEST_F(FastPathClientTest, AcksLeaveAfterTheirDelayWithTheWaitInside) {
  Connect();
  const uint64_t sent_before = client_.stats().out_sent;
  sluice::v1::PauseAck ack;
  ack.set_pause_id(9);
  EXPECT_TRUE(client_.SendPauseAck(ack));
  clock_.Advance(microseconds(FastPathClient::kAckDelayUs - 1));
  client_.Sync();
  EXPECT_EQ(client_.stats().out_sent, sent_before) << "held for the delay";
  // The reader looks 2 ms after the ack fell due: held_us is the whole
  // wait.
  clock_.Advance(microseconds(2001));
  client_.Sync();
  EXPECT_EQ(client_.stats().out_sent, sent_before + 1);
  auto got = server_.Receive();
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->has_pause_ack());
  EXPECT_EQ(got->pause_ack().pause_id(), 9u);
  EXPECT_EQ(got->pause_ack().held_us(),
            static_cast<uint32_t>(FastPathClient::kAckDelayUs + 2000));
}

TEST_F(FastPathClientTest, NothingIsSentWithoutAnOffer) {
  EXPECT_FALSE(client_.SendThrottle(Report(1)));
  EXPECT_FALSE(client_.SendPauseAck(sluice::v1::PauseAck()));
  Connect();
  client_.Reset();
  EXPECT_FALSE(client_.stats().up);
  EXPECT_FALSE(client_.SendThrottle(Report(2)));
}

TEST_F(FastPathClientTest, AServerThatIsGoneDoesNotSpinTheReader) {
  // Nothing listens on the offered port: the hello draws an ICMP error,
  // which the reader must read off (POLLERR) rather than poll on forever.
  sluice::v1::FastPathOffer gone = server_.offer();
  {
    Server closed;
    gone.set_port(closed.offer().port());
  }  // its socket is closed here
  ASSERT_TRUE(client_.Use(server_.peer(), gone).ok());
  // The error is read (and counted) as it comes: the fake clock stands
  // still, so no second hello is ever due whose send() could fail instead.
  ASSERT_TRUE(test::WaitFor([&] { return client_.stats().out_failed >= 1; }));
  EXPECT_EQ(client_.stats().out_sent, 1u);  // the hello, and nothing since
  EXPECT_FALSE(client_.stats().up);
  // The reader still takes turns, and counted the error once.
  client_.Sync();
  EXPECT_EQ(client_.stats().out_failed, 1u);
}

TEST_F(FastPathClientTest, AFullAckQueueFallsBackToTheStream) {
  Connect();
  sluice::v1::PauseAck ack;
  // The clock stands still, so none falls due: a full queue says no (the
  // caller then acks on the stream) instead of dropping the ack.
  const size_t most = 10 * FastPathClient::kMaxPendingAcks;
  size_t queued = 0;
  while (queued < most && client_.SendPauseAck(ack)) ++queued;
  EXPECT_EQ(queued, FastPathClient::kMaxPendingAcks);
  // Once they have left, there is room again.
  clock_.Advance(microseconds(FastPathClient::kAckDelayUs));
  client_.Sync();
  EXPECT_TRUE(client_.SendPauseAck(ack));
}

TEST_F(FastPathClientTest, PeersAndOffersAreChecked) {
  EXPECT_FALSE(client_.Use("unix:/run/quota.sock", server_.offer()).ok());
  EXPECT_FALSE(client_.Use("ipv4:example.com:7070", server_.offer()).ok());
  sluice::v1::FastPathOffer short_key = server_.offer();
  short_key.set_key("short");
  EXPECT_FALSE(client_.Use(server_.peer(), short_key).ok());
  sluice::v1::FastPathOffer no_port = server_.offer();
  no_port.set_port(0);
  EXPECT_FALSE(client_.Use(server_.peer(), no_port).ok());
  // gRPC writes IPv6 peers percent-encoded: read as the plain form is
  // (which fails only on a host without IPv6).
  const bool plain = client_.Use("ipv6:[::1]:7070", server_.offer()).ok();
  EXPECT_EQ(client_.Use("ipv6:%5B::1%5D:7070", server_.offer()).ok(), plain);
  EXPECT_TRUE(client_.Use(server_.peer(), server_.offer()).ok());
}

}  // namespace
}  // namespace sluice
