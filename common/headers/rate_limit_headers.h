#ifndef SLUICE_COMMON_HEADERS_RATE_LIMIT_HEADERS_H_
#define SLUICE_COMMON_HEADERS_RATE_LIMIT_HEADERS_H_

// Reads the many ways HTTP APIs say "slow down" into one normalised hint.
//
// Understood fields (names compare case-insensitively):
//   Retry-After             delta-seconds (decimals allowed) or HTTP-date
//   retry-after-ms          decimal milliseconds; wins over Retry-After
//   x-should-retry, Stripe-Should-Retry   "false" sets should_retry_false
//   x-ratelimit-{limit,remaining,used,reset}        GitHub-style, source
//                                                   "x-ratelimit"
//   x-ratelimit-reset-after  Discord, preferred over x-ratelimit-reset,
//                            source "discord"
//   x-rate-limit-{limit,remaining,reset}            X (Twitter), source
//                                                   "x-rate-limit"
//   x-ratelimit-{limit,remaining,reset}-{requests,tokens}   OpenAI (reset is
//                            a Go duration such as "6m0s"), source "openai"
//   anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
//                            {limit,remaining,reset}  (reset is RFC 3339),
//                            source "anthropic"
//   RateLimit + RateLimit-Policy   IETF httpapi draft-11 structured fields,
//                            items matched to policies by name, source "ietf"
//   RateLimit-{Limit,Remaining,Reset}   older IETF drafts (GitLab sends an
//                            epoch reset), source "ietf-draft"; an older
//                            dictionary-form `RateLimit: limit=..,
//                            remaining=.., reset=..` is read the same way
//   X-Shopify-Shop-Api-Call-Limit   "used/capacity", source "shopify"
//
// Rules for bad input: a value that does not parse in full is ignored, as are
// negative numbers (including -1), NaN and infinities. Delays are capped at
// kMaxHintDelay; an absolute time in the past is a zero delay. When a field
// is repeated (or its lines were joined with commas), the most conservative
// usable value wins: the lowest count, the longest delay.

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "common/headers/http_date.h"  // ParseHttpDate
#include "common/time/clock.h"

namespace sluice {

// The longest delay the parser reports; callers may clamp further.
inline constexpr Duration kMaxHintDelay = std::chrono::hours(24);

// One response header field. Names compare case-insensitively. A field that
// appears several times is passed several times.
struct HeaderRef {
  std::string_view name;
  std::string_view value;
};

// How to read a bare reset number (X-RateLimit-Reset, RateLimit-Reset,
// x-rate-limit-reset).
enum class ResetStyle { kAuto, kEpochSeconds, kDeltaSeconds };

struct RateLimitParseOptions {
  // kAuto: a value >= 1e9 (after 2001) is epoch seconds, a value >= 1e12 is
  // epoch milliseconds, anything smaller is delta seconds.
  ResetStyle reset_style = ResetStyle::kAuto;
};

// What a response's rate-limit headers say, normalised. Every field is
// empty when no header gave a usable value (malformed values are ignored).
struct RateLimitHint {
  // Retry-After (delta-seconds incl. decimals like "2.0", or HTTP-date in
  // IMF-fixdate, RFC 850, asctime), retry-after-ms. Clamped to >= 0.
  // retry-after-ms wins over Retry-After when both are usable.
  std::optional<Duration> retry_after;
  // The most constraining remaining count across dialects: an exhausted
  // quota (remaining <= 0) first, then the lowest remaining/limit ratio
  // (or the lowest remaining when a limit is missing).
  std::optional<double> remaining;
  // The limit that goes with `remaining`.
  std::optional<double> limit;
  // Time until the constraining quota (the one with `remaining`) resets,
  // >= 0. When no dialect gave a remaining count, the first reset seen.
  std::optional<Duration> reset_after;
  // The policy window of that quota when known (IETF w=).
  std::optional<Duration> window;
  // Short dialect name that set reset_after/remaining: "x-ratelimit",
  // "discord", "x-rate-limit", "openai", "anthropic", "ietf", "ietf-draft",
  // "shopify"; empty when none did.
  std::string source;
  // x-should-retry: false or Stripe-Should-Retry: false.
  bool should_retry_false = false;
};

// Parses every dialect listed above. `now` is the local wall-clock time;
// when a Date header is present and parseable, absolute times in the response
// (epoch resets, HTTP-dates, RFC 3339) are converted to delays relative to
// that Date (so skew between the API's clock and ours cancels out);
// otherwise relative to `now`. Never fails; the work per field is bounded
// (see common/headers/structured_field.h for the structured-field limits).
RateLimitHint ParseRateLimitHeaders(std::span<const HeaderRef> headers,
                                    absl::Time now,
                                    const RateLimitParseOptions& options = {});

// The pause a throttled response asks for: retry_after if set; else
// reset_after if remaining <= 0; else nullopt (no usable hint).
std::optional<Duration> SuggestedPause(const RateLimitHint& hint);

}  // namespace sluice

#endif  // SLUICE_COMMON_HEADERS_RATE_LIMIT_HEADERS_H_
