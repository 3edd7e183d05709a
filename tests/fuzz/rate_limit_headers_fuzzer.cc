// Feeds arbitrary "name: value" lines to the rate-limit header parser and
// checks the bounds its callers rely on. The first byte picks the
// ResetStyle; the rest is split into lines at '\n' and each line into a
// name and a value at its first ':'.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/headers/rate_limit_headers.h"
#include "common/headers/structured_field.h"

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

void CheckDelay(const std::optional<sluice::Duration>& d) {
  if (d) Require(*d >= sluice::Duration::zero() && *d <= sluice::kMaxHintDelay);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const absl::Time kNow = absl::FromCivil(
      absl::CivilSecond(2024, 5, 1, 12, 0, 0), absl::UTCTimeZone());
  sluice::RateLimitParseOptions options;
  options.reset_style = static_cast<sluice::ResetStyle>(data[0] % 3);
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  std::vector<sluice::HeaderRef> headers;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view value = line.substr(colon + 1);
    headers.push_back({line.substr(0, colon), value});
    // The building blocks must cope with any value on their own too.
    sluice::ParseHttpDate(value);
    sluice::sf::ParseList(value);
    sluice::sf::ParseDictionary(value);
    sluice::sf::ParseItem(value);
  }

  const sluice::RateLimitHint hint =
      sluice::ParseRateLimitHeaders(headers, kNow, options);
  CheckDelay(hint.retry_after);
  CheckDelay(hint.reset_after);
  CheckDelay(sluice::SuggestedPause(hint));
  if (hint.window) Require(*hint.window >= sluice::Duration::zero());
  if (hint.remaining) Require(*hint.remaining >= 0);
  if (hint.limit) Require(*hint.limit >= 0);
  // A source is named exactly when a dialect gave a count or a reset.
  Require(hint.source.empty() == (!hint.remaining && !hint.reset_after));
  return 0;
}
