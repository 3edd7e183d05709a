#include "tests/sim/fleet_sim.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <unordered_map>
#include <utility>

#include "common/rate/token_bucket.h"
#include "proxy/lease/lease_agent.h"
#include "proxy/lease/lease_pool.h"
#include "proxy/limit/rate_limiter.h"
#include "proxy/pause/bucket_pause.h"
#include "proxy/pause/paused_token_source.h"
#include "quota-server/core/quota_allocator.h"

namespace sluice::sim {

namespace {

constexpr int64_t kBucketNs = 100'000'000;  // 100 ms result buckets

struct Sidecar {
  std::shared_ptr<LeasePool> pool;
  std::shared_ptr<BucketPause> pause;
  std::shared_ptr<RateLimiter> limiter;
  std::unique_ptr<LeaseAgent> agent;
  bool alive = false;
  StreamId stream = 0;  // 0: no stream
  double due = 0;       // fractional arrivals carried between steps
};

struct Stream {
  size_t sidecar = 0;
  bool server_open = true;
  bool sidecar_open = true;
  TimePoint last_up{};
  TimePoint last_down{};
  size_t pending_down = 0;  // messages sent and not yet delivered
};

struct Event {
  TimePoint at;
  uint64_t seq;
  std::function<void()> fn;
  bool operator>(const Event& o) const {
    return at != o.at ? at > o.at : seq > o.seq;
  }
};

class Fleet {
 public:
  explicit Fleet(const SimConfig& cfg) : cfg_(cfg), rng_(cfg.seed) {
    t0_ = TimePoint{} + std::chrono::hours(1);
    now_ = t0_;
    ResourceConfig res;
    res.name = "api";
    res.rate = cfg.rate_per_second;
    res.period = std::chrono::seconds(1);
    res.burst = cfg.burst;
    res.lease = cfg.lease;
    res.pause = cfg.pause;
    res.learn = cfg.learn;
    res.learn_options = cfg.learn_options;
    res.unavailable_policy = cfg.policy;
    server_cfg_.resources.push_back(res);
    responding_ = !cfg.bans.empty() || cfg.upstream_rate > 0;
    if (cfg.upstream_rate > 0) {
      upstream_.emplace(RateSpec{cfg.upstream_rate, std::chrono::seconds(1),
                                 cfg.upstream_burst},
                        now_);
    }
    server_cfg_.learning = cfg.learning;
    server_ =
        std::make_unique<QuotaAllocator>(server_cfg_, epoch_, now_, Wall());
    sidecars_.resize(cfg.sidecars);
    result_.admitted.assign(cfg.sidecars,
                            std::vector<uint32_t>(static_cast<size_t>(
                                cfg.duration.count() / kBucketNs + 2)));
    result_.rejected.assign(cfg.sidecars, 0);
  }

  SimResult Run() {
    std::vector<bool> late(cfg_.sidecars, false);
    for (auto [t, i] : cfg_.joins) {
      late[i] = true;
      At(t, [this, i = i] { StartSidecar(i); });
    }
    for (size_t i = 0; i < cfg_.sidecars; ++i) {
      if (!late[i]) StartSidecar(i);
    }
    for (auto [t, i] : cfg_.crashes) At(t, [this, i = i] { Crash(i); });
    for (double t : cfg_.server_restarts) At(t, [this] { RestartServer(); });
    ScheduleTick(now_);

    const TimePoint end = t0_ + cfg_.duration;
    while (now_ < end) {
      const TimePoint step_end = now_ + cfg_.step;
      while (!events_.empty() && events_.top().at <= step_end) {
        Event ev = events_.top();
        events_.pop();
        now_ = std::max(now_, ev.at);
        ev.fn();
      }
      now_ = step_end;
      for (size_t i = 0; i < sidecars_.size(); ++i) StepSidecar(i);
      if (cfg_.check_accounting && now_ >= next_check_) {
        CheckAccounting();
        next_check_ = now_ + std::chrono::milliseconds(10);
      }
    }
    std::sort(result_.arrivals.begin(), result_.arrivals.end());
    for (const Sidecar& s : sidecars_) {
      result_.stale_grants += s.agent->stale_grants();
    }
    result_.stale_reports = server_->Snapshot(now_).stale_reports;
    result_.duplicate_ids = server_->Snapshot(now_).duplicate_ids;
    return std::move(result_);
  }

 private:
  double Seconds(TimePoint t) const {
    return std::chrono::duration<double>(t - t0_).count();
  }
  void At(double seconds, std::function<void()> fn) {
    Push(t0_ + std::chrono::duration_cast<Duration>(
                   std::chrono::duration<double>(seconds)),
         std::move(fn));
  }
  void Push(TimePoint at, std::function<void()> fn) {
    events_.push(Event{at, next_seq_++, std::move(fn)});
  }
  Duration Uniform(Duration lo, Duration hi) {
    if (hi <= lo) return lo;
    std::uniform_int_distribution<int64_t> d(lo.count(), hi.count());
    return Duration(d(rng_));
  }
  // What the server counts for each sidecar against what its pool holds.
  void CheckAccounting() {
    const QuotaAllocator::Status st = server_->Snapshot(now_);
    if (st.resources.empty()) return;
    bool under = false;
    for (const auto& sc : st.resources[0].sidecars) {
      if (!sc.connected) continue;
      const size_t i = std::stoul(sc.sidecar_id.substr(8));  // "sidecar-i"
      if (i >= sidecars_.size() || !sidecars_[i].alive) continue;
      const double excess = sidecars_[i].pool->Held(now_) - sc.outstanding;
      if (excess > 1e-6) {
        under = true;
        result_.max_undercount = std::max(result_.max_undercount, excess);
      }
    }
    // The same for the whole fleet, whoever says which id: what all live
    // sidecars can spend never exceeds what the server counts.
    double held_all = 0;
    for (const Sidecar& s : sidecars_) {
      if (s.alive) held_all += s.pool->Held(now_);
    }
    const double excess = held_all - st.resources[0].outstanding;
    if (excess > 1e-6) {
      under = true;
      result_.max_undercount = std::max(result_.max_undercount, excess);
    }
    if (under) ++result_.undercounted;
  }

  bool Reordered() {
    if (cfg_.reorder <= 0) return false;
    return std::uniform_real_distribution<double>(0, 1)(rng_) < cfg_.reorder;
  }

  bool Lost() {
    if (cfg_.loss <= 0) return false;
    return std::uniform_real_distribution<double>(0, 1)(rng_) < cfg_.loss;
  }

  void ScheduleTick(TimePoint at) {
    Push(at, [this, at] {
      Outbox out;
      server_->Tick(now_, &out);
      Dispatch(out);
      ScheduleTick(at + cfg_.server_tick);
    });
  }

  void StartSidecar(size_t i) {
    Sidecar& s = sidecars_[i];
    LeasePool::Options po;
    po.initial_capacity = cfg_.burst;
    po.initial_rate_per_second =
        cfg_.rate_per_second / static_cast<double>(cfg_.sidecars);
    po.policy = cfg_.policy;
    s.pool = std::make_shared<LeasePool>(po);
    RateLimiterOptions lo;
    lo.max_queue = cfg_.max_queue;
    BucketPause::Options to;
    to.schedule = cfg_.pause;
    to.full_rate_per_second = cfg_.rate_per_second;
    to.resume_jitter = cfg_.resume_jitter;
    to.seed = cfg_.seed * 7919 + i;
    s.pause = std::make_shared<BucketPause>(to);
    s.pause->set_callbacks(
        [this, i](const BucketPause::Event& e) {
          Sidecar& sc = sidecars_[i];
          if (sc.stream != 0) {
            SendUp(sc.stream, {LeaseAgent::EventMessage("api", "", e)});
          }
        },
        [this, i](bool, bool) {
          Sidecar& sc = sidecars_[i];
          const RateLimiter::PollResult pr = sc.limiter->ShedUnservable(now_);
          for (size_t k = 0; k < pr.admitted.size(); ++k) Send(i);
          result_.rejected[i] += pr.expired.size();
        });
    s.limiter = std::make_shared<RateLimiter>(
        std::make_unique<PausedTokenSource>(
            std::make_unique<LeasedTokenSource>(s.pool), s.pause),
        lo);
    LeaseAgent::Options ao;
    ao.sidecar_id =
        "sidecar-" + std::to_string(i < cfg_.id_of.size() ? cfg_.id_of[i] : i);
    ao.instance = "instance-" + std::to_string(i);
    ao.pod = ao.sidecar_id;
    ao.weight = i < cfg_.weights.size() ? cfg_.weights[i] : 1.0;
    ao.refresh = cfg_.lease.refresh;
    LeaseBinding b;
    b.resource = "api";
    b.limiter = s.limiter;
    b.pool = s.pool;
    b.pause = s.pause;
    s.agent = std::make_unique<LeaseAgent>(ao, std::vector<LeaseBinding>{b});
    s.alive = true;
    Connect(i);
  }

  void Connect(size_t i) {
    Sidecar& s = sidecars_[i];
    if (!s.alive) return;
    const StreamId id = next_stream_++;
    streams_[id] = Stream{i, true, true, now_, now_};
    s.stream = id;
    server_->Open(id, now_);
    SendUp(id, s.agent->OnConnected(now_), /*first_is_hello=*/true);
  }

  void SendUp(StreamId id, std::vector<sluice::v1::SidecarMessage> msgs,
              bool first_is_hello = false) {
    for (size_t k = 0; k < msgs.size(); ++k) {
      ++result_.messages_up;
      if (!(first_is_hello && k == 0) && Lost()) continue;
      Stream& st = streams_[id];
      const TimePoint own =
          now_ + Uniform(cfg_.net_delay_min, cfg_.net_delay_max);
      TimePoint at = std::max(st.last_up, own);
      if (msgs[k].has_demand() && Reordered()) {
        at = own;  // a datagram: may be overtaken, or overtake
      } else {
        st.last_up = at;
      }
      Push(at, [this, id, m = std::move(msgs[k])] {
        auto it = streams_.find(id);
        if (it == streams_.end() || !it->second.server_open) return;
        Outbox out;
        server_->OnMessage(id, m, now_, &out);
        Dispatch(out);
      });
    }
  }

  void Dispatch(Outbox& out) {
    for (const auto& [id, why] : out.refused) {
      // The transport ends the stream; the sidecar sees it one delay later
      // and reconnects after its delay (and is refused again while the
      // other instance's stream lives).
      auto it = streams_.find(id);
      if (it == streams_.end()) continue;
      it->second.server_open = false;
      server_->Close(id, now_);
      Push(now_ + Uniform(cfg_.net_delay_min, cfg_.net_delay_max),
           [this, stream = id] { Disconnect(stream); });
    }
    out.refused.clear();
    for (auto& entry : out.messages) {
      const StreamId id = entry.first;
      sluice::v1::ServerMessage& msg = entry.second;
      ++result_.messages_down;
      auto it = streams_.find(id);
      if (it == streams_.end() || !it->second.server_open) continue;
      if (Lost()) continue;
      Stream& st = it->second;
      const TimePoint own =
          now_ + Uniform(cfg_.net_delay_min, cfg_.net_delay_max);
      TimePoint at = std::max(st.last_down, own);
      if (msg.has_grant() && Reordered()) {
        at = own;
      } else {
        st.last_down = at;
      }
      if (const auto stall = During(cfg_.stalls, st.sidecar, now_)) {
        at = std::max(at, *stall);
        st.last_down = std::max(st.last_down, at);
      }
      if (cfg_.down_queue_limit > 0 &&
          st.pending_down >= cfg_.down_queue_limit) {
        // The queue is full: the server ends the stream. What it sent
        // still arrives; the sidecar sees the end right after.
        ++result_.queue_full_closes;
        st.server_open = false;
        server_->Close(id, now_);
        Push(std::max(at, st.last_down), [this, id] { Disconnect(id); });
        continue;
      }
      ++st.pending_down;
      Push(at, [this, id, m = std::move(msg)] { Deliver(id, m); });
    }
    out.messages.clear();
  }

  // The end of the stall in `stalls` of sidecar i that `t` falls in.
  std::optional<TimePoint> During(const std::vector<SimConfig::Stall>& stalls,
                                  size_t i, TimePoint t) const {
    const double s = Seconds(t);
    for (const SimConfig::Stall& st : stalls) {
      if (st.sidecar == i && s >= st.from && s < st.to) {
        return t0_ + std::chrono::duration_cast<Duration>(
                         std::chrono::duration<double>(st.to));
      }
    }
    return std::nullopt;
  }

  // A server message reaches the sidecar of stream `id` (or waits for the
  // sidecar to thaw, in order).
  void Deliver(StreamId id, const sluice::v1::ServerMessage& m) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    const size_t i = it->second.sidecar;
    if (it->second.sidecar_open) {
      if (const auto thaw = During(cfg_.freezes, i, now_)) {
        Push(*thaw, [this, id, m] { Deliver(id, m); });  // still queued
        return;
      }
    }
    if (it->second.pending_down > 0) --it->second.pending_down;
    if (!it->second.sidecar_open) return;
    Sidecar& s = sidecars_[i];
    if (s.alive) s.agent->OnServerMessage(m, now_);
  }

  void Crash(size_t i) {
    Sidecar& s = sidecars_[i];
    if (!s.alive) return;
    s.alive = false;
    const StreamId id = s.stream;
    s.stream = 0;
    if (id == 0) return;
    streams_[id].sidecar_open = false;
    Push(now_ + cfg_.crash_detect, [this, id] {
      Stream& st = streams_[id];
      if (!st.server_open) return;
      st.server_open = false;
      server_->Close(id, now_);
    });
  }

  void RestartServer() {
    for (auto& [id, st] : streams_) {
      if (!st.sidecar_open) continue;
      st.server_open = false;
      // The sidecar sees its stream break one delay later.
      Push(now_ + Uniform(cfg_.net_delay_min, cfg_.net_delay_max),
           [this, stream = id] { Disconnect(stream); });
    }
    server_ =
        std::make_unique<QuotaAllocator>(server_cfg_, ++epoch_, now_, Wall());
  }

  void Disconnect(StreamId id) {
    Stream& st = streams_[id];
    if (!st.sidecar_open) return;
    st.sidecar_open = false;
    Sidecar& s = sidecars_[st.sidecar];
    if (!s.alive || s.stream != id) return;
    s.stream = 0;
    s.agent->OnDisconnected(now_);
    const size_t i = st.sidecar;
    Push(now_ + cfg_.reconnect_delay, [this, i] { Connect(i); });
  }

  void Send(size_t i) {
    const int64_t sent_ns = (now_ - t0_).count();
    const size_t bucket = static_cast<size_t>(sent_ns / kBucketNs);
    if (bucket < result_.admitted[i].size()) ++result_.admitted[i][bucket];
    const Duration delay =
        Uniform(cfg_.upstream_delay_min, cfg_.upstream_delay_max);
    if (!responding_) {
      result_.arrivals.push_back(sent_ns + delay.count());
      return;
    }
    const TimePoint admitted_at = now_;
    Push(now_ + delay, [this, i, admitted_at] { Arrive(i, admitted_at); });
  }

  // A request reaches the upstream at now_: answer it, and deliver the
  // answer to its sidecar one upstream delay later.
  void Arrive(size_t i, TimePoint admitted_at) {
    const double t = Seconds(now_);
    result_.arrivals.push_back((now_ - t0_).count());
    std::optional<Duration> hint;
    bool throttled = false;
    for (const SimConfig::Ban& ban : cfg_.bans) {
      if (t >= ban.at && t < ban.at + ban.seconds) {
        throttled = true;
        if (ban.hint) {
          hint = std::chrono::milliseconds(static_cast<int64_t>(
              std::ceil((ban.at + ban.seconds - t) * 1000)));
        }
      }
    }
    if (!throttled && upstream_ && !upstream_->TryTake(1, now_)) {
      throttled = true;
      const std::optional<TimePoint> at = upstream_->AvailableAt(1, now_);
      hint = at ? Duration(
                      std::chrono::ceil<std::chrono::milliseconds>(*at - now_))
                : Duration(std::chrono::seconds(1));
    }
    if (throttled) result_.throttled.push_back((now_ - t0_).count());
    Push(now_ + Uniform(cfg_.upstream_delay_min, cfg_.upstream_delay_max),
         [this, i, admitted_at, throttled, hint] {
           Sidecar& s = sidecars_[i];
           if (!s.alive) return;
           if (throttled) {
             s.pause->OnThrottled({.status = 429,
                                   .hint = hint,
                                   .reason = "retry-after",
                                   .broadcast = true,
                                   .admitted_at = admitted_at},
                                  now_);
           } else {
             s.pause->OnAnswered(admitted_at, now_);
           }
         });
  }

  void StepSidecar(size_t i) {
    Sidecar& s = sidecars_[i];
    if (!s.alive || During(cfg_.freezes, i, now_)) return;
    const double t = Seconds(now_);
    const double step_s = std::chrono::duration<double>(cfg_.step).count();
    if (t >= cfg_.demand_start) {
      s.due += std::max(0.0, cfg_.demand(i, t)) * step_s;
    }
    while (s.due >= 1) {
      s.due -= 1;
      const AcquireResult r = s.limiter->Acquire(1, cfg_.max_wait, now_);
      if (r.outcome == AcquireOutcome::kAdmitted) {
        Send(i);
      } else if (r.outcome != AcquireOutcome::kQueued) {
        ++result_.rejected[i];
      }
    }
    const RateLimiter::PollResult pr = s.limiter->Poll(now_);
    for (size_t k = 0; k < pr.admitted.size(); ++k) Send(i);
    result_.rejected[i] += pr.expired.size();
    if (s.stream != 0) SendUp(s.stream, s.agent->Poll(now_));
  }

  // The wall time of the simulated moment now_ (the fake clocks' start).
  absl::Time Wall() const {
    return absl::FromUnixSeconds(FakeClock::kDefaultWallStartUnixSeconds) +
           absl::FromChrono(now_ - t0_);
  }

  const SimConfig& cfg_;
  std::mt19937_64 rng_;
  TimePoint t0_;
  TimePoint now_;
  ServerConfig server_cfg_;
  uint64_t epoch_ = 1;
  std::unique_ptr<QuotaAllocator> server_;
  bool responding_ = false;
  std::optional<TokenBucket> upstream_;
  std::vector<Sidecar> sidecars_;
  std::unordered_map<StreamId, Stream> streams_;
  StreamId next_stream_ = 1;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  uint64_t next_seq_ = 0;
  SimResult result_;
  TimePoint next_check_{};
};

}  // namespace

uint64_t SimResult::MaxInWindow(Duration w) const {
  uint64_t best = 0;
  size_t lo = 0;
  for (size_t hi = 0; hi < arrivals.size(); ++hi) {
    while (arrivals[lo] <= arrivals[hi] - w.count()) ++lo;
    best = std::max<uint64_t>(best, hi - lo + 1);
  }
  return best;
}

double SimResult::SentBetween(size_t i, double from, double to) const {
  const auto lo = static_cast<size_t>(std::llround(from * 10));
  const auto hi = static_cast<size_t>(std::llround(to * 10));
  double sum = 0;
  for (size_t k = lo; k < hi && k < admitted[i].size(); ++k) {
    sum += admitted[i][k];
  }
  return sum;
}

uint64_t SimResult::ArrivalsBetween(int64_t from_ns, int64_t to_ns) const {
  const auto lo = std::lower_bound(arrivals.begin(), arrivals.end(), from_ns);
  const auto hi = std::lower_bound(arrivals.begin(), arrivals.end(), to_ns);
  return static_cast<uint64_t>(hi - lo);
}

double SimResult::TotalBetween(double from, double to) const {
  double sum = 0;
  for (size_t i = 0; i < admitted.size(); ++i) sum += SentBetween(i, from, to);
  return sum;
}

SimResult RunFleet(const SimConfig& config) { return Fleet(config).Run(); }

}  // namespace sluice::sim
