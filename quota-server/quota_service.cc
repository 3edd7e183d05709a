#include "quota-server/quota_service.h"

#include <deque>
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

  void Begin() { StartRead(&in_); }

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
};

QuotaService::QuotaService(QuotaAllocator* allocator, Clock* clock)
    : allocator_(allocator), clock_(clock) {}

QuotaService::~QuotaService() = default;

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
  allocator_->OnMessage(id, msg, clock_->Now(), &out);
  DispatchLocked(out);
}

void QuotaService::OnStreamDone(uint64_t id) {
  counters_.streams_closed.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
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
  for (auto& [id, msg] : out.messages) {
    auto it = streams_.find(id);
    if (it == streams_.end()) continue;  // closed meanwhile
    counters_.messages_out.fetch_add(1, std::memory_order_relaxed);
    it->second->Enqueue(std::move(msg));
  }
  out.messages.clear();
}

}  // namespace sluice
