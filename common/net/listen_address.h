#ifndef SLUICE_COMMON_NET_LISTEN_ADDRESS_H_
#define SLUICE_COMMON_NET_LISTEN_ADDRESS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sluice {

// A socket address to listen on. `host` is an IP literal without brackets
// ("127.0.0.1", "::1", "0.0.0.0", "::"); port 0 asks for an ephemeral port.
struct ListenAddress {
  std::string host;
  uint16_t port = 0;

  // "127.0.0.1:3128", or "[::1]:3128" for IPv6.
  std::string ToString() const;
  bool operator==(const ListenAddress&) const = default;
};

// Parses "host:port" where host is an IPv4 literal or a bracketed IPv6
// literal ("[::1]:3128"). Host names are not accepted: a listener binds
// before anything is resolved. Errors describe the problem without a field
// path; callers add the path. Pure and thread-safe.
absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text);

}  // namespace sluice

#endif  // SLUICE_COMMON_NET_LISTEN_ADDRESS_H_
