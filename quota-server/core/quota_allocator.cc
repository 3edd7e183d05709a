#include "quota-server/core/quota_allocator.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/protocol/replay_window.h"
#include "common/time/duration.h"
#include "quota-server/core/lease_messages.h"
#include "quota-server/core/limit_learner.h"
#include "quota-server/core/resource_ledger.h"

namespace sluice {
namespace {

// Per-key resources keep at most this many key buckets; reports for more
// keys are ignored until idle buckets are evicted.
constexpr size_t kMaxKeysPerResource = 10000;
// Smoothing of the status page's granted rate.
constexpr double kGrantRateTauSeconds = 1.0;
constexpr double kMaxWeight = 1e6;
constexpr double kMinWeight = 1e-6;

LedgerLimits LimitsOf(const ResourceConfig& config) {
  return LedgerLimits{.rate_per_second = config.RatePerSecond(),
                      .burst = config.burst,
                      .lease = config.lease,
                      .pause = config.pause};
}

// What a sidecar is told about a limit; a change means a new LimitUpdate.
bool SameLimit(const ResourceConfig& a, const ResourceConfig& b) {
  return a.RatePerSecond() == b.RatePerSecond() && a.burst == b.burst &&
         a.unavailable_policy == b.unavailable_policy;
}

}  // namespace

class QuotaAllocator::Impl {
 public:
  Impl(ServerConfig config, uint64_t epoch, TimePoint now, absl::Time wall_now)
      : config_(std::move(config)),
        epoch_(epoch),
        start_(now),
        wall_at_start_(wall_now),
        rate_at_(now) {
    for (const ResourceConfig& rc : config_.resources) {
      resources_.emplace(rc.name, NewResource(rc, now));
    }
  }

  void Open(StreamId id) {
    auto [it, inserted] = streams_.try_emplace(id, nullptr);
    if (inserted) it->second = NewStream(id);
  }

  bool OnMessage(StreamId id, const sluice::v1::SidecarMessage& msg,
                 TimePoint now, Outbox* out) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return false;  // never opened, or closed
    Stream& s = *it->second;
    if (!s.open || s.superseded || s.refused) return false;
    if (msg.has_hello()) {
      if (s.hello) return false;
      return OnHello(id, s, msg.hello(), now, out);
    }
    if (!s.hello) return false;
    if (msg.has_demand()) {
      // grant_seq_seen only grows on a stream, so a report that says less
      // than one already taken was overtaken (datagrams may reorder). Its
      // held predates grants the newer report acknowledged: taking it would
      // undercount what the sidecar may spend.
      if (msg.demand().grant_seq_seen() < s.max_seq_seen) {
        ++stale_reports_;
        return false;
      }
      s.max_seq_seen = msg.demand().grant_seq_seen();
      OnReport(id, s, msg.demand(), now, out);
    } else if (msg.has_throttle()) {
      const uint64_t rid = msg.throttle().report_id();
      if (rid != 0 && !s.throttle_reports.Accept(rid)) {
        ++duplicate_reports_;  // the other path's copy came first
        return false;
      }
      OnThrottle(id, s, msg.throttle(), now, out);
    } else if (msg.has_probe_result()) {
      const auto& pr = msg.probe_result();
      if (ResourceLedger* l = FindLedger(pr.bucket())) {
        l->OnProbeResult(id, pr.pause_id(), now);
      }
    } else if (msg.has_pause_ack()) {
      const auto& ack = msg.pause_ack();
      if (ResourceLedger* l = FindLedger(ack.bucket())) {
        const Duration held = std::chrono::microseconds(
            std::min<uint32_t>(ack.held_us(), 1'000'000));
        if (auto d = l->OnPauseAck(id, ack.pause_id(), now - held)) {
          propagation_.Observe(ToSeconds(*d));
        }
      }
    }
    return true;
  }

  void Close(StreamId id, TimePoint now) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    Stream& s = *it->second;
    if (!s.open) return;
    if (!s.superseded) Detach(s, now);
    s.open = false;
    MaybeErase(id);
  }

  void Tick(TimePoint now, Outbox* out) {
    for (auto& [name, r] : resources_) {
      if (r->learner) {
        r->learner->Advance(now);
        ApplyLearned(*r, now);
      }
    }
    for (auto& [name, r] : resources_) {
      const uint32_t was = r->announced_streams;
      const uint32_t now_count = r->reporting_streams;
      const uint32_t diff = was > now_count ? was - now_count : now_count - was;
      if (diff > 0 && diff >= std::max<uint32_t>(1, was / 10)) {
        r->announced_streams = now_count;
        // The first sidecar was told the count in its first LimitUpdate.
        if (was == 0) continue;
        ++r->announce;
        limits_dirty_ = true;
      }
    }
    if (limits_dirty_) PushLimitUpdates(out);
    for (const PendingRevoke& r : pending_revokes_) {
      auto it = streams_.find(r.stream);
      if (it == streams_.end() || !it->second->open) continue;
      out->messages.emplace_back(r.stream, MakeGrant(*it->second, r.resource,
                                                     r.key, GrantOrder{}, now));
    }
    pending_revokes_.clear();
    for (const ResourceConfig& rc : config_.resources) {
      Resource& r = *resources_.at(rc.name);
      for (auto it = r.buckets.begin(); it != r.buckets.end();) {
        ResourceLedger* ledger = it->second.get();
        removed_.clear();
        ledger->TickPause(now, Sink(rc.name, it->first, &r, now, out),
                          PauseSender{this, &r, &it->first, now, out});
        ledger->Tick(now, Sink(rc.name, it->first, &r, now, out), &removed_);
        ForgetMembers(ledger);
        // An idle key's bucket is evicted once it would have refilled
        // anyway (burst / rate after its last grant), so recreating it full
        // never lets a window see more than rate * W + burst.
        // At the rate in force: a learned rate below the configured one
        // refills more slowly.
        if (rc.per_key && ledger->empty() &&
            ledger->Pause(now).phase == PauseSchedule::Phase::kRunning &&
            ToSeconds(now - ledger->last_grant_at()) >=
                rc.burst / Effective(r).RatePerSecond()) {
          r.buckets.erase(it++);
        } else {
          ++it;
        }
      }
    }
    const double dt = ToSeconds(now - rate_at_);
    if (dt > 0) {
      const double alpha = 1 - std::exp(-dt / kGrantRateTauSeconds);
      for (auto& [name, r] : resources_) {
        r->granted_rate += alpha * (r->granted_since / dt - r->granted_rate);
        r->granted_since = 0;
      }
      rate_at_ = now;
    }
  }

  absl::Status Reconfigure(ServerConfig config, TimePoint now) {
    absl::Status status = ValidateServerConfig(config);
    if (!status.ok()) return status;
    ++config_version_;
    absl::flat_hash_map<std::string, std::unique_ptr<Resource>> next;
    for (const ResourceConfig& rc : config.resources) {
      auto old = resources_.find(rc.name);
      if (old == resources_.end()) {
        next.emplace(rc.name, NewResource(rc, now));
        continue;
      }
      std::unique_ptr<Resource> r = std::move(old->second);
      resources_.erase(old);
      if (!SameLimit(r->config, rc)) {
        r->version = config_version_;
        ++r->announce;
        limits_dirty_ = true;
      }
      if (rc.learn && !r->learner) {
        r->learner.emplace(rc.learn_options, rc.RatePerSecond(), now);
      } else if (!rc.learn) {
        r->learner.reset();
      } else {
        r->learner->SetConfigured(rc.RatePerSecond());
      }
      const bool changed = !(r->config == rc);
      r->config = rc;
      if (changed) {
        const LedgerLimits limits = LimitsOf(Effective(*r));
        for (auto& [key, ledger] : r->buckets) ledger->SetLimits(limits, now);
        r->applied_rate = r->learner ? r->learner->effective() : 0;
      }
      next.emplace(rc.name, std::move(r));
    }
    // What is left is removed: revoke every grant, then forget it.
    for (auto& [name, r] : resources_) {
      for (auto& bucket : r->buckets) {
        // Named copies: lambdas may not capture structured bindings (C++20
        // allows it, clang 14 does not).
        const std::string& resource_name = name;
        const std::string& key = bucket.first;
        ResourceLedger* ledger = bucket.second.get();
        ledger->RevokeAll([&](const GrantOrder& order) -> uint64_t {
          pending_revokes_.push_back({order.stream, resource_name, key});
          return 0;
        });
        ledger->ForEachMember([&](const ResourceLedger::MemberView& m) {
          auto it = streams_.find(m.stream);
          if (it != streams_.end()) it->second->ledgers.erase(ledger);
        });
      }
      std::vector<StreamId> to_check;
      for (auto& [id, s] : streams_) {
        if (s->limit_sent.erase(name) > 0 || s->ledgers.empty()) {
          to_check.push_back(id);
        }
      }
      for (StreamId id : to_check) MaybeErase(id);
    }
    resources_ = std::move(next);
    if (!config.learning) {
      for (auto& [name, r] : resources_) {
        for (auto& [key, ledger] : r->buckets) ledger->EndLearning();
      }
    }
    config_ = std::move(config);
    return absl::OkStatus();
  }

  absl::Status SetLimit(const std::string& resource, double rate, double burst,
                        TimePoint now) {
    auto it = resources_.find(resource);
    if (it == resources_.end()) {
      return absl::NotFoundError(absl::StrCat("unknown resource: ", resource));
    }
    ServerConfig next = config_;
    for (ResourceConfig& rc : next.resources) {
      if (rc.name != resource) continue;
      rc.rate = rate;
      rc.period = std::chrono::seconds(1);
      rc.burst = burst;
    }
    absl::Status status = ValidateServerConfig(next);
    if (!status.ok()) return status;
    return Reconfigure(std::move(next), now);
  }

  Status Snapshot(TimePoint now) const;

 private:
  struct Resource {
    ResourceConfig config;
    uint64_t version = 0;  // config_version_ at its last limit change
    absl::flat_hash_map<std::string, std::unique_ptr<ResourceLedger>> buckets;
    uint32_t reporting_streams = 0;  // open streams that reported it
    // Bumped whenever its LimitUpdate must be sent again: a limit change, or
    // the number of sidecars moving by 10% (at least 1) from the number last
    // announced (the fallback_share policy divides the rate by it).
    uint64_t announce = 1;
    uint32_t announced_streams = 0;
    double granted_since = 0;  // tokens granted since the last Tick
    double granted_rate = 0;
    // Set when the resource learns its upstream's limit; the ledgers then
    // run at learner->effective(), last applied as `applied_rate`.
    std::optional<LimitLearner> learner;
    double applied_rate = 0;
    // Pauses started or extended, by the reason the reporter gave.
    absl::flat_hash_map<std::string, uint64_t> pauses_by_reason;
  };
  struct Stream {
    StreamId id = 0;
    bool open = true;
    bool hello = false;
    bool superseded = false;  // a newer stream has the same sidecar id
    bool refused = false;     // its Hello named another instance's id
    std::string sidecar_id;
    std::string instance;
    std::string pod;
    double weight = 1;
    uint64_t next_seq = 1;
    uint64_t max_seq_seen = 0;           // in the reports taken
    std::vector<StreamId> predecessors;  // older streams of this sidecar
    // Resource name -> version of the last LimitUpdate sent for it.
    absl::flat_hash_map<std::string, uint64_t> limit_sent;
    absl::flat_hash_set<ResourceLedger*> ledgers;  // where it is a member
    // report_id of throttle reports taken: each comes on the stream and
    // maybe the fast path too, and counts once.
    ReplayWindow throttle_reports;
  };
  struct PendingRevoke {
    StreamId stream;
    std::string resource;
    std::string key;
  };

  std::unique_ptr<Resource> NewResource(const ResourceConfig& rc,
                                        TimePoint now) {
    auto r = std::make_unique<Resource>();
    r->config = rc;
    r->version = config_version_;
    if (rc.learn) {
      r->learner.emplace(rc.learn_options, rc.RatePerSecond(), now);
      r->applied_rate = rc.RatePerSecond();
    }
    // An unkeyed resource's level accrues from the start.
    if (!rc.per_key) r->buckets.emplace("", NewLedger(rc, now, false));
    return r;
  }

  // A per-key bucket starts full: nothing is outstanding for a key never
  // seen (or evicted only after idling long enough to refill, see Tick).
  std::unique_ptr<ResourceLedger> NewLedger(const ResourceConfig& rc,
                                            TimePoint now, bool full) {
    return std::make_unique<ResourceLedger>(
        LimitsOf(rc), now, LearningUntil(rc), full ? rc.burst : 0.0);
  }

  static std::unique_ptr<Stream> NewStream(StreamId id) {
    auto s = std::make_unique<Stream>();
    s->id = id;
    return s;
  }

  TimePoint LearningUntil(const ResourceConfig& rc) const {
    if (!config_.learning) return TimePoint::min();
    return start_ + rc.lease.ttl + rc.lease.grace;
  }

  bool OnHello(StreamId id, Stream& s, const sluice::v1::Hello& hello,
               TimePoint now, Outbox* out) {
    // Speaking another protocol version is the transport's to refuse; the
    // allocator leaves such a stream without a Hello.
    if (hello.protocol_version() != kLeaseProtocolVersion) return false;
    if (!hello.sidecar_id().empty()) {
      auto held = by_id_.find(hello.sidecar_id());
      if (held != by_id_.end()) {
        auto other = streams_.find(held->second);
        if (other != streams_.end() && other->second->open &&
            !other->second->superseded &&
            other->second->instance != hello.instance()) {
          // A second process with the same id (or a restarted one whose old
          // stream the server has not seen end): both would lease as one
          // sidecar and one's tokens would go uncounted. The open stream
          // keeps the id; this one is refused until that one closes.
          ++duplicate_ids_;
          s.refused = true;
          out->refused.emplace_back(
              id, absl::StrCat("sidecar_id \"", hello.sidecar_id(),
                               "\" is already leasing on another stream (a "
                               "second process with the same id?); refused "
                               "until that stream closes"));
          return false;
        }
      }
    }
    s.hello = true;
    s.sidecar_id = hello.sidecar_id();
    s.instance = hello.instance();
    s.pod = hello.pod();
    const double w = hello.weight();
    s.weight =
        std::isfinite(w) && w > 0 ? std::clamp(w, kMinWeight, kMaxWeight) : 1.0;
    if (s.sidecar_id.empty()) return true;
    auto [it, inserted] = by_id_.try_emplace(s.sidecar_id, id);
    if (inserted) return true;
    const StreamId old_id = it->second;
    it->second = id;
    auto old = streams_.find(old_id);
    if (old == streams_.end()) return true;
    Stream& o = *old->second;
    if (o.open && !o.superseded) Detach(o, now);
    o.superseded = true;
    // Only a reconnect of the same process takes over the old stream's
    // ledgers: its first report's held includes what it held there. Another
    // process (a restart) holds none of those tokens, and they stay counted
    // under the old stream until they die. (A sidecar that sends no
    // instance is taken to be the same process, as before instances.)
    if (o.instance != s.instance) return true;
    for (StreamId p : o.predecessors) {
      if (streams_.contains(p)) s.predecessors.push_back(p);
    }
    s.predecessors.push_back(old_id);
    return true;
  }

  // Stops allocating to `s`; its ledgers keep its tokens until they die.
  void Detach(Stream& s, TimePoint now) {
    for (const auto& [name, version] : s.limit_sent) {
      auto it = resources_.find(name);
      if (it != resources_.end()) --it->second->reporting_streams;
    }
    for (ResourceLedger* ledger : s.ledgers) {
      ledger->Detach(s.id, now);
    }
  }

  void OnReport(StreamId id, Stream& s, const sluice::v1::DemandReport& rep,
                TimePoint now, Outbox* out) {
    auto rit = resources_.find(rep.bucket().resource());
    if (rit == resources_.end()) {
      ++ignored_reports_;
      return;
    }
    Resource& r = *rit->second;
    const std::string& key = rep.bucket().key_hash();
    if (!r.config.per_key && !key.empty()) {
      ++ignored_reports_;  // a key for an unkeyed resource: misconfigured
      return;
    }
    auto [sent, first] = s.limit_sent.try_emplace(r.config.name, r.announce);
    if (first) {
      ++r.reporting_streams;
      out->messages.emplace_back(id, MakeLimit(r));
    }
    auto bit = r.buckets.find(key);
    if (bit == r.buckets.end()) {
      if (r.config.per_key && r.buckets.size() >= kMaxKeysPerResource) {
        ++ignored_reports_;
        return;
      }
      bit =
          r.buckets.emplace(key, NewLedger(Effective(r), now, r.config.per_key))
              .first;
    }
    ResourceLedger* ledger = bit->second.get();
    // Who counts once in K while learning: the id, or for an anonymous
    // sidecar its instance (the same on every reconnect).
    const ResourceLedger::Reporter who{
        .stream = id,
        .sidecar_id = s.sidecar_id.empty() ? s.instance : s.sidecar_id,
        .weight = s.weight,
        .replaces = s.predecessors};
    removed_.clear();
    if (ledger->OnReport(who, rep, now, Sink(r.config.name, key, &r, now, out),
                         &removed_)) {
      s.ledgers.insert(ledger);
      // A sidecar that joins during a pause hears of it in its first answer.
      if (auto order = ledger->PauseFor(id, now)) {
        PauseSender{this, &r, &key, now, out}(*order);
      }
    }
    ForgetMembers(ledger);
    if (r.learner && rep.stated_limit() > 0 && rep.stated_window_ms() > 0) {
      r.learner->OnStated(rep.stated_limit() * 1000.0 /
                              static_cast<double>(rep.stated_window_ms()),
                          now);
      ApplyLearned(r, now);
    }
  }

  // The ledger of an existing bucket, or null.
  ResourceLedger* FindLedger(const sluice::v1::BucketId& bucket) {
    auto rit = resources_.find(bucket.resource());
    if (rit == resources_.end()) return nullptr;
    auto bit = rit->second->buckets.find(bucket.key_hash());
    return bit == rit->second->buckets.end() ? nullptr : bit->second.get();
  }

  void OnThrottle(StreamId id, Stream& s,
                  const sluice::v1::ThrottleReport& report, TimePoint now,
                  Outbox* out) {
    auto rit = resources_.find(report.bucket().resource());
    ResourceLedger* ledger = FindLedger(report.bucket());
    if (!ledger) {
      ++ignored_reports_;  // a bucket the sidecar never reported
      return;
    }
    Resource& r = *rit->second;
    if (ledger->OnThrottle(
            id, s.sidecar_id, report, now,
            PauseSender{this, &r, &report.bucket().key_hash(), now, out})) {
      const std::string reason =
          report.reason().empty() ? "throttled" : report.reason();
      ++r.pauses_by_reason[reason];
      if (r.learner) {
        std::optional<double> stated;
        if (report.limit() > 0 && report.window_ms() > 0) {
          stated =
              report.limit() * 1000.0 / static_cast<double>(report.window_ms());
        }
        r.learner->OnThrottle(stated, now);
        ApplyLearned(r, now);
      }
    }
  }

  // Streams in removed_ are no longer members of `ledger`.
  void ForgetMembers(ResourceLedger* ledger) {
    for (StreamId gone : removed_) {
      auto it = streams_.find(gone);
      if (it == streams_.end()) continue;
      it->second->ledgers.erase(ledger);
      MaybeErase(gone);
    }
    removed_.clear();
  }

  // Drops a closed stream once no ledger remembers it.
  void MaybeErase(StreamId id) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    Stream& s = *it->second;
    if (s.open || !s.ledgers.empty()) return;
    auto by = by_id_.find(s.sidecar_id);
    if (by != by_id_.end() && by->second == id) by_id_.erase(by);
    streams_.erase(it);
  }

  // Sends ledger grants for one bucket as LeaseGrant messages.
  struct Sender {
    Impl* impl;
    const std::string* resource;
    const std::string* key;
    Resource* r;
    Outbox* out;
    TimePoint now;
    uint64_t operator()(const GrantOrder& order) const {
      auto it = impl->streams_.find(order.stream);
      if (it == impl->streams_.end()) return 0;
      Stream& s = *it->second;
      const uint64_t seq = s.next_seq;
      out->messages.emplace_back(
          order.stream, impl->MakeGrant(s, *resource, *key, order, now));
      r->granted_since += order.tokens;
      return seq;
    }
  };
  Sender Sink(const std::string& resource, const std::string& key, Resource* r,
              TimePoint now, Outbox* out) {
    return Sender{this, &resource, &key, r, out, now};
  }

  // Sends ledger pause orders for one bucket as Pause messages.
  struct PauseSender {
    Impl* impl;
    Resource* r;
    const std::string* key;
    TimePoint now;
    Outbox* out;
    void operator()(const PauseOrder& order) const {
      auto it = impl->streams_.find(order.stream);
      if (it == impl->streams_.end() || !it->second->open) return;
      auto bit = r->buckets.find(*key);
      if (bit == r->buckets.end()) return;
      out->messages.emplace_back(
          order.stream,
          MakePauseMessage(impl->epoch_, r->config.name, *key, order,
                           bit->second->Pause(now), r->config.pause.ramp));
    }
  };

  sluice::v1::ServerMessage MakeGrant(Stream& s, const std::string& resource,
                                      const std::string& key,
                                      const GrantOrder& order, TimePoint now) {
    auto it = resources_.find(resource);
    return MakeGrantMessage(
        epoch_, resource, key, order, s.next_seq++,
        it != resources_.end() ? it->second->config.lease : LeaseTuning{},
        wall_at_start_ + absl::FromChrono(now - start_));
  }

  sluice::v1::ServerMessage MakeLimit(const Resource& r) const {
    return MakeLimitMessage(epoch_, Effective(r), r.reporting_streams,
                            r.version);
  }

  // The resource's config with the rate in force (learned or configured).
  static ResourceConfig Effective(const Resource& r) {
    ResourceConfig rc = r.config;
    if (r.learner) {
      rc.rate = r.learner->effective();
      rc.period = std::chrono::seconds(1);
    }
    return rc;
  }

  // Puts a learned rate that moved (by 1% or more) into every ledger of
  // `r` and announces it.
  void ApplyLearned(Resource& r, TimePoint now) {
    if (!r.learner) return;
    const double rate = r.learner->effective();
    if (r.applied_rate > 0 &&
        std::abs(rate - r.applied_rate) < 0.01 * r.applied_rate) {
      return;
    }
    r.applied_rate = rate;
    const LedgerLimits limits = LimitsOf(Effective(r));
    for (auto& [key, ledger] : r.buckets) ledger->SetLimits(limits, now);
    r.version = ++config_version_;
    ++r.announce;
    limits_dirty_ = true;
  }

  void PushLimitUpdates(Outbox* out) {
    for (auto& [id, s] : streams_) {
      if (!s->open || s->superseded) continue;
      for (auto& [name, version] : s->limit_sent) {
        const Resource& r = *resources_.at(name);
        if (version == r.announce) continue;
        version = r.announce;
        out->messages.emplace_back(id, MakeLimit(r));
      }
    }
    limits_dirty_ = false;
  }

  ServerConfig config_;
  const uint64_t epoch_;
  const TimePoint start_;
  // The wall time at start_: grants carry an informational expiry in Unix
  // time, derived from `now` so that the core reads no clock.
  const absl::Time wall_at_start_;
  uint64_t config_version_ = 1;
  absl::flat_hash_map<std::string, std::unique_ptr<Resource>> resources_;
  absl::flat_hash_map<StreamId, std::unique_ptr<Stream>> streams_;
  absl::flat_hash_map<std::string, StreamId> by_id_;
  std::vector<PendingRevoke> pending_revokes_;
  bool limits_dirty_ = false;
  uint64_t ignored_reports_ = 0;
  uint64_t duplicate_reports_ = 0;
  uint64_t stale_reports_ = 0;
  uint64_t duplicate_ids_ = 0;
  PropagationHistogram propagation_;
  TimePoint rate_at_;
  std::vector<StreamId> removed_;  // scratch
};

QuotaAllocator::Status QuotaAllocator::Impl::Snapshot(TimePoint now) const {
  Status status;
  status.epoch = epoch_;
  status.config_version = config_version_;
  status.ignored_reports = ignored_reports_;
  status.duplicate_reports = duplicate_reports_;
  status.stale_reports = stale_reports_;
  status.duplicate_ids = duplicate_ids_;
  status.pause_propagation = propagation_;
  for (const auto& [id, s] : streams_) {
    if (s->open && s->hello && !s->superseded) ++status.connected_streams;
  }
  for (const ResourceConfig& rc : config_.resources) {
    const Resource& r = *resources_.at(rc.name);
    ResourceStatus& rs = status.resources.emplace_back();
    rs.name = rc.name;
    rs.rate_per_second = rc.RatePerSecond();
    rs.effective_rate_per_second =
        r.learner ? r.learner->effective() : rs.rate_per_second;
    rs.learning_limit = r.learner.has_value();
    if (r.learner && r.learner->learned()) {
      rs.learned_rate_per_second = *r.learner->learned();
    }
    if (r.learner) {
      rs.stated_rate_per_second = r.learner->stated(now).value_or(0);
    }
    rs.burst = rc.burst;
    rs.granted_per_second = r.granted_rate;
    rs.utilisation = rs.granted_per_second / rs.rate_per_second;
    rs.learning = config_.learning && now < LearningUntil(rc);
    rs.pauses_by_reason.assign(r.pauses_by_reason.begin(),
                               r.pauses_by_reason.end());
    std::sort(rs.pauses_by_reason.begin(), rs.pauses_by_reason.end());
    // One row per stream, summed over the buckets of a per-key resource.
    absl::flat_hash_map<StreamId, size_t> row;
    for (const auto& [key, ledger] : r.buckets) {
      const FleetPause::View pv = ledger->Pause(now);
      if (pv.phase != PauseSchedule::Phase::kRunning) {
        rs.pauses.push_back(PauseStatus{.key_hash = key,
                                        .phase = pv.phase,
                                        .pause_id = pv.pause_id,
                                        .remaining = pv.remaining,
                                        .rate_fraction = pv.rate_fraction,
                                        .origin_sidecar = pv.origin_sidecar,
                                        .reason = pv.reason});
      }
      rs.level += ledger->Level(now);
      rs.outstanding += ledger->Outstanding();
      ledger->ForEachMember([&](const ResourceLedger::MemberView& m) {
        auto [it, inserted] = row.try_emplace(m.stream, rs.sidecars.size());
        if (inserted) {
          SidecarStatus& ss = rs.sidecars.emplace_back();
          auto sit = streams_.find(m.stream);
          if (sit != streams_.end()) {
            ss.sidecar_id = sit->second->sidecar_id;
            ss.pod = sit->second->pod;
          }
          ss.weight = m.weight;
        }
        SidecarStatus& ss = rs.sidecars[it->second];
        ss.connected = ss.connected || m.attached;
        ss.demand_per_second += m.demand_per_second;
        ss.share_per_second += m.share_per_second;
        ss.outstanding += m.outstanding;
        ss.granted_total += m.granted_total;
      });
    }
    std::sort(rs.sidecars.begin(), rs.sidecars.end(),
              [](const SidecarStatus& a, const SidecarStatus& b) {
                return a.sidecar_id < b.sidecar_id;
              });
  }
  return status;
}

QuotaAllocator::QuotaAllocator(ServerConfig config, uint64_t epoch,
                               TimePoint now, absl::Time wall_now)
    : impl_(std::make_unique<Impl>(std::move(config), epoch, now, wall_now)) {}

QuotaAllocator::~QuotaAllocator() = default;

void QuotaAllocator::Open(StreamId stream, TimePoint now) {
  impl_->Open(stream);
}

bool QuotaAllocator::OnMessage(StreamId stream,
                               const sluice::v1::SidecarMessage& msg,
                               TimePoint now, Outbox* out) {
  return impl_->OnMessage(stream, msg, now, out);
}

void QuotaAllocator::Close(StreamId stream, TimePoint now) {
  impl_->Close(stream, now);
}

void QuotaAllocator::Tick(TimePoint now, Outbox* out) { impl_->Tick(now, out); }

absl::Status QuotaAllocator::Reconfigure(ServerConfig config, TimePoint now) {
  return impl_->Reconfigure(std::move(config), now);
}

absl::Status QuotaAllocator::SetLimit(const std::string& resource,
                                      double rate_per_second, double burst,
                                      TimePoint now) {
  return impl_->SetLimit(resource, rate_per_second, burst, now);
}

QuotaAllocator::Status QuotaAllocator::Snapshot(TimePoint now) const {
  return impl_->Snapshot(now);
}

}  // namespace sluice
