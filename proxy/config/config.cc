#include "proxy/config/config.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/net/ip_literal.h"

namespace sluice {
namespace {

// Checks a DNS-style name: dot-separated labels of letters, digits, '-' and
// '_', 1..63 bytes each, at most one trailing dot, 253 bytes in all.
absl::Status CheckHostName(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return absl::InvalidArgumentError("empty host name");
  if (name.size() > 253) {
    return absl::InvalidArgumentError("host name longer than 253 bytes");
  }
  size_t label_len = 0;
  for (char c : name) {
    if (c == '.') {
      if (label_len == 0) {
        return absl::InvalidArgumentError("host name has an empty label");
      }
      label_len = 0;
      continue;
    }
    if (c == '*') {
      return absl::InvalidArgumentError(
          "a wildcard is only allowed as a leading \"*.\"");
    }
    if (c == ':') {
      return absl::InvalidArgumentError(
          "must not include a port (routes match the host only)");
    }
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' &&
        c != '_') {
      return absl::InvalidArgumentError(
          "host names may contain only letters, digits, '-', '_' and '.'");
    }
    if (++label_len > 63) {
      return absl::InvalidArgumentError("host name label longer than 63 bytes");
    }
  }
  if (label_len == 0) {
    return absl::InvalidArgumentError("host name has an empty label");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckCidrSyntax(std::string_view text) {
  const size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  unsigned char bytes[16];
  uint32_t max_prefix = 0;
  if (IsIpLiteral(AF_INET, address)) {
    max_prefix = 32;
  } else if (IsIpLiteral(AF_INET6, address)) {
    max_prefix = 128;
  } else {
    return absl::InvalidArgumentError(
        "want address/prefix-length, e.g. 10.0.0.0/8 or fd00::/8");
  }
  inet_pton(max_prefix == 32 ? AF_INET : AF_INET6, std::string(address).c_str(),
            bytes);
  uint32_t prefix = max_prefix;  // A bare address is a single host.
  if (slash != std::string_view::npos) {
    std::optional<uint32_t> bits = ParseSmallNumber(text.substr(slash + 1), 3);
    if (!bits || *bits > max_prefix) {
      return absl::InvalidArgumentError(
          absl::StrCat("prefix length must be a number in 0..", max_prefix));
    }
    prefix = *bits;
  }
  for (uint32_t bit = prefix; bit < max_prefix; ++bit) {
    if (bytes[bit / 8] & (0x80 >> (bit % 8))) {
      return absl::InvalidArgumentError(
          absl::StrCat("address has bits set past the /", prefix,
                       " prefix; write the network address (e.g. 10.0.0.0/8)"));
    }
  }
  return absl::OkStatus();
}

std::string_view LimitAlgorithmName(LimitAlgorithm algorithm) {
  switch (algorithm) {
    case LimitAlgorithm::kGcra:
      return "gcra";
    case LimitAlgorithm::kTokenBucket:
      return "token_bucket";
  }
  return "gcra";
}

std::optional<LimitAlgorithm> ParseLimitAlgorithm(std::string_view name) {
  if (name == "gcra") return LimitAlgorithm::kGcra;
  if (name == "token_bucket") return LimitAlgorithm::kTokenBucket;
  return std::nullopt;
}

absl::Status CheckRouteHostPattern(std::string_view host) {
  if (host.empty() || host == "*") return absl::OkStatus();
  if (host.front() == '[') {
    if (host.size() < 2 || host.back() != ']' ||
        !IsIpLiteral(AF_INET6, host.substr(1, host.size() - 2))) {
      return absl::InvalidArgumentError(
          "want an IPv6 address inside the brackets (and no port)");
    }
    return absl::OkStatus();
  }
  if (host.find(':') != std::string_view::npos && IsIpLiteral(AF_INET6, host)) {
    return absl::OkStatus();
  }
  if (host.size() >= 2 && host.substr(0, 2) == "*.") {
    return CheckHostName(host.substr(2));
  }
  return CheckHostName(host);
}

std::string_view RouteSchemeName(RouteScheme scheme) {
  switch (scheme) {
    case RouteScheme::kAny:
      return "";
    case RouteScheme::kHttp:
      return "http";
    case RouteScheme::kHttps:
      return "https";
  }
  return "";
}

std::optional<RouteScheme> ParseRouteScheme(std::string_view name) {
  if (name.empty()) return RouteScheme::kAny;
  if (name == "http") return RouteScheme::kHttp;
  if (name == "https") return RouteScheme::kHttps;
  return std::nullopt;
}

const LimitConfig* ProxyConfig::FindLimit(std::string_view name) const {
  auto it = rate_limits.find(name);
  return it == rate_limits.end() ? nullptr : &it->second;
}

ProxyConfig DefaultProxyConfig() { return ProxyConfig{}; }

}  // namespace sluice
