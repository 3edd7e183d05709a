#include "proxy/config/config_tls.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/config/config_yaml.h"
#include "common/time/duration.h"
#include "proxy/config/config_yaml.h"

namespace sluice {
namespace {

using config_yaml::FieldError;
using config_yaml::ForEachField;
using config_yaml::ForEachItem;
using config_yaml::Got;
using config_yaml::IsCleanUtf8;
using config_yaml::Join;
using config_yaml::ReadBool;
using config_yaml::ReadDuration;
using config_yaml::ReadInt;
using config_yaml::ReadString;

constexpr Duration kMinLeafValidity = std::chrono::hours(2);
constexpr Duration kMaxLeafValidity = std::chrono::hours(24 * 30);
constexpr size_t kMaxLeafCache = 100000;
constexpr size_t kMaxSessionCache = 100000;

// A file path; "" leaves it unset. Held to clean UTF-8 so the dump shows
// it exactly.
absl::Status ReadPath(const YAML::Node& node, absl::string_view path,
                      std::string* out) {
  absl::Status s = ReadString(node, path, out);
  if (s.ok() && !IsCleanUtf8(*out)) {
    return FieldError(path, node, "must be UTF-8 without control characters");
  }
  return s;
}

// Reads a list of host patterns into `out`. `exact` refuses wildcards
// ("*.x"); "" and "*" are always refused (they would stand for every host),
// saying `what_every` is not allowed.
absl::Status ReadHosts(const YAML::Node& node, absl::string_view path,
                       bool exact, absl::string_view what_every,
                       std::vector<std::string>* out) {
  out->clear();
  return ForEachItem(
      node, path, [&](const YAML::Node& item, const std::string& p) {
        std::string host;
        absl::Status s = ReadString(item, p, &host);
        if (!s.ok()) return s;
        if (exact && host.find('*') != std::string::npos) {
          return FieldError(p, item,
                            absl::StrCat("must be an exact host name, not a "
                                         "wildcard (got ",
                                         Got(item), ")"));
        }
        if (host.empty() || host == "*") {
          return FieldError(
              p, item,
              absl::StrCat("must name a host (", what_every,
                           " is not allowed) (got ", Got(item), ")"));
        }
        s = CheckRouteHostPattern(host);
        if (!s.ok()) {
          return FieldError(
              p, item,
              absl::StrCat("bad host ", Got(item), " (", s.message(), ")"));
        }
        out->push_back(std::move(host));
        return absl::OkStatus();
      });
}

absl::Status ParseCa(const YAML::Node& node, absl::string_view path,
                     InterceptConfig* out) {
  return ForEachField(node, path, {"cert", "key"},
                      [&](absl::string_view key, const YAML::Node& value,
                          const std::string& field) {
                        return ReadPath(
                            value, field,
                            key == "cert" ? &out->ca_cert : &out->ca_key);
                      });
}

}  // namespace

absl::Status ParseInterceptConfig(const YAML::Node& node,
                                  InterceptConfig* out) {
  constexpr absl::string_view kPath = "intercept";
  // Nodes the cross-checks below point at. (std::optional because
  // assigning to a bound YAML::Node would overwrite the document.)
  std::optional<YAML::Node> hosts_node;
  std::optional<YAML::Node> ca_node;
  absl::Status status = ForEachField(
      node, kPath, {"hosts", "ca", "leaf_validity", "leaf_cache"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) -> absl::Status {
        if (key == "hosts") {
          hosts_node.emplace(value);
          return ReadHosts(value, field, false, "intercepting every host",
                           &out->hosts);
        }
        if (key == "ca") {
          ca_node.emplace(value);
          return ParseCa(value, field, out);
        }
        if (key == "leaf_cache") {
          return ReadInt(value, field, 1, kMaxLeafCache, &out->leaf_cache);
        }
        absl::Status s = ReadDuration(value, field, false, &out->leaf_validity);
        if (s.ok() && (out->leaf_validity < kMinLeafValidity ||
                       out->leaf_validity > kMaxLeafValidity)) {
          return FieldError(field, value,
                            absl::StrCat("must be between 2h and 720h (30 "
                                         "days) (got ",
                                         Got(value), ")"));
        }
        return s;
      });
  if (!status.ok()) return status;
  const bool has_ca = !out->ca_cert.empty() || !out->ca_key.empty();
  if (!out->hosts.empty() && (out->ca_cert.empty() || out->ca_key.empty())) {
    const char* missing = out->ca_cert.empty() && out->ca_key.empty()
                              ? "cert and key"
                          : out->ca_cert.empty() ? "cert"
                                                 : "key";
    return FieldError(Join(kPath, "ca"), ca_node.value_or(node),
                      absl::StrCat("needs cert and key, the CA that signs the "
                                   "certificates minted for intercept.hosts "
                                   "(missing: ",
                                   missing, ")"));
  }
  if (out->hosts.empty() && has_ca) {
    return FieldError(Join(kPath, "hosts"), hosts_node.value_or(node),
                      "name the hosts to intercept (a CA is set, but without "
                      "hosts nothing is intercepted)");
  }
  return absl::OkStatus();
}

absl::Status ParseUpstreamTlsConfig(const YAML::Node& node,
                                    UpstreamTlsConfig* out) {
  return ForEachField(
      node, "upstream_tls",
      {"ca_bundle", "insecure_skip_verify", "session_cache"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) -> absl::Status {
        if (key == "ca_bundle") return ReadPath(value, field, &out->ca_bundle);
        if (key == "insecure_skip_verify") {
          return ReadHosts(value, field, true,
                           "skipping verification for every host",
                           &out->insecure_skip_verify);
        }
        return ReadInt(value, field, 0, kMaxSessionCache, &out->session_cache);
      });
}

absl::Status ReadRouteTlsField(absl::string_view key, const YAML::Node& value,
                               const std::string& path, RouteConfig* route) {
  if (key == "originate_tls") {
    return ReadBool(value, path, &route->originate_tls);
  }
  std::string name;
  absl::Status s = ReadString(value, path, &name);
  if (!s.ok()) return s;
  std::optional<RouteScheme> scheme = ParseRouteScheme(name);
  if (!scheme) {
    return FieldError(
        path, value,
        absl::StrCat("must be \"\", http or https (got ", Got(value), ")"));
  }
  route->scheme = *scheme;
  return absl::OkStatus();
}

absl::Status CheckRouteTls(const YAML::Node& node, absl::string_view path,
                           const RouteConfig& route) {
  if (route.originate_tls && route.scheme == RouteScheme::kHttps) {
    YAML::Node where = node;
    if (node.IsMap()) {
      if (const YAML::Node field = node["originate_tls"]) where = field;
    }
    return FieldError(Join(path, "originate_tls"), where,
                      "must not be set with scheme: https (a request from an "
                      "intercepted tunnel already goes to its origin over "
                      "TLS)");
  }
  return absl::OkStatus();
}

}  // namespace sluice
