#include "quota-server/core/lease_messages.h"

#include <chrono>

namespace sluice {
namespace {

uint32_t Millis(Duration d) {
  return static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

}  // namespace

sluice::v1::ServerMessage MakeGrantMessage(
    uint64_t epoch, const std::string& resource, const std::string& key,
    const GrantOrder& order, uint64_t seq, const LeaseTuning& lease,
    absl::Time wall_now) {
  sluice::v1::ServerMessage msg;
  msg.set_protocol_version(kLeaseProtocolVersion);
  msg.set_server_epoch(epoch);
  sluice::v1::LeaseGrant* g = msg.mutable_grant();
  g->mutable_bucket()->set_resource(resource);
  g->mutable_bucket()->set_key_hash(key);
  g->set_tokens(order.tokens);
  g->set_seq(seq);
  g->set_share_per_second(order.share_per_second);
  g->set_target(order.target);
  g->set_report_seq(order.report_seq);
  g->set_ttl_ms(Millis(lease.ttl));
  g->set_refresh_after_ms(Millis(lease.refresh));
  g->set_valid_until_unix_ms(
      absl::ToUnixMillis(wall_now + absl::FromChrono(lease.ttl)));
  return msg;
}

sluice::v1::ServerMessage MakeLimitMessage(uint64_t epoch,
                                           const ResourceConfig& config,
                                           uint32_t sidecars,
                                           uint64_t version) {
  sluice::v1::ServerMessage msg;
  msg.set_protocol_version(kLeaseProtocolVersion);
  msg.set_server_epoch(epoch);
  sluice::v1::LimitUpdate* l = msg.mutable_limit();
  l->set_resource(config.name);
  l->set_rate_per_second(config.RatePerSecond());
  l->set_burst(config.burst);
  l->set_unavailable_policy(
      UnavailablePolicyToProto(config.unavailable_policy));
  l->set_sidecars(sidecars);
  l->set_config_version(version);
  return msg;
}

sluice::v1::ServerMessage MakePauseMessage(
    uint64_t epoch, const std::string& resource, const std::string& key,
    const PauseOrder& order, const FleetPause::View& view, Duration ramp) {
  sluice::v1::ServerMessage msg;
  msg.set_protocol_version(kLeaseProtocolVersion);
  msg.set_server_epoch(epoch);
  sluice::v1::Pause* p = msg.mutable_pause();
  p->mutable_bucket()->set_resource(resource);
  p->mutable_bucket()->set_key_hash(key);
  p->set_pause_id(order.pause_id);
  // Rounded up, so the sidecar never resumes before the server.
  p->set_remaining_ms(static_cast<uint64_t>(
      std::chrono::ceil<std::chrono::milliseconds>(order.remaining).count()));
  p->set_reason(view.reason);
  p->set_origin_sidecar(view.origin_sidecar);
  p->set_prober(order.prober);
  p->set_ramp_ms(Millis(ramp));
  return msg;
}

}  // namespace sluice
