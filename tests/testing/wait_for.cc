#include "tests/testing/wait_for.h"

#include <thread>

namespace sluice::test {

bool WaitFor(const std::function<bool()>& cond,
             std::chrono::milliseconds deadline) {
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

std::chrono::system_clock::time_point DeadlineFromNow(
    std::chrono::milliseconds deadline) {
  return std::chrono::system_clock::now() + deadline;
}

}  // namespace sluice::test
