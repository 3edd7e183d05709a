// ResourceLedger's side of the fleet-wide pause (docs/pause.md): the
// FleetPause decides; the ledger tells its members, grants the probe's
// token, empties its level when the ramp starts and refills it at the
// pause's rate fraction.

#include <algorithm>
#include <memory>

#include "quota-server/core/resource_ledger.h"

namespace sluice {

void ResourceLedger::FollowRateFraction(TimePoint now) {
  Accrue(now);
  rate_fraction_ = pause_->rate_fraction();
}

ResourceLedger::Member* ResourceLedger::Attached(StreamId stream) {
  auto it = index_.find(stream);
  if (it == index_.end() || !members_[it->second].attached) return nullptr;
  return &members_[it->second];
}

bool ResourceLedger::OnThrottle(StreamId from, std::string_view sidecar_id,
                                const sluice::v1::ThrottleReport& report,
                                TimePoint now, PauseSink sink) {
  if (!pause_) pause_ = std::make_unique<FleetPause>(limits_.pause);
  if (!pause_->OnThrottle(from, sidecar_id, report, limits_.pause.max_pause,
                          now)) {
    return false;
  }
  FollowRateFraction(now);
  for (const Member& m : members_) {
    if (m.attached) sink(pause_->Announce(m.stream, now));
  }
  return true;
}

void ResourceLedger::OnProbeResult(StreamId from, uint64_t pause_id,
                                   TimePoint now) {
  if (pause_) pause_->OnProbeResult(from, pause_id, now);
}

std::optional<Duration> ResourceLedger::OnPauseAck(StreamId from,
                                                   uint64_t pause_id,
                                                   TimePoint now) {
  if (!pause_) return std::nullopt;
  return pause_->OnPauseAck(from, pause_id, now);
}

std::optional<PauseOrder> ResourceLedger::PauseFor(StreamId stream,
                                                   TimePoint now) {
  if (!pause_) return std::nullopt;
  return pause_->PauseFor(stream, now);
}

void ResourceLedger::TickPause(TimePoint now, GrantSink grants,
                               PauseSink pauses) {
  if (!pause_) return;
  const FleetPause::Step step = pause_->Advance(now);
  if (step.probe_due) {
    if (!Attached(pause_->prober())) {
      // The reporter is gone: the busiest member probes instead.
      const Member* best = nullptr;
      for (const Member& m : members_) {
        if (m.attached && (!best || m.demand > best->demand)) best = &m;
      }
      if (best) pauses(pause_->ReplaceProber(best->stream));
    }
    Accrue(now);
    Member* prober = Attached(pause_->prober());
    if (prober && level_ >= 1) {
      SendGrant(*prober, 1, std::max(1.0, prober->outstanding + 1), now,
                grants);
      pause_->ProbeGranted();
    }
  }
  if (step.ramp_started) {
    // The ramp starts from an empty level: nothing saved up during the
    // pause is released at once.
    Accrue(now);
    level_ = 0;
  }
  FollowRateFraction(now);
}

FleetPause::View ResourceLedger::Pause(TimePoint now) const {
  return pause_ ? pause_->ViewAt(now) : FleetPause::View{};
}

}  // namespace sluice
