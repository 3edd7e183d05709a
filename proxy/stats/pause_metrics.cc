#include "proxy/stats/pause_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <chrono>
#include <map>
#include <string>

namespace sluice {
namespace {

using prometheus::Counter;
using prometheus::Gauge;

template <typename Builder>
auto& Reg(Builder b, const char* name, const char* help,
          prometheus::Registry& registry) {
  return b.Name(name).Help(help).Register(registry);
}

constexpr const char* kRetrySkipReasons[] = {"method", "body", "attempts",
                                             "deadline"};
constexpr const char* kBodyPeekResults[] = {"marker", "no_marker", "failed"};

constexpr PauseSchedule::Phase kPhases[] = {
    PauseSchedule::Phase::kRunning, PauseSchedule::Phase::kPaused,
    PauseSchedule::Phase::kProbing, PauseSchedule::Phase::kRamping};

}  // namespace

PauseMetrics::PauseMetrics(prometheus::Registry& r, const Clock* clock)
    : throttles_(Reg(prometheus::BuildCounter(),
                     "sluice_proxy_upstream_throttles_total",
                     "Upstream responses read as throttles, by limit and "
                     "what decided the pause.",
                     r)),
      pauses_(Reg(prometheus::BuildCounter(), "sluice_proxy_pauses_total",
                  "Pauses started or extended, by limit and origin "
                  "(local or remote).",
                  r)),
      started_(Reg(prometheus::BuildGauge(),
                   "sluice_proxy_pause_started_seconds",
                   "Unix time the limit's bucket last went from not paused "
                   "to paused, by limit and origin.",
                   r)),
      held_(Reg(prometheus::BuildCounter(), "sluice_proxy_pause_held_total",
                "Requests queued during a pause and sent after it.", r)),
      shed_(Reg(prometheus::BuildCounter(), "sluice_proxy_pause_shed_total",
                "Requests answered 429 because their deadline fell inside "
                "a pause.",
                r)),
      retried_(Reg(prometheus::BuildCounter(),
                   "sluice_proxy_pause_retried_total",
                   "Throttled requests sent again after the pause "
                   "(transparent retry).",
                   r)),
      retry_skipped_(Reg(prometheus::BuildCounter(),
                         "sluice_proxy_pause_retry_skipped_total",
                         "Throttled requests on a retry route that were not "
                         "sent again, by reason.",
                         r)),
      body_peeks_(Reg(prometheus::BuildCounter(),
                      "sluice_proxy_throttle_body_peeks_total",
                      "Throttle bodies read ahead for an ignore rule's "
                      "marker, by result.",
                      r)),
      probes_(Reg(prometheus::BuildCounter(), "sluice_proxy_pause_probes_total",
                  "Resume probes sent after a pause.", r)),
      phase_(Reg(prometheus::BuildGauge(), "sluice_proxy_pause_phase",
                 "1 for the pause phase a limit's bucket is in.", r)),
      clock_(clock) {}

void PauseMetrics::RegisterLimit(std::string_view limit) {
  const std::string l(limit);
  pauses_.Add({{"limit", l}, {"origin", "local"}});
  pauses_.Add({{"limit", l}, {"origin", "remote"}});
  held_.Add({{"limit", l}});
  shed_.Add({{"limit", l}});
  retried_.Add({{"limit", l}});
  for (const char* reason : kRetrySkipReasons) {
    retry_skipped_.Add({{"limit", l}, {"reason", reason}});
  }
  for (const char* result : kBodyPeekResults) {
    body_peeks_.Add({{"limit", l}, {"result", result}});
  }
  probes_.Add({{"limit", l}});
  for (PauseSchedule::Phase p : kPhases) {
    phase_.Add({{"limit", l}, {"phase", std::string(PausePhaseName(p))}})
        .Set(p == PauseSchedule::Phase::kRunning ? 1 : 0);
  }
}

void PauseMetrics::OnThrottle(std::string_view limit, std::string_view reason) {
  throttles_
      .Add({{"limit", std::string(limit)}, {"reason", std::string(reason)}})
      .Increment();
}

void PauseMetrics::OnPause(std::string_view limit, bool remote, bool started) {
  const std::map<std::string, std::string> labels{
      {"limit", std::string(limit)}, {"origin", remote ? "remote" : "local"}};
  pauses_.Add(labels).Increment();
  if (started) {
    started_.Add(labels).Set(
        absl::ToDoubleSeconds(clock_->WallNow() - absl::UnixEpoch()));
  }
}

void PauseMetrics::OnHeld(std::string_view limit) {
  held_.Add({{"limit", std::string(limit)}}).Increment();
}

void PauseMetrics::OnShed(std::string_view limit) {
  shed_.Add({{"limit", std::string(limit)}}).Increment();
}

void PauseMetrics::OnRetried(std::string_view limit) {
  retried_.Add({{"limit", std::string(limit)}}).Increment();
}

void PauseMetrics::OnRetrySkipped(std::string_view limit,
                                  std::string_view reason) {
  retry_skipped_
      .Add({{"limit", std::string(limit)}, {"reason", std::string(reason)}})
      .Increment();
}

void PauseMetrics::OnBodyPeek(std::string_view limit, std::string_view result) {
  body_peeks_
      .Add({{"limit", std::string(limit)}, {"result", std::string(result)}})
      .Increment();
}

void PauseMetrics::SetBucketState(std::string_view limit, uint64_t probes_total,
                                  PauseSchedule::Phase phase) {
  const std::string l(limit);
  Counter& c = probes_.Add({{"limit", l}});
  const double delta = static_cast<double>(probes_total) - c.Value();
  if (delta > 0) c.Increment(delta);
  for (PauseSchedule::Phase p : kPhases) {
    phase_.Add({{"limit", l}, {"phase", std::string(PausePhaseName(p))}})
        .Set(p == phase ? 1 : 0);
  }
}

}  // namespace sluice
