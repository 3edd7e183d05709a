#include "proxy/http/host_pattern.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(HostPatternTest, ExactHost) {
  const HostPattern p("api.example.com");
  EXPECT_FALSE(p.matches_any());
  EXPECT_TRUE(p.Matches("api.example.com"));
  EXPECT_FALSE(p.Matches("example.com"));
  EXPECT_FALSE(p.Matches("x.api.example.com"));
  EXPECT_FALSE(p.Matches("api.example.co"));
  EXPECT_FALSE(p.Matches("api.example.com.evil"));
  EXPECT_FALSE(p.Matches("xapi.example.com"));
  EXPECT_FALSE(p.Matches(""));
}

TEST(HostPatternTest, CaseInsensitiveBothWays) {
  const HostPattern p("API.Example.com");
  EXPECT_TRUE(p.Matches("api.example.com"));
  EXPECT_TRUE(p.Matches("API.EXAMPLE.COM"));
  EXPECT_TRUE(p.Matches("aPi.ExAmPlE.cOm"));
  const HostPattern wild("*.EXAMPLE.com");
  EXPECT_TRUE(wild.Matches("a.example.COM"));
}

TEST(HostPatternTest, OneTrailingDotIsIgnoredOnEitherSide) {
  const HostPattern dotted("a.example.com.");
  EXPECT_TRUE(dotted.Matches("a.example.com"));
  EXPECT_TRUE(dotted.Matches("a.example.com."));
  const HostPattern plain("a.example.com");
  EXPECT_TRUE(plain.Matches("a.example.com."));
  // Only one dot is a valid spelling of the root.
  EXPECT_FALSE(plain.Matches("a.example.com.."));
  const HostPattern wild("*.example.com.");
  EXPECT_TRUE(wild.Matches("a.example.com"));
  EXPECT_FALSE(wild.Matches("example.com."));
}

TEST(HostPatternTest, WildcardMatchesAnyDepthButNotTheApex) {
  const HostPattern p("*.example.com");
  EXPECT_FALSE(p.matches_any());
  EXPECT_TRUE(p.Matches("a.example.com"));
  EXPECT_TRUE(p.Matches("a.b.c.example.com"));
  EXPECT_TRUE(p.Matches("A.EXAMPLE.COM."));
  EXPECT_FALSE(p.Matches("example.com"));
  EXPECT_FALSE(p.Matches("example.com."));
  EXPECT_FALSE(p.Matches(".example.com"));
  EXPECT_FALSE(p.Matches("notexample.com"));
  EXPECT_FALSE(p.Matches("a.example.com.evil.net"));
  EXPECT_FALSE(p.Matches("example.org"));
  EXPECT_FALSE(p.Matches(""));
}

TEST(HostPatternTest, EmptyAndStarMatchAnyHost) {
  for (const char* pattern : {"", "*"}) {
    const HostPattern p(pattern);
    EXPECT_TRUE(p.matches_any()) << pattern;
    EXPECT_TRUE(p.Matches("whatever.net")) << pattern;
    EXPECT_TRUE(p.Matches("10.0.0.1")) << pattern;
    EXPECT_TRUE(p.Matches("[::1]")) << pattern;
    EXPECT_TRUE(p.Matches("")) << pattern;
  }
}

TEST(HostPatternTest, IpLiteralsAndIpv6Brackets) {
  const HostPattern v4("10.1.2.3");
  EXPECT_TRUE(v4.Matches("10.1.2.3"));
  EXPECT_FALSE(v4.Matches("10.1.2.4"));
  EXPECT_FALSE(v4.Matches("110.1.2.3"));
  const HostPattern bracketed("[2001:db8::1]");
  EXPECT_TRUE(bracketed.Matches("[2001:db8::1]"));
  EXPECT_TRUE(bracketed.Matches("2001:DB8::1"));
  EXPECT_FALSE(bracketed.Matches("2001:db8::2"));
  const HostPattern bare("2001:db8::2");
  EXPECT_TRUE(bare.Matches("[2001:db8::2]"));
  EXPECT_TRUE(bare.Matches("2001:db8::2"));
}

TEST(HostSetTest, EmptySetMatchesNothing) {
  const HostSet set({});
  EXPECT_TRUE(set.empty());
  EXPECT_EQ(set.size(), 0u);
  EXPECT_FALSE(set.Matches("api.example.com"));
  EXPECT_FALSE(set.Matches(""));
}

TEST(HostSetTest, MatchesWhenAnyPatternDoes) {
  const HostSet set(
      std::vector<std::string>{"api.openai.com", "*.stripe.com", "[::1]"});
  EXPECT_FALSE(set.empty());
  EXPECT_EQ(set.size(), 3u);
  EXPECT_TRUE(set.Matches("api.openai.com"));
  EXPECT_TRUE(set.Matches("API.OpenAI.com."));
  EXPECT_TRUE(set.Matches("api.stripe.com"));
  EXPECT_TRUE(set.Matches("files.eu.stripe.com"));
  EXPECT_TRUE(set.Matches("::1"));
  EXPECT_FALSE(set.Matches("stripe.com"));
  EXPECT_FALSE(set.Matches("openai.com"));
  EXPECT_FALSE(set.Matches("chat.openai.com"));
  EXPECT_FALSE(set.Matches("example.com"));
  EXPECT_FALSE(set.Matches(""));
}

}  // namespace
}  // namespace sluice
