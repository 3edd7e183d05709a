#include "proxy/tls/cert_authority.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proxy/tls/pem_file.h"
#include "proxy/tls/server_name.h"

namespace sluice {
namespace {

using BasicConstraintsPtr =
    std::unique_ptr<BASIC_CONSTRAINTS, OpenSslDeleter<BASIC_CONSTRAINTS_free>>;
using BitStringPtr =
    std::unique_ptr<ASN1_BIT_STRING, OpenSslDeleter<ASN1_BIT_STRING_free>>;
using OctetStringPtr =
    std::unique_ptr<ASN1_OCTET_STRING, OpenSslDeleter<ASN1_OCTET_STRING_free>>;
using AuthorityKeyIdPtr =
    std::unique_ptr<AUTHORITY_KEYID, OpenSslDeleter<AUTHORITY_KEYID_free>>;
using GeneralNamesPtr =
    std::unique_ptr<GENERAL_NAMES, OpenSslDeleter<GENERAL_NAMES_free>>;
using GeneralNamePtr =
    std::unique_ptr<GENERAL_NAME, OpenSslDeleter<GENERAL_NAME_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>>;
void FreeObjectStack(STACK_OF(ASN1_OBJECT) * s) {
  sk_ASN1_OBJECT_pop_free(s, ASN1_OBJECT_free);
}
using ObjectStackPtr =
    std::unique_ptr<STACK_OF(ASN1_OBJECT), OpenSslDeleter<FreeObjectStack>>;
void FreeX509InfoStack(STACK_OF(X509_INFO) * s) {
  sk_X509_INFO_pop_free(s, X509_INFO_free);
}
using X509InfoStackPtr =
    std::unique_ptr<STACK_OF(X509_INFO), OpenSslDeleter<FreeX509InfoStack>>;

constexpr int kMaxCommonNameBytes = 64;  // ub-common-name, RFC 5280
constexpr absl::Duration kCaBackdate = absl::Hours(1);
constexpr absl::Duration kCaValidity = absl::Hours(24 * 3650);

absl::Status SslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", DrainOpenSslErrors()));
}

absl::StatusOr<EvpPkeyPtr> NewP256Key() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return SslError("cannot generate a P-256 key");
  return key;
}

// A random positive serial of 128 bits (RFC 5280 allows up to 20 octets).
absl::Status SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  BignumPtr bn;
  do {
    if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
      return SslError("RAND_bytes");
    }
    bn.reset(BN_bin2bn(bytes, sizeof(bytes), nullptr));
    if (!bn) return SslError("BN_bin2bn");
  } while (BN_is_zero(bn.get()));
  if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return SslError("cannot set the serial number");
  }
  return absl::OkStatus();
}

absl::StatusOr<X509ExtensionPtr> EncodeExtension(int nid, bool critical,
                                                 void* value) {
  X509ExtensionPtr ext(X509V3_EXT_i2d(nid, critical ? 1 : 0, value));
  if (!ext) return SslError(absl::StrCat("cannot encode ", OBJ_nid2sn(nid)));
  return ext;
}

absl::Status AddExtension(X509* cert, int nid, bool critical, void* value) {
  if (X509_add1_ext_i2d(cert, nid, value, critical ? 1 : 0,
                        X509V3_ADD_DEFAULT) != 1) {
    return SslError(absl::StrCat("cannot add ", OBJ_nid2sn(nid)));
  }
  return absl::OkStatus();
}

absl::StatusOr<BitStringPtr> KeyUsageBits(std::initializer_list<int> bits) {
  BitStringPtr ku(ASN1_BIT_STRING_new());
  if (!ku) return SslError("ASN1_BIT_STRING_new");
  for (int bit : bits) {
    if (ASN1_BIT_STRING_set_bit(ku.get(), bit, 1) != 1) {
      return SslError("ASN1_BIT_STRING_set_bit");
    }
  }
  return ku;
}

// The digest X509_sign needs for `key`: SHA-256, or none for the
// signature algorithms that fix their own (Ed25519, Ed448).
const EVP_MD* SigningDigest(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448")) {
    return nullptr;
  }
  return EVP_sha256();
}

// The subjectKeyIdentifier of `cert`, or the SHA-1 of its public key
// (RFC 5280 4.2.1.2 method 1) when it has none.
absl::StatusOr<OctetStringPtr> KeyIdOf(X509* cert) {
  if (const ASN1_OCTET_STRING* skid = X509_get0_subject_key_id(cert)) {
    OctetStringPtr copy(ASN1_OCTET_STRING_dup(skid));
    if (!copy) return SslError("ASN1_OCTET_STRING_dup");
    return copy;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  OctetStringPtr id(ASN1_OCTET_STRING_new());
  if (!id || X509_pubkey_digest(cert, EVP_sha1(), md, &len) != 1 ||
      ASN1_OCTET_STRING_set(id.get(), md, static_cast<int>(len)) != 1) {
    return SslError("cannot compute the key identifier");
  }
  return id;
}

absl::StatusOr<X509Ptr> ParseCertPem(const std::string& path,
                                     const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)
                   : nullptr);
  if (!cert) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no PEM certificate: ", DrainOpenSslErrors()));
  }
  return cert;
}

// A password callback that refuses: an encrypted key fails to load instead
// of OpenSSL prompting on the terminal.
int NoPassword(char*, int, int, void*) { return -1; }

absl::StatusOr<EvpPkeyPtr> ParseKeyPem(const std::string& path,
                                       const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EvpPkeyPtr key(
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr)
          : nullptr);
  if (!key) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": no unencrypted PEM private key (encrypted keys are not "
                     "supported): ",
                     DrainOpenSslErrors()));
  }
  return key;
}

std::string TimeText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

}  // namespace

CertAuthority::CertAuthority(const Clock* clock, Options options)
    : clock_(clock), options_(options) {}

absl::StatusOr<std::unique_ptr<CertAuthority>> CertAuthority::Load(
    const std::string& cert_path, const std::string& key_path,
    const Clock* clock, Options options) {
  absl::StatusOr<std::string> key_pem =
      ReadSmallFile(key_path, FileSecrecy::kSecret);
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<std::string> cert_pem =
      ReadSmallFile(cert_path, FileSecrecy::kPublic);
  if (!cert_pem.ok()) return cert_pem.status();

  absl::StatusOr<X509Ptr> cert = ParseCertPem(cert_path, *cert_pem);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<EvpPkeyPtr> key = ParseKeyPem(key_path, *key_pem);
  if (!key.ok()) return key.status();

  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        key_path, ": private key does not match the certificate in ",
        cert_path));
  }
  const uint32_t flags = X509_get_extension_flags(cert->get());
  if ((flags & EXFLAG_INVALID) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(cert_path, ": certificate has malformed extensions"));
  }
  if ((flags & EXFLAG_BCONS) == 0 || (flags & EXFLAG_CA) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        cert_path, ": not a CA certificate (needs basicConstraints CA:TRUE)"));
  }
  if ((flags & EXFLAG_KUSAGE) != 0 &&
      (X509_get_key_usage(cert->get()) & KU_KEY_CERT_SIGN) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        cert_path, ": not a CA certificate (keyUsage lacks keyCertSign)"));
  }
  absl::StatusOr<absl::Time> not_before =
      Asn1TimeToAbsl(X509_get0_notBefore(cert->get()));
  absl::StatusOr<absl::Time> not_after =
      Asn1TimeToAbsl(X509_get0_notAfter(cert->get()));
  if (!not_before.ok() || !not_after.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(cert_path, ": malformed validity dates"));
  }
  const absl::Time now = clock->WallNow();
  if (now >= *not_after) {
    return absl::FailedPreconditionError(absl::StrCat(
        cert_path, ": CA certificate expired at ", TimeText(*not_after)));
  }
  if (now < *not_before) {
    return absl::FailedPreconditionError(
        absl::StrCat(cert_path, ": CA certificate is not valid until ",
                     TimeText(*not_before)));
  }

  std::unique_ptr<CertAuthority> ca(new CertAuthority(clock, options));
  ca->ca_cert_ = *std::move(cert);
  ca->ca_key_ = *std::move(key);
  ca->ca_not_after_ = *not_after;
  absl::StatusOr<EvpPkeyPtr> leaf_key = NewP256Key();
  if (!leaf_key.ok()) return leaf_key.status();
  ca->leaf_key_ = *std::move(leaf_key);

  BasicConstraintsPtr bc(BASIC_CONSTRAINTS_new());
  if (!bc) return SslError("BASIC_CONSTRAINTS_new");
  bc->ca = 0;
  absl::StatusOr<BitStringPtr> ku = KeyUsageBits({0});  // digitalSignature
  if (!ku.ok()) return ku.status();
  ObjectStackPtr eku(sk_ASN1_OBJECT_new_null());
  if (!eku ||
      sk_ASN1_OBJECT_push(eku.get(), OBJ_nid2obj(NID_server_auth)) <= 0) {
    return SslError("extendedKeyUsage");
  }
  AuthorityKeyIdPtr akid(AUTHORITY_KEYID_new());
  if (!akid) return SslError("AUTHORITY_KEYID_new");
  absl::StatusOr<OctetStringPtr> key_id = KeyIdOf(ca->ca_cert_.get());
  if (!key_id.ok()) return key_id.status();
  akid->keyid = key_id->release();

  absl::StatusOr<X509ExtensionPtr> ext =
      EncodeExtension(NID_basic_constraints, true, bc.get());
  if (!ext.ok()) return ext.status();
  ca->basic_constraints_ = *std::move(ext);
  ext = EncodeExtension(NID_key_usage, true, ku->get());
  if (!ext.ok()) return ext.status();
  ca->key_usage_ = *std::move(ext);
  ext = EncodeExtension(NID_ext_key_usage, false, eku.get());
  if (!ext.ok()) return ext.status();
  ca->ext_key_usage_ = *std::move(ext);
  ext = EncodeExtension(NID_authority_key_identifier, false, akid.get());
  if (!ext.ok()) return ext.status();
  ca->authority_key_id_ = *std::move(ext);
  return ca;
}

absl::StatusOr<CertAuthority::Leaf> CertAuthority::Mint(
    std::string_view name) const {
  absl::StatusOr<ServerName> server_name = NormalizeServerName(name);
  if (!server_name.ok()) return server_name.status();
  const std::string& text = server_name->text;

  X509Ptr cert(X509_new());
  if (!cert) return SslError("X509_new");
  X509* x = cert.get();
  if (X509_set_version(x, X509_VERSION_3) != 1) return SslError("version");
  if (absl::Status s = SetRandomSerial(x); !s.ok()) return s;
  if (X509_set_issuer_name(x, X509_get_subject_name(ca_cert_.get())) != 1) {
    return SslError("issuer name");
  }
  const int cn_len =
      std::min(static_cast<int>(text.size()), kMaxCommonNameBytes);
  if (X509_NAME_add_entry_by_NID(
          X509_get_subject_name(x), NID_commonName, MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(text.data()), cn_len, -1,
          0) != 1) {
    return SslError("subject name");
  }

  const absl::Time now = clock_->WallNow();
  const absl::Time not_after =
      std::min(now + options_.leaf_validity, ca_not_after_);
  if (absl::Status s = SetAsn1Time(X509_getm_notBefore(x), now - kLeafBackdate);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = SetAsn1Time(X509_getm_notAfter(x), not_after); !s.ok()) {
    return s;
  }
  if (X509_set_pubkey(x, leaf_key_.get()) != 1) return SslError("public key");

  for (X509_EXTENSION* ext : {basic_constraints_.get(), key_usage_.get(),
                              ext_key_usage_.get(), authority_key_id_.get()}) {
    if (X509_add_ext(x, ext, -1) != 1) return SslError("X509_add_ext");
  }

  GeneralNamePtr general_name(GENERAL_NAME_new());
  if (!general_name) return SslError("GENERAL_NAME_new");
  if (server_name->is_ip) {
    ASN1_OCTET_STRING* ip = a2i_IPADDRESS(text.c_str());
    if (ip == nullptr) return SslError("a2i_IPADDRESS");
    GENERAL_NAME_set0_value(general_name.get(), GEN_IPADD, ip);
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (dns == nullptr ||
        ASN1_STRING_set(dns, text.data(), static_cast<int>(text.size())) != 1) {
      ASN1_IA5STRING_free(dns);
      return SslError("dNSName");
    }
    GENERAL_NAME_set0_value(general_name.get(), GEN_DNS, dns);
  }
  GeneralNamesPtr san(sk_GENERAL_NAME_new_null());
  if (!san || sk_GENERAL_NAME_push(san.get(), general_name.get()) <= 0) {
    return SslError("subjectAltName");
  }
  general_name.release();  // owned by `san` now
  if (absl::Status s = AddExtension(x, NID_subject_alt_name, false, san.get());
      !s.ok()) {
    return s;
  }

  if (X509_sign(x, ca_key_.get(), SigningDigest(ca_key_.get())) <= 0) {
    return SslError("cannot sign the leaf certificate");
  }
  return Leaf{.cert = ShareX509(std::move(cert)), .not_after = not_after};
}

absl::Status CertAuthority::Init(const std::string& dir, const Clock* clock) {
  absl::StatusOr<EvpPkeyPtr> key = NewP256Key();
  if (!key.ok()) return key.status();
  X509Ptr cert(X509_new());
  if (!cert) return SslError("X509_new");
  X509* x = cert.get();
  if (X509_set_version(x, X509_VERSION_3) != 1) return SslError("version");
  if (absl::Status s = SetRandomSerial(x); !s.ok()) return s;

  const absl::Time now = clock->WallNow();
  const std::string cn =
      absl::StrCat("sluice local CA ",
                   absl::FormatTime("%Y-%m-%d", now, absl::UTCTimeZone()));
  X509NamePtr name(X509_NAME_new());
  if (!name ||
      X509_NAME_add_entry_by_NID(
          name.get(), NID_commonName, MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(cn.data()),
          static_cast<int>(cn.size()), -1, 0) != 1 ||
      X509_set_subject_name(x, name.get()) != 1 ||
      X509_set_issuer_name(x, name.get()) != 1) {
    return SslError("CA name");
  }
  if (absl::Status s = SetAsn1Time(X509_getm_notBefore(x), now - kCaBackdate);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = SetAsn1Time(X509_getm_notAfter(x), now + kCaValidity);
      !s.ok()) {
    return s;
  }
  if (X509_set_pubkey(x, key->get()) != 1) return SslError("public key");

  BasicConstraintsPtr bc(BASIC_CONSTRAINTS_new());
  if (!bc) return SslError("BASIC_CONSTRAINTS_new");
  bc->ca = 1;
  // pathlen:0: this CA signs leaves only, never another CA.
  bc->pathlen = ASN1_INTEGER_new();
  if (bc->pathlen == nullptr || ASN1_INTEGER_set(bc->pathlen, 0) != 1) {
    return SslError("pathlen");
  }
  if (absl::Status s = AddExtension(x, NID_basic_constraints, true, bc.get());
      !s.ok()) {
    return s;
  }
  absl::StatusOr<BitStringPtr> ku =
      KeyUsageBits({5, 6});  // keyCertSign, cRLSign
  if (!ku.ok()) return ku.status();
  if (absl::Status s = AddExtension(x, NID_key_usage, true, ku->get());
      !s.ok()) {
    return s;
  }
  absl::StatusOr<OctetStringPtr> ski = KeyIdOf(x);  // no SKI yet: key hash
  if (!ski.ok()) return ski.status();
  if (absl::Status s =
          AddExtension(x, NID_subject_key_identifier, false, ski->get());
      !s.ok()) {
    return s;
  }
  if (X509_sign(x, key->get(), EVP_sha256()) <= 0) {
    return SslError("cannot sign the CA certificate");
  }

  absl::StatusOr<std::string> key_pem = KeyToPem(key->get());
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<std::string> cert_pem = CertToPem(x);
  if (!cert_pem.ok()) return cert_pem.status();
  const std::string key_path = dir + "/ca-key.pem";
  const std::string cert_path = dir + "/ca.pem";
  if (absl::Status s = WriteNewFile(key_path, *key_pem, 0600); !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteNewFile(cert_path, *cert_pem, 0644); !s.ok()) {
    ::unlink(key_path.c_str());  // no key without its certificate
    return s;
  }
  return absl::OkStatus();
}

absl::Status CertAuthority::WriteBundle(const std::string& ca_cert_path,
                                        const std::string& out_path,
                                        const std::string& system_roots_path) {
  const std::string roots_path = system_roots_path.empty()
                                     ? X509_get_default_cert_file()
                                     : system_roots_path;
  absl::StatusOr<std::string> roots =
      ReadSmallFile(roots_path, FileSecrecy::kPublic, 64 << 20);
  if (!roots.ok()) return roots.status();
  // The roots are copied as they are, but only after OpenSSL has read at
  // least one certificate from them: a bundle holding the sluice CA alone
  // would break every other HTTPS connection of its clients.
  BioPtr bio(BIO_new_mem_buf(roots->data(), static_cast<int>(roots->size())));
  X509InfoStackPtr infos(
      bio ? PEM_X509_INFO_read_bio(bio.get(), nullptr, nullptr, nullptr)
          : nullptr);
  int root_count = 0;
  for (int i = 0; infos && i < sk_X509_INFO_num(infos.get()); ++i) {
    if (sk_X509_INFO_value(infos.get(), i)->x509 != nullptr) ++root_count;
  }
  if (root_count == 0) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(roots_path, ": no PEM certificates (system roots)"));
  }

  absl::StatusOr<std::string> ca_text =
      ReadSmallFile(ca_cert_path, FileSecrecy::kPublic);
  if (!ca_text.ok()) return ca_text.status();
  absl::StatusOr<X509Ptr> ca = ParseCertPem(ca_cert_path, *ca_text);
  if (!ca.ok()) return ca.status();
  absl::StatusOr<std::string> ca_pem = CertToPem(ca->get());
  if (!ca_pem.ok()) return ca_pem.status();

  std::string bundle = *std::move(roots);
  if (!bundle.empty() && bundle.back() != '\n') bundle += '\n';
  bundle += *ca_pem;
  return ReplaceFile(out_path, bundle, 0644);
}

}  // namespace sluice
