"""Demo traffic: N threads hammer one URL, directly or through sluice."""
import sys, threading, time, urllib.error, urllib.request

url, proxy, seconds, threads = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
handlers = [urllib.request.ProxyHandler({"http": proxy} if proxy != "-" else {})]
opener = urllib.request.build_opener(*handlers)
counts = {}
lock = threading.Lock()
end = time.monotonic() + seconds

def worker():
    while time.monotonic() < end:
        try:
            with opener.open(url, timeout=30) as r:
                code = r.status
        except urllib.error.HTTPError as e:
            code = e.code
        except Exception:
            code = "error"
        with lock:
            counts[code] = counts.get(code, 0) + 1

ts = [threading.Thread(target=worker) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
print("  client saw:", ", ".join("%s=%d" % kv for kv in sorted(counts.items(), key=str)))
