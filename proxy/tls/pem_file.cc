#include "proxy/tls/pem_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sluice {
namespace {

// Closes a descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports the error close() gives (a delayed write error).
  int Close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

absl::Status ErrnoStatus(const std::string& path, absl::string_view what,
                         int err) {
  const std::string message =
      absl::StrCat(path, ": ", what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(path, "write", errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd) != 0) return ErrnoStatus(path, "fsync", errno);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          FileSecrecy secrecy,
                                          size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) return ErrnoStatus(path, "cannot open", errno);
  struct stat st = {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(path, "fstat", errno);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file"));
  }
  if (secrecy == FileSecrecy::kSecret &&
      (st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: private key file is readable by group or others (mode %04o); "
        "make it readable by its owner only (chmod 600)",
        path, st.st_mode & 07777));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": larger than ", max_bytes, " bytes (", st.st_size, ")"));
  }
  std::string data;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::DataLossError(
          absl::StrCat(path, ": read: ", std::strerror(errno)));
    }
    if (n == 0) break;
    data.append(buf.data(), static_cast<size_t>(n));
    if (data.size() > max_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": larger than ", max_bytes, " bytes"));
    }
  }
  return data;
}

absl::Status WriteNewFile(const std::string& path, std::string_view data,
                          mode_t mode) {
  Fd fd(::open(path.c_str(),
               O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (fd.get() < 0) return ErrnoStatus(path, "cannot create", errno);
  absl::Status status = WriteAll(fd.get(), data, path);
  if (status.ok() && fd.Close() != 0) {
    status = ErrnoStatus(path, "close", errno);
  }
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

absl::Status ReplaceFile(const std::string& path, std::string_view data,
                         mode_t mode) {
  std::string tmp = path + ".XXXXXX";
  Fd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(tmp, "cannot create", errno);
  absl::Status status;
  if (::fchmod(fd.get(), mode) != 0) {
    status = ErrnoStatus(tmp, "fchmod", errno);
  }
  if (status.ok()) status = WriteAll(fd.get(), data, tmp);
  if (status.ok() && fd.Close() != 0) status = ErrnoStatus(tmp, "close", errno);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoStatus(path, "rename", errno);
  }
  if (!status.ok()) ::unlink(tmp.c_str());
  return status;
}

}  // namespace sluice
