#include "common/sys/socket_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

namespace sluice {

std::optional<SocketAddress> SocketAddressOf(std::string_view ip,
                                             uint16_t port) {
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
    ip = ip.substr(1, ip.size() - 2);
  }
  const std::string text(ip);  // inet_pton wants a C string
  SocketAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.length = sizeof(*v4);
    return a;
  }
  if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.length = sizeof(*v6);
    return a;
  }
  return std::nullopt;
}

uint16_t PortOf(const SocketAddress& address) {
  switch (address.family()) {
    case AF_INET:
      return ntohs(
          reinterpret_cast<const sockaddr_in*>(&address.storage)->sin_port);
    case AF_INET6:
      return ntohs(
          reinterpret_cast<const sockaddr_in6*>(&address.storage)->sin6_port);
    default:
      return 0;
  }
}

}  // namespace sluice
