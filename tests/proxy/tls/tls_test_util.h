#ifndef SLUICE_TESTS_PROXY_TLS_TLS_TEST_UTIL_H_
#define SLUICE_TESTS_PROXY_TLS_TLS_TEST_UTIL_H_

// Certificates, files and in-memory handshakes for the tests of proxy/tls.
// Test certificates are built here with OpenSSL directly, and results are
// judged by OpenSSL's own verifier, never by the code under test.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "proxy/tls/openssl_util.h"

namespace sluice::test {

using X509StorePtr =
    std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE_free>>;
using X509StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX_free>>;

// A fresh directory under the test's temporary directory, removed with
// everything in it when the object goes.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = (std::filesystem::path(::testing::TempDir()) /
             ("tls_test_" + std::to_string(::getpid()) + "_" +
              std::to_string(counter.fetch_add(1))))
                .string();
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `data` to `path` with exactly `mode` (fchmod, past the umask).
inline void WriteFileWithMode(const std::string& path, const std::string& data,
                              mode_t mode) {
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::fchmod(fd, mode), 0);
  ASSERT_EQ(::write(fd, data.data(), data.size()),
            static_cast<ssize_t>(data.size()));
  ::close(fd);
}

inline std::string ReadFileText(const std::string& path) {
  std::string out;
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return out;
  char buf[65536];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) out.append(buf, n);
  ::close(fd);
  return out;
}

inline mode_t FileMode(const std::string& path) {
  struct stat st = {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

inline EvpPkeyPtr NewTestKey() { return EvpPkeyPtr(EVP_EC_gen("P-256")); }

// What a test certificate is. Extensions are written in OpenSSL's config
// syntax ("critical,CA:TRUE"); an empty string leaves the extension out.
struct CertSpec {
  std::string common_name = "test";
  absl::Time not_before;
  absl::Time not_after;
  std::string basic_constraints;
  std::string key_usage;
  std::string subject_alt_name;
  std::string extended_key_usage;
  bool subject_key_id = false;
  long serial = 1;
};

// A certificate for `key` with `spec`, signed by `issuer_key` under
// `issuer` (self-signed when issuer is null).
inline X509Ptr MakeCert(const CertSpec& spec, EVP_PKEY* key,
                        X509* issuer = nullptr,
                        EVP_PKEY* issuer_key = nullptr) {
  X509Ptr cert(X509_new());
  X509* x = cert.get();
  X509_set_version(x, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x), spec.serial);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_NID(
      name, NID_commonName, MBSTRING_UTF8,
      reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1, -1,
      0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  ASN1_TIME_set(X509_getm_notBefore(x), absl::ToTimeT(spec.not_before));
  ASN1_TIME_set(X509_getm_notAfter(x), absl::ToTimeT(spec.not_after));
  X509_set_pubkey(x, key);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : x, x, nullptr, nullptr, 0);
  const auto add = [&](int nid, const std::string& value) {
    if (value.empty()) return;
    X509_EXTENSION* ext =
        X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    EXPECT_NE(ext, nullptr) << OBJ_nid2sn(nid) << " " << value;
    if (ext == nullptr) return;
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  };
  add(NID_basic_constraints, spec.basic_constraints);
  add(NID_key_usage, spec.key_usage);
  add(NID_subject_alt_name, spec.subject_alt_name);
  add(NID_ext_key_usage, spec.extended_key_usage);
  if (spec.subject_key_id) add(NID_subject_key_identifier, "hash");
  if (issuer != nullptr) add(NID_authority_key_identifier, "keyid:always");
  EXPECT_GT(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()), 0);
  return cert;
}

inline std::string BioString(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, size) : std::string();
}
inline std::string PemOf(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_X509(bio.get(), cert), 1);
  return BioString(bio.get());
}
inline std::string PemOf(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0,
                                     nullptr, nullptr),
            1);
  return BioString(bio.get());
}

// A CA made by the test (not by the code under test), written to
// dir/ca.pem (0644) and dir/ca-key.pem (0600).
struct TestCa {
  EvpPkeyPtr key;
  X509Ptr cert;
  std::string cert_path;
  std::string key_path;
};
inline TestCa MakeTestCa(const TempDir& dir, absl::Time now,
                         absl::Duration lifetime = absl::Hours(24 * 365),
                         const std::string& name = "ca") {
  TestCa ca;
  ca.key = NewTestKey();
  ca.cert = MakeCert(CertSpec{.common_name = "test CA " + name,
                              .not_before = now - absl::Hours(24),
                              .not_after = now + lifetime,
                              .basic_constraints = "critical,CA:TRUE",
                              .key_usage = "critical,keyCertSign,cRLSign",
                              .subject_key_id = true},
                     ca.key.get());
  ca.cert_path = dir.File(name + ".pem");
  ca.key_path = dir.File(name + "-key.pem");
  WriteFileWithMode(ca.cert_path, PemOf(ca.cert.get()), 0644);
  WriteFileWithMode(ca.key_path, PemOf(ca.key.get()), 0600);
  return ca;
}

// OpenSSL's verdict on `leaf` against a store holding only `ca`, at time
// `at`, for `purpose`; with `host` / `ip`, also the name check.
inline int VerifyLeaf(X509* leaf, X509* ca, absl::Time at,
                      int purpose = X509_PURPOSE_SSL_SERVER,
                      const char* host = nullptr, const char* ip = nullptr) {
  X509StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca);
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(at));
  X509_VERIFY_PARAM_set_purpose(param, purpose);
  if (host != nullptr) X509_VERIFY_PARAM_set1_host(param, host, 0);
  if (ip != nullptr) X509_VERIFY_PARAM_set1_ip_asc(param, ip);
  const int ok = X509_verify_cert(ctx.get());
  const int error = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  return ok == 1 ? X509_V_OK : (error == X509_V_OK ? -1 : error);
}

// An ASN1_TIME as absl::Time, by OpenSSL's own arithmetic (seconds since
// the epoch, ASN1_TIME_diff).
inline absl::Time AsTime(const ASN1_TIME* t) {
  std::unique_ptr<ASN1_TIME, OpenSslDeleter<ASN1_TIME_free>> epoch(
      ASN1_TIME_set(nullptr, 0));
  int days = 0;
  int seconds = 0;
  EXPECT_EQ(ASN1_TIME_diff(&days, &seconds, epoch.get(), t), 1);
  return absl::FromUnixSeconds(int64_t{days} * 86400 + seconds);
}

// The outcome of an in-memory handshake.
struct HandshakeResult {
  bool ok = false;
  int client_error = SSL_ERROR_NONE;  // SSL_get_error of the last step
  int server_error = SSL_ERROR_NONE;
  // ERR_GET_REASON of the error that stopped a side (0: none), e.g.
  // SSL_R_TLSV1_UNRECOGNIZED_NAME for a client that got that alert.
  int client_reason = 0;
  int server_reason = 0;
};

// Connects `client` and `server` with a BIO pair (each SSL owns its end)
// and steps both handshakes until both finish or either fails.
inline HandshakeResult Handshake(SSL* client, SSL* server) {
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  EXPECT_EQ(BIO_new_bio_pair(&client_bio, 0, &server_bio, 0), 1);
  SSL_set_bio(client, client_bio, client_bio);
  SSL_set_bio(server, server_bio, server_bio);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  HandshakeResult result;
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 50 && !(client_done && server_done); ++round) {
    if (!client_done) {
      const int rc = SSL_do_handshake(client);
      client_done = rc == 1;
      result.client_error =
          rc == 1 ? SSL_ERROR_NONE : SSL_get_error(client, rc);
      if (result.client_error != SSL_ERROR_NONE &&
          result.client_error != SSL_ERROR_WANT_READ &&
          result.client_error != SSL_ERROR_WANT_WRITE) {
        result.client_reason = ERR_GET_REASON(ERR_peek_last_error());
        ERR_clear_error();
        // Let the server read the alert the client sent.
        const int src = SSL_do_handshake(server);
        result.server_error = SSL_get_error(server, src);
        result.server_reason = ERR_GET_REASON(ERR_peek_last_error());
        break;
      }
    }
    if (!server_done) {
      const int rc = SSL_do_handshake(server);
      server_done = rc == 1;
      result.server_error =
          rc == 1 ? SSL_ERROR_NONE : SSL_get_error(server, rc);
      if (result.server_error != SSL_ERROR_NONE &&
          result.server_error != SSL_ERROR_WANT_READ &&
          result.server_error != SSL_ERROR_WANT_WRITE) {
        result.server_reason = ERR_GET_REASON(ERR_peek_last_error());
        ERR_clear_error();
        // Let the client read the alert the server sent.
        const int crc = SSL_do_handshake(client);
        result.client_error = SSL_get_error(client, crc);
        result.client_reason = ERR_GET_REASON(ERR_peek_last_error());
        break;
      }
    }
  }
  ERR_clear_error();
  result.ok = client_done && server_done;
  return result;
}

// Sends one byte each way, so that the client reads what the server sent
// after the handshake (TLS 1.3 session tickets). True when both arrived.
inline bool ExchangeByte(SSL* client, SSL* server) {
  char c = 'x';
  if (SSL_write(server, &c, 1) != 1) return false;
  if (SSL_write(client, &c, 1) != 1) return false;
  char in = 0;
  if (SSL_read(client, &in, 1) != 1 || in != 'x') return false;
  in = 0;
  if (SSL_read(server, &in, 1) != 1 || in != 'x') return false;
  return true;
}

// The subjectAltName entries of `cert` as "DNS:name" / "IP:bytes(hex)".
inline std::vector<std::string> SanEntries(X509* cert) {
  std::vector<std::string> out;
  GENERAL_NAMES* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    int type = 0;
    void* value = GENERAL_NAME_get0_value(name, &type);
    const auto* str = static_cast<const ASN1_STRING*>(value);
    std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(str)),
                     ASN1_STRING_length(str));
    if (type == GEN_DNS) {
      out.push_back("DNS:" + text);
    } else if (type == GEN_IPADD) {
      std::string hex;
      for (unsigned char b : text) {
        static const char digits[] = "0123456789abcdef";
        hex += digits[b >> 4];
        hex += digits[b & 15];
      }
      out.push_back("IP:" + hex);
    } else {
      out.push_back("other");
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

}  // namespace sluice::test

#endif  // SLUICE_TESTS_PROXY_TLS_TLS_TEST_UTIL_H_
