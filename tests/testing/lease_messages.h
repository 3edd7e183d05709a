#ifndef SLUICE_TESTS_TESTING_LEASE_MESSAGES_H_
#define SLUICE_TESTS_TESTING_LEASE_MESSAGES_H_

// Lease protocol messages for tests, built from a few named fields (the
// rest as a sidecar or a server of this version sends them). Use with
// designated initialisers: DemandMessage({.queued = 5, .seen = 2}).

#include <cstdint>
#include <string>

#include "sluice/v1/quota.pb.h"

namespace sluice::test {

struct Hello {
  std::string sidecar_id;
  double weight = 1;
  uint32_t protocol_version = 1;
  std::string instance;  // Hello.instance (empty: none)
};
// A Hello from `sidecar_id` on pod "<sidecar_id>-pod".
sluice::v1::SidecarMessage HelloMessage(const Hello& hello);

struct Demand {
  double allowed = 0;
  double denied = 0;
  double queued = 0;
  uint64_t elapsed_ms = 100;
  double held = 0;
  uint64_t seen = 0;  // grant_seq_seen
  std::string resource = "api";
  std::string key;  // key_hash
};
sluice::v1::SidecarMessage DemandMessage(const Demand& demand);

struct Grant {
  std::string resource = "api";
  std::string key;  // key_hash
  double tokens = 0;
  uint64_t seq = 0;
  double target = 0;
  uint32_t ttl_ms = 2000;
  double share = 10;  // share_per_second
  uint32_t refresh_ms = 0;
  uint64_t epoch = 42;
  uint64_t report_seq = 0;  // the report it echoes (0: none)
};
sluice::v1::ServerMessage GrantMessage(const Grant& grant);

struct Limit {
  std::string resource = "api";
  double rate = 10;  // per second
  double burst = 10;
  sluice::v1::UnavailablePolicy policy = sluice::v1::FALLBACK_SHARE;
  uint32_t sidecars = 1;
  uint64_t epoch = 42;
};
sluice::v1::ServerMessage LimitMessage(const Limit& limit);

}  // namespace sluice::test

#endif  // SLUICE_TESTS_TESTING_LEASE_MESSAGES_H_
