#include "proxy/app/proxy_app.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "common/time/clock.h"
#include "proxy/config/config.h"
#include "proxy/config/config_loader.h"
#include "proxy/lease/lease_pool.h"
#include "proxy/limit/rate_limiter.h"
#include "proxy/server/proxy_context.h"
#include "proxy/stats/proxy_metrics.h"
#include "tests/testing/registry_values.h"

namespace sluice {
namespace {

using test::CounterValue;
using test::GaugeValue;
using test::SeriesCount;
using ::testing::HasSubstr;
using ::testing::Not;

// Two limits, one leased from resource "shared-api". The quota server
// address is never dialled: the lease client starts only in Run().
ProxyConfig LeasedConfig() {
  ProxyConfig c;
  c.listen = {{"127.0.0.1", 0}};
  c.admin.listen.reset();
  c.access_log.enabled = false;
  c.quota.servers = {"127.0.0.1:1"};
  LimitConfig api;
  api.name = "api";
  api.rate = 10;
  api.burst = 5;
  api.resource = "shared-api";
  LimitConfig local;
  local.name = "local";
  local.rate = 10;
  local.burst = 5;
  c.rate_limits = {{"api", api}, {"local", local}};
  c.routes = {RouteConfig{"a.example", "", {}, "api"},
              RouteConfig{"b.example", "", {}, "local"}};
  return c;
}

// Admits back-to-back requests of cost 1 at `now` until one is refused.
int AdmitAll(RateLimiter& limiter, TimePoint now) {
  int n = 0;
  while (n < 1000 && limiter.Acquire(1, Duration::zero(), now).outcome ==
                         AcquireOutcome::kAdmitted) {
    ++n;
  }
  return n;
}

TEST(ProxyAppLeaseTest, LeasedLimitSpendsFromItsPool) {
  FakeClock clock;
  auto app = ProxyApp::Create(LeasedConfig(), &clock);
  ASSERT_TRUE(app.ok()) << app.status();
  const LimitRuntime* api = (*app)->FindLimit("api");
  ASSERT_NE(api, nullptr);
  ASSERT_NE(api->lease, nullptr);
  ASSERT_NE(api->shared, nullptr);

  // Not connected yet: the pool applies its policy (a local share), so the
  // limiter admits something, then runs dry.
  const TimePoint now = clock.Now();
  EXPECT_EQ(api->lease->Mode(now), LeaseMode::kFallbackShare);
  EXPECT_EQ(api->QuotaMode(now, api->shared.get()), "fallback_share");
  EXPECT_GE(AdmitAll(*api->shared, now), 1);
  // A grant goes to the limiter: exactly its tokens are admitted.
  api->lease->AddGrant(3, now + std::chrono::hours(1), 10, now);
  EXPECT_EQ(api->lease->Mode(now), LeaseMode::kLeased);
  EXPECT_EQ(AdmitAll(*api->shared, now), 3);
  EXPECT_EQ(api->lease->Held(now), 0);
}

TEST(ProxyAppLeaseTest, LocalLimitIsNotLeased) {
  FakeClock clock;
  auto app = ProxyApp::Create(LeasedConfig(), &clock);
  ASSERT_TRUE(app.ok()) << app.status();
  const LimitRuntime* local = (*app)->FindLimit("local");
  ASSERT_NE(local, nullptr);
  EXPECT_EQ(local->lease, nullptr);
  EXPECT_EQ(local->QuotaMode(clock.Now(), local->shared.get()), "");
  // Its own bucket: the full burst at once.
  EXPECT_EQ(AdmitAll(*local->shared, clock.Now()), 5);
  EXPECT_EQ((*app)->FindLimit("nope"), nullptr);
}

TEST(ProxyAppLeaseTest, ReadyDetailAndMetricsShowTheLease) {
  FakeClock clock;
  auto app = ProxyApp::Create(LeasedConfig(), &clock);
  ASSERT_TRUE(app.ok()) << app.status();
  EXPECT_EQ((*app)->ReadyDetail(),
            "quota stream: disconnected\n"
            "lease api resource=shared-api mode=fallback_share");
  std::string text = (*app)->MetricsText();
  EXPECT_THAT(text, HasSubstr("sluice_proxy_lease_mode{limit=\"api\",mode="
                              "\"fallback_share\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("sluice_proxy_lease_mode{limit=\"api\",mode="
                              "\"leased\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("sluice_proxy_lease_stream_connected 0\n"));
  EXPECT_THAT(text, Not(HasSubstr("limit=\"local\",mode=")));

  // Scrapes sample the pool at the app's clock's time.
  const LimitRuntime* api = (*app)->FindLimit("api");
  const TimePoint now = clock.Now();
  api->lease->AddGrant(4, now + std::chrono::seconds(1), 10, now);
  text = (*app)->MetricsText();
  EXPECT_THAT(text, HasSubstr("sluice_proxy_lease_mode{limit=\"api\",mode="
                              "\"leased\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("sluice_proxy_lease_held_tokens{limit=\"api\"} 4\n"));
  EXPECT_THAT((*app)->ReadyDetail(), HasSubstr("mode=leased"));
  // The grant's tokens die a second later: back to the local share.
  clock.Advance(std::chrono::seconds(1));
  text = (*app)->MetricsText();
  EXPECT_THAT(text, HasSubstr("sluice_proxy_lease_mode{limit=\"api\",mode="
                              "\"fallback_share\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("sluice_proxy_lease_held_tokens{limit=\"api\"} 0\n"));
  EXPECT_THAT((*app)->ReadyDetail(), HasSubstr("mode=fallback_share"));
}

TEST(ProxyAppLeaseTest, StandaloneHasNoLeaseAnywhere) {
  ProxyConfig c = LeasedConfig();
  c.quota.servers.clear();
  c.rate_limits["api"].resource.clear();
  FakeClock clock;
  auto app = ProxyApp::Create(c, &clock);
  ASSERT_TRUE(app.ok()) << app.status();
  EXPECT_EQ((*app)->FindLimit("api")->lease, nullptr);
  EXPECT_EQ((*app)->ReadyDetail(), "");
  EXPECT_THAT((*app)->MetricsText(), Not(HasSubstr("sluice_proxy_lease_")));
}

// Three routes over two limits, nothing leased.
ProxyConfig RoutedConfig() {
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

TEST(ProxyAppMetricsTest, StartupRegistersRoutesAndVersions) {
  const ProxyConfig config = RoutedConfig();
  FakeClock clock;
  auto app = ProxyApp::Create(config, &clock);
  ASSERT_TRUE(app.ok()) << app.status();
  const ProxyMetrics& m = (*app)->metrics();

  // build_info carries the binary's version, not the "dev" placeholder.
  const std::string version(ProxyVersion());
  EXPECT_TRUE(std::regex_match(version, std::regex("[0-9]+\\.[0-9]+\\.[0-9]+")))
      << version;
  EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_build_info",
                       {{"version", version}}),
            1);
  EXPECT_EQ(SeriesCount(*m.registry(), "sluice_proxy_build_info"), 1u);

  EXPECT_EQ(GaugeValue(*m.registry(), "sluice_proxy_config_info",
                       {{"version", ConfigVersion(config)}}),
            1);
  EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_requests_total",
                         {{"route", "api.openai.com/v1"},
                          {"outcome", "limited_queue_full"}}),
            0);
  EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_requests_total",
                         {{"route", "*/health"}, {"outcome", "forwarded"}}),
            0);
  EXPECT_EQ(CounterValue(*m.registry(), "sluice_proxy_limiter_rejected_total",
                         {{"limit", "slow"}, {"reason", "queue_full"}}),
            0);
  EXPECT_THAT(m.Serialize(),
              HasSubstr("sluice_proxy_requests_total{outcome=\"forwarded\","
                        "route=\"api.openai.com/v1\"} 0\n"));
}

}  // namespace
}  // namespace sluice
