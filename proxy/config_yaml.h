#ifndef SLUICE_PROXY_CONFIG_YAML_H_
#define SLUICE_PROXY_CONFIG_YAML_H_

// The proxy's own YAML readers, on top of the shared ones in
// common/config_yaml.h: token amounts, durations, free text and header
// names. Same error form: "<field path>: <reason> (line L, column C)".
// Internal to the config loader; not a general YAML API.

#include <yaml-cpp/yaml.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/clock.h"
#include "common/config_yaml.h"

namespace sluice {
namespace config_yaml {

// Durations are capped so that `now + duration` can never overflow.
inline constexpr Duration kMaxDuration = std::chrono::hours(24 * 365);

// Largest token amount accepted for rate, burst and costs.
inline constexpr double kMaxTokens = 1e12;

// Reads a finite number in [min, kMaxTokens]; when `min_exclusive`, the
// number must be strictly greater than min.
absl::Status ReadNumber(const YAML::Node& node, absl::string_view path,
                        double min, bool min_exclusive, double* out);

// Reads a duration via ParseConfigDuration, at most kMaxDuration and, unless
// `allow_zero`, > 0.
absl::Status ReadDuration(const YAML::Node& node, absl::string_view path,
                          bool allow_zero, Duration* out);

// True for valid UTF-8 (shortest forms, no surrogates) free of ASCII
// control characters. Free-text fields are held to this so that the dump,
// which must be valid YAML, reproduces them exactly.
bool IsCleanUtf8(absl::string_view s);

// RFC 9110 token characters, used for header names and methods.
bool IsToken(absl::string_view s);

// Reads a header name (a token); empty only when `allow_empty`.
absl::Status ReadHeaderName(const YAML::Node& node, absl::string_view path,
                            bool allow_empty, std::string* out);

}  // namespace config_yaml
}  // namespace sluice

#endif  // SLUICE_PROXY_CONFIG_YAML_H_
