#include "proxy/pause/paused_token_source.h"

#include <algorithm>

namespace sluice {

PausedTokenSource::PausedTokenSource(std::unique_ptr<TokenSource> inner,
                                     std::shared_ptr<BucketPause> pause)
    : inner_(std::move(inner)), pause_(std::move(pause)) {}

bool PausedTokenSource::TryTake(double cost, TimePoint now) {
  if (!pause_->Allows(now)) return false;
  if (!inner_->TryTake(cost, now)) return false;
  pause_->Took(cost, now);
  return true;
}

std::optional<TimePoint> PausedTokenSource::AvailableAt(double cost,
                                                        TimePoint now) const {
  const std::optional<TimePoint> inner = inner_->AvailableAt(cost, now);
  if (!inner) return std::nullopt;
  return std::max(*inner, pause_->BacklogReadyAt(cost, now));
}

void PausedTokenSource::Refund(double cost, TimePoint now) {
  inner_->Refund(cost, now);
}

double PausedTokenSource::Capacity() const { return inner_->Capacity(); }

}  // namespace sluice
