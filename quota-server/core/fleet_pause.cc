// ResourceLedger's fleet-wide pause (docs/pause.md): the part of the
// bucket's book that stops grants while the upstream is throttling, hands
// one token to a prober when the pause ends, and refills the level along a
// ramp afterwards.

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "common/time/duration.h"
#include "quota-server/core/resource_ledger.h"

namespace sluice {

using Phase = PauseSchedule::Phase;

namespace {
// Ends this close together are one ban (see OnThrottle).
constexpr Duration kSameBan = std::chrono::milliseconds(50);
}  // namespace

void ResourceLedger::SetRateFraction(double fraction, TimePoint now) {
  Accrue(now);
  rate_fraction_ = fraction;
}

bool ResourceLedger::OnThrottle(StreamId from, std::string_view sidecar_id,
                                const sluice::v1::ThrottleReport& report,
                                TimePoint now, PauseSink sink) {
  if (!pause_) pause_ = std::make_unique<PauseState>(limits_.pause);
  PauseState& p = *pause_;
  const Phase before = p.schedule.PhaseAt(now);
  const TimePoint until_before = p.schedule.paused_until();
  std::optional<Duration> hint;
  if (report.has_hint()) {
    // Capped before the conversion so a huge value cannot overflow.
    hint = std::chrono::milliseconds(std::min<uint64_t>(
        report.pause_ms(),
        std::chrono::duration_cast<std::chrono::milliseconds>(
            limits_.pause.max_pause)
            .count()));
  }
  const TimePoint until = p.schedule.Throttle(hint, now);
  // The same ban seen again (a request that was already on its way, its
  // hint counted from a later moment) moves the end by about a message
  // delay: that is not news worth a broadcast. The schedule keeps the
  // latest end; the probe token waits for it.
  if (before == Phase::kPaused && until <= until_before + kSameBan) {
    return false;
  }
  // A new pause, or a later end: everyone hears of it.
  const bool extension = before == Phase::kPaused;
  ++p.id;
  ++p.count;
  p.origin = std::string(sidecar_id);
  p.reason = report.reason().empty() ? "throttled" : report.reason();
  p.prober = from;
  p.probe_granted = false;
  p.last_phase = p.schedule.PhaseAt(now);
  halted_ = true;
  SetRateFraction(1, now);  // the upstream's bucket refills while paused
  // Propagation is measured per episode: an extension while acks of the
  // first broadcast are still out keeps measuring from that broadcast.
  if (!extension || p.awaiting_ack.empty()) {
    p.broadcast_at = now;
    p.last_applied = now;
    p.first_id = p.id;
    p.awaiting_ack.clear();
  }
  const Duration remaining = std::max(Duration::zero(), until - now);
  for (const Member& m : members_) {
    if (!m.attached) continue;
    p.awaiting_ack.insert(m.stream);
    sink(PauseOrder{.stream = m.stream,
                    .pause_id = p.id,
                    .remaining = remaining,
                    .prober = m.stream == p.prober});
  }
  return true;
}

void ResourceLedger::OnProbeResult(StreamId from, uint64_t pause_id,
                                   TimePoint now) {
  if (!pause_ || pause_id != pause_->id || from != pause_->prober) return;
  pause_->schedule.ProbeSucceeded(now);
}

std::optional<Duration> ResourceLedger::OnPauseAck(StreamId from,
                                                   uint64_t pause_id,
                                                   TimePoint now) {
  if (!pause_ || pause_id < pause_->first_id || pause_id > pause_->id) {
    return std::nullopt;
  }
  PauseState& p = *pause_;
  if (p.awaiting_ack.erase(from) == 0) return std::nullopt;
  p.last_applied = std::max(p.last_applied, now);
  if (!p.awaiting_ack.empty()) return std::nullopt;
  return p.last_applied - p.broadcast_at;
}

std::optional<PauseOrder> ResourceLedger::PauseFor(StreamId stream,
                                                   TimePoint now) {
  if (!pause_ || pause_->schedule.PhaseAt(now) != Phase::kPaused) {
    return std::nullopt;
  }
  return PauseOrder{.stream = stream,
                    .pause_id = pause_->id,
                    .remaining = pause_->schedule.paused_until() - now};
}

void ResourceLedger::TickPause(TimePoint now, GrantSink grants,
                               PauseSink pauses) {
  if (!pause_) return;
  PauseState& p = *pause_;
  const Phase phase = p.schedule.PhaseAt(now);
  if (phase == Phase::kProbing && !p.probe_granted) {
    auto attached = [&](StreamId id) {
      auto it = index_.find(id);
      return it != index_.end() && members_[it->second].attached;
    };
    if (!attached(p.prober)) {
      // The reporter is gone: the busiest member probes instead.
      const Member* best = nullptr;
      for (const Member& m : members_) {
        if (m.attached && (!best || m.demand > best->demand)) best = &m;
      }
      if (best) {
        p.prober = best->stream;
        pauses(
            PauseOrder{.stream = p.prober, .pause_id = p.id, .prober = true});
      }
    }
    Accrue(now);
    if (attached(p.prober) && level_ >= 1) {
      Member& m = members_[index_.at(p.prober)];
      SendGrant(m, 1, std::max(1.0, m.outstanding + 1), now, grants);
      p.probe_granted = true;
    }
  }
  if (phase == Phase::kRamping && p.last_phase != Phase::kRamping) {
    // The ramp starts from an empty level: nothing saved up during the
    // pause is released at once.
    Accrue(now);
    level_ = 0;
    halted_ = false;
  }
  if (phase == Phase::kRunning || phase == Phase::kRamping) halted_ = false;
  SetRateFraction(phase == Phase::kPaused || phase == Phase::kProbing
                      ? 1
                      : p.schedule.RateFraction(now),
                  now);
  p.last_phase = phase;
}

ResourceLedger::PauseView ResourceLedger::Pause(TimePoint now) const {
  PauseView v;
  if (!pause_) return v;
  // PhaseAt advances the schedule; a copy keeps this method const.
  PauseSchedule schedule = pause_->schedule;
  v.phase = schedule.PhaseAt(now);
  v.pause_id = pause_->id;
  v.remaining = std::max(Duration::zero(), schedule.paused_until() - now);
  v.rate_fraction = v.phase == Phase::kRunning ? 1 : rate_fraction_;
  v.origin_sidecar = pause_->origin;
  v.reason = pause_->reason;
  v.pauses = pause_->count;
  return v;
}

}  // namespace sluice
