#include "tests/testing/registry_values.h"

#include <gtest/gtest.h>

namespace sluice::test {

std::optional<prometheus::ClientMetric> FindSeries(
    prometheus::Registry& registry, const std::string& name,
    const Labels& labels) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      Labels got;
      for (const auto& l : metric.label) got[l.name] = l.value;
      if (got == labels) return metric;
    }
  }
  return std::nullopt;
}

size_t SeriesCount(prometheus::Registry& registry, const std::string& name) {
  for (const auto& family : registry.Collect()) {
    if (family.name == name) return family.metric.size();
  }
  return 0;
}

double CounterValue(prometheus::Registry& registry, const std::string& name,
                    const Labels& labels) {
  auto metric = FindSeries(registry, name, labels);
  EXPECT_TRUE(metric.has_value()) << name;
  return metric ? metric->counter.value : -1;
}

double GaugeValue(prometheus::Registry& registry, const std::string& name,
                  const Labels& labels) {
  auto metric = FindSeries(registry, name, labels);
  EXPECT_TRUE(metric.has_value()) << name;
  return metric ? metric->gauge.value : -1;
}

uint64_t BucketCount(const prometheus::ClientMetric& metric, double le) {
  for (const auto& b : metric.histogram.bucket) {
    if (b.upper_bound == le) return b.cumulative_count;
  }
  ADD_FAILURE() << "no bucket le=" << le;
  return 0;
}

}  // namespace sluice::test
