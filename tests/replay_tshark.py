#!/usr/bin/env python3
"""Cross-checks openwfp's reassembled streams against Wireshark's.

For every capture of ../shared/corpus/pcap: `openwfp replay --write-streams`
on one side, `tshark -z follow,tcp,raw,N` for every TCP stream N on the
other. Each direction (named by its sending endpoint; connections that share
endpoints are concatenated in order) must be byte-for-byte identical, unless
it is listed in EXPLAINED below. A listed direction must differ from tshark
in exactly the way its entry describes, checked against the capture itself,
and a listed direction that matches is an error too (the table is stale).

usage: replay_tshark.py OPENWFP CORPUS_DIR
Exit status 77 (skip) when tshark is not installed.
"""
import concurrent.futures
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

# What tshark writes where its stream has a hole it knows about.
MARKER = re.compile(rb"\[(\d+) bytes missing in capture file\]\x00")

SV = "pcap/suricata-verify/"
TLPW1 = SV + "tcp-rst-unacked-stream-10/TLPW1-tcp-174.56.47.59-10.3.11.101-tcp-80-49309.pcap"

GAP = ("gap", "holes acknowledged by the peer: tshark writes \"[N bytes missing in capture "
              "file]\" in their place; our file skips them (the callouts get a gap)")
UNACKED = ("unacked-hole", "a hole no ACK covers: tshark stops there for good; we skip it "
                           "when the connection ends (RST) and deliver the bytes after it")
RST_PAYLOAD = ("rst-payload", "tshark appends the RST's payload to the stream; a RST's "
                              "payload is never stream data for us")

# (capture, sending endpoint) -> (kind, reason[, parameter]).
EXPLAINED = {
    (SV + "eve-payload-05-tcp-data-gap/tcp-simple-gap2.pcap", ("1.1.1.1", 12345)): GAP,
    (SV + "eve-payload-06-tcp-data-leading-gap/tcp-leading-gap.pcap", ("1.1.1.1", 12345)): GAP,
    (SV + "dns-tcp-ts-gap/input.pcap", ("10.16.1.11", 46574)): GAP,
    (SV + "http-gap-simple/input.pcap", ("127.0.0.1", 8080)): GAP,
    (SV + "tcp-rst-unacked-stream-03-gap/input.pcap", ("2.2.2.2", 8080)): UNACKED,
    (SV + "tcp-rst-unacked-stream-07-http/input.pcap", ("1.1.1.1", 12345)): UNACKED,
    (TLPW1, ("174.56.47.59", 80)): UNACKED,
    (SV + "tcp-rst-unacked-stream-01-raw/input.pcap", ("1.1.1.1", 12345)): RST_PAYLOAD,
    (SV + "tcp-rst-unacked-stream-03-gap/input.pcap", ("1.1.1.1", 12345)): RST_PAYLOAD,
    (SV + "bug-6244-tcp-rst-with-data-02/tcp-rst-with-data.pcap", ("2.2.2.2", 8080)): RST_PAYLOAD,
    ("pcap/tcpdump/tcp_rst_data.pcap", ("199.204.31.89", 80)): RST_PAYLOAD,
    ("pcap/tcpdump/tcp_rst_data-trunc.pcap", ("199.204.31.89", 80)):
        ("rst-payload", "a lone RST|ACK whose payload the snapshot cut: tshark shows the "
                        "captured part as stream data; for us it is a stray RST, no stream"),
    ("pcap/zeek/tcp/rst-inject-rae.pcap", ("1.2.0.2", 2527)):
        ("after-rst", "the server's in-window RST|ACK (frame 7) ended the connection: "
                      "the client's bytes captured after it are not indicated (spec S10)", 7),
    ("pcap/tcpdump/bigtcp-ipv6.pcap", ("2604:1380:4091:ce00::b", 43267)):
        ("not-dissected", "BIG TCP over IPv6 (payload length 0, no jumbo option): tshark "
                          "calls the frame malformed and sees no TCP; we trust the frame"),
}

# libpcap stops reading these early (replay_corpus.py checks the message).
READ_ERRORS = {"pcap/debian-gopacket/pcapgo/tests/le/test005.pcapng"}


def endpoint(ip, port):
    return (str(ipaddress.ip_address(ip)), int(port))


def tshark(*args):
    p = subprocess.run(["tshark", "-n", "-r"] + list(args), capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        raise RuntimeError("tshark %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                       p.stderr.strip()))
    return p.stdout


# ---- tshark's view ---------------------------------------------------------

def tshark_segments(cap):
    """Every TCP segment: dicts with frame, stream, src/dst endpoints, flags,
    relative seq and captured payload, in capture order."""
    out = tshark(cap, "-T", "fields", "-E", "occurrence=l",
                 "-e", "frame.number", "-e", "tcp.stream",
                 "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
                 "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport",
                 "-e", "tcp.flags.syn", "-e", "tcp.flags.reset",
                 "-e", "tcp.seq", "-e", "tcp.payload")
    segs = []
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) < 12 or not f[1]:
            continue
        segs.append({
            "frame": int(f[0]), "stream": int(f[1]),
            "src": endpoint(f[2] or f[3], f[4]), "dst": endpoint(f[5] or f[6], f[7]),
            "syn": f[8] in ("1", "True"), "rst": f[9] in ("1", "True"),
            "seq": int(f[10] or 0), "payload": bytes.fromhex(f[11].replace(":", "")),
        })
    return segs


def tshark_follow(cap, streams):
    """{stream: {sending endpoint: bytes}} from one `follow,tcp,raw` per stream."""
    args = [cap, "-q"]
    for n in streams:
        args += ["-z", "follow,tcp,raw,%d" % n]
    out = tshark(*args)
    result = {}
    for block in out.split("=" * 67 + "\n"):
        m = re.search(r"Filter: tcp\.stream eq (\d+)\nNode 0: (.*)\nNode 1: (.*)\n", block)
        if not m:
            continue
        nodes = []
        for text in (m.group(2), m.group(3)):
            em = re.match(r"\[?(.*?)\]?:(\d+)$", text)
            nodes.append(endpoint(em.group(1), em.group(2)) if em and em.group(1) else None)
        data = {}
        for line in block[m.end():].splitlines():
            if line.strip():
                node = nodes[1 if line.startswith("\t") else 0]
                data[node] = data.get(node, b"") + bytes.fromhex(line.strip())
        result[int(m.group(1))] = data
    return result


def rst_payloads(cap):
    """{frame: payload} of RSTs that carry one (tshark's "reset cause")."""
    out = tshark(cap, "-Y", "tcp.flags.reset == 1 && tcp.len > 0", "-T", "json", "-x")
    found = {}
    for pkt in json.loads(out or "[]"):
        layers = pkt["_source"]["layers"]
        raw = layers["tcp"].get("tcp.reset_cause_raw")
        if raw:
            found[int(layers["frame"]["frame.number"])] = bytes.fromhex(raw[0])
    return found


def frames_raw(cap):
    """{frame: bytes} of frames tshark found no TCP in."""
    out = tshark(cap, "-Y", "!tcp", "-T", "json", "-x")
    return {int(p["_source"]["layers"]["frame"]["frame.number"]):
            bytes.fromhex(p["_source"]["layers"]["frame_raw"][0]) for p in json.loads(out or "[]")}


# ---- our view --------------------------------------------------------------

def replay(openwfp, cap, outdir):
    """(exit status, {sending endpoint: (bytes, gap bytes)}, {frozenset of endpoints})"""
    p = subprocess.run([openwfp, "replay", "--json", "--no-progress", "--write-streams", outdir,
                        cap], capture_output=True, text=True, timeout=120)
    streams, pairs = {}, set()
    for line in p.stdout.splitlines():
        if not line.startswith('{"conn"'):
            continue
        c = json.loads(line)
        local = endpoint(c["local"], c["local_port"])
        remote = endpoint(c["remote"], c["remote_port"])
        pairs.add(frozenset((local, remote)))
        for ep, which in ((local, "send"), (remote, "recv")):
            name = "%06d_%s_%d-%s_%d.%s" % (c["conn"], c["local"], c["local_port"], c["remote"],
                                            c["remote_port"], which)
            path = os.path.join(outdir, name)
            data = open(path, "rb").read() if os.path.exists(path) else b""
            old = streams.get(ep, (b"", 0))
            streams[ep] = (old[0] + data, old[1] + c[which]["gap_bytes"])
    return p.returncode, streams, pairs


# ---- the explained differences ---------------------------------------------

class Capture:
    """What the checks read of one capture; the slower tshark runs only
    when a check asks (tshark starts slowly)."""

    def __init__(self, cap, segs):
        self.cap, self.segs, self._rst = cap, segs, None

    @property
    def rst(self):
        if self._rst is None:
            self._rst = rst_payloads(self.cap)
        return self._rst


def runs_of(segs):
    """A direction's captured bytes, first copy wins, as contiguous runs
    [(first offset, bytes)] in stream order; RST payload excluded."""
    have = {}
    for s in segs:
        if s["rst"]:
            continue
        start = s["seq"] + (1 if s["syn"] else 0)
        for i, b in enumerate(s["payload"]):
            have.setdefault(start + i, b)
    runs = []
    for off in sorted(have):
        if runs and runs[-1][0] + len(runs[-1][1]) == off:
            runs[-1] = (runs[-1][0], runs[-1][1] + bytes([have[off]]))
        else:
            runs.append((off, bytes([have[off]])))
    return runs


def check_gap(ctx, ep, theirs, ours, gap_bytes):
    holes = [int(n) for n in MARKER.findall(theirs)]
    if not holes:
        return "no hole marker in tshark's stream"
    if MARKER.sub(b"", theirs) != ours:
        return "tshark's stream without its hole markers differs from ours"
    if sum(holes) != gap_bytes:
        return "tshark's holes total %d bytes, our gaps %d" % (sum(holes), gap_bytes)
    return None


def check_unacked(ctx, ep, theirs, ours, gap_bytes):
    streams = {s["stream"] for s in ctx.segs if s["src"] == ep}
    if len(streams) != 1:
        return "expected one tshark stream from %s, found %d" % (ep, len(streams))
    runs = runs_of([s for s in ctx.segs if s["src"] == ep])
    if len(runs) < 2:
        return "no hole in the captured bytes"
    if ours != b"".join(r[1] for r in runs):
        return "ours is not every captured byte in order with the holes skipped"
    holes = [b[0] - (a[0] + len(a[1])) for a, b in zip(runs, runs[1:])]
    if gap_bytes != sum(holes):
        return "our gaps total %d bytes, the holes %d" % (gap_bytes, sum(holes))
    for k in range(1, len(runs)):
        marked = runs[0][1] + b"".join(
            b"[%d bytes missing in capture file]\x00" % holes[i - 1] + runs[i][1]
            for i in range(1, k))
        if theirs == marked:
            return None
    return "tshark's stream is not the captured bytes up to a hole"


def check_rst_payload(ctx, ep, theirs, ours, gap_bytes):
    frames = {s["frame"] for s in ctx.segs if s["src"] == ep and s["rst"]}
    extra = b"".join(p for f, p in sorted(ctx.rst.items()) if f in frames)
    if not extra:
        return "no RST payload from %s" % (ep,)
    if theirs != ours + extra:
        return "tshark's stream is not ours followed by the RST payload"
    return None


def check_after_rst(ctx, ep, theirs, ours, gap_bytes, rst_frame):
    if not any(s["frame"] == rst_frame and s["rst"] for s in ctx.segs):
        return "frame %d is not a RST" % rst_frame
    late = b"".join(s["payload"] for s in ctx.segs
                    if s["src"] == ep and s["frame"] > rst_frame and not s["rst"])
    if not late:
        return "no data from %s after frame %d" % (ep, rst_frame)
    if theirs != ours + late:
        return "tshark's stream is not ours followed by the data after the RST"
    return None


def tcp_payload_v6(frame):
    """The TCP payload of an Ethernet + IPv6 + TCP frame, with its sender."""
    if len(frame) < 74 or frame[12:14] != b"\x86\xdd" or frame[20] != 6:
        return None, None
    tcp = frame[54:]
    sender = endpoint(str(ipaddress.IPv6Address(frame[22:38])), int.from_bytes(tcp[0:2], "big"))
    return sender, tcp[(tcp[12] >> 4) * 4:]


def check_not_dissected(ctx, ep, theirs, ours, gap_bytes):
    if theirs:
        return "tshark does see a stream from %s" % (ep,)
    payload = b""
    for _, frame in sorted(frames_raw(ctx.cap).items()):
        sender, data = tcp_payload_v6(frame)
        if sender == ep:
            payload += data
    if not payload or ours != payload:
        return "ours is not the payload after the TCP header of %s's frames" % (ep,)
    return None


CHECKS = {
    "gap": check_gap,
    "unacked-hole": check_unacked,
    "rst-payload": check_rst_payload,
    "after-rst": check_after_rst,
    "not-dissected": check_not_dissected,
}


# ---- one capture -------------------------------------------------------------

def compare(openwfp, corpus, rel):
    """[(endpoint, 'match' | kind, error or None)] and capture-level errors."""
    cap = os.path.join(corpus, rel)
    segs = tshark_segments(cap)
    pairs = {}
    for s in segs:
        pairs.setdefault(s["stream"], frozenset((s["src"], s["dst"])))
    follow = tshark_follow(cap, sorted(pairs)) if pairs else {}
    theirs = {}
    for n in sorted(pairs):
        for ep, data in follow.get(n, {}).items():
            theirs[ep] = theirs.get(ep, b"") + data
    with tempfile.TemporaryDirectory() as outdir:
        rc, ours, our_pairs = replay(openwfp, cap, outdir)
    errors = []
    if rc != 0 and not (rc == 1 and rel in READ_ERRORS):
        errors.append("openwfp exit %d" % rc)
    ctx = Capture(cap, segs)
    rows = []
    endpoints = {ep for pair in set(pairs.values()) | our_pairs for ep in pair}
    for ep in sorted(endpoints):
        t, (o, gaps) = theirs.get(ep, b""), ours.get(ep, (b"", 0))
        entry = EXPLAINED.get((rel, ep))
        if entry is None:
            if t != o:
                rows.append((ep, "DIFF", "tshark %d bytes, ours %d" % (len(t), len(o))))
            elif t:
                rows.append((ep, "match", None))
            continue
        if t == o:
            rows.append((ep, entry[0], "listed in EXPLAINED but matches byte for byte"))
            continue
        rows.append((ep, entry[0], CHECKS[entry[0]](ctx, ep, t, o, gaps, *entry[2:])))
    for (crel, ep) in EXPLAINED:
        if crel == rel and ep not in endpoints:
            errors.append("EXPLAINED names %s:%d, not in the capture" % ep)
    return rows, errors


def captures(corpus):
    root = os.path.join(corpus, "pcap")
    return sorted(os.path.relpath(os.path.join(d, f), corpus)
                  for d, _, files in os.walk(root) for f in files)


def main():
    if shutil.which("tshark") is None:
        print("tshark not found: skipped")
        return 77
    openwfp, corpus = sys.argv[1], sys.argv[2]
    rels = captures(corpus)
    failed, explained = 0, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(lambda rel: compare(openwfp, corpus, rel), rels))
    for rel, (rows, errors) in zip(rels, results):
        bad = errors + ["%s:%d %s: %s" % (ep[0], ep[1], kind, err) for ep, kind, err in rows if err]
        kinds = sorted({kind for _, kind, _ in rows if kind != "match"})
        status = "FAIL" if bad else ("expl" if kinds else "ok  ")
        print("%s %s%s" % (status, rel, " (%s)" % ", ".join(kinds) if kinds else ""))
        for b in bad:
            print("     " + b)
        failed += bool(bad)
        explained += [(rel, ep, EXPLAINED[(rel, ep)]) for ep, kind, err in rows
                      if not err and kind != "match"]
    print("\nexplained differences (checked):")
    for rel, ep, entry in explained:
        print("  %s  %s:%d  %s: %s" % (rel, ep[0], ep[1], entry[0], entry[1]))
    print("%d of %d captures fail" % (failed, len(rels)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
