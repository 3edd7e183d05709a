// The cost of minting a leaf certificate (one ECDSA P-256 signature and
// the X.509 encoding), of a leaf-cache miss (mint + a new server SSL_CTX)
// and of a hit. Numbers: docs/https.md.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/time/clock.h"
#include "proxy/tls/cert_authority.h"
#include "proxy/tls/leaf_cache.h"
#include "proxy/tls/server_context.h"

namespace {

// A CA made with CertAuthority::Init in a temporary directory, loaded
// once for all benchmarks.
sluice::CertAuthority* Authority() {
  static sluice::CertAuthority* authority = [] {
    std::string dir =
        (std::filesystem::temp_directory_path() / "sluice-bench-ca.XXXXXX")
            .string();
    if (mkdtemp(dir.data()) == nullptr) std::abort();
    const sluice::Clock* clock = sluice::SystemClock::Get();
    if (!sluice::CertAuthority::Init(dir, clock).ok()) std::abort();
    auto ca = sluice::CertAuthority::Load(dir + "/ca.pem", dir + "/ca-key.pem",
                                          clock);
    std::filesystem::remove_all(dir);
    if (!ca.ok()) std::abort();
    return ca->release();
  }();
  return authority;
}

void BM_Mint(benchmark::State& state) {
  sluice::CertAuthority* ca = Authority();
  for (auto _ : state) {
    auto leaf = ca->Mint("api.example.com");
    if (!leaf.ok()) state.SkipWithError("mint");
    benchmark::DoNotOptimize(leaf);
  }
}
BENCHMARK(BM_Mint);

void BM_MintAndServerContext(benchmark::State& state) {
  sluice::CertAuthority* ca = Authority();
  for (auto _ : state) {
    auto leaf = ca->Mint("api.example.com");
    if (!leaf.ok()) state.SkipWithError("mint");
    auto ctx = sluice::TlsServerContext::NewLeafContext(
        leaf->cert.get(), ca->leaf_key(), ca->ca_cert());
    if (!ctx.ok()) state.SkipWithError("context");
    benchmark::DoNotOptimize(ctx);
  }
}
BENCHMARK(BM_MintAndServerContext);

void BM_LeafCacheHit(benchmark::State& state) {
  sluice::LeafCache cache(Authority(), sluice::SystemClock::Get());
  if (!cache.Get("api.example.com").ok()) state.SkipWithError("mint");
  for (auto _ : state) {
    auto ctx = cache.Get("api.example.com");
    benchmark::DoNotOptimize(ctx);
  }
}
BENCHMARK(BM_LeafCacheHit);

}  // namespace
