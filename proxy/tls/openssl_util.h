#ifndef SLUICE_PROXY_TLS_OPENSSL_UTIL_H_
#define SLUICE_PROXY_TLS_OPENSSL_UTIL_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sluice {

// Owning pointers for the OpenSSL objects this room handles. Each frees
// (drops one reference of) its object with the matching OpenSSL function.
template <auto Free>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO_free_all>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509_free>>;
using X509ExtensionPtr =
    std::unique_ptr<X509_EXTENSION, OpenSslDeleter<X509_EXTENSION_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, OpenSslDeleter<X509_NAME_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, OpenSslDeleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OpenSslDeleter<SSL_free>>;

// Shared owners of one reference each (SSL_CTX, X509, SSL_SESSION are
// reference counted; the shared_ptr's deleter drops the reference it owns).
std::shared_ptr<SSL_CTX> ShareSslCtx(SslCtxPtr ctx);
std::shared_ptr<X509> ShareX509(X509Ptr cert);

// Empties this thread's OpenSSL error queue into one line ("error:...;
// error:..."), or "no OpenSSL error" when it was empty. Call it right after
// the failing OpenSSL call: the queue is per thread.
std::string DrainOpenSslErrors();

// An ASN1_TIME (UTCTime or GeneralizedTime) as absl::Time; an error for a
// malformed time.
absl::StatusOr<absl::Time> Asn1TimeToAbsl(const ASN1_TIME* t);

// Sets `t` to `when`, truncated to whole seconds (what X.509 carries).
absl::Status SetAsn1Time(ASN1_TIME* t, absl::Time when);

// PEM text of a certificate / of a private key (unencrypted PKCS#8).
absl::StatusOr<std::string> CertToPem(X509* cert);
absl::StatusOr<std::string> KeyToPem(EVP_PKEY* key);

}  // namespace sluice

#endif  // SLUICE_PROXY_TLS_OPENSSL_UTIL_H_
