#ifndef SLUICE_PROXY_STATS_PAUSE_METRICS_H_
#define SLUICE_PROXY_STATS_PAUSE_METRICS_H_

#include <cstdint>
#include <string_view>

#include "common/pause/pause_schedule.h"
#include "common/time/clock.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
class Gauge;
}  // namespace prometheus

namespace sluice {

// The sidecar's pause metrics (docs/pause.md), registered next to
// ProxyMetrics in the same registry:
//   sluice_proxy_upstream_throttles_total{limit, reason}  throttles seen
//     (reason: retry-after, a dialect, status, or ignored)
//   sluice_proxy_pauses_total{limit, origin}  pauses started or extended,
//     origin local (this sidecar saw the throttle) or remote (the server)
//   sluice_proxy_pause_started_seconds{limit, origin}  Unix time (s, to the
//     microsecond) the bucket last went from not paused to paused, by what
//     paused it: on one host, a remote start minus the reporter's local
//     start is the fleet's pause latency
//   sluice_proxy_pause_held_total{limit}  requests that waited out a pause
//   sluice_proxy_pause_shed_total{limit}  requests refused (429) because
//     their deadline fell inside a pause
//   sluice_proxy_pause_retried_total{limit}  throttled requests sent again
//     (transparent retry)
//   sluice_proxy_pause_retry_skipped_total{limit, reason}  throttled
//     requests on a retry route not sent again (reason: method, body,
//     attempts, deadline)
//   sluice_proxy_throttle_body_peeks_total{limit, result}  throttle bodies
//     read ahead for an ignore rule's marker (result: marker, no_marker,
//     failed)
//   sluice_proxy_pause_probes_total{limit}  resume probes sent
//   sluice_proxy_pause_phase{limit, phase}  1 for the phase of the limit's
//     bucket (unkeyed limits)
// Thread-safe.
class PauseMetrics {
 public:
  // Pause starts are dated by `clock`'s wall time; it must outlive this.
  PauseMetrics(prometheus::Registry& registry, const Clock* clock);

  // Creates the zero-valued series of `limit`. Idempotent.
  void RegisterLimit(std::string_view limit);
  void OnThrottle(std::string_view limit, std::string_view reason);
  // A pause started (the bucket was not paused) or grew.
  void OnPause(std::string_view limit, bool remote, bool started);
  void OnHeld(std::string_view limit);
  void OnShed(std::string_view limit);
  void OnRetried(std::string_view limit);
  void OnRetrySkipped(std::string_view limit, std::string_view reason);
  void OnBodyPeek(std::string_view limit, std::string_view result);
  // Brings the probe counter up to `total` and sets the phase gauge.
  void SetBucketState(std::string_view limit, uint64_t probes_total,
                      PauseSchedule::Phase phase);

 private:
  prometheus::Family<prometheus::Counter>& throttles_;
  prometheus::Family<prometheus::Counter>& pauses_;
  prometheus::Family<prometheus::Gauge>& started_;
  prometheus::Family<prometheus::Counter>& held_;
  prometheus::Family<prometheus::Counter>& shed_;
  prometheus::Family<prometheus::Counter>& retried_;
  prometheus::Family<prometheus::Counter>& retry_skipped_;
  prometheus::Family<prometheus::Counter>& body_peeks_;
  prometheus::Family<prometheus::Counter>& probes_;
  prometheus::Family<prometheus::Gauge>& phase_;
  const Clock* clock_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_STATS_PAUSE_METRICS_H_
