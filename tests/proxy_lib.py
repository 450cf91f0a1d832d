"""Shared pieces of the `openwfp proxy` tests: real peers (nginx from
Debian, started on loopback ports in a temporary directory), the proxy as a
child process, its statistics and its descriptor count, and the checks.
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
import subprocess
import tempfile
import time

failures = []


def check(name, cond, detail=""):
    print("%s %s" % ("ok  " if cond else "FAIL", name), flush=True)
    if not cond:
        failures.append(name)
        if detail:
            print("     " + str(detail).strip().replace("\n", "\n     "), flush=True)
    return cond


def finish():
    if failures:
        print("%d check(s) failed: %s" % (len(failures), ", ".join(failures)))
        return 1
    return 0


def missing_tools(*names):
    """The programs of `names` not on PATH (a test exits 77, skipped, when
    any is missing)."""
    return [n for n in names if shutil.which(n) is None]


def free_port(family=socket.AF_INET):
    """A port nobody listens on now, for both 127.0.0.1 and ::1."""
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                s6.bind(("::1", port))
            return port
        except OSError:
            continue


def wait_port(host, port, timeout=10.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
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
    /upload/ stores the body in root/upload/ (the dav module)."""

    def __init__(self, root, port=None):
        self.root = root
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="owfp-nginx-")
        os.makedirs(os.path.join(root, "upload"), exist_ok=True)
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
        listen 127.0.0.1:{p};
        listen [::1]:{p};
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
""".format(d=self.dir, p=self.port, r=root))
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
    """`openwfp proxy ARGS...` as a child; its log goes to a file."""

    def __init__(self, openwfp, args, listen=None, env=None, preexec_fn=None, ready=True):
        self.log_path = tempfile.mktemp(prefix="owfp-proxy-", suffix=".log")
        self.log = open(self.log_path, "w+")
        self.args = [openwfp, "proxy", *args]
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log, env=e,
                                     preexec_fn=preexec_fn)
        if ready and not self.wait_log("event=listening", 15):
            self.kill()
            raise RuntimeError("proxy did not start: " + self.text())

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, needle, timeout=10.0, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.text().count(needle) >= count:
                return True
            if self.proc.poll() is not None:
                return self.text().count(needle) >= count
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

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def hwm_kib(self):
        """Peak RSS (VmHWM) since the start or the last reset_hwm()."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

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

    fresh_stats = stats

    def wait_stats(self, pred, timeout=20.0, interval=0.1):
        """Polls fresh_stats() until pred(stats) holds or the deadline
        passes; returns the last statistics either way."""
        deadline = time.time() + timeout
        while True:
            s = self.fresh_stats()
            if pred(s) or time.time() >= deadline or self.proc.poll() is not None:
                return s
            time.sleep(interval)

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
