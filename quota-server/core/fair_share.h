#ifndef SLUICE_QUOTA_SERVER_CORE_FAIR_SHARE_H_
#define SLUICE_QUOTA_SERVER_CORE_FAIR_SHARE_H_

// Exact weighted max-min fairness (water-filling), see docs/leasing.md,
// "Allocation".

#include <span>
#include <vector>

namespace sluice {

// The outcome of one water-filling run.
struct WaterLevel {
  // The common level: every share is min(d_i, w_i * lambda). Infinity when
  // every demand is met (capacity >= sum of demands).
  double lambda = 0;
  // capacity - sum of shares, >= 0 (0 unless every demand is met).
  double spare = 0;
};

// Weighted max-min water-filling. Given `capacity` and, per sidecar,
// demands[i] >= 0 and weights[i] > 0 (same length), sets (*shares)[i] =
// min(demands[i], weights[i] * lambda) with sum = min(capacity, sum of
// demands): no share can grow without shrinking one at or below its
// normalised level s_j / w_j. Negative or non-finite demands count as 0, a
// capacity <= 0 gives all zeros. O(n log n): one sort by d_i / w_i and one
// pass.
WaterLevel WaterFill(double capacity, std::span<const double> demands,
                     std::span<const double> weights,
                     std::vector<double>* shares);

// Hands the spare capacity (capacity - sum of shares, if positive) out in
// proportion to weight, adding it to `shares` (same length as `weights`),
// so idle capacity is pre-positioned where demand may grow. Returns the
// spare handed out per unit of weight (0 when there is none).
double DistributeSpare(double capacity, std::span<const double> weights,
                       std::span<double> shares);

// The levels of one ShareOut run.
struct ShareLevels {
  // The max-min level of the demands (WaterLevel::lambda): infinite when
  // every demand is met.
  double lambda = 0;
  // The max-min level of the headroom pass: each share above its demand
  // is min(headroom * d_i, w_i * headroom_lambda). 0 while demands are not
  // all met, infinite when every headroom is met too.
  double headroom_lambda = 0;
  // What is left after both passes, per unit of weight (DistributeSpare).
  double spare_per_weight = 0;
};

// The shares the quota server leases by (docs/leasing.md, "Allocation"):
//  1. exact weighted max-min of the demands (WaterFill);
//  2. only if every demand is met, the spare tops each share up by at most
//     `headroom` * d_i, itself shared weighted max-min, so a low estimate
//     of a growing demand is not left short;
//  3. what is still left goes out by weight (DistributeSpare).
// No share is ever below its exact max-min value: headroom comes only out
// of capacity that no demand wants. `headroom` >= 0.
ShareLevels ShareOut(double capacity, std::span<const double> demands,
                     std::span<const double> weights, double headroom,
                     std::vector<double>* shares);

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_CORE_FAIR_SHARE_H_
