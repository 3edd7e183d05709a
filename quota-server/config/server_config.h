#ifndef SLUICE_QUOTA_SERVER_CONFIG_SERVER_CONFIG_H_
#define SLUICE_QUOTA_SERVER_CONFIG_SERVER_CONFIG_H_

// sluice-quota-server's configuration as plain structs with their defaults.
// server_config_loader.h reads them from YAML and validates them; the
// example quota-server/sluice-quota-server.example.yaml documents every
// field.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/pause/pause_schedule.h"
#include "common/protocol/unavailable_policy.h"
#include "common/time/clock.h"

namespace sluice {

// How a resource with `learn` on learns its upstream's real limit
// (LimitLearner, docs/pause.md "Learned limits").
struct LearnOptions {
  double decrease = 0.7;   // (0, 1)
  double increase = 0.02;  // of the configured rate per second, > 0
  Duration hold = std::chrono::seconds(5);
  double floor = 0.05;  // of the configured rate, (0, 1]
  Duration stated_ttl = std::chrono::seconds(60);
  bool operator==(const LearnOptions&) const = default;
};

// Lease tuning for one resource (see docs/leasing.md).
struct LeaseTuning {
  // Leased tokens die this long after the sidecar made the report the
  // grant answers (LeaseGrant.report_seq), at the latest.
  Duration ttl = std::chrono::seconds(1);
  // A sidecar aims to hold this much of its share in tokens. Capped at
  // burst / (2 * rate) so the fleet's targets fit in the burst.
  Duration horizon = std::chrono::milliseconds(200);
  // Sidecars report at least this often; at most ttl / 2.
  Duration refresh = std::chrono::milliseconds(100);
  // Assumed bound on one-way message delay: a closed stream's tokens are
  // forgotten ttl + grace after its last grant.
  Duration grace = std::chrono::milliseconds(500);
  bool operator==(const LeaseTuning&) const = default;
};

// One resource ("resources.<name>" in YAML): one upstream API's limit.
struct ResourceConfig {
  std::string name;  // [A-Za-z0-9_.-]{1,64}
  // `rate` tokens every `period`; both > 0.
  double rate = 0;
  Duration period = std::chrono::seconds(1);
  double burst = 1;  // >= 1
  // "gcra" or "token_bucket": both bound the fleet to rate*W + burst in any
  // window W; kept for symmetry with the proxy's local limits.
  std::string algorithm = "gcra";
  // Split into one bucket per key hash the sidecars report.
  bool per_key = false;
  UnavailablePolicy unavailable_policy = UnavailablePolicy::kFallbackShare;
  LeaseTuning lease;
  // The fleet-wide pause after a throttle (docs/pause.md).
  PauseSchedule::Options pause;
  // Learn the upstream's real limit from its throttles (docs/pause.md,
  // "Learned limits"); the rate in force is min(configured, learned).
  bool learn = false;
  LearnOptions learn_options;

  double RatePerSecond() const;
  bool operator==(const ResourceConfig&) const = default;
};

// The fast path (docs/pause.md, "Fast path"; docs/leasing.md, "Leases over
// the fast path"): UDP beside the gRPC listener, on the same host.
struct FastPathConfig {
  bool enabled = true;
  // 0: the gRPC listener's port number (UDP and TCP ports are distinct), or
  // any free port if that one is taken. Another value must bind.
  uint16_t port = 0;
  // Offer leases over datagrams too (docs/leasing.md, "Leases over the fast
  // path"): demand reports and grants skip gRPC while UDP works.
  bool leases = true;
  bool operator==(const FastPathConfig&) const = default;
};

struct ServerConfig {
  // gRPC listener for sidecars ("host:port", IP literal; port 0 = any free).
  std::string listen = "127.0.0.1:7070";
  // Admin HTTP listener (/metrics, /healthz, /readyz, /status, /, /limits).
  // "" or "off" disables it.
  std::string admin_listen = "127.0.0.1:9902";
  // Restart safety (docs/leasing.md, "Restart safety"). Turning it off
  // lets a restarted server over-grant by up to one burst.
  bool learning = true;
  FastPathConfig fast_path;
  std::vector<ResourceConfig> resources;
  bool operator==(const ServerConfig&) const = default;
};

// Checks every field; the error names the field ("resources.openai.rate:
// must be > 0").
absl::Status ValidateServerConfig(const ServerConfig& config);

// Parses YAML text (unknown keys are errors, naming the field).
absl::StatusOr<ServerConfig> ParseServerConfig(std::string_view yaml);
// Reads and parses a file; errors name the file.
absl::StatusOr<ServerConfig> LoadServerConfigFile(const std::string& path);

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_CONFIG_SERVER_CONFIG_H_
