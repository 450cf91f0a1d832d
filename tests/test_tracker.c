/*
 * The TCP connection tracker (src/replay/tracker.c): segments built by hand
 * go in, and every event that comes out is written to a log as one token,
 * so each test states the exact sequence it expects:
 *
 *   o<id>:<initiator port>  open            d<id>.<side>:<bytes>  data
 *   g<id>.<side>:<n>        gap             f<id>.<side>          FIN reached
 *   r<id>.<side>            RST             e<id>:<reason>        end
 *   x<id>                   forget
 *
 * Side 0 is initiator -> responder. The recorder also checks the order the
 * tracker promises for every connection (open before data, nothing after
 * end, forget once and only after end), and every test ends by freeing the
 * tracker and checking that each connection it created was forgotten
 * exactly once.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "replay/tracker.h"

#define SYN OWFP_TCP_SYN
#define ACK OWFP_TCP_ACK
#define FIN OWFP_TCP_FIN
#define RST OWFP_TCP_RST
#define PSH OWFP_TCP_PSH

#define SEC UINT64_C(1000000)
#define MAX_IDS 32

/* ---- event recorder ------------------------------------------------------ */

struct conn_seen {
    bool opened, ended;
    bool fin[2];
    unsigned forgotten;
};

struct fx {
    struct owfp_tracker *t;
    uint64_t now;        /* capture time of the next packet */
    char log[4096];
    size_t len;
    struct conn_seen seen[MAX_IDS];
    struct owfp_conn *last; /* connection of the last segment */
};

static struct conn_seen *seen_of(struct fx *f, const struct owfp_conn *c)
{
    assert_true(c->id > 0 && c->id < MAX_IDS);
    return &f->seen[c->id];
}

static void logf_(struct fx *f, const char *fmt, ...)
{
    va_list ap;
    if (f->len)
        f->log[f->len++] = ' ';
    va_start(ap, fmt);
    int n = vsnprintf(f->log + f->len, sizeof(f->log) - f->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(f->log) - f->len);
    f->len += (size_t)n;
}

/* Data, gap, FIN and RST belong between open and end. */
static void check_live(struct fx *f, const struct owfp_conn *c, int side)
{
    struct conn_seen *s = seen_of(f, c);
    assert_true(s->opened);
    assert_false(s->ended);
    assert_true(side == 0 || side == 1);
}

static void ev_open(void *arg, struct owfp_conn *c)
{
    struct fx *f = arg;
    struct conn_seen *s = seen_of(f, c);
    assert_false(s->opened);
    assert_false(s->ended);
    assert_int_equal(c->state, OWFP_CONN_OPEN);
    s->opened = true;
    logf_(f, "o%" PRIu64 ":%u", c->id, (unsigned)owfp_conn_port(c, 0));
}

static void ev_data(void *arg, struct owfp_conn *c, int side, const uint8_t *p, size_t n,
                    uint32_t flags)
{
    struct fx *f = arg;
    char text[256];
    (void)flags;
    check_live(f, c, side);
    assert_false(seen_of(f, c)->fin[side]);
    assert_true(n > 0 && n < sizeof(text));
    for (size_t i = 0; i < n; i++)
        text[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
    text[n] = '\0';
    logf_(f, "d%" PRIu64 ".%d:%s", c->id, side, text);
}

static void ev_gap(void *arg, struct owfp_conn *c, int side, uint64_t n)
{
    struct fx *f = arg;
    check_live(f, c, side);
    assert_true(n > 0);
    logf_(f, "g%" PRIu64 ".%d:%" PRIu64, c->id, side, n);
}

static void ev_fin(void *arg, struct owfp_conn *c, int side)
{
    struct fx *f = arg;
    check_live(f, c, side);
    assert_false(seen_of(f, c)->fin[side]);
    seen_of(f, c)->fin[side] = true;
    logf_(f, "f%" PRIu64 ".%d", c->id, side);
}

static void ev_rst(void *arg, struct owfp_conn *c, int side)
{
    struct fx *f = arg;
    check_live(f, c, side);
    logf_(f, "r%" PRIu64 ".%d", c->id, side);
}

static const char *end_name(uint8_t end)
{
    switch (end) {
    case OWFP_END_FIN: return "fin";
    case OWFP_END_RST: return "rst";
    case OWFP_END_TIMEOUT: return "timeout";
    case OWFP_END_REUSED: return "reused";
    case OWFP_END_CAPTURE: return "capture";
    case OWFP_END_EVICTED: return "evicted";
    default: return "?";
    }
}

static void ev_end(void *arg, struct owfp_conn *c)
{
    struct fx *f = arg;
    struct conn_seen *s = seen_of(f, c);
    assert_false(s->ended);
    assert_int_equal(c->state, OWFP_CONN_CLOSED);
    s->ended = true;
    logf_(f, "e%" PRIu64 ":%s", c->id, end_name(c->end));
}

static void ev_forget(void *arg, struct owfp_conn *c)
{
    struct fx *f = arg;
    struct conn_seen *s = seen_of(f, c);
    assert_true(s->ended);
    s->forgotten++;
    if (f->last == c)
        f->last = NULL;
    logf_(f, "x%" PRIu64, c->id);
}

static const struct owfp_track_events EVENTS = {
    ev_open, ev_data, ev_gap, ev_fin, ev_rst, ev_end, ev_forget,
};

/* ---- fixture ------------------------------------------------------------- */

static void fx_init(struct fx *f, const struct owfp_tracker_config *cfg)
{
    static const struct owfp_tracker_config defaults;
    memset(f, 0, sizeof(*f));
    f->now = 1000 * SEC;
    f->t = owfp_tracker_new(cfg ? cfg : &defaults, &EVENTS, f);
    assert_non_null(f->t);
}

static const struct owfp_tracker_stats *stats(const struct fx *f)
{
    return owfp_tracker_stats(f->t);
}

/* The events since the last call must be exactly `want`. */
static void expect(struct fx *f, const char *want)
{
    f->log[f->len] = '\0';
    assert_string_equal(f->log, want);
    f->len = 0;
}

/* Frees the tracker: every connection it ever created is forgotten once. */
static void fx_done(struct fx *f)
{
    uint64_t created = stats(f)->conns;
    assert_true(created < MAX_IDS);
    owfp_tracker_free(f->t);
    f->t = NULL;
    for (uint64_t id = 1; id < MAX_IDS; id++)
        assert_int_equal(f->seen[id].forgotten, id <= created ? 1u : 0u);
}

/* ---- segments ------------------------------------------------------------ */

struct ep {
    uint8_t ver;
    uint8_t ip[16];
    uint16_t port;
};

static const struct ep CLI = {4, {10, 0, 0, 1}, 40000};
static const struct ep SRV = {4, {10, 0, 0, 2}, 80};
static const struct ep CLI6 = {6, {0x20, 0x01, 0x0d, 0xb8, [15] = 1}, 50000};
static const struct ep SRV6 = {6, {0x20, 0x01, 0x0d, 0xb8, [15] = 2}, 443};

static struct ep client(uint16_t port)
{
    struct ep e = CLI;
    e.port = port;
    return e;
}

static struct owfp_pkt pkt(const struct ep *from, const struct ep *to, uint8_t flags, uint32_t seq,
                           uint32_t ack, const char *payload)
{
    struct owfp_pkt p;
    memset(&p, 0, sizeof(p));
    p.ip_version = from->ver;
    p.tcp_flags = flags;
    memcpy(p.src, from->ip, 16);
    memcpy(p.dst, to->ip, 16);
    p.sport = from->port;
    p.dport = to->port;
    p.seq = seq;
    p.ack = ack;
    p.window = 65535;
    p.payload = (const uint8_t *)payload;
    p.payload_len = payload ? (uint32_t)strlen(payload) : 0;
    return p;
}

/* Feeds one segment at the fixture's clock (1 ms apart); returns its
 * connection (NULL for a stray). */
static struct owfp_conn *feed(struct fx *f, struct owfp_pkt p)
{
    p.ts_us = f->now;
    f->now += 1000;
    static struct owfp_conn untouched;
    struct owfp_conn *c = &untouched;
    assert_int_equal(owfp_tracker_segment(f->t, &p, &c), 0);
    assert_ptr_not_equal(c, &untouched);
    f->last = c;
    return c;
}

static struct owfp_conn *tx(struct fx *f, const struct ep *from, const struct ep *to, uint8_t flags,
                            uint32_t seq, uint32_t ack, const char *payload)
{
    return feed(f, pkt(from, to, flags, seq, ack, payload));
}

static struct owfp_conn *c2s(struct fx *f, uint8_t flags, uint32_t seq, uint32_t ack,
                             const char *payload)
{
    return tx(f, &CLI, &SRV, flags, seq, ack, payload);
}

static struct owfp_conn *s2c(struct fx *f, uint8_t flags, uint32_t seq, uint32_t ack,
                             const char *payload)
{
    return tx(f, &SRV, &CLI, flags, seq, ack, payload);
}

static struct owfp_conn *handshake_between(struct fx *f, const struct ep *c, const struct ep *s,
                                           uint32_t cisn, uint32_t sisn)
{
    tx(f, c, s, SYN, cisn, 0, NULL);
    tx(f, s, c, SYN | ACK, sisn, cisn + 1, NULL);
    return tx(f, c, s, ACK, cisn + 1, sisn + 1, NULL);
}

static struct owfp_conn *handshake(struct fx *f, uint32_t cisn, uint32_t sisn)
{
    return handshake_between(f, &CLI, &SRV, cisn, sisn);
}

/* ---- handshakes ---------------------------------------------------------- */

static void test_tracker_handshake_data_and_fins(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    tx(&f, &CLI, &SRV, SYN, 1000, 0, NULL);
    tx(&f, &SRV, &CLI, SYN | ACK, 5000, 1001, NULL);
    expect(&f, ""); /* not established before the initiator's ACK */
    struct owfp_conn *c = c2s(&f, ACK, 1001, 5001, NULL);
    expect(&f, "o1:40000");
    assert_true(c->handshake);
    assert_memory_equal(owfp_conn_addr(c, 0), CLI.ip, 16);
    assert_memory_equal(owfp_conn_addr(c, 1), SRV.ip, 16);
    assert_int_equal(owfp_conn_port(c, 1), 80);

    c2s(&f, PSH | ACK, 1001, 5001, "hello");
    expect(&f, "d1.0:hello");
    s2c(&f, PSH | ACK, 5001, 1006, "world!");
    expect(&f, "d1.1:world!");
    c2s(&f, FIN | ACK, 1006, 5007, NULL);
    expect(&f, "f1.0");
    s2c(&f, FIN | ACK, 5007, 1007, NULL);
    expect(&f, "f1.1 e1:fin");
    assert_ptr_equal(c2s(&f, ACK, 1007, 5008, NULL), c);
    expect(&f, "");
    assert_int_equal(c->end, OWFP_END_FIN);

    const struct owfp_tracker_stats *st = stats(&f);
    assert_int_equal(st->segments, 8);
    assert_int_equal(st->conns, 1);
    assert_int_equal(st->opened, 1);
    assert_int_equal(st->midstream, 0);
    assert_int_equal(st->live, 0);
    assert_int_equal(st->peak_live, 1);
    assert_int_equal(c->d[0].packets, 4);
    assert_int_equal(c->d[0].payload, 5);
    assert_int_equal(c->d[1].payload, 6);
    fx_done(&f);
    expect(&f, "x1");
}

/* The capture shows the SYN/ACK first: it still names the client. */
static void test_tracker_synack_before_syn(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    s2c(&f, SYN | ACK, 5000, 1001, NULL);
    c2s(&f, SYN, 1000, 0, NULL);
    expect(&f, "");
    struct owfp_conn *c = c2s(&f, ACK, 1001, 5001, NULL);
    expect(&f, "o1:40000");
    assert_true(c->handshake);
    assert_memory_equal(owfp_conn_addr(c, 0), CLI.ip, 16);
    s2c(&f, PSH | ACK, 5001, 1001, "banner");
    c2s(&f, PSH | ACK, 1001, 5007, "hi");
    expect(&f, "d1.1:banner d1.0:hi");
    assert_int_equal(stats(&f)->conns, 1);
    assert_int_equal(stats(&f)->reused, 0);
    fx_done(&f);
    expect(&f, "e1:capture x1");
}

/* SYN, SYN, SYN/ACK, ACK: the responder's bare SYN is its ISN, not a new
 * connection, and the first SYN's sender stays the initiator. */
static void test_tracker_split_handshake(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    c2s(&f, SYN, 1000, 0, NULL);
    s2c(&f, SYN, 5000, 0, NULL);
    expect(&f, "");
    c2s(&f, SYN | ACK, 1000, 5001, NULL);
    expect(&f, "o1:40000");
    s2c(&f, ACK, 5001, 1001, NULL);
    c2s(&f, PSH | ACK, 1001, 5001, "ab");
    s2c(&f, PSH | ACK, 5001, 1003, "cd");
    expect(&f, "d1.0:ab d1.1:cd");
    assert_int_equal(stats(&f)->conns, 1);
    assert_int_equal(stats(&f)->reused, 0);
    fx_done(&f);
    expect(&f, "e1:capture x1");
}

/* TCP Fast Open: the SYN's payload is the stream's first bytes, at ISN+1;
 * a retransmitted SYN with the same ISN is neither data nor a new start. */
static void test_tracker_data_on_syn(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    struct owfp_conn *c = c2s(&f, SYN, 1000, 0, "GET");
    expect(&f, "o1:40000 d1.0:GET");
    assert_int_equal(c->d[0].r.base_seq, 1001);
    c2s(&f, SYN, 1000, 0, "GET");
    s2c(&f, SYN | ACK, 5000, 1004, NULL);
    c2s(&f, ACK, 1004, 5001, NULL);
    expect(&f, "");
    c2s(&f, PSH | ACK, 1004, 5001, " /");
    s2c(&f, PSH | ACK, 5001, 1006, "ok");
    expect(&f, "d1.0: / d1.1:ok");
    assert_int_equal(owfp_reasm_get_stats(&c->d[0].r).retransmitted, 3);
    assert_int_equal(stats(&f)->conns, 1);
    assert_int_equal(stats(&f)->reused, 0);
    fx_done(&f);
    expect(&f, "e1:capture x1");
}

/* ---- mid-stream pickup --------------------------------------------------- */

/* The first packet comes from port 80: the lower port is the server. */
static void test_tracker_midstream_role_from_ports(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    struct owfp_conn *c = s2c(&f, PSH | ACK, 7000, 3000, "HTTP/1.1 200");
    expect(&f, "o1:40000 d1.1:HTTP/1.1 200");
    assert_false(c->handshake);
    assert_memory_equal(owfp_conn_addr(c, 0), CLI.ip, 16);
    c2s(&f, PSH | ACK, 3000, 7012, "GET");
    expect(&f, "d1.0:GET");
    assert_int_equal(stats(&f)->midstream, 1);
    assert_int_equal(stats(&f)->opened, 1);

    /* Same rule the other way round: the client's packet first. */
    struct ep cli2 = client(40001);
    tx(&f, &cli2, &SRV, ACK, 1, 1, "x");
    expect(&f, "o2:40001 d2.0:x");
    fx_done(&f);
    expect(&f, "e1:capture e2:capture x1 x2");
}

/* The server acknowledged up to 3000 before the client's first captured
 * byte at 3100: the 100 bytes between were sent and never captured. */
static void test_tracker_midstream_leading_gap_from_peer_ack(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    s2c(&f, ACK, 7000, 3000, NULL);
    expect(&f, "o1:40000");
    c2s(&f, PSH | ACK, 3100, 7000, "late");
    expect(&f, "");
    s2c(&f, ACK, 7000, 3104, NULL);
    expect(&f, "g1.0:100 d1.0:late");

    /* More than 1 MiB behind: no relation assumed, the data starts there. */
    struct ep cli2 = client(40001);
    tx(&f, &SRV, &cli2, ACK, 7000, 3000, NULL);
    tx(&f, &cli2, &SRV, PSH | ACK, 3000 + (1u << 20) + 1, 7000, "far");
    expect(&f, "o2:40001 d2.0:far");

    /* Exactly 1 MiB behind still counts as a hole. */
    struct ep cli3 = client(40002);
    tx(&f, &SRV, &cli3, ACK, 7000, 3000, NULL);
    tx(&f, &cli3, &SRV, PSH | ACK, 3000 + (1u << 20), 7000, "edge");
    expect(&f, "o3:40002");
    fx_done(&f);
    expect(&f, "e1:capture e2:capture g3.0:1048576 d3.0:edge e3:capture x1 x2 x3");
}

/* ---- holes --------------------------------------------------------------- */

static void test_tracker_hole_skipped_by_ack(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    struct owfp_conn *c = handshake(&f, 1000, 5000);
    c2s(&f, PSH | ACK, 1001, 5001, "aaaa");
    c2s(&f, PSH | ACK, 1009, 5001, "cccc");
    expect(&f, "o1:40000 d1.0:aaaa");
    s2c(&f, ACK, 5001, 1009, NULL); /* acks the hole, not yet the bytes after it */
    expect(&f, "g1.0:4 d1.0:cccc");
    c2s(&f, PSH | ACK, 1005, 5001, "bbbb");
    expect(&f, "");
    assert_int_equal(owfp_reasm_get_stats(&c->d[0].r).late, 4);
    s2c(&f, ACK, 5001, 1013, NULL);
    expect(&f, "");
    fx_done(&f);
    expect(&f, "e1:capture x1");
}

/* Bytes the snapshot length cut off are a hole the peer's ACK skips; a FIN
 * in a cut segment sits after the cut bytes. */
static void test_tracker_payload_cut_becomes_gap_when_acked(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    handshake(&f, 1000, 5000);
    struct owfp_pkt p = pkt(&CLI, &SRV, PSH | ACK, 1001, 5001, "abcd");
    p.payload_cut = 6;
    feed(&f, p);
    c2s(&f, PSH | ACK, 1011, 5001, "xyz");
    expect(&f, "o1:40000 d1.0:abcd");
    s2c(&f, ACK, 5001, 1014, NULL);
    expect(&f, "g1.0:6 d1.0:xyz");

    p = pkt(&CLI, &SRV, FIN | PSH | ACK, 1014, 5001, "12");
    p.payload_cut = 3;
    feed(&f, p);
    expect(&f, "d1.0:12");
    s2c(&f, FIN | ACK, 5001, 1020, NULL); /* acks the FIN at 1019 */
    expect(&f, "g1.0:3 f1.0 f1.1 e1:fin");
    fx_done(&f);
    expect(&f, "x1");
}

/* ---- RST ----------------------------------------------------------------- */

/* An accepted RST delivers what the capture holds (the hole skipped) before
 * the rst event; its payload is never stream data, and nothing after it is. */
static void test_tracker_rst_flushes_buffered_bytes(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    struct owfp_conn *c = handshake(&f, 1000, 5000);
    c2s(&f, PSH | ACK, 1001, 5001, "aaaa");
    c2s(&f, PSH | ACK, 1009, 5001, "cccc");
    expect(&f, "o1:40000 d1.0:aaaa");
    assert_ptr_equal(s2c(&f, RST | ACK, 5001, 1005, "why"), c);
    expect(&f, "g1.0:4 d1.0:cccc r1.1 e1:rst");
    assert_int_equal(c->end, OWFP_END_RST);
    assert_true(c->d[1].rst);
    assert_false(c->d[0].rst);
    assert_int_equal(stats(&f)->rst_payload, 3);

    assert_ptr_equal(c2s(&f, PSH | ACK, 1013, 5001, "more"), c);
    expect(&f, "");
    assert_int_equal(stats(&f)->conns, 1);
    fx_done(&f);
    expect(&f, "x1");
}

/* A blind RST (seq 0) before the SYN/ACK does not end the connection: the
 * handshake goes on, and it opens and closes normally. */
static void test_tracker_forged_rst_during_handshake(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    c2s(&f, SYN, 1000, 0, NULL);
    s2c(&f, RST | ACK, 0, 1001, NULL);
    expect(&f, "");
    struct owfp_conn *c = f.last;
    assert_int_equal(c->state, OWFP_CONN_HANDSHAKE);
    s2c(&f, SYN | ACK, 5000, 1001, NULL);
    c2s(&f, ACK, 1001, 5001, NULL);
    expect(&f, "o1:40000");
    assert_false(c->d[1].rst);
    c2s(&f, PSH | ACK, 1001, 5001, "data");
    s2c(&f, FIN | ACK, 5001, 1005, NULL);
    c2s(&f, FIN | ACK, 1005, 5002, NULL);
    expect(&f, "d1.0:data f1.1 f1.0 e1:fin");
    assert_int_equal(stats(&f)->conns, 1);
    assert_int_equal(stats(&f)->rst_ignored, 0);
    fx_done(&f);
    expect(&f, "x1");
}

/* A refused SYN: no open, and the end says RST rather than capture. */
static void test_tracker_rst_refusing_the_syn(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    c2s(&f, SYN, 1000, 0, NULL);
    s2c(&f, RST | ACK, 0, 1001, NULL);
    owfp_tracker_close_all(f.t);
    expect(&f, "e1:rst");
    assert_int_equal(stats(&f)->opened, 0);
    fx_done(&f);
    expect(&f, "x1");
}

/* After establishment a RST must lie within 2^24 of the next byte. */
static void test_tracker_out_of_window_rst_ignored(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);
    const uint32_t sisn = 0x50000000;

    struct owfp_conn *c = handshake(&f, 1000, sisn);
    s2c(&f, PSH | ACK, sisn + 1, 1001, "abc");
    expect(&f, "o1:40000 d1.1:abc");
    s2c(&f, RST, sisn + 4 + (1u << 24) + 1, 0, NULL);
    s2c(&f, RST, sisn + 4 - (1u << 24) - 1, 0, NULL);
    s2c(&f, RST | ACK, 0, 1001, NULL);
    expect(&f, "");
    assert_int_equal(stats(&f)->rst_ignored, 3);
    assert_int_equal(c->state, OWFP_CONN_OPEN);
    s2c(&f, PSH | ACK, sisn + 4, 1001, "def");
    expect(&f, "d1.1:def");
    /* The edge of the window is believed. */
    s2c(&f, RST, sisn + 7 + (1u << 24), 0, NULL);
    expect(&f, "r1.1 e1:rst");
    assert_int_equal(stats(&f)->rst_ignored, 3);
    fx_done(&f);
    expect(&f, "x1");
}

/* The initiator has sent nothing yet, but its next byte is known (ISN+1):
 * a blind RST from its side is judged against it like any other. */
static void test_tracker_out_of_window_rst_from_silent_side_ignored(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);
    const uint32_t cisn = 0x40000000;

    struct owfp_conn *c = handshake(&f, cisn, 5000);
    expect(&f, "o1:40000");
    c2s(&f, RST, 0, 0, NULL);
    expect(&f, "");
    assert_int_equal(stats(&f)->rst_ignored, 1);
    assert_int_equal(c->state, OWFP_CONN_OPEN);
    c2s(&f, PSH | ACK, cisn + 1, 5001, "x");
    expect(&f, "d1.0:x");

    /* Mid-stream, the peer's ACKs tell where a silent side stands. */
    struct ep cli2 = client(40001);
    tx(&f, &SRV, &cli2, PSH | ACK, 7000, 0x60000000, "srv");
    tx(&f, &cli2, &SRV, RST, 0, 0, NULL);
    expect(&f, "o2:40001 d2.1:srv");
    assert_int_equal(stats(&f)->rst_ignored, 2);
    tx(&f, &cli2, &SRV, RST, 0x60000000, 0, NULL);
    expect(&f, "r2.0 e2:rst");
    fx_done(&f);
    expect(&f, "e1:capture x2 x1");
}

/* A RST with no connection starts none. */
static void test_tracker_stray_rst(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    assert_null(s2c(&f, RST, 5000, 0, NULL));
    assert_null(s2c(&f, RST | ACK, 5000, 1000, "xy"));
    expect(&f, "");
    const struct owfp_tracker_stats *st = stats(&f);
    assert_int_equal(st->strays, 2);
    assert_int_equal(st->conns, 0);
    assert_int_equal(st->rst_payload, 2);
    assert_int_equal(st->segments, 2);
    fx_done(&f);
    expect(&f, "");
}

/* ---- FIN ----------------------------------------------------------------- */

/* Bytes at or past a side's FIN are never delivered; the other side goes on. */
static void test_tracker_data_after_fin_dropped(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    struct owfp_conn *c = handshake(&f, 1000, 5000);
    c2s(&f, FIN | PSH | ACK, 1001, 5001, "hello");
    expect(&f, "o1:40000 d1.0:hello f1.0");
    c2s(&f, PSH | ACK, 1006, 5001, "junk");
    c2s(&f, PSH | ACK, 1007, 5001, "more");
    expect(&f, "");
    assert_int_equal(owfp_reasm_get_stats(&c->d[0].r).after_fin, 8);
    s2c(&f, PSH | ACK, 5001, 1007, "resp");
    expect(&f, "d1.1:resp");
    s2c(&f, FIN | ACK, 5005, 1007, NULL);
    expect(&f, "f1.1 e1:fin");
    fx_done(&f);
    expect(&f, "x1");
}

/* A FIN behind a hole is reported only once the hole is skipped. */
static void test_tracker_fin_waits_for_hole(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    handshake(&f, 1000, 5000);
    c2s(&f, PSH | ACK, 1003, 5001, "cd");
    c2s(&f, FIN | ACK, 1005, 5001, NULL);
    expect(&f, "o1:40000");
    c2s(&f, PSH | ACK, 1001, 5001, "ab");
    expect(&f, "d1.0:ab d1.0:cd f1.0");
    fx_done(&f);
    expect(&f, "e1:capture x1");
}

/* ---- reuse and lingering ------------------------------------------------- */

/* A SYN with a new ISN on an open connection ends it (what it holds is
 * delivered first) and starts a new one with a new id. */
static void test_tracker_reuse_new_isn(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    struct owfp_conn *c1 = handshake(&f, 1000, 5000);
    c2s(&f, PSH | ACK, 1001, 5001, "one");
    c2s(&f, PSH | ACK, 1010, 5001, "zz");
    expect(&f, "o1:40000 d1.0:one");
    c2s(&f, SYN, 1000, 0, NULL); /* the old SYN again: nothing new */
    expect(&f, "");
    assert_int_equal(stats(&f)->reused, 0);

    struct owfp_conn *c2 = c2s(&f, SYN, 90000, 0, NULL);
    expect(&f, "g1.0:6 d1.0:zz e1:reused x1");
    assert_int_equal(c2->id, 2);
    assert_int_equal(c2->state, OWFP_CONN_HANDSHAKE);
    s2c(&f, SYN | ACK, 70000, 90001, NULL);
    assert_ptr_equal(c2s(&f, ACK, 90001, 70001, NULL), c2);
    c2s(&f, PSH | ACK, 90001, 70001, "two");
    expect(&f, "o2:40000 d2.0:two");
    const struct owfp_tracker_stats *st = stats(&f);
    assert_int_equal(st->reused, 1);
    assert_int_equal(st->conns, 2);
    assert_int_equal(st->live, 1);
    (void)c1;
    fx_done(&f);
    expect(&f, "e2:capture x2");
}

/* A bare SYN from the responder side is a new connection the other way. */
static void test_tracker_reuse_syn_from_responder(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    handshake(&f, 1000, 5000);
    struct owfp_conn *c2 = s2c(&f, SYN, 5000, 0, NULL);
    expect(&f, "o1:40000 e1:reused x1");
    c2s(&f, SYN | ACK, 1000, 5001, NULL);
    s2c(&f, ACK, 5001, 1001, NULL);
    expect(&f, "o2:80");
    assert_memory_equal(owfp_conn_addr(c2, 0), SRV.ip, 16);
    assert_int_equal(owfp_conn_port(c2, 1), 40000);
    fx_done(&f);
    expect(&f, "e2:capture x2");
}

/* A closed connection absorbs stragglers of every kind, starting nothing. */
static void test_tracker_stragglers_after_close(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    struct owfp_conn *c = handshake(&f, 1000, 5000);
    c2s(&f, FIN | ACK, 1001, 5001, NULL);
    s2c(&f, FIN | ACK, 5001, 1002, NULL);
    expect(&f, "o1:40000 f1.0 f1.1 e1:fin");
    assert_ptr_equal(c2s(&f, ACK, 1002, 5002, NULL), c);
    assert_ptr_equal(s2c(&f, FIN | ACK, 5001, 1002, NULL), c);
    assert_ptr_equal(c2s(&f, PSH | ACK, 1002, 5002, "late"), c);
    assert_ptr_equal(s2c(&f, RST, 5002, 0, NULL), c);
    assert_ptr_equal(s2c(&f, SYN | ACK, 5000, 1001, NULL), c);
    expect(&f, "");
    const struct owfp_tracker_stats *st = stats(&f);
    assert_int_equal(st->conns, 1);
    assert_int_equal(st->strays, 0);
    assert_int_equal(st->live, 0);
    assert_int_equal(c->end, OWFP_END_FIN);
    fx_done(&f);
    expect(&f, "x1");
}

static void test_tracker_syn_on_closed_starts_new(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    handshake(&f, 1000, 5000);
    c2s(&f, RST, 1001, 0, NULL);
    expect(&f, "o1:40000 r1.0 e1:rst");
    struct owfp_conn *c2 = c2s(&f, SYN, 2000, 0, NULL);
    expect(&f, "x1");
    assert_int_equal(c2->id, 2);
    s2c(&f, SYN | ACK, 6000, 2001, NULL);
    c2s(&f, ACK, 2001, 6001, NULL);
    s2c(&f, PSH | ACK, 6001, 2001, "again");
    expect(&f, "o2:40000 d2.1:again");
    assert_int_equal(stats(&f)->conns, 2);
    assert_int_equal(stats(&f)->reused, 0);
    fx_done(&f);
    expect(&f, "e2:capture x2");
}

/* The connection's own SYN seen again after it closed (a late duplicate) is
 * a straggler too: it must not start a phantom connection that the next
 * stragglers would then open. */
static void test_tracker_old_syn_after_close_is_a_straggler(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    struct owfp_conn *c = handshake(&f, 1000, 5000);
    c2s(&f, FIN | PSH | ACK, 1001, 5001, "hello");
    s2c(&f, FIN | ACK, 5001, 1007, NULL);
    expect(&f, "o1:40000 d1.0:hello f1.0 f1.1 e1:fin");
    assert_ptr_equal(c2s(&f, SYN, 1000, 0, NULL), c);
    assert_ptr_equal(c2s(&f, FIN | ACK, 1006, 5002, NULL), c);
    expect(&f, "");
    assert_int_equal(stats(&f)->conns, 1);
    fx_done(&f);
    expect(&f, "x1");
}

/* ---- time ---------------------------------------------------------------- */

static void test_tracker_idle_timeout(void **state)
{
    (void)state;
    struct fx f;
    struct owfp_tracker_config cfg = {.idle_timeout_us = 10 * SEC, .closed_linger_us = 5 * SEC};
    fx_init(&f, &cfg);

    struct owfp_conn *c = handshake(&f, 1000, 5000);
    c2s(&f, PSH | ACK, 1001, 5001, "ab");
    c2s(&f, PSH | ACK, 1005, 5001, "ef");
    expect(&f, "o1:40000 d1.0:ab");
    uint64_t last = f.now - 1000;
    assert_int_equal(c->last_us, last);

    owfp_tracker_expire(f.t, last + 10 * SEC - 1);
    expect(&f, "");
    owfp_tracker_expire(f.t, last + 10 * SEC);
    expect(&f, "g1.0:2 d1.0:ef e1:timeout");
    assert_int_equal(stats(&f)->timed_out, 1);
    assert_int_equal(stats(&f)->live, 0);

    /* It lingers from the moment it ended. */
    owfp_tracker_expire(f.t, last + 15 * SEC - 1);
    expect(&f, "");
    owfp_tracker_expire(f.t, last + 15 * SEC);
    expect(&f, "x1");

    /* Forgotten: the tuple's next packet is a new, mid-stream connection. */
    f.now = last + 16 * SEC;
    struct owfp_conn *c2 = c2s(&f, ACK, 1007, 5001, NULL);
    expect(&f, "o2:40000");
    assert_false(c2->handshake);
    fx_done(&f);
    expect(&f, "e2:capture x2");
}

/* Default linger 60 s, default idle timeout 600 s; only capture time counts. */
static void test_tracker_closed_linger_then_freed(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    handshake(&f, 1000, 5000);
    c2s(&f, FIN | ACK, 1001, 5001, NULL);
    s2c(&f, FIN | ACK, 5001, 1002, NULL);
    uint64_t closed = f.now - 1000;
    struct ep cli2 = client(40001);
    handshake_between(&f, &cli2, &SRV, 1, 1);
    uint64_t idle_from = f.now - 1000;
    expect(&f, "o1:40000 f1.0 f1.1 e1:fin o2:40001");

    owfp_tracker_expire(f.t, closed + 60 * SEC - 1);
    f.now = closed + 60 * SEC - 1;
    c2s(&f, ACK, 1002, 5002, NULL); /* still absorbed */
    expect(&f, "");
    assert_int_equal(stats(&f)->conns, 2);
    owfp_tracker_expire(f.t, closed + 60 * SEC);
    expect(&f, "x1");
    owfp_tracker_expire(f.t, closed + 60 * SEC); /* once only */
    expect(&f, "");

    owfp_tracker_expire(f.t, idle_from + 600 * SEC - 1);
    expect(&f, "");
    owfp_tracker_expire(f.t, idle_from + 600 * SEC);
    expect(&f, "e2:timeout");
    owfp_tracker_expire(f.t, idle_from + 660 * SEC);
    expect(&f, "x2");
    fx_done(&f);
    expect(&f, "");
}

/* Past max_closed the record closed longest is forgotten, whatever its age:
 * its strays then start nothing new (a lone FIN/ACK is a mid-stream pickup
 * only with data or ACK, so use a RST: it counts as a stray). */
static void test_tracker_max_closed_forgets_oldest(void **state)
{
    (void)state;
    struct fx f;
    struct owfp_tracker_config cfg = {.max_closed = 2};
    fx_init(&f, &cfg);
    struct ep a = client(40001), b = client(40002), c = client(40003);
    const struct ep *eps[] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {
        handshake_between(&f, eps[i], &SRV, 100, 500);
        tx(&f, eps[i], &SRV, RST, 101, 0, NULL);
    }
    expect(&f, "o1:40001 r1.0 e1:rst o2:40002 r2.0 e2:rst o3:40003 r3.0 e3:rst x1");
    const struct owfp_tracker_stats *st = stats(&f);
    assert_int_equal(st->lingering, 2);
    assert_int_equal(st->linger_cut, 1);
    /* b still lingers and absorbs; a is gone and its RST is a stray. */
    tx(&f, &b, &SRV, RST, 101, 0, NULL);
    assert_int_equal(st->strays, 0);
    tx(&f, &a, &SRV, RST, 101, 0, NULL);
    assert_int_equal(st->strays, 1);
    expect(&f, "");
    fx_done(&f);
    expect(&f, "x2 x3");
}

/* With a touch step most packets leave the expiry list alone, but
 * timeouts stay exact and connections still end in the order of their
 * last packets. */
static void test_tracker_touch_step_keeps_timeouts_exact(void **state)
{
    (void)state;
    struct fx f;
    struct owfp_tracker_config cfg = {.idle_timeout_us = 80 * SEC, .touch_step_us = 10 * SEC};
    fx_init(&f, &cfg);
    struct ep a = client(40001), b = client(40002), c = client(40003);

    handshake_between(&f, &a, &SRV, 100, 500);
    handshake_between(&f, &b, &SRV, 200, 600);
    handshake_between(&f, &c, &SRV, 300, 700);
    /* a's packet is the newest, but a stays listed first (within the step). */
    tx(&f, &b, &SRV, ACK, 201, 601, NULL);
    tx(&f, &a, &SRV, ACK, 101, 501, NULL);
    uint64_t a_last = f.now - 1000;
    expect(&f, "o1:40001 o2:40002 o3:40003");

    owfp_tracker_expire(f.t, a_last + 80 * SEC - 1);
    expect(&f, "e3:timeout e2:timeout"); /* c, b: due, though listed after a */
    owfp_tracker_expire(f.t, a_last + 80 * SEC);
    expect(&f, "e1:timeout");
    assert_int_equal(stats(&f)->timed_out, 3);
    fx_done(&f);
    expect(&f, "x3 x2 x1");
}

static void test_tracker_touch_step_capture_end_order(void **state)
{
    (void)state;
    struct fx f;
    struct owfp_tracker_config cfg = {.touch_step_us = 10 * SEC};
    fx_init(&f, &cfg);
    struct ep a = client(40001), b = client(40002);
    handshake_between(&f, &a, &SRV, 100, 500);
    handshake_between(&f, &b, &SRV, 200, 600);
    tx(&f, &a, &SRV, ACK, 101, 501, NULL);
    expect(&f, "o1:40001 o2:40002");
    fx_done(&f);
    expect(&f, "e2:capture e1:capture x2 x1");
}

/* Past max_conns the connection idle longest ends, whatever its age. */
static void test_tracker_max_conns_evicts_oldest(void **state)
{
    (void)state;
    struct fx f;
    struct owfp_tracker_config cfg = {.max_conns = 2};
    fx_init(&f, &cfg);
    struct ep a = client(40001), b = client(40002), c = client(40003);

    handshake_between(&f, &a, &SRV, 100, 500);
    handshake_between(&f, &b, &SRV, 200, 600);
    tx(&f, &b, &SRV, PSH | ACK, 205, 601, "bb");
    tx(&f, &a, &SRV, PSH | ACK, 101, 501, "a");
    expect(&f, "o1:40001 o2:40002 d1.0:a");
    struct owfp_conn *cc = tx(&f, &c, &SRV, SYN, 300, 0, NULL);
    expect(&f, "g2.0:4 d2.0:bb e2:evicted");
    assert_int_equal(cc->id, 3);
    const struct owfp_tracker_stats *st = stats(&f);
    assert_int_equal(st->evicted, 1);
    assert_int_equal(st->live, 2);
    assert_int_equal(st->peak_live, 2);
    tx(&f, &b, &SRV, PSH | ACK, 207, 601, "late");
    expect(&f, "");
    fx_done(&f);
    expect(&f, "e1:capture e3:capture x2 x1 x3");
}

/* ---- sequence space and address families --------------------------------- */

static void test_tracker_sequence_wrap(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);
    const uint32_t cisn = 0xfffffff8u, sisn = 0xfffffffeu;

    handshake(&f, cisn, sisn);
    c2s(&f, PSH | ACK, cisn + 1, 0xffffffffu, "abcdefgh"); /* 0xfffffff9 .. 0 */
    c2s(&f, PSH | ACK, 1, 0xffffffffu, "ijkl");
    c2s(&f, PSH | ACK, 9, 0xffffffffu, "qrst");
    expect(&f, "o1:40000 d1.0:abcdefgh d1.0:ijkl");
    s2c(&f, PSH | ACK, 0xffffffffu, 13, "xyz"); /* acks the hole at 5 */
    expect(&f, "d1.1:xyz g1.0:4 d1.0:qrst"); /* its payload first, then its ACK */
    c2s(&f, FIN | ACK, 13, 2, NULL);
    s2c(&f, FIN | ACK, 2, 14, NULL);
    expect(&f, "f1.0 f1.1 e1:fin");
    fx_done(&f);
    expect(&f, "x1");
}

static void test_tracker_ipv6(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, NULL);

    tx(&f, &CLI6, &SRV6, SYN, 1000, 0, NULL);
    tx(&f, &SRV6, &CLI6, SYN | ACK, 5000, 1001, NULL);
    struct owfp_conn *c = tx(&f, &CLI6, &SRV6, ACK, 1001, 5001, NULL);
    tx(&f, &CLI6, &SRV6, PSH | ACK, 1001, 5001, "v6");
    tx(&f, &SRV6, &CLI6, FIN | PSH | ACK, 5001, 1003, "bye");
    tx(&f, &CLI6, &SRV6, FIN | ACK, 1003, 5005, NULL);
    expect(&f, "o1:50000 d1.0:v6 d1.1:bye f1.1 f1.0 e1:fin");
    assert_int_equal(c->key.ip_version, 6);
    assert_memory_equal(owfp_conn_addr(c, 0), CLI6.ip, 16);
    assert_memory_equal(owfp_conn_addr(c, 1), SRV6.ip, 16);

    /* An IPv4 connection whose addresses have the same 16 bytes is another. */
    struct ep c4 = {4, {0x20, 0x01, 0x0d, 0xb8, [15] = 1}, 50000};
    struct ep s4 = {4, {0x20, 0x01, 0x0d, 0xb8, [15] = 2}, 443};
    tx(&f, &s4, &c4, PSH | ACK, 1, 1, "v4");
    expect(&f, "o2:50000 d2.1:v4");
    assert_int_equal(stats(&f)->conns, 2);
    fx_done(&f);
    expect(&f, "e2:capture x1 x2");
}

/* ---- looking ahead ------------------------------------------------------ */

/* A hint finds the connection of a segment to come, from either side, and
 * follows the table: nothing before the connection exists, the new one
 * after the old is forgotten. Hints change no event. */
static void test_tracker_hint_follows_the_table(void **state)
{
    (void)state;
    struct fx f;
    struct owfp_tracker_config cfg = {.max_closed = 1};
    fx_init(&f, &cfg);
    struct owfp_tracker_hint from_cli, from_srv, other;
    struct owfp_pkt p = pkt(&CLI, &SRV, ACK, 0, 0, NULL);
    owfp_tracker_hint(f.t, &p, &from_cli);
    p = pkt(&SRV, &CLI, ACK, 0, 0, NULL);
    owfp_tracker_hint(f.t, &p, &from_srv);
    struct ep b = client(40001);
    p = pkt(&b, &SRV, ACK, 0, 0, NULL);
    owfp_tracker_hint(f.t, &p, &other);
    owfp_tracker_hint_fetch(f.t, &from_cli); /* an empty table: nothing to fetch */
    assert_null(owfp_tracker_hint_conn(f.t, &from_cli));

    struct owfp_conn *c = handshake(&f, 1000, 5000);
    expect(&f, "o1:40000");
    owfp_tracker_hint_fetch(f.t, &from_cli);
    assert_ptr_equal(owfp_tracker_hint_conn(f.t, &from_cli), c);
    assert_ptr_equal(owfp_tracker_hint_conn(f.t, &from_srv), c);
    assert_null(owfp_tracker_hint_conn(f.t, &other));

    /* Closed, it lingers and is still the hint's; once a second closed
     * connection pushes it out (max_closed 1), the hint no longer names it. */
    c2s(&f, RST, 1001, 0, NULL);
    assert_ptr_equal(owfp_tracker_hint_conn(f.t, &from_cli), c);
    struct owfp_conn *c2 = handshake_between(&f, &b, &SRV, 100, 500);
    assert_ptr_equal(owfp_tracker_hint_conn(f.t, &other), c2);
    tx(&f, &b, &SRV, RST, 101, 0, NULL);
    expect(&f, "r1.0 e1:rst o2:40001 r2.0 e2:rst x1");
    assert_null(owfp_tracker_hint_conn(f.t, &from_cli));
    assert_ptr_equal(owfp_tracker_hint_conn(f.t, &other), c2);
    fx_done(&f);
    expect(&f, "x2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tracker_handshake_data_and_fins),
        cmocka_unit_test(test_tracker_synack_before_syn),
        cmocka_unit_test(test_tracker_split_handshake),
        cmocka_unit_test(test_tracker_data_on_syn),
        cmocka_unit_test(test_tracker_midstream_role_from_ports),
        cmocka_unit_test(test_tracker_midstream_leading_gap_from_peer_ack),
        cmocka_unit_test(test_tracker_hole_skipped_by_ack),
        cmocka_unit_test(test_tracker_payload_cut_becomes_gap_when_acked),
        cmocka_unit_test(test_tracker_rst_flushes_buffered_bytes),
        cmocka_unit_test(test_tracker_forged_rst_during_handshake),
        cmocka_unit_test(test_tracker_rst_refusing_the_syn),
        cmocka_unit_test(test_tracker_out_of_window_rst_ignored),
        cmocka_unit_test(test_tracker_out_of_window_rst_from_silent_side_ignored),
        cmocka_unit_test(test_tracker_stray_rst),
        cmocka_unit_test(test_tracker_data_after_fin_dropped),
        cmocka_unit_test(test_tracker_fin_waits_for_hole),
        cmocka_unit_test(test_tracker_reuse_new_isn),
        cmocka_unit_test(test_tracker_reuse_syn_from_responder),
        cmocka_unit_test(test_tracker_stragglers_after_close),
        cmocka_unit_test(test_tracker_syn_on_closed_starts_new),
        cmocka_unit_test(test_tracker_old_syn_after_close_is_a_straggler),
        cmocka_unit_test(test_tracker_idle_timeout),
        cmocka_unit_test(test_tracker_closed_linger_then_freed),
        cmocka_unit_test(test_tracker_max_conns_evicts_oldest),
        cmocka_unit_test(test_tracker_max_closed_forgets_oldest),
        cmocka_unit_test(test_tracker_touch_step_keeps_timeouts_exact),
        cmocka_unit_test(test_tracker_touch_step_capture_end_order),
        cmocka_unit_test(test_tracker_sequence_wrap),
        cmocka_unit_test(test_tracker_ipv6),
        cmocka_unit_test(test_tracker_hint_follows_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
