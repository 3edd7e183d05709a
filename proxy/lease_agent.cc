#include "proxy/lease_agent.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "proxy/rate_limiter.h"

namespace sluice {
namespace {

constexpr uint32_t kProtocolVersion = 1;

LeasePolicy PolicyFromProto(sluice::v1::UnavailablePolicy policy) {
  switch (policy) {
    case sluice::v1::FAIL_CLOSED:
      return LeasePolicy::kFailClosed;
    case sluice::v1::FAIL_OPEN:
      return LeasePolicy::kFailOpen;
    default:  // UNSPECIFIED, FALLBACK_SHARE and values this build lacks.
      return LeasePolicy::kFallbackShare;
  }
}

}  // namespace

struct LeaseAgent::BucketState {
  // Report interval: Options::refresh until a grant says otherwise.
  Duration refresh{};
  // Latest target from a grant on this stream (0: none yet).
  double target = 0;
  // Set by a grant, cleared by an early report: at most one early report
  // per grant received.
  bool early_armed = false;
  // Time of the last report on any stream (start of the demand interval).
  std::optional<TimePoint> last_report;
};

LeaseAgent::LeaseAgent(Options options, std::vector<LeaseBinding> bindings)
    : options_(std::move(options)), bindings_(std::move(bindings)) {
  if (options_.refresh <= Duration::zero()) {
    options_.refresh = std::chrono::milliseconds(100);
  }
  state_.reserve(bindings_.size());
  for (size_t i = 0; i < bindings_.size(); ++i) {
    auto s = std::make_unique<BucketState>();
    s->refresh = options_.refresh;
    state_.push_back(std::move(s));
  }
}

LeaseAgent::~LeaseAgent() = default;

TimePoint LeaseAgent::Observe(TimePoint now) {
  last_now_ = std::max(last_now_, now);
  return last_now_;
}

sluice::v1::SidecarMessage LeaseAgent::MakeReport(size_t i, TimePoint now) {
  const LeaseBinding& b = bindings_[i];
  BucketState& s = *state_[i];
  sluice::v1::SidecarMessage msg;
  sluice::v1::DemandReport* r = msg.mutable_demand();
  r->mutable_bucket()->set_resource(b.resource);
  r->mutable_bucket()->set_key_hash(b.key_hash);
  if (b.limiter != nullptr) {
    const RateLimiter::DemandStats st = b.limiter->TakeDemandStats();
    r->set_allowed(st.allowed);
    r->set_denied(st.denied);
    r->set_queued(st.queued);
    if (st.queue_admitted > 0) {
      const double total_ms =
          std::chrono::duration<double, std::milli>(st.wait_total).count();
      r->set_wait_ms(total_ms / static_cast<double>(st.queue_admitted));
    }
  }
  if (s.last_report.has_value() && now > *s.last_report) {
    r->set_elapsed_ms(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now -
                                                              *s.last_report)
            .count()));
  }
  if (b.pool != nullptr) r->set_held(b.pool->Held(now));
  r->set_grant_seq_seen(grant_seq_seen_);
  s.last_report = now;
  return msg;
}

std::vector<sluice::v1::SidecarMessage> LeaseAgent::OnConnected(TimePoint now) {
  now = Observe(now);
  connected_ = true;
  answered_ = false;
  grant_seq_seen_ = 0;
  std::vector<sluice::v1::SidecarMessage> out;
  out.reserve(bindings_.size() + 1);
  sluice::v1::Hello* hello = out.emplace_back().mutable_hello();
  hello->set_protocol_version(kProtocolVersion);
  hello->set_sidecar_id(options_.sidecar_id);
  hello->set_pod(options_.pod);
  hello->set_namespace_(options_.pod_namespace);
  hello->set_version(options_.version);
  hello->set_weight(options_.weight);
  for (size_t i = 0; i < bindings_.size(); ++i) {
    BucketState& s = *state_[i];
    s.refresh = options_.refresh;
    s.target = 0;
    s.early_armed = false;
    out.push_back(MakeReport(i, now));
  }
  return out;
}

void LeaseAgent::OnDisconnected(TimePoint now) {
  now = Observe(now);
  connected_ = false;
  answered_ = false;
  for (LeaseBinding& b : bindings_) {
    if (b.pool != nullptr) b.pool->SetConnected(false, now);
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
    for (LeaseBinding& b : bindings_) {
      if (b.pool != nullptr) b.pool->SetConnected(true, now);
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
    grant_seq_seen_ = std::max(grant_seq_seen_, g.seq());
    for (size_t i = 0; i < bindings_.size(); ++i) {
      LeaseBinding& b = bindings_[i];
      if (b.resource != g.bucket().resource() ||
          b.key_hash != g.bucket().key_hash()) {
        continue;
      }
      BucketState& s = *state_[i];
      if (b.pool != nullptr) {
        if (g.target() < b.pool->Held(now)) b.pool->ShrinkTo(g.target(), now);
        b.pool->AddGrant(g.tokens(),
                         now + std::chrono::milliseconds(g.ttl_ms()),
                         g.share_per_second(), now);
      }
      if (g.refresh_after_ms() > 0) {
        s.refresh = std::chrono::milliseconds(g.refresh_after_ms());
      }
      s.target = g.target();
      s.early_armed = true;
      break;
    }
  } else if (msg.has_limit()) {
    const sluice::v1::LimitUpdate& l = msg.limit();
    const LeasePolicy policy = PolicyFromProto(l.unavailable_policy());
    for (LeaseBinding& b : bindings_) {
      if (b.resource != l.resource() || b.pool == nullptr) continue;
      b.pool->SetLimit(l.rate_per_second(), l.burst(), policy, l.sidecars());
    }
  }
}

std::vector<sluice::v1::SidecarMessage> LeaseAgent::Poll(TimePoint now) {
  now = Observe(now);
  std::vector<sluice::v1::SidecarMessage> out;
  if (!connected_) return out;
  for (size_t i = 0; i < bindings_.size(); ++i) {
    BucketState& s = *state_[i];
    const bool periodic =
        !s.last_report.has_value() || now >= *s.last_report + s.refresh;
    bool early = false;
    if (!periodic && s.early_armed && bindings_[i].pool != nullptr) {
      const double held = bindings_[i].pool->Held(now);
      const double queued = bindings_[i].limiter != nullptr
                                ? bindings_[i].limiter->queued_cost()
                                : 0;
      early = held < s.target / 2 || held < queued;
    }
    if (!periodic && !early) continue;
    if (early) s.early_armed = false;
    out.push_back(MakeReport(i, now));
  }
  return out;
}

TimePoint LeaseAgent::NextWakeup() const {
  if (!connected_) return TimePoint::max();
  TimePoint next = TimePoint::max();
  for (const auto& s : state_) {
    if (!s->last_report.has_value()) return last_now_;
    next = std::min(next, *s->last_report + s->refresh);
    if (s->early_armed) {
      next = std::min(
          next, last_now_ + std::max<Duration>(s->refresh / 4,
                                               std::chrono::milliseconds(1)));
    }
  }
  return std::max(next, last_now_);
}

}  // namespace sluice
