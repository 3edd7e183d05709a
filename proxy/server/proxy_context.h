#ifndef SLUICE_PROXY_SERVER_PROXY_CONTEXT_H_
#define SLUICE_PROXY_SERVER_PROXY_CONTEXT_H_

#include <atomic>
#include <memory>
#include <string_view>
#include <vector>

#include "common/time/clock.h"
#include "proxy/config/config.h"

namespace sluice {

class AccessLog;
class KeyedLimiterSet;
class LeasePool;
class LeasedKeySources;
class LimitGate;
class PauseMetrics;
class ProxyMetrics;
class RateLimiter;
class Router;
class SsrfGuard;
class UpstreamPool;

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

// Everything a client session needs, owned by ProxyApp and alive for as
// long as any session is. Members are thread-safe or immutable.
struct ProxyContext {
  const ProxyConfig* config = nullptr;
  Clock* clock = nullptr;
  const Router* router = nullptr;
  const SsrfGuard* guard = nullptr;
  UpstreamPool* pool = nullptr;
  LimitGate* gate = nullptr;
  ProxyMetrics* metrics = nullptr;
  PauseMetrics* pause_metrics = nullptr;
  AccessLog* access_log = nullptr;
  // Indexed by route index (Router::Match::index); nullptr = no limit.
  std::vector<LimitRuntime*> route_limits;
  // Set on SIGTERM: finish the current request, then close.
  std::atomic<bool> draining{false};
  std::atomic<size_t> connections{0};
};

}  // namespace sluice

#endif  // SLUICE_PROXY_SERVER_PROXY_CONTEXT_H_
