#include <gtest/gtest.h>

#include "sluice/v1/quota.pb.h"

namespace sluice {
namespace {

TEST(QuotaProtoTest, GrantRoundTripsThroughWireFormat) {
  v1::ServerMessage msg;
  msg.set_protocol_version(1);
  auto* grant = msg.mutable_grant();
  grant->mutable_bucket()->set_resource("openai");
  grant->mutable_bucket()->set_key_hash("ab12");
  grant->set_tokens(12.5);
  grant->set_valid_until_unix_ms(1234);
  grant->set_refresh_after_ms(250);

  std::string wire;
  ASSERT_TRUE(msg.SerializeToString(&wire));
  v1::ServerMessage back;
  ASSERT_TRUE(back.ParseFromString(wire));
  ASSERT_TRUE(back.has_grant());
  EXPECT_EQ(back.grant().bucket().resource(), "openai");
  EXPECT_EQ(back.grant().bucket().key_hash(), "ab12");
  EXPECT_DOUBLE_EQ(back.grant().tokens(), 12.5);
  EXPECT_EQ(back.grant().refresh_after_ms(), 250u);
}

}  // namespace
}  // namespace sluice
