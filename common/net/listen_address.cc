#include "common/net/listen_address.h"

#include <arpa/inet.h>

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/net/ip_literal.h"

namespace sluice {

std::string ListenAddress::ToString() const {
  if (host.find(':') != std::string::npos) {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text) {
  auto bad = [text](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad address \"",
        absl::CHexEscape(absl::string_view(text.data(), text.size())), "\" (",
        absl::string_view(why.data(), why.size()), ")"));
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

}  // namespace sluice
