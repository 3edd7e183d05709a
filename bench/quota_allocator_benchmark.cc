// Micro-benchmarks of the quota server's core, QuotaAllocator, on one core:
//
//  - BM_OnMessageGrant: demand reports that each earn a top-up grant (the
//    sidecar spent part of its tokens since its last report).
//  - BM_OnMessageSteady: reports from sidecars already at their target (no
//    grant); the cheapest path every report takes.
//  - BM_Tick: one periodic Tick of the allocator while the fleet reports at
//    its normal pace (those reports run untimed between Ticks).
//
// Each simulates N sidecars (1,000 or 10,000) on one resource, every one
// reporting every 100 ms of simulated time; the limit (1,000 tokens/s per
// sidecar) is never the bottleneck, so the measured work is bookkeeping.
// Time is simulated: no clock is read. Messages are handed to the allocator
// exactly as QuotaService does (one Outbox per message); protobuf parsing
// and gRPC are not included.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "quota-server/core/quota_allocator.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr Duration kReportInterval = milliseconds(100);
constexpr Duration kTickInterval = milliseconds(50);
// Tokens a sidecar spends between two reports (100 tokens/s each).
constexpr double kSpentPerReport = 10;

// N sidecars connected to one allocator, each remembering what the server
// told it (last grant seq, target) so its reports are consistent.
class Fleet {
 public:
  explicit Fleet(int n)
      : n_(n),
        now_(TimePoint(seconds(1000))),
        alloc_(MakeConfig(n), /*epoch=*/1, now_,
               absl::FromUnixSeconds(FakeClock::kDefaultWallStartUnixSeconds)),
        seq_(n, 0),
        target_(n, 0) {
    // A full burst to start from.
    now_ += seconds(1);
    for (int i = 0; i < n; ++i) {
      alloc_.Open(Id(i), now_);
      sluice::v1::SidecarMessage hello;
      hello.mutable_hello()->set_protocol_version(1);
      hello.mutable_hello()->set_sidecar_id("sidecar-" + std::to_string(i));
      hello.mutable_hello()->set_pod("pod-" + std::to_string(i));
      hello.mutable_hello()->set_weight(1);
      Outbox out;
      alloc_.OnMessage(Id(i), hello, now_, &out);
      Absorb(out);
    }
    report_.mutable_demand()->mutable_bucket()->set_resource("api");
    report_.mutable_demand()->set_elapsed_ms(100);
    // Warm up for 3 s of simulated time: demands settle, shares are
    // computed, everyone is at its target.
    for (int round = 0; round < 30; ++round) {
      for (int i = 0; i < n; ++i) {
        Report(i, /*spent=*/kSpentPerReport);
        if (TickDue()) Tick();
      }
    }
  }

  // Sidecar `i` reports having spent `spent` tokens since its last report
  // (and so holding its target minus that). Advances time by 100 ms / N and
  // runs the Tick whenever a tick interval has passed. Returns the number
  // of grants with tokens sent to it.
  int Report(int i, double spent) {
    now_ += step();
    sluice::v1::DemandReport* d = report_.mutable_demand();
    d->set_allowed(kSpentPerReport);
    d->set_held(std::max(0.0, target_[i] - spent));
    d->set_grant_seq_seen(seq_[i]);
    Outbox out;
    alloc_.OnMessage(Id(i), report_, now_, &out);
    return Absorb(out);
  }

  bool TickDue() const { return now_ >= next_tick_; }
  void Tick() {
    Outbox out;
    alloc_.Tick(now_, &out);
    Absorb(out);
    next_tick_ = now_ + kTickInterval;
  }

  Duration step() const { return kReportInterval / n_; }
  int size() const { return n_; }
  double target(int i) const { return target_[i]; }
  void Advance(Duration d) { now_ += d; }

 private:
  static ServerConfig MakeConfig(int n) {
    ServerConfig c;
    c.learning = false;
    ResourceConfig r;
    r.name = "api";
    r.rate = 1000.0 * n;
    r.burst = 1000.0 * n;
    c.resources.push_back(r);
    return c;
  }
  static StreamId Id(int i) { return static_cast<StreamId>(i) + 1; }

  // Applies grants as the sidecars would; returns how many carried tokens.
  int Absorb(const Outbox& out) {
    int grants = 0;
    for (const auto& [id, msg] : out.messages) {
      if (!msg.has_grant()) continue;
      const size_t i = id - 1;
      seq_[i] = msg.grant().seq();
      target_[i] = msg.grant().target();
      grants += msg.grant().tokens() > 0;
    }
    return grants;
  }

  const int n_;
  TimePoint now_;
  TimePoint next_tick_{};
  QuotaAllocator alloc_;
  std::vector<uint64_t> seq_;
  std::vector<double> target_;
  sluice::v1::SidecarMessage report_;
};

// Reports that each earn a grant (the sidecar spent 10 tokens).
void BM_OnMessageGrant(benchmark::State& state) {
  Fleet fleet(static_cast<int>(state.range(0)));
  int64_t grants = 0;
  int i = 0;
  for (auto _ : state) {
    grants += fleet.Report(i, kSpentPerReport);
    if (++i == fleet.size()) i = 0;
    if (fleet.TickDue()) {
      state.PauseTiming();
      fleet.Tick();
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["grants_per_msg"] =
      static_cast<double>(grants) / static_cast<double>(state.iterations());
  if (grants < state.iterations() * 9 / 10) {
    state.SkipWithError("fewer than 90% of the reports earned a grant");
  }
}
BENCHMARK(BM_OnMessageGrant)->ArgName("sidecars")->Arg(1000)->Arg(10000);

// Reports from sidecars at their target: nothing to grant.
void BM_OnMessageSteady(benchmark::State& state) {
  Fleet fleet(static_cast<int>(state.range(0)));
  // One round at target first, so no report is still owed a top-up.
  for (int i = 0; i < fleet.size(); ++i) fleet.Report(i, 0);
  int64_t grants = 0;
  int i = 0;
  for (auto _ : state) {
    grants += fleet.Report(i, 0);
    if (++i == fleet.size()) i = 0;
    if (fleet.TickDue()) {
      state.PauseTiming();
      fleet.Tick();
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["grants_per_msg"] =
      static_cast<double>(grants) / static_cast<double>(state.iterations());
  if (grants > state.iterations() / 100) {
    state.SkipWithError("more than 1% of the steady reports earned a grant");
  }
}
BENCHMARK(BM_OnMessageSteady)->ArgName("sidecars")->Arg(1000)->Arg(10000);

// One Tick, with the fleet's reports for the preceding 50 ms run untimed in
// between. Reported demands vary (5..15 tokens per report), so shares are
// recomputed on most Ticks, as in a live fleet.
void BM_Tick(benchmark::State& state) {
  Fleet fleet(static_cast<int>(state.range(0)));
  const int per_tick = fleet.size() / 2;  // reports per 50 ms
  int i = 0;
  int64_t round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (int k = 0; k < per_tick; ++k) {
      fleet.Report(i, 5 + static_cast<double>((i * 7 + round) % 11));
      if (++i == fleet.size()) {
        i = 0;
        ++round;
      }
    }
    state.ResumeTiming();
    fleet.Tick();
  }
  // items_per_second = Ticks per second of CPU; the share of one core spent
  // ticking 20 times a second is 20 / items_per_second.
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Tick)->ArgName("sidecars")->Arg(1000)->Arg(10000);

}  // namespace
}  // namespace sluice
