#include "proxy/stats/proxy_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/time/duration.h"
#include "proxy/config/config.h"
#include "proxy/config/config_loader.h"
#include "proxy/http/router.h"

namespace sluice {

namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

constexpr std::array<std::string_view, kRequestOutcomeCount> kOutcomeNames = {
    "forwarded",          "limited_wait_exceeded",
    "limited_queue_full", "limited_key_overflow",
    "limited_too_costly", "denied_ssrf",
    "denied_port",        "bad_request",
    "upstream_error",     "upstream_timeout",
    "client_timeout",     "tunnel",
    "intercepted",
};

// limiter_rejected_total reasons; the last one absorbs unknown reasons.
constexpr std::array<std::string_view, 5> kRejectReasons = {
    "wait_exceeded", "queue_full", "key_overflow", "too_costly", "other"};

// upstream_connect_errors_total reasons; the last one absorbs the rest.
constexpr std::array<std::string_view, 5> kConnectReasons = {
    "dns", "refused", "timeout", "denied", "other"};
enum ConnectReason { kDns, kRefused, kTimeout, kDenied, kOtherConnect };

constexpr std::string_view kOtherName = "_other";

const Histogram::BucketBoundaries& WaitBuckets() {
  static const Histogram::BucketBoundaries b = {
      0, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30};
  return b;
}

const Histogram::BucketBoundaries& ConnectBuckets() {
  static const Histogram::BucketBoundaries b = {
      .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
  return b;
}

std::string S(std::string_view v) { return std::string(v); }

template <typename Builder>
auto& Reg(Builder b, std::string_view name, std::string_view help,
          prometheus::Registry& registry) {
  return b.Name(S(name)).Help(S(help)).Register(registry);
}

ConnectReason ClassifyConnectFailure(DialError error) {
  switch (error) {
    case DialError::kDns:
      return kDns;
    case DialError::kRefused:
      return kRefused;
    case DialError::kDnsTimeout:
    case DialError::kConnectTimeout:
      return kTimeout;
    case DialError::kDenied:
      return kDenied;
    case DialError::kNone:
    case DialError::kBadHost:
    case DialError::kConnect:
      break;
  }
  return kOtherConnect;
}

}  // namespace

std::string_view OutcomeName(RequestOutcome outcome) {
  const auto i = static_cast<size_t>(outcome);
  return i < kOutcomeNames.size() ? kOutcomeNames[i] : "unknown";
}

struct ProxyMetrics::RouteSeries {
  std::array<Counter*, kRequestOutcomeCount> by_outcome{};
};

struct ProxyMetrics::LimitSeries {
  Gauge* queue_depth = nullptr;
  Histogram* wait = nullptr;
  Counter* admitted = nullptr;
  std::array<Counter*, kRejectReasons.size()> rejected{};
};

struct ProxyMetrics::State {
  explicit State(prometheus::Registry& r)
      : requests(Reg(prometheus::BuildCounter(), "sluice_proxy_requests_total",
                     "Client requests by route and how they ended.", r)),
        queue_depth(Reg(prometheus::BuildGauge(),
                        "sluice_proxy_limiter_queue_depth",
                        "Requests waiting in a limit's queue.", r)),
        wait(Reg(prometheus::BuildHistogram(),
                 "sluice_proxy_limiter_wait_seconds",
                 "Time admitted requests waited for their limit.", r)),
        admitted(Reg(prometheus::BuildCounter(),
                     "sluice_proxy_limiter_admitted_total",
                     "Requests a limit let through.", r)),
        rejected(Reg(prometheus::BuildCounter(),
                     "sluice_proxy_limiter_rejected_total",
                     "Requests a limit answered with 429, by reason.", r)),
        responses(Reg(prometheus::BuildCounter(),
                      "sluice_proxy_upstream_responses_total",
                      "Origin responses by status code.", r)),
        connect(Reg(prometheus::BuildHistogram(),
                    "sluice_proxy_upstream_connect_seconds",
                    "Time to resolve and connect to an origin.", r)),
        connect_errors(Reg(prometheus::BuildCounter(),
                           "sluice_proxy_upstream_connect_errors_total",
                           "Failed dials to origins, by reason.", r)),
        bytes(Reg(prometheus::BuildCounter(), "sluice_proxy_bytes_total",
                  "Bytes relayed, by direction.", r)),
        config_info(Reg(prometheus::BuildGauge(), "sluice_proxy_config_info",
                        "Always 1; labelled with the config version.", r)),
        build_info(Reg(prometheus::BuildGauge(), "sluice_proxy_build_info",
                       "Always 1; labelled with the build version.", r)),
        connections(Reg(prometheus::BuildGauge(),
                        "sluice_proxy_client_connections",
                        "Open client connections.", r)
                        .Add({})),
        connections_total(Reg(prometheus::BuildCounter(),
                              "sluice_proxy_client_connections_total",
                              "Client connections accepted.", r)
                              .Add({})),
        connections_rejected(
            Reg(prometheus::BuildCounter(),
                "sluice_proxy_client_connections_rejected_total",
                "Client connections refused over limits.max_connections.", r)
                .Add({})),
        tunnels(Reg(prometheus::BuildGauge(), "sluice_proxy_tunnels_active",
                    "Open CONNECT tunnels.", r)
                    .Add({})),
        pool_idle(Reg(prometheus::BuildGauge(),
                      "sluice_proxy_pool_idle_connections",
                      "Idle origin connections in the pool.", r)
                      .Add({})),
        pool_reused(Reg(prometheus::BuildCounter(),
                        "sluice_proxy_pool_reused_total",
                        "Requests sent on a pooled origin connection.", r)
                        .Add({})),
        pool_new(Reg(prometheus::BuildCounter(), "sluice_proxy_pool_new_total",
                     "New origin connections dialled.", r)
                     .Add({})),
        connect_seconds(connect.Add({}, ConnectBuckets())),
        bytes_in(bytes.Add({{"direction", "client_to_upstream"}})),
        bytes_out(bytes.Add({{"direction", "upstream_to_client"}})) {
    for (size_t i = 0; i < kConnectReasons.size(); ++i) {
      connect_error[i] =
          &connect_errors.Add({{"reason", S(kConnectReasons[i])}});
    }
  }

  Family<Counter>& requests;
  Family<Gauge>& queue_depth;
  Family<Histogram>& wait;
  Family<Counter>& admitted;
  Family<Counter>& rejected;
  Family<Counter>& responses;
  Family<Histogram>& connect;
  Family<Counter>& connect_errors;
  Family<Counter>& bytes;
  Family<Gauge>& config_info;
  Family<Gauge>& build_info;
  Gauge& connections;
  Counter& connections_total;
  Counter& connections_rejected;
  Gauge& tunnels;
  Gauge& pool_idle;
  Counter& pool_reused;
  Counter& pool_new;
  Histogram& connect_seconds;
  Counter& bytes_in;
  Counter& bytes_out;
  std::array<Counter*, kConnectReasons.size()> connect_error{};

  // Series cached per label value; entries are never removed, so pointers
  // stay valid for the life of the ProxyMetrics.
  std::shared_mutex names_mu;
  absl::flat_hash_map<std::string, std::unique_ptr<RouteSeries>> routes;
  absl::flat_hash_map<std::string, std::unique_ptr<LimitSeries>> limits;

  // upstream_responses_total series, created on first use; index = code.
  std::array<std::atomic<Counter*>, 600> status_counters{};
  Counter* status_other = nullptr;

  std::mutex config_mu;
  Gauge* config_info_series = nullptr;
};

ProxyMetrics::ProxyMetrics(std::string_view build_version)
    : registry_(std::make_shared<prometheus::Registry>()),
      s_(std::make_unique<State>(*registry_)) {
  s_->build_info.Add({{"version", S(build_version)}}).Set(1);
  s_->status_other =
      &s_->responses.Add({{"code_class", "other"}, {"code", "other"}});
  RegisterRoute(kUnmatchedRoute);
}

ProxyMetrics::~ProxyMetrics() = default;

void ProxyMetrics::RegisterRoute(std::string_view route) { Route(route); }

void ProxyMetrics::RegisterLimit(std::string_view limit) { Limit(limit); }

ProxyMetrics::RouteSeries* ProxyMetrics::Route(std::string_view name) {
  if (name.empty()) name = kUnmatchedRoute;
  const absl::string_view key(name.data(), name.size());
  {
    std::shared_lock lock(s_->names_mu);
    auto it = s_->routes.find(key);
    if (it != s_->routes.end()) return it->second.get();
  }
  std::unique_lock lock(s_->names_mu);
  auto it = s_->routes.find(key);
  if (it != s_->routes.end()) return it->second.get();
  if (s_->routes.size() >= kMaxNames) {
    auto other = s_->routes.find(
        absl::string_view(kOtherName.data(), kOtherName.size()));
    if (other != s_->routes.end()) return other->second.get();
    name = kOtherName;
  }
  auto series = std::make_unique<RouteSeries>();
  for (size_t i = 0; i < kRequestOutcomeCount; ++i) {
    series->by_outcome[i] = &s_->requests.Add(
        {{"route", S(name)}, {"outcome", S(kOutcomeNames[i])}});
  }
  RouteSeries* raw = series.get();
  s_->routes.emplace(S(name), std::move(series));
  return raw;
}

ProxyMetrics::LimitSeries* ProxyMetrics::Limit(std::string_view name) {
  const absl::string_view key(name.data(), name.size());
  {
    std::shared_lock lock(s_->names_mu);
    auto it = s_->limits.find(key);
    if (it != s_->limits.end()) return it->second.get();
  }
  std::unique_lock lock(s_->names_mu);
  auto it = s_->limits.find(key);
  if (it != s_->limits.end()) return it->second.get();
  if (s_->limits.size() >= kMaxNames) {
    auto other = s_->limits.find(
        absl::string_view(kOtherName.data(), kOtherName.size()));
    if (other != s_->limits.end()) return other->second.get();
    name = kOtherName;
  }
  auto series = std::make_unique<LimitSeries>();
  const prometheus::Labels labels = {{"limit", S(name)}};
  series->queue_depth = &s_->queue_depth.Add(labels);
  series->wait = &s_->wait.Add(labels, WaitBuckets());
  series->admitted = &s_->admitted.Add(labels);
  for (size_t i = 0; i < kRejectReasons.size(); ++i) {
    series->rejected[i] = &s_->rejected.Add(
        {{"limit", S(name)}, {"reason", S(kRejectReasons[i])}});
  }
  LimitSeries* raw = series.get();
  s_->limits.emplace(S(name), std::move(series));
  return raw;
}

void ProxyMetrics::SetConfigVersion(std::string_view version) {
  std::lock_guard lock(s_->config_mu);
  if (s_->config_info_series) s_->config_info.Remove(s_->config_info_series);
  s_->config_info_series = &s_->config_info.Add({{"version", S(version)}});
  s_->config_info_series->Set(1);
}

void ProxyMetrics::OnRequest(std::string_view route, RequestOutcome outcome) {
  const auto i = static_cast<size_t>(outcome);
  if (i >= kRequestOutcomeCount) return;
  Route(route)->by_outcome[i]->Increment();
}

void ProxyMetrics::OnBytes(uint64_t client_to_upstream,
                           uint64_t upstream_to_client) {
  if (client_to_upstream) {
    s_->bytes_in.Increment(static_cast<double>(client_to_upstream));
  }
  if (upstream_to_client) {
    s_->bytes_out.Increment(static_cast<double>(upstream_to_client));
  }
}

void ProxyMetrics::OnQueueDepth(std::string_view limit, size_t depth) {
  Limit(limit)->queue_depth->Set(static_cast<double>(depth));
}

void ProxyMetrics::ObserveWait(std::string_view limit, Duration waited) {
  Limit(limit)->wait->Observe(ToSeconds(std::max(waited, Duration::zero())));
}

void ProxyMetrics::OnAdmitted(std::string_view limit, Duration waited) {
  LimitSeries* s = Limit(limit);
  s->admitted->Increment();
  s->wait->Observe(ToSeconds(std::max(waited, Duration::zero())));
}

void ProxyMetrics::OnRejected(std::string_view limit, std::string_view reason) {
  size_t i = 0;
  while (i + 1 < kRejectReasons.size() && kRejectReasons[i] != reason) ++i;
  Limit(limit)->rejected[i]->Increment();
}

Counter* ProxyMetrics::StatusCounter(int code) {
  if (code < 100 || code > 599) return s_->status_other;
  auto& slot = s_->status_counters[static_cast<size_t>(code)];
  if (Counter* c = slot.load(std::memory_order_acquire)) return c;
  // Family::Add returns the existing series when two threads race here.
  const std::string text = std::to_string(code);
  Counter* c = &s_->responses.Add(
      {{"code_class", text.substr(0, 1) + "xx"}, {"code", text}});
  slot.store(c, std::memory_order_release);
  return c;
}

void ProxyMetrics::OnUpstreamStatus(int code) {
  StatusCounter(code)->Increment();
}

void ProxyMetrics::ObserveConnect(Duration took, DialError error) {
  if (error == DialError::kNone) {
    s_->connect_seconds.Observe(ToSeconds(std::max(took, Duration::zero())));
    return;
  }
  s_->connect_error[ClassifyConnectFailure(error)]->Increment();
}

void ProxyMetrics::OnConnectionOpened() {
  s_->connections.Increment();
  s_->connections_total.Increment();
}
void ProxyMetrics::OnConnectionClosed() { s_->connections.Decrement(); }
void ProxyMetrics::OnConnectionRejected() {
  s_->connections_rejected.Increment();
}
void ProxyMetrics::OnTunnelOpened() { s_->tunnels.Increment(); }
void ProxyMetrics::OnTunnelClosed() { s_->tunnels.Decrement(); }
void ProxyMetrics::SetPoolIdle(size_t idle) {
  s_->pool_idle.Set(static_cast<double>(idle));
}
void ProxyMetrics::OnPoolReuse() { s_->pool_reused.Increment(); }
void ProxyMetrics::OnPoolNew() { s_->pool_new.Increment(); }

std::string ProxyMetrics::Serialize() const {
  // Sorted families and series give a stable, readable exposition.
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::sort(families.begin(), families.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  const auto label_key = [](const prometheus::ClientMetric& m) {
    std::vector<std::pair<std::string_view, std::string_view>> key;
    key.reserve(m.label.size());
    for (const auto& l : m.label) key.emplace_back(l.name, l.value);
    return key;
  };
  for (auto& family : families) {
    std::sort(family.metric.begin(), family.metric.end(),
              [&](const auto& a, const auto& b) {
                return label_key(a) < label_key(b);
              });
  }
  return prometheus::TextSerializer().Serialize(families);
}

void RegisterConfigSeries(ProxyMetrics& metrics, const ProxyConfig& config) {
  for (const auto& [name, limit] : config.rate_limits) {
    metrics.RegisterLimit(name);
  }
  for (const RouteConfig& route : config.routes) {
    metrics.RegisterRoute(RouteLabel(route));
  }
  metrics.SetConfigVersion(ConfigVersion(config));
}

}  // namespace sluice
