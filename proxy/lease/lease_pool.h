#ifndef SLUICE_PROXY_LEASE_LEASE_POOL_H_
#define SLUICE_PROXY_LEASE_LEASE_POOL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

#include "common/protocol/unavailable_policy.h"
#include "common/rate/token_bucket.h"
#include "common/rate/token_source.h"
#include "common/time/clock.h"

namespace sluice {

// How a leased bucket is fed right now (the `x-sluice-quota` header value,
// the /readyz detail and a metric label).
enum class LeaseMode {
  kLeased,         // Connected: tokens come from grants.
  kFallbackShare,  // Server unreachable, held tokens gone: local share.
  kFailClosed,     // Server unreachable, held tokens gone: refuse.
  kFailOpen,       // Server unreachable: no limit.
};
// "leased" | "fallback_share" | "fail_closed" | "fail_open".
std::string_view LeaseModeName(LeaseMode mode);

// The sidecar's tokens for one leased bucket: batches from grants, each with
// its own expiry, spent earliest-expiring first. Shared between the
// RateLimiter (through LeasedTokenSource, on the proxy's threads) and the
// LeaseAgent (on the lease client's thread): every method takes an internal
// mutex for a short, allocation-free section (grants may allocate).
//
// While connected, only granted tokens are spent. After SetConnected(false)
// the pool keeps spending what it holds until it expires; then the policy
// decides: fallback_share paces requests with a local bucket at
// min(limit rate / sidecars, last share) with a burst of at most the last
// grant; fail_closed refuses; fail_open admits everything. A pool starts
// disconnected (its policy applies at the local route limit) until the first
// SetConnected(true).
class LeasePool {
 public:
  struct Options {
    // Capacity until the first LimitUpdate: the route limit's burst.
    double initial_capacity = 1;
    UnavailablePolicy policy = UnavailablePolicy::kFallbackShare;
    // The local route limit (tokens/s): the fallback rate until the server
    // has said anything.
    double initial_rate_per_second = 1;
    // Most grant batches kept; older ones merge into the next (keeping the
    // earlier expiry, so merging never extends a token's life).
    size_t max_batches = 64;
    // While connected and the server has sent no share yet, tokens beyond
    // those held are predicted this far from now (one report interval).
    Duration refresh = std::chrono::milliseconds(100);
  };
  explicit LeasePool(Options options);
  LeasePool(const LeasePool&) = delete;
  LeasePool& operator=(const LeasePool&) = delete;

  // --- Fed by the LeaseAgent ---------------------------------------------
  // Adds `tokens` that die at `expires_at`, and notes the share the server
  // computed (tokens/s) for predictions and fallback. Then calls the
  // on_tokens callback (outside the lock) if tokens > 0.
  void AddGrant(double tokens, TimePoint expires_at, double share_per_second,
                TimePoint now);
  // Drops tokens held above `target`, latest-expiring first. Returns how
  // many were dropped.
  double ShrinkTo(double target, TimePoint now);
  // The resource's global limit from a LimitUpdate.
  void SetLimit(double rate_per_second, double burst, UnavailablePolicy policy,
                uint32_t sidecars);
  // Stream state. Going unavailable starts the fallback clock; coming back
  // resets the fallback bucket.
  void SetConnected(bool connected, TimePoint now);
  // Unspent, unexpired tokens (expired batches are dropped first).
  double Held(TimePoint now);
  LeaseMode Mode(TimePoint now);
  double share_per_second() const;
  // Called after tokens arrive (grant) so queued requests can be polled.
  // Set once, before the pool is shared.
  void set_on_tokens(std::function<void()> fn) { on_tokens_ = std::move(fn); }

  // --- TokenSource semantics (see token_source.h) -------------------------
  bool TryTake(double cost, TimePoint now);
  // Held tokens first; beyond them, a prediction at share_per_second (or, if
  // the share is still 0, one refresh interval from now) while connected;
  // the fallback bucket's answer in kFallbackShare; nullopt in kFailClosed;
  // `now` in kFailOpen. Leased predictions may be late (the RateLimiter
  // expires waiters it cannot serve in time); they are never early.
  std::optional<TimePoint> AvailableAt(double cost, TimePoint now);
  void Refund(double cost, TimePoint now);
  double Capacity() const;

 private:
  struct Batch {
    double tokens;
    TimePoint expires_at;  // Alive while now < expires_at.
  };
  // Treats a `now` earlier than the latest seen as the latest seen.
  TimePoint ClampLocked(TimePoint now);
  // Drops batches with expires_at <= now.
  void DropExpiredLocked(TimePoint now);
  double HeldLocked() const;
  // Whether the unavailability policy is in force: disconnected and nothing
  // held (call after DropExpiredLocked).
  bool PolicyActiveLocked() const { return !connected_ && batches_.empty(); }
  // The fallback bucket's rate and burst from what is known now.
  RateSpec FallbackSpecLocked() const;
  // The fallback bucket, created full at `now` on first use.
  TokenBucket& FallbackLocked(TimePoint now);
  // Time at which `cost` tokens beyond the pool's batches arrive at the
  // share pace, counting only batches still alive then.
  std::optional<TimePoint> LeasedPredictionLocked(double cost,
                                                  TimePoint now) const;
  double ToleranceLocked() const;

  Options options_;
  std::function<void()> on_tokens_;
  mutable std::mutex mu_;
  // Sorted by expires_at, earliest first. Guarded by mu_ (as is all below).
  std::deque<Batch> batches_;
  double capacity_;
  double limit_rate_;
  uint32_t sidecars_ = 1;
  UnavailablePolicy policy_;
  double share_ = 0;        // Last share_per_second from a grant.
  double last_grant_ = 0;   // Size of the last grant with tokens > 0.
  bool connected_ = false;  // Until the first SetConnected(true).
  TimePoint last_now_{};
  std::optional<TokenBucket> fallback_;  // Only while the policy is in force.
};

// Adapter handed to RateLimiter (which owns its source by unique_ptr) while
// the LeaseAgent keeps the shared pool.
class LeasedTokenSource : public TokenSource {
 public:
  explicit LeasedTokenSource(std::shared_ptr<LeasePool> pool);
  bool TryTake(double cost, TimePoint now) override;
  std::optional<TimePoint> AvailableAt(double cost,
                                       TimePoint now) const override;
  void Refund(double cost, TimePoint now) override;
  double Capacity() const override;

 private:
  std::shared_ptr<LeasePool> pool_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_LEASE_LEASE_POOL_H_
