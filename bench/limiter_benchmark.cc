// Micro-benchmarks of the rate-limiter core: the admit path of
// RateLimiter::Acquire (single-threaded and with two threads sharing one
// limiter), raw TryTake of both token sources, and key hashing.
//
// Time is a counter advanced by 1 ns per iteration, so no clock read is
// measured. The rate is huge, so every Acquire is admitted.

#include <benchmark/benchmark.h>

#include <atomic>
#include <memory>
#include <string>

#include "common/rate/gcra.h"
#include "common/rate/token_bucket.h"
#include "common/rate/token_source_factory.h"
#include "proxy/limit/keyed_limiter.h"
#include "proxy/limit/rate_limiter.h"

namespace sluice {
namespace {

const TimePoint kStart = TimePoint(std::chrono::seconds(1000));
// 1e15 tokens a second (1e6 per ns), burst 1e15: never runs dry.
const RateSpec kHuge{1e15, std::chrono::seconds(1), 1e15};

void BM_RateLimiterAcquireAdmit(benchmark::State& state) {
  // One limiter shared by all threads of this benchmark.
  static RateLimiter* limiter = nullptr;
  if (state.thread_index() == 0) {
    limiter = new RateLimiter(
        MakeTokenSource(static_cast<Algorithm>(state.range(0)), kHuge, kStart),
        RateLimiterOptions{});
  }
  // Each thread has its own time line; the limiter treats a time that went
  // backwards as time standing still, which still admits.
  TimePoint now = kStart;
  int64_t rejected = 0;
  for (auto _ : state) {
    now += Duration(1);
    AcquireResult r = limiter->Acquire(1.0, Duration::zero(), now);
    rejected += r.outcome != AcquireOutcome::kAdmitted;
    benchmark::DoNotOptimize(r);
  }
  if (rejected != 0) state.SkipWithError("an Acquire was not admitted");
  if (state.thread_index() == 0) {
    delete limiter;
    limiter = nullptr;
  }
  state.SetLabel(
      std::string(AlgorithmName(static_cast<Algorithm>(state.range(0)))));
}
BENCHMARK(BM_RateLimiterAcquireAdmit)
    ->Arg(static_cast<int>(Algorithm::kTokenBucket))
    ->Arg(static_cast<int>(Algorithm::kGcra));
BENCHMARK(BM_RateLimiterAcquireAdmit)
    ->Arg(static_cast<int>(Algorithm::kTokenBucket))
    ->Arg(static_cast<int>(Algorithm::kGcra))
    ->Threads(2);

template <typename Source>
void BM_TryTake(benchmark::State& state) {
  Source source(kHuge, kStart);
  TimePoint now = kStart;
  for (auto _ : state) {
    now += Duration(1);
    benchmark::DoNotOptimize(source.TryTake(1.0, now));
  }
}
BENCHMARK_TEMPLATE(BM_TryTake, TokenBucket);
BENCHMARK_TEMPLATE(BM_TryTake, GcraBucket);

// Through the interface, as RateLimiter calls it (virtual dispatch).
void BM_TryTakeVirtual(benchmark::State& state) {
  std::unique_ptr<TokenSource> source =
      MakeTokenSource(static_cast<Algorithm>(state.range(0)), kHuge, kStart);
  TimePoint now = kStart;
  for (auto _ : state) {
    now += Duration(1);
    benchmark::DoNotOptimize(source->TryTake(1.0, now));
  }
  state.SetLabel(
      std::string(AlgorithmName(static_cast<Algorithm>(state.range(0)))));
}
BENCHMARK(BM_TryTakeVirtual)
    ->Arg(static_cast<int>(Algorithm::kTokenBucket))
    ->Arg(static_cast<int>(Algorithm::kGcra));

// A predicted wait, as computed for every queued request.
void BM_AvailableAt(benchmark::State& state) {
  std::unique_ptr<TokenSource> source =
      MakeTokenSource(static_cast<Algorithm>(state.range(0)),
                      RateSpec{10, std::chrono::seconds(1), 5}, kStart);
  source->TryTake(5, kStart);
  for (auto _ : state) {
    benchmark::DoNotOptimize(source->AvailableAt(37.5, kStart));
  }
  state.SetLabel(
      std::string(AlgorithmName(static_cast<Algorithm>(state.range(0)))));
}
BENCHMARK(BM_AvailableAt)
    ->Arg(static_cast<int>(Algorithm::kTokenBucket))
    ->Arg(static_cast<int>(Algorithm::kGcra));

// SHA-256 of a typical Authorization value (done once per keyed request).
void BM_HashKey(benchmark::State& state) {
  const std::string raw =
      "Bearer sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
  for (auto _ : state) {
    benchmark::DoNotOptimize(KeyedLimiterSet::HashKey(raw));
  }
}
BENCHMARK(BM_HashKey);

// Lookup of an existing key (hash + map hit + LRU splice).
void BM_KeyedGetOrCreateHit(benchmark::State& state) {
  KeyedLimiterSet set(1024, RateLimiterOptions{},
                      [](const std::string&, TimePoint now) {
                        return MakeTokenSource(Algorithm::kGcra, kHuge, now);
                      });
  const std::string raw = "Bearer sk-proj-0123456789abcdef";
  set.GetOrCreate(raw, kStart);
  for (auto _ : state) {
    benchmark::DoNotOptimize(set.GetOrCreate(raw, kStart));
  }
}
BENCHMARK(BM_KeyedGetOrCreateHit);

}  // namespace
}  // namespace sluice
