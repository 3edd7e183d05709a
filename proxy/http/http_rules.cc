#include "proxy/http/http_rules.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <vector>

namespace sluice {

namespace http = boost::beast::http;

std::optional<HttpRuleError> CheckRawRequestHead(std::string_view head) {
  for (size_t i = 0; i < head.size(); ++i) {
    if (head[i] != '\n') continue;
    if (i == 0 || head[i - 1] != '\r') {
      return HttpRuleError{400, "bare_lf",
                           "line endings in the request head must be CRLF"};
    }
    // A line that starts with SP or HTAB continues the previous field
    // (obs-fold). RFC 9112 5.2: a server must reject it in a request.
    if (i + 1 < head.size() && (head[i + 1] == ' ' || head[i + 1] == '\t')) {
      return HttpRuleError{400, "obs_fold",
                           "obsolete line folding in a header field"};
    }
  }
  return std::nullopt;
}

HttpRuleError OversizedHeadError(std::string_view partial_head,
                                 size_t max_uri_bytes) {
  size_t eol = partial_head.find('\n');
  size_t line_len = eol == std::string_view::npos ? partial_head.size() : eol;
  // Method SP target SP version: the target dominates the request line.
  if (line_len > max_uri_bytes) {
    return {414, "uri_too_long", "the request target exceeds the URI limit"};
  }
  return {431, "headers_too_large",
          "the request header section exceeds the header limit"};
}

std::optional<HttpRuleError> CheckRequestFraming(const http::fields& fields) {
  size_t te_count = fields.count(http::field::transfer_encoding);
  bool has_cl = fields.count(http::field::content_length) > 0;
  if (te_count > 0 && has_cl) {
    return HttpRuleError{
        400, "te_and_cl",
        "Content-Length and Transfer-Encoding must not both be present"};
  }
  if (te_count > 1) {
    return HttpRuleError{400, "multiple_te",
                         "several Transfer-Encoding fields"};
  }
  if (te_count == 1) {
    http::token_list codings{fields[http::field::transfer_encoding]};
    std::vector<std::string_view> list;
    for (auto c : codings) list.emplace_back(c.data(), c.size());
    if (list.empty()) {
      return HttpRuleError{400, "bad_te", "empty Transfer-Encoding"};
    }
    if (!boost::beast::iequals(list.back(), "chunked")) {
      return HttpRuleError{400, "chunked_not_last",
                           "chunked must be the final transfer-coding"};
    }
    for (size_t i = 0; i + 1 < list.size(); ++i) {
      if (boost::beast::iequals(list[i], "chunked")) {
        return HttpRuleError{400, "chunked_twice",
                             "chunked applied more than once"};
      }
    }
    if (list.size() > 1) {
      return HttpRuleError{501, "unsupported_te",
                           "only the chunked transfer-coding is supported"};
    }
  }
  return std::nullopt;
}

bool StripHopByHop(http::fields& fields) {
  bool close = false;
  std::vector<std::string> named;
  for (http::field f :
       {http::field::connection, http::field::proxy_connection}) {
    for (auto it = fields.find(f); it != fields.end() && it->name() == f;
         ++it) {
      http::token_list tokens{it->value()};
      for (auto t : tokens) {
        if (boost::beast::iequals(t, "close")) close = true;
        if (boost::beast::iequals(t, "keep-alive") ||
            boost::beast::iequals(t, "close")) {
          continue;
        }
        named.emplace_back(t.data(), t.size());
      }
    }
  }
  for (const auto& name : named) {
    // Never let Connection remove the framing of the message itself.
    if (boost::beast::iequals(name, "transfer-encoding") ||
        boost::beast::iequals(name, "content-length") ||
        boost::beast::iequals(name, "host")) {
      continue;
    }
    fields.erase(name);
  }
  fields.erase(http::field::connection);
  fields.erase(http::field::proxy_connection);
  fields.erase(http::field::keep_alive);
  fields.erase(http::field::te);
  fields.erase(http::field::trailer);
  fields.erase(http::field::upgrade);
  fields.erase(http::field::proxy_authorization);
  return close;
}

void AppendVia(http::fields& fields, unsigned version) {
  std::string hop = version == 10 ? "1.0 sluice" : "1.1 sluice";
  auto it = fields.find(http::field::via);
  if (it == fields.end()) {
    fields.set(http::field::via, hop);
    return;
  }
  std::string joined(it->value());
  joined += ", ";
  joined += hop;
  fields.set(http::field::via, joined);
}

}  // namespace sluice
