#include "common/rate/token_source_factory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/rate/gcra.h"
#include "common/rate/token_bucket.h"
#include "common/time/clock.h"
#include "common/time/duration.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

const TimePoint kT0 = TimePoint(seconds(1000));

// 10 tokens a second (one per 100 ms), burst 5.
RateSpec TenPerSecondBurstFive() { return RateSpec{10, seconds(1), 5}; }

constexpr Algorithm kAlgorithms[] = {Algorithm::kTokenBucket, Algorithm::kGcra};

TEST(TokenSourceFactoryTest, MakesTheRequestedAlgorithm) {
  std::unique_ptr<TokenSource> tb =
      MakeTokenSource(Algorithm::kTokenBucket, TenPerSecondBurstFive(), kT0);
  std::unique_ptr<TokenSource> gcra =
      MakeTokenSource(Algorithm::kGcra, TenPerSecondBurstFive(), kT0);
  EXPECT_NE(dynamic_cast<TokenBucket*>(tb.get()), nullptr);
  EXPECT_NE(dynamic_cast<GcraBucket*>(gcra.get()), nullptr);
  EXPECT_DOUBLE_EQ(tb->Capacity(), 5);
  EXPECT_DOUBLE_EQ(gcra->Capacity(), 5);
}

TEST(TokenSourceFactoryTest, ParsesAlgorithmNames) {
  EXPECT_EQ(*ParseAlgorithm("token_bucket"), Algorithm::kTokenBucket);
  EXPECT_EQ(*ParseAlgorithm("gcra"), Algorithm::kGcra);
  EXPECT_FALSE(ParseAlgorithm("leaky").ok());
  EXPECT_FALSE(ParseAlgorithm("").ok());
  EXPECT_EQ(AlgorithmName(Algorithm::kGcra), "gcra");
  EXPECT_EQ(*ParseAlgorithm(AlgorithmName(Algorithm::kTokenBucket)),
            Algorithm::kTokenBucket);
}

// An unknown name is refused with a status that names it and the choices.
// Names are exact: no other case, no surrounding space.
TEST(TokenSourceFactoryTest, UnknownAlgorithmNamesAreRefusedByName) {
  for (const char* bad : {"leaky", "", "GCRA", "Token_Bucket", " gcra", "gcra ",
                          "token-bucket"}) {
    const absl::StatusOr<Algorithm> a = ParseAlgorithm(bad);
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(a.status().message(),
                HasSubstr("unknown rate algorithm '" + std::string(bad) + "'"));
    EXPECT_THAT(a.status().message(), HasSubstr("token_bucket"));
    EXPECT_THAT(a.status().message(), HasSubstr("gcra"));
  }
}

TEST(TokenSourceFactoryTest, NamesRoundTrip) {
  EXPECT_EQ(AlgorithmName(Algorithm::kTokenBucket), "token_bucket");
  EXPECT_EQ(AlgorithmName(Algorithm::kGcra), "gcra");
  for (Algorithm alg : kAlgorithms) {
    const absl::StatusOr<Algorithm> parsed = ParseAlgorithm(AlgorithmName(alg));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, alg);
  }
}

// "Never returns null": a value outside the enum gets a token bucket.
TEST(TokenSourceFactoryTest, NeverReturnsNull) {
  std::unique_ptr<TokenSource> s =
      MakeTokenSource(static_cast<Algorithm>(7), TenPerSecondBurstFive(), kT0);
  ASSERT_NE(s, nullptr);
  EXPECT_NE(dynamic_cast<TokenBucket*>(s.get()), nullptr);
  EXPECT_EQ(AlgorithmName(static_cast<Algorithm>(7)), "token_bucket");
}

// What a made source admits, checked against the spec alone: a client that
// asks for `cost` every millisecond from the source's creation gets, over a
// window of W, exactly floor((rate * W + burst) / cost) (the source starts
// full); over the next W, floor(rate * W / cost) (the burst is spent); and
// no stretch of its admits ever exceeds rate * span + burst. The counts
// are literals worked out by hand from the spec.
struct AdmitCase {
  const char* name;
  RateSpec spec;
  double cost;
  Duration window;
  int first_window;   // burst + rate * W, in requests
  int second_window;  // rate * W, in requests
};

class AdmitsFollowTheSpec : public ::testing::TestWithParam<Algorithm> {};

TEST_P(AdmitsFollowTheSpec, OverFakeTime) {
  const AdmitCase cases[] = {
      // 5 + 10/s * 10 s; then 100.
      {"ten_per_second", {10, seconds(1), 5}, 1, seconds(10), 105, 100},
      // 2 + 3/s * 7 s (one token per 333.3 ms: no whole-ms interval).
      {"three_per_second", {3, seconds(1), 2}, 1, seconds(7), 23, 21},
      // 600 a minute is 10/s: 10 + 10/s * 5 s; then 50.
      {"per_minute", {600, seconds(60), 10}, 1, seconds(5), 60, 50},
      // One token every 2 s: 1 + 0.5/s * 10 s; then 5.
      {"slow", {0.5, seconds(1), 1}, 1, seconds(10), 6, 5},
      // Cost 2.5 of 10/s, burst 5: (5 + 100) / 2.5 = 42; then 100 / 2.5.
      {"multi_token", {10, seconds(1), 5}, 2.5, seconds(10), 42, 40},
  };
  for (const AdmitCase& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(ValidateRateSpec(c.spec).ok());
    FakeClock clock(kT0);
    std::unique_ptr<TokenSource> source =
        MakeTokenSource(GetParam(), c.spec, clock.Now());
    ASSERT_NE(source, nullptr);
    EXPECT_DOUBLE_EQ(source->Capacity(), c.spec.burst);
    std::vector<TimePoint> admits;
    int first = 0;
    int second = 0;
    const TimePoint end_first = kT0 + c.window;
    const TimePoint end_second = end_first + c.window;
    for (; clock.Now() <= end_second; clock.Advance(milliseconds(1))) {
      if (!source->TryTake(c.cost, clock.Now())) continue;
      admits.push_back(clock.Now());
      ++(clock.Now() <= end_first ? first : second);
    }
    EXPECT_EQ(first, c.first_window);
    EXPECT_EQ(second, c.second_window);
    // Every stretch of consecutive admits fits rate * span + burst.
    const double rate = c.spec.tokens / ToSeconds(c.spec.period);
    for (size_t i = 0; i < admits.size(); ++i) {
      for (size_t j = i; j < admits.size(); ++j) {
        const double span = ToSeconds(admits[j] - admits[i]);
        const double taken = static_cast<double>(j - i + 1) * c.cost;
        ASSERT_LE(taken, rate * span + c.spec.burst + 1e-9)
            << "admits " << i << ".." << j;
      }
    }
  }
}

// After a long idle spell the source holds its burst and no more.
TEST_P(AdmitsFollowTheSpec, IdleCreditStopsAtBurst) {
  std::unique_ptr<TokenSource> source =
      MakeTokenSource(GetParam(), TenPerSecondBurstFive(), kT0);
  const TimePoint later = kT0 + seconds(3600);
  int admitted = 0;
  while (admitted < 100 && source->TryTake(1, later)) ++admitted;
  EXPECT_EQ(admitted, 5);
  // The next token comes one emission interval (100 ms) later.
  EXPECT_FALSE(source->TryTake(1, later + milliseconds(99)));
  EXPECT_TRUE(source->TryTake(1, later + milliseconds(100)));
}

INSTANTIATE_TEST_SUITE_P(BothAlgorithms, AdmitsFollowTheSpec,
                         ::testing::ValuesIn(kAlgorithms),
                         [](const auto& info) {
                           return std::string(AlgorithmName(info.param));
                         });

}  // namespace
}  // namespace sluice
