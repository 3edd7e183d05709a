// The TLS parts of the configuration (proxy/config/config_tls.cc), read
// through the loader: `intercept`, `upstream_tls` and a route's `scheme`
// and `originate_tls`. The dump's round trip of them is in
// config_loader_test.cc with every other field.

#include "proxy/config/config_tls.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy/config/config_loader.h"

namespace sluice {
namespace {

using std::chrono::hours;

std::string ErrorOf(std::string_view yaml) {
  absl::StatusOr<ProxyConfig> config = LoadProxyConfigFromString(yaml);
  if (config.ok()) return "OK";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

ProxyConfig LoadOrDie(std::string_view yaml) {
  absl::StatusOr<ProxyConfig> config = LoadProxyConfigFromString(yaml);
  EXPECT_TRUE(config.ok()) << config.status() << "\nyaml:\n" << yaml;
  return config.ok() ? *config : ProxyConfig{};
}

TEST(ConfigTlsTest, DefaultsAreOffAndVerifying) {
  const ProxyConfig c = DefaultProxyConfig();
  EXPECT_TRUE(c.intercept.hosts.empty());
  EXPECT_EQ(c.intercept.ca_cert, "");
  EXPECT_EQ(c.intercept.ca_key, "");
  EXPECT_EQ(c.intercept.leaf_validity, hours(24));
  EXPECT_EQ(c.intercept.leaf_cache, 1000u);
  EXPECT_EQ(c.upstream_tls.ca_bundle, "");
  EXPECT_TRUE(c.upstream_tls.insecure_skip_verify.empty());
  EXPECT_EQ(c.upstream_tls.session_cache, 1000u);
  const RouteConfig route;
  EXPECT_EQ(route.scheme, RouteScheme::kAny);
  EXPECT_FALSE(route.originate_tls);
}

TEST(ConfigTlsTest, EmptyBlocksKeepTheDefaults) {
  for (std::string_view yaml :
       {"intercept:\nupstream_tls:\n", "intercept: {}\nupstream_tls: {}\n",
        "intercept: {hosts: [], ca: {cert: \"\", key: \"\"}}\n"
        "upstream_tls: {ca_bundle: \"\", insecure_skip_verify: []}\n",
        "intercept: {ca: {}}\n"}) {
    EXPECT_EQ(LoadOrDie(yaml), DefaultProxyConfig()) << yaml;
  }
}

TEST(ConfigTlsTest, InterceptIsRead) {
  const ProxyConfig c = LoadOrDie(R"(
intercept:
  hosts: [api.openai.com, "*.stripe.com", API.Example.COM., 10.0.0.1,
          "[2001:db8::1]", "2001:db8::2"]
  ca: {cert: /etc/sluice/ca.pem, key: "/etc/sluice/ca key.pem"}
  leaf_validity: 36h
  leaf_cache: 7
)");
  EXPECT_EQ(c.intercept.hosts,
            (std::vector<std::string>{"api.openai.com", "*.stripe.com",
                                      "API.Example.COM.", "10.0.0.1",
                                      "[2001:db8::1]", "2001:db8::2"}));
  EXPECT_EQ(c.intercept.ca_cert, "/etc/sluice/ca.pem");
  EXPECT_EQ(c.intercept.ca_key, "/etc/sluice/ca key.pem");
  EXPECT_EQ(c.intercept.leaf_validity, hours(36));
  EXPECT_EQ(c.intercept.leaf_cache, 7u);
}

TEST(ConfigTlsTest, InterceptBoundsAreInclusive) {
  constexpr char kCa[] = "  hosts: [a.com]\n  ca: {cert: c.pem, key: k.pem}\n";
  const ProxyConfig low = LoadOrDie(absl::StrCat(
      "intercept:\n", kCa, "  leaf_validity: 2h\n  leaf_cache: 1\n"));
  EXPECT_EQ(low.intercept.leaf_validity, hours(2));
  EXPECT_EQ(low.intercept.leaf_cache, 1u);
  const ProxyConfig high = LoadOrDie(absl::StrCat(
      "intercept:\n", kCa, "  leaf_validity: 720h\n  leaf_cache: 100000\n"));
  EXPECT_EQ(high.intercept.leaf_validity, hours(720));
  EXPECT_EQ(high.intercept.leaf_cache, 100000u);
  // Without hosts, the leaf settings are still read (and unused).
  EXPECT_EQ(
      LoadOrDie("intercept: {leaf_validity: 3h}\n").intercept.leaf_validity,
      hours(3));
}

TEST(ConfigTlsTest, UpstreamTlsIsRead) {
  const ProxyConfig c = LoadOrDie(R"(
upstream_tls:
  ca_bundle: /etc/ssl/certs/corp.pem
  insecure_skip_verify: [legacy.internal, Old.Example.COM., 10.1.2.3,
                         "[fd00::1]"]
  session_cache: 0
)");
  EXPECT_EQ(c.upstream_tls.ca_bundle, "/etc/ssl/certs/corp.pem");
  EXPECT_EQ(c.upstream_tls.insecure_skip_verify,
            (std::vector<std::string>{"legacy.internal", "Old.Example.COM.",
                                      "10.1.2.3", "[fd00::1]"}));
  EXPECT_EQ(c.upstream_tls.session_cache, 0u);
  EXPECT_EQ(LoadOrDie("upstream_tls: {session_cache: 100000}\n")
                .upstream_tls.session_cache,
            100000u);
}

TEST(ConfigTlsTest, RouteSchemeAndOriginateTls) {
  const ProxyConfig c = LoadOrDie(R"(
routes:
  - {host: a.com, scheme: https}
  - {host: a.com, scheme: http, originate_tls: true}
  - {host: b.com, scheme: "", originate_tls: yes}
  - {host: c.com, scheme: https, originate_tls: false}
  - {host: d.com}
)");
  ASSERT_EQ(c.routes.size(), 5u);
  EXPECT_EQ(c.routes[0].scheme, RouteScheme::kHttps);
  EXPECT_FALSE(c.routes[0].originate_tls);
  EXPECT_EQ(c.routes[1].scheme, RouteScheme::kHttp);
  EXPECT_TRUE(c.routes[1].originate_tls);
  EXPECT_EQ(c.routes[2].scheme, RouteScheme::kAny);
  EXPECT_TRUE(c.routes[2].originate_tls);
  EXPECT_EQ(c.routes[3].scheme, RouteScheme::kHttps);
  EXPECT_FALSE(c.routes[3].originate_tls);
  EXPECT_EQ(c.routes[4].scheme, RouteScheme::kAny);
  EXPECT_FALSE(c.routes[4].originate_tls);
  // scheme: https needs no intercept.hosts (nothing checks the two against
  // each other).
  EXPECT_TRUE(c.intercept.hosts.empty());
}

struct ErrorCase {
  std::string yaml;
  std::string message;  // The exact expected error message.
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.yaml; }

class ConfigTlsErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigTlsErrorTest, ReportsFieldAndReason) {
  EXPECT_EQ(ErrorOf(GetParam().yaml), GetParam().message) << "yaml:\n"
                                                          << GetParam().yaml;
}

INSTANTIATE_TEST_SUITE_P(
    Validation, ConfigTlsErrorTest,
    ::testing::Values(
        // intercept: shapes and unknown fields.
        ErrorCase{"intercept: on\n",
                  "intercept: must be a map (got \"on\") (line 1, column 12)"},
        ErrorCase{"intercept:\n  host: [a.com]\n",
                  "intercept.host: unknown field (expected one of: hosts, ca, "
                  "leaf_validity, leaf_cache) (line 2, column 3)"},
        ErrorCase{"intercept:\n  hosts: a.com\n",
                  "intercept.hosts: must be a list (got \"a.com\") (line 2, "
                  "column 10)"},
        ErrorCase{"intercept:\n  hosts: [[a.com]]\n",
                  "intercept.hosts[0]: must be a string (got a list) (line 2, "
                  "column 11)"},
        // intercept.hosts: every host is refused, bad hosts are named.
        ErrorCase{"intercept:\n  hosts: [a.com, \"*\"]\n",
                  "intercept.hosts[1]: must name a host (intercepting every "
                  "host is not allowed) (got \"*\") (line 2, column 18)"},
        ErrorCase{"intercept:\n  hosts: [\"\"]\n",
                  "intercept.hosts[0]: must name a host (intercepting every "
                  "host is not allowed) (got \"\") (line 2, column 11)"},
        ErrorCase{"intercept:\n  hosts: [\"a.com:443\"]\n",
                  "intercept.hosts[0]: bad host \"a.com:443\" (must not "
                  "include a port (routes match the host only)) (line 2, "
                  "column 11)"},
        ErrorCase{"intercept:\n  hosts: [\"a.*.com\"]\n",
                  "intercept.hosts[0]: bad host \"a.*.com\" (a wildcard is "
                  "only allowed as a leading \"*.\") (line 2, column 11)"},
        ErrorCase{"intercept:\n  hosts: [\"*.\"]\n",
                  "intercept.hosts[0]: bad host \"*.\" (empty host name) "
                  "(line 2, column 11)"},
        ErrorCase{"intercept:\n  hosts: [\"[1.2.3.4]\"]\n",
                  "intercept.hosts[0]: bad host \"[1.2.3.4]\" (want an IPv6 "
                  "address inside the brackets (and no port)) (line 2, "
                  "column 11)"},
        // intercept.ca.
        ErrorCase{"intercept:\n  hosts: [a.com]\n",
                  "intercept.ca: needs cert and key, the CA that signs the "
                  "certificates minted for intercept.hosts (missing: cert and "
                  "key) (line 2, column 3)"},
        ErrorCase{"intercept:\n  hosts: [a.com]\n  ca: {cert: c.pem}\n",
                  "intercept.ca: needs cert and key, the CA that signs the "
                  "certificates minted for intercept.hosts (missing: key) "
                  "(line 3, column 7)"},
        ErrorCase{"intercept:\n  hosts: [a.com]\n  ca: {cert: \"\", key: "
                  "k.pem}\n",
                  "intercept.ca: needs cert and key, the CA that signs the "
                  "certificates minted for intercept.hosts (missing: cert) "
                  "(line 3, column 7)"},
        ErrorCase{"intercept:\n  ca: {cert: c.pem, key: k.pem}\n",
                  "intercept.hosts: name the hosts to intercept (a CA is set, "
                  "but without hosts nothing is intercepted) (line 2, column "
                  "3)"},
        ErrorCase{"intercept:\n  hosts: []\n  ca: {key: k.pem}\n",
                  "intercept.hosts: name the hosts to intercept (a CA is set, "
                  "but without hosts nothing is intercepted) (line 2, column "
                  "10)"},
        ErrorCase{"intercept:\n  ca: /etc/ca.pem\n",
                  "intercept.ca: must be a map (got \"/etc/ca.pem\") (line 2, "
                  "column 7)"},
        ErrorCase{"intercept:\n  ca: {cert: a, crt: b}\n",
                  "intercept.ca.crt: unknown field (expected one of: cert, "
                  "key) (line 2, column 17)"},
        ErrorCase{"intercept:\n  ca: {cert: [a]}\n",
                  "intercept.ca.cert: must be a string (got a list) (line 2, "
                  "column 14)"},
        ErrorCase{"intercept:\n  ca: {key: \"k\\tey.pem\"}\n",
                  "intercept.ca.key: must be UTF-8 without control characters "
                  "(line 2, column 13)"},
        // intercept: leaf settings.
        ErrorCase{"intercept: {leaf_validity: 1h59m}\n",
                  "intercept.leaf_validity: must be between 2h and 720h (30 "
                  "days) (got \"1h59m\") (line 1, column 28)"},
        ErrorCase{"intercept: {leaf_validity: 721h}\n",
                  "intercept.leaf_validity: must be between 2h and 720h (30 "
                  "days) (got \"721h\") (line 1, column 28)"},
        ErrorCase{"intercept: {leaf_validity: 0}\n",
                  "intercept.leaf_validity: must be > 0 (line 1, column 28)"},
        ErrorCase{"intercept: {leaf_validity: 30d}\n",
                  "intercept.leaf_validity: bad duration \"30d\": bad "
                  "duration '30d' (use forms like 250ms, 1.5s, 2m, 1h) (line "
                  "1, column 28)"},
        ErrorCase{"intercept: {leaf_cache: 0}\n",
                  "intercept.leaf_cache: must be an integer in 1..100000 (got "
                  "\"0\") (line 1, column 25)"},
        ErrorCase{"intercept: {leaf_cache: 100001}\n",
                  "intercept.leaf_cache: must be an integer in 1..100000 (got "
                  "\"100001\") (line 1, column 25)"},
        // upstream_tls.
        ErrorCase{"upstream_tls: []\n",
                  "upstream_tls: must be a map (got a list) (line 1, column "
                  "15)"},
        ErrorCase{"upstream_tls: {ca: x}\n",
                  "upstream_tls.ca: unknown field (expected one of: "
                  "ca_bundle, insecure_skip_verify, session_cache) (line 1, "
                  "column 16)"},
        ErrorCase{"upstream_tls: {ca_bundle: [x]}\n",
                  "upstream_tls.ca_bundle: must be a string (got a list) "
                  "(line 1, column 27)"},
        ErrorCase{"upstream_tls: {ca_bundle: \"a\\nb\"}\n",
                  "upstream_tls.ca_bundle: must be UTF-8 without control "
                  "characters (line 1, column 27)"},
        ErrorCase{"upstream_tls: {session_cache: 100001}\n",
                  "upstream_tls.session_cache: must be an integer in "
                  "0..100000 (got \"100001\") (line 1, column 31)"},
        ErrorCase{"upstream_tls: {session_cache: -1}\n",
                  "upstream_tls.session_cache: must be an integer in "
                  "0..100000 (got \"-1\") (line 1, column 31)"},
        ErrorCase{"upstream_tls: {insecure_skip_verify: a.com}\n",
                  "upstream_tls.insecure_skip_verify: must be a list (got "
                  "\"a.com\") (line 1, column 38)"},
        ErrorCase{"upstream_tls:\n  insecure_skip_verify: [a.com, "
                  "\"*.b.com\"]\n",
                  "upstream_tls.insecure_skip_verify[1]: must be an exact "
                  "host name, not a wildcard (got \"*.b.com\") (line 2, "
                  "column 33)"},
        ErrorCase{"upstream_tls:\n  insecure_skip_verify: [\"*\"]\n",
                  "upstream_tls.insecure_skip_verify[0]: must be an exact "
                  "host name, not a wildcard (got \"*\") (line 2, column 26)"},
        ErrorCase{"upstream_tls:\n  insecure_skip_verify: [\"\"]\n",
                  "upstream_tls.insecure_skip_verify[0]: must name a host "
                  "(skipping verification for every host is not allowed) "
                  "(got \"\") (line 2, column 26)"},
        ErrorCase{"upstream_tls:\n  insecure_skip_verify: [\"a b\"]\n",
                  "upstream_tls.insecure_skip_verify[0]: bad host \"a b\" "
                  "(host names may contain only letters, digits, '-', '_' "
                  "and '.') (line 2, column 26)"},
        // routes.
        ErrorCase{"routes:\n  - {host: a.com, scheme: HTTPS}\n",
                  "routes[0].scheme: must be \"\", http or https (got "
                  "\"HTTPS\") (line 2, column 27)"},
        ErrorCase{"routes:\n  - {scheme: [http]}\n",
                  "routes[0].scheme: must be a string (got a list) (line 2, "
                  "column 14)"},
        ErrorCase{"routes:\n  - {originate_tls: 1}\n",
                  "routes[0].originate_tls: must be true or false (got "
                  "\"1\") (line 2, column 21)"},
        ErrorCase{"routes:\n  - {}\n  - host: a.com\n    scheme: https\n"
                  "    originate_tls: true\n",
                  "routes[1].originate_tls: must not be set with scheme: "
                  "https (a request from an intercepted tunnel already goes "
                  "to its origin over TLS) (line 5, column 20)"}));

}  // namespace
}  // namespace sluice
