#include "quota-server/core/resource_ledger.h"

#include <algorithm>
#include <cmath>

#include "common/time/duration.h"
#include "quota-server/core/fair_share.h"

namespace sluice {
namespace {

// Demand smoothing time constant (docs/leasing.md).
constexpr double kDemandTauSeconds = 0.25;
// Smallest target of a member with a share: one request of cost 1.
constexpr double kMinTarget = 1.0;
// Members are allocated this multiple of their measured demand.
// A met demand is topped up by up to this fraction of itself, from spare
// capacity only (ShareOut), so a slightly low estimate or a late grant
// does not leave a member short for good.
constexpr double kDemandHeadroom = 0.1;
// A demand change smaller than this fraction does not trigger a recompute.
constexpr double kMaterialChange = 0.1;
// A target must fall by this fraction below the last one sent to warrant a
// shrink of its own.
constexpr double kShrinkHysteresis = 0.1;
// Smallest top-up worth a message, unless it fills the gap.
constexpr double kMinGrant = 1.0;
// On Tick, a member that did not ask is topped up when this far below.
// A member that stops reporting is dropped after this many refresh
// intervals (once its tokens are dead).
constexpr int kIdleRefreshes = 10;
constexpr double kMaxDemand = 1e15;
constexpr double kEpsilon = 1e-9;

double Clean(double v) { return std::isfinite(v) && v > 0 ? v : 0; }

}  // namespace

ResourceLedger::ResourceLedger(LedgerLimits limits, TimePoint now,
                               TimePoint learning_until, double initial_level)
    : limits_(limits),
      dead_after_grant_(limits.lease.ttl + limits.lease.grace),
      level_(std::max(0.0, initial_level)),
      accrued_at_(now),
      last_grant_at_(now),
      learning_(now < learning_until),
      learning_until_(learning_until) {
  ClampLevel(now);
}

void ResourceLedger::SetLimits(const LedgerLimits& limits, TimePoint now) {
  Accrue(now);
  limits_ = limits;
  dead_after_grant_ = limits.lease.ttl + limits.lease.grace;
  dirty_ = true;
  ClampLevel(now);
}

void ResourceLedger::EndLearning() {
  learning_ = false;
  learned_ids_.clear();
}

double ResourceLedger::Cap(TimePoint now) const {
  if (Learning(now)) return std::min(limits_.burst, known_held_);
  return limits_.burst;
}

bool ResourceLedger::Learning(TimePoint now) const {
  return learning_ && now < learning_until_;
}

double ResourceLedger::HorizonSeconds() const {
  return std::min(ToSeconds(limits_.lease.horizon),
                  limits_.burst / (2 * limits_.rate_per_second));
}

double ResourceLedger::Level(TimePoint now) const {
  const double room = std::max(0.0, Cap(now) - outstanding_);
  const double dt = std::max(0.0, ToSeconds(now - accrued_at_));
  return std::max(
      0.0,
      std::min(level_ + limits_.rate_per_second * rate_fraction_ * dt, room));
}

void ResourceLedger::Accrue(TimePoint now) {
  level_ = Level(now);
  if (now > accrued_at_) accrued_at_ = now;
}

void ResourceLedger::ClampLevel(TimePoint now) {
  level_ =
      std::max(0.0, std::min(level_, std::max(0.0, Cap(now) - outstanding_)));
}

void ResourceLedger::SetOutstanding(Member& m, double value) {
  outstanding_ += value - m.outstanding;
  m.outstanding = value;
}

void ResourceLedger::DropDeadInFlight(Member& m, TimePoint now) {
  auto dead = [&](const InFlight& g) {
    return g.seq <= m.seq_seen || g.dead_at <= now;
  };
  if (std::none_of(m.in_flight.begin(), m.in_flight.end(), dead)) return;
  std::erase_if(m.in_flight, dead);
  double value = m.held;
  for (const InFlight& g : m.in_flight) value += g.tokens;
  SetOutstanding(m, value);
}

ResourceLedger::Member& ResourceLedger::AddMember(
    const Reporter& who, TimePoint now, std::vector<StreamId>* removed) {
  TimePoint inherited_dead_at = now;
  for (StreamId old : who.replaces) {
    auto it = index_.find(old);
    if (it == index_.end()) continue;
    inherited_dead_at =
        std::max(inherited_dead_at, members_[it->second].tokens_dead_at);
    RemoveAt(it->second);
    removed->push_back(old);
  }
  index_[who.stream] = static_cast<uint32_t>(members_.size());
  Member& m = members_.emplace_back();
  m.stream = who.stream;
  m.weight = who.weight;
  m.last_report = now;
  m.tokens_dead_at = inherited_dead_at;
  dirty_ = true;
  return m;
}

void ResourceLedger::RemoveAt(size_t index) {
  Member& m = members_[index];
  outstanding_ -= m.outstanding;
  if (m.attached) dirty_ = true;
  index_.erase(m.stream);
  if (index != members_.size() - 1) {
    m = std::move(members_.back());
    index_[m.stream] = static_cast<uint32_t>(index);
  }
  members_.pop_back();
  if (members_.empty()) outstanding_ = 0;  // no drift left behind
}

bool ResourceLedger::OnReport(const Reporter& who,
                              const sluice::v1::DemandReport& report,
                              TimePoint now, GrantSink sink,
                              std::vector<StreamId>* removed) {
  Accrue(now);
  auto it = index_.find(who.stream);
  const bool is_new = it == index_.end();
  Member& m = is_new ? AddMember(who, now, removed) : members_[it->second];
  if (!m.attached) return false;  // a replaced stream's late report

  const double held = Clean(report.held());
  if (is_new && Learning(now)) {
    // K: what each sidecar proved it holds the first time it reports after
    // start. An anonymous sidecar cannot be deduplicated; count it anyway.
    if (who.sidecar_id.empty() || learned_ids_.emplace(who.sidecar_id).second) {
      known_held_ += held;
    }
  }
  m.seq_seen = std::max(m.seq_seen, report.grant_seq_seen());
  m.report_seq = std::max(m.report_seq, report.report_seq());
  m.held = held;
  if (held > 0) {
    // Held tokens were received before `now` and die ttl after receipt.
    m.tokens_dead_at = std::max(m.tokens_dead_at, now + limits_.lease.ttl);
  }
  double value = held;
  std::erase_if(m.in_flight, [&](const InFlight& g) {
    return g.seq <= m.seq_seen || g.dead_at <= now;
  });
  for (const InFlight& g : m.in_flight) value += g.tokens;
  SetOutstanding(m, value);
  ClampLevel(now);

  UpdateDemand(m, report, now);
  m.last_report = now;
  if (dirty_ && members_.size() <= kSmallLedger) {
    Recompute();
  } else if (dirty_) {
    // A large ledger recomputes on the next Tick; until then this member
    // gets an estimate from the current water level. The shares may then
    // sum to a little over the rate for one tick; the level, not the
    // shares, is what bounds the tokens granted.
    m.share = InterimShare(m);
  }
  // Not dirty: the demand moved less than the material threshold, and the
  // share from the last water-fill stands, so the shares keep summing to
  // at most the rate.
  Serve(m, /*asked=*/true, now, sink);
  return is_new;
}

void ResourceLedger::UpdateDemand(Member& m,
                                  const sluice::v1::DemandReport& report,
                                  TimePoint now) {
  const double server_elapsed =
      m.demand_known ? std::max(0.0, ToSeconds(now - m.last_report)) : 0;
  const double elapsed = report.elapsed_ms() > 0
                             ? static_cast<double>(report.elapsed_ms()) / 1e3
                             : server_elapsed;
  double measured = 0;
  const double arrivals = Clean(report.allowed()) + Clean(report.denied());
  // Demand is the arrival rate. allowed + denied count each request when it
  // is decided, so a request still queued is not in them yet; the change of
  // the backlog since the previous report adds exactly those. (Adding the
  // whole backlog instead would inflate the demand of a sidecar whose grants
  // merely arrive in bursts.)
  const double queued = Clean(report.queued());
  const double backlog_growth =
      m.demand_known ? queued - m.last_queued : queued;
  m.last_queued = queued;
  if (elapsed > 0) {
    measured += std::max(0.0, arrivals + backlog_growth) / elapsed;
  }
  measured = std::min(measured, kMaxDemand);

  const double old = m.demand;
  if (elapsed <= 0 && !m.demand_known) {
    // A newcomer's first report measures nothing yet. Until it does, assume
    // it wants the whole rate, so it gets its max-min share within one round
    // trip; its first real measurement replaces the guess outright.
    m.demand = limits_.rate_per_second;
    m.provisional = true;
  } else if (!m.demand_known || m.provisional) {
    m.demand = measured;
    m.demand_known = true;
    m.provisional = false;
  } else {
    const double alpha = 1 - std::exp(-elapsed / kDemandTauSeconds);
    m.demand += alpha * (measured - m.demand);
  }
  if (std::abs(m.demand - old) > kMaterialChange * old + kEpsilon ||
      (old == 0) != (m.demand == 0)) {
    dirty_ = true;
  }
}

void ResourceLedger::Recompute() {
  scratch_demand_.clear();
  scratch_weight_.clear();
  for (const Member& m : members_) {
    if (!m.attached) continue;
    scratch_demand_.push_back(m.demand);
    scratch_weight_.push_back(m.weight);
  }
  levels_ = ShareOut(limits_.rate_per_second, scratch_demand_, scratch_weight_,
                     kDemandHeadroom, &scratch_share_);
  total_weight_ = 0;
  for (double w : scratch_weight_) total_weight_ += w;
  size_t k = 0;
  for (Member& m : members_) {
    m.share = m.attached ? scratch_share_[k++] : 0;
  }
  dirty_ = false;
}

double ResourceLedger::InterimShare(const Member& m) const {
  // As ShareOut would give it at the last run's levels.
  const double fair = std::min(m.demand, m.weight * levels_.lambda);
  if (fair < m.demand) return fair;
  return fair +
         std::min(kDemandHeadroom * m.demand,
                  m.weight * levels_.headroom_lambda) +
         m.weight * levels_.spare_per_weight;
}

void ResourceLedger::SendGrant(Member& m, double tokens, double target,
                               TimePoint now, GrantSink sink) {
  const uint64_t seq = sink(GrantOrder{.stream = m.stream,
                                       .tokens = tokens,
                                       .target = target,
                                       .share_per_second = m.share,
                                       .report_seq = m.report_seq});
  m.last_target_sent = target;
  if (tokens <= 0) return;
  m.in_flight.push_back(InFlight{seq, tokens, now + dead_after_grant_});
  SetOutstanding(m, m.outstanding + tokens);
  level_ = std::max(0.0, level_ - tokens);
  m.granted_total += tokens;
  last_grant_at_ = now;
  m.tokens_dead_at = std::max(m.tokens_dead_at, now + dead_after_grant_);
}

void ResourceLedger::Serve(Member& m, bool asked, TimePoint now,
                           GrantSink sink) {
  // A member with demand holds at least one token (the usual request cost),
  // or a request could never be admitted from a fractional target.
  const double target =
      m.share > 0 ? std::max(m.share * HorizonSeconds(), kMinTarget) : 0.0;
  // Shrink: the target fell materially below what the member was told, and
  // it may hold more than the new one.
  if (m.last_target_sent >= 0 &&
      target < m.last_target_sent * (1 - kShrinkHysteresis) &&
      m.outstanding > target + kEpsilon) {
    SendGrant(m, 0, target, now, sink);
    return;
  }
  if (Halted()) return;  // paused: only the probe's token (TickPause)
  const double gap = target - m.outstanding;
  if (gap <= kEpsilon) return;
  // Top-ups happen on Tick, where the level is shared out fairly; a report
  // only updates the ledger. The exception is a member's first report: a
  // newcomer is served at once from whatever the level holds.
  if (asked && m.last_target_sent >= 0) return;
  AccrueEntitlement(m, target, now);
  double limit = m.entitled;
  if (pass_ == Pass::kLeftover) {
    limit = leftover_ * m.weight / std::max(total_weight_, m.weight);
  }
  const double tokens = std::min({gap, level_, limit});
  if (tokens < std::min(kMinGrant, gap) - kEpsilon || tokens <= 0) return;
  if (pass_ != Pass::kLeftover) {
    m.entitled = std::max(0.0, m.entitled - tokens);
  }
  SendGrant(m, tokens, target, now, sink);
}

void ResourceLedger::AccrueEntitlement(Member& m, double target,
                                       TimePoint now) {
  if (m.entitled < 0) {
    m.entitled = target;  // a newcomer may fill its target at once
  } else if (now > m.entitled_at) {
    m.entitled += m.share * ToSeconds(now - m.entitled_at);
  }
  // Up to one refresh interval of catch-up beyond the target, so a member
  // served a little late is not held to its share for ever after.
  const double cap = std::max(
      target, m.share * (HorizonSeconds() + ToSeconds(limits_.lease.refresh)));
  m.entitled = std::min(m.entitled, std::max(cap, 0.0));
  m.entitled_at = now;
}

void ResourceLedger::Detach(StreamId stream, TimePoint now) {
  auto it = index_.find(stream);
  if (it == index_.end()) return;
  Member& m = members_[it->second];
  if (!m.attached) return;
  m.attached = false;
  m.share = 0;
  dirty_ = true;
}

void ResourceLedger::Tick(TimePoint now, GrantSink sink,
                          std::vector<StreamId>* removed) {
  Accrue(now);
  if (learning_ && now >= learning_until_) EndLearning();
  const Duration idle_after = kIdleRefreshes * limits_.lease.refresh;
  double total = 0;
  for (size_t i = 0; i < members_.size();) {
    Member& m = members_[i];
    DropDeadInFlight(m, now);
    const bool gone = !m.attached || now - m.last_report >= idle_after;
    if (gone && now >= m.tokens_dead_at) {
      removed->push_back(m.stream);
      RemoveAt(i);
      continue;
    }
    total += m.outstanding;
    ++i;
  }
  outstanding_ = total;  // re-anchor the running sum against drift
  ClampLevel(now);
  // Every Tick: shares must stay consistent with one another (they sum to
  // the rate), or entitlements would oversubscribe the level.
  Recompute();
  const size_t n = members_.size();
  if (n == 0) return;
  serve_offset_ = (serve_offset_ + 1) % n;
  // Pass 1: each member takes what its share accrued (its entitlement), in
  // an order that rotates every Tick. Pass 2: what is left in the level is
  // offered by weight to members still short of their target, so capacity
  // a member does not use is not lost.
  pass_ = Pass::kEntitled;
  for (size_t k = 0; k < n; ++k) {
    Member& m = members_[(serve_offset_ + k) % n];
    if (m.attached) Serve(m, /*asked=*/false, now, sink);
  }
  leftover_ = level_;
  pass_ = Pass::kLeftover;
  if (leftover_ > kEpsilon) {
    for (size_t k = 0; k < n; ++k) {
      Member& m = members_[(serve_offset_ + k) % n];
      if (m.attached) Serve(m, /*asked=*/false, now, sink);
    }
  }
  pass_ = Pass::kReport;
}

void ResourceLedger::RevokeAll(GrantSink sink) {
  for (Member& m : members_) {
    if (!m.attached) continue;
    sink(GrantOrder{.stream = m.stream, .report_seq = m.report_seq});
    m.last_target_sent = 0;
  }
}

void ResourceLedger::ForEachMember(
    absl::FunctionRef<void(const MemberView&)> fn) const {
  for (const Member& m : members_) {
    fn(MemberView{.stream = m.stream,
                  .attached = m.attached,
                  .weight = m.weight,
                  .demand_per_second = m.demand,
                  .share_per_second = m.share,
                  .outstanding = m.outstanding,
                  .granted_total = m.granted_total});
  }
}

}  // namespace sluice
