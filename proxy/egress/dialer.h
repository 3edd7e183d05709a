#ifndef SLUICE_PROXY_EGRESS_DIALER_H_
#define SLUICE_PROXY_EGRESS_DIALER_H_

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "common/time/clock.h"
#include "proxy/egress/dial_error.h"
#include "proxy/egress/ssrf_guard.h"

namespace sluice {

// Outcome of resolving and connecting to an origin.
struct DialResult {
  std::unique_ptr<boost::beast::tcp_stream> stream;  // set on success
  DialError error = DialError::kNone;
  // kDenied: the guard's verdict on the first address it refused.
  DenyReason denial = DenyReason::kNone;
  std::string detail;  // for the person reading the error
  std::string peer;    // "ip:port" actually dialled

  // The machine-readable reason clients and logs see: the guard's rule
  // (DenyReasonName) for kDenied, DialErrorName otherwise.
  std::string_view reason() const;
};

// Resolves `host`, classifies every address with `guard`, and connects to
// the first allowed address, dialling exactly the address that was checked.
// A host that is an IP literal in any spelling (decimal, hex, short forms)
// is classified without DNS. The whole operation, DNS included, is bounded
// by `timeout`. The budget is kept on `clock` (what is left for connecting
// is `timeout` less what the clock says resolving took); the waits
// themselves are Asio's timers, on real time.
boost::asio::awaitable<DialResult> DialOrigin(const std::string& host,
                                              uint16_t port,
                                              const SsrfGuard& guard,
                                              Duration timeout, Clock* clock);

}  // namespace sluice

#endif  // SLUICE_PROXY_EGRESS_DIALER_H_
