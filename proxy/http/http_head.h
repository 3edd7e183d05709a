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
  std::string path;           // path only, for routing and logs
  std::string origin_target;  // path + query, for the origin request
  std::string host_header;    // value for the Host field
};

// Parses an absolute-form target ("http://host:port/path?q"). Origin-form
// and "*" give a 400 that explains how to use a forward proxy; https://
// gives a 400 that points to CONNECT.
std::optional<HttpRuleError> ParseForwardTarget(std::string_view target,
                                                ForwardTarget& out);

// Parses a CONNECT authority-form target ("host:port").
std::optional<HttpRuleError> ParseConnectTarget(std::string_view target,
                                                std::string& host,
                                                uint16_t& port);

}  // namespace sluice

#endif  // SLUICE_PROXY_HTTP_HTTP_HEAD_H_
