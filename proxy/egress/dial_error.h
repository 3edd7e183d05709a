#ifndef SLUICE_PROXY_EGRESS_DIAL_ERROR_H_
#define SLUICE_PROXY_EGRESS_DIAL_ERROR_H_

#include <string_view>

namespace sluice {

// Why a dial to an origin failed. What a failure means to the client (an
// HTTP status) is the caller's business.
enum class DialError {
  kNone,
  kBadHost,         // looks numeric but is no valid address (never resolved)
  kDnsTimeout,      // resolution did not finish in time
  kDns,             // resolution failed, or gave no address
  kDenied,          // every address is one the SSRF guard refuses
  kConnectTimeout,  // no connection in time
  kRefused,         // the origin refused the connection
  kConnect,         // any other connect failure
};

// "bad_host", "dns_timeout", "dns", "denied", "connect_timeout", "refused",
// "connect"; "" for kNone.
std::string_view DialErrorName(DialError error);

}  // namespace sluice

#endif  // SLUICE_PROXY_EGRESS_DIAL_ERROR_H_
