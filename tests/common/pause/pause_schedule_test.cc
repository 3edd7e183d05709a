#include "common/pause/pause_schedule.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Phase = PauseSchedule::Phase;

const TimePoint kT0 = TimePoint(seconds(100));
TimePoint At(int ms) { return kT0 + milliseconds(ms); }

PauseSchedule::Options Opts() {
  PauseSchedule::Options o;
  o.default_pause = seconds(1);
  o.max_pause = seconds(60);
  o.backoff_factor = 2;
  o.probe_timeout = seconds(2);
  o.ramp = seconds(4);
  o.ramp_start = 0.2;
  return o;
}

TEST(PauseScheduleTest, StartsRunningAtFullRate) {
  PauseSchedule s(Opts());
  EXPECT_EQ(s.PhaseAt(At(0)), Phase::kRunning);
  EXPECT_EQ(s.RateFraction(At(0)), 1);
}

TEST(PauseScheduleTest, HintedPauseThenProbeThenRampThenRunning) {
  PauseSchedule s(Opts());
  EXPECT_EQ(s.Throttle(seconds(3), At(0)), At(3000));
  EXPECT_EQ(s.PhaseAt(At(2999)), Phase::kPaused);
  EXPECT_EQ(s.RateFraction(At(2999)), 0);
  EXPECT_EQ(s.PhaseAt(At(3000)), Phase::kProbing);
  EXPECT_EQ(s.RateFraction(At(3100)), 0);
  s.ProbeSucceeded(At(3500));
  EXPECT_EQ(s.PhaseAt(At(3500)), Phase::kRamping);
  EXPECT_DOUBLE_EQ(s.RateFraction(At(3500)), 0.2);
  EXPECT_DOUBLE_EQ(s.RateFraction(At(5500)), 0.6);  // halfway
  EXPECT_EQ(s.PhaseAt(At(7499)), Phase::kRamping);
  EXPECT_EQ(s.PhaseAt(At(7500)), Phase::kRunning);
  EXPECT_EQ(s.RateFraction(At(7500)), 1);
}

TEST(PauseScheduleTest, NoProbeAnswerRampsAfterTheTimeout) {
  PauseSchedule s(Opts());
  s.Throttle(std::nullopt, At(0));  // default 1 s
  EXPECT_EQ(s.PhaseAt(At(1000)), Phase::kProbing);
  EXPECT_EQ(s.PhaseAt(At(2999)), Phase::kProbing);
  EXPECT_EQ(s.PhaseAt(At(3000)), Phase::kRamping);
  EXPECT_EQ(s.phase_since(), At(3000));
}

TEST(PauseScheduleTest, OverlappingPausesMergeLatestEndWins) {
  PauseSchedule s(Opts());
  s.Throttle(seconds(5), At(0));
  // A shorter one inside does not shorten it.
  EXPECT_EQ(s.Throttle(seconds(1), At(1000)), At(5000));
  EXPECT_FALSE(s.PauseUntil(At(4000), At(1000)));
  // A longer one extends it.
  EXPECT_EQ(s.Throttle(seconds(6), At(2000)), At(8000));
  EXPECT_TRUE(s.PauseUntil(At(9000), At(2000)));
  EXPECT_EQ(s.paused_until(), At(9000));
  // Throttles while paused are the same episode: no backoff.
  EXPECT_EQ(s.repeats(), 0);
  EXPECT_EQ(s.PhaseAt(At(8999)), Phase::kPaused);
  EXPECT_EQ(s.PhaseAt(At(9000)), Phase::kProbing);
}

TEST(PauseScheduleTest, ThrottledProbeBacksOff) {
  PauseSchedule s(Opts());
  s.Throttle(std::nullopt, At(0));  // 1 s
  ASSERT_EQ(s.PhaseAt(At(1000)), Phase::kProbing);
  // The probe is throttled without a hint: 2 s.
  EXPECT_EQ(s.Throttle(std::nullopt, At(1100)), At(3100));
  EXPECT_EQ(s.repeats(), 1);
  ASSERT_EQ(s.PhaseAt(At(3100)), Phase::kProbing);
  // Again, with a hint shorter than the backoff: the backoff (4 s) wins.
  EXPECT_EQ(s.Throttle(milliseconds(500), At(3200)), At(7200));
  // Throttled while ramping counts too (8 s, or the longer hint).
  s.ProbeSucceeded(At(7300));
  ASSERT_EQ(s.PhaseAt(At(7300)), Phase::kRamping);
  EXPECT_EQ(s.Throttle(seconds(10), At(7400)), At(17400));
  EXPECT_EQ(s.repeats(), 3);
}

TEST(PauseScheduleTest, RepeatsResetAfterACompletedRamp) {
  PauseSchedule s(Opts());
  s.Throttle(std::nullopt, At(0));
  s.Throttle(std::nullopt, At(1000));  // probing: repeat -> 2 s
  ASSERT_EQ(s.repeats(), 1);
  s.ProbeSucceeded(At(3000));
  ASSERT_EQ(s.PhaseAt(At(7000)), Phase::kRunning);
  EXPECT_EQ(s.repeats(), 0);
  EXPECT_EQ(s.Throttle(std::nullopt, At(8000)), At(9000));
}

TEST(PauseScheduleTest, PausesAreClampedToTheMaximum) {
  PauseSchedule s(Opts());
  EXPECT_EQ(s.Throttle(std::chrono::hours(5), At(0)), At(60000));
  // Negative hints are clamped to 0: straight to probing.
  PauseSchedule t(Opts());
  EXPECT_EQ(t.Throttle(seconds(-3), At(0)), At(0));
  EXPECT_EQ(t.PhaseAt(At(0)), Phase::kProbing);
  // Backoff saturates at the maximum instead of overflowing.
  PauseSchedule u(Opts());
  u.Throttle(std::nullopt, At(0));
  TimePoint now = At(0);
  for (int i = 0; i < 200; ++i) {
    now = u.paused_until();
    ASSERT_EQ(u.PhaseAt(now), Phase::kProbing);
    u.Throttle(std::nullopt, now);
  }
  EXPECT_EQ(u.paused_until() - now, seconds(60));
}

TEST(PauseScheduleTest, RemotePauseInterruptsARamp) {
  PauseSchedule s(Opts());
  s.Throttle(seconds(1), At(0));
  s.ProbeSucceeded(At(1000));
  ASSERT_EQ(s.PhaseAt(At(1500)), Phase::kRamping);
  EXPECT_TRUE(s.PauseUntil(At(4000), At(1500)));
  EXPECT_EQ(s.PhaseAt(At(1500)), Phase::kPaused);
  EXPECT_EQ(s.RateFraction(At(3999)), 0);
  // An echo of a pause already over does nothing.
  EXPECT_FALSE(s.PauseUntil(At(4000), At(4100)));
  EXPECT_EQ(s.PhaseAt(At(4100)), Phase::kProbing);
}

TEST(PauseScheduleTest,
     ProbeSuccessOutsideProbingIsIgnoredAndTimeNeverGoesBack) {
  PauseSchedule s(Opts());
  s.ProbeSucceeded(At(0));
  EXPECT_EQ(s.PhaseAt(At(0)), Phase::kRunning);
  s.Throttle(seconds(2), At(1000));
  s.ProbeSucceeded(At(1500));  // still paused
  EXPECT_EQ(s.PhaseAt(At(1500)), Phase::kPaused);
  EXPECT_EQ(s.PhaseAt(At(3000)), Phase::kProbing);
  EXPECT_EQ(s.PhaseAt(At(0)), Phase::kProbing);  // earlier now: no rewind
}

TEST(PauseScheduleTest, ZeroRampResumesAtFullRateAfterTheProbe) {
  auto o = Opts();
  o.ramp = Duration::zero();
  PauseSchedule s(o);
  s.Throttle(seconds(1), At(0));
  s.ProbeSucceeded(At(1200));
  EXPECT_EQ(s.PhaseAt(At(1200)), Phase::kRunning);
  EXPECT_EQ(s.RateFraction(At(1200)), 1);
}

TEST(PauseScheduleTest, PhaseNames) {
  EXPECT_EQ(PausePhaseName(Phase::kRunning), "running");
  EXPECT_EQ(PausePhaseName(Phase::kPaused), "paused");
  EXPECT_EQ(PausePhaseName(Phase::kProbing), "probing");
  EXPECT_EQ(PausePhaseName(Phase::kRamping), "ramping");
}

}  // namespace
}  // namespace sluice
