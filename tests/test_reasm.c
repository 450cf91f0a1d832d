/*
 * TCP reassembly of one direction (src/replay/reasm.c).
 *
 * A collecting sink records what comes out: delivered bytes concatenated,
 * each gap as "[n]" in a text rendering, and every call (kind, size, flags,
 * pointer) so tests can check chunking, flags and zero copy.
 *
 * The property test feeds random streams cut into random segments,
 * shuffled, with duplicates, overlapping retransmissions (of the same bytes
 * or of other ones), drops, acks and a FIN, and compares the output
 * position by position with a byte map (state, value and first supplier of
 * each byte) that knows nothing of the implementation: under FIRST bytes go
 * out as soon as they are in order and keep their first copy, under LAST
 * they go out only at acks and at the end and take their last copy. Reproduce a failure: OWFP_TEST_SEED=<seed>
 * OWFP_TEST_CASE=<case>; OWFP_TEST_CASES=<n> changes the number of cases.
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

#include "replay/reasm.h"

#define DEFAULT_SEED UINT64_C(0x7ea5e3b1e5eed001)
#define PROPERTY_CASES 3000u

/* ---- collecting sink ------------------------------------------------------ */

struct call {
    bool gap;
    uint64_t n;
    uint32_t flags;
    const uint8_t *p;
};

struct col {
    uint8_t *bytes; /* delivered bytes only */
    size_t nbytes, capbytes;
    char *text;     /* delivered bytes with "[n]" for each gap */
    size_t ntext, captext;
    struct call *calls;
    size_t ncalls, capcalls;
    bool count_only; /* only count (streams of many GiB) */
    uint64_t counted;
    uint64_t count_gap;
};

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    p = realloc(p, c * elem);
    assert_non_null(p);
    *cap = c;
    return p;
}

static void add_text(struct col *c, const char *s, size_t n)
{
    c->text = grow(c->text, &c->captext, c->ntext + n + 1, 1);
    memcpy(c->text + c->ntext, s, n);
    c->ntext += n;
    c->text[c->ntext] = '\0';
}

static void add_call(struct col *c, bool gap, uint64_t n, uint32_t flags, const uint8_t *p)
{
    c->calls = grow(c->calls, &c->capcalls, c->ncalls + 1, sizeof(*c->calls));
    c->calls[c->ncalls++] = (struct call){ gap, n, flags, p };
}

static void col_data(void *arg, const uint8_t *p, size_t n, uint32_t flags)
{
    struct col *c = arg;
    assert_true(n > 0);
    if (c->count_only) {
        c->counted += n;
        return;
    }
    c->bytes = grow(c->bytes, &c->capbytes, c->nbytes + n, 1);
    memcpy(c->bytes + c->nbytes, p, n);
    c->nbytes += n;
    add_text(c, (const char *)p, n);
    add_call(c, false, n, flags, p);
}

static void col_gap(void *arg, uint64_t n)
{
    struct col *c = arg;
    char buf[32];
    assert_true(n > 0);
    if (c->count_only) {
        c->count_gap += n;
        return;
    }
    int k = snprintf(buf, sizeof(buf), "[%" PRIu64 "]", n);
    add_text(c, buf, (size_t)k);
    add_call(c, true, n, 0, NULL);
}

static void col_free(struct col *c)
{
    free(c->bytes);
    free(c->text);
    free(c->calls);
    memset(c, 0, sizeof(*c));
}

static const struct owfp_reasm_sink SINK = { col_data, col_gap };

/* ---- one direction under test --------------------------------------------- */

struct t {
    struct owfp_reasm r;
    struct owfp_reasm_config cfg;
    struct col c;
    uint32_t base;
};

static void t_init(struct t *t, uint32_t base, enum owfp_overlap_policy pol)
{
    memset(t, 0, sizeof(*t));
    t->base = base;
    t->cfg.overlap = pol;
    owfp_reasm_init(&t->r, base);
}

static void t_done(struct t *t)
{
    owfp_reasm_release(&t->r, &t->cfg);
    assert_int_equal(owfp_reasm_buffered(&t->r), 0);
    owfp_reasm_free(&t->r, &t->cfg);
    col_free(&t->c);
}

static void segf(struct t *t, int64_t off, const char *s, uint32_t flags)
{
    owfp_reasm_segment(&t->r, &t->cfg, t->base + (uint32_t)off, (const uint8_t *)s,
                       (uint32_t)strlen(s), flags, &SINK, &t->c);
}

static void seg(struct t *t, int64_t off, const char *s)
{
    segf(t, off, s, 0);
}

static void ack(struct t *t, int64_t off)
{
    owfp_reasm_ack(&t->r, &t->cfg, t->base + (uint32_t)off, &SINK, &t->c);
}

static void fin(struct t *t, int64_t off)
{
    owfp_reasm_fin(&t->r, t->base + (uint32_t)off);
}

static void flush(struct t *t)
{
    owfp_reasm_flush(&t->r, &t->cfg, &SINK, &t->c);
}

static const char *out(struct t *t)
{
    return t->c.text ? t->c.text : "";
}

/* ---- basic ordering ------------------------------------------------------- */

static void test_reasm_in_order_is_zero_copy(void **state)
{
    (void)state;
    struct t t;
    static const char a[] = "HELLO ", b[] = "WORLD";
    t_init(&t, 1000, OWFP_OVERLAP_FIRST);
    seg(&t, 0, a);
    seg(&t, 6, b);
    assert_string_equal(out(&t), "HELLO WORLD");
    assert_int_equal(t.c.ncalls, 2);
    assert_ptr_equal(t.c.calls[0].p, (const uint8_t *)a);
    assert_ptr_equal(t.c.calls[1].p, (const uint8_t *)b);
    assert_int_equal(owfp_reasm_get_stats(&t.r).delivered, 11);
    assert_int_equal(owfp_reasm_get_stats(&t.r).out_of_order, 0);
    assert_null(t.r.ooo);
    t_done(&t);
}

static void test_reasm_out_of_order(void **state)
{
    (void)state;
    struct t t;
    static const char a[] = "HELLO ";
    t_init(&t, 7, OWFP_OVERLAP_FIRST);
    seg(&t, 6, "WORLD");
    assert_string_equal(out(&t), "");
    assert_int_equal(owfp_reasm_buffered(&t.r), 5);
    seg(&t, 0, a);
    assert_string_equal(out(&t), "HELLO WORLD");
    assert_int_equal(t.c.ncalls, 2);
    assert_ptr_equal(t.c.calls[0].p, (const uint8_t *)a); /* the filling segment: no copy */
    assert_int_equal(owfp_reasm_get_stats(&t.r).out_of_order, 1);
    assert_int_equal(owfp_reasm_buffered(&t.r), 0);
    assert_null(t.r.ooo);
    t_done(&t);
}

static void test_reasm_reverse_order(void **state)
{
    (void)state;
    struct t t;
    char stream[301];
    for (int i = 0; i < 300; i++)
        stream[i] = (char)('a' + i % 26);
    stream[300] = '\0';
    t_init(&t, 0xabcdef00u, OWFP_OVERLAP_FIRST);
    for (int i = 99; i >= 0; i--) {
        char s[4];
        memcpy(s, stream + 3 * i, 3);
        s[3] = '\0';
        seg(&t, 3 * i, s);
        assert_int_equal(t.c.nbytes, i == 0 ? 300 : 0);
    }
    assert_string_equal(out(&t), stream);
    assert_int_equal(t.c.ncalls, 100); /* one call per segment */
    assert_int_equal(owfp_reasm_get_stats(&t.r).out_of_order, 99);
    t_done(&t);
}

static void test_reasm_retransmissions(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 5, OWFP_OVERLAP_FIRST);
    seg(&t, 0, "ABCD");
    seg(&t, 0, "ABCD"); /* delivered already: cannot be compared */
    seg(&t, 2, "CDEF"); /* CD old, EF new */
    assert_string_equal(out(&t), "ABCDEF");
    assert_int_equal(owfp_reasm_get_stats(&t.r).retransmitted, 6);
    seg(&t, 10, "KLM");
    seg(&t, 10, "KLM"); /* buffered: compared, same */
    seg(&t, 11, "LMN"); /* LM same, N new */
    assert_int_equal(owfp_reasm_get_stats(&t.r).retransmitted, 11);
    assert_int_equal(owfp_reasm_get_stats(&t.r).conflicts, 0);
    seg(&t, 6, "GHIJ");
    assert_string_equal(out(&t), "ABCDEFGHIJKLMN");
    assert_int_equal(owfp_reasm_get_stats(&t.r).late, 0);
    t_done(&t);
}

static void test_reasm_zero_length_segments(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 0, OWFP_OVERLAP_FIRST);
    owfp_reasm_segment(&t.r, &t.cfg, 0, NULL, 0, 0, &SINK, &t.c);
    owfp_reasm_segment(&t.r, &t.cfg, 50, NULL, 0, 0, &SINK, &t.c);
    owfp_reasm_segment(&t.r, &t.cfg, 0xF0000000u, NULL, 0, 0, &SINK, &t.c);
    seg(&t, 3, "DEF");
    owfp_reasm_segment(&t.r, &t.cfg, 3, NULL, 0, 0, &SINK, &t.c);
    assert_int_equal(t.c.ncalls, 0);
    seg(&t, 0, "ABC");
    owfp_reasm_segment(&t.r, &t.cfg, 6, NULL, 0, 0, &SINK, &t.c);
    assert_string_equal(out(&t), "ABCDEF");
    assert_int_equal(owfp_reasm_get_stats(&t.r).retransmitted + owfp_reasm_get_stats(&t.r).out_of_window + owfp_reasm_get_stats(&t.r).refused, 0);
    t_done(&t);
}

static void test_reasm_flags_follow_segments(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 0, OWFP_OVERLAP_FIRST);
    segf(&t, 4, "EF", OWFP_REASM_PUSH);
    segf(&t, 2, "CD", OWFP_REASM_URGENT);
    segf(&t, 0, "AB", 0);
    segf(&t, 6, "GH", OWFP_REASM_PUSH | OWFP_REASM_URGENT);
    assert_string_equal(out(&t), "ABCDEFGH");
    assert_int_equal(t.c.ncalls, 4); /* contiguous pieces of different segments stay apart */
    assert_int_equal(t.c.calls[0].flags, 0);
    assert_int_equal(t.c.calls[1].flags, OWFP_REASM_URGENT);
    assert_int_equal(t.c.calls[2].flags, OWFP_REASM_PUSH);
    assert_int_equal(t.c.calls[3].flags, OWFP_REASM_PUSH | OWFP_REASM_URGENT);
    t_done(&t);
}

/* ---- overlaps ------------------------------------------------------------- */

/* suricata-verify's exact overlap: GOOD then EVIL at the same place, in
 * order (as in its capture) or behind a hole. Under FIRST, GOOD in order
 * goes out at once, so EVIL meets delivered bytes and cannot even be
 * compared; under LAST both copies wait for the ACK, and the ACK takes the
 * last. `before_ack` is what has come out before it. */
static void exact_overlap(enum owfp_overlap_policy pol, int64_t at, const char *before_ack,
                          const char *want, uint64_t conflicts)
{
    struct t t;
    t_init(&t, 100, pol);
    seg(&t, at, "GOOD");
    seg(&t, at, "EVIL");
    if (at > 0)
        seg(&t, 0, "x");
    assert_string_equal(out(&t), before_ack);
    ack(&t, at + 4);
    assert_string_equal(out(&t), want);
    assert_int_equal(owfp_reasm_get_stats(&t.r).conflicts, conflicts);
    assert_int_equal(owfp_reasm_get_stats(&t.r).retransmitted, 4 - conflicts);
    seg(&t, at, "GOOD"); /* once delivered, nothing replaces them */
    flush(&t);
    assert_string_equal(out(&t), want);
    t_done(&t);
}

static void test_reasm_exact_overlap_first_keeps_good(void **state)
{
    (void)state;
    exact_overlap(OWFP_OVERLAP_FIRST, 0, "GOOD", "GOOD", 0);
    exact_overlap(OWFP_OVERLAP_FIRST, 1, "xGOOD", "xGOOD", 4);
}

static void test_reasm_exact_overlap_last_takes_evil(void **state)
{
    (void)state;
    exact_overlap(OWFP_OVERLAP_LAST, 0, "", "EVIL", 4);
    exact_overlap(OWFP_OVERLAP_LAST, 1, "", "xEVIL", 4);
}

static void test_reasm_partial_overlap_first(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 100, OWFP_OVERLAP_FIRST);
    seg(&t, 1, "GOOD");
    seg(&t, 2, "XXX"); /* inside */
    seg(&t, 0, "x");
    assert_string_equal(out(&t), "xGOOD");
    assert_int_equal(owfp_reasm_get_stats(&t.r).conflicts, 3);
    t_done(&t);

    /* Sticking out on both sides: only the bytes nobody holds are taken. */
    t_init(&t, 100, OWFP_OVERLAP_FIRST);
    seg(&t, 3, "GOOD");
    seg(&t, 9, "ok");
    seg(&t, 2, "XXXXXXXXXXX"); /* 2..12, both ends sticking out */
    seg(&t, 0, "ab");
    assert_string_equal(out(&t), "abXGOODXXokXX");
    assert_int_equal(owfp_reasm_get_stats(&t.r).conflicts, 6);
    t_done(&t);
}

static void test_reasm_partial_overlap_last(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 100, OWFP_OVERLAP_LAST);
    seg(&t, 1, "GOOD");
    seg(&t, 2, "XXX");
    seg(&t, 0, "x");
    assert_string_equal(out(&t), "");
    ack(&t, 5);
    assert_string_equal(out(&t), "xGXXX");
    assert_int_equal(owfp_reasm_get_stats(&t.r).conflicts, 3);
    t_done(&t);

    t_init(&t, 100, OWFP_OVERLAP_LAST);
    seg(&t, 3, "GOOD");
    seg(&t, 9, "ok");
    seg(&t, 2, "XXXXXXXXXXX");
    seg(&t, 0, "ab");
    assert_string_equal(out(&t), "");
    ack(&t, 13);
    assert_string_equal(out(&t), "abXXXXXXXXXXX");
    assert_int_equal(owfp_reasm_get_stats(&t.r).conflicts, 6);
    t_done(&t);

    /* In order, later copies overlapping part of the waiting bytes. */
    t_init(&t, 100, OWFP_OVERLAP_LAST);
    seg(&t, 0, "abcdef");
    seg(&t, 4, "EFGH");
    seg(&t, 1, "B");
    ack(&t, 8);
    assert_string_equal(out(&t), "aBcdEFGH");
    assert_int_equal(owfp_reasm_get_stats(&t.r).conflicts, 3);
    t_done(&t);
}

/* An in-order segment over buffered bytes: under FIRST it is delivered
 * without a copy up to the buffered piece, which then goes out, and the
 * segment continues; under LAST its bytes replace the buffered ones and all
 * of it waits, cut into pieces around them, for the ACK. */
static void test_reasm_in_order_segment_over_buffered_bytes(void **state)
{
    (void)state;
    static const char s[] = "abcdefghij";
    struct t t;
    t_init(&t, 0, OWFP_OVERLAP_FIRST);
    segf(&t, 3, "DE", OWFP_REASM_PUSH);
    segf(&t, 6, "G", OWFP_REASM_URGENT);
    segf(&t, 0, s, 0);
    assert_string_equal(out(&t), "abcDEfGhij");
    assert_int_equal(t.c.ncalls, 5);
    assert_ptr_equal(t.c.calls[0].p, (const uint8_t *)s);
    assert_int_equal(t.c.calls[1].flags, OWFP_REASM_PUSH);
    assert_ptr_equal(t.c.calls[2].p, (const uint8_t *)s + 5);
    assert_int_equal(t.c.calls[3].flags, OWFP_REASM_URGENT);
    assert_ptr_equal(t.c.calls[4].p, (const uint8_t *)s + 7);
    assert_int_equal(owfp_reasm_get_stats(&t.r).conflicts, 3);
    t_done(&t);

    t_init(&t, 0, OWFP_OVERLAP_LAST);
    segf(&t, 3, "DE", OWFP_REASM_PUSH);
    seg(&t, 6, "G");
    seg(&t, 8, "IJKL");
    segf(&t, 0, s, OWFP_REASM_URGENT);
    assert_string_equal(out(&t), "");
    assert_int_equal(owfp_reasm_buffered(&t.r), 12);
    ack(&t, 8); /* pieces abc de f g h start before 8; ijKL does not */
    assert_string_equal(out(&t), "abcdefgh");
    assert_int_equal(t.c.ncalls, 5);
    for (size_t i = 0; i < t.c.ncalls; i++) /* copies, not the caller's buffer */
        assert_true(t.c.calls[i].p < (const uint8_t *)s || t.c.calls[i].p >= (const uint8_t *)s + 10);
    assert_int_equal(t.c.calls[0].flags, OWFP_REASM_URGENT);
    assert_int_equal(t.c.calls[1].flags, OWFP_REASM_PUSH); /* the first supplier's flags */
    ack(&t, 9); /* inside the last piece: all of it */
    assert_string_equal(out(&t), "abcdefghijKL");
    assert_int_equal(owfp_reasm_get_stats(&t.r).conflicts, 5);
    assert_int_equal(owfp_reasm_buffered(&t.r), 0);
    t_done(&t);
}

/* ---- sequence space ------------------------------------------------------- */

static void test_reasm_sequence_wrap(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 0xFFFFFFF0u, OWFP_OVERLAP_FIRST);
    seg(&t, 0, "0123456789");      /* 0xFFFFFFF0 .. 0xFFFFFFF9 */
    seg(&t, 20, "KLMNOPQRST");     /* beyond the wrap, out of order */
    seg(&t, 10, "ABCDEFGHIJ");     /* across the wrap */
    assert_string_equal(out(&t), "0123456789ABCDEFGHIJKLMNOPQRST");
    seg(&t, 5, "56789ABCDE");      /* old, across the wrap */
    assert_int_equal(owfp_reasm_get_stats(&t.r).retransmitted, 10);
    fin(&t, 30);                    /* seq 14 */
    assert_true(owfp_reasm_fin_reached(&t.r));
    ack(&t, 31);
    assert_int_equal(owfp_reasm_get_stats(&t.r).gaps, 0);
    t_done(&t);

    /* Holes across the wrap, skipped by an ack given after the wrap. */
    t_init(&t, 0xFFFFFFFAu, OWFP_OVERLAP_FIRST);
    seg(&t, 0, "ab");
    seg(&t, 10, "kl");
    ack(&t, 12); /* ack = 6 */
    assert_string_equal(out(&t), "ab[8]kl");
    t_done(&t);
}

/* Offsets past 4 GiB: the same buffer fed again and again. */
static void test_reasm_stream_longer_than_4gib(void **state)
{
    (void)state;
    enum { CHUNK = 65536 };
    static uint8_t buf[CHUNK];
    const uint64_t chunks = 5 * (UINT64_C(1) << 30) / CHUNK + 3; /* a little over 5 GiB */
    struct t t;
    t_init(&t, 0xFFFF0000u, OWFP_OVERLAP_FIRST);
    t.c.count_only = true;
    memset(buf, 'z', sizeof(buf));
    uint64_t off = 0;
    for (uint64_t i = 0; i < chunks; i++, off += CHUNK)
        owfp_reasm_segment(&t.r, &t.cfg, t.base + (uint32_t)off, buf, CHUNK, 0, &SINK, &t.c);
    assert_int_equal(t.c.counted, off);
    assert_int_equal(t.r.next, off);
    assert_true(off > (UINT64_C(5) << 30));

    /* Hole, buffered data, retransmission, ack and FIN beyond 4 GiB. */
    owfp_reasm_segment(&t.r, &t.cfg, t.base + (uint32_t)(off + 100), buf, 50, 0, &SINK, &t.c);
    assert_int_equal(owfp_reasm_buffered(&t.r), 50);
    owfp_reasm_segment(&t.r, &t.cfg, t.base + (uint32_t)(off - 10), buf, 10, 0, &SINK, &t.c);
    assert_int_equal(owfp_reasm_get_stats(&t.r).retransmitted, 10);
    owfp_reasm_fin(&t.r, t.base + (uint32_t)(off + 150));
    assert_int_equal(t.r.fin_off, off + 150);
    owfp_reasm_ack(&t.r, &t.cfg, t.base + (uint32_t)(off + 120), &SINK, &t.c);
    assert_int_equal(t.c.count_gap, 100);
    assert_int_equal(t.c.counted, off + 50);
    assert_true(owfp_reasm_fin_reached(&t.r));
    assert_int_equal(owfp_reasm_get_stats(&t.r).delivered + owfp_reasm_get_stats(&t.r).gap_bytes, off + 150);
    t_done(&t);
}

static void test_reasm_out_of_window_refused(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 1, OWFP_OVERLAP_FIRST);
    seg(&t, 0, "ab");
    seg(&t, 2 + (int64_t)OWFP_REASM_MAX_AHEAD + 1, "far");
    assert_int_equal(owfp_reasm_get_stats(&t.r).out_of_window, 3);
    seg(&t, 2 + (int64_t)OWFP_REASM_MAX_AHEAD, "edge"); /* exactly at the limit: kept */
    assert_int_equal(owfp_reasm_buffered(&t.r), 4);
    assert_int_equal(owfp_reasm_get_stats(&t.r).out_of_window, 3);
    t_done(&t);
}

/* ---- acks ----------------------------------------------------------------- */

static void test_reasm_ack_skips_mid_gap(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 40000, OWFP_OVERLAP_FIRST);
    seg(&t, 0, "VERY");
    seg(&t, 8, "DATA");
    assert_string_equal(out(&t), "VERY");
    ack(&t, 12);
    assert_string_equal(out(&t), "VERY[4]DATA");
    assert_int_equal(owfp_reasm_get_stats(&t.r).gaps, 1);
    assert_int_equal(owfp_reasm_get_stats(&t.r).gap_bytes, 4);
    t_done(&t);
}

static void test_reasm_ack_skips_leading_gap(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 40000, OWFP_OVERLAP_FIRST);
    seg(&t, 4, "DATA");
    ack(&t, 5); /* inside the data: the hole before it goes */
    assert_string_equal(out(&t), "[4]DATA");
    t_done(&t);
}

static void test_reasm_ack_behind_equal_or_too_far_does_nothing(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 0x80000000u, OWFP_OVERLAP_FIRST);
    seg(&t, 0, "ab");
    seg(&t, 5, "fg");
    ack(&t, 1);  /* behind */
    ack(&t, -100);
    ack(&t, 2);  /* equal to next */
    ack(&t, 2 + (int64_t)OWFP_REASM_MAX_AHEAD + 1);
    ack(&t, 2 + 0x80000000); /* opposite side of the sequence space */
    assert_string_equal(out(&t), "ab");
    assert_int_equal(owfp_reasm_get_stats(&t.r).gaps, 0);
    ack(&t, 2 + (int64_t)OWFP_REASM_MAX_AHEAD); /* the limit itself is believed */
    assert_string_equal(out(&t), "ab[3]fg[1073741819]");
    t_done(&t);
}

static void test_reasm_ack_covers_several_holes(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 0, OWFP_OVERLAP_FIRST);
    seg(&t, 2, "cd");
    seg(&t, 6, "gh");
    seg(&t, 10, "kl");
    seg(&t, 16, "qr");
    ack(&t, 9); /* ends inside the hole 8..10 */
    assert_string_equal(out(&t), "[2]cd[2]gh[1]");
    assert_int_equal(t.r.next, 9);
    seg(&t, 9, "j"); /* the rest of that hole still arrives normally */
    assert_string_equal(out(&t), "[2]cd[2]gh[1]jkl");
    seg(&t, 8, "i"); /* skipped: late */
    assert_int_equal(owfp_reasm_get_stats(&t.r).late, 1);
    ack(&t, 20);
    assert_string_equal(out(&t), "[2]cd[2]gh[1]jkl[4]qr[2]");
    t_done(&t);
}

static void test_reasm_late_bytes(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 777, OWFP_OVERLAP_FIRST);
    seg(&t, 0, "ab");
    seg(&t, 10, "kl");
    ack(&t, 10);
    assert_string_equal(out(&t), "ab[8]kl");
    seg(&t, 2, "cdefghij"); /* exactly the hole */
    assert_int_equal(owfp_reasm_get_stats(&t.r).late, 8);
    assert_int_equal(owfp_reasm_get_stats(&t.r).retransmitted, 0);
    seg(&t, 0, "abcdefghijkl"); /* 2 + 2 retransmitted around 8 late */
    assert_int_equal(owfp_reasm_get_stats(&t.r).late, 16);
    assert_int_equal(owfp_reasm_get_stats(&t.r).retransmitted, 4);
    /* Two acks walking through one hole: the ranges merge. */
    ack(&t, 14);
    ack(&t, 20);
    seg(&t, 12, "mnopqrst");
    assert_int_equal(owfp_reasm_get_stats(&t.r).late, 24);
    /* A newer hole that does not touch it replaces the remembered one. */
    seg(&t, 20, "uv");
    seg(&t, 24, "y");
    ack(&t, 25);
    seg(&t, 12, "mnopqrstuvwxy"); /* 12..22 and y retransmitted, wx late */
    assert_int_equal(owfp_reasm_get_stats(&t.r).late, 26);
    assert_int_equal(owfp_reasm_get_stats(&t.r).retransmitted, 4 + 11);
    assert_string_equal(out(&t), "ab[8]kl[2][6]uv[2]y");
    t_done(&t);
}

/* ---- flush ---------------------------------------------------------------- */

static void test_reasm_flush_several_holes(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 0xFFFFFFFEu, OWFP_OVERLAP_FIRST);
    seg(&t, 0, "a");
    seg(&t, 3, "de");
    seg(&t, 7, "h");
    seg(&t, 20, "uvw");
    seg(&t, 23, "x");
    flush(&t);
    assert_string_equal(out(&t), "a[2]de[2]h[12]uvwx");
    assert_null(t.r.ooo);
    assert_int_equal(owfp_reasm_buffered(&t.r), 0);
    assert_int_equal(owfp_reasm_get_stats(&t.r).gaps, 3);
    assert_int_equal(owfp_reasm_get_stats(&t.r).gap_bytes, 16);
    assert_int_equal(owfp_reasm_get_stats(&t.r).delivered, 8);
    flush(&t); /* nothing left */
    assert_int_equal(owfp_reasm_get_stats(&t.r).gaps, 3);
    t_done(&t);
}

/* ---- FIN ------------------------------------------------------------------ */

static void test_reasm_fin_before_data(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 123456, OWFP_OVERLAP_FIRST);
    fin(&t, 8); /* out of order: before any byte */
    assert_false(owfp_reasm_fin_reached(&t.r));
    seg(&t, 4, "efgh");
    seg(&t, 0, "abcd");
    assert_string_equal(out(&t), "abcdefgh");
    assert_true(owfp_reasm_fin_reached(&t.r));
    fin(&t, 8); /* retransmitted FIN: fine */
    assert_int_equal(owfp_reasm_get_stats(&t.r).bad_fins, 0);
    t_done(&t);
}

static void test_reasm_data_after_fin(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 0, OWFP_OVERLAP_FIRST);
    seg(&t, 0, "abc");
    fin(&t, 5);
    seg(&t, 3, "deXYZ"); /* XYZ beyond the FIN */
    assert_string_equal(out(&t), "abcde");
    assert_int_equal(owfp_reasm_get_stats(&t.r).after_fin, 3);
    seg(&t, 5, "Q");
    seg(&t, 9, "QQ");
    assert_int_equal(owfp_reasm_get_stats(&t.r).after_fin, 6);
    assert_true(owfp_reasm_fin_reached(&t.r));
    fin(&t, 7); /* another position: ignored */
    assert_int_equal(owfp_reasm_get_stats(&t.r).bad_fins, 1);
    assert_int_equal(t.r.fin_off, 5);
    ack(&t, 6); /* the FIN's own slot */
    assert_int_equal(owfp_reasm_get_stats(&t.r).gaps, 0);
    t_done(&t);
}

/* Bytes buffered before the FIN became known, some beyond it. */
static void test_reasm_fin_after_buffered_bytes_beyond_it(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 0, OWFP_OVERLAP_FIRST);
    seg(&t, 4, "efgh");  /* crosses the FIN at 6 */
    seg(&t, 8, "ij");    /* beyond it */
    fin(&t, 6);
    seg(&t, 0, "abcd");
    assert_string_equal(out(&t), "abcdef");
    assert_true(owfp_reasm_fin_reached(&t.r));
    assert_int_equal(owfp_reasm_get_stats(&t.r).after_fin, 2);
    flush(&t);
    assert_string_equal(out(&t), "abcdef");
    assert_int_equal(owfp_reasm_get_stats(&t.r).after_fin, 4);
    assert_null(t.r.ooo);
    t_done(&t);
}

static void test_reasm_fin_bounds_ack_and_flush(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 99, OWFP_OVERLAP_FIRST);
    seg(&t, 0, "ab");
    seg(&t, 4, "ef");
    fin(&t, 10);
    ack(&t, 50); /* acks beyond the FIN skip only up to it */
    assert_string_equal(out(&t), "ab[2]ef[4]");
    assert_true(owfp_reasm_fin_reached(&t.r));
    t_done(&t);

    /* Flush runs up to a known FIN, the hole before it included. */
    t_init(&t, 99, OWFP_OVERLAP_FIRST);
    fin(&t, 10);
    seg(&t, 3, "de");
    seg(&t, 12, "zz");
    flush(&t);
    assert_string_equal(out(&t), "[3]de[5]");
    assert_true(owfp_reasm_fin_reached(&t.r));
    assert_int_equal(owfp_reasm_get_stats(&t.r).after_fin, 2);
    t_done(&t);
}

static void test_reasm_bad_fins_ignored(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 5000, OWFP_OVERLAP_FIRST);
    seg(&t, 0, "abcdef");
    fin(&t, 3); /* behind delivered bytes */
    fin(&t, 6 + (int64_t)OWFP_REASM_MAX_AHEAD + 1);
    assert_int_equal(owfp_reasm_get_stats(&t.r).bad_fins, 2);
    assert_int_equal(t.r.fin_off, UINT64_MAX);
    fin(&t, 6);
    assert_true(owfp_reasm_fin_reached(&t.r));
    t_done(&t);
}

/* ---- caps ----------------------------------------------------------------- */

static void test_reasm_cap_per_direction(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 0, OWFP_OVERLAP_FIRST);
    t.cfg.max_buffered = 6;
    seg(&t, 2, "cdef");
    seg(&t, 8, "ijk"); /* 4 + 3 > 6: refused */
    seg(&t, 12, "mn");  /* 4 + 2: fits */
    assert_int_equal(owfp_reasm_get_stats(&t.r).refused, 3);
    assert_int_equal(owfp_reasm_buffered(&t.r), 6);
    seg(&t, 0, "ab");   /* in order: no cap */
    assert_string_equal(out(&t), "abcdef");
    assert_int_equal(owfp_reasm_buffered(&t.r), 2);
    flush(&t);
    assert_string_equal(out(&t), "abcdef[6]mn");
    t_done(&t);
}

static void test_reasm_cap_shared_budget(void **state)
{
    (void)state;
    struct owfp_reasm_budget budget = { .used = 0, .limit = 10 };
    struct t a, b;
    t_init(&a, 0, OWFP_OVERLAP_FIRST);
    t_init(&b, 1000, OWFP_OVERLAP_LAST);
    a.cfg.budget = b.cfg.budget = &budget;
    seg(&a, 5, "123456");
    seg(&b, 5, "ABCDEF"); /* 6 + 6 > 10 */
    seg(&b, 5, "ABCD");
    assert_int_equal(budget.used, 10);
    assert_int_equal(owfp_reasm_get_stats(&b.r).refused, 6);
    seg(&a, 20, "z");
    assert_int_equal(owfp_reasm_get_stats(&a.r).refused, 1);
    flush(&b);
    assert_string_equal(out(&b), "[5]ABCD");
    assert_int_equal(budget.used, 6);
    seg(&a, 20, "z"); /* room again */
    assert_int_equal(budget.used, 7);
    owfp_reasm_release(&a.r, &a.cfg);
    assert_int_equal(budget.used, 0);
    assert_null(a.r.ooo);
    t_done(&a);
    t_done(&b);
    assert_int_equal(budget.used, 0);
}

/* ---- LAST: delivery at the ACK ------------------------------------------ */

/* In-order bytes are copied and held: a later copy could still replace
 * them until the receiver acknowledges them. */
static void test_reasm_last_nothing_before_ack(void **state)
{
    (void)state;
    static const char a[] = "HELLO ", b[] = "WORLD";
    struct t t;
    t_init(&t, 1000, OWFP_OVERLAP_LAST);
    seg(&t, 0, a);
    seg(&t, 6, b);
    fin(&t, 11);
    assert_string_equal(out(&t), "");
    assert_int_equal(t.r.next, 0);
    assert_int_equal(owfp_reasm_buffered(&t.r), 11);
    assert_false(owfp_reasm_fin_reached(&t.r));
    assert_int_equal(owfp_reasm_get_stats(&t.r).out_of_order, 0); /* held, but in order */
    ack(&t, 0);  /* at next: nothing */
    ack(&t, -5); /* behind: nothing */
    assert_string_equal(out(&t), "");
    ack(&t, 12); /* the FIN's slot */
    assert_string_equal(out(&t), "HELLO WORLD");
    assert_int_equal(t.c.ncalls, 2);
    assert_ptr_not_equal(t.c.calls[0].p, (const uint8_t *)a);
    assert_ptr_not_equal(t.c.calls[1].p, (const uint8_t *)b);
    assert_true(owfp_reasm_fin_reached(&t.r));
    assert_int_equal(owfp_reasm_get_stats(&t.r).delivered, 11);
    assert_int_equal(owfp_reasm_buffered(&t.r), 0);
    t_done(&t);

    /* Behind a hole it is out of order, as under FIRST. */
    t_init(&t, 1000, OWFP_OVERLAP_LAST);
    seg(&t, 6, b);
    seg(&t, 0, a);
    assert_int_equal(owfp_reasm_get_stats(&t.r).out_of_order, 1);
    assert_string_equal(out(&t), "");
    t_done(&t);
}

/* An ack delivers the pieces that start before it, each whole, skipping
 * holes; a piece starting at the ack point waits. */
static void test_reasm_last_ack_delivers_pieces_before_it(void **state)
{
    (void)state;
    struct t t;
    t_init(&t, 0xFFFFFFFCu, OWFP_OVERLAP_LAST); /* across the wrap */
    seg(&t, 0, "ab");
    seg(&t, 2, "cd");
    seg(&t, 6, "gh");
    seg(&t, 8, "ij");
    ack(&t, 1); /* inside "ab" */
    assert_string_equal(out(&t), "ab");
    ack(&t, 3); /* inside "cd": all of it */
    assert_string_equal(out(&t), "abcd");
    assert_int_equal(t.r.next, 4);
    ack(&t, 6); /* only the hole: "gh" starts at the ack point */
    assert_string_equal(out(&t), "abcd[2]");
    assert_int_equal(t.r.next, 6);
    ack(&t, 7);
    assert_string_equal(out(&t), "abcd[2]gh");
    assert_int_equal(owfp_reasm_buffered(&t.r), 2);
    seg(&t, 8, "IJ"); /* still waiting: replaced */
    seg(&t, 6, "GH"); /* delivered: only counted */
    ack(&t, 9);
    assert_string_equal(out(&t), "abcd[2]ghIJ");
    assert_int_equal(owfp_reasm_get_stats(&t.r).conflicts, 2);
    assert_int_equal(owfp_reasm_get_stats(&t.r).retransmitted, 2);
    ack(&t, 14); /* past everything: a final gap */
    assert_string_equal(out(&t), "abcd[2]ghIJ[4]");
    t_done(&t);
}

/* Flush delivers whatever still waits for its ACK, in order. */
static void test_reasm_last_flush_delivers_the_rest(void **state)
{
    (void)state;
    struct owfp_reasm_budget budget = { 0, 0 };
    struct t t;
    t_init(&t, 42, OWFP_OVERLAP_LAST);
    t.cfg.budget = &budget;
    seg(&t, 0, "abc");
    seg(&t, 5, "fg");
    seg(&t, 3, "DE");
    seg(&t, 3, "de");
    seg(&t, 9, "jk");
    ack(&t, 2);
    assert_string_equal(out(&t), "abc");
    assert_int_equal(budget.used, 6);
    fin(&t, 10); /* "k" lies beyond it */
    flush(&t);
    assert_string_equal(out(&t), "abcdefg[2]j");
    assert_true(owfp_reasm_fin_reached(&t.r));
    assert_int_equal(owfp_reasm_get_stats(&t.r).conflicts, 2);
    assert_int_equal(owfp_reasm_get_stats(&t.r).after_fin, 1);
    assert_null(t.r.ooo);
    assert_int_equal(budget.used, 0);
    t_done(&t);

    /* Without a FIN: up to the last byte held. */
    t_init(&t, 42, OWFP_OVERLAP_LAST);
    seg(&t, 4, "ef");
    seg(&t, 0, "ab");
    flush(&t);
    assert_string_equal(out(&t), "ab[2]ef");
    flush(&t);
    assert_string_equal(out(&t), "ab[2]ef");
    t_done(&t);
}

/* A cap that refuses bytes in order does not lose them: they go out at
 * once, after the bytes held before them, as under FIRST. Bytes out of
 * order are refused and become a gap. */
static void test_reasm_last_refused_in_order_bytes_go_at_once(void **state)
{
    (void)state;
    static const char head[] = "abcd", more[] = "efgh";
    struct t t;
    t_init(&t, 7, OWFP_OVERLAP_LAST);
    t.cfg.max_buffered = 4;
    seg(&t, 0, head);
    assert_string_equal(out(&t), "");
    seg(&t, 4, more); /* 4 + 4 > 4, right after the held run */
    assert_string_equal(out(&t), "abcdefgh");
    assert_ptr_not_equal(t.c.calls[0].p, (const uint8_t *)head); /* held: a copy */
    assert_ptr_equal(t.c.calls[1].p, (const uint8_t *)more);     /* refused: no copy */
    assert_int_equal(owfp_reasm_get_stats(&t.r).refused, 0);
    assert_int_equal(owfp_reasm_buffered(&t.r), 0);

    seg(&t, 8, "ij");
    seg(&t, 14, "op");   /* out of order: 2 + 2 fits */
    seg(&t, 16, "qr");   /* out of order: refused */
    assert_int_equal(owfp_reasm_get_stats(&t.r).refused, 2);
    seg(&t, 10, "klmn"); /* in order after "ij": refused by the cap, sent */
    assert_string_equal(out(&t), "abcdefghijklmn");
    assert_int_equal(owfp_reasm_get_stats(&t.r).refused, 2);
    assert_int_equal(owfp_reasm_buffered(&t.r), 2); /* "op" still waits for its ACK */
    seg(&t, 14, "OP");
    fin(&t, 18);
    flush(&t);
    assert_string_equal(out(&t), "abcdefghijklmnOP[2]");
    assert_int_equal(owfp_reasm_get_stats(&t.r).delivered, 16);
    t_done(&t);

    /* At next, refused by the shared budget: straight from the caller. */
    struct owfp_reasm_budget budget = { 0, 3 };
    t_init(&t, 7, OWFP_OVERLAP_LAST);
    t.cfg.budget = &budget;
    seg(&t, 0, head);
    assert_string_equal(out(&t), "abcd");
    assert_ptr_equal(t.c.calls[0].p, (const uint8_t *)head);
    seg(&t, 4, "efg"); /* fits: held */
    assert_string_equal(out(&t), "abcd");
    assert_int_equal(budget.used, 3);
    t_done(&t);
    assert_int_equal(budget.used, 0);

    /* After a release the held run is gone: what is held again counts. */
    t_init(&t, 7, OWFP_OVERLAP_LAST);
    t.cfg.max_buffered = 6;
    seg(&t, 0, "ab");
    seg(&t, 2, "cd");
    seg(&t, 4, "ef");
    owfp_reasm_release(&t.r, &t.cfg);
    seg(&t, 0, "AB");
    seg(&t, 2, "CDEFGH"); /* refused, right after "AB" */
    assert_string_equal(out(&t), "ABCDEFGH");
    assert_int_equal(owfp_reasm_get_stats(&t.r).refused, 0);
    t_done(&t);
}

/* Held bytes are charged to the budget until they go, by ack, flush or
 * release. */
static void test_reasm_last_budget_returns_to_zero(void **state)
{
    (void)state;
    struct owfp_reasm_budget budget = { 0, 100 };
    struct t a, b;
    t_init(&a, 0, OWFP_OVERLAP_LAST);
    t_init(&b, 5000, OWFP_OVERLAP_LAST);
    a.cfg.budget = b.cfg.budget = &budget;
    seg(&a, 0, "0123456789");
    seg(&a, 10, "abcdefghij");
    seg(&b, 0, "ABCDEFGHIJ");
    seg(&b, 20, "KLMNO");
    assert_int_equal(budget.used, 35);
    ack(&a, 5);
    assert_int_equal(budget.used, 25);
    assert_int_equal(owfp_reasm_buffered(&a.r), 10);
    flush(&a);
    assert_int_equal(budget.used, 15);
    assert_int_equal(owfp_reasm_buffered(&a.r), 0);
    owfp_reasm_release(&b.r, &b.cfg);
    assert_int_equal(budget.used, 0);
    assert_null(b.r.ooo);
    assert_string_equal(out(&a), "0123456789abcdefghij");
    assert_string_equal(out(&b), "");
    t_done(&a);
    t_done(&b);
    assert_int_equal(budget.used, 0);
}

/* ---- many segments -------------------------------------------------------- */

/* A long run behind one hole, then the hole filled: appending must stay
 * cheap (this would take minutes if each insertion walked the buffer). */
static void test_reasm_long_run_behind_one_hole(void **state)
{
    (void)state;
    enum { N = 200000, LEN = 7 };
    static uint8_t src[N * LEN + 1];
    struct t t;
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 131 + 7);
    t_init(&t, 0xFFFF0000u, OWFP_OVERLAP_FIRST);
    for (uint32_t i = 0; i < N; i++)
        owfp_reasm_segment(&t.r, &t.cfg, t.base + 1 + i * LEN, src + 1 + i * LEN, LEN, 0, &SINK,
                           &t.c);
    assert_int_equal(owfp_reasm_buffered(&t.r), (uint64_t)N * LEN);
    owfp_reasm_segment(&t.r, &t.cfg, t.base, src, 1, 0, &SINK, &t.c);
    assert_int_equal(t.c.nbytes, sizeof(src));
    assert_memory_equal(t.c.bytes, src, sizeof(src));
    assert_int_equal(t.c.ncalls, N + 1);
    t_done(&t);
}

/* Many pieces in random order (deep, unbalanced trees on the way), then
 * the same pieces released undelivered: no recursion, nothing leaks. */
static void test_reasm_many_segments_random_order(void **state)
{
    (void)state;
    enum { N = 100000, MAXLEN = 20 };
    uint32_t *cut = malloc((N + 1) * sizeof(*cut));
    uint32_t *order = malloc(N * sizeof(*order));
    uint8_t *src = malloc((size_t)N * MAXLEN);
    uint64_t x = 12345;
    struct t t;
    assert_non_null(cut);
    assert_non_null(order);
    assert_non_null(src);
    cut[0] = 0;
    for (uint32_t i = 0; i < N; i++) {
        x = x * UINT64_C(6364136223846793005) + 1442695040888963407u;
        cut[i + 1] = cut[i] + 1 + (uint32_t)(x >> 33) % MAXLEN;
        order[i] = i;
    }
    for (uint32_t i = 0; i < cut[N]; i++)
        src[i] = (uint8_t)(i ^ (i >> 8));
    for (uint32_t i = N - 1; i > 0; i--) {
        x = x * UINT64_C(6364136223846793005) + 1442695040888963407u;
        uint32_t j = (uint32_t)((x >> 33) % (i + 1)), tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    for (int pol = 0; pol < 2; pol++) {
        t_init(&t, 0xFFFFFF00u, (enum owfp_overlap_policy)pol);
        for (uint32_t k = 0; k < N; k++) {
            uint32_t i = order[k];
            owfp_reasm_segment(&t.r, &t.cfg, t.base + cut[i], src + cut[i], cut[i + 1] - cut[i],
                               0, &SINK, &t.c);
        }
        if (pol == OWFP_OVERLAP_LAST) {
            /* Everything waits for the ACK; one inside the last piece takes all. */
            assert_int_equal(t.c.nbytes, 0);
            assert_int_equal(owfp_reasm_buffered(&t.r), cut[N]);
            ack(&t, cut[N - 1] + 1);
        }
        assert_int_equal(t.c.nbytes, cut[N]);
        assert_memory_equal(t.c.bytes, src, cut[N]);
        assert_null(t.r.ooo);
        t_done(&t);
    }
    /* Increasing order behind a hole, then released without delivery. */
    t_init(&t, 0, OWFP_OVERLAP_FIRST);
    for (uint32_t i = 1; i < N; i++)
        owfp_reasm_segment(&t.r, &t.cfg, cut[i], src + cut[i], cut[i + 1] - cut[i], 0, &SINK,
                           &t.c);
    assert_int_equal(owfp_reasm_buffered(&t.r), cut[N] - cut[1]);
    t_done(&t);
    free(cut);
    free(order);
    free(src);
}

/* ---- random streams ------------------------------------------------------- */

struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint32_t below(struct rng *r, uint32_t n)
{
    return n ? (uint32_t)(rnd(r) % n) : 0;
}

static bool chance(struct rng *r, unsigned percent)
{
    return below(r, 100) < percent;
}

enum ev_kind { EV_SEG, EV_ACK, EV_FIN };

struct ev {
    enum ev_kind kind;
    int64_t a, b; /* bytes [a, b) (a < 0: starts before the stream); ack offset */
    uint8_t ver;  /* a segment carries the stream's bytes XOR ver (0: the original) */
};

enum { MISSING, HAVE, SKIPPED };

/* The byte segment event `e` carries at offset i >= 0. */
static uint8_t ev_byte(const uint8_t *data, const struct ev *e, int64_t i)
{
    return (uint8_t)(data[i] ^ e->ver);
}

/*
 * The reference: one state and one value per byte, and the position up to
 * which bytes have come out (delivered or skipped).
 *
 * A byte at or after `front` that arrives becomes HAVE with that copy's
 * value; a later copy of a HAVE byte at or after `front` is a conflict if
 * it differs, and under LAST takes its place. Bytes before `front` are out
 * and never change.
 *
 * FIRST: `front` moves over HAVE bytes as soon as they are there.
 * LAST: `front` moves only at an ack or the end: over every byte before the
 * ack point (MISSING ones become SKIPPED), then on over the rest of the
 * piece holding the byte just before it. A piece is the bytes one segment
 * supplied first that touch: the event index is kept per byte (`who`), so
 * the piece ends where the index changes.
 */
struct model {
    const uint8_t *data;
    uint8_t *st;
    uint8_t *val;
    uint32_t *who;
    int64_t len, front;
    bool fin, last;
    uint64_t conflicts;
};

static void model_advance(struct model *m)
{
    while (m->front < m->len && m->st[m->front] == HAVE)
        m->front++;
}

/* Everything before `to` comes out; under LAST also the piece that runs
 * across it. */
static void model_out_to(struct model *m, int64_t to)
{
    if (to <= m->front)
        return;
    for (int64_t i = m->front; i < to; i++)
        if (m->st[i] == MISSING)
            m->st[i] = SKIPPED;
    m->front = to;
    if (!m->last) {
        model_advance(m);
    } else if (m->st[to - 1] == HAVE) {
        while (m->front < m->len && m->st[m->front] == HAVE && m->who[m->front] == m->who[to - 1])
            m->front++;
    }
}

static void model_event(struct model *m, const struct ev *e, uint32_t index)
{
    switch (e->kind) {
    case EV_SEG:
        for (int64_t i = e->a > m->front ? e->a : m->front; i < e->b; i++) {
            uint8_t v = ev_byte(m->data, e, i);
            if (m->st[i] == MISSING) {
                m->st[i] = HAVE;
                m->val[i] = v;
                m->who[i] = index;
            } else if (m->val[i] != v) {
                m->conflicts++;
                if (m->last)
                    m->val[i] = v;
            }
        }
        if (!m->last)
            model_advance(m);
        break;
    case EV_ACK:
        model_out_to(m, e->a < m->len ? e->a : m->len);
        break;
    case EV_FIN:
        m->fin = true;
        break;
    }
}

static void model_flush(struct model *m)
{
    int64_t end = m->front;
    if (m->fin) {
        end = m->len;
    } else {
        for (int64_t i = m->len - 1; i >= m->front; i--)
            if (m->st[i] == HAVE) {
                end = i + 1;
                break;
            }
    }
    model_out_to(m, end);
}

struct pcase {
    struct rng rng;
    int64_t len;
    uint8_t *data;
    uint32_t base;
    struct ev *evs;
    size_t nev, capev;
    enum owfp_overlap_policy pol;
    uint32_t max_buffered;
    uint64_t budget_limit;
    unsigned alter;  /* % of copies carrying other bytes than the stream's */
    bool in_order;   /* segments in order, none lost, no acks */
    char err[256];
};

static void add_ev(struct pcase *pc, enum ev_kind k, int64_t a, int64_t b)
{
    uint8_t ver = 0;
    if (k == EV_SEG && chance(&pc->rng, pc->alter))
        ver = (uint8_t)(1 + below(&pc->rng, 255));
    pc->evs = grow(pc->evs, &pc->capev, pc->nev + 1, sizeof(*pc->evs));
    pc->evs[pc->nev++] = (struct ev){ k, a, b, ver };
}

static void build_case(struct pcase *pc, bool caps)
{
    struct rng *r = &pc->rng;
    pc->len = chance(r, 3) ? 0 : below(r, 3000) + 1;
    pc->data = malloc((size_t)pc->len + 1);
    assert_non_null(pc->data);
    unsigned alphabet = chance(r, 50) ? 4 : 256; /* small alphabets make equal bytes common */
    for (int64_t i = 0; i < pc->len; i++)
        pc->data[i] = (uint8_t)below(r, alphabet);
    pc->base = chance(r, 30) ? 0u - below(r, 4000) : (uint32_t)rnd(r);
    pc->pol = chance(r, 50) ? OWFP_OVERLAP_FIRST : OWFP_OVERLAP_LAST;
    if (caps) {
        pc->max_buffered = chance(r, 50) ? below(r, 2000) : 0;
        pc->budget_limit = chance(r, 50) ? below(r, 2000) + 1 : 0;
    }
    /* Differing copies only where the model says exactly which one wins;
     * under caps every copy carries the stream's bytes, so any data byte
     * that comes out can be checked. */
    if (!caps && chance(r, 50))
        pc->alter = 1 + below(r, 40);
    pc->in_order = chance(r, 20);

    uint32_t maxseg = 1 + below(r, chance(r, 30) ? 16 : 400);
    unsigned drop = pc->in_order ? 0 : below(r, 35), dup = below(r, 30);
    for (int64_t a = 0; a < pc->len;) {
        int64_t b = a + 1 + below(r, maxseg);
        if (b > pc->len)
            b = pc->len;
        if (!chance(r, drop))
            add_ev(pc, EV_SEG, a, b);
        if (chance(r, dup))
            add_ev(pc, EV_SEG, a, b);
        a = b;
    }
    /* Retransmissions with other boundaries, some starting before the stream. */
    for (uint32_t k = below(r, 12); k > 0 && pc->len > 0; k--) {
        int64_t a = below(r, (uint32_t)pc->len);
        int64_t b = a + 1 + below(r, 2 * maxseg);
        if (chance(r, 5))
            a = -(int64_t)below(r, 20) - 1;
        add_ev(pc, EV_SEG, a, b > pc->len ? pc->len : b);
    }
    for (uint32_t k = below(r, 4); k > 0; k--)
        add_ev(pc, EV_SEG, below(r, (uint32_t)pc->len + 1), -1); /* zero length */
    for (uint32_t k = pc->in_order ? 0 : below(r, 6); k > 0; k--)
        add_ev(pc, EV_ACK, below(r, (uint32_t)pc->len + 2), 0);
    if (chance(r, 70))
        add_ev(pc, EV_FIN, pc->len, 0);
    if (pc->in_order)
        return;

    /* Full shuffle, or only local reordering as on a real path. */
    bool full = chance(r, 50);
    for (size_t i = pc->nev; i > 1; i--) {
        size_t j = full ? below(r, (uint32_t)i) : i - 1 - below(r, i < 4 ? (uint32_t)i : 4);
        struct ev tmp = pc->evs[i - 1];
        pc->evs[i - 1] = pc->evs[j];
        pc->evs[j] = tmp;
    }
}

/* The implementation's output, position by position. */
struct actual {
    uint8_t *kind; /* HAVE (data) or SKIPPED (gap) */
    uint8_t *byte;
    int64_t n, cap;
    bool overflow;
};

static void act_data(void *arg, const uint8_t *p, size_t n, uint32_t flags)
{
    struct actual *a = arg;
    (void)flags;
    if (n == 0 || a->n + (int64_t)n > a->cap) {
        a->overflow = true;
        return;
    }
    memset(a->kind + a->n, HAVE, n);
    memcpy(a->byte + a->n, p, n);
    a->n += (int64_t)n;
}

static void act_gap(void *arg, uint64_t n)
{
    struct actual *a = arg;
    if (n == 0 || n > (uint64_t)(a->cap - a->n)) {
        a->overflow = true;
        return;
    }
    memset(a->kind + a->n, SKIPPED, n);
    a->n += (int64_t)n;
}

static const struct owfp_reasm_sink ACT_SINK = { act_data, act_gap };

static bool failf(struct pcase *pc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pc->err, sizeof(pc->err), fmt, ap);
    va_end(ap);
    return false;
}

static void feed(struct pcase *pc, struct owfp_reasm *r, const struct owfp_reasm_config *cfg,
                 const struct ev *e, struct actual *act)
{
    static uint8_t junk[64];
    uint8_t buf[4096 + 64];
    switch (e->kind) {
    case EV_SEG: {
        if (e->b < 0) { /* zero length */
            owfp_reasm_segment(r, cfg, pc->base + (uint32_t)e->a, NULL, 0, 0, &ACT_SINK, act);
            break;
        }
        int64_t pre = e->a < 0 ? -e->a : 0; /* bytes before the stream: any value */
        memcpy(buf, junk, (size_t)pre);
        for (int64_t i = e->a + pre; i < e->b; i++)
            buf[i - e->a] = ev_byte(pc->data, e, i);
        owfp_reasm_segment(r, cfg, pc->base + (uint32_t)e->a, buf, (uint32_t)(e->b - e->a),
                           OWFP_REASM_PUSH, &ACT_SINK, act);
        break;
    }
    case EV_ACK:
        owfp_reasm_ack(r, cfg, pc->base + (uint32_t)e->a, &ACT_SINK, act);
        break;
    case EV_FIN:
        owfp_reasm_fin(r, pc->base + (uint32_t)e->a);
        break;
    }
}

/* Without caps the output must equal the model's exactly, after every
 * event and at the end, and so must the count of conflicts. With caps,
 * bytes may be refused, so only consistency is checked: the output covers
 * the stream from 0 without holes, data bytes are the stream's own, a known
 * FIN is reached; and a stream sent in order loses nothing, whatever the
 * caps and the policy. */
static bool check_case(struct pcase *pc, bool caps)
{
    struct owfp_reasm r;
    struct owfp_reasm_budget budget = { 0, pc->budget_limit };
    struct owfp_reasm_config cfg = { pc->pol, pc->max_buffered, caps ? &budget : NULL };
    size_t sz = (size_t)pc->len + 1;
    struct model m = { .data = pc->data, .st = calloc(sz, 1), .val = malloc(sz),
                       .who = malloc(sz * sizeof(uint32_t)), .len = pc->len,
                       .last = pc->pol == OWFP_OVERLAP_LAST };
    struct actual act = { malloc(sz), malloc(sz), 0, pc->len, false };
    bool ok = true, fin_fed = false;

    assert_non_null(m.st);
    assert_non_null(m.val);
    assert_non_null(m.who);
    assert_non_null(act.kind);
    assert_non_null(act.byte);
    owfp_reasm_init(&r, pc->base);
    for (size_t i = 0; i < pc->nev && ok; i++) {
        struct ev e = pc->evs[i];
        /* An ack of the FIN's slot only once the FIN is known (else it would
         * skip a byte past the stream's end). */
        if (e.kind == EV_ACK && e.a > pc->len && !fin_fed)
            e.a = pc->len;
        fin_fed |= e.kind == EV_FIN;
        feed(pc, &r, &cfg, &e, &act);
        model_event(&m, &e, (uint32_t)i);
        if (caps && budget.used != owfp_reasm_buffered(&r))
            ok = failf(pc, "event %zu: budget %" PRIu64 " != buffered %" PRIu64, i, budget.used,
                       owfp_reasm_buffered(&r));
        if ((uint64_t)act.n != r.next)
            ok = failf(pc, "event %zu: output %" PRId64 " != next %" PRIu64, i, act.n, r.next);
        if (!caps && ok && act.n != m.front)
            ok = failf(pc, "event %zu: next %" PRId64 ", model %" PRId64, i, act.n, m.front);
    }
    if (ok) {
        owfp_reasm_flush(&r, &cfg, &ACT_SINK, &act);
        model_flush(&m);
    }
    if (ok && act.overflow)
        ok = failf(pc, "output past the end of the stream or empty call");
    if (ok && r.ooo != NULL)
        ok = failf(pc, "bytes left after flush");
    struct owfp_reasm_stats st = owfp_reasm_get_stats(&r);
    if (ok && (uint64_t)act.n != st.delivered + st.gap_bytes)
        ok = failf(pc, "stats do not add up");
    if (ok && st.conflicts != m.conflicts)
        ok = failf(pc, "%" PRIu64 " conflicts, model %" PRIu64, st.conflicts, m.conflicts);
    if (ok && pc->in_order && (st.gap_bytes != 0 || st.refused != 0 || act.n != pc->len))
        ok = failf(pc, "in order: %" PRIu64 " bytes skipped, %" PRIu64 " refused, %" PRId64
                   " of %" PRId64 " out", st.gap_bytes, st.refused, act.n, pc->len);
    if (ok && m.fin && !owfp_reasm_fin_reached(&r))
        ok = failf(pc, "FIN not reached after flush");
    if (ok && !caps && act.n != m.front)
        ok = failf(pc, "output length %" PRId64 ", model %" PRId64, act.n, m.front);
    for (int64_t i = 0; ok && i < act.n; i++) {
        if (act.kind[i] == HAVE && act.byte[i] != (caps ? pc->data[i] : m.val[i]))
            ok = failf(pc, "byte %" PRId64 ": 0x%02x, %s 0x%02x", i, act.byte[i],
                       caps ? "stream has" : "model says", caps ? pc->data[i] : m.val[i]);
        else if (!caps && act.kind[i] != m.st[i])
            ok = failf(pc, "byte %" PRId64 ": %s, model says %s", i,
                       act.kind[i] == HAVE ? "data" : "gap", m.st[i] == HAVE ? "data" : "gap");
    }
    owfp_reasm_release(&r, &cfg);
    if (ok && (budget.used != 0 || owfp_reasm_buffered(&r) != 0))
        ok = failf(pc, "storage not returned");
    owfp_reasm_free(&r, &cfg);
    free(m.st);
    free(m.val);
    free(m.who);
    free(act.kind);
    free(act.byte);
    return ok;
}

static uint64_t env_u64(const char *name, uint64_t dflt, bool *set)
{
    const char *v = getenv(name);
    if (set)
        *set = v && *v;
    return v && *v ? strtoull(v, NULL, 0) : dflt;
}

static bool run_case(uint64_t base, uint32_t index, bool caps, bool verbose)
{
    struct pcase pc;
    memset(&pc, 0, sizeof(pc));
    pc.rng.s = base ^ (UINT64_C(0x100000001b3) * (index + 1)) ^ (caps ? 0xcafe : 0);
    build_case(&pc, caps);
    bool ok = check_case(&pc, caps);
    if (!ok || verbose) {
        printf("%s: OWFP_TEST_SEED=0x%016" PRIx64 " OWFP_TEST_CASE=%u (%s): len %" PRId64
               ", base 0x%08x, %s, cap %u, budget %" PRIu64 ", altered %u%%%s, %zu events\n",
               ok ? "case" : "FAILED", base, index, caps ? "caps" : "exact", pc.len, pc.base,
               pc.pol == OWFP_OVERLAP_FIRST ? "FIRST" : "LAST", pc.max_buffered,
               pc.budget_limit, pc.alter, pc.in_order ? ", in order" : "", pc.nev);
        if (!ok)
            printf("  %s\n", pc.err);
        if (verbose)
            for (size_t i = 0; i < pc.nev; i++)
                printf("  %s %" PRId64 " %" PRId64 " ^0x%02x\n",
                       pc.evs[i].kind == EV_SEG ? "seg" : pc.evs[i].kind == EV_ACK ? "ack" : "fin",
                       pc.evs[i].a, pc.evs[i].b, pc.evs[i].ver);
    }
    free(pc.data);
    free(pc.evs);
    return ok;
}

static void run_property(bool caps)
{
    bool one;
    uint64_t base = env_u64("OWFP_TEST_SEED", DEFAULT_SEED, NULL);
    uint32_t only = (uint32_t)env_u64("OWFP_TEST_CASE", 0, &one);
    uint32_t cases = (uint32_t)env_u64("OWFP_TEST_CASES", PROPERTY_CASES, NULL);
    uint32_t failures = 0, ran = 0;

    if (one) {
        failures += !run_case(base, only, caps, true);
        ran = 1;
    } else {
        for (; ran < cases && failures < 3; ran++)
            failures += !run_case(base, ran, caps, false);
    }
    printf("%s: seed 0x%016" PRIx64 ", %u cases\n", caps ? "caps" : "exact", base, ran);
    if (failures)
        fail_msg("%u case(s) disagree (seed 0x%016" PRIx64 ", see above)", failures, base);
}

static void test_reasm_property_random_streams_match_model(void **state)
{
    (void)state;
    run_property(false);
}

static void test_reasm_property_random_streams_under_caps(void **state)
{
    (void)state;
    run_property(true);
}

/* An idle direction stays small (the connection keeps two). */
static void test_reasm_idle_direction_is_small(void **state)
{
    (void)state;
    assert_true(sizeof(struct owfp_reasm) <= 160);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasm_in_order_is_zero_copy),
        cmocka_unit_test(test_reasm_out_of_order),
        cmocka_unit_test(test_reasm_reverse_order),
        cmocka_unit_test(test_reasm_retransmissions),
        cmocka_unit_test(test_reasm_zero_length_segments),
        cmocka_unit_test(test_reasm_flags_follow_segments),
        cmocka_unit_test(test_reasm_exact_overlap_first_keeps_good),
        cmocka_unit_test(test_reasm_exact_overlap_last_takes_evil),
        cmocka_unit_test(test_reasm_partial_overlap_first),
        cmocka_unit_test(test_reasm_partial_overlap_last),
        cmocka_unit_test(test_reasm_in_order_segment_over_buffered_bytes),
        cmocka_unit_test(test_reasm_sequence_wrap),
        cmocka_unit_test(test_reasm_stream_longer_than_4gib),
        cmocka_unit_test(test_reasm_out_of_window_refused),
        cmocka_unit_test(test_reasm_ack_skips_mid_gap),
        cmocka_unit_test(test_reasm_ack_skips_leading_gap),
        cmocka_unit_test(test_reasm_ack_behind_equal_or_too_far_does_nothing),
        cmocka_unit_test(test_reasm_ack_covers_several_holes),
        cmocka_unit_test(test_reasm_late_bytes),
        cmocka_unit_test(test_reasm_flush_several_holes),
        cmocka_unit_test(test_reasm_fin_before_data),
        cmocka_unit_test(test_reasm_data_after_fin),
        cmocka_unit_test(test_reasm_fin_after_buffered_bytes_beyond_it),
        cmocka_unit_test(test_reasm_fin_bounds_ack_and_flush),
        cmocka_unit_test(test_reasm_bad_fins_ignored),
        cmocka_unit_test(test_reasm_cap_per_direction),
        cmocka_unit_test(test_reasm_cap_shared_budget),
        cmocka_unit_test(test_reasm_last_nothing_before_ack),
        cmocka_unit_test(test_reasm_last_ack_delivers_pieces_before_it),
        cmocka_unit_test(test_reasm_last_flush_delivers_the_rest),
        cmocka_unit_test(test_reasm_last_refused_in_order_bytes_go_at_once),
        cmocka_unit_test(test_reasm_last_budget_returns_to_zero),
        cmocka_unit_test(test_reasm_long_run_behind_one_hole),
        cmocka_unit_test(test_reasm_many_segments_random_order),
        cmocka_unit_test(test_reasm_property_random_streams_match_model),
        cmocka_unit_test(test_reasm_property_random_streams_under_caps),
        cmocka_unit_test(test_reasm_idle_direction_is_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
