#include "proxy/http/http_head.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

namespace http = boost::beast::http;

std::optional<HttpRuleError> Parse(const std::string& head,
                                   RequestParser& parser,
                                   size_t max_uri = 8192) {
  return ParseRequestHead(head, max_uri, parser);
}

TEST(ParseRequestHeadTest, AcceptsAnAbsoluteFormHeadWithoutBody) {
  RequestParser p;
  auto bad = Parse(
      "GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\n"
      "X-Thing: 1\r\n\r\n",
      p);
  ASSERT_FALSE(bad.has_value()) << bad->detail;
  EXPECT_EQ(p.get().method(), http::verb::get);
  EXPECT_EQ(p.get().target(), "http://example.com/a?b=c");
  EXPECT_EQ(p.get()["x-thing"], "1");
  EXPECT_EQ(p.get().version(), 11u);
  EXPECT_TRUE(p.is_done());  // no body follows
}

TEST(ParseRequestHeadTest, LeavesADeclaredBodyPending) {
  RequestParser p;
  auto bad = Parse(
      "POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\n"
      "Content-Length: 5\r\n\r\n",
      p);
  ASSERT_FALSE(bad.has_value()) << bad->detail;
  EXPECT_TRUE(p.is_header_done());
  EXPECT_FALSE(p.is_done());
}

TEST(ParseRequestHeadTest, MalformedHeadIs400) {
  RequestParser p;
  auto bad = Parse("GET http://example.com/ HTTP/9\r\n\r\n", p);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 400u);
}

TEST(ParseRequestHeadTest, IncompleteHeadIs400) {
  RequestParser p;
  auto bad = Parse("GET http://example.com/ HTTP/1.1\r\nHost: x\r\n", p);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 400u);
}

TEST(ParseRequestHeadTest, LongTargetIs414) {
  const std::string target = "http://example.com/" + std::string(100, 'a');
  RequestParser ok;
  EXPECT_FALSE(
      Parse("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n", ok, 200));
  RequestParser p;
  auto bad = Parse("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n", p, 100);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 414u);
}

TEST(ParseRequestHeadTest, AmbiguousFramingIsRefused) {
  RequestParser p;
  auto bad = Parse(
      "POST http://example.com/ HTTP/1.1\r\nHost: x\r\n"
      "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      p);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 400u);
}

TEST(ParseForwardTargetTest, SplitsAnHttpUrl) {
  ForwardTarget t;
  ASSERT_FALSE(ParseForwardTarget("http://API.Example.com./v1/x?key=s", t));
  EXPECT_EQ(t.host, "api.example.com");
  EXPECT_EQ(t.port, 80);
  EXPECT_EQ(t.path, "/v1/x");
  EXPECT_EQ(t.origin_target, "/v1/x?key=s");
  EXPECT_EQ(t.host_header, "api.example.com");
}

TEST(ParseForwardTargetTest, PortsIpv6AndEmptyPaths) {
  ForwardTarget t;
  ASSERT_FALSE(ParseForwardTarget("http://[2001:db8::1]:8080", t));
  EXPECT_EQ(t.host, "2001:db8::1");
  EXPECT_EQ(t.port, 8080);
  EXPECT_EQ(t.path, "/");
  EXPECT_EQ(t.origin_target, "/");
  EXPECT_EQ(t.host_header, "[2001:db8::1]:8080");
  ASSERT_FALSE(ParseForwardTarget("http://example.com?q=1", t));
  EXPECT_EQ(t.origin_target, "/?q=1");
  EXPECT_EQ(t.path, "/");
}

TEST(ParseForwardTargetTest, RefusesWhatAForwardProxyMustNotForward) {
  struct Case {
    const char* target;
    const char* reason;
  };
  for (const Case& c : {
           Case{"/just/a/path", "origin_form"},
           Case{"*", "origin_form"},
           Case{"https://example.com/", "unsupported_scheme"},
           Case{"ftp://example.com/", "unsupported_scheme"},
           Case{"http://user:pw@example.com/", "userinfo"},
           Case{"http://example.com:0/", "bad_port"},
           Case{"http://example.com:65536/", "bad_port"},
           Case{"http://ex%61mple.com/", "bad_host"},
           Case{"http:///nohost", "bad_host"},
           Case{"http://exa mple.com/", "bad_target"},
       }) {
    ForwardTarget t;
    auto bad = ParseForwardTarget(c.target, t);
    ASSERT_TRUE(bad.has_value()) << c.target;
    EXPECT_EQ(bad->status, 400u) << c.target;
    EXPECT_EQ(bad->reason, c.reason) << c.target;
  }
}

TEST(ParseConnectTargetTest, HostAndPort) {
  std::string host;
  uint16_t port = 0;
  ASSERT_FALSE(ParseConnectTarget("API.example.com:443", host, port));
  EXPECT_EQ(host, "api.example.com");
  EXPECT_EQ(port, 443);
  ASSERT_FALSE(ParseConnectTarget("[::1]:8443", host, port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8443);
}

TEST(ParseConnectTargetTest, RefusesIncompleteTargets) {
  for (const char* target :
       {"example.com", "example.com:", "example.com:0", "example.com:99999",
        "user@example.com:443", ":443", "http://example.com:443"}) {
    std::string host;
    uint16_t port = 0;
    auto bad = ParseConnectTarget(target, host, port);
    ASSERT_TRUE(bad.has_value()) << target;
    EXPECT_EQ(bad->status, 400u) << target;
  }
}

TEST(ParseForwardTargetTest, SaysWhetherThePortWasNamed) {
  ForwardTarget ft;
  ASSERT_FALSE(ParseForwardTarget("http://a.example/x", ft));
  EXPECT_FALSE(ft.explicit_port);
  EXPECT_EQ(ft.port, 80);
  ASSERT_FALSE(ParseForwardTarget("http://a.example:80/x", ft));
  EXPECT_TRUE(ft.explicit_port);
}

const TunnelOrigin kTlsTunnel{
    .host = "api.example.com", .port = 443, .tls = true};

TEST(ParseTunnelTargetTest, OriginFormGoesToTheTunnelsOrigin) {
  ForwardTarget ft;
  ASSERT_FALSE(ParseTunnelTarget("/v1/models?limit=2", "API.example.com",
                                 kTlsTunnel, ft));
  EXPECT_EQ(ft.host, "api.example.com");
  EXPECT_EQ(ft.port, 443);
  EXPECT_EQ(ft.path, "/v1/models");
  EXPECT_EQ(ft.origin_target, "/v1/models?limit=2");
  EXPECT_EQ(ft.host_header, "API.example.com");  // as the client sent it
  // The default port may be named; HTTP/1.0 may send no Host at all.
  EXPECT_FALSE(ParseTunnelTarget("/", "api.example.com:443", kTlsTunnel, ft));
  ASSERT_FALSE(ParseTunnelTarget("/", "", kTlsTunnel, ft));
  EXPECT_EQ(ft.host_header, "api.example.com");
  const TunnelOrigin odd{.host = "::1", .port = 8443, .tls = true};
  ASSERT_FALSE(ParseTunnelTarget("/", "", odd, ft));
  EXPECT_EQ(ft.host_header, "[::1]:8443");
}

TEST(ParseTunnelTargetTest, AbsoluteFormMustNameTheTunnel) {
  ForwardTarget ft;
  ASSERT_FALSE(ParseTunnelTarget("https://api.example.com/x?y",
                                 "api.example.com", kTlsTunnel, ft));
  EXPECT_EQ(ft.origin_target, "/x?y");
  for (const char* target :
       {"https://other.example/x", "http://api.example.com/x",
        "https://api.example.com:8443/x", "https://u@api.example.com/x"}) {
    auto bad = ParseTunnelTarget(target, "api.example.com", kTlsTunnel, ft);
    ASSERT_TRUE(bad.has_value()) << target;
    EXPECT_EQ(bad->status, 421u) << target;
    EXPECT_EQ(bad->reason, "misdirected") << target;
  }
}

TEST(ParseTunnelTargetTest, AHostFieldForAnotherOriginIsMisdirected) {
  ForwardTarget ft;
  for (const char* host : {"other.example", "api.example.com:8443",
                           "user@api.example.com", "api.example.com:x"}) {
    auto bad = ParseTunnelTarget("/", host, kTlsTunnel, ft);
    ASSERT_TRUE(bad.has_value()) << host;
    EXPECT_EQ(bad->status, 421u) << host;
  }
}

TEST(ParseTunnelTargetTest, OtherFormsAreBadRequests) {
  ForwardTarget ft;
  for (const char* target : {"*", "api.example.com:443", "", "x y"}) {
    auto bad = ParseTunnelTarget(target, "api.example.com", kTlsTunnel, ft);
    ASSERT_TRUE(bad.has_value()) << target;
    EXPECT_EQ(bad->status, 400u) << target;
  }
}

}  // namespace
}  // namespace sluice
