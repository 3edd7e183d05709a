#ifndef SLUICE_PROXY_CONFIG_CONFIG_TLS_H_
#define SLUICE_PROXY_CONFIG_CONFIG_TLS_H_

// The TLS parts of the configuration (docs/https.md): the `intercept:` and
// `upstream_tls:` blocks and a route's `scheme` and `originate_tls`. YAML
// in only; config_dump.cc writes them out. Internal to the config loader.
//
// Only the text of the configuration is checked here: the CA and bundle
// files are not read (the app loads them at start and names the field in
// its own errors).

#include <yaml-cpp/yaml.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proxy/config/config.h"

namespace sluice {

// Reads the top-level `intercept:` block over the defaults in `out`:
//
//   intercept:
//     hosts: [api.openai.com, "*.stripe.com"]
//     ca: {cert: /etc/sluice/ca.pem, key: /etc/sluice/ca-key.pem}
//     leaf_validity: 24h   # 2h..720h
//     leaf_cache: 1000     # 1..100000
//
// Hosts follow the route host rules (CheckRouteHostPattern) except that ""
// and "*" are refused: interception names its hosts, it is never on for
// every host. Hosts need both CA paths (the error names `intercept.ca`),
// and CA paths need hosts (the error names `intercept.hosts`): a CA
// without hosts would intercept nothing, which is taken for a mistake.
// An empty path is an unset one. Errors name the field.
absl::Status ParseInterceptConfig(const YAML::Node& node, InterceptConfig* out);

// Reads the top-level `upstream_tls:` block over the defaults in `out`:
//
//   upstream_tls:
//     ca_bundle: ""                          # "" = the system store
//     insecure_skip_verify: [legacy.internal]
//     session_cache: 1000                    # 0..100000
//
// insecure_skip_verify holds exact host names or IP literals, each one a
// valid route host without a wildcard. Errors name the field.
absl::Status ParseUpstreamTlsConfig(const YAML::Node& node,
                                    UpstreamTlsConfig* out);

// Reads one of a route's TLS fields, `key` being "scheme" ("", http or
// https) or "originate_tls" (a bool), at `path` (e.g. "routes[2].scheme").
absl::Status ReadRouteTlsField(absl::string_view key, const YAML::Node& value,
                               const std::string& path, RouteConfig* route);

// Checks a route's TLS fields together once the route at `path` is read:
// `originate_tls: true` with `scheme: https` is an error (a request from an
// intercepted tunnel already goes to its origin over TLS).
absl::Status CheckRouteTls(const YAML::Node& node, absl::string_view path,
                           const RouteConfig& route);

}  // namespace sluice

#endif  // SLUICE_PROXY_CONFIG_CONFIG_TLS_H_
