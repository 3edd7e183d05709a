#include "common/admin/admin_server.h"

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <exception>
#include <list>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/net/listen_address.h"

namespace sluice {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Response = http::response<http::string_body>;

namespace {

// After an error response, how long and how much to read (and discard)
// before closing, so the client sees the response rather than a reset.
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr size_t kLingerBytes = 64 * 1024;
// Pause before accepting again after an accept error (e.g. out of fds).
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

constexpr std::string_view kTextPlain = "text/plain; charset=utf-8";

Response MakeResponse(http::status status, unsigned version,
                      std::string_view content_type, std::string body) {
  Response res{status, version};
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  return res;
}

bool IsHttpParseError(const beast::error_code& ec) {
  return ec.category() ==
         http::make_error_code(http::error::bad_method).category();
}

}  // namespace

// The listener: accepts connections and keeps track of live ones.
class AdminServer::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io, AdminHandlers handlers)
      : io_(io),
        handlers_(std::move(handlers)),
        acceptor_(io),
        retry_timer_(io) {}

  absl::Status Bind(const std::string& host, uint16_t port);
  uint16_t bound_port() const { return bound_port_; }
  void DoAccept();
  void Stop();
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }
  const AdminHandlers& handlers() const { return handlers_; }
  // Called by a connection's destructor.
  void Forget(std::list<std::weak_ptr<Connection>>::iterator it);

 private:
  void OnAccept(beast::error_code ec, tcp::socket socket);

  asio::io_context& io_;
  const AdminHandlers handlers_;
  std::atomic<bool> stopped_{false};
  uint16_t bound_port_ = 0;
  // Guards the acceptor, the timer and the connection list: Stop may run on
  // any thread while accept handlers run on the io_context.
  std::mutex mu_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  std::list<std::weak_ptr<Connection>> connections_;
};

// One admin connection: read a request, answer it, repeat while the client
// keeps the connection alive. All its handlers run on its own strand.
class AdminServer::Connection
    : public std::enable_shared_from_this<AdminServer::Connection> {
 public:
  Connection(tcp::socket&& socket, std::shared_ptr<Impl> owner)
      : stream_(std::move(socket)), owner_(std::move(owner)) {}
  ~Connection() { owner_->Forget(self_it_); }

  void set_list_entry(std::list<std::weak_ptr<Connection>>::iterator it) {
    self_it_ = it;
  }

  void Start() {
    asio::dispatch(
        stream_.get_executor(),
        beast::bind_front_handler(&Connection::DoRead, shared_from_this()));
  }

  // Closes the socket on the connection's strand; pending operations end
  // with operation_aborted.
  void Close() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      self->closed_ = true;
      beast::error_code ec;
      self->stream_.socket().close(ec);
    });
  }

 private:
  void DoRead();
  void OnRead(beast::error_code ec, size_t bytes);
  Response Handle(const http::request<http::empty_body>& req);
  void DoWrite(Response res);
  void OnWrite(bool keep_alive, beast::error_code ec, size_t bytes);
  void DoLinger();
  void OnLinger(beast::error_code ec, size_t bytes);

  beast::tcp_stream stream_;
  std::shared_ptr<Impl> owner_;
  std::list<std::weak_ptr<Connection>>::iterator self_it_;
  beast::flat_buffer buffer_{2 * kMaxHeaderBytes};
  std::optional<http::request_parser<http::empty_body>> parser_;
  Response res_;
  std::array<char, 4096> drain_{};
  size_t drained_ = 0;
  bool closed_ = false;
};

absl::Status AdminServer::Impl::Bind(const std::string& host, uint16_t port) {
  const std::string where = ListenAddress{host, port}.ToString();
  beast::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen ", where, ": not an IP address"));
  }
  const tcp::endpoint ep(address, port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && address.is_v6()) acceptor_.set_option(asio::ip::v6_only(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  tcp::endpoint local;
  if (!ec) local = acceptor_.local_endpoint(ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("listen ", where, ": ", ec.message()));
  }
  bound_port_ = local.port();
  return absl::OkStatus();
}

void AdminServer::Impl::DoAccept() {
  std::lock_guard lock(mu_);
  if (stopped()) return;
  acceptor_.async_accept(
      asio::make_strand(io_),
      beast::bind_front_handler(&Impl::OnAccept, shared_from_this()));
}

void AdminServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || stopped()) return;
  if (ec) {
    std::lock_guard lock(mu_);
    if (stopped()) return;
    retry_timer_.expires_after(kAcceptRetryDelay);
    retry_timer_.async_wait([self = shared_from_this()](beast::error_code e) {
      if (!e) self->DoAccept();
    });
    return;
  }
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(mu_);
    if (connections_.size() < kMaxConnections) {
      conn =
          std::make_shared<Connection>(std::move(socket), shared_from_this());
      conn->set_list_entry(connections_.insert(connections_.end(), conn));
    }
  }
  if (conn) {
    conn->Start();
  } else {
    beast::error_code ignored;
    socket.close(ignored);  // over the connection limit
  }
  DoAccept();
}

void AdminServer::Impl::Forget(
    std::list<std::weak_ptr<Connection>>::iterator it) {
  std::lock_guard lock(mu_);
  connections_.erase(it);
}

void AdminServer::Impl::Stop() {
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard lock(mu_);
    if (stopped_.exchange(true)) return;
    beast::error_code ignored;
    acceptor_.close(ignored);
    retry_timer_.cancel();
    for (auto& weak : connections_) {
      if (auto c = weak.lock()) live.push_back(std::move(c));
    }
  }
  // Outside the lock: dropping the last reference runs ~Connection, which
  // takes the lock.
  for (auto& c : live) c->Close();
}

void AdminServer::Connection::DoRead() {
  if (closed_ || owner_->stopped()) return;
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(kMaxHeaderBytes));
  parser_->body_limit(0);
  stream_.expires_after(kIoTimeout);
  http::async_read(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&Connection::OnRead, shared_from_this()));
}

void AdminServer::Connection::OnRead(beast::error_code ec, size_t) {
  if (ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      Response res = MakeResponse(http::status::request_header_fields_too_large,
                                  11, kTextPlain, "request header too large\n");
      res.keep_alive(false);
      return DoWrite(std::move(res));
    }
    if (ec == http::error::body_limit || ec == http::error::unexpected_body) {
      Response res =
          MakeResponse(http::status::payload_too_large, 11, kTextPlain,
                       "request bodies are not accepted\n");
      res.keep_alive(false);
      return DoWrite(std::move(res));
    }
    if (IsHttpParseError(ec) && ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
      Response res = MakeResponse(http::status::bad_request, 11, kTextPlain,
                                  "bad request\n");
      res.keep_alive(false);
      return DoWrite(std::move(res));
    }
    // End of stream, timeout, reset or Stop: just close.
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    return;
  }
  const auto& req = parser_->get();
  Response res = Handle(req);
  if (req.method() == http::verb::head) {
    res.prepare_payload();  // Content-Length of the GET body...
    res.body().clear();     // ...but no body.
  }
  DoWrite(std::move(res));
}

Response AdminServer::Connection::Handle(
    const http::request<http::empty_body>& req) {
  const unsigned version = req.version() == 10 ? 10 : 11;
  const http::verb method = req.method();
  const AdminHandlers& h = owner_->handlers();
  const bool post_ok =
      method == http::verb::post && !h.post_prefix_routes.empty();
  if (method != http::verb::get && method != http::verb::head && !post_ok) {
    Response res = MakeResponse(http::status::method_not_allowed, version,
                                kTextPlain, "method not allowed\n");
    res.set(http::field::allow,
            h.post_prefix_routes.empty() ? "GET, HEAD" : "GET, HEAD, POST");
    // CONNECT and unknown methods leave the stream in doubt: close.
    res.keep_alive(req.keep_alive() && method != http::verb::connect &&
                   method != http::verb::unknown);
    return res;
  }
  const std::string_view target = req.target();
  auto url = boost::urls::parse_origin_form(
      boost::urls::string_view(target.data(), target.size()));
  if (!url) {
    // Absolute-form ("http://host/"), authority-form or garbage: this is
    // not a proxy.
    Response res =
        MakeResponse(http::status::bad_request, version, kTextPlain,
                     "the admin listener only serves /path targets\n");
    res.keep_alive(false);
    return res;
  }
  const std::string path = url->path();
  AdminRequest areq;
  areq.method = std::string(req.method_string());
  areq.path = path;
  for (const auto& param : url->params()) {
    areq.query[std::string(param.key)] = std::string(param.value);
  }
  Response res;
  try {
    if (method == http::verb::post) {
      res = MakeResponse(http::status::not_found, version, kTextPlain,
                         "not found\n");
      for (const auto& [prefix, route] : h.post_prefix_routes) {
        if (path.starts_with(prefix)) {
          AdminResponse out = route(areq);
          res = MakeResponse(static_cast<http::status>(out.status), version,
                             out.content_type, std::move(out.body));
          break;
        }
      }
    } else if (auto it = h.get_routes.find(path); it != h.get_routes.end()) {
      AdminResponse out = it->second(areq);
      res = MakeResponse(static_cast<http::status>(out.status), version,
                         out.content_type, std::move(out.body));
    } else if (path == "/healthz") {
      res = MakeResponse(http::status::ok, version, kTextPlain, "ok");
    } else if (path == "/readyz") {
      const bool ready = !owner_->stopped() && (!h.ready || h.ready());
      std::string body = ready ? "ready" : "not ready";
      if (h.ready_detail) absl::StrAppend(&body, "\n", h.ready_detail());
      res = MakeResponse(
          ready ? http::status::ok : http::status::service_unavailable, version,
          kTextPlain, std::move(body));
    } else if (path == "/metrics" && h.metrics) {
      res = MakeResponse(http::status::ok, version, "text/plain; version=0.0.4",
                         h.metrics());
    } else if (path == "/config" && h.config_yaml) {
      res = MakeResponse(http::status::ok, version, "application/yaml",
                         h.config_yaml());
    } else {
      res = MakeResponse(http::status::not_found, version, kTextPlain,
                         "not found\n");
    }
  } catch (...) {
    res = MakeResponse(http::status::internal_server_error, version, kTextPlain,
                       "internal error\n");
  }
  res.keep_alive(req.keep_alive());
  return res;
}

void AdminServer::Connection::DoWrite(Response res) {
  res_ = std::move(res);
  if (res_.body().size() > 0 || !res_.has_content_length())
    res_.prepare_payload();
  const bool keep_alive = res_.keep_alive();
  stream_.expires_after(kIoTimeout);
  http::async_write(stream_, res_,
                    beast::bind_front_handler(&Connection::OnWrite,
                                              shared_from_this(), keep_alive));
}

void AdminServer::Connection::OnWrite(bool keep_alive, beast::error_code ec,
                                      size_t) {
  if (ec) return;  // the socket closes with this object
  if (!keep_alive) return DoLinger();
  DoRead();
}

void AdminServer::Connection::DoLinger() {
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  if (closed_) return;
  buffer_.consume(buffer_.size());
  stream_.expires_after(kLingerTime);
  stream_.async_read_some(
      asio::buffer(drain_),
      beast::bind_front_handler(&Connection::OnLinger, shared_from_this()));
}

void AdminServer::Connection::OnLinger(beast::error_code ec, size_t bytes) {
  drained_ += bytes;
  if (!ec && !closed_ && drained_ < kLingerBytes) {
    stream_.async_read_some(
        asio::buffer(drain_),
        beast::bind_front_handler(&Connection::OnLinger, shared_from_this()));
    return;
  }
  beast::error_code ignored;
  stream_.socket().close(ignored);
}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(
    asio::io_context& io, std::string host, uint16_t port,
    AdminHandlers handlers) {
  auto impl = std::make_shared<Impl>(io, std::move(handlers));
  if (absl::Status s = impl->Bind(host, port); !s.ok()) return s;
  const uint16_t bound = impl->bound_port();
  impl->DoAccept();
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl), bound));
}

AdminServer::AdminServer(std::shared_ptr<Impl> impl, uint16_t port)
    : impl_(std::move(impl)), port_(port) {}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::Stop() { impl_->Stop(); }

}  // namespace sluice
