/*
 * The replay packet decoder (src/replay/decode.c, defrag.c): link layers,
 * VLAN and LLC/SNAP, IPv4 and IPv6 headers, fragment reassembly, length
 * rules (TSO, padding, snapshot cuts), malformed input, and real captures
 * from the shared corpus.
 *
 * Frames are built by hand with the small builders below; every length
 * field is filled from what was actually written unless a test overrides
 * it on purpose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ftw.h>
#include <pcap/pcap.h>

#include "replay/decode.h"

#define CORPUS OWFP_SOURCE_ROOT "/../shared/corpus/pcap/"
#define TS 1000000u

/* ---- frame builder ---- */

struct fb {
    uint8_t b[4096];
    uint32_t n;
};

static void put(struct fb *f, const void *p, size_t n)
{
    assert_true(f->n + n <= sizeof(f->b));
    memcpy(f->b + f->n, p, n);
    f->n += (uint32_t)n;
}

static void put8(struct fb *f, uint8_t v)
{
    put(f, &v, 1);
}

static void put16(struct fb *f, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(f, b, 2);
}

static void put32(struct fb *f, uint32_t v)
{
    put16(f, (uint16_t)(v >> 16));
    put16(f, (uint16_t)v);
}

static void putle32(struct fb *f, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(f, b, 4);
}

static void fill(struct fb *f, uint8_t v, size_t n)
{
    assert_true(f->n + n <= sizeof(f->b));
    memset(f->b + f->n, v, n);
    f->n += (uint32_t)n;
}

static void set16(struct fb *f, size_t at, uint16_t v)
{
    f->b[at] = (uint8_t)(v >> 8);
    f->b[at + 1] = (uint8_t)v;
}

static const uint8_t V4_SRC[4] = {10, 0, 0, 1};
static const uint8_t V4_DST[4] = {10, 0, 0, 2};
static const uint8_t V6_SRC[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t V6_DST[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

#define SPORT 1234
#define DPORT 80
#define ACK 0x01020304u
#define WINDOW 0x4000
#define URGENT 7

static void eth(struct fb *f, uint16_t type)
{
    static const uint8_t macs[12] = {0, 1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10};
    put(f, macs, sizeof(macs));
    put16(f, type);
}

static void vlan(struct fb *f, uint16_t tci, uint16_t inner)
{
    put16(f, tci);
    put16(f, inner);
}

/* An IPv4 header with `optlen` bytes of NOP options; its total length is
 * set by fix_ipv4(). Returns where it starts. */
static size_t ipv4(struct fb *f, uint8_t proto, uint16_t id, uint16_t frag, size_t optlen)
{
    size_t at = f->n;
    put8(f, (uint8_t)(0x40 | (20 + optlen) / 4));
    put8(f, 0);
    put16(f, 0);
    put16(f, id);
    put16(f, frag);
    put8(f, 64);
    put8(f, proto);
    put16(f, 0xdead); /* checksum: never verified */
    put(f, V4_SRC, 4);
    put(f, V4_DST, 4);
    fill(f, 1, optlen);
    return at;
}

static void fix_ipv4(struct fb *f, size_t at)
{
    set16(f, at + 2, (uint16_t)(f->n - at));
}

static size_t ipv6(struct fb *f, uint8_t nh)
{
    size_t at = f->n;
    put32(f, 0x60000000);
    put16(f, 0);
    put8(f, nh);
    put8(f, 64);
    put(f, V6_SRC, 16);
    put(f, V6_DST, 16);
    return at;
}

static void fix_ipv6(struct fb *f, size_t at)
{
    set16(f, at + 4, (uint16_t)(f->n - at - 40));
}

/* A TCP header with `optlen` bytes of NOP options, then `n` payload bytes. */
static void tcp_opt(struct fb *f, uint8_t flags, uint32_t seq, size_t optlen, const void *payload,
                    size_t n)
{
    put16(f, SPORT);
    put16(f, DPORT);
    put32(f, seq);
    put32(f, ACK);
    put8(f, (uint8_t)(((20 + optlen) / 4) << 4));
    put8(f, flags);
    put16(f, WINDOW);
    put16(f, 0xbeef);
    put16(f, URGENT);
    fill(f, 1, optlen);
    put(f, payload, n);
}

static void tcp(struct fb *f, const char *payload)
{
    tcp_opt(f, OWFP_TCP_ACK | OWFP_TCP_PSH, 1000, 0, payload, strlen(payload));
}

/* Ethernet + IPv4 + TCP carrying `payload`. */
static void v4_frame(struct fb *f, const char *payload)
{
    eth(f, 0x0800);
    size_t ip = ipv4(f, 6, 1, 0, 0);
    tcp(f, payload);
    fix_ipv4(f, ip);
}

static void v6_frame(struct fb *f, const char *payload)
{
    eth(f, 0x86DD);
    size_t ip = ipv6(f, 6);
    tcp(f, payload);
    fix_ipv6(f, ip);
}

/* A bare IPv4 or IPv6 packet with TCP (for raw and cooked link types). */
static void v4_packet(struct fb *f, const char *payload)
{
    size_t ip = ipv4(f, 6, 1, 0, 0);
    tcp(f, payload);
    fix_ipv4(f, ip);
}

static void v6_packet(struct fb *f, const char *payload)
{
    size_t ip = ipv6(f, 6);
    tcp(f, payload);
    fix_ipv6(f, ip);
}

/* ---- decoding helpers ---- */

static struct owfp_decoder *new_decoder(void)
{
    struct owfp_decoder *d = owfp_decoder_new(NULL);
    assert_non_null(d);
    return d;
}

static enum owfp_decode_result dec(struct owfp_decoder *d, int dlt, const struct fb *f,
                                   struct owfp_pkt *out)
{
    return owfp_decode(d, dlt, f->b, f->n, f->n, TS, out);
}

static enum owfp_decode_result dec_at(struct owfp_decoder *d, const struct fb *f, uint64_t ts,
                                      struct owfp_pkt *out)
{
    return owfp_decode(d, DLT_EN10MB, f->b, f->n, f->n, ts, out);
}

/* Decodes `f` with a fresh decoder and checks it gives TCP with `payload`. */
static void expect_tcp(int dlt, const struct fb *f, const char *payload, uint8_t version)
{
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    assert_int_equal(dec(d, dlt, f, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.ip_version, version);
    assert_int_equal(p.sport, SPORT);
    assert_int_equal(p.dport, DPORT);
    assert_int_equal(p.payload_len, strlen(payload));
    assert_memory_equal(p.payload, payload, strlen(payload));
    assert_int_equal(p.payload_cut, 0);
    owfp_decoder_free(d);
}

static void expect_result(int dlt, const struct fb *f, enum owfp_decode_result want)
{
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    assert_int_equal(dec(d, dlt, f, &p), want);
    owfp_decoder_free(d);
}

/* ---- Ethernet, TCP fields ---- */

static void test_decode_ethernet_ipv4_tcp_fields(void **state)
{
    (void)state;
    struct fb f = {0};
    eth(&f, 0x0800);
    size_t ip = ipv4(&f, 6, 1, 0, 0);
    /* All eight flag bits set: only the low six are ours. */
    tcp_opt(&f, 0xFF, 0x11223344, 0, "hello", 5);
    fix_ipv4(&f, ip);

    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    memset(&p, 0xAA, sizeof(p));
    assert_int_equal(owfp_decode(d, DLT_EN10MB, f.b, f.n, f.n, 123456789, &p), OWFP_DECODE_TCP);
    uint8_t src[16] = {10, 0, 0, 1}, dst[16] = {10, 0, 0, 2};
    assert_int_equal(p.ip_version, 4);
    assert_memory_equal(p.src, src, 16);
    assert_memory_equal(p.dst, dst, 16);
    assert_int_equal(p.sport, SPORT);
    assert_int_equal(p.dport, DPORT);
    assert_int_equal(p.seq, 0x11223344);
    assert_int_equal(p.ack, ACK);
    assert_int_equal(p.tcp_flags, OWFP_TCP_FIN | OWFP_TCP_SYN | OWFP_TCP_RST | OWFP_TCP_PSH |
                                      OWFP_TCP_ACK | OWFP_TCP_URG);
    assert_int_equal(p.window, WINDOW);
    assert_int_equal(p.urgent_ptr, URGENT);
    assert_int_equal(p.payload_len, 5);
    assert_ptr_equal(p.payload, f.b + f.n - 5);
    assert_int_equal(p.payload_cut, 0);
    assert_int_equal(p.ts_us, 123456789);
    const struct owfp_decode_stats *st = owfp_decoder_stats(d);
    assert_int_equal(st->frames, 1);
    assert_int_equal(st->tcp, 1);
    owfp_decoder_free(d);
}

static void test_decode_ethernet_ipv6_tcp_fields(void **state)
{
    (void)state;
    struct fb f = {0};
    v6_frame(&f, "six");
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.ip_version, 6);
    assert_memory_equal(p.src, V6_SRC, 16);
    assert_memory_equal(p.dst, V6_DST, 16);
    assert_int_equal(p.seq, 1000);
    assert_int_equal(p.tcp_flags, OWFP_TCP_ACK | OWFP_TCP_PSH);
    assert_int_equal(p.payload_len, 3);
    assert_memory_equal(p.payload, "six", 3);
    owfp_decoder_free(d);
}

static void test_decode_ethernet_padding_uses_ip_length(void **state)
{
    (void)state;
    struct fb f = {0};
    v4_frame(&f, "abc");
    fill(&f, 0, 6);                     /* pad to the 60-byte minimum */
    fill(&f, 0x55, 4);                  /* and an FCS */
    expect_tcp(DLT_EN10MB, &f, "abc", 4);

    struct fb g = {0};
    v6_frame(&g, "abc");
    fill(&g, 0x77, 8);
    expect_tcp(DLT_EN10MB, &g, "abc", 6);
}

static void test_decode_trailer_beyond_ip_length_is_not_payload(void **state)
{
    /* As suricata-verify tcp-5379: bytes after the IP length are a
     * link-layer trailer and never payload. */
    (void)state;
    struct fb f = {0};
    v4_frame(&f, "AAAA");
    fill(&f, 'D', 20);
    expect_tcp(DLT_EN10MB, &f, "AAAA", 4);
}

static void test_decode_not_tcp_protocols(void **state)
{
    (void)state;
    struct fb arp = {0};
    eth(&arp, 0x0806);
    fill(&arp, 0, 28);
    expect_result(DLT_EN10MB, &arp, OWFP_DECODE_NOT_TCP);

    static const uint8_t v4_protos[] = {1, 17, 47, 50};
    for (size_t i = 0; i < sizeof(v4_protos); i++) {
        struct fb f = {0};
        eth(&f, 0x0800);
        size_t ip = ipv4(&f, v4_protos[i], 1, 0, 0);
        fill(&f, 0, 8);
        fix_ipv4(&f, ip);
        expect_result(DLT_EN10MB, &f, OWFP_DECODE_NOT_TCP);
    }
    static const uint8_t v6_protos[] = {17, 58, 50, 59, 135};
    for (size_t i = 0; i < sizeof(v6_protos); i++) {
        struct fb f = {0};
        eth(&f, 0x86DD);
        size_t ip = ipv6(&f, v6_protos[i]);
        fill(&f, 0, 8);
        fix_ipv6(&f, ip);
        expect_result(DLT_EN10MB, &f, OWFP_DECODE_NOT_TCP);
    }
    /* 1501-1535 are neither a length nor a defined ethertype. */
    struct fb odd = {0};
    eth(&odd, 1501);
    fill(&odd, 0, 46);
    expect_result(DLT_EN10MB, &odd, OWFP_DECODE_NOT_TCP);
}

/* ---- 802.3 LLC/SNAP ---- */

static void snap_frame(struct fb *f, uint8_t dsap, uint8_t ssap, const uint8_t oui[3],
                       const char *payload)
{
    eth(f, 0); /* length, set below */
    size_t len_at = f->n - 2;
    put8(f, dsap);
    put8(f, ssap);
    put8(f, 0x03);
    put(f, oui, 3);
    put16(f, 0x0800);
    v4_packet(f, payload);
    set16(f, len_at, (uint16_t)(f->n - len_at - 2));
}

static void test_decode_8023_llc_snap(void **state)
{
    (void)state;
    static const uint8_t rfc1042[3] = {0, 0, 0}, bridge[3] = {0, 0, 0xF8}, cisco[3] = {0, 0, 0x0C};
    struct fb f = {0};
    snap_frame(&f, 0xAA, 0xAA, rfc1042, "snap");
    expect_tcp(DLT_EN10MB, &f, "snap", 4);

    struct fb g = {0};
    snap_frame(&g, 0xAA, 0xAB, bridge, "snap");
    expect_tcp(DLT_EN10MB, &g, "snap", 4);

    struct fb h = {0};
    snap_frame(&h, 0xAA, 0xAA, cisco, "snap");
    expect_result(DLT_EN10MB, &h, OWFP_DECODE_NOT_TCP);

    /* Spanning tree: LLC without SNAP. */
    struct fb stp = {0};
    eth(&stp, 38);
    put8(&stp, 0x42);
    put8(&stp, 0x42);
    put8(&stp, 0x03);
    fill(&stp, 0, 35);
    expect_result(DLT_EN10MB, &stp, OWFP_DECODE_NOT_TCP);

    /* An uncut 802.3 frame that ends inside its LLC header. */
    struct fb shortf = {0};
    eth(&shortf, 2);
    put8(&shortf, 0xAA);
    put8(&shortf, 0xAA);
    expect_result(DLT_EN10MB, &shortf, OWFP_DECODE_MALFORMED);
}

/* ---- VLAN ---- */

static void test_decode_vlan_8021q(void **state)
{
    (void)state;
    struct fb f = {0};
    eth(&f, 0x8100);
    vlan(&f, 6, 0x0800);
    v4_packet(&f, "tagged");
    expect_tcp(DLT_EN10MB, &f, "tagged", 4);

    /* VLAN 0 (priority tag) is a tag like any other. */
    struct fb z = {0};
    eth(&z, 0x8100);
    vlan(&z, 0, 0x86DD);
    v6_packet(&z, "prio");
    expect_tcp(DLT_EN10MB, &z, "prio", 6);
}

static void test_decode_vlan_qinq(void **state)
{
    (void)state;
    static const uint16_t outer[] = {0x88A8, 0x9100, 0x8100};
    for (size_t i = 0; i < 3; i++) {
        struct fb f = {0};
        eth(&f, outer[i]);
        vlan(&f, 200, 0x8100);
        vlan(&f, 2001, 0x0800);
        v4_packet(&f, "qinq");
        expect_tcp(DLT_EN10MB, &f, "qinq", 4);
    }
}

static void test_decode_vlan_depth_limit(void **state)
{
    (void)state;
    for (unsigned tags = 1; tags <= 9; tags++) {
        struct fb f = {0};
        eth(&f, 0x88A8);
        for (unsigned i = 1; i < tags; i++)
            vlan(&f, (uint16_t)i, 0x8100);
        vlan(&f, 99, 0x0800);
        v4_packet(&f, "deep");
        if (tags <= 8)
            expect_tcp(DLT_EN10MB, &f, "deep", 4);
        else
            expect_result(DLT_EN10MB, &f, OWFP_DECODE_UNSUPPORTED);
    }
}

static void test_decode_vlan_then_llc_snap(void **state)
{
    (void)state;
    struct fb f = {0};
    eth(&f, 0x8100);
    vlan(&f, 5, 0);
    size_t len_at = f.n - 2;
    static const uint8_t llc[8] = {0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00};
    put(&f, llc, 8);
    v4_packet(&f, "vsnap");
    set16(&f, len_at, (uint16_t)(f.n - len_at - 2));
    expect_tcp(DLT_EN10MB, &f, "vsnap", 4);
}

static void test_decode_vlan_arp_is_not_tcp(void **state)
{
    (void)state;
    struct fb f = {0};
    eth(&f, 0x88A8);
    vlan(&f, 200, 0x8100);
    vlan(&f, 2001, 0x0806);
    fill(&f, 0, 28);
    expect_result(DLT_EN10MB, &f, OWFP_DECODE_NOT_TCP);
}

/* ---- Linux cooked captures ---- */

static void sll(struct fb *f, uint16_t proto)
{
    put16(f, 0);       /* packet type: to us */
    put16(f, 1);       /* ARPHRD_ETHER */
    put16(f, 6);
    fill(f, 0x11, 8);  /* address, padded */
    put16(f, proto);
}

static void sll2(struct fb *f, uint16_t proto)
{
    put16(f, proto);
    put16(f, 0);
    put32(f, 3);       /* interface index */
    put16(f, 1);
    put8(f, 4);        /* outgoing */
    put8(f, 6);
    fill(f, 0x22, 8);
}

static void test_decode_linux_sll(void **state)
{
    (void)state;
    struct fb f = {0};
    sll(&f, 0x0800);
    assert_int_equal(f.n, 16);
    v4_packet(&f, "cooked");
    expect_tcp(DLT_LINUX_SLL, &f, "cooked", 4);

    struct fb g = {0};
    sll(&g, 0x86DD);
    v6_packet(&g, "cooked6");
    expect_tcp(DLT_LINUX_SLL, &g, "cooked6", 6);

    struct fb v = {0};
    sll(&v, 0x8100);
    vlan(&v, 7, 0x0800);
    v4_packet(&v, "cvlan");
    expect_tcp(DLT_LINUX_SLL, &v, "cvlan", 4);

    struct fb llc = {0};
    sll(&llc, 0x0004);
    static const uint8_t snap[8] = {0xAA, 0xAA, 0x03, 0, 0, 0, 0x86, 0xDD};
    put(&llc, snap, 8);
    v6_packet(&llc, "csnap");
    expect_tcp(DLT_LINUX_SLL, &llc, "csnap", 6);

    struct fb arp = {0};
    sll(&arp, 0x0806);
    fill(&arp, 0, 28);
    expect_result(DLT_LINUX_SLL, &arp, OWFP_DECODE_NOT_TCP);

    struct fb raw8023 = {0};
    sll(&raw8023, 0x0001);
    fill(&raw8023, 0, 28);
    expect_result(DLT_LINUX_SLL, &raw8023, OWFP_DECODE_NOT_TCP);

    /* Netlink (ARPHRD_NETLINK): the protocol is a netlink family. */
    struct fb nl = {0};
    sll(&nl, 0x0800);
    set16(&nl, 2, 824);
    v4_packet(&nl, "x");
    expect_result(DLT_LINUX_SLL, &nl, OWFP_DECODE_NOT_TCP);
}

static void test_decode_linux_sll2(void **state)
{
    (void)state;
    struct fb f = {0};
    sll2(&f, 0x0800);
    assert_int_equal(f.n, 20);
    v4_packet(&f, "cooked2");
    expect_tcp(DLT_LINUX_SLL2, &f, "cooked2", 4);

    struct fb g = {0};
    sll2(&g, 0x86DD);
    v6_packet(&g, "cooked2v6");
    expect_tcp(DLT_LINUX_SLL2, &g, "cooked2v6", 6);

    struct fb arp = {0};
    sll2(&arp, 0x0806);
    fill(&arp, 0, 28);
    expect_result(DLT_LINUX_SLL2, &arp, OWFP_DECODE_NOT_TCP);

    struct fb nl = {0};
    sll2(&nl, 0x0800);
    set16(&nl, 8, 824);
    v4_packet(&nl, "x");
    expect_result(DLT_LINUX_SLL2, &nl, OWFP_DECODE_NOT_TCP);

    /* The SLL2 protocol is at offset 0, not 14: a v1 header is wrong here. */
    struct fb v1 = {0};
    sll(&v1, 0x0800);
    fill(&v1, 0, 4);
    v4_packet(&v1, "x");
    expect_result(DLT_LINUX_SLL2, &v1, OWFP_DECODE_NOT_TCP);
}

/* ---- raw IP ---- */

static void test_decode_raw_ip_version_nibble(void **state)
{
    (void)state;
    static const int raw[] = {DLT_RAW, 12, 14, 101};
    for (size_t i = 0; i < 4; i++) {
        struct fb f = {0};
        v4_packet(&f, "raw4");
        expect_tcp(raw[i], &f, "raw4", 4);
        struct fb g = {0};
        v6_packet(&g, "raw6");
        expect_tcp(raw[i], &g, "raw6", 6);
        struct fb bad = {0};
        v4_packet(&bad, "v5");
        bad.b[0] = 0x55;
        expect_result(raw[i], &bad, OWFP_DECODE_MALFORMED);
        struct fb empty = {0};
        expect_result(raw[i], &empty, OWFP_DECODE_MALFORMED);
    }
}

static void test_decode_dlt_ipv4_and_ipv6(void **state)
{
    (void)state;
    struct fb f = {0};
    v4_packet(&f, "only4");
    expect_tcp(DLT_IPV4, &f, "only4", 4);
    expect_result(DLT_IPV6, &f, OWFP_DECODE_MALFORMED);

    struct fb g = {0};
    v6_packet(&g, "only6");
    expect_tcp(DLT_IPV6, &g, "only6", 6);
    expect_result(DLT_IPV4, &g, OWFP_DECODE_MALFORMED);
}

/* ---- where the IP header starts ---- */

/* Decodes `f` and returns the offset it reports for the IP header. */
static uint16_t l3_off_of(int dlt, const struct fb *f)
{
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    memset(&p, 0xAA, sizeof(p));
    assert_int_equal(dec(d, dlt, f, &p), OWFP_DECODE_TCP);
    owfp_decoder_free(d);
    return p.l3_off;
}

static void test_decode_l3_off_each_link(void **state)
{
    (void)state;
    static const uint8_t rfc1042[3] = {0, 0, 0};
    struct fb f = {0};
    eth(&f, 0x0800);
    v4_packet(&f, "e");
    assert_int_equal(l3_off_of(DLT_EN10MB, &f), 14);

    struct fb q = {0};
    eth(&q, 0x88A8);
    vlan(&q, 200, 0x8100);
    vlan(&q, 2001, 0x86DD);
    v6_packet(&q, "qinq");
    assert_int_equal(l3_off_of(DLT_EN10MB, &q), 22);

    struct fb snap = {0};
    snap_frame(&snap, 0xAA, 0xAA, rfc1042, "snap");
    assert_int_equal(l3_off_of(DLT_EN10MB, &snap), 22);

    struct fb c = {0};
    sll(&c, 0x8100);
    vlan(&c, 7, 0x0800);
    v4_packet(&c, "cvlan");
    assert_int_equal(l3_off_of(DLT_LINUX_SLL, &c), 20);

    struct fb c2 = {0};
    sll2(&c2, 0x86DD);
    v6_packet(&c2, "c2");
    assert_int_equal(l3_off_of(DLT_LINUX_SLL2, &c2), 20);

    struct fb n = {0};
    putle32(&n, 2);
    v4_packet(&n, "null");
    assert_int_equal(l3_off_of(DLT_NULL, &n), 4);

    struct fb r = {0};
    v6_packet(&r, "raw");
    assert_int_equal(l3_off_of(DLT_RAW, &r), 0);
}

/* ---- BSD loopback ---- */

static void test_decode_null_both_byte_orders(void **state)
{
    (void)state;
    static const uint32_t v6_families[] = {10, 24, 28, 30};
    for (int be = 0; be < 2; be++) {
        struct fb f = {0};
        if (be)
            put32(&f, 2);
        else
            putle32(&f, 2);
        v4_packet(&f, "null4");
        expect_tcp(DLT_NULL, &f, "null4", 4);
        for (size_t i = 0; i < 4; i++) {
            struct fb g = {0};
            if (be)
                put32(&g, v6_families[i]);
            else
                putle32(&g, v6_families[i]);
            v6_packet(&g, "null6");
            expect_tcp(DLT_NULL, &g, "null6", 6);
        }
        struct fb osi = {0};
        if (be)
            put32(&osi, 7);
        else
            putle32(&osi, 7);
        fill(&osi, 0, 40);
        expect_result(DLT_NULL, &osi, OWFP_DECODE_NOT_TCP);
    }
}

static void test_decode_loop_network_order(void **state)
{
    (void)state;
    struct fb f = {0};
    put32(&f, 2);
    v4_packet(&f, "loop4");
    expect_tcp(DLT_LOOP, &f, "loop4", 4);

    struct fb g = {0};
    put32(&g, 24);
    v6_packet(&g, "loop6");
    expect_tcp(DLT_LOOP, &g, "loop6", 6);

    /* DLT_LOOP is always network order: a little-endian 2 is 0x02000000. */
    struct fb le = {0};
    putle32(&le, 2);
    v4_packet(&le, "x");
    expect_result(DLT_LOOP, &le, OWFP_DECODE_NOT_TCP);
}

static void test_decode_null_family_must_match_version(void **state)
{
    (void)state;
    struct fb f = {0};
    putle32(&f, 2);
    v6_packet(&f, "mismatch");
    expect_result(DLT_NULL, &f, OWFP_DECODE_MALFORMED);
}

/* ---- link types ---- */

static void test_decode_unsupported_link_type(void **state)
{
    (void)state;
    struct fb f = {0};
    v4_frame(&f, "x");
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    assert_int_equal(dec(d, DLT_IEEE802_11, &f, &p), OWFP_DECODE_UNSUPPORTED);
    assert_int_equal(dec(d, 9999, &f, &p), OWFP_DECODE_UNSUPPORTED);
    assert_int_equal(dec(d, -1, &f, &p), OWFP_DECODE_UNSUPPORTED);
    assert_int_equal(owfp_decoder_stats(d)->unsupported, 3);
    owfp_decoder_free(d);
}

static void test_decode_link_supported(void **state)
{
    (void)state;
    static const int yes[] = {DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_RAW, 12, 14, 101,
                              DLT_IPV4, DLT_IPV6, DLT_NULL, DLT_LOOP};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(owfp_decode_link_supported(yes[i]));
    static const int no[] = {DLT_IEEE802_11, DLT_IEEE802_11_RADIO, DLT_PPP, 9999, -1};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(owfp_decode_link_supported(no[i]));
}

/* ---- IPv4 header ---- */

static void test_decode_ipv4_options_skipped(void **state)
{
    (void)state;
    for (size_t optlen = 4; optlen <= 40; optlen += 12) {
        struct fb f = {0};
        eth(&f, 0x0800);
        size_t ip = ipv4(&f, 6, 1, 0, optlen);
        tcp(&f, "options");
        fix_ipv4(&f, ip);
        expect_tcp(DLT_EN10MB, &f, "options", 4);
    }
}

static void test_decode_tcp_options_skipped(void **state)
{
    (void)state;
    struct fb f = {0};
    eth(&f, 0x0800);
    size_t ip = ipv4(&f, 6, 1, 0, 0);
    tcp_opt(&f, OWFP_TCP_SYN, 5, 40, "syn-data", 8);
    fix_ipv4(&f, ip);
    expect_tcp(DLT_EN10MB, &f, "syn-data", 4);
}

static void test_decode_ipv4_malformed_headers(void **state)
{
    (void)state;
    struct fb base = {0};
    v4_frame(&base, "payload");
    const size_t ip = 14, th = 34;

    struct fb f = base;
    f.b[ip] = 0x44; /* IHL 4 */
    expect_result(DLT_EN10MB, &f, OWFP_DECODE_MALFORMED);

    f = base;
    f.b[ip] = 0x55; /* version 5 under the IPv4 ethertype */
    expect_result(DLT_EN10MB, &f, OWFP_DECODE_MALFORMED);

    f = base;
    set16(&f, ip + 2, 19); /* total length shorter than the header */
    expect_result(DLT_EN10MB, &f, OWFP_DECODE_MALFORMED);

    f = base;
    f.b[th + 12] = 0x40; /* TCP data offset 4 */
    expect_result(DLT_EN10MB, &f, OWFP_DECODE_MALFORMED);

    f = base;
    f.b[th + 12] = 0xF0; /* 60-byte TCP header in a 27-byte segment */
    expect_result(DLT_EN10MB, &f, OWFP_DECODE_MALFORMED);

    f = base;
    set16(&f, ip + 2, 20 + 10); /* IP says the segment is 10 bytes */
    expect_result(DLT_EN10MB, &f, OWFP_DECODE_MALFORMED);

    f = base;
    f.n = ip + 12; /* uncut frame that ends inside the IP header */
    expect_result(DLT_EN10MB, &f, OWFP_DECODE_MALFORMED);

    f = base;
    f.n = 10; /* shorter than an Ethernet header */
    expect_result(DLT_EN10MB, &f, OWFP_DECODE_MALFORMED);

    /* IHL 6 with the total length covering only 22 bytes of it. */
    struct fb g = {0};
    eth(&g, 0x0800);
    size_t at = ipv4(&g, 6, 1, 0, 4);
    tcp(&g, "x");
    set16(&g, at + 2, 22);
    expect_result(DLT_EN10MB, &g, OWFP_DECODE_MALFORMED);

    /* As suricata-verify decode-too-small: TCP with an empty L4. */
    struct fb h = {0};
    eth(&h, 0x0800);
    at = ipv4(&h, 6, 1, 0, 0);
    fix_ipv4(&h, at);
    expect_result(DLT_EN10MB, &h, OWFP_DECODE_MALFORMED);
}

static void test_decode_ipv6_malformed_headers(void **state)
{
    (void)state;
    struct fb base = {0};
    v6_frame(&base, "payload");

    struct fb f = base;
    f.b[14] = 0x40; /* version 4 under the IPv6 ethertype */
    expect_result(DLT_EN10MB, &f, OWFP_DECODE_MALFORMED);

    f = base;
    f.n = 14 + 39;
    expect_result(DLT_EN10MB, &f, OWFP_DECODE_MALFORMED);

    f = base;
    f.b[54 + 12] = 0x30;
    expect_result(DLT_EN10MB, &f, OWFP_DECODE_MALFORMED);

    /* Payload length 0 and nothing after the header. */
    struct fb g = {0};
    eth(&g, 0x86DD);
    ipv6(&g, 6);
    expect_result(DLT_EN10MB, &g, OWFP_DECODE_MALFORMED);

    /* A hop-by-hop header longer than the payload length. */
    struct fb h = {0};
    eth(&h, 0x86DD);
    size_t at = ipv6(&h, 0);
    put8(&h, 6);
    put8(&h, 1); /* 16 bytes */
    fill(&h, 0, 6);
    fix_ipv6(&h, at);
    expect_result(DLT_EN10MB, &h, OWFP_DECODE_MALFORMED);

    /* Extension header that ends right after its next-header byte. */
    struct fb e = {0};
    eth(&e, 0x86DD);
    at = ipv6(&e, 60);
    put8(&e, 6);
    fix_ipv6(&e, at);
    expect_result(DLT_EN10MB, &e, OWFP_DECODE_MALFORMED);
}

static void test_decode_malformed_is_counted(void **state)
{
    (void)state;
    struct fb f = {0};
    v4_frame(&f, "x");
    f.b[14] = 0x43;
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    for (int i = 0; i < 3; i++)
        assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_MALFORMED);
    assert_int_equal(owfp_decoder_stats(d)->malformed, 3);
    assert_int_equal(owfp_decoder_stats(d)->frames, 3);
    owfp_decoder_free(d);
}

/* ---- lengths: TSO, GSO, BIG TCP, snapshot cuts ---- */

static void big_v4_frame(struct fb *f, size_t payload_len, uint16_t ip_len_field)
{
    eth(f, 0x0800);
    size_t ip = ipv4(f, 6, 1, 0, 0);
    tcp_opt(f, OWFP_TCP_ACK, 7, 0, "", 0);
    for (size_t i = 0; i < payload_len; i++)
        put8(f, (uint8_t)i);
    set16(f, ip + 2, ip_len_field);
}

static void test_decode_tso_ip_length_zero(void **state)
{
    (void)state;
    struct fb f = {0};
    big_v4_frame(&f, 3000, 0);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, 3000);
    assert_int_equal(p.payload_cut, 0);
    assert_int_equal(p.payload[2999], (uint8_t)2999);
    owfp_decoder_free(d);
}

static void test_decode_tso_ip_length_larger_than_frame(void **state)
{
    (void)state;
    struct fb f = {0};
    big_v4_frame(&f, 2000, 60000);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, 2000);
    assert_int_equal(p.payload_cut, 0);
    owfp_decoder_free(d);
}

static void test_decode_ipv6_bigtcp_jumbo_and_zero_length(void **state)
{
    (void)state;
    /* With a hop-by-hop jumbo payload option (RFC 2675). */
    struct fb f = {0};
    eth(&f, 0x86DD);
    ipv6(&f, 0);
    put8(&f, 6);
    put8(&f, 0);
    put8(&f, 0xC2);
    put8(&f, 4);
    put32(&f, 8 + 20 + 3000);
    tcp_opt(&f, OWFP_TCP_ACK, 1, 0, "", 0);
    fill(&f, 'j', 3000);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, 3000);

    /* Without one, as tcpdump's bigtcp-ipv6.pcap. */
    struct fb g = {0};
    eth(&g, 0x86DD);
    ipv6(&g, 6);
    tcp_opt(&g, OWFP_TCP_ACK, 1, 0, "", 0);
    fill(&g, 'z', 2500);
    assert_int_equal(dec(d, DLT_EN10MB, &g, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, 2500);

    /* A payload length larger than the uncut frame. */
    set16(&g, 14 + 4, 65000);
    assert_int_equal(dec(d, DLT_EN10MB, &g, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, 2500);
    assert_int_equal(p.payload_cut, 0);
    owfp_decoder_free(d);
}

static void test_decode_snaplen_cut_payload(void **state)
{
    (void)state;
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb f = {0};
    big_v4_frame(&f, 100, 0);
    fix_ipv4(&f, 14);
    assert_int_equal(owfp_decode(d, DLT_EN10MB, f.b, f.n - 40, f.n, TS, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, 60);
    assert_int_equal(p.payload_cut, 40);

    struct fb g = {0};
    eth(&g, 0x86DD);
    size_t at = ipv6(&g, 6);
    tcp_opt(&g, OWFP_TCP_ACK, 1, 0, "", 0);
    fill(&g, 'c', 100);
    fix_ipv6(&g, at);
    assert_int_equal(owfp_decode(d, DLT_EN10MB, g.b, g.n - 1, g.n, TS, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, 99);
    assert_int_equal(p.payload_cut, 1);

    /* Headers only, as zeek retransmit-fast009. */
    assert_int_equal(owfp_decode(d, DLT_EN10MB, g.b, 14 + 40 + 20, g.n, TS, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, 0);
    assert_int_equal(p.payload_cut, 100);

    assert_int_equal(owfp_decoder_stats(d)->payload_cut, 3);
    owfp_decoder_free(d);
}

static void test_decode_snaplen_cut_tso_uses_wire_length(void **state)
{
    (void)state;
    struct fb f = {0};
    big_v4_frame(&f, 3000, 0);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    assert_int_equal(owfp_decode(d, DLT_EN10MB, f.b, 1514, f.n, TS, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, 1514 - 54);
    assert_int_equal(p.payload_cut, 3000 - (1514 - 54));

    /* An IP length beyond what the wire held is capped by the wire. */
    set16(&f, 14 + 2, 60000);
    assert_int_equal(owfp_decode(d, DLT_EN10MB, f.b, 1514, f.n, TS, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_cut, 3000 - (1514 - 54));
    owfp_decoder_free(d);
}

static void test_decode_snaplen_cut_only_trailer(void **state)
{
    (void)state;
    struct fb f = {0};
    v4_frame(&f, "short");
    fill(&f, 0, 20);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    assert_int_equal(owfp_decode(d, DLT_EN10MB, f.b, f.n - 10, f.n, TS, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, 5);
    assert_int_equal(p.payload_cut, 0);
    assert_int_equal(owfp_decoder_stats(d)->payload_cut, 0);
    owfp_decoder_free(d);
}

static void test_decode_snaplen_cut_header_is_truncated(void **state)
{
    (void)state;
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb f = {0};
    eth(&f, 0x8100);
    vlan(&f, 1, 0x0800);
    size_t ip = ipv4(&f, 6, 1, 0, 8);
    tcp_opt(&f, OWFP_TCP_ACK, 1, 12, "data", 4);
    fix_ipv4(&f, ip);
    /* ends in: Ethernet, VLAN tag, IP header, IP options, TCP header,
     * TCP options */
    static const uint32_t cuts[] = {0, 10, 16, 20, 30, 45, 50, 60, 70, 77};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
        assert_int_equal(owfp_decode(d, DLT_EN10MB, f.b, cuts[i], f.n, TS, &p),
                         OWFP_DECODE_TRUNCATED);
    assert_int_equal(owfp_decode(d, DLT_EN10MB, f.b, 18 + 28 + 32, f.n, TS, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_cut, 4);

    struct fb g = {0};
    eth(&g, 0x86DD);
    size_t at = ipv6(&g, 60);
    put8(&g, 6);
    put8(&g, 1);
    fill(&g, 0, 14);
    tcp(&g, "six");
    fix_ipv6(&g, at);
    static const uint32_t cuts6[] = {14 + 20, 14 + 40, 14 + 41, 14 + 50, 14 + 56, 14 + 70};
    for (size_t i = 0; i < sizeof(cuts6) / sizeof(cuts6[0]); i++)
        assert_int_equal(owfp_decode(d, DLT_EN10MB, g.b, cuts6[i], g.n, TS, &p),
                         OWFP_DECODE_TRUNCATED);
    assert_int_equal(owfp_decoder_stats(d)->truncated, 16);
    assert_int_equal(owfp_decoder_stats(d)->malformed, 0);
    owfp_decoder_free(d);
}

static void test_decode_wirelen_below_caplen_trusts_captured(void **state)
{
    (void)state;
    struct fb f = {0};
    v4_frame(&f, "wire");
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    assert_int_equal(owfp_decode(d, DLT_EN10MB, f.b, f.n, 10, TS, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, 4);
    assert_int_equal(p.payload_cut, 0);
    owfp_decoder_free(d);
}

/* ---- IPv6 extension headers ---- */

static void ext_header(struct fb *f, uint8_t type, uint8_t next)
{
    switch (type) {
    case 0:
    case 60:
        put8(f, next);
        put8(f, 0);
        put8(f, 1); /* PadN */
        put8(f, 4);
        fill(f, 0, 4);
        break;
    case 43:
        put8(f, next);
        put8(f, 2); /* 24 bytes */
        put8(f, 4); /* segment routing */
        put8(f, 0); /* segments left */
        fill(f, 0, 20);
        break;
    case 51:
        put8(f, next);
        put8(f, 4); /* (4 + 2) * 4 = 24 bytes */
        put16(f, 0);
        put32(f, 0x1000); /* SPI */
        put32(f, 1);      /* sequence */
        fill(f, 0xAB, 12); /* ICV */
        break;
    default:
        fail();
    }
}

static void v6_chain_frame(struct fb *f, const uint8_t *chain, size_t n, uint8_t last,
                           const char *payload)
{
    eth(f, 0x86DD);
    size_t at = ipv6(f, n ? chain[0] : last);
    for (size_t i = 0; i < n; i++)
        ext_header(f, chain[i], i + 1 < n ? chain[i + 1] : last);
    if (last == 6)
        tcp(f, payload);
    else
        fill(f, 0, 16);
    fix_ipv6(f, at);
}

static void test_decode_ipv6_each_extension_header(void **state)
{
    (void)state;
    static const uint8_t types[] = {0, 43, 60, 51};
    for (size_t i = 0; i < 4; i++) {
        struct fb f = {0};
        v6_chain_frame(&f, &types[i], 1, 6, "ext");
        expect_tcp(DLT_EN10MB, &f, "ext", 6);
    }
    static const uint8_t all[] = {0, 60, 43, 51, 60};
    struct fb f = {0};
    v6_chain_frame(&f, all, sizeof(all), 6, "chain");
    expect_tcp(DLT_EN10MB, &f, "chain", 6);
}

static void test_decode_ipv6_esp_and_no_next_header(void **state)
{
    (void)state;
    static const uint8_t hbh[] = {0};
    struct fb esp = {0};
    v6_chain_frame(&esp, hbh, 1, 50, NULL);
    expect_result(DLT_EN10MB, &esp, OWFP_DECODE_NOT_TCP);
    struct fb none = {0};
    v6_chain_frame(&none, hbh, 1, 59, NULL);
    expect_result(DLT_EN10MB, &none, OWFP_DECODE_NOT_TCP);
    struct fb udp = {0};
    v6_chain_frame(&udp, hbh, 1, 17, NULL);
    expect_result(DLT_EN10MB, &udp, OWFP_DECODE_NOT_TCP);
}

static void test_decode_ipv6_extension_header_cut_and_overlong(void **state)
{
    (void)state;
    static const uint8_t chain[] = {0, 43};
    struct fb f = {0};
    v6_chain_frame(&f, chain, 2, 6, "x");
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    /* Cut inside the routing header. */
    assert_int_equal(owfp_decode(d, DLT_EN10MB, f.b, 14 + 40 + 8 + 10, f.n, TS, &p),
                     OWFP_DECODE_TRUNCATED);
    /* Routing header longer than the payload length. */
    struct fb g = f;
    g.b[14 + 40 + 8 + 1] = 200;
    assert_int_equal(dec(d, DLT_EN10MB, &g, &p), OWFP_DECODE_MALFORMED);
    /* AH with a length byte that runs past the end. */
    static const uint8_t ah[] = {51};
    struct fb h = {0};
    v6_chain_frame(&h, ah, 1, 6, "x");
    h.b[14 + 40 + 1] = 255;
    assert_int_equal(dec(d, DLT_EN10MB, &h, &p), OWFP_DECODE_MALFORMED);
    owfp_decoder_free(d);
}

/* ---- IPv4 fragments ---- */

/* The TCP segment (header + payload) that the fragment tests cut up. */
static uint32_t segment(uint8_t *out, size_t payload_len)
{
    struct fb f = {0};
    tcp_opt(&f, OWFP_TCP_ACK | OWFP_TCP_PSH, 0xABCDEF01, 0, "", 0);
    for (size_t i = 0; i < payload_len; i++)
        put8(&f, (uint8_t)('a' + i % 26));
    memcpy(out, f.b, f.n);
    return f.n;
}

static void v4_frag(struct fb *f, uint16_t id, const uint8_t *seg, uint32_t off, uint32_t len,
                    bool more)
{
    f->n = 0;
    eth(f, 0x0800);
    size_t ip = ipv4(f, 6, id, (uint16_t)((more ? 0x2000 : 0) | off / 8), 0);
    put(f, seg + off, len);
    fix_ipv4(f, ip);
}

static void expect_segment(const struct owfp_pkt *p, const uint8_t *seg, uint32_t seg_len)
{
    assert_int_equal(p->seq, 0xABCDEF01);
    assert_int_equal(p->sport, SPORT);
    assert_int_equal(p->payload_len, seg_len - 20);
    assert_memory_equal(p->payload, seg + 20, seg_len - 20);
    assert_int_equal(p->payload_cut, 0);
}

/* Sends the fragments [offs[i], offs[i+1]) of `seg` in `order`; all but
 * the last sent are FRAGMENT, the last completes the datagram. */
static void send_v4_frags(struct owfp_decoder *d, const uint8_t *seg, uint32_t seg_len,
                          const uint32_t *offs, size_t nfrags, const size_t *order,
                          struct owfp_pkt *p)
{
    for (size_t k = 0; k < nfrags; k++) {
        size_t i = order[k];
        struct fb f;
        v4_frag(&f, 77, seg, offs[i], offs[i + 1] - offs[i], offs[i + 1] != seg_len);
        enum owfp_decode_result r = dec(d, DLT_EN10MB, &f, p);
        assert_int_equal(r, k + 1 < nfrags ? OWFP_DECODE_FRAGMENT : OWFP_DECODE_TCP);
    }
}

static void test_decode_ipv4_fragments_in_order(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 60);
    const uint32_t offs[] = {0, 24, 48, n};
    const size_t order[] = {0, 1, 2};
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    send_v4_frags(d, seg, n, offs, 3, order, &p);
    expect_segment(&p, seg, n);
    assert_int_equal(p.l3_off, 14); /* in the last fragment's frame */
    uint8_t src[16] = {10, 0, 0, 1};
    assert_memory_equal(p.src, src, 16);
    assert_int_equal(p.ip_version, 4);
    const struct owfp_decode_stats *st = owfp_decoder_stats(d);
    assert_int_equal(st->fragments, 3);
    assert_int_equal(st->datagrams_reassembled, 1);
    assert_int_equal(st->fragments_dropped, 0);
    assert_int_equal(st->tcp, 1);
    assert_int_equal(st->frames, 3);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragments_out_of_order(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 100);
    const uint32_t offs[] = {0, 16, 40, 64, 96, n};
    static const size_t orders[][5] = {{4, 3, 2, 1, 0}, {2, 0, 4, 1, 3}, {1, 3, 0, 4, 2}};
    for (size_t o = 0; o < 3; o++) {
        struct owfp_decoder *d = new_decoder();
        struct owfp_pkt p;
        send_v4_frags(d, seg, n, offs, 5, orders[o], &p);
        expect_segment(&p, seg, n);
        owfp_decoder_free(d);
    }
}

static void test_decode_ipv4_fragments_overlap_first_copy_wins(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 60); /* 80 bytes */
    uint8_t evil[200];
    memcpy(evil, seg, n);
    memset(evil, 'X', n); /* every byte differs, the TCP header too */

    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb f;
    v4_frag(&f, 5, seg, 0, 16, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 5, seg, 32, 16, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    /* Covers [0, 56): only the holes [16, 32) and [48, 56) take its bytes. */
    v4_frag(&f, 5, evil, 0, 56, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 5, seg, 48, n - 48, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);

    uint8_t want[200];
    memcpy(want, seg, n);
    memset(want + 16, 'X', 16);
    memset(want + 48, 'X', 8);
    assert_int_equal(p.sport, SPORT);
    assert_int_equal(p.payload_len, n - 20);
    assert_memory_equal(p.payload, want + 20, n - 20);
    assert_int_equal(owfp_decoder_stats(d)->fragments_dropped, 0);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragments_overlap_cannot_rewrite_tcp_header(void **state)
{
    /* The RFC 1858 trick: a later fragment at offset 0 with other ports. */
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 40);
    uint8_t evil[200];
    memcpy(evil, seg, n);
    evil[0] = 0;
    evil[1] = 22;
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb f;
    v4_frag(&f, 9, seg, 0, 24, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 9, evil, 0, 24, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 9, seg, 24, n - 24, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.sport, SPORT);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragments_duplicate(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 60);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb f;
    v4_frag(&f, 3, seg, 0, 40, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 3, seg, 40, n - 40, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    expect_segment(&p, seg, n);
    /* The same last fragment again starts a new datagram that never ends. */
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    const struct owfp_decode_stats *st = owfp_decoder_stats(d);
    assert_int_equal(st->fragments, 4);
    assert_int_equal(st->datagrams_reassembled, 1);
    assert_int_equal(st->fragments_dropped, 0);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragments_separate_by_key(void **state)
{
    (void)state;
    uint8_t a[200], b[200];
    uint32_t na = segment(a, 40);
    uint32_t nb = segment(b, 40);
    memset(b + 20, 'B', nb - 20);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb f;
    v4_frag(&f, 1, a, 0, 24, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    /* Same id, other source address. */
    v4_frag(&f, 1, b, 0, 24, true);
    f.b[14 + 15] = 9;
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    /* Other id. */
    v4_frag(&f, 2, b, 24, nb - 24, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 1, b, 24, nb - 24, false);
    f.b[14 + 15] = 9;
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    expect_segment(&p, b, nb);
    assert_int_equal(p.src[3], 9);
    v4_frag(&f, 1, a, 24, na - 24, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    expect_segment(&p, a, na);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragments_timeout(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 60);
    struct owfp_decoder_config cfg = {.frag_timeout_us = 1000000};
    struct owfp_decoder *d = owfp_decoder_new(&cfg);
    assert_non_null(d);
    struct owfp_pkt p;
    struct fb first, last, other = {0};
    v4_frag(&first, 4, seg, 0, 40, true);
    v4_frag(&last, 4, seg, 40, n - 40, false);
    v4_frame(&other, "tick");
    const struct owfp_decode_stats *st = owfp_decoder_stats(d);

    /* Completes exactly at the timeout. */
    assert_int_equal(dec_at(d, &first, 5000000, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(dec_at(d, &last, 6000000, &p), OWFP_DECODE_TCP);

    /* One microsecond later it is gone. */
    assert_int_equal(dec_at(d, &first, 10000000, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(dec_at(d, &last, 11000001, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(st->fragments_dropped, 1);

    /* Any frame moves the clock: the lone last fragment expires too, once
     * more than the timeout has passed since it arrived. */
    assert_int_equal(dec_at(d, &other, 12000001, &p), OWFP_DECODE_TCP);
    assert_int_equal(st->fragments_dropped, 1);
    assert_int_equal(dec_at(d, &other, 12000002, &p), OWFP_DECODE_TCP);
    assert_int_equal(st->fragments_dropped, 2);
    assert_int_equal(st->datagrams_reassembled, 1);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragments_default_timeout_30s(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 60);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb first, last;
    v4_frag(&first, 4, seg, 0, 40, true);
    v4_frag(&last, 4, seg, 40, n - 40, false);
    assert_int_equal(dec_at(d, &first, 0, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(dec_at(d, &last, 30000000, &p), OWFP_DECODE_TCP);
    assert_int_equal(dec_at(d, &first, 40000000, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(dec_at(d, &last, 70000001, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(owfp_decoder_stats(d)->fragments_dropped, 1);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragments_over_datagram_cap(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 60);
    struct owfp_decoder_config cfg = {.max_datagrams = 2};
    struct owfp_decoder *d = owfp_decoder_new(&cfg);
    assert_non_null(d);
    struct owfp_pkt p;
    struct fb f;
    for (uint16_t id = 1; id <= 3; id++) {
        v4_frag(&f, id, seg, 0, 40, true);
        assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    }
    const struct owfp_decode_stats *st = owfp_decoder_stats(d);
    assert_int_equal(st->fragments_dropped, 1); /* id 1, the oldest */
    v4_frag(&f, 3, seg, 40, n - 40, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    v4_frag(&f, 2, seg, 40, n - 40, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    v4_frag(&f, 1, seg, 40, n - 40, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(st->datagrams_reassembled, 2);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragments_over_byte_cap(void **state)
{
    (void)state;
    uint8_t seg[300];
    uint32_t n = segment(seg, 200);
    /* Each piece is charged its bytes plus a small fixed overhead (< 48). */
    struct owfp_decoder_config cfg = {.max_frag_bytes = 150};
    struct owfp_decoder *d = owfp_decoder_new(&cfg);
    assert_non_null(d);
    const struct owfp_decode_stats *st = owfp_decoder_stats(d);
    struct owfp_pkt p;
    struct fb f;

    /* One datagram alone over the cap: dropped with its fragments. */
    v4_frag(&f, 1, seg, 0, 96, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 1, seg, 96, 96, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(st->fragments_dropped, 2);

    /* A second datagram evicts the older one to make room. */
    v4_frag(&f, 2, seg, 0, 96, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 3, seg, 0, 96, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(st->fragments_dropped, 3);

    /* A fragment bigger than the whole budget. */
    struct owfp_decoder_config tiny = {.max_frag_bytes = 64};
    struct owfp_decoder *t = owfp_decoder_new(&tiny);
    assert_non_null(t);
    v4_frag(&f, 1, seg, 0, 200, true);
    assert_int_equal(dec(t, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(owfp_decoder_stats(t)->fragments_dropped, 1);
    owfp_decoder_free(t);

    /* Within the budget all completes. */
    struct owfp_decoder_config roomy = {.max_frag_bytes = 400};
    struct owfp_decoder *r = owfp_decoder_new(&roomy);
    assert_non_null(r);
    v4_frag(&f, 1, seg, 0, 120, true);
    assert_int_equal(dec(r, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 1, seg, 120, n - 120, false);
    assert_int_equal(dec(r, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    expect_segment(&p, seg, n);
    owfp_decoder_free(r);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragments_conflicting_last(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 60); /* 80 */
    struct owfp_decoder *d = new_decoder();
    const struct owfp_decode_stats *st = owfp_decoder_stats(d);
    struct owfp_pkt p;
    struct fb f;
    v4_frag(&f, 6, seg, 48, n - 48, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 6, seg, 48, 24, false); /* another end: 72 */
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(st->fragments_dropped, 2);

    /* Offset 0 without MF is a whole datagram, not a fragment. */
    v4_frag(&f, 7, seg, 0, 40, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, 20);

    /* Data beyond a known end. */
    v4_frag(&f, 8, seg, 0, 48, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 8, seg, 24, 16, false); /* ends at 40, before data at 48 */
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(st->fragments_dropped, 4);
    v4_frag(&f, 9, seg, 48, n - 48, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 9, seg, 80, 8, true); /* past the end */
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(st->fragments_dropped, 6);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragments_invalid_alone(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 60);
    struct owfp_decoder *d = new_decoder();
    const struct owfp_decode_stats *st = owfp_decoder_stats(d);
    struct owfp_pkt p;
    struct fb f;
    /* Beyond 65535: the largest offset plus 32 bytes. */
    v4_frag(&f, 1, seg, 0, 32, false);
    set16(&f, 14 + 6, 0x1FFF);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(st->fragments_dropped, 1);
    /* A non-last fragment that is not a multiple of 8 bytes. */
    v4_frag(&f, 2, seg, 0, 30, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(st->fragments_dropped, 2);
    /* Neither spoils a datagram with the same key. */
    v4_frag(&f, 2, seg, 0, 32, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 2, seg, 32, n - 32, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    expect_segment(&p, seg, n);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragments_largest_datagram(void **state)
{
    (void)state;
    /* 65515 bytes of segment in fragments of 1480, as a full-size ping. */
    static uint8_t seg[65535];
    struct fb h = {0};
    tcp_opt(&h, OWFP_TCP_ACK, 0xABCDEF01, 0, "", 0);
    memcpy(seg, h.b, 20);
    const uint32_t n = 65535 - 20;
    for (uint32_t i = 20; i < n; i++)
        seg[i] = (uint8_t)(i * 7);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    static uint8_t frame[1600];
    for (uint32_t off = 0; off < n; off += 1480) {
        uint32_t len = n - off < 1480 ? n - off : 1480;
        struct fb f = {0};
        eth(&f, 0x0800);
        size_t ip = ipv4(&f, 6, 42, (uint16_t)((off + len < n ? 0x2000 : 0) | off / 8), 0);
        memcpy(frame, f.b, f.n);
        memcpy(frame + f.n, seg + off, len);
        uint32_t total = f.n + len;
        frame[ip + 2] = (uint8_t)((total - ip) >> 8);
        frame[ip + 3] = (uint8_t)(total - ip);
        enum owfp_decode_result r = owfp_decode(d, DLT_EN10MB, frame, total, total, TS, &p);
        assert_int_equal(r, off + len < n ? OWFP_DECODE_FRAGMENT : OWFP_DECODE_TCP);
    }
    assert_int_equal(p.payload_len, n - 20);
    assert_memory_equal(p.payload, seg + 20, n - 20);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragments_of_other_protocols_not_kept(void **state)
{
    (void)state;
    struct fb f = {0};
    eth(&f, 0x0800);
    size_t ip = ipv4(&f, 17, 5, 0x2000, 0);
    fill(&f, 0, 64);
    fix_ipv4(&f, ip);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_NOT_TCP);
    assert_int_equal(owfp_decoder_stats(d)->fragments, 0);
    assert_int_equal(owfp_decoder_stats(d)->not_tcp, 1);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_fragment_cut_by_snaplen_is_dropped(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 60);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb f;
    v4_frag(&f, 1, seg, 0, 40, true);
    assert_int_equal(owfp_decode(d, DLT_EN10MB, f.b, f.n - 1, f.n, TS, &p), OWFP_DECODE_FRAGMENT);
    v4_frag(&f, 1, seg, 40, n - 40, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(owfp_decoder_stats(d)->fragments, 2);
    assert_int_equal(owfp_decoder_stats(d)->fragments_dropped, 1);
    owfp_decoder_free(d);
}

static void test_decode_ipv4_reassembled_payload_is_decoder_owned(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 60);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb a, b;
    v4_frag(&a, 1, seg, 0, 40, true);
    v4_frag(&b, 1, seg, 40, n - 40, false);
    assert_int_equal(dec(d, DLT_EN10MB, &a, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(dec(d, DLT_EN10MB, &b, &p), OWFP_DECODE_TCP);
    assert_true(p.payload < b.b || p.payload >= b.b + sizeof(b.b));
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    expect_segment(&p, seg, n);
    owfp_decoder_free(d);
}

/* ---- IPv6 fragments ---- */

static void v6_frag(struct fb *f, uint32_t id, uint8_t nh, const uint8_t *data, uint32_t off,
                    uint32_t len, bool more)
{
    f->n = 0;
    eth(f, 0x86DD);
    size_t at = ipv6(f, 0);
    ext_header(f, 0, 44); /* an unfragmentable hop-by-hop header first */
    put8(f, nh);
    put8(f, 0);
    put16(f, (uint16_t)(off | (more ? 1 : 0)));
    put32(f, id);
    put(f, data + off, len);
    fix_ipv6(f, at);
}

static void test_decode_ipv6_fragments(void **state)
{
    (void)state;
    uint8_t seg[300];
    uint32_t n = segment(seg, 150);
    static const size_t orders[][3] = {{0, 1, 2}, {2, 1, 0}, {1, 2, 0}};
    const uint32_t offs[] = {0, 64, 128, n};
    for (size_t o = 0; o < 3; o++) {
        struct owfp_decoder *d = new_decoder();
        struct owfp_pkt p;
        for (size_t k = 0; k < 3; k++) {
            size_t i = orders[o][k];
            struct fb f;
            v6_frag(&f, 0x12345678, 6, seg, offs[i], offs[i + 1] - offs[i], i < 2);
            assert_int_equal(dec(d, DLT_EN10MB, &f, &p),
                             k < 2 ? OWFP_DECODE_FRAGMENT : OWFP_DECODE_TCP);
        }
        expect_segment(&p, seg, n);
        assert_int_equal(p.ip_version, 6);
        assert_memory_equal(p.src, V6_SRC, 16);
        assert_memory_equal(p.dst, V6_DST, 16);
        assert_int_equal(owfp_decoder_stats(d)->datagrams_reassembled, 1);
        owfp_decoder_free(d);
    }
}

static void test_decode_ipv6_fragments_then_extension_headers(void **state)
{
    (void)state;
    /* The fragmentable part starts with destination options, then TCP. */
    uint8_t body[300];
    struct fb b = {0};
    ext_header(&b, 60, 6);
    tcp(&b, "after the fragment header");
    memcpy(body, b.b, b.n);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb f;
    v6_frag(&f, 1, 60, body, 16, b.n - 16, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v6_frag(&f, 1, 60, body, 0, 16, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    assert_int_equal(p.payload_len, strlen("after the fragment header"));
    assert_memory_equal(p.payload, "after the fragment header", p.payload_len);
    owfp_decoder_free(d);
}

static void test_decode_ipv6_fragments_keyed_by_id(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 60);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb f;
    v6_frag(&f, 1, 6, seg, 0, 40, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v6_frag(&f, 2, 6, seg, 40, n - 40, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_FRAGMENT);
    v6_frag(&f, 1, 6, seg, 40, n - 40, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    owfp_decoder_free(d);
}

static void test_decode_ipv6_fragments_of_other_protocols_not_kept(void **state)
{
    (void)state;
    uint8_t data[64] = {0};
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb f;
    v6_frag(&f, 1, 17, data, 0, 32, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_NOT_TCP);
    v6_frag(&f, 1, 58, data, 32, 32, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_NOT_TCP);
    assert_int_equal(owfp_decoder_stats(d)->fragments, 0);
    owfp_decoder_free(d);
}

static void test_decode_ipv6_atomic_fragment(void **state)
{
    (void)state;
    uint8_t seg[200];
    uint32_t n = segment(seg, 30);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb f;
    v6_frag(&f, 1, 6, seg, 0, n, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_TCP);
    expect_segment(&p, seg, n);
    assert_int_equal(owfp_decoder_stats(d)->fragments, 0);
    owfp_decoder_free(d);
}

static void test_decode_ipv6_nested_fragment_header_is_malformed(void **state)
{
    (void)state;
    /* The reassembled part starts with another fragment header. */
    uint8_t inner[64] = {6, 0, 0, 0, 0, 0, 0, 9};
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb f;
    v6_frag(&f, 1, 44, inner, 0, 8, true);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_NOT_TCP);

    /* An atomic fragment followed by a fragment header. */
    v6_frag(&f, 1, 44, inner, 0, 40, false);
    assert_int_equal(dec(d, DLT_EN10MB, &f, &p), OWFP_DECODE_MALFORMED);
    owfp_decoder_free(d);
}

static void test_decode_ipv6_fragments_overlap_and_timeout(void **state)
{
    (void)state;
    uint8_t seg[200], evil[200];
    uint32_t n = segment(seg, 60);
    memset(evil, 'E', sizeof(evil));
    struct owfp_decoder_config cfg = {.frag_timeout_us = 500};
    struct owfp_decoder *d = owfp_decoder_new(&cfg);
    assert_non_null(d);
    struct owfp_pkt p;
    struct fb f;
    v6_frag(&f, 3, 6, seg, 0, 48, true);
    assert_int_equal(dec_at(d, &f, 100, &p), OWFP_DECODE_FRAGMENT);
    v6_frag(&f, 3, 6, evil, 40, n - 40, false);
    assert_int_equal(dec_at(d, &f, 200, &p), OWFP_DECODE_TCP);
    assert_memory_equal(p.payload, seg + 20, 28);
    assert_memory_equal(p.payload + 28, evil + 48, n - 48);

    v6_frag(&f, 4, 6, seg, 0, 48, true);
    assert_int_equal(dec_at(d, &f, 1000, &p), OWFP_DECODE_FRAGMENT);
    v6_frag(&f, 4, 6, seg, 48, n - 48, false);
    assert_int_equal(dec_at(d, &f, 1501, &p), OWFP_DECODE_FRAGMENT);
    assert_int_equal(owfp_decoder_stats(d)->fragments_dropped, 1);
    owfp_decoder_free(d);
}

/* ---- stats ---- */

static void test_decode_stats_add_up(void **state)
{
    (void)state;
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    struct fb tcpf = {0}, arp = {0}, bad = {0};
    v4_frame(&tcpf, "s");
    eth(&arp, 0x0806);
    fill(&arp, 0, 28);
    v4_frame(&bad, "s");
    bad.b[14] = 0x42;
    uint8_t seg[200];
    uint32_t n = segment(seg, 60);
    struct fb f1, f2;
    v4_frag(&f1, 1, seg, 0, 40, true);
    v4_frag(&f2, 1, seg, 40, n - 40, false);

    dec(d, DLT_EN10MB, &tcpf, &p);
    dec(d, DLT_EN10MB, &arp, &p);
    dec(d, DLT_EN10MB, &bad, &p);
    owfp_decode(d, DLT_EN10MB, tcpf.b, 20, tcpf.n, TS, &p);
    owfp_decode(d, DLT_EN10MB, tcpf.b, tcpf.n - 1, tcpf.n, TS, &p);
    dec(d, 12345, &tcpf, &p);
    dec(d, DLT_EN10MB, &f1, &p);
    dec(d, DLT_EN10MB, &f2, &p);

    const struct owfp_decode_stats *st = owfp_decoder_stats(d);
    assert_int_equal(st->frames, 8);
    assert_int_equal(st->tcp, 3);
    assert_int_equal(st->not_tcp, 1);
    assert_int_equal(st->malformed, 1);
    assert_int_equal(st->truncated, 1);
    assert_int_equal(st->payload_cut, 1);
    assert_int_equal(st->unsupported, 1);
    assert_int_equal(st->fragments, 2);
    assert_int_equal(st->datagrams_reassembled, 1);
    owfp_decoder_free(d);
}

/* ---- robustness: prefixes and random bytes ---- */

struct sample {
    int dlt;
    struct fb f;
    bool fragment;
};

/* One valid frame of each kind the decoder handles. */
static size_t make_samples(struct sample *s)
{
    size_t n = 0;
    static const uint8_t chain[] = {0, 43, 51, 60};
    uint8_t seg[200];
    uint32_t seg_len = segment(seg, 60);

    memset(s, 0, 16 * sizeof(*s));
    s[n].dlt = DLT_EN10MB;
    v4_frame(&s[n++].f, "plain ipv4 frame");

    s[n].dlt = DLT_EN10MB;
    eth(&s[n].f, 0x88A8);
    vlan(&s[n].f, 1, 0x8100);
    vlan(&s[n].f, 2, 0x0800);
    {
        size_t ip = ipv4(&s[n].f, 6, 1, 0, 12);
        tcp_opt(&s[n].f, OWFP_TCP_SYN, 1, 8, "opts", 4);
        fix_ipv4(&s[n].f, ip);
    }
    n++;

    s[n].dlt = DLT_EN10MB;
    v6_chain_frame(&s[n++].f, chain, sizeof(chain), 6, "v6 chain");

    static const uint8_t oui[3] = {0, 0, 0};
    s[n].dlt = DLT_EN10MB;
    snap_frame(&s[n++].f, 0xAA, 0xAA, oui, "snap");

    s[n].dlt = DLT_LINUX_SLL;
    sll(&s[n].f, 0x0800);
    v4_packet(&s[n++].f, "sll");

    s[n].dlt = DLT_LINUX_SLL2;
    sll2(&s[n].f, 0x86DD);
    v6_packet(&s[n++].f, "sll2");

    s[n].dlt = DLT_NULL;
    putle32(&s[n].f, 30);
    v6_packet(&s[n++].f, "null");

    s[n].dlt = DLT_LOOP;
    put32(&s[n].f, 2);
    v4_packet(&s[n++].f, "loop");

    s[n].dlt = DLT_RAW;
    v6_packet(&s[n++].f, "raw");

    s[n].dlt = DLT_EN10MB;
    s[n].fragment = true;
    v4_frag(&s[n++].f, 1, seg, 0, 40, true);

    s[n].dlt = DLT_EN10MB;
    s[n].fragment = true;
    v6_frag(&s[n++].f, 1, 6, seg, 0, 40, true);

    (void)seg_len;
    return n;
}

/* TCP results point into the frame, or (after reassembly) into the
 * decoder; either way never past what they say. */
static void check_bounds(enum owfp_decode_result r, const struct owfp_pkt *p, const uint8_t *buf,
                         uint32_t caplen)
{
    if (r != OWFP_DECODE_TCP)
        return;
    bool in_frame = p->payload >= buf && p->payload <= buf + caplen;
    if (in_frame)
        assert_true(p->payload + p->payload_len <= buf + caplen);
    else
        assert_true(p->payload_len <= 65535);
}

static void test_decode_every_prefix_stays_in_bounds(void **state)
{
    (void)state;
    struct sample s[16];
    size_t ns = make_samples(s);
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p;
    for (size_t i = 0; i < ns; i++) {
        const struct fb *f = &s[i].f;
        for (uint32_t len = 0; len <= f->n; len++) {
            /* Exactly `len` bytes, so ASan sees any read past them. */
            uint8_t *buf = len ? malloc(len) : NULL;
            if (len)
                memcpy(buf, f->b, len);
            /* Cut by the snapshot: never MALFORMED, a valid frame was cut. */
            enum owfp_decode_result r = owfp_decode(d, s[i].dlt, buf, len, f->n, TS, &p);
            check_bounds(r, &p, buf, len);
            if (s[i].fragment) {
                assert_true(r == OWFP_DECODE_TRUNCATED || r == OWFP_DECODE_FRAGMENT);
            } else {
                assert_true(r == OWFP_DECODE_TRUNCATED || r == OWFP_DECODE_TCP);
                if (len == f->n)
                    assert_int_equal(r, OWFP_DECODE_TCP);
            }
            /* Uncut at this length: whatever it is, it stays in bounds. */
            r = owfp_decode(d, s[i].dlt, buf, len, len, TS, &p);
            check_bounds(r, &p, buf, len);
            free(buf);
        }
    }
    owfp_decoder_free(d);
}

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_decode_random_bytes_stay_in_bounds(void **state)
{
    (void)state;
    static const int dlts[] = {DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_RAW, DLT_IPV4,
                               DLT_IPV6, DLT_NULL, DLT_LOOP};
    struct sample s[16];
    size_t ns = make_samples(s);
    struct owfp_decoder_config cfg = {.max_datagrams = 8, .max_frag_bytes = 4096,
                                      .frag_timeout_us = 1000};
    struct owfp_decoder *d = owfp_decoder_new(&cfg);
    assert_non_null(d);
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    struct owfp_pkt p;
    uint64_t results = 0;
    for (uint64_t i = 0; i < 200000; i++) {
        uint8_t tmp[512];
        uint32_t len;
        int dlt;
        if (i % 2 == 0) {
            /* Pure noise, with a plausible first byte now and then. */
            len = (uint32_t)(rng_next(&seed) % 160);
            for (uint32_t k = 0; k < len; k++)
                tmp[k] = (uint8_t)rng_next(&seed);
            dlt = dlts[rng_next(&seed) % (sizeof(dlts) / sizeof(dlts[0]))];
        } else {
            /* A valid frame with a few bytes changed: reaches deep. */
            const struct sample *sm = &s[rng_next(&seed) % ns];
            len = sm->f.n;
            memcpy(tmp, sm->f.b, len);
            unsigned flips = 1 + (unsigned)(rng_next(&seed) % 4);
            for (unsigned k = 0; k < flips; k++)
                tmp[rng_next(&seed) % len] = (uint8_t)rng_next(&seed);
            dlt = sm->dlt;
        }
        uint32_t caplen = len ? (uint32_t)(rng_next(&seed) % (len + 1)) : 0;
        if (rng_next(&seed) % 2)
            caplen = len;
        uint32_t wirelen = caplen + (uint32_t)(rng_next(&seed) % 3 == 0 ? rng_next(&seed) % 100000 : 0);
        uint8_t *buf = caplen ? malloc(caplen) : NULL;
        if (caplen)
            memcpy(buf, tmp, caplen);
        enum owfp_decode_result r = owfp_decode(d, dlt, buf, caplen, wirelen, i * 10, &p);
        check_bounds(r, &p, buf, caplen);
        free(buf);
        results++;
    }
    const struct owfp_decode_stats *st = owfp_decoder_stats(d);
    assert_int_equal(st->frames, results);
    assert_true(st->tcp + st->not_tcp + st->truncated + st->malformed + st->unsupported <=
                st->frames);
    owfp_decoder_free(d);
}

/* ---- real captures ---- */

struct counts {
    uint64_t frames, tcp, not_tcp, fragment, truncated, malformed, unsupported;
    uint64_t payload, cut;
    uint32_t max_payload;
    bool read_error; /* libpcap stopped before the end of the file */
};

/* Decodes a whole capture; returns its link type. */
static int decode_file(const char *path, struct counts *c)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_open_offline(path, err);
    if (pc == NULL)
        fail_msg("%s: %s", path, err);
    int dlt = pcap_datalink(pc);
    struct owfp_decoder *d = new_decoder();
    memset(c, 0, sizeof(*c));
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc;
    while ((rc = pcap_next_ex(pc, &h, &data)) == 1) {
        struct owfp_pkt p;
        uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000u + (uint64_t)h->ts.tv_usec;
        enum owfp_decode_result r = owfp_decode(d, dlt, data, h->caplen, h->len, ts, &p);
        c->frames++;
        switch (r) {
        case OWFP_DECODE_TCP:
            c->tcp++;
            c->payload += p.payload_len;
            c->cut += p.payload_cut;
            if (p.payload_len > c->max_payload)
                c->max_payload = p.payload_len;
            check_bounds(r, &p, data, h->caplen);
            break;
        case OWFP_DECODE_NOT_TCP:
            c->not_tcp++;
            break;
        case OWFP_DECODE_FRAGMENT:
            c->fragment++;
            break;
        case OWFP_DECODE_TRUNCATED:
            c->truncated++;
            break;
        case OWFP_DECODE_MALFORMED:
            c->malformed++;
            break;
        case OWFP_DECODE_UNSUPPORTED:
            c->unsupported++;
            break;
        }
    }
    c->read_error = rc != PCAP_ERROR_BREAK;
    const struct owfp_decode_stats *st = owfp_decoder_stats(d);
    assert_int_equal(st->frames, c->frames);
    assert_int_equal(st->tcp, c->tcp);
    assert_int_equal(st->malformed, c->malformed);
    owfp_decoder_free(d);
    pcap_close(pc);
    return dlt;
}

static int decode_whole_file(const char *path, struct counts *c)
{
    int dlt = decode_file(path, c);
    assert_false(c->read_error);
    return dlt;
}

static void test_decode_corpus_bigtcp_and_tso_exceed_ip_length(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        uint16_t ip_len_field; /* what the header says */
        uint32_t payload;      /* what tcpdump says the segment carries */
    } cases[] = {
        {"tcpdump/bigtcp-ipv4.pcap", 0, 80000},
        {"tcpdump/bigtcp-ipv6.pcap", 0, 79968},
        {"tcpdump/ipv4_tcp_http_xml_tso.pcap", 0, 1976},
        {"tcpdump/gso-ipv4.pcap", 7292, 7240},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), CORPUS "%s", cases[i].file);
        struct counts c;
        decode_whole_file(path, &c);
        assert_int_equal(c.frames, 1);
        assert_int_equal(c.tcp, 1);
        assert_int_equal(c.payload, cases[i].payload);
        assert_int_equal(c.cut, 0);
        assert_true(c.payload > cases[i].ip_len_field || cases[i].ip_len_field > 1500);
    }
}

static void test_decode_corpus_link_types_and_encapsulations(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        int dlt;
        uint64_t frames, tcp, payload;
    } cases[] = {
        /* 802.1Q VLAN 6 */
        {"suricata-verify/eve-payload-01-tcp-exact-overlap/tcp-overlap.pcap", DLT_EN10MB, 7, 7, 8},
        /* IPv6 in VLAN 1111 */
        {"suricata-verify/compress_ipv6-01/input.pcap", DLT_EN10MB, 7, 7, 149},
        /* VLAN 0 */
        {"zeek/http-vlan-0.pcap", DLT_EN10MB, 14, 14, 136 + 5007},
        /* DLT_NULL, AF 30 (macOS IPv6) */
        {"suricata-verify/http-ipv6/input.pcap", DLT_NULL, 14, 14, 74 + 717},
        /* DLT_NULL, AF_INET */
        {"suricata-verify/http-gap-simple/input.pcap", DLT_NULL, 31, 31, 120 + 418},
        /* 802.3 + LLC/SNAP */
        {"zeek/snap-tcp.pcap", DLT_EN10MB, 8, 8, 37 + 77},
        /* raw IP */
        {"zeek/tcp/payload-syn.pcap", DLT_RAW, 6, 6, 100},
        /* Linux cooked, nanosecond pcap */
        {"tcpdump/tcp-handshake-nano.pcap", DLT_LINUX_SLL, 3, 3, 0},
        /* pcapng, both byte orders: DHCP only */
        {"debian-gopacket/pcapgo/tests/le/test001.pcapng", DLT_EN10MB, 4, 0, 0},
        {"debian-gopacket/pcapgo/tests/be/test001.pcapng", DLT_EN10MB, 4, 0, 0},
        /* QinQ 802.1ad: ARP only */
        {"tcpdump/802.1ad_QinQ.pcap", DLT_EN10MB, 2, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), CORPUS "%s", cases[i].file);
        struct counts c;
        assert_int_equal(decode_whole_file(path, &c), cases[i].dlt);
        assert_int_equal(c.frames, cases[i].frames);
        assert_int_equal(c.tcp, cases[i].tcp);
        assert_int_equal(c.payload, cases[i].payload);
        assert_int_equal(c.tcp + c.not_tcp, c.frames);
    }
}

static void test_decode_corpus_truncated_and_malformed_files(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        uint64_t tcp, truncated, malformed, not_tcp, cut;
    } cases[] = {
        /* 4 TCP-claiming packets with L4 too short, plus UDP/GRE ones */
        {"suricata-verify/decode-too-small/test.pcap", 0, 0, 2, 6, 0},
        /* 46 bytes captured of a 262144-byte frame: TCP header cut */
        {"tcpdump/tcp_header_heapoverflow.pcap", 0, 1, 0, 0, 0},
        /* TCP data offset 15, 30 bytes of it captured */
        {"tcpdump/heapoverflow-tcp_print.pcap", 0, 1, 0, 0, 0},
        /* RST with 58 bytes of data, the last one cut */
        {"tcpdump/tcp_rst_data-trunc.pcap", 1, 0, 0, 0, 1},
        /* 54-byte snaplen: the SYN's 40-byte TCP header is cut, the other
         * headers fit and all payload is cut (tshark's tcp.len sum agrees) */
        {"zeek/tcp/truncated-header.pcap", 23, 1, 0, 0, 605},
        /* headers only: all payload cut, retransmissions included (Zeek's
         * 24,257 missed bytes count each byte once) */
        {"zeek/tcp/retransmit-fast009.pcap", 39, 0, 0, 0, 28547},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), CORPUS "%s", cases[i].file);
        struct counts c;
        decode_whole_file(path, &c);
        assert_int_equal(c.tcp, cases[i].tcp);
        assert_int_equal(c.truncated, cases[i].truncated);
        assert_int_equal(c.malformed, cases[i].malformed);
        assert_int_equal(c.not_tcp, cases[i].not_tcp);
        assert_int_equal(c.cut, cases[i].cut);
    }
}

static void test_decode_corpus_trailer_trimmed(void **state)
{
    (void)state;
    struct counts c;
    decode_whole_file(CORPUS "suricata-verify/tcp-5379/input.pcap", &c);
    assert_int_equal(c.tcp, 1);
    assert_int_equal(c.payload, 60);
}

/* Files whose packets are malformed on purpose (MANIFEST.md); every other
 * capture must decode without a single MALFORMED or UNSUPPORTED. */
static const char *const on_purpose_malformed[] = {
    "suricata-verify/decode-too-small/test.pcap",
    "tcpdump/tcp_header_heapoverflow.pcap",
    "tcpdump/heapoverflow-tcp_print.pcap",
};

/* libpcap 1.10 refuses a pcapng whose interfaces have different snapshot
 * lengths and stops after the first packet of this one. */
static const char *const unreadable_to_the_end = "le/test005.pcapng";

static bool ends_with(const char *s, size_t len, const char *tail)
{
    size_t n = strlen(tail);
    return len >= n && strcmp(s + len - n, tail) == 0;
}

static struct {
    unsigned files, checked, read_errors;
    uint64_t tcp;
} corpus_walk;

static int corpus_file(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    size_t len = strlen(path);
    if (type != FTW_F || !(ends_with(path, len, ".pcap") || ends_with(path, len, ".pcapng")))
        return 0;
    corpus_walk.files++;
    for (size_t i = 0; i < sizeof(on_purpose_malformed) / sizeof(on_purpose_malformed[0]); i++)
        if (ends_with(path, len, on_purpose_malformed[i]))
            return 0;
    struct counts c;
    decode_file(path, &c);
    if (c.read_error) {
        if (!ends_with(path, len, unreadable_to_the_end))
            fail_msg("%s: libpcap read error", path);
        corpus_walk.read_errors++;
    }
    if (c.malformed != 0 || c.unsupported != 0)
        fail_msg("%s: %llu malformed, %llu unsupported", path, (unsigned long long)c.malformed,
                 (unsigned long long)c.unsupported);
    corpus_walk.checked++;
    corpus_walk.tcp += c.tcp;
    return 0;
}

static void test_decode_corpus_no_malformed(void **state)
{
    (void)state;
    memset(&corpus_walk, 0, sizeof(corpus_walk));
    assert_int_equal(nftw(CORPUS, corpus_file, 16, FTW_PHYS), 0);
    assert_int_equal(corpus_walk.files, 73);
    assert_int_equal(corpus_walk.checked, 70);
    assert_int_equal(corpus_walk.read_errors, 1);
    assert_int_equal(corpus_walk.tcp, 1725);
}

/* ---- looking ahead (owfp_decode_peek) ---- */

/* The peek names the endpoints owfp_decode() finds. */
static void expect_peek_agrees(int dlt, const struct fb *f)
{
    struct owfp_decoder *d = new_decoder();
    struct owfp_pkt p, q;
    memset(&q, 0x55, sizeof(q));
    assert_int_equal(dec(d, dlt, f, &p), OWFP_DECODE_TCP);
    assert_true(owfp_decode_peek(dlt, f->b, f->n, &q));
    assert_int_equal(q.ip_version, p.ip_version);
    assert_memory_equal(q.src, p.src, 16);
    assert_memory_equal(q.dst, p.dst, 16);
    assert_int_equal(q.sport, p.sport);
    assert_int_equal(q.dport, p.dport);
    owfp_decoder_free(d);
}

static void test_decode_peek_agrees_with_decode(void **state)
{
    (void)state;
    struct fb f = {0};
    v4_frame(&f, "hello");
    expect_peek_agrees(DLT_EN10MB, &f);
    f = (struct fb){0};
    v6_frame(&f, "hello");
    expect_peek_agrees(DLT_EN10MB, &f);
    f = (struct fb){0};
    eth(&f, 0x8100);
    vlan(&f, 5, 0x0800);
    size_t ip = ipv4(&f, 6, 1, 0, 8); /* with IP options */
    tcp(&f, "x");
    fix_ipv4(&f, ip);
    expect_peek_agrees(DLT_EN10MB, &f);
    f = (struct fb){0};
    v4_packet(&f, "raw");
    expect_peek_agrees(DLT_RAW, &f);
    f = (struct fb){0};
    v6_packet(&f, "raw");
    expect_peek_agrees(DLT_RAW, &f);
}

/* Fragments, other protocols, IPv6 extension headers, link types it does
 * not know and frames too short for the ports: no hint. */
static void test_decode_peek_declines(void **state)
{
    (void)state;
    struct owfp_pkt q;
    struct fb f = {0};
    eth(&f, 0x0800);
    size_t ip = ipv4(&f, 6, 1, 0x2000, 0); /* more fragments */
    tcp(&f, "frag");
    fix_ipv4(&f, ip);
    assert_false(owfp_decode_peek(DLT_EN10MB, f.b, f.n, &q));
    f = (struct fb){0};
    eth(&f, 0x0800);
    ip = ipv4(&f, 17, 1, 0, 0); /* UDP */
    fill(&f, 0, 8);
    fix_ipv4(&f, ip);
    assert_false(owfp_decode_peek(DLT_EN10MB, f.b, f.n, &q));
    f = (struct fb){0};
    eth(&f, 0x86DD);
    ip = ipv6(&f, 0); /* hop-by-hop options first */
    fill(&f, 0, 8);
    tcp(&f, "x");
    fix_ipv6(&f, ip);
    assert_false(owfp_decode_peek(DLT_EN10MB, f.b, f.n, &q));
    f = (struct fb){0};
    v4_frame(&f, "hello");
    assert_false(owfp_decode_peek(DLT_EN10MB, f.b, 14 + 20 + 2, &q)); /* ports cut */
    assert_true(owfp_decode_peek(DLT_EN10MB, f.b, 14 + 20 + 4, &q));
    assert_false(owfp_decode_peek(DLT_LINUX_SLL, f.b, f.n, &q));
    f = (struct fb){0};
    eth(&f, 0x0806); /* ARP */
    fill(&f, 0, 28);
    assert_false(owfp_decode_peek(DLT_EN10MB, f.b, f.n, &q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_peek_agrees_with_decode),
        cmocka_unit_test(test_decode_peek_declines),
        cmocka_unit_test(test_decode_ethernet_ipv4_tcp_fields),
        cmocka_unit_test(test_decode_ethernet_ipv6_tcp_fields),
        cmocka_unit_test(test_decode_ethernet_padding_uses_ip_length),
        cmocka_unit_test(test_decode_trailer_beyond_ip_length_is_not_payload),
        cmocka_unit_test(test_decode_not_tcp_protocols),
        cmocka_unit_test(test_decode_8023_llc_snap),
        cmocka_unit_test(test_decode_vlan_8021q),
        cmocka_unit_test(test_decode_vlan_qinq),
        cmocka_unit_test(test_decode_vlan_depth_limit),
        cmocka_unit_test(test_decode_vlan_then_llc_snap),
        cmocka_unit_test(test_decode_vlan_arp_is_not_tcp),
        cmocka_unit_test(test_decode_linux_sll),
        cmocka_unit_test(test_decode_linux_sll2),
        cmocka_unit_test(test_decode_l3_off_each_link),
        cmocka_unit_test(test_decode_raw_ip_version_nibble),
        cmocka_unit_test(test_decode_dlt_ipv4_and_ipv6),
        cmocka_unit_test(test_decode_null_both_byte_orders),
        cmocka_unit_test(test_decode_loop_network_order),
        cmocka_unit_test(test_decode_null_family_must_match_version),
        cmocka_unit_test(test_decode_unsupported_link_type),
        cmocka_unit_test(test_decode_link_supported),
        cmocka_unit_test(test_decode_ipv4_options_skipped),
        cmocka_unit_test(test_decode_tcp_options_skipped),
        cmocka_unit_test(test_decode_ipv4_malformed_headers),
        cmocka_unit_test(test_decode_ipv6_malformed_headers),
        cmocka_unit_test(test_decode_malformed_is_counted),
        cmocka_unit_test(test_decode_tso_ip_length_zero),
        cmocka_unit_test(test_decode_tso_ip_length_larger_than_frame),
        cmocka_unit_test(test_decode_ipv6_bigtcp_jumbo_and_zero_length),
        cmocka_unit_test(test_decode_snaplen_cut_payload),
        cmocka_unit_test(test_decode_snaplen_cut_tso_uses_wire_length),
        cmocka_unit_test(test_decode_snaplen_cut_only_trailer),
        cmocka_unit_test(test_decode_snaplen_cut_header_is_truncated),
        cmocka_unit_test(test_decode_wirelen_below_caplen_trusts_captured),
        cmocka_unit_test(test_decode_ipv6_each_extension_header),
        cmocka_unit_test(test_decode_ipv6_esp_and_no_next_header),
        cmocka_unit_test(test_decode_ipv6_extension_header_cut_and_overlong),
        cmocka_unit_test(test_decode_ipv4_fragments_in_order),
        cmocka_unit_test(test_decode_ipv4_fragments_out_of_order),
        cmocka_unit_test(test_decode_ipv4_fragments_overlap_first_copy_wins),
        cmocka_unit_test(test_decode_ipv4_fragments_overlap_cannot_rewrite_tcp_header),
        cmocka_unit_test(test_decode_ipv4_fragments_duplicate),
        cmocka_unit_test(test_decode_ipv4_fragments_separate_by_key),
        cmocka_unit_test(test_decode_ipv4_fragments_timeout),
        cmocka_unit_test(test_decode_ipv4_fragments_default_timeout_30s),
        cmocka_unit_test(test_decode_ipv4_fragments_over_datagram_cap),
        cmocka_unit_test(test_decode_ipv4_fragments_over_byte_cap),
        cmocka_unit_test(test_decode_ipv4_fragments_conflicting_last),
        cmocka_unit_test(test_decode_ipv4_fragments_invalid_alone),
        cmocka_unit_test(test_decode_ipv4_fragments_largest_datagram),
        cmocka_unit_test(test_decode_ipv4_fragments_of_other_protocols_not_kept),
        cmocka_unit_test(test_decode_ipv4_fragment_cut_by_snaplen_is_dropped),
        cmocka_unit_test(test_decode_ipv4_reassembled_payload_is_decoder_owned),
        cmocka_unit_test(test_decode_ipv6_fragments),
        cmocka_unit_test(test_decode_ipv6_fragments_then_extension_headers),
        cmocka_unit_test(test_decode_ipv6_fragments_keyed_by_id),
        cmocka_unit_test(test_decode_ipv6_fragments_of_other_protocols_not_kept),
        cmocka_unit_test(test_decode_ipv6_atomic_fragment),
        cmocka_unit_test(test_decode_ipv6_nested_fragment_header_is_malformed),
        cmocka_unit_test(test_decode_ipv6_fragments_overlap_and_timeout),
        cmocka_unit_test(test_decode_stats_add_up),
        cmocka_unit_test(test_decode_every_prefix_stays_in_bounds),
        cmocka_unit_test(test_decode_random_bytes_stay_in_bounds),
        cmocka_unit_test(test_decode_corpus_bigtcp_and_tso_exceed_ip_length),
        cmocka_unit_test(test_decode_corpus_link_types_and_encapsulations),
        cmocka_unit_test(test_decode_corpus_truncated_and_malformed_files),
        cmocka_unit_test(test_decode_corpus_trailer_trimmed),
        cmocka_unit_test(test_decode_corpus_no_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
