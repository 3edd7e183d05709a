#ifndef SLUICE_PROXY_LIMIT_LIMIT_GATE_H_
#define SLUICE_PROXY_LIMIT_LIMIT_GATE_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "common/time/clock.h"
#include "proxy/limit/rate_limiter.h"

namespace sluice {

// Turns the pure RateLimiter into something a coroutine can co_await.
//
// A queued request sleeps on its own timer until the limiter predicts its
// admission (or its deadline). Whoever wakes first polls the limiter and
// wakes the waiters the poll admitted or expired, so strict FIFO order is
// kept without a central driver thread. Kick() lets a token source that
// gains tokens asynchronously (a lease grant) wake the queue early.
class LimitGate {
 public:
  struct Result {
    AcquireOutcome outcome;
    Duration waited{};       // time spent queued
    Duration retry_after{};  // for rejections
  };

  explicit LimitGate(Clock* clock) : clock_(clock) {}
  LimitGate(const LimitGate&) = delete;
  LimitGate& operator=(const LimitGate&) = delete;

  // Acquires `cost` tokens from `limiter`, waiting at most `max_wait`.
  // Must be awaited from a coroutine running on a strand; the limiter must
  // outlive the call. If the awaiting coroutine is destroyed while queued,
  // its ticket is cancelled.
  boost::asio::awaitable<Result> Acquire(RateLimiter& limiter, double cost,
                                         Duration max_wait);

  // Polls `limiter` now and wakes whatever it admits or expires.
  void Kick(RateLimiter& limiter);
  // Like Kick, with RateLimiter::ShedUnservable: queued requests that can no
  // longer be served in time are refused now.
  void Shed(RateLimiter& limiter);

  // Number of requests currently parked in this gate.
  size_t waiting() const;

 private:
  struct Waiter;
  using Key = std::pair<const RateLimiter*, uint64_t>;

  // Applies a poll result: marks and wakes waiters. Returns the state of
  // `self` (the caller's own ticket) if it was in the result.
  void Deliver(RateLimiter& limiter, const RateLimiter::PollResult& res);

  Clock* clock_;
  mutable std::mutex mu_;
  absl::flat_hash_map<Key, std::shared_ptr<Waiter>> waiters_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_LIMIT_LIMIT_GATE_H_
