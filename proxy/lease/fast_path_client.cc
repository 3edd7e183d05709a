#include "proxy/lease/fast_path_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/url/decode_view.hpp>
#include <boost/url/pct_string_view.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <span>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/protocol/fast_path_codec.h"
#include "common/sys/socket_address.h"
#include "common/sys/thread_latency.h"

namespace sluice {

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr Duration kHelloRetry = milliseconds(1000);  // until welcomed
constexpr Duration kHelloKeep = milliseconds(10000);  // then, for NAT state
constexpr Duration kHelloLease = milliseconds(1000);  // while leasing
constexpr Duration kAckDelay = microseconds(FastPathClient::kAckDelayUs);
constexpr Duration kStreamCopyDelay =
    microseconds(FastPathClient::kStreamCopyDelayUs);
constexpr Duration kLeaseSilence =
    milliseconds(FastPathClient::kLeaseSilenceMs);
// The reader's scheduling slice (common/sys/thread_latency.h).
constexpr microseconds kReaderSlice(100);

// "ipv4:127.0.0.1:7070", "ipv6:[::1]:7070" or "ipv6:%5B::1%5D:7070" with
// `port` in place of the stream's.
std::optional<SocketAddress> PeerAddress(std::string_view peer, uint16_t port) {
  if (!peer.starts_with("ipv4:") && !peer.starts_with("ipv6:")) {
    return std::nullopt;
  }
  auto pct = boost::urls::make_pct_string_view(peer.substr(5));
  if (!pct) return std::nullopt;
  std::string text;
  for (char c : boost::urls::decode_view(*pct)) text.push_back(c);
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  return SocketAddressOf(std::string_view(text).substr(0, colon), port);
}

}  // namespace

FastPathClient::FastPathClient(PauseHandler on_pause, StreamSender to_stream,
                               GrantHandler on_grant, Clock* clock)
    : on_pause_(std::move(on_pause)),
      to_stream_(std::move(to_stream)),
      on_grant_(std::move(on_grant)),
      clock_(clock) {
  fd4_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  fd6_ = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  reader_ = std::thread([this] { ReadLoop(); });
}

FastPathClient::~FastPathClient() {
  Stop();
  if (fd4_ >= 0) close(fd4_);
  if (fd6_ >= 0) close(fd6_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void FastPathClient::Stop() {
  stopping_ = true;
  Wake();
  if (reader_.joinable()) reader_.join();
  Reset();
}

void FastPathClient::Wake() {
  if (wake_fd_ < 0) return;  // the reader wakes within kPollMs anyway
  const uint64_t one = 1;
  // Cannot block (EFD_NONBLOCK); a full counter already wakes the reader.
  [[maybe_unused]] const ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void FastPathClient::Sync() {
  std::unique_lock lock(mu_);
  // Released: the reader's turn that sees it reads the clock after this.
  const uint64_t asked =
      turns_asked_.fetch_add(1, std::memory_order_acq_rel) + 1;
  Wake();
  turn_cv_.wait(lock, [&] { return reader_done_ || turns_done_ >= asked; });
}

absl::Status FastPathClient::Use(const std::string& peer,
                                 const sluice::v1::FastPathOffer& offer) {
  if (offer.port() == 0 || offer.port() > 65535 || offer.token() == 0 ||
      offer.key().size() != kFastPathKeyBytes) {
    Reset();
    return absl::InvalidArgumentError("fast path: malformed offer");
  }
  const std::optional<SocketAddress> to =
      PeerAddress(peer, static_cast<uint16_t>(offer.port()));
  if (!to) {
    Reset();
    return absl::InvalidArgumentError(
        absl::StrCat("fast path: peer ", peer, " is not an IP address"));
  }
  std::lock_guard lock(mu_);
  const int fd = to->family() == AF_INET ? fd4_ : fd6_;
  // connect() also makes the kernel drop datagrams from anyone else.
  if (fd < 0 || connect(fd, to->get(), to->length) != 0) {
    key_.clear();
    fd_ = -1;
    return absl::UnavailableError(
        absl::StrCat("fast path: connect udp: ", std::strerror(errno)));
  }
  fd_ = fd;
  key_ = offer.key();
  token_ = offer.token();
  leases_ = offer.leases() && on_grant_ != nullptr;
  last_welcome_ = TimePoint();
  next_seq_ = 1;
  seen_ = ReplayWindow();
  stats_.up = false;
  acks_.clear();  // of the last stream
  copies_.clear();
  SendHelloLocked();
  next_hello_ = clock_->Now() + kHelloRetry;
  return absl::OkStatus();
}

void FastPathClient::Reset() {
  std::lock_guard lock(mu_);
  copies_.clear();  // the stream they were for is gone
  acks_.clear();
  key_.clear();
  token_ = 0;
  leases_ = false;
  fd_ = -1;
  stats_.up = false;
}

bool FastPathClient::SendThrottle(const sluice::v1::SidecarMessage& msg) {
  sluice::v1::FastPathBody body;
  *body.mutable_throttle() = msg.throttle();
  bool first = false;
  {
    std::lock_guard lock(mu_);
    if (key_.empty() || !SendLocked(body) || !stats_.up ||
        copies_.size() >= kMaxPendingCopies) {
      return false;
    }
    first = copies_.empty();
    copies_.emplace_back(msg, clock_->Now() + kStreamCopyDelay);
  }
  // The reader may be asleep for up to kPollMs: a new first deadline must
  // wake it, or the copy would leave up to that much late.
  if (first) Wake();
  return true;
}

bool FastPathClient::SendDemand(const sluice::v1::SidecarMessage& msg) {
  sluice::v1::FastPathBody body;
  *body.mutable_demand() = msg.demand();
  std::lock_guard lock(mu_);
  if (!LeasingLocked() || !SendLocked(body)) return false;
  ++stats_.demand_sent;
  return true;
}

bool FastPathClient::LeasingLocked() const {
  return leases_ && stats_.up && !key_.empty() &&
         clock_->Now() - last_welcome_ <= kLeaseSilence;
}

bool FastPathClient::SendLocked(const sluice::v1::FastPathBody& body) {
  const std::string d =
      SealFastPath(key_, FastPathDirection::kUp, token_, next_seq_++, body);
  if (d.empty() || fd_ < 0 ||
      send(fd_, d.data(), d.size(), MSG_DONTWAIT) !=
          static_cast<ssize_t>(d.size())) {
    ++stats_.out_failed;  // the stream has the same message
    return false;
  }
  ++stats_.out_sent;
  return true;
}

bool FastPathClient::SendPauseAck(const sluice::v1::PauseAck& ack) {
  bool first = false;
  {
    std::lock_guard lock(mu_);
    if (key_.empty() || acks_.size() >= kMaxPendingAcks) return false;
    first = acks_.empty();
    acks_.emplace_back(ack, clock_->Now());
  }
  // As for a stream copy: the ack's hold starts now, not at the next wake.
  if (first) Wake();
  return true;
}

FastPathClient::Stats FastPathClient::stats() const {
  std::lock_guard lock(mu_);
  Stats s = stats_;
  s.leasing = LeasingLocked();
  return s;
}

void FastPathClient::ReadLoop() {
  // Asleep almost always; when a pause comes it must run at once, ahead of
  // the proxy's workers (common/sys/thread_latency.h).
  if (absl::Status s = RequestShortSlice(kReaderSlice); !s.ok()) {
    spdlog::warn("fast path reader: {}", std::string(s.message()));
  }
  char buf[kFastPathMaxDatagram + 1];
  uint64_t answered = 0;  // the Sync calls answered so far
  while (!stopping_.load(std::memory_order_relaxed)) {
    int timeout_ms;
    {
      std::lock_guard lock(mu_);
      timeout_ms = NextTimeoutLocked();
    }
    pollfd p[3] = {{fd4_, POLLIN, 0}, {fd6_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int ready = poll(p, 3, timeout_ms);
    if (ready > 0 && p[2].revents != 0) {
      uint64_t wakes;
      [[maybe_unused]] const ssize_t n = read(wake_fd_, &wakes, sizeof(wakes));
    }
    // The Sync calls this turn answers: those made before it reads the
    // clock.
    const uint64_t asked = turns_asked_.load(std::memory_order_acquire);
    for (const pollfd& one : std::span(p, 2)) {
      if (ready <= 0 || one.fd < 0 || one.revents == 0) continue;
      // Connected sockets: only the current server's datagrams arrive. An
      // ICMP error (nothing listens on the port) is POLLERR: the failed
      // recv clears it, or poll would return at once forever.
      const ssize_t n = recv(one.fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        OnDatagram(buf, static_cast<size_t>(n));
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        std::lock_guard lock(mu_);
        ++stats_.out_failed;  // what the error answered
      }
    }
    std::vector<sluice::v1::SidecarMessage> copies;
    {
      std::lock_guard lock(mu_);
      const TimePoint now = clock_->Now();
      SendDueLocked(now, &copies);
      if (!key_.empty() && now >= next_hello_) {
        SendHelloLocked();
        next_hello_ = now + (!stats_.up ? kHelloRetry
                             : leases_  ? kHelloLease
                                        : kHelloKeep);
      }
    }
    for (auto& msg : copies) to_stream_(std::move(msg));
    if (asked != answered) {
      answered = asked;
      std::lock_guard lock(mu_);
      turns_done_ = asked;
      turn_cv_.notify_all();
    }
  }
  std::lock_guard lock(mu_);
  reader_done_ = true;
  turn_cv_.notify_all();
}

void FastPathClient::SendHelloLocked() {
  sluice::v1::FastPathBody hello;
  hello.mutable_hello()->set_welcomed(stats_.up);
  SendLocked(hello);
}

int FastPathClient::NextTimeoutLocked() const {
  TimePoint due = TimePoint::max();
  if (!acks_.empty()) due = acks_.front().second + kAckDelay;
  if (!copies_.empty()) due = std::min(due, copies_.front().second);
  if (due == TimePoint::max()) return kPollMs;
  const int64_t wait_ms =
      std::chrono::ceil<milliseconds>(due - clock_->Now()).count();
  return static_cast<int>(std::clamp<int64_t>(wait_ms, 0, kPollMs));
}

void FastPathClient::SendDueLocked(
    TimePoint now, std::vector<sluice::v1::SidecarMessage>* copies) {
  size_t c = 0;
  while (c < copies_.size() && copies_[c].second <= now) {
    copies->push_back(std::move(copies_[c].first));
    ++c;
  }
  copies_.erase(copies_.begin(), copies_.begin() + static_cast<ptrdiff_t>(c));
  size_t n = 0;
  for (; n < acks_.size(); ++n) {
    auto& [ack, queued] = acks_[n];
    if (now - queued < kAckDelay) break;
    if (key_.empty()) continue;  // the stream ended: dropped
    const int64_t held_us =
        std::chrono::duration_cast<microseconds>(now - queued).count();
    ack.set_held_us(static_cast<uint32_t>(
        std::min<int64_t>(held_us, std::numeric_limits<uint32_t>::max())));
    sluice::v1::FastPathBody body;
    *body.mutable_pause_ack() = std::move(ack);
    SendLocked(body);
  }
  acks_.erase(acks_.begin(), acks_.begin() + static_cast<ptrdiff_t>(n));
}

void FastPathClient::OnDatagram(const char* data, size_t size) {
  std::optional<FastPathEnvelope> env =
      ParseFastPath(std::string_view(data, size));
  sluice::v1::FastPathBody body;
  uint64_t token = 0;
  {
    std::lock_guard lock(mu_);
    if (!env || key_.empty() || env->token != token_ ||
        OpenFastPath(key_, FastPathDirection::kDown, *env, &body) !=
            FastPathOpen::kOk ||
        !seen_.Accept(env->seq)) {
      ++stats_.in_rejected;
      return;
    }
    ++stats_.in_ok;
    if (body.has_welcome()) {
      // A welcome answers a hello: the round trip works both ways. (Grants
      // alone would not show that reports still arrive.)
      last_welcome_ = clock_->Now();
      if (!stats_.up) {
        // Tell the server its datagrams arrive (it may then delay the
        // stream's copies, and send grants this way), then keep the NAT
        // state alive.
        stats_.up = true;
        SendHelloLocked();
        next_hello_ = last_welcome_ + (leases_ ? kHelloLease : kHelloKeep);
      }
      return;
    }
    if (body.has_grant() && leases_) {
      ++stats_.grants_in;
      token = token_;
    } else if (!body.has_pause()) {  // an up-only message sent down
      --stats_.in_ok;
      ++stats_.in_rejected;
      return;
    }
  }
  if (body.has_grant()) {
    on_grant_(token, body.grant());
    return;
  }
  on_pause_(body.pause());
}

}  // namespace sluice
