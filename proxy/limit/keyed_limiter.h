#ifndef SLUICE_PROXY_LIMIT_KEYED_LIMITER_H_
#define SLUICE_PROXY_LIMIT_KEYED_LIMITER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/rate/token_source.h"
#include "common/time/clock.h"
#include "proxy/limit/rate_limiter.h"

namespace sluice {

// Per-key rate limiters (e.g. one bucket per API credential), created on
// demand and bounded in number.
//
// Keys arrive as raw header values (an Authorization value, say). They are
// hashed with SHA-256 on entry and only the first 32 hex characters of the
// digest are kept; the raw key is never stored or logged.
//
// Bounded: at most `max_keys` limiters. Creating one more evicts the least
// recently used limiter that is idle: nobody but the set holds a reference to
// it and its queue is empty. Eviction probes at most kMaxEvictionProbes
// entries from the LRU end; a busy entry met on the way is moved to the MRU
// end (it is in use), so each call is O(1) and later calls probe further. If
// no idle limiter is found, GetOrCreate returns nullptr (answer 429).
//
// Pointer lifetime: GetOrCreate returns a shared_ptr. Callers may hold it for
// as long as a request needs the limiter: from Acquire until the request is
// admitted, rejected, expired or cancelled (longer if they intend to Refund
// through it), and they must hold it while any of their tickets is queued
// (the owner of the ticket polls the limiter). A limiter is never evicted
// while anyone else holds it or while its queue is non-empty, so all live
// requests for a key share one limiter and one FIFO. Holding pointers
// forever (caching them) makes limiters unevictable; don't.
//
// Thread-safe.
class KeyedLimiterSet {
 public:
  // Creates the token source for a new key, given the key's hash (HashKey;
  // never the raw key). Called with the set's lock held: it must not call
  // back into the set. Returning null makes GetOrCreate return null.
  using SourceFactory = std::function<std::unique_ptr<TokenSource>(
      const std::string& key_hash, TimePoint now)>;
  // Told about each limiter the set creates, right after the factory made
  // its source and before GetOrCreate returns it. Called with the set's lock
  // held: it must not call back into the set, and it must not keep a
  // shared_ptr (that would make the limiter unevictable); a weak_ptr is fine.
  using CreatedHook =
      std::function<void(const std::string& key_hash,
                         const std::shared_ptr<RateLimiter>& limiter)>;

  static constexpr size_t kMaxEvictionProbes = 16;
  static constexpr size_t kHashHexChars = 32;

  // max_keys: most limiters held at once (0 means GetOrCreate always fails).
  // limiter_options: options for every limiter created.
  // on_created: optional (see CreatedHook).
  KeyedLimiterSet(size_t max_keys, RateLimiterOptions limiter_options,
                  SourceFactory factory, CreatedHook on_created = nullptr);
  KeyedLimiterSet(const KeyedLimiterSet&) = delete;
  KeyedLimiterSet& operator=(const KeyedLimiterSet&) = delete;

  // First 32 lower-case hex characters of SHA-256(raw). Deterministic across
  // processes. Returns "" only if the digest cannot be computed.
  static std::string HashKey(std::string_view raw);

  // The limiter for `raw_key`, created (with a full bucket) if absent, and
  // marked most recently used. nullptr if the set is full of busy limiters
  // (or hashing or the factory failed).
  std::shared_ptr<RateLimiter> GetOrCreate(std::string_view raw_key,
                                           TimePoint now);

  // Number of limiters held.
  size_t size() const;
  // Number of limiters evicted so far.
  uint64_t evictions() const;
  // Hashed keys, most recently used first. For admin pages and tests.
  std::vector<std::string> HashedKeys() const;

 private:
  struct Entry {
    std::string hash;
    std::shared_ptr<RateLimiter> limiter;
  };
  using Lru = std::list<Entry>;  // Front = most recently used.

  // Evicts one idle limiter. Returns false if none was found.
  bool EvictOneLocked();

  const size_t max_keys_;
  const RateLimiterOptions limiter_options_;
  const SourceFactory factory_;
  const CreatedHook on_created_;

  mutable std::mutex mu_;
  Lru lru_;                                                // Guarded by mu_.
  absl::flat_hash_map<std::string, Lru::iterator> index_;  // Guarded by mu_.
  uint64_t evictions_ = 0;                                 // Guarded by mu_.
};

}  // namespace sluice

#endif  // SLUICE_PROXY_LIMIT_KEYED_LIMITER_H_
