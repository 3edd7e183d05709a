"""Leased mode: four sidecars share one global limit through
sluice-quota-server, and keep to their unavailability policy when the
server goes away (docs/leasing.md)."""

import collections
import itertools
import re
import threading
import time
import unittest

import sluice_harness as h

# The fleet's limit: R tokens/s with a burst of B. The docs bound the tokens
# the fleet spends in any window W by R*W + B; what an upstream sees in a
# window adds R*j, where j is the spread of sidecar-to-upstream delivery
# delays, which a loaded machine does not bound (an upstream enforcing the
# limit on arrival times refuses requests the fleet spent correctly when
# the machine delays some deliveries more than others). So the upstreams
# here answer every request, and the tests judge the fleet on the spend
# intervals of its requests (h.spend_bound_excess: from the client's send
# to the upstream's read), with no slack at all: slow delivery only widens
# the intervals, which makes the judgement less sharp, never wrong.
# Utilisation (how much of R the fleet uses) is a measurement, not a
# property that holds whatever the scheduling: tests/sim proves it on fake
# time (FleetSim.*) and bench/fleet.py measures it end to end.
R, B = 40, 10
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


# Each request of a Load carries a unique id in this header, so that the
# upstream's record of it can be paired with the moment the client sent it.
ID_HEADER = "x-test-request"

# One response: t = when it arrived (time.monotonic()), index = the sidecar
# (as given to Load.add), status, mode = its x-sluice-quota, sent / sent_wall
# = when the client began sending it (time.monotonic() / time.time()),
# rid = its ID_HEADER.
Row = collections.namedtuple(
    "Row", "t index status mode sent sent_wall rid")


class Load:
    """Client threads (requests sessions) hammering `url` through one
    sidecar each, recording a Row per response. A thread that gets a 429
    pauses `pause_on_429` s. Each thread's session is session(proxy)."""

    def __init__(self, session=h.proxied_session):
        self._session = session
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results = []
        self.sent = {}  # request id -> (sent, sent_wall, index)
        self.errors = []
        self.threads = []
        self._ids = itertools.count()

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
        s = self._session(proxy)
        s.headers.update(headers or {})
        try:
            while not self.stop.is_set():
                with self.lock:
                    rid = "%d" % next(self._ids)
                    sent, sent_wall = time.monotonic(), time.time()
                    self.sent[rid] = (sent, sent_wall, index)
                try:
                    r = s.get(url, timeout=30, headers={ID_HEADER: rid})
                except Exception as e:  # Reported by the test.
                    with self.lock:
                        self.errors.append(repr(e))
                    return
                with self.lock:
                    self.results.append(Row(
                        time.monotonic(), index, r.status_code,
                        r.headers.get("x-sluice-quota"), sent, sent_wall,
                        rid))
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

    def select(self, t0=None, t1=None, index=None, status=None, mode=None,
               sent_from=None, sent_until=None):
        """Rows answered in [t0, t1) and sent in [sent_from, sent_until)
        (None: unbounded) matching index, status and mode."""
        with self.lock:
            rows = list(self.results)
        return [r for r in rows
                if (t0 is None or r.t >= t0) and (t1 is None or r.t < t1)
                and (sent_from is None or r.sent >= sent_from)
                and (sent_until is None or r.sent < sent_until)
                and (index is None or r.index == index)
                and (status is None or r.status == status)
                and (mode is None or r.mode == mode)]

    def spend_intervals(self, records, index=None, mode=None):
        """(sent, arrived) for each upstream record of a request of this
        load (of sidecar `index`, answered in `mode`, if given): the
        interval in which its token was spent (h.spend_bound_excess)."""
        with self.lock:
            sent = dict(self.sent)
            modes = {r.rid: r.mode for r in self.results}
        out = []
        for rec in records:
            rid = rec.header(ID_HEADER)
            if rid not in sent:
                continue
            if index is not None and sent[rid][2] != index:
                continue
            if mode is not None and modes.get(rid) != mode:
                continue
            out.append((sent[rid][0], rec.t))
        return out


def assert_within_bound(case, intervals, rate, burst, what):
    """Fails `case` if the spend intervals show more than burst + rate * W
    spent in some window W; returns the tightest window for printing."""
    case.assertTrue(intervals, "%s: no requests to judge" % what)
    worst = h.spend_bound_excess(intervals, rate, burst)
    case.assertLessEqual(
        worst.excess, 1e-6, "%s spent more than %g/s with a burst of %g: %s"
        % (what, rate, burst, worst))
    return worst


def arrival_excess(records, rate, burst):
    """The same judgement on upstream arrival times alone, for printing: how
    much a real upstream enforcing (rate, burst) would have refused, which
    includes the delivery jitter of this run."""
    return h.spend_bound_excess([(r.t, r.t) for r in records], rate, burst)


def start_fleet(case, quota, limits):
    proxies = [case.start_class_proxy(sidecar_config(quota.target, limits))
               for _ in range(SIDECARS)]
    ok = h.wait_until(lambda: all(lease_modes(p)[1] for p in proxies), 20)
    if not ok:
        raise AssertionError("sidecars did not connect to the quota server")
    return proxies


class SharedLimitTest(h.ProxyTestCase):
    """Four sidecars with skewed demand keep one upstream inside the fleet's
    limit, every request on leased tokens."""

    @classmethod
    def setUpClass(cls):
        cls.quota = cls.start_class_quota_server("""
            resources:
              api: {rate: %d, burst: %d}
            """ % (R, B))
        cls.up = cls.start_class_upstream()  # records; never refuses
        cls.proxies = start_fleet(cls, cls.quota, [("api", "api", "/api")])

    def test_fleet_stays_inside_the_limit(self):
        # The server offers leases over the fast path by default: once
        # welcomed, every sidecar sends its reports and gets its grants as
        # datagrams (docs/leasing.md). This test holds the limit with them.
        grants_before = [self.lease_datagrams(p, "grant")
                         for p in self.proxies]
        # The clients do not queue (a request without a token at hand gets
        # sluice's own 429 at once and is tried again 50 ms later), so a
        # forwarded request's spend interval is the time from the client to
        # the upstream, and the bound is judged as sharply as by an upstream
        # that enforced it with no slack on a quiet machine.
        load = self.new_load()
        for i, p in enumerate(self.proxies):
            load.add(p, i, self.up.url + "/api/%d" % i, threads=THREADS[i],
                     headers={"x-sluice-max-wait": "0"})
        self.up.reset()
        t0 = time.monotonic()
        load.start()
        time.sleep(WARMUP + MEASURE)
        t1 = time.monotonic()
        status = self.quota.status()
        self.assertTrue(load.finish(), "clients hung")

        self.assertEqual(load.errors, [])
        records = self.up.snapshot()
        # The fleet never spent more than R*W + B in any window W: its
        # tokens came from the level, which holds at most B, or accrued at
        # R. Nothing was spent before t0 (the upstream was reset with no
        # traffic), so every window counts from a full bucket at worst.
        worst = assert_within_bound(self, load.spend_intervals(records), R,
                                    B, "the fleet")
        measured = [r for r in records if t0 + WARMUP <= r.t < t1]
        print("\nfleet: %d upstream requests in %.2fs measured: %.1f%% of "
              "%d/s; per sidecar %s; tightest window: %s; on arrival times "
              "alone: %s" % (
                  len(measured), t1 - t0 - WARMUP,
                  100 * len(measured) / (R * (t1 - t0 - WARMUP)), R,
                  [len(load.select(t0 + WARMUP, t1, index=i, status=200))
                   for i in range(SIDECARS)], worst,
                  arrival_excess(records, R, B)))
        # Every response went through the leased limit while connected: a
        # 200 forwarded once, or sluice's own 429 (no token at hand), never
        # forwarded. Every sidecar forwarded some of the traffic.
        rows = load.select()
        self.assertEqual({r.mode for r in rows}, {"leased"})
        self.assertLessEqual({r.status for r in rows}, {200, 429})
        self.assertEqual(len(records), len(load.select(status=200)))
        for i in range(SIDECARS):
            self.assertTrue(load.select(t0 + WARMUP, t1, index=i, status=200),
                            "sidecar %d forwarded nothing" % i)

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

    def new_load(self):
        """The Load of test_fleet_stays_inside_the_limit (a subclass may
        give its clients other sessions)."""
        return Load()

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
# Time in fallback_share before the server comes back.
FALLBACK_WINDOW = 3.0


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
        # The upstreams record and never refuse: the limits are judged on
        # the requests' spend intervals.
        cls.up_share = cls.start_class_upstream()
        cls.up_closed = cls.start_class_upstream()
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

    def test_policies_apply_while_the_server_is_down(self):
        leased = {"share": "leased", "closed": "leased", "open": "leased"}
        self.wait_modes(leased, True)
        # Steady demand above R on the fallback_share resource from every
        # sidecar, for the whole test. A request waits at most 100 ms for a
        # token (else sluice answers 429 at once and the client tries again
        # 50 ms later): the queue is exercised, and a spend interval is at
        # most that wait longer than the way from client to upstream.
        load = Load()
        for i, p in enumerate(self.proxies):
            load.add(p, i, self.up_share.url + "/share/%d" % i, threads=2,
                     headers={"x-sluice-max-wait": "100ms"})
        self.up_share.reset()
        load.start()
        self.addCleanup(load.finish)
        self.assertTrue(h.wait_until(
            lambda: len(load.select(mode="leased")) >= R, 20))
        # Steady state first: fallback_share keeps each sidecar's last share,
        # so the shares must have converged to R / 4 before the kill (on a
        # slow build the last sidecar to connect can still be on its way).
        def converged():
            st = self.quota.resource_status("share")
            shares = [sc["share_per_second"] for sc in (st or {}).get(
                "sidecars", []) if sc.get("connected")]
            return (len(shares) == SIDECARS and
                    min(shares) >= 0.9 * R / SIDECARS)
        self.assertTrue(h.wait_until(converged, 20),
                        self.quota.resource_status("share"))

        # --- The server dies. -------------------------------------------
        self.quota.kill()
        killed = time.monotonic()
        self.wait_modes({"share": "fallback_share", "closed": "fail_closed",
                         "open": "fail_open"}, False, timeout=10)
        down_at = time.monotonic()
        # Held tokens outlive the stream by at most their ttl (plus the
        # sidecars' view of it being stale by a scrape); 3 s more than the
        # ttl leaves room for a busy machine, and is still far below any
        # other timer that could end the lease (the stream's 20 s max_wait).
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

        # fail_open: no limit at all. 3 * B back-to-back requests through
        # one sidecar that may not wait for a token: none is refused (a
        # local bucket of B tokens at R/4 refuses some at once when the
        # requests come faster than R/4; the rest of the proof, that
        # fail_open takes nothing from any bucket, is on fake time in
        # LeasePoolTest.FailOpenAdmitsEverythingOnceHeldIsGone).
        self.up_open.reset()
        s = h.proxied_session(p)
        started = time.monotonic()
        rs = [s.get(self.up_open.url + "/open/%d" % i, timeout=30,
                    headers={"x-sluice-max-wait": "0"})
              for i in range(3 * B)]
        took = time.monotonic() - started
        s.close()
        self.assertEqual({(r.status_code, r.headers.get("x-sluice-quota"))
                          for r in rs}, {(200, "fail_open")})
        self.assertEqual(self.up_open.count_200, 3 * B)
        print("\nfail_open: %d requests in %.2fs" % (3 * B, took))

        # fallback_share: each sidecar is paced by a local bucket at
        # min(R / sidecars it was told of, its last share), as deep as
        # min(B, its last grant). Every sidecar keeps forwarding. The fleet
        # runs this way for FALLBACK_WINDOW: not a wait for some state, but
        # the stretch of fallback traffic the spend bounds below judge.
        time.sleep(FALLBACK_WINDOW)
        self.assertTrue(h.wait_until(
            lambda: all(load.select(sent_from=down_at, index=i, status=200,
                                    mode="fallback_share")
                        for i in range(SIDECARS)), 15),
            "a sidecar forwarded nothing in fallback_share")
        # Nothing sent after every sidecar showed fallback_share went on a
        # leased token (there were none left).
        restarting = time.monotonic()
        self.assertEqual(load.select(sent_from=down_at,
                                     sent_until=restarting, mode="leased"),
                         [])

        # --- The server comes back on the same port. ---------------------
        before = [metric(q, "sluice_proxy_lease_stream_connects_total")
                  for q in self.proxies]
        self.quota.restart()
        restarted = time.monotonic()
        self.wait_modes(leased, True, timeout=20)
        for q, n in zip(self.proxies, before):
            self.assertGreater(
                metric(q, "sluice_proxy_lease_stream_connects_total"), n)
        # Traffic resumes on leased tokens at every sidecar (learning mode
        # holds grants back for ttl + grace first).
        self.assertTrue(h.wait_until(
            lambda: all(len(load.select(restarted, index=i, status=200,
                                        mode="leased")) >= 5
                        for i in range(SIDECARS)), 30),
            [len(load.select(restarted, index=i, mode="leased"))
             for i in range(SIDECARS)])
        # Keep the fleet running on leased tokens a while longer (twice as
        # many requests each), so an overshoot after the resumption would
        # reach the upstream before the check below.
        self.assertTrue(h.wait_until(
            lambda: all(len(load.select(restarted, index=i, status=200,
                                        mode="leased")) >= 10
                        for i in range(SIDECARS)), 30))
        self.assertTrue(load.finish(), "clients hung")
        self.assertEqual(load.errors, [])
        # Every response was a 200 forwarded once or sluice's own 429.
        self.assertLessEqual({r.status for r in load.select()}, {200, 429})
        self.assertEqual(len(self.up_share.snapshot()),
                         len(load.select(status=200)))
        self.assertEqual(
            {r.mode for r in load.select()}, {"leased", "fallback_share"})

        # No overshoot at any point. Leased tokens, before the kill and
        # after the restart: at most R*W + B in any window (the old
        # server's last tokens died TTL after the kill, seconds before the
        # new one granted any). fallback_share: each sidecar at most
        # B + (R / SIDECARS) * W, the fleet at most SIDECARS * B + R * W.
        records = self.up_share.snapshot()
        leased_worst = assert_within_bound(
            self, load.spend_intervals(records, mode="leased"), R, B,
            "leased tokens")
        fallback_worst = assert_within_bound(
            self, load.spend_intervals(records, mode="fallback_share"), R,
            SIDECARS * B, "the fleet in fallback_share")
        for i in range(SIDECARS):
            assert_within_bound(
                self, load.spend_intervals(records, index=i,
                                           mode="fallback_share"),
                R / SIDECARS, B, "sidecar %d in fallback_share" % i)
        w0, w1 = down_at, restarting
        per = [len(load.select(w0, w1, index=i, status=200,
                               mode="fallback_share"))
               for i in range(SIDECARS)]
        print("fallback_share: per sidecar %s in %.2fs (R/4 = %.1f/s); "
              "tightest windows: leased %s, fallback_share %s; on arrival "
              "times alone: %s" % (
                  per, w1 - w0, R / SIDECARS, leased_worst, fallback_worst,
                  arrival_excess(records, R, B)))
        after = load.select(restarted)
        print("after restart: %d requests in %.2fs, modes %s" % (
            len(after), time.monotonic() - restarted,
            sorted({r.mode for r in after})))

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
