"""TLS pieces for the HTTPS integration tests (docs/https.md), on top of
sluice_harness.

  * OriginPki: a test CA for origins, made with the openssl CLI, and the
    leaves it signs: "good" (localhost and 127.0.0.1), "expired",
    "wrong_host" (for another name), plus a "self_signed" leaf that no CA
    vouches for.
  * PkiUpstream: RateLimitedUpstream (rate limit, ban(), scripts) behind
    TLS with one of those leaves.
  * RawTcpOrigin: a plain TCP server that records the bytes it receives
    and answers with bytes of its own, to check that a tunnel is opaque.
  * SluiceCa: `sluice-proxy ca init` in a temp dir (ca.pem, ca-key.pem,
    bundle.pem), and a Java truststore made from it.
  * run_client / parse_exchanges: real HTTPS clients as subprocesses, and
    the one output format they share.
"""

import datetime
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading

import sluice_harness as h

HERE = os.path.dirname(os.path.abspath(__file__))
OPENSSL_TIMEOUT = 60

# One openssl config for the CA and every leaf. `openssl ca` is used for the
# leaves because it takes explicit validity dates (an expired leaf).
_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_self]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[ca]
default_ca = test_ca
[test_ca]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
commonName = supplied
"""

_LEAF_EXT = """\
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {san}
"""


def _openssl(args, cwd=None):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True,
                       text=True, timeout=OPENSSL_TIMEOUT,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed (%d): %s" %
                           (" ".join(args), r.returncode, r.stderr))
    return r.stdout


def _asn1_time(t):
    return t.strftime("%Y%m%d%H%M%SZ")


class OriginPki:
    """A CA for test origins and leaves it signs, in a temp dir. Attributes:
    ca_path (the file a client of the origins must trust) and leaf paths
    per kind: leaf(kind) -> (cert_path, key_path), kind one of KINDS.

      good         localhost + 127.0.0.1, valid from an hour ago for 2 days
      expired      localhost + 127.0.0.1, valid only during 2020-01-01
      wrong_host   wrong.example only, valid now
      self_signed  localhost + 127.0.0.1, valid now, signed by its own key
    """

    KINDS = ("good", "expired", "wrong_host", "self_signed")

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-it-pki-")
        try:
            self._make()
        except BaseException:
            self.close()
            raise

    def _make(self):
        d = self.dir
        os.mkdir(os.path.join(d, "issued"))
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        self.cnf = os.path.join(d, "openssl.cnf")
        with open(self.cnf, "w") as f:
            f.write(_OPENSSL_CNF.replace("{dir}", d))
        self.ca_path = os.path.join(d, "origin-ca.pem")
        self.ca_key = os.path.join(d, "origin-ca.key")
        _openssl(["req", "-config", self.cnf, "-x509", "-newkey", "ec",
                  "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-subj", "/CN=sluice test origin CA", "-extensions", "v3_ca",
                  "-days", "3", "-keyout", self.ca_key, "-out", self.ca_path])
        now = datetime.datetime.now(datetime.timezone.utc)
        hour, days2 = datetime.timedelta(hours=1), datetime.timedelta(days=2)
        local = "DNS:localhost, IP:127.0.0.1"
        self._leaves = {
            "good": self._sign("good", local, now - hour, now + days2),
            "expired": self._sign(
                "expired", local,
                datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
                datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc)),
            "wrong_host": self._sign("wrong_host", "DNS:wrong.example",
                                     now - hour, now + days2),
            "self_signed": self._self_signed(),
        }

    def _key(self, name):
        key = os.path.join(self.dir, name + ".key")
        _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-out", key])
        return key

    def _sign(self, name, san, not_before, not_after):
        key = self._key(name)
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".pem")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write(_LEAF_EXT.format(san=san))
        cn = san.split(",")[0].split(":", 1)[1]
        _openssl(["req", "-config", self.cnf, "-new", "-key", key,
                  "-subj", "/CN=%s" % cn, "-out", csr])
        _openssl(["ca", "-batch", "-config", self.cnf, "-notext",
                  "-cert", self.ca_path, "-keyfile", self.ca_key,
                  "-extfile", ext, "-extensions", "leaf",
                  "-startdate", _asn1_time(not_before),
                  "-enddate", _asn1_time(not_after),
                  "-in", csr, "-out", cert])
        return cert, key

    def _self_signed(self):
        key = self._key("self_signed")
        cert = os.path.join(self.dir, "self_signed.pem")
        _openssl(["req", "-config", self.cnf, "-x509", "-new", "-key", key,
                  "-subj", "/CN=localhost", "-extensions", "v3_self",
                  "-days", "2", "-out", cert])
        return cert, key

    def leaf(self, kind):
        return self._leaves[kind]

    def server_context(self, kind):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.leaf(kind))
        return ctx

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class PkiUpstream(h.RateLimitedUpstream):
    """RateLimitedUpstream behind TLS with the `kind` leaf of `pki`
    (unlimited unless rate is given)."""

    scheme = "https"

    def __init__(self, pki, kind="good", rate=None, period=1.0, burst=None,
                 **kwargs):
        self.kind = kind
        super().__init__(rate, period, burst,
                         ssl_context=pki.server_context(kind), **kwargs)


class RawTcpOrigin:
    """A TCP server on `host`:<ephemeral>. For each connection it reads
    until it has `expect` bytes (or EOF), sends `reply`, and closes. What
    each connection sent is in `received` (a list of bytes, one per
    connection, appended once the connection is done)."""

    def __init__(self, expect, reply, host="127.0.0.1", timeout=30.0):
        self.expect, self.reply, self.timeout = expect, bytes(reply), timeout
        self.received = []
        self._lock = threading.Lock()
        self._sock = socket.create_server((host, 0))
        self.host = host
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name="raw-origin-%d" % self.port)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,),
                             daemon=True).start()

    def _one(self, conn):
        got = bytearray()
        with conn:
            conn.settimeout(self.timeout)
            try:
                while len(got) < self.expect:
                    b = conn.recv(65536)
                    if not b:
                        break
                    got += b
                conn.sendall(self.reply)
                conn.shutdown(socket.SHUT_WR)
                # Wait for the peer to close, so nothing is reset.
                while conn.recv(65536):
                    pass
            except OSError:
                pass
        with self._lock:
            self.received.append(bytes(got))

    def snapshot(self):
        with self._lock:
            return list(self.received)

    def close(self):
        self._sock.close()
        self._thread.join(5)


class SluiceCa(h.SluiceCa):
    """sluice_harness.SluiceCa (cert, key, bundle) plus a Java truststore."""

    def __init__(self):
        super().__init__()
        self._truststore = None

    def java_truststore(self, password="changeit"):
        """A copy of the JDK's cacerts with the CA imported (keytool), made
        once. Returns (path, password)."""
        if self._truststore is None:
            java = shutil.which("java")
            keytool = shutil.which("keytool")
            if not java or not keytool:
                raise RuntimeError("java and keytool are required (Debian: "
                                   "openjdk-17-jdk-headless)")
            home = os.path.dirname(os.path.dirname(os.path.realpath(java)))
            cacerts = os.path.join(home, "lib", "security", "cacerts")
            store = os.path.join(self.dir, "truststore.jks")
            shutil.copyfile(cacerts, store)
            r = subprocess.run(
                [keytool, "-importcert", "-noprompt", "-alias", "sluice-it",
                 "-file", self.cert, "-keystore", store, "-storepass",
                 password], capture_output=True, text=True, timeout=120,
                stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                raise RuntimeError("keytool failed (%d): %s%s" %
                                   (r.returncode, r.stdout, r.stderr))
            self._truststore = (store, password)
        return self._truststore


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------

# Every client prints each response as its body followed by
# "\n@@ <METHOD> <status>\n".
_MARK_RE = re.compile(rb"\n@@ ([A-Z]+) (\d{3})\n")


def parse_exchanges(out):
    """[(method, status, body_bytes)] from a client's output (bytes)."""
    parts = _MARK_RE.split(out)
    # parts: body0, method0, status0, body1, method1, status1, ..., rest
    rest = parts[-1]
    if rest.strip():
        raise AssertionError("client output after the last response: %r" %
                             rest[:400])
    return [(parts[i + 1].decode(), int(parts[i + 2]), parts[i])
            for i in range(0, len(parts) - 1, 3)]


def client_body(size):
    """The POST body every client sends: byte i is (i * 31 + 7) mod 256."""
    return bytes((i * 31 + 7) & 0xFF for i in range(size))


def run_client(cmd, env_extra, timeout=240, cwd=None):
    """Runs a client to completion with the test environment plus
    `env_extra`. Returns the CompletedProcess (bytes)."""
    env = dict(os.environ)
    env.update(env_extra)
    return subprocess.run(cmd, env=env, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=cwd)
