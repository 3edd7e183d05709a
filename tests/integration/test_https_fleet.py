"""The leased fleet over HTTPS (docs/https.md): four sidecars and
sluice-quota-server as in test_quota.py and test_pause.py, but every client
request is https:// to a TLS origin. The clients CONNECT through their
sidecar and trust only the sluice CA's bundle; the sidecars intercept the
origin's host, so each request inside a tunnel goes through the same limit,
lease, throttle detection and fleet-wide pause as an http:// one, and on to
the origin over TLS verified against its certificate (upstream_tls).

The assertions are those of the http:// tests (the classes here run their
test methods on the https fleet), plus the evidence that the requests were
read by sluice rather than relayed in opaque tunnels."""

import unittest

import requests

import sluice_harness as h
import test_pause as tp
import test_quota as tq

# The origin's host as the clients name it in their URLs and the CONNECT
# line, and as the sidecars intercept and route it.
HOST = "127.0.0.1"


def over_https(config, up, ca):
    """An http:// fleet test's sidecar config for the https origin `up`: its
    host intercepted with `ca`, its certificate the trust for the origin,
    CONNECT allowed to its port, and every route only for https requests
    from inside an intercepted tunnel (so a request sluice did not read as
    https would match no route and take no leased token)."""
    routes = config.count("{host: %s," % HOST)
    assert routes > 0, config
    config = config.replace("{host: %s," % HOST,
                            "{host: %s, scheme: https," % HOST)
    return config + (ca.intercept_yaml([HOST]) +
                     "upstream_tls: {ca_bundle: %s}\n" % up.cert_path +
                     "connect: {allowed_ports: [%d]}\n" % up.port)


def start_https_fleet(cls, quota_yaml, sidecar_config):
    """Starts (for the class) a CA, the TLS origin cls.up, the quota server
    cls.quota and tq.SIDECARS sidecars cls.proxies configured with
    over_https(sidecar_config(the server's target)), and waits until every
    sidecar's stream to the server is connected."""
    cls.ca = h.SluiceCa()
    cls.addClassCleanup(cls.ca.close)
    cls.up = cls.start_class_upstream(h.TlsUpstream)  # never refuses
    cls.quota = cls.start_class_quota_server(quota_yaml)
    config = over_https(sidecar_config(cls.quota.target), cls.up, cls.ca)
    cls.proxies = [cls.start_class_proxy(config)
                   for _ in range(tq.SIDECARS)]
    if not h.wait_until(
            lambda: all(tq.lease_modes(p)[1] for p in cls.proxies), 20):
        raise AssertionError("sidecars did not connect to the quota server")


class HttpsFleetChecks:
    """Checks shared by both classes (mixed into h.ProxyTestCase)."""

    def https_session(self, proxy):
        """A client of `proxy` that trusts only the sluice CA's bundle (the
        system roots and the CA), not the origin's own certificate."""
        return h.proxied_session(proxy, verify=self.ca.bundle)

    def assert_origin_needs_sluice(self):
        """The clients' trust cannot verify the origin itself: a 200 they
        got over https came through a certificate sluice minted, not
        through an opaque tunnel to the origin."""
        s = requests.Session()
        s.trust_env = False
        with self.assertRaises(requests.exceptions.SSLError):
            s.get(self.up.url + "/direct", timeout=10, verify=self.ca.bundle)
        s.close()

    def assert_read_by_sluice(self, records):
        """Every sidecar terminated client TLS in at least one tunnel, and
        the origin saw each request on its own, forwarded by sluice (with
        its Via), each request id once."""
        self.assertTrue(records, "the origin saw no request")
        for i, p in enumerate(self.proxies):
            tls = tq.metric(p, "sluice_proxy_tunnels_read_total",
                            '{result="tls"}')
            self.assertGreater(tls or 0, 0,
                               "sidecar %d read no TLS tunnel" % i)
        not_via = [r.path for r in records
                   if "sluice" not in (r.header("via") or "")]
        self.assertEqual(not_via, [], "requests the origin saw without "
                         "sluice's Via")
        ids = [r.header(tq.ID_HEADER) for r in records]
        self.assertNotIn(None, ids)
        self.assertEqual(len(ids), len(set(ids)), "a request reached the "
                         "origin twice")


class HttpsSharedLimitTest(HttpsFleetChecks, tq.SharedLimitTest):
    """test_quota.SharedLimitTest over HTTPS: four sidecars with skewed
    demand spend at most R*W + B in any window W, every request on leased
    tokens; the origin never refuses (the fleet is judged on the spend
    intervals, as there)."""

    @classmethod
    def setUpClass(cls):
        start_https_fleet(
            cls, """
            resources:
              api: {rate: %d, burst: %d}
            """ % (tq.R, tq.B),
            lambda target: tq.sidecar_config(target, [("api", "api", "/api")]))

    def new_load(self):
        self.load = tq.Load(session=self.https_session)
        return self.load

    def test_fleet_stays_inside_the_limit(self):
        self.assert_origin_needs_sluice()
        # The whole http:// test: the bound on the spend intervals, every
        # answer leased (200 or sluice's own 429), every sidecar forwarding,
        # the server's view of the four sidecars and the fast path.
        super().test_fleet_stays_inside_the_limit()
        records = self.up.snapshot()
        self.assert_read_by_sluice(records)
        # The origin saw exactly the requests the clients got a 200 for; the
        # others were refused by sluice inside the tunnel (it read them).
        self.assertEqual(
            sorted(r.header(tq.ID_HEADER) for r in records),
            sorted(r.rid for r in self.load.select(status=200)))
        self.assertEqual(self.up.count_429, 0)
        self.assertGreater(self.up.count_200, 0)


class HttpsFleetPauseTest(HttpsFleetChecks, tp.FleetPauseBase):
    """test_pause.FleetPauseTest over HTTPS: the origin answers a 429 with
    Retry-After to whichever sidecar's request comes first once the ban is
    armed; every sidecar pauses, none forwards a request it was sent after
    its pause began while the ban lasts, at most one request per client
    thread meets the ban, and traffic resumes without another throttle."""

    @classmethod
    def setUpClass(cls):
        start_https_fleet(cls, tp.QUOTA_CONFIG, lambda target: (
            tp.SIDECAR_CONFIG % {"target": target, "rate": tp.RATE,
                                 "burst": tp.BURST}))

    def new_load(self):
        self.load = tq.Load(session=self.https_session)
        return self.load

    def test_retry_after_seconds(self):
        self.assert_origin_needs_sluice()
        self.run_ban("retry-after")
        records = self.up.snapshot()
        self.assert_read_by_sluice(records)
        # The only 429s the clients saw are the origin's answers to the
        # requests that met the ban (run_ban: at most one per client
        # thread); sluice refused nothing itself (the pause held requests in
        # the queue instead), and nothing after the ban was throttled.
        banned = sorted(r.header(tq.ID_HEADER) for r in records if r.banned)
        self.assertTrue(banned)
        self.assertEqual(
            sorted(r.rid for r in self.load.select(status=429)), banned)
        self.assertLessEqual({r.status for r in self.load.select()},
                             {200, 429})
        self.assertEqual({r.mode for r in self.load.select()}, {"leased"})

    def test_pause_travels_as_datagrams(self):
        # test_pause's datagram test on this fleet: run_ban over https, and
        # every pause the server sent applied from a datagram or the stream.
        tp.FleetPauseTest.test_pause_travels_as_datagrams(self)


if __name__ == "__main__":
    unittest.main()
