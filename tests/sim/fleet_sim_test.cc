// Fleet behaviour over many seeds: the bound, utilisation, max-min shares,
// reconvergence, joins, crashes, message loss and server restarts. Every
// case runs the real allocator and the real sidecar limiter on fake time.
#include "tests/sim/fleet_sim.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "quota-server/core/fair_share.h"

namespace sluice::sim {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// docs/leasing.md: requests in any window W <= r*(W + j) + b.
void ExpectBound(const SimConfig& cfg, const SimResult& res) {
  const double j = std::chrono::duration<double>(cfg.upstream_delay_max -
                                                 cfg.upstream_delay_min)
                       .count();
  for (Duration w : {Duration(milliseconds(10)), Duration(milliseconds(100)),
                     Duration(seconds(1)), Duration(seconds(5))}) {
    const double ws = std::chrono::duration<double>(w).count();
    const double bound = cfg.rate_per_second * (ws + j) + cfg.burst;
    EXPECT_LE(static_cast<double>(res.MaxInWindow(w)), bound)
        << "window " << ws << "s seed " << cfg.seed;
  }
  // Sharper than the bound, checked every 10 ms: the server never counts
  // less for a sidecar than that sidecar can spend.
  EXPECT_EQ(res.undercounted, 0u)
      << "seed " << cfg.seed << ": up to " << res.max_undercount << " tokens";
}

std::vector<double> Ideal(const SimConfig& cfg, double t) {
  std::vector<double> d, w, s;
  for (size_t i = 0; i < cfg.sidecars; ++i) {
    d.push_back(cfg.demand(i, t));
    w.push_back(i < cfg.weights.size() ? cfg.weights[i] : 1.0);
  }
  WaterFill(cfg.rate_per_second, d, w, &s);
  return s;
}

// Each sidecar's rate over [from, to) is within `tol` of its max-min share
// at `from`, relative to the larger of that share and an equal split (so a
// sidecar held to a small demand is judged on the fleet's scale, not on a
// handful of requests).
void ExpectShares(const SimConfig& cfg, const SimResult& res, double from,
                  double to, double tol) {
  const std::vector<double> ideal = Ideal(cfg, from);
  for (size_t i = 0; i < cfg.sidecars; ++i) {
    const double got = res.SentBetween(i, from, to) / (to - from);
    const double scale = std::max(ideal[i], cfg.rate_per_second / cfg.sidecars);
    EXPECT_NEAR(got, ideal[i], tol * scale)
        << "sidecar " << i << " seed " << cfg.seed << " window [" << from << ","
        << to << ")";
  }
}

double Utilisation(const SimConfig& cfg, const SimResult& res, double from,
                   double to) {
  return res.TotalBetween(from, to) / ((to - from) * cfg.rate_per_second);
}

SimConfig Base(uint64_t seed) {
  SimConfig c;
  c.seed = seed;
  c.sidecars = 4;
  c.rate_per_second = 200;
  c.burst = 40;
  c.duration = seconds(10);
  return c;
}

TEST(FleetSim, SteadySaturatedFleetHoldsBoundAndUsesTheLimit) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.demand = [](size_t, double) { return 100.0; };  // 2x the limit
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    EXPECT_GE(Utilisation(c, r, 3.5, 10), 0.97) << "seed " << seed;
    ExpectShares(c, r, 3.5, 10, 0.03);
  }
}

TEST(FleetSim, SkewedDemandGetsExactMaxMinShares) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.demand = [](size_t i, double) {
      static const double d[] = {10, 40, 120, 400};
      return d[i];
    };  // max-min of 200: 10, 40, 75, 75
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    EXPECT_GE(Utilisation(c, r, 3.5, 10), 0.97) << "seed " << seed;
    ExpectShares(c, r, 3.5, 10, 0.03);
  }
}

TEST(FleetSim, SmallBurstStillGivesMaxMinShares) {
  // burst / rate = 0.2 s caps the horizon at 100 ms: targets of a few
  // tokens must still keep every sidecar at its share.
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.rate_per_second = 100;
    c.burst = 20;
    c.demand = [](size_t i, double) {
      static const double d[] = {80, 40, 20, 10};
      return d[i];
    };  // max-min of 100: 35, 35, 20, 10
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    EXPECT_GE(Utilisation(c, r, 3.5, 10), 0.97) << "seed " << seed;
    ExpectShares(c, r, 3.5, 10, 0.03);
  }
}

TEST(FleetSim, WeightsSplitCapacity) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SimConfig c = Base(seed);
    c.sidecars = 3;
    c.weights = {1, 1, 3};
    c.demand = [](size_t, double) { return 400.0; };  // 40, 40, 120
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    ExpectShares(c, r, 3.5, 10, 0.03);
  }
}

TEST(FleetSim, ReconvergesWithinOneSecondOfADemandShift) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.sidecars = 2;
    c.demand = [](size_t i, double t) {
      const bool before = t < 6;
      if (i == 0) return before ? 300.0 : 20.0;
      return before ? 20.0 : 300.0;
    };
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    ExpectShares(c, r, 3.5, 6, 0.03);  // 180 / 20
    ExpectShares(c, r, 7, 10, 0.03);   // 20 / 180, from 1 s after the shift
  }
}

// Idle sidecars are offered the spare capacity, but what they hold must
// not starve one whose demand rises. 99 stay idle (more than the burst of
// 40: if each held the one-token minimum, the burst would be theirs); the
// last goes from nothing to twice the rate at 5 s and has the whole rate
// (within 3%) from 300 ms later: the idle ones are told to shrink at once
// (without the shrink it gets 182/s, their tokens dying only with the
// lease).
TEST(FleetSim, SpareHeldByIdleSidecarsDoesNotStarveARisingOne) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.sidecars = 100;
    c.demand = [](size_t i, double t) {
      return i == 99 && t >= 5 ? 400.0 : 0.0;
    };
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    const double got = r.SentBetween(99, 5.3, 10) / 4.7;
    EXPECT_NEAR(got, 200, 0.03 * 200) << "seed " << seed;
  }
}

TEST(FleetSim, BurstyOnOffDemandNeverBreaksTheBound) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.sidecars = 6;
    c.demand = [](size_t i, double t) {
      // 300 ms on, 300 ms off, phases staggered.
      const double phase = std::fmod(t + 0.1 * static_cast<double>(i), 0.6);
      return phase < 0.3 ? 500.0 : 0.0;
    };
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
  }
}

TEST(FleetSim, MessageLossAndJitterKeepTheBound) {
  double total_use = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.loss = 0.1;
    c.net_delay_max = milliseconds(20);
    c.demand = [](size_t i, double) { return 30.0 + 40.0 * i; };
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    // A real stream loses nothing; 10% loss is a stress test. Lost grants
    // and reports leave stale holdings in the ledger, which costs some use,
    // never the bound. How much varies by seed: over seeds 1-60 the use
    // averaged 0.89 with the lowest seed at 0.80, so one seed is held to
    // 0.75 and the ten together to 0.85.
    const double use = Utilisation(c, r, 3.5, 10);
    EXPECT_GE(use, 0.75) << "seed " << seed;
    total_use += use;
  }
  EXPECT_GE(total_use / 10, 0.85);
}

// Grants that wait far longer than the grace (seconds, in a stalled
// stream or a full write queue) arrive together; the server topped the
// sidecar up again meanwhile. Their tokens live ttl from the report each
// grant echoes, so those the server stopped counting are dead on arrival.
TEST(FleetSim, StalledStreamsKeepTheBound) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.duration = seconds(12);
    c.demand = [](size_t, double) { return 100.0; };  // 2x the limit
    // Every stream stalls for about 6 s (four times ttl + grace), then
    // delivers all it held at once.
    c.stalls = {{.from = 3, .to = 9, .sidecar = 0},
                {.from = 3, .to = 9, .sidecar = 1},
                {.from = 3.2, .to = 8.9, .sidecar = 2},
                {.from = 3.5, .to = 9, .sidecar = 3}};
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    EXPECT_GE(Utilisation(c, r, 10, 12), 0.95) << "seed " << seed;
  }
}

// The same stalls with a write queue of 3 messages: the server ends a
// stalled stream once its queue fills (as the service does); what it had
// sent still arrives, then the end; the sidecar reconnects and leases
// again. fail_closed: between the end and the reconnect a sidecar cannot
// lease, and under fallback_share it would spend its fallback share there,
// that policy's documented overshoot (docs/leasing.md), not the lease's.
TEST(FleetSim, AFullWriteQueueEndsTheStreamAndKeepsTheBound) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.duration = seconds(12);
    c.demand = [](size_t, double) { return 100.0; };
    c.stalls = {{.from = 3, .to = 9, .sidecar = 0},
                {.from = 3, .to = 9, .sidecar = 1},
                {.from = 3.2, .to = 8.9, .sidecar = 2}};
    c.down_queue_limit = 3;
    c.policy = UnavailablePolicy::kFailClosed;
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    EXPECT_GE(r.queue_full_closes, 3u) << "seed " << seed;
    EXPECT_GE(Utilisation(c, r, 10, 12), 0.95) << "seed " << seed;
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_GT(r.SentBetween(i, 10, 12), 0) << "sidecar " << i;
    }
  }
}

// A frozen sidecar reads, when it thaws, every grant the server sent it
// meanwhile; those older than a ttl bring no tokens.
TEST(FleetSim, FrozenSidecarsKeepTheBound) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.duration = seconds(12);
    c.demand = [](size_t, double) { return 100.0; };
    c.freezes = {{.from = 3, .to = 9, .sidecar = 0},
                 {.from = 3.1, .to = 9, .sidecar = 1},
                 {.from = 3, .to = 8.95, .sidecar = 2},
                 {.from = 4, .to = 4.7, .sidecar = 3}};
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    EXPECT_GE(Utilisation(c, r, 10, 12), 0.95) << "seed " << seed;
  }
}

// A second process given a sidecar's id is refused while the first one's
// stream is open: one of them leases, the other nothing. (With
// fail_closed: a sidecar that cannot lease sends nothing. Under
// fallback_share it would spend its fallback share, the documented
// overshoot of that policy.)
TEST(FleetSim, ASecondProcessWithTheSameIdLeasesNothing) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.sidecars = 5;
    c.id_of = {0, 1, 2, 3, 0};
    c.joins = {{4.0, 4}};  // while sidecar 0 leases, with tokens in hand
    c.policy = UnavailablePolicy::kFailClosed;
    // The pair with one id wants little, so the first holds unspent tokens
    // when the second comes: they must stay counted.
    c.demand = [](size_t i, double) { return i == 0 || i == 4 ? 10.0 : 100.0; };
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    EXPECT_GT(r.duplicate_ids, 0u) << "seed " << seed;
    EXPECT_EQ(r.SentBetween(4, 0, 10), 0) << "seed " << seed;
    EXPECT_NEAR(r.SentBetween(0, 2, 10) / 8, 10, 1) << "seed " << seed;
    for (size_t i = 1; i < 4; ++i) {
      EXPECT_NEAR(r.SentBetween(i, 3.5, 10) / 6.5, 190.0 / 3, 0.03 * 190 / 3)
          << "sidecar " << i << " seed " << seed;
    }
  }
}

// A sidecar restarts (a new process, the same id) before the server has
// seen its old stream end: the new one is refused until then, and the old
// one's tokens stay counted until they die.
TEST(FleetSim, ARestartBeforeTheServerNoticesKeepsTheBound) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.sidecars = 5;
    c.id_of = {0, 1, 2, 3, 0};
    c.policy = UnavailablePolicy::kFailClosed;
    c.crashes = {{4.0, 0}};
    c.joins = {{4.1, 4}};
    c.demand = [](size_t, double) { return 100.0; };
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    EXPECT_GT(r.duplicate_ids, 0u) << "seed " << seed;
    // Once the old stream is gone (crash_detect 1 s), the new process leases.
    EXPECT_NEAR(r.SentBetween(4, 6.5, 10) / 3.5, 50, 0.03 * 50)
        << "seed " << seed;
  }
}

TEST(FleetSim, ReorderedReportsAndGrantsKeepTheBound) {
  // Leases over the fast path: reports and grants are datagrams, which may
  // be lost or overtake each other. Overtaken grants are dropped by the
  // sidecar and overtaken reports by the server; the bound holds either
  // way, and the use stays high.
  uint64_t stale_grants = 0;
  uint64_t stale_reports = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.loss = 0.02;
    c.reorder = 0.3;
    c.net_delay_max = milliseconds(20);
    c.demand = [](size_t i, double) { return 30.0 + 40.0 * i; };
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    EXPECT_GE(Utilisation(c, r, 3.5, 10), 0.9) << "seed " << seed;
    stale_grants += r.stale_grants;
    stale_reports += r.stale_reports;
  }
  // The reordering did happen, on both sides.
  EXPECT_GT(stale_grants, 0u);
  EXPECT_GT(stale_reports, 0u);
}

TEST(FleetSim, NewcomerGetsAShareAndCrashedSidecarsCapacityMoves) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SimConfig c = Base(seed);
    c.sidecars = 3;
    c.demand = [](size_t, double) { return 200.0; };
    c.duration = seconds(12);
    c.joins = {{4.0, 2}};
    c.crashes = {{7.0, 0}};
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    // The newcomer is served within its first round trip, not a refresh
    // cycle later, and has its full share within 1 s.
    EXPECT_GT(r.SentBetween(2, 4.0, 4.1), 0) << "seed " << seed;
    EXPECT_NEAR(r.SentBetween(2, 5.0, 7.0) / 2.0, 200.0 / 3, 3) << seed;
    EXPECT_NEAR(r.SentBetween(1, 5.0, 7.0) / 2.0, 200.0 / 3, 3) << seed;
    // The crashed sidecar's share is free again once the server notices
    // (crash_detect, 1 s) and its tokens are dead (ttl + grace).
    EXPECT_NEAR(r.SentBetween(1, 10.0, 12.0) / 2.0, 100, 3) << seed;
    EXPECT_NEAR(r.SentBetween(2, 10.0, 12.0) / 2.0, 100, 3) << seed;
  }
}

TEST(FleetSim, ServerRestartDoesNotOvergrant) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig c = Base(seed);
    c.demand = [](size_t, double) { return 100.0; };
    c.server_restarts = {4.0};
    const SimResult r = RunFleet(c);
    ExpectBound(c, r);
    // Back to full use once learning is over (ttl + grace after 4 s).
    EXPECT_GE(Utilisation(c, r, 8, 10), 0.97) << "seed " << seed;
  }
}

TEST(FleetSim, ThousandSidecarsStayWithinTheLimit) {
  SimConfig c;
  c.seed = 7;
  c.sidecars = 1000;
  c.rate_per_second = 10000;
  c.burst = 2000;
  c.duration = seconds(6);
  c.step = milliseconds(10);
  c.demand = [](size_t i, double) { return i % 2 ? 5.0 : 30.0; };
  const SimResult r = RunFleet(c);
  ExpectBound(c, r);
  EXPECT_GE(Utilisation(c, r, 3.5, 6), 0.97);
  // Aggregate fairness: the total deviation from max-min shares is within
  // 3% of the limit.
  const std::vector<double> ideal = Ideal(c, 3);
  double dev = 0;
  for (size_t i = 0; i < c.sidecars; ++i) {
    dev += std::abs(r.SentBetween(i, 3.5, 6) / 2.5 - ideal[i]);
  }
  EXPECT_LE(dev, 0.03 * c.rate_per_second);
}

}  // namespace
}  // namespace sluice::sim
