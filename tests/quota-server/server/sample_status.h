#ifndef SLUICE_TESTS_QUOTA_SERVER_SERVER_SAMPLE_STATUS_H_
#define SLUICE_TESTS_QUOTA_SERVER_SERVER_SAMPLE_STATUS_H_

// An allocator snapshot with every field set, shared by the tests of the
// views rendered from one (status page, metrics).

#include <chrono>
#include <string>

#include "quota-server/core/quota_allocator.h"

namespace sluice {
namespace sample_status {

inline QuotaAllocator::SidecarStatus Sidecar(const std::string& id,
                                             double base) {
  QuotaAllocator::SidecarStatus s;
  s.sidecar_id = id;
  s.pod = id + "-pod";
  s.connected = base < 20;
  s.weight = base + 0.5;
  s.demand_per_second = base + 1.25;
  s.share_per_second = base + 2.5;
  s.outstanding = base + 3.75;
  s.granted_total = base + 1000;
  return s;
}

inline QuotaAllocator::ResourceStatus Resource(const std::string& name,
                                               double base) {
  QuotaAllocator::ResourceStatus r;
  r.name = name;
  r.rate_per_second = base + 100;
  r.burst = base + 50;
  r.level = base + 7.5;
  r.outstanding = base + 12.25;
  r.granted_per_second = base + 80;
  r.utilisation = 0.8;
  r.learning = base > 0;
  r.learning_limit = base > 0;
  r.learned_rate_per_second = base > 0 ? 42.5 : 0;
  r.stated_rate_per_second = base > 0 ? 40 : 0;
  r.effective_rate_per_second = base > 0 ? 42.5 : r.rate_per_second;
  return r;
}

inline QuotaAllocator::Status SampleStatus() {
  QuotaAllocator::Status s;
  s.epoch = 0xfeedfacecafeULL;
  s.config_version = 7;
  s.connected_streams = 2;
  s.ignored_reports = 3;
  s.duplicate_reports = 4;
  s.stale_reports = 5;
  s.duplicate_ids = 6;
  QuotaAllocator::ResourceStatus a = Resource("openai", 0);
  a.sidecars.push_back(Sidecar("sc-1", 0));
  a.sidecars.push_back(Sidecar("sc-\"2\"</script>", 30));
  a.pauses.push_back(
      QuotaAllocator::PauseStatus{.key_hash = "ab12",
                                  .phase = PauseSchedule::Phase::kPaused,
                                  .pause_id = 4,
                                  .remaining = std::chrono::milliseconds(2500),
                                  .rate_fraction = 1,
                                  .origin_sidecar = "sc-1",
                                  .reason = "retry-after"});
  a.pauses_by_reason = {{"retry-after", 3}, {"status", 1}};
  s.resources.push_back(a);
  s.resources.push_back(Resource("partner-api", 1));  // no sidecars
  return s;
}

}  // namespace sample_status
}  // namespace sluice

#endif  // SLUICE_TESTS_QUOTA_SERVER_SERVER_SAMPLE_STATUS_H_
