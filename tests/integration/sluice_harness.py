"""Shared helpers for sluice's integration tests.

Everything here uses the Python 3.11 standard library only (plus Debian's
python3-requests, imported lazily by `proxied_session`). Run the tests with
/usr/bin/python3.

Pieces:
  * start_proxy / Proxy: runs the real sluice-proxy binary on loopback port 0
    and finds its ports from the startup line it prints on stderr.
  * QuotaServer: the same for sluice-quota-server ($SLUICE_QUOTA_BIN), with
    kill() / restart() on the same ports.
  * RateLimitedUpstream: a local HTTP/1.1 origin that enforces its own rate
    limit (429 + Retry-After beyond it), answers chosen paths with scripted
    replies, and records every request.
  * TlsUpstream: the same origin behind TLS with a throwaway certificate.
  * SluiceCa: a CA from `sluice-proxy ca init`, for HTTPS interception.
  * raw_request / slow_send / open_tunnel / read_head: raw sockets for
    malformed input, slowloris, CONNECT and interim responses; replies are
    parsed with http.client.
  * admin_get, run_curl, proxied_session, wait_until, ProxyTestCase.
  * spend_bound_excess: judges a limiter's spending on the intervals that
    contain each request's spend, with no assumption about scheduling.
"""

import bisect
import datetime
import email.utils
import hashlib
import http.client
import http.server
import io
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import urllib.parse
from collections import deque
from dataclasses import dataclass, field

# Proxy variables inherited from the environment would send the tests' direct
# connections through some other proxy, and no_proxy would make urllib and
# curl bypass sluice for 127.0.0.1. The tests set what they need explicitly.
for _name in list(os.environ):
    if _name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                         "ftp_proxy"):
        del os.environ[_name]

READY_RE = re.compile(r"sluice-proxy listening proxy=(\S+) admin=(\S+)")
STARTUP_TIMEOUT = 10.0


# --------------------------------------------------------------------------
# Small utilities
# --------------------------------------------------------------------------

def wait_until(predicate, timeout=10.0, interval=0.02):
    """Polls predicate() every `interval` s until it is truthy or `timeout`
    passes. Returns the last value of predicate() (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def closed_port(host="127.0.0.1"):
    """Returns a port on `host` that nothing listens on (it was just bound and
    released; another process could grab it, which is unlikely in a test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _split_host_port(text):
    """'127.0.0.1:3128' or '[::1]:3128' -> ('127.0.0.1', 3128)."""
    parsed = urllib.parse.urlsplit("//" + text)
    return parsed.hostname, parsed.port


_BLOCK = bytes(i % 251 for i in range(251 * 256))  # 64256 bytes


def expected_bytes(n):
    """The exact body /bytes/<n> produces: the sequence 0..250 repeated."""
    reps = n // len(_BLOCK) + 1
    return (_BLOCK * reps)[:n]


def _pattern_chunks(n):
    sent = 0
    while sent < n:
        k = min(len(_BLOCK), n - sent)
        yield _BLOCK[:k]  # Every chunk starts at a multiple of 251.
        sent += k


# --------------------------------------------------------------------------
# Rate limiters used by the upstream (driven by explicit times: testable)
# --------------------------------------------------------------------------

class TokenBucket:
    """`rate` tokens per `period` seconds, at most `burst` stored; starts
    full. take(now) -> (allowed, seconds_until_a_token)."""

    def __init__(self, rate, period=1.0, burst=None):
        if rate <= 0 or period <= 0:
            raise ValueError("rate and period must be > 0")
        self.per_second = rate / period
        self.burst = float(burst if burst is not None else rate)
        self.tokens = self.burst
        self.last = None

    def take(self, now):
        if self.last is not None and now > self.last:
            self.tokens = min(self.burst,
                              self.tokens + (now - self.last) * self.per_second)
        if self.last is None or now > self.last:
            self.last = now
        if self.tokens >= 1.0 - 1e-9:
            self.tokens -= 1.0
            return True, 0.0
        return False, (1.0 - self.tokens) / self.per_second


class SlidingWindow:
    """At most `limit` requests in any window of `period` seconds."""

    def __init__(self, limit, period=1.0):
        if limit < 1 or period <= 0:
            raise ValueError("limit must be >= 1 and period > 0")
        self.limit = int(limit)
        self.period = period
        self.times = deque()

    def take(self, now):
        while self.times and self.times[0] <= now - self.period:
            self.times.popleft()
        if len(self.times) < self.limit:
            self.times.append(now)
            return True, 0.0
        return False, self.times[0] + self.period - now


@dataclass
class SpendWindow:
    """The window [a, b] of spend_bound_excess: `count` requests spent
    inside it, `allowed` = burst + rate * (b - a), excess = count - allowed."""
    excess: float
    a: float
    b: float
    count: int
    allowed: float

    def __str__(self):
        return ("%d requests spent in a window of %.3f s where the limit "
                "allows %.2f" % (self.count, self.b - self.a, self.allowed))


def spend_bound_excess(intervals, rate, burst):
    """How far a limiter's spending went over its bound, judged without any
    assumption about scheduling.

    A limiter of `rate` tokens per second and depth `burst` spends at most
    burst + rate * (b - a) tokens in any window [a, b] (docs/leasing.md,
    "The bound"). The moment a request's token was spent is not observable
    from outside, but it lies in an interval the test can measure: after
    the client started sending the request (lo) and before the upstream
    read its head (hi). Every request whose interval lies inside [a, b] was
    spent inside [a, b], so

        #{intervals inside [a, b]} > burst + rate * (b - a)

    proves an overspend however late any process ran. Slow delivery only
    widens intervals, which makes the check less sharp, never wrong.

    intervals: [(lo, hi)] on one clock (time.monotonic()). Returns the
    SpendWindow whose excess is largest (<= 0: no overspend shown), or None
    for no intervals. O(n^2)."""
    items = sorted(intervals, key=lambda x: x[0], reverse=True)
    for lo, hi in items:
        if hi < lo:
            raise ValueError("interval ends before it starts: %r" %
                             ((lo, hi),))
    best = None
    his = []  # ends of the intervals that start at or after `a`, sorted
    i = 0
    while i < len(items):
        a = items[i][0]
        while i < len(items) and items[i][0] == a:
            bisect.insort(his, items[i][1])
            i += 1
        # The k-th smallest end b closes a window [a, b] holding exactly the
        # k intervals that start at or after a and end by b.
        for k, b in enumerate(his, 1):
            allowed = burst + rate * (b - a)
            if best is None or k - allowed > best.excess:
                best = SpendWindow(k - allowed, a, b, k, allowed)
    return best


# --------------------------------------------------------------------------
# The local origin
# --------------------------------------------------------------------------

@dataclass
class RecordedRequest:
    t: float                 # time.monotonic() when the head was parsed
    wall: float              # time.time() at the same moment (Unix seconds)
    method: str
    target: str              # request-target exactly as received
    path: str                # path part of the target
    version: str             # "HTTP/1.1"
    headers: list            # [(name, value)] in arrival order
    body_length: int
    body_sha256: str
    status: int = 0          # status the upstream answered
    peer: tuple = ()         # (host, port) of the connection's client
    banned: bool = False     # answered by ban() with a throttle

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_names(self):
        return {k.lower() for k, _ in self.headers}


@dataclass
class ScriptedReply:
    """A reply chosen by the test for one path (RateLimitedUpstream.script)."""
    status: int
    headers: list = field(default_factory=list)  # [(name, value)]
    body: bytes = b""
    chunk_size: int = 0         # > 0: chunked, in pieces of this size
    stall_after: int = None     # send only this many body bytes, then hang
    stall_seconds: float = 5.0  # for stall_after; then the connection closes
    trailers: list = field(default_factory=list)  # chunked: trailer fields
    hold: threading.Event = None  # answer only once this is set


class _BadBody(Exception):
    """The request body's framing is malformed."""


class _ShortBody(Exception):
    """The connection ended before the request body was complete."""


def _read_chunked(rfile, limit):
    """Decodes a chunked body from a buffered file. Strict: a test origin
    should notice when the proxy re-frames a body wrongly."""
    out = bytearray()
    while True:
        line = rfile.readline(4096)
        if not line:
            raise _ShortBody()
        if not line.endswith(b"\r\n"):
            if len(line) >= 4096 or b"\n" in line:
                raise _BadBody("chunk line not CRLF-terminated")
            raise _ShortBody()
        size_text = line[:-2].split(b";", 1)[0].strip()
        if (not size_text or len(size_text) > 15 or
                any(c not in b"0123456789abcdefABCDEF" for c in size_text)):
            raise _BadBody("bad chunk size %r" % size_text)
        size = int(size_text, 16)
        if size == 0:
            while True:  # Trailer section.
                trailer = rfile.readline(4096)
                if not trailer:
                    raise _ShortBody()
                if trailer == b"\r\n":
                    return bytes(out)
        if len(out) + size > limit:
            raise _BadBody("body too large")
        data = rfile.read(size)
        if len(data) < size:
            raise _ShortBody()
        out += data
        crlf = rfile.read(2)
        if len(crlf) < 2:
            raise _ShortBody()
        if crlf != b"\r\n":
            raise _BadBody("chunk data not followed by CRLF")


class _UpstreamHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sluice-test-upstream/1"
    sys_version = ""
    timeout = 60  # Socket timeout so forgotten connections end eventually.
    MAX_BODY = 64 * 1024 * 1024

    def log_message(self, fmt, *args):  # Quiet; the tests read counters.
        pass

    def send_response(self, code, message=None):
        # The request stops counting as in flight before any byte of its
        # answer is written: a client holding (part of) a response always
        # finds in_flight without that request. (send_error comes here too;
        # an interim 100 Continue does not.)
        self.server.upstream._finished(self)
        super().send_response(code, message)

    def handle_expect_100(self):
        # "?no-100" (or "/no-100" in the path) simulates an origin that never
        # sends 100 Continue and just reads the body.
        if "no-100" in self.path:
            return True
        return super().handle_expect_100()

    # All methods share one handler.
    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # -- body -------------------------------------------------------------
    def _read_body(self):
        te = self.headers.get_all("Transfer-Encoding") or []
        cl = self.headers.get_all("Content-Length") or []
        if te and cl:
            raise _BadBody("both Transfer-Encoding and Content-Length")
        if te:
            codings = [c.strip().lower() for c in ",".join(te).split(",")]
            if codings[-1] != "chunked":
                raise _BadBody("chunked is not the last coding")
            return _read_chunked(self.rfile, self.MAX_BODY)
        if cl:
            if len(set(v.strip() for v in cl)) != 1 or not cl[0].strip().isdigit():
                raise _BadBody("bad Content-Length")
            n = int(cl[0])
            if n > self.MAX_BODY:
                raise _BadBody("body too large")
            data = self.rfile.read(n)
            if len(data) < n:
                raise _ShortBody()
            return data
        return b""

    # -- responses --------------------------------------------------------
    def _send(self, status, body=b"", content_type="text/plain",
              extra_headers=(), no_body=False):
        self.send_response(status)
        for k, v in extra_headers:
            self.send_header(k, v)
        if not no_body:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and not no_body:
            self.wfile.write(body)
        self.wfile.flush()

    def _send_scripted(self, reply):
        if reply.hold is not None:
            # Wait for the test's go, or for the upstream to shut down.
            while not reply.hold.wait(0.05):
                if self.server.upstream._stop.is_set():
                    self.close_connection = True
                    return
        self.send_response(reply.status)
        for k, v in reply.headers:
            self.send_header(k, v)
        if reply.chunk_size > 0:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command == "HEAD" or reply.status in (204, 304):
            self.wfile.flush()
            return
        if reply.stall_after is not None:
            self.wfile.write(reply.body[:reply.stall_after])
            self.wfile.flush()
            self.server.upstream._stop.wait(reply.stall_seconds)
            self.close_connection = True
            return
        if reply.chunk_size > 0:
            n = reply.chunk_size
            for i in range(0, len(reply.body), n):
                piece = reply.body[i:i + n]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n" + b"".join(
                ("%s: %s\r\n" % kv).encode("latin-1")
                for kv in reply.trailers) + b"\r\n")
        else:
            self.wfile.write(reply.body)
        self.wfile.flush()

    def _handle(self):
        up = self.server.upstream
        t = up._clock()
        wall = time.time()
        up._started(self)
        record = RecordedRequest(
            t=t, wall=wall, method=self.command, target=self.path,
            path=urllib.parse.urlsplit(self.path).path or self.path,
            version=self.request_version,
            headers=list(self.headers.items()), body_length=0,
            body_sha256="", peer=tuple(self.client_address[:2]))
        try:
            try:
                body = self._read_body()
            except _ShortBody:
                up._incomplete(record, "short body")
                self.close_connection = True
                return
            except _BadBody as e:
                up._incomplete(record, str(e))
                self.close_connection = True
                self._send(400, ("bad body: %s\n" % e).encode())
                return
            except OSError:
                up._incomplete(record, "connection error")
                self.close_connection = True
                return
            record.body_length = len(body)
            record.body_sha256 = hashlib.sha256(body).hexdigest()
            scripted = up._scripted_reply(record.path)
            if scripted is not None:
                record.status = scripted.status
                up._record(record)
                self._send_scripted(scripted)
                return
            banned = up._ban_response(t, wall)
            if banned is not None:
                status, headers = banned
                record.status = status
                record.banned = True
                up._record(record)
                self._send(status, b'{"error":"rate limit exceeded"}\n',
                           "application/json", headers)
                return
            allowed, wait = up._admit(t)
            if not allowed:
                record.status = 429
                up._record(record)
                retry = max(1, math.ceil(wait))
                self._send(429, b'{"error":"rate limited by upstream"}\n',
                           "application/json",
                           [("Retry-After", str(retry)),
                            ("X-Upstream-Limited", "1")])
                return
            self._route(record, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            up._finished(self)  # No-op if an answer was begun.

    def _route(self, record, body):
        up = self.server.upstream
        parts = [p for p in record.path.split("/") if p]
        head = parts[0] if parts else ""
        arg = parts[1] if len(parts) > 1 else ""

        if head == "echo":
            record.status = 200
            up._record(record)
            doc = {
                "method": record.method, "target": record.target,
                "path": record.path, "version": record.version,
                "headers": [[k, v] for k, v in record.headers],
                "body_length": record.body_length,
                "body_sha256": record.body_sha256,
                "body": body.decode("latin-1") if len(body) <= 65536 else None,
            }
            self._send(200, json.dumps(doc).encode(), "application/json")
        elif head == "status" and arg.isdigit() and 200 <= int(arg) <= 599:
            code = int(arg)
            record.status = code
            up._record(record)
            extra = [("Retry-After", "1")] if code in (429, 503) else []
            if code in (204, 304):
                self._send(code, extra_headers=extra, no_body=True)
            else:
                self._send(code, ("status %d\n" % code).encode(),
                           extra_headers=extra)
        elif head == "bytes" and arg.isdigit():
            n = int(arg)
            record.status = 200
            up._record(record)
            if self.command == "HEAD":
                self._send(200, extra_headers=[("Content-Length", str(n))],
                           no_body=True)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in _pattern_chunks(n):
                self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        elif head == "slow" and arg.isdigit():
            if up._stop.wait(int(arg) / 1000.0):
                self.close_connection = True  # Upstream shutting down.
                return
            record.status = 200
            up._record(record)
            self._send(200, b"slow ok\n")
        else:
            # "/", "/head" and any other path: a small fixed body, so route
            # prefixes can be chosen freely by tests.
            record.status = 200
            up._record(record)
            self._send(200, b"hello from upstream\n",
                       extra_headers=list(up.ok_headers))


BAN_DIALECTS = ("retry-after", "retry-after-ms", "retry-after-date",
                "github-403", "openai", "anthropic", "ietf", "discord",
                "x-ratelimit-200")


def ban_headers(dialect, remaining):
    """(status, headers) of a throttle saying `remaining` seconds are left,
    in one vendor dialect. Absolute times are rounded up to the next second
    (HTTP-dates have no fraction) and are read against the Date header the
    server adds, so they never say less than `remaining`."""
    wall_end = time.time() + remaining
    secs = max(1, math.ceil(remaining))
    # Durations with a fraction are rounded up to the millisecond too
    # ("%.3f" alone could round 0.4 ms off the end of the ban).
    ms_up = math.ceil(remaining * 1000) / 1000
    if dialect == "retry-after":
        return 429, [("Retry-After", str(secs))]
    if dialect == "retry-after-ms":
        return 429, [("retry-after-ms", str(math.ceil(remaining * 1000)))]
    if dialect == "retry-after-date":
        return 429, [("Retry-After", email.utils.formatdate(
            math.ceil(wall_end) + 1, usegmt=True))]
    if dialect == "github-403":
        return 403, [("x-ratelimit-limit", "60"),
                     ("x-ratelimit-remaining", "0"),
                     ("x-ratelimit-used", "60"),
                     ("x-ratelimit-reset", str(math.ceil(wall_end) + 1))]
    if dialect == "openai":
        return 429, [("x-ratelimit-limit-requests", "60"),
                     ("x-ratelimit-remaining-requests", "0"),
                     ("x-ratelimit-reset-requests", "%.3fs" % ms_up)]
    if dialect == "anthropic":
        stamp = datetime.datetime.fromtimestamp(
            math.ceil(wall_end) + 1, datetime.timezone.utc)
        return 429, [("anthropic-ratelimit-requests-limit", "60"),
                     ("anthropic-ratelimit-requests-remaining", "0"),
                     ("anthropic-ratelimit-requests-reset",
                      stamp.strftime("%Y-%m-%dT%H:%M:%SZ"))]
    if dialect == "ietf":
        return 429, [("RateLimit-Policy", '"default";q=60;w=60'),
                     ("RateLimit", '"default";r=0;t=%d' % secs)]
    if dialect == "discord":
        return 429, [("X-RateLimit-Limit", "5"),
                     ("X-RateLimit-Remaining", "0"),
                     ("X-RateLimit-Reset-After", "%.3f" % ms_up)]
    if dialect == "x-ratelimit-200":
        # A success that spent the last request: a pre-emptive pause.
        return 200, [("X-RateLimit-Limit", "60"),
                     ("X-RateLimit-Remaining", "0"),
                     ("X-RateLimit-Reset", str(math.ceil(wall_end) + 1))]
    raise ValueError("unknown ban dialect %r" % dialect)


class _UpstreamServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, upstream, address, ssl_context=None):
        self.upstream = upstream
        self.ssl_context = ssl_context
        super().__init__(address, _UpstreamHandler)

    def process_request(self, request, client_address):
        self.upstream._accepted(request)
        super().process_request(request, client_address)

    def finish_request(self, request, client_address):
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(10)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            with self.upstream._lock:
                self.upstream.tls_handshake_failures += 1
            return
        self.upstream._track(tls)
        try:
            super().finish_request(tls, client_address)
        finally:
            self.upstream._untrack(tls)
            try:
                tls.close()
            except OSError:
                pass

    def shutdown_request(self, request):
        self.upstream._untrack(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        pass  # Client resets are expected in these tests.


class RateLimitedUpstream:
    """A local HTTP/1.1 origin on 127.0.0.1:<ephemeral> that enforces its own
    limit: `rate` requests per `period` seconds with `burst` (token bucket),
    or `rate` per sliding `period` window (algorithm="sliding_window").
    rate=None means unlimited. Over the limit it answers 429 + Retry-After.

    Endpoints (any method; HEAD gets the same head without a body):
      /echo            request line, headers and body digest as JSON
      /status/<code>   that status (204/304 without a body)
      /bytes/<n>       n bytes (see expected_bytes) with chunked encoding
      /slow/<ms>       waits ms before the response head
      anything else    200 "hello from upstream\\n"
    script(path, ...) makes every request for exactly `path` get a reply
    chosen by the test instead (before any ban or limit).
    A path or query containing "no-100" never sends 100 Continue.

    Thread-safe counters: connections_accepted, requests_started, in_flight,
    count_200, count_429, status_counts; `requests` lists complete requests,
    `incomplete` those whose body never arrived intact. in_flight counts
    requests whose head was read and whose answer has not begun: it drops
    (and the request is recorded) before the first byte of the status line
    is written, so a client that has any of the answer sees it dropped.
    """

    def __init__(self, rate=None, period=1.0, burst=None,
                 algorithm="token_bucket", clock=time.monotonic,
                 ssl_context=None, host="127.0.0.1", port=0):
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._limit_args = (rate, period, burst, algorithm)
        self._limiter = self._make_limiter()
        self._ban = None
        self._scripts = {}
        self._conns = set()
        # Extra headers of the default 200 answer, e.g. the limit it states.
        self.ok_headers = []
        self.connections_accepted = 0
        self.requests_started = 0
        self.in_flight = 0
        self.tls_handshake_failures = 0
        self.status_counts = {}
        self.requests = []
        self.incomplete = []
        self._server = _UpstreamServer(self, (host, port), ssl_context)
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="upstream-%d" % self.port, daemon=True)
        self._thread.start()

    scheme = "http"

    def _make_limiter(self):
        rate, period, burst, algorithm = self._limit_args
        if rate is None:
            return None
        if algorithm == "token_bucket":
            return TokenBucket(rate, period, burst)
        if algorithm == "sliding_window":
            return SlidingWindow(rate, period)
        raise ValueError("unknown algorithm %r" % algorithm)

    # -- public ------------------------------------------------------------
    @property
    def url(self):
        return "%s://%s" % (self.scheme, self.authority)

    @property
    def authority(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def count_200(self):
        with self._lock:
            return self.status_counts.get(200, 0)

    @property
    def count_429(self):
        with self._lock:
            return self.status_counts.get(429, 0)

    def snapshot(self):
        """A consistent copy of the complete requests recorded so far."""
        with self._lock:
            return list(self.requests)

    def requests_for(self, path_prefix):
        return [r for r in self.snapshot() if r.path.startswith(path_prefix)]

    def total_activity(self):
        """connections accepted + requests started: 0 proves the upstream was
        never dialled."""
        with self._lock:
            return self.connections_accepted + self.requests_started

    def reset(self):
        """Clears records, counters and scripted replies and refills the
        limiter."""
        with self._lock:
            self.connections_accepted = 0
            self.requests_started = 0
            self.tls_handshake_failures = 0
            self.status_counts = {}
            self.requests = []
            self.incomplete = []
            self._limiter = self._make_limiter()
            self._ban = None
            self._scripts = {}

    def script(self, path, status, body=b"", headers=(), chunk_size=0,
               stall_after=None, stall_seconds=5.0, trailers=(), hold=None):
        """Answers every request whose path is exactly `path` with `status`,
        `headers` and `body` (Content-Length, or chunked in `chunk_size`
        pieces, followed by `trailers`), until reset(). With `stall_after`,
        only that many body bytes are sent; the connection then hangs for
        `stall_seconds` and closes. HEAD, 204 and 304 get the head alone.
        With `hold` (a threading.Event), the request stays in flight and
        nothing is answered until the test sets it (or close() is called,
        which closes the connection unanswered)."""
        with self._lock:
            self._scripts[path] = ScriptedReply(
                status, list(headers), bytes(body), chunk_size, stall_after,
                stall_seconds, list(trailers), hold)

    def _scripted_reply(self, path):
        with self._lock:
            return self._scripts.get(path)

    def close(self):
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:  # Wake handler threads blocked on keep-alive reads.
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- called by the server/handler -------------------------------------
    def _accepted(self, sock):
        with self._lock:
            self.connections_accepted += 1
            self._conns.add(sock)

    def _track(self, sock):
        with self._lock:
            self._conns.add(sock)

    def _untrack(self, sock):
        with self._lock:
            self._conns.discard(sock)

    def _started(self, handler):
        with self._lock:
            self.requests_started += 1
            self.in_flight += 1
            handler._in_flight = True

    def _finished(self, handler):
        """Ends the handler's current request's time in flight, once."""
        with self._lock:
            if getattr(handler, "_in_flight", False):
                handler._in_flight = False
                self.in_flight -= 1

    def ban(self, seconds, dialect="retry-after"):
        """Arms a ban: the next request starts it, and for `seconds` from
        then every request is answered with a throttle in `dialect` (see
        ban_headers), telling the time left. ban_window is then
        (start, end) in time.monotonic(), ban_window_wall the same in
        time.time()."""
        with self._lock:
            self._ban = [seconds, dialect, None, None]

    @property
    def ban_window(self):
        with self._lock:
            if not self._ban or self._ban[2] is None:
                return None
            return (self._ban[2], self._ban[2] + self._ban[0])

    @property
    def ban_window_wall(self):
        """ban_window in time.time() (Unix seconds), read at the same
        moment as its start."""
        with self._lock:
            if not self._ban or self._ban[3] is None:
                return None
            return (self._ban[3], self._ban[3] + self._ban[0])

    def _ban_response(self, now, wall):
        with self._lock:
            ban = self._ban
            if not ban:
                return None
            seconds, dialect, start, _ = ban
            if start is None:
                ban[2] = start = now
                ban[3] = wall
            if now >= start + seconds:
                return None
            return ban_headers(dialect, start + seconds - now)

    def _admit(self, now):
        with self._lock:
            if self._limiter is None:
                return True, 0.0
            return self._limiter.take(now)

    def _record(self, record):
        with self._lock:
            self.requests.append(record)
            self.status_counts[record.status] = (
                self.status_counts.get(record.status, 0) + 1)

    def _incomplete(self, record, why):
        with self._lock:
            self.incomplete.append((record, why))


_cert_lock = threading.Lock()
_cert_dir = None


def self_signed_cert():
    """(cert_path, key_path) of a throwaway certificate for localhost and
    127.0.0.1, generated once per process with the openssl CLI."""
    global _cert_dir
    with _cert_lock:
        if _cert_dir is None:
            d = tempfile.mkdtemp(prefix="sluice-it-cert-")
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-subj", "/CN=localhost",
                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                 "-days", "1", "-keyout", os.path.join(d, "key.pem"),
                 "-out", os.path.join(d, "cert.pem")],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                timeout=60)
            _cert_dir = d
        return os.path.join(_cert_dir, "cert.pem"), os.path.join(_cert_dir,
                                                                 "key.pem")


class TlsUpstream(RateLimitedUpstream):
    """RateLimitedUpstream behind TLS (unlimited unless rate is given).
    `cert_path` is the CA file clients must trust; client_context() returns an
    ssl.SSLContext trusting it."""

    scheme = "https"

    def __init__(self, rate=None, period=1.0, burst=None, **kwargs):
        self.cert_path, self.key_path = self_signed_cert()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_path, self.key_path)
        super().__init__(rate, period, burst, ssl_context=ctx, **kwargs)

    @property
    def localhost_url(self):
        return "https://localhost:%d" % self.port

    def client_context(self):
        return ssl.create_default_context(cafile=self.cert_path)


class SluiceCa:
    """A CA for HTTPS interception, written by `sluice-proxy ca init` into a
    new temporary directory: cert (ca.pem), key (ca-key.pem, 0600), bundle
    (the system roots, then the CA; what clients trust). intercept_yaml(hosts)
    is the `intercept:` section of a sidecar config using it."""

    def __init__(self, binary=None):
        self.dir = tempfile.mkdtemp(prefix="sluice-it-ca-")
        r = run_proxy_cli(["ca", "init", "--out", self.dir], binary=binary)
        if r.returncode != 0:
            self.close()
            raise RuntimeError("sluice-proxy ca init failed: %s%s" %
                               (r.stdout, r.stderr))
        self.cert = os.path.join(self.dir, "ca.pem")
        self.key = os.path.join(self.dir, "ca-key.pem")
        self.bundle = os.path.join(self.dir, "bundle.pem")

    def intercept_yaml(self, hosts):
        return "intercept:\n  hosts: [%s]\n  ca: {cert: %s, key: %s}\n" % (
            ", ".join(hosts), self.cert, self.key)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# The proxy process
# --------------------------------------------------------------------------

def proxy_binary():
    """$SLUICE_PROXY_BIN. Raises if unset: under ctest the variable is always
    set, so a missing binary must fail the test rather than skip it."""
    path = os.environ.get("SLUICE_PROXY_BIN")
    if not path:
        raise RuntimeError("SLUICE_PROXY_BIN is not set (run through ctest, or "
                           "export it to the built sluice-proxy)")
    if not os.access(path, os.X_OK):
        raise RuntimeError("SLUICE_PROXY_BIN=%s is not executable" % path)
    return path


def complete_config(config_yaml):
    """Dedents the YAML and adds loopback port-0 listeners unless the text
    already has top-level `listen:` / `admin:` keys."""
    text = textwrap.dedent(config_yaml).strip("\n") + "\n"
    prefix = ""
    if not re.search(r"^listen\s*:", text, re.M):
        prefix += 'listen: ["127.0.0.1:0"]\n'
    if not re.search(r"^admin\s*:", text, re.M):
        prefix += 'admin: {listen: "127.0.0.1:0"}\n'
    return prefix + text


class _Drain(threading.Thread):
    """Reads a pipe line by line into a buffer until EOF."""

    def __init__(self, pipe, name, on_line=None):
        super().__init__(name=name, daemon=True)
        self.pipe = pipe
        self.on_line = on_line
        self.lines = []
        self.lock = threading.Lock()
        self.start()

    def run(self):
        for raw in iter(self.pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self.lock:
                self.lines.append(line)
            if self.on_line:
                self.on_line(line)
        self.pipe.close()

    def text(self):
        with self.lock:
            return "\n".join(self.lines)


class ProxyStartError(RuntimeError):
    pass


class Proxy:
    """A running sluice-proxy. Use start_proxy() to make one."""

    def __init__(self, config_yaml, binary=None, extra_args=(),
                 startup_timeout=STARTUP_TIMEOUT, env=None):
        self.binary = binary or proxy_binary()
        self.tmpdir = tempfile.mkdtemp(prefix="sluice-it-")
        self.config_text = complete_config(config_yaml)
        self.config_path = os.path.join(self.tmpdir, "sluice-proxy.yaml")
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        self.port = None
        self.admin_port = None
        self.proxy_addr = None
        self.admin_addr = None
        self._ready = threading.Event()
        self.args = [self.binary, "--config", self.config_path, *extra_args]
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env)
        self._stderr = _Drain(self.proc.stderr, "proxy-stderr", self._on_line)
        self._stdout = _Drain(self.proc.stdout, "proxy-stdout")
        try:
            self._wait_ready(startup_timeout)
        except BaseException:
            self.close(grace=1)
            raise

    def _on_line(self, line):
        if self._ready.is_set():
            return
        m = READY_RE.search(line)
        if not m:
            return
        self.proxy_addr, self.port = _split_host_port(m.group(1))
        if ":" in m.group(2):
            self.admin_addr, self.admin_port = _split_host_port(m.group(2))
        self._ready.set()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.02):
            if self.proc.poll() is not None:
                self._stderr.join(2)
                self._stdout.join(2)
                raise ProxyStartError(
                    "sluice-proxy exited with %s before it was ready\n%s" %
                    (self.proc.returncode, self.logs()))
            if time.monotonic() >= deadline:
                raise ProxyStartError(
                    "sluice-proxy printed no 'sluice-proxy listening' line "
                    "within %.0fs\n%s" % (timeout, self.logs()))

    # -- info ---------------------------------------------------------------
    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def admin_url(self):
        return "http://127.0.0.1:%d" % self.admin_port

    @property
    def pid(self):
        return self.proc.pid

    def stderr_text(self):
        return self._stderr.text()

    def stdout_text(self):
        return self._stdout.text()

    def logs(self, tail_lines=None):
        def tail(text):
            if tail_lines is None:
                return text
            return "\n".join(text.splitlines()[-tail_lines:])
        return ("----- sluice-proxy %s -----\n----- config -----\n%s"
                "----- stderr -----\n%s\n----- stdout -----\n%s\n"
                "----- end -----" % (" ".join(self.args), self.config_text,
                                     tail(self.stderr_text()),
                                     tail(self.stdout_text())))

    def dump_logs(self, why="", tail_lines=300):
        sys.stderr.write("\n%s\n%s\n" % (why, self.logs(tail_lines)))
        sys.stderr.flush()

    # -- lifecycle ------------------------------------------------------------
    def poll(self):
        return self.proc.poll()

    def alive(self):
        return self.proc.poll() is None

    def send_signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after `timeout` s."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, grace=10.0):
        """SIGTERM, wait up to `grace` s, then SIGKILL. Returns the exit code
        (negative signal number if killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(grace) is None:
                self.proc.kill()
                self.proc.wait(10)
        self._stderr.join(5)
        self._stdout.join(5)
        return self.proc.returncode

    def close(self, grace=5.0):
        self.terminate(grace)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type,
                                                   unittest.SkipTest):
            self.dump_logs("sluice-proxy output (the test failed):")
        self.close()


def start_proxy(config_yaml, **kwargs):
    """Starts sluice-proxy with `config_yaml` (listeners default to
    127.0.0.1:0) and returns a ready Proxy. kwargs: binary, extra_args,
    startup_timeout, env."""
    return Proxy(config_yaml, **kwargs)


def run_proxy_cli(args, timeout=30, binary=None):
    """Runs the binary with `args` to completion (e.g. --version)."""
    return subprocess.run([binary or proxy_binary(), *args],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


# --------------------------------------------------------------------------
# The quota server process
# --------------------------------------------------------------------------

QUOTA_READY_RE = re.compile(r"sluice-quota-server listening grpc=(\S+) "
                            r"admin=(\S+)")


def quota_binary():
    """$SLUICE_QUOTA_BIN. Raises if unset, like proxy_binary()."""
    path = os.environ.get("SLUICE_QUOTA_BIN")
    if not path:
        raise RuntimeError("SLUICE_QUOTA_BIN is not set (run through ctest, or "
                           "export it to the built sluice-quota-server)")
    if not os.access(path, os.X_OK):
        raise RuntimeError("SLUICE_QUOTA_BIN=%s is not executable" % path)
    return path


def complete_quota_config(config_yaml, grpc_port=0, admin_port=0):
    """Dedents the YAML and adds loopback listeners (`listen`,
    `admin_listen`) on the given ports unless the text has them."""
    text = textwrap.dedent(config_yaml).strip("\n") + "\n"
    prefix = ""
    if not re.search(r"^listen\s*:", text, re.M):
        prefix += "listen: 127.0.0.1:%d\n" % grpc_port
    if not re.search(r"^admin_listen\s*:", text, re.M):
        prefix += "admin_listen: 127.0.0.1:%d\n" % admin_port
    return prefix + text


class QuotaServer:
    """A running sluice-quota-server on loopback, like Proxy: the config goes
    to a temp file, ports come from the "listening" line. restart() starts a
    new process on the same gRPC and admin ports (after kill() or
    terminate()), so sidecars reconnect to the address they know.

    Attributes: grpc_port, admin_port, target ("127.0.0.1:<grpc_port>" for a
    sidecar's quota.servers), proc, config_path."""

    def __init__(self, config_yaml, binary=None,
                 startup_timeout=STARTUP_TIMEOUT):
        self.binary = binary or quota_binary()
        self.tmpdir = tempfile.mkdtemp(prefix="sluice-it-quota-")
        self.config_path = os.path.join(self.tmpdir, "sluice-quota.yaml")
        self.config_yaml = config_yaml
        self.startup_timeout = startup_timeout
        self.grpc_port = None
        self.admin_port = None
        self.proc = None
        self._old_logs = []  # Output of earlier processes (before restarts).
        self._start(0, 0)

    def _start(self, grpc_port, admin_port):
        self.config_text = complete_quota_config(self.config_yaml, grpc_port,
                                                 admin_port)
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        self._ready = threading.Event()
        self.args = [self.binary, "--config", self.config_path]
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self._stderr = _Drain(self.proc.stderr, "quota-stderr", self._on_line)
        self._stdout = _Drain(self.proc.stdout, "quota-stdout")
        deadline = time.monotonic() + self.startup_timeout
        while not self._ready.wait(0.02):
            if self.proc.poll() is not None:
                self._stderr.join(2)
                raise ProxyStartError(
                    "sluice-quota-server exited with %s before it was ready\n%s"
                    % (self.proc.returncode, self.logs()))
            if time.monotonic() >= deadline:
                self.proc.kill()
                self.proc.wait(10)
                raise ProxyStartError(
                    "sluice-quota-server printed no 'listening' line within "
                    "%.0fs\n%s" % (self.startup_timeout, self.logs()))

    def _on_line(self, line):
        if self._ready.is_set():
            return
        m = QUOTA_READY_RE.search(line)
        if not m:
            return
        _, self.grpc_port = _split_host_port(m.group(1))
        if ":" in m.group(2):
            _, self.admin_port = _split_host_port(m.group(2))
        self._ready.set()

    # -- info ---------------------------------------------------------------
    @property
    def target(self):
        return "127.0.0.1:%d" % self.grpc_port

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def admin_get(self, path, timeout=10.0):
        return admin_get(self.admin_port, path, timeout)

    def status(self):
        """GET /status as parsed JSON."""
        code, _, body = self.admin_get("/status")
        if code != 200:
            raise AssertionError("/status answered %d: %s" % (code, body))
        return json.loads(body)

    def resource_status(self, name):
        """The /status entry of resource `name`, or None."""
        for r in self.status().get("resources", []):
            if r.get("name") == name:
                return r
        return None

    def logs(self, tail_lines=None):
        def tail(text):
            if tail_lines is None:
                return text
            return "\n".join(text.splitlines()[-tail_lines:])
        current = ("----- sluice-quota-server %s (pid %s) -----\n"
                   "----- config -----\n%s----- stderr -----\n%s\n"
                   "----- stdout -----\n%s\n----- end -----" %
                   (" ".join(self.args), self.proc.pid if self.proc else "-",
                    self.config_text, tail(self._stderr.text()),
                    tail(self._stdout.text())))
        return "\n".join(self._old_logs + [current])

    def dump_logs(self, why="", tail_lines=300):
        sys.stderr.write("\n%s\n%s\n" % (why, self.logs(tail_lines)))
        sys.stderr.flush()

    # -- lifecycle ------------------------------------------------------------
    def send_signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def _reap(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.join(5)
        self._stdout.join(5)
        return self.proc.returncode

    def kill(self):
        """SIGKILL (no goodbye to the sidecars). Returns the exit code."""
        if self.alive():
            self.proc.kill()
        return self._reap(10)

    def terminate(self, grace=10.0):
        """SIGTERM, then SIGKILL after `grace` s. Returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self._reap(grace)

    def restart(self):
        """Starts a new process on the same ports (stops the old one first
        if it still runs). The new one is a fresh server: new epoch, empty
        ledger, learning mode."""
        if self.alive():
            self.terminate()
        self._old_logs.append(self.logs())
        grpc_port, admin_port = self.grpc_port, self.admin_port
        deadline = time.monotonic() + 10
        while True:
            try:
                self._start(grpc_port, admin_port or 0)
                return self
            except ProxyStartError:
                # The port may linger for a moment after a kill.
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def close(self):
        if self.proc is not None:
            self.terminate(5)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type,
                                                   unittest.SkipTest):
            self.dump_logs("sluice-quota-server output (the test failed):")
        self.close()


# --------------------------------------------------------------------------
# Raw sockets
# --------------------------------------------------------------------------

class _TeeFile(io.RawIOBase):
    """A readable file over a socket that keeps a copy of every byte read,
    so a reply parsed by http.client can also be shown raw."""

    def __init__(self, sock):
        super().__init__()
        self._sock = sock
        self.raw = bytearray()

    def readable(self):
        return True

    def readinto(self, b):
        n = self._sock.recv_into(b)
        self.raw += bytes(b[:n])
        return n


class _FakeSock:
    def __init__(self, fp):
        self._fp = fp

    def makefile(self, mode):
        return self._fp


class RawResponse:
    """A reply read from a raw socket. Unpacks as the 4-tuple
    (status, headers, body, raw); status is None when no parsable response
    arrived. Extra attributes:
      eof        the server closed the connection (FIN or reset) before or
                 while the reply was read, or it said Connection: close
      timed_out  nothing (more) arrived within the timeout
      error      description of what went wrong while reading, or None
      reason     the reason phrase
    """

    def __init__(self, status=None, headers=None, body=b"", raw=b"", eof=False,
                 timed_out=False, error=None, reason="", version=None):
        self.status = status
        self.headers = headers if headers is not None else http.client.HTTPMessage()
        self.body = body
        self.raw = bytes(raw)
        self.eof = eof
        self.timed_out = timed_out
        self.error = error
        self.reason = reason
        self.version = version

    def __iter__(self):
        return iter((self.status, self.headers, self.body, self.raw))

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return ("RawResponse(status=%r, eof=%r, timed_out=%r, error=%r, "
                "raw=%r)" % (self.status, self.eof, self.timed_out, self.error,
                             self.raw[:600]))


def _method_of(data):
    first = data.split(b" ", 1)[0]
    return first.decode("latin-1") if first.isalpha() else "GET"


def read_response(sock, method="GET", timeout=10.0, read_body=True):
    """Reads one response from `sock` with http.client's parser. Interim 1xx
    responses are skipped. A 2xx to CONNECT is returned without reading a
    body (the socket is then a tunnel)."""
    sock.settimeout(timeout)
    raw = _TeeFile(sock)
    buffered = io.BufferedReader(raw, 65536)
    resp = http.client.HTTPResponse(_FakeSock(buffered), method=method)
    out = RawResponse()
    try:
        resp.begin()
    except http.client.RemoteDisconnected as e:
        out.eof, out.error = True, "closed before a status line: %s" % e
    except (socket.timeout, TimeoutError) as e:
        out.timed_out, out.error = True, "timed out waiting for a reply"
    except (ConnectionResetError, BrokenPipeError) as e:
        out.eof, out.error = True, "connection reset: %s" % e
    except (http.client.HTTPException, UnicodeError, ValueError) as e:
        out.error = "unparsable reply: %r" % e
    else:
        out.status, out.reason, out.headers = resp.status, resp.reason, resp.msg
        out.version = resp.version
        out.eof = bool(resp.will_close)
        tunnel = method == "CONNECT" and 200 <= resp.status < 300
        if read_body and not tunnel:
            try:
                out.body = resp.read()
            except http.client.IncompleteRead as e:
                out.body, out.eof = e.partial, True
                out.error = "incomplete body"
            except (socket.timeout, TimeoutError):
                out.timed_out, out.error = True, "timed out reading the body"
            except (ConnectionResetError, BrokenPipeError) as e:
                out.eof, out.error = True, "reset while reading body: %s" % e
    out.raw = bytes(raw.raw)
    return out


def connect(port, host="127.0.0.1", timeout=10.0):
    return socket.create_connection((host, port), timeout=timeout)


def raw_request(port, data, timeout=10.0, host="127.0.0.1", method=None,
                read_body=True):
    """Sends `data` as-is on a new connection to host:port and reads one
    reply. Returns a RawResponse, which unpacks as
    (status or None, headers, body, raw)."""
    with connect(port, host, timeout) as sock:
        send_error = None
        try:
            sock.sendall(data)
        except OSError as e:  # The server may already have answered and shut.
            send_error = e
        resp = read_response(sock, method or _method_of(data), timeout,
                             read_body)
        if send_error and resp.status is None:
            resp.eof = True
            resp.error = "send failed: %s; %s" % (send_error, resp.error)
        return resp


def slow_send(port, head_part, timeout=5.0, drip=b"", drip_interval=0.2,
              host="127.0.0.1"):
    """Slowloris: sends `head_part` (an incomplete request head), then waits
    up to `timeout` s for the server to answer or close, by select()ing on the
    socket. With `drip`, one byte of it (cycled) is sent every
    `drip_interval` s while waiting, so a server that only has an idle
    timeout never fires; `head_part` should then end inside a header value.

    Returns (RawResponse, seconds from the first send until the server
    reacted, bytes_dripped)."""
    with connect(port, host, timeout + 5) as sock:
        start = time.monotonic()
        sock.sendall(head_part)
        deadline = start + timeout
        dripped = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return (RawResponse(timed_out=True,
                                    error="no reply within %.1fs" % timeout),
                        time.monotonic() - start, dripped)
            wait = min(remaining, drip_interval) if drip else remaining
            readable, _, _ = select.select([sock], [], [], wait)
            if readable:
                break
            if drip:
                try:
                    sock.send(drip[dripped % len(drip):][:1])
                    dripped += 1
                except OSError:
                    break
        reacted = time.monotonic() - start
        return (read_response(sock, _method_of(head_part), 5.0), reacted,
                dripped)


def open_tunnel(port, target, version="HTTP/1.1", headers=(), timeout=10.0,
                host="127.0.0.1"):
    """Sends `CONNECT target version` (+ headers) and reads the reply head.
    Returns (socket, RawResponse). On a 2xx the socket is the tunnel; the
    caller owns and must close it."""
    lines = ["CONNECT %s %s" % (target, version)]
    lines += ["%s: %s" % (k, v) for k, v in headers]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    sock = connect(port, host, timeout)
    try:
        sock.sendall(data)
        # An unbuffered read of the head: bytes after it belong to the tunnel
        # and must stay in the socket for TLS.
        resp = _read_head_unbuffered(sock, timeout)
    except BaseException:
        sock.close()
        raise
    return sock, resp


def read_head(sock, timeout=10.0):
    """Reads one response head (an interim 100 Continue, say) byte by byte,
    leaving whatever follows it in the socket. Returns its raw bytes (short
    of the final CRLF CRLF when the connection ended or timed out)."""
    return _read_head_unbuffered(sock, timeout).raw


def _read_head_unbuffered(sock, timeout):
    sock.settimeout(timeout)
    head = bytearray()
    try:
        while not head.endswith(b"\r\n\r\n"):
            b = sock.recv(1)
            if not b:
                break
            head += b
            if len(head) > 65536:
                break
    except (socket.timeout, TimeoutError):
        return RawResponse(raw=head, timed_out=True, error="timed out")
    except ConnectionResetError as e:
        return RawResponse(raw=head, eof=True, error=str(e))
    if not head.endswith(b"\r\n\r\n"):
        return RawResponse(raw=head, eof=True, error="closed mid-head")
    resp = http.client.HTTPResponse(_FakeSock(io.BytesIO(bytes(head))),
                                    method="CONNECT")
    try:
        resp.begin()
    except (http.client.HTTPException, ValueError) as e:
        return RawResponse(raw=head, error="unparsable reply: %r" % e)
    return RawResponse(resp.status, resp.msg, b"", head, reason=resp.reason,
                       version=resp.version)


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------

def http_get(port, path, timeout=10.0, host="127.0.0.1", headers=None,
             method="GET"):
    """A direct (never proxied) request. Returns (status, headers, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.msg, r.read()
    finally:
        conn.close()


def admin_get(port, path, timeout=10.0):
    """GET on the admin listener. Returns (status, headers, body_text)."""
    status, headers, body = http_get(port, path, timeout)
    return status, headers, body.decode("utf-8", "replace")


def proxied_session(proxy, verify=None):
    """A requests.Session that goes through `proxy` for http and https and
    ignores the environment (proxy variables, netrc, CA bundle). `verify`:
    the CA file https:// servers are checked against (e.g. a SluiceCa's
    bundle, for hosts sluice intercepts); None keeps requests' default."""
    import requests  # Debian's python3-requests.
    s = requests.Session()
    s.trust_env = False
    s.proxies = {"http": proxy.url, "https": proxy.url}
    if verify is not None:
        s.verify = verify
    return s


def run_curl(args, proxy=None, env_proxy=None, timeout=60, env=None):
    """Runs curl. `env_proxy` is set as the lowercase http_proxy variable
    (curl ignores HTTP_PROXY); `proxy` is passed as --proxy; `env` adds
    variables (HTTPS_PROXY, CURL_CA_BUNDLE). Returns the CompletedProcess
    (text mode)."""
    env = dict(os.environ, **(env or {}))
    if env_proxy:
        env["http_proxy"] = env_proxy
    cmd = ["curl", "--silent", "--show-error", "--max-time", "30"]
    if proxy:
        cmd += ["--proxy", proxy]
    return subprocess.run(cmd + list(args), env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


# --------------------------------------------------------------------------
# unittest base class
# --------------------------------------------------------------------------

class ProxyTestCase(unittest.TestCase):
    """Base class that prints captured proxy output when a test fails
    (subclasses overriding setUp must call super().setUp()).

    start_class_proxy / start_class_upstream (in setUpClass) and
    start_proxy / start_upstream (in a test) register cleanup automatically.
    """

    maxDiff = 4000

    @classmethod
    def _class_list(cls):
        if "_class_proxies" not in cls.__dict__:
            cls._class_proxies = []
        return cls._class_proxies

    @classmethod
    def start_class_proxy(cls, config_yaml, **kwargs):
        p = start_proxy(config_yaml, **kwargs)
        cls._class_list().append(p)
        cls.addClassCleanup(p.close)
        return p

    @classmethod
    def start_class_upstream(cls, factory=RateLimitedUpstream, **kwargs):
        u = factory(**kwargs)
        cls.addClassCleanup(u.close)
        return u

    @classmethod
    def start_class_quota_server(cls, config_yaml, **kwargs):
        q = QuotaServer(config_yaml, **kwargs)
        cls._class_list().append(q)  # Its logs are dumped on failure too.
        cls.addClassCleanup(q.close)
        return q

    def start_quota_server(self, config_yaml, **kwargs):
        q = QuotaServer(config_yaml, **kwargs)
        self.__dict__.setdefault("_test_proxies", []).append(q)
        self.addCleanup(q.close)
        return q

    def start_proxy(self, config_yaml, **kwargs):
        p = start_proxy(config_yaml, **kwargs)
        self.__dict__.setdefault("_test_proxies", []).append(p)
        self.addCleanup(p.close)
        return p

    def start_upstream(self, factory=RateLimitedUpstream, **kwargs):
        u = factory(**kwargs)
        self.addCleanup(u.close)
        return u

    def _failed(self):
        # The result object already holds this test's failures and errors
        # (unittest resets its own "success" flag inside each cleanup).
        result = getattr(getattr(self, "_outcome", None), "result", None)
        reported = (list(getattr(result, "failures", [])) +
                    list(getattr(result, "errors", [])))
        return any(test is self for test, _ in reported)

    def setUp(self):
        # Runs after tearDown and the other cleanups are registered later, so
        # LIFO order makes this the last one: failures in tearDown count too.
        super().setUp()
        self.addCleanup(self._dump_logs_if_failed)

    def _dump_logs_if_failed(self):
        if self._failed() or os.environ.get("SLUICE_IT_VERBOSE"):
            proxies = (type(self)._class_list() +
                       self.__dict__.get("_test_proxies", []))
            for p in proxies:
                p.dump_logs("process output for %s:" % self.id())

    def assertUpstreamUntouched(self, upstream, before=0):
        """The upstream saw no new connection and no request."""
        self.assertEqual(
            upstream.total_activity(), before,
            "the upstream was dialled: %d connections, %d requests" %
            (upstream.connections_accepted, upstream.requests_started))
