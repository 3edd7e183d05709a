#ifndef SLUICE_COMMON_PROTOCOL_FAST_PATH_CODEC_H_
#define SLUICE_COMMON_PROTOCOL_FAST_PATH_CODEC_H_

// Sealing and opening the UDP datagrams of the pause fast path
// (docs/pause.md, "Fast path"). A datagram is a FastPathDatagram whose
// `mac` is HMAC-SHA256(key, "sluice-fp/1" | direction | token | seq | body),
// with token and seq as 8-byte big-endian integers. The direction tag stops
// a datagram from being reflected back to its sender; the per-stream key
// and token stop it from being replayed on another stream; the receiver's
// ReplayWindow over `seq` stops a replay on the same one.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/v1/quota.pb.h"

namespace sluice {

// Datagrams longer than this are neither sent nor read.
inline constexpr size_t kFastPathMaxDatagram = 1200;
inline constexpr size_t kFastPathKeyBytes = 32;

enum class FastPathDirection : uint8_t { kUp = 1, kDown = 2 };

// The outer fields of a datagram, read before the key is known.
struct FastPathEnvelope {
  uint64_t token = 0;
  uint64_t seq = 0;
  std::string body;
  std::string mac;
};

enum class FastPathOpen { kOk, kMalformed, kBadMac };

// kFastPathKeyBytes from OpenSSL's CSPRNG.
std::string NewFastPathKey();

// The datagram carrying `body`; empty if it would exceed
// kFastPathMaxDatagram or `key` is empty.
std::string SealFastPath(std::string_view key, FastPathDirection direction,
                         uint64_t token, uint64_t seq,
                         const sluice::v1::FastPathBody& body);

// Parses the envelope; nullopt for anything that is not one (too long, not
// a FastPathDatagram, token or seq 0, a MAC of the wrong size).
std::optional<FastPathEnvelope> ParseFastPath(std::string_view datagram);

// Checks the MAC in constant time, then parses the body into `*body`.
// kBadMac also covers a datagram sealed for the other direction.
FastPathOpen OpenFastPath(std::string_view key, FastPathDirection direction,
                          const FastPathEnvelope& envelope,
                          sluice::v1::FastPathBody* body);

}  // namespace sluice

#endif  // SLUICE_COMMON_PROTOCOL_FAST_PATH_CODEC_H_
