// Fuzzes the request-head path: raw checks, Beast's parser, framing rules,
// target parsing and hop-by-hop stripping. Must never crash or leak.
#include <cstddef>
#include <cstdint>
#include <string>

#include "proxy/http/http_head.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view head(reinterpret_cast<const char*>(data), size);
  sluice::RequestParser parser;
  if (sluice::ParseRequestHead(head, 1024, parser)) return 0;
  auto& req = parser.get();
  std::string_view target(req.target().data(), req.target().size());
  sluice::ForwardTarget ft;
  sluice::ParseForwardTarget(target, ft);
  std::string host;
  uint16_t port = 0;
  sluice::ParseConnectTarget(target, host, port);
  sluice::StripHopByHop(req.base());
  sluice::AppendVia(req.base(), req.version());
  return 0;
}
