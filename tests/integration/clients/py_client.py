"""An HTTPS client for test_https_clients.py, run as its own process so
that it reads its proxy and trust settings from the environment at start,
as an app would.

    py_client.py requests|urllib BASE_URL COUNT BODY_SIZE

requests: a Session with the environment's settings (HTTPS_PROXY,
REQUESTS_CA_BUNDLE); urllib: urlopen (https_proxy, SSL_CERT_FILE). COUNT
times, one after another: GET BASE_URL/get/<i>, then POST BASE_URL/post/<i>
with a BODY_SIZE body (byte k is (k * 31 + 7) mod 256). Each response is
printed as its body followed by "\\n@@ <METHOD> <status>\\n".
"""

import sys
import urllib.error
import urllib.request


def body_of(size):
    return bytes((k * 31 + 7) & 0xFF for k in range(size))


def emit(method, status, body):
    out = sys.stdout.buffer
    out.write(body + b"\n@@ %s %d\n" % (method.encode(), status))
    out.flush()


def with_requests(base, count, body):
    import requests  # Debian's python3-requests.
    with requests.Session() as s:
        for i in range(count):
            r = s.get("%s/get/%d" % (base, i), timeout=120)
            emit("GET", r.status_code, r.content)
            r = s.post("%s/post/%d" % (base, i), data=body, timeout=120)
            emit("POST", r.status_code, r.content)


def with_urllib(base, count, body):
    def one(req):
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                emit(req.get_method(), r.status, r.read())
        except urllib.error.HTTPError as e:
            emit(req.get_method(), e.code, e.read())

    for i in range(count):
        one(urllib.request.Request("%s/get/%d" % (base, i)))
        one(urllib.request.Request("%s/post/%d" % (base, i), data=body,
                                   method="POST"))


def main():
    mode, base, count, size = sys.argv[1:5]
    body = body_of(int(size))
    {"requests": with_requests, "urllib": with_urllib}[mode](
        base, int(count), body)


if __name__ == "__main__":
    main()
