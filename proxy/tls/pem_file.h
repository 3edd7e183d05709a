#ifndef SLUICE_PROXY_TLS_PEM_FILE_H_
#define SLUICE_PROXY_TLS_PEM_FILE_H_

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sluice {

// File access for certificates and keys. Every error message starts with
// the path. Thread-safe (each call opens its own descriptor).

// Whether a file holds a secret: a secret must not be readable by group or
// others.
enum class FileSecrecy { kPublic, kSecret };

// Reads the regular file at `path` (at most `max_bytes`). It is opened
// without blocking (a FIFO is refused, never waited on) and checked with
// fstat on the opened descriptor, so the mode checked is the mode of the
// file read. For kSecret, a file readable by group or others is refused
// with PermissionDenied. Codes: NotFound, PermissionDenied,
// InvalidArgument (not a regular file, too large), DataLoss (read failed).
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          FileSecrecy secrecy,
                                          size_t max_bytes = 1 << 20);

// Creates `path` with `mode` (O_CREAT|O_EXCL, so the mode applies from the
// first byte and an existing file or symlink is never overwritten), writes
// `data` and fsyncs it. AlreadyExists when the path exists. On a failure
// after creation the partial file is removed.
absl::Status WriteNewFile(const std::string& path, std::string_view data,
                          mode_t mode);

// Writes `data` to a new temporary file beside `path` with `mode`, then
// renames it over `path`, so a reader sees the old or the new file whole.
absl::Status ReplaceFile(const std::string& path, std::string_view data,
                         mode_t mode);

}  // namespace sluice

#endif  // SLUICE_PROXY_TLS_PEM_FILE_H_
