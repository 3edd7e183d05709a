"""The origin side of interception, through the real binary
(docs/https.md): an origin whose certificate fails verification is a 502
naming why, a host not intercepted stays an opaque tunnel, a second
handshake for a name reuses its minted certificate, and an origin's
throttle inside an intercepted tunnel pauses the limit as it does for
http:// (test_pause_local.py).

Origins have certificates from a test CA (tls_harness.OriginPki) that
sluice trusts through upstream_tls.ca_bundle; clients trust sluice's CA
from `sluice-proxy ca init` (bundle.pem)."""

import json
import os
import socket
import ssl
import time
import unittest

import sluice_harness as h
import test_quota as tq
import tls_harness as tlsh

CONFIG = """
ssrf: {allow: ["127.0.0.0/8", "::1/128"]}
connect: {allowed_ports: [%(ports)s]}
intercept:
  hosts: ["127.0.0.1"]
  ca: {cert: "%(ca)s", key: "%(key)s"}
upstream_tls: {ca_bundle: "%(origin_ca)s"}
rate_limits:
  api:
    rate: 50
    burst: 5
    max_wait: 20s
    throttle:
      resume_jitter: 0s
      pause: {default: 1s, probe_timeout: 500ms, ramp: 0s}
routes:
  - {host: 127.0.0.1, scheme: https, path_prefix: /retry, limit: api,
     retry: {on_throttle: true, max_attempts: 3}}
  - {host: 127.0.0.1, scheme: https, path_prefix: /plain, limit: api}
"""

BAD = [("expired", "tls_expired"), ("wrong_host", "tls_wrong_host"),
       ("self_signed", "tls_unknown_issuer")]


def tls_metric(proxy, name, labels=""):
    return tq.metric(proxy, name, labels) or 0


class HttpsOriginTest(h.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = tlsh.OriginPki()
        cls.addClassCleanup(cls.pki.close)
        cls.ca = tlsh.SluiceCa()
        cls.addClassCleanup(cls.ca.close)
        cls.origins = {
            kind: cls.start_class_upstream(tlsh.PkiUpstream, pki=cls.pki,
                                           kind=kind)
            for kind in tlsh.OriginPki.KINDS}
        cls.up = cls.origins["good"]
        cls.config = CONFIG % {
            "ports": ", ".join(str(o.port) for o in cls.origins.values()),
            "ca": cls.ca.cert, "key": cls.ca.key,
            "origin_ca": cls.pki.ca_path}
        cls.proxy = cls.start_class_proxy(cls.config)

    def setUp(self):
        super().setUp()
        for o in self.origins.values():
            o.reset()

    def session(self, proxy=None):
        s = h.proxied_session(proxy or self.proxy)
        s.verify = self.ca.bundle
        self.addCleanup(s.close)
        return s

    # -- origin verification ------------------------------------------------

    def test_origin_certificate_failures_are_502_naming_the_reason(self):
        s = self.session()
        for kind, reason in BAD:
            with self.subTest(kind=kind):
                origin = self.origins[kind]
                labels = '{reason="%s"}' % reason
                before = tls_metric(
                    self.proxy, "sluice_proxy_origin_tls_failures_total",
                    labels)
                r = s.get(origin.url + "/echo", timeout=30)
                self.assertEqual(r.status_code, 502, r.text)
                self.assertEqual(r.headers.get("x-sluice-error"), reason)
                doc = r.json()
                self.assertEqual(doc["reason"], reason)
                self.assertEqual(doc["proxy"], "sluice")
                # The handshake failed on sluice's side: the origin saw no
                # request, and its handshake ended without one.
                self.assertEqual(origin.requests_started, 0)
                self.assertTrue(h.wait_until(
                    lambda: origin.tls_handshake_failures >= 1, 20),
                    "the origin saw no failed handshake")
                self.assertEqual(
                    tls_metric(self.proxy,
                               "sluice_proxy_origin_tls_failures_total",
                               labels) - before, 1.0)
        # The origin with the good certificate, through the same tunnel
        # settings, answers.
        r = s.get(self.up.url + "/echo", timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["path"], "/echo")

    # -- opaque tunnels -----------------------------------------------------

    def tunnel_read_counts(self, proxy):
        return {result: tls_metric(proxy, "sluice_proxy_tunnels_read_total",
                                   '{result="%s"}' % result)
                for result in ("tls", "http")}

    def leaf_counts(self, proxy):
        return (tls_metric(proxy, "sluice_proxy_tls_leaf_cache_misses_total"),
                tls_metric(proxy, "sluice_proxy_tls_leaf_cache_hits_total"))

    def test_a_host_not_intercepted_relays_bytes_unchanged(self):
        # A record header and ClientHello type first: TLS-looking bytes to
        # a host not listed pass as they are, like everything after them.
        sent = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(
            300_000)
        reply = os.urandom(200_000)
        raw = tlsh.RawTcpOrigin(expect=len(sent), reply=reply)
        self.addCleanup(raw.close)
        proxy = self.start_proxy(
            self.config.replace("allowed_ports: [",
                                "allowed_ports: [%d, " % raw.port))
        reads0, leaves0 = self.tunnel_read_counts(proxy), self.leaf_counts(
            proxy)
        # "localhost" is not in intercept.hosts (127.0.0.1 is).
        sock, head = h.open_tunnel(proxy.port, "localhost:%d" % raw.port)
        with sock:
            self.assertEqual(head.status, 200, head)
            self.assertTrue(h.wait_until(
                lambda: tq.metric(proxy, "sluice_proxy_tunnels_active") == 1,
                20), "no opaque tunnel is open")
            sock.sendall(sent)
            got = bytearray()
            sock.settimeout(30)
            while True:
                b = sock.recv(65536)
                if not b:
                    break
                got += b
        self.assertTrue(bytes(got) == reply,
                        "the client got %d bytes, not the origin's %d "
                        "unchanged" % (len(got), len(reply)))
        self.assertTrue(h.wait_until(lambda: raw.snapshot(), 20))
        self.assertTrue(raw.snapshot() == [sent],
                        "the origin got %r bytes, not the client's %d "
                        "unchanged" % ([len(x) for x in raw.snapshot()],
                                       len(sent)))
        self.assertTrue(h.wait_until(
            lambda: tq.metric(proxy, "sluice_proxy_tunnels_active") == 0, 20))
        self.assertEqual(self.tunnel_read_counts(proxy), reads0)
        self.assertEqual(self.leaf_counts(proxy), leaves0)

    def test_tls_to_a_host_not_intercepted_reaches_the_origin(self):
        # The same good origin by another name: the client's handshake
        # goes through untouched and meets the origin's own certificate.
        sock, head = h.open_tunnel(self.proxy.port,
                                   "localhost:%d" % self.up.port)
        ctx = ssl.create_default_context(cafile=self.pki.ca_path)
        reads0 = self.tunnel_read_counts(self.proxy)
        with sock:
            self.assertEqual(head.status, 200, head)
            with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                issuer = dict(x[0] for x in tls.getpeercert()["issuer"])
                self.assertEqual(issuer["commonName"],
                                 "sluice test origin CA")
                tls.sendall(b"GET /echo/opaque HTTP/1.1\r\nHost: localhost"
                            b"\r\nConnection: close\r\n\r\n")
                resp = h.read_response(tls, "GET", 30)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(json.loads(resp.body)["path"], "/echo/opaque")
        self.assertEqual(self.tunnel_read_counts(self.proxy), reads0)

    # -- the leaf cache -----------------------------------------------------

    def test_a_second_handshake_for_a_name_reuses_its_certificate(self):
        proxy = self.start_proxy(self.config)
        self.assertEqual(self.leaf_counts(proxy), (0, 0))
        for n in (1, 2):
            s = self.session(proxy)  # a new connection, a new handshake
            r = s.get(self.up.url + "/echo/%d" % n, timeout=30)
            self.assertEqual(r.status_code, 200, r.text)
            s.close()
            # One certificate minted, then reused.
            self.assertEqual(self.leaf_counts(proxy), (1, n - 1))
            self.assertEqual(self.tunnel_read_counts(proxy),
                             {"tls": n, "http": 0})

    # -- an origin's throttle -------------------------------------------------

    def wait_running(self):
        self.assertTrue(h.wait_until(
            lambda: tq.metric(self.proxy, "sluice_proxy_pause_phase",
                              '{limit="api",phase="running"}') == 1.0, 20),
            "the limit is still paused")

    def test_transparent_retry_turns_a_ban_into_one_slower_success(self):
        self.wait_running()
        before = tls_metric(self.proxy, "sluice_proxy_pause_retried_total",
                            '{limit="api"}')
        # 0.8 s: the origin says "Retry-After: 1", so sluice's pause ends
        # after the ban, whatever the delays.
        self.up.ban(0.8, "retry-after")
        r = self.session().get(self.up.url + "/retry/a", timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        seen = self.up.requests_for("/retry/a")
        self.assertEqual([x.status for x in seen], [429, 200])
        # The retry waited out the origin's Retry-After.
        self.assertGreaterEqual(seen[1].t, self.up.ban_window[1])
        self.assertEqual(
            tls_metric(self.proxy, "sluice_proxy_pause_retried_total",
                       '{limit="api"}') - before, 1.0)

    def test_without_retry_the_client_sees_the_throttle_then_sluice_holds(
            self):
        self.wait_running()
        counters = [("sluice_proxy_pause_shed_total", '{limit="api"}'),
                    ("sluice_proxy_pause_held_total", '{limit="api"}'),
                    ("sluice_proxy_upstream_throttles_total",
                     '{limit="api",reason="retry-after"}')]
        before = {c: tls_metric(self.proxy, *c) for c in counters}
        self.up.ban(2.5, "retry-after")  # "Retry-After: 3"
        s = self.session()
        r = s.get(self.up.url + "/plain/a", timeout=30)
        self.assertEqual(r.status_code, 429)  # the origin's own answer
        self.assertEqual(r.headers.get("Retry-After"), "3")
        # A request that cannot wait out the pause is refused by sluice at
        # once, with the pause's end and a hint for the SDK.
        r2 = s.get(self.up.url + "/plain/b", timeout=30,
                   headers={"x-sluice-max-wait": "100ms"})
        self.assertEqual(r2.status_code, 429)
        self.assertEqual(r2.headers.get("x-sluice-limited"), "local")
        self.assertEqual(r2.headers.get("x-should-retry"), "false")
        self.assertGreaterEqual(int(r2.headers["Retry-After"]), 1)
        # One that can wait is held until the ban is over, then sent.
        r3 = s.get(self.up.url + "/plain/c", timeout=30)
        self.assertEqual(r3.status_code, 200)
        held = self.up.requests_for("/plain/c")
        self.assertEqual([x.status for x in held], [200])
        self.assertGreaterEqual(held[0].t, self.up.ban_window[1])
        # Nothing but the first request met the ban.
        self.assertEqual(self.up.count_429, 1)
        self.assertEqual(self.up.requests_for("/plain/b"), [])
        delta = {c: tls_metric(self.proxy, *c) - before[c] for c in counters}
        self.assertEqual(delta[counters[0]], 1.0)
        self.assertGreaterEqual(delta[counters[1]], 1.0)
        self.assertEqual(delta[counters[2]], 1.0)


if __name__ == "__main__":
    unittest.main()
