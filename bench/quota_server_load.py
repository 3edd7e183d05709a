#!/usr/bin/python3
"""The quota server's own CPU per lease report.

Starts build/quota-server/sluice-quota-server (one resource `api` whose limit
never binds, learning off) pinned to one core, and drives it with
quota_service_benchmark's client streams (SLUICE_QUOTA_TARGET) pinned to
another. Around each measured window (framed by the benchmark on stderr) it
reads the server's CPU time (utime + stime of all its threads, from
/proc/PID/stat) and its message counters (GET /metrics on the admin port),
then prints per window: reports/s, server CPU per report, reports per
server-CPU-second, grants per report and the clients' CPU per report.

  /usr/bin/python3 bench/quota_server_load.py            # defaults below
  /usr/bin/python3 bench/quota_server_load.py --scenario 0:8 --seconds 3

A scenario is PACE_MS:STREAMS[,STREAMS...]; pace 0 floods (each stream
writes its next report as soon as the last one left), pace P sends one
report per stream every P ms, like a sidecar. With --datagrams the paced
streams lease over the fast path once welcomed, as sidecars do by default
(reports and grants as UDP datagrams; docs/leasing.md); the server counts
those messages in sluice_quota_messages_total too. Binaries come from
$SLUICE_QUOTA_BIN and $SLUICE_QUOTA_BENCH (default build/...).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
METRIC = re.compile(
    r'^sluice_quota_messages_total\{direction="(in|out)"\}\s+(\S+)$')

CONFIG = """\
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
learning: false
resources:
  api:
    rate: 1000000000
    burst: 1000000000
"""


def cpu_seconds(pid):
    """utime + stime of every thread of `pid`, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def context_switches(pid):
    """Voluntary + involuntary context switches of every thread of `pid`."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key.endswith("ctxt_switches"):
                        total += int(value)
        except FileNotFoundError:
            pass  # the thread ended meanwhile
    return total


def messages(admin):
    """The server's sluice_quota_messages_total, as {"in": n, "out": n}."""
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = METRIC.match(line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def sample(pid, admin):
    msgs = messages(admin)
    return (cpu_seconds(pid), msgs.get("in", 0), msgs.get("out", 0),
            context_switches(pid))


def pin(cpu):
    return ["taskset", "-c", cpu] if cpu else []


def start_server(binary, config_path, cpu):
    proc = subprocess.Popen(pin(cpu) + [binary, "--config", config_path],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)
    for line in proc.stderr:
        m = re.search(r"listening grpc=(\S+) admin=(\S+)", line)
        if m:
            # Keep draining the log so the server never blocks on it.
            threading.Thread(target=lambda: [None for _ in proc.stderr],
                             daemon=True).start()
            return proc, m.group(1), m.group(2)
    raise RuntimeError("sluice-quota-server exited before listening")


def run_scenario(args, pace_ms, streams, config_path):
    server, grpc_addr, admin = start_server(args.server_bin, config_path,
                                            args.server_cpu)
    env = dict(os.environ,
               SLUICE_QUOTA_TARGET=grpc_addr,
               SLUICE_QUOTA_STREAMS=streams,
               SLUICE_QUOTA_PACE_MS=str(pace_ms),
               SLUICE_QUOTA_WARMUP_S=str(args.warmup),
               SLUICE_QUOTA_SECONDS=str(args.seconds),
               SLUICE_QUOTA_DATAGRAMS="1" if args.datagrams and pace_ms
               else "0")
    bench = subprocess.Popen(
        pin(args.client_cpu) + [args.bench_bin, "--benchmark_format=json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout = []
    reader = threading.Thread(target=lambda: stdout.append(bench.stdout.read()),
                              daemon=True)
    reader.start()
    windows = []
    start = None
    try:
        for line in bench.stderr:
            if line.startswith("quota-bench window start"):
                start = (int(line.split("streams=")[1]),
                         sample(server.pid, admin))
            elif line.startswith("quota-bench window end") and start:
                windows.append((start[0], start[1], sample(server.pid, admin)))
                start = None
            elif line.strip():
                sys.stderr.write(line)
        bench.wait()
        reader.join()
    finally:
        server.terminate()
        server.wait()
    client = {}
    if stdout and stdout[0].strip():
        for b in json.loads(stdout[0])["benchmarks"]:
            client[int(b["name"].split("streams:")[1].split("/")[0])] = b
    rows = []
    for n, (c0, in0, out0, cs0), (c1, in1, out1, cs1) in windows:
        b = client.get(n, {})
        wall = b.get("real_time", 0) / 1e3  # kMillisecond
        reports = in1 - in0
        cpu = c1 - c0
        rows.append({
            "pace_ms": pace_ms,
            "path": "udp" if args.datagrams and pace_ms else "grpc",
            "msgs_per_server_cpu_s": ((in1 - in0) + (out1 - out0)) / cpu
            if cpu else float("inf"),
            "streams": n,
            "reports_per_s": reports / wall if wall else float("nan"),
            "server_cores": cpu / wall if wall else float("nan"),
            "server_us_per_report": cpu * 1e6 / reports if reports else 0,
            "reports_per_server_cpu_s": reports / cpu if cpu else float("inf"),
            "out_per_report": (out1 - out0) / reports if reports else 0,
            "switches_per_report": (cs1 - cs0) / reports if reports else 0,
            "grants_per_report": b.get("grants_per_report", float("nan")),
            "client_us_per_report": b.get("cpu_us_per_msg", float("nan")),
        })
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenario", action="append",
                   help="PACE_MS:STREAMS[,STREAMS] (repeatable; default "
                   "0:8,64 and 100:1000)")
    p.add_argument("--seconds", type=float, default=5.0,
                   help="measured window per stream count")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--datagrams", action="store_true",
                   help="paced streams lease over the fast path")
    p.add_argument("--server-cpu", default="0", help="taskset list, '' = none")
    p.add_argument("--client-cpu", default="1", help="taskset list, '' = none")
    p.add_argument("--server-bin", default=os.environ.get(
        "SLUICE_QUOTA_BIN",
        os.path.join(ROOT, "build/quota-server/sluice-quota-server")))
    p.add_argument("--bench-bin", default=os.environ.get(
        "SLUICE_QUOTA_BENCH",
        os.path.join(ROOT, "build/bench/quota_service_benchmark")))
    args = p.parse_args()
    scenarios = args.scenario or ["0:8,64", "100:1000"]

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as cfg:
        cfg.write(CONFIG)
        cfg.flush()
        rows = []
        for sc in scenarios:
            pace, streams = sc.split(":", 1)
            rows += run_scenario(args, int(pace), streams, cfg.name)

    print(f"server on cpu {args.server_cpu or 'any'}, clients on cpu "
          f"{args.client_cpu or 'any'}, {args.seconds:g} s per window")
    head = ("path", "pace_ms", "streams", "reports/s", "srv_cores",
            "srv_us/rep", "rep/srv_cpu_s", "grants/rep", "out/rep",
            "msgs/srv_cpu_s", "srv_cs/rep", "cli_us/rep")
    print(("{:>5} {:>8} {:>7} {:>10} {:>9} {:>10} {:>13} {:>10} {:>8} "
           "{:>14} {:>10} {:>10}").format(*head))
    for r in rows:
        print(("{path:>5} {pace_ms:>8} {streams:>7} {reports_per_s:>10.0f} "
               "{server_cores:>9.2f} {server_us_per_report:>10.2f} "
               "{reports_per_server_cpu_s:>13.0f} {grants_per_report:>10.4f} "
               "{out_per_report:>8.4f} {msgs_per_server_cpu_s:>14.0f} "
               "{switches_per_report:>10.2f} {client_us_per_report:>10.2f}")
              .format(**r))


if __name__ == "__main__":
    main()
