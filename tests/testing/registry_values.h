#ifndef SLUICE_TESTS_TESTING_REGISTRY_VALUES_H_
#define SLUICE_TESTS_TESTING_REGISTRY_VALUES_H_

// Reading series back out of a prometheus-cpp registry in a test.

#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace sluice::test {

using Labels = std::map<std::string, std::string>;

// The collected series `name` with exactly `labels`, if present.
std::optional<prometheus::ClientMetric> FindSeries(
    prometheus::Registry& registry, const std::string& name,
    const Labels& labels);

// Number of series in family `name` (0 when there is no such family).
size_t SeriesCount(prometheus::Registry& registry, const std::string& name);

// The value of a counter / gauge series; a test failure and -1 when the
// series does not exist.
double CounterValue(prometheus::Registry& registry, const std::string& name,
                    const Labels& labels = {});
double GaugeValue(prometheus::Registry& registry, const std::string& name,
                  const Labels& labels = {});

// Cumulative count of the histogram bucket with upper bound `le`; a test
// failure and 0 when there is no such bucket.
uint64_t BucketCount(const prometheus::ClientMetric& metric, double le);

}  // namespace sluice::test

#endif  // SLUICE_TESTS_TESTING_REGISTRY_VALUES_H_
