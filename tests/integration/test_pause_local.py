"""The pause on one sidecar without a quota server (docs/pause.md): an
upstream throttle pauses the limit, sluice's own 429s then carry
Retry-After and x-should-retry: false, and a route with transparent retry
turns the upstream's 429 into one slower 200."""

import time
import unittest

import sluice_harness as h
import test_quota as tq

CONFIG = """
ssrf: {allow: ["127.0.0.0/8"]}
rate_limits:
  api:
    rate: 50
    burst: 5
    max_wait: 10s
    throttle:
      resume_jitter: 0s
      pause: {default: 1s, probe_timeout: 500ms, ramp: 0s}
routes:
  - {host: 127.0.0.1, path_prefix: /retry, limit: api,
     retry: {on_throttle: true, max_attempts: 3}}
  - {host: 127.0.0.1, path_prefix: /plain, limit: api}
"""


class LocalPauseTest(h.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.start_class_upstream()
        cls.proxy = cls.start_class_proxy(CONFIG)

    def setUp(self):
        # Each test starts after any earlier pause is over.
        self.assertTrue(h.wait_until(
            lambda: tq.metric(self.proxy, "sluice_proxy_pause_phase",
                              '{limit="api",phase="running"}') == 1.0, 10))
        self.up.reset()
        self.before = {}
        for name, labels in self.COUNTERS:
            self.before[name + labels] = tq.metric(self.proxy, name, labels) or 0

    COUNTERS = [
        ("sluice_proxy_pause_retried_total", '{limit="api"}'),
        ("sluice_proxy_pause_shed_total", '{limit="api"}'),
        ("sluice_proxy_pause_held_total", '{limit="api"}'),
        ("sluice_proxy_upstream_throttles_total",
         '{limit="api",reason="retry-after"}'),
    ]

    def delta(self, name, labels):
        return (tq.metric(self.proxy, name, labels) or 0) - \
            self.before[name + labels]

    def test_transparent_retry_turns_a_ban_into_one_slower_success(self):
        self.up.ban(1.0, "retry-after")
        s = h.proxied_session(self.proxy)
        t0 = time.monotonic()
        r = s.get(self.up.url + "/retry/a", timeout=30)
        took = time.monotonic() - t0
        s.close()
        self.assertEqual(r.status_code, 200, r.text)
        seen = [x.status for x in self.up.requests_for("/retry/a")]
        self.assertEqual(seen, [429, 200])
        self.assertGreaterEqual(took, 0.9)
        self.assertEqual(self.delta("sluice_proxy_pause_retried_total",
                                    '{limit="api"}'), 1.0)

    def test_without_retry_the_app_sees_the_throttle_then_sluice_holds_it(self):
        self.up.ban(1.5, "retry-after")
        s = h.proxied_session(self.proxy)
        r = s.get(self.up.url + "/plain/a", timeout=30)
        self.assertEqual(r.status_code, 429)  # the upstream's own answer
        self.assertEqual(r.headers.get("Retry-After"), "2")
        # A request that cannot wait out the pause is refused by sluice at
        # once, with the pause's end and a hint for the SDK.
        r2 = s.get(self.up.url + "/plain/b", timeout=30,
                   headers={"x-sluice-max-wait": "100ms"})
        self.assertEqual(r2.status_code, 429)
        self.assertEqual(r2.headers.get("x-sluice-limited"), "local")
        self.assertEqual(r2.headers.get("x-should-retry"), "false")
        self.assertGreaterEqual(int(r2.headers["Retry-After"]), 1)
        # One that can wait is held and then sent.
        t0 = time.monotonic()
        r3 = s.get(self.up.url + "/plain/c", timeout=30)
        self.assertEqual(r3.status_code, 200)
        self.assertGreater(time.monotonic() - t0, 0.5)
        s.close()
        # Nothing but the first request met the ban.
        self.assertEqual(self.up.count_429, 1)
        self.assertEqual(self.delta("sluice_proxy_pause_shed_total",
                                    '{limit="api"}'), 1.0)
        self.assertGreaterEqual(self.delta("sluice_proxy_pause_held_total",
                                           '{limit="api"}'), 1.0)
        self.assertEqual(
            self.delta("sluice_proxy_upstream_throttles_total",
                       '{limit="api",reason="retry-after"}'), 1.0)

    def test_post_is_not_retried_by_default(self):
        self.up.ban(1.0, "retry-after")
        s = h.proxied_session(self.proxy)
        r = s.post(self.up.url + "/retry/p", data=b"", timeout=30)
        s.close()
        self.assertEqual(r.status_code, 429)
        self.assertEqual([x.status for x in self.up.requests_for("/retry/p")],
                         [429])


if __name__ == "__main__":
    unittest.main()
