#include "proxy/app/limit_factory.h"

#include <string>
#include <utility>

#include "common/rate/token_source_factory.h"
#include "proxy/lease/lease_pool.h"
#include "proxy/lease/lease_setup.h"
#include "proxy/lease/leased_keys.h"
#include "proxy/limit/keyed_limiter.h"
#include "proxy/limit/rate_limiter.h"
#include "proxy/pause/bucket_pause.h"

namespace sluice {
namespace {

Algorithm ToAlgorithm(LimitAlgorithm a) {
  return a == LimitAlgorithm::kGcra ? Algorithm::kGcra
                                    : Algorithm::kTokenBucket;
}

}  // namespace

std::unique_ptr<LimitRuntime> LimitFactory::Build(const LimitConfig& lc) const {
  auto rt = std::make_unique<LimitRuntime>();
  rt->config = &lc;
  const bool leased = options_.leasing && !lc.resource.empty();
  const RateSpec spec{lc.rate, lc.period, lc.burst};
  const Algorithm alg = ToAlgorithm(lc.algorithm);
  RateLimiterOptions opts;
  opts.max_queue = lc.max_queue;
  if (!lc.per_key) {
    if (leased)
      rt->lease = std::make_shared<LeasePool>(LeasePoolOptionsFor(lc));
    std::unique_ptr<TokenSource> src =
        rt->lease ? std::make_unique<LeasedTokenSource>(rt->lease)
                  : MakeTokenSource(alg, spec, options_.clock->Now());
    std::shared_ptr<BucketPause> pause = MakeBucketPause(lc);
    rt->shared = std::make_shared<RateLimiter>(
        WrapForPause(std::move(src), pause), opts);
    AttachPause(options_.pauses, lc, "", rt->shared, std::move(pause));
    return rt;
  }
  // A key's pause is made with its source and attached to the limiter built
  // on it (the set calls both under its lock, in that order).
  auto pending = std::make_shared<std::shared_ptr<BucketPause>>();
  std::shared_ptr<LeasedKeySources> sources;
  if (leased) {
    // One pool per hashed key; the quota server's bucket is
    // (resource, key_hash).
    sources = std::make_shared<LeasedKeySources>(
        lc.resource, LeasePoolOptionsFor(lc), options_.kick);
    rt->leased_keys = sources;
  }
  const PauseWiring pauses = options_.pauses;
  rt->keyed = std::make_unique<KeyedLimiterSet>(
      lc.per_key->max_keys, opts,
      [sources, pending, &lc, alg, spec](const std::string& key_hash,
                                         TimePoint now) {
        std::unique_ptr<TokenSource> src =
            sources ? sources->MakeSource(key_hash, now)
                    : MakeTokenSource(alg, spec, now);
        *pending = MakeBucketPause(lc);
        return WrapForPause(std::move(src), *pending);
      },
      [sources, pending, &lc, pauses](
          const std::string& key_hash,
          const std::shared_ptr<RateLimiter>& limiter) {
        AttachPause(pauses, lc, key_hash, limiter, std::move(*pending));
        pending->reset();
        if (sources) sources->OnCreated(key_hash, limiter);
      });
  return rt;
}

}  // namespace sluice
