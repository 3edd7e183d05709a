#!/usr/bin/env python3
"""End-to-end fleet benchmark of leased mode (docs/leasing.md).

One sluice-quota-server owns resource `api` (--rate tokens/s, --burst); N
sidecars lease it; one local upstream enforces the same limit. Paced client
threads (requests sessions) offer 1.5x the rate through the sidecars with
skewed demand (8, 4, 2, 1, 1... threads per sidecar), then the skew is
reversed. Sidecars never queue (max_queue: 0), so a request a sidecar has
no token for is refused locally at once and the clients' attempts are the
offered load, which is also what the server measures as demand.

The upstream's allowance. The documented bound is that in any window W the
upstream sees at most rate*(W + j) + burst requests, where j is the jitter
of the sidecar-to-upstream path (here loopback plus Python threads sharing
the GIL on a possibly loaded machine). A token bucket of depth D admits a
sequence exactly when every window W holds at most rate*W + D requests, so
the upstream uses depth burst + rate*j with j = --jitter-ms (default 50 ms,
i.e. 5 tokens at 100/s). Any upstream 429 means the fleet broke that bound.

Binaries: $SLUICE_PROXY_BIN, $SLUICE_QUOTA_BIN (default: build/ in the repo
root). Exits 0 whatever the numbers: it measures, it does not judge.
"""

import argparse
import collections
import os
import random
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import sluice_harness as h  # noqa: E402

OFFERED = 1.5  # total offered load as a multiple of the rate
TOLERANCE = 0.10  # converged: within 10% of max(value, rate/N)

SIDECAR = """
ssrf: {allow: ["127.0.0.0/8"]}
quota: {servers: [%(target)s], sidecar_id: %(id)s,
        backoff_initial: 50ms, backoff_max: 300ms}
rate_limits:
  api: {rate: %(rate)s, burst: %(burst)s, resource: api, %(queue)s}
routes:
  - {host: 127.0.0.1, path_prefix: /, limit: api}
"""


def max_min(capacity, demands, weights):
    """Exact weighted max-min shares of `capacity` for `demands`."""
    shares = [0.0] * len(demands)
    left, active = capacity, set(range(len(demands)))
    while active and left > 1e-9:
        level = left / sum(weights[i] for i in active)
        met = {i for i in active if demands[i] <= weights[i] * level}
        if not met:
            for i in active:
                shares[i] = weights[i] * level
            break
        for i in met:
            shares[i] = demands[i]
            left -= demands[i]
        active -= met
    return shares


class Clients:
    """Paced open-loop client threads. Thread k of sidecar i runs while
    k < threads[phase][i] (phase 1 from t0 + shift), each offering
    `per_thread` requests/s; attempts are counted per (second, sidecar)."""

    def __init__(self, proxies, url, threads, per_thread, t0, shift):
        self.t0, self.shift = t0, shift
        self.threads, self.per_thread = threads, per_thread
        self.stop, self.lock = threading.Event(), threading.Lock()
        self.attempts, self.errors = collections.Counter(), []
        self.pool = [threading.Thread(target=self._run, args=(p, i, k, url),
                                      daemon=True)
                     for i, p in enumerate(proxies)
                     for k in range(max(t[i] for t in threads))]
        for t in self.pool:
            t.start()

    def _run(self, proxy, i, k, url):
        s = h.proxied_session(proxy)
        gap = 1.0 / self.per_thread
        due = self.t0 + random.uniform(0, gap)
        while not self.stop.is_set():
            now = time.monotonic()
            if due > now:
                self.stop.wait(due - now)
                continue
            due = max(due + gap, now - gap)  # catch up one slot at most
            if k >= self.threads[now - self.t0 >= self.shift][i]:
                continue
            try:
                s.get("%s/s%d/%d" % (url, i, k), timeout=10)
            except Exception as e:  # Counted and shown at the end.
                with self.lock:
                    self.errors.append(repr(e))
                continue
            key = (int(now - self.t0), i)
            with self.lock:
                self.attempts[key] += 1
        s.close()

    def finish(self):
        self.stop.set()
        for t in self.pool:
            t.join(15)


def poll_status(quota, samples, stop):
    """Appends (t, {sidecar index: (share, demand, weight)}) from the quota
    server's /status every 100 ms until `stop` is set."""
    while not stop.wait(0.1):
        try:
            res = quota.resource_status("api") or {}
        except (OSError, ValueError, AssertionError):
            continue
        samples.append((time.monotonic(), {
            int(s["id"][1:]): (s["share_per_second"], s["demand_per_second"],
                               s["weight"])
            for s in res.get("sidecars", [])}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sidecars", type=int, default=4)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--burst", type=float, default=20.0)
    ap.add_argument("--seconds", type=int, default=10, help="per phase")
    ap.add_argument("--jitter-ms", type=float, default=50.0,
                    help="upstream allowance j for delivery jitter")
    ap.add_argument("--max-wait-ms", type=int, default=0,
                    help="let requests queue this long for a token "
                         "(default 0: max_queue 0, refused at once)")
    a = ap.parse_args()
    if a.seconds < 2 or a.sidecars < 1:
        ap.error("need --seconds >= 2 and --sidecars >= 1")
    n, rate, secs = a.sidecars, a.rate, a.seconds
    proxy_bin, quota_bin = (
        os.environ.get(v) or os.path.join(ROOT, d) for v, d in (
            ("SLUICE_PROXY_BIN", "build/proxy/sluice-proxy"),
            ("SLUICE_QUOTA_BIN", "build/quota-server/sluice-quota-server")))
    for b in (proxy_bin, quota_bin):
        if not os.access(b, os.X_OK):
            sys.exit("%s is not an executable; build it or set "
                     "SLUICE_PROXY_BIN / SLUICE_QUOTA_BIN" % b)
    skew = [max(1, 8 >> i) for i in range(n)]
    threads = [skew, skew[::-1]]
    per_thread = OFFERED * rate / sum(skew)
    up_depth = a.burst + rate * a.jitter_ms / 1000.0
    settle = max(1, round(secs * 0.3))  # seconds skipped at a phase's start
    print("fleet: %d sidecars, rate %g/s, burst %g, upstream depth %g "
          "(burst + rate*%gms); threads %s then %s at %.2f req/s each; "
          "%d s per phase, steady part from +%d s" % (
              n, rate, a.burst, up_depth, a.jitter_ms, threads[0],
              threads[1], per_thread, secs, settle))
    quota = h.QuotaServer("resources:\n  api: {rate: %g, burst: %g}\n" %
                          (rate, a.burst), binary=quota_bin)
    res, proxies = [quota], []
    try:
        up = h.RateLimitedUpstream(rate=rate, burst=up_depth)
        res.append(up)
        for i in range(n):
            res.append(h.start_proxy(SIDECAR % {
                "target": quota.target, "id": "s%d" % i, "rate": rate,
                "burst": a.burst,
                "queue": ("max_queue: 1000, max_wait: %dms" % a.max_wait_ms
                          if a.max_wait_ms > 0 else "max_queue: 0")},
                binary=proxy_bin))
            proxies.append(res[-1])
        if not h.wait_until(lambda: all(
                "quota stream: connected" in h.admin_get(
                    p.admin_port, "/readyz")[2] for p in proxies), 20):
            print("sidecars did not connect to the quota server")
            return 1
        samples, stop = [], threading.Event()
        poller = threading.Thread(target=poll_status,
                                  args=(quota, samples, stop), daemon=True)
        poller.start()
        up.reset()
        t0 = time.monotonic()
        clients = Clients(proxies, up.url, threads, per_thread, t0, secs)
        print("\n   t  up200 up429 | sent/s by sidecar | /status share")
        for sec in range(2 * secs):
            time.sleep(max(0.0, t0 + sec + 1.25 - time.monotonic()))
            rows = [r for r in up.snapshot() if t0 + sec <= r.t < t0 + sec + 1]
            sent = [sum(r.path.startswith("/s%d/" % i) for r in rows)
                    for i in range(n)]
            st = ([x for t, x in samples if t <= t0 + sec + 1] or [{}])[-1]
            print("%4d%s %5d %5d | %s | %s" % (
                sec, "*" if sec == secs else " ",
                sum(r.status == 200 for r in rows),
                sum(r.status == 429 for r in rows),
                " ".join("%4d" % x for x in sent),
                " ".join("%5.1f" % st.get(i, (0,))[0] for i in range(n))))
        clients.finish()
        stop.set()
        poller.join()
        report(n, rate, secs, settle, t0, up.snapshot(), clients, samples)
    finally:
        for r in reversed(res):
            r.close()
    return 0


def entry(points):
    """[(t, ok)] -> ("+t s" of the first ok point, of the point from which
    all are ok), "never" where there is none."""
    first = next((t for t, ok in points if ok), None)
    bad = [k for k, (_, ok) in enumerate(points) if not ok]
    k = bad[-1] + 1 if bad else 0
    return tuple("never" if t is None else "+%.1f s" % t
                 for t in (first, points[k][0] if k < len(points) else None))


def report(n, rate, secs, settle, t0, records, clients, samples):
    """Prints the per-phase summary and the reconvergence after the shift."""
    sent = {}  # (second, sidecar, status) -> requests at the upstream
    for r in records:
        key = (int(r.t - t0), int(r.path.split("/")[1][1:]), r.status)
        sent[key] = sent.get(key, 0) + 1

    def count(sec, i, statuses=(200, 429)):
        return sum(sent.get((sec, i, st), 0) for st in statuses)

    def tol(x):
        return TOLERANCE * max(x, rate / n)

    print("\nsummary (steady part: seconds %d-%d and %d-%d); upstream 429s: "
          "%d of %d requests" % (settle, secs - 1, secs + settle, 2 * secs - 1,
                                 sum(r.status == 429 for r in records),
                                 len(records)))
    for p in range(2):
        steady = range(p * secs + settle, (p + 1) * secs)
        k = len(steady)
        window = [x for t, x in samples
                  if t0 + steady[0] <= t < t0 + steady[-1] + 1]

        def mean(i, field):
            vals = [x[i][field] for x in window if i in x]
            return sum(vals) / len(vals) if vals else 0.0

        offered = [sum(clients.attempts.get((s, i), 0) for s in steady) / k
                   for i in range(n)]
        weights = [mean(i, 2) or 1.0 for i in range(n)]
        ideal = max_min(rate, offered, weights)
        got = [sum(count(s, i) for s in steady) / k for i in range(n)]
        ok = sum(count(s, i, (200,)) for s in steady for i in range(n)) / k
        print("\nphase %d: utilisation %.1f%% (%.1f upstream 200/s of %g)" % (
            p + 1, 100 * ok / rate, ok, rate))
        print("  sidecar weight offered/s  ideal/s  sent/s  vs ideal  "
              "/status share  demand")
        for i in range(n):
            print("  s%-6d %6g %9.1f %8.1f %7.1f %+8.1f%% %14.1f %7.1f" % (
                i, weights[i], offered[i], ideal[i], got[i],
                100 * (got[i] - ideal[i]) / max(ideal[i], rate / n),
                mean(i, 0), mean(i, 1)))
    # Reconvergence: against where each sidecar settled in phase 2 (its
    # steady sent/s and /status share; `got`, `mean`, `steady` are phase 2's).
    share = [mean(i, 0) for i in range(n)]
    noise = max(abs(count(q, i) - got[i]) / max(got[i], rate / n)
                for q in steady for i in range(n))
    print("\nreconvergence after the shift (every sidecar within %d%% of "
          "max(its phase-2 steady value, rate/N)):" % (100 * TOLERANCE))
    print("  sent/s, 1 s buckets: first within at %s, stays within from "
          "%s (steady per-second spread up to %.0f%%)" % (*entry(
              [(s - secs, all(abs(count(s, i) - got[i]) <= tol(got[i])
                              for i in range(n)))
               for s in range(secs, 2 * secs)]), 100 * noise))
    print("  /status shares, 100 ms samples: first within at %s, stays "
          "within from %s" % entry(
              [(t - t0 - secs, all(
                  abs(x.get(i, (0,))[0] - share[i]) <= tol(share[i])
                  for i in range(n)))
               for t, x in samples if t0 + secs <= t < t0 + 2 * secs]))
    if clients.errors:
        print("client errors: %d, e.g. %s" % (len(clients.errors),
                                              clients.errors[0]))


if __name__ == "__main__":
    sys.exit(main())
