#include "common/sys/thread_latency.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace sluice {
namespace {

using std::chrono::microseconds;

int ThreadNice() {
  return getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
}

// Whether a kernel of `release` (uname -r: "6.12.3-arch1", "5.15.0-91")
// takes a SCHED_OTHER thread's slice from sched_runtime: Linux 6.12 and
// later (EEVDF). Older kernels accept the field and ignore it.
bool KernelTakesSlices(const std::string& release) {
  int major = 0;
  int minor = 0;
  if (std::sscanf(release.c_str(), "%d.%d", &major, &minor) != 2) {
    ADD_FAILURE() << "unreadable kernel release " << release;
    return false;
  }
  return major > 6 || (major == 6 && minor >= 12);
}

bool ThisKernelTakesSlices() {
  utsname u{};
  if (uname(&u) != 0) {
    ADD_FAILURE() << "uname failed";
    return false;
  }
  return KernelTakesSlices(u.release);
}

TEST(ThreadLatencyTest, KernelReleasesAreRead) {
  EXPECT_FALSE(KernelTakesSlices("5.15.0-91-generic"));
  EXPECT_FALSE(KernelTakesSlices("6.11.10"));
  EXPECT_TRUE(KernelTakesSlices("6.12"));
  EXPECT_TRUE(KernelTakesSlices("6.12.3-arch1-1"));
  EXPECT_TRUE(KernelTakesSlices("6.18.44-fc-v1300"));
  EXPECT_TRUE(KernelTakesSlices("7.0.1"));
}

TEST(ThreadLatencyTest, ASliceIsAskedForOnlyForTheCallingThread) {
  const bool takes_slices = ThisKernelTakesSlices();
  const microseconds main_before = CurrentSlice();
  std::thread([&] {
    const microseconds before = CurrentSlice();
    ASSERT_TRUE(RequestShortSlice(microseconds(100)).ok());
    const microseconds after = CurrentSlice();
    if (takes_slices) {
      // The slice is the thread's own, read back as asked.
      EXPECT_NE(before, microseconds(100)) << "the default slice is longer";
      EXPECT_EQ(after, microseconds(100));
    } else {
      // Accepted and ignored: no slice before, none after.
      EXPECT_EQ(before, microseconds(0));
      EXPECT_EQ(after, microseconds(0));
    }
  }).join();
  // This thread kept its own.
  EXPECT_EQ(CurrentSlice(), main_before);
  EXPECT_NE(CurrentSlice(), microseconds(100));
}

TEST(ThreadLatencyTest, TheKernelClampsTheSlice) {
  if (!ThisKernelTakesSlices()) {
    // Nothing to clamp: any positive slice is accepted and ignored.
    std::thread([] {
      EXPECT_TRUE(RequestShortSlice(microseconds(1)).ok());
      EXPECT_EQ(CurrentSlice(), microseconds(0));
    }).join();
    return;
  }
  // 0.1 ms at the least, 100 ms at the most.
  std::thread([] {
    ASSERT_TRUE(RequestShortSlice(microseconds(1)).ok());
    EXPECT_EQ(CurrentSlice(), microseconds(100));
  }).join();
  std::thread([] {
    ASSERT_TRUE(RequestShortSlice(std::chrono::seconds(1)).ok());
    EXPECT_EQ(CurrentSlice(), std::chrono::milliseconds(100));
  }).join();
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
