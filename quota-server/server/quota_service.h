#ifndef SLUICE_QUOTA_SERVER_SERVER_QUOTA_SERVICE_H_
#define SLUICE_QUOTA_SERVER_SERVER_QUOTA_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "common/time/clock.h"
#include "quota-server/core/quota_allocator.h"
#include "quota-server/server/fast_path_server.h"
#include "sluice/v1/quota.grpc.pb.h"

namespace sluice {

// The gRPC face of QuotaAllocator: one ServerBidiReactor per sidecar stream
// (callback API). Reactions never block on I/O: a read is handed to the
// allocator under one mutex, and the replies are queued on their streams,
// each of which keeps one write in flight.
//
// Bounds: a stream with more than kMaxPendingWrites unsent messages is a
// sidecar that does not read; it is finished with RESOURCE_EXHAUSTED and
// its ledger kept until its tokens expire (as for any closed stream).
// Protocol errors (a Hello with another protocol_version, a first message
// that is not a Hello) finish the stream with FAILED_PRECONDITION or
// INVALID_ARGUMENT.
class QuotaService final : public sluice::v1::QuotaService::CallbackService {
 public:
  static constexpr size_t kMaxPendingWrites = 4096;
  // A Pause that left as a datagram goes on the stream this much later.
  static constexpr Duration kStreamCopyDelay = std::chrono::milliseconds(20);
  // Beyond this many waiting stream copies, a Pause goes on the stream at
  // once.
  static constexpr size_t kMaxDeferred = 65536;

  struct Counters {
    std::atomic<uint64_t> streams_opened{0};
    std::atomic<uint64_t> streams_closed{0};
    std::atomic<uint64_t> messages_in{0};
    std::atomic<uint64_t> messages_out{0};
    std::atomic<uint64_t> streams_rejected{0};
  };

  // `allocator` and `clock` outlive the service.
  QuotaService(QuotaAllocator* allocator, Clock* clock);
  ~QuotaService() override;

  grpc::ServerBidiReactor<sluice::v1::SidecarMessage,
                          sluice::v1::ServerMessage>*
  Lease(grpc::CallbackServerContext* context) override;

  // Offers `fast_path` to every stream (on the next message it is sent)
  // and sends each Pause through it first (nullptr: stop). A stream whose
  // last demand report came through it gets its grants through it too (only
  // those with tokens, and only while its sidecar is confirmed; a shrink or
  // revoke alone goes on the stream). A stream whose
  // sidecar said it was welcomed gets the Pause as a datagram at once and on
  // the stream kStreamCopyDelay later (a thread of the service's own waits for
  // that), with remaining_ms reduced by the wait. `fast_path` must outlive its
  // use: clear it only once the gRPC server has shut down.
  void SetFastPath(FastPathServer* fast_path);

  // A throttle report, pause ack or demand report that came as a datagram
  // for stream `id` (FastPathServer's handler). Any thread.
  void OnFastPathMessage(uint64_t id, const sluice::v1::SidecarMessage& msg);

  // Runs the allocator's periodic work and sends what it produced. Call at
  // least every 50 ms (top-ups happen on Tick) from any thread.
  void Tick();

  // Runs `fn` with the allocator under the service's lock (reload, admin
  // changes, snapshots), then sends whatever `fn` put in the outbox.
  void WithAllocator(const std::function<void(QuotaAllocator&, Outbox*)>& fn);

  // Finishes every live stream with UNAVAILABLE (shutdown); sidecars then
  // reconnect elsewhere or apply their policy.
  void FinishAll();

  const Counters& counters() const { return counters_; }
  size_t live_streams() const;

 private:
  class Reactor;
  // A message arrived on stream `id` (after the Hello checks).
  void OnRead(uint64_t id, const sluice::v1::SidecarMessage& msg);
  // Called with mu_ held: hands each message to its stream.
  void DispatchLocked(Outbox& out);
  void OnStreamDone(uint64_t id);
  // Sends the stream copies of pauses as they fall due.
  void DeferLoop();

  struct Deferred {
    TimePoint due;
    uint64_t id;
    sluice::v1::ServerMessage msg;
  };

  QuotaAllocator* allocator_;
  Clock* clock_;
  FastPathServer* fast_path_ = nullptr;  // guarded by mu_
  std::deque<Deferred> deferred_;        // guarded by mu_, by due
  bool stopping_ = false;                // guarded by mu_
  std::condition_variable deferred_cv_;
  std::thread deferrer_;  // runs while a fast path is set
  Counters counters_;
  mutable std::mutex mu_;  // guards allocator_ calls and streams_
  absl::flat_hash_map<uint64_t, Reactor*> streams_;
  uint64_t next_id_ = 1;
};

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_SERVER_QUOTA_SERVICE_H_
