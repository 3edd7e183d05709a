#include "proxy/lease/pause_deduplicator.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace sluice {

std::string PauseDeduplicator::Id(std::string_view resource,
                                  std::string_view key_hash,
                                  uint64_t pause_id) {
  return absl::StrCat(absl::string_view(resource.data(), resource.size()), "\n",
                      absl::string_view(key_hash.data(), key_hash.size()), "\n",
                      pause_id);
}

PauseDeduplicator::Decision PauseDeduplicator::OnCopy(std::string_view resource,
                                                      std::string_view key_hash,
                                                      uint64_t pause_id,
                                                      Path path) {
  std::string id = Id(resource, key_hash, pause_id);
  Decision d;
  std::lock_guard lock(mu_);
  d.first = applied_.insert(id).second;
  if (d.first) {
    applied_order_.push_back(id);
    if (applied_order_.size() > kMaxRemembered) {
      applied_.erase(applied_order_.front());
      applied_order_.pop_front();
    }
  }
  if (path == Path::kStream) {
    // Bounded: the owner's thread takes these out as it applies the same
    // messages; a backlog this long means it is not running.
    if (stream_acked_.size() >= kMaxRemembered) stream_acked_.clear();
    d.ack = stream_acked_.insert(std::move(id)).second;
  } else {
    d.ack = d.first;
  }
  return d;
}

bool PauseDeduplicator::TakeStreamAck(std::string_view resource,
                                      std::string_view key_hash,
                                      uint64_t pause_id) {
  const std::string id = Id(resource, key_hash, pause_id);
  std::lock_guard lock(mu_);
  return stream_acked_.erase(id) > 0;
}

}  // namespace sluice
