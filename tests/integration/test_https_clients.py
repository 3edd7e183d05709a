"""Real HTTPS clients through an intercepted tunnel (docs/https.md).

The origin is a TLS server with a certificate from its own test CA
(tls_harness.OriginPki), limited to ORIGIN_RATE req/s with a burst of
ORIGIN_BURST (429 + Retry-After beyond). sluice intercepts 127.0.0.1 with
a CA made by `sluice-proxy ca init`, verifies the origin against the test
CA (upstream_tls.ca_bundle), and limits the route /echo (scheme: https, so
only requests read inside an intercepted tunnel match) to PROXY_RATE req/s
with a burst of PROXY_BURST; max_wait lets requests queue instead of
getting a local 429.

Each client, configured the way docs/https.md tells apps (proxy and trust
from the environment, or in code where the client has no variable), sends
COUNT GETs and COUNT POSTs of a BODY_SIZE body, one after another on its
own. Checked for every client:
  * every response is the origin's 200 echo of that request: method, path
    and the SHA-256 and length of the body the client sent;
  * the origin recorded exactly those requests and answered no 429;
  * sluice's limit paced them: 2 * COUNT exceeds ORIGIN_BURST, every
    request after the first was released after the first reached the
    origin (each waits for the previous answer), so the first and the last
    arrival are at least (2 * COUNT - 1 - PROXY_BURST) / PROXY_RATE apart,
    however the machine schedules; and the limit admitted exactly 2 * COUNT;
  * the client's handshakes were intercepted (tunnels read as TLS).
A missing client (curl, node and the pinned undici, java) fails the test.
"""

import hashlib
import json
import os
import shutil
import tempfile
import unittest

import sluice_harness as h
import test_quota as tq
import tls_harness as tlsh

ORIGIN_RATE, ORIGIN_BURST = 5, 4
PROXY_RATE, PROXY_BURST = 4, 1
COUNT = 6           # GETs, and as many POSTs, per client
BODY_SIZE = 10 * 1024
BODY = tlsh.client_body(BODY_SIZE)
BODY_SHA256 = hashlib.sha256(BODY).hexdigest()

CONFIG = """
ssrf: {allow: ["127.0.0.0/8"]}
connect: {allowed_ports: [%(port)d]}
intercept:
  hosts: ["127.0.0.1"]
  ca: {cert: "%(ca)s", key: "%(key)s"}
upstream_tls: {ca_bundle: "%(origin_ca)s"}
rate_limits:
  api: {rate: %(rate)d, period: 1s, burst: %(burst)d, max_wait: 60s}
routes:
  - {host: 127.0.0.1, scheme: https, path_prefix: /echo, limit: api}
"""

NODE_DIR = os.path.join(tlsh.HERE, "node")
JAVA_DIR = os.path.join(tlsh.HERE, "java")
PY_CLIENT = os.path.join(tlsh.HERE, "clients", "py_client.py")


def node_modules():
    """Where `npm ci` put tests/integration/node's packages: the build
    tree under ctest ($SLUICE_NODE_MODULES), else next to package.json."""
    return os.environ.get("SLUICE_NODE_MODULES",
                          os.path.join(NODE_DIR, "node_modules"))


class HttpsClientsTest(h.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = tlsh.OriginPki()
        cls.addClassCleanup(cls.pki.close)
        cls.ca = tlsh.SluiceCa()
        cls.addClassCleanup(cls.ca.close)
        cls.up = cls.start_class_upstream(
            tlsh.PkiUpstream, pki=cls.pki, rate=ORIGIN_RATE,
            burst=ORIGIN_BURST)
        cls.proxy = cls.start_class_proxy(CONFIG % {
            "port": cls.up.port, "ca": cls.ca.cert, "key": cls.ca.key,
            "origin_ca": cls.pki.ca_path, "rate": PROXY_RATE,
            "burst": PROXY_BURST})
        cls.tmp = tempfile.mkdtemp(prefix="sluice-it-clients-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.body_file = os.path.join(cls.tmp, "body.bin")
        with open(cls.body_file, "wb") as f:
            f.write(BODY)

    def setUp(self):
        super().setUp()
        self.up.reset()
        self.admitted0 = self.admitted()
        self.read_tls0 = self.tunnels_read_tls()

    def admitted(self):
        return tq.metric(self.proxy, "sluice_proxy_limiter_admitted_total",
                         '{limit="api"}') or 0

    def tunnels_read_tls(self):
        return tq.metric(self.proxy, "sluice_proxy_tunnels_read_total",
                         '{result="tls"}') or 0

    def base(self, name):
        return "%s/echo/%s" % (self.up.url, name)

    def check_client(self, name, proc):
        """Checks a client's run (see the module docstring)."""
        self.assertEqual(
            proc.returncode, 0, "%s failed:\n%s\n%s" %
            (name, proc.stderr.decode(errors="replace")[-3000:],
             proc.stdout.decode(errors="replace")[-1000:]))
        exchanges = tlsh.parse_exchanges(proc.stdout)
        expected = []
        for i in range(COUNT):
            expected += [("GET", "/echo/%s/get/%d" % (name, i)),
                         ("POST", "/echo/%s/post/%d" % (name, i))]
        self.assertEqual(len(exchanges), len(expected),
                         "%s printed %r" % (name, proc.stdout[-2000:]))
        for (method, status, body), (want_method, want_path) in zip(
                exchanges, expected):
            self.assertEqual((method, status), (want_method, 200),
                             "%s %s: %r" % (name, want_path, body[:500]))
            doc = json.loads(body)
            self.assertEqual((doc["method"], doc["path"]),
                             (want_method, want_path))
            if method == "POST":
                self.assertEqual(doc["body_length"], BODY_SIZE, want_path)
                self.assertEqual(doc["body_sha256"], BODY_SHA256, want_path)
            else:
                self.assertEqual(doc["body_length"], 0, want_path)

        records = self.up.snapshot()
        self.assertEqual(
            [(r.method, r.path, r.status) for r in records],
            [(m, p, 200) for m, p in expected],
            "the origin's record (a 429 means sluice let the client "
            "exceed the origin's limit)")
        self.assertEqual(self.up.count_429, 0)
        arrivals = [r.t for r in records]
        need = (len(expected) - 1 - PROXY_BURST) / PROXY_RATE
        self.assertGreaterEqual(
            arrivals[-1] - arrivals[0], need - 0.01,
            "%d requests reached the origin faster than sluice's limit "
            "allows" % len(expected))
        self.assertEqual(self.admitted() - self.admitted0, len(expected),
                         "the route's limit did not count every request")
        self.assertGreaterEqual(self.tunnels_read_tls() - self.read_tls0, 1,
                                "no tunnel was read as TLS")

    # -- the clients --------------------------------------------------------

    def test_curl(self):
        name = "curl"
        args = []
        for i in range(COUNT):
            for method in ("get", "post"):
                section = ["-sS", "--max-time", "120",
                           "-w", "\n@@ %{method} %{http_code}\n"]
                if method == "post":
                    section += ["--data-binary", "@" + self.body_file, "-H",
                                "Content-Type: application/octet-stream"]
                section.append("%s/%s/%d" % (self.base(name), method, i))
                if args:
                    args.append("--next")
                args += section
        r = h.run_curl(args, timeout=300, env={
            "HTTPS_PROXY": self.proxy.url,
            "CURL_CA_BUNDLE": self.ca.bundle})
        r.stdout, r.stderr = r.stdout.encode(), r.stderr.encode()
        self.check_client(name, r)

    def test_python_requests(self):
        name = "requests"
        r = tlsh.run_client(
            ["/usr/bin/python3", PY_CLIENT, "requests", self.base(name),
             str(COUNT), str(BODY_SIZE)],
            {"HTTPS_PROXY": self.proxy.url,
             "REQUESTS_CA_BUNDLE": self.ca.bundle})
        self.check_client(name, r)

    def test_python_urllib(self):
        name = "urllib"
        r = tlsh.run_client(
            ["/usr/bin/python3", PY_CLIENT, "urllib", self.base(name),
             str(COUNT), str(BODY_SIZE)],
            {"https_proxy": self.proxy.url,
             "SSL_CERT_FILE": self.ca.bundle})
        self.check_client(name, r)

    def test_node_undici(self):
        name = "node"
        undici = os.path.join(node_modules(), "undici", "package.json")
        self.assertTrue(os.path.exists(undici),
                        "%s is missing: run `npm ci` in %s (ctest does, in "
                        "the test integration.node_modules)" %
                        (undici, NODE_DIR))
        self.assertTrue(shutil.which("node"), "node is not installed")
        r = tlsh.run_client(
            ["node", os.path.join(NODE_DIR, "client.mjs"), self.base(name),
             str(COUNT), str(BODY_SIZE)],
            {"HTTPS_PROXY": self.proxy.url,
             "NODE_EXTRA_CA_CERTS": self.ca.cert,
             "SLUICE_NODE_MODULES": node_modules()})
        self.check_client(name, r)

    def test_java_http_client(self):
        name = "java"
        self.assertTrue(shutil.which("java"), "java is not installed "
                        "(Debian: openjdk-17-jdk-headless)")
        store, password = self.ca.java_truststore()
        r = tlsh.run_client(
            ["java", os.path.join(JAVA_DIR, "Client.java"), "127.0.0.1",
             str(self.proxy.port), self.base(name), str(COUNT),
             str(BODY_SIZE)],
            {"JAVA_TOOL_OPTIONS":
             "-Djavax.net.ssl.trustStore=%s "
             "-Djavax.net.ssl.trustStorePassword=%s" % (store, password)})
        self.check_client(name, r)


if __name__ == "__main__":
    unittest.main()
