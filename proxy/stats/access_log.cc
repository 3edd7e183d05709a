#include "proxy/stats/access_log.h"

#include <spdlog/logger.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <algorithm>
#include <array>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sluice {

namespace {

constexpr auto kFlushInterval = std::chrono::seconds(1);

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 if the
// bytes there are not one (RFC 3629: no overlongs, surrogates or values
// above U+10FFFF).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u;
  };
  const auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    const unsigned b = byte(k);
    return i + k < s.size() && b >= lo && b <= hi;
  };
  const unsigned b0 = byte(0);
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if (b0 == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (b0 >= 0xE1 && b0 <= 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (b0 == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xF1 && b0 <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// `s` with every byte that does not start a well-formed sequence replaced
// by U+FFFD.
std::string RepairUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// Adds `key: value` to `obj`, repairing invalid UTF-8 first.
void PutString(boost::json::object& obj, std::string_view key,
               std::string_view value) {
  if (IsValidUtf8(value)) {
    obj.emplace(key, value);
  } else {
    obj.emplace(key, RepairUtf8(value));
  }
}

// Milliseconds with microsecond precision.
double Millis(Duration d) {
  if (d < Duration::zero()) d = Duration::zero();
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d);
  return static_cast<double>(us.count()) / 1000.0;
}

// RFC 3339 UTC with milliseconds: 2024-05-01T12:00:00.123Z.
// Writes into `buf` (no heap) and returns the text.
std::string_view FormatTimestamp(absl::Time wall, std::array<char, 48>& buf) {
  const auto ms =
      std::chrono::floor<std::chrono::milliseconds>(absl::ToChronoTime(wall));
  const auto secs = std::chrono::floor<std::chrono::seconds>(ms);
  const std::time_t t = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  const int n = std::snprintf(
      buf.data(), buf.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
      tm.tm_sec, static_cast<int>((ms - secs).count()));
  return std::string_view(
      buf.data(), n > 0 ? std::min(static_cast<size_t>(n), buf.size() - 1) : 0);
}

// The path without any query or fragment (which may hold secrets).
std::string_view StripQuery(std::string_view path) {
  return path.substr(0, path.find_first_of("?#"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(
    bool enabled, const std::string& path, const Clock* clock) {
  if (!enabled) {
    return std::unique_ptr<AccessLog>(new AccessLog(nullptr, clock));
  }
  if (path.empty()) {
    return absl::InvalidArgumentError("empty path (use \"-\" for stdout)");
  }
  if (path != "-") {
    // The file sink would create missing directories; a typo in the path
    // should be an error instead.
    std::error_code ec;
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
      return absl::NotFoundError(absl::StrCat("cannot open \"", path,
                                              "\": directory ", parent.string(),
                                              " does not exist"));
    }
  }
  std::shared_ptr<spdlog::logger> logger;
  try {
    spdlog::sink_ptr sink;
    if (path == "-") {
      sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    } else {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false);
    }
    logger = std::make_shared<spdlog::logger>("sluice_access", std::move(sink));
    logger->set_pattern("%v");
    logger->set_level(spdlog::level::info);
    logger->flush_on(spdlog::level::off);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot open \"", path, "\": ", e.what()));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(std::move(logger), clock));
}

AccessLog::AccessLog(std::shared_ptr<spdlog::logger> logger, const Clock* clock)
    : logger_(std::move(logger)), clock_(clock) {
  if (logger_) flusher_ = std::thread([this] { FlushLoop(); });
}

AccessLog::~AccessLog() {
  if (flusher_.joinable()) {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    flusher_.join();
  }
  Flush();
}

void AccessLog::FlushLoop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, kFlushInterval, [this] { return stop_; });
    lock.unlock();
    Flush();
    lock.lock();
  }
}

void AccessLog::Flush() {
  if (!logger_) return;
  try {
    logger_->flush();
  } catch (...) {
    // A failing disk must not take requests down with it.
  }
}

void AccessLog::Write(const AccessRecord& record) {
  if (!logger_) return;
  try {
    const std::string line = Format(record, clock_->WallNow());
    logger_->log(spdlog::level::info,
                 spdlog::string_view_t(line.data(), line.size()));
  } catch (...) {
    // Dropping a log line beats failing the request.
  }
}

std::string AccessLog::Format(const AccessRecord& r, absl::Time ts) {
  // Everything for one record fits in this buffer in the common case, so
  // building the object does not touch the heap.
  unsigned char scratch[2048];
  boost::json::monotonic_resource mr(scratch, sizeof(scratch));
  boost::json::object obj(&mr);
  obj.reserve(15);
  std::array<char, 48> ts_buf;
  obj.emplace("ts", FormatTimestamp(ts, ts_buf));
  PutString(obj, "method", r.method);
  PutString(obj, "host", r.host);
  PutString(obj, "path", StripQuery(r.path));
  PutString(obj, "route", r.route);
  PutString(obj, "limit", r.limit);
  obj.emplace("status", r.status);
  PutString(obj, "outcome", r.outcome);
  obj.emplace("wait_ms", Millis(r.wait));
  obj.emplace("upstream_ms", Millis(r.upstream_duration));
  obj.emplace("duration_ms", Millis(r.total_duration));
  obj.emplace("bytes_in", r.bytes_in);
  obj.emplace("bytes_out", r.bytes_out);
  PutString(obj, "client", r.client);
  obj.emplace("limited_by_sluice", r.limited_by_sluice);
  return boost::json::serialize(obj);
}

}  // namespace sluice
