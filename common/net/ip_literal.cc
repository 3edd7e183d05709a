#include "common/net/ip_literal.h"

#include <arpa/inet.h>

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace sluice {

// inet_pton needs a NUL-terminated string, so an embedded NUL would cut the
// text short and let trailing garbage through; reject those explicitly.
bool IsIpLiteral(int family, std::string_view text) {
  if (text.empty() || text.find('\0') != std::string_view::npos) return false;
  unsigned char buf[16];
  return inet_pton(family, std::string(text).c_str(), buf) == 1;
}

std::optional<uint32_t> ParseSmallNumber(std::string_view text,
                                         size_t max_digits) {
  if (text.empty() || text.size() > max_digits) return std::nullopt;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
  }
  uint32_t value = 0;
  if (!absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &value)) {
    return std::nullopt;
  }
  return value;
}

}  // namespace sluice
