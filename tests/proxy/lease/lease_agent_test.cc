#include "proxy/lease/lease_agent.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "proxy/limit/rate_limiter.h"
#include "proxy/pause/bucket_pause.h"
#include "tests/testing/lease_messages.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using v1::ServerMessage;
using v1::SidecarMessage;

const TimePoint kT0 = TimePoint(seconds(1000));

// Two buckets, "a" and "b" (keyed), each a limiter on a leased pool.
class LeaseAgentTest : public ::testing::Test {
 protected:
  LeaseAgentTest() {
    for (int i = 0; i < 2; ++i) {
      LeasePool::Options o;
      o.initial_capacity = 100;
      o.initial_rate_per_second = 1000;
      pools_[i] = std::make_shared<LeasePool>(o);
      limiters_[i] = std::make_shared<RateLimiter>(
          std::make_unique<LeasedTokenSource>(pools_[i]), RateLimiterOptions{});
    }
    LeaseAgent::Options opts;
    opts.sidecar_id = "sc-1";
    opts.pod = "pod-1";
    opts.pod_namespace = "ns";
    opts.version = "0.1.0";
    opts.weight = 2;
    std::vector<LeaseBinding> bindings;
    bindings.push_back(LeaseBinding{"a", "", limiters_[0], pools_[0]});
    bindings.push_back(LeaseBinding{"b", "k1", limiters_[1], pools_[1]});
    agent_ = std::make_unique<LeaseAgent>(opts, std::move(bindings));
  }

  static ServerMessage Grant(const std::string& resource, double tokens,
                             uint64_t seq, double target,
                             uint32_t ttl_ms = 2000, double share = 10,
                             uint32_t refresh_ms = 0,
                             const std::string& key_hash = "") {
    return test::GrantMessage({.resource = resource,
                               .key = key_hash,
                               .tokens = tokens,
                               .seq = seq,
                               .target = target,
                               .ttl_ms = ttl_ms,
                               .share = share,
                               .refresh_ms = refresh_ms});
  }

  static ServerMessage Limit(const std::string& resource, double rate,
                             double burst, v1::UnavailablePolicy policy,
                             uint32_t sidecars) {
    return test::LimitMessage({.resource = resource,
                               .rate = rate,
                               .burst = burst,
                               .policy = policy,
                               .sidecars = sidecars});
  }

  static std::vector<std::string> Resources(
      const std::vector<SidecarMessage>& msgs) {
    std::vector<std::string> out;
    for (const SidecarMessage& m : msgs) {
      EXPECT_TRUE(m.has_demand());
      out.push_back(m.demand().bucket().resource());
    }
    return out;
  }

  // A connected agent of its own with one bucket (resource `c`, `key`)
  // whose throttle is `throttle`.
  struct ThrottledAgent {
    std::shared_ptr<LeasePool> pool;
    std::shared_ptr<RateLimiter> limiter;
    std::unique_ptr<LeaseAgent> agent;
  };
  static ThrottledAgent AgentWithThrottle(
      const std::string& key, std::shared_ptr<BucketPause> throttle) {
    ThrottledAgent t;
    std::tie(t.pool, t.limiter) = NewLeasedLimiter();
    std::vector<LeaseBinding> bindings;
    bindings.push_back(
        LeaseBinding{"c", key, t.limiter, t.pool, std::move(throttle)});
    LeaseAgent::Options opts;
    opts.sidecar_id = "sc-2";
    t.agent = std::make_unique<LeaseAgent>(opts, std::move(bindings));
    t.agent->OnConnected(kT0);
    return t;
  }

  // A throttle that counts the remote pauses it takes in `*remote`.
  static std::shared_ptr<BucketPause> CountingThrottle(int* remote) {
    auto throttle = std::make_shared<BucketPause>(BucketPause::Options{});
    throttle->set_callbacks(nullptr, [remote](bool r, bool) { *remote += r; });
    return throttle;
  }

  // Pause `id` of bucket ("c", `key`), 1 s long.
  static ServerMessage PauseMessage(uint64_t id, const std::string& key) {
    ServerMessage m;
    m.set_protocol_version(1);
    v1::Pause* p = m.mutable_pause();
    p->mutable_bucket()->set_resource("c");
    p->mutable_bucket()->set_key_hash(key);
    p->set_pause_id(id);
    p->set_remaining_ms(1000);
    return m;
  }

  // A limiter on a new pool, for bindings added at run time.
  static std::pair<std::shared_ptr<LeasePool>, std::shared_ptr<RateLimiter>>
  NewLeasedLimiter() {
    LeasePool::Options o;
    o.initial_capacity = 100;
    o.initial_rate_per_second = 1000;
    auto pool = std::make_shared<LeasePool>(o);
    auto limiter = std::make_shared<RateLimiter>(
        std::make_unique<LeasedTokenSource>(pool), RateLimiterOptions{});
    return {pool, limiter};
  }

  std::shared_ptr<LeasePool> pools_[2];
  std::shared_ptr<RateLimiter> limiters_[2];
  std::unique_ptr<LeaseAgent> agent_;
};

TEST_F(LeaseAgentTest, ConnectSendsHelloThenOneReportPerBucket) {
  EXPECT_FALSE(agent_->connected());
  EXPECT_EQ(agent_->NextWakeup(), TimePoint::max());
  EXPECT_TRUE(agent_->Poll(kT0).empty());

  std::vector<SidecarMessage> out = agent_->OnConnected(kT0);
  EXPECT_TRUE(agent_->connected());
  ASSERT_EQ(out.size(), 3u);
  ASSERT_TRUE(out[0].has_hello());
  const v1::Hello& h = out[0].hello();
  EXPECT_EQ(h.protocol_version(), 1u);
  EXPECT_EQ(h.sidecar_id(), "sc-1");
  EXPECT_EQ(h.pod(), "pod-1");
  EXPECT_EQ(h.namespace_(), "ns");
  EXPECT_EQ(h.version(), "0.1.0");
  EXPECT_EQ(h.weight(), 2);
  ASSERT_TRUE(out[1].has_demand());
  ASSERT_TRUE(out[2].has_demand());
  EXPECT_EQ(out[1].demand().bucket().resource(), "a");
  EXPECT_EQ(out[1].demand().bucket().key_hash(), "");
  EXPECT_EQ(out[2].demand().bucket().resource(), "b");
  EXPECT_EQ(out[2].demand().bucket().key_hash(), "k1");
  for (int i = 1; i <= 2; ++i) {
    EXPECT_EQ(out[i].demand().held(), 0);
    EXPECT_EQ(out[i].demand().grant_seq_seen(), 0u);
    EXPECT_EQ(out[i].demand().elapsed_ms(), 0u);  // No earlier report.
  }
  // Until the server answers, the pools stay on their policy...
  EXPECT_NE(pools_[0]->Mode(kT0), LeaseMode::kLeased);
  EXPECT_NE(pools_[1]->Mode(kT0), LeaseMode::kLeased);
  // ...and its first message, whatever it is, switches them to grants only.
  sluice::v1::ServerMessage limit;
  limit.set_protocol_version(1);
  limit.mutable_limit()->set_resource("a");
  limit.mutable_limit()->set_rate_per_second(100);
  limit.mutable_limit()->set_burst(10);
  agent_->OnServerMessage(limit, kT0);
  EXPECT_EQ(pools_[0]->Mode(kT0), LeaseMode::kLeased);
  EXPECT_EQ(pools_[1]->Mode(kT0), LeaseMode::kLeased);
  // Nothing more is due right away.
  EXPECT_TRUE(agent_->Poll(kT0).empty());
  EXPECT_EQ(agent_->NextWakeup(), kT0 + milliseconds(100));
}

TEST_F(LeaseAgentTest, GrantFeedsThePoolAndTheLimiterAdmits) {
  agent_->OnConnected(kT0);
  // The server answers (an empty grant: no tokens yet), so the pool now
  // waits for leased tokens instead of applying its policy.
  agent_->OnServerMessage(Grant("a", 0, 0, 5), kT0);
  AcquireResult q = limiters_[0]->Acquire(1, seconds(1), kT0);
  ASSERT_EQ(q.outcome, AcquireOutcome::kQueued);  // Predicted: no share yet.
  agent_->OnServerMessage(Grant("a", 5, 1, 5, /*ttl_ms=*/2000), kT0);
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0), 5);
  EXPECT_DOUBLE_EQ(pools_[1]->Held(kT0), 0);
  EXPECT_DOUBLE_EQ(pools_[0]->share_per_second(), 10);
  EXPECT_EQ(limiters_[0]->Poll(kT0).admitted, std::vector<uint64_t>{q.ticket});
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(limiters_[0]->Acquire(1, Duration::zero(), kT0).outcome,
              AcquireOutcome::kAdmitted);
  }
  EXPECT_EQ(limiters_[0]->Acquire(1, Duration::zero(), kT0).outcome,
            AcquireOutcome::kRejectedWait);
  // Tokens die ttl after receipt.
  agent_->OnServerMessage(Grant("a", 3, 2, 5, /*ttl_ms=*/500),
                          kT0 + milliseconds(100));
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(599)), 3);
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(600)), 0);
}

// A grant is younger than the report it echoes, so its tokens live ttl
// from when that report was made, however late the grant arrives; one that
// echoes a report no longer remembered brings nothing.
TEST_F(LeaseAgentTest, GrantTokensLiveTtlFromTheReportTheyEcho) {
  const std::vector<SidecarMessage> hello = agent_->OnConnected(kT0);
  const uint64_t first = hello[1].demand().report_seq();
  EXPECT_GT(first, 0u);
  EXPECT_GT(hello[2].demand().report_seq(), first);  // numbered per report
  auto grant = [](double tokens, uint64_t seq, uint64_t report_seq) {
    return test::GrantMessage({.resource = "a",
                               .tokens = tokens,
                               .seq = seq,
                               .target = 10,
                               .ttl_ms = 1000,
                               .report_seq = report_seq});
  };
  // The answer to the report of kT0 arrives 800 ms late: 200 ms left.
  agent_->OnServerMessage(grant(4, 1, first), kT0 + milliseconds(800));
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(999)), 4);
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(1000)), 0);
  EXPECT_EQ(agent_->aged_grants(), 0u);
  // Older than a ttl on arrival: nothing, and counted.
  agent_->OnServerMessage(grant(4, 2, first), kT0 + milliseconds(1000));
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(1000)), 0);
  EXPECT_EQ(agent_->aged_grants(), 1u);
  // A newer report: its answer lives ttl from that report.
  std::vector<SidecarMessage> reports = agent_->Poll(kT0 + milliseconds(1500));
  ASSERT_FALSE(reports.empty());
  const uint64_t later = reports[0].demand().report_seq();
  EXPECT_GT(later, first);
  agent_->OnServerMessage(grant(3, 3, later), kT0 + milliseconds(1600));
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(1600)), 3);
  // A report this sidecar never made (or has forgotten): nothing.
  agent_->OnServerMessage(grant(5, 4, later + 1000), kT0 + milliseconds(1600));
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(1600)), 3);
  EXPECT_EQ(agent_->aged_grants(), 2u);
  // A server that echoes nothing: ttl from receipt, as before.
  agent_->OnServerMessage(grant(2, 5, 0), kT0 + milliseconds(1700));
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(2499)), 5);
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(2500)), 2);
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(2699)), 2);
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(2700)), 0);
}

// Only the last 32 reports of a bucket are remembered, however long no
// grant comes: an echo of an older one brings nothing.
TEST_F(LeaseAgentTest, TheReportsRememberedAreBounded) {
  const std::vector<SidecarMessage> hello = agent_->OnConnected(kT0);
  const uint64_t first = hello[1].demand().report_seq();
  uint64_t last = first;
  TimePoint t = kT0;
  for (int i = 0; i < 40; ++i) {
    t += milliseconds(100);
    for (const SidecarMessage& m : agent_->Poll(t)) {
      if (m.has_demand() && m.demand().bucket().resource() == "a") {
        last = m.demand().report_seq();
      }
    }
  }
  ASSERT_GT(last, first + 32);
  auto grant = [](uint64_t seq, uint64_t report_seq) {
    return test::GrantMessage({.resource = "a",
                               .tokens = 2,
                               .seq = seq,
                               .target = 10,
                               .ttl_ms = 60000,
                               .report_seq = report_seq});
  };
  agent_->OnServerMessage(grant(1, first), t);  // 4 s old: within ttl
  EXPECT_DOUBLE_EQ(pools_[0]->Held(t), 0);      // but forgotten
  EXPECT_EQ(agent_->aged_grants(), 1u);
  agent_->OnServerMessage(grant(2, last), t);
  EXPECT_DOUBLE_EQ(pools_[0]->Held(t), 2);
  // A reconnect forgets the old stream's reports.
  agent_->OnDisconnected(t);
  agent_->OnConnected(t);
  agent_->OnServerMessage(grant(1, last), t);
  EXPECT_DOUBLE_EQ(pools_[0]->Held(t), 2);
  EXPECT_EQ(agent_->aged_grants(), 2u);
}

TEST_F(LeaseAgentTest, ReportsCarryMeasuredDemandAndState) {
  agent_->OnConnected(kT0);
  agent_->OnServerMessage(Grant("a", 3, 1, 10), kT0);
  RateLimiter& l = *limiters_[0];
  ASSERT_EQ(l.Acquire(2, Duration::zero(), kT0).outcome,
            AcquireOutcome::kAdmitted);
  ASSERT_EQ(l.Acquire(4, Duration::zero(), kT0).outcome,
            AcquireOutcome::kRejectedWait);
  // 1 held, share 10/s: 2 tokens are predicted in 100 ms.
  AcquireResult q1 = l.Acquire(2, seconds(1), kT0);
  ASSERT_EQ(q1.outcome, AcquireOutcome::kQueued);
  agent_->OnServerMessage(Grant("a", 1, 2, 10), kT0 + milliseconds(40));
  ASSERT_EQ(l.Poll(kT0 + milliseconds(40)).admitted,
            std::vector<uint64_t>{q1.ticket});
  AcquireResult q2 = l.Acquire(1.5, seconds(1), kT0 + milliseconds(40));
  ASSERT_EQ(q2.outcome, AcquireOutcome::kQueued);

  std::vector<SidecarMessage> out = agent_->Poll(kT0 + milliseconds(100));
  ASSERT_EQ(Resources(out), (std::vector<std::string>{"a", "b"}));
  const v1::DemandReport& r = out[0].demand();
  EXPECT_DOUBLE_EQ(r.allowed(), 4);
  EXPECT_DOUBLE_EQ(r.denied(), 4);
  EXPECT_DOUBLE_EQ(r.queued(), 1.5);
  EXPECT_DOUBLE_EQ(r.wait_ms(), 40);
  EXPECT_EQ(r.elapsed_ms(), 100u);
  EXPECT_DOUBLE_EQ(r.held(), 0);
  EXPECT_EQ(r.grant_seq_seen(), 2u);
  EXPECT_EQ(out[1].demand().allowed(), 0);
  EXPECT_EQ(out[1].demand().grant_seq_seen(), 2u);

  // Interval counters restart; queued is absolute.
  out = agent_->Poll(kT0 + milliseconds(250));
  ASSERT_EQ(Resources(out), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(out[0].demand().allowed(), 0);
  EXPECT_EQ(out[0].demand().denied(), 0);
  EXPECT_EQ(out[0].demand().wait_ms(), 0);
  EXPECT_DOUBLE_EQ(out[0].demand().queued(), 1.5);
  EXPECT_EQ(out[0].demand().elapsed_ms(), 150u);
}

TEST_F(LeaseAgentTest, ReportsEveryRefreshIntervalTheServerAsks) {
  agent_->OnConnected(kT0);
  EXPECT_TRUE(agent_->Poll(kT0 + milliseconds(99)).empty());
  EXPECT_EQ(agent_->NextWakeup(), kT0 + milliseconds(100));
  EXPECT_EQ(Resources(agent_->Poll(kT0 + milliseconds(100))),
            (std::vector<std::string>{"a", "b"}));
  // Bucket b is told to report every 300 ms (a grant with no tokens).
  agent_->OnServerMessage(
      Grant("b", 0, 1, 0, 2000, 10, /*refresh_ms=*/300, "k1"),
      kT0 + milliseconds(100));
  EXPECT_EQ(Resources(agent_->Poll(kT0 + milliseconds(200))),
            std::vector<std::string>{"a"});
  EXPECT_EQ(Resources(agent_->Poll(kT0 + milliseconds(300))),
            std::vector<std::string>{"a"});
  EXPECT_EQ(Resources(agent_->Poll(kT0 + milliseconds(400))),
            (std::vector<std::string>{"a", "b"}));
  // A late poll sends one report per bucket, not one per missed interval.
  EXPECT_EQ(Resources(agent_->Poll(kT0 + seconds(5))),
            (std::vector<std::string>{"a", "b"}));
  // a's next periodic report is 100 ms away, but b got a grant and may need
  // an early report: it is looked at every 300 / 4 ms.
  EXPECT_EQ(agent_->NextWakeup(), kT0 + seconds(5) + milliseconds(75));
}

TEST_F(LeaseAgentTest, EarlyReportWhenLowAtMostOncePerGrant) {
  agent_->OnConnected(kT0);
  agent_->OnServerMessage(Grant("a", 10, 1, /*target=*/10), kT0);
  // Armed: the agent asks to look every quarter interval.
  EXPECT_EQ(agent_->NextWakeup(), kT0 + milliseconds(25));
  ASSERT_TRUE(pools_[0]->TryTake(5, kT0));
  EXPECT_TRUE(agent_->Poll(kT0 + milliseconds(10)).empty());  // 5: not low.
  ASSERT_TRUE(pools_[0]->TryTake(1, kT0 + milliseconds(10)));
  std::vector<SidecarMessage> out = agent_->Poll(kT0 + milliseconds(20));
  ASSERT_EQ(Resources(out), std::vector<std::string>{"a"});
  EXPECT_DOUBLE_EQ(out[0].demand().held(), 4);
  // Spent the early report: no more until a grant, only periodic ones.
  ASSERT_TRUE(pools_[0]->TryTake(4, kT0 + milliseconds(20)));
  EXPECT_TRUE(agent_->Poll(kT0 + milliseconds(30)).empty());
  EXPECT_EQ(agent_->NextWakeup(), kT0 + milliseconds(100));  // b's periodic.
  // A grant (even one that only restates the target) re-arms it.
  agent_->OnServerMessage(Grant("a", 0, 2, 10), kT0 + milliseconds(40));
  EXPECT_EQ(Resources(agent_->Poll(kT0 + milliseconds(40))),
            std::vector<std::string>{"a"});
  EXPECT_TRUE(agent_->Poll(kT0 + milliseconds(50)).empty());
}

TEST_F(LeaseAgentTest, EarlyReportWhenHeldIsBelowWhatIsQueued) {
  agent_->OnConnected(kT0);
  agent_->OnServerMessage(Grant("b", 3, 1, /*target=*/4, 2000, 10, 0, "k1"),
                          kT0);
  EXPECT_TRUE(agent_->Poll(kT0 + milliseconds(10)).empty());  // 3 >= 4 / 2
  ASSERT_EQ(limiters_[1]->Acquire(5, seconds(1), kT0).outcome,
            AcquireOutcome::kQueued);
  std::vector<SidecarMessage> out = agent_->Poll(kT0 + milliseconds(20));
  ASSERT_EQ(Resources(out), std::vector<std::string>{"b"});
  EXPECT_DOUBLE_EQ(out[0].demand().queued(), 5);
  EXPECT_DOUBLE_EQ(out[0].demand().held(), 3);
}

TEST_F(LeaseAgentTest, GrantSeqSeenIsTheHighestOnThisStream) {
  agent_->OnConnected(kT0);
  agent_->OnServerMessage(Grant("a", 1, 1, 10), kT0);
  agent_->OnServerMessage(Grant("b", 1, 3, 10, 2000, 10, 0, "k1"), kT0);
  // Reordered (a datagram): overtaken by seq 3, so its token is dropped.
  // Once a report says 3 was seen, the server stops counting seq 2 as in
  // flight; spending it too could exceed the bound.
  agent_->OnServerMessage(Grant("a", 1, 2, 10), kT0);
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0), 1);
  EXPECT_EQ(agent_->stale_grants(), 1u);
  std::vector<SidecarMessage> out = agent_->Poll(kT0 + milliseconds(100));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].demand().grant_seq_seen(), 3u);
  EXPECT_EQ(out[1].demand().grant_seq_seen(), 3u);
  // A grant for a bucket this sidecar does not have is dropped, but it was
  // received.
  agent_->OnServerMessage(Grant("zzz", 100, 4, 100), kT0 + milliseconds(100));
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(100)), 1);
  out = agent_->Poll(kT0 + milliseconds(200));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].demand().grant_seq_seen(), 4u);
  // A new stream starts over.
  agent_->OnDisconnected(kT0 + milliseconds(200));
  out = agent_->OnConnected(kT0 + milliseconds(300));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].demand().grant_seq_seen(), 0u);
  EXPECT_EQ(out[2].demand().grant_seq_seen(), 0u);
  // Held tokens from the old stream are still reported (they count).
  EXPECT_DOUBLE_EQ(out[1].demand().held(), 1);
  EXPECT_EQ(out[1].demand().elapsed_ms(), 100u);
}

TEST_F(LeaseAgentTest, LowerTargetShrinksBeforeTheGrantIsAdded) {
  agent_->OnConnected(kT0);
  agent_->OnServerMessage(Grant("a", 10, 1, 10), kT0);
  // Target only: drop down to 3.
  agent_->OnServerMessage(Grant("a", 0, 2, 3), kT0 + milliseconds(10));
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(10)), 3);
  // Shrink to 1, then 2 more arrive.
  agent_->OnServerMessage(Grant("a", 2, 3, 1), kT0 + milliseconds(20));
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(20)), 3);
  // A higher target never drops anything.
  agent_->OnServerMessage(Grant("a", 1, 4, 50), kT0 + milliseconds(30));
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(30)), 4);
  // Target 0 revokes.
  agent_->OnServerMessage(Grant("a", 0, 5, 0), kT0 + milliseconds(40));
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0 + milliseconds(40)), 0);
}

TEST_F(LeaseAgentTest, LimitUpdateSetsCapacityAndPolicy) {
  agent_->OnConnected(kT0);
  EXPECT_DOUBLE_EQ(pools_[0]->Capacity(), 100);
  agent_->OnServerMessage(Limit("a", 100, 40, v1::FAIL_CLOSED, 2), kT0);
  EXPECT_DOUBLE_EQ(pools_[0]->Capacity(), 40);
  EXPECT_DOUBLE_EQ(pools_[1]->Capacity(), 100);  // Other resource.
  agent_->OnServerMessage(Limit("b", 10, 7, v1::FAIL_OPEN, 2), kT0);
  EXPECT_DOUBLE_EQ(pools_[1]->Capacity(), 7);
  EXPECT_EQ(limiters_[1]->Acquire(8, seconds(1), kT0).outcome,
            AcquireOutcome::kRejectedTooCostly);
  agent_->OnDisconnected(kT0);
  EXPECT_EQ(pools_[0]->Mode(kT0), LeaseMode::kFailClosed);
  EXPECT_EQ(pools_[1]->Mode(kT0), LeaseMode::kFailOpen);
  // Unspecified means fallback_share.
  agent_->OnServerMessage(
      Limit("a", 100, 40, v1::UNAVAILABLE_POLICY_UNSPECIFIED, 2), kT0);
  EXPECT_EQ(pools_[0]->Mode(kT0), LeaseMode::kFallbackShare);
  agent_->OnServerMessage(Limit("b", 10, 7, v1::FALLBACK_SHARE, 2), kT0);
  EXPECT_EQ(pools_[1]->Mode(kT0), LeaseMode::kFallbackShare);
}

TEST_F(LeaseAgentTest, DisconnectSpendsHeldThenFallsBackToTheShare) {
  agent_->OnConnected(kT0);
  agent_->OnServerMessage(
      Limit("a", 100, 50, v1::UNAVAILABLE_POLICY_UNSPECIFIED, 4), kT0);
  agent_->OnServerMessage(Grant("a", 10, 1, 10, /*ttl_ms=*/1000, /*share=*/20),
                          kT0);
  agent_->OnDisconnected(kT0 + milliseconds(10));
  EXPECT_FALSE(agent_->connected());
  EXPECT_TRUE(agent_->Poll(kT0 + seconds(1)).empty());
  EXPECT_EQ(agent_->NextWakeup(), TimePoint::max());

  RateLimiter& l = *limiters_[0];
  const TimePoint t = kT0 + milliseconds(10);
  EXPECT_EQ(pools_[0]->Mode(t), LeaseMode::kLeased);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(l.Acquire(2, Duration::zero(), t).outcome,
              AcquireOutcome::kAdmitted);
  }
  // 2 held, more than that waits for the held batch to expire, then the
  // local bucket (burst 10) has them.
  AcquireResult q = l.Acquire(3, seconds(2), t);
  ASSERT_EQ(q.outcome, AcquireOutcome::kQueued);
  EXPECT_EQ(q.admit_at, kT0 + seconds(1));
  const TimePoint t1 = kT0 + seconds(1);
  EXPECT_EQ(pools_[0]->Mode(t1), LeaseMode::kFallbackShare);
  EXPECT_EQ(l.Poll(t1).admitted, std::vector<uint64_t>{q.ticket});
  // min(100 / 4, 20) = 20/s; 7 of the burst of 10 left.
  EXPECT_EQ(l.Acquire(7, Duration::zero(), t1).outcome,
            AcquireOutcome::kAdmitted);
  AcquireResult r = l.Acquire(1, seconds(1), t1);
  ASSERT_EQ(r.outcome, AcquireOutcome::kQueued);
  EXPECT_EQ(r.admit_at, t1 + milliseconds(50));

  // Reconnecting returns to leased tokens once the server answers.
  agent_->OnConnected(t1 + milliseconds(50));
  EXPECT_EQ(pools_[0]->Mode(t1 + milliseconds(50)), LeaseMode::kFallbackShare);
  agent_->OnServerMessage(Grant("a", 1, 1, 1, /*ttl_ms=*/1000, /*share=*/20),
                          t1 + milliseconds(51));
  EXPECT_EQ(pools_[0]->Mode(t1 + milliseconds(51)), LeaseMode::kLeased);
}

TEST_F(LeaseAgentTest, BindingAddedWhileConnectedReportsAtOnce) {
  agent_->OnConnected(kT0);
  agent_->OnServerMessage(Limit("b", 10, 7, v1::FAIL_CLOSED, 2), kT0);
  agent_->OnServerMessage(Grant("b", 2, 3, 2, 2000, 5, 0, "k1"), kT0);
  auto [pool, limiter] = NewLeasedLimiter();
  const TimePoint t = kT0 + milliseconds(10);
  std::vector<SidecarMessage> out =
      agent_->AddBinding(LeaseBinding{"b", "k2", limiter, pool}, t);
  EXPECT_EQ(agent_->bindings(), 3u);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].has_demand());
  EXPECT_EQ(out[0].demand().bucket().resource(), "b");
  EXPECT_EQ(out[0].demand().bucket().key_hash(), "k2");
  EXPECT_EQ(out[0].demand().held(), 0);
  EXPECT_EQ(out[0].demand().grant_seq_seen(), 3u);
  // The server already spoke on this stream: the new pool spends leased
  // tokens only, under the limit it announced for the resource.
  EXPECT_EQ(pool->Mode(t), LeaseMode::kLeased);
  EXPECT_DOUBLE_EQ(pool->Capacity(), 7);
  agent_->OnDisconnected(t);
  EXPECT_EQ(pool->Mode(t), LeaseMode::kFailClosed);
  // Grants find their own key's pool.
  agent_->OnConnected(t);
  agent_->OnServerMessage(Grant("b", 4, 1, 4, 2000, 5, 0, "k2"), t);
  EXPECT_DOUBLE_EQ(pool->Held(t), 4);
  EXPECT_DOUBLE_EQ(pools_[1]->Held(t), 2);
  EXPECT_EQ(limiter->Acquire(4, Duration::zero(), t).outcome,
            AcquireOutcome::kAdmitted);
}

TEST_F(LeaseAgentTest, BindingAddedWhileDisconnectedReportsOnConnect) {
  auto [pool, limiter] = NewLeasedLimiter();
  // A pool that started out connected is put back on its policy: the
  // stream it was created for is gone.
  pool->SetConnected(true, kT0);
  EXPECT_TRUE(
      agent_->AddBinding(LeaseBinding{"b", "k2", limiter, pool}, kT0).empty());
  EXPECT_NE(pool->Mode(kT0), LeaseMode::kLeased);
  std::vector<SidecarMessage> out = agent_->OnConnected(kT0);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[3].demand().bucket().key_hash(), "k2");
  // The same bucket again replaces the binding rather than doubling it.
  auto [pool2, limiter2] = NewLeasedLimiter();
  out = agent_->AddBinding(LeaseBinding{"b", "k2", limiter2, pool2}, kT0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(agent_->bindings(), 3u);
  agent_->OnServerMessage(Grant("b", 3, 1, 3, 2000, 5, 0, "k2"), kT0);
  EXPECT_DOUBLE_EQ(pool2->Held(kT0), 3);
  EXPECT_DOUBLE_EQ(pool->Held(kT0), 0);
}

TEST_F(LeaseAgentTest, ExpiredLimiterBindingIsDroppedAfterALastReport) {
  auto [pool, limiter] = NewLeasedLimiter();
  agent_->AddBinding(LeaseBinding{"b", "k2", limiter, pool}, kT0);
  agent_->OnConnected(kT0);
  agent_->OnServerMessage(Grant("b", 4, 1, 4, 2000, 5, 0, "k2"), kT0);
  ASSERT_DOUBLE_EQ(pool->Held(kT0), 4);
  limiter.reset();  // evicted: only the agent's weak_ptr is left
  const TimePoint t = kT0 + milliseconds(1);
  std::vector<SidecarMessage> out = agent_->Poll(t);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].demand().bucket().key_hash(), "k2");
  EXPECT_EQ(out[0].demand().held(), 0);  // its tokens are gone
  EXPECT_EQ(out[0].demand().grant_seq_seen(), 1u);
  EXPECT_EQ(agent_->bindings(), 2u);
  EXPECT_DOUBLE_EQ(pool->Held(t), 0);
  // Never reported again, and a late grant for it is ignored.
  agent_->OnServerMessage(Grant("b", 4, 2, 4, 2000, 5, 0, "k2"), t);
  EXPECT_DOUBLE_EQ(pool->Held(t), 0);
  for (const SidecarMessage& m : agent_->Poll(kT0 + seconds(1))) {
    EXPECT_NE(m.demand().bucket().key_hash(), "k2");
  }
  // Disconnected, the binding is dropped without a report.
  auto [pool3, limiter3] = NewLeasedLimiter();
  agent_->AddBinding(LeaseBinding{"b", "k3", limiter3, pool3},
                     kT0 + seconds(1));
  agent_->OnDisconnected(kT0 + seconds(1));
  limiter3.reset();
  EXPECT_TRUE(agent_->Poll(kT0 + seconds(2)).empty());
  EXPECT_EQ(agent_->bindings(), 2u);
}

TEST_F(LeaseAgentTest, ServerEpochChangesAreCounted) {
  agent_->OnConnected(kT0);
  EXPECT_EQ(agent_->server_epoch(), 0u);
  ServerMessage m = Limit("a", 100, 50, v1::FALLBACK_SHARE, 1);
  m.set_server_epoch(7);
  agent_->OnServerMessage(m, kT0);
  agent_->OnServerMessage(m, kT0);
  EXPECT_EQ(agent_->server_epoch(), 7u);
  EXPECT_EQ(agent_->server_restarts_seen(), 0u);
  // A restarted server, seen over a new stream.
  agent_->OnDisconnected(kT0);
  agent_->OnConnected(kT0 + seconds(1));
  m.set_server_epoch(9);
  agent_->OnServerMessage(m, kT0 + seconds(1));
  EXPECT_EQ(agent_->server_epoch(), 9u);
  EXPECT_EQ(agent_->server_restarts_seen(), 1u);
  // 0 is "not set", not a restart.
  m.set_server_epoch(0);
  agent_->OnServerMessage(m, kT0 + seconds(1));
  EXPECT_EQ(agent_->server_epoch(), 9u);
  EXPECT_EQ(agent_->server_restarts_seen(), 1u);
}

TEST_F(LeaseAgentTest, ReportsCarryTheLatestStatedLimitOnce) {
  auto throttle = std::make_shared<BucketPause>(BucketPause::Options{});
  ThrottledAgent t = AgentWithThrottle("", throttle);
  LeaseAgent& agent = *t.agent;
  throttle->NoteStatedLimit({.limit = 600, .window = seconds(60)});
  std::vector<SidecarMessage> out = agent.Poll(kT0 + milliseconds(100));
  ASSERT_EQ(Resources(out), std::vector<std::string>{"c"});
  EXPECT_EQ(out[0].demand().stated_limit(), 600);
  EXPECT_EQ(out[0].demand().stated_window_ms(), 60000u);
  out = agent.Poll(kT0 + milliseconds(300));  // nothing new was stated
  ASSERT_EQ(Resources(out), std::vector<std::string>{"c"});
  EXPECT_EQ(out[0].demand().stated_limit(), 0);
  EXPECT_EQ(out[0].demand().stated_window_ms(), 0u);
}

// ApplyPauseNow (the stream's reaction) pauses the throttle and returns the
// ack before the agent sees the message; the agent's turn then drops the
// held tokens, without a second pause or a second ack. Unknown buckets are
// ignored.
TEST_F(LeaseAgentTest, PauseAppliedOnReadThenCompletedByTheAgent) {
  int pauses = 0;
  auto throttle = CountingThrottle(&pauses);
  ThrottledAgent t = AgentWithThrottle("k", throttle);
  LeaseAgent& agent = *t.agent;
  LeasePool* pool = t.pool.get();
  agent.OnServerMessage(Grant("c", 5, 1, 10, 2000, 10, 0, "k"), kT0);
  ASSERT_GT(pool->Held(kT0), 0);

  ServerMessage m = PauseMessage(3, "k");
  const ServerMessage other = PauseMessage(3, "nope");
  const auto unknown =
      agent.ApplyPauseNow(other.pause(), kT0 + milliseconds(10));
  EXPECT_FALSE(unknown.known);
  EXPECT_FALSE(unknown.ack.has_value());
  EXPECT_EQ(pauses, 0);

  const auto now = agent.ApplyPauseNow(m.pause(), kT0 + milliseconds(10));
  EXPECT_TRUE(now.known);
  EXPECT_TRUE(now.first);
  ASSERT_TRUE(now.ack.has_value());  // sent at once by the caller
  const auto& ack = now.ack;
  EXPECT_EQ(ack->pause_ack().pause_id(), 3u);
  EXPECT_EQ(ack->pause_ack().bucket().key_hash(), "k");
  EXPECT_EQ(pauses, 1);
  // The fast path's copy of the same pause, later: nothing more.
  const auto late = agent.ApplyPauseNow(m.pause(), kT0 + milliseconds(12),
                                        LeaseAgent::PausePath::kDatagram);
  EXPECT_TRUE(late.known);
  EXPECT_FALSE(late.first);
  EXPECT_FALSE(late.ack.has_value());
  EXPECT_EQ(pauses, 1);
  EXPECT_FALSE(throttle->Allows(kT0 + milliseconds(11)));
  EXPECT_GT(pool->Held(kT0 + milliseconds(11)), 0);  // not the agent's yet

  agent.OnServerMessage(m, kT0 + milliseconds(14));
  EXPECT_EQ(pauses, 1);  // not twice
  EXPECT_EQ(pool->Held(kT0 + milliseconds(14)), 0);
  for (const SidecarMessage& s : agent.Poll(kT0 + milliseconds(15))) {
    EXPECT_FALSE(s.has_pause_ack()) << "acked twice";
  }
  // A pause the reaction did not see is acked by the agent as before.
  m.mutable_pause()->set_pause_id(4);
  agent.OnServerMessage(m, kT0 + milliseconds(20));
  bool acked = false;
  for (const SidecarMessage& s : agent.Poll(kT0 + milliseconds(21))) {
    acked |= s.has_pause_ack() && s.pause_ack().pause_id() == 4;
  }
  EXPECT_TRUE(acked);
}

// A pause that came first as a datagram is acked as one; its stream copy
// applies nothing but is acked on the stream as well (the stream carries
// an ack of every pause it carried), once.
TEST_F(LeaseAgentTest, DatagramFirstThenTheStreamsCopy) {
  int pauses = 0;
  auto throttle = CountingThrottle(&pauses);
  ThrottledAgent t = AgentWithThrottle("k", throttle);
  LeaseAgent& agent = *t.agent;
  const ServerMessage m = PauseMessage(5, "k");

  const auto by_datagram = agent.ApplyPauseNow(
      m.pause(), kT0 + milliseconds(1), LeaseAgent::PausePath::kDatagram);
  EXPECT_TRUE(by_datagram.first);
  ASSERT_TRUE(by_datagram.ack.has_value());
  EXPECT_EQ(pauses, 1);
  EXPECT_FALSE(throttle->Allows(kT0 + milliseconds(2)));
  // The same datagram again (a replay the reader let through): nothing.
  EXPECT_FALSE(agent
                   .ApplyPauseNow(m.pause(), kT0 + milliseconds(3),
                                  LeaseAgent::PausePath::kDatagram)
                   .ack.has_value());

  const auto by_stream = agent.ApplyPauseNow(m.pause(), kT0 + milliseconds(21));
  EXPECT_FALSE(by_stream.first);
  ASSERT_TRUE(by_stream.ack.has_value());
  EXPECT_EQ(pauses, 1);
  agent.OnServerMessage(m, kT0 + milliseconds(22));
  EXPECT_EQ(pauses, 1);
  for (const SidecarMessage& s : agent.Poll(kT0 + milliseconds(23))) {
    EXPECT_FALSE(s.has_pause_ack()) << "acked twice on the stream";
  }
}

// A grant datagram may come after the pause that stopped the server's
// grants: its tokens would all be spent the instant the pause ends, past the
// probe and the ramp, so they are dropped.
TEST_F(LeaseAgentTest, AGrantThatComesDuringAPauseAddsNoTokens) {
  int pauses = 0;
  ThrottledAgent t = AgentWithThrottle("k", CountingThrottle(&pauses));
  LeaseAgent& agent = *t.agent;
  agent.OnServerMessage(Grant("c", 4, 1, 10, 2000, 10, 0, "k"), kT0);
  EXPECT_DOUBLE_EQ(t.pool->Held(kT0), 4);
  const ServerMessage m = PauseMessage(5, "k");
  agent.ApplyPauseNow(m.pause(), kT0 + milliseconds(1),
                      LeaseAgent::PausePath::kDatagram);
  agent.OnServerMessage(m, kT0 + milliseconds(2));  // the stream's copy
  EXPECT_DOUBLE_EQ(t.pool->Held(kT0 + milliseconds(2)), 0);
  agent.OnServerMessage(Grant("c", 6, 2, 10, 2000, 10, 0, "k"),
                        kT0 + milliseconds(30));
  EXPECT_DOUBLE_EQ(t.pool->Held(kT0 + milliseconds(30)), 0);
  // It was received all the same: the next report says so, and the server
  // stops counting its tokens.
  for (const SidecarMessage& s : agent.Poll(kT0 + milliseconds(200))) {
    if (s.has_demand()) {
      EXPECT_EQ(s.demand().grant_seq_seen(), 2u);
    }
  }
  EXPECT_EQ(pauses, 1);
}

// An overtaken grant brings no tokens, but its target still lowers what the
// pool holds (an overtaken shrink or revoke is not lost).
TEST_F(LeaseAgentTest, AnOvertakenShrinkStillShrinks) {
  agent_->OnConnected(kT0);
  agent_->OnServerMessage(Grant("a", 8, 1, 10), kT0);
  agent_->OnServerMessage(Grant("a", 1, 3, 10), kT0);  // 9 held
  agent_->OnServerMessage(Grant("a", 0, 2, 2), kT0);   // a revoke to 2, late
  EXPECT_DOUBLE_EQ(pools_[0]->Held(kT0), 2);
  EXPECT_EQ(agent_->stale_grants(), 1u);
}

// Buckets added at run time are paused on read too; dropped ones are not.
TEST_F(LeaseAgentTest, PauseOnReadFollowsAddedAndDroppedBindings) {
  auto throttle = std::make_shared<BucketPause>(BucketPause::Options{});
  auto [pool, limiter] = NewLeasedLimiter();
  agent_->OnConnected(kT0);
  v1::Pause p;
  p.mutable_bucket()->set_resource("d");
  p.mutable_bucket()->set_key_hash("k9");
  p.set_pause_id(1);
  p.set_remaining_ms(500);
  EXPECT_FALSE(agent_->ApplyPauseNow(p, kT0).known);  // not bound yet
  agent_->AddBinding(LeaseBinding{"d", "k9", limiter, pool, throttle}, kT0);
  EXPECT_TRUE(agent_->ApplyPauseNow(p, kT0).known);
  EXPECT_FALSE(throttle->Allows(kT0 + milliseconds(1)));
  limiter.reset();  // the per-key limiter was evicted
  agent_->Poll(kT0 + milliseconds(10));
  p.set_pause_id(2);
  EXPECT_FALSE(agent_->ApplyPauseNow(p, kT0 + milliseconds(10)).known);
}

}  // namespace
}  // namespace sluice
