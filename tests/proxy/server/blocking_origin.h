#ifndef SLUICE_TESTS_PROXY_SERVER_BLOCKING_ORIGIN_H_
#define SLUICE_TESTS_PROXY_SERVER_BLOCKING_ORIGIN_H_

#include <sys/socket.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace sluice::test {

// An origin on loopback, served by its own thread with blocking sockets:
// each accepted connection goes to `handler`, one after another.
class BlockingOrigin {
 public:
  using tcp = boost::asio::ip::tcp;
  using Handler = std::function<void(tcp::socket&)>;

  explicit BlockingOrigin(Handler handler)
      : acceptor_(io_,
                  tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0)),
        endpoint_(acceptor_.local_endpoint()),
        handler_(std::move(handler)),
        thread_([this] { Serve(); }) {}

  ~BlockingOrigin() {
    {
      // Ends a handler blocked on a connection the proxy keeps pooled; a
      // connection accepted after this sees stop_ and is not served.
      std::lock_guard lock(mu_);
      stop_ = true;
      if (serving_ >= 0) ::shutdown(serving_, SHUT_RDWR);
    }
    // Unblocks the accept.
    boost::system::error_code ignored;
    tcp::socket poke(poke_io_);
    poke.connect(endpoint_, ignored);
    thread_.join();
  }

  uint16_t port() const { return endpoint_.port(); }
  int accepts() const { return accepts_.load(); }

 private:
  void Serve() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s = acceptor_.accept(ec);
      if (ec) return;
      {
        std::lock_guard lock(mu_);
        if (stop_) return;
        serving_ = s.native_handle();
      }
      ++accepts_;
      handler_(s);
      std::lock_guard lock(mu_);
      serving_ = -1;
    }
  }

  boost::asio::io_context io_;
  boost::asio::io_context poke_io_;
  tcp::acceptor acceptor_;
  const tcp::endpoint endpoint_;
  Handler handler_;
  std::atomic<int> accepts_{0};
  std::mutex mu_;
  bool stop_ = false;  // guarded by mu_
  int serving_ = -1;   // the connection being served, guarded by mu_
  std::thread thread_;
};

}  // namespace sluice::test

#endif  // SLUICE_TESTS_PROXY_SERVER_BLOCKING_ORIGIN_H_
