#ifndef SLUICE_PROXY_SERVER_RELAY_BUFFER_CACHE_H_
#define SLUICE_PROXY_SERVER_RELAY_BUFFER_CACHE_H_

#include <cstddef>
#include <memory>

namespace sluice {

// A few streaming buffers kept per thread, so a busy kept-alive connection
// that gives its buffer back whenever it goes idle (and takes one again for
// the next request) costs no allocation, while thousands of idle
// connections hold none. At most kPerThread buffers are kept per thread;
// all are `bytes` long (a buffer of another size is freed, not kept).
//
// Thread-safety: the cache is thread_local; Take and Give may be called
// from any thread, and a buffer may be given back on another thread than
// the one it was taken on.
class RelayBufferCache {
 public:
  static constexpr size_t kPerThread = 4;

  // A buffer of `bytes` (contents unspecified).
  static std::unique_ptr<char[]> Take(size_t bytes);
  // Keeps `buffer` (of `bytes`) for the next Take on this thread, or frees
  // it.
  static void Give(std::unique_ptr<char[]> buffer, size_t bytes);
  // Buffers kept on the calling thread (for tests).
  static size_t KeptOnThisThread();
};

}  // namespace sluice

#endif  // SLUICE_PROXY_SERVER_RELAY_BUFFER_CACHE_H_
