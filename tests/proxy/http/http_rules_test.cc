#include "proxy/http/http_rules.h"

#include <gtest/gtest.h>

#include <boost/beast/http/field.hpp>

namespace sluice {
namespace {

namespace http = boost::beast::http;

TEST(CheckRawRequestHeadTest, AcceptsPlainHead) {
  EXPECT_FALSE(
      CheckRawRequestHead("GET http://a/ HTTP/1.1\r\nHost: a\r\n"
                          "X-A: 1\r\n\r\n"));
}

TEST(CheckRawRequestHeadTest, RejectsObsFold) {
  auto e = CheckRawRequestHead(
      "GET http://a/ HTTP/1.1\r\nX-A: 1\r\n  continued\r\n\r\n");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400u);
  EXPECT_EQ(e->reason, "obs_fold");
  auto tab =
      CheckRawRequestHead("GET http://a/ HTTP/1.1\r\nX-A: 1\r\n\tx\r\n\r\n");
  ASSERT_TRUE(tab);
  EXPECT_EQ(tab->reason, "obs_fold");
}

TEST(CheckRawRequestHeadTest, RejectsBareLf) {
  auto e = CheckRawRequestHead("GET http://a/ HTTP/1.1\nHost: a\r\n\r\n");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->reason, "bare_lf");
}

TEST(OversizedHeadErrorTest, LongRequestLineIs414) {
  std::string line = "GET http://a/" + std::string(5000, 'x');
  EXPECT_EQ(OversizedHeadError(line, 1024).status, 414u);
  EXPECT_EQ(OversizedHeadError(line + " HTTP/1.1\r\nX: y", 1024).status, 414u);
}

TEST(OversizedHeadErrorTest, LongHeadersAre431) {
  std::string head =
      "GET http://a/ HTTP/1.1\r\nX-Big: " + std::string(9000, 'x');
  EXPECT_EQ(OversizedHeadError(head, 1024).status, 431u);
}

TEST(CheckRequestFramingTest, AcceptsContentLengthOrChunked) {
  http::fields cl;
  cl.set(http::field::content_length, "5");
  EXPECT_FALSE(CheckRequestFraming(cl));
  http::fields te;
  te.set(http::field::transfer_encoding, "chunked");
  EXPECT_FALSE(CheckRequestFraming(te));
  http::fields none;
  EXPECT_FALSE(CheckRequestFraming(none));
}

TEST(CheckRequestFramingTest, RejectsSmugglingShapes) {
  struct Case {
    std::vector<std::pair<http::field, std::string>> fields;
    unsigned status;
    std::string reason;
  };
  std::vector<Case> cases = {
      {{{http::field::content_length, "5"},
        {http::field::transfer_encoding, "chunked"}},
       400,
       "te_and_cl"},
      {{{http::field::transfer_encoding, "chunked, gzip"}},
       400,
       "chunked_not_last"},
      {{{http::field::transfer_encoding, "gzip"}}, 400, "chunked_not_last"},
      {{{http::field::transfer_encoding, "chunked, chunked"}},
       400,
       "chunked_twice"},
      {{{http::field::transfer_encoding, "gzip, chunked"}},
       501,
       "unsupported_te"},
      {{{http::field::transfer_encoding, "chunked"},
        {http::field::transfer_encoding, "chunked"}},
       400,
       "multiple_te"},
  };
  for (const auto& c : cases) {
    http::fields f;
    for (const auto& [name, value] : c.fields) f.insert(name, value);
    auto e = CheckRequestFraming(f);
    ASSERT_TRUE(e) << c.reason;
    EXPECT_EQ(e->status, c.status) << c.reason;
    EXPECT_EQ(e->reason, c.reason);
  }
}

TEST(StripHopByHopTest, RemovesHopFieldsAndConnectionNamedOnes) {
  http::fields f;
  f.set(http::field::connection, "close, X-Foo");
  f.set("X-Foo", "1");
  f.set("X-Keep", "2");
  f.set(http::field::keep_alive, "timeout=5");
  f.set(http::field::te, "trailers");
  f.set(http::field::trailer, "X-T");
  f.set(http::field::upgrade, "websocket");
  f.set(http::field::proxy_authorization, "Basic eA==");
  f.set(http::field::proxy_connection, "keep-alive");
  f.set(http::field::transfer_encoding, "chunked");
  EXPECT_TRUE(StripHopByHop(f));
  EXPECT_EQ(f.count("X-Foo"), 0u);
  EXPECT_EQ(f.count(http::field::connection), 0u);
  EXPECT_EQ(f.count(http::field::keep_alive), 0u);
  EXPECT_EQ(f.count(http::field::te), 0u);
  EXPECT_EQ(f.count(http::field::trailer), 0u);
  EXPECT_EQ(f.count(http::field::upgrade), 0u);
  EXPECT_EQ(f.count(http::field::proxy_authorization), 0u);
  EXPECT_EQ(f.count(http::field::proxy_connection), 0u);
  EXPECT_EQ(f["X-Keep"], "2");
  // Framing stays: the serializer re-frames from the chunked flag.
  EXPECT_EQ(f[http::field::transfer_encoding], "chunked");
}

TEST(StripHopByHopTest, ConnectionCannotRemoveFraming) {
  http::fields f;
  f.set(http::field::connection, "content-length, host");
  f.set(http::field::content_length, "3");
  f.set(http::field::host, "a");
  EXPECT_FALSE(StripHopByHop(f));
  EXPECT_EQ(f[http::field::content_length], "3");
  EXPECT_EQ(f[http::field::host], "a");
}

TEST(StripHopByHopTest, ProxyConnectionCloseCounts) {
  http::fields f;
  f.set(http::field::proxy_connection, "close");
  EXPECT_TRUE(StripHopByHop(f));
}

TEST(AppendViaTest, AddsOrExtends) {
  http::fields f;
  AppendVia(f, 11);
  EXPECT_EQ(f[http::field::via], "1.1 sluice");
  AppendVia(f, 10);
  EXPECT_EQ(f[http::field::via], "1.1 sluice, 1.0 sluice");
}

}  // namespace
}  // namespace sluice
