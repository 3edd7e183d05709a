#ifndef SLUICE_PROXY_TLS_LEAF_CACHE_H_
#define SLUICE_PROXY_TLS_LEAF_CACHE_H_

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "proxy/tls/cert_authority.h"

namespace sluice {

struct LeafCacheOptions {
  size_t capacity = 1000;  // entries; 0 is taken as 1
  absl::Duration renew_before = absl::Hours(1);
};

// The server SSL_CTX of each intercepted host: its minted leaf, the
// authority's shared leaf key, the CA as chain, and the settings of
// TlsServerContext::ApplyServerSettings. A bounded LRU keyed by the
// normalised name (NormalizeServerName: lower case, canonical IP text);
// names that are not a DNS name or an IP literal are refused, so a
// client's SNI cannot produce an odd certificate.
//
// Time: a cached context is renewed (minted again) once clock->WallNow()
// is within renew_before of its leaf's notAfter.
// Thread-safety: Get may be called from any number of threads. Minting
// runs outside the cache's lock, so a handshake never waits on another
// host's minting; two threads that miss on the same name at once both
// mint, and the first to store its context wins (the other returns it
// too). The authority and the clock must outlive the cache.
class LeafCache {
 public:
  using Options = LeafCacheOptions;

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;     // a mint was needed (absent or due for renewal)
    uint64_t evictions = 0;  // least recently used entries dropped
    uint64_t mint_failures = 0;
    size_t size = 0;
  };

  LeafCache(const CertAuthority* authority, const Clock* clock,
            Options options = {});
  LeafCache(const LeafCache&) = delete;
  LeafCache& operator=(const LeafCache&) = delete;

  // The server context for `name`: cached, or minted now.
  // InvalidArgument for a name NormalizeServerName refuses (nothing is
  // minted or counted); the authority's error when minting fails.
  absl::StatusOr<std::shared_ptr<SSL_CTX>> Get(std::string_view name);

  Stats stats() const;

 private:
  struct Entry {
    std::string name;
    std::shared_ptr<SSL_CTX> ctx;
    absl::Time renew_at;
  };
  using List = std::list<Entry>;

  absl::StatusOr<std::shared_ptr<SSL_CTX>> MintContext(
      const std::string& name, absl::Time* renew_at) const;

  const CertAuthority* const authority_;
  const Clock* const clock_;
  const size_t capacity_;
  const absl::Duration renew_before_;

  mutable std::mutex mu_;
  List lru_;  // most recently used first
  absl::flat_hash_map<std::string, List::iterator> index_;
  Stats stats_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_TLS_LEAF_CACHE_H_
