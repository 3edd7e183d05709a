#ifndef SLUICE_PROXY_EGRESS_DIALER_H_
#define SLUICE_PROXY_EGRESS_DIALER_H_

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <memory>
#include <string>

#include "common/time/clock.h"
#include "proxy/egress/ssrf_guard.h"

namespace sluice {

// Outcome of resolving and connecting to an origin.
struct DialResult {
  std::unique_ptr<boost::beast::tcp_stream> stream;  // set on success
  unsigned status = 0;  // on failure: 400, 403, 502 or 504
  std::string reason;   // machine-readable: "dns", "refused", "ssrf", ...
  std::string detail;   // for the person reading the error
  std::string peer;     // "ip:port" actually dialled
};

// Resolves `host`, classifies every address with `guard`, and connects to
// the first allowed address, dialling exactly the address that was checked.
// A host that is an IP literal in any spelling (decimal, hex, short forms)
// is classified without DNS. The whole operation, DNS included, is bounded
// by `timeout`; running out of time gives 504, other failures 502, SSRF
// denials 403 with the DenyReason name as `reason`.
boost::asio::awaitable<DialResult> DialOrigin(const std::string& host,
                                              uint16_t port,
                                              const SsrfGuard& guard,
                                              Duration timeout);

}  // namespace sluice

#endif  // SLUICE_PROXY_EGRESS_DIALER_H_
