// Fuzzes the YAML config loader: arbitrary bytes must never crash or
// throw, and every accepted config must survive DumpRedactedConfig and a
// reload unchanged (the admin /config output is itself a valid config).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/config/config_loader.h"
#include "proxy/http/router.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<sluice::ProxyConfig> config =
      sluice::LoadProxyConfigFromString(text);
  if (!config.ok()) {
    if (config.status().message().empty()) {
      std::fprintf(stderr, "error without a message\n");
      std::abort();
    }
    return 0;
  }
  const std::string dump = sluice::DumpRedactedConfig(*config);
  absl::StatusOr<sluice::ProxyConfig> again =
      sluice::LoadProxyConfigFromString(dump);
  if (!again.ok() || !(*again == *config)) {
    std::fprintf(stderr, "dump does not reload to the same config: %s\n%s\n",
                 again.ok() ? "differs" : again.status().ToString().c_str(),
                 dump.c_str());
    std::abort();
  }
  sluice::Router router(config->routes);
  for (const sluice::RouteConfig& route : config->routes) {
    router.Find(route.host, route.path_prefix, "GET",
                sluice::RouteScheme::kHttp);
    router.Find(route.host, route.path_prefix, "GET",
                sluice::RouteScheme::kHttps);
  }
  router.Find("api.example.com", "/v1/chat", "POST",
              sluice::RouteScheme::kHttp);
  return 0;
}
