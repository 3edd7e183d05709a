#ifndef SLUICE_PROXY_PAUSE_PAUSED_TOKEN_SOURCE_H_
#define SLUICE_PROXY_PAUSE_PAUSED_TOKEN_SOURCE_H_

#include <memory>

#include "common/rate/token_source.h"
#include "proxy/pause/bucket_pause.h"

namespace sluice {

// A TokenSource that spends from `inner` only when the bucket's
// BucketPause allows a request (not paused, the one probe, the ramp's
// pace). Predictions are the later of the inner source's and the
// throttle's; while ramping, a backlog's prediction assumes the current
// ramp pace, which only ever speeds up, so it is never early.
class PausedTokenSource : public TokenSource {
 public:
  // Neither may be null.
  PausedTokenSource(std::unique_ptr<TokenSource> inner,
                    std::shared_ptr<BucketPause> pause);

  bool TryTake(double cost, TimePoint now) override;
  std::optional<TimePoint> AvailableAt(double cost,
                                       TimePoint now) const override;
  void Refund(double cost, TimePoint now) override;
  double Capacity() const override;

 private:
  std::unique_ptr<TokenSource> inner_;
  std::shared_ptr<BucketPause> pause_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_PAUSE_PAUSED_TOKEN_SOURCE_H_
