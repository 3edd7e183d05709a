#include "quota-server/server/quota_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

namespace sluice {

using sluice::v1::ServerMessage;
using sluice::v1::SidecarMessage;

namespace {
constexpr uint32_t kProtocolVersion = 1;
}  // namespace

// One sidecar stream. Reads run one at a time (the next StartRead is issued
// after the previous message was handled); writes are queued and sent one at
// a time. `wmu_` guards the write queue and the finish flag, because
// Enqueue runs on whichever thread handled the message that produced it.
class QuotaService::Reactor
    : public grpc::ServerBidiReactor<SidecarMessage, ServerMessage> {
 public:
  Reactor(QuotaService* service, uint64_t id) : service_(service), id_(id) {}

  // Rides on the next message queued.
  void SetOffer(sluice::v1::FastPathOffer offer) {
    std::lock_guard lock(wmu_);
    offer_ = std::move(offer);
  }

  void Begin() { StartRead(&in_); }

  // Ends the stream: its Hello named a sidecar_id that another instance's
  // open stream holds. Safe from any thread.
  void Refuse(std::string why) {
    CountRejected();
    FinishWith(grpc::Status(grpc::StatusCode::ALREADY_EXISTS, std::move(why)));
  }

  // Queues `msg` for sending. Safe from any thread; drops the message if the
  // stream is finishing.
  void Enqueue(ServerMessage msg) {
    std::lock_guard lock(wmu_);
    if (finishing_) return;
    if (pending_.size() >= kMaxPendingWrites) {
      CountRejected();
      FinishLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                "sidecar is not reading its stream"));
      return;
    }
    pending_.push_back(std::move(msg));
    if (offer_) {
      *pending_.back().mutable_fast_path() = std::move(*offer_);
      offer_.reset();
    }
    if (!writing_) {
      writing_ = true;
      StartWrite(&pending_.front());
    }
  }

  void FinishWith(grpc::Status status) {
    std::lock_guard lock(wmu_);
    FinishLocked(std::move(status));
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // client half-closed, cancelled or the connection broke
      FinishWith(grpc::Status::OK);
      return;
    }
    if (!saw_hello_) {
      if (!in_.has_hello()) {
        CountRejected();
        FinishWith(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "the first message must be a Hello"));
        return;
      }
      if (in_.hello().protocol_version() != kProtocolVersion) {
        CountRejected();
        FinishWith(
            grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                         "unsupported protocol_version " +
                             std::to_string(in_.hello().protocol_version()) +
                             "; this server speaks 1"));
        return;
      }
      saw_hello_ = true;
    }
    service_->OnRead(id_, in_);
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(wmu_);
    pending_.pop_front();
    if (!ok || finishing_ || pending_.empty()) {
      writing_ = false;
      if (!ok) pending_.clear();
      return;
    }
    StartWrite(&pending_.front());
  }

  void OnDone() override {
    service_->OnStreamDone(id_);
    delete this;
  }

 private:
  void CountRejected() {
    service_->counters_.streams_rejected.fetch_add(1,
                                                   std::memory_order_relaxed);
  }
  void FinishLocked(grpc::Status status) {
    if (finishing_) return;
    finishing_ = true;
    Finish(std::move(status));
  }

  QuotaService* const service_;
  const uint64_t id_;
  SidecarMessage in_;
  bool saw_hello_ = false;  // only touched by the read chain
  std::mutex wmu_;
  std::deque<ServerMessage> pending_;  // front() is being written
  bool writing_ = false;
  bool finishing_ = false;
  std::optional<sluice::v1::FastPathOffer> offer_;  // guarded by wmu_

 public:
  // The stream has been offered the fast path (guarded by the service's
  // mu_).
  bool offered = false;
  // Its last DemandReport came as a datagram: its grants go as datagrams
  // too, while its sidecar is confirmed (guarded by the service's mu_).
  bool leases_by_datagram = false;
};

QuotaService::QuotaService(QuotaAllocator* allocator, Clock* clock)
    : allocator_(allocator), clock_(clock) {}

QuotaService::~QuotaService() { SetFastPath(nullptr); }

grpc::ServerBidiReactor<SidecarMessage, ServerMessage>* QuotaService::Lease(
    grpc::CallbackServerContext* context) {
  uint64_t id;
  Reactor* reactor;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
    reactor = new Reactor(this, id);
    streams_[id] = reactor;
    allocator_->Open(id, clock_->Now());
  }
  counters_.streams_opened.fetch_add(1, std::memory_order_relaxed);
  reactor->Begin();
  return reactor;
}

void QuotaService::OnRead(uint64_t id, const SidecarMessage& msg) {
  counters_.messages_in.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  Outbox out;
  const bool taken = allocator_->OnMessage(id, msg, clock_->Now(), &out);
  if (msg.has_demand() && taken) {
    // The sidecar went back to the stream (it stopped hearing welcomes):
    // so do its grants.
    if (auto it = streams_.find(id); it != streams_.end()) {
      it->second->leases_by_datagram = false;
    }
  }
  DispatchLocked(out);
}

void QuotaService::SetFastPath(FastPathServer* fast_path) {
  std::thread old;
  {
    std::lock_guard lock(mu_);
    fast_path_ = fast_path;
    if (fast_path != nullptr && !deferrer_.joinable()) {
      stopping_ = false;
      deferrer_ = std::thread([this] { DeferLoop(); });
      return;
    }
    if (fast_path == nullptr) {
      stopping_ = true;
      old = std::move(deferrer_);
      deferred_cv_.notify_all();
    }
  }
  if (old.joinable()) old.join();  // sends what is left first
}

void QuotaService::DeferLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    if (deferred_.empty()) {
      if (stopping_) return;
      deferred_cv_.wait(lock);
      continue;
    }
    const TimePoint now = clock_->Now();
    if (!stopping_ && deferred_.front().due > now) {
      deferred_cv_.wait_for(lock, deferred_.front().due - now);
      continue;
    }
    Deferred d = std::move(deferred_.front());
    deferred_.pop_front();
    auto it = streams_.find(d.id);
    if (it == streams_.end()) continue;  // closed meanwhile
    sluice::v1::Pause* p = d.msg.mutable_pause();
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
        now - (d.due - kStreamCopyDelay));
    const uint64_t w =
        static_cast<uint64_t>(std::max<int64_t>(0, waited.count()));
    p->set_remaining_ms(p->remaining_ms() > w ? p->remaining_ms() - w : 0);
    it->second->Enqueue(std::move(d.msg));
  }
}

void QuotaService::OnFastPathMessage(uint64_t id, const SidecarMessage& msg) {
  std::lock_guard lock(mu_);
  auto it = streams_.find(id);
  if (it == streams_.end()) return;  // closed meanwhile
  if (msg.has_demand()) {
    counters_.messages_in.fetch_add(1, std::memory_order_relaxed);
  }
  Outbox out;
  const bool taken = allocator_->OnMessage(id, msg, clock_->Now(), &out);
  // Only a report that was taken moves the grants: a late datagram sent
  // before the sidecar went back to the stream must not move them back.
  if (msg.has_demand() && taken) it->second->leases_by_datagram = true;
  DispatchLocked(out);
}

void QuotaService::OnStreamDone(uint64_t id) {
  counters_.streams_closed.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  if (fast_path_) fast_path_->Close(id);
  streams_.erase(id);
  allocator_->Close(id, clock_->Now());
}

void QuotaService::Tick() {
  std::lock_guard lock(mu_);
  Outbox out;
  allocator_->Tick(clock_->Now(), &out);
  DispatchLocked(out);
}

void QuotaService::WithAllocator(
    const std::function<void(QuotaAllocator&, Outbox*)>& fn) {
  std::lock_guard lock(mu_);
  Outbox out;
  fn(*allocator_, &out);
  DispatchLocked(out);
}

void QuotaService::FinishAll() {
  std::lock_guard lock(mu_);
  for (auto& [id, reactor] : streams_) {
    reactor->FinishWith(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }
}

size_t QuotaService::live_streams() const {
  std::lock_guard lock(mu_);
  return streams_.size();
}

void QuotaService::DispatchLocked(Outbox& out) {
  // Every pause datagram leaves before any stream write starts: a write
  // may run the transport inline, and the datagrams are the fast copy.
  // Then the grants of streams that lease by datagram.
  std::vector<bool> sent;    // a pause's datagram reached a confirmed peer
  std::vector<bool> by_udp;  // a grant left as a datagram (and only so)
  if (fast_path_) {
    std::vector<FastPathServer::Outgoing> pauses;
    std::vector<FastPathServer::GrantOut> grants;
    std::vector<size_t> at;
    std::vector<size_t> grant_at;
    for (size_t i = 0; i < out.messages.size(); ++i) {
      const auto& [id, msg] = out.messages[i];
      if (msg.has_pause()) {
        pauses.push_back({id, &msg.pause()});
        at.push_back(i);
      } else if (msg.has_grant() && msg.grant().tokens() > 0) {
        // A shrink or revoke alone (no tokens) goes on the stream: it has
        // no other copy, and a lost one would leave tokens held until they
        // expire.
        auto it = streams_.find(id);
        if (it == streams_.end() || !it->second->leases_by_datagram ||
            !it->second->offered) {
          continue;
        }
        grants.push_back({id, &msg.grant()});
        grant_at.push_back(i);
      }
    }
    if (!pauses.empty()) {
      sent.resize(out.messages.size());
      const std::vector<bool> ok = fast_path_->SendPauses(pauses);
      for (size_t k = 0; k < at.size(); ++k) sent[at[k]] = ok[k];
    }
    if (!grants.empty()) {
      by_udp.resize(out.messages.size());
      const std::vector<bool> ok = fast_path_->SendGrants(grants);
      for (size_t k = 0; k < grant_at.size(); ++k) by_udp[grant_at[k]] = ok[k];
    }
  }
  for (auto& [id, why] : out.refused) {
    spdlog::warn("lease stream {} refused: {}", id, why);
    if (auto it = streams_.find(id); it != streams_.end()) {
      it->second->Refuse(std::move(why));
    }
  }
  out.refused.clear();
  const TimePoint due = clock_->Now() + kStreamCopyDelay;
  for (size_t i = 0; i < out.messages.size(); ++i) {
    auto& [id, msg] = out.messages[i];
    auto it = streams_.find(id);
    if (it == streams_.end()) continue;  // closed meanwhile
    counters_.messages_out.fetch_add(1, std::memory_order_relaxed);
    if (!by_udp.empty() && by_udp[i]) continue;
    // The offer rides on the next message (made then, not when the stream
    // opened, so that streams opened before the fast path was set get one
    // too).
    if (fast_path_ && !it->second->offered) {
      it->second->offered = true;
      it->second->SetOffer(fast_path_->Open(id));
    }
    if (!sent.empty() && sent[i] && deferred_.size() < kMaxDeferred) {
      if (deferred_.empty()) deferred_cv_.notify_all();
      deferred_.push_back(Deferred{due, id, std::move(msg)});
      continue;
    }
    it->second->Enqueue(std::move(msg));
  }
  out.messages.clear();
}

}  // namespace sluice
