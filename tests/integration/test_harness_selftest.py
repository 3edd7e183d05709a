"""Tests of the integration harness itself. They need no sluice-proxy: the
Proxy class is exercised against a small stand-in program written to a
temporary file."""

import hashlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

import sluice_harness as h

HERE = os.path.dirname(os.path.abspath(__file__))

# A stand-in for sluice-proxy: reads --config, listens on two ephemeral ports,
# floods both pipes (to prove the harness drains them), prints the startup
# line, answers /healthz on both ports and exits 0 on SIGTERM.
FAKE_PROXY = r'''#!/usr/bin/python3
import http.server, os, signal, sys, threading
args = sys.argv[1:]
mode = args[args.index("--fake-mode") + 1] if "--fake-mode" in args else "ok"
config = open(args[args.index("--config") + 1]).read()
if mode == "exit":
    print("fatal: config says no", file=sys.stderr)
    sys.exit(3)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
if mode == "silent":
    while not stop.wait(0.05): pass
    sys.exit(0)
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = config.encode() if self.path == "/config" else b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
           for _ in range(2)]
for s in servers:
    threading.Thread(target=s.serve_forever, daemon=True).start()
for i in range(3000):
    sys.stdout.write("access line %d %s\n" % (i, "x" * 60))
    sys.stderr.write("debug line %d %s\n" % (i, "y" * 60))
sys.stdout.flush()
sys.stderr.write("sluice-proxy listening proxy=127.0.0.1:%d admin=127.0.0.1:%d\n"
                 % (servers[0].server_address[1], servers[1].server_address[1]))
sys.stderr.write("after ready\n")
sys.stderr.flush()
while not stop.wait(0.05): pass
sys.stderr.write("got SIGTERM\n")
sys.exit(0)
'''


class FakeProxyMixin:
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sluice-selftest-")
        cls.fake = os.path.join(cls.tmp, "fake-sluice-proxy")
        with open(cls.fake, "w") as f:
            f.write(FAKE_PROXY)
        os.chmod(cls.fake, 0o755)

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.tmp, ignore_errors=True)


class ProxyProcessTest(FakeProxyMixin, unittest.TestCase):
    def start(self, *extra, timeout=10):
        return h.start_proxy("rate_limits: {}\n", binary=self.fake,
                             extra_args=extra, startup_timeout=timeout)

    def test_finds_ports_drains_pipes_and_terminates(self):
        p = self.start()
        try:
            self.assertIsInstance(p.port, int)
            self.assertIsInstance(p.admin_port, int)
            self.assertNotEqual(p.port, p.admin_port)
            self.assertEqual(p.url, "http://127.0.0.1:%d" % p.port)
            status, _, body = h.admin_get(p.admin_port, "/healthz")
            self.assertEqual((status, body), (200, "ok\n"))
            # The harness added loopback listeners to the config it wrote.
            _, _, config = h.admin_get(p.port, "/config")
            self.assertIn('listen: ["127.0.0.1:0"]', config)
            self.assertIn('admin: {listen: "127.0.0.1:0"}', config)
            self.assertIn("rate_limits: {}", config)
            # Output after the ready line is still captured.
            self.assertTrue(h.wait_until(
                lambda: "after ready" in p.stderr_text(), 5))
            self.assertTrue(h.wait_until(
                lambda: "access line 2999" in p.stdout_text(), 5))
        finally:
            code = p.terminate(5)
        self.assertEqual(code, 0)
        self.assertIn("got SIGTERM", p.stderr_text())
        self.assertIn("----- stdout -----", p.logs())
        p.close()
        self.assertFalse(os.path.exists(p.tmpdir))

    def test_listen_keys_are_not_duplicated(self):
        text = h.complete_config("""
            listen: ["127.0.0.1:0", "[::1]:0"]
            admin:
              listen: "127.0.0.1:0"
            """)
        self.assertEqual(text.count("listen:"), 2)
        self.assertTrue(text.startswith("listen:"))

    def test_exit_before_ready_raises_with_logs(self):
        with self.assertRaises(h.ProxyStartError) as ctx:
            self.start("--fake-mode", "exit")
        self.assertIn("exited with 3", str(ctx.exception))
        self.assertIn("fatal: config says no", str(ctx.exception))

    def test_no_ready_line_times_out(self):
        start = time.monotonic()
        with self.assertRaises(h.ProxyStartError) as ctx:
            self.start("--fake-mode", "silent", timeout=1)
        self.assertIn("no 'sluice-proxy listening' line", str(ctx.exception))
        self.assertLess(time.monotonic() - start, 8)

    def test_missing_binary_variable_is_an_error_not_a_skip(self):
        for name, lookup in (("SLUICE_PROXY_BIN", h.proxy_binary),
                             ("SLUICE_QUOTA_BIN", h.quota_binary)):
            saved = os.environ.pop(name, None)
            try:
                with self.assertRaises(RuntimeError):
                    lookup()
                os.environ[name] = os.path.join(self.tmp, "no-such-binary")
                with self.assertRaises(RuntimeError):
                    lookup()
                with self.assertRaises(RuntimeError):
                    h.QuotaServer("resources: {}\n") if (
                        name == "SLUICE_QUOTA_BIN") else h.start_proxy("")
            finally:
                if saved is not None:
                    os.environ[name] = saved
                else:
                    os.environ.pop(name, None)

    def test_no_integration_test_skips(self):
        # A missing binary or tool must fail a test, not skip it: nothing
        # in the suite may decide to skip.
        for name in sorted(os.listdir(HERE)):
            if not name.endswith(".py") or name == os.path.basename(__file__):
                continue
            with open(os.path.join(HERE, name)) as f:
                text = f.read()
            self.assertIsNone(
                re.search(r"unittest\.skip|\bskipTest\(|"
                          r"raise\s+(unittest\.)?SkipTest", text),
                "%s may skip tests" % name)


class LimiterTest(unittest.TestCase):
    def test_token_bucket_burst_then_rate(self):
        b = h.TokenBucket(rate=10, period=1.0, burst=3)
        self.assertEqual([b.take(0.0)[0] for _ in range(4)],
                         [True, True, True, False])
        allowed, wait = b.take(0.0)
        self.assertFalse(allowed)
        self.assertAlmostEqual(wait, 0.1)
        self.assertTrue(b.take(0.1)[0])
        self.assertFalse(b.take(0.15)[0])
        self.assertTrue(b.take(10.0)[0])  # Refilled, but capped at burst:
        self.assertTrue(b.take(10.0)[0])
        self.assertTrue(b.take(10.0)[0])
        self.assertFalse(b.take(10.0)[0])

    def test_token_bucket_never_exceeds_burst_plus_rate_times_time(self):
        b = h.TokenBucket(rate=20, period=1.0, burst=5)
        admitted = sum(b.take(i * 0.001)[0] for i in range(3000))  # 3 s
        self.assertEqual(admitted, 5 + int(20 * 2.999))

    def test_spend_bound_exact_pacing_is_within(self):
        # Burst 3 at once, then one token every 1/18 s: exactly the bound.
        points = [0.0] * 3 + [k / 18 for k in range(1, 40)]
        worst = h.spend_bound_excess([(t, t) for t in points], 18, 3)
        self.assertAlmostEqual(worst.excess, 0.0)
        # One more token anywhere is one too many: from 0 to any later
        # spend, the window holds one request more than it allows.
        worst = h.spend_bound_excess([(t, t) for t in points + [1.01]], 18, 3)
        self.assertAlmostEqual(worst.excess, 1.0)
        self.assertEqual(worst.a, 0.0)
        self.assertGreater(worst.b, 1.01)

    def test_spend_bound_counts_only_intervals_inside_a_window(self):
        # Four spends that might have been at one moment, but whose
        # intervals only show them spread over a second: not an overspend
        # of burst 1 at 4/s...
        wide = [(0.0, 1.0)] * 4
        self.assertLessEqual(h.spend_bound_excess(wide, 4, 1).excess, 0)
        # ...while narrow intervals at one moment are.
        narrow = [(0.5, 0.5)] * 4
        worst = h.spend_bound_excess(narrow, 4, 1)
        self.assertEqual((worst.count, worst.excess), (4, 3))
        # Mixed: the window [0.5, 0.6] holds the three narrow ones only.
        worst = h.spend_bound_excess(narrow[:3] + [(0.2, 0.6)], 10, 1)
        self.assertEqual((worst.count, worst.a, worst.b), (3, 0.5, 0.5))
        self.assertIsNone(h.spend_bound_excess([], 1, 1))
        with self.assertRaises(ValueError):
            h.spend_bound_excess([(1.0, 0.5)], 1, 1)

    def test_ban_headers_never_say_less_than_remaining(self):
        for remaining in (0.0004, 1.2344, 1.9999, 2.0):
            _, headers = h.ban_headers("openai", remaining)
            said = dict(headers)["x-ratelimit-reset-requests"]
            self.assertGreaterEqual(float(said.rstrip("s")), remaining)
            _, headers = h.ban_headers("discord", remaining)
            said = dict(headers)["X-RateLimit-Reset-After"]
            self.assertGreaterEqual(float(said), remaining)
            _, headers = h.ban_headers("retry-after-ms", remaining)
            said = dict(headers)["retry-after-ms"]
            self.assertGreaterEqual(int(said) / 1000, remaining)

    def test_sliding_window(self):
        w = h.SlidingWindow(limit=2, period=1.0)
        self.assertTrue(w.take(0.0)[0])
        self.assertTrue(w.take(0.5)[0])
        allowed, wait = w.take(0.6)
        self.assertFalse(allowed)
        self.assertAlmostEqual(wait, 0.4)
        self.assertTrue(w.take(1.0)[0])


class UpstreamTest(unittest.TestCase):
    def setUp(self):
        self.up = h.RateLimitedUpstream()
        self.addCleanup(self.up.close)

    def request(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.up.port,
                                                  timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.msg, r.read()
        finally:
            if own:
                conn.close()

    def test_limit_returns_429_with_retry_after_beyond_burst(self):
        up = h.RateLimitedUpstream(rate=5, period=60, burst=5)
        self.addCleanup(up.close)
        conn = http.client.HTTPConnection("127.0.0.1", up.port, timeout=10)
        self.addCleanup(conn.close)
        results = []
        for _ in range(8):
            conn.request("GET", "/")
            r = conn.getresponse()
            results.append((r.status, r.getheader("Retry-After")))
            r.read()
        self.assertEqual([s for s, _ in results], [200] * 5 + [429] * 3)
        self.assertTrue(all(int(ra) >= 1 for s, ra in results if s == 429))
        self.assertEqual((up.count_200, up.count_429), (5, 3))
        self.assertEqual(up.connections_accepted, 1)  # Keep-alive held.
        up.reset()
        self.assertEqual(self.request_to(up, "/"), 200)
        self.assertEqual(up.count_200, 1)

    def request_to(self, up, path):
        status, _, _ = h.http_get(up.port, path)
        return status

    def test_real_time_rate_is_enforced(self):
        up = h.RateLimitedUpstream(rate=10, period=1.0, burst=2)
        self.addCleanup(up.close)
        start = time.monotonic()
        codes = [h.http_get(up.port, "/")[0] for _ in range(12)]
        elapsed = time.monotonic() - start
        self.assertLessEqual(codes.count(200), 2 + 10 * elapsed + 1e-6)
        # Each answer is exactly what the bucket says for the moment the
        # request arrived, however fast or slow the requests came.
        records = sorted(up.snapshot(), key=lambda r: r.t)
        self.assertEqual([r.status for r in records], codes)
        bucket = h.TokenBucket(rate=10, period=1.0, burst=2)
        self.assertEqual(codes, [200 if bucket.take(r.t)[0] else 429
                                 for r in records])
        self.assertEqual(codes[:2], [200, 200])

    def test_echo_reports_headers_and_body(self):
        status, _, body = self.request(
            "POST", "/echo?x=1", body=b"hello",
            headers={"X-Test": "a", "Content-Type": "text/plain"})
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertEqual(doc["method"], "POST")
        self.assertEqual(doc["target"], "/echo?x=1")
        self.assertEqual(doc["path"], "/echo")
        self.assertEqual(doc["body"], "hello")
        self.assertEqual(doc["body_length"], 5)
        self.assertEqual(doc["body_sha256"],
                         hashlib.sha256(b"hello").hexdigest())
        self.assertIn(["X-Test", "a"], doc["headers"])
        rec = self.up.requests_for("/echo")[0]
        self.assertEqual(rec.header("x-test"), "a")
        self.assertIn("content-type", rec.header_names())

    def test_chunked_request_body_is_decoded(self):
        def gen():
            yield b"abc"
            yield b"defgh"
        conn = http.client.HTTPConnection("127.0.0.1", self.up.port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("POST", "/echo", body=gen(), encode_chunked=True)
        r = conn.getresponse()
        doc = json.loads(r.read())
        self.assertEqual(r.status, 200)
        self.assertEqual(doc["body"], "abcdefgh")
        self.assertIn(["Transfer-Encoding", "chunked"], doc["headers"])

    def test_bad_chunk_is_rejected_and_not_recorded_complete(self):
        resp = h.raw_request(
            self.up.port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"\r\nzz\r\nhello\r\n0\r\n\r\n")
        self.assertEqual(resp.status, 400)
        self.assertEqual(self.up.requests_for("/echo"), [])
        self.assertEqual(len(self.up.incomplete), 1)

    def test_truncated_body_is_incomplete(self):
        with h.connect(self.up.port) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10"
                      b"\r\n\r\nabc")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(s.recv(100), b"")
        self.assertTrue(h.wait_until(lambda: len(self.up.incomplete) == 1, 20))
        self.assertEqual(self.up.snapshot(), [])

    def test_bytes_streams_chunked_pattern(self):
        n = 300_001
        status, headers, body = self.request("GET", "/bytes/%d" % n)
        self.assertEqual(status, 200)
        self.assertEqual(headers["Transfer-Encoding"], "chunked")
        self.assertIsNone(headers["Content-Length"])
        self.assertEqual(len(body), n)
        self.assertEqual(body, h.expected_bytes(n))
        self.assertEqual(body[251:253], b"\x00\x01")

    def test_head_has_length_but_no_body(self):
        resp = h.raw_request(self.up.port,
                             b"HEAD /bytes/1234 HTTP/1.1\r\nHost: x\r\n"
                             b"Connection: close\r\n\r\n")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.headers["Content-Length"], "1234")
        self.assertEqual(resp.body, b"")
        self.assertTrue(resp.raw.endswith(b"\r\n\r\n"))

    def test_status_endpoint(self):
        self.assertEqual(self.request("GET", "/status/503")[0], 503)
        status, headers, body = self.request("GET", "/status/204")
        self.assertEqual((status, body), (204, b""))
        self.assertEqual(self.up.status_counts, {503: 1, 204: 1})

    def test_scripted_replies_win_over_a_ban_until_reset(self):
        body = b'{"code": "lock_timeout"}' + bytes(range(256)) * 20
        self.up.script("/s/cl", 429, body, [("Retry-After", "3")])
        self.up.script("/s/chunked", 429, body, chunk_size=7,
                       trailers=[("X-T", "1")])
        self.up.ban(5)
        status, headers, got = self.request("GET", "/s/cl")
        self.assertEqual((status, got), (429, body))
        self.assertEqual(headers["Retry-After"], "3")
        self.assertEqual(headers["Content-Length"], str(len(body)))
        resp = h.raw_request(self.up.port,
                             b"GET /s/chunked HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual((resp.status, resp.body), (429, body))
        self.assertEqual(resp.headers["Transfer-Encoding"], "chunked")
        self.assertIn(b"\r\n7\r\n", resp.raw)
        self.assertTrue(resp.raw.endswith(b"\r\n0\r\nX-T: 1\r\n\r\n"))
        resp = h.raw_request(self.up.port,
                             b"HEAD /s/cl HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual((resp.status, resp.body), (429, b""))
        self.assertEqual(self.request("GET", "/other")[0], 429)  # the ban
        self.assertEqual([r.status for r in self.up.snapshot()],
                         [429, 429, 429, 429])
        self.up.reset()
        self.assertEqual(self.request("GET", "/s/cl")[0], 200)

    def test_scripted_stall_sends_part_of_the_body_then_hangs(self):
        self.up.script("/s/stall", 200, b"x" * 100, stall_after=10,
                       stall_seconds=0.5)
        with h.connect(self.up.port) as sock:
            sock.sendall(b"GET /s/stall HTTP/1.1\r\nHost: x\r\n\r\n")
            start = time.monotonic()
            resp = h.read_response(sock, timeout=20)
            took = time.monotonic() - start
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, b"x" * 10)
        self.assertTrue(resp.eof)  # closed mid-body
        self.assertGreaterEqual(took, 0.45)

    def test_slow_delays_the_head(self):
        start = time.monotonic()
        status, _, body = self.request("GET", "/slow/300")
        self.assertEqual((status, body), (200, b"slow ok\n"))
        self.assertGreaterEqual(time.monotonic() - start, 0.29)

    def test_in_flight_is_visible_while_slow(self):
        t = threading.Thread(target=self.request, args=("GET", "/slow/800"))
        t.start()
        self.assertTrue(h.wait_until(lambda: self.up.in_flight == 1, 20))
        t.join(10)
        self.assertFalse(t.is_alive())
        # The client has its answer, so the upstream has already stopped
        # counting the request (no waiting: it does so before answering).
        self.assertEqual(self.up.in_flight, 0)
        self.assertEqual(len(self.up.requests_for("/slow/800")), 1)

    def test_held_reply_stays_in_flight_until_released(self):
        go = threading.Event()
        self.up.script("/held", 202, b"released", hold=go)
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=self.request("GET", "/held")))
        t.start()
        self.assertTrue(h.wait_until(lambda: self.up.in_flight == 1, 20))
        self.assertTrue(t.is_alive())
        go.set()
        t.join(10)
        self.assertEqual(result["r"][0], 202)
        self.assertEqual(result["r"][2], b"released")
        self.assertEqual(self.up.in_flight, 0)

    def test_held_reply_is_dropped_when_the_upstream_closes(self):
        up = h.RateLimitedUpstream()
        up.script("/held", 200, hold=threading.Event())
        result = {}
        t = threading.Thread(target=lambda: result.update(r=h.raw_request(
            up.port, b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n",
            timeout=30)))
        t.start()
        self.assertTrue(h.wait_until(lambda: up.in_flight == 1, 20))
        up.close()
        t.join(30)
        self.assertFalse(t.is_alive())
        # Closed without an answer (not the client's timeout)...
        self.assertIsNone(result["r"].status)
        self.assertTrue(result["r"].eof, result["r"])
        # ...and the handler, which close() does not wait for, ends the
        # request's time in flight once it sees the shutdown.
        self.assertTrue(h.wait_until(lambda: up.in_flight == 0, 10))

    def test_expect_100_continue(self):
        with h.connect(self.up.port) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                      b"Expect: 100-continue\r\n\r\n")
            s.settimeout(5)
            interim = b""
            while not interim.endswith(b"\r\n\r\n"):
                interim += s.recv(1)
            self.assertTrue(interim.startswith(b"HTTP/1.1 100"), interim)
            s.sendall(b"body")
            resp = h.read_response(s, "POST")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json()["body"], "body")

    def test_origin_that_never_sends_100(self):
        with h.connect(self.up.port) as s:
            s.sendall(b"POST /echo?no-100 HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            readable = h.select.select([s], [], [], 0.5)[0]
            self.assertEqual(readable, [])  # Nothing until the body comes.
            s.sendall(b"body")
            resp = h.read_response(s, "POST")
        self.assertEqual(resp.status, 200)
        self.assertNotIn(b"100 Continue", resp.raw)

    def test_keep_alive_and_connection_counter(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.up.port, timeout=10)
        self.addCleanup(conn.close)
        for _ in range(3):
            self.assertEqual(self.request("GET", "/", conn=conn)[0], 200)
        self.assertEqual(self.up.connections_accepted, 1)
        self.assertEqual(self.up.total_activity(), 1 + 3)
        self.assertEqual(len(self.up.snapshot()), 3)

    def test_close_wakes_idle_connections(self):
        up = h.RateLimitedUpstream()
        s = h.connect(up.port)
        self.addCleanup(s.close)
        self.assertTrue(h.wait_until(lambda: up.connections_accepted == 1, 20))
        start = time.monotonic()
        up.close()
        s.settimeout(5)
        self.assertEqual(s.recv(10), b"")
        self.assertLess(time.monotonic() - start, 5)


class TlsUpstreamTest(unittest.TestCase):
    def test_https_with_generated_cert(self):
        with h.TlsUpstream() as up:
            for host in ("localhost", "127.0.0.1"):
                conn = http.client.HTTPSConnection(
                    host, up.port, timeout=10, context=up.client_context())
                conn.request("GET", "/echo")
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                self.assertEqual(json.loads(r.read())["path"], "/echo")
                conn.close()
            self.assertEqual(up.count_200, 2)
            self.assertTrue(up.url.startswith("https://127.0.0.1:"))

    def test_untrusted_client_fails_handshake(self):
        with h.TlsUpstream() as up:
            ctx = ssl.create_default_context()  # Does not trust our cert.
            conn = http.client.HTTPSConnection("localhost", up.port,
                                               timeout=10, context=ctx)
            with self.assertRaises(ssl.SSLError):
                conn.request("GET", "/")
            conn.close()
            self.assertTrue(h.wait_until(
                lambda: up.tls_handshake_failures == 1, 5))
            self.assertEqual(up.snapshot(), [])


class _ScriptedServer:
    """A socket server that runs `behaviour(conn)` for each connection."""

    def __init__(self, behaviour):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.behaviour = behaviour
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        conn, _ = self.sock.accept()
        with conn:
            self.behaviour(self, conn)

    def close(self):
        self.sock.close()
        self.thread.join(5)


class RawSocketHelpersTest(unittest.TestCase):
    def scripted(self, behaviour):
        s = _ScriptedServer(behaviour)
        self.addCleanup(s.close)
        return s

    def test_raw_request_parses_and_keeps_raw_bytes(self):
        with h.RateLimitedUpstream() as up:
            status, headers, body, raw = h.raw_request(
                up.port, b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(json.loads(body)["target"], "/echo")
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "))
        self.assertTrue(raw.endswith(body))

    def test_raw_request_smuggling_gets_400_from_upstream(self):
        with h.RateLimitedUpstream() as up:
            resp = h.raw_request(
                up.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5"
                b"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            self.assertEqual(up.snapshot(), [])
        self.assertEqual(resp.status, 400)
        self.assertIn(b"both Transfer-Encoding and Content-Length", resp.body)

    def test_raw_request_keeps_unparsable_replies_raw(self):
        # http.server answers a garbage request line HTTP/0.9-style: a body
        # with no status line. raw_request reports that instead of guessing.
        with h.RateLimitedUpstream() as up:
            resp = h.raw_request(up.port, b"this is not http\r\n\r\n")
        self.assertIsNone(resp.status)
        self.assertIn("unparsable", resp.error)
        self.assertIn(b"Error code: 400", resp.raw)

    def test_close_without_reply(self):
        def behaviour(srv, conn):
            srv.received += conn.recv(100)
        srv = self.scripted(behaviour)
        resp = h.raw_request(srv.port, b"GET / HTTP/1.1\r\n\r\n", timeout=20)
        self.assertIsNone(resp.status)
        self.assertTrue(resp.eof)
        self.assertFalse(resp.timed_out)

    def test_no_reply_times_out(self):
        done = threading.Event()

        def behaviour(srv, conn):
            done.wait(10)
        srv = self.scripted(behaviour)
        start = time.monotonic()
        resp = h.raw_request(srv.port, b"GET / HTTP/1.1\r\n\r\n", timeout=0.5)
        done.set()
        self.assertIsNone(resp.status)
        self.assertTrue(resp.timed_out)
        self.assertLess(time.monotonic() - start, 5)

    def test_unparsable_reply(self):
        def behaviour(srv, conn):
            conn.recv(100)
            conn.sendall(b"NOT-HTTP garbage\r\n\r\n")
        srv = self.scripted(behaviour)
        resp = h.raw_request(srv.port, b"GET / HTTP/1.1\r\n\r\n", timeout=20)
        self.assertIsNone(resp.status)
        self.assertIn(b"garbage", resp.raw)
        self.assertIn("unparsable", resp.error)

    def test_slow_send_drips_until_the_server_answers(self):
        def behaviour(srv, conn):
            # Answers once three drip bytes have come (or after 20 s).
            conn.settimeout(20)
            while srv.received.count(b"a") < 3:
                try:
                    data = conn.recv(100)
                except socket.timeout:
                    break
                if not data:
                    break
                srv.received += data
            conn.sendall(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0"
                         b"\r\nConnection: close\r\n\r\n")
        srv = self.scripted(behaviour)
        resp, elapsed, dripped = h.slow_send(
            srv.port, b"GET http://x/ HTTP/1.1\r\nX-Slow: ", timeout=30,
            drip=b"a", drip_interval=0.1)
        self.assertEqual(resp.status, 408)
        self.assertGreaterEqual(dripped, 3)
        # A byte is dripped only after drip_interval of silence.
        self.assertGreaterEqual(elapsed, 3 * 0.1)
        self.assertTrue(srv.received.startswith(b"GET http://x/"))
        self.assertTrue(srv.received.endswith(b"a" * 3))

    def test_slow_send_times_out_when_server_is_silent(self):
        done = threading.Event()

        def behaviour(srv, conn):
            done.wait(10)
        srv = self.scripted(behaviour)
        resp, elapsed, _ = h.slow_send(srv.port, b"GET / HTTP/1.1\r\n",
                                       timeout=0.3)
        done.set()
        self.assertTrue(resp.timed_out)
        self.assertIsNone(resp.status)
        self.assertGreaterEqual(elapsed, 0.3)

    def test_open_tunnel_leaves_tunnel_bytes_in_socket(self):
        def behaviour(srv, conn):
            srv.received += conn.recv(1000)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n"
                         b"tunnel-data")
        srv = self.scripted(behaviour)
        sock, resp = h.open_tunnel(srv.port, "example.test:443",
                                   version="HTTP/1.0")
        with sock:
            self.assertEqual(resp.status, 200)
            self.assertEqual(sock.recv(100), b"tunnel-data")
        self.assertEqual(bytes(srv.received),
                         b"CONNECT example.test:443 HTTP/1.0\r\n\r\n")

    def test_closed_port_refuses(self):
        port = h.closed_port()
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)


class DemoUpstreamTest(unittest.TestCase):
    def test_demo_prints_per_second_counts(self):
        with tempfile.TemporaryDirectory() as d:
            port_file = os.path.join(d, "port")
            proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "demo_upstream.py"),
                 "--port", "0", "--rate", "10", "--period", "1", "--burst",
                 "5", "--port-file", port_file],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            lines = []
            try:
                self.assertTrue(h.wait_until(
                    lambda: os.path.exists(port_file) or proc.poll() is not None,
                    10))
                with open(port_file) as f:
                    port = int(f.read())
                codes = [h.http_get(port, "/")[0] for _ in range(8)]
                self.assertGreaterEqual(codes.count(200), 5)
                self.assertEqual(codes.count(200) + codes.count(429), 8)
                # Per-second lines; once the second in which the last answer
                # went out is over, their sums are the totals.
                for _ in range(60):
                    lines.append(proc.stdout.readline())
                    self.assertRegex(lines[-1], r"^t=\d+s 200s=\d+ 429s=\d+\n$")
                    counts = [list(map(int, re.findall(r"=(\d+)", l)[1:]))
                              for l in lines]
                    if (sum(c[0] for c in counts) == codes.count(200) and
                            sum(c[1] for c in counts) == codes.count(429)):
                        break
                else:
                    self.fail("counts never added up: %r vs %r" % (lines, codes))
            finally:
                proc.send_signal(signal.SIGTERM)
                out, err = proc.communicate(timeout=10)
            self.assertEqual(proc.returncode, 0, err)


if __name__ == "__main__":
    unittest.main()
