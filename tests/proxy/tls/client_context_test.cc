#include "proxy/tls/client_context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <string>

#include "common/time/clock.h"
#include "proxy/tls/cert_authority.h"
#include "tests/proxy/tls/tls_test_util.h"

namespace sluice {
namespace {

using ::sluice::test::Handshake;
using ::sluice::test::HandshakeResult;

// What an origin saw of a client's ClientHello.
struct Seen {
  std::string sni;
  std::string alpn_offer;  // wire format
};

int RecordSni(SSL* ssl, int* /*alert*/, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  static_cast<Seen*>(arg)->sni = name != nullptr ? name : "";
  return SSL_TLSEXT_ERR_OK;
}

int RecordAlpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
               const unsigned char* in, unsigned int inlen, void* arg) {
  static_cast<Seen*>(arg)->alpn_offer.assign(reinterpret_cast<const char*>(in),
                                             inlen);
  // Select the client's first protocol.
  if (inlen < 2 || in[0] + 1u > inlen) return SSL_TLSEXT_ERR_NOACK;
  *out = in + 1;
  *outlen = in[0];
  return SSL_TLSEXT_ERR_OK;
}

class TlsClientContextTest : public ::testing::Test {
 protected:
  TlsClientContextTest() {
    auto ca = CertAuthority::Load(test_ca_.cert_path, test_ca_.key_path,
                                  &origin_clock_);
    EXPECT_TRUE(ca.ok()) << ca.status();
    authority_ = *std::move(ca);
  }

  // An origin presenting a leaf for `name` minted now (origin clock),
  // with OpenSSL's default settings (tickets on), at most `max_version`.
  void StartOrigin(std::string_view name, int max_version = TLS1_3_VERSION) {
    auto leaf = authority_->Mint(name);
    ASSERT_TRUE(leaf.ok()) << leaf.status();
    origin_ctx_.reset(SSL_CTX_new(TLS_server_method()));
    SSL_CTX* ctx = origin_ctx_.get();
    ASSERT_EQ(SSL_CTX_use_certificate(ctx, leaf->cert.get()), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey(ctx, authority_->leaf_key()), 1);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    SSL_CTX_set_tlsext_servername_callback(ctx, RecordSni);
    SSL_CTX_set_tlsext_servername_arg(ctx, &seen_);
    SSL_CTX_set_alpn_select_cb(ctx, RecordAlpn, &seen_);
  }

  std::unique_ptr<TlsClientContext> NewClientContext(
      TlsClientContext::Options options) {
    auto client = TlsClientContext::Create(&client_clock_, std::move(options));
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  struct Connection {
    SslPtr client;
    SslPtr server;
    HandshakeResult result;
  };
  Connection Connect(TlsClientContext* tls, std::string_view host,
                     uint16_t port = 443) {
    Connection c;
    seen_ = {};
    c.client.reset(SSL_new(tls->ctx()));
    absl::Status prepared = tls->PrepareClient(c.client.get(), host, port);
    EXPECT_TRUE(prepared.ok()) << prepared;
    c.server.reset(SSL_new(origin_ctx_.get()));
    c.result = Handshake(c.client.get(), c.server.get());
    if (c.result.ok) {
      // Read what the origin sends after the handshake (TLS 1.3 tickets).
      EXPECT_TRUE(test::ExchangeByte(c.client.get(), c.server.get()));
    }
    return c;
  }

  static std::string VerifyName(const Connection& c) {
    return std::string(VerifyResultName(SSL_get_verify_result(c.client.get())));
  }

  FakeClock origin_clock_;
  FakeClock client_clock_;
  test::TempDir dir_;
  test::TestCa test_ca_ = test::MakeTestCa(dir_, origin_clock_.WallNow());
  std::unique_ptr<CertAuthority> authority_;
  SslCtxPtr origin_ctx_;
  Seen seen_;
};

TEST_F(TlsClientContextTest, VerifiesAgainstTheConfiguredBundle) {
  StartOrigin("origin.example.com");
  auto tls = NewClientContext({.ca_file = test_ca_.cert_path});
  Connection c = Connect(tls.get(), "Origin.Example.com");
  ASSERT_TRUE(c.result.ok) << c.result.client_reason;
  EXPECT_EQ(SSL_get_verify_result(c.client.get()), X509_V_OK);
  EXPECT_EQ(VerifyName(c), "ok");
  EXPECT_EQ(seen_.sni, "origin.example.com");
  EXPECT_EQ(seen_.alpn_offer, std::string("\x08http/1.1", 9));
  EXPECT_EQ(SSL_version(c.client.get()), TLS1_3_VERSION);
}

TEST_F(TlsClientContextTest, TheSystemStoreDoesNotKnowTheTestCa) {
  StartOrigin("origin.example.com");
  auto tls = NewClientContext({});
  Connection c = Connect(tls.get(), "origin.example.com");
  EXPECT_FALSE(c.result.ok);
  EXPECT_EQ(c.result.client_reason, SSL_R_CERTIFICATE_VERIFY_FAILED);
  EXPECT_EQ(VerifyName(c), "unknown_issuer");
}

TEST_F(TlsClientContextTest, AnotherHostsCertificateIsWrongHost) {
  StartOrigin("origin.example.com");
  auto tls = NewClientContext({.ca_file = test_ca_.cert_path});
  Connection c = Connect(tls.get(), "other.example.com");
  EXPECT_FALSE(c.result.ok);
  EXPECT_EQ(VerifyName(c), "wrong_host");
  // A sub-domain is another host too.
  Connection sub = Connect(tls.get(), "a.origin.example.com");
  EXPECT_EQ(VerifyName(sub), "wrong_host");
}

TEST_F(TlsClientContextTest, IpLiteralsAreCheckedAsAddressesWithoutSni) {
  StartOrigin("10.0.0.1");
  auto tls = NewClientContext({.ca_file = test_ca_.cert_path});
  Connection good = Connect(tls.get(), "10.0.0.1");
  ASSERT_TRUE(good.result.ok);
  EXPECT_EQ(seen_.sni, "");  // RFC 6066: no SNI for an address
  Connection wrong = Connect(tls.get(), "10.0.0.2");
  EXPECT_FALSE(wrong.result.ok);
  EXPECT_EQ(VerifyName(wrong), "wrong_host");

  StartOrigin("[2001:db8::1]");
  Connection v6 = Connect(tls.get(), "[2001:db8::1]");
  EXPECT_TRUE(v6.result.ok);
  EXPECT_EQ(seen_.sni, "");
}

TEST_F(TlsClientContextTest, CertificatesAreCheckedAtTheClocksTime) {
  StartOrigin("origin.example.com");  // valid [now - 1 h, now + 24 h)
  auto tls = NewClientContext({.ca_file = test_ca_.cert_path});
  client_clock_.Advance(std::chrono::hours(25));
  Connection expired = Connect(tls.get(), "origin.example.com");
  EXPECT_FALSE(expired.result.ok);
  EXPECT_EQ(VerifyName(expired), "expired");

  client_clock_.SetWall(origin_clock_.WallNow() - absl::Hours(2));
  Connection early = Connect(tls.get(), "origin.example.com");
  EXPECT_FALSE(early.result.ok);
  EXPECT_EQ(VerifyName(early), "not_yet_valid");

  client_clock_.SetWall(origin_clock_.WallNow() + absl::Hours(23));
  EXPECT_TRUE(Connect(tls.get(), "origin.example.com").result.ok);
}

TEST_F(TlsClientContextTest, TheSecondHandshakeToAnOriginResumes) {
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    StartOrigin("origin.example.com", version);
    auto tls = NewClientContext({.ca_file = test_ca_.cert_path});
    Connection first = Connect(tls.get(), "origin.example.com", 443);
    ASSERT_TRUE(first.result.ok);
    EXPECT_EQ(SSL_session_reused(first.client.get()), 0);
    EXPECT_EQ(SSL_version(first.client.get()), version);
    EXPECT_GE(tls->stats().sessions_stored, 1u) << version;

    Connection second = Connect(tls.get(), "origin.example.com", 443);
    ASSERT_TRUE(second.result.ok);
    EXPECT_EQ(SSL_session_reused(second.client.get()), 1) << version;
    EXPECT_EQ(SSL_session_reused(second.server.get()), 1) << version;

    // Another port is another origin: no session to offer.
    Connection other_port = Connect(tls.get(), "origin.example.com", 8443);
    ASSERT_TRUE(other_port.result.ok);
    EXPECT_EQ(SSL_session_reused(other_port.client.get()), 0) << version;

    TlsClientContext::Stats stats = tls->stats();
    EXPECT_EQ(stats.handshakes, 3u) << version;
    EXPECT_EQ(stats.resumed, 1u) << version;
    EXPECT_EQ(stats.sessions_offered, 1u) << version;
    EXPECT_EQ(stats.cached_sessions, 2u) << version;
  }
}

TEST_F(TlsClientContextTest, TheSessionCacheIsBounded) {
  StartOrigin("origin.example.com");
  auto tls = NewClientContext(
      {.ca_file = test_ca_.cert_path, .session_cache_capacity = 1});
  ASSERT_TRUE(Connect(tls.get(), "origin.example.com", 1).result.ok);
  ASSERT_TRUE(Connect(tls.get(), "origin.example.com", 2).result.ok);
  TlsClientContext::Stats stats = tls->stats();
  EXPECT_EQ(stats.cached_sessions, 1u);
  EXPECT_GE(stats.session_evictions, 1u);
  // Port 1's session was dropped for port 2's.
  Connection again = Connect(tls.get(), "origin.example.com", 1);
  ASSERT_TRUE(again.result.ok);
  EXPECT_EQ(SSL_session_reused(again.client.get()), 0);
  Connection two = Connect(tls.get(), "origin.example.com", 1);
  EXPECT_EQ(SSL_session_reused(two.client.get()), 1);

  auto off = NewClientContext(
      {.ca_file = test_ca_.cert_path, .session_cache_capacity = 0});
  ASSERT_TRUE(Connect(off.get(), "origin.example.com").result.ok);
  Connection not_resumed = Connect(off.get(), "origin.example.com");
  ASSERT_TRUE(not_resumed.result.ok);
  EXPECT_EQ(SSL_session_reused(not_resumed.client.get()), 0);
  EXPECT_EQ(off->stats().cached_sessions, 0u);
}

TEST_F(TlsClientContextTest, RefusesBadHostsAndBadBundles) {
  auto tls = NewClientContext({.ca_file = test_ca_.cert_path});
  SslPtr ssl(SSL_new(tls->ctx()));
  for (std::string_view bad : {"", "a b", "*.example.com", "127.1"}) {
    EXPECT_EQ(tls->PrepareClient(ssl.get(), bad, 443).code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  auto missing =
      TlsClientContext::Create(&client_clock_, {.ca_file = dir_.File("none")});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), ::testing::HasSubstr("none"));
}

TEST(VerifyResultNameTest, NamesTheCommonFailures) {
  EXPECT_EQ(VerifyResultName(X509_V_OK), "ok");
  EXPECT_EQ(VerifyResultName(X509_V_ERR_CERT_HAS_EXPIRED), "expired");
  EXPECT_EQ(VerifyResultName(X509_V_ERR_CERT_NOT_YET_VALID), "not_yet_valid");
  for (long unknown :
       {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
        X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE,
        X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
        X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_CERT_UNTRUSTED}) {
    EXPECT_EQ(VerifyResultName(unknown), "unknown_issuer") << unknown;
  }
  EXPECT_EQ(VerifyResultName(X509_V_ERR_HOSTNAME_MISMATCH), "wrong_host");
  EXPECT_EQ(VerifyResultName(X509_V_ERR_IP_ADDRESS_MISMATCH), "wrong_host");
  EXPECT_EQ(VerifyResultName(X509_V_ERR_CERT_REVOKED), "revoked");
  EXPECT_EQ(VerifyResultName(X509_V_ERR_CERT_SIGNATURE_FAILURE), "other");
  EXPECT_EQ(VerifyResultName(X509_V_ERR_INVALID_PURPOSE), "other");
}

}  // namespace
}  // namespace sluice
