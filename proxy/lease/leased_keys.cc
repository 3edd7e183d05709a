#include "proxy/lease/leased_keys.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "proxy/limit/rate_limiter.h"

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
  {
    std::lock_guard lock(mu_);
    if (pools_.size() >= prune_at_) {
      absl::erase_if(
          pools_, [](const auto& kv) { return kv.second.limiter.expired(); });
      prune_at_ = std::max<size_t>(64, 2 * pools_.size());
    }
    pools_[limiter.get()] = Entry{weak, pool};
  }
  if (kick_) {
    pool->set_on_tokens([kick = kick_, weak] { kick(weak); });
  }
  if (bind_) {
    bind_(LeaseBinding{resource_, key_hash, weak, std::move(pool),
                       limiter->pause()});
  }
}

std::string_view LeasedKeySources::ModeFor(const RateLimiter* limiter,
                                           TimePoint now) const {
  std::shared_ptr<LeasePool> pool;
  {
    std::lock_guard lock(mu_);
    auto it = pools_.find(limiter);
    if (it == pools_.end() || it->second.limiter.expired()) return {};
    pool = it->second.pool.lock();
  }
  return pool ? LeaseModeName(pool->Mode(now)) : std::string_view();
}

LeasedKeySources::Summary LeasedKeySources::Summarize(TimePoint now) const {
  std::vector<std::shared_ptr<LeasePool>> live;
  {
    std::lock_guard lock(mu_);
    live.reserve(pools_.size());
    for (const auto& [limiter, entry] : pools_) {
      if (entry.limiter.expired()) continue;
      if (auto pool = entry.pool.lock()) live.push_back(std::move(pool));
    }
  }
  Summary s;
  for (const auto& pool : live) {
    ++s.keys;
    ++s.by_mode[static_cast<size_t>(pool->Mode(now))];
    s.held += pool->Held(now);
  }
  return s;
}

}  // namespace sluice
