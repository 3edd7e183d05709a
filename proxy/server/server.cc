#include "proxy/server/server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include "absl/strings/str_cat.h"
#include "proxy/server/session.h"
#include "proxy/stats/proxy_metrics.h"

namespace sluice {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Server::Server(asio::io_context& io, ProxyContext& ctx) : io_(io), ctx_(ctx) {}

Server::~Server() = default;

absl::StatusOr<tcp::endpoint> Server::Listen(const ListenAddress& addr) {
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(addr.host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen ", addr.ToString(), ": bad address"));
  }
  tcp::endpoint ep(ip, addr.port);
  // Each acceptor gets its own strand so accepts never race.
  auto acc = std::make_unique<tcp::acceptor>(asio::make_strand(io_));
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && ip.is_v6()) acc->set_option(asio::ip::v6_only(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("listen ", addr.ToString(), ": ", ec.message()));
  }
  auto bound = acc->local_endpoint(ec);
  acceptors_.push_back(std::move(acc));
  return bound;
}

void Server::Start() {
  for (size_t i = 0; i < acceptors_.size(); ++i) DoAccept(i);
}

void Server::DoAccept(size_t index) {
  auto& acc = *acceptors_[index];
  acc.async_accept(asio::make_strand(io_), [this, index](
                                               boost::system::error_code ec,
                                               tcp::socket socket) {
    if (ec == asio::error::operation_aborted || ctx_.draining.load()) {
      return;
    }
    if (!ec) {
      if (ctx_.connections.load() >= ctx_.config->limits.max_connections) {
        ctx_.metrics->OnConnectionRejected();
        // Tell the client why before closing; never block on it.
        auto s = std::make_shared<tcp::socket>(std::move(socket));
        static constexpr std::string_view k503 =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
            "Connection: close\r\nx-sluice-error: too_many_connections\r\n\r\n";
        asio::async_write(*s, asio::buffer(k503),
                          [s](boost::system::error_code, size_t) {
                            boost::system::error_code ignored;
                            s->close(ignored);
                          });
      } else {
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto session = std::make_shared<Session>(std::move(socket), ctx_);
        Track(session);
        session->Start();
      }
    } else {
      spdlog::warn("accept failed: {}", ec.message());
    }
    DoAccept(index);
  });
}

void Server::Track(const std::shared_ptr<Session>& s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sessions_.size() > 64 && sessions_.size() > 2 * ctx_.connections.load()) {
    sessions_.remove_if([](const auto& w) { return w.expired(); });
  }
  sessions_.push_back(s);
}

void Server::StopAccepting() {
  for (auto& acc : acceptors_) {
    asio::post(acc->get_executor(), [a = acc.get()] {
      boost::system::error_code ignored;
      a->close(ignored);
    });
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& w : sessions_) {
    if (auto s = w.lock()) s->Close(false);
  }
}

void Server::CloseAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& w : sessions_) {
    if (auto s = w.lock()) s->Close(true);
  }
}

}  // namespace sluice
