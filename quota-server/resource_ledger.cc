#include "quota-server/resource_ledger.h"

#include <algorithm>
#include <cmath>

#include "common/duration.h"
#include "quota-server/fair_share.h"

namespace sluice {
namespace {

// Demand smoothing time constant (docs/leasing.md).
constexpr double kDemandTauSeconds = 0.25;
// A demand change smaller than this fraction does not trigger a recompute.
constexpr double kMaterialChange = 0.1;
// A target must fall by this fraction below the last one sent to warrant a
// shrink of its own.
constexpr double kShrinkHysteresis = 0.1;
// Smallest top-up worth a message, unless it fills the gap.
constexpr double kMinGrant = 1.0;
// On Tick, a member that did not ask is topped up when this far below.
constexpr double kTickRefillFraction = 0.25;
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
  return std::max(0.0, std::min(level_ + limits_.rate_per_second * dt, room));
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
  } else {
    m.share = InterimShare(m);
  }
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
  if (elapsed > 0) measured += arrivals / elapsed;
  const double horizon = HorizonSeconds();
  if (horizon > 0) measured += Clean(report.queued()) / horizon;
  measured = std::min(measured, kMaxDemand);

  const double old = m.demand;
  if (!m.demand_known) {
    m.demand = measured;
    m.demand_known = true;
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
  const WaterLevel level = WaterFill(limits_.rate_per_second, scratch_demand_,
                                     scratch_weight_, &scratch_share_);
  lambda_ = level.lambda;
  spare_per_weight_ =
      DistributeSpare(limits_.rate_per_second, scratch_weight_, scratch_share_);
  size_t k = 0;
  for (Member& m : members_) {
    m.share = m.attached ? scratch_share_[k++] : 0;
  }
  dirty_ = false;
}

double ResourceLedger::InterimShare(const Member& m) const {
  return std::min(m.demand, m.weight * lambda_) + m.weight * spare_per_weight_;
}

void ResourceLedger::SendGrant(Member& m, double tokens, double target,
                               TimePoint now, GrantSink sink) {
  const uint64_t seq = sink(GrantOrder{.stream = m.stream,
                                       .tokens = tokens,
                                       .target = target,
                                       .share_per_second = m.share});
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
  const double target = m.share * HorizonSeconds();
  // Shrink: the target fell materially below what the member was told, and
  // it may hold more than the new one.
  if (m.last_target_sent >= 0 &&
      target < m.last_target_sent * (1 - kShrinkHysteresis) &&
      m.outstanding > target + kEpsilon) {
    m.wanting = false;
    SendGrant(m, 0, target, now, sink);
    return;
  }
  const double gap = target - m.outstanding;
  if (gap <= kEpsilon) {
    m.wanting = false;
    return;
  }
  if (!asked && !m.wanting && gap < kTickRefillFraction * target) return;
  const double tokens = std::min(gap, level_);
  if (tokens < std::min(kMinGrant, gap) - kEpsilon || tokens <= 0) {
    m.wanting = true;  // wait for the level to refill
    return;
  }
  m.wanting = tokens < gap - kEpsilon;
  SendGrant(m, tokens, target, now, sink);
}

void ResourceLedger::Detach(StreamId stream, TimePoint now) {
  auto it = index_.find(stream);
  if (it == index_.end()) return;
  Member& m = members_[it->second];
  if (!m.attached) return;
  m.attached = false;
  m.wanting = false;
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
  if (dirty_) Recompute();
  const size_t n = members_.size();
  if (n == 0) return;
  serve_offset_ = (serve_offset_ + 1) % n;
  for (size_t k = 0; k < n; ++k) {
    Member& m = members_[(serve_offset_ + k) % n];
    if (m.attached) Serve(m, /*asked=*/false, now, sink);
  }
}

void ResourceLedger::RevokeAll(GrantSink sink) {
  for (Member& m : members_) {
    if (!m.attached) continue;
    sink(GrantOrder{.stream = m.stream});
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
