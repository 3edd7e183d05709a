#include "common/protocol/fast_path_codec.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

using sluice::v1::FastPathBody;

FastPathBody PauseBody() {
  FastPathBody body;
  auto* p = body.mutable_pause();
  p->mutable_bucket()->set_resource("api");
  p->set_pause_id(7);
  p->set_remaining_ms(2000);
  p->set_reason("retry-after");
  return body;
}

TEST(FastPathCodecTest, KeysAreRandomAndFullLength) {
  const std::string a = NewFastPathKey();
  const std::string b = NewFastPathKey();
  EXPECT_EQ(a.size(), kFastPathKeyBytes);
  EXPECT_NE(a, b);
}

TEST(FastPathCodecTest, RoundTrip) {
  const std::string key = NewFastPathKey();
  const std::string d =
      SealFastPath(key, FastPathDirection::kDown, 42, 3, PauseBody());
  ASSERT_FALSE(d.empty());
  auto env = ParseFastPath(d);
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->token, 42u);
  EXPECT_EQ(env->seq, 3u);
  FastPathBody body;
  ASSERT_EQ(OpenFastPath(key, FastPathDirection::kDown, *env, &body),
            FastPathOpen::kOk);
  ASSERT_TRUE(body.has_pause());
  EXPECT_EQ(body.pause().pause_id(), 7u);
  EXPECT_EQ(body.pause().remaining_ms(), 2000u);
}

TEST(FastPathCodecTest, WrongKeyOrDirectionIsRejected) {
  const std::string key = NewFastPathKey();
  auto env = ParseFastPath(
      SealFastPath(key, FastPathDirection::kUp, 42, 1, PauseBody()));
  ASSERT_TRUE(env.has_value());
  FastPathBody body;
  EXPECT_EQ(OpenFastPath(NewFastPathKey(), FastPathDirection::kUp, *env, &body),
            FastPathOpen::kBadMac);
  // Reflected back at its sender.
  EXPECT_EQ(OpenFastPath(key, FastPathDirection::kDown, *env, &body),
            FastPathOpen::kBadMac);
  EXPECT_EQ(OpenFastPath("", FastPathDirection::kUp, *env, &body),
            FastPathOpen::kBadMac);
}

TEST(FastPathCodecTest, TamperedFieldsAreRejected) {
  const std::string key = NewFastPathKey();
  const std::string d =
      SealFastPath(key, FastPathDirection::kDown, 42, 9, PauseBody());
  FastPathBody body;
  {
    auto env = ParseFastPath(d);
    env->seq = 10;  // replayed under a fresh sequence number
    EXPECT_EQ(OpenFastPath(key, FastPathDirection::kDown, *env, &body),
              FastPathOpen::kBadMac);
  }
  {
    auto env = ParseFastPath(d);
    env->token = 43;  // moved to another stream
    EXPECT_EQ(OpenFastPath(key, FastPathDirection::kDown, *env, &body),
              FastPathOpen::kBadMac);
  }
  {
    auto env = ParseFastPath(d);
    env->body[env->body.size() - 1] ^= 1;
    EXPECT_EQ(OpenFastPath(key, FastPathDirection::kDown, *env, &body),
              FastPathOpen::kBadMac);
  }
}

TEST(FastPathCodecTest, MalformedDatagramsAreNotEnvelopes) {
  EXPECT_FALSE(ParseFastPath("").has_value());
  EXPECT_FALSE(ParseFastPath("\xff\xff\xff").has_value());
  EXPECT_FALSE(
      ParseFastPath(std::string(kFastPathMaxDatagram + 1, '\0')).has_value());
  sluice::v1::FastPathDatagram d;
  d.set_token(1);
  d.set_seq(1);
  d.set_mac("short");
  EXPECT_FALSE(ParseFastPath(d.SerializeAsString()).has_value());
  d.set_mac(std::string(32, 'x'));
  d.set_seq(0);
  EXPECT_FALSE(ParseFastPath(d.SerializeAsString()).has_value());
}

TEST(FastPathCodecTest, AnAuthenticEmptyBodyIsMalformed) {
  const std::string key = NewFastPathKey();
  auto env = ParseFastPath(
      SealFastPath(key, FastPathDirection::kUp, 1, 1, FastPathBody()));
  ASSERT_TRUE(env.has_value());
  FastPathBody body;
  EXPECT_EQ(OpenFastPath(key, FastPathDirection::kUp, *env, &body),
            FastPathOpen::kMalformed);
}

TEST(FastPathCodecTest, OversizedBodiesAreNotSealed) {
  FastPathBody body = PauseBody();
  body.mutable_pause()->set_reason(std::string(kFastPathMaxDatagram, 'r'));
  EXPECT_TRUE(
      SealFastPath(NewFastPathKey(), FastPathDirection::kDown, 1, 1, body)
          .empty());
  EXPECT_TRUE(
      SealFastPath("", FastPathDirection::kDown, 1, 1, PauseBody()).empty());
}

}  // namespace
}  // namespace sluice
