#include "common/sys/socket_address.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

namespace sluice {
namespace {

TEST(SocketAddressTest, IpLiteralsOfBothFamilies) {
  auto v4 = SocketAddressOf("127.0.0.1", 7070);
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->family(), AF_INET);
  EXPECT_EQ(v4->length, sizeof(sockaddr_in));
  EXPECT_EQ(PortOf(*v4), 7070);
  for (const char* ip : {"::1", "[::1]"}) {
    auto v6 = SocketAddressOf(ip, 9);
    ASSERT_TRUE(v6.has_value()) << ip;
    EXPECT_EQ(v6->family(), AF_INET6);
    EXPECT_EQ(v6->length, sizeof(sockaddr_in6));
    EXPECT_EQ(PortOf(*v6), 9);
  }
}

TEST(SocketAddressTest, AnythingElseIsNotAnAddress) {
  for (const char* text : {"", "localhost", "example.com", "1.2.3",
                           "[127.0.0.1", "::1]", "127.0.0.1:80", "[]"}) {
    EXPECT_FALSE(SocketAddressOf(text, 1).has_value()) << text;
  }
  EXPECT_EQ(PortOf(SocketAddress{}), 0);
}

}  // namespace
}  // namespace sluice
