#include "proxy/http/host_pattern.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

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

HostPattern::HostPattern(std::string_view pattern) {
  const std::string_view host = TrimHost(pattern);
  if (host.empty() || host == "*") {
    kind_ = Kind::kAny;
  } else if (host.size() > 2 && host.substr(0, 2) == "*.") {
    kind_ = Kind::kSuffix;
    host_ = absl::AsciiStrToLower(AbslView(host.substr(1)));
  } else {
    kind_ = Kind::kExact;
    host_ = absl::AsciiStrToLower(AbslView(host));
  }
}

bool HostPattern::Matches(std::string_view host) const {
  const absl::string_view h = AbslView(TrimHost(host));
  switch (kind_) {
    case Kind::kAny:
      return true;
    case Kind::kExact:
      return absl::EqualsIgnoreCase(h, host_);
    case Kind::kSuffix:
      // Strictly longer than ".example.com", so the apex never matches.
      return h.size() > host_.size() && absl::EndsWithIgnoreCase(h, host_);
  }
  return false;
}

HostSet::HostSet(const std::vector<std::string>& patterns) {
  patterns_.reserve(patterns.size());
  for (const std::string& pattern : patterns) patterns_.emplace_back(pattern);
}

bool HostSet::Matches(std::string_view host) const {
  for (const HostPattern& pattern : patterns_) {
    if (pattern.Matches(host)) return true;
  }
  return false;
}

}  // namespace sluice
