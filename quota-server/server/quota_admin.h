#ifndef SLUICE_QUOTA_SERVER_SERVER_QUOTA_ADMIN_H_
#define SLUICE_QUOTA_SERVER_SERVER_QUOTA_ADMIN_H_

#include <memory>
#include <string>

#include "quota-server/core/quota_allocator.h"
#include "quota-server/server/fast_path_server.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace sluice {

// Renders the quota server's operator views from an allocator snapshot.
// Pure functions of their inputs, so they are unit-tested without sockets.

// GET /status: the snapshot as JSON (Boost.JSON):
//   {"epoch":..,"config_version":..,"connected_streams":..,
//    "ignored_reports":..,
//    "resources":[{"name":..,"rate_per_second":..,"burst":..,"level":..,
//      "outstanding":..,"granted_per_second":..,"utilisation":..,
//      "learning":..,"sidecars":[{"id":..,"pod":..,"connected":..,
//      "weight":..,"demand_per_second":..,"share_per_second":..,
//      "outstanding":..,"granted_total":..}]}]}
std::string StatusJson(const QuotaAllocator::Status& status);

// GET /: a self-refreshing HTML page that fetches /status every second and
// draws, per resource, the limit, the use and each sidecar's share.
const std::string& StatusPageHtml();

// Prometheus metrics for the quota server. Gauges are refreshed from a
// snapshot at scrape time; counters are fed by the service.
class QuotaMetrics {
 public:
  QuotaMetrics();
  ~QuotaMetrics();
  // Sets the per-resource gauges from `status` (resources that disappeared
  // are removed) and the stream/message counters to the given totals.
  void Update(const QuotaAllocator::Status& status, uint64_t streams_opened,
              uint64_t messages_in, uint64_t messages_out,
              uint64_t streams_rejected);
  // The fast path's datagram counters, the throttle reports that came over
  // both paths and counted once, and the demand reports dropped as stale.
  void UpdateFastPath(const FastPathServer::Stats& stats,
                      uint64_t duplicate_reports, uint64_t stale_reports);
  void CountReload(bool ok);
  void CountLimitChange();
  // Prometheus text exposition format.
  std::string Serialize() const;

 private:
  struct State;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<State> state_;
};

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_SERVER_QUOTA_ADMIN_H_
