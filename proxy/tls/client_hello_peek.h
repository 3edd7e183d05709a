#ifndef SLUICE_PROXY_TLS_CLIENT_HELLO_PEEK_H_
#define SLUICE_PROXY_TLS_CLIENT_HELLO_PEEK_H_

#include <cstddef>
#include <string_view>

namespace sluice {

// What a client started to send inside a CONNECT tunnel.
enum class PeekResult {
  kNeedMore,  // too few bytes to tell; read more and ask again
  kTls,       // a TLS handshake record carrying a ClientHello
  kHttp,      // an HTTP/1.x request line (a method token and a space)
  kUnknown,   // anything else
};

// The longest method token taken for HTTP ("UPDATEREDIRECTREF" is 17).
inline constexpr size_t kMaxPeekMethodBytes = 24;
// Bytes that always decide: the 5-byte record header plus the handshake
// type for TLS, or a method of the longest length plus a space for HTTP.
inline constexpr size_t kMaxPeekBytes = kMaxPeekMethodBytes + 1;

// Classifies the first bytes a client sent after CONNECT, reading no
// further than it must:
//   kTls: content type 22 (handshake), major version 3, minor version
//     0..4, a record length of 4..16384 (2^14, the most a plaintext
//     record carries), and handshake type 1 (ClientHello) in byte 5.
//   kHttp: 1..kMaxPeekMethodBytes bytes of A-Z, '-' or '_' starting with a
//     letter, then a space ("GET ", "POST ", "M-SEARCH "). Upper case
//     only: every registered method is, and a lower-case line is more
//     likely another protocol.
//   kNeedMore: every byte so far fits one of the two and more are needed
//     (never for more than kMaxPeekBytes bytes).
// Once a prefix gives kTls, kHttp or kUnknown, every longer input that
// starts with it gives the same answer. Pure and thread-safe.
PeekResult PeekClientBytes(std::string_view bytes);

// "need_more", "tls", "http", "unknown".
std::string_view PeekResultName(PeekResult result);

}  // namespace sluice

#endif  // SLUICE_PROXY_TLS_CLIENT_HELLO_PEEK_H_
