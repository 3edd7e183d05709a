#ifndef SLUICE_PROXY_PAUSE_BUCKET_PAUSE_H_
#define SLUICE_PROXY_PAUSE_BUCKET_PAUSE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "common/pause/pause_schedule.h"
#include "common/time/clock.h"

namespace sluice {

// The pause state of one limiter bucket on the sidecar (docs/pause.md):
// what the upstream's throttles and the quota server's pauses allow the
// bucket to send right now.
//
// Fed by the session (each upstream answer for the bucket: throttled or
// not) and by the lease agent (the server's Pause). Consulted by
// PausedTokenSource, which wraps the bucket's token source, before every
// take:
//  - paused: nothing goes until the pause ends, plus a per-pause random
//    jitter so a fleet's sidecars do not resume in the same instant;
//  - probing: exactly one request (the probe) goes; its answer ends the
//    probe (ok: ramp; throttled: a longer pause);
//  - ramping: requests are paced at ramp fraction * full rate;
//  - running: no constraint beyond the tokens.
//
// Thread-safe. While running (the steady state) the request-path methods
// read one atomic flag; otherwise they take an internal mutex. Callbacks run
// outside it, on the calling thread.
class BucketPause {
 public:
  struct Options {
    PauseSchedule::Options schedule;
    // The limit's rate (tokens/s): the ramp paces a fraction of it.
    double full_rate_per_second = 1;
    // Each resume is delayed by a uniform random [0, resume_jitter), at
    // most half the probe timeout.
    Duration resume_jitter = std::chrono::milliseconds(50);
    uint64_t seed = 1;
    // Look for a stated limit on ordinary responses at most this often
    // (learned limits); zero: never (a standalone bucket has no use for it).
    Duration stated_limit_interval{};
  };

  // A limit the upstream's headers stated: `limit` requests per `window`.
  struct StatedLimit {
    double limit = 0;
    Duration window{};
  };

  // Something the quota server should hear of.
  struct Event {
    enum class Kind { kThrottled, kProbeOk };
    Kind kind = Kind::kThrottled;
    uint32_t status = 0;           // kThrottled
    std::optional<Duration> hint;  // kThrottled: what was asked
    std::string reason;            // kThrottled
    bool probe = false;            // kThrottled: it was the probe
    uint64_t pause_id = 0;         // kProbeOk: the server's pause
    // kThrottled: the limit the headers stated (limit per window), if any.
    std::optional<double> limit;
    std::optional<Duration> window;
  };

  explicit BucketPause(Options options);
  BucketPause(const BucketPause&) = delete;
  BucketPause& operator=(const BucketPause&) = delete;

  // Set once, before the object is shared. `on_event` reports to the
  // server (throttles that moved the pause end, and probe successes);
  // `on_pause(remote, started)` runs when a pause starts or grows (remote:
  // by the server's Pause; started: the bucket was not paused before), so
  // the owner can count it and re-poll the bucket's queue (shedding
  // requests whose deadline falls inside).
  void set_callbacks(std::function<void(const Event&)> on_event,
                     std::function<void(bool remote, bool started)> on_pause);

  // What the upstream said when it throttled a request of this bucket.
  struct Throttle {
    uint32_t status = 0;
    // The pause it asked for (Retry-After, a reset header), if any.
    std::optional<Duration> hint;
    // Why the response is a throttle (the header or rule that said so).
    std::string_view reason;
    // false keeps the pause local: nothing is reported to the server.
    bool broadcast = true;
    // When the throttled request was admitted.
    TimePoint admitted_at{};
    // The limit its headers stated (limit per window), if any: passed on
    // in the event.
    std::optional<double> limit;
    std::optional<Duration> window;
  };

  // --- From the session --------------------------------------------------
  // The upstream throttled a request of this bucket (`throttle`). Returns
  // the pause end.
  TimePoint OnThrottled(const Throttle& throttle, TimePoint now);
  // The upstream answered a request admitted at `admitted_at` without a
  // throttle. Ends the probe if this was it.
  void OnAnswered(TimePoint admitted_at, TimePoint now);

  // --- From the lease agent ----------------------------------------------
  // The server paused the bucket fleet-wide for `remaining` from now.
  // Returns true if that moved the pause end later. The pause_id last
  // applied again, ending within 50 ms of the current end, is a no-op (the
  // same message, delivered twice).
  bool OnRemotePause(Duration remaining, uint64_t pause_id, TimePoint now);

  // --- From PausedTokenSource (under the limiter's lock) -----------------
  // Whether a request may be sent now (tokens permitting).
  bool Allows(TimePoint now);
  // A request of `cost` was admitted at `now`: marks the probe, paces the
  // ramp.
  void Took(double cost, TimePoint now);
  // The earliest time Allows could become true; `now` if it is true. A
  // guess while a probe is out (its answer's arrival is unknown): the
  // probe timeout.
  TimePoint ReadyAt(TimePoint now);
  // When a FIFO backlog of `cost` tokens would have gone through the pause
  // and the ramp (the last of it), assuming the probe is answered at once:
  // a fluid model of the linear ramp plus one request's spacing, so it is
  // not early while ramping; `now` while running.
  TimePoint BacklogReadyAt(double cost, TimePoint now);

  // --- Stated limits (learned limits, docs/pause.md) ----------------------
  // Whether the caller should parse this ordinary response's headers for a
  // stated limit: true at most once per stated_limit_interval. Lock-free.
  bool WantsStatedLimit(TimePoint now);
  // Keeps the latest stated limit until TakeStatedLimit. Ignores values
  // that are not positive and finite.
  void NoteStatedLimit(StatedLimit stated);
  // The latest limit noted since the previous call, if any.
  std::optional<StatedLimit> TakeStatedLimit();

  // --- Introspection ------------------------------------------------------
  PauseSchedule::Phase PhaseAt(TimePoint now);
  // Time until this sidecar resumes (0 when not paused), jitter included.
  Duration Remaining(TimePoint now);
  // Counters since start.
  struct Stats {
    uint64_t pauses = 0;         // local throttles that moved the end
    uint64_t remote_pauses = 0;  // server pauses that moved the end
    uint64_t probes = 0;         // probe requests sent
  };
  Stats stats() const;

 private:
  // Lock-free: no pause has started since the schedule was last seen
  // running, so every request-path method can answer without the mutex.
  bool Running() const { return running_.load(std::memory_order_acquire); }
  // schedule_.PhaseAt, noting a return to running. Locked.
  PauseSchedule::Phase PhaseLocked(TimePoint now);
  // The earliest time a request may go, given the phase. Locked.
  TimePoint ReadyAtLocked(TimePoint now);
  TimePoint BacklogReadyAtLocked(double cost, TimePoint now);
  // Draws a fresh resume jitter for a pause that just moved. Locked.
  void NewJitterLocked();

  const Options options_;
  std::function<void(const Event&)> on_event_;
  std::function<void(bool remote, bool started)> on_pause_;
  mutable std::mutex mu_;
  // Cleared (under mu_) when a pause starts; set when a locked call sees
  // the schedule running again.
  std::atomic<bool> running_{true};
  PauseSchedule schedule_;  // guarded by mu_ (as is all below)
  std::mt19937_64 rng_;
  Duration jitter_{};       // of the current pause
  bool probe_out_ = false;  // the probe was sent, no answer yet
  TimePoint probe_at_{};
  uint64_t remote_pause_id_ = 0;
  TimePoint ramp_next_{};  // next request allowed while ramping
  Stats stats_;
  std::optional<StatedLimit> stated_;  // guarded by mu_
  // Steady-clock ticks before which WantsStatedLimit says no.
  std::atomic<int64_t> next_stated_check_{0};
};

}  // namespace sluice

#endif  // SLUICE_PROXY_PAUSE_BUCKET_PAUSE_H_
