#include "proxy/server/upstream_pool.h"

#include <sys/socket.h>

#include <cerrno>

namespace sluice {

bool UpstreamPool::LooksAlive(Stream& s) {
  auto& sock = s.socket();
  if (!sock.is_open()) return false;
  char byte;
  ssize_t n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;  // orderly close by the origin
  if (n > 0) return false;   // unsolicited bytes: the stream is out of sync
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

std::unique_ptr<UpstreamPool::Stream> UpstreamPool::Take(
    const std::string& key) {
  const TimePoint now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  auto& q = it->second;
  std::unique_ptr<Stream> found;
  while (!q.empty()) {
    Entry e = std::move(q.back());  // most recently used first
    q.pop_back();
    --total_;
    if (now - e.since < opts_.idle_timeout && LooksAlive(*e.stream)) {
      found = std::move(e.stream);
      ++reused_;
      break;
    }
    boost::system::error_code ec;
    e.stream->socket().close(ec);
  }
  if (q.empty()) idle_.erase(it);
  return found;
}

void UpstreamPool::Put(const std::string& key, std::unique_ptr<Stream> stream) {
  if (!stream || opts_.max_idle_per_host == 0 || opts_.max_idle_total == 0) {
    return;
  }
  stream->tcp().expires_never();
  std::lock_guard<std::mutex> lock(mu_);
  auto& q = idle_[key];
  if (q.size() >= opts_.max_idle_per_host) {
    boost::system::error_code ec;
    q.front().stream->socket().close(ec);
    q.pop_front();
    --total_;
  }
  if (total_ >= opts_.max_idle_total) EvictOldestLocked();
  q.push_back(Entry{std::move(stream), clock_->Now()});
  ++total_;
}

void UpstreamPool::EvictOldestLocked() {
  auto oldest = idle_.end();
  for (auto it = idle_.begin(); it != idle_.end(); ++it) {
    if (it->second.empty()) continue;
    if (oldest == idle_.end() ||
        it->second.front().since < oldest->second.front().since) {
      oldest = it;
    }
  }
  if (oldest == idle_.end()) return;
  boost::system::error_code ec;
  oldest->second.front().stream->socket().close(ec);
  oldest->second.pop_front();
  --total_;
  if (oldest->second.empty()) idle_.erase(oldest);
}

void UpstreamPool::Sweep() {
  const TimePoint now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& q = it->second;
    while (!q.empty() && now - q.front().since >= opts_.idle_timeout) {
      boost::system::error_code ec;
      q.front().stream->socket().close(ec);
      q.pop_front();
      --total_;
    }
    if (q.empty()) {
      idle_.erase(it++);
    } else {
      ++it;
    }
  }
}

void UpstreamPool::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, q] : idle_) {
    for (auto& e : q) {
      boost::system::error_code ec;
      e.stream->socket().close(ec);
    }
  }
  idle_.clear();
  total_ = 0;
}

size_t UpstreamPool::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

uint64_t UpstreamPool::reused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reused_;
}

}  // namespace sluice
