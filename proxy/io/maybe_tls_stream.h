#ifndef SLUICE_PROXY_IO_MAYBE_TLS_STREAM_H_
#define SLUICE_PROXY_IO_MAYBE_TLS_STREAM_H_

// A TCP connection that may carry TLS: plain bytes until StartTls, then the
// same socket under a TLS layer. Beast's HTTP reads and writes, and Asio's,
// take it as they take a tcp_stream, so one session and one relay serve
// http:// and https:// alike (docs/https.md).

#include <boost/asio/async_result.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <memory>
#include <utility>

namespace sluice {

// Thread-compatibility: as a tcp_stream's, one operation of each kind
// (read, write) in flight at a time, on the stream's executor. Deadlines
// are the TCP layer's (tcp().expires_after): they bound TLS operations too,
// since every TLS read and write is made of TCP ones.
class MaybeTlsStream {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;
  using TlsLayer = boost::asio::ssl::stream<boost::beast::tcp_stream&>;

  explicit MaybeTlsStream(boost::beast::tcp_stream tcp)
      : tcp_(std::move(tcp)) {}
  explicit MaybeTlsStream(boost::asio::ip::tcp::socket socket)
      : tcp_(std::move(socket)) {}

  MaybeTlsStream(const MaybeTlsStream&) = delete;
  MaybeTlsStream& operator=(const MaybeTlsStream&) = delete;

  // The TCP layer: deadlines, the socket, its shutdown.
  boost::beast::tcp_stream& tcp() { return tcp_; }
  const boost::beast::tcp_stream& tcp() const { return tcp_; }
  boost::asio::ip::tcp::socket& socket() { return tcp_.socket(); }

  // Whether reads and writes go through TLS (after StartTls).
  bool tls() const { return tls_ != nullptr; }

  // Puts a TLS layer made from `ctx` over the TCP one; the caller then
  // runs its handshake on tls_layer() (as a server or a client). Reads and
  // writes go through it from now on. `ctx` must outlive the stream. Call
  // once, with no operation in flight.
  TlsLayer& StartTls(boost::asio::ssl::context& ctx) {
    tls_ = std::make_unique<TlsLayer>(tcp_, ctx);
    return *tls_;
  }
  // The TLS layer; only after StartTls.
  TlsLayer& tls_layer() { return *tls_; }

  executor_type get_executor() noexcept { return tcp_.get_executor(); }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code,
                                                   std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (tls_) {
            tls_->async_read_some(b, std::move(handler));
          } else {
            tcp_.async_read_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code,
                                                   std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (tls_) {
            tls_->async_write_some(b, std::move(handler));
          } else {
            tcp_.async_write_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

 private:
  boost::beast::tcp_stream tcp_;
  // Refers to tcp_: declared after it, so destroyed first.
  std::unique_ptr<TlsLayer> tls_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_IO_MAYBE_TLS_STREAM_H_
