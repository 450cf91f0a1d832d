#!/usr/bin/env python3
"""drivers/stream_edit through `openwfp replay --driver`: the streams it
leaves (--write-streams) against those of a run without a driver, with Find
replaced by Replace in the edited direction only. Every run uses --strict, so
a leak or an IRQL finding fails it.

usage: replay_stream_edit.py OPENWFP STREAM_EDIT.so
"""
import os
import shutil
import subprocess
import sys
import tempfile

OPENWFP, STREAM_EDIT = sys.argv[1:3]
HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "..", "data", "sample-http.pcap")
failures = []


def check(name, cond, detail=""):
    print("%s %s" % ("ok  " if cond else "FAIL", name))
    if not cond:
        failures.append(name)
        if detail:
            print("     " + detail.strip().replace("\n", "\n     "))


def streams(tmp, tag, capture, *args):
    d = os.path.join(tmp, tag)
    os.mkdir(d)
    p = subprocess.run([OPENWFP, "replay", "--quiet", *args, "--write-streams", d, capture],
                       capture_output=True, timeout=120)
    files = {}
    for f in os.listdir(d):
        with open(os.path.join(d, f), "rb") as fh:
            files[f] = fh.read()
    return p.returncode, p.stderr.decode(errors="replace"), files


def check_edit(tmp, label, capture, base, find, replace, direction, want_some=True):
    args = ["--strict", "--driver", STREAM_EDIT, "--driver-param", "Find=" + find,
            "--driver-param", "Replace=" + replace, "--driver-param", "Direction=%d" % direction]
    rc, err, got = streams(tmp, label, capture, *args)
    check("stream_edit %s: exit 0 under --strict" % label, rc == 0, err)
    check("stream_edit %s: nothing left behind" % label, "leak" not in err, err)
    check("stream_edit %s: the same stream files" % label, set(got) == set(base),
          "%s vs %s" % (sorted(got), sorted(base)))
    edited = ".send" if direction == 0 else ".recv"
    bad, hits = [], 0
    for f, data in sorted(base.items()):
        if f.endswith(edited):
            hits += data.count(find.encode())
            want = data.replace(find.encode(), replace.encode())
        else:
            want = data
        if got.get(f) != want:
            bad.append(f)
    check("stream_edit %s: %s streams edited (%d occurrences), the others unchanged"
          % (label, edited, hits), not bad and (hits > 0) == want_some, "differ: %s" % bad)


SPLIT_PCAP = r'''
import sys
from scapy.all import IP, TCP, Ether, wrpcap
pkts = []
def conn(sport, chunks, reply):
    c, s = "10.0.0.1", "10.0.0.2"
    E = lambda: Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    cseq, sseq = 1000, 5000
    pkts.append(E()/IP(src=c, dst=s)/TCP(sport=sport, dport=80, flags="S", seq=cseq))
    pkts.append(E()/IP(src=s, dst=c)/TCP(sport=80, dport=sport, flags="SA", seq=sseq, ack=cseq+1))
    cseq += 1; sseq += 1
    pkts.append(E()/IP(src=c, dst=s)/TCP(sport=sport, dport=80, flags="A", seq=cseq, ack=sseq))
    for ch in chunks:
        pkts.append(E()/IP(src=c, dst=s)/TCP(sport=sport, dport=80, flags="PA", seq=cseq, ack=sseq)/ch)
        cseq += len(ch)
        pkts.append(E()/IP(src=s, dst=c)/TCP(sport=80, dport=sport, flags="A", seq=sseq, ack=cseq))
    pkts.append(E()/IP(src=s, dst=c)/TCP(sport=80, dport=sport, flags="PA", seq=sseq, ack=cseq)/reply)
    sseq += len(reply)
    pkts.append(E()/IP(src=c, dst=s)/TCP(sport=sport, dport=80, flags="FA", seq=cseq, ack=sseq))
    pkts.append(E()/IP(src=s, dst=c)/TCP(sport=80, dport=sport, flags="FA", seq=sseq, ack=cseq+1))
    pkts.append(E()/IP(src=c, dst=s)/TCP(sport=sport, dport=80, flags="A", seq=cseq+1, ack=sseq+1))
conn(40001, [b"GET /sec", b"ret/secretsec", b"ret HTTP/1.0\r\n\r\n"], b"HTTP/1.0 200 OK\r\n\r\nsecret")
conn(40002, [b"GET /sec", b"tor HTTP/1.0\r\n\r\n"], b"HTTP/1.0 200 OK\r\n\r\nclean")
conn(40003, [b"GET / HTTP/1.0\r\n\r\nsecre"], b"HTTP/1.0 200 OK\r\n\r\ns")
wrpcap(sys.argv[1], pkts)
'''


def main(tmp):
    rc, err, base = streams(tmp, "plain", SAMPLE)
    check("no driver: exit 0 with streams", rc == 0 and base, err)
    check_edit(tmp, "Direction=1 Replace=XY", SAMPLE, base, "secret", "XY", 1)
    check_edit(tmp, "Direction=0 Replace=XY", SAMPLE, base, "secret", "XY", 0)
    check_edit(tmp, "Direction=1 Replace= (delete)", SAMPLE, base, "secret", "", 1)
    check_edit(tmp, "Direction=0 longer Replace", SAMPLE, base, "secret", "[redacted!]", 0)

    split = os.path.join(tmp, "split.pcap")
    p = subprocess.run(["/usr/bin/python3", "-c", SPLIT_PCAP, split], capture_output=True, timeout=120)
    if p.returncode != 0:
        print("skip stream_edit split pattern: cannot write a capture with scapy: %s"
              % p.stderr.decode(errors="replace").strip().splitlines()[-1:])
    else:
        rc, err, sbase = streams(tmp, "split-plain", split)
        check("split no driver: exit 0", rc == 0 and sbase, err)
        check_edit(tmp, "split across segments", split, sbase, "secret", "XY", 0)

    p = subprocess.run([OPENWFP, "replay", "--quiet", "--driver", STREAM_EDIT, SAMPLE],
                       capture_output=True, timeout=120)
    err = p.stderr.decode(errors="replace")
    check("stream_edit without Find: DriverEntry fails, exit 2",
          p.returncode == 2 and "no Find parameter" in err and "DriverEntry failed" in err, err)
    p = subprocess.run([OPENWFP, "replay", "--quiet", "--driver", STREAM_EDIT, "--driver-param",
                        "Find=x", "--driver-param", "Direction=2", SAMPLE],
                       capture_output=True, timeout=120)
    err = p.stderr.decode(errors="replace")
    check("stream_edit Direction=2: DriverEntry fails, exit 2",
          p.returncode == 2 and "Direction must be" in err, err)


tmp = tempfile.mkdtemp(prefix="replay_stream_edit.")
try:
    main(tmp)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
