#ifndef SLUICE_PROXY_HTTP_HTTP_RULES_H_
#define SLUICE_PROXY_HTTP_HTTP_RULES_H_

#include <boost/beast/http/fields.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

// A request that must be refused before anything is sent upstream.
struct HttpRuleError {
  unsigned status;     // 400, 414, 431, 501
  std::string reason;  // short, machine-friendly: "obs_fold", "te_and_cl", ...
  std::string detail;  // one sentence for the person reading the response
};

// Checks the raw bytes of a request head (request line through the blank
// line) for shapes the HTTP parser tolerates but a proxy must refuse:
// obs-fold continuation lines and bare LF line endings. Returns nullopt when
// the head is acceptable.
std::optional<HttpRuleError> CheckRawRequestHead(std::string_view head);

// Given a request head that overflowed the header limit without completing,
// decides between 414 (the request line alone is too long) and 431.
HttpRuleError OversizedHeadError(std::string_view partial_head,
                                 size_t max_uri_bytes);

// Checks message framing after parsing: Content-Length together with
// Transfer-Encoding, transfer-codings other than a final "chunked", and
// several Transfer-Encoding fields. Returns nullopt when framing is sound.
std::optional<HttpRuleError> CheckRequestFraming(
    const boost::beast::http::fields& fields);

// Removes hop-by-hop fields (RFC 9110 7.6.1): Connection and every field it
// names, Proxy-Connection, Keep-Alive, TE, Trailer, Upgrade and
// Proxy-Authorization. Transfer-Encoding is kept: the serializer re-frames
// the body from the message's chunked flag. Returns true when Connection or
// Proxy-Connection asked to close.
bool StripHopByHop(boost::beast::http::fields& fields);

// Appends this hop to Via ("1.1 sluice"), keeping earlier entries.
void AppendVia(boost::beast::http::fields& fields, unsigned version);

}  // namespace sluice

#endif  // SLUICE_PROXY_HTTP_HTTP_RULES_H_
