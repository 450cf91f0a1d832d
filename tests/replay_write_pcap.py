#!/usr/bin/env python3
"""Checks `openwfp replay --write-pcap` with tshark: in the capture it
writes, every TCP stream tshark follows must be, byte for byte and in both
directions, what --write-streams wrote for the same connection; the clean
captures must come out without any tshark TCP analysis warning (no lost,
out-of-order or retransmitted segment, no duplicate ACK); a connection
blocked at ALE_FLOW_ESTABLISHED must end with a RST each way and carry no
payload; a masked word must be in no payload, its stars must be; a request
sent in IP fragments must come out whole. Connections without a flow
(strays, handshakes that never completed) must follow as in the input.
A capture that cannot be created or written must make the run fail.

usage: replay_write_pcap.py OPENWFP CORPUS_DIR
Exit status 77 (skipped) when tshark is not installed.
"""
import ipaddress
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                      "sample-http.pcap")

# Made by make_fragmented() below.
FRAGMENTED = "FRAGMENTED"

# (capture, replay options, clean: tshark finds nothing to flag in the output)
CASES = [
    ("SAMPLE", ["--example", "mask=secret"], True),
    ("SAMPLE", ["--example", "mask=secret", "--example", "block-port=8023"], False),
    # clean baselines
    ("pcap/suricata-verify/bug-3286-01-no-evasion/without_evasion.pcap", [], True),
    ("pcap/suricata-verify/lua-output-http/input.pcap", [], True),
    ("pcap/tcpdump/print-flags.pcap", [], True),
    ("pcap/tcpdump/ipv4_tcp_http_xml.pcap", [], True),
    ("pcap/debian-gopacket/pcap/test_ethernet.pcap", [], True),
    ("pcap/debian-gopacket/pcap/test_ethernet.pcap", ["--example", "mask=e"], True),
    # IPv6
    ("pcap/suricata-verify/community-id-ipv6/input.pcap", [], True),
    # VLAN, QinQ
    ("pcap/zeek/http-vlan-0.pcap", [], True),
    ("pcap/tcpdump/802.1ad_QinQ.pcap", [], True),
    ("pcap/suricata-verify/eve-payload-01-tcp-exact-overlap/tcp-overlap.pcap", [], False),
    ("pcap/suricata-verify/eve-payload-01-tcp-exact-overlap/tcp-overlap.pcap",
     ["--overlap", "last"], False),
    # gaps: the output carries what arrived, without holes (a duplicate ACK
    # of the original remains in the first two)
    ("pcap/suricata-verify/eve-payload-05-tcp-data-gap/tcp-simple-gap2.pcap", [], False),
    ("pcap/suricata-verify/eve-payload-06-tcp-data-leading-gap/tcp-leading-gap.pcap", [], False),
    ("pcap/suricata-verify/tcp-rst-unacked-stream-07-http/input.pcap", [], True),
    # RST
    ("pcap/suricata-verify/bug-6244-tcp-rst-with-data-02/tcp-rst-with-data.pcap", [], True),
    ("pcap/tcpdump/tcp_rst_data.pcap", [], True),
    ("pcap/zeek/tcp/syn-then-rst.pcap", [], True),
    # TCP Fast Open (data on the SYN)
    ("pcap/suricata-verify/tcp-fastopen-01/tfo.pcap", [], True),
    ("pcap/suricata-verify/tcp-fastopen-01/tfo.pcap", ["--overlap", "last"], True),
    ("pcap/suricata-verify/tcp-fastopen-07/tcp_fastopen_segmentation.pcap",
     ["--example", "mask=e"], True),
    # link types: Linux cooked, BSD loopback (IPv6), raw IP
    ("pcap/tcpdump/tcp-handshake-nano.pcap", [], True),
    ("pcap/suricata-verify/http-ipv6/input.pcap", [], False),  # a window update
    ("pcap/suricata-verify/http-gap-simple/input.pcap", [], False),
    ("pcap/zeek/tcp/payload-syn.pcap", [], True),
    # IPv4 fragments: a fragmented request and a fragmented ACK
    (FRAGMENTED, ["--example", "mask=secret"], True),
    # a real capture with retransmissions and reordering
    ("pcap/suricata-verify/filestore-v2.1-forced/suricata-update-pdf.pcap", [], True),
]

STREAM_FILE = re.compile(r"^(\d+)_(.+)_(\d+)-(.+)_(\d+)\.(send|recv)$")


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, ident, frag, payload):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, 6, 0,
                      ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed)
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:] + payload


def tcp(src, dst, sport, dport, seq, ack, flags, data=b""):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    pseudo = (ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed +
              struct.pack("!BBH", 0, 6, len(hdr) + len(data)))
    return hdr[:16] + struct.pack("!H", checksum(pseudo + hdr + data)) + hdr[18:] + data


def make_fragmented(path):
    """A connection whose request and one ACK travel in IPv4 fragments."""
    c, s, cp, sp = "10.1.0.1", "10.1.0.2", 40000, 80
    req = b"GET /secret HTTP/1.1\r\nHost: x\r\n" + b"A" * 2500 + b"\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\n\r\nno secret here"
    A, S, F, P = 0x10, 0x02, 0x01, 0x08
    segs = [  # (from client, seq, ack, flags, data, fragment size or 0)
        (True, 100, 0, S, b"", 0), (False, 500, 101, S | A, b"", 0),
        (True, 101, 501, A, b"", 0), (True, 101, 501, P | A, req, 1200),
        (False, 501, 101 + len(req), A, b"", 8), (False, 501, 101 + len(req), P | A, resp, 0),
        (True, 101 + len(req), 501 + len(resp), F | A, b"", 0),
        (False, 501 + len(resp), 102 + len(req), F | A, b"", 0),
        (True, 102 + len(req), 502 + len(resp), A, b"", 0),
    ]
    frames = []
    for ident, (client, seq, ack, flags, data, size) in enumerate(segs, 1):
        src, dst = (c, s) if client else (s, c)
        t = tcp(src, dst, cp if client else sp, sp if client else cp, seq, ack, flags, data)
        size = size or len(t)
        for off in range(0, len(t), size):
            more = 0x2000 if off + size < len(t) else 0
            frames.append(ipv4(src, dst, ident, more | off // 8, t[off:off + size]))
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))  # raw IP
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1000, i * 1000, len(fr), len(fr)) + fr)


def check_unfragmented(pcap):
    r = run(["tshark", "-r", pcap, "-Y", "ip.flags.mf == 1 || ip.frag_offset > 0"])
    if r.stdout.strip():
        raise AssertionError("IP fragments in the output:\n" + r.stdout)


def endpoint(addr, port):
    return (ipaddress.ip_address(addr.strip("[]")), int(port))


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def replay(openwfp, capture, options, workdir):
    """Runs the replay; returns (pcap path, streams dir)."""
    out = os.path.join(workdir, "out.pcap")
    streams = os.path.join(workdir, "streams")
    cmd = [openwfp, "replay", "--quiet", "--no-progress", "--write-pcap", out,
           "--write-streams", streams]
    r = run(cmd + options + [capture])
    if r.returncode != 0:
        raise AssertionError(f"openwfp exited {r.returncode}: {r.stderr.strip()}")
    return out, streams


def our_streams(streams):
    """{(endpoint, endpoint) in sorted order: [(id, {endpoint: bytes}), ...]} by id."""
    conns = {}
    for name in os.listdir(streams) if os.path.isdir(streams) else []:
        m = STREAM_FILE.match(name)
        if not m:
            raise AssertionError(f"unexpected stream file {name}")
        local, remote = endpoint(m.group(2), m.group(3)), endpoint(m.group(4), m.group(5))
        sender = local if m.group(6) == "send" else remote
        with open(os.path.join(streams, name), "rb") as f:
            data = f.read()
        c = conns.setdefault(int(m.group(1)), {"key": tuple(sorted((local, remote))), "data": {}})
        c["data"][sender] = data
    out = {}
    for cid in sorted(conns):
        out.setdefault(conns[cid]["key"], []).append((cid, conns[cid]["data"]))
    return out


def number(values, name):
    return int(values.get(name) or 0)  # empty in frames tshark finds malformed


def frames(pcap):
    """One dict per TCP frame of `pcap`, as tshark dissects it."""
    fields = ["tcp.stream", "tcp.srcport", "tcp.dstport", "tcp.flags.reset", "tcp.len",
              "tcp.analysis.flags"]
    cmd = ["tshark", "-r", pcap, "-Y", "tcp", "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    r = run(cmd)
    if r.returncode != 0:
        raise AssertionError(f"tshark failed: {r.stderr.strip()}")
    out = []
    for line in r.stdout.splitlines():
        v = dict(zip(fields, line.split("\t")))
        out.append({"stream": number(v, "tcp.stream"), "sport": number(v, "tcp.srcport"),
                    "dport": number(v, "tcp.dstport"), "len": number(v, "tcp.len"),
                    "rst": v["tcp.flags.reset"] in ("1", "True"),
                    "flagged": bool(v.get("tcp.analysis.flags"))})
    return out


def parse_follow(text):
    """{stream index: (key, {endpoint: bytes})} from tshark's follow,tcp,raw output."""
    out = {}
    for block in text.split("Follow: tcp,raw")[1:]:
        idx = int(re.search(r"Filter: tcp.stream eq (\d+)", block).group(1))
        nodes = re.findall(r"Node (\d): (.*):(\d+)\n", block)
        if len(nodes) != 2 or not nodes[0][1]:
            continue
        ep = [endpoint(a, p) for _, a, p in nodes]
        data = {ep[0]: bytearray(), ep[1]: bytearray()}
        for line in block.splitlines():
            if re.fullmatch(r"\t?[0-9a-f]+", line):
                data[ep[1] if line.startswith("\t") else ep[0]] += bytes.fromhex(line.strip())
        out[idx] = (tuple(sorted(ep)), {k: bytes(v) for k, v in data.items()})
    return out


def followed_streams(pcap, n):
    """{key: [{endpoint: bytes}, ...]} in stream order, for streams 0..n-1."""
    if n == 0:
        return {}
    cmd = ["tshark", "-r", pcap, "-q"]
    for i in range(n):
        cmd += ["-z", f"follow,tcp,raw,{i}"]
    r = run(cmd)
    if r.returncode != 0:
        raise AssertionError(f"tshark follow failed: {r.stderr.strip()}")
    out = {}
    for idx, (key, data) in sorted(parse_follow(r.stdout).items()):
        out.setdefault(key, []).append(data)
    return out


def nonempty(data_list):
    return [d for d in data_list if any(d.values())]


def compare(key, want, got, what):
    want, got = nonempty(want), nonempty(got)
    if len(want) != len(got):
        raise AssertionError(f"{key}: {len(want)} connections with data in {what}, "
                             f"{len(got)} TCP streams with data in the output pcap")
    for w, g in zip(want, got):
        for ep in set(w) | set(g):
            a, b = w.get(ep, b""), g.get(ep, b"")
            if a != b:
                raise AssertionError(f"{key} from {ep}: {what} has {len(a)} bytes, the "
                                     f"output's stream {len(b)}, first difference at "
                                     f"{first_difference(a, b)}")


def stream_total(frame_list):
    return max((f["stream"] for f in frame_list), default=-1) + 1


def check_streams(capture, pcap, streams, frame_list):
    """Connections with a flow against their stream files; the others
    (strays, handshakes that never completed) against the input capture,
    whose frames they are copied from."""
    ours = our_streams(streams)
    theirs = followed_streams(pcap, stream_total(frame_list))
    for key in ours:
        compare(key, [d for _, d in ours[key]], theirs.get(key, []), "the stream files")
    others = set(theirs) - set(ours)
    if others:
        original = followed_streams(capture, stream_total(frames(capture)))
        for key in others:
            compare(key, original.get(key, []), theirs[key], "the input capture")
    return sum(len(nonempty([d for _, d in v])) for v in ours.values())


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def check_clean(frame_list):
    flagged = [i + 1 for i, f in enumerate(frame_list) if f["flagged"]]
    if flagged:
        raise AssertionError(f"tshark TCP analysis warnings on TCP frames {flagged[:10]}")


def check_blocked(frame_list, port):
    rows = [f for f in frame_list if port in (f["sport"], f["dport"])]
    if len(rows) < 2:
        raise AssertionError(f"port {port}: {len(rows)} frames")
    if any(f["len"] for f in rows):
        raise AssertionError(f"port {port}: the blocked connection carries payload")
    last = rows[-2:]
    if not all(f["rst"] for f in last) or last[0]["sport"] == last[1]["sport"]:
        raise AssertionError(f"port {port}: does not end with a RST each way")
    if any(f["rst"] for f in rows[:-2]):
        raise AssertionError(f"port {port}: RST before the end")


def payloads(pcap):
    r = run(["tshark", "-r", pcap, "-T", "fields", "-e", "tcp.payload"])
    return b"".join(bytes.fromhex(line.replace(":", "")) for line in r.stdout.split())


def check_masked(pcap, word):
    """No payload holds the word, all of them hold its stars; a word that
    cannot occur in headers by chance must not be anywhere in the file."""
    data = payloads(pcap)
    if word.encode() in data:
        raise AssertionError(f"{word!r} is in the output's payloads")
    if b"*" * len(word) not in data:
        raise AssertionError(f"no {'*' * len(word)!r} in the output's payloads")
    with open(pcap, "rb") as f:
        if len(word) >= 6 and word.encode() in f.read():
            raise AssertionError(f"{word!r} is in the output pcap")


def check_case(openwfp, corpus, capture, options, clean):
    path = SAMPLE if capture == "SAMPLE" else os.path.join(corpus, capture)
    with tempfile.TemporaryDirectory() as tmp:
        if capture == FRAGMENTED:
            path = os.path.join(tmp, "fragmented.pcap")
            make_fragmented(path)
        pcap, streams = replay(openwfp, path, options, tmp)
        frame_list = frames(pcap)
        n = check_streams(path, pcap, streams, frame_list)
        if clean:
            check_clean(frame_list)
        if capture == FRAGMENTED:
            check_unfragmented(pcap)
        for e in options:
            if e.startswith("mask="):
                check_masked(pcap, e[5:])
            if e.startswith("block-port="):
                check_blocked(frame_list, int(e[11:]))
        return n


def check_errors(openwfp):
    """A capture that cannot be created stops the run; one that cannot be
    written is said once and makes the exit status 2."""
    r = run([openwfp, "replay", "--quiet", "--no-progress", "--write-pcap",
             "/nonexistent-dir/out.pcap", SAMPLE])
    if r.returncode == 0 or "--write-pcap" not in r.stderr:
        raise AssertionError(f"uncreatable file: exit {r.returncode}, {r.stderr!r}")
    if os.path.exists("/dev/full"):
        r = run([openwfp, "replay", "--quiet", "--no-progress", "--write-pcap", "/dev/full",
                 SAMPLE])
        if r.returncode != 2 or r.stderr.count("--write-pcap") != 1:
            raise AssertionError(f"/dev/full: exit {r.returncode}, {r.stderr!r}")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    if not shutil.which("tshark"):
        print("tshark not found: skipped")
        return 77
    openwfp, corpus = sys.argv[1], sys.argv[2]
    failures = 0
    for capture, options, clean in CASES:
        label = " ".join([capture] + options)
        try:
            n = check_case(openwfp, corpus, capture, options, clean)
            print(f"ok   {label} ({n} connections with data)")
        except (AssertionError, OSError) as e:
            failures += 1
            print(f"FAIL {label}: {e}")
    try:
        check_errors(openwfp)
        print("ok   write errors")
    except AssertionError as e:
        failures += 1
        print(f"FAIL write errors: {e}")
    print(f"{len(CASES) + 1 - failures}/{len(CASES) + 1} passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
