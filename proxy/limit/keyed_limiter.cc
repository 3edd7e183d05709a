#include "proxy/limit/keyed_limiter.h"

#include <openssl/evp.h>

#include <algorithm>
#include <iterator>
#include <utility>

namespace sluice {
namespace {

// SHA-256, fetched once (an explicit fetch avoids a provider lookup on every
// digest). Falls back to the built-in handle if the fetch fails.
const EVP_MD* Sha256() {
  static const EVP_MD* const md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
}

}  // namespace

KeyedLimiterSet::KeyedLimiterSet(size_t max_keys,
                                 RateLimiterOptions limiter_options,
                                 SourceFactory factory, CreatedHook on_created)
    : max_keys_(max_keys),
      limiter_options_(limiter_options),
      factory_(std::move(factory)),
      on_created_(std::move(on_created)) {}

std::string KeyedLimiterSet::HashKey(std::string_view raw) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(raw.data(), raw.size(), digest, &len, Sha256(), nullptr) !=
          1 ||
      len * 2 < kHashHexChars) {
    return std::string();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kHashHexChars, '0');
  for (size_t i = 0; i < kHashHexChars / 2; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

std::shared_ptr<RateLimiter> KeyedLimiterSet::GetOrCreate(
    std::string_view raw_key, TimePoint now) {
  // Hash outside the lock; from here on only the hash exists.
  std::string hash = HashKey(raw_key);
  if (hash.empty()) return nullptr;

  std::lock_guard<std::mutex> lock(mu_);
  if (auto found = index_.find(hash); found != index_.end()) {
    lru_.splice(lru_.begin(), lru_, found->second);
    return found->second->limiter;
  }
  if (lru_.size() >= max_keys_ && !EvictOneLocked()) return nullptr;
  std::unique_ptr<TokenSource> source = factory_(hash, now);
  if (source == nullptr) return nullptr;
  auto limiter =
      std::make_shared<RateLimiter>(std::move(source), limiter_options_);
  if (on_created_) on_created_(hash, limiter);
  lru_.push_front(Entry{hash, limiter});
  index_.emplace(std::move(hash), lru_.begin());
  return limiter;
}

bool KeyedLimiterSet::EvictOneLocked() {
  const size_t probes = std::min(kMaxEvictionProbes, lru_.size());
  for (size_t i = 0; i < probes; ++i) {
    auto victim = std::prev(lru_.end());
    // use_count() == 1 under mu_ means nobody else uses it: the set hands
    // out references only under mu_, and a weak_ptr holder that locks it
    // behind our back keeps it alive until done (evicting it is then only
    // early, never unsafe).
    if (victim->limiter.use_count() == 1 &&
        victim->limiter->queue_depth() == 0) {
      index_.erase(victim->hash);
      lru_.erase(victim);
      ++evictions_;
      return true;
    }
    lru_.splice(lru_.begin(), lru_, victim);  // Busy: treat as in use.
  }
  return false;
}

size_t KeyedLimiterSet::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

uint64_t KeyedLimiterSet::evictions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return evictions_;
}

std::vector<std::string> KeyedLimiterSet::HashedKeys() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> keys;
  keys.reserve(lru_.size());
  for (const Entry& e : lru_) keys.push_back(e.hash);
  return keys;
}

}  // namespace sluice
