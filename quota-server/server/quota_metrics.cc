#include "quota-server/server/quota_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <map>
#include <set>

namespace sluice {

namespace {
using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;

template <typename Builder>
auto& Reg(Builder b, const char* name, const char* help,
          prometheus::Registry& registry) {
  return b.Name(name).Help(help).Register(registry);
}

// Adds the difference between a running total and what a counter shows.
void CatchUp(Counter& c, uint64_t total) {
  const double delta = static_cast<double>(total) - c.Value();
  if (delta > 0) c.Increment(delta);
}
}  // namespace

struct QuotaMetrics::State {
  explicit State(prometheus::Registry& r)
      : rate(Reg(prometheus::BuildGauge(), "sluice_quota_limit_rate_per_second",
                 "Configured global rate of a resource, tokens per second", r)),
        burst(Reg(prometheus::BuildGauge(), "sluice_quota_limit_burst_tokens",
                  "Configured global burst of a resource", r)),
        level(Reg(prometheus::BuildGauge(), "sluice_quota_level_tokens",
                  "Tokens accrued and not yet granted", r)),
        outstanding(
            Reg(prometheus::BuildGauge(), "sluice_quota_outstanding_tokens",
                "Upper bound on leased tokens sidecars may still spend", r)),
        granted(Reg(prometheus::BuildGauge(),
                    "sluice_quota_granted_tokens_per_second",
                    "Smoothed rate of tokens granted", r)),
        utilisation(Reg(prometheus::BuildGauge(),
                        "sluice_quota_utilisation_ratio",
                        "Granted rate divided by the limit", r)),
        learning(Reg(prometheus::BuildGauge(), "sluice_quota_learning",
                     "1 while the resource is in restart learning mode", r)),
        sidecars(Reg(prometheus::BuildGauge(), "sluice_quota_sidecars",
                     "Sidecars holding a ledger for the resource", r)),
        streams(Reg(prometheus::BuildGauge(), "sluice_quota_streams_active",
                    "Connected sidecar streams", r)
                    .Add({})),
        opened(Reg(prometheus::BuildCounter(),
                   "sluice_quota_streams_opened_total",
                   "Sidecar streams accepted", r)
                   .Add({})),
        rejected(Reg(prometheus::BuildCounter(),
                     "sluice_quota_streams_rejected_total",
                     "Streams ended for protocol errors or slow reading", r)
                     .Add({})),
        messages(Reg(prometheus::BuildCounter(), "sluice_quota_messages_total",
                     "Lease protocol messages by direction", r)),
        messages_in(messages.Add({{"direction", "in"}})),
        messages_out(messages.Add({{"direction", "out"}})),
        reloads(Reg(prometheus::BuildCounter(), "sluice_quota_reloads_total",
                    "Configuration reloads by result", r)),
        reload_ok(reloads.Add({{"result", "ok"}})),
        reload_failed(reloads.Add({{"result", "error"}})),
        limit_changes(Reg(prometheus::BuildCounter(),
                          "sluice_quota_limit_changes_total",
                          "Limits set through the admin endpoint", r)
                          .Add({})),
        learned(Reg(prometheus::BuildGauge(),
                    "sluice_quota_learned_rate_per_second",
                    "Learned upstream limit below the configured one (0: "
                    "none learned)",
                    r)),
        effective(Reg(prometheus::BuildGauge(),
                      "sluice_quota_effective_rate_per_second",
                      "Rate in force: min(configured, learned)", r)),
        stated(Reg(prometheus::BuildGauge(),
                   "sluice_quota_stated_rate_per_second",
                   "Limit the upstream last stated in its headers, per "
                   "second, while fresh (0: none)",
                   r)),
        pauses(Reg(prometheus::BuildCounter(), "sluice_quota_pauses_total",
                   "Fleet pauses started or extended, by resource and "
                   "reason",
                   r)),
        paused(Reg(prometheus::BuildGauge(), "sluice_quota_paused_buckets",
                   "Buckets of a resource by pause phase", r)),
        datagrams(Reg(prometheus::BuildCounter(),
                      "sluice_quota_fast_path_datagrams_total",
                      "Fast-path datagrams by direction and result", r)),
        lease_datagrams(Reg(prometheus::BuildCounter(),
                            "sluice_quota_lease_datagrams_total",
                            "Demand reports taken and grants sent as "
                            "fast-path datagrams",
                            r)),
        demand_datagrams(lease_datagrams.Add({{"kind", "demand"}})),
        grant_datagrams(lease_datagrams.Add({{"kind", "grant"}})),
        fast_path_sidecars(Reg(prometheus::BuildGauge(),
                               "sluice_quota_fast_path_sidecars",
                               "Streams whose sidecar said hello on the "
                               "fast path",
                               r)
                               .Add({})),
        duplicate_reports(Reg(prometheus::BuildCounter(),
                              "sluice_quota_duplicate_throttle_reports_total",
                              "Throttle reports already taken from the "
                              "other path (stream or fast path)",
                              r)
                              .Add({})),
        stale_reports(Reg(prometheus::BuildCounter(),
                          "sluice_quota_stale_reports_total",
                          "Demand reports dropped because a newer one of "
                          "their stream came first (datagrams reorder)",
                          r)
                          .Add({})),
        duplicate_ids(Reg(prometheus::BuildCounter(),
                          "sluice_quota_duplicate_sidecar_ids_total",
                          "Lease streams refused because their sidecar_id "
                          "was leasing on another instance's open stream",
                          r)
                          .Add({})),
        propagation(
            Reg(prometheus::BuildHistogram(),
                "sluice_quota_pause_propagation_seconds",
                "From a throttle report to the last sidecar's "
                "acknowledgement of the pause it started",
                r)
                .Add({}, prometheus::Histogram::BucketBoundaries(
                             std::begin(PropagationHistogram::kBounds),
                             std::end(PropagationHistogram::kBounds)))) {}

  Family<Gauge>& rate;
  Family<Gauge>& burst;
  Family<Gauge>& level;
  Family<Gauge>& outstanding;
  Family<Gauge>& granted;
  Family<Gauge>& utilisation;
  Family<Gauge>& learning;
  Family<Gauge>& sidecars;
  Gauge& streams;
  Counter& opened;
  Counter& rejected;
  Family<Counter>& messages;
  Counter& messages_in;
  Counter& messages_out;
  Family<Counter>& reloads;
  Counter& reload_ok;
  Counter& reload_failed;
  Counter& limit_changes;
  Family<Gauge>& learned;
  Family<Gauge>& effective;
  Family<Gauge>& stated;
  Family<Counter>& pauses;
  Family<Gauge>& paused;
  Family<Counter>& datagrams;
  Family<Counter>& lease_datagrams;
  Counter& demand_datagrams;
  Counter& grant_datagrams;
  Gauge& fast_path_sidecars;
  Counter& duplicate_reports;
  Counter& stale_reports;
  Counter& duplicate_ids;
  prometheus::Histogram& propagation;
  PropagationHistogram propagation_seen;  // what `propagation` holds
  std::map<std::string, std::set<std::string>> reasons;  // pauses series
  std::set<std::string> known;  // resources with series
};

QuotaMetrics::QuotaMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      state_(std::make_unique<State>(*registry_)) {}

QuotaMetrics::~QuotaMetrics() = default;

void QuotaMetrics::Update(const QuotaAllocator::Status& status,
                          uint64_t streams_opened, uint64_t messages_in,
                          uint64_t messages_out, uint64_t streams_rejected) {
  State& s = *state_;
  CatchUp(s.duplicate_ids, status.duplicate_ids);
  std::set<std::string> seen;
  for (const auto& r : status.resources) {
    const std::map<std::string, std::string> l{{"resource", r.name}};
    s.rate.Add(l).Set(r.rate_per_second);
    s.burst.Add(l).Set(r.burst);
    s.level.Add(l).Set(r.level);
    s.outstanding.Add(l).Set(r.outstanding);
    s.granted.Add(l).Set(r.granted_per_second);
    s.utilisation.Add(l).Set(r.utilisation);
    s.learning.Add(l).Set(r.learning ? 1 : 0);
    s.sidecars.Add(l).Set(static_cast<double>(r.sidecars.size()));
    s.learned.Add(l).Set(r.learned_rate_per_second);
    s.effective.Add(l).Set(r.effective_rate_per_second);
    s.stated.Add(l).Set(r.stated_rate_per_second);
    for (const auto& [reason, n] : r.pauses_by_reason) {
      CatchUp(s.pauses.Add({{"resource", r.name}, {"reason", reason}}), n);
      s.reasons[r.name].insert(reason);
    }
    for (PauseSchedule::Phase phase :
         {PauseSchedule::Phase::kPaused, PauseSchedule::Phase::kProbing,
          PauseSchedule::Phase::kRamping}) {
      const auto n =
          std::count_if(r.pauses.begin(), r.pauses.end(),
                        [&](const auto& p) { return p.phase == phase; });
      s.paused
          .Add({{"resource", r.name},
                {"phase", std::string(PausePhaseName(phase))}})
          .Set(static_cast<double>(n));
    }
    seen.insert(r.name);
  }
  for (const auto& gone : s.known) {
    if (seen.count(gone)) continue;
    const std::map<std::string, std::string> l{{"resource", gone}};
    for (Family<Gauge>* f :
         {&s.rate, &s.burst, &s.level, &s.outstanding, &s.granted,
          &s.utilisation, &s.learning, &s.sidecars, &s.learned, &s.effective,
          &s.stated}) {
      f->Remove(&f->Add(l));
    }
    for (std::string_view phase : {"paused", "probing", "ramping"}) {
      s.paused.Remove(
          &s.paused.Add({{"resource", gone}, {"phase", std::string(phase)}}));
    }
    for (const std::string& reason : s.reasons[gone]) {
      s.pauses.Remove(&s.pauses.Add({{"resource", gone}, {"reason", reason}}));
    }
    s.reasons.erase(gone);
  }
  s.known = std::move(seen);
  // The allocator's histogram is cumulative: add what is new since the last
  // update.
  const PropagationHistogram& h = status.pause_propagation;
  if (h.count > s.propagation_seen.count) {
    std::vector<double> increments(PropagationHistogram::kBuckets + 1);
    for (size_t i = 0; i < increments.size(); ++i) {
      increments[i] =
          static_cast<double>(h.counts[i] - s.propagation_seen.counts[i]);
    }
    s.propagation.ObserveMultiple(increments, h.sum - s.propagation_seen.sum);
    s.propagation_seen = h;
  }
  s.streams.Set(static_cast<double>(status.connected_streams));
  CatchUp(s.opened, streams_opened);
  CatchUp(s.rejected, streams_rejected);
  CatchUp(s.messages_in, messages_in);
  CatchUp(s.messages_out, messages_out);
}

void QuotaMetrics::UpdateFastPath(const FastPathServer::Stats& f,
                                  uint64_t duplicate_reports,
                                  uint64_t stale_reports) {
  State& s = *state_;
  const std::pair<const char*, uint64_t> in[] = {
      {"ok", f.in_ok},
      {"bad_mac", f.in_bad_mac},
      {"replayed", f.in_replayed},
      {"unknown_token", f.in_unknown_token},
      {"malformed", f.in_malformed}};
  for (const auto& [result, n] : in) {
    CatchUp(s.datagrams.Add({{"direction", "in"}, {"result", result}}), n);
  }
  CatchUp(s.datagrams.Add({{"direction", "out"}, {"result", "sent"}}),
          f.out_sent);
  CatchUp(s.datagrams.Add({{"direction", "out"}, {"result", "failed"}}),
          f.out_failed);
  s.fast_path_sidecars.Set(static_cast<double>(f.registered));
  CatchUp(s.demand_datagrams, f.demand_in);
  CatchUp(s.grant_datagrams, f.grants_out);
  CatchUp(s.duplicate_reports, duplicate_reports);
  CatchUp(s.stale_reports, stale_reports);
}

void QuotaMetrics::CountReload(bool ok) {
  (ok ? state_->reload_ok : state_->reload_failed).Increment();
}

void QuotaMetrics::CountLimitChange() { state_->limit_changes.Increment(); }

std::string QuotaMetrics::Serialize() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::sort(families.begin(), families.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace sluice
