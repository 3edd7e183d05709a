#ifndef SLUICE_COMMON_RATE_TOKEN_SOURCE_H_
#define SLUICE_COMMON_RATE_TOKEN_SOURCE_H_

#include <optional>

#include "common/time/clock.h"

namespace sluice {

// Where tokens come from: a local bucket today, a batch of tokens leased from
// the quota server later. Implementations are NOT thread-safe; the caller
// (RateLimiter) serialises access.
//
// Costs are finite and >= 0. Implementations answer "no" (false / nullopt)
// for a negative, NaN or infinite cost and ignore such a Refund.
//
// Time: `now` should not go backwards. If it does, implementations treat the
// earlier time as the latest time they have seen (time standing still).
class TokenSource {
 public:
  virtual ~TokenSource() = default;

  // Takes `cost` tokens if they are available at `now`; returns whether it
  // took them. A cost of 0 always succeeds.
  virtual bool TryTake(double cost, TimePoint now) = 0;

  // Earliest time >= now at which `cost` tokens would be available if nothing
  // else takes any. nullopt when that can never happen or cannot be predicted.
  //
  // Contract the RateLimiter relies on (a FIFO backlog):
  //  - If the answer is `now`, TryTake(cost, now) succeeds.
  //  - `cost` may exceed Capacity(). The answer is then the time at which a
  //    back-to-back sequence of takes c1, c2, ..., ck (each <= Capacity(),
  //    summing to `cost`, each made as soon as it can succeed) would have
  //    completed. A single take above Capacity() still never succeeds.
  //  - Predictions are never too early: the k-th take of such a sequence
  //    succeeds at AvailableAt(c1 + ... + ck, now) when nothing else takes
  //    tokens. They may be late by the rounding up to whole nanoseconds
  //    (< 1 ns) and nothing more.
  virtual std::optional<TimePoint> AvailableAt(double cost,
                                               TimePoint now) const = 0;

  // Gives back tokens taken but not used (e.g. refunded). The level never
  // exceeds Capacity(): whatever would overflow is dropped.
  virtual void Refund(double cost, TimePoint now) = 0;

  // Capacity (burst) in tokens, for callers that must reject costs that can
  // never fit.
  virtual double Capacity() const = 0;
};

}  // namespace sluice

#endif  // SLUICE_COMMON_RATE_TOKEN_SOURCE_H_
