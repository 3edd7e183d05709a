#include "common/config/config_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

absl::Status FromErrno(int err, const std::string& path, const char* doing) {
  const std::string why =
      absl::StrCat(path, ": cannot ", doing, " (", std::strerror(err), ")");
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(why);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(why);
    case ELOOP:
    case ENAMETOOLONG:
      return absl::InvalidArgumentError(why);
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      return absl::ResourceExhaustedError(why);
    default:
      return absl::DataLossError(why);
  }
}

// Closes the descriptor on every way out.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

absl::StatusOr<std::string> ReadConfigFile(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("empty config path");
  // O_NONBLOCK: a FIFO or a device must not hang the start; it is refused
  // below as not a regular file.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) return FromErrno(errno, path, "open the config file");
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return FromErrno(errno, path, "read the config file");
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the config must be a regular file"));
  }
  if (static_cast<size_t>(st.st_size) > kMaxConfigFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the config file is larger than ",
                     kMaxConfigFileBytes >> 20, " MiB"));
  }
  std::string text;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return FromErrno(errno, path, "read the config file");
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxConfigFileBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": the config file is larger than ",
                       kMaxConfigFileBytes >> 20, " MiB"));
    }
  }
  return text;
}

}  // namespace sluice
