#include "common/headers/structured_field.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::sf {
namespace {

// The single bare item of a one-member list, for terse checks.
std::optional<BareItem> OnlyBare(std::string_view text) {
  std::optional<List> list = ParseList(text);
  if (!list || list->size() != 1) return std::nullopt;
  const Item* item = std::get_if<Item>(&list->front());
  if (item == nullptr) return std::nullopt;
  return item->value;
}

TEST(StructuredFieldTest, ParsesRateLimitPolicyList) {
  std::optional<List> list = ParseList(
      "\"burst\";q=100;w=60, \"daily\";q=1000;w=86400;qu=\"requests\"");
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 2u);
  const Item& daily = std::get<Item>((*list)[1]);
  EXPECT_EQ(daily.value, BareItem(std::string("daily")));
  ASSERT_EQ(daily.params.size(), 3u);
  EXPECT_EQ(daily.params[0].first, "q");
  EXPECT_EQ(AsNumber(*FindParam(daily.params, "q")), 1000);
  EXPECT_EQ(AsNumber(*FindParam(daily.params, "w")), 86400);
  EXPECT_EQ(AsStringOrToken(*FindParam(daily.params, "qu")), "requests");
  EXPECT_EQ(FindParam(daily.params, "pk"), nullptr);
}

TEST(StructuredFieldTest, BareItemTypes) {
  EXPECT_EQ(OnlyBare("42"), BareItem(int64_t{42}));
  EXPECT_EQ(OnlyBare("-17"), BareItem(int64_t{-17}));
  EXPECT_EQ(OnlyBare("999999999999999"), BareItem(int64_t{999999999999999}));
  EXPECT_EQ(OnlyBare("4.5"), BareItem(4.5));
  EXPECT_EQ(OnlyBare("-0.125"), BareItem(-0.125));
  EXPECT_EQ(OnlyBare("123456789012.123"), BareItem(123456789012.123));
  EXPECT_EQ(OnlyBare("\"a \\\"b\\\" \\\\c\""),
            BareItem(std::string("a \"b\" \\c")));
  EXPECT_EQ(OnlyBare("\"\""), BareItem(std::string()));
  EXPECT_EQ(OnlyBare("foo123/456:x"), BareItem(Token{"foo123/456:x"}));
  EXPECT_EQ(OnlyBare("*star"), BareItem(Token{"*star"}));
  EXPECT_EQ(OnlyBare("?1"), BareItem(true));
  EXPECT_EQ(OnlyBare("?0"), BareItem(false));
  EXPECT_EQ(OnlyBare(":aGVsbG8=:"), BareItem(ByteSequence{"hello"}));
  EXPECT_EQ(OnlyBare("::"), BareItem(ByteSequence{""}));
}

TEST(StructuredFieldTest, RejectsMalformedBareItems) {
  for (const char* bad : {
           "1234567890123456",  // 16-digit integer
           "1234567890123.1",   // 13 integer digits in a decimal
           "1.2345",            // 4 fractional digits
           "1.",                // no fractional digit
           "-",                 // sign alone
           "- 1",               //
           "--1",               //
           ".5",                // no integer digit
           "\"open",            // unterminated
           "\"bad\\n\"",        // only \" and \\ escape
           "\"tab\there\"",     // control character
           "\"caf\xc3\xa9\"",   // non-ASCII
           "?2",                //
           "?",                 //
           ":aGVsbG8=",         // unterminated byte sequence
           ":aGV=sbG8:",        // padding inside
           ":a-b:",             // not base64
           "@123",              // a Date (RFC 9651) is not RFC 8941
           "%\"x\"",            // nor a Display String
           "#",                 //
           "Ab\"",              // token then a stray quote
       }) {
    EXPECT_EQ(ParseList(bad), std::nullopt) << bad;
  }
}

TEST(StructuredFieldTest, ListSeparatorsAndWhitespace) {
  EXPECT_EQ(ParseList("")->size(), 0u);
  EXPECT_EQ(ParseList("   ")->size(), 0u);
  EXPECT_EQ(ParseList("  a,b ,\tc  ")->size(), 3u);
  EXPECT_EQ(ParseList("a,"), std::nullopt);     // trailing comma
  EXPECT_EQ(ParseList(",a"), std::nullopt);     // leading comma
  EXPECT_EQ(ParseList("a,,b"), std::nullopt);   // empty member
  EXPECT_EQ(ParseList("a b"), std::nullopt);    // missing comma
  EXPECT_EQ(ParseList("\ta"), std::nullopt);    // leading HTAB is not SP
  EXPECT_EQ(ParseList("a;b c"), std::nullopt);  // junk after params
}

TEST(StructuredFieldTest, Parameters) {
  std::optional<Item> item = ParseItem("x; a=1;b;c=?0;a=\"again\"");
  ASSERT_TRUE(item.has_value());
  ASSERT_EQ(item->params.size(), 3u);
  // A repeated key keeps its place and takes the last value.
  EXPECT_EQ(item->params[0].first, "a");
  EXPECT_EQ(item->params[0].second, BareItem(std::string("again")));
  EXPECT_EQ(*FindParam(item->params, "b"), BareItem(true));
  EXPECT_EQ(*FindParam(item->params, "c"), BareItem(false));
  EXPECT_EQ(ParseItem("x;A=1"), std::nullopt);    // keys are lowercase
  EXPECT_EQ(ParseItem("x;1a=1"), std::nullopt);   // key starts with a letter
  EXPECT_EQ(ParseItem("x;a=(1)"), std::nullopt);  // params hold bare items
  EXPECT_EQ(ParseItem("x;a="), std::nullopt);     //
  EXPECT_EQ(ParseItem("x ;a=1"), std::nullopt);   // no space before ';'
  EXPECT_TRUE(ParseItem("*k;*a.b_c-d*=1").has_value());
}

TEST(StructuredFieldTest, InnerLists) {
  std::optional<List> list = ParseList("(\"a\" b 1);p=2, ( ), x");
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 3u);
  const InnerList& inner = std::get<InnerList>((*list)[0]);
  EXPECT_EQ(inner.items.size(), 3u);
  EXPECT_EQ(*FindParam(inner.params, "p"), BareItem(int64_t{2}));
  EXPECT_TRUE(std::get<InnerList>((*list)[1]).items.empty());
  EXPECT_EQ(ParseList("(a b"), std::nullopt);   // unterminated
  EXPECT_EQ(ParseList("(a,b)"), std::nullopt);  // commas not allowed
  EXPECT_EQ(ParseList("((a))"), std::nullopt);  // no nesting
}

TEST(StructuredFieldTest, Dictionary) {
  std::optional<Dictionary> dict =
      ParseDictionary("limit=100, remaining=5;x, flag, inner=(1 2), limit=7");
  ASSERT_TRUE(dict.has_value());
  ASSERT_EQ(dict->size(), 4u);
  EXPECT_EQ((*dict)[0].first, "limit");
  EXPECT_EQ(std::get<Item>((*dict)[0].second).value, BareItem(int64_t{7}));
  EXPECT_EQ(std::get<Item>((*dict)[2].second).value, BareItem(true));
  EXPECT_TRUE(std::holds_alternative<InnerList>((*dict)[3].second));
  EXPECT_EQ(ParseDictionary("\"default\";r=50;t=30"), std::nullopt);
  EXPECT_EQ(ParseDictionary("a=1,"), std::nullopt);
}

TEST(StructuredFieldTest, ItemRequiresExactlyOne) {
  EXPECT_TRUE(ParseItem(" 5;a=1 ").has_value());
  EXPECT_EQ(ParseItem("5, 6"), std::nullopt);
  EXPECT_EQ(ParseItem(""), std::nullopt);
}

TEST(StructuredFieldTest, SizeBounds) {
  std::string members = "a";
  for (size_t i = 1; i < kMaxMembers; ++i) members += ",a";
  EXPECT_EQ(ParseList(members)->size(), kMaxMembers);
  EXPECT_EQ(ParseList(members + ",a"), std::nullopt);

  std::string params = "x";
  for (size_t i = 0; i < kMaxParams; ++i) params += ";k" + std::to_string(i);
  EXPECT_TRUE(ParseItem(params).has_value());
  EXPECT_EQ(ParseItem(params + ";extra"), std::nullopt);

  std::string inner = "(";
  for (size_t i = 0; i < kMaxInnerItems; ++i) inner += "1 ";
  EXPECT_TRUE(ParseList(inner + ")").has_value());
  EXPECT_EQ(ParseList(inner + "1)"), std::nullopt);

  const std::string long_string =
      "\"" + std::string(kMaxFieldBytes - 2, 'a') + "\"";
  EXPECT_TRUE(ParseItem(long_string).has_value());
  EXPECT_EQ(ParseItem(long_string + " "), std::nullopt);  // one byte too many
}

}  // namespace
}  // namespace sluice::sf
