#include "proxy/stats/lease_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <array>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace sluice {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;

std::string S(std::string_view v) { return std::string(v); }

template <typename Builder>
auto& Reg(Builder b, std::string_view name, std::string_view help,
          prometheus::Registry& registry) {
  return b.Name(S(name)).Help(S(help)).Register(registry);
}

}  // namespace

LeaseMetrics::LeaseMetrics(prometheus::Registry& registry)
    : registry_(registry) {}

LeaseMetrics::~LeaseMetrics() = default;

// Leased-mode series, created with the first leased limit so standalone
// proxies do not show them.
struct LeaseMetrics::Series {
  static constexpr std::array<LeaseMode, 4> kModes = {
      LeaseMode::kLeased, LeaseMode::kFallbackShare, LeaseMode::kFailClosed,
      LeaseMode::kFailOpen};
  struct PerLimit {
    std::array<Gauge*, kModes.size()> mode{};
    Gauge* held = nullptr;
  };
  explicit Series(prometheus::Registry& r)
      : mode(Reg(prometheus::BuildGauge(), "sluice_proxy_lease_mode",
                 "1 for the lease mode a leased limit is in now (per-key "
                 "limits: the number of keys in that mode).",
                 r)),
        held(Reg(prometheus::BuildGauge(), "sluice_proxy_lease_held_tokens",
                 "Leased tokens held (unspent, unexpired) per limit.", r)),
        connected(Reg(prometheus::BuildGauge(),
                      "sluice_proxy_lease_stream_connected",
                      "1 while the quota server stream is connected.", r)
                      .Add({})),
        connects(Reg(prometheus::BuildCounter(),
                     "sluice_proxy_lease_stream_connects_total",
                     "Quota server streams that got a first answer.", r)
                     .Add({})),
        disconnects(Reg(prometheus::BuildCounter(),
                        "sluice_proxy_lease_stream_disconnects_total",
                        "Quota server streams that ended after connecting.", r)
                        .Add({})),
        failed(Reg(prometheus::BuildCounter(),
                   "sluice_proxy_lease_stream_failed_attempts_total",
                   "Attempts to reach a quota server that got no answer.", r)
                   .Add({})),
        fast_path_up(Reg(prometheus::BuildGauge(), "sluice_proxy_fast_path_up",
                         "1 while the quota server has welcomed this "
                         "sidecar on the UDP fast path.",
                         r)
                         .Add({})),
        datagrams(Reg(prometheus::BuildCounter(),
                      "sluice_proxy_fast_path_datagrams_total",
                      "Pause fast-path datagrams by direction and result.", r)),
        in_ok(datagrams.Add({{"direction", "in"}, {"result", "ok"}})),
        in_rejected(
            datagrams.Add({{"direction", "in"}, {"result", "rejected"}})),
        out_sent(datagrams.Add({{"direction", "out"}, {"result", "sent"}})),
        out_failed(datagrams.Add({{"direction", "out"}, {"result", "failed"}})),
        delivered(Reg(prometheus::BuildCounter(),
                      "sluice_proxy_pause_delivered_total",
                      "Fleet pauses by the path whose copy was applied "
                      "first (datagram or stream).",
                      r)),
        by_datagram(delivered.Add({{"path", "datagram"}})),
        by_stream(delivered.Add({{"path", "stream"}})),
        leasing(Reg(prometheus::BuildGauge(), "sluice_proxy_fast_path_leasing",
                    "1 while demand reports and grants go as fast-path "
                    "datagrams instead of on the stream.",
                    r)
                    .Add({})),
        lease_datagrams(Reg(prometheus::BuildCounter(),
                            "sluice_proxy_lease_datagrams_total",
                            "Demand reports sent and grants received as "
                            "fast-path datagrams.",
                            r)),
        demand_datagrams(lease_datagrams.Add({{"kind", "demand"}})),
        grant_datagrams(lease_datagrams.Add({{"kind", "grant"}})),
        stale_grants(Reg(prometheus::BuildCounter(),
                         "sluice_proxy_lease_stale_grants_total",
                         "Grants dropped because a newer grant came first "
                         "(datagrams reorder).",
                         r)
                         .Add({})),
        aged_grants(Reg(prometheus::BuildCounter(),
                        "sluice_proxy_lease_aged_grants_total",
                        "Grants whose tokens came dead: older than a ttl, "
                        "counted from the report they echo.",
                        r)
                        .Add({})) {}

  Family<Gauge>& mode;
  Family<Gauge>& held;
  Gauge& connected;
  Counter& connects;
  Counter& disconnects;
  Counter& failed;
  Gauge& fast_path_up;
  Family<Counter>& datagrams;
  Counter& in_ok;
  Counter& in_rejected;
  Counter& out_sent;
  Counter& out_failed;
  Family<Counter>& delivered;
  Counter& by_datagram;
  Counter& by_stream;
  Gauge& leasing;
  Family<Counter>& lease_datagrams;
  Counter& demand_datagrams;
  Counter& grant_datagrams;
  Counter& stale_grants;
  Counter& aged_grants;
  absl::flat_hash_map<std::string, PerLimit> limits;
};

void LeaseMetrics::RegisterLeasedLimit(std::string_view limit) {
  std::lock_guard lock(mu_);
  if (!series_) series_ = std::make_unique<Series>(registry_);
  const absl::string_view key(limit.data(), limit.size());
  if (series_->limits.contains(key)) return;
  Series::PerLimit& p = series_->limits[key];
  for (size_t i = 0; i < Series::kModes.size(); ++i) {
    p.mode[i] = &series_->mode.Add(
        {{"limit", S(limit)}, {"mode", S(LeaseModeName(Series::kModes[i]))}});
  }
  p.held = &series_->held.Add({{"limit", S(limit)}});
}

void LeaseMetrics::SetLeaseKeys(std::string_view limit,
                                const std::array<size_t, 4>& keys_by_mode,
                                double held) {
  std::lock_guard lock(mu_);
  if (!series_) return;
  auto it = series_->limits.find(absl::string_view(limit.data(), limit.size()));
  if (it == series_->limits.end()) return;
  for (size_t i = 0; i < Series::kModes.size(); ++i) {
    it->second.mode[i]->Set(static_cast<double>(
        keys_by_mode[static_cast<size_t>(Series::kModes[i])]));
  }
  it->second.held->Set(held);
}

void LeaseMetrics::SetLeaseState(std::string_view limit, LeaseMode mode,
                                 double held) {
  std::array<size_t, 4> one{};
  one[static_cast<size_t>(mode)] = 1;
  SetLeaseKeys(limit, one, held);
}

void LeaseMetrics::SetLeaseStream(const LeaseStreamTotals& totals) {
  std::lock_guard lock(mu_);
  if (!series_) return;
  series_->connected.Set(totals.connected ? 1 : 0);
  const auto raise = [](Counter& c, uint64_t total) {
    const double d = static_cast<double>(total) - c.Value();
    if (d > 0) c.Increment(d);
  };
  raise(series_->connects, totals.connects);
  raise(series_->disconnects, totals.disconnects);
  raise(series_->failed, totals.failed_attempts);
  series_->fast_path_up.Set(totals.fast_path_up ? 1 : 0);
  raise(series_->in_ok, totals.datagrams_in_ok);
  raise(series_->in_rejected, totals.datagrams_in_rejected);
  raise(series_->out_sent, totals.datagrams_out_sent);
  raise(series_->out_failed, totals.datagrams_out_failed);
  raise(series_->by_datagram, totals.pauses_by_datagram);
  raise(series_->by_stream, totals.pauses_by_stream);
  series_->leasing.Set(totals.leasing_by_datagram ? 1 : 0);
  raise(series_->demand_datagrams, totals.demand_datagrams);
  raise(series_->grant_datagrams, totals.grant_datagrams);
  raise(series_->stale_grants, totals.stale_grants);
  raise(series_->aged_grants, totals.aged_grants);
}

}  // namespace sluice
