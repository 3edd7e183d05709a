#ifndef SLUICE_PROXY_APP_PROXY_APP_H_
#define SLUICE_PROXY_APP_PROXY_APP_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/time/clock.h"
#include "proxy/config/config.h"

namespace sluice {

class ProxyMetrics;
struct LimitRuntime;

// The version this binary was built as (the project version, or "dev" when
// built without one). Reported by --version and build_info.
std::string_view ProxyVersion();

// The whole sluice-proxy process: listeners, worker threads, limiters,
// admin endpoint and graceful shutdown. Built from a validated config.
class ProxyApp {
 public:
  // Builds every component. Errors name the offending config field. Every
  // component reads the time from `clock`, which must outlive the app; the
  // I/O's own timers (Asio's) run on real time whatever the clock.
  static absl::StatusOr<std::unique_ptr<ProxyApp>> Create(ProxyConfig config,
                                                          Clock* clock);
  ~ProxyApp();

  // Binds the proxy and admin listeners. After it returns OK, ports are
  // known and a "sluice-proxy listening ..." line is on stderr.
  absl::Status Bind();

  // Serves until SIGTERM/SIGINT (or Shutdown()), then drains in-flight
  // requests for at most shutdown_grace. Returns the process exit code.
  int Run();

  // Starts a graceful shutdown from any thread.
  void Shutdown();

  // Actual bound ports (after Bind()).
  uint16_t proxy_port() const;
  uint16_t admin_port() const;

  // The process's metrics (valid for the app's lifetime).
  const ProxyMetrics& metrics() const;

  // What GET /metrics serves: gauges sampled at call time (pool, lease
  // state) refreshed first. Thread-safe.
  std::string MetricsText();

  // What /readyz appends to its body: in leased mode, whether the quota
  // stream is connected and each leased limit's LeaseMode (see
  // LeaseReadyDetail); "" when no limit is leased. Thread-safe.
  std::string ReadyDetail();

  // The runtime of the limit called `name` (its limiter, and its lease
  // pool when leased), or nullptr. Valid for the app's lifetime.
  const LimitRuntime* FindLimit(std::string_view name) const;

 private:
  ProxyApp();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_APP_PROXY_APP_H_
