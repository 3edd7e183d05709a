#include "proxy/server/limit_runtime.h"

#include "proxy/lease/lease_pool.h"
#include "proxy/lease/leased_keys.h"
#include "proxy/limit/keyed_limiter.h"
#include "proxy/limit/rate_limiter.h"

namespace sluice {

LimitRuntime::~LimitRuntime() = default;

std::string_view LimitRuntime::QuotaMode(TimePoint now,
                                         const RateLimiter* limiter) const {
  if (lease) return LeaseModeName(lease->Mode(now));
  if (leased_keys) return leased_keys->ModeFor(limiter, now);
  return {};
}

}  // namespace sluice
