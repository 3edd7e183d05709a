"""CONNECT tunnels to a local TLS origin, with curl, urllib (HTTP/1.0 CONNECT
without Host), requests and a raw socket."""

import hashlib
import json
import ssl
import unittest
import urllib.request

import sluice_harness as h


class ConnectTest(h.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tls = cls.start_class_upstream(h.TlsUpstream)
        # "localhost" may resolve to ::1 as well as 127.0.0.1.
        cls.proxy = cls.start_class_proxy(
            'ssrf: {allow: ["127.0.0.0/8", "::1/128"]}\n'
            "connect: {allowed_ports: [%d]}\n" % cls.tls.port)

    def setUp(self):
        super().setUp()
        self.tls.reset()

    def test_curl_https_through_proxy(self):
        r = h.run_curl(["--cacert", self.tls.cert_path, "-w", "\n%{http_code}",
                        self.tls.localhost_url + "/echo"],
                       proxy=self.proxy.url)
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, code = r.stdout.rpartition("\n")
        self.assertEqual(code, "200")
        doc = json.loads(body)
        self.assertEqual(doc["target"], "/echo")
        # Inside the tunnel sluice cannot (and must not) add headers.
        self.assertNotIn("via", {k.lower() for k, _ in doc["headers"]})
        self.assertEqual(self.tls.count_200, 1)

    def test_urllib_https_through_proxy(self):
        # urllib sends "CONNECT host:port HTTP/1.0" with no Host header.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"https": self.proxy.url}),
            urllib.request.HTTPSHandler(context=self.tls.client_context()))
        with opener.open(self.tls.url + "/echo?via=urllib", timeout=20) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(r.read())["target"], "/echo?via=urllib")

    def test_requests_https_streams_large_body(self):
        n = 2_000_000
        s = h.proxied_session(self.proxy)
        self.addCleanup(s.close)
        digest, length = hashlib.sha256(), 0
        with s.get(self.tls.url + "/bytes/%d" % n, verify=self.tls.cert_path,
                   stream=True, timeout=30) as r:
            self.assertEqual(r.status_code, 200)
            for chunk in r.iter_content(65536):
                digest.update(chunk)
                length += len(chunk)
        self.assertEqual(length, n)
        self.assertEqual(digest.hexdigest(),
                         hashlib.sha256(h.expected_bytes(n)).hexdigest())

    def _tls_over_tunnel(self, version, headers=()):
        target = "127.0.0.1:%d" % self.tls.port
        sock, resp = h.open_tunnel(self.proxy.port, target, version, headers,
                                   timeout=20)
        with sock:
            self.assertEqual(resp.status, 200, resp)
            self.assertRegex(resp.raw.decode("latin-1"), r"^HTTP/1\.[01] 200")
            # RFC 9110: no body framing headers on a 2xx reply to CONNECT.
            self.assertIsNone(resp.headers["Content-Length"])
            self.assertIsNone(resp.headers["Transfer-Encoding"])
            with self.tls.client_context().wrap_socket(
                    sock, server_hostname="127.0.0.1") as tls_sock:
                tls_sock.sendall(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 b"Content-Length: 5\r\nConnection: close"
                                 b"\r\n\r\nhello")
                reply = h.read_response(tls_sock, "POST", 20)
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.json()["body"], "hello")

    def test_raw_connect_http10_then_tls(self):
        self._tls_over_tunnel("HTTP/1.0")

    def test_raw_connect_http11_with_host_then_tls(self):
        self._tls_over_tunnel("HTTP/1.1",
                              [("Host", "127.0.0.1:%d" % self.tls.port)])

    def test_tls_handshake_failure_does_not_hurt_the_proxy(self):
        sock, resp = h.open_tunnel(self.proxy.port,
                                   "127.0.0.1:%d" % self.tls.port, "HTTP/1.0")
        with sock:
            self.assertEqual(resp.status, 200, resp)
            with self.assertRaises(ssl.SSLError):
                ssl.create_default_context().wrap_socket(  # Untrusted cert.
                    sock, server_hostname="127.0.0.1")
        self.assertEqual(h.admin_get(self.proxy.admin_port, "/healthz")[0], 200)
        self.test_raw_connect_http10_then_tls()


if __name__ == "__main__":
    unittest.main()
