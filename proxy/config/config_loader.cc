#include "proxy/config/config_loader.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <exception>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/config/config_file.h"
#include "proxy/config/config_throttle.h"
#include "proxy/config/config_tls.h"
#include "proxy/config/config_yaml.h"

namespace sluice {
namespace {

using config_yaml::FieldError;
using config_yaml::ForEachEntry;
using config_yaml::ForEachField;
using config_yaml::ForEachItem;
using config_yaml::Got;
using config_yaml::IsCleanUtf8;
using config_yaml::IsToken;
using config_yaml::IsValidName;
using config_yaml::Join;
using config_yaml::kMaxDuration;
using config_yaml::ReadBool;
using config_yaml::ReadDuration;
using config_yaml::ReadHeaderName;
using config_yaml::ReadInt;
using config_yaml::ReadNumber;
using config_yaml::ReadString;

absl::Status ReadListenAddress(const YAML::Node& node, absl::string_view path,
                               ListenAddress* out) {
  std::string text;
  absl::Status status = ReadString(node, path, &text);
  if (!status.ok()) return status;
  absl::StatusOr<ListenAddress> address = ParseListenAddress(text);
  if (!address.ok()) return FieldError(path, node, address.status().message());
  *out = *std::move(address);
  return absl::OkStatus();
}

absl::Status ParseListen(const YAML::Node& node, ProxyConfig* config) {
  config->listen.clear();
  absl::Status status = ForEachItem(
      node, "listen", [&](const YAML::Node& item, const std::string& path) {
        ListenAddress address;
        absl::Status s = ReadListenAddress(item, path, &address);
        if (!s.ok()) return s;
        for (const ListenAddress& other : config->listen) {
          if (address.port != 0 && other == address) {
            return FieldError(path, item, "duplicate address");
          }
        }
        config->listen.push_back(std::move(address));
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  if (config->listen.empty()) {
    return FieldError("listen", node, "needs at least one address");
  }
  return absl::OkStatus();
}

absl::Status ParseAdmin(const YAML::Node& node, AdminConfig* admin) {
  return ForEachField(
      node, "admin", {"listen"},
      [&](absl::string_view, const YAML::Node& value, const std::string& path) {
        std::string text;
        absl::Status s = ReadString(value, path, &text);
        if (!s.ok()) return s;
        if (text.empty() || text == "off") {
          admin->listen.reset();
          return absl::OkStatus();
        }
        admin->listen.emplace();
        return ReadListenAddress(value, path, &*admin->listen);
      });
}

absl::Status ParseTimeouts(const YAML::Node& node, Timeouts* t) {
  const std::pair<absl::string_view, Duration*> fields[] = {
      {"header_read", &t->header_read},
      {"client_idle", &t->client_idle},
      {"connect", &t->connect},
      {"upstream_response", &t->upstream_response},
      {"body_idle", &t->body_idle},
      {"tunnel_idle", &t->tunnel_idle},
      {"pool_idle", &t->pool_idle}};
  return ForEachField(
      node, "timeouts",
      {"header_read", "client_idle", "connect", "upstream_response",
       "body_idle", "tunnel_idle", "pool_idle"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& path) {
        for (const auto& [name, field] : fields) {
          if (name == key) return ReadDuration(value, path, false, field);
        }
        return absl::InternalError("unhandled field");
      });
}

absl::Status ParseLimits(const YAML::Node& node, Limits* l) {
  constexpr uint64_t kMiB = 1024 * 1024;
  struct Field {
    absl::string_view name;
    size_t* value;
    uint64_t min;
    uint64_t max;
  };
  const Field fields[] = {
      {"max_header_bytes", &l->max_header_bytes, 1024, 16 * kMiB},
      {"max_uri_bytes", &l->max_uri_bytes, 64, 16 * kMiB},
      {"max_connections", &l->max_connections, 1, 1000000},
      {"pool_max_idle_per_host", &l->pool_max_idle_per_host, 0, 100000},
      {"pool_max_idle_total", &l->pool_max_idle_total, 0, 1000000},
      {"buffer_bytes", &l->buffer_bytes, 1024, 64 * kMiB}};
  return ForEachField(
      node, "limits",
      {"max_header_bytes", "max_uri_bytes", "max_connections",
       "pool_max_idle_per_host", "pool_max_idle_total", "buffer_bytes"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& path) {
        for (const Field& f : fields) {
          if (f.name == key) return ReadInt(value, path, f.min, f.max, f.value);
        }
        return absl::InternalError("unhandled field");
      });
}

absl::Status ParseConnect(const YAML::Node& node, ConnectConfig* connect) {
  return ForEachField(
      node, "connect", {"allowed_ports"},
      [&](absl::string_view, const YAML::Node& value, const std::string& path) {
        connect->allowed_ports.clear();
        return ForEachItem(value, path,
                           [&](const YAML::Node& item, const std::string& p) {
                             uint16_t port = 0;
                             absl::Status s = ReadInt(item, p, 1, 65535, &port);
                             if (s.ok()) connect->allowed_ports.push_back(port);
                             return s;
                           });
      });
}

absl::Status ParseSsrf(const YAML::Node& node, SsrfConfig* ssrf) {
  return ForEachField(
      node, "ssrf", {"allow"},
      [&](absl::string_view, const YAML::Node& value, const std::string& path) {
        ssrf->allow.clear();
        return ForEachItem(
            value, path, [&](const YAML::Node& item, const std::string& p) {
              std::string cidr;
              absl::Status s = ReadString(item, p, &cidr);
              if (!s.ok()) return s;
              s = CheckCidrSyntax(cidr);
              if (!s.ok()) {
                return FieldError(p, item,
                                  absl::StrCat("bad CIDR ", Got(item), " (",
                                               s.message(), ")"));
              }
              ssrf->allow.push_back(std::move(cidr));
              return absl::OkStatus();
            });
      });
}

absl::Status ParseAccessLog(const YAML::Node& node, AccessLogConfig* log) {
  return ForEachField(
      node, "access_log", {"enabled", "path"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& path) {
        if (key == "enabled") return ReadBool(value, path, &log->enabled);
        absl::Status s = ReadString(value, path, &log->path);
        if (!s.ok()) return s;
        if (log->path.empty()) {
          return FieldError(path, value,
                            "must not be empty (use \"-\" for stdout)");
        }
        if (!IsCleanUtf8(log->path)) {
          return FieldError(path, value,
                            "must be UTF-8 without control characters");
        }
        return absl::OkStatus();
      });
}

absl::Status ParseHeaders(const YAML::Node& node, HeadersConfig* headers) {
  return ForEachField(
      node, "headers", {"max_wait"},
      [&](absl::string_view, const YAML::Node& value, const std::string& path) {
        return ReadHeaderName(value, path, true, &headers->max_wait);
      });
}

absl::Status ParsePerKey(const YAML::Node& node, absl::string_view path,
                         PerKeyConfig* per_key) {
  bool has_header = false;
  absl::Status status = ForEachField(
      node, path, {"header", "max_keys"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) {
        if (key == "max_keys") {
          return ReadInt(value, field, 1, 10000000, &per_key->max_keys);
        }
        has_header = true;
        return ReadHeaderName(value, field, false, &per_key->header);
      });
  if (!status.ok()) return status;
  if (!has_header) {
    return FieldError(Join(path, "header"), node,
                      "required (the request header that selects the key)");
  }
  return absl::OkStatus();
}

absl::Status ParseLimit(const YAML::Node& node, absl::string_view path,
                        LimitConfig* limit) {
  // Nodes of fields that cross-checks below point at. (std::optional because
  // assigning to a bound YAML::Node would overwrite the document.)
  std::optional<YAML::Node> rate_node;
  std::optional<YAML::Node> burst_node;
  std::optional<YAML::Node> cost_node;
  std::optional<YAML::Node> max_cost_node;
  absl::Status status = ForEachField(
      node, path,
      {"rate", "period", "burst", "algorithm", "max_queue", "max_wait", "cost",
       "cost_header", "max_cost", "per_key", "resource", "throttle"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) -> absl::Status {
        if (key == "rate") {
          rate_node.emplace(value);
          return ReadNumber(value, field, 0, true, &limit->rate);
        }
        if (key == "period") {
          return ReadDuration(value, field, false, &limit->period);
        }
        if (key == "burst") {
          burst_node.emplace(value);
          return ReadNumber(value, field, 1, false, &limit->burst);
        }
        if (key == "algorithm") {
          std::string name;
          absl::Status s = ReadString(value, field, &name);
          if (!s.ok()) return s;
          std::optional<LimitAlgorithm> algorithm = ParseLimitAlgorithm(name);
          if (!algorithm) {
            return FieldError(field, value,
                              absl::StrCat("must be \"gcra\" or "
                                           "\"token_bucket\" (got ",
                                           Got(value), ")"));
          }
          limit->algorithm = *algorithm;
          return absl::OkStatus();
        }
        if (key == "max_queue") {
          return ReadInt(value, field, 0, 1000000, &limit->max_queue);
        }
        if (key == "max_wait") {
          return ReadDuration(value, field, true, &limit->max_wait);
        }
        if (key == "cost") {
          cost_node.emplace(value);
          return ReadNumber(value, field, 0, true, &limit->cost);
        }
        if (key == "cost_header") {
          return ReadHeaderName(value, field, true, &limit->cost_header);
        }
        if (key == "max_cost") {
          max_cost_node.emplace(value);
          return ReadNumber(value, field, 0, false, &limit->max_cost);
        }
        if (key == "resource") {
          absl::Status s = ReadString(value, field, &limit->resource);
          if (s.ok() && !limit->resource.empty() &&
              !IsValidName(limit->resource)) {
            return FieldError(field, value,
                              "must be 1..64 of letters, digits, '_', '-', "
                              "'.'");
          }
          return s;
        }
        if (key == "throttle") {
          return ParseThrottleConfig(value, field, &limit->throttle);
        }
        limit->per_key.emplace();
        return ParsePerKey(value, field, &*limit->per_key);
      });
  if (!status.ok()) return status;
  if (!rate_node) {
    return FieldError(Join(path, "rate"), node,
                      "required (tokens per period, a number > 0)");
  }
  // The limiter works in nanoseconds: one token must take at least 1ns and
  // refilling the whole burst at most a year.
  const double period_ns = static_cast<double>(limit->period.count());
  if (period_ns / limit->rate < 1.0) {
    return FieldError(Join(path, "rate"), *rate_node,
                      "more than one token per nanosecond is not supported");
  }
  if (limit->burst * period_ns / limit->rate >
      static_cast<double>(Duration(kMaxDuration).count())) {
    return FieldError(
        Join(path, "burst"), burst_node.value_or(node),
        "refilling the burst takes longer than a year (burst / rate * period)");
  }
  if (limit->cost > limit->burst) {
    return FieldError(Join(path, "cost"), cost_node.value_or(node),
                      absl::StrCat("must be <= burst (", limit->burst,
                                   ") or no request could ever pass"));
  }
  if (limit->max_cost > limit->burst) {
    return FieldError(
        Join(path, "max_cost"), max_cost_node.value_or(node),
        absl::StrCat("must be <= burst (", limit->burst, "); 0 means burst"));
  }
  return absl::OkStatus();
}

absl::Status ParseRateLimits(const YAML::Node& node, ProxyConfig* config) {
  return ForEachEntry(node, "rate_limits",
                      [&](const std::string& name, const YAML::Node& value,
                          const YAML::Node& key_node) {
                        std::string path = Join("rate_limits", name);
                        if (!IsValidName(name)) {
                          return FieldError(
                              path, key_node,
                              "limit names must be 1..64 letters, digits, '_', "
                              "'-' or '.'");
                        }
                        LimitConfig limit;
                        limit.name = name;
                        absl::Status s = ParseLimit(value, path, &limit);
                        if (s.ok())
                          config->rate_limits.emplace(name, std::move(limit));
                        return s;
                      });
}

absl::Status ParseRetry(const YAML::Node& node, absl::string_view path,
                        RetryConfig* retry) {
  return ForEachField(
      node, path, {"on_throttle", "methods", "max_attempts", "max_body_bytes"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) -> absl::Status {
        if (key == "on_throttle") {
          return ReadBool(value, field, &retry->on_throttle);
        }
        if (key == "max_attempts") {
          return ReadInt(value, field, 2, 10, &retry->max_attempts);
        }
        if (key == "max_body_bytes") {
          return ReadInt(value, field, 0, RetryConfig::kMaxBodyBytes,
                         &retry->max_body_bytes);
        }
        std::string methods;
        absl::Status s = ReadString(value, field, &methods);
        if (!s.ok()) return s;
        if (methods != "idempotent" && methods != "all") {
          return FieldError(
              field, value,
              absl::StrCat("must be idempotent or all (got ", Got(value), ")"));
        }
        retry->all_methods = methods == "all";
        return absl::OkStatus();
      });
}

absl::Status ParseRoute(const YAML::Node& node, const std::string& path,
                        const ProxyConfig& config, RouteConfig* route) {
  if (node.IsNull()) {
    return FieldError(path, node, "must be a map (got nothing)");
  }
  absl::Status status = ForEachField(
      node, path,
      {"host", "path_prefix", "methods", "limit", "retry", "scheme",
       "originate_tls"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) -> absl::Status {
        if (key == "retry") return ParseRetry(value, field, &route->retry);
        if (key == "scheme" || key == "originate_tls") {
          return ReadRouteTlsField(key, value, field, route);
        }
        if (key == "methods") {
          route->methods.clear();
          return ForEachItem(
              value, field, [&](const YAML::Node& item, const std::string& p) {
                std::string method;
                absl::Status s = ReadString(item, p, &method);
                if (!s.ok()) return s;
                if (!IsToken(method)) {
                  return FieldError(p, item,
                                    absl::StrCat("bad method ", Got(item)));
                }
                route->methods.push_back(absl::AsciiStrToUpper(method));
                return absl::OkStatus();
              });
        }
        std::string text;
        absl::Status s = ReadString(value, field, &text);
        if (!s.ok()) return s;
        if (key == "host") {
          s = CheckRouteHostPattern(text);
          if (!s.ok()) {
            return FieldError(
                field, value,
                absl::StrCat("bad host ", Got(value), " (", s.message(), ")"));
          }
          route->host = std::move(text);
        } else if (key == "path_prefix") {
          if (!text.empty() && text.front() != '/') {
            return FieldError(
                field, value,
                absl::StrCat("must start with '/' (got ", Got(value), ")"));
          }
          // Request paths are ASCII (anything else is percent-encoded).
          for (char c : text) {
            if (c == '?' || c == '#' ||
                !absl::ascii_isgraph(static_cast<unsigned char>(c))) {
              return FieldError(
                  field, value,
                  absl::StrCat("must be a plain ASCII path without query, "
                               "fragment, spaces or control characters (got ",
                               Got(value), ")"));
            }
          }
          route->path_prefix = std::move(text);
        } else {
          if (!text.empty() && config.FindLimit(text) == nullptr) {
            return FieldError(field, value,
                              absl::StrCat("unknown limit ", Got(value)));
          }
          route->limit = std::move(text);
        }
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return CheckRouteTls(node, path, *route);
}

absl::Status ParseQuota(const YAML::Node& node, QuotaClientConfig* quota) {
  return ForEachField(
      node, "quota",
      {"servers", "sidecar_id", "weight", "backoff_initial", "backoff_max",
       "connect_timeout", "fast_path"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& path) -> absl::Status {
        if (key == "servers") {
          quota->servers.clear();
          return ForEachItem(
              value, path, [&](const YAML::Node& item, const std::string& p) {
                std::string target;
                absl::Status s = ReadString(item, p, &target);
                if (!s.ok()) return s;
                if (target.empty() || !IsCleanUtf8(target) ||
                    target.find(' ') != std::string::npos) {
                  return FieldError(p, item,
                                    "must be host:port or dns:///name:port");
                }
                quota->servers.push_back(std::move(target));
                return absl::OkStatus();
              });
        }
        if (key == "sidecar_id") {
          absl::Status s = ReadString(value, path, &quota->sidecar_id);
          if (s.ok() && (quota->sidecar_id.size() > 253 ||
                         !IsCleanUtf8(quota->sidecar_id))) {
            return FieldError(path, value,
                              "must be at most 253 bytes of clean UTF-8");
          }
          return s;
        }
        if (key == "weight") {
          return ReadNumber(value, path, 0, true, &quota->weight);
        }
        if (key == "backoff_initial") {
          return ReadDuration(value, path, false, &quota->backoff_initial);
        }
        if (key == "backoff_max") {
          return ReadDuration(value, path, false, &quota->backoff_max);
        }
        if (key == "fast_path") return ReadBool(value, path, &quota->fast_path);
        return ReadDuration(value, path, false, &quota->connect_timeout);
      });
}

absl::Status ParseRoot(const YAML::Node& root, ProxyConfig* config) {
  // Parsed last: routes refer to rate_limits.
  std::optional<YAML::Node> routes;
  absl::Status status = ForEachField(
      root, "",
      {"listen", "workers", "admin", "timeouts", "limits", "connect", "ssrf",
       "shutdown_grace", "access_log", "headers", "quota", "intercept",
       "upstream_tls", "rate_limits", "routes"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& path) -> absl::Status {
        if (key == "listen") return ParseListen(value, config);
        if (key == "workers")
          return ReadInt(value, path, 1, 64, &config->workers);
        if (key == "admin") return ParseAdmin(value, &config->admin);
        if (key == "timeouts") return ParseTimeouts(value, &config->timeouts);
        if (key == "limits") return ParseLimits(value, &config->limits);
        if (key == "connect") return ParseConnect(value, &config->connect);
        if (key == "ssrf") return ParseSsrf(value, &config->ssrf);
        if (key == "shutdown_grace") {
          return ReadDuration(value, path, true, &config->shutdown_grace);
        }
        if (key == "access_log") {
          return ParseAccessLog(value, &config->access_log);
        }
        if (key == "headers") return ParseHeaders(value, &config->headers);
        if (key == "quota") return ParseQuota(value, &config->quota);
        if (key == "intercept") {
          return ParseInterceptConfig(value, &config->intercept);
        }
        if (key == "upstream_tls") {
          return ParseUpstreamTlsConfig(value, &config->upstream_tls);
        }
        if (key == "rate_limits") return ParseRateLimits(value, config);
        routes.emplace(value);
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  if (config->quota.backoff_max < config->quota.backoff_initial) {
    return absl::InvalidArgumentError(
        "quota.backoff_max: must be >= quota.backoff_initial");
  }
  for (const auto& [name, limit] : config->rate_limits) {
    if (!limit.resource.empty() && config->quota.servers.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("rate_limits.", name,
                       ".resource: needs quota.servers (no quota server is "
                       "configured)"));
    }
  }
  if (config->admin.listen && config->admin.listen->port != 0) {
    for (size_t i = 0; i < config->listen.size(); ++i) {
      if (config->listen[i] == *config->admin.listen) {
        return absl::InvalidArgumentError(
            absl::StrCat("admin.listen: same address as listen[", i, "]"));
      }
    }
  }
  if (!routes) return absl::OkStatus();
  return ForEachItem(*routes, "routes",
                     [&](const YAML::Node& item, const std::string& path) {
                       RouteConfig route;
                       absl::Status s = ParseRoute(item, path, *config, &route);
                       if (s.ok()) config->routes.push_back(std::move(route));
                       return s;
                     });
}

// Records where each document starts; ignores everything else.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    marks.push_back(mark);
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> marks;
};

absl::Status SyntaxError(const YAML::Mark& mark, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("yaml syntax error at line ",
                                                 mark.line + 1, ", column ",
                                                 mark.column + 1, ": ", what));
}

// Counts the documents in `text` (0, 1 or "more"). yaml-cpp's LoadAll
// loops forever on a stray top-level ',' because the parser reports an
// empty document without consuming it, so documents are walked here with
// a bound and a progress check instead.
absl::Status CheckSingleDocument(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts starts;
  for (int i = 0; i < 3 && parser.HandleNextDocument(starts); ++i) {
    const size_t n = starts.marks.size();
    if (n >= 2 && starts.marks[n - 1].pos == starts.marks[n - 2].pos) {
      return SyntaxError(starts.marks[n - 1], "unexpected ','");
    }
  }
  if (starts.marks.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config: must hold a single YAML document (second one at line ",
        starts.marks[1].line + 1, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ProxyConfig> LoadProxyConfigFromString(std::string_view yaml) {
  try {
    const std::string text(yaml);
    absl::Status status = CheckSingleDocument(text);
    if (!status.ok()) return status;
    ProxyConfig config = DefaultProxyConfig();
    status = ParseRoot(YAML::Load(text), &config);
    if (!status.ok()) return status;
    return config;
  } catch (const YAML::DeepRecursion& e) {
    return SyntaxError(e.mark, "nested too deeply");
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) {
      return absl::InvalidArgumentError(absl::StrCat("yaml error: ", e.msg));
    }
    return SyntaxError(e.mark, e.msg);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read config: ", e.what()));
  }
}

absl::StatusOr<ProxyConfig> LoadProxyConfigFromFile(const std::string& path) {
  return LoadConfigFile<ProxyConfig>(path, [](std::string_view text) {
    return LoadProxyConfigFromString(text);
  });
}

}  // namespace sluice
