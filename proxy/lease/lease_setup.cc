#include "proxy/lease/lease_setup.h"

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>

#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

}  // namespace

SidecarEnvironment CurrentSidecarEnvironment() {
  SidecarEnvironment env;
  env.pod = Env("POD_NAME");
  env.pod_namespace = Env("POD_NAMESPACE");
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0) env.hostname = host;
  env.pid = static_cast<int64_t>(getpid());
  return env;
}

std::string SidecarId(std::string_view configured,
                      const SidecarEnvironment& env) {
  if (!configured.empty()) return std::string(configured);
  std::string base = "sluice-proxy";
  if (!env.pod.empty()) {
    base = env.pod;
  } else if (!env.hostname.empty()) {
    base = env.hostname;
  }
  return absl::StrCat(base, "-", env.pid);
}

std::string NewInstanceId() {
  std::random_device rd;
  const uint64_t hi = (uint64_t{rd()} << 32) | rd();
  const uint64_t lo = (uint64_t{rd()} << 32) | rd();
  return absl::StrCat(absl::Hex(hi, absl::kZeroPad16),
                      absl::Hex(lo, absl::kZeroPad16));
}

LeaseAgent::Options LeaseAgentOptionsFor(const QuotaClientConfig& quota,
                                         const SidecarEnvironment& env,
                                         std::string_view version) {
  LeaseAgent::Options o;
  o.sidecar_id = SidecarId(quota.sidecar_id, env);
  o.instance = NewInstanceId();
  o.pod = env.pod;
  o.pod_namespace = env.pod_namespace;
  o.version = std::string(version);
  o.weight = quota.weight;
  o.refresh = std::chrono::milliseconds(100);
  return o;
}

LeasePool::Options LeasePoolOptionsFor(const LimitConfig& limit) {
  LeasePool::Options o;
  o.initial_capacity = limit.burst;
  const double period_s = std::chrono::duration<double>(limit.period).count();
  o.initial_rate_per_second = period_s > 0 ? limit.rate / period_s : 0;
  o.refresh = std::chrono::milliseconds(100);
  return o;
}

std::string LeaseReadyDetail(bool connected, std::string_view server,
                             const std::vector<LeaseReadyLine>& limits) {
  std::string out =
      absl::StrCat("quota stream: ", connected ? "connected" : "disconnected");
  if (!server.empty()) absl::StrAppend(&out, " (", std::string(server), ")");
  for (const LeaseReadyLine& l : limits) {
    absl::StrAppend(&out, "\nlease ", l.limit, " resource=", l.resource);
    if (!l.keys.has_value()) {
      absl::StrAppend(&out, " mode=", std::string(LeaseModeName(l.mode)));
      continue;
    }
    absl::StrAppend(&out, " per_key keys=", *l.keys);
    for (LeaseMode m : {LeaseMode::kLeased, LeaseMode::kFallbackShare,
                        LeaseMode::kFailClosed, LeaseMode::kFailOpen}) {
      absl::StrAppend(&out, " ", std::string(LeaseModeName(m)), "=",
                      l.keys_by_mode[static_cast<size_t>(m)]);
    }
  }
  return out;
}

}  // namespace sluice
