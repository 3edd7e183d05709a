#include "proxy/tls/leaf_cache.h"

#include <algorithm>
#include <utility>

#include "proxy/tls/server_context.h"
#include "proxy/tls/server_name.h"

namespace sluice {

LeafCache::LeafCache(const CertAuthority* authority, const Clock* clock,
                     Options options)
    : authority_(authority),
      clock_(clock),
      capacity_(std::max<size_t>(options.capacity, 1)),
      renew_before_(options.renew_before) {}

absl::StatusOr<std::shared_ptr<SSL_CTX>> LeafCache::MintContext(
    const std::string& name, absl::Time* renew_at) const {
  absl::StatusOr<CertAuthority::Leaf> leaf = authority_->Mint(name);
  if (!leaf.ok()) return leaf.status();
  absl::StatusOr<SslCtxPtr> ctx = TlsServerContext::NewLeafContext(
      leaf->cert.get(), authority_->leaf_key(), authority_->ca_cert());
  if (!ctx.ok()) return ctx.status();
  *renew_at = leaf->not_after - renew_before_;
  return ShareSslCtx(*std::move(ctx));
}

absl::StatusOr<std::shared_ptr<SSL_CTX>> LeafCache::Get(
    std::string_view raw_name) {
  absl::StatusOr<ServerName> normalized = NormalizeServerName(raw_name);
  if (!normalized.ok()) return normalized.status();
  const std::string& name = normalized->text;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(name);
    if (it != index_.end() && clock_->WallNow() < it->second->renew_at) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++stats_.hits;
      return it->second->ctx;
    }
    ++stats_.misses;
  }

  // Outside the lock: other hosts' handshakes go on meanwhile.
  absl::Time renew_at;
  absl::StatusOr<std::shared_ptr<SSL_CTX>> minted =
      MintContext(name, &renew_at);

  std::lock_guard<std::mutex> lock(mu_);
  if (!minted.ok()) {
    ++stats_.mint_failures;
    return minted.status();
  }
  auto it = index_.find(name);
  if (it != index_.end()) {
    if (clock_->WallNow() < it->second->renew_at) {
      // Another thread stored a fresh context first: use that one.
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->ctx;
    }
    lru_.erase(it->second);
    index_.erase(it);
  }
  lru_.push_front(Entry{.name = name, .ctx = *minted, .renew_at = renew_at});
  index_.emplace(name, lru_.begin());
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().name);
    lru_.pop_back();
    ++stats_.evictions;
  }
  return *std::move(minted);
}

LeafCache::Stats LeafCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats out = stats_;
  out.size = lru_.size();
  return out;
}

}  // namespace sluice
