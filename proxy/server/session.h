#ifndef SLUICE_PROXY_SERVER_SESSION_H_
#define SLUICE_PROXY_SERVER_SESSION_H_

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/server/http_relay.h"
#include "proxy/server/proxy_context.h"

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

  // The pause's side of forwarding (session_retry.cc, docs/pause.md).
  //
  // Whether the request body is read into memory before it is sent, so that
  // a throttled request can be sent again: a route with transparent retry,
  // a method it retries, and a Content-Length within retry.max_body_bytes
  // (or a chunked body, which may turn out to fit).
  bool WantsBodyCopy(const RequestState& rs) const;
  // Reads the request body into rs.body_copy, at most max_body_bytes + 1
  // bytes, with the body_idle timeout on each read. When all of it fit, the
  // body is no longer pending; otherwise body_copy holds its start.
  boost::asio::awaitable<boost::beast::error_code> CopyRequestBody(
      RequestState& rs);
  // Why a throttled request is not sent again: "off" (not a retry route),
  // "method", "body" (streamed without a copy), "attempts" or "deadline";
  // "" when it is.
  std::string_view RetryRefusal(const RequestState& rs,
                                boost::beast::http::verb method,
                                int sends) const;
  struct UpstreamAnswer {
    bool throttled = false;
    boost::beast::error_code body_ec;  // reading the body's start failed
  };
  // Feeds an upstream response to the admitted bucket's pause state: a
  // throttle pauses it, anything else may end its probe. When an ignore
  // rule's body marker could excuse a throttle, the body's first
  // throttle.body_peek_bytes are read into rs.response_prefix first (within
  // the upstream_response timeout) and classified with the head.
  boost::asio::awaitable<UpstreamAnswer> NoteUpstreamAnswer(
      RequestState& rs, boost::beast::tcp_stream& up,
      boost::beast::flat_buffer& up_buf,
      boost::beast::http::response_parser<boost::beast::http::buffer_body>&
          resp);
  // An answer that is not a throttle: it may end the bucket's probe, and a
  // limit its headers state goes to the bucket (sampled; learned limits,
  // docs/pause.md).
  void NoteAnswered(RequestState& rs,
                    const boost::beast::http::response_header<>& head,
                    TimePoint now);

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
  // The same cancel-only deadline on reads of the request body, so that a
  // stalled body still gets its 408 (http_relay.h ReadDeadline). Disarm
  // it (DisarmHeadDeadline) as soon as the body has been read.
  class BodyDeadline final : public ReadDeadline {
   public:
    explicit BodyDeadline(Session* s) : s_(s) {}
    void Arm(Duration d) override { s_->ArmHeadDeadline(d); }
    bool TimedOut() const override { return s_->head_timed_out_; }

   private:
    Session* s_;
  };
  BodyDeadline body_deadline_{this};
  void DisarmHeadDeadline();
  // Streaming buffer, allocated on first use and kept for the connection.
  std::unique_ptr<char[]> relay_buf_;
  bool idle_ = false;  // between requests, on the strand
  bool close_requested_ = false;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_SERVER_SESSION_H_
