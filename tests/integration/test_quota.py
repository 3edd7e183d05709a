"""Leased mode: four sidecars share one global limit through
sluice-quota-server, and keep to their unavailability policy when the
server goes away (docs/leasing.md)."""

import re
import threading
import time
import unittest

import sluice_harness as h

# The fleet's limit: R tokens/s with a burst of B. The docs bound what an
# upstream sees in any window W by R*(W + j) + B, where j is the spread of
# sidecar-to-upstream delivery delays. The upstream enforces the same rate
# with a burst of B + 2: two tokens of slack absorb j <= 2/R = 50 ms of
# loopback and Python scheduling jitter (client threads, upstream threads
# and the GIL share one process on a loaded machine). That is the only
# slack: any over-grant of the fleet shows up as upstream 429s.
R, B = 40, 10
UPSTREAM_BURST = B + 2
SIDECARS = 4
# Client threads per sidecar: skewed, every sidecar wants more than R / 4.
THREADS = [6, 3, 2, 1]
WARMUP, MEASURE = 1.0, 7.0

SIDECAR_CONFIG = """
ssrf: {allow: ["127.0.0.0/8"]}
quota: {servers: [%(target)s], backoff_initial: 50ms, backoff_max: 300ms}
rate_limits:
%(limits)s
routes:
%(routes)s
"""


def sidecar_config(target, limits):
    """limits: [(name, resource, path_prefix)]; each limit has the fleet's
    rate and burst locally (what applies before the first answer)."""
    return SIDECAR_CONFIG % {
        "target": target,
        "limits": "\n".join(
            "  %s: {rate: %d, burst: %d, resource: %s, max_wait: 20s}" %
            (name, R, B, resource) for name, resource, _ in limits),
        "routes": "\n".join(
            "  - {host: 127.0.0.1, path_prefix: %s, limit: %s}" %
            (prefix, name) for name, _, prefix in limits),
    }


def readyz(proxy):
    status, _, body = h.admin_get(proxy.admin_port, "/readyz")
    return status, body


def lease_modes(proxy):
    """{limit: mode} and whether the stream is connected, from /readyz."""
    _, body = readyz(proxy)
    modes = dict(re.findall(r"^lease (\S+) resource=\S+ mode=(\S+)$", body,
                            re.M))
    return modes, "quota stream: connected" in body


def metric(proxy, name, labels=""):
    """The value of one series on the proxy's /metrics, or None."""
    _, _, text = h.admin_get(proxy.admin_port, "/metrics")
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)),
                  text, re.M)
    return float(m.group(1)) if m else None


class Load:
    """Client threads (requests sessions) hammering `url` through one
    sidecar each, recording (t, sidecar, status, x-sluice-quota) per
    response. A thread that gets a 429 pauses `pause_on_429` s."""

    def __init__(self):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results = []
        self.errors = []
        self.threads = []

    def add(self, proxy, index, url, threads=1, pause=0.0, pause_on_429=0.05,
            headers=None):
        for _ in range(threads):
            t = threading.Thread(target=self._run,
                                 args=(proxy, index, url, pause,
                                       pause_on_429, headers), daemon=True)
            self.threads.append(t)

    def start(self):
        for t in self.threads:
            t.start()

    def _run(self, proxy, index, url, pause, pause_on_429, headers):
        s = h.proxied_session(proxy)
        s.headers.update(headers or {})
        try:
            while not self.stop.is_set():
                try:
                    r = s.get(url, timeout=30)
                except Exception as e:  # Reported by the test.
                    with self.lock:
                        self.errors.append(repr(e))
                    return
                with self.lock:
                    self.results.append((time.monotonic(), index,
                                         r.status_code,
                                         r.headers.get("x-sluice-quota")))
                if r.status_code == 429:
                    self.stop.wait(pause_on_429)
                elif pause:
                    self.stop.wait(pause)
        finally:
            s.close()

    def finish(self, timeout=40):
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
        return not any(t.is_alive() for t in self.threads)

    def select(self, t0=None, t1=None, index=None, status=None, mode=None):
        with self.lock:
            rows = list(self.results)
        return [r for r in rows
                if (t0 is None or r[0] >= t0) and (t1 is None or r[0] < t1)
                and (index is None or r[1] == index)
                and (status is None or r[2] == status)
                and (mode is None or r[3] == mode)]


def start_fleet(case, quota, limits):
    proxies = [case.start_class_proxy(sidecar_config(quota.target, limits))
               for _ in range(SIDECARS)]
    ok = h.wait_until(lambda: all(lease_modes(p)[1] for p in proxies), 20)
    if not ok:
        raise AssertionError("sidecars did not connect to the quota server")
    return proxies


class SharedLimitTest(h.ProxyTestCase):
    """Four sidecars with skewed demand keep one upstream inside its limit
    while using at least 90% of it."""

    @classmethod
    def setUpClass(cls):
        cls.quota = cls.start_class_quota_server("""
            resources:
              api: {rate: %d, burst: %d}
            """ % (R, B))
        cls.up = cls.start_class_upstream(rate=R, period=1.0,
                                          burst=UPSTREAM_BURST)
        cls.proxies = start_fleet(cls, cls.quota, [("api", "api", "/api")])

    def test_fleet_stays_inside_the_limit_and_uses_it(self):
        # The server offers leases over the fast path by default: once
        # welcomed, every sidecar sends its reports and gets its grants as
        # datagrams (docs/leasing.md). This test holds the limit with them.
        grants_before = [self.lease_datagrams(p, "grant")
                         for p in self.proxies]
        load = Load()
        for i, p in enumerate(self.proxies):
            load.add(p, i, self.up.url + "/api/%d" % i, threads=THREADS[i])
        self.up.reset()
        t0 = time.monotonic()
        load.start()
        time.sleep(WARMUP + MEASURE)
        t1 = time.monotonic()
        status = self.quota.status()
        self.assertTrue(load.finish(), "clients hung")

        self.assertEqual(load.errors, [])
        self.assertEqual(self.up.count_429, 0,
                         "the fleet exceeded the upstream's limit")
        measured = [r for r in self.up.snapshot()
                    if t0 + WARMUP <= r.t < t1]
        used = len(measured) / (R * (t1 - t0 - WARMUP))
        print("\nfleet: %d upstream 200s in %.2fs measured: %.1f%% of %d/s; "
              "per sidecar %s" % (
                  len(measured), t1 - t0 - WARMUP, 100 * used, R,
                  [len(load.select(t0 + WARMUP, t1, index=i))
                   for i in range(SIDECARS)]))
        self.assertGreaterEqual(used, 0.9,
                                "the fleet used less than 90% of the limit")
        # Every response went through the leased limit while connected.
        rows = load.select()
        self.assertGreater(len(rows), R * MEASURE * 0.9)
        self.assertEqual({(r[2], r[3]) for r in rows}, {(200, "leased")})
        # Every sidecar got a share of the traffic.
        for i in range(SIDECARS):
            self.assertGreater(len(load.select(t0 + WARMUP, t1, index=i)),
                               R * MEASURE / SIDECARS * 0.3, "sidecar %d" % i)

        # The server sees four sidecars (named "<host>-<pid>") whose shares
        # fit in the limit.
        res = [r for r in status["resources"] if r["name"] == "api"]
        self.assertEqual(len(res), 1)
        sidecars = res[0]["sidecars"]
        self.assertEqual(len(sidecars), SIDECARS, sidecars)
        self.assertTrue(all(s["connected"] for s in sidecars))
        self.assertEqual(
            sorted(int(s["id"].rsplit("-", 1)[1]) for s in sidecars),
            sorted(p.pid for p in self.proxies))
        shares = sum(s["share_per_second"] for s in sidecars)
        self.assertLessEqual(shares, R * (1 + 1e-9))
        self.assertGreater(shares, R * 0.5)

        # Every sidecar leased over the fast path meanwhile, and the server
        # took reports that way, with no datagram failing its MAC.
        for i, p in enumerate(self.proxies):
            self.assertEqual(metric(p, "sluice_proxy_fast_path_leasing"), 1)
            self.assertGreater(self.lease_datagrams(p, "grant"),
                               grants_before[i], "sidecar %d" % i)
            self.assertGreater(self.lease_datagrams(p, "demand"), 0)
        _, _, text = h.admin_get(self.quota.admin_port, "/metrics")
        taken = re.search(r'^sluice_quota_lease_datagrams_total'
                          r'\{kind="demand"\} (\S+)$', text, re.M)
        self.assertIsNotNone(taken, text)
        self.assertGreater(float(taken.group(1)), 0)
        self.assertNotRegex(text, r'fast_path_datagrams_total\{direction="in",'
                                  r'result="bad_mac"\} [1-9]')

    @staticmethod
    def lease_datagrams(proxy, kind):
        return metric(proxy, "sluice_proxy_lease_datagrams_total",
                      '{kind="%s"}' % kind) or 0

    def test_readyz_and_metrics_show_the_lease(self):
        p = self.proxies[0]
        status, body = readyz(p)
        self.assertEqual(status, 200)
        self.assertIn("quota stream: connected (%s)" % self.quota.target, body)
        self.assertIn("lease api resource=api mode=leased", body)
        self.assertEqual(
            metric(p, "sluice_proxy_lease_mode", '{limit="api",mode="leased"}'),
            1)
        self.assertEqual(
            metric(p, "sluice_proxy_lease_mode",
                   '{limit="api",mode="fail_closed"}'), 0)
        self.assertEqual(metric(p, "sluice_proxy_lease_stream_connected"), 1)
        self.assertGreaterEqual(
            metric(p, "sluice_proxy_lease_stream_connects_total"), 1)
        self.assertIsNotNone(
            metric(p, "sluice_proxy_lease_held_tokens", '{limit="api"}'))


POLICY_LIMITS = [("share", "share", "/share"), ("closed", "closed", "/closed"),
                 ("open", "open", "/open")]
TTL = 0.5


class UnavailableServerTest(h.ProxyTestCase):
    """SIGKILL the quota server: once held tokens expire each resource's
    policy applies; a restarted server on the same port takes over again
    without an overshoot."""

    @classmethod
    def setUpClass(cls):
        lease = "lease: {ttl: %dms, grace: 300ms}" % (TTL * 1000)
        cls.quota = cls.start_class_quota_server("""
            resources:
              share: {rate: %(r)d, burst: %(b)d, %(lease)s,
                      unavailable_policy: fallback_share}
              closed: {rate: %(r)d, burst: %(b)d, %(lease)s,
                       unavailable_policy: fail_closed}
              open: {rate: %(r)d, burst: %(b)d, %(lease)s,
                     unavailable_policy: fail_open}
            """ % {"r": R, "b": B, "lease": lease})
        cls.up_share = cls.start_class_upstream(rate=R, period=1.0,
                                                burst=UPSTREAM_BURST)
        cls.up_closed = cls.start_class_upstream(rate=R, period=1.0,
                                                 burst=UPSTREAM_BURST)
        cls.up_open = cls.start_class_upstream()
        cls.proxies = start_fleet(cls, cls.quota, POLICY_LIMITS)

    def wait_modes(self, expected, connected, timeout=15):
        """Waits until every sidecar's /readyz shows `expected` modes and
        stream state; fails with what they show otherwise."""
        def check():
            return all(lease_modes(p) == (expected, connected)
                       for p in self.proxies)
        if not h.wait_until(check, timeout, 0.05):
            self.fail("sidecars show %r, want %r" % (
                [lease_modes(p) for p in self.proxies],
                (expected, connected)))

    def describe_429s(self, **events):
        """Times of the upstream's 429s relative to named events."""
        rows = self.up_share.snapshot()
        bad = [r.t for r in rows if r.status == 429]
        return "%d of %d requests refused at %s" % (
            len(bad), len(rows), ", ".join(
                "%s%+.2fs" % (name, t - at) for t in bad[:20]
                for name, at in [max(((n, a) for n, a in events.items()
                                      if a <= t), key=lambda e: e[1],
                                     default=("start", rows[0].t))]))

    def test_policies_apply_while_the_server_is_down(self):
        leased = {"share": "leased", "closed": "leased", "open": "leased"}
        self.wait_modes(leased, True)
        # Steady demand above R on the fallback_share resource from every
        # sidecar, for the whole test.
        load = Load()
        for i, p in enumerate(self.proxies):
            load.add(p, i, self.up_share.url + "/share/%d" % i, threads=2)
        load.start()
        self.addCleanup(load.finish)
        self.assertTrue(h.wait_until(
            lambda: len(load.select(mode="leased")) >= R, 10))
        # Steady state first: fallback_share keeps each sidecar's last share,
        # so the shares must have converged to R / 4 before the kill (on a
        # slow build the last sidecar to connect can still be on its way).
        def converged():
            st = self.quota.resource_status("share")
            shares = [sc["share_per_second"] for sc in (st or {}).get(
                "sidecars", []) if sc.get("connected")]
            return (len(shares) == SIDECARS and
                    min(shares) >= 0.9 * R / SIDECARS)
        self.assertTrue(h.wait_until(converged, 10),
                        self.quota.resource_status("share"))

        # --- The server dies. -------------------------------------------
        self.quota.kill()
        killed = time.monotonic()
        self.wait_modes({"share": "fallback_share", "closed": "fail_closed",
                         "open": "fail_open"}, False, timeout=10)
        down_at = time.monotonic()
        # Held tokens outlive the stream by at most their ttl (plus the
        # sidecars' view of it being stale by a scrape).
        self.assertLess(down_at - killed, TTL + 3)
        p = self.proxies[0]
        status, body = readyz(p)
        self.assertEqual(status, 200, "readiness must not depend on the "
                         "quota server")
        self.assertIn("quota stream: disconnected", body)
        self.assertEqual(metric(p, "sluice_proxy_lease_mode",
                                '{limit="closed",mode="fail_closed"}'), 1)
        self.assertEqual(metric(p, "sluice_proxy_lease_mode",
                                '{limit="closed",mode="leased"}'), 0)
        self.assertEqual(metric(p, "sluice_proxy_lease_stream_connected"), 0)
        self.assertGreaterEqual(
            metric(p, "sluice_proxy_lease_stream_disconnects_total"), 1)
        self.assertEqual(
            metric(p, "sluice_proxy_lease_held_tokens", '{limit="closed"}'), 0)

        # fail_closed: refused locally, never forwarded.
        self.up_closed.reset()
        for q in self.proxies:
            s = h.proxied_session(q)
            r = s.get(self.up_closed.url + "/closed/x", timeout=30)
            s.close()
            self.assertEqual(r.status_code, 429, r.text)
            self.assertEqual(r.headers.get("x-sluice-limited"), "local")
            self.assertEqual(r.headers.get("x-sluice-quota"), "fail_closed")
        self.assertEqual(self.up_closed.total_activity(), 0)

        # fail_open: no limit at all: 3 * B back-to-back requests through one
        # sidecar pass at once (a local bucket would hold them to B).
        self.up_open.reset()
        s = h.proxied_session(p)
        started = time.monotonic()
        rs = [s.get(self.up_open.url + "/open/%d" % i, timeout=30)
              for i in range(3 * B)]
        took = time.monotonic() - started
        s.close()
        self.assertEqual({(r.status_code, r.headers.get("x-sluice-quota"))
                          for r in rs}, {(200, "fail_open")})
        self.assertEqual(self.up_open.count_200, 3 * B)
        # At R/4 per sidecar these would take 7 s; allow a slow machine.
        self.assertLess(took, 3.5)

        # fallback_share: each sidecar is paced by a local bucket at
        # min(R / sidecars it was told of, its last share). Demand is equal,
        # so shares are about R / 4, and they sum to at most R: the fleet
        # stays near R, no sidecar far from R / 4.
        window = 3.0
        w0 = time.monotonic()
        time.sleep(window)
        w1 = time.monotonic()
        per = [len(load.select(w0, w1, index=i, status=200,
                               mode="fallback_share"))
               for i in range(SIDECARS)]
        total = sum(per)
        print("\nfallback_share: per sidecar %s in %.2fs (R/4 = %.1f/s)" %
              (per, w1 - w0, R / SIDECARS))
        # The fleet: at most R per second plus the fallback buckets' bursts
        # (the last grant each, a token or two) and timing jitter at the
        # window's edges (client-side timestamps).
        self.assertLessEqual(total, R * (w1 - w0) + 2 * SIDECARS + 4, per)
        self.assertGreaterEqual(total, R * (w1 - w0) * 0.65, per)
        for i, n in enumerate(per):
            # Measured, smoothed demand makes shares differ a little.
            self.assertLessEqual(n, R / SIDECARS * (w1 - w0) * 1.5 + 2,
                                 "sidecar %d: %r" % (i, per))
            self.assertGreaterEqual(n, R / SIDECARS * (w1 - w0) * 0.4,
                                    "sidecar %d: %r" % (i, per))
        self.assertEqual(len(load.select(w0, w1, mode="leased")), 0)
        self.assertEqual(self.up_share.count_429, 0,
                         self.describe_429s(killed=killed, fallback=down_at))

        # --- The server comes back on the same port. ---------------------
        before = [metric(q, "sluice_proxy_lease_stream_connects_total")
                  for q in self.proxies]
        self.quota.restart()
        restarted = time.monotonic()
        self.wait_modes(leased, True, timeout=15)
        for q, n in zip(self.proxies, before):
            self.assertGreater(
                metric(q, "sluice_proxy_lease_stream_connects_total"), n)
        # Traffic resumes on leased tokens at every sidecar (learning mode
        # holds grants back for ttl + grace first).
        self.assertTrue(h.wait_until(
            lambda: all(len(load.select(restarted, index=i, status=200,
                                        mode="leased")) >= 5
                        for i in range(SIDECARS)), 15),
            [len(load.select(restarted, index=i, mode="leased"))
             for i in range(SIDECARS)])
        # Keep the fleet running on leased tokens a while longer (twice as
        # many requests each), so an overshoot after the resumption would
        # reach the upstream before the check below.
        self.assertTrue(h.wait_until(
            lambda: all(len(load.select(restarted, index=i, status=200,
                                        mode="leased")) >= 10
                        for i in range(SIDECARS)), 15))
        self.assertTrue(load.finish(), "clients hung")
        self.assertEqual(load.errors, [])
        # No overshoot at any point: not in fallback, not across the restart.
        self.assertEqual(self.up_share.count_429, 0,
                         "the upstream saw more than the limit: " +
                         self.describe_429s(killed=killed, fallback=down_at,
                                            restarted=restarted))
        self.assertEqual({r[2] for r in load.select()}, {200})
        after = load.select(restarted)
        print("after restart: %d requests in %.2fs, modes %s" % (
            len(after), time.monotonic() - restarted,
            sorted({r[3] for r in after})))

        # The other resources lease again too.
        s = h.proxied_session(p)
        r1 = s.get(self.up_closed.url + "/closed/y", timeout=30)
        r2 = s.get(self.up_open.url + "/open/y", timeout=30)
        s.close()
        self.assertEqual((r1.status_code, r1.headers.get("x-sluice-quota")),
                         (200, "leased"))
        self.assertEqual((r2.status_code, r2.headers.get("x-sluice-quota")),
                         (200, "leased"))
        st = self.quota.resource_status("share")
        self.assertEqual(len(st["sidecars"]), SIDECARS)


if __name__ == "__main__":
    unittest.main()
