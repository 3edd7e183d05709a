// The fleet-wide pause of one bucket (docs/pause.md): decides when grants
// stop while the upstream is throttling, who probes when the pause ends,
// and how fast the level refills along the ramp afterwards.

#include "quota-server/core/fleet_pause.h"

#include <algorithm>

#include "common/time/duration.h"

namespace sluice {

using Phase = PauseSchedule::Phase;

namespace {
// Ends this close together are one ban (see OnThrottle).
constexpr Duration kSameBan = std::chrono::milliseconds(50);
}  // namespace

FleetPause::FleetPause(const PauseSchedule::Options& options)
    : schedule_(options) {}

bool FleetPause::OnThrottle(StreamId from, std::string_view sidecar_id,
                            const sluice::v1::ThrottleReport& report,
                            Duration max_hint, TimePoint now) {
  const Phase before = schedule_.PhaseAt(now);
  const TimePoint until_before = schedule_.paused_until();
  std::optional<Duration> hint;
  if (report.has_hint()) {
    // Capped before the conversion so a huge value cannot overflow.
    hint = std::chrono::milliseconds(std::min<uint64_t>(
        report.pause_ms(),
        std::chrono::duration_cast<std::chrono::milliseconds>(max_hint)
            .count()));
  }
  const TimePoint until = schedule_.Throttle(hint, now);
  // The same ban seen again (a request that was already on its way, its
  // hint counted from a later moment) moves the end by about a message
  // delay: that is not news worth a broadcast. The schedule keeps the
  // latest end; the probe token waits for it.
  if (before == Phase::kPaused && until <= until_before + kSameBan) {
    return false;
  }
  // A new pause, or a later end: everyone hears of it.
  const bool extension = before == Phase::kPaused;
  ++id_;
  ++count_;
  origin_ = std::string(sidecar_id);
  reason_ = report.reason().empty() ? "throttled" : report.reason();
  prober_ = from;
  probe_granted_ = false;
  last_phase_ = schedule_.PhaseAt(now);
  halted_ = true;
  rate_fraction_ = 1;  // the upstream's bucket refills while paused
  // Propagation is measured per episode: an extension while acks of the
  // first broadcast are still out keeps measuring from that broadcast.
  if (!extension || awaiting_ack_.empty()) {
    broadcast_at_ = now;
    last_applied_ = now;
    first_id_ = id_;
    awaiting_ack_.clear();
  }
  return true;
}

PauseOrder FleetPause::Announce(StreamId stream, TimePoint now) {
  awaiting_ack_.insert(stream);
  return PauseOrder{
      .stream = stream,
      .pause_id = id_,
      .remaining = std::max(Duration::zero(), schedule_.paused_until() - now),
      .prober = stream == prober_};
}

void FleetPause::OnProbeResult(StreamId from, uint64_t pause_id,
                               TimePoint now) {
  if (pause_id != id_ || from != prober_) return;
  schedule_.ProbeSucceeded(now);
}

std::optional<Duration> FleetPause::OnPauseAck(StreamId from, uint64_t pause_id,
                                               TimePoint applied_at) {
  if (pause_id < first_id_ || pause_id > id_) return std::nullopt;
  if (awaiting_ack_.erase(from) == 0) return std::nullopt;
  last_applied_ = std::max(last_applied_, applied_at);
  if (!awaiting_ack_.empty()) return std::nullopt;
  return last_applied_ - broadcast_at_;
}

std::optional<PauseOrder> FleetPause::PauseFor(StreamId stream, TimePoint now) {
  if (schedule_.PhaseAt(now) != Phase::kPaused) return std::nullopt;
  return PauseOrder{.stream = stream,
                    .pause_id = id_,
                    .remaining = schedule_.paused_until() - now};
}

FleetPause::Step FleetPause::Advance(TimePoint now) {
  const Phase phase = schedule_.PhaseAt(now);
  Step step;
  step.probe_due = phase == Phase::kProbing && !probe_granted_;
  step.ramp_started =
      phase == Phase::kRamping && last_phase_ != Phase::kRamping;
  if (phase == Phase::kRunning || phase == Phase::kRamping) halted_ = false;
  rate_fraction_ = phase == Phase::kPaused || phase == Phase::kProbing
                       ? 1
                       : schedule_.RateFraction(now);
  last_phase_ = phase;
  return step;
}

PauseOrder FleetPause::ReplaceProber(StreamId stream) {
  prober_ = stream;
  return PauseOrder{.stream = stream, .pause_id = id_, .prober = true};
}

FleetPause::View FleetPause::ViewAt(TimePoint now) const {
  View v;
  // PhaseAt advances the schedule; a copy keeps this method const.
  PauseSchedule schedule = schedule_;
  v.phase = schedule.PhaseAt(now);
  v.pause_id = id_;
  // Only a paused schedule has an end ahead (a pause never started has
  // none: paused_until() is the earliest time there is).
  if (v.phase == Phase::kPaused) v.remaining = schedule.paused_until() - now;
  v.rate_fraction = v.phase == Phase::kRunning ? 1 : rate_fraction_;
  v.origin_sidecar = origin_;
  v.reason = reason_;
  v.pauses = count_;
  return v;
}

}  // namespace sluice
