#include "proxy/limit/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace sluice {
namespace {

// now + d for d >= 0, saturating at TimePoint::max().
TimePoint SaturatingAdd(TimePoint now, Duration d) {
  int64_t out = 0;
  if (__builtin_add_overflow(now.time_since_epoch().count(), d.count(), &out)) {
    return TimePoint::max();
  }
  return TimePoint(Duration(out));
}

AcquireResult Rejected(AcquireOutcome outcome, Duration retry_after) {
  AcquireResult r{outcome};
  r.retry_after = std::max(retry_after, Duration::zero());
  return r;
}

}  // namespace

std::string_view AcquireOutcomeName(AcquireOutcome outcome) {
  switch (outcome) {
    case AcquireOutcome::kAdmitted:
      return "admitted";
    case AcquireOutcome::kQueued:
      return "queued";
    case AcquireOutcome::kRejectedWait:
      return "rejected_wait";
    case AcquireOutcome::kRejectedQueueFull:
      return "rejected_queue_full";
    case AcquireOutcome::kRejectedTooCostly:
      return "rejected_too_costly";
  }
  return "unknown";
}

void RateLimiter::CostSum::Add(double x) {
  const double t = sum_ + x;
  if (std::fabs(sum_) >= std::fabs(x)) {
    compensation_ += (sum_ - t) + x;
  } else {
    compensation_ += (x - t) + sum_;
  }
  sum_ = t;
}

RateLimiter::RateLimiter(std::unique_ptr<TokenSource> source,
                         RateLimiterOptions opts)
    : opts_(opts), source_(std::move(source)) {}

AcquireResult RateLimiter::Acquire(double cost, Duration max_wait,
                                   TimePoint now) {
  if (!std::isfinite(cost) || cost < 0) {
    // Not a demand for tokens at all: nothing is counted.
    return Rejected(AcquireOutcome::kRejectedTooCostly, Duration::max());
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (cost > source_->Capacity()) {
    stats_.denied += cost;
    return Rejected(AcquireOutcome::kRejectedTooCostly, Duration::max());
  }
  // Fast path: nobody waiting and the tokens are there.
  if (queue_.empty() && source_->TryTake(cost, now)) {
    stats_.allowed += cost;
    return AcquireResult{AcquireOutcome::kAdmitted};
  }
  // Must wait behind everything queued. Predict when this request would be
  // admitted if the queue drains in order.
  const std::optional<TimePoint> at =
      source_->AvailableAt(queued_cost_.Value() + cost, now);
  if (!at.has_value()) {
    stats_.denied += cost;
    return Rejected(AcquireOutcome::kRejectedWait, Duration::max());
  }
  const Duration wait = std::max(*at, now) - now;
  if (max_wait <= Duration::zero() || *at > SaturatingAdd(now, max_wait)) {
    stats_.denied += cost;
    return Rejected(AcquireOutcome::kRejectedWait, wait);
  }
  if (queue_.size() >= opts_.max_queue) {
    stats_.denied += cost;
    return Rejected(AcquireOutcome::kRejectedQueueFull, wait);
  }
  const uint64_t ticket = next_ticket_++;
  const TimePoint deadline = SaturatingAdd(now, max_wait);
  queue_.emplace_hint(queue_.end(), ticket, Waiter{cost, deadline, now});
  deadlines_.emplace(deadline, ticket);
  queued_cost_.Add(cost);
  AcquireResult r{AcquireOutcome::kQueued};
  r.ticket = ticket;
  r.admit_at = std::max(*at, now);
  return r;
}

void RateLimiter::RemoveLocked(Queue::iterator it) {
  deadlines_.erase({it->second.deadline, it->first});
  queued_cost_.Add(-it->second.cost);
  queue_.erase(it);
  // Start from an exact zero whenever the queue drains.
  if (queue_.empty()) queued_cost_.Reset();
}

bool RateLimiter::AdmitReadyLocked(TimePoint now,
                                   std::vector<uint64_t>* admitted) {
  bool any = false;
  while (!queue_.empty()) {
    auto head = queue_.begin();
    if (!source_->TryTake(head->second.cost, now)) break;
    stats_.allowed += head->second.cost;
    stats_.wait_total +=
        std::max(now - head->second.enqueued, Duration::zero());
    ++stats_.queue_admitted;
    admitted->push_back(head->first);
    RemoveLocked(head);
    any = true;
  }
  return any;
}

bool RateLimiter::ExpireDueLocked(TimePoint now,
                                  std::vector<uint64_t>* expired) {
  bool any = false;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const uint64_t ticket = deadlines_.begin()->second;
    expired->push_back(ticket);
    auto it = queue_.find(ticket);
    stats_.denied += it->second.cost;
    RemoveLocked(it);
    any = true;
  }
  return any;
}

RateLimiter::PollResult RateLimiter::Poll(TimePoint now) {
  PollResult result;
  std::lock_guard<std::mutex> lock(mu_);
  // Admit first, so a request whose deadline is exactly now (or a timer that
  // fired a little late) still goes. Expiring the head can let the next
  // request in, so repeat until nothing expires. Each round removes at least
  // one waiter, so this terminates.
  do {
    AdmitReadyLocked(now, &result.admitted);
  } while (ExpireDueLocked(now, &result.expired));

  if (queue_.empty()) return result;
  // Everything left has deadline > now; the head could not be admitted now.
  TimePoint wakeup = deadlines_.begin()->first;
  const std::optional<TimePoint> head_at =
      source_->AvailableAt(queue_.begin()->second.cost, now);
  if (head_at.has_value()) wakeup = std::min(wakeup, *head_at);
  // Guard against a source that predicts `now` yet refuses the take: never
  // ask the caller to spin.
  result.next_wakeup = std::max(wakeup, SaturatingAdd(now, Duration(1)));
  return result;
}

RateLimiter::PollResult RateLimiter::ShedUnservable(TimePoint now) {
  PollResult result = Poll(now);
  std::lock_guard<std::mutex> lock(mu_);
  // Walk the queue in order with the backlog ahead of each waiter; one
  // whose predicted admission is past its deadline cannot be served (its
  // cost is then not counted for those behind it).
  double ahead = 0;
  for (auto it = queue_.begin(); it != queue_.end();) {
    const std::optional<TimePoint> at =
        source_->AvailableAt(ahead + it->second.cost, now);
    if (!at.has_value() || *at > it->second.deadline) {
      result.expired.push_back(it->first);
      stats_.denied += it->second.cost;
      auto next = std::next(it);
      RemoveLocked(it);
      it = next;
      continue;
    }
    ahead += it->second.cost;
    ++it;
  }
  if (queue_.empty()) result.next_wakeup.reset();
  return result;
}

bool RateLimiter::Cancel(uint64_t ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = queue_.find(ticket);
  if (it == queue_.end()) return false;
  RemoveLocked(it);
  return true;
}

size_t RateLimiter::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

double RateLimiter::queued_cost() const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::max(queued_cost_.Value(), 0.0);
}

RateLimiter::DemandStats RateLimiter::TakeDemandStats() {
  std::lock_guard<std::mutex> lock(mu_);
  DemandStats out = std::exchange(stats_, DemandStats{});
  out.queued = std::max(queued_cost_.Value(), 0.0);
  return out;
}

void RateLimiter::ReplaceSource(std::unique_ptr<TokenSource> source,
                                TimePoint now) {
  if (source == nullptr) return;
  std::unique_ptr<TokenSource> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = std::exchange(source_, std::move(source));
  }
  // `old` is destroyed outside the lock.
}

}  // namespace sluice
