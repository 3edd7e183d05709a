"""SSRF defaults: loopback (however it is spelled) and the proxy's own
listeners are refused with 403 and a JSON reason, and never dialled."""

import json
import unittest

import sluice_harness as h


def absolute_get(authority, path="/"):
    return ("GET http://%s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
            % (authority, path, authority)).encode("latin-1")


class SsrfTestBase(h.ProxyTestCase):
    def assertDenied(self, data, upstream=None):
        before = upstream.total_activity() if upstream else 0
        resp = h.raw_request(self.proxy.port, data, timeout=20)
        self.assertEqual(resp.status, 403, resp)
        try:
            doc = json.loads(resp.body)
        except ValueError:
            self.fail("403 body is not JSON: %r" % resp.body)
        self.assertIsInstance(doc, dict)
        self.assertIn("reason", doc)
        self.assertIsInstance(doc["reason"], str)
        self.assertTrue(doc["reason"], doc)
        if upstream:
            self.assertUpstreamUntouched(upstream, before)
        return doc


class DefaultPolicyTest(SsrfTestBase):
    """No ssrf.allow: loopback targets are denied."""

    @classmethod
    def setUpClass(cls):
        cls.up = cls.start_class_upstream()
        # CONNECT may reach the upstream's port, so only SSRF can refuse it.
        cls.proxy = cls.start_class_proxy(
            "connect: {allowed_ports: [%d]}\n" % cls.up.port)

    def setUp(self):
        super().setUp()
        self.up.reset()

    def test_loopback_ip(self):
        doc = self.assertDenied(absolute_get(self.up.authority), self.up)
        self.assertIn("loopback", json.dumps(doc).lower())

    def test_localhost_name(self):
        self.assertDenied(absolute_get("localhost:%d" % self.up.port), self.up)

    def test_decimal_spelling(self):
        self.assertDenied(absolute_get("2130706433:%d" % self.up.port), self.up)

    def test_hex_short_spelling(self):
        self.assertDenied(absolute_get("0x7f.1:%d" % self.up.port), self.up)

    def test_ipv4_mapped_ipv6(self):
        self.assertDenied(absolute_get("[::ffff:127.0.0.1]:%d" % self.up.port),
                          self.up)

    def test_connect_to_loopback(self):
        target = self.up.authority
        self.assertDenied(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" %
                           (target, target)).encode(), self.up)

    def test_upstream_never_dialled_across_all_attempts(self):
        for authority in (self.up.authority, "2130706433:%d" % self.up.port,
                          "0x7f.1:%d" % self.up.port):
            h.raw_request(self.proxy.port, absolute_get(authority), timeout=20)
        self.assertEqual(self.up.connections_accepted, 0)
        self.assertEqual(self.up.snapshot(), [])


class SelfTargetTest(SsrfTestBase):
    """Loopback allowed, but the proxy still refuses to call itself."""

    @classmethod
    def setUpClass(cls):
        cls.up = cls.start_class_upstream()
        cls.proxy = cls.start_class_proxy('ssrf: {allow: ["127.0.0.0/8"]}\n')

    def test_allowed_loopback_upstream_works(self):
        resp = h.raw_request(self.proxy.port, absolute_get(self.up.authority),
                             timeout=20)
        self.assertEqual(resp.status, 200, resp)

    def test_own_proxy_listener_is_denied(self):
        self.assertDenied(absolute_get("127.0.0.1:%d" % self.proxy.port))
        self.assertTrue(self.proxy.alive())

    def test_own_admin_listener_is_denied(self):
        self.assertDenied(absolute_get("127.0.0.1:%d" % self.proxy.admin_port,
                                       "/config"))


if __name__ == "__main__":
    unittest.main()
