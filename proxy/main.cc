// sluice-proxy: a sidecar HTTP forward proxy that paces outbound API calls.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>

#include "common/config/cli_args.h"
#include "common/sys/process_setup.h"
#include "common/time/clock.h"
#include "proxy/app/ca_command.h"
#include "proxy/app/proxy_app.h"
#include "proxy/config/config_loader.h"

namespace {

constexpr char kUsage[] =
    "usage: sluice-proxy [--config FILE] [--check-config] [--help] "
    "[--version]\n"
    "       sluice-proxy ca init --out DIR | ca bundle --dir DIR\n"
    "\n"
    "A sidecar HTTP/1.1 forward proxy that rate-limits outbound API calls.\n"
    "Point apps at it with http_proxy/HTTPS_PROXY (see README.md).\n"
    "\n"
    "  --config FILE    YAML configuration (default: embedded defaults,\n"
    "                   listening on 127.0.0.1:3128 and [::1]:3128)\n"
    "  --check-config   validate the configuration and exit (0 = valid)\n"
    "  --help           show this help\n"
    "  --version        print the version\n"
    "  ca ...           the CA of HTTPS interception (sluice-proxy ca "
    "--help)\n";

}  // namespace

int main(int argc, char** argv) {
  sluice::ConfigureProcess();
  if (argc >= 2 && std::string_view(argv[1]) == "ca") {
    std::string out, err;
    const int code = sluice::RunCaCommand(
        argc - 2, argv + 2, sluice::SystemClock::Get(), &out, &err);
    std::fputs(out.c_str(), stdout);
    std::fputs(err.c_str(), code == 0 ? stdout : stderr);
    return code;
  }
  const sluice::CliArgs args = sluice::ParseCliArgs(
      argc, argv, "sluice-proxy", sluice::ProxyVersion(), kUsage);
  if (args.exit_code) return sluice::FinishCliArgs(args);
  const std::string& config_path = args.config_path;

  auto logger = spdlog::stderr_logger_mt("sluice");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");

  absl::StatusOr<sluice::ProxyConfig> config =
      config_path.empty() ? sluice::DefaultProxyConfig()
                          : sluice::LoadProxyConfigFromFile(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "sluice-proxy: invalid config %s: %s\n",
                 config_path.c_str(),
                 std::string(config.status().message()).c_str());
    return 1;
  }
  auto app =
      sluice::ProxyApp::Create(*std::move(config), sluice::SystemClock::Get());
  if (!app.ok()) {
    std::fprintf(stderr, "sluice-proxy: invalid config %s: %s\n",
                 config_path.c_str(),
                 std::string(app.status().message()).c_str());
    return 1;
  }
  if (args.check_only) {
    std::printf("sluice-proxy: config %s is valid\n",
                config_path.empty() ? "(defaults)" : config_path.c_str());
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);
  if (auto st = (*app)->Bind(); !st.ok()) {
    std::fprintf(stderr, "sluice-proxy: %s\n",
                 std::string(st.message()).c_str());
    return 1;
  }
  return (*app)->Run();
}
