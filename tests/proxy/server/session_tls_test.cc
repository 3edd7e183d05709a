// Sessions and HTTPS (docs/https.md): CONNECT tunnels sluice intercepts
// with a minted certificate, plain HTTP read inside a tunnel, opaque
// tunnels, and TLS towards origins, against an in-process TLS origin.
// Certificates are made here with OpenSSL (tls_test_util.h) and judged by
// OpenSSL's verifier in the test's own client.

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/rate/token_source_factory.h"
#include "proxy/config/config.h"
#include "proxy/limit/keyed_limiter.h"
#include "proxy/limit/rate_limiter.h"
#include "proxy/server/session.h"
#include "proxy/server/tls_endpoints.h"
#include "proxy/stats/tls_metrics.h"
#include "tests/proxy/server/blocking_origin.h"
#include "tests/proxy/server/test_context.h"
#include "tests/proxy/tls/tls_test_util.h"
#include "tests/testing/registry_values.h"
#include "tests/testing/wait_for.h"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A TLS origin on 127.0.0.1 with its own certificate (a BlockingOrigin
// that speaks TLS): it answers every request with 200 and a body naming
// what it saw, and counts connections.
class TlsOrigin {
 public:
  TlsOrigin(X509* cert, EVP_PKEY* key)
      : ctx_(ServerContext(cert, key)),
        origin_([this](tcp::socket& s) { Serve(s); }) {}

  uint16_t port() const { return origin_.port(); }
  int accepts() const { return origin_.accepts(); }
  std::vector<std::string> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  static ssl::context ServerContext(X509* cert, EVP_PKEY* key) {
    ssl::context ctx(ssl::context::tls_server);
    SSL_CTX_use_certificate(ctx.native_handle(), cert);
    SSL_CTX_use_PrivateKey(ctx.native_handle(), key);
    return ctx;
  }

  void Serve(tcp::socket& s) {
    ssl::stream<tcp::socket&> tls(s, ctx_);
    boost::system::error_code ec;
    tls.handshake(ssl::stream_base::server, ec);
    beast::flat_buffer buf;
    while (!ec) {
      http::request<http::string_body> req;
      http::read(tls, buf, req, ec);
      if (ec) break;
      const std::string what = std::string(req.method_string()) + " " +
                               std::string(req.target()) +
                               " host=" + std::string(req[http::field::host]);
      {
        std::lock_guard lock(mu_);
        seen_.push_back(what);
      }
      http::response<http::string_body> res{http::status::ok, 11};
      res.body() = what;
      res.prepare_payload();
      http::write(tls, res, ec);
    }
  }

  ssl::context ctx_;
  std::mutex mu_;
  std::vector<std::string> seen_;  // guarded by mu_
  test::BlockingOrigin origin_;    // last: its thread uses the rest
};

class SessionTlsTest : public ::testing::Test {
 protected:
  SessionTlsTest()
      : acceptor_(std::in_place, *io_,
                  tcp::endpoint(asio::ip::address_v4::loopback(), 0)),
        work_(asio::make_work_guard(*io_)) {
    config_.timeouts.connect = seconds(5);
    config_.timeouts.upstream_response = seconds(5);
    config_.connect.allowed_ports = {};  // each test allows its origin's
    const absl::Time now = WallNow();
    proxy_ca_ = test::MakeTestCa(dir_, now, absl::Hours(24 * 365), "proxy");
    origin_ca_ = test::MakeTestCa(dir_, now, absl::Hours(24 * 365), "origin");
    stranger_ca_ =
        test::MakeTestCa(dir_, now, absl::Hours(24 * 365), "stranger");
  }

  ~SessionTlsTest() override {
    work_.reset();
    io_->stop();
    if (io_thread_.joinable()) io_thread_.join();
    if (context_) context_->ctx().pool->Clear();
    acceptor_.reset();
    io_.reset();
  }

  // The wall time the proxy and every certificate here live at (the fake
  // clock's); the test's client verifies at it too.
  static absl::Time WallNow() { return FakeClock().WallNow(); }

  // A leaf for the origin, issued by `ca`, for `san` ("IP:127.0.0.1").
  EvpPkeyPtr origin_key_ = test::NewTestKey();
  X509Ptr OriginCert(const test::TestCa& ca, const std::string& san,
                     absl::Duration from = absl::Hours(-1),
                     absl::Duration to = absl::Hours(24)) {
    return test::MakeCert(
        test::CertSpec{.common_name = "origin",
                       .not_before = WallNow() + from,
                       .not_after = WallNow() + to,
                       .basic_constraints = "critical,CA:FALSE",
                       .subject_alt_name = san,
                       .extended_key_usage = "serverAuth"},
        origin_key_.get(), ca.cert.get(), ca.key.get());
  }

  // An origin whose certificate the proxy trusts (from origin_ca_, for
  // 127.0.0.1); CONNECTs to its port are allowed.
  std::unique_ptr<TlsOrigin> TrustedOrigin() {
    X509Ptr cert = OriginCert(origin_ca_, "IP:127.0.0.1");
    auto origin = std::make_unique<TlsOrigin>(cert.get(), origin_key_.get());
    config_.connect.allowed_ports = {origin->port()};
    return origin;
  }

  // Starts the proxy: interception of 127.0.0.1 when `intercept`, TLS
  // towards origins trusting the origin CA.
  void Start(bool intercept = true) {
    TlsEndpoints::Options o;
    if (intercept) {
      o.intercepts = [](std::string_view host) { return host == "127.0.0.1"; };
      o.ca_cert = proxy_ca_.cert_path;
      o.ca_key = proxy_ca_.key_path;
    }
    o.client = true;
    o.origins.ca_file = origin_ca_.cert_path;
    std::vector<LimitRuntime*> limits;
    for (const RouteConfig& r : config_.routes) {
      limits.push_back(r.limit.empty() ? nullptr : &limit_);
    }
    context_.emplace(&config_, /*allow_loopback=*/true, std::move(limits));
    auto tls = TlsEndpoints::Create(std::move(o), &context_->clock());
    ASSERT_TRUE(tls.ok()) << tls.status();
    tls_ = std::move(*tls);
    tls_metrics_ =
        std::make_unique<TlsMetrics>(*context_->metrics().registry());
    context_->ctx().tls = tls_.get();
    context_->ctx().tls_metrics = tls_metrics_.get();
    io_thread_ = std::thread([this] { io_->run(); });
  }

  // A limit of `burst` tokens (no refill on the fake clock) on every
  // request to 127.0.0.1 of `scheme`.
  void LimitEverything(double burst, RouteScheme scheme = RouteScheme::kAny) {
    limit_config_.name = "lim";
    limit_config_.rate = 1;
    limit_config_.burst = burst;
    limit_config_.max_wait = Duration::zero();
    config_.routes.push_back(
        RouteConfig{.host = "127.0.0.1", .limit = "lim", .scheme = scheme});
    limit_.config = &limit_config_;
    limit_.shared = std::make_shared<RateLimiter>(
        MakeTokenSource(Algorithm::kTokenBucket, RateSpec{1, seconds(1), burst},
                        TimePoint()),
        RateLimiterOptions{});
  }

  // The status of the second of two requests inside an intercepted
  // tunnel, under a limit of one token on routes of `scheme`.
  unsigned SecondRequestUnderALimitOn(RouteScheme scheme) {
    auto origin = TrustedOrigin();
    LimitEverything(/*burst=*/1, scheme);
    Start();
    tcp::socket client = Connect();
    ConnectTo(client, origin->port());
    boost::system::error_code ec;
    auto tls = Handshake(client, proxy_ca_, "127.0.0.1", ec);
    EXPECT_FALSE(ec) << ec.message();
    if (ec) return 0;
    beast::flat_buffer buf;
    EXPECT_EQ(Get(*tls, buf, "/1", "127.0.0.1").result_int(), 200u);
    return Get(*tls, buf, "/2", "127.0.0.1").result_int();
  }

  tcp::socket Connect() {
    tcp::socket client(client_io_);
    client.connect(acceptor_->local_endpoint());
    std::make_shared<Session>(acceptor_->accept(), context_->ctx())->Start();
    return client;
  }

  // Sends CONNECT 127.0.0.1:port and expects its 200.
  void ConnectTo(tcp::socket& client, uint16_t port) {
    const std::string req =
        "CONNECT 127.0.0.1:" + std::to_string(port) +
        " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n\r\n";
    asio::write(client, asio::buffer(req));
    asio::streambuf head;
    asio::read_until(client, head, "\r\n\r\n");
    const std::string text(asio::buffers_begin(head.data()),
                           asio::buffers_end(head.data()));
    ASSERT_EQ(text.rfind("HTTP/1.1 200", 0), 0u) << text;
    ASSERT_EQ(head.size(), text.size());
  }

  // The client side of TLS inside the tunnel, trusting only `ca` for
  // 127.0.0.1 at the fake wall time, with `sni` (none when empty).
  std::unique_ptr<ssl::stream<tcp::socket&>> Handshake(
      tcp::socket& client, const test::TestCa& ca, const std::string& sni,
      boost::system::error_code& ec) {
    client_ctx_.emplace(ssl::context::tls_client);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx_->native_handle()),
                        ca.cert.get());
    client_ctx_->set_verify_mode(ssl::verify_peer);
    auto tls =
        std::make_unique<ssl::stream<tcp::socket&>>(client, *client_ctx_);
    SSL* s = tls->native_handle();
    if (!sni.empty()) SSL_set_tlsext_host_name(s, sni.c_str());
    X509_VERIFY_PARAM* param = SSL_get0_param(s);
    X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(WallNow()));
    X509_VERIFY_PARAM_set1_ip_asc(param, "127.0.0.1");
    tls->handshake(ssl::stream_base::client, ec);
    return tls;
  }

  template <typename Stream>
  static http::response<http::string_body> Get(Stream& s,
                                               beast::flat_buffer& buf,
                                               const std::string& target,
                                               const std::string& host) {
    http::request<http::string_body> req{http::verb::get, target, 11};
    if (!host.empty()) req.set(http::field::host, host);
    boost::system::error_code ec;
    http::write(s, req, ec);
    EXPECT_FALSE(ec) << ec.message();
    http::response<http::string_body> res;
    http::read(s, buf, res, ec);
    EXPECT_FALSE(ec) << ec.message();
    return res;
  }

  // The count of tunnels read with `result` (0 while there is no series).
  double TunnelsRead(const std::string& result) {
    auto series = test::FindSeries(*context_->metrics().registry(),
                                   "sluice_proxy_tunnels_read_total",
                                   {{"result", result}});
    return series ? series->counter.value : 0;
  }

  test::TempDir dir_;
  test::TestCa proxy_ca_;
  test::TestCa origin_ca_;
  test::TestCa stranger_ca_;
  std::unique_ptr<asio::io_context> io_ = std::make_unique<asio::io_context>();
  asio::io_context client_io_;
  std::optional<tcp::acceptor> acceptor_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread io_thread_;
  ProxyConfig config_;
  LimitConfig limit_config_;
  LimitRuntime limit_;
  std::optional<test::TestContext> context_;
  std::unique_ptr<TlsEndpoints> tls_;
  std::unique_ptr<TlsMetrics> tls_metrics_;
  std::optional<ssl::context> client_ctx_;
};

TEST_F(SessionTlsTest, AnInterceptedRequestTakesTheHttpPathToATlsOrigin) {
  auto origin = TrustedOrigin();
  Start();
  tcp::socket client = Connect();
  ConnectTo(client, origin->port());
  boost::system::error_code ec;
  // The client sees a certificate from the proxy's CA, for the host.
  auto tls = Handshake(client, proxy_ca_, "", ec);
  ASSERT_FALSE(ec) << ec.message();
  X509* served = SSL_get0_peer_certificate(tls->native_handle());
  ASSERT_NE(served, nullptr);
  EXPECT_EQ(X509_check_issued(proxy_ca_.cert.get(), served), X509_V_OK);
  beast::flat_buffer buf;
  const std::string host = "127.0.0.1:" + std::to_string(origin->port());
  auto res = Get(*tls, buf, "/v1/models?x=1", host);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "GET /v1/models?x=1 host=" + host);
  EXPECT_EQ(res[http::field::via], "1.1 sluice");
  // A second request rides the same tunnel and the pooled TLS connection.
  res = Get(*tls, buf, "/v1/other", host);
  EXPECT_EQ(res.body(), "GET /v1/other host=" + host);
  EXPECT_EQ(origin->accepts(), 1);
  EXPECT_EQ(TunnelsRead("tls"), 1);
}

TEST_F(SessionTlsTest, EachRequestInsideTheTunnelMeetsTheLimit) {
  auto origin = TrustedOrigin();
  LimitEverything(/*burst=*/1);
  Start();
  tcp::socket client = Connect();
  ConnectTo(client, origin->port());
  boost::system::error_code ec;
  auto tls = Handshake(client, proxy_ca_, "127.0.0.1", ec);
  ASSERT_FALSE(ec) << ec.message();
  beast::flat_buffer buf;
  EXPECT_EQ(Get(*tls, buf, "/1", "127.0.0.1").result_int(), 200u);
  auto res = Get(*tls, buf, "/2", "127.0.0.1");
  EXPECT_EQ(res.result_int(), 429u);
  EXPECT_EQ(res["x-sluice-limited"], "local");
  EXPECT_EQ(origin->seen().size(), 1u);
}

// A route of scheme http does not see the https requests of an
// intercepted tunnel; a route of scheme https does.
TEST_F(SessionTlsTest, AnHttpsRouteLimitsTheRequestsInsideTheTunnel) {
  EXPECT_EQ(SecondRequestUnderALimitOn(RouteScheme::kHttps), 429u);
}

TEST_F(SessionTlsTest, AnHttpRouteDoesNotLimitTheRequestsInsideTheTunnel) {
  EXPECT_EQ(SecondRequestUnderALimitOn(RouteScheme::kHttp), 200u);
}

TEST_F(SessionTlsTest, AnOriginCertificateThatFailsIsA502NamingWhy) {
  struct Case {
    std::string name;
    std::function<X509Ptr()> cert;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"wrong host",
       [&] { return OriginCert(origin_ca_, "DNS:other.example"); },
       "tls_wrong_host"},
      {"unknown issuer",
       [&] { return OriginCert(stranger_ca_, "IP:127.0.0.1"); },
       "tls_unknown_issuer"},
      {"expired",
       [&] {
         return OriginCert(origin_ca_, "IP:127.0.0.1", absl::Hours(-48),
                           absl::Hours(-24));
       },
       "tls_expired"},
  };
  Start();
  for (const Case& c : cases) {
    X509Ptr cert = c.cert();
    TlsOrigin origin(cert.get(), origin_key_.get());
    config_.connect.allowed_ports = {origin.port()};
    tcp::socket client = Connect();
    ConnectTo(client, origin.port());
    boost::system::error_code ec;
    auto tls = Handshake(client, proxy_ca_, "", ec);
    ASSERT_FALSE(ec) << c.name << ": " << ec.message();
    beast::flat_buffer buf;
    auto res = Get(*tls, buf, "/", "127.0.0.1");
    EXPECT_EQ(res.result_int(), 502u) << c.name;
    EXPECT_EQ(res["x-sluice-error"], c.reason) << c.name;
    EXPECT_TRUE(origin.seen().empty()) << c.name;
  }
}

TEST_F(SessionTlsTest, AHostNotInterceptedStaysAnOpaqueTunnel) {
  auto origin = TrustedOrigin();
  Start(/*intercept=*/false);
  tcp::socket client = Connect();
  ConnectTo(client, origin->port());
  // The handshake is the origin's own: its certificate, its CA.
  boost::system::error_code ec;
  auto tls = Handshake(client, origin_ca_, "", ec);
  ASSERT_FALSE(ec) << ec.message();
  beast::flat_buffer buf;
  auto res = Get(*tls, buf, "/opaque", "any.example");
  EXPECT_EQ(res.body(), "GET /opaque host=any.example");
  EXPECT_EQ(res.count(http::field::via), 0u);  // sluice never saw it
}

// An opaque tunnel is a request of neither scheme: a route of scheme http
// (or https) does not count it, a route without a scheme does.
TEST_F(SessionTlsTest, OnlyRoutesWithoutASchemeLimitOpaqueTunnels) {
  auto origin = TrustedOrigin();
  LimitEverything(/*burst=*/1, RouteScheme::kHttp);
  config_.routes.push_back(RouteConfig{
      .host = "127.0.0.1", .limit = "lim", .scheme = RouteScheme::kHttps});
  Start(/*intercept=*/false);
  for (int i = 0; i < 2; ++i) {
    tcp::socket client = Connect();
    ConnectTo(client, origin->port());  // asserts the 200
  }
}

TEST_F(SessionTlsTest, ARouteWithoutASchemeLimitsOpaqueTunnels) {
  auto origin = TrustedOrigin();
  LimitEverything(/*burst=*/1);
  Start(/*intercept=*/false);
  tcp::socket first = Connect();
  ConnectTo(first, origin->port());
  tcp::socket second = Connect();
  const std::string req =
      "CONNECT 127.0.0.1:" + std::to_string(origin->port()) +
      " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  asio::write(second, asio::buffer(req));
  beast::flat_buffer buf;
  http::response_parser<http::empty_body> head;
  head.skip(true);
  boost::system::error_code ec;
  http::read_header(second, buf, head, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(head.get().result_int(), 429u);
}

TEST_F(SessionTlsTest, PlainHttpInsideATunnelIsReadAsHttp) {
  auto origin = TrustedOrigin();
  Start();
  tcp::socket client = Connect();
  ConnectTo(client, origin->port());
  // Plain HTTP after the 200: sluice reads it and calls the origin in
  // plain HTTP too, which a TLS origin refuses: the point is that sluice,
  // not the origin, answered.
  beast::flat_buffer buf;
  auto res = Get(client, buf, "/plain", "127.0.0.1");
  EXPECT_EQ(res.result_int(), 502u);
  EXPECT_EQ(res[http::field::via], "");
  EXPECT_EQ(res["x-sluice-error"], "upstream_response");
  EXPECT_EQ(TunnelsRead("http"), 1);
}

TEST_F(SessionTlsTest, ARequestForAnotherHostInsideTheTunnelIs421) {
  auto origin = TrustedOrigin();
  Start();
  tcp::socket client = Connect();
  ConnectTo(client, origin->port());
  boost::system::error_code ec;
  auto tls = Handshake(client, proxy_ca_, "", ec);
  ASSERT_FALSE(ec) << ec.message();
  beast::flat_buffer buf;
  auto res = Get(*tls, buf, "/", "other.example");
  EXPECT_EQ(res.result_int(), 421u);
  EXPECT_EQ(res["x-sluice-error"], "misdirected");
  EXPECT_TRUE(origin->seen().empty());
}

TEST_F(SessionTlsTest, AnSniForAnotherHostFailsTheHandshake) {
  auto origin = TrustedOrigin();
  Start();
  tcp::socket client = Connect();
  ConnectTo(client, origin->port());
  boost::system::error_code ec;
  auto tls = Handshake(client, proxy_ca_, "evil.example", ec);
  EXPECT_TRUE(ec);
  ASSERT_TRUE(test::WaitFor([&] { return TunnelsRead("sni_mismatch") == 1; }));
  EXPECT_TRUE(origin->seen().empty());
}

TEST_F(SessionTlsTest, AClientThatNeverSpeaksIsClosedAtTheHeadDeadline) {
  config_.timeouts.header_read = milliseconds(100);
  config_.connect.allowed_ports = {443};
  Start();
  tcp::socket client = Connect();
  ConnectTo(client, 443);
  char byte;
  boost::system::error_code ec;
  client.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset)
      << ec.message();
}

}  // namespace
}  // namespace sluice
