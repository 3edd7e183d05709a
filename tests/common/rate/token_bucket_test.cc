#include "common/rate/token_bucket.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>

#include "common/rate/token_source_factory.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

const TimePoint kT0 = TimePoint(seconds(1000));
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// 10 tokens a second (one per 100 ms), burst 5.
RateSpec TenPerSecondBurstFive() { return RateSpec{10, seconds(1), 5}; }

TEST(TokenBucketTest, StartsFullAndHonoursBurst) {
  TokenBucket b(TenPerSecondBurstFive(), kT0);
  EXPECT_DOUBLE_EQ(b.Capacity(), 5);
  EXPECT_DOUBLE_EQ(b.TokensAt(kT0), 5);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.TryTake(1, kT0)) << i;
  EXPECT_FALSE(b.TryTake(1, kT0));
  EXPECT_DOUBLE_EQ(b.TokensAt(kT0), 0);
}

TEST(TokenBucketTest, RefillIsContinuousAndExact) {
  TokenBucket b(TenPerSecondBurstFive(), kT0);
  ASSERT_TRUE(b.TryTake(5, kT0));
  EXPECT_DOUBLE_EQ(b.TokensAt(kT0 + milliseconds(50)), 0.5);
  EXPECT_DOUBLE_EQ(b.TokensAt(kT0 + milliseconds(250)), 2.5);
  EXPECT_FALSE(b.TryTake(1, kT0 + milliseconds(100) - nanoseconds(1)));
  EXPECT_TRUE(b.TryTake(1, kT0 + milliseconds(100)));
  EXPECT_FALSE(b.TryTake(1, kT0 + milliseconds(199)));
  EXPECT_TRUE(b.TryTake(1, kT0 + milliseconds(200)));
  EXPECT_DOUBLE_EQ(b.TokensAt(kT0 + milliseconds(200)), 0);
}

TEST(TokenBucketTest, IdleRefillStopsAtBurst) {
  TokenBucket b(TenPerSecondBurstFive(), kT0);
  ASSERT_TRUE(b.TryTake(5, kT0));
  EXPECT_DOUBLE_EQ(b.TokensAt(kT0 + seconds(3600)), 5);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.TryTake(1, kT0 + seconds(3600)));
  EXPECT_FALSE(b.TryTake(1, kT0 + seconds(3600)));
}

TEST(TokenBucketTest, FractionalCosts) {
  TokenBucket b(TenPerSecondBurstFive(), kT0);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(b.TryTake(0.25, kT0)) << i;
  EXPECT_FALSE(b.TryTake(0.25, kT0));
  // 0.25 tokens take 25 ms to earn.
  EXPECT_FALSE(b.TryTake(0.25, kT0 + milliseconds(24)));
  EXPECT_TRUE(b.TryTake(0.25, kT0 + milliseconds(25)));
  EXPECT_EQ(b.AvailableAt(1.5, kT0 + milliseconds(25)),
            kT0 + milliseconds(175));
}

TEST(TokenBucketTest, AvailableAtIsExactAndConsistentWithTryTake) {
  TokenBucket b(TenPerSecondBurstFive(), kT0);
  EXPECT_EQ(b.AvailableAt(5, kT0), kT0);  // Available now.
  ASSERT_TRUE(b.TryTake(4.5, kT0));
  EXPECT_EQ(b.AvailableAt(0.5, kT0), kT0);
  EXPECT_EQ(b.AvailableAt(1, kT0), kT0 + milliseconds(50));
  EXPECT_EQ(b.AvailableAt(2.5, kT0), kT0 + milliseconds(200));
  EXPECT_EQ(b.AvailableAt(0, kT0), kT0);
  const TimePoint at = *b.AvailableAt(2.5, kT0);
  EXPECT_FALSE(b.TryTake(2.5, at - nanoseconds(1)));
  EXPECT_TRUE(b.TryTake(2.5, at));
}

TEST(TokenBucketTest, AvailableAtForBacklogAboveCapacity) {
  TokenBucket b(TenPerSecondBurstFive(), kT0);
  ASSERT_TRUE(b.TryTake(5, kT0));
  // A FIFO backlog of 5 + 5 + 2 tokens completes at 1.2 s, each take exactly
  // when predicted for its prefix sum.
  EXPECT_EQ(b.AvailableAt(12, kT0), kT0 + milliseconds(1200));
  EXPECT_EQ(b.AvailableAt(5, kT0), kT0 + milliseconds(500));
  EXPECT_EQ(b.AvailableAt(10, kT0), kT0 + milliseconds(1000));
  EXPECT_TRUE(b.TryTake(5, kT0 + milliseconds(500)));
  EXPECT_FALSE(b.TryTake(5, kT0 + milliseconds(999)));
  EXPECT_TRUE(b.TryTake(5, kT0 + milliseconds(1000)));
  EXPECT_TRUE(b.TryTake(2, kT0 + milliseconds(1200)));
  // A single take above capacity never succeeds.
  EXPECT_FALSE(b.TryTake(6, kT0 + seconds(100)));
}

// 3 tokens a second: the emission interval (333333333.33 ns) is not a whole
// number of nanoseconds. Admitting as early as possible for 1000 s must give
// exactly 3000 tokens beyond the burst, each within 1 ns of its ideal time:
// no drift.
TEST(TokenBucketTest, NoDriftWithFractionalInterval) {
  // Burst 2, drained: admissions never find the bucket full, so no credit
  // is clipped away (with burst 1 each late-by-<1ns admission would lose
  // that fraction to the capacity limit, as it should).
  TokenBucket b(RateSpec{3, seconds(1), 2}, kT0);
  ASSERT_TRUE(b.TryTake(2, kT0));
  TimePoint now = kT0;
  for (int n = 1; n <= 3000; ++n) {
    const std::optional<TimePoint> at = b.AvailableAt(1, now);
    ASSERT_TRUE(at.has_value());
    const double ideal_ns = std::ceil(n * 1e9 / 3);
    const double got_ns = static_cast<double>((*at - kT0).count());
    ASSERT_GE(got_ns, ideal_ns - 1) << n;
    ASSERT_LE(got_ns, ideal_ns + 1) << n;
    if (*at > now + nanoseconds(1)) {
      ASSERT_FALSE(b.TryTake(1, *at - nanoseconds(1))) << n;
    }
    ASSERT_TRUE(b.TryTake(1, *at)) << n;
    now = *at;
  }
  EXPECT_LE(now - kT0, seconds(1000) + nanoseconds(1));
  EXPECT_GE(now - kT0, seconds(1000) - nanoseconds(1));
}

TEST(TokenBucketTest, TimeStandingStillAndGoingBackwards) {
  TokenBucket b(TenPerSecondBurstFive(), kT0);
  ASSERT_TRUE(b.TryTake(5, kT0 + seconds(1)));
  // An earlier time earns nothing and takes nothing extra.
  EXPECT_FALSE(b.TryTake(1, kT0));
  EXPECT_DOUBLE_EQ(b.TokensAt(kT0), 0);
  EXPECT_EQ(b.AvailableAt(1, kT0), kT0 + seconds(1) + milliseconds(100));
  EXPECT_TRUE(b.TryTake(1, kT0 + seconds(1) + milliseconds(100)));
  // Refund at an old time still credits (never above capacity).
  b.Refund(1, kT0);
  EXPECT_DOUBLE_EQ(b.TokensAt(kT0 + seconds(1) + milliseconds(100)), 1);
}

TEST(TokenBucketTest, HugeTimeJumpsStayFinite) {
  const TimePoint start = TimePoint::min();
  TokenBucket b(RateSpec{1, seconds(3600), 2}, start);
  ASSERT_TRUE(b.TryTake(2, start));
  EXPECT_FALSE(b.TryTake(1, start));
  const TimePoint end = TimePoint::max();
  EXPECT_DOUBLE_EQ(b.TokensAt(end), 2);
  EXPECT_TRUE(b.TryTake(2, end));
  EXPECT_FALSE(b.TryTake(1, end));
  // At the end of time nothing more can be predicted.
  EXPECT_EQ(b.AvailableAt(1, end), std::nullopt);
  EXPECT_EQ(b.AvailableAt(0, end), end);
}

TEST(TokenBucketTest, ZeroCostAlwaysSucceeds) {
  TokenBucket b(TenPerSecondBurstFive(), kT0);
  ASSERT_TRUE(b.TryTake(5, kT0));
  EXPECT_TRUE(b.TryTake(0, kT0));
  EXPECT_EQ(b.AvailableAt(0, kT0), kT0);
  EXPECT_DOUBLE_EQ(b.TokensAt(kT0), 0);
}

TEST(TokenBucketTest, InvalidCostsAreRefused) {
  TokenBucket b(TenPerSecondBurstFive(), kT0);
  for (double bad : {kNaN, -1.0, kInf, -kInf, 1e300}) {
    EXPECT_FALSE(b.TryTake(bad, kT0)) << bad;
    EXPECT_EQ(b.AvailableAt(bad, kT0), std::nullopt) << bad;
    b.Refund(bad, kT0);
    EXPECT_DOUBLE_EQ(b.TokensAt(kT0), 5) << bad;
  }
}

TEST(TokenBucketTest, RefundNeverExceedsCapacity) {
  TokenBucket b(TenPerSecondBurstFive(), kT0);
  ASSERT_TRUE(b.TryTake(3, kT0));
  b.Refund(2, kT0);
  EXPECT_DOUBLE_EQ(b.TokensAt(kT0), 4);
  b.Refund(100, kT0);
  EXPECT_DOUBLE_EQ(b.TokensAt(kT0), 5);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.TryTake(1, kT0));
  EXPECT_FALSE(b.TryTake(1, kT0));
}

// Debt from the rounding tolerance is carried, never forgiven: takes that
// are each a little short succeed only until the debt reaches the tolerance.
TEST(TokenBucketTest, ToleranceDoesNotAccumulate) {
  TokenBucket b(RateSpec{1, seconds(1), 1}, kT0);
  const double tol = token_math::kToleranceFraction;  // burst 1
  const double greedy = 1 + 0.4 * tol;
  EXPECT_TRUE(b.TryTake(greedy, kT0));  // debt 0.4 tol
  EXPECT_LT(b.TokensAt(kT0), 0);
  EXPECT_FALSE(b.TryTake(1, kT0 + seconds(1) - nanoseconds(1)));
  EXPECT_TRUE(b.TryTake(greedy, kT0 + seconds(1)));   // debt 0.8 tol
  EXPECT_FALSE(b.TryTake(greedy, kT0 + seconds(2)));  // would be 1.2 tol
  EXPECT_TRUE(b.TryTake(1, kT0 + seconds(2)));
  EXPECT_GE(b.TokensAt(kT0 + seconds(2)), -tol);
}

TEST(RateSpecTest, Validate) {
  EXPECT_TRUE(ValidateRateSpec(RateSpec{10, seconds(1), 5}).ok());
  EXPECT_TRUE(ValidateRateSpec(RateSpec{0.5, seconds(60), 0.5}).ok());
  EXPECT_FALSE(ValidateRateSpec(RateSpec{0, seconds(1), 5}).ok());
  EXPECT_FALSE(ValidateRateSpec(RateSpec{-1, seconds(1), 5}).ok());
  EXPECT_FALSE(ValidateRateSpec(RateSpec{kNaN, seconds(1), 5}).ok());
  EXPECT_FALSE(ValidateRateSpec(RateSpec{kInf, seconds(1), 5}).ok());
  EXPECT_FALSE(ValidateRateSpec(RateSpec{10, seconds(0), 5}).ok());
  EXPECT_FALSE(ValidateRateSpec(RateSpec{10, seconds(-1), 5}).ok());
  EXPECT_FALSE(ValidateRateSpec(RateSpec{10, seconds(1), 0}).ok());
  EXPECT_FALSE(ValidateRateSpec(RateSpec{10, seconds(1), kNaN}).ok());
  EXPECT_FALSE(ValidateRateSpec(RateSpec{10, seconds(1), kInf}).ok());
  EXPECT_FALSE(ValidateRateSpec(RateSpec{1e16, seconds(1), 5}).ok());
  // One token per 1e22 ns (300k years) is outside the supported range.
  EXPECT_FALSE(ValidateRateSpec(RateSpec{1e-13, seconds(1), 5}).ok());
}

// A rejected spec says which value is wrong, and what it was.
TEST(RateSpecTest, ErrorsNameTheProblem) {
  const auto message = [](const RateSpec& spec) {
    const absl::Status s = ValidateRateSpec(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    return std::string(s.message());
  };
  EXPECT_THAT(message({0, seconds(1), 5}), HasSubstr("rate tokens"));
  EXPECT_THAT(message({-2, seconds(1), 5}), HasSubstr("got -2"));
  EXPECT_THAT(message({1e16, seconds(1), 5}), HasSubstr("<= 1e15"));
  EXPECT_THAT(message({10, seconds(0), 5}), HasSubstr("rate period"));
  EXPECT_THAT(message({10, seconds(1), 0}), HasSubstr("burst"));
  EXPECT_THAT(message({10, seconds(1), kInf}), HasSubstr("got inf"));
  EXPECT_THAT(message({1e-13, seconds(1), 5}), HasSubstr("ns per token"));
}

// Specs that fail validation are clamped: nothing may become NaN, and the
// sources must keep answering.
TEST(RateSpecTest, OutOfRangeSpecsNeverProduceNaN) {
  const RateSpec bad[] = {
      {0, seconds(1), 5},         {kNaN, seconds(1), 5},
      {kInf, seconds(1), 5},      {10, Duration::zero(), 5},
      {10, seconds(-5), 5},       {10, seconds(1), kNaN},
      {10, seconds(1), kInf},     {10, seconds(1), -3},
      {1e300, seconds(1), 1e300}, {1e-300, Duration::max(), 1e-300},
  };
  for (Algorithm alg : {Algorithm::kTokenBucket, Algorithm::kGcra}) {
    for (const RateSpec& spec : bad) {
      std::unique_ptr<TokenSource> s = MakeTokenSource(alg, spec, kT0);
      EXPECT_FALSE(std::isnan(s->Capacity()));
      EXPECT_GE(s->Capacity(), 0);
      for (TimePoint t : {kT0, kT0 + seconds(1), TimePoint::max()}) {
        s->TryTake(1, t);
        s->Refund(0.5, t);
        const std::optional<TimePoint> at = s->AvailableAt(2, t);
        if (at.has_value()) {
          EXPECT_GE(*at, t);
        }
      }
    }
  }
}

}  // namespace
}  // namespace sluice
