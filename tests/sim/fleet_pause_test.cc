// The fleet-wide pause over many seeds (docs/pause.md): propagation with and
// without message loss, overlapping throttles, an upstream that
// under-reports its ban, and a resume that must not trip an upstream that
// has recovered. The real allocator, lease agent, limiter and BucketPause
// run on fake time against a simulated upstream that answers 429.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tests/sim/fleet_sim.h"

namespace sluice::sim {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kNsPerSecond = 1'000'000'000;

int64_t Ns(double seconds) {
  return static_cast<int64_t>(std::llround(seconds * kNsPerSecond));
}

SimConfig Base(uint64_t seed) {
  SimConfig c;
  c.seed = seed;
  c.sidecars = 8;
  c.rate_per_second = 200;
  c.burst = 40;
  c.duration = seconds(9);
  c.max_wait = seconds(5);
  // 154/s in all, under the limit; different rates so that the sidecars'
  // requests are not in step.
  c.demand = [](size_t i, double) { return 14.0 + 1.5 * i; };
  c.pause.default_pause = seconds(1);
  c.pause.probe_timeout = milliseconds(500);
  c.pause.ramp = seconds(1);
  c.pause.ramp_start = 0.2;
  return c;
}

// Time from the upstream's first 429 of the ban to the last arrival before
// the ban ends: how long the fleet took to stop (requests in flight
// included).
struct BanOutcome {
  int64_t first_429 = -1;
  uint64_t after_stop = 0;       // arrivals in [first_429 + stop, ban end)
  uint64_t throttled_after = 0;  // 429s after the ban ended
  uint64_t after_ban = 0;        // arrivals in [ban end, end)
};

BanOutcome Measure(const SimConfig& c, const SimResult& r, double ban_at,
                   double ban_end, Duration stop) {
  BanOutcome o;
  for (int64_t t : r.throttled) {
    if (t >= Ns(ban_at)) {
      o.first_429 = t;
      break;
    }
  }
  if (o.first_429 < 0) return o;
  o.after_stop = r.ArrivalsBetween(o.first_429 + stop.count(), Ns(ban_end));
  o.after_ban = r.ArrivalsBetween(Ns(ban_end), Ns(1e6));
  o.throttled_after = static_cast<uint64_t>(
      std::count_if(r.throttled.begin(), r.throttled.end(),
                    [&](int64_t t) { return t >= Ns(ban_end); }));
  return o;
}

// Propagation bound without loss: the report up (<= 2 ms), the push down
// (<= 2 ms), a sidecar step (5 ms), the 429 travelling back (<= 1 ms) and
// requests already on their way (<= 1 ms): 20 ms is generous.
constexpr auto kStop = milliseconds(20);

TEST(FleetPause, OneThrottleStopsTheWholeFleetAndItResumes) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.bans = {{.at = 3.0, .seconds = 2.0}};
    const SimResult r = RunFleet(c);
    const BanOutcome o = Measure(c, r, 3.0, 5.0, kStop);
    ASSERT_GE(o.first_429, 0) << seed;
    EXPECT_EQ(o.after_stop, 0u) << "seed " << seed;
    EXPECT_EQ(o.throttled_after, 0u) << "seed " << seed;
    // Traffic is back: over the last 2 s the fleet sends its demand.
    EXPECT_GT(r.TotalBetween(7, 9) / 2, 0.9 * 154) << "seed " << seed;
    // Only the requests in flight when the ban began met it.
    EXPECT_LE(r.throttled.size(), 8u + 2) << "seed " << seed;
  }
}

TEST(FleetPause, LostReportsAndPushesStillStopTheFleetQuickly) {
  // 10% of control messages lost both ways: a sidecar that misses the push
  // learns from its own next 429 (and reports it too), so a few more
  // requests meet the ban, but the fleet still stops within a few request
  // intervals, and nobody resumes early.
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.loss = 0.1;
    c.bans = {{.at = 3.0, .seconds = 2.0}};
    const SimResult r = RunFleet(c);
    const BanOutcome o = Measure(c, r, 3.0, 5.0, milliseconds(200));
    ASSERT_GE(o.first_429, 0) << seed;
    EXPECT_EQ(o.after_stop, 0u) << "seed " << seed;
    EXPECT_EQ(o.throttled_after, 0u) << "seed " << seed;
    EXPECT_LE(r.throttled.size(), 3u * 8) << "seed " << seed;
    EXPECT_GT(r.TotalBetween(7, 9) / 2, 0.8 * 154) << "seed " << seed;
  }
}

TEST(FleetPause, OverlappingBansMergeAndTheLatestEndWins) {
  // A second, longer ban starts while the first is paused: the fleet only
  // learns of it when the probe meets it, extends the pause (the latest end
  // wins), and sends nothing more until it is over.
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.bans = {{.at = 3.0, .seconds = 1.0}, {.at = 3.5, .seconds = 2.5}};
    const SimResult r = RunFleet(c);
    // The probe after the first ban (at ~4 s) meets the second: allow it and
    // its stragglers, then silence until 6 s.
    const uint64_t during = r.ArrivalsBetween(Ns(4.0), Ns(6.0));
    EXPECT_LE(during, 2u) << "seed " << seed;
    EXPECT_EQ(r.ArrivalsBetween(Ns(4.1), Ns(6.0)), 0u) << "seed " << seed;
    const BanOutcome o = Measure(c, r, 3.0, 6.0, kStop);
    EXPECT_EQ(o.throttled_after, 0u) << "seed " << seed;
    EXPECT_GT(r.TotalBetween(7.5, 9) / 1.5, 0.9 * 154) << "seed " << seed;
  }
}

TEST(FleetPause, UnderReportedBanIsProbedWithBackoffNotHammered) {
  // The upstream says 1 s but bans for 4 s: each probe is throttled and the
  // pause backs off (1 s, 2 s, 4 s: the fleet is back at ~9.5 s), so only
  // a handful of requests meet the ban after the first one.
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.duration = seconds(12);
    c.bans = {{.at = 2.5, .seconds = 4.0, .hint = false}};
    const SimResult r = RunFleet(c);
    const uint64_t probes_met = r.ArrivalsBetween(Ns(2.5) + Ns(0.05), Ns(6.5));
    EXPECT_LE(probes_met, 4u) << "seed " << seed;
    const BanOutcome o = Measure(c, r, 2.5, 6.5, kStop);
    EXPECT_EQ(o.throttled_after, 0u) << "seed " << seed;
    EXPECT_GT(o.after_ban, 0u) << "seed " << seed;
  }
}

TEST(FleetPause, ResumeRampNeverTripsARecoveredUpstream) {
  // Demand twice the limit builds a backlog during the ban; the upstream
  // enforces exactly the fleet's limit afterwards (its bucket as deep as the
  // documented bound allows: burst + rate * jitter). The probe and the ramp
  // release the backlog without a single 429.
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.demand = [](size_t, double) { return 50.0; };  // 400/s
    c.bans = {{.at = 3.0, .seconds = 1.5}};
    c.upstream_rate = c.rate_per_second;
    const double j = std::chrono::duration<double>(c.upstream_delay_max -
                                                   c.upstream_delay_min)
                         .count();
    c.upstream_burst = c.burst + c.rate_per_second * j + 1;
    const SimResult r = RunFleet(c);
    const BanOutcome o = Measure(c, r, 3.0, 4.5, kStop);
    ASSERT_GE(o.first_429, 0) << seed;
    EXPECT_EQ(o.after_stop, 0u) << "seed " << seed;
    EXPECT_EQ(o.throttled_after, 0u) << "seed " << seed;
    // And the limit is used again once the ramp is done.
    EXPECT_GT(r.TotalBetween(7, 9) / 2, 0.9 * c.rate_per_second)
        << "seed " << seed;
  }
}

// Throttles (429s) and served requests (arrivals minus 429s) in [from, to).
std::pair<uint64_t, uint64_t> Served(const SimResult& r, double from,
                                     double to) {
  const uint64_t throttled = static_cast<uint64_t>(
      std::count_if(r.throttled.begin(), r.throttled.end(),
                    [&](int64_t t) { return t >= Ns(from) && t < Ns(to); }));
  return {throttled, r.ArrivalsBetween(Ns(from), Ns(to)) - throttled};
}

TEST(FleetPause, LearnedLimitConvergesBelowTheRealLimit) {
  // Configured at 200/s, the upstream really allows 100/s and says nothing
  // but 429 (no limit headers). Learning halves into it and creeps back up:
  // after a while 429s are rare and most of the real limit is used. The
  // same fleet without learning keeps colliding with the real limit.
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SimConfig c = Base(seed);
    c.duration = seconds(40);
    c.demand = [](size_t, double) { return 50.0; };  // 400/s
    c.upstream_rate = 100;
    c.upstream_burst = 20;
    c.pause.default_pause = milliseconds(200);
    c.pause.ramp = milliseconds(500);
    c.learn = true;
    c.learn_options = {
        .decrease = 0.7, .increase = 0.02, .hold = seconds(5), .floor = 0.05};
    const SimResult r = RunFleet(c);
    const auto [throttled, served] = Served(r, 20, 40);
    EXPECT_LE(throttled, 30u) << "seed " << seed;
    EXPECT_GE(served, 0.7 * 100 * 20) << "seed " << seed;

    SimConfig blind = c;
    blind.learn = false;
    const SimResult b = RunFleet(blind);
    const auto [b_throttled, b_served] = Served(b, 20, 40);
    EXPECT_GT(b_throttled, 3 * throttled + 10) << "seed " << seed;
    std::printf(
        "seed %d, 20-40 s: learning 429s=%d served=%d/s; "
        "without 429s=%d served=%d/s\n",
        static_cast<int>(seed), static_cast<int>(throttled),
        static_cast<int>(served / 20), static_cast<int>(b_throttled),
        static_cast<int>(b_served / 20));
  }
}

}  // namespace
}  // namespace sluice::sim
