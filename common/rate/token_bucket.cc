#include "common/rate/token_bucket.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace sluice {
namespace token_math {
namespace {

constexpr double kMinNsPerToken = 1e-6;
constexpr double kMaxNsPerToken = 1e21;
constexpr double kMaxBurst = 1e15;
constexpr double kMaxTokens = 1e15;
// 2^63 as a double: the first value that no longer fits an int64.
constexpr double kInt64Limit = 9223372036854775808.0;

}  // namespace

double NsPerToken(const RateSpec& spec) {
  const double period_ns = static_cast<double>(spec.period.count());
  if (!(spec.tokens > 0) || !(period_ns > 0)) return kMaxNsPerToken;
  const double t = period_ns / spec.tokens;  // +0 for infinite tokens.
  return std::clamp(t, kMinNsPerToken, kMaxNsPerToken);
}

double SanitizedBurst(const RateSpec& spec) {
  if (!(spec.burst > 0)) return 0;
  return std::min(spec.burst, kMaxBurst);
}

std::optional<TimePoint> AddCeilNs(TimePoint t, double ns) {
  if (!(ns > 0)) return t;
  const double whole = std::ceil(ns);
  if (!(whole < kInt64Limit)) return std::nullopt;
  const int64_t add = static_cast<int64_t>(whole);
  int64_t out = 0;
  if (__builtin_add_overflow(t.time_since_epoch().count(), add, &out)) {
    return std::nullopt;
  }
  return TimePoint(Duration(out));
}

int64_t SaturatingDiff(TimePoint a, TimePoint b) {
  int64_t out = 0;
  if (__builtin_sub_overflow(a.time_since_epoch().count(),
                             b.time_since_epoch().count(), &out)) {
    return std::numeric_limits<int64_t>::max();
  }
  return out;
}

}  // namespace token_math

absl::Status ValidateRateSpec(const RateSpec& spec) {
  if (!std::isfinite(spec.tokens) || spec.tokens <= 0 ||
      spec.tokens > token_math::kMaxTokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rate tokens must be finite, > 0 and <= 1e15; got ", spec.tokens));
  }
  if (spec.period <= Duration::zero()) {
    return absl::InvalidArgumentError("rate period must be > 0");
  }
  if (!std::isfinite(spec.burst) || spec.burst <= 0 ||
      spec.burst > token_math::kMaxBurst) {
    return absl::InvalidArgumentError(absl::StrCat(
        "burst must be finite, > 0 and <= 1e15; got ", spec.burst));
  }
  const double ns_per_token =
      static_cast<double>(spec.period.count()) / spec.tokens;
  if (ns_per_token < token_math::kMinNsPerToken ||
      ns_per_token > token_math::kMaxNsPerToken) {
    return absl::InvalidArgumentError(
        absl::StrCat("rate out of range: ", ns_per_token,
                     " ns per token (allowed 1e-6 .. 1e21)"));
  }
  return absl::OkStatus();
}

TokenBucket::TokenBucket(const RateSpec& spec, TimePoint now)
    : ns_per_token_(token_math::NsPerToken(spec)),
      capacity_(token_math::SanitizedBurst(spec)),
      tolerance_(token_math::kToleranceFraction * std::max(1.0, capacity_)),
      level_(capacity_),
      last_(now) {}

double TokenBucket::TokensAt(TimePoint now) const {
  if (now <= last_) return level_;
  const double elapsed_ns =
      static_cast<double>(token_math::SaturatingDiff(now, last_));
  // Finite: elapsed <= 2^63 and ns_per_token_ >= 1e-6.
  return std::min(capacity_, level_ + elapsed_ns / ns_per_token_);
}

void TokenBucket::Advance(TimePoint now) {
  if (now <= last_) return;
  level_ = TokensAt(now);
  last_ = now;
}

bool TokenBucket::TryTake(double cost, TimePoint now) {
  if (!token_math::ValidCost(cost)) return false;
  Advance(now);
  if (cost - level_ > tolerance_) return false;
  level_ -= cost;
  return true;
}

std::optional<TimePoint> TokenBucket::AvailableAt(double cost,
                                                  TimePoint now) const {
  if (!token_math::ValidCost(cost)) return std::nullopt;
  const TimePoint from = std::max(now, last_);
  // Half the tolerance absorbs rounding noise (e.g. 51000000.00000007 ns
  // that is really 51 ms) without ever predicting a time at which TryTake
  // would fail: the shortfall there is at most half the tolerance.
  const double shortfall = cost - TokensAt(from) - tolerance_ / 2;
  if (shortfall <= 0) return now;
  // Unclipped refill is right even for cost > capacity: while a backlog is
  // waiting the level stays below capacity, so it never clips.
  return token_math::AddCeilNs(from, shortfall * ns_per_token_);
}

void TokenBucket::Refund(double cost, TimePoint now) {
  if (!token_math::ValidCost(cost)) return;
  Advance(now);
  level_ = std::min(capacity_, level_ + cost);
}

}  // namespace sluice
