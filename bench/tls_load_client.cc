// Load client for bench/tls_load.sh: HTTPS through a forward proxy's
// CONNECT tunnel (or straight to a TLS server), kept-alive requests inside,
// or one new tunnel per request. wrk cannot send CONNECT, hence this tool.
//
//   tls_load_client --server 127.0.0.1:PROXY --connect localhost:8443
//                   --cafile ca.pem --mode keepalive --conns 32 --duration 5
//
// Options:
//   --server IP:PORT     where every TCP connection goes (proxy or TLS server)
//   --connect H:P[,H:P]  send "CONNECT H:P" first and speak TLS to H inside;
//                        several targets are used in turn, one per tunnel
//   --name H             without --connect: the TLS name of --server
//   --cafile FILE        the only CA trusted; the name is verified (a DNS
//                        name as SNI and host check, an IP literal as the
//                        address check without SNI)
//   --mode keepalive     --conns tunnels opened first (not timed), then GET
//                        requests back to back on each for --duration s
//   --mode newconn       --conns workers, each looping for --duration s:
//                        TCP connect, CONNECT, full TLS handshake, one GET,
//                        close. The client never resumes a TLS session.
//   --mode idle          --conns tunnels (CONNECT, handshake, one GET each,
//                        at most 32 being opened at once), then prints
//                        "READY ..." and holds them open for --hold s
//   --path P             request path (default /)
//
// Output: one JSON object on stdout (READY line first in idle mode) with
// requests, errors, the window in µs, requests/s and latency percentiles
// in µs (per request in keepalive mode; per whole tunnel in newconn and
// idle mode), the first error's text and the negotiated protocol/cipher.
// Single-threaded: pin it with taskset like the servers.

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr int kIdleOpenParallel = 32;

struct Target {
  std::string host;
  std::string port;
};

struct Options {
  tcp::endpoint server;
  std::vector<Target> connect;  // empty: TLS straight to the server
  std::string name;             // TLS name without CONNECT
  std::string cafile;
  std::string mode = "keepalive";
  std::string path = "/";
  int conns = 1;
  double duration_s = 5;
  double hold_s = 10;
};

bool IsIpLiteral(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// The results of all connections; one thread, so plain fields.
struct Results {
  uint64_t requests = 0;
  uint64_t errors = 0;
  std::vector<uint32_t> latency_us;
  std::string first_error;
  std::string protocol;
  std::string cipher;

  void Error(const std::string& what) {
    ++errors;
    if (first_error.empty()) first_error = what;
  }
};

uint32_t MicrosSince(SteadyClock::time_point t0) {
  return static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() -
                                                            t0)
          .count());
}

using TlsStream = asio::ssl::stream<tcp::socket>;

// One tunnel: the TCP connection, CONNECT if asked, the TLS handshake.
class Tunnel {
 public:
  Tunnel(asio::io_context& io, asio::ssl::context& ctx) : stream_(io, ctx) {}

  // Empty on success, else what failed.
  asio::awaitable<std::string> Open(const Options& o, const Target* target) {
    auto [cec] =
        co_await stream_.next_layer().async_connect(o.server, kNoThrow);
    if (cec) co_return "connect: " + cec.message();
    stream_.next_layer().set_option(tcp::no_delay(true));
    std::string host = o.name;
    if (target != nullptr) {
      host = target->host;
      authority_ = target->host + ":" + target->port;
      const std::string req = "CONNECT " + authority_ +
                              " HTTP/1.1\r\nHost: " + authority_ + "\r\n\r\n";
      auto [wec, wn] = co_await asio::async_write(stream_.next_layer(),
                                                  asio::buffer(req), kNoThrow);
      if (wec) co_return "write CONNECT: " + wec.message();
      std::string head;
      auto [rec, rn] = co_await asio::async_read_until(
          stream_.next_layer(), asio::dynamic_buffer(head), "\r\n\r\n",
          kNoThrow);
      if (rec) co_return "read CONNECT reply: " + rec.message();
      if (head.compare(0, 12, "HTTP/1.1 200") != 0 &&
          head.compare(0, 12, "HTTP/1.0 200") != 0) {
        co_return "CONNECT refused: " + head.substr(0, head.find('\r'));
      }
      if (rn != head.size()) co_return "bytes after the CONNECT reply";
    } else {
      authority_ = o.name + ":" + std::to_string(o.server.port());
    }
    SSL* ssl = stream_.native_handle();
    if (IsIpLiteral(host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, host.c_str());
      SSL_set1_host(ssl, host.c_str());
    }
    auto [hec] = co_await stream_.async_handshake(
        asio::ssl::stream_base::client, kNoThrow);
    if (hec) {
      const long v = SSL_get_verify_result(ssl);
      std::string why = "handshake: " + hec.message();
      if (v != X509_V_OK)
        why += std::string(" (") + X509_verify_cert_error_string(v) + ")";
      co_return why;
    }
    co_return "";
  }

  // One GET and its whole response; empty on success.
  asio::awaitable<std::string> Get(const Options& o, bool close) {
    http::request<http::empty_body> req{http::verb::get, o.path, 11};
    req.set(http::field::host, authority_);
    if (close) req.set(http::field::connection, "close");
    auto [wec, wn] = co_await http::async_write(stream_, req, kNoThrow);
    if (wec) co_return "write: " + wec.message();
    http::response<http::string_body> res;
    auto [rec, rn] = co_await http::async_read(stream_, buffer_, res, kNoThrow);
    if (rec) co_return "read: " + rec.message();
    if (res.result_int() != 200) {
      co_return "status " + std::to_string(res.result_int());
    }
    co_return "";
  }

  void NoteProtocol(Results& r) {
    if (!r.protocol.empty()) return;
    r.protocol = SSL_get_version(stream_.native_handle());
    r.cipher = SSL_get_cipher_name(stream_.native_handle());
  }

  void Close() {
    boost::system::error_code ec;
    stream_.next_layer().close(ec);
  }

 private:
  TlsStream stream_;
  beast::flat_buffer buffer_;
  std::string authority_;
};

const Target* PickTarget(const Options& o, uint64_t n) {
  if (o.connect.empty()) return nullptr;
  return &o.connect[n % o.connect.size()];
}

struct Run {
  asio::io_context io;
  asio::ssl::context ctx{asio::ssl::context::tls_client};
  Options o;
  Results r;
  SteadyClock::time_point end;
  uint64_t tunnels_started = 0;
  int open_done = 0;
  std::vector<std::unique_ptr<Tunnel>> idle;
};

asio::awaitable<void> KeepAlive(Run& run,
                                std::shared_ptr<asio::steady_timer> gate,
                                SteadyClock::time_point* end) {
  Tunnel t(run.io, run.ctx);
  std::string err =
      co_await t.Open(run.o, PickTarget(run.o, run.tunnels_started++));
  ++run.open_done;
  if (run.open_done == run.o.conns) gate->cancel();  // everyone is in
  if (!err.empty()) {
    run.r.Error(err);
    co_return;
  }
  t.NoteProtocol(run.r);
  // Wait until every tunnel is open, then load until the window ends.
  if (run.open_done < run.o.conns) {
    co_await gate->async_wait(kNoThrow);
  }
  while (SteadyClock::now() < *end) {
    const auto t0 = SteadyClock::now();
    err = co_await t.Get(run.o, false);
    if (!err.empty()) {
      run.r.Error(err);
      co_return;
    }
    run.r.latency_us.push_back(MicrosSince(t0));
    ++run.r.requests;
  }
  t.Close();
}

// Opens a tunnel, sends one request; returns the tunnel or nullptr.
asio::awaitable<std::unique_ptr<Tunnel>> OneTunnel(Run& run, bool close) {
  const auto t0 = SteadyClock::now();
  auto t = std::make_unique<Tunnel>(run.io, run.ctx);
  std::string err =
      co_await t->Open(run.o, PickTarget(run.o, run.tunnels_started++));
  if (err.empty()) err = co_await t->Get(run.o, close);
  if (!err.empty()) {
    run.r.Error(err);
    co_return nullptr;
  }
  t->NoteProtocol(run.r);
  run.r.latency_us.push_back(MicrosSince(t0));
  ++run.r.requests;
  co_return t;
}

asio::awaitable<void> NewConnWorker(Run& run) {
  while (SteadyClock::now() < run.end) {
    auto t = co_await OneTunnel(run, true);
    if (t) t->Close();
  }
}

asio::awaitable<void> IdleOpener(Run& run, int count) {
  for (int i = 0; i < count; ++i) {
    auto t = co_await OneTunnel(run, false);
    if (t) run.idle.push_back(std::move(t));
  }
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out;
}

void PrintJson(const Run& run, double window_s) {
  std::vector<uint32_t> lat = run.r.latency_us;
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) -> uint32_t {
    if (lat.empty()) return 0;
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(lat.size()));
    return lat[std::min(i, lat.size() - 1)];
  };
  std::printf(
      "{\"mode\":\"%s\",\"conns\":%d,\"requests\":%llu,\"errors\":%llu,"
      "\"window_us\":%.0f,\"rps\":%.1f,\"p50_us\":%u,\"p90_us\":%u,"
      "\"p99_us\":%u,\"protocol\":\"%s\",\"cipher\":\"%s\","
      "\"first_error\":\"%s\"}\n",
      run.o.mode.c_str(), run.o.conns,
      static_cast<unsigned long long>(run.r.requests),
      static_cast<unsigned long long>(run.r.errors), window_s * 1e6,
      window_s > 0 ? static_cast<double>(run.r.requests) / window_s : 0.0,
      pct(50), pct(90), pct(99), run.r.protocol.c_str(), run.r.cipher.c_str(),
      JsonEscape(run.r.first_error).c_str());
  std::fflush(stdout);
}

bool SplitHostPort(const std::string& s, Target* t) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
    return false;
  }
  t->host = s.substr(0, colon);
  t->port = s.substr(colon + 1);
  if (t->host.size() > 2 && t->host.front() == '[' && t->host.back() == ']') {
    t->host = t->host.substr(1, t->host.size() - 2);
  }
  return true;
}

[[noreturn]] void Usage(const std::string& why) {
  std::cerr << "tls_load_client: " << why
            << "\nsee the comment at the top of bench/tls_load_client.cc\n";
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  bool have_server = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) Usage("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--server") {
      Target t;
      boost::system::error_code ec;
      if (!SplitHostPort(v, &t)) Usage("bad --server " + v);
      auto addr = asio::ip::make_address(t.host, ec);
      if (ec) Usage("--server needs an IP address: " + v);
      o.server = tcp::endpoint(addr, static_cast<uint16_t>(std::stoi(t.port)));
      have_server = true;
    } else if (a == "--connect") {
      std::stringstream ss(v);
      std::string item;
      while (std::getline(ss, item, ',')) {
        Target t;
        if (!SplitHostPort(item, &t)) Usage("bad --connect target " + item);
        o.connect.push_back(t);
      }
    } else if (a == "--name") {
      o.name = v;
    } else if (a == "--cafile") {
      o.cafile = v;
    } else if (a == "--mode") {
      o.mode = v;
    } else if (a == "--path") {
      o.path = v;
    } else if (a == "--conns") {
      o.conns = std::stoi(v);
    } else if (a == "--duration") {
      o.duration_s = std::stod(v);
    } else if (a == "--hold") {
      o.hold_s = std::stod(v);
    } else {
      Usage("unknown option " + a);
    }
  }
  if (!have_server) Usage("--server is required");
  if (o.cafile.empty()) Usage("--cafile is required");
  if (o.connect.empty() && o.name.empty())
    Usage("--connect or --name is required");
  if (o.mode != "keepalive" && o.mode != "newconn" && o.mode != "idle") {
    Usage("--mode is keepalive, newconn or idle");
  }
  if (o.conns < 1) Usage("--conns must be >= 1");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Run run;
  run.o = ParseArgs(argc, argv);
  const Options& o = run.o;
  SSL_CTX* ctx = run.ctx.native_handle();
  if (SSL_CTX_load_verify_locations(ctx, o.cafile.c_str(), nullptr) != 1) {
    Usage("cannot load --cafile " + o.cafile);
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Every handshake is a full one: no session cache, no tickets.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  static const unsigned char kAlpn[] = {8,   'h', 't', 't', 'p',
                                        '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn));

  const auto window = std::chrono::duration_cast<SteadyClock::duration>(
      std::chrono::duration<double>(o.duration_s));
  double window_s = 0;
  if (o.mode == "keepalive") {
    auto gate = std::make_shared<asio::steady_timer>(run.io);
    gate->expires_at(SteadyClock::time_point::max());
    SteadyClock::time_point start{}, end = SteadyClock::time_point::max();
    for (int i = 0; i < o.conns; ++i) {
      asio::co_spawn(run.io, KeepAlive(run, gate, &end), asio::detached);
    }
    // Run until every tunnel is open, then start the window.
    while (run.open_done < o.conns && run.io.run_one() > 0) {
    }
    start = SteadyClock::now();
    end = start + window;
    run.io.run();
    // Requests in flight when the window ends still complete and count;
    // the window runs until the last of them.
    window_s =
        std::chrono::duration<double>(SteadyClock::now() - start).count();
  } else if (o.mode == "newconn") {
    const auto start = SteadyClock::now();
    run.end = start + window;
    for (int i = 0; i < o.conns; ++i) {
      asio::co_spawn(run.io, NewConnWorker(run), asio::detached);
    }
    run.io.run();
    window_s =
        std::chrono::duration<double>(SteadyClock::now() - start).count();
  } else {
    const auto start = SteadyClock::now();
    const int parallel = std::min(o.conns, kIdleOpenParallel);
    for (int i = 0; i < parallel; ++i) {
      const int share = o.conns / parallel + (i < o.conns % parallel ? 1 : 0);
      asio::co_spawn(run.io, IdleOpener(run, share), asio::detached);
    }
    run.io.run();
    window_s =
        std::chrono::duration<double>(SteadyClock::now() - start).count();
    std::printf("READY open=%zu errors=%llu\n", run.idle.size(),
                static_cast<unsigned long long>(run.r.errors));
    PrintJson(run, window_s);
    // Hold every tunnel open, reading nothing, then close them.
    asio::steady_timer hold(run.io);
    hold.expires_after(std::chrono::duration_cast<SteadyClock::duration>(
        std::chrono::duration<double>(o.hold_s)));
    hold.wait();
    for (auto& t : run.idle) t->Close();
    return 0;
  }
  PrintJson(run, window_s);
  return 0;
}
