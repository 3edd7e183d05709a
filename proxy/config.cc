#include "proxy/config.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// inet_pton needs a NUL-terminated string, so an embedded NUL would cut the
// text short and let trailing garbage through; reject those explicitly.
bool IsIpLiteral(int family, std::string_view text) {
  if (text.empty() || text.find('\0') != std::string_view::npos) return false;
  unsigned char buf[16];
  return inet_pton(family, std::string(text).c_str(), buf) == 1;
}

bool IsAllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Parses a small decimal number made of 1..max_len digits.
std::optional<uint32_t> ParseSmallNumber(std::string_view s, size_t max_len) {
  if (!IsAllDigits(s) || s.size() > max_len) return std::nullopt;
  uint32_t value = 0;
  if (!absl::SimpleAtoi(AbslView(s), &value)) return std::nullopt;
  return value;
}

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

std::string ListenAddress::ToString() const {
  if (host.find(':') != std::string::npos) {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text) {
  auto bad = [text](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address \"", absl::CHexEscape(AbslView(text)), "\" (",
                     AbslView(why), ")"));
  };
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return bad("want [ipv6]:port");
    port = rest.substr(1);
    if (!IsIpLiteral(AF_INET6, host)) {
      return bad("not an IPv6 address inside the brackets");
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("want host:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.empty()) {
      return bad(
          "missing host; write 0.0.0.0:PORT or [::]:PORT to listen on all "
          "interfaces");
    }
    if (host.find(':') != std::string_view::npos) {
      return bad("IPv6 addresses need brackets, e.g. [::1]:3128");
    }
    if (!IsIpLiteral(AF_INET, host)) {
      return bad("host must be an IPv4 address or a bracketed IPv6 address");
    }
  }
  std::optional<uint32_t> port_number = ParseSmallNumber(port, 5);
  if (!port_number || *port_number > 65535) {
    return bad("port must be a number in 0..65535");
  }
  return ListenAddress{std::string(host), static_cast<uint16_t>(*port_number)};
}

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

const LimitConfig* ProxyConfig::FindLimit(std::string_view name) const {
  auto it = rate_limits.find(name);
  return it == rate_limits.end() ? nullptr : &it->second;
}

ProxyConfig DefaultProxyConfig() { return ProxyConfig{}; }

}  // namespace sluice
