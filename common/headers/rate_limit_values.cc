#include "common/headers/rate_limit_values.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <system_error>

#include "absl/strings/string_view.h"
#include "common/headers/http_date.h"
#include "common/time/duration.h"

namespace sluice::header_value {
namespace {

constexpr size_t kMaxNumberLength = 64;
constexpr double kMaxDelaySeconds =
    std::chrono::duration<double>(kMaxHintDelay).count();

}  // namespace

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

std::optional<double> ParseDecimal(std::string_view s) {
  s = TrimOws(s);
  if (s.empty() || s.size() > kMaxNumberLength) return std::nullopt;
  size_t i = s.front() == '-' ? 1 : 0;
  size_t digits = 0;
  bool dot = false;
  for (; i < s.size(); ++i) {
    if (s[i] >= '0' && s[i] <= '9') {
      ++digits;
    } else if (s[i] == '.' && !dot) {
      dot = true;
    } else {
      return std::nullopt;
    }
  }
  if (digits == 0) return std::nullopt;
  double value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(value))
    return std::nullopt;
  return value;
}

std::optional<double> ParseCount(std::string_view s) {
  std::optional<double> v = ParseDecimal(s);
  if (!v || *v < 0) return std::nullopt;
  return v;
}

Duration CappedDelay(double seconds) {
  return FromSeconds(std::min(seconds, kMaxDelaySeconds));
}

std::optional<Duration> ParseDeltaSeconds(std::string_view s) {
  std::optional<double> v = ParseDecimal(s);
  if (!v || *v < 0) return std::nullopt;
  return CappedDelay(*v);
}

std::optional<Duration> DelayUntil(absl::Time t, absl::Time ref) {
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast()) {
    return std::nullopt;
  }
  const absl::Duration d = t - ref;
  if (d <= absl::ZeroDuration()) return Duration::zero();
  if (d >= absl::FromChrono(kMaxHintDelay)) return kMaxHintDelay;
  return absl::ToChronoNanoseconds(d);
}

std::optional<Duration> ParseResetNumber(std::string_view s, ResetStyle style,
                                         absl::Time ref) {
  std::optional<double> v = ParseDecimal(s);
  if (!v || *v < 0) return std::nullopt;
  double value = *v;
  const bool epoch = style == ResetStyle::kEpochSeconds ||
                     (style == ResetStyle::kAuto && value >= 1e9);
  if (!epoch) return CappedDelay(value);
  if (style == ResetStyle::kAuto && value >= 1e12) value /= 1000;  // ms
  const double delta = value - absl::ToDoubleSeconds(ref - absl::UnixEpoch());
  return CappedDelay(std::max(delta, 0.0));
}

std::optional<Duration> ParseRetryAfter(std::string_view s, absl::Time ref) {
  if (std::optional<Duration> d = ParseDeltaSeconds(s)) return d;
  if (std::optional<absl::Time> t = ParseHttpDate(s))
    return DelayUntil(*t, ref);
  return std::nullopt;
}

std::optional<Duration> ParseRetryAfterMs(std::string_view s) {
  std::optional<double> v = ParseDecimal(s);
  if (!v || *v < 0) return std::nullopt;
  return CappedDelay(*v / 1000);
}

std::optional<Duration> ParseGoDuration(std::string_view s) {
  if (std::optional<Duration> d = ParseDeltaSeconds(s)) return d;
  s = TrimOws(s);
  if (s.empty() || s.size() > kMaxNumberLength) return std::nullopt;
  absl::Duration d;
  if (!absl::ParseDuration(absl::string_view(s.data(), s.size()), &d) ||
      d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return std::nullopt;
  }
  return std::min(absl::ToChronoNanoseconds(d), kMaxHintDelay);
}

std::optional<Duration> ParseRfc3339Delay(std::string_view s, absl::Time ref) {
  s = TrimOws(s);
  if (s.empty() || s.size() > kMaxNumberLength) return std::nullopt;
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full,
                       absl::string_view(s.data(), s.size()), &t, &err)) {
    return std::nullopt;
  }
  return DelayUntil(t, ref);
}

}  // namespace sluice::header_value
