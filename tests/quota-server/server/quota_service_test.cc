#include "quota-server/server/quota_service.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "common/protocol/fast_path_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy/lease/lease_agent.h"
#include "proxy/lease/lease_client.h"
#include "proxy/lease/lease_pool.h"
#include "proxy/limit/rate_limiter.h"
#include "quota-server/server/fast_path_server.h"
#include "tests/testing/fast_path_test_peer.h"
#include "tests/testing/lease_messages.h"
#include "tests/testing/wait_for.h"

namespace sluice {
namespace {

using sluice::v1::ServerMessage;
using sluice::v1::SidecarMessage;
using std::chrono::milliseconds;
using std::chrono::seconds;
// For conditions that other threads and real sockets make true.
using test::WaitFor;

constexpr uint64_t kEpoch = 0xabcdef;

ServerConfig Config() {
  ServerConfig c;
  c.listen = "127.0.0.1:0";
  c.learning = false;
  ResourceConfig r;
  r.name = "api";
  r.rate = 100;
  r.burst = 100;
  // The grants' lifetime, as the sidecar is told it.
  r.lease.ttl = seconds(60);
  c.resources.push_back(r);
  // One bucket per key hash, each with this rate and burst.
  r.name = "keyed";
  r.rate = 10;
  r.burst = 10;
  r.per_key = true;
  c.resources.push_back(r);
  return c;
}

SidecarMessage Hello(const std::string& id, uint32_t version = 1) {
  return test::HelloMessage({.sidecar_id = id, .protocol_version = version});
}

SidecarMessage Report(double queued, double held = 0, uint64_t seen = 0) {
  return test::DemandMessage({.queued = queued, .held = held, .seen = seen});
}

// A loopback port with nothing listening on it: bound (so nobody else takes
// it during the test) but not listening, so connecting is refused.
class DeadPort {
 public:
  DeadPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (fd_ < 0 ||
        bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ADD_FAILURE() << "cannot bind a loopback port";
      return;
    }
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~DeadPort() {
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class QuotaServiceTest : public ::testing::Test {
 protected:
  QuotaServiceTest()
      : allocator_(Config(), kEpoch, clock_.Now(), clock_.WallNow()),
        service_(&allocator_, &clock_) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    // The level accrues from the allocator's start: give it a full burst.
    clock_.Advance(seconds(1));
  }
  ~QuotaServiceTest() override {
    if (server_) {
      server_->Shutdown(test::DeadlineFromNow(seconds(1)));
    }
  }

  std::string Target() const { return "127.0.0.1:" + std::to_string(port_); }

  std::unique_ptr<sluice::v1::QuotaService::Stub> Stub() {
    return sluice::v1::QuotaService::NewStub(
        grpc::CreateChannel(Target(), grpc::InsecureChannelCredentials()));
  }

  // A fast path offering leases, wired to the service. The caller clears it
  // (SetFastPath(nullptr)) once the gRPC server is down.
  std::unique_ptr<FastPathServer> StartFastPath() {
    auto fp = FastPathServer::Start(
        "127.0.0.1", 0,
        [this](uint64_t id, const SidecarMessage& m) {
          service_.OnFastPathMessage(id, m);
        },
        /*leases=*/true);
    if (!fp.ok()) {
      ADD_FAILURE() << fp.status();
      return nullptr;
    }
    service_.SetFastPath(fp->get());
    return *std::move(fp);
  }

  // Every call is bounded: it fails rather than hang the test.
  static void SetDeadline(grpc::ClientContext* ctx) {
    ctx->set_deadline(test::DeadlineFromNow());
  }

  // The server's time: only the test moves it.
  FakeClock clock_;
  QuotaAllocator allocator_;
  QuotaService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(QuotaServiceTest, HelloThenReportGetsLimitAndFirstGrant) {
  ASSERT_NE(server_, nullptr);
  ASSERT_GT(port_, 0);
  auto stub = Stub();
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto stream = stub->Lease(&ctx);
  ASSERT_TRUE(stream->Write(Hello("sc-1")));
  ASSERT_TRUE(stream->Write(Report(/*queued=*/5)));

  ServerMessage msg;
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_limit()) << msg.DebugString();
  EXPECT_EQ(msg.server_epoch(), kEpoch);
  EXPECT_EQ(msg.limit().resource(), "api");
  EXPECT_EQ(msg.limit().rate_per_second(), 100);
  EXPECT_EQ(msg.limit().burst(), 100);
  EXPECT_EQ(msg.limit().sidecars(), 1u);

  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_grant()) << msg.DebugString();
  EXPECT_EQ(msg.protocol_version(), 1u);
  EXPECT_EQ(msg.server_epoch(), kEpoch);
  EXPECT_EQ(msg.grant().bucket().resource(), "api");
  EXPECT_EQ(msg.grant().seq(), 1u);
  EXPECT_GT(msg.grant().tokens(), 0);
  EXPECT_EQ(msg.grant().ttl_ms(), 60000u);

  // The allocator sees one connected sidecar holding what it was granted.
  const double granted = msg.grant().tokens();
  QuotaAllocator::Status snap;
  service_.WithAllocator(
      [&](QuotaAllocator& a, Outbox*) { snap = a.Snapshot(clock_.Now()); });
  EXPECT_EQ(snap.connected_streams, 1u);
  ASSERT_EQ(snap.resources.size(), 2u);  // "api" and "keyed"
  EXPECT_EQ(snap.resources[0].name, "api");
  ASSERT_EQ(snap.resources[0].sidecars.size(), 1u);
  EXPECT_EQ(snap.resources[0].sidecars[0].sidecar_id, "sc-1");
  EXPECT_DOUBLE_EQ(snap.resources[0].outstanding, granted);

  EXPECT_EQ(service_.counters().streams_opened.load(), 1u);
  EXPECT_EQ(service_.counters().messages_in.load(), 2u);
  EXPECT_EQ(service_.counters().messages_out.load(), 2u);
  EXPECT_EQ(service_.live_streams(), 1u);

  ASSERT_TRUE(stream->WritesDone());
  EXPECT_FALSE(stream->Read(&msg));
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(WaitFor([&] { return service_.live_streams() == 0; }));
  EXPECT_EQ(service_.counters().streams_rejected.load(), 0u);
}

// Leases over the fast path (docs/leasing.md): a stream's grants go as
// datagrams after a report taken from a datagram, on the stream after a
// report taken from the stream, and a late datagram report (overtaken,
// dropped) does not move them back.
TEST_F(QuotaServiceTest, GrantsFollowThePathOfTheLastReportTaken) {
  std::unique_ptr<FastPathServer> fp = StartFastPath();
  ASSERT_NE(fp, nullptr);
  auto stub = Stub();
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto stream = stub->Lease(&ctx);
  absl::Cleanup stop = [&] {
    ctx.TryCancel();
    stream->Finish().ok();
    server_->Shutdown(test::DeadlineFromNow(seconds(1)));
    service_.SetFastPath(nullptr);
  };
  ASSERT_TRUE(stream->Write(Hello("sc-1")));
  ASSERT_TRUE(stream->Write(Report(/*queued=*/5)));
  ServerMessage msg;
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_fast_path()) << msg.DebugString();
  const sluice::v1::FastPathOffer offer = msg.fast_path();
  EXPECT_TRUE(offer.leases());
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_grant());
  uint64_t seen = msg.grant().seq();

  FastPathTestPeer peer;
  peer.Connect(static_cast<uint16_t>(offer.port()));
  sluice::v1::FastPathBody body;
  body.mutable_hello();
  peer.Send(offer, FastPathDirection::kUp, 1, body);
  ASSERT_TRUE(peer.Receive(offer, FastPathDirection::kDown).has_value());
  body.mutable_hello()->set_welcomed(true);
  peer.Send(offer, FastPathDirection::kUp, 2, body);
  ASSERT_TRUE(peer.Receive(offer, FastPathDirection::kDown).has_value());

  // A report as a datagram: the next grant comes as one.
  *body.mutable_demand() = Report(5, 0, seen).demand();
  peer.Send(offer, FastPathDirection::kUp, 3, body);
  ASSERT_TRUE(WaitFor([&] { return fp->stats().demand_in == 1; }));
  ASSERT_TRUE(WaitFor([&] {
    clock_.Advance(milliseconds(100));
    service_.Tick();
    return fp->stats().grants_out >= 1;
  }));
  auto got = peer.Receive(offer, FastPathDirection::kDown);
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->has_grant()) << got->DebugString();
  EXPECT_GT(got->grant().seq(), seen);
  const uint64_t stale_seen = seen;
  seen = got->grant().seq();

  // A report on the stream: grants go back to the stream.
  auto taken = [&](uint64_t n) {
    return WaitFor([&] { return service_.counters().messages_in.load() >= n; });
  };
  uint64_t in = service_.counters().messages_in.load();
  ASSERT_TRUE(stream->Write(Report(5, 0, seen)));
  ASSERT_TRUE(taken(in + 1));
  auto next_stream_grant = [&] {
    while (stream->Read(&msg)) {
      if (msg.has_grant() && msg.grant().tokens() > 0) return true;
    }
    return false;
  };
  const uint64_t udp_grants = fp->stats().grants_out;
  clock_.Advance(milliseconds(100));
  service_.Tick();
  ASSERT_TRUE(next_stream_grant());
  seen = msg.grant().seq();

  // A late report datagram, overtaken by the stream's: dropped, and the
  // grants stay on the stream.
  in = service_.counters().messages_in.load();
  ASSERT_TRUE(stream->Write(Report(5, 0, seen)));
  ASSERT_TRUE(taken(in + 1));
  *body.mutable_demand() = Report(5, 0, stale_seen).demand();
  peer.Send(offer, FastPathDirection::kUp, 4, body);
  ASSERT_TRUE(WaitFor([&] { return fp->stats().demand_in == 2; }));
  QuotaAllocator::Status snap;
  service_.WithAllocator(
      [&](QuotaAllocator& a, Outbox*) { snap = a.Snapshot(clock_.Now()); });
  EXPECT_EQ(snap.stale_reports, 1u);
  clock_.Advance(milliseconds(100));
  service_.Tick();
  ASSERT_TRUE(next_stream_grant());
  EXPECT_EQ(fp->stats().grants_out, udp_grants);
}

TEST_F(QuotaServiceTest, TickAndAdminChangesReachTheStream) {
  auto stub = Stub();
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto stream = stub->Lease(&ctx);
  ASSERT_TRUE(stream->Write(Hello("sc-1")));
  ASSERT_TRUE(stream->Write(Report(/*queued=*/5)));
  ServerMessage msg;
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_limit());
  ASSERT_TRUE(stream->Read(&msg));
  ASSERT_TRUE(msg.has_grant());

  // A limit set under the service's lock goes out on the next Tick.
  absl::Status set;
  service_.WithAllocator([&](QuotaAllocator& a, Outbox*) {
    set = a.SetLimit("api", 40, 20, clock_.Now());
  });
  ASSERT_TRUE(set.ok()) << set;
  clock_.Advance(milliseconds(50));
  service_.Tick();
  bool saw_limit = false;
  // Grants (shrinks) may come with it; the LimitUpdate is among the first.
  for (int i = 0; i < 3 && !saw_limit; ++i) {
    ASSERT_TRUE(stream->Read(&msg));
    if (msg.has_limit()) {
      saw_limit = true;
      EXPECT_EQ(msg.limit().rate_per_second(), 40);
      EXPECT_EQ(msg.limit().burst(), 20);
      EXPECT_EQ(msg.limit().config_version(), 2u);
    }
  }
  EXPECT_TRUE(saw_limit);
  ctx.TryCancel();
  stream->Finish();
}

TEST_F(QuotaServiceTest, FirstMessageNotHelloIsInvalidArgument) {
  auto stub = Stub();
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto stream = stub->Lease(&ctx);
  stream->Write(Report(/*queued=*/5));
  ServerMessage msg;
  EXPECT_FALSE(stream->Read(&msg));
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("Hello"));
  EXPECT_EQ(service_.counters().streams_rejected.load(), 1u);
  // Nothing was granted to it.
  QuotaAllocator::Status snap;
  service_.WithAllocator(
      [&](QuotaAllocator& a, Outbox*) { snap = a.Snapshot(clock_.Now()); });
  EXPECT_EQ(snap.resources[0].outstanding, 0);
  EXPECT_TRUE(WaitFor([&] { return service_.live_streams() == 0; }));
}

TEST_F(QuotaServiceTest, OtherProtocolVersionIsFailedPrecondition) {
  auto stub = Stub();
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto stream = stub->Lease(&ctx);
  stream->Write(Hello("sc-2", /*version=*/2));
  stream->Write(Report(/*queued=*/5));
  ServerMessage msg;
  EXPECT_FALSE(stream->Read(&msg));
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << status.error_message();
  EXPECT_THAT(status.error_message(),
              ::testing::HasSubstr("protocol_version 2"));
  EXPECT_EQ(service_.counters().streams_rejected.load(), 1u);
}

TEST_F(QuotaServiceTest, FinishAllEndsStreamsWithUnavailable) {
  auto stub = Stub();
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<
      std::unique_ptr<grpc::ClientReaderWriter<SidecarMessage, ServerMessage>>>
      streams;
  for (int i = 0; i < 2; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    SetDeadline(ctxs.back().get());
    streams.push_back(stub->Lease(ctxs.back().get()));
    ASSERT_TRUE(streams.back()->Write(Hello("sc-" + std::to_string(i))));
    ASSERT_TRUE(streams.back()->Write(Report(/*queued=*/1)));
    ServerMessage msg;
    ASSERT_TRUE(streams.back()->Read(&msg));  // the stream is live
    EXPECT_TRUE(msg.has_limit());
  }
  ASSERT_EQ(service_.live_streams(), 2u);
  service_.FinishAll();
  for (auto& stream : streams) {
    ServerMessage msg;
    while (stream->Read(&msg)) {
    }  // grants queued before the finish may still arrive
    const grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << status.error_message();
  }
  EXPECT_TRUE(WaitFor([&] { return service_.live_streams() == 0; }));
  EXPECT_EQ(service_.counters().streams_rejected.load(), 0u);
}

// The sidecar's real lease stack against the real service. The sidecar has
// a fake clock of its own, which stands still: its grants never expire,
// its connect timeout never passes and its fast path never goes silent, so
// only the threads and sockets are waited for.
class LeaseClientAgainstServiceTest : public QuotaServiceTest {
 protected:
  LeaseClientAgainstServiceTest() {
    LeasePool::Options po;
    po.initial_capacity = 10;
    po.initial_rate_per_second = 10;
    po.policy = UnavailablePolicy::kFailClosed;
    pool_ = std::make_shared<LeasePool>(po);
    limiter_ = std::make_shared<RateLimiter>(
        std::make_unique<LeasedTokenSource>(pool_), RateLimiterOptions{});
  }

  std::unique_ptr<LeaseClient> MakeClient(std::vector<std::string> servers) {
    LeaseAgent::Options ao;
    ao.sidecar_id = "sidecar-under-test";
    ao.pod = "pod-1";
    std::vector<LeaseBinding> bindings;
    bindings.push_back(LeaseBinding{"api", "", limiter_, pool_});
    auto agent = std::make_unique<LeaseAgent>(ao, std::move(bindings));
    LeaseClient::Options co;
    co.servers = std::move(servers);
    co.backoff_initial = milliseconds(10);
    co.backoff_max = milliseconds(50);
    return std::make_unique<LeaseClient>(std::move(co), std::move(agent),
                                         &sidecar_clock_);
  }

  bool Leased() {
    const TimePoint now = sidecar_clock_.Now();
    return pool_->Held(now) > 0 && pool_->Mode(now) == LeaseMode::kLeased;
  }

  FakeClock sidecar_clock_;
  std::shared_ptr<LeasePool> pool_;
  std::shared_ptr<RateLimiter> limiter_;
};

TEST_F(LeaseClientAgainstServiceTest, FailsOverFromDeadServerAndGetsTokens) {
  DeadPort dead;
  const std::string dead_target = "127.0.0.1:" + std::to_string(dead.port());
  auto client = MakeClient({dead_target, Target()});
  client->Start();
  ASSERT_TRUE(WaitFor([&] { return Leased(); }))
      << "held " << pool_->Held(sidecar_clock_.Now()) << " mode "
      << LeaseModeName(pool_->Mode(sidecar_clock_.Now()));
  const LeaseClient::Stats stats = client->stats();
  EXPECT_GE(stats.failed_attempts, 1u);  // the dead one was tried first
  EXPECT_EQ(stats.connects, 1u);
  EXPECT_TRUE(stats.connected);
  EXPECT_EQ(stats.server, Target());
  // The server agrees: one sidecar, holding what the pool holds at most.
  QuotaAllocator::Status snap;
  service_.WithAllocator(
      [&](QuotaAllocator& a, Outbox*) { snap = a.Snapshot(clock_.Now()); });
  ASSERT_EQ(snap.resources[0].sidecars.size(), 1u);
  EXPECT_EQ(snap.resources[0].sidecars[0].sidecar_id, "sidecar-under-test");
  EXPECT_EQ(snap.resources[0].sidecars[0].pod, "pod-1");
  EXPECT_GT(snap.resources[0].outstanding, 0);
  // Tokens are spendable through the limiter's source.
  EXPECT_TRUE(pool_->TryTake(1, sidecar_clock_.Now()));
  client->Stop();
  EXPECT_FALSE(client->stats().connected);
  // Disconnected, the pool spends what it holds until the grants' ttl has
  // passed on the sidecar's clock; then the policy the server announced
  // for the resource applies (its default, fallback_share).
  const double held = pool_->Held(sidecar_clock_.Now());
  ASSERT_GT(held, 0);
  sidecar_clock_.Advance(seconds(60) - std::chrono::nanoseconds(1));
  EXPECT_EQ(pool_->Held(sidecar_clock_.Now()), held);
  EXPECT_EQ(pool_->Mode(sidecar_clock_.Now()), LeaseMode::kLeased);
  sidecar_clock_.Advance(std::chrono::nanoseconds(1));
  EXPECT_EQ(pool_->Held(sidecar_clock_.Now()), 0);
  EXPECT_EQ(pool_->Mode(sidecar_clock_.Now()), LeaseMode::kFallbackShare);
}

TEST_F(LeaseClientAgainstServiceTest, LeasesMoveToDatagramsOnceWelcomed) {
  std::unique_ptr<FastPathServer> fp = StartFastPath();
  ASSERT_NE(fp, nullptr);
  auto client = MakeClient({Target()});
  // Whatever fails below: the client, then the gRPC server, stop before the
  // fast path goes (streams that close call into it).
  absl::Cleanup stop = [&] {
    client->Stop();
    server_->Shutdown(test::DeadlineFromNow(seconds(1)));
    service_.SetFastPath(nullptr);
  };
  client->Start();
  ASSERT_TRUE(WaitFor([&] { return Leased(); }));
  ASSERT_TRUE(WaitFor([&] { return client->stats().fast_path.leasing; }));
  // Spend everything held (and let the server's level accrue): the reports
  // now go as datagrams and the top-ups come back as datagrams.
  const uint64_t streamed_in = service_.counters().messages_in.load();
  ASSERT_TRUE(WaitFor([&] {
    const TimePoint now = sidecar_clock_.Now();
    while (pool_->TryTake(1, now)) {
    }
    clock_.Advance(milliseconds(100));
    service_.Tick();  // as the server's ticker does
    const LeaseClient::Stats s = client->stats();
    return s.fast_path.grants_in >= 2 && s.fast_path.demand_sent >= 2;
  })) << "demand sent "
      << client->stats().fast_path.demand_sent << ", grants in "
      << client->stats().fast_path.grants_in << ", server demand "
      << fp->stats().demand_in << ", grants out " << fp->stats().grants_out
      << ", messages out " << service_.counters().messages_out.load();
  const FastPathServer::Stats st = fp->stats();
  EXPECT_GE(st.demand_in, 2u);
  EXPECT_GE(st.grants_out, 2u);
  // The service counts datagram reports with the stream's.
  EXPECT_GE(service_.counters().messages_in.load(), streamed_in + 2);
  // The grants that came as datagrams fill the pool again.
  EXPECT_TRUE(WaitFor([&] {
    clock_.Advance(milliseconds(100));
    service_.Tick();
    return Leased();
  }));
  EXPECT_EQ(client->stats().stale_grants, 0u);
}

TEST_F(LeaseClientAgainstServiceTest, ReconnectsAfterFinishAll) {
  auto client = MakeClient({Target()});
  client->Start();
  ASSERT_TRUE(WaitFor([&] { return client->stats().connects == 1; }));
  service_.FinishAll();
  // The stream ends with UNAVAILABLE; the client counts the disconnect and
  // comes back on a new stream.
  ASSERT_TRUE(WaitFor([&] {
    const LeaseClient::Stats s = client->stats();
    return s.disconnects >= 1 && s.connects >= 2 && s.connected;
  }));
  EXPECT_GE(service_.counters().streams_opened.load(), 2u);
  EXPECT_TRUE(WaitFor([&] { return Leased(); }));
  client->Stop();
  EXPECT_TRUE(WaitFor([&] { return service_.live_streams() == 0; }));
}

TEST_F(LeaseClientAgainstServiceTest, BindingsAddedAtRunTimeGetTheirOwnBucket) {
  auto client = MakeClient({Target()});
  client->Start();
  ASSERT_TRUE(WaitFor([&] { return Leased(); }));
  // Two keys appear while the stream is up (as a proxy thread would add
  // them): each gets grants into its own pool from its own bucket.
  LeasePool::Options po;
  po.initial_capacity = 3;  // until the server announces a burst of 10
  po.initial_rate_per_second = 10;
  po.policy = UnavailablePolicy::kFailClosed;
  std::shared_ptr<LeasePool> pools[2];
  std::shared_ptr<RateLimiter> limiters[2];
  for (int i = 0; i < 2; ++i) {
    pools[i] = std::make_shared<LeasePool>(po);
    limiters[i] = std::make_shared<RateLimiter>(
        std::make_unique<LeasedTokenSource>(pools[i]), RateLimiterOptions{});
    client->AddBinding(LeaseBinding{"keyed", "key" + std::to_string(i),
                                    limiters[i], pools[i]});
  }
  ASSERT_TRUE(WaitFor([&] {
    const TimePoint now = sidecar_clock_.Now();
    for (const auto& p : pools) {
      if (p->Held(now) <= 0 || p->Mode(now) != LeaseMode::kLeased) {
        return false;
      }
    }
    return true;
  }));
  // The pools took the resource's limit, announced before they existed.
  EXPECT_DOUBLE_EQ(pools[0]->Capacity(), 10);
  EXPECT_DOUBLE_EQ(pools[1]->Capacity(), 10);
  QuotaAllocator::Status snap;
  service_.WithAllocator(
      [&](QuotaAllocator& a, Outbox*) { snap = a.Snapshot(clock_.Now()); });
  ASSERT_EQ(snap.resources.size(), 2u);
  EXPECT_EQ(snap.resources[1].name, "keyed");
  ASSERT_EQ(snap.resources[1].sidecars.size(), 1u);
  EXPECT_GT(snap.resources[1].outstanding, 0);
  client->Stop();
}

}  // namespace
}  // namespace sluice
