#ifndef SLUICE_TESTS_PROXY_SERVER_TEST_CONTEXT_H_
#define SLUICE_TESTS_PROXY_SERVER_TEST_CONTEXT_H_

// A ProxyContext for the server room's tests, with every piece it points to
// built from one config on a FakeClock: the router, an SSRF guard (loopback
// allowed or not), the upstream pool, the limit gate and the metrics.

#include <memory>
#include <utility>
#include <vector>

#include "common/time/clock.h"
#include "proxy/config/config.h"
#include "proxy/egress/ip_address.h"
#include "proxy/egress/ssrf_guard.h"
#include "proxy/http/router.h"
#include "proxy/limit/limit_gate.h"
#include "proxy/server/proxy_context.h"
#include "proxy/server/upstream_pool.h"
#include "proxy/stats/pause_metrics.h"
#include "proxy/stats/proxy_metrics.h"

namespace sluice::test {

class TestContext {
 public:
  // `config` and the routes' `limits` (one per route, null for none) must
  // outlive this.
  TestContext(const ProxyConfig* config, bool allow_loopback,
              std::vector<LimitRuntime*> limits = {}) {
    std::vector<Cidr> allow;
    if (allow_loopback) allow.push_back(*ParseCidr("127.0.0.0/8"));
    guard_ = std::make_unique<SsrfGuard>(
        std::move(allow), std::vector<std::pair<IpAddress, uint16_t>>{});
    router_ = std::make_unique<Router>(config->routes);
    pool_ = std::make_unique<UpstreamPool>(
        UpstreamPool::Options{.max_idle_per_host = 8,
                              .max_idle_total = 8,
                              .idle_timeout = std::chrono::seconds(30)},
        &clock_);
    gate_ = std::make_unique<LimitGate>(&clock_);
    pause_metrics_ =
        std::make_unique<PauseMetrics>(*metrics_.registry(), &clock_);
    ctx_.config = config;
    ctx_.clock = &clock_;
    ctx_.router = router_.get();
    ctx_.guard = guard_.get();
    ctx_.pool = pool_.get();
    ctx_.gate = gate_.get();
    ctx_.metrics = &metrics_;
    ctx_.pause_metrics = pause_metrics_.get();
    limits.resize(config->routes.size(), nullptr);
    ctx_.route_limits = std::move(limits);
  }

  ProxyContext& ctx() { return ctx_; }
  FakeClock& clock() { return clock_; }
  ProxyMetrics& metrics() { return metrics_; }

 private:
  FakeClock clock_;
  std::unique_ptr<SsrfGuard> guard_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<UpstreamPool> pool_;
  std::unique_ptr<LimitGate> gate_;
  ProxyMetrics metrics_;
  std::unique_ptr<PauseMetrics> pause_metrics_;
  ProxyContext ctx_;
};

}  // namespace sluice::test

#endif  // SLUICE_TESTS_PROXY_SERVER_TEST_CONTEXT_H_
