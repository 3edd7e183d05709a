#ifndef SLUICE_PROXY_PAUSE_THROTTLE_RULES_H_
#define SLUICE_PROXY_PAUSE_THROTTLE_RULES_H_

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "common/headers/rate_limit_headers.h"
#include "common/time/clock.h"
#include "proxy/config/config.h"

namespace sluice {

// What an upstream response means for the limit it was sent under.
struct ThrottleVerdict {
  enum class Kind {
    kNone,       // not a throttle
    kIgnored,    // a throttle status, but an ignore rule says not a quota
    kLocal,      // pause this sidecar's bucket only (broadcast: false)
    kBroadcast,  // pause, and report to the quota server
  };
  Kind kind = Kind::kNone;
  // The pause the upstream asked for (SuggestedPause of its headers), before
  // the pause schedule's clamping. nullopt: no usable hint.
  std::optional<Duration> hint;
  // What decided the pause: "retry-after", a dialect ("x-ratelimit",
  // "openai", ...) or "status" when no header helped.
  std::string reason;
  // The limit the headers stated (limit per window), for learned limits.
  std::optional<double> limit;
  std::optional<Duration> window;
  // Classified without the body: a throttle that an ignore rule with a
  // `body` marker could still excuse. The caller reads up to
  // body_peek_bytes of the body and classifies again with them.
  bool wants_body = false;
  bool throttled() const {
    return kind == Kind::kLocal || kind == Kind::kBroadcast;
  }
};

// Whether `status` could be a throttle under `config` at all (statuses or
// when_exhausted). A cheap pre-check before the headers are collected.
bool MayBeThrottle(const ThrottleConfig& config, int status);

// Classifies one upstream response (docs/pause.md): a status in `statuses`
// is a throttle; one in `when_exhausted` is when the limit headers say
// nothing remains and when it comes back; an `ignore` rule that matches
// makes it kIgnored. `now` is the local wall-clock time (the headers'
// absolute times are read against the response's Date when present).
//
// `body` is the first bytes of the response body (chunked framing removed)
// when they were read, nullopt when not: rules with a `body` marker then do
// not match, and the verdict says whether reading them could change it
// (wants_body). A body with a Content-Encoding other than identity is never
// matched (the marker would be looked for in compressed bytes).
ThrottleVerdict ClassifyResponse(
    const ThrottleConfig& config, int status,
    std::span<const HeaderRef> headers, absl::Time now,
    std::optional<std::string_view> body = std::nullopt);

// A limit an ordinary response's headers state: `limit` requests per
// `window`.
struct StatedLimitHint {
  double limit = 0;
  Duration window{};
};

// The limit stated by any response's headers, for learned limits: the
// limit with its window (IETF `w=`), else with config.limit_window; nullopt
// when no limit or no window is known.
std::optional<StatedLimitHint> StatedLimitOf(const ThrottleConfig& config,
                                             std::span<const HeaderRef> headers,
                                             absl::Time now);

}  // namespace sluice

#endif  // SLUICE_PROXY_PAUSE_THROTTLE_RULES_H_
