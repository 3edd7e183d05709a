// ParseServerConfig and LoadServerConfigFile: YAML to ServerConfig. Every
// key is checked against the known fields of its map; errors name the field
// path ("resources.openai.rate") and the line.

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/duration.h"
#include "quota-server/server_config.h"

namespace sluice {
namespace {

constexpr double kMaxNumber = 1e12;

absl::Status FieldError(absl::string_view path, const YAML::Node& node,
                        absl::string_view reason) {
  std::string where;
  const YAML::Mark mark = node.Mark();
  if (!mark.is_null() && !node.IsNull()) {
    where = absl::StrCat(" (line ", mark.line + 1, ", column ", mark.column + 1,
                         ")");
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path.empty() ? "config" : path, ": ", reason, where));
}

std::string Got(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      std::string s = node.Scalar();
      const bool cut = s.size() > 60;
      if (cut) s.resize(60);
      return absl::StrCat("\"", absl::CHexEscape(s), cut ? "...\"" : "\"");
    }
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "nothing";
  }
}

std::string Join(absl::string_view path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

// Calls fn(key, value, key_node, path) for each entry of a map (null is
// empty). Keys must be distinct scalars and, unless `known` is empty, one
// of `known`.
template <typename Fn>
absl::Status ForEachField(const YAML::Node& node, absl::string_view path,
                          std::initializer_list<absl::string_view> known,
                          Fn fn) {
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) {
    return FieldError(path, node,
                      absl::StrCat("must be a map (got ", Got(node), ")"));
  }
  std::set<std::string, std::less<>> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      return FieldError(path, key, "keys must be plain strings");
    }
    const std::string& name = key.Scalar();
    const std::string field = Join(path, name);
    if (!seen.insert(name).second) {
      return FieldError(field, key, "duplicate field");
    }
    bool ok = known.size() == 0;
    for (absl::string_view k : known) ok = ok || k == name;
    if (!ok) {
      std::vector<absl::string_view> names(known.begin(), known.end());
      return FieldError(field, key,
                        absl::StrCat("unknown field (expected one of: ",
                                     absl::StrJoin(names, ", "), ")"));
    }
    absl::Status status = fn(name, it->second, key, field);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status ReadString(const YAML::Node& node, absl::string_view path,
                        std::string* out) {
  if (!node.IsScalar()) {
    return FieldError(path, node,
                      absl::StrCat("must be a string (got ", Got(node), ")"));
  }
  *out = node.Scalar();
  return absl::OkStatus();
}

absl::Status ReadBool(const YAML::Node& node, absl::string_view path,
                      bool* out) {
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, *out)) {
    return FieldError(
        path, node,
        absl::StrCat("must be true or false (got ", Got(node), ")"));
  }
  return absl::OkStatus();
}

// A finite number > min (or >= min) and <= 1e12.
absl::Status ReadNumber(const YAML::Node& node, absl::string_view path,
                        double min, bool min_exclusive, double* out) {
  double value = 0;
  if (!node.IsScalar() || !absl::SimpleAtod(node.Scalar(), &value) ||
      !std::isfinite(value)) {
    return FieldError(path, node,
                      absl::StrCat("must be a number (got ", Got(node), ")"));
  }
  if (min_exclusive ? value <= min : value < min) {
    return FieldError(path, node,
                      absl::StrCat("must be ", min_exclusive ? "> " : ">= ",
                                   min, " (got ", Got(node), ")"));
  }
  if (value > kMaxNumber) {
    return FieldError(path, node,
                      absl::StrCat("must be <= 1e12 (got ", Got(node), ")"));
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status ReadDuration(const YAML::Node& node, absl::string_view path,
                          bool allow_zero, Duration* out) {
  if (!node.IsScalar()) {
    return FieldError(path, node,
                      absl::StrCat("must be a duration such as 250ms, 2s or "
                                   "1m (got ",
                                   Got(node), ")"));
  }
  absl::StatusOr<Duration> parsed = ParseConfigDuration(node.Scalar());
  if (!parsed.ok()) {
    return FieldError(path, node, parsed.status().message());
  }
  if (!allow_zero && *parsed <= Duration::zero()) {
    return FieldError(path, node, "must be > 0");
  }
  *out = *parsed;
  return absl::OkStatus();
}

absl::Status ParseLease(const YAML::Node& node, absl::string_view path,
                        LeaseTuning* lease) {
  return ForEachField(
      node, path, {"ttl", "horizon", "refresh", "grace"},
      [&](const std::string& key, const YAML::Node& value, const YAML::Node&,
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
       "lease"},
      [&](const std::string& key, const YAML::Node& value, const YAML::Node&,
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
      root, "", {"listen", "admin_listen", "learning", "resources"},
      [&](const std::string& key, const YAML::Node& value, const YAML::Node&,
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
        // resources: a map from name to resource.
        return ForEachField(
            value, field, {},
            [&](const std::string& name, const YAML::Node& body,
                const YAML::Node&, const std::string& path) -> absl::Status {
              ResourceConfig r;
              r.name = name;
              absl::Status s = ParseResource(body, path, &r);
              if (s.ok()) config.resources.push_back(std::move(r));
              return s;
            });
      });
  if (!status.ok()) return status;
  status = ValidateServerConfig(config);
  if (!status.ok()) return status;
  return config;
}

absl::StatusOr<ServerConfig> LoadServerConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat(path, ": read error"));
  }
  absl::StatusOr<ServerConfig> config = ParseServerConfig(text.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

}  // namespace sluice
