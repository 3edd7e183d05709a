#include "quota-server/core/limit_learner.h"

#include <gtest/gtest.h>

#include <limits>

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const TimePoint kT0 = TimePoint(seconds(100));
TimePoint At(double s) {
  return kT0 +
         std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

TEST(LimitLearnerTest, NothingLearnedWithoutThrottles) {
  LimitLearner l({}, 100, At(0));
  l.Advance(At(60));
  EXPECT_EQ(l.effective(), 100);
  EXPECT_FALSE(l.learned().has_value());
}

TEST(LimitLearnerTest, MultiplicativeDecreaseThenHoldThenAdditiveIncrease) {
  LimitLearner l(
      {.decrease = 0.5, .increase = 0.1, .hold = seconds(5), .floor = 0.05},
      100, At(0));
  l.OnThrottle(std::nullopt, At(1));
  EXPECT_EQ(l.effective(), 50);
  l.OnThrottle(std::nullopt, At(2));
  EXPECT_EQ(l.effective(), 25);
  l.Advance(At(6.9));  // still holding
  EXPECT_EQ(l.effective(), 25);
  l.Advance(At(8));  // 1 s past the hold: + 10/s
  EXPECT_DOUBLE_EQ(l.effective(), 35);
  l.Advance(At(14.5));
  EXPECT_DOUBLE_EQ(l.effective(), 100);
  EXPECT_FALSE(l.learned().has_value());  // back to the configured rate
}

TEST(LimitLearnerTest, StatedLimitIsTakenAtOnceAndNeverAboveConfigured) {
  LimitLearner l({}, 100, At(0));
  l.OnThrottle(60.0, At(1));
  EXPECT_EQ(l.effective(), 60);
  ASSERT_TRUE(l.learned().has_value());
  EXPECT_EQ(*l.learned(), 60);
  l.OnThrottle(500.0, At(2));  // more than configured: nothing learned
  EXPECT_EQ(l.effective(), 100);
  EXPECT_FALSE(l.learned().has_value());
  l.OnThrottle(-3.0, At(3));  // nonsense: a plain decrease
  EXPECT_DOUBLE_EQ(l.effective(), 70);
}

TEST(LimitLearnerTest, NeverBelowTheFloor) {
  LimitLearner l({.decrease = 0.1, .floor = 0.2}, 100, At(0));
  for (int i = 0; i < 10; ++i) l.OnThrottle(std::nullopt, At(i));
  EXPECT_DOUBLE_EQ(l.effective(), 20);
  l.OnThrottle(1.0, At(11));  // a stated limit is floored too
  EXPECT_DOUBLE_EQ(l.effective(), 20);
}

TEST(LimitLearnerTest, ConfiguredChangeCapsAndClears) {
  LimitLearner l({}, 100, At(0));
  l.OnThrottle(std::nullopt, At(1));  // 70
  l.SetConfigured(50);
  EXPECT_EQ(l.effective(), 50);
  EXPECT_FALSE(l.learned().has_value());
  l.SetConfigured(200);
  EXPECT_EQ(l.effective(), 200);
}

// A limit stated on ordinary responses (no throttle): a lower one is taken
// at once, and the additive increase stops there while it stays fresh.
TEST(LimitLearnerTest, StatedLimitOnOrdinaryResponsesCapsTheIncrease) {
  LimitLearner l({.decrease = 0.5,
                  .increase = 0.1,
                  .hold = seconds(5),
                  .stated_ttl = seconds(60)},
                 100, At(0));
  l.OnStated(80, At(1));
  EXPECT_EQ(l.effective(), 80);
  ASSERT_TRUE(l.stated(At(1)).has_value());
  l.OnThrottle(std::nullopt, At(2));  // a bare 429 still halves: 40
  EXPECT_EQ(l.effective(), 40);
  l.OnStated(80, At(3));  // higher, but a throttle within `hold`: kept
  EXPECT_EQ(l.effective(), 40);
  l.Advance(At(8));  // 1 s past the hold: +10/s
  EXPECT_DOUBLE_EQ(l.effective(), 50);
  l.Advance(At(30));  // climbs to the stated 80, not to the configured 100
  EXPECT_DOUBLE_EQ(l.effective(), 80);
  l.Advance(At(63));  // still fresh (60 s after At(3))
  EXPECT_DOUBLE_EQ(l.effective(), 80);
  l.Advance(At(64));  // the statement went stale: on to the configured rate
  EXPECT_FALSE(l.stated(At(64)).has_value());
  EXPECT_DOUBLE_EQ(l.effective(), 90);
  l.Advance(At(70));
  EXPECT_EQ(l.effective(), 100);
  EXPECT_FALSE(l.learned().has_value());
}

TEST(LimitLearnerTest, HigherStatedLimitIsTakenAtOnceWithoutRecentThrottle) {
  LimitLearner l({.hold = seconds(5)}, 100, At(0));
  l.OnStated(30, At(10));
  EXPECT_EQ(l.effective(), 30);
  l.OnStated(60, At(11));  // the upstream raised it; no throttle since 0
  EXPECT_EQ(l.effective(), 60);
  l.OnStated(250, At(12));  // above the configured rate: nothing learned
  EXPECT_EQ(l.effective(), 100);
  EXPECT_FALSE(l.learned().has_value());
  l.OnStated(-1, At(13));  // nonsense is ignored
  l.OnStated(std::numeric_limits<double>::infinity(), At(13));
  EXPECT_EQ(l.effective(), 100);
  EXPECT_EQ(*l.stated(At(13)), 250);
}

}  // namespace
}  // namespace sluice
