#ifndef SLUICE_PROXY_SERVER_HTTP_RELAY_H_
#define SLUICE_PROXY_SERVER_HTTP_RELAY_H_

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <iterator>
#include <vector>

#include "common/time/clock.h"
#include "proxy/io/await.h"
#include "proxy/io/maybe_tls_stream.h"

namespace sluice {

// A caller-owned, bounded byte buffer for one relay direction.
struct RelayBuffer {
  char* ptr;
  size_t len;
  char* data() const { return ptr; }
  size_t size() const { return len; }
};

// A deadline on reads from a stream that must stay open when it expires
// (the client's: a 408 is still to be written). Arm() before each read
// arms it, its expiry cancels the pending read (operation_aborted), and
// TimedOut() tells that cancel from any other. Without one, a read's
// deadline is the stream's own, which closes the socket.
class ReadDeadline {
 public:
  virtual ~ReadDeadline() = default;
  virtual void Arm(Duration d) = 0;
  virtual bool TimedOut() const = 0;
};

// Arms the deadline of the next read from `from`: `deadline`, or the
// stream's own.
inline void ArmRead(MaybeTlsStream& from, ReadDeadline* deadline, Duration d) {
  if (deadline != nullptr) {
    from.tcp().expires_never();
    deadline->Arm(d);
  } else {
    from.tcp().expires_after(d);
  }
}

// A read error as the caller should see it: a read cancelled by
// `deadline` is a timeout.
inline boost::beast::error_code ReadError(boost::beast::error_code ec,
                                          const ReadDeadline* deadline) {
  if (ec == boost::asio::error::operation_aborted && deadline != nullptr &&
      deadline->TimedOut()) {
    return boost::beast::error::timeout;
  }
  return ec;
}

// Where a relay failed, so the caller can pick the right status.
struct RelayError {
  boost::beast::error_code ec;
  bool reading = false;  // true: reading the source failed
};

// One message to stream with RelayMessage: its head has been parsed by
// `parser` from `from`; it goes to `to` through the bounded buffer `buf`.
template <bool isRequest>
struct RelayJob {
  MaybeTlsStream& from;
  boost::beast::flat_buffer& from_buf;
  boost::beast::http::parser<isRequest, boost::beast::http::buffer_body>&
      parser;
  MaybeTlsStream& to;
  RelayBuffer buf;
  // The deadline of every read and write.
  Duration idle;
  // Counts the body bytes read here (not `prefix`).
  uint64_t& body_bytes;
  // Write the head alone (a response that has no body).
  bool head_only = false;
  // Body bytes already read through `parser` (ReadBodyPrefix); may be the
  // whole body. Written after the head, before the rest.
  RelayBuffer prefix{nullptr, 0};
  // The deadline of reads from `from`; null: the stream's own.
  ReadDeadline* read_deadline = nullptr;
};

// Streams the message of `job`: writes the head, then the prefix, then the
// rest of the body in pieces as they arrive, letting the serializer
// re-frame it (chunked or Content-Length). Every operation has its own
// deadline.
template <bool isRequest>
boost::asio::awaitable<RelayError> RelayMessage(RelayJob<isRequest> job) {
  auto& from = job.from;
  auto& p = job.parser;
  auto& to = job.to;
  const RelayBuffer buf = job.buf;
  const RelayBuffer prefix = job.prefix;
  const Duration idle = job.idle;
  const bool head_only = job.head_only;
  auto& body = p.get().body();
  body.data = nullptr;
  body.size = 0;
  body.more = !p.is_done() && !head_only;
  boost::beast::http::serializer<isRequest, boost::beast::http::buffer_body> sr{
      p.get()};
  to.tcp().expires_after(idle);
  auto [hec, hn] =
      co_await boost::beast::http::async_write_header(to, sr, kNoThrow);
  if (hec) co_return RelayError{hec, false};
  if (head_only) co_return RelayError{};
  if (prefix.size() > 0) {
    body.data = prefix.data();
    body.size = prefix.size();
    body.more = !p.is_done();
    to.tcp().expires_after(idle);
    auto [wec, wn] = co_await boost::beast::http::async_write(to, sr, kNoThrow);
    if (wec == boost::beast::http::error::need_buffer) wec = {};
    if (wec) co_return RelayError{wec, false};
  }
  while (!p.is_done()) {
    body.data = buf.data();
    body.size = buf.size();
    ArmRead(from, job.read_deadline, idle);
    auto [rec0, rn] = co_await boost::beast::http::async_read_some(
        from, job.from_buf, p, kNoThrow);
    boost::beast::error_code rec = ReadError(rec0, job.read_deadline);
    if (rec == boost::beast::http::error::need_buffer) rec = {};
    if (rec) co_return RelayError{rec, true};
    body.size = buf.size() - body.size;
    body.more = !p.is_done();
    job.body_bytes += body.size;
    // A zero-length buffer would be serialized as a chunk of size zero,
    // which means "end of body": only hand over real bytes.
    if (body.size == 0) {
      body.data = nullptr;
      if (body.more) continue;
    } else {
      body.data = buf.data();
    }
    to.tcp().expires_after(idle);
    auto [wec, wn] = co_await boost::beast::http::async_write(to, sr, kNoThrow);
    if (wec == boost::beast::http::error::need_buffer) wec = {};
    if (wec) co_return RelayError{wec, false};
  }
  if (!sr.is_done()) {
    body.data = nullptr;
    body.size = 0;
    body.more = false;
    to.tcp().expires_after(idle);
    auto [wec, wn] = co_await boost::beast::http::async_write(to, sr, kNoThrow);
    if (wec == boost::beast::http::error::need_buffer) wec = {};
    if (wec) co_return RelayError{wec, false};
  }
  co_return RelayError{};
}

// What ReadBodyPrefix read.
struct PrefixRead {
  boost::beast::error_code ec;  // reading `from` failed (timeout: timeout)
  size_t size = 0;              // body bytes now at the start of `dst`
};

// The start of a body to read with ReadBodyPrefix: the message's head has
// been parsed by `parser` from `from`; its body's first bytes go to `dst`.
template <bool isRequest>
struct PrefixJob {
  MaybeTlsStream& from;
  boost::beast::flat_buffer& from_buf;
  boost::beast::http::parser<isRequest, boost::beast::http::buffer_body>&
      parser;
  RelayBuffer dst;
  // Bounds every read when `per_read`, else the whole call.
  Duration timeout;
  bool per_read = false;
  // The deadline of reads from `from`; null: the stream's own.
  ReadDeadline* read_deadline = nullptr;
};

// Reads the start of the body of `job` into `job.dst`, with chunked framing
// removed: stops when `dst` is full or the body has ended (p.is_done(); at
// once for a message without a body). The bytes are consumed from the
// parser: relay them with RelayJob::prefix.
//
// The parser adds the trailer fields of a chunked body to the head; they
// are removed again, so that the head written afterwards is the one that
// was read (RelayMessage, which writes the head first, never sends them).
template <bool isRequest>
boost::asio::awaitable<PrefixRead> ReadBodyPrefix(PrefixJob<isRequest> job) {
  auto& from = job.from;
  auto& p = job.parser;
  const RelayBuffer dst = job.dst;
  const Duration timeout = job.timeout;
  const bool per_read = job.per_read;
  ReadDeadline* const read_deadline = job.read_deadline;
  auto& body = p.get().body();
  auto& fields = p.get().base();
  std::vector<const void*> head_fields;
  if (p.chunked()) {
    for (const auto& f : fields) head_fields.push_back(&f);
  }
  PrefixRead out;
  if (!per_read) ArmRead(from, read_deadline, timeout);
  while (!p.is_done() && out.size < dst.size()) {
    body.data = dst.data() + out.size;
    body.size = dst.size() - out.size;
    if (per_read) ArmRead(from, read_deadline, timeout);
    auto [ec0, n] = co_await boost::beast::http::async_read_some(
        from, job.from_buf, p, kNoThrow);
    boost::beast::error_code ec = ReadError(ec0, read_deadline);
    out.size = dst.size() - body.size;
    if (ec == boost::beast::http::error::need_buffer) ec = {};
    if (ec) {
      out.ec = ec;
      break;
    }
  }
  body.data = nullptr;
  body.size = 0;
  if (p.chunked() && p.is_done()) {
    for (auto it = fields.begin(); it != fields.end();) {
      const bool trailer = std::find(head_fields.begin(), head_fields.end(),
                                     &*it) == head_fields.end();
      it = trailer ? fields.erase(it) : std::next(it);
    }
  }
  co_return out;
}

}  // namespace sluice

#endif  // SLUICE_PROXY_SERVER_HTTP_RELAY_H_
