#include "proxy/lease/lease_setup.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

SidecarEnvironment Env(std::string pod, std::string host, int64_t pid) {
  SidecarEnvironment env;
  env.pod = std::move(pod);
  env.pod_namespace = "prod";
  env.hostname = std::move(host);
  env.pid = pid;
  return env;
}

TEST(SidecarIdTest, ConfiguredIdWins) {
  EXPECT_EQ(SidecarId("edge-7", Env("web-1", "node", 42)), "edge-7");
}

TEST(SidecarIdTest, PodNameThenHostnameThenFallbackWithPid) {
  EXPECT_EQ(SidecarId("", Env("web-1", "node-a", 42)), "web-1-42");
  EXPECT_EQ(SidecarId("", Env("", "node-a", 42)), "node-a-42");
  EXPECT_EQ(SidecarId("", Env("", "", 42)), "sluice-proxy-42");
}

TEST(SidecarIdTest, TwoProcessesOnOneHostDiffer) {
  EXPECT_NE(SidecarId("", Env("", "node-a", 1)),
            SidecarId("", Env("", "node-a", 2)));
}

TEST(SidecarIdTest, CurrentEnvironmentGivesAUsableId) {
  const SidecarEnvironment env = CurrentSidecarEnvironment();
  EXPECT_GT(env.pid, 0);
  EXPECT_THAT(SidecarId("", env),
              MatchesRegex(".+-" + std::to_string(env.pid)));
}

TEST(LeaseAgentOptionsForTest, HelloFieldsFromConfigAndEnvironment) {
  QuotaClientConfig quota;
  quota.weight = 2.5;
  const LeaseAgent::Options o =
      LeaseAgentOptionsFor(quota, Env("web-1", "node-a", 7), "1.2.3");
  EXPECT_EQ(o.sidecar_id, "web-1-7");
  EXPECT_EQ(o.pod, "web-1");
  EXPECT_EQ(o.pod_namespace, "prod");
  EXPECT_EQ(o.version, "1.2.3");
  EXPECT_EQ(o.weight, 2.5);
  EXPECT_EQ(o.refresh, std::chrono::milliseconds(100));
  quota.sidecar_id = "fixed";
  EXPECT_EQ(LeaseAgentOptionsFor(quota, Env("web-1", "n", 7), "v").sidecar_id,
            "fixed");
}

TEST(LeasePoolOptionsForTest, LocalBurstAndRatePerSecond) {
  LimitConfig limit;
  limit.rate = 3000;
  limit.period = std::chrono::minutes(1);
  limit.burst = 100;
  const LeasePool::Options o = LeasePoolOptionsFor(limit);
  EXPECT_EQ(o.initial_capacity, 100);
  EXPECT_DOUBLE_EQ(o.initial_rate_per_second, 50);
  EXPECT_EQ(o.refresh, std::chrono::milliseconds(100));
  EXPECT_EQ(o.policy, UnavailablePolicy::kFallbackShare);
}

TEST(LeaseReadyDetailTest, StreamStateAndOneLinePerLimit) {
  EXPECT_EQ(LeaseReadyDetail(true, "10.0.0.1:7070",
                             {{"api", "openai", LeaseMode::kLeased},
                              {"pay", "stripe", LeaseMode::kFailClosed}}),
            "quota stream: connected (10.0.0.1:7070)\n"
            "lease api resource=openai mode=leased\n"
            "lease pay resource=stripe mode=fail_closed");
  EXPECT_EQ(LeaseReadyDetail(false, "",
                             {{"api", "openai", LeaseMode::kFallbackShare}}),
            "quota stream: disconnected\n"
            "lease api resource=openai mode=fallback_share");
  EXPECT_THAT(
      LeaseReadyDetail(false, "q:1", {{"x", "y", LeaseMode::kFailOpen}}),
      HasSubstr("mode=fail_open"));
}

TEST(LeaseReadyDetailTest, PerKeyLimitCountsItsKeysByMode) {
  LeaseReadyLine keyed{"keyed", "openai-keys"};
  keyed.keys = 5;
  keyed.keys_by_mode = {3, 2, 0, 0};
  EXPECT_EQ(LeaseReadyDetail(true, "q:1", {keyed}),
            "quota stream: connected (q:1)\n"
            "lease keyed resource=openai-keys per_key keys=5 leased=3 "
            "fallback_share=2 fail_closed=0 fail_open=0");
  keyed.keys = 0;
  keyed.keys_by_mode = {};
  EXPECT_THAT(LeaseReadyDetail(true, "q:1", {keyed}),
              HasSubstr("per_key keys=0 leased=0"));
}

}  // namespace
}  // namespace sluice
