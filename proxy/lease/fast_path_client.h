#ifndef SLUICE_PROXY_LEASE_FAST_PATH_CLIENT_H_
#define SLUICE_PROXY_LEASE_FAST_PATH_CLIENT_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/protocol/replay_window.h"
#include "common/time/clock.h"
#include "sluice/v1/quota.pb.h"

namespace sluice {

// The sidecar end of the fast path (docs/pause.md, "Fast path"): UDP beside
// the lease stream. Use() takes the stream's FastPathOffer; from
// then on a throttle report leaves as a datagram too (SendThrottle), and a
// Pause datagram from the server is handed to `on_pause` on the reader
// thread, ahead of its copy on the stream.
//
// A pause that came as a datagram is acked as one, kAckDelayUs later (with
// the wait in held_us), so that the acks of a fleet do not compete with
// the pause's datagrams to the other sidecars. Best effort by design: the
// stream carries every pause message as well, so a lost, late or rejected
// one costs only latency (leases, below, have no stream copy). The sockets are
// connected to the server, so the kernel drops datagrams from anyone else; one
// with a bad MAC, a repeated seq or an old token is dropped and counted. The
// reader says hello every second until the server welcomes it, then once at
// once with `welcomed` set and every 10 s (NAT state), and owns one socket per
// address family for its whole life, connected to the current server.
//
// Leases (docs/leasing.md, "Leases over the fast path"): if the offer says
// `leases`, SendDemand sends demand reports as datagrams while the server
// answers hellos (one every second then; no welcome for kLeaseSilenceMs:
// the caller goes back to the stream), and LeaseGrant
// datagrams are handed to `on_grant` with the offer's token, so the caller
// can tell a grant of the current stream from a late one of the last.
//
// Time: every delay, hold time, hello interval and silence is measured on
// the injected Clock. The reader blocks in poll() on the sockets for at
// most kPollMs of real time (less when something falls due sooner by the
// clock), so it notices a clock moved by hand within that bound; Sync()
// makes it look at once.
class FastPathClient {
 public:
  struct Stats {
    uint64_t in_ok = 0;
    uint64_t in_rejected = 0;  // malformed, bad MAC, replayed, stale
    uint64_t out_sent = 0;
    uint64_t out_failed = 0;
    uint64_t demand_sent = 0;  // reports that went as datagrams
    uint64_t grants_in = 0;    // grants that came as datagrams
    bool up = false;           // the server welcomed this stream's hello
    bool leasing = false;      // SendDemand would send now
  };
  using PauseHandler = std::function<void(const sluice::v1::Pause& pause)>;
  using GrantHandler =
      std::function<void(uint64_t token, const sluice::v1::LeaseGrant& grant)>;
  // Sends a message on the lease stream (the reader calls it, unlocked).
  using StreamSender = std::function<void(sluice::v1::SidecarMessage msg)>;
  static constexpr int64_t kAckDelayUs = 5000;
  // A throttle report that left as a datagram while the fast path is up
  // goes on the stream this much later.
  static constexpr int64_t kStreamCopyDelayUs = 10000;
  // Acks waiting to be sent beyond this many go on the stream instead.
  static constexpr size_t kMaxPendingAcks = 256;
  // Stream copies waiting beyond this many: the report goes on the stream
  // at once. Well inside the server's de-duplication window, so that a
  // copy whose datagram was lost is never taken for a repeat.
  static constexpr size_t kMaxPendingCopies = ReplayWindow::kWidth / 2;
  // Leasing by datagram stops when no welcome came for this long (the
  // sidecar says hello every second while it leases; a welcome proves the
  // path works both ways).
  static constexpr int64_t kLeaseSilenceMs = 3500;

  // The reader's longest wait in poll(), in real milliseconds.
  static constexpr int kPollMs = 100;

  // `on_grant` may be null (no leases over the fast path). `clock` must
  // outlive the client. Starts the reader thread.
  FastPathClient(PauseHandler on_pause, StreamSender to_stream,
                 GrantHandler on_grant, Clock* clock);
  ~FastPathClient();  // Stop()s
  // Stops and joins the reader; nothing is sent or handed on afterwards.
  // Idempotent.
  void Stop();
  FastPathClient(const FastPathClient&) = delete;
  FastPathClient& operator=(const FastPathClient&) = delete;

  // Takes `offer` for the stream whose gRPC peer is `peer` ("ipv4:h:p",
  // "ipv6:[h]:p", percent-encoded or not) and says hello at once. Any
  // thread. An error (a peer that is not an IP address) leaves the fast
  // path off for this stream.
  absl::Status Use(const std::string& peer,
                   const sluice::v1::FastPathOffer& offer);
  // Forgets the offer: the stream ended.
  void Reset();
  // Sends `msg`'s throttle report (its report_id set) as a datagram. If the
  // server has welcomed this stream, `msg` goes on the stream
  // kStreamCopyDelayUs later, through `to_stream`, and the result is true;
  // false: the caller sends it on the stream now. Any thread; never blocks.
  bool SendThrottle(const sluice::v1::SidecarMessage& msg);
  // Queues `ack` (of a pause that came as a datagram) to leave kAckDelayUs
  // later. False if no offer is in use or the queue is full (the caller
  // uses the stream).
  bool SendPauseAck(const sluice::v1::PauseAck& ack);
  // Sends `msg`'s demand report as a datagram if the offer took leases and
  // a welcome came within kLeaseSilenceMs.
  // False: the caller sends it on the stream. Any thread; never blocks.
  bool SendDemand(const sluice::v1::SidecarMessage& msg);

  // Wakes the reader and returns once it has finished a turn that began
  // after the call: every ack and stream copy due by the clock's time at
  // the call has been sent (copies through `to_stream`), and a hello that
  // was due has left. For tests that move a FakeClock. After Stop(), returns
  // at once. Not from the reader thread (a handler).
  void Sync();

  // Stats::leasing is read on the clock at the call.
  Stats stats() const;

 private:
  void ReadLoop();
  void OnDatagram(const char* data, size_t size);
  // Seals and sends `body` on the current socket; mu_ held.
  bool SendLocked(const sluice::v1::FastPathBody& body);
  // Says hello (with `welcomed` once the server has answered); mu_ held.
  void SendHelloLocked();
  // Sends the acks queued at least kAckDelayUs before `now` and takes out
  // the stream copies due by then; mu_ held.
  void SendDueLocked(TimePoint now,
                     std::vector<sluice::v1::SidecarMessage>* copies);
  // Real milliseconds until the next queued item falls due by the clock
  // (at most kPollMs).
  int NextTimeoutLocked() const;
  bool LeasingLocked() const;
  // Makes the reader's poll() return.
  void Wake();

  const PauseHandler on_pause_;
  const StreamSender to_stream_;
  const GrantHandler on_grant_;
  Clock* const clock_;
  int fd4_ = -1;
  int fd6_ = -1;
  int wake_fd_ = -1;  // an eventfd in the reader's poll set
  std::atomic<bool> stopping_{false};
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable turn_cv_;       // a turn ended (Sync)
  std::atomic<uint64_t> turns_asked_{0};  // Sync calls so far
  uint64_t turns_done_ = 0;   // the last Sync a finished turn saw; mu_
  bool reader_done_ = false;  // the reader has returned; mu_
  // Current offer (guarded by mu_); key empty: none.
  int fd_ = -1;
  std::string key_;
  uint64_t token_ = 0;
  bool leases_ = false;  // the offer's
  TimePoint last_welcome_;
  uint64_t next_seq_ = 1;
  ReplayWindow seen_;
  TimePoint next_hello_;
  // Acks to send, with the time each was queued.
  std::vector<std::pair<sluice::v1::PauseAck, TimePoint>> acks_;
  // Stream copies of reports, with the time each falls due.
  std::vector<std::pair<sluice::v1::SidecarMessage, TimePoint>> copies_;
  Stats stats_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_LEASE_FAST_PATH_CLIENT_H_
