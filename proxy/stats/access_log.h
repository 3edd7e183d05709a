#ifndef SLUICE_PROXY_STATS_ACCESS_LOG_H_
#define SLUICE_PROXY_STATS_ACCESS_LOG_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/time/clock.h"

namespace spdlog {
class logger;
}  // namespace spdlog

namespace sluice {

// One finished client request, as the access log sees it. The views only
// need to stay valid for the duration of AccessLog::Write.
struct AccessRecord {
  std::string_view method;
  std::string_view host;
  // Path only: a query string can hold secrets and is never logged (Write
  // drops anything from the first '?' or '#' as a safety net).
  std::string_view path;
  std::string_view route;
  std::string_view limit;  // empty when no limit applied
  int status = 0;
  std::string_view outcome;  // OutcomeName(...)
  Duration wait{};
  Duration upstream_duration{};
  Duration total_duration{};
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::string_view client;  // "ip:port"
  bool limited_by_sluice = false;
};

// Writes one JSON object per line for each request:
//   {"ts":"2024-05-01T12:00:00.123Z","method":"GET","host":"api.example.com",
//    "path":"/v1/x","route":"...","limit":"...","status":200,
//    "outcome":"forwarded","wait_ms":0.0,"upstream_ms":12.5,
//    "duration_ms":13.1,"bytes_in":120,"bytes_out":5400,
//    "client":"127.0.0.1:50123","limited_by_sluice":false}
// Durations are milliseconds with microsecond precision (JSON numbers;
// Boost.JSON writes them in exponent form, e.g. 1.25E1). ts is UTC wall
// time. Header values are never logged. Strings that are not valid UTF-8
// have the bad bytes replaced by U+FFFD so every line parses as JSON.
//
// Lines are buffered and flushed by Flush(), at least once a second by a
// background thread, and on destruction. All methods are thread-safe.
class AccessLog {
 public:
  // `enabled` false gives a log whose Write is a no-op. `path` "-" means
  // stdout; otherwise the file is created or appended to. Lines are dated
  // by `clock`'s wall time; it must outlive the log. Fails (naming the
  // path) if the file cannot be opened.
  static absl::StatusOr<std::unique_ptr<AccessLog>> Open(
      bool enabled, const std::string& path, const Clock* clock);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  bool enabled() const { return logger_ != nullptr; }

  // Appends one line for `record`. Never throws.
  void Write(const AccessRecord& record);

  // Pushes buffered lines to the file or stdout.
  void Flush();

  // The line Write would log for `record` at wall time `ts` (without the
  // trailing newline). Exposed for tests.
  static std::string Format(const AccessRecord& record, absl::Time ts);

 private:
  AccessLog(std::shared_ptr<spdlog::logger> logger, const Clock* clock);
  void FlushLoop();

  std::shared_ptr<spdlog::logger> logger_;  // null when disabled
  const Clock* clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread flusher_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_STATS_ACCESS_LOG_H_
