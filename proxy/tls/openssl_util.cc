#include "proxy/tls/openssl_util.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <ctime>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sluice {

std::shared_ptr<SSL_CTX> ShareSslCtx(SslCtxPtr ctx) {
  return std::shared_ptr<SSL_CTX>(ctx.release(), SSL_CTX_free);
}

std::shared_ptr<X509> ShareX509(X509Ptr cert) {
  return std::shared_ptr<X509>(cert.release(), X509_free);
}

std::string DrainOpenSslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  if (out.empty()) out = "no OpenSSL error";
  return out;
}

absl::StatusOr<absl::Time> Asn1TimeToAbsl(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("malformed certificate time");
  }
  return absl::FromCivil(
      absl::CivilSecond(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                        tm.tm_hour, tm.tm_min, tm.tm_sec),
      absl::UTCTimeZone());
}

absl::Status SetAsn1Time(ASN1_TIME* t, absl::Time when) {
  const time_t seconds = absl::ToTimeT(when);
  if (ASN1_TIME_set(t, seconds) == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot set certificate time: ", DrainOpenSslErrors()));
  }
  return absl::OkStatus();
}

namespace {

absl::StatusOr<std::string> BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  if (size <= 0 || data == nullptr) {
    return absl::InternalError("empty PEM output");
  }
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace

absl::StatusOr<std::string> CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return absl::InternalError(
        absl::StrCat("cannot write certificate PEM: ", DrainOpenSslErrors()));
  }
  return BioText(bio.get());
}

absl::StatusOr<std::string> KeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0,
                                       nullptr, nullptr) != 1) {
    return absl::InternalError(
        absl::StrCat("cannot write key PEM: ", DrainOpenSslErrors()));
  }
  return BioText(bio.get());
}

}  // namespace sluice
