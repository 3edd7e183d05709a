// Feeds arbitrary datagrams to the fast path's parser and opener, as the
// UDP readers of both binaries do, and checks that an authentic body is
// only ever produced for the right key and direction.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/protocol/fast_path_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kKey(sluice::kFastPathKeyBytes, 'k');
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto env = sluice::ParseFastPath(in);
  if (!env) return 0;
  if (env->token == 0 || env->seq == 0 || env->mac.size() != 32) std::abort();
  sluice::v1::FastPathBody body;
  for (auto dir :
       {sluice::FastPathDirection::kUp, sluice::FastPathDirection::kDown}) {
    const auto r = sluice::OpenFastPath(kKey, dir, *env, &body);
    // A random MAC matches with probability 2^-256: an "ok" means the
    // input was sealed with kKey, which the fuzzer cannot do.
    if (r == sluice::FastPathOpen::kOk) std::abort();
  }
  return 0;
}
