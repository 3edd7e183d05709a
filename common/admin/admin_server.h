#ifndef SLUICE_COMMON_ADMIN_ADMIN_SERVER_H_
#define SLUICE_COMMON_ADMIN_ADMIN_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/time/clock.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace sluice {

// What the admin endpoints serve. Each function may be called from any
// thread running the io_context, concurrently with itself. An unset
// function makes its endpoint 404 (ready: unset means always ready). A
// function that throws gives a 500.
struct AdminRequest {
  std::string method;  // "GET", "HEAD" or "POST"
  std::string path;    // decoded path, e.g. "/limits/openai"
  // Decoded query parameters ("?rate=10&burst=5"); the last value of a
  // repeated key wins.
  std::map<std::string, std::string> query;
};
struct AdminResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};
using AdminRoute = std::function<AdminResponse(const AdminRequest&)>;

struct AdminHandlers {
  std::function<std::string()> metrics;      // GET /metrics
  std::function<bool()> ready;               // GET /readyz
  std::function<std::string()> config_yaml;  // GET /config
  // Appended to the /readyz body (e.g. which quota policy is in force).
  std::function<std::string()> ready_detail;
  // Further GET/HEAD routes by exact path ("/status", "/").
  std::map<std::string, AdminRoute> get_routes;
  // POST routes by path prefix ("/limits/" matches "/limits/openai"). POSTs
  // carry no body (413 otherwise): parameters go in the query string.
  std::map<std::string, AdminRoute> post_prefix_routes;
};

// A small HTTP/1.1 server for operators, on its own listener:
//   GET /metrics  -> 200 text/plain; version=0.0.4 (Prometheus text)
//   GET /healthz  -> 200 "ok" while the process runs
//   GET /readyz   -> 200 "ready", or 503 "not ready" (e.g. while draining)
//   GET /config   -> 200 application/yaml
//   GET <path>    -> AdminHandlers::get_routes
//   POST <prefix>... -> AdminHandlers::post_prefix_routes
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

#endif  // SLUICE_COMMON_ADMIN_ADMIN_SERVER_H_
