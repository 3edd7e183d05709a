#ifndef SLUICE_PROXY_APP_PAUSE_WIRING_H_
#define SLUICE_PROXY_APP_PAUSE_WIRING_H_

// Wires a limit's BucketThrottles (docs/pause.md) into its limiters: each
// bucket (the shared one, or one per key) gets a pause, a
// PausedTokenSource around its token source, and callbacks that count
// pauses, shed the queue and report to the quota server. ProxyApp does the
// plumbing; this part has no I/O, so it is testable on its own.

#include <functional>
#include <memory>
#include <string>

#include "common/rate/token_source.h"
#include "proxy/config/config.h"
#include "proxy/limit/rate_limiter.h"
#include "proxy/pause/bucket_pause.h"

namespace sluice {

class PauseMetrics;

struct PauseWiring {
  PauseMetrics* metrics = nullptr;  // may be null (tests)
  // Re-polls a limiter's queue, refusing what a pause makes unservable.
  // Called from whichever thread started the pause; must not block.
  std::function<void(const std::weak_ptr<RateLimiter>&)> shed;
  // Reports an event of bucket (resource, key_hash) to the quota server.
  // Empty in standalone mode. Must not block.
  std::function<void(const std::string& resource, const std::string& key_hash,
                     const BucketPause::Event& event)>
      report;
};

// The pause options of limit `lc` (the pause schedule, the ramp's full
// rate = the local rate per second, the resume jitter).
BucketPause::Options BucketPauseOptionsFor(const LimitConfig& lc,
                                           uint64_t seed);

// A new pause for one bucket of `lc`, or null when lc.throttle is
// disabled. Seeded from the process's random device.
std::shared_ptr<BucketPause> MakeBucketPause(const LimitConfig& lc);

// `source` wrapped in a PausedTokenSource for `pause`; `source` itself
// when `pause` is null.
std::unique_ptr<TokenSource> WrapForPause(
    std::unique_ptr<TokenSource> source,
    const std::shared_ptr<BucketPause>& pause);

// Gives `limiter` its `pause` (no-op when null) and sets the callbacks:
// pauses counted under lc.name; a pause sheds the limiter's queue; events
// reported for (lc.resource, key_hash) when the limit leases a resource.
// Call before the limiter is shared.
void AttachPause(const PauseWiring& wiring, const LimitConfig& lc,
                 const std::string& key_hash,
                 const std::shared_ptr<RateLimiter>& limiter,
                 std::shared_ptr<BucketPause> pause);

}  // namespace sluice

#endif  // SLUICE_PROXY_APP_PAUSE_WIRING_H_
