#ifndef SLUICE_PROXY_APP_LIMIT_FACTORY_H_
#define SLUICE_PROXY_APP_LIMIT_FACTORY_H_

#include <functional>
#include <memory>

#include "common/time/clock.h"
#include "proxy/app/pause_wiring.h"
#include "proxy/config/config.h"
#include "proxy/server/limit_runtime.h"

namespace sluice {

class RateLimiter;

// Builds the runtime of a configured limit (LimitRuntime): one limiter over
// one bucket, or a set of limiters with one bucket per key; each bucket
// wrapped in its pause (docs/pause.md) unless the limit's throttle handling
// is off, and in leased mode fed by a lease pool (one per key for a per-key
// limit). Build() runs at startup, on one thread.
class LimitFactory {
 public:
  struct Options {
    // Standalone buckets start at this clock's now. Must outlive the
    // runtimes.
    Clock* clock = nullptr;
    // quota.servers is set: limits that name a resource lease their tokens.
    bool leasing = false;
    // Where a bucket's pauses are counted, shed and reported.
    PauseWiring pauses;
    // Wakes a per-key limiter's queue on the proxy's threads when its lease
    // pool got tokens (called on the lease client's thread; must not
    // block).
    std::function<void(const std::weak_ptr<RateLimiter>&)> kick;
  };

  explicit LimitFactory(Options options) : options_(std::move(options)) {}

  // The runtime of `lc`, which must outlive it. A leased limit that is not
  // per key gets its pool in `lease`; the caller binds it to the lease
  // client.
  std::unique_ptr<LimitRuntime> Build(const LimitConfig& lc) const;

 private:
  Options options_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_APP_LIMIT_FACTORY_H_
