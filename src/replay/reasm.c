/*
 * TCP reassembly of one direction (see reasm.h).
 *
 * Storage: buffered bytes live in pieces, one allocation each (header and
 * bytes together), kept in a top-down splay tree keyed by stream offset.
 * A splay tree needs no balance fields (two pointers per piece) and costs
 * O(log n) amortized per operation, but O(1) amortized for the patterns
 * that matter: appending a run behind one hole (the tree's maximum is at
 * the root) and draining from the front (sequential access).
 *
 * Invariants between calls:
 *  - pieces never overlap;
 *  - every piece starts at or after `next`; under FIRST strictly after (a
 *    piece at `next` is delivered at once), under LAST a piece at `next`
 *    waits for its ACK; pieces at or beyond the FIN are never delivered
 *    and wait for flush or release;
 *  - `next` never lies inside a piece (pieces go out whole);
 *  - next <= fin_off;
 *  - every byte of [next, min(run_end, fin_off)) is stored; run_end may lag
 *    behind the true end of that run (it is only where run_end_of() starts
 *    looking), and bytes at or beyond the FIN are never placed, so pieces
 *    dropped there need not pull it back.
 * A piece is never split or trimmed once stored: overlaps are settled when
 * the new bytes arrive (FIRST drops them, LAST writes them over the stored
 * ones in place), so only the new segment is ever cut.
 */
#include "replay/reasm.h"

#include <stdlib.h>
#include <string.h>

struct owfp_reasm_seg {
    struct owfp_reasm_seg *left, *right;
    uint64_t off;
    uint32_t len;
    uint32_t flags;
    uint8_t data[];
};

/* What an idle direction never needs: kept out of line (see reasm.h). */
struct owfp_reasm_rare {
    struct owfp_reasm_stats stats; /* delivered unused: it is r->delivered */
    uint64_t skip_lo;    /* most recent skipped range [skip_lo, skip_hi) */
    uint64_t skip_hi;
    uint64_t ooo_bytes;
    uint64_t run_end;    /* [next, run_end) is all buffered, before the FIN (LAST's hint) */
};

static const struct owfp_reasm_config default_config = {
    .overlap = OWFP_OVERLAP_FIRST,
    .max_buffered = 0,
    .budget = NULL,
};

static uint64_t seg_end(const struct owfp_reasm_seg *s)
{
    return s->off + s->len;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* a - b in sequence space, in [-2^31, 2^31); written without the
 * implementation-defined unsigned-to-signed conversion. */
static int64_t seq_diff(uint32_t a, uint32_t b)
{
    uint32_t d = a - b;
    return d < UINT32_C(0x80000000) ? (int64_t)d : (int64_t)d - INT64_C(0x100000000);
}

static uint32_t seq_of(const struct owfp_reasm *r, uint64_t off)
{
    return r->base_seq + (uint32_t)off;
}

/* The direction's rare part, allocated on first use. NULL when memory ran
 * out: the caller then loses what it meant to keep there, and the
 * direction says so (incomplete) rather than report short counts as
 * exact. */
static struct owfp_reasm_rare *rare(struct owfp_reasm *r)
{
    if (r->rare == NULL) {
        r->rare = calloc(1, sizeof(*r->rare));
        if (r->rare == NULL)
            r->incomplete = true;
    }
    return r->rare;
}

/* Adds `n` to a rare count; a zero adds nothing and allocates nothing. */
#define COUNT(r, field, n)                                                    \
    do {                                                                      \
        uint64_t count_n_ = (n);                                              \
        struct owfp_reasm_rare *count_m_;                                     \
        if (count_n_ != 0 && (count_m_ = rare(r)) != NULL)                    \
            count_m_->stats.field += count_n_;                                \
    } while (0)

/* ---- splay tree ---------------------------------------------------------- */

/*
 * Top-down splay (Sleator and Tarjan): returns the new root, the piece at
 * `key` if there is one, else the last piece on the search path. Then every
 * piece in root->right starts after `key` when root->off < key, and every
 * piece in root->left starts before `key` when root->off > key; the lookups
 * below rely on that.
 */
static struct owfp_reasm_seg *splay(struct owfp_reasm_seg *t, uint64_t key)
{
    struct owfp_reasm_seg *lesser = NULL, *greater = NULL;
    struct owfp_reasm_seg **lhook = &lesser, **ghook = &greater;

    if (t == NULL)
        return NULL;
    for (;;) {
        if (key < t->off) {
            if (t->left == NULL)
                break;
            if (key < t->left->off) {
                struct owfp_reasm_seg *y = t->left;
                t->left = y->right;
                y->right = t;
                t = y;
                if (t->left == NULL)
                    break;
            }
            *ghook = t;
            ghook = &t->left;
            t = t->left;
        } else if (key > t->off) {
            if (t->right == NULL)
                break;
            if (key > t->right->off) {
                struct owfp_reasm_seg *y = t->right;
                t->right = y->left;
                y->left = t;
                t = y;
                if (t->right == NULL)
                    break;
            }
            *lhook = t;
            lhook = &t->right;
            t = t->right;
        } else {
            break;
        }
    }
    *lhook = t->left;
    *ghook = t->right;
    t->left = lesser;
    t->right = greater;
    return t;
}

/* The first piece (lowest offset) ending after `cur`, made the root; NULL
 * if none. Pieces are disjoint, so ends are ordered as starts are: the
 * answer is the piece starting at or before `cur` if it reaches past it,
 * else the one after. */
static struct owfp_reasm_seg *first_ending_after(struct owfp_reasm *r, uint64_t cur)
{
    struct owfp_reasm_seg *t = splay(r->ooo, cur);

    r->ooo = t;
    if (t == NULL)
        return NULL;
    if (t->off <= cur) {
        if (seg_end(t) > cur)
            return t;
        if (t->right == NULL)
            return NULL;
        /* Everything on the right starts after cur: bring up its minimum. */
        struct owfp_reasm_seg *s = splay(t->right, cur);
        t->right = s->left;
        s->left = t;
        r->ooo = s;
        return s;
    }
    if (t->left != NULL) {
        /* Everything on the left starts before cur: its maximum may reach it. */
        struct owfp_reasm_seg *p = splay(t->left, cur);
        if (seg_end(p) > cur) {
            t->left = p->right;
            p->right = t;
            r->ooo = p;
            return p;
        }
        t->left = p;
    }
    return t;
}

/* `s` must not overlap any stored piece. */
static void tree_insert(struct owfp_reasm *r, struct owfp_reasm_seg *s)
{
    struct owfp_reasm_seg *t = splay(r->ooo, s->off);

    if (t == NULL) {
        s->left = s->right = NULL;
    } else if (s->off < t->off) {
        s->left = t->left;
        s->right = t;
        t->left = NULL;
    } else {
        s->right = t->right;
        s->left = t;
        t->right = NULL;
    }
    r->ooo = s;
}

/* The lowest piece, left at the root (so it has no left child). */
static struct owfp_reasm_seg *tree_min(struct owfp_reasm *r)
{
    r->ooo = splay(r->ooo, 0);
    return r->ooo;
}

/* The highest piece, left at the root (so it has no right child). */
static struct owfp_reasm_seg *tree_max(struct owfp_reasm *r)
{
    r->ooo = splay(r->ooo, UINT64_MAX);
    return r->ooo;
}

/* ---- storage accounting -------------------------------------------------- */

static bool charge(struct owfp_reasm *r, const struct owfp_reasm_config *cfg, uint64_t n)
{
    struct owfp_reasm_budget *b = cfg->budget;
    struct owfp_reasm_rare *m = rare(r);

    if (m == NULL)
        return false;
    if (cfg->max_buffered != 0 && m->ooo_bytes + n > cfg->max_buffered)
        return false;
    if (b != NULL && b->limit != 0 && b->used + n > b->limit)
        return false;
    m->ooo_bytes += n;
    if (b != NULL)
        b->used += n;
    return true;
}

static void free_seg(struct owfp_reasm *r, const struct owfp_reasm_config *cfg,
                     struct owfp_reasm_seg *s)
{
    r->rare->ooo_bytes -= s->len; /* charged when stored */
    if (cfg->budget != NULL)
        cfg->budget->used -= s->len;
    free(s);
}

/* Copies bytes that must wait (behind a hole, or for their ACK under the
 * LAST policy). Returns false when a cap, the budget or memory refuses. */
static bool try_store(struct owfp_reasm *r, const struct owfp_reasm_config *cfg, uint64_t off,
                      const uint8_t *p, uint32_t n, uint32_t flags)
{
    struct owfp_reasm_seg *s;

    if (!charge(r, cfg, n))
        return false;
    s = malloc(sizeof(*s) + n);
    if (s == NULL) {
        r->rare->ooo_bytes -= n;
        if (cfg->budget != NULL)
            cfg->budget->used -= n;
        return false;
    }
    s->off = off;
    s->len = n;
    s->flags = flags;
    memcpy(s->data, p, n);
    tree_insert(r, s);
    return true;
}

/* Under LAST a later copy may still replace bytes until the receiver
 * acknowledges them, so even in-order bytes wait for their ACK. */
static bool ack_gated(const struct owfp_reasm_config *cfg)
{
    return cfg->overlap == OWFP_OVERLAP_LAST;
}

/* The end of the bytes stored contiguously from next: under LAST, bytes
 * starting there are in order although next lies behind them. run_end
 * remembers how far the run was found to reach, so each piece is stepped
 * over once, not once per question (a cap refusing segment after segment
 * behind a long unacknowledged run would otherwise walk it every time). */
static uint64_t run_end_of(struct owfp_reasm *r)
{
    uint64_t end = max_u64(r->rare != NULL ? r->rare->run_end : 0, r->next);

    for (;;) {
        /* end is a piece's end or next: no piece straddles it. */
        struct owfp_reasm_seg *t = first_ending_after(r, end);
        if (t == NULL || t->off != end)
            break;
        end = seg_end(t);
    }
    /* Without the rare part nothing is stored yet: no run to remember. */
    if (r->rare != NULL)
        r->rare->run_end = end;
    return end;
}

/* ---- delivery ------------------------------------------------------------ */

/* State first, then the call: the sink sees a consistent direction. */
static void emit(struct owfp_reasm *r, const uint8_t *p, uint64_t n, uint32_t flags,
                 const struct owfp_reasm_sink *sink, void *arg)
{
    r->next += n;
    r->delivered += n;
    sink->data(arg, p, (size_t)n, flags);
}

static void skip(struct owfp_reasm *r, uint64_t n, const struct owfp_reasm_sink *sink,
                 void *arg)
{
    struct owfp_reasm_rare *m = rare(r);

    if (m != NULL) {
        /* Touching skipped ranges merge, so an ack that moves in steps
         * across one long hole still remembers all of it. */
        if (m->skip_hi != r->next || m->skip_lo == m->skip_hi)
            m->skip_lo = r->next;
        m->skip_hi = r->next + n;
        m->stats.gap_bytes += n;
        m->stats.gaps++;
    }
    r->next += n;
    sink->gap(arg, n);
}

/* Delivers the root piece, which must be the lowest one and start at next;
 * never past the FIN. */
static void deliver_root(struct owfp_reasm *r, const struct owfp_reasm_config *cfg,
                         const struct owfp_reasm_sink *sink, void *arg)
{
    struct owfp_reasm_seg *s = r->ooo;
    uint64_t n = s->len;

    r->ooo = s->right;
    if (seg_end(s) > r->fin_off) {
        n = r->fin_off - s->off;
        COUNT(r, after_fin, s->len - n);
    }
    if (n != 0)
        emit(r, s->data, n, s->flags, sink, arg);
    free_seg(r, cfg, s);
}

/* Delivers the pieces that became contiguous with next. */
static void drain(struct owfp_reasm *r, const struct owfp_reasm_config *cfg,
                  const struct owfp_reasm_sink *sink, void *arg)
{
    for (;;) {
        struct owfp_reasm_seg *s = tree_min(r);
        if (s == NULL || s->off != r->next || s->off >= r->fin_off)
            return;
        deliver_root(r, cfg, sink, arg);
    }
}

/* Delivers the pieces contiguous with next that start before `limit`. */
static void drain_before(struct owfp_reasm *r, const struct owfp_reasm_config *cfg,
                         uint64_t limit, const struct owfp_reasm_sink *sink, void *arg)
{
    for (;;) {
        struct owfp_reasm_seg *s = tree_min(r);
        if (s == NULL || s->off != r->next || s->off >= r->fin_off || s->off >= limit)
            return;
        deliver_root(r, cfg, sink, arg);
    }
}

/* Skips holes and delivers pieces until next reaches `limit` (<= fin_off),
 * then whatever became contiguous (under LAST: only up to `limit`). */
static void skip_until(struct owfp_reasm *r, const struct owfp_reasm_config *cfg,
                       uint64_t limit, const struct owfp_reasm_sink *sink, void *arg)
{
    while (r->next < limit) {
        struct owfp_reasm_seg *s = tree_min(r);
        /* s starts at or after next, or at/after the FIN >= limit. */
        uint64_t hole_end = (s != NULL && s->off < limit) ? s->off : limit;
        if (hole_end > r->next)
            skip(r, hole_end - r->next, sink, arg);
        if (ack_gated(cfg))
            drain_before(r, cfg, limit, sink, arg);
        else
            drain(r, cfg, sink, arg);
    }
}

/* Pieces at or beyond the FIN can never be delivered. */
static void drop_beyond_fin(struct owfp_reasm *r, const struct owfp_reasm_config *cfg)
{
    for (;;) {
        struct owfp_reasm_seg *s = tree_max(r);
        if (s == NULL || s->off < r->fin_off)
            return;
        r->ooo = s->left;
        COUNT(r, after_fin, s->len);
        free_seg(r, cfg, s);
    }
}

/* ---- segments ------------------------------------------------------------ */

static uint64_t overlap_len(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{
    uint64_t lo = max_u64(a0, b0), hi = min_u64(a1, b1);
    return hi > lo ? hi - lo : 0;
}

/* Bytes [a, b) before next (a may be negative: before the stream). */
static void count_old(struct owfp_reasm *r, int64_t a, int64_t b)
{
    const struct owfp_reasm_rare *m = r->rare; /* none: nothing was skipped */
    uint64_t late = b > 0 && m != NULL ? overlap_len(a > 0 ? (uint64_t)a : 0, (uint64_t)b,
                                                     m->skip_lo, m->skip_hi)
                                       : 0;
    COUNT(r, late, late);
    COUNT(r, retransmitted, (uint64_t)(b - a) - late);
}

/* New bytes at `off` that overlap a stored piece: count them, and under
 * LAST let them replace the stored ones. */
static void settle_overlap(struct owfp_reasm *r, const struct owfp_reasm_config *cfg,
                           struct owfp_reasm_seg *s, uint64_t off, const uint8_t *p, uint64_t n)
{
    uint8_t *q = s->data + (off - s->off);
    uint64_t differ = 0;

    if (memcmp(q, p, n) != 0) {
        for (uint64_t i = 0; i < n; i++)
            differ += q[i] != p[i];
        if (cfg->overlap == OWFP_OVERLAP_LAST)
            memcpy(q, p, n);
    }
    COUNT(r, conflicts, differ);
    COUNT(r, retransmitted, n - differ);
}

/* New bytes nobody holds yet: passed on if they are next, else stored.
 * Returns whether they had to wait behind a hole. */
static bool place(struct owfp_reasm *r, const struct owfp_reasm_config *cfg, uint64_t off,
                  const uint8_t *p, uint64_t n, uint32_t flags, const struct owfp_reasm_sink *sink,
                  void *arg)
{
    if (off == r->next && !ack_gated(cfg)) {
        emit(r, p, n, flags, sink, arg);
        return false;
    }
    /* Asked before storing: the new piece would extend the run. */
    bool in_order = off == r->next || (ack_gated(cfg) && run_end_of(r) == off);
    if (try_store(r, cfg, off, p, (uint32_t)n, flags))
        return !in_order;
    if (in_order) {
        /* Cannot hold it for its ACK: it goes now, as under FIRST, and the
         * stored run before it goes first. Refusing it would lose bytes the
         * peer sent in sequence. */
        drain_before(r, cfg, off, sink, arg);
        emit(r, p, n, flags, sink, arg);
        return false;
    }
    COUNT(r, refused, n); /* part of a later gap */
    return true;
}

/*
 * Bytes [s, e) of a segment (next <= s < e <= fin_off), walked against the
 * stored pieces in offset order: gaps between pieces are placed, overlaps
 * settled. Under FIRST a stored piece that becomes contiguous while the
 * segment reaches past it is delivered on the spot, so that the segment's
 * following bytes are next again and go out without a copy; under LAST
 * everything waits for its ACK.
 */
static void walk(struct owfp_reasm *r, const struct owfp_reasm_config *cfg, uint64_t s,
                 uint64_t e, const uint8_t *p, uint32_t flags, const struct owfp_reasm_sink *sink,
                 void *arg)
{
    uint64_t next_before = r->next;
    uint64_t cur = s;
    bool waited = false;

    while (cur < e) {
        struct owfp_reasm_seg *t = first_ending_after(r, cur);
        if (t == NULL || t->off >= e) {
            waited |= place(r, cfg, cur, p + (cur - s), e - cur, flags, sink, arg);
            break;
        }
        if (cur < t->off) {
            waited |= place(r, cfg, cur, p + (cur - s), t->off - cur, flags, sink, arg);
            cur = t->off;
        }
        uint64_t end = min_u64(e, seg_end(t));
        settle_overlap(r, cfg, t, cur, p + (cur - s), end - cur);
        cur = end;
        /* t is still the root (placing at next does not touch the tree). */
        if (!ack_gated(cfg) && t->off == r->next && cur == seg_end(t))
            deliver_root(r, cfg, sink, arg);
    }
    if (waited)
        COUNT(r, out_of_order, 1);
    if (r->next != next_before && !ack_gated(cfg))
        drain(r, cfg, sink, arg);
}

static void segment_slow(struct owfp_reasm *r, const struct owfp_reasm_config *cfg, uint32_t seq,
                         const uint8_t *p, uint32_t n, uint32_t flags,
                         const struct owfp_reasm_sink *sink, void *arg)
{
    int64_t rel = seq_diff(seq, seq_of(r, r->next));
    int64_t rel_end = rel + n;
    int64_t next = (int64_t)r->next;

    if (rel > (int64_t)OWFP_REASM_MAX_AHEAD) {
        COUNT(r, out_of_window, n);
        return;
    }
    if (rel < 0) {
        count_old(r, next + rel, next + (rel_end < 0 ? rel_end : 0));
        if (rel_end <= 0)
            return;
        p += -rel;
        rel = 0;
    }
    uint64_t s = r->next + (uint64_t)rel, e = r->next + (uint64_t)rel_end;
    if (e > r->fin_off) {
        uint64_t cut = max_u64(s, r->fin_off);
        COUNT(r, after_fin, e - cut);
        e = cut;
    }
    if (s < e)
        walk(r, cfg ? cfg : &default_config, s, e, p, flags, sink, arg);
}

/* ---- interface ----------------------------------------------------------- */

void owfp_reasm_init(struct owfp_reasm *r, uint32_t first_seq)
{
    memset(r, 0, sizeof(*r));
    r->base_seq = first_seq;
    r->fin_off = UINT64_MAX;
}

void owfp_reasm_segment(struct owfp_reasm *r, const struct owfp_reasm_config *cfg, uint32_t seq,
                        const uint8_t *p, uint32_t n, uint32_t flags,
                        const struct owfp_reasm_sink *sink, void *arg)
{
    if (n == 0)
        return;
    /* The common case: the next bytes, nothing waiting, within the FIN. */
    if (seq == seq_of(r, r->next) && r->ooo == NULL && r->fin_off - r->next >= n &&
        (cfg == NULL || !ack_gated(cfg))) {
        emit(r, p, n, flags, sink, arg);
        return;
    }
    segment_slow(r, cfg, seq, p, n, flags, sink, arg);
}

void owfp_reasm_fin(struct owfp_reasm *r, uint32_t seq)
{
    int64_t rel;

    if (r->fin_off != UINT64_MAX) {
        if (seq != seq_of(r, r->fin_off))
            COUNT(r, bad_fins, 1);
        return;
    }
    rel = seq_diff(seq, seq_of(r, r->next));
    if (rel < 0 || rel > (int64_t)OWFP_REASM_MAX_AHEAD) {
        COUNT(r, bad_fins, 1);
        return;
    }
    r->fin_off = r->next + (uint64_t)rel;
}

bool owfp_reasm_fin_reached(const struct owfp_reasm *r)
{
    return r->next == r->fin_off;
}

void owfp_reasm_ack(struct owfp_reasm *r, const struct owfp_reasm_config *cfg, uint32_t ack,
                    const struct owfp_reasm_sink *sink, void *arg)
{
    int64_t rel = seq_diff(ack, seq_of(r, r->next));

    if (rel <= 0 || rel > (int64_t)OWFP_REASM_MAX_AHEAD)
        return;
    skip_until(r, cfg ? cfg : &default_config, min_u64(r->next + (uint64_t)rel, r->fin_off),
               sink, arg);
}

void owfp_reasm_flush(struct owfp_reasm *r, const struct owfp_reasm_config *cfg,
                      const struct owfp_reasm_sink *sink, void *arg)
{
    uint64_t limit;

    if (cfg == NULL)
        cfg = &default_config;
    if (r->fin_off != UINT64_MAX) {
        drop_beyond_fin(r, cfg);
        limit = r->fin_off;
    } else {
        struct owfp_reasm_seg *last = tree_max(r);
        limit = last != NULL ? seg_end(last) : r->next;
    }
    skip_until(r, cfg, limit, sink, arg);
}

void owfp_reasm_release(struct owfp_reasm *r, const struct owfp_reasm_config *cfg)
{
    struct owfp_reasm_seg *t = r->ooo;

    if (cfg == NULL)
        cfg = &default_config;
    /* Rotations flatten the tree as it goes: no recursion, however deep. */
    if (r->rare != NULL)
        r->rare->run_end = 0;
    while (t != NULL) {
        if (t->left != NULL) {
            struct owfp_reasm_seg *l = t->left;
            t->left = l->right;
            l->right = t;
            t = l;
        } else {
            struct owfp_reasm_seg *right = t->right;
            free_seg(r, cfg, t);
            t = right;
        }
    }
    r->ooo = NULL;
}

void owfp_reasm_free(struct owfp_reasm *r, const struct owfp_reasm_config *cfg)
{
    owfp_reasm_release(r, cfg);
    free(r->rare);
    r->rare = NULL;
}

struct owfp_reasm_stats owfp_reasm_get_stats(const struct owfp_reasm *r)
{
    struct owfp_reasm_stats s = {0};

    if (r->rare != NULL)
        s = r->rare->stats;
    s.delivered = r->delivered;
    return s;
}

uint64_t owfp_reasm_buffered(const struct owfp_reasm *r)
{
    return r->rare != NULL ? r->rare->ooo_bytes : 0;
}
