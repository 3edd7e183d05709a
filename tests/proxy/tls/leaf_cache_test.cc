#include "proxy/tls/leaf_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/time/clock.h"
#include "tests/proxy/tls/tls_test_util.h"

namespace sluice {
namespace {

using ::sluice::test::AsTime;
using ::sluice::test::SanEntries;
using ::sluice::test::VerifyLeaf;
using ::testing::ElementsAre;

class LeafCacheTest : public ::testing::Test {
 protected:
  LeafCacheTest() {
    auto ca =
        CertAuthority::Load(test_ca_.cert_path, test_ca_.key_path, &clock_);
    EXPECT_TRUE(ca.ok()) << ca.status();
    if (ca.ok()) authority_ = *std::move(ca);
  }

  X509* LeafOf(const std::shared_ptr<SSL_CTX>& ctx) {
    return SSL_CTX_get0_certificate(ctx.get());
  }

  FakeClock clock_;
  test::TempDir dir_;
  test::TestCa test_ca_ = test::MakeTestCa(dir_, clock_.WallNow());
  std::unique_ptr<CertAuthority> authority_;
};

TEST_F(LeafCacheTest, TheContextPresentsTheNamesLeafWithTheCaAsChain) {
  LeafCache cache(authority_.get(), &clock_);
  auto ctx = cache.Get("API.example.com");
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  X509* leaf = LeafOf(*ctx);
  ASSERT_NE(leaf, nullptr);
  EXPECT_THAT(SanEntries(leaf), ElementsAre("DNS:api.example.com"));
  EXPECT_EQ(VerifyLeaf(leaf, test_ca_.cert.get(), clock_.WallNow(),
                       X509_PURPOSE_SSL_SERVER, "api.example.com"),
            X509_V_OK);
  STACK_OF(X509)* chain = nullptr;
  ASSERT_EQ(SSL_CTX_get0_chain_certs(ctx->get(), &chain), 1);
  ASSERT_EQ(sk_X509_num(chain), 1);
  EXPECT_EQ(X509_cmp(sk_X509_value(chain, 0), test_ca_.cert.get()), 0);
  // The private key is the authority's leaf key.
  EXPECT_EQ(
      EVP_PKEY_eq(SSL_CTX_get0_privatekey(ctx->get()), authority_->leaf_key()),
      1);
}

TEST_F(LeafCacheTest, ASecondGetForTheNameHits) {
  LeafCache cache(authority_.get(), &clock_);
  auto first = cache.Get("api.example.com");
  ASSERT_TRUE(first.ok());
  LeafCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.hits, 0u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.size, 1u);

  auto second = cache.Get("api.example.com");
  auto upper = cache.Get("API.EXAMPLE.COM.");
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(upper.ok());
  EXPECT_EQ(second->get(), first->get());
  EXPECT_EQ(upper->get(), first->get());
  stats = cache.stats();
  EXPECT_EQ(stats.hits, 2u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.size, 1u);

  auto other = cache.Get("other.example.com");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->get(), first->get());
  EXPECT_EQ(cache.stats().misses, 2u);
}

TEST_F(LeafCacheTest, ALeafIsMintedAgainOnceItIsDueForRenewal) {
  // Leaves last 24 h; renewal starts 1 h before the end.
  LeafCache cache(authority_.get(), &clock_, {.renew_before = absl::Hours(1)});
  const absl::Time start = clock_.WallNow();
  auto first = cache.Get("api.example.com");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(AsTime(X509_get0_notAfter(LeafOf(*first))),
            start + absl::Hours(24));

  clock_.Advance(std::chrono::hours(23) - std::chrono::seconds(1));
  auto before = cache.Get("api.example.com");
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->get(), first->get());
  EXPECT_EQ(cache.stats().hits, 1u);

  clock_.Advance(std::chrono::seconds(1));  // 23 h: renew
  auto renewed = cache.Get("api.example.com");
  ASSERT_TRUE(renewed.ok());
  EXPECT_NE(renewed->get(), first->get());
  EXPECT_EQ(AsTime(X509_get0_notAfter(LeafOf(*renewed))),
            clock_.WallNow() + absl::Hours(24));
  LeafCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.misses, 2u);
  EXPECT_EQ(stats.size, 1u);
  // The renewed context is cached in turn.
  auto again = cache.Get("api.example.com");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), renewed->get());
  // The old context lives on for whoever still holds it.
  EXPECT_NE(LeafOf(*first), nullptr);
}

TEST_F(LeafCacheTest, StaysWithinCapacityUnderManyNames) {
  constexpr size_t kCapacity = 100;
  constexpr int kNames = 10000;
  LeafCache cache(authority_.get(), &clock_, {.capacity = kCapacity});
  ASSERT_TRUE(cache.Get("hot.example.com").ok());
  for (int i = 0; i < kNames; ++i) {
    ASSERT_TRUE(cache.Get("host" + std::to_string(i) + ".example.com").ok());
    ASSERT_LE(cache.stats().size, kCapacity) << i;
    // A name in constant use is never the least recently used.
    if (i % 10 == 0) {
      ASSERT_TRUE(cache.Get("hot.example.com").ok());
    }
  }
  LeafCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.size, kCapacity);
  EXPECT_EQ(stats.misses, kNames + 1u);
  EXPECT_EQ(stats.evictions, kNames + 1u - kCapacity);
  EXPECT_EQ(stats.hits, kNames / 10u);
  // The most recent names are cached; the first ones were evicted.
  const uint64_t hits = stats.hits;
  ASSERT_TRUE(
      cache.Get("host" + std::to_string(kNames - 1) + ".example.com").ok());
  EXPECT_EQ(cache.stats().hits, hits + 1);
  ASSERT_TRUE(cache.Get("host0.example.com").ok());
  EXPECT_EQ(cache.stats().misses, kNames + 2u);
}

TEST_F(LeafCacheTest, InvalidNamesAreRefusedWithoutMinting) {
  LeafCache cache(authority_.get(), &clock_);
  for (std::string_view bad :
       {"", "*.example.com", "a b", "a..b", "example.com:443", "127.1",
        "x.example.com/evil", "\xff.example.com"}) {
    auto ctx = cache.Get(bad);
    EXPECT_EQ(ctx.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  LeafCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.misses, 0u);
  EXPECT_EQ(stats.size, 0u);
}

TEST_F(LeafCacheTest, ConcurrentGetsAgreeOnOneContextPerName) {
  LeafCache cache(authority_.get(), &clock_, {.capacity = 8});
  constexpr int kThreads = 4;
  std::vector<std::vector<SSL_CTX*>> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto ctx = cache.Get("h" + std::to_string(i % 4) + ".example.com");
        ASSERT_TRUE(ctx.ok());
        if (i >= 196) seen[t].push_back(ctx->get());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  // After the race, every thread gets the context the cache kept.
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(seen[t], seen[0]);
  LeafCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.size, 4u);
  EXPECT_EQ(stats.hits + stats.misses, kThreads * 200u);
  EXPECT_GE(stats.misses, 4u);
}

}  // namespace
}  // namespace sluice
