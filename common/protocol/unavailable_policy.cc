#include "common/protocol/unavailable_policy.h"

namespace sluice {

std::string_view UnavailablePolicyName(UnavailablePolicy policy) {
  switch (policy) {
    case UnavailablePolicy::kFallbackShare:
      return "fallback_share";
    case UnavailablePolicy::kFailClosed:
      return "fail_closed";
    case UnavailablePolicy::kFailOpen:
      return "fail_open";
  }
  return "fallback_share";
}

std::optional<UnavailablePolicy> ParseUnavailablePolicy(std::string_view name) {
  for (UnavailablePolicy p :
       {UnavailablePolicy::kFallbackShare, UnavailablePolicy::kFailClosed,
        UnavailablePolicy::kFailOpen}) {
    if (UnavailablePolicyName(p) == name) return p;
  }
  return std::nullopt;
}

sluice::v1::UnavailablePolicy UnavailablePolicyToProto(
    UnavailablePolicy policy) {
  switch (policy) {
    case UnavailablePolicy::kFailClosed:
      return sluice::v1::FAIL_CLOSED;
    case UnavailablePolicy::kFailOpen:
      return sluice::v1::FAIL_OPEN;
    case UnavailablePolicy::kFallbackShare:
      break;
  }
  return sluice::v1::FALLBACK_SHARE;
}

UnavailablePolicy UnavailablePolicyFromProto(
    sluice::v1::UnavailablePolicy policy) {
  switch (policy) {
    case sluice::v1::FAIL_CLOSED:
      return UnavailablePolicy::kFailClosed;
    case sluice::v1::FAIL_OPEN:
      return UnavailablePolicy::kFailOpen;
    default:  // UNSPECIFIED, FALLBACK_SHARE and values this build lacks.
      return UnavailablePolicy::kFallbackShare;
  }
}

}  // namespace sluice
