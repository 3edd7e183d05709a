// Feeds arbitrary bytes to PeekClientBytes and checks the promises the
// tunnel code will rely on: every prefix is classified without reading
// past the input, a decision never changes as bytes arrive, and "need
// more" never lasts beyond kMaxPeekBytes.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proxy/tls/client_hello_peek.h"

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  sluice::PeekResult decided = sluice::PeekResult::kNeedMore;
  for (size_t n = 0; n <= bytes.size(); ++n) {
    const sluice::PeekResult now = sluice::PeekClientBytes(bytes.substr(0, n));
    Require(sluice::PeekResultName(now) != "");
    if (decided != sluice::PeekResult::kNeedMore) {
      Require(now == decided);
      // Past the decision, the answer is settled: check the whole input
      // only.
      Require(sluice::PeekClientBytes(bytes) == decided);
      break;
    }
    if (now == sluice::PeekResult::kNeedMore) {
      Require(n < sluice::kMaxPeekBytes);
    }
    if (now == sluice::PeekResult::kTls) {
      Require(n >= 6 && data[0] == 22 && data[1] == 3 && data[5] == 1);
    }
    if (now == sluice::PeekResult::kHttp) {
      Require(n >= 2 && bytes.substr(0, n).back() == ' ');
    }
    decided = now;
  }
  return 0;
}
