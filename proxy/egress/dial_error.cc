#include "proxy/egress/dial_error.h"

namespace sluice {

std::string_view DialErrorName(DialError error) {
  switch (error) {
    case DialError::kNone:
      return "";
    case DialError::kBadHost:
      return "bad_host";
    case DialError::kDnsTimeout:
      return "dns_timeout";
    case DialError::kDns:
      return "dns";
    case DialError::kDenied:
      return "denied";
    case DialError::kConnectTimeout:
      return "connect_timeout";
    case DialError::kRefused:
      return "refused";
    case DialError::kConnect:
      return "connect";
  }
  return "connect";
}

}  // namespace sluice
