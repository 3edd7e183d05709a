#include "common/headers/rate_limit_headers.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace sluice {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Headers = std::vector<std::pair<std::string, std::string>>;

// 2024-05-01T12:00:00Z, a Wednesday; epoch 1714564800.
const absl::Time kNow = absl::FromCivil(absl::CivilSecond(2024, 5, 1, 12, 0, 0),
                                        absl::UTCTimeZone());
constexpr char kDateNow[] = "Wed, 01 May 2024 12:00:00 GMT";

RateLimitHint Parse(const Headers& headers, absl::Time now = kNow,
                    ResetStyle style = ResetStyle::kAuto) {
  std::vector<HeaderRef> refs;
  for (const auto& [name, value] : headers) refs.push_back({name, value});
  return ParseRateLimitHeaders(refs, now, {.reset_style = style});
}

// Durations compared (and printed) as whole nanoseconds.
std::optional<int64_t> Ns(std::optional<Duration> d) {
  if (!d) return std::nullopt;
  return d->count();
}

// One row: response headers and the hint they should give.
struct Case {
  std::string name;
  Headers headers;
  ResetStyle style = ResetStyle::kAuto;
  absl::Time now = kNow;
  RateLimitHint want;
  std::optional<Duration> pause;

  Case& Retry(Duration d) { return want.retry_after = d, *this; }
  Case& Quota(double remaining, std::optional<double> limit) {
    want.remaining = remaining;
    want.limit = limit;
    return *this;
  }
  Case& Reset(Duration d) { return want.reset_after = d, *this; }
  Case& Window(Duration d) { return want.window = d, *this; }
  Case& Source(std::string s) { return want.source = std::move(s), *this; }
  Case& NoRetry() { return want.should_retry_false = true, *this; }
  Case& Pause(Duration d) { return pause = d, *this; }
  Case& Style(ResetStyle s) { return style = s, *this; }
  Case& Now(absl::Time t) { return now = t, *this; }
};

Case Row(std::string name, Headers headers) {
  Case c;
  c.name = std::move(name);
  c.headers = std::move(headers);
  return c;
}

std::vector<Case> RealWorldCases() {
  return {
      // GitHub primary limit: 403 with remaining 0 and an epoch reset.
      Row("GitHub403Primary", {{"Date", kDateNow},
                               {"x-ratelimit-limit", "5000"},
                               {"x-ratelimit-remaining", "0"},
                               {"x-ratelimit-used", "5000"},
                               {"x-ratelimit-reset", "1714565400"},
                               {"x-ratelimit-resource", "core"}})
          .Quota(0, 5000)
          .Reset(seconds(600))
          .Source("x-ratelimit")
          .Pause(seconds(600)),
      // GitHub secondary limit: Retry-After while the primary quota is fine.
      Row("GitHubSecondary", {{"retry-after", "60"},
                              {"x-ratelimit-limit", "5000"},
                              {"x-ratelimit-remaining", "4987"},
                              {"x-ratelimit-reset", "1714566000"}})
          .Retry(seconds(60))
          .Quota(4987, 5000)
          .Reset(seconds(1200))
          .Source("x-ratelimit")
          .Pause(seconds(60)),
      // GitHub without x-ratelimit-remaining: derived from limit - used.
      Row("GitHubUsedOnly", {{"x-ratelimit-limit", "60"},
                             {"x-ratelimit-used", "60"},
                             {"x-ratelimit-reset", "1714564860"}})
          .Quota(0, 60)
          .Reset(seconds(60))
          .Source("x-ratelimit")
          .Pause(seconds(60)),
      Row("Shopify429",
          {{"Retry-After", "2.0"}, {"X-Shopify-Shop-Api-Call-Limit", "40/40"}})
          .Retry(seconds(2))
          .Quota(0, 40)
          .Source("shopify")
          .Pause(seconds(2)),
      Row("Shopify200", {{"X-Shopify-Shop-Api-Call-Limit", "32/40"}})
          .Quota(8, 40)
          .Source("shopify"),
      // OpenAI: the request quota (59/60) constrains more than the tokens
      // (149984/150000).
      Row("OpenAiHealthy", {{"x-ratelimit-limit-requests", "60"},
                            {"x-ratelimit-limit-tokens", "150000"},
                            {"x-ratelimit-remaining-requests", "59"},
                            {"x-ratelimit-remaining-tokens", "149984"},
                            {"x-ratelimit-reset-requests", "1s"},
                            {"x-ratelimit-reset-tokens", "6m0s"}})
          .Quota(59, 60)
          .Reset(seconds(1))
          .Source("openai"),
      // OpenAI 429: tokens exhausted; retry-after-ms wins over Retry-After.
      Row("OpenAi429", {{"retry-after", "1"},
                        {"retry-after-ms", "15"},
                        {"x-should-retry", "true"},
                        {"x-ratelimit-limit-requests", "500"},
                        {"x-ratelimit-limit-tokens", "30000"},
                        {"x-ratelimit-remaining-requests", "499"},
                        {"x-ratelimit-remaining-tokens", "0"},
                        {"x-ratelimit-reset-requests", "120ms"},
                        {"x-ratelimit-reset-tokens", "12ms"}})
          .Retry(milliseconds(15))
          .Quota(0, 30000)
          .Reset(milliseconds(12))
          .Source("openai")
          .Pause(milliseconds(15)),
      Row("OpenAiCompoundDurations", {{"x-ratelimit-limit-tokens", "1000000"},
                                      {"x-ratelimit-remaining-tokens", "0"},
                                      {"x-ratelimit-reset-tokens", "1h30m"},
                                      {"x-ratelimit-limit-requests", "10000"},
                                      {"x-ratelimit-remaining-requests", "0"},
                                      {"x-ratelimit-reset-requests", "0.5s"}})
          .Quota(0, 1000000)
          .Reset(seconds(5400))
          .Source("openai")
          .Pause(seconds(5400)),
      // Anthropic: RFC 3339 resets, read against the Date header.
      Row("Anthropic429",
          {{"date", kDateNow},
           {"anthropic-ratelimit-requests-limit", "50"},
           {"anthropic-ratelimit-requests-remaining", "49"},
           {"anthropic-ratelimit-requests-reset", "2024-05-01T12:00:01Z"},
           {"anthropic-ratelimit-tokens-limit", "40000"},
           {"anthropic-ratelimit-tokens-remaining", "0"},
           {"anthropic-ratelimit-tokens-reset", "2024-05-01T12:00:30Z"},
           {"anthropic-ratelimit-input-tokens-limit", "40000"},
           {"anthropic-ratelimit-input-tokens-remaining", "0"},
           {"anthropic-ratelimit-input-tokens-reset", "2024-05-01T12:00:30Z"},
           {"anthropic-ratelimit-output-tokens-limit", "8000"},
           {"anthropic-ratelimit-output-tokens-remaining", "8000"},
           {"anthropic-ratelimit-output-tokens-reset", "2024-05-01T12:00:00Z"}})
          .Quota(0, 40000)
          .Reset(seconds(30))
          .Source("anthropic")
          .Pause(seconds(30)),
      Row("AnthropicOffsetAndFraction",
          {{"anthropic-ratelimit-requests-limit", "50"},
           {"anthropic-ratelimit-requests-remaining", "0"},
           {"anthropic-ratelimit-requests-reset",
            "2024-05-01T14:00:02.5+02:00"},
           {"x-should-retry", "false"}})
          .Quota(0, 50)
          .Reset(milliseconds(2500))
          .Source("anthropic")
          .NoRetry()
          .Pause(milliseconds(2500)),
      // Discord: Reset-After wins over the (stale) epoch Reset.
      Row("Discord429", {{"X-RateLimit-Limit", "5"},
                         {"X-RateLimit-Remaining", "0"},
                         {"X-RateLimit-Reset", "1470173023.123"},
                         {"X-RateLimit-Reset-After", "1.234"},
                         {"X-RateLimit-Bucket", "abcd1234"}})
          .Quota(0, 5)
          .Reset(milliseconds(1234))
          .Source("discord")
          .Pause(milliseconds(1234)),
      Row("X429", {{"x-rate-limit-limit", "900"},
                   {"x-rate-limit-remaining", "0"},
                   {"x-rate-limit-reset", "1714565700"}})
          .Quota(0, 900)
          .Reset(seconds(900))
          .Source("x-rate-limit")
          .Pause(seconds(900)),
      Row("IetfDraft11Example", {{"RateLimit-Policy", "\"default\";q=100;w=60"},
                                 {"RateLimit", "\"default\";r=50;t=30"}})
          .Quota(50, 100)
          .Reset(seconds(30))
          .Window(seconds(60))
          .Source("ietf"),
      // Two policies: the daily one (200/1000) is tighter than the burst
      // one (50/100).
      Row("IetfDraft11TwoPolicies",
          {{"RateLimit-Policy",
            "\"burst\";q=100;w=60, \"daily\";q=1000;w=86400"},
           {"RateLimit", "\"burst\";r=50;t=30, \"daily\";r=200;t=4000"}})
          .Quota(200, 1000)
          .Reset(seconds(4000))
          .Window(seconds(86400))
          .Source("ietf"),
      Row("IetfDraft11BurstExhausted",
          {{"RateLimit-Policy",
            "\"burst\";q=100;w=60, \"daily\";q=1000;w=86400"},
           {"RateLimit", "\"daily\";r=200;t=4000, \"burst\";r=0;t=12"}})
          .Quota(0, 100)
          .Reset(seconds(12))
          .Window(seconds(60))
          .Source("ietf")
          .Pause(seconds(12)),
      // GitLab: the older RateLimit-* fields with an epoch reset.
      Row("GitLab429",
          {{"Date", kDateNow},
           {"RateLimit-Limit", "60"},
           {"RateLimit-Observed", "67"},
           {"RateLimit-Remaining", "0"},
           {"RateLimit-Reset", "1714564830"},
           {"RateLimit-ResetTime", "Wed, 01 May 2024 12:00:30 GMT"},
           {"Retry-After", "30"}})
          .Retry(seconds(30))
          .Quota(0, 60)
          .Reset(seconds(30))
          .Source("ietf-draft")
          .Pause(seconds(30)),
      Row("IetfOlderDraftWithWindow", {{"RateLimit-Limit", "100, 100;w=60"},
                                       {"RateLimit-Remaining", "10"},
                                       {"RateLimit-Reset", "20"}})
          .Quota(10, 100)
          .Reset(seconds(20))
          .Window(seconds(60))
          .Source("ietf-draft"),
      Row("IetfOlderDraftPolicy", {{"RateLimit-Limit", "10"},
                                   {"RateLimit-Policy", "10;w=1, 1000;w=3600"},
                                   {"RateLimit-Remaining", "0"},
                                   {"RateLimit-Reset", "1"}})
          .Quota(0, 10)
          .Reset(seconds(1))
          .Window(seconds(1))
          .Source("ietf-draft")
          .Pause(seconds(1)),
      Row("IetfDictionaryForm",
          {{"RateLimit", "limit=100, remaining=0, reset=5"}})
          .Quota(0, 100)
          .Reset(seconds(5))
          .Source("ietf-draft")
          .Pause(seconds(5)),
      Row("StripeShouldRetryFalse",
          {{"Stripe-Should-Retry", "false"},
           {"Stripe-Rate-Limited-Reason", "global-rate"}})
          .NoRetry(),
      Row("RetryAfterImfFixdate",
          {{"Date", kDateNow},
           {"Retry-After", "Wed, 01 May 2024 12:01:00 GMT"}})
          .Retry(seconds(60))
          .Pause(seconds(60)),
      Row("RetryAfterRfc850",
          {{"Retry-After", "Wednesday, 01-May-24 12:01:00 GMT"}})
          .Retry(seconds(60))
          .Pause(seconds(60)),
      Row("RetryAfterAsctime", {{"Retry-After", "Wed May  1 12:01:00 2024"}})
          .Retry(seconds(60))
          .Pause(seconds(60)),
  };
}

std::vector<Case> BrokenCases() {
  return {
      Row("RetryAfterDateInPast",
          {{"Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"}})
          .Retry(Duration::zero())
          .Pause(Duration::zero()),
      Row("NegativeValuesIgnored", {{"Retry-After", "-5"},
                                    {"retry-after-ms", "-100"},
                                    {"x-ratelimit-limit", "-1"},
                                    {"x-ratelimit-remaining", "-1"},
                                    {"x-ratelimit-reset", "-1"},
                                    {"RateLimit-Reset", "-30"}}),
      // -1 ignored, so the tokens quota is the only one with a count.
      Row("MinusOneRemainingIgnored", {{"x-ratelimit-remaining-requests", "-1"},
                                       {"x-ratelimit-reset-requests", "1s"},
                                       {"x-ratelimit-limit-tokens", "100"},
                                       {"x-ratelimit-remaining-tokens", "90"},
                                       {"x-ratelimit-reset-tokens", "-1s"}})
          .Quota(90, 100)
          .Source("openai"),
      Row("EpochWhereDeltaForced",
          {{"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", "1714564830"}})
          .Style(ResetStyle::kDeltaSeconds)
          .Quota(0, std::nullopt)
          .Reset(hours(24))
          .Source("x-ratelimit")
          .Pause(hours(24)),
      Row("DeltaWhereEpochForced",
          {{"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", "30"}})
          .Style(ResetStyle::kEpochSeconds)
          .Quota(0, std::nullopt)
          .Reset(Duration::zero())
          .Source("x-ratelimit")
          .Pause(Duration::zero()),
      Row("AutoDelta",
          {{"RateLimit-Remaining", "0"}, {"RateLimit-Reset", "30"}})
          .Quota(0, std::nullopt)
          .Reset(seconds(30))
          .Source("ietf-draft")
          .Pause(seconds(30)),
      Row("AutoEpochMilliseconds", {{"x-ratelimit-remaining", "0"},
                                    {"x-ratelimit-reset", "1714564830000"}})
          .Quota(0, std::nullopt)
          .Reset(seconds(30))
          .Source("x-ratelimit")
          .Pause(seconds(30)),
      Row("EpochInPastIsZero", {{"x-rate-limit-remaining", "0"},
                                {"x-rate-limit-reset", "1714564000"}})
          .Quota(0, std::nullopt)
          .Reset(Duration::zero())
          .Source("x-rate-limit")
          .Pause(Duration::zero()),
      Row("Garbage",
          {{"Retry-After", "soon"},
           {"retry-after-ms", "1e3"},
           {"x-ratelimit-remaining", "0x10"},
           {"x-ratelimit-limit", "12abc"},
           {"x-ratelimit-reset", "inf"},
           {"x-rate-limit-remaining", "nan"},
           {"x-ratelimit-reset-tokens", "5 minutes"},
           {"x-ratelimit-remaining-tokens", "+5"},
           {"anthropic-ratelimit-tokens-remaining", "1 000"},
           {"anthropic-ratelimit-tokens-reset", "2024-05-01 12:00:30"},
           {"RateLimit", "\"burst\";r=50;t=30,"},
           {"X-Shopify-Shop-Api-Call-Limit", "40"},
           {"x-should-retry", "nope"}}),
      Row("EmptyValues", {{"Retry-After", ""},
                          {"retry-after-ms", " "},
                          {"x-ratelimit-remaining", ""},
                          {"x-ratelimit-reset", ""},
                          {"RateLimit", ""},
                          {"RateLimit-Policy", ""},
                          {"X-Shopify-Shop-Api-Call-Limit", "/"},
                          {"Date", ""}}),
      Row("BadRetryAfterMsFallsBack",
          {{"retry-after-ms", "soon"}, {"Retry-After", "3"}})
          .Retry(seconds(3))
          .Pause(seconds(3)),
      // Repeats: the lowest count and the longest delay win.
      Row("DuplicateHeaders", {{"Retry-After", "5"},
                               {"Retry-After", "10"},
                               {"Retry-After", "junk"},
                               {"x-ratelimit-remaining", "5"},
                               {"x-ratelimit-remaining", "3"},
                               {"x-ratelimit-reset", "10"},
                               {"x-ratelimit-reset", "20"}})
          .Retry(seconds(10))
          .Quota(3, std::nullopt)
          .Reset(seconds(20))
          .Source("x-ratelimit")
          .Pause(seconds(10)),
      Row("CommaJoinedDuplicates",
          {{"Retry-After", "5, 10"}, {"x-ratelimit-remaining", "7, 4"}})
          .Retry(seconds(10))
          .Quota(4, std::nullopt)
          .Source("x-ratelimit")
          .Pause(seconds(10)),
      Row("IetfSplitAcrossLines",
          {{"RateLimit-Policy", "\"burst\";q=100;w=60"},
           {"RateLimit-Policy", "\"daily\";q=1000;w=86400"},
           {"RateLimit", "\"daily\";r=0;t=600"},
           {"RateLimit", "\"burst\";r=99;t=1"}})
          .Quota(0, 1000)
          .Reset(seconds(600))
          .Window(seconds(86400))
          .Source("ietf")
          .Pause(seconds(600)),
      Row("IetfNegativeParamsIgnored",
          {{"RateLimit", "\"default\";r=-1;t=-5, \"other\";r=3"}})
          .Quota(3, std::nullopt)
          .Source("ietf"),
      Row("CaseInsensitiveNames", {{"RETRY-AFTER", "7"},
                                   {"X-RateLimit-REMAINING", "0"},
                                   {"x-RATELIMIT-reset-AFTER", "2.5"},
                                   {"STRIPE-SHOULD-RETRY", "FALSE"}})
          .Retry(seconds(7))
          .Quota(0, std::nullopt)
          .Reset(milliseconds(2500))
          .Source("discord")
          .NoRetry()
          .Pause(seconds(7)),
      // The API's clock is 10 s ahead of ours; its reset is 30 s after its
      // own Date, so the wait is 30 s, not 40 s.
      Row("DateSkewCorrected", {{"Date", "Wed, 01 May 2024 12:00:10 GMT"},
                                {"x-ratelimit-remaining", "0"},
                                {"x-ratelimit-reset", "1714564840"}})
          .Quota(0, std::nullopt)
          .Reset(seconds(30))
          .Source("x-ratelimit")
          .Pause(seconds(30)),
      Row("NoDateUsesNow",
          {{"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", "1714564840"}})
          .Quota(0, std::nullopt)
          .Reset(seconds(40))
          .Source("x-ratelimit")
          .Pause(seconds(40)),
      Row("UnparseableDateUsesNow",
          {{"Date", "yesterday"},
           {"Retry-After", "Wed, 01 May 2024 12:00:40 GMT"}})
          .Retry(seconds(40))
          .Pause(seconds(40)),
      Row("HugeValuesSaturate",
          {{"Retry-After", "99999999999"},
           {"x-ratelimit-remaining-tokens", "0"},
           {"x-ratelimit-reset-tokens", "9999999h"},
           {"anthropic-ratelimit-tokens-remaining", "1e999"}})
          .Retry(hours(24))
          .Quota(0, std::nullopt)
          .Reset(hours(24))
          .Source("openai")
          .Pause(hours(24)),
      Row("ShopifyOverCapacity", {{"X-Shopify-Shop-Api-Call-Limit", "41/40"},
                                  {"X-Shopify-Shop-Api-Call-Limit", "5/0"}})
          .Quota(0, 40)
          .Source("shopify"),
      // A reset with no remaining count anywhere is still reported.
      Row("ResetWithoutRemaining", {{"x-ratelimit-reset-after", "4"}})
          .Reset(seconds(4))
          .Source("discord"),
  };
}

class RateLimitHeadersTest : public testing::TestWithParam<Case> {};

TEST_P(RateLimitHeadersTest, ParsesAsExpected) {
  const Case& c = GetParam();
  const RateLimitHint got = Parse(c.headers, c.now, c.style);
  EXPECT_EQ(Ns(got.retry_after), Ns(c.want.retry_after)) << "retry_after";
  EXPECT_EQ(got.remaining, c.want.remaining) << "remaining";
  EXPECT_EQ(got.limit, c.want.limit) << "limit";
  EXPECT_EQ(Ns(got.reset_after), Ns(c.want.reset_after)) << "reset_after";
  EXPECT_EQ(Ns(got.window), Ns(c.want.window)) << "window";
  EXPECT_EQ(got.source, c.want.source);
  EXPECT_EQ(got.should_retry_false, c.want.should_retry_false);
  EXPECT_EQ(Ns(SuggestedPause(got)), Ns(c.pause)) << "pause";
}

std::string CaseName(const testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(RealWorld, RateLimitHeadersTest,
                         testing::ValuesIn(RealWorldCases()), CaseName);
INSTANTIATE_TEST_SUITE_P(Broken, RateLimitHeadersTest,
                         testing::ValuesIn(BrokenCases()), CaseName);

TEST(RateLimitHeadersTest, NoHeadersGiveEmptyHint) {
  const RateLimitHint hint = Parse({{"Content-Type", "application/json"}});
  EXPECT_FALSE(hint.retry_after || hint.remaining || hint.limit ||
               hint.reset_after || hint.window);
  EXPECT_EQ(hint.source, "");
  EXPECT_FALSE(hint.should_retry_false);
  EXPECT_EQ(SuggestedPause(hint), std::nullopt);
}

TEST(RateLimitHeadersTest, SuggestedPauseRules) {
  RateLimitHint hint;
  hint.remaining = 1;
  hint.reset_after = seconds(5);
  EXPECT_EQ(SuggestedPause(hint), std::nullopt);  // quota left: no pause
  hint.remaining = 0;
  EXPECT_EQ(SuggestedPause(hint), seconds(5));
  hint.retry_after = seconds(2);
  EXPECT_EQ(SuggestedPause(hint), seconds(2));  // Retry-After wins
  hint.retry_after.reset();
  hint.reset_after.reset();
  EXPECT_EQ(SuggestedPause(hint), std::nullopt);  // exhausted, no reset
}

TEST(RateLimitHeadersTest, ExhaustedQuotaBeatsLowerRatio) {
  // 0 of 10 against 1 of 1000: the exhausted quota wins although its
  // limit is smaller.
  const RateLimitHint hint = Parse({{"x-ratelimit-remaining", "0"},
                                    {"x-ratelimit-limit", "10"},
                                    {"x-ratelimit-reset", "5"},
                                    {"x-ratelimit-remaining-tokens", "1"},
                                    {"x-ratelimit-limit-tokens", "1000"}});
  EXPECT_EQ(hint.source, "x-ratelimit");
  EXPECT_EQ(hint.remaining, 0);
  EXPECT_EQ(hint.reset_after, seconds(5));
}

TEST(RateLimitHeadersTest, LongerResetWinsAmongExhaustedQuotas) {
  const RateLimitHint hint = Parse({{"x-ratelimit-remaining-requests", "0"},
                                    {"x-ratelimit-reset-requests", "2s"},
                                    {"x-ratelimit-remaining-tokens", "0"},
                                    {"x-ratelimit-reset-tokens", "45s"}});
  EXPECT_EQ(hint.reset_after, seconds(45));
}

TEST(RateLimitHeadersTest, OverlongNamesAndValuesAreIgnored) {
  const std::string long_name(100, 'x');
  const std::string long_number = "1" + std::string(100, '0');
  const RateLimitHint hint = Parse({{long_name, "5"},
                                    {"Retry-After", long_number},
                                    {"x-ratelimit-remaining", long_number}});
  EXPECT_EQ(hint.retry_after, std::nullopt);
  EXPECT_EQ(hint.remaining, std::nullopt);
}

}  // namespace
}  // namespace sluice
