// ResourceLedger on its own (docs/leasing.md), on fake time. The checks are
// made against the spec's definitions, computed here from what the test
// sent and was sent, not against the ledger's own bookkeeping.

#include "quota-server/core/resource_ledger.h"

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/time/duration.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr double kEps = 1e-6;

LedgerLimits Limits(double rate, double burst) {
  LedgerLimits l;
  l.rate_per_second = rate;
  l.burst = burst;
  l.lease.ttl = seconds(2);
  l.lease.grace = seconds(1);
  l.lease.horizon = milliseconds(200);
  l.lease.refresh = milliseconds(100);
  return l;
}

// The spec's horizon: min(horizon, b / 2r).
double Horizon(const LedgerLimits& l) {
  return std::min(ToSeconds(l.lease.horizon),
                  l.burst / (2 * l.rate_per_second));
}

sluice::v1::DemandReport Report(double allowed, double held, uint64_t seen,
                                uint64_t elapsed_ms = 100) {
  sluice::v1::DemandReport r;
  r.set_allowed(allowed);
  r.set_elapsed_ms(elapsed_ms);
  r.set_held(held);
  r.set_grant_seq_seen(seen);
  return r;
}

// Records the grants a ledger sends, numbering them per stream from 1.
struct Grants {
  struct Sent {
    GrantOrder order;
    uint64_t seq;
    TimePoint at;
  };
  std::vector<Sent> sent;
  std::map<StreamId, uint64_t> next_seq;
  TimePoint now;
  auto Sink(TimePoint at) {
    now = at;
    return [this](const GrantOrder& o) {
      const uint64_t seq = ++next_seq[o.stream];
      sent.push_back(Sent{o, seq, now});
      return seq;
    };
  }
  double TokensTo(StreamId s) const {
    double sum = 0;
    for (const Sent& g : sent) {
      if (g.order.stream == s) sum += g.order.tokens;
    }
    return sum;
  }
};

std::map<StreamId, ResourceLedger::MemberView> Members(
    const ResourceLedger& ledger) {
  std::map<StreamId, ResourceLedger::MemberView> out;
  ledger.ForEachMember(
      [&](const ResourceLedger::MemberView& m) { out[m.stream] = m; });
  return out;
}

// --- Weighted max-min oracle ----------------------------------------------

// The largest level lambda with sum min(want_i, lambda * w_i) <= capacity,
// by bisection (independent of fair_share.cc's sort-and-sweep).
double BisectLevel(double capacity, const std::vector<double>& want,
                   const std::vector<double>& weight) {
  auto fill = [&](double lambda) {
    double sum = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      sum += std::min(want[i], lambda * weight[i]);
    }
    return sum;
  };
  double lo = 0, hi = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    hi = std::max(hi, want[i] / weight[i]);
  }
  for (int k = 0; k < 200; ++k) {
    const double mid = (lo + hi) / 2;
    (fill(mid) <= capacity ? lo : hi) = mid;
  }
  return lo;
}

// Shares for `capacity` by the spec (docs/leasing.md, "Allocation"): exact
// weighted max-min of the demands; only when all are met, a headroom of up
// to 0.1 * d_i each, itself max-min over the spare; then what is left by
// weight.
std::vector<double> OracleShares(double capacity,
                                 const std::vector<double>& demand,
                                 const std::vector<double>& weight) {
  const size_t n = demand.size();
  std::vector<double> share(n);
  double total = 0, total_weight = 0;
  for (size_t i = 0; i < n; ++i) {
    total += demand[i];
    total_weight += weight[i];
  }
  if (total > capacity) {
    const double lambda = BisectLevel(capacity, demand, weight);
    for (size_t i = 0; i < n; ++i) {
      share[i] = std::min(demand[i], lambda * weight[i]);
    }
    return share;
  }
  std::vector<double> headroom(n);
  double total_headroom = 0;
  for (size_t i = 0; i < n; ++i) {
    headroom[i] = 0.1 * demand[i];
    total_headroom += headroom[i];
  }
  const double spare = capacity - total;
  if (total_headroom > spare) {
    const double lambda = BisectLevel(spare, headroom, weight);
    for (size_t i = 0; i < n; ++i) {
      share[i] = demand[i] + std::min(headroom[i], lambda * weight[i]);
    }
    return share;
  }
  for (size_t i = 0; i < n; ++i) {
    share[i] = demand[i] + headroom[i] +
               weight[i] * (spare - total_headroom) / total_weight;
  }
  return share;
}

TEST(ResourceLedgerTest, SharesAreExactWeightedMaxMin) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    const double rate = 1000;
    const LedgerLimits limits = Limits(rate, 500);
    const TimePoint t0 = TimePoint(seconds(100));
    ResourceLedger ledger(limits, t0, TimePoint::min());
    const size_t n = 1 + rng() % 12;
    std::vector<double> demand(n), weight(n);
    Grants grants;
    std::vector<StreamId> removed;
    for (size_t i = 0; i < n; ++i) {
      // Some members want nothing, some a little, some more than the rate.
      const int kind = static_cast<int>(rng() % 4);
      demand[i] = kind == 0 ? 0
                  : kind == 1
                      ? std::uniform_real_distribution(1.0, 50.0)(rng)
                      : std::uniform_real_distribution(
                            10.0, 2 * rate / static_cast<double>(n))(rng);
      weight[i] = std::uniform_real_distribution(0.25, 4.0)(rng);
      // A first report with an interval measures the demand exactly.
      ledger.OnReport({.stream = i + 1,
                       .sidecar_id = "s" + std::to_string(i),
                       .weight = weight[i]},
                      Report(demand[i], 0, 0, /*elapsed_ms=*/1000), t0,
                      grants.Sink(t0), &removed);
    }
    const TimePoint t1 = t0 + milliseconds(50);
    ledger.Tick(t1, grants.Sink(t1), &removed);
    const auto members = Members(ledger);
    ASSERT_EQ(members.size(), n);
    const std::vector<double> want = OracleShares(rate, demand, weight);
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      const double s = members.at(i + 1).share_per_second;
      EXPECT_NEAR(s, want[i], 1e-6 * rate) << "round " << round << " i " << i;
      sum += s;
    }
    // Optimality: the rate is used in full, and a member held below its
    // demand has the highest level s_i / w_i of all.
    EXPECT_NEAR(sum, rate, 1e-6 * rate);
    double top = 0;
    for (size_t i = 0; i < n; ++i) {
      top = std::max(top, members.at(i + 1).share_per_second / weight[i]);
    }
    for (size_t i = 0; i < n; ++i) {
      const double s = members.at(i + 1).share_per_second;
      if (s < demand[i] - 1e-6) {
        EXPECT_NEAR(s / weight[i], top, 1e-6 * top) << "round " << round;
      }
    }
  }
}

// Headroom never comes out of another member's fair share: demands 1,
// 30, 34 and 1000 of a rate of 100 get exactly 1, 30, 34 and 35.
TEST(ResourceLedgerTest, HeadroomNeverLowersAFairShare) {
  const LedgerLimits limits = Limits(100, 50);
  const TimePoint t0 = TimePoint(seconds(100));
  ResourceLedger ledger(limits, t0, TimePoint::min());
  Grants grants;
  std::vector<StreamId> removed;
  const double demand[] = {1, 30, 34, 1000};
  for (StreamId s = 1; s <= 4; ++s) {
    ledger.OnReport({.stream = s, .sidecar_id = "s" + std::to_string(s)},
                    Report(demand[s - 1], 0, 0, 1000), t0, grants.Sink(t0),
                    &removed);
  }
  ledger.Tick(t0, grants.Sink(t0), &removed);
  auto m = Members(ledger);
  EXPECT_DOUBLE_EQ(m[1].share_per_second, 1);
  EXPECT_DOUBLE_EQ(m[2].share_per_second, 30);
  EXPECT_DOUBLE_EQ(m[3].share_per_second, 34);
  EXPECT_DOUBLE_EQ(m[4].share_per_second, 35);
}

// Every grant echoes the latest report the ledger took from its member,
// which is what bounds its age on the sidecar (docs/leasing.md).
TEST(ResourceLedgerTest, GrantsEchoTheLatestReport) {
  const LedgerLimits limits = Limits(100, 50);
  const TimePoint t0 = TimePoint(seconds(100));
  ResourceLedger ledger(limits, t0, TimePoint::min(), /*initial_level=*/50);
  Grants grants;
  std::vector<StreamId> removed;
  sluice::v1::DemandReport r = Report(50, 0, 0, 1000);
  r.set_report_seq(7);
  ledger.OnReport({.stream = 1, .sidecar_id = "a"}, r, t0, grants.Sink(t0),
                  &removed);
  ASSERT_FALSE(grants.sent.empty());
  EXPECT_EQ(grants.sent.back().order.report_seq, 7u);
  // Reports that saw the grant and spent it; an older one (overtaken)
  // does not lower the echo.
  r = Report(50, 0, /*seen=*/1, 300);
  r.set_report_seq(5);
  const TimePoint t1 = t0 + milliseconds(300);
  ledger.OnReport({.stream = 1, .sidecar_id = "a"}, r, t1, grants.Sink(t1),
                  &removed);
  r.set_report_seq(9);
  ledger.OnReport({.stream = 1, .sidecar_id = "a"}, r, t1, grants.Sink(t1),
                  &removed);
  const size_t before = grants.sent.size();
  const TimePoint t2 = t1 + milliseconds(300);
  ledger.Tick(t2, grants.Sink(t2), &removed);
  ASSERT_GT(grants.sent.size(), before);
  EXPECT_EQ(grants.sent.back().order.report_seq, 9u);
}

TEST(ResourceLedgerTest, DetachedMembersGetNoShare) {
  const LedgerLimits limits = Limits(100, 50);
  const TimePoint t0 = TimePoint(seconds(100));
  ResourceLedger ledger(limits, t0, TimePoint::min());
  Grants grants;
  std::vector<StreamId> removed;
  // Demands 80, 40, 40 with weights 1, 1, 2: stream 3 is met (40 < 2 * 30)
  // and the other two split the 60 left.
  const double demand[] = {80, 40, 40};
  const double weight[] = {1, 1, 2};
  for (StreamId s = 1; s <= 3; ++s) {
    ledger.OnReport({.stream = s,
                     .sidecar_id = "s" + std::to_string(s),
                     .weight = weight[s - 1]},
                    Report(demand[s - 1], 0, 0, 1000), t0, grants.Sink(t0),
                    &removed);
  }
  ledger.Tick(t0, grants.Sink(t0), &removed);
  auto m = Members(ledger);
  EXPECT_NEAR(m[1].share_per_second, 30, 1e-9);
  EXPECT_NEAR(m[2].share_per_second, 30, 1e-9);
  EXPECT_NEAR(m[3].share_per_second, 40, 1e-9);
  ledger.Detach(3, t0);
  const TimePoint t1 = t0 + milliseconds(50);
  ledger.Tick(t1, grants.Sink(t1), &removed);
  m = Members(ledger);
  EXPECT_FALSE(m[3].attached);
  EXPECT_EQ(m[3].share_per_second, 0);
  // Now 40 is met for stream 2 and stream 1 takes the rest.
  EXPECT_NEAR(m[1].share_per_second, 60, 1e-9);
  EXPECT_NEAR(m[2].share_per_second, 40, 1e-9);
}

// --- The invariant over random runs ---------------------------------------

// A sidecar as the test models it: the tokens it really holds (each grant
// dies ttl after it arrives) and the grants on their way to it.
struct FakeSidecar {
  struct Batch {
    double tokens;
    TimePoint dies;
  };
  struct InFlight {
    uint64_t seq;
    double tokens;
    TimePoint arrives;
  };
  StreamId stream = 0;
  std::string id;
  double weight = 1;
  double demand = 0;  // tokens/s it tries to spend
  bool attached = true;
  bool reported = false;
  std::deque<Batch> held;
  std::deque<InFlight> coming;
  uint64_t seq_seen = 0;
  uint64_t seq_sent = 0;
  double allowed = 0, denied = 0;  // since the last report
  TimePoint last_report;
  TimePoint next_report;
  // What the ledger was last told and sent, for the spec's O_i.
  double reported_held = 0;
  uint64_t reported_seen = 0;
  struct Sent {
    uint64_t seq;
    double tokens;
    TimePoint at;
  };
  std::vector<Sent> sent;

  double Held() const {
    double sum = 0;
    for (const Batch& b : held) sum += b.tokens;
    return sum;
  }
  // Tokens that exist for this sidecar: held, or granted and not arrived.
  double Real() const {
    double sum = Held();
    for (const InFlight& g : coming) sum += g.tokens;
    return sum;
  }
  // The spec's O_i: held in its newest report plus the grants it had not
  // seen then, until they are dead (sent + ttl + grace).
  double SpecOutstanding(TimePoint now, Duration dead_after) const {
    double sum = reported_held;
    for (const Sent& g : sent) {
      if (g.seq > reported_seen && g.at + dead_after > now) sum += g.tokens;
    }
    return sum;
  }
};

struct Fleet {
  Fleet(LedgerLimits l, TimePoint start, TimePoint learning_until,
        uint32_t seed)
      : limits(l),
        now(start),
        learning_until(learning_until),
        ledger(l, start, learning_until),
        rng(seed) {}

  FakeSidecar& Find(StreamId s) {
    for (FakeSidecar& f : sidecars) {
      if (f.stream == s) return f;
    }
    ADD_FAILURE() << "no sidecar " << s;
    return sidecars.front();
  }

  // The ledger's grant sink: tokens travel for up to `grace`, in order.
  uint64_t Send(const GrantOrder& o) {
    FakeSidecar& f = Find(o.stream);
    const uint64_t seq = ++f.seq_sent;
    EXPECT_GE(o.target, 0);
    if (o.target > 0) {
      // Targets follow T = max(s * horizon, 1).
      EXPECT_NEAR(o.target, std::max(o.share_per_second * Horizon(limits), 1.0),
                  kEps);
    }
    if (o.tokens > 0) {
      f.sent.push_back({seq, o.tokens, now});
      // A top-up brings O_i up to the target, never beyond.
      EXPECT_LE(f.SpecOutstanding(now, DeadAfter()), o.target + kEps)
          << "stream " << o.stream << " at " << Ms();
      const Duration delay = milliseconds(rng() % 1000);  // <= grace
      TimePoint arrives = now + delay;
      if (!f.coming.empty())
        arrives = std::max(arrives, f.coming.back().arrives);
      f.coming.push_back({seq, o.tokens, arrives});
    }
    return seq;
  }

  Duration DeadAfter() const { return limits.lease.ttl + limits.lease.grace; }
  int64_t Ms() const {
    return std::chrono::duration_cast<milliseconds>(now.time_since_epoch())
        .count();
  }

  // The cap by the spec: b, or min(b, K) while learning, K the held first
  // reported by each sidecar.
  double Cap() const {
    if (now < learning_until) return std::min(limits.burst, known_held);
    return limits.burst;
  }

  // L + the tokens that really exist for members <= cap. Sidecars may
  // hold more than the cap between them after a restart (tokens leased
  // before it); then the level must be empty.
  void CheckInvariant(const char* after) {
    double real = 0;
    for (const FakeSidecar& f : sidecars) {
      if (f.reported) real += f.Real();
    }
    const double level = ledger.Level(now);
    ASSERT_GE(level, 0) << after << " at " << Ms();
    ASSERT_LE(level, std::max(0.0, Cap() - real) + kEps)
        << after << " at " << Ms() << ": level " << level << " real " << real
        << " cap " << Cap();
    ++checks;
  }

  void Join(double initial_held) {
    FakeSidecar& f = sidecars.emplace_back();
    f.stream = next_stream++;
    f.id = "sidecar-" + std::to_string(f.stream);
    f.weight = std::uniform_real_distribution(0.5, 3.0)(rng);
    f.demand = std::uniform_real_distribution(0.0, limits.rate_per_second)(rng);
    f.last_report = now;
    f.next_report = now;
    if (initial_held > 0) {
      // Leased before a restart; dies within a ttl.
      f.held.push_back({initial_held, now + milliseconds(rng() % 2000)});
    }
  }

  void ReportFrom(FakeSidecar& f) {
    const double held = f.Held();
    const auto elapsed =
        std::chrono::duration_cast<milliseconds>(now - f.last_report);
    sluice::v1::DemandReport r =
        Report(f.allowed, held, f.seq_seen, elapsed.count());
    r.set_denied(f.denied);
    if (!f.reported && now < learning_until) known_held += held;
    f.reported = true;
    f.reported_held = held;
    f.reported_seen = f.seq_seen;
    f.allowed = f.denied = 0;
    f.last_report = now;
    f.next_report = now + milliseconds(50 + rng() % 100);
    removed.clear();
    ledger.OnReport(
        {.stream = f.stream, .sidecar_id = f.id, .weight = f.weight}, r, now,
        [this](const GrantOrder& o) { return Send(o); }, &removed);
    EXPECT_THAT(removed, IsEmpty());
    CheckInvariant("report");
  }

  // One 5 ms step of the fleet.
  void Step() {
    now += milliseconds(5);
    for (FakeSidecar& f : sidecars) {
      while (!f.coming.empty() && f.coming.front().arrives <= now) {
        const auto g = f.coming.front();
        f.coming.pop_front();
        f.held.push_back({g.tokens, g.arrives + limits.lease.ttl});
        f.seq_seen = std::max(f.seq_seen, g.seq);
      }
      std::erase_if(f.held, [&](const auto& b) { return b.dies <= now; });
      double want = f.demand * 0.005;
      while (want > 0 && !f.held.empty()) {
        const double take = std::min(want, f.held.front().tokens);
        f.held.front().tokens -= take;
        want -= take;
        f.allowed += take;
        if (f.held.front().tokens <= 0) f.held.pop_front();
      }
      f.denied += want;
    }
    CheckInvariant("deliveries and spending");
    for (FakeSidecar& f : sidecars) {
      if (f.attached && now >= f.next_report) ReportFrom(f);
    }
    if (now >= next_tick) {
      next_tick = now + milliseconds(50);
      removed.clear();
      ledger.Tick(
          now, [this](const GrantOrder& o) { return Send(o); }, &removed);
      for (StreamId gone : removed) {
        // Dropped only once every token it was sent is dead.
        const FakeSidecar& f = Find(gone);
        EXPECT_FALSE(f.attached);
        for (const auto& g : f.sent) {
          EXPECT_LE(g.at + DeadAfter(), now) << "stream " << gone;
        }
        forgotten.push_back(gone);
      }
      CheckInvariant("tick");
    }
    const double u = std::uniform_real_distribution(0.0, 1.0)(rng);
    size_t attached = 0;
    for (const FakeSidecar& f : sidecars) attached += f.attached;
    if (u < 0.004 && attached > 1) {
      // A stream closes: the sidecar keeps (and may spend) what it holds,
      // and the grants on their way still arrive.
      std::vector<FakeSidecar*> live;
      for (FakeSidecar& f : sidecars) {
        if (f.attached) live.push_back(&f);
      }
      FakeSidecar& f = *live[rng() % live.size()];
      f.attached = false;
      ledger.Detach(f.stream, now);
      CheckInvariant("detach");
    } else if (u < 0.008 && attached < 8) {
      Join(initial_held_max > 0
               ? std::uniform_real_distribution(0.0, initial_held_max)(rng)
               : 0);
    } else if (u < 0.02) {
      FakeSidecar& f = sidecars[rng() % sidecars.size()];
      f.demand =
          std::uniform_real_distribution(0.0, limits.rate_per_second)(rng);
    }
  }

  LedgerLimits limits;
  TimePoint now;
  TimePoint learning_until;
  ResourceLedger ledger;
  std::mt19937 rng;
  std::vector<FakeSidecar> sidecars;
  StreamId next_stream = 1;
  TimePoint next_tick;
  double known_held = 0;
  double initial_held_max = 0;
  std::vector<StreamId> removed;
  std::vector<StreamId> forgotten;
  int checks = 0;
};

// Runs `fleet` for `duration` and checks that it did real work.
void RunFleet(Fleet& fleet, Duration duration) {
  const TimePoint end = fleet.now + duration;
  while (fleet.now < end) {
    fleet.Step();
    if (::testing::Test::HasFatalFailure()) return;
  }
  double granted = 0;
  for (const FakeSidecar& f : fleet.sidecars) {
    for (const auto& g : f.sent) granted += g.tokens;
  }
  EXPECT_GT(granted, 0);
  EXPECT_GT(fleet.checks, 1000);
}

TEST(ResourceLedgerTest, RandomReportsTicksAndDetachesKeepTheInvariant) {
  size_t forgotten = 0;
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 pick(seed);
    const double rate = std::uniform_real_distribution(10.0, 1000.0)(pick);
    const double burst =
        std::max(1.0, rate * std::uniform_real_distribution(0.1, 2.0)(pick));
    const TimePoint t0 = TimePoint(seconds(100));
    Fleet fleet(Limits(rate, burst), t0, TimePoint::min(), seed);
    for (int i = 0; i < 3; ++i) fleet.Join(0);
    RunFleet(fleet, seconds(20));
    forgotten += fleet.forgotten.size();
  }
  // Detached members were dropped, once their tokens were dead.
  EXPECT_GT(forgotten, 0u);
}

TEST(ResourceLedgerTest, RandomRunsWhileLearningKeepLevelWithinMinOfBAndK) {
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE(seed);
    const double rate = 200, burst = 100;
    const TimePoint t0 = TimePoint(seconds(100));
    Fleet fleet(Limits(rate, burst), t0, t0 + seconds(5), seed);
    // Sidecars still hold tokens leased before the restart; some hold more
    // between them than the burst.
    fleet.initial_held_max = seed % 2 ? 20 : 60;
    for (int i = 0; i < 4; ++i) {
      fleet.Join(std::uniform_real_distribution(
          0.0, fleet.initial_held_max)(fleet.rng));
    }
    RunFleet(fleet, seconds(10));
  }
}

TEST(ResourceLedgerTest, TopsUpOnlyToTheTarget) {
  // Rate 100, burst 50: one member's share is the whole rate and its
  // target 100/s * min(200 ms, 50 / 200 s) = 20 tokens.
  const LedgerLimits limits = Limits(100, 50);
  const TimePoint t0 = TimePoint(seconds(100));
  ResourceLedger ledger(limits, t0, TimePoint::min());
  Grants grants;
  std::vector<StreamId> removed;
  ledger.OnReport({.stream = 1, .sidecar_id = "a"}, Report(50, 0, 0), t0,
                  grants.Sink(t0), &removed);
  EXPECT_THAT(grants.sent, IsEmpty());  // nothing has accrued yet
  // 900 ms later the level is full (50): the member gets 20, not 50.
  TimePoint t = t0 + milliseconds(900);
  ledger.Tick(t, grants.Sink(t), &removed);
  ASSERT_EQ(grants.sent.size(), 1u);
  EXPECT_NEAR(grants.sent[0].order.target, 20, kEps);
  EXPECT_NEAR(grants.sent[0].order.tokens, 20, kEps);
  // At its target: nothing more, however full the level.
  t += milliseconds(50);
  ledger.Tick(t, grants.Sink(t), &removed);
  EXPECT_EQ(grants.sent.size(), 1u);
  // It saw grant 1 and spent 15 of it: topped up by exactly 15.
  t += milliseconds(50);
  ledger.OnReport({.stream = 1, .sidecar_id = "a"}, Report(15, 5, 1), t,
                  grants.Sink(t), &removed);
  ledger.Tick(t, grants.Sink(t), &removed);
  ASSERT_EQ(grants.sent.size(), 2u);
  EXPECT_NEAR(grants.sent[1].order.tokens, 15, kEps);
  // Grant 2 is not seen yet: the 5 held plus its 15 in flight fill the
  // target, so nothing is sent.
  t += milliseconds(50);
  ledger.OnReport({.stream = 1, .sidecar_id = "a"}, Report(0, 5, 1), t,
                  grants.Sink(t), &removed);
  ledger.Tick(t, grants.Sink(t), &removed);
  EXPECT_EQ(grants.sent.size(), 2u);
}

TEST(ResourceLedgerTest,
     DetachKeepsOutstandingUntilTtlPlusGraceAfterLastGrant) {
  const LedgerLimits limits = Limits(100, 50);  // ttl 2 s, grace 1 s
  const TimePoint t0 = TimePoint(seconds(100));
  ResourceLedger ledger(limits, t0, TimePoint::min());
  Grants grants;
  std::vector<StreamId> removed;
  ledger.OnReport({.stream = 1, .sidecar_id = "a"}, Report(50, 0, 0), t0,
                  grants.Sink(t0), &removed);
  const TimePoint granted_at = t0 + milliseconds(500);
  ledger.Tick(granted_at, grants.Sink(granted_at), &removed);
  const double a_tokens = grants.TokensTo(1);
  ASSERT_NEAR(a_tokens, 20, kEps);
  ledger.Detach(1, granted_at + milliseconds(100));
  // A newcomer takes the whole share, but not A's tokens.
  TimePoint t = granted_at + milliseconds(200);
  ledger.OnReport({.stream = 2, .sidecar_id = "b"}, Report(50, 0, 0), t,
                  grants.Sink(t), &removed);
  for (t += milliseconds(50); t < granted_at + seconds(3);
       t += milliseconds(50)) {
    ledger.OnReport({.stream = 2, .sidecar_id = "b"},
                    Report(0, 0, grants.next_seq[2]), t, grants.Sink(t),
                    &removed);
    const size_t sent_before = grants.sent.size();
    ledger.Tick(t, grants.Sink(t), &removed);
    ASSERT_THAT(removed, IsEmpty()) << "dropped early";
    double b_unseen = 0;  // sent to B after the report it just made
    for (size_t i = sent_before; i < grants.sent.size(); ++i) {
      EXPECT_EQ(grants.sent[i].order.stream, 2u);
      b_unseen += grants.sent[i].order.tokens;
    }
    const auto m = Members(ledger);
    ASSERT_EQ(m.size(), 2u);
    EXPECT_FALSE(m.at(1).attached);
    EXPECT_EQ(m.at(1).share_per_second, 0);
    EXPECT_NEAR(m.at(2).share_per_second, 100, kEps);
    EXPECT_NEAR(m.at(1).outstanding, a_tokens, kEps);
    // B reported every earlier token spent: what can exist is A's, B's
    // latest grant and the level.
    EXPECT_LE(ledger.Level(t) + a_tokens + b_unseen, limits.burst + kEps);
  }
  EXPECT_NEAR(grants.TokensTo(1), a_tokens, kEps);  // A got nothing more
  t = granted_at + seconds(3);
  ledger.Tick(t, grants.Sink(t), &removed);
  EXPECT_THAT(removed, ElementsAre(1u));
  EXPECT_EQ(Members(ledger).count(1), 0u);
}

TEST(ResourceLedgerTest, LearningCapIsMinOfBurstAndKnownHeld) {
  const LedgerLimits limits = Limits(100, 100);
  const TimePoint t0 = TimePoint(seconds(100));
  const TimePoint until = t0 + seconds(5);
  ResourceLedger ledger(limits, t0, until);
  Grants grants;
  std::vector<StreamId> removed;
  EXPECT_TRUE(ledger.Learning(t0));
  EXPECT_EQ(ledger.Cap(t0), 0);  // K = 0: nothing may be granted yet
  // K is what each sidecar held in its first report: 10 + 15. A second
  // stream of sidecar "a" is not counted again.
  ledger.OnReport({.stream = 1, .sidecar_id = "a"}, Report(50, 10, 0), t0,
                  grants.Sink(t0), &removed);
  ledger.OnReport({.stream = 2, .sidecar_id = "b"}, Report(50, 15, 0), t0,
                  grants.Sink(t0), &removed);
  ledger.OnReport({.stream = 3, .sidecar_id = "a"}, Report(50, 7, 0), t0,
                  grants.Sink(t0), &removed);
  EXPECT_EQ(ledger.Cap(t0), 25);
  // They hold 32 between them: no room, so seconds pass without a grant.
  TimePoint t = t0;
  for (int i = 0; i < 40; ++i) {
    t += milliseconds(50);
    for (StreamId s = 1; s <= 3; ++s) {
      const double held = s == 1 ? 10 : s == 2 ? 15 : 7;
      ledger.OnReport({.stream = s, .sidecar_id = s == 2 ? "b" : "a"},
                      Report(50, held, 0), t, grants.Sink(t), &removed);
    }
    ledger.Tick(t, grants.Sink(t), &removed);
    EXPECT_EQ(ledger.Level(t), 0);
  }
  EXPECT_EQ(grants.TokensTo(1) + grants.TokensTo(2) + grants.TokensTo(3), 0);
  // Stream 3 spends all it had and stream 1 half: 12 held of a cap of 25.
  t += milliseconds(50);
  ledger.OnReport({.stream = 3, .sidecar_id = "a"}, Report(7, 0, 0), t,
                  grants.Sink(t), &removed);
  ledger.OnReport({.stream = 1, .sidecar_id = "a"}, Report(5, 5, 0), t,
                  grants.Sink(t), &removed);
  ledger.OnReport({.stream = 2, .sidecar_id = "b"}, Report(8, 7, 0), t,
                  grants.Sink(t), &removed);
  const double held = 5 + 7;
  for (int i = 0; i < 20; ++i) {
    t += milliseconds(50);
    ledger.Tick(t, grants.Sink(t), &removed);
    const double granted =
        grants.TokensTo(1) + grants.TokensTo(2) + grants.TokensTo(3);
    EXPECT_LE(ledger.Level(t) + held + granted, 25 + kEps);
  }
  EXPECT_GT(grants.TokensTo(1) + grants.TokensTo(2) + grants.TokensTo(3), 0);
  // Learning over: the cap is the burst.
  EXPECT_FALSE(ledger.Learning(until));
  EXPECT_EQ(ledger.Cap(until), 100);

  // K above the burst: the cap is the burst.
  ResourceLedger big(limits, t0, until);
  big.OnReport({.stream = 1, .sidecar_id = "a"}, Report(50, 80, 0), t0,
               grants.Sink(t0), &removed);
  big.OnReport({.stream = 2, .sidecar_id = "b"}, Report(50, 70, 0), t0,
               grants.Sink(t0), &removed);
  EXPECT_EQ(big.Cap(t0), 100);
}

TEST(ResourceLedgerTest, ShrinksWhenDemandDrops) {
  // Rate 100, burst 50, horizon 200 ms. Demands 90 and 10 use the rate in
  // full: no spare, so no headroom.
  const LedgerLimits limits = Limits(100, 50);
  const TimePoint t0 = TimePoint(seconds(100));
  ResourceLedger ledger(limits, t0, TimePoint::min());
  Grants grants;
  std::vector<StreamId> removed;
  ledger.OnReport({.stream = 1, .sidecar_id = "a"}, Report(90, 0, 0, 1000), t0,
                  grants.Sink(t0), &removed);
  ledger.OnReport({.stream = 2, .sidecar_id = "b"}, Report(10, 0, 0, 1000), t0,
                  grants.Sink(t0), &removed);
  TimePoint t = t0 + milliseconds(500);
  ledger.Tick(t, grants.Sink(t), &removed);
  ASSERT_NEAR(grants.TokensTo(1), 90 * 0.2, kEps);
  ASSERT_NEAR(grants.TokensTo(2), 10 * 0.2, kEps);
  const size_t before = grants.sent.size();
  // A's demand drops to 80 (a 10 s interval replaces the smoothed value):
  // 80 and 10 fit, the spare 10 gives each its headroom (8 and 1) and half
  // of the 1 left, so A's share is 88.5 and its target 17.7: less than 10%
  // below the 18 it was sent, no shrink.
  t += milliseconds(50);
  ledger.OnReport({.stream = 1, .sidecar_id = "a"},
                  Report(80 * 10, 90 * 0.2, 1, 10000), t, grants.Sink(t),
                  &removed);
  EXPECT_EQ(grants.sent.size(), before);
  EXPECT_NEAR(Members(ledger)[1].share_per_second, 88.5, kEps);
  // Now to 10: both are met with headroom (11 each) and the spare 78 is
  // split by weight, so A's share is 50 and its target 10, well below the
  // 18 it holds.
  t += milliseconds(50);
  ledger.OnReport({.stream = 1, .sidecar_id = "a"},
                  Report(10 * 10, 90 * 0.2, 1, 10000), t, grants.Sink(t),
                  &removed);
  ASSERT_EQ(grants.sent.size(), before + 1);
  const GrantOrder& shrink = grants.sent.back().order;
  EXPECT_EQ(shrink.stream, 1u);
  EXPECT_EQ(shrink.tokens, 0);
  EXPECT_NEAR(shrink.share_per_second, 50, kEps);
  EXPECT_NEAR(shrink.target, 10, kEps);
  // Sent once: the next Tick has nothing new to say to A.
  ledger.Tick(t, grants.Sink(t), &removed);
  for (size_t i = before + 1; i < grants.sent.size(); ++i) {
    EXPECT_NE(grants.sent[i].order.stream, 1u);
  }
}

}  // namespace
}  // namespace sluice
