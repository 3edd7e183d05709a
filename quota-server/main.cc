// sluice-quota-server: owns each API's global limit and leases tokens to
// the sluice-proxy sidecars.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <string>

#include "common/config/cli_args.h"
#include "common/sys/process_setup.h"
#include "quota-server/config/server_config.h"
#include "quota-server/server/quota_app.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

namespace {

constexpr char kUsage[] =
    "usage: sluice-quota-server [--config FILE] [--check-config] [--help] "
    "[--version]\n"
    "\n"
    "Leases batches of tokens to sluice-proxy sidecars so the fleet stays\n"
    "within each API's global limit (see docs/leasing.md).\n"
    "\n"
    "  --config FILE    YAML configuration (default: embedded defaults,\n"
    "                   gRPC on 127.0.0.1:7070, admin on 127.0.0.1:9902,\n"
    "                   one demo resource)\n"
    "  --check-config   validate the configuration and exit (0 = valid)\n"
    "  --help           show this help\n"
    "  --version        print the version\n";

// Embedded defaults: one demo resource, so the binary does something
// useful with no file.
constexpr char kDefaultConfig[] = R"YAML(
resources:
  demo:
    rate: 20
    period: 1s
    burst: 10
)YAML";

}  // namespace

int main(int argc, char** argv) {
  sluice::ConfigureProcess();
  sluice::QuotaApp::BlockSignals();
  const sluice::CliArgs args = sluice::ParseCliArgs(
      argc, argv, "sluice-quota-server", SLUICE_VERSION, kUsage);
  if (args.exit_code) return sluice::FinishCliArgs(args);
  const std::string& config_path = args.config_path;
  auto logger = spdlog::stderr_logger_mt("sluice");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");

  absl::StatusOr<sluice::ServerConfig> config =
      config_path.empty() ? sluice::ParseServerConfig(kDefaultConfig)
                          : sluice::LoadServerConfigFile(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "sluice-quota-server: invalid config %s: %s\n",
                 config_path.c_str(),
                 std::string(config.status().message()).c_str());
    return 1;
  }
  auto app = sluice::QuotaApp::Create(*std::move(config), config_path);
  if (!app.ok()) {
    std::fprintf(stderr, "sluice-quota-server: invalid config %s: %s\n",
                 config_path.c_str(),
                 std::string(app.status().message()).c_str());
    return 1;
  }
  if (args.check_only) {
    std::printf("sluice-quota-server: config %s is valid\n",
                config_path.empty() ? "(defaults)" : config_path.c_str());
    return 0;
  }
  if (absl::Status s = (*app)->Start(); !s.ok()) {
    std::fprintf(stderr, "sluice-quota-server: %s\n",
                 std::string(s.message()).c_str());
    return 1;
  }
  return (*app)->Run();
}
