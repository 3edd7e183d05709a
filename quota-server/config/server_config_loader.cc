// ParseServerConfig and LoadServerConfigFile: YAML to ServerConfig. Every
// key is checked against the known fields of its map; errors name the field
// path ("resources.openai.rate") and the line.

#include <yaml-cpp/yaml.h>

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/config/config_file.h"
#include "common/config/config_yaml.h"
#include "common/pause/pause_config.h"
#include "common/time/duration.h"
#include "quota-server/config/server_config.h"

namespace sluice {
namespace {

using config_yaml::FieldError;
using config_yaml::ForEachEntry;
using config_yaml::ForEachField;
using config_yaml::Got;
using config_yaml::Join;
using config_yaml::ReadBool;
using config_yaml::ReadDuration;
using config_yaml::ReadInt;
using config_yaml::ReadNumber;
using config_yaml::ReadString;

absl::Status ParseLease(const YAML::Node& node, absl::string_view path,
                        LeaseTuning* lease) {
  return ForEachField(
      node, path, {"ttl", "horizon", "refresh", "grace"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) -> absl::Status {
        if (key == "ttl") return ReadDuration(value, field, false, &lease->ttl);
        if (key == "horizon") {
          return ReadDuration(value, field, false, &lease->horizon);
        }
        if (key == "refresh") {
          return ReadDuration(value, field, false, &lease->refresh);
        }
        return ReadDuration(value, field, true, &lease->grace);
      });
}

absl::Status ParseLearn(const YAML::Node& node, absl::string_view path,
                        bool* enabled, LearnOptions* o) {
  if (node.IsScalar()) return ReadBool(node, path, enabled);
  *enabled = true;
  return ForEachField(
      node, path,
      {"enabled", "decrease", "increase", "hold", "floor", "stated_ttl"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) -> absl::Status {
        if (key == "enabled") return ReadBool(value, field, enabled);
        if (key == "hold") return ReadDuration(value, field, true, &o->hold);
        if (key == "stated_ttl") {
          return ReadDuration(value, field, false, &o->stated_ttl);
        }
        double* target = key == "decrease"   ? &o->decrease
                         : key == "increase" ? &o->increase
                                             : &o->floor;
        absl::Status s = ReadNumber(value, field, 0, true, target);
        if (s.ok() && key != "increase" && *target > 1) {
          return FieldError(field, value, "must be at most 1");
        }
        if (s.ok() && key == "decrease" && *target >= 1) {
          return FieldError(field, value, "must be below 1");
        }
        return s;
      });
}

absl::Status ParseResource(const YAML::Node& node, absl::string_view path,
                           ResourceConfig* r) {
  if (!node.IsMap()) {
    return FieldError(path, node,
                      absl::StrCat("must be a map with at least `rate` (got ",
                                   Got(node), ")"));
  }
  bool has_rate = false;
  absl::Status status = ForEachField(
      node, path,
      {"rate", "period", "burst", "algorithm", "per_key", "unavailable_policy",
       "lease", "pause", "learn"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) -> absl::Status {
        if (key == "rate") {
          has_rate = true;
          return ReadNumber(value, field, 0, true, &r->rate);
        }
        if (key == "period") {
          return ReadDuration(value, field, false, &r->period);
        }
        if (key == "burst")
          return ReadNumber(value, field, 1, false, &r->burst);
        if (key == "algorithm") {
          absl::Status s = ReadString(value, field, &r->algorithm);
          if (s.ok() && r->algorithm != "gcra" &&
              r->algorithm != "token_bucket") {
            return FieldError(field, value,
                              absl::StrCat("must be gcra or token_bucket (got ",
                                           Got(value), ")"));
          }
          return s;
        }
        if (key == "per_key") return ReadBool(value, field, &r->per_key);
        if (key == "unavailable_policy") {
          std::string name;
          absl::Status s = ReadString(value, field, &name);
          if (!s.ok()) return s;
          std::optional<UnavailablePolicy> policy =
              ParseUnavailablePolicy(name);
          if (!policy) {
            return FieldError(field, value,
                              absl::StrCat("must be fallback_share, "
                                           "fail_closed or fail_open (got ",
                                           Got(value), ")"));
          }
          r->unavailable_policy = *policy;
          return absl::OkStatus();
        }
        if (key == "pause") return ReadPauseOptions(value, field, &r->pause);
        if (key == "learn") {
          return ParseLearn(value, field, &r->learn, &r->learn_options);
        }
        return ParseLease(value, field, &r->lease);
      });
  if (!status.ok()) return status;
  if (!has_rate) {
    return FieldError(Join(path, "rate"), node,
                      "required (tokens per period, a number > 0)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ServerConfig> ParseServerConfig(std::string_view yaml) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: not valid YAML: ", e.what()));
  }
  ServerConfig config;
  absl::Status status = ForEachField(
      root, "",
      {"listen", "admin_listen", "learning", "fast_path", "resources"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) -> absl::Status {
        if (key == "listen") return ReadString(value, field, &config.listen);
        if (key == "admin_listen") {
          if (value.IsNull()) {
            config.admin_listen = "";
            return absl::OkStatus();
          }
          return ReadString(value, field, &config.admin_listen);
        }
        if (key == "learning") return ReadBool(value, field, &config.learning);
        if (key == "fast_path") {
          return ForEachField(
              value, field, {"enabled", "port", "leases"},
              [&](absl::string_view k, const YAML::Node& v,
                  const std::string& f) -> absl::Status {
                if (k == "enabled") {
                  return ReadBool(v, f, &config.fast_path.enabled);
                }
                if (k == "leases") {
                  return ReadBool(v, f, &config.fast_path.leases);
                }
                return ReadInt(v, f, 0, 65535, &config.fast_path.port);
              });
        }
        // resources: a map from name to resource.
        return ForEachEntry(value, field,
                            [&](const std::string& name, const YAML::Node& body,
                                const YAML::Node&) -> absl::Status {
                              ResourceConfig r;
                              r.name = name;
                              absl::Status s =
                                  ParseResource(body, Join(field, name), &r);
                              if (s.ok())
                                config.resources.push_back(std::move(r));
                              return s;
                            });
      });
  if (!status.ok()) return status;
  status = ValidateServerConfig(config);
  if (!status.ok()) return status;
  return config;
}

absl::StatusOr<ServerConfig> LoadServerConfigFile(const std::string& path) {
  return LoadConfigFile<ServerConfig>(
      path, [](std::string_view text) { return ParseServerConfig(text); });
}

}  // namespace sluice
