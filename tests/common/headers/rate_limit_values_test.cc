#include "common/headers/rate_limit_values.h"

#include <gtest/gtest.h>

#include "absl/time/time.h"

namespace sluice::header_value {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

const absl::Time kRef = absl::FromUnixSeconds(1714564800);

TEST(RateLimitValuesTest, DecimalGrammar) {
  EXPECT_EQ(ParseDecimal("42"), 42);
  EXPECT_EQ(ParseDecimal(" \t2.0 "), 2);
  EXPECT_EQ(ParseDecimal("-1"), -1);
  EXPECT_EQ(ParseDecimal("5."), 5);
  EXPECT_EQ(ParseDecimal(".5"), 0.5);
  EXPECT_EQ(ParseDecimal("007"), 7);
  for (const char* bad : {"", " ", "-", ".", "+5", "1e3", "0x10", "1.2.3",
                          "1 000", "inf", "nan", "12abc", "1,5", "--1"}) {
    EXPECT_EQ(ParseDecimal(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(ParseDecimal(std::string(64, '9')).has_value(), true);
  EXPECT_EQ(ParseDecimal(std::string(65, '9')), std::nullopt);
  EXPECT_EQ(ParseCount("-0.5"), std::nullopt);
  EXPECT_EQ(ParseCount("0"), 0);
}

TEST(RateLimitValuesTest, DelaysSaturateAndClamp) {
  EXPECT_EQ(CappedDelay(1.5), milliseconds(1500));
  EXPECT_EQ(CappedDelay(1e300), hours(24));
  EXPECT_EQ(ParseDeltaSeconds("-3"), std::nullopt);
  EXPECT_EQ(DelayUntil(kRef - absl::Seconds(5), kRef), Duration::zero());
  EXPECT_EQ(DelayUntil(kRef + absl::Hours(48), kRef), hours(24));
  EXPECT_EQ(DelayUntil(absl::InfiniteFuture(), kRef), std::nullopt);
  EXPECT_EQ(ParseRetryAfterMs("1500.5"), std::chrono::microseconds(1500500));
}

TEST(RateLimitValuesTest, ResetNumberStyles) {
  using enum ResetStyle;
  EXPECT_EQ(ParseResetNumber("30", kAuto, kRef), seconds(30));
  EXPECT_EQ(ParseResetNumber("999999999", kAuto, kRef), hours(24));  // delta
  EXPECT_EQ(ParseResetNumber("1714564830", kAuto, kRef), seconds(30));
  EXPECT_EQ(ParseResetNumber("1714564830.5", kAuto, kRef), milliseconds(30500));
  EXPECT_EQ(ParseResetNumber("1714564830500", kAuto, kRef),
            milliseconds(30500));
  EXPECT_EQ(ParseResetNumber("1714564830", kDeltaSeconds, kRef), hours(24));
  EXPECT_EQ(ParseResetNumber("30", kEpochSeconds, kRef), Duration::zero());
  EXPECT_EQ(ParseResetNumber("1714564830000", kEpochSeconds, kRef),
            hours(24));  // no millisecond guess when forced
  EXPECT_EQ(ParseResetNumber("-1", kAuto, kRef), std::nullopt);
}

TEST(RateLimitValuesTest, GoDurations) {
  EXPECT_EQ(ParseGoDuration("6m0s"), seconds(360));
  EXPECT_EQ(ParseGoDuration("12ms"), milliseconds(12));
  EXPECT_EQ(ParseGoDuration("1h30m"), seconds(5400));
  EXPECT_EQ(ParseGoDuration("0.5s"), milliseconds(500));
  EXPECT_EQ(ParseGoDuration("7"), seconds(7));
  EXPECT_EQ(ParseGoDuration("48h"), hours(24));
  for (const char* bad : {"-1s", "inf", "", "5 minutes", "1d", "s"}) {
    EXPECT_EQ(ParseGoDuration(bad), std::nullopt) << bad;
  }
}

TEST(RateLimitValuesTest, Rfc3339) {
  EXPECT_EQ(ParseRfc3339Delay("2024-05-01T12:00:30Z", kRef), seconds(30));
  EXPECT_EQ(ParseRfc3339Delay("2024-05-01t12:00:30.25z", kRef),
            milliseconds(30250));
  EXPECT_EQ(ParseRfc3339Delay("2024-05-01T08:00:30-04:00", kRef), seconds(30));
  EXPECT_EQ(ParseRfc3339Delay("2024-05-01T11:00:00Z", kRef), Duration::zero());
  for (const char* bad : {"2024-05-01 12:00:30Z", "2024-05-01T12:00:30",
                          "infinite-future", "1714564830", ""}) {
    EXPECT_EQ(ParseRfc3339Delay(bad, kRef), std::nullopt) << bad;
  }
}

TEST(RateLimitValuesTest, RetryAfterForms) {
  EXPECT_EQ(ParseRetryAfter("120", kRef), seconds(120));
  EXPECT_EQ(ParseRetryAfter("Wed, 01 May 2024 12:02:00 GMT", kRef),
            seconds(120));
  EXPECT_EQ(ParseRetryAfter("Tue, 30 Apr 2024 12:00:00 GMT", kRef),
            Duration::zero());
  EXPECT_EQ(ParseRetryAfter("2024-05-01T12:02:00Z", kRef), std::nullopt);
}

}  // namespace
}  // namespace sluice::header_value
