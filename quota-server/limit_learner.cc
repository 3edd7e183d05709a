#include "quota-server/limit_learner.h"

#include <algorithm>
#include <cmath>

#include "common/duration.h"

namespace sluice {

LimitLearner::LimitLearner(Options options, double configured_per_second,
                           TimePoint now)
    : options_(options),
      configured_(configured_per_second),
      last_throttle_(now),
      advanced_at_(now) {}

void LimitLearner::SetConfigured(double configured_per_second) {
  configured_ = configured_per_second;
  if (learned_ && *learned_ >= configured_) learned_.reset();
}

void LimitLearner::OnThrottle(std::optional<double> stated_per_second,
                              TimePoint now) {
  Advance(now);
  const double floor = configured_ * options_.floor;
  double next;
  if (stated_per_second && std::isfinite(*stated_per_second) &&
      *stated_per_second > 0) {
    next = *stated_per_second;
  } else {
    next = effective() * options_.decrease;
  }
  next = std::max(next, floor);
  learned_ = next;
  if (*learned_ >= configured_) learned_.reset();
  last_throttle_ = std::max(last_throttle_, now);
}

void LimitLearner::Advance(TimePoint now) {
  if (now <= advanced_at_) return;
  const TimePoint from = std::max(advanced_at_, last_throttle_ + options_.hold);
  advanced_at_ = now;
  if (!learned_ || now <= from) return;
  *learned_ += configured_ * options_.increase * ToSeconds(now - from);
  if (*learned_ >= configured_) learned_.reset();
}

double LimitLearner::effective() const {
  return learned_ ? std::min(*learned_, configured_) : configured_;
}

std::optional<double> LimitLearner::learned() const { return learned_; }

}  // namespace sluice
