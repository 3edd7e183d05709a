#include "common/headers/http_date.h"

#include <array>
#include <cstddef>

#include "absl/time/civil_time.h"

namespace sluice {
namespace {

constexpr std::array<std::string_view, 7> kShortDays = {
    "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays = {
    "Monday", "Tuesday",  "Wednesday", "Thursday",
    "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> kMonths = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// A cursor over the date text; every Read* consumes what it matches and
// returns false (or -1) when the text does not match.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : in_(text) {}

  bool Done() const { return in_.empty(); }

  bool Literal(std::string_view s) {
    if (in_.substr(0, s.size()) != s) return false;
    in_.remove_prefix(s.size());
    return true;
  }

  // Exactly `n` digits as a number, or -1.
  int Digits(size_t n) {
    if (in_.size() < n) return -1;
    int value = 0;
    for (size_t i = 0; i < n; ++i) {
      if (in_[i] < '0' || in_[i] > '9') return -1;
      value = value * 10 + (in_[i] - '0');
    }
    in_.remove_prefix(n);
    return value;
  }

  // One of `names`; returns its index or -1.
  template <size_t N>
  int OneOf(const std::array<std::string_view, N>& names) {
    for (size_t i = 0; i < N; ++i) {
      if (Literal(names[i])) return static_cast<int>(i);
    }
    return -1;
  }

  // time-of-day = hour ":" minute ":" second
  bool TimeOfDay(int* hour, int* minute, int* second) {
    *hour = Digits(2);
    if (*hour < 0 || !Literal(":")) return false;
    *minute = Digits(2);
    if (*minute < 0 || !Literal(":")) return false;
    *second = Digits(2);
    return *second >= 0;
  }

 private:
  std::string_view in_;
};

std::optional<absl::Time> Build(int year, int month, int day, int hour,
                                int minute, int second) {
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 ||
      second > 60) {
    return std::nullopt;
  }
  const absl::CivilDay civil_day(year, month, day);
  if (civil_day.day() != day) return std::nullopt;  // e.g. 31 Feb
  const absl::CivilSecond civil(year, month, day, hour, minute, 0);
  return absl::FromCivil(civil, absl::UTCTimeZone()) + absl::Seconds(second);
}

// "Sun, 06 Nov 1994 08:49:37 GMT"
std::optional<absl::Time> ParseImfFixdate(Cursor c) {
  int h, mi, s;
  if (c.OneOf(kShortDays) < 0 || !c.Literal(", ")) return std::nullopt;
  const int day = c.Digits(2);
  if (day < 0 || !c.Literal(" ")) return std::nullopt;
  const int month = c.OneOf(kMonths) + 1;
  if (month < 1 || !c.Literal(" ")) return std::nullopt;
  const int year = c.Digits(4);
  if (year < 0 || !c.Literal(" ") || !c.TimeOfDay(&h, &mi, &s) ||
      !c.Literal(" GMT") || !c.Done()) {
    return std::nullopt;
  }
  return Build(year, month, day, h, mi, s);
}

// "Sunday, 06-Nov-94 08:49:37 GMT"
std::optional<absl::Time> ParseRfc850(Cursor c) {
  int h, mi, s;
  if (c.OneOf(kLongDays) < 0 || !c.Literal(", ")) return std::nullopt;
  const int day = c.Digits(2);
  if (day < 0 || !c.Literal("-")) return std::nullopt;
  const int month = c.OneOf(kMonths) + 1;
  if (month < 1 || !c.Literal("-")) return std::nullopt;
  const int yy = c.Digits(2);
  if (yy < 0 || !c.Literal(" ") || !c.TimeOfDay(&h, &mi, &s) ||
      !c.Literal(" GMT") || !c.Done()) {
    return std::nullopt;
  }
  return Build(yy < 70 ? 2000 + yy : 1900 + yy, month, day, h, mi, s);
}

// "Sun Nov  6 08:49:37 1994"
std::optional<absl::Time> ParseAsctime(Cursor c) {
  int h, mi, s;
  if (c.OneOf(kShortDays) < 0 || !c.Literal(" ")) return std::nullopt;
  const int month = c.OneOf(kMonths) + 1;
  if (month < 1 || !c.Literal(" ")) return std::nullopt;
  const int day = c.Literal(" ") ? c.Digits(1) : c.Digits(2);
  if (day < 0 || !c.Literal(" ") || !c.TimeOfDay(&h, &mi, &s) ||
      !c.Literal(" ")) {
    return std::nullopt;
  }
  const int year = c.Digits(4);
  if (year < 0 || !c.Done()) return std::nullopt;
  return Build(year, month, day, h, mi, s);
}

}  // namespace

std::optional<absl::Time> ParseHttpDate(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  if (text.size() > 3 && text[3] == ',') return ParseImfFixdate(Cursor(text));
  if (text.find(',') != std::string_view::npos) {
    return ParseRfc850(Cursor(text));
  }
  return ParseAsctime(Cursor(text));
}

}  // namespace sluice
