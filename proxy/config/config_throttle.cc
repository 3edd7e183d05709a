#include "proxy/config/config_throttle.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/config/config_yaml.h"
#include "common/pause/pause_config.h"
#include "common/time/duration.h"
#include "proxy/config/config_yaml.h"

namespace sluice {
namespace {

using config_yaml::FieldError;
using config_yaml::ForEachField;
using config_yaml::ForEachItem;
using config_yaml::Got;
using config_yaml::ReadBool;
using config_yaml::ReadDuration;
using config_yaml::ReadHeaderName;
using config_yaml::ReadInt;
using config_yaml::ReadString;

constexpr Duration kMaxJitter = std::chrono::seconds(60);
constexpr Duration kMaxLimitWindow = std::chrono::hours(24);

absl::Status ReadStatuses(const YAML::Node& node, absl::string_view path,
                          std::vector<int>* out) {
  out->clear();
  return ForEachItem(node, path,
                     [&](const YAML::Node& item, const std::string& p) {
                       int status = 0;
                       absl::Status s = ReadInt(item, p, 100, 599, &status);
                       if (s.ok()) out->push_back(status);
                       return s;
                     });
}

absl::Status ReadIgnoreRule(const YAML::Node& node, absl::string_view path,
                            ThrottleIgnoreRule* rule) {
  if (!node.IsMap()) {
    return FieldError(path, node,
                      absl::StrCat("must be a map of status, header, value, "
                                   "body (got ",
                                   Got(node), ")"));
  }
  absl::Status status = ForEachField(
      node, path, {"status", "header", "value", "body"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) -> absl::Status {
        if (key == "status")
          return ReadInt(value, field, 100, 599, &rule->status);
        if (key == "header") {
          return ReadHeaderName(value, field, false, &rule->header);
        }
        std::string* text = key == "value" ? &rule->value : &rule->body;
        absl::Status s = ReadString(value, field, text);
        if (s.ok() && !config_yaml::IsCleanUtf8(*text)) {
          return FieldError(field, value, "must be printable UTF-8");
        }
        return s;
      });
  if (!status.ok()) return status;
  if (!rule->value.empty() && rule->header.empty()) {
    return FieldError(absl::StrCat(path, ".value"), node,
                      "needs `header` (the value is matched in that header)");
  }
  if (rule->status == 0 && rule->header.empty() && rule->body.empty()) {
    return FieldError(path, node,
                      "must set `status`, `header` or `body` (an empty rule "
                      "would ignore every throttle)");
  }
  return absl::OkStatus();
}

// A body marker longer than the bytes read ahead could never match.
absl::Status CheckBodyMarkers(const YAML::Node& node, absl::string_view path,
                              const ThrottleConfig& config) {
  for (size_t i = 0; i < config.ignore.size(); ++i) {
    const std::string& body = config.ignore[i].body;
    if (body.size() <= config.body_peek_bytes) continue;
    YAML::Node where = node;  // the marker itself when it can be found
    const YAML::Node list = node["ignore"];
    if (list && list.IsSequence() && i < list.size() && list[i].IsMap()) {
      if (const YAML::Node field = list[i]["body"]) where = field;
    }
    return FieldError(
        absl::StrCat(path, ".ignore[", i, "].body"), where,
        absl::StrCat("is ", body.size(),
                     " bytes, longer than body_peek_bytes (",
                     config.body_peek_bytes, "): it could never match"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseThrottleConfig(const YAML::Node& node, absl::string_view path,
                                 ThrottleConfig* out) {
  if (node.IsScalar()) {
    bool on = true;
    absl::Status s = ReadBool(node, path, &on);
    if (!s.ok()) return s;
    out->enabled = on;
    return absl::OkStatus();
  }
  absl::Status status = ForEachField(
      node, path,
      {"enabled", "statuses", "when_exhausted", "reset_style", "broadcast",
       "resume_jitter", "ignore", "body_peek_bytes", "pause", "limit_window"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) -> absl::Status {
        if (key == "enabled") return ReadBool(value, field, &out->enabled);
        if (key == "statuses")
          return ReadStatuses(value, field, &out->statuses);
        if (key == "when_exhausted") {
          return ReadStatuses(value, field, &out->when_exhausted);
        }
        if (key == "broadcast") return ReadBool(value, field, &out->broadcast);
        if (key == "resume_jitter") {
          absl::Status s =
              ReadDuration(value, field, true, &out->resume_jitter);
          if (s.ok() && out->resume_jitter > kMaxJitter) {
            return FieldError(field, value, "must be at most 1m");
          }
          return s;
        }
        if (key == "pause") return ReadPauseOptions(value, field, &out->pause);
        if (key == "limit_window") {
          Duration w{};
          absl::Status s = ReadDuration(value, field, false, &w);
          if (s.ok() && w > kMaxLimitWindow) {
            return FieldError(field, value, "must be at most 24h");
          }
          out->limit_window = w;
          return s;
        }
        if (key == "body_peek_bytes") {
          return ReadInt(value, field, 1, ThrottleConfig::kMaxBodyPeekBytes,
                         &out->body_peek_bytes);
        }
        if (key == "ignore") {
          out->ignore.clear();
          return ForEachItem(
              value, field, [&](const YAML::Node& item, const std::string& p) {
                return ReadIgnoreRule(item, p, &out->ignore.emplace_back());
              });
        }
        std::string style;
        absl::Status s = ReadString(value, field, &style);
        if (!s.ok()) return s;
        if (style == "auto") {
          out->reset_style = ResetStyle::kAuto;
        } else if (style == "epoch") {
          out->reset_style = ResetStyle::kEpochSeconds;
        } else if (style == "delta") {
          out->reset_style = ResetStyle::kDeltaSeconds;
        } else {
          return FieldError(field, value,
                            absl::StrCat("must be auto, epoch or delta (got ",
                                         Got(value), ")"));
        }
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return CheckBodyMarkers(node, path, *out);
}

void EmitThrottleConfig(YAML::Emitter& out, const ThrottleConfig& t) {
  auto statuses = [&](const char* key, const std::vector<int>& list) {
    out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (int s : list) out << s;
    out << YAML::EndSeq;
  };
  out << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << t.enabled;
  statuses("statuses", t.statuses);
  statuses("when_exhausted", t.when_exhausted);
  out << YAML::Key << "reset_style" << YAML::Value
      << (t.reset_style == ResetStyle::kEpochSeconds   ? "epoch"
          : t.reset_style == ResetStyle::kDeltaSeconds ? "delta"
                                                       : "auto");
  out << YAML::Key << "broadcast" << YAML::Value << t.broadcast;
  out << YAML::Key << "resume_jitter" << YAML::Value
      << FormatDuration(t.resume_jitter);
  if (t.limit_window) {
    out << YAML::Key << "limit_window" << YAML::Value
        << FormatDuration(*t.limit_window);
  }
  out << YAML::Key << "ignore" << YAML::Value << YAML::BeginSeq;
  for (const ThrottleIgnoreRule& r : t.ignore) {
    out << YAML::Flow << YAML::BeginMap;
    if (r.status != 0) out << YAML::Key << "status" << YAML::Value << r.status;
    if (!r.header.empty()) {
      out << YAML::Key << "header" << YAML::Value << r.header;
    }
    if (!r.value.empty()) {
      out << YAML::Key << "value" << YAML::Value << YAML::DoubleQuoted
          << r.value;
    }
    if (!r.body.empty()) {
      out << YAML::Key << "body" << YAML::Value << YAML::DoubleQuoted << r.body;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "body_peek_bytes" << YAML::Value << t.body_peek_bytes;
  const PauseSchedule::Options& p = t.pause;
  out << YAML::Key << "pause" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "default" << YAML::Value
      << FormatDuration(p.default_pause);
  out << YAML::Key << "max" << YAML::Value << FormatDuration(p.max_pause);
  out << YAML::Key << "backoff" << YAML::Value << p.backoff_factor;
  out << YAML::Key << "probe_timeout" << YAML::Value
      << FormatDuration(p.probe_timeout);
  out << YAML::Key << "ramp" << YAML::Value << FormatDuration(p.ramp);
  out << YAML::Key << "ramp_start" << YAML::Value << p.ramp_start;
  out << YAML::EndMap;
  out << YAML::EndMap;
}

}  // namespace sluice
