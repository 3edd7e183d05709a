#ifndef SLUICE_PROXY_CONFIG_CONFIG_H_
#define SLUICE_PROXY_CONFIG_CONFIG_H_

// sluice-proxy's configuration as plain structs. Every member carries its
// default, so a value-initialised ProxyConfig (or DefaultProxyConfig()) is a
// complete, safe configuration: loopback listeners only, no rate limits, no
// routes. config_loader.h reads these from YAML and validates them; the
// example file proxy/sluice-proxy.example.yaml documents every field.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/headers/rate_limit_headers.h"
#include "common/net/listen_address.h"
#include "common/pause/pause_schedule.h"
#include "common/time/clock.h"

namespace sluice {

// Deadlines. All are > 0; none can be disabled.
struct Timeouts {
  // The whole request head (request line + headers) must arrive within
  // this; slow clients get 408 (slowloris defence).
  Duration header_read = std::chrono::seconds(10);
  // Keep-alive idle time between two requests on a client connection.
  Duration client_idle = std::chrono::seconds(60);
  // DNS resolution plus TCP connect to the origin.
  Duration connect = std::chrono::seconds(5);
  // From the request being sent upstream to the response head arriving.
  Duration upstream_response = std::chrono::seconds(60);
  // No progress on a request or response body stream.
  Duration body_idle = std::chrono::seconds(60);
  // A CONNECT tunnel with no bytes in either direction.
  Duration tunnel_idle = std::chrono::seconds(300);
  // How long an idle upstream keep-alive connection stays pooled.
  Duration pool_idle = std::chrono::seconds(30);

  bool operator==(const Timeouts&) const = default;
};

// Size and count limits.
struct Limits {
  size_t max_header_bytes = 65536;     // Request head larger than this: 431.
  size_t max_uri_bytes = 8192;         // Request target longer than this: 414.
  size_t max_connections = 1024;       // Client connections, tunnels included.
  size_t pool_max_idle_per_host = 64;  // 0 disables upstream keep-alive.
  size_t pool_max_idle_total = 256;
  size_t buffer_bytes = 65536;  // Per-direction streaming buffer.

  bool operator==(const Limits&) const = default;
};

// Admin listener (/config, /metrics, health).
struct AdminConfig {
  // Unset when the admin listener is disabled ("" or "off" in YAML).
  std::optional<ListenAddress> listen = ListenAddress{"127.0.0.1", 9901};

  bool operator==(const AdminConfig&) const = default;
};

// CONNECT method policy.
struct ConnectConfig {
  // Target ports CONNECT may reach. Empty: CONNECT is refused entirely.
  std::vector<uint16_t> allowed_ports = {443};

  bool operator==(const ConnectConfig&) const = default;
};

// SSRF policy. Internal, loopback, link-local and similar ranges are denied
// by default; `allow` re-opens ranges explicitly.
struct SsrfConfig {
  // CIDRs ("127.0.0.0/8", "fd00::/8", or a bare address for one host),
  // checked by CheckCidrSyntax; the network layer parses them for real.
  std::vector<std::string> allow;

  bool operator==(const SsrfConfig&) const = default;
};

// Returns OK when `text` is "address/prefix-length" or a bare address
// (one host) with an IPv4 or IPv6 address (no brackets), a prefix length
// in range for that family, and no address bits set past the prefix
// ("10.1.2.3/8" is refused as ambiguous). These are the rules of
// ParseCidr in ip_address.h, which the network layer applies.
absl::Status CheckCidrSyntax(std::string_view text);

struct AccessLogConfig {
  bool enabled = true;
  std::string path = "-";  // "-" means stdout.

  bool operator==(const AccessLogConfig&) const = default;
};

// Names of request headers the proxy gives meaning to. An empty name turns
// the feature off.
struct HeadersConfig {
  // A client may shorten (never lengthen) how long it is willing to wait in
  // a limiter queue. The value is a duration ("250ms") or seconds ("0.25").
  std::string max_wait = "x-sluice-max-wait";

  bool operator==(const HeadersConfig&) const = default;
};

enum class LimitAlgorithm { kGcra, kTokenBucket };

// "gcra" or "token_bucket".
std::string_view LimitAlgorithmName(LimitAlgorithm algorithm);
// Inverse of LimitAlgorithmName (exact, lowercase names).
std::optional<LimitAlgorithm> ParseLimitAlgorithm(std::string_view name);

// Splits a limit into one bucket per distinct value of a request header.
// The config holds only the header *name*; values are seen at request time
// and never stored in configuration.
struct PerKeyConfig {
  std::string header;       // Non-empty.
  size_t max_keys = 10000;  // >= 1; bound on the number of live buckets.

  bool operator==(const PerKeyConfig&) const = default;
};

// A throttle that is not a quota signal (docs/pause.md): the response is
// passed through but nothing is paused or reported. Every set condition
// must hold.
struct ThrottleIgnoreRule {
  int status = 0;      // 0: any status
  std::string header;  // empty: none; else this response header is present
  std::string value;   // non-empty: the header's value contains it
                       // (case-insensitive)
  // Non-empty: the first ThrottleConfig::body_peek_bytes of the response
  // body (after chunked framing is removed) contain it, byte for byte
  // (case-sensitive). Never matches a body with a Content-Encoding other
  // than identity, nor a response without a body.
  std::string body;
  bool operator==(const ThrottleIgnoreRule&) const = default;
};

// How the upstream's throttles pause the limit (docs/pause.md).
struct ThrottleConfig {
  bool enabled = true;
  // Statuses that are always a throttle.
  std::vector<int> statuses = {429, 503};
  // Statuses that are a throttle when a limit header says nothing remains
  // and when it resets: GitHub's 403, and a 200 that used the last request
  // (a pre-emptive pause).
  std::vector<int> when_exhausted = {403, 200};
  // How a bare reset number (X-RateLimit-Reset, RateLimit-Reset) is read.
  ResetStyle reset_style = ResetStyle::kAuto;
  // Report throttles of a leased limit to the quota server, which pauses
  // every sidecar of the resource. false: this sidecar only.
  bool broadcast = true;
  std::vector<ThrottleIgnoreRule> ignore;
  PauseSchedule::Options pause;
  // Each resume after a pause is delayed by a random [0, resume_jitter).
  Duration resume_jitter = std::chrono::milliseconds(50);
  // The window of a limit the headers state without one (learned limits):
  // OpenAI's and Anthropic's limit headers are per minute, so 60s there.
  // Unset: only limits with a stated window (IETF `w=`) are learned from.
  std::optional<Duration> limit_window;
  // How many bytes of a throttle's body are read ahead when an ignore rule
  // has a `body` condition (1..kMaxBodyPeekBytes). Responses that no body
  // rule could excuse are never read ahead.
  size_t body_peek_bytes = 4096;
  static constexpr size_t kMaxBodyPeekBytes = 65536;
  bool operator==(const ThrottleConfig&) const = default;
};

// One named rate limit ("rate_limits.<name>" in YAML).
struct LimitConfig {
  std::string name;  // The map key; [A-Za-z0-9_.-]+.
  // `rate` tokens are released every `period`. Both > 0; `rate` is required.
  double rate = 0;
  Duration period = std::chrono::seconds(1);
  // Bucket depth in tokens, >= 1. The default of 1 allows no burst: requests
  // are paced evenly at rate/period.
  double burst = 1;
  LimitAlgorithm algorithm = LimitAlgorithm::kGcra;
  // Requests that may wait for tokens at once; more are rejected (429).
  // 0 means never queue.
  size_t max_queue = 1000;
  // Longest time a request waits for tokens before it is rejected.
  Duration max_wait = std::chrono::seconds(30);
  // Tokens a request costs, > 0 and <= burst.
  double cost = 1;
  // If set, the request's cost is read from this header (a number >= 0);
  // a missing or malformed value falls back to `cost`.
  std::string cost_header;
  // Cap for header-supplied costs, <= burst. 0 means "burst".
  double max_cost = 0;
  // Unset: one bucket shared by every request that maps to this limit.
  std::optional<PerKeyConfig> per_key;
  // Name of the quota server resource this limit leases its tokens from
  // (needs quota.servers). Empty: a local limit (standalone). The local
  // rate/burst above still apply until the server answers, and shape the
  // fallback when it cannot be reached.
  std::string resource;
  ThrottleConfig throttle;

  // max_cost with the 0 default resolved.
  double EffectiveMaxCost() const { return max_cost > 0 ? max_cost : burst; }
  bool operator==(const LimitConfig&) const = default;
};

// Transparent retry of a throttled request (docs/pause.md). Opt-in per
// route: a request that drew a throttle waits in its limit's queue through
// the pause and is sent again, so the app sees one slower answer instead of
// an error; only while its max wait allows, at most max_attempts sends in
// all. A request body is kept in memory to be sent again when it is at most
// max_body_bytes (a Content-Length within it, or a chunked body that ends
// within it); a larger one is streamed without a copy and not retried.
struct RetryConfig {
  bool on_throttle = false;
  // false: idempotent methods only (GET, HEAD, OPTIONS, PUT, DELETE, TRACE).
  bool all_methods = false;
  int max_attempts = 3;  // sends in all, 2..10
  // 0..kMaxBodyBytes; 0 retries only requests without a body.
  size_t max_body_bytes = 65536;
  static constexpr size_t kMaxBodyBytes = 1 << 20;
  bool operator==(const RetryConfig&) const = default;
};

// Which requests a route takes by how they reached sluice.
enum class RouteScheme {
  kAny,
  kHttp,   // plain http:// (absolute-form, or inside a plain CONNECT tunnel)
  kHttps,  // inside an intercepted https:// tunnel (docs/https.md)
};
// "" (kAny), "http", "https".
std::string_view RouteSchemeName(RouteScheme scheme);
std::optional<RouteScheme> ParseRouteScheme(std::string_view name);

// Maps requests to a limit. All conditions must hold; an empty/unset
// condition matches anything. Routes are tried in order; the first match
// wins (see router.h).
struct RouteConfig {
  // "api.example.com" (exact), "*.example.com" (any subdomain at any depth,
  // not the apex), or empty / "*" for any host. Compared case-insensitively.
  std::string host;
  std::string path_prefix;           // Empty, or starts with '/'.
  std::vector<std::string> methods;  // Upper-cased tokens; empty = any.
  // Name of a rate_limits entry. Empty: requests matching this route pass
  // without a limit (useful to exempt paths ahead of a broader route).
  std::string limit;
  RetryConfig retry;
  // Only requests that came as plain http:// or only those from inside an
  // intercepted https:// tunnel; kAny: both.
  RouteScheme scheme = RouteScheme::kAny;
  // TLS origination (docs/https.md): a plain http:// request of this route
  // goes to the origin over https, verified as any https origin, on the
  // port its URL names or 443.
  bool originate_tls = false;

  bool operator==(const RouteConfig&) const = default;
};

// HTTPS interception (docs/https.md): for the hosts named here, sluice
// answers CONNECT itself, completes the client's TLS handshake with a
// certificate it mints for the host, and sees every request inside.
// Tunnels to other hosts stay opaque.
struct InterceptConfig {
  // "api.openai.com" (exact) or "*.example.com" (any subdomain), as route
  // hosts, but never "" or "*": interception names its hosts. Empty:
  // interception is off.
  std::vector<std::string> hosts;
  // PEM files of the CA that signs the minted certificates. Both are
  // required when `hosts` is set, and neither may be set without `hosts`;
  // the key file must not be readable by group or others. The loader
  // checks the paths only; the files are read when the proxy starts.
  std::string ca_cert;
  std::string ca_key;
  // How long a minted certificate is valid (it is renewed an hour before
  // the end): 2h..30d.
  Duration leaf_validity = std::chrono::hours(24);
  // Minted certificates kept, one per host name: 1..100000.
  size_t leaf_cache = 1000;

  bool operator==(const InterceptConfig&) const = default;
};

// TLS towards origins: intercepted requests and TLS origination.
struct UpstreamTlsConfig {
  // PEM file of the CAs to trust instead of the system store; "": the
  // system store.
  std::string ca_bundle;
  // Exact host names or IP literals (valid route hosts without a wildcard)
  // whose certificates are not verified. Each one is logged as a warning at
  // start and shown in /config; there is no other way to turn verification
  // off.
  std::vector<std::string> insecure_skip_verify;
  // TLS sessions kept for resumption, one per host:port: 0..100000.
  size_t session_cache = 1000;

  bool operator==(const UpstreamTlsConfig&) const = default;
};

// Returns OK if `host` is a valid RouteConfig::host pattern.
absl::Status CheckRouteHostPattern(std::string_view host);

// Leased mode: where sluice-quota-server is and who this sidecar is.
struct QuotaClientConfig {
  // gRPC targets: "host:port" or "dns:///name:port" (several servers behind
  // one name). Empty: standalone mode, every limit is local.
  std::vector<std::string> servers;
  // Unique in the fleet. Empty: "<pod or hostname>-<pid>".
  std::string sidecar_id;
  double weight = 1;  // > 0; weighted max-min fairness
  Duration backoff_initial = std::chrono::milliseconds(100);
  Duration backoff_max = std::chrono::seconds(5);
  Duration connect_timeout = std::chrono::seconds(2);
  // Take the server's UDP fast path when offered: pauses (docs/pause.md)
  // and, if the offer says so, reports and grants (docs/leasing.md).
  bool fast_path = true;
  bool operator==(const QuotaClientConfig&) const = default;
};

struct ProxyConfig {
  std::vector<ListenAddress> listen = {{"127.0.0.1", 3128}, {"::1", 3128}};
  int workers = 1;  // 1..64
  AdminConfig admin;
  Timeouts timeouts;
  Limits limits;
  ConnectConfig connect;
  SsrfConfig ssrf;
  // How long in-flight requests may finish after a shutdown signal. 0 stops
  // at once.
  Duration shutdown_grace = std::chrono::seconds(10);
  AccessLogConfig access_log;
  HeadersConfig headers;
  QuotaClientConfig quota;
  InterceptConfig intercept;
  UpstreamTlsConfig upstream_tls;
  std::map<std::string, LimitConfig, std::less<>> rate_limits;
  std::vector<RouteConfig> routes;

  // Returns the limit called `name`, or nullptr.
  const LimitConfig* FindLimit(std::string_view name) const;
  bool operator==(const ProxyConfig&) const = default;
};

// The configuration used when no file is given (same as ProxyConfig{}).
ProxyConfig DefaultProxyConfig();

}  // namespace sluice

#endif  // SLUICE_PROXY_CONFIG_CONFIG_H_
