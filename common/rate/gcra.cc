#include "common/rate/gcra.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sluice {
namespace {

constexpr double kInt64Limit = 9223372036854775808.0;  // 2^63

}  // namespace

GcraBucket::GcraBucket(const RateSpec& spec, TimePoint now)
    : ns_per_token_(token_math::NsPerToken(spec)),
      capacity_(token_math::SanitizedBurst(spec)),
      tau_ns_(ns_per_token_ * capacity_),
      slack_ns_(token_math::kToleranceFraction * std::max(1.0, capacity_) *
                ns_per_token_),
      tat_ns_(now.time_since_epoch().count()),
      tat_frac_(0),
      last_(now) {}

double GcraBucket::DelayAfter(TimePoint t) const {
  const int64_t t_ns = t.time_since_epoch().count();
  if (tat_ns_ < t_ns) return 0;
  // The difference is small in practice (<= tau + slack); only across the
  // whole range of TimePoint can it overflow, and then doubles suffice.
  int64_t whole = 0;
  if (__builtin_sub_overflow(tat_ns_, t_ns, &whole)) {
    return (static_cast<double>(tat_ns_) - static_cast<double>(t_ns)) +
           tat_frac_;
  }
  return static_cast<double>(whole) + tat_frac_;
}

void GcraBucket::SetTat(TimePoint t, double delay_ns) {
  const int64_t t_ns = t.time_since_epoch().count();
  if (!(delay_ns > 0)) {
    tat_ns_ = t_ns;
    tat_frac_ = 0;
    return;
  }
  const double whole = std::floor(delay_ns);
  int64_t sum = 0;
  if (!(whole < kInt64Limit) ||
      __builtin_add_overflow(t_ns, static_cast<int64_t>(whole), &sum)) {
    // Past the end of time: pin the whole part and keep the rest in the
    // fraction (which may then exceed 1), so the debt is not forgotten.
    const int64_t max_ns = std::numeric_limits<int64_t>::max();
    tat_ns_ = max_ns;
    tat_frac_ =
        delay_ns - (static_cast<double>(max_ns) - static_cast<double>(t_ns));
    return;
  }
  tat_ns_ = sum;
  tat_frac_ = delay_ns - whole;
}

double GcraBucket::TokensAt(TimePoint now) const {
  const TimePoint t = std::max(now, last_);
  return (tau_ns_ - DelayAfter(t)) / ns_per_token_;
}

bool GcraBucket::TryTake(double cost, TimePoint now) {
  if (!token_math::ValidCost(cost)) return false;
  last_ = std::max(now, last_);
  const double delay = DelayAfter(last_);
  const double after = delay + cost * ns_per_token_;
  if (after - tau_ns_ > slack_ns_) return false;
  SetTat(last_, after);
  return true;
}

std::optional<TimePoint> GcraBucket::AvailableAt(double cost,
                                                 TimePoint now) const {
  if (!token_math::ValidCost(cost)) return std::nullopt;
  const TimePoint from = std::max(now, last_);
  // Time after `from` at which max(TAT, from) + cost*T - tau is reached.
  // Half the slack absorbs rounding noise without ever predicting a time at
  // which TryTake would fail (see TokenBucket::AvailableAt).
  const double wait =
      DelayAfter(from) + cost * ns_per_token_ - tau_ns_ - slack_ns_ / 2;
  if (wait <= 0) return now;
  return token_math::AddCeilNs(from, wait);
}

void GcraBucket::Refund(double cost, TimePoint now) {
  if (!token_math::ValidCost(cost)) return;
  last_ = std::max(now, last_);
  // TAT never goes below `now`, so the level never exceeds burst.
  SetTat(last_, DelayAfter(last_) - cost * ns_per_token_);
}

}  // namespace sluice
