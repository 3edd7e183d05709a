"""Leased per-key limits: two sidecars lease one bucket per API key from a
per-key resource of sluice-quota-server. Each key's fleet-wide rate stays
within its own limit, and the keys do not share tokens (docs/leasing.md)."""

import time
import unittest

import sluice_harness as h
import test_quota as tq

# Per key: R tokens/s with a burst of B, fleet-wide. Each key calls its own
# upstream, which records and never refuses; each key's spending is judged
# on its requests' spend intervals (see test_quota.py).
R, B = 20, 5
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
        cls.ups = [cls.start_class_upstream() for _ in KEYS]
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
                # A request waits at most 100 ms for a token (else sluice's
                # 429 at once): short spend intervals (see test_quota.py).
                load.add(p, (i, k), self.ups[k].url + "/k/%d" % i,
                         threads=THREADS,
                         headers={"Authorization": key,
                                  "x-sluice-max-wait": "100ms"})
        for up in self.ups:
            up.reset()
        t0 = time.monotonic()
        load.start()
        time.sleep(WARMUP + MEASURE)
        t1 = time.monotonic()
        status = self.quota.resource_status("keyed")
        self.assertTrue(load.finish(), "clients hung")
        self.assertEqual(load.errors, [])
        self.assertLessEqual({r.status for r in load.select()}, {200, 429})

        used = []
        inside = 0  # requests of either key spent inside the measured window
        for k, up in enumerate(self.ups):
            records = up.snapshot()
            # Any over-grant for a key shows in the spend intervals of its
            # leased requests.
            worst = tq.assert_within_bound(
                self, load.spend_intervals(records, mode="leased"), R, B,
                "key %d" % k)
            intervals = load.spend_intervals(records)
            inside += sum(t0 + WARMUP <= lo and hi <= t1
                          for lo, hi in intervals)
            measured = [r for r in records if t0 + WARMUP <= r.t < t1]
            used.append(len(measured) / (R * (t1 - t0 - WARMUP)))
            print("\nkey %d: tightest window %s; on arrival times alone: %s"
                  % (k, worst, tq.arrival_excess(records, R, B)))
            # Every response was a 200 forwarded once or sluice's own 429.
            self.assertEqual(len(records), sum(
                len(load.select(index=(i, k), status=200))
                for i in range(SIDECARS)))
            # Both sidecars spent this key's tokens.
            for i in range(SIDECARS):
                self.assertTrue(
                    load.select(t0 + WARMUP, t1, index=(i, k), status=200),
                    "sidecar %d key %d forwarded nothing" % (i, k))
        print("per key: %s of %d/s each" %
              (["%.1f%%" % (100 * u) for u in used], R))
        # The keys do not share one bucket: over the measured window the
        # fleet spent more than one bucket could ever give (R*W + B; two
        # allow twice that, so this needs each key to use a little over
        # half of its rate, which a busy machine leaves room for).
        one_bucket = R * (t1 - t0 - WARMUP) + B
        self.assertGreater(inside, one_bucket,
                           "both keys together got no more than one "
                           "bucket's worth: %r" % used)

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
