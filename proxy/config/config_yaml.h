#ifndef SLUICE_PROXY_CONFIG_CONFIG_YAML_H_
#define SLUICE_PROXY_CONFIG_CONFIG_YAML_H_

// The proxy's own YAML readers, on top of the shared ones in
// common/config/config_yaml.h: token amounts, durations, free text and header
// names. Same error form: "<field path>: <reason> (line L, column C)".
// Internal to the config loader; not a general YAML API.

#include <yaml-cpp/yaml.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/config/config_yaml.h"
#include "common/time/clock.h"

namespace sluice {
namespace config_yaml {

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

#endif  // SLUICE_PROXY_CONFIG_CONFIG_YAML_H_
