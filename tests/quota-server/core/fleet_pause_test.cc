// The fleet-wide pause (docs/pause.md) on fake time: FleetPause on its
// own, then as the quota server runs it, driven through the QuotaAllocator.

#include "quota-server/core/fleet_pause.h"

#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "quota-server/core/quota_allocator.h"
#include "tests/quota-server/core/allocator_test_util.h"

namespace sluice {
namespace allocator_test {
namespace {

using sluice::v1::Pause;
using ::testing::Optional;
using Phase = PauseSchedule::Phase;

// --- FleetPause on its own ------------------------------------------------

PauseSchedule::Options PauseOptions() {
  return PauseSchedule::Options{.default_pause = seconds(1),
                                .max_pause = seconds(60),
                                .backoff_factor = 2,
                                .probe_timeout = seconds(2),
                                .ramp = seconds(1),
                                .ramp_start = 0.1};
}

sluice::v1::ThrottleReport ThrottleReportOf(
    uint64_t pause_ms, bool has_hint = true,
    const std::string& reason = "retry-after") {
  sluice::v1::ThrottleReport r;
  r.set_status(429);
  r.set_pause_ms(pause_ms);
  r.set_has_hint(has_hint);
  r.set_reason(reason);
  return r;
}

constexpr Duration kMaxHint = seconds(60);

MATCHER_P4(IsOrder, stream, pause_id, remaining, prober, "") {
  return arg.stream == static_cast<StreamId>(stream) &&
         arg.pause_id == static_cast<uint64_t>(pause_id) &&
         arg.remaining == Duration(remaining) && arg.prober == prober;
}

TEST(FleetPauseTest, FirstThrottleIsNewsAndTheReporterProbes) {
  FleetPause p(PauseOptions());
  EXPECT_FALSE(p.halted());
  EXPECT_EQ(p.rate_fraction(), 1);
  EXPECT_EQ(p.ViewAt(At(0)).phase, Phase::kRunning);
  EXPECT_EQ(p.ViewAt(At(0)).pauses, 0u);

  EXPECT_TRUE(p.OnThrottle(7, "s7", ThrottleReportOf(3000), kMaxHint, At(0)));
  EXPECT_TRUE(p.halted());
  EXPECT_EQ(p.rate_fraction(), 1);
  EXPECT_EQ(p.prober(), 7u);
  EXPECT_THAT(p.Announce(7, At(0)), IsOrder(7, 1, seconds(3), true));
  EXPECT_THAT(p.Announce(8, At(0)), IsOrder(8, 1, seconds(3), false));

  // Looking ahead does not move the schedule (the view works on a copy).
  EXPECT_EQ(p.ViewAt(At(9000)).phase, Phase::kRunning);
  const FleetPause::View v = p.ViewAt(At(1000));
  EXPECT_EQ(v.phase, Phase::kPaused);
  EXPECT_EQ(v.pause_id, 1u);
  EXPECT_EQ(v.remaining, seconds(2));
  EXPECT_EQ(v.rate_fraction, 1);
  EXPECT_EQ(v.origin_sidecar, "s7");
  EXPECT_EQ(v.reason, "retry-after");
  EXPECT_EQ(v.pauses, 1u);
}

TEST(FleetPauseTest, TheSameBanWithin50MsIsNotNewsButItsEndIsKept) {
  FleetPause p(PauseOptions());
  ASSERT_TRUE(p.OnThrottle(7, "s7", ThrottleReportOf(3000), kMaxHint, At(0)));
  EXPECT_FALSE(p.OnThrottle(8, "s8", ThrottleReportOf(3000), kMaxHint, At(50)));
  EXPECT_EQ(p.prober(), 7u);
  EXPECT_EQ(p.ViewAt(At(60)).pause_id, 1u);
  EXPECT_EQ(p.ViewAt(At(60)).origin_sidecar, "s7");
  // The end moved to 3050 all the same.
  EXPECT_THAT(p.PauseFor(9, At(3040)),
              Optional(IsOrder(9, 1, milliseconds(10), false)));
  EXPECT_EQ(p.PauseFor(9, At(3050)), std::nullopt);
  // 51 ms later than the kept end: news, with a new id and prober.
  FleetPause q(PauseOptions());
  ASSERT_TRUE(q.OnThrottle(7, "s7", ThrottleReportOf(3000), kMaxHint, At(0)));
  EXPECT_TRUE(q.OnThrottle(8, "s8", ThrottleReportOf(3000), kMaxHint, At(51)));
  EXPECT_EQ(q.prober(), 8u);
  EXPECT_THAT(q.Announce(7, At(51)), IsOrder(7, 2, seconds(3), false));
  EXPECT_EQ(q.ViewAt(At(60)).origin_sidecar, "s8");
  EXPECT_EQ(q.ViewAt(At(60)).pauses, 2u);
  // A shorter ban inside the current one is not news either.
  EXPECT_FALSE(q.OnThrottle(9, "s9", ThrottleReportOf(100), kMaxHint, At(70)));
}

TEST(FleetPauseTest, NoHintPausesForTheDefaultAndSaysThrottled) {
  FleetPause p(PauseOptions());
  ASSERT_TRUE(p.OnThrottle(7, "s7", ThrottleReportOf(99999, false, ""),
                           kMaxHint, At(0)));
  EXPECT_THAT(p.Announce(7, At(0)), IsOrder(7, 1, seconds(1), true));
  EXPECT_EQ(p.ViewAt(At(0)).reason, "throttled");
}

TEST(FleetPauseTest, HintsAreCappedAtTheMaxHintGiven) {
  FleetPause p(PauseOptions());
  // A hint that would overflow a Duration.
  ASSERT_TRUE(p.OnThrottle(7, "s7", ThrottleReportOf(~0ull), kMaxHint, At(0)));
  EXPECT_THAT(p.Announce(7, At(0)), IsOrder(7, 1, seconds(60), true));
  // A reload lowered max_pause to 10 s after this pause was created.
  FleetPause q(PauseOptions());
  ASSERT_TRUE(
      q.OnThrottle(7, "s7", ThrottleReportOf(30000), seconds(10), At(0)));
  EXPECT_THAT(q.Announce(7, At(0)), IsOrder(7, 1, seconds(10), true));
}

TEST(FleetPauseTest, OneProbeThenARampFromRampStartToTheFullRate) {
  FleetPause p(PauseOptions());
  ASSERT_TRUE(p.OnThrottle(7, "s7", ThrottleReportOf(1000), kMaxHint, At(0)));
  FleetPause::Step step = p.Advance(At(500));
  EXPECT_FALSE(step.probe_due);
  EXPECT_FALSE(step.ramp_started);
  EXPECT_TRUE(p.halted());
  EXPECT_EQ(p.rate_fraction(), 1);  // the upstream refills while paused
  // The pause is over: the probe is due until it is granted.
  EXPECT_TRUE(p.Advance(At(1000)).probe_due);
  EXPECT_TRUE(p.Advance(At(1050)).probe_due);
  EXPECT_TRUE(p.halted());
  EXPECT_EQ(p.rate_fraction(), 1);
  p.ProbeGranted();
  EXPECT_FALSE(p.Advance(At(1100)).probe_due);
  // Only the prober's answer to this pause counts.
  p.OnProbeResult(8, 1, At(1200));
  p.OnProbeResult(7, 2, At(1200));
  EXPECT_FALSE(p.Advance(At(1200)).ramp_started);
  EXPECT_EQ(p.ViewAt(At(1200)).phase, Phase::kProbing);
  p.OnProbeResult(7, 1, At(1300));
  step = p.Advance(At(1300));
  EXPECT_TRUE(step.ramp_started);
  EXPECT_FALSE(step.probe_due);
  EXPECT_FALSE(p.halted());
  EXPECT_DOUBLE_EQ(p.rate_fraction(), 0.1);
  EXPECT_DOUBLE_EQ(p.ViewAt(At(1300)).rate_fraction, 0.1);
  // Linear over the 1 s ramp; the ramp starts once.
  EXPECT_FALSE(p.Advance(At(1800)).ramp_started);
  EXPECT_DOUBLE_EQ(p.rate_fraction(), 0.55);
  EXPECT_EQ(p.ViewAt(At(1800)).phase, Phase::kRamping);
  p.Advance(At(2300));
  EXPECT_EQ(p.rate_fraction(), 1);
  EXPECT_FALSE(p.halted());
  EXPECT_EQ(p.ViewAt(At(2300)).phase, Phase::kRunning);
}

TEST(FleetPauseTest, NoProbeAnswerRampsAfterTheProbeTimeout) {
  FleetPause p(PauseOptions());
  ASSERT_TRUE(p.OnThrottle(7, "s7", ThrottleReportOf(1000), kMaxHint, At(0)));
  EXPECT_TRUE(p.Advance(At(1000)).probe_due);
  p.ProbeGranted();
  EXPECT_FALSE(p.Advance(At(2999)).ramp_started);
  EXPECT_TRUE(p.halted());
  EXPECT_TRUE(p.Advance(At(3000)).ramp_started);  // 2 s probe timeout
  EXPECT_FALSE(p.halted());
  EXPECT_DOUBLE_EQ(p.rate_fraction(), 0.1);
}

TEST(FleetPauseTest, AThrottleWhileRampingHaltsAgainWithBackoff) {
  FleetPause p(PauseOptions());
  ASSERT_TRUE(
      p.OnThrottle(7, "s7", ThrottleReportOf(0, false), kMaxHint, At(0)));
  p.Advance(At(1000));
  p.ProbeGranted();
  p.OnProbeResult(7, 1, At(1000));
  p.Advance(At(1500));
  ASSERT_LT(p.rate_fraction(), 1);
  EXPECT_TRUE(
      p.OnThrottle(8, "s8", ThrottleReportOf(0, false), kMaxHint, At(1500)));
  EXPECT_TRUE(p.halted());
  EXPECT_EQ(p.rate_fraction(), 1);
  EXPECT_THAT(p.Announce(8, At(1500)), IsOrder(8, 2, seconds(2), true));
  // A new probe for the new pause.
  EXPECT_FALSE(p.Advance(At(3499)).probe_due);
  EXPECT_TRUE(p.Advance(At(3500)).probe_due);
}

TEST(FleetPauseTest, AReplacedProberIsToldAndItsAnswerCounts) {
  FleetPause p(PauseOptions());
  ASSERT_TRUE(p.OnThrottle(7, "s7", ThrottleReportOf(1000), kMaxHint, At(0)));
  ASSERT_TRUE(p.Advance(At(1000)).probe_due);
  EXPECT_THAT(p.ReplaceProber(9), IsOrder(9, 1, Duration::zero(), true));
  EXPECT_EQ(p.prober(), 9u);
  EXPECT_TRUE(p.Advance(At(1050)).probe_due);  // still to be granted
  p.ProbeGranted();
  p.OnProbeResult(7, 1, At(1100));  // the old prober no longer counts
  EXPECT_FALSE(p.Advance(At(1100)).ramp_started);
  p.OnProbeResult(9, 1, At(1200));
  EXPECT_TRUE(p.Advance(At(1200)).ramp_started);
}

TEST(FleetPauseTest, TheLastAckGivesThePropagationTime) {
  FleetPause p(PauseOptions());
  ASSERT_TRUE(p.OnThrottle(1, "s1", ThrottleReportOf(5000), kMaxHint, At(0)));
  for (StreamId s = 1; s <= 3; ++s) p.Announce(s, At(0));
  EXPECT_EQ(p.OnPauseAck(1, 1, At(2)), std::nullopt);
  EXPECT_EQ(p.OnPauseAck(1, 1, At(3)), std::nullopt);  // again: ignored
  EXPECT_EQ(p.OnPauseAck(4, 1, At(3)), std::nullopt);  // never told
  EXPECT_EQ(p.OnPauseAck(2, 5, At(3)), std::nullopt);  // no such pause
  EXPECT_EQ(p.OnPauseAck(2, 1, At(4)), std::nullopt);
  // The last ack was held and names an earlier time: the latest
  // application counts.
  EXPECT_THAT(p.OnPauseAck(3, 1, At(1)), Optional(milliseconds(4)));
  EXPECT_EQ(p.OnPauseAck(3, 1, At(5)), std::nullopt);  // already complete
}

TEST(FleetPauseTest, AnExtensionWhileAcksAreOutCountsFromTheFirstBroadcast) {
  FleetPause p(PauseOptions());
  ASSERT_TRUE(p.OnThrottle(1, "s1", ThrottleReportOf(3000), kMaxHint, At(0)));
  p.Announce(1, At(0));
  p.Announce(2, At(0));
  ASSERT_TRUE(p.OnThrottle(2, "s2", ThrottleReportOf(6000), kMaxHint, At(2)));
  p.Announce(1, At(2));
  p.Announce(2, At(2));
  EXPECT_EQ(p.OnPauseAck(1, 1, At(3)), std::nullopt);
  EXPECT_THAT(p.OnPauseAck(2, 2, At(5)), Optional(milliseconds(5)));
  // Every ack in: the next extension is measured from its own broadcast,
  // and acks of the earlier pauses no longer count.
  ASSERT_TRUE(p.OnThrottle(1, "s1", ThrottleReportOf(9000), kMaxHint, At(10)));
  p.Announce(1, At(10));
  p.Announce(2, At(10));
  EXPECT_EQ(p.OnPauseAck(1, 2, At(11)), std::nullopt);
  EXPECT_EQ(p.OnPauseAck(1, 3, At(11)), std::nullopt);
  EXPECT_THAT(p.OnPauseAck(2, 3, At(12)), Optional(milliseconds(2)));
}

TEST(FleetPauseTest, AJoinerHearsOfThePauseOnlyWhilePaused) {
  FleetPause p(PauseOptions());
  EXPECT_EQ(p.PauseFor(5, At(0)), std::nullopt);
  ASSERT_TRUE(p.OnThrottle(1, "s1", ThrottleReportOf(2000), kMaxHint, At(0)));
  EXPECT_THAT(p.PauseFor(5, At(500)),
              Optional(IsOrder(5, 1, milliseconds(1500), false)));
  EXPECT_EQ(p.PauseFor(5, At(2000)), std::nullopt);  // probing
}

// --- Through the QuotaAllocator -------------------------------------------

SidecarMessage Throttle(uint64_t pause_ms, bool has_hint = true,
                        const std::string& reason = "retry-after") {
  SidecarMessage m;
  auto* t = m.mutable_throttle();
  t->mutable_bucket()->set_resource("api");
  t->set_status(429);
  t->set_pause_ms(pause_ms);
  t->set_has_hint(has_hint);
  t->set_reason(reason);
  return m;
}

SidecarMessage ProbeOk(uint64_t pause_id) {
  SidecarMessage m;
  m.mutable_probe_result()->mutable_bucket()->set_resource("api");
  m.mutable_probe_result()->set_pause_id(pause_id);
  return m;
}

SidecarMessage Ack(uint64_t pause_id) {
  SidecarMessage m;
  m.mutable_pause_ack()->mutable_bucket()->set_resource("api");
  m.mutable_pause_ack()->set_pause_id(pause_id);
  return m;
}

std::vector<Pause> PausesTo(const Outbox& out, StreamId s) {
  std::vector<Pause> pauses;
  for (const auto& [id, msg] : out.messages) {
    if (id == s && msg.has_pause()) pauses.push_back(msg.pause());
  }
  return pauses;
}

double TokensTo(const Outbox& out, StreamId s) {
  double sum = 0;
  for (const auto& g : GrantsTo(out, s)) sum += g.tokens();
  return sum;
}

class LedgerPauseTest : public QuotaAllocatorTest {
 protected:
  // Three busy sidecars on rate 100, burst 50, pause ramp 1 s from 10%.
  void SetUp() override {
    ServerConfig c = Config(100, 50);
    c.resources[0].pause.ramp = seconds(1);
    c.resources[0].pause.ramp_start = 0.1;
    c.resources[0].pause.probe_timeout = seconds(2);
    c.resources[0].pause.default_pause = seconds(1);
    Make(c);
    for (StreamId s = 1; s <= 3; ++s) {
      Connect(s, "s" + std::to_string(s), At(0));
      Send(s, Report({.allowed = 10}), At(100));
    }
  }
  // Every sidecar reports as busy with nothing held; returns the tokens
  // granted to each in the Ticks of [from, to) ms.
  std::vector<double> Run(int from, int to) {
    std::vector<double> got(4, 0);
    for (int t = from; t < to; t += 50) {
      for (StreamId s = 1; s <= 3; ++s) {
        got[s] += TokensTo(
            Send(s, Report({.allowed = 5, .elapsed_ms = 50, .seen = 1000000}),
                 At(t)),
            s);
      }
      const Outbox out = Tick(At(t));
      for (StreamId s = 1; s <= 3; ++s) got[s] += TokensTo(out, s);
    }
    return got;
  }
};

TEST_F(LedgerPauseTest, ThrottleBroadcastsToEveryMemberAndStopsGrants) {
  Run(150, 1000);
  const Outbox out = Send(2, Throttle(3000), At(1000));
  for (StreamId s = 1; s <= 3; ++s) {
    const auto p = PausesTo(out, s);
    ASSERT_THAT(p, SizeIs(1)) << s;
    EXPECT_EQ(p[0].remaining_ms(), 3000u);
    EXPECT_EQ(p[0].bucket().resource(), "api");
    EXPECT_EQ(p[0].reason(), "retry-after");
    EXPECT_EQ(p[0].origin_sidecar(), "s2");
    EXPECT_EQ(p[0].prober(), s == 2);
    EXPECT_EQ(p[0].ramp_ms(), 1000u);
    EXPECT_EQ(p[0].pause_id(), 1u);
  }
  // No tokens for anyone until the pause ends.
  const auto got = Run(1000, 4000);
  EXPECT_EQ(got[1] + got[2] + got[3], 0);
  const auto st = Res(At(2000));
  ASSERT_THAT(st.pauses, SizeIs(1));
  EXPECT_EQ(st.pauses[0].phase, PauseSchedule::Phase::kPaused);
  EXPECT_EQ(st.pauses[0].origin_sidecar, "s2");
  EXPECT_EQ(st.pauses[0].remaining, seconds(2));
  ASSERT_THAT(st.pauses_by_reason, SizeIs(1));
  EXPECT_EQ(st.pauses_by_reason[0],
            (std::pair<std::string, uint64_t>{"retry-after", 1}));
}

TEST_F(LedgerPauseTest, OverlappingThrottlesMergeAndOnlyALaterEndIsSent) {
  Send(1, Throttle(3000), At(1000));
  // A straggler's 429 asking for less changes nothing: no message at all.
  EXPECT_THAT(Send(3, Throttle(1000), At(1200)).messages, SizeIs(0));
  // One asking for more extends the pause for everyone, with a new id.
  const Outbox out = Send(3, Throttle(5000), At(1500));
  for (StreamId s = 1; s <= 3; ++s) {
    const auto p = PausesTo(out, s);
    ASSERT_THAT(p, SizeIs(1));
    EXPECT_EQ(p[0].remaining_ms(), 5000u);
    EXPECT_EQ(p[0].pause_id(), 2u);
  }
  EXPECT_EQ(Res(At(6400)).pauses[0].phase, PauseSchedule::Phase::kPaused);
  EXPECT_EQ(Res(At(6500)).pauses[0].phase, PauseSchedule::Phase::kProbing);
}

TEST_F(LedgerPauseTest, TheSameBanSeenAMessageDelayLaterIsNotRebroadcast) {
  Send(1, Throttle(3000), At(1000));
  // A request already on its way met the same ban: its hint, counted from
  // a little later, moves the end by 30 ms. One ban, one broadcast.
  EXPECT_THAT(Send(2, Throttle(3000), At(1030)).messages, SizeIs(0));
  EXPECT_EQ(Res(At(1030)).pauses[0].pause_id, 1u);
  // The schedule still keeps the latest end: probing starts at 4030.
  EXPECT_EQ(Res(At(4020)).pauses[0].phase, PauseSchedule::Phase::kPaused);
  EXPECT_EQ(Res(At(4030)).pauses[0].phase, PauseSchedule::Phase::kProbing);
}

TEST_F(LedgerPauseTest,
       PropagationOfAnExtendedPauseCountsFromItsFirstBroadcast) {
  Send(1, Throttle(3000), At(1000));
  Send(2, Throttle(6000), At(1002));  // extended: pause 2
  Send(1, Ack(1), At(1003));
  Send(2, Ack(2), At(1004));
  Send(3, Ack(1), At(1005));  // the first broadcast's ack still counts
  const auto h = alloc_->Snapshot(At(1006)).pause_propagation;
  ASSERT_EQ(h.count, 1u);
  EXPECT_NEAR(h.sum, 0.005, 1e-9);
}

TEST_F(LedgerPauseTest, JoinerDuringAPauseHearsOfItInItsFirstAnswer) {
  Send(1, Throttle(2000), At(1000));
  Connect(9, "late", At(1100));
  const Outbox out = Send(9, Report({.queued = 3, .elapsed_ms = 0}), At(1200));
  const auto p = PausesTo(out, 9);
  ASSERT_THAT(p, SizeIs(1));
  EXPECT_EQ(p[0].remaining_ms(), 1800u);
  EXPECT_FALSE(p[0].prober());
  EXPECT_EQ(TokensTo(out, 9), 0);
}

TEST_F(LedgerPauseTest, OneProbeTokenThenARampFromAnEmptyLevel) {
  Run(150, 1000);
  Send(2, Throttle(1000), At(1000));
  // At the end of the pause the prober alone gets one token.
  auto got = Run(2000, 2500);
  EXPECT_EQ(got[2], 1);
  EXPECT_EQ(got[1] + got[3], 0);
  EXPECT_EQ(Res(At(2500)).pauses[0].phase, PauseSchedule::Phase::kProbing);
  // The probe went through: the ramp starts, refilling from 10% of the
  // rate to 100% over 1 s, so about 55 tokens in that second, not the 100
  // (plus a saved-up burst) of a stampede.
  Send(2, ProbeOk(1), At(2500));
  got = Run(2500, 3500);
  const double ramp_total = got[1] + got[2] + got[3];
  EXPECT_GT(ramp_total, 40);
  EXPECT_LT(ramp_total, 60);
  // Each sidecar got a part of it.
  for (StreamId s = 1; s <= 3; ++s) EXPECT_GT(got[s], 5) << s;
  EXPECT_THAT(Res(At(3600)).pauses, SizeIs(0));  // running again
  got = Run(3600, 4600);
  EXPECT_NEAR(got[1] + got[2] + got[3], 100, 10);
}

TEST_F(LedgerPauseTest, ProbeResultFromAnotherSidecarOrPauseIsIgnored) {
  Send(2, Throttle(1000), At(1000));
  Run(2000, 2100);
  Send(1, ProbeOk(1), At(2100));  // not the prober
  Send(2, ProbeOk(7), At(2100));  // not this pause
  EXPECT_EQ(Res(At(2200)).pauses[0].phase, PauseSchedule::Phase::kProbing);
}

TEST_F(LedgerPauseTest, NoProbeAnswerRampsAfterTheProbeTimeout) {
  Send(2, Throttle(1000), At(1000));
  Run(2000, 3950);
  EXPECT_EQ(Res(At(3950)).pauses[0].phase, PauseSchedule::Phase::kProbing);
  Run(4000, 4100);
  EXPECT_EQ(Res(At(4100)).pauses[0].phase, PauseSchedule::Phase::kRamping);
}

TEST_F(LedgerPauseTest, ThrottledProbeExtendsThePauseWithBackoff) {
  Send(2, Throttle(0, /*has_hint=*/false, "status"), At(1000));  // 1 s
  Run(2000, 2100);
  const Outbox out = Send(2, Throttle(0, false, "status"), At(2100));
  const auto p = PausesTo(out, 1);
  ASSERT_THAT(p, SizeIs(1));
  EXPECT_EQ(p[0].remaining_ms(), 2000u);  // backed off: 1 s * 2
}

TEST_F(LedgerPauseTest, GoneProberIsReplacedByTheBusiestMember) {
  Send(2, Throttle(1000), At(1000));
  alloc_->Close(2, At(1500));
  Outbox all;
  for (int t = 1550; t <= 2100; t += 50) {
    Outbox out = Tick(At(t));
    for (auto& m : out.messages) all.messages.push_back(m);
  }
  const double to1 = TokensTo(all, 1);
  const double to3 = TokensTo(all, 3);
  EXPECT_EQ(to1 + to3, 1);
  const StreamId chosen = to1 == 1 ? 1 : 3;
  const auto p = PausesTo(all, chosen);
  ASSERT_THAT(p, SizeIs(1));
  EXPECT_TRUE(p[0].prober());
  EXPECT_EQ(p[0].remaining_ms(), 0u);
}

TEST_F(LedgerPauseTest, LastAckRecordsThePropagationTime) {
  Send(1, Throttle(5000), At(1000));
  Send(1, Ack(1), At(1001));
  Send(2, Ack(1), At(1002));
  EXPECT_EQ(alloc_->Snapshot(At(1003)).pause_propagation.count, 0u);
  Send(3, Ack(99), At(1003));  // wrong pause: ignored
  EXPECT_EQ(alloc_->Snapshot(At(1003)).pause_propagation.count, 0u);
  Send(3, Ack(1), At(1004));
  const auto h = alloc_->Snapshot(At(1005)).pause_propagation;
  EXPECT_EQ(h.count, 1u);
  EXPECT_NEAR(h.sum, 0.004, 1e-9);
  EXPECT_EQ(h.counts[3], 1u);  // (2 ms, 5 ms]
}

TEST_F(LedgerPauseTest, AHeldAckCountsFromWhenThePauseWasApplied) {
  Send(1, Throttle(5000), At(1000));
  Send(1, Ack(1), At(1001));
  Send(2, Ack(1), At(1002));
  // Came as a datagram 6 ms after the pause, held 5 ms of them.
  SidecarMessage held = Ack(1);
  held.mutable_pause_ack()->set_held_us(5000);
  Send(3, held, At(1006));
  const auto h = alloc_->Snapshot(At(1007)).pause_propagation;
  EXPECT_EQ(h.count, 1u);
  EXPECT_NEAR(h.sum, 0.002, 1e-9);  // the later of 2 ms and 6 - 5 ms
}

TEST_F(LedgerPauseTest, AReportThatCameTwiceCountsOnce) {
  // The same report by datagram and, later, on the stream.
  SidecarMessage r = Throttle(3000);
  r.mutable_throttle()->set_report_id(7);
  EXPECT_THAT(PausesTo(Send(2, r, At(1000)), 1), SizeIs(1));
  // 100 ms later it would extend the pause (a new broadcast) were it news.
  EXPECT_THAT(Send(2, r, At(1100)).messages, SizeIs(0));
  EXPECT_EQ(alloc_->Snapshot(At(1100)).duplicate_reports, 1u);
  // Another sidecar's report with the same id is its own.
  EXPECT_THAT(PausesTo(Send(3, r, At(1200)), 1), SizeIs(1));
  // A newer report of the same sidecar is news; one without an id too.
  r.mutable_throttle()->set_report_id(8);
  EXPECT_THAT(PausesTo(Send(2, r, At(1300)), 1), SizeIs(1));
  EXPECT_THAT(PausesTo(Send(2, Throttle(3000), At(1400)), 1), SizeIs(1));
  EXPECT_THAT(PausesTo(Send(2, Throttle(3000), At(1500)), 1), SizeIs(1));
  EXPECT_EQ(alloc_->Snapshot(At(1500)).duplicate_reports, 1u);
  const auto st = Res(At(1500));
  ASSERT_THAT(st.pauses_by_reason, SizeIs(1));
  EXPECT_EQ(st.pauses_by_reason[0].second, 5u);
}

TEST_F(LedgerPauseTest, ThrottleForAnUnknownBucketIsIgnored) {
  SidecarMessage m = Throttle(1000);
  m.mutable_throttle()->mutable_bucket()->set_resource("nope");
  EXPECT_THAT(Send(1, m, At(1000)).messages, SizeIs(0));
  EXPECT_EQ(alloc_->Snapshot(At(1000)).ignored_reports, 1u);
}

TEST_F(LedgerPauseTest, HugeHintsAreClampedToTheConfiguredMaximum) {
  const Outbox out = Send(1, Throttle(~0ull), At(1000));
  const auto p = PausesTo(out, 1);
  ASSERT_THAT(p, SizeIs(1));
  EXPECT_EQ(p[0].remaining_ms(), 300000u);  // max 5 m
}

TEST_F(QuotaAllocatorTest, LearnedLimitLowersTheRateInForceAndAnnouncesIt) {
  ServerConfig c = Config(100, 50);
  c.resources[0].learn = true;
  c.resources[0].learn_options = {
      .decrease = 0.5, .increase = 0.1, .hold = seconds(2), .floor = 0.05};
  Make(c);
  Connect(1, "a", At(0));
  Send(1, Report({.allowed = 5}), At(100));
  // A throttle without limit headers: 100 -> 50, pushed on the next Tick.
  Send(1, Throttle(1000), At(1000));
  auto r = Res(At(1000));
  EXPECT_TRUE(r.learning_limit);
  EXPECT_EQ(r.rate_per_second, 100);
  EXPECT_EQ(r.learned_rate_per_second, 50);
  EXPECT_EQ(r.effective_rate_per_second, 50);
  const auto limits = LimitsTo(Tick(At(1050)), 1);
  ASSERT_THAT(limits, SizeIs(1));
  EXPECT_EQ(limits[0].rate_per_second(), 50);
  // The headers stated 30 per second: taken at once.
  SidecarMessage stated = Throttle(5000);
  stated.mutable_throttle()->set_limit(1800);
  stated.mutable_throttle()->set_window_ms(60000);
  Send(1, stated, At(2000));
  EXPECT_NEAR(Res(At(2000)).effective_rate_per_second, 30, 1e-9);
  // After the hold it creeps back: +10/s per second, to 100 by ~16 s.
  Tick(At(9000));
  EXPECT_NEAR(Res(At(9000)).effective_rate_per_second, 30 + 10 * 5, 1e-6);
  Tick(At(20000));
  r = Res(At(20000));
  EXPECT_EQ(r.effective_rate_per_second, 100);
  EXPECT_EQ(r.learned_rate_per_second, 0);
}

// Ordinary responses that state the limit (IETF RateLimit-Policy, ...)
// reach the server in demand reports: learned without any throttle, shown
// in /status, and ignored by a resource that does not learn.
TEST_F(QuotaAllocatorTest, LimitStatedInDemandReportsIsLearned) {
  ServerConfig c = Config(100, 50);
  c.resources[0].learn = true;
  c.resources.push_back(c.resources[0]);
  c.resources[1].name = "plain";
  c.resources[1].learn = false;
  Make(c);
  Connect(1, "a", At(0));
  SidecarMessage m = Report({.allowed = 5});
  m.mutable_demand()->set_stated_limit(600);
  m.mutable_demand()->set_stated_window_ms(10000);  // 60/s
  Send(1, m, At(100));
  auto r = Res(At(100));
  EXPECT_EQ(r.effective_rate_per_second, 60);
  EXPECT_EQ(r.learned_rate_per_second, 60);
  EXPECT_EQ(r.stated_rate_per_second, 60);
  const auto limits = LimitsTo(Tick(At(150)), 1);
  ASSERT_THAT(limits, SizeIs(1));
  EXPECT_EQ(limits[0].rate_per_second(), 60);

  m.mutable_demand()->mutable_bucket()->set_resource("plain");
  Send(1, m, At(200));
  const auto all = alloc_->Snapshot(At(200)).resources;
  ASSERT_THAT(all, SizeIs(2));
  for (const auto& res : all) {
    if (res.name != "plain") continue;
    EXPECT_EQ(res.effective_rate_per_second, 100);
    EXPECT_EQ(res.stated_rate_per_second, 0);
  }
}

}  // namespace
}  // namespace allocator_test
}  // namespace sluice
