"""sluice-quota-server as a process: its command line, its admin listener
(/status, /, /metrics, POST /limits), live reloads (SIGHUP and the file
watch) and a clean SIGTERM exit.

Runs the binary named by the SLUICE_QUOTA_BIN environment variable (set by
ctest); without it every test fails rather than silently skipping. The
process handling is sluice_harness.QuotaServer's; loopback port 0
everywhere.
"""

import http.client
import os
import signal
import subprocess
import tempfile
import unittest

import sluice_harness as h

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.normpath(
    os.path.join(HERE, "..", "..", "quota-server",
                 "sluice-quota-server.example.yaml"))
EXIT_TIMEOUT = 10.0
wait_until = h.wait_until


def run_cli(*args, timeout=20):
    return subprocess.run([h.quota_binary(), *args], capture_output=True,
                          text=True, timeout=timeout)


def config_text(rate, burst=10, extra=""):
    return (
        "listen: 127.0.0.1:0\n"
        "admin_listen: 127.0.0.1:0\n"
        "learning: false\n"
        "resources:\n"
        "  api:\n"
        f"    rate: {rate}\n"
        f"    burst: {burst}\n"
        f"{extra}")


class QuotaServerProcess(h.QuotaServer):
    """The harness's QuotaServer plus the admin calls these tests make."""

    def log(self):
        return self.logs()

    def request(self, method, path):
        """(status, content type, body) of one admin request."""
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port,
                                            timeout=5)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type", ""), \
                resp.read().decode()
        finally:
            conn.close()

    def rate_of(self, name):
        r = self.resource_status(name)
        return r["rate_per_second"] if r else None

    def metric(self, series):
        """Value of one sample line of /metrics, e.g.
        'sluice_quota_reloads_total{result="error"}'; None if absent."""
        code, _, body = self.request("GET", "/metrics")
        assert code == 200, (code, body)
        for line in body.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return None

    def stop(self, sig=signal.SIGTERM):
        """Sends `sig` and returns the exit code; fails if the server does
        not exit within EXIT_TIMEOUT."""
        self.send_signal(sig)
        try:
            return self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("sluice-quota-server ignored " + str(sig))


class CommandLineTest(unittest.TestCase):

    def test_help(self):
        r = run_cli("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("usage: sluice-quota-server", r.stdout)
        for flag in ("--config", "--check-config", "--version"):
            self.assertIn(flag, r.stdout)

    def test_version(self):
        r = run_cli("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^sluice-quota-server \d+\.\d+\.\d+\S*\n$")

    def test_unknown_argument_is_usage_error(self):
        r = run_cli("--frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--frobnicate", r.stderr)
        self.assertIn("usage:", r.stderr)

    def test_check_config_accepts_the_example(self):
        self.assertTrue(os.path.exists(EXAMPLE), EXAMPLE)
        r = run_cli("--config", EXAMPLE, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("valid", r.stdout)

    def _check_bad(self, text, field):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(text)
            f.flush()
            r = run_cli("--config", f.name, "--check-config")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn(field, r.stderr)
        return r

    def test_check_config_names_a_bad_field(self):
        self._check_bad(config_text(rate=-5), "resources.api.rate")
        self._check_bad(config_text(rate=5, burst=0), "resources.api.burst")
        self._check_bad(config_text(rate=5, extra="    bogus: 1\n"),
                        "resources.api.bogus")
        self._check_bad(config_text(rate=5).replace(
            "listen: 127.0.0.1:0", "listen: nowhere"), "listen")

    def test_check_config_missing_file(self):
        r = run_cli("--config", "/nonexistent/quota.yaml", "--check-config")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/nonexistent/quota.yaml", r.stderr)


class RunningServerTest(unittest.TestCase):

    def setUp(self):
        self.server = QuotaServerProcess(config_text(rate=20))
        self.path = self.server.config_path

    def tearDown(self):
        self.server.close()

    def write(self, text, keep_stamp_of=None):
        """Rewrites the config. With keep_stamp_of (an os.stat result) the
        file keeps that mtime, so only SIGHUP can notice the change (the
        watch compares mtime and size)."""
        with open(self.path, "w") as f:
            f.write(text)
        if keep_stamp_of is not None:
            os.utime(self.path, ns=(keep_stamp_of.st_atime_ns,
                                    keep_stamp_of.st_mtime_ns))

    def test_ports_and_status_json(self):
        self.assertGreater(self.server.grpc_port, 0)
        self.assertGreater(self.server.admin_port, 0)
        self.assertNotEqual(self.server.grpc_port, 7070)
        s = self.server.status()
        for key in ("epoch", "config_version", "connected_streams",
                    "resources"):
            self.assertIn(key, s)
        self.assertEqual(s["connected_streams"], 0)
        self.assertEqual([r["name"] for r in s["resources"]], ["api"])
        api = s["resources"][0]
        self.assertEqual(api["rate_per_second"], 20)
        self.assertEqual(api["burst"], 10)
        self.assertFalse(api["learning"])
        self.assertEqual(api["sidecars"], [])

    def test_status_page_html(self):
        code, ctype, body = self.server.request("GET", "/")
        self.assertEqual(code, 200)
        self.assertTrue(ctype.startswith("text/html"), ctype)
        self.assertIn("/status", body)
        self.assertIn("setInterval", body)

    def test_health_and_readiness(self):
        self.assertEqual(self.server.request("GET", "/healthz")[0], 200)
        code, _, body = self.server.request("GET", "/readyz")
        self.assertEqual(code, 200)
        self.assertIn("api", body)

    def test_post_limit_changes_status(self):
        code, _, body = self.server.request("POST", "/limits/api?rate=5")
        self.assertEqual(code, 200, body)
        self.assertEqual(wait_until(lambda: self.server.rate_of("api") == 5,
                                    timeout=10.0), True)
        self.assertEqual(self.server.status()["resources"][0]["burst"], 10)
        self.assertEqual(
            self.server.metric("sluice_quota_limit_changes_total"), 1)
        self.assertEqual(
            self.server.metric(
                'sluice_quota_limit_rate_per_second{resource="api"}'), 5)

    def test_post_limit_errors(self):
        self.assertEqual(
            self.server.request("POST", "/limits/nope?rate=5")[0], 404)
        self.assertEqual(
            self.server.request("POST", "/limits/api?rate=abc")[0], 400)
        self.assertEqual(self.server.request("POST", "/limits/api")[0], 400)
        self.assertEqual(
            self.server.request("POST", "/limits/api?rate=-1")[0], 400)
        self.assertEqual(self.server.rate_of("api"), 20)

    def test_sighup_reloads(self):
        before = os.stat(self.path)
        # Same length as the original, same mtime: only SIGHUP reloads it.
        self.write(config_text(rate=30), keep_stamp_of=before)
        self.server.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: self.server.rate_of("api") == 30,
                                   timeout=10.0), self.server.log())
        self.assertEqual(
            self.server.metric('sluice_quota_reloads_total{result="ok"}'), 1)
        self.assertGreaterEqual(self.server.status()["config_version"], 2)

    def test_file_watch_reloads(self):
        self.write(config_text(rate=44, burst=12))
        # The file is checked once a second (the deadline leaves room for a
        # busy machine).
        self.assertTrue(wait_until(lambda: self.server.rate_of("api") == 44,
                                   timeout=15.0), self.server.log())
        self.assertEqual(self.server.status()["resources"][0]["burst"], 12)

    def test_invalid_reload_keeps_the_old_limit(self):
        errors = 'sluice_quota_reloads_total{result="error"}'
        self.assertEqual(self.server.metric(errors), 0)
        self.write(config_text(rate=-3))
        self.server.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(
            lambda: (self.server.metric(errors) or 0) >= 1, timeout=10.0),
            self.server.log())
        self.assertEqual(self.server.rate_of("api"), 20)
        # The error line reaches the log through a pipe and a reader thread:
        # it may come a moment after the metric counted the failure.
        self.assertTrue(wait_until(
            lambda: "resources.api.rate" in self.server.log(), timeout=10.0),
            self.server.log())
        self.assertEqual(self.server.proc.poll(), None)  # still serving

    def test_sigterm_exits_zero(self):
        self.assertEqual(self.server.stop(signal.SIGTERM), 0,
                         self.server.log())

    def test_sigint_exits_zero(self):
        self.assertEqual(self.server.stop(signal.SIGINT), 0, self.server.log())


if __name__ == "__main__":
    unittest.main()
