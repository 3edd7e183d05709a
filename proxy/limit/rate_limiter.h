#ifndef SLUICE_PROXY_LIMIT_RATE_LIMITER_H_
#define SLUICE_PROXY_LIMIT_RATE_LIMITER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "common/rate/token_source.h"
#include "common/time/clock.h"

namespace sluice {

class BucketPause;

struct RateLimiterOptions {
  // Most requests that may wait at once. 0 means nothing ever waits.
  size_t max_queue = 1000;
};

enum class AcquireOutcome {
  kAdmitted,           // Go now.
  kQueued,             // Wait for `ticket` to show up in Poll().admitted.
  kRejectedWait,       // Predicted wait exceeds max_wait (or max_wait is 0).
  kRejectedQueueFull,  // The waiting room is full.
  kRejectedTooCostly,  // Cost can never fit (above capacity, or invalid).
};

// Stable lower-case name, e.g. "rejected_wait", for logs and metric labels.
std::string_view AcquireOutcomeName(AcquireOutcome outcome);

struct AcquireResult {
  AcquireOutcome outcome;
  // For kQueued: identifies the request in Poll and Cancel. Never 0.
  uint64_t ticket = 0;
  // For kQueued: predicted admission time (<= now + max_wait).
  TimePoint admit_at{};
  // For rejections: predicted time from `now` until a request of this cost
  // could be admitted (behind everything queued now), >= 0. Duration::max()
  // when no prediction is possible (kRejectedTooCostly, or the source
  // returned nullopt); callers clamp it before putting it in a header.
  Duration retry_after{};
};

// A bounded, strict-FIFO waiting room in front of one TokenSource.
//
// Strict FIFO: while anything is queued, a new request queues behind it even
// if tokens are available, so a stream of cheap requests can never starve an
// expensive one.
//
// Predict, don't wait in vain: a request is queued only if the source
// predicts it will be admitted within its max_wait. The prediction for a new
// request is AvailableAt(sum of queued costs + cost, now); for the local
// sources this is exact to the nanosecond and never too early (see
// TokenSource::AvailableAt). So a Poll at the time it asks for admits each
// queued request at its admit_at, and a late Poll still admits it rather than
// expiring it. Expiry only bites when the source turns out slower than
// predicted (ReplaceSource, a leased source); never for a local source.
//
// Thread-safe: every public method takes an internal mutex for a short,
// allocation-free critical section on the admit path.
//
// Driving it: after a kQueued result, or after Cancel, the owner must make
// sure Poll runs no later than min(its pending wake-up, result.admit_at);
// after each Poll it re-arms one timer at next_wakeup.
class RateLimiter {
 public:
  // `source` must not be null.
  RateLimiter(std::unique_ptr<TokenSource> source, RateLimiterOptions opts);
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Asks to admit a request of `cost` tokens. max_wait: how long this request
  // is willing to wait (the caller already took min(route max, client
  // header)); 0 or negative means never queue. Decision order:
  //  1. cost invalid (NaN, negative, infinite) or > Capacity():
  //     kRejectedTooCostly.
  //  2. queue empty and the source has the tokens: kAdmitted.
  //  3. predicted admission beyond now + max_wait, or max_wait <= 0, or no
  //     prediction: kRejectedWait.
  //  4. queue at max_queue: kRejectedQueueFull.
  //  5. otherwise kQueued with a ticket and admit_at.
  AcquireResult Acquire(double cost, Duration max_wait, TimePoint now);

  struct PollResult {
    std::vector<uint64_t> admitted;  // In FIFO order.
    std::vector<uint64_t> expired;
    // When to call Poll next: the sooner of the head's predicted admission
    // and the earliest deadline; always > now. nullopt if the queue is empty.
    std::optional<TimePoint> next_wakeup;
  };
  // Admits queued requests in strict FIFO order while tokens are available;
  // then expires queued requests whose deadline (enqueue time + max_wait) is
  // <= now. A request that can be admitted at `now` is admitted even if its
  // deadline is `now` or slightly past (a late timer is not its fault).
  PollResult Poll(TimePoint now);

  // Poll, then expires every queued request whose predicted admission (behind
  // those ahead of it that stay) is past its deadline, or unpredictable. For
  // when the source slows down for a known time (a pause): those requests
  // hear 429 now instead of at their deadline. O(queue length).
  PollResult ShedUnservable(TimePoint now);

  // Removes a queued ticket (client went away). Returns true if it was
  // queued. Requests behind it may now be admitted earlier: Poll soon.
  bool Cancel(uint64_t ticket);

  size_t queue_depth() const;
  // Summed cost of the requests queued now, in tokens.
  double queued_cost() const;

  // Demand measured since the previous TakeDemandStats, in tokens. This is
  // what a leased source reports to the quota server: arrivals, not just
  // admissions, so an under-served sidecar shows its true demand.
  struct DemandStats {
    double allowed = 0;     // admitted (at once, or from the queue)
    double denied = 0;      // rejected at Acquire, or expired in the queue
    double queued = 0;      // cost waiting right now (absolute, not reset)
    Duration wait_total{};  // summed wait of queue admissions
    uint64_t queue_admitted = 0;  // number of queue admissions
  };
  // Returns the counters and resets all but `queued`.
  DemandStats TakeDemandStats();

  // The bucket's pause state (docs/pause.md), shared with the
  // PausedTokenSource wrapping its source; null when throttles are not
  // handled. Set once, before the limiter is shared.
  void set_pause(std::shared_ptr<BucketPause> pause) {
    pause_ = std::move(pause);
  }
  const std::shared_ptr<BucketPause>& pause() const { return pause_; }

  // Swaps the token source (e.g. standalone -> leased) without touching
  // callers; queued requests stay queued, in order, and are admitted against
  // the new source from the next Poll. A null source is ignored. The old
  // source's tokens are not carried over.
  void ReplaceSource(std::unique_ptr<TokenSource> source, TimePoint now);

 private:
  struct Waiter {
    double cost;
    TimePoint deadline;
    TimePoint enqueued;  // For the wait statistics.
  };
  using Queue = std::map<uint64_t, Waiter>;  // Tickets grow: key order = FIFO.

  // Compensated (Neumaier) running sum of queued costs, so that many adds and
  // removals do not drift the prediction input.
  class CostSum {
   public:
    void Add(double x);
    double Value() const { return sum_ + compensation_; }
    void Reset() { sum_ = compensation_ = 0; }

   private:
    double sum_ = 0;
    double compensation_ = 0;
  };

  // Removes `it` from the queue, the deadline index and the cost sum.
  void RemoveLocked(Queue::iterator it);
  // Admits from the head while the source has tokens. Returns true if any.
  bool AdmitReadyLocked(TimePoint now, std::vector<uint64_t>* admitted);
  // Expires every waiter with deadline <= now. Returns true if any.
  bool ExpireDueLocked(TimePoint now, std::vector<uint64_t>* expired);

  const RateLimiterOptions opts_;
  std::shared_ptr<BucketPause> pause_;
  mutable std::mutex mu_;
  std::unique_ptr<TokenSource> source_;  // Guarded by mu_.
  uint64_t next_ticket_ = 1;             // Guarded by mu_.
  Queue queue_;                          // Guarded by mu_.
  // (deadline, ticket) for every queued waiter. Guarded by mu_.
  std::set<std::pair<TimePoint, uint64_t>> deadlines_;
  CostSum queued_cost_;  // Guarded by mu_.
  // Interval counters for TakeDemandStats (queued comes from queued_cost_).
  DemandStats stats_;  // Guarded by mu_.
};

}  // namespace sluice

#endif  // SLUICE_PROXY_LIMIT_RATE_LIMITER_H_
