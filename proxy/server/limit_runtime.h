#ifndef SLUICE_PROXY_SERVER_LIMIT_RUNTIME_H_
#define SLUICE_PROXY_SERVER_LIMIT_RUNTIME_H_

#include <memory>
#include <string_view>

#include "common/time/clock.h"
#include "proxy/config/config.h"

namespace sluice {

class KeyedLimiterSet;
class LeasePool;
class LeasedKeySources;
class RateLimiter;

// The limiter behind one configured limit: one shared bucket, or one bucket
// per key.
struct LimitRuntime {
  const LimitConfig* config = nullptr;
  std::shared_ptr<RateLimiter> shared;     // set unless per_key
  std::unique_ptr<KeyedLimiterSet> keyed;  // set when per_key
  // Set when the limit leases its tokens (LimitConfig::resource) and is not
  // per_key: the pool behind `shared`'s token source.
  std::shared_ptr<LeasePool> lease;
  // Set when a per_key limit leases its tokens: the sources of `keyed`, one
  // pool per hashed key.
  std::shared_ptr<LeasedKeySources> leased_keys;
  // The `x-sluice-quota` value at `now` (LeaseModeName) for a request
  // admitted by `limiter` (one of this limit's), or "" when the limit is
  // not leased.
  std::string_view QuotaMode(TimePoint now, const RateLimiter* limiter) const;
  ~LimitRuntime();
};

}  // namespace sluice

#endif  // SLUICE_PROXY_SERVER_LIMIT_RUNTIME_H_
