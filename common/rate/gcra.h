#ifndef SLUICE_COMMON_RATE_GCRA_H_
#define SLUICE_COMMON_RATE_GCRA_H_

#include <cstdint>
#include <optional>

#include "common/rate/token_bucket.h"
#include "common/rate/token_source.h"
#include "common/time/clock.h"

namespace sluice {

// Generic Cell Rate Algorithm (virtual scheduling form), extended to
// fractional and multi-token costs.
//
// Definitions, with all times in nanoseconds:
//   T   = period / tokens          emission interval (time to earn 1 token)
//   tau = T * burst                tolerance
//   TAT                            theoretical arrival time; starts at `now`
//                                  (the bucket starts full)
//   eps = kToleranceFraction * max(1, burst) * T   rounding slack
//
// A request of cost c at time t conforms iff
//       max(TAT, t) + c*T - tau <= t + eps
// and, when it conforms, TAT := max(TAT, t) + c*T.
//
// This is the token bucket seen from the time axis: the level at t is
// (t + tau - max(TAT, t)) / T, which is at most burst, so a request
// conforms exactly when its cost fits the level. An idle source earns at most
// `burst` tokens; a request of cost > burst never conforms.
//
// TAT is kept as whole nanoseconds plus a fraction in [0, 1), re-based on each
// update, so fractional emission intervals (e.g. 1s / 3) never drift.
class GcraBucket final : public TokenSource {
 public:
  // `spec` should pass ValidateRateSpec; out-of-range values are clamped.
  GcraBucket(const RateSpec& spec, TimePoint now);

  bool TryTake(double cost, TimePoint now) override;
  std::optional<TimePoint> AvailableAt(double cost,
                                       TimePoint now) const override;
  void Refund(double cost, TimePoint now) override;
  double Capacity() const override { return capacity_; }

  // Tokens available at `now`: (now + tau - max(TAT, now)) / T. For tests and
  // metrics.
  double TokensAt(TimePoint now) const;

 private:
  // max(TAT, t) - t in nanoseconds (>= 0).
  double DelayAfter(TimePoint t) const;
  // Sets TAT = t + delay_ns (delay_ns >= 0), saturating.
  void SetTat(TimePoint t, double delay_ns);

  double ns_per_token_;  // T
  double capacity_;      // burst
  double tau_ns_;        // T * burst
  double slack_ns_;      // eps
  int64_t tat_ns_;       // TAT = tat_ns_ + tat_frac_
  double tat_frac_;      // in [0, 1) (more only past the end of time)
  TimePoint last_;       // latest `now` seen; earlier times are treated as it
};

}  // namespace sluice

#endif  // SLUICE_COMMON_RATE_GCRA_H_
