#ifndef SLUICE_PROXY_CONFIG_CONFIG_THROTTLE_H_
#define SLUICE_PROXY_CONFIG_CONFIG_THROTTLE_H_

// The `throttle:` block of a limit: YAML in and out. Internal to the config
// loader and dump.

#include <yaml-cpp/yaml.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proxy/config/config.h"

namespace sluice {

// Reads `rate_limits.<name>.throttle` over the defaults in `out`:
//
//   throttle:
//     enabled: true
//     statuses: [429, 503]        # always a throttle
//     when_exhausted: [403, 200]  # a throttle when remaining is 0
//     reset_style: auto           # auto | epoch | delta
//     broadcast: true             # report to the quota server
//     resume_jitter: 50ms
//     ignore:                     # not quota signals
//       - {status: 529}
//       - {status: 429, header: stripe-rate-limited-reason,
//          value: lock_timeout}
//       - {status: 429, body: "\"code\":\"lock_timeout\""}
//     body_peek_bytes: 4096       # read ahead for body rules, 1..65536
//     pause: {default: 1s, max: 5m, backoff: 2, probe_timeout: 2s,
//             ramp: 5s, ramp_start: 0.1}
//
// `throttle: off` (or false) disables it. Errors name the field.
absl::Status ParseThrottleConfig(const YAML::Node& node, absl::string_view path,
                                 ThrottleConfig* out);

// Writes `throttle` as a map that ParseThrottleConfig reads back equal.
void EmitThrottleConfig(YAML::Emitter& out, const ThrottleConfig& throttle);

}  // namespace sluice

#endif  // SLUICE_PROXY_CONFIG_CONFIG_THROTTLE_H_
