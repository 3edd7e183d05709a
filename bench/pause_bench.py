#!/usr/bin/env python3
"""Fleet-wide pause benchmark: how fast and how tightly N sidecars stop when
the upstream throttles one of them.

Two fleets of --sidecars sidecar-proxies run side by side on loopback, each
in front of its own local upstream (tests/integration harness; unlimited
except for the bans):

  leased      every sidecar leases resource `api` from one
              sluice-quota-server; the first sidecar to see a throttle
              reports it and the server pushes a Pause to all of them
              (each answers with a PauseAck);
  standalone  the baseline: no quota server, each sidecar pauses only when
              it sees a throttle itself.

Paced client threads (requests sessions, in a separate process so they do
not hold the GIL of the upstream that timestamps requests) offer a load well
below the limit. The upstream is banned again and again (--bans per dialect
and mode, --ban seconds each, armed by the next request); blocks of bans
alternate between the fleets so that drift of this shared machine spreads
over both.

Per ban, from the upstream's records (RecordedRequest.t = arrival):
  first   the first request of the ban (its first throttle);
  e2e     the last request of any sidecar that reached the upstream during
          the ban, minus `first` (an upper bound on "everyone stopped";
          requests already in flight count);
  leaked  requests that reached the upstream later than --window-ms after
          `first` and before the ban ended (goal: 0).
For the leased fleet the quota server's own fan-out time per pause (report
received -> last PauseAck) comes from /status `pause_propagation_ms_recent`,
and from the sidecars' sluice_proxy_pause_started_seconds (one clock per
host): (p) first throttle read -> last sidecar paused, and (p1) first
throttle read -> first sidecar paused by the server (the report's hop, the
server and one push). The end says which copy of the server's pauses the
sidecars applied first (fast-path datagram or stream).

The sidecars' pause is clamped to the ban (pause.max = --ban), so a 1 s
Retry-After still ends each cycle quickly. A sidecar's pause starts when it
reads the throttle, after the ban began, so the clamp never ends a pause
before the ban does.

Binaries: $SLUICE_PROXY_BIN, $SLUICE_QUOTA_BIN (default: build/ in the repo
root). Exits 0 whatever the numbers: it measures, it does not judge.
"""

import argparse
import collections
import math
import multiprocessing
import os
import random
import re
import sys
import threading
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import sluice_harness as h  # noqa: E402

GOAL_P99_MS = 2.0

PAUSE = ("{default: %(ban_ms)dms, max: %(ban_ms)dms, probe_timeout: 200ms, "
         "ramp: 0s}")

QUOTA = """
resources:
  api:
    rate: %(rate)g
    burst: %(burst)g
    pause: %(pause)s
"""

SIDECAR = """
ssrf: {allow: ["127.0.0.0/8"]}
%(quota)s
rate_limits:
  api:
    rate: %(rate)g
    burst: %(burst)g
%(resource)s    max_wait: 20s
    throttle:
      resume_jitter: %(jitter_ms)dms
      pause: %(pause)s
routes:
  - {host: 127.0.0.1, path_prefix: /, limit: api}
"""

MODES = ("leased", "standalone")


# --------------------------------------------------------------------------
# Load: a child process with paced client threads
# --------------------------------------------------------------------------

def _client(proxy_url, url, per_thread, active, stop, counts, errors, lock):
    s = h.proxied_session(types.SimpleNamespace(url=proxy_url))
    gap = 1.0 / per_thread
    due = None
    try:
        while not stop.is_set():
            if not active.is_set():
                active.wait(0.2)
                due = None
                continue
            now = time.monotonic()
            if due is None:
                due = now + random.uniform(0, gap)
            if due > now:
                time.sleep(min(due - now, 0.05))
                continue
            due = max(due + gap, now - gap)  # catch up one slot at most
            try:
                r = s.get(url, timeout=10)
            except Exception as e:  # Counted and shown at the end.
                with lock:
                    errors.append(repr(e))
                time.sleep(0.05)
                continue
            with lock:
                counts[r.status_code] += 1
    finally:
        s.close()


def load_main(proxy_urls, upstream_url, threads, per_thread, active, stop,
              out):
    """Runs in a child process: `threads` paced clients per sidecar, each
    sending GET <upstream>/p/<sidecar>/<thread> every 1/per_thread s while
    `active` is set, until `stop`. Puts (status counts, errors) on `out`."""
    counts, errors, lock = collections.Counter(), [], threading.Lock()
    pool = [threading.Thread(
        target=_client, daemon=True,
        args=(p, "%s/p/%d/%d" % (upstream_url, i, k), per_thread, active,
              stop, counts, errors, lock))
        for i, p in enumerate(proxy_urls) for k in range(threads)]
    for t in pool:
        t.start()
    stop.wait()
    for t in pool:
        t.join(15)
    out.put((dict(counts), len(errors), errors[:3]))


# --------------------------------------------------------------------------
# The fleets
# --------------------------------------------------------------------------

class Fleet:
    """One upstream, N sidecars (leased: plus a quota server) and a load
    process. close() stops everything it started."""

    def __init__(self, mode, a, proxy_bin, quota_bin, ctx):
        self.mode, self.n = mode, a.sidecars
        self.quota, self.proxies, self.proc = None, [], None
        self.client_result = None
        self.up = h.RateLimitedUpstream()  # unlimited but for the bans
        try:
            self._start(a, proxy_bin, quota_bin, ctx)
        except BaseException:
            self.close()
            raise

    def _start(self, a, proxy_bin, quota_bin, ctx):
        mode = self.mode
        pause = PAUSE % {"ban_ms": round(a.ban * 1000)}
        quota_yaml, resource = "", ""
        if mode == "leased":
            self.quota = h.QuotaServer(QUOTA % {
                "rate": a.rate, "burst": a.burst, "pause": pause},
                binary=quota_bin)
            resource = "    resource: api\n"
        for i in range(self.n):
            if self.quota:
                quota_yaml = (
                    "quota: {servers: [%s], sidecar_id: s%d, "
                    "backoff_initial: 50ms, backoff_max: 300ms}" %
                    (self.quota.target, i))
            self.proxies.append(h.start_proxy(SIDECAR % {
                "quota": quota_yaml, "resource": resource, "rate": a.rate,
                "burst": a.burst, "jitter_ms": a.resume_jitter_ms,
                "pause": pause}, binary=proxy_bin))
        if self.quota and not h.wait_until(lambda: all(
                "quota stream: connected" in h.admin_get(
                    p.admin_port, "/readyz")[2] for p in self.proxies), 20):
            raise RuntimeError("%s: sidecars did not connect to the quota "
                               "server" % mode)
        self.active, self.stop = ctx.Event(), ctx.Event()
        self.out = ctx.Queue()
        self.proc = ctx.Process(target=load_main, daemon=True, args=(
            [p.url for p in self.proxies], self.up.url, a.threads,
            a.thread_rate, self.active, self.stop, self.out))
        self.proc.start()

    def propagation(self):
        """(pause_propagation_ms_recent, pauses started or extended)."""
        st = self.quota.status()
        res = next((r for r in st.get("resources", [])
                    if r.get("name") == "api"), {})
        return (st.get("pause_propagation_ms_recent", []),
                sum(res.get("pauses_total", {}).values()))

    def histogram_count(self):
        """sluice_quota_pause_propagation_seconds_count from /metrics."""
        _, _, text = self.quota.admin_get("/metrics")
        m = re.search(r"^sluice_quota_pause_propagation_seconds_count"
                      r"(?:\{[^}]*\})? (\S+)$", text, re.M)
        return int(float(m.group(1))) if m else None

    def finish_load(self):
        if self.proc is None or self.client_result is not None:
            return
        self.stop.set()
        self.active.set()
        try:
            self.client_result = self.out.get(timeout=30)
        except Exception:  # queue.Empty: the child hung; shown as unknown
            self.client_result = ({}, -1, [])
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()

    def close(self):
        if self.proc is not None:
            self.finish_load()
        for p in self.proxies:
            p.close()
        if self.quota:
            self.quota.close()
        self.up.close()


# --------------------------------------------------------------------------
# One ban
# --------------------------------------------------------------------------

def sidecar_of(r):
    parts = r.path.split("/")
    return int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else -1


PAUSE_LAST_RE = re.compile(
    r'^sluice_proxy_pause_started_seconds\{(?=[^}]*limit="api")'
    r'(?=[^}]*origin="(local|remote)")[^}]*\} (\S+)$', re.M)


def paused_at(fleet, since):
    """Per sidecar, the wall-clock time its pause of this ban started (its
    pause start, local or remote, at or after `since`), and the first local
    start (the first throttle read): (first_local or None, [time or None
    per sidecar])."""
    first_local, first_remote, per = None, None, []
    for p in fleet.proxies:
        _, _, text = h.admin_get(p.admin_port, "/metrics")
        times = {origin: float(v) for origin, v in PAUSE_LAST_RE.findall(text)}
        mine = [t for t in times.values() if t >= since]
        per.append(min(mine) if mine else None)
        local = times.get("local", 0.0)
        if local >= since and (first_local is None or local < first_local):
            first_local = local
        remote = times.get("remote", 0.0)
        if remote >= since and (first_remote is None or remote < first_remote):
            first_remote = remote
    return first_local, first_remote, per


DELIVERED_RE = re.compile(
    r'^sluice_proxy_pause_delivered_total\{path="(\w+)"\} (\S+)$', re.M)


def delivery_counts(fleet):
    """Pauses the fleet's sidecars applied, by the path whose copy came
    first (sluice_proxy_pause_delivered_total)."""
    out = collections.Counter()
    for p in fleet.proxies:
        _, _, text = h.admin_get(p.admin_port, "/metrics")
        for path, v in DELIVERED_RE.findall(text):
            out[path] += int(float(v))
    return out


def run_ban(fleet, dialect, a):
    """Bans the fleet's upstream once and waits until every sidecar got a
    200 after the ban, then --gap more seconds. Returns a dict or None when
    the ban never began."""
    up = fleet.up
    if fleet.quota:
        recent0, pauses0 = fleet.propagation()
    up.reset()
    wall0 = time.time()
    up.ban(a.ban, dialect)
    if not h.wait_until(lambda: up.ban_window is not None, 5, 0.005):
        return None
    start, end = up.ban_window
    # Halfway through the ban every sidecar has paused: read when, on the
    # sidecars' own clocks (one host, so comparable).
    time.sleep(max(0.0, start + (end - start) / 2 - time.monotonic()))
    first_local, first_remote, per = paused_at(fleet, wall0)
    time.sleep(max(0.0, end - time.monotonic()))

    def resumed():
        ok = {sidecar_of(r) for r in up.snapshot()
              if r.t >= end and r.status == 200}
        return ok >= set(range(fleet.n))
    stuck = not h.wait_until(resumed, a.resume_timeout, 0.01)
    time.sleep(a.gap)
    rows = up.snapshot()
    during = sorted((r for r in rows if start <= r.t < end),
                    key=lambda r: r.t)
    first_ok = {}
    for r in sorted(rows, key=lambda r: r.t):
        if r.t >= end and r.status == 200:
            first_ok.setdefault(sidecar_of(r), r.t)
    window = a.window_ms / 1000.0
    res = {
        "mode": fleet.mode, "dialect": dialect,
        "requests": len(during),
        "leaked": sum(r.t >= start + window for r in during),
        "sidecars_hit": len({sidecar_of(r) for r in during}),
        "e2e_ms": 1000 * (during[-1].t - start) if during else 0.0,
        "resume_ms": (1000 * (max(first_ok.values()) - end)
                      if len(first_ok) >= fleet.n else None),
        "stuck": stuck,
        "fanout_ms": [], "broadcasts": 0,
        # First throttle read (a sidecar's local pause) -> last sidecar
        # paused; None when some sidecar did not pause (or none reported).
        "paused_ms": (1000 * (max(per) - first_local)
                      if first_local is not None and None not in per
                      else None),
        "unpaused": sum(t is None for t in per),
        # First throttle read -> first sidecar paused by the server.
        "first_remote_ms": (1000 * (first_remote - first_local)
                            if first_local is not None and first_remote
                            is not None and first_remote >= first_local
                            else None),
    }
    if fleet.quota:
        recent, pauses = fleet.propagation()
        res["broadcasts"] = pauses - pauses0
        # Chronological while the server holds fewer than its 1024 samples.
        if len(recent) < 1024 and len(recent) >= len(recent0):
            res["fanout_ms"] = recent[len(recent0):]
        else:
            res["fanout_ms"] = None  # wrapped: not attributable
    return res


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    v = sorted(values)
    return v[max(0, math.ceil(p / 100.0 * len(v)) - 1)]


def fmt_pcts(values):
    if not values:
        return "%8s %8s %8s %8s" % ("0", "-", "-", "-")
    return "%8d %8.2f %8.2f %8.2f" % (len(values), pct(values, 50),
                                      pct(values, 99), max(values))


def report(results, fleets, a, dialects, elapsed, fanout_all, hist_count):
    by_mode = {m: [r for r in results if r["mode"] == m] for m in MODES}
    print("\n== Pause latency, ms (nearest-rank percentiles) ==")
    print("%-58s %8s %8s %8s %8s" % ("", "samples", "p50", "p99", "max"))
    for m in MODES:
        if by_mode[m]:
            print("%-58s %s" % (
                "(p) first throttle read -> last sidecar paused, %s" % m,
                fmt_pcts([r["paused_ms"] for r in by_mode[m]
                          if r["paused_ms"] is not None])))
    for m in MODES:
        if by_mode[m]:
            left_out = [r for r in by_mode[m] if r["paused_ms"] is None]
            print("    (p) %s: %d of %d bans left out (%d with a sidecar "
                  "that never paused, %d where no sidecar read a throttle "
                  "itself)" % (
                      m, len(left_out), len(by_mode[m]),
                      sum(r["unpaused"] > 0 for r in left_out),
                      sum(r["unpaused"] == 0 for r in left_out)))
    if "leased" in fleets:
        print("%-58s %s" % (
            "(p1) first throttle read -> first sidecar paused remotely",
            fmt_pcts([r["first_remote_ms"] for r in by_mode["leased"]
                      if r["first_remote_ms"] is not None])))
        print("%-58s %s" % ("(a) server fan-out, report -> last PauseAck",
                            fmt_pcts(fanout_all)))
        if hist_count is not None:
            print("    (histogram sluice_quota_pause_propagation_seconds: "
                  "%d observations in all, warm-up included)" % hist_count)
    for m in MODES:
        if by_mode[m]:
            print("%-58s %s" % (
                "(b) end to end, first throttle -> last arrival, %s" % m,
                fmt_pcts([r["e2e_ms"] for r in by_mode[m]])))
    print("\n== Requests that met each ban (leak: >= %g ms after its first "
          "throttle) ==" % a.window_ms)
    print("%-10s %-16s %5s %9s %8s %7s %10s %13s %11s" % (
        "mode", "dialect", "bans", "reqs/ban", "leaked", "leaky", "sidecars",
        "broadcasts", "resume ms"))
    print("%-10s %-16s %5s %9s %8s %7s %10s %13s %11s" % (
        "", "", "", "mean", "total", "bans", "hit/ban", "per ban", "p50/p99"))
    for d in dialects + (["(all)"] if len(dialects) > 1 else []):
        for m in MODES:
            rs = [r for r in by_mode[m] if d == "(all)" or r["dialect"] == d]
            if not rs:
                continue
            res_ms = [r["resume_ms"] for r in rs if r["resume_ms"] is not None]
            print("%-10s %-16s %5d %9.2f %8d %7d %10.2f %13s %11s" % (
                m, d, len(rs), sum(r["requests"] for r in rs) / len(rs),
                sum(r["leaked"] for r in rs),
                sum(r["leaked"] > 0 for r in rs),
                sum(r["sidecars_hit"] for r in rs) / len(rs),
                "%.2f" % (sum(r["broadcasts"] for r in rs) / len(rs))
                if m == "leased" else "-",
                "%.0f/%.0f" % (pct(res_ms, 50), pct(res_ms, 99))
                if res_ms else "-"))
    print("reqs/ban: requests that reached the upstream during a ban; "
          "leaky bans: bans with a leak;\nsidecars hit/ban: sidecars that "
          "had a request there; broadcasts: pauses the server started or "
          "extended;\nresume ms: from the ban's end until every sidecar "
          "had a 200 again.")
    stuck = [r for r in results if r["stuck"]]
    unattributed = sum(r["fanout_ms"] is None for r in by_mode["leased"])
    print("\nsummary (%d s wall clock):" % round(elapsed))
    if "leased" in fleets:
        paused = [r["paused_ms"] for r in by_mode["leased"]
                  if r["paused_ms"] is not None]
        if paused:
            print("  pause latency (p) p50 %.2f ms, p99 %.2f ms: goal p99 <= "
                  "%g ms %s (%d of %d leased bans had a sidecar that never "
                  "paused)." % (
                      pct(paused, 50), pct(paused, 99), GOAL_P99_MS,
                      "met" if pct(paused, 99) <= GOAL_P99_MS else "NOT met",
                      sum(r["unpaused"] > 0 for r in by_mode["leased"]),
                      len(by_mode["leased"])))
        fan = fanout_all
        e2e = [r["e2e_ms"] for r in by_mode["leased"]]
        no_sample = sum(r["fanout_ms"] == [] for r in by_mode["leased"])
        if fan:
            print("  fan-out p99 %.2f ms: goal <= %g ms %s; end to end p99 "
                  "%.2f ms: %s." % (
                      pct(fan, 99), GOAL_P99_MS,
                      "met" if pct(fan, 99) <= GOAL_P99_MS else "NOT met",
                      pct(e2e, 99) if e2e else float("nan"),
                      "met" if e2e and pct(e2e, 99) <= GOAL_P99_MS
                      else "NOT met"))
        broadcasts = sum(r["broadcasts"] for r in by_mode["leased"])
        print("  %d fan-out samples from %d pause broadcasts (starts and "
              "extensions) in %d leased bans, %d bans without one: the "
              "server keeps a sample only for a broadcast whose every "
              "PauseAck came before the next extension%s." % (
                  len(fan), broadcasts, len(by_mode["leased"]), no_sample,
                  "; %d bans not attributable" % unattributed
                  if unattributed else ""))
        alone = sum(r["requests"] <= 1 for r in by_mode["leased"])
        print("  (b) sees only requests that were sent: at %g req/s offered "
              "one arrives every %.1f ms on average, and %d of %d leased "
              "bans met no request but the first." % (
                  a.sidecars * a.threads * a.thread_rate,
                  1000.0 / (a.sidecars * a.threads * a.thread_rate), alone,
                  len(by_mode["leased"])))
    leaks = {m: sum(r["leaked"] for r in by_mode[m]) for m in MODES}
    hits = {m: (sum(r["sidecars_hit"] for r in by_mode[m]) /
                max(1, len(by_mode[m]))) for m in MODES}
    reqs = {m: (sum(r["requests"] for r in by_mode[m]) /
                max(1, len(by_mode[m]))) for m in MODES}
    if by_mode["leased"] and by_mode["standalone"]:
        print("  leaked requests: leased %d, standalone %d (goal 0); "
              "requests into a ban %.2f vs %.2f per ban (%.2fx), sidecars "
              "that met it %.2f vs %.2f." % (
                  leaks["leased"], leaks["standalone"], reqs["leased"],
                  reqs["standalone"],
                  reqs["standalone"] / reqs["leased"] if reqs["leased"]
                  else float("nan"), hits["leased"], hits["standalone"]))
    else:
        for m in MODES:
            if by_mode[m]:
                print("  %s: %d leaked requests (goal 0)." % (m, leaks[m]))
    if stuck:
        print("  %d bans where some sidecar sent no 200 within %.1f s after "
              "the ban (%s)." % (len(stuck), a.resume_timeout, ", ".join(
                  sorted({"%s/%s" % (r["mode"], r["dialect"])
                          for r in stuck}))))
    for m, f in fleets.items():
        counts, nerr, errs = f.client_result or ({}, 0, [])
        print("  %s clients: responses %s; errors %d%s" % (
            m, dict(sorted(counts.items())), nerr,
            (", e.g. %s" % errs[0]) if errs else ""))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Binaries: $SLUICE_PROXY_BIN and $SLUICE_QUOTA_BIN (default "
               "build/proxy/sluice-proxy and "
               "build/quota-server/sluice-quota-server). Always exits 0.")
    ap.add_argument("--sidecars", type=int, default=8)
    ap.add_argument("--bans", type=int, default=100,
                    help="measured bans per dialect and mode")
    ap.add_argument("--ban", type=float, default=0.3,
                    help="seconds per ban (also the sidecars' pause max)")
    ap.add_argument("--dialects", default="retry-after",
                    help="comma list of %s, or 'all'" %
                    ", ".join(h.BAN_DIALECTS))
    ap.add_argument("--modes", default="leased,standalone",
                    help="fleets to measure: leased, standalone or both")
    ap.add_argument("--threads", type=int, default=3,
                    help="client threads per sidecar")
    ap.add_argument("--thread-rate", type=float, default=10.0,
                    help="requests/s per client thread")
    ap.add_argument("--rate", type=float, default=1000.0,
                    help="the limit (tokens/s): sidecars' and quota server's")
    ap.add_argument("--burst", type=float, default=100.0)
    ap.add_argument("--window-ms", type=float, default=50.0,
                    help="requests later than this after a ban's first "
                    "throttle count as leaked")
    ap.add_argument("--gap", type=float, default=0.1,
                    help="seconds of traffic after every sidecar resumed, "
                    "before the next ban")
    ap.add_argument("--block", type=int, default=10,
                    help="bans per block; blocks alternate between modes")
    ap.add_argument("--warmup-bans", type=int, default=1,
                    help="unrecorded bans per mode at the start")
    ap.add_argument("--resume-jitter-ms", type=int, default=20,
                    help="sidecars' throttle.resume_jitter")
    ap.add_argument("--resume-timeout", type=float, default=5.0)
    a = ap.parse_args()
    dialects = (list(h.BAN_DIALECTS) if a.dialects == "all"
                else [d.strip() for d in a.dialects.split(",") if d.strip()])
    bad = [d for d in dialects if d not in h.BAN_DIALECTS]
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if bad or not dialects:
        ap.error("unknown dialect(s) %s" % bad)
    if not modes or any(m not in MODES for m in modes):
        ap.error("--modes takes leased and/or standalone")
    if a.sidecars < 1 or a.bans < 1 or a.ban <= 0 or a.block < 1:
        ap.error("need --sidecars, --bans, --block >= 1 and --ban > 0")
    proxy_bin, quota_bin = (
        os.environ.get(v) or os.path.join(ROOT, d) for v, d in (
            ("SLUICE_PROXY_BIN", "build/proxy/sluice-proxy"),
            ("SLUICE_QUOTA_BIN", "build/quota-server/sluice-quota-server")))
    for b in ([proxy_bin] + ([quota_bin] if "leased" in modes else [])):
        if not os.access(b, os.X_OK):
            print("%s is not an executable; build it or set "
                  "SLUICE_PROXY_BIN / SLUICE_QUOTA_BIN" % b)
            return 0
    offered = a.sidecars * a.threads * a.thread_rate
    print("pause_bench: %d sidecars per fleet, %d client threads x %g req/s "
          "each (%g req/s offered per fleet; limit %g/s, burst %g; upstream "
          "unlimited but for the bans)" % (
              a.sidecars, a.threads, a.thread_rate, offered, a.rate,
              a.burst))
    print("  %d bans of %g s per dialect and mode (+%d warm-up), dialects %s,"
          " modes %s, blocks of %d alternating; leak: >= %g ms after a ban's "
          "first throttle" % (a.bans, a.ban, a.warmup_bans,
                              ",".join(dialects), ",".join(modes), a.block,
                              a.window_ms))
    print("  pause %s on sidecars and server, resume_jitter %d ms; load "
          "average at start %s" % (
              PAUSE % {"ban_ms": round(a.ban * 1000)}, a.resume_jitter_ms,
              " ".join("%.2f" % x for x in os.getloadavg())))
    ctx = multiprocessing.get_context("spawn")
    fleets, results = {}, []
    t_begin = time.monotonic()
    fanout_all, hist_count = [], None
    try:
        for m in modes:
            fleets[m] = Fleet(m, a, proxy_bin, quota_bin, ctx)
        plan = [dialects[j % len(dialects)]
                for j in range(a.bans * len(dialects))]
        blocks = [plan[k:k + a.block] for k in range(0, len(plan), a.block)]
        warm = {m: a.warmup_bans for m in modes}
        failed = collections.Counter()
        for b, block in enumerate(blocks):
            order = modes if b % 2 == 0 else modes[::-1]
            for m in order:
                f = fleets[m]
                f.active.set()
                time.sleep(0.3)  # threads wake, leases refill
                todo = [(d, False) for d in dialects[:1]] * warm[m]
                warm[m] = 0
                todo += [(d, True) for d in block]
                for d, recorded in todo:
                    res = run_ban(f, d, a)
                    if res is None:
                        failed[m] += 1
                    elif recorded:
                        results.append(res)
                        if res["fanout_ms"]:
                            fanout_all.extend(res["fanout_ms"])
                f.active.clear()
            done = sum(len(x) for x in blocks[:b + 1])
            print("  block %d/%d done (%d bans per mode), %.0f s" % (
                b + 1, len(blocks), done, time.monotonic() - t_begin),
                flush=True)
        if failed:
            print("  bans that never began (no request reached the "
                  "upstream within 5 s): %s" % dict(failed))
        if "leased" in fleets:
            f = fleets["leased"]
            hist_count = f.histogram_count()
            delivered = delivery_counts(f)
            if any(r["fanout_ms"] is None for r in results):
                # The server's ring wrapped: use all it holds.
                fanout_all = f.propagation()[0]
        for f in fleets.values():
            f.finish_load()
        report(results, fleets, a, dialects, time.monotonic() - t_begin,
               fanout_all, hist_count)
        if "leased" in fleets:
            print("  leased sidecars applied %d pauses from a fast-path "
                  "datagram first and %d from the stream first." % (
                      delivered.get("datagram", 0),
                      delivered.get("stream", 0)))
    except Exception as e:  # A measurement: say what broke, exit 0.
        print("pause_bench stopped: %r" % e)
    finally:
        for f in fleets.values():
            f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
