#include "quota-server/core/quota_allocator.h"

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/quota-server/core/allocator_test_util.h"

namespace sluice {
namespace allocator_test {
namespace {

using ::testing::DoubleNear;
using ::testing::HasSubstr;

TEST_F(QuotaAllocatorTest, NewcomerGetsLimitThenTokensOnFirstReport) {
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  const Outbox out = Send(1, Report({.queued = 5, .elapsed_ms = 0}), At(100));
  ASSERT_THAT(out.messages, SizeIs(2));
  ASSERT_TRUE(out.messages[0].second.has_limit());  // limit comes first
  const LimitUpdate& limit = out.messages[0].second.limit();
  EXPECT_EQ(limit.resource(), "api");
  EXPECT_EQ(limit.rate_per_second(), 100);
  EXPECT_EQ(limit.burst(), 50);
  EXPECT_EQ(limit.unavailable_policy(), sluice::v1::FALLBACK_SHARE);
  EXPECT_EQ(limit.sidecars(), 1u);
  ASSERT_TRUE(out.messages[1].second.has_grant());
  const LeaseGrant& g = out.messages[1].second.grant();
  EXPECT_EQ(g.bucket().resource(), "api");
  EXPECT_EQ(g.seq(), 1u);
  EXPECT_EQ(g.ttl_ms(), 2000u);
  EXPECT_EQ(g.refresh_after_ms(), 100u);
  // Alone, it gets the whole rate as share (demand + spare); the target is
  // share * horizon = 20, but only the 10 tokens accrued in 100 ms exist.
  EXPECT_NEAR(g.share_per_second(), 100, 1e-9);
  EXPECT_NEAR(g.target(), 20, 1e-9);
  EXPECT_NEAR(g.tokens(), 10, 1e-9);
  EXPECT_GT(g.valid_until_unix_ms(), 0);
}

TEST_F(QuotaAllocatorTest, TickServesWhatTheLevelCouldNotCover) {
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  std::vector<LeaseGrant> g =
      GrantsTo(Send(1, Report({.queued = 5}), At(100)), 1);
  ASSERT_THAT(g, SizeIs(1));
  EXPECT_NEAR(g[0].tokens(), 10, 1e-9);
  // Nothing reported since; the Tick tops up to the target from the level.
  g = GrantsTo(Tick(At(200)), 1);
  ASSERT_THAT(g, SizeIs(1));
  EXPECT_NEAR(g[0].tokens(), 10, 1e-9);
  EXPECT_EQ(g[0].seq(), 2u);
  EXPECT_NEAR(Outstanding(At(200)), 20, 1e-9);
  // At target: nothing more.
  EXPECT_THAT(GrantsTo(Tick(At(300)), 1), SizeIs(0));
}

TEST_F(QuotaAllocatorTest, NothingBeforeHelloAndSecondHelloIgnored) {
  Make(Config(100, 50));
  alloc_->Open(1, At(0));
  EXPECT_THAT(Send(1, Report({.queued = 5}), At(100)).messages, SizeIs(0));
  EXPECT_THAT(Send(1, Hello("a", 5), At(100)).messages, SizeIs(0));
  EXPECT_THAT(Send(1, Hello("b", 1), At(100)).messages, SizeIs(0));
  Send(1, Report({.queued = 5}), At(100));
  const auto snap = alloc_->Snapshot(At(100));
  EXPECT_EQ(snap.connected_streams, 1u);
  ASSERT_THAT(snap.resources[0].sidecars, SizeIs(1));
  EXPECT_EQ(snap.resources[0].sidecars[0].sidecar_id, "a");
  EXPECT_EQ(snap.resources[0].sidecars[0].weight, 5);
  // A stream never opened is ignored.
  EXPECT_THAT(Send(9, Hello("z"), At(100)).messages, SizeIs(0));
  EXPECT_EQ(alloc_->Snapshot(At(100)).connected_streams, 1u);
}

TEST_F(QuotaAllocatorTest, UnknownResourceIsIgnoredAndCounted) {
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  EXPECT_THAT(
      Send(1, Report({.queued = 5, .resource = "nope"}), At(100)).messages,
      SizeIs(0));
  // A key for an unkeyed resource is a misconfiguration: ignored too.
  EXPECT_THAT(Send(1, Report({.queued = 5, .key = "abc"}), At(100)).messages,
              SizeIs(0));
  EXPECT_EQ(alloc_->Snapshot(At(100)).ignored_reports, 2u);
  EXPECT_THAT(Res(At(100)).sidecars, SizeIs(0));
}

TEST_F(QuotaAllocatorTest, LostGrantCountsAsInFlight) {
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  auto g = GrantsTo(Send(1, Report({.queued = 5}), At(100)), 1);
  ASSERT_THAT(g, SizeIs(1));
  const double granted = g[0].tokens();
  // The report does not acknowledge seq 1: the grant is still in flight
  // (and so is anything granted since).
  Send(1, Report({.held = 0, .seen = 0}), At(150));
  EXPECT_GE(Outstanding(At(150)), granted);
  EXPECT_NEAR(Outstanding(At(150)), Res(At(150)).sidecars[0].granted_total,
              1e-9);
  // Acknowledged: only what it says it holds counts.
  Send(1, Report({.held = 3, .seen = 1}), At(200));
  EXPECT_NEAR(Outstanding(At(200)),
              3 + (Res(At(200)).sidecars[0].granted_total - granted), 1e-9);
}

TEST_F(QuotaAllocatorTest, AnOvertakenReportIsDropped) {
  // Reports may come as datagrams, which reorder. One that says less than a
  // report already taken predates grants that one acknowledged: taking its
  // held would undercount what the sidecar may spend.
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  ASSERT_THAT(GrantsTo(Send(1, Report({.queued = 5}), At(100)), 1), SizeIs(1));
  Send(1, Report({.held = 9, .seen = 1}), At(150));
  const double before = Outstanding(At(150));
  EXPECT_NEAR(before, 9 + (Res(At(150)).sidecars[0].granted_total - 10), 1e-9);
  // The older report (held 2, nothing seen yet) arrives late.
  Send(1, Report({.held = 2, .seen = 0}), At(160));
  EXPECT_NEAR(Outstanding(At(160)), before, 1e-9);
  EXPECT_EQ(alloc_->Snapshot(At(160)).stale_reports, 1u);
  // A report that says as much as the last one is taken (same seen).
  Send(1, Report({.held = 4, .seen = 1}), At(170));
  EXPECT_EQ(alloc_->Snapshot(At(170)).stale_reports, 1u);
  EXPECT_LT(Outstanding(At(170)), before);
}

TEST_F(QuotaAllocatorTest, UnseenGrantIsForgottenOnceItsTokensAreDead) {
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  ASSERT_THAT(GrantsTo(Send(1, Report({.queued = 5}), At(100)), 1), SizeIs(1));
  // Reports keep saying no grant was ever seen: all of them count.
  Send(1, Report({.seen = 0}), At(2000));
  EXPECT_NEAR(Outstanding(At(2000)), Res(At(2000)).sidecars[0].granted_total,
              1e-9);
  // The first (10 tokens, sent at 100 ms) was received by 100 ms + grace at
  // the latest and is dead ttl later, seen or not.
  Send(1, Report({.seen = 0}), At(3100));
  EXPECT_NEAR(Outstanding(At(3100)),
              Res(At(3100)).sidecars[0].granted_total - 10, 1e-9);
}

TEST_F(QuotaAllocatorTest, ClosedStreamLedgerKeptUntilTokensDie) {
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  ASSERT_THAT(GrantsTo(Send(1, Report({.queued = 5}), At(100)), 1), SizeIs(1));
  alloc_->Close(1, At(200));
  EXPECT_EQ(alloc_->Snapshot(At(200)).connected_streams, 0u);
  Tick(At(3099));
  auto r = Res(At(3099));
  EXPECT_NEAR(r.outstanding, 10, 1e-9);
  ASSERT_THAT(r.sidecars, SizeIs(1));
  EXPECT_FALSE(r.sidecars[0].connected);
  // Last grant at 100 ms + ttl 2 s + grace 1 s.
  Tick(At(3100));
  r = Res(At(3100));
  EXPECT_NEAR(r.outstanding, 0, 1e-9);
  EXPECT_THAT(r.sidecars, SizeIs(0));
  // Messages on the closed stream are ignored.
  EXPECT_THAT(Send(1, Report({.queued = 5}), At(3200)).messages, SizeIs(0));
}

TEST_F(QuotaAllocatorTest, ReconnectReplacesTheOldLedger) {
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  ASSERT_THAT(GrantsTo(Send(1, Report({.queued = 5}), At(100)), 1), SizeIs(1));
  alloc_->Close(1, At(150));
  Connect(2, "a", At(160));
  EXPECT_NEAR(Outstanding(At(160)), 10, 1e-9);  // old ledger until reported
  const Outbox out = Send(2, Report({.queued = 5, .held = 7}), At(170));
  ASSERT_THAT(LimitsTo(out, 2), SizeIs(1));  // a new stream hears it again
  const auto g = GrantsTo(out, 2);
  ASSERT_THAT(g, SizeIs(1));
  EXPECT_EQ(g[0].seq(), 1u);  // per stream
  const auto r = Res(At(170));
  ASSERT_THAT(r.sidecars, SizeIs(1));
  EXPECT_TRUE(r.sidecars[0].connected);
  EXPECT_NEAR(r.outstanding, 7 + g[0].tokens(), 1e-9);
}

TEST_F(QuotaAllocatorTest, ReconnectWhileOldStreamOpenSupersedesIt) {
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  ASSERT_THAT(GrantsTo(Send(1, Report({.queued = 5}), At(100)), 1), SizeIs(1));
  Connect(2, "a", At(120));
  // The superseded stream gets nothing more, even on its reports.
  EXPECT_THAT(Send(1, Report({.queued = 50}), At(130)).messages, SizeIs(0));
  Send(2, Report({.queued = 5, .held = 4}), At(140));
  EXPECT_THAT(Res(At(140)).sidecars, SizeIs(1));
  EXPECT_EQ(alloc_->Snapshot(At(140)).connected_streams, 1u);
  alloc_->Close(1, At(150));
  EXPECT_EQ(alloc_->Snapshot(At(150)).connected_streams, 1u);
}

class DuplicateIdTest : public QuotaAllocatorTest {
 protected:
  // Opens `s` with a Hello from sidecar "a", instance `instance`.
  Outbox HelloFrom(StreamId s, const std::string& instance, TimePoint now) {
    alloc_->Open(s, now);
    return Send(
        s, test::HelloMessage({.sidecar_id = "a", .instance = instance}), now);
  }
};

TEST_F(DuplicateIdTest,
       ASecondProcessWithTheSameIdIsRefusedWhileTheFirstLeases) {
  Make(Config(100, 50));
  HelloFrom(1, "first", At(0));
  ASSERT_THAT(GrantsTo(Send(1, Report({.queued = 5}), At(100)), 1), SizeIs(1));
  const double held_by_first = Outstanding(At(100));
  ASSERT_GT(held_by_first, 0);
  const Outbox out = HelloFrom(2, "second", At(120));
  ASSERT_THAT(out.refused, SizeIs(1));
  EXPECT_EQ(out.refused[0].first, 2u);
  EXPECT_THAT(out.refused[0].second, HasSubstr("sidecar_id \"a\""));
  EXPECT_EQ(alloc_->Snapshot(At(120)).duplicate_ids, 1u);
  // The refused stream is ignored; the first keeps leasing, still counted.
  EXPECT_THAT(Send(2, Report({.queued = 50}), At(130)).messages, SizeIs(0));
  EXPECT_NEAR(Outstanding(At(130)), held_by_first, 1e-9);
  const auto r = Res(At(130));
  ASSERT_THAT(r.sidecars, SizeIs(1));
  EXPECT_TRUE(r.sidecars[0].connected);
  EXPECT_THAT(
      GrantsTo(Send(1, Report({.queued = 5, .held = 0, .seen = 1}), At(200)),
               1),
      SizeIs(0));  // (top-ups come on Tick; the stream is served)
  EXPECT_EQ(alloc_->Snapshot(At(200)).connected_streams, 1u);
  alloc_->Close(2, At(210));  // closing a refused stream changes nothing
  EXPECT_EQ(alloc_->Snapshot(At(210)).connected_streams, 1u);
}

TEST_F(DuplicateIdTest, AnotherProcessTakesTheIdOverOnlyAfterTheFirstClosed) {
  Make(Config(100, 50));
  HelloFrom(1, "first", At(0));
  ASSERT_THAT(GrantsTo(Send(1, Report({.queued = 5}), At(100)), 1), SizeIs(1));
  const double held_by_first = Outstanding(At(100));
  alloc_->Close(1, At(150));
  // A restarted process (new instance): accepted, but it holds none of the
  // first one's tokens, which stay counted until they die.
  EXPECT_THAT(HelloFrom(3, "restarted", At(160)).refused, SizeIs(0));
  const auto g = GrantsTo(Send(3, Report({.queued = 5}), At(170)), 3);
  double granted = 0;
  for (const auto& grant : g) granted += grant.tokens();
  EXPECT_NEAR(Outstanding(At(170)), held_by_first + granted, 1e-9);
  // Its entry keeps its tokens until ttl + grace (3 s here) after its
  // grant.
  auto old_outstanding = [&](TimePoint now) {
    double o = -1;
    for (const auto& sc : Res(now).sidecars) {
      if (!sc.connected) o = sc.outstanding;
    }
    return o;  // -1: gone
  };
  EXPECT_NEAR(old_outstanding(At(170)), held_by_first, 1e-9);
  Tick(At(3090));
  EXPECT_NEAR(old_outstanding(At(3090)), held_by_first, 1e-9);
  Tick(At(3100));
  EXPECT_LT(old_outstanding(At(3100)), 0);
}

TEST_F(DuplicateIdTest, AReconnectOfTheSameProcessReplacesItsOldStream) {
  Make(Config(100, 50));
  HelloFrom(1, "same", At(0));
  ASSERT_THAT(GrantsTo(Send(1, Report({.queued = 5}), At(100)), 1), SizeIs(1));
  // The old stream is still open (the server has not seen it end).
  EXPECT_THAT(HelloFrom(2, "same", At(120)).refused, SizeIs(0));
  const auto g =
      GrantsTo(Send(2, Report({.queued = 5, .held = 4}), At(140)), 2);
  double granted = 0;
  for (const auto& grant : g) granted += grant.tokens();
  // Its held (4) includes what it held on the old stream: counted once.
  EXPECT_NEAR(Outstanding(At(140)), 4 + granted, 1e-9);
  EXPECT_EQ(alloc_->Snapshot(At(140)).duplicate_ids, 0u);
}

TEST_F(QuotaAllocatorTest, WeightsSplitTheRate) {
  Make(Config(100, 50));
  Connect(1, "a", At(0), 3);
  Connect(2, "b", At(0), 1);
  Send(1, Report({.allowed = 100, .elapsed_ms = 100}), At(100));
  Send(2, Report({.allowed = 100, .elapsed_ms = 100}), At(100));
  const auto r = Res(At(100));
  ASSERT_THAT(r.sidecars, SizeIs(2));
  EXPECT_NEAR(r.sidecars[0].share_per_second, 75, 1e-9);
  EXPECT_NEAR(r.sidecars[1].share_per_second, 25, 1e-9);
}

TEST_F(QuotaAllocatorTest, SmallDemandWobblesKeepSharesWithinTheRate) {
  // a is held to its demand (about 10/s) and b takes the rest. a's measured
  // demand creeps up by less than the material threshold per report, so no
  // water-fill runs in between; the shares must still sum to at most the
  // rate after every report.
  Make(Config(40, 10));
  Connect(1, "a", At(0));
  Connect(2, "b", At(0));
  double a_rate = 10;
  for (int t = 100; t <= 3000; t += 100) {
    a_rate *= 1.01;
    Send(1, Report({.allowed = a_rate / 10}), At(t));
    double sum = 0;
    for (const auto& sc : Res(At(t)).sidecars) sum += sc.share_per_second;
    EXPECT_LE(sum, 40 + 1e-9) << "after a's report at " << t;
    Send(2, Report({.allowed = 10}), At(t));
    sum = 0;
    for (const auto& sc : Res(At(t)).sidecars) sum += sc.share_per_second;
    EXPECT_LE(sum, 40 + 1e-9) << "after b's report at " << t;
    Tick(At(t + 50));
  }
}

TEST_F(QuotaAllocatorTest, DemandShiftMovesSharesAndShrinks) {
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  Connect(2, "b", At(0));
  // a busy (200/s), b light (10/s): b gets 10, a 90.
  uint64_t seen_a = 0;
  uint64_t seen_b = 0;
  double held_a = 0;
  for (int t = 100; t <= 1000; t += 100) {
    auto ga = GrantsTo(
        Send(1, Report({.allowed = 20, .held = held_a, .seen = seen_a}), At(t)),
        1);
    Send(2, Report({.allowed = 1, .seen = seen_b}), At(t));
    // Top-ups come on Tick.
    for (const auto& g : GrantsTo(Tick(At(t + 50)), 1)) ga.push_back(g);
    for (const auto& g : ga) {
      seen_a = g.seq();
      held_a += g.tokens();
    }
  }
  auto r = Res(At(1000));
  EXPECT_DOUBLE_EQ(r.sidecars[0].share_per_second, 90);
  EXPECT_DOUBLE_EQ(r.sidecars[1].share_per_second, 10);
  EXPECT_NEAR(held_a, 18, 0.5);  // target 90/s * 200 ms, unspent
  // Now b is busy and a goes quiet: a's target falls below what it holds,
  // so it is told to shrink (no tokens, the new target).
  std::vector<LeaseGrant> shrinks;
  for (int t = 1100; t <= 2000; t += 100) {
    Send(2, Report({.allowed = 20, .seen = seen_b}), At(t));
    auto ga = GrantsTo(
        Send(1, Report({.allowed = 0, .held = held_a, .seen = seen_a}), At(t)),
        1);
    for (const auto& g : ga) {
      seen_a = g.seq();
      if (g.tokens() == 0) shrinks.push_back(g);
    }
    for (const auto& g : GrantsTo(Tick(At(t + 50)), 1)) {
      seen_a = g.seq();
      if (g.tokens() == 0) shrinks.push_back(g);
    }
  }
  ASSERT_THAT(shrinks, ::testing::Not(SizeIs(0)));
  EXPECT_LT(shrinks.back().target(), held_a);
  r = Res(At(2000));
  EXPECT_GT(r.sidecars[1].share_per_second, 80);
  EXPECT_LT(r.sidecars[0].share_per_second, 20);
}

TEST_F(QuotaAllocatorTest, LearningModeCapsTheFleetAtWhatItProvedItHolds) {
  Make(Config(100, 50, /*learning=*/true));
  Connect(1, "a", At(0));
  Connect(2, "b", At(0));
  // a held 10 tokens before the restart; b held none. K = 10.
  Outbox out = Send(1, Report({.queued = 20, .held = 10}), At(500));
  EXPECT_THAT(GrantsTo(out, 1), SizeIs(0));  // L + sum O = 10 = K already
  out = Send(2, Report({.queued = 20, .held = 0}), At(500));
  EXPECT_THAT(GrantsTo(out, 2), SizeIs(0));
  EXPECT_TRUE(Res(At(500)).learning);
  // a spends 6: 6 tokens of room, granted to whoever asks.
  double granted = 0;
  out = Send(1, Report({.allowed = 6, .held = 4}), At(1000));
  for (const auto& g : GrantsTo(out, 1)) granted += g.tokens();
  out = Send(2, Report({.queued = 20}), At(1000));
  for (const auto& g : GrantsTo(out, 2)) granted += g.tokens();
  for (int t = 1100; t < 3000; t += 100) {
    for (const auto& [id, msg] : Tick(At(t)).messages) {
      if (msg.has_grant()) granted += msg.grant().tokens();
    }
    const auto r = Res(At(t));
    EXPECT_LE(r.level + r.outstanding, 10 + 1e-9) << "at " << t;
  }
  EXPECT_NEAR(granted, 6, 1e-9);
  // ttl + grace after start, the normal invariant (<= b) applies.
  double after = 0;
  for (int t = 3000; t <= 3500; t += 100) {
    for (const auto& g : GrantsTo(Tick(At(t)), 2)) after += g.tokens();
  }
  EXPECT_FALSE(Res(At(3500)).learning);
  EXPECT_GT(after, 0);
}

TEST_F(QuotaAllocatorTest, LearningWithEmptyFleetGrantsNothingUntilItEnds) {
  Make(Config(100, 50, /*learning=*/true));
  Connect(1, "a", At(0));
  for (int t = 100; t < 3000; t += 500) {
    EXPECT_THAT(GrantsTo(Send(1, Report({.queued = 5}), At(t)), 1), SizeIs(0));
    EXPECT_THAT(GrantsTo(Tick(At(t + 250)), 1), SizeIs(0));
  }
  EXPECT_THAT(GrantsTo(Tick(At(2900)), 1), SizeIs(0));
  // ttl + grace after start: served on the Tick, no report needed.
  EXPECT_THAT(GrantsTo(Tick(At(3100)), 1), SizeIs(1));
}

TEST_F(QuotaAllocatorTest, SidecarCountChangesAreAnnounced) {
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  auto first = LimitsTo(Send(1, Report({.queued = 5}), At(100)), 1);
  ASSERT_THAT(first, SizeIs(1));
  EXPECT_EQ(first[0].sidecars(), 1u);
  EXPECT_THAT(LimitsTo(Tick(At(150)), 1), SizeIs(0));
  // A second sidecar joins: the first learns the fleet is now 2 (its
  // fallback_share rate halves), on the next Tick and only once.
  Connect(2, "b", At(160));
  auto second = LimitsTo(Send(2, Report({.queued = 5}), At(170)), 2);
  ASSERT_THAT(second, SizeIs(1));
  EXPECT_EQ(second[0].sidecars(), 2u);
  auto update = LimitsTo(Tick(At(200)), 1);
  ASSERT_THAT(update, SizeIs(1));
  EXPECT_EQ(update[0].sidecars(), 2u);
  EXPECT_THAT(LimitsTo(Tick(At(250)), 1), SizeIs(0));
  // It leaves: the survivor is told.
  alloc_->Close(2, At(300));
  auto after = LimitsTo(Tick(At(350)), 1);
  ASSERT_THAT(after, SizeIs(1));
  EXPECT_EQ(after[0].sidecars(), 1u);
}

TEST_F(QuotaAllocatorTest, SetLimitPushesLimitUpdateOnNextTick) {
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  Send(1, Report({.queued = 5}), At(100));
  EXPECT_THAT(LimitsTo(Tick(At(150)), 1), SizeIs(0));
  const uint64_t version_before = alloc_->Snapshot(At(150)).config_version;
  ASSERT_TRUE(alloc_->SetLimit("api", 200, 80, At(160)).ok());
  auto limits = LimitsTo(Tick(At(200)), 1);
  ASSERT_THAT(limits, SizeIs(1));
  EXPECT_EQ(limits[0].rate_per_second(), 200);
  EXPECT_EQ(limits[0].burst(), 80);
  EXPECT_GT(limits[0].config_version(), version_before);
  EXPECT_THAT(LimitsTo(Tick(At(300)), 1), SizeIs(0));  // once
  const auto r = Res(At(300));
  EXPECT_EQ(r.rate_per_second, 200);
  EXPECT_EQ(r.burst, 80);

  EXPECT_EQ(alloc_->SetLimit("nope", 1, 1, At(300)).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(alloc_->SetLimit("api", 0, 1, At(300)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(alloc_->SetLimit("api", 10, 0.5, At(300)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Res(At(300)).rate_per_second, 200);
}

TEST_F(QuotaAllocatorTest, ReconfigureRevokesRemovedResources) {
  ServerConfig config = Config(100, 50);
  config.resources.push_back(Resource("other", 10, 10));
  Make(config);
  Connect(1, "a", At(0));
  Send(1, Report({.queued = 5}), At(100));
  Send(1, Report({.queued = 5, .resource = "other"}), At(100));

  ServerConfig bad = config;
  bad.resources[0].rate = -1;
  EXPECT_FALSE(alloc_->Reconfigure(bad, At(150)).ok());
  EXPECT_THAT(alloc_->Snapshot(At(150)).resources, SizeIs(2));

  ServerConfig next = config;
  next.resources.pop_back();     // "other" goes away
  next.resources[0].burst = 60;  // "api" changes
  ASSERT_TRUE(alloc_->Reconfigure(next, At(150)).ok());
  const Outbox out = Tick(At(200));
  auto limits = LimitsTo(out, 1);
  ASSERT_THAT(limits, SizeIs(1));
  EXPECT_EQ(limits[0].resource(), "api");
  EXPECT_EQ(limits[0].burst(), 60);
  bool revoked = false;
  for (const auto& g : GrantsTo(out, 1)) {
    if (g.bucket().resource() == "other") {
      EXPECT_EQ(g.tokens(), 0);
      EXPECT_EQ(g.target(), 0);
      revoked = true;
    }
  }
  EXPECT_TRUE(revoked);
  EXPECT_THAT(alloc_->Snapshot(At(200)).resources, SizeIs(1));
  // Reports for the removed resource are now unknown.
  EXPECT_THAT(Send(1, Report({.resource = "other"}), At(250)).messages,
              SizeIs(0));
}

TEST_F(QuotaAllocatorTest, SeqIsPerStreamAcrossBuckets) {
  ServerConfig config = Config(100, 50);
  config.resources.push_back(Resource("other", 100, 50));
  Make(config);
  Connect(1, "a", At(0));
  Connect(2, "b", At(0));
  std::vector<uint64_t> seqs;
  for (const char* res : {"api", "other", "api"}) {
    for (const auto& g : GrantsTo(
             Send(1, Report({.queued = 50, .resource = res}), At(100)), 1)) {
      seqs.push_back(g.seq());
    }
  }
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2}));  // third: at target
  auto g = GrantsTo(Send(2, Report({.queued = 5}), At(200)), 2);
  ASSERT_THAT(g, SizeIs(1));
  EXPECT_EQ(g[0].seq(), 1u);
}

TEST_F(QuotaAllocatorTest, PerKeyBucketsHaveTheirOwnLevels) {
  ServerConfig config = Config(10, 50);
  config.resources[0].per_key = true;
  config.resources[0].lease.horizon = seconds(1);  // target = share * 1 s
  Make(config);
  Connect(1, "a", At(0));
  // A key never seen starts with a full bucket of its own.
  const Outbox first = Send(1, Report({.queued = 100, .key = "k1"}), At(1000));
  EXPECT_THAT(LimitsTo(first, 1), SizeIs(1));
  auto g1 = GrantsTo(first, 1);
  ASSERT_THAT(g1, SizeIs(1));
  EXPECT_EQ(g1[0].bucket().resource(), "api");
  EXPECT_EQ(g1[0].bucket().key_hash(), "k1");
  EXPECT_NEAR(g1[0].tokens(), 10, 1e-9);
  const Outbox second = Send(1, Report({.queued = 100, .key = "k2"}), At(1000));
  EXPECT_THAT(LimitsTo(second, 1), SizeIs(0));  // once per resource
  auto g2 = GrantsTo(second, 1);
  ASSERT_THAT(g2, SizeIs(1));
  EXPECT_EQ(g2[0].bucket().key_hash(), "k2");
  EXPECT_NEAR(g2[0].tokens(), 10, 1e-9);
  // Each bucket holds its own burst: 2 x 50 in all, where one shared
  // bucket could never exceed 50.
  Tick(At(2000));
  auto r = Res(At(2000));
  EXPECT_THAT(r.sidecars, SizeIs(1));  // one row per sidecar
  EXPECT_NEAR(r.outstanding, 20, 1e-9);
  EXPECT_NEAR(r.level, 80, 1e-9);
  // Closed: members go when their tokens are dead (1 s + 3 s), the buckets
  // once idle long enough to have refilled (burst / rate = 5 s).
  alloc_->Close(1, At(2100));
  Tick(At(4100));
  r = Res(At(4100));
  EXPECT_THAT(r.sidecars, SizeIs(0));
  EXPECT_EQ(r.outstanding, 0);
  EXPECT_NEAR(r.level, 80, 1e-9);  // not yet evicted
  Tick(At(6000));
  EXPECT_EQ(Res(At(6000)).level, 0);  // evicted
}

// A key's bucket is evicted once it would have refilled at the rate in
// force: with a learned rate of 5/s, a burst of 50 takes 10 s, not the 5 s
// of the configured 10/s (a bucket recreated full earlier could let a
// window see more than rate * W + burst at the learned rate).
TEST_F(QuotaAllocatorTest, PerKeyBucketsEvictAtTheLearnedRate) {
  ServerConfig config = Config(10, 50);
  config.resources[0].per_key = true;
  config.resources[0].learn = true;
  Make(config);
  Connect(1, "a", At(0));
  SidecarMessage report = Report({.queued = 100, .key = "k1"});
  report.mutable_demand()->set_stated_limit(5);
  report.mutable_demand()->set_stated_window_ms(1000);
  ASSERT_THAT(GrantsTo(Send(1, report, At(1000)), 1), SizeIs(1));
  Tick(At(1050));
  EXPECT_NEAR(Res(At(1050)).effective_rate_per_second, 5, 1e-9);
  alloc_->Close(1, At(1100));
  Tick(At(7000));  // 6 s after the grant: refilled at 10/s, not at 5/s
  EXPECT_GT(Res(At(7000)).level, 0);
  Tick(At(11100));
  EXPECT_EQ(Res(At(11100)).level, 0);  // evicted
}

TEST_F(QuotaAllocatorTest, SnapshotReportsRatesAndLevels) {
  Make(Config(100, 50));
  Connect(1, "a", At(0));
  uint64_t seen = 0;
  for (int t = 100; t <= 5000; t += 100) {
    // Spends all it holds every 100 ms.
    for (const auto& g :
         GrantsTo(Send(1, Report({.allowed = 100, .seen = seen}), At(t)), 1)) {
      seen = g.seq();
    }
    // Top-ups come on Tick.
    for (const auto& g : GrantsTo(Tick(At(t + 50)), 1)) seen = g.seq();
  }
  const auto snap = alloc_->Snapshot(At(5050));
  EXPECT_EQ(snap.epoch, kEpoch);
  const auto& r = snap.resources[0];
  EXPECT_FALSE(r.learning);
  EXPECT_NEAR(r.granted_per_second, 100, 10);
  EXPECT_NEAR(r.utilisation, 1, 0.1);
  ASSERT_THAT(r.sidecars, SizeIs(1));
  EXPECT_EQ(r.sidecars[0].pod, "a-pod");
  EXPECT_TRUE(r.sidecars[0].connected);
  EXPECT_GT(r.sidecars[0].demand_per_second, 100);
  EXPECT_NEAR(r.sidecars[0].share_per_second, 100, 1e-9);
  EXPECT_LE(r.level + r.outstanding, 50 + 1e-9);
}

// A crude sidecar for the randomised run: holds grant batches that die ttl
// after receipt, spends one token per request, obeys targets, reports
// honestly, and sometimes loses its stream.
struct SimSidecar {
  struct Batch {
    double tokens;
    TimePoint dies;
  };
  std::string id;
  StreamId stream = 0;
  bool connected = false;
  TimePoint reconnect_at;
  std::deque<Batch> batches;
  uint64_t seen = 0;
  double rate = 0;  // requests per second
  double allowed = 0;
  double denied = 0;
  TimePoint last_report;
  TimePoint next_report;
  // In-order message queues with their delivery times.
  std::deque<std::pair<TimePoint, SidecarMessage>> up;
  std::deque<std::pair<TimePoint, ServerMessage>> down;

  double Held(TimePoint now) {
    while (!batches.empty() && batches.front().dies <= now) {
      batches.pop_front();
    }
    double held = 0;
    for (const Batch& b : batches) held += b.tokens;
    return held;
  }
  bool Spend(TimePoint now) {
    if (Held(now) < 1 - 1e-9) return false;
    double cost = 1;
    while (cost > 1e-12) {
      Batch& b = batches.front();
      const double take = std::min(cost, b.tokens);
      b.tokens -= take;
      cost -= take;
      if (b.tokens <= 1e-12) batches.pop_front();
    }
    return true;
  }
  void Apply(const ServerMessage& msg, Duration ttl, TimePoint now) {
    if (!msg.has_grant()) return;
    const LeaseGrant& g = msg.grant();
    EXPECT_GT(g.seq(), seen);
    seen = g.seq();
    if (g.tokens() > 0) batches.push_back({g.tokens(), now + ttl});
    // Drop above the target, latest-expiring first.
    double excess = Held(now) - g.target();
    while (excess > 1e-12 && !batches.empty()) {
      Batch& b = batches.back();
      const double drop = std::min(excess, b.tokens);
      b.tokens -= drop;
      excess -= drop;
      if (b.tokens <= 1e-12) batches.pop_back();
    }
  }
};

// Largest sum of `events` in any window (t - w, t].
double MaxInWindow(const std::vector<std::pair<TimePoint, double>>& events,
                   Duration w) {
  double best = 0;
  double sum = 0;
  size_t lo = 0;
  for (size_t hi = 0; hi < events.size(); ++hi) {
    sum += events[hi].second;
    while (events[lo].first <= events[hi].first - w) sum -= events[lo++].second;
    best = std::max(best, sum);
  }
  return best;
}

TEST_F(QuotaAllocatorTest, RandomFleetNeverBreaksTheInvariant) {
  constexpr double kRate = 100;
  constexpr double kBurst = 40;
  const Duration ttl = seconds(2);
  for (uint64_t seed : {1, 2, 3, 4}) {
    SCOPED_TRACE(testing::Message() << "seed " << seed);
    std::mt19937_64 rng(seed);
    auto uniform = [&](double lo, double hi) {
      return std::uniform_real_distribution<double>(lo, hi)(rng);
    };
    auto delay = [&] { return milliseconds(1 + rng() % 30); };
    Make(Config(kRate, kBurst, /*learning=*/seed % 2 == 0));
    StreamId next_stream = 1;
    std::vector<SimSidecar> fleet(6);
    std::map<StreamId, SimSidecar*> by_stream;
    auto connect = [&](SimSidecar& sc, TimePoint now) {
      sc.stream = next_stream++;
      sc.connected = true;
      sc.seen = 0;
      by_stream[sc.stream] = &sc;
      alloc_->Open(sc.stream, now);
      sc.up.emplace_back(now + delay(), Hello(sc.id, 1 + rng() % 3));
      sc.last_report = now;
      sc.next_report = now;
    };
    for (size_t i = 0; i < fleet.size(); ++i) {
      fleet[i].id = "s" + std::to_string(i);
      fleet[i].rate = uniform(0, 60);
      connect(fleet[i], At(0));
    }
    std::vector<std::pair<TimePoint, double>> granted;
    std::vector<std::pair<TimePoint, double>> spent;
    auto route = [&](const Outbox& out, TimePoint now) {
      for (const auto& [id, msg] : out.messages) {
        EXPECT_EQ(msg.server_epoch(), kEpoch);
        if (msg.has_grant() && msg.grant().tokens() > 0) {
          granted.emplace_back(now, msg.grant().tokens());
        }
        auto it = by_stream.find(id);
        ASSERT_NE(it, by_stream.end()) << "message to a closed stream";
        SimSidecar& sc = *it->second;
        TimePoint at = now + delay();
        if (!sc.down.empty()) at = std::max(at, sc.down.back().first);
        sc.down.emplace_back(at, msg);
      }
    };
    const Duration step = milliseconds(2);
    TimePoint next_tick = At(100);
    for (TimePoint now = At(0); now < At(12000); now += step) {
      for (SimSidecar& sc : fleet) {
        while (sc.connected && !sc.up.empty() && sc.up.front().first <= now) {
          Outbox out;
          alloc_->OnMessage(sc.stream, sc.up.front().second, now, &out);
          sc.up.pop_front();
          route(out, now);
        }
        while (sc.connected && !sc.down.empty() &&
               sc.down.front().first <= now) {
          sc.Apply(sc.down.front().second, ttl, now);
          sc.down.pop_front();
        }
      }
      if (now >= next_tick) {
        Outbox out;
        alloc_->Tick(now, &out);
        route(out, now);
        next_tick += milliseconds(100);
      }
      for (SimSidecar& sc : fleet) {
        // Requests arrive (at most one per step), spend or are refused. The
        // fleet goes quiet for the first second of every three, so levels
        // fill up and the next burst tests the bound.
        const bool quiet = (now - kT0) % seconds(3) < seconds(1);
        if (!quiet && uniform(0, 1) < sc.rate * 0.002) {
          if (sc.Spend(now)) {
            ++sc.allowed;
            spent.emplace_back(now, 1.0);
          } else {
            ++sc.denied;
          }
        }
        if (uniform(0, 1) < 0.0005) sc.rate = uniform(0, 150);
        if (!sc.connected) {
          if (now >= sc.reconnect_at) connect(sc, now);
          continue;
        }
        if (now >= sc.next_report) {
          Rep rep{
              .allowed = sc.allowed,
              .denied = sc.denied,
              .elapsed_ms = static_cast<uint64_t>(
                  std::chrono::duration_cast<milliseconds>(now - sc.last_report)
                      .count()),
              .held = sc.Held(now),
              .seen = sc.seen};
          TimePoint at = now + delay();
          if (!sc.up.empty()) at = std::max(at, sc.up.back().first);
          sc.up.emplace_back(at, Report(rep));
          sc.allowed = sc.denied = 0;
          sc.last_report = now;
          sc.next_report = now + milliseconds(40 + rng() % 70);
        }
        if (rng() % 4000 == 0) {  // the stream breaks; in-flight is lost
          alloc_->Close(sc.stream, now);
          by_stream.erase(sc.stream);
          sc.connected = false;
          sc.up.clear();
          sc.down.clear();
          sc.reconnect_at = now + milliseconds(rng() % 400);
        }
      }
      const auto r = Res(now);
      ASSERT_LE(r.level + r.outstanding, kBurst + 1e-6)
          << "at " << (now - kT0).count() / 1e6 << " ms";
      ASSERT_GE(r.level, 0);
    }
    double total = 0;
    for (const auto& [t, tokens] : granted) total += tokens;
    EXPECT_GT(total, kRate * 12 * 0.3) << "the fleet was starved";
    for (Duration w : {Duration(milliseconds(10)), Duration(milliseconds(100)),
                       Duration(milliseconds(500)), Duration(seconds(1)),
                       Duration(seconds(3))}) {
      const double bound = kRate * ToSecondsForTest(w) + kBurst + 1e-6;
      EXPECT_LE(MaxInWindow(granted, w), bound)
          << "granted, window " << w.count();
      EXPECT_LE(MaxInWindow(spent, w), bound) << "spent, window " << w.count();
    }
  }
}

}  // namespace
}  // namespace allocator_test
}  // namespace sluice
