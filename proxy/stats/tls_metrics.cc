#include "proxy/stats/tls_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <string>

namespace sluice {
namespace {

template <typename Builder>
auto& Reg(Builder b, const char* name, const char* help,
          prometheus::Registry& registry) {
  return b.Name(name).Help(help).Register(registry);
}

// Raises a counter to `total` (a count kept elsewhere).
void RaiseTo(prometheus::Counter& c, uint64_t total) {
  const double t = static_cast<double>(total);
  if (t > c.Value()) c.Increment(t - c.Value());
}

}  // namespace

TlsMetrics::TlsMetrics(prometheus::Registry& r)
    : tunnels_read_(Reg(prometheus::BuildCounter(),
                        "sluice_proxy_tunnels_read_total",
                        "CONNECT tunnels sluice read itself, by result.", r)),
      origin_failures_(Reg(
          prometheus::BuildCounter(), "sluice_proxy_origin_tls_failures_total",
          "Failed TLS handshakes with origins, by reason.", r)),
      leaf_hits_(Reg(prometheus::BuildCounter(),
                     "sluice_proxy_tls_leaf_cache_hits_total",
                     "Client handshakes served a cached certificate.", r)),
      leaf_misses_(Reg(prometheus::BuildCounter(),
                       "sluice_proxy_tls_leaf_cache_misses_total",
                       "Certificates minted (absent or due for renewal).", r)),
      leaf_evictions_(Reg(prometheus::BuildCounter(),
                          "sluice_proxy_tls_leaf_cache_evictions_total",
                          "Cached certificates dropped to stay in bounds.", r)),
      leaf_size_(Reg(prometheus::BuildGauge(),
                     "sluice_proxy_tls_leaf_cache_size",
                     "Certificates cached, one per host name.", r)),
      origin_handshakes_(Reg(prometheus::BuildCounter(),
                             "sluice_proxy_origin_tls_handshakes_total",
                             "Completed TLS handshakes with origins, by "
                             "whether a session was resumed.",
                             r)),
      origin_unverified_(Reg(prometheus::BuildCounter(),
                             "sluice_proxy_origin_tls_unverified_total",
                             "TLS handshakes with origins listed in "
                             "upstream_tls.insecure_skip_verify.",
                             r)) {
  tunnels_read_.Add({{"result", "tls"}});
  tunnels_read_.Add({{"result", "http"}});
  leaf_hits_.Add({});
  leaf_misses_.Add({});
  leaf_evictions_.Add({});
  leaf_size_.Add({});
  origin_handshakes_.Add({{"resumed", "true"}});
  origin_handshakes_.Add({{"resumed", "false"}});
  origin_unverified_.Add({});
}

void TlsMetrics::OnTunnelRead(std::string_view result) {
  tunnels_read_.Add({{"result", std::string(result)}}).Increment();
}

void TlsMetrics::OnOriginTlsFailure(std::string_view reason) {
  origin_failures_.Add({{"reason", std::string(reason)}}).Increment();
}

void TlsMetrics::SetTotals(const Totals& t) {
  RaiseTo(leaf_hits_.Add({}), t.leaf_hits);
  RaiseTo(leaf_misses_.Add({}), t.leaf_misses);
  RaiseTo(leaf_evictions_.Add({}), t.leaf_evictions);
  leaf_size_.Add({}).Set(static_cast<double>(t.leaf_cache_size));
  RaiseTo(origin_handshakes_.Add({{"resumed", "true"}}), t.origin_resumed);
  RaiseTo(origin_handshakes_.Add({{"resumed", "false"}}),
          t.origin_handshakes - t.origin_resumed);
  RaiseTo(origin_unverified_.Add({}), t.origin_unverified);
}

}  // namespace sluice
