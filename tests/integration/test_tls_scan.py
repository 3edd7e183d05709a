"""The TLS listener of an intercepted tunnel, scanned with testssl.sh.

A proxy intercepts 127.0.0.1 (a TLS origin, TlsUpstream); testssl.sh scans
the TLS sluice completes inside a CONNECT tunnel: the protocols offered
(-p), the cipher categories (-s) and renegotiation (-R). The assertions
read testssl's JSON findings by id, never its text output.

testssl.sh is not pointed at the proxy with --proxy: it sends its CONNECT
with bare LF line ends ("CONNECT host:port HTTP/1.0\\n\\n"), which sluice's
HTTP parser does not take as the end of a request head, so testssl would
wait and give up. Instead a relay in this test accepts testssl's
connections, opens a CONNECT tunnel through the proxy for each (CRLF, as
every HTTP client sends it) and then copies bytes both ways, so testssl
talks to sluice's TLS end exactly as a client inside a tunnel does.

testssl.sh must be installed (Debian package testssl.sh, listed in
.ci/install-deps.sh): without it the test fails rather than skips.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import sluice_harness as h

SCAN_TIMEOUT = 240


def find_testssl():
    for name in ("testssl", "testssl.sh"):
        path = shutil.which(name)
        if path:
            return path
    return None


class ConnectRelay:
    """Listens on 127.0.0.1:0; every accepted connection becomes a CONNECT
    tunnel to `target` (host, port) through the proxy at `proxy_port`, and
    bytes are copied both ways until either side closes."""

    def __init__(self, proxy_port, target):
        self.proxy_port = proxy_port
        self.target = "%s:%d" % target
        self.errors = []
        self._socks = set()
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name="connect-relay")
        self._thread.start()

    def _track(self, s):
        with self._lock:
            self._socks.add(s)

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            self._track(client)
            threading.Thread(target=self._open, args=(client,),
                             daemon=True).start()

    def _open(self, client):
        try:
            up, resp = h.open_tunnel(self.proxy_port, self.target,
                                     headers=[("Host", self.target)])
            self._track(up)
            if resp.status != 200:
                raise OSError("CONNECT refused: %d" % resp.status)
            up.settimeout(None)
        except OSError as e:
            with self._lock:
                self.errors.append(str(e))
            client.close()
            return
        threading.Thread(target=self._copy, args=(client, up),
                         daemon=True).start()
        self._copy(up, client)

    @staticmethod
    def _copy(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        # Wakes the accept loop (close alone does not interrupt a blocked
        # accept on Linux).
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            socks, self._socks = list(self._socks), set()
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


class TlsScanTest(h.ProxyTestCase):
    """One scan in setUpClass; each test checks one group of findings."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.testssl = find_testssl()
        if cls.testssl is None:
            # Fail in every test (not skip): setUpClass errors are reported
            # as errors of the class.
            raise RuntimeError("testssl.sh is not installed (apt-get install "
                               "testssl.sh; it is in .ci/install-deps.sh)")
        cls.origin = cls.start_class_upstream(h.TlsUpstream)
        cls.ca_dir = tempfile.mkdtemp(prefix="sluice-it-scan-")
        cls.addClassCleanup(shutil.rmtree, cls.ca_dir, True)
        r = h.run_proxy_cli(["ca", "init", "--out", cls.ca_dir])
        if r.returncode != 0:
            raise RuntimeError("sluice-proxy ca init failed: " + r.stderr)
        cls.proxy = cls.start_class_proxy(
            'ssrf: {allow: ["127.0.0.0/8"]}\n'
            "connect: {allowed_ports: [%d]}\n"
            "intercept:\n"
            '  hosts: ["127.0.0.1"]\n'
            '  ca: {cert: "%s", key: "%s"}\n'
            'upstream_tls: {ca_bundle: "%s"}\n' %
            (cls.origin.port, os.path.join(cls.ca_dir, "ca.pem"),
             os.path.join(cls.ca_dir, "ca-key.pem"), cls.origin.cert_path))
        cls.relay = ConnectRelay(cls.proxy.port,
                                 ("127.0.0.1", cls.origin.port))
        cls.addClassCleanup(cls.relay.close)
        cls.findings, cls.scan_output = cls._scan()

    @classmethod
    def _scan(cls):
        json_path = os.path.join(cls.ca_dir, "testssl.json")
        args = [cls.testssl, "--quiet", "--color", "0", "--warnings", "batch",
                "--nodns", "none", "--connect-timeout", "10",
                "--openssl-timeout", "10", "--jsonfile", json_path,
                "-p", "-s", "-R", "127.0.0.1:%d" % cls.relay.port]
        t0 = time.monotonic()
        r = subprocess.run(args, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True,
                           timeout=SCAN_TIMEOUT)
        output = "testssl rc=%d in %.1fs\n%s\n%s" % (
            r.returncode, time.monotonic() - t0, r.stdout, r.stderr)
        if not os.path.exists(json_path):
            raise RuntimeError("testssl wrote no JSON:\n" + output)
        with open(json_path) as f:
            doc = json.load(f)
        findings = {}
        for item in doc:
            findings.setdefault(item["id"], []).append(item)
        return findings, output

    def finding(self, finding_id):
        items = self.findings.get(finding_id)
        self.assertTrue(items, "testssl reported no %r; output:\n%s" %
                        (finding_id, self.scan_output))
        self.assertEqual(len(items), 1, items)
        return items[0]

    def assertFinding(self, finding_id, expected, prefix=False):
        item = self.finding(finding_id)
        text = item["finding"]
        ok = text.startswith(expected) if prefix else text == expected
        self.assertTrue(ok, "%s: %r, expected %r%s\n%s" %
                        (finding_id, text, expected,
                         " (prefix)" if prefix else "", self.scan_output))

    def test_scan_completed(self):
        for fatal in ("scanProblem", "scanTime"):
            for item in self.findings.get(fatal, []):
                self.assertNotIn(item["severity"], ("FATAL", "WARN"),
                                 "%s\n%s" % (item, self.scan_output))
        self.assertEqual(self.relay.errors, [])

    def test_old_protocols_not_offered(self):
        for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            with self.subTest(proto=proto):
                self.assertFinding(proto, "not offered")

    def test_tls12_and_tls13_offered(self):
        self.assertFinding("TLS1_2", "offered")
        # "offered with final" (RFC 8446) in testssl 3.0.
        self.assertFinding("TLS1_3", "offered", prefix=True)

    def test_no_weak_cipher_categories(self):
        for cat in ("NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA",
                    "AVERAGE"):
            with self.subTest(category=cat):
                # AVERAGE is testssl's "obsolete CBC ciphers".
                self.assertFinding("cipherlist_" + cat, "not offered")
        self.assertFinding("cipherlist_STRONG", "offered")

    def test_no_renegotiation(self):
        # A client asking to renegotiate is refused.
        self.assertFinding("secure_client_renego", "not vulnerable")
        # RFC 5746's extension is there (the only safe answer testssl
        # knows; "not supported" would mean legacy, insecure renegotiation).
        item = self.finding("secure_renego")
        self.assertEqual(item["severity"], "OK", item)


if __name__ == "__main__":
    unittest.main()
