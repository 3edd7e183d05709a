#!/usr/bin/env python3
"""The machine's floor for the pause latency: the round-trip time of one
byte between two processes over loopback TCP (TCP_NODELAY), with the
processes idle between round trips (--gap-ms), as sidecars are between
messages. Prints p50, p99 and max in microseconds. Exits 0.

  /usr/bin/python3 bench/loopback_rtt.py   # --count 2000 --gap-ms 2
"""

import argparse
import os
import socket
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--gap-ms", type=float, default=2.0)
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
    rtts.sort()
    n = len(rtts)
    print("loopback TCP round trip, %d samples, %.1f ms idle between: "
          "p50 %.0f us, p99 %.0f us, max %.0f us" % (
              n, a.gap_ms, 1e6 * rtts[n // 2], 1e6 * rtts[int(n * 0.99)],
              1e6 * rtts[-1]))


if __name__ == "__main__":
    main()
