// The quota server's lease path through gRPC: N client streams (one channel,
// so one TCP connection, each) send a Hello and then DemandReports, while
// their readers drain the grants. By default the server is in this process:
// a grpc::Server on 127.0.0.1 runs QuotaService over a QuotaAllocator (one
// resource whose limit never binds, real SystemClock), and the benchmark
// thread runs the service's Tick every 50 ms, as the server does.
//
// Environment (all optional):
//  - SLUICE_QUOTA_TARGET=host:port: connect to an external server (e.g.
//    sluice-quota-server with a resource `api`) instead; it ticks itself.
//    Then this process holds only the clients, and each measured window is
//    framed by the lines "quota-bench window start streams=N" and
//    "quota-bench window end" on stderr, so a driver can read the server's
//    CPU and counters around it (bench/quota_server_load.py).
//  - SLUICE_QUOTA_STREAMS=8,64: the stream counts to run (default 8,64).
//  - SLUICE_QUOTA_PACE_MS=P: each stream reports once every P ms, its
//    start spread over the period, like a sidecar (default 0: as fast as
//    HTTP/2 flow control lets it). A report whose predecessor is still being
//    written is sent right after it.
//  - SLUICE_QUOTA_WARMUP_S / SLUICE_QUOTA_SECONDS: warm-up (default 0.2)
//    and window (default 1.5) lengths, rounded to whole 50 ms ticks.
//  - SLUICE_QUOTA_DATAGRAMS=1 (external, paced only): lease over the fast
//    path as a sidecar does once welcomed (docs/leasing.md): each stream
//    takes its FastPathOffer, says hello from one UDP socket shared by all
//    streams, and once welcomed sends its reports as signed datagrams; the
//    grants come back as datagrams. Until welcomed a stream uses gRPC.
//
// Every report says the sidecar spent all it held (held = 0) and saw every
// grant received so far (grant_seq_seen = last seq), so the server tops it
// up on each Tick that finds a gap. Per window:
//  - items_per_second: reports the server handled (in process) or the
//    clients sent (external) per wall second;
//  - cpu_us_per_msg: this process's CPU (user + system, all threads) per
//    report. In process it includes the clients, an upper bound for the
//    server alone; external it is the clients' cost only;
//  - grants_per_report: grants the clients received per report.

#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/protocol/fast_path_codec.h"
#include "common/sys/process_setup.h"
#include "common/sys/socket_address.h"
#include "common/time/clock.h"
#include "quota-server/core/quota_allocator.h"
#include "quota-server/server/quota_service.h"
#include "sluice/v1/quota.grpc.pb.h"

namespace sluice {
namespace {

using sluice::v1::ServerMessage;
using sluice::v1::SidecarMessage;

constexpr std::chrono::milliseconds kTickInterval(50);

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

double EnvDouble(const char* name, double fallback) {
  const std::string v = Env(name);
  return v.empty() ? fallback : std::atof(v.c_str());
}

int Ticks(double seconds) {
  return std::max(
      1, static_cast<int>(seconds * 1000 / kTickInterval.count() + 0.5));
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec * 1e-6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

class Sidecar;

// The client end of the fast path for every stream of the benchmark: one
// UDP socket, and a reader that demultiplexes datagrams by token, checks
// their MAC and hands welcomes and grants to their stream.
class DatagramHub {
 public:
  DatagramHub() : fd_(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    // One socket takes what thousands of sidecars' sockets would: a Tick's
    // grants arrive together.
    const int bytes = 8 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
    reader_ = std::thread([this] { Read(); });
  }
  ~DatagramHub() {
    stop_.store(true);
    reader_.join();
    close(fd_);
  }
  // Registers stream `s` under its offer and says hello.
  void Add(Sidecar* s, const sluice::v1::FastPathOffer& offer);
  // Seals `body` for `s` and sends it.
  void Send(Sidecar* s, const sluice::v1::FastPathBody& body);

 private:
  struct Peer {
    Sidecar* sidecar;
    std::string key;
    uint64_t next_seq = 1;
    bool welcomed = false;
  };
  void Read();
  void Hello(uint64_t token, Peer& p, bool welcomed);

  const int fd_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::optional<SocketAddress> server_;           // mu_
  absl::flat_hash_map<uint64_t, Peer> by_token_;  // mu_
  std::thread reader_;
};

// One sidecar stream on the callback API. Unpaced, the write chain sends the
// next report as soon as the previous one was taken by the transport; paced,
// Kick() sends one (or queues one behind a write in progress). The read
// chain drains ServerMessages and remembers the last grant seq.
class Sidecar : public grpc::ClientBidiReactor<SidecarMessage, ServerMessage> {
 public:
  Sidecar(const std::string& target, int index, bool paced,
          std::chrono::milliseconds pace, DatagramHub* hub)
      : paced_(paced), pace_ms_(pace.count()), hub_(hub) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // own connection
    stub_ = sluice::v1::QuotaService::NewStub(grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args));
    auto* hello = out_.mutable_hello();
    hello->set_protocol_version(1);
    hello->set_sidecar_id("sidecar-" + std::to_string(index));
    hello->set_weight(1);
    writing_ = true;
    stub_->async()->Lease(&ctx_, this);
    StartRead(&in_);
    StartWrite(&out_);
    StartCall();
  }

  // Paced mode: send a report now, or right after the write in progress.
  void Kick() {
    if (welcomed_.load(std::memory_order_acquire)) {
      sluice::v1::FastPathBody body;
      FillReport(body.mutable_demand());
      hub_->Send(this, body);
      return;
    }
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
      if (writing_) {
        pending_ = true;
        return;
      }
      writing_ = true;
    }
    WriteReport();
  }

  void Stop() {
    bool finish = false;
    {
      std::lock_guard lock(mu_);
      stop_ = true;
      finish = !writing_ && !writes_done_;
      if (finish) writes_done_ = true;
    }
    if (finish) StartWritesDone();
  }

  void Await() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }

  uint64_t grants() const { return grants_.load(std::memory_order_relaxed); }
  uint64_t reports() const { return reports_.load(std::memory_order_relaxed); }
  uint64_t token() const { return token_; }

  // The hub's reader: a welcome, or a grant that came as a datagram.
  void OnWelcome() { welcomed_.store(true, std::memory_order_release); }
  void OnGrant(const sluice::v1::LeaseGrant& g) {
    uint64_t seen = seq_.load(std::memory_order_relaxed);
    while (g.seq() > seen && !seq_.compare_exchange_weak(
                                 seen, g.seq(), std::memory_order_relaxed)) {
    }
    grants_.fetch_add(1, std::memory_order_relaxed);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return;
    bool next = false;
    bool finish = false;
    {
      std::lock_guard lock(mu_);
      if (stop_) {
        finish = !writes_done_;
        writes_done_ = true;
      } else if (!paced_ || pending_) {
        pending_ = false;
        next = true;
      } else {
        writing_ = false;
      }
    }
    if (finish) StartWritesDone();
    if (next) WriteReport();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (in_.has_fast_path() && hub_ != nullptr && in_.fast_path().leases()) {
      token_ = in_.fast_path().token();
      hub_->Add(this, in_.fast_path());
    }
    if (in_.has_grant()) {
      seq_.store(in_.grant().seq(), std::memory_order_relaxed);
      grants_.fetch_add(1, std::memory_order_relaxed);
    }
    StartRead(&in_);
  }

  void OnDone(const grpc::Status&) override {
    std::lock_guard lock(mu_);
    done_ = true;
    cv_.notify_all();
  }

 private:
  // Spent everything it held: the server tops it up on the next Tick
  // unless grants are still in flight.
  void WriteReport() {
    FillReport(out_.mutable_demand());
    StartWrite(&out_);
  }
  void FillReport(sluice::v1::DemandReport* d) {
    d->mutable_bucket()->set_resource("api");
    d->set_allowed(10);
    d->set_elapsed_ms(paced_ ? pace_ms_ : 100);
    d->set_held(0);
    d->set_grant_seq_seen(seq_.load(std::memory_order_relaxed));
    reports_.fetch_add(1, std::memory_order_relaxed);
  }

  const bool paced_;
  const int64_t pace_ms_;
  DatagramHub* const hub_;  // null: gRPC only
  uint64_t token_ = 0;      // set by the read chain before the hub knows it
  std::atomic<bool> welcomed_{false};
  std::unique_ptr<sluice::v1::QuotaService::Stub> stub_;
  grpc::ClientContext ctx_;
  SidecarMessage out_;  // touched by the write chain only
  ServerMessage in_;    // touched by the read chain only
  std::atomic<uint64_t> seq_{0};
  std::atomic<uint64_t> grants_{0};
  std::atomic<uint64_t> reports_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool writing_ = false;  // a write is outstanding
  bool pending_ = false;  // paced: a report waits for that write
  bool stop_ = false;
  bool writes_done_ = false;  // StartWritesDone called
  bool done_ = false;
};

void DatagramHub::Add(Sidecar* s, const sluice::v1::FastPathOffer& offer) {
  std::lock_guard lock(mu_);
  if (!server_) {
    server_ = SocketAddressOf("127.0.0.1", static_cast<uint16_t>(offer.port()));
  }
  Peer& p = by_token_[offer.token()];
  p = Peer{s, offer.key(), 1, false};
  Hello(offer.token(), p, false);
}

void DatagramHub::Send(Sidecar* s, const sluice::v1::FastPathBody& body) {
  std::lock_guard lock(mu_);
  auto it = by_token_.find(s->token());
  if (it == by_token_.end() || !server_) return;
  const std::string d = SealFastPath(it->second.key, FastPathDirection::kUp,
                                     it->first, it->second.next_seq++, body);
  sendto(fd_, d.data(), d.size(), MSG_DONTWAIT, server_->get(),
         server_->length);
}

void DatagramHub::Hello(uint64_t token, Peer& p, bool welcomed) {
  sluice::v1::FastPathBody hello;
  hello.mutable_hello()->set_welcomed(welcomed);
  const std::string d =
      SealFastPath(p.key, FastPathDirection::kUp, token, p.next_seq++, hello);
  sendto(fd_, d.data(), d.size(), MSG_DONTWAIT, server_->get(),
         server_->length);
}

void DatagramHub::Read() {
  char buf[kFastPathMaxDatagram + 1];
  while (!stop_.load()) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) continue;
    std::optional<FastPathEnvelope> env =
        ParseFastPath(std::string_view(buf, static_cast<size_t>(n)));
    if (!env) continue;
    sluice::v1::FastPathBody body;
    Sidecar* s = nullptr;
    {
      std::lock_guard lock(mu_);
      auto it = by_token_.find(env->token);
      if (it == by_token_.end() ||
          OpenFastPath(it->second.key, FastPathDirection::kDown, *env, &body) !=
              FastPathOpen::kOk) {
        continue;
      }
      s = it->second.sidecar;
      // The first welcome is answered once, as a sidecar does; answering
      // every welcome would ping-pong.
      if (body.has_welcome() && !it->second.welcomed) {
        it->second.welcomed = true;
        Hello(env->token, it->second, true);
      }
    }
    if (body.has_welcome()) s->OnWelcome();
    if (body.has_grant()) s->OnGrant(body.grant());
  }
}

// Kicks each of `sidecars` once per `pace`, stream i at offset i/N of it.
class Pacer {
 public:
  Pacer(std::vector<std::unique_ptr<Sidecar>>* sidecars,
        std::chrono::milliseconds pace)
      : thread_([this, sidecars, pace] { Run(*sidecars, pace); }) {}
  ~Pacer() {
    stop_.store(true);
    thread_.join();
  }

 private:
  void Run(std::vector<std::unique_ptr<Sidecar>>& sidecars,
           std::chrono::milliseconds pace) {
    using Clock = std::chrono::steady_clock;
    const size_t n = sidecars.size();
    const auto start = Clock::now();
    std::vector<Clock::time_point> due(n);
    for (size_t i = 0; i < n; ++i) due[i] = start + pace * i / n;
    while (!stop_.load()) {
      const auto now = Clock::now();
      for (size_t i = 0; i < n; ++i) {
        if (due[i] > now) continue;
        sidecars[i]->Kick();
        due[i] += pace;
        if (due[i] <= now) due[i] = now + pace;  // fell behind: skip
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

ServerConfig MakeConfig() {
  ServerConfig c;
  c.learning = false;
  ResourceConfig r;
  r.name = "api";
  r.rate = 1e9;  // never binds: every report can be topped up
  r.burst = 1e9;
  c.resources.push_back(r);
  return c;
}

void BM_LeaseThroughGrpc(benchmark::State& state) {
  ConfigureProcess();  // as the binaries do
  const int streams = static_cast<int>(state.range(0));
  const std::string external = Env("SLUICE_QUOTA_TARGET");
  const auto pace = std::chrono::milliseconds(
      static_cast<int64_t>(EnvDouble("SLUICE_QUOTA_PACE_MS", 0)));
  const bool paced = pace.count() > 0;
  const int warmup_ticks = Ticks(EnvDouble("SLUICE_QUOTA_WARMUP_S", 0.2));
  const int measure_ticks = Ticks(EnvDouble("SLUICE_QUOTA_SECONDS", 1.5));
  const bool datagrams = Env("SLUICE_QUOTA_DATAGRAMS") == "1";
  if (datagrams && (external.empty() || !paced)) {
    state.SkipWithError(
        "SLUICE_QUOTA_DATAGRAMS needs SLUICE_QUOTA_TARGET "
        "and SLUICE_QUOTA_PACE_MS");
    return;
  }

  SystemClock* clock = SystemClock::Get();
  std::unique_ptr<QuotaAllocator> allocator;
  std::unique_ptr<QuotaService> service;
  std::unique_ptr<grpc::Server> server;
  std::string target = external;
  if (external.empty()) {
    allocator = std::make_unique<QuotaAllocator>(
        MakeConfig(), /*epoch=*/1, clock->Now(), clock->WallNow());
    service = std::make_unique<QuotaService>(allocator.get(), clock);
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    if (!server || port == 0) {
      state.SkipWithError("cannot start the gRPC server");
      return;
    }
    target = "127.0.0.1:" + std::to_string(port);
  }

  for (auto _ : state) {
    std::unique_ptr<DatagramHub> hub;
    if (datagrams) hub = std::make_unique<DatagramHub>();
    std::vector<std::unique_ptr<Sidecar>> sidecars;
    for (int i = 0; i < streams; ++i) {
      sidecars.push_back(
          std::make_unique<Sidecar>(target, i, paced, pace, hub.get()));
    }
    std::unique_ptr<Pacer> pacer;
    if (paced) pacer = std::make_unique<Pacer>(&sidecars, pace);
    // This thread is the ticker (in process); the window is a whole number
    // of ticks.
    auto next = std::chrono::steady_clock::now();
    auto tick = [&] {
      next += kTickInterval;
      std::this_thread::sleep_until(next);
      if (service) service->Tick();
    };
    auto reported = [&] {
      if (service) return service->counters().messages_in.load();
      uint64_t n = 0;
      for (auto& s : sidecars) n += s->reports();
      return n;
    };
    auto granted = [&] {
      uint64_t n = 0;
      for (auto& s : sidecars) n += s->grants();
      return n;
    };
    for (int i = 0; i < warmup_ticks; ++i) tick();
    if (!service) {
      std::fprintf(stderr, "quota-bench window start streams=%d\n", streams);
      std::fflush(stderr);
    }
    const uint64_t in0 = reported();
    const uint64_t grants0 = granted();
    const double cpu0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < measure_ticks; ++i) tick();
    const uint64_t in1 = reported();
    const uint64_t grants1 = granted();
    const double cpu1 = CpuSeconds();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    if (!service) {
      std::fprintf(stderr, "quota-bench window end\n");
      std::fflush(stderr);
    }

    pacer.reset();
    for (auto& s : sidecars) s->Stop();
    for (auto& s : sidecars) s->Await();
    hub.reset();  // before the streams it points to

    const double reports = static_cast<double>(in1 - in0);
    state.SetIterationTime(wall);
    state.SetItemsProcessed(static_cast<int64_t>(reports));
    state.counters["cpu_us_per_msg"] = (cpu1 - cpu0) * 1e6 / reports;
    state.counters["cpu_cores"] = (cpu1 - cpu0) / wall;
    state.counters["grants_per_report"] =
        static_cast<double>(grants1 - grants0) / reports;
    if (reports < 1) state.SkipWithError("no report reached the server");
  }
  if (server) {
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(1));
  }
}

void StreamCounts(benchmark::internal::Benchmark* b) {
  std::string list = Env("SLUICE_QUOTA_STREAMS");
  if (list.empty()) list = "8,64";
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) b->Arg(std::atoi(item.c_str()));
  }
}

BENCHMARK(BM_LeaseThroughGrpc)
    ->ArgName("streams")
    ->Apply(StreamCounts)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice
