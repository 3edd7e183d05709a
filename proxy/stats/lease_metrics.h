#ifndef SLUICE_PROXY_STATS_LEASE_METRICS_H_
#define SLUICE_PROXY_STATS_LEASE_METRICS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

#include "proxy/lease/lease_pool.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace sluice {

// The sidecar's leased-mode metrics (docs/leasing.md) and those of the fast
// path (docs/pause.md, "Fast path"), registered next to ProxyMetrics in the
// same registry:
//   sluice_proxy_lease_mode{limit, mode}  1 for the mode a leased limit is
//     in (per-key limits: the number of keys in each mode)
//   sluice_proxy_lease_held_tokens{limit}  leased tokens held
//   sluice_proxy_lease_stream_connected  1 while the stream is connected
//   sluice_proxy_lease_stream_{connects,disconnects,failed_attempts}_total
//   sluice_proxy_fast_path_up  1 while the server has welcomed this sidecar
//   sluice_proxy_fast_path_datagrams_total{direction, result}  pause
//     datagrams: in/ok, in/rejected, out/sent, out/failed
//   sluice_proxy_pause_delivered_total{path}  fleet pauses by the path whose
//     copy was applied first (datagram, stream)
//   sluice_proxy_fast_path_leasing  1 while reports and grants go as
//     datagrams
//   sluice_proxy_lease_datagrams_total{kind}  demand reports sent and
//     grants received as datagrams (kind: demand, grant)
//   sluice_proxy_lease_stale_grants_total  grants dropped as overtaken
//   sluice_proxy_lease_aged_grants_total  grants whose tokens came dead
//     (older than a ttl, counted from the report they echo)
// No series exists until the first RegisterLeasedLimit, so a standalone
// proxy shows none; until then every other method does nothing.
// Thread-safe (one internal mutex).
class LeaseMetrics {
 public:
  // `registry` (ProxyMetrics::registry()) must outlive this.
  explicit LeaseMetrics(prometheus::Registry& registry);
  ~LeaseMetrics();  // Out of line: Series is incomplete here.
  LeaseMetrics(const LeaseMetrics&) = delete;
  LeaseMetrics& operator=(const LeaseMetrics&) = delete;

  // Creates, at 0, lease_mode{limit, mode} (one series per LeaseMode),
  // lease_held_tokens{limit} and, with the first call, the process-wide
  // lease_stream_* and fast-path series. Idempotent.
  void RegisterLeasedLimit(std::string_view limit);
  // lease_mode{limit, mode} = 1 for `mode`, 0 for the other modes;
  // lease_held_tokens{limit} = held. Ignored for unregistered limits.
  void SetLeaseState(std::string_view limit, LeaseMode mode, double held);
  // A per-key leased limit: lease_mode{limit, mode} = the number of its keys
  // in each mode (indexed by LeaseMode); lease_held_tokens{limit} = held,
  // over all keys. Ignored for unregistered limits.
  void SetLeaseKeys(std::string_view limit,
                    const std::array<size_t, 4>& keys_by_mode, double held);

  // The lease stream as LeaseClient::Stats counts it.
  struct LeaseStreamTotals {
    bool connected = false;
    uint64_t connects = 0;
    uint64_t disconnects = 0;
    uint64_t failed_attempts = 0;
    // The pause fast path (docs/pause.md).
    bool fast_path_up = false;
    uint64_t datagrams_in_ok = 0;
    uint64_t datagrams_in_rejected = 0;
    uint64_t datagrams_out_sent = 0;
    uint64_t datagrams_out_failed = 0;
    uint64_t pauses_by_datagram = 0;
    uint64_t pauses_by_stream = 0;
    // Leases over the fast path (docs/leasing.md).
    bool leasing_by_datagram = false;
    uint64_t demand_datagrams = 0;
    uint64_t grant_datagrams = 0;
    uint64_t stale_grants = 0;
    uint64_t aged_grants = 0;
  };
  // lease_stream_connected = 0/1; lease_stream_{connects, disconnects,
  // failed_attempts}_total are raised to the given totals (never lowered),
  // as are the fast path's counters. Ignored until a leased limit is
  // registered.
  void SetLeaseStream(const LeaseStreamTotals& totals);

 private:
  struct Series;

  prometheus::Registry& registry_;
  std::mutex mu_;
  std::unique_ptr<Series> series_;  // guarded by mu_; null until registered
};

}  // namespace sluice

#endif  // SLUICE_PROXY_STATS_LEASE_METRICS_H_
