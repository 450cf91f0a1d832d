#!/usr/bin/env python3
"""Replays every capture of ../shared/corpus and checks openwfp's reassembly
against the corpus MANIFEST: per connection and direction the byte count of
the "derived" line, the SHA-256 prefix of clean streams, and the byte-exact
upstream stream dumps. Differences that follow from a documented policy are
listed in POLICY below, each with its reason (docs/semantics.md, "Replay").

usage: replay_corpus.py OPENWFP CORPUS_DIR
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

# (capture, endpoint sending the direction) -> (expected bytes, why ours differ)
POLICY = {
    # TSO / BIG TCP: the IP total length is 0; the frame holds the payload.
    # The MANIFEST's script trusted the length field (its "expected" line
    # gives the real payload size, which is what we count).
    ("pcap/tcpdump/bigtcp-ipv4.pcap", ("10.25.132.13", 35871)): (80000, "trust the frame"),
    ("pcap/tcpdump/ipv4_tcp_http_xml_tso.pcap", ("30.7.181.121", 39556)): (1976, "trust the frame"),
    # The server's RST|ACK (in window) ends the flow; the client's 150 bytes
    # captured after it are not indicated (the flow got its ABORT, spec S10).
    ("pcap/zeek/tcp/rst-inject-rae.pcap", ("1.2.0.2", 2527)): (25, "data after an accepted RST"),
}


# Captures libpcap stops reading early: a clear message and exit status 1,
# with what came before the error processed.
READ_ERRORS = {
    "pcap/debian-gopacket/pcapgo/tests/le/test005.pcapng":
        "libpcap 1.10 reads only one snapshot length per pcapng file",
}


def parse_manifest(path):
    """{capture path: [ {('ip', port): (bytes, sha256 prefix or None)}, ... ]}"""
    files, current = {}, None
    for line in open(path, encoding="utf-8"):
        m = re.match(r"#### `(pcap/[^`]+)`", line)
        if m:
            current = m.group(1)
            files[current] = []
            continue
        if current and line.startswith("* derived:"):
            for part in re.split(r";\s*(?=(?:IPv6 )?conn:)", line):
                m = re.search(r"conn: (.*)", part)
                if not m:
                    continue
                conn = {}
                for side in m.group(1).split(" | "):
                    sm = re.match(r"\s*(\S+):(\d+)→ (\d+) B(?: \(([^)]*)\))?", side)
                    if not sm:
                        continue
                    notes = sm.group(4) or ""
                    hm = re.search(r"sha256 ([0-9a-f]+)", notes)
                    conn[(sm.group(1), int(sm.group(2)))] = (int(sm.group(3)), hm.group(1) if hm else None)
                if conn:
                    files[current].append(conn)
    return files


def run(openwfp, capture, outdir):
    p = subprocess.run([openwfp, "replay", "--json", "--no-progress", "--write-streams", outdir, capture],
                       capture_output=True, text=True, timeout=120)
    conns = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{\"conn\"")]
    return p.returncode, conns, p.stderr


def stream_file(outdir, c, which):
    name = "%06d_%s_%d-%s_%d.%s" % (c["conn"], c["local"], c["local_port"], c["remote"], c["remote_port"], which)
    path = os.path.join(outdir, name)
    return open(path, "rb").read() if os.path.exists(path) else b""


def check_file(openwfp, corpus, rel, expected):
    errors = []
    with tempfile.TemporaryDirectory() as outdir:
        rc, conns, err = run(openwfp, os.path.join(corpus, rel), outdir)
        if rel in READ_ERRORS:
            if rc != 1 or "openwfp replay: " not in err:
                errors.append("expected a read error (%s), got exit %d" % (READ_ERRORS[rel], rc))
        elif rc != 0:
            errors.append("exit %d: %s" % (rc, err.strip()))
        for exp in expected:
            ends = set(exp)
            ours = [c for c in conns if {(c["local"], c["local_port"]), (c["remote"], c["remote_port"])} == ends
                    or (len(ends) == 1 and ends & {(c["local"], c["local_port"]), (c["remote"], c["remote_port"])})]
            for ep, (nbytes, sha) in exp.items():
                seen, data = 0, b""
                for c in ours:
                    which = "send" if (c["local"], c["local_port"]) == ep else "recv"
                    seen += c[which]["seen"]
                    data += stream_file(outdir, c, which)
                want = nbytes
                if (rel, ep) in POLICY:
                    want = POLICY[(rel, ep)][0]
                if seen != want:
                    errors.append("%s:%d -> %d bytes, MANIFEST %d" % (ep[0], ep[1], seen, nbytes))
                elif sha and not hashlib.sha256(data).hexdigest().startswith(sha) and (rel, ep) not in POLICY:
                    errors.append("%s:%d stream sha256 %s, MANIFEST %s" % (ep[0], ep[1], hashlib.sha256(data).hexdigest()[:16], sha))
    return errors


def check_golden(openwfp, corpus):
    """The upstream byte-exact server-to-client dump of lua-output-streaming."""
    rel = "pcap/suricata-verify/filestore-v2.1-forced/suricata-update-pdf.pcap"
    golden = os.path.join(corpus, "expected/suricata-verify/lua-output-streaming/expected/6-172.16.1.68-162.209.114.75-58384-80")
    if not os.path.exists(os.path.join(corpus, rel)):
        return ["missing " + rel]
    with tempfile.TemporaryDirectory() as outdir:
        _, conns, _ = run(openwfp, os.path.join(corpus, rel), outdir)
        for c in conns:
            if c["remote"] == "162.209.114.75" and c["remote_port"] == 80:
                if stream_file(outdir, c, "recv") == open(golden, "rb").read():
                    return []
                return ["lua-output-streaming: server stream differs from the upstream dump"]
    return ["lua-output-streaming: connection not found"]


def main():
    openwfp, corpus = sys.argv[1], sys.argv[2]
    manifest = parse_manifest(os.path.join(corpus, "MANIFEST.md"))
    failed = 0
    for rel, expected in sorted(manifest.items()):
        errors = check_file(openwfp, corpus, rel, expected)
        print("%s %s" % ("FAIL" if errors else "ok  ", rel))
        for e in errors:
            print("     " + e)
        failed += bool(errors)
    for e in check_golden(openwfp, corpus):
        print("FAIL " + e)
        failed += 1
    print("%d of %d captures differ" % (failed, len(manifest)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
