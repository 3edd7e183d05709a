#ifndef SLUICE_COMMON_TIME_CLOCK_H_
#define SLUICE_COMMON_TIME_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sluice {

// All rate logic works on a monotonic time line with nanosecond resolution.
using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;

// Where the time comes from: the monotonic time every deadline, bucket and
// lease is measured on, and the wall time that only dates things (HTTP
// dates in rate-limit headers, log lines, Unix timestamps in metrics and
// messages). Code never reads either clock of the system directly; it takes
// a Clock, so tests move both by hand.
//
// Implementations are thread-safe. Now() never goes backwards; WallNow()
// may (the system's clock can be set).
class Clock {
 public:
  virtual ~Clock() = default;
  // The current monotonic time.
  virtual TimePoint Now() const = 0;
  // The current wall-clock (UTC) time.
  virtual absl::Time WallNow() const = 0;
};

// The process's real clocks: steady_clock and the system's UTC clock.
class SystemClock final : public Clock {
 public:
  TimePoint Now() const override {
    return std::chrono::time_point_cast<Duration>(
        std::chrono::steady_clock::now());
  }
  absl::Time WallNow() const override { return absl::Now(); }
  // A shared instance that lives for the whole process.
  static SystemClock* Get() {
    static SystemClock clock;
    return &clock;
  }
};

// Clocks that only move when told to. Advance() and Set() move the wall
// clock by the same amount as the monotonic one; SetWall() moves the wall
// clock alone (a clock set by hand, a leap). Thread-safe.
class FakeClock final : public Clock {
 public:
  // The wall clock starts at 2026-01-01T00:00:00Z unless told otherwise.
  static constexpr int64_t kDefaultWallStartUnixSeconds = 1767225600;

  explicit FakeClock(TimePoint start = TimePoint(std::chrono::seconds(1000)),
                     absl::Time wall_start =
                         absl::FromUnixSeconds(kDefaultWallStartUnixSeconds))
      : now_ns_(start.time_since_epoch().count()),
        wall_offset_ns_(absl::ToUnixNanos(wall_start) -
                        start.time_since_epoch().count()) {}

  TimePoint Now() const override {
    return TimePoint(Duration(now_ns_.load(std::memory_order_acquire)));
  }
  absl::Time WallNow() const override {
    return absl::FromUnixNanos(now_ns_.load(std::memory_order_acquire) +
                               wall_offset_ns_.load(std::memory_order_acquire));
  }
  void Advance(Duration d) {
    now_ns_.fetch_add(d.count(), std::memory_order_acq_rel);
  }
  void Set(TimePoint t) {
    now_ns_.store(t.time_since_epoch().count(), std::memory_order_release);
  }
  void SetWall(absl::Time wall) {
    wall_offset_ns_.store(
        absl::ToUnixNanos(wall) - now_ns_.load(std::memory_order_acquire),
        std::memory_order_release);
  }

 private:
  std::atomic<int64_t> now_ns_;
  // Wall time minus monotonic time, in nanoseconds.
  std::atomic<int64_t> wall_offset_ns_;
};

}  // namespace sluice

#endif  // SLUICE_COMMON_TIME_CLOCK_H_
