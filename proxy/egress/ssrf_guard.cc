#include "proxy/egress/ssrf_guard.h"

#include <algorithm>

namespace sluice {
namespace {

struct V4Range {
  uint32_t base;
  int prefix_len;
  DenyReason reason;
};

constexpr uint32_t Quad(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

// Checked in order; the first match wins, so single metadata addresses come
// before the ranges holding them.
constexpr V4Range kV4Denied[] = {
    // Instance and task metadata services. 169.254.169.254 serves AWS, GCP,
    // Azure and most others.
    {Quad(169, 254, 169, 254), 32, DenyReason::kCloudMetadata},
    {Quad(169, 254, 170, 2), 32, DenyReason::kCloudMetadata},    // ECS tasks.
    {Quad(169, 254, 170, 23), 32, DenyReason::kCloudMetadata},   // EKS pods.
    {Quad(100, 100, 100, 200), 32, DenyReason::kCloudMetadata},  // Alibaba.
    {Quad(192, 0, 0, 192), 32, DenyReason::kCloudMetadata},      // Oracle.
    {Quad(168, 63, 129, 16), 32, DenyReason::kCloudMetadata},    // Azure host.
    {Quad(0, 0, 0, 0), 8, DenyReason::kUnspecified},
    {Quad(127, 0, 0, 0), 8, DenyReason::kLoopback},
    {Quad(169, 254, 0, 0), 16, DenyReason::kLinkLocal},
    {Quad(10, 0, 0, 0), 8, DenyReason::kPrivate},
    {Quad(172, 16, 0, 0), 12, DenyReason::kPrivate},
    {Quad(192, 168, 0, 0), 16, DenyReason::kPrivate},
    {Quad(100, 64, 0, 0), 10, DenyReason::kSharedAddressSpace},
    {Quad(224, 0, 0, 0), 4, DenyReason::kMulticast},
    {Quad(255, 255, 255, 255), 32, DenyReason::kBroadcast},
    {Quad(240, 0, 0, 0), 4, DenyReason::kReserved},
    {Quad(192, 0, 0, 0), 24, DenyReason::kReserved},     // IETF protocol.
    {Quad(192, 0, 2, 0), 24, DenyReason::kReserved},     // TEST-NET-1.
    {Quad(192, 88, 99, 0), 24, DenyReason::kReserved},   // 6to4 relay.
    {Quad(198, 18, 0, 0), 15, DenyReason::kReserved},    // Benchmarking.
    {Quad(198, 51, 100, 0), 24, DenyReason::kReserved},  // TEST-NET-2.
    {Quad(203, 0, 113, 0), 24, DenyReason::kReserved},   // TEST-NET-3.
};

DenyReason ClassifyV4(uint32_t addr) {
  for (const V4Range& range : kV4Denied) {
    const uint32_t mask =
        range.prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - range.prefix_len);
    if ((addr & mask) == range.base) return range.reason;
  }
  return DenyReason::kNone;
}

using Bytes = std::array<uint8_t, 16>;

// True when the first `bits` bits of `a` equal those of `prefix`.
bool HasPrefix(const Bytes& a, const Bytes& prefix, int bits) {
  for (int i = 0; i < bits; ++i) {
    const uint8_t bit = 0x80 >> (i % 8);
    if ((a[i / 8] & bit) != (prefix[i / 8] & bit)) return false;
  }
  return true;
}

constexpr Bytes kV6Loopback = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
constexpr Bytes kV4Mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
constexpr Bytes kNat64 = {0x00, 0x64, 0xff, 0x9b};
constexpr Bytes kNat64Local = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};
constexpr Bytes k6to4 = {0x20, 0x02};
constexpr Bytes kAwsMetadata = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0,    0,
                                0,    0,    0,    0,    0, 0, 0x02, 0x54};
constexpr Bytes kEksPodIdentity = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
                                   0,    0,    0,    0,    0, 0, 0, 0x23};
constexpr Bytes kLinkLocal = {0xfe, 0x80};
constexpr Bytes kSiteLocal = {0xfe, 0xc0};
constexpr Bytes kUniqueLocal = {0xfc};
constexpr Bytes kMulticast = {0xff};
constexpr Bytes kIetfProtocol = {0x20, 0x01};
constexpr Bytes kDocumentation = {0x20, 0x01, 0x0d, 0xb8};
constexpr Bytes kDocumentation2 = {0x3f, 0xff};
constexpr Bytes kGlobalUnicast = {0x20};

IpAddress V4FromBytes(const Bytes& b, int offset) {
  return IpAddress::V4((uint32_t{b[offset]} << 24) |
                       (uint32_t{b[offset + 1]} << 16) |
                       (uint32_t{b[offset + 2]} << 8) | b[offset + 3]);
}

// Loopback or unspecified, in either family, after unwrapping: an address
// that always reaches this host.
bool IsThisHost(const IpAddress& addr) {
  if (addr.v4) {
    const uint8_t first = addr.bytes[0];
    return first == 127 || first == 0;
  }
  return addr.bytes == Bytes{} || addr.bytes == kV6Loopback;
}

IpAddress Canonical(const IpAddress& addr) {
  std::optional<IpAddress> inner = UnwrapEmbeddedV4(addr);
  return inner ? *inner : addr;
}

}  // namespace

std::string_view DenyReasonName(DenyReason reason) {
  switch (reason) {
    case DenyReason::kNone:
      return "none";
    case DenyReason::kLoopback:
      return "loopback";
    case DenyReason::kLinkLocal:
      return "link_local";
    case DenyReason::kCloudMetadata:
      return "cloud_metadata";
    case DenyReason::kPrivate:
      return "private";
    case DenyReason::kSharedAddressSpace:
      return "shared_address_space";
    case DenyReason::kUniqueLocal:
      return "unique_local";
    case DenyReason::kUnspecified:
      return "unspecified";
    case DenyReason::kMulticast:
      return "multicast";
    case DenyReason::kBroadcast:
      return "broadcast";
    case DenyReason::kReserved:
      return "reserved";
    case DenyReason::kEmbeddedPrivate:
      return "embedded_private";
    case DenyReason::kSelfListener:
      return "self_listener";
  }
  return "unknown";
}

std::optional<IpAddress> UnwrapEmbeddedV4(const IpAddress& addr) {
  if (addr.v4) return std::nullopt;
  const Bytes& b = addr.bytes;
  if (HasPrefix(b, kV4Mapped, 96)) return V4FromBytes(b, 12);
  if (HasPrefix(b, Bytes{}, 96)) {
    // IPv4-compatible; :: and ::1 are IPv6 addresses in their own right.
    if (b == Bytes{} || b == kV6Loopback) return std::nullopt;
    return V4FromBytes(b, 12);
  }
  if (HasPrefix(b, kNat64, 96)) return V4FromBytes(b, 12);
  if (HasPrefix(b, k6to4, 16)) return V4FromBytes(b, 2);
  return std::nullopt;
}

DenyReason ClassifyAddress(const IpAddress& addr) {
  if (addr.v4) return ClassifyV4(addr.V4HostOrder());
  const Bytes& b = addr.bytes;
  if (b == Bytes{}) return DenyReason::kUnspecified;
  if (b == kV6Loopback) return DenyReason::kLoopback;
  if (b == kAwsMetadata || b == kEksPodIdentity) {
    return DenyReason::kCloudMetadata;
  }
  if (std::optional<IpAddress> inner = UnwrapEmbeddedV4(addr)) {
    return ClassifyV4(inner->V4HostOrder()) == DenyReason::kNone
               ? DenyReason::kNone
               : DenyReason::kEmbeddedPrivate;
  }
  if (HasPrefix(b, kNat64Local, 48)) return DenyReason::kEmbeddedPrivate;
  if (HasPrefix(b, kLinkLocal, 10)) return DenyReason::kLinkLocal;
  if (HasPrefix(b, kSiteLocal, 10)) return DenyReason::kReserved;
  if (HasPrefix(b, kUniqueLocal, 7)) return DenyReason::kUniqueLocal;
  if (HasPrefix(b, kMulticast, 8)) return DenyReason::kMulticast;
  if (HasPrefix(b, kIetfProtocol, 23) || HasPrefix(b, kDocumentation, 32) ||
      HasPrefix(b, kDocumentation2, 20)) {
    return DenyReason::kReserved;
  }
  // Outside 2000::/3 nothing is global unicast (this also covers the rest
  // of ::/8, 100::/64 and 5f00::/16).
  if (!HasPrefix(b, kGlobalUnicast, 3)) return DenyReason::kReserved;
  return DenyReason::kNone;
}

SsrfGuard::SsrfGuard(std::vector<Cidr> allow,
                     std::vector<std::pair<IpAddress, uint16_t>> self)
    : allow_(std::move(allow)), self_(std::move(self)) {}

void SsrfGuard::AddSelf(IpAddress addr, uint16_t port) {
  self_.emplace_back(addr, port);
}

DenyReason SsrfGuard::Check(const IpAddress& addr, uint16_t port) const {
  if (IsSelf(addr, port)) return DenyReason::kSelfListener;
  const DenyReason reason = ClassifyAddress(addr);
  if (reason == DenyReason::kNone || IsAllowlisted(addr)) {
    return DenyReason::kNone;
  }
  return reason;
}

bool SsrfGuard::IsSelf(const IpAddress& addr, uint16_t port) const {
  const IpAddress target = Canonical(addr);
  const bool target_is_this_host = IsThisHost(target);
  return std::any_of(self_.begin(), self_.end(), [&](const auto& self) {
    if (self.second != port) return false;
    const IpAddress listener = Canonical(self.first);
    return listener == target || (target_is_this_host && IsThisHost(listener));
  });
}

bool SsrfGuard::IsAllowlisted(const IpAddress& addr) const {
  const std::optional<IpAddress> inner = UnwrapEmbeddedV4(addr);
  return std::any_of(allow_.begin(), allow_.end(), [&](const Cidr& cidr) {
    return cidr.Contains(addr) || (inner && cidr.Contains(*inner));
  });
}

}  // namespace sluice
