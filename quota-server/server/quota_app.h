#ifndef SLUICE_QUOTA_SERVER_SERVER_QUOTA_APP_H_
#define SLUICE_QUOTA_SERVER_SERVER_QUOTA_APP_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/time/clock.h"
#include "quota-server/config/server_config.h"

namespace sluice {

// sluice-quota-server as a whole: the gRPC lease service, the admin/status
// listener, the allocator's tick, and live reconfiguration.
//
// Threads: gRPC's own pool runs the stream reactors; one thread runs the
// admin listener; the thread that calls Run() ticks the allocator every
// 50 ms, waits for signals (SIGTERM/SIGINT stop, SIGHUP reloads) and checks
// the config file for changes once a second.
class QuotaApp {
 public:
  // Validates `config`. `config_path` (may be empty: embedded defaults) is
  // what SIGHUP and the file watch reload. Everything reads the time from
  // `clock`, which must outlive the app.
  static absl::StatusOr<std::unique_ptr<QuotaApp>> Create(
      ServerConfig config, std::string config_path,
      Clock* clock = SystemClock::Get());
  ~QuotaApp();
  QuotaApp(const QuotaApp&) = delete;
  QuotaApp& operator=(const QuotaApp&) = delete;

  // Binds the listeners (errors name the address or field) and prints
  // "sluice-quota-server listening grpc=HOST:PORT admin=HOST:PORT
  // fast_path_udp=PORT|off" on stderr.
  absl::Status Start();

  // Blocks until SIGTERM or SIGINT, then stops: streams are finished with
  // UNAVAILABLE so sidecars fail over at once. The caller must have blocked
  // SIGTERM, SIGINT and SIGHUP in every thread (BlockSignals, before any
  // thread starts). Returns the exit code.
  int Run();

  // Blocks the signals Run() waits for in the calling thread (and the
  // threads it creates later). Call first thing in main.
  static void BlockSignals();

  // Re-reads the config file now (what SIGHUP does). An invalid file is
  // logged and changes nothing.
  absl::Status Reload();

  uint16_t grpc_port() const;
  uint16_t admin_port() const;

 private:
  struct Impl;
  // Binds the fast path's UDP socket on `host` (config fast_path).
  absl::Status StartFastPath(const std::string& host);
  explicit QuotaApp(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice

#endif  // SLUICE_QUOTA_SERVER_SERVER_QUOTA_APP_H_
