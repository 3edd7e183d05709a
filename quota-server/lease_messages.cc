#include "quota-server/lease_messages.h"

#include <chrono>

namespace sluice {
namespace {

sluice::v1::UnavailablePolicy ToProto(UnavailablePolicy policy) {
  switch (policy) {
    case UnavailablePolicy::kFailClosed:
      return sluice::v1::FAIL_CLOSED;
    case UnavailablePolicy::kFailOpen:
      return sluice::v1::FAIL_OPEN;
    case UnavailablePolicy::kFallbackShare:
      break;
  }
  return sluice::v1::FALLBACK_SHARE;
}

uint32_t Millis(Duration d) {
  return static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

}  // namespace

sluice::v1::ServerMessage MakeGrantMessage(
    uint64_t epoch, const std::string& resource, const std::string& key,
    const GrantOrder& order, uint64_t seq, const LeaseTuning& lease) {
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
  g->set_ttl_ms(Millis(lease.ttl));
  g->set_refresh_after_ms(Millis(lease.refresh));
  g->set_valid_until_unix_ms(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          (std::chrono::system_clock::now() + lease.ttl).time_since_epoch())
          .count());
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
  l->set_unavailable_policy(ToProto(config.unavailable_policy));
  l->set_sidecars(sidecars);
  l->set_config_version(version);
  return msg;
}

}  // namespace sluice
