// DumpRedactedConfig (declared in config_loader.h): the effective config
// as YAML, built from the parsed structs only (never from the source text),
// so nothing outside the schema can reach the admin /config endpoint.

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/time/duration.h"
#include "proxy/config/config_loader.h"
#include "proxy/config/config_throttle.h"

namespace sluice {
namespace {

// How DumpRedactedConfig may show a field. Every string field goes through
// EmitString with its exposure, so a future field holding credentials (or
// anything derived from request header values) is marked kSecret at the one
// place it is emitted.
enum class Exposure { kPublic, kSecret };

void EmitString(YAML::Emitter& out, absl::string_view key,
                const std::string& value, Exposure exposure) {
  out << YAML::Key << std::string(key) << YAML::Value << YAML::DoubleQuoted;
  if (exposure == Exposure::kSecret && !value.empty()) {
    out << "<redacted>";
  } else {
    out << value;
  }
}

// Shortest text that reads back as the same double, in plain notation
// for the usual magnitudes ("400000", "0.25").
std::string FormatNumber(double value) {
  char buf[512];
  const bool plain = value == 0 || (value >= 1e-4 && value <= 1e15);
  auto result = std::to_chars(
      buf, buf + sizeof(buf), value,
      plain ? std::chars_format::fixed : std::chars_format::general);
  return std::string(buf, result.ptr);
}

void EmitNumber(YAML::Emitter& out, absl::string_view key, double value) {
  out << YAML::Key << std::string(key) << YAML::Value << FormatNumber(value);
}

void EmitInt(YAML::Emitter& out, absl::string_view key, uint64_t value) {
  out << YAML::Key << std::string(key) << YAML::Value << value;
}

void EmitDuration(YAML::Emitter& out, absl::string_view key, Duration value) {
  out << YAML::Key << std::string(key) << YAML::Value << FormatDuration(value);
}

void EmitLimit(YAML::Emitter& out, const LimitConfig& limit) {
  out << YAML::BeginMap;
  EmitNumber(out, "rate", limit.rate);
  EmitDuration(out, "period", limit.period);
  EmitNumber(out, "burst", limit.burst);
  out << YAML::Key << "algorithm" << YAML::Value
      << std::string(LimitAlgorithmName(limit.algorithm));
  EmitInt(out, "max_queue", limit.max_queue);
  EmitDuration(out, "max_wait", limit.max_wait);
  EmitNumber(out, "cost", limit.cost);
  EmitString(out, "cost_header", limit.cost_header, Exposure::kPublic);
  EmitNumber(out, "max_cost", limit.max_cost);
  if (limit.per_key) {
    out << YAML::Key << "per_key" << YAML::Value << YAML::BeginMap;
    // A header name, not a value: key values are never kept in the config.
    EmitString(out, "header", limit.per_key->header, Exposure::kPublic);
    EmitInt(out, "max_keys", limit.per_key->max_keys);
    out << YAML::EndMap;
  }
  EmitString(out, "resource", limit.resource, Exposure::kPublic);
  out << YAML::Key << "throttle" << YAML::Value;
  EmitThrottleConfig(out, limit.throttle);
  out << YAML::EndMap;
}

void EmitRoute(YAML::Emitter& out, const RouteConfig& route) {
  out << YAML::BeginMap;
  EmitString(out, "host", route.host, Exposure::kPublic);
  EmitString(out, "path_prefix", route.path_prefix, Exposure::kPublic);
  out << YAML::Key << "methods" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const std::string& method : route.methods) {
    out << YAML::DoubleQuoted << method;
  }
  out << YAML::EndSeq;
  EmitString(out, "limit", route.limit, Exposure::kPublic);
  out << YAML::Key << "retry" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "on_throttle" << YAML::Value << route.retry.on_throttle;
  out << YAML::Key << "methods" << YAML::Value
      << (route.retry.all_methods ? "all" : "idempotent");
  out << YAML::Key << "max_attempts" << YAML::Value << route.retry.max_attempts;
  out << YAML::Key << "max_body_bytes" << YAML::Value
      << route.retry.max_body_bytes;
  out << YAML::EndMap;
  EmitString(out, "scheme", std::string(RouteSchemeName(route.scheme)),
             Exposure::kPublic);
  out << YAML::Key << "originate_tls" << YAML::Value << route.originate_tls;
  out << YAML::EndMap;
}

void EmitHosts(YAML::Emitter& out, absl::string_view key,
               const std::vector<std::string>& hosts) {
  out << YAML::Key << std::string(key) << YAML::Value << YAML::Flow
      << YAML::BeginSeq;
  for (const std::string& host : hosts) out << YAML::DoubleQuoted << host;
  out << YAML::EndSeq;
}

void EmitIntercept(YAML::Emitter& out, const InterceptConfig& intercept) {
  out << YAML::BeginMap;
  EmitHosts(out, "hosts", intercept.hosts);
  out << YAML::Key << "ca" << YAML::Value << YAML::Flow << YAML::BeginMap;
  // Paths only, never the files: where the CA key lives is configuration,
  // the key itself is never read here.
  EmitString(out, "cert", intercept.ca_cert, Exposure::kPublic);
  EmitString(out, "key", intercept.ca_key, Exposure::kPublic);
  out << YAML::EndMap;
  EmitDuration(out, "leaf_validity", intercept.leaf_validity);
  EmitInt(out, "leaf_cache", intercept.leaf_cache);
  out << YAML::EndMap;
}

void EmitUpstreamTls(YAML::Emitter& out, const UpstreamTlsConfig& tls) {
  out << YAML::BeginMap;
  EmitString(out, "ca_bundle", tls.ca_bundle, Exposure::kPublic);
  // Shown on purpose: /config is where an operator sees which origins are
  // not verified.
  EmitHosts(out, "insecure_skip_verify", tls.insecure_skip_verify);
  EmitInt(out, "session_cache", tls.session_cache);
  out << YAML::EndMap;
}

}  // namespace

std::string DumpRedactedConfig(const ProxyConfig& config) {
  YAML::Emitter out;
  out << YAML::Comment(
      "sluice-proxy effective configuration (secrets redacted)");
  out << YAML::BeginMap;
  out << YAML::Key << "listen" << YAML::Value << YAML::BeginSeq;
  for (const ListenAddress& address : config.listen) {
    out << YAML::DoubleQuoted << address.ToString();
  }
  out << YAML::EndSeq;
  EmitInt(out, "workers", config.workers);

  out << YAML::Key << "admin" << YAML::Value << YAML::BeginMap;
  EmitString(out, "listen",
             config.admin.listen ? config.admin.listen->ToString() : "off",
             Exposure::kPublic);
  out << YAML::EndMap;

  const Timeouts& t = config.timeouts;
  out << YAML::Key << "timeouts" << YAML::Value << YAML::BeginMap;
  EmitDuration(out, "header_read", t.header_read);
  EmitDuration(out, "client_idle", t.client_idle);
  EmitDuration(out, "connect", t.connect);
  EmitDuration(out, "upstream_response", t.upstream_response);
  EmitDuration(out, "body_idle", t.body_idle);
  EmitDuration(out, "tunnel_idle", t.tunnel_idle);
  EmitDuration(out, "pool_idle", t.pool_idle);
  out << YAML::EndMap;

  const Limits& l = config.limits;
  out << YAML::Key << "limits" << YAML::Value << YAML::BeginMap;
  EmitInt(out, "max_header_bytes", l.max_header_bytes);
  EmitInt(out, "max_uri_bytes", l.max_uri_bytes);
  EmitInt(out, "max_connections", l.max_connections);
  EmitInt(out, "pool_max_idle_per_host", l.pool_max_idle_per_host);
  EmitInt(out, "pool_max_idle_total", l.pool_max_idle_total);
  EmitInt(out, "buffer_bytes", l.buffer_bytes);
  out << YAML::EndMap;

  out << YAML::Key << "connect" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "allowed_ports" << YAML::Value << YAML::Flow
      << YAML::BeginSeq;
  for (uint16_t port : config.connect.allowed_ports) out << port;
  out << YAML::EndSeq << YAML::EndMap;

  out << YAML::Key << "ssrf" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "allow" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const std::string& cidr : config.ssrf.allow) {
    out << YAML::DoubleQuoted << cidr;
  }
  out << YAML::EndSeq << YAML::EndMap;

  EmitDuration(out, "shutdown_grace", config.shutdown_grace);

  out << YAML::Key << "access_log" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << config.access_log.enabled;
  EmitString(out, "path", config.access_log.path, Exposure::kPublic);
  out << YAML::EndMap;

  out << YAML::Key << "headers" << YAML::Value << YAML::BeginMap;
  EmitString(out, "max_wait", config.headers.max_wait, Exposure::kPublic);
  out << YAML::EndMap;

  out << YAML::Key << "quota" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "servers" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const std::string& server : config.quota.servers) {
    out << YAML::DoubleQuoted << server;
  }
  out << YAML::EndSeq;
  EmitString(out, "sidecar_id", config.quota.sidecar_id, Exposure::kPublic);
  EmitNumber(out, "weight", config.quota.weight);
  EmitDuration(out, "backoff_initial", config.quota.backoff_initial);
  EmitDuration(out, "backoff_max", config.quota.backoff_max);
  EmitDuration(out, "connect_timeout", config.quota.connect_timeout);
  out << YAML::Key << "fast_path" << YAML::Value << config.quota.fast_path;
  out << YAML::EndMap;

  out << YAML::Key << "intercept" << YAML::Value;
  EmitIntercept(out, config.intercept);
  out << YAML::Key << "upstream_tls" << YAML::Value;
  EmitUpstreamTls(out, config.upstream_tls);

  out << YAML::Key << "rate_limits" << YAML::Value;
  if (config.rate_limits.empty()) out << YAML::Flow;
  out << YAML::BeginMap;
  for (const auto& [name, limit] : config.rate_limits) {
    out << YAML::Key << YAML::DoubleQuoted << name << YAML::Value;
    EmitLimit(out, limit);
  }
  out << YAML::EndMap;

  out << YAML::Key << "routes" << YAML::Value;
  if (config.routes.empty()) out << YAML::Flow;
  out << YAML::BeginSeq;
  for (const RouteConfig& route : config.routes) EmitRoute(out, route);
  out << YAML::EndSeq;
  out << YAML::EndMap;
  return std::string(out.c_str(), out.size()) + "\n";
}

std::string ConfigVersion(const ProxyConfig& config) {
  const std::string dump = DumpRedactedConfig(config);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(dump.data(), dump.size(), digest, &len, EVP_sha256(),
                 nullptr) != 1) {
    return "unknown";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string version = "sha256:";
  for (unsigned int i = 0; i < 8 && i < len; ++i) {
    version += kHex[digest[i] >> 4];
    version += kHex[digest[i] & 0xf];
  }
  return version;
}

}  // namespace sluice
