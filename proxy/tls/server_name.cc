#include "proxy/tls/server_name.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/net/ip_literal.h"

namespace sluice {
namespace {

constexpr size_t kMaxDnsName = 253;
constexpr size_t kMaxLabel = 63;

bool IsLabelByte(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
         c == '_';
}

// Canonical text of an address that IsIpLiteral accepted.
std::string CanonicalIp(int family, std::string_view text) {
  unsigned char buf[sizeof(struct in6_addr)];
  char out[INET6_ADDRSTRLEN];
  const std::string copy(text);
  if (inet_pton(family, copy.c_str(), buf) != 1 ||
      inet_ntop(family, buf, out, sizeof(out)) == nullptr) {
    return copy;
  }
  return out;
}

absl::Status Invalid(std::string_view name, absl::string_view why) {
  // The name is untrusted input: print it escaped.
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid TLS server name \"",
      absl::CEscape(absl::string_view(name.data(), name.size())), "\": ", why));
}

}  // namespace

absl::StatusOr<ServerName> NormalizeServerName(std::string_view name) {
  if (IsIpLiteral(AF_INET, name)) {
    return ServerName{.text = CanonicalIp(AF_INET, name), .is_ip = true};
  }
  std::string_view unbracketed = name;
  if (unbracketed.size() > 2 && unbracketed.front() == '[' &&
      unbracketed.back() == ']') {
    unbracketed = unbracketed.substr(1, unbracketed.size() - 2);
  }
  if (IsIpLiteral(AF_INET6, unbracketed)) {
    return ServerName{.text = CanonicalIp(AF_INET6, unbracketed),
                      .is_ip = true};
  }

  std::string_view dns = name;
  if (!dns.empty() && dns.back() == '.') dns.remove_suffix(1);
  if (dns.empty()) return Invalid(name, "empty");
  if (dns.size() > kMaxDnsName) return Invalid(name, "longer than 253 bytes");
  size_t label_start = 0;
  for (size_t i = 0; i <= dns.size(); ++i) {
    if (i == dns.size() || dns[i] == '.') {
      const size_t len = i - label_start;
      if (len == 0) return Invalid(name, "empty label");
      if (len > kMaxLabel) return Invalid(name, "label longer than 63 bytes");
      label_start = i + 1;
      continue;
    }
    if (!IsLabelByte(dns[i])) {
      return Invalid(name, "only letters, digits, '-', '_' and '.' allowed");
    }
  }
  const size_t last_dot = dns.rfind('.');
  const char last_label_first =
      dns[last_dot == std::string_view::npos ? 0 : last_dot + 1];
  if (absl::ascii_isdigit(static_cast<unsigned char>(last_label_first))) {
    return Invalid(name, "numeric-looking name that is not an IP address");
  }
  return ServerName{
      .text = absl::AsciiStrToLower(absl::string_view(dns.data(), dns.size())),
      .is_ip = false};
}

}  // namespace sluice
