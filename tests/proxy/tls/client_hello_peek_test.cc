#include "proxy/tls/client_hello_peek.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <string>

#include "absl/strings/escaping.h"
#include "proxy/tls/openssl_util.h"

namespace sluice {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

// The first flight of a real OpenSSL client, captured from a BIO pair.
std::string RealClientHello(int max_version) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_max_proto_version(ctx.get(), max_version);
  SslPtr ssl(SSL_new(ctx.get()));
  BIO* ours = nullptr;
  BIO* theirs = nullptr;
  BIO_new_bio_pair(&ours, 0, &theirs, 0);
  SSL_set_bio(ssl.get(), ours, ours);
  SSL_set_tlsext_host_name(ssl.get(), "api.example.com");
  SSL_set_connect_state(ssl.get());
  SSL_do_handshake(ssl.get());  // writes the ClientHello, then wants to read
  std::string out(BIO_ctrl_pending(theirs), '\0');
  BIO_read(theirs, out.data(), static_cast<int>(out.size()));
  BIO_free(theirs);
  return out;
}

struct Case {
  std::string bytes;
  PeekResult want;
};

TEST(PeekClientBytesTest, Table) {
  const Case cases[] = {
      {"", PeekResult::kNeedMore},
      // TLS: type 22, version 3.x, length 4..16384, ClientHello.
      {Bytes({22}), PeekResult::kNeedMore},
      {Bytes({22, 3}), PeekResult::kNeedMore},
      {Bytes({22, 3, 1}), PeekResult::kNeedMore},
      {Bytes({22, 3, 1, 0}), PeekResult::kNeedMore},
      {Bytes({22, 3, 1, 0, 200}), PeekResult::kNeedMore},
      {Bytes({22, 3, 1, 0, 200, 1}), PeekResult::kTls},
      {Bytes({22, 3, 0, 0, 4, 1}), PeekResult::kTls},       // SSL 3.0 header
      {Bytes({22, 3, 3, 64, 0, 1}), PeekResult::kTls},      // 16384 exactly
      {Bytes({22, 3, 3, 64, 1, 1}), PeekResult::kUnknown},  // 16385
      {Bytes({22, 3, 3, 65}), PeekResult::kUnknown},        // over 2^14 already
      {Bytes({22, 3, 1, 0, 3, 1}), PeekResult::kUnknown},   // too short
      {Bytes({22, 3, 1, 0, 0}), PeekResult::kUnknown},
      {Bytes({22, 3, 1, 0, 200, 2}), PeekResult::kUnknown},  // ServerHello
      {Bytes({22, 2}), PeekResult::kUnknown},                // SSL 2 version
      {Bytes({22, 3, 5}), PeekResult::kUnknown},
      {Bytes({23, 3, 3, 0, 20, 1}), PeekResult::kUnknown},  // application data
      {Bytes({0x80, 0x2e, 0x01}), PeekResult::kUnknown},    // SSLv2 hello
      // HTTP: an upper-case method token and a space.
      {"G", PeekResult::kNeedMore},
      {"GET", PeekResult::kNeedMore},
      {"GET ", PeekResult::kHttp},
      {"GET / HTTP/1.1\r\n", PeekResult::kHttp},
      {"POST /v1 HTTP/1.1\r\n", PeekResult::kHttp},
      {"M-SEARCH * HTTP/1.1\r\n", PeekResult::kHttp},
      {"PRI * HTTP/2.0\r\n", PeekResult::kHttp},  // the h2 preface
      {"UPDATEREDIRECTREF ", PeekResult::kHttp},
      {std::string(24, 'A') + " ", PeekResult::kHttp},
      {std::string(24, 'A'), PeekResult::kNeedMore},
      {std::string(25, 'A'), PeekResult::kUnknown},
      {" GET ", PeekResult::kUnknown},
      {"-GET ", PeekResult::kUnknown},
      {"get / HTTP/1.1", PeekResult::kUnknown},
      {"GET\t/", PeekResult::kUnknown},
      {"GET\r\n", PeekResult::kUnknown},
      {"SSH-2.0-OpenSSH_9.2p1 Debian\r\n", PeekResult::kUnknown},
      {std::string("\0GET ", 5), PeekResult::kUnknown},
      {"\r\n", PeekResult::kUnknown},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(PeekResultName(PeekClientBytes(c.bytes)), PeekResultName(c.want))
        << "\"" << absl::CEscape(c.bytes) << "\"";
  }
}

TEST(PeekClientBytesTest, RealClientHellosAreTls) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    const std::string hello = RealClientHello(version);
    ASSERT_GT(hello.size(), 6u);
    EXPECT_EQ(PeekClientBytes(hello), PeekResult::kTls) << version;
    for (size_t n = 0; n < 6; ++n) {
      EXPECT_EQ(PeekClientBytes(hello.substr(0, n)), PeekResult::kNeedMore)
          << n;
    }
    EXPECT_EQ(PeekClientBytes(hello.substr(0, 6)), PeekResult::kTls);
  }
}

TEST(PeekClientBytesTest, ADecisionNeverChangesWithMoreBytes) {
  for (const std::string& full :
       {RealClientHello(TLS1_3_VERSION), std::string("DELETE /x HTTP/1.1\r\n"),
        std::string("SSH-2.0-x\r\n"), Bytes({22, 3, 9, 0, 0, 0, 0})}) {
    PeekResult decided = PeekResult::kNeedMore;
    for (size_t n = 0; n <= full.size(); ++n) {
      const PeekResult now = PeekClientBytes(full.substr(0, n));
      if (decided != PeekResult::kNeedMore) {
        EXPECT_EQ(now, decided) << n;
      }
      if (now == PeekResult::kNeedMore) {
        EXPECT_LT(n, kMaxPeekBytes);
      }
      decided = now;
    }
    EXPECT_NE(decided, PeekResult::kNeedMore);
  }
}

}  // namespace
}  // namespace sluice
