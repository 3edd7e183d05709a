#include "proxy/limit/limit_gate.h"

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "proxy/io/await.h"

namespace sluice {

namespace asio = boost::asio;

struct LimitGate::Waiter {
  explicit Waiter(asio::any_io_executor ex) : executor(ex), timer(ex) {}
  enum State { kWaiting, kAdmitted, kExpired };
  asio::any_io_executor executor;
  asio::steady_timer timer;  // touched only on `executor`
  std::atomic<int> state{kWaiting};
};

namespace {

// Cancels a queued ticket if the awaiting coroutine goes away early.
class TicketGuard {
 public:
  TicketGuard(RateLimiter& limiter, uint64_t ticket,
              std::function<void()> unregister)
      : limiter_(limiter),
        ticket_(ticket),
        unregister_(std::move(unregister)) {}
  ~TicketGuard() {
    if (armed_) limiter_.Cancel(ticket_);
    unregister_();
  }
  void Disarm() { armed_ = false; }

 private:
  RateLimiter& limiter_;
  uint64_t ticket_;
  std::function<void()> unregister_;
  bool armed_ = true;
};

}  // namespace

void LimitGate::Deliver(RateLimiter& limiter,
                        const RateLimiter::PollResult& res) {
  auto mark = [&](uint64_t ticket, int state) {
    std::shared_ptr<Waiter> w;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = waiters_.find(Key{&limiter, ticket});
      if (it == waiters_.end()) return;
      w = it->second;
    }
    w->state.store(state, std::memory_order_release);
    // The timer belongs to the waiter's strand: cancel it there.
    asio::post(w->executor, [w] { w->timer.cancel(); });
  };
  for (uint64_t t : res.admitted) mark(t, Waiter::kAdmitted);
  for (uint64_t t : res.expired) mark(t, Waiter::kExpired);
}

void LimitGate::Kick(RateLimiter& limiter) {
  Deliver(limiter, limiter.Poll(clock_->Now()));
}

void LimitGate::Shed(RateLimiter& limiter) {
  Deliver(limiter, limiter.ShedUnservable(clock_->Now()));
}

size_t LimitGate::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiters_.size();
}

asio::awaitable<LimitGate::Result> LimitGate::Acquire(RateLimiter& limiter,
                                                      double cost,
                                                      Duration max_wait) {
  const TimePoint start = clock_->Now();
  AcquireResult r = limiter.Acquire(cost, max_wait, start);
  if (r.outcome != AcquireOutcome::kQueued) {
    co_return Result{r.outcome, Duration::zero(), r.retry_after};
  }

  auto waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
  const Key key{&limiter, r.ticket};
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiters_[key] = waiter;
  }
  TicketGuard guard(limiter, r.ticket, [this, key] {
    std::lock_guard<std::mutex> lock(mu_);
    waiters_.erase(key);
  });

  const TimePoint deadline = start + max_wait;
  TimePoint wake = std::min(r.admit_at, deadline);
  for (;;) {
    int state = waiter->state.load(std::memory_order_acquire);
    if (state == Waiter::kAdmitted) {
      guard.Disarm();
      co_return Result{AcquireOutcome::kAdmitted, clock_->Now() - start,
                       Duration::zero()};
    }
    if (state == Waiter::kExpired) {
      guard.Disarm();
      co_return Result{AcquireOutcome::kRejectedWait, clock_->Now() - start,
                       Duration::zero()};
    }
    // Relative to the injected clock, so a fake clock never makes the timer
    // spin or stall; a Kick() wakes waiters without waiting for timers.
    waiter->timer.expires_after(
        std::max(wake - clock_->Now(), Duration::zero()));
    co_await waiter->timer.async_wait(kNoThrow);
    if (waiter->state.load(std::memory_order_acquire) != Waiter::kWaiting) {
      continue;
    }
    const TimePoint now = clock_->Now();
    RateLimiter::PollResult res = limiter.Poll(now);
    Deliver(limiter, res);
    if (waiter->state.load(std::memory_order_acquire) != Waiter::kWaiting) {
      continue;
    }
    // Still queued: sleep until the limiter's next event, but never spin.
    wake = res.next_wakeup.value_or(deadline);
    wake = std::min(wake, deadline);
    const TimePoint floor = now + std::chrono::milliseconds(1);
    if (wake < floor) wake = floor;
  }
}

}  // namespace sluice
