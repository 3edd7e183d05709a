#include "proxy/server/relay_buffer_cache.h"

#include <utility>
#include <vector>

namespace sluice {
namespace {

struct Kept {
  size_t bytes = 0;
  std::vector<std::unique_ptr<char[]>> buffers;
};

Kept& ThisThread() {
  thread_local Kept kept;
  return kept;
}

}  // namespace

std::unique_ptr<char[]> RelayBufferCache::Take(size_t bytes) {
  Kept& k = ThisThread();
  if (k.bytes == bytes && !k.buffers.empty()) {
    std::unique_ptr<char[]> b = std::move(k.buffers.back());
    k.buffers.pop_back();
    return b;
  }
  return std::make_unique_for_overwrite<char[]>(bytes);
}

void RelayBufferCache::Give(std::unique_ptr<char[]> buffer, size_t bytes) {
  if (!buffer) return;
  Kept& k = ThisThread();
  if (k.bytes != bytes) {
    k.buffers.clear();
    k.bytes = bytes;
  }
  if (k.buffers.size() < kPerThread) k.buffers.push_back(std::move(buffer));
}

size_t RelayBufferCache::KeptOnThisThread() {
  return ThisThread().buffers.size();
}

}  // namespace sluice
