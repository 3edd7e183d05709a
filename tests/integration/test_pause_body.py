"""Bodies and the pause (docs/pause.md), on one sidecar without a quota
server: an ignore rule's body marker read from the start of a throttle's
body (the client still gets the body byte for byte), and transparent retry
of requests with a body kept in memory."""

import hashlib
import json
import time
import unittest

import sluice_harness as h
import test_quota as tq

PAUSE = """
    rate: 50
    burst: 5
    max_wait: 10s
    throttle:
      resume_jitter: 0s
      pause: {default: 1s, probe_timeout: 500ms, ramp: 0s}
"""

MARKER_CONFIG = """
ssrf: {allow: ["127.0.0.0/8"]}
timeouts: {upstream_response: 1s}
rate_limits:
  marked:%s      ignore:
        - {status: 429, body: '"code": "lock_timeout"'}
routes:
  - {host: 127.0.0.1, path_prefix: /m/, limit: marked}
""" % PAUSE

RETRY_CONFIG = """
ssrf: {allow: ["127.0.0.0/8"]}
timeouts: {body_idle: 1s}
rate_limits:
  api:%s
routes:
  - {host: 127.0.0.1, path_prefix: /echo/, limit: api,
     retry: {on_throttle: true, methods: all, max_attempts: 3,
             max_body_bytes: 1000}}
""" % PAUSE

LOCK = b'{"error": {"code": "lock_timeout", "type": "invalid_request_error"}}'
QUOTA = b'{"error": {"code": "rate_limit", "type": "invalid_request_error"}}'


class _PauseCase(h.ProxyTestCase):
    LIMIT = ""
    COUNTERS = []

    def setUp(self):
        super().setUp()
        # Each test starts after any earlier pause is over.
        self.assertTrue(h.wait_until(
            lambda: self.metric("sluice_proxy_pause_phase",
                                '{limit="%s",phase="running"}' % self.LIMIT)
            == 1.0, 10))
        self.up.reset()
        self.before = {c: self.metric(*c) or 0 for c in self.COUNTERS}
        self.s = h.proxied_session(self.proxy)
        self.addCleanup(self.s.close)

    def metric(self, name, labels):
        return tq.metric(self.proxy, name, labels)

    def delta(self, name, labels):
        return (self.metric(name, labels) or 0) - self.before[(name, labels)]

    def shed_at_once(self, path):
        """A request that may not wait: 200 if the limit is running, sluice's
        own 429 if it is paused."""
        return self.s.get(self.up.url + path, timeout=30,
                          headers={"x-sluice-max-wait": "100ms"})


class BodyMarkerTest(_PauseCase):
    LIMIT = "marked"
    COUNTERS = [
        ("sluice_proxy_upstream_throttles_total",
         '{limit="marked",reason="ignored"}'),
        ("sluice_proxy_upstream_throttles_total",
         '{limit="marked",reason="retry-after"}'),
        ("sluice_proxy_pauses_total", '{limit="marked",origin="local"}'),
        ("sluice_proxy_throttle_body_peeks_total",
         '{limit="marked",result="marker"}'),
        ("sluice_proxy_throttle_body_peeks_total",
         '{limit="marked",result="no_marker"}'),
        ("sluice_proxy_throttle_body_peeks_total",
         '{limit="marked",result="failed"}'),
    ]

    @classmethod
    def setUpClass(cls):
        cls.up = cls.start_class_upstream()
        cls.proxy = cls.start_class_proxy(MARKER_CONFIG)

    def assertIgnoredAndRunning(self):
        self.assertEqual(self.delta("sluice_proxy_upstream_throttles_total",
                                    '{limit="marked",reason="ignored"}'), 1.0)
        self.assertEqual(self.delta("sluice_proxy_pauses_total",
                                    '{limit="marked",origin="local"}'), 0.0)
        # Later requests go straight through.
        after = self.shed_at_once("/m/after")
        self.assertEqual(after.status_code, 200, after.text)
        self.assertEqual(len(self.up.requests_for("/m/after")), 1)

    def assertPaused(self):
        self.assertEqual(self.delta("sluice_proxy_pauses_total",
                                    '{limit="marked",origin="local"}'), 1.0)
        shed = self.shed_at_once("/m/after")
        self.assertEqual(shed.status_code, 429)
        self.assertEqual(shed.headers.get("x-sluice-limited"), "local")
        self.assertEqual(self.up.requests_for("/m/after"), [])

    def test_marked_throttle_passes_through_without_a_pause(self):
        self.up.script("/m/lock", 429, LOCK,
                       [("Retry-After", "5"),
                        ("Content-Type", "application/json")])
        r = self.s.get(self.up.url + "/m/lock", timeout=30)
        self.assertEqual(r.status_code, 429)
        self.assertEqual(r.content, LOCK)
        self.assertEqual(r.headers.get("Retry-After"), "5")
        self.assertEqual(self.delta("sluice_proxy_throttle_body_peeks_total",
                                    '{limit="marked",result="marker"}'), 1.0)
        self.assertIgnoredAndRunning()

    def test_the_same_throttle_without_the_marker_pauses(self):
        self.up.script("/m/quota", 429, QUOTA, [("Retry-After", "1")])
        r = self.s.get(self.up.url + "/m/quota", timeout=30)
        self.assertEqual(r.status_code, 429)
        self.assertEqual(r.content, QUOTA)
        self.assertEqual(self.delta("sluice_proxy_throttle_body_peeks_total",
                                    '{limit="marked",result="no_marker"}'),
                         1.0)
        self.assertEqual(
            self.delta("sluice_proxy_upstream_throttles_total",
                       '{limit="marked",reason="retry-after"}'), 1.0)
        self.assertPaused()

    def test_body_larger_than_the_peek_arrives_byte_exact(self):
        body = LOCK + h.expected_bytes(50000)
        self.up.script("/m/big", 429, body, [("Retry-After", "5")])
        r = self.s.get(self.up.url + "/m/big", timeout=30)
        self.assertEqual(r.status_code, 429)
        self.assertEqual(len(r.content), len(body))
        self.assertEqual(r.content, body)
        self.assertIgnoredAndRunning()

    def test_chunked_body_is_matched_decoded_and_arrives_byte_exact(self):
        # 7-byte chunks: the marker is split over several of them.
        body = LOCK + h.expected_bytes(9000)
        self.up.script("/m/chunked", 429, body, [("Retry-After", "5")],
                       chunk_size=7)
        r = self.s.get(self.up.url + "/m/chunked", timeout=30)
        self.assertEqual(r.status_code, 429)
        self.assertEqual(r.headers.get("Transfer-Encoding"), "chunked")
        self.assertEqual(r.content, body)
        self.assertIgnoredAndRunning()

    def test_trailers_of_a_body_read_ahead_do_not_become_headers(self):
        self.up.script("/m/trailers", 429, LOCK, [("Retry-After", "5")],
                       chunk_size=7,
                       trailers=[("X-Trailer", "1"), ("Retry-After", "99")])
        r = self.s.get(self.up.url + "/m/trailers", timeout=30)
        self.assertEqual(r.status_code, 429)
        self.assertEqual(r.content, LOCK)
        self.assertIsNone(r.headers.get("X-Trailer"))
        self.assertEqual(r.headers.get("Retry-After"), "5")
        self.assertIgnoredAndRunning()

    def test_marker_past_the_peek_is_not_seen(self):
        body = b" " * 4096 + LOCK  # default body_peek_bytes: 4096
        self.up.script("/m/late", 429, body, [("Retry-After", "1")])
        r = self.s.get(self.up.url + "/m/late", timeout=30)
        self.assertEqual(r.status_code, 429)
        self.assertEqual(r.content, body)
        self.assertPaused()

    def test_encoded_body_is_not_matched(self):
        self.up.script("/m/gzip", 429, LOCK,
                       [("Retry-After", "1"), ("Content-Encoding", "gzip")])
        target = self.up.url + "/m/gzip"
        resp = h.raw_request(self.proxy.port, (
            "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" %
            (target, self.up.authority)).encode())
        self.assertEqual(resp.status, 429, resp)
        self.assertEqual(resp.body, LOCK)
        self.assertEqual(resp.headers.get("Content-Encoding"), "gzip")
        self.assertPaused()

    def test_head_has_no_body_to_read(self):
        self.up.script("/m/head", 429, LOCK, [("Retry-After", "1")])
        r = self.s.head(self.up.url + "/m/head", timeout=30)
        # Not a 504: sluice did not wait for a body that never comes.
        self.assertEqual(r.status_code, 429)
        self.assertEqual(r.content, b"")
        self.assertPaused()

    def test_stalled_body_is_a_504_and_judged_by_what_arrived(self):
        body = LOCK + b"x" * 5000
        # The body stalls for 60 s (or until the upstream shuts down).
        self.up.script("/m/stall", 429, body, [("Retry-After", "5")],
                       stall_after=len(LOCK) + 10, stall_seconds=60)
        t0 = time.monotonic()
        r = self.s.get(self.up.url + "/m/stall", timeout=30)
        took = time.monotonic() - t0
        self.assertEqual(r.status_code, 504, r.text)
        self.assertEqual(r.headers.get("x-sluice-error"), "upstream_timeout")
        # upstream_response (1 s), not the stall; 10 s leaves room for a
        # busy machine.
        self.assertLess(took, 10)
        self.assertEqual(self.delta("sluice_proxy_throttle_body_peeks_total",
                                    '{limit="marked",result="failed"}'), 1.0)
        # The marker had arrived: no pause, and the sidecar serves on.
        self.assertIgnoredAndRunning()


def sha(data):
    return hashlib.sha256(data).hexdigest()


class RetryBodyTest(_PauseCase):
    LIMIT = "api"
    COUNTERS = [
        ("sluice_proxy_pause_retried_total", '{limit="api"}'),
        ("sluice_proxy_pause_retry_skipped_total",
         '{limit="api",reason="body"}'),
        ("sluice_proxy_requests_total",
         '{outcome="client_timeout",route="127.0.0.1/echo/"}'),
    ]

    @classmethod
    def setUpClass(cls):
        cls.up = cls.start_class_upstream()
        cls.proxy = cls.start_class_proxy(RETRY_CONFIG)

    def assertSentTwice(self, path, body):
        seen = self.up.requests_for(path)
        self.assertEqual([x.status for x in seen], [429, 200])
        self.assertEqual([x.body_length for x in seen], [len(body)] * 2)
        self.assertEqual([x.body_sha256 for x in seen], [sha(body)] * 2)
        self.assertEqual(self.delta("sluice_proxy_pause_retried_total",
                                    '{limit="api"}'), 1.0)

    def assertNotRetried(self, r, path, body):
        self.assertEqual(r.status_code, 429)  # the upstream's own answer
        self.assertIsNone(r.headers.get("x-sluice-limited"))
        seen = self.up.requests_for(path)
        self.assertEqual([x.status for x in seen], [429])
        self.assertEqual(seen[0].body_sha256, sha(body))
        self.assertEqual(self.delta("sluice_proxy_pause_retried_total",
                                    '{limit="api"}'), 0.0)
        self.assertEqual(self.delta("sluice_proxy_pause_retry_skipped_total",
                                    '{limit="api",reason="body"}'), 1.0)

    def test_post_with_a_json_body_is_sent_again_after_the_ban(self):
        body = json.dumps({"model": "m", "input": "y" * 600}).encode()
        self.up.ban(1.0, "retry-after")
        t0 = time.monotonic()
        r = self.s.post(self.up.url + "/echo/r", data=body, timeout=30,
                        headers={"Content-Type": "application/json"})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertEqual(r.json()["body"], body.decode())
        self.assertSentTwice("/echo/r", body)

    def test_chunked_body_within_the_limit_is_sent_again(self):
        body = h.expected_bytes(900)
        self.up.ban(1.0, "retry-after")
        r = self.s.put(self.up.url + "/echo/r",
                       data=(body[i:i + 100] for i in range(0, 900, 100)),
                       timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["body_sha256"], sha(body))
        self.assertEqual(self.up.requests_for("/echo/r")[0].header(
            "Transfer-Encoding"), "chunked")
        self.assertSentTwice("/echo/r", body)

    def test_expect_100_continue_body_is_sent_again(self):
        # A client that sends its body only after 100 Continue: sluice
        # invites it once (after admission), reads it, and keeps it.
        body = b'{"q": "' + b"z" * 500 + b'"}'
        self.up.ban(1.0, "retry-after")
        with h.connect(self.proxy.port) as sock:
            sock.sendall((
                "POST %s/echo/r HTTP/1.1\r\nHost: %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n"
                "Expect: 100-continue\r\n\r\n" %
                (self.up.url, self.up.authority, len(body))).encode())
            interim = h.read_head(sock, timeout=20)
            self.assertTrue(interim.startswith(b"HTTP/1.1 100 "), interim)
            sock.sendall(body)
            resp = h.read_response(sock, "POST", timeout=30)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["body"], body.decode())
        self.assertSentTwice("/echo/r", body)
        # The origin never saw the Expect.
        self.assertIsNone(self.up.requests_for("/echo/r")[0].header("Expect"))

    def test_body_over_max_body_bytes_is_not_sent_again(self):
        body = h.expected_bytes(1001)
        self.up.ban(1.0, "retry-after")
        r = self.s.post(self.up.url + "/echo/big", data=body, timeout=30)
        self.assertNotRetried(r, "/echo/big", body)

    def test_chunked_body_over_the_limit_streams_once_intact(self):
        body = h.expected_bytes(5000)
        self.up.ban(1.0, "retry-after")
        r = self.s.post(self.up.url + "/echo/big",
                        data=(body[i:i + 700] for i in range(0, 5000, 700)),
                        timeout=30)
        self.assertNotRetried(r, "/echo/big", body)

    def test_trailers_of_a_kept_body_do_not_become_headers(self):
        resp = h.raw_request(self.proxy.port, (
            "POST %s/echo/r HTTP/1.1\r\nHost: %s\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n0\r\nHost: evil.example\r\nX-Trailer: 1\r\n\r\n"
            % (self.up.url, self.up.authority)).encode())
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["body"], "hello")
        seen = self.up.requests_for("/echo/r")[0]
        self.assertIsNone(seen.header("X-Trailer"))
        self.assertEqual([v for k, v in seen.headers if k.lower() == "host"],
                         [self.up.authority])

    def test_stalled_body_gets_408_after_body_idle(self):
        t0 = time.monotonic()
        resp = h.raw_request(self.proxy.port, (
            "POST %s/echo/r HTTP/1.1\r\nHost: %s\r\nContent-Length: 500\r\n"
            "\r\n0123456789" % (self.up.url, self.up.authority)).encode(),
            timeout=30)
        took = time.monotonic() - t0
        # As for a streamed body: the client hears why, then the
        # connection closes.
        self.assertEqual(resp.status, 408, resp)
        self.assertFalse(resp.timed_out, resp)
        self.assertGreaterEqual(took, 0.9)  # body_idle: 1s
        self.assertLess(took, 10)  # room for a busy machine
        self.assertEqual(self.up.snapshot(), [])
        self.assertEqual(
            self.delta("sluice_proxy_requests_total",
                       '{outcome="client_timeout",route="127.0.0.1/echo/"}'),
            1.0)


if __name__ == "__main__":
    unittest.main()
