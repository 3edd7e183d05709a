#ifndef SLUICE_PROXY_ADMIN_SERVER_H_
#define SLUICE_PROXY_ADMIN_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace sluice {

// What the admin endpoints serve. Each function may be called from any
// thread running the io_context, concurrently with itself. An unset
// function makes its endpoint 404 (ready: unset means always ready). A
// function that throws gives a 500.
struct AdminHandlers {
  std::function<std::string()> metrics;      // GET /metrics
  std::function<bool()> ready;               // GET /readyz
  std::function<std::string()> config_yaml;  // GET /config
};

// A small HTTP/1.1 server for operators, on its own listener:
//   GET /metrics  -> 200 text/plain; version=0.0.4 (Prometheus text)
//   GET /healthz  -> 200 "ok" while the process runs
//   GET /readyz   -> 200 "ready", or 503 "not ready" (e.g. while draining)
//   GET /config   -> 200 application/yaml
// HEAD works wherever GET does. Unknown paths get 404, other methods 405
// (CONNECT included), and any target that is not origin-form ("/path",
// e.g. an absolute URL) 400: this listener never proxies anything.
// Requests may not have a body (413) and their header is limited to 8 KiB
// (431). Each read or write must finish within 5 s, and at most 64
// connections are served at once; more are closed on accept.
class AdminServer {
 public:
  static constexpr size_t kMaxConnections = 64;
  static constexpr size_t kMaxHeaderBytes = 8 * 1024;
  static constexpr Duration kIoTimeout = std::chrono::seconds(5);

  // Binds `host` (an IP literal) and `port` (0 picks a free port) and starts
  // accepting on `io`. Returns an error naming the address if the bind
  // fails. Serving happens on whichever threads run `io`.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(
      boost::asio::io_context& io, std::string host, uint16_t port,
      AdminHandlers handlers);

  // Stops (see Stop). Connections already accepted are closed by the time
  // `io` runs their next handler; no handler is called after Stop returns
  // except by a request that was already being answered.
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The port actually bound.
  uint16_t port() const { return port_; }

  // Closes the listener now and every live connection soon (on its own
  // strand). Idempotent; safe from any thread.
  void Stop();

 private:
  class Impl;
  class Connection;

  AdminServer(std::shared_ptr<Impl> impl, uint16_t port);

  std::shared_ptr<Impl> impl_;
  uint16_t port_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_ADMIN_SERVER_H_
