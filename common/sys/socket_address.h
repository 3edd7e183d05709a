#ifndef SLUICE_COMMON_SYS_SOCKET_ADDRESS_H_
#define SLUICE_COMMON_SYS_SOCKET_ADDRESS_H_

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice {

// An address for the POSIX socket calls (bind, connect, sendto).
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const {
    return reinterpret_cast<const sockaddr*>(&storage);
  }
  int family() const { return storage.ss_family; }
};

// `ip` (an IPv4 or IPv6 literal, the latter optionally in brackets) and
// `port`; nullopt for anything else (host names are not resolved).
std::optional<SocketAddress> SocketAddressOf(std::string_view ip,
                                             uint16_t port);

// The port of a bound or connected AF_INET/AF_INET6 address (0 otherwise).
uint16_t PortOf(const SocketAddress& address);

}  // namespace sluice

#endif  // SLUICE_COMMON_SYS_SOCKET_ADDRESS_H_
