#ifndef SLUICE_PROXY_TLS_SERVER_NAME_H_
#define SLUICE_PROXY_TLS_SERVER_NAME_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sluice {

// A name a leaf certificate may be minted for, in the one spelling the
// leaf cache keys on.
struct ServerName {
  // Lower-case DNS name without a trailing dot, or an IP address in
  // canonical text (inet_ntop; IPv6 without brackets).
  std::string text;
  bool is_ip = false;
};

// Checks and normalises a name that came from a CONNECT line or a client's
// SNI, so that nothing odd reaches a certificate:
//   - an IPv4 dotted quad or an IPv6 address (brackets allowed around IPv6)
//     is an IP name, rewritten in canonical text;
//   - otherwise a DNS name: labels of letters, digits, '-' and '_' of 1..63
//     bytes, separated by single dots, at most 253 bytes, lower-cased, one
//     trailing dot dropped; a name whose last label starts with a digit
//     ("127.1", "1.2.3.4.5") is refused, since it is an address in some
//     readers' eyes and no top-level domain starts with a digit.
// Anything else (wildcards, spaces, controls, empty labels, ports) is
// InvalidArgument. Pure and thread-safe.
absl::StatusOr<ServerName> NormalizeServerName(std::string_view name);

}  // namespace sluice

#endif  // SLUICE_PROXY_TLS_SERVER_NAME_H_
