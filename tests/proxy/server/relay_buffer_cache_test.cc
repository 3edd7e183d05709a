#include "proxy/server/relay_buffer_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace sluice {
namespace {

TEST(RelayBufferCacheTest, AGivenBufferIsTakenAgainOnTheSameThread) {
  std::unique_ptr<char[]> a = RelayBufferCache::Take(1024);
  char* const raw = a.get();
  RelayBufferCache::Give(std::move(a), 1024);
  EXPECT_EQ(RelayBufferCache::KeptOnThisThread(), 1u);
  std::unique_ptr<char[]> b = RelayBufferCache::Take(1024);
  EXPECT_EQ(b.get(), raw);
  EXPECT_EQ(RelayBufferCache::KeptOnThisThread(), 0u);
  RelayBufferCache::Give(std::move(b), 1024);
}

TEST(RelayBufferCacheTest, KeepsAtMostAFewPerThreadOfOneSize) {
  std::vector<std::unique_ptr<char[]>> many;
  for (int i = 0; i < 10; ++i) many.push_back(RelayBufferCache::Take(2048));
  for (auto& b : many) RelayBufferCache::Give(std::move(b), 2048);
  EXPECT_EQ(RelayBufferCache::KeptOnThisThread(), RelayBufferCache::kPerThread);
  // Another size replaces what was kept.
  RelayBufferCache::Give(RelayBufferCache::Take(4096), 4096);
  EXPECT_EQ(RelayBufferCache::KeptOnThisThread(), 1u);
}

}  // namespace
}  // namespace sluice
