#!/usr/bin/env python3
"""Summarises the raw results of bench/tls_load.sh.

Input: one file of lines written by tls_load.sh, each a tag then key=value
pairs:
  RESULT round=1 path=sluice kind=keepalive|warm|cold conns=N requests=N
         errors=N window_us=N rps=F p50_us=N p90_us=N p99_us=N
         protocol=P cipher=C cpu_ticks=N|-
  IDLE path=sluice conns=N open=N rss_before_kb=N rss_after_kb=N errors=N ...
  RSS path=sluice when=start|after kb=N
  METRIC <a Prometheus sample line of sluice's /metrics>
  META clk_tck=100 conns=32 newconn_conns=8 rounds=3 duration=5 idle_conns=N
  LABEL path=sluice text=free text to the end of the line
  DEAD path=sluice status=N

Output: Markdown tables of medians over rounds (kept-alive tunnels, new
tunnels per second, the spread), sluice's TLS counters (upstream session
resumption, leaf cache), RSS with idle tunnels, then the goals: sluice's
CPU per request ÷ HAProxy's, sluice's req/s ÷ Squid's, RSS with the idle
tunnels. Standard library only.
"""

import re
import statistics
import sys

# The table formats of the plain load benchmark's summary (same folder).
from summarize import fmt_num, fmt_range, fmt_rps, verdict

PATH_ORDER = ["direct", "sluice", "squid", "haproxy"]
PROXY_PATHS = ["sluice", "squid", "haproxy"]
RSS_GOAL_MB = 96.0
METRIC_RE = re.compile(r"^(\w+)(?:\{([^}]*)\})?\s+(\S+)")


def parse(lines):
  results, idle, rss, meta, labels, dead, metrics = [], {}, {}, {}, {}, {}, []
  for raw in lines:
    parts = raw.strip().split(" ", 1)
    if len(parts) < 2:
      continue
    tag, rest = parts
    if tag == "LABEL":
      path, _, text = rest.partition(" text=")
      labels[path.removeprefix("path=")] = text
      continue
    if tag == "METRIC":
      m = METRIC_RE.match(rest)
      if m:
        metrics.append((m.group(1), m.group(2) or "", float(m.group(3))))
      continue
    fields = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv)
    if tag == "RESULT":
      results.append(fields)
    elif tag == "IDLE":
      idle[fields["path"]] = fields
    elif tag == "RSS":
      rss[(fields["path"], fields["when"])] = int(fields["kb"])
    elif tag == "META":
      meta = fields
    elif tag == "DEAD":
      dead[fields["path"]] = fields.get("status", "?")
  return results, idle, rss, meta, labels, dead, metrics


class Runs:
  """One path, one kind, one connection count: values per round."""

  def __init__(self, runs, clk_tck):
    self.n = len(runs)
    self.rps = [float(r["rps"]) for r in runs]
    self.p50 = [int(r["p50_us"]) for r in runs]
    self.p99 = [int(r["p99_us"]) for r in runs]
    self.errors = sum(int(r["errors"]) for r in runs)
    self.cpu = []
    for r in runs:
      requests = int(r["requests"])
      if r.get("cpu_ticks", "-") != "-" and requests > 0:
        self.cpu.append(int(r["cpu_ticks"]) * 1e6 / clk_tck / requests)
    self.protocols = sorted({f"{r.get('protocol')} {r.get('cipher')}"
                             for r in runs})

  def med(self, name):
    values = getattr(self, name)
    return statistics.median(values) if values else None


def ratio(a, b):
  return a / b if a is not None and b else None


def fmt_ratio(r):
  return "–" if r is None else f"{r:.2f}×"


def metric_sum(metrics, name, label_filter=""):
  return sum(v for n, labels, v in metrics
             if n == name and label_filter in labels)


def main(argv):
  if len(argv) != 2:
    print(f"usage: {argv[0]} RESULTS_FILE", file=sys.stderr)
    return 2
  with open(argv[1], encoding="utf-8") as f:
    results, idle, rss, meta, labels, dead, metrics = parse(f)
  clk_tck = int(meta.get("clk_tck", "100"))
  conns = int(meta.get("conns", "32"))
  nconns = int(meta.get("newconn_conns", "8"))

  stats = {}
  for r in results:
    key = (r["path"], r["kind"], int(r["conns"]))
    stats.setdefault(key, []).append(r)
  stats = {k: Runs(v, clk_tck) for k, v in stats.items()}
  paths = [p for p in PATH_ORDER if any(k[0] == p for k in stats)]

  def get(p, kind, c, name):
    s = stats.get((p, kind, c))
    return s.med(name) if s and s.n else None

  print(f"## Medians over {meta.get('rounds', '?')} interleaved rounds of "
        f"{meta.get('duration', '?')} s")
  print()
  print("Kept-alive TLS connections (through a CONNECT tunnel for sluice and "
        "Squid; straight to HAProxy and nginx), one GET after another:")
  print()
  print(f"| path | req/s, {conns} conns | p50/p99 µs | CPU µs/req, {conns} "
        f"conns | req/s, 1 conn | p50 µs | CPU µs/req, 1 conn |")
  print("|---|---|---|---|---|---|---|")
  for p in paths:
    print(f"| {labels.get(p, p)} | {fmt_rps(get(p, 'keepalive', conns, 'rps'))} | "
          f"{fmt_num(get(p, 'keepalive', conns, 'p50'))}/"
          f"{fmt_num(get(p, 'keepalive', conns, 'p99'))} | "
          f"{fmt_num(get(p, 'keepalive', conns, 'cpu'), 1)} | "
          f"{fmt_rps(get(p, 'keepalive', 1, 'rps'))} | "
          f"{fmt_num(get(p, 'keepalive', 1, 'p50'))} | "
          f"{fmt_num(get(p, 'keepalive', 1, 'cpu'), 1)} |")
  print()
  print(f"New tunnel per request ({nconns} workers; TCP connect, CONNECT for "
        "the forward proxies, a full TLS handshake (the client never resumes), "
        "one GET, close). Warm: one name, so sluice's leaf cache hits; cold: "
        "sluice only, the tunnels alternate between two names with a leaf "
        "cache of one, so every tunnel mints a leaf:")
  print()
  print("| path | tunnels/s warm | p50/p99 µs | CPU µs/tunnel | tunnels/s cold "
        "| p50/p99 µs | CPU µs/tunnel |")
  print("|---|---|---|---|---|---|---|")
  for p in paths:
    cold = "sluice_cold" if p == "sluice" else None
    def c(name, digits=None):
      if cold is None:
        return "–"
      v = get(cold, "cold", nconns, name)
      return fmt_rps(v) if digits is None else fmt_num(v, digits)
    print(f"| {labels.get(p, p)} | {fmt_rps(get(p, 'warm', nconns, 'rps'))} | "
          f"{fmt_num(get(p, 'warm', nconns, 'p50'))}/"
          f"{fmt_num(get(p, 'warm', nconns, 'p99'))} | "
          f"{fmt_num(get(p, 'warm', nconns, 'cpu'), 1)} | "
          f"{c('rps')} | {c('p50', 0)}/{c('p99', 0)} | {c('cpu', 1)} |")
  print()
  print("CPU is the proxy's utime+stime (all its processes: Squid's "
        "certificate helper too) over the run, divided by the requests or "
        "tunnels the client completed.")
  print()

  print("Spread over rounds (min–max):")
  print()
  print("| path | kind | conns | runs | req/s | p50 µs | CPU µs/req |")
  print("|---|---|---|---|---|---|---|")
  for (p, kind, c), s in sorted(stats.items()):
    print(f"| {p} | {kind} | {c} | {s.n} | {fmt_range(s.rps, fmt_rps)} | "
          f"{fmt_range(s.p50, fmt_num)} | "
          f"{fmt_range(s.cpu, lambda v: fmt_num(v, 1))} |")
  print()
  protocols = sorted({x for s in stats.values() for x in s.protocols})
  print(f"Negotiated: {', '.join(protocols)}")
  print()

  for (p, kind, c), s in sorted(stats.items()):
    if s.errors:
      print(f"WARNING: {p} {kind} c={c}: {s.errors} failed requests or "
            f"tunnels; its figures are suspect.")
  for p, status in dead.items():
    signal = int(status) - 128 if status.isdigit() and int(status) > 128 else None
    how = f"killed by signal {signal}" if signal else f"exit status {status}"
    print(f"WARNING: {p}: its server exited during the benchmark ({how}); "
          f"its figures cover only the runs before that.")

  resumed = full = None
  if metrics:
    hs = "sluice_proxy_origin_tls_handshakes_total"
    resumed = metric_sum(metrics, hs, 'resumed="true"')
    full = metric_sum(metrics, hs, 'resumed="false"')
    hits = metric_sum(metrics, "sluice_proxy_tls_leaf_cache_hits_total")
    misses = metric_sum(metrics, "sluice_proxy_tls_leaf_cache_misses_total")
    print("sluice's TLS counters over the whole run (its /metrics at the end):")
    print()
    total = resumed + full
    rate = f"{100 * resumed / total:.1f} %" if total else "–"
    print(f"- origin handshakes: {total:.0f}, of which resumed {resumed:.0f} "
          f"(resumption hit rate {rate})")
    print(f"- leaf cache: {hits:.0f} hits, {misses:.0f} misses (mints)")
    reads = [(labels_, v) for n, labels_, v in metrics
             if n == "sluice_proxy_tunnels_read_total" and v]
    if reads:
      print("- tunnels read: " + ", ".join(
          f"{l.split('=', 1)[1].strip(chr(34))} {v:.0f}" for l, v in reads))
    fails = [(labels_, v) for n, labels_, v in metrics
             if n == "sluice_proxy_origin_tls_failures_total" and v]
    if fails:
      print("- origin TLS failures: " + ", ".join(
          f"{l} {v:.0f}" for l, v in fails))
    print()

  if idle:
    print(f"Resident memory (VmRSS) with {meta.get('idle_conns', '?')} idle "
          "tunnels (each: CONNECT or TCP, TLS handshake, one request, then "
          "silence):")
    print()
    print("| path | tunnels open | errors | RSS before, MB | RSS with them, MB "
          "| KB per tunnel |")
    print("|---|---|---|---|---|---|")
    for p in PROXY_PATHS:
      if p not in idle:
        continue
      d = idle[p]
      b, a, n = int(d["rss_before_kb"]), int(d["rss_after_kb"]), int(d["open"])
      per = (a - b) / n if n else None
      print(f"| {labels.get(p, p)} | {n} | {d.get('errors', '?')} | "
            f"{b / 1024:.1f} | {a / 1024:.1f} | {fmt_num(per, 1)} |")
    print()

  rss_rows = [p for p in PROXY_PATHS if (p, "start") in rss or (p, "after") in rss]
  if rss_rows:
    print("Resident memory (VmRSS), MB: right after startup / at the end")
    for p in rss_rows:
      start, after = rss.get((p, "start")), rss.get((p, "after"))
      print(f"  {p:<8} {fmt_num(start / 1024 if start else None, 1):>6} / "
            f"{fmt_num(after / 1024 if after else None, 1)}")
    print()

  if "sluice" not in paths:
    print("sluice-proxy was not measured (binary missing or it failed to "
          "start); no goals checked.")
    return 0
  print("## Goals for sluice-proxy intercepting")
  print()
  print("| measure | value | goal | |")
  print("|---|---|---|---|")
  r = ratio(get("sluice", "keepalive", conns, "cpu"),
            get("haproxy", "keepalive", conns, "cpu"))
  print(f"| CPU/req ÷ HAProxy's, {conns} conns | {fmt_ratio(r)} | ≤ 1.0× | "
        f"{verdict(None if r is None else r <= 1.0)} |")
  r = ratio(get("sluice", "keepalive", 1, "cpu"),
            get("haproxy", "keepalive", 1, "cpu"))
  print(f"| CPU/req ÷ HAProxy's, 1 conn | {fmt_ratio(r)} | (info) | |")
  r = ratio(get("sluice", "keepalive", conns, "rps"),
            get("squid", "keepalive", conns, "rps"))
  print(f"| req/s ÷ Squid's, {conns} conns | {fmt_ratio(r)} | ≥ 3× | "
        f"{verdict(None if r is None else r >= 3.0)} |")
  for name, other in (("Squid's, 1 conn", "squid"),
                      ("HAProxy's, 1 conn", "haproxy")):
    r = ratio(get("sluice", "keepalive", 1, "rps"),
              get(other, "keepalive", 1, "rps"))
    print(f"| req/s ÷ {name} | {fmt_ratio(r)} | (info) | |")
  r = ratio(get("sluice", "keepalive", conns, "rps"),
            get("haproxy", "keepalive", conns, "rps"))
  print(f"| req/s ÷ HAProxy's, {conns} conns | {fmt_ratio(r)} | (info) | |")
  for other in ("squid", "haproxy"):
    r = ratio(get("sluice", "warm", nconns, "rps"),
              get(other, "warm", nconns, "rps"))
    print(f"| new tunnels/s warm ÷ {other}'s | {fmt_ratio(r)} | (info) | |")
  r = ratio(get("sluice_cold", "cold", nconns, "rps"),
            get("sluice", "warm", nconns, "rps"))
  print(f"| new tunnels/s cold ÷ warm | {fmt_ratio(r)} | (info) | |")
  if resumed is not None and resumed + full:
    print(f"| upstream resumption hit rate | "
          f"{100 * resumed / (resumed + full):.1f} % | (info) | |")
  if "sluice" in idle:
    mb = int(idle["sluice"]["rss_after_kb"]) / 1024
    print(f"| RSS with {idle['sluice']['open']} idle tunnels | {mb:.1f} MB | "
          f"≤ {RSS_GOAL_MB:.0f} MB | {verdict(mb <= RSS_GOAL_MB)} |")
  print()
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
