// Feeds arbitrary bytes to the host and CIDR parsers and checks the
// invariants the SSRF guard relies on.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/egress/ip_address.h"
#include "proxy/egress/ssrf_guard.h"

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

// Every address in canonical text parses back to itself.
void CheckRoundTrip(const sluice::IpAddress& addr) {
  const std::string text = addr.ToString();
  Require(!text.empty());
  std::optional<sluice::IpAddress> again = sluice::ParseIpStrict(text);
  Require(again.has_value() && *again == addr);
  sluice::HostLiteral literal =
      sluice::ParseHostLiteral(addr.v4 ? text : "[" + text + "]");
  Require(literal.kind == sluice::HostKind::kAddress &&
          literal.address == addr);
  if (addr.v4) {
    for (size_t i = 4; i < 16; ++i) Require(addr.bytes[i] == 0);
  }
}

void CheckGuard(const sluice::IpAddress& addr) {
  const sluice::DenyReason reason = sluice::ClassifyAddress(addr);
  Require(sluice::DenyReasonName(reason) != "unknown");
  Require(reason != sluice::DenyReason::kSelfListener);
  // The self listener always wins, even over an allow-everything list.
  sluice::SsrfGuard guard(
      {*sluice::ParseCidr("0.0.0.0/0"), *sluice::ParseCidr("::/0")},
      {{addr, 3128}});
  Require(guard.Check(addr, 3128) == sluice::DenyReason::kSelfListener);
  Require(guard.Check(addr, 3129) == sluice::DenyReason::kNone);
  sluice::SsrfGuard closed({}, {});
  Require(closed.Check(addr, 80) == reason);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  sluice::HostLiteral literal = sluice::ParseHostLiteral(text);
  if (literal.kind == sluice::HostKind::kAddress) {
    CheckRoundTrip(literal.address);
    CheckGuard(literal.address);
  } else {
    Require(literal.address == sluice::IpAddress{});
  }

  if (std::optional<sluice::IpAddress> strict = sluice::ParseIpStrict(text)) {
    CheckRoundTrip(*strict);
    // Whatever the strict parser takes, the host parser reads the same way.
    sluice::HostLiteral host = sluice::ParseHostLiteral(text);
    Require(host.kind == sluice::HostKind::kAddress && host.address == *strict);
  }

  absl::StatusOr<sluice::Cidr> cidr = sluice::ParseCidr(text);
  if (cidr.ok()) {
    Require(cidr->prefix_len >= 0 &&
            cidr->prefix_len <= (cidr->base.v4 ? 32 : 128));
    Require(cidr->Contains(cidr->base));
    absl::StatusOr<sluice::Cidr> again = sluice::ParseCidr(cidr->ToString());
    Require(again.ok() && *again == *cidr);
  }
  return 0;
}
