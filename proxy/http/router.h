#ifndef SLUICE_PROXY_HTTP_ROUTER_H_
#define SLUICE_PROXY_HTTP_ROUTER_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/http/host_pattern.h"

namespace sluice {

// Maps a request (host, path, method, scheme) to the first matching
// RouteConfig.
//
// Matching rules, per route, all of which must hold:
//  - host: a HostPattern (host_pattern.h): compared case-insensitively,
//    ignoring one trailing dot and IPv6 brackets on either side.
//    "api.example.com" matches exactly; "*.example.com" matches any
//    subdomain at any depth ("a.example.com", "a.b.example.com") but not
//    "example.com" itself; "" or "*" matches any host (including an empty
//    one).
//  - path_prefix: a plain, case-sensitive byte prefix of `path`; empty
//    matches every path.
//  - methods: case-insensitive; an empty list matches every method.
//  - scheme: a route with RouteScheme::kAny matches requests of either
//    scheme; one with kHttp or kHttps only requests of that scheme.
// Routes are tried in configuration order; the first match wins.
//
// The Router keeps its own copy of the routes; Match::route points into it
// and stays valid for the Router's lifetime (moves included). Find is
// const, allocation-free and safe to call from many threads.
class Router {
 public:
  explicit Router(const std::vector<RouteConfig>& routes);

  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;
  Router(Router&&) = default;
  Router& operator=(Router&&) = default;

  struct Match {
    const RouteConfig* route;
    size_t index;  // Position in the configured route list.
  };

  // `host` comes without a port; `path` without query or fragment (as the
  // request target's path, already normalised by the caller). `scheme` is
  // how the request reached sluice: kHttp (plain http://) or kHttps (from
  // inside an intercepted tunnel). kAny is no request's scheme: given it,
  // only routes without a scheme match.
  std::optional<Match> Find(std::string_view host, std::string_view path,
                            std::string_view method, RouteScheme scheme) const;

  size_t size() const { return routes_.size(); }

 private:
  struct CompiledRoute {
    RouteConfig route;
    HostPattern host;
    std::vector<std::string> methods;  // Upper-cased.
  };

  std::vector<CompiledRoute> routes_;
};

// The `route` label of a route in metrics and access logs: the host pattern
// ("*" when empty) followed by the path prefix, e.g. "api.example.com/v1".
// Two routes may share a label; their requests then count together.
std::string RouteLabel(const RouteConfig& route);

}  // namespace sluice

#endif  // SLUICE_PROXY_HTTP_ROUTER_H_
