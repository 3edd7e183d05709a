#ifndef SLUICE_PROXY_HTTP_HTTP_HEAD_H_
#define SLUICE_PROXY_HTTP_HTTP_HEAD_H_

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/http/http_rules.h"

namespace sluice {

using RequestParser =
    boost::beast::http::request_parser<boost::beast::http::buffer_body>;

// Parses a complete request head (request line through the blank line)
// into `parser`, applying every check a proxy needs before acting on it:
// raw-byte rules, Beast's parser, the URI length limit and framing rules.
// On success returns nullopt; `parser` holds the head and its body state.
// No I/O: the caller has already buffered the head.
std::optional<HttpRuleError> ParseRequestHead(std::string_view head,
                                              size_t max_uri_bytes,
                                              RequestParser& parser);

// The origin named by an absolute-form request target.
struct ForwardTarget {
  std::string host;  // lowercase; IPv6 without brackets
  uint16_t port = 80;
  bool explicit_port = false;  // the target named the port
  std::string path;            // path only, for routing and logs
  std::string origin_target;   // path + query, for the origin request
  std::string host_header;     // value for the Host field
};

// Parses an absolute-form target ("http://host:port/path?q"). Origin-form
// and "*" give a 400 that explains how to use a forward proxy; https://
// gives a 400 that points to CONNECT.
std::optional<HttpRuleError> ParseForwardTarget(std::string_view target,
                                                ForwardTarget& out);

// The origin a CONNECT tunnel was opened to, whose requests sluice reads
// (an intercepted https:// tunnel, or plain HTTP through CONNECT).
struct TunnelOrigin {
  std::string host;  // as ParseConnectTarget gives it
  uint16_t port = 443;
  bool tls = true;  // the client speaks TLS inside
};

// Parses the target of a request read inside `tunnel`: origin-form
// ("/path?q"), or absolute-form naming the tunnel's own origin. The request
// goes to the tunnel's origin whatever it says: a `host_field` (the Host
// header; may be empty for HTTP/1.0) or an absolute target naming another
// host or port is 421 Misdirected Request, since routing and the SSRF
// guard judged the tunnel's host. "*" and other forms are 400.
std::optional<HttpRuleError> ParseTunnelTarget(std::string_view target,
                                               std::string_view host_field,
                                               const TunnelOrigin& tunnel,
                                               ForwardTarget& out);

// Parses a CONNECT authority-form target ("host:port").
std::optional<HttpRuleError> ParseConnectTarget(std::string_view target,
                                                std::string& host,
                                                uint16_t& port);

}  // namespace sluice

#endif  // SLUICE_PROXY_HTTP_HTTP_HEAD_H_
