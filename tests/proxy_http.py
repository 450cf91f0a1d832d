#!/usr/bin/env python3
"""`openwfp proxy` with real peers: curl and wget against nginx through the
proxy, in three proxy configurations:

  splice   no callout: every flow leaves the engine at once (spec O4) and is
           relayed with splice(2);
  noop     --example noop: every byte goes through a stream callout;
  none     no callout and --offload none: every byte stays on the engine path.

In each: downloads (curl and wget) and uploads (curl -T, the file nginx
stored compared) of 0 B, 1 B, 1 KiB and 1 MiB, one of 100 MiB each way, all
by sha256; HTTP keep-alive (one connection for several URLs); 2,000 small
requests over keep-alive and one connection each; IPv6 listening and
upstream addresses in every v4/v6 combination. Then the proxy's statistics
per configuration, its descriptors back where they started, no connection
open, and exit 0 on SIGTERM.

usage: proxy_http.py OPENWFP
"""
import hashlib
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_lib as L  # noqa: E402

OPENWFP = sys.argv[1]
WORKERS = 2
SPARE_PIPES = 64  # OWFP_SPARE_PIPES (src/proxy/worker.h): empty pipes a worker keeps
SIZES = {"0": 0, "1": 1, "1k": 1024, "1m": 1 << 20}
BIG = 100 << 20
SMALL_KEEPALIVE = 1000  # curl, one connection
SMALL_CLOSE = 500       # curl, Connection: close
SMALL_WGET = 500        # wget --no-http-keep-alive
CURL_FMT = "%{http_code} %{size_download} %{size_header} %{size_upload} %{size_request} %{num_connects}\\n"


class Files:
    """The served files and their digests."""

    def __init__(self, root):
        self.root = root
        self.sha = {}
        self.size = {}
        for name, size in list(SIZES.items()) + [("big", BIG)]:
            path = os.path.join(root, name + ".bin")
            self.sha[name] = L.make_file(path, size, seed=name)
            self.size[name] = size

    def path(self, name):
        return os.path.join(self.root, name + ".bin")


def curl(args, timeout=600):
    """curl -s -S ARGS -w CURL_FMT: (exit code, [per-transfer dicts], stderr).
    The body goes wherever ARGS say (-o)."""
    rc, out, err = L.curl("-w", CURL_FMT, *args, timeout=timeout)
    transfers = []
    for line in out.decode(errors="replace").splitlines():
        f = line.split()
        if len(f) == 6 and all(x.isdigit() for x in f):
            transfers.append(dict(zip(("code", "body", "header", "upload", "request", "connects"),
                                      map(int, f))))
    return rc, transfers, err


def curl_sha(url, timeout=600):
    """Downloads url with curl, hashing the body as it streams in. Returns
    (exit code, http code, sha256, bytes, stderr, header bytes)."""
    rc, sha, n, err = L.hash_output(["curl", "-s", "-S", "--max-time", str(timeout), "-g",
                                     *L.CURL_STATUS, url], timeout + 30)
    code, header = L.curl_status(err)
    return rc, code, sha, n, err, header


def wget_sha(url, timeout=600, extra=()):
    """The same with wget -O - (also several URLs: the bodies one after the
    other). Returns (exit code, sha256, bytes, stderr)."""
    urls = [url] if isinstance(url, str) else list(url)
    return L.hash_output(["wget", "-q", "-T", str(timeout), "-t", "1", *extra, "-O", "-", *urls],
                         timeout + 30)


class Run:
    """One proxy configuration: the proxy with four routes (v4->v4, v6->v4,
    v4->v6, v6->v6) to the same nginx, and what its clients moved."""

    def __init__(self, name, args, nginx, files):
        self.name = name
        self.nginx = nginx
        self.files = files
        self.ports = {k: L.free_port() for k in ("44", "64", "46", "66")}
        routes = []
        for k, port in self.ports.items():
            listen = "127.0.0.1" if k[0] == "4" else "[::1]"
            up = "127.0.0.1" if k[1] == "4" else "[::1]"
            routes += ["--listen", "%s:%d" % (listen, port), "--upstream", "%s:%d" % (up, nginx.port)]
        self.proxy = L.Proxy(OPENWFP, routes + ["--workers", str(WORKERS)] + args)
        self.body_down = 0  # body bytes the clients received
        self.body_up = 0    # body bytes the clients uploaded

    def url(self, path, route="44"):
        host = "127.0.0.1" if route[0] == "4" else "[::1]"
        return "http://%s:%d%s" % (host, self.ports[route], path)

    def check(self, what, cond, detail=""):
        return L.check("%s: %s" % (self.name, what), cond, detail)

    # ---- the matrix --------------------------------------------------------

    def downloads(self):
        for name in SIZES:
            want = self.files.sha[name]
            rc, code, sha, n, err, _ = curl_sha(self.url("/%s.bin" % name))
            self.check("curl download %s B" % SIZES[name],
                       rc == 0 and code == 200 and sha == want and n == SIZES[name],
                       "curl %d http %d %d bytes %s" % (rc, code, n, err))
            self.body_down += n
            rc, sha, n, err = wget_sha(self.url("/%s.bin" % name))
            self.check("wget download %s B" % SIZES[name],
                       rc == 0 and sha == want and n == SIZES[name],
                       "wget %d %d bytes %s" % (rc, n, err))
            self.body_down += n

    def uploads(self):
        for name in SIZES:
            self.upload(name, "44")

    def upload(self, name, route):
        target = "%s-%s-%s.bin" % (self.name, route, name)
        stored = os.path.join(self.files.root, "upload", target)
        rc, t, err = curl(["-o", "/dev/null", "-T", self.files.path(name),
                           "-g", self.url("/upload/" + target, route)])
        ok = rc == 0 and len(t) == 1 and t[0]["code"] in (201, 204) and os.path.exists(stored)
        self.check("curl upload %d B via %s" % (self.files.size[name], route_text(route)),
                   ok and L.sha256_file(stored) == self.files.sha[name],
                   "curl %d %s %s" % (rc, t, err))
        if os.path.exists(stored):
            os.unlink(stored)
        self.body_up += self.files.size[name]
        return t[0] if ok else None

    def big(self):
        """100 MiB each way; the proxy's byte counters must grow by exactly
        what curl says went over the connection."""
        before = self.proxy.stats()
        t0 = time.time()
        rc, code, sha, n, err, header = curl_sha(self.url("/big.bin"))
        self.check("curl download 100 MiB", rc == 0 and code == 200 and
                   sha == self.files.sha["big"] and n == BIG, "curl %d http %d %d bytes %s"
                   % (rc, code, n, err))
        self.body_down += n
        t1 = time.time()
        mid = self.proxy.stats()
        got = moved_receive(mid) - moved_receive(before)
        self.check("download: the proxy relayed exactly the response (%d bytes)" % (header + n),
                   rc == 0 and got == header + n, "proxy: %d" % got)
        t = self.upload("big", "44")
        t2 = time.time()
        print("     (%s: 100 MiB down %.1f s, up %.1f s)" % (self.name, t1 - t0, t2 - t1), flush=True)
        after = self.proxy.stats()
        got = moved_send(after) - moved_send(mid)
        want = t["request"] + t["upload"] if t else -1
        self.check("upload: the proxy relayed exactly the request (%d bytes)" % want,
                   got == want, "proxy: %d" % got)

    def keepalive(self):
        """Several URLs in one curl run: one connection, also for the proxy,
        which moved exactly the bytes curl counted."""
        urls = [self.url("/%s.bin" % n) for n in ("1k", "1m", "0", "1", "1m")]
        before = self.proxy.stats()
        args = []
        for u in urls:
            args += ["-o", "/dev/null", u]
        rc, t, err = curl(args)
        ok = rc == 0 and len(t) == len(urls) and all(x["code"] == 200 for x in t)
        self.check("keep-alive: %d URLs in one curl run succeed" % len(urls), ok,
                   "curl %d %s %s" % (rc, t, err))
        self.check("keep-alive: curl made 1 connection (num_connects total)",
                   sum(x["connects"] for x in t) == 1, t)
        after = self.proxy.wait_closed()
        self.check("keep-alive: the proxy accepted 1 connection for it",
                   after.get("connections_accepted", 0) - before.get("connections_accepted", 0) == 1,
                   (before, after))
        want_rx = sum(x["header"] + x["body"] for x in t)
        want_tx = sum(x["request"] + x["upload"] for x in t)
        got_rx = moved_receive(after) - moved_receive(before)
        got_tx = moved_send(after) - moved_send(before)
        self.check("keep-alive: the proxy moved exactly curl's bytes (%d received, %d sent)"
                   % (want_rx, want_tx), ok and got_rx == want_rx and got_tx == want_tx,
                   "proxy: %d received, %d sent" % (got_rx, got_tx))
        self.body_down += sum(x["body"] for x in t)

    def many_small(self, tmp):
        """2,000 requests: over one keep-alive connection, one connection
        each (curl with Connection: close, wget without keep-alive)."""
        url = self.url("/1k.bin")
        before = self.proxy.stats()
        cfg = os.path.join(tmp, "many.curl")
        with open(cfg, "w") as f:
            for _ in range(SMALL_KEEPALIVE):
                f.write('url = "%s"\noutput = "/dev/null"\n' % url)
        t0 = time.time()
        rc, t, err = curl(["-K", cfg])
        good = sum(1 for x in t if x["code"] == 200 and x["body"] == 1024)
        self.check("%d requests over keep-alive all succeed" % SMALL_KEEPALIVE,
                   rc == 0 and good == SMALL_KEEPALIVE, "curl %d, %d good %s" % (rc, good, err[-2000:]))
        self.check("... on 1 connection", sum(x["connects"] for x in t) == 1,
                   sum(x["connects"] for x in t))
        self.body_down += good * 1024
        with open(cfg, "w") as f:
            for _ in range(SMALL_CLOSE):
                f.write('url = "%s"\noutput = "/dev/null"\n' % url)
        rc, t, err = curl(["-H", "Connection: close", "-K", cfg])
        good = sum(1 for x in t if x["code"] == 200 and x["body"] == 1024)
        self.check("%d requests with Connection: close all succeed" % SMALL_CLOSE,
                   rc == 0 and good == SMALL_CLOSE, "curl %d, %d good %s" % (rc, good, err[-2000:]))
        self.check("... on %d connections" % SMALL_CLOSE,
                   sum(x["connects"] for x in t) == SMALL_CLOSE, sum(x["connects"] for x in t))
        self.body_down += good * 1024
        rc, sha, n, err = wget_sha([url] * SMALL_WGET, extra=["--no-http-keep-alive"])
        want = hashlib.sha256(open(self.files.path("1k"), "rb").read() * SMALL_WGET).hexdigest()
        self.check("%d wget requests, one connection each, all succeed" % SMALL_WGET,
                   rc == 0 and n == 1024 * SMALL_WGET and sha == want, "wget %d %d bytes %s"
                   % (rc, n, err[-2000:]))
        self.body_down += n
        after = self.proxy.wait_closed()
        want_conns = 1 + SMALL_CLOSE + SMALL_WGET
        got = after.get("connections_accepted", 0) - before.get("connections_accepted", 0)
        self.check("the proxy accepted %d connections for them" % want_conns, got == want_conns, got)
        print("     (%s: 2,000 small requests %.1f s)" % (self.name, time.time() - t0), flush=True)

    def ipv6(self):
        for route in ("64", "46", "66"):
            rc, code, sha, n, err, _ = curl_sha(self.url("/1m.bin", route))
            self.check("curl download 1 MiB via %s" % route_text(route),
                       rc == 0 and code == 200 and sha == self.files.sha["1m"],
                       "curl %d http %d %d bytes %s" % (rc, code, n, err))
            self.body_down += n
            rc, sha, n, err = wget_sha(self.url("/1k.bin", route))
            self.check("wget download 1 KiB via %s" % route_text(route),
                       rc == 0 and sha == self.files.sha["1k"], "wget %d %s" % (rc, err))
            self.body_down += n
            self.upload("1m", route)

    # ---- the end -------------------------------------------------------------

    def finish(self, start_fds, expect):
        s = self.proxy.wait_stats(lambda s: s.get("connections_open") == 0 and
                                  s.get("buffered_bytes") == 0)
        self.check("no connection open at the end (connections_open 0, buffered_bytes 0)",
                   s.get("connections_open") == 0 and s.get("buffered_bytes") == 0, s)
        for k in ("dropped", "peer_resets", "engine_errors", "upstream_failures",
                  "connections_rejected", "ale_blocked", "idle_timeouts", "buffer_limit_hits",
                  "accept_errors", "bytes_blocked_send", "bytes_blocked_receive"):
            self.check("%s is 0" % k, s.get(k) == 0, s)
        self.check("the proxy moved at least the body bytes the clients got (%d) and sent (%d)"
                   % (self.body_down, self.body_up),
                   moved_receive(s) >= self.body_down and moved_send(s) >= self.body_up, s)
        expect(self, s)
        fds = self.proxy.fd_kinds()
        pipes = fds.pop("pipe", 0) - start_fds.get("pipe", 0)
        start = dict(start_fds)
        start.pop("pipe", None)
        self.check("descriptors back to the start (%s)" % start, fds == start,
                   "now %s" % fds)
        # An emptied splice pipe is kept for the next flow, up to
        # SPARE_PIPES per worker (two descriptors each).
        self.check("pipes only the workers' spare ones (%d descriptors)" % pipes,
                   pipes % 2 == 0 and 0 <= pipes <= 2 * SPARE_PIPES * WORKERS, pipes)
        return s


def route_text(route):
    return "IPv%s listen -> IPv%s upstream" % (route[0], route[1])


def moved_receive(s):
    return s.get("bytes_read_receive", 0) + s.get("bytes_offloaded_receive", 0)


def moved_send(s):
    return s.get("bytes_read_send", 0) + s.get("bytes_offloaded_send", 0)


def expect_splice(run, s):
    run.check("every connection offloaded to splice (offloaded_splice %d == connections %d)"
              % (s.get("offloaded_splice", -1), s.get("connections_accepted", -2)),
              s.get("offloaded_splice") == s.get("connections_accepted") and
              s.get("offloaded_copy") == 0, s)
    run.check("no byte went through the engine (bytes_read 0)",
              s.get("bytes_read_send") == 0 and s.get("bytes_read_receive") == 0, s)


def expect_engine(run, s):
    run.check("every byte read was permitted (bytes_read == bytes_permitted, both ways)",
              s.get("bytes_read_send") == s.get("bytes_permitted_send") and
              s.get("bytes_read_receive") == s.get("bytes_permitted_receive") and
              s.get("bytes_read_receive", 0) > 0, s)
    run.check("nothing offloaded (offloaded_splice 0, bytes_offloaded 0)",
              s.get("offloaded_splice") == 0 and s.get("offloaded_copy") == 0 and
              s.get("bytes_offloaded_send") == 0 and s.get("bytes_offloaded_receive") == 0, s)
    run.check("nothing injected", s.get("bytes_injected_send") == 0 and
              s.get("bytes_injected_receive") == 0, s)


CONFIGS = [
    ("splice", [], expect_splice),
    ("noop", ["--example", "noop"], expect_engine),
    ("none", ["--offload", "none"], expect_engine),
]


def main():
    missing = L.missing_tools("nginx", "curl", "wget")
    if missing:
        print("skip: not installed: " + " ".join(missing))
        return 77
    tmp = tempfile.mkdtemp(prefix="owfp-proxy-http-")
    root = os.path.join(tmp, "www")
    os.makedirs(root)
    nginx = None
    try:
        t0 = time.time()
        files = Files(root)
        print("     (files made in %.1f s)" % (time.time() - t0), flush=True)
        nginx = L.Nginx(root)
        for name, args, expect in CONFIGS:
            t0 = time.time()
            run = Run(name, args, nginx, files)
            try:
                start_fds = run.proxy.fd_kinds()
                run.downloads()
                run.uploads()
                run.keepalive()
                run.ipv6()
                run.many_small(tmp)
                run.big()
                run.finish(start_fds, expect)
            finally:
                rc = run.proxy.stop()
            run.check("SIGTERM: exit 0", rc == 0, "exit %s\n%s" % (rc, run.proxy.text()[-4000:]))
            print("     (%s: %.1f s)" % (name, time.time() - t0), flush=True)
    finally:
        if nginx:
            errors = nginx.errors()
            nginx.stop()
            if L.failures and errors:
                print("nginx error log:\n" + errors[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
    return L.finish()


if __name__ == "__main__":
    sys.exit(main())
