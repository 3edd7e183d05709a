#include "proxy/pause/bucket_pause.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "common/time/duration.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using Phase = PauseSchedule::Phase;
using Event = BucketPause::Event;

const TimePoint kT0 = TimePoint(seconds(100));
TimePoint At(int ms) { return kT0 + milliseconds(ms); }

// Exact, jitter-free options: default pause 1 s, probe timeout 2 s, a 4 s
// ramp from half of 10 requests/s.
BucketPause::Options Opts() {
  BucketPause::Options o;
  o.schedule.default_pause = seconds(1);
  o.schedule.max_pause = seconds(60);
  o.schedule.backoff_factor = 2;
  o.schedule.probe_timeout = seconds(2);
  o.schedule.ramp = seconds(4);
  o.schedule.ramp_start = 0.5;
  o.full_rate_per_second = 10;
  o.resume_jitter = Duration::zero();
  o.seed = 1;
  return o;
}

// Records what the callbacks saw.
struct Recorder {
  std::vector<Event> events;
  int pauses = 0;         // on_pause calls, local or remote
  int remote_pauses = 0;  // of which on_pause(true)
  void Attach(BucketPause& t) {
    t.set_callbacks([this](const Event& e) { events.push_back(e); },
                    [this](bool remote, bool) {
                      ++pauses;
                      if (remote) ++remote_pauses;
                    });
  }
};

// Pauses `t` for 1 s at At(0) (hinted, local: on_pause runs, no event) and
// sends the probe at At(1000): `t` is then probing with the probe out.
void PauseAndProbe(BucketPause& t) {
  ASSERT_EQ(t.OnThrottled({.status = 429,
                           .hint = seconds(1),
                           .broadcast = false,
                           .admitted_at = At(0)},
                          At(0)),
            At(1000));
  ASSERT_TRUE(t.Allows(At(1000)));
  t.Took(1, At(1000));
}

TEST(BucketPauseTest, StartsRunningWithoutConstraint) {
  BucketPause t(Opts());
  EXPECT_EQ(t.PhaseAt(At(0)), Phase::kRunning);
  EXPECT_TRUE(t.Allows(At(0)));
  EXPECT_EQ(t.ReadyAt(At(0)), At(0));
  EXPECT_EQ(t.Remaining(At(0)), Duration::zero());
  for (int i = 0; i < 100; ++i) t.Took(1, At(0));  // no pacing when running
  EXPECT_TRUE(t.Allows(At(0)));
  const BucketPause::Stats s = t.stats();
  EXPECT_EQ(s.pauses, 0u);
  EXPECT_EQ(s.remote_pauses, 0u);
  EXPECT_EQ(s.probes, 0u);
}

TEST(BucketPauseTest, HintedThrottlePausesUntilNowPlusHint) {
  BucketPause t(Opts());
  EXPECT_EQ(t.OnThrottled({.status = 429,
                           .hint = seconds(3),
                           .reason = "slow down",
                           .broadcast = false,
                           .admitted_at = At(0)},
                          At(10)),
            At(3010));
  // Time only moves forward through each test.
  EXPECT_EQ(t.PhaseAt(At(10)), Phase::kPaused);
  EXPECT_FALSE(t.Allows(At(10)));
  EXPECT_EQ(t.ReadyAt(At(10)), At(3010));
  EXPECT_EQ(t.Remaining(At(10)), seconds(3));
  EXPECT_EQ(t.ReadyAt(At(2000)), At(3010));
  EXPECT_EQ(t.Remaining(At(2010)), seconds(1));
  EXPECT_FALSE(t.Allows(At(3009)));
  // The end: probing, and the probe may go.
  EXPECT_TRUE(t.Allows(At(3010)));
  EXPECT_EQ(t.ReadyAt(At(3010)), At(3010));
  EXPECT_EQ(t.PhaseAt(At(3010)), Phase::kProbing);
  EXPECT_EQ(t.Remaining(At(3010)), Duration::zero());
}

TEST(BucketPauseTest, UnhintedThrottleUsesTheDefaultPause) {
  BucketPause t(Opts());
  EXPECT_EQ(
      t.OnThrottled({.status = 503, .broadcast = false, .admitted_at = At(0)},
                    At(0)),
      At(1000));
  EXPECT_FALSE(t.Allows(At(999)));
  EXPECT_TRUE(t.Allows(At(1000)));
}

TEST(BucketPauseTest, ZeroHintGoesStraightToProbing) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  EXPECT_EQ(t.OnThrottled({.status = 429,
                           .hint = Duration::zero(),
                           .broadcast = true,
                           .admitted_at = At(0)},
                          At(0)),
            At(0));
  EXPECT_EQ(t.PhaseAt(At(0)), Phase::kProbing);
  EXPECT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.pauses, 1);
  EXPECT_TRUE(t.Allows(At(0)));  // the probe
  t.Took(1, At(0));
  EXPECT_FALSE(t.Allows(At(0)));
}

TEST(BucketPauseTest, BroadcastThrottleReportsStatusHintAndReason) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  t.OnThrottled({.status = 429,
                 .hint = seconds(3),
                 .reason = "retry-after",
                 .broadcast = true,
                 .admitted_at = At(0)},
                At(0));
  ASSERT_EQ(r.events.size(), 1u);
  const Event& e = r.events[0];
  EXPECT_EQ(e.kind, Event::Kind::kThrottled);
  EXPECT_EQ(e.status, 429u);
  EXPECT_EQ(e.hint, std::optional<Duration>(seconds(3)));
  EXPECT_EQ(e.reason, "retry-after");
  EXPECT_FALSE(e.probe);
  EXPECT_EQ(r.pauses, 1);
  EXPECT_EQ(r.remote_pauses, 0);
  EXPECT_EQ(t.stats().pauses, 1u);
}

TEST(BucketPauseTest, UnhintedBroadcastReportsNoHint) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  t.OnThrottled({.status = 503,
                 .reason = "overloaded",
                 .broadcast = true,
                 .admitted_at = At(0)},
                At(0));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].status, 503u);
  EXPECT_FALSE(r.events[0].hint.has_value());
  EXPECT_EQ(r.events[0].reason, "overloaded");
}

TEST(BucketPauseTest, LocalThrottleRunsOnPauseButReportsNothing) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  t.OnThrottled({.status = 429,
                 .hint = seconds(3),
                 .reason = "local",
                 .broadcast = false,
                 .admitted_at = At(0)},
                At(0));
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(r.pauses, 1);
  EXPECT_EQ(r.remote_pauses, 0);
  EXPECT_EQ(t.stats().pauses, 1u);
  EXPECT_FALSE(t.Allows(At(100)));
}

TEST(BucketPauseTest, ShorterThrottleWhilePausedChangesNothing) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  t.OnThrottled({.status = 429,
                 .hint = seconds(5),
                 .broadcast = true,
                 .admitted_at = At(0)},
                At(0));
  // Ends at At(2000), inside the pause in force: no event, no on_pause.
  EXPECT_EQ(t.OnThrottled({.status = 429,
                           .hint = seconds(1),
                           .broadcast = true,
                           .admitted_at = At(900)},
                          At(1000)),
            At(5000));
  EXPECT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.pauses, 1);
  EXPECT_EQ(t.stats().pauses, 1u);
  EXPECT_EQ(t.ReadyAt(At(1000)), At(5000));
}

TEST(BucketPauseTest, LongerThrottleWhilePausedExtendsAndReports) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  t.OnThrottled({.status = 429,
                 .hint = seconds(5),
                 .broadcast = true,
                 .admitted_at = At(0)},
                At(0));
  EXPECT_EQ(t.OnThrottled({.status = 429,
                           .hint = seconds(10),
                           .reason = "more",
                           .broadcast = true,
                           .admitted_at = At(900)},
                          At(1000)),
            At(11000));
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[1].hint, std::optional<Duration>(seconds(10)));
  EXPECT_EQ(r.events[1].reason, "more");
  EXPECT_EQ(r.pauses, 2);
  EXPECT_EQ(t.stats().pauses, 2u);
  EXPECT_FALSE(t.Allows(At(10999)));
  EXPECT_TRUE(t.Allows(At(11000)));
}

TEST(BucketPauseTest, ResumeJitterIsWithinBoundAndVaries) {
  std::set<TimePoint> resumes;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    BucketPause::Options o = Opts();
    o.resume_jitter = milliseconds(50);
    o.seed = seed;
    BucketPause t(o);
    // The returned end is the schedule's, without jitter.
    ASSERT_EQ(t.OnThrottled({.status = 429,
                             .hint = seconds(1),
                             .broadcast = false,
                             .admitted_at = At(0)},
                            At(0)),
              At(1000));
    const TimePoint resume = t.ReadyAt(At(0));
    EXPECT_GE(resume, At(1000)) << seed;
    EXPECT_LT(resume, At(1050)) << seed;
    EXPECT_EQ(t.Remaining(At(0)), resume - At(0)) << seed;
    if (resume > At(1000)) {
      EXPECT_FALSE(t.Allows(resume - nanoseconds(1))) << seed;
      EXPECT_EQ(t.ReadyAt(resume - nanoseconds(1)), resume) << seed;
    }
    EXPECT_TRUE(t.Allows(resume)) << seed;
    resumes.insert(resume);
  }
  // Twenty seeds do not all draw the same jitter.
  EXPECT_GT(resumes.size(), 10u);
}

TEST(BucketPauseTest, SameSeedSameJitter) {
  BucketPause::Options o = Opts();
  o.resume_jitter = milliseconds(50);
  o.seed = 7;
  BucketPause a(o);
  BucketPause b(o);
  a.OnThrottled({.status = 429,
                 .hint = seconds(1),
                 .broadcast = false,
                 .admitted_at = At(0)},
                At(0));
  b.OnThrottled({.status = 429,
                 .hint = seconds(1),
                 .broadcast = false,
                 .admitted_at = At(0)},
                At(0));
  EXPECT_EQ(a.ReadyAt(At(0)), b.ReadyAt(At(0)));
}

TEST(BucketPauseTest, ProbingAllowsExactlyOneTake) {
  BucketPause t(Opts());
  t.OnThrottled({.status = 429,
                 .hint = seconds(1),
                 .broadcast = false,
                 .admitted_at = At(0)},
                At(0));
  EXPECT_TRUE(t.Allows(At(1000)));
  EXPECT_TRUE(t.Allows(At(1000)));  // asking does not send
  t.Took(1, At(1000));
  EXPECT_EQ(t.stats().probes, 1u);
  EXPECT_FALSE(t.Allows(At(1000)));
  // Without an answer the next request may go when the probe times out.
  EXPECT_EQ(t.ReadyAt(At(1500)), At(3000));
  EXPECT_FALSE(t.Allows(At(2999)));
  EXPECT_EQ(t.PhaseAt(At(2999)), Phase::kProbing);
}

TEST(BucketPauseTest, ProbeAnswerStartsTheRampAndReportsThePauseId) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  t.OnThrottled({.status = 429,
                 .hint = seconds(1),
                 .broadcast = true,
                 .admitted_at = At(0)},
                At(0));
  EXPECT_TRUE(t.OnRemotePause(seconds(2), 42, At(500)));  // ends At(2500)
  ASSERT_TRUE(t.Allows(At(2500)));
  t.Took(1, At(2500));
  t.OnAnswered(At(2500), At(2700));
  EXPECT_EQ(t.PhaseAt(At(2700)), Phase::kRamping);
  EXPECT_TRUE(t.Allows(At(2700)));
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[0].kind, Event::Kind::kThrottled);
  EXPECT_EQ(r.events[1].kind, Event::Kind::kProbeOk);
  EXPECT_EQ(r.events[1].pause_id, 42u);
  // A second answer (another request) reports nothing more.
  t.OnAnswered(At(2700), At(2800));
  EXPECT_EQ(r.events.size(), 2u);
}

TEST(BucketPauseTest, ProbeOkCarriesTheLatestRemotePauseId) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  t.OnRemotePause(seconds(1), 5, At(0));
  t.OnRemotePause(seconds(2), 6, At(0));
  ASSERT_TRUE(t.Allows(At(2000)));
  t.Took(1, At(2000));
  t.OnAnswered(At(2000), At(2100));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].kind, Event::Kind::kProbeOk);
  EXPECT_EQ(r.events[0].pause_id, 6u);
}

TEST(BucketPauseTest, AnswerToAnOlderRequestDoesNotEndTheProbe) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  PauseAndProbe(t);
  t.OnAnswered(At(999), At(1200));  // admitted before the probe
  EXPECT_EQ(t.PhaseAt(At(1200)), Phase::kProbing);
  EXPECT_FALSE(t.Allows(At(1200)));
  EXPECT_TRUE(r.events.empty());
  // The probe's own answer does.
  t.OnAnswered(At(1000), At(1300));
  EXPECT_EQ(t.PhaseAt(At(1300)), Phase::kRamping);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].kind, Event::Kind::kProbeOk);
}

TEST(BucketPauseTest, AnswerBeforeAnyProbeIsSentIsIgnored) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  t.OnThrottled({.status = 429,
                 .hint = seconds(1),
                 .broadcast = false,
                 .admitted_at = At(0)},
                At(0));
  t.OnAnswered(At(1000), At(1000));  // probing, but no probe out
  EXPECT_EQ(t.PhaseAt(At(1000)), Phase::kProbing);
  EXPECT_TRUE(r.events.empty());
  // While paused, too.
  BucketPause u(Opts());
  u.OnThrottled({.status = 429,
                 .hint = seconds(1),
                 .broadcast = false,
                 .admitted_at = At(0)},
                At(0));
  u.OnAnswered(At(500), At(500));
  EXPECT_EQ(u.PhaseAt(At(500)), Phase::kPaused);
}

TEST(BucketPauseTest, UnansweredProbeTimesOutIntoTheRamp) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  PauseAndProbe(t);
  EXPECT_FALSE(t.Allows(At(2999)));
  EXPECT_EQ(t.PhaseAt(At(3000)), Phase::kRamping);
  EXPECT_TRUE(t.Allows(At(3000)));
  EXPECT_TRUE(r.events.empty());  // no probe success to report
}

TEST(BucketPauseTest, ThrottledProbeBacksOffAndIsFlagged) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  t.OnThrottled({.status = 429, .broadcast = true, .admitted_at = At(0)},
                At(0));  // until 1000
  ASSERT_TRUE(t.Allows(At(1000)));
  t.Took(1, At(1000));
  // A repeat: default 1 s * 2^1, more than the 500 ms asked for.
  EXPECT_EQ(t.OnThrottled({.status = 429,
                           .hint = milliseconds(500),
                           .reason = "again",
                           .broadcast = true,
                           .admitted_at = At(1000)},
                          At(1100)),
            At(3100));
  EXPECT_EQ(t.PhaseAt(At(1100)), Phase::kPaused);
  EXPECT_FALSE(t.Allows(At(3099)));
  EXPECT_TRUE(t.Allows(At(3100)));
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_FALSE(r.events[0].probe);
  EXPECT_EQ(r.events[1].kind, Event::Kind::kThrottled);
  EXPECT_TRUE(r.events[1].probe);
  EXPECT_EQ(r.events[1].reason, "again");
  EXPECT_EQ(r.pauses, 2);
  EXPECT_EQ(t.stats().pauses, 2u);
  // The new probe may go; its own throttle backs off further (2 s * 2).
  t.Took(1, At(3100));
  EXPECT_EQ(t.stats().probes, 2u);
  EXPECT_EQ(
      t.OnThrottled({.status = 429, .broadcast = true, .admitted_at = At(3100)},
                    At(3200)),
      At(7200));
}

TEST(BucketPauseTest, StragglerThrottleWhileProbingIsIgnored) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  t.OnThrottled({.status = 429,
                 .hint = seconds(1),
                 .broadcast = true,
                 .admitted_at = At(0)},
                At(0));
  // Admitted before the pause ended, answered while probing.
  EXPECT_EQ(t.OnThrottled({.status = 429,
                           .hint = seconds(30),
                           .broadcast = true,
                           .admitted_at = At(0)},
                          At(1050)),
            At(1000));
  EXPECT_EQ(t.PhaseAt(At(1050)), Phase::kProbing);
  EXPECT_TRUE(t.Allows(At(1050)));
  EXPECT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.pauses, 1);
  EXPECT_EQ(t.stats().pauses, 1u);
}

TEST(BucketPauseTest, StragglerThrottleWhileRampingIsIgnored) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  PauseAndProbe(t);
  t.OnAnswered(At(1000), At(1100));
  ASSERT_EQ(t.PhaseAt(At(1100)), Phase::kRamping);
  EXPECT_EQ(t.OnThrottled({.status = 429,
                           .hint = seconds(30),
                           .broadcast = true,
                           .admitted_at = At(999)},
                          At(1200)),
            At(1000));
  EXPECT_EQ(t.PhaseAt(At(1200)), Phase::kRamping);
  EXPECT_EQ(r.pauses, 1);  // the first pause only
  EXPECT_EQ(t.stats().pauses, 1u);
}

TEST(BucketPauseTest, ThrottleOfARampRequestPausesWithBackoff) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  PauseAndProbe(t);
  t.OnAnswered(At(1000), At(1100));
  ASSERT_TRUE(t.Allows(At(1100)));
  t.Took(1, At(1100));
  // A repeat: 2 s backoff.
  EXPECT_EQ(
      t.OnThrottled({.status = 429, .broadcast = true, .admitted_at = At(1100)},
                    At(1150)),
      At(3150));
  EXPECT_EQ(t.PhaseAt(At(1150)), Phase::kPaused);
  ASSERT_EQ(r.events.size(), 2u);  // probe ok, then the throttle
  EXPECT_EQ(r.events[1].kind, Event::Kind::kThrottled);
  EXPECT_FALSE(r.events[1].probe);
  EXPECT_EQ(r.pauses, 2);
}

TEST(BucketPauseTest, RampPacesAtTheFractionOfTheFullRate) {
  BucketPause t(Opts());
  PauseAndProbe(t);
  t.OnAnswered(At(1000), At(1000));  // ramp starts at At(1000)
  ASSERT_EQ(t.PhaseAt(At(1000)), Phase::kRamping);
  // 10/s * 0.5 = 5/s: 200 ms apart.
  ASSERT_TRUE(t.Allows(At(1000)));
  t.Took(1, At(1000));
  EXPECT_FALSE(t.Allows(At(1000)));
  EXPECT_EQ(t.ReadyAt(At(1100)), At(1200));
  EXPECT_FALSE(t.Allows(At(1199)));
  EXPECT_TRUE(t.Allows(At(1200)));
  t.Took(1, At(1200));
  // 200 ms into a 4 s ramp: 0.5 + 0.5 * 0.05 = 0.525 -> 5.25/s.
  const TimePoint next = At(1200) + FromSeconds(1 / 5.25);
  EXPECT_EQ(t.ReadyAt(At(1200)), next);
  EXPECT_FALSE(t.Allows(next - nanoseconds(1)));
  EXPECT_TRUE(t.Allows(next));
  // A take of cost 2 waits twice as long.
  t.Took(2, next);
  const double rate = 10 * (0.5 + 0.5 * ToSeconds(next - At(1000)) / 4);
  EXPECT_EQ(t.ReadyAt(next), next + FromSeconds(2 / rate));
}

TEST(BucketPauseTest, RampPaceGrowsTowardsTheFullRate) {
  BucketPause t(Opts());
  PauseAndProbe(t);
  t.OnAnswered(At(1000), At(1000));
  // Back-to-back takes: the gaps shrink from 200 ms towards 100 ms.
  TimePoint now = At(1000);
  Duration first_gap{}, last_gap{};
  int takes = 0;
  while (t.PhaseAt(now) == Phase::kRamping) {
    ASSERT_TRUE(t.Allows(now));
    t.Took(1, now);
    ++takes;
    const TimePoint next = t.ReadyAt(now);
    if (takes == 1) first_gap = next - now;
    // The gap that the ramp's end cuts short is not a pace.
    if (t.PhaseAt(next) == Phase::kRamping) last_gap = next - now;
    now = next;
  }
  EXPECT_EQ(first_gap, milliseconds(200));
  EXPECT_GT(last_gap, milliseconds(100));
  EXPECT_LT(last_gap, milliseconds(103));
  // Between 4 s * 5/s and 4 s * 10/s takes fit in the ramp.
  EXPECT_GT(takes, 20);
  EXPECT_LT(takes, 40);
}

TEST(BucketPauseTest, RunningAgainAfterTheRamp) {
  BucketPause t(Opts());
  PauseAndProbe(t);
  t.OnAnswered(At(1000), At(1000));
  ASSERT_TRUE(t.Allows(At(4990)));
  t.Took(1, At(4990));  // paced ~100 ms into the running phase
  EXPECT_FALSE(t.Allows(At(4999)));
  EXPECT_EQ(t.PhaseAt(At(5000)), Phase::kRunning);
  EXPECT_TRUE(t.Allows(At(5000)));
  t.Took(1, At(5000));
  EXPECT_TRUE(t.Allows(At(5000)));
  EXPECT_EQ(t.ReadyAt(At(5000)), At(5000));
}

TEST(BucketPauseTest, RemotePauseMovesTheEndOnlyLater) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  EXPECT_TRUE(t.OnRemotePause(seconds(5), 7, At(0)));
  EXPECT_EQ(t.PhaseAt(At(0)), Phase::kPaused);
  EXPECT_EQ(t.ReadyAt(At(0)), At(5000));
  EXPECT_EQ(t.Remaining(At(1000)), seconds(4));
  EXPECT_EQ(r.pauses, 1);
  EXPECT_TRUE(r.events.empty());  // the server knows already
  // Earlier end: nothing.
  EXPECT_FALSE(t.OnRemotePause(seconds(2), 8, At(1000)));
  EXPECT_EQ(t.ReadyAt(At(1000)), At(5000));
  EXPECT_EQ(r.pauses, 1);
  // Later end: extends.
  EXPECT_TRUE(t.OnRemotePause(seconds(10), 9, At(1000)));
  EXPECT_EQ(t.ReadyAt(At(1000)), At(11000));
  EXPECT_EQ(r.pauses, 2);
  EXPECT_EQ(r.remote_pauses, 2);
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(t.stats().remote_pauses, 2u);
  EXPECT_EQ(t.stats().pauses, 0u);
}

TEST(BucketPauseTest, RemotePauseWithNothingLeftIsIgnored) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  EXPECT_FALSE(t.OnRemotePause(Duration::zero(), 1, At(0)));
  EXPECT_FALSE(t.OnRemotePause(-seconds(3), 2, At(0)));
  EXPECT_EQ(t.PhaseAt(At(0)), Phase::kRunning);
  EXPECT_TRUE(t.Allows(At(0)));
  EXPECT_EQ(r.pauses, 0);
  EXPECT_EQ(t.stats().remote_pauses, 0u);
}

TEST(BucketPauseTest, RemotePauseShorterThanTheLocalOneIsIgnored) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  t.OnThrottled({.status = 429,
                 .hint = seconds(5),
                 .broadcast = false,
                 .admitted_at = At(0)},
                At(0));
  EXPECT_FALSE(t.OnRemotePause(seconds(1), 3, At(100)));
  EXPECT_EQ(t.ReadyAt(At(100)), At(5000));
  EXPECT_EQ(r.pauses, 1);
}

TEST(BucketPauseTest, RemotePauseWhileProbingCancelsTheProbe) {
  BucketPause t(Opts());
  Recorder r;
  r.Attach(t);
  PauseAndProbe(t);
  EXPECT_TRUE(t.OnRemotePause(seconds(1), 4, At(1100)));  // until At(2100)
  EXPECT_EQ(t.PhaseAt(At(1100)), Phase::kPaused);
  // The old probe's answer, arriving in the pause, does not end anything.
  t.OnAnswered(At(1000), At(1500));
  EXPECT_EQ(t.PhaseAt(At(1500)), Phase::kPaused);
  EXPECT_FALSE(t.Allows(At(2099)));
  // A fresh probe may go at the new end.
  EXPECT_TRUE(t.Allows(At(2100)));
  t.Took(1, At(2100));
  EXPECT_FALSE(t.Allows(At(2100)));
  // A late answer to the old probe does not end the new one.
  t.OnAnswered(At(1000), At(2200));
  EXPECT_EQ(t.PhaseAt(At(2200)), Phase::kProbing);
  EXPECT_TRUE(r.events.empty());
  t.OnAnswered(At(2100), At(2300));
  EXPECT_EQ(t.PhaseAt(At(2300)), Phase::kRamping);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].pause_id, 4u);
}

TEST(BucketPauseTest, RemainingIsZeroOutsideThePause) {
  BucketPause t(Opts());
  EXPECT_EQ(t.Remaining(At(0)), Duration::zero());
  t.OnThrottled({.status = 429,
                 .hint = seconds(2),
                 .broadcast = false,
                 .admitted_at = At(0)},
                At(0));
  EXPECT_EQ(t.Remaining(At(0)), seconds(2));
  EXPECT_EQ(t.Remaining(At(1500)), milliseconds(500));
  EXPECT_EQ(t.Remaining(At(2000)), Duration::zero());  // probing
  t.Took(1, At(2000));
  t.OnAnswered(At(2000), At(2000));
  EXPECT_EQ(t.Remaining(At(2100)), Duration::zero());  // ramping
  EXPECT_EQ(t.Remaining(At(9000)), Duration::zero());  // running
}

TEST(BucketPauseTest, StatsCountMovesAndProbes) {
  BucketPause t(Opts());
  t.OnThrottled({.status = 429,
                 .hint = seconds(1),
                 .broadcast = false,
                 .admitted_at = At(0)},
                At(0));  // +1 pause
  t.OnThrottled({.status = 429,
                 .hint = seconds(1),
                 .broadcast = false,
                 .admitted_at = At(0)},
                At(100));  // +1 (later)
  t.OnThrottled({.status = 429,
                 .hint = milliseconds(10),
                 .broadcast = false,
                 .admitted_at = At(0)},
                At(200));                   // no
  t.OnRemotePause(seconds(3), 1, At(300));  // +1 remote, until At(3300)
  t.OnRemotePause(seconds(1), 2, At(400));  // no
  ASSERT_TRUE(t.Allows(At(3300)));
  t.Took(1, At(3300));   // +1 probe
  t.Took(1, At(20000));  // running by now: not a probe
  const BucketPause::Stats s = t.stats();
  EXPECT_EQ(s.pauses, 2u);
  EXPECT_EQ(s.remote_pauses, 1u);
  EXPECT_EQ(s.probes, 1u);
}

TEST(BucketPauseTest, CallbacksAreOptional) {
  BucketPause t(Opts());  // no set_callbacks
  t.OnThrottled({.status = 429,
                 .hint = seconds(1),
                 .broadcast = true,
                 .admitted_at = At(0)},
                At(0));
  t.OnRemotePause(seconds(2), 1, At(0));
  t.Took(1, At(2000));
  t.OnAnswered(At(2000), At(2000));
  EXPECT_EQ(t.PhaseAt(At(2000)), Phase::kRamping);
}

// Concurrent throttles and remote pauses: every move of the end is counted
// once and runs on_pause once; every broadcast move is reported once; the
// latest end wins.
TEST(BucketPauseTest, ConcurrentPausesKeepCountersConsistent) {
  BucketPause t(Opts());
  std::atomic<int> events{0};
  std::atomic<int> local_pauses{0};
  std::atomic<int> remote_pauses{0};
  t.set_callbacks([&](const Event&) { events.fetch_add(1); },
                  [&](bool remote, bool) {
                    (remote ? remote_pauses : local_pauses).fetch_add(1);
                  });
  constexpr int kThreads = 4;
  constexpr int kIters = 2000;
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&t, th] {
      for (int i = 1; i <= kIters; ++i) {
        const Duration d = milliseconds(i * kThreads + th);
        if (th % 2 == 0) {
          t.OnThrottled({.status = 429,
                         .hint = d,
                         .broadcast = true,
                         .admitted_at = At(0)},
                        At(0));
        } else {
          t.OnRemotePause(d, static_cast<uint64_t>(i * kThreads + th), At(0));
        }
        t.Allows(At(0));
        t.Took(1, At(0));
      }
    });
  }
  for (std::thread& th : threads) th.join();
  const BucketPause::Stats s = t.stats();
  // Which side moved the end how often depends on the interleaving (a
  // thread that runs ahead leaves the other nothing to move); the counts
  // must match the callbacks whatever it was.
  EXPECT_GE(s.pauses + s.remote_pauses, 1u);
  EXPECT_EQ(static_cast<uint64_t>(events.load()), s.pauses);
  EXPECT_EQ(static_cast<uint64_t>(local_pauses.load()), s.pauses);
  EXPECT_EQ(static_cast<uint64_t>(remote_pauses.load()), s.remote_pauses);
  EXPECT_EQ(s.probes, 0u);  // never out of the pause
  EXPECT_EQ(t.ReadyAt(At(0)), At(0) + milliseconds(kIters * kThreads + 3));
}

// --- Edge cases ----------------------------------------------------------

// Remaining() includes the jitter: after the schedule's end (probing) and
// before end + jitter nothing may go yet, and Remaining() says so.
TEST(BucketPauseTest, RemainingIncludesTheJitterAfterTheScheduleEnd) {
  BucketPause::Options o = Opts();
  o.resume_jitter = milliseconds(50);
  o.seed = 3;
  BucketPause t(o);
  t.OnThrottled({.status = 429,
                 .hint = seconds(1),
                 .broadcast = false,
                 .admitted_at = At(0)},
                At(0));
  const TimePoint resume = t.ReadyAt(At(0));
  ASSERT_GT(resume, At(1000)) << "pick a seed with a non-zero jitter";
  ASSERT_FALSE(t.Allows(At(1000)));
  EXPECT_EQ(t.Remaining(At(1000)), resume - At(1000));
}

// The resume jitter is capped at half the probe timeout, so a jittered
// probe still has time to be answered, and nothing goes before it.
TEST(BucketPauseTest, NothingGoesBeforeTheJitteredResume) {
  BucketPause::Options o = Opts();
  o.schedule.probe_timeout = seconds(1);
  o.resume_jitter = seconds(10);
  for (uint64_t seed = 1; seed < 50; ++seed) {
    o.seed = seed;
    BucketPause t(o);
    t.OnThrottled({.status = 429,
                   .hint = seconds(1),
                   .broadcast = false,
                   .admitted_at = At(0)},
                  At(0));
    const TimePoint resume = t.ReadyAt(At(0));
    EXPECT_GE(resume, At(1000)) << seed;
    EXPECT_LT(resume, At(1500)) << seed;
    EXPECT_FALSE(t.Allows(resume - nanoseconds(1))) << seed;
    EXPECT_TRUE(t.Allows(resume)) << seed;
  }
}

// A ramp entered by the probe timing out starts with a fresh pace, not the
// slot an earlier, interrupted ramp left behind (with the full rate at 1/s
// and ramp_start 0.1, a take set that slot 10 s later).
TEST(BucketPauseTest, StragglerThrottleWhilePausedIsNotReported) {
  BucketPause::Options o = Opts();
  o.resume_jitter = Duration::zero();
  BucketPause t(o);
  int events = 0;
  t.set_callbacks([&](const BucketPause::Event&) { ++events; },
                  [](bool, bool) {});
  t.OnThrottled({.status = 429,
                 .hint = seconds(2),
                 .reason = "retry-after",
                 .broadcast = true,
                 .admitted_at = At(0)},
                At(10));
  ASSERT_EQ(events, 1);
  // Sent at At(5), before the pause began at At(10): the same ban, merged
  // locally (the end moves to At(2020)) but not reported again.
  EXPECT_EQ(t.OnThrottled({.status = 429,
                           .hint = seconds(2),
                           .reason = "retry-after",
                           .broadcast = true,
                           .admitted_at = At(5)},
                          At(20)),
            At(2020));
  EXPECT_EQ(events, 1);
  EXPECT_EQ(t.stats().pauses, 1u);
}

TEST(BucketPauseTest, RampAfterProbeTimeoutStartsAFreshPace) {
  BucketPause::Options o = Opts();
  o.full_rate_per_second = 1;
  o.schedule.ramp_start = 0.1;
  BucketPause t(o);
  PauseAndProbe(t);
  t.OnAnswered(At(1000), At(1000));
  ASSERT_TRUE(t.Allows(At(1000)));
  t.Took(1, At(1000));  // next ramp slot: At(11000)
  // That request is throttled: repeat, 2 s pause until At(3100).
  ASSERT_EQ(t.OnThrottled(
                {.status = 429, .broadcast = false, .admitted_at = At(1000)},
                At(1100)),
            At(3100));
  ASSERT_TRUE(t.Allows(At(3100)));
  t.Took(1, At(3100));  // the probe; never answered
  ASSERT_EQ(t.PhaseAt(At(5100)), Phase::kRamping);
  EXPECT_TRUE(t.Allows(At(5100)));
  EXPECT_EQ(t.ReadyAt(At(5100)) - kT0, milliseconds(5100));
}

// ReadyAt() is never later than the ramp's end, where pacing stops: a take
// at At(4990) would set the next slot to ~At(5090), but the ramp ends at
// At(5000).
TEST(BucketPauseTest, ReadyAtNotLaterThanTheRampEnd) {
  BucketPause t(Opts());
  PauseAndProbe(t);
  t.OnAnswered(At(1000), At(1000));  // ramp At(1000)..At(5000)
  ASSERT_TRUE(t.Allows(At(4990)));
  t.Took(1, At(4990));
  ASSERT_FALSE(t.Allows(At(4999)));
  EXPECT_EQ(t.ReadyAt(At(4999)) - kT0, milliseconds(5000));
  EXPECT_TRUE(t.Allows(At(5000)));  // (time only moves forward)
}

TEST(BucketPauseTest, StatedLimitsAreSampledAndHandedOverOnce) {
  BucketPause off(Opts());  // no interval: a standalone bucket
  EXPECT_FALSE(off.WantsStatedLimit(At(0)));

  BucketPause::Options o = Opts();
  o.stated_limit_interval = milliseconds(250);
  BucketPause t(o);
  EXPECT_TRUE(t.WantsStatedLimit(At(0)));
  EXPECT_FALSE(t.WantsStatedLimit(At(1)));
  EXPECT_FALSE(t.WantsStatedLimit(At(249)));
  EXPECT_TRUE(t.WantsStatedLimit(At(250)));
  EXPECT_FALSE(t.WantsStatedLimit(At(300)));

  EXPECT_FALSE(t.TakeStatedLimit().has_value());
  t.NoteStatedLimit({.limit = 100, .window = seconds(60)});
  t.NoteStatedLimit({.limit = 90, .window = seconds(60)});      // latest wins
  t.NoteStatedLimit({.limit = -1, .window = seconds(60)});      // ignored
  t.NoteStatedLimit({.limit = 5, .window = Duration::zero()});  // ignored
  auto got = t.TakeStatedLimit();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->limit, 90);
  EXPECT_EQ(got->window, seconds(60));
  EXPECT_FALSE(t.TakeStatedLimit().has_value());  // handed over once
}

// The stream's reaction applies a Pause at once and the agent applies the
// same message again later: counted once. A restarted server that reuses
// the id for a later end still moves it.
TEST(BucketPauseTest, SameRemotePauseTwiceIsOnePause) {
  BucketPause t(Opts());
  int pauses = 0;
  std::vector<bool> started;
  t.set_callbacks(nullptr, [&](bool, bool s) {
    ++pauses;
    started.push_back(s);
  });
  EXPECT_TRUE(t.OnRemotePause(seconds(2), 7, At(0)));
  EXPECT_FALSE(t.OnRemotePause(seconds(2), 7, At(3)));  // the agent, later
  EXPECT_EQ(pauses, 1);
  EXPECT_EQ(t.stats().remote_pauses, 1u);
  EXPECT_TRUE(t.OnRemotePause(seconds(2), 7, At(500)));  // reused id
  EXPECT_EQ(pauses, 2);
  // A throttle of a request sent during the pause extends it locally.
  t.OnThrottled({.status = 429,
                 .hint = seconds(5),
                 .reason = "retry-after",
                 .broadcast = true,
                 .admitted_at = At(600)},
                At(700));
  EXPECT_EQ(pauses, 3);
  // Only the first was a start: the bucket was paused for the others.
  EXPECT_EQ(started, (std::vector<bool>{true, false, false}));
  EXPECT_EQ(t.Remaining(At(500)) >= seconds(2), true);
}

}  // namespace
}  // namespace sluice
