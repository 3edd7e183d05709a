#include "proxy/pause/throttle_rules.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace sluice {
namespace {

bool Contains(const std::vector<int>& list, int status) {
  return std::find(list.begin(), list.end(), status) != list.end();
}

// The status and header conditions of `rule` (not its body marker).
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

// Whether body markers can be looked for: no Content-Encoding, or only
// "identity". Anything else (gzip, br, a list) is not decoded.
bool BodyIsPlain(std::span<const HeaderRef> headers) {
  for (const HeaderRef& h : headers) {
    if (!absl::EqualsIgnoreCase(absl::string_view(h.name.data(), h.name.size()),
                                "content-encoding")) {
      continue;
    }
    const absl::string_view coding = absl::StripAsciiWhitespace(
        absl::string_view(h.value.data(), h.value.size()));
    if (!coding.empty() && !absl::EqualsIgnoreCase(coding, "identity")) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool MayBeThrottle(const ThrottleConfig& config, int status) {
  return config.enabled && (Contains(config.statuses, status) ||
                            Contains(config.when_exhausted, status));
}

ThrottleVerdict ClassifyResponse(const ThrottleConfig& config, int status,
                                 std::span<const HeaderRef> headers,
                                 absl::Time now,
                                 std::optional<std::string_view> body) {
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
  // Rules without a body marker first: they need nothing more.
  bool body_rule_applies = false;
  for (const ThrottleIgnoreRule& rule : config.ignore) {
    if (!Matches(rule, status, headers)) continue;
    if (rule.body.empty()) {
      v.kind = ThrottleVerdict::Kind::kIgnored;
      return v;
    }
    body_rule_applies = true;
  }
  if (body_rule_applies && BodyIsPlain(headers)) {
    if (!body.has_value()) {
      v.wants_body = true;
    } else {
      body = body->substr(0, std::min(body->size(), config.body_peek_bytes));
      for (const ThrottleIgnoreRule& rule : config.ignore) {
        if (!rule.body.empty() && Matches(rule, status, headers) &&
            body->find(std::string_view(rule.body)) != std::string_view::npos) {
          v.kind = ThrottleVerdict::Kind::kIgnored;
          return v;
        }
      }
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
