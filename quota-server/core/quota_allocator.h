#ifndef SLUICE_QUOTA_SERVER_CORE_QUOTA_ALLOCATOR_H_
#define SLUICE_QUOTA_SERVER_CORE_QUOTA_ALLOCATOR_H_

#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/pause/pause_schedule.h"
#include "common/time/clock.h"
#include "quota-server/config/server_config.h"
#include "sluice/v1/quota.pb.h"

namespace sluice {

// Identifies one sidecar stream for the life of the stream. Assigned by the
// transport (gRPC reactor or simulation); never reused within a process.
using StreamId = uint64_t;

// Cumulative histogram of pause propagation times (seconds): from the
// throttle report that started or extended a pause to the acknowledgement of
// the last sidecar it was sent to.
struct PropagationHistogram {
  static constexpr double kBounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01,
                                       0.02,   0.05,  0.1,   0.25,  1};
  static constexpr size_t kBuckets = std::size(kBounds);
  static constexpr size_t kRecent = 1024;
  uint64_t counts[kBuckets + 1] = {};  // per bucket (not cumulative); +Inf
  uint64_t count = 0;
  double sum = 0;
  // The latest kRecent observations, oldest first once full (for exact
  // percentiles in benchmarks; the buckets are too coarse for that).
  std::vector<double> recent;
  size_t recent_next = 0;
  void Observe(double seconds) {
    size_t i = 0;
    while (i < kBuckets && seconds > kBounds[i]) ++i;
    ++counts[i];
    ++count;
    sum += seconds;
    if (recent.size() < kRecent) {
      recent.push_back(seconds);
    } else {
      recent[recent_next] = seconds;
      recent_next = (recent_next + 1) % kRecent;
    }
  }
};

// Messages the allocator wants delivered, in order per stream.
struct Outbox {
  std::vector<std::pair<StreamId, sluice::v1::ServerMessage>> messages;
  // Streams the transport must end (ALREADY_EXISTS) with this message: a
  // Hello whose sidecar_id another instance's open stream holds.
  std::vector<std::pair<StreamId, std::string>> refused;
};

// The quota server's brain, with no I/O and no threads: it consumes sidecar
// messages and time, and produces server messages. See docs/leasing.md for
// the ledger, the invariant L + sum(O_i) <= b (or <= K while learning) and
// the allocation rules. The gRPC service and the fleet simulation both drive
// this same class.
//
// Thread-compatibility: not thread-safe; the owner serialises all calls
// (the gRPC service holds one mutex around it).
//
// Time: every call takes `now`; `now` must not go backwards.
class QuotaAllocator {
 public:
  // `config` must have passed ValidateServerConfig. `epoch` is stamped on
  // every message (random per process in production, fixed in tests).
  // `wall_now` is the wall time at `now`; the allocator reads no clock and
  // dates what it must (a grant's informational expiry) from the two.
  QuotaAllocator(ServerConfig config, uint64_t epoch, TimePoint now,
                 absl::Time wall_now);
  ~QuotaAllocator();
  QuotaAllocator(const QuotaAllocator&) = delete;
  QuotaAllocator& operator=(const QuotaAllocator&) = delete;

  // A new stream opened. Nothing is sent until its Hello arrives.
  void Open(StreamId stream, TimePoint now);

  // A message arrived on `stream`. A Hello must come first (anything else
  // before it is ignored); a second Hello is ignored, and so is a Hello with
  // a protocol_version other than 1 (the transport refuses those). Messages
  // on a stream that was not Open()ed or is closed are ignored. Demand for a
  // resource the config does not know is ignored (counted in status). Replies
  // go to `out`: LimitUpdate the first time a stream reports a resource, then
  // grants and shrinks. Returns false if the message was dropped: any of the
  // above, a repeated throttle report, or a demand report overtaken by one
  // already taken (its grant_seq_seen is lower).
  bool OnMessage(StreamId stream, const sluice::v1::SidecarMessage& msg,
                 TimePoint now, Outbox* out);

  // The stream ended (cleanly or not). Its ledger is kept until its
  // tokens must have expired (docs/leasing.md, "Expiry and disconnects").
  void Close(StreamId stream, TimePoint now);

  // Periodic work, every 50 ms (top-ups happen here, so the Tick period
  // bounds how stale a sidecar's refill is): accrue levels, drop expired
  // ledgers of closed streams, end learning mode, recompute shares, top up
  // sidecars below their target (paced by entitlement), send shrinks, and
  // push LimitUpdates for changed limits or sidecar counts.
  void Tick(TimePoint now, Outbox* out);

  // Replaces the configuration (reload). Resources keep their state when
  // their name stays; limits change from `now`; removed resources revoke
  // their grants (target 0). Connected sidecars get LimitUpdates on the
  // next Tick. Fails (changing nothing) if the config is invalid.
  absl::Status Reconfigure(ServerConfig config, TimePoint now);

  // Sets one resource's rate and burst at runtime (admin endpoint).
  // NotFound for an unknown resource, InvalidArgument for a bad rate.
  absl::Status SetLimit(const std::string& resource, double rate_per_second,
                        double burst, TimePoint now);

  // Snapshot for /status, the HTML page and the metrics.
  struct SidecarStatus {
    std::string sidecar_id;
    std::string pod;
    bool connected = false;
    double weight = 1;
    double demand_per_second = 0;  // smoothed measured demand
    double share_per_second = 0;   // current max-min share
    double outstanding = 0;        // O_i
    double granted_total = 0;      // tokens granted since start
  };
  struct PauseStatus {
    std::string key_hash;  // empty for an unkeyed resource
    PauseSchedule::Phase phase = PauseSchedule::Phase::kPaused;
    uint64_t pause_id = 0;
    Duration remaining{};
    double rate_fraction = 0;  // of the rate the level refills at
    std::string origin_sidecar;
    std::string reason;
  };
  struct ResourceStatus {
    std::string name;
    double rate_per_second = 0;
    double burst = 0;
    double level = 0;
    double outstanding = 0;         // sum O_i
    double granted_per_second = 0;  // smoothed grant rate
    double utilisation = 0;         // granted_per_second / rate
    bool learning = false;
    // Limit learning (docs/pause.md): whether it is on, the learned rate
    // (0 while nothing below the configured rate is learned) and the rate
    // in force, min(configured, learned).
    bool learning_limit = false;
    double learned_rate_per_second = 0;
    double effective_rate_per_second = 0;
    // The limit the upstream last stated on an ordinary response, per
    // second, while it is fresh (LearnOptions::stated_ttl); 0: none.
    double stated_rate_per_second = 0;
    std::vector<SidecarStatus> sidecars;
    // Buckets not running: paused, probing or ramping.
    std::vector<PauseStatus> pauses;
    // Pauses started or extended since start, by reason (sorted).
    std::vector<std::pair<std::string, uint64_t>> pauses_by_reason;
  };
  struct Status {
    uint64_t epoch = 0;
    uint64_t config_version = 0;
    size_t connected_streams = 0;
    // Reports ignored: unknown resource, a key for an unkeyed resource, or
    // a per-key resource at its key limit.
    uint64_t ignored_reports = 0;
    // Throttle reports whose report_id was already taken (fast-path copy).
    uint64_t duplicate_reports = 0;
    // Demand reports overtaken by a newer one of their stream (datagrams),
    // dropped.
    uint64_t stale_reports = 0;
    // Hellos refused: their sidecar_id was held by another instance's open
    // stream.
    uint64_t duplicate_ids = 0;
    std::vector<ResourceStatus> resources;
    // Time from a throttle report to the last Pause acknowledgement.
    PropagationHistogram pause_propagation;
  };
  Status Snapshot(TimePoint now) const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_CORE_QUOTA_ALLOCATOR_H_
