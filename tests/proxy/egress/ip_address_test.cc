#include "proxy/egress/ip_address.h"

#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

IpAddress V6(std::string_view text) {
  std::optional<IpAddress> a = ParseIpStrict(text);
  EXPECT_TRUE(a.has_value()) << text;
  EXPECT_FALSE(a.value_or(IpAddress{}).v4) << text;
  return a.value_or(IpAddress{});
}

TEST(IpAddressTest, V4StoresNetworkOrderInFirstFourBytes) {
  IpAddress a = IpAddress::V4(0x7f000001);
  EXPECT_TRUE(a.v4);
  EXPECT_EQ(a.bytes[0], 127);
  EXPECT_EQ(a.bytes[1], 0);
  EXPECT_EQ(a.bytes[2], 0);
  EXPECT_EQ(a.bytes[3], 1);
  for (size_t i = 4; i < 16; ++i) EXPECT_EQ(a.bytes[i], 0) << i;
  EXPECT_EQ(a.V4HostOrder(), 0x7f000001u);
  EXPECT_EQ(a.ToString(), "127.0.0.1");
}

TEST(IpAddressTest, V4AndV6WithSameBytesDiffer) {
  std::array<uint8_t, 16> bytes{};
  bytes[0] = 127;
  bytes[3] = 1;
  EXPECT_NE(IpAddress::V4(0x7f000001), IpAddress::V6(bytes));
}

TEST(IpAddressTest, ToStringIsCanonical) {
  EXPECT_EQ(V6("2001:0DB8:0000:0000:0000:0000:0000:0001").ToString(),
            "2001:db8::1");
  EXPECT_EQ(V6("::1").ToString(), "::1");
  EXPECT_EQ(V6("::").ToString(), "::");
  EXPECT_EQ(V6("::ffff:7f00:1").ToString(), "::ffff:127.0.0.1");
  EXPECT_EQ(IpAddress::V4(0xffffffff).ToString(), "255.255.255.255");
}

TEST(ParseIpStrictTest, AcceptsStrictForms) {
  struct Case {
    std::string_view text;
    std::string_view canonical;
    bool v4;
  };
  const Case cases[] = {
      {"8.8.8.8", "8.8.8.8", true},
      {"0.0.0.0", "0.0.0.0", true},
      {"255.255.255.255", "255.255.255.255", true},
      {"::1", "::1", false},
      {"[::1]", "::1", false},
      {"[2606:4700::1111]", "2606:4700::1111", false},
      {"::ffff:1.2.3.4", "::ffff:1.2.3.4", false},
      {"fe80::1", "fe80::1", false},
  };
  for (const Case& c : cases) {
    std::optional<IpAddress> a = ParseIpStrict(c.text);
    ASSERT_TRUE(a.has_value()) << c.text;
    EXPECT_EQ(a->v4, c.v4) << c.text;
    EXPECT_EQ(a->ToString(), c.canonical) << c.text;
  }
}

TEST(ParseIpStrictTest, RejectsLooseForms) {
  const std::string_view cases[] = {
      "",
      "127.1",
      "2130706433",
      "0x7f000001",
      "0177.0.0.1",
      "1.2.3.4.5",
      "256.0.0.1",
      "1.2.3.",
      " 1.2.3.4",
      "1.2.3.4 ",
      "[1.2.3.4]",
      "[::1",
      "::1]",
      "[]",
      "fe80::1%eth0",
      "example.com",
      ":::",
      "1:2:3:4:5:6:7:8:9",
  };
  for (std::string_view text : cases) {
    EXPECT_FALSE(ParseIpStrict(text).has_value()) << "'" << text << "'";
  }
  EXPECT_FALSE(ParseIpStrict(std::string_view("1.2.3.4\0", 8)).has_value());
  EXPECT_FALSE(ParseIpStrict(std::string(200, '1')).has_value());
}

struct HostCase {
  std::string_view host;
  HostKind kind;
  std::string_view address;  // Canonical text when kind == kAddress.
};

void PrintTo(const HostCase& c, std::ostream* os) {
  *os << "'" << c.host << "'";
}

class ParseHostLiteralTest : public ::testing::TestWithParam<HostCase> {};

TEST_P(ParseHostLiteralTest, Classifies) {
  const HostCase& c = GetParam();
  HostLiteral got = ParseHostLiteral(c.host);
  ASSERT_EQ(got.kind, c.kind) << "'" << c.host << "'";
  if (c.kind == HostKind::kAddress) {
    EXPECT_EQ(got.address.ToString(), c.address) << c.host;
  }
}

constexpr HostKind kName = HostKind::kName;
constexpr HostKind kAddress = HostKind::kAddress;
constexpr HostKind kInvalid = HostKind::kInvalid;

INSTANTIATE_TEST_SUITE_P(
    NumericSpellings, ParseHostLiteralTest,
    ::testing::Values(HostCase{"2130706433", kAddress, "127.0.0.1"},
                      HostCase{"0x7f.1", kAddress, "127.0.0.1"},
                      HostCase{"0x7f000001", kAddress, "127.0.0.1"},
                      HostCase{"0X7F000001", kAddress, "127.0.0.1"},
                      HostCase{"017700000001", kAddress, "127.0.0.1"},
                      HostCase{"127.1", kAddress, "127.0.0.1"},
                      HostCase{"127.0.1", kAddress, "127.0.0.1"},
                      HostCase{"0177.0.0.1", kAddress, "127.0.0.1"},
                      HostCase{"0x7f.0.0.0x1", kAddress, "127.0.0.1"},
                      HostCase{"0x7f.0.1", kAddress, "127.0.0.1"},
                      HostCase{"127.0.0.1", kAddress, "127.0.0.1"},
                      HostCase{"127.0.0.1.", kAddress, "127.0.0.1"},
                      HostCase{"0", kAddress, "0.0.0.0"},
                      HostCase{"00", kAddress, "0.0.0.0"},
                      HostCase{"0x0", kAddress, "0.0.0.0"},
                      HostCase{"4294967295", kAddress, "255.255.255.255"},
                      HostCase{"0xffffffff", kAddress, "255.255.255.255"},
                      HostCase{"037777777777", kAddress, "255.255.255.255"},
                      HostCase{"169.254.169.254", kAddress, "169.254.169.254"},
                      HostCase{"169.254.43518", kAddress, "169.254.169.254"},
                      HostCase{"10.16777215", kAddress, "10.255.255.255"},
                      HostCase{"1.2.65535", kAddress, "1.2.255.255"},
                      HostCase{"8.8.8.8", kAddress, "8.8.8.8"}));

INSTANTIATE_TEST_SUITE_P(
    Ipv6Literals, ParseHostLiteralTest,
    ::testing::Values(
        HostCase{"[::ffff:127.0.0.1]", kAddress, "::ffff:127.0.0.1"},
        HostCase{"[::ffff:7f00:1]", kAddress, "::ffff:127.0.0.1"},
        HostCase{"[64:ff9b::7f00:1]", kAddress, "64:ff9b::7f00:1"},
        HostCase{"[2002:7f00:1::]", kAddress, "2002:7f00:1::"},
        HostCase{"[fd00:ec2::254]", kAddress, "fd00:ec2::254"},
        HostCase{"[::1]", kAddress, "::1"}, HostCase{"::1", kAddress, "::1"},
        HostCase{"[2606:4700::1111]", kAddress, "2606:4700::1111"},
        HostCase{"[fe80::1%25eth0]", kInvalid, ""},
        HostCase{"[fe80::1%eth0]", kInvalid, ""},
        HostCase{"[127.0.0.1]", kInvalid, ""},
        HostCase{"[example.com]", kInvalid, ""}, HostCase{"[::1", kInvalid, ""},
        HostCase{"[", kInvalid, ""}, HostCase{"[]", kInvalid, ""},
        HostCase{"::1]", kInvalid, ""},
        HostCase{"example.com:80", kInvalid, ""},
        HostCase{"127.0.0.1:80", kInvalid, ""}));

INSTANTIATE_TEST_SUITE_P(
    InvalidNumeric, ParseHostLiteralTest,
    ::testing::Values(
        HostCase{"1.2.3.4.5", kInvalid, ""},
        HostCase{"256.0.0.1", kInvalid, ""},
        HostCase{"256.1.1.1", kInvalid, ""}, HostCase{"1.256.1", kInvalid, ""},
        HostCase{"1.2.3.256", kInvalid, ""},
        HostCase{"1.2.65536", kInvalid, ""},
        HostCase{"1.16777216", kInvalid, ""},
        HostCase{"0x100000000", kInvalid, ""},
        HostCase{"4294967296", kInvalid, ""},
        HostCase{"99999999999", kInvalid, ""},
        HostCase{"99999999999999999999999999999", kInvalid, ""},
        HostCase{"040000000000", kInvalid, ""}, HostCase{"0x1g", kInvalid, ""},
        HostCase{"0x", kInvalid, ""}, HostCase{"08", kInvalid, ""},
        HostCase{"0189.0.0.1", kInvalid, ""}, HostCase{"1..2", kInvalid, ""},
        HostCase{"1.2.3.", kAddress, "1.2.0.3"},
        HostCase{"1.2.3..", kInvalid, ""}, HostCase{".1.2.3", kInvalid, ""},
        HostCase{"example.0x1g", kInvalid, ""}, HostCase{"foo.1", kInvalid, ""},
        HostCase{"1.2.3.4 ", kInvalid, ""}, HostCase{"-1", kName, ""},
        HostCase{"+1", kName, ""}, HostCase{"1e3", kInvalid, ""}));

INSTANTIATE_TEST_SUITE_P(
    NamesAndJunk, ParseHostLiteralTest,
    ::testing::Values(
        HostCase{"example.com", kName, ""}, HostCase{"example.com.", kName, ""},
        HostCase{"1.2.3.4.example.com", kName, ""},
        HostCase{"0x7f.example", kName, ""}, HostCase{"localhost", kName, ""},
        HostCase{"api.example.com", kName, ""},
        HostCase{"xn--bcher-kva.example", kName, ""},
        HostCase{"", kInvalid, ""}, HostCase{".", kInvalid, ""},
        HostCase{"a..b", kInvalid, ""}, HostCase{"exa mple.com", kInvalid, ""},
        HostCase{"%31%32%37.0.0.1", kInvalid, ""},
        HostCase{"127.0.0.%31", kInvalid, ""},
        HostCase{"evil.com@127.0.0.1", kInvalid, ""},
        HostCase{"evil.com/x", kInvalid, ""},
        HostCase{"evil.com\\x", kInvalid, ""},
        HostCase{"evil.com#x", kInvalid, ""},
        HostCase{"evil.com?x", kInvalid, ""},
        HostCase{"evil\x01.com", kInvalid, ""}));

TEST(ParseHostLiteralEdgeTest, RejectsEmbeddedNul) {
  EXPECT_EQ(
      ParseHostLiteral(std::string_view("127.0.0.1\0.example.com", 22)).kind,
      HostKind::kInvalid);
}

TEST(ParseCidrTest, ParsesRanges) {
  struct Case {
    std::string_view text;
    std::string_view canonical;
  };
  const Case cases[] = {
      {"10.0.0.0/8", "10.0.0.0/8"},
      {"0.0.0.0/0", "0.0.0.0/0"},
      {"127.0.0.1", "127.0.0.1/32"},
      {"127.0.0.1/32", "127.0.0.1/32"},
      {"172.16.0.0/12", "172.16.0.0/12"},
      {"::1/128", "::1/128"},
      {"::1", "::1/128"},
      {"::/0", "::/0"},
      {"fd00::/8", "fd00::/8"},
      {"FD00:0EC2::/32", "fd00:ec2::/32"},
      {"::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104"},
      {"100.64.0.0/010", "100.64.0.0/10"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Cidr> cidr = ParseCidr(c.text);
    ASSERT_TRUE(cidr.ok()) << c.text << ": " << cidr.status();
    EXPECT_EQ(cidr->ToString(), c.canonical) << c.text;
    absl::StatusOr<Cidr> again = ParseCidr(cidr->ToString());
    ASSERT_TRUE(again.ok()) << cidr->ToString();
    EXPECT_EQ(*again, *cidr);
  }
}

TEST(ParseCidrTest, RejectsMalformed) {
  struct Case {
    std::string_view text;
    std::string_view message;
  };
  const Case cases[] = {
      {"", "not an IPv4 or IPv6 address"},
      {"/8", "not an IPv4 or IPv6 address"},
      {"10.0.0/8", "not an IPv4 or IPv6 address"},
      {"010.0.0.0/8", "not an IPv4 or IPv6 address"},
      {"example.com/8", "not an IPv4 or IPv6 address"},
      {"[::1]/128", "without brackets"},
      {"[::1]", "without brackets"},
      {"10.0.0.0/", "0..32"},
      {"10.0.0.0/33", "0..32"},
      {"10.0.0.0/-1", "0..32"},
      {"10.0.0.0/+8", "0..32"},
      {"10.0.0.0/8/8", "0..32"},
      {"10.0.0.0/ 8", "0..32"},
      {"10.0.0.0/0008", "0..32"},
      {"10.0.0.0/8a", "0..32"},
      {"::/129", "0..128"},
      {"10.1.2.3/8", "bits set past the /8"},
      {"127.0.0.1/8", "bits set past the /8"},
      {"fd00::1/8", "bits set past the /8"},
      {"10.0.0.1/31", "bits set past the /31"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Cidr> cidr = ParseCidr(c.text);
    ASSERT_FALSE(cidr.ok()) << c.text;
    EXPECT_EQ(cidr.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(cidr.status().message()), HasSubstr(c.message))
        << c.text;
  }
}

TEST(CidrTest, ContainsRespectsPrefixAndFamily) {
  Cidr ten = *ParseCidr("10.0.0.0/8");
  EXPECT_TRUE(ten.Contains(*ParseIpStrict("10.0.0.0")));
  EXPECT_TRUE(ten.Contains(*ParseIpStrict("10.255.255.255")));
  EXPECT_FALSE(ten.Contains(*ParseIpStrict("11.0.0.0")));
  EXPECT_FALSE(ten.Contains(*ParseIpStrict("9.255.255.255")));
  // An IPv4-mapped address is IPv6 here.
  EXPECT_FALSE(ten.Contains(*ParseIpStrict("::ffff:10.0.0.1")));

  Cidr odd = *ParseCidr("172.16.0.0/12");
  EXPECT_TRUE(odd.Contains(*ParseIpStrict("172.31.255.255")));
  EXPECT_FALSE(odd.Contains(*ParseIpStrict("172.32.0.0")));
  EXPECT_FALSE(odd.Contains(*ParseIpStrict("172.15.255.255")));

  Cidr all4 = *ParseCidr("0.0.0.0/0");
  EXPECT_TRUE(all4.Contains(*ParseIpStrict("255.1.2.3")));
  EXPECT_FALSE(all4.Contains(*ParseIpStrict("::")));

  Cidr ula = *ParseCidr("fc00::/7");
  EXPECT_TRUE(ula.Contains(*ParseIpStrict("fdff:ffff::1")));
  EXPECT_FALSE(ula.Contains(*ParseIpStrict("fe00::1")));
  EXPECT_FALSE(ula.Contains(*ParseIpStrict("252.0.0.1")));

  Cidr host = *ParseCidr("::1");
  EXPECT_TRUE(host.Contains(*ParseIpStrict("::1")));
  EXPECT_FALSE(host.Contains(*ParseIpStrict("::2")));

  Cidr one_bit = *ParseCidr("2001:db8::/127");
  EXPECT_TRUE(one_bit.Contains(*ParseIpStrict("2001:db8::1")));
  EXPECT_FALSE(one_bit.Contains(*ParseIpStrict("2001:db8::2")));
}

}  // namespace
}  // namespace sluice
