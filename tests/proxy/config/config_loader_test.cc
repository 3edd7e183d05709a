#include "proxy/config/config_loader.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/time/duration.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

// The repository root, found from this file's location
// (tests/proxy/config/config_loader_test.cc).
std::filesystem::path RepoRoot() {
#ifdef SLUICE_SOURCE_DIR
  // Set by CMake: __FILE__ is relative when ccache rewrites paths.
  return std::filesystem::path(SLUICE_SOURCE_DIR);
#endif
  return std::filesystem::path(__FILE__)
      .parent_path()
      .parent_path()
      .parent_path();
}

std::string ExampleConfigPath() {
  return (RepoRoot() / "proxy" / "sluice-proxy.example.yaml").string();
}

std::string ErrorOf(std::string_view yaml) {
  absl::StatusOr<ProxyConfig> config = LoadProxyConfigFromString(yaml);
  if (config.ok()) return "OK";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

ProxyConfig LoadOrDie(std::string_view yaml) {
  absl::StatusOr<ProxyConfig> config = LoadProxyConfigFromString(yaml);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : ProxyConfig{};
}

TEST(ConfigLoaderTest, FastPathIsOnUnlessTurnedOff) {
  EXPECT_TRUE(
      LoadOrDie("quota: {servers: [\"127.0.0.1:7070\"]}\n").quota.fast_path);
  EXPECT_FALSE(
      LoadOrDie("quota: {servers: [\"127.0.0.1:7070\"], fast_path: false}\n")
          .quota.fast_path);
}

TEST(ConfigLoaderTest, LeasedPerKeyLimitIsAccepted) {
  const ProxyConfig c = LoadOrDie(
      "quota: {servers: [\"127.0.0.1:7070\"]}\n"
      "rate_limits:\n"
      "  k: {rate: 5, resource: api, per_key: {header: x-api-key, "
      "max_keys: 9}}\n");
  const LimitConfig* k = c.FindLimit("k");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->resource, "api");
  ASSERT_TRUE(k->per_key.has_value());
  EXPECT_EQ(k->per_key->header, "x-api-key");
  EXPECT_EQ(k->per_key->max_keys, 9u);
  // A resource still needs a quota server, keyed or not.
  EXPECT_EQ(ErrorOf("rate_limits:\n  k: {rate: 5, resource: api, "
                    "per_key: {header: x-api-key}}\n"),
            "rate_limits.k.resource: needs quota.servers (no quota server is "
            "configured)");
}

TEST(ConfigLoaderTest, DefaultsAreAsDocumented) {
  const ProxyConfig c = DefaultProxyConfig();
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.listen[0].ToString(), "127.0.0.1:3128");
  EXPECT_EQ(c.listen[1].host, "::1");
  EXPECT_EQ(c.listen[1].ToString(), "[::1]:3128");
  EXPECT_EQ(c.workers, 1);
  ASSERT_TRUE(c.admin.listen.has_value());
  EXPECT_EQ(c.admin.listen->ToString(), "127.0.0.1:9901");
  EXPECT_EQ(c.timeouts.header_read, seconds(10));
  EXPECT_EQ(c.timeouts.client_idle, seconds(60));
  EXPECT_EQ(c.timeouts.connect, seconds(5));
  EXPECT_EQ(c.timeouts.upstream_response, seconds(60));
  EXPECT_EQ(c.timeouts.body_idle, seconds(60));
  EXPECT_EQ(c.timeouts.tunnel_idle, seconds(300));
  EXPECT_EQ(c.timeouts.pool_idle, seconds(30));
  EXPECT_EQ(c.limits.max_header_bytes, 65536u);
  EXPECT_EQ(c.limits.max_uri_bytes, 8192u);
  EXPECT_EQ(c.limits.max_connections, 1024u);
  EXPECT_EQ(c.limits.pool_max_idle_per_host, 64u);
  EXPECT_EQ(c.limits.pool_max_idle_total, 256u);
  EXPECT_EQ(c.limits.buffer_bytes, 65536u);
  EXPECT_EQ(c.connect.allowed_ports, std::vector<uint16_t>{443});
  EXPECT_TRUE(c.ssrf.allow.empty());
  EXPECT_EQ(c.shutdown_grace, seconds(10));
  EXPECT_TRUE(c.access_log.enabled);
  EXPECT_EQ(c.access_log.path, "-");
  EXPECT_EQ(c.headers.max_wait, "x-sluice-max-wait");
  EXPECT_TRUE(c.rate_limits.empty());
  EXPECT_TRUE(c.routes.empty());
}

TEST(ConfigLoaderTest, EmptyDocumentsGiveDefaults) {
  for (std::string_view yaml : {"", "\n\n", "# just a comment\n", "---\n",
                                "~\n", "timeouts:\nlimits:\nrate_limits:\n"}) {
    absl::StatusOr<ProxyConfig> config = LoadProxyConfigFromString(yaml);
    ASSERT_TRUE(config.ok()) << "yaml: " << yaml << " " << config.status();
    EXPECT_EQ(*config, DefaultProxyConfig()) << "yaml: " << yaml;
  }
}

TEST(ConfigLoaderTest, LimitDefaults) {
  ProxyConfig c = LoadOrDie("rate_limits:\n  a:\n    rate: 10\n");
  const LimitConfig* limit = c.FindLimit("a");
  ASSERT_NE(limit, nullptr);
  EXPECT_EQ(limit->name, "a");
  EXPECT_EQ(limit->rate, 10);
  EXPECT_EQ(limit->period, seconds(1));
  EXPECT_EQ(limit->burst, 1);
  EXPECT_EQ(limit->algorithm, LimitAlgorithm::kGcra);
  EXPECT_EQ(limit->max_queue, 1000u);
  EXPECT_EQ(limit->max_wait, seconds(30));
  EXPECT_EQ(limit->cost, 1);
  EXPECT_EQ(limit->cost_header, "");
  EXPECT_EQ(limit->max_cost, 0);
  EXPECT_EQ(limit->EffectiveMaxCost(), 1);
  EXPECT_FALSE(limit->per_key.has_value());
  EXPECT_EQ(c.FindLimit("b"), nullptr);
}

TEST(ConfigLoaderTest, ExampleFileLoads) {
  absl::StatusOr<ProxyConfig> loaded =
      LoadProxyConfigFromFile(ExampleConfigPath());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const ProxyConfig& c = *loaded;

  // The example spells out the defaults for everything but the limits and
  // routes.
  ProxyConfig without_limits = c;
  without_limits.rate_limits.clear();
  without_limits.routes.clear();
  EXPECT_EQ(without_limits, DefaultProxyConfig());

  ASSERT_EQ(c.rate_limits.size(), 2u);
  const LimitConfig* openai = c.FindLimit("openai");
  ASSERT_NE(openai, nullptr);
  EXPECT_EQ(openai->rate, 3000);
  EXPECT_EQ(openai->period, minutes(1));
  EXPECT_EQ(openai->burst, 50);
  EXPECT_EQ(openai->algorithm, LimitAlgorithm::kGcra);
  EXPECT_EQ(openai->max_queue, 1000u);
  EXPECT_EQ(openai->max_wait, seconds(30));
  EXPECT_EQ(openai->cost, 1);
  EXPECT_EQ(openai->cost_header, "");
  EXPECT_EQ(openai->max_cost, 0);
  ASSERT_TRUE(openai->per_key.has_value());
  EXPECT_EQ(openai->per_key->header, "Authorization");
  EXPECT_EQ(openai->per_key->max_keys, 10000u);

  const LimitConfig* tokens = c.FindLimit("anthropic-tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->algorithm, LimitAlgorithm::kTokenBucket);
  EXPECT_EQ(tokens->cost_header, "x-sluice-cost");
  EXPECT_EQ(tokens->max_cost, 20000);
  EXPECT_EQ(tokens->EffectiveMaxCost(), 20000);
  EXPECT_FALSE(tokens->per_key.has_value());

  ASSERT_EQ(c.routes.size(), 3u);
  EXPECT_EQ(c.routes[0].host, "api.openai.com");
  EXPECT_EQ(c.routes[0].path_prefix, "/v1/models");
  EXPECT_EQ(c.routes[0].limit, "");
  EXPECT_EQ(c.routes[1].path_prefix, "/v1/");
  EXPECT_EQ(c.routes[1].methods, std::vector<std::string>{"POST"});
  EXPECT_EQ(c.routes[1].limit, "openai");
  EXPECT_EQ(c.routes[1].scheme, RouteScheme::kAny);
  EXPECT_FALSE(c.routes[1].originate_tls);
  EXPECT_EQ(c.routes[2].host, "*.anthropic.com");
  EXPECT_TRUE(c.routes[2].methods.empty());
  EXPECT_EQ(c.routes[2].limit, "anthropic-tokens");
}

constexpr char kFullConfig[] = R"(
listen: ["0.0.0.0:8080", "[::]:0", "10.1.2.3:65535"]
workers: 4
admin:
  listen: "[::1]:9000"
timeouts:
  header_read: 1.5s
  client_idle: 2m
  connect: 250ms
  upstream_response: 1h
  body_idle: 7
  tunnel_idle: 0.5
  pool_idle: 1m30s
limits:
  max_header_bytes: 1024
  max_uri_bytes: 64
  max_connections: 5
  pool_max_idle_per_host: 0
  pool_max_idle_total: 0
  buffer_bytes: 4096
connect:
  allowed_ports: [443, 8443, 80]
ssrf:
  allow: ["127.0.0.0/8", "fd00::/8", "10.0.0.1/32", "::/0", "192.168.1.7"]
shutdown_grace: 0
access_log:
  enabled: false
  path: /var/log/sluice/access.log
headers:
  max_wait: ""
intercept:
  hosts: [api.openai.com, "*.stripe.com", "[2001:db8::1]"]
  ca: {cert: /etc/sluice/ca.pem, key: /etc/sluice/ca-key.pem}
  leaf_validity: 2h
  leaf_cache: 3
upstream_tls:
  ca_bundle: /etc/ssl/corp.pem
  insecure_skip_verify: [legacy.internal, 10.0.0.9]
  session_cache: 0
rate_limits:
  slow:
    rate: 0.5
    period: 1h
    burst: 2.5
    algorithm: token_bucket
    max_queue: 0
    max_wait: 0s
    cost: 0.25
    cost_header: X-Cost
    max_cost: 2
    per_key:
      header: x-api-key
      max_keys: 7
    throttle:
      enabled: false
      statuses: [429, 420]
      when_exhausted: []
      reset_style: epoch
      broadcast: false
      resume_jitter: 0s
      limit_window: 1m
      ignore:
        - {status: 529}
        - {status: 429, header: Stripe-Rate-Limited-Reason, value: lock_timeout}
        - {status: 429, body: "\"code\": \"lock_timeout\""}
        - {body: 'THROTTLED \ é'}
      body_peek_bytes: 65536
      pause: {default: 3s, max: 1m, backoff: 1.5, probe_timeout: 1s,
              ramp: 0s, ramp_start: 1}
routes:
  - host: API.Example.COM.
    path_prefix: /
    methods: [get, Post, PURGE]
    limit: slow
    retry: {on_throttle: true, methods: all, max_attempts: 4,
            max_body_bytes: 1048576}
    scheme: http
    originate_tls: true
  - {}
  - {host: "*.stripe.com", scheme: https}
)";

TEST(ConfigLoaderTest, EveryFieldIsRead) {
  const ProxyConfig c = LoadOrDie(kFullConfig);
  ASSERT_EQ(c.listen.size(), 3u);
  EXPECT_EQ(c.listen[0], (ListenAddress{"0.0.0.0", 8080}));
  EXPECT_EQ(c.listen[1], (ListenAddress{"::", 0}));
  EXPECT_EQ(c.listen[2], (ListenAddress{"10.1.2.3", 65535}));
  EXPECT_EQ(c.workers, 4);
  EXPECT_EQ(c.admin.listen, (ListenAddress{"::1", 9000}));
  EXPECT_EQ(c.timeouts.header_read, milliseconds(1500));
  EXPECT_EQ(c.timeouts.client_idle, minutes(2));
  EXPECT_EQ(c.timeouts.connect, milliseconds(250));
  EXPECT_EQ(c.timeouts.upstream_response, hours(1));
  EXPECT_EQ(c.timeouts.body_idle, seconds(7));
  EXPECT_EQ(c.timeouts.tunnel_idle, milliseconds(500));
  EXPECT_EQ(c.timeouts.pool_idle, seconds(90));
  EXPECT_EQ(c.limits.max_header_bytes, 1024u);
  EXPECT_EQ(c.limits.max_uri_bytes, 64u);
  EXPECT_EQ(c.limits.max_connections, 5u);
  EXPECT_EQ(c.limits.pool_max_idle_per_host, 0u);
  EXPECT_EQ(c.limits.pool_max_idle_total, 0u);
  EXPECT_EQ(c.limits.buffer_bytes, 4096u);
  EXPECT_EQ(c.connect.allowed_ports, (std::vector<uint16_t>{443, 8443, 80}));
  EXPECT_EQ(c.ssrf.allow,
            (std::vector<std::string>{"127.0.0.0/8", "fd00::/8", "10.0.0.1/32",
                                      "::/0", "192.168.1.7"}));
  EXPECT_EQ(c.shutdown_grace, Duration::zero());
  EXPECT_FALSE(c.access_log.enabled);
  EXPECT_EQ(c.access_log.path, "/var/log/sluice/access.log");
  EXPECT_EQ(c.headers.max_wait, "");
  EXPECT_EQ(c.intercept,
            (InterceptConfig{
                .hosts = {"api.openai.com", "*.stripe.com", "[2001:db8::1]"},
                .ca_cert = "/etc/sluice/ca.pem",
                .ca_key = "/etc/sluice/ca-key.pem",
                .leaf_validity = hours(2),
                .leaf_cache = 3}));
  EXPECT_EQ(c.upstream_tls,
            (UpstreamTlsConfig{
                .ca_bundle = "/etc/ssl/corp.pem",
                .insecure_skip_verify = {"legacy.internal", "10.0.0.9"},
                .session_cache = 0}));

  const LimitConfig* slow = c.FindLimit("slow");
  ASSERT_NE(slow, nullptr);
  EXPECT_EQ(slow->rate, 0.5);
  EXPECT_EQ(slow->period, hours(1));
  EXPECT_EQ(slow->burst, 2.5);
  EXPECT_EQ(slow->algorithm, LimitAlgorithm::kTokenBucket);
  EXPECT_EQ(slow->max_queue, 0u);
  EXPECT_EQ(slow->max_wait, Duration::zero());
  EXPECT_EQ(slow->cost, 0.25);
  EXPECT_EQ(slow->cost_header, "X-Cost");
  EXPECT_EQ(slow->max_cost, 2);
  ASSERT_TRUE(slow->per_key.has_value());
  EXPECT_EQ(slow->per_key->header, "x-api-key");
  EXPECT_EQ(slow->per_key->max_keys, 7u);
  const ThrottleConfig& t = slow->throttle;
  EXPECT_FALSE(t.enabled);
  EXPECT_EQ(t.statuses, (std::vector<int>{429, 420}));
  EXPECT_TRUE(t.when_exhausted.empty());
  EXPECT_EQ(t.reset_style, ResetStyle::kEpochSeconds);
  EXPECT_FALSE(t.broadcast);
  EXPECT_EQ(t.resume_jitter, Duration::zero());
  EXPECT_EQ(t.limit_window, minutes(1));
  ASSERT_EQ(t.ignore.size(), 4u);
  EXPECT_EQ(t.ignore[0], (ThrottleIgnoreRule{.status = 529}));
  EXPECT_EQ(t.ignore[1],
            (ThrottleIgnoreRule{.status = 429,
                                .header = "Stripe-Rate-Limited-Reason",
                                .value = "lock_timeout"}));
  EXPECT_EQ(t.ignore[2],
            (ThrottleIgnoreRule{.status = 429,
                                .body = "\"code\": \"lock_timeout\""}));
  EXPECT_EQ(t.ignore[3], (ThrottleIgnoreRule{.body = "THROTTLED \\ \xc3\xa9"}));
  EXPECT_EQ(t.body_peek_bytes, 65536u);
  EXPECT_EQ(t.pause.default_pause, seconds(3));
  EXPECT_EQ(t.pause.max_pause, minutes(1));
  EXPECT_EQ(t.pause.backoff_factor, 1.5);
  EXPECT_EQ(t.pause.probe_timeout, seconds(1));
  EXPECT_EQ(t.pause.ramp, Duration::zero());
  EXPECT_EQ(t.pause.ramp_start, 1);

  ASSERT_EQ(c.routes.size(), 3u);
  EXPECT_EQ(c.routes[0].host, "API.Example.COM.");
  EXPECT_EQ(c.routes[0].path_prefix, "/");
  EXPECT_EQ(c.routes[0].methods,
            (std::vector<std::string>{"GET", "POST", "PURGE"}));
  EXPECT_EQ(c.routes[0].limit, "slow");
  EXPECT_EQ(c.routes[0].retry, (RetryConfig{.on_throttle = true,
                                            .all_methods = true,
                                            .max_attempts = 4,
                                            .max_body_bytes = 1048576}));
  EXPECT_EQ(c.routes[0].scheme, RouteScheme::kHttp);
  EXPECT_TRUE(c.routes[0].originate_tls);
  EXPECT_EQ(c.routes[1], RouteConfig{});
  EXPECT_EQ(c.routes[1].retry.max_body_bytes, 65536u);
  EXPECT_EQ(c.routes[2].host, "*.stripe.com");
  EXPECT_EQ(c.routes[2].scheme, RouteScheme::kHttps);
  EXPECT_FALSE(c.routes[2].originate_tls);
}

TEST(ConfigLoaderTest, AdminCanBeDisabled) {
  EXPECT_FALSE(LoadOrDie("admin:\n  listen: off\n").admin.listen.has_value());
  EXPECT_FALSE(LoadOrDie("admin:\n  listen: \"\"\n").admin.listen.has_value());
}

struct ErrorCase {
  std::string yaml;
  std::string message;  // The exact expected error message.
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.yaml; }

class ConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrorTest, ReportsFieldAndReason) {
  EXPECT_EQ(ErrorOf(GetParam().yaml), GetParam().message) << "yaml:\n"
                                                          << GetParam().yaml;
}

// Builds a config with one limit "a" holding the given extra fields.
std::string LimitYaml(std::string_view fields) {
  return absl::StrCat("rate_limits:\n  a:\n", std::string(fields));
}

INSTANTIATE_TEST_SUITE_P(
    Validation, ConfigErrorTest,
    ::testing::Values(
        // Top level.
        ErrorCase{"hello",
                  "config: must be a map (got \"hello\") (line 1, column 1)"},
        ErrorCase{"- a\n",
                  "config: must be a map (got a list) (line 1, column 1)"},
        ErrorCase{"a: 1\n---\nb: 2\n",
                  "config: must hold a single YAML document (second one at "
                  "line 2)"},
        ErrorCase{"---\na: 1\n---\n",
                  "config: must hold a single YAML "
                  "document (second one at line 3)"},
        // A stray top-level ',' once made the loader spin forever.
        ErrorCase{",", "yaml syntax error at line 1, column 1: unexpected ','"},
        ErrorCase{"&a ,\n",
                  "yaml syntax error at line 1, column 4: unexpected ','"},
        ErrorCase{"[1]\n,\n",
                  "yaml syntax error at line 2, column 1: unexpected ','"},
        ErrorCase{"lisen: []\n",
                  "lisen: unknown field (expected one of: listen, workers, "
                  "admin, timeouts, limits, connect, ssrf, shutdown_grace, "
                  "access_log, headers, quota, intercept, upstream_tls, "
                  "rate_limits, routes) (line 1, column 1)"},
        ErrorCase{"quota: {weight: 0}\n",
                  "quota.weight: must be a number > 0 and <= 1e12 (got \"0\") "
                  "(line 1, column 17)"},
        ErrorCase{"quota: {fast_path: udp}\n",
                  "quota.fast_path: must be true or false (got \"udp\") "
                  "(line 1, column 20)"},
        ErrorCase{"quota: {servers: [\"\"]}\n",
                  "quota.servers[0]: must be host:port or dns:///name:port "
                  "(line 1, column 19)"},
        ErrorCase{"quota: {backoff_initial: 2s, backoff_max: 1s}\n",
                  "quota.backoff_max: must be >= quota.backoff_initial"},
        ErrorCase{"rate_limits:\n  a: {rate: 1, resource: api}\n",
                  "rate_limits.a.resource: needs quota.servers (no quota "
                  "server is configured)"},
        ErrorCase{"workers: 2\nworkers: 3\n",
                  "workers: duplicate field (line 2, column 1)"},
        ErrorCase{"[a]: 1\n",
                  "config: keys must be plain strings (line 1, column 1)"},
        // listen.
        ErrorCase{"listen: [\"1.2.3.4\"]\n",
                  "listen[0]: bad address \"1.2.3.4\" (want host:port) (line "
                  "1, column 10)"},
        ErrorCase{
            "listen: [\"127.0.0.1:80\", \"localhost:80\"]\n",
            "listen[1]: bad address \"localhost:80\" (host must be an IPv4 "
            "address or a bracketed IPv6 address) (line 1, column 26)"},
        ErrorCase{"listen: [\"::1:80\"]\n",
                  "listen[0]: bad address \"::1:80\" (IPv6 addresses need "
                  "brackets, e.g. [::1]:3128) (line 1, column 10)"},
        ErrorCase{"listen: [\":3128\"]\n",
                  "listen[0]: bad address \":3128\" (missing host; write "
                  "0.0.0.0:PORT or [::]:PORT to listen on all interfaces) "
                  "(line 1, column 10)"},
        ErrorCase{"listen: [\"[::1:80\"]\n",
                  "listen[0]: bad address \"[::1:80\" (missing ']') (line 1, "
                  "column 10)"},
        ErrorCase{"listen: [\"[::1]80\"]\n",
                  "listen[0]: bad address \"[::1]80\" (want [ipv6]:port) (line "
                  "1, column 10)"},
        ErrorCase{
            "listen: [\"[1.2.3.4]:80\"]\n",
            "listen[0]: bad address \"[1.2.3.4]:80\" (not an IPv6 address "
            "inside the brackets) (line 1, column 10)"},
        ErrorCase{"listen: [\"1.2.3.4:65536\"]\n",
                  "listen[0]: bad address \"1.2.3.4:65536\" (port must be a "
                  "number in 0..65535) (line 1, column 10)"},
        ErrorCase{"listen: [\"1.2.3.4:-1\"]\n",
                  "listen[0]: bad address \"1.2.3.4:-1\" (port must be a "
                  "number in 0..65535) (line 1, column 10)"},
        ErrorCase{"listen: [\"1.2.3.4:80\", \"1.2.3.4:80\"]\n",
                  "listen[1]: duplicate address (line 1, column 24)"},
        ErrorCase{"listen: []\n",
                  "listen: needs at least one address (line 1, column 9)"},
        ErrorCase{
            "listen: \"1.2.3.4:80\"\n",
            "listen: must be a list (got \"1.2.3.4:80\") (line 1, column 9)"},
        ErrorCase{
            "listen: [[1]]\n",
            "listen[0]: must be a string (got a list) (line 1, column 10)"},
        // workers.
        ErrorCase{"workers: 0\n",
                  "workers: must be an integer in 1..64 (got \"0\") (line 1, "
                  "column 10)"},
        ErrorCase{"workers: 65\n",
                  "workers: must be an integer in 1..64 (got \"65\") (line 1, "
                  "column 10)"},
        ErrorCase{"workers: 1.5\n",
                  "workers: must be an integer in 1..64 (got \"1.5\") (line 1, "
                  "column 10)"},
        ErrorCase{"workers: -1\n",
                  "workers: must be an integer in 1..64 (got \"-1\") (line 1, "
                  "column 10)"},
        // admin.
        ErrorCase{"admin:\n  listen: 9901\n",
                  "admin.listen: bad address \"9901\" (want host:port) (line "
                  "2, column 11)"},
        ErrorCase{"admin:\n  port: 1\n",
                  "admin.port: unknown field (expected one of: listen) (line "
                  "2, column 3)"},
        ErrorCase{"admin: on\n",
                  "admin: must be a map (got \"on\") (line 1, column 8)"},
        ErrorCase{
            "listen: [\"127.0.0.1:80\"]\nadmin:\n  listen: 127.0.0.1:80\n",
            "admin.listen: same address as listen[0]"},
        // timeouts.
        ErrorCase{
            "timeouts:\n  conect: 5s\n",
            "timeouts.conect: unknown field (expected one of: header_read, "
            "client_idle, connect, upstream_response, body_idle, "
            "tunnel_idle, pool_idle) (line 2, column 3)"},
        ErrorCase{
            "timeouts:\n  connect: abc\n",
            "timeouts.connect: bad duration \"abc\": bad duration 'abc' (use "
            "forms like 250ms, 1.5s, 2m, 1h) (line 2, column 12)"},
        ErrorCase{
            "timeouts:\n  connect: -1s\n",
            "timeouts.connect: bad duration \"-1s\": duration must be finite "
            "and non-negative: -1s (line 2, column 12)"},
        ErrorCase{"timeouts:\n  header_read: 0s\n",
                  "timeouts.header_read: must be > 0 (line 2, column 16)"},
        ErrorCase{"timeouts:\n  tunnel_idle: 8761h\n",
                  "timeouts.tunnel_idle: must be at most 8760h (one year) "
                  "(line 2, column 16)"},
        ErrorCase{
            "timeouts:\n  pool_idle: [1]\n",
            "timeouts.pool_idle: must be a duration such as 250ms, 10s or 1m "
            "(got a list) (line 2, column 14)"},
        ErrorCase{
            "timeouts:\n  body_idle:\n",
            "timeouts.body_idle: must be a duration such as 250ms, 10s or 1m "
            "(got nothing)"},
        // limits.
        ErrorCase{
            "limits:\n  max_header_bytes: 100\n",
            "limits.max_header_bytes: must be an integer in 1024..16777216 "
            "(got \"100\") (line 2, column 21)"},
        ErrorCase{
            "limits:\n  max_uri_bytes: 8k\n",
            "limits.max_uri_bytes: must be an integer in 64..16777216 (got "
            "\"8k\") (line 2, column 18)"},
        ErrorCase{
            "limits:\n  max_connections: 0\n",
            "limits.max_connections: must be an integer in 1..1000000 (got "
            "\"0\") (line 2, column 20)"},
        ErrorCase{
            "limits:\n  pool_max_idle_per_host: 100001\n",
            "limits.pool_max_idle_per_host: must be an integer in 0..100000 "
            "(got \"100001\") (line 2, column 27)"},
        ErrorCase{
            "limits:\n  pool_max_idle_total: x\n",
            "limits.pool_max_idle_total: must be an integer in 0..1000000 "
            "(got \"x\") (line 2, column 24)"},
        ErrorCase{
            "limits:\n  buffer_bytes: 99999999999\n",
            "limits.buffer_bytes: must be an integer in 1024..67108864 (got "
            "\"99999999999\") (line 2, column 17)"},
        ErrorCase{"limits:\n  max_body_bytes: 1\n",
                  "limits.max_body_bytes: unknown field (expected one of: "
                  "max_header_bytes, max_uri_bytes, max_connections, "
                  "pool_max_idle_per_host, pool_max_idle_total, buffer_bytes) "
                  "(line 2, column 3)"},
        // connect / ssrf.
        ErrorCase{
            "connect:\n  allowed_ports: [443, 0]\n",
            "connect.allowed_ports[1]: must be an integer in 1..65535 (got "
            "\"0\") (line 2, column 24)"},
        ErrorCase{"connect:\n  allowed_ports: 443\n",
                  "connect.allowed_ports: must be a list (got \"443\") (line "
                  "2, column 18)"},
        ErrorCase{
            "ssrf:\n  allow: [\"10.1.2.3/8\"]\n",
            "ssrf.allow[0]: bad CIDR \"10.1.2.3/8\" (address has bits set "
            "past the /8 prefix; write the network address (e.g. "
            "10.0.0.0/8)) (line 2, column 11)"},
        ErrorCase{
            "ssrf:\n  allow: [\"10.0.0.0/\"]\n",
            "ssrf.allow[0]: bad CIDR \"10.0.0.0/\" (prefix length must be "
            "a number in 0..32) (line 2, column 11)"},
        ErrorCase{
            "ssrf:\n  allow: [\"[::1]/128\"]\n",
            "ssrf.allow[0]: bad CIDR \"[::1]/128\" (want "
            "address/prefix-length, e.g. 10.0.0.0/8 or fd00::/8) (line 2, "
            "column 11)"},
        ErrorCase{
            "ssrf:\n  allow: [\"010.0.0.0/8\"]\n",
            "ssrf.allow[0]: bad CIDR \"010.0.0.0/8\" (want "
            "address/prefix-length, e.g. 10.0.0.0/8 or fd00::/8) (line 2, "
            "column 11)"},
        ErrorCase{
            "ssrf:\n  allow: [10.0.0.0/33]\n",
            "ssrf.allow[0]: bad CIDR \"10.0.0.0/33\" (prefix length must be a "
            "number in 0..32) (line 2, column 11)"},
        ErrorCase{
            "ssrf:\n  allow: [\"fd00::/129\"]\n",
            "ssrf.allow[0]: bad CIDR \"fd00::/129\" (prefix length must be a "
            "number in 0..128) (line 2, column 11)"},
        ErrorCase{
            "ssrf:\n  allow: [\"example.com/8\"]\n",
            "ssrf.allow[0]: bad CIDR \"example.com/8\" (want "
            "address/prefix-length, e.g. 10.0.0.0/8 or fd00::/8) (line 2, "
            "column 11)"},
        ErrorCase{"ssrf:\n  deny: []\n",
                  "ssrf.deny: unknown field (expected one of: allow) (line 2, "
                  "column 3)"},
        // shutdown_grace, access_log, headers.
        ErrorCase{
            "shutdown_grace: soon\n",
            "shutdown_grace: bad duration \"soon\": bad duration 'soon' (use "
            "forms like 250ms, 1.5s, 2m, 1h) (line 1, column 17)"},
        ErrorCase{"access_log:\n  enabled: maybe\n",
                  "access_log.enabled: must be true or false (got \"maybe\") "
                  "(line 2, column 12)"},
        ErrorCase{"access_log:\n  path: \"\"\n",
                  "access_log.path: must not be empty (use \"-\" for stdout) "
                  "(line 2, column 9)"},
        ErrorCase{"headers:\n  max_wait: \"bad header\"\n",
                  "headers.max_wait: bad header name \"bad header\" (line 2, "
                  "column 13)"},
        // rate_limits.
        ErrorCase{LimitYaml("    rate: abc\n"),
                  "rate_limits.a.rate: must be a number > 0 and <= 1e12 (got "
                  "\"abc\") (line 3, column 11)"},
        ErrorCase{
            LimitYaml("    rate: 0\n"),
            "rate_limits.a.rate: must be a number > 0 and <= 1e12 (got \"0\") "
            "(line 3, column 11)"},
        ErrorCase{LimitYaml("    rate: nan\n"),
                  "rate_limits.a.rate: must be a number > 0 and <= 1e12 (got "
                  "\"nan\") (line 3, column 11)"},
        ErrorCase{LimitYaml("    rate: inf\n"),
                  "rate_limits.a.rate: must be a number > 0 and <= 1e12 (got "
                  "\"inf\") (line 3, column 11)"},
        ErrorCase{
            LimitYaml("    period: 1m\n"),
            "rate_limits.a.rate: required (tokens per period, a number > 0) "
            "(line 3, column 5)"},
        ErrorCase{
            "rate_limits:\n  a:\n",
            "rate_limits.a.rate: required (tokens per period, a number > 0)"},
        ErrorCase{LimitYaml("    rate: 1\n    period: 0\n"),
                  "rate_limits.a.period: must be > 0 (line 4, column 13)"},
        ErrorCase{LimitYaml("    rate: 1\n    burst: 0.5\n"),
                  "rate_limits.a.burst: must be a number >= 1 and <= 1e12 (got "
                  "\"0.5\") (line 4, column 12)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    algorithm: leaky\n"),
            "rate_limits.a.algorithm: must be \"gcra\" or \"token_bucket\" "
            "(got \"leaky\") (line 4, column 16)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    algorithm: GCRA\n"),
            "rate_limits.a.algorithm: must be \"gcra\" or \"token_bucket\" "
            "(got \"GCRA\") (line 4, column 16)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    max_queue: -1\n"),
            "rate_limits.a.max_queue: must be an integer in 0..1000000 (got "
            "\"-1\") (line 4, column 16)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    max_wait: forever\n"),
            "rate_limits.a.max_wait: bad duration \"forever\": bad duration "
            "'forever' (use forms like 250ms, 1.5s, 2m, 1h) (line 4, column "
            "15)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    cost: 0\n"),
            "rate_limits.a.cost: must be a number > 0 and <= 1e12 (got \"0\") "
            "(line 4, column 11)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    cost: 2\n"),
            "rate_limits.a.cost: must be <= burst (1) or no request could "
            "ever pass (line 4, column 11)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    max_cost: -1\n"),
            "rate_limits.a.max_cost: must be a number >= 0 and <= 1e12 (got "
            "\"-1\") (line 4, column 15)"},
        ErrorCase{LimitYaml("    rate: 1\n    burst: 5\n    max_cost: 6\n"),
                  "rate_limits.a.max_cost: must be <= burst (5); 0 means burst "
                  "(line 5, column 15)"},
        ErrorCase{LimitYaml("    rate: 1\n    cost_header: \"x:y\"\n"),
                  "rate_limits.a.cost_header: bad header name \"x:y\" (line 4, "
                  "column 18)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    per_key: {}\n"),
            "rate_limits.a.per_key.header: required (the request header that "
            "selects the key) (line 4, column 14)"},
        ErrorCase{LimitYaml("    rate: 1\n    per_key:\n      header: \"\"\n"),
                  "rate_limits.a.per_key.header: bad header name \"\" (line 5, "
                  "column 15)"},
        ErrorCase{LimitYaml("    rate: 1\n    per_key:\n      header: a\n"
                            "      max_keys: 0\n"),
                  "rate_limits.a.per_key.max_keys: must be an integer in "
                  "1..10000000 (got \"0\") (line 6, column 17)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    per_key:\n      headr: a\n"),
            "rate_limits.a.per_key.headr: unknown field (expected one of: "
            "header, max_keys) (line 5, column 7)"},
        ErrorCase{LimitYaml("    rate: 1\n    throttle: {statuses: [42]}\n"),
                  "rate_limits.a.throttle.statuses[0]: must be an integer in "
                  "100..599 (got \"42\") (line 4, column 27)"},
        ErrorCase{LimitYaml("    rate: 1\n    throttle: {reset_style: iso}\n"),
                  "rate_limits.a.throttle.reset_style: must be auto, epoch or "
                  "delta (got \"iso\") (line 4, column 29)"},
        ErrorCase{LimitYaml("    rate: 1\n    throttle: {ignore: [{}]}\n"),
                  "rate_limits.a.throttle.ignore[0]: must set `status`, "
                  "`header` or `body` (an empty rule would ignore every "
                  "throttle) (line 4, column 25)"},
        ErrorCase{LimitYaml("    rate: 1\n    throttle: {ignore: [429]}\n"),
                  "rate_limits.a.throttle.ignore[0]: must be a map of status, "
                  "header, value, body (got \"429\") (line 4, column 25)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    throttle: {ignore: [{body: \"\"}]}\n"),
            "rate_limits.a.throttle.ignore[0]: must set `status`, `header` or "
            "`body` (an empty rule would ignore every throttle) (line 4, "
            "column 25)"},
        ErrorCase{LimitYaml("    rate: 1\n    throttle:\n"
                            "      ignore: [{body: \"a\\tb\"}]\n"),
                  "rate_limits.a.throttle.ignore[0].body: must be printable "
                  "UTF-8 (line 5, column 23)"},
        ErrorCase{LimitYaml("    rate: 1\n    throttle:\n"
                            "      ignore: [{body: [x]}]\n"),
                  "rate_limits.a.throttle.ignore[0].body: must be a string "
                  "(got a list) (line 5, column 23)"},
        ErrorCase{LimitYaml("    rate: 1\n    throttle:\n"
                            "      ignore: [{status: 429, body: abcde}]\n"
                            "      body_peek_bytes: 4\n"),
                  "rate_limits.a.throttle.ignore[0].body: is 5 bytes, longer "
                  "than body_peek_bytes (4): it could never match (line 5, "
                  "column 36)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    throttle: {body_peek_bytes: 0}\n"),
            "rate_limits.a.throttle.body_peek_bytes: must be an integer in "
            "1..65536 (got \"0\") (line 4, column 33)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    throttle: {body_peek_bytes: 65537}\n"),
            "rate_limits.a.throttle.body_peek_bytes: must be an integer in "
            "1..65536 (got \"65537\") (line 4, column 33)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    throttle: {body_peek_bytes: 4k}\n"),
            "rate_limits.a.throttle.body_peek_bytes: must be an integer in "
            "1..65536 (got \"4k\") (line 4, column 33)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    throttle: {ignore: [{value: x}]}\n"),
            "rate_limits.a.throttle.ignore[0].value: needs `header` (the "
            "value is matched in that header) (line 4, column 25)"},
        ErrorCase{LimitYaml("    rate: 1\n    throttle: {pause: {max: 0s}}\n"),
                  "rate_limits.a.throttle.pause.max: must be > 0 (line 4, "
                  "column 29)"},
        ErrorCase{LimitYaml("    rate: 1\n    throttle: {limit_window: 0s}\n"),
                  "rate_limits.a.throttle.limit_window: must be > 0 (line 4, "
                  "column 30)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    throttle: {limit_window: 25h}\n"),
            "rate_limits.a.throttle.limit_window: must be at most 24h (line 4, "
            "column 30)"},
        ErrorCase{LimitYaml("    rate: 1\n    throttle: maybe\n"),
                  "rate_limits.a.throttle: must be true or false (got "
                  "\"maybe\") (line 4, column 15)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    brust: 5\n"),
            "rate_limits.a.brust: unknown field (expected one of: rate, "
            "period, burst, algorithm, max_queue, max_wait, cost, "
            "cost_header, max_cost, per_key, resource, throttle) (line 4, "
            "column "
            "5)"},
        ErrorCase{
            LimitYaml("    rate: 2e9\n"),
            "rate_limits.a.rate: more than one token per nanosecond is not "
            "supported (line 3, column 11)"},
        ErrorCase{
            LimitYaml("    rate: 1\n    period: 1h\n    burst: 10000\n"),
            "rate_limits.a.burst: refilling the burst takes longer than a "
            "year (burst / rate * period) (line 5, column 12)"},
        ErrorCase{"rate_limits:\n  \"bad name\":\n    rate: 1\n",
                  "rate_limits.bad name: limit names must be 1..64 letters, "
                  "digits, '_', '-' or '.' (line 2, column 3)"},
        ErrorCase{"rate_limits:\n  a: {rate: 1}\n  a: {rate: 2}\n",
                  "rate_limits.a: duplicate field (line 3, column 3)"},
        ErrorCase{
            "rate_limits: [a]\n",
            "rate_limits: must be a map (got a list) (line 1, column 14)"},
        // routes.
        ErrorCase{
            "rate_limits:\n  openai: {rate: 1}\nroutes:\n  - limit: openai\n"
            "  - limit: openai\n  - limit: foo\n",
            "routes[2].limit: unknown limit \"foo\" (line 6, column 12)"},
        ErrorCase{
            "routes:\n  - host: \"api.example.com:443\"\n",
            "routes[0].host: bad host \"api.example.com:443\" (must not "
            "include a port (routes match the host only)) (line 2, column 11)"},
        ErrorCase{
            "routes:\n  - host: \"a.*.com\"\n",
            "routes[0].host: bad host \"a.*.com\" (a wildcard is only allowed "
            "as a leading \"*.\") (line 2, column 11)"},
        ErrorCase{"routes:\n  - host: \"*.\"\n",
                  "routes[0].host: bad host \"*.\" (empty host name) (line 2, "
                  "column 11)"},
        ErrorCase{
            "routes:\n  - host: \"a..b\"\n",
            "routes[0].host: bad host \"a..b\" (host name has an empty label) "
            "(line 2, column 11)"},
        ErrorCase{
            "routes:\n  - host: \"a b\"\n",
            "routes[0].host: bad host \"a b\" (host names may contain only "
            "letters, digits, '-', '_' and '.') (line 2, column 11)"},
        ErrorCase{
            "routes:\n  - host: \"[example.com]\"\n",
            "routes[0].host: bad host \"[example.com]\" (want an IPv6 address "
            "inside the brackets (and no port)) (line 2, column 11)"},
        ErrorCase{
            "routes:\n  - path_prefix: v1/\n",
            "routes[0].path_prefix: must start with '/' (got \"v1/\") (line 2, "
            "column 18)"},
        ErrorCase{"routes:\n  - path_prefix: /v1?x=1\n",
                  "routes[0].path_prefix: must be a plain ASCII path without "
                  "query, fragment, spaces or control characters (got "
                  "\"/v1?x=1\") (line 2, column 18)"},
        ErrorCase{"routes:\n  - path_prefix: \"/caf\xc3\xa9\"\n",
                  "routes[0].path_prefix: must be a plain ASCII path without "
                  "query, fragment, spaces or control characters (got "
                  "\"/caf\\xc3\\xa9\") (line 2, column 18)"},
        ErrorCase{"access_log:\n  path: \"/tmp/\xff.log\"\n",
                  "access_log.path: must be UTF-8 without control characters "
                  "(line 2, column 9)"},
        ErrorCase{"access_log:\n  path: \"/tmp/a\\tb.log\"\n",
                  "access_log.path: must be UTF-8 without control characters "
                  "(line 2, column 9)"},
        ErrorCase{
            "routes:\n  - methods: [GET, \"PO ST\"]\n",
            "routes[0].methods[1]: bad method \"PO ST\" (line 2, column 20)"},
        ErrorCase{"routes:\n  - methods: GET\n",
                  "routes[0].methods: must be a list (got \"GET\") (line 2, "
                  "column 14)"},
        ErrorCase{"routes:\n  - hots: a.com\n",
                  "routes[0].hots: unknown field (expected one of: host, "
                  "path_prefix, methods, limit, retry, scheme, originate_tls) "
                  "(line 2, column 5)"},
        ErrorCase{"routes:\n  - retry: {max_body_bytes: 1048577}\n",
                  "routes[0].retry.max_body_bytes: must be an integer in "
                  "0..1048576 (got \"1048577\") (line 2, column 29)"},
        ErrorCase{"routes:\n  - retry: {max_body_bytes: -1}\n",
                  "routes[0].retry.max_body_bytes: must be an integer in "
                  "0..1048576 (got \"-1\") (line 2, column 29)"},
        ErrorCase{"routes:\n  - retry: {max_body: 10}\n",
                  "routes[0].retry.max_body: unknown field (expected one of: "
                  "on_throttle, methods, max_attempts, max_body_bytes) (line "
                  "2, column 13)"},
        ErrorCase{"routes:\n  -\n", "routes[0]: must be a map (got nothing)"},
        ErrorCase{"routes: {a: 1}\n",
                  "routes: must be a list (got a map) (line 1, column 9)"}));

TEST(ConfigLoaderTest, UnknownFieldsAreErrorsAtEveryLevel) {
  const char* cases[][2] = {
      {"workerz: 1\n", "workerz: unknown field"},
      {"admin:\n  lisen: off\n", "admin.lisen: unknown field"},
      {"timeouts:\n  conect: 5s\n", "timeouts.conect: unknown field"},
      {"limits:\n  max_conns: 5\n", "limits.max_conns: unknown field"},
      {"connect:\n  ports: [1]\n", "connect.ports: unknown field"},
      {"ssrf:\n  allows: []\n", "ssrf.allows: unknown field"},
      {"access_log:\n  file: x\n", "access_log.file: unknown field"},
      {"headers:\n  maxwait: x\n", "headers.maxwait: unknown field"},
      {"rate_limits:\n  a:\n    rate: 1\n    Burst: 2\n",
       "rate_limits.a.Burst: unknown field"},
      {"rate_limits:\n  a:\n    rate: 1\n    per_key:\n      header: a\n"
       "      limit: 3\n",
       "rate_limits.a.per_key.limit: unknown field"},
      {"routes:\n  - method: [GET]\n", "routes[0].method: unknown field"},
  };
  for (const auto& [yaml, prefix] : cases) {
    std::string error = ErrorOf(yaml);
    EXPECT_EQ(error.rfind(prefix, 0), 0u) << error;
  }
}

TEST(ConfigLoaderTest, YamlSyntaxErrorHasLineAndColumn) {
  EXPECT_THAT(ErrorOf("workers: 1\ntimeouts:\n  connect: [5s\n"),
              HasSubstr("yaml syntax error at line 4, column 1"));
  EXPECT_THAT(ErrorOf("a: b\n c: d\n  e\n"),
              HasSubstr("yaml syntax error at line 2, column 3"));
  EXPECT_THAT(ErrorOf("routes:\n  - *undefined\n"),
              HasSubstr("yaml syntax error at line 2"));
}

TEST(ConfigLoaderTest, DeepNestingIsAnErrorNotACrash) {
  std::string deep = "routes: ";
  for (int i = 0; i < 5000; ++i) deep += "[";
  EXPECT_THAT(ErrorOf(deep), HasSubstr("nested too deeply"));
}

TEST(ConfigLoaderTest, FileErrorsNameThePath) {
  absl::StatusOr<ProxyConfig> missing =
      LoadProxyConfigFromFile("/nonexistent/sluice.yaml");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("/nonexistent/sluice.yaml"));

  std::string path = (std::filesystem::path(::testing::TempDir()) /
                      "config_loader_test_bad.yaml")
                         .string();
  {
    std::ofstream out(path);
    out << "workers: 1\ntimeouts:\n  conect: 1s\n";
  }
  absl::StatusOr<ProxyConfig> bad = LoadProxyConfigFromFile(path);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      std::string(bad.status().message())
          .rfind(absl::StrCat(path, ": timeouts.conect: unknown field"), 0),
      0u)
      << bad.status();
  std::filesystem::remove(path);
}

TEST(ConfigDumpTest, RoundTripsDefaults) {
  const ProxyConfig defaults = DefaultProxyConfig();
  std::string dump = DumpRedactedConfig(defaults);
  absl::StatusOr<ProxyConfig> reloaded = LoadProxyConfigFromString(dump);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status() << "\n" << dump;
  EXPECT_EQ(*reloaded, defaults) << dump;
  EXPECT_THAT(dump, HasSubstr("127.0.0.1:3128"));
  EXPECT_THAT(dump, HasSubstr("[::1]:3128"));
}

TEST(ConfigDumpTest, RoundTripsEveryField) {
  for (std::string_view yaml :
       {std::string_view(kFullConfig),
        std::string_view("admin:\n  listen: off\n"),
        std::string_view("access_log:\n  path: \"/var/log/caf\xc3\xa9 "
                         "\xf0\x9f\x93\x9c.log\"\n"),
        std::string_view("access_log:\n  path: \"null\"\n"),
        std::string_view("rate_limits:\n  \"null\": {rate: 1e-9, period: 1ns}\n"
                         "  \"true\": {rate: 123456789012, period: 8760h}\n"),
        // Paths that read as other YAML types, or need quoting.
        std::string_view(
            "intercept: {hosts: [\"A.example.\", \"::1\", 10.0.0.1], ca: "
            "{cert: \"null\", key: \"/k\xc3\xa9y: #1.pem\"}, "
            "leaf_validity: 720h, leaf_cache: 100000}\n"
            "upstream_tls: {ca_bundle: \"true\", insecure_skip_verify: "
            "[\"[::1]\"], session_cache: 100000}\n"
            "routes: [{scheme: https}, {originate_tls: true}, {scheme: \"\"}]"
            "\n"),
        std::string_view("intercept: {leaf_validity: 150m}\n")}) {
    const ProxyConfig config = LoadOrDie(yaml);
    std::string dump = DumpRedactedConfig(config);
    absl::StatusOr<ProxyConfig> reloaded = LoadProxyConfigFromString(dump);
    ASSERT_TRUE(reloaded.ok()) << reloaded.status() << "\n" << dump;
    EXPECT_EQ(*reloaded, config) << dump;
  }
}

TEST(ConfigDumpTest, ShowsTheEffectiveConfigNotTheSourceText) {
  // Comments and spellings in the source never reach the dump: it is built
  // from the parsed structs alone, so nothing outside the schema can leak.
  constexpr char kYaml[] = R"(
# Authorization: Bearer sk-live-123 (a pasted secret in a comment)
rate_limits:
  per-user:
    rate: 10
    burst: 10
    per_key:
      header: Authorization   # Bearer sk-live-456
routes:
  - host: api.example.com
    limit: per-user
)";
  const ProxyConfig config = LoadOrDie(kYaml);
  std::string dump = DumpRedactedConfig(config);
  EXPECT_THAT(dump, Not(HasSubstr("sk-live")));
  EXPECT_THAT(dump, Not(HasSubstr("Bearer")));
  // The header *name* is configuration and is shown.
  EXPECT_THAT(dump, HasSubstr("header: \"Authorization\""));
  // Defaults that were not written in the file are shown too.
  EXPECT_THAT(dump, HasSubstr("connect: 5s"));
  EXPECT_THAT(dump, HasSubstr("algorithm: gcra"));
  absl::StatusOr<ProxyConfig> reloaded = LoadProxyConfigFromString(dump);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(*reloaded, config);
}

TEST(ConfigDumpTest, ShowsTheTlsSettings) {
  // The CA key's path is configuration (the key is never read here), and
  // the unverified origins are what an operator must be able to see.
  const ProxyConfig config = LoadOrDie(R"(
intercept:
  hosts: [api.openai.com]
  ca: {cert: /etc/sluice/ca.pem, key: /etc/sluice/ca-key.pem}
upstream_tls:
  insecure_skip_verify: [legacy.internal]
routes:
  - {host: api.openai.com, scheme: https}
  - {host: legacy.internal, originate_tls: true}
)");
  const std::string dump = DumpRedactedConfig(config);
  EXPECT_THAT(dump, HasSubstr("hosts: [\"api.openai.com\"]"));
  EXPECT_THAT(dump, HasSubstr("cert: \"/etc/sluice/ca.pem\""));
  EXPECT_THAT(dump, HasSubstr("key: \"/etc/sluice/ca-key.pem\""));
  EXPECT_THAT(dump, HasSubstr("leaf_validity: 24h"));
  EXPECT_THAT(dump, HasSubstr("insecure_skip_verify: [\"legacy.internal\"]"));
  EXPECT_THAT(dump, HasSubstr("scheme: \"https\""));
  EXPECT_THAT(dump, HasSubstr("originate_tls: true"));
  absl::StatusOr<ProxyConfig> reloaded = LoadProxyConfigFromString(dump);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status() << "\n" << dump;
  EXPECT_EQ(*reloaded, config) << dump;
}

TEST(ConfigDumpTest, RoundTripsTheExampleFile) {
  absl::StatusOr<ProxyConfig> example =
      LoadProxyConfigFromFile(ExampleConfigPath());
  ASSERT_TRUE(example.ok()) << example.status();
  std::string dump = DumpRedactedConfig(*example);
  absl::StatusOr<ProxyConfig> reloaded = LoadProxyConfigFromString(dump);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status() << "\n" << dump;
  EXPECT_EQ(*reloaded, *example) << dump;
}

TEST(ListenAddressTest, ToStringBracketsIpv6) {
  EXPECT_EQ((ListenAddress{"10.0.0.1", 0}).ToString(), "10.0.0.1:0");
  EXPECT_EQ((ListenAddress{"fe80::1", 443}).ToString(), "[fe80::1]:443");
}

TEST(ListenAddressTest, RejectsEmbeddedNul) {
  std::string text("127.0.0.1\0x:80", 14);
  EXPECT_FALSE(ParseListenAddress(text).ok());
  EXPECT_FALSE(CheckCidrSyntax(std::string("10.0.0.0\0/8", 11)).ok());
}

}  // namespace
}  // namespace sluice
