/*
 * Reading captures (src/replay/capture.c): the mapping path must give
 * exactly what libpcap gives. Each test writes a capture, reads it once with
 * mapping and once through libpcap alone, and compares every record (bytes,
 * lengths, time stamp), the way the reading ends and its error message.
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

#include "replay/capture.h"

#define MAGIC_USEC 0xa1b2c3d4u
#define MAGIC_NSEC 0xa1b23c4du
#define MAX_RECS 4096

static char g_path[64];

static uint32_t swap32(uint32_t v)
{
    return v >> 24 | (v >> 8 & 0xff00) | (v << 8 & 0xff0000) | v << 24;
}

static uint16_t swap16(uint16_t v)
{
    return (uint16_t)(v >> 8 | v << 8);
}

/* A capture being written: host byte order unless `swapped`. */
struct cw {
    FILE *f;
    bool swapped;
};

static void put32(struct cw *w, uint32_t v)
{
    v = w->swapped ? swap32(v) : v;
    assert_int_equal(fwrite(&v, 4, 1, w->f), 1);
}

static void put16(struct cw *w, uint16_t v)
{
    v = w->swapped ? swap16(v) : v;
    assert_int_equal(fwrite(&v, 2, 1, w->f), 1);
}

static void cw_open(struct cw *w, uint32_t magic, uint16_t minor, uint32_t snaplen, bool swapped)
{
    snprintf(g_path, sizeof(g_path), "/tmp/owfp_capture_%d.pcap", (int)getpid());
    w->f = fopen(g_path, "wb");
    assert_non_null(w->f);
    w->swapped = swapped;
    put32(w, magic);
    put16(w, 2);
    put16(w, minor);
    put32(w, 0);
    put32(w, 0);
    put32(w, snaplen);
    put32(w, 1); /* Ethernet */
}

/* A record whose bytes are a pattern of `seed`; `stored` bytes follow the
 * header (caplen says `caplen`). */
static void cw_record(struct cw *w, uint32_t sec, uint32_t sub, uint32_t caplen, uint32_t len,
                      uint32_t stored, unsigned seed)
{
    put32(w, sec);
    put32(w, sub);
    put32(w, caplen);
    put32(w, len);
    for (uint32_t i = 0; i < stored; i++)
        assert_int_equal(fputc((int)((i * 7 + seed) & 0xff), w->f), (int)((i * 7 + seed) & 0xff));
}

static void cw_close(struct cw *w)
{
    assert_int_equal(fclose(w->f), 0);
}

struct rec {
    uint8_t *data;
    uint32_t caplen, len;
    uint64_t ts_us;
};

/* Everything one reader gives: the records, the last return code and the
 * error message, and whether it still read from the mapping at the end. */
struct run {
    struct rec r[MAX_RECS];
    size_t n;
    int last;
    char err[512];
    bool mapped_at_start, mapped_at_end;
    long long pos_at_end;
};

static void read_all(bool mapped, struct run *out)
{
    char err[512] = "";
    memset(out, 0, sizeof(*out));
    struct owfp_capture *c = owfp_capture_open(g_path, mapped, err, sizeof(err));
    assert_non_null(c);
    out->mapped_at_start = owfp_capture_is_mapped(c);
    struct owfp_capture_rec rec;
    while ((out->last = owfp_capture_next(c, &rec)) == 1) {
        assert_true(out->n < MAX_RECS);
        struct rec *r = &out->r[out->n++];
        r->data = malloc(rec.caplen ? rec.caplen : 1);
        assert_non_null(r->data);
        memcpy(r->data, rec.data, rec.caplen);
        r->caplen = rec.caplen;
        r->len = rec.len;
        r->ts_us = rec.ts_us;
    }
    if (out->last < 0)
        snprintf(out->err, sizeof(out->err), "%s", owfp_capture_error(c));
    out->mapped_at_end = owfp_capture_is_mapped(c);
    out->pos_at_end = owfp_capture_pos(c);
    owfp_capture_close(c);
}

static void free_run(struct run *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->r[i].data);
}

/* Reads g_path both ways and checks they agree; returns the mapped run's
 * summary in *mapped (records freed). */
static void same_both_ways(struct run *mapped_summary)
{
    static struct run a, b;
    read_all(true, &a);
    read_all(false, &b);
    assert_false(b.mapped_at_start);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        assert_int_equal(a.r[i].caplen, b.r[i].caplen);
        assert_int_equal(a.r[i].len, b.r[i].len);
        assert_int_equal(a.r[i].ts_us, b.r[i].ts_us);
        assert_memory_equal(a.r[i].data, b.r[i].data, a.r[i].caplen);
    }
    assert_int_equal(a.last, b.last);
    assert_string_equal(a.err, b.err);
    free_run(&a);
    free_run(&b);
    *mapped_summary = a;
    unlink(g_path);
}

/* More than two windows of full-size frames, so records straddle window
 * boundaries; time stamps at the edges of the microsecond field. */
static void test_capture_mapped_matches_libpcap(void **state)
{
    (void)state;
    struct cw w;
    cw_open(&w, MAGIC_USEC, 4, 65535, false);
    for (unsigned i = 0; i < 2000; i++) {
        uint32_t n = i % 3 ? 1514 : 60 + i % 50;
        cw_record(&w, 1700000000 + i, i % 2 ? 999999 : 0, n, n + i % 2, n, i);
    }
    cw_record(&w, 0, 0, 0, 0, 0, 0); /* an empty record */
    cw_close(&w);
    struct run s;
    same_both_ways(&s);
    assert_int_equal(s.n, 2001);
    assert_int_equal(s.last, 0);
    assert_true(s.mapped_at_start);
    assert_true(s.mapped_at_end);
}

/* Nanosecond files come out in microseconds, rounded down, as libpcap's
 * default precision gives them. */
static void test_capture_nanosecond_file(void **state)
{
    (void)state;
    struct cw w;
    cw_open(&w, MAGIC_NSEC, 4, 65535, false);
    cw_record(&w, 1700000000, 999999999, 60, 60, 60, 1);
    cw_record(&w, 1700000001, 1999, 60, 60, 60, 2);
    cw_close(&w);
    struct run s;
    same_both_ways(&s);
    assert_int_equal(s.n, 2);
    assert_true(s.mapped_at_end);
}

/* A record longer than the snapshot: libpcap cuts it, so the mapping hands
 * the file over at that record, and libpcap reads the rest. */
static void test_capture_over_snaplen_handed_to_libpcap(void **state)
{
    (void)state;
    struct cw w;
    cw_open(&w, MAGIC_USEC, 4, 100, false);
    cw_record(&w, 1, 0, 60, 60, 60, 1);
    cw_record(&w, 2, 0, 150, 150, 150, 2);
    cw_record(&w, 3, 0, 80, 90, 80, 3);
    cw_close(&w);
    struct run s;
    same_both_ways(&s);
    assert_int_equal(s.n, 3);
    assert_true(s.mapped_at_start);
    assert_false(s.mapped_at_end);
}

/* Truncated files end with libpcap's own error, after the same records. */
static void test_capture_truncated_record(void **state)
{
    (void)state;
    struct cw w;
    cw_open(&w, MAGIC_USEC, 4, 65535, false);
    cw_record(&w, 1, 0, 60, 60, 60, 1);
    cw_record(&w, 2, 0, 100, 100, 40, 2); /* 60 bytes short */
    cw_close(&w);
    struct run s;
    same_both_ways(&s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.last, -1);
    assert_non_null(strstr(s.err, "truncated"));
}

static void test_capture_truncated_record_header(void **state)
{
    (void)state;
    struct cw w;
    cw_open(&w, MAGIC_USEC, 4, 65535, false);
    cw_record(&w, 1, 0, 60, 60, 60, 1);
    put32(&w, 2); /* half a record header */
    put32(&w, 0);
    cw_close(&w);
    struct run s;
    same_both_ways(&s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.last, -1);
}

/* Absurd lengths are libpcap's to refuse. */
static void test_capture_bogus_caplen(void **state)
{
    (void)state;
    struct cw w;
    cw_open(&w, MAGIC_USEC, 4, 65535, false);
    cw_record(&w, 1, 0, 60, 60, 60, 1);
    cw_record(&w, 2, 0, 0x7fffffff, 60, 60, 2);
    cw_close(&w);
    struct run s;
    same_both_ways(&s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.last, -1);
    assert_false(s.mapped_at_end);
}

/* Time stamps libpcap reads as negative numbers go through libpcap. */
static void test_capture_high_time_stamps(void **state)
{
    (void)state;
    struct cw w;
    cw_open(&w, MAGIC_USEC, 4, 65535, false);
    cw_record(&w, 0x7fffffff, 5, 60, 60, 60, 1);
    cw_record(&w, 0x80000000u, 5, 60, 60, 60, 2);
    cw_record(&w, 3, 0xfffffff0u, 60, 60, 60, 3);
    cw_close(&w);
    struct run s;
    same_both_ways(&s);
    assert_int_equal(s.n, 3);
    assert_false(s.mapped_at_end);
}

/* Files in the other byte order, or of an older version, are libpcap's
 * from the start. */
static void test_capture_swapped_and_old_files_not_mapped(void **state)
{
    (void)state;
    struct cw w;
    cw_open(&w, MAGIC_USEC, 4, 65535, true);
    cw_record(&w, 1, 2, 60, 60, 60, 1);
    cw_close(&w);
    struct run s;
    same_both_ways(&s);
    assert_int_equal(s.n, 1);
    assert_false(s.mapped_at_start);

    cw_open(&w, MAGIC_USEC, 3, 65535, false);
    cw_record(&w, 1, 2, 60, 70, 60, 1);
    cw_close(&w);
    same_both_ways(&s);
    assert_int_equal(s.n, 1);
    assert_false(s.mapped_at_start);
}

/* The position after the last record is the file's size (the progress
 * line's measure). */
static void test_capture_position(void **state)
{
    (void)state;
    struct cw w;
    cw_open(&w, MAGIC_USEC, 4, 65535, false);
    cw_record(&w, 1, 0, 60, 60, 60, 1);
    cw_record(&w, 2, 0, 70, 70, 70, 2);
    cw_close(&w);
    struct run s;
    read_all(true, &s);
    free_run(&s);
    assert_int_equal(s.pos_at_end, 24 + 16 + 60 + 16 + 70);
    unlink(g_path);
}

/* Looking ahead gives each record's frame before it is read, in order,
 * as far as the window reaches; never once the file went to libpcap. */
static void test_capture_peek_sees_the_records_to_come(void **state)
{
    (void)state;
    struct cw w;
    cw_open(&w, MAGIC_USEC, 4, 100, false);
    for (unsigned i = 0; i < 20; i++)
        cw_record(&w, i, 0, 60 + i, 60 + i, 60 + i, i);
    cw_record(&w, 30, 0, 150, 150, 150, 30); /* over the snapshot: libpcap's */
    cw_record(&w, 31, 0, 60, 60, 60, 31);
    cw_close(&w);
    char err[512];
    struct owfp_capture *c = owfp_capture_open(g_path, true, err, sizeof(err));
    assert_non_null(c);
    uint64_t cursor = 0, off;
    const uint8_t *frame;
    uint32_t caplen;
    struct owfp_capture_rec rec;
    /* Nothing is mapped before the first read. */
    assert_false(owfp_capture_peek(c, &cursor, &off, &frame, &caplen));
    assert_int_equal(owfp_capture_next(c, &rec), 1);
    assert_int_equal(rec.caplen, 60);
    /* Two records looked at, then one per record read: two ahead. */
    for (unsigned i = 1; i < 3; i++) {
        assert_true(owfp_capture_peek(c, &cursor, &off, &frame, &caplen));
        assert_int_equal(caplen, 60 + i);
    }
    for (unsigned i = 1; i < 20; i++) {
        if (i + 2 < 20) {
            assert_true(owfp_capture_peek(c, &cursor, &off, &frame, &caplen));
            assert_int_equal(caplen, 60 + i + 2);
            assert_int_equal(frame[1], (uint8_t)(7 + i + 2));
        }
        assert_int_equal(owfp_capture_next(c, &rec), 1);
        assert_int_equal(rec.caplen, 60 + i);
        assert_int_equal(rec.data[1], (uint8_t)(7 + i));
    }
    /* The record over the snapshot cannot be looked at. */
    uint64_t at = 0;
    assert_false(owfp_capture_peek(c, &at, &off, &frame, &caplen));
    assert_int_equal(owfp_capture_next(c, &rec), 1);
    assert_int_equal(rec.caplen, 100);
    assert_false(owfp_capture_is_mapped(c));
    assert_false(owfp_capture_peek(c, &at, &off, &frame, &caplen));
    assert_int_equal(owfp_capture_next(c, &rec), 1);
    assert_int_equal(owfp_capture_next(c, &rec), 0);
    owfp_capture_close(c);
    unlink(g_path);
}

/* Peeking in step with reading: every record's offset and frame. */
static void test_capture_peek_offsets(void **state)
{
    (void)state;
    struct cw w;
    cw_open(&w, MAGIC_USEC, 4, 65535, false);
    for (unsigned i = 0; i < 5; i++)
        cw_record(&w, i, 0, 40 + i, 40 + i, 40 + i, i);
    cw_close(&w);
    char err[512];
    struct owfp_capture *c = owfp_capture_open(g_path, true, err, sizeof(err));
    assert_non_null(c);
    uint64_t cursor = 0, off, want = 24 + 16 + 40;
    const uint8_t *frame;
    uint32_t caplen;
    struct owfp_capture_rec rec;
    assert_int_equal(owfp_capture_next(c, &rec), 1);
    for (unsigned i = 1; i < 5; i++) {
        assert_true(owfp_capture_peek(c, &cursor, &off, &frame, &caplen));
        assert_int_equal(off, want);
        assert_int_equal(caplen, 40 + i);
        assert_int_equal(frame[0], (uint8_t)i);
        want += 16 + 40 + i;
        assert_int_equal(cursor, want);
    }
    assert_false(owfp_capture_peek(c, &cursor, &off, &frame, &caplen)); /* the end */
    assert_int_equal(owfp_capture_next(c, &rec), 1);
    /* A cursor behind the next record means the next record. */
    uint64_t behind = 0;
    assert_true(owfp_capture_peek(c, &behind, &off, &frame, &caplen));
    assert_int_equal(off, 24 + 16 + 40 + 16 + 41);
    owfp_capture_close(c);
    unlink(g_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture_mapped_matches_libpcap),
        cmocka_unit_test(test_capture_nanosecond_file),
        cmocka_unit_test(test_capture_over_snaplen_handed_to_libpcap),
        cmocka_unit_test(test_capture_truncated_record),
        cmocka_unit_test(test_capture_truncated_record_header),
        cmocka_unit_test(test_capture_bogus_caplen),
        cmocka_unit_test(test_capture_high_time_stamps),
        cmocka_unit_test(test_capture_swapped_and_old_files_not_mapped),
        cmocka_unit_test(test_capture_position),
        cmocka_unit_test(test_capture_peek_sees_the_records_to_come),
        cmocka_unit_test(test_capture_peek_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
