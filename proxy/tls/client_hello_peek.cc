#include "proxy/tls/client_hello_peek.h"

#include <cstdint>

namespace sluice {
namespace {

constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHello = 1;
constexpr size_t kRecordHeaderBytes = 5;
constexpr size_t kMinRecordLength = 4;  // a handshake message header
constexpr size_t kMaxRecordLength = 1 << 14;

PeekResult PeekTls(std::string_view bytes) {
  const auto at = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  // bytes[0] is the content type, already checked.
  if (bytes.size() < 2) return PeekResult::kNeedMore;
  if (at(1) != 3) return PeekResult::kUnknown;
  if (bytes.size() < 3) return PeekResult::kNeedMore;
  if (at(2) > 4) return PeekResult::kUnknown;
  if (bytes.size() < 4) return PeekResult::kNeedMore;
  // The length's high byte alone already rules out lengths over 2^14.
  if ((static_cast<size_t>(at(3)) << 8) > kMaxRecordLength) {
    return PeekResult::kUnknown;
  }
  if (bytes.size() < kRecordHeaderBytes) return PeekResult::kNeedMore;
  const size_t length = (static_cast<size_t>(at(3)) << 8) | at(4);
  if (length < kMinRecordLength || length > kMaxRecordLength) {
    return PeekResult::kUnknown;
  }
  if (bytes.size() < kRecordHeaderBytes + 1) return PeekResult::kNeedMore;
  return at(kRecordHeaderBytes) == kClientHello ? PeekResult::kTls
                                                : PeekResult::kUnknown;
}

bool IsMethodByte(char c, bool first) {
  if (c >= 'A' && c <= 'Z') return true;
  return !first && (c == '-' || c == '_');
}

PeekResult PeekHttp(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == ' ' && i > 0) return PeekResult::kHttp;
    if (i == kMaxPeekMethodBytes || !IsMethodByte(bytes[i], i == 0)) {
      return PeekResult::kUnknown;
    }
  }
  return PeekResult::kNeedMore;
}

}  // namespace

PeekResult PeekClientBytes(std::string_view bytes) {
  if (bytes.empty()) return PeekResult::kNeedMore;
  if (static_cast<uint8_t>(bytes[0]) == kHandshakeRecord) {
    return PeekTls(bytes);
  }
  return PeekHttp(bytes);
}

std::string_view PeekResultName(PeekResult result) {
  switch (result) {
    case PeekResult::kNeedMore:
      return "need_more";
    case PeekResult::kTls:
      return "tls";
    case PeekResult::kHttp:
      return "http";
    case PeekResult::kUnknown:
      return "unknown";
  }
  return "unknown";
}

}  // namespace sluice
