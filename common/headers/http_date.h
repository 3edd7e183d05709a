#ifndef SLUICE_COMMON_HEADERS_HTTP_DATE_H_
#define SLUICE_COMMON_HEADERS_HTTP_DATE_H_

#include <optional>
#include <string_view>

#include "absl/time/time.h"

namespace sluice {

// Parses an HTTP-date (RFC 9110 section 5.6.7) in any of its three forms:
//   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
//   RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT"
//   asctime      "Sun Nov  6 08:49:37 1994"
// Surrounding spaces and tabs are ignored; anything else that departs from
// the grammar (wrong case, a day that the month lacks, hour 24, ...) gives
// nullopt. The day name must be a valid one but need not match the date.
// Second 60 (a leap second) reads as the next minute. An RFC 850 two-digit
// year 70-99 means 1970-1999 and 00-69 means 2000-2069.
std::optional<absl::Time> ParseHttpDate(std::string_view text);

}  // namespace sluice

#endif  // SLUICE_COMMON_HEADERS_HTTP_DATE_H_
