#include "common/time/duration.h"

#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace sluice {

absl::StatusOr<Duration> ParseConfigDuration(std::string_view text) {
  // Debian's Abseil has its own string_view type; convert at the boundary.
  absl::string_view s =
      absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size()));
  if (s.empty()) return absl::InvalidArgumentError("empty duration");
  double seconds = 0;
  if (absl::SimpleAtod(s, &seconds)) {
    if (!std::isfinite(seconds) || seconds < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("duration must be a finite, non-negative number: ", s));
    }
    return FromSeconds(seconds);
  }
  absl::Duration d;
  if (!absl::ParseDuration(s, &d)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad duration '", s, "' (use forms like 250ms, 1.5s, 2m, 1h)"));
  }
  if (d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("duration must be finite and non-negative: ", s));
  }
  return absl::ToChronoNanoseconds(d);
}

std::string FormatDuration(Duration d) {
  return absl::FormatDuration(absl::FromChrono(d));
}

Duration FromSeconds(double seconds) {
  if (std::isnan(seconds) || seconds <= 0) return Duration::zero();
  constexpr double kMax =
      static_cast<double>(std::numeric_limits<int64_t>::max()) / 1e9;
  if (seconds >= kMax) return Duration::max();
  return Duration(static_cast<int64_t>(std::llround(seconds * 1e9)));
}

}  // namespace sluice
