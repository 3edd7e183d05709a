"""The admin listener, the command line, and graceful shutdown."""

import os
import signal
import socket
import tempfile
import threading
import time
import unittest

import sluice_harness as h

LOOPBACK = 'ssrf: {allow: ["127.0.0.0/8"]}\n'


class AdminTest(h.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = cls.start_class_upstream()
        cls.proxy = cls.start_class_proxy(LOOPBACK)

    def setUp(self):
        super().setUp()
        self.up.reset()

    def test_health_endpoints(self):
        for path in ("/healthz", "/readyz"):
            status, _, _ = h.admin_get(self.proxy.admin_port, path)
            self.assertEqual(status, 200, path)

    def test_config_shows_effective_yaml(self):
        status, _, text = h.admin_get(self.proxy.admin_port, "/config")
        self.assertEqual(status, 200)
        self.assertRegex(text, r"(?m)^listen:")
        self.assertIn("127.0.0.0/8", text)

    def test_metrics(self):
        # One proxied request so request metrics exist.
        resp = h.raw_request(self.proxy.port, (
            "GET %s/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" %
            (self.up.url, self.up.authority)).encode())
        self.assertEqual(resp.status, 200, resp)
        status, headers, text = h.admin_get(self.proxy.admin_port, "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"),
                        headers["Content-Type"])
        self.assertIn("sluice_proxy_requests_total", text)

    def test_unknown_admin_path_is_404(self):
        self.assertEqual(h.admin_get(self.proxy.admin_port, "/nope")[0], 404)

    def test_admin_never_proxies(self):
        for data in (
                ("GET %s/ HTTP/1.1\r\nHost: %s\r\n\r\n" %
                 (self.up.url, self.up.authority)).encode(),
                ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" %
                 (self.up.authority, self.up.authority)).encode()):
            resp = h.raw_request(self.proxy.admin_port, data, timeout=20)
            self.assertIsNotNone(resp.status, resp)
            self.assertGreaterEqual(resp.status, 400, resp)
            self.assertLess(resp.status, 500, resp)
        self.assertUpstreamUntouched(self.up)


class CommandLineTest(unittest.TestCase):
    def write(self, text):
        f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        self.addCleanup(os.unlink, f.name)
        with f:
            f.write(text)
        return f.name

    def test_version(self):
        r = h.run_proxy_cli(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout + r.stderr, r"sluice-proxy \S*\d")

    def test_help(self):
        r = h.run_proxy_cli(["--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--config", r.stdout + r.stderr)

    def test_check_config_names_the_bad_field(self):
        path = self.write('listen: ["127.0.0.1:0"]\n'
                          "rate_limits:\n  x: {rate: -1}\n")
        r = h.run_proxy_cli(["--check-config", "--config", path])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("rate_limits.x.rate", r.stderr)

    def test_check_config_names_an_unknown_field(self):
        path = self.write("rate_limits:\n  x: {rate: 1, bogus: 2}\n")
        r = h.run_proxy_cli(["--config", path, "--check-config"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("rate_limits.x.bogus", r.stderr)

    def test_check_config_accepts_a_good_file_and_does_not_serve(self):
        path = self.write(h.complete_config(
            "rate_limits:\n  x: {rate: 5, period: 1s}\n"
            "routes:\n  - {host: api.example.com, limit: x}\n"))
        r = h.run_proxy_cli(["--check-config", "--config", path], timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("sluice-proxy listening", r.stderr)

    def test_bad_config_fails_startup(self):
        with self.assertRaises(h.ProxyStartError) as ctx:
            h.start_proxy("timeouts: {connect: -1s}\n")
        self.assertIn("timeouts.connect", str(ctx.exception))


def refused(port):
    """True if a TCP connect to 127.0.0.1:port is refused now."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


class ShutdownTest(h.ProxyTestCase):
    # Long enough that no exit below can be the grace running out, however
    # slowly the machine runs the test; each test says when it must exit.
    GRACE = 30.0

    def test_sigterm_drains_in_flight_request_then_exits_0(self):
        up = self.start_upstream()
        go = threading.Event()
        self.addCleanup(go.set)
        up.script("/held", 200, b"drained\n", hold=go)
        proxy = self.start_proxy(LOOPBACK + "shutdown_grace: %ds\n" %
                                 self.GRACE)
        result = {}

        def slow_client():
            s = h.proxied_session(proxy)
            try:
                r = s.get(up.url + "/held", timeout=60)
                result["status"], result["body"] = r.status_code, r.content
            except Exception as e:
                result["error"] = repr(e)
            finally:
                s.close()

        t = threading.Thread(target=slow_client)
        t.start()
        self.assertTrue(h.wait_until(lambda: up.in_flight == 1, 10),
                        "the request never reached the upstream")
        proxy.send_signal(signal.SIGTERM)

        # New connections are refused while the old request is still held
        # at the upstream (it is answered only after this).
        self.assertTrue(h.wait_until(lambda: refused(proxy.port), 10),
                        "proxy still accepts connections after SIGTERM")
        self.assertEqual(up.in_flight, 1)
        self.assertTrue(proxy.alive(), "exited before the request was done")
        released = time.monotonic()
        go.set()
        t.join(30)
        self.assertNotIn("error", result)
        self.assertEqual((result["status"], result["body"]),
                         (200, b"drained\n"))

        # It exits once the request is done, not when the grace runs out.
        code = proxy.wait(self.GRACE / 2)
        self.assertEqual(code, 0, "still running %.0f s after the last "
                         "request (grace %.0f s)" % (
                             time.monotonic() - released, self.GRACE))

    def test_sigterm_when_idle_exits_promptly(self):
        proxy = self.start_proxy(LOOPBACK + "shutdown_grace: %ds\n" %
                                 self.GRACE)
        proxy.send_signal(signal.SIGTERM)
        # Nothing to drain: well before the grace could run out.
        self.assertEqual(proxy.wait(self.GRACE / 2), 0)

    def test_in_flight_request_beyond_grace_does_not_block_exit(self):
        up = self.start_upstream()
        up.script("/held", 200, hold=threading.Event())  # never released
        proxy = self.start_proxy(LOOPBACK + "shutdown_grace: 1s\n")
        t = threading.Thread(target=lambda: h.raw_request(
            proxy.port, ("GET %s/held HTTP/1.1\r\nHost: %s\r\n\r\n" % (
                up.url, up.authority)).encode(), timeout=60))
        t.start()
        self.addCleanup(t.join, 30)
        self.assertTrue(h.wait_until(lambda: up.in_flight == 1, 10))
        start = time.monotonic()
        proxy.send_signal(signal.SIGTERM)
        code = proxy.wait(30)
        self.assertIsNotNone(code, "still running 30 s after SIGTERM")
        # It waited out the grace, and exited with the request still held
        # at the upstream.
        self.assertGreaterEqual(time.monotonic() - start, 1.0 - 0.05)
        self.assertEqual(up.in_flight, 1)


if __name__ == "__main__":
    unittest.main()
