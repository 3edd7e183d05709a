#ifndef SLUICE_QUOTA_SERVER_CORE_FLEET_PAUSE_H_
#define SLUICE_QUOTA_SERVER_CORE_FLEET_PAUSE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "common/pause/pause_schedule.h"
#include "common/time/clock.h"
#include "sluice/v1/quota.pb.h"

namespace sluice {

using StreamId = uint64_t;

// One Pause a ledger wants sent (docs/pause.md).
struct PauseOrder {
  StreamId stream = 0;
  uint64_t pause_id = 0;
  Duration remaining{};  // 0: the pause is over, only `prober` is news
  bool prober = false;
};

// The fleet-wide pause of one bucket (docs/pause.md), as the quota server
// keeps it: the schedule (paused, probing, ramping, running), the pause id
// and why, who probes, and which members still owe an acknowledgement.
// It decides; the ResourceLedger that owns it acts: it grants nothing but
// the probe's token while halted(), refills its level at rate_fraction() of
// the rate, and sends the Pause orders and the probe token this class
// names. It knows the members only by the stream ids it is given.
//
// Not thread-safe (the ledger's owner serialises calls). Every call takes
// `now`, which must not go backwards.
class FleetPause {
 public:
  explicit FleetPause(const PauseSchedule::Options& options);

  // Stream `from` (of sidecar `sidecar_id`) reported that the upstream
  // throttled it. Starts or extends the pause (the later end wins). The
  // report's hint is first capped at `max_hint` (the bucket's max_pause in
  // force, which a reload may have changed since this pause was created),
  // then clamped by the schedule. If the end moved by more than 50 ms (less is
  // the same ban seen a message delay later), it is news: a new pause id,
  // `from` becomes the prober, granting halts, the rate fraction is 1 (the
  // upstream's bucket refills while paused), and every attached member must
  // be told through Announce; returns true. Otherwise returns false and
  // only the schedule's end may have moved.
  bool OnThrottle(StreamId from, std::string_view sidecar_id,
                  const sluice::v1::ThrottleReport& report, Duration max_hint,
                  TimePoint now);

  // The Pause that tells attached member `stream` of the pause the last
  // OnThrottle returning true started or extended; `stream` then owes an
  // acknowledgement of it.
  PauseOrder Announce(StreamId stream, TimePoint now);

  // The prober's probe was answered: the ramp starts now. Ignored from any
  // other stream or for another pause id.
  void OnProbeResult(StreamId from, uint64_t pause_id, TimePoint now);

  // Stream `from` applied Pause `pause_id` at `applied_at` (the ack's
  // arrival, less the time the sidecar held it). When the last member told
  // of that pause has acknowledged it, returns the time from the throttle
  // report that started it to the latest application (the fleet's
  // propagation time, an upper bound).
  std::optional<Duration> OnPauseAck(StreamId from, uint64_t pause_id,
                                     TimePoint applied_at);

  // The Pause for a member joining now, if the bucket is paused.
  std::optional<PauseOrder> PauseFor(StreamId stream, TimePoint now);

  // What the owner must do after Advance.
  struct Step {
    // Probing, and the probe token is not granted yet: grant it to
    // prober() (ReplaceProber first if that stream is gone).
    bool probe_due = false;
    // The ramp began since the previous Advance: the level starts empty,
    // so nothing saved up during the pause is released at once.
    bool ramp_started = false;
  };
  // Moves the schedule to `now`: ends the pause, times out the probe,
  // paces the ramp. Updates halted() and rate_fraction(). Call it once per
  // tick, before granting.
  Step Advance(TimePoint now);

  // Makes `stream` the prober (the one named is gone) and returns the Pause
  // that tells it so.
  PauseOrder ReplaceProber(StreamId stream);
  // The probe token was granted to prober().
  void ProbeGranted() { probe_granted_ = true; }

  // Who is to send the probe request of the current pause.
  StreamId prober() const { return prober_; }
  // No grants but the probe's token (paused, or probing).
  bool halted() const { return halted_; }
  // The share of the rate the level refills at: 1 while paused or probing,
  // ramp_start..1 along the ramp, 1 once running.
  double rate_fraction() const { return rate_fraction_; }

  struct View {
    PauseSchedule::Phase phase = PauseSchedule::Phase::kRunning;
    uint64_t pause_id = 0;
    Duration remaining{};  // until the pause ends (0 once over)
    double rate_fraction = 1;
    std::string origin_sidecar;
    std::string reason;
    uint64_t pauses = 0;  // pauses started or extended since creation
  };
  // The pause state at `now` (phase kRunning once the ramp is over).
  View ViewAt(TimePoint now) const;

 private:
  PauseSchedule schedule_;
  PauseSchedule::Phase last_phase_ = PauseSchedule::Phase::kRunning;
  uint64_t id_ = 0;
  uint64_t count_ = 0;
  std::string origin_;
  std::string reason_;
  StreamId prober_ = 0;
  bool probe_granted_ = false;
  bool halted_ = false;
  double rate_fraction_ = 1;
  // Propagation: when the throttle report that moved the end arrived, and
  // who was sent that pause and has not acknowledged it yet.
  TimePoint broadcast_at_{};
  // Latest application time among the acks in (acks may arrive out of
  // order: a held fast-path ack names an earlier time).
  TimePoint last_applied_{};
  uint64_t first_id_ = 0;  // the pause id of that broadcast
  absl::flat_hash_set<StreamId> awaiting_ack_;
};

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_CORE_FLEET_PAUSE_H_
