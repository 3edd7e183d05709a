#include "quota-server/server/status_page.h"

#include <boost/json.hpp>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/quota-server/server/sample_status.h"

namespace sluice {
namespace {

namespace json = boost::json;
using sample_status::SampleStatus;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

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
  EXPECT_EQ(root.size(), 9u) << text;
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
  EXPECT_EQ(root.at("duplicate_sidecar_ids").to_number<uint64_t>(), 6u);
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
  // status_page.html's bytes from first to last: the raw string literal it
  // is compiled into adds nothing before or after them.
  EXPECT_THAT(page, StartsWith("<!doctype html>\n<html lang=\"en\">"));
  EXPECT_THAT(page, EndsWith("</script></body></html>\n"));
  EXPECT_THAT(page, HasSubstr("fetch('/status'"));
  EXPECT_THAT(page, HasSubstr("setInterval(refresh,1000)"));
  // Names reported by sidecars are escaped before they become markup.
  EXPECT_THAT(page, HasSubstr("esc(res.name)"));
  EXPECT_THAT(page, HasSubstr("esc(sc.id)"));
  EXPECT_THAT(page, HasSubstr("esc(sc.pod)"));
  // The same object every call (served without copying the source).
  EXPECT_EQ(&page, &StatusPageHtml());
}

}  // namespace
}  // namespace sluice
