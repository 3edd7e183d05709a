#ifndef SLUICE_QUOTA_SERVER_CORE_RESOURCE_LEDGER_H_
#define SLUICE_QUOTA_SERVER_CORE_RESOURCE_LEDGER_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "common/pause/pause_schedule.h"
#include "common/time/clock.h"
#include "quota-server/config/server_config.h"
#include "quota-server/core/fair_share.h"
#include "quota-server/core/fleet_pause.h"
#include "sluice/v1/quota.pb.h"

namespace sluice {

// One LeaseGrant a ledger wants sent.
struct GrantOrder {
  StreamId stream = 0;
  double tokens = 0;  // 0: only a new target (a shrink, or a revoke at 0)
  double target = 0;
  double share_per_second = 0;
  // The member's latest DemandReport.report_seq (LeaseGrant.report_seq).
  uint64_t report_seq = 0;
};
// Sends one grant (in order on its stream) and returns its seq (> 0).
using GrantSink = absl::FunctionRef<uint64_t(const GrantOrder&)>;

// The limit a ledger enforces.
struct LedgerLimits {
  double rate_per_second = 1;
  double burst = 1;
  LeaseTuning lease;
  PauseSchedule::Options pause;
};

// Sends one Pause.
using PauseSink = absl::FunctionRef<void(const PauseOrder&)>;

// The server's book for one bucket (a resource, or one key of a per-key
// resource), as docs/leasing.md describes it: the level L, and per member
// stream the outstanding bound O_i = held_i + tokens of grants not yet seen.
// It keeps L + sum(O_i) <= cap, where cap is the burst b, or
// min(b, K) while learning (K: the held tokens first reported by each
// sidecar since start). Shares come from weighted max-min water-filling of
// the smoothed demands, plus spare capacity by weight; a member targets
// share * horizon tokens.
//
// Not thread-safe. Times passed in must not go backwards.
class ResourceLedger {
 public:
  // Every ledger recomputes its shares on each Tick; one this small also
  // recomputes at once on a material demand change (so a newcomer's share
  // is right in its first answer).
  static constexpr size_t kSmallLedger = 64;

  // Learning mode lasts until `learning_until` (TimePoint::min(): never).
  // The level starts at `initial_level` (capped by the invariant): 0 for a
  // resource's bucket at server start (a token is granted only after it
  // has accrued), the burst for a new key of a per-key resource.
  ResourceLedger(LedgerLimits limits, TimePoint now, TimePoint learning_until,
                 double initial_level = 0);

  // New limits from `now` (tokens accrue at the old rate until then).
  void SetLimits(const LedgerLimits& limits, TimePoint now);
  // Leaves learning mode at once.
  void EndLearning();

  // Who sent a report.
  struct Reporter {
    StreamId stream = 0;
    // Who the reporter is across reconnects (the sidecar id, or its
    // instance); empty: unknown, counted in K on every first report.
    std::string_view sidecar_id;
    double weight = 1;
    // Older streams of the same sidecar: their members here are replaced by
    // this stream's first report.
    std::span<const StreamId> replaces;
  };
  // Applies a report: absolute held and grant_seq_seen, demand. Sends at
  // most one grant (top-up) or shrink through `sink`. Streams whose member
  // was dropped (replaced) are appended to `removed`. Returns true if the
  // reporter was new to this ledger.
  bool OnReport(const Reporter& who, const sluice::v1::DemandReport& report,
                TimePoint now, GrantSink sink, std::vector<StreamId>* removed);

  // The stream closed or was replaced: it gets nothing more and its share
  // goes back to the others, but its O_i stays until its tokens are dead
  // (last grant + ttl + grace).
  void Detach(StreamId stream, TimePoint now);

  // Accrues the level, drops dead in-flight grants and expired members
  // (appended to `removed`), ends learning, recomputes shares, sends
  // shrinks, and tops up members below target: first each by its
  // entitlement, in a rotating order, then the leftover level by weight.
  void Tick(TimePoint now, GrantSink sink, std::vector<StreamId>* removed);

  // Sends target 0 to every attached member (the resource is going away).
  void RevokeAll(GrantSink sink);

  // --- Fleet-wide pause (docs/pause.md; resource_ledger_pause.cc) ---------
  // The pause is a FleetPause, created by the first throttle report: it
  // decides, the ledger sends what it decides and paces its level by it.
  //
  // A member reported that the upstream throttled it. Starts or extends the
  // pause (the later end wins); if the end moved by more than 50 ms (less
  // is the same ban seen a message delay later), every attached member is
  // sent a Pause through `sink` and grants stop. The reporter becomes the
  // prober. Returns true if the end moved (a new pause, for the metrics).
  bool OnThrottle(StreamId from, std::string_view sidecar_id,
                  const sluice::v1::ThrottleReport& report, TimePoint now,
                  PauseSink sink);
  // The prober's probe was answered: the ramp starts now.
  void OnProbeResult(StreamId from, uint64_t pause_id, TimePoint now);
  // A member applied Pause `pause_id` at `now` (the ack's arrival, less the
  // time the sidecar held it). When the last member sent that pause has
  // acknowledged it, returns the time from the throttle report that started
  // it to the latest application (the fleet's propagation time, an upper
  // bound).
  std::optional<Duration> OnPauseAck(StreamId from, uint64_t pause_id,
                                     TimePoint now);
  // The Pause for a member joining now, if the bucket is paused.
  std::optional<PauseOrder> PauseFor(StreamId stream, TimePoint now);
  // Pause work for Tick (call it before Tick): grants the probe token once
  // the pause ends (choosing another prober if the first is gone, told
  // through `pauses`), starts the ramp after the probe (or its timeout) and
  // paces the level's refill along it.
  void TickPause(TimePoint now, GrantSink grants, PauseSink pauses);

  // The pause state now; phase kRunning when none is in force.
  FleetPause::View Pause(TimePoint now) const;

  // --- Introspection ------------------------------------------------------
  double Level(TimePoint now) const;                   // L as of `now`
  double Outstanding() const { return outstanding_; }  // sum O_i
  double Cap(TimePoint now) const;                     // b or min(b, K)
  bool Learning(TimePoint now) const;
  double HorizonSeconds() const;  // min(horizon, b / (2r))
  const LedgerLimits& limits() const { return limits_; }
  bool empty() const { return members_.empty(); }
  // When the ledger last granted tokens (its creation if never).
  TimePoint last_grant_at() const { return last_grant_at_; }
  size_t size() const { return members_.size(); }

  struct MemberView {
    StreamId stream = 0;
    bool attached = false;
    double weight = 1;
    double demand_per_second = 0;
    double share_per_second = 0;
    double outstanding = 0;
    double granted_total = 0;
  };
  void ForEachMember(absl::FunctionRef<void(const MemberView&)> fn) const;

 private:
  struct InFlight {
    uint64_t seq;
    double tokens;
    TimePoint dead_at;  // sent + grace + ttl: dead even if never seen
  };
  struct Member {
    StreamId stream = 0;
    bool attached = true;
    bool demand_known = false;
    bool provisional = false;  // demand is a newcomer's guess
    double weight = 1;
    double demand = 0;       // EWMA, tokens/s
    double last_queued = 0;  // backlog in the previous report
    double held = 0;
    uint64_t seq_seen = 0;
    uint64_t report_seq = 0;          // the latest report's, echoed in grants
    std::vector<InFlight> in_flight;  // ascending seq
    double outstanding = 0;           // held + in-flight tokens
    double share = 0;                 // tokens/s
    double last_target_sent = -1;     // < 0: none sent yet
    double granted_total = 0;
    // Fair pacing of a scarce level: the member may take what its share
    // accrued since it last took (at most one target's worth), plus any
    // level beyond what every member's entitlement could claim.
    double entitled = -1;  // < 0: not started (a newcomer gets a target)
    TimePoint entitled_at;
    TimePoint last_report;
    TimePoint tokens_dead_at;  // every token it may hold is dead by then
  };

  void Accrue(TimePoint now);
  void ClampLevel(TimePoint now);
  Member& AddMember(const Reporter& who, TimePoint now,
                    std::vector<StreamId>* removed);
  void RemoveAt(size_t index);
  void UpdateDemand(Member& m, const sluice::v1::DemandReport& report,
                    TimePoint now);
  void SetOutstanding(Member& m, double value);
  void DropDeadInFlight(Member& m, TimePoint now);
  void Recompute();
  double InterimShare(const Member& m) const;
  // Brings m.entitled up to `now` at m.share, capped at `target`.
  void AccrueEntitlement(Member& m, double target, TimePoint now);
  // Sends a top-up or a shrink if due. `asked`: the member just reported.
  void Serve(Member& m, bool asked, TimePoint now, GrantSink sink);
  void SendGrant(Member& m, double tokens, double target, TimePoint now,
                 GrantSink sink);

  // No grants but the probe's (paused, probing).
  bool Halted() const { return pause_ && pause_->halted(); }
  // Accrues the level up to `now` at the old pace, then takes the pause's
  // rate fraction as the pace from `now`.
  void FollowRateFraction(TimePoint now);
  // The attached member of `stream`, or null.
  Member* Attached(StreamId stream);

  LedgerLimits limits_;
  Duration dead_after_grant_;  // ttl + grace
  // The pause, created by the first throttle report.
  std::unique_ptr<FleetPause> pause_;
  // The share of the rate the level has refilled at since accrued_at_: the
  // pause's rate_fraction() as of the last FollowRateFraction.
  double rate_fraction_ = 1;
  double level_ = 0;
  TimePoint accrued_at_;
  TimePoint last_grant_at_;
  double outstanding_ = 0;  // sum of members' outstanding

  bool learning_ = false;
  TimePoint learning_until_;
  double known_held_ = 0;  // K
  absl::flat_hash_set<std::string> learned_ids_;

  std::vector<Member> members_;
  absl::flat_hash_map<StreamId, uint32_t> index_;
  bool dirty_ = true;  // shares need recomputing
  // Which grant pass Serve runs in (see Tick).
  enum class Pass { kReport, kEntitled, kLeftover };
  Pass pass_ = Pass::kReport;
  double leftover_ = 0;      // level at the start of the leftover pass
  double total_weight_ = 0;  // of attached members, at the last Recompute
  ShareLevels levels_{.lambda = std::numeric_limits<double>::infinity()};
  size_t serve_offset_ = 0;
  std::vector<double> scratch_demand_, scratch_weight_, scratch_share_;
};

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_CORE_RESOURCE_LEDGER_H_
