#include "common/protocol/fast_path_codec.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>

namespace sluice {

namespace {

constexpr std::string_view kTag = "sluice-fp/1";
constexpr size_t kMacBytes = 32;

void AppendBigEndian(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

// HMAC-SHA256 over the tagged fields; empty on an OpenSSL failure.
std::string Mac(std::string_view key, FastPathDirection direction,
                uint64_t token, uint64_t seq, std::string_view body) {
  std::string input;
  input.reserve(kTag.size() + 17 + body.size());
  input.append(kTag);
  input.push_back(static_cast<char>(direction));
  AppendBigEndian(&input, token);
  AppendBigEndian(&input, seq);
  input.append(body);
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(input.data()), input.size(),
           md.data(), &len) == nullptr ||
      len != kMacBytes) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(md.data()), len);
}

}  // namespace

std::string NewFastPathKey() {
  std::string key(kFastPathKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()),
                 static_cast<int>(key.size())) != 1) {
    return {};
  }
  return key;
}

std::string SealFastPath(std::string_view key, FastPathDirection direction,
                         uint64_t token, uint64_t seq,
                         const sluice::v1::FastPathBody& body) {
  if (key.empty()) return {};
  sluice::v1::FastPathDatagram d;
  d.set_token(token);
  d.set_seq(seq);
  if (!body.SerializeToString(d.mutable_body())) return {};
  std::string mac = Mac(key, direction, token, seq, d.body());
  if (mac.empty()) return {};
  d.set_mac(std::move(mac));
  std::string out;
  if (!d.SerializeToString(&out) || out.size() > kFastPathMaxDatagram) {
    return {};
  }
  return out;
}

std::optional<FastPathEnvelope> ParseFastPath(std::string_view datagram) {
  if (datagram.empty() || datagram.size() > kFastPathMaxDatagram) {
    return std::nullopt;
  }
  sluice::v1::FastPathDatagram d;
  if (!d.ParseFromArray(datagram.data(), static_cast<int>(datagram.size())) ||
      d.token() == 0 || d.seq() == 0 || d.mac().size() != kMacBytes) {
    return std::nullopt;
  }
  FastPathEnvelope e;
  e.token = d.token();
  e.seq = d.seq();
  e.body = std::move(*d.mutable_body());
  e.mac = std::move(*d.mutable_mac());
  return e;
}

FastPathOpen OpenFastPath(std::string_view key, FastPathDirection direction,
                          const FastPathEnvelope& envelope,
                          sluice::v1::FastPathBody* body) {
  if (key.empty()) return FastPathOpen::kBadMac;
  const std::string want =
      Mac(key, direction, envelope.token, envelope.seq, envelope.body);
  if (want.size() != kMacBytes || envelope.mac.size() != kMacBytes ||
      CRYPTO_memcmp(want.data(), envelope.mac.data(), kMacBytes) != 0) {
    return FastPathOpen::kBadMac;
  }
  if (!body->ParseFromString(envelope.body) ||
      body->msg_case() == sluice::v1::FastPathBody::MSG_NOT_SET) {
    return FastPathOpen::kMalformed;
  }
  return FastPathOpen::kOk;
}

}  // namespace sluice
