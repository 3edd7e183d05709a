#include "proxy/throttle_rules.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace sluice {
namespace {

bool Contains(const std::vector<int>& list, int status) {
  return std::find(list.begin(), list.end(), status) != list.end();
}

bool Matches(const ThrottleIgnoreRule& rule, int status,
             std::span<const HeaderRef> headers) {
  if (rule.status != 0 && rule.status != status) return false;
  if (rule.header.empty()) return true;
  for (const HeaderRef& h : headers) {
    if (!absl::EqualsIgnoreCase(absl::string_view(h.name.data(), h.name.size()),
                                rule.header)) {
      continue;
    }
    if (rule.value.empty()) return true;
    const std::string value = absl::AsciiStrToLower(
        absl::string_view(h.value.data(), h.value.size()));
    if (value.find(absl::AsciiStrToLower(rule.value)) != std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool MayBeThrottle(const ThrottleConfig& config, int status) {
  return config.enabled && (Contains(config.statuses, status) ||
                            Contains(config.when_exhausted, status));
}

ThrottleVerdict ClassifyResponse(const ThrottleConfig& config, int status,
                                 std::span<const HeaderRef> headers,
                                 absl::Time now) {
  ThrottleVerdict v;
  if (!MayBeThrottle(config, status)) return v;
  const RateLimitHint hint = ParseRateLimitHeaders(
      headers, now, RateLimitParseOptions{.reset_style = config.reset_style});
  const std::optional<Duration> pause = SuggestedPause(hint);
  if (!Contains(config.statuses, status)) {
    // when_exhausted: only a spent quota with a known reset is a throttle
    // (a 403 without one is a plain "forbidden").
    const bool exhausted = hint.remaining.has_value() && *hint.remaining <= 0;
    if (!exhausted || !pause.has_value()) return v;
  }
  for (const ThrottleIgnoreRule& rule : config.ignore) {
    if (Matches(rule, status, headers)) {
      v.kind = ThrottleVerdict::Kind::kIgnored;
      return v;
    }
  }
  v.kind = config.broadcast ? ThrottleVerdict::Kind::kBroadcast
                            : ThrottleVerdict::Kind::kLocal;
  v.hint = pause;
  v.limit = hint.limit;
  v.window = hint.window ? hint.window : config.limit_window;
  if (hint.retry_after.has_value()) {
    v.reason = "retry-after";
  } else if (pause.has_value() && !hint.source.empty()) {
    v.reason = hint.source;
  } else {
    v.reason = "status";
  }
  return v;
}

std::optional<StatedLimitHint> StatedLimitOf(const ThrottleConfig& config,
                                             std::span<const HeaderRef> headers,
                                             absl::Time now) {
  const RateLimitHint hint = ParseRateLimitHeaders(
      headers, now, RateLimitParseOptions{.reset_style = config.reset_style});
  const std::optional<Duration> window =
      hint.window ? hint.window : config.limit_window;
  if (!hint.limit || !window || *hint.limit <= 0 ||
      *window <= Duration::zero()) {
    return std::nullopt;
  }
  return StatedLimitHint{.limit = *hint.limit, .window = *window};
}

}  // namespace sluice
