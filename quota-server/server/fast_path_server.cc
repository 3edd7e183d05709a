#include "quota-server/server/fast_path_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/protocol/fast_path_codec.h"
#include "common/sys/socket_address.h"
#include "common/sys/thread_latency.h"

namespace sluice {

namespace {
// How often the reader looks at stopping_ while no datagram comes.
constexpr int kPollMs = 100;
constexpr int kReceiveBufferBytes = 4 << 20;
// The reader's scheduling slice (common/sys/thread_latency.h).
constexpr std::chrono::microseconds kReaderSlice(100);
}  // namespace

struct FastPathServer::Peer {
  uint64_t stream = 0;
  uint64_t token = 0;
  std::string key;
  ReplayWindow seen;  // seq of the sidecar's datagrams
  uint64_t next_seq = 1;
  SocketAddress addr;  // length 0: no hello yet
  // The sidecar said it got a welcome: datagrams reach it.
  bool confirmed = false;
};

absl::StatusOr<std::unique_ptr<FastPathServer>> FastPathServer::Start(
    const std::string& host, uint16_t port, MessageHandler on_message,
    bool leases) {
  std::optional<SocketAddress> at = SocketAddressOf(host, port);
  if (!at) {
    return absl::InvalidArgumentError(
        absl::StrCat("fast path: ", host, " is not an IP address"));
  }
  const int fd = socket(at->family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("fast path: socket: ", std::strerror(errno)));
  }
  if (bind(fd, at->get(), at->length) != 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat(
        "fast path: bind udp ", host, ":", port, ": ", std::strerror(err)));
  }
  // Reports of a whole fleet land here; the kernel caps this at
  // net.core.rmem_max (a datagram it cannot queue is dropped and counted by
  // the kernel: a lost report costs freshness only).
  const int bytes = kReceiveBufferBytes;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
  int got = 0;
  socklen_t got_len = sizeof(got);
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &got_len);
  if (got < bytes) {  // Linux reports twice what it was asked for
    spdlog::info(
        "fast path: UDP receive buffer {} bytes (asked for {}; raise "
        "net.core.rmem_max for larger fleets)",
        got, bytes);
  }
  at->length = sizeof(at->storage);
  getsockname(fd, reinterpret_cast<sockaddr*>(&at->storage), &at->length);
  return std::unique_ptr<FastPathServer>(
      new FastPathServer(fd, PortOf(*at), std::move(on_message), leases));
}

FastPathServer::FastPathServer(int fd, uint16_t port, MessageHandler on_message,
                               bool leases)
    : fd_(fd),
      port_(port),
      on_message_(std::move(on_message)),
      leases_(leases) {
  std::random_device seed;
  rng_.seed((uint64_t{seed()} << 32) ^ seed());
  reader_ = std::thread([this] { ReadLoop(); });
}

FastPathServer::~FastPathServer() {
  stopping_ = true;
  if (reader_.joinable()) reader_.join();
  close(fd_);
}

sluice::v1::FastPathOffer FastPathServer::Open(uint64_t stream) {
  auto peer = std::make_unique<Peer>();
  peer->stream = stream;
  peer->key = NewFastPathKey();
  sluice::v1::FastPathOffer offer;
  std::lock_guard lock(mu_);
  if (auto it = token_of_stream_.find(stream); it != token_of_stream_.end()) {
    by_token_.erase(it->second);
  }
  // Random, so that one sidecar's token says nothing of another's (the key
  // is what authenticates; a token only picks it).
  do {
    peer->token = rng_();
  } while (peer->token == 0 || by_token_.contains(peer->token));
  offer.set_port(port_);
  offer.set_key(peer->key);
  offer.set_token(peer->token);
  offer.set_leases(leases_);
  token_of_stream_[stream] = peer->token;
  by_token_[peer->token] = std::move(peer);
  return offer;
}

void FastPathServer::Close(uint64_t stream) {
  std::lock_guard lock(mu_);
  auto it = token_of_stream_.find(stream);
  if (it == token_of_stream_.end()) return;
  auto peer = by_token_.find(it->second);
  if (peer != by_token_.end()) {
    if (peer->second->addr.length != 0) --stats_.registered;
    by_token_.erase(peer);
  }
  token_of_stream_.erase(it);
}

std::vector<bool> FastPathServer::SendPauses(
    const std::vector<Outgoing>& pauses) {
  std::vector<uint64_t> streams;
  streams.reserve(pauses.size());
  for (const Outgoing& o : pauses) streams.push_back(o.stream);
  return SendAll(
      streams,
      [&](size_t i, sluice::v1::FastPathBody* body) {
        *body->mutable_pause() = *pauses[i].pause;
      },
      /*confirmed_only=*/false);
}

std::vector<bool> FastPathServer::SendGrants(
    const std::vector<GrantOut>& grants) {
  std::vector<uint64_t> streams;
  streams.reserve(grants.size());
  for (const GrantOut& g : grants) streams.push_back(g.stream);
  return SendAll(
      streams,
      [&](size_t i, sluice::v1::FastPathBody* body) {
        *body->mutable_grant() = *grants[i].grant;
      },
      /*confirmed_only=*/true, &Stats::grants_out);
}

std::vector<bool> FastPathServer::SendAll(
    const std::vector<uint64_t>& streams,
    const std::function<void(size_t, sluice::v1::FastPathBody*)>& fill,
    bool confirmed_only, uint64_t Stats::*delivered) {
  std::vector<bool> sent(streams.size());
  std::vector<std::string> data;
  std::vector<const Peer*> to;
  std::vector<size_t> index;
  std::vector<bool> confirmed;
  data.reserve(streams.size());
  std::lock_guard lock(mu_);
  sluice::v1::FastPathBody body;
  for (size_t i = 0; i < streams.size(); ++i) {
    auto it = token_of_stream_.find(streams[i]);
    if (it == token_of_stream_.end()) continue;
    Peer& peer = *by_token_.at(it->second);
    if (peer.addr.length == 0 || (confirmed_only && !peer.confirmed)) continue;
    fill(i, &body);
    std::string d = SealFastPath(peer.key, FastPathDirection::kDown, peer.token,
                                 peer.next_seq++, body);
    if (d.empty()) {
      CountSent(0, 1);
      continue;
    }
    data.push_back(std::move(d));
    to.push_back(&peer);
    index.push_back(i);
    confirmed.push_back(peer.confirmed);
  }
  std::vector<mmsghdr> msgs(data.size());
  std::vector<iovec> iov(data.size());
  for (size_t k = 0; k < data.size(); ++k) {
    iov[k] = iovec{data[k].data(), data[k].size()};
    msgs[k].msg_hdr.msg_name =
        const_cast<sockaddr_storage*>(&to[k]->addr.storage);
    msgs[k].msg_hdr.msg_namelen = to[k]->addr.length;
    msgs[k].msg_hdr.msg_iov = &iov[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
  }
  size_t done = 0;
  while (done < msgs.size()) {
    const int n =
        sendmmsg(fd_, msgs.data() + done,
                 static_cast<unsigned>(msgs.size() - done), MSG_DONTWAIT);
    if (n <= 0) {
      // The first datagram failed (EAGAIN, ENOBUFS, unreachable): skip it,
      // its stream copy is sent at once by the caller.
      CountSent(0, 1);
      ++done;
      continue;
    }
    for (int k = 0; k < n; ++k) {
      sent[index[done + k]] = confirmed[done + k];
      if (delivered != nullptr && confirmed[done + k]) ++(stats_.*delivered);
    }
    CountSent(static_cast<size_t>(n), 0);
    done += static_cast<size_t>(n);
  }
  return sent;
}

void FastPathServer::CountSent(size_t sent, size_t failed) {
  stats_.out_sent += sent;
  stats_.out_failed += failed;
}

bool FastPathServer::SendLocked(Peer& peer,
                                const sluice::v1::FastPathBody& body) {
  const std::string d = SealFastPath(peer.key, FastPathDirection::kDown,
                                     peer.token, peer.next_seq++, body);
  if (d.empty()) {
    CountSent(0, 1);
    return false;
  }
  const ssize_t n = sendto(fd_, d.data(), d.size(), MSG_DONTWAIT,
                           peer.addr.get(), peer.addr.length);
  const bool ok = n == static_cast<ssize_t>(d.size());
  CountSent(ok ? 1 : 0, ok ? 0 : 1);  // a failure: the stream has it
  return ok;
}

FastPathServer::Stats FastPathServer::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void FastPathServer::ReadLoop() {
  // This thread sleeps almost always and, when a throttle report comes,
  // sends the fleet's pauses: ask to preempt whatever runs when it wakes.
  if (absl::Status s = RequestShortSlice(kReaderSlice); !s.ok()) {
    spdlog::warn("fast path reader: {}", std::string(s.message()));
  }
  // Drains the socket in batches (one system call for up to kBatch
  // datagrams) before it polls again: under a fleet's steady reports the
  // reader wakes once for several of them.
  constexpr unsigned kBatch = 32;
  std::vector<char> buf(kBatch * (kFastPathMaxDatagram + 1));
  std::array<mmsghdr, kBatch> msgs{};
  std::array<iovec, kBatch> iov{};
  std::array<sockaddr_storage, kBatch> from{};
  while (!stopping_.load(std::memory_order_relaxed)) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, kPollMs) <= 0) continue;
    while (!stopping_.load(std::memory_order_relaxed)) {
      for (unsigned k = 0; k < kBatch; ++k) {
        iov[k] = iovec{buf.data() + k * (kFastPathMaxDatagram + 1),
                       kFastPathMaxDatagram + 1};
        msgs[k].msg_hdr = msghdr{};
        msgs[k].msg_hdr.msg_name = &from[k];
        msgs[k].msg_hdr.msg_namelen = sizeof(from[k]);
        msgs[k].msg_hdr.msg_iov = &iov[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
      }
      // An ICMP error queued on the socket fails the call once and is
      // cleared by it.
      const int n = recvmmsg(fd_, msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) break;
      for (int k = 0; k < n; ++k) {
        OnDatagram(static_cast<const char*>(iov[k].iov_base), msgs[k].msg_len,
                   &from[k], msgs[k].msg_hdr.msg_namelen);
      }
      if (static_cast<unsigned>(n) < kBatch) break;
    }
  }
}

void FastPathServer::OnDatagram(const char* data, size_t size, const void* from,
                                uint32_t from_len) {
  std::optional<FastPathEnvelope> env =
      ParseFastPath(std::string_view(data, size));
  std::string key;
  {
    std::lock_guard lock(mu_);
    if (!env) {
      ++stats_.in_malformed;
      return;
    }
    auto it = by_token_.find(env->token);
    if (it == by_token_.end()) {
      ++stats_.in_unknown_token;
      return;
    }
    key = it->second->key;
  }
  // The MAC is checked unlocked: a flood of datagrams must not hold up
  // SendPauses, Open and Close (and so the allocator).
  sluice::v1::FastPathBody body;
  const FastPathOpen opened =
      OpenFastPath(key, FastPathDirection::kUp, *env, &body);
  sluice::v1::SidecarMessage msg;
  uint64_t stream = 0;
  {
    std::lock_guard lock(mu_);
    if (opened == FastPathOpen::kBadMac) {
      ++stats_.in_bad_mac;
      return;
    }
    if (opened == FastPathOpen::kMalformed) {
      ++stats_.in_malformed;
      return;
    }
    auto it = by_token_.find(env->token);
    if (it == by_token_.end()) {  // closed meanwhile
      ++stats_.in_unknown_token;
      return;
    }
    Peer& peer = *it->second;
    if (!peer.seen.Accept(env->seq)) {
      ++stats_.in_replayed;
      return;
    }
    if (body.has_hello()) {
      ++stats_.in_ok;
      // The sidecar's address as this host sees it (NAT included).
      if (peer.addr.length == 0) ++stats_.registered;
      std::memcpy(&peer.addr.storage, from, from_len);
      peer.addr.length = from_len;
      peer.confirmed = body.hello().welcomed();
      sluice::v1::FastPathBody welcome;
      welcome.mutable_welcome();
      SendLocked(peer, welcome);
      return;
    }
    if (peer.addr.length != 0) {
      // Authentic and fresh: where the sidecar is now (a NAT may have
      // moved it since its hello), so grants follow it at once.
      std::memcpy(&peer.addr.storage, from, from_len);
      peer.addr.length = from_len;
    }
    if (body.has_throttle()) {
      *msg.mutable_throttle() = std::move(*body.mutable_throttle());
    } else if (body.has_demand() && leases_) {
      *msg.mutable_demand() = std::move(*body.mutable_demand());
      ++stats_.demand_in;
    } else if (body.has_pause_ack()) {
      *msg.mutable_pause_ack() = std::move(*body.mutable_pause_ack());
    } else {  // a down-only message sent up
      ++stats_.in_malformed;
      return;
    }
    ++stats_.in_ok;
    stream = peer.stream;
  }
  on_message_(stream, msg);
}

}  // namespace sluice
