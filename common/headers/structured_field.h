#ifndef SLUICE_COMMON_HEADERS_STRUCTURED_FIELD_H_
#define SLUICE_COMMON_HEADERS_STRUCTURED_FIELD_H_

// A parser for HTTP Structured Field Values (RFC 8941): Lists, Dictionaries
// and Items with Parameters. It follows the parsing algorithms of RFC 8941
// section 4.2 step by step: any deviation from the grammar fails the whole
// field (the caller then ignores the field, as section 4.2 requires).
//
// Sizes are bounded so hostile input costs linear time and bounded memory:
// a field longer than kMaxFieldBytes, a list or dictionary with more than
// kMaxMembers members, an inner list with more than kMaxInnerItems items or
// an item with more than kMaxParams parameters fails to parse. These bounds
// are at least the minimums RFC 8941 section 3 asks parsers to support.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace sluice::sf {

inline constexpr size_t kMaxFieldBytes = 16 * 1024;
inline constexpr size_t kMaxMembers = 1024;
inline constexpr size_t kMaxInnerItems = 256;
inline constexpr size_t kMaxParams = 256;

// A Token (section 3.3.4), kept apart from a String so callers can tell
// `foo` from `"foo"`.
struct Token {
  std::string value;
  bool operator==(const Token&) const = default;
};

// A Byte Sequence (section 3.3.5), already base64-decoded.
struct ByteSequence {
  std::string bytes;
  bool operator==(const ByteSequence&) const = default;
};

// A Bare Item: Integer (int64_t, at most 15 digits), Decimal (double, at
// most 12 integer and 3 fractional digits), String (std::string, unescaped),
// Token, Byte Sequence or Boolean.
using BareItem =
    std::variant<int64_t, double, std::string, Token, ByteSequence, bool>;

// Parameters in order of first appearance; a repeated key keeps its first
// position and takes the last value (section 4.2.3.2).
using Parameters = std::vector<std::pair<std::string, BareItem>>;

struct Item {
  BareItem value;
  Parameters params;
};

struct InnerList {
  std::vector<Item> items;
  Parameters params;
};

using ListMember = std::variant<Item, InnerList>;
using List = std::vector<ListMember>;
// Dictionary members in order of first appearance; a repeated key keeps its
// first position and takes the last value (section 4.2.2).
using Dictionary = std::vector<std::pair<std::string, ListMember>>;

// Parses a field value as a List (section 4.2.1). An empty (or all-space)
// value is an empty list. Several field lines of one field should be joined
// with ", " before parsing. nullopt when the value does not parse.
std::optional<List> ParseList(std::string_view field_value);

// Parses a field value as a Dictionary (section 4.2.2).
std::optional<Dictionary> ParseDictionary(std::string_view field_value);

// Parses a field value as a single Item (section 4.2.3).
std::optional<Item> ParseItem(std::string_view field_value);

// The value of parameter `key`, or nullptr when absent.
const BareItem* FindParam(const Parameters& params, std::string_view key);

// The bare item as a number when it is an Integer or a Decimal.
std::optional<double> AsNumber(const BareItem& item);

// The text of a String or a Token; nullopt for other types.
std::optional<std::string_view> AsStringOrToken(const BareItem& item);

}  // namespace sluice::sf

#endif  // SLUICE_COMMON_HEADERS_STRUCTURED_FIELD_H_
