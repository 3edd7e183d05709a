#include "proxy/limit/keyed_limiter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/rate/token_bucket.h"
#include "common/rate/token_source_factory.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const TimePoint kT0 = TimePoint(seconds(1000));

// One token every 100 ms, burst 2.
KeyedLimiterSet::SourceFactory TenPerSecondBurstTwo(int* created = nullptr) {
  return [created](const std::string&, TimePoint now) {
    if (created != nullptr) ++*created;
    return MakeTokenSource(Algorithm::kTokenBucket, RateSpec{10, seconds(1), 2},
                           now);
  };
}

std::string H(std::string_view raw) { return KeyedLimiterSet::HashKey(raw); }

TEST(KeyedLimiterHashTest, KnownVectorsAndShape) {
  // SHA-256("abc") and SHA-256("") from FIPS 180-2, first 16 bytes.
  EXPECT_EQ(H("abc"), "ba7816bf8f01cfea414140de5dae2223");
  EXPECT_EQ(H(""), "e3b0c44298fc1c149afbf4c8996fb924");
  const std::string h = H("Bearer sk-live-0123456789");
  EXPECT_EQ(h.size(), 32u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(h, H("Bearer sk-live-0123456789"));
  EXPECT_NE(h, H("Bearer sk-live-0123456780"));
  // Binary-safe: embedded NULs count.
  EXPECT_NE(H(std::string_view("a\0b", 3)), H(std::string_view("a\0c", 3)));
}

TEST(KeyedLimiterSetTest, SameKeySameLimiterDifferentKeysIndependent) {
  int created = 0;
  KeyedLimiterSet set(10, {}, TenPerSecondBurstTwo(&created));
  auto a1 = set.GetOrCreate("Bearer alice", kT0);
  auto a2 = set.GetOrCreate("Bearer alice", kT0);
  auto b = set.GetOrCreate("Bearer bob", kT0);
  ASSERT_NE(a1, nullptr);
  EXPECT_EQ(a1, a2);
  EXPECT_NE(a1, b);
  EXPECT_EQ(created, 2);
  EXPECT_EQ(set.size(), 2u);
  // Alice drains her bucket; Bob's is untouched.
  EXPECT_EQ(a1->Acquire(2, Duration::zero(), kT0).outcome,
            AcquireOutcome::kAdmitted);
  EXPECT_EQ(a2->Acquire(1, Duration::zero(), kT0).outcome,
            AcquireOutcome::kRejectedWait);
  EXPECT_EQ(b->Acquire(2, Duration::zero(), kT0).outcome,
            AcquireOutcome::kAdmitted);
}

TEST(KeyedLimiterSetTest, StateSurvivesBetweenLookups) {
  KeyedLimiterSet set(10, {}, TenPerSecondBurstTwo());
  ASSERT_EQ(
      set.GetOrCreate("k", kT0)->Acquire(2, Duration::zero(), kT0).outcome,
      AcquireOutcome::kAdmitted);
  // The pointer was dropped, but the key's bucket is remembered.
  EXPECT_EQ(
      set.GetOrCreate("k", kT0)->Acquire(1, Duration::zero(), kT0).outcome,
      AcquireOutcome::kRejectedWait);
  EXPECT_EQ(set.GetOrCreate("k", kT0 + milliseconds(100))
                ->Acquire(1, Duration::zero(), kT0 + milliseconds(100))
                .outcome,
            AcquireOutcome::kAdmitted);
}

TEST(KeyedLimiterSetTest, RawKeyIsNeverKept) {
  KeyedLimiterSet set(10, {}, TenPerSecondBurstTwo());
  const std::string raw = "Bearer sk-SECRET-do-not-store";
  ASSERT_NE(set.GetOrCreate(raw, kT0), nullptr);
  const std::vector<std::string> keys = set.HashedKeys();
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0], H(raw));
  EXPECT_EQ(keys[0].find("SECRET"), std::string::npos);
  EXPECT_EQ(keys[0].find("Bearer"), std::string::npos);
}

TEST(KeyedLimiterSetTest, EvictsLeastRecentlyUsedInOrder) {
  KeyedLimiterSet set(3, {}, TenPerSecondBurstTwo());
  ASSERT_NE(set.GetOrCreate("a", kT0), nullptr);
  ASSERT_NE(set.GetOrCreate("b", kT0), nullptr);
  ASSERT_NE(set.GetOrCreate("c", kT0), nullptr);
  EXPECT_EQ(set.HashedKeys(),
            (std::vector<std::string>{H("c"), H("b"), H("a")}));
  // Touch a: b is now the least recently used.
  ASSERT_NE(set.GetOrCreate("a", kT0), nullptr);
  ASSERT_NE(set.GetOrCreate("d", kT0), nullptr);
  EXPECT_EQ(set.evictions(), 1u);
  EXPECT_EQ(set.HashedKeys(),
            (std::vector<std::string>{H("d"), H("a"), H("c")}));
  ASSERT_NE(set.GetOrCreate("e", kT0), nullptr);  // evicts c
  ASSERT_NE(set.GetOrCreate("f", kT0), nullptr);  // evicts a
  EXPECT_EQ(set.evictions(), 3u);
  EXPECT_EQ(set.size(), 3u);
  EXPECT_EQ(set.HashedKeys(),
            (std::vector<std::string>{H("f"), H("e"), H("d")}));
}

TEST(KeyedLimiterSetTest, EvictedKeyStartsAgainWithAFullBucket) {
  KeyedLimiterSet set(1, {}, TenPerSecondBurstTwo());
  ASSERT_EQ(
      set.GetOrCreate("a", kT0)->Acquire(2, Duration::zero(), kT0).outcome,
      AcquireOutcome::kAdmitted);
  ASSERT_NE(set.GetOrCreate("b", kT0), nullptr);  // evicts a
  EXPECT_EQ(
      set.GetOrCreate("a", kT0)->Acquire(2, Duration::zero(), kT0).outcome,
      AcquireOutcome::kAdmitted);
  EXPECT_EQ(set.evictions(), 2u);
}

TEST(KeyedLimiterSetTest, BusyLimitersAreNotEvicted) {
  KeyedLimiterSet set(3, {}, TenPerSecondBurstTwo());
  // a: a request is queued (and its owner holds the pointer, as it must).
  std::shared_ptr<RateLimiter> a = set.GetOrCreate("a", kT0);
  ASSERT_EQ(a->Acquire(2, Duration::zero(), kT0).outcome,
            AcquireOutcome::kAdmitted);
  AcquireResult queued = a->Acquire(1, seconds(1), kT0);
  ASSERT_EQ(queued.outcome, AcquireOutcome::kQueued);
  // b: idle, but someone still holds it (a request in flight).
  std::shared_ptr<RateLimiter> b = set.GetOrCreate("b", kT0);
  // c: idle and unreferenced.
  ASSERT_NE(set.GetOrCreate("c", kT0), nullptr);

  // a and b are older than c, but only c can go.
  ASSERT_NE(set.GetOrCreate("d", kT0), nullptr);
  EXPECT_EQ(set.evictions(), 1u);
  std::vector<std::string> keys = set.HashedKeys();
  EXPECT_EQ(std::count(keys.begin(), keys.end(), H("c")), 0);
  EXPECT_EQ(std::count(keys.begin(), keys.end(), H("a")), 1);
  EXPECT_EQ(std::count(keys.begin(), keys.end(), H("b")), 1);
  // The same limiter still serves a's key: one FIFO per key.
  EXPECT_EQ(set.GetOrCreate("a", kT0), a);

  // d is referenced only by the set; hold it so nothing is evictable.
  std::shared_ptr<RateLimiter> d = set.GetOrCreate("d", kT0);
  EXPECT_EQ(set.GetOrCreate("e", kT0), nullptr);
  EXPECT_EQ(set.size(), 3u);
  EXPECT_EQ(set.evictions(), 1u);

  // Once a's queue drains and its pointer is dropped, it can be evicted.
  RateLimiter::PollResult p = a->Poll(queued.admit_at);
  ASSERT_EQ(p.admitted, std::vector<uint64_t>{queued.ticket});
  a.reset();
  std::shared_ptr<RateLimiter> e = set.GetOrCreate("e", kT0);
  ASSERT_NE(e, nullptr);
  keys = set.HashedKeys();
  EXPECT_EQ(std::count(keys.begin(), keys.end(), H("a")), 0);
  EXPECT_EQ(std::count(keys.begin(), keys.end(), H("b")), 1);
  EXPECT_EQ(set.evictions(), 2u);
}

TEST(KeyedLimiterSetTest, QueuedLimiterIsKeptEvenIfOwnerDroppedPointer) {
  KeyedLimiterSet set(1, {}, TenPerSecondBurstTwo());
  {
    std::shared_ptr<RateLimiter> a = set.GetOrCreate("a", kT0);
    ASSERT_EQ(a->Acquire(2, Duration::zero(), kT0).outcome,
              AcquireOutcome::kAdmitted);
    ASSERT_EQ(a->Acquire(1, seconds(1), kT0).outcome, AcquireOutcome::kQueued);
  }
  EXPECT_EQ(set.GetOrCreate("b", kT0), nullptr);
  EXPECT_EQ(set.GetOrCreate("a", kT0)->queue_depth(), 1u);
}

// Busy entries met while probing move to the front, so repeated calls reach
// idle entries deeper than kMaxEvictionProbes.
TEST(KeyedLimiterSetTest, EvictionProbesAreBoundedButMakeProgress) {
  const size_t n = KeyedLimiterSet::kMaxEvictionProbes * 2;
  KeyedLimiterSet set(n + 1, {}, TenPerSecondBurstTwo());
  ASSERT_NE(set.GetOrCreate("idle", kT0), nullptr);  // oldest
  std::vector<std::shared_ptr<RateLimiter>> held;
  for (size_t i = 0; i < n; ++i) {
    held.push_back(set.GetOrCreate("busy" + std::to_string(i), kT0));
  }
  // Make "idle" the most recently used, behind 2 * probes busy entries.
  ASSERT_NE(set.GetOrCreate("idle", kT0), nullptr);
  EXPECT_EQ(set.GetOrCreate("new1", kT0), nullptr);  // probes 16 busy
  EXPECT_EQ(set.GetOrCreate("new1", kT0), nullptr);  // probes the next 16
  EXPECT_NE(set.GetOrCreate("new1", kT0), nullptr);  // reaches "idle"
  EXPECT_EQ(set.evictions(), 1u);
  std::vector<std::string> keys = set.HashedKeys();
  EXPECT_EQ(std::count(keys.begin(), keys.end(), H("idle")), 0);
}

TEST(KeyedLimiterSetTest, ZeroCapacityAndFailingFactory) {
  KeyedLimiterSet none(0, {}, TenPerSecondBurstTwo());
  EXPECT_EQ(none.GetOrCreate("a", kT0), nullptr);
  KeyedLimiterSet broken(10, {}, [](const std::string&, TimePoint) {
    return std::unique_ptr<TokenSource>();
  });
  EXPECT_EQ(broken.GetOrCreate("a", kT0), nullptr);
  EXPECT_EQ(broken.size(), 0u);
}

TEST(KeyedLimiterSetTest, LimiterOptionsApplyToEveryKey) {
  RateLimiterOptions opts;
  opts.max_queue = 1;
  KeyedLimiterSet set(10, opts, TenPerSecondBurstTwo());
  auto a = set.GetOrCreate("a", kT0);
  ASSERT_EQ(a->Acquire(2, Duration::zero(), kT0).outcome,
            AcquireOutcome::kAdmitted);
  EXPECT_EQ(a->Acquire(1, seconds(5), kT0).outcome, AcquireOutcome::kQueued);
  EXPECT_EQ(a->Acquire(1, seconds(5), kT0).outcome,
            AcquireOutcome::kRejectedQueueFull);
}

TEST(KeyedLimiterSetTest, FactoryAndHookSeeTheHashNeverTheRawKey) {
  std::vector<std::string> made;
  std::vector<std::string> hooked;
  std::vector<std::weak_ptr<RateLimiter>> seen;
  KeyedLimiterSet set(
      1, {},
      [&made](const std::string& key_hash, TimePoint now) {
        made.push_back(key_hash);
        return MakeTokenSource(Algorithm::kTokenBucket,
                               RateSpec{10, seconds(1), 2}, now);
      },
      [&](const std::string& key_hash,
          const std::shared_ptr<RateLimiter>& limiter) {
        hooked.push_back(key_hash);
        seen.push_back(limiter);
      });
  auto a = set.GetOrCreate("Bearer secret-a", kT0);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(made, std::vector<std::string>{H("Bearer secret-a")});
  EXPECT_EQ(hooked, made);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].lock(), a);
  // A hit creates nothing.
  EXPECT_EQ(set.GetOrCreate("Bearer secret-a", kT0), a);
  EXPECT_EQ(made.size(), 1u);
  // The hook's weak_ptr does not pin the limiter: once idle it is evicted
  // and the weak_ptr expires.
  a.reset();
  ASSERT_NE(set.GetOrCreate("Bearer secret-b", kT0), nullptr);
  EXPECT_EQ(set.evictions(), 1u);
  EXPECT_TRUE(seen[0].expired());
  EXPECT_EQ(hooked, (std::vector<std::string>{H("Bearer secret-a"),
                                              H("Bearer secret-b")}));
}

// Two threads, more keys than room: no crash, no use after free (run under
// ASan), bound respected, every key that gets a limiter can use it.
TEST(KeyedLimiterSetTest, ConcurrentChurnIsSafe) {
  KeyedLimiterSet set(8, {}, TenPerSecondBurstTwo());
  std::atomic<int> admitted{0};
  auto worker = [&](int id) {
    for (int i = 0; i < 3000; ++i) {
      std::shared_ptr<RateLimiter> l =
          set.GetOrCreate("key" + std::to_string((i * 7 + id) % 32), kT0);
      if (l == nullptr) continue;
      if (l->Acquire(1, Duration::zero(), kT0).outcome ==
          AcquireOutcome::kAdmitted) {
        admitted.fetch_add(1);
      }
    }
  };
  std::thread t1(worker, 0);
  std::thread t2(worker, 1);
  t1.join();
  t2.join();
  EXPECT_LE(set.size(), 8u);
  EXPECT_GT(set.evictions(), 0u);
  EXPECT_GT(admitted.load(), 0);
}

}  // namespace
}  // namespace sluice
