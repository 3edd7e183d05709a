#include "quota-server/server/fast_path_server.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol/fast_path_codec.h"
#include "tests/testing/fast_path_test_peer.h"
#include "tests/testing/wait_for.h"

namespace sluice {
namespace {

using sluice::v1::FastPathBody;
using sluice::v1::SidecarMessage;

// A sidecar's UDP socket on loopback, talking to the server's port.
class Sidecar {
 public:
  explicit Sidecar(uint16_t server_port) { peer_.Connect(server_port); }

  void SendRaw(const std::string& d) { peer_.SendRaw(d); }
  void Send(const sluice::v1::FastPathOffer& offer, uint64_t seq,
            const FastPathBody& body) {
    peer_.Send(offer, FastPathDirection::kUp, seq, body);
  }
  // The next datagram within 5 s, opened with `offer`'s key.
  std::optional<FastPathBody> Receive(const sluice::v1::FastPathOffer& offer) {
    return peer_.Receive(offer, FastPathDirection::kDown);
  }

 private:
  FastPathTestPeer peer_;
};

FastPathBody Hello(bool welcomed = false) {
  FastPathBody b;
  b.mutable_hello()->set_welcomed(welcomed);
  return b;
}

FastPathBody Demand(uint64_t seen) {
  FastPathBody b;
  b.mutable_demand()->mutable_bucket()->set_resource("api");
  b.mutable_demand()->set_allowed(3);
  b.mutable_demand()->set_grant_seq_seen(seen);
  return b;
}

FastPathBody Throttle(uint64_t report_id) {
  FastPathBody b;
  b.mutable_throttle()->mutable_bucket()->set_resource("api");
  b.mutable_throttle()->set_status(429);
  b.mutable_throttle()->set_report_id(report_id);
  return b;
}

sluice::v1::Pause PauseOf(uint64_t id) {
  sluice::v1::Pause p;
  p.mutable_bucket()->set_resource("api");
  p.set_pause_id(id);
  p.set_remaining_ms(1500);
  return p;
}

class FastPathServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(/*leases=*/false); }

  void StartServer(bool leases) {
    server_.reset();
    auto s = FastPathServer::Start(
        "127.0.0.1", 0,
        [this](uint64_t stream, const SidecarMessage& msg) {
          std::lock_guard lock(mu_);
          got_.emplace_back(stream, msg);
          cv_.notify_all();
        },
        leases);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }

  // Waits until `n` messages reached the handler (the server's reader).
  bool WaitForMessages(size_t n) {
    std::unique_lock lock(mu_);
    return test::WaitOn(cv_, lock, [&] { return got_.size() >= n; });
  }

  // Sends one hello and waits for the welcome, as a sidecar does; then,
  // with `confirm`, the hello that says the welcome came (seq + 1).
  void Register(Sidecar& sc, const sluice::v1::FastPathOffer& offer,
                uint64_t seq, bool confirm = true) {
    sc.Send(offer, seq, Hello());
    auto welcome = sc.Receive(offer);
    ASSERT_TRUE(welcome.has_value());
    EXPECT_TRUE(welcome->has_welcome());
    if (!confirm) return;
    sc.Send(offer, seq + 1, Hello(true));
    ASSERT_TRUE(sc.Receive(offer).has_value());  // welcomed again
  }

  std::unique_ptr<FastPathServer> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<uint64_t, SidecarMessage>> got_;
};

TEST_F(FastPathServerTest, OffersAreFreshPerStream) {
  const auto a = server_->Open(1);
  const auto b = server_->Open(2);
  EXPECT_EQ(a.port(), server_->port());
  EXPECT_NE(server_->port(), 0);
  EXPECT_EQ(a.key().size(), kFastPathKeyBytes);
  EXPECT_NE(a.key(), b.key());
  EXPECT_NE(a.token(), b.token());
}

TEST_F(FastPathServerTest, PausesReachOnlySidecarsThatSaidHello) {
  const auto offer1 = server_->Open(1);
  server_->Open(2);  // never says hello
  const auto offer3 = server_->Open(3);
  Sidecar sc(server_->port());
  Register(sc, offer1, 1);
  Sidecar unconfirmed(server_->port());
  Register(unconfirmed, offer3, 1, /*confirm=*/false);
  EXPECT_EQ(server_->stats().registered, 2u);
  const auto p = PauseOf(7);
  const std::vector<bool> sent =
      server_->SendPauses({{1, &p}, {2, &p}, {3, &p}});
  // Stream 3's datagram left too, but its sidecar has not said that
  // datagrams reach it: its stream copy must not wait.
  EXPECT_EQ(sent, (std::vector<bool>{true, false, false}));
  for (auto [side, offer] :
       {std::pair{&sc, &offer1}, {&unconfirmed, &offer3}}) {
    auto got = side->Receive(*offer);
    ASSERT_TRUE(got.has_value());
    ASSERT_TRUE(got->has_pause());
    EXPECT_EQ(got->pause().pause_id(), 7u);
    EXPECT_EQ(got->pause().remaining_ms(), 1500u);
  }
  EXPECT_EQ(server_->stats().out_sent, 5u);  // 3 welcomes and 2 pauses
}

TEST_F(FastPathServerTest, ThrottleReportsAndAcksReachTheHandler) {
  const auto offer = server_->Open(42);
  Sidecar sc(server_->port());
  sc.Send(offer, 1, Throttle(5));
  FastPathBody ack;
  ack.mutable_pause_ack()->set_pause_id(9);
  ack.mutable_pause_ack()->set_held_us(5000);
  sc.Send(offer, 2, ack);
  ASSERT_TRUE(WaitForMessages(2));
  std::lock_guard lock(mu_);
  EXPECT_EQ(got_[0].first, 42u);
  EXPECT_EQ(got_[0].second.throttle().report_id(), 5u);
  EXPECT_EQ(got_[1].second.pause_ack().pause_id(), 9u);
  EXPECT_EQ(got_[1].second.pause_ack().held_us(), 5000u);
}

TEST_F(FastPathServerTest, LeasesTakeReportsAndSendGrantsToConfirmedSidecars) {
  StartServer(/*leases=*/true);
  const auto offer1 = server_->Open(1);
  const auto offer2 = server_->Open(2);
  server_->Open(3);  // never says hello
  EXPECT_TRUE(offer1.leases());
  Sidecar sc(server_->port());
  Register(sc, offer1, 1);
  Sidecar unconfirmed(server_->port());
  Register(unconfirmed, offer2, 1, /*confirm=*/false);
  sc.Send(offer1, 3, Demand(17));
  ASSERT_TRUE(WaitForMessages(1));
  {
    std::lock_guard lock(mu_);
    EXPECT_EQ(got_[0].first, 1u);
    EXPECT_EQ(got_[0].second.demand().grant_seq_seen(), 17u);
  }
  sluice::v1::LeaseGrant g;
  g.mutable_bucket()->set_resource("api");
  g.set_tokens(5);
  g.set_seq(18);
  // Only a sidecar that said the welcome came gets grants this way: the
  // others' go on the stream (false), as nothing would copy them there.
  EXPECT_EQ(server_->SendGrants({{1, &g}, {2, &g}, {3, &g}}),
            (std::vector<bool>{true, false, false}));
  auto got = sc.Receive(offer1);
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->has_grant());
  EXPECT_EQ(got->grant().seq(), 18u);
  EXPECT_DOUBLE_EQ(got->grant().tokens(), 5);
  const auto st = server_->stats();
  EXPECT_EQ(st.demand_in, 1u);
  EXPECT_EQ(st.grants_out, 1u);
  EXPECT_EQ(st.out_sent, 4u);  // 3 welcomes and the one grant
}

TEST_F(FastPathServerTest, WithoutLeasesAReportIsRefused) {
  const auto offer = server_->Open(1);
  EXPECT_FALSE(offer.leases());
  Sidecar sc(server_->port());
  sc.Send(offer, 1, Demand(1));
  sc.Send(offer, 2, Throttle(4));  // handled after the report
  ASSERT_TRUE(WaitForMessages(1));
  EXPECT_EQ(server_->stats().in_malformed, 1u);
  EXPECT_EQ(server_->stats().demand_in, 0u);
  std::lock_guard lock(mu_);
  ASSERT_EQ(got_.size(), 1u);
  EXPECT_TRUE(got_[0].second.has_throttle());
}

TEST_F(FastPathServerTest, ForgedReplayedAndStrayDatagramsAreDropped) {
  const auto offer = server_->Open(1);
  Sidecar sc(server_->port());
  Register(sc, offer, 10);  // seqs 10 and 11
  // Replayed: the same seq again.
  sc.Send(offer, 10, Hello());
  // Forged: another key (with a fresh seq).
  sluice::v1::FastPathOffer forged = offer;
  forged.set_key(NewFastPathKey());
  sc.Send(forged, 12, Throttle(1));
  // Reflected: a down datagram sent up.
  sc.SendRaw(SealFastPath(offer.key(), FastPathDirection::kDown, offer.token(),
                          12, Throttle(1)));
  // Not ours at all, an unknown token, and a pause sent up.
  sc.SendRaw("GET / HTTP/1.1\r\n\r\n");
  sluice::v1::FastPathOffer unknown = offer;
  unknown.set_token(offer.token() + 1000);
  sc.Send(unknown, 1, Throttle(1));
  FastPathBody pause;
  *pause.mutable_pause() = PauseOf(1);
  sc.Send(offer, 13, pause);
  // Then a good one: everything before it was handled by then.
  sc.Send(offer, 14, Throttle(2));
  ASSERT_TRUE(WaitForMessages(1));
  const auto st = server_->stats();
  EXPECT_EQ(st.in_replayed, 1u);
  EXPECT_EQ(st.in_bad_mac, 2u);
  EXPECT_EQ(st.in_malformed, 2u);
  EXPECT_EQ(st.in_unknown_token, 1u);
  EXPECT_EQ(st.in_ok, 3u);  // the two hellos and the last report
  std::lock_guard lock(mu_);
  ASSERT_EQ(got_.size(), 1u);
  EXPECT_EQ(got_[0].second.throttle().report_id(), 2u);
}

TEST_F(FastPathServerTest, AClosedStreamIsForgotten) {
  const auto offer = server_->Open(1);
  Sidecar sc(server_->port());
  Register(sc, offer, 1);
  server_->Close(1);
  EXPECT_EQ(server_->stats().registered, 0u);
  const auto p = PauseOf(3);
  EXPECT_EQ(server_->SendPauses({{1, &p}}), std::vector<bool>{false});
  sc.Send(offer, 2, Throttle(1));
  sc.Send(server_->Open(2), 1, Throttle(2));  // still serving
  ASSERT_TRUE(WaitForMessages(1));
  EXPECT_EQ(server_->stats().in_unknown_token, 1u);
  std::lock_guard lock(mu_);
  EXPECT_EQ(got_[0].first, 2u);
}

TEST(FastPathServerStartTest, BadAddressesNameThemselves) {
  auto noop = [](uint64_t, const SidecarMessage&) {};
  auto s = FastPathServer::Start("not-an-ip", 0, noop);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("not-an-ip"), std::string::npos);
  auto first = FastPathServer::Start("127.0.0.1", 0, noop);
  ASSERT_TRUE(first.ok());
  auto taken = FastPathServer::Start("127.0.0.1", (*first)->port(), noop);
  ASSERT_FALSE(taken.ok());
  EXPECT_NE(taken.status().message().find("bind udp"), std::string::npos);
  auto v6 = FastPathServer::Start("[::1]", 0, noop);
  EXPECT_TRUE(v6.ok() || absl::IsUnavailable(v6.status()));
}

}  // namespace
}  // namespace sluice
