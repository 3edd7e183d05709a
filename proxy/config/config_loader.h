#ifndef SLUICE_PROXY_CONFIG_CONFIG_LOADER_H_
#define SLUICE_PROXY_CONFIG_CONFIG_LOADER_H_

// Reads sluice-proxy's YAML configuration into a validated ProxyConfig and
// writes the effective configuration back out.
//
// Contract of the loaders:
//  - Every field is optional; a missing field keeps its default from
//    config.h. An empty document (or one holding only comments) yields
//    DefaultProxyConfig().
//  - Unknown fields, duplicate fields and values of the wrong type are
//    errors, so typos never pass silently.
//  - Errors are InvalidArgument (NotFound when the file is missing) with a
//    message of the form
//        <field path>: <reason> (line L, column C)
//    e.g. `rate_limits.openai.rate: must be a number > 0 (got "abc")`,
//    `routes[2].limit: unknown limit "foo"`, `timeouts.conect: unknown field`.
//    YAML syntax errors read `yaml syntax error at line L, column C: ...`.
//    Lines and columns are 1-based.
//  - They never throw.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proxy/config/config.h"

namespace sluice {

// Loads and validates the YAML file at `path`. Error messages are prefixed
// with the path.
absl::StatusOr<ProxyConfig> LoadProxyConfigFromFile(const std::string& path);

// Loads and validates YAML text. The text must hold at most one document.
absl::StatusOr<ProxyConfig> LoadProxyConfigFromString(std::string_view yaml);

// Returns the effective configuration as YAML (for the admin /config
// endpoint and startup logs). The output loads back into an equal config.
// Fields that may carry secrets are written as "<redacted>" (or omitted
// when unset); today the configuration holds only header *names*, never
// header values, so nothing is actually redacted yet.
std::string DumpRedactedConfig(const ProxyConfig& config);

// A short fingerprint of the effective configuration: "sha256:" followed by
// the first 16 hex digits of the SHA-256 of DumpRedactedConfig(config).
// Equal configs give equal versions; any change visible in the dump gives
// a different one. Being taken over the redacted dump, it reveals nothing
// the /config endpoint does not already show.
std::string ConfigVersion(const ProxyConfig& config);

}  // namespace sluice

#endif  // SLUICE_PROXY_CONFIG_CONFIG_LOADER_H_
