#ifndef SLUICE_PROXY_HTTP_HOST_PATTERN_H_
#define SLUICE_PROXY_HTTP_HOST_PATTERN_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// One host pattern, as a route's `host` or an `intercept.hosts` entry
// (CheckRouteHostPattern in config.h says which patterns are valid):
//  - "api.example.com" matches that host exactly;
//  - "*.example.com" matches any subdomain at any depth ("a.example.com",
//    "a.b.example.com") but not "example.com" itself;
//  - "" or "*" matches any host, an empty one included.
// Both sides are compared case-insensitively, ignoring one trailing dot
// and the brackets around an IPv6 literal, so "[2001:db8::1]" and
// "2001:DB8::1." are the same host. A pattern that CheckRouteHostPattern
// refuses is still matched by these rules, literally.
//
// Immutable after construction; Matches is allocation-free and safe to
// call from many threads.
class HostPattern {
 public:
  explicit HostPattern(std::string_view pattern);

  // `host` comes without a port.
  bool Matches(std::string_view host) const;

  // True for "" and "*".
  bool matches_any() const { return kind_ == Kind::kAny; }

 private:
  enum class Kind { kAny, kExact, kSuffix };
  Kind kind_ = Kind::kAny;
  // Lower-cased, no trailing dot, no brackets. For kSuffix this keeps the
  // leading dot (".example.com").
  std::string host_;
};

// A list of host patterns: a host is in the set when any pattern matches
// it. An empty set matches nothing.
//
// Immutable after construction; Matches is allocation-free, linear in the
// number of patterns, and safe to call from many threads.
class HostSet {
 public:
  explicit HostSet(const std::vector<std::string>& patterns);

  bool Matches(std::string_view host) const;

  bool empty() const { return patterns_.empty(); }
  size_t size() const { return patterns_.size(); }

 private:
  std::vector<HostPattern> patterns_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_HTTP_HOST_PATTERN_H_
