#include "common/config/config_yaml.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "common/time/duration.h"

namespace sluice {
namespace config_yaml {

std::string Where(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null() || node.IsNull()) return "";
  return absl::StrCat(" (line ", mark.line + 1, ", column ", mark.column + 1,
                      ")");
}

absl::Status FieldError(absl::string_view path, const YAML::Node& node,
                        absl::string_view reason) {
  return absl::InvalidArgumentError(
      absl::StrCat(path.empty() ? "config" : path, ": ", reason, Where(node)));
}

std::string Got(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      std::string s = node.Scalar();
      constexpr size_t kMaxShown = 60;
      bool cut = s.size() > kMaxShown;
      if (cut) s.resize(kMaxShown);
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
  if (path.empty()) return std::string(key);
  return absl::StrCat(path, ".", key);
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

bool IsValidName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
        c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

absl::Status ReadNumber(const YAML::Node& node, absl::string_view path,
                        double min, bool min_exclusive, double* out) {
  double value = 0;
  bool ok = node.IsScalar() && absl::SimpleAtod(node.Scalar(), &value) &&
            std::isfinite(value) && value <= kMaxTokens &&
            (min_exclusive ? value > min : value >= min);
  if (!ok) {
    return FieldError(
        path, node,
        absl::StrCat("must be a number ", min_exclusive ? "> " : ">= ", min,
                     " and <= 1e12 (got ", Got(node), ")"));
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status ReadDuration(const YAML::Node& node, absl::string_view path,
                          bool allow_zero, Duration* out) {
  if (!node.IsScalar()) {
    return FieldError(path, node,
                      absl::StrCat("must be a duration such as 250ms, 10s or "
                                   "1m (got ",
                                   Got(node), ")"));
  }
  absl::StatusOr<Duration> parsed = ParseConfigDuration(node.Scalar());
  if (!parsed.ok()) {
    return FieldError(path, node,
                      absl::StrCat("bad duration ", Got(node), ": ",
                                   parsed.status().message()));
  }
  if (!allow_zero && *parsed <= Duration::zero()) {
    return FieldError(path, node, "must be > 0");
  }
  if (*parsed > kMaxDuration) {
    return FieldError(path, node, "must be at most 8760h (one year)");
  }
  *out = *parsed;
  return absl::OkStatus();
}

}  // namespace config_yaml
}  // namespace sluice
