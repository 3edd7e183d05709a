#include "proxy/lease/lease_client.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <random>

#include "sluice/v1/quota.grpc.pb.h"

namespace sluice {

using sluice::v1::ServerMessage;
using sluice::v1::SidecarMessage;

namespace {
constexpr size_t kMaxQueuedWrites = 1024;
constexpr auto kBackoffResetAfter = std::chrono::seconds(10);
constexpr auto kMaxLoopWait = std::chrono::milliseconds(100);
// Queued bindings beyond which expired ones are pruned on AddBinding.
constexpr size_t kPruneQueuedBindings = 256;
// Grant datagrams are not taken while this many messages wait for the client
// thread.
constexpr size_t kMaxInboxDatagrams = 1024;
}  // namespace

// One stream. Reactions run on gRPC's threads and only move data into or
// out of queues; the client thread does everything else. A hold keeps the
// reactor alive until the client thread has stopped writing (RemoveHold in
// Shutdown), so OnDone cannot race a StartWrite.
class LeaseClient::Stream
    : public grpc::ClientBidiReactor<SidecarMessage, ServerMessage> {
 public:
  explicit Stream(LeaseClient* owner) : owner_(owner) {}

  void Begin(sluice::v1::QuotaService::Stub* stub) {
    stub->async()->Lease(&context_, this);
    AddHold();
    StartRead(&in_);
    StartCall();
  }

  // Queues a message; when the queue is full the oldest waiting message is
  // dropped (every report is absolute, so a newer one supersedes it).
  void Send(SidecarMessage msg) {
    std::lock_guard lock(wmu_);
    if (closing_) return;
    if (pending_.size() >= kMaxQueuedWrites && pending_.size() > 1) {
      pending_.erase(pending_.begin() + 1);  // front() may be in flight
    }
    pending_.push_back(std::move(msg));
    if (!writing_) {
      writing_ = true;
      StartWrite(&pending_.front());
    }
  }

  // Stops writing, cancels the call and waits for OnDone.
  void Shutdown() {
    {
      std::lock_guard lock(wmu_);
      if (closing_) return;
      closing_ = true;
    }
    context_.TryCancel();
    RemoveHold();
    std::unique_lock lock(owner_->mu_);
    owner_->cv_.wait(lock, [this] { return done_; });
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard lock(owner_->mu_);
      read_failed_ = true;
      owner_->cv_.notify_all();
      return;
    }
    // A pause stops this sidecar's requests and is acked here, on gRPC's
    // thread, rather than after a hand-off to the client thread
    // (docs/pause.md). That thread then need not wake for it: it drops the
    // held tokens on its next turn, within 100 ms. The stream's first
    // message always wakes it (it marks the stream connected).
    bool wake = !answered_;
    if (in_.has_fast_path() && owner_->fast_path_) {
      {
        // Before Use(): grant datagrams carry this token, and only those
        // are this stream's.
        std::lock_guard lock(owner_->mu_);
        fast_path_token_ = in_.fast_path().token();
      }
      const absl::Status s =
          owner_->fast_path_->Use(context_.peer(), in_.fast_path());
      if (!s.ok()) spdlog::warn("{}", std::string(s.message()));
    }
    answered_ = true;
    bool handled = false;
    if (in_.has_pause()) {
      handled = owner_->ApplyPause(in_.pause(), /*by_datagram=*/false);
    }
    {
      std::lock_guard lock(owner_->mu_);
      inbox_.push_back(std::move(in_));
      if (wake || !handled) owner_->cv_.notify_all();
    }
    in_.Clear();
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(wmu_);
    pending_.pop_front();
    if (!ok || closing_ || pending_.empty()) {
      writing_ = false;
      return;
    }
    StartWrite(&pending_.front());
  }

  void OnDone(const grpc::Status& status) override {
    std::lock_guard lock(owner_->mu_);
    status_ = status;
    done_ = true;
    owner_->cv_.notify_all();
  }

  // Guarded by owner_->mu_.
  std::deque<ServerMessage> inbox_;
  uint64_t fast_path_token_ = 0;  // of the offer this stream took
  bool read_failed_ = false;
  bool done_ = false;
  grpc::Status status_;

 private:
  LeaseClient* const owner_;
  grpc::ClientContext context_;
  ServerMessage in_;
  bool answered_ = false;  // a message was read (read chain only)
  std::mutex wmu_;
  std::deque<SidecarMessage> pending_;  // front() is being written
  bool writing_ = false;
  bool closing_ = false;
};

LeaseClient::LeaseClient(Options options, std::unique_ptr<LeaseAgent> agent,
                         Clock* clock)
    : options_(std::move(options)), agent_(std::move(agent)), clock_(clock) {
  if (options_.fast_path) {
    fast_path_ = std::make_unique<FastPathClient>(
        [this](const sluice::v1::Pause& p) { ApplyPause(p, true); },
        [this](SidecarMessage msg) {
          std::lock_guard lock(mu_);
          if (stats_.connected && stream_ != nullptr) {
            stream_->Send(std::move(msg));
          }
        },
        [this](uint64_t token, const sluice::v1::LeaseGrant& grant) {
          // Into the stream's inbox, behind whatever the stream brought:
          // the client thread applies grants in one place, and drops one
          // that an already applied grant overtook (LeaseAgent).
          std::lock_guard lock(mu_);
          if (stream_ == nullptr || stream_->fast_path_token_ != token ||
              stream_->inbox_.size() >= kMaxInboxDatagrams) {
            return;  // a dropped grant costs its tokens, never safety
          }
          ServerMessage m;
          *m.mutable_grant() = grant;
          stream_->inbox_.push_back(std::move(m));
          cv_.notify_all();
        },
        clock_);
  }
}

bool LeaseClient::ApplyPause(const sluice::v1::Pause& pause, bool by_datagram) {
  LeaseAgent::PauseNow r =
      agent_->ApplyPauseNow(pause, clock_->Now(),
                            by_datagram ? LeaseAgent::PausePath::kDatagram
                                        : LeaseAgent::PausePath::kStream);
  // The ack goes back the way the pause came (the stream if the datagram
  // cannot go).
  const bool acked_by_datagram =
      r.ack && by_datagram && fast_path_->SendPauseAck(r.ack->pause_ack());
  std::lock_guard lock(mu_);
  if (r.first) {
    ++(by_datagram ? stats_.pauses_by_datagram : stats_.pauses_by_stream);
  }
  if (r.ack && !acked_by_datagram && stream_ != nullptr) {
    ++stats_.messages_out;
    stream_->Send(std::move(*r.ack));
  }
  return r.known;
}

LeaseClient::~LeaseClient() { Stop(); }

void LeaseClient::Start() {
  if (thread_.joinable() || options_.servers.empty()) return;
  thread_ = std::thread([this] { Loop(); });
}

void LeaseClient::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (fast_path_) fast_path_->Stop();  // joins the last caller of ApplyPause
}

LeaseClient::Stats LeaseClient::stats() const {
  Stats s;
  {
    std::lock_guard lock(mu_);
    s = stats_;
  }
  if (fast_path_) s.fast_path = fast_path_->stats();
  return s;
}

bool LeaseClient::connected() const {
  std::lock_guard lock(mu_);
  return stats_.connected;
}

void LeaseClient::AddBinding(LeaseBinding binding) {
  std::lock_guard lock(mu_);
  if (new_bindings_.size() >= kPruneQueuedBindings) {
    std::erase_if(new_bindings_,
                  [](const LeaseBinding& b) { return b.limiter.expired(); });
  }
  new_bindings_.push_back(std::move(binding));
  cv_.notify_all();
}

void LeaseClient::Send(SidecarMessage msg) {
  std::lock_guard lock(mu_);
  if (!stats_.connected || stream_ == nullptr) return;
  // Straight onto the stream from the caller's thread (a StartWrite may come
  // from any thread): a throttle report is what the fleet waits for, and a
  // hand-off to the client's thread would cost a wake-up. mu_ keeps the
  // stream alive meanwhile (RunStream clears stream_ under it before the
  // stream goes).
  ++stats_.messages_out;
  if (msg.has_throttle()) {
    msg.mutable_throttle()->set_report_id(next_report_id_++);
    // The datagram first; the stream's copy later if the fast path is up.
    if (fast_path_ && fast_path_->SendThrottle(msg)) return;
  }
  stream_->Send(std::move(msg));
}

std::vector<SidecarMessage> LeaseClient::DrainBindings(TimePoint now) {
  std::vector<LeaseBinding> added;
  {
    std::lock_guard lock(mu_);
    added.swap(new_bindings_);
  }
  std::vector<SidecarMessage> out;
  for (LeaseBinding& b : added) {
    for (SidecarMessage& m : agent_->AddBinding(std::move(b), now)) {
      out.push_back(std::move(m));
    }
  }
  return out;
}

void LeaseClient::Loop() {
  std::mt19937_64 rng(std::random_device{}());
  Duration backoff = options_.backoff_initial;
  size_t index = 0;
  while (true) {
    {
      // Nothing to lease yet (say, only per-key limits and no key seen):
      // no stream, since the server answers only reports.
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] {
        return stopping_ || agent_->bindings() > 0 || !new_bindings_.empty();
      });
      if (stopping_) break;
    }
    const std::string& target =
        options_.servers[index % options_.servers.size()];
    const TimePoint began = clock_->Now();
    const bool connected = RunStream(target);
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
      if (!connected) ++stats_.failed_attempts;
    }
    if (connected && clock_->Now() - began >= kBackoffResetAfter) {
      backoff = options_.backoff_initial;
    }
    ++index;  // fail over to the next server
    // Full jitter in [backoff/2, backoff] so a fleet does not reconnect in
    // lockstep after a server restart.
    std::uniform_int_distribution<int64_t> jitter(backoff.count() / 2,
                                                  backoff.count());
    const Duration wait(jitter(rng));
    backoff = std::min(options_.backoff_max, backoff * 2);
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, wait, [this] { return stopping_; });
  }
}

bool LeaseClient::RunStream(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  auto channel = grpc::CreateCustomChannel(
      target, grpc::InsecureChannelCredentials(), args);
  auto stub = sluice::v1::QuotaService::NewStub(channel);
  auto stream = std::make_unique<Stream>(this);
  {
    std::lock_guard lock(mu_);
    stream_ = stream.get();
    stats_.server = target;
  }
  stream->Begin(stub.get());
  DrainBindings(clock_->Now());  // not connected yet: nothing to send
  for (auto& msg : agent_->OnConnected(clock_->Now())) {
    stream->Send(std::move(msg));
  }
  bool connected = false;
  const TimePoint connect_deadline = clock_->Now() + options_.connect_timeout;
  std::deque<ServerMessage> batch;
  while (true) {
    bool ended = false;
    {
      std::unique_lock lock(mu_);
      const TimePoint now = clock_->Now();
      TimePoint wake = std::min(agent_->NextWakeup(), now + kMaxLoopWait);
      if (!connected) wake = std::min(wake, connect_deadline);
      cv_.wait_for(lock, std::max(Duration::zero(), wake - now), [&] {
        return stopping_ || !stream->inbox_.empty() || stream->read_failed_ ||
               stream->done_ || !new_bindings_.empty();
      });
      if (stopping_) break;
      batch.swap(stream->inbox_);
      ended = stream->read_failed_ || stream->done_;
      stats_.messages_in += batch.size();
    }
    const TimePoint now = clock_->Now();
    for (const ServerMessage& msg : batch) {
      agent_->OnServerMessage(msg, now);
    }
    if (!batch.empty()) {
      std::lock_guard lock(mu_);
      stats_.stale_grants = agent_->stale_grants();
      stats_.aged_grants = agent_->aged_grants();
      if (!connected) {
        connected = true;
        ++stats_.connects;
        stats_.connected = true;
        spdlog::info("lease stream to {} established", target);
      }
    }
    batch.clear();
    if (ended) break;
    if (!connected && now >= connect_deadline) {
      spdlog::warn("lease stream to {}: no answer within the connect timeout",
                   target);
      break;
    }
    std::vector<SidecarMessage> out = DrainBindings(now);
    for (SidecarMessage& m : agent_->Poll(now)) out.push_back(std::move(m));
    {
      std::lock_guard lock(mu_);
      stats_.messages_out += out.size();
    }
    for (auto& msg : out) {
      // Demand reports go as datagrams while the fast path leases.
      if (msg.has_demand() && fast_path_ && fast_path_->SendDemand(msg)) {
        continue;
      }
      stream->Send(std::move(msg));
    }
  }
  stream->Shutdown();  // no reaction runs after this (no late Use())
  if (fast_path_) fast_path_->Reset();
  agent_->OnDisconnected(clock_->Now());
  {
    std::lock_guard lock(mu_);
    if (connected) {
      ++stats_.disconnects;
      spdlog::warn("lease stream to {} ended: {}", target,
                   stream->status_.error_message());
    }
    stats_.connected = false;
    stats_.server_restarts = agent_->server_restarts_seen();
    stream_ = nullptr;
  }
  return connected;
}

}  // namespace sluice
