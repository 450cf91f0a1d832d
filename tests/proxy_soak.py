#!/usr/bin/env python3
"""Proxy soak: `openwfp proxy` with the example drivers under mixed load and
random peer faults for a bounded time, while its memory and descriptors are
sampled. Every complete response must arrive exactly as the callouts edit it,
the proxy's RSS must stop growing once warm, its descriptors must come back
to where they started, and it must stop cleanly under --strict.

usage: proxy_soak.py OPENWFP FLOW_MONITOR.so CONTENT_BLOCK.so STREAM_EDIT.so
environment: SOAK_SECONDS (default 60), SOAK_SEED (default: time-based),
OWFP_SANITIZE (the build's b_sanitize: under AddressSanitizer RSS may move by 64 MiB).
"""
import os
import random
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_lib as L  # noqa: E402

OPENWFP, FLOW_MONITOR, CONTENT_BLOCK, STREAM_EDIT = sys.argv[1:5]
SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
# AddressSanitizer keeps freed memory in its quarantine (256 MiB) and its
# allocator's size classes fill unevenly, so RSS under it moves by tens of
# MiB with no leak (LeakSanitizer checks those); the plain build's run is
# the flatness check.
SLACK_MIB = 64 if "address" in os.environ.get("OWFP_SANITIZE", "") else 16
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
CLIENTS = 6


def files(root, rng):
    """name -> (bytes on disk, bytes expected through the callouts or None
    when the connection must be dropped)."""
    out = {}
    body = bytes(rng.getrandbits(8) for _ in range(4096)).replace(b"secret", b"xxxxxx")
    plain = (body * 64)[:200000]
    masked = b"".join(plain[i:i + 9000] + b" a secret " for i in range(0, len(plain), 9000))
    specs = {
        "small.bin": b"x" * 1024,
        "plain.bin": plain,
        "masked.txt": masked,
        "forbidden.txt": b"top forbidden words" * 100,
        "empty.bin": b"",
    }
    for name, data in specs.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        if name == "forbidden.txt":
            out[name] = (data, None)
        else:
            out[name] = (data, data.replace(b"secret", b"******"))
    return out


def request(name, close):
    return ("GET /%s HTTP/1.1\r\nHost: soak\r\n%s\r\n" %
            (name, "Connection: close\r\n" if close else "")).encode()


def read_response(sock):
    """(status, body) of one HTTP/1.1 response with Content-Length."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the head")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        rest += chunk
    return int(head.split()[1]), rest[:length]


class Load:
    def __init__(self, port, dead_port, expected, seed):
        self.port, self.dead_port, self.expected = port, dead_port, expected
        self.seed = seed
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {}
        self.errors = []

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def error(self, what):
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(what)

    def connect(self, port=None):
        s = socket.create_connection(("127.0.0.1", port or self.port), timeout=10)
        s.settimeout(10)
        return s

    def keepalive(self, rng):
        names = [n for n in self.expected if self.expected[n][1] is not None]
        with self.connect() as s:
            for _ in range(rng.randint(1, 5)):
                name = rng.choice(names)
                s.sendall(request(name, False))
                status, body = read_response(s)
                if status != 200 or body != self.expected[name][1]:
                    self.error("keep-alive %s: status %d, %d bytes" % (name, status, len(body)))
        self.count("keepalive")

    def half_close(self, rng):
        name = rng.choice(["plain.bin", "masked.txt", "small.bin"])
        with self.connect() as s:
            s.sendall(request(name, True))
            s.shutdown(socket.SHUT_WR)
            status, body = read_response(s)
            if body != self.expected[name][1]:
                self.error("half-close %s: %d bytes" % (name, len(body)))
        self.count("half_close")

    def reset_midway(self, rng):
        s = self.connect()
        s.sendall(request("plain.bin", True))
        s.recv(rng.randint(1, 30000))
        L.linger_rst(s)
        s.close()
        self.count("reset_midway")

    def stall(self, rng):
        with self.connect() as s:
            s.sendall(request("plain.bin", True) * rng.randint(1, 3))
            time.sleep(rng.uniform(0.05, 0.3))
        self.count("stall")

    def forbidden(self, rng):
        with self.connect() as s:
            s.sendall(request("forbidden.txt", True))
            try:
                status, body = read_response(s)
                self.error("forbidden.txt was delivered (%d bytes)" % len(body))
            except (ConnectionError, OSError):
                self.count("dropped_as_expected")

    def dead_upstream(self, rng):
        with self.connect(self.dead_port) as s:
            try:
                if s.recv(1) != b"":
                    self.error("dead upstream answered")
            except OSError:
                pass
        self.count("dead_upstream")

    def run(self, k):
        rng = random.Random(self.seed * 100 + k)
        actions = [self.keepalive] * 5 + [self.half_close] * 2 + [self.reset_midway,
                                                                 self.stall, self.forbidden,
                                                                 self.dead_upstream]
        while not self.stop.is_set():
            act = rng.choice(actions)
            try:
                act(rng)
            except (OSError, ConnectionError) as e:
                if act in (self.keepalive, self.half_close):
                    self.error("%s: %s" % (act.__name__, e))


def main():
    rng = random.Random(SEED)
    print("seed %d, %.0f s" % (SEED, SECONDS), flush=True)
    root = tempfile.mkdtemp(prefix="owfp-soak-")
    expected = files(root, rng)
    nginx = L.Nginx(root)
    port, dead_port, closed_port = L.free_port(), L.free_port(), L.free_port()
    mode = rng.choice(["inline", "oob"])
    args = ["--listen", "127.0.0.1:%d" % port, "--upstream", "127.0.0.1:%d" % nginx.port,
            "--listen", "127.0.0.1:%d" % dead_port, "--upstream", "127.0.0.1:%d" % closed_port,
            "--strict", "--grace", "5", "--idle-timeout", "30",
            "--example", "mask=secret",
            "--driver", FLOW_MONITOR, "--driver-param", "Verbose=0",
            "--driver", CONTENT_BLOCK, "--driver-param", "Pattern=forbidden",
            "--driver-param", "AllowAfter=%d" % rng.choice([0, 50000]),
            # Never found: the edit machinery runs on every byte, the bytes stay.
            "--driver", STREAM_EDIT, "--driver-param", "Find=qQzZ", "--driver-param", "Replace=yy",
            "--driver-param", "Mode=" + mode, "--driver-param", "Direction=1"]
    print("openwfp proxy " + " ".join(args), flush=True)
    proxy = L.Proxy(OPENWFP, args)
    load = Load(port, dead_port, expected, SEED)
    samples = []
    try:
        base_fds = proxy.fds()
        threads = [threading.Thread(target=load.run, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        end = time.time() + SECONDS
        while time.time() < end:
            samples.append((proxy.rss_kib(), proxy.fds()))
            time.sleep(0.5)
        load.stop.set()
        for t in threads:
            t.join(60)
        L.wait_for(lambda: proxy.fds() == base_fds, 20, 0.1)
        stats = proxy.stats()
        end_fds = proxy.fds()
    finally:
        load.stop.set()
        rc = proxy.stop()
        nginx.stop()
    print("load:", load.counts)
    print("stats:", {k: v for k, v in stats.items() if v})
    L.check("no wrong or missing response", not load.errors, "\n".join(load.errors))
    L.check("every kind of client ran", len(load.counts) == 6, load.counts)
    L.check("DROP_CONNECTION reached the forbidden downloads",
            stats.get("dropped", 0) >= load.counts.get("dropped_as_expected", 0) > 0, stats)
    L.check("no engine errors", stats.get("engine_errors", 1) == 0, stats)
    L.check("connections_open back to 0", stats.get("connections_open", 1) == 0, stats)
    L.check("descriptors back to the start (%d)" % base_fds, end_fds == base_fds,
            "%d at the end" % end_fds)
    warm = samples[len(samples) // 3:]
    half = len(warm) // 2
    if half:
        first, last = max(r for r, _ in warm[:half]), max(r for r, _ in warm[half:])
        print("RSS KiB: start %d, warm first half max %d, second half max %d, end %d"
              % (samples[0][0], first, last, samples[-1][0]))
        L.check("RSS flat once warm (second half max <= first half max + %d MiB)" % SLACK_MIB,
                last <= first + SLACK_MIB * 1024, "%d -> %d KiB" % (first, last))
    L.check("SIGTERM: exit 0 under --strict (no leaks, no findings)", rc == 0,
            proxy.text()[-3000:])
    return L.finish()


if __name__ == "__main__":
    sys.exit(main())
