#ifndef SLUICE_PROXY_STATS_TLS_METRICS_H_
#define SLUICE_PROXY_STATS_TLS_METRICS_H_

#include <cstdint>
#include <string_view>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
template <typename T>
class Family;
}  // namespace prometheus

namespace sluice {

// The sidecar's TLS metrics (docs/https.md), registered next to
// ProxyMetrics in the same registry:
//   sluice_proxy_tunnels_read_total{result}  CONNECT tunnels sluice read
//     itself, by what came of them: tls (a client handshake completed with
//     a minted certificate), http (plain HTTP inside), or why the client's
//     handshake failed (handshake_timeout, closed, protocol_version,
//     no_shared_cipher, client_rejected_certificate, sni_mismatch,
//     mint_failed, handshake)
//   sluice_proxy_origin_tls_failures_total{reason}  TLS handshakes with
//     origins that failed (tls_expired, tls_unknown_issuer, tls_wrong_host,
//     tls_timeout, tls_handshake, ...)
//   sluice_proxy_tls_leaf_cache_{hits,misses,evictions}_total and
//     sluice_proxy_tls_leaf_cache_size  the minted certificates' cache
//   sluice_proxy_origin_tls_handshakes_total{resumed}  completed handshakes
//     with origins, "true" when a cached session was resumed
//   sluice_proxy_origin_tls_unverified_total  handshakes with hosts in
//     upstream_tls.insecure_skip_verify
// Labels come from fixed sets of names, never from a peer. Thread-safe.
class TlsMetrics {
 public:
  // `registry` must outlive this.
  explicit TlsMetrics(prometheus::Registry& registry);
  TlsMetrics(const TlsMetrics&) = delete;
  TlsMetrics& operator=(const TlsMetrics&) = delete;

  void OnTunnelRead(std::string_view result);
  void OnOriginTlsFailure(std::string_view reason);

  // The TLS ends' own counters, sampled at scrape time: totals are raised
  // to the given values, never lowered.
  struct Totals {
    uint64_t leaf_hits = 0;
    uint64_t leaf_misses = 0;
    uint64_t leaf_evictions = 0;
    uint64_t leaf_cache_size = 0;
    uint64_t origin_handshakes = 0;
    uint64_t origin_resumed = 0;
    uint64_t origin_unverified = 0;
  };
  void SetTotals(const Totals& totals);

 private:
  prometheus::Family<prometheus::Counter>& tunnels_read_;
  prometheus::Family<prometheus::Counter>& origin_failures_;
  prometheus::Family<prometheus::Counter>& leaf_hits_;
  prometheus::Family<prometheus::Counter>& leaf_misses_;
  prometheus::Family<prometheus::Counter>& leaf_evictions_;
  prometheus::Family<prometheus::Gauge>& leaf_size_;
  prometheus::Family<prometheus::Counter>& origin_handshakes_;
  prometheus::Family<prometheus::Counter>& origin_unverified_;
};

}  // namespace sluice

#endif  // SLUICE_PROXY_STATS_TLS_METRICS_H_
