#!/usr/bin/env python3
"""The machine's floor for the pause latency, two ways:

- the round-trip time of one byte between two processes over loopback TCP
  (TCP_NODELAY);
- a fan-out like the pause's last hop: one process sends a UDP datagram to
  each of --fanout idle processes (in one burst) and the time until the
  last of them has read its datagram (each notes the monotonic clock, one
  per host, and tells the sender afterwards).

The processes are idle between samples (--gap-ms), as sidecars are between
messages. Prints p50, p99 and max in microseconds. Exits 0.

  /usr/bin/python3 bench/loopback_rtt.py   # --count 2000 --gap-ms 2 --fanout 8
"""

import argparse
import os
import socket
import struct
import time


def fanout(count, gap_ms, n):
    """Per burst, the last receiver's read time minus the send time (s)."""
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.bind(("127.0.0.1", 0))
    receivers, pids = [], []
    for _ in range(n):
        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.bind(("127.0.0.1", 0))
        receivers.append(r.getsockname())
        pid = os.fork()
        if pid == 0:
            while True:
                data = r.recv(64)
                t = time.monotonic_ns()
                if data == b"q":
                    os._exit(0)
                r.sendto(struct.pack("!q", t), back.getsockname())
        r.close()
        pids.append(pid)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lat = []
    for _ in range(count):
        time.sleep(gap_ms / 1000.0)
        t0 = time.monotonic_ns()
        for addr in receivers:
            out.sendto(b"p", addr)
        last = max(struct.unpack("!q", back.recv(64))[0] for _ in receivers)
        lat.append((last - t0) / 1e9)
    for addr in receivers:
        out.sendto(b"q", addr)
    for pid in pids:
        os.waitpid(pid, 0)
    return lat


def pcts(values):
    v = sorted(values)
    n = len(v)
    return 1e6 * v[n // 2], 1e6 * v[int(n * 0.99)], 1e6 * v[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--gap-ms", type=float, default=2.0)
    ap.add_argument("--fanout", type=int, default=8,
                    help="receivers of the fan-out (0: skip it)")
    a = ap.parse_args()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    pid = os.fork()
    if pid == 0:  # the echo peer
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = conn.recv(64)
            if not data:
                os._exit(0)
            conn.sendall(data)
    s = socket.create_connection(srv.getsockname())
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtts = []
    for _ in range(a.count):
        t0 = time.perf_counter()
        s.sendall(b"x")
        s.recv(64)
        rtts.append(time.perf_counter() - t0)
        time.sleep(a.gap_ms / 1000.0)
    s.close()
    os.waitpid(pid, 0)
    print("loopback TCP round trip, %d samples, %.1f ms idle between: "
          "p50 %.0f us, p99 %.0f us, max %.0f us" % (
              (len(rtts), a.gap_ms) + pcts(rtts)))
    if a.fanout > 0:
        lat = fanout(a.count, a.gap_ms, a.fanout)
        print("UDP fan-out to %d processes, send -> last read, %d samples: "
              "p50 %.0f us, p99 %.0f us, max %.0f us" % (
                  (a.fanout, len(lat)) + pcts(lat)))


if __name__ == "__main__":
    main()
