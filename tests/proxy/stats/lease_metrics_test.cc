#include "proxy/stats/lease_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "proxy/stats/pause_metrics.h"
#include "proxy/stats/proxy_metrics.h"
#include "tests/testing/registry_values.h"

namespace sluice {
namespace {

using test::CounterValue;
using test::GaugeValue;
using test::Labels;
using test::SeriesCount;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(LeaseMetricsTest, LeaseSeriesAppearWithTheFirstLeasedLimit) {
  prometheus::Registry registry;
  LeaseMetrics m(registry);
  // Standalone: no lease series, and updates are ignored.
  m.SetLeaseStream({true, 1, 0, 0});
  m.SetLeaseState("api", LeaseMode::kLeased, 3);
  EXPECT_EQ(SeriesCount(registry, "sluice_proxy_lease_mode"), 0u);
  EXPECT_EQ(SeriesCount(registry, "sluice_proxy_lease_stream_connected"), 0u);

  m.RegisterLeasedLimit("api");
  m.RegisterLeasedLimit("api");  // idempotent
  EXPECT_EQ(SeriesCount(registry, "sluice_proxy_lease_mode"), 4u);
  for (const char* mode :
       {"leased", "fallback_share", "fail_closed", "fail_open"}) {
    EXPECT_EQ(GaugeValue(registry, "sluice_proxy_lease_mode",
                         {{"limit", "api"}, {"mode", mode}}),
              0)
        << mode;
  }
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_lease_held_tokens",
                       {{"limit", "api"}}),
            0);
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_lease_stream_connected"), 0);
  EXPECT_EQ(CounterValue(registry, "sluice_proxy_lease_stream_connects_total"),
            0);
}

TEST(LeaseMetricsTest, LeaseStateMarksExactlyOneMode) {
  prometheus::Registry registry;
  LeaseMetrics m(registry);
  m.RegisterLeasedLimit("api");
  m.SetLeaseState("api", LeaseMode::kFailClosed, 2.5);
  const Labels closed = {{"limit", "api"}, {"mode", "fail_closed"}};
  const Labels leased = {{"limit", "api"}, {"mode", "leased"}};
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_lease_mode", closed), 1);
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_lease_mode", leased), 0);
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_lease_held_tokens",
                       {{"limit", "api"}}),
            2.5);
  m.SetLeaseState("api", LeaseMode::kLeased, 0);
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_lease_mode", closed), 0);
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_lease_mode", leased), 1);
  // A limit that was never registered gets no series.
  m.SetLeaseState("other", LeaseMode::kLeased, 1);
  EXPECT_EQ(SeriesCount(registry, "sluice_proxy_lease_mode"), 4u);
}

TEST(LeaseMetricsTest, LeaseStreamCountersFollowTotalsAndNeverDrop) {
  prometheus::Registry registry;
  LeaseMetrics m(registry);
  m.RegisterLeasedLimit("api");
  m.SetLeaseStream({true, 2, 1, 5});
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_lease_stream_connected"), 1);
  EXPECT_EQ(CounterValue(registry, "sluice_proxy_lease_stream_connects_total"),
            2);
  EXPECT_EQ(
      CounterValue(registry, "sluice_proxy_lease_stream_disconnects_total"), 1);
  EXPECT_EQ(
      CounterValue(registry, "sluice_proxy_lease_stream_failed_attempts_total"),
      5);
  m.SetLeaseStream({false, 3, 1, 4});  // a lower total is not a decrease
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_lease_stream_connected"), 0);
  EXPECT_EQ(CounterValue(registry, "sluice_proxy_lease_stream_connects_total"),
            3);
  EXPECT_EQ(
      CounterValue(registry, "sluice_proxy_lease_stream_failed_attempts_total"),
      5);
}

TEST(LeaseMetricsTest, FastPathAndLeaseDatagramCounters) {
  prometheus::Registry registry;
  LeaseMetrics m(registry);
  m.RegisterLeasedLimit("api");
  LeaseMetrics::LeaseStreamTotals t;
  t.fast_path_up = true;
  t.pauses_by_datagram = 2;
  t.leasing_by_datagram = true;
  t.demand_datagrams = 30;
  t.grant_datagrams = 25;
  t.stale_grants = 1;
  t.aged_grants = 3;
  m.SetLeaseStream(t);
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_fast_path_up"), 1);
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_fast_path_leasing"), 1);
  EXPECT_EQ(CounterValue(registry, "sluice_proxy_lease_datagrams_total",
                         {{"kind", "demand"}}),
            30);
  EXPECT_EQ(CounterValue(registry, "sluice_proxy_lease_datagrams_total",
                         {{"kind", "grant"}}),
            25);
  EXPECT_EQ(CounterValue(registry, "sluice_proxy_lease_stale_grants_total"), 1);
  EXPECT_EQ(CounterValue(registry, "sluice_proxy_lease_aged_grants_total"), 3);
  EXPECT_EQ(CounterValue(registry, "sluice_proxy_pause_delivered_total",
                         {{"path", "datagram"}}),
            2);
  t.leasing_by_datagram = false;  // went back to the stream
  m.SetLeaseStream(t);
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_fast_path_leasing"), 0);
}

// Operators' dashboards and alerts name these series: every family, its
// type and the label sets of its series after the first leased limit, as a
// literal list.
TEST(LeaseMetricsTest, SeriesNamesTypesAndLabelsAreStable) {
  prometheus::Registry registry;
  LeaseMetrics m(registry);
  m.RegisterLeasedLimit("api");
  std::map<std::string, std::pair<prometheus::MetricType, std::set<Labels>>>
      got;
  for (const prometheus::MetricFamily& f : registry.Collect()) {
    auto& [type, series] = got[f.name];
    type = f.type;
    for (const prometheus::ClientMetric& c : f.metric) {
      Labels labels;
      for (const prometheus::ClientMetric::Label& l : c.label) {
        labels[l.name] = l.value;
      }
      series.insert(labels);
    }
  }
  using prometheus::MetricType;
  const std::map<std::string, std::pair<MetricType, std::set<Labels>>> want = {
      {"sluice_proxy_lease_mode",
       {MetricType::Gauge,
        {{{"limit", "api"}, {"mode", "leased"}},
         {{"limit", "api"}, {"mode", "fallback_share"}},
         {{"limit", "api"}, {"mode", "fail_closed"}},
         {{"limit", "api"}, {"mode", "fail_open"}}}}},
      {"sluice_proxy_lease_held_tokens",
       {MetricType::Gauge, {{{"limit", "api"}}}}},
      {"sluice_proxy_lease_stream_connected", {MetricType::Gauge, {{}}}},
      {"sluice_proxy_lease_stream_connects_total", {MetricType::Counter, {{}}}},
      {"sluice_proxy_lease_stream_disconnects_total",
       {MetricType::Counter, {{}}}},
      {"sluice_proxy_lease_stream_failed_attempts_total",
       {MetricType::Counter, {{}}}},
      {"sluice_proxy_fast_path_up", {MetricType::Gauge, {{}}}},
      {"sluice_proxy_fast_path_datagrams_total",
       {MetricType::Counter,
        {{{"direction", "in"}, {"result", "ok"}},
         {{"direction", "in"}, {"result", "rejected"}},
         {{"direction", "out"}, {"result", "sent"}},
         {{"direction", "out"}, {"result", "failed"}}}}},
      {"sluice_proxy_pause_delivered_total",
       {MetricType::Counter, {{{"path", "datagram"}}, {{"path", "stream"}}}}},
      {"sluice_proxy_fast_path_leasing", {MetricType::Gauge, {{}}}},
      {"sluice_proxy_lease_datagrams_total",
       {MetricType::Counter, {{{"kind", "demand"}}, {{"kind", "grant"}}}}},
      {"sluice_proxy_lease_stale_grants_total", {MetricType::Counter, {{}}}},
      {"sluice_proxy_lease_aged_grants_total", {MetricType::Counter, {{}}}},
  };
  EXPECT_EQ(got, want);
}

// A per-key limit shows how many of its keys are in each mode, and the
// tokens held over all of them.
TEST(LeaseMetricsTest, LeaseKeysCountKeysPerMode) {
  prometheus::Registry registry;
  LeaseMetrics m(registry);
  m.RegisterLeasedLimit("per-key");
  // Indexed by LeaseMode: leased, fallback_share, fail_closed, fail_open.
  m.SetLeaseKeys("per-key", {3, 1, 0, 2}, 7.5);
  const auto mode = [&](const char* name) {
    return GaugeValue(registry, "sluice_proxy_lease_mode",
                      {{"limit", "per-key"}, {"mode", name}});
  };
  EXPECT_EQ(mode("leased"), 3);
  EXPECT_EQ(mode("fallback_share"), 1);
  EXPECT_EQ(mode("fail_closed"), 0);
  EXPECT_EQ(mode("fail_open"), 2);
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_lease_held_tokens",
                       {{"limit", "per-key"}}),
            7.5);
  m.SetLeaseKeys("per-key", {0, 0, 6, 0}, 0);
  EXPECT_EQ(mode("leased"), 0);
  EXPECT_EQ(mode("fail_closed"), 6);
  EXPECT_EQ(mode("fail_open"), 0);
  // Unregistered limits get no series.
  m.SetLeaseKeys("other", {1, 0, 0, 0}, 1);
  EXPECT_EQ(SeriesCount(registry, "sluice_proxy_lease_mode"), 4u);
}

// Every pause and stream counter follows its own total.
TEST(LeaseMetricsTest, EachTotalMovesItsOwnCounter) {
  prometheus::Registry registry;
  LeaseMetrics m(registry);
  m.RegisterLeasedLimit("api");
  LeaseMetrics::LeaseStreamTotals t;
  t.datagrams_in_ok = 11;
  t.datagrams_in_rejected = 12;
  t.datagrams_out_sent = 13;
  t.datagrams_out_failed = 14;
  t.pauses_by_datagram = 15;
  t.pauses_by_stream = 16;
  m.SetLeaseStream(t);
  const auto datagrams = [&](const char* direction, const char* result) {
    return CounterValue(registry, "sluice_proxy_fast_path_datagrams_total",
                        {{"direction", direction}, {"result", result}});
  };
  EXPECT_EQ(datagrams("in", "ok"), 11);
  EXPECT_EQ(datagrams("in", "rejected"), 12);
  EXPECT_EQ(datagrams("out", "sent"), 13);
  EXPECT_EQ(datagrams("out", "failed"), 14);
  EXPECT_EQ(CounterValue(registry, "sluice_proxy_pause_delivered_total",
                         {{"path", "datagram"}}),
            15);
  EXPECT_EQ(CounterValue(registry, "sluice_proxy_pause_delivered_total",
                         {{"path", "stream"}}),
            16);
  EXPECT_EQ(GaugeValue(registry, "sluice_proxy_fast_path_up"), 0);
}

// Registered in ProxyMetrics' registry beside PauseMetrics, the lease
// series are part of ProxyMetrics' exposition, with their help text.
TEST(LeaseMetricsTest, SharesTheProxysRegistry) {
  ProxyMetrics proxy;
  const FakeClock clock;
  PauseMetrics pause(*proxy.registry(), &clock);
  LeaseMetrics m(*proxy.registry());
  EXPECT_THAT(proxy.Serialize(), Not(HasSubstr("sluice_proxy_lease_")));
  m.RegisterLeasedLimit("api");
  m.SetLeaseState("api", LeaseMode::kLeased, 4);
  const std::string text = proxy.Serialize();
  EXPECT_THAT(text, HasSubstr("# HELP sluice_proxy_lease_stream_connected 1 "
                              "while the quota server stream is connected.\n"));
  EXPECT_THAT(text, HasSubstr("sluice_proxy_lease_mode{limit=\"api\",mode="
                              "\"leased\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("sluice_proxy_lease_held_tokens{limit=\"api\"} "
                              "4\n"));
}

}  // namespace
}  // namespace sluice
