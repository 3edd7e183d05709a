#ifndef SLUICE_TESTS_SIM_FLEET_SIM_H_
#define SLUICE_TESTS_SIM_FLEET_SIM_H_

// A deterministic, in-process simulation of a sluice fleet: the real
// QuotaAllocator on the server side, and per sidecar the real LeaseAgent,
// LeasePool and RateLimiter, connected by simulated streams with one-way
// delays and optional message loss, all on fake time. Requests arrive at
// each sidecar at a configured demand; admitted requests reach a simulated
// upstream after a jittered delay, where their arrival times are recorded
// for the invariant checks (docs/leasing.md, "The bound").

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/time/clock.h"
#include "quota-server/config/server_config.h"

namespace sluice::sim {

struct SimConfig {
  uint64_t seed = 1;
  size_t sidecars = 4;
  // The resource's global limit.
  double rate_per_second = 100;
  double burst = 20;
  LeaseTuning lease;
  bool learning = true;
  // Demand of sidecar i at time t (seconds since start), tokens/s. Requests
  // cost 1 token and arrive evenly spaced.
  std::function<double(size_t i, double t)> demand;
  // No requests arrive before this (seconds), so a fresh server's learning
  // period (ttl + grace) does not leave a backlog behind.
  double demand_start = 2.0;
  std::vector<double> weights;  // empty: all 1
  Duration duration = std::chrono::seconds(10);
  // Each sidecar admits and polls every `step`.
  Duration step = std::chrono::milliseconds(5);
  Duration server_tick = std::chrono::milliseconds(50);
  // Control plane one-way delay range and per-message loss probability.
  Duration net_delay_min = std::chrono::microseconds(200);
  Duration net_delay_max = std::chrono::milliseconds(2);
  double loss = 0;
  // Probability that a demand report (up) or a grant (down) takes its own
  // delay in the range instead of keeping its stream's order, as datagrams
  // of the fast path may (docs/leasing.md, "Leases over the fast path").
  double reorder = 0;
  // Every 10 ms, compare what each connected sidecar can spend (its pool)
  // with what the server counts for it (O_i, docs/leasing.md): the ledger
  // must never count less. Costs a server snapshot per check (off for
  // speed only).
  bool check_accounting = true;
  // Sidecar -> upstream delay range (its spread is the bound's `j`).
  Duration upstream_delay_min = std::chrono::microseconds(100);
  Duration upstream_delay_max = std::chrono::milliseconds(1);
  // Limiter settings in each sidecar.
  Duration max_wait = std::chrono::milliseconds(500);
  size_t max_queue = 1000;
  // Faults: (time in seconds, sidecar index).
  std::vector<std::pair<double, size_t>> crashes;  // vanishes for good
  std::vector<std::pair<double, size_t>> joins;    // starts late
  std::vector<double> server_restarts;             // all streams drop
  // The upstream's own behaviour (docs/pause.md). With neither bans nor an
  // upstream limit, requests are only counted (no responses). Otherwise
  // every request is answered after another upstream delay: 429 during a
  // ban, or when the upstream's own bucket is empty; 200 otherwise. A 429
  // carries the time left as its hint unless `hint` is false.
  struct Ban {
    double at = 0;       // seconds since start
    double seconds = 1;  // length
    bool hint = true;
  };
  std::vector<Ban> bans;
  double upstream_rate = 0;  // its own limit (tokens/s); 0: none
  double upstream_burst = 1;
  // Pause settings on both sides.
  PauseSchedule::Options pause;
  // Learned limits on the server (docs/pause.md).
  bool learn = false;
  LearnOptions learn_options;
  Duration resume_jitter = std::chrono::milliseconds(20);
  // A stretch of time in which one sidecar's control plane misbehaves,
  // seconds since start.
  struct Stall {
    double from = 0;
    double to = 0;
    size_t sidecar = 0;
  };
  // Stalled streams: what the server sends the sidecar in [from, to) waits
  // (in a write queue, behind TCP retransmission) and arrives all at `to`,
  // in order. Reports still go up.
  std::vector<Stall> stalls;
  // The server's write queue per stream (0: unbounded): a stream with more
  // messages on their way than this is ended by the server, as the
  // service ends one whose sidecar does not read (RESOURCE_EXHAUSTED).
  // What was already sent still arrives; the sidecar sees the end after
  // that and reconnects.
  size_t down_queue_limit = 0;
  // Frozen sidecars (SIGSTOP, CPU throttling): in [from, to) the sidecar
  // runs nothing: no request is admitted or sent, no report made, no
  // message read. What reached it meanwhile is read at `to`; the server
  // sees a live stream throughout.
  std::vector<Stall> freezes;
  // Sidecar i says it is "sidecar-<id_of[i]>" (default: i), with an
  // instance of its own: two with one id are a second process given the
  // same id, or a restart the server has not yet seen the end of.
  std::vector<size_t> id_of;
  // What a sidecar does when it cannot lease (both sides' config).
  UnavailablePolicy policy = UnavailablePolicy::kFallbackShare;
  // How long the server takes to notice a crashed sidecar's stream.
  Duration crash_detect = std::chrono::seconds(1);
  // A sidecar whose stream ended reconnects after this.
  Duration reconnect_delay = std::chrono::milliseconds(200);
};

struct SimResult {
  // Upstream arrival times in ns since the start, sorted.
  std::vector<int64_t> arrivals;
  // admitted[i][k]: requests sidecar i sent in 100 ms bucket k.
  std::vector<std::vector<uint32_t>> admitted;
  std::vector<uint64_t> rejected;  // per sidecar
  // Arrival times (ns since start) of requests the upstream answered 429.
  std::vector<int64_t> throttled;
  uint64_t messages_up = 0;
  uint64_t messages_down = 0;
  // Overtaken grants the sidecars dropped, and overtaken reports the (last)
  // server dropped.
  uint64_t stale_grants = 0;
  uint64_t stale_reports = 0;
  // Hellos the server refused: their id was leasing on another instance's
  // open stream.
  uint64_t duplicate_ids = 0;
  // Streams the server ended because their write queue filled.
  uint64_t queue_full_closes = 0;
  // check_accounting: checks in which some sidecar held more than its O_i,
  // and the largest excess seen (tokens).
  uint64_t undercounted = 0;
  double max_undercount = 0;

  // Most arrivals in any window (t - w, t].
  uint64_t MaxInWindow(Duration w) const;
  // Requests sidecar i sent in [from, to) seconds (100 ms resolution).
  double SentBetween(size_t i, double from, double to) const;
  // Upstream arrivals (any answer) in [from, to) ns since start.
  uint64_t ArrivalsBetween(int64_t from_ns, int64_t to_ns) const;
  // All sidecars' requests in [from, to).
  double TotalBetween(double from, double to) const;
};

SimResult RunFleet(const SimConfig& config);

}  // namespace sluice::sim

#endif  // SLUICE_TESTS_SIM_FLEET_SIM_H_
