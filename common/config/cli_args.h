#ifndef SLUICE_COMMON_CONFIG_CLI_ARGS_H_
#define SLUICE_COMMON_CONFIG_CLI_ARGS_H_

// The command line both binaries take:
//   [--config FILE | --config=FILE] [--check-config] [--help|-h] [--version]

#include <optional>
#include <string>
#include <string_view>

namespace sluice {

struct CliArgs {
  std::string config_path;  // "" = the embedded defaults
  bool check_only = false;  // --check-config
  // Set when the program must stop without running: after --help or
  // --version (0, `output` goes to stdout) or on an unknown argument (2,
  // `output` goes to stderr). See FinishCliArgs.
  std::optional<int> exit_code;
  std::string output;
};

// Parses argv[1..argc). `program` names the binary in messages, `usage` is
// the full help text (ending in a newline).
CliArgs ParseCliArgs(int argc, const char* const* argv,
                     std::string_view program, std::string_view version,
                     std::string_view usage);

// Writes args.output to stdout (exit code 0) or stderr (otherwise) and
// returns *args.exit_code. Only for args with exit_code set.
int FinishCliArgs(const CliArgs& args);

}  // namespace sluice

#endif  // SLUICE_COMMON_CONFIG_CLI_ARGS_H_
