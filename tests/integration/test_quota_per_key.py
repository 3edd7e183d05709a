"""Leased per-key limits: two sidecars lease one bucket per API key from a
per-key resource of sluice-quota-server. Each key's fleet-wide rate stays
within its own limit, and the keys do not share tokens (docs/leasing.md)."""

import time
import unittest

import sluice_harness as h
import test_quota as tq

# Per key: R tokens/s with a burst of B, fleet-wide. Each key calls its own
# upstream, which enforces the same rate with two tokens of slack for the
# delivery jitter (see test_quota.py).
R, B = 20, 5
UPSTREAM_BURST = B + 2
SIDECARS = 2
KEYS = ["Bearer key-alpha", "Bearer key-beta"]
THREADS = 2  # per sidecar and key
WARMUP, MEASURE = 1.0, 6.0

SIDECAR_CONFIG = """
ssrf: {allow: ["127.0.0.0/8"]}
quota: {servers: [%(target)s], backoff_initial: 50ms, backoff_max: 300ms}
rate_limits:
  keyed: {rate: %(r)d, burst: %(b)d, resource: keyed, max_wait: 20s,
          per_key: {header: Authorization, max_keys: 100}}
routes:
  - {host: 127.0.0.1, path_prefix: /k, limit: keyed}
"""


class PerKeyLeaseTest(h.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        cls.quota = cls.start_class_quota_server("""
            resources:
              keyed: {rate: %d, burst: %d, per_key: true}
            """ % (R, B))
        cls.ups = [cls.start_class_upstream(rate=R, period=1.0,
                                            burst=UPSTREAM_BURST)
                   for _ in KEYS]
        config = SIDECAR_CONFIG % {"target": cls.quota.target, "r": R,
                                   "b": B}
        cls.proxies = [cls.start_class_proxy(config)
                       for _ in range(SIDECARS)]
        # A sidecar opens its lease stream with its first key. Until the
        # server answers, a key's pool is on its policy (fallback_share at
        # the local limit), so each key is used once on each sidecar before
        # the measured load.
        for p in cls.proxies:
            s = h.proxied_session(p)
            for k, key in enumerate(KEYS):
                r = s.get(cls.ups[k].url + "/k/warmup",
                          headers={"Authorization": key}, timeout=30)
                if r.status_code != 200:
                    raise AssertionError("warm-up: %d" % r.status_code)
            s.close()
        ok = h.wait_until(
            lambda: cls.quota.status()["connected_streams"] == SIDECARS, 20)
        if not ok:
            raise AssertionError("sidecars did not connect")

    def test_each_key_keeps_its_own_fleet_wide_limit(self):
        load = tq.Load()
        for i, p in enumerate(self.proxies):
            for k, key in enumerate(KEYS):
                load.add(p, (i, k), self.ups[k].url + "/k/%d" % i,
                         threads=THREADS, headers={"Authorization": key})
        for up in self.ups:
            up.reset()
        t0 = time.monotonic()
        load.start()
        time.sleep(WARMUP + MEASURE)
        t1 = time.monotonic()
        status = self.quota.resource_status("keyed")
        self.assertTrue(load.finish(), "clients hung")
        self.assertEqual(load.errors, [])

        used = []
        for k, up in enumerate(self.ups):
            # Any over-grant for a key shows up as 429s at its upstream.
            self.assertEqual(up.count_429, 0,
                             "key %d exceeded its limit" % k)
            measured = [r for r in up.snapshot()
                        if t0 + WARMUP <= r.t < t1]
            used.append(len(measured) / (R * (t1 - t0 - WARMUP)))
            # Both sidecars spent this key's tokens.
            for i in range(SIDECARS):
                self.assertGreater(
                    len(load.select(t0 + WARMUP, t1, index=(i, k),
                                    status=200)),
                    R * MEASURE / SIDECARS * 0.2, "sidecar %d key %d" % (i, k))
        print("\nper key: %s of %d/s each" %
              (["%.1f%%" % (100 * u) for u in used], R))
        # Each key gets (nearly) its whole rate: the keys do not share one
        # bucket (sharing would leave each about half).
        for k, u in enumerate(used):
            self.assertGreaterEqual(u, 0.8, "key %d" % k)

        # Each key's lease state shows: in the responses' x-sluice-quota,
        # in /readyz (keys by mode) and in the lease metrics.
        measured = load.select(t0 + WARMUP, t1, status=200)
        self.assertTrue(measured)
        self.assertEqual({r[3] for r in measured}, {"leased"})
        for p in self.proxies:
            _, body = tq.readyz(p)
            self.assertIn("lease keyed resource=keyed per_key keys=2 "
                          "leased=2 fallback_share=0", body)
            self.assertEqual(tq.metric(p, "sluice_proxy_lease_mode",
                                       '{limit="keyed",mode="leased"}'), 2.0)

        # The server sees both sidecars on the resource; their shares,
        # summed over the key buckets, exceed one bucket's rate but not
        # two.
        self.assertIsNotNone(status)
        sidecars = status["sidecars"]
        self.assertEqual(len(sidecars), SIDECARS, sidecars)
        shares = sum(s["share_per_second"] for s in sidecars)
        self.assertLessEqual(shares, len(KEYS) * R * (1 + 1e-9))
        self.assertGreater(shares, R * 1.2)


if __name__ == "__main__":
    unittest.main()
