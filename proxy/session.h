#ifndef SLUICE_PROXY_SESSION_H_
#define SLUICE_PROXY_SESSION_H_

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <memory>
#include <string>

#include "proxy/proxy_context.h"

namespace sluice {

struct RequestState;

// One client connection. Reads requests one after another (keep-alive),
// refuses bad ones, routes and rate-limits the rest, and forwards them
// (absolute-form) or tunnels them (CONNECT). Runs as a coroutine on its own
// strand; Close() may be called from any thread.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(boost::asio::ip::tcp::socket socket, ProxyContext& ctx);
  ~Session();

  // Starts serving. The session keeps itself alive until the connection ends.
  void Start();

  // Asks the session to stop: an idle keep-alive connection closes at once,
  // a busy one after its current response (`force` closes it now).
  void Close(bool force);

 private:
  boost::asio::awaitable<void> Run();
  // Reads one request head into parser_. Returns false to end the session.
  boost::asio::awaitable<bool> ReadHead(RequestState& rs);
  boost::asio::awaitable<bool> HandleForward(RequestState& rs);
  boost::asio::awaitable<bool> HandleConnect(RequestState& rs);
  // Waits for tokens when a route with a limit matches. Returns true when
  // the request may proceed; otherwise the 429 has been sent.
  boost::asio::awaitable<bool> ApplyLimit(RequestState& rs);
  // Sends a small error response (JSON body). Returns whether the
  // connection may stay open afterwards.
  boost::asio::awaitable<bool> SendError(RequestState& rs, unsigned status,
                                         std::string reason,
                                         std::string detail);
  boost::asio::awaitable<bool> SendResponse(
      RequestState& rs,
      boost::beast::http::response<boost::beast::http::string_body>& res);
  // Sends sluice's own 429 with Retry-After and x-sluice-limited.
  boost::asio::awaitable<bool> SendLimited(RequestState& rs, std::string reason,
                                           Duration retry_after);
  void Finish(RequestState& rs);
  // Whether a throttled request may be sent again (the route's retry
  // settings, its method, no body, attempts and deadline left).
  bool RetryAllowed(const RequestState& rs, boost::beast::http::verb method,
                    int sends) const;
  // Feeds an upstream response head to the admitted bucket's pause state
  // (docs/pause.md): a throttle pauses it (returns true), anything else may
  // end its probe.
  bool NoteUpstreamAnswer(RequestState& rs,
                          const boost::beast::http::response_header<>& head);
  // Passes a limit stated by an ordinary response's headers to the bucket
  // (learned limits, docs/pause.md).
  void NoteStatedLimit(RequestState& rs,
                       const boost::beast::http::response_header<>& head);

  ProxyContext& ctx_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::string client_addr_;
  // Deadline for a whole request head. On expiry it cancels the pending
  // read (the socket stays open so the 408 can still be written).
  boost::asio::steady_timer head_timer_;
  uint64_t head_gen_ = 0;
  bool head_timed_out_ = false;
  void ArmHeadDeadline(Duration d);
  void DisarmHeadDeadline();
  // Streaming buffer, allocated on first use and kept for the connection.
  std::unique_ptr<char[]> relay_buf_;
  bool idle_ = false;  // between requests, on the strand
  bool close_requested_ = false;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_SESSION_H_
