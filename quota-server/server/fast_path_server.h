#ifndef SLUICE_QUOTA_SERVER_SERVER_FAST_PATH_SERVER_H_
#define SLUICE_QUOTA_SERVER_SERVER_FAST_PATH_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/protocol/replay_window.h"
#include "sluice/v1/quota.pb.h"

namespace sluice {

// The server end of the fast path (docs/pause.md, "Fast path"): one
// UDP socket and one reader thread. Each lease stream is offered a token and
// its own key (Open); the sidecar's FastPathHello tells the server where to
// send, and from then on a Pause for that stream leaves as a datagram at
// once, from the thread that decided it, ahead of its copy on the stream.
// Throttle reports that arrive as datagrams are handed to `on_message` on
// the reader thread, as are the PauseAcks of pauses that went as datagrams.
// With `leases`, so are DemandReports, and SendGrants sends LeaseGrants
// (docs/leasing.md, "Leases over the fast path").
//
// Nothing here is needed for correctness: the stream carries every pause
// message too, and a lost report or grant costs freshness, never safety. A
// datagram that fails its MAC, repeats a seq (ReplayWindow), names an unknown
// token or does not parse is dropped and counted. Memory is bounded by the
// number of open streams. Plain POSIX sockets: sendto from any thread runs
// alongside the reader's recvfrom, which an Asio socket does not allow without
// a hop to its executor.
class FastPathServer {
 public:
  struct Stats {
    uint64_t in_ok = 0;
    uint64_t in_bad_mac = 0;
    uint64_t in_replayed = 0;
    uint64_t in_unknown_token = 0;
    uint64_t in_malformed = 0;
    uint64_t out_sent = 0;
    uint64_t out_failed = 0;
    uint64_t registered = 0;  // streams with a known sidecar address now
    uint64_t demand_in = 0;   // DemandReports taken (leases)
    uint64_t grants_out = 0;  // LeaseGrants sent
  };
  // An authentic throttle report, pause ack or (with leases) demand report
  // of stream `stream`.
  using MessageHandler = std::function<void(
      uint64_t stream, const sluice::v1::SidecarMessage& msg)>;

  // Binds UDP `host`:`port` (an IP literal; port 0 = any free port) and
  // starts the reader. Errors name the address.
  // `leases`: offer leases over datagrams and take DemandReports.
  static absl::StatusOr<std::unique_ptr<FastPathServer>> Start(
      const std::string& host, uint16_t port, MessageHandler on_message,
      bool leases = false);
  ~FastPathServer();  // stops and joins the reader
  FastPathServer(const FastPathServer&) = delete;
  FastPathServer& operator=(const FastPathServer&) = delete;

  uint16_t port() const { return port_; }

  // A fresh token and key for stream `stream`, to offer on it.
  sluice::v1::FastPathOffer Open(uint64_t stream);
  // Forgets the stream's token, key and address.
  void Close(uint64_t stream);
  // Sends each pause to its stream's sidecar if it has said hello, all in
  // one system call (so that the first receiver to wake cannot preempt the
  // sender before the last datagram left). Any thread; never blocks.
  // Returns, per pause, whether its datagram left for a sidecar that said
  // it was welcomed (so datagrams reach it): only then may the stream's
  // copy wait.
  struct Outgoing {
    uint64_t stream;
    const sluice::v1::Pause* pause;
  };
  std::vector<bool> SendPauses(const std::vector<Outgoing>& pauses);
  // Sends each grant whose stream's sidecar said it was welcomed, all in one
  // system call. Returns, per grant, whether it left; false: send it on the
  // stream. Any thread; never blocks.
  struct GrantOut {
    uint64_t stream;
    const sluice::v1::LeaseGrant* grant;
  };
  std::vector<bool> SendGrants(const std::vector<GrantOut>& grants);

  Stats stats() const;

 private:
  struct Peer;
  FastPathServer(int fd, uint16_t port, MessageHandler on_message, bool leases);
  // Seals body(i) for streams[i]'s sidecar (only a confirmed one if
  // `confirmed_only`) and sends them all; per stream, whether its datagram
  // left and its sidecar is confirmed. Counts those in stats_.*delivered
  // if given.
  std::vector<bool> SendAll(
      const std::vector<uint64_t>& streams,
      const std::function<void(size_t, sluice::v1::FastPathBody*)>& body,
      bool confirmed_only, uint64_t Stats::*delivered = nullptr);
  void ReadLoop();
  void OnDatagram(const char* data, size_t size, const void* from,
                  uint32_t from_len);
  // Seals `body` for `peer` and sends it; mu_ held.
  bool SendLocked(Peer& peer, const sluice::v1::FastPathBody& body);
  // Counts the datagrams a send attempt did and did not get out; mu_ held.
  void CountSent(size_t sent, size_t failed);

  const int fd_;
  const uint16_t port_;
  const MessageHandler on_message_;
  const bool leases_;
  std::atomic<bool> stopping_{false};
  std::thread reader_;
  mutable std::mutex mu_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Peer>> by_token_;  // mu_
  absl::flat_hash_map<uint64_t, uint64_t> token_of_stream_;        // mu_
  std::mt19937_64 rng_;                                            // mu_
  Stats stats_;                                                    // mu_
};

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_SERVER_FAST_PATH_SERVER_H_
