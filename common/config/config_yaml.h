#ifndef SLUICE_COMMON_CONFIG_CONFIG_YAML_H_
#define SLUICE_COMMON_CONFIG_CONFIG_YAML_H_

// Typed, path-aware readers over yaml-cpp nodes, shared by the config
// loaders of both binaries. Every reader checks the node's shape and value
// and, on failure, returns InvalidArgument "<field path>: <reason> (line L,
// column C)". Field paths look like "rate_limits.openai.rate" and
// "routes[2].limit"; the empty path is the document root and is shown as
// "config". Internal to the config loaders; not a general YAML API.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/time/clock.h"

namespace sluice {
namespace config_yaml {

// " (line L, column C)" for nodes that came from the document. Empty
// values ("key:" with nothing after it) carry the position of whatever
// follows them, which would mislead, so they get no position; the field
// path identifies them.
std::string Where(const YAML::Node& node);

absl::Status FieldError(absl::string_view path, const YAML::Node& node,
                        absl::string_view reason);

// Describes a node for error messages: a quoted scalar or its kind.
std::string Got(const YAML::Node& node);

std::string Join(absl::string_view path, absl::string_view key);

// Calls fn(key, value, key_node) for every entry of a map node, after
// checking that keys are distinct scalars. A null node is an empty map.
template <typename Fn>
absl::Status ForEachEntry(const YAML::Node& node, absl::string_view path,
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
    if (!seen.insert(name).second) {
      return FieldError(Join(path, name), key, "duplicate field");
    }
    absl::Status status = fn(name, it->second, key);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// Like ForEachEntry for a map with a fixed set of fields; any other key is
// an "unknown field" error. fn(key, value, field_path).
template <typename Fn>
absl::Status ForEachField(const YAML::Node& node, absl::string_view path,
                          std::initializer_list<absl::string_view> known,
                          Fn fn) {
  return ForEachEntry(
      node, path,
      [&](const std::string& key, const YAML::Node& value,
          const YAML::Node& key_node) -> absl::Status {
        std::string field = Join(path, key);
        for (absl::string_view k : known) {
          if (k == key) return fn(key, value, field);
        }
        std::vector<absl::string_view> names(known.begin(), known.end());
        return FieldError(field, key_node,
                          absl::StrCat("unknown field (expected one of: ",
                                       absl::StrJoin(names, ", "), ")"));
      });
}

// Calls fn(item, item_path) for each element of a list. Null is empty.
template <typename Fn>
absl::Status ForEachItem(const YAML::Node& node, absl::string_view path,
                         Fn fn) {
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsSequence()) {
    return FieldError(path, node,
                      absl::StrCat("must be a list (got ", Got(node), ")"));
  }
  size_t i = 0;
  for (auto it = node.begin(); it != node.end(); ++it, ++i) {
    absl::Status status = fn(*it, absl::StrCat(path, "[", i, "]"));
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// Reads an integer in [min, max].
template <typename T>
absl::Status ReadInt(const YAML::Node& node, absl::string_view path,
                     uint64_t min, uint64_t max, T* out) {
  uint64_t value = 0;
  if (!node.IsScalar() || !absl::SimpleAtoi(node.Scalar(), &value) ||
      value < min || value > max) {
    return FieldError(path, node,
                      absl::StrCat("must be an integer in ", min, "..", max,
                                   " (got ", Got(node), ")"));
  }
  *out = static_cast<T>(value);
  return absl::OkStatus();
}

// Reads a scalar as a string (any scalar: quoted or not).
absl::Status ReadString(const YAML::Node& node, absl::string_view path,
                        std::string* out);

// Reads true/false (also yes/no, on/off as YAML 1.1 spells them).
absl::Status ReadBool(const YAML::Node& node, absl::string_view path,
                      bool* out);

// Durations are capped so that `now + duration` can never overflow.
inline constexpr Duration kMaxDuration = std::chrono::hours(24 * 365);

// Largest token amount accepted for rate, burst and costs.
inline constexpr double kMaxTokens = 1e12;

// Reads a finite number in [min, kMaxTokens]; when `min_exclusive`, the
// number must be strictly greater than min.
absl::Status ReadNumber(const YAML::Node& node, absl::string_view path,
                        double min, bool min_exclusive, double* out);

// Reads a duration via ParseConfigDuration, at most kMaxDuration and, unless
// `allow_zero`, > 0.
absl::Status ReadDuration(const YAML::Node& node, absl::string_view path,
                          bool allow_zero, Duration* out);

// True for a name of 1..64 letters, digits, '_', '-' or '.' (the names of
// limits and resources).
bool IsValidName(absl::string_view name);

}  // namespace config_yaml
}  // namespace sluice

#endif  // SLUICE_COMMON_CONFIG_CONFIG_YAML_H_
