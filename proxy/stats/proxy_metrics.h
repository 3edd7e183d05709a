#ifndef SLUICE_PROXY_STATS_PROXY_METRICS_H_
#define SLUICE_PROXY_STATS_PROXY_METRICS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/time/clock.h"
#include "proxy/egress/dial_error.h"

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace sluice {

struct ProxyConfig;

// How one client request ended. Each value is one `outcome` label of
// sluice_proxy_requests_total.
enum class RequestOutcome {
  kForwarded,
  kLimitedWaitExceeded,
  kLimitedQueueFull,
  kLimitedKeyOverflow,
  kLimitedTooCostly,
  kDeniedSsrf,
  kDeniedPort,
  kBadRequest,
  kUpstreamError,
  kUpstreamTimeout,
  kClientTimeout,
  kTunnel,
  // A CONNECT whose tunnel sluice reads itself (docs/https.md): each
  // request inside then counts on its own.
  kIntercepted,
};
inline constexpr size_t kRequestOutcomeCount = 13;
static_assert(static_cast<size_t>(RequestOutcome::kIntercepted) + 1 ==
              kRequestOutcomeCount);

// The label value for `outcome` ("forwarded", "limited_queue_full", ...).
std::string_view OutcomeName(RequestOutcome outcome);

// The proxy's Prometheus metrics (all named sluice_proxy_*), backed by a
// prometheus-cpp registry. Every method is thread-safe. The pause and
// leased-mode metrics (PauseMetrics, LeaseMetrics) are registered in the
// same registry and serialised with these.
//
// Label values for routes and limits come from the configuration. They are
// meant to be registered at startup (RegisterRoute/RegisterLimit); after
// that the per-request methods only do a shared-lock map lookup and atomic
// updates. A name seen for the first time at request time is registered on
// the spot, up to kMaxNames distinct names per kind; beyond that the series
// "_other" absorbs the rest so label cardinality stays bounded.
class ProxyMetrics {
 public:
  static constexpr size_t kMaxNames = 1024;
  // Route label used for requests that matched no route.
  static constexpr std::string_view kUnmatchedRoute = "unmatched";

  // `build_version` is the value of build_info{version}.
  explicit ProxyMetrics(std::string_view build_version = "dev");
  ~ProxyMetrics();
  ProxyMetrics(const ProxyMetrics&) = delete;
  ProxyMetrics& operator=(const ProxyMetrics&) = delete;

  // The registry behind these metrics (for adding more collectables).
  const std::shared_ptr<prometheus::Registry>& registry() const {
    return registry_;
  }

  // Creates every series for a route / limit (zero-valued) so they show up
  // before the first request. Idempotent.
  void RegisterRoute(std::string_view route);
  void RegisterLimit(std::string_view limit);

  // Sets config_info{version=...} to 1 (and drops any previous version).
  void SetConfigVersion(std::string_view version);

  // requests_total{route, outcome} += 1. An empty route counts as
  // "unmatched".
  void OnRequest(std::string_view route, RequestOutcome outcome);

  // bytes_total{direction}: client_to_upstream += in, upstream_to_client +=
  // out.
  void OnBytes(uint64_t client_to_upstream, uint64_t upstream_to_client);

  // limiter_queue_depth{limit} = depth.
  void OnQueueDepth(std::string_view limit, size_t depth);
  // limiter_wait_seconds{limit} observes `waited`.
  void ObserveWait(std::string_view limit, Duration waited);
  // limiter_admitted_total{limit} += 1 and ObserveWait(limit, waited).
  void OnAdmitted(std::string_view limit, Duration waited);
  // limiter_rejected_total{limit, reason} += 1. Reasons: "wait_exceeded",
  // "queue_full", "key_overflow", "too_costly"; anything else is "other".
  void OnRejected(std::string_view limit, std::string_view reason);

  // upstream_responses_total{code_class="2xx", code="200"} += 1. Codes
  // outside 100..599 count as code_class="other", code="other".
  void OnUpstreamStatus(int code);

  // One dial to an origin took `took`. Success (kNone) is observed in
  // upstream_connect_seconds; a failure counts in
  // upstream_connect_errors_total{reason}: "dns", "refused", "timeout"
  // (of DNS or of the connect), "denied" (the SSRF guard) or "other".
  void ObserveConnect(Duration took, DialError error);

  // Client connections: client_connections (gauge of open ones),
  // client_connections_total, client_connections_rejected_total.
  void OnConnectionOpened();
  void OnConnectionClosed();
  void OnConnectionRejected();

  // tunnels_active gauge.
  void OnTunnelOpened();
  void OnTunnelClosed();

  // Upstream pool: pool_idle_connections gauge, pool_reused_total,
  // pool_new_total.
  void SetPoolIdle(size_t idle);
  void OnPoolReuse();
  void OnPoolNew();

  // The Prometheus text exposition format (version 0.0.4) of every metric.
  std::string Serialize() const;

 private:
  struct RouteSeries;
  struct LimitSeries;
  struct State;

  RouteSeries* Route(std::string_view name);
  LimitSeries* Limit(std::string_view name);
  prometheus::Counter* StatusCounter(int code);

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<State> s_;
};

// Prepares `metrics` for `config` at startup: registers every configured
// limit and every route's label (RouteLabel in router.h) so their series
// exist at 0 before traffic, and sets config_info to ConfigVersion(config).
void RegisterConfigSeries(ProxyMetrics& metrics, const ProxyConfig& config);

}  // namespace sluice

#endif  // SLUICE_PROXY_STATS_PROXY_METRICS_H_
