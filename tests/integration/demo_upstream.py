#!/usr/bin/python3
"""A local API that enforces its own rate limit, for sluice's README demo.

    demo_upstream.py --port 0 --rate 10 --period 1 --burst 5 --port-file F

Serves HTTP/1.1 on 127.0.0.1 (the same endpoints as the integration tests'
RateLimitedUpstream: /, /echo, /status/<code>, /bytes/<n>, /slow/<ms>).
Beyond `rate` requests per `period` seconds (token bucket, `burst` deep) it
answers 429 with Retry-After. Once a second it prints what it answered in
that second, e.g.

    t=3s 200s=10 429s=0

With --port 0 an ephemeral port is used; --port-file receives the port
number once the server is listening. SIGTERM or Ctrl-C stops it (exit 0).
"""

import argparse
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness  # noqa: E402


def main():
    parser = argparse.ArgumentParser(
        description="Rate-limited local upstream for the sluice demo.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=10,
                        help="requests allowed per period (default 10)")
    parser.add_argument("--period", type=float, default=1.0,
                        help="period in seconds (default 1)")
    parser.add_argument("--burst", type=float, default=None,
                        help="bucket depth (default: rate)")
    parser.add_argument("--port-file",
                        help="write the listening port here")
    parser.add_argument("--ban-after", type=float, default=None,
                        help="seconds after start: ban the caller (every "
                        "request answered 429 + Retry-After) from the next "
                        "request on")
    parser.add_argument("--ban-for", type=float, default=5,
                        help="length of the ban in seconds (default 5)")
    args = parser.parse_args()
    if args.rate <= 0 or args.period <= 0 or (args.burst is not None and
                                               args.burst < 1):
        parser.error("--rate and --period must be > 0, --burst >= 1")
    if args.ban_for <= 0 or (args.ban_after is not None and args.ban_after < 0):
        parser.error("--ban-after must be >= 0 and --ban-for > 0")

    upstream = sluice_harness.RateLimitedUpstream(
        rate=args.rate, period=args.period, burst=args.burst,
        host=args.host, port=args.port)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % upstream.port)
        os.replace(tmp, args.port_file)  # Readers never see a partial file.
    print("demo upstream on http://%s:%d (limit %g per %gs, burst %g)" %
          (args.host, upstream.port, args.rate, args.period,
           args.burst if args.burst is not None else args.rate),
          file=sys.stderr, flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    start = time.monotonic()
    last_200 = last_429 = 0
    tick = 0
    banned = False
    try:
        while True:
            tick += 1
            if stop.wait(max(0.0, start + tick - time.monotonic())):
                break
            if (args.ban_after is not None and not banned and
                    time.monotonic() - start >= args.ban_after):
                banned = True
                upstream.ban(args.ban_for, "retry-after")
                print("t=%ds ban: the next request starts a %gs ban" %
                      (tick, args.ban_for), flush=True)
            ok, limited = upstream.count_200, upstream.count_429
            print("t=%ds 200s=%d 429s=%d" % (tick, ok - last_200,
                                             limited - last_429), flush=True)
            last_200, last_429 = ok, limited
    finally:
        upstream.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
