#include "proxy/pause/paused_token_source.h"

#include <gtest/gtest.h>

#include <limits>
#include <memory>
#include <string>

#include "common/rate/gcra.h"
#include "common/rate/token_bucket.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using Phase = PauseSchedule::Phase;

const TimePoint kT0 = TimePoint(seconds(1000));
TimePoint At(int ms) { return kT0 + milliseconds(ms); }
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Jitter-free throttle: default pause 1 s, probe timeout 2 s, a 4 s ramp
// from half of 10 requests/s.
BucketPause::Options ThrottleOpts() {
  BucketPause::Options o;
  o.schedule.default_pause = seconds(1);
  o.schedule.max_pause = seconds(60);
  o.schedule.probe_timeout = seconds(2);
  o.schedule.ramp = seconds(4);
  o.schedule.ramp_start = 0.5;
  o.full_rate_per_second = 10;
  o.resume_jitter = Duration::zero();
  return o;
}

// The inner sources under test, with a way to read their level.
enum class Inner { kTokenBucket, kGcra };

std::string InnerName(const testing::TestParamInfo<Inner>& info) {
  return info.param == Inner::kTokenBucket ? "TokenBucket" : "Gcra";
}

class PausedTokenSourceTest : public testing::TestWithParam<Inner> {
 protected:
  // 10 tokens/s (one per 100 ms), burst 5, full at kT0.
  void SetUp() override { Build(RateSpec{10, seconds(1), 5}); }

  void Build(const RateSpec& spec) {
    std::unique_ptr<TokenSource> inner;
    if (GetParam() == Inner::kTokenBucket) {
      auto b = std::make_unique<TokenBucket>(spec, kT0);
      bucket_ = b.get();
      gcra_ = nullptr;
      inner = std::move(b);
    } else {
      auto g = std::make_unique<GcraBucket>(spec, kT0);
      gcra_ = g.get();
      bucket_ = nullptr;
      inner = std::move(g);
    }
    pause_ = std::make_shared<BucketPause>(ThrottleOpts());
    source_ = std::make_unique<PausedTokenSource>(std::move(inner), pause_);
  }

  double TokensAt(TimePoint now) const {
    return bucket_ != nullptr ? bucket_->TokensAt(now) : gcra_->TokensAt(now);
  }

  // Pauses for `pause` from kT0.
  void Pause(Duration pause) {
    ASSERT_EQ(pause_->OnThrottled({.status = 429,
                                   .hint = pause,
                                   .broadcast = false,
                                   .admitted_at = kT0},
                                  kT0),
              kT0 + pause);
  }

  TokenBucket* bucket_ = nullptr;
  GcraBucket* gcra_ = nullptr;
  std::shared_ptr<BucketPause> pause_;
  std::unique_ptr<PausedTokenSource> source_;
};

TEST_P(PausedTokenSourceTest, RunningPassesTakesThrough) {
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(source_->TryTake(1, kT0)) << i;
  EXPECT_FALSE(source_->TryTake(1, kT0));  // the inner source is empty
  EXPECT_NEAR(TokensAt(kT0), 0, 1e-9);
  EXPECT_EQ(source_->AvailableAt(1, kT0), At(100));
  EXPECT_TRUE(source_->TryTake(1, At(100)));
}

TEST_P(PausedTokenSourceTest, PausedRefusesWithoutSpendingTokens) {
  Pause(seconds(1));
  EXPECT_DOUBLE_EQ(TokensAt(kT0), 5);
  EXPECT_FALSE(source_->TryTake(1, kT0));
  EXPECT_FALSE(source_->TryTake(1, At(500)));
  EXPECT_FALSE(source_->TryTake(1, At(999)));
  EXPECT_DOUBLE_EQ(TokensAt(At(999)), 5);
  // At the end: the probe goes and spends one token.
  EXPECT_TRUE(source_->TryTake(1, At(1000)));
  EXPECT_NEAR(TokensAt(At(1000)), 4, 1e-9);
  EXPECT_EQ(pause_->stats().probes, 1u);
}

TEST_P(PausedTokenSourceTest, AvailableAtIsThePauseEndWhenTokensAreThere) {
  Pause(seconds(1));
  EXPECT_EQ(source_->AvailableAt(1, kT0), At(1000));
  EXPECT_EQ(source_->AvailableAt(0, At(300)), At(1000));
  // A backlog goes one probe at the end, then along the ramp.
  EXPECT_GT(source_->AvailableAt(5, At(300)), At(1000));
}

TEST_P(PausedTokenSourceTest, AvailableAtIsTheInnerPredictionWhenLater) {
  ASSERT_TRUE(source_->TryTake(5, kT0));  // empty: 5 tokens by At(500)
  pause_->OnThrottled({.status = 429,
                       .hint = milliseconds(200),
                       .broadcast = false,
                       .admitted_at = kT0},
                      kT0);
  EXPECT_GE(source_->AvailableAt(5, kT0), At(500));
  EXPECT_EQ(source_->AvailableAt(1, kT0), At(200));  // 1 token by At(100)
  // And the pause end when that is later.
  pause_->OnThrottled({.status = 429,
                       .hint = milliseconds(700),
                       .broadcast = false,
                       .admitted_at = kT0},
                      kT0);
  EXPECT_EQ(source_->AvailableAt(1, kT0), At(700));
  EXPECT_GT(source_->AvailableAt(5, kT0), At(700));
}

TEST_P(PausedTokenSourceTest, AvailableAtMatchesTheInnerWhenRunning) {
  ASSERT_TRUE(source_->TryTake(3, kT0));
  EXPECT_EQ(source_->AvailableAt(1, kT0), kT0);
  EXPECT_EQ(source_->AvailableAt(4, kT0), At(200));
}

TEST_P(PausedTokenSourceTest, NulloptFromTheInnerPropagates) {
  EXPECT_FALSE(source_->AvailableAt(-1, kT0).has_value());
  EXPECT_FALSE(source_->AvailableAt(kNaN, kT0).has_value());
  Pause(seconds(1));
  EXPECT_FALSE(source_->AvailableAt(-1, kT0).has_value());
  EXPECT_FALSE(source_->AvailableAt(kNaN, At(1000)).has_value());
}

TEST_P(PausedTokenSourceTest, RefundAndCapacityDelegate) {
  EXPECT_DOUBLE_EQ(source_->Capacity(), 5);
  ASSERT_TRUE(source_->TryTake(4, kT0));
  source_->Refund(2, kT0);
  EXPECT_NEAR(TokensAt(kT0), 3, 1e-9);
  // While paused, too (an admitted request that was not sent).
  Pause(seconds(1));
  source_->Refund(1, kT0);
  EXPECT_NEAR(TokensAt(kT0), 4, 1e-9);
  source_->Refund(10, kT0);  // capped at the burst
  EXPECT_DOUBLE_EQ(TokensAt(kT0), 5);
}

TEST_P(PausedTokenSourceTest, OneProbeUntilItIsAnswered) {
  Pause(seconds(1));
  EXPECT_EQ(source_->AvailableAt(1, At(1000)), At(1000));
  EXPECT_TRUE(source_->TryTake(1, At(1000)));
  EXPECT_FALSE(source_->TryTake(1, At(1000)));
  EXPECT_FALSE(source_->TryTake(1, At(1500)));
  EXPECT_NEAR(TokensAt(At(1000)), 4, 1e-9);  // only the probe spent
  // Awaiting the answer: the guess is the probe timeout.
  EXPECT_EQ(source_->AvailableAt(1, At(1500)), At(3000));
  pause_->OnAnswered(At(1000), At(1600));
  EXPECT_EQ(pause_->PhaseAt(At(1600)), Phase::kRamping);
  EXPECT_EQ(source_->AvailableAt(1, At(1600)), At(1600));
  EXPECT_TRUE(source_->TryTake(1, At(1600)));
}

TEST_P(PausedTokenSourceTest, UnansweredProbeAllowsTakesAfterTheTimeout) {
  Pause(seconds(1));
  ASSERT_TRUE(source_->TryTake(1, At(1000)));
  EXPECT_FALSE(source_->TryTake(1, At(2999)));
  EXPECT_TRUE(source_->TryTake(1, At(3000)));
}

TEST_P(PausedTokenSourceTest, RefusedInnerTakeDoesNotUseUpTheProbe) {
  Pause(seconds(1));
  EXPECT_FALSE(source_->TryTake(-1, At(1000)));  // invalid cost
  EXPECT_FALSE(source_->TryTake(kNaN, At(1000)));
  EXPECT_FALSE(source_->TryTake(6, At(1000)));  // above the burst
  EXPECT_EQ(pause_->stats().probes, 0u);
  EXPECT_TRUE(source_->TryTake(1, At(1000)));
  EXPECT_EQ(pause_->stats().probes, 1u);
}

TEST_P(PausedTokenSourceTest, ProbeWaitsForInnerTokens) {
  ASSERT_TRUE(source_->TryTake(5, kT0));
  Pause(milliseconds(100));  // tokens: 1 at At(100)
  EXPECT_GE(source_->AvailableAt(3, kT0), At(300));
  EXPECT_FALSE(source_->TryTake(3, At(100)));  // inner refuses: no probe
  EXPECT_EQ(pause_->stats().probes, 0u);
  EXPECT_TRUE(source_->TryTake(3, At(300)));
  EXPECT_EQ(pause_->stats().probes, 1u);
  EXPECT_FALSE(source_->TryTake(1, At(500)));  // tokens, but probe out
}

TEST_P(PausedTokenSourceTest, RampPacesTakesAndPredictsTheNextSlot) {
  Build(RateSpec{1000, seconds(1), 100});  // the inner never limits
  Pause(seconds(1));
  ASSERT_TRUE(source_->TryTake(1, At(1000)));
  pause_->OnAnswered(At(1000), At(1000));
  // 10/s * 0.5: 200 ms apart.
  EXPECT_TRUE(source_->TryTake(1, At(1000)));
  EXPECT_FALSE(source_->TryTake(1, At(1100)));
  EXPECT_EQ(source_->AvailableAt(1, At(1100)), At(1200));
  EXPECT_TRUE(source_->TryTake(1, At(1200)));
}

TEST_P(PausedTokenSourceTest, PredictedTimeOfASingleTakeIsHonoured) {
  // Each prediction for a single take is exactly when it succeeds, through
  // the pause, the probe timeout and most of the ramp (its end is covered
  // by BucketThrottleTest.ReadyAtNotLaterThanTheRampEnd).
  Pause(seconds(1));
  TimePoint now = kT0;
  int takes = 0;
  while (now < At(6800)) {
    const std::optional<TimePoint> at = source_->AvailableAt(1, now);
    ASSERT_TRUE(at.has_value());
    ASSERT_GE(*at, now);
    if (*at > now) {
      ASSERT_FALSE(source_->TryTake(1, *at - nanoseconds(1)))
          << (*at - kT0).count();
    }
    ASSERT_TRUE(source_->TryTake(1, *at)) << (*at - kT0).count();
    ++takes;
    now = *at;
  }
  // The probe at 1 s, nothing until 3 s, then ~28 ramp takes by 6.8 s.
  EXPECT_GT(takes, 25);
  EXPECT_LT(takes, 35);
}

TEST_P(PausedTokenSourceTest, InnerLimitsAgainAfterTheRamp) {
  Pause(seconds(1));
  ASSERT_TRUE(source_->TryTake(1, At(1000)));
  pause_->OnAnswered(At(1000), At(1000));
  ASSERT_EQ(pause_->PhaseAt(At(5000)), Phase::kRunning);
  // The burst refilled during the ramp; then 10/s.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(source_->TryTake(1, At(6000))) << i;
  EXPECT_FALSE(source_->TryTake(1, At(6000)));
  EXPECT_EQ(source_->AvailableAt(1, At(6000)), At(6100));
  EXPECT_TRUE(source_->TryTake(1, At(6100)));
}

INSTANTIATE_TEST_SUITE_P(Inners, PausedTokenSourceTest,
                         testing::Values(Inner::kTokenBucket, Inner::kGcra),
                         InnerName);

// While ramping, AvailableAt for a backlog follows the ramp's pace: the
// last take of a back-to-back sequence summing to `cost` succeeds no later
// than AvailableAt(cost) (never too early).
TEST(PausedTokenSourceRampTest, BacklogPredictionDuringTheRampIsNotEarly) {
  auto throttle = std::make_shared<BucketPause>(ThrottleOpts());
  PausedTokenSource source(
      std::make_unique<TokenBucket>(RateSpec{1000, seconds(1), 100}, kT0),
      throttle);
  throttle->OnThrottled({.status = 429,
                         .hint = seconds(1),
                         .broadcast = false,
                         .admitted_at = kT0},
                        kT0);
  ASSERT_TRUE(source.TryTake(1, At(1000)));  // the probe
  throttle->OnAnswered(At(1000), At(1000));
  ASSERT_EQ(throttle->PhaseAt(At(1000)), Phase::kRamping);

  const std::optional<TimePoint> predicted = source.AvailableAt(3, At(1000));
  ASSERT_TRUE(predicted.has_value());
  // Three unit takes, each as soon as it can succeed.
  TimePoint now = At(1000);
  for (int i = 0; i < 3; ++i) {
    now = *source.AvailableAt(1, now);
    ASSERT_TRUE(source.TryTake(1, now)) << i;
  }
  ASSERT_GT(now, At(1300));
  // Offsets from the ramp start.
  EXPECT_GE(*predicted - At(1000), now - At(1000));
}

}  // namespace
}  // namespace sluice
