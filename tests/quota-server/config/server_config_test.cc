#include "quota-server/config/server_config.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

std::filesystem::path RepoRoot() {
#ifdef SLUICE_SOURCE_DIR
  return std::filesystem::path(SLUICE_SOURCE_DIR);
#else
  return std::filesystem::path(__FILE__)
      .parent_path()
      .parent_path()
      .parent_path();
#endif
}

std::string ErrorOf(std::string_view yaml) {
  absl::StatusOr<ServerConfig> config = ParseServerConfig(yaml);
  if (config.ok()) return "OK";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

ServerConfig ParseOrDie(std::string_view yaml) {
  absl::StatusOr<ServerConfig> config = ParseServerConfig(yaml);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : ServerConfig{};
}

TEST(ServerConfigTest, ExampleFileParsesWithDocumentedValues) {
  absl::StatusOr<ServerConfig> config = LoadServerConfigFile(
      (RepoRoot() / "quota-server" / "sluice-quota-server.example.yaml")
          .string());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "127.0.0.1:7070");
  EXPECT_EQ(config->admin_listen, "127.0.0.1:9902");
  EXPECT_TRUE(config->learning);
  EXPECT_EQ(config->fast_path, FastPathConfig{});
  ASSERT_EQ(config->resources.size(), 2u);
  const ResourceConfig& openai = config->resources[0];
  EXPECT_EQ(openai.name, "openai");
  EXPECT_EQ(openai.rate, 3000);
  EXPECT_EQ(openai.period, std::chrono::minutes(1));
  EXPECT_DOUBLE_EQ(openai.RatePerSecond(), 50);
  EXPECT_EQ(openai.burst, 100);
  EXPECT_EQ(openai.algorithm, "gcra");
  EXPECT_FALSE(openai.per_key);
  EXPECT_EQ(openai.unavailable_policy, UnavailablePolicy::kFallbackShare);
  EXPECT_EQ(openai.lease, LeaseTuning{});  // the example shows the defaults
  EXPECT_EQ(openai.pause, PauseSchedule::Options{});
  const ResourceConfig& partner = config->resources[1];
  EXPECT_EQ(partner.name, "partner-api");
  EXPECT_TRUE(partner.per_key);
  EXPECT_EQ(partner.period, seconds(1));
  EXPECT_EQ(partner.unavailable_policy, UnavailablePolicy::kFailClosed);
}

TEST(ServerConfigTest, EmptyDocumentGivesDefaults) {
  ServerConfig config = ParseOrDie("");
  EXPECT_EQ(config, ServerConfig{});
}

TEST(ServerConfigTest, ReadsEveryField) {
  ServerConfig c = ParseOrDie(R"(
listen: "[::1]:0"
admin_listen: "off"
learning: false
fast_path: {enabled: false, port: 7071, leases: false}
resources:
  a:
    rate: 5
    period: 500ms
    burst: 7
    algorithm: token_bucket
    per_key: yes
    unavailable_policy: fail_open
    lease: {ttl: 3s, horizon: 0.5, refresh: 50ms, grace: 0}
)");
  EXPECT_EQ(c.listen, "[::1]:0");
  EXPECT_EQ(c.admin_listen, "off");
  EXPECT_FALSE(c.learning);
  EXPECT_FALSE(c.fast_path.enabled);
  EXPECT_EQ(c.fast_path.port, 7071);
  EXPECT_FALSE(c.fast_path.leases);
  ASSERT_EQ(c.resources.size(), 1u);
  const ResourceConfig& r = c.resources[0];
  EXPECT_DOUBLE_EQ(r.RatePerSecond(), 10);
  EXPECT_EQ(r.burst, 7);
  EXPECT_EQ(r.algorithm, "token_bucket");
  EXPECT_TRUE(r.per_key);
  EXPECT_EQ(r.unavailable_policy, UnavailablePolicy::kFailOpen);
  EXPECT_EQ(r.lease.ttl, seconds(3));
  EXPECT_EQ(r.lease.horizon, milliseconds(500));
  EXPECT_EQ(r.lease.refresh, milliseconds(50));
  EXPECT_EQ(r.lease.grace, seconds(0));
}

TEST(ServerConfigTest, UnknownKeysNameTheirPath) {
  EXPECT_THAT(ErrorOf("listne: 1.2.3.4:5"), HasSubstr("listne: unknown field"));
  EXPECT_THAT(ErrorOf("resources:\n  a:\n    rate: 1\n    burts: 3\n"),
              HasSubstr("resources.a.burts: unknown field (expected one of: "
                        "rate, period, burst"));
  EXPECT_THAT(ErrorOf("resources:\n  a:\n    rate: 1\n    lease:\n"
                      "      tll: 1s\n"),
              HasSubstr("resources.a.lease.tll: unknown field"));
}

TEST(ServerConfigTest, LearnReadsTrueOrItsOptions) {
  auto on = ParseServerConfig("resources:\n  a: {rate: 1, learn: true}\n");
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->resources[0].learn);
  EXPECT_EQ(on->resources[0].learn_options, LearnOptions{});
  auto full = ParseServerConfig(
      "resources:\n  a: {rate: 1, learn: {decrease: 0.5, increase: 0.1, "
      "hold: 2s, floor: 0.2}}\n");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_TRUE(full->resources[0].learn);
  EXPECT_EQ(full->resources[0].learn_options,
            (LearnOptions{.decrease = 0.5,
                          .increase = 0.1,
                          .hold = std::chrono::seconds(2),
                          .floor = 0.2}));
  EXPECT_THAT(ParseServerConfig("resources:\n  a: {rate: 1, learn: {decrease: "
                                "1}}\n")
                  .status()
                  .message(),
              HasSubstr("resources.a.learn.decrease: must be below 1"));
  EXPECT_THAT(ParseServerConfig("resources:\n  a: {rate: 1, learn: {flor: "
                                "1}}\n")
                  .status()
                  .message(),
              HasSubstr("resources.a.learn.flor: unknown field"));
}

TEST(ServerConfigTest, BadValuesNameTheirPath) {
  EXPECT_THAT(ErrorOf("resources:\n  openai:\n    rate: 0\n"),
              HasSubstr("resources.openai.rate: must be a number > 0"));
  EXPECT_THAT(ErrorOf("resources:\n  openai:\n    rate: -4\n"),
              HasSubstr("resources.openai.rate: must be a number > 0"));
  EXPECT_THAT(ErrorOf("resources:\n  openai:\n    burst: 5\n"),
              HasSubstr("resources.openai.rate: required"));
  EXPECT_THAT(ErrorOf("resources:\n  a:\n    rate: 1\n    burst: 0.5\n"),
              HasSubstr("resources.a.burst: must be a number >= 1"));
  EXPECT_THAT(ErrorOf("resources:\n  a:\n    rate: 1\n    period: 0s\n"),
              HasSubstr("resources.a.period: must be > 0"));
  EXPECT_THAT(ErrorOf("resources:\n  a:\n    rate: 1\n    period: soon\n"),
              HasSubstr("resources.a.period: bad duration"));
  EXPECT_THAT(ErrorOf("resources:\n  a:\n    rate: 1\n    algorithm: leaky\n"),
              HasSubstr("resources.a.algorithm: must be gcra or token_bucket"));
  EXPECT_THAT(
      ErrorOf("resources:\n  a:\n    rate: 1\n    unavailable_policy: x\n"),
      HasSubstr("resources.a.unavailable_policy: must be fallback_share"));
  EXPECT_THAT(ErrorOf("resources:\n  a:\n    rate: 1\n    per_key: maybe\n"),
              HasSubstr("resources.a.per_key: must be true or false"));
  EXPECT_THAT(ErrorOf("resources:\n  a:\n    rate: 1\n    lease:\n"
                      "      refresh: 3s\n"),
              HasSubstr("resources.a.lease.refresh: must be <= ttl / 2"));
  // Half the default ttl of 1 s is the most a refresh may be.
  EXPECT_THAT(ErrorOf("resources:\n  a:\n    rate: 1\n    lease:\n"
                      "      refresh: 501ms\n"),
              HasSubstr("resources.a.lease.refresh: must be <= ttl / 2"));
  EXPECT_THAT(ErrorOf("resources:\n  a:\n    rate: 1\n    lease:\n"
                      "      ttl: 0\n"),
              HasSubstr("resources.a.lease.ttl: must be > 0"));
  EXPECT_THAT(ErrorOf("resources:\n  \"bad name\":\n    rate: 1\n"),
              HasSubstr("resource names must be"));
  EXPECT_THAT(ErrorOf("resources: [1, 2]"),
              HasSubstr("resources: must be a map"));
  EXPECT_THAT(ErrorOf("listen: localhost:7070"),
              HasSubstr("listen: must be host:port with an IP literal"));
  EXPECT_THAT(ErrorOf("listen: 127.0.0.1:70000"), HasSubstr("listen:"));
  EXPECT_THAT(ErrorOf("learning: 3"),
              HasSubstr("learning: must be true or false"));
  EXPECT_THAT(ErrorOf("fast_path: {port: 70000}"),
              HasSubstr("fast_path.port: must be an integer in 0..65535"));
  EXPECT_THAT(ErrorOf("fast_path: {udp: 1}"), HasSubstr("fast_path.udp"));
  EXPECT_THAT(ErrorOf("fast_path: {leases: sometimes}"),
              HasSubstr("fast_path.leases"));
  EXPECT_THAT(ErrorOf("resources:\n  a: {rate: 1}\n  a: {rate: 2}\n"),
              HasSubstr("resources.a: duplicate field"));
  EXPECT_THAT(ErrorOf("[unclosed"), HasSubstr("not valid YAML"));
}

TEST(ServerConfigTest, ErrorsCarryTheLine) {
  EXPECT_THAT(ErrorOf("resources:\n  a:\n    rate: 0\n"),
              HasSubstr("(line 3, column 11)"));
}

TEST(ServerConfigTest, ValidateChecksStructsDirectly) {
  ServerConfig config;
  ResourceConfig r;
  r.name = "openai";
  r.rate = 10;
  config.resources.push_back(r);
  EXPECT_TRUE(ValidateServerConfig(config).ok());

  ServerConfig bad = config;
  bad.resources[0].rate = 0;
  EXPECT_EQ(ValidateServerConfig(bad).message(),
            "resources.openai.rate: must be > 0 and <= 1e12");
  bad = config;
  bad.resources.push_back(r);
  EXPECT_THAT(ValidateServerConfig(bad).message(),
              HasSubstr("resources.openai: duplicate resource"));
  bad = config;
  bad.resources[0].lease.horizon = seconds(5);
  EXPECT_THAT(ValidateServerConfig(bad).message(),
              HasSubstr("resources.openai.lease.horizon: must be <= ttl"));
  bad = config;
  bad.admin_listen = "nowhere";
  EXPECT_THAT(ValidateServerConfig(bad).message(), HasSubstr("admin_listen"));
  bad = config;
  bad.admin_listen = "";
  EXPECT_TRUE(ValidateServerConfig(bad).ok());
}

TEST(ServerConfigTest, PolicyNamesRoundTrip) {
  for (UnavailablePolicy p :
       {UnavailablePolicy::kFallbackShare, UnavailablePolicy::kFailClosed,
        UnavailablePolicy::kFailOpen}) {
    EXPECT_EQ(ParseUnavailablePolicy(UnavailablePolicyName(p)), p);
  }
  EXPECT_EQ(ParseUnavailablePolicy("FAIL_OPEN"), std::nullopt);
}

TEST(ServerConfigTest, MissingFileIsNamed) {
  absl::StatusOr<ServerConfig> config =
      LoadServerConfigFile("/nonexistent/sluice-quota.yaml");
  ASSERT_FALSE(config.ok());
  // The same answer as sluice-proxy's for its own file (common/config).
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(),
              HasSubstr("/nonexistent/sluice-quota.yaml"));
}

TEST(ServerConfigTest, FileErrorsNameTheFile) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("sluice_quota_config_test_" + std::to_string(::getpid()) + ".yaml");
  {
    std::ofstream out(path);
    out << "resources:\n  a:\n    rate: 0\n";
  }
  absl::StatusOr<ServerConfig> config = LoadServerConfigFile(path.string());
  std::filesystem::remove(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr(path.string()));
  EXPECT_THAT(config.status().message(), HasSubstr("resources.a.rate"));
}

}  // namespace
}  // namespace sluice
