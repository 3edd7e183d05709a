#ifndef SLUICE_COMMON_PAUSE_PAUSE_SCHEDULE_H_
#define SLUICE_COMMON_PAUSE_PAUSE_SCHEDULE_H_

#include <optional>
#include <string_view>

#include "common/time/clock.h"

namespace sluice {

// The pause and resume state machine of one bucket after the upstream
// throttled it (docs/pause.md). Both binaries run it: the sidecar for its
// own buckets, the quota server for the fleet's.
//
//   running --throttle--> paused --until--> probing --probe ok--> ramping
//      ^                    ^                  |                    |
//      |                    +---- throttle ----+------ throttle ----+
//      +------------------------- ramp done ------------------------+
//
// paused:  nothing may be sent until `paused_until`.
// probing: one request (the probe) may be sent; the rest wait for its
//          answer. No answer within probe_timeout counts as success.
// ramping: the allowed rate grows linearly from ramp_start to the full rate
//          over `ramp`.
//
// Pauses merge: a throttle or a remote pause never moves the end earlier.
// A throttle while probing or ramping means the upstream had not recovered:
// the next pause backs off (default_pause * backoff_factor^repeats, and at
// least what the upstream asked). Repeats reset once a ramp completes.
//
// Pure and not thread-safe: callers serialise, and pass a `now` that does
// not go backwards (an earlier `now` is treated as the latest seen).
class PauseSchedule {
 public:
  enum class Phase { kRunning, kPaused, kProbing, kRamping };

  struct Options {
    // Pause when the upstream gave no usable hint (first throttle).
    Duration default_pause = std::chrono::seconds(1);
    // Upper clamp for any pause, hinted or not.
    Duration max_pause = std::chrono::minutes(5);
    // Growth of the unhinted pause per repeat (>= 1).
    double backoff_factor = 2;
    // How long the probe's answer is awaited before ramping anyway.
    Duration probe_timeout = std::chrono::seconds(2);
    // Length of the ramp; 0 resumes at the full rate after the probe.
    Duration ramp = std::chrono::seconds(5);
    // Fraction of the full rate at the start of the ramp, in (0, 1].
    double ramp_start = 0.1;
    bool operator==(const Options&) const = default;
  };

  explicit PauseSchedule(Options options);

  // The upstream throttled a request at `now`. `hint` is the pause it asked
  // for (nullopt: none usable); it is clamped to [0, max_pause]. Returns the
  // pause end now in force (never earlier than before).
  TimePoint Throttle(std::optional<Duration> hint, TimePoint now);

  // Applies a pause decided elsewhere (the quota server) that ends at
  // `until`. Merges: the later end wins. Does not count as a repeat.
  // Returns true if the end moved later.
  bool PauseUntil(TimePoint until, TimePoint now);

  // The probe was answered without a throttle: probing -> ramping. Ignored
  // in any other phase.
  void ProbeSucceeded(TimePoint now);

  // The phase at `now`, after the timed transitions up to `now`.
  Phase PhaseAt(TimePoint now);

  // Fraction of the full rate allowed at `now`: 0 while paused or probing,
  // ramp_start..1 while ramping, 1 while running.
  double RateFraction(TimePoint now);

  // When the pause in force ends (TimePoint::min() if none ever).
  TimePoint paused_until() const { return until_; }
  // When the current phase began.
  TimePoint phase_since() const { return since_; }
  // Throttles counted as repeats since the last completed ramp.
  int repeats() const { return repeats_; }
  const Options& options() const { return options_; }

 private:
  // Applies the timed transitions up to `now`; returns the clamped `now`.
  TimePoint Advance(TimePoint now);
  void Enter(Phase phase, TimePoint at);
  Duration Clamp(Duration d) const;

  const Options options_;
  Phase phase_ = Phase::kRunning;
  TimePoint since_ = TimePoint::min();
  TimePoint until_ = TimePoint::min();
  TimePoint last_now_ = TimePoint::min();
  int repeats_ = 0;
};

// "running" | "paused" | "probing" | "ramping".
std::string_view PausePhaseName(PauseSchedule::Phase phase);

}  // namespace sluice

#endif  // SLUICE_COMMON_PAUSE_PAUSE_SCHEDULE_H_
