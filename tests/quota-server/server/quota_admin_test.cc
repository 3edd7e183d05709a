#include "quota-server/server/quota_admin.h"

#include <boost/json.hpp>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;

QuotaAllocator::SidecarStatus Sidecar(const std::string& id, double base) {
  QuotaAllocator::SidecarStatus s;
  s.sidecar_id = id;
  s.pod = id + "-pod";
  s.connected = base < 20;
  s.weight = base + 0.5;
  s.demand_per_second = base + 1.25;
  s.share_per_second = base + 2.5;
  s.outstanding = base + 3.75;
  s.granted_total = base + 1000;
  return s;
}

QuotaAllocator::ResourceStatus Resource(const std::string& name, double base) {
  QuotaAllocator::ResourceStatus r;
  r.name = name;
  r.rate_per_second = base + 100;
  r.burst = base + 50;
  r.level = base + 7.5;
  r.outstanding = base + 12.25;
  r.granted_per_second = base + 80;
  r.utilisation = 0.8;
  r.learning = base > 0;
  r.learning_limit = base > 0;
  r.learned_rate_per_second = base > 0 ? 42.5 : 0;
  r.stated_rate_per_second = base > 0 ? 40 : 0;
  r.effective_rate_per_second = base > 0 ? 42.5 : r.rate_per_second;
  return r;
}

QuotaAllocator::Status SampleStatus() {
  QuotaAllocator::Status s;
  s.epoch = 0xfeedfacecafeULL;
  s.config_version = 7;
  s.connected_streams = 2;
  s.ignored_reports = 3;
  s.duplicate_reports = 4;
  s.stale_reports = 5;
  QuotaAllocator::ResourceStatus a = Resource("openai", 0);
  a.sidecars.push_back(Sidecar("sc-1", 0));
  a.sidecars.push_back(Sidecar("sc-\"2\"</script>", 30));
  a.pauses.push_back(
      QuotaAllocator::PauseStatus{.key_hash = "ab12",
                                  .phase = PauseSchedule::Phase::kPaused,
                                  .pause_id = 4,
                                  .remaining = std::chrono::milliseconds(2500),
                                  .rate_fraction = 1,
                                  .origin_sidecar = "sc-1",
                                  .reason = "retry-after"});
  a.pauses_by_reason = {{"retry-after", 3}, {"status", 1}};
  s.resources.push_back(a);
  s.resources.push_back(Resource("partner-api", 1));  // no sidecars
  return s;
}

void ExpectSidecar(const json::value& v,
                   const QuotaAllocator::SidecarStatus& want) {
  const json::object& o = v.as_object();
  EXPECT_EQ(o.size(), 8u) << json::serialize(o);
  EXPECT_EQ(o.at("id").as_string(), want.sidecar_id);
  EXPECT_EQ(o.at("pod").as_string(), want.pod);
  EXPECT_EQ(o.at("connected").as_bool(), want.connected);
  EXPECT_EQ(o.at("weight").to_number<double>(), want.weight);
  EXPECT_EQ(o.at("demand_per_second").to_number<double>(),
            want.demand_per_second);
  EXPECT_EQ(o.at("share_per_second").to_number<double>(),
            want.share_per_second);
  EXPECT_EQ(o.at("outstanding").to_number<double>(), want.outstanding);
  EXPECT_EQ(o.at("granted_total").to_number<double>(), want.granted_total);
}

void ExpectResource(const json::value& v,
                    const QuotaAllocator::ResourceStatus& want) {
  const json::object& o = v.as_object();
  EXPECT_EQ(o.size(), 15u) << json::serialize(o);
  EXPECT_EQ(o.at("learn_limit").as_bool(), want.learning_limit);
  EXPECT_EQ(o.at("stated_rate_per_second").to_number<double>(),
            want.stated_rate_per_second);
  EXPECT_EQ(o.at("learned_rate_per_second").to_number<double>(),
            want.learned_rate_per_second);
  EXPECT_EQ(o.at("effective_rate_per_second").to_number<double>(),
            want.effective_rate_per_second);
  EXPECT_EQ(o.at("name").as_string(), want.name);
  EXPECT_EQ(o.at("rate_per_second").to_number<double>(), want.rate_per_second);
  EXPECT_EQ(o.at("burst").to_number<double>(), want.burst);
  EXPECT_EQ(o.at("level").to_number<double>(), want.level);
  EXPECT_EQ(o.at("outstanding").to_number<double>(), want.outstanding);
  EXPECT_EQ(o.at("granted_per_second").to_number<double>(),
            want.granted_per_second);
  EXPECT_EQ(o.at("utilisation").to_number<double>(), want.utilisation);
  EXPECT_EQ(o.at("learning").as_bool(), want.learning);
  const json::array& sidecars = o.at("sidecars").as_array();
  ASSERT_EQ(sidecars.size(), want.sidecars.size());
  for (size_t i = 0; i < sidecars.size(); ++i) {
    ExpectSidecar(sidecars[i], want.sidecars[i]);
  }
  const json::array& pauses = o.at("pauses").as_array();
  ASSERT_EQ(pauses.size(), want.pauses.size());
  for (size_t i = 0; i < pauses.size(); ++i) {
    const json::object& p = pauses[i].as_object();
    const auto& w = want.pauses[i];
    EXPECT_EQ(p.size(), 7u) << json::serialize(p);
    EXPECT_EQ(p.at("key_hash").as_string(), w.key_hash);
    EXPECT_EQ(p.at("phase").as_string(), PausePhaseName(w.phase));
    EXPECT_EQ(p.at("pause_id").to_number<uint64_t>(), w.pause_id);
    using Millis = std::chrono::duration<double, std::milli>;
    EXPECT_EQ(p.at("remaining_ms").to_number<double>(),
              Millis(w.remaining).count());
    EXPECT_EQ(p.at("rate_fraction").to_number<double>(), w.rate_fraction);
    EXPECT_EQ(p.at("origin_sidecar").as_string(), w.origin_sidecar);
    EXPECT_EQ(p.at("reason").as_string(), w.reason);
  }
  const json::object& totals = o.at("pauses_total").as_object();
  ASSERT_EQ(totals.size(), want.pauses_by_reason.size());
  for (const auto& [reason, n] : want.pauses_by_reason) {
    EXPECT_EQ(totals.at(reason).to_number<uint64_t>(), n) << reason;
  }
}

TEST(StatusJsonTest, ParsesBackWithEveryField) {
  QuotaAllocator::Status status = SampleStatus();
  status.pause_propagation.Observe(0.0015);
  status.pause_propagation.Observe(0.0002);
  const std::string text = StatusJson(status);
  json::error_code ec;
  const json::value v = json::parse(text, ec);
  ASSERT_FALSE(ec) << ec.message() << ": " << text;
  const json::object& root = v.as_object();
  EXPECT_EQ(root.size(), 8u) << text;
  const json::array& recent = root.at("pause_propagation_ms_recent").as_array();
  ASSERT_EQ(recent.size(), 2u);
  EXPECT_DOUBLE_EQ(recent[0].to_number<double>(), 1.5);
  EXPECT_DOUBLE_EQ(recent[1].to_number<double>(), 0.2);
  EXPECT_EQ(root.at("epoch").to_number<uint64_t>(), status.epoch);
  EXPECT_EQ(root.at("config_version").to_number<uint64_t>(), 7u);
  EXPECT_EQ(root.at("connected_streams").to_number<uint64_t>(), 2u);
  EXPECT_EQ(root.at("ignored_reports").to_number<uint64_t>(), 3u);
  EXPECT_EQ(root.at("duplicate_reports").to_number<uint64_t>(), 4u);
  EXPECT_EQ(root.at("stale_reports").to_number<uint64_t>(), 5u);
  const json::array& resources = root.at("resources").as_array();
  ASSERT_EQ(resources.size(), 2u);
  ExpectResource(resources[0], status.resources[0]);
  ExpectResource(resources[1], status.resources[1]);
  // Names are data, not markup: the quote is escaped for JSON.
  EXPECT_THAT(text, HasSubstr(R"(sc-\"2\")"));
}

TEST(StatusJsonTest, EmptyStatusIsValidJson) {
  const json::value v = json::parse(StatusJson(QuotaAllocator::Status{}));
  EXPECT_TRUE(v.as_object().at("resources").as_array().empty());
  EXPECT_EQ(v.as_object().at("connected_streams").to_number<uint64_t>(), 0u);
}

TEST(StatusPageHtmlTest, FetchesStatusAndRefreshesEverySecond) {
  const std::string& page = StatusPageHtml();
  EXPECT_THAT(page, HasSubstr("<!doctype html>"));
  EXPECT_THAT(page, HasSubstr("fetch('/status'"));
  EXPECT_THAT(page, HasSubstr("setInterval(refresh,1000)"));
  // Names reported by sidecars are escaped before they become markup.
  EXPECT_THAT(page, HasSubstr("esc(res.name)"));
  EXPECT_THAT(page, HasSubstr("esc(sc.id)"));
  EXPECT_THAT(page, HasSubstr("esc(sc.pod)"));
  // The same object every call (served without copying the source).
  EXPECT_EQ(&page, &StatusPageHtml());
}

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
