#ifndef SLUICE_COMMON_CONFIG_CONFIG_FILE_H_
#define SLUICE_COMMON_CONFIG_CONFIG_FILE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace sluice {

// Both binaries read their config file here, so a missing or unreadable
// file gets the same answer from each.
//
// Reads the whole file at `path`. Every error starts with the path and
// says what went wrong:
//   NotFound           no such file (or a directory on the way is missing)
//   PermissionDenied   not readable by this process
//   InvalidArgument    not a regular file (a directory, a FIFO such as
//                      /dev/stdin or a shell's <(...): a config is a file),
//                      larger than kMaxConfigFileBytes, a symlink loop or
//                      an overlong name
//   ResourceExhausted  the process is out of descriptors or memory
//   DataLoss           the read failed part-way
// Thread-safe.
inline constexpr size_t kMaxConfigFileBytes = 4 << 20;
absl::StatusOr<std::string> ReadConfigFile(const std::string& path);

// Reads `path` and parses its text with `parse`; a parse error keeps its
// code and gets the path in front ("/etc/sluice.yaml: rate_limits.x.rate:
// must be > 0").
template <typename Config>
absl::StatusOr<Config> LoadConfigFile(
    const std::string& path,
    absl::FunctionRef<absl::StatusOr<Config>(std::string_view)> parse) {
  absl::StatusOr<std::string> text = ReadConfigFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<Config> config = parse(*text);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        path + ": " + std::string(config.status().message()));
  }
  return config;
}

}  // namespace sluice

#endif  // SLUICE_COMMON_CONFIG_CONFIG_FILE_H_
