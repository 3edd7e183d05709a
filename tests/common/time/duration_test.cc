#include "common/time/duration.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(DurationTest, ParsesGoStyleAndPlainSeconds) {
  EXPECT_EQ(*ParseConfigDuration("250ms"), milliseconds(250));
  EXPECT_EQ(*ParseConfigDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(*ParseConfigDuration("6m0s"), seconds(360));
  EXPECT_EQ(*ParseConfigDuration("2"), seconds(2));
  EXPECT_EQ(*ParseConfigDuration(" 0.5 "), milliseconds(500));
  EXPECT_EQ(*ParseConfigDuration("0"), Duration::zero());
}

TEST(DurationTest, RejectsBadInput) {
  EXPECT_FALSE(ParseConfigDuration("").ok());
  EXPECT_FALSE(ParseConfigDuration("-1s").ok());
  EXPECT_FALSE(ParseConfigDuration("-3").ok());
  EXPECT_FALSE(ParseConfigDuration("inf").ok());
  EXPECT_FALSE(ParseConfigDuration("nan").ok());
  EXPECT_FALSE(ParseConfigDuration("10 parsecs").ok());
}

TEST(DurationTest, FormatsRoundTrip) {
  EXPECT_EQ(*ParseConfigDuration(FormatDuration(milliseconds(1500))),
            milliseconds(1500));
}

TEST(DurationTest, FromSecondsClampsAndSaturates) {
  EXPECT_EQ(FromSeconds(-1), Duration::zero());
  EXPECT_EQ(FromSeconds(1e30), Duration::max());
  EXPECT_EQ(FromSeconds(0.001), milliseconds(1));
}

}  // namespace
}  // namespace sluice
