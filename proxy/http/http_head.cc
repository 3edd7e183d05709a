#include "proxy/http/http_head.h"

#include <boost/asio/buffer.hpp>
#include <boost/url/parse.hpp>

#include "absl/strings/numbers.h"

namespace sluice {

namespace http = boost::beast::http;

namespace {

std::string_view Sv(boost::core::string_view s) { return {s.data(), s.size()}; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool ParsePort(std::string_view text, uint16_t& port) {
  uint32_t v = 0;
  if (text.empty() || text.size() > 5 ||
      !absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &v) ||
      v == 0 || v > 65535) {
    return false;
  }
  port = static_cast<uint16_t>(v);
  return true;
}

// Host text of a parsed authority: lowercase, IPv6 without brackets, no
// trailing dot. Empty when unusable.
template <class View>
std::string HostOf(const View& v) {
  std::string host;
  switch (v.host_type()) {
    case boost::urls::host_type::ipv6:
      host = v.host_ipv6_address().to_string();
      break;
    case boost::urls::host_type::ipv4:
    case boost::urls::host_type::name:
      host = Lower(Sv(v.encoded_host()));
      break;
    default:
      return "";
  }
  while (!host.empty() && host.back() == '.') host.pop_back();
  // Percent-encoded hosts are refused rather than decoded.
  if (host.find('%') != std::string::npos) return "";
  return host;
}

}  // namespace

std::optional<HttpRuleError> ParseRequestHead(std::string_view head,
                                              size_t max_uri_bytes,
                                              RequestParser& parser) {
  if (auto bad = CheckRawRequestHead(head)) return bad;
  parser.header_limit(static_cast<uint32_t>(head.size() + 1));
  parser.body_limit(boost::none);
  parser.eager(false);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(head.data(), head.size()), ec);
  if (!ec && !parser.is_header_done()) ec = http::error::partial_message;
  if (ec) {
    return HttpRuleError{400, "bad_request",
                         "malformed request: " + ec.message()};
  }
  const auto& req = parser.get();
  if (req.target().size() > max_uri_bytes) {
    return HttpRuleError{414, "uri_too_long",
                         "the request target exceeds the URI limit"};
  }
  return CheckRequestFraming(req.base());
}

std::optional<HttpRuleError> ParseForwardTarget(std::string_view target,
                                                ForwardTarget& out) {
  if (target.empty() || target[0] == '/' || target == "*") {
    return HttpRuleError{
        400, "origin_form",
        "sluice-proxy is a forward proxy: send absolute-form requests "
        "(GET http://host/path). Set http_proxy=http://<proxy address> for "
        "http:// URLs and HTTPS_PROXY for https:// URLs (CONNECT)."};
  }
  auto parsed = boost::urls::parse_absolute_uri(
      boost::core::string_view(target.data(), target.size()));
  if (!parsed) {
    return HttpRuleError{400, "bad_target",
                         "the request target is not a valid URI"};
  }
  const auto& url = *parsed;
  const std::string scheme = Lower(Sv(url.scheme()));
  if (scheme == "https") {
    return HttpRuleError{400, "unsupported_scheme",
                         "https:// is not forwarded in absolute form; use "
                         "CONNECT (set HTTPS_PROXY)"};
  }
  if (scheme != "http") {
    return HttpRuleError{400, "unsupported_scheme",
                         "only http:// is forwarded"};
  }
  if (url.has_userinfo()) {
    return HttpRuleError{400, "userinfo",
                         "credentials in the URI are not forwarded"};
  }
  out.host = HostOf(url);
  if (out.host.empty()) {
    return HttpRuleError{400, "bad_host", "the URI has no usable host"};
  }
  out.port = 80;
  out.explicit_port = url.has_port();
  if (url.has_port() && !ParsePort(Sv(url.port()), out.port)) {
    return HttpRuleError{400, "bad_port", "the URI port is invalid"};
  }
  out.path = std::string(Sv(url.encoded_path()));
  if (out.path.empty()) out.path = "/";
  out.origin_target = std::string(Sv(url.encoded_target()));
  if (out.origin_target.empty() || out.origin_target[0] != '/') {
    out.origin_target.insert(0, "/");
  }
  out.host_header =
      out.host.find(':') != std::string::npos ? "[" + out.host + "]" : out.host;
  if (out.port != 80) out.host_header += ":" + std::to_string(out.port);
  return std::nullopt;
}

namespace {

HttpRuleError Misdirected(const TunnelOrigin& tunnel) {
  return HttpRuleError{
      421, "misdirected",
      "this connection was opened with CONNECT to " + tunnel.host + ":" +
          std::to_string(tunnel.port) +
          "; a request for another origin needs its own CONNECT"};
}

// Whether an authority ("host" or "host:port") names the tunnel's origin.
template <class View>
bool NamesTunnel(const View& authority, const TunnelOrigin& tunnel) {
  if (HostOf(authority) != tunnel.host) return false;
  if (!authority.has_port()) return true;
  uint16_t port = 0;
  return ParsePort(Sv(authority.port()), port) && port == tunnel.port;
}

}  // namespace

std::optional<HttpRuleError> ParseTunnelTarget(std::string_view target,
                                               std::string_view host_field,
                                               const TunnelOrigin& tunnel,
                                               ForwardTarget& out) {
  const boost::core::string_view t(target.data(), target.size());
  if (!target.empty() && target[0] == '/') {
    auto origin = boost::urls::parse_origin_form(t);
    if (!origin) {
      return HttpRuleError{400, "bad_target",
                           "the request target is not a valid path"};
    }
    out.path = std::string(Sv(origin->encoded_path()));
    out.origin_target = std::string(target);
  } else {
    auto absolute = boost::urls::parse_absolute_uri(t);
    if (!absolute) {
      return HttpRuleError{400, "bad_target",
                           "inside a tunnel, send origin-form requests "
                           "(GET /path)"};
    }
    const std::string scheme = Lower(Sv(absolute->scheme()));
    if (scheme != "http" && scheme != "https") {
      return HttpRuleError{400, "bad_target",
                           "inside a tunnel, send origin-form requests "
                           "(GET /path)"};
    }
    if (scheme != (tunnel.tls ? "https" : "http") || absolute->has_userinfo() ||
        !NamesTunnel(*absolute, tunnel)) {
      return Misdirected(tunnel);
    }
    out.path = std::string(Sv(absolute->encoded_path()));
    out.origin_target = std::string(Sv(absolute->encoded_target()));
    if (out.origin_target.empty() || out.origin_target[0] != '/') {
      out.origin_target.insert(0, "/");
    }
  }
  if (out.path.empty()) out.path = "/";
  const uint16_t default_port = tunnel.tls ? 443 : 80;
  if (!host_field.empty()) {
    auto authority = boost::urls::parse_authority(
        boost::core::string_view(host_field.data(), host_field.size()));
    if (!authority || authority->has_userinfo() ||
        !NamesTunnel(*authority, tunnel)) {
      return Misdirected(tunnel);
    }
    out.host_header = std::string(host_field);
  } else {
    out.host_header = tunnel.host.find(':') != std::string::npos
                          ? "[" + tunnel.host + "]"
                          : tunnel.host;
    if (tunnel.port != default_port) {
      out.host_header += ":" + std::to_string(tunnel.port);
    }
  }
  out.host = tunnel.host;
  out.port = tunnel.port;
  out.explicit_port = true;
  return std::nullopt;
}

std::optional<HttpRuleError> ParseConnectTarget(std::string_view target,
                                                std::string& host,
                                                uint16_t& port) {
  auto auth = boost::urls::parse_authority(
      boost::core::string_view(target.data(), target.size()));
  if (!auth || !auth->has_port() || auth->has_userinfo()) {
    return HttpRuleError{400, "bad_connect_target", "CONNECT needs host:port"};
  }
  if (!ParsePort(Sv(auth->port()), port)) {
    return HttpRuleError{400, "bad_port", "the CONNECT port is invalid"};
  }
  host = HostOf(*auth);
  if (host.empty()) {
    return HttpRuleError{400, "bad_host", "CONNECT needs a host"};
  }
  return std::nullopt;
}

}  // namespace sluice
