#ifndef SLUICE_PROXY_SERVER_TUNNEL_H_
#define SLUICE_PROXY_SERVER_TUNNEL_H_

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <cstdint>

#include "common/time/clock.h"

namespace sluice {

struct TunnelStats {
  uint64_t client_to_upstream = 0;
  uint64_t upstream_to_client = 0;
  bool idle_timeout = false;
};

// Relays bytes both ways between an accepted CONNECT client and the origin
// until both sides have closed, an error occurs, or no byte has moved in
// either direction for `idle`. `buffer_bytes` bounds each direction's
// buffer. When one side half-closes, the other side's write half is shut
// down and the opposite direction keeps flowing.
//
// Idleness is measured on `clock`. A watchdog timer (Asio's, on real time)
// looks at it every idle/4, but not more often than every 10 ms, so the
// tunnel closes between `idle` and about 1.25 x `idle` after the last byte
// moved; with a clock moved by hand, at the first look after the clock has
// passed `idle` since the last byte.
boost::asio::awaitable<TunnelStats> RelayTunnel(
    boost::beast::tcp_stream& client, boost::beast::tcp_stream& upstream,
    Duration idle, size_t buffer_bytes, Clock* clock);

}  // namespace sluice

#endif  // SLUICE_PROXY_SERVER_TUNNEL_H_
