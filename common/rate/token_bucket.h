#ifndef SLUICE_COMMON_RATE_TOKEN_BUCKET_H_
#define SLUICE_COMMON_RATE_TOKEN_BUCKET_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "common/rate/token_source.h"
#include "common/time/clock.h"

namespace sluice {

// A rate: `tokens` per `period`, with a bucket of `burst` tokens.
// Example: {100, 1s, 20} allows 100 tokens a second and at most 20 at once.
struct RateSpec {
  double tokens = 1;
  Duration period = std::chrono::seconds(1);
  double burst = 1;
};

// Checks that a spec is usable: tokens finite and > 0, period > 0, burst
// finite and > 0, and every value inside the ranges the sources support
// (tokens and burst <= 1e15; period / tokens between 1e-6 ns and 1e21 ns).
absl::Status ValidateRateSpec(const RateSpec& spec);

// Arithmetic shared by the token sources. Not part of the public API.
namespace token_math {

// Conformance tolerance, as a fraction of max(1, burst) tokens. A take that
// is short by less than this succeeds; the shortfall is carried as debt, so
// the tolerance never accumulates. It absorbs floating-point rounding so
// that predictions made for a FIFO backlog hold (see TokenSource).
inline constexpr double kToleranceFraction = 1e-10;

// Costs above this are treated as never available (keeps products finite).
inline constexpr double kMaxCost = 1e18;

// Nanoseconds needed to refill one token, clamped into [1e-6, 1e21] so that
// out-of-range specs never produce NaN or infinity. A non-positive or NaN
// rate maps to the slowest rate.
double NsPerToken(const RateSpec& spec);
// Burst clamped into [0, 1e15]; NaN maps to 0.
double SanitizedBurst(const RateSpec& spec);
// Whether a cost is one the sources accept: finite, >= 0, <= kMaxCost.
inline bool ValidCost(double cost) { return cost >= 0 && cost <= kMaxCost; }
// t + ceil(ns) for ns >= 0; nullopt if that does not fit a TimePoint.
std::optional<TimePoint> AddCeilNs(TimePoint t, double ns);
// a - b in nanoseconds for a >= b, saturating at INT64_MAX.
int64_t SaturatingDiff(TimePoint a, TimePoint b);

}  // namespace token_math

// Classic token bucket. The level is stored in tokens (a double) together
// with the time of the last update; refill is continuous (elapsed ns divided
// by ns-per-token, so there is no per-tick rounding and no drift from
// quantised ticks). The bucket starts full.
//
// A take of `cost` succeeds at `now` iff level(now) >= cost - tolerance, where
// level(now) = min(burst, level + (now - last) / ns_per_token) and tolerance
// is token_math::kToleranceFraction * max(1, burst).
class TokenBucket final : public TokenSource {
 public:
  // `spec` should pass ValidateRateSpec; out-of-range values are clamped.
  TokenBucket(const RateSpec& spec, TimePoint now);

  bool TryTake(double cost, TimePoint now) override;
  std::optional<TimePoint> AvailableAt(double cost,
                                       TimePoint now) const override;
  void Refund(double cost, TimePoint now) override;
  double Capacity() const override { return capacity_; }

  // Tokens in the bucket at `now` (never above Capacity(); may be negative by
  // at most the tolerance). For tests and metrics.
  double TokensAt(TimePoint now) const;

 private:
  // Brings level_ and last_ up to `now` (no-op if now <= last_).
  void Advance(TimePoint now);

  double ns_per_token_;
  double capacity_;
  double tolerance_;
  double level_;
  TimePoint last_;
};

}  // namespace sluice

#endif  // SLUICE_COMMON_RATE_TOKEN_BUCKET_H_
