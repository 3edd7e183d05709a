#include "tests/testing/lease_messages.h"

namespace sluice::test {

sluice::v1::SidecarMessage HelloMessage(const Hello& hello) {
  sluice::v1::SidecarMessage m;
  auto* h = m.mutable_hello();
  h->set_protocol_version(hello.protocol_version);
  h->set_sidecar_id(hello.sidecar_id);
  h->set_pod(hello.sidecar_id + "-pod");
  h->set_weight(hello.weight);
  h->set_instance(hello.instance);
  return m;
}

sluice::v1::SidecarMessage DemandMessage(const Demand& demand) {
  sluice::v1::SidecarMessage m;
  auto* d = m.mutable_demand();
  d->mutable_bucket()->set_resource(demand.resource);
  d->mutable_bucket()->set_key_hash(demand.key);
  d->set_allowed(demand.allowed);
  d->set_denied(demand.denied);
  d->set_queued(demand.queued);
  d->set_elapsed_ms(demand.elapsed_ms);
  d->set_held(demand.held);
  d->set_grant_seq_seen(demand.seen);
  return m;
}

sluice::v1::ServerMessage GrantMessage(const Grant& grant) {
  sluice::v1::ServerMessage m;
  m.set_protocol_version(1);
  m.set_server_epoch(grant.epoch);
  auto* g = m.mutable_grant();
  g->mutable_bucket()->set_resource(grant.resource);
  g->mutable_bucket()->set_key_hash(grant.key);
  g->set_tokens(grant.tokens);
  g->set_seq(grant.seq);
  g->set_target(grant.target);
  g->set_ttl_ms(grant.ttl_ms);
  g->set_report_seq(grant.report_seq);
  g->set_share_per_second(grant.share);
  g->set_refresh_after_ms(grant.refresh_ms);
  return m;
}

sluice::v1::ServerMessage LimitMessage(const Limit& limit) {
  sluice::v1::ServerMessage m;
  m.set_server_epoch(limit.epoch);
  auto* l = m.mutable_limit();
  l->set_resource(limit.resource);
  l->set_rate_per_second(limit.rate);
  l->set_burst(limit.burst);
  l->set_unavailable_policy(limit.policy);
  l->set_sidecars(limit.sidecars);
  l->set_config_version(1);
  return m;
}

}  // namespace sluice::test
