#include "proxy/tls/server_context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <string>

#include "common/time/clock.h"
#include "proxy/tls/leaf_cache.h"
#include "tests/proxy/tls/tls_test_util.h"

namespace sluice {
namespace {

using ::sluice::test::Handshake;
using ::sluice::test::HandshakeResult;
using ::sluice::test::SanEntries;
using ::testing::ElementsAre;

// What a test client does: which versions, SNI, name check, ALPN.
struct ClientSpec {
  const char* sni = nullptr;
  const char* verify_host = nullptr;
  const char* verify_ip = nullptr;
  std::string alpn;  // wire format; empty: none offered
  int min_version = TLS1_2_VERSION;
  int max_version = TLS1_3_VERSION;
  const char* tls12_ciphers = nullptr;
};

class TlsServerContextTest : public ::testing::Test {
 protected:
  TlsServerContextTest() {
    auto ca =
        CertAuthority::Load(test_ca_.cert_path, test_ca_.key_path, &clock_);
    EXPECT_TRUE(ca.ok()) << ca.status();
    authority_ = *std::move(ca);
    cache_ = std::make_unique<LeafCache>(authority_.get(), &clock_);
    auto server = TlsServerContext::Create(cache_.get());
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // A client that trusts only the test CA, checking at the fake time.
  SslPtr NewClient(const ClientSpec& spec) {
    client_ctx_.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX* ctx = client_ctx_.get();
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), test_ca_.cert.get());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (spec.min_version < TLS1_2_VERSION) {
      SSL_CTX_set_security_level(ctx, 0);  // TLS 1.1 needs level 0
    }
    SSL_CTX_set_min_proto_version(ctx, spec.min_version);
    SSL_CTX_set_max_proto_version(ctx, spec.max_version);
    if (spec.tls12_ciphers != nullptr) {
      EXPECT_EQ(SSL_CTX_set_cipher_list(ctx, spec.tls12_ciphers), 1);
    }
    SslPtr ssl(SSL_new(ctx));
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
    X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(clock_.WallNow()));
    if (spec.sni != nullptr) SSL_set_tlsext_host_name(ssl.get(), spec.sni);
    if (spec.verify_host != nullptr) SSL_set1_host(ssl.get(), spec.verify_host);
    if (spec.verify_ip != nullptr) {
      X509_VERIFY_PARAM_set1_ip_asc(param, spec.verify_ip);
    }
    if (!spec.alpn.empty()) {
      SSL_set_alpn_protos(
          ssl.get(), reinterpret_cast<const unsigned char*>(spec.alpn.data()),
          static_cast<unsigned>(spec.alpn.size()));
    }
    return ssl;
  }

  SslPtr NewServer(std::string_view connect_host) {
    auto ssl = server_->NewConnection(connect_host);
    EXPECT_TRUE(ssl.ok()) << ssl.status();
    return ssl.ok() ? *std::move(ssl) : nullptr;
  }

  static std::string Alpn(SSL* ssl) {
    const unsigned char* data = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl, &data, &len);
    return std::string(reinterpret_cast<const char*>(data), len);
  }

  static std::vector<std::string> PeerSan(SSL* client) {
    X509Ptr peer(SSL_get1_peer_certificate(client));
    if (!peer) return {};
    return SanEntries(peer.get());
  }

  FakeClock clock_;
  test::TempDir dir_;
  test::TestCa test_ca_ = test::MakeTestCa(dir_, clock_.WallNow());
  std::unique_ptr<CertAuthority> authority_;
  std::unique_ptr<LeafCache> cache_;
  std::unique_ptr<TlsServerContext> server_;
  SslCtxPtr client_ctx_;
};

const std::string kH2AndHttp11 = std::string("\x02h2\x08http/1.1", 12);

TEST_F(TlsServerContextTest, SniNameGetsItsOwnLeafThatVerifies) {
  SslPtr client = NewClient({.sni = "api.example.com",
                             .verify_host = "api.example.com",
                             .alpn = kH2AndHttp11});
  SslPtr server = NewServer("api.example.com");
  HandshakeResult result = Handshake(client.get(), server.get());
  ASSERT_TRUE(result.ok) << result.client_reason << " " << result.server_reason;
  EXPECT_EQ(SSL_get_verify_result(client.get()), X509_V_OK);
  EXPECT_THAT(PeerSan(client.get()), ElementsAre("DNS:api.example.com"));
  EXPECT_EQ(Alpn(client.get()), "http/1.1");
  EXPECT_EQ(Alpn(server.get()), "http/1.1");
  EXPECT_EQ(SSL_version(client.get()), TLS1_3_VERSION);
  EXPECT_EQ(TlsServerContext::RefusalOf(server.get()),
            TlsServerContext::Refusal::kNone);
  EXPECT_EQ(server_->stats().accepted, 1u);

  // The next connection to the host takes the cached leaf.
  SslPtr client2 =
      NewClient({.sni = "API.Example.com", .verify_host = "api.example.com"});
  SslPtr server2 = NewServer("api.example.com");
  ASSERT_TRUE(Handshake(client2.get(), server2.get()).ok);
  EXPECT_EQ(cache_->stats().hits, 1u);
  EXPECT_EQ(cache_->stats().misses, 1u);
}

TEST_F(TlsServerContextTest, NoSniGetsTheConnectHostsLeaf) {
  SslPtr client = NewClient({.verify_host = "api.example.com"});
  SslPtr server = NewServer("api.example.com");
  HandshakeResult result = Handshake(client.get(), server.get());
  ASSERT_TRUE(result.ok) << result.client_reason << " " << result.server_reason;
  EXPECT_EQ(SSL_get_verify_result(client.get()), X509_V_OK);
  EXPECT_THAT(PeerSan(client.get()), ElementsAre("DNS:api.example.com"));
  EXPECT_EQ(Alpn(client.get()), "");  // none offered, none selected

  // An IP literal CONNECT host: no SNI (RFC 6066), an IP SAN.
  SslPtr ip_client = NewClient({.verify_ip = "10.0.0.7"});
  SslPtr ip_server = NewServer("10.0.0.7");
  ASSERT_TRUE(Handshake(ip_client.get(), ip_server.get()).ok);
  EXPECT_EQ(SSL_get_verify_result(ip_client.get()), X509_V_OK);
  EXPECT_THAT(PeerSan(ip_client.get()), ElementsAre("IP:0a000007"));
}

TEST_F(TlsServerContextTest, SniForAnotherHostThanConnectIsRefused) {
  SslPtr client =
      NewClient({.sni = "evil.example.com", .verify_host = "evil.example.com"});
  SslPtr server = NewServer("api.example.com");
  HandshakeResult result = Handshake(client.get(), server.get());
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.client_reason, SSL_R_TLSV1_UNRECOGNIZED_NAME);
  EXPECT_EQ(TlsServerContext::RefusalOf(server.get()),
            TlsServerContext::Refusal::kSniMismatch);
  EXPECT_EQ(
      TlsServerContext::RefusalName(TlsServerContext::RefusalOf(server.get())),
      "sni_mismatch");
  EXPECT_EQ(server_->stats().sni_mismatch, 1u);
  EXPECT_EQ(server_->stats().accepted, 0u);
  // Nothing was minted for either name.
  EXPECT_EQ(cache_->stats().misses, 0u);
}

TEST_F(TlsServerContextTest, AConnectionWithoutConnectHostIsRefused) {
  SslPtr client = NewClient({.sni = "api.example.com"});
  SslPtr server(SSL_new(server_->ctx()));
  HandshakeResult result = Handshake(client.get(), server.get());
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.client_reason, SSL_R_TLSV1_ALERT_INTERNAL_ERROR);
  EXPECT_EQ(TlsServerContext::RefusalOf(server.get()),
            TlsServerContext::Refusal::kNoConnectHost);
  EXPECT_EQ(server_->stats().no_connect_host, 1u);

  // SetConnectHost on an SSL made elsewhere from ctx() is enough.
  SslPtr client2 = NewClient({.sni = "api.example.com"});
  SslPtr server2(SSL_new(server_->ctx()));
  ASSERT_TRUE(
      TlsServerContext::SetConnectHost(server2.get(), "api.example.com").ok());
  EXPECT_TRUE(Handshake(client2.get(), server2.get()).ok);
  EXPECT_FALSE(TlsServerContext::SetConnectHost(server2.get(), "a b").ok());
  EXPECT_FALSE(server_->NewConnection("*.example.com").ok());
}

TEST_F(TlsServerContextTest, AlpnSelectsOnlyHttp11) {
  struct Case {
    std::string offered;
    std::string selected;
  };
  for (const Case& c : {
           Case{kH2AndHttp11, "http/1.1"},
           Case{std::string("\x08http/1.1", 9), "http/1.1"},
           Case{std::string("\x02h2", 3), ""},  // h2 only: no ALPN at all
           Case{std::string("\x08http/1.0", 9), ""},
       }) {
    SslPtr client = NewClient({.sni = "api.example.com", .alpn = c.offered});
    SslPtr server = NewServer("api.example.com");
    ASSERT_TRUE(Handshake(client.get(), server.get()).ok) << c.selected;
    EXPECT_EQ(Alpn(client.get()), c.selected);
    EXPECT_EQ(Alpn(server.get()), c.selected);
  }
}

TEST_F(TlsServerContextTest, ATls11OnlyClientIsRefused) {
  SslPtr client = NewClient({.sni = "api.example.com",
                             .min_version = TLS1_1_VERSION,
                             .max_version = TLS1_1_VERSION});
  SslPtr server = NewServer("api.example.com");
  HandshakeResult result = Handshake(client.get(), server.get());
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.server_reason, SSL_R_UNSUPPORTED_PROTOCOL);
  EXPECT_EQ(result.client_reason, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
  EXPECT_EQ(cache_->stats().misses, 0u);  // refused before any minting
}

TEST_F(TlsServerContextTest, Tls12GetsAnAeadCipherWithForwardSecrecy) {
  SslPtr client = NewClient({.sni = "api.example.com",
                             .verify_host = "api.example.com",
                             .max_version = TLS1_2_VERSION});
  SslPtr server = NewServer("api.example.com");
  ASSERT_TRUE(Handshake(client.get(), server.get()).ok);
  EXPECT_EQ(SSL_version(client.get()), TLS1_2_VERSION);
  const SSL_CIPHER* cipher = SSL_get_current_cipher(client.get());
  ASSERT_NE(cipher, nullptr);
  EXPECT_EQ(SSL_CIPHER_is_aead(cipher), 1);
  EXPECT_EQ(SSL_CIPHER_get_kx_nid(cipher), NID_kx_ecdhe);
  EXPECT_EQ(SSL_CIPHER_get_auth_nid(cipher), NID_auth_ecdsa);

  // A client that offers only RSA key exchange, or only CBC, is refused.
  for (const char* ciphers : {"AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA"}) {
    SslPtr weak = NewClient({.sni = "api.example.com",
                             .max_version = TLS1_2_VERSION,
                             .tls12_ciphers = ciphers});
    SslPtr weak_server = NewServer("api.example.com");
    HandshakeResult result = Handshake(weak.get(), weak_server.get());
    EXPECT_FALSE(result.ok) << ciphers;
    EXPECT_EQ(result.server_reason, SSL_R_NO_SHARED_CIPHER) << ciphers;
  }
}

// The minted leaves carry an ECDSA key, which rules out RSA key exchange
// by itself; the settings must refuse it for any server context.
TEST_F(TlsServerContextTest, ServerSettingsRefuseRsaKeyExchangeForAnRsaKey) {
  EvpPkeyPtr rsa(EVP_RSA_gen(2048));
  ASSERT_NE(rsa, nullptr);
  X509Ptr cert =
      test::MakeCert({.common_name = "rsa.example.com",
                      .not_before = clock_.WallNow() - absl::Hours(1),
                      .not_after = clock_.WallNow() + absl::Hours(1),
                      .subject_alt_name = "DNS:rsa.example.com"},
                     rsa.get(), test_ca_.cert.get(), test_ca_.key.get());
  SslCtxPtr server_ctx(SSL_CTX_new(TLS_server_method()));
  ASSERT_TRUE(TlsServerContext::ApplyServerSettings(server_ctx.get()).ok());
  ASSERT_EQ(SSL_CTX_use_certificate(server_ctx.get(), cert.get()), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey(server_ctx.get(), rsa.get()), 1);

  SslPtr good = NewClient(
      {.verify_host = "rsa.example.com", .max_version = TLS1_2_VERSION});
  SslPtr good_server(SSL_new(server_ctx.get()));
  ASSERT_TRUE(Handshake(good.get(), good_server.get()).ok);
  const SSL_CIPHER* cipher = SSL_get_current_cipher(good.get());
  EXPECT_EQ(SSL_CIPHER_get_kx_nid(cipher), NID_kx_ecdhe);
  EXPECT_EQ(SSL_CIPHER_get_auth_nid(cipher), NID_auth_rsa);
  EXPECT_EQ(SSL_CIPHER_is_aead(cipher), 1);

  for (const char* ciphers :
       {"AES128-GCM-SHA256", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA",
        "DHE-RSA-AES128-GCM-SHA256"}) {
    SslPtr weak =
        NewClient({.max_version = TLS1_2_VERSION, .tls12_ciphers = ciphers});
    SslPtr weak_server(SSL_new(server_ctx.get()));
    HandshakeResult result = Handshake(weak.get(), weak_server.get());
    EXPECT_FALSE(result.ok) << ciphers;
    EXPECT_EQ(result.server_reason, SSL_R_NO_SHARED_CIPHER) << ciphers;
  }
}

TEST_F(TlsServerContextTest, SessionsAreNeverResumed) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SslPtr client =
        NewClient({.sni = "api.example.com", .max_version = version});
    SslPtr server = NewServer("api.example.com");
    ASSERT_TRUE(Handshake(client.get(), server.get()).ok);
    ASSERT_TRUE(test::ExchangeByte(client.get(), server.get()));
    std::unique_ptr<SSL_SESSION, OpenSslDeleter<SSL_SESSION_free>> session(
        SSL_get1_session(client.get()));
    ASSERT_NE(session, nullptr);
    // No ticket and no session id that the server would take back.
    EXPECT_EQ(SSL_SESSION_is_resumable(session.get()), 0) << version;

    SslPtr client2 =
        NewClient({.sni = "api.example.com", .max_version = version});
    SSL_set_session(client2.get(), session.get());
    SslPtr server2 = NewServer("api.example.com");
    ASSERT_TRUE(Handshake(client2.get(), server2.get()).ok);
    EXPECT_EQ(SSL_session_reused(client2.get()), 0) << version;
  }
}

TEST_F(TlsServerContextTest, RefusalNamesAreStable) {
  using R = TlsServerContext::Refusal;
  EXPECT_EQ(TlsServerContext::RefusalName(R::kNone), "");
  EXPECT_EQ(TlsServerContext::RefusalName(R::kNoConnectHost),
            "no_connect_host");
  EXPECT_EQ(TlsServerContext::RefusalName(R::kSniMismatch), "sni_mismatch");
  EXPECT_EQ(TlsServerContext::RefusalName(R::kMintFailed), "mint_failed");
}

}  // namespace
}  // namespace sluice
