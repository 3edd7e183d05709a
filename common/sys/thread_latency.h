#ifndef SLUICE_COMMON_SYS_THREAD_LATENCY_H_
#define SLUICE_COMMON_SYS_THREAD_LATENCY_H_

#include <chrono>

#include "absl/status/status.h"

namespace sluice {

// Marks the calling thread as latency-sensitive by asking for a short
// scheduling slice (Linux EEVDF, 6.12 and later: sched_attr.sched_runtime of
// a SCHED_OTHER thread). A thread with a shorter slice than the one running
// has an earlier virtual deadline, so when it wakes it preempts at once
// instead of waiting for the running thread's slice to end. Its share of
// the CPU does not change (that is the weight, i.e. nice), and no
// privilege is needed. For threads that sleep almost always and must run
// soon after they wake: the fast path's readers. The kernel clamps the slice
// to 0.1..100 ms; older kernels accept and ignore it. Errors: the system
// call failed (say, seccomp), named with errno.
absl::Status RequestShortSlice(std::chrono::microseconds slice);

// The calling thread's slice as the kernel reports it (sched_getattr); zero
// if it cannot tell.
std::chrono::microseconds CurrentSlice();

}  // namespace sluice

#endif  // SLUICE_COMMON_SYS_THREAD_LATENCY_H_
