#include "proxy/stats/proxy_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/config/config_loader.h"
#include "proxy/http/router.h"
#include "tests/testing/registry_values.h"

namespace sluice {
namespace {

using test::BucketCount;
using test::CounterValue;
using test::FindSeries;
using test::GaugeValue;
using test::Labels;
using test::SeriesCount;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(OutcomeNameTest, NamesEveryOutcomeDistinctly) {
  const std::vector<std::string> expected = {
      "forwarded",          "limited_wait_exceeded",
      "limited_queue_full", "limited_key_overflow",
      "limited_too_costly", "denied_ssrf",
      "denied_port",        "bad_request",
      "upstream_error",     "upstream_timeout",
      "client_timeout",     "tunnel",
      "intercepted"};
  ASSERT_EQ(expected.size(), kRequestOutcomeCount);
  for (size_t i = 0; i < kRequestOutcomeCount; ++i) {
    EXPECT_EQ(OutcomeName(static_cast<RequestOutcome>(i)), expected[i]);
  }
  EXPECT_EQ(OutcomeName(RequestOutcome::kTunnel), "tunnel");
}

TEST(ProxyMetricsTest, RegisteredRoutesStartAtZeroForEveryOutcome) {
  ProxyMetrics m;
  m.RegisterRoute("api.example.com/v1");
  EXPECT_EQ(
      CounterValue(*m.registry(), "sluice_proxy_requests_total",
                   {{"route", "api.example.com/v1"}, {"outcome", "forwarded"}}),
      0);
  EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_requests_total",
                         {{"route", "unmatched"}, {"outcome", "tunnel"}}),
            0);
  // Two routes (the one registered and "unmatched") x 12 outcomes.
  EXPECT_EQ(SeriesCount(*m.registry(), "sluice_proxy_requests_total"),
            2 * kRequestOutcomeCount);
  m.RegisterRoute("api.example.com/v1");  // idempotent
  EXPECT_EQ(SeriesCount(*m.registry(), "sluice_proxy_requests_total"),
            2 * kRequestOutcomeCount);
}

TEST(ProxyMetricsTest, CountsRequestsByRouteAndOutcome) {
  ProxyMetrics m;
  m.RegisterRoute("a");
  m.OnRequest("a", RequestOutcome::kForwarded);
  m.OnRequest("a", RequestOutcome::kForwarded);
  m.OnRequest("a", RequestOutcome::kLimitedQueueFull);
  m.OnRequest("", RequestOutcome::kBadRequest);  // empty = unmatched
  m.OnRequest("unmatched", RequestOutcome::kBadRequest);
  m.OnRequest("late", RequestOutcome::kDeniedSsrf);  // registered on use
  const std::string name = "sluice_proxy_requests_total";
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"route", "a"}, {"outcome", "forwarded"}}),
            2);
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"route", "a"}, {"outcome", "limited_queue_full"}}),
            1);
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"route", "a"}, {"outcome", "tunnel"}}),
            0);
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"route", "unmatched"}, {"outcome", "bad_request"}}),
            2);
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"route", "late"}, {"outcome", "denied_ssrf"}}),
            1);
}

TEST(ProxyMetricsTest, SerializesPrometheusText) {
  ProxyMetrics m("1.2.3");
  m.RegisterRoute("r");
  m.RegisterLimit("l");
  m.OnRequest("r", RequestOutcome::kForwarded);
  m.OnRequest("r", RequestOutcome::kForwarded);
  m.OnRequest("r", RequestOutcome::kForwarded);
  const std::string text = m.Serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE sluice_proxy_requests_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# HELP sluice_proxy_requests_total "));
  EXPECT_THAT(text, HasSubstr("\nsluice_proxy_requests_total{outcome="
                              "\"forwarded\",route=\"r\"} 3\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "\nsluice_proxy_requests_total{outcome=\"tunnel\",route=\"r\"} 0\n"));
  EXPECT_THAT(text,
              HasSubstr("\nsluice_proxy_build_info{version=\"1.2.3\"} 1\n"));
  EXPECT_THAT(
      text, HasSubstr("# TYPE sluice_proxy_limiter_wait_seconds histogram\n"));
  EXPECT_THAT(text,
              HasSubstr("# TYPE sluice_proxy_client_connections gauge\n"));
  // Series come out sorted by labels, buckets in order.
  EXPECT_THAT(text, HasSubstr("sluice_proxy_limiter_rejected_total{limit=\"l\","
                              "reason=\"key_overflow\"} 0\n"
                              "sluice_proxy_limiter_rejected_total{limit=\"l\","
                              "reason=\"other\"} 0\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "sluice_proxy_limiter_wait_seconds_bucket{limit=\"l\",le=\"0\"} 0\n"
          "sluice_proxy_limiter_wait_seconds_bucket{limit=\"l\",le=\"0.001\"} "
          "0\n"));
  // Label values are escaped by the serializer.
  m.OnRequest("we\"ird\\route", RequestOutcome::kTunnel);
  EXPECT_THAT(
      m.Serialize(),
      HasSubstr("{outcome=\"tunnel\",route=\"we\\\"ird\\\\route\"} 1\n"));
}

TEST(ProxyMetricsTest, LimiterSeries) {
  ProxyMetrics m;
  m.RegisterLimit("openai");
  EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_limiter_admitted_total",
                         {{"limit", "openai"}}),
            0);
  EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_limiter_rejected_total",
                         {{"limit", "openai"}, {"reason", "queue_full"}}),
            0);

  m.OnQueueDepth("openai", 7);
  EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_limiter_queue_depth",
                       {{"limit", "openai"}}),
            7);
  m.OnQueueDepth("openai", 2);
  EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_limiter_queue_depth",
                       {{"limit", "openai"}}),
            2);

  m.OnAdmitted("openai", Duration::zero());
  m.OnAdmitted("openai", std::chrono::milliseconds(3));
  m.OnAdmitted("openai", std::chrono::seconds(20));
  m.ObserveWait("openai", std::chrono::seconds(60));  // beyond the last bucket
  EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_limiter_admitted_total",
                         {{"limit", "openai"}}),
            3);
  auto wait = FindSeries(*m.registry(), "sluice_proxy_limiter_wait_seconds",
                         {{"limit", "openai"}});
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(wait->histogram.sample_count, 4u);
  EXPECT_DOUBLE_EQ(wait->histogram.sample_sum, 80.003);
  EXPECT_EQ(BucketCount(*wait, 0), 1u);
  EXPECT_EQ(BucketCount(*wait, 0.001), 1u);
  EXPECT_EQ(BucketCount(*wait, 0.005), 2u);
  EXPECT_EQ(BucketCount(*wait, 10), 2u);
  EXPECT_EQ(BucketCount(*wait, 30), 3u);
  // le=0 .. le=30 plus +Inf.
  EXPECT_EQ(wait->histogram.bucket.size(), 15u);

  m.OnRejected("openai", "queue_full");
  m.OnRejected("openai", "queue_full");
  m.OnRejected("openai", "wait_exceeded");
  m.OnRejected("openai", "key_overflow");
  m.OnRejected("openai", "too_costly");
  m.OnRejected("openai", "something new");
  const std::string rej = "sluice_proxy_limiter_rejected_total";
  EXPECT_EQ(CounterValue(*m.registry(), rej,
                         {{"limit", "openai"}, {"reason", "queue_full"}}),
            2);
  EXPECT_EQ(CounterValue(*m.registry(), rej,
                         {{"limit", "openai"}, {"reason", "wait_exceeded"}}),
            1);
  EXPECT_EQ(CounterValue(*m.registry(), rej,
                         {{"limit", "openai"}, {"reason", "key_overflow"}}),
            1);
  EXPECT_EQ(CounterValue(*m.registry(), rej,
                         {{"limit", "openai"}, {"reason", "too_costly"}}),
            1);
  EXPECT_EQ(CounterValue(*m.registry(), rej,
                         {{"limit", "openai"}, {"reason", "other"}}),
            1);
}

TEST(ProxyMetricsTest, UpstreamStatusByClassAndCode) {
  ProxyMetrics m;
  const std::string name = "sluice_proxy_upstream_responses_total";
  // Codes appear only once seen.
  EXPECT_FALSE(
      FindSeries(*m.registry(), name, {{"code_class", "2xx"}, {"code", "200"}})
          .has_value());
  m.OnUpstreamStatus(200);
  m.OnUpstreamStatus(200);
  m.OnUpstreamStatus(429);
  m.OnUpstreamStatus(503);
  m.OnUpstreamStatus(100);
  m.OnUpstreamStatus(599);
  m.OnUpstreamStatus(99);
  m.OnUpstreamStatus(600);
  m.OnUpstreamStatus(-1);
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"code_class", "2xx"}, {"code", "200"}}),
            2);
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"code_class", "4xx"}, {"code", "429"}}),
            1);
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"code_class", "5xx"}, {"code", "503"}}),
            1);
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"code_class", "1xx"}, {"code", "100"}}),
            1);
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"code_class", "5xx"}, {"code", "599"}}),
            1);
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"code_class", "other"}, {"code", "other"}}),
            3);
}

TEST(ProxyMetricsTest, ConnectTimesAndErrors) {
  ProxyMetrics m;
  m.ObserveConnect(std::chrono::milliseconds(2), DialError::kNone);
  m.ObserveConnect(std::chrono::milliseconds(30), DialError::kDns);
  m.ObserveConnect(std::chrono::milliseconds(30), DialError::kDnsTimeout);
  m.ObserveConnect(std::chrono::milliseconds(30), DialError::kConnectTimeout);
  m.ObserveConnect(std::chrono::milliseconds(1), DialError::kRefused);
  m.ObserveConnect(std::chrono::milliseconds(1), DialError::kDenied);
  m.ObserveConnect(std::chrono::milliseconds(1), DialError::kDenied);
  m.ObserveConnect(std::chrono::milliseconds(1), DialError::kConnect);
  auto h =
      FindSeries(*m.registry(), "sluice_proxy_upstream_connect_seconds", {});
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->histogram.sample_count, 1u);  // failures are not timed
  EXPECT_DOUBLE_EQ(h->histogram.sample_sum, 0.002);
  const std::string err = "sluice_proxy_upstream_connect_errors_total";
  EXPECT_EQ(CounterValue(*m.registry(), err, {{"reason", "dns"}}), 1);
  EXPECT_EQ(CounterValue(*m.registry(), err, {{"reason", "timeout"}}), 2);
  EXPECT_EQ(CounterValue(*m.registry(), err, {{"reason", "refused"}}), 1);
  EXPECT_EQ(CounterValue(*m.registry(), err, {{"reason", "denied"}}), 2);
  EXPECT_EQ(CounterValue(*m.registry(), err, {{"reason", "other"}}), 1);
}

TEST(ProxyMetricsTest, ConnectionsTunnelsPoolAndBytes) {
  ProxyMetrics m;
  m.OnConnectionOpened();
  m.OnConnectionOpened();
  m.OnConnectionOpened();
  m.OnConnectionClosed();
  m.OnConnectionRejected();
  EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_client_connections"), 2);
  EXPECT_EQ(
      CounterValue(*m.registry(), "sluice_proxy_client_connections_total"), 3);
  EXPECT_EQ(CounterValue(*m.registry(),
                         "sluice_proxy_client_connections_rejected_total"),
            1);

  m.OnTunnelOpened();
  m.OnTunnelOpened();
  m.OnTunnelClosed();
  EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_tunnels_active"), 1);

  m.SetPoolIdle(5);
  m.OnPoolReuse();
  m.OnPoolReuse();
  m.OnPoolNew();
  EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_pool_idle_connections"), 5);
  EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_pool_reused_total"), 2);
  EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_pool_new_total"), 1);

  m.OnBytes(100, 2000);
  m.OnBytes(1, 0);
  EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_bytes_total",
                         {{"direction", "client_to_upstream"}}),
            101);
  EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_bytes_total",
                         {{"direction", "upstream_to_client"}}),
            2000);
}

TEST(ProxyMetricsTest, ConfigAndBuildInfo) {
  ProxyMetrics m("0.9.0");
  EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_build_info",
                       {{"version", "0.9.0"}}),
            1);
  EXPECT_EQ(SeriesCount(*m.registry(), "sluice_proxy_config_info"), 0u);
  m.SetConfigVersion("abc123");
  EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_config_info",
                       {{"version", "abc123"}}),
            1);
  m.SetConfigVersion("def456");
  EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_config_info",
                       {{"version", "def456"}}),
            1);
  EXPECT_FALSE(FindSeries(*m.registry(), "sluice_proxy_config_info",
                          {{"version", "abc123"}})
                   .has_value());
  EXPECT_THAT(m.Serialize(), Not(HasSubstr("abc123")));
}

TEST(ProxyMetricsTest, RouteCardinalityIsBounded) {
  ProxyMetrics m;
  // "unmatched" already takes one slot.
  for (size_t i = 0; i + 1 < ProxyMetrics::kMaxNames; ++i) {
    m.RegisterRoute("route" + std::to_string(i));
  }
  m.OnRequest("one too many", RequestOutcome::kForwarded);
  m.OnRequest("and another", RequestOutcome::kForwarded);
  m.OnRequest("route0", RequestOutcome::kForwarded);
  const std::string name = "sluice_proxy_requests_total";
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"route", "_other"}, {"outcome", "forwarded"}}),
            2);
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"route", "route0"}, {"outcome", "forwarded"}}),
            1);
  EXPECT_FALSE(
      FindSeries(*m.registry(), name,
                 {{"route", "one too many"}, {"outcome", "forwarded"}}));
  EXPECT_EQ(SeriesCount(*m.registry(), name),
            (ProxyMetrics::kMaxNames + 1) * kRequestOutcomeCount);
}

TEST(ProxyMetricsTest, ConcurrentUpdatesAreAllCounted) {
  ProxyMetrics m;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Every thread also races to register the same new names.
        m.OnRequest("shared", RequestOutcome::kForwarded);
        m.OnRequest("r" + std::to_string(i % 8), RequestOutcome::kTunnel);
        m.OnAdmitted("lim", Duration::zero());
        m.OnUpstreamStatus(200 + (i % 3));
        m.OnConnectionOpened();
        m.OnConnectionClosed();
        if (t == 0 && i % 100 == 0) (void)m.Serialize();
      }
    });
  }
  for (auto& th : threads) th.join();
  const std::string name = "sluice_proxy_requests_total";
  EXPECT_EQ(CounterValue(*m.registry(), name,
                         {{"route", "shared"}, {"outcome", "forwarded"}}),
            kThreads * kPerThread);
  double tunnels = 0;
  for (int r = 0; r < 8; ++r) {
    tunnels += CounterValue(
        *m.registry(), name,
        {{"route", "r" + std::to_string(r)}, {"outcome", "tunnel"}});
  }
  EXPECT_EQ(tunnels, kThreads * kPerThread);
  EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_limiter_admitted_total",
                         {{"limit", "lim"}}),
            kThreads * kPerThread);
  double statuses = 0;
  for (int c = 200; c < 203; ++c) {
    statuses +=
        CounterValue(*m.registry(), "sluice_proxy_upstream_responses_total",
                     {{"code_class", "2xx"}, {"code", std::to_string(c)}});
  }
  EXPECT_EQ(statuses, kThreads * kPerThread);
  EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_client_connections"), 0);
}

// Two limits and three routes, one of them without a host or limit.
ProxyConfig ConfigWithRoutes() {
  ProxyConfig c;
  c.access_log.enabled = false;
  c.admin.listen.reset();
  LimitConfig openai;
  openai.name = "openai";
  openai.rate = 10;
  c.rate_limits["openai"] = openai;
  LimitConfig slow = openai;
  slow.name = "slow";
  slow.rate = 1;
  c.rate_limits["slow"] = slow;
  c.routes.push_back({.host = "api.openai.com",
                      .path_prefix = "/v1",
                      .methods = {},
                      .limit = "openai"});
  c.routes.push_back({.host = "*.example.com",
                      .path_prefix = "",
                      .methods = {"GET"},
                      .limit = "slow"});
  c.routes.push_back(
      {.host = "", .path_prefix = "/health", .methods = {}, .limit = ""});
  return c;
}

TEST(ConfigVersionTest, FingerprintsTheEffectiveConfig) {
  const ProxyConfig a = ConfigWithRoutes();
  const std::string va = ConfigVersion(a);
  EXPECT_TRUE(std::regex_match(va, std::regex("sha256:[0-9a-f]{16}"))) << va;
  EXPECT_EQ(ConfigVersion(ConfigWithRoutes()), va);  // deterministic
  // A config that round-trips through its dump keeps its version.
  auto reloaded = LoadProxyConfigFromString(DumpRedactedConfig(a));
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(ConfigVersion(*reloaded), va);

  ProxyConfig b = a;
  b.rate_limits["openai"].rate = 11;
  EXPECT_NE(ConfigVersion(b), va);
  ProxyConfig c = a;
  c.timeouts.connect = std::chrono::seconds(6);
  EXPECT_NE(ConfigVersion(c), va);
  EXPECT_NE(ConfigVersion(DefaultProxyConfig()), va);
}

TEST(RegisterConfigSeriesTest, EveryRouteAndLimitExistsAtZero) {
  const ProxyConfig config = ConfigWithRoutes();
  ProxyMetrics m;
  RegisterConfigSeries(m, config);
  const std::string req = "sluice_proxy_requests_total";
  for (const std::string route :
       {"api.openai.com/v1", "*.example.com", "*/health"}) {
    for (size_t i = 0; i < kRequestOutcomeCount; ++i) {
      const std::string outcome(OutcomeName(static_cast<RequestOutcome>(i)));
      EXPECT_EQ(CounterValue(*m.registry(), req,
                             {{"route", route}, {"outcome", outcome}}),
                0)
          << route << " " << outcome;
    }
  }
  // The three routes plus "unmatched"; nothing else.
  EXPECT_EQ(SeriesCount(*m.registry(), req), 4 * kRequestOutcomeCount);
  for (const std::string limit : {"openai", "slow"}) {
    EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_limiter_admitted_total",
                           {{"limit", limit}}),
              0);
    EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_limiter_queue_depth",
                         {{"limit", limit}}),
              0);
  }
  EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_config_info",
                       {{"version", ConfigVersion(config)}}),
            1);
  EXPECT_EQ(SeriesCount(*m.registry(), "sluice_proxy_config_info"), 1u);
}

TEST(RegisterConfigSeriesTest, LabelsMatchWhatRequestsAreCountedUnder) {
  // Requests are counted under RouteLabel of the matched route: the series
  // registered at startup is the one that moves.
  const ProxyConfig config = ConfigWithRoutes();
  ProxyMetrics m;
  RegisterConfigSeries(m, config);
  const size_t before =
      SeriesCount(*m.registry(), "sluice_proxy_requests_total");
  Router router(config.routes);
  auto match = router.Find("a.b.example.com", "/x", "GET", RouteScheme::kHttp);
  ASSERT_TRUE(match.has_value());
  m.OnRequest(RouteLabel(*match->route), RequestOutcome::kForwarded);
  EXPECT_EQ(
      CounterValue(*m.registry(), "sluice_proxy_requests_total",
                   {{"route", "*.example.com"}, {"outcome", "forwarded"}}),
      1);
  EXPECT_EQ(SeriesCount(*m.registry(), "sluice_proxy_requests_total"), before);
}

}  // namespace
}  // namespace sluice
