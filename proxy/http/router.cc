#include "proxy/http/router.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace sluice {
namespace {

absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// Drops one trailing dot and surrounding IPv6 brackets.
std::string_view TrimHost(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

}  // namespace

Router::Router(const std::vector<RouteConfig>& routes) {
  routes_.reserve(routes.size());
  for (const RouteConfig& route : routes) {
    CompiledRoute compiled;
    compiled.route = route;
    std::string_view host = TrimHost(route.host);
    if (host.empty() || host == "*") {
      compiled.kind = HostKind::kAny;
    } else if (host.size() > 2 && host.substr(0, 2) == "*.") {
      compiled.kind = HostKind::kSuffix;
      compiled.host = absl::AsciiStrToLower(AbslView(host.substr(1)));
    } else {
      compiled.kind = HostKind::kExact;
      compiled.host = absl::AsciiStrToLower(AbslView(host));
    }
    for (const std::string& method : route.methods) {
      compiled.methods.push_back(absl::AsciiStrToUpper(method));
    }
    routes_.push_back(std::move(compiled));
  }
}

std::optional<Router::Match> Router::Find(std::string_view host,
                                          std::string_view path,
                                          std::string_view method) const {
  const absl::string_view h = AbslView(TrimHost(host));
  const absl::string_view p = AbslView(path);
  const absl::string_view m = AbslView(method);
  for (size_t i = 0; i < routes_.size(); ++i) {
    const CompiledRoute& r = routes_[i];
    switch (r.kind) {
      case HostKind::kAny:
        break;
      case HostKind::kExact:
        if (!absl::EqualsIgnoreCase(h, r.host)) continue;
        break;
      case HostKind::kSuffix:
        // Strictly longer than ".example.com", so the apex never matches.
        if (h.size() <= r.host.size() || !absl::EndsWithIgnoreCase(h, r.host)) {
          continue;
        }
        break;
    }
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
