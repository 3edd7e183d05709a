#include "proxy/app/ca_command.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "proxy/tls/cert_authority.h"

namespace sluice {
namespace {

constexpr char kUsage[] =
    "usage: sluice-proxy ca init --out DIR\n"
    "       sluice-proxy ca bundle --dir DIR\n"
    "\n"
    "  init    write a new CA for HTTPS interception: DIR/ca.pem,\n"
    "          DIR/ca-key.pem (mode 0600; never overwritten) and\n"
    "          DIR/bundle.pem (the system roots, then the CA)\n"
    "  bundle  write DIR/bundle.pem again from the system roots and\n"
    "          DIR/ca.pem\n"
    "\n"
    "Point intercept.ca.cert and intercept.ca.key at the files, and the\n"
    "apps' trust at ca.pem or bundle.pem (docs/https.md).\n";

// The value of the one option `name` the command takes, or "" when the
// arguments are not exactly `name VALUE`.
std::string OnlyOption(int argc, const char* const* argv,
                       std::string_view name) {
  if (argc != 3 || argv[1] != name || std::string_view(argv[2]).empty()) {
    return "";
  }
  return argv[2];
}

}  // namespace

int RunCaCommand(int argc, const char* const* argv, const Clock* clock,
                 std::string* out, std::string* err) {
  const std::string_view verb = argc >= 1 ? argv[0] : "";
  if (verb == "init") {
    const std::string dir = OnlyOption(argc, argv, "--out");
    if (dir.empty()) {
      *err = kUsage;
      return 2;
    }
    // A directory that is not there yet is made, private (the key goes in
    // it); its parent must exist.
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      *err = absl::StrCat("sluice-proxy ca init: cannot create directory ", dir,
                          ": ", std::strerror(errno), "\n");
      return 1;
    }
    if (absl::Status s = CertAuthority::Init(dir, clock); !s.ok()) {
      *err = absl::StrCat("sluice-proxy ca init: ", s.message(), "\n");
      return 1;
    }
    const std::string ca = dir + "/ca.pem";
    const std::string bundle = dir + "/bundle.pem";
    if (absl::Status s = CertAuthority::WriteBundle(ca, bundle); !s.ok()) {
      *err = absl::StrCat(
          "sluice-proxy ca init: the CA is written, the "
          "bundle is not: ",
          s.message(), "\n");
      return 1;
    }
    *out = absl::StrCat("wrote ", ca, ", ", dir, "/ca-key.pem (0600) and ",
                        bundle, "\n");
    return 0;
  }
  if (verb == "bundle") {
    const std::string dir = OnlyOption(argc, argv, "--dir");
    if (dir.empty()) {
      *err = kUsage;
      return 2;
    }
    const std::string bundle = dir + "/bundle.pem";
    if (absl::Status s = CertAuthority::WriteBundle(dir + "/ca.pem", bundle);
        !s.ok()) {
      *err = absl::StrCat("sluice-proxy ca bundle: ", s.message(), "\n");
      return 1;
    }
    *out = absl::StrCat("wrote ", bundle, "\n");
    return 0;
  }
  *err = kUsage;
  return verb == "--help" || verb == "-h" ? 0 : 2;
}

}  // namespace sluice
