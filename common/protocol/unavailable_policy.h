#ifndef SLUICE_COMMON_PROTOCOL_UNAVAILABLE_POLICY_H_
#define SLUICE_COMMON_PROTOCOL_UNAVAILABLE_POLICY_H_

#include <optional>
#include <string_view>

#include "sluice/v1/quota.pb.h"

namespace sluice {

// What a sidecar does for a leased resource while the quota server cannot
// be reached and its held tokens are gone (docs/leasing.md). The server's
// config names it per resource; LimitUpdate carries it to the sidecars.
enum class UnavailablePolicy {
  kFallbackShare,  // a local bucket at rate / sidecars
  kFailClosed,     // refuse
  kFailOpen,       // no limit
};

// "fallback_share" | "fail_closed" | "fail_open".
std::string_view UnavailablePolicyName(UnavailablePolicy policy);
// Inverse of UnavailablePolicyName (exact, lowercase names).
std::optional<UnavailablePolicy> ParseUnavailablePolicy(std::string_view name);

// To and from the wire. UNSPECIFIED and values this build does not know are
// kFallbackShare.
sluice::v1::UnavailablePolicy UnavailablePolicyToProto(
    UnavailablePolicy policy);
UnavailablePolicy UnavailablePolicyFromProto(
    sluice::v1::UnavailablePolicy policy);

}  // namespace sluice

#endif  // SLUICE_COMMON_PROTOCOL_UNAVAILABLE_POLICY_H_
