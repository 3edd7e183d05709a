"""Malformed, oversized, slow and unroutable requests over raw sockets. Each
gets the right status, the origin is not dialled (where sluice can know
before dialling), and the proxy survives all of it."""

import time
import unittest

import sluice_harness as h

CONFIG = """
ssrf: {allow: ["127.0.0.0/8"]}
limits: {max_header_bytes: 4096, max_uri_bytes: 1024}
timeouts: {header_read: 1s, upstream_response: 1s, connect: 2s,
           body_idle: 1s}
connect: {allowed_ports: [443]}
"""


class BadInputTest(h.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = cls.start_class_upstream()
        cls.proxy = cls.start_class_proxy(CONFIG)

    def setUp(self):
        super().setUp()
        self.up.reset()

    def tearDown(self):
        # After every bad input the process is alive and still proxies.
        self.assertIsNone(self.proxy.poll(), "sluice-proxy died")
        self.assertEqual(h.admin_get(self.proxy.admin_port, "/healthz")[0], 200)
        resp = self.send(self.get_head("/after"))
        self.assertEqual(resp.status, 200, resp)

    # -- helpers -------------------------------------------------------------
    def get_head(self, path="/", extra=(), method="GET"):
        lines = ["%s %s%s HTTP/1.1" % (method, self.up.url, path),
                 "Host: %s" % self.up.authority, *extra]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send(self, data, timeout=20):
        return h.raw_request(self.proxy.port, data, timeout=timeout)

    def assertRejected(self, data, status):
        resp = self.send(data)
        self.assertEqual(resp.status, status, resp)
        self.assertUpstreamUntouched(self.up)
        return resp

    def assertBodyRejected(self, data):
        """For errors found while streaming a body: the origin may have been
        dialled, but the client sees 400 (or a close) and the origin never
        gets a complete request, nor the malformed bytes."""
        resp = self.send(data)
        if resp.status is None:
            self.assertTrue(resp.eof and not resp.timed_out, resp)
        else:
            self.assertEqual(resp.status, 400, resp)
            self.assertNotIn(b"bad body", resp.body,
                             "the origin, not sluice, rejected the body")
        h.wait_until(lambda: self.up.in_flight == 0, 3)
        self.assertEqual(self.up.requests_for("/echo"), [])
        self.assertFalse(
            [why for _, why in self.up.incomplete if "chunk" in why],
            "malformed chunk framing reached the origin")

    # -- framing / syntax ----------------------------------------------------
    def test_origin_form_request_explains_proxy_use(self):
        data = ("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" %
                self.up.authority).encode()
        resp = self.assertRejected(data, 400)
        text = resp.text().lower()
        self.assertTrue("absolute" in text or "http_proxy" in text,
                        "400 body does not explain proxy use: %r" % text)

    def test_content_length_and_transfer_encoding(self):
        self.assertRejected(self.get_head(
            "/echo", ["Content-Length: 5", "Transfer-Encoding: chunked"],
            "POST") + b"0\r\n\r\n", 400)

    def test_two_different_content_lengths(self):
        self.assertRejected(self.get_head(
            "/echo", ["Content-Length: 5", "Content-Length: 6"], "POST") +
            b"hello!", 400)

    def test_chunked_not_last_coding(self):
        self.assertRejected(self.get_head(
            "/echo", ["Transfer-Encoding: chunked, gzip"], "POST") +
            b"0\r\n\r\n", 400)

    def test_obs_fold(self):
        self.assertRejected(self.get_head("/", ["X-A: 1", "  continued"]), 400)

    def test_whitespace_before_colon_on_host(self):
        data = ("GET %s/ HTTP/1.1\r\nHost : x\r\n\r\n" % self.up.url).encode()
        self.assertRejected(data, 400)

    def test_whitespace_before_colon_on_other_header(self):
        self.assertRejected(self.get_head("/", ["X-Foo : 1"]), 400)

    def test_garbage_request_line(self):
        self.assertRejected(b"this is not http\r\n\r\n", 400)

    def test_bad_chunk_size(self):
        self.assertBodyRejected(self.get_head(
            "/echo", ["Transfer-Encoding: chunked"], "POST") +
            b"zz\r\nhello\r\n0\r\n\r\n")

    def test_chunk_size_overflow(self):
        self.assertBodyRejected(self.get_head(
            "/echo", ["Transfer-Encoding: chunked"], "POST") +
            b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n")

    def test_bare_lf_in_chunk_line(self):
        self.assertBodyRejected(self.get_head(
            "/echo", ["Transfer-Encoding: chunked"], "POST") +
            b"5\nhello\r\n0\r\n\r\n")

    def test_bare_lf_head_is_refused_at_once(self):
        # Without a CRLF blank line the head never ends: without this rule
        # the answer would be the 408 at the head deadline.
        for data in (b"GET %s/echo HTTP/1.1\nHost: x\n\n" %
                     self.up.url.encode(),
                     b"CONNECT %s HTTP/1.0\n\n" % self.up.authority.encode()):
            resp = self.assertRejected(data, 400)
            self.assertEqual(resp.headers.get("x-sluice-error"), "bare_lf",
                             resp)

    def test_a_crlf_split_across_reads_is_not_a_bare_lf(self):
        # One byte at a time, 50 ms apart: every CR and its LF come in reads
        # of their own, and the head only ends at the 408.
        resp, _, dripped = h.slow_send(
            self.proxy.port,
            b"GET %s/echo HTTP/1.1\r\nHost: x\r\nX-A: 1" % self.up.url.encode(),
            timeout=5, drip=b"\r\nX-B: 2", drip_interval=0.05)
        self.assertGreater(dripped, 2)
        self.assertEqual(resp.status, 408, resp)

    def test_a_fold_split_across_reads_is_refused_at_once(self):
        resp, _, _ = h.slow_send(
            self.proxy.port,
            b"GET %s/echo HTTP/1.1\r\nHost: x\r\nX-A: 1" % self.up.url.encode(),
            timeout=5, drip=b"\r\n folded", drip_interval=0.05)
        self.assertEqual(resp.status, 400, resp)
        self.assertEqual(resp.headers.get("x-sluice-error"), "obs_fold", resp)

    # -- limits --------------------------------------------------------------
    def test_header_block_too_large(self):
        pad = ["X-Pad-%02d: %s" % (i, "a" * 80) for i in range(55)]  # ~5 KB
        data = self.get_head("/", pad)
        self.assertGreater(len(data), 4096)
        self.assertRejected(data, 431)

    def test_uri_too_long(self):
        data = self.get_head("/" + "u" * 1100)
        self.assertLess(len(data), 4096)  # Only the URI is over its limit.
        self.assertRejected(data, 414)

    # -- time ----------------------------------------------------------------
    # Each timer below is 1 s. A test asserts that the answer came no sooner
    # than its timer allows, and no later than TIMER_MARGIN: far beyond a
    # 1 s timer on a busy machine, yet short of what any other timer or the
    # client giving up would take.
    TIMER_MARGIN = 10.0

    def test_slowloris_gets_408(self):
        # Keep dripping bytes: an idle timer alone would never fire, only a
        # deadline for the whole head does.
        head = ("GET %s/ HTTP/1.1\r\nHost: %s\r\nX-Slow: " %
                (self.up.url, self.up.authority)).encode()
        resp, elapsed, dripped = h.slow_send(
            self.proxy.port, head, timeout=self.TIMER_MARGIN, drip=b"a",
            drip_interval=0.2)
        self.assertEqual(resp.status, 408, resp)
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertGreater(dripped, 0)
        self.assertUpstreamUntouched(self.up)

    def test_stalled_request_body_gets_408(self):
        # The head arrives, then 10 of the 500 body bytes, then nothing: the
        # client is told (408) before the connection closes.
        start = time.monotonic()
        resp = self.send((
            "POST %s/echo HTTP/1.1\r\nHost: %s\r\nContent-Length: 500\r\n"
            "\r\n0123456789" % (self.up.url, self.up.authority)).encode(),
            timeout=3 * self.TIMER_MARGIN)
        elapsed = time.monotonic() - start
        self.assertEqual(resp.status, 408, resp)
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertLess(elapsed, self.TIMER_MARGIN)

    def test_upstream_that_never_answers_gets_504(self):
        # The upstream would answer after 60 s (or when it shuts down).
        start = time.monotonic()
        resp = self.send(self.get_head("/slow/60000"),
                         timeout=3 * self.TIMER_MARGIN)
        elapsed = time.monotonic() - start
        self.assertEqual(resp.status, 504, resp)
        self.assertLess(elapsed, self.TIMER_MARGIN)
        self.assertGreaterEqual(elapsed, 0.8)

    # -- routing -------------------------------------------------------------
    def test_unreachable_upstream_gets_502(self):
        port = h.closed_port()
        data = ("GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                "\r\n" % (port, port)).encode()
        resp = self.send(data)
        self.assertEqual(resp.status, 502, resp)

    def test_connect_to_port_not_allowed(self):
        target = self.up.authority  # Loopback is allowed; the port is not.
        self.assertRejected(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" %
                             (target, target)).encode(), 403)

    def test_zz_process_survived_everything(self):
        # Runs last (unittest sorts by name); tearDown checks /healthz too.
        self.assertTrue(self.proxy.alive())
        self.assertIn("sluice-proxy listening", self.proxy.stderr_text())


if __name__ == "__main__":
    unittest.main()
