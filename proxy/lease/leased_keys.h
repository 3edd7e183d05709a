#ifndef SLUICE_PROXY_LEASE_LEASED_KEYS_H_
#define SLUICE_PROXY_LEASE_LEASED_KEYS_H_

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "common/rate/token_source.h"
#include "common/time/clock.h"
#include "proxy/lease/lease_agent.h"
#include "proxy/lease/lease_pool.h"

namespace sluice {

class RateLimiter;

// The token sources of a leased per-key limit (docs/leasing.md): each key's
// limiter spends from its own LeasePool, fed by the quota server's bucket
// (resource, key_hash). Only the hash from KeyedLimiterSet is ever sent.
//
// Plugs into a KeyedLimiterSet: MakeSource is its SourceFactory, OnCreated
// its CreatedHook. The set calls both with its lock held, MakeSource first
// and, when it returned a source, OnCreated for the limiter built on it; so
// the pool made by one MakeSource is the one the next OnCreated binds.
// OnCreated sets the pool's on_tokens to `kick` with a weak_ptr to the
// limiter (it never keeps the limiter alive) and hands the binding (with
// the limiter's throttle, so attach that first) to
// `bind` (LeaseClient::AddBinding), which must not call back into the set.
class LeasedKeySources {
 public:
  // Runs on the lease client's thread when tokens arrive for a key.
  using Kick = std::function<void(const std::weak_ptr<RateLimiter>&)>;
  using Bind = std::function<void(LeaseBinding)>;

  LeasedKeySources(std::string resource, LeasePool::Options pool_options,
                   Kick kick);
  LeasedKeySources(const LeasedKeySources&) = delete;
  LeasedKeySources& operator=(const LeasedKeySources&) = delete;

  // Whether the lease stream is up and the server has answered on it.
  using Connected = std::function<bool()>;

  // Set once, before the first key arrives. Without `bind` keys are not
  // bound (their pools apply the unavailability policy). A key's pool starts
  // connected when `connected` says so, so a new key spends only leased
  // tokens (it waits one round trip for its first grant) rather than a
  // local burst on every sidecar; the agent corrects the state when it
  // takes the binding.
  void set_lease(Bind bind, Connected connected) {
    bind_ = std::move(bind);
    connected_ = std::move(connected);
  }

  std::unique_ptr<TokenSource> MakeSource(const std::string& key_hash,
                                          TimePoint now);
  void OnCreated(const std::string& key_hash,
                 const std::shared_ptr<RateLimiter>& limiter);

  // The lease mode of the key whose limiter is `limiter` (the
  // x-sluice-quota value), or "" if it is not one of this set's. Thread-safe.
  std::string_view ModeFor(const RateLimiter* limiter, TimePoint now) const;

  // The live keys by lease mode, for /readyz and the metrics. Thread-safe.
  struct Summary {
    size_t keys = 0;
    std::array<size_t, 4> by_mode{};  // indexed by LeaseMode
    double held = 0;                  // tokens held over all keys
  };
  Summary Summarize(TimePoint now) const;

 private:
  const std::string resource_;
  const LeasePool::Options pool_options_;
  const Kick kick_;
  Bind bind_;
  Connected connected_;
  // Made by the last MakeSource, taken by the next OnCreated. Guarded by the
  // set's lock.
  std::string pending_hash_;
  std::shared_ptr<LeasePool> pending_pool_;

  // Every key's pool by its limiter, pruned of evicted keys as it grows.
  struct Entry {
    std::weak_ptr<RateLimiter> limiter;
    std::weak_ptr<LeasePool> pool;
  };
  mutable std::mutex mu_;
  absl::flat_hash_map<const RateLimiter*, Entry> pools_;  // guarded by mu_
  size_t prune_at_ = 64;                                  // guarded by mu_
};

}  // namespace sluice

#endif  // SLUICE_PROXY_LEASE_LEASED_KEYS_H_
