#ifndef SLUICE_QUOTA_SERVER_CORE_LIMIT_LEARNER_H_
#define SLUICE_QUOTA_SERVER_CORE_LIMIT_LEARNER_H_

#include <optional>

#include "common/time/clock.h"
#include "quota-server/config/server_config.h"

namespace sluice {

// Learns an upstream's real limit when it is lower than the configured one
// (docs/pause.md, "Learned limits"), for a resource with `learn` on.
//
// - A throttle whose headers state the limit (limit / window) sets the
//   learned rate to that, at once.
// - A throttle without such headers is a multiplicative decrease: the rate
//   in force times `decrease` (never below `floor` of the configured rate).
// - After `hold` without a throttle, the rate grows back additively by
//   `increase` of the configured rate per second, up to the configured rate,
//   where nothing is learned any more.
// - A limit stated on an ordinary (not throttled) response is an
//   observation: a lower one is taken at once, a higher one at once only
//   when no throttle came within `hold` (else the additive increase climbs
//   to it). For `stated_ttl` after the last observation the increase never
//   goes past the stated limit.
// The rate in force is min(configured, learned).
//
// Pure and not thread-safe; `now` must not go backwards.
class LimitLearner {
 public:
  using Options = LearnOptions;

  LimitLearner(Options options, double configured_per_second, TimePoint now);

  // The configured rate changed (reload, admin endpoint).
  void SetConfigured(double configured_per_second);
  // A fleet pause started. `stated_per_second`: the limit the throttle's
  // headers stated, if any.
  void OnThrottle(std::optional<double> stated_per_second, TimePoint now);
  // The upstream stated its limit (per second) on an ordinary response.
  // Non-finite or non-positive values are ignored.
  void OnStated(double stated_per_second, TimePoint now);
  // Applies the additive increase up to `now`.
  void Advance(TimePoint now);

  // min(configured, learned).
  double effective() const;
  // The learned rate while it is below the configured one.
  std::optional<double> learned() const;
  // The last stated limit while fresh (within stated_ttl before `now`).
  std::optional<double> stated(TimePoint now) const;

 private:
  Options options_;
  double configured_;
  // The ceiling of the additive increase: configured, or a stated limit
  // observed within stated_ttl before `now`.
  double Ceiling(TimePoint now) const;
  // learned_ = v, floored; cleared at or above the configured rate.
  void SetLearned(double v);

  std::optional<double> learned_;
  std::optional<double> stated_;
  TimePoint stated_at_;
  TimePoint last_throttle_;
  TimePoint advanced_at_;
};

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_CORE_LIMIT_LEARNER_H_
