#ifndef SLUICE_COMMON_RATE_TOKEN_SOURCE_FACTORY_H_
#define SLUICE_COMMON_RATE_TOKEN_SOURCE_FACTORY_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/rate/token_bucket.h"
#include "common/rate/token_source.h"
#include "common/time/clock.h"

namespace sluice {

// The local rate algorithms. Both enforce the same rate and burst; they differ
// only in how the state is stored (tokens vs. theoretical arrival time).
enum class Algorithm { kTokenBucket, kGcra };

// Creates a full local token source. `spec` should pass ValidateRateSpec.
// Never returns null.
std::unique_ptr<TokenSource> MakeTokenSource(Algorithm alg,
                                             const RateSpec& spec,
                                             TimePoint now);

// Configuration names: "token_bucket" and "gcra".
absl::StatusOr<Algorithm> ParseAlgorithm(std::string_view name);
std::string_view AlgorithmName(Algorithm alg);

}  // namespace sluice

#endif  // SLUICE_COMMON_RATE_TOKEN_SOURCE_FACTORY_H_
