#ifndef SLUICE_PROXY_LEASE_LEASE_SETUP_H_
#define SLUICE_PROXY_LEASE_LEASE_SETUP_H_

// Pure helpers that turn the proxy's configuration into the pieces of leased
// mode (docs/leasing.md): who this sidecar is, how each leased limit's pool
// starts, and how the lease state reads in /readyz. ProxyApp does the
// wiring; these are separate so they are testable without sockets.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/lease/lease_agent.h"
#include "proxy/lease/lease_pool.h"

namespace sluice {

// What the process knows about where it runs.
struct SidecarEnvironment {
  std::string pod;            // $POD_NAME, or ""
  std::string pod_namespace;  // $POD_NAMESPACE, or ""
  std::string hostname;       // gethostname(), or ""
  int64_t pid = 0;
};

// Reads the environment of this process.
SidecarEnvironment CurrentSidecarEnvironment();

// 32 random hex digits, new for each process (Hello.instance).
std::string NewInstanceId();

// `configured` if non-empty; otherwise "<pod or hostname>-<pid>"
// ("sluice-proxy-<pid>" when both are empty).
std::string SidecarId(std::string_view configured,
                      const SidecarEnvironment& env);

// The Hello fields and tuning of this sidecar's LeaseAgent.
LeaseAgent::Options LeaseAgentOptionsFor(const QuotaClientConfig& quota,
                                         const SidecarEnvironment& env,
                                         std::string_view version);

// A leased limit's pool before the server has said anything: the local
// limit's burst and rate (tokens/s), reports every 100 ms.
LeasePool::Options LeasePoolOptionsFor(const LimitConfig& limit);

// One leased limit as /readyz shows it.
struct LeaseReadyLine {
  std::string limit;
  std::string resource;
  LeaseMode mode = LeaseMode::kLeased;
  // A per-key limit: its live keys by mode (indexed by LeaseMode).
  std::optional<size_t> keys;
  std::array<size_t, 4> keys_by_mode{};
};

// The /readyz detail in leased mode, one fact per line:
//   quota stream: connected (127.0.0.1:7070)    or  disconnected (...)
//   lease <limit> resource=<resource> mode=<mode>
//   lease <limit> resource=<resource> per_key keys=N leased=a
//       fallback_share=b fail_closed=c fail_open=d     (one line)
// `server` is the current or last target ("" when none was tried yet).
std::string LeaseReadyDetail(bool connected, std::string_view server,
                             const std::vector<LeaseReadyLine>& limits);

}  // namespace sluice

#endif  // SLUICE_PROXY_LEASE_LEASE_SETUP_H_
