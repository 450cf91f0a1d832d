#!/usr/bin/env python3
"""drivers/tls_sni_block through `openwfp replay --driver`: connections whose
ClientHello names a blocked server are dropped before any byte of the hello
reaches the server, the others are let go (offloaded); hellos split across
segments and TLS records, server-first protocols, non-TLS streams, malformed,
oversized and truncated hellos behave as its README says, with FailClosed=0
and 1. Captures: TLS ones of the corpus (real SNI) and one written here with
scapy. The reasons for allowed connections come from the driver's WPP
traces (OPENWFP_WPP_DBGPRINT=1). Every run uses --strict, so a leak or an
IRQL finding fails it.

usage: replay_tls_sni_block.py OPENWFP CORPUS_DIR TLS_SNI_BLOCK.so
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_lib as R  # noqa: E402
from replay_lib import SAMPLE, check  # noqa: E402

OPENWFP, CORPUS, DRIVER = sys.argv[1:4]
PCAP = os.path.join(CORPUS, "pcap", "suricata-verify")
TCP_OPT = os.path.join(PCAP, "tcp-empty-sack", "tcp-opt.pcap")           # p49-buy.itunes.apple.com
RETRANSMITTED = os.path.join(PCAP, "bug-5881-01", "input.pcap")          # musicstatus.itunes.apple.com
IPV6 = os.path.join(PCAP, "community-id-ipv6", "input.pcap")             # dns.google, ipv6.google.com


def replay(capture, *params, traces=False):
    env = dict(os.environ)
    if traces:
        env["OPENWFP_WPP_DBGPRINT"] = "1"
    else:
        env.pop("OPENWFP_WPP_DBGPRINT", None)
    rc, out, err = R.replay(OPENWFP, "--json", "--strict", *R.driver_args(DRIVER, *params), capture,
                            env=env)
    return rc, R.conns(out), err


DROPPED = re.compile(r"^\[tls_sni_block\] TlsSniBlock: port (\d+) -> \d+: dropped: (.*)$", re.M)
ALLOWED = re.compile(r"^\[tls_sni_block\] TRACE_STREAM TsbDecide: port (\d+) -> \d+: allowed: (.*)$",
                     re.M)


def reasons(err):
    got = {}
    for m in DROPPED.finditer(err):
        got[int(m.group(1))] = ("dropped", m.group(2))
    for m in ALLOWED.finditer(err):
        got[int(m.group(1))] = ("allowed", m.group(2))
    return got


CAPTURE = r'''
import struct, sys
from scapy.all import IP, IPv6, TCP, Ether, wrpcap

def ext(kind, body):
    return struct.pack(">HH", kind, len(body)) + body

def sni(name):
    n = name.encode()
    entry = struct.pack(">BH", 0, len(n)) + n
    return ext(0, struct.pack(">H", len(entry)) + entry)

def hello(name=None, pad=0, pad_first=False, suites=b"\x13\x01\x13\x02", twice=False):
    body = b"\x03\x03" + bytes(range(32)) + b"\x20" + bytes(range(32, 64))
    body += struct.pack(">H", len(suites)) + suites + b"\x01\x00"
    exts = ext(43, b"\x02\x03\x04")
    named = (sni(name) if name is not None else b"") * (2 if twice else 1)
    padding = ext(21, bytes(pad)) if pad else b""
    exts = padding + exts + named if pad_first else named + exts + padding
    body += struct.pack(">H", len(exts)) + exts
    return b"\x01" + len(body).to_bytes(3, "big") + body

def records(hs, sizes=()):
    """hs in handshake records of the given payload sizes (the rest in one)."""
    out, at = b"", 0
    for n in list(sizes) + [len(hs)]:
        part = hs[at:at + n]
        if not part:
            break
        out += b"\x16\x03\x01" + struct.pack(">H", len(part)) + part
        at += len(part)
    return out

def cut(data, sizes=(), mss=1400):
    """data as segments of the given sizes, then of at most mss bytes."""
    out, at = [], 0
    for n in sizes:
        out.append(data[at:at + n]); at += n
    while at < len(data):
        out.append(data[at:at + mss]); at += mss
    return out

pkts = []
def conn(sport, chunks, v6=False, server_first=b"", fin=True):
    c, s = ("fd00::1", "fd00::2") if v6 else ("10.0.0.1", "10.0.0.2")
    L3 = IPv6 if v6 else IP
    E = lambda: Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    C = lambda **k: E()/L3(src=c, dst=s)/TCP(sport=sport, dport=443, **k)
    S = lambda **k: E()/L3(src=s, dst=c)/TCP(sport=443, dport=sport, **k)
    cseq, sseq = 1000, 5000
    pkts.append(C(flags="S", seq=cseq))
    pkts.append(S(flags="SA", seq=sseq, ack=cseq + 1))
    cseq += 1; sseq += 1
    pkts.append(C(flags="A", seq=cseq, ack=sseq))
    if server_first:
        pkts.append(S(flags="PA", seq=sseq, ack=cseq)/server_first); sseq += len(server_first)
    for ch in chunks:
        pkts.append(C(flags="PA", seq=cseq, ack=sseq)/ch); cseq += len(ch)
        pkts.append(S(flags="A", seq=sseq, ack=cseq))
    if not fin:
        return
    reply = b"\x16\x03\x03\x00\x04\x02\x00\x00\x00"
    pkts.append(S(flags="PA", seq=sseq, ack=cseq)/reply); sseq += len(reply)
    pkts.append(C(flags="FA", seq=cseq, ack=sseq))
    pkts.append(S(flags="FA", seq=sseq, ack=cseq + 1))
    pkts.append(C(flags="A", seq=cseq + 1, ack=sseq + 1))

h = records(hello("blocked.example"))
conn(40001, cut(h, (3, 57)))                                   # record header split
conn(40002, cut(records(hello("www.example.org"))))
conn(40003, cut(records(hello("example.org"))))
conn(40004, cut(records(hello("notexample.org")), (1, 10)))
hs = hello("allowed.test")
conn(40005, cut(records(hs, (20, 30)), (10, 15, 20, 25)))      # 3 records in 5 segments
conn(40006, cut(records(hello("BLOCKED.Example."))))
conn(40007, cut(records(hello("upper.example.net"))))
conn(40008, [b"GET / HTTP/1.1\r\nHost: blocked.example\r\n\r\n"])
conn(40009, cut(records(hello(None))))
conn(40010, cut(records(hello("allowed.test", suites=b"\x13\x01\x13"))))
conn(40011, cut(records(hello("allowed.test", twice=True))))
h = records(hello("allowed.test"))
conn(40012, cut(h[:len(h) // 2]))                              # FIN inside the hello
conn(40013, cut(records(hello("allowed.test", pad=20000), (16000,))))
conn(40014, cut(records(hello("blocked.example", pad=20000), (16000,))))
conn(40015, cut(records(hello("blocked.example"))), server_first=b"220 ready\r\n")
conn(40016, [b"\x17\x03\x03\x00\x05hello"])
hs = hello("blocked.example")
at = hs.index(b"blocked") + 3                                  # the name straddles two records
conn(40017, cut(records(hs, (at,)), (at + 5, 4)))
conn(40019, [b"\x16\x03\x01\x40\x01" + hello("allowed.test")])
conn(40020, cut(records(hello("ok.test")), (1,) * 12))
conn(40021, cut(records(hello("blocked.example", pad=20000, pad_first=True), (16000,))))
conn(40101, cut(records(hello("blocked.example"))), v6=True)
conn(40102, cut(records(hello("allowed.test"))), v6=True)
h = records(hello("blocked.example"))
conn(40018, cut(h[:40]), fin=False)                            # the capture ends in the hello
wrpcap(sys.argv[1], pkts)
'''

BLOCKED = "blocked.example,.example.org; Upper.Example.NET"
NAME = "server name is blocked"
# port: (FailClosed=0, FailClosed=1, reason)
WANT = {
    40001: ("dropped", "dropped", NAME + " (blocked.example)"),
    40002: ("dropped", "dropped", NAME + " (www.example.org)"),
    40003: ("dropped", "dropped", NAME + " (example.org)"),
    40004: ("offloaded", "offloaded", "server name not blocked (notexample.org)"),
    40005: ("offloaded", "offloaded", "server name not blocked (allowed.test)"),
    40006: ("dropped", "dropped", NAME + " (blocked.example)"),
    40007: ("dropped", "dropped", NAME + " (upper.example.net)"),
    40008: ("offloaded", "offloaded", "not TLS"),
    40009: ("offloaded", "offloaded", "ClientHello without server name"),
    40010: ("offloaded", "dropped", "malformed ClientHello"),
    40011: ("offloaded", "dropped", "malformed ClientHello"),
    40012: ("offloaded", "dropped", "stream ended inside the ClientHello"),
    40013: ("offloaded", "dropped", "ClientHello larger than MaxHelloBytes"),
    40014: ("dropped", "dropped", NAME + " (blocked.example)"),
    40015: ("dropped", "dropped", NAME + " (blocked.example)"),
    40016: ("offloaded", "offloaded", "not TLS"),
    40017: ("dropped", "dropped", NAME + " (blocked.example)"),
    40019: ("offloaded", "dropped", "malformed ClientHello"),
    40020: ("offloaded", "offloaded", "server name not blocked (ok.test)"),
    40021: ("offloaded", "dropped", "ClientHello larger than MaxHelloBytes"),
    40101: ("dropped", "dropped", NAME + " (blocked.example)"),
    40102: ("offloaded", "offloaded", "server name not blocked (allowed.test)"),
}
STALLED = 40018


def test_generated(tmp):
    capture = os.path.join(tmp, "tls.pcap")
    why = R.scapy_capture(capture, CAPTURE)
    if why is not None:
        print("skip tls_sni_block generated capture: cannot write it with scapy: %s" % why)
        return
    for fail_closed in (0, 1):
        label = "FailClosed=%d" % fail_closed
        rc, conns, err = replay(capture, "BlockedNames=" + BLOCKED, "FailClosed=%d" % fail_closed,
                                traces=True)
        check("generated %s: exit 0 under --strict, nothing left behind" % label,
              rc == 0 and "leak" not in err, err)
        by_port = {c["local_port"]: c for c in conns}
        verdicts = {port: c["verdict"] for port, c in by_port.items() if port != STALLED}
        want = {port: w[fail_closed] for port, w in WANT.items()}
        check("generated %s: verdict per connection" % label, verdicts == want,
              "\n".join("%d: got %s, want %s" % (p, verdicts.get(p), want.get(p))
                        for p in sorted(set(verdicts) | set(want))
                        if verdicts.get(p) != want.get(p)))
        why = reasons(err)
        bad = ["%d: %s, want %s" % (port, why.get(port), w[2]) for port, w in sorted(WANT.items())
               if why.get(port) != ("dropped" if w[fail_closed] == "dropped" else "allowed", w[2])]
        check("generated %s: the driver's reason per connection" % label, not bad, "\n".join(bad))
        leaked = [port for port, c in by_port.items()
                  if c["verdict"] == "dropped" and c["send"]["permitted"] != 0]
        check("generated %s: no byte of a dropped connection's hello reached the server" % label,
              not leaked, leaked)
        short = [port for port, c in by_port.items()
                 if c["verdict"] == "offloaded" and (c["send"]["permitted"] != c["send"]["seen"]
                                                     or c["recv"]["permitted"] != c["recv"]["seen"])]
        check("generated %s: offloaded connections passed whole" % label, not short, short)
        s = by_port.get(STALLED)
        check("generated %s: a hello the capture cuts off is held, never let through" % label,
              s is not None and s["verdict"] == "permitted" and s["send"]["seen"] == 40
              and s["send"]["permitted"] == 0 and STALLED not in why, s)
        holds = len(re.findall(r"TRACE_STREAM TsbStreamClassify: holding", err))
        check("generated %s: hellos split across segments were waited for (%d holds)"
              % (label, holds), holds >= 12, err)

    # Without traces nothing but the drops and the two summary lines is printed.
    rc, conns, err = replay(capture, "BlockedNames=" + BLOCKED)
    check("generated without OPENWFP_WPP_DBGPRINT: WPP traces are silent",
          rc == 0 and "TRACE_" not in err
          and len(DROPPED.findall(err)) == sum(w[0] == "dropped" for w in WANT.values()), err)


def test_corpus():
    runs = [
        ("tcp-opt.pcap, .apple.com", TCP_OPT, ".apple.com",
         {49506: ("dropped", NAME + " (p49-buy.itunes.apple.com)")}),
        ("tcp-opt.pcap, another name", TCP_OPT, "other.example",
         {49506: ("offloaded", "server name not blocked (p49-buy.itunes.apple.com)")}),
        ("bug-5881-01 (retransmitted client data)", RETRANSMITTED, "musicstatus.itunes.apple.com",
         {64731: ("dropped", NAME + " (musicstatus.itunes.apple.com)")}),
        ("community-id-ipv6", IPV6, "dns.google",
         {33892: ("dropped", NAME + " (dns.google)"),
          60202: ("offloaded", "server name not blocked (ipv6.google.com)")}),
    ]
    for label, capture, names, want in runs:
        if not os.path.exists(capture):
            print("skip tls_sni_block %s: no %s" % (label, capture))
            continue
        rc, conns, err = replay(capture, "BlockedNames=" + names, traces=True)
        check("corpus %s: exit 0 under --strict, nothing left behind" % label,
              rc == 0 and "leak" not in err, err)
        got = {c["local_port"]: c["verdict"] for c in conns}
        why = reasons(err)
        bad = []
        for port, (verdict, reason) in want.items():
            kind = "dropped" if verdict == "dropped" else "allowed"
            if got.get(port) != verdict or why.get(port) != (kind, reason):
                bad.append("%d: %s %s, want %s %s" % (port, got.get(port), why.get(port), verdict,
                                                      reason))
        check("corpus %s: verdicts and reasons" % label, not bad, "\n".join(bad) + "\n" + err)


def test_parameters():
    for params, message in (((), "no BlockedNames parameter"),
                            (("BlockedNames=*.example.com",), "bad entry '*.example.com'"),
                            (("BlockedNames= , ;",), "names no server name"),
                            (("BlockedNames=a.example", "MaxHelloBytes=100"), "MaxHelloBytes must be"),
                            (("BlockedNames=a.example", "FailClosed=yes"), "FailClosed must be a REG_DWORD")):
        rc, _, err = replay(SAMPLE, *params)
        check("parameters %s: DriverEntry fails (%s), nothing left behind" % (list(params), message),
              rc == 2 and message in err and "DriverEntry failed" in err and "leak" not in err, err)
    rc, conns, err = replay(SAMPLE, "BlockedNames=a.example", "MaxHelloBytes=512")
    check("parameters: the sample's HTTP connections are not TLS and are let go",
          rc == 0 and conns and all(c["verdict"] == "offloaded" for c in conns), err)


with tempfile.TemporaryDirectory(prefix="replay_tls_sni_block.") as tmp:
    test_generated(tmp)
test_corpus()
test_parameters()
sys.exit(R.finish())
