#!/usr/bin/env python3
"""The stream actions through `openwfp proxy`, each by an effect a real
client sees, with the bundled examples and drivers:

  S28  edited bytes arrive edited: --example mask=secret (inject the
       asterisks, block the word) and stream_edit inline with replacements
       of another length (longer, and empty);
  S18  DROP_CONNECTION (content_block Pattern=...): the client gets a reset;
  S20  ALLOW_CONNECTION (content_block AllowAfter=N): the flow leaves the
       engine for splice (spec O4) and is not inspected any more;
  E5   a BLOCK at ALE_FLOW_ESTABLISHED (--example block-port=N): reset;
  S19  DEFER (tests/drivers/defer_driver.c, continued from a system thread
       after DeferMs): the proxy stops reading the server, whose TCP window
       closes (seen with ss), and after the continue the download completes;
       a client that resets while deferred ends the flow at once and the
       driver owes no continue; bytes that arrive while deferred, and after
       the continue, are relayed (reading resumes with no new epoll event).

usage: proxy_actions.py OPENWFP CONTENT_BLOCK.so STREAM_EDIT.so DEFER_DRIVER.so
"""
import errno
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_lib as L  # noqa: E402

OPENWFP, CONTENT_BLOCK, STREAM_EDIT, DEFER_DRIVER = sys.argv[1:5]
BIG = 100 << 20
WORD = b"secret"
PATTERN = b"FORBIDDEN-WORD"
PATTERN_AT = (1 << 20) + 12345  # where drop.bin has the pattern
DEFER_MS = 3000


def make_masked(path):
    """8 MiB of random bytes with the word in many places: across every
    64 KiB and 256 KiB boundary (reads are at most 256 KiB), and in the
    shapes that trip a naive matcher."""
    L.make_file(path, 8 << 20, seed="masked")
    data = bytearray(open(path, "rb").read())
    spots = set()
    for k in range(1, 128):
        spots.add(k * 65536 - 3)
    for k in range(1, 32):
        spots.add(k * 262144 - 5)
        spots.add(k * 262144 + 17)
    for at in sorted(spots):
        data[at:at + len(WORD)] = WORD
    for at, text in ((100, b"secsecret"), (5000, b"ssecret"), (9000, b"secre"),
                     (len(data) - 6, WORD)):
        data[at:at + len(text)] = text
    with open(path, "wb") as f:
        f.write(data)
    return bytes(data)


def make_drop(path):
    L.make_file(path, 2 << 20, seed="drop")
    data = bytearray(open(path, "rb").read())
    data[PATTERN_AT:PATTERN_AT + len(PATTERN)] = PATTERN
    with open(path, "wb") as f:
        f.write(data)
    return bytes(data)


def curl(args, timeout=300):
    """curl to stdout: (exit code, body, http code, header bytes, stderr)."""
    rc, body, err = L.curl(*L.CURL_STATUS, *args, timeout=timeout)
    code, header = L.curl_status(err)
    return rc, body, code, header, err


def reset_seen(port, request=None, timeout=30):
    """Connects, sends `request` (if any) and reads until the end: True when
    the connection ended in ECONNRESET. (reset, bytes read, detail)."""
    n = 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            if request:
                s.sendall(request)
            while True:
                b = s.recv(1 << 20)
                if not b:
                    return False, n, "EOF after %d bytes" % n
                n += len(b)
    except ConnectionResetError:
        return True, n, "ECONNRESET after %d bytes" % n
    except OSError as e:
        if e.errno == errno.EPIPE:
            return False, n, "EPIPE (%s)" % e
        return False, n, repr(e)


def settled(proxy, name):
    """The statistics once every connection is closed (checked)."""
    s = proxy.wait_closed()
    if s.get("connections_open") != 0:
        L.check("%s: every connection closed (connections_open 0)" % name, False, s)
    return s


def stop(proxy, name):
    rc = proxy.stop()
    L.check("%s: SIGTERM: exit 0" % name, rc == 0, "exit %s\n%s" % (rc, proxy.text()[-3000:]))
    return rc


def start(nginx, args):
    return L.start(OPENWFP, nginx.port, *args)


# ---- S28: edited bytes arrive edited -------------------------------------------

def test_mask(nginx, masked):
    name = "S28 --example mask=secret"
    proxy, port = start(nginx, ["--example", "mask=" + WORD.decode()])
    try:
        count = masked.count(WORD)
        want = masked.replace(WORD, b"*" * len(WORD))
        rc, body, code, header, err = curl(["http://127.0.0.1:%d/masked.bin" % port])
        L.check("%s: the download (%d words, 8 MiB, many reads) arrives with asterisks in place"
                % (name, count), rc == 0 and code == 200 and body == want and WORD not in body,
                "curl %d http %d, %d bytes, first difference at %s %s" %
                (rc, code, len(body), first_diff(body, want), err))
        s = settled(proxy, name)
        L.check("%s: injected and blocked %d bytes each (receive)" % (name, count * len(WORD)),
                s.get("bytes_injected_receive") == count * len(WORD) and
                s.get("bytes_blocked_receive") == count * len(WORD), s)
        L.check("%s: the rest permitted (read - blocked == permitted)" % name,
                s.get("bytes_read_receive", 0) - s.get("bytes_blocked_receive", 0) ==
                s.get("bytes_permitted_receive"), s)
        L.check("%s: nothing dropped, nothing offloaded" % name,
                s.get("dropped") == 0 and s.get("offloaded_splice") == 0, s)
    finally:
        stop(proxy, name)


def test_stream_edit(nginx, masked, replace):
    name = "S28 stream_edit inline Replace=%r" % replace
    proxy, port = start(nginx, ["--strict", "--driver", STREAM_EDIT,
                                "--driver-param", "Find=" + WORD.decode(),
                                "--driver-param", "Replace=" + replace,
                                "--driver-param", "Direction=1"])
    try:
        want = masked.replace(WORD, replace.encode())
        head, body, error = L.raw_get(port, "/masked.bin")
        L.check("%s: the body (%d bytes) is the file with every %r replaced (%d bytes)"
                % (name, len(masked), WORD.decode(), len(want)),
                error is None and head.startswith(b"HTTP/1.1 200") and body == want,
                "%s %r, %d bytes, first difference at %s" %
                (error, head[:40], len(body), first_diff(body, want)))
        count = masked.count(WORD)
        s = settled(proxy, name)
        L.check("%s: injected %d bytes, blocked %d (receive)"
                % (name, count * len(replace), count * len(WORD)),
                s.get("bytes_injected_receive") == count * len(replace) and
                s.get("bytes_blocked_receive") == count * len(WORD), s)
    finally:
        rc = stop(proxy, name)
    m = re.search(r"StreamEdit: unloaded: (\d+) replaced, (\d+) injections failed", proxy.text())
    L.check("%s: the driver unloaded (--strict) and counted %d replacements"
            % (name, masked.count(WORD)),
            rc == 0 and m is not None and int(m.group(1)) == masked.count(WORD) and
            m.group(2) == "0", proxy.text()[-2000:])


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


# ---- S18: DROP_CONNECTION ----------------------------------------------------------

def test_drop(nginx, dropdata):
    name = "S18 DROP_CONNECTION (content_block)"
    proxy, port = start(nginx, ["--strict", "--driver", CONTENT_BLOCK,
                                "--driver-param", "Pattern=" + PATTERN.decode(),
                                "--driver-param", "AllowAfter=0"])
    try:
        rc, body, code, header, err = curl(["http://127.0.0.1:%d/drop.bin" % port])
        L.check("%s: curl gets a reset (exit 56)" % name, rc == 56,
                "curl %d, %d bytes: %s" % (rc, len(body), err))
        L.check("%s: no byte from the pattern on reached the client (%d of %d body bytes)"
                % (name, len(body), len(dropdata)),
                len(body) < PATTERN_AT + len(PATTERN) and body == dropdata[:len(body)])
        s = settled(proxy, name)
        L.check("%s: stats dropped == 1" % name, s.get("dropped") == 1, s)
        m = re.search(r"ContentBlock: dropping flow \d+: pattern in the receive stream at offset (\d+)",
                      proxy.text())
        L.check("%s: the driver saw the pattern at its offset in the stream (%d)"
                % (name, header + PATTERN_AT),
                m is not None and int(m.group(1)) == header + PATTERN_AT,
                m.group(0) if m else proxy.text()[-2000:])
        reset, n, detail = reset_seen(port, b"GET /drop.bin HTTP/1.0\r\n\r\n")
        L.check("%s: a python socket sees ECONNRESET" % name, reset, detail)
        # The pattern in the client's own bytes (the send direction).
        bad = b"GET /" + PATTERN + b" HTTP/1.0\r\n\r\n"
        reset, n, detail = reset_seen(port, bad)
        L.check("%s: the pattern in the request: ECONNRESET, no response byte" % name,
                reset and n == 0, detail)
        s = settled(proxy, name)
        L.check("%s: stats dropped == 3 after three connections" % name, s.get("dropped") == 3, s)
        L.check("%s: the request with the pattern was not passed on (bytes_blocked_send == "
                "its %d bytes)" % (name, len(bad)),
                s.get("bytes_blocked_send") == len(bad) and
                s.get("bytes_read_send", 0) - s.get("bytes_permitted_send", 0) == len(bad), s)
    finally:
        rc = stop(proxy, name)
    L.check("%s: --strict: the driver unloaded clean, 3 connections dropped" % name, rc == 0 and
            "ContentBlock: unloaded: 3 connections dropped, 0 let go" in proxy.text(),
            proxy.text()[-2000:])


# ---- S20: ALLOW_CONNECTION -> splice ------------------------------------------------

def test_allow(nginx, dropdata, big_sha):
    name = "S20 ALLOW_CONNECTION (content_block AllowAfter=4096)"
    proxy, port = start(nginx, ["--strict", "--driver", CONTENT_BLOCK,
                                "--driver-param", "Pattern=" + PATTERN.decode(),
                                "--driver-param", "AllowAfter=4096"])
    try:
        rc, body, code, header, err = curl(["http://127.0.0.1:%d/drop.bin" % port])
        L.check("%s: the pattern past AllowAfter is no longer looked at: download intact"
                % name, rc == 0 and body == dropdata, "curl %d, %d bytes %s" % (rc, len(body), err))
        s = settled(proxy, name)
        L.check("%s: nothing dropped; the flow went to splice (offloaded_splice 1)" % name,
                s.get("dropped") == 0 and s.get("offloaded_splice") == 1 and
                s.get("bytes_offloaded_receive", 0) > 0, s)
        before = s
        rc, sha, n, err = L.hash_output(["curl", "-s", "-S", *L.CURL_STATUS,
                                         "http://127.0.0.1:%d/big.bin" % port], 300)
        L.check("%s: 100 MiB download, sha256 intact" % name,
                rc == 0 and n == BIG and sha == big_sha, "curl %d, %d bytes %s" % (rc, n, err))
        s = settled(proxy, name)
        L.check("%s: offloaded_splice == 2, bytes_offloaded_receive > 0" % name,
                s.get("offloaded_splice") == 2 and
                s.get("bytes_offloaded_receive", 0) > before.get("bytes_offloaded_receive", 0), s)
        _, header = L.curl_status(err)
        read = s.get("bytes_read_receive", 0) - before.get("bytes_read_receive", 0)
        off = s.get("bytes_offloaded_receive", 0) - before.get("bytes_offloaded_receive", 0)
        L.check("%s: engine bytes + spliced bytes == the response (%d); the engine saw "
                "only the start (%d bytes)" % (name, header + BIG, read),
                read + off == header + BIG and read < 4 << 20, "read %d offloaded %d" % (read, off))
    finally:
        stop(proxy, name)


# ---- E5: block at ALE_FLOW_ESTABLISHED ------------------------------------------------

def test_ale_block(nginx, root):
    name = "E5 ALE block (--example block-port)"
    other = L.Nginx(root)
    port2 = L.free_port()
    proxy, port = start(nginx, ["--listen", "127.0.0.1:%d" % port2,
                                "--upstream", "127.0.0.1:%d" % other.port,
                                "--example", "block-port=%d" % nginx.port])
    try:
        reset, n, detail = reset_seen(port)
        L.check("%s: a client of the blocked port gets a reset" % name, reset and n == 0, detail)
        s = settled(proxy, name)
        L.check("%s: ale_blocked == 1" % name, s.get("ale_blocked") == 1 and
                s.get("connections_open") == 0, s)
        rc, body, code, header, err = curl(["http://127.0.0.1:%d/1k.bin" % port])
        # The reset may reach curl before it sees its connect complete (exit
        # 7), or after it sent the request (55, 56); ale_blocked below says
        # the proxy accepted and blocked it either way.
        L.check("%s: curl to the blocked port fails with a reset (exit 7, 55 or 56)" % name,
                rc in (7, 55, 56) and not body, "curl %d %s" % (rc, err))
        rc, body, code, header, err = curl(["http://127.0.0.1:%d/1k.bin" % port2])
        L.check("%s: another upstream port is not blocked" % name,
                rc == 0 and code == 200 and len(body) == 1024, "curl %d %s" % (rc, err))
        s = settled(proxy, name)
        L.check("%s: ale_blocked == 2, no stream byte from the blocked flows" % name,
                s.get("ale_blocked") == 2 and s.get("connections_accepted") == 3, s)
    finally:
        stop(proxy, name)
        other.stop()


# ---- S19: DEFER and FwpsStreamContinue0 ----------------------------------------------

def ss_sockets(filt):
    """`ss -tni` for established sockets matching `filt`: a list of dicts
    (recvq, sendq, local, peer, info)."""
    out = subprocess.run(["ss", "-tniH", "state", "established", filt],
                         capture_output=True, text=True, timeout=10).stdout
    socks = []
    for line in out.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            if socks:
                socks[-1]["info"] += line.strip() + " "
            continue
        f = line.split()
        if len(f) >= 4 and f[0].isdigit() and f[1].isdigit():
            socks.append({"recvq": int(f[0]), "sendq": int(f[1]), "local": f[2], "peer": f[3],
                          "info": ""})
    return socks


def info_value(info, key):
    m = re.search(r"\b%s:(\d+)" % key, info)
    return int(m.group(1)) if m else None


def test_defer(nginx, big_sha):
    name = "S19 DEFER"
    proxy, port = start(nginx, ["--strict", "--driver", DEFER_DRIVER,
                                "--driver-param", "DeferMs=%d" % DEFER_MS])
    client = None
    try:
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.sendall(b"GET /big.bin HTTP/1.0\r\nHost: x\r\n\r\n")
        L.check("%s: the driver deferred the first received data" % name,
                proxy.wait_log("DeferDriver: deferring flow", 15), proxy.text()[-2000:])
        # While deferred: the proxy's socket to nginx fills up to its buffer
        # and stops growing, nginx has bytes it cannot send.
        up_filter = "( dport = :%d )" % nginx.port
        srv_filter = "( sport = :%d )" % nginx.port
        samples = []
        closed = None
        deadline = time.time() + 30
        while time.time() < deadline and "DeferDriver: continued" not in proxy.text():
            up, srv = ss_sockets(up_filter), ss_sockets(srv_filter)
            if len(up) == 1 and len(srv) == 1:
                samples.append((up[0]["recvq"], srv[0]["sendq"], up[0]["info"], srv[0]["info"]))
            last = samples[-4:]
            if len(last) == 4 and last[0][0] > 0 and all(x[0] == last[0][0] for x in last) and \
                    all(x[1] > 0 for x in last):
                closed = last
                break
            time.sleep(0.1)
        during = "DeferDriver: continued" not in proxy.text()
        got = None
        # Non-blocking: with a timeout set, Python would wait for data first.
        client.setblocking(False)
        try:
            got = client.recv(1 << 20)
        except BlockingIOError:
            got = b""
        still = "DeferDriver: continued" not in proxy.text()
        L.check("S19 defer closes the window: the proxy's upstream Recv-Q at its limit and "
                "not growing (4 samples over 300 ms), nginx's Send-Q > 0",
                closed is not None and during,
                "samples (Recv-Q, nginx Send-Q): %s; continued already: %s"
                % ([x[:2] for x in samples[-8:]], not during))
        if closed:
            up_info, srv_info = closed[-1][2], closed[-1][3]
            # Kernels that report the peer's window (tcpi_snd_wnd) show it
            # for the proxy's socket; ss leaves it out when it is 0.
            if info_value(up_info, "snd_wnd") is not None:
                L.check("S19 defer closes the window: nginx's send window is 0 (snd_wnd)",
                        info_value(srv_info, "snd_wnd") in (None, 0), srv_info)
            L.check("S19 defer closes the window: nginx is limited by the receiver's window",
                    "rwnd_limited" in srv_info, srv_info)
        L.check("S19 defer: the client has received nothing while deferred (not even the "
                "headers)", got == b"" and still, "got %r bytes" % (len(got) if got else got))

        # After the continue the download completes.
        client.settimeout(120)
        data = bytearray(got or b"")
        t0 = time.time()
        try:
            while True:
                b = client.recv(1 << 20)
                if not b:
                    break
                data += b
            error = None
        except OSError as e:
            error = e
        client.close()
        client = None
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        L.check("S19 defer then FwpsStreamContinue0: the 100 MiB download completes, sha256 "
                "intact", error is None and head.startswith(b"HTTP/1.1 200") and len(body) == BIG
                and hashlib.sha256(body).hexdigest() == big_sha,
                "%s %r %d bytes" % (error, head[:40], len(body)))
        print("     (after the continue: %.1f s)" % (time.time() - t0), flush=True)
        m = re.search(r"DeferDriver: continued flow \d+ after (\d+) ms: 0x([0-9A-Fa-f]{8})",
                      proxy.text())
        L.check("S19 continue from the driver's system thread succeeded, after DeferMs "
                "(%d ms)" % DEFER_MS, m is not None and int(m.group(1)) >= DEFER_MS and
                m.group(2) == "00000000", m.group(0) if m else proxy.text()[-2000:])
        s = settled(proxy, name)
        L.check("S19 defer: stats defers == 1, the connection closed",
                s.get("defers") == 1 and s.get("connections_open") == 0, s)
        L.check("S19 defer: every byte read was permitted after the continue",
                s.get("bytes_read_receive") == s.get("bytes_permitted_receive") and
                s.get("bytes_read_receive", 0) >= BIG, s)
    finally:
        if client:
            client.close()
        rc = stop(proxy, name)
    L.check("S19 defer: the driver unloads (--strict) with 1 deferred, 1 continued, 0 failed",
            rc == 0 and "DeferDriver: unloaded: 1 deferred, 1 continued, 0 failed" in proxy.text(),
            proxy.text()[-2000:])


def test_defer_arrivals():
    """Small messages around a DEFER: the first answer is deferred after a
    short read (the socket then counts as empty), a second arrives while
    the flow is deferred (its event cannot be acted on yet), a third after
    the continue. The continue comes from another thread, not as an epoll
    event: the proxy must read the second message then, and relay all
    three in order, then the FIN."""
    name = "S19 bytes around a DEFER"
    first, second, third = b"first answer\n", b"second, sent while deferred\n", b"third\n"
    defer_ms = 1500

    def handler(c, rec):
        rec["request"] = c.recv(64)
        c.sendall(first)
        time.sleep(defer_ms / 3000)
        c.sendall(second)
        rec["next"] = c.recv(64)
        c.sendall(third)

    up = L.Upstream(handler)
    proxy, port = L.start(OPENWFP, up.port, "--strict", "--driver", DEFER_DRIVER,
                          "--driver-param", "DeferMs=%d" % defer_ms)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=defer_ms / 1000 + 15) as c:
            t0 = time.time()
            c.sendall(b"hello\n")
            got = b""
            while len(got) < len(first + second):
                b = c.recv(4096)
                if not b:
                    break
                got += b
            waited = time.time() - t0
            L.check("%s: the first two arrive together after the continue (%.2f s)"
                    % (name, waited), got == first + second and waited >= defer_ms / 1000 * 0.9,
                    (got, waited))
            c.sendall(b"next\n")
            rest = L.recv_all(c)
            L.check("%s: the third follows, then EOF" % name, rest == third, rest)
        rec = up.record(0)
        L.check("%s: the server saw both requests" % name,
                rec is not None and rec.get("request") == b"hello\n" and
                rec.get("next") == b"next\n", rec)
        s = settled(proxy, name)
        L.check("%s: defers == 1, every byte read was permitted" % name,
                s.get("defers") == 1 and s.get("bytes_read_receive") ==
                s.get("bytes_permitted_receive") == len(first + second + third), s)
    finally:
        rc = stop(proxy, name)
        up.close()
    L.check("%s: the driver unloads with 1 deferred, 1 continued, 0 failed" % name,
            rc == 0 and "DeferDriver: unloaded: 1 deferred, 1 continued, 0 failed" in proxy.text(),
            proxy.text()[-2000:])


def test_defer_reset(nginx):
    """A client that resets while its flow is deferred: the connection
    ends at once, flowDeleteFn drops what the driver owed (no continue is
    ever made for the dead flow), the held bytes count as blocked."""
    name = "S19 a flow reset while deferred"
    proxy, port = start(nginx, ["--strict", "--driver", DEFER_DRIVER,
                                "--driver-param", "DeferMs=60000"])
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"GET /big.bin HTTP/1.0\r\nHost: x\r\n\r\n")
        L.check("%s: deferred" % name, proxy.wait_log("DeferDriver: deferring flow", 15),
                proxy.text()[-2000:])
        L.linger_rst(c)
        c.close()
        t0 = time.time()
        s = settled(proxy, name)
        held = re.search(r"DeferDriver: deferring flow \d+ \((\d+) bytes received\)", proxy.text())
        L.check("%s: the connection ends at once (%.2f s), a peer reset" % (name, time.time() - t0),
                s.get("connections_open") == 0 and s.get("peer_resets") == 1 and
                time.time() - t0 < 10, s)
        L.check("%s: the held bytes were never passed on (bytes_blocked_receive == the %s "
                "deferred)" % (name, held.group(1) if held else "?"),
                held is not None and s.get("bytes_permitted_receive") == 0 and
                s.get("bytes_blocked_receive") == int(held.group(1)), s)
    finally:
        rc = stop(proxy, name)
    L.check("%s: the driver owed nothing at unload (1 deferred, 0 continued, 0 failed)" % name,
            rc == 0 and "DeferDriver: unloaded: 1 deferred, 0 continued, 0 failed" in proxy.text(),
            proxy.text()[-2000:])


def main():
    missing = L.missing_tools("nginx", "curl", "ss")
    if missing:
        print("skip: not installed: " + " ".join(missing))
        return 77
    tmp = tempfile.mkdtemp(prefix="owfp-proxy-actions-")
    root = os.path.join(tmp, "www")
    os.makedirs(root)
    nginx = None
    try:
        t0 = time.time()
        masked = make_masked(os.path.join(root, "masked.bin"))
        dropdata = make_drop(os.path.join(root, "drop.bin"))
        big_sha = L.make_file(os.path.join(root, "big.bin"), BIG, seed="big")
        L.make_file(os.path.join(root, "1k.bin"), 1024)
        print("     (files made in %.1f s)" % (time.time() - t0), flush=True)
        nginx = L.Nginx(root)
        L.run_tests([(test_mask, (nginx, masked)),
                     (test_stream_edit, (nginx, masked, "<<REDACTED>>")),
                     (test_stream_edit, (nginx, masked, "")),
                     (test_drop, (nginx, dropdata)),
                     (test_allow, (nginx, dropdata, big_sha)),
                     (test_ale_block, (nginx, root)),
                     (test_defer, (nginx, big_sha)),
                     (test_defer_reset, (nginx,)),
                     (test_defer_arrivals, ())])
    finally:
        if nginx:
            nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return L.finish()


if __name__ == "__main__":
    sys.exit(main())
