#ifndef SLUICE_COMMON_SYS_PROCESS_SETUP_H_
#define SLUICE_COMMON_SYS_PROCESS_SETUP_H_

namespace sluice {

// Process-wide settings both binaries apply first thing in main().
//
// Debian builds abseil without NDEBUG, which leaves absl::Mutex's deadlock
// detection on: every lock and unlock of every absl::Mutex (gRPC's own
// mutexes included) then updates a process-wide lock graph under one global
// lock, which serialises the gRPC threads and showed up in profiles of the
// quota server. The binaries turn it off; the tests keep it, so a lock-order
// inversion still aborts there.
void ConfigureProcess();

}  // namespace sluice

#endif  // SLUICE_COMMON_SYS_PROCESS_SETUP_H_
