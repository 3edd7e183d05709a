#include "proxy/app/pause_wiring.h"

#include <random>

#include "proxy/pause/paused_token_source.h"
#include "proxy/stats/pause_metrics.h"

namespace sluice {

BucketPause::Options BucketPauseOptionsFor(const LimitConfig& lc,
                                           uint64_t seed) {
  BucketPause::Options o;
  o.schedule = lc.throttle.pause;
  const double period_s = std::chrono::duration<double>(lc.period).count();
  o.full_rate_per_second = period_s > 0 ? lc.rate / period_s : lc.rate;
  o.resume_jitter = lc.throttle.resume_jitter;
  o.seed = seed;
  // Leased limits pass stated limits on to the quota server, which learns
  // from them when the resource has `learn` on.
  if (!lc.resource.empty()) {
    o.stated_limit_interval = std::chrono::milliseconds(250);
  }
  return o;
}

std::shared_ptr<BucketPause> MakeBucketPause(const LimitConfig& lc) {
  if (!lc.throttle.enabled) return nullptr;
  static std::random_device device;
  const uint64_t seed = (uint64_t{device()} << 32) ^ device();
  return std::make_shared<BucketPause>(BucketPauseOptionsFor(lc, seed));
}

std::unique_ptr<TokenSource> WrapForPause(
    std::unique_ptr<TokenSource> source,
    const std::shared_ptr<BucketPause>& pause) {
  if (!pause || !source) return source;
  return std::make_unique<PausedTokenSource>(std::move(source), pause);
}

void AttachPause(const PauseWiring& wiring, const LimitConfig& lc,
                 const std::string& key_hash,
                 const std::shared_ptr<RateLimiter>& limiter,
                 std::shared_ptr<BucketPause> pause) {
  if (!pause || !limiter) return;
  std::weak_ptr<RateLimiter> weak = limiter;
  PauseMetrics* metrics = wiring.metrics;
  auto shed = wiring.shed;
  const std::string name = lc.name;
  std::function<void(const BucketPause::Event&)> on_event;
  if (wiring.report && !lc.resource.empty()) {
    auto report = wiring.report;
    const std::string resource = lc.resource;
    on_event = [report, resource, key_hash](const BucketPause::Event& e) {
      report(resource, key_hash, e);
    };
  }
  pause->set_callbacks(std::move(on_event), [metrics, shed, weak, name](
                                                bool remote, bool started) {
    if (metrics) {
      metrics->OnPause(name, remote, started);
    }
    // Only a queue has requests to shed: an empty one needs no wake-up of
    // an io thread (which on a pause competes with the read of the Pause
    // on every other bucket of this process).
    if (!shed) return;
    if (auto l = weak.lock(); l != nullptr && l->queue_depth() > 0) {
      shed(weak);
    }
  });
  limiter->set_pause(std::move(pause));
}

}  // namespace sluice
