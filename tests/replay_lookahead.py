#!/usr/bin/env python3
"""Reading a capture file from its mapping, and looking ahead while the
engine inspects most packets, must not change what `openwfp replay` says:
the same capture replayed from the file and through standard input (which
libpcap reads, without mapping or looking ahead) gives the same report and
the same edited streams. The capture is long enough (over 20,000 packets,
most of them indicated to the stream layer) for the look-ahead to run, and
has hundreds of interleaved connections, IPv4 and IPv6, reordered and
repeated segments, RSTs, reused ports and a few frames that are not TCP.

usage: replay_lookahead.py OPENWFP
"""
import os
import random
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_lib as R  # noqa: E402
from replay_lib import check  # noqa: E402

OPENWFP = sys.argv[1]
CONNS = 600
LIVE = 80


def frame(v6, src, dst, sport, dport, flags, seq, ack, payload=b""):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    if v6:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, src, dst)
        return b"\2" * 6 + b"\4" * 6 + b"\x86\xdd" + ip + tcp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst)
    return b"\2" * 6 + b"\4" * 6 + b"\x08\x00" + ip + tcp


def connection(i, rng):
    """The frames of connection i, in order."""
    v6 = i % 7 == 0
    k = i % 450  # connection k + 450 reuses connection k's 4-tuple
    if v6:
        c, s = b"\x20\x01" + bytes(13) + bytes([1]), b"\x20\x01" + bytes(13) + bytes([2])
    else:
        c, s = bytes([10, 0, k // 250, k % 250 + 1]), bytes([10, 1, 0, 1])
    sport = 30000 + k
    isn, sisn = 1000 + 77 * i, 9000 + 13 * i
    f = lambda src, dst, sp, dp, *a: frame(v6, src, dst, sp, dp, *a)
    out = [f(c, s, sport, 80, 0x02, isn, 0), f(s, c, 80, sport, 0x12, sisn, isn + 1),
           f(c, s, sport, 80, 0x10, isn + 1, sisn + 1)]
    cseq, sseq = isn + 1, sisn + 1
    body = []
    for k in range(rng.randint(10, 50)):
        data = bytes([(i + k) % 251]) * rng.choice((1, 100, 700, 1400))
        if k % 3 == 0:
            body.append(f(c, s, sport, 80, 0x18, cseq, sseq, data))
            cseq += len(data)
        else:
            body.append(f(s, c, 80, sport, 0x18, sseq, cseq, data))
            sseq += len(data)
    if rng.random() < 0.2 and len(body) > 2:  # reordered
        j = rng.randrange(len(body) - 1)
        body[j], body[j + 1] = body[j + 1], body[j]
    if rng.random() < 0.1:  # repeated
        body.append(body[rng.randrange(len(body))])
    out += body
    if rng.random() < 0.1:
        out.append(f(c, s, sport, 80, 0x04, cseq, 0))
    else:
        out += [f(c, s, sport, 80, 0x11, cseq, sseq), f(s, c, 80, sport, 0x11, sseq, cseq + 1),
                f(c, s, sport, 80, 0x10, cseq + 1, sseq + 1)]
    return out


def capture(path):
    """LIVE connections at a time take turns, one frame each; every 97th
    turn an ARP frame. Returns the number of frames."""
    rng = random.Random(7)
    pending = [connection(i, rng) for i in range(CONNS)]
    live, nxt, frames = [], 0, []
    while live or nxt < CONNS:
        while len(live) < LIVE and nxt < CONNS:
            live.append(pending[nxt])
            nxt += 1
        for conn in list(live):
            frames.append(conn.pop(0))
            if len(frames) % 97 == 0:
                frames.append(b"\xff" * 6 + b"\4" * 6 + b"\x08\x06" + bytes(28))
            if not conn:
                live.remove(conn)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for n, fr in enumerate(frames):
            fh.write(struct.pack("<IIII", 1700000000 + n // 1000, n % 1000 * 1000, len(fr), len(fr)) + fr)
    return len(frames)


with tempfile.TemporaryDirectory() as d:
    cap = os.path.join(d, "lookahead.pcap")
    n = capture(cap)
    check("capture of %d frames" % n, n > 20000)
    with open(cap, "rb") as fh:
        data = fh.read()
    for args in (["--json", "--example", "noop"], ["--example", "mask=0"], ["--json"],
                 ["--example", "noop", "--overlap", "last"]):
        name = " ".join(args)
        rc1, out1, err1 = R.replay(OPENWFP, "--no-progress", *args, cap)
        rc2, out2, err2 = R.replay(OPENWFP, "--no-progress", *args, "-", stdin=data)
        check("%s: both exit 0" % name, rc1 == 0 and rc2 == 0, err1 + err2)
        check("%s: same report from the mapped file and from stdin" % name, out1 == out2,
              "\n".join(l for l in out1.splitlines() if l not in out2.splitlines())[:2000])
        check("%s: every connection reported" % name, len(out1.splitlines()) > CONNS)
    rc1, out1, err1, files1 = R.write_streams(OPENWFP, os.path.join(d, "a"), "--quiet",
                                              "--no-progress", "--example", "mask=0", cap)
    rc2, out2, err2, files2 = R.write_streams(OPENWFP, os.path.join(d, "b"), "--quiet",
                                              "--no-progress", "--example", "mask=0", "-",
                                              stdin=data)
    check("--write-streams: the same files", rc1 == rc2 == 0 and files1 == files2 and files1,
          err1 + err2)

sys.exit(R.finish())
