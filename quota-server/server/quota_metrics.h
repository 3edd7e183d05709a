#ifndef SLUICE_QUOTA_SERVER_SERVER_QUOTA_METRICS_H_
#define SLUICE_QUOTA_SERVER_SERVER_QUOTA_METRICS_H_

#include <memory>
#include <string>

#include "quota-server/core/quota_allocator.h"
#include "quota-server/server/fast_path_server.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace sluice {

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

#endif  // SLUICE_QUOTA_SERVER_SERVER_QUOTA_METRICS_H_
