#ifndef SLUICE_QUOTA_SERVER_CORE_LEASE_MESSAGES_H_
#define SLUICE_QUOTA_SERVER_CORE_LEASE_MESSAGES_H_

// Builders for the messages the quota server sends. Every message carries
// protocol_version 1 and the server epoch.

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "quota-server/config/server_config.h"
#include "quota-server/core/resource_ledger.h"
#include "sluice/v1/quota.pb.h"

namespace sluice {

inline constexpr uint32_t kLeaseProtocolVersion = 1;

// A LeaseGrant for bucket (resource, key) with sequence number `seq`;
// ttl_ms and refresh_after_ms come from `lease`, valid_until_unix_ms is
// `wall_now` + ttl (informational only).
sluice::v1::ServerMessage MakeGrantMessage(
    uint64_t epoch, const std::string& resource, const std::string& key,
    const GrantOrder& order, uint64_t seq, const LeaseTuning& lease,
    absl::Time wall_now);

// A LimitUpdate for `config` as of `version`, counting `sidecars`.
sluice::v1::ServerMessage MakeLimitMessage(uint64_t epoch,
                                           const ResourceConfig& config,
                                           uint32_t sidecars, uint64_t version);

// A Pause for bucket (resource, key): `order` says to whom and how long,
// `view` why and from whom; `ramp` is the resume ramp's length.
sluice::v1::ServerMessage MakePauseMessage(
    uint64_t epoch, const std::string& resource, const std::string& key,
    const PauseOrder& order, const FleetPause::View& view, Duration ramp);

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_CORE_LEASE_MESSAGES_H_
