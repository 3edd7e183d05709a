#include "common/pause/pause_config.h"

#include "absl/strings/str_cat.h"
#include "common/config/config_yaml.h"
#include "common/time/duration.h"

namespace sluice {

using config_yaml::FieldError;
using config_yaml::ForEachField;
using config_yaml::ReadDuration;
using config_yaml::ReadNumber;

absl::Status ReadPauseOptions(const YAML::Node& node, absl::string_view path,
                              PauseSchedule::Options* out) {
  absl::Status status = ForEachField(
      node, path,
      {"default", "max", "backoff", "probe_timeout", "ramp", "ramp_start"},
      [&](absl::string_view key, const YAML::Node& value,
          const std::string& field) -> absl::Status {
        if (key == "default") {
          return ReadDuration(value, field, false, &out->default_pause);
        }
        if (key == "max") {
          return ReadDuration(value, field, false, &out->max_pause);
        }
        if (key == "probe_timeout") {
          return ReadDuration(value, field, false, &out->probe_timeout);
        }
        if (key == "ramp") return ReadDuration(value, field, true, &out->ramp);
        if (key == "backoff") {
          absl::Status s =
              ReadNumber(value, field, 1, false, &out->backoff_factor);
          if (s.ok() && out->backoff_factor > 100) {
            return FieldError(field, value, "must be at most 100");
          }
          return s;
        }
        absl::Status s = ReadNumber(value, field, 0, true, &out->ramp_start);
        if (s.ok() && out->ramp_start > 1) {
          return FieldError(field, value, "must be at most 1");
        }
        return s;
      });
  if (!status.ok()) return status;
  return ValidatePauseOptions(*out, path);
}

absl::Status ValidatePauseOptions(const PauseSchedule::Options& options,
                                  absl::string_view path) {
  if (options.default_pause > options.max_pause) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ".default: must be at most max (",
                     FormatDuration(options.default_pause), " > ",
                     FormatDuration(options.max_pause), ")"));
  }
  return absl::OkStatus();
}

}  // namespace sluice
