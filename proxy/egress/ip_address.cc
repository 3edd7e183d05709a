#include "proxy/egress/ip_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

// Longer than any textual IPv6 address, including the dotted-quad tail.
constexpr size_t kMaxStrictTextLength = 64;

// inet_pton for one family on a bounded, NUL-free copy of `text`.
bool PtonInto(int family, std::string_view text, void* out) {
  if (text.empty() || text.size() > kMaxStrictTextLength ||
      text.find('\0') != std::string_view::npos) {
    return false;
  }
  char buf[kMaxStrictTextLength + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  return inet_pton(family, buf, out) == 1;
}

std::optional<IpAddress> ParseV4Strict(std::string_view text) {
  in_addr a{};
  if (!PtonInto(AF_INET, text, &a)) return std::nullopt;
  IpAddress out;
  out.v4 = true;
  std::memcpy(out.bytes.data(), &a, 4);
  return out;
}

std::optional<IpAddress> ParseV6Strict(std::string_view text) {
  in6_addr a{};
  if (!PtonInto(AF_INET6, text, &a)) return std::nullopt;
  std::array<uint8_t, 16> bytes;
  std::memcpy(bytes.data(), &a, 16);
  return IpAddress::V6(bytes);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses one inet_aton part: decimal, octal with a leading 0, or hex with a
// leading 0x/0X. Values above 0xffffffff fail. "0x" alone fails.
std::optional<uint64_t> ParseAtonPart(std::string_view part) {
  if (part.empty()) return std::nullopt;
  int base = 10;
  if (part.size() >= 2 && part[0] == '0' &&
      (part[1] == 'x' || part[1] == 'X')) {
    base = 16;
    part.remove_prefix(2);
    if (part.empty()) return std::nullopt;
  } else if (part.size() >= 2 && part[0] == '0') {
    base = 8;
    part.remove_prefix(1);
  }
  uint64_t value = 0;
  for (char c : part) {
    int digit = HexValue(c);
    if (digit < 0 || digit >= base) return std::nullopt;
    value = value * base + digit;
    if (value > 0xffffffffULL) return std::nullopt;
  }
  return value;
}

// The permissive reading of a host: one to four parts, every part but the
// last one byte, the last filling the remaining bytes.
std::optional<IpAddress> ParseV4Aton(std::string_view text) {
  std::vector<uint64_t> parts;
  while (true) {
    size_t dot = text.find('.');
    std::optional<uint64_t> value = ParseAtonPart(text.substr(0, dot));
    if (!value) return std::nullopt;
    parts.push_back(*value);
    if (parts.size() > 4) return std::nullopt;
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
  }
  uint32_t result = 0;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i] > 0xff) return std::nullopt;
    result |= static_cast<uint32_t>(parts[i]) << (24 - 8 * i);
  }
  const size_t tail_bytes = 5 - parts.size();  // 4, 3, 2 or 1.
  const uint64_t tail_max = (uint64_t{1} << (8 * tail_bytes)) - 1;
  if (parts.back() > tail_max) return std::nullopt;
  result |= static_cast<uint32_t>(parts.back());
  return IpAddress::V4(result);
}

// Bytes that never occur in a host name a URL parser hands over.
bool IsForbiddenHostByte(unsigned char c) {
  if (c <= 0x20 || c == 0x7f) return true;
  switch (c) {
    case '%':
    case '/':
    case '\\':
    case '@':
    case '?':
    case '#':
    case '[':
    case ']':
      return true;
    default:
      return false;
  }
}

HostLiteral Invalid() { return HostLiteral{HostKind::kInvalid, IpAddress{}}; }

HostLiteral Address(const IpAddress& a) {
  return HostLiteral{HostKind::kAddress, a};
}

}  // namespace

IpAddress IpAddress::V4(uint32_t host_order) {
  IpAddress a;
  a.v4 = true;
  a.bytes[0] = static_cast<uint8_t>(host_order >> 24);
  a.bytes[1] = static_cast<uint8_t>(host_order >> 16);
  a.bytes[2] = static_cast<uint8_t>(host_order >> 8);
  a.bytes[3] = static_cast<uint8_t>(host_order);
  return a;
}

IpAddress IpAddress::V6(const std::array<uint8_t, 16>& bytes) {
  IpAddress a;
  a.bytes = bytes;
  a.v4 = false;
  return a;
}

uint32_t IpAddress::V4HostOrder() const {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) |
         (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  const char* text =
      inet_ntop(v4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof(buf));
  return text != nullptr ? std::string(text) : std::string();
}

std::optional<IpAddress> ParseIpStrict(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    return ParseV6Strict(text.substr(1, text.size() - 2));
  }
  if (text.find(':') != std::string_view::npos) return ParseV6Strict(text);
  return ParseV4Strict(text);
}

HostLiteral ParseHostLiteral(std::string_view host) {
  if (host.empty()) return Invalid();
  if (host.front() == '[') {
    if (host.size() < 2 || host.back() != ']') return Invalid();
    std::optional<IpAddress> a = ParseV6Strict(host.substr(1, host.size() - 2));
    return a ? Address(*a) : Invalid();
  }
  if (host.find(':') != std::string_view::npos) {
    std::optional<IpAddress> a = ParseV6Strict(host);
    return a ? Address(*a) : Invalid();
  }
  for (char c : host) {
    if (IsForbiddenHostByte(static_cast<unsigned char>(c))) return Invalid();
  }
  std::string_view body = host;
  if (body.back() == '.') body.remove_suffix(1);
  // Empty labels ("", ".", "a..b", ".a", "a..") fit neither a name nor an
  // address.
  if (body.empty() || body.front() == '.' || body.back() == '.' ||
      body.find("..") != std::string_view::npos) {
    return Invalid();
  }
  const size_t last_dot = body.rfind('.');
  std::string_view last_label =
      last_dot == std::string_view::npos ? body : body.substr(last_dot + 1);
  if (!IsDigit(last_label.front())) {
    return HostLiteral{HostKind::kName, IpAddress{}};
  }
  std::optional<IpAddress> a = ParseV4Aton(body);
  return a ? Address(*a) : Invalid();
}

bool Cidr::Contains(const IpAddress& addr) const {
  if (addr.v4 != base.v4) return false;
  const int full_bytes = prefix_len / 8;
  if (std::memcmp(addr.bytes.data(), base.bytes.data(), full_bytes) != 0) {
    return false;
  }
  const int rest_bits = prefix_len % 8;
  if (rest_bits == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest_bits));
  return (addr.bytes[full_bytes] & mask) == (base.bytes[full_bytes] & mask);
}

std::string Cidr::ToString() const {
  return absl::StrCat(base.ToString(), "/", prefix_len);
}

absl::StatusOr<Cidr> ParseCidr(std::string_view text) {
  const size_t slash = text.find('/');
  std::string_view address_text = text.substr(0, slash);
  if (address_text.find('[') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        "CIDR address must be written without brackets");
  }
  std::optional<IpAddress> address = ParseIpStrict(address_text);
  if (!address) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not an IPv4 or IPv6 address: \"",
        absl::string_view(address_text.data(), address_text.size()), "\""));
  }
  const int max_len = address->v4 ? 32 : 128;
  Cidr cidr{*address, max_len};
  if (slash != std::string_view::npos) {
    std::string_view len_text = text.substr(slash + 1);
    if (len_text.empty() || len_text.size() > 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("prefix length must be a number in 0..", max_len));
    }
    int len = 0;
    for (char c : len_text) {
      if (!IsDigit(c)) {
        return absl::InvalidArgumentError(
            absl::StrCat("prefix length must be a number in 0..", max_len));
      }
      len = len * 10 + (c - '0');
    }
    if (len > max_len) {
      return absl::InvalidArgumentError(
          absl::StrCat("prefix length must be a number in 0..", max_len));
    }
    cidr.prefix_len = len;
  }
  // The base must have no bits set past the prefix.
  for (int bit = cidr.prefix_len; bit < max_len; ++bit) {
    if (cidr.base.bytes[bit / 8] & (0x80 >> (bit % 8))) {
      return absl::InvalidArgumentError(
          absl::StrCat("address has bits set past the /", cidr.prefix_len,
                       " prefix; write the network address (e.g. 10.0.0.0/8)"));
    }
  }
  return cidr;
}

}  // namespace sluice
