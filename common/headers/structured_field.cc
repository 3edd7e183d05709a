#include "common/headers/structured_field.h"

#include <charconv>
#include <system_error>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"

namespace sluice::sf {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLcAlpha(char c) { return c >= 'a' && c <= 'z'; }
bool IsAlpha(char c) { return IsLcAlpha(c) || (c >= 'A' && c <= 'Z'); }

// tchar from RFC 9110 section 5.6.2.
bool IsTchar(char c) {
  if (IsAlpha(c) || IsDigit(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// Sets `params[key] = value`, keeping the first position of a repeated key.
template <typename Pairs, typename Value>
void Upsert(Pairs& pairs, std::string key, Value value) {
  for (auto& [k, v] : pairs) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  pairs.emplace_back(std::move(key), std::move(value));
}

// One pass over a field value; each method is the RFC 8941 section 4.2
// algorithm of the same name and consumes what it parses.
class Parser {
 public:
  explicit Parser(std::string_view input) : in_(input) {}

  bool Empty() const { return in_.empty(); }
  char Peek() const { return in_.front(); }
  void DiscardSp() {
    while (!in_.empty() && in_.front() == ' ') in_.remove_prefix(1);
  }
  void DiscardOws() {
    while (!in_.empty() && (in_.front() == ' ' || in_.front() == '\t')) {
      in_.remove_prefix(1);
    }
  }

  // 4.2.1
  std::optional<List> ReadList() {
    sf::List members;
    while (!Empty()) {
      if (members.size() >= kMaxMembers) return std::nullopt;
      std::optional<ListMember> member = ReadItemOrInnerList();
      if (!member) return std::nullopt;
      members.push_back(std::move(*member));
      if (!EndOfMember()) return std::nullopt;
    }
    return members;
  }

  // 4.2.2
  std::optional<Dictionary> ReadDictionary() {
    sf::Dictionary dict;
    while (!Empty()) {
      if (dict.size() >= kMaxMembers) return std::nullopt;
      std::optional<std::string> key = ReadKey();
      if (!key) return std::nullopt;
      ListMember member;
      if (!Empty() && Peek() == '=') {
        in_.remove_prefix(1);
        std::optional<ListMember> value = ReadItemOrInnerList();
        if (!value) return std::nullopt;
        member = std::move(*value);
      } else {
        std::optional<Parameters> params = ReadParams();
        if (!params) return std::nullopt;
        member = sf::Item{true, std::move(*params)};
      }
      Upsert(dict, std::move(*key), std::move(member));
      if (!EndOfMember()) return std::nullopt;
    }
    return dict;
  }

  // 4.2.3
  std::optional<sf::Item> ReadItem() {
    std::optional<BareItem> value = ReadBare();
    if (!value) return std::nullopt;
    std::optional<Parameters> params = ReadParams();
    if (!params) return std::nullopt;
    return sf::Item{std::move(*value), std::move(*params)};
  }

 private:
  // The tail of the List and Dictionary loops: after a member, either the
  // input ends or a comma (with optional whitespace) precedes another one.
  // Returns false on a missing comma or a trailing comma.
  bool EndOfMember() {
    DiscardOws();
    if (Empty()) return true;
    if (Peek() != ',') return false;
    in_.remove_prefix(1);
    DiscardOws();
    return !Empty();
  }

  // 4.2.1.1
  std::optional<ListMember> ReadItemOrInnerList() {
    if (!Empty() && Peek() == '(') {
      std::optional<sf::InnerList> inner = ReadInnerList();
      if (!inner) return std::nullopt;
      return ListMember(std::move(*inner));
    }
    std::optional<sf::Item> item = ReadItem();
    if (!item) return std::nullopt;
    return ListMember(std::move(*item));
  }

  // 4.2.1.2
  std::optional<sf::InnerList> ReadInnerList() {
    in_.remove_prefix(1);  // '('
    sf::InnerList inner;
    while (!Empty()) {
      DiscardSp();
      if (Empty()) break;
      if (Peek() == ')') {
        in_.remove_prefix(1);
        std::optional<Parameters> params = ReadParams();
        if (!params) return std::nullopt;
        inner.params = std::move(*params);
        return inner;
      }
      if (inner.items.size() >= kMaxInnerItems) return std::nullopt;
      std::optional<sf::Item> item = ReadItem();
      if (!item) return std::nullopt;
      inner.items.push_back(std::move(*item));
      if (Empty() || (Peek() != ' ' && Peek() != ')')) return std::nullopt;
    }
    return std::nullopt;  // no closing ')'
  }

  // 4.2.3.1
  std::optional<BareItem> ReadBare() {
    if (Empty()) return std::nullopt;
    const char c = Peek();
    if (c == '-' || IsDigit(c)) return ReadNumber();
    if (c == '"') return ReadString();
    if (IsAlpha(c) || c == '*') return ReadToken();
    if (c == ':') return ReadBytes();
    if (c == '?') return ReadBoolean();
    return std::nullopt;
  }

  // 4.2.3.2
  std::optional<Parameters> ReadParams() {
    Parameters params;
    while (!Empty() && Peek() == ';') {
      in_.remove_prefix(1);
      DiscardSp();
      std::optional<std::string> key = ReadKey();
      if (!key) return std::nullopt;
      BareItem value = true;
      if (!Empty() && Peek() == '=') {
        in_.remove_prefix(1);
        std::optional<BareItem> bare = ReadBare();
        if (!bare) return std::nullopt;
        value = std::move(*bare);
      }
      Upsert(params, std::move(*key), std::move(value));
      if (params.size() > kMaxParams) return std::nullopt;
    }
    return params;
  }

  // 4.2.3.3
  std::optional<std::string> ReadKey() {
    if (Empty() || !(IsLcAlpha(Peek()) || Peek() == '*')) return std::nullopt;
    size_t n = 0;
    while (n < in_.size()) {
      const char c = in_[n];
      if (!(IsLcAlpha(c) || IsDigit(c) || c == '_' || c == '-' || c == '.' ||
            c == '*')) {
        break;
      }
      ++n;
    }
    std::string key(in_.substr(0, n));
    in_.remove_prefix(n);
    return key;
  }

  // 4.2.4
  std::optional<BareItem> ReadNumber() {
    bool negative = false;
    if (Peek() == '-') {
      negative = true;
      in_.remove_prefix(1);
    }
    if (Empty() || !IsDigit(Peek())) return std::nullopt;
    bool decimal = false;
    size_t n = 0;  // length of input_number
    size_t dot = 0;
    while (n < in_.size()) {
      const char c = in_[n];
      if (IsDigit(c)) {
        ++n;
      } else if (!decimal && c == '.') {
        if (n > 12) return std::nullopt;
        decimal = true;
        dot = n;
        ++n;
      } else {
        break;
      }
      if (!decimal && n > 15) return std::nullopt;
      if (decimal && n > 16) return std::nullopt;
    }
    const std::string_view digits = in_.substr(0, n);
    in_.remove_prefix(n);
    if (!decimal) {
      int64_t value = 0;
      auto [end, ec] =
          std::from_chars(digits.data(), digits.data() + digits.size(), value);
      if (ec != std::errc() || end != digits.data() + digits.size()) {
        return std::nullopt;
      }
      return BareItem(negative ? -value : value);
    }
    const size_t fraction_digits = n - dot - 1;
    if (fraction_digits == 0 || fraction_digits > 3) return std::nullopt;
    double value = 0;
    auto [end, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc() || end != digits.data() + digits.size()) {
      return std::nullopt;
    }
    return BareItem(negative ? -value : value);
  }

  // 4.2.5
  std::optional<BareItem> ReadString() {
    in_.remove_prefix(1);  // '"'
    std::string out;
    while (!Empty()) {
      const char c = Peek();
      in_.remove_prefix(1);
      if (c == '\\') {
        if (Empty()) return std::nullopt;
        const char next = Peek();
        in_.remove_prefix(1);
        if (next != '"' && next != '\\') return std::nullopt;
        out.push_back(next);
      } else if (c == '"') {
        return BareItem(std::move(out));
      } else if (static_cast<unsigned char>(c) < 0x20 ||
                 static_cast<unsigned char>(c) >= 0x7f) {
        return std::nullopt;
      } else {
        out.push_back(c);
      }
    }
    return std::nullopt;  // no closing quote
  }

  // 4.2.6
  std::optional<BareItem> ReadToken() {
    size_t n = 1;  // the first character was checked by ReadBare()
    while (n < in_.size() &&
           (IsTchar(in_[n]) || in_[n] == ':' || in_[n] == '/')) {
      ++n;
    }
    sf::Token token{std::string(in_.substr(0, n))};
    in_.remove_prefix(n);
    return BareItem(std::move(token));
  }

  // 4.2.7
  std::optional<BareItem> ReadBytes() {
    in_.remove_prefix(1);  // ':'
    const size_t end = in_.find(':');
    if (end == std::string_view::npos) return std::nullopt;
    const std::string_view b64 = in_.substr(0, end);
    in_.remove_prefix(end + 1);
    for (char c : b64) {
      if (!(IsAlpha(c) || IsDigit(c) || c == '+' || c == '/' || c == '=')) {
        return std::nullopt;
      }
    }
    ByteSequence bytes;
    if (!absl::Base64Unescape(absl::string_view(b64.data(), b64.size()),
                              &bytes.bytes)) {
      return std::nullopt;
    }
    return BareItem(std::move(bytes));
  }

  // 4.2.8
  std::optional<BareItem> ReadBoolean() {
    in_.remove_prefix(1);  // '?'
    if (Empty()) return std::nullopt;
    const char c = Peek();
    in_.remove_prefix(1);
    if (c == '1') return BareItem(true);
    if (c == '0') return BareItem(false);
    return std::nullopt;
  }

  std::string_view in_;
};

// The shared frame of section 4.2: strip leading and trailing SP, parse,
// and require that nothing is left over.
template <typename T, typename F>
std::optional<T> ParseTopLevel(std::string_view value, F parse) {
  if (value.size() > kMaxFieldBytes) return std::nullopt;
  Parser parser(value);
  parser.DiscardSp();
  std::optional<T> out = parse(parser);
  if (!out) return std::nullopt;
  parser.DiscardSp();
  if (!parser.Empty()) return std::nullopt;
  return out;
}

}  // namespace

std::optional<List> ParseList(std::string_view field_value) {
  return ParseTopLevel<List>(field_value,
                             [](Parser& p) { return p.ReadList(); });
}

std::optional<Dictionary> ParseDictionary(std::string_view field_value) {
  return ParseTopLevel<Dictionary>(
      field_value, [](Parser& p) { return p.ReadDictionary(); });
}

std::optional<Item> ParseItem(std::string_view field_value) {
  return ParseTopLevel<Item>(field_value,
                             [](Parser& p) { return p.ReadItem(); });
}

const BareItem* FindParam(const Parameters& params, std::string_view key) {
  for (const auto& [k, v] : params) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::optional<double> AsNumber(const BareItem& item) {
  if (const int64_t* i = std::get_if<int64_t>(&item)) {
    return static_cast<double>(*i);
  }
  if (const double* d = std::get_if<double>(&item)) return *d;
  return std::nullopt;
}

std::optional<std::string_view> AsStringOrToken(const BareItem& item) {
  if (const std::string* s = std::get_if<std::string>(&item)) return *s;
  if (const Token* t = std::get_if<Token>(&item)) return t->value;
  return std::nullopt;
}

}  // namespace sluice::sf
