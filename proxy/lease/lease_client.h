#ifndef SLUICE_PROXY_LEASE_LEASE_CLIENT_H_
#define SLUICE_PROXY_LEASE_LEASE_CLIENT_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/time/clock.h"
#include "proxy/lease/fast_path_client.h"
#include "proxy/lease/lease_agent.h"

namespace sluice {

// Runs a LeaseAgent against sluice-quota-server over one long-lived gRPC
// bidi stream (callback API), on its own thread.
//
// - `servers` are gRPC targets: "host:port", or "dns:///name:port" for a
//   name that resolves to several servers. On failure the client moves to
//   the next target after a jittered exponential backoff (initial 100 ms,
//   doubling to 5 s; reset after a stream that lived 10 s).
// - No stream is opened while the agent has no bindings (only per-key
//   limits, no key seen yet): the server answers only reports.
// - A stream counts as connected once the server's first message arrives;
//   until then, and after it ends, the agent is told it is disconnected
//   and every pool applies its unavailability policy.
// - Every wait is bounded: connecting (2 s deadline for the stream to
//   start answering), writes are queued to at most 1024 messages (older
//   reports are dropped first: reports are absolute), and gRPC keepalive
//   pings find a dead server within ~15 s.
//
// All agent calls happen on the client's thread.
class LeaseClient {
 public:
  struct Options {
    std::vector<std::string> servers;  // non-empty
    Duration backoff_initial = std::chrono::milliseconds(100);
    Duration backoff_max = std::chrono::seconds(5);
    Duration connect_timeout = std::chrono::seconds(2);
    // Take the server's fast path when it offers one (UDP beside the
    // stream): pauses (docs/pause.md, "Fast path") and, if offered, reports
    // and grants (docs/leasing.md, "Leases over the fast path").
    bool fast_path = true;
  };
  struct Stats {
    uint64_t connects = 0;     // streams that got a first answer
    uint64_t disconnects = 0;  // streams that ended after connecting
    uint64_t failed_attempts = 0;
    uint64_t messages_in = 0;
    uint64_t messages_out = 0;
    uint64_t server_restarts = 0;
    bool connected = false;
    std::string server;  // current or last target
    FastPathClient::Stats fast_path;
    // Pauses applied first from a fast-path datagram / from the stream.
    uint64_t pauses_by_datagram = 0;
    uint64_t pauses_by_stream = 0;
    // Grants the agent dropped as overtaken (LeaseAgent::stale_grants).
    uint64_t stale_grants = 0;
    // Grants whose tokens came dead (LeaseAgent::aged_grants).
    uint64_t aged_grants = 0;
  };

  LeaseClient(Options options, std::unique_ptr<LeaseAgent> agent, Clock* clock);
  ~LeaseClient();  // Stop()s
  LeaseClient(const LeaseClient&) = delete;
  LeaseClient& operator=(const LeaseClient&) = delete;

  void Start();
  // Cancels the stream and joins the thread. Idempotent.
  void Stop();

  Stats stats() const;
  // Whether a stream is up and the server has answered on it.
  bool connected() const;

  // Adds a leased bucket at run time, from any thread (a proxy thread that
  // just created a per-key limiter). The binding is queued and handed to
  // the agent on the client's thread (LeaseAgent::AddBinding), which sends
  // the bucket's first report at once if a stream is up. Queued bindings
  // whose limiter has expired are pruned while the queue is long.
  void AddBinding(LeaseBinding binding);

  // Sends `msg` (a throttle report or probe result) on the stream at once,
  // from any thread (the caller's thread starts the write). Dropped when no
  // stream is up (the server learns the state from the next reports); the
  // stream's write queue is bounded (oldest waiting message dropped). A
  // throttle report gets a report_id and leaves on the fast path first.
  void Send(sluice::v1::SidecarMessage msg);

 private:
  class Stream;
  void Loop();
  // Runs one stream to its end. Returns true if it got connected.
  bool RunStream(const std::string& target);
  // Hands the queued bindings to the agent; returns the reports to send.
  // Client thread only; takes mu_.
  std::vector<sluice::v1::SidecarMessage> DrainBindings(TimePoint now);
  // A Pause read from either path: applied at once by whichever copy comes
  // first, and acked the way it came (LeaseAgent::ApplyPauseNow). True if
  // a bucket's throttle has it (now or from the other copy); false sends it
  // the slow way, through the agent on the client's thread. Any thread.
  bool ApplyPause(const sluice::v1::Pause& pause, bool by_datagram);

  const Options options_;
  std::unique_ptr<LeaseAgent> agent_;
  Clock* const clock_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                   // guarded by mu_
  Stream* stream_ = nullptr;                // live stream, guarded by mu_
  std::vector<LeaseBinding> new_bindings_;  // guarded by mu_
  Stats stats_;                             // guarded by mu_
  uint64_t next_report_id_ = 1;             // guarded by mu_
  // Declared last: its reader thread calls ApplyPause until Stop() joins
  // it. Set in the constructor, never replaced.
  std::unique_ptr<FastPathClient> fast_path_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_LEASE_LEASE_CLIENT_H_
