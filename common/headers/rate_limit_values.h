#ifndef SLUICE_COMMON_HEADERS_RATE_LIMIT_VALUES_H_
#define SLUICE_COMMON_HEADERS_RATE_LIMIT_VALUES_H_

// Parsers for single rate-limit header values, shared by the dialects of
// rate_limit_headers.cc. Each takes one field value (surrounding spaces and
// tabs allowed), requires all of it to parse, and returns nullopt for
// malformed, negative or non-finite input. Delays saturate at kMaxHintDelay;
// an absolute time at or before `ref` is a zero delay.

#include <optional>
#include <string_view>

#include "absl/time/time.h"
#include "common/headers/rate_limit_headers.h"
#include "common/time/clock.h"

namespace sluice::header_value {

// `s` without leading and trailing SP and HTAB.
std::string_view TrimOws(std::string_view s);

// A plain decimal: -?(DIGIT+ ["." DIGIT*] | "." DIGIT+), at most 64
// characters. No exponent, no '+'. May be negative.
std::optional<double> ParseDecimal(std::string_view s);

// A count (limit, remaining, used): a decimal >= 0.
std::optional<double> ParseCount(std::string_view s);

// Seconds (>= 0, finite) as a Duration, saturating at kMaxHintDelay.
Duration CappedDelay(double seconds);

// Non-negative delta seconds, decimals allowed.
std::optional<Duration> ParseDeltaSeconds(std::string_view s);

// The delay from `ref` until `t`: zero when `t` is not after `ref`; nullopt
// for an infinite time.
std::optional<Duration> DelayUntil(absl::Time t, absl::Time ref);

// A bare reset number read per `style` (see RateLimitParseOptions): delta
// seconds, or epoch seconds (epoch milliseconds from 1e12 on, with kAuto)
// converted to a delay from `ref`.
std::optional<Duration> ParseResetNumber(std::string_view s, ResetStyle style,
                                         absl::Time ref);

// Retry-After: delta-seconds (decimals allowed) or an HTTP-date.
std::optional<Duration> ParseRetryAfter(std::string_view s, absl::Time ref);

// retry-after-ms: decimal milliseconds.
std::optional<Duration> ParseRetryAfterMs(std::string_view s);

// A Go duration ("6m0s", "12ms", "1h30m", "0.5s") or plain seconds.
std::optional<Duration> ParseGoDuration(std::string_view s);

// An RFC 3339 timestamp ("2024-05-01T12:00:30Z", offsets and fractions
// allowed), as a delay from `ref`.
std::optional<Duration> ParseRfc3339Delay(std::string_view s, absl::Time ref);

}  // namespace sluice::header_value

#endif  // SLUICE_COMMON_HEADERS_RATE_LIMIT_VALUES_H_
