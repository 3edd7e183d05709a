#include "common/pause/pause_schedule.h"

#include <algorithm>
#include <cmath>

#include "common/time/duration.h"

namespace sluice {

PauseSchedule::PauseSchedule(Options options) : options_(options) {}

Duration PauseSchedule::Clamp(Duration d) const {
  return std::clamp(d, Duration::zero(), options_.max_pause);
}

void PauseSchedule::Enter(Phase phase, TimePoint at) {
  phase_ = phase;
  since_ = at;
}

TimePoint PauseSchedule::Advance(TimePoint now) {
  now = std::max(now, last_now_);
  last_now_ = now;
  for (;;) {
    if (phase_ == Phase::kPaused && now >= until_) {
      Enter(Phase::kProbing, until_);
    } else if (phase_ == Phase::kProbing &&
               now - since_ >= options_.probe_timeout) {
      Enter(Phase::kRamping, since_ + options_.probe_timeout);
    } else if (phase_ == Phase::kRamping && now - since_ >= options_.ramp) {
      Enter(Phase::kRunning, since_ + options_.ramp);
      repeats_ = 0;
    } else {
      return now;
    }
  }
}

TimePoint PauseSchedule::Throttle(std::optional<Duration> hint, TimePoint now) {
  now = Advance(now);
  const bool repeat = phase_ == Phase::kProbing || phase_ == Phase::kRamping;
  if (repeat) ++repeats_;
  // default * factor^repeats, saturating at max_pause.
  const double factor =
      std::pow(std::max(1.0, options_.backoff_factor), repeats_);
  const double backoff_s = ToSeconds(options_.default_pause) * factor;
  const Duration backoff =
      backoff_s >= ToSeconds(options_.max_pause) || !std::isfinite(backoff_s)
          ? options_.max_pause
          : Clamp(FromSeconds(backoff_s));
  Duration pause = backoff;
  if (hint.has_value()) {
    pause = repeat ? std::max(Clamp(*hint), backoff) : Clamp(*hint);
  }
  const TimePoint until = now + pause;
  if (phase_ != Phase::kPaused) {
    Enter(Phase::kPaused, now);
    until_ = until;
  } else {
    until_ = std::max(until_, until);
  }
  Advance(now);  // a zero pause goes straight to probing
  return until_;
}

bool PauseSchedule::PauseUntil(TimePoint until, TimePoint now) {
  now = Advance(now);
  if (until <= now || until <= until_) return false;
  until_ = until;
  if (phase_ != Phase::kPaused) Enter(Phase::kPaused, now);
  return true;
}

void PauseSchedule::ProbeSucceeded(TimePoint now) {
  now = Advance(now);
  if (phase_ != Phase::kProbing) return;
  Enter(Phase::kRamping, now);
  Advance(now);
}

PauseSchedule::Phase PauseSchedule::PhaseAt(TimePoint now) {
  Advance(now);
  return phase_;
}

double PauseSchedule::RateFraction(TimePoint now) {
  now = Advance(now);
  switch (phase_) {
    case Phase::kRunning:
      return 1;
    case Phase::kPaused:
    case Phase::kProbing:
      return 0;
    case Phase::kRamping: {
      const double start = std::clamp(options_.ramp_start, 1e-3, 1.0);
      const double t = ToSeconds(now - since_) / ToSeconds(options_.ramp);
      return std::clamp(start + (1 - start) * t, start, 1.0);
    }
  }
  return 1;
}

std::string_view PausePhaseName(PauseSchedule::Phase phase) {
  switch (phase) {
    case PauseSchedule::Phase::kRunning:
      return "running";
    case PauseSchedule::Phase::kPaused:
      return "paused";
    case PauseSchedule::Phase::kProbing:
      return "probing";
    case PauseSchedule::Phase::kRamping:
      return "ramping";
  }
  return "running";
}

}  // namespace sluice
