#ifndef SLUICE_PROXY_EGRESS_IP_ADDRESS_H_
#define SLUICE_PROXY_EGRESS_IP_ADDRESS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sluice {

// An IPv4 or IPv6 address in network byte order. An IPv4 address occupies
// bytes[0..3] with v4 = true and the other twelve bytes zero, so that
// defaulted equality is exact. IPv4-mapped IPv6 (::ffff:a.b.c.d) stays an
// IPv6 address here; the SSRF guard unwraps it.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool v4 = false;

  // `host_order` is the 32-bit address with the first octet in the high byte
  // (0x7f000001 is 127.0.0.1).
  static IpAddress V4(uint32_t host_order);
  static IpAddress V6(const std::array<uint8_t, 16>& bytes);

  // For an IPv4 address, the 32-bit value with the first octet high.
  // Undefined (returns the first four bytes) for IPv6.
  uint32_t V4HostOrder() const;

  // Canonical text: dotted quad for IPv4, RFC 5952 form for IPv6 (no
  // brackets).
  std::string ToString() const;

  bool operator==(const IpAddress&) const = default;
};

// Parses a strict textual IPv4 dotted quad ("10.1.2.3", no leading zeros,
// exactly four parts) or IPv6 address ("::1", "::ffff:1.2.3.4"), optionally
// wrapped in brackets ("[::1]"; brackets are accepted around IPv6 only).
// Zone identifiers ("fe80::1%eth0") are not accepted. Returns nullopt for
// anything else.
std::optional<IpAddress> ParseIpStrict(std::string_view text);

// What a URL or CONNECT host names.
enum class HostKind {
  // A DNS name: the proxy resolves it and classifies every result.
  kName,
  // An address literal, in any spelling a permissive resolver accepts.
  kAddress,
  // Must be refused with 400 and never sent to DNS: a numeric-looking host
  // that is malformed or out of range ("1.2.3.4.5", "256.1.1.1", "0x1g"),
  // a bracketed host that is not an IPv6 literal, a host containing ':'
  // that is not IPv6, an empty host or empty label ("a..b"), or a host with
  // bytes no DNS name carries (controls, space, DEL, and any of
  // % / \\ @ ? # [ ]).
  kInvalid,
};

struct HostLiteral {
  HostKind kind = HostKind::kInvalid;
  IpAddress address;  // Meaningful only when kind == kAddress.
};

// Classifies a URL host (already percent-decoded; without port) the way the
// most permissive resolvers (inet_aton) read it. Besides everything
// ParseIpStrict takes, accepts one to four dot-separated parts, each decimal,
// octal (leading 0) or hexadecimal (leading 0x/0X), where the last part fills
// the remaining bytes: "2130706433", "0x7f000001", "017700000001", "127.1",
// "0x7f.1", "0177.0.0.1" are all 127.0.0.1. One trailing dot is ignored.
//
// A host is "numeric-looking" when its last label (after dropping one
// trailing dot) begins with a digit; no top-level domain does. Such a host is
// kAddress when it parses and kInvalid when it does not. Other hosts are
// kName ("example.com", "1.2.3.4.example.com").
HostLiteral ParseHostLiteral(std::string_view host);

// An address range. `base` has no bits set past `prefix_len`.
struct Cidr {
  IpAddress base;
  int prefix_len = 0;  // 0..32 for IPv4, 0..128 for IPv6.

  // True when `addr` is of the same family as `base` and its first
  // `prefix_len` bits equal those of `base`. IPv4-mapped IPv6 addresses are
  // not IPv4 here (the SSRF guard unwraps them before a second check).
  bool Contains(const IpAddress& addr) const;
  // "10.0.0.0/8", "fd00::/8".
  std::string ToString() const;

  bool operator==(const Cidr&) const = default;
};

// Parses "address/prefix-length" ("10.0.0.0/8", "fd00::/8") or a bare
// address meaning a single host ("127.0.0.1" = /32, "::1" = /128). The
// address must be strict text (ParseIpStrict, no brackets); the prefix
// length is decimal, at most three digits, within 0..32 or 0..128. An address
// with bits set past the prefix ("10.1.2.3/8") is an error: it is ambiguous
// whether the range or the host was meant.
absl::StatusOr<Cidr> ParseCidr(std::string_view text);

}  // namespace sluice

#endif  // SLUICE_PROXY_EGRESS_IP_ADDRESS_H_
