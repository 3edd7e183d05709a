#include "common/pause/pause_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

absl::Status Read(const std::string& yaml, PauseSchedule::Options* out) {
  return ReadPauseOptions(YAML::Load(yaml), "rate_limits.a.pause", out);
}

TEST(PauseConfigTest, ReadsEveryFieldOverDefaults) {
  PauseSchedule::Options o;
  ASSERT_TRUE(Read("{default: 2s, max: 1m, backoff: 3, probe_timeout: 500ms,"
                   " ramp: 0s, ramp_start: 0.25}",
                   &o)
                  .ok());
  EXPECT_EQ(o.default_pause, seconds(2));
  EXPECT_EQ(o.max_pause, seconds(60));
  EXPECT_EQ(o.backoff_factor, 3);
  EXPECT_EQ(o.probe_timeout, milliseconds(500));
  EXPECT_EQ(o.ramp, Duration::zero());
  EXPECT_EQ(o.ramp_start, 0.25);
  PauseSchedule::Options d;
  ASSERT_TRUE(Read("{max: 10m}", &d).ok());
  EXPECT_EQ(d.default_pause, seconds(1));  // untouched default
}

TEST(PauseConfigTest, BadValuesNameTheField) {
  PauseSchedule::Options o;
  EXPECT_THAT(Read("{defualt: 1s}", &o).message(),
              HasSubstr("rate_limits.a.pause.defualt: unknown field"));
  EXPECT_THAT(Read("{max: 0s}", &o).message(),
              HasSubstr("rate_limits.a.pause.max: must be > 0"));
  EXPECT_THAT(Read("{backoff: 0.5}", &o).message(),
              HasSubstr("rate_limits.a.pause.backoff: must be a number >= 1"));
  EXPECT_THAT(Read("{backoff: 1000}", &o).message(),
              HasSubstr("rate_limits.a.pause.backoff: must be at most 100"));
  EXPECT_THAT(
      Read("{ramp_start: 0}", &o).message(),
      HasSubstr("rate_limits.a.pause.ramp_start: must be a number > 0"));
  EXPECT_THAT(Read("{ramp_start: 1.5}", &o).message(),
              HasSubstr("rate_limits.a.pause.ramp_start: must be at most 1"));
  EXPECT_THAT(Read("{ramp: soon}", &o).message(),
              HasSubstr("rate_limits.a.pause.ramp: bad duration"));
  PauseSchedule::Options p;
  EXPECT_THAT(Read("{default: 10m, max: 1m}", &p).message(),
              HasSubstr("rate_limits.a.pause.default: must be at most max"));
}

}  // namespace
}  // namespace sluice
