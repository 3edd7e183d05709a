#include "proxy/egress/ssrf_guard.h"

#include <set>
#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "proxy/egress/ip_address.h"

namespace sluice {
namespace {

// Parses a host the way the proxy will (any spelling), failing the test when
// it is not an address.
IpAddress Host(std::string_view host) {
  HostLiteral literal = ParseHostLiteral(host);
  EXPECT_EQ(literal.kind, HostKind::kAddress) << "'" << host << "'";
  return literal.address;
}

Cidr MustCidr(std::string_view text) {
  absl::StatusOr<Cidr> cidr = ParseCidr(text);
  EXPECT_TRUE(cidr.ok()) << text << ": " << cidr.status();
  return cidr.value_or(Cidr{});
}

struct ClassifyCase {
  std::string_view host;
  DenyReason reason;
};

void PrintTo(const ClassifyCase& c, std::ostream* os) {
  *os << "'" << c.host << "' -> " << DenyReasonName(c.reason);
}

class DefaultPolicyTest : public ::testing::TestWithParam<ClassifyCase> {};

TEST_P(DefaultPolicyTest, ClassifiesAndGuardAgrees) {
  const ClassifyCase& c = GetParam();
  const IpAddress addr = Host(c.host);
  EXPECT_EQ(DenyReasonName(ClassifyAddress(addr)), DenyReasonName(c.reason))
      << c.host << " (" << addr.ToString() << ")";
  // A guard with no allowlist and no listeners applies the default policy.
  const SsrfGuard guard({}, {});
  EXPECT_EQ(guard.Check(addr, 443), c.reason) << c.host;
}

constexpr DenyReason kNone = DenyReason::kNone;
constexpr DenyReason kLoopback = DenyReason::kLoopback;
constexpr DenyReason kLinkLocal = DenyReason::kLinkLocal;
constexpr DenyReason kMetadata = DenyReason::kCloudMetadata;
constexpr DenyReason kPrivate = DenyReason::kPrivate;
constexpr DenyReason kShared = DenyReason::kSharedAddressSpace;
constexpr DenyReason kUla = DenyReason::kUniqueLocal;
constexpr DenyReason kUnspecified = DenyReason::kUnspecified;
constexpr DenyReason kMulticast = DenyReason::kMulticast;
constexpr DenyReason kBroadcast = DenyReason::kBroadcast;
constexpr DenyReason kReserved = DenyReason::kReserved;
constexpr DenyReason kEmbedded = DenyReason::kEmbeddedPrivate;

INSTANTIATE_TEST_SUITE_P(
    Public, DefaultPolicyTest,
    ::testing::Values(
        ClassifyCase{"8.8.8.8", kNone}, ClassifyCase{"1.1.1.1", kNone},
        ClassifyCase{"[2606:4700::1111]", kNone},
        ClassifyCase{"[2001:4860:4860::8888]", kNone},
        ClassifyCase{"9.255.255.255", kNone}, ClassifyCase{"11.0.0.0", kNone},
        ClassifyCase{"1.0.0.0", kNone}, ClassifyCase{"126.255.255.255", kNone},
        ClassifyCase{"128.0.0.0", kNone},
        ClassifyCase{"169.253.255.255", kNone},
        ClassifyCase{"169.255.0.0", kNone},
        ClassifyCase{"172.15.255.255", kNone},
        ClassifyCase{"172.32.0.0", kNone},
        ClassifyCase{"192.167.255.255", kNone},
        ClassifyCase{"192.169.0.0", kNone},
        ClassifyCase{"100.63.255.255", kNone},
        ClassifyCase{"100.128.0.0", kNone}, ClassifyCase{"192.0.1.0", kNone},
        ClassifyCase{"198.17.255.255", kNone},
        ClassifyCase{"198.20.0.0", kNone},
        ClassifyCase{"223.255.255.255", kNone},
        ClassifyCase{"[2001:200::1]", kNone}, ClassifyCase{"[3ffe::1]", kNone},
        ClassifyCase{"[3fff:1000::1]", kNone},
        ClassifyCase{"[2001:db9::1]", kNone}));

INSTANTIATE_TEST_SUITE_P(
    V4Denied, DefaultPolicyTest,
    ::testing::Values(ClassifyCase{"127.0.0.1", kLoopback},
                      ClassifyCase{"127.255.255.254", kLoopback},
                      ClassifyCase{"169.254.169.254", kMetadata},
                      ClassifyCase{"169.254.170.2", kMetadata},
                      ClassifyCase{"169.254.170.23", kMetadata},
                      ClassifyCase{"100.100.100.200", kMetadata},
                      ClassifyCase{"192.0.0.192", kMetadata},
                      ClassifyCase{"168.63.129.16", kMetadata},
                      ClassifyCase{"169.254.0.1", kLinkLocal},
                      ClassifyCase{"169.254.169.253", kLinkLocal},
                      ClassifyCase{"169.254.255.255", kLinkLocal},
                      ClassifyCase{"10.0.0.1", kPrivate},
                      ClassifyCase{"10.255.255.255", kPrivate},
                      ClassifyCase{"172.16.0.1", kPrivate},
                      ClassifyCase{"172.31.255.255", kPrivate},
                      ClassifyCase{"192.168.1.1", kPrivate},
                      ClassifyCase{"100.64.0.1", kShared},
                      ClassifyCase{"100.127.255.255", kShared},
                      ClassifyCase{"0.0.0.0", kUnspecified},
                      ClassifyCase{"0.1.2.3", kUnspecified},
                      ClassifyCase{"224.0.0.1", kMulticast},
                      ClassifyCase{"239.255.255.250", kMulticast},
                      ClassifyCase{"255.255.255.255", kBroadcast},
                      ClassifyCase{"240.0.0.1", kReserved},
                      ClassifyCase{"255.255.255.254", kReserved},
                      ClassifyCase{"192.0.0.8", kReserved},
                      ClassifyCase{"192.0.2.1", kReserved},
                      ClassifyCase{"198.51.100.7", kReserved},
                      ClassifyCase{"203.0.113.9", kReserved},
                      ClassifyCase{"198.18.0.1", kReserved},
                      ClassifyCase{"198.19.255.255", kReserved},
                      ClassifyCase{"192.88.99.1", kReserved}));

INSTANTIATE_TEST_SUITE_P(
    NumericSpellings, DefaultPolicyTest,
    ::testing::Values(
        ClassifyCase{"2130706433", kLoopback},
        ClassifyCase{"0x7f.1", kLoopback},
        ClassifyCase{"0x7f000001", kLoopback},
        ClassifyCase{"017700000001", kLoopback},
        ClassifyCase{"127.1", kLoopback}, ClassifyCase{"127.0.1", kLoopback},
        ClassifyCase{"0177.0.0.1", kLoopback}, ClassifyCase{"0", kUnspecified},
        ClassifyCase{"2852039166", kMetadata},
        ClassifyCase{"0xa9fea9fe", kMetadata},
        ClassifyCase{"169.254.43518", kMetadata},
        ClassifyCase{"10.1", kPrivate}, ClassifyCase{"0xc0.0xa8.1.1", kPrivate},
        ClassifyCase{"134744072", kNone}));

INSTANTIATE_TEST_SUITE_P(
    V6Denied, DefaultPolicyTest,
    ::testing::Values(
        ClassifyCase{"[::1]", kLoopback}, ClassifyCase{"[::]", kUnspecified},
        ClassifyCase{"[fe80::1]", kLinkLocal},
        ClassifyCase{"[febf:ffff::1]", kLinkLocal},
        ClassifyCase{"[fd00:ec2::254]", kMetadata},
        ClassifyCase{"[fd00:ec2::23]", kMetadata},
        ClassifyCase{"[fd00:ec2::253]", kUla}, ClassifyCase{"[fc00::1]", kUla},
        ClassifyCase{"[fdff:ffff::1]", kUla},
        ClassifyCase{"[ff02::1]", kMulticast},
        ClassifyCase{"[ff0e::101]", kMulticast},
        ClassifyCase{"[fec0::1]", kReserved},
        ClassifyCase{"[2001:db8::1]", kReserved},
        ClassifyCase{"[3fff::1]", kReserved},
        ClassifyCase{"[2001::1]", kReserved},
        ClassifyCase{"[2001:0:4136:e378:8000:63bf:3fff:fdd2]", kReserved},
        ClassifyCase{"[2001:1::1]", kReserved},
        ClassifyCase{"[2001:1ff::1]", kReserved},
        ClassifyCase{"[100::1]", kReserved},
        ClassifyCase{"[5f00::1]", kReserved},
        ClassifyCase{"[4000::1]", kReserved},
        ClassifyCase{"[1fff::1]", kReserved},
        ClassifyCase{"[::ffff:0:7f00:1]", kReserved},
        ClassifyCase{"[64:ff9b:2::1]", kReserved}));

INSTANTIATE_TEST_SUITE_P(
    Embedded, DefaultPolicyTest,
    ::testing::Values(
        // IPv4-mapped.
        ClassifyCase{"[::ffff:127.0.0.1]", kEmbedded},
        ClassifyCase{"[::ffff:7f00:1]", kEmbedded},
        ClassifyCase{"[::ffff:169.254.169.254]", kEmbedded},
        ClassifyCase{"[::ffff:10.0.0.1]", kEmbedded},
        ClassifyCase{"[::ffff:0.0.0.0]", kEmbedded},
        ClassifyCase{"[::ffff:8.8.8.8]", kNone},
        // IPv4-compatible.
        ClassifyCase{"[::127.0.0.1]", kEmbedded},
        ClassifyCase{"[::192.168.0.1]", kEmbedded},
        ClassifyCase{"[::0.0.0.2]", kEmbedded},
        ClassifyCase{"[::8.8.8.8]", kNone},
        // NAT64 well-known prefix.
        ClassifyCase{"[64:ff9b::7f00:1]", kEmbedded},
        ClassifyCase{"[64:ff9b::10.1.2.3]", kEmbedded},
        ClassifyCase{"[64:ff9b::169.254.169.254]", kEmbedded},
        ClassifyCase{"[64:ff9b::8.8.8.8]", kNone},
        // NAT64 local-use prefix: denied whole.
        ClassifyCase{"[64:ff9b:1::808:808]", kEmbedded},
        ClassifyCase{"[64:ff9b:1:ffff::1]", kEmbedded},
        // 6to4.
        ClassifyCase{"[2002:7f00:1::]", kEmbedded},
        ClassifyCase{"[2002:a9fe:a9fe::1]", kEmbedded},
        ClassifyCase{"[2002:c0a8:101::1]", kEmbedded},
        ClassifyCase{"[2002:808:808::1]", kNone}));

TEST(DenyReasonNameTest, StableNames) {
  EXPECT_EQ(DenyReasonName(DenyReason::kNone), "none");
  EXPECT_EQ(DenyReasonName(DenyReason::kLoopback), "loopback");
  EXPECT_EQ(DenyReasonName(DenyReason::kLinkLocal), "link_local");
  EXPECT_EQ(DenyReasonName(DenyReason::kCloudMetadata), "cloud_metadata");
  EXPECT_EQ(DenyReasonName(DenyReason::kPrivate), "private");
  EXPECT_EQ(DenyReasonName(DenyReason::kSharedAddressSpace),
            "shared_address_space");
  EXPECT_EQ(DenyReasonName(DenyReason::kUniqueLocal), "unique_local");
  EXPECT_EQ(DenyReasonName(DenyReason::kUnspecified), "unspecified");
  EXPECT_EQ(DenyReasonName(DenyReason::kMulticast), "multicast");
  EXPECT_EQ(DenyReasonName(DenyReason::kBroadcast), "broadcast");
  EXPECT_EQ(DenyReasonName(DenyReason::kReserved), "reserved");
  EXPECT_EQ(DenyReasonName(DenyReason::kEmbeddedPrivate), "embedded_private");
  EXPECT_EQ(DenyReasonName(DenyReason::kSelfListener), "self_listener");
}

TEST(UnwrapEmbeddedV4Test, ExtractsEachForm) {
  const IpAddress loopback4 = IpAddress::V4(0x7f000001);
  EXPECT_EQ(UnwrapEmbeddedV4(Host("[::ffff:127.0.0.1]")), loopback4);
  EXPECT_EQ(UnwrapEmbeddedV4(Host("[::127.0.0.1]")), loopback4);
  EXPECT_EQ(UnwrapEmbeddedV4(Host("[64:ff9b::7f00:1]")), loopback4);
  EXPECT_EQ(UnwrapEmbeddedV4(Host("[2002:7f00:1:ffff::1]")), loopback4);
  EXPECT_EQ(UnwrapEmbeddedV4(Host("[::1]")), std::nullopt);
  EXPECT_EQ(UnwrapEmbeddedV4(Host("[::]")), std::nullopt);
  EXPECT_EQ(UnwrapEmbeddedV4(Host("127.0.0.1")), std::nullopt);
  EXPECT_EQ(UnwrapEmbeddedV4(Host("[2606:4700::1111]")), std::nullopt);
  EXPECT_EQ(UnwrapEmbeddedV4(Host("[64:ff9b:1::7f00:1]")), std::nullopt);
}

TEST(SsrfGuardTest, AllowlistOpensRangeButNeverSelf) {
  const SsrfGuard guard({MustCidr("127.0.0.0/8")}, {{Host("127.0.0.1"), 3128}});
  EXPECT_EQ(guard.Check(Host("127.0.0.1"), 8080), DenyReason::kNone);
  EXPECT_EQ(guard.Check(Host("127.0.0.1"), 3128), DenyReason::kSelfListener);
  EXPECT_EQ(guard.Check(Host("127.0.0.2"), 8080), DenyReason::kNone);
  // Other spellings of the listener are still the listener.
  EXPECT_EQ(guard.Check(Host("2130706433"), 3128), DenyReason::kSelfListener);
  EXPECT_EQ(guard.Check(Host("[::ffff:127.0.0.1]"), 3128),
            DenyReason::kSelfListener);
  EXPECT_EQ(guard.Check(Host("[::1]"), 3128), DenyReason::kSelfListener);
  EXPECT_EQ(guard.Check(Host("0.0.0.0"), 3128), DenyReason::kSelfListener);
  // The allowlist opens only its own range.
  EXPECT_EQ(guard.Check(Host("[::1]"), 8080), DenyReason::kLoopback);
  EXPECT_EQ(guard.Check(Host("10.0.0.1"), 8080), DenyReason::kPrivate);
  // A mapped form of an allowed v4 is allowed.
  EXPECT_EQ(guard.Check(Host("[::ffff:127.0.0.5]"), 8080), DenyReason::kNone);
  // Public addresses stay allowed on the listener's port.
  EXPECT_EQ(guard.Check(Host("8.8.8.8"), 3128), DenyReason::kNone);
}

TEST(SsrfGuardTest, WildcardListenerMatchesEveryLocalForm) {
  const SsrfGuard guard({MustCidr("0.0.0.0/0"), MustCidr("::/0")},
                        {{Host("0.0.0.0"), 3128}, {Host("[::]"), 9090}});
  for (std::string_view host :
       {"127.0.0.1", "127.9.9.9", "0.0.0.0", "[::1]", "[::]",
        "[::ffff:127.0.0.1]", "[::ffff:0.0.0.0]", "0x7f.1"}) {
    EXPECT_EQ(guard.Check(Host(host), 3128), DenyReason::kSelfListener) << host;
    EXPECT_EQ(guard.Check(Host(host), 9090), DenyReason::kSelfListener) << host;
    EXPECT_EQ(guard.Check(Host(host), 9091), DenyReason::kNone) << host;
  }
  // A non-local address on the same port is not the listener.
  EXPECT_EQ(guard.Check(Host("10.0.0.1"), 3128), DenyReason::kNone);
}

TEST(SsrfGuardTest, ListenerOnSpecificAddress) {
  const SsrfGuard guard({}, {{Host("10.1.2.3"), 3128}});
  EXPECT_EQ(guard.Check(Host("10.1.2.3"), 3128), DenyReason::kSelfListener);
  EXPECT_EQ(guard.Check(Host("[::ffff:10.1.2.3]"), 3128),
            DenyReason::kSelfListener);
  EXPECT_EQ(guard.Check(Host("10.1.2.3"), 3129), DenyReason::kPrivate);
  EXPECT_EQ(guard.Check(Host("10.1.2.4"), 3128), DenyReason::kPrivate);
  // A loopback dial does not reach a listener bound to another address.
  EXPECT_EQ(guard.Check(Host("127.0.0.1"), 3128), DenyReason::kLoopback);
}

TEST(SsrfGuardTest, AddSelfLearnsPortAfterBind) {
  SsrfGuard guard({MustCidr("::1/128")}, {});
  EXPECT_EQ(guard.Check(Host("[::1]"), 40123), DenyReason::kNone);
  guard.AddSelf(Host("[::1]"), 40123);
  EXPECT_EQ(guard.Check(Host("[::1]"), 40123), DenyReason::kSelfListener);
  EXPECT_EQ(guard.Check(Host("[::1]"), 40124), DenyReason::kNone);
}

TEST(SsrfGuardTest, AllowlistAppliesToUnwrappedV4) {
  const SsrfGuard guard({MustCidr("10.0.0.0/8"), MustCidr("fd00::/8")}, {});
  EXPECT_EQ(guard.Check(Host("10.2.3.4"), 80), DenyReason::kNone);
  EXPECT_EQ(guard.Check(Host("[::ffff:10.2.3.4]"), 80), DenyReason::kNone);
  EXPECT_EQ(guard.Check(Host("[64:ff9b::a02:304]"), 80), DenyReason::kNone);
  EXPECT_EQ(guard.Check(Host("[2002:a02:304::1]"), 80), DenyReason::kNone);
  EXPECT_EQ(guard.Check(Host("[fd12::1]"), 80), DenyReason::kNone);
  // The metadata address inside fd00::/8 is reopened too: allow is explicit.
  EXPECT_EQ(guard.Check(Host("[fd00:ec2::254]"), 80), DenyReason::kNone);
  // A public embedded address needs no allowlist.
  EXPECT_EQ(guard.Check(Host("[::ffff:11.0.0.1]"), 80), DenyReason::kNone);
  // Neighbours stay denied.
  EXPECT_EQ(guard.Check(Host("[::ffff:192.168.0.1]"), 80),
            DenyReason::kEmbeddedPrivate);
  EXPECT_EQ(guard.Check(Host("172.16.0.1"), 80), DenyReason::kPrivate);
  EXPECT_EQ(guard.Check(Host("[fc00::1]"), 80), DenyReason::kUniqueLocal);
  EXPECT_EQ(guard.Check(Host("169.254.169.254"), 80),
            DenyReason::kCloudMetadata);
}

TEST(SsrfGuardTest, V6AllowlistDoesNotOpenV4) {
  const SsrfGuard guard({MustCidr("::ffff:10.0.0.0/104")}, {});
  EXPECT_EQ(guard.Check(Host("[::ffff:10.9.9.9]"), 80), DenyReason::kNone);
  EXPECT_EQ(guard.Check(Host("10.9.9.9"), 80), DenyReason::kPrivate);
}

}  // namespace
}  // namespace sluice
