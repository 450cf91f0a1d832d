#!/usr/bin/env python3
"""The example callout drivers of drivers/ through `openwfp replay --driver`:
flow_monitor's per-flow byte counts against the replay's own per-connection
counts, content_block's drops against the streams that contain the pattern
(also split across segments) and its ALLOW_CONNECTION offload. Every run
uses --strict, so a leak or an IRQL finding fails it.

usage: replay_examples.py OPENWFP CORPUS_DIR FLOW_MONITOR.so CONTENT_BLOCK.so
"""
import functools
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_lib as R  # noqa: E402
from replay_lib import SAMPLE, check, conns  # noqa: E402

OPENWFP, CORPUS, FLOW_MONITOR, CONTENT_BLOCK = sys.argv[1:5]
HTTP = os.path.join(CORPUS, "pcap", "debian-python3-dpkt/examples/data/http.pcap")
replay = functools.partial(R.replay, OPENWFP)


def endpoint(addr, port):
    return ("[%s]:%d" if ":" in addr else "%s:%d") % (addr, port)


FLOW = re.compile(r"^\[flow_monitor\] FlowMonitor: flow ipv(\d) (\S+) (->|<-) (\S+) sent=(\d+) "
                  r"received=(\d+) printable=(\d+)/(\d+)$", re.M)
SUMMARY = re.compile(r"^\[flow_monitor\] FlowMonitor: unloaded: (\d+) flows, (\d+) bytes sent, "
                     r"(\d+) bytes received, 0 contexts not associated$", re.M)


def test_flow_monitor():
    for capture in (HTTP, SAMPLE):
        name = os.path.basename(capture)
        rc, out, err = replay("--json", "--strict", "--driver", FLOW_MONITOR, capture)
        check("flow_monitor %s: exit 0 under --strict" % name, rc == 0, err)
        cs = conns(out)
        lines = {(m.group(2), m.group(4)): m for m in FLOW.finditer(err)}
        check("flow_monitor %s: one flowDeleteFn line per connection (%d)" % (name, len(cs)),
              len(cs) > 0 and len(FLOW.findall(err)) == len(cs) == len(lines), err)
        for c in cs:
            key = (endpoint(c["local"], c["local_port"]), endpoint(c["remote"], c["remote_port"]))
            m = lines.get(key)
            check("flow_monitor %s conn %d: sent/received equal the replay's seen bytes"
                  % (name, c["conn"]),
                  m is not None and int(m.group(5)) == c["send"]["seen"]
                  and int(m.group(6)) == c["recv"]["seen"]
                  and int(m.group(1)) == c["ip"]
                  and m.group(3) == ("->" if c["direction"] == "outbound" else "<-")
                  and int(m.group(7)) <= int(m.group(8)),
                  "%s: %s" % (key, m.group(0) if m else "no line"))
        t = R.totals(out)
        m = SUMMARY.search(err)
        check("flow_monitor %s: the unload summary matches the totals" % name,
              m is not None and t is not None and int(m.group(1)) == len(cs)
              and int(m.group(2)) == t["send"]["seen"] and int(m.group(3)) == t["recv"]["seen"],
              err)
        check("flow_monitor %s: nothing left behind" % name, "leak" not in err, err)
    rc, out, err = replay("--quiet", "--strict", "--driver", FLOW_MONITOR, "--driver-param", "Verbose=0",
                          SAMPLE)
    check("flow_monitor Verbose=0: only the summary",
          rc == 0 and not FLOW.search(err) and SUMMARY.search(err) is not None, err)


DROP = re.compile(r"^\[content_block\] ContentBlock: dropping flow \d+: pattern in the (send|receive) "
                  r"stream at offset (\d+)( \(split across indications\))?$", re.M)


def streams_with(capture, pattern, tmp, tag=""):
    """Runs without a driver, writing the streams: (exit status, conn -> whether
    either direction contains pattern, conn -> whether the send one does)."""
    d = os.path.join(tmp, "streams-%s%s" % (tag, os.path.basename(capture)))
    rc, _, _, files = R.write_streams(OPENWFP, d, "--quiet", capture)
    found, in_send = {}, {}
    for f, data in files.items():
        n = int(f.split("_", 1)[0])
        hit = pattern in data
        found[n] = found.get(n, False) or hit
        if f.endswith(".send"):
            in_send[n] = hit
    return rc, found, in_send


def check_drops(label, capture, tmp, want_any_drop):
    rc0, has, _ = streams_with(capture, b"secret", tmp)
    rc, out, err = replay("--json", "--strict", "--driver", CONTENT_BLOCK, "--driver-param", "Pattern=secret",
                          capture)
    check("content_block %s: exit 0 under --strict" % label, rc == 0 and rc0 == 0, err)
    cs = conns(out)
    dropped = {c["conn"] for c in cs if c["verdict"] == "dropped"}
    want = {n for n, v in has.items() if v}
    check("content_block %s: exactly the connections containing the pattern are dropped (%s)"
          % (label, sorted(want)), len(cs) == len(has) and dropped == want and (bool(want) == want_any_drop),
          "dropped %s, streams with the pattern %s" % (sorted(dropped), sorted(want)))
    check("content_block %s: one DbgPrint line per drop" % label, len(DROP.findall(err)) == len(want), err)
    check("content_block %s: nothing left behind" % label, "leak" not in err, err)
    return cs, err


SPLIT_PCAP = R.SCAPY_HTTP_CONN + r'''
conn(40001, [b"GET /sec", b"ret HTTP/1.0\r\n\r\n"], b"HTTP/1.0 200 OK\r\n\r\nclean")
conn(40002, [b"GET /sec", b"tor HTTP/1.0\r\n\r\n"], b"HTTP/1.0 200 OK\r\n\r\nclean")
conn(40003, [b"GET / HTTP/1.0\r\n\r\n"], b"HTTP/1.0 200 OK\r\n\r\ns")
wrpcap(sys.argv[1], pkts)
'''


def test_content_block(tmp):
    check_drops("sample-http.pcap", SAMPLE, tmp, True)
    check_drops("http.pcap (no pattern)", HTTP, tmp, False)

    split = os.path.join(tmp, "split.pcap")
    why = R.scapy_capture(split, SPLIT_PCAP)
    if why is not None:
        print("skip content_block split pattern: cannot write a capture with scapy: %s" % why)
    else:
        cs, err = check_drops("pattern split across segments", split, tmp, True)
        byport = {c["local_port"]: c["verdict"] for c in cs}
        check("content_block split: the split connection is dropped, the near miss and the clean one not",
              byport == {40001: "dropped", 40002: "permitted", 40003: "permitted"}, str(byport))
        m = DROP.search(err)
        check("content_block split: the match began in the previous indication",
              m is not None and m.group(1) == "send" and m.group(2) == "5" and m.group(3), err)

    # AllowAfter=1: a connection is let go after its first clean indication.
    # The client speaks first, so where its request is clean the connection
    # is offloaded before the pattern in the response is seen; where the
    # request itself carries it, it is still dropped.
    _, has, in_send = streams_with(SAMPLE, b"secret", tmp, "allow")
    rc, out, err = replay("--json", "--strict", "--driver", CONTENT_BLOCK, "--driver-param", "Pattern=secret",
                          "--driver-param", "AllowAfter=1", SAMPLE)
    check("content_block AllowAfter=1: exit 0 under --strict", rc == 0, err)
    verdicts = {c["conn"]: c["verdict"] for c in conns(out)}
    want = {n: "dropped" if in_send.get(n) else "offloaded" for n in has}
    check("content_block AllowAfter=1: offloaded before the pattern is seen, unless the request has it",
          verdicts == want and "offloaded" in verdicts.values()
          and any(has[n] and v == "offloaded" for n, v in verdicts.items()),
          "%s, want %s" % (verdicts, want))
    check("content_block AllowAfter=1: a drop line for each drop only",
          len(DROP.findall(err)) == list(verdicts.values()).count("dropped"), err)
    check("content_block AllowAfter=1: nothing left behind", "leak" not in err, err)

    rc, out, err = replay("--quiet", "--driver", CONTENT_BLOCK, SAMPLE)
    check("content_block without Pattern: DriverEntry fails, exit 2",
          rc == 2 and "no Pattern parameter" in err and "DriverEntry failed" in err, err)


test_flow_monitor()
with tempfile.TemporaryDirectory(prefix="replay_examples.") as tmp:
    test_content_block(tmp)
sys.exit(R.finish())
