#include "proxy/server/session.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/rate/token_source_factory.h"
#include "common/time/clock.h"
#include "proxy/config/config.h"
#include "proxy/limit/keyed_limiter.h"
#include "proxy/limit/rate_limiter.h"
#include "tests/proxy/server/blocking_origin.h"
#include "tests/proxy/server/test_context.h"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using std::chrono::seconds;

using Origin = test::BlockingOrigin;

// Reads one request (false at the end of the connection).
bool ReadRequest(tcp::socket& s, beast::flat_buffer& buf,
                 http::request<http::string_body>& req) {
  boost::system::error_code ec;
  http::read(s, buf, req, ec);
  return !ec;
}

void Write(tcp::socket& s, std::string_view bytes) {
  boost::system::error_code ignored;
  asio::write(s, asio::buffer(bytes), ignored);
}

// What an origin saw of one request.
struct Seen {
  std::string target;
  std::string host;
  std::string via;
  std::string body;
  bool has_expect = false;
  bool has_proxy_connection = false;
  bool has_dropped = false;  // the field the client's Connection named
  std::string kept;
};

class SessionTest : public ::testing::Test {
 protected:
  SessionTest()
      : acceptor_(std::in_place, *io_,
                  tcp::endpoint(asio::ip::address_v4::loopback(), 0)),
        work_(asio::make_work_guard(*io_)) {
    config_.limits.buffer_bytes = 4096;
    config_.timeouts.upstream_response = seconds(5);
    config_.timeouts.connect = seconds(5);
  }

  // Sessions still pending in io_ end (their handlers are destroyed)
  // while the context they use is alive.
  ~SessionTest() override {
    work_.reset();
    io_->stop();
    if (io_thread_.joinable()) io_thread_.join();
    // Pooled origin connections belong to io_: they go first.
    if (context_) context_->ctx().pool->Clear();
    acceptor_.reset();
    io_.reset();
  }

  // Builds the context from config_ (with loopback allowed unless
  // `allow_loopback` is false) and starts the io thread.
  void Start(bool allow_loopback = true) {
    std::vector<LimitRuntime*> limits;
    for (const RouteConfig& r : config_.routes) {
      limits.push_back(r.limit.empty() ? nullptr : &limit_);
    }
    context_.emplace(&config_, allow_loopback, std::move(limits));
    io_thread_ = std::thread([this] { io_->run(); });
  }

  // A limit of `burst` tokens that refill once a second, max wait 0, on
  // every request to the origin's host.
  void LimitEverything(double burst) {
    limit_config_.name = "lim";
    limit_config_.rate = 1;
    limit_config_.burst = burst;
    limit_config_.max_wait = Duration::zero();
    config_.routes.push_back(RouteConfig{.host = "127.0.0.1", .limit = "lim"});
    limit_.config = &limit_config_;
    limit_.shared = std::make_shared<RateLimiter>(
        MakeTokenSource(Algorithm::kTokenBucket, RateSpec{1, seconds(1), burst},
                        TimePoint()),
        RateLimiterOptions{});
  }

  // A client connection served by a new Session.
  tcp::socket Connect() {
    tcp::socket client(client_io_);
    client.connect(acceptor_->local_endpoint());
    std::make_shared<Session>(acceptor_->accept(), context_->ctx())->Start();
    return client;
  }

  static std::string Get(uint16_t port, std::string_view path,
                         std::string_view extra = "") {
    const std::string authority = "127.0.0.1:" + std::to_string(port);
    return "GET http://" + authority + std::string(path) +
           " HTTP/1.1\r\nHost: " + authority + "\r\n" + std::string(extra) +
           "\r\n";
  }

  // Reads one response from the proxy.
  static http::response<http::string_body> ReadResponse(
      tcp::socket& client, beast::flat_buffer& buf) {
    http::response<http::string_body> res;
    boost::system::error_code ec;
    http::read(client, buf, res, ec);
    EXPECT_FALSE(ec) << ec.message();
    return res;
  }

  std::unique_ptr<asio::io_context> io_ = std::make_unique<asio::io_context>();
  asio::io_context client_io_;
  std::optional<tcp::acceptor> acceptor_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread io_thread_;
  ProxyConfig config_;
  LimitConfig limit_config_;
  LimitRuntime limit_;
  std::optional<test::TestContext> context_;
};

// Answers every request on a connection with 200 `body`, keeping the
// connection open, and records what it saw.
Origin::Handler Answering(std::string body, std::vector<Seen>* seen,
                          std::mutex* mu) {
  return [body, seen, mu](tcp::socket& s) {
    beast::flat_buffer buf;
    for (;;) {
      http::request<http::string_body> req;
      if (!ReadRequest(s, buf, req)) return;
      Seen x;
      x.target = std::string(req.target());
      x.host = std::string(req[http::field::host]);
      x.via = std::string(req[http::field::via]);
      x.body = req.body();
      x.has_expect = req.count(http::field::expect) > 0;
      x.has_proxy_connection = req.count("Proxy-Connection") > 0;
      x.has_dropped = req.count("X-Drop") > 0;
      x.kept = std::string(req["X-Keep"]);
      {
        std::lock_guard lock(*mu);
        seen->push_back(x);
      }
      Write(s, "HTTP/1.1 200 OK\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body);
    }
  };
}

TEST_F(SessionTest, ForwardsInOriginFormWithoutHopByHopFields) {
  std::vector<Seen> seen;
  std::mutex mu;
  Origin origin(Answering("hello", &seen, &mu));
  Start();
  tcp::socket client = Connect();
  Write(client, Get(origin.port(), "/a/b?x=1",
                    "Proxy-Connection: keep-alive\r\nConnection: X-Drop\r\n"
                    "X-Drop: 1\r\nX-Keep: 2\r\n"));
  beast::flat_buffer buf;
  auto res = ReadResponse(client, buf);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "hello");
  EXPECT_EQ(res[http::field::via], "1.1 sluice");
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/a/b?x=1");
  EXPECT_EQ(seen[0].host, "127.0.0.1:" + std::to_string(origin.port()));
  EXPECT_EQ(seen[0].via, "1.1 sluice");
  EXPECT_FALSE(seen[0].has_proxy_connection);
  EXPECT_FALSE(seen[0].has_dropped);
  EXPECT_EQ(seen[0].kept, "2");
}

TEST_F(SessionTest, KeepAliveRequestsShareOnePooledOriginConnection) {
  std::vector<Seen> seen;
  std::mutex mu;
  Origin origin(Answering("ok", &seen, &mu));
  Start();
  tcp::socket client = Connect();
  beast::flat_buffer buf;
  for (int i = 0; i < 3; ++i) {
    Write(client, Get(origin.port(), "/" + std::to_string(i)));
    auto res = ReadResponse(client, buf);
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), "ok");
  }
  EXPECT_EQ(origin.accepts(), 1);
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[2].target, "/2");
}

TEST_F(SessionTest, APooledConnectionTheOriginDropsIsDialledAgainOnce) {
  // The first connection answers once, then takes the next request and
  // closes without a word: the proxy sends that request again on a fresh
  // connection, which answers.
  std::atomic<int> connection{0};
  Origin origin([&](tcp::socket& s) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    const int n = ++connection;
    if (!ReadRequest(s, buf, req)) return;
    if (n == 1) {
      Write(s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
      http::request<http::string_body> next;
      ReadRequest(s, buf, next);
      return;  // closes
    }
    Write(s, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond");
  });
  Start();
  tcp::socket client = Connect();
  beast::flat_buffer buf;
  Write(client, Get(origin.port(), "/1"));
  EXPECT_EQ(ReadResponse(client, buf).body(), "first");
  Write(client, Get(origin.port(), "/2"));
  auto res = ReadResponse(client, buf);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "second");
  EXPECT_EQ(origin.accepts(), 2);
}

TEST_F(SessionTest, AConnectionDialledAgainThatDropsTooIsA502) {
  // The pooled connection dies under the second request, and so does the
  // one dialled for it: one more dial only, then the client hears why.
  std::atomic<int> connection{0};
  Origin origin([&](tcp::socket& s) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    if (!ReadRequest(s, buf, req)) return;
    if (++connection == 1) {
      Write(s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
      http::request<http::string_body> next;
      ReadRequest(s, buf, next);
    }
  });
  Start();
  tcp::socket client = Connect();
  beast::flat_buffer buf;
  Write(client, Get(origin.port(), "/1"));
  EXPECT_EQ(ReadResponse(client, buf).body(), "first");
  Write(client, Get(origin.port(), "/2"));
  auto res = ReadResponse(client, buf);
  EXPECT_EQ(res.result_int(), 502u);
  EXPECT_EQ(res["x-sluice-error"], "upstream_response");
  EXPECT_EQ(origin.accepts(), 2);
}

TEST_F(SessionTest, AFreshConnectionTheOriginDropsIsA502) {
  // Not a pooled connection: nothing to retry.
  Origin origin([](tcp::socket& s) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    ReadRequest(s, buf, req);
  });
  Start();
  tcp::socket client = Connect();
  beast::flat_buffer buf;
  Write(client, Get(origin.port(), "/"));
  auto res = ReadResponse(client, buf);
  EXPECT_EQ(res.result_int(), 502u);
  EXPECT_EQ(res["x-sluice-error"], "upstream_response");
  EXPECT_EQ(origin.accepts(), 1);
}

TEST_F(SessionTest, ARefusedDialIs502NamingTheReason) {
  uint16_t port;
  {
    tcp::acceptor closed(client_io_,
                         tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    port = closed.local_endpoint().port();
  }
  Start();
  tcp::socket client = Connect();
  beast::flat_buffer buf;
  Write(client, Get(port, "/"));
  auto res = ReadResponse(client, buf);
  EXPECT_EQ(res.result_int(), 502u);
  EXPECT_EQ(res["x-sluice-error"], "refused");
  EXPECT_TRUE(res.keep_alive());
}

TEST_F(SessionTest, ADeniedDestinationIs403NamingTheRule) {
  std::vector<Seen> seen;
  std::mutex mu;
  Origin origin(Answering("secret", &seen, &mu));
  Start(/*allow_loopback=*/false);
  tcp::socket client = Connect();
  beast::flat_buffer buf;
  Write(client, Get(origin.port(), "/"));
  auto res = ReadResponse(client, buf);
  EXPECT_EQ(res.result_int(), 403u);
  EXPECT_EQ(res["x-sluice-error"], "loopback");
  EXPECT_EQ(origin.accepts(), 0);
}

TEST_F(SessionTest, ExpectContinueIsAnsweredBySluiceAndNotForwarded) {
  std::vector<Seen> seen;
  std::mutex mu;
  Origin origin(Answering("got it", &seen, &mu));
  Start();
  tcp::socket client = Connect();
  Write(client, Get(origin.port(), "/upload",
                    "Expect: 100-continue\r\nContent-Length: 5\r\n"));
  // The 100 comes before the body is sent.
  asio::streambuf interim;
  asio::read_until(client, interim, "\r\n\r\n");
  const std::string head(asio::buffers_begin(interim.data()),
                         asio::buffers_end(interim.data()));
  EXPECT_EQ(head, "HTTP/1.1 100 Continue\r\n\r\n");
  Write(client, "hello");
  beast::flat_buffer buf;
  auto res = ReadResponse(client, buf);
  EXPECT_EQ(res.result_int(), 200u);
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].has_expect);
  EXPECT_EQ(seen[0].body, "hello");
}

// An origin that reads one request and writes `answer` verbatim, then
// closes.
Origin::Handler Scripted(std::string answer) {
  return [answer](tcp::socket& s) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    if (ReadRequest(s, buf, req)) Write(s, answer);
  };
}

TEST_F(SessionTest, InterimResponsesAreSkipped) {
  Origin origin(
      Scripted("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
               "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  Start();
  tcp::socket client = Connect();
  beast::flat_buffer buf;
  Write(client, Get(origin.port(), "/"));
  auto res = ReadResponse(client, buf);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "ok");
}

TEST_F(SessionTest, AnUpgradeIsRefused) {
  Origin origin(
      Scripted("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\n\r\n"));
  Start();
  tcp::socket client = Connect();
  beast::flat_buffer buf;
  Write(client, Get(origin.port(), "/"));
  auto res = ReadResponse(client, buf);
  EXPECT_EQ(res.result_int(), 502u);
  EXPECT_EQ(res["x-sluice-error"], "upgrade");
}

TEST_F(SessionTest, AnUnframedBodyIsChunkedToAnHttp11Client) {
  // No Content-Length: the body ends when the origin closes.
  Origin origin(Scripted("HTTP/1.1 200 OK\r\n\r\nuntil the end"));
  Start();
  tcp::socket client = Connect();
  beast::flat_buffer buf;
  Write(client, Get(origin.port(), "/"));
  auto res = ReadResponse(client, buf);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_TRUE(res.chunked());
  EXPECT_EQ(res.body(), "until the end");
  EXPECT_TRUE(res.keep_alive());
}

TEST_F(SessionTest, AnInvalidResponseIs502) {
  Origin origin(Scripted("nonsense\r\n\r\n"));
  Start();
  tcp::socket client = Connect();
  beast::flat_buffer buf;
  Write(client, Get(origin.port(), "/"));
  auto res = ReadResponse(client, buf);
  EXPECT_EQ(res.result_int(), 502u);
  EXPECT_EQ(res["x-sluice-error"], "upstream_response");
}

TEST_F(SessionTest, ARequestBeyondTheLimitGetsSluices429) {
  std::vector<Seen> seen;
  std::mutex mu;
  Origin origin(Answering("ok", &seen, &mu));
  LimitEverything(/*burst=*/1);
  Start();
  tcp::socket client = Connect();
  beast::flat_buffer buf;
  Write(client, Get(origin.port(), "/1"));
  EXPECT_EQ(ReadResponse(client, buf).result_int(), 200u);
  // The fake clock stands still: no token comes back.
  Write(client, Get(origin.port(), "/2"));
  auto res = ReadResponse(client, buf);
  EXPECT_EQ(res.result_int(), 429u);
  EXPECT_EQ(res["x-sluice-limited"], "local");
  EXPECT_EQ(res["x-sluice-limit"], "lim");
  EXPECT_EQ(res[http::field::retry_after], "1");
  EXPECT_TRUE(res.keep_alive());
  std::lock_guard lock(mu);
  EXPECT_EQ(seen.size(), 1u);
}

}  // namespace
}  // namespace sluice
