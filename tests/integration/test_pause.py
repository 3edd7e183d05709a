"""Fleet-wide pause (docs/pause.md): four sidecars lease one resource from
sluice-quota-server; the upstream bans the caller for BAN seconds with a
throttle in one vendor dialect. Nothing may reach the upstream later than
50 ms after its first throttle until the ban ends (apart from requests
already in flight), and traffic must resume afterwards without another
throttle. The pause travels on the UDP fast path and the stream
(FleetPauseTest), or on the stream alone (StreamOnlyPauseTest)."""

import time
import unittest

import sluice_harness as h
import test_quota as tq

RATE, BURST = 40, 10
SIDECARS = 4
BAN = 1.5
# Watched after the fleet is running again (probe and 1 s ramp done).
RECOVERY = 1.5
PROPAGATION = 0.05

QUOTA_CONFIG = """
resources:
  api:
    rate: %d
    burst: %d
    pause: {default: 1s, probe_timeout: 1s, ramp: 1s, ramp_start: 0.2}
""" % (RATE, BURST)

SIDECAR_CONFIG = """
ssrf: {allow: ["127.0.0.0/8"]}
quota: {servers: [%(target)s], backoff_initial: 50ms, backoff_max: 300ms}
rate_limits:
  api:
    rate: %(rate)d
    burst: %(burst)d
    resource: api
    max_wait: 20s
    throttle:
      resume_jitter: 20ms
      pause: {default: 1s, probe_timeout: 1s, ramp: 1s, ramp_start: 0.2}
routes:
  - {host: 127.0.0.1, path_prefix: /api, limit: api}
"""


class FleetPauseBase(h.ProxyTestCase):
    """One quota server, SIDECARS sidecars and an upstream, per class."""
    QUOTA = QUOTA_CONFIG

    @classmethod
    def setUpClass(cls):
        cls.quota = cls.start_class_quota_server(cls.QUOTA)
        cls.up = cls.start_class_upstream()  # unlimited but for the bans
        config = SIDECAR_CONFIG % {"target": cls.quota.target, "rate": RATE,
                                   "burst": BURST}
        cls.proxies = [cls.start_class_proxy(config) for _ in range(SIDECARS)]
        ok = h.wait_until(
            lambda: all(tq.lease_modes(p)[1] for p in cls.proxies), 20)
        if not ok:
            raise AssertionError("sidecars did not connect")

    def wait_running(self):
        def running():
            st = self.quota.resource_status("api")
            return st is not None and not st["pauses"]
        self.assertTrue(h.wait_until(running, 15), "pause never ended")

    def pause_starts(self, since):
        """([local pause starts], [each sidecar's pause start or None]),
        counting starts at or after `since` (Unix time)."""
        local, paused = [], []
        for p in self.proxies:
            times = {o: tq.metric(p, "sluice_proxy_pause_started_seconds",
                                  '{limit="api",origin="%s"}' % o)
                     for o in ("local", "remote")}
            mine = [t for t in times.values() if t is not None and t >= since]
            paused.append(min(mine) if mine else None)
            if times["local"] is not None and times["local"] >= since:
                local.append(times["local"])
        return local, paused

    def run_ban(self, dialect):
        self.wait_running()
        self.up.reset()
        load = tq.Load()
        for i, p in enumerate(self.proxies):
            load.add(p, i, self.up.url + "/api/%d" % i, threads=2, pause=0.02)
        load.start()
        try:
            time.sleep(0.5)  # steady traffic first
            wall0 = time.time()
            self.up.ban(BAN, dialect)
            self.assertTrue(h.wait_until(
                lambda: self.up.ban_window is not None, 5), "ban never began")
            start, end = self.up.ban_window
            # Within the ban, wait for every sidecar's pause to start.
            h.wait_until(lambda: None not in self.pause_starts(wall0)[1],
                         BAN / 2, 0.02)
            starts = self.pause_starts(wall0)
            time.sleep(max(0, end - time.monotonic()))
            # Dialects with absolute times pause up to the next whole second
            # and more (HTTP-dates have no fraction): wait for the fleet to
            # be running again, then watch it for a while.
            self.wait_running()
            time.sleep(RECOVERY)
        finally:
            self.assertTrue(load.finish(), "clients hung")
        self.assertEqual(load.errors, [])
        rows = self.up.snapshot()
        during = [r for r in rows if start <= r.t < end]
        self.assertTrue(during, "no request met the ban")
        first = min(r.t for r in during)
        leaked = [r for r in during if r.t >= first + PROPAGATION]
        after = [r for r in rows if r.t >= end]
        throttled_after = [r for r in after if r.status != 200]
        ok_after = [r for r in after if r.status == 200]
        print("\n%-16s throttled %d (within %.0f ms), leaked %d, "
              "after the ban: %d ok, %d throttled" %
              (dialect, len(during), 1000 * PROPAGATION, len(leaked),
               len(ok_after), len(throttled_after)))
        self.assertEqual(
            leaked, [], "%s: %d requests reached the upstream during the ban"
            " later than %.0f ms after its first throttle" %
            (dialect, len(leaked), 1000 * PROPAGATION))
        self.assertEqual(throttled_after, [], "%s: throttled again" % dialect)
        self.assertGreater(len(ok_after), RATE * 0.5,
                           "%s: traffic did not resume" % dialect)
        # The server saw one pause for this ban, and says where it came from.
        st = self.quota.resource_status("api")
        self.assertTrue(st["pauses_total"], st)
        # During the ban every sidecar's pause had started, by its own
        # clock: the first throttle read locally, the others no earlier
        # (from the server, or from a throttle of their own).
        local, paused = starts
        self.assertNotIn(None, paused, "%s: a sidecar never paused" % dialect)
        self.assertTrue(local, "%s: nobody paused on its own" % dialect)
        self.assertLessEqual(min(local), min(paused))

    def fleet_metric(self, name, labels=""):
        return sum(tq.metric(p, name, labels) or 0 for p in self.proxies)


class FleetPauseTest(FleetPauseBase):

    def test_pause_travels_as_datagrams(self):
        # Every sidecar was welcomed on the fast path.
        for p in self.proxies:
            self.assertEqual(tq.metric(p, "sluice_proxy_fast_path_up"), 1)
        self.assertEqual(
            tq.metric(self.quota, "sluice_quota_fast_path_sidecars"), SIDECARS)

        def counts():
            return (self.fleet_metric("sluice_proxy_pause_delivered_total",
                                      '{path="datagram"}'),
                    self.fleet_metric("sluice_proxy_pause_delivered_total",
                                      '{path="stream"}'),
                    tq.metric(self.quota,
                              "sluice_quota_duplicate_throttle_reports_total"))
        before = counts()
        self.run_ban("retry-after")
        by_datagram, by_stream, duplicates = (
            a - b for a, b in zip(counts(), before))
        # The sidecars that did not see the throttle themselves applied the
        # server's pause from a datagram (its stream copy comes 20 ms later:
        # only a reader that slow on a loaded machine sees the stream's
        # first)...
        self.assertGreater(by_datagram, 0)
        self.assertGreaterEqual(by_datagram, by_stream)
        # ...and the reporter's stream copy of its report counted once.
        self.assertGreater(duplicates, 0)
        self.assertEqual(tq.metric(
            self.quota, "sluice_quota_fast_path_datagrams_total",
            '{direction="in",result="bad_mac"}'), 0)

    def test_retry_after_seconds(self):
        self.run_ban("retry-after")

    def test_retry_after_ms(self):
        self.run_ban("retry-after-ms")

    def test_retry_after_http_date(self):
        self.run_ban("retry-after-date")

    def test_github_403_with_nothing_remaining(self):
        self.run_ban("github-403")

    def test_openai_reset_duration(self):
        self.run_ban("openai")

    def test_anthropic_rfc3339_reset(self):
        self.run_ban("anthropic")

    def test_ietf_ratelimit_fields(self):
        self.run_ban("ietf")

    def test_discord_reset_after(self):
        self.run_ban("discord")

    def test_success_that_spent_the_last_request(self):
        self.run_ban("x-ratelimit-200")


class StreamOnlyPauseTest(FleetPauseBase):
    """The server offers no fast path (a network that drops UDP looks the
    same to the pause): the stream alone carries it in time."""
    QUOTA = QUOTA_CONFIG + "fast_path: {enabled: false}\n"

    def test_pause_travels_on_the_stream(self):
        self.run_ban("retry-after")
        self.assertEqual(self.fleet_metric("sluice_proxy_fast_path_up"), 0)
        self.assertEqual(self.fleet_metric(
            "sluice_proxy_pause_delivered_total", '{path="datagram"}'), 0)
        self.assertGreater(self.fleet_metric(
            "sluice_proxy_pause_delivered_total", '{path="stream"}'), 0)


LEARN_QUOTA = """
resources:
  api:
    rate: 100
    burst: 10
    learn: {enabled: true, stated_ttl: 30s}
  plain:
    rate: 100
    burst: 10
"""

LEARN_SIDECAR = """
ssrf: {allow: ["127.0.0.0/8"]}
quota: {servers: [%(target)s], backoff_initial: 50ms, backoff_max: 300ms}
rate_limits:
  api:
    rate: 100
    burst: 10
    resource: api
    throttle: {limit_window: 1s}
  plain:
    rate: 100
    burst: 10
    resource: plain
    throttle: {limit_window: 1s}
routes:
  - {host: 127.0.0.1, path_prefix: /api, limit: api}
  - {host: 127.0.0.1, path_prefix: /plain, limit: plain}
"""


class StatedLimitTest(h.ProxyTestCase):
    """Learned limits from ordinary 200s: the upstream states its limit in
    its headers and never throttles; a resource that learns runs at the
    stated limit, one that does not keeps its configured rate."""

    def check(self, headers, stated):
        quota = self.start_quota_server(LEARN_QUOTA)
        up = self.start_upstream()
        up.ok_headers = headers
        proxy = self.start_proxy(LEARN_SIDECAR % {"target": quota.target})
        self.assertTrue(h.wait_until(lambda: tq.lease_modes(proxy)[1], 20))
        s = h.proxied_session(proxy)
        for path in ("/api/x", "/plain/x"):
            self.assertEqual(s.get(up.url + path, timeout=10).status_code, 200)
        s.close()

        def learned():
            st = quota.resource_status("api")
            return st and st["effective_rate_per_second"] == stated
        self.assertTrue(h.wait_until(learned, 5),
                        quota.resource_status("api"))
        st = quota.resource_status("api")
        self.assertEqual(st["stated_rate_per_second"], stated)
        self.assertEqual(st["learned_rate_per_second"], stated)
        self.assertEqual(st["rate_per_second"], 100)
        plain = quota.resource_status("plain")
        self.assertEqual(plain["effective_rate_per_second"], 100)
        self.assertEqual(plain["stated_rate_per_second"], 0)
        self.assertEqual(up.count_429, 0)

    def test_ietf_policy_with_its_window(self):
        self.check([("RateLimit-Policy", '"burst";q=120;w=2'),
                    ("RateLimit", '"burst";r=100;t=1')], 60)

    def test_openai_limit_with_the_configured_window(self):
        self.check([("x-ratelimit-limit-requests", "40"),
                    ("x-ratelimit-remaining-requests", "39"),
                    ("x-ratelimit-reset-requests", "25ms")], 40)


if __name__ == "__main__":
    unittest.main()
