#ifndef SLUICE_COMMON_PROTOCOL_REPLAY_WINDOW_H_
#define SLUICE_COMMON_PROTOCOL_REPLAY_WINDOW_H_

#include <cstdint>

namespace sluice {

// Takes each id once, in any order within a window of the last kWidth ids
// (the anti-replay window of IPsec, RFC 4303 section 3.4.3). Ids are
// positive and mostly increasing: sequence numbers of datagrams, or of
// messages that arrive over two paths.
//
// Accept(id) is true the first time `id` is seen, and false for 0, for a
// repeat, and for an id kWidth or more below the highest accepted id (too
// old to tell). Not thread-safe.
class ReplayWindow {
 public:
  static constexpr uint64_t kWidth = 64;

  bool Accept(uint64_t id);
  uint64_t highest() const { return highest_; }

 private:
  uint64_t highest_ = 0;
  // Bit i set: id highest_ - i was accepted.
  uint64_t seen_ = 0;
};

}  // namespace sluice

#endif  // SLUICE_COMMON_PROTOCOL_REPLAY_WINDOW_H_
