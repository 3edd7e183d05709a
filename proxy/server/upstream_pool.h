#ifndef SLUICE_PROXY_SERVER_UPSTREAM_POOL_H_
#define SLUICE_PROXY_SERVER_UPSTREAM_POOL_H_

#include <boost/beast/core/tcp_stream.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "common/time/clock.h"
#include "proxy/io/maybe_tls_stream.h"

namespace sluice {

// Bounded keep-alive pool of idle origin connections, keyed by "host:port"
// exactly as the request named them. A pooled connection was dialled to an
// address the SSRF guard accepted, so reuse needs no new check.
//
// Thread-safe. Connections move in and out as unique_ptrs; while a session
// holds one, the pool does not see it.
class UpstreamPool {
 public:
  struct Options {
    size_t max_idle_per_host = 8;
    size_t max_idle_total = 256;
    Duration idle_timeout = std::chrono::seconds(30);
  };
  using Stream = MaybeTlsStream;

  UpstreamPool(Options opts, Clock* clock) : opts_(opts), clock_(clock) {}

  // Returns a live idle connection for `key`, or nullptr. Connections that
  // idled past the timeout, or that the origin closed, are dropped here.
  std::unique_ptr<Stream> Take(const std::string& key);

  // Offers a connection that finished a response cleanly. The pool keeps it
  // unless a bound is reached, in which case the oldest idle one goes.
  void Put(const std::string& key, std::unique_ptr<Stream> stream);

  // Closes connections idle past the timeout. Call periodically.
  void Sweep();

  // Closes everything (shutdown).
  void Clear();

  size_t idle() const;
  uint64_t reused() const;

 private:
  struct Entry {
    std::unique_ptr<Stream> stream;
    TimePoint since;
  };
  // True when the socket is still open and has no unsolicited bytes.
  static bool LooksAlive(Stream& s);
  void EvictOldestLocked();

  Options opts_;
  Clock* clock_;
  mutable std::mutex mu_;
  absl::flat_hash_map<std::string, std::deque<Entry>> idle_;
  size_t total_ = 0;
  uint64_t reused_ = 0;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_SERVER_UPSTREAM_POOL_H_
