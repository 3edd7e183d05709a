#include "quota-server/server/quota_app.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/admin/admin_server.h"
#include "common/net/listen_address.h"
#include "quota-server/server/quota_metrics.h"
#include "quota-server/server/quota_service.h"
#include "quota-server/server/status_page.h"

namespace sluice {

namespace {

constexpr auto kTickInterval = std::chrono::milliseconds(50);
constexpr auto kWatchInterval = std::chrono::seconds(1);
constexpr auto kShutdownGrace = std::chrono::seconds(2);

uint64_t RandomEpoch() {
  std::random_device rd;
  const uint64_t e = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return e == 0 ? 1 : e;
}

// Modification stamp of a file; nullopt if it cannot be read.
std::optional<std::pair<int64_t, int64_t>> FileStamp(const std::string& path) {
  struct stat st {};
  if (path.empty() || stat(path.c_str(), &st) != 0) return std::nullopt;
  return std::make_pair(
      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
      static_cast<int64_t>(st.st_size));
}

AdminResponse Text(unsigned status, std::string body) {
  AdminResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace

struct QuotaApp::Impl {
  Impl(ServerConfig cfg, std::string path, Clock* clk)
      : config(std::move(cfg)),
        config_path(std::move(path)),
        clock(clk),
        allocator(config, RandomEpoch(), clock->Now(), clock->WallNow()),
        service(&allocator, clock) {}

  // gRPC's deadline for finishing the streams at shutdown. gRPC waits on
  // real time, so this is a real wall time whatever clock the app runs on.
  static std::chrono::system_clock::time_point ShutdownDeadline() {
    return absl::ToChronoTime(SystemClock::Get()->WallNow() +
                              absl::FromChrono(kShutdownGrace));
  }

  QuotaAllocator::Status Snapshot() {
    QuotaAllocator::Status snap;
    service.WithAllocator(
        [&](QuotaAllocator& a, Outbox*) { snap = a.Snapshot(clock->Now()); });
    return snap;
  }

  AdminHandlers Handlers();
  AdminResponse SetLimitRoute(const AdminRequest& req);

  ServerConfig config;
  const std::string config_path;
  Clock* const clock;
  QuotaAllocator allocator;
  QuotaService service;
  QuotaMetrics metrics;
  std::unique_ptr<grpc::Server> grpc_server;
  int grpc_port = 0;
  // Stopped after the gRPC server (QuotaApp's destructor, Run).
  std::unique_ptr<FastPathServer> fast_path;
  boost::asio::io_context admin_io{1};
  std::optional<
      boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
      admin_work;
  std::thread admin_thread;
  std::unique_ptr<AdminServer> admin;
  std::optional<std::pair<int64_t, int64_t>> file_stamp;
};

AdminHandlers QuotaApp::Impl::Handlers() {
  AdminHandlers h;
  h.metrics = [this] {
    const QuotaAllocator::Status snap = Snapshot();
    const auto& c = service.counters();
    metrics.Update(snap, c.streams_opened.load(), c.messages_in.load(),
                   c.messages_out.load(), c.streams_rejected.load());
    metrics.UpdateFastPath(
        fast_path ? fast_path->stats() : FastPathServer::Stats{},
        snap.duplicate_reports, snap.stale_reports);
    return metrics.Serialize();
  };
  h.ready = [] { return true; };
  h.ready_detail = [this] {
    std::string out;
    for (const auto& r : Snapshot().resources) {
      absl::StrAppend(&out, r.name,
                      r.learning ? ": learning\n" : ": serving\n");
    }
    return out;
  };
  h.get_routes["/status"] = [this](const AdminRequest&) {
    AdminResponse r;
    r.content_type = "application/json";
    r.body = StatusJson(Snapshot());
    return r;
  };
  h.get_routes["/"] = [](const AdminRequest&) {
    AdminResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.body = StatusPageHtml();
    return r;
  };
  h.post_prefix_routes["/limits/"] = [this](const AdminRequest& req) {
    return SetLimitRoute(req);
  };
  return h;
}

// POST /limits/<resource>?rate=<tokens per second>[&burst=<tokens>]
AdminResponse QuotaApp::Impl::SetLimitRoute(const AdminRequest& req) {
  const std::string name = req.path.substr(std::string("/limits/").size());
  auto rate_it = req.query.find("rate");
  double rate = 0;
  if (rate_it == req.query.end() || !absl::SimpleAtod(rate_it->second, &rate)) {
    return Text(400,
                "usage: POST /limits/<resource>?rate=<tokens per second>"
                "[&burst=<tokens>]\n");
  }
  double burst = -1;  // keep the current burst
  if (auto it = req.query.find("burst"); it != req.query.end()) {
    if (!absl::SimpleAtod(it->second, &burst)) {
      return Text(400, "burst: not a number\n");
    }
  }
  absl::Status status;
  service.WithAllocator([&](QuotaAllocator& a, Outbox*) {
    double b = burst;
    if (b < 0) {
      b = 1;
      for (const auto& r : a.Snapshot(clock->Now()).resources) {
        if (r.name == name) b = r.burst;
      }
    }
    status = a.SetLimit(name, rate, b, clock->Now());
  });
  if (absl::IsNotFound(status))
    return Text(404, std::string(status.message()) + "\n");
  if (!status.ok()) return Text(400, std::string(status.message()) + "\n");
  metrics.CountLimitChange();
  spdlog::info("limit of {} set to {}/s by the admin endpoint", name, rate);
  return Text(200, absl::StrCat("ok: ", name, " rate ", rate, "/s\n"));
}

absl::StatusOr<std::unique_ptr<QuotaApp>> QuotaApp::Create(
    ServerConfig config, std::string config_path, Clock* clock) {
  if (absl::Status s = ValidateServerConfig(config); !s.ok()) return s;
  return std::unique_ptr<QuotaApp>(new QuotaApp(std::make_unique<Impl>(
      std::move(config), std::move(config_path), clock)));
}

QuotaApp::QuotaApp(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

QuotaApp::~QuotaApp() {
  Impl& m = *impl_;
  if (m.admin) m.admin->Stop();
  m.admin_work.reset();
  m.admin_io.stop();
  if (m.admin_thread.joinable()) m.admin_thread.join();
  if (m.grpc_server) {
    m.service.FinishAll();
    m.grpc_server->Shutdown(m.ShutdownDeadline());
  }
  m.service.SetFastPath(nullptr);
  m.fast_path.reset();
}

void QuotaApp::BlockSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

absl::Status QuotaApp::Start() {
  Impl& m = *impl_;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(m.config.listen, grpc::InsecureServerCredentials(),
                           &m.grpc_port);
  builder.RegisterService(&m.service);
  builder.SetMaxReceiveMessageSize(64 * 1024);
  // Find dead sidecars within ~15 s, and let live ones ping us as often.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  m.grpc_server = builder.BuildAndStart();
  if (!m.grpc_server || m.grpc_port == 0) {
    return absl::UnavailableError(
        absl::StrCat("listen ", m.config.listen, ": cannot bind"));
  }
  const std::string listen_host =
      m.config.listen.substr(0, m.config.listen.rfind(':'));
  if (absl::Status s = StartFastPath(listen_host); !s.ok()) return s;
  std::string admin_where = "off";
  if (!m.config.admin_listen.empty() && m.config.admin_listen != "off") {
    auto addr = ParseListenAddress(m.config.admin_listen);
    if (!addr.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("admin_listen: ", addr.status().message()));
    }
    auto admin =
        AdminServer::Start(m.admin_io, addr->host, addr->port, m.Handlers());
    if (!admin.ok()) return admin.status();
    m.admin = *std::move(admin);
    admin_where = ListenAddress{addr->host, m.admin->port()}.ToString();
    m.admin_work.emplace(m.admin_io.get_executor());
    m.admin_thread = std::thread([&m] { m.admin_io.run(); });
  }
  m.file_stamp = FileStamp(m.config_path);
  const std::string fast_where =
      m.fast_path ? absl::StrCat(m.fast_path->port()) : std::string("off");
  std::fprintf(stderr,
               "sluice-quota-server listening grpc=%s:%d admin=%s "
               "fast_path_udp=%s\n",
               listen_host.c_str(), m.grpc_port, admin_where.c_str(),
               fast_where.c_str());
  std::fflush(stderr);
  return absl::OkStatus();
}

absl::Status QuotaApp::StartFastPath(const std::string& host) {
  Impl& m = *impl_;
  const FastPathConfig& fc = m.config.fast_path;
  if (!fc.enabled) return absl::OkStatus();
  auto handler = [&m](uint64_t stream, const sluice::v1::SidecarMessage& msg) {
    m.service.OnFastPathMessage(stream, msg);
  };
  const uint16_t port =
      fc.port != 0 ? fc.port : static_cast<uint16_t>(m.grpc_port);
  auto fp = FastPathServer::Start(host, port, handler, fc.leases);
  if (!fp.ok() && fc.port == 0) {
    spdlog::warn("{}; the fast path takes any free UDP port instead",
                 std::string(fp.status().message()));
    fp = FastPathServer::Start(host, 0, handler, fc.leases);
  }
  if (!fp.ok()) {
    return absl::Status(
        fp.status().code(),
        absl::StrCat("fast_path.port: ", fp.status().message()));
  }
  m.fast_path = *std::move(fp);
  m.service.SetFastPath(m.fast_path.get());
  return absl::OkStatus();
}

absl::Status QuotaApp::Reload() {
  Impl& m = *impl_;
  if (m.config_path.empty()) {
    return absl::FailedPreconditionError("no config file to reload");
  }
  m.file_stamp = FileStamp(m.config_path);
  absl::StatusOr<ServerConfig> next = LoadServerConfigFile(m.config_path);
  absl::Status status = next.status();
  if (status.ok()) {
    if (next->listen != m.config.listen ||
        next->admin_listen != m.config.admin_listen ||
        next->fast_path != m.config.fast_path) {
      spdlog::warn("reload: listen addresses change only on restart");
    }
    m.service.WithAllocator([&](QuotaAllocator& a, Outbox*) {
      status = a.Reconfigure(*next, m.clock->Now());
    });
  }
  m.metrics.CountReload(status.ok());
  if (!status.ok()) {
    spdlog::error("reload of {} failed, keeping the old config: {}",
                  m.config_path, std::string(status.message()));
    return status;
  }
  m.config = *std::move(next);
  spdlog::info("reloaded {}", m.config_path);
  return absl::OkStatus();
}

int QuotaApp::Run() {
  Impl& m = *impl_;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  TimePoint next_watch = m.clock->Now() + kWatchInterval;
  while (true) {
    const auto ns = std::chrono::nanoseconds(kTickInterval).count();
    timespec timeout{0, static_cast<long>(ns)};
    siginfo_t info;
    const int sig = sigtimedwait(&set, &info, &timeout);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("received signal {}, stopping", sig);
      break;
    }
    if (sig == SIGHUP) (void)Reload();
    m.service.Tick();
    if (m.clock->Now() >= next_watch) {
      next_watch = m.clock->Now() + kWatchInterval;
      if (!m.config_path.empty() && FileStamp(m.config_path) != m.file_stamp) {
        (void)Reload();
      }
    }
  }
  m.service.FinishAll();
  m.grpc_server->Shutdown(m.ShutdownDeadline());
  m.grpc_server.reset();
  // The fast path itself goes in the destructor, after the admin listener
  // (whose /metrics reads it).
  m.service.SetFastPath(nullptr);
  return 0;
}

uint16_t QuotaApp::grpc_port() const {
  return static_cast<uint16_t>(impl_->grpc_port);
}
uint16_t QuotaApp::admin_port() const {
  return impl_->admin ? impl_->admin->port() : 0;
}

}  // namespace sluice
