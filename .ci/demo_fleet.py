"""Fleet demo traffic: client threads behind each of several sidecars, each
thread offering at most PER_THREAD requests/s (so demand is what the thread
count says, not whatever the sidecar lets through), with a demand shift
half-way, and a live line per second showing what the upstream
served, its 429s, what each sidecar sent, and the shares the quota server
gave them (from its /status)."""
import json
import sys
import threading
import time
import urllib.error
import urllib.request

url, quota_admin, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
proxies = sys.argv[4].split(",")
before = [int(x) for x in sys.argv[5].split(",")]  # threads per sidecar
after = [int(x) for x in sys.argv[6].split(",")]

PER_THREAD = 4.0  # requests/s one client thread offers at most
lock = threading.Lock()
sent = [0] * len(proxies)
codes = {}
stop = time.monotonic() + 2 * seconds
shift_at = time.monotonic() + seconds


def worker(i, active):
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": proxies[i]}))
    next_at = time.monotonic()
    while time.monotonic() < stop:
        if not active():
            time.sleep(0.05)
            next_at = time.monotonic()
            continue
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        next_at = max(next_at + 1 / PER_THREAD, time.monotonic() - 1)
        try:
            with opener.open(url, timeout=30) as r:
                code = r.status
        except urllib.error.HTTPError as e:
            code = e.code
        except Exception:
            code = "error"
        with lock:
            codes[code] = codes.get(code, 0) + 1
            if code == 200:
                sent[i] += 1


threads = []
for i in range(len(proxies)):
    for k in range(max(before[i], after[i])):
        def active(i=i, k=k):
            phase = before if time.monotonic() < shift_at else after
            return k < phase[i]
        threads.append(threading.Thread(target=worker, args=(i, active),
                                        daemon=True))
for t in threads:
    t.start()


def shares():
    try:
        with urllib.request.urlopen(quota_admin + "/status", timeout=2) as r:
            status = json.load(r)
    except Exception:
        return "?", [], []
    res = status["resources"][0]
    by_pod = sorted((s["pod"], s["share_per_second"]) for s in res["sidecars"])
    pauses = ["%s %.1fs left, %s from %s" % (p["phase"], p["remaining_ms"] / 1e3,
                                             p["reason"], p["origin_sidecar"])
              if p["phase"] == "paused" else
              "%s (refill %.0f%%)" % (p["phase"], 100 * p["rate_fraction"])
              for p in res.get("pauses", [])]
    return "%.0f/s" % res["rate_per_second"], [v for _, v in by_pod], pauses


last = list(sent)
t0 = time.monotonic()
shifted = False
print("  time  sent/s per sidecar (A B C)   shares from the quota server")
while time.monotonic() < stop:
    time.sleep(1)
    if not shifted and time.monotonic() >= shift_at:
        shifted = True
        if before != after:
            print("  -- demand shifts: A goes quiet, C gets busy --")
    with lock:
        now = list(sent)
    per = [n - l for n, l in zip(now, last)]
    last = now
    limit, sh, pauses = shares()
    print("  %4.0fs  %-28s total %3d/s of %s   shares %s%s" % (
        time.monotonic() - t0, " ".join("%3d" % p for p in per), sum(per),
        limit, " ".join("%5.1f" % x for x in sh),
        ("   PAUSE: " + "; ".join(pauses)) if pauses else ""))
for t in threads:
    t.join(35)
print("  clients saw:", ", ".join(
    "%s=%d" % kv for kv in sorted(codes.items(), key=str)))
