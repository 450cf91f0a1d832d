#!/usr/bin/env python3
"""drivers/stream_edit in its out-of-band mode (Mode=oob) through `openwfp
replay --driver`: the streams it leaves (--write-streams) against those of a
run without a driver, edited here in Python; FINs only where the capture had
them; back-pressure (DEFER and FwpsStreamContinue0 with a tiny QueueLimit);
and an inline and an out-of-band instance stacked in two sublayers, one's
output being the other's input, in both orders. Every run uses --strict, so
a leak or an IRQL finding fails it.

The expected stream of an edited direction: every occurrence of Find,
leftmost first, becomes Replace. A direction that ends without a FIN (reset,
or still open at the end of the capture) loses the end the editor keeps back
because it may be the start of a pattern (the inline mode loses it the same
way: its NEED_MORE_DATA bytes are never released).

usage: replay_stream_edit_oob.py OPENWFP STREAM_EDIT.so CORPUS_DIR
"""
import functools
import os
import re
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_lib as R  # noqa: E402
from replay_lib import SAMPLE  # noqa: E402

OPENWFP, STREAM_EDIT, CORPUS = sys.argv[1:4]
check = functools.partial(R.check, limit=4000)


# ---- the editor, in Python ---------------------------------------------------------------

def edit(data, find, replace, fin):
    """What one stream_edit instance makes of a direction's bytes."""
    out, pos = [], 0
    while pos < len(data):
        at = data.find(find, pos)
        if at < 0:
            break
        out.append(data[pos:at] + replace)
        pos = at + len(find)
    rest = data[pos:]
    # The longest end of the rest that is the start of the pattern is kept
    # back; without a FIN it never comes out.
    keep = 0
    for n in range(min(len(find) - 1, len(rest)), 0, -1):
        if rest.endswith(find[:n]):
            keep = n
            break
    out.append(rest if fin or not keep else rest[:-keep])
    return b"".join(out)


# ---- running openwfp ---------------------------------------------------------------------

def replay(tmp, tag, capture, *args):
    """(exit status, stderr, stream files, {stream file prefix: --json record})."""
    rc, out, err, files = R.write_streams(OPENWFP, os.path.join(tmp, tag), "--json", *args,
                                          capture, timeout=300)
    return rc, err, files, {"%06d" % c["conn"]: c for c in R.conns(out)}


def fin_of(conns, fname):
    """Whether the stream file's direction ended with a FIN in that run."""
    rec = conns.get(fname.split("_", 1)[0])
    return bool(rec and rec["send" if fname.endswith(".send") else "recv"]["fin"])


def inline_args(find, replace, direction, *extra, driver=None):
    return R.driver_args(driver or STREAM_EDIT, "Find=" + find, "Replace=" + replace,
                         "Direction=%d" % direction, *extra)


def oob_args(find, replace, direction, *extra, driver=None):
    return inline_args(find, replace, direction, "Mode=oob", *extra, driver=driver)


def problems(base, got, rc, err, edits, direction):
    """What is wrong with a run, as (check, detail) pairs, and the number of
    occurrences of the first pattern in the edited direction. `edits`:
    (find, replace) pairs applied in order to the `direction` streams."""
    out = []
    if rc != 0:
        out.append(("exit 0 under --strict", err))
    if "leak" in err or "violation" in err or re.search(r"[1-9][0-9]* injections failed", err):
        out.append(("nothing left behind, no finding, no failed injection", err))
    bfiles, bconns = base
    gfiles, gconns = got
    if set(gfiles) != set(bfiles):
        out.append(("the same stream files", "%s vs %s" % (sorted(gfiles), sorted(bfiles))))
    edited = ".send" if direction == 0 else ".recv"
    bad, hits, fins, detail = [], 0, [], ""
    for f, data in sorted(bfiles.items()):
        fin = fin_of(bconns, f)
        want = data
        if f.endswith(edited):
            hits += data.count(edits[0][0].encode())
            for find, replace in edits:
                want = edit(want, find.encode(), replace.encode(), fin)
        if gfiles.get(f) != want:
            if not bad:
                detail = "%s: got %r\nwant %r" % (f, (gfiles.get(f) or b"")[:300], want[:300])
            bad.append(f)
        if fin_of(gconns, f) != fin:
            fins.append(f)
    if bad:
        out.append(("%s streams edited, the others unchanged" % edited,
                    "differ: %s\n%s" % (bad, detail)))
    if fins:
        out.append(("a FIN exactly where the capture had one", "differ: %s" % fins))
    return out, hits


def check_run(label, base, got, rc, err, edits, direction):
    found, hits = problems(base, got, rc, err, edits, direction)
    for name, detail in found:
        check("%s: %s" % (label, name), False, detail)
    check("%s: exact streams and FINs, exit 0 under --strict (%d occurrences)" % (label, hits),
          not found and hits > 0)


def deferrals(err):
    for line in err.splitlines():
        if "unloaded (oob)" in line:
            return int(line.rsplit(",", 1)[1].split()[0])
    return -1


# ---- a capture written here (no scapy needed) --------------------------------------------

def pcap(path, conns):
    """conns: list of (sport, events); an event is ("c", bytes) client data,
    ("s", bytes) server data, ("cfin",), ("sfin",), ("rst",)."""
    def csum(b):
        if len(b) % 2:
            b += b"\0"
        s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        while s >> 16:
            s = (s & 0xffff) + (s >> 16)
        return ~s & 0xffff

    frames = []

    def tcp(src, dst, sport, dport, seq, ack, flags, payload=b""):
        th = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xffffffff, ack & 0xffffffff,
                         5 << 4, flags, 65535, 0, 0)
        ih = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(th) + len(payload), 0, 0x4000, 64,
                         6, 0, bytes(src), bytes(dst))
        ih = ih[:10] + struct.pack("!H", csum(ih)) + ih[12:]
        eth = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
        frames.append(eth + ih + th + payload)

    c, s = (10, 0, 0, 1), (10, 0, 0, 2)
    for sport, events in conns:
        cseq, sseq = 1000, 5000
        tcp(c, s, sport, 80, cseq, 0, 0x02)
        tcp(s, c, 80, sport, sseq, cseq + 1, 0x12)
        cseq += 1
        sseq += 1
        tcp(c, s, sport, 80, cseq, sseq, 0x10)
        for ev in events:
            if ev[0] == "c":
                tcp(c, s, sport, 80, cseq, sseq, 0x18, ev[1])
                cseq += len(ev[1])
                tcp(s, c, 80, sport, sseq, cseq, 0x10)
            elif ev[0] == "s":
                tcp(s, c, 80, sport, sseq, cseq, 0x18, ev[1])
                sseq += len(ev[1])
            elif ev[0] == "cfin":
                tcp(c, s, sport, 80, cseq, sseq, 0x11)
                cseq += 1
            elif ev[0] == "sfin":
                tcp(s, c, 80, sport, sseq, cseq, 0x11)
                sseq += 1
            elif ev[0] == "rst":
                tcp(c, s, sport, 80, cseq, sseq, 0x14)
        tcp(c, s, sport, 80, cseq, sseq, 0x10)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            fh.write(struct.pack("<IIII", 1700000000 + i // 1000, (i % 1000) * 1000, len(fr),
                                 len(fr)))
            fh.write(fr)


def generated(path):
    many = []
    for i in range(400):  # back to back, the pattern now and then, often split
        chunk = (b"x%03d-" % i) * 8
        if i % 7 == 0:
            chunk += b"sec"
        elif i % 7 == 1:
            chunk = b"ret|" + chunk
        if i % 11 == 0:
            chunk += b"secret"
        many.append(("s", chunk))
    pcap(path, [
        # split across segments, both directions, FIN both ways
        (40001, [("c", b"GET /sec"), ("c", b"ret/secretsec"), ("c", b"ret HTTP/1.0\r\n\r\n"),
                 ("s", b"HTTP/1.0 200 OK\r\n\r\nsec"), ("s", b"r"), ("s", b"et and s"),
                 ("s", b"ecret"), ("cfin",), ("sfin",)]),
        # one byte per segment
        (40002, [("c", b"GET / HTTP/1.0\r\n\r\n")] + [("s", bytes([b])) for b in b"a secret!"]
         + [("sfin",), ("cfin",)]),
        # the pattern at the very end, then FIN
        (40003, [("c", b"hello secret"), ("s", b"reply: secret"), ("cfin",), ("sfin",)]),
        # the start of the pattern at the end, then FIN: passes as it is
        (40004, [("c", b"hello secre"), ("s", b"reply: se"), ("cfin",), ("sfin",)]),
        # the start of the pattern at the end, no FIN: the capture ends
        (40005, [("c", b"open secret sec"), ("s", b"open reply secr")]),
        # a reset after data that ends with the start of the pattern
        (40006, [("c", b"about to reset secr"), ("s", b"so am I, secr"), ("rst",)]),
        # no data at all in either direction, only FINs
        (40007, [("cfin",), ("sfin",)]),
        # many segments back to back: the receive queue fills up
        (40008, [("c", b"GET /big HTTP/1.0\r\n\r\n")] + many + [("sfin",), ("cfin",)]),
    ])


# ---- the checks ---------------------------------------------------------------------------

def main(tmp):
    n = [0]

    def run(capture, *args):
        n[0] += 1
        rc, err, files, conns = replay(tmp, "r%d" % n[0], capture, "--strict", *args)
        return rc, err, (files, conns)

    def check_corpus(label, bases, args, edits, direction):
        """One line for all the captures; the details of those that fail."""
        bad, hits, deferred = [], 0, 0
        for cap, b in sorted(bases.items()):
            rc, err, got = run(cap, *args)
            found, h = problems(b, got, rc, err, edits, direction)
            hits += h
            deferred += max(deferrals(err), 0)
            for name, detail in found:
                bad.append(os.path.relpath(cap, CORPUS))
                print("     %s: %s: %s" % (bad[-1], name, detail.strip()[:2000]))
        check("%s: %d captures, exact streams and FINs, exit 0 under --strict "
              "(%d occurrences, %d DEFER answers)" % (label, len(bases), hits, deferred),
              not bad and hits > 0, "failed: %s" % sorted(set(bad)))

    def base_of(capture):
        rc, err, b = run(capture)
        check("no driver: %s: exit 0" % os.path.basename(capture), rc == 0, err)
        return b

    gen = os.path.join(tmp, "generated.pcap")
    generated(gen)
    captures = [SAMPLE, gen]
    corpus_pcaps = []
    for root, _, names in os.walk(os.path.join(CORPUS, "pcap")):
        corpus_pcaps += [os.path.join(root, f) for f in names]
    bases = {c: base_of(c) for c in captures}
    corpus_bases = {}
    for c in sorted(corpus_pcaps):
        rc, err, b = run(c)
        if rc == 0 and b[0]:
            corpus_bases[c] = b
    check("corpus: captures with streams found", len(corpus_bases) > 10,
          "%d of %d" % (len(corpus_bases), len(corpus_pcaps)))

    # Both directions, shorter, longer and empty replacements.
    for cap in captures:
        short = os.path.basename(cap)
        for find, replace, direction in [("secret", "XY", 1), ("secret", "[redacted!]", 0),
                                         ("secret", "", 1), ("sec", "SEC-SEC", 0)]:
            rc, err, got = run(cap, *oob_args(find, replace, direction))
            check_run("oob %s %s->%r Direction=%d" % (short, find, replace, direction),
                      bases[cap], got, rc, err, [(find, replace)], direction)

    # Real captures: every one with streams, a pattern each way.
    for find, replace, direction in [("HTTP", "HyperText", 1), ("e", "EE", 0),
                                     ("Content-", "", 1)]:
        check_corpus("oob corpus %s->%r Direction=%d" % (find, replace, direction),
                     corpus_bases, oob_args(find, replace, direction), [(find, replace)],
                     direction)

    # Back-pressure: with QueueLimit=1 every receive indication that finds
    # the worker still busy is deferred. Whether the worker is still busy is
    # up to the scheduler; the edited streams must not depend on it.
    seen = 0
    for attempt in range(5):
        rc, err, got = run(gen, *oob_args("secret", "XY", 1, "QueueLimit=1"))
        check_run("oob QueueLimit=1 (attempt %d)" % (attempt + 1), bases[gen], got, rc, err,
                  [("secret", "XY")], 1)
        seen += deferrals(err)
        if seen > 0:
            break
    check("oob QueueLimit=1: receive data deferred and continued (%d DEFER answers)" % seen,
          seen > 0, err)
    check_corpus("oob QueueLimit=1 corpus HTTP->'H' Direction=1", corpus_bases,
                 oob_args("HTTP", "H", 1, "QueueLimit=1"), [("HTTP", "H")], 1)

    # Stacked: a second copy of the module is a second driver (its own
    # registry key, its own globals). By default the out-of-band sublayer
    # (0x200) comes before the inline one (0x100): the inline editor edits
    # what the out-of-band one injected.
    second = os.path.join(tmp, "stream_edit_inline.so")
    shutil.copyfile(STREAM_EDIT, second)
    for cap in captures:
        short = os.path.basename(cap)
        for direction in (0, 1):
            rc, err, got = run(cap, *oob_args("secret", "XY", direction, "QueueLimit=64"),
                               *inline_args("XY", "[x-y]", direction, driver=second))
            check_run("stacked %s Direction=%d: oob secret->XY, then inline XY->[x-y]"
                      % (short, direction), bases[cap], got, rc, err,
                      [("secret", "XY"), ("XY", "[x-y]")], direction)
            rc, err, got = run(cap, *oob_args("XY", "[x-y]", direction),
                               *inline_args("secret", "XY", direction, "SublayerWeight=0x300",
                                            driver=second))
            check_run("stacked %s Direction=%d: inline secret->XY (weight 0x300), then oob "
                      "XY->[x-y]" % (short, direction), bases[cap], got, rc, err,
                      [("secret", "XY"), ("XY", "[x-y]")], direction)
            rc, err, got = run(cap, *oob_args("XY", "[x-y]", direction, "SublayerWeight=0x80"),
                               *inline_args("secret", "XY", direction, driver=second))
            check_run("stacked %s Direction=%d: inline secret->XY, then oob XY->[x-y] "
                      "(weight 0x80)" % (short, direction), bases[cap], got, rc, err,
                      [("secret", "XY"), ("XY", "[x-y]")], direction)

    # Parameters.
    for params, message in [(["Mode=bogus"], "Mode must be"), (["Mode=1"], "Mode must be"),
                            (["Mode=oob", "QueueLimit=0"], "QueueLimit must be"),
                            (["Mode=oob", "SublayerWeight=0x10000"], "SublayerWeight must be")]:
        rc, _, err = R.replay(OPENWFP, "--quiet", *R.driver_args(STREAM_EDIT, "Find=x", *params),
                              SAMPLE)
        check("stream_edit %s: DriverEntry fails, exit 2" % " ".join(params),
              rc == 2 and message in err and "DriverEntry failed" in err, err)
    rc, err, _ = run(SAMPLE, *oob_args("a", "b", 0), *oob_args("c", "d", 0, driver=second))
    check("two out-of-band instances: the second is refused (its keys exist), exit 2",
          rc == 2 and "DriverEntry failed" in err and "leak" not in err, err)


with tempfile.TemporaryDirectory(prefix="replay_stream_edit_oob.") as tmp:
    main(tmp)
sys.exit(R.finish())
