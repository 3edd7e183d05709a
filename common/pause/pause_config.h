#ifndef SLUICE_COMMON_PAUSE_PAUSE_CONFIG_H_
#define SLUICE_COMMON_PAUSE_PAUSE_CONFIG_H_

#include <yaml-cpp/yaml.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/pause/pause_schedule.h"

namespace sluice {

// Reads a `pause:` map (the same fields in the proxy's limits and the quota
// server's resources) over the defaults already in `out`:
//
//   pause:
//     default: 1s        # pause when the upstream gave no usable hint
//     max: 5m            # clamp for every pause, hinted or not
//     backoff: 2         # factor per repeated throttle, 1..100
//     probe_timeout: 2s  # wait for the probe's answer, then ramp anyway
//     ramp: 5s           # linear ramp to the full rate (0: none)
//     ramp_start: 0.1    # fraction of the rate at the ramp's start, (0, 1]
//
// Errors name the field ("rate_limits.openai.pause.max: ...").
absl::Status ReadPauseOptions(const YAML::Node& node, absl::string_view path,
                              PauseSchedule::Options* out);

// Checks cross-field rules (default <= max); the error names `path`.
absl::Status ValidatePauseOptions(const PauseSchedule::Options& options,
                                  absl::string_view path);

}  // namespace sluice

#endif  // SLUICE_COMMON_PAUSE_PAUSE_CONFIG_H_
