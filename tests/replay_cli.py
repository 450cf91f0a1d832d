#!/usr/bin/env python3
"""The `openwfp replay` command end to end: the bundled default, options,
standard input, and captures that are cut short or not captures at all.

usage: replay_cli.py OPENWFP CORPUS_DIR
"""
import functools
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_lib as R  # noqa: E402
from replay_lib import check, conns, totals  # noqa: E402

OPENWFP, CORPUS = sys.argv[1], sys.argv[2]
PCAP = os.path.join(CORPUS, "pcap")
OVERLAP = os.path.join(PCAP, "suricata-verify/eve-payload-01-tcp-exact-overlap/tcp-overlap.pcap")
HTTP = os.path.join(PCAP, "debian-python3-dpkt/examples/data/http.pcap")
replay = functools.partial(R.replay, OPENWFP)


def test_default_run():
    rc, out, err = replay("--json")
    cs = conns(out)
    check("default: exit 0", rc == 0, err)
    check("default: 7 connections, IPv4 and IPv6", len(cs) == 7 and {c["ip"] for c in cs} == {4, 6}, out)
    blocked = [c for c in cs if c["verdict"] == "blocked"]
    check("default: port 8023 blocked at ALE", len(blocked) == 1 and blocked[0]["remote_port"] == 8023
          and blocked[0]["send"]["permitted"] == 0, out)
    masked = sum(c["recv"]["injected"] + c["send"]["injected"] for c in cs)
    check("default: the mask callout injected", masked > 0 and masked % 6 == 0, out)
    with tempfile.TemporaryDirectory() as d:
        rc, out, err = replay("--write-streams", d)
        data = b"".join(open(os.path.join(d, f), "rb").read() for f in os.listdir(d))
        check("default: no 'secret' left in the streams", rc == 0 and b"secret" not in data and b"******" in data, err)


def test_stdin_equals_file():
    raw = open(HTTP, "rb").read()
    a = replay("--json", HTTP)
    b = replay("--json", "-", stdin=raw)
    check("stdin: same connections as the file", a[0] == 0 and b[0] == 0 and conns(a[1]) == conns(b[1]), a[2] + b[2])


def test_overlap_policies():
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        replay("--write-streams", d1, OVERLAP)
        replay("--write-streams", d2, "--overlap", "last", OVERLAP)
        first = [open(os.path.join(d1, f), "rb").read() for f in sorted(os.listdir(d1)) if f.endswith(".send")]
        last = [open(os.path.join(d2, f), "rb").read() for f in sorted(os.listdir(d2)) if f.endswith(".send")]
        check("--overlap first keeps GOOD", first == [b"GOOD"], repr(first))
        check("--overlap last takes EVIL", last == [b"EVIL"], repr(last))


def test_local_networks():
    rc, out, _ = replay("--json", "--local", "2.2.2.2/32", OVERLAP)
    c = conns(out)[0]
    check("--local: the responder becomes local", c["local"] == "2.2.2.2" and c["direction"] == "inbound"
          and c["recv"]["seen"] == 4, out)
    rc, out, _ = replay("--json", "--local", "2.2.0.0/16", "--local", "1.1.1.1", OVERLAP)
    check("--local: both local keeps the initiator", conns(out)[0]["local"] == "1.1.1.1", out)


def test_quiet_and_text():
    rc, out, _ = replay("--quiet", HTTP)
    check("--quiet: only the totals line", rc == 0 and out.startswith("totals ") and out.count("\n") == 1, out)
    rc, out, _ = replay(HTTP)
    check("text: key=value lines", rc == 0 and out.splitlines()[0].startswith("conn=1 "), out)


def test_truncated_capture():
    raw = open(HTTP, "rb").read()
    full = replay("--json", HTTP)
    with tempfile.TemporaryDirectory() as d:
        cut = os.path.join(d, "cut.pcap")
        open(cut, "wb").write(raw[: len(raw) * 2 // 3 + 7])
        rc, out, err = replay("--json", "--write-streams", os.path.join(d, "s"), cut)
        check("truncated: exit 1 with a message", rc == 1 and "openwfp replay:" in err and "cut.pcap" in err, err)
        t = totals(out)
        check("truncated: what came before is reported", 0 < t["packets"] < totals(full[1])["packets"]
              and len(conns(out)) >= 1, out)
        files = os.listdir(os.path.join(d, "s"))
        check("truncated: stream files written", len(files) >= 2 and any(
            os.path.getsize(os.path.join(d, "s", f)) for f in files), repr(files))


def test_not_a_capture():
    with tempfile.TemporaryDirectory() as d:
        junk = os.path.join(d, "junk.pcap")
        open(junk, "wb").write(b"this is not a capture file at all" * 10)
        rc, out, err = replay(junk)
        check("garbage: exit 1 with a message", rc == 1 and "junk.pcap" in err, err)
        empty = os.path.join(d, "empty.pcap")
        open(empty, "wb").close()
        rc, out, err = replay(empty)
        check("empty file: exit 1 with a message", rc == 1 and "empty.pcap" in err, err)
    rc, out, err = replay("/nonexistent/x.pcap", HTTP)
    check("missing file: exit 1, the other capture still replayed", rc == 1 and "x.pcap" in err
          and "connections=" in out and "connections=0" not in out, out + err)


def test_bad_options():
    for args in (["--overlap", "middle"], ["--flow-timeout", "abc"], ["--local", "300.1.1.1/8"],
                 ["--example", "nosuch"], ["--max-buffered", "-1"], ["--bogus"]):
        rc, out, err = replay(*args, HTTP)
        check("bad option %s: exit 2 with a message" % " ".join(args), rc == 2 and err.strip() != "", err)


for t in (test_default_run, test_stdin_equals_file, test_overlap_policies, test_local_networks,
          test_quiet_and_text, test_truncated_capture, test_not_a_capture, test_bad_options):
    t()
sys.exit(R.finish())
