"""sluice-quota-server as a process: its command line, its admin listener
(/status, /, /metrics, POST /limits), live reloads (SIGHUP and the file
watch) and a clean SIGTERM exit.

Runs the binary named by the SLUICE_QUOTA_BIN environment variable (set by
ctest); without it every test fails rather than silently skipping.
Self-contained: standard library only, loopback port 0 everywhere.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.normpath(
    os.path.join(HERE, "..", "..", "quota-server",
                 "sluice-quota-server.example.yaml"))
READY_RE = re.compile(
    r"sluice-quota-server listening grpc=(\S+):(\d+) admin=(\S+):(\d+)")
STARTUP_TIMEOUT = 10.0
EXIT_TIMEOUT = 10.0


def quota_bin():
    path = os.environ.get("SLUICE_QUOTA_BIN")
    if not path:
        raise AssertionError(
            "SLUICE_QUOTA_BIN is not set: point it at the sluice-quota-server "
            "binary (ctest sets it)")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"SLUICE_QUOTA_BIN={path} is not executable")
    return path


def run_cli(*args, timeout=20):
    return subprocess.run([quota_bin(), *args], capture_output=True,
                          text=True, timeout=timeout)


def wait_until(predicate, timeout, interval=0.02):
    """Polls predicate() until it returns a truthy value or `timeout` s
    pass; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


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


class QuotaServerProcess:
    """The binary started on a config file; its ports come from the line it
    prints on stderr. stderr is drained on a thread so logging never
    blocks the server."""

    def __init__(self, config_path):
        self.lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [quota_bin(), "--config", config_path],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        match = None

        def ready():
            nonlocal match
            with self._cond:
                for line in self.lines:
                    match = READY_RE.search(line)
                    if match:
                        return True
            return self.proc.poll() is not None

        wait_until(ready, STARTUP_TIMEOUT)
        if not match:
            self.stop()
            raise AssertionError("sluice-quota-server did not start:\n" +
                                 self.log())
        self.grpc_port = int(match.group(2))
        self.admin_port = int(match.group(4))

    def _drain(self):
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line)

    def log(self):
        with self._cond:
            return "".join(self.lines)

    def request(self, method, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port,
                                          timeout=5)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type", ""), \
                resp.read().decode()
        finally:
            conn.close()

    def status(self):
        code, ctype, body = self.request("GET", "/status")
        assert code == 200, (code, body)
        assert ctype.startswith("application/json"), ctype
        return json.loads(body)

    def rate_of(self, name):
        for r in self.status()["resources"]:
            if r["name"] == name:
                return r["rate_per_second"]
        return None

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
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("sluice-quota-server ignored " + str(sig))
        finally:
            self._reader.join(timeout=5)
            self.proc.stderr.close()


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
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "quota.yaml")
        self.write(config_text(rate=20))
        self.server = QuotaServerProcess(self.path)

    def tearDown(self):
        if self.server.proc.poll() is None:
            self.server.stop()
        self.dir.cleanup()

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
                                    timeout=1.0), True)
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
                                   timeout=1.0), self.server.log())
        self.assertEqual(
            self.server.metric('sluice_quota_reloads_total{result="ok"}'), 1)
        self.assertGreaterEqual(self.server.status()["config_version"], 2)

    def test_file_watch_reloads(self):
        self.write(config_text(rate=44, burst=12))
        # The file is checked once a second.
        self.assertTrue(wait_until(lambda: self.server.rate_of("api") == 44,
                                   timeout=5.0), self.server.log())
        self.assertEqual(self.server.status()["resources"][0]["burst"], 12)

    def test_invalid_reload_keeps_the_old_limit(self):
        errors = 'sluice_quota_reloads_total{result="error"}'
        self.assertEqual(self.server.metric(errors), 0)
        self.write(config_text(rate=-3))
        self.server.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(
            lambda: (self.server.metric(errors) or 0) >= 1, timeout=3.0),
            self.server.log())
        self.assertEqual(self.server.rate_of("api"), 20)
        self.assertIn("resources.api.rate", self.server.log())
        self.assertEqual(self.server.proc.poll(), None)  # still serving

    def test_sigterm_exits_zero(self):
        self.assertEqual(self.server.stop(signal.SIGTERM), 0,
                         self.server.log())

    def test_sigint_exits_zero(self):
        self.assertEqual(self.server.stop(signal.SIGINT), 0, self.server.log())


if __name__ == "__main__":
    unittest.main()
