// Header processing on the request path: parse + checks + target + strip.
#include <benchmark/benchmark.h>

#include "proxy/http/http_head.h"

namespace {

constexpr std::string_view kHead =
    "POST http://api.example.com/v1/chat/completions?x=1 HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: bench/1.0\r\n"
    "Accept: application/json\r\n"
    "Authorization: Bearer sk-0123456789abcdef0123456789abcdef\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 512\r\n"
    "Proxy-Connection: Keep-Alive\r\n"
    "Connection: keep-alive\r\n\r\n";

void BM_ParseRequestHead(benchmark::State& state) {
  for (auto _ : state) {
    sluice::RequestParser parser;
    auto err = sluice::ParseRequestHead(kHead, 8192, parser);
    benchmark::DoNotOptimize(err);
  }
}
BENCHMARK(BM_ParseRequestHead);

void BM_FullHeadPath(benchmark::State& state) {
  for (auto _ : state) {
    sluice::RequestParser parser;
    if (sluice::ParseRequestHead(kHead, 8192, parser))
      state.SkipWithError("parse");
    auto& req = parser.get();
    sluice::ForwardTarget ft;
    sluice::ParseForwardTarget({req.target().data(), req.target().size()}, ft);
    sluice::StripHopByHop(req.base());
    sluice::AppendVia(req.base(), req.version());
    benchmark::DoNotOptimize(ft);
  }
}
BENCHMARK(BM_FullHeadPath);

}  // namespace
