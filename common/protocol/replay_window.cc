#include "common/protocol/replay_window.h"

namespace sluice {

bool ReplayWindow::Accept(uint64_t id) {
  if (id == 0) return false;
  if (id > highest_) {
    const uint64_t shift = id - highest_;
    seen_ = shift >= kWidth ? 0 : seen_ << shift;
    seen_ |= 1;
    highest_ = id;
    return true;
  }
  const uint64_t back = highest_ - id;
  if (back >= kWidth) return false;
  const uint64_t bit = uint64_t{1} << back;
  if (seen_ & bit) return false;
  seen_ |= bit;
  return true;
}

}  // namespace sluice
