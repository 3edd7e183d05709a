#include "common/sys/process_setup.h"

#include "absl/synchronization/mutex.h"

namespace sluice {

void ConfigureProcess() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace sluice
