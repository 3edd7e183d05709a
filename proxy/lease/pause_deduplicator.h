#ifndef SLUICE_PROXY_LEASE_PAUSE_DEDUPLICATOR_H_
#define SLUICE_PROXY_LEASE_PAUSE_DEDUPLICATOR_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_set.h"

namespace sluice {

// A fleet pause can reach the sidecar twice: on the lease stream and as a
// fast-path datagram (docs/pause.md, "Fast path"). This class remembers
// which copies of which pauses came, so that the owner applies each pause
// once, acks a datagram's copy only when it was the first, acks every
// pause the stream carried on the stream exactly once, and does not ack a
// stream copy a second time on its own turn.
//
// A pause is named by its bucket (resource, key_hash) and its pause_id.
// Memory is bounded by count, not by age (no clock): the newest
// kMaxRemembered applied pauses, and at most kMaxRemembered stream acks
// not yet taken.
//
// Thread-safe (one internal mutex, held only inside each call). In the
// sidecar, LeaseAgent::ApplyPauseNow calls OnCopy from gRPC's thread (the
// stream's read reaction, LeaseClient::Stream::OnReadDone) and from the
// fast path's reader thread (FastPathClient's ReadLoop), possibly at the
// same time; LeaseAgent's OnServerMessage calls TakeStreamAck from the
// lease client's own thread.
class PauseDeduplicator {
 public:
  // How many pauses each of the two memories holds (see above).
  static constexpr size_t kMaxRemembered = 1024;

  // The path a copy came on.
  enum class Path { kStream, kDatagram };

  struct Decision {
    // No earlier copy of this pause was seen (on either path, within the
    // newest kMaxRemembered applied): the caller applies it.
    bool first = false;
    // The caller acks this copy now, on the path it came on. A datagram
    // copy: exactly when `first`. A stream copy: unless an earlier stream
    // copy of the same pause was acked and TakeStreamAck has not taken it
    // yet.
    bool ack = false;
  };

  // A copy of pause `pause_id` of bucket (resource, key_hash) came on
  // `path`, for a bucket that can apply it. Records it and says what to do.
  // Once kMaxRemembered stream acks wait to be taken (the owner's thread is
  // not running), they are all forgotten first: the owner then acks those
  // pauses again, which the server ignores.
  Decision OnCopy(std::string_view resource, std::string_view key_hash,
                  uint64_t pause_id, Path path);

  // The owner's turn on the stream's copy of the pause: true if OnCopy
  // already acked a stream copy of it (the owner must not ack again), and
  // forgets that ack; false if the owner acks it itself. Does not touch
  // what OnCopy remembers as applied.
  bool TakeStreamAck(std::string_view resource, std::string_view key_hash,
                     uint64_t pause_id);

 private:
  // "resource\nkey_hash\npause_id".
  static std::string Id(std::string_view resource, std::string_view key_hash,
                        uint64_t pause_id);

  std::mutex mu_;
  // Every pause OnCopy applied, the newest kMaxRemembered; `applied_order_`
  // holds the same ids, oldest first.
  absl::flat_hash_set<std::string> applied_;  // guarded by mu_
  std::deque<std::string> applied_order_;     // guarded by mu_
  // Pauses whose stream copy OnCopy acked, until TakeStreamAck.
  absl::flat_hash_set<std::string> stream_acked_;  // guarded by mu_
};

}  // namespace sluice

#endif  // SLUICE_PROXY_LEASE_PAUSE_DEDUPLICATOR_H_
