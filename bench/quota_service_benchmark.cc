// The quota server's lease path through gRPC, in one process: an
// in-process grpc::Server on 127.0.0.1 runs QuotaService over a
// QuotaAllocator (one resource whose limit never binds, real SystemClock),
// and N client streams (one channel, so one TCP connection, each) send a
// Hello and then DemandReports as fast as HTTP/2 flow control lets them,
// while their readers drain the grants. A thread runs the service's Tick
// every 50 ms, as the server does.
//
// Each run measures a fixed window of 1.5 s after 0.2 s of warm-up:
//  - items_per_second: reports the server handled per wall second;
//  - cpu_us_per_msg: process CPU (user + system, all threads) per report.
//    Client and server share the process, so the client's cost is included
//    and the figure is an upper bound for the server alone;
//  - grants_per_report: grants the clients received per report.

#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "quota-server/quota_allocator.h"
#include "quota-server/quota_service.h"
#include "sluice/v1/quota.grpc.pb.h"

namespace sluice {
namespace {

using sluice::v1::ServerMessage;
using sluice::v1::SidecarMessage;

constexpr std::chrono::milliseconds kTickInterval(50);
constexpr int kWarmupTicks = 4;    // 0.2 s
constexpr int kMeasureTicks = 30;  // 1.5 s

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec * 1e-6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

// One sidecar stream on the callback API: the write chain sends the next
// report as soon as the previous one was taken by the transport; the read
// chain drains ServerMessages and remembers the last grant seq.
class Sidecar : public grpc::ClientBidiReactor<SidecarMessage, ServerMessage> {
 public:
  Sidecar(const std::string& target, int index) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // own connection
    stub_ = sluice::v1::QuotaService::NewStub(grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args));
    auto* hello = out_.mutable_hello();
    hello->set_protocol_version(1);
    hello->set_sidecar_id("sidecar-" + std::to_string(index));
    hello->set_weight(1);
    stub_->async()->Lease(&ctx_, this);
    StartRead(&in_);
    StartWrite(&out_);
    StartCall();
  }

  void Stop() { stop_.store(true, std::memory_order_relaxed); }

  void Await() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }

  uint64_t grants() const { return grants_.load(std::memory_order_relaxed); }

  void OnWriteDone(bool ok) override {
    if (!ok) return;
    if (stop_.load(std::memory_order_relaxed)) {
      StartWritesDone();
      return;
    }
    // Spent everything it held: the server tops it up on every report
    // unless grants are still in flight.
    auto* d = out_.mutable_demand();
    d->mutable_bucket()->set_resource("api");
    d->set_allowed(10);
    d->set_elapsed_ms(100);
    d->set_held(0);
    d->set_grant_seq_seen(seq_.load(std::memory_order_relaxed));
    StartWrite(&out_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
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
  std::unique_ptr<sluice::v1::QuotaService::Stub> stub_;
  grpc::ClientContext ctx_;
  SidecarMessage out_;  // touched by the write chain only
  ServerMessage in_;    // touched by the read chain only
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> seq_{0};
  std::atomic<uint64_t> grants_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
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
  const int streams = static_cast<int>(state.range(0));
  SystemClock* clock = SystemClock::Get();
  QuotaAllocator allocator(MakeConfig(), /*epoch=*/1, clock->Now());
  QuotaService service(&allocator, clock);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    state.SkipWithError("cannot start the gRPC server");
    return;
  }
  const std::string target = "127.0.0.1:" + std::to_string(port);

  for (auto _ : state) {
    std::vector<std::unique_ptr<Sidecar>> sidecars;
    for (int i = 0; i < streams; ++i) {
      sidecars.push_back(std::make_unique<Sidecar>(target, i));
    }
    // This thread is the ticker; the window is a whole number of ticks.
    auto next = std::chrono::steady_clock::now();
    auto tick = [&] {
      next += kTickInterval;
      std::this_thread::sleep_until(next);
      service.Tick();
    };
    for (int i = 0; i < kWarmupTicks; ++i) tick();
    const uint64_t in0 = service.counters().messages_in.load();
    uint64_t grants0 = 0;
    for (auto& s : sidecars) grants0 += s->grants();
    const double cpu0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kMeasureTicks; ++i) tick();
    const uint64_t in1 = service.counters().messages_in.load();
    uint64_t grants1 = 0;
    for (auto& s : sidecars) grants1 += s->grants();
    const double cpu1 = CpuSeconds();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();

    for (auto& s : sidecars) s->Stop();
    for (auto& s : sidecars) s->Await();

    const double reports = static_cast<double>(in1 - in0);
    state.SetIterationTime(wall);
    state.SetItemsProcessed(static_cast<int64_t>(reports));
    state.counters["cpu_us_per_msg"] = (cpu1 - cpu0) * 1e6 / reports;
    state.counters["cpu_cores"] = (cpu1 - cpu0) / wall;
    state.counters["grants_per_report"] =
        static_cast<double>(grants1 - grants0) / reports;
    if (reports < 1) state.SkipWithError("no report reached the server");
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}
BENCHMARK(BM_LeaseThroughGrpc)
    ->ArgName("streams")
    ->Arg(8)
    ->Arg(64)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice
