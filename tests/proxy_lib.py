"""Shared pieces of the `openwfp proxy` tests: real peers (nginx from
Debian, started on loopback ports in a temporary directory, with TLS if
asked; curl and wget), the proxy as a child process, its statistics and its
descriptor count, network namespaces, and the checks (those of
replay_lib.py: the same "ok  "/"FAIL" lines).
"""
import contextlib
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import replay_lib
from replay_lib import check, failures  # noqa: F401 (the tests' L.check, L.failures)

# Every Proxy's log file, removed by finish() when every check passed.
_logs = []


def finish():
    """The exit status (replay_lib.finish()); the proxies' logs are
    removed when every check passed."""
    rc = replay_lib.finish()
    if rc == 0:
        for path in _logs:
            with contextlib.suppress(OSError):
                os.unlink(path)
    return rc


def missing_tools(*names):
    """The programs of `names` not on PATH (a test exits 77, skipped, when
    any is missing)."""
    return [n for n in names if shutil.which(n) is None]


def free_port():
    """A port nobody listens on now, for both 127.0.0.1 and ::1."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                s6.bind(("::1", port))
            return port
        except OSError:
            continue


def wait_for(pred, timeout=20.0, step=0.05):
    """Polls pred() every `step` seconds until it is true or `timeout` has
    passed; returns its last value."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() >= deadline:
            return v
        time.sleep(step)


def wait_port(host, port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def make_file(path, size, seed=1):
    """Deterministic incompressible bytes."""
    h = hashlib.sha256(str(seed).encode()).digest()
    with open(path, "wb") as f:
        left = size
        block = hashlib.shake_256(h).digest(1 << 20)
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
            block = hashlib.sha256(block[:32]).digest() + block[32:]
    return sha256_file(path)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Nginx:
    """nginx on 127.0.0.1:PORT and [::1]:PORT serving `root`; PUT under
    /upload/ stores the body in root/upload/ (the dav module). tls=True:
    HTTPS, with a throw-away self-signed certificate made here."""

    def __init__(self, root, port=None, tls=False):
        self.root = root
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="owfp-nginx-")
        os.makedirs(os.path.join(root, "upload"), exist_ok=True)
        ssl = cert = ""
        if tls:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-days", "1", "-subj", "/CN=openwfp-test",
                            "-keyout", self.dir + "/key.pem", "-out", self.dir + "/cert.pem"],
                           check=True, capture_output=True)
            ssl = " ssl"
            cert = "ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;".format(
                d=self.dir)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 20000; }}
worker_rlimit_nofile 40000;
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{p}{ssl};
        listen [::1]:{p}{ssl};
        {cert}
        root {r};
        location /upload/ {{
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 1g;
        }}
        location = /echo {{
            client_max_body_size 1g;
            return 200 "ok\\n";
        }}
    }}
}}
""".format(d=self.dir, p=self.port, r=root, ssl=ssl, cert=cert))
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port("127.0.0.1", self.port):
            self.stop()
            raise RuntimeError("nginx did not start: " + self.errors())

    def errors(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Proxy:
    """`openwfp proxy ARGS...` as a child; its log goes to a file (removed
    by finish() when every check passed). Started once the log has the line
    `ready` ("event=listening" unless given; None: at once)."""

    def __init__(self, openwfp, args, env=None, preexec_fn=None, ready="event=listening"):
        self.log_path = tempfile.mktemp(prefix="owfp-proxy-", suffix=".log")
        _logs.append(self.log_path)
        self.log = open(self.log_path, "w+")
        e = dict(os.environ)
        e.update(env or {})
        # The example drivers run under --verify=strict here too.
        self.proc = subprocess.Popen([openwfp, "proxy", *replay_lib.verified(args)],
                                     stdout=self.log, stderr=self.log, env=e,
                                     preexec_fn=preexec_fn)
        if ready and not self.wait_log(ready, 15):
            self.kill()
            raise RuntimeError("proxy did not start: " + self.text())

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, needle, timeout=10.0):
        """Waits until the log has `needle`; returns whether it has."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                return needle in self.text()
            time.sleep(0.02)
        return False

    def stats(self, timeout=10.0):
        """Asks for the statistics line (SIGUSR1), waits for that very line
        (text or JSON) and returns it as a dict; {} on no answer."""
        n = len(self.stats_lines())
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.stats_lines()) > n:
                return self.last_stats()
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        return {}

    def last_stats(self):
        lines = self.stats_lines()
        if not lines:
            return {}
        line = lines[-1]
        if line.startswith("{"):
            return {k: v for k, v in json.loads(line).items() if isinstance(v, int)}
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)(?= |$)", line)}

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def _status_kib(self, field):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def rss_kib(self):
        return self._status_kib("VmRSS")

    def hwm_kib(self):
        """Peak RSS (VmHWM) since the start or the last reset_hwm()."""
        return self._status_kib("VmHWM")

    def reset_hwm(self):
        """Starts the peak RSS over from the current RSS (clear_refs 5)."""
        with open("/proc/%d/clear_refs" % self.proc.pid, "w") as f:
            f.write("5")

    def fd_kinds(self):
        """The proxy's open descriptors by kind ("socket", "pipe",
        "anon_inode:[eventfd]", a path...), as a dict of counts."""
        kinds = {}
        d = "/proc/%d/fd" % self.proc.pid
        for fd in os.listdir(d):
            try:
                target = os.readlink(os.path.join(d, fd))
            except OSError:
                continue  # closed meanwhile
            kind = target.split(":[")[0] if target.startswith(("socket:", "pipe:")) else target
            kinds[kind] = kinds.get(kind, 0) + 1
        return kinds

    def stats_lines(self):
        """Every statistics line of the log so far, text or JSON."""
        return [l for l in self.text().splitlines()
                if "event=stats" in l or '"event":"stats"' in l]

    def wait_stats(self, pred, timeout=20.0, interval=0.1):
        """Polls stats() until pred(stats) holds or the deadline passes;
        returns the last statistics either way."""
        deadline = time.time() + timeout
        while True:
            s = self.stats()
            if pred(s) or time.time() >= deadline or self.proc.poll() is not None:
                return s
            time.sleep(interval)

    def wait_closed(self, timeout=20.0, interval=0.1):
        """wait_stats() until no connection is open (connections_open 0)."""
        return self.wait_stats(lambda s: s.get("connections_open") == 0, timeout, interval)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the proxy; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        self.log.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def run_tests(tests):
    """Runs each (function, args) of tests, timed; one that raises (a
    proxy that did not start) fails its "ran" check and the others run."""
    for test, args in tests:
        t0 = time.time()
        try:
            test(*args)
        except Exception as e:
            check("%s ran" % test.__name__, False, repr(e))
        print("     (%s: %.1f s)" % (test.__name__, time.time() - t0), flush=True)


def stats(proxy, timeout=30.0):
    """proxy.stats(), raising when no statistics line answers (the case
    fails as a whole)."""
    st = proxy.stats(timeout)
    if not st:
        raise RuntimeError("no statistics line from the proxy (status %s)" % proxy.proc.poll())
    return st


def stop_checked(name, proxy):
    """Stops the proxy with SIGTERM and checks that it was still running,
    that it exited with status 0 and that no sanitizer reported anything;
    returns the exit status."""
    alive = proxy.proc.poll() is None
    rc = proxy.stop()
    check(name + ": the proxy was still running at the end", alive,
          "status %s\n%s" % (proxy.proc.returncode, proxy.text()[-3000:]))
    check(name + ": SIGTERM: exit status 0", rc == 0, "status %s\n%s" % (rc, proxy.text()[-3000:]))
    check(name + ": no sanitizer report", "Sanitizer" not in proxy.text(), proxy.text()[-4000:])
    return rc


def start(openwfp, upstream_port, *args, **kw):
    """Proxy(openwfp, --listen 127.0.0.1:PORT --upstream
    127.0.0.1:UPSTREAM_PORT ARGS...) on a free PORT: (proxy, PORT)."""
    port = free_port()
    return Proxy(openwfp, ["--listen", "127.0.0.1:%d" % port,
                           "--upstream", "127.0.0.1:%d" % upstream_port, *args], **kw), port


# ---- servers ---------------------------------------------------------------------

class Upstream:
    """A python TCP server on 127.0.0.1: handler(conn, rec) runs in a thread
    per connection; rec (a dict) records what it saw, rec["done"] is set when
    it returns."""

    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.records = []
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            rec = {"peer": peer, "done": threading.Event()}
            self.records.append(rec)
            self.conns.append(c)
            threading.Thread(target=self._run, args=(c, rec), daemon=True).start()

    def _run(self, c, rec):
        try:
            self.handler(c, rec)
        except Exception as e:  # recorded: the test checks what it expects
            rec["error"] = repr(e)
        finally:
            c.close()
            rec["done"].set()

    def record(self, i=0, timeout=15.0):
        wait_for(lambda: len(self.records) > i, timeout)
        if len(self.records) <= i:
            return None
        self.records[i]["done"].wait(timeout)
        return self.records[i]

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.close()
        self.thread.join(5)


# ---- clients ---------------------------------------------------------------------

def blob(n, seed):
    """n deterministic bytes."""
    return hashlib.shake_256(seed.encode()).digest(n)


def linger_rst(sock):
    """close() now sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def recv_all(sock, size=1 << 20):
    """Reads until EOF; returns the bytes."""
    chunks = []
    while True:
        b = sock.recv(size)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def raw_get(port, path, timeout=120):
    """HTTP/1.0 GET with a plain socket, read to EOF: the body need not
    match Content-Length (edited streams). (head, body, error or None)."""
    data = bytearray()
    error = None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET " + path.encode() + b" HTTP/1.0\r\nHost: x\r\n\r\n")
            while True:
                b = s.recv(1 << 20)
                if not b:
                    break
                data += b
    except OSError as e:
        error = e
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head, body, error


def curl(*args, timeout=120):
    """curl -s -S --max-time TIMEOUT ARGS: (exit code, stdout, stderr as text)."""
    p = subprocess.run(["curl", "-s", "-S", "--max-time", str(timeout), *args],
                       capture_output=True, timeout=timeout + 30)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


# curl options that end its stderr with "HTTP_CODE HEADER_BYTES" (curl_status()).
CURL_STATUS = ["-w", "%{stderr}\\n%{http_code} %{size_header}\\n"]


def curl_status(err):
    """(http code, header bytes) from the stderr of a curl run with
    CURL_STATUS; (0, -1) without that line."""
    last = err.strip().splitlines()[-1].split() if err.strip() else []
    if len(last) == 2 and all(x.isdigit() for x in last):
        return int(last[0]), int(last[1])
    return 0, -1


def hash_output(cmd, timeout=600):
    """Runs cmd, hashing its stdout as it streams in: (exit code, sha256,
    bytes, stderr as text)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    h, n = hashlib.sha256(), 0
    try:
        for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
            h.update(chunk)
            n += len(chunk)
        err = p.stderr.read().decode(errors="replace")
        rc = p.wait(timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    return rc, h.hexdigest(), n, err


# ---- network namespaces ------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


class NetNs:
    """A network namespace (`ip netns add NAME`), deleted by delete(). Sockets
    made inside `with ns.entered():` (this thread only) live in it;
    preexec_fn=ns.preexec starts a child in it (the pid stays the child's)."""

    def __init__(self, name):
        self.name = name
        self.path = "/run/netns/" + name
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        try:
            self.ip("link", "set", "lo", "up")
        except BaseException:
            self.delete()
            raise

    def run(self, *cmd, check=True, input=None):
        """A command inside (ip netns exec); returns its stdout."""
        r = subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True,
                           text=True, input=input)
        if check and r.returncode != 0:
            raise RuntimeError("%s in %s: %s" % (" ".join(cmd), self.name, r.stderr.strip()))
        return r.stdout

    def ip(self, *args):
        r = subprocess.run(["ip", "-n", self.name, *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("ip -n %s %s: %s" % (self.name, " ".join(args), r.stderr.strip()))
        return r.stdout

    def sysctl(self, name, value):
        self.run("sysctl", "-qw", "%s=%s" % (name, value))

    @contextlib.contextmanager
    def entered(self):
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            _setns(fd)
            yield self
        finally:
            _setns(own)
            os.close(fd)
            os.close(own)

    def preexec(self):
        fd = os.open(self.path, os.O_RDONLY)
        _setns(fd)
        os.close(fd)

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
