#include "quota-server/server/quota_metrics.h"

#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/quota-server/server/sample_status.h"

namespace sluice {
namespace {

using sample_status::SampleStatus;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;

// The value of the sample `series` (name plus labels, exactly as exposed) in
// the Prometheus text `exposition`; nullopt if there is no such line.
std::optional<double> Sample(const std::string& exposition,
                             const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) != 0) continue;
    return std::strtod(line.c_str() + series.size() + 1, nullptr);
  }
  return std::nullopt;
}

TEST(QuotaMetricsTest, PerResourceGauges) {
  QuotaMetrics m;
  const QuotaAllocator::Status status = SampleStatus();
  m.Update(status, 0, 0, 0, 0);
  const std::string text = m.Serialize();
  const std::string a = "{resource=\"openai\"}";
  const std::string b = "{resource=\"partner-api\"}";
  EXPECT_THAT(Sample(text, "sluice_quota_limit_rate_per_second" + a),
              Optional(100.0));
  EXPECT_THAT(Sample(text, "sluice_quota_limit_rate_per_second" + b),
              Optional(101.0));
  EXPECT_THAT(Sample(text, "sluice_quota_limit_burst_tokens" + a),
              Optional(50.0));
  EXPECT_THAT(Sample(text, "sluice_quota_level_tokens" + a), Optional(7.5));
  EXPECT_THAT(Sample(text, "sluice_quota_outstanding_tokens" + a),
              Optional(12.25));
  EXPECT_THAT(Sample(text, "sluice_quota_granted_tokens_per_second" + a),
              Optional(80.0));
  EXPECT_THAT(Sample(text, "sluice_quota_utilisation_ratio" + a),
              Optional(0.8));
  EXPECT_THAT(Sample(text, "sluice_quota_learning" + a), Optional(0.0));
  EXPECT_THAT(Sample(text, "sluice_quota_learning" + b), Optional(1.0));
  EXPECT_THAT(Sample(text, "sluice_quota_sidecars" + a), Optional(2.0));
  EXPECT_THAT(Sample(text, "sluice_quota_sidecars" + b), Optional(0.0));
  EXPECT_THAT(Sample(text, "sluice_quota_streams_active"), Optional(2.0));
  EXPECT_THAT(Sample(text, "sluice_quota_learned_rate_per_second" + b),
              Optional(42.5));
  EXPECT_THAT(Sample(text, "sluice_quota_effective_rate_per_second" + a),
              Optional(100.0));
}

TEST(QuotaMetricsTest, PauseCountersGaugesAndPropagationHistogram) {
  QuotaMetrics m;
  QuotaAllocator::Status status = SampleStatus();
  status.pause_propagation.Observe(0.0015);
  status.pause_propagation.Observe(0.003);
  m.Update(status, 0, 0, 0, 0);
  // A second update with one more observation adds only that one.
  status.pause_propagation.Observe(0.0004);
  status.resources[0].pauses_by_reason[0].second = 5;
  m.Update(status, 0, 0, 0, 0);
  const std::string text = m.Serialize();
  EXPECT_THAT(Sample(text,
                     "sluice_quota_pauses_total{reason=\"retry-after\","
                     "resource=\"openai\"}"),
              Optional(5.0));
  EXPECT_THAT(Sample(text,
                     "sluice_quota_pauses_total{reason=\"status\","
                     "resource=\"openai\"}"),
              Optional(1.0));
  EXPECT_THAT(Sample(text,
                     "sluice_quota_paused_buckets{phase=\"paused\","
                     "resource=\"openai\"}"),
              Optional(1.0));
  EXPECT_THAT(Sample(text,
                     "sluice_quota_paused_buckets{phase=\"ramping\","
                     "resource=\"openai\"}"),
              Optional(0.0));
  EXPECT_THAT(Sample(text, "sluice_quota_pause_propagation_seconds_count"),
              Optional(3.0));
  EXPECT_THAT(
      Sample(text,
             "sluice_quota_pause_propagation_seconds_bucket{le=\"0.0005\"}"),
      Optional(1.0));
  EXPECT_THAT(
      Sample(text,
             "sluice_quota_pause_propagation_seconds_bucket{le=\"0.002\"}"),
      Optional(2.0));
  EXPECT_THAT(
      Sample(text,
             "sluice_quota_pause_propagation_seconds_bucket{le=\"+Inf\"}"),
      Optional(3.0));
}

TEST(QuotaMetricsTest, SeriesOfVanishedResourcesAreRemoved) {
  QuotaMetrics m;
  QuotaAllocator::Status status = SampleStatus();
  m.Update(status, 0, 0, 0, 0);
  ASSERT_THAT(m.Serialize(), HasSubstr("partner-api"));
  status.resources.pop_back();
  status.resources[0].rate_per_second = 5;
  m.Update(status, 0, 0, 0, 0);
  const std::string text = m.Serialize();
  EXPECT_THAT(text, Not(HasSubstr("partner-api")));
  EXPECT_THAT(
      Sample(text, "sluice_quota_limit_rate_per_second{resource=\"openai\"}"),
      Optional(5.0));
  // A resource that comes back gets its series again.
  m.Update(SampleStatus(), 0, 0, 0, 0);
  EXPECT_THAT(
      Sample(m.Serialize(),
             "sluice_quota_limit_burst_tokens{resource=\"partner-api\"}"),
      Optional(51.0));
}

TEST(QuotaMetricsTest, CountersCatchUpToTotals) {
  QuotaMetrics m;
  const QuotaAllocator::Status status = SampleStatus();
  m.Update(status, 3, 40, 50, 1);
  std::string text = m.Serialize();
  EXPECT_THAT(Sample(text, "sluice_quota_streams_opened_total"), Optional(3.0));
  EXPECT_THAT(Sample(text, "sluice_quota_streams_rejected_total"),
              Optional(1.0));
  EXPECT_THAT(Sample(text, "sluice_quota_messages_total{direction=\"in\"}"),
              Optional(40.0));
  EXPECT_THAT(Sample(text, "sluice_quota_messages_total{direction=\"out\"}"),
              Optional(50.0));
  EXPECT_THAT(Sample(text, "sluice_quota_duplicate_sidecar_ids_total"),
              Optional(static_cast<double>(status.duplicate_ids)));
  m.Update(status, 5, 100, 50, 1);
  text = m.Serialize();
  EXPECT_THAT(Sample(text, "sluice_quota_streams_opened_total"), Optional(5.0));
  EXPECT_THAT(Sample(text, "sluice_quota_messages_total{direction=\"in\"}"),
              Optional(100.0));
  EXPECT_THAT(Sample(text, "sluice_quota_messages_total{direction=\"out\"}"),
              Optional(50.0));
  // Counters never go down, even if a total were to.
  m.Update(status, 2, 100, 50, 0);
  text = m.Serialize();
  EXPECT_THAT(Sample(text, "sluice_quota_streams_opened_total"), Optional(5.0));
  EXPECT_THAT(Sample(text, "sluice_quota_streams_rejected_total"),
              Optional(1.0));
}

TEST(QuotaMetricsTest, FastPathCountersIncludingLeases) {
  QuotaMetrics m;
  FastPathServer::Stats f;
  f.in_ok = 9;
  f.in_bad_mac = 2;
  f.out_sent = 11;
  f.registered = 3;
  f.demand_in = 6;
  f.grants_out = 7;
  m.UpdateFastPath(f, /*duplicate_reports=*/4, /*stale_reports=*/1);
  const std::string text = m.Serialize();
  EXPECT_THAT(Sample(text,
                     "sluice_quota_fast_path_datagrams_total{"
                     "direction=\"in\",result=\"bad_mac\"}"),
              Optional(2.0));
  EXPECT_THAT(Sample(text, "sluice_quota_fast_path_sidecars"), Optional(3.0));
  EXPECT_THAT(
      Sample(text, "sluice_quota_lease_datagrams_total{kind=\"demand\"}"),
      Optional(6.0));
  EXPECT_THAT(
      Sample(text, "sluice_quota_lease_datagrams_total{kind=\"grant\"}"),
      Optional(7.0));
  EXPECT_THAT(Sample(text, "sluice_quota_duplicate_throttle_reports_total"),
              Optional(4.0));
  EXPECT_THAT(Sample(text, "sluice_quota_stale_reports_total"), Optional(1.0));
}

TEST(QuotaMetricsTest, ReloadsAndLimitChangesAreCounted) {
  QuotaMetrics m;
  m.CountReload(true);
  m.CountReload(false);
  m.CountReload(false);
  m.CountLimitChange();
  const std::string text = m.Serialize();
  EXPECT_THAT(Sample(text, "sluice_quota_reloads_total{result=\"ok\"}"),
              Optional(1.0));
  EXPECT_THAT(Sample(text, "sluice_quota_reloads_total{result=\"error\"}"),
              Optional(2.0));
  EXPECT_THAT(Sample(text, "sluice_quota_limit_changes_total"), Optional(1.0));
  // Every family has help text (the exposition is for people too).
  EXPECT_THAT(text, HasSubstr("# HELP sluice_quota_reloads_total "));
  EXPECT_THAT(text, HasSubstr("# TYPE sluice_quota_reloads_total counter"));
}

}  // namespace
}  // namespace sluice
