#include "proxy/pause/throttle_rules.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace sluice {
namespace {

using std::chrono::seconds;
using Kind = ThrottleVerdict::Kind;

const absl::Time kNow = absl::FromUnixSeconds(1767225600);  // 2026-01-01

ThrottleVerdict Classify(const ThrottleConfig& c, int status,
                         std::vector<HeaderRef> headers) {
  return ClassifyResponse(c, status, headers, kNow);
}

TEST(ThrottleRulesTest, TooManyRequestsWithRetryAfter) {
  const ThrottleVerdict v = Classify({}, 429, {{"Retry-After", "7"}});
  EXPECT_EQ(v.kind, Kind::kBroadcast);
  EXPECT_EQ(v.hint, seconds(7));
  EXPECT_EQ(v.reason, "retry-after");
}

TEST(ThrottleRulesTest, StatusWithoutHintsIsAThrottleWithoutAHint) {
  const ThrottleVerdict v = Classify({}, 503, {{"Content-Type", "text/html"}});
  EXPECT_EQ(v.kind, Kind::kBroadcast);
  EXPECT_FALSE(v.hint.has_value());
  EXPECT_EQ(v.reason, "status");
}

TEST(ThrottleRulesTest, GithubForbiddenWithNothingRemaining) {
  // GitHub: 403, remaining 0, reset in epoch seconds; Date corrects skew.
  const ThrottleVerdict v = Classify({}, 403,
                                     {{"Date", "Thu, 01 Jan 2026 00:00:00 GMT"},
                                      {"X-RateLimit-Limit", "5000"},
                                      {"X-RateLimit-Remaining", "0"},
                                      {"X-RateLimit-Reset", "1767225660"}});
  EXPECT_EQ(v.kind, Kind::kBroadcast);
  EXPECT_EQ(v.hint, seconds(60));
  EXPECT_EQ(v.reason, "x-ratelimit");
}

TEST(ThrottleRulesTest, ForbiddenWithQuotaLeftIsNotAThrottle) {
  EXPECT_EQ(Classify({}, 403,
                     {{"X-RateLimit-Remaining", "12"},
                      {"X-RateLimit-Reset", "1767225660"}})
                .kind,
            Kind::kNone);
  EXPECT_EQ(Classify({}, 403, {}).kind, Kind::kNone);
  // Spent, but no reset time: a plain 403 as far as pausing goes.
  EXPECT_EQ(Classify({}, 403, {{"X-RateLimit-Remaining", "0"}}).kind,
            Kind::kNone);
}

TEST(ThrottleRulesTest, SuccessThatSpentTheLastRequestPausesPreemptively) {
  const ThrottleVerdict v = Classify({}, 200,
                                     {{"x-ratelimit-limit-requests", "60"},
                                      {"x-ratelimit-remaining-requests", "0"},
                                      {"x-ratelimit-reset-requests", "1s"}});
  EXPECT_EQ(v.kind, Kind::kBroadcast);
  EXPECT_EQ(v.hint, seconds(1));
  EXPECT_EQ(v.reason, "openai");
  EXPECT_EQ(Classify({}, 200,
                     {{"x-ratelimit-remaining-requests", "59"},
                      {"x-ratelimit-reset-requests", "1s"}})
                .kind,
            Kind::kNone);
  EXPECT_EQ(Classify({}, 201, {{"Retry-After", "3"}}).kind, Kind::kNone);
}

TEST(ThrottleRulesTest, IgnoreRulesByStatusAndHeaderValue) {
  ThrottleConfig c;
  c.statuses = {429, 503, 529};
  c.ignore = {ThrottleIgnoreRule{.status = 529},
              ThrottleIgnoreRule{.status = 429,
                                 .header = "stripe-rate-limited-reason",
                                 .value = "LOCK_TIMEOUT"}};
  EXPECT_EQ(Classify(c, 529, {{"Retry-After", "1"}}).kind, Kind::kIgnored);
  EXPECT_EQ(
      Classify(c, 429, {{"Stripe-Rate-Limited-Reason", "object-lock_timeout"}})
          .kind,
      Kind::kIgnored);
  // Another reason from the same header is a quota throttle.
  EXPECT_EQ(
      Classify(c, 429, {{"Stripe-Rate-Limited-Reason", "global-rate"}}).kind,
      Kind::kBroadcast);
  EXPECT_EQ(Classify(c, 503, {}).kind, Kind::kBroadcast);
}

ThrottleVerdict ClassifyBody(const ThrottleConfig& c, int status,
                             std::vector<HeaderRef> headers,
                             std::string_view body) {
  return ClassifyResponse(c, status, headers, kNow, body);
}

ThrottleConfig StripeBodyRule() {
  ThrottleConfig c;
  c.ignore = {ThrottleIgnoreRule{.status = 429, .body = "\"lock_timeout\""}};
  return c;
}

TEST(ThrottleRulesTest, BodyRuleAsksForTheBodyOfAThrottleOnly) {
  const ThrottleConfig c = StripeBodyRule();
  const ThrottleVerdict v = Classify(c, 429, {{"Retry-After", "2"}});
  // Without the body it is a throttle, and the body could excuse it.
  EXPECT_EQ(v.kind, Kind::kBroadcast);
  EXPECT_TRUE(v.wants_body);
  // Not a throttle, or a status the rule does not cover: nothing to read.
  EXPECT_FALSE(Classify(c, 200, {}).wants_body);
  EXPECT_FALSE(Classify(c, 503, {}).wants_body);
  // A rule without a marker that already matches needs no body either.
  ThrottleConfig both = c;
  both.ignore.push_back(ThrottleIgnoreRule{.header = "x-lock"});
  const ThrottleVerdict ignored = Classify(both, 429, {{"X-Lock", "1"}});
  EXPECT_EQ(ignored.kind, Kind::kIgnored);
  EXPECT_FALSE(ignored.wants_body);
  // No body rules at all: never.
  EXPECT_FALSE(Classify({}, 429, {}).wants_body);
}

TEST(ThrottleRulesTest, BodyMarkerExcusesTheThrottle) {
  const ThrottleConfig c = StripeBodyRule();
  const std::string stripe =
      R"({"error":{"code":"lock_timeout","type":"invalid_request_error"}})";
  const ThrottleVerdict v = ClassifyBody(c, 429, {}, stripe);
  EXPECT_EQ(v.kind, Kind::kIgnored);
  EXPECT_FALSE(v.wants_body);
  // Another code, a marker in another case, or no body: a quota throttle.
  EXPECT_EQ(ClassifyBody(c, 429, {{"Retry-After", "2"}},
                         R"({"error":{"code":"rate_limit"}})")
                .kind,
            Kind::kBroadcast);
  EXPECT_EQ(ClassifyBody(c, 429, {}, R"({"code":"LOCK_TIMEOUT"})").kind,
            Kind::kBroadcast);
  const ThrottleVerdict empty = ClassifyBody(c, 429, {}, "");
  EXPECT_EQ(empty.kind, Kind::kBroadcast);
  EXPECT_FALSE(empty.wants_body);
}

TEST(ThrottleRulesTest, BodyRuleNeedsItsOtherConditionsToo) {
  ThrottleConfig c;
  c.statuses = {429, 503};
  c.ignore = {ThrottleIgnoreRule{.status = 503,
                                 .header = "content-type",
                                 .value = "json",
                                 .body = "overloaded"}};
  EXPECT_EQ(ClassifyBody(c, 503, {{"Content-Type", "application/json"}},
                         R"({"type":"overloaded_error"})")
                .kind,
            Kind::kIgnored);
  EXPECT_EQ(
      ClassifyBody(c, 503, {{"Content-Type", "text/html"}}, "overloaded").kind,
      Kind::kBroadcast);
  EXPECT_FALSE(Classify(c, 503, {{"Content-Type", "text/html"}}).wants_body);
  EXPECT_EQ(
      ClassifyBody(c, 429, {{"Content-Type", "application/json"}}, "overloaded")
          .kind,
      Kind::kBroadcast);
}

TEST(ThrottleRulesTest, BodyMarkerOnlyInTheFirstPeekBytes) {
  ThrottleConfig c = StripeBodyRule();
  c.body_peek_bytes = 32;
  const std::string marker = "\"lock_timeout\"";
  EXPECT_EQ(ClassifyBody(c, 429, {}, std::string(18, ' ') + marker).kind,
            Kind::kIgnored);  // ends at byte 32
  EXPECT_EQ(ClassifyBody(c, 429, {}, std::string(19, ' ') + marker).kind,
            Kind::kBroadcast);  // one byte past the peek
}

TEST(ThrottleRulesTest, EncodedBodiesAreNotMatched) {
  const ThrottleConfig c = StripeBodyRule();
  const std::string body = R"({"code":"lock_timeout"})";
  for (const char* coding : {"gzip", "br", "identity, gzip"}) {
    const std::vector<HeaderRef> headers = {{"Content-Encoding", coding}};
    EXPECT_FALSE(Classify(c, 429, headers).wants_body) << coding;
    EXPECT_EQ(ClassifyBody(c, 429, headers, body).kind, Kind::kBroadcast)
        << coding;
  }
  const std::vector<HeaderRef> identity = {{"content-encoding", " Identity "}};
  EXPECT_TRUE(Classify(c, 429, identity).wants_body);
  EXPECT_EQ(ClassifyBody(c, 429, identity, body).kind, Kind::kIgnored);
}

TEST(ThrottleRulesTest, LocalOnlyAndDisabled) {
  ThrottleConfig local;
  local.broadcast = false;
  EXPECT_EQ(Classify(local, 429, {}).kind, Kind::kLocal);
  ThrottleConfig off;
  off.enabled = false;
  EXPECT_EQ(Classify(off, 429, {{"Retry-After", "5"}}).kind, Kind::kNone);
  EXPECT_FALSE(MayBeThrottle(off, 429));
  EXPECT_TRUE(MayBeThrottle(local, 200));
  EXPECT_FALSE(MayBeThrottle(local, 404));
}

TEST(ThrottleRulesTest, MalformedHintsLeaveAHintlessThrottle) {
  for (const char* bad : {"-1", "soon", "", "NaN", "1e999"}) {
    const ThrottleVerdict v = Classify({}, 429, {{"Retry-After", bad}});
    EXPECT_EQ(v.kind, Kind::kBroadcast) << bad;
    EXPECT_FALSE(v.hint.has_value()) << bad;
    EXPECT_EQ(v.reason, "status") << bad;
  }
}

TEST(ThrottleRulesTest, ResetStyleFromConfig) {
  ThrottleConfig delta;
  delta.reset_style = ResetStyle::kDeltaSeconds;
  // GitLab-style epoch read as a delta would be decades: the parser caps
  // delays at a day, so forcing the wrong style is visible.
  const ThrottleVerdict v = Classify(
      delta, 429, {{"RateLimit-Remaining", "0"}, {"RateLimit-Reset", "30"}});
  EXPECT_EQ(v.hint, seconds(30));
}

TEST(ThrottleRulesTest, StatedLimitOfOrdinaryResponses) {
  // IETF: the policy names its window.
  std::vector<HeaderRef> ietf = {{"RateLimit-Policy", "\"default\";q=100;w=60"},
                                 {"RateLimit", "\"default\";r=50;t=30"}};
  auto s = StatedLimitOf({}, ietf, kNow);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->limit, 100);
  EXPECT_EQ(s->window, seconds(60));
  // OpenAI states no window: nothing, unless the limit says what it is.
  std::vector<HeaderRef> openai = {{"x-ratelimit-limit-requests", "60"},
                                   {"x-ratelimit-remaining-requests", "59"},
                                   {"x-ratelimit-reset-requests", "1s"}};
  EXPECT_FALSE(StatedLimitOf({}, openai, kNow).has_value());
  ThrottleConfig per_minute;
  per_minute.limit_window = seconds(60);
  s = StatedLimitOf(per_minute, openai, kNow);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->limit, 60);
  EXPECT_EQ(s->window, seconds(60));
  // The same window reaches a throttle's verdict.
  EXPECT_EQ(Classify(per_minute, 429, openai).window, seconds(60));
  EXPECT_FALSE(Classify({}, 429, openai).window.has_value());
  // No limit header, or a nonsense one: nothing.
  const std::vector<HeaderRef> no_limit = {{"Retry-After", "3"}};
  const std::vector<HeaderRef> negative = {
      {"x-ratelimit-limit-requests", "-5"}};
  EXPECT_FALSE(StatedLimitOf(per_minute, no_limit, kNow));
  EXPECT_FALSE(StatedLimitOf(per_minute, negative, kNow));
}

}  // namespace
}  // namespace sluice
