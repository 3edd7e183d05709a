#ifndef SLUICE_COMMON_TIME_CLOCK_H_
#define SLUICE_COMMON_TIME_CLOCK_H_

#include <atomic>
#include <chrono>

namespace sluice {

// All rate logic works on a monotonic time line with nanosecond resolution.
using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;

// A source of monotonic time. Rate logic never reads the system clock
// directly; it takes a Clock (or a `now`) so tests can move time by hand.
class Clock {
 public:
  virtual ~Clock() = default;
  // Returns the current monotonic time. Thread-safe.
  virtual TimePoint Now() const = 0;
};

// The process's real monotonic clock.
class SystemClock final : public Clock {
 public:
  TimePoint Now() const override {
    return std::chrono::time_point_cast<Duration>(
        std::chrono::steady_clock::now());
  }
  // A shared instance that lives for the whole process.
  static SystemClock* Get() {
    static SystemClock clock;
    return &clock;
  }
};

// A clock that only moves when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = TimePoint(std::chrono::seconds(1000)))
      : now_ns_(start.time_since_epoch().count()) {}
  TimePoint Now() const override {
    return TimePoint(Duration(now_ns_.load(std::memory_order_acquire)));
  }
  void Advance(Duration d) {
    now_ns_.fetch_add(d.count(), std::memory_order_acq_rel);
  }
  void Set(TimePoint t) {
    now_ns_.store(t.time_since_epoch().count(), std::memory_order_release);
  }

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace sluice

#endif  // SLUICE_COMMON_TIME_CLOCK_H_
