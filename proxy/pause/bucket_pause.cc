#include "proxy/pause/bucket_pause.h"

#include <algorithm>
#include <cmath>

#include "common/time/duration.h"

namespace sluice {

using PausePhase = PauseSchedule::Phase;

namespace {
// A remote pause with the last applied id ending this close to the current
// end is the same message seen twice.
constexpr Duration kSameRemotePause = std::chrono::milliseconds(50);
}  // namespace

BucketPause::BucketPause(Options options)
    : options_(options), schedule_(options.schedule), rng_(options.seed) {}

void BucketPause::set_callbacks(
    std::function<void(const Event&)> on_event,
    std::function<void(bool remote, bool started)> on_pause) {
  on_event_ = std::move(on_event);
  on_pause_ = std::move(on_pause);
}

PauseSchedule::Phase BucketPause::PhaseLocked(TimePoint now) {
  const PausePhase phase = schedule_.PhaseAt(now);
  if (phase == PausePhase::kRunning) {
    running_.store(true, std::memory_order_release);
  }
  return phase;
}

void BucketPause::NewJitterLocked() {
  probe_out_ = false;
  ramp_next_ = TimePoint{};  // a later ramp starts with a fresh pace
  // At most half the probe timeout, so a jittered probe still has time to
  // be answered before the schedule ramps without it.
  const Duration max_jitter =
      std::min(options_.resume_jitter, options_.schedule.probe_timeout / 2);
  if (max_jitter <= Duration::zero()) {
    jitter_ = Duration::zero();
    return;
  }
  std::uniform_int_distribution<int64_t> d(0, max_jitter.count() - 1);
  jitter_ = Duration(d(rng_));
}

TimePoint BucketPause::OnThrottled(const Throttle& throttle, TimePoint now) {
  const TimePoint admitted_at = throttle.admitted_at;
  Event event;
  bool moved = false;
  bool started = false;
  TimePoint until;
  {
    std::lock_guard lock(mu_);
    const PausePhase before = PhaseLocked(now);
    const TimePoint until_before = schedule_.paused_until();
    if ((before == PausePhase::kProbing || before == PausePhase::kRamping) &&
        admitted_at < schedule_.paused_until()) {
      // Sent before the pause ended (so before it began): an answer from
      // the episode already handled, not news about the upstream now.
      return schedule_.paused_until();
    }
    // While paused, a throttle of a request sent before the pause began is
    // the same ban answered again: merged here, but not news for the fleet.
    const bool straggler =
        before == PausePhase::kPaused && admitted_at < schedule_.phase_since();
    const bool was_probe = before == PausePhase::kProbing && probe_out_ &&
                           admitted_at >= probe_at_;
    until = schedule_.Throttle(throttle.hint, now);
    moved = before != PausePhase::kPaused || until > until_before;
    started = before != PausePhase::kPaused;
    if (moved && !straggler) {
      running_.store(false, std::memory_order_release);
      NewJitterLocked();
      ++stats_.pauses;
    }
    if (straggler) moved = false;
    event = Event{.kind = Event::Kind::kThrottled,
                  .status = throttle.status,
                  .hint = throttle.hint,
                  .reason = std::string(throttle.reason),
                  .probe = was_probe,
                  .limit = throttle.limit,
                  .window = throttle.window};
  }
  if (moved) {
    // The pause is noted (cheap: counters, a posted shed) before it is
    // reported, so no sidecar can see it start before this one did.
    if (on_pause_) on_pause_(false, started);
    if (throttle.broadcast && on_event_) on_event_(event);
  }
  return until;
}

void BucketPause::OnAnswered(TimePoint admitted_at, TimePoint now) {
  if (Running()) return;  // no probe to end
  Event event;
  {
    std::lock_guard lock(mu_);
    if (PhaseLocked(now) != PausePhase::kProbing || !probe_out_ ||
        admitted_at < probe_at_) {
      return;
    }
    schedule_.ProbeSucceeded(now);
    probe_out_ = false;
    ramp_next_ = now;
    event = Event{.kind = Event::Kind::kProbeOk, .pause_id = remote_pause_id_};
  }
  if (on_event_) on_event_(event);
}

bool BucketPause::OnRemotePause(Duration remaining, uint64_t pause_id,
                                TimePoint now) {
  bool moved = false;
  bool started = false;
  {
    std::lock_guard lock(mu_);
    // The same message seen twice (the stream's reaction applies it, then
    // the agent): a no-op. A restarted server may reuse the id, but then
    // not for the same end.
    if (pause_id != 0 && pause_id == remote_pause_id_ &&
        now + remaining <= schedule_.paused_until() + kSameRemotePause) {
      return false;
    }
    remote_pause_id_ = pause_id;
    started = PhaseLocked(now) != PausePhase::kPaused;
    moved =
        schedule_.PauseUntil(now + std::max(remaining, Duration::zero()), now);
    if (moved) {
      running_.store(false, std::memory_order_release);
      NewJitterLocked();
      ++stats_.remote_pauses;
    }
  }
  if (moved && on_pause_) on_pause_(true, started);
  return moved;
}

TimePoint BucketPause::ReadyAtLocked(TimePoint now) {
  switch (PhaseLocked(now)) {
    case PausePhase::kRunning:
      return now;
    case PausePhase::kPaused:
      return schedule_.paused_until() + jitter_;
    case PausePhase::kProbing: {
      const TimePoint resume = schedule_.paused_until() + jitter_;
      if (now < resume) return resume;
      if (probe_out_) {
        return schedule_.phase_since() + options_.schedule.probe_timeout;
      }
      return now;
    }
    case PausePhase::kRamping:
      // Pacing ends with the ramp.
      return std::max(now, std::min(ramp_next_, schedule_.phase_since() +
                                                    options_.schedule.ramp));
  }
  return now;
}

TimePoint BucketPause::BacklogReadyAtLocked(double cost, TimePoint now) {
  const TimePoint next = ReadyAtLocked(now);
  const PausePhase phase = PhaseLocked(now);
  if (phase == PausePhase::kRunning) return now;
  // Where the ramp starts (or started) and how much of it is left from
  // `next`, when the first of the backlog goes.
  const Duration ramp = options_.schedule.ramp;
  TimePoint ramp_start = next;
  if (phase == PausePhase::kRamping) ramp_start = schedule_.phase_since();
  const TimePoint ramp_end = ramp_start + ramp;
  const double rate = options_.full_rate_per_second;
  if (rate <= 0 || next >= ramp_end) return next;
  // Fluid model of the ramp from `next`: the rate fraction grows linearly
  // from f to 1 over the rest of the ramp. Solve tokens(x) = cost for x.
  // The first request goes at `next`; the rest follow along a fluid model
  // of the ramp, whose rate fraction grows linearly from f to 1 over what
  // is left of it. Solve tokens(x) = the rest.
  if (cost <= 1) return next;
  const double rest = cost - 1;
  const double f0 = std::clamp(options_.schedule.ramp_start, 1e-3, 1.0);
  const double k = (1 - f0) / ToSeconds(ramp);  // fraction per second
  const double f = f0 + k * ToSeconds(next - ramp_start);
  const double left = ToSeconds(ramp_end - next);
  const double in_ramp = rate * (f * left + k * left * left / 2);
  double x;
  if (rest >= in_ramp) {
    x = left + (rest - in_ramp) / rate;
  } else if (k <= 0) {
    x = rest / (rate * f);
  } else {
    // rate * (f x + k x^2 / 2) = rest
    x = (-f + std::sqrt(f * f + 2 * k * rest / rate)) / k;
  }
  // The pacing spaces each request by its cost at the rate of its own
  // start, which lags the fluid model; the lag telescopes to less than one
  // request's spacing at the ramp's rate at `next`.
  return next + FromSeconds(x + 1 / (rate * f));
}

TimePoint BucketPause::BacklogReadyAt(double cost, TimePoint now) {
  if (Running()) return now;
  std::lock_guard lock(mu_);
  return BacklogReadyAtLocked(cost, now);
}

bool BucketPause::Allows(TimePoint now) {
  if (Running()) return true;
  std::lock_guard lock(mu_);
  return ReadyAtLocked(now) <= now;
}

void BucketPause::Took(double cost, TimePoint now) {
  if (Running()) return;
  std::lock_guard lock(mu_);
  switch (PhaseLocked(now)) {
    case PausePhase::kProbing:
      probe_out_ = true;
      probe_at_ = now;
      ++stats_.probes;
      break;
    case PausePhase::kRamping: {
      const double rate =
          options_.full_rate_per_second * schedule_.RateFraction(now);
      if (rate > 0) {
        ramp_next_ = std::max(ramp_next_, now) + FromSeconds(cost / rate);
      }
      break;
    }
    default:
      break;
  }
}

TimePoint BucketPause::ReadyAt(TimePoint now) {
  if (Running()) return now;
  std::lock_guard lock(mu_);
  return ReadyAtLocked(now);
}

PauseSchedule::Phase BucketPause::PhaseAt(TimePoint now) {
  if (Running()) return PausePhase::kRunning;
  std::lock_guard lock(mu_);
  return PhaseLocked(now);
}

Duration BucketPause::Remaining(TimePoint now) {
  if (Running()) return Duration::zero();
  std::lock_guard lock(mu_);
  const PausePhase phase = PhaseLocked(now);
  if (phase != PausePhase::kPaused && phase != PausePhase::kProbing) {
    return Duration::zero();
  }
  // Probing counts as paused until this sidecar's jittered resume.
  return std::max(Duration::zero(), schedule_.paused_until() + jitter_ - now);
}

BucketPause::Stats BucketPause::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

bool BucketPause::WantsStatedLimit(TimePoint now) {
  if (options_.stated_limit_interval <= Duration::zero()) return false;
  const int64_t t = now.time_since_epoch().count();
  int64_t next = next_stated_check_.load(std::memory_order_relaxed);
  if (t < next) return false;
  const int64_t then = t + options_.stated_limit_interval.count();
  return next_stated_check_.compare_exchange_strong(next, then,
                                                    std::memory_order_relaxed);
}

void BucketPause::NoteStatedLimit(StatedLimit stated) {
  if (!std::isfinite(stated.limit) || stated.limit <= 0 ||
      stated.window <= Duration::zero()) {
    return;
  }
  std::lock_guard lock(mu_);
  stated_ = stated;
}

std::optional<BucketPause::StatedLimit> BucketPause::TakeStatedLimit() {
  std::lock_guard lock(mu_);
  std::optional<StatedLimit> out = stated_;
  stated_.reset();
  return out;
}

}  // namespace sluice
