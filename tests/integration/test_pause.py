"""Fleet-wide pause (docs/pause.md): four sidecars lease one resource from
sluice-quota-server; the upstream bans the caller for BAN seconds with a
throttle in one vendor dialect. Every sidecar pauses during the ban and
stays paused until it ends; nothing a sidecar is sent after its pause began
reaches the upstream during the ban, and at most one request per client
thread meets the ban. Traffic resumes afterwards without another throttle.
The pause travels on the UDP fast path and the stream (FleetPauseTest), or
on the stream alone (StreamOnlyPauseTest).

How fast the pause spreads (the first throttle to the last sidecar paused,
and whether any request reached the upstream 50 ms or more after the first
throttle) depends on how the machine schedules the processes: tests/sim
proves it on fake time (FleetPause.*) and bench/pause_bench.py measures it.
The checks here hold whatever the scheduling: they compare each sidecar's
own pause start and phase with the moments its requests were sent and
arrived, and count per client thread."""

import re
import time
import unittest

import sluice_harness as h
import test_quota as tq

RATE, BURST = 40, 10
SIDECARS = 4
THREADS = 2  # client threads per sidecar: at most this many in flight
BAN = 1.5
# The phase samples of run_ban stop this long before the ban ends: the
# server relays a pause as whole milliseconds left, so a sidecar it paused
# may resume a millisecond or two before the ban's exact end.
PHASE_MARGIN = 0.005

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


def sidecar_of(record):
    """The sidecar a request of run_ban's load went through (/api/<i>)."""
    return int(record.path.split("/")[2])


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
        """([local pause starts], [each sidecar's pause start or None],
        [each sidecar's {origin: start or None}]), counting starts at or
        after `since` (Unix time)."""
        local, paused, origins = [], [], []
        for p in self.proxies:
            times = {o: tq.metric(p, "sluice_proxy_pause_started_seconds",
                                  '{limit="api",origin="%s"}' % o)
                     for o in ("local", "remote")}
            times = {o: t if t is not None and t >= since else None
                     for o, t in times.items()}
            mine = [t for t in times.values() if t is not None]
            paused.append(min(mine) if mine else None)
            origins.append(times)
            if times["local"] is not None:
                local.append(times["local"])
        return local, paused, origins

    def sample_phases(self, paused, end_wall):
        """Reads every sidecar's pause phase over and over until the ban
        ends; returns, per sidecar, the phases read by scrapes that began
        after its pause started and ended before the ban did (less
        PHASE_MARGIN: a pause relayed by the server is whole milliseconds).
        Slow scrapes only mean fewer samples."""
        samples = [[] for _ in self.proxies]
        stop = end_wall - PHASE_MARGIN
        while time.time() < stop:
            for i, p in enumerate(self.proxies):
                before = time.time()
                _, _, text = h.admin_get(p.admin_port, "/metrics")
                after = time.time()
                if paused[i] is None or before < paused[i] or after >= stop:
                    continue
                phases = re.findall(
                    r'^sluice_proxy_pause_phase\{limit="api",phase="(\w+)"\} '
                    r'1$', text, re.M)
                samples[i].append(phases[0] if len(phases) == 1 else phases)
            time.sleep(0.01)
        return samples

    def run_ban(self, dialect):
        """Bans the upstream once under steady load and checks the pause.
        Returns each sidecar's {origin: pause start or None}."""
        self.wait_running()
        self.up.reset()
        load = self.new_load()
        for i, p in enumerate(self.proxies):
            load.add(p, i, self.up.url + "/api/%d" % i, threads=THREADS,
                     pause=0.02)
        load.start()
        try:
            time.sleep(0.5)  # steady traffic first
            wall0 = time.time()
            self.up.ban(BAN, dialect)
            self.assertTrue(h.wait_until(
                lambda: self.up.ban_window is not None, 10),
                "ban never began")
            start, end = self.up.ban_window
            end_wall = self.up.ban_window_wall[1]
            # Every sidecar's pause starts (checked below: within the ban).
            h.wait_until(lambda: None not in self.pause_starts(wall0)[1], 10)
            local, paused, origins = self.pause_starts(wall0)
            # Until the ban ends, each paused sidecar says it is paused.
            samples = self.sample_phases(paused, end_wall)
            time.sleep(max(0, end - time.monotonic()))
            # Dialects with absolute times pause up to the next whole second
            # and more (HTTP-dates have no fraction): wait for the fleet to
            # be running again, then for every sidecar's traffic to resume.
            self.wait_running()

            def resumed():
                after = [r for r in self.up.snapshot()
                         if r.t >= end and r.status == 200]
                return all(sum(sidecar_of(r) == i for r in after) >= 3
                           for i in range(SIDECARS))
            self.assertTrue(h.wait_until(resumed, 30),
                            "%s: traffic did not resume" % dialect)
        finally:
            self.assertTrue(load.finish(), "clients hung")
        self.assertEqual(load.errors, [])
        with load.lock:
            sent_wall = {rid: v[1] for rid, v in load.sent.items()}
        rows = self.up.snapshot()
        # Every request the ban answered (all that arrived in [start, end),
        # and any that raced the first one to start it).
        during = [r for r in rows if r.banned]
        self.assertTrue(during, "no request met the ban")
        throttled_after = [r for r in rows if r.t >= end and r.status != 200]
        self.assertEqual(throttled_after, [], "%s: throttled again" % dialect)

        # Every sidecar paused during the ban (the ban lasts BAN s; the
        # pause spreads in milliseconds), by its own clock; the first
        # throttle read locally, the others no earlier (from the server, or
        # from a throttle of their own).
        self.assertNotIn(None, paused, "%s: a sidecar never paused" % dialect)
        self.assertTrue(local, "%s: nobody paused on its own" % dialect)
        self.assertLessEqual(min(local), min(paused))
        report = []
        for i, paused_at in enumerate(paused):
            self.assertLess(paused_at, end_wall,
                            "%s: sidecar %d paused after the ban" % (dialect,
                                                                     i))
            # Once paused, it stayed paused (no probe, no ramp) while the
            # ban lasted, in every sample taken wholly inside that time.
            self.assertEqual(
                [phase for phase in samples[i] if phase != "paused"], [],
                "%s: sidecar %d resumed during the ban" % (dialect, i))
            mine = [r for r in during if sidecar_of(r) == i]
            late = [r for r in mine if r.wall >= paused_at]
            # Sent to the sidecar after its pause began, yet forwarded
            # during the ban: the pause let it through.
            leaked = [r for r in late
                      if sent_wall.get(r.header(tq.ID_HEADER), 0) > paused_at]
            self.assertEqual(
                leaked, [], "%s: sidecar %d forwarded %d requests during the "
                "ban that it was sent after its pause began" %
                (dialect, i, len(leaked)))
            # At most one request per client thread met the ban: a thread
            # sends its next request only once it has the answer, and the
            # sidecar paused when it read that answer, before relaying it.
            self.assertLessEqual(
                len(mine), THREADS, "%s: sidecar %d: %d requests met the ban "
                "from %d client threads" % (dialect, i, len(mine), THREADS))
            report.append("%d/%d" % (len(mine), len(late)))
            if not mine:
                # Never throttled itself: the server paused it.
                self.assertIsNotNone(
                    origins[i]["remote"],
                    "%s: sidecar %d paused without a throttle or the "
                    "server's pause" % (dialect, i))
        print("\n%-16s met the ban (late) per sidecar: %s; last sidecar "
              "paused %.1f ms after the first; %d requests came %.0f ms or "
              "more after the first throttle; phase samples during the ban "
              "%s" % (
                  dialect, " ".join(report), 1000 * (max(paused) - min(local)),
                  sum(r.t >= start + 0.05 for r in during), 50,
                  [len(x) for x in samples]))
        # The server saw one pause for this ban.
        st = self.quota.resource_status("api")
        self.assertTrue(st["pauses_total"], st)
        return origins

    def new_load(self):
        """The Load of run_ban (a subclass may give its clients other
        sessions)."""
        return tq.Load()

    def fleet_metric(self, name, labels=""):
        return sum(tq.metric(p, name, labels) or 0 for p in self.proxies)


class FleetPauseTest(FleetPauseBase):

    def test_pause_travels_as_datagrams(self):
        # Every sidecar is welcomed on the fast path.
        def welcomed():
            return (all(tq.metric(p, "sluice_proxy_fast_path_up") == 1
                        for p in self.proxies) and
                    tq.metric(self.quota, "sluice_quota_fast_path_sidecars")
                    == SIDECARS)
        self.assertTrue(h.wait_until(welcomed, 20),
                        "not every sidecar was welcomed on the fast path")

        def counts():
            return (self.fleet_metric("sluice_proxy_pause_delivered_total",
                                      '{path="datagram"}'),
                    self.fleet_metric("sluice_proxy_pause_delivered_total",
                                      '{path="stream"}'),
                    tq.metric(self.quota,
                              "sluice_quota_duplicate_throttle_reports_total"))
        before = counts()
        remote = sum(o["remote"] is not None
                     for o in self.run_ban("retry-after"))
        # The reporter sends its report both ways; whichever copy the server
        # reads second is counted once as a duplicate.
        self.assertTrue(h.wait_until(lambda: counts()[2] > before[2], 10),
                        "the report's second copy was never counted")
        by_datagram, by_stream, _ = (a - b for a, b in zip(counts(), before))
        print("server pauses applied first from the datagram: %d, from the "
              "stream: %d" % (by_datagram, by_stream))
        # Every sidecar the server paused applied one copy of its pause
        # first...
        self.assertGreaterEqual(by_datagram + by_stream, remote)
        # ...and the datagram, sent 20 ms ahead of the stream's copy, came
        # first at least once (at every sidecar unless its reader was held
        # up that long: bench/pause_bench.py counts the split).
        self.assertGreater(by_datagram, 0)
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
        def by_stream():
            return self.fleet_metric("sluice_proxy_pause_delivered_total",
                                     '{path="stream"}')
        before = by_stream()
        remote = sum(o["remote"] is not None
                     for o in self.run_ban("retry-after"))
        self.assertEqual(self.fleet_metric("sluice_proxy_fast_path_up"), 0)
        self.assertEqual(self.fleet_metric(
            "sluice_proxy_pause_delivered_total", '{path="datagram"}'), 0)
        # Every sidecar the server paused got the pause on the stream; at
        # least one did (the others' next requests come ~100 ms apart, the
        # pause in milliseconds).
        self.assertGreaterEqual(by_stream() - before, remote)
        self.assertGreater(by_stream() - before, 0)


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
        self.assertTrue(h.wait_until(learned, 15),
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
