#ifndef SLUICE_COMMON_TIME_DURATION_H_
#define SLUICE_COMMON_TIME_DURATION_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/time/clock.h"

namespace sluice {

// Parses a configuration duration. Accepts Go-style strings ("1.5s",
// "250ms", "6m0s", "1h") and plain non-negative numbers meaning seconds
// ("2", "0.5"). Negative, infinite and malformed values are errors.
absl::StatusOr<Duration> ParseConfigDuration(std::string_view text);

// Formats a duration the way ParseConfigDuration reads it ("1.5s").
std::string FormatDuration(Duration d);

// Converts a duration to seconds as a double.
inline double ToSeconds(Duration d) {
  return std::chrono::duration<double>(d).count();
}

// Converts seconds (which may be fractional) to a Duration, saturating.
Duration FromSeconds(double seconds);

}  // namespace sluice

#endif  // SLUICE_COMMON_TIME_DURATION_H_
