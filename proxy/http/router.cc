#include "proxy/http/router.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace sluice {
namespace {

absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

}  // namespace

Router::Router(const std::vector<RouteConfig>& routes) {
  routes_.reserve(routes.size());
  for (const RouteConfig& route : routes) {
    CompiledRoute compiled{.route = route, .host = HostPattern(route.host)};
    for (const std::string& method : route.methods) {
      compiled.methods.push_back(absl::AsciiStrToUpper(method));
    }
    routes_.push_back(std::move(compiled));
  }
}

std::optional<Router::Match> Router::Find(std::string_view host,
                                          std::string_view path,
                                          std::string_view method,
                                          RouteScheme scheme) const {
  const absl::string_view p = AbslView(path);
  const absl::string_view m = AbslView(method);
  for (size_t i = 0; i < routes_.size(); ++i) {
    const CompiledRoute& r = routes_[i];
    if (r.route.scheme != RouteScheme::kAny && r.route.scheme != scheme) {
      continue;
    }
    if (!r.host.Matches(host)) continue;
    if (!absl::StartsWith(p, r.route.path_prefix)) continue;
    if (!r.methods.empty()) {
      bool method_ok = false;
      for (const std::string& allowed : r.methods) {
        if (absl::EqualsIgnoreCase(m, allowed)) {
          method_ok = true;
          break;
        }
      }
      if (!method_ok) continue;
    }
    return Match{&r.route, i};
  }
  return std::nullopt;
}

std::string RouteLabel(const RouteConfig& route) {
  std::string label = route.host.empty() ? "*" : route.host;
  label += route.path_prefix;
  return label;
}

}  // namespace sluice
