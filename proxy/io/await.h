#ifndef SLUICE_PROXY_IO_AWAIT_H_
#define SLUICE_PROXY_IO_AWAIT_H_

// What the proxy's coroutines (egress, limit, server) share about awaiting
// Asio operations: no operation throws into a coroutine, every error comes
// back as a value.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice {

// Completion token for awaited operations that report errors as values:
//   auto [ec, n] = co_await socket.async_read_some(buffer, kNoThrow);
inline constexpr auto kNoThrow =
    boost::asio::as_tuple(boost::asio::use_awaitable);

}  // namespace sluice

#endif  // SLUICE_PROXY_IO_AWAIT_H_
