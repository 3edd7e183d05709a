#include "proxy/server/server.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "proxy/config/config.h"
#include "tests/proxy/server/test_context.h"
#include "tests/testing/wait_for.h"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// A Server on its own io thread; clients are blocking sockets.
class ServerTest : public ::testing::Test {
 protected:
  ServerTest() : work_(asio::make_work_guard(*io_)) {}

  // Ends the sessions (their handlers) while the context is alive.
  ~ServerTest() override {
    work_.reset();
    io_->stop();
    if (io_thread_.joinable()) io_thread_.join();
    // Pooled origin connections belong to io_: they go first.
    if (context_) context_->ctx().pool->Clear();
    server_.reset();
    io_.reset();
  }

  void Make() {
    context_.emplace(&config_, /*allow_loopback=*/true);
    server_ = std::make_unique<Server>(*io_, context_->ctx());
  }

  void Run() {
    server_->Start();
    io_thread_ = std::thread([this] { io_->run(); });
  }

  tcp::socket Connect(const tcp::endpoint& ep) {
    tcp::socket s(client_io_);
    s.connect(ep);
    return s;
  }

  static http::response<http::string_body> Read(tcp::socket& s,
                                                beast::flat_buffer& buf) {
    http::response<http::string_body> res;
    boost::system::error_code ec;
    http::read(s, buf, res, ec);
    EXPECT_FALSE(ec) << ec.message();
    return res;
  }

  std::unique_ptr<asio::io_context> io_ = std::make_unique<asio::io_context>();
  asio::io_context client_io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread io_thread_;
  ProxyConfig config_;
  std::optional<test::TestContext> context_;
  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, ServesEachAcceptedConnectionWithASession) {
  Make();
  auto ep = server_->Listen({"127.0.0.1", 0});
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_NE(ep->port(), 0);
  Run();
  tcp::socket client = Connect(*ep);
  // An origin-form request is not for a forward proxy: a session answers.
  const std::string req = "GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n";
  asio::write(client, asio::buffer(req));
  beast::flat_buffer buf;
  auto res = Read(client, buf);
  EXPECT_EQ(res.result_int(), 400u);
  EXPECT_EQ(res["x-sluice-error"], "origin_form");
}

TEST_F(ServerTest, AnAddressThatCannotBeBoundIsNamed) {
  Make();
  auto bad = server_->Listen({"not-an-ip", 0});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("not-an-ip:0"), std::string::npos)
      << bad.status();
  auto first = server_->Listen({"127.0.0.1", 0});
  ASSERT_TRUE(first.ok());
  auto taken = server_->Listen({"127.0.0.1", first->port()});
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(taken.status().message().find("127.0.0.1:" +
                                          std::to_string(first->port())),
            std::string::npos)
      << taken.status();
}

TEST_F(ServerTest, AConnectionOverTheLimitGets503AndIsClosed) {
  config_.limits.max_connections = 1;
  Make();
  auto ep = server_->Listen({"127.0.0.1", 0});
  ASSERT_TRUE(ep.ok());
  Run();
  tcp::socket first = Connect(*ep);  // idle: its session holds the slot
  ASSERT_TRUE(
      test::WaitFor([&] { return context_->ctx().connections.load() == 1; }));
  tcp::socket second = Connect(*ep);
  beast::flat_buffer buf;
  auto res = Read(second, buf);
  EXPECT_EQ(res.result_int(), 503u);
  EXPECT_EQ(res["x-sluice-error"], "too_many_connections");
  EXPECT_FALSE(res.keep_alive());
  char byte;
  boost::system::error_code ec;
  second.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
}

TEST_F(ServerTest, StopAcceptingClosesIdleConnectionsAndTheListener) {
  Make();
  auto ep = server_->Listen({"127.0.0.1", 0});
  ASSERT_TRUE(ep.ok());
  Run();
  tcp::socket idle = Connect(*ep);
  ASSERT_TRUE(
      test::WaitFor([&] { return context_->ctx().connections.load() == 1; }));
  server_->StopAccepting();
  char byte;
  boost::system::error_code ec;
  idle.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset)
      << ec.message();
  ASSERT_TRUE(
      test::WaitFor([&] { return context_->ctx().connections.load() == 0; }));
  tcp::socket late(client_io_);
  late.connect(*ep, ec);
  EXPECT_EQ(ec, asio::error::connection_refused);
}

}  // namespace
}  // namespace sluice
