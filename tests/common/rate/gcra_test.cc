#include "common/rate/gcra.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "common/rate/token_bucket.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

const TimePoint kT0 = TimePoint(seconds(1000));
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// T = 100 ms, burst 5 (tau = 500 ms).
RateSpec TenPerSecondBurstFive() { return RateSpec{10, seconds(1), 5}; }

TEST(GcraTest, StartsFullAndHonoursBurst) {
  GcraBucket g(TenPerSecondBurstFive(), kT0);
  EXPECT_DOUBLE_EQ(g.Capacity(), 5);
  EXPECT_DOUBLE_EQ(g.TokensAt(kT0), 5);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(g.TryTake(1, kT0)) << i;
  EXPECT_FALSE(g.TryTake(1, kT0));
}

// After taking 5 at t0, TAT = t0 + 500 ms. A cost c conforms at t iff
// TAT + c*T - tau <= t, i.e. t >= t0 + c * 100 ms.
TEST(GcraTest, ConformanceFollowsTheTatDefinition) {
  GcraBucket g(TenPerSecondBurstFive(), kT0);
  ASSERT_TRUE(g.TryTake(5, kT0));
  EXPECT_FALSE(g.TryTake(1, kT0 + milliseconds(100) - nanoseconds(1)));
  EXPECT_TRUE(g.TryTake(1, kT0 + milliseconds(100)));  // TAT = t0 + 600 ms
  EXPECT_FALSE(g.TryTake(2, kT0 + milliseconds(300) - nanoseconds(1)));
  EXPECT_TRUE(g.TryTake(2, kT0 + milliseconds(300)));  // TAT = t0 + 800 ms
  EXPECT_DOUBLE_EQ(g.TokensAt(kT0 + milliseconds(300)), 0);
  EXPECT_DOUBLE_EQ(g.TokensAt(kT0 + milliseconds(550)), 2.5);
}

TEST(GcraTest, IdleCreditStopsAtBurst) {
  GcraBucket g(TenPerSecondBurstFive(), kT0);
  ASSERT_TRUE(g.TryTake(5, kT0));
  const TimePoint later = kT0 + seconds(3600);
  EXPECT_DOUBLE_EQ(g.TokensAt(later), 5);
  EXPECT_TRUE(g.TryTake(5, later));
  EXPECT_FALSE(g.TryTake(0.5, later));
}

TEST(GcraTest, FractionalAndMultiTokenCosts) {
  GcraBucket g(TenPerSecondBurstFive(), kT0);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(g.TryTake(0.25, kT0)) << i;
  EXPECT_FALSE(g.TryTake(0.25, kT0));
  EXPECT_FALSE(g.TryTake(0.25, kT0 + milliseconds(24)));
  EXPECT_TRUE(g.TryTake(0.25, kT0 + milliseconds(25)));
  EXPECT_EQ(g.AvailableAt(1.5, kT0 + milliseconds(25)),
            kT0 + milliseconds(175));
  // Above the burst never conforms, however long we wait.
  EXPECT_FALSE(g.TryTake(5.5, kT0 + seconds(3600)));
}

TEST(GcraTest, AvailableAtIsExactIncludingBacklogAboveCapacity) {
  GcraBucket g(TenPerSecondBurstFive(), kT0);
  EXPECT_EQ(g.AvailableAt(5, kT0), kT0);
  ASSERT_TRUE(g.TryTake(5, kT0));
  EXPECT_EQ(g.AvailableAt(0, kT0), kT0);
  EXPECT_EQ(g.AvailableAt(1, kT0), kT0 + milliseconds(100));
  EXPECT_EQ(g.AvailableAt(12, kT0), kT0 + milliseconds(1200));
  EXPECT_TRUE(g.TryTake(5, kT0 + milliseconds(500)));
  EXPECT_FALSE(g.TryTake(5, kT0 + milliseconds(999)));
  EXPECT_TRUE(g.TryTake(5, kT0 + milliseconds(1000)));
  EXPECT_EQ(g.AvailableAt(2, kT0 + milliseconds(1000)),
            kT0 + milliseconds(1200));
  EXPECT_TRUE(g.TryTake(2, kT0 + milliseconds(1200)));
}

// T = 1 s / 3 is not a whole number of nanoseconds; TAT keeps the fraction,
// so 3000 back-to-back admissions end at exactly t0 + 1000 s (+- 1 ns).
TEST(GcraTest, NoDriftWithFractionalInterval) {
  // Burst 2, drained: admissions never find the bucket full, so no credit
  // is clipped away (with burst 1 each late-by-<1ns admission would lose
  // that fraction to the capacity limit, as it should).
  GcraBucket g(RateSpec{3, seconds(1), 2}, kT0);
  ASSERT_TRUE(g.TryTake(2, kT0));
  TimePoint now = kT0;
  for (int n = 1; n <= 3000; ++n) {
    const std::optional<TimePoint> at = g.AvailableAt(1, now);
    ASSERT_TRUE(at.has_value());
    const double ideal_ns = std::ceil(n * 1e9 / 3);
    const double got_ns = static_cast<double>((*at - kT0).count());
    ASSERT_GE(got_ns, ideal_ns - 1) << n;
    ASSERT_LE(got_ns, ideal_ns + 1) << n;
    ASSERT_FALSE(g.TryTake(1, *at - nanoseconds(1))) << n;
    ASSERT_TRUE(g.TryTake(1, *at)) << n;
    now = *at;
  }
  EXPECT_LE(now - kT0, seconds(1000) + nanoseconds(1));
  EXPECT_GE(now - kT0, seconds(1000) - nanoseconds(1));
}

TEST(GcraTest, TimeStandingStillAndGoingBackwards) {
  GcraBucket g(TenPerSecondBurstFive(), kT0);
  ASSERT_TRUE(g.TryTake(5, kT0 + seconds(1)));
  EXPECT_FALSE(g.TryTake(1, kT0));  // Earlier time: no credit.
  EXPECT_FALSE(g.TryTake(1, kT0 + seconds(1)));
  EXPECT_EQ(g.AvailableAt(1, kT0), kT0 + seconds(1) + milliseconds(100));
  EXPECT_TRUE(g.TryTake(1, kT0 + seconds(1) + milliseconds(100)));
}

TEST(GcraTest, HugeTimeJumpsStayFinite) {
  const TimePoint start = TimePoint::min();
  GcraBucket g(RateSpec{1, seconds(3600), 2}, start);
  ASSERT_TRUE(g.TryTake(2, start));
  EXPECT_FALSE(g.TryTake(1, start));
  const TimePoint end = TimePoint::max();
  EXPECT_DOUBLE_EQ(g.TokensAt(end), 2);
  EXPECT_TRUE(g.TryTake(2, end));  // TAT would pass the end of time.
  EXPECT_FALSE(g.TryTake(1, end));
  EXPECT_EQ(g.AvailableAt(1, end), std::nullopt);
  EXPECT_FALSE(std::isnan(g.TokensAt(end)));
}

TEST(GcraTest, ZeroAndInvalidCosts) {
  GcraBucket g(TenPerSecondBurstFive(), kT0);
  ASSERT_TRUE(g.TryTake(5, kT0));
  EXPECT_TRUE(g.TryTake(0, kT0));
  EXPECT_EQ(g.AvailableAt(0, kT0), kT0);
  for (double bad : {kNaN, -1.0, kInf, 1e300}) {
    EXPECT_FALSE(g.TryTake(bad, kT0 + seconds(10))) << bad;
    EXPECT_EQ(g.AvailableAt(bad, kT0), std::nullopt) << bad;
    g.Refund(bad, kT0);
  }
  EXPECT_DOUBLE_EQ(g.TokensAt(kT0 + seconds(10)), 5);
}

TEST(GcraTest, RefundNeverExceedsCapacity) {
  GcraBucket g(TenPerSecondBurstFive(), kT0);
  ASSERT_TRUE(g.TryTake(3, kT0));
  g.Refund(2, kT0);
  EXPECT_DOUBLE_EQ(g.TokensAt(kT0), 4);
  g.Refund(100, kT0);
  EXPECT_DOUBLE_EQ(g.TokensAt(kT0), 5);
  EXPECT_TRUE(g.TryTake(5, kT0));
  EXPECT_FALSE(g.TryTake(1, kT0));
}

// GCRA and the token bucket are the same limiter stored differently. With
// parameters whose arithmetic is exact (whole-ns interval, costs in quarter
// tokens) they must agree on every decision and every prediction.
TEST(GcraTest, AgreesWithTokenBucketOnRandomTraffic) {
  for (uint32_t seed : {1u, 2u, 3u, 42u, 1234u}) {
    std::mt19937 rng(seed);
    const RateSpec spec{
        static_cast<double>(std::uniform_int_distribution<int>(1, 50)(rng)),
        seconds(1),
        static_cast<double>(std::uniform_int_distribution<int>(1, 20)(rng))};
    const double ns_per_token = 1e9 / spec.tokens;
    if (ns_per_token != std::floor(ns_per_token)) continue;
    GcraBucket g(spec, kT0);
    TokenBucket b(spec, kT0);
    TimePoint now = kT0;
    std::uniform_int_distribution<int> step_ms(0, 300);
    std::uniform_int_distribution<int> quarters(0, 12);
    for (int i = 0; i < 5000; ++i) {
      now += milliseconds(step_ms(rng));
      const double cost = quarters(rng) / 4.0;
      // The bucket's level passes through dt / T, which is not always exact
      // (49 ms / 100 ms), so predictions may differ by the 1 ns of rounding
      // the TokenSource contract allows.
      const std::optional<TimePoint> at_g = g.AvailableAt(cost, now);
      const std::optional<TimePoint> at_b = b.AvailableAt(cost, now);
      ASSERT_EQ(at_g.has_value(), at_b.has_value());
      ASSERT_LE(std::chrono::abs(*at_g - *at_b), nanoseconds(1))
          << "seed " << seed << " step " << i;
      const bool took_g = g.TryTake(cost, now);
      const bool took_b = b.TryTake(cost, now);
      ASSERT_EQ(took_g, took_b) << "seed " << seed << " step " << i;
      ASSERT_NEAR(g.TokensAt(now), b.TokensAt(now), 1e-9);
      if (i % 97 == 0) {
        g.Refund(cost, now);
        b.Refund(cost, now);
      }
    }
  }
}

}  // namespace
}  // namespace sluice
