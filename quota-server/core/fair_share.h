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

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_CORE_FAIR_SHARE_H_
