#!/usr/bin/python3
"""Writes the seed inputs of fuzz/corpus/{decode,reasm,replay}/ (formats at
the top of fuzz/fuzz_decode.c, fuzz_reasm.c, fuzz_replay.c and
fuzz/fuzz_frames.h). Frames are built with scapy; a few replay and decode
seeds are frames taken from small captures of the shared corpus
(../shared/corpus/pcap), converted to the frame-record format and cut to a
few frames (skipped when the corpus is not there).

Usage: fuzz/gen_replay_corpus.py [OUTDIR]   (default: fuzz/corpus next to this file)
Old seed-* files of the three targets are replaced; regress-* inputs stay.
"""
import logging
import pathlib
import struct
import sys

from scapy.all import (IP, LLC, SNAP, TCP, UDP, CookedLinux, Dot1AD, Dot1Q, Ether, IPv6,
                       IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, Raw, RawPcapReader, raw)

logging.getLogger("scapy.runtime").setLevel(logging.ERROR) # Ether() without a route

HERE = pathlib.Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "corpus" / "pcap"

# fuzz_links[] of fuzz_frames.h
L_ETH, L_SLL, L_SLL2, L_RAW, L_RAW101, L_RAW14, L_IPV4, L_IPV6, L_NULL, L_LOOP, L_USER0 = range(11)
LINK_OF_DLT = {1: L_ETH, 113: L_SLL, 276: L_SLL2, 101: L_RAW101, 12: L_RAW, 14: L_RAW14,
               228: L_IPV4, 229: L_IPV6, 0: L_NULL, 108: L_LOOP}

A4, B4 = "10.0.0.1", "10.0.0.2"
A6, B6 = "2001:db8::1", "2001:db8::2"


# ---- frame records (fuzz_frames.h) --------------------------------------------------

def frame(data, wire=None, dt=1, flags=0):
    """One frame record: `wire` the length on the wire (None: as captured),
    `dt` the clock step in microseconds (negative: back), `flags` bits5-7."""
    data = bytes(data)
    n = len(data)
    assert n <= 0xFFFF
    f0 = flags << 5
    body = b""
    if n > 255:
        f0 |= 1
        body += struct.pack("<H", n)
    else:
        body += bytes([n])
    if wire is None or wire == n:
        pass
    elif n < wire <= n + 255:
        f0 |= 1 << 1
        body += bytes([wire - n])
    elif n < wire <= n + 0xFFFF:
        f0 |= 2 << 1
        body += struct.pack("<H", wire - n)
    else:
        f0 |= 3 << 1
        body += struct.pack("<H", min(wire, 0xFFFF))
    if dt == 1:
        pass
    elif 0 <= dt <= 0xFFFF:
        f0 |= 1 << 3
        body += struct.pack("<H", dt)
    elif dt > 0:
        f0 |= 2 << 3
        body += struct.pack("<H", min(dt // 1000, 0xFFFF))
    else:
        f0 |= 3 << 3
        body += struct.pack("<H", min(-dt, 0xFFFF))
    return bytes([f0]) + body + data


def frames(pkts, **kw):
    return b"".join(frame(p, **kw) for p in pkts)


# ---- link layers ------------------------------------------------------------------

def eth(l3, v6=False):
    return raw(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02",
                     type=0x86DD if v6 else 0x0800) / l3)


def sll(l3, v6=False):
    return raw(CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\1\0\0",
                           proto=0x86DD if v6 else 0x0800) / l3)


def sll2(l3, v6=False):
    hdr = struct.pack(">HHIHBB8s", 0x86DD if v6 else 0x0800, 0, 1, 1, 0, 6, b"\x02\0\0\0\0\1\0\0")
    return hdr + raw(l3)


def null(l3, v6=False, big=False):
    fam = 30 if v6 else 2
    return struct.pack(">I" if big else "<I", fam) + raw(l3)


def loop(l3, v6=False):
    return struct.pack(">I", 24 if v6 else 2) + raw(l3)


# ---- TCP conversations --------------------------------------------------------------

def ip(v6, src, dst):
    return IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst, id=1)


def conversation(v6=False, sport=40000, dport=80, c2s=(b"GET / HTTP/1.0\r\n\r\n",),
                 s2c=(b"HTTP/1.0 200 OK\r\n\r\nhello",), handshake=True, close="fin",
                 isn_c=1000, isn_s=5000):
    """The layer-3 packets of one connection."""
    a, b = (A6, B6) if v6 else (A4, B4)
    cs, ss = isn_c + 1, isn_s + 1
    out = []

    def seg(frm_client, flags, seq, ack, data=b""):
        src, dst = (a, b) if frm_client else (b, a)
        sp, dp = (sport, dport) if frm_client else (dport, sport)
        p = ip(v6, src, dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack, window=65535)
        return p / Raw(data) if data else p

    if handshake:
        out += [seg(True, "S", isn_c, 0), seg(False, "SA", isn_s, cs), seg(True, "A", cs, ss)]
    for i in range(max(len(c2s), len(s2c))):
        if i < len(c2s):
            out.append(seg(True, "PA", cs, ss, c2s[i]))
            cs += len(c2s[i])
            out.append(seg(False, "A", ss, cs))
        if i < len(s2c):
            out.append(seg(False, "PA", ss, cs, s2c[i]))
            ss += len(s2c[i])
            out.append(seg(True, "A", cs, ss))
    if close == "fin":
        out += [seg(True, "FA", cs, ss), seg(False, "FA", ss, cs + 1), seg(True, "A", cs + 1, ss + 1)]
    elif close == "rst":
        out.append(seg(False, "R", ss, 0))
    return out


def out_of_order(v6=False):
    """Client data in three segments, the middle one late, then a
    retransmission overlapping with other bytes (a conflict)."""
    a, b = (A6, B6) if v6 else (A4, B4)
    t = lambda flags, seq, ack, data=b"", c=True: (
        ip(v6, a if c else b, b if c else a)
        / TCP(sport=40001 if c else 80, dport=80 if c else 40001, flags=flags, seq=seq, ack=ack)
        / (Raw(data) if data else b""))
    return [t("S", 100, 0), t("SA", 900, 101, c=False), t("A", 101, 901),
            t("PA", 101, 901, b"AAAAAAAAAA"), t("PA", 121, 901, b"CCCCCCCCCC"),
            t("PA", 111, 901, b"BBBBBBBBBB"), t("PA", 105, 901, b"xxxxxxxxxxxxxxxx"),
            t("A", 901, 131, c=False), t("PA", 131, 901, b"tail"),
            t("PA", 901, 135, b"reply", c=False), t("FA", 135, 906), t("FA", 906, 136, c=False)]


def frag4(payload=b"F" * 64, mtu_data=24, order=None, dup=False):
    """An IPv4 TCP segment cut into fragments of `mtu_data` bytes."""
    pkt = IP(src=A4, dst=B4, id=77) / TCP(sport=40002, dport=80, flags="PA", seq=1, ack=1) / payload
    whole = raw(pkt)
    body = whole[20:]
    pieces = []
    for off in range(0, len(body), mtu_data):
        chunk = body[off:off + mtu_data]
        more = off + mtu_data < len(body)
        pieces.append(raw(IP(src=A4, dst=B4, id=77, proto=6, flags="MF" if more else 0,
                             frag=off // 8) / Raw(chunk)))
    if order:
        pieces = [pieces[i] for i in order]
    if dup:
        pieces.insert(1, pieces[0])
    return pieces


def frag6(payload=b"G" * 64, mtu_data=24, hop=False):
    """An IPv6 TCP segment cut into fragments (optionally behind hop-by-hop)."""
    tcp = raw(TCP(sport=40003, dport=80, flags="PA", seq=1, ack=1) / payload)
    out = []
    for off in range(0, len(tcp), mtu_data):
        chunk = tcp[off:off + mtu_data]
        more = off + mtu_data < len(tcp)
        p = IPv6(src=A6, dst=B6)
        if hop:
            p = p / IPv6ExtHdrHopByHop()
        p = p / IPv6ExtHdrFragment(nh=6, offset=off // 8, m=int(more), id=0x1234) / Raw(chunk)
        out.append(raw(p))
    return out


# ---- decode seeds --------------------------------------------------------------------

def dec(link, body, small=True, c1=0x3A, c2=0x20, expire=True):
    """c0 (link, limits, final expiry), c1, c2 then the frames."""
    return bytes([link | (0 if small else 0x10) | (0 if expire else 0x20), c1, c2]) + body


def decode_seeds():
    s = {}
    conv4 = conversation()
    conv6 = conversation(v6=True)
    s["eth_ipv4_conversation"] = dec(L_ETH, frames(eth(p) for p in conv4))
    s["eth_ipv6_conversation"] = dec(L_ETH, frames(eth(p, True) for p in conv6))
    s["sll_ipv4"] = dec(L_SLL, frames(sll(p) for p in conv4[:4]))
    s["sll2_ipv6"] = dec(L_SLL2, frames(sll2(p, True) for p in conv6[:4]))
    s["raw_mixed"] = dec(L_RAW, frames(raw(p) for p in conv4[:3] + conv6[:3]))
    s["raw101_and_14"] = dec(L_RAW101, frames([raw(conv4[3])])
                             + frame(raw(conv6[3]), flags=1) + bytes([L_RAW14])
                             + frame(raw(conv4[4])))
    s["ipv4_ipv6_links"] = dec(L_IPV4, frames(raw(p) for p in conv4[:2])
                               + frame(raw(conv6[0]), flags=1) + bytes([L_IPV6]))
    s["null_loop"] = dec(L_NULL, frame(null(conv4[3])) + frame(null(conv6[3], True, big=True))
                         + frame(loop(conv4[4]), flags=1) + bytes([L_LOOP])
                         + frame(loop(conv6[4], True)))
    seg = conv4[3]
    s["vlan_qinq_llc"] = dec(L_ETH, frames([
        raw(Ether(type=0x8100) / Dot1Q(vlan=5, type=0x0800) / seg),
        raw(Ether(type=0x88A8) / Dot1AD(vlan=7, type=0x8100) / Dot1Q(vlan=5, type=0x0800) / seg),
        raw(Ether(type=len(raw(seg)) + 8) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3)
            / SNAP(OUI=0, code=0x0800) / seg),
        raw(Ether(type=0x8100) / Dot1Q(vlan=1, type=0x8100) / Dot1Q(vlan=2, type=0x8100)
            / Dot1Q(vlan=3, type=0x8100) / Dot1Q(vlan=4, type=0x8100) / Dot1Q(vlan=5, type=0x8100)
            / Dot1Q(vlan=6, type=0x8100) / Dot1Q(vlan=7, type=0x8100) / Dot1Q(vlan=8, type=0x8100)
            / Dot1Q(vlan=9, type=0x0800) / seg),
    ]))
    data = eth(IP(src=A4, dst=B4) / TCP(sport=1, dport=2, flags="PA") / (b"d" * 200))
    s["snaplen_cut_and_tso"] = dec(L_ETH, frame(data[:80], wire=len(data)) + frame(data[:40], wire=len(data))
                                   + frame(eth(IP(src=A4, dst=B4, len=0) / TCP() / (b"t" * 100)), wire=3000)
                                   + frame(data, wire=70) + frame(data + b"\0" * 10))
    s["not_tcp_and_malformed"] = dec(L_ETH, frames([
        eth(IP(src=A4, dst=B4) / UDP(sport=1, dport=53) / b"q"),
        raw(Ether(type=0x0806) / (b"\0" * 28)),
        eth(IP(src=A4, dst=B4, ihl=4) / TCP()),
        eth(IP(src=A4, dst=B4, len=30) / TCP()),
        eth(IPv6(src=A6, dst=B6, nh=50) / b"esp"),
        eth(IP(src=A4, dst=B4) / TCP(dataofs=4)),
        eth(IP(src=A4, dst=B4) / TCP(dataofs=15)),
        eth(IPv6(src=A6, dst=B6) / IPv6ExtHdrHopByHop(len=20) / TCP()),
    ]))
    s["ipv4_fragments_in_order"] = dec(L_ETH, frames(eth(p) for p in frag4()))
    s["ipv4_fragments_reversed_dup"] = dec(L_ETH, frames(eth(p) for p in frag4(order=[3, 2, 1, 0], dup=True)))
    s["ipv6_fragments_hop"] = dec(L_ETH, frames(eth(p, True) for p in frag6(hop=True)))
    s["ipv6_fragments_atomic"] = dec(L_RAW, frames([raw(IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(nh=6)
                                                        / TCP(sport=5, dport=6) / b"atomic")]
                                              + frag6()[:1]))
    # Four datagrams with room for two: eviction; then a timeout jump.
    many = []
    for i in range(4):
        for p in frag4(payload=bytes([65 + i]) * 40, mtu_data=16)[:2]:
            q = IP(raw(p))
            q.id = 100 + i
            del q.chksum
            many.append(eth(q))
    s["fragment_eviction"] = dec(L_ETH, frames(many), c1=0x01 | 2 << 3)
    s["fragments_left_at_free"] = dec(L_ETH, frames(many), c1=0x07 | 7 << 3, expire=False)
    f4 = frag4()
    s["fragment_timeout"] = dec(L_ETH, frame(eth(f4[0])) + frame(eth(f4[1]), dt=2_000_000)
                                + frames(eth(p) for p in f4[2:]), c1=0xC0, c2=0x01)
    s["fragment_budget"] = dec(L_ETH, frames(eth(p) for p in frag4(payload=b"Z" * 300, mtu_data=8)),
                               c1=0x07 | 1 << 3)
    s["fragment_conflicts"] = dec(L_ETH, frames(eth(p) for p in [
        f4[0], raw(IP(src=A4, dst=B4, id=77, proto=6, frag=1) / Raw(b"x" * 10)),
        raw(IP(src=A4, dst=B4, id=77, proto=6, frag=5) / Raw(b"y" * 5)),
        raw(IP(src=A4, dst=B4, id=77, proto=6, frag=3) / Raw(b"z" * 16)),
        f4[1], f4[2], f4[3]]))
    s["unsupported_link"] = dec(L_USER0, frames(eth(p) for p in conv4[:2]), small=False)
    s.update(shared_decode_seeds())
    return s


# ---- reasm seeds ---------------------------------------------------------------------

SEG, FIN, ACK, FLUSH, RELEASE, INORDER, NEARHELD = 0, 2, 3, 4, 5, 6, 7
NEAR8, NEAR16, ABS, FAR = 0, 1, 2, 3
LEN1, PSH, URG = 0x20, 0x40, 0x80


def rs(h0=0, base=0, preload=0, ops=b""):
    return bytes([h0]) + struct.pack("<IH", base, preload) + ops


def seg(pos, length, c=0, mode=ABS, flags=0, code=SEG):
    op = code | mode << 3 | flags
    if mode == NEAR8:
        arg = struct.pack("b", pos)
    else:
        arg = struct.pack("<H", pos & 0xFFFF)
    if length < 256:
        return bytes([op | LEN1]) + arg + bytes([length, c])
    return bytes([op]) + arg + struct.pack("<H", length) + bytes([c])


def at(code, pos, mode=ABS):
    """A FIN or ACK at a position."""
    arg = struct.pack("b", pos) if mode == NEAR8 else struct.pack("<H", pos & 0xFFFF)
    return bytes([code | mode << 3]) + arg


def reasm_seeds():
    s = {}
    s["in_order_fin"] = rs(0, 1000, 0, seg(0, 100, flags=PSH) + seg(100, 50) + at(FIN, 150)
                           + bytes([FLUSH]))
    s["inorder_fastpath"] = rs(0, 7, 0, bytes([INORDER, 99, 0, INORDER | PSH, 10, 0]) + at(FIN, 111))
    s["hole_ack_late"] = rs(0, 0, 0, seg(0, 10) + seg(20, 10) + seg(40, 10) + at(ACK, 35)
                            + seg(10, 10) + seg(30, 10) + at(ACK, 60) + seg(50, 10, c=3)
                            + bytes([FLUSH]))
    for name, h0 in (("first", 0), ("last", 1)):
        s["overlap_" + name] = rs(h0, 0x1000, 0, seg(0, 8) + seg(16, 16) + seg(12, 16, c=5)
                                  + seg(20, 4, c=9) + seg(24, 30, c=2, code=NEARHELD, mode=NEAR8)
                                  + at(ACK, 40) + seg(8, 8, c=1) + at(ACK, 70) + bytes([FLUSH]))
    s["wrap"] = rs(0, 0xFFFFFFC0, 0, seg(0, 40) + seg(80, 40) + seg(40, 40) + at(FIN, 120)
                   + at(ACK, 121))
    s["wrap_last"] = rs(1, 0xFFFFFFF0, 0, seg(0, 40) + seg(10, 40, c=7) + at(ACK, 45)
                        + at(ACK, 50) + bytes([FLUSH]))
    s["cap_refusal"] = rs(1 << 2, 0, 0, seg(100, 40) + seg(200, 40) + seg(300, 8) + seg(0, 100)
                          + at(ACK, 400) + bytes([FLUSH]))
    s["budget_refusal"] = rs(2 << 5, 0, 500, seg(64, 70) + seg(200, 60) + seg(0, 64)
                             + bytes([FLUSH]))
    s["budget_exhausted"] = rs(7 << 5, 0, 1000, seg(10, 10) + seg(0, 10) + at(ACK, 30))
    s["last_cap_in_order"] = rs(1 | 1 << 2, 0, 0, seg(0, 20) + seg(20, 20) + seg(40, 20)
                                + seg(0, 30, c=4) + at(ACK, 10) + bytes([FLUSH]))
    s["last_budget"] = rs(1 | 3 << 5, 0, 100, seg(0, 100) + seg(100, 100) + seg(300, 50)
                          + at(ACK, 120) + at(ACK, 350))
    s["fin_cases"] = rs(0, 0, 0, seg(50, 20) + at(FIN, 60) + at(FIN, 61) + seg(0, 80)
                        + at(FIN, 60) + bytes([FLUSH]))
    s["fin_behind_and_far"] = rs(0, 0, 0, seg(0, 10) + at(FIN, -5 & 0xFFFF, NEAR16)
                                 + at(FIN, 3, FAR) + at(FIN, 20) + seg(15, 10) + at(ACK, 20))
    s["far_segments"] = rs(0, 0x7FFFFFF0, 0, seg(0, 10) + seg(5, 100, mode=FAR)
                           + seg(6, 100, mode=FAR) + seg(-20 & 0xFFFF, 30, mode=NEAR16)
                           + at(ACK, 9, FAR) + at(ACK, 8, FAR))
    s["release_midway"] = rs(0, 0, 0, seg(10, 10) + seg(30, 10) + bytes([RELEASE])
                             + seg(0, 10) + seg(10, 30) + bytes([FLUSH]))
    s["null_config"] = rs(2 | 1, 0, 0, seg(10, 10) + seg(5, 10, c=1) + seg(0, 30, c=2)
                          + bytes([FLUSH]))
    s["big_segments"] = rs(0, 0, 0, seg(5000, 4000) + seg(0, 3000) + seg(2000, 4000, c=6)
                           + at(ACK, 12000) + bytes([FLUSH]))
    s["fin_inside_piece"] = rs(0, 0, 0, seg(10, 30) + seg(60, 20) + at(FIN, 25) + seg(0, 12)
                               + bytes([FLUSH]))
    s["last_fin_inside_piece"] = rs(1, 0, 0, seg(0, 30) + seg(40, 20) + at(FIN, 45)
                                    + at(ACK, 10) + bytes([FLUSH]))
    s["skip_merge"] = rs(0, 0, 0, seg(100, 5) + at(ACK, 50) + at(ACK, 80) + at(ACK, 110)
                         + seg(10, 60) + seg(90, 20))
    return s


# ---- replay seeds --------------------------------------------------------------------

NOOP, CONTEXTS, ANSWERS, BLOCK_PORT, NONE = range(5)


def rp(link, mode, body, c1=0, c2=0, c3=0, raw_capture=False):
    c0 = link | mode << 4 | (0x80 if raw_capture else 0)
    return bytes([c0, c1, c2, c3]) + body


def pcap_bytes(pkts, linktype=101, ng=False):
    """A whole capture file of raw packets: classic pcap (little-endian,
    microseconds) or pcapng (one section, one interface, enhanced packet
    blocks with microsecond timestamps)."""
    stamps = [(1700000000 + t) * 1_000_000 + t * 1000 for t in range(len(pkts))]
    if not ng:
        out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
        for ts, p in zip(stamps, pkts):
            out += struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(p), len(p)) + p
        return out

    def block(kind, body):
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", kind, n) + body + struct.pack("<I", n)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", linktype, 0, 65535))
    for ts, p in zip(stamps, pkts):
        out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(p), len(p)) + p)
    return out


def replay_seeds():
    s = {}
    conv4 = [eth(p) for p in conversation()]
    conv6 = [sll(p, True) for p in conversation(v6=True, s2c=(b"x" * 300, b"y" * 40))]
    s["http4_noop"] = rp(L_ETH, NOOP, frames(conv4))
    s["http4_noop_write_pcap"] = rp(L_ETH, NOOP, frames(conv4), c2=4)
    s["http4_contexts_json"] = rp(L_ETH, CONTEXTS, frames(conv4), c2=1)
    s["http4_answers"] = rp(L_ETH, ANSWERS, frames(eth(p) for p in conversation(
        c2s=(b"a" * 50, b"b" * 70, b"c" * 20), s2c=(b"d" * 90, b"e" * 33))))
    s["http4_block_port"] = rp(L_ETH, BLOCK_PORT, frames(conv4))
    s["http4_no_callout"] = rp(L_ETH, NONE, frames(conv4))
    s["http6_sll_local"] = rp(L_SLL, CONTEXTS, frames(conv6), c1=2)
    s["rst_midstream"] = rp(L_RAW101, NOOP, frames(raw(p) for p in conversation(close="rst")), c2=4)
    s["midstream_pickup"] = rp(L_RAW, CONTEXTS, frames(raw(p) for p in conversation(handshake=False,
                                                                                    close="none")))
    s["out_of_order_last"] = rp(L_ETH, ANSWERS, frames(eth(p) for p in out_of_order()), c1=1, c2=4)
    s["out_of_order_caps"] = rp(L_ETH, NOOP, frames(eth(p, True) for p in out_of_order(True)),
                                c1=1 << 2 | 1 << 4)
    frag = conversation(c2s=(), s2c=(), close="none")
    s["fragmented_segment"] = rp(L_ETH, NOOP, frames(eth(p) for p in frag)
                                 + frames(eth(p) for p in frag4()))
    many = []
    for i in range(4):
        many += [eth(p) for p in conversation(sport=41000 + i, close="none",
                                              c2s=(bytes([97 + i]) * 10,), s2c=())]
    s["max_conns_eviction"] = rp(L_ETH, CONTEXTS, frames(many), c1=1 << 6)
    idle = [eth(p) for p in conversation(close="none")]
    udp = eth(IP(src=A4, dst="10.0.0.9") / UDP(sport=5, dport=53) / b"q")
    s["flow_timeout"] = rp(L_ETH, NOOP, frames(idle[:4]) + frame(udp, dt=5_000_000, flags=1)
                           + frames(idle[4:]), c3=10)
    s["raw_pcap"] = rp(0, NOOP, pcap_bytes([raw(p) for p in conversation()], linktype=101),
                       raw_capture=True)
    s["raw_pcapng"] = rp(0, CONTEXTS, pcap_bytes([raw(p) for p in conversation(v6=True)],
                                                 linktype=101, ng=True), raw_capture=True)
    s.update(shared_replay_seeds())
    return s


# ---- seeds from the shared corpus ---------------------------------------------------

# Small captures whose first frames exercise something the generated ones
# do not (real option layouts, QinQ, urgent data, overlap evasion).
SHARED_PICKS = [
    ("tcp_overlap", "suricata-verify/eve-payload-01-tcp-exact-overlap/tcp-overlap.pcap"),
    ("data_gap", "suricata-verify/eve-payload-05-tcp-data-gap/tcp-simple-gap2.pcap"),
    ("urgent", "suricata-verify/tcp-urgp-01-oob/tcp-urgent1.pcap"),
    ("windows_evasion", "suricata-verify/bug-3286-03-windows-evasion/with_evasion_windows.pcap"),
    ("qinq", "tcpdump/802.1ad_QinQ.pcap"),
    ("rst_data", "tcpdump/tcp_rst_data.pcap"),
    ("fin_retransmission", "zeek/tcp/fin_retransmission.pcap"),
    ("ipv6_bad_chksum", "zeek/chksums/ip6-tcp-bad-chksum.pcap"),
    ("tfo", "suricata-verify/tcp-fastopen-01/tfo.pcap"),
]
MAX_SHARED_FRAMES = 24
MAX_SHARED_CAPLEN = 600


def shared_frames(path):
    """(link index, frame records) of a capture's first frames, or None."""
    try:
        reader = RawPcapReader(str(path))
    except Exception:
        return None
    link = LINK_OF_DLT.get(reader.linktype)
    if link is None:
        return None
    out, last = [], None
    for i, (data, meta) in enumerate(reader):
        if i == MAX_SHARED_FRAMES:
            break
        ts = meta.sec * 1_000_000 + meta.usec
        dt = 1 if last is None else ts - last
        last = ts
        out.append(frame(data[:MAX_SHARED_CAPLEN], wire=meta.wirelen, dt=dt))
    reader.close()
    return link, b"".join(out)


def shared_seeds(make):
    s = {}
    if not SHARED.is_dir():
        return s
    for name, rel in SHARED_PICKS:
        got = shared_frames(SHARED / rel)
        if got:
            s["shared_" + name] = make(*got)
    return s


def shared_decode_seeds():
    return shared_seeds(lambda link, body: dec(link, body))


def shared_replay_seeds():
    return shared_seeds(lambda link, body: rp(link, NOOP, body, c1=1 if link == L_ETH else 0,
                                              c2=4))


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus"
    for name, seeds in (("decode", decode_seeds()), ("reasm", reasm_seeds()),
                        ("replay", replay_seeds())):
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        for k, v in seeds.items():
            (d / f"seed-{k}").write_bytes(v)
        total = sum(len(v) for v in seeds.values())
        print(f"{name}: {len(seeds)} seeds, {total} bytes in {d}")


if __name__ == "__main__":
    main()
