#include "proxy/lease/lease_pool.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace sluice {
namespace {

bool FiniteNonNegative(double x) { return std::isfinite(x) && x >= 0; }

}  // namespace

std::string_view LeaseModeName(LeaseMode mode) {
  switch (mode) {
    case LeaseMode::kLeased:
      return "leased";
    case LeaseMode::kFallbackShare:
      return "fallback_share";
    case LeaseMode::kFailClosed:
      return "fail_closed";
    case LeaseMode::kFailOpen:
      return "fail_open";
  }
  return "unknown";
}

LeasePool::LeasePool(Options options)
    : options_(std::move(options)),
      capacity_(options_.initial_capacity > 0 ? options_.initial_capacity : 1),
      limit_rate_(options_.initial_rate_per_second > 0
                      ? options_.initial_rate_per_second
                      : 1),
      policy_(options_.policy) {
  if (options_.max_batches < 1) options_.max_batches = 1;
  if (options_.refresh <= Duration::zero()) {
    options_.refresh = std::chrono::milliseconds(100);
  }
}

TimePoint LeasePool::ClampLocked(TimePoint now) {
  last_now_ = std::max(last_now_, now);
  return last_now_;
}

void LeasePool::DropExpiredLocked(TimePoint now) {
  while (!batches_.empty() && batches_.front().expires_at <= now) {
    batches_.pop_front();
  }
}

double LeasePool::HeldLocked() const {
  double held = 0;
  for (const Batch& b : batches_) held += b.tokens;
  return held;
}

double LeasePool::ToleranceLocked() const {
  return token_math::kToleranceFraction * std::max(1.0, capacity_);
}

RateSpec LeasePool::FallbackSpecLocked() const {
  double rate = limit_rate_ / std::max<uint32_t>(1, sidecars_);
  if (share_ > 0) rate = std::min(rate, share_);
  const double burst = std::min(capacity_, std::max(1.0, last_grant_));
  return RateSpec{rate, std::chrono::seconds(1), burst};
}

TokenBucket& LeasePool::FallbackLocked(TimePoint now) {
  if (!fallback_.has_value()) fallback_.emplace(FallbackSpecLocked(), now);
  return *fallback_;
}

std::optional<TimePoint> LeasePool::LeasedPredictionLocked(
    double cost, TimePoint now) const {
  if (!(share_ > 0)) return now + options_.refresh;
  // Count only batches alive at the predicted time; each batch dropped from
  // the count pushes the prediction later, so this ends within
  // batches_.size() + 1 rounds and never predicts early.
  size_t first_alive = 0;
  for (;;) {
    double counted = 0;
    for (size_t i = first_alive; i < batches_.size(); ++i) {
      counted += batches_[i].tokens;
    }
    const double deficit = std::max(0.0, cost - counted);
    const std::optional<TimePoint> at =
        token_math::AddCeilNs(now, deficit / share_ * 1e9);
    if (!at.has_value()) return std::nullopt;
    const size_t before = first_alive;
    while (first_alive < batches_.size() &&
           batches_[first_alive].expires_at <= *at) {
      ++first_alive;
    }
    if (first_alive == before) return at;
  }
}

void LeasePool::AddGrant(double tokens, TimePoint expires_at,
                         double share_per_second, TimePoint now) {
  bool added = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    now = ClampLocked(now);
    DropExpiredLocked(now);
    if (FiniteNonNegative(share_per_second)) share_ = share_per_second;
    if (FiniteNonNegative(tokens) && tokens > 0) {
      last_grant_ = tokens;
      if (expires_at > now) {
        auto pos = std::upper_bound(
            batches_.begin(), batches_.end(), expires_at,
            [](TimePoint t, const Batch& b) { return t < b.expires_at; });
        batches_.insert(pos, Batch{tokens, expires_at});
        // Merge the earliest batch into the next one, keeping the earlier
        // expiry: a merge never extends a token's life.
        while (batches_.size() > options_.max_batches) {
          const Batch first = batches_.front();
          batches_.pop_front();
          batches_.front().tokens += first.tokens;
          batches_.front().expires_at = first.expires_at;
        }
        added = true;
      }
    }
  }
  if (added && on_tokens_) on_tokens_();
}

double LeasePool::ShrinkTo(double target, TimePoint now) {
  if (std::isnan(target)) return 0;
  target = std::max(target, 0.0);
  std::lock_guard<std::mutex> lock(mu_);
  now = ClampLocked(now);
  DropExpiredLocked(now);
  double excess = HeldLocked() - target;
  double dropped = 0;
  while (excess > 0 && !batches_.empty()) {
    Batch& last = batches_.back();
    const double d = std::min(excess, last.tokens);
    last.tokens -= d;
    excess -= d;
    dropped += d;
    if (last.tokens <= ToleranceLocked() / 100) batches_.pop_back();
  }
  return dropped;
}

void LeasePool::SetLimit(double rate_per_second, double burst,
                         UnavailablePolicy policy, uint32_t sidecars) {
  std::lock_guard<std::mutex> lock(mu_);
  if (std::isfinite(rate_per_second) && rate_per_second > 0) {
    limit_rate_ = rate_per_second;
  }
  if (std::isfinite(burst) && burst > 0) capacity_ = burst;
  policy_ = policy;
  sidecars_ = std::max<uint32_t>(1, sidecars);
  // Rebuilt from the new limit on next use.
  fallback_.reset();
}

void LeasePool::SetConnected(bool connected, TimePoint now) {
  std::lock_guard<std::mutex> lock(mu_);
  ClampLocked(now);
  if (connected_ == connected) return;
  connected_ = connected;
  fallback_.reset();
}

double LeasePool::Held(TimePoint now) {
  std::lock_guard<std::mutex> lock(mu_);
  now = ClampLocked(now);
  DropExpiredLocked(now);
  return HeldLocked();
}

LeaseMode LeasePool::Mode(TimePoint now) {
  std::lock_guard<std::mutex> lock(mu_);
  now = ClampLocked(now);
  DropExpiredLocked(now);
  if (!PolicyActiveLocked()) return LeaseMode::kLeased;
  switch (policy_) {
    case UnavailablePolicy::kFallbackShare:
      return LeaseMode::kFallbackShare;
    case UnavailablePolicy::kFailClosed:
      return LeaseMode::kFailClosed;
    case UnavailablePolicy::kFailOpen:
      return LeaseMode::kFailOpen;
  }
  return LeaseMode::kFallbackShare;
}

double LeasePool::share_per_second() const {
  std::lock_guard<std::mutex> lock(mu_);
  return share_;
}

bool LeasePool::TryTake(double cost, TimePoint now) {
  if (!token_math::ValidCost(cost)) return false;
  if (cost == 0) return true;
  std::lock_guard<std::mutex> lock(mu_);
  now = ClampLocked(now);
  DropExpiredLocked(now);
  if (PolicyActiveLocked()) {
    switch (policy_) {
      case UnavailablePolicy::kFallbackShare:
        return FallbackLocked(now).TryTake(cost, now);
      case UnavailablePolicy::kFailClosed:
        return false;
      case UnavailablePolicy::kFailOpen:
        return true;
    }
    return false;
  }
  if (HeldLocked() + ToleranceLocked() < cost) return false;
  // Earliest-expiring first. A shortfall within the tolerance is forgiven.
  double left = cost;
  while (left > 0 && !batches_.empty()) {
    Batch& first = batches_.front();
    const double d = std::min(left, first.tokens);
    first.tokens -= d;
    left -= d;
    // Rounding dust is not a batch: it would keep the pool "holding" (and
    // the policy off) until it expired.
    if (first.tokens <= ToleranceLocked() / 100) batches_.pop_front();
  }
  return true;
}

std::optional<TimePoint> LeasePool::AvailableAt(double cost, TimePoint now) {
  if (!token_math::ValidCost(cost)) return std::nullopt;
  if (cost == 0) return now;
  std::lock_guard<std::mutex> lock(mu_);
  const TimePoint from = ClampLocked(now);
  DropExpiredLocked(from);
  if (PolicyActiveLocked()) {
    switch (policy_) {
      case UnavailablePolicy::kFallbackShare: {
        std::optional<TimePoint> at =
            FallbackLocked(from).AvailableAt(cost, from);
        if (at.has_value() && *at <= from) return now;
        return at;
      }
      case UnavailablePolicy::kFailClosed:
        return std::nullopt;
      case UnavailablePolicy::kFailOpen:
        return now;
    }
    return std::nullopt;
  }
  // Within the tolerance TryTake forgives, so TryTake(cost, now) succeeds.
  if (HeldLocked() + ToleranceLocked() / 2 >= cost) return now;
  if (connected_) return LeasedPredictionLocked(cost, from);
  // Disconnected with tokens held but too few: nothing more arrives; the
  // policy takes over once the last batch has expired.
  const TimePoint gone = batches_.back().expires_at;
  switch (policy_) {
    case UnavailablePolicy::kFallbackShare:
      if (fallback_.has_value()) return fallback_->AvailableAt(cost, gone);
      return TokenBucket(FallbackSpecLocked(), gone).AvailableAt(cost, gone);
    case UnavailablePolicy::kFailClosed:
      return std::nullopt;
    case UnavailablePolicy::kFailOpen:
      return gone;
  }
  return std::nullopt;
}

void LeasePool::Refund(double cost, TimePoint now) {
  if (!token_math::ValidCost(cost) || cost == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  now = ClampLocked(now);
  DropExpiredLocked(now);
  if (batches_.empty()) {
    // Tokens taken from the fallback bucket go back to it; otherwise there
    // is no live batch to return them to and they are dropped.
    if (PolicyActiveLocked() && policy_ == UnavailablePolicy::kFallbackShare &&
        fallback_.has_value()) {
      fallback_->Refund(cost, now);
    }
    return;
  }
  // Into the latest-expiring batch, so no batch's expiry changes, and never
  // above capacity.
  const double room = capacity_ - HeldLocked();
  if (room > 0) batches_.back().tokens += std::min(cost, room);
}

double LeasePool::Capacity() const {
  std::lock_guard<std::mutex> lock(mu_);
  return capacity_;
}

LeasedTokenSource::LeasedTokenSource(std::shared_ptr<LeasePool> pool)
    : pool_(std::move(pool)) {}

bool LeasedTokenSource::TryTake(double cost, TimePoint now) {
  return pool_->TryTake(cost, now);
}

std::optional<TimePoint> LeasedTokenSource::AvailableAt(double cost,
                                                        TimePoint now) const {
  return pool_->AvailableAt(cost, now);
}

void LeasedTokenSource::Refund(double cost, TimePoint now) {
  pool_->Refund(cost, now);
}

double LeasedTokenSource::Capacity() const { return pool_->Capacity(); }

}  // namespace sluice
