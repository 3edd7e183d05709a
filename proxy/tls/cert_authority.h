#ifndef SLUICE_PROXY_TLS_CERT_AUTHORITY_H_
#define SLUICE_PROXY_TLS_CERT_AUTHORITY_H_

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "proxy/tls/openssl_util.h"

namespace sluice {

struct CertAuthorityOptions {
  // How long a minted leaf is valid after it is minted (never past the
  // CA's own notAfter).
  absl::Duration leaf_validity = absl::Hours(24);
};

// The local certificate authority sluice mints leaf certificates with, for
// the HTTPS hosts it intercepts (docs/https.md).
//
// Time: every validity check and every leaf's validity comes from
// clock->WallNow(); the clock must outlive the authority.
// Thread-safety: after Load, the authority is immutable; Mint may be called
// from any number of threads at once.
class CertAuthority {
 public:
  using Options = CertAuthorityOptions;

  // A minted leaf certificate and the end of its validity.
  struct Leaf {
    std::shared_ptr<X509> cert;
    absl::Time not_after;
  };

  // Leaves are valid from this long before they are minted, for clients
  // whose clocks run behind.
  static constexpr absl::Duration kLeafBackdate = absl::Hours(1);

  // Loads the CA certificate and its private key from PEM files. Refuses,
  // with a status that names the file and the reason:
  //   - a key file readable by group or others (PermissionDenied; the mode
  //     is read with fstat on the opened file);
  //   - an unreadable or unparsable file, an encrypted key;
  //   - a key that does not match the certificate;
  //   - a certificate that is not a CA (basicConstraints CA:TRUE is
  //     required, and keyUsage keyCertSign when keyUsage is present);
  //   - a certificate that is expired or not yet valid at clock->WallNow().
  // Generates the one P-256 key every leaf of this authority carries.
  static absl::StatusOr<std::unique_ptr<CertAuthority>> Load(
      const std::string& cert_path, const std::string& key_path,
      const Clock* clock, Options options = {});

  // Mints a leaf for `name`: a DNS name or an IP literal, checked and
  // normalised with NormalizeServerName (InvalidArgument otherwise).
  // X.509 v3; subject CN = the name (first 64 bytes); subjectAltName = the
  // name (dNSName, or iPAddress for an IP literal); extendedKeyUsage
  // serverAuth; keyUsage digitalSignature (critical); basicConstraints
  // CA:FALSE (critical); authorityKeyIdentifier = the CA's key id; no
  // subjectKeyIdentifier; a random positive 128-bit serial; valid from
  // now - kLeafBackdate to min(now + leaf_validity, the CA's notAfter);
  // signed with SHA-256 (none for an Ed25519/Ed448 CA key, which has its
  // own hash). Thread-safe.
  absl::StatusOr<Leaf> Mint(std::string_view name) const;

  // Writes a new CA to `dir`/ca.pem and `dir`/ca-key.pem: a P-256 key;
  // subject and issuer CN "sluice local CA <YYYY-MM-DD>"; basicConstraints
  // CA:TRUE, pathlen:0 (critical); keyUsage keyCertSign, cRLSign
  // (critical); subjectKeyIdentifier; valid from now - 1 hour for 3650
  // days. The key file is created with mode 0600 (O_CREAT|O_EXCL), the
  // certificate with 0644; neither may exist already (AlreadyExists). The
  // directory must exist.
  static absl::Status Init(const std::string& dir, const Clock* clock);

  // Writes `out_path` (mode 0644, replaced atomically): the system's trust
  // roots (`system_roots_path`, or OpenSSL's default certificate file,
  // X509_get_default_cert_file(), when empty) followed by the CA
  // certificate at `ca_cert_path`, for clients whose trust setting replaces
  // the system store (SSL_CERT_FILE, Java truststores). The CA file must
  // hold one PEM certificate.
  static absl::Status WriteBundle(const std::string& ca_cert_path,
                                  const std::string& out_path,
                                  const std::string& system_roots_path = "");

  // The CA certificate, its notAfter, and the key every leaf carries. The
  // pointers live as long as the authority.
  X509* ca_cert() const { return ca_cert_.get(); }
  absl::Time ca_not_after() const { return ca_not_after_; }
  EVP_PKEY* leaf_key() const { return leaf_key_.get(); }

 private:
  CertAuthority(const Clock* clock, Options options);

  const Clock* const clock_;
  const Options options_;
  X509Ptr ca_cert_;
  EvpPkeyPtr ca_key_;
  absl::Time ca_not_after_;
  EvpPkeyPtr leaf_key_;
  // The extensions every leaf shares (basicConstraints, keyUsage,
  // extendedKeyUsage, authorityKeyIdentifier), encoded once at load.
  X509ExtensionPtr basic_constraints_;
  X509ExtensionPtr key_usage_;
  X509ExtensionPtr ext_key_usage_;
  X509ExtensionPtr authority_key_id_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_TLS_CERT_AUTHORITY_H_
