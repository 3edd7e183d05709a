// The pause fast path's per-datagram work (common/protocol/fast_path_codec.h):
// what the server does per sidecar of a broadcast (Seal) and each sidecar per
// pause (Parse + Open).
#include <benchmark/benchmark.h>

#include <string>

#include "common/protocol/fast_path_codec.h"

namespace {

sluice::v1::FastPathBody PauseBody() {
  sluice::v1::FastPathBody body;
  auto* p = body.mutable_pause();
  p->mutable_bucket()->set_resource("openai");
  p->mutable_bucket()->set_key_hash("9f86d081884c7d65");
  p->set_pause_id(12345);
  p->set_remaining_ms(20000);
  p->set_reason("retry-after");
  p->set_origin_sidecar("checkout-7d9f8b6c4-x2x9z");
  p->set_ramp_ms(5000);
  return body;
}

void BM_SealPause(benchmark::State& state) {
  const std::string key = sluice::NewFastPathKey();
  const auto body = PauseBody();
  uint64_t seq = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(sluice::SealFastPath(
        key, sluice::FastPathDirection::kDown, 77, ++seq, body));
  }
}
BENCHMARK(BM_SealPause);

void BM_ParseAndOpenPause(benchmark::State& state) {
  const std::string key = sluice::NewFastPathKey();
  const std::string d = sluice::SealFastPath(
      key, sluice::FastPathDirection::kDown, 77, 1, PauseBody());
  sluice::v1::FastPathBody body;
  for (auto _ : state) {
    auto env = sluice::ParseFastPath(d);
    benchmark::DoNotOptimize(sluice::OpenFastPath(
        key, sluice::FastPathDirection::kDown, *env, &body));
  }
}
BENCHMARK(BM_ParseAndOpenPause);

}  // namespace
