#include "proxy/app/proxy_app.h"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/admin/admin_server.h"
#include "common/time/duration.h"
#include "proxy/app/limit_factory.h"
#include "proxy/app/pause_wiring.h"
#include "proxy/config/config_loader.h"
#include "proxy/egress/ssrf_guard.h"
#include "proxy/http/host_pattern.h"
#include "proxy/http/router.h"
#include "proxy/lease/lease_agent.h"
#include "proxy/lease/lease_client.h"
#include "proxy/lease/lease_pool.h"
#include "proxy/lease/lease_setup.h"
#include "proxy/lease/leased_keys.h"
#include "proxy/limit/keyed_limiter.h"
#include "proxy/limit/limit_gate.h"
#include "proxy/limit/rate_limiter.h"
#include "proxy/server/server.h"
#include "proxy/server/tls_endpoints.h"
#include "proxy/server/upstream_pool.h"
#include "proxy/stats/access_log.h"
#include "proxy/stats/lease_metrics.h"
#include "proxy/stats/pause_metrics.h"
#include "proxy/stats/proxy_metrics.h"
#include "proxy/stats/tls_metrics.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

namespace sluice {

namespace asio = boost::asio;

std::string_view ProxyVersion() { return SLUICE_VERSION; }

struct ProxyApp::Impl {
  ProxyConfig config;
  Clock* clock = nullptr;
  // Owned through a pointer so the destructor can end every pending
  // session (which touch metrics) while the rest is still alive.
  std::unique_ptr<asio::io_context> io_owner =
      std::make_unique<asio::io_context>();
  asio::io_context& io = *io_owner;
  std::unique_ptr<Router> router;
  std::unique_ptr<SsrfGuard> guard;
  std::unique_ptr<UpstreamPool> pool;
  std::unique_ptr<LimitGate> gate;
  std::unique_ptr<ProxyMetrics> metrics;
  std::unique_ptr<PauseMetrics> pause_metrics;
  std::unique_ptr<LeaseMetrics> lease_metrics;
  std::unique_ptr<TlsMetrics> tls_metrics;
  std::unique_ptr<AccessLog> access_log;
  // HTTPS interception and TLS towards origins (docs/https.md); null when
  // the config asks for neither.
  std::unique_ptr<HostSet> intercept_hosts;
  std::unique_ptr<TlsEndpoints> tls;
  std::vector<std::unique_ptr<LimitRuntime>> limits;
  // Leased mode: the limits that lease their tokens, and the client that
  // feeds their pools (declared after `limits`, so destroyed before them).
  std::vector<const LimitRuntime*> leased;
  std::unique_ptr<LeaseClient> lease_client;
  ProxyContext ctx;
  std::unique_ptr<Server> server;
  std::unique_ptr<AdminServer> admin;
  std::optional<asio::signal_set> signals;
  std::optional<asio::steady_timer> sweep_timer;
  std::optional<asio::steady_timer> drain_timer;
  std::string config_yaml;
  uint16_t proxy_port = 0;
  uint16_t admin_port = 0;
  std::atomic<bool> stopping{false};
  TimePoint drain_deadline{};

  void ScheduleSweep();
  // Builds a LeasePool per leased limit (pools set into `limits`, which
  // must not have limiters yet for those) and the lease client.
  void SetUpLeasing(Clock* clock);
  // Refreshes the lease metrics from the pools and the client (scrape time).
  void RefreshLeaseMetrics();
  // The pause phase and probe count of every unkeyed limit (scrape time).
  void RefreshPauseMetrics();
  // The TLS ends' counters (scrape time).
  void RefreshTlsMetrics();
  // Builds `tls` when the config intercepts hosts or originates TLS.
  absl::Status SetUpTls(Clock* clock);
  std::string LeaseDetail();
  void BeginShutdown();
  void CheckDrained();
};

ProxyApp::ProxyApp() : impl_(std::make_unique<Impl>()) {}
ProxyApp::~ProxyApp() {
  if (!impl_) return;
  Impl& m = *impl_;
  // The lease client's thread posts onto `io` and reads the limiters.
  if (m.lease_client) m.lease_client->Stop();
  m.io.stop();
  m.signals.reset();
  m.sweep_timer.reset();
  m.drain_timer.reset();
  m.admin.reset();
  m.server.reset();
  if (m.pool) m.pool->Clear();
  // Destroys pending handlers (and sessions) while metrics, limiters and
  // the gate still exist.
  m.io_owner.reset();
}

absl::StatusOr<std::unique_ptr<ProxyApp>> ProxyApp::Create(ProxyConfig config,
                                                           Clock* clock) {
  std::unique_ptr<ProxyApp> app(new ProxyApp());
  Impl& m = *app->impl_;
  m.config = std::move(config);
  m.clock = clock;

  std::vector<Cidr> allow;
  for (size_t i = 0; i < m.config.ssrf.allow.size(); ++i) {
    auto c = ParseCidr(m.config.ssrf.allow[i]);
    if (!c.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ssrf.allow[", i, "]: ", std::string(c.status().message())));
    }
    allow.push_back(*c);
  }
  m.guard = std::make_unique<SsrfGuard>(
      std::move(allow), std::vector<std::pair<IpAddress, uint16_t>>{});
  m.router = std::make_unique<Router>(m.config.routes);
  m.pool = std::make_unique<UpstreamPool>(
      UpstreamPool::Options{m.config.limits.pool_max_idle_per_host,
                            m.config.limits.pool_max_idle_total,
                            m.config.timeouts.pool_idle},
      clock);
  m.gate = std::make_unique<LimitGate>(clock);
  m.metrics = std::make_unique<ProxyMetrics>(ProxyVersion());
  m.lease_metrics = std::make_unique<LeaseMetrics>(*m.metrics->registry());
  m.tls_metrics = std::make_unique<TlsMetrics>(*m.metrics->registry());
  if (absl::Status s = m.SetUpTls(clock); !s.ok()) return s;
  auto log = AccessLog::Open(m.config.access_log.enabled,
                             m.config.access_log.path, clock);
  if (!log.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("access_log.path: ", std::string(log.status().message())));
  }
  m.access_log = std::move(*log);

  // One limiter (or keyed set) per configured limit; a leased limit's
  // limiter spends from its LeasePool. Every bucket gets a BucketPause
  // (docs/pause.md) unless the limit's throttle handling is off.
  m.pause_metrics =
      std::make_unique<PauseMetrics>(*m.metrics->registry(), clock);
  LimitFactory::Options lf;
  lf.clock = clock;
  lf.leasing = !m.config.quota.servers.empty();
  lf.pauses.metrics = m.pause_metrics.get();
  {
    asio::io_context* ioc = &m.io;
    LimitGate* g = m.gate.get();
    lf.pauses.shed = [ioc, g](const std::weak_ptr<RateLimiter>& weak) {
      asio::post(*ioc, [g, weak] {
        if (auto limiter = weak.lock()) g->Shed(*limiter);
      });
    };
    // Tokens arriving on the lease client's thread wake that key's queue
    // on the proxy's threads.
    lf.kick = [ioc, g](const std::weak_ptr<RateLimiter>& weak) {
      asio::post(*ioc, [g, weak] {
        if (auto limiter = weak.lock()) g->Kick(*limiter);
      });
    };
    Impl* mp = &m;
    lf.pauses.report = [mp](const std::string& resource,
                            const std::string& key_hash,
                            const BucketPause::Event& event) {
      if (mp->lease_client) {
        mp->lease_client->Send(
            LeaseAgent::EventMessage(resource, key_hash, event));
      }
    };
  }
  const LimitFactory factory(std::move(lf));
  absl::flat_hash_map<std::string, LimitRuntime*> by_name;
  for (const auto& [name, lc] : m.config.rate_limits) {
    m.pause_metrics->RegisterLimit(name);
    m.limits.push_back(factory.Build(lc));
    by_name[name] = m.limits.back().get();
  }
  m.ctx.route_limits.resize(m.config.routes.size(), nullptr);
  for (size_t i = 0; i < m.config.routes.size(); ++i) {
    const auto& r = m.config.routes[i];
    if (r.limit.empty()) continue;
    auto it = by_name.find(r.limit);
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "routes[", i, "].limit: unknown limit \"", r.limit, "\""));
    }
    m.ctx.route_limits[i] = it->second;
  }

  // Every route and limit series exists at 0 before the first request.
  RegisterConfigSeries(*m.metrics, m.config);
  m.SetUpLeasing(clock);
  m.config_yaml = DumpRedactedConfig(m.config);
  m.ctx.config = &m.config;
  m.ctx.clock = clock;
  m.ctx.router = m.router.get();
  m.ctx.guard = m.guard.get();
  m.ctx.pool = m.pool.get();
  m.ctx.gate = m.gate.get();
  m.ctx.metrics = m.metrics.get();
  m.ctx.pause_metrics = m.pause_metrics.get();
  m.ctx.access_log = m.config.access_log.enabled ? m.access_log.get() : nullptr;
  m.ctx.tls = m.tls.get();
  m.ctx.tls_metrics = m.tls_metrics.get();
  m.server = std::make_unique<Server>(m.io, m.ctx);
  return app;
}

absl::Status ProxyApp::Bind() {
  Impl& m = *impl_;
  // Signals first, so a SIGTERM right after the "listening" line is a
  // graceful shutdown rather than the default action.
  m.signals.emplace(m.io, SIGTERM, SIGINT);
  m.signals->async_wait([&m](boost::system::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("received signal {}", sig);
    m.BeginShutdown();
  });
  for (size_t i = 0; i < m.config.listen.size(); ++i) {
    auto ep = m.server->Listen(m.config.listen[i]);
    if (!ep.ok()) {
      return absl::Status(ep.status().code(),
                          absl::StrCat("listen[", i, "]: ",
                                       std::string(ep.status().message())));
    }
    if (i == 0) m.proxy_port = ep->port();
    // Never dial ourselves, whatever the allowlist says.
    const auto a = ep->address();
    m.guard->AddSelf(a.is_v4() ? IpAddress::V4(a.to_v4().to_uint())
                               : IpAddress::V6(a.to_v6().to_bytes()),
                     ep->port());
  }
  std::string admin_text = "off";
  if (m.config.admin.listen) {
    AdminHandlers h;
    h.metrics = [&m] {
      m.metrics->SetPoolIdle(m.pool->idle());
      m.RefreshLeaseMetrics();
      m.RefreshPauseMetrics();
      m.RefreshTlsMetrics();
      return m.metrics->Serialize();
    };
    h.ready = [&m] { return !m.ctx.draining.load(); };
    // Leased mode: readiness stays as it is (each limit serves by its
    // policy when the quota server is away); the detail says which.
    if (!m.leased.empty()) h.ready_detail = [&m] { return m.LeaseDetail(); };
    h.config_yaml = [&m] { return m.config_yaml; };
    auto admin = AdminServer::Start(m.io, m.config.admin.listen->host,
                                    m.config.admin.listen->port, std::move(h));
    if (!admin.ok()) {
      return absl::Status(admin.status().code(),
                          absl::StrCat("admin.listen: ",
                                       std::string(admin.status().message())));
    }
    m.admin = std::move(*admin);
    m.admin_port = m.admin->port();
    boost::system::error_code ec;
    auto admin_ip = asio::ip::make_address(m.config.admin.listen->host, ec);
    if (!ec) {
      m.guard->AddSelf(admin_ip.is_v4()
                           ? IpAddress::V4(admin_ip.to_v4().to_uint())
                           : IpAddress::V6(admin_ip.to_v6().to_bytes()),
                       m.admin_port);
    }
    admin_text =
        ListenAddress{m.config.admin.listen->host, m.admin_port}.ToString();
  }
  std::string first =
      m.config.listen.empty()
          ? "none"
          : ListenAddress{m.config.listen[0].host, m.proxy_port}.ToString();
  std::fprintf(stderr, "sluice-proxy listening proxy=%s admin=%s\n",
               first.c_str(), admin_text.c_str());
  std::fflush(stderr);
  return absl::OkStatus();
}

void ProxyApp::Impl::SetUpLeasing(Clock* clock) {
  std::vector<LeaseBinding> bindings;
  bool per_key = false;
  for (const auto& rt : limits) {
    if (rt->leased_keys) per_key = true;
    if (!rt->lease) continue;
    RateLimiter* limiter = rt->shared.get();
    LimitGate* g = gate.get();
    asio::io_context* ioc = &io;
    // Runs on the lease client's thread: the gate is polled on the proxy's
    // threads, like every other Kick/Poll of this limiter.
    rt->lease->set_on_tokens([ioc, g, limiter] {
      asio::post(*ioc, [g, limiter] { g->Kick(*limiter); });
    });
    bindings.push_back(LeaseBinding{rt->config->resource, "", rt->shared,
                                    rt->lease, rt->shared->pause()});
    leased.push_back(rt.get());
    lease_metrics->RegisterLeasedLimit(rt->config->name);
  }
  for (const auto& rt : limits) {
    if (!rt->leased_keys) continue;
    leased.push_back(rt.get());
    lease_metrics->RegisterLeasedLimit(rt->config->name);
  }
  if (bindings.empty() && !per_key) return;
  auto agent = std::make_unique<LeaseAgent>(
      LeaseAgentOptionsFor(config.quota, CurrentSidecarEnvironment(),
                           ProxyVersion()),
      std::move(bindings));
  LeaseClient::Options o;
  o.servers = config.quota.servers;
  o.backoff_initial = config.quota.backoff_initial;
  o.backoff_max = config.quota.backoff_max;
  o.connect_timeout = config.quota.connect_timeout;
  o.fast_path = config.quota.fast_path;
  lease_client =
      std::make_unique<LeaseClient>(std::move(o), std::move(agent), clock);
  // Per-key limits bind each key's pool when its limiter is created (on a
  // proxy thread, under the key set's lock).
  for (const auto& rt : limits) {
    if (!rt->leased_keys) continue;
    LeaseClient* client = lease_client.get();
    rt->leased_keys->set_lease(
        [client](LeaseBinding b) { client->AddBinding(std::move(b)); },
        [client] { return client->connected(); });
  }
  RefreshLeaseMetrics();
}

absl::Status ProxyApp::Impl::SetUpTls(Clock* clock) {
  const InterceptConfig& ic = config.intercept;
  bool originates = false;
  for (const RouteConfig& r : config.routes) originates |= r.originate_tls;
  if (ic.hosts.empty() && !originates) return absl::OkStatus();
  TlsEndpoints::Options o;
  if (!ic.hosts.empty()) {
    // The intercepted hosts match as route hosts do.
    intercept_hosts = std::make_unique<HostSet>(ic.hosts);
    const HostSet* hosts = intercept_hosts.get();
    o.intercepts = [hosts](std::string_view host) {
      return hosts->Matches(host);
    };
    o.ca_cert = ic.ca_cert;
    o.ca_key = ic.ca_key;
    o.authority.leaf_validity = absl::FromChrono(ic.leaf_validity);
    o.leaves.capacity = ic.leaf_cache;
  }
  o.client = true;
  o.origins.ca_file = config.upstream_tls.ca_bundle;
  o.origins.session_cache_capacity = config.upstream_tls.session_cache;
  o.insecure_skip_verify = config.upstream_tls.insecure_skip_verify;
  for (const std::string& host : o.insecure_skip_verify) {
    spdlog::warn(
        "upstream_tls.insecure_skip_verify: the certificate of {} is NOT "
        "verified; anyone on the path can read and change its traffic",
        host);
  }
  auto tls_ends = TlsEndpoints::Create(std::move(o), clock);
  if (!tls_ends.ok()) return tls_ends.status();
  tls = std::move(*tls_ends);
  return absl::OkStatus();
}

void ProxyApp::Impl::RefreshTlsMetrics() {
  if (!tls) return;
  const TlsEndpoints::Stats s = tls->stats();
  tls_metrics->SetTotals(
      TlsMetrics::Totals{.leaf_hits = s.leaves.hits,
                         .leaf_misses = s.leaves.misses,
                         .leaf_evictions = s.leaves.evictions,
                         .leaf_cache_size = s.leaves.size,
                         .origin_handshakes = s.client.handshakes,
                         .origin_resumed = s.client.resumed,
                         .origin_unverified = s.unverified});
}

void ProxyApp::Impl::RefreshPauseMetrics() {
  const TimePoint now = clock->Now();
  for (const auto& rt : limits) {
    if (!rt->shared || !rt->shared->pause()) continue;
    BucketPause& t = *rt->shared->pause();
    pause_metrics->SetBucketState(rt->config->name, t.stats().probes,
                                  t.PhaseAt(now));
  }
}

void ProxyApp::Impl::RefreshLeaseMetrics() {
  if (!lease_client) return;
  const TimePoint now = clock->Now();
  for (const LimitRuntime* rt : leased) {
    if (rt->leased_keys) {
      const LeasedKeySources::Summary s = rt->leased_keys->Summarize(now);
      lease_metrics->SetLeaseKeys(rt->config->name, s.by_mode, s.held);
      continue;
    }
    lease_metrics->SetLeaseState(rt->config->name, rt->lease->Mode(now),
                                 rt->lease->Held(now));
  }
  const LeaseClient::Stats st = lease_client->stats();
  lease_metrics->SetLeaseStream(LeaseMetrics::LeaseStreamTotals{
      st.connected, st.connects, st.disconnects, st.failed_attempts,
      st.fast_path.up, st.fast_path.in_ok, st.fast_path.in_rejected,
      st.fast_path.out_sent, st.fast_path.out_failed, st.pauses_by_datagram,
      st.pauses_by_stream, st.fast_path.leasing, st.fast_path.demand_sent,
      st.fast_path.grants_in, st.stale_grants, st.aged_grants});
}

std::string ProxyApp::Impl::LeaseDetail() {
  const TimePoint now = clock->Now();
  std::vector<LeaseReadyLine> lines;
  for (const LimitRuntime* rt : leased) {
    LeaseReadyLine line{rt->config->name, rt->config->resource};
    if (rt->leased_keys) {
      const LeasedKeySources::Summary s = rt->leased_keys->Summarize(now);
      line.keys = s.keys;
      line.keys_by_mode = s.by_mode;
    } else {
      line.mode = rt->lease->Mode(now);
    }
    lines.push_back(std::move(line));
  }
  const LeaseClient::Stats st =
      lease_client ? lease_client->stats() : LeaseClient::Stats{};
  return LeaseReadyDetail(st.connected, st.server, lines);
}

void ProxyApp::Impl::ScheduleSweep() {
  sweep_timer->expires_after(std::chrono::seconds(5));
  sweep_timer->async_wait([this](boost::system::error_code ec) {
    if (ec || stopping.load()) return;
    pool->Sweep();
    metrics->SetPoolIdle(pool->idle());
    ScheduleSweep();
  });
}

void ProxyApp::Impl::BeginShutdown() {
  if (ctx.draining.exchange(true)) return;
  spdlog::info("shutdown: draining for up to {}",
               FormatDuration(config.shutdown_grace));
  server->StopAccepting();
  if (admin) {
    // Keep serving /readyz (now 503) until the drain ends.
  }
  drain_deadline = clock->Now() + config.shutdown_grace;
  CheckDrained();
}

void ProxyApp::Impl::CheckDrained() {
  const bool done = ctx.connections.load() == 0;
  const bool expired = clock->Now() >= drain_deadline;
  if (done || expired) {
    if (!done) {
      spdlog::warn("shutdown: grace expired with {} connection(s) open",
                   ctx.connections.load());
      server->CloseAll();
    }
    stopping.store(true);
    // Before io stops: the client's thread posts Kicks onto it.
    if (lease_client) lease_client->Stop();
    if (admin) admin->Stop();
    if (sweep_timer) sweep_timer->cancel();
    if (signals) signals->cancel();
    pool->Clear();
    if (access_log) access_log->Flush();
    io.stop();
    return;
  }
  drain_timer->expires_after(std::chrono::milliseconds(20));
  drain_timer->async_wait([this](boost::system::error_code ec) {
    if (!ec) CheckDrained();
  });
}

int ProxyApp::Run() {
  Impl& m = *impl_;
  m.sweep_timer.emplace(m.io);
  m.drain_timer.emplace(m.io);
  m.ScheduleSweep();
  m.server->Start();
  if (m.lease_client) m.lease_client->Start();
  auto work = asio::make_work_guard(m.io);
  std::vector<std::thread> threads;
  for (int i = 1; i < m.config.workers; ++i) {
    threads.emplace_back([&m] { m.io.run(); });
  }
  m.io.run();
  for (auto& t : threads) t.join();
  return 0;
}

void ProxyApp::Shutdown() {
  asio::post(impl_->io, [this] { impl_->BeginShutdown(); });
}

uint16_t ProxyApp::proxy_port() const { return impl_->proxy_port; }
uint16_t ProxyApp::admin_port() const { return impl_->admin_port; }
const ProxyMetrics& ProxyApp::metrics() const { return *impl_->metrics; }

std::string ProxyApp::MetricsText() {
  impl_->metrics->SetPoolIdle(impl_->pool->idle());
  impl_->RefreshLeaseMetrics();
  return impl_->metrics->Serialize();
}

std::string ProxyApp::ReadyDetail() {
  return impl_->leased.empty() ? std::string() : impl_->LeaseDetail();
}

const LimitRuntime* ProxyApp::FindLimit(std::string_view name) const {
  for (const auto& rt : impl_->limits) {
    if (rt->config->name == name) return rt.get();
  }
  return nullptr;
}

}  // namespace sluice
