#include "common/config/cli_args.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace sluice {
namespace {

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

CliArgs ParseCliArgs(int argc, const char* const* argv,
                     std::string_view program, std::string_view version,
                     std::string_view usage) {
  constexpr std::string_view kConfigEq = "--config=";
  CliArgs args;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      args.exit_code = 0;
      args.output = std::string(usage);
      return args;
    } else if (arg == "--version") {
      args.exit_code = 0;
      args.output = absl::StrCat(Sv(program), " ", Sv(version), "\n");
      return args;
    } else if (arg == "--check-config") {
      args.check_only = true;
    } else if (arg == "--config" && i + 1 < argc) {
      args.config_path = argv[++i];
    } else if (arg.substr(0, kConfigEq.size()) == kConfigEq) {
      args.config_path = std::string(arg.substr(kConfigEq.size()));
    } else {
      args.exit_code = 2;
      args.output = absl::StrCat(Sv(program), ": unknown argument '", Sv(arg),
                                 "'\n\n", Sv(usage));
      return args;
    }
  }
  return args;
}

int FinishCliArgs(const CliArgs& args) {
  const int code = args.exit_code.value_or(0);
  std::FILE* out = code == 0 ? stdout : stderr;
  std::fwrite(args.output.data(), 1, args.output.size(), out);
  return code;
}

}  // namespace sluice
