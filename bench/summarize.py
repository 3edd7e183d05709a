#!/usr/bin/env python3
"""Summarises the raw results of bench/load.sh.

Input: one file of lines written by load.sh, each a tag then key=value pairs:
  RESULT round=1 path=sluice conns=32 requests=N duration_us=N rps=F
         p50_us=N p99_us=N errors=N non2xx=N cpu_ticks=N|-
  RSS path=sluice when=start|after kb=N
  META clk_tck=100 conns=32 rounds=3 duration=5
  LABEL path=sluice text=free text to the end of the line

Output: a Markdown table of medians over rounds per path, the spread over
rounds, then sluice's ratios against HAProxy and Squid beside the goals.
Standard library only.
"""

import statistics
import sys

PATH_ORDER = ["direct", "sluice", "sluice_limit", "squid", "haproxy"]
SLUICE_PATHS = ["sluice", "sluice_limit"]
PROXY_PATHS = ["sluice", "sluice_limit", "squid", "haproxy"]
RSS_GOAL_MB = 16.0


def parse(lines):
  results, rss, meta, labels, dead = [], {}, {}, {}, {}
  for raw in lines:
    parts = raw.strip().split(" ", 1)
    if len(parts) < 2:
      continue
    tag, rest = parts
    if tag == "LABEL":
      path, _, text = rest.partition(" text=")
      labels[path.removeprefix("path=")] = text
      continue
    fields = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv)
    if tag == "RESULT":
      results.append(fields)
    elif tag == "RSS":
      rss[(fields["path"], fields["when"])] = int(fields["kb"])
    elif tag == "META":
      meta = fields
    elif tag == "DEAD":
      dead[fields["path"]] = fields.get("status", "?")
  return results, rss, meta, labels, dead


def median(values):
  return statistics.median(values) if values else None


class PathStats:
  """Medians over rounds for one path at one connection count."""

  def __init__(self, runs, clk_tck):
    self.n = len(runs)
    self.rps = [float(r["rps"]) for r in runs]
    self.p50 = [int(r["p50_us"]) for r in runs]
    self.p99 = [int(r["p99_us"]) for r in runs]
    self.errors = sum(int(r["errors"]) + int(r["non2xx"]) for r in runs)
    self.cpu = []
    for r in runs:
      requests = int(r["requests"])
      if r.get("cpu_ticks", "-") != "-" and requests > 0:
        self.cpu.append(int(r["cpu_ticks"]) * 1e6 / clk_tck / requests)

  def med(self, name):
    return median(getattr(self, name))


def fmt_rps(v):
  if v is None:
    return "–"
  if v >= 10000:
    return f"{v / 1000:.1f}k"
  return f"{v / 1000:.2f}k" if v >= 1000 else f"{v:.0f}"


def fmt_num(v, digits=0):
  return "–" if v is None else f"{v:.{digits}f}"


def fmt_range(values, fn):
  if not values:
    return "–"
  return f"{fn(min(values))}–{fn(max(values))}"


def verdict(ok):
  if ok is None:
    return "n/a"
  return "met" if ok else "MISSED"


def main(argv):
  if len(argv) != 2:
    print(f"usage: {argv[0]} RESULTS_FILE", file=sys.stderr)
    return 2
  with open(argv[1], encoding="utf-8") as f:
    results, rss, meta, labels, dead = parse(f)
  clk_tck = int(meta.get("clk_tck", "100"))
  conns = int(meta.get("conns", "32"))

  paths = [p for p in PATH_ORDER if any(r["path"] == p for r in results)]
  stats = {}
  for p in paths:
    for c in (conns, 1):
      runs = [r for r in results if r["path"] == p and int(r["conns"]) == c]
      stats[(p, c)] = PathStats(runs, clk_tck)

  def get(p, c, name):
    s = stats.get((p, c))
    return s.med(name) if s and s.n else None

  print(f"## Medians over {meta.get('rounds', '?')} interleaved rounds "
        f"of {meta.get('duration', '?')} s")
  print()
  print(f"| path | req/s, {conns} conns | p50/p99 µs | req/s, 1 conn | "
        f"p50 µs | proxy CPU µs/req |")
  print("|---|---|---|---|---|---|")
  for p in paths:
    print(f"| {labels.get(p, p)} | {fmt_rps(get(p, conns, 'rps'))} | "
          f"{fmt_num(get(p, conns, 'p50'))}/{fmt_num(get(p, conns, 'p99'))} | "
          f"{fmt_rps(get(p, 1, 'rps'))} | {fmt_num(get(p, 1, 'p50'))} | "
          f"{fmt_num(get(p, conns, 'cpu'), 1)} |")
  print()
  print(f"CPU per request is the proxy process's utime+stime over the "
        f"{conns}-connection runs, divided by the requests wrk completed.")
  print()

  print("Spread over rounds (min–max):")
  print()
  print(f"| path | runs ({conns} / 1 conn) | req/s, {conns} conns | "
        f"req/s, 1 conn | p50 µs, 1 conn | CPU µs/req, {conns} conns | "
        f"CPU µs/req, 1 conn |")
  print("|---|---|---|---|---|---|---|")
  for p in paths:
    hi, lo = stats[(p, conns)], stats[(p, 1)]
    print(f"| {p} | {hi.n} / {lo.n} | {fmt_range(hi.rps, fmt_rps)} | "
          f"{fmt_range(lo.rps, fmt_rps)} | "
          f"{fmt_range(lo.p50, fmt_num)} | "
          f"{fmt_range(hi.cpu, lambda v: fmt_num(v, 1))} | "
          f"{fmt_range(lo.cpu, lambda v: fmt_num(v, 1))} |")
  print()

  for p in paths:
    errors = stats[(p, conns)].errors + stats[(p, 1)].errors
    if errors:
      print(f"WARNING: {p}: {errors} socket errors or non-2xx responses "
            f"during the runs; its figures are suspect.")

  for p, status in dead.items():
    signal = int(status) - 128 if status.isdigit() and int(status) > 128 else None
    how = f"killed by signal {signal}" if signal else f"exit status {status}"
    print(f"WARNING: {p}: its server exited during the benchmark ({how}); "
          f"its figures cover only the runs before that.")
  if dead:
    print()

  rss_rows = [p for p in PROXY_PATHS if (p, "start") in rss or (p, "after") in rss]
  if rss_rows:
    print("Resident memory (VmRSS), MB: right after startup / after the runs")
    for p in rss_rows:
      start, after = rss.get((p, "start")), rss.get((p, "after"))
      print(f"  {p:<13} {fmt_num(start / 1024 if start else None, 1):>6} / "
            f"{fmt_num(after / 1024 if after else None, 1)}")
    print()

  direct_p50 = get("direct", 1, "p50")
  haproxy_added = None
  if direct_p50 is not None and get("haproxy", 1, "p50") is not None:
    haproxy_added = get("haproxy", 1, "p50") - direct_p50

  def ratio(a, b):
    return a / b if a is not None and b else None

  any_sluice = False
  for sp in SLUICE_PATHS:
    if sp not in paths:
      continue
    any_sluice = True
    print(f"## Goals for {labels.get(sp, sp)}")
    print()
    print("| measure | value | goal | |")
    print("|---|---|---|---|")
    rows = []
    for c in (conns, 1):
      r = ratio(get(sp, c, "rps"), get("haproxy", c, "rps"))
      rows.append((f"req/s ÷ HAProxy, {c} conn{'s' if c > 1 else ''}",
                   r, "≥ 1.0×", None if r is None else r >= 1.0))
    r = ratio(get(sp, conns, "rps"), get("squid", conns, "rps"))
    rows.append((f"req/s ÷ Squid, {conns} conns", r, "≥ 3×",
                 None if r is None else r >= 3.0))
    r = ratio(get(sp, 1, "rps"), get("squid", 1, "rps"))
    rows.append(("req/s ÷ Squid, 1 conn", r, "(info)", None))
    r = ratio(get(sp, conns, "cpu"), get("haproxy", conns, "cpu"))
    rows.append(("CPU/req ÷ HAProxy's", r, "(info)", None))
    for name, value, goal, ok in rows:
      shown = "–" if value is None else f"{value:.2f}×"
      print(f"| {name} | {shown} | {goal} | {verdict(ok) if goal != '(info)' else ''} |")
    added = None
    if direct_p50 is not None and get(sp, 1, "p50") is not None:
      added = get(sp, 1, "p50") - direct_p50
    ok = None if added is None or haproxy_added is None else added <= haproxy_added
    print(f"| added p50 at 1 conn (path − direct) | {fmt_num(added)} µs | "
          f"≤ HAProxy's {fmt_num(haproxy_added)} µs | {verdict(ok)} |")
    for when, text in (("start", "idle RSS after startup"),
                       ("after", "idle RSS after the runs")):
      kb = rss.get((sp, when))
      mb = kb / 1024 if kb else None
      ok = None if mb is None else mb <= RSS_GOAL_MB
      print(f"| {text} | {fmt_num(mb, 1)} MB | ≤ {RSS_GOAL_MB:.0f} MB | "
            f"{verdict(ok)} |")
    print()
  if not any_sluice:
    print("sluice-proxy was not measured (binary missing or it failed to "
          "start); no goals checked.")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
