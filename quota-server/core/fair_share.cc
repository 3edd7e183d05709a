#include "quota-server/core/fair_share.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace sluice {
namespace {

double CleanDemand(double d) { return std::isfinite(d) && d > 0 ? d : 0; }

}  // namespace

WaterLevel WaterFill(double capacity, std::span<const double> demands,
                     std::span<const double> weights,
                     std::vector<double>* shares) {
  const size_t n = demands.size();
  shares->assign(n, 0.0);
  WaterLevel result;
  if (!(capacity > 0) || n == 0) {
    result.lambda = n == 0 ? std::numeric_limits<double>::infinity() : 0;
    result.spare = n == 0 && capacity > 0 ? capacity : 0;
    return result;
  }
  // Visit sidecars from the lowest normalised demand d_i / w_i up. While
  // the capacity left, spread evenly by weight over the sidecars not yet
  // visited, covers the next one's demand, that sidecar is satisfied;
  // the first one it does not cover fixes lambda for all the rest.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return CleanDemand(demands[a]) * weights[b] <
           CleanDemand(demands[b]) * weights[a];
  });
  // Suffix sums of weights in visiting order, so the remaining weight never
  // drifts through repeated subtraction.
  std::vector<double> weight_left(n + 1, 0.0);
  for (size_t k = n; k-- > 0;) {
    weight_left[k] = weight_left[k + 1] + weights[order[k]];
  }
  double left = capacity;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = order[k];
    const double d = CleanDemand(demands[i]);
    if (d * weight_left[k] <= left * weights[i]) {
      (*shares)[i] = d;
      left = std::max(0.0, left - d);
      continue;
    }
    const double lambda = left / weight_left[k];
    for (size_t j = k; j < n; ++j) {
      const size_t m = order[j];
      (*shares)[m] = std::min(CleanDemand(demands[m]), weights[m] * lambda);
    }
    result.lambda = lambda;
    result.spare = 0;
    return result;
  }
  result.lambda = std::numeric_limits<double>::infinity();
  result.spare = left;
  return result;
}

double DistributeSpare(double capacity, std::span<const double> weights,
                       std::span<double> shares) {
  double used = 0;
  double total_weight = 0;
  for (size_t i = 0; i < shares.size(); ++i) {
    used += shares[i];
    total_weight += weights[i];
  }
  const double spare = capacity - used;
  if (!(spare > 0) || !(total_weight > 0)) return 0;
  const double per_weight = spare / total_weight;
  for (size_t i = 0; i < shares.size(); ++i) {
    shares[i] += weights[i] * per_weight;
  }
  return per_weight;
}

ShareLevels ShareOut(double capacity, std::span<const double> demands,
                     std::span<const double> weights, double headroom,
                     std::vector<double>* shares) {
  ShareLevels levels;
  const WaterLevel level = WaterFill(capacity, demands, weights, shares);
  levels.lambda = level.lambda;
  if (level.spare > 0 && headroom > 0) {
    std::vector<double> extra_wanted(demands.size());
    for (size_t i = 0; i < demands.size(); ++i) {
      extra_wanted[i] = headroom * CleanDemand(demands[i]);
    }
    std::vector<double> extra;
    levels.headroom_lambda =
        WaterFill(level.spare, extra_wanted, weights, &extra).lambda;
    for (size_t i = 0; i < extra.size(); ++i) (*shares)[i] += extra[i];
  }
  levels.spare_per_weight = DistributeSpare(capacity, weights, *shares);
  return levels;
}

}  // namespace sluice
