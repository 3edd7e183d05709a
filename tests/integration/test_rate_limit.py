"""Rate limiting: sluice paces callers under an origin's own limit, and
answers 429 itself (marked x-sluice-limited: local) when a caller will not
wait or the queue is full."""

import http.client
import re
import threading
import time
import unittest

import sluice_harness as h
import test_quota as tq

# The origin's limit is 20 req/s with a burst of 5; sluice is set to 18 req/s
# with a burst of 3. sluice releases at most 3 + 18 L requests in any
# interval of length L, which is inside the origin's 5 + 20 L. What the
# origin sees in an interval also depends on how the machine delays each
# delivery (unbounded when the cores are busy), so the origin here answers
# everything and sluice is judged on its requests' spend intervals (from
# the client's send to the origin's read; see test_quota.py). How much of
# its limit sluice uses is a measurement (bench/pacing.py); that its queue
# admits each request exactly when a token is due is proven on fake time
# (RateLimiterTest.AdmitsBurstThenQueuesWithExactPredictions,
# LatePollAdmitsEveryoneDueInFifoOrder).
UPSTREAM_RATE, UPSTREAM_BURST = 20, 5
PROXY_RATE, PROXY_BURST = 18, 3
CLIENTS, DURATION = 8, 4.0

PACING_CONFIG = """
ssrf: {allow: ["127.0.0.0/8"]}
rate_limits:
  api: {rate: %d, period: 1s, burst: %d, max_wait: 10s}
routes:
  - {host: 127.0.0.1, limit: api}
""" % (PROXY_RATE, PROXY_BURST)

LOCAL_LIMIT_CONFIG = """
ssrf: {allow: ["127.0.0.0/8"]}
rate_limits:
  strict: {rate: 1, period: 60s, burst: 1}
  nowait: {rate: 1, period: 60s, burst: 1, max_wait: 0s}
  queued: {rate: 1, period: 1s, burst: 1, max_queue: 2, max_wait: 5s}
  roomy: {rate: 100, period: 1s, burst: 100}
routes:
  - {host: 127.0.0.1, path_prefix: /strict, limit: strict}
  - {host: 127.0.0.1, path_prefix: /nowait, limit: nowait}
  - {host: 127.0.0.1, path_prefix: /queued, limit: queued}
  - {host: 127.0.0.1, path_prefix: /metered, limit: roomy}
"""


class PacingTest(h.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = cls.start_class_upstream()  # records; never refuses
        cls.proxy = cls.start_class_proxy(PACING_CONFIG)

    def test_clients_are_paced_inside_the_upstream_limit(self):
        self.up.reset()
        results, lock = [], threading.Lock()
        sent = {}  # request id -> when the client began sending it
        started = []
        barrier = threading.Barrier(
            CLIENTS, action=lambda: started.append(time.monotonic()))

        def client(n):
            s = h.proxied_session(self.proxy)
            mine = []
            try:
                barrier.wait(20)
                stop_at = started[0] + DURATION
                while time.monotonic() < stop_at:
                    rid = "%d-%d" % (n, len(mine))
                    with lock:
                        sent[rid] = time.monotonic()
                    r = s.get(self.up.url + "/paced", timeout=30,
                              headers={tq.ID_HEADER: rid})
                    mine.append(r.status_code)
            except Exception as e:  # Reported through `results`.
                mine.append(repr(e))
            finally:
                s.close()
                with lock:
                    results.extend(mine)

        threads = [threading.Thread(target=client, args=(n,))
                   for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertFalse(any(t.is_alive() for t in threads), "clients hung")
        elapsed = time.monotonic() - started[0]

        allowed = PROXY_BURST + PROXY_RATE * elapsed
        records = self.up.snapshot()
        admitted = len(records)
        self.assertEqual([r for r in results if r != 200], [],
                         "clients saw errors")
        self.assertEqual(admitted, len(results))
        # Over the whole run (every request was sent after `started` and
        # answered before `elapsed` was read)...
        self.assertLessEqual(admitted, allowed + 1,
                             "sluice released more than its limit")
        # ...and in every window the spend intervals show: inside sluice's
        # own limit, and so inside the origin's.
        intervals = [(sent[r.header(tq.ID_HEADER)], r.t) for r in records]
        worst = tq.assert_within_bound(self, intervals, PROXY_RATE,
                                       PROXY_BURST, "sluice")
        tq.assert_within_bound(self, intervals, UPSTREAM_RATE,
                               UPSTREAM_BURST, "sluice (origin's limit)")
        print("\npacing: %d of %.1f allowed in %.2fs (%.1f%%); tightest "
              "window: %s; on arrival times alone, against the origin's "
              "limit: %s" % (admitted, allowed, elapsed,
                             100 * admitted / allowed, worst,
                             tq.arrival_excess(records, UPSTREAM_RATE,
                                               UPSTREAM_BURST)))


class _Adapter:
    """Gives an http.client response the requests-style fields that
    assertLocal429 reads."""

    def __init__(self, r):
        self.status_code = r.status
        self.headers = r.msg
        self.text = ""


class LocalLimitTest(h.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = cls.start_class_upstream()
        cls.proxy = cls.start_class_proxy(LOCAL_LIMIT_CONFIG)

    def setUp(self):
        super().setUp()
        self.up.reset()
        self.session = h.proxied_session(self.proxy)
        self.addCleanup(self.session.close)

    def get(self, path, headers=None):
        return self.session.get(self.up.url + path, headers=headers or {},
                                timeout=30)

    def assertLocal429(self, r, max_retry_after=61):
        self.assertEqual(r.status_code, 429, r.text)
        self.assertEqual(r.headers.get("x-sluice-limited"), "local")
        retry = r.headers.get("Retry-After", "")
        self.assertRegex(retry, r"^\d+$", "Retry-After must be delta-seconds")
        self.assertGreaterEqual(int(retry), 1)
        self.assertLessEqual(int(retry), max_retry_after)

    def assertLimitedAndNeverForwarded(self, prefix, headers=None):
        """On one client connection: an admitted request, one over the
        limit (local 429 at once), then an unlimited sentinel. sluice handles
        a connection's requests in order, so once the sentinel's answer is
        back, a limited request that was forwarded anyway would have reached
        the origin (or its response would have replaced the sentinel's)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port,
                                          timeout=30)
        self.addCleanup(conn.close)

        def get(path, hdrs=None):
            conn.request("GET", self.up.url + path, headers=hdrs or {})
            r = conn.getresponse()
            r.read()
            return r

        self.assertEqual(get(prefix + "/1").status, 200)
        start = time.monotonic()
        r = get(prefix + "/2", headers)
        self.assertLess(time.monotonic() - start, 3)
        self.assertLocal429(_Adapter(r))
        try:
            sentinel = get("/status/201")
        except (http.client.HTTPException, OSError) as e:
            self.fail("connection unusable after a local 429 (%r): was the "
                      "limited request forwarded anyway?" % e)
        self.assertEqual(sentinel.status, 201,
                         "another response arrived in place of the sentinel's:"
                         " was the limited request forwarded anyway?")
        self.assertEqual([x.path for x in self.up.snapshot()],
                         [prefix + "/1", "/status/201"])

    def test_max_wait_header_zero_gets_immediate_local_429(self):
        self.assertLimitedAndNeverForwarded("/strict",
                                            {"x-sluice-max-wait": "0"})

    def test_route_max_wait_zero_gets_immediate_local_429(self):
        self.assertLimitedAndNeverForwarded("/nowait")

    def test_origin_429_is_not_marked_local(self):
        r = self.get("/status/429")
        self.assertEqual(r.status_code, 429)
        self.assertNotIn("x-sluice-limited", r.headers)
        self.assertEqual(self.up.count_429, 1)

    def test_full_queue_rejects_with_local_429(self):
        n = 10
        responses, lock = [], threading.Lock()
        barrier = threading.Barrier(n)

        def client(i):
            s = h.proxied_session(self.proxy)
            try:
                barrier.wait(20)
                r = s.get(self.up.url + "/queued/%d" % i, timeout=30)
                with lock:
                    responses.append(r)
            finally:
                s.close()

        threads = [threading.Thread(target=client, args=(i,))
                   for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(responses), n)
        ok = [r for r in responses if r.status_code == 200]
        limited = [r for r in responses if r.status_code == 429]
        self.assertEqual(len(ok) + len(limited), n,
                         [r.status_code for r in responses])
        # 1 immediate + 2 queued pass (plus about one per second of spread
        # in arrivals); the rest find the queue full.
        self.assertGreaterEqual(len(ok), 1)
        self.assertGreaterEqual(len(limited), 4)
        for r in limited:
            self.assertLocal429(r)
        # A request refused with 429 must not have been forwarded as well.
        h.wait_until(lambda: self.up.in_flight == 0, 5)
        self.assertEqual(len(self.up.requests_for("/queued")), len(ok),
                         "the origin got requests that sluice answered 429")

    def test_metrics_count_requests_by_route(self):
        self.assertEqual(self.get("/metered/1").status_code, 200)
        status, _, text = h.admin_get(self.proxy.admin_port, "/metrics")
        self.assertEqual(status, 200)
        self.assertRegex(
            text, re.compile(r'^sluice_proxy_requests_total\{[^}]*route="[^"]*"'
                             r'[^}]*\} \d', re.M))


if __name__ == "__main__":
    unittest.main()
