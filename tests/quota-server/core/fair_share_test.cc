#include "quota-server/core/fair_share.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::DoubleEq;
using ::testing::DoubleNear;
using ::testing::ElementsAre;

std::vector<double> Fill(double capacity, const std::vector<double>& demands,
                         const std::vector<double>& weights) {
  std::vector<double> shares;
  WaterFill(capacity, demands, weights, &shares);
  return shares;
}

std::vector<double> Ones(size_t n) { return std::vector<double>(n, 1.0); }

TEST(FairShareTest, EqualWeightsSmallDemandsSatisfiedRestSplit) {
  std::vector<double> shares;
  WaterLevel level =
      WaterFill(100, std::vector<double>{1, 30, 34, 1000}, Ones(4), &shares);
  EXPECT_THAT(shares, ElementsAre(DoubleNear(1, 1e-9), DoubleNear(30, 1e-9),
                                  DoubleNear(34, 1e-9), DoubleNear(35, 1e-9)));
  EXPECT_NEAR(level.lambda, 35, 1e-9);
  EXPECT_EQ(level.spare, 0);
}

TEST(FairShareTest, WeightsScaleTheLevel) {
  EXPECT_THAT(Fill(1000, {2000, 500, 700}, {10, 10, 30}),
              ElementsAre(DoubleNear(200, 1e-9), DoubleNear(200, 1e-9),
                          DoubleNear(600, 1e-9)));
}

TEST(FairShareTest, WeightedSatisfiedSidecarReleasesCapacity) {
  // Weight 30 wants only 100: the two others split the remaining 900.
  EXPECT_THAT(Fill(1000, {2000, 500, 100}, {10, 10, 30}),
              ElementsAre(DoubleNear(450, 1e-9), DoubleNear(450, 1e-9),
                          DoubleNear(100, 1e-9)));
}

TEST(FairShareTest, ZeroDemandGetsNothingAndTakesNothing) {
  EXPECT_THAT(Fill(100, {0, 500, 0}, Ones(3)),
              ElementsAre(0.0, DoubleNear(100, 1e-9), 0.0));
}

TEST(FairShareTest, AllSatisfiedLeavesSpare) {
  std::vector<double> shares;
  WaterLevel level =
      WaterFill(100, std::vector<double>{10, 20, 30}, Ones(3), &shares);
  EXPECT_THAT(shares, ElementsAre(10, 20, 30));
  EXPECT_TRUE(std::isinf(level.lambda));
  EXPECT_NEAR(level.spare, 40, 1e-9);
}

TEST(FairShareTest, OneSidecarGetsMinOfDemandAndCapacity) {
  EXPECT_THAT(Fill(100, {250}, {3}), ElementsAre(DoubleNear(100, 1e-9)));
  EXPECT_THAT(Fill(100, {60}, {3}), ElementsAre(60));
}

TEST(FairShareTest, ManyEqualSidecarsSplitEvenly) {
  const size_t n = 1000;
  std::vector<double> shares = Fill(100, std::vector<double>(n, 7.0), Ones(n));
  for (double s : shares) EXPECT_NEAR(s, 0.1, 1e-12);
}

TEST(FairShareTest, NoCapacityOrNoSidecars) {
  EXPECT_THAT(Fill(0, {5, 5}, Ones(2)), ElementsAre(0.0, 0.0));
  EXPECT_THAT(Fill(-1, {5}, Ones(1)), ElementsAre(0.0));
  EXPECT_TRUE(Fill(10, {}, {}).empty());
}

TEST(FairShareTest, BadDemandsCountAsZero) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(Fill(10, {nan, -3, 50}, Ones(3)),
              ElementsAre(0.0, 0.0, DoubleNear(10, 1e-9)));
}

TEST(FairShareTest, SpareGoesOutByWeight) {
  std::vector<double> weights = {1, 3};
  std::vector<double> shares;
  WaterFill(100, std::vector<double>{10, 10}, weights, &shares);
  const double per_weight = DistributeSpare(100, weights, shares);
  EXPECT_NEAR(per_weight, 20, 1e-9);
  EXPECT_THAT(shares, ElementsAre(DoubleNear(30, 1e-9), DoubleNear(70, 1e-9)));
}

TEST(FairShareTest, NoSpareWhenCapacityIsUsed) {
  std::vector<double> weights = {1, 1};
  std::vector<double> shares;
  WaterFill(100, std::vector<double>{500, 500}, weights, &shares);
  EXPECT_EQ(DistributeSpare(100, weights, shares), 0);
  EXPECT_THAT(shares, ElementsAre(DoubleNear(50, 1e-9), DoubleNear(50, 1e-9)));
}

TEST(FairShareTest, SpareReachesIdleSidecars) {
  std::vector<double> weights = {1, 1};
  std::vector<double> shares;
  WaterFill(100, std::vector<double>{0, 0}, weights, &shares);
  DistributeSpare(100, weights, shares);
  EXPECT_THAT(shares, ElementsAre(DoubleNear(50, 1e-9), DoubleNear(50, 1e-9)));
}

// Checks the max-min optimality conditions for one solution.
void ExpectMaxMinOptimal(double capacity, const std::vector<double>& demands,
                         const std::vector<double>& weights,
                         const std::vector<double>& shares) {
  ASSERT_EQ(shares.size(), demands.size());
  double sum_d = 0;
  double sum_s = 0;
  double max_level = 0;
  for (size_t i = 0; i < shares.size(); ++i) {
    sum_d += demands[i];
    sum_s += shares[i];
    ASSERT_GE(shares[i], 0);
    ASSERT_LE(shares[i], demands[i] * (1 + 1e-12) + 1e-12);
    max_level = std::max(max_level, shares[i] / weights[i]);
  }
  const double want = std::min(capacity, sum_d);
  ASSERT_NEAR(sum_s, want, 1e-9 * std::max(1.0, want));
  // A sidecar below its demand could only be raised by lowering another;
  // optimal iff every such sidecar already sits at the highest level.
  for (size_t i = 0; i < shares.size(); ++i) {
    if (shares[i] < demands[i] * (1 - 1e-9)) {
      ASSERT_NEAR(shares[i] / weights[i], max_level, 1e-9 * max_level)
          << "sidecar " << i << " is starved below another's level";
    }
  }
}

// A random instance: 1 to max_n sidecars, some with no demand, weights
// mostly 1 or in [0.1, 10), and a capacity of `low` to 1.5 times the sum
// of the demands.
struct Instance {
  std::vector<double> demands;
  std::vector<double> weights;
  double capacity = 0;
};
Instance RandomInstance(uint32_t seed, size_t max_n, double low) {
  std::mt19937_64 rng(seed);
  const size_t n = 1 + rng() % max_n;
  std::uniform_real_distribution<double> weight(0.1, 10);
  std::exponential_distribution<double> demand(0.01);
  Instance inst{std::vector<double>(n), std::vector<double>(n), 0};
  double sum_d = 0;
  for (size_t i = 0; i < n; ++i) {
    inst.demands[i] = rng() % 7 == 0 ? 0 : demand(rng);
    inst.weights[i] = rng() % 3 == 0 ? 1 : weight(rng);
    sum_d += inst.demands[i];
  }
  inst.capacity = sum_d * std::uniform_real_distribution<double>(low, 1.5)(rng);
  return inst;
}

TEST(FairShareTest, RandomInstancesAreMaxMinOptimal) {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    // Capacities from starved to plentiful.
    const auto [demands, weights, capacity] = RandomInstance(seed, 2000, 0.01);
    const size_t n = demands.size();
    std::vector<double> shares;
    WaterFill(capacity, demands, weights, &shares);
    SCOPED_TRACE(testing::Message() << "seed " << seed << " n " << n);
    ExpectMaxMinOptimal(capacity, demands, weights, shares);
    if (HasFatalFailure()) return;
    DistributeSpare(capacity, weights, shares);
    double total = 0;
    for (double s : shares) total += s;
    EXPECT_NEAR(total, capacity, 1e-9 * capacity);
  }
}

TEST(ShareOutTest, ExactMaxMinWhenTheCapacityIsShort) {
  std::vector<double> shares;
  const ShareLevels levels =
      ShareOut(100, std::vector<double>{1, 30, 34, 1000},
               std::vector<double>{1, 1, 1, 1}, 0.1, &shares);
  EXPECT_THAT(shares, ElementsAre(DoubleEq(1), DoubleEq(30), DoubleEq(34),
                                  DoubleEq(35)));
  EXPECT_DOUBLE_EQ(levels.lambda, 35);
  EXPECT_EQ(levels.headroom_lambda, 0);
  EXPECT_EQ(levels.spare_per_weight, 0);
}

TEST(ShareOutTest, HeadroomComesOnlyOutOfTheSpare) {
  std::vector<double> shares;
  // Demands 50 and 45 of 100: the spare 5 is less than the headroom
  // wanted (5 and 4.5), so it is shared max-min: 2.5 each.
  ShareOut(100, std::vector<double>{50, 45}, std::vector<double>{1, 1}, 0.1,
           &shares);
  EXPECT_THAT(shares, ElementsAre(DoubleEq(52.5), DoubleEq(47.5)));
  // Demands 20 and 10: headroom 2 and 1, then the 67 left by weight 1:2.
  const ShareLevels levels = ShareOut(100, std::vector<double>{20, 10},
                                      std::vector<double>{1, 2}, 0.1, &shares);
  EXPECT_THAT(shares, ElementsAre(DoubleNear(22 + 67.0 / 3, 1e-9),
                                  DoubleNear(11 + 134.0 / 3, 1e-9)));
  EXPECT_NEAR(levels.spare_per_weight, 67.0 / 3, 1e-9);
}

TEST(ShareOutTest, RandomInstancesNeverGoBelowTheFairShare) {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    const auto [demands, weights, capacity] = RandomInstance(seed, 200, 0.5);
    const size_t n = demands.size();
    double sum_d = 0;
    for (double d : demands) sum_d += d;
    SCOPED_TRACE(testing::Message() << "seed " << seed << " n " << n);
    // The fair shares, checked against the optimality conditions.
    std::vector<double> fair;
    WaterFill(capacity, demands, weights, &fair);
    ExpectMaxMinOptimal(capacity, demands, weights, fair);
    if (HasFatalFailure()) return;
    std::vector<double> shares;
    ShareOut(capacity, demands, weights, 0.1, &shares);
    double total = 0;
    double headroom_wanted = 0;
    for (size_t i = 0; i < n; ++i) {
      ASSERT_GE(shares[i], fair[i] * (1 - 1e-12)) << "sidecar " << i;
      total += shares[i];
      headroom_wanted += 0.1 * demands[i];
    }
    EXPECT_NEAR(total, capacity, 1e-9 * capacity);
    if (sum_d >= capacity) {
      for (size_t i = 0; i < n; ++i) {
        ASSERT_NEAR(shares[i], fair[i], 1e-9 * capacity) << "sidecar " << i;
      }
    } else if (capacity - sum_d >= headroom_wanted * (1 + 1e-9)) {
      for (size_t i = 0; i < n; ++i) {
        ASSERT_GE(shares[i], 1.1 * demands[i] * (1 - 1e-12)) << "sidecar " << i;
      }
    }
  }
}

}  // namespace
}  // namespace sluice
