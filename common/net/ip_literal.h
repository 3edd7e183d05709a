#ifndef SLUICE_COMMON_NET_IP_LITERAL_H_
#define SLUICE_COMMON_NET_IP_LITERAL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice {

// Whether `text` is exactly one IP address of `family` (AF_INET or
// AF_INET6) as inet_pton reads it: no brackets, no port, no embedded NUL.
// Pure and thread-safe.
bool IsIpLiteral(int family, std::string_view text);

// A decimal number of 1..max_digits ASCII digits (a port, a prefix
// length); nullopt for anything else (signs, spaces, empty).
std::optional<uint32_t> ParseSmallNumber(std::string_view text,
                                         size_t max_digits);

}  // namespace sluice

#endif  // SLUICE_COMMON_NET_IP_LITERAL_H_
