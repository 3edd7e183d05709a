#include "proxy/lease/lease_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "proxy/limit/rate_limiter.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

const TimePoint kT0 = TimePoint(seconds(1000));

LeasePool::Options Opts(
    double capacity = 100, double rate = 50,
    UnavailablePolicy policy = UnavailablePolicy::kFallbackShare) {
  LeasePool::Options o;
  o.initial_capacity = capacity;
  o.initial_rate_per_second = rate;
  o.policy = policy;
  return o;
}

// A connected pool.
std::unique_ptr<LeasePool> Connected(LeasePool::Options o = Opts()) {
  auto p = std::make_unique<LeasePool>(o);
  p->SetConnected(true, kT0);
  return p;
}

TEST(LeasePoolTest, ModeNames) {
  EXPECT_EQ(LeaseModeName(LeaseMode::kLeased), "leased");
  EXPECT_EQ(LeaseModeName(LeaseMode::kFallbackShare), "fallback_share");
  EXPECT_EQ(LeaseModeName(LeaseMode::kFailClosed), "fail_closed");
  EXPECT_EQ(LeaseModeName(LeaseMode::kFailOpen), "fail_open");
}

TEST(LeasePoolTest, BatchesExpire) {
  auto p = Connected();
  p->AddGrant(5, kT0 + seconds(1), 10, kT0);
  p->AddGrant(3, kT0 + seconds(2), 10, kT0);
  EXPECT_DOUBLE_EQ(p->Held(kT0), 8);
  EXPECT_DOUBLE_EQ(p->Held(kT0 + seconds(1) - nanoseconds(1)), 8);
  EXPECT_DOUBLE_EQ(p->Held(kT0 + seconds(1)), 3);
  EXPECT_FALSE(p->TryTake(4, kT0 + seconds(1)));
  EXPECT_TRUE(p->TryTake(3, kT0 + seconds(1)));
  EXPECT_DOUBLE_EQ(p->Held(kT0 + seconds(1)), 0);
  // Already dead on arrival: ignored.
  p->AddGrant(7, kT0 + seconds(1), 10, kT0 + seconds(1));
  EXPECT_DOUBLE_EQ(p->Held(kT0 + seconds(1)), 0);
}

TEST(LeasePoolTest, SpendsEarliestExpiringFirst) {
  auto p = Connected();
  p->AddGrant(5, kT0 + seconds(2), 10, kT0);
  p->AddGrant(5, kT0 + seconds(1), 10, kT0);  // Arrives later, dies sooner.
  ASSERT_TRUE(p->TryTake(4, kT0));  // From the 1 s batch: 1 left there.
  EXPECT_DOUBLE_EQ(p->Held(kT0), 6);
  ASSERT_TRUE(p->TryTake(2, kT0 + milliseconds(500)));  // 1 from each.
  EXPECT_DOUBLE_EQ(p->Held(kT0 + milliseconds(999)), 4);
  // The 1 s batch is empty, so nothing dies at 1 s.
  EXPECT_DOUBLE_EQ(p->Held(kT0 + seconds(1)), 4);
  EXPECT_DOUBLE_EQ(p->Held(kT0 + seconds(2)), 0);
}

TEST(LeasePoolTest, RoundingDustDoesNotKeepThePolicyOff) {
  auto p = Connected(Opts(10, 50, UnavailablePolicy::kFailOpen));
  const double tokens = 0.1 + 0.2;  // 0.30000000000000004
  p->AddGrant(tokens, kT0 + seconds(10), 10, kT0);
  p->SetConnected(false, kT0);
  ASSERT_TRUE(p->TryTake(0.1, kT0));
  ASSERT_TRUE(p->TryTake(0.2, kT0));
  // ~4e-17 is left, which is nothing.
  EXPECT_EQ(p->Mode(kT0), LeaseMode::kFailOpen);
  EXPECT_TRUE(p->TryTake(5, kT0));
}

TEST(LeasePoolTest, FailedTakeTakesNothing) {
  auto p = Connected();
  p->AddGrant(2, kT0 + seconds(1), 10, kT0);
  EXPECT_FALSE(p->TryTake(2.5, kT0));
  EXPECT_DOUBLE_EQ(p->Held(kT0), 2);
  EXPECT_TRUE(p->TryTake(0, kT0));
  EXPECT_FALSE(p->TryTake(-1, kT0));
  EXPECT_FALSE(p->TryTake(std::nan(""), kT0));
  EXPECT_FALSE(p->TryTake(std::numeric_limits<double>::infinity(), kT0));
  EXPECT_EQ(p->AvailableAt(-1, kT0), std::nullopt);
  EXPECT_DOUBLE_EQ(p->Held(kT0), 2);
}

TEST(LeasePoolTest, ShrinkDropsLatestExpiringFirst) {
  auto p = Connected();
  p->AddGrant(5, kT0 + seconds(1), 10, kT0);
  p->AddGrant(5, kT0 + seconds(2), 10, kT0);
  EXPECT_DOUBLE_EQ(p->ShrinkTo(20, kT0), 0);
  EXPECT_DOUBLE_EQ(p->ShrinkTo(3, kT0), 7);
  EXPECT_DOUBLE_EQ(p->Held(kT0), 3);
  // What is left is the earliest batch, so nothing survives 1 s.
  EXPECT_DOUBLE_EQ(p->Held(kT0 + seconds(1)), 0);
}

TEST(LeasePoolTest, ShrinkToZeroRevokes) {
  auto p = Connected();
  p->AddGrant(5, kT0 + seconds(1), 10, kT0);
  p->AddGrant(5, kT0 + seconds(2), 10, kT0);
  EXPECT_DOUBLE_EQ(p->ShrinkTo(0, kT0), 10);
  EXPECT_DOUBLE_EQ(p->Held(kT0), 0);
  EXPECT_FALSE(p->TryTake(1, kT0));
}

TEST(LeasePoolTest, MergingBatchesKeepsTheEarlierExpiry) {
  LeasePool::Options o = Opts();
  o.max_batches = 2;
  auto p = Connected(o);
  p->AddGrant(1, kT0 + seconds(1), 10, kT0);
  p->AddGrant(1, kT0 + seconds(2), 10, kT0);
  p->AddGrant(1, kT0 + seconds(3), 10, kT0);
  EXPECT_DOUBLE_EQ(p->Held(kT0), 3);
  // The first two merged and die at 1 s.
  EXPECT_DOUBLE_EQ(p->Held(kT0 + seconds(1)), 1);
  EXPECT_DOUBLE_EQ(p->Held(kT0 + seconds(3)), 0);
}

TEST(LeasePoolTest, RefundGoesToLatestBatchAndNeverAboveCapacity) {
  auto p = Connected(Opts(/*capacity=*/10));
  p->AddGrant(4, kT0 + seconds(1), 10, kT0);
  p->AddGrant(4, kT0 + seconds(2), 10, kT0);
  ASSERT_TRUE(p->TryTake(4, kT0));  // Empties the 1 s batch.
  p->Refund(3, kT0);
  EXPECT_DOUBLE_EQ(p->Held(kT0), 7);
  // Refunded tokens live as long as the latest batch, no longer.
  EXPECT_DOUBLE_EQ(p->Held(kT0 + seconds(1)), 7);
  EXPECT_DOUBLE_EQ(p->Held(kT0 + seconds(2)), 0);

  auto q = Connected(Opts(/*capacity=*/10));
  q->AddGrant(9, kT0 + seconds(1), 10, kT0);
  q->Refund(5, kT0);
  EXPECT_DOUBLE_EQ(q->Held(kT0), 10);  // Capped at capacity.
  q->Refund(-1, kT0);
  q->Refund(std::nan(""), kT0);
  EXPECT_DOUBLE_EQ(q->Held(kT0), 10);

  // No live batch: dropped (no batch with a fresh expiry is made up).
  q->Refund(5, kT0 + seconds(1));
  EXPECT_DOUBLE_EQ(q->Held(kT0 + seconds(1)), 0);
  EXPECT_FALSE(q->TryTake(1, kT0 + seconds(1)));
}

TEST(LeasePoolTest, CapacityFollowsSetLimit) {
  auto p = Connected(Opts(/*capacity=*/7));
  LeasedTokenSource src(std::shared_ptr<LeasePool>(Connected(Opts(3))));
  EXPECT_DOUBLE_EQ(p->Capacity(), 7);
  EXPECT_DOUBLE_EQ(src.Capacity(), 3);
  p->SetLimit(100, 40, UnavailablePolicy::kFallbackShare, 2);
  EXPECT_DOUBLE_EQ(p->Capacity(), 40);
  // Nonsense bursts are ignored.
  p->SetLimit(100, 0, UnavailablePolicy::kFallbackShare, 2);
  p->SetLimit(100, std::nan(""), UnavailablePolicy::kFallbackShare, 2);
  EXPECT_DOUBLE_EQ(p->Capacity(), 40);
}

TEST(LeasePoolTest, PredictionsWhileConnected) {
  auto p = Connected();
  // No share yet: one refresh interval.
  EXPECT_EQ(p->AvailableAt(1, kT0), kT0 + milliseconds(100));
  p->AddGrant(2, kT0 + seconds(10), /*share=*/10, kT0);
  EXPECT_DOUBLE_EQ(p->share_per_second(), 10);
  EXPECT_EQ(p->AvailableAt(2, kT0), kT0);
  EXPECT_EQ(p->AvailableAt(0, kT0), kT0);
  // 3 more at 10/s.
  EXPECT_EQ(p->AvailableAt(5, kT0), kT0 + milliseconds(300));
}

TEST(LeasePoolTest, PredictionDoesNotCountTokensThatDieFirst) {
  auto p = Connected();
  p->AddGrant(2, kT0 + milliseconds(100), /*share=*/10, kT0);
  p->AddGrant(1, kT0 + seconds(10), /*share=*/10, kT0);
  // Counting all 3 held gives 200 ms, but 2 of them die at 100 ms: 4 more
  // are needed, 400 ms.
  EXPECT_EQ(p->AvailableAt(5, kT0), kT0 + milliseconds(400));
}

TEST(LeasePoolTest, OnTokensCalledOutsideTheLockForRealTokens) {
  auto p = std::make_shared<LeasePool>(Opts());
  p->SetConnected(true, kT0);
  int calls = 0;
  double seen = -1;
  // Re-entering the pool would deadlock if the lock were held.
  p->set_on_tokens([&] {
    ++calls;
    seen = p->Held(kT0);
  });
  p->AddGrant(0, kT0 + seconds(1), 10, kT0);
  EXPECT_EQ(calls, 0);
  p->AddGrant(4, kT0 + seconds(1), 10, kT0);
  EXPECT_EQ(calls, 1);
  EXPECT_DOUBLE_EQ(seen, 4);
}

TEST(LeasePoolTest, StartsDisconnectedAtTheLocalRouteLimit) {
  LeasePool p(Opts(/*capacity=*/10, /*rate=*/20));
  EXPECT_EQ(p.Mode(kT0), LeaseMode::kFallbackShare);
  // Burst 1 (no grant yet), 20/s.
  EXPECT_TRUE(p.TryTake(1, kT0));
  EXPECT_FALSE(p.TryTake(1, kT0));
  EXPECT_EQ(p.AvailableAt(1, kT0), kT0 + milliseconds(50));
  EXPECT_TRUE(p.TryTake(1, kT0 + milliseconds(50)));
}

TEST(LeasePoolTest, FallbackShareAfterHeldExpires) {
  auto p = Connected(Opts(/*capacity=*/50, /*rate=*/1000));
  p->SetLimit(100, 50, UnavailablePolicy::kFallbackShare, /*sidecars=*/4);
  p->AddGrant(10, kT0 + seconds(1), /*share=*/20, kT0);
  p->SetConnected(false, kT0);
  // Held tokens are still spent.
  EXPECT_EQ(p->Mode(kT0), LeaseMode::kLeased);
  EXPECT_TRUE(p->TryTake(4, kT0));
  EXPECT_FALSE(p->TryTake(7, kT0));
  // Too few held: the policy takes over when the last batch dies; the
  // fallback bucket (burst 10) then has 7 at once.
  EXPECT_EQ(p->AvailableAt(7, kT0), kT0 + seconds(1));
  const TimePoint t1 = kT0 + seconds(1);
  EXPECT_EQ(p->Mode(t1), LeaseMode::kFallbackShare);
  // Rate min(100 / 4, 20) = 20/s, burst min(50, last grant 10) = 10.
  EXPECT_FALSE(p->TryTake(10.5, t1));
  EXPECT_TRUE(p->TryTake(10, t1));
  EXPECT_FALSE(p->TryTake(0.5, t1));
  EXPECT_EQ(p->AvailableAt(1, t1), t1 + milliseconds(50));
  EXPECT_TRUE(p->TryTake(1, t1 + milliseconds(50)));
  // Refunds go back to the fallback bucket.
  p->Refund(1, t1 + milliseconds(50));
  EXPECT_TRUE(p->TryTake(1, t1 + milliseconds(50)));
}

TEST(LeasePoolTest, FallbackRateIsLimitOverSidecarsWhenShareIsHigher) {
  auto p = Connected();
  p->SetLimit(100, 50, UnavailablePolicy::kFallbackShare, /*sidecars=*/4);
  p->AddGrant(0.25, kT0 + milliseconds(10), /*share=*/80, kT0);
  p->SetConnected(false, kT0);
  const TimePoint t1 = kT0 + milliseconds(10);
  EXPECT_EQ(p->Mode(t1), LeaseMode::kFallbackShare);
  // Burst max(1, 0.25) = 1; rate min(25, 80) = 25/s.
  EXPECT_TRUE(p->TryTake(1, t1));
  EXPECT_EQ(p->AvailableAt(1, t1), t1 + milliseconds(40));
}

TEST(LeasePoolTest, FailClosedSpendsHeldThenRefuses) {
  auto p = Connected();
  p->SetLimit(100, 50, UnavailablePolicy::kFailClosed, 4);
  p->AddGrant(3, kT0 + seconds(1), 20, kT0);
  p->SetConnected(false, kT0);
  EXPECT_EQ(p->Mode(kT0), LeaseMode::kLeased);
  EXPECT_TRUE(p->TryTake(2, kT0));
  EXPECT_EQ(p->AvailableAt(1, kT0), kT0);
  EXPECT_EQ(p->AvailableAt(2, kT0), std::nullopt);
  const TimePoint t1 = kT0 + seconds(1);
  EXPECT_EQ(p->Mode(t1), LeaseMode::kFailClosed);
  EXPECT_FALSE(p->TryTake(0.1, t1));
  EXPECT_TRUE(p->TryTake(0, t1));
  EXPECT_EQ(p->AvailableAt(0.1, t1), std::nullopt);
  EXPECT_EQ(p->AvailableAt(1, t1 + seconds(60)), std::nullopt);
}

TEST(LeasePoolTest, FailOpenAdmitsEverythingOnceHeldIsGone) {
  auto p = Connected();
  p->SetLimit(100, 50, UnavailablePolicy::kFailOpen, 4);
  p->AddGrant(3, kT0 + seconds(1), 20, kT0);
  p->SetConnected(false, kT0);
  EXPECT_EQ(p->Mode(kT0), LeaseMode::kLeased);
  EXPECT_EQ(p->AvailableAt(5, kT0), kT0 + seconds(1));
  ASSERT_TRUE(p->TryTake(3, kT0));
  // Spent, not expired: the policy applies at once.
  EXPECT_EQ(p->Mode(kT0), LeaseMode::kFailOpen);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(p->TryTake(50, kT0));
  EXPECT_EQ(p->AvailableAt(50, kT0), kT0);
}

TEST(LeasePoolTest, ReconnectReturnsToLeased) {
  auto p = Connected();
  p->SetLimit(100, 50, UnavailablePolicy::kFailOpen, 4);
  p->SetConnected(false, kT0);
  EXPECT_EQ(p->Mode(kT0), LeaseMode::kFailOpen);
  EXPECT_TRUE(p->TryTake(10, kT0));
  p->SetConnected(true, kT0 + seconds(1));
  EXPECT_EQ(p->Mode(kT0 + seconds(1)), LeaseMode::kLeased);
  EXPECT_FALSE(p->TryTake(10, kT0 + seconds(1)));
  p->AddGrant(10, kT0 + seconds(2), 20, kT0 + seconds(1));
  EXPECT_TRUE(p->TryTake(10, kT0 + seconds(1)));

  // Fallback: the bucket is spent while away, and not used once back.
  p->SetLimit(100, 50, UnavailablePolicy::kFallbackShare, 1);
  p->SetConnected(false, kT0 + seconds(1));
  EXPECT_EQ(p->Mode(kT0 + seconds(1)), LeaseMode::kFallbackShare);
  EXPECT_TRUE(p->TryTake(10, kT0 + seconds(1)));
  p->SetConnected(true, kT0 + seconds(1));
  EXPECT_EQ(p->Mode(kT0 + seconds(1)), LeaseMode::kLeased);
  EXPECT_FALSE(p->TryTake(0.5, kT0 + seconds(100)));
}

TEST(LeasePoolTest, TimeGoingBackwardsStandsStill) {
  auto p = Connected();
  p->AddGrant(5, kT0 + seconds(1), 10, kT0);
  EXPECT_DOUBLE_EQ(p->Held(kT0 + seconds(1)), 0);
  EXPECT_DOUBLE_EQ(p->Held(kT0), 0);
  EXPECT_FALSE(p->TryTake(1, kT0));
}

TEST(LeasePoolTest, LimiterQueuesOnPredictionAndAdmitsOnGrant) {
  auto pool = std::make_shared<LeasePool>(Opts());
  pool->SetConnected(true, kT0);
  pool->AddGrant(1, kT0 + seconds(5), /*share=*/10, kT0);
  RateLimiter limiter(std::make_unique<LeasedTokenSource>(pool), {});
  EXPECT_EQ(limiter.Acquire(1, seconds(1), kT0).outcome,
            AcquireOutcome::kAdmitted);
  AcquireResult q = limiter.Acquire(2, seconds(1), kT0);
  ASSERT_EQ(q.outcome, AcquireOutcome::kQueued);
  EXPECT_EQ(q.admit_at, kT0 + milliseconds(200));
  EXPECT_TRUE(limiter.Poll(kT0 + milliseconds(100)).admitted.empty());
  pool->AddGrant(2, kT0 + seconds(5), 10, kT0 + milliseconds(100));
  EXPECT_EQ(limiter.Poll(kT0 + milliseconds(100)).admitted,
            std::vector<uint64_t>{q.ticket});
}

// Property: over random grants, takes, refunds and shrinks, a connected
// pool's prediction is consistent with TryTake at `now`, never earlier than
// the share pace allows, and met when the server keeps pace (grants share * g
// at the start of every interval g).
TEST(LeasePoolPropertyTest, PredictionsAreNeverEarly) {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    auto p = Connected(Opts(/*capacity=*/1000));
    TimePoint now = kT0;
    double share = 1 + 99 * u(rng);
    for (int step = 0; step < 20; ++step) {
      now += nanoseconds(static_cast<int64_t>(2e8 * u(rng)));
      const double r = u(rng);
      if (r < 0.5) {
        share = 1 + 99 * u(rng);
        p->AddGrant(20 * u(rng),
                    now + nanoseconds(static_cast<int64_t>(1 + 2e9 * u(rng))),
                    share, now);
      } else if (r < 0.8) {
        p->TryTake(10 * u(rng), now);
      } else if (r < 0.9) {
        p->Refund(5 * u(rng), now);
      } else {
        p->ShrinkTo(30 * u(rng), now);
      }
    }
    const double cost = 60 * u(rng);
    const double held = p->Held(now);
    const std::optional<TimePoint> at = p->AvailableAt(cost, now);
    ASSERT_TRUE(at.has_value()) << seed;
    ASSERT_GE(*at, now);
    if (cost > held + 1e-6) {
      ASSERT_GT(*at, now) << seed;
      // Never before the missing tokens could arrive at the share pace.
      const double min_ns = (cost - held) / share * 1e9;
      ASSERT_GE(static_cast<double>((*at - now).count()), min_ns - 1) << seed;
    }
    // The server keeps pace: tokens for each interval arrive at its start
    // and live past the prediction.
    // At most ~30 paced grants, so that with the history's batches the
    // pool stays under max_batches (merging would shorten lives).
    const Duration g = (*at - now) / (1 + rng() % 30) + nanoseconds(1);
    const TimePoint dies = *at + seconds(1);
    for (TimePoint t = now; t <= *at; t += g) {
      p->AddGrant(share * std::chrono::duration<double>(g).count(), dies, share,
                  t);
    }
    ASSERT_TRUE(p->TryTake(cost, *at))
        << "seed " << seed << " cost " << cost << " held " << held;
  }
}

// Two threads take while a third grants: nothing is taken twice and nothing
// beyond what was granted.
TEST(LeasePoolConcurrencyTest, TakersNeverGetMoreThanGranted) {
  auto pool = std::make_shared<LeasePool>(Opts(/*capacity=*/1e9));
  pool->SetConnected(true, kT0);
  constexpr int kGrants = 20000;
  std::atomic<bool> done{false};
  std::atomic<int64_t> taken{0};
  auto taker = [&] {
    int64_t mine = 0;
    while (!done.load(std::memory_order_acquire) || pool->Held(kT0) >= 1) {
      if (pool->TryTake(1, kT0)) ++mine;
    }
    taken.fetch_add(mine);
  };
  std::thread a(taker), b(taker);
  std::thread granter([&] {
    for (int i = 0; i < kGrants; ++i) {
      pool->AddGrant(1, kT0 + seconds(10), 1, kT0);
    }
    done.store(true, std::memory_order_release);
  });
  granter.join();
  a.join();
  b.join();
  EXPECT_LE(taken.load(), kGrants);
  EXPECT_DOUBLE_EQ(taken.load() + pool->Held(kT0), kGrants);
  EXPECT_EQ(taken.load(), kGrants);  // The takers drained the pool.
}

}  // namespace
}  // namespace sluice
