#ifndef SLUICE_PROXY_EGRESS_SSRF_GUARD_H_
#define SLUICE_PROXY_EGRESS_SSRF_GUARD_H_

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/egress/ip_address.h"

namespace sluice {

// Why dialing an address is refused. The names (DenyReasonName) are stable:
// they appear in the proxy's 403 JSON body and in metric labels.
enum class DenyReason {
  kNone,                // Allowed.
  kLoopback,            // 127.0.0.0/8, ::1.
  kLinkLocal,           // 169.254.0.0/16, fe80::/10.
  kCloudMetadata,       // Instance/task metadata endpoints (see .cc).
  kPrivate,             // 10/8, 172.16/12, 192.168/16.
  kSharedAddressSpace,  // 100.64.0.0/10 (carrier-grade NAT).
  kUniqueLocal,         // fc00::/7.
  kUnspecified,         // 0.0.0.0/8, ::.
  kMulticast,           // 224.0.0.0/4, ff00::/8.
  kBroadcast,           // 255.255.255.255.
  // Special-purpose ranges that are not globally reachable, or are for
  // documentation and benchmarking: 240.0.0.0/4 (except broadcast),
  // 192.0.0.0/24, 192.0.2.0/24, 192.88.99.0/24, 198.18.0.0/15,
  // 198.51.100.0/24, 203.0.113.0/24; ::/8 outside the forms unwrapped below,
  // fec0::/10 (old site-local), 2001::/23 (IETF protocol assignments,
  // including Teredo 2001::/32), 2001:db8::/32 and 3fff::/20 (documentation),
  // and everything outside 2000::/3 not named above (100::/64 discard,
  // 5f00::/16 SRv6, unassigned space).
  kReserved,
  // An IPv6 form that carries an IPv4 address which is itself denied:
  // IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, NAT64 64:ff9b::/96,
  // 6to4 2002::/16. Also the whole local-use NAT64 prefix 64:ff9b:1::/48
  // (RFC 8215): its translator is inside the site by definition, and where
  // the IPv4 address sits depends on a prefix length we cannot know.
  kEmbeddedPrivate,
  kSelfListener,  // One of the proxy's own listening endpoints.
};

// "none", "loopback", "link_local", "cloud_metadata", "private",
// "shared_address_space", "unique_local", "unspecified", "multicast",
// "broadcast", "reserved", "embedded_private", "self_listener".
std::string_view DenyReasonName(DenyReason reason);

// The IPv4 address carried by an IPv4-mapped (::ffff:a.b.c.d),
// IPv4-compatible (::a.b.c.d, excluding :: and ::1), NAT64 well-known prefix
// (64:ff9b::a.b.c.d) or 6to4 (2002:aabb:ccdd::/48) address; nullopt for
// other IPv6 addresses and for IPv4.
std::optional<IpAddress> UnwrapEmbeddedV4(const IpAddress& addr);

// The default policy alone, without allowlist or self listeners: kNone for a
// globally reachable unicast address, else the first matching reason. An
// embedded IPv4 (UnwrapEmbeddedV4) that is denied gives kEmbeddedPrivate; an
// embedded public IPv4 is allowed.
DenyReason ClassifyAddress(const IpAddress& addr);

// Decides whether the proxy may dial an address. The network layer resolves
// a host, calls Check on every resulting address, and dials exactly an
// address that was allowed (never re-resolving).
//
// Thread safety: Check is const and safe to call concurrently. AddSelf is
// not; call it during startup, before the proxy serves requests.
class SsrfGuard {
 public:
  // `allow`: ranges reopened by configuration. An address is allowed when it,
  // or the IPv4 address it carries (UnwrapEmbeddedV4), lies in one of them.
  // `self`: the proxy's own listening endpoints (address, port).
  SsrfGuard(std::vector<Cidr> allow,
            std::vector<std::pair<IpAddress, uint16_t>> self);

  // The verdict for dialing addr:port; kNone means allowed. The self-listener
  // check comes first and wins over the allowlist: the proxy never dials
  // itself. An endpoint matches a self listener on the same port when the
  // addresses are equal after unwrapping an embedded IPv4, or when both are
  // "this host" addresses (loopback or unspecified, in either family, after
  // unwrapping). A wildcard listener (0.0.0.0, ::) therefore matches every
  // loopback and unspecified form; a listener on 127.0.0.1 also matches
  // 127.0.0.2 and ::1 on its port (conservative). A wildcard listener's
  // other interface addresses are not known here; the network layer may add
  // them with AddSelf.
  DenyReason Check(const IpAddress& addr, uint16_t port) const;

  // Adds a listening endpoint, e.g. after binding to port 0.
  void AddSelf(IpAddress addr, uint16_t port);

 private:
  bool IsSelf(const IpAddress& addr, uint16_t port) const;
  bool IsAllowlisted(const IpAddress& addr) const;

  std::vector<Cidr> allow_;
  std::vector<std::pair<IpAddress, uint16_t>> self_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_EGRESS_SSRF_GUARD_H_
