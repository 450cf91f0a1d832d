/*
 * Fuzz target: TCP reassembly of one direction (src/replay/reasm.h), driven
 * by a script in the input and checked after every step against a model
 * that knows nothing of the implementation: a byte map of the stream saying
 * what each offset holds (nothing, buffered with a value and the segment
 * that supplied it, delivered, skipped).
 *
 * Input (a tape: bytes read as 0 once it is exhausted):
 *   h0: bit0 OWFP_OVERLAP_LAST; bit1 pass a NULL config (FIRST, no cap, no
 *       budget); bits2-4 k: max_buffered = k ? 16 << k : unlimited;
 *       bits5-7 b: 0 no budget, 1 a budget without limit, 2-6 a limit of
 *       preload + (16 << b), 7 a limit below the preload (all refused);
 *   base: 4 bytes LE, the sequence number of stream offset 0 (wraps);
 *   preload: 2 bytes LE, budget bytes "other directions" already use.
 * Then up to MAX_OPS operations, op byte bits0-2 the opcode, bits3-4 how a
 * position follows (POS_*: near next by an int8, near next by an int16, an
 * absolute offset, or far: beyond MAX_AHEAD or 2 GiB behind), bit5 the
 * length is 1 byte (else 2 bytes, mod 4096), bit6 PSH, bit7 URG:
 *   0, 1 segment: position, length, content byte c (0 = the canonical
 *        stream, else some bytes differ, so copies conflict);
 *   2 FIN at a position; 3 ACK of a position; 4 flush; 5 release;
 *   6 the next bytes in order (the fast path): length-1 byte, content byte;
 *   7 segment positioned near the lowest buffered byte (overlaps).
 * Positions stay below MAP (the model's size); far ones never touch it.
 *
 * The model follows the policies as reasm.h states them. FIRST: bytes in
 * order go out at once, straight from the segment; bytes behind a hole are
 * stored in runs (one piece per run, all or nothing against max_buffered
 * and the budget) and go out, piece by piece, once contiguous; a later copy
 * of a stored byte changes nothing. LAST: every byte is stored and a later
 * copy replaces a stored one; pieces go out whole when an ACK reaches their
 * start, or at flush; a run in order (at next, or right after the bytes
 * stored contiguously from there) that cannot be stored goes out at once,
 * after that stored run. Both: an ACK skips holes up to it (never past the
 * FIN); flush skips every hole, up to the FIN when one is known, dropping
 * pieces that start at or beyond it; a piece across the FIN is cut there;
 * bytes behind next are retransmitted or, inside the latest skipped range
 * (merged with the one before when they touch), late.
 *
 * Checked after every step: next, the FIN, the buffered byte count and the
 * budget equal the model's (budget = preload + buffered), every counter of
 * owfp_reasm_stats equals the model's, fin_reached agrees. Checked in the
 * sink, call by call: n > 0; the direction's next already moved (state
 * first, then the call); calls are contiguous, so delivered and skipped
 * bytes cover [0, next) exactly once; each delivered byte is the model's
 * (FIRST: the first stored copy; LAST: the last copy before it went out;
 * bytes delivered straight from a segment are that segment's); one call
 * never spans two segments and carries the flags of the segment that first
 * supplied it; bytes delivered straight from a segment point into the
 * caller's buffer (no copy). At the end, release returns the budget to the
 * preload and LeakSanitizer sees nothing left.
 *
 * FUZZ_TRACE=1 in the environment logs every step.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "replay/reasm.h"

#define MAP (1u << 17)
#define MAX_OPS 512
#define MAX_LEN 4096
#define NO_FIN UINT64_MAX
#define NONE UINT64_MAX

enum { M_NONE, M_HELD, M_DELIVERED, M_SKIPPED };
enum { POS_NEAR8, POS_NEAR16, POS_ABS, POS_FAR };

/* The model's byte map (static, 1.3 MiB; cleared up to `hw` per input). */
static uint8_t m_st[MAP], m_val[MAP], m_copied[MAP];
static uint16_t m_tag[MAP];
static uint32_t m_piece[MAP];
/* Buffered bytes per 256-byte block, so that searches skip empty blocks. */
static uint16_t m_blk[MAP >> 8];
/* What the sink saw. */
static uint8_t o_st[MAP];

struct model {
    uint64_t next, fin;
    uint64_t skip_lo, skip_hi;
    uint64_t held;    /* buffered bytes */
    uint64_t held_hi; /* every buffered offset is below it */
    uint32_t pieces;  /* piece ids handed out */
    struct owfp_reasm_stats st;
};

static struct {
    struct tape t;
    struct owfp_reasm r;
    struct owfp_reasm_budget budget;
    struct owfp_reasm_config cfg;
    const struct owfp_reasm_config *cfgp;
    bool last; /* the effective policy is LAST */
    bool use_budget;
    uint32_t base;
    uint64_t preload;
    struct model m;
    uint64_t obs_next;
    uint64_t hw; /* offsets below it may be dirty */
    uint16_t tag;
    uint32_t seg_flags[MAX_OPS + 1];
    const uint8_t *buf; /* the segment being passed, for the no-copy check */
    size_t buf_len;
    bool trace;
} z;

/* ---- content ---------------------------------------------------------------- */

static uint8_t canon(uint32_t off)
{
    return (uint8_t)(off * 131u + (off >> 8) * 7u + 1u);
}

/* Variant c of the stream: every (c%16+1)-th byte differs, so that copies
 * of the same range conflict in some bytes only. */
static uint8_t content(uint64_t off, uint8_t c)
{
    uint32_t o = (uint32_t)off;
    uint8_t v = canon(o);
    if (c != 0 && o % ((c & 15u) + 1u) == 0)
        v ^= (uint8_t)(c | 1u);
    return v;
}

/* ---- model ------------------------------------------------------------------ */

static void touch(uint64_t end)
{
    if (end > z.hw)
        z.hw = end;
}

/* Signed distance of `seq` from the next byte, in 32-bit sequence space. */
static int64_t rel_of(uint32_t seq)
{
    uint32_t d = seq - (z.base + (uint32_t)z.m.next);
    return d < 0x80000000u ? (int64_t)d : (int64_t)d - (INT64_C(1) << 32);
}

static void m_deliver(uint64_t o, uint8_t v, uint16_t tag, bool copied)
{
    CHECK(o == z.m.next && o < MAP);
    m_st[o] = M_DELIVERED;
    m_val[o] = v;
    m_tag[o] = tag;
    m_copied[o] = copied;
    z.m.next++;
    z.m.st.delivered++;
}

/* Delivers the buffered piece starting at next; its bytes at or beyond the
 * FIN are dropped with it. */
static void m_deliver_piece(void)
{
    uint64_t o = z.m.next;
    uint32_t pid = m_piece[o];
    while (o < MAP && m_st[o] == M_HELD && m_piece[o] == pid) {
        if (o < z.m.fin) {
            m_deliver(o, m_val[o], m_tag[o], true);
        } else {
            m_st[o] = M_NONE;
            z.m.st.after_fin++;
        }
        m_blk[o >> 8]--;
        z.m.held--;
        o++;
    }
}

static void m_drain(void)
{
    while (z.m.next < z.m.fin && z.m.next < MAP && m_st[z.m.next] == M_HELD)
        m_deliver_piece();
}

/* LAST: the end of the bytes stored contiguously from next. */
static uint64_t m_run_end(void)
{
    uint64_t o = z.m.next;
    while (o < MAP && m_st[o] == M_HELD)
        o++;
    return o;
}

/* LAST: delivers the pieces contiguous with next that start before `limit`,
 * each whole. */
static void m_drain_before(uint64_t limit)
{
    while (z.m.next < z.m.fin && z.m.next < limit && z.m.next < MAP && m_st[z.m.next] == M_HELD)
        m_deliver_piece();
}

static uint64_t m_first_held(uint64_t from)
{
    if (z.m.held == 0)
        return NONE;
    for (uint64_t o = from; o < z.m.held_hi; o++) {
        if ((o & 255) == 0 && m_blk[o >> 8] == 0) {
            o += 255;
            continue;
        }
        if (m_st[o] == M_HELD)
            return o;
    }
    return NONE;
}

static void m_skip(uint64_t n)
{
    /* Only the latest skipped range is remembered, merged when touching. */
    if (z.m.skip_hi != z.m.next || z.m.skip_lo == z.m.skip_hi)
        z.m.skip_lo = z.m.next;
    for (uint64_t i = 0; i < n; i++) {
        CHECK(m_st[z.m.next + i] == M_NONE);
        m_st[z.m.next + i] = M_SKIPPED;
    }
    z.m.next += n;
    z.m.skip_hi = z.m.next;
    z.m.st.gap_bytes += n;
    z.m.st.gaps++;
    touch(z.m.next);
}

static void m_skip_until(uint64_t limit)
{
    while (z.m.next < limit) {
        uint64_t h = m_first_held(z.m.next);
        uint64_t hole_end = h < limit ? h : limit;
        /* FIRST never keeps a piece at next; LAST does until its ACK. */
        CHECK(z.last || hole_end != z.m.next);
        if (hole_end > z.m.next)
            m_skip(hole_end - z.m.next);
        if (z.last)
            m_drain_before(limit);
        else
            m_drain();
    }
}

/* Bytes [a, b) that lie before next. */
static void m_old(int64_t a, int64_t b)
{
    uint64_t late = 0;
    if (b > 0) {
        uint64_t lo = a > 0 ? (uint64_t)a : 0, hi = (uint64_t)b;
        if (lo < z.m.skip_lo)
            lo = z.m.skip_lo;
        if (hi > z.m.skip_hi)
            hi = z.m.skip_hi;
        late = hi > lo ? hi - lo : 0;
    }
    z.m.st.late += late;
    z.m.st.retransmitted += (uint64_t)(b - a) - late;
}

/* A new copy of a buffered byte. */
static void m_settle(uint64_t o, uint8_t v)
{
    if (m_val[o] == v) {
        z.m.st.retransmitted++;
        return;
    }
    z.m.st.conflicts++;
    if (z.last)
        m_val[o] = v;
}

static bool m_charge(uint64_t n)
{
    if (!z.cfgp)
        return true;
    if (z.cfg.max_buffered && z.m.held + n > z.cfg.max_buffered)
        return false;
    if (z.use_budget && z.budget.limit && z.preload + z.m.held + n > z.budget.limit)
        return false;
    return true;
}

/* Stores [a, b) as one piece, unless a cap refuses it. */
static bool m_store(uint64_t a, uint64_t b, const uint8_t *p)
{
    if (!m_charge(b - a))
        return false;
    uint32_t pid = ++z.m.pieces;
    for (uint64_t o = a; o < b; o++) {
        m_st[o] = M_HELD;
        m_blk[o >> 8]++;
        m_val[o] = p[o - a];
        m_tag[o] = z.tag;
        m_piece[o] = pid;
    }
    z.m.held += b - a;
    if (b > z.m.held_hi)
        z.m.held_hi = b;
    touch(b);
    return true;
}

/* [s, e) starts at next: every byte goes out now, in order, new ones
 * straight from the segment and buffered pieces whole (cut at the FIN). */
static void m_in_order(uint64_t s, uint64_t e, const uint8_t *p)
{
    for (uint64_t o = s; o < e; o++)
        if (m_st[o] == M_HELD)
            m_settle(o, p[o - s]);
    while (z.m.next < e) {
        if (m_st[z.m.next] == M_HELD)
            m_deliver_piece();
        else
            m_deliver(z.m.next, p[z.m.next - s], z.tag, false);
    }
    m_drain();
    touch(z.m.next);
}

/* [s, e) starts beyond next: overlaps settle, the rest is buffered in runs. */
static void m_out_of_order(uint64_t s, uint64_t e, const uint8_t *p)
{
    bool waited = false;
    uint64_t o = s;
    while (o < e) {
        if (m_st[o] == M_HELD) {
            m_settle(o, p[o - s]);
            o++;
            continue;
        }
        uint64_t run = o;
        while (o < e && m_st[o] != M_HELD)
            o++;
        if (!m_store(run, o, p + (run - s)))
            z.m.st.refused += o - run;
        waited = true;
    }
    if (waited)
        z.m.st.out_of_order++;
}

/* LAST: every byte waits for its ACK; a run in order (at next, or right
 * after the bytes stored contiguously from there) that cannot be stored
 * goes out at once, after the stored run before it. */
static void m_last_walk(uint64_t s, uint64_t e, const uint8_t *p)
{
    bool waited = false;
    uint64_t o = s;
    while (o < e) {
        if (m_st[o] == M_HELD) {
            m_settle(o, p[o - s]);
            o++;
            continue;
        }
        uint64_t run = o;
        while (o < e && m_st[o] != M_HELD)
            o++;
        bool in_order = run == z.m.next || run == m_run_end();
        if (m_store(run, o, p + (run - s))) {
            waited |= !in_order;
        } else if (in_order) {
            m_drain_before(run);
            CHECK(z.m.next == run); /* model: the run before it went first */
            for (uint64_t b = run; b < o; b++)
                m_deliver(b, p[b - s], z.tag, false);
            touch(o);
        } else {
            z.m.st.refused += o - run;
            waited = true;
        }
    }
    if (waited)
        z.m.st.out_of_order++;
}

/* What the direction must make of `n` bytes at `seq`; `p` holds them when
 * they fall in the map. */
static void m_segment(uint32_t seq, const uint8_t *p, uint32_t n)
{
    if (n == 0)
        return;
    int64_t rel = rel_of(seq), rel_end = rel + (int64_t)n;
    if (rel > (int64_t)OWFP_REASM_MAX_AHEAD) {
        z.m.st.out_of_window += n;
        return;
    }
    int64_t next = (int64_t)z.m.next;
    if (rel < 0) {
        m_old(next + rel, next + (rel_end < 0 ? rel_end : 0));
        if (rel_end <= 0)
            return;
        p += -rel;
        rel = 0;
    }
    uint64_t s = z.m.next + (uint64_t)rel, e = z.m.next + (uint64_t)rel_end;
    if (e > z.m.fin) {
        uint64_t cut = s > z.m.fin ? s : z.m.fin;
        z.m.st.after_fin += e - cut;
        e = cut;
    }
    if (s >= e)
        return;
    CHECK(e <= MAP); /* harness: positions stay in the map */
    if (z.last)
        m_last_walk(s, e, p);
    else if (s == z.m.next)
        m_in_order(s, e, p);
    else
        m_out_of_order(s, e, p);
}

static void m_fin(uint32_t seq)
{
    if (z.m.fin != NO_FIN) {
        if (seq != z.base + (uint32_t)z.m.fin)
            z.m.st.bad_fins++;
        return;
    }
    int64_t rel = rel_of(seq);
    if (rel < 0 || rel > (int64_t)OWFP_REASM_MAX_AHEAD) {
        z.m.st.bad_fins++;
        return;
    }
    z.m.fin = z.m.next + (uint64_t)rel;
    CHECK(z.m.fin <= MAP);
}

static void m_ack(uint32_t ack)
{
    int64_t rel = rel_of(ack);
    if (rel <= 0 || rel > (int64_t)OWFP_REASM_MAX_AHEAD)
        return;
    uint64_t limit = z.m.next + (uint64_t)rel;
    m_skip_until(limit < z.m.fin ? limit : z.m.fin);
}

static uint64_t m_last_held_end(void)
{
    for (uint64_t o = z.m.held_hi; o > z.m.next; o--) {
        if ((o & 255) == 0 && m_blk[(o - 1) >> 8] == 0) {
            o -= 255;
            continue;
        }
        if (m_st[o - 1] == M_HELD)
            return o;
    }
    return z.m.next;
}

static void m_flush(void)
{
    uint64_t limit;
    if (z.m.fin != NO_FIN) {
        /* Pieces starting at or beyond the FIN go; one across it stays (it
         * is cut when delivered). */
        bool across = false;
        uint32_t pid = 0;
        for (uint64_t o = z.m.fin; o < z.m.held_hi; o++) {
            if (m_st[o] != M_HELD)
                continue;
            if (o == z.m.fin && o > 0 && m_st[o - 1] == M_HELD && m_piece[o - 1] == m_piece[o]) {
                across = true;
                pid = m_piece[o];
            }
            if (across && m_piece[o] == pid)
                continue;
            m_st[o] = M_NONE;
            m_blk[o >> 8]--;
            z.m.st.after_fin++;
            z.m.held--;
        }
        limit = z.m.fin;
    } else {
        limit = m_last_held_end();
    }
    m_skip_until(limit);
    CHECK(z.m.held == 0); /* model: a flush leaves nothing buffered */
}

static void m_release(void)
{
    for (uint64_t o = z.m.next; o < z.m.held_hi; o++)
        if (m_st[o] == M_HELD)
            m_st[o] = M_NONE;
    memset(m_blk, 0, sizeof(m_blk));
    z.m.held = 0;
}

/* ---- the sink: every call checked against the model ---------------------------- */

static void sink_data(void *arg, const uint8_t *p, size_t n, uint32_t flags)
{
    (void)arg;
    CHECK(n > 0);
    CHECK(z.r.next == z.obs_next + n);
    CHECK(z.obs_next + n <= MAP);
    uint64_t at = z.obs_next;
    uint16_t tag = m_tag[at];
    CHECK(flags == z.seg_flags[tag]);
    bool copied = m_copied[at];
    if (!copied)
        CHECK(p >= z.buf && p + n <= z.buf + z.buf_len);
    for (size_t i = 0; i < n; i++) {
        CHECK(m_st[at + i] == M_DELIVERED);
        CHECK(o_st[at + i] == M_NONE);
        CHECK(m_tag[at + i] == tag); /* one call never spans two segments */
        CHECK(m_copied[at + i] == copied);
        CHECK(p[i] == m_val[at + i]);
        o_st[at + i] = M_DELIVERED;
    }
    z.obs_next += n;
}

static void sink_gap(void *arg, uint64_t n)
{
    (void)arg;
    CHECK(n > 0);
    CHECK(z.r.next == z.obs_next + n);
    CHECK(z.obs_next + n <= MAP);
    for (uint64_t i = 0; i < n; i++) {
        CHECK(m_st[z.obs_next + i] == M_SKIPPED);
        CHECK(o_st[z.obs_next + i] == M_NONE);
        o_st[z.obs_next + i] = M_SKIPPED;
    }
    z.obs_next += n;
}

static const struct owfp_reasm_sink sink = {sink_data, sink_gap};

/* ---- comparison ----------------------------------------------------------------- */

#define SAME(field) CHECK(st.field == z.m.st.field)

static void compare(void)
{
    struct owfp_reasm_stats st = owfp_reasm_get_stats(&z.r);
    CHECK(z.r.next == z.m.next);
    CHECK(z.obs_next == z.m.next);
    CHECK(z.r.fin_off == z.m.fin);
    CHECK(owfp_reasm_buffered(&z.r) == z.m.held);
    CHECK((z.r.ooo == NULL) == (z.m.held == 0));
    if (z.use_budget)
        CHECK(z.budget.used == z.preload + z.m.held);
    CHECK(owfp_reasm_fin_reached(&z.r) == (z.m.next == z.m.fin));
    SAME(delivered);
    SAME(gap_bytes);
    SAME(gaps);
    SAME(retransmitted);
    SAME(conflicts);
    SAME(out_of_order);
    SAME(refused);
    SAME(late);
    SAME(after_fin);
    SAME(out_of_window);
    SAME(bad_fins);
    CHECK(st.delivered + st.gap_bytes == z.r.next);
}

/* ---- the script ------------------------------------------------------------------ */

static uint32_t t32(struct tape *t)
{
    uint32_t lo = t16(t);
    return lo | (uint32_t)t16(t) << 16;
}

/* A position by `mode` around `anchor`, as a sequence number; *off is the
 * stream offset when it lies in the map, else NONE. */
static uint32_t position(unsigned mode, uint64_t anchor, uint64_t *off)
{
    int64_t o;
    switch (mode) {
    case POS_NEAR8:
        o = (int64_t)anchor + (int8_t)t8(&z.t);
        break;
    case POS_NEAR16:
        o = (int64_t)anchor + (int16_t)t16(&z.t);
        break;
    case POS_ABS:
        o = t16(&z.t);
        break;
    default: {
        uint32_t v = t16(&z.t);
        /* Beyond MAX_AHEAD, or so far behind that it reads as old. */
        uint32_t rel = v & 1 ? (1u << 30) + 1u + (v >> 1) : (1u << 31) + (v >> 1);
        *off = NONE;
        return z.base + (uint32_t)z.m.next + rel;
    }
    }
    if (o < -65536)
        o = -65536;
    if (o > (int64_t)MAP - 1)
        o = MAP - 1;
    *off = (uint64_t)o; /* two's complement below 0: only used as a seq offset */
    return z.base + (uint32_t)(uint64_t)o;
}

static uint8_t *make_data(uint64_t off, uint32_t n, uint8_t c)
{
    uint8_t *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    for (uint32_t i = 0; i < n; i++)
        p[i] = off == NONE ? (uint8_t)i : content(off + i, c);
    return p;
}

static void do_segment(uint32_t seq, uint64_t off, uint32_t n, uint8_t c, uint32_t flags)
{
    /* Keep in-map segments inside the map (off may be "negative"). */
    if (off != NONE && (int64_t)off >= 0 && off + n > MAP)
        n = (uint32_t)(MAP - off);
    uint8_t *p = make_data(off, n, c);
    z.seg_flags[z.tag] = flags;
    if (z.trace)
        fprintf(stderr, "segment rel %lld len %u c %u flags %u\n", (long long)rel_of(seq), n, c,
                flags);
    m_segment(seq, p, n);
    z.buf = p;
    z.buf_len = n;
    owfp_reasm_segment(&z.r, z.cfgp, seq, p, n, flags, &sink, NULL);
    z.buf = NULL;
    free(p); /* the direction must have copied what it kept */
}

static void op_segment(uint8_t op, uint64_t anchor)
{
    uint64_t off;
    uint32_t seq = position((op >> 3) & 3, anchor, &off);
    uint32_t n = op & 0x20 ? t8(&z.t) : t16(&z.t) % MAX_LEN;
    uint8_t c = t8(&z.t);
    uint32_t flags = (op & 0x40 ? OWFP_REASM_PUSH : 0) | (op & 0x80 ? OWFP_REASM_URGENT : 0);
    do_segment(seq, off, n, c, flags);
}

static void op_in_order(uint8_t op)
{
    uint32_t n = 1u + t8(&z.t);
    uint8_t c = t8(&z.t);
    uint32_t flags = op & 0x40 ? OWFP_REASM_PUSH : 0;
    do_segment(z.base + (uint32_t)z.m.next, z.m.next, n, c, flags);
}

static void op_fin(uint8_t op)
{
    uint64_t off;
    uint32_t seq = position((op >> 3) & 3, z.m.next, &off);
    if (z.trace)
        fprintf(stderr, "fin rel %lld\n", (long long)rel_of(seq));
    m_fin(seq);
    owfp_reasm_fin(&z.r, seq);
}

static void op_ack(uint8_t op)
{
    uint64_t off;
    uint32_t seq = position((op >> 3) & 3, z.m.next, &off);
    if (z.trace)
        fprintf(stderr, "ack rel %lld\n", (long long)rel_of(seq));
    m_ack(seq);
    owfp_reasm_ack(&z.r, z.cfgp, seq, &sink, NULL);
}

static void step(uint8_t op)
{
    switch (op & 7) {
    case 0:
    case 1:
        op_segment(op, z.m.next);
        break;
    case 2:
        op_fin(op);
        break;
    case 3:
        op_ack(op);
        break;
    case 4:
        if (z.trace)
            fprintf(stderr, "flush\n");
        m_flush();
        owfp_reasm_flush(&z.r, z.cfgp, &sink, NULL);
        break;
    case 5:
        if (z.trace)
            fprintf(stderr, "release\n");
        m_release();
        owfp_reasm_release(&z.r, z.cfgp);
        break;
    case 6:
        op_in_order(op);
        break;
    default: {
        uint64_t h = m_first_held(z.m.next);
        op_segment(op, h == NONE ? z.m.next : h);
        break;
    }
    }
}

static void setup(void)
{
    uint8_t h0 = t8(&z.t);
    z.base = t32(&z.t);
    z.preload = t16(&z.t);
    unsigned k = (h0 >> 2) & 7, b = h0 >> 5;
    z.cfg.overlap = h0 & 1 ? OWFP_OVERLAP_LAST : OWFP_OVERLAP_FIRST;
    z.cfg.max_buffered = k ? 16u << k : 0;
    z.use_budget = b != 0;
    z.budget.used = z.preload;
    z.budget.limit = b <= 1 ? 0 : b == 7 ? z.preload / 2 : z.preload + (16u << b);
    z.cfg.budget = z.use_budget ? &z.budget : NULL;
    z.cfgp = h0 & 2 ? NULL : &z.cfg;
    z.last = z.cfgp && (h0 & 1);
    if (!z.cfgp)
        z.use_budget = false;
    z.m.fin = NO_FIN;
    owfp_reasm_init(&z.r, z.base);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t hw = z.hw;
    memset(m_st, 0, hw);
    memset(o_st, 0, hw);
    memset(m_blk, 0, sizeof(m_blk));
    memset(&z, 0, sizeof(z));
    z.t = (struct tape){data, size, 0};
    z.trace = getenv("FUZZ_TRACE") != NULL;
    setup();
    for (unsigned i = 0; i < MAX_OPS && tape_left(&z.t); i++) {
        z.tag = (uint16_t)(i + 1);
        step(t8(&z.t));
        compare();
    }
    owfp_reasm_release(&z.r, z.cfgp);
    CHECK(z.r.ooo == NULL && owfp_reasm_buffered(&z.r) == 0);
    owfp_reasm_free(&z.r, z.cfgp);
    if (z.use_budget)
        CHECK(z.budget.used == z.preload);
    return 0;
}
