#include "proxy/lease/lease_agent.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>
#include <utility>

#include "proxy/limit/rate_limiter.h"

namespace sluice {
namespace {

constexpr uint32_t kProtocolVersion = 1;
// Longest pause a server message may impose (a day).
constexpr uint64_t kMaxPauseMs = 24ull * 3600 * 1000;

}  // namespace

struct LeaseAgent::Bucket {
  LeaseBinding binding;
  // Report interval: Options::refresh until a grant says otherwise.
  Duration refresh{};
  // Latest target from a grant on this stream (0: none yet).
  double target = 0;
  // Set by a grant, cleared by an early report: at most one early report
  // per grant received.
  bool early_armed = false;
  // Time of the last report on any stream (start of the demand interval).
  std::optional<TimePoint> last_report;
  // (report_seq, when it was made) of the recent reports, oldest first:
  // a grant that echoes one of them is younger than it (its tokens live
  // ttl from then, at most).
  std::deque<std::pair<uint64_t, TimePoint>> reports_made;

  // When the report `seq` was made, if it is still remembered.
  std::optional<TimePoint> ReportMadeAt(uint64_t seq) const {
    for (auto it = reports_made.rbegin(); it != reports_made.rend(); ++it) {
      if (it->first == seq) return it->second;
      if (it->first < seq) break;
    }
    return std::nullopt;
  }

  bool Is(const sluice::v1::BucketId& id) const {
    return binding.resource == id.resource() &&
           binding.key_hash == id.key_hash();
  }
};

LeaseAgent::LeaseAgent(Options options, std::vector<LeaseBinding> bindings)
    : options_(std::move(options)) {
  if (options_.refresh <= Duration::zero()) {
    options_.refresh = std::chrono::milliseconds(100);
  }
  buckets_.reserve(bindings.size());
  for (LeaseBinding& binding : bindings) {
    auto b = std::make_unique<Bucket>();
    b->binding = std::move(binding);
    b->refresh = options_.refresh;
    Index(*b);
    buckets_.push_back(std::move(b));
  }
}

namespace {

std::string IndexKey(const std::string& resource, const std::string& key) {
  std::string k;
  k.reserve(resource.size() + key.size() + 1);
  k.append(resource).push_back('\n');
  k.append(key);
  return k;
}

// The pause's remaining time, capped so that a hostile value cannot
// overflow the clock.
Duration RemainingOf(const sluice::v1::Pause& p) {
  return std::chrono::milliseconds(
      std::min<uint64_t>(p.remaining_ms(), kMaxPauseMs));
}

}  // namespace

void LeaseAgent::Index(const Bucket& b) {
  const std::string key = IndexKey(b.binding.resource, b.binding.key_hash);
  std::lock_guard lock(index_mu_);
  if (b.binding.pause != nullptr) {
    pause_index_[key] = b.binding.pause;
  } else {
    pause_index_.erase(key);
  }
}

void LeaseAgent::Unindex(const Bucket& b) {
  const std::string key = IndexKey(b.binding.resource, b.binding.key_hash);
  std::lock_guard lock(index_mu_);
  pause_index_.erase(key);
}

LeaseAgent::PauseNow LeaseAgent::ApplyPauseNow(const sluice::v1::Pause& p,
                                               TimePoint now, PausePath path) {
  PauseNow out;
  const Duration remaining = RemainingOf(p);
  std::shared_ptr<BucketPause> throttle;
  {
    std::lock_guard lock(index_mu_);
    auto it = pause_index_.find(
        IndexKey(p.bucket().resource(), p.bucket().key_hash()));
    if (it == pause_index_.end()) return out;
    throttle = it->second.lock();
  }
  if (throttle == nullptr) return out;
  out.known = true;
  const PauseDeduplicator::Decision d = pause_copies_.OnCopy(
      p.bucket().resource(), p.bucket().key_hash(), p.pause_id(), path);
  out.first = d.first;
  if (out.first && remaining > Duration::zero()) {
    throttle->OnRemotePause(remaining, p.pause_id(), now);
  }
  if (d.ack) out.ack = PauseAckFor(p);
  return out;
}

sluice::v1::SidecarMessage LeaseAgent::PauseAckFor(const sluice::v1::Pause& p) {
  sluice::v1::SidecarMessage ack;
  *ack.mutable_pause_ack()->mutable_bucket() = p.bucket();
  ack.mutable_pause_ack()->set_pause_id(p.pause_id());
  return ack;
}

LeaseAgent::~LeaseAgent() = default;

TimePoint LeaseAgent::Observe(TimePoint now) {
  last_now_ = std::max(last_now_, now);
  return last_now_;
}

sluice::v1::SidecarMessage LeaseAgent::MakeReport(Bucket& b, TimePoint now) {
  sluice::v1::SidecarMessage msg;
  sluice::v1::DemandReport* r = msg.mutable_demand();
  r->mutable_bucket()->set_resource(b.binding.resource);
  r->mutable_bucket()->set_key_hash(b.binding.key_hash);
  if (std::shared_ptr<RateLimiter> limiter = b.binding.limiter.lock()) {
    const RateLimiter::DemandStats st = limiter->TakeDemandStats();
    r->set_allowed(st.allowed);
    r->set_denied(st.denied);
    r->set_queued(st.queued);
    if (st.queue_admitted > 0) {
      const double total_ms =
          std::chrono::duration<double, std::milli>(st.wait_total).count();
      r->set_wait_ms(total_ms / static_cast<double>(st.queue_admitted));
    }
  }
  if (b.last_report.has_value() && now > *b.last_report) {
    r->set_elapsed_ms(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now -
                                                              *b.last_report)
            .count()));
  }
  if (b.binding.pool != nullptr) r->set_held(b.binding.pool->Held(now));
  r->set_grant_seq_seen(grant_seq_seen_);
  const uint64_t report_seq = next_report_seq_++;
  r->set_report_seq(report_seq);
  b.reports_made.emplace_back(report_seq, now);
  // The server echoes the latest report it took, normally the last or the
  // one before: a grant echoing one of more than kReportsRemembered back
  // brings nothing (safe; it only costs those tokens).
  while (b.reports_made.size() > kReportsRemembered) {
    b.reports_made.pop_front();
  }
  if (b.binding.pause != nullptr) {
    if (auto stated = b.binding.pause->TakeStatedLimit()) {
      r->set_stated_limit(stated->limit);
      r->set_stated_window_ms(static_cast<uint64_t>(std::max<int64_t>(
          1,
          std::chrono::duration_cast<std::chrono::milliseconds>(stated->window)
              .count())));
    }
  }
  b.last_report = now;
  return msg;
}

void LeaseAgent::ApplyLimit(const sluice::v1::LimitUpdate& l, Bucket& b) {
  if (b.binding.resource != l.resource() || b.binding.pool == nullptr) return;
  b.binding.pool->SetLimit(l.rate_per_second(), l.burst(),
                           UnavailablePolicyFromProto(l.unavailable_policy()),
                           l.sidecars());
}

std::vector<sluice::v1::SidecarMessage> LeaseAgent::AddBinding(
    LeaseBinding binding, TimePoint now) {
  now = Observe(now);
  auto b = std::make_unique<Bucket>();
  b->binding = std::move(binding);
  b->refresh = options_.refresh;
  if (auto it = limits_.find(b->binding.resource); it != limits_.end()) {
    ApplyLimit(it->second, *b);
  }
  // Leased tokens only once the server has answered on this stream; the
  // unavailability policy otherwise (whatever state the pool started in).
  if (b->binding.pool != nullptr) b->binding.pool->SetConnected(answered_, now);
  Bucket* added = b.get();
  auto same = std::find_if(
      buckets_.begin(), buckets_.end(), [&](const std::unique_ptr<Bucket>& o) {
        return o->binding.resource == added->binding.resource &&
               o->binding.key_hash == added->binding.key_hash;
      });
  if (same != buckets_.end()) {
    *same = std::move(b);
  } else {
    buckets_.push_back(std::move(b));
  }
  Index(*added);
  std::vector<sluice::v1::SidecarMessage> out;
  if (connected_) out.push_back(MakeReport(*added, now));
  return out;
}

std::vector<sluice::v1::SidecarMessage> LeaseAgent::OnConnected(TimePoint now) {
  now = Observe(now);
  connected_ = true;
  answered_ = false;
  grant_seq_seen_ = 0;
  std::erase_if(buckets_, [this](const std::unique_ptr<Bucket>& b) {
    if (!b->binding.limiter.expired()) return false;
    Unindex(*b);
    return true;
  });
  std::vector<sluice::v1::SidecarMessage> out;
  out.reserve(buckets_.size() + 1);
  sluice::v1::Hello* hello = out.emplace_back().mutable_hello();
  hello->set_protocol_version(kProtocolVersion);
  hello->set_sidecar_id(options_.sidecar_id);
  hello->set_instance(options_.instance);
  hello->set_pod(options_.pod);
  hello->set_namespace_(options_.pod_namespace);
  hello->set_version(options_.version);
  hello->set_weight(options_.weight);
  for (auto& b : buckets_) {
    b->refresh = options_.refresh;
    b->target = 0;
    b->early_armed = false;
    b->reports_made.clear();  // a new stream echoes only its own reports
    out.push_back(MakeReport(*b, now));
  }
  return out;
}

void LeaseAgent::OnDisconnected(TimePoint now) {
  now = Observe(now);
  connected_ = false;
  answered_ = false;
  for (auto& b : buckets_) {
    if (b->binding.pool != nullptr) b->binding.pool->SetConnected(false, now);
  }
}

void LeaseAgent::OnServerMessage(const sluice::v1::ServerMessage& msg,
                                 TimePoint now) {
  now = Observe(now);
  if (connected_ && !answered_) {
    // The server has answered: from now on the pools spend only leased
    // tokens. Until this moment the unavailability policy stays in force,
    // so a server that accepts connections but never answers cannot stall
    // traffic for a whole connect timeout.
    answered_ = true;
    for (auto& b : buckets_) {
      if (b->binding.pool != nullptr) b->binding.pool->SetConnected(true, now);
    }
  }
  if (msg.server_epoch() != 0) {
    if (server_epoch_ != 0 && msg.server_epoch() != server_epoch_) {
      ++server_restarts_;
    }
    server_epoch_ = msg.server_epoch();
  }
  if (msg.has_grant()) {
    const sluice::v1::LeaseGrant& g = msg.grant();
    // A grant overtaken by a newer one (grants may come as datagrams, which
    // reorder): once a report says the newer seq was seen, the server stops
    // counting this one's tokens as in flight, and the held it reported did
    // not include them. Dropping them keeps the server's bound; spending
    // them could break it.
    // Its target still applies downwards (holding less is always safe):
    // an overtaken shrink or revoke is not lost.
    const bool stale = g.seq() != 0 && g.seq() <= grant_seq_seen_;
    if (stale) ++stale_grants_;
    grant_seq_seen_ = std::max(grant_seq_seen_, g.seq());
    for (auto& bp : buckets_) {
      Bucket& b = *bp;
      if (!b.Is(g.bucket())) continue;
      LeasePool* pool = b.binding.pool.get();
      if (pool != nullptr && g.target() < pool->Held(now)) {
        pool->ShrinkTo(g.target(), now);
      }
      if (stale) break;
      // Tokens that come while the bucket is paused would all be spent the
      // instant it resumes, past the probe and the ramp (a grant datagram
      // can come after the pause that stopped grants): drop them. The
      // server counts them until the next report says they are gone.
      const bool paused =
          b.binding.pause != nullptr &&
          b.binding.pause->PhaseAt(now) == PauseSchedule::Phase::kPaused;
      // The tokens live ttl from the moment the grant was made, at most,
      // and the grant is younger than the report it echoes: so a grant that
      // waited in a queue, behind a retransmission or in a frozen process
      // dies before the server stops counting it (docs/leasing.md, "The
      // bound"). A server that echoes no report (0) gets ttl from now.
      const Duration ttl = std::chrono::milliseconds(g.ttl_ms());
      TimePoint expires = now + ttl;
      if (g.report_seq() != 0) {
        const std::optional<TimePoint> made = b.ReportMadeAt(g.report_seq());
        expires = made.has_value() ? std::min(expires, *made + ttl) : now;
        // Later grants of this stream echo this report or a newer one (an
        // older echo only comes on a grant already stale by seq).
        while (!b.reports_made.empty() &&
               b.reports_made.front().first < g.report_seq()) {
          b.reports_made.pop_front();
        }
      }
      if (expires <= now && g.tokens() > 0) ++aged_grants_;
      if (pool != nullptr && !paused && expires > now) {
        pool->AddGrant(g.tokens(), expires, g.share_per_second(), now);
      }
      if (g.refresh_after_ms() > 0) {
        b.refresh = std::chrono::milliseconds(g.refresh_after_ms());
      }
      b.target = g.target();
      b.early_armed = true;
      break;
    }
  } else if (msg.has_limit()) {
    const sluice::v1::LimitUpdate& l = msg.limit();
    limits_[l.resource()] = l;
    for (auto& b : buckets_) ApplyLimit(l, *b);
  } else if (msg.has_pause()) {
    OnPause(msg.pause(), now);
  }
}

void LeaseAgent::OnPause(const sluice::v1::Pause& p, TimePoint now) {
  for (auto& bp : buckets_) {
    Bucket& b = *bp;
    if (!b.Is(p.bucket())) continue;
    const Duration remaining = RemainingOf(p);
    if (remaining > Duration::zero()) {
      // Tokens held now would all be spent the instant the pause ends: give
      // them up (the next report says so, and the server's level keeps the
      // fleet within the limit).
      if (b.binding.pool != nullptr) b.binding.pool->ShrinkTo(0, now);
      if (b.binding.pause != nullptr) {
        b.binding.pause->OnRemotePause(remaining, p.pause_id(), now);
      }
    }
    if (!pause_copies_.TakeStreamAck(p.bucket().resource(),
                                     p.bucket().key_hash(), p.pause_id())) {
      pending_.push_back(PauseAckFor(p));
    }
    return;
  }
}

sluice::v1::SidecarMessage LeaseAgent::EventMessage(
    const std::string& resource, const std::string& key_hash,
    const BucketPause::Event& event) {
  sluice::v1::SidecarMessage m;
  sluice::v1::BucketId* bucket;
  if (event.kind == BucketPause::Event::Kind::kProbeOk) {
    bucket = m.mutable_probe_result()->mutable_bucket();
    m.mutable_probe_result()->set_pause_id(event.pause_id);
  } else {
    sluice::v1::ThrottleReport* t = m.mutable_throttle();
    bucket = t->mutable_bucket();
    t->set_status(event.status);
    if (event.hint.has_value()) {
      t->set_has_hint(true);
      t->set_pause_ms(static_cast<uint64_t>(std::max<int64_t>(
          0,
          std::chrono::ceil<std::chrono::milliseconds>(*event.hint).count())));
    }
    t->set_reason(event.reason);
    t->set_probe(event.probe);
    if (event.limit.has_value() && event.window.has_value() &&
        *event.limit > 0 && *event.window > Duration::zero()) {
      t->set_limit(*event.limit);
      t->set_window_ms(static_cast<uint64_t>(
          std::chrono::ceil<std::chrono::milliseconds>(*event.window).count()));
    }
  }
  bucket->set_resource(resource);
  bucket->set_key_hash(key_hash);
  return m;
}

std::vector<sluice::v1::SidecarMessage> LeaseAgent::Poll(TimePoint now) {
  now = Observe(now);
  std::vector<sluice::v1::SidecarMessage> out;
  if (connected_) {
    for (auto& m : pending_) out.push_back(std::move(m));
  }
  pending_.clear();
  // Bindings whose limiter is gone: nobody can spend their pool any more.
  std::erase_if(buckets_, [&](const std::unique_ptr<Bucket>& b) {
    if (!b->binding.limiter.expired()) return false;
    if (b->binding.pool != nullptr) b->binding.pool->ShrinkTo(0, now);
    if (connected_) out.push_back(MakeReport(*b, now));
    Unindex(*b);
    return true;
  });
  if (!connected_) return out;
  for (auto& bp : buckets_) {
    Bucket& b = *bp;
    const bool periodic =
        !b.last_report.has_value() || now >= *b.last_report + b.refresh;
    bool early = false;
    if (!periodic && b.early_armed && b.binding.pool != nullptr) {
      const double held = b.binding.pool->Held(now);
      double queued = 0;
      if (std::shared_ptr<RateLimiter> l = b.binding.limiter.lock()) {
        queued = l->queued_cost();
      }
      early = held < b.target / 2 || held < queued;
    }
    if (!periodic && !early) continue;
    if (early) b.early_armed = false;
    out.push_back(MakeReport(b, now));
  }
  return out;
}

TimePoint LeaseAgent::NextWakeup() const {
  if (!connected_) return TimePoint::max();
  if (!pending_.empty()) return last_now_;
  TimePoint next = TimePoint::max();
  for (const auto& b : buckets_) {
    if (!b->last_report.has_value()) return last_now_;
    next = std::min(next, *b->last_report + b->refresh);
    if (b->early_armed) {
      next = std::min(
          next, last_now_ + std::max<Duration>(b->refresh / 4,
                                               std::chrono::milliseconds(1)));
    }
  }
  return std::max(next, last_now_);
}

}  // namespace sluice
