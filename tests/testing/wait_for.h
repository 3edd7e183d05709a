#ifndef SLUICE_TESTS_TESTING_WAIT_FOR_H_
#define SLUICE_TESTS_TESTING_WAIT_FOR_H_

// Waiting for another thread in a test. Only for conditions that real
// threads and real sockets make true (a gRPC stream, a UDP reader); a test
// of time itself moves a FakeClock instead. The bound is generous (a
// sanitizer build on a loaded machine), and only a failing test waits it
// out.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace sluice::test {

// How long a test waits for another thread before it fails.
inline constexpr std::chrono::seconds kWaitDeadline{10};

// Polls `cond` every millisecond until it holds (true) or `deadline` of
// real time has passed (false).
bool WaitFor(const std::function<bool()>& cond,
             std::chrono::milliseconds deadline = kWaitDeadline);

// The real time `deadline` from now, for an API that takes a deadline of
// its own (a gRPC call, a gRPC server's shutdown): a bound on waiting for
// another thread, like WaitFor's.
std::chrono::system_clock::time_point DeadlineFromNow(
    std::chrono::milliseconds deadline = kWaitDeadline);

// Waits on `cv` (with `lock` held on its mutex) until `cond` holds (true)
// or `deadline` has passed (false).
template <typename Pred>
bool WaitOn(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
            Pred cond, std::chrono::milliseconds deadline = kWaitDeadline) {
  return cv.wait_for(lock, deadline, std::move(cond));
}

}  // namespace sluice::test

#endif  // SLUICE_TESTS_TESTING_WAIT_FOR_H_
