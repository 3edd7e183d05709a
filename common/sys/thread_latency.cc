#include "common/sys/thread_latency.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sluice {

namespace {
// The kernel's struct sched_attr (its first version, 56 bytes: a stable
// ABI). <linux/sched/types.h> cannot be included beside glibc's <sched.h>.
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};
static_assert(sizeof(SchedAttr) == 56);
}  // namespace

// glibc 2.36 has no wrappers for sched_setattr/sched_getattr.
absl::Status RequestShortSlice(std::chrono::microseconds slice) {
  if (slice.count() <= 0) {
    return absl::InvalidArgumentError("slice: must be positive");
  }
  // Start from the thread's attributes, so that its policy and nice value
  // stay as they are (raising a lowered nice would need privilege).
  SchedAttr attr{};
  if (syscall(SYS_sched_getattr, 0, &attr, sizeof(attr), 0) != 0) {
    return absl::UnavailableError(
        absl::StrCat("sched_getattr: ", std::strerror(errno)));
  }
  if (attr.sched_policy != SCHED_OTHER && attr.sched_policy != SCHED_BATCH) {
    return absl::OkStatus();  // real-time or idle: not ours to change
  }
  attr.size = sizeof(attr);
  attr.sched_flags = 0;
  attr.sched_runtime = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(slice).count());
  if (syscall(SYS_sched_setattr, 0, &attr, 0) != 0) {
    return absl::UnavailableError(
        absl::StrCat("sched_setattr: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::chrono::microseconds CurrentSlice() {
  SchedAttr attr{};
  if (syscall(SYS_sched_getattr, 0, &attr, sizeof(attr), 0) != 0) {
    return std::chrono::microseconds(0);
  }
  return std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::nanoseconds(attr.sched_runtime));
}

}  // namespace sluice
