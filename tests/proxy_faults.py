#!/usr/bin/env python3
"""`openwfp proxy` under faults, with real sockets on loopback (and, for the
connect timeout, in network namespaces of its own):

  - a peer that resets mid-stream (upstream mid-response, client mid-upload);
  - a client that never reads a 512 MiB download (memory stays bounded);
  - half-closed connections in both orders;
  - an upstream that refuses, and one that never answers (--connect-timeout);
  - RLIMIT_NOFILE exhaustion (accept pauses, then recovers);
  - 10,000 concurrent idle connections (RSS per connection measured);
  - a driver that injects far more than it receives (--max-buffered trips);
  - FINs right behind short messages, urgent data, and a connection starved
    by --max-buffered-total that must read again once the budget frees up
    (the proxy takes a short read for an empty socket; these are the cases
    where it must not, or where reading resumes without a new event).

The engine path (`--example noop`, an inspection callout that sees every
byte) and the splice path (no callouts: flows are offloaded) are both run
where the two differ. After every case: connections_open == 0,
buffered_bytes == 0, the proxy's descriptors back at their baseline (spare
pipes aside: each worker keeps up to 64 empty pipes for the next offloaded
flow), and SIGTERM ends it with status 0.

Memory bounds asserted (doubled under AddressSanitizer, OWFP_SANITIZE=address):
peak RSS growth < 64 MiB for the 512 MiB download nobody reads (measured
well under 1 MiB), < --max-buffered + 32 MiB for the flooding driver,
< 16 KiB RSS per idle connection (measured about 1.3 KB).

usage: proxy_faults.py OPENWFP FLOOD_DRIVER.so
OWFP_FAULTS_ONLY=WORD runs the cases whose function name contains WORD.
"""
import contextlib
import hashlib
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_lib as pl  # noqa: E402
from proxy_lib import Upstream, blob, check, linger_rst, stats, wait_for  # noqa: E402

OPENWFP = os.path.abspath(sys.argv[1])
FLOOD_DRIVER = os.path.abspath(sys.argv[2])
SANITIZED = "address" in os.environ.get("OWFP_SANITIZE", "")
# Memory bounds are doubled under ASan (shadow memory, redzones, quarantine).
SLACK = 2 if SANITIZED else 1
MIB = 1 << 20
# What one read of the relay can leave queued (worker.c READ_BUFFER).
READ_BUFFER = 256 * 1024
# Spare pipes a worker keeps (worker.h OWFP_SPARE_PIPES), two descriptors each.
SPARE_PIPE_FDS = 2 * 64

ENGINE = ("noop", ["--example", "noop"])   # every byte through the engine
SPLICE = ("splice", [])                    # no callout: offloaded to splice(2)

LO = "127.0.0.1"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def drain(s, timeout=15.0):
    """Reads until EOF, a reset or `timeout` without bytes: (data, outcome)."""
    s.settimeout(timeout)
    chunks = []
    try:
        while True:
            b = s.recv(MIB)
            if not b:
                return b"".join(chunks), "eof"
            chunks.append(b)
    except ConnectionResetError:
        return b"".join(chunks), "reset"
    except socket.timeout:
        return b"".join(chunks), "timeout"


def read_request(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = c.recv(65536)
        if not b:
            break
        buf += b
    return buf


# ---- the proxy under test ------------------------------------------------------

def fd_counts(p):
    """(descriptors that are not pipes, pipe descriptors) of the proxy."""
    kinds = p.fd_kinds()
    pipes = kinds.pop("pipe", 0)
    return sum(kinds.values()), pipes


@contextlib.contextmanager
def proxy(name, args, workers=1, **kw):
    """The proxy for one case; at the end it must still run and SIGTERM must
    end it with status 0."""
    p = pl.Proxy(OPENWFP, ["--workers", str(workers), *args], **kw)
    try:
        yield p
    finally:
        pl.stop_checked(name, p)


@contextlib.contextmanager
def relay_to(name, handler, extra):
    """An Upstream running handler and, in front of it, the proxy (with the
    arguments `extra`) for one case: (upstream, proxy, the proxy's port)."""
    up = Upstream(handler)
    port = pl.free_port()
    try:
        with proxy(name, ["--listen", "%s:%d" % (LO, port), "--upstream", up.addr, *extra]) as p:
            yield up, p, port
    finally:
        up.close()


def baseline(p):
    """The descriptors (pipes aside) of the proxy with no connection open."""
    wait_for(lambda: stats(p).get("connections_open") == 0, 10, 0.05)
    return fd_counts(p)[0]


def settle(name, p, base, timeout=30.0):
    """Waits until every connection is gone; checks counters and descriptors."""
    st = {}
    other = pipes = -1

    def done():
        nonlocal st, other, pipes
        st = stats(p)
        other, pipes = fd_counts(p)
        return st.get("connections_open") == 0 and st.get("buffered_bytes") == 0 and other == base

    wait_for(done, timeout, 0.05)
    check(name + ": connections_open == 0", st.get("connections_open") == 0, st)
    check(name + ": buffered_bytes == 0", st.get("buffered_bytes") == 0, st)
    check(name + ": descriptors back at the baseline (%d)" % base, other == base,
          "now %d (and %d pipe descriptors)" % (other, pipes))
    check(name + ": pipe descriptors only the spare ones (%d <= %d)" % (pipes, SPARE_PIPE_FDS),
          0 <= pipes <= SPARE_PIPE_FDS)
    return st


def delta(a, b, key):
    return b.get(key, 0) - a.get(key, 0)


def http_get(port, path="/small", host=LO, timeout=10.0):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        data, outcome = drain(s, timeout)
    return data, outcome


def warm_up(name, p, port):
    """One plain request, so lazily made things (spare pipes, buffers) exist
    before the baseline is taken."""
    data, outcome = http_get(port, "/small")
    check(name + ": warm-up request answered", data.endswith(b"hello\n") and b" 200 " in data,
          (outcome, data[:200]))


# ---- the cases -------------------------------------------------------------------

def case_reset_by_upstream(mode):
    """The upstream sends part of a response, then closes with SO_LINGER 0."""
    label, extra = mode
    name = "upstream resets mid-response (%s)" % label
    body = blob(MIB, "reset-response")
    claimed = 16 * MIB

    def handler(c, rec):
        read_request(c)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % claimed + body)
        linger_rst(c)
        c.close()

    with relay_to(name, handler, extra) as (up, p, port):
        s0 = stats(p)
        base = baseline(p)
        with socket.create_connection((LO, port), timeout=10) as c:
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data, outcome = drain(c)
        check(name + ": the client sees a reset (ECONNRESET)", outcome == "reset",
              "%s after %d bytes" % (outcome, len(data)))
        check(name + ": part of the response arrived first (%d of %d bytes)"
              % (len(data), claimed), 0 < len(data) < claimed, len(data))
        s1 = settle(name, p, base)
        check(name + ": peer_resets counted it (+1)", delta(s0, s1, "peer_resets") == 1,
              "peer_resets %d -> %d" % (s0.get("peer_resets", 0), s1.get("peer_resets", 0)))
        check(name + ": connections_closed +1", delta(s0, s1, "connections_closed") == 1, s1)


def case_reset_by_client(mode):
    """The client uploads part of a body, then resets; the upstream sees the reset."""
    label, extra = mode
    name = "client resets mid-upload (%s)" % label

    def handler(c, rec):
        rec["bytes"] = 0
        try:
            while True:
                b = c.recv(MIB)
                if not b:
                    rec["outcome"] = "eof"
                    return
                rec["bytes"] += len(b)
        except ConnectionResetError:
            rec["outcome"] = "reset"

    chunk = blob(MIB, "upload")
    with relay_to(name, handler, extra) as (up, p, port):
        s0 = stats(p)
        base = baseline(p)
        c = socket.create_connection((LO, port), timeout=10)
        c.sendall(b"PUT /upload/x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (1 << 30))
        sent = 0
        while sent < 8 * MIB:
            c.sendall(chunk)
            sent += len(chunk)
            if wait_for(lambda: up.records and up.records[0].get("bytes", 0) >= MIB, 0.5):
                break
        got = up.records[0].get("bytes", 0) if up.records else 0
        check(name + ": the upstream received part of the upload first (%d bytes)" % got,
              got >= MIB, got)
        linger_rst(c)
        c.close()
        rec = up.record(0)
        outcome = rec.get("outcome") if rec else None
        check(name + ": the upstream sees a reset (ECONNRESET)", outcome == "reset",
              "%s (%s)" % (outcome, rec))
        s1 = settle(name, p, base)
        check(name + ": peer_resets counted it (+1)", delta(s0, s1, "peer_resets") == 1,
              "peer_resets %d -> %d" % (s0.get("peer_resets", 0), s1.get("peer_resets", 0)))


def case_never_reads(mode):
    """A client asks for 512 MiB and never reads: the proxy stops reading the
    upstream (back-pressure), its memory and buffered_bytes stay bounded."""
    label, extra = mode
    name = "client never reads a 512 MiB download (%s)" % label
    total = 512 * MIB
    chunk = blob(MIB, "download")

    def handler(c, rec):
        read_request(c)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        rec["sent"] = 0
        for _ in range(total // MIB):
            c.sendall(chunk)
            rec["sent"] += MIB

    moved_key = "bytes_read_receive" if label == "noop" else "bytes_offloaded_receive"
    with relay_to(name, handler, extra) as (up, p, port):
        base = baseline(p)
        rss0 = p.rss_kib()
        p.reset_hwm()
        s0 = stats(p)
        c = socket.create_connection((LO, port), timeout=10)
        c.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        # Stalled: the relayed byte count stops growing for a second.
        history = []
        peak_buffered = 0
        deadline = time.time() + 60
        while time.time() < deadline:
            st = stats(p)
            peak_buffered = max(peak_buffered, st.get("buffered_bytes", 0))
            history.append(delta(s0, st, moved_key))
            if len(history) >= 6 and history[-1] == history[-6] and history[-1] > 0:
                break
            time.sleep(0.2)
        moved = history[-1] if history else 0
        rss1 = p.rss_kib()
        peak = p.hwm_kib()
        growth = peak - rss0
        print("     %s: relayed %.1f MiB then stalled; RSS %d KiB -> %d KiB, peak %d KiB "
              "(+%.1f MiB); buffered_bytes peak %d"
              % (label, moved / MIB, rss0, rss1, peak, growth / 1024, peak_buffered), flush=True)
        check(name + ": the proxy relayed something, then stopped reading (%.1f MiB < 64 MiB)"
              % (moved / MIB), 0 < moved < 64 * MIB and len(history) >= 6, history[-8:])
        check(name + ": buffered_bytes stayed within one read (%d <= %d)"
              % (peak_buffered, READ_BUFFER), peak_buffered <= READ_BUFFER, peak_buffered)
        bound = 64 * 1024 * SLACK
        check(name + ": peak RSS grew by less than %d MiB (+%.1f MiB)"
              % (bound // 1024, growth / 1024), growth < bound, (rss0, peak))
        c.close()  # unread bytes: the kernel resets the connection
        settle(name, p, base)
        rec = up.record(0)
        check(name + ": the upstream was cut off before sending it all",
              rec is not None and rec.get("sent", total) < total, rec)


def case_half_close_client_first(mode):
    """The client sends a request and shuts its write side; the server reads
    to EOF, then answers 4 MiB; all of it arrives."""
    label, extra = mode
    name = "client half-closes first (%s)" % label
    request = blob(64 * 1024, "half-request")
    answer = blob(4 * MIB, "half-answer")

    def handler(c, rec):
        rec["request"] = sha(pl.recv_all(c))
        c.sendall(answer)
        c.shutdown(socket.SHUT_WR)
        rec["sent"] = True

    with relay_to(name, handler, extra) as (up, p, port):
        base = baseline(p)
        with socket.create_connection((LO, port), timeout=10) as c:
            c.sendall(request)
            c.shutdown(socket.SHUT_WR)
            data, outcome = drain(c)
        rec = up.record(0)
        check(name + ": the server got the whole request, then EOF",
              rec is not None and rec.get("request") == sha(request), rec)
        check(name + ": the answer arrived in full, then EOF (%d bytes)" % len(data),
              outcome == "eof" and sha(data) == sha(answer), "%s, %d bytes" % (outcome, len(data)))
        settle(name, p, base)


def case_half_close_server_first(mode):
    """The server sends 1 MiB and shuts its write side; the client reads to
    EOF, then keeps sending 4 MiB; all of it arrives."""
    label, extra = mode
    name = "server half-closes first (%s)" % label
    greeting = blob(MIB, "greeting")
    upload = blob(4 * MIB, "after-fin")

    def handler(c, rec):
        c.sendall(greeting)
        c.shutdown(socket.SHUT_WR)
        got = pl.recv_all(c)
        rec["upload"] = sha(got)
        rec["upload_len"] = len(got)

    with relay_to(name, handler, extra) as (up, p, port):
        base = baseline(p)
        with socket.create_connection((LO, port), timeout=10) as c:
            data, outcome = drain(c)
            check(name + ": the greeting arrived in full, then EOF",
                  outcome == "eof" and sha(data) == sha(greeting),
                  "%s, %d bytes" % (outcome, len(data)))
            c.sendall(upload)
            c.shutdown(socket.SHUT_WR)
            rest, outcome = drain(c)
            check(name + ": the connection then ends cleanly", outcome == "eof" and not rest,
                  outcome)
        rec = up.record(0)
        check(name + ": the server got all %d bytes sent after its FIN" % len(upload),
              rec is not None and rec.get("upload") == sha(upload), rec)
        settle(name, p, base)


def case_fin_right_after_data(mode):
    """Short messages with the FIN right behind them, many times over: the
    server answers and closes at once, or the client sends and shuts its
    write side at once. The proxy takes a read that comes back short for an
    empty socket, except when epoll reported a hang-up: each end must still
    be seen and passed on, never left waiting for an event that does not
    come."""
    label, extra = mode
    name = "FIN right after the data (%s)" % label
    rounds = 150

    def handler(c, rec):
        kind = c.recv(1)
        if kind == b"S":  # one line, then the answer and our FIN
            line = kind
            while not line.endswith(b"\n"):
                b = c.recv(4096)
                if not b:
                    break
                line += b
            rec["request"] = line
            c.sendall(b"answer to " + line)
        else:  # the client's FIN ends its request
            rec["request"] = kind + pl.recv_all(c)
            c.sendall(b"answer to " + rec["request"])

    with relay_to(name, handler, extra) as (up, p, port):
        base = baseline(p)
        bad = None
        t0 = time.time()
        for i in range(rounds):
            client_fin = i % 2 == 1
            request = b"%s %d\n" % (b"C" if client_fin else b"S", i)
            with socket.create_connection((LO, port), timeout=10) as c:
                c.sendall(request)
                if client_fin:
                    c.shutdown(socket.SHUT_WR)
                data, outcome = drain(c, 5.0)
            if outcome != "eof" or data != b"answer to " + request:
                bad = (i, request, outcome, data)
                break
        print("     %s: %d connections in %.1f s" % (label, rounds, time.time() - t0), flush=True)
        check(name + ": %d answers, each complete and then EOF" % rounds, bad is None, bad)
        settle(name, p, base)


def case_urgent_data(mode):
    """TCP urgent data (MSG_OOB) stays in the stream (SO_OOBINLINE): a read
    stops short at the urgent mark with bytes still queued behind it, so
    that short read must not be taken for an empty socket (EPOLLPRI); and
    splice(2) never reads past the mark, so an offloaded direction that
    meets one is copied from there on."""
    label, extra = mode
    name = "urgent data in the stream (%s)" % label
    rounds = 20

    def handler(c, rec):
        got = b""
        c.settimeout(5)
        with contextlib.suppress(socket.timeout):
            while len(got) < 7:
                b = c.recv(64)
                if not b:
                    break
                got += b
        rec["got"] = got
        c.sendall(b"ok")

    with relay_to(name, handler, extra) as (up, p, port):
        base = baseline(p)
        seen = []
        for i in range(rounds):
            with socket.create_connection((LO, port), timeout=10) as c:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                c.send(b"abc")
                c.send(b"X", socket.MSG_OOB)
                c.send(b"def")
                drain(c, 10)
            rec = up.record(i)
            seen.append(rec.get("got") if rec else None)
        check(name + ": the upstream got every byte, the urgent one in place, %d times" % rounds,
              all(g == b"abcXdef" for g in seen), seen)
        settle(name, p, base)


def case_budget_release(mode):
    """--max-buffered-total spent by one connection whose client does not
    read: a second connection is not read at all (starved) until the first
    client drains; then it reads again without a new epoll event for bytes
    that had arrived long before, and completes."""
    label, extra = mode
    name = "buffer budget spent, then released (%s)" % label
    big = blob(32 * MIB, "budget")  # more than the socket buffers on the way hold

    def handler(c, rec):
        line = c.recv(64)
        rec["request"] = line
        c.sendall(big if line.startswith(b"big") else b"small answer")

    with relay_to(name, handler, [*extra, "--max-buffered-total", "1"]) as (up, p, port):
        base = baseline(p)
        s0 = stats(p)
        hog = socket.create_connection((LO, port), timeout=10)
        hog.sendall(b"big\n")
        spent = wait_for(lambda: stats(p).get("buffered_bytes", 0) > 0, 20, 0.05)
        check(name + ": the first connection holds bytes in the proxy (budget spent)", spent,
              stats(p))
        with socket.create_connection((LO, port), timeout=10) as c:
            c.sendall(b"small\n")
            time.sleep(1.0)
            c.setblocking(False)
            try:
                early = c.recv(64)
            except BlockingIOError:
                early = b""
            check(name + ": the second connection waits while the budget is spent",
                  early == b"" and delta(s0, stats(p), "buffer_limit_hits") > 0,
                  (early, stats(p)))
            c.setblocking(True)
            hog.settimeout(30)
            got, outcome = drain(hog, 30)
            hog.close()
            check(name + ": the first client then gets all %d bytes" % len(big),
                  outcome == "eof" and sha(got) == sha(big), "%s, %d bytes" % (outcome, len(got)))
            data, outcome = drain(c, 15)
            check(name + ": the second connection completes once the budget frees up",
                  outcome == "eof" and data == b"small answer", (outcome, data))
        settle(name, p, base)


def case_upstream_refuses():
    name = "upstream refuses"
    port, closed = pl.free_port(), pl.free_port()
    with proxy(name, ["--listen", "%s:%d" % (LO, port), "--upstream", "%s:%d" % (LO, closed)]) as p:
        base = baseline(p)
        s0 = stats(p)
        t0 = time.time()
        c = socket.socket()
        c.settimeout(10)
        try:
            # The reset may come before connect() returns: the proxy accepts,
            # is refused and resets in the time the handshake takes.
            c.connect((LO, port))
            data, outcome = drain(c, 10)
        except ConnectionResetError:
            outcome = "reset"
        finally:
            c.close()
        dt = time.time() - t0
        check(name + ": the client gets a reset", outcome == "reset", outcome)
        check(name + ": quickly (%.3f s < 1 s)" % dt, dt < 1.0, dt)
        s1 = settle(name, p, base)
        check(name + ": upstream_failures +1", delta(s0, s1, "upstream_failures") == 1, s1)


def case_upstream_times_out():
    """SYNs to the upstream are dropped (nftables in a namespace of its own):
    --connect-timeout 1 resets the client after about a second."""
    name = "upstream times out"
    tag = "owfp-f%d" % os.getpid()
    made = []
    try:
        pns = pl.NetNs(tag + "-p")
        made.append(pns)
        dns = pl.NetNs(tag + "-d")
        made.append(dns)
        pns.ip("link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", dns.name)
        pns.ip("addr", "add", "10.251.0.1/30", "dev", "v0")
        pns.ip("link", "set", "v0", "up")
        dns.ip("addr", "add", "10.251.0.2/30", "dev", "v1")
        dns.ip("link", "set", "v1", "up")
        dns.run("nft", "-f", "-", input="""
table inet owfp_drop {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 80 counter drop
    }
}
""")
        with proxy(name, ["--listen", "127.0.0.1:8080", "--upstream", "10.251.0.2:80",
                          "--connect-timeout", "1"], preexec_fn=pns.preexec) as p:
            base = baseline(p)
            s0 = stats(p)
            with pns.entered():
                c = socket.socket()
            with c:
                c.settimeout(10)
                c.connect(("127.0.0.1", 8080))
                t0 = time.time()
                data, outcome = drain(c, 10)
                dt = time.time() - t0
            check(name + ": the client gets a reset", outcome == "reset", outcome)
            check(name + ": after about 1 s (%.2f s)" % dt, 0.9 <= dt <= 2.5, dt)
            s1 = settle(name, p, base)
            check(name + ": upstream_failures +1", delta(s0, s1, "upstream_failures") == 1, s1)
            dropped = dns.run("nft", "list", "chain", "inet", "owfp_drop", "input")
            m = re.search(r"counter packets (\d+)", dropped)
            n = int(m.group(1)) if m else 0
            check(name + ": the SYNs did go out, and were dropped (%d)" % n, n >= 1, dropped)
    finally:
        if len(made) == 2:
            made[1].run("nft", "delete", "table", "inet", "owfp_drop", check=False)
        for ns in reversed(made):
            ns.delete()


def case_fd_exhaustion(nginx_port):
    """RLIMIT_NOFILE 64 (soft and hard, so the proxy cannot raise it): more
    connections than fit; accept pauses without a crash and works again once
    they are closed."""
    name = "RLIMIT_NOFILE 64"
    port = pl.free_port()

    def small_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    with proxy(name, ["--listen", "%s:%d" % (LO, port), "--upstream", "%s:%d" % (LO, nginx_port)],
               preexec_fn=small_limit) as p:
        warm_up(name, p, port)
        base = baseline(p)
        s0 = stats(p)
        clients = []
        resets = 0
        try:
            for _ in range(100):
                c = socket.socket()
                c.settimeout(10)
                clients.append(c)
                try:
                    c.connect((LO, port))  # the kernel completes it; the backlog holds it
                except ConnectionResetError:
                    resets += 1
            wait_for(lambda: delta(s0, stats(p), "accept_errors") > 0, 10, 0.1)
            for c in clients:
                try:
                    c.setblocking(False)
                    if c.recv(1) == b"":
                        resets += 1
                except BlockingIOError:
                    pass
                except OSError:
                    resets += 1
            st = stats(p)  # after the probe: every reset seen is counted by now
            other, pipes = fd_counts(p)
            print("     with 100 clients: %d descriptors (%d pipes), accepted %d, accept_errors %d, "
                  "upstream_failures %d" % (other + pipes, pipes, delta(s0, st, "connections_accepted"),
                                            delta(s0, st, "accept_errors"),
                                            delta(s0, st, "upstream_failures")), flush=True)
            check(name + ": accept failed and was counted (accept_errors %d > 0)"
                  % delta(s0, st, "accept_errors"), delta(s0, st, "accept_errors") > 0, st)
            check(name + ": not as upstream failures (the upstream is fine)",
                  delta(s0, st, "upstream_failures") == 0, st)
            # Clients wait in the listen queue; at most one per pause (100 ms)
            # is accepted and reset for want of an upstream socket.
            held = delta(s0, st, "connections_accepted") - delta(s0, st, "connections_closed")
            check(name + ": the connections that fit stay open (%d)" % held, held >= 20, st)
            check(name + ": the others wait in the listen queue: at most one reset per pause "
                  "(%d resets, %d accept errors)" % (resets, delta(s0, st, "accept_errors")),
                  resets <= delta(s0, st, "accept_errors"), st)
            check(name + ": the proxy holds no more than 64 descriptors", other + pipes <= 64,
                  other + pipes)
            check(name + ": the proxy still runs", p.proc.poll() is None, p.text()[-2000:])
            check(name + ": it logged the pause", "event=accept_paused" in p.text(), p.text()[-2000:])
        finally:
            for c in clients:
                c.close()
        # Accepting resumes after the pause: the clients still queued are
        # accepted now (and end at once: they are closed).
        wait_for(lambda: delta(s0, stats(p), "connections_accepted") >= 100, 20, 0.05)
        s1 = settle(name, p, base)
        check(name + ": every queued client was accepted in the end (%d)"
              % delta(s0, s1, "connections_accepted"), delta(s0, s1, "connections_accepted") == 100,
              s1)
        data, outcome = http_get(port, "/small")
        check(name + ": a new connection is served again", data.endswith(b"hello\n") and b" 200 " in data,
              (outcome, data[:200]))
        settle(name + " (after)", p, base)


def case_idle_10k(nginx_port, mode, results):
    """10,000 idle connections (fewer only if the descriptor limit cannot be
    raised far enough): all established, RSS per connection measured, each
    answers one request at the end, every descriptor released."""
    label, extra = mode
    want = 10000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # The proxy needs two descriptors per connection and a few of its own.
    n = min(want, (hard - 64) // 2)
    name = "%d idle connections (%s)" % (n, label)
    if n < want:
        print("     note: RLIMIT_NOFILE hard limit %d (raising it needs CAP_SYS_RESOURCE): "
              "%d connections instead of %d" % (hard, n, want), flush=True)
    port = pl.free_port()

    def big_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with proxy(name, ["--listen", "%s:%d" % (LO, port), "--upstream", "%s:%d" % (LO, nginx_port),
                      *extra], preexec_fn=big_limit) as p:
        warm_up(name, p, port)
        base = baseline(p)
        s0 = stats(p)
        rss0 = p.rss_kib()
        socks = []
        t0 = time.time()
        try:
            for _ in range(n):
                c = socket.socket()
                c.settimeout(30)
                c.connect((LO, port))
                socks.append(c)
            established = wait_for(
                lambda: delta(s0, stats(p), "connections_accepted") >= n, 60, 0.1)
            st = stats(p)
            t_conn = time.time() - t0
            check(name + ": all accepted (%d)" % delta(s0, st, "connections_accepted"), established, st)
            check(name + ": no upstream failures", delta(s0, st, "upstream_failures") == 0, st)
            check(name + ": connections_open == %d" % n, st.get("connections_open") == n, st)
            # RSS settles once every upstream leg is connected and its flow open.
            last = [0]

            def steady():
                r = p.rss_kib()
                same = r == last[0]
                last[0] = r
                return same
            wait_for(steady, 10, 0.5)
            rss1 = p.rss_kib()
            other, pipes = fd_counts(p)
            per_conn = (rss1 - rss0) * 1024 / n
            results.append((label, n, per_conn))
            print("     %s: %d connections in %.1f s; RSS %d KiB -> %d KiB: %.0f bytes per "
                  "connection; descriptors %d (+%d pipes)"
                  % (label, n, t_conn, rss0, rss1, per_conn, other, pipes), flush=True)
            check(name + ": idle connections hold their two sockets and no pipes (%d, %d)"
                  % (other - base, pipes), other - base == 2 * n and pipes <= SPARE_PIPE_FDS,
                  (other, base, pipes))
            bound = 16 * 1024 * SLACK
            check(name + ": RSS per connection below %d KiB (%.0f bytes)" % (bound // 1024, per_conn),
                  per_conn < bound, per_conn)
            # Every connection answers one request: pipelined, then read.
            req = b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n"
            sel = selectors.DefaultSelector()
            bufs = {}
            pending = set()
            for c in socks:
                try:
                    c.sendall(req)
                except OSError:
                    continue  # counted as unanswered
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
                bufs[c] = b""
                pending.add(c)
            answered = 0
            deadline = time.time() + 120
            while pending and time.time() < deadline:
                for key, _ in sel.select(1.0):
                    c = key.fileobj
                    try:
                        b = c.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        b = b""
                    bufs[c] += b
                    if bufs[c].endswith(b"hello\n") or not b:
                        sel.unregister(c)
                        pending.discard(c)
                        if b" 200 " in bufs[c] and bufs[c].endswith(b"hello\n"):
                            answered += 1
            sel.close()
            check(name + ": every connection answered its request (%d of %d)" % (answered, n),
                  answered == n, "%d unanswered" % (n - answered))
            st = stats(p)
            print("     %s: after the requests: offloaded_splice %d, offloaded_copy %d"
                  % (label, delta(s0, st, "offloaded_splice"), delta(s0, st, "offloaded_copy")),
                  flush=True)
        finally:
            for c in socks:
                c.close()
        s1 = settle(name, p, base, timeout=60)
        check(name + ": all closed (%d)" % delta(s0, s1, "connections_closed"),
              delta(s0, s1, "connections_closed") == n, s1)


def case_flood(nginx_port, flood_mode):
    """A driver injects far more than the stream carries: --max-buffered
    (1 MiB here) resets the flow before the proxy's memory follows, and the
    next connection is served."""
    name = "driver floods (%s)" % flood_mode
    port = pl.free_port()
    limit = MIB
    params = ["--driver-param", "Mode=" + flood_mode, "--driver-param", "Trigger=FLOOD-ME"]
    if flood_mode == "inline":
        params += ["--driver-param", "FloodMiB=256"]
    with proxy(name, ["--listen", "%s:%d" % (LO, port), "--upstream", "%s:%d" % (LO, nginx_port),
                      "--driver", FLOOD_DRIVER, *params, "--max-buffered", str(limit)]) as p:
        warm_up(name, p, port)
        base = baseline(p)
        s0 = stats(p)
        rss0 = p.rss_kib()
        p.reset_hwm()
        with socket.create_connection((LO, port), timeout=10) as c:
            c.sendall(b"GET /small?FLOOD-ME HTTP/1.1\r\nHost: x\r\n\r\n")
            # The client does not read: only the proxy's limit can stop it.
            tripped = wait_for(lambda: delta(s0, stats(p), "buffer_limit_hits") > 0, 20, 0.05)
            data, outcome = drain(c, 10)
        peak = p.hwm_kib()
        growth = peak - rss0
        print("     %s: %d bytes reached the client before the reset; peak RSS +%.1f MiB"
              % (flood_mode, len(data), growth / 1024), flush=True)
        check(name + ": buffer_limit_hits counted it", tripped, stats(p))
        check(name + ": the flow was reset", outcome == "reset", outcome)
        check(name + ": buffer_limit_hits +1, once",
              delta(s0, stats(p), "buffer_limit_hits") == 1, stats(p))
        bound = limit // 1024 + 32 * 1024 * SLACK
        check(name + ": peak RSS grew by less than %d MiB (+%.1f MiB)" % (bound // 1024, growth / 1024),
              growth < bound, (rss0, peak))
        settle(name, p, base)
        data, outcome = http_get(port, "/small")
        check(name + ": the next connection is served", data.endswith(b"hello\n") and b" 200 " in data,
              (outcome, data[:200]))
        settle(name + " (after)", p, base)
    check(name + ": the driver injected more than the limit",
          "FloodDriver: unloaded after injecting" in p.text(), p.text()[-2000:])


def main():
    # Room for the 10,000 connections in this process and in nginx.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    root = tempfile.mkdtemp(prefix="owfp-faults-")
    with open(os.path.join(root, "small"), "w") as f:
        f.write("hello\n")
    nginx = pl.Nginx(root)
    t_all = time.time()
    results = []
    cases = []
    for mode in (ENGINE, SPLICE):
        cases += [(case_reset_by_upstream, (mode,)),
                  (case_reset_by_client, (mode,)),
                  (case_half_close_client_first, (mode,)),
                  (case_half_close_server_first, (mode,)),
                  (case_never_reads, (mode,)),
                  (case_fin_right_after_data, (mode,))]
    cases += [(case_urgent_data, (ENGINE,)),
              (case_urgent_data, (SPLICE,)),
              (case_budget_release, (ENGINE,))]
    cases += [(case_upstream_refuses, ()),
              (case_upstream_times_out, ()),
              (case_fd_exhaustion, (nginx.port,)),
              (case_flood, (nginx.port, "inline")),
              (case_flood, (nginx.port, "oob")),
              (case_idle_10k, (nginx.port, ENGINE, results)),
              (case_idle_10k, (nginx.port, SPLICE, results))]
    only = os.environ.get("OWFP_FAULTS_ONLY")
    try:
        for fn, args in cases:
            if only and only not in fn.__name__:
                continue
            t0 = time.time()
            modes = [a[0] if isinstance(a, tuple) else a for a in args if isinstance(a, (tuple, str))]
            print("-- %s %s" % (fn.__name__, " ".join(modes)), flush=True)
            try:
                fn(*args)
            except Exception:
                check(fn.__name__ + ": ran to the end", False, traceback.format_exc())
            print("   %.1f s" % (time.time() - t0), flush=True)
    finally:
        nginx.stop()
        shutil.rmtree(root, ignore_errors=True)
    for label, n, per_conn in results:
        print("RSS per idle connection (%s, %d connections): %.0f bytes" % (label, n, per_conn))
    print("total %.1f s" % (time.time() - t_all))
    return pl.finish()


if __name__ == "__main__":
    # A timeout (SIGTERM from meson) still runs the clean-up in the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
