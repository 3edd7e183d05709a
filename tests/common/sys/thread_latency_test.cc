#include "common/sys/thread_latency.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace sluice {
namespace {

using std::chrono::microseconds;

int ThreadNice() {
  return getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
}

TEST(ThreadLatencyTest, ASliceIsAskedForOnlyForTheCallingThread) {
  std::thread([] {
    const microseconds before = CurrentSlice();
    ASSERT_TRUE(RequestShortSlice(microseconds(100)).ok());
    const microseconds after = CurrentSlice();
    // Kernels before 6.12 take the request and report no slice.
    if (after.count() != 0) {
      EXPECT_EQ(after, microseconds(100));
      EXPECT_NE(after, before);
    }
  }).join();
  // This thread kept its own.
  EXPECT_NE(CurrentSlice(), microseconds(100));
}

TEST(ThreadLatencyTest, NiceIsKept) {
  std::thread([] {
    // A lowered priority stays lowered (raising it back would need
    // privilege, and is not what was asked).
    ASSERT_EQ(
        setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 5),
        0);
    ASSERT_TRUE(RequestShortSlice(microseconds(200)).ok());
    EXPECT_EQ(ThreadNice(), 5);
  }).join();
}

TEST(ThreadLatencyTest, ANonPositiveSliceIsRefused) {
  EXPECT_FALSE(RequestShortSlice(microseconds(0)).ok());
  EXPECT_FALSE(RequestShortSlice(microseconds(-5)).ok());
}

}  // namespace
}  // namespace sluice
