#include "proxy/lease/leased_keys.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "proxy/limit/keyed_limiter.h"
#include "proxy/limit/rate_limiter.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const TimePoint kT0 = TimePoint(seconds(1000));

// A KeyedLimiterSet wired to LeasedKeySources the way the proxy wires it.
class LeasedKeySourcesTest : public ::testing::Test {
 protected:
  LeasedKeySourcesTest()
      : sources_(std::make_shared<LeasedKeySources>(
            "api", Options(),
            [this](const std::weak_ptr<RateLimiter>& l) {
              kicked_.push_back(l);
            })),
        set_(
            2, {},
            [s = sources_](const std::string& h, TimePoint now) {
              return s->MakeSource(h, now);
            },
            [s = sources_](const std::string& h,
                           const std::shared_ptr<RateLimiter>& l) {
              s->OnCreated(h, l);
            }) {
    sources_->set_lease([this](LeaseBinding b) { bound_.push_back(b); },
                        [this] { return connected_; });
  }

  static LeasePool::Options Options() {
    LeasePool::Options o;
    o.initial_capacity = 3;
    o.initial_rate_per_second = 1;
    o.policy = UnavailablePolicy::kFailClosed;
    return o;
  }

  std::shared_ptr<LeasedKeySources> sources_;
  KeyedLimiterSet set_;
  std::vector<LeaseBinding> bound_;
  std::vector<std::weak_ptr<RateLimiter>> kicked_;
  bool connected_ = false;
};

TEST_F(LeasedKeySourcesTest, EachKeyGetsItsOwnBoundPool) {
  auto a = set_.GetOrCreate("Bearer key-a", kT0);
  auto b = set_.GetOrCreate("Bearer key-b", kT0);
  set_.GetOrCreate("Bearer key-a", kT0);  // a hit binds nothing
  ASSERT_EQ(bound_.size(), 2u);
  EXPECT_EQ(bound_[0].resource, "api");
  EXPECT_EQ(bound_[0].key_hash, KeyedLimiterSet::HashKey("Bearer key-a"));
  EXPECT_EQ(bound_[1].key_hash, KeyedLimiterSet::HashKey("Bearer key-b"));
  EXPECT_EQ(bound_[0].limiter.lock(), a);
  EXPECT_EQ(bound_[1].limiter.lock(), b);
  ASSERT_NE(bound_[0].pool, nullptr);
  EXPECT_NE(bound_[0].pool, bound_[1].pool);
  EXPECT_DOUBLE_EQ(bound_[0].pool->Capacity(), 3);
  // A grant to a's pool is spent by a only, and kicks a's limiter.
  bound_[0].pool->SetConnected(true, kT0);
  bound_[1].pool->SetConnected(true, kT0);
  bound_[0].pool->AddGrant(2, kT0 + seconds(1), 1, kT0);
  ASSERT_EQ(kicked_.size(), 1u);
  EXPECT_EQ(kicked_[0].lock(), a);
  EXPECT_EQ(a->Acquire(2, Duration::zero(), kT0).outcome,
            AcquireOutcome::kAdmitted);
  EXPECT_NE(b->Acquire(1, Duration::zero(), kT0).outcome,
            AcquireOutcome::kAdmitted);
}

TEST_F(LeasedKeySourcesTest, KeyCreatedWhileConnectedSpendsOnlyLeasedTokens) {
  ASSERT_NE(set_.GetOrCreate("offline", kT0), nullptr);
  connected_ = true;
  auto b = set_.GetOrCreate("online", kT0);
  ASSERT_EQ(bound_.size(), 2u);
  // Disconnected at birth: the policy (fail_closed here) applies.
  EXPECT_EQ(bound_[0].pool->Mode(kT0), LeaseMode::kFailClosed);
  // Connected at birth: no local burst, it waits for its first grant.
  EXPECT_EQ(bound_[1].pool->Mode(kT0), LeaseMode::kLeased);
  EXPECT_EQ(b->Acquire(1, Duration::zero(), kT0).outcome,
            AcquireOutcome::kRejectedWait);
}

TEST_F(LeasedKeySourcesTest, BindingsDoNotKeepEvictedLimitersAlive) {
  set_.GetOrCreate("k1", kT0);
  set_.GetOrCreate("k2", kT0);
  ASSERT_NE(set_.GetOrCreate("k3", kT0), nullptr);  // evicts k1
  EXPECT_EQ(set_.evictions(), 1u);
  ASSERT_EQ(bound_.size(), 3u);
  EXPECT_TRUE(bound_[0].limiter.expired());
  // Tokens arriving for the evicted key kick nothing alive.
  bound_[0].pool->AddGrant(1, kT0 + seconds(1), 1, kT0);
  ASSERT_EQ(kicked_.size(), 1u);
  EXPECT_TRUE(kicked_[0].expired());
}

}  // namespace
}  // namespace sluice
