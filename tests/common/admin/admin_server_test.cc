#include "common/admin/admin_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;

constexpr auto kClientTimeout = std::chrono::seconds(10);

// A blocking test client: each call runs its own io_context until the
// operation finishes or kClientTimeout passes, so nothing waits forever.
class Client {
 public:
  explicit Client(uint16_t port) : stream_(io_) {
    stream_.expires_after(kClientTimeout);
    stream_.async_connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
        [this](beast::error_code ec) { connect_ec_ = ec; });
    Run();
  }

  const beast::error_code& connect_error() const { return connect_ec_; }

  // Sends raw bytes (the request, possibly malformed).
  beast::error_code Send(const std::string& bytes) {
    beast::error_code result;
    stream_.expires_after(kClientTimeout);
    asio::async_write(stream_, asio::buffer(bytes),
                      [&](beast::error_code ec, size_t) { result = ec; });
    Run();
    return result;
  }

  // Reads one response; error_code set if none could be read.
  struct Result {
    beast::error_code ec;
    http::response<http::string_body> res;
  };
  Result Read(bool head = false) {
    Result r;
    http::response_parser<http::string_body> parser;
    parser.skip(head);
    stream_.expires_after(kClientTimeout);
    http::async_read(stream_, buffer_, parser,
                     [&](beast::error_code ec, size_t) { r.ec = ec; });
    Run();
    if (!r.ec) r.res = parser.release();
    return r;
  }

  Result Exchange(const std::string& request, bool head = false) {
    if (auto ec = Send(request)) return Result{ec, {}};
    return Read(head);
  }

 private:
  void Run() {
    io_.restart();
    io_.run();
  }

  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  beast::error_code connect_ec_;
};

std::string Get(std::string_view target, bool keep_alive = false) {
  return std::string("GET ") + std::string(target) +
         " HTTP/1.1\r\nHost: admin\r\n" +
         (keep_alive ? "" : "Connection: close\r\n") + "\r\n";
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AdminHandlers h;
    h.metrics = [this] {
      metrics_calls_.fetch_add(1);
      return std::string("sluice_proxy_test_total 3\n");
    };
    h.ready = [this] { return ready_.load(); };
    h.config_yaml = [] { return std::string("listen:\n  - 127.0.0.1:3128\n"); };
    auto server = AdminServer::Start(io_, "127.0.0.1", 0, std::move(h));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_NE(server_->port(), 0);
    // Two threads, as in the proxy with workers > 1.
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  void TearDown() override {
    if (server_) server_->Stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    server_.reset();
  }

  Client::Result Fetch(const std::string& request, bool head = false) {
    Client c(server_->port());
    EXPECT_FALSE(c.connect_error()) << c.connect_error().message();
    return c.Exchange(request, head);
  }

  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>>
      work_{asio::make_work_guard(io_)};
  std::vector<std::thread> threads_;
  std::unique_ptr<AdminServer> server_;
  std::atomic<bool> ready_{true};
  std::atomic<int> metrics_calls_{0};
};

TEST_F(AdminServerTest, Healthz) {
  auto r = Fetch(Get("/healthz"));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 200);
  EXPECT_EQ(r.res.body(), "ok");
  EXPECT_THAT(std::string(r.res[http::field::content_type]),
              HasSubstr("text/plain"));
}

TEST_F(AdminServerTest, ReadyzFollowsTheReadyHandler) {
  auto r = Fetch(Get("/readyz"));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 200);
  EXPECT_EQ(r.res.body(), "ready");
  ready_ = false;
  r = Fetch(Get("/readyz"));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 503);
  EXPECT_EQ(r.res.body(), "not ready");
  // Liveness does not depend on readiness.
  EXPECT_EQ(Fetch(Get("/healthz")).res.result_int(), 200);
}

TEST_F(AdminServerTest, MetricsServesHandlerOutput) {
  auto r = Fetch(Get("/metrics"));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 200);
  EXPECT_EQ(r.res.body(), "sluice_proxy_test_total 3\n");
  EXPECT_EQ(r.res[http::field::content_type], "text/plain; version=0.0.4");
  EXPECT_EQ(metrics_calls_.load(), 1);
  // A query string does not change the path.
  r = Fetch(Get("/metrics?name=x"));
  EXPECT_EQ(r.res.result_int(), 200);
  EXPECT_EQ(metrics_calls_.load(), 2);
}

TEST_F(AdminServerTest, ConfigServesYaml) {
  auto r = Fetch(Get("/config"));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 200);
  EXPECT_EQ(r.res[http::field::content_type], "application/yaml");
  EXPECT_EQ(r.res.body(), "listen:\n  - 127.0.0.1:3128\n");
}

TEST_F(AdminServerTest, HeadHasLengthButNoBody) {
  auto r =
      Fetch("HEAD /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            /*head=*/true);
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 200);
  EXPECT_EQ(r.res[http::field::content_length], "2");
  EXPECT_EQ(r.res.body(), "");
}

TEST_F(AdminServerTest, UnknownPathIs404) {
  for (const char* path :
       {"/", "/nope", "/metrics/", "/healthz/x", "/METRICS"}) {
    auto r = Fetch(Get(path));
    ASSERT_FALSE(r.ec) << path << ": " << r.ec.message();
    EXPECT_EQ(r.res.result_int(), 404) << path;
  }
}

TEST_F(AdminServerTest, OtherMethodsAre405) {
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"}) {
    auto r = Fetch(std::string(method) +
                   " /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"
                   "Connection: close\r\n\r\n");
    ASSERT_FALSE(r.ec) << method << ": " << r.ec.message();
    EXPECT_EQ(r.res.result_int(), 405) << method;
    EXPECT_EQ(r.res[http::field::allow], "GET, HEAD");
  }
}

TEST_F(AdminServerTest, NeverProxies) {
  const std::string self = "127.0.0.1:" + std::to_string(server_->port());
  // Absolute-form, even pointing at this very listener.
  auto r = Fetch("GET http://" + self + "/healthz HTTP/1.1\r\nHost: " + self +
                 "\r\n\r\n");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 400);
  EXPECT_FALSE(r.res.keep_alive());
  r = Fetch(
      "GET http://example.com/metrics HTTP/1.1\r\nHost: example.com\r\n\r\n");
  EXPECT_EQ(r.res.result_int(), 400);
  EXPECT_EQ(metrics_calls_.load(), 0);

  r = Fetch("CONNECT " + self + " HTTP/1.1\r\nHost: " + self + "\r\n\r\n");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 405);
  EXPECT_FALSE(r.res.keep_alive());
}

TEST_F(AdminServerTest, AbsoluteFormConnectionIsClosedAfterTheError) {
  Client c(server_->port());
  auto r = c.Exchange("GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 400);
  // Whatever follows on the same connection is never answered.
  c.Send(Get("/healthz", true));
  r = c.Read();
  EXPECT_TRUE(r.ec);
}

TEST_F(AdminServerTest, OversizedHeaderIs431) {
  const std::string big(9 * 1024, 'a');
  auto r =
      Fetch("GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + big + "\r\n\r\n");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 431);
  EXPECT_FALSE(r.res.keep_alive());
  // Just under the limit is fine.
  const std::string ok(7 * 1024, 'a');
  r = Fetch("GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: " +
            ok + "\r\n\r\n");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 200);
}

TEST_F(AdminServerTest, RequestBodiesAreRejected) {
  auto r = Fetch(
      "GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 413);
  r = Fetch(
      "GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 413);
}

TEST_F(AdminServerTest, GarbageIs400) {
  auto r = Fetch("this is not http\r\n\r\n");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.res.result_int(), 400);
}

TEST_F(AdminServerTest, KeepAliveServesSeveralRequests) {
  Client c(server_->port());
  for (const char* path : {"/healthz", "/readyz", "/nope", "/metrics"}) {
    auto r = c.Exchange(Get(path, /*keep_alive=*/true));
    ASSERT_FALSE(r.ec) << path << ": " << r.ec.message();
    EXPECT_TRUE(r.res.keep_alive()) << path;
  }
  auto r = c.Exchange(Get("/healthz", /*keep_alive=*/false));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_FALSE(r.res.keep_alive());
  EXPECT_EQ(c.Read().ec, http::error::end_of_stream);
}

TEST_F(AdminServerTest, LimitsConcurrentConnections) {
  std::vector<std::unique_ptr<Client>> clients;
  for (size_t i = 0; i < AdminServer::kMaxConnections; ++i) {
    clients.push_back(std::make_unique<Client>(server_->port()));
    // A completed exchange proves the server is holding this connection.
    auto r = clients.back()->Exchange(Get("/healthz", true));
    ASSERT_FALSE(r.ec) << i << ": " << r.ec.message();
  }
  Client extra(server_->port());
  auto r = extra.Exchange(Get("/healthz", true));
  EXPECT_TRUE(r.ec) << "connection over the limit was served";

  // Freeing slots lets new connections in again. The server notices the
  // closes asynchronously, so allow a bounded number of attempts.
  clients.clear();
  bool served = false;
  for (int attempt = 0; attempt < 500 && !served; ++attempt) {
    Client c(server_->port());
    served = !c.Exchange(Get("/healthz")).ec;
  }
  EXPECT_TRUE(served);
}

TEST_F(AdminServerTest, StopClosesListenerAndConnections) {
  Client c(server_->port());
  auto r = c.Exchange(Get("/healthz", true));
  ASSERT_FALSE(r.ec) << r.ec.message();
  server_->Stop();
  // The live connection is closed without another response.
  EXPECT_TRUE(c.Read().ec);
  // The listener is gone.
  Client late(server_->port());
  EXPECT_TRUE(late.connect_error());
  server_->Stop();  // idempotent
}

TEST(AdminServerStartTest, BindErrorsNameTheAddress) {
  asio::io_context io;
  auto first = AdminServer::Start(io, "127.0.0.1", 0, {});
  ASSERT_TRUE(first.ok()) << first.status();
  const uint16_t port = (*first)->port();
  auto second = AdminServer::Start(io, "127.0.0.1", port, {});
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("127.0.0.1:" + std::to_string(port)));

  auto bad = AdminServer::Start(io, "not-an-ip", 0, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("not-an-ip"));
}

TEST(AdminServerStartTest, UnsetHandlersAre404AndAlwaysReady) {
  asio::io_context io;
  auto server = AdminServer::Start(io, "127.0.0.1", 0, {});
  ASSERT_TRUE(server.ok()) << server.status();
  std::thread t([&io] { io.run(); });
  {
    Client c((*server)->port());
    EXPECT_EQ(c.Exchange(Get("/metrics", true)).res.result_int(), 404);
    EXPECT_EQ(c.Exchange(Get("/config", true)).res.result_int(), 404);
    EXPECT_EQ(c.Exchange(Get("/readyz", true)).res.result_int(), 200);
  }
  (*server)->Stop();
  t.join();  // run() returns once nothing is pending
}

TEST(AdminServerStartTest, ThrowingHandlerGives500) {
  asio::io_context io;
  AdminHandlers h;
  h.metrics = []() -> std::string { throw std::runtime_error("boom"); };
  auto server = AdminServer::Start(io, "127.0.0.1", 0, std::move(h));
  ASSERT_TRUE(server.ok()) << server.status();
  std::thread t([&io] { io.run(); });
  {
    Client c((*server)->port());
    auto r = c.Exchange(Get("/metrics"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result_int(), 500);
  }
  (*server)->Stop();
  t.join();
}

}  // namespace
}  // namespace sluice
