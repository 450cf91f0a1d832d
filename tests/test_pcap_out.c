/*
 * --write-pcap's parts (src/replay/seqmap.c, pcap_tmpl.c, pcap_build.c,
 * pcap_out.c): carrying original stream offsets into the edited stream,
 * reading a frame's headers, building segments with correct checksums, and
 * the capture file itself (creation, link type, write errors). Whole
 * replays are checked against tshark in replay_write_pcap.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pcap/pcap.h>

#include "replay/decode.h"
#include "replay/pcap_build.h"
#include "replay/pcap_out.h"
#include "replay/pcap_tmpl.h"
#include "replay/seqmap.h"

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)rd16(p) << 16 | rd16(p + 2);
}

/* ---- seqmap ------------------------------------------------------------------- */

/* An original offset and the output offset it goes with. */
struct io {
    uint64_t in, out;
};
/* A list of them, and its length, as two arguments. */
#define IOS(...) \
    (const struct io[]){__VA_ARGS__}, sizeof((const struct io[]){__VA_ARGS__}) / sizeof(struct io)

/* owfp_seqmap_note for each pair, in order. */
static void note(struct owfp_seqmap *m, const struct io *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        owfp_seqmap_note(m, v[i].in, v[i].out);
}

/* owfp_seqmap_out gives each pair's `out` for its `in`. */
static void expect_out(const struct owfp_seqmap *m, const struct io *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t got = owfp_seqmap_out(m, v[i].in);
        if (got != v[i].out)
            fail_msg("owfp_seqmap_out(%llu) = %llu, expected %llu", (unsigned long long)v[i].in,
                     (unsigned long long)got, (unsigned long long)v[i].out);
    }
}

static void test_seqmap_pass_through_is_identity(void **state)
{
    (void)state;
    struct owfp_seqmap m;
    owfp_seqmap_init(&m);
    for (uint64_t in = 1000; in <= 100000; in += 1000)
        owfp_seqmap_note(&m, in, in);
    assert_int_equal(m.n, 1); /* one shift throughout: nothing to remember */
    /* Acknowledging bytes not written yet acknowledges what was written. */
    expect_out(&m, IOS({0, 0}, {1500, 1500}, {100000, 100000}, {150000, 100000}));
}

static void test_seqmap_hole_is_not_in_the_output(void **state)
{
    (void)state;
    struct owfp_seqmap m;
    owfp_seqmap_init(&m);
    /* 50 bytes never arrived, then 100 more went through. */
    note(&m, IOS({100, 100}, {250, 200}));
    /* 120 and 150: inside the hole. */
    expect_out(&m, IOS({100, 100}, {120, 100}, {150, 100}, {200, 150}, {250, 200}, {40, 40}));
}

static void test_seqmap_held_bytes_and_their_release(void **state)
{
    (void)state;
    struct owfp_seqmap m;
    owfp_seqmap_init(&m);
    owfp_seqmap_note(&m, 1000, 997); /* a callout holds 3 bytes */
    expect_out(&m, IOS({1000, 997}));
    owfp_seqmap_note(&m, 1000, 1000); /* and releases them */
    expect_out(&m, IOS({1000, 1000}, {900, 900}));
}

/* A word replaced by as many stars: the output is written in bursts at one
 * input offset (kept bytes, injected stars, kept bytes). */
static void test_seqmap_bursts_at_one_offset_keep_the_last(void **state)
{
    (void)state;
    struct owfp_seqmap m;
    owfp_seqmap_init(&m);
    note(&m, IOS({309, 18}, {309, 24}, {309, 309}));
    expect_out(&m, IOS({309, 309}, {245, 245}, {0, 0}));
}

static void test_seqmap_injection_and_removal(void **state)
{
    (void)state;
    struct owfp_seqmap m;
    owfp_seqmap_init(&m);
    /* 10 bytes injected, then 20 removed. */
    note(&m, IOS({100, 110}, {200, 210}, {300, 290}));
    /* 210 -> 210: not before what came earlier. */
    expect_out(&m, IOS({200, 210}, {150, 160}, {250, 240}, {210, 210}, {300, 290}));
}

static void test_seqmap_forgets_the_oldest_points(void **state)
{
    (void)state;
    struct owfp_seqmap m;
    owfp_seqmap_init(&m);
    /* Every step removes one byte: each point is needed. */
    for (uint64_t k = 1; k <= 40; k++)
        owfp_seqmap_note(&m, k * 100, k * 99);
    assert_int_equal(m.n, OWFP_SEQMAP_POINTS);
    assert_int_equal(owfp_seqmap_out(&m, 4000), 3960);
    assert_int_equal(owfp_seqmap_out(&m, 3950), 3910);
    /* Placed from the oldest point kept, never below 0, never above it. */
    uint64_t old = owfp_seqmap_out(&m, 100);
    assert_true(old <= m.pt[0].out);
}

/* ---- templates -------------------------------------------------------------------- */

struct frame {
    uint8_t b[256];
    uint32_t n;
};

static void put(struct frame *f, const void *p, size_t n)
{
    assert_true(f->n + n <= sizeof(f->b));
    memcpy(f->b + f->n, p, n);
    f->n += (uint32_t)n;
}

static void put16(struct frame *f, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(f, b, 2);
}

static void put32(struct frame *f, uint32_t v)
{
    put16(f, (uint16_t)(v >> 16));
    put16(f, (uint16_t)v);
}

static const uint8_t MACS[12] = {1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2};

/* Ethernet + VLAN + IPv4 (id 0x1234, TTL 61, TOS 0x28, `frag` flags) + TCP
 * with an MSS option + "hi". */
static void v4_frame(struct frame *f, uint16_t frag)
{
    static const uint8_t ip_tail[8] = {10, 0, 0, 1, 10, 0, 0, 2};
    static const uint8_t mss[4] = {2, 4, 0x05, 0xb4};
    f->n = 0;
    put(f, MACS, 12);
    put16(f, 0x8100);
    put16(f, 7);
    put16(f, 0x0800);
    put16(f, 0x4528);
    put16(f, 20 + 24 + 2);
    put16(f, 0x1234);
    put16(f, frag);
    put16(f, 61 << 8 | 6);
    put16(f, 0);
    put(f, ip_tail, 8);
    put16(f, 40000);
    put16(f, 80);
    put32(f, 1000);
    put32(f, 2000);
    put16(f, 6 << 12 | OWFP_TCP_SYN);
    put16(f, 512);
    put32(f, 0);
    put(f, mss, 4);
    put(f, "hi", 2);
}

static struct owfp_pkt decode_one(const struct frame *f)
{
    struct owfp_decoder *d = owfp_decoder_new(NULL);
    assert_non_null(d);
    struct owfp_pkt p;
    assert_int_equal(owfp_decode(d, DLT_EN10MB, f->b, f->n, f->n, 1, &p), OWFP_DECODE_TCP);
    owfp_decoder_free(d);
    return p;
}

/* v4_frame, decoded, and the template taken from it. */
static struct owfp_pkt v4_template(struct frame *f, struct owfp_seg_tmpl *t)
{
    v4_frame(f, 0);
    struct owfp_pkt p = decode_one(f);
    assert_true(owfp_tmpl_from_frame(t, f->b, f->n, &p));
    return p;
}

static void test_tmpl_from_frame(void **state)
{
    (void)state;
    struct frame f;
    struct owfp_seg_tmpl t;
    struct owfp_pkt p = v4_template(&f, &t);
    assert_int_equal(t.link_len, 18);
    assert_memory_equal(t.link, f.b, 18);
    assert_int_equal(t.ip_version, 4);
    assert_int_equal(t.ttl, 61);
    assert_int_equal(t.tos, 0x28);
    assert_int_equal(t.ip_id, 0x1234);
    assert_int_equal(t.sport, 40000);
    assert_int_equal(t.window, 512);
    const uint8_t *opts;
    assert_int_equal(owfp_tmpl_tcp_options(f.b, f.n, &p, &opts), 4);
    assert_int_equal(opts[0], 2);
    assert_true(owfp_tmpl_holds_tcp(f.b, f.n, &p));

    /* The mirror swaps the endpoints and the Ethernet addresses. */
    struct owfp_seg_tmpl m;
    owfp_tmpl_mirror(&m, &t, DLT_EN10MB);
    assert_int_equal(m.sport, 80);
    assert_int_equal(m.dport, 40000);
    assert_memory_equal(m.src, t.dst, 16);
    assert_memory_equal(m.link, MACS + 6, 6);
    assert_memory_equal(m.link + 6, MACS, 6);
    assert_memory_equal(m.link + 12, t.link + 12, 6);
}

static void test_tmpl_frame_of_a_fragment_does_not_hold_tcp(void **state)
{
    (void)state;
    struct frame f;
    v4_frame(&f, 0);
    struct owfp_pkt p = decode_one(&f);
    /* The same bytes claiming to be the last fragment at offset 8. */
    f.b[18 + 6] = 0;
    f.b[18 + 7] = 1;
    const uint8_t *opts;
    assert_false(owfp_tmpl_holds_tcp(f.b, f.n, &p));
    assert_int_equal(owfp_tmpl_tcp_options(f.b, f.n, &p, &opts), 0);
    /* A frame whose header does not match the decoded segment neither. */
    v4_frame(&f, 0);
    p.seq++;
    assert_false(owfp_tmpl_holds_tcp(f.b, f.n, &p));
    /* A cut frame. */
    v4_frame(&f, 0);
    p = decode_one(&f);
    assert_false(owfp_tmpl_holds_tcp(f.b, 18 + 20 + 10, &p));
}

/* ---- building ------------------------------------------------------------------------ */

static uint16_t ones_sum(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += rd16(p + i);
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)sum;
}

/* The TCP checksum verifies: the sum over pseudo-header and segment is all ones. */
static void expect_tcp_checksum(const uint8_t *src, const uint8_t *dst, size_t alen,
                                const uint8_t *tcp, size_t tcp_len)
{
    uint32_t sum = ones_sum(0, src, alen);
    sum += ones_sum(0, dst, alen);
    sum += 6 + (uint32_t)tcp_len;
    assert_int_equal(ones_sum(sum, tcp, tcp_len), 0xFFFF);
}

static void test_build_ipv4_segment(void **state)
{
    (void)state;
    struct frame f;
    struct owfp_seg_tmpl t;
    v4_template(&f, &t);
    static uint8_t buf[OWFP_BUILD_FRAME_MAX];
    const char *data = "odd length";
    struct owfp_build_seg s = {
        .seq = 0xfffffff0, .ack = 77, .flags = OWFP_TCP_ACK | OWFP_TCP_PSH,
        .payload = (const uint8_t *)data, .len = strlen(data),
    };
    size_t n = owfp_build_segment(buf, DLT_EN10MB, &t, &s);
    assert_int_equal(n, 18 + 20 + 20 + strlen(data));
    assert_memory_equal(buf, f.b, 18);
    const uint8_t *ip = buf + 18, *tcp = ip + 20;
    assert_int_equal(ip[0], 0x45);
    assert_int_equal(rd16(ip + 2), 20 + 20 + strlen(data));
    assert_int_equal(rd16(ip + 6), 0x4000); /* DF */
    assert_int_equal(ip[8], 61);
    assert_int_equal(ones_sum(0, ip, 20), 0xFFFF);
    assert_int_equal(rd32(tcp + 4), 0xfffffff0);
    assert_int_equal(rd32(tcp + 8), 77);
    assert_int_equal(tcp[12], 5 << 4);
    assert_int_equal(tcp[13], OWFP_TCP_ACK | OWFP_TCP_PSH);
    assert_int_equal(rd16(tcp + 14), 512);
    assert_memory_equal(tcp + 20, data, strlen(data));
    expect_tcp_checksum(ip + 12, ip + 16, 4, tcp, 20 + strlen(data));

    /* The decoder reads back what was built. */
    struct owfp_decoder *d = owfp_decoder_new(NULL);
    struct owfp_pkt q;
    assert_int_equal(owfp_decode(d, DLT_EN10MB, buf, (uint32_t)n, (uint32_t)n, 1, &q),
                     OWFP_DECODE_TCP);
    assert_int_equal(q.seq, 0xfffffff0);
    assert_int_equal(q.payload_len, strlen(data));
    owfp_decoder_free(d);
}

static void test_build_ipv6_segment_with_options(void **state)
{
    (void)state;
    struct owfp_seg_tmpl t = {.ip_version = 6, .tos = 0xb8, .ttl = 9, .flow_label = 0xabcde,
                              .sport = 1, .dport = 2, .window = 3};
    t.src[0] = 0x20, t.src[15] = 1, t.dst[0] = 0x20, t.dst[15] = 2;
    static uint8_t buf[OWFP_BUILD_FRAME_MAX];
    static const uint8_t opts[4] = {1, 1, 1, 0};
    struct owfp_build_seg s = {.seq = 5, .flags = OWFP_TCP_SYN, .opts = opts, .opts_len = 4};
    size_t n = owfp_build_segment(buf, DLT_RAW, &t, &s);
    assert_int_equal(n, 40 + 24);
    assert_int_equal(rd32(buf), 6u << 28 | 0xb8u << 20 | 0xabcde);
    assert_int_equal(rd16(buf + 4), 24);
    assert_int_equal(buf[6], 6);
    assert_int_equal(buf[7], 9);
    assert_int_equal(buf[40 + 12], 6 << 4);
    assert_memory_equal(buf + 60, opts, 4);
    expect_tcp_checksum(buf + 8, buf + 24, 16, buf + 40, 24);
}

/* An 802.3 frame with LLC/SNAP says its own length: the new one's. */
static void test_build_fixes_8023_length(void **state)
{
    (void)state;
    struct owfp_seg_tmpl t = {.ip_version = 4, .ttl = 1};
    static const uint8_t snap[8] = {0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00};
    memcpy(t.link, MACS, 12);
    t.link[12] = 0;
    t.link[13] = 99; /* the captured frame's length */
    memcpy(t.link + 14, snap, 8);
    t.link_len = 22;
    static uint8_t buf[OWFP_BUILD_FRAME_MAX];
    struct owfp_build_seg s = {.payload = (const uint8_t *)"abc", .len = 3};
    size_t n = owfp_build_segment(buf, DLT_EN10MB, &t, &s);
    assert_int_equal(rd16(buf + 12), n - 14);
}

static void test_build_max_payload_fits_a_datagram(void **state)
{
    (void)state;
    assert_int_equal(owfp_build_max_payload(4) + 40, 65535);
    assert_int_equal(owfp_build_max_payload(6) + 60, 65535);
}

/* ---- the capture file --------------------------------------------------------------- */

static char *temp_path(void)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/owfp_pcap_out_%d.pcap", (int)getpid());
    return path;
}

/* Closes `po`, which must succeed, and counts the frames in the file it
 * wrote at temp_path(), which then goes. */
static int close_and_count(struct owfp_pcap_out *po, int *dlt)
{
    assert_int_equal(owfp_pcap_out_free(po), 0);
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(temp_path(), err);
    assert_non_null(p);
    *dlt = pcap_datalink(p);
    struct pcap_pkthdr *h;
    const u_char *d;
    int n = 0;
    while (pcap_next_ex(p, &h, &d) == 1)
        n++;
    pcap_close(p);
    unlink(temp_path());
    return n;
}

/* A frame that is not TCP, through the output. */
static void put_frame(struct owfp_pcap_out *po, int dlt, const uint8_t *frame, uint32_t len,
                      uint64_t ts_us)
{
    owfp_pcap_out_frame_begin(po, dlt, frame, len, len, ts_us, NULL);
    owfp_pcap_out_frame_end(po, NULL);
}

static void test_out_empty_capture_is_valid(void **state)
{
    (void)state;
    struct owfp_pcap_out *po = owfp_pcap_out_new(temp_path());
    assert_non_null(po);
    int dlt;
    assert_int_equal(close_and_count(po, &dlt), 0);
}

static void test_out_other_link_types_are_not_written(void **state)
{
    (void)state;
    struct owfp_pcap_out *po = owfp_pcap_out_new(temp_path());
    assert_non_null(po);
    static const uint8_t frame[60] = {0};
    /* Not TCP: copied, in the first frame's link type only. */
    put_frame(po, DLT_LINUX_SLL, frame, 60, 1);
    put_frame(po, DLT_EN10MB, frame, 60, 2);
    put_frame(po, DLT_LINUX_SLL, frame, 60, 3);
    int dlt;
    assert_int_equal(close_and_count(po, &dlt), 2);
    assert_int_equal(dlt, DLT_LINUX_SLL);
}

static void test_out_errors(void **state)
{
    (void)state;
    assert_null(owfp_pcap_out_new("/nonexistent-dir/x.pcap"));
    assert_int_equal(owfp_pcap_out_free(NULL), 0);
    if (access("/dev/full", W_OK) != 0)
        skip();
    struct owfp_pcap_out *po = owfp_pcap_out_new("/dev/full");
    assert_non_null(po);
    static const uint8_t frame[1500] = {0};
    for (int i = 0; i < 100; i++)
        put_frame(po, DLT_EN10MB, frame, 1500, (uint64_t)i);
    assert_int_equal(owfp_pcap_out_free(po), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seqmap_pass_through_is_identity),
        cmocka_unit_test(test_seqmap_hole_is_not_in_the_output),
        cmocka_unit_test(test_seqmap_held_bytes_and_their_release),
        cmocka_unit_test(test_seqmap_bursts_at_one_offset_keep_the_last),
        cmocka_unit_test(test_seqmap_injection_and_removal),
        cmocka_unit_test(test_seqmap_forgets_the_oldest_points),
        cmocka_unit_test(test_tmpl_from_frame),
        cmocka_unit_test(test_tmpl_frame_of_a_fragment_does_not_hold_tcp),
        cmocka_unit_test(test_build_ipv4_segment),
        cmocka_unit_test(test_build_ipv6_segment_with_options),
        cmocka_unit_test(test_build_fixes_8023_length),
        cmocka_unit_test(test_build_max_payload_fits_a_datagram),
        cmocka_unit_test(test_out_empty_capture_is_valid),
        cmocka_unit_test(test_out_other_link_types_are_not_written),
        cmocka_unit_test(test_out_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
