"""Plain-HTTP forwarding through sluice-proxy with real clients: curl,
urllib, requests and raw sockets."""

import hashlib
import http.client
import json
import os
import tempfile
import time
import unittest
import urllib.request

import sluice_harness as h

# Loopback upstreams are SSRF-denied by default; re-open them for this test.
CONFIG = """
ssrf: {allow: ["127.0.0.0/8"]}
"""

HOP_BY_HOP = ("connection", "x-foo", "keep-alive", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-connection")


class ForwardingTest(h.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = cls.start_class_upstream()
        cls.proxy = cls.start_class_proxy(CONFIG)

    def setUp(self):
        super().setUp()
        self.up.reset()

    # -- helpers -------------------------------------------------------------
    def curl(self, *args):
        r = h.run_curl(list(args), env_proxy=self.proxy.url)
        self.assertEqual(r.returncode, 0, "curl failed: %s" % r.stderr)
        return r.stdout

    def only_request(self, path):
        reqs = self.up.requests_for(path)
        self.assertEqual(len(reqs), 1, [r.target for r in self.up.snapshot()])
        return reqs[0]

    def assertForwardedByProxy(self, rec):
        """The origin saw origin-form and a Via added by sluice."""
        self.assertTrue(rec.target.startswith("/"),
                        "origin got %r, not origin-form" % rec.target)
        self.assertIsNotNone(rec.header("via"), "no Via: %r" % rec.headers)

    def raw(self, lines, body=b""):
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        return h.raw_request(self.proxy.port, data, timeout=20)

    # -- curl ------------------------------------------------------------------
    def test_curl_get_with_http_proxy_env(self):
        out = self.curl("-w", "\n%{http_code}", self.up.url + "/hello")
        self.assertEqual(out, "hello from upstream\n\n200")
        rec = self.only_request("/hello")
        self.assertEqual(rec.method, "GET")
        self.assertEqual(rec.target, "/hello")
        self.assertForwardedByProxy(rec)

    def test_curl_post(self):
        out = self.curl("-d", "hello=world", self.up.url + "/echo")
        doc = json.loads(out)
        self.assertEqual(doc["method"], "POST")
        self.assertEqual(doc["target"], "/echo")
        self.assertEqual(doc["body"], "hello=world")
        self.assertForwardedByProxy(self.only_request("/echo"))

    def test_curl_head(self):
        start = time.monotonic()
        out = self.curl("-I", self.up.url + "/bytes/1234")
        # A proxy that waited for a HEAD response body would stall curl.
        self.assertLess(time.monotonic() - start, 10)
        self.assertRegex(out, r"^HTTP/1\.[01] 200")
        self.assertRegex(out.lower(), r"content-length: 1234\r?\n")
        self.assertEqual(self.only_request("/bytes/1234").method, "HEAD")

    def test_curl_expect_100_continue(self):
        self._curl_expect(self.up.url + "/echo")

    def test_curl_expect_100_continue_origin_never_sends_100(self):
        # The origin reads the body without ever sending 100 Continue; sluice
        # must not leave the client waiting for one (curl is told to wait
        # 20 s before giving up on the 100).
        self._curl_expect(self.up.url + "/echo?no-100")

    def _curl_expect(self, url):
        body = os.urandom(200_000)
        with tempfile.NamedTemporaryFile(suffix=".bin") as f:
            f.write(body)
            f.flush()
            start = time.monotonic()
            out = self.curl("-H", "Expect: 100-continue",
                            "--expect100-timeout", "20",
                            "--data-binary", "@" + f.name, url)
            elapsed = time.monotonic() - start
        doc = json.loads(out)
        self.assertEqual(doc["body_length"], len(body))
        self.assertEqual(doc["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertLess(elapsed, 10, "client waited for a 100 that never came")

    # -- urllib ----------------------------------------------------------------
    def test_urllib_proxy_handler(self):
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": self.proxy.url}))
        with opener.open(self.up.url + "/echo?via=urllib", timeout=20) as r:
            self.assertEqual(r.status, 200)
            doc = json.loads(r.read())
        self.assertEqual(doc["target"], "/echo?via=urllib")
        self.assertForwardedByProxy(self.only_request("/echo"))

    def test_urllib_post(self):
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": self.proxy.url}))
        req = urllib.request.Request(self.up.url + "/echo", data=b"x" * 1000,
                                     method="POST")
        with opener.open(req, timeout=20) as r:
            doc = json.loads(r.read())
        self.assertEqual(doc["body_length"], 1000)

    # -- requests --------------------------------------------------------------
    def test_requests_get_post_and_head(self):
        s = h.proxied_session(self.proxy)
        self.addCleanup(s.close)
        r = s.get(self.up.url + "/echo", timeout=20)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.json()["method"], "GET")
        r = s.post(self.up.url + "/echo", json={"a": 1}, timeout=20)
        self.assertEqual(json.loads(r.json()["body"]), {"a": 1})
        r = s.head(self.up.url + "/bytes/777", timeout=20)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["Content-Length"], "777")
        self.assertEqual(r.content, b"")
        self.assertEqual([x.method for x in self.up.snapshot()],
                         ["GET", "POST", "HEAD"])

    def test_chunked_request_body_upload(self):
        pieces = [os.urandom(10_000) for _ in range(100)]

        def gen():
            yield from pieces  # No length known: requests sends chunked.
        s = h.proxied_session(self.proxy)
        self.addCleanup(s.close)
        r = s.post(self.up.url + "/echo", data=gen(), timeout=30)
        self.assertEqual(r.status_code, 200)
        doc = r.json()
        whole = b"".join(pieces)
        self.assertEqual(doc["body_length"], len(whole))
        self.assertEqual(doc["body_sha256"], hashlib.sha256(whole).hexdigest())

    def test_large_chunked_response_streamed_intact(self):
        n = 5_000_000
        s = h.proxied_session(self.proxy)
        self.addCleanup(s.close)
        digest, length = hashlib.sha256(), 0
        with s.get(self.up.url + "/bytes/%d" % n, stream=True, timeout=30) as r:
            self.assertEqual(r.status_code, 200)
            for chunk in r.iter_content(65536):
                digest.update(chunk)
                length += len(chunk)
        self.assertEqual(length, n)
        self.assertEqual(digest.hexdigest(),
                         hashlib.sha256(h.expected_bytes(n)).hexdigest())

    # -- connection handling --------------------------------------------------
    def test_keep_alive_two_requests_one_client_connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port,
                                          timeout=20)
        self.addCleanup(conn.close)
        conn.request("GET", self.up.url + "/one")
        r = conn.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"hello from upstream\n"))
        self.assertFalse(r.will_close, "proxy closed a keep-alive connection")
        first_sock = conn.sock
        conn.request("GET", self.up.url + "/two")
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        r.read()
        self.assertIs(conn.sock, first_sock, "client had to reconnect")
        self.assertEqual([x.path for x in self.up.snapshot()], ["/one", "/two"])

    def test_bodyless_statuses_keep_the_connection_usable(self):
        # 204/304 and HEAD responses have no body even with headers that
        # would otherwise announce one; the next response must parse.
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port,
                                          timeout=20)
        self.addCleanup(conn.close)
        for method, path, want in (("GET", "/status/204", 204),
                                   ("GET", "/status/304", 304),
                                   ("HEAD", "/bytes/99", 200),
                                   ("GET", "/after", 200)):
            conn.request(method, self.up.url + path)
            r = conn.getresponse()
            self.assertEqual(r.status, want, path)
            self.assertEqual(r.read(), b"" if path != "/after"
                             else b"hello from upstream\n")

    def test_get_with_content_length_zero(self):
        # Java's HttpURLConnection sends GET with Content-Length: 0.
        resp = self.raw(["GET %s/echo HTTP/1.1" % self.up.url,
                         "Host: %s" % self.up.authority,
                         "Content-Length: 0", "Connection: close"])
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["body_length"], 0)

    def test_upstream_429_passes_through_unmarked(self):
        s = h.proxied_session(self.proxy)
        self.addCleanup(s.close)
        r = s.get(self.up.url + "/status/429", timeout=20)
        self.assertEqual(r.status_code, 429)
        self.assertEqual(r.headers.get("Retry-After"), "1")
        self.assertNotIn("x-sluice-limited", r.headers)

    # -- header rules ----------------------------------------------------------
    def test_hop_by_hop_headers_are_stripped_and_via_added(self):
        resp = self.raw([
            "GET %s/echo HTTP/1.1" % self.up.url,
            "Host: %s" % self.up.authority,
            "Connection: close, X-Foo",
            "X-Foo: 1",
            "Keep-Alive: timeout=5",
            "TE: trailers",
            "Trailer: X-Bar",
            "Upgrade: h2c",
            "Proxy-Authorization: Basic dXNlcjpwYXNz",
            "Proxy-Connection: keep-alive",
            "X-End-To-End: kept",
        ])
        self.assertEqual(resp.status, 200, resp)
        doc = resp.json()
        got = {k.lower(): v for k, v in doc["headers"]}
        for name in HOP_BY_HOP:
            if name == "connection" and name in got:
                # sluice may manage its own upstream connection, but nothing
                # the client listed may leak through.
                self.assertIn(got[name].lower(), ("keep-alive", "close"),
                              got)
                continue
            self.assertNotIn(name, got, "hop-by-hop %s reached the origin" %
                             name)
        self.assertEqual(got.get("x-end-to-end"), "kept")
        self.assertRegex(got.get("via", ""), r"^1\.1 \S+")
        self.assertNotIn("x-forwarded-for", got)
        self.assertNotIn("forwarded", got)

    def test_absolute_uri_authority_wins_over_host(self):
        resp = self.raw(["GET %s/echo HTTP/1.1" % self.up.url,
                         "Host: bogus.invalid", "Connection: close"])
        self.assertEqual(resp.status, 200, resp)
        got = {k.lower(): v for k, v in resp.json()["headers"]}
        self.assertEqual(got["host"], self.up.authority)


if __name__ == "__main__":
    unittest.main()
