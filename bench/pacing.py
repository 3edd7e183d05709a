#!/usr/bin/env python3
"""How much of a limit sluice uses under closed-loop clients, end to end.

The integration tests check only what holds however the machine schedules
the processes (never more than the limit); how close to the limit sluice
gets is measured here, in the two scenarios the tests run:

  local    one sidecar with a local limit (--rate, --burst; default 18/s,
           burst 3) and --clients client threads whose requests queue for
           up to 10 s (tests/integration/test_rate_limit.py, PacingTest);
  per-key  --sidecars sidecars (2) lease a per-key resource (--rate,
           --burst per key; default 20/s, burst 5) from one
           sluice-quota-server, each with --threads client threads (2) per
           key (--keys, 2), each request waiting at most --max-wait-ms
           (100) for a token (test_quota_per_key.py);
  shared   --sidecars sidecars (4) lease one resource (default 40/s, burst
           10) with skewed client threads (--skew, 6,3,2,1), each request
           refused at once without a token and tried again 50 ms later
           (--max-wait-ms 0; test_quota.py, SharedLimitTest).

Every key (or the one limit) calls its own local upstream, which answers
everything and records arrivals. Per run and key it prints the requests
forwarded in the measured window (after --warmup), utilisation = those
requests / (rate * window), the tightest window of the requests' spend
intervals (client send -> upstream read; never above burst + rate * W if
sluice keeps its limit) and the same judgement on arrival times alone,
which adds the delivery jitter of the run (what an upstream enforcing the
limit on arrivals would have refused). --runs repeats the scenario.

Binaries: $SLUICE_PROXY_BIN, $SLUICE_QUOTA_BIN (default: build/ in the repo
root). Exits 0 whatever the numbers: it measures, it does not judge.
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import sluice_harness as h  # noqa: E402
import test_quota as tq  # noqa: E402

LOCAL = """
ssrf: {allow: ["127.0.0.0/8"]}
rate_limits:
  api: {rate: %(rate)g, period: 1s, burst: %(burst)g, max_wait: 10s}
routes:
  - {host: 127.0.0.1, limit: api}
"""

PER_KEY = """
ssrf: {allow: ["127.0.0.0/8"]}
quota: {servers: [%(target)s], backoff_initial: 50ms, backoff_max: 300ms}
rate_limits:
  keyed: {rate: %(rate)g, burst: %(burst)g, resource: keyed, max_wait: 20s,
          per_key: {header: Authorization, max_keys: 100}}
routes:
  - {host: 127.0.0.1, path_prefix: /k, limit: keyed}
"""


def judge(label, load, records, t0, t1, rate, burst):
    """Prints one line for one limit's records."""
    measured = [r for r in records if t0 <= r.t < t1]
    worst = h.spend_bound_excess(load.spend_intervals(records), rate, burst)
    arrivals = tq.arrival_excess(records, rate, burst)
    print("  %-8s %5d requests in %.2f s: %5.1f%% of %g/s; tightest spend "
          "window %+.2f tokens (%s); on arrivals alone %+.2f" % (
              label, len(measured), t1 - t0,
              100 * len(measured) / (rate * (t1 - t0)), rate,
              worst.excess if worst else 0.0, worst, arrivals.excess
              if arrivals else 0.0))


def run_load(load, a):
    """Runs `load` for the warm-up and the measured seconds (a fixed
    stretch of traffic: what is measured) and returns (start, end)."""
    t0 = time.monotonic()
    load.start()
    time.sleep(a.warmup + a.seconds)
    t1 = time.monotonic()
    load.finish()
    if load.errors:
        print("  client errors: %d, e.g. %s" % (len(load.errors),
                                                load.errors[0]))
    return t0, t1


def run_local(a, proxy_bin):
    up = h.RateLimitedUpstream()
    proxy = h.start_proxy(LOCAL % {"rate": a.rate, "burst": a.burst},
                          binary=proxy_bin)
    try:
        load = tq.Load()
        load.add(proxy, 0, up.url + "/paced", threads=a.clients)
        up.reset()
        t0, t1 = run_load(load, a)
        judge("local", load, up.snapshot(), t0 + a.warmup, t1, a.rate,
              a.burst)
    finally:
        proxy.close()
        up.close()


def run_per_key(a, proxy_bin, quota_bin):
    keys = ["Bearer key-%d" % k for k in range(a.keys)]
    quota = h.QuotaServer("resources:\n  keyed: {rate: %g, burst: %g, "
                          "per_key: true}\n" % (a.rate, a.burst),
                          binary=quota_bin)
    ups = [h.RateLimitedUpstream() for _ in keys]
    proxies = []
    try:
        for _ in range(a.sidecars):
            proxies.append(h.start_proxy(PER_KEY % {
                "target": quota.target, "rate": a.rate, "burst": a.burst},
                binary=proxy_bin))
        # Each key once on each sidecar first: its pool leases from then on.
        for p in proxies:
            s = h.proxied_session(p)
            for k, key in enumerate(keys):
                s.get(ups[k].url + "/k/warmup",
                      headers={"Authorization": key}, timeout=30)
            s.close()
        load = tq.Load()
        for i, p in enumerate(proxies):
            for k, key in enumerate(keys):
                load.add(p, (i, k), ups[k].url + "/k/%d" % i,
                         threads=a.threads,
                         headers={"Authorization": key,
                                  "x-sluice-max-wait": "%dms" % a.max_wait_ms})
        for up in ups:
            up.reset()
        t0, t1 = run_load(load, a)
        for k, up in enumerate(ups):
            judge("key %d" % k, load, up.snapshot(), t0 + a.warmup, t1,
                  a.rate, a.burst)
    finally:
        for p in proxies:
            p.close()
        for up in ups:
            up.close()
        quota.close()


SHARED = """
ssrf: {allow: ["127.0.0.0/8"]}
quota: {servers: [%(target)s], backoff_initial: 50ms, backoff_max: 300ms}
rate_limits:
  api: {rate: %(rate)g, burst: %(burst)g, resource: api, max_wait: 20s}
routes:
  - {host: 127.0.0.1, path_prefix: /api, limit: api}
"""


def run_shared(a, proxy_bin, quota_bin):
    skew = [int(x) for x in a.skew.split(",")]
    quota = h.QuotaServer("resources:\n  api: {rate: %g, burst: %g}\n" %
                          (a.rate, a.burst), binary=quota_bin)
    up = h.RateLimitedUpstream()
    proxies = []
    try:
        for _ in skew:
            proxies.append(h.start_proxy(SHARED % {
                "target": quota.target, "rate": a.rate, "burst": a.burst},
                binary=proxy_bin))
        if not h.wait_until(lambda: all(tq.lease_modes(p)[1]
                                        for p in proxies), 20):
            print("  sidecars did not connect to the quota server")
            return
        load = tq.Load()
        for i, p in enumerate(proxies):
            load.add(p, i, up.url + "/api/%d" % i, threads=skew[i],
                     headers={"x-sluice-max-wait": "%dms" % a.max_wait_ms})
        up.reset()
        t0, t1 = run_load(load, a)
        judge("fleet", load, up.snapshot(), t0 + a.warmup, t1, a.rate,
              a.burst)
        print("  per sidecar: %s" % [
            len(load.select(t0 + a.warmup, t1, index=i, status=200))
            for i in range(len(skew))])
    finally:
        for p in proxies:
            p.close()
        up.close()
        quota.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("local", "per-key", "shared"),
                    default="local")
    ap.add_argument("--rate", type=float, default=None,
                    help="per second (default 18 local, 20 per key, 40 "
                    "shared)")
    ap.add_argument("--burst", type=float, default=None,
                    help="default 3 local, 5 per key, 10 shared")
    ap.add_argument("--clients", type=int, default=8, help="local mode")
    ap.add_argument("--sidecars", type=int, default=2, help="per-key mode")
    ap.add_argument("--keys", type=int, default=2, help="per-key mode")
    ap.add_argument("--threads", type=int, default=2,
                    help="per sidecar and key (per-key mode)")
    ap.add_argument("--skew", default="6,3,2,1",
                    help="client threads per sidecar (shared mode)")
    ap.add_argument("--max-wait-ms", type=int, default=None,
                    help="x-sluice-max-wait of every request (default 100 "
                    "per key, 0 shared)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=6.0,
                    help="measured window per run")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    local = a.mode == "local"
    defaults = {"local": (18.0, 3.0, None), "per-key": (20.0, 5.0, 100),
                "shared": (40.0, 10.0, 0)}[a.mode]
    if a.rate is None:
        a.rate = defaults[0]
    if a.burst is None:
        a.burst = defaults[1]
    if a.max_wait_ms is None:
        a.max_wait_ms = defaults[2]
    proxy_bin, quota_bin = (
        os.environ.get(v) or os.path.join(ROOT, d) for v, d in (
            ("SLUICE_PROXY_BIN", "build/proxy/sluice-proxy"),
            ("SLUICE_QUOTA_BIN", "build/quota-server/sluice-quota-server")))
    for b in (proxy_bin,) if local else (proxy_bin, quota_bin):
        if not os.access(b, os.X_OK):
            sys.exit("%s is not an executable; build it or set "
                     "SLUICE_PROXY_BIN / SLUICE_QUOTA_BIN" % b)
    shape = {
        "local": "%d clients queueing up to 10 s" % a.clients,
        "per-key": "%d sidecars, %d keys, %d threads per sidecar and key, "
                   "max wait %s ms" % (a.sidecars, a.keys, a.threads,
                                       a.max_wait_ms),
        "shared": "client threads per sidecar %s, max wait %s ms" % (
            a.skew, a.max_wait_ms)}[a.mode]
    print("pacing, %s: rate %g/s, burst %g, %s; %g s measured after %g s, "
          "%d runs; load average %s" % (
              a.mode, a.rate, a.burst, shape, a.seconds, a.warmup, a.runs,
              " ".join(open("/proc/loadavg").read().split()[:3])))
    for run in range(a.runs):
        print("run %d" % (run + 1))
        if local:
            run_local(a, proxy_bin)
        elif a.mode == "per-key":
            run_per_key(a, proxy_bin, quota_bin)
        else:
            run_shared(a, proxy_bin, quota_bin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
