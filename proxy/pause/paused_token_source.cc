#include "proxy/pause/paused_token_source.h"

#include <algorithm>

namespace sluice {

PausedTokenSource::PausedTokenSource(std::unique_ptr<TokenSource> inner,
                                     std::shared_ptr<BucketPause> throttle)
    : inner_(std::move(inner)), throttle_(std::move(throttle)) {}

bool PausedTokenSource::TryTake(double cost, TimePoint now) {
  if (!throttle_->Allows(now)) return false;
  if (!inner_->TryTake(cost, now)) return false;
  throttle_->Took(cost, now);
  return true;
}

std::optional<TimePoint> PausedTokenSource::AvailableAt(double cost,
                                                        TimePoint now) const {
  const std::optional<TimePoint> inner = inner_->AvailableAt(cost, now);
  if (!inner) return std::nullopt;
  return std::max(*inner, throttle_->BacklogReadyAt(cost, now));
}

void PausedTokenSource::Refund(double cost, TimePoint now) {
  inner_->Refund(cost, now);
}

double PausedTokenSource::Capacity() const { return inner_->Capacity(); }

}  // namespace sluice
