#include "common/rate/token_source_factory.h"

#include "absl/strings/str_cat.h"
#include "common/rate/gcra.h"

namespace sluice {

std::unique_ptr<TokenSource> MakeTokenSource(Algorithm alg,
                                             const RateSpec& spec,
                                             TimePoint now) {
  switch (alg) {
    case Algorithm::kGcra:
      return std::make_unique<GcraBucket>(spec, now);
    case Algorithm::kTokenBucket:
      break;
  }
  return std::make_unique<TokenBucket>(spec, now);
}

absl::StatusOr<Algorithm> ParseAlgorithm(std::string_view name) {
  if (name == "token_bucket") return Algorithm::kTokenBucket;
  if (name == "gcra") return Algorithm::kGcra;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown rate algorithm '", absl::string_view(name.data(), name.size()),
      "' (use token_bucket or gcra)"));
}

std::string_view AlgorithmName(Algorithm alg) {
  switch (alg) {
    case Algorithm::kGcra:
      return "gcra";
    case Algorithm::kTokenBucket:
      break;
  }
  return "token_bucket";
}

}  // namespace sluice
