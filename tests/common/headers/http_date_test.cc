#include "common/headers/http_date.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace sluice {
namespace {

// 2024-05-01T12:00:00Z, a Wednesday; epoch 1714564800.
const absl::Time kNow = absl::FromUnixSeconds(1714564800);

TEST(HttpDateTest, ParsesTheThreeForms) {
  const absl::Time want = absl::FromCivil(
      absl::CivilSecond(1994, 11, 6, 8, 49, 37), absl::UTCTimeZone());
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), want);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), want);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994"), want);
  EXPECT_EQ(ParseHttpDate(" \tSun, 06 Nov 1994 08:49:37 GMT \t"), want);
  // The day name is not checked against the date.
  EXPECT_EQ(ParseHttpDate("Mon, 06 Nov 1994 08:49:37 GMT"), want);
}

TEST(HttpDateTest, TwoDigitYearsAndLeapSecond) {
  EXPECT_EQ(ParseHttpDate("Wednesday, 01-May-24 12:00:00 GMT"), kNow);
  EXPECT_EQ(ParseHttpDate("Thursday, 01-Jan-70 00:00:00 GMT"),
            absl::UnixEpoch());
  EXPECT_EQ(ParseHttpDate("Friday, 31-Dec-69 00:00:00 GMT"),
            absl::FromCivil(absl::CivilSecond(2069, 12, 31, 0, 0, 0),
                            absl::UTCTimeZone()));
  EXPECT_EQ(ParseHttpDate("Wed, 01 May 2024 11:59:60 GMT"), kNow);
}

TEST(HttpDateTest, RejectsMalformedDates) {
  for (const char* bad : {
           "",
           "Sun, 06 Nov 1994 08:49:37",           // no GMT
           "Sun, 06 Nov 1994 08:49:37 UTC",       // wrong zone
           "Sun, 06 Nov 1994 08:49:37 +0000",     // offset
           "sun, 06 Nov 1994 08:49:37 GMT",       // case-sensitive
           "Sun, 06 nov 1994 08:49:37 GMT",       //
           "Sun, 6 Nov 1994 08:49:37 GMT",        // one-digit day
           "Sun, 31 Feb 1994 08:49:37 GMT",       // no such day
           "Sun, 00 Nov 1994 08:49:37 GMT",       //
           "Sun, 06 Nov 1994 24:00:00 GMT",       // hour 24
           "Sun, 06 Nov 1994 08:60:00 GMT",       // minute 60
           "Sun, 06 Nov 1994 08:49:61 GMT",       // second 61
           "Sun, 06 Nov 94 08:49:37 GMT",         // two-digit year
           "Sun, 06 Nov 1994 08:49:37 GMT junk",  // trailing text
           "Sun,  06 Nov 1994 08:49:37 GMT",      // extra space
           "Sunday, 06-Nov-1994 08:49:37 GMT",    // four-digit year
           "Sun, 06-Nov-94 08:49:37 GMT",         // short name, 850 form
           "Sun Nov 6 08:49:37 1994",             // asctime needs 2 chars
           "Sun Nov  6 08:49:37 94",              //
           "Sun Nov  6 08:49:37 1994 GMT",        //
           "Sun, 06 Nov 1994 08:49 GMT",          // no seconds
           "1994-11-06T08:49:37Z",                // RFC 3339 is not one
           "Sun, 06 Nov 1994 08:49:37 GMT\r\n",   // CR LF
       }) {
    EXPECT_EQ(ParseHttpDate(bad), std::nullopt) << bad;
  }
}

// Known instants (Unix seconds) in each of the three forms.
TEST(HttpDateTest, KnownInstants) {
  struct Case {
    const char* text;
    int64_t unix_seconds;
  };
  for (const Case& c : {
           Case{"Sun, 06 Nov 1994 08:49:37 GMT", 784111777},
           Case{"Sunday, 06-Nov-94 08:49:37 GMT", 784111777},
           Case{"Sun Nov  6 08:49:37 1994", 784111777},
           Case{"Thu, 01 Jan 1970 00:00:00 GMT", 0},
           Case{"Wed, 31 Dec 1969 23:59:59 GMT", -1},
           Case{"Wed, 01 May 2024 12:00:00 GMT", 1714564800},
           Case{"Wed May  1 12:00:00 2024", 1714564800},
           // Past 2^31 - 1 seconds: no 32-bit wrap.
           Case{"Tue, 19 Jan 2038 03:14:07 GMT", 2147483647},
           Case{"Tue, 19 Jan 2038 03:14:08 GMT", 2147483648},
           Case{"Tue Jan 19 03:14:08 2038", 2147483648},
           // The last second a four-digit year can name.
           Case{"Fri, 31 Dec 9999 23:59:59 GMT", 253402300799},
           // asctime with a two-digit day, and with a leading zero (the
           // grammar's 2DIGIT).
           Case{"Wed Dec 31 23:59:59 1969", -1},
           Case{"Sun Nov 06 08:49:37 1994", 784111777},
       }) {
    EXPECT_EQ(ParseHttpDate(c.text), absl::FromUnixSeconds(c.unix_seconds))
        << c.text;
  }
}

// Leap years: every fourth year, but not centuries unless divisible by
// 400. February 29th parses exactly in leap years, in all three forms.
TEST(HttpDateTest, LeapDays) {
  EXPECT_EQ(ParseHttpDate("Tue, 29 Feb 2000 00:00:00 GMT"),
            absl::FromUnixSeconds(951782400));
  EXPECT_EQ(ParseHttpDate("Tue Feb 29 00:00:00 2000"),
            absl::FromUnixSeconds(951782400));
  EXPECT_EQ(ParseHttpDate("Tuesday, 29-Feb-00 00:00:00 GMT"),
            absl::FromUnixSeconds(951782400));
  EXPECT_EQ(ParseHttpDate("Sat, 29 Feb 2020 00:00:00 GMT"),
            absl::FromUnixSeconds(1582934400));
  // Two-digit years on either side of the pivot.
  EXPECT_EQ(ParseHttpDate("Tuesday, 29-Feb-72 00:00:00 GMT"),
            absl::FromUnixSeconds(68169600));
  EXPECT_EQ(ParseHttpDate("Wednesday, 29-Feb-68 00:00:00 GMT"),
            absl::FromUnixSeconds(3097699200));
  for (const char* bad : {
           "Thu, 29 Feb 1900 00:00:00 GMT",     // century, not / 400
           "Mon, 29 Feb 2100 00:00:00 GMT",     //
           "Wed, 29 Feb 2023 00:00:00 GMT",     // not / 4
           "Wed Feb 29 00:00:00 2023",          //
           "Thursday, 29-Feb-70 00:00:00 GMT",  // 1970
           "Sunday, 29-Feb-69 00:00:00 GMT",    // 2069
           "Tue, 30 Feb 2000 00:00:00 GMT",     // no leap year has it
       }) {
    EXPECT_EQ(ParseHttpDate(bad), std::nullopt) << bad;
  }
}

// Every month's last day is the day before the next month's first, and
// the day after it does not exist (2023: not a leap year).
TEST(HttpDateTest, MonthLengths) {
  const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const int last_day[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  for (int m = 0; m < 12; ++m) {
    const auto date = [](int day, const char* month, int year) {
      // The day name is not checked against the date.
      char buf[64];
      std::snprintf(buf, sizeof buf, "Mon, %02d %s %d 00:00:00 GMT", day, month,
                    year);
      return std::string(buf);
    };
    const std::string last = date(last_day[m], months[m], 2023);
    const std::string next =
        m == 11 ? date(1, "Jan", 2024) : date(1, months[m + 1], 2023);
    const std::optional<absl::Time> at_last = ParseHttpDate(last);
    const std::optional<absl::Time> at_next = ParseHttpDate(next);
    ASSERT_TRUE(at_last.has_value()) << last;
    ASSERT_TRUE(at_next.has_value()) << next;
    EXPECT_EQ(*at_next - *at_last, absl::Hours(24)) << last;
    const std::string past = date(last_day[m] + 1, months[m], 2023);
    EXPECT_EQ(ParseHttpDate(past), std::nullopt) << past;
  }
}

// Second 60 reads as the next minute, across the end of a day and of a
// year; 23:59:59 is the last second of a day.
TEST(HttpDateTest, LeapSecondRollsOver) {
  EXPECT_EQ(ParseHttpDate("Fri, 31 Dec 1999 23:59:59 GMT"),
            absl::FromUnixSeconds(946684799));
  EXPECT_EQ(ParseHttpDate("Fri, 31 Dec 1999 23:59:60 GMT"),
            absl::FromUnixSeconds(946684800));
  EXPECT_EQ(ParseHttpDate("Sat, 01 Jan 2000 00:00:00 GMT"),
            absl::FromUnixSeconds(946684800));
  EXPECT_EQ(ParseHttpDate("Friday, 31-Dec-99 23:59:60 GMT"),
            absl::FromUnixSeconds(946684800));
  EXPECT_EQ(ParseHttpDate("Fri Dec 31 23:59:60 1999"),
            absl::FromUnixSeconds(946684800));
}

// Forms mixed up, or whitespace other than surrounding spaces and tabs.
TEST(HttpDateTest, RejectsMixedFormsAndStrayWhitespace) {
  for (const char* bad : {
           "Sunday, 06 Nov 1994 08:49:37 GMT",  // long name, IMF form
           "Sun, 06 Nov 1994 08:49:37 gmt",     // zone is case-sensitive
           "Xyz, 06 Nov 1994 08:49:37 GMT",     // no such day name
           "Sundae, 06-Nov-94 08:49:37 GMT",    //
           "Sunday Nov  6 08:49:37 1994",       // long name, asctime form
           "Sun Nov\t 6 08:49:37 1994",         // tab inside
           "Sun Nov   6 08:49:37 1994",         // three spaces
           "Sun Nov 6  08:49:37 1994",          //
           "Sun, 06 Nov 1994 08:49:37 GMT\n",   // newline is not trimmed
           "\vSun, 06 Nov 1994 08:49:37 GMT",   // nor vertical tab
           "Sun, 06 Nov 19940 08:49:37 GMT",    // five-digit year
           "Sun, 06 Nov 1994 8:49:37 GMT",      // one-digit hour
           "Sun, 06 Nov 1994 08:49:37.5 GMT",   // fractions
           "Sun, 06 Dez 1994 08:49:37 GMT",     // no such month
           "Sun, -6 Nov 1994 08:49:37 GMT",     // sign
           " \t ",                              // only whitespace
       }) {
    EXPECT_EQ(ParseHttpDate(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(ParseHttpDate("\tSun Nov  6 08:49:37 1994  "),
            absl::FromUnixSeconds(784111777));
}

}  // namespace
}  // namespace sluice
