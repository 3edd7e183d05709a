#include "quota-server/server/status_page.h"

#include <boost/json.hpp>
#include <chrono>
#include <utility>

namespace sluice {

// StatusPageHtml() is defined in the generated status_page_html.cc (from
// status_page_html.cc.in and status_page.html).

namespace json = boost::json;

std::string StatusJson(const QuotaAllocator::Status& status) {
  json::array resources;
  for (const auto& r : status.resources) {
    json::array sidecars;
    for (const auto& s : r.sidecars) {
      sidecars.push_back(
          json::object{{"id", s.sidecar_id},
                       {"pod", s.pod},
                       {"connected", s.connected},
                       {"weight", s.weight},
                       {"demand_per_second", s.demand_per_second},
                       {"share_per_second", s.share_per_second},
                       {"outstanding", s.outstanding},
                       {"granted_total", s.granted_total}});
    }
    json::array pauses;
    for (const auto& p : r.pauses) {
      pauses.push_back(json::object{
          {"key_hash", p.key_hash},
          {"phase", std::string(PausePhaseName(p.phase))},
          {"pause_id", p.pause_id},
          {"remaining_ms",
           std::chrono::duration<double, std::milli>(p.remaining).count()},
          {"rate_fraction", p.rate_fraction},
          {"origin_sidecar", p.origin_sidecar},
          {"reason", p.reason}});
    }
    json::object pauses_total;
    for (const auto& [reason, n] : r.pauses_by_reason) {
      pauses_total[reason] = n;
    }
    resources.push_back(
        json::object{{"name", r.name},
                     {"rate_per_second", r.rate_per_second},
                     {"burst", r.burst},
                     {"level", r.level},
                     {"outstanding", r.outstanding},
                     {"granted_per_second", r.granted_per_second},
                     {"utilisation", r.utilisation},
                     {"learning", r.learning},
                     {"learn_limit", r.learning_limit},
                     {"learned_rate_per_second", r.learned_rate_per_second},
                     {"effective_rate_per_second", r.effective_rate_per_second},
                     {"stated_rate_per_second", r.stated_rate_per_second},
                     {"sidecars", std::move(sidecars)},
                     {"pauses", std::move(pauses)},
                     {"pauses_total", std::move(pauses_total)}});
  }
  json::array recent;  // oldest first
  const auto& ring = status.pause_propagation.recent;
  for (size_t k = 0; k < ring.size(); ++k) {
    const size_t i = (status.pause_propagation.recent_next + k) % ring.size();
    recent.push_back(ring[i] * 1e3);
  }
  return json::serialize(
      json::object{{"epoch", status.epoch},
                   {"pause_propagation_ms_recent", std::move(recent)},
                   {"config_version", status.config_version},
                   {"connected_streams", status.connected_streams},
                   {"ignored_reports", status.ignored_reports},
                   {"duplicate_reports", status.duplicate_reports},
                   {"stale_reports", status.stale_reports},
                   {"duplicate_sidecar_ids", status.duplicate_ids},
                   {"resources", std::move(resources)}});
}

}  // namespace sluice
