#ifndef SLUICE_PROXY_SERVER_SESSION_H_
#define SLUICE_PROXY_SERVER_SESSION_H_

#include <openssl/ssl.h>

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
#include <optional>
#include <string>
#include <string_view>

#include "proxy/egress/dialer.h"
#include "proxy/http/http_head.h"
#include "proxy/io/maybe_tls_stream.h"
#include "proxy/server/http_relay.h"
#include "proxy/server/proxy_context.h"
#include "proxy/stats/proxy_metrics.h"
#include "proxy/tls/client_hello_peek.h"

namespace sluice {

struct ForwardTarget;
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
  // The origin connection of one forwarded request.
  struct Upstream {
    std::string pool_key;  // "host:port" as the request named them
    std::unique_ptr<MaybeTlsStream> stream;
    boost::beast::flat_buffer buf;
    // Taken from the pool, and not re-dialled since.
    bool reused = false;
    // The response whose head was read (ReadResponseHead).
    std::optional<
        boost::beast::http::response_parser<boost::beast::http::buffer_body>>
        response;
  };

  boost::asio::awaitable<void> Run();
  // Reads one request head into parser_. Returns false to end the session.
  boost::asio::awaitable<bool> ReadHead(RequestState& rs);
  // CONNECT (session_connect.cc): an opaque tunnel, or one sluice reads
  // itself (ReadTunnel), after which the session goes on reading requests
  // for the tunnel's origin (tunnel_).
  boost::asio::awaitable<bool> HandleConnect(RequestState& rs);
  // Dials the CONNECT's origin and relays bytes both ways until done.
  // `answered`: the client already has its 200 (a failure then closes).
  boost::asio::awaitable<bool> OpenTunnel(RequestState& rs, bool answered);
  // Answers 200 and looks at what the client sends: TLS to a host sluice
  // intercepts is terminated with a minted certificate, plain HTTP is read
  // as such, anything else becomes an opaque tunnel.
  boost::asio::awaitable<bool> ReadTunnel(RequestState& rs, bool intercept);
  // Reads the client's first bytes into buffer_ until PeekClientBytes can
  // tell them (kNeedMore: the connection ended or the head deadline
  // passed first).
  boost::asio::awaitable<PeekResult> PeekTunnel();
  // Why a client's TLS handshake failed, as a metric label.
  static std::string_view HandshakeFailure(SSL* ssl,
                                           boost::beast::error_code ec);
  // Waits for tokens when a route with a limit matches. Returns true when
  // the request may proceed; otherwise the 429 has been sent.
  boost::asio::awaitable<bool> ApplyLimit(RequestState& rs);
  // Forwarding (session_forward.cc), in stages: the target, admission
  // (ApplyLimit), the upstream exchange, the relay of the response. Each
  // stage that answers the client itself returns the session's keep-alive
  // decision; the handlers return whether the connection stays open.
  boost::asio::awaitable<bool> HandleForward(RequestState& rs);
  // Why the origin could not be reached, as the client is told.
  struct UpstreamFailure {
    unsigned status;
    RequestOutcome outcome;
    std::string reason;  // x-sluice-error and the JSON's "reason"
    std::string detail;
  };
  // Dials the request's origin into `up` (a fresh connection, counted in
  // the metrics) and, for an https origin, completes the TLS handshake.
  // The failure when it could not.
  boost::asio::awaitable<std::optional<UpstreamFailure>> Dial(RequestState& rs,
                                                              Upstream& up);
  // The client side of TLS on a fresh origin connection: SNI, the
  // certificate verified for the host (tls_expired, tls_unknown_issuer,
  // tls_wrong_host, ... when it is not), within timeouts.connect.
  boost::asio::awaitable<std::optional<UpstreamFailure>> StartOriginTls(
      RequestState& rs, MaybeTlsStream& stream);
  // A failed dial as the client is told: 400 (bad host), 403 (the SSRF
  // guard), 504 (timeouts) or 502, naming the reason.
  static UpstreamFailure FailureOf(const DialResult& failed);
  boost::asio::awaitable<bool> SendDialFailure(RequestState& rs,
                                               const DialResult& failed);
  boost::asio::awaitable<bool> SendUpstreamFailure(
      RequestState& rs, const UpstreamFailure& failed);
  // Rewrites the request head for the origin: origin-form target, Host,
  // hop-by-hop fields stripped, Via added, Expect taken off (noted in
  // rs.expect_continue).
  void RewriteRequestHead(RequestState& rs, const ForwardTarget& ft);
  // Sends the request and reads the response head into up.response, as
  // often as transparent retry asks. nullopt: a response is ready to
  // relay; otherwise the client was answered and the value is the
  // keep-alive decision.
  boost::asio::awaitable<std::optional<bool>> Exchange(RequestState& rs,
                                                       Upstream& up);
  // One send (`sends`: its number, from 1) and the read of the answer's
  // head, on a fresh connection once more if the origin had closed the
  // pooled one (OriginClosedIdle). Returns as Exchange does.
  boost::asio::awaitable<std::optional<bool>> SendAndReadHead(RequestState& rs,
                                                              Upstream& up,
                                                              int sends);
  // Whether the failure `ec` of the first attempt on `up` is an origin that
  // closed an idle pooled connection, so the request may go again.
  bool OriginClosedIdle(const RequestState& rs, const Upstream& up,
                        boost::beast::error_code ec) const;
  // Reads the head of the origin's answer into up.response, skipping
  // interim 1xx responses.
  boost::asio::awaitable<boost::beast::error_code> ReadResponseHead(
      RequestState& rs, Upstream& up);
  // Streams up.response to the client and returns `up` to the pool when
  // the origin may keep it.
  boost::asio::awaitable<bool> RelayResponse(RequestState& rs, Upstream& up);
  // The connection's streaming buffer (allocated on first use).
  RelayBuffer RelayBuf();

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
      RequestState& rs, MaybeTlsStream& up, boost::beast::flat_buffer& up_buf,
      boost::beast::http::response_parser<boost::beast::http::buffer_body>&
          resp);
  // An answer that is not a throttle: it may end the bucket's probe, and a
  // limit its headers state goes to the bucket (sampled; learned limits,
  // docs/pause.md).
  void NoteAnswered(RequestState& rs,
                    const boost::beast::http::response_header<>& head,
                    TimePoint now);

  ProxyContext& ctx_;
  MaybeTlsStream stream_;
  // Set once a CONNECT opened a tunnel this session reads: every request
  // after it goes to this origin.
  std::optional<TunnelOrigin> tunnel_;
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
  // Streaming buffer, taken on first use and given back to the thread's
  // RelayBufferCache whenever the connection goes idle between requests.
  std::unique_ptr<char[]> relay_buf_;
  // What an idle connection reads the start of its next request into.
  static constexpr size_t kIdleReadBytes = 4096;
  bool idle_ = false;  // between requests, on the strand
  bool close_requested_ = false;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_SERVER_SESSION_H_
