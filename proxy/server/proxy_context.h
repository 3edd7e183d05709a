#ifndef SLUICE_PROXY_SERVER_PROXY_CONTEXT_H_
#define SLUICE_PROXY_SERVER_PROXY_CONTEXT_H_

#include <atomic>
#include <memory>
#include <string_view>
#include <vector>

#include "common/time/clock.h"
#include "proxy/config/config.h"
#include "proxy/server/limit_runtime.h"

namespace sluice {

class AccessLog;
class LimitGate;
class PauseMetrics;
class ProxyMetrics;
class Router;
class SsrfGuard;
class TlsMetrics;
class TlsEndpoints;
class UpstreamPool;

// Everything a client session needs, owned by ProxyApp and alive for as
// long as any session is. Members are thread-safe or immutable.
struct ProxyContext {
  const ProxyConfig* config = nullptr;
  Clock* clock = nullptr;
  const Router* router = nullptr;
  const SsrfGuard* guard = nullptr;
  UpstreamPool* pool = nullptr;
  LimitGate* gate = nullptr;
  ProxyMetrics* metrics = nullptr;
  PauseMetrics* pause_metrics = nullptr;
  AccessLog* access_log = nullptr;
  // HTTPS interception and TLS towards origins; null when neither is on.
  TlsEndpoints* tls = nullptr;
  TlsMetrics* tls_metrics = nullptr;
  // Indexed by route index (Router::Match::index); nullptr = no limit.
  std::vector<LimitRuntime*> route_limits;
  // Set on SIGTERM: finish the current request, then close.
  std::atomic<bool> draining{false};
  std::atomic<size_t> connections{0};
};

}  // namespace sluice

#endif  // SLUICE_PROXY_SERVER_PROXY_CONTEXT_H_
