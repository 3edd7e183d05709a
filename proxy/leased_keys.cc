#include "proxy/leased_keys.h"

#include "proxy/rate_limiter.h"

#include <utility>

namespace sluice {

LeasedKeySources::LeasedKeySources(std::string resource,
                                   LeasePool::Options pool_options, Kick kick)
    : resource_(std::move(resource)),
      pool_options_(pool_options),
      kick_(std::move(kick)) {}

std::unique_ptr<TokenSource> LeasedKeySources::MakeSource(
    const std::string& key_hash, TimePoint now) {
  pending_hash_ = key_hash;
  pending_pool_ = std::make_shared<LeasePool>(pool_options_);
  if (connected_ && connected_()) pending_pool_->SetConnected(true, now);
  return std::make_unique<LeasedTokenSource>(pending_pool_);
}

void LeasedKeySources::OnCreated(const std::string& key_hash,
                                 const std::shared_ptr<RateLimiter>& limiter) {
  std::shared_ptr<LeasePool> pool = std::move(pending_pool_);
  pending_pool_.reset();
  if (pool == nullptr || key_hash != pending_hash_) return;
  std::weak_ptr<RateLimiter> weak = limiter;
  if (kick_) {
    pool->set_on_tokens([kick = kick_, weak] { kick(weak); });
  }
  if (bind_) {
    bind_(LeaseBinding{resource_, key_hash, weak, std::move(pool),
                       limiter->throttle()});
  }
}

}  // namespace sluice
