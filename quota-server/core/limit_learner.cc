#include "quota-server/core/limit_learner.h"

#include <algorithm>
#include <cmath>

#include "common/time/duration.h"

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
  double next;
  if (stated_per_second && std::isfinite(*stated_per_second) &&
      *stated_per_second > 0) {
    next = *stated_per_second;
  } else {
    next = effective() * options_.decrease;
  }
  SetLearned(next);
  last_throttle_ = std::max(last_throttle_, now);
}

void LimitLearner::OnStated(double stated_per_second, TimePoint now) {
  if (!std::isfinite(stated_per_second) || stated_per_second <= 0) return;
  Advance(now);
  stated_ = stated_per_second;
  stated_at_ = now;
  if (stated_per_second < effective() ||
      now - last_throttle_ >= options_.hold) {
    SetLearned(stated_per_second);
  }
}

double LimitLearner::Ceiling(TimePoint now) const {
  const std::optional<double> s = stated(now);
  return s ? std::min(configured_, *s) : configured_;
}

void LimitLearner::SetLearned(double v) {
  learned_ = std::max(v, configured_ * options_.floor);
  if (*learned_ >= configured_) learned_.reset();
}

void LimitLearner::Advance(TimePoint now) {
  if (now <= advanced_at_) return;
  const TimePoint from = std::max(advanced_at_, last_throttle_ + options_.hold);
  advanced_at_ = now;
  if (!learned_ || now <= from) return;
  const double ceiling = std::max(Ceiling(now), *learned_);
  SetLearned(std::min(ceiling, *learned_ + configured_ * options_.increase *
                                               ToSeconds(now - from)));
}

double LimitLearner::effective() const {
  return learned_ ? std::min(*learned_, configured_) : configured_;
}

std::optional<double> LimitLearner::learned() const { return learned_; }

std::optional<double> LimitLearner::stated(TimePoint now) const {
  if (stated_ && now - stated_at_ <= options_.stated_ttl) return stated_;
  return std::nullopt;
}

}  // namespace sluice
