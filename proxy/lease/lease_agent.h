#ifndef SLUICE_PROXY_LEASE_LEASE_AGENT_H_
#define SLUICE_PROXY_LEASE_LEASE_AGENT_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/time/clock.h"
#include "proxy/lease/lease_pool.h"
#include "proxy/lease/pause_deduplicator.h"
#include "proxy/pause/bucket_pause.h"
#include "sluice/v1/quota.pb.h"

namespace sluice {

class RateLimiter;

// One leased bucket as the sidecar sees it: the limiter whose demand is
// measured and the pool that grants feed.
struct LeaseBinding {
  std::string resource;
  std::string key_hash;  // empty when not keyed
  // Not owned: the agent locks it only while it reads the limiter's demand.
  // Once it has expired (a per-key limiter evicted) the binding is dropped.
  std::weak_ptr<RateLimiter> limiter;
  std::shared_ptr<LeasePool> pool;  // non-null
  // The bucket's pause state; null when the limit ignores throttles.
  std::shared_ptr<BucketPause> pause;
};

// The sidecar half of the lease protocol with no I/O and no threads: it
// turns time and server messages into pool updates and sidecar messages.
// The gRPC LeaseClient and the fleet simulation both drive this class.
//
// Not thread-safe: the owner serialises calls (the lease client thread).
// The pools it feeds are thread-safe on their own.
class LeaseAgent {
 public:
  struct Options {
    std::string sidecar_id;  // non-empty, stable for the process
    // Random per process (Hello.instance): tells the server a reconnect of
    // this process from another process given the same sidecar_id.
    std::string instance;
    std::string pod;
    std::string pod_namespace;
    std::string version;
    double weight = 1;
    // Report interval until the server says otherwise.
    Duration refresh = std::chrono::milliseconds(100);
  };
  LeaseAgent(Options options, std::vector<LeaseBinding> bindings);
  ~LeaseAgent();  // Out of line: Bucket is incomplete here.

  // Adds a bucket at run time (a new per-key limiter). It replaces a binding
  // of the same bucket (resource, key_hash) if there is one. Its pool is
  // set connected exactly when the server has answered on the current
  // stream (as OnServerMessage does for the others). The newest
  // LimitUpdate seen for its resource, if any, is applied to its pool. If
  // connected, returns the bucket's first report (the ask for a grant), to
  // be sent at once; otherwise nothing (OnConnected will report it).
  std::vector<sluice::v1::SidecarMessage> AddBinding(LeaseBinding binding,
                                                     TimePoint now);
  // Number of bindings held (expired ones are dropped by Poll and
  // OnConnected).
  size_t bindings() const { return buckets_.size(); }

  // A stream opened: returns the Hello and one report per bucket (which is
  // the ask for a first grant). Resets per-stream state (grant seq). The
  // pools switch to leased tokens only when the server's first message
  // arrives; until then their unavailability policy still applies.
  std::vector<sluice::v1::SidecarMessage> OnConnected(TimePoint now);
  // The stream ended: pools go unavailable (their policy applies once held
  // tokens expire).
  void OnDisconnected(TimePoint now);

  // Applies one server message: grants (tokens expire ttl after the report
  // the grant echoes was made, or after `now` if it echoes none; target
  // shrinks), limit updates, pauses (the bucket's held tokens are
  // dropped, its throttle paused, and a PauseAck queued for the next Poll).
  // A message for an unknown bucket is ignored. A new server_epoch is noted
  // (logged by the owner).
  void OnServerMessage(const sluice::v1::ServerMessage& msg, TimePoint now);

  // Where a copy of a Pause came from: the stream, or a fast-path datagram
  // (docs/pause.md, "Fast path").
  using PausePath = PauseDeduplicator::Path;
  struct PauseNow {
    // A bucket with a throttle: it has the pause now. If not, the agent
    // acks the stream's copy as usual (OnServerMessage).
    bool known = false;
    // This call applied it: the other copy had not come first.
    bool first = false;
    // The PauseAck to send now, on `path`: a datagram's first copy, and
    // every stream copy the agent will not ack itself.
    std::optional<sluice::v1::SidecarMessage> ack;
  };
  // Pauses the throttle of `pause`'s bucket at once. Unlike every other
  // method, callable from any thread (the stream's reaction or the fast
  // path's reader, as the message is read), so requests stop without
  // waiting for the owner's thread. A second copy of the same pause (the
  // other path) changes nothing but may still ack on the stream, so the
  // stream carries an ack of every pause it carried. OnServerMessage with
  // the stream's copy does the rest later (held tokens) without another
  // ack; the throttle ignores a pause_id it has applied. PauseDeduplicator
  // keeps track of the copies.
  PauseNow ApplyPauseNow(const sluice::v1::Pause& pause, TimePoint now,
                         PausePath path = PausePath::kStream);

  // Reports due at `now`: a bucket reports every refresh_after_ms, and early
  // (at most once per grant received) when its pool holds less than half
  // its target, or less than the cost of what is queued. Empty when not
  // connected. Spending is not announced to the agent, so while an early
  // report is possible NextWakeup asks to be polled every quarter refresh
  // interval to look for it. A binding whose limiter has expired is dropped
  // here: its pool is emptied and, if connected, one last report (held 0)
  // tells the server its tokens are gone.
  std::vector<sluice::v1::SidecarMessage> Poll(TimePoint now);
  // When Poll next has something to do (never before `now` of the last
  // call). TimePoint::max() when not connected.
  TimePoint NextWakeup() const;

  // The message reporting a throttle event of bucket (resource, key_hash):
  // a ThrottleReport or a ProbeResult. For the owner to send as is.
  static sluice::v1::SidecarMessage EventMessage(
      const std::string& resource, const std::string& key_hash,
      const BucketPause::Event& event);

  bool connected() const { return connected_; }
  uint64_t server_epoch() const { return server_epoch_; }
  size_t server_restarts_seen() const { return server_restarts_; }
  // Grants dropped because a newer grant of the stream came first.
  uint64_t stale_grants() const { return stale_grants_; }
  // Grants whose tokens came dead: older than a ttl, counted from the
  // report they echo (DemandReport.report_seq), or echoing a report no
  // longer remembered.
  uint64_t aged_grants() const { return aged_grants_; }

 private:
  struct Bucket;
  // The report for `b` at `now`; takes the limiter's counters.
  sluice::v1::SidecarMessage MakeReport(Bucket& b, TimePoint now);
  // Notes `now` as the latest time seen and returns it.
  TimePoint Observe(TimePoint now);
  void OnPause(const sluice::v1::Pause& pause, TimePoint now);
  // Applies a LimitUpdate to the pool of `b`.
  static void ApplyLimit(const sluice::v1::LimitUpdate& l, Bucket& b);
  // Adds (or replaces) `b` in pause_index_, or takes it out.
  void Index(const Bucket& b);
  void Unindex(const Bucket& b);
  static sluice::v1::SidecarMessage PauseAckFor(const sluice::v1::Pause& p);

  Options options_;
  std::vector<std::unique_ptr<Bucket>> buckets_;  // in the order added
  // Resource -> newest LimitUpdate received (for bindings added later: the
  // server announces a resource's limit once per stream).
  absl::flat_hash_map<std::string, sluice::v1::LimitUpdate> limits_;
  bool connected_ = false;
  bool answered_ = false;  // the server spoke on this stream
  uint64_t server_epoch_ = 0;
  size_t server_restarts_ = 0;
  uint64_t grant_seq_seen_ = 0;
  uint64_t stale_grants_ = 0;
  uint64_t aged_grants_ = 0;
  // Numbers every report (DemandReport.report_seq), across streams.
  uint64_t next_report_seq_ = 1;
  // Per bucket, at most this many recent reports are remembered (32 x 16
  // bytes; 3.2 s of reports at the default refresh).
  static constexpr size_t kReportsRemembered = 32;
  // Messages to send with the next Poll (pause acknowledgements).
  std::vector<sluice::v1::SidecarMessage> pending_;
  TimePoint last_now_{};  // Latest `now` passed to any method.
  // "resource\nkey_hash" -> the bucket's pause, for ApplyPauseNow.
  mutable std::mutex index_mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<BucketPause>>
      pause_index_;  // guarded by index_mu_
  // Which copies of which pauses came, and which were acked: written by
  // ApplyPauseNow (any thread) and OnPause (thread-safe on its own).
  PauseDeduplicator pause_copies_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_LEASE_LEASE_AGENT_H_
