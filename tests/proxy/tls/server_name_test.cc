#include "proxy/tls/server_name.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

struct Good {
  std::string in;
  std::string text;
  bool is_ip;
};

TEST(NormalizeServerNameTest, AcceptsDnsNamesAndIpLiteralsInOneSpelling) {
  for (const Good& g : {
           Good{"api.example.com", "api.example.com", false},
           Good{"API.Example.COM", "api.example.com", false},
           Good{"api.example.com.", "api.example.com", false},
           Good{"localhost", "localhost", false},
           Good{"my_host-1.internal", "my_host-1.internal", false},
           Good{"1.2.3.example", "1.2.3.example", false},
           Good{"10.1.2.3", "10.1.2.3", true},
           Good{"::1", "::1", true},
           Good{"[::1]", "::1", true},
           Good{"2001:DB8:0:0::1", "2001:db8::1", true},
           Good{"[2001:db8::ffff:1.2.3.4]", "2001:db8::ffff:102:304", true},
       }) {
    absl::StatusOr<ServerName> name = NormalizeServerName(g.in);
    ASSERT_TRUE(name.ok()) << g.in << ": " << name.status();
    EXPECT_EQ(name->text, g.text) << g.in;
    EXPECT_EQ(name->is_ip, g.is_ip) << g.in;
  }
}

TEST(NormalizeServerNameTest, LengthLimitsAreThoseOfDns) {
  const std::string label63(63, 'a');
  EXPECT_TRUE(NormalizeServerName(label63 + ".com").ok());
  EXPECT_FALSE(NormalizeServerName(std::string(64, 'a') + ".com").ok());
  // 4 * 63 + 3 dots = 255; trim to exactly 253 and one past.
  std::string name = label63 + "." + label63 + "." + label63 + "." + label63;
  name.resize(253);
  ASSERT_NE(name.back(), '.');
  EXPECT_TRUE(NormalizeServerName(name).ok());
  EXPECT_TRUE(NormalizeServerName(name + ".").ok());  // the root dot is free
  EXPECT_FALSE(NormalizeServerName(name + "a").ok());
}

TEST(NormalizeServerNameTest, RefusesAnythingElse) {
  for (const std::string& bad : {
           std::string(""),
           std::string("."),
           std::string("*.example.com"),
           std::string("a..b"),
           std::string(".a"),
           std::string("a.b.."),
           std::string("a b"),
           std::string("example.com:443"),
           std::string("[example.com]"),
           std::string("[1.2.3.4]"),
           std::string("fe80::1%eth0"),
           std::string("127.1"),
           std::string("1.2.3.4.5"),
           std::string("256.1.1.1"),
           std::string("0x7f000001"),
           std::string("a/b"),
           std::string("user@host"),
           std::string("caf\xc3\xa9.example"),
           std::string("a\0b", 3),
           std::string("a\r\nb"),
       }) {
    EXPECT_EQ(NormalizeServerName(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

}  // namespace
}  // namespace sluice
