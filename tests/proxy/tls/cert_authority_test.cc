#include "proxy/tls/cert_authority.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>

#include <set>
#include <string>

#include "absl/status/status.h"
#include "common/time/clock.h"
#include "tests/proxy/tls/tls_test_util.h"

namespace sluice {
namespace {

using ::sluice::test::AsTime;
using ::sluice::test::CertSpec;
using ::sluice::test::MakeCert;
using ::sluice::test::MakeTestCa;
using ::sluice::test::PemOf;
using ::sluice::test::SanEntries;
using ::sluice::test::TempDir;
using ::sluice::test::VerifyLeaf;
using ::sluice::test::WriteFileWithMode;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class CertAuthorityTest : public ::testing::Test {
 protected:
  std::unique_ptr<CertAuthority> LoadTestCa(
      CertAuthority::Options options = {}) {
    absl::StatusOr<std::unique_ptr<CertAuthority>> ca =
        CertAuthority::Load(ca_.cert_path, ca_.key_path, &clock_, options);
    EXPECT_TRUE(ca.ok()) << ca.status();
    return ca.ok() ? *std::move(ca) : nullptr;
  }

  FakeClock clock_;
  TempDir dir_;
  test::TestCa ca_ = MakeTestCa(dir_, clock_.WallNow());
};

TEST_F(CertAuthorityTest, MintedLeafVerifiesAgainstTheCaAsAServer) {
  auto ca = LoadTestCa();
  ASSERT_NE(ca, nullptr);
  absl::StatusOr<CertAuthority::Leaf> leaf = ca->Mint("api.example.com");
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  X509* cert = leaf->cert.get();
  const absl::Time now = clock_.WallNow();
  EXPECT_EQ(VerifyLeaf(cert, ca_.cert.get(), now, X509_PURPOSE_SSL_SERVER,
                       "api.example.com"),
            X509_V_OK);
  EXPECT_EQ(VerifyLeaf(cert, ca_.cert.get(), now, X509_PURPOSE_SSL_SERVER,
                       "other.example.com"),
            X509_V_ERR_HOSTNAME_MISMATCH);
  // serverAuth only: not good for a TLS client.
  EXPECT_EQ(VerifyLeaf(cert, ca_.cert.get(), now, X509_PURPOSE_SSL_CLIENT),
            X509_V_ERR_INVALID_PURPOSE);
  // Signed by the CA with ECDSA over SHA-256 (the test CA's key is P-256).
  EXPECT_EQ(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_get_version(cert), X509_VERSION_3);
  EXPECT_EQ(X509_check_issued(ca_.cert.get(), cert), X509_V_OK);
}

TEST_F(CertAuthorityTest, SubjectAltNameIsExactlyTheName) {
  auto ca = LoadTestCa();
  ASSERT_NE(ca, nullptr);
  auto dns = ca->Mint("API.Example.COM.");
  ASSERT_TRUE(dns.ok()) << dns.status();
  EXPECT_THAT(SanEntries(dns->cert.get()), ElementsAre("DNS:api.example.com"));
  EXPECT_EQ(X509_check_host(dns->cert.get(), "api.example.com", 0, 0, nullptr),
            1);

  auto v4 = ca->Mint("10.1.2.3");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_THAT(SanEntries(v4->cert.get()), ElementsAre("IP:0a010203"));
  EXPECT_EQ(X509_check_ip_asc(v4->cert.get(), "10.1.2.3", 0), 1);
  EXPECT_EQ(VerifyLeaf(v4->cert.get(), ca_.cert.get(), clock_.WallNow(),
                       X509_PURPOSE_SSL_SERVER, nullptr, "10.1.2.3"),
            X509_V_OK);

  auto v6 = ca->Mint("[2001:DB8::1]");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_THAT(SanEntries(v6->cert.get()),
              ElementsAre("IP:20010db8000000000000000000000001"));
  EXPECT_EQ(X509_check_ip_asc(v6->cert.get(), "2001:db8::1", 0), 1);
}

TEST_F(CertAuthorityTest, CommonNameIsTheNameCutAt64Bytes) {
  auto ca = LoadTestCa();
  ASSERT_NE(ca, nullptr);
  const std::string label(60, 'a');
  const std::string long_name = label + "." + label + ".example.com";
  auto leaf = ca->Mint(long_name);
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(leaf->cert.get()),
                            NID_commonName, cn, sizeof(cn));
  EXPECT_EQ(std::string(cn), long_name.substr(0, 64));
  EXPECT_THAT(SanEntries(leaf->cert.get()), ElementsAre("DNS:" + long_name));
  EXPECT_EQ(X509_check_host(leaf->cert.get(), long_name.c_str(), 0, 0, nullptr),
            1);

  auto short_leaf = ca->Mint("a.example");
  ASSERT_TRUE(short_leaf.ok());
  X509_NAME_get_text_by_NID(X509_get_subject_name(short_leaf->cert.get()),
                            NID_commonName, cn, sizeof(cn));
  EXPECT_EQ(std::string(cn), "a.example");
}

TEST_F(CertAuthorityTest, ExtensionsAreThoseOfALeaf) {
  auto ca = LoadTestCa();
  ASSERT_NE(ca, nullptr);
  auto leaf = ca->Mint("api.example.com");
  ASSERT_TRUE(leaf.ok());
  X509* cert = leaf->cert.get();
  const uint32_t flags = X509_get_extension_flags(cert);
  EXPECT_EQ(flags & EXFLAG_INVALID, 0u);
  // extendedKeyUsage: serverAuth and nothing else.
  ASSERT_NE(flags & EXFLAG_XKUSAGE, 0u);
  EXPECT_EQ(X509_get_extended_key_usage(cert), uint32_t{XKU_SSL_SERVER});
  // keyUsage: digitalSignature only, critical.
  ASSERT_NE(flags & EXFLAG_KUSAGE, 0u);
  EXPECT_EQ(X509_get_key_usage(cert), uint32_t{KU_DIGITAL_SIGNATURE});
  const int ku = X509_get_ext_by_NID(cert, NID_key_usage, -1);
  ASSERT_GE(ku, 0);
  EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(cert, ku)), 1);
  // basicConstraints present, CA:FALSE.
  EXPECT_NE(flags & EXFLAG_BCONS, 0u);
  EXPECT_EQ(flags & EXFLAG_CA, 0u);
  EXPECT_EQ(X509_check_ca(cert), 0);
  // No subjectKeyIdentifier; authorityKeyIdentifier = the CA's SKI.
  EXPECT_EQ(X509_get_ext_by_NID(cert, NID_subject_key_identifier, -1), -1);
  const ASN1_OCTET_STRING* akid = X509_get0_authority_key_id(cert);
  const ASN1_OCTET_STRING* ca_skid = X509_get0_subject_key_id(ca_.cert.get());
  ASSERT_NE(akid, nullptr);
  ASSERT_NE(ca_skid, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(akid, ca_skid), 0);
  // The subject key is the authority's one leaf key.
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(cert), ca->leaf_key()), 1);
  EXPECT_TRUE(EVP_PKEY_is_a(ca->leaf_key(), "EC"));
  char group[64] = {};
  size_t group_len = 0;
  ASSERT_EQ(
      EVP_PKEY_get_group_name(ca->leaf_key(), group, sizeof(group), &group_len),
      1);
  EXPECT_EQ(std::string(group), "prime256v1");
}

TEST_F(CertAuthorityTest, ValidityIsBackdatedAnHourAndClippedToTheCa) {
  auto ca = LoadTestCa();
  ASSERT_NE(ca, nullptr);
  clock_.Advance(std::chrono::seconds(37));
  const absl::Time now = clock_.WallNow();
  auto leaf = ca->Mint("api.example.com");
  ASSERT_TRUE(leaf.ok());
  EXPECT_EQ(AsTime(X509_get0_notBefore(leaf->cert.get())),
            now - absl::Hours(1));
  EXPECT_EQ(AsTime(X509_get0_notAfter(leaf->cert.get())),
            now + absl::Hours(24));
  EXPECT_EQ(leaf->not_after, now + absl::Hours(24));

  auto week = LoadTestCa({.leaf_validity = absl::Hours(24 * 7)});
  ASSERT_NE(week, nullptr);
  auto long_leaf = week->Mint("api.example.com");
  ASSERT_TRUE(long_leaf.ok());
  EXPECT_EQ(AsTime(X509_get0_notAfter(long_leaf->cert.get())),
            now + absl::Hours(24 * 7));

  // A CA that ends in 48 hours: a week-long leaf ends with it.
  TempDir other;
  test::TestCa short_ca =
      MakeTestCa(other, clock_.WallNow(), absl::Hours(48), "short");
  auto clipped =
      CertAuthority::Load(short_ca.cert_path, short_ca.key_path, &clock_,
                          {.leaf_validity = absl::Hours(24 * 7)});
  ASSERT_TRUE(clipped.ok()) << clipped.status();
  auto clipped_leaf = (*clipped)->Mint("api.example.com");
  ASSERT_TRUE(clipped_leaf.ok());
  const absl::Time ca_end = AsTime(X509_get0_notAfter(short_ca.cert.get()));
  EXPECT_EQ(AsTime(X509_get0_notAfter(clipped_leaf->cert.get())), ca_end);
  EXPECT_EQ(clipped_leaf->not_after, ca_end);
  EXPECT_EQ(VerifyLeaf(clipped_leaf->cert.get(), short_ca.cert.get(),
                       ca_end - absl::Seconds(1)),
            X509_V_OK);
  EXPECT_EQ(VerifyLeaf(clipped_leaf->cert.get(), short_ca.cert.get(),
                       ca_end + absl::Seconds(1)),
            X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST_F(CertAuthorityTest, SerialsAreRandomPositiveAndAtMost128Bits) {
  auto ca = LoadTestCa();
  ASSERT_NE(ca, nullptr);
  std::set<std::string> serials;
  bool any_top_bit = false;
  for (int i = 0; i < 1000; ++i) {
    auto leaf = ca->Mint("api.example.com");
    ASSERT_TRUE(leaf.ok());
    const ASN1_INTEGER* serial = X509_get0_serialNumber(leaf->cert.get());
    std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>> bn(
        ASN1_INTEGER_to_BN(serial, nullptr));
    ASSERT_NE(bn, nullptr);
    EXPECT_FALSE(BN_is_negative(bn.get()));
    EXPECT_FALSE(BN_is_zero(bn.get()));
    EXPECT_LE(BN_num_bits(bn.get()), 128);
    any_top_bit |= BN_num_bits(bn.get()) > 120;
    char* hex = BN_bn2hex(bn.get());
    serials.insert(hex);
    OPENSSL_free(hex);
    // Every leaf carries the same key.
    EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(leaf->cert.get()), ca->leaf_key()),
              1);
  }
  EXPECT_EQ(serials.size(), 1000u);
  EXPECT_TRUE(any_top_bit);  // the serials use the whole 128 bits
}

TEST_F(CertAuthorityTest, MintRefusesWhatIsNoServerName) {
  auto ca = LoadTestCa();
  ASSERT_NE(ca, nullptr);
  for (std::string_view bad : std::initializer_list<std::string_view>{
           "", "*.example.com", "a b.com", "a..b", "exa/mple.com",
           "example.com:443", "1.2.3.4.5", std::string_view("a\0b.com", 7)}) {
    auto leaf = ca->Mint(bad);
    EXPECT_EQ(leaf.status().code(), absl::StatusCode::kInvalidArgument)
        << bad.size() << " bytes: " << bad.substr(0, 1);
  }
}

TEST_F(CertAuthorityTest, AnRsaCaSignsWithSha256) {
  TempDir dir;
  EvpPkeyPtr rsa(EVP_RSA_gen(2048));
  ASSERT_NE(rsa, nullptr);
  X509Ptr cert = MakeCert({.common_name = "rsa CA",
                           .not_before = clock_.WallNow() - absl::Hours(1),
                           .not_after = clock_.WallNow() + absl::Hours(100),
                           .basic_constraints = "critical,CA:TRUE",
                           .subject_key_id = true},
                          rsa.get());
  WriteFileWithMode(dir.File("ca.pem"), PemOf(cert.get()), 0644);
  WriteFileWithMode(dir.File("key.pem"), PemOf(rsa.get()), 0600);
  auto ca =
      CertAuthority::Load(dir.File("ca.pem"), dir.File("key.pem"), &clock_);
  ASSERT_TRUE(ca.ok()) << ca.status();
  auto leaf = (*ca)->Mint("api.example.com");
  ASSERT_TRUE(leaf.ok());
  EXPECT_EQ(X509_get_signature_nid(leaf->cert.get()),
            NID_sha256WithRSAEncryption);
  EXPECT_EQ(VerifyLeaf(leaf->cert.get(), cert.get(), clock_.WallNow()),
            X509_V_OK);
}

TEST_F(CertAuthorityTest, LoadRefusesAKeyFileOthersCanRead) {
  for (mode_t mode : {0644, 0640, 0604}) {
    ASSERT_EQ(::chmod(ca_.key_path.c_str(), mode), 0);
    auto ca = CertAuthority::Load(ca_.cert_path, ca_.key_path, &clock_);
    EXPECT_EQ(ca.status().code(), absl::StatusCode::kPermissionDenied) << mode;
    EXPECT_THAT(ca.status().message(), HasSubstr(ca_.key_path));
    EXPECT_THAT(ca.status().message(), HasSubstr("group or others"));
  }
  for (mode_t mode : {0600, 0400}) {
    ASSERT_EQ(::chmod(ca_.key_path.c_str(), mode), 0);
    auto ca = CertAuthority::Load(ca_.cert_path, ca_.key_path, &clock_);
    EXPECT_TRUE(ca.ok()) << mode << " " << ca.status();
  }
}

TEST_F(CertAuthorityTest, LoadRefusesAKeyThatIsNotTheCertificates) {
  TempDir other;
  test::TestCa stranger = MakeTestCa(other, clock_.WallNow());
  auto ca = CertAuthority::Load(ca_.cert_path, stranger.key_path, &clock_);
  EXPECT_EQ(ca.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ca.status().message(), HasSubstr("does not match"));
  EXPECT_THAT(ca.status().message(), HasSubstr(stranger.key_path));
}

TEST_F(CertAuthorityTest, LoadRefusesACertificateThatIsNoCa) {
  const absl::Time now = clock_.WallNow();
  struct Case {
    std::string basic_constraints;
    std::string key_usage;
    bool accepted;
  };
  for (const Case& c : {
           Case{"", "", false},                   // no basicConstraints
           Case{"critical,CA:FALSE", "", false},  // a leaf
           Case{"critical,CA:TRUE", "digitalSignature", false},  // no certSign
           Case{"critical,CA:TRUE", "", true},  // keyUsage absent
           Case{"critical,CA:TRUE", "keyCertSign", true},
       }) {
    TempDir dir;
    EvpPkeyPtr key = test::NewTestKey();
    X509Ptr cert = MakeCert({.common_name = "maybe a CA",
                             .not_before = now - absl::Hours(1),
                             .not_after = now + absl::Hours(100),
                             .basic_constraints = c.basic_constraints,
                             .key_usage = c.key_usage},
                            key.get());
    WriteFileWithMode(dir.File("c.pem"), PemOf(cert.get()), 0644);
    WriteFileWithMode(dir.File("k.pem"), PemOf(key.get()), 0600);
    auto ca =
        CertAuthority::Load(dir.File("c.pem"), dir.File("k.pem"), &clock_);
    EXPECT_EQ(ca.ok(), c.accepted)
        << c.basic_constraints << " / " << c.key_usage << ": " << ca.status();
    if (!c.accepted) {
      EXPECT_THAT(ca.status().message(), HasSubstr("not a CA certificate"));
      EXPECT_THAT(ca.status().message(), HasSubstr(dir.File("c.pem")));
    }
  }
}

TEST_F(CertAuthorityTest, LoadRefusesACaOutsideItsValidity) {
  // ca_ is valid from now - 24h to now + 365 days.
  const absl::Time end = AsTime(X509_get0_notAfter(ca_.cert.get()));
  clock_.SetWall(end - absl::Seconds(1));
  EXPECT_TRUE(CertAuthority::Load(ca_.cert_path, ca_.key_path, &clock_).ok());
  clock_.SetWall(end);
  auto expired = CertAuthority::Load(ca_.cert_path, ca_.key_path, &clock_);
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(expired.status().message(), HasSubstr("expired"));
  EXPECT_THAT(expired.status().message(), HasSubstr(ca_.cert_path));

  const absl::Time start = AsTime(X509_get0_notBefore(ca_.cert.get()));
  clock_.SetWall(start - absl::Seconds(1));
  auto early = CertAuthority::Load(ca_.cert_path, ca_.key_path, &clock_);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(early.status().message(), HasSubstr("not valid until"));
}

TEST_F(CertAuthorityTest, LoadNamesMissingUnparsableAndEncryptedFiles) {
  auto missing =
      CertAuthority::Load(dir_.File("nope.pem"), ca_.key_path, &clock_);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(dir_.File("nope.pem")));

  WriteFileWithMode(dir_.File("junk.pem"), "not a certificate\n", 0600);
  auto junk_cert =
      CertAuthority::Load(dir_.File("junk.pem"), ca_.key_path, &clock_);
  EXPECT_EQ(junk_cert.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(junk_cert.status().message(), HasSubstr(dir_.File("junk.pem")));
  auto junk_key =
      CertAuthority::Load(ca_.cert_path, dir_.File("junk.pem"), &clock_);
  EXPECT_EQ(junk_key.status().code(), absl::StatusCode::kInvalidArgument);

  // An encrypted key fails at once (no passphrase prompt).
  BioPtr bio(BIO_new(BIO_s_mem()));
  static const char kPass[] = "secret";
  ASSERT_EQ(
      PEM_write_bio_PrivateKey(bio.get(), ca_.key.get(), EVP_aes_256_cbc(),
                               nullptr, 0, nullptr, const_cast<char*>(kPass)),
      1);
  WriteFileWithMode(dir_.File("enc.pem"), test::BioString(bio.get()), 0600);
  auto encrypted =
      CertAuthority::Load(ca_.cert_path, dir_.File("enc.pem"), &clock_);
  EXPECT_EQ(encrypted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(encrypted.status().message(), HasSubstr("encrypted"));
}

TEST_F(CertAuthorityTest, InitWritesAPrivateKeyAndACaThatLoadAccepts) {
  TempDir dir;
  const mode_t old_umask = ::umask(0);  // the 0600 must not come from umask
  absl::Status init = CertAuthority::Init(dir.path(), &clock_);
  ::umask(old_umask);
  ASSERT_TRUE(init.ok()) << init;
  const std::string cert_path = dir.File("ca.pem");
  const std::string key_path = dir.File("ca-key.pem");
  EXPECT_EQ(test::FileMode(key_path), 0600u);
  EXPECT_EQ(test::FileMode(cert_path), 0644u);

  auto ca = CertAuthority::Load(cert_path, key_path, &clock_);
  ASSERT_TRUE(ca.ok()) << ca.status();
  X509* cert = (*ca)->ca_cert();
  EXPECT_EQ(X509_check_ca(cert), 1);
  EXPECT_EQ(X509_get_key_usage(cert), uint32_t{KU_KEY_CERT_SIGN | KU_CRL_SIGN});
  EXPECT_NE(X509_get0_subject_key_id(cert), nullptr);
  EXPECT_EQ(X509_check_issued(cert, cert), X509_V_OK);  // self-signed
  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                            sizeof(cn));
  EXPECT_EQ(std::string(cn), "sluice local CA 2026-01-01");
  const absl::Time now = clock_.WallNow();
  EXPECT_EQ(AsTime(X509_get0_notBefore(cert)), now - absl::Hours(1));
  EXPECT_EQ(AsTime(X509_get0_notAfter(cert)), now + absl::Hours(24 * 3650));
  EVP_PKEY* ca_key = X509_get0_pubkey(cert);
  char group[64] = {};
  size_t group_len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(ca_key, group, sizeof(group), &group_len),
            1);
  EXPECT_EQ(std::string(group), "prime256v1");

  // Its leaves verify against it, the CA read back from the file.
  auto leaf = (*ca)->Mint("api.example.com");
  ASSERT_TRUE(leaf.ok());
  BioPtr pem(BIO_new_file(cert_path.c_str(), "r"));
  X509Ptr from_file(PEM_read_bio_X509(pem.get(), nullptr, nullptr, nullptr));
  ASSERT_NE(from_file, nullptr);
  EXPECT_EQ(VerifyLeaf(leaf->cert.get(), from_file.get(), now,
                       X509_PURPOSE_SSL_SERVER, "api.example.com"),
            X509_V_OK);
  // Ten years on, the CA is still valid (a leaf minted then verifies).
  clock_.SetWall(now + absl::Hours(24 * 3649));
  auto later = (*ca)->Mint("api.example.com");
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(VerifyLeaf(later->cert.get(), from_file.get(), clock_.WallNow()),
            X509_V_OK);
}

TEST_F(CertAuthorityTest, InitNeverOverwritesAnExistingCa) {
  TempDir dir;
  ASSERT_TRUE(CertAuthority::Init(dir.path(), &clock_).ok());
  const std::string key_before = test::ReadFileText(dir.File("ca-key.pem"));
  const std::string cert_before = test::ReadFileText(dir.File("ca.pem"));
  absl::Status again = CertAuthority::Init(dir.path(), &clock_);
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(again.message(), HasSubstr("ca-key.pem"));
  EXPECT_EQ(test::ReadFileText(dir.File("ca-key.pem")), key_before);
  EXPECT_EQ(test::ReadFileText(dir.File("ca.pem")), cert_before);

  // A certificate alone in the way: no key is left behind either.
  TempDir half;
  WriteFileWithMode(half.File("ca.pem"), "x", 0644);
  EXPECT_EQ(CertAuthority::Init(half.path(), &clock_).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(::access(half.File("ca-key.pem").c_str(), F_OK), -1);
}

// Every certificate a PEM file holds, in order, as OpenSSL reads them.
std::vector<X509Ptr> ReadAllCerts(const std::string& path) {
  std::vector<X509Ptr> out;
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return out;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    out.emplace_back(cert);
  }
  ERR_clear_error();
  return out;
}

TEST_F(CertAuthorityTest, WriteBundleIsTheRootsFollowedByTheCa) {
  TempDir other;
  test::TestCa root1 =
      MakeTestCa(other, clock_.WallNow(), absl::Hours(1000), "r1");
  test::TestCa root2 =
      MakeTestCa(other, clock_.WallNow(), absl::Hours(1000), "r2");
  const std::string roots = PemOf(root1.cert.get()) + PemOf(root2.cert.get());
  WriteFileWithMode(other.File("roots.pem"), roots, 0644);
  const std::string out = other.File("bundle.pem");
  absl::Status written =
      CertAuthority::WriteBundle(ca_.cert_path, out, other.File("roots.pem"));
  ASSERT_TRUE(written.ok()) << written;
  EXPECT_EQ(test::FileMode(out), 0644u);
  const std::string text = test::ReadFileText(out);
  EXPECT_EQ(text.substr(0, roots.size()), roots);
  std::vector<X509Ptr> certs = ReadAllCerts(out);
  ASSERT_EQ(certs.size(), 3u);
  EXPECT_EQ(X509_cmp(certs[2].get(), ca_.cert.get()), 0);

  // A second run replaces the file.
  ASSERT_TRUE(
      CertAuthority::WriteBundle(ca_.cert_path, out, root1.cert_path).ok());
  EXPECT_EQ(ReadAllCerts(out).size(), 2u);

  // Roots without a certificate would leave clients trusting only sluice.
  WriteFileWithMode(other.File("empty.pem"), "", 0644);
  absl::Status empty =
      CertAuthority::WriteBundle(ca_.cert_path, out, other.File("empty.pem"));
  EXPECT_EQ(empty.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.message(), HasSubstr(other.File("empty.pem")));
  // Nor is a file that is no certificate taken as the CA.
  EXPECT_FALSE(
      CertAuthority::WriteBundle(ca_.key_path, out, root1.cert_path).ok());
}

TEST_F(CertAuthorityTest, WriteBundleStartsWithTheSystemRoots) {
  const std::string system = X509_get_default_cert_file();
  const std::string roots = test::ReadFileText(system);
  // The test command installs Debian's ca-certificates (.ci/install-deps.sh):
  // the system store is there to be read.
  ASSERT_FALSE(roots.empty()) << "no system roots at " << system;
  const std::string out = dir_.File("bundle.pem");
  absl::Status written = CertAuthority::WriteBundle(ca_.cert_path, out);
  ASSERT_TRUE(written.ok()) << written;
  const std::string text = test::ReadFileText(out);
  EXPECT_EQ(text.substr(0, roots.size()), roots);
  std::vector<X509Ptr> certs = ReadAllCerts(out);
  EXPECT_EQ(certs.size(), ReadAllCerts(system).size() + 1);
  ASSERT_FALSE(certs.empty());
  EXPECT_EQ(X509_cmp(certs.back().get(), ca_.cert.get()), 0);
}

}  // namespace
}  // namespace sluice
