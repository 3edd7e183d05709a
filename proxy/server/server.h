#ifndef SLUICE_PROXY_SERVER_SERVER_H_
#define SLUICE_PROXY_SERVER_SERVER_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <list>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "proxy/config/config.h"
#include "proxy/server/proxy_context.h"

namespace sluice {

class Session;

// Accepts client connections on one or more addresses and hands each to a
// Session on its own strand. Enforces limits.max_connections: a connection
// over the limit gets a 503 and is closed.
class Server {
 public:
  Server(boost::asio::io_context& io, ProxyContext& ctx);
  ~Server();

  // Binds and listens on `addr`. Returns the bound endpoint's error naming
  // the address on failure.
  absl::StatusOr<boost::asio::ip::tcp::endpoint> Listen(
      const ListenAddress& addr);

  // Starts accepting on every bound listener.
  void Start();

  // Stops accepting (listeners close) and asks live sessions to finish:
  // idle keep-alive connections close now, busy ones after their response.
  void StopAccepting();

  // Force-closes every live session (end of the grace period).
  void CloseAll();

 private:
  void DoAccept(size_t index);
  void Track(const std::shared_ptr<Session>& s);

  boost::asio::io_context& io_;
  ProxyContext& ctx_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::mutex mu_;
  std::list<std::weak_ptr<Session>> sessions_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_SERVER_SERVER_H_
