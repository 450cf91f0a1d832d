#!/usr/bin/env python3
"""Operating `openwfp proxy`: the statistics line on SIGUSR1 (text and
JSON logs, every line parsing back), the Prometheus endpoint (--metrics),
the orderly stop (SIGTERM within and past --grace, drivers unloaded),
--max-connections, --idle-timeout, --connect-timeout, refused upstreams,
bad command lines (exit 2 with a message) and --help against the option
tables of the source.

usage: proxy_ops.py OPENWFP FLOW_MONITOR.so SOURCE_ROOT
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_lib as L  # noqa: E402

OPENWFP, FLOW_MONITOR, SOURCE_ROOT = sys.argv[1:4]
SLOW = 12 << 20  # the file slow downloads fetch (curl 7.88 limits its rate only past the
                 # first few MiB, and the socket buffers hold several MiB more)

# key=value; values with blanks, quotes, '=' or '\' quoted (src/proxy/log.c).
TEXT_LINE = re.compile(r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(error|warn|info|debug) '
                       r'event=[a-z_]+( [a-z_]+=("([^"\\]|\\.)*"|[^ "=\\]+))*$')


def counters():
    """The counters of src/proxy/stats.h in order, then the two gauges the
    stats line adds."""
    text = open(os.path.join(SOURCE_ROOT, "src", "proxy", "stats.h")).read()
    names = re.findall(r"^\s*X\((\w+),", text, re.M)
    return names, ["connections_open", "buffered_bytes"]


def start(nginx, extra, upstream_port=None, ready="event=listening"):
    return L.start(OPENWFP, upstream_port or nginx.port, *extra, ready=ready)


def stop(proxy, name, sig=signal.SIGTERM):
    rc = proxy.stop(sig)
    L.check("%s: exit 0" % name, rc == 0, "exit %s\n%s" % (rc, proxy.text()[-3000:]))
    return rc


def read_reset(sock, timeout=30):
    """Reads until the connection ends: 'reset', 'eof' or 'timeout'."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return "eof"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"


def connect_read(port, timeout=30):
    """Connects and reads until the end: 'reset', 'eof' or 'timeout'. A
    reset may come before Python has seen its connect complete."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            return read_reset(s, timeout)
    except ConnectionResetError:
        return "reset"


# ---- SIGUSR1 and the log formats -----------------------------------------------------

def test_stats_text(nginx):
    name = "SIGUSR1 text"
    names, gauges = counters()
    closed = L.free_port()
    port2 = L.free_port()
    proxy, port = start(nginx, ["--log-level", "debug", "--listen", "127.0.0.1:%d" % port2,
                                "--upstream", "127.0.0.1:%d" % closed])
    try:
        rc, body, err = L.curl("http://127.0.0.1:%d/1k.bin" % port)
        L.check("%s: a download through the proxy" % name, rc == 0 and len(body) == 1024, err)
        L.check("%s: a refused upstream resets the client" % name,
                connect_read(port2) == "reset")
        n = len(proxy.stats_lines())
        s = proxy.wait_closed()
        lines = proxy.stats_lines()
        L.check("%s: one stats line per SIGUSR1" % name, len(lines) > n, len(lines))
        proxy.stats()
        proxy.stats()
        L.check("%s: two more signals, two more lines" % name,
                len(proxy.stats_lines()) == len(lines) + 2, len(proxy.stats_lines()))
        line = proxy.stats_lines()[-1]
        keys = re.findall(r" (\w+)=", line)
        L.check("%s: the line names every counter of stats.h and the gauges, in order (%d)"
                % (name, len(names) + 2), keys[:2] == ["level", "event"] and
                keys[2:] == names + gauges, line)
        L.check("%s: the counters say what happened (2 accepted, 1 upstream failure, "
                "1 offloaded, 1 KiB and headers relayed)" % name,
                s.get("connections_accepted") == 2 and s.get("connections_closed") == 2 and
                s.get("upstream_failures") == 1 and s.get("offloaded_splice") == 1 and
                s.get("bytes_offloaded_receive", 0) > 1024 and s.get("connections_open") == 0, s)
    finally:
        stop(proxy, name)
    bad = [l for l in proxy.text().splitlines() if not TEXT_LINE.match(l)]
    L.check("%s: every log line is key=value (quoted where needed)" % name, not bad,
            "\n".join(bad[:5]))
    L.check("%s: the debug lines name the refusal (reason=\"Connection refused\")" % name,
            'reason="Connection refused"' in proxy.text(), proxy.text()[-2000:])


def test_stats_json(nginx):
    name = "SIGUSR1 --log-format json"
    names, gauges = counters()
    closed = L.free_port()
    port2 = L.free_port()
    proxy, port = start(nginx, ["--log-format", "json", "--log-level", "debug",
                                "--listen", "127.0.0.1:%d" % port2,
                                "--upstream", "127.0.0.1:%d" % closed],
                        ready='"event":"listening"')
    try:
        rc, body, err = L.curl("http://127.0.0.1:%d/1k.bin" % port)
        L.check("%s: a download through the proxy" % name, rc == 0 and len(body) == 1024, err)
        connect_read(port2)
        s = proxy.wait_closed()
        L.check("%s: the stats line read as JSON (2 accepted, 1 upstream failure)" % name,
                s.get("connections_accepted") == 2 and s.get("upstream_failures") == 1, s)
    finally:
        stop(proxy, name)
    parsed, bad = [], []
    for l in proxy.text().splitlines():
        try:
            parsed.append(json.loads(l))
        except ValueError:
            bad.append(l)
    L.check("%s: every log line parses as JSON (%d lines)" % (name, len(parsed)),
            not bad and len(parsed) >= 6, "\n".join(bad[:5]))
    L.check("%s: each has ts, level and event" % name,
            all(isinstance(o, dict) and {"ts", "level", "event"} <= set(o) for o in parsed))
    stats = [o for o in parsed if o.get("event") == "stats"]
    L.check("%s: stats lines carry every counter as a number" % name,
            stats and all(list(o)[3:] == names + gauges and
                          all(isinstance(o[k], int) for k in names + gauges) for o in stats),
            stats[-1] if stats else None)
    events = {o.get("event") for o in parsed}
    L.check("%s: listening, open, close, reset, stopping and stats lines all there" % name,
            {"listening", "open", "close", "reset", "stopping", "stats"} <= events, events)
    reasons = [o.get("reason") for o in parsed if o.get("event") == "reset"]
    L.check("%s: strings come back as written (reason 'Connection refused')" % name,
            "Connection refused" in reasons, reasons)


def test_json_with_driver(nginx):
    """docs/proxy.md: "one JSON object per line with --log-format json".
    A driver's DbgPrint lines share the proxy's stderr."""
    name = "--log-format json with --driver flow_monitor"
    proxy, port = start(nginx, ["--log-format", "json", "--strict", "--driver", FLOW_MONITOR],
                        ready='"event":"listening"')
    try:
        rc, body, err = L.curl("http://127.0.0.1:%d/1k.bin" % port)
        L.check("%s: a download through the proxy" % name, rc == 0 and len(body) == 1024, err)
    finally:
        stop(proxy, name)
    bad = []
    for l in proxy.text().splitlines():
        try:
            json.loads(l)
        except ValueError:
            bad.append(l)
    L.check("%s: every line on stderr is a JSON object (the driver's too)" % name, not bad,
            "not JSON:\n" + "\n".join(bad[:5]))


# ---- --metrics ----------------------------------------------------------------------

def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        c.close()


def parse_prometheus(text):
    """{name: (type, help, value)}; raises ValueError on a malformed line."""
    helps, types, values = {}, {}, {}
    for line in text.splitlines():
        if not line:
            continue
        m = re.match(r"^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$", line)
        if m:
            helps[m.group(1)] = m.group(2)
            continue
        m = re.match(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$",
                     line)
        if m:
            types[m.group(1)] = m.group(2)
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*) (\d+)$", line)
        if not m:
            raise ValueError("bad line: %r" % line)
        if m.group(1) not in types or m.group(1) not in helps:
            raise ValueError("sample before its HELP and TYPE: %r" % line)
        values[m.group(1)] = int(m.group(2))
    return {k: (types.get(k), helps.get(k), v) for k, v in values.items()}


def test_metrics(nginx):
    name = "--metrics"
    names, gauges = counters()
    mport = L.free_port()
    proxy, port = start(nginx, ["--metrics", "127.0.0.1:%d" % mport])
    try:
        for _ in range(3):
            rc, body, err = L.curl("http://127.0.0.1:%d/1k.bin" % port)
        L.check("%s: downloads through the proxy" % name, rc == 0 and len(body) == 1024, err)
        s = proxy.wait_closed()
        status, ctype, text = get(mport, "/metrics")
        L.check("%s: GET /metrics: 200, text/plain; version=0.0.4" % name,
                status == 200 and ctype == "text/plain; version=0.0.4", (status, ctype))
        try:
            m = parse_prometheus(text)
            error = None
        except ValueError as e:
            m, error = {}, e
        L.check("%s: the body is Prometheus text format (HELP, TYPE, sample)" % name,
                error is None and m, "%s\n%s" % (error, text[:2000]))
        want = {"openwfp_proxy_%s_total" % n: ("counter", n) for n in names}
        want.update({"openwfp_proxy_%s" % n: ("gauge", n) for n in gauges})
        L.check("%s: exactly the stats line's counters (%d) and gauges" % (name, len(names)),
                set(m) == set(want), sorted(set(m) ^ set(want)))
        L.check("%s: types: _total counters, the two gauges" % name,
                all(m[k][0] == want[k][0] for k in m if k in want))
        diff = {k: (m[k][2], s.get(want[k][1])) for k in m if k in want and
                m[k][2] != s.get(want[k][1])}
        L.check("%s: the same values as the stats line (3 connections)" % name,
                not diff and m.get("openwfp_proxy_connections_accepted_total", (0, 0, 0))[2] == 3,
                diff)
        status, ctype, text = get(mport, "/other")
        L.check("%s: GET /other: 404" % name, status == 404, (status, text))
        status, ctype, text = get(mport, "/metrics")
        L.check("%s: still served after the 404" % name, status == 200, status)
    finally:
        stop(proxy, name)


# ---- the orderly stop ----------------------------------------------------------------

def slow_download(port, rate):
    out = tempfile.NamedTemporaryFile(prefix="owfp-slow-", delete=False)
    out.close()
    p = subprocess.Popen(["curl", "-s", "-S", "--limit-rate", rate, "-o", out.name,
                          "http://127.0.0.1:%d/slow.bin" % port],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return p, out.name


def under_way(proxy):
    """The download has started: one connection and response bytes moved."""
    return proxy.wait_stats(lambda s: s.get("connections_open") == 1 and
                            s.get("bytes_offloaded_receive", 0) + s.get("bytes_read_receive", 0)
                            > 65536, timeout=20)


def refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def test_graceful(nginx, slow_sha):
    name = "SIGTERM within --grace"
    proxy, port = start(nginx, ["--grace", "60"])
    p, out = slow_download(port, "2M")
    try:
        s = under_way(proxy)
        L.check("%s: the slow download is under way" % name, s.get("connections_open") == 1, s)
        t0 = time.time()
        proxy.proc.send_signal(signal.SIGTERM)
        L.check("%s: no new connection is accepted after SIGTERM" % name,
                L.wait_for(lambda: refused(port), 10), port)
        L.check("%s: the proxy waits for the open connection" % name,
                proxy.proc.poll() is None and "event=stopping" in proxy.text())
        rc = p.wait(120)
        t1 = time.time()
        err = p.stderr.read().decode(errors="replace")
        L.check("%s: the download finishes intact (curl exit 0, sha256)" % name,
                rc == 0 and L.sha256_file(out) == slow_sha, "curl %d %s" % (rc, err))
        try:
            proxy.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        t2 = time.time()
        L.check("%s: the proxy exits once it is done (%.1f s after SIGTERM, %.1f s after the "
                "download)" % (name, t2 - t0, t2 - t1), proxy.proc.poll() == 0 and t2 - t1 < 10,
                proxy.proc.poll())
        L.check("%s: no connection was reset for the grace" % name,
                "grace_over" not in proxy.text(), proxy.text()[-2000:])
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
        os.unlink(out)
        stop(proxy, name)


def test_short_grace(nginx):
    name = "SIGTERM past a short --grace"
    grace = 1
    proxy, port = start(nginx, ["--grace", str(grace), "--strict", "--driver", FLOW_MONITOR])
    # A client that reads the first 64 KiB and then nothing: the 12 MiB do
    # not fit in the socket buffers, the connection stays open.
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        client.sendall(b"GET /slow.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        got = 0
        while got < 65536:
            b = client.recv(65536)
            if not b:
                break
            got += len(b)
        s = under_way(proxy)
        L.check("%s: the download is under way" % name, s.get("connections_open") == 1, s)
        t0 = time.time()
        proxy.proc.send_signal(signal.SIGTERM)
        try:
            rc = proxy.proc.wait(grace + 30)
        except subprocess.TimeoutExpired:
            rc = None
        t1 = time.time()
        L.check("%s: the proxy exits 0 after the grace (%.1f s)" % (name, t1 - t0),
                rc == 0 and t1 - t0 >= grace, "exit %s\n%s" % (rc, proxy.text()[-3000:]))
        how = read_reset(client, 10)
        L.check("%s: the client's connection was reset" % name, how == "reset", how)
        text = proxy.text()
        L.check("%s: 'grace_over' logged" % name, "event=grace_over" in text, text[-2000:])
        L.check("%s: flowDeleteFn ran for the reset flow (flow_monitor's line)" % name,
                re.search(r"FlowMonitor: flow ipv4 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:%d sent=\d+ "
                          r"received=\d+" % nginx.port, text) is not None, text[-2000:])
        L.check("%s: the driver unloaded (its unload line), --strict exit 0" % name,
                rc == 0 and re.search(r"FlowMonitor: unloaded: 1 flows,", text) is not None,
                text[-2000:])
    finally:
        client.close()
        proxy.stop()


# ---- limits and timeouts ----------------------------------------------------------------

def test_max_connections(nginx):
    name = "--max-connections 2"
    proxy, port = start(nginx, ["--max-connections", "2"])
    held = []
    try:
        for _ in range(2):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        s = proxy.wait_stats(lambda s: s.get("connections_open") == 2)
        L.check("%s: two connections open" % name, s.get("connections_open") == 2, s)
        t0 = time.time()
        how = connect_read(port, 10)
        L.check("%s: the third is reset at once (%.2f s)" % (name, time.time() - t0),
                how == "reset" and time.time() - t0 < 5, how)
        s = proxy.stats()
        L.check("%s: connections_rejected == 1, not counted as accepted" % name,
                s.get("connections_rejected") == 1 and s.get("connections_accepted") == 2, s)
        held.pop().close()
        s = proxy.wait_stats(lambda s: s.get("connections_open") == 1)
        rc, body, err = L.curl("http://127.0.0.1:%d/1k.bin" % port)
        L.check("%s: with one closed, a new connection is served" % name,
                rc == 0 and len(body) == 1024, "curl %d %s" % (rc, err))
        s = proxy.stats()
        L.check("%s: still 1 rejected, 3 accepted" % name,
                s.get("connections_rejected") == 1 and s.get("connections_accepted") == 3, s)
    finally:
        for h in held:
            h.close()
        stop(proxy, name)


def test_idle_timeout(nginx):
    name = "--idle-timeout 1"
    proxy, port = start(nginx, ["--idle-timeout", "1"])
    try:
        t0 = time.time()
        how = connect_read(port)
        t = time.time() - t0
        L.check("%s: an idle connection is reset after about 1 s (%.2f s)" % (name, t),
                how == "reset" and 0.95 <= t < 6, how)
        s = proxy.stats()
        L.check("%s: idle_timeouts == 1" % name, s.get("idle_timeouts") == 1, s)
        # A client that sends its request one byte every 0.2 s for 2.5 s:
        # never idle for a second, it is not reset and gets its answer.
        request = b"GET /1k.bin HTTP/1.0\r\nX-Slow: " + b"a" * 12 + b"\r\n\r\n"
        data, error = bytearray(), None
        t0 = time.time()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                for i, b in enumerate(request):
                    c.sendall(bytes([b]))
                    if i < 13:
                        time.sleep(0.2)
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    data += b
        except OSError as e:
            error = e
        L.check("%s: a connection never idle for 1 s lives on (%.1f s) and is answered"
                % (name, time.time() - t0), error is None and data.startswith(b"HTTP/1.1 200")
                and len(data.partition(b"\r\n\r\n")[2]) == 1024, "%s %r" % (error, bytes(data[:60])))
        s = proxy.wait_closed()
        L.check("%s: still 1 idle timeout" % name, s.get("idle_timeouts") == 1 and
                s.get("connections_open") == 0, s)
    finally:
        stop(proxy, name)


def test_connect_timeout(nginx):
    name = "--connect-timeout 1"
    # An upstream whose accept queue is full: its SYNs go unanswered.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    filler = socket.create_connection(lsock.getsockname())
    closed = L.free_port()
    port2 = L.free_port()
    proxy, port = start(nginx, ["--connect-timeout", "1", "--log-level", "debug",
                                "--listen", "127.0.0.1:%d" % port2,
                                "--upstream", "127.0.0.1:%d" % closed],
                        upstream_port=lsock.getsockname()[1])
    try:
        t0 = time.time()
        how = connect_read(port)
        t = time.time() - t0
        L.check("%s: a client whose upstream does not answer is reset after about 1 s (%.2f s)"
                % (name, t), how == "reset" and 0.95 <= t < 6, how)
        # The reset reaches the client a moment before the worker counts
        # the connection closed.
        s = proxy.wait_closed()
        L.check("%s: upstream_failures == 1" % name, s.get("upstream_failures") == 1 and
                s.get("connections_open") == 0, s)
        t0 = time.time()
        how = connect_read(port2)
        L.check("%s: a refused upstream resets the client (%.2f s)"
                % (name, time.time() - t0), how == "reset" and time.time() - t0 < 5, how)
        s = proxy.stats()
        L.check("%s: upstream_failures == 2" % name, s.get("upstream_failures") == 2, s)
        reasons = re.findall(r'event=reset .*reason="([^"]*)"', proxy.text())
        L.check("%s: one reset for the timeout, one for the refusal" % name,
                reasons == ["upstream connect timed out", "Connection refused"], reasons)
    finally:
        stop(proxy, name)
        filler.close()
        lsock.close()


# ---- the command line ------------------------------------------------------------------

def test_bad_options(nginx):
    p1, p2 = L.free_port(), L.free_port()
    ok_route = ["--listen", "127.0.0.1:%d" % p1, "--upstream", "127.0.0.1:%d" % p2]
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    cases = [
        ("no arguments", [], r"usage: openwfp proxy"),
        ("--listen without --upstream", ["--listen", "127.0.0.1:%d" % p1],
         r"--listen needs an --upstream"),
        ("--upstream first", ["--upstream", "127.0.0.1:80", "--listen", "127.0.0.1:%d" % p1],
         r"--upstream must follow a --listen"),
        ("address without a port", ["--listen", "127.0.0.1", "--upstream", "127.0.0.1:80"],
         r"--listen: bad address '127\.0\.0\.1'"),
        ("host name", ["--listen", "127.0.0.1:%d" % p1, "--upstream", "localhost:80"],
         r"--upstream: bad address 'localhost:80'"),
        ("IPv6 without brackets", ["--listen", "::1:%d" % p1, "--upstream", "127.0.0.1:80"],
         r"--listen: bad address"),
        ("port out of range", ["--listen", "[::1]:65536", "--upstream", "127.0.0.1:80"],
         r"--listen: bad address '\[::1\]:65536'"),
        ("unknown option", ok_route + ["--bogus"], r"unrecognized option '--bogus'.*\n(.|\n)*usage:"),
        ("stray argument", ok_route + ["extra"], r"unexpected argument 'extra'"),
        ("--workers 0", ok_route + ["--workers", "0"], r"--workers: 1 to 256"),
        ("--offload fast", ok_route + ["--offload", "fast"], r"--offload splice\|none"),
        ("--max-connections -1", ok_route + ["--max-connections", "-1"],
         r"--max-connections: bad number '-1'"),
        ("--idle-timeout abc", ok_route + ["--idle-timeout", "abc"],
         r"--idle-timeout: bad number 'abc'"),
        ("--connect-timeout 0", ok_route + ["--connect-timeout", "0"],
         r"--connect-timeout: at least 1"),
        ("--max-buffered 0", ok_route + ["--max-buffered", "0"], r"--max-buffered: at least 1"),
        ("--max-buffered-total 0", ok_route + ["--max-buffered-total", "0"],
         r"--max-buffered-total: at least 1"),
        ("--grace -5", ok_route + ["--grace", "-5"], r"--grace: bad number '-5'"),
        ("--metrics nowhere", ok_route + ["--metrics", "nowhere"], r"--metrics: bad address"),
        ("--log-format xml", ok_route + ["--log-format", "xml"], r"--log-format text\|json"),
        ("--log-level loud", ok_route + ["--log-level", "loud"],
         r"--log-level error\|warn\|info\|debug"),
        ("--example bogus", ok_route + ["--example", "bogus"], r"unknown --example bogus"),
        ("--driver missing", ok_route + ["--driver", "/nonexistent/none.so"], r"none\.so"),
        ("listen address in use", ["--listen", "127.0.0.1:%d" % busy.getsockname()[1],
                                   "--upstream", "127.0.0.1:80"],
         r"start_failed.*Address already in use"),
    ]
    try:
        for what, args, pattern in cases:
            try:
                p = subprocess.run([OPENWFP, "proxy", *args], capture_output=True, timeout=30)
                rc, err = p.returncode, p.stderr.decode(errors="replace")
            except subprocess.TimeoutExpired:
                rc, err = None, "did not exit"
            L.check("bad options: %s: exit 2 with a message" % what,
                    rc == 2 and re.search(pattern, err) is not None, "exit %s: %s" % (rc, err[-1500:]))
    finally:
        busy.close()


def long_options():
    """The long options of `openwfp proxy` from its option tables: the
    opts[] of src/cli/cmd_proxy.c and, when it uses them, the
    OWFP_CALLOUT_OPTIONS of src/cli/callouts.h."""
    src = open(os.path.join(SOURCE_ROOT, "src", "cli", "cmd_proxy.c")).read()
    table = re.search(r"struct option opts\[\] = \{(.*?)\n\s*\};", src, re.S)
    body = table.group(1) if table else ""
    opts = re.findall(r'\{"([a-z][a-z0-9-]*)",\s*(?:no|required|optional)_argument', body)
    if "OWFP_CALLOUT_OPTIONS" in body:
        hdr = open(os.path.join(SOURCE_ROOT, "src", "cli", "callouts.h")).read()
        macro = re.search(r"#define OWFP_CALLOUT_OPTIONS(.*?)(?<!\\)\n", hdr, re.S)
        opts += re.findall(r'\{"([a-z][a-z0-9-]*)",\s*(?:no|required|optional)_argument',
                           macro.group(1) if macro else "")
    return opts


def test_help():
    p = subprocess.run([OPENWFP, "proxy", "--help"], capture_output=True, timeout=30)
    out = p.stdout.decode()
    L.check("--help: exit 0, usage on stdout", p.returncode == 0 and
            out.startswith("usage: openwfp proxy"), p.stderr.decode())
    opts = long_options()
    L.check("--help: the option tables parsed (%d long options)" % len(opts),
            len(opts) >= 20 and "listen" in opts and "driver" in opts, opts)
    missing = [o for o in opts if not re.search(r"(?<![\w-])--%s(?![\w-])" % re.escape(o), out)]
    L.check("--help mentions every long option of cmd_proxy.c and callouts.h", not missing,
            "not in --help: " + " ".join("--" + o for o in missing))
    q = subprocess.run([OPENWFP, "proxy", "-h"], capture_output=True, timeout=30)
    L.check("-h: the same text", q.returncode == 0 and q.stdout.decode() == out)


def main():
    missing = L.missing_tools("nginx", "curl")
    if missing:
        print("skip: not installed: " + " ".join(missing))
        return 77
    tmp = tempfile.mkdtemp(prefix="owfp-proxy-ops-")
    root = os.path.join(tmp, "www")
    os.makedirs(root)
    nginx = None
    try:
        L.make_file(os.path.join(root, "1k.bin"), 1024)
        slow_sha = L.make_file(os.path.join(root, "slow.bin"), SLOW, seed="slow")
        nginx = L.Nginx(root)
        L.run_tests([(test_help, ()), (test_bad_options, (nginx,)), (test_stats_text, (nginx,)),
                     (test_stats_json, (nginx,)), (test_json_with_driver, (nginx,)),
                     (test_metrics, (nginx,)),
                     (test_graceful, (nginx, slow_sha)), (test_short_grace, (nginx,)),
                     (test_max_connections, (nginx,)), (test_idle_timeout, (nginx,)),
                     (test_connect_timeout, (nginx,))])
    finally:
        if nginx:
            nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return L.finish()


if __name__ == "__main__":
    sys.exit(main())
