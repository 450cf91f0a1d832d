/*
 * Seeded property test of the stream layer (spec §10.3-10.7) against an
 * independent reference model of the waterfall.
 *
 * Every case builds a random path of 1-4 sublayers with 1-3 stream filters
 * each: callouts (CALLOUT_TERMINATING / INSPECTION / UNKNOWN), static
 * PERMIT / BLOCK / CONTINUE filters and filters whose callout is not
 * registered (R5). Each callout runs a deterministic "program" per direction
 * that depends only on the absolute position of a byte in the callout's own
 * input stream (the bytes it was shown and decided on, counted by the
 * callout itself), never on how the engine cut the stream:
 *   - answer ranges: the actionType written for each position range; the
 *     callout stops at every boundary of its program with countBytesEnforced
 *     (S15, S16) and covers the whole rest with 0, len or more than len;
 *   - insertions: before deciding the byte at position P it injects a given
 *     string inline with FwpsStreamInjectAsync0 (S28); insertions at or past
 *     the end of its input are injected at the FIN indication;
 *   - NEED_MORE_DATA points: at position P it wants W bytes from P before it
 *     decides and otherwise answers NEED_MORE_DATA with a random
 *     countBytesRequired (S17);
 *   - DEFER points: at position P it defers once (S19); the test continues it
 *     later with FwpsStreamContinue0 from outside classify and polls;
 *   - out-of-band mode (S29): the callout clones and BLOCKs every indication
 *     (FIN included) and keeps the clones in a FIFO per direction; at random
 *     points the test injects them from outside classify, transformed by the
 *     same kind of program (dropped ranges, insertions), the FIN with the
 *     DISCONNECT flag.
 * Streams of 0-4 KiB per direction are indicated in random pieces, the
 * directions interleaved, each ended by a FIN.
 *
 * The reference model knows nothing of the engine: each direction is a list
 * of (byte, origin, tag) where tag names the sublayer that permitted or
 * injected the byte; the list is passed through the stages in path order and
 * each stage applies its program to the bytes not tagged with its own
 * sublayer, by position. The engine's spans per direction must equal the
 * model's output byte for byte (and origin for origin), the FIN must be
 * reported last and exactly when the model lets it through, every callout
 * must have been shown exactly the model's input for its stage, held bytes
 * must end at what the model says is stuck (0 unless a NEED_MORE_DATA stage
 * never gets its FIN), missedBytes must add up to the bytes blocked upstream
 * (S7), and every injected NBL must complete exactly once. The callouts
 * also check the order of indications: the rest of a partly enforced
 * indication comes next and alone (S16), a NEED_MORE_DATA stage is shown
 * held + new bytes, at least countBytesRequired unless no more can come
 * (S17), a deferred callout is not classified before it is continued (S19).
 *
 * Reproduce a failure: OWFP_TEST_SEED=<seed> OWFP_TEST_CASE=<case> runs that
 * one case of every family and prints its configuration; OWFP_TEST_TRACE=1
 * also logs every classify and data-plane call. OWFP_TEST_CASES=<n>
 * overrides the number of cases of the main family. Each case creates and
 * destroys its own engine.
 */
#include "harness.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ndis.h>

#define MAX_SUBLAYERS 4
#define MAX_PER_SUBLAYER 3
#define MAX_STAGES (MAX_SUBLAYERS * MAX_PER_SUBLAYER)
#define MAX_BOUNDS 10
#define MAX_INSERTS 6
#define MAX_INSERT_LEN 16
#define MAX_DEFERS 3
#define MAX_NEEDS 4
#define MAX_STREAM 4096
#define MAX_CHAIN 3

#define DEFAULT_SEED UINT64_C(0x5eed0f5742ea3d11)
#define MAIN_CASES 10000u
#define FAMILY_CASES 500u

enum { SEND = OWFP_STREAM_SEND, RECV = OWFP_STREAM_RECEIVE };

enum kind { K_STATIC, K_UNREGISTERED, K_INLINE, K_OOB };

enum route { R_PERMIT, R_CONTINUE, R_BLOCK };

/* Features a case family may use. */
#define F_STATIC 0x01u        /* static filters and unregistered callouts */
#define F_NEED 0x02u          /* NEED_MORE_DATA */
#define F_DEFER 0x04u         /* DEFER + FwpsStreamContinue0 */
#define F_INLINE_INJECT 0x08u /* inline FwpsStreamInjectAsync0 */
#define F_OOB 0x10u           /* out-of-band callouts */
#define F_ODD_ANSWERS 0x20u   /* actionTypes A9 has to map */
#define F_ALL 0x3fu

/* ---- random numbers ------------------------------------------------------ */

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

/* ---- programs --------------------------------------------------------------- */

struct insert {
    uint32_t pos;
    uint32_t len;
    uint8_t bytes[MAX_INSERT_LEN];
};

struct need {
    uint32_t pos, want;
};

struct prog {
    uint32_t nbounds;
    uint32_t bound[MAX_BOUNDS];      /* sorted, distinct, > 0 */
    uint32_t answer[MAX_BOUNDS + 1]; /* actionType for [bound[i-1], bound[i]) */
    uint32_t ninserts;
    struct insert ins[MAX_INSERTS]; /* sorted by distinct pos */
    uint32_t ndefers;
    uint32_t defer[MAX_DEFERS]; /* sorted, distinct */
    uint32_t nneeds;
    struct need need[MAX_NEEDS]; /* sorted by distinct pos */
    uint32_t fin_answer;
};

static uint32_t answer_at(const struct prog *p, uint32_t pos)
{
    uint32_t i = 0;
    while (i < p->nbounds && p->bound[i] <= pos)
        i++;
    return p->answer[i];
}

static uint32_t need_at(const struct prog *p, uint32_t pos)
{
    for (uint32_t i = 0; i < p->nneeds; i++)
        if (p->need[i].pos == pos)
            return p->need[i].want;
    return 0;
}

/* The next position after `pos` where the program changes anything. */
static uint32_t next_boundary(const struct prog *p, uint32_t pos)
{
    uint32_t b = UINT32_MAX;
    for (uint32_t i = 0; i < p->nbounds; i++)
        if (p->bound[i] > pos && p->bound[i] < b)
            b = p->bound[i];
    for (uint32_t i = 0; i < p->ninserts; i++)
        if (p->ins[i].pos > pos && p->ins[i].pos < b)
            b = p->ins[i].pos;
    for (uint32_t i = 0; i < p->ndefers; i++)
        if (p->defer[i] > pos && p->defer[i] < b)
            b = p->defer[i];
    for (uint32_t i = 0; i < p->nneeds; i++)
        if (p->need[i].pos > pos && p->need[i].pos < b)
            b = p->need[i].pos;
    return b;
}

/* ---- case state -------------------------------------------------------------- */

struct oob_entry {
    struct oob_entry *next;
    uint32_t pos, len;
    bool fin;
    NET_BUFFER_LIST *clone;
};

struct sdir {
    struct prog prog;
    /* What the reference model says about this stage and direction. */
    uint8_t *expect;          /* the stage's input, by position */
    uint32_t expect_len;      /* positions it is shown in total */
    uint32_t expect_consumed; /* positions it decides on */
    bool expect_fin;          /* the FIN reaches it */
    uint64_t expect_missed;   /* bytes blocked upstream or permitted past it (S7) */
    /* The callout's own state. */
    uint32_t pos;
    uint32_t next_insert, next_defer;
    bool deferred; /* answered DEFER, not continued yet */
    bool waiting;  /* answered NEED_MORE_DATA */
    size_t wait_len;
    UINT32 wait_required;
    bool saw_fin;
    uint64_t missed;
    struct oob_entry *fifo, *fifo_tail;
    uint32_t nfifo;
    uint32_t oob_next_insert;
};

struct stage {
    enum kind kind;
    uint32_t action; /* the filter's action type */
    uint32_t flags;  /* FWPM_FILTER_FLAG_* */
    uint32_t sub;    /* sublayer index: the model's tag */
    uint16_t sub_weight;
    uint64_t weight;
    GUID key;
    UINT64 filter_id;
    UINT32 callout_id;
    struct sdir d[2];
};

struct bytes {
    uint8_t *b; /* bytes */
    uint8_t *o; /* origins (enum owfp_span_origin) */
    size_t n, cap;
};

struct inj_nbl {
    NET_BUFFER_LIST *nbl;
    uintptr_t id; /* the NBL's address, kept after it is freed */
    MDL *mdl[2];
    uint8_t *mem;
    size_t memlen;
    bool clone;
    int done;
    NTSTATUS status;
};

struct inj_rec {
    struct inj_rec *next;
    uint32_t n;
    struct inj_nbl x[MAX_CHAIN];
};

struct stats {
    uint64_t cases, classifies, defers, need_more, inline_injects, oob_injects, spans, bytes_out;
    uint64_t stuck_cases, fin_blocked;
};

struct case_state {
    uint64_t seed;
    uint32_t index;
    uint32_t features;
    struct rng rng;
    int ipv;
    uint16_t layer_id;
    uint32_t nsub;
    uint32_t nstages;
    struct stage st[MAX_STAGES]; /* path order */
    uint8_t *in[2];
    uint32_t in_len[2], off[2];
    uint32_t max_seg;
    /* model results */
    struct bytes expect_out[2];
    bool expect_fin[2];
    uint64_t expect_held[2];
    /* engine side */
    owfp_flow *flow;
    UINT64 flow_id;
    HANDLE inj;
    struct bytes out[2];
    bool fin_seen[2], fin_sent[2];
    uint8_t *prev_buf;
    size_t prev_len;
    uint64_t wakes;
    bool in_classify;
    /* S16: a partly enforced indication is followed at once by its rest. */
    struct sdir *remainder_of;
    size_t remainder;
    struct inj_rec *recs;
    uint64_t last_held[2];
    uint32_t last_state[2];
    bool failed;
    char err[2048];
};

static struct case_state *g;
static struct stats g_stats;
static bool g_trace; /* OWFP_TEST_TRACE: log every classify and data-plane call */

#define TRACE(...)                   \
    do {                             \
        if (g_trace)                 \
            printf("    " __VA_ARGS__); \
    } while (0)
static NDIS_HANDLE g_pool;

static void fail_case(int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_case(int line, const char *expr, const char *fmt, ...)
{
    if (g->failed)
        return;
    g->failed = true;
    int n = snprintf(g->err, sizeof(g->err), "line %d: %s: ", line, expr);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(g->err))
        vsnprintf(g->err + n, sizeof(g->err) - (size_t)n, fmt, ap);
    va_end(ap);
}

#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond))                                      \
            fail_case(__LINE__, #cond, __VA_ARGS__);      \
    } while (0)

static void bytes_push(struct bytes *b, uint8_t byte, uint8_t origin)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->b = realloc(b->b, b->cap);
        b->o = realloc(b->o, b->cap);
        assert_non_null(b->b);
        assert_non_null(b->o);
    }
    b->b[b->n] = byte;
    b->o[b->n] = origin;
    b->n++;
}

static void bytes_free(struct bytes *b)
{
    free(b->b);
    free(b->o);
    *b = (struct bytes){0};
}

static uint32_t dir_flag(int d)
{
    return d == SEND ? FWPS_STREAM_FLAG_SEND : FWPS_STREAM_FLAG_RECEIVE;
}

static uint32_t disconnect_flag(int d)
{
    return d == SEND ? FWPS_STREAM_FLAG_SEND_DISCONNECT : FWPS_STREAM_FLAG_RECEIVE_DISCONNECT;
}

/* ---- the reference model ----------------------------------------------------- */

/* Spec A9 at the stream layer: what an answer of a callout filter does. */
static enum route callout_route(uint32_t filter_action, uint32_t answer)
{
    switch (filter_action) {
    case FWP_ACTION_CALLOUT_TERMINATING:
        return answer == FWP_ACTION_PERMIT ? R_PERMIT : R_BLOCK;
    case FWP_ACTION_CALLOUT_INSPECTION:
        return R_CONTINUE;
    default: /* CALLOUT_UNKNOWN */
        return answer == FWP_ACTION_PERMIT ? R_PERMIT
               : answer == FWP_ACTION_BLOCK ? R_BLOCK
                                            : R_CONTINUE;
    }
}

/* Static filters, and callout filters whose callout is not registered (R5). */
static enum route fixed_route(const struct stage *s)
{
    if (s->kind == K_STATIC)
        return s->action == FWP_ACTION_PERMIT  ? R_PERMIT
               : s->action == FWP_ACTION_BLOCK ? R_BLOCK
                                               : R_CONTINUE;
    if (s->action == FWP_ACTION_CALLOUT_INSPECTION)
        return R_CONTINUE;
    return s->flags & FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED ? R_PERMIT : R_BLOCK;
}

struct melem {
    uint8_t byte, origin;
    int16_t tag; /* sublayer that permitted or injected it, or -1 */
};

struct mlist {
    struct melem *e;
    size_t n, cap;
    bool fin;
};

/* Lists are allocated once with room for everything they can get. */
static void mreserve(struct mlist *l, size_t cap)
{
    l->e = malloc((cap ? cap : 1) * sizeof(*l->e));
    assert_non_null(l->e);
    l->cap = cap;
}

static inline void mpush(struct mlist *l, struct melem e)
{
    l->e[l->n++] = e;
}

static void mpush_insert(struct mlist *l, const struct insert *ins, int16_t tag)
{
    for (uint32_t i = 0; i < ins->len; i++)
        mpush(l, (struct melem){ins->bytes[i], OWFP_SPAN_INJECTED, tag});
}

/* Runs direction d through the path. */
static void model_direction(int d)
{
    struct mlist cur = {0};
    mreserve(&cur, g->in_len[d]);
    for (uint32_t i = 0; i < g->in_len[d]; i++)
        mpush(&cur, (struct melem){g->in[d][i], OWFP_SPAN_ORIGINAL, -1});
    cur.fin = true;
    uint64_t blocked_upstream = 0, held = 0;
    for (uint32_t k = 0; k < g->nstages; k++) {
        struct stage *s = &g->st[k];
        struct sdir *x = &s->d[d];
        const struct prog *p = &x->prog;
        int16_t tag = (int16_t)s->sub;
        bool callout = s->kind == K_INLINE || s->kind == K_OOB;
        uint32_t total = 0;
        for (size_t i = 0; i < cur.n; i++)
            total += cur.e[i].tag != tag;
        x->expect = malloc(total ? total : 1);
        assert_non_null(x->expect);
        for (size_t i = 0, n = 0; i < cur.n; i++)
            if (cur.e[i].tag != tag)
                x->expect[n++] = cur.e[i].byte;
        x->expect_len = total;
        /* Spec S7: bytes blocked above, plus original bytes a higher filter
         * of this sublayer permitted past this stage. */
        x->expect_missed = blocked_upstream;
        for (size_t i = 0; i < cur.n; i++)
            x->expect_missed += cur.e[i].tag == tag && cur.e[i].origin == OWFP_SPAN_ORIGINAL;
        x->expect_fin = cur.fin;
        struct mlist out = {0};
        size_t room = cur.n;
        for (uint32_t i = 0; callout && i < p->ninserts; i++)
            room += p->ins[i].len;
        mreserve(&out, room);
        uint32_t pos = 0, ins = 0, seg = 0;
        uint64_t stuck = 0, blocked = 0;
        for (size_t i = 0; i < cur.n; i++) {
            struct melem e = cur.e[i];
            if (stuck) {
                stuck++; /* nothing passes a stage holding data (S17) */
                continue;
            }
            if (e.tag == tag) {
                mpush(&out, e); /* permitted or injected in this sublayer */
                continue;
            }
            if (s->kind == K_INLINE && !cur.fin) {
                /* Wants more bytes from here than will ever come, and no
                 * FIN will release it: it holds everything from here on. */
                uint32_t want = need_at(p, pos);
                if (want && total - pos < want) {
                    stuck = 1;
                    continue;
                }
            }
            for (; callout && ins < p->ninserts && p->ins[ins].pos == pos; ins++)
                mpush_insert(&out, &p->ins[ins], tag);
            while (seg < p->nbounds && p->bound[seg] <= pos)
                seg++;
            uint32_t answer = p->answer[seg]; /* answer_at(p, pos) */
            if (s->kind == K_OOB) {
                blocked++; /* everything is blocked, kept bytes come back injected */
                if (answer == FWP_ACTION_PERMIT)
                    mpush(&out, (struct melem){e.byte, OWFP_SPAN_INJECTED, tag});
            } else {
                enum route r = s->kind == K_INLINE ? callout_route(s->action, answer)
                                                   : fixed_route(s);
                if (r == R_BLOCK) {
                    blocked++;
                } else {
                    e.tag = r == R_PERMIT ? tag : -1;
                    mpush(&out, e);
                }
            }
            pos++;
        }
        x->expect_consumed = pos;
        if (cur.fin) {
            for (; callout && ins < p->ninserts; ins++)
                mpush_insert(&out, &p->ins[ins], tag);
            enum route r = s->kind == K_OOB      ? R_PERMIT
                           : s->kind == K_INLINE ? callout_route(s->action, p->fin_answer)
                                                 : fixed_route(s);
            out.fin = r != R_BLOCK;
        }
        held += stuck;
        blocked_upstream += blocked;
        free(cur.e);
        cur = out;
    }
    for (size_t i = 0; i < cur.n; i++)
        bytes_push(&g->expect_out[d], cur.e[i].byte, cur.e[i].origin);
    g->expect_fin[d] = cur.fin;
    g->expect_held[d] = held;
    free(cur.e);
}

/* ---- injected NBLs ----------------------------------------------------------- */

static void free_inj_nbl(struct inj_nbl *x)
{
    if (x->clone) {
        FwpsFreeCloneNetBufferList0(x->nbl, 0);
    } else {
        FwpsFreeNetBufferList0(x->nbl);
        for (int i = 0; i < 2; i++)
            if (x->mdl[i])
                NdisFreeMdl(x->mdl[i]);
        if (x->mem) {
            memset(x->mem, 0xee, x->memlen); /* stale spans would show this */
            free(x->mem);
        }
    }
    x->nbl = NULL;
}

static void NTAPI inj_complete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    UNREFERENCED_PARAMETER(dispatchLevel);
    struct inj_rec *rec = context;
    CHECK(!g->in_classify, "completion ran inside a classifyFn");
    for (uint32_t i = 0; i < rec->n; i++) {
        struct inj_nbl *x = &rec->x[i];
        if (x->id != (uintptr_t)nbl)
            continue;
        x->done++;
        CHECK(x->done == 1, "NBL %u of an injection completed %d times", i, x->done);
        if (x->done == 1) {
            x->status = nbl->Status;
            free_inj_nbl(x);
        }
        return;
    }
    CHECK(false, "completion for an NBL that was not injected with this context");
}

/* One NBL over `len` bytes: some junk before the data (dataOffset), one or
 * two MDLs. */
static void make_nbl(struct inj_nbl *x, const uint8_t *data, size_t len)
{
    struct rng *r = &g->rng;
    size_t junk = below(r, 4);
    x->memlen = junk + len;
    x->mem = malloc(x->memlen ? x->memlen : 1);
    assert_non_null(x->mem);
    memset(x->mem, 0xcc, junk);
    if (len)
        memcpy(x->mem + junk, data, len);
    MDL *chain = NULL;
    if (len) {
        size_t first = len >= 2 && chance(r, 30) ? junk + 1 + below(r, (uint32_t)len - 1)
                                                  : x->memlen;
        x->mdl[0] = NdisAllocateMdl(NULL, x->mem, (UINT)first);
        assert_non_null(x->mdl[0]);
        if (first < x->memlen) {
            x->mdl[1] = NdisAllocateMdl(NULL, x->mem + first, (UINT)(x->memlen - first));
            assert_non_null(x->mdl[1]);
            x->mdl[0]->Next = x->mdl[1];
        }
        chain = x->mdl[0];
    }
    assert_int_equal(FwpsAllocateNetBufferAndNetBufferList0(g_pool, 0, 0, chain,
                                                            len ? (ULONG)junk : 0, len, &x->nbl),
                     STATUS_SUCCESS);
}

/* A chain of 1-3 NBLs carrying `len` bytes. */
static struct inj_rec *make_chain(const uint8_t *data, size_t len)
{
    struct inj_rec *rec = calloc(1, sizeof(*rec));
    assert_non_null(rec);
    rec->n = 1;
    if (len >= 3 && chance(&g->rng, 30))
        rec->n = 2 + below(&g->rng, MAX_CHAIN - 1);
    size_t cut[MAX_CHAIN + 1] = {0};
    cut[rec->n] = len;
    for (uint32_t i = 1; i < rec->n; i++) {
        size_t lo = cut[i - 1] + 1, hi = len - (rec->n - i);
        cut[i] = lo + below(&g->rng, (uint32_t)(hi - lo + 1));
    }
    for (uint32_t i = 0; i < rec->n; i++) {
        make_nbl(&rec->x[i], data ? data + cut[i] : NULL, cut[i + 1] - cut[i]);
        if (i)
            NET_BUFFER_LIST_NEXT_NBL(rec->x[i - 1].nbl) = rec->x[i].nbl;
    }
    return rec;
}

static struct inj_rec *clone_rec(NET_BUFFER_LIST *clone)
{
    struct inj_rec *rec = calloc(1, sizeof(*rec));
    assert_non_null(rec);
    rec->n = 1;
    rec->x[0].nbl = clone;
    rec->x[0].clone = true;
    return rec;
}

/* Injects `rec` (or a pure FIN when rec is NULL) for stage s. */
static void inject(struct stage *s, int d, struct inj_rec *rec, size_t len, bool fin)
{
    uint32_t flags = dir_flag(d) | (fin ? disconnect_flag(d) : 0);
    if (chance(&g->rng, 10))
        flags |= d == SEND ? FWPS_STREAM_FLAG_SEND_NODELAY : FWPS_STREAM_FLAG_RECEIVE_PUSH;
    if (rec)
        for (uint32_t i = 0; i < rec->n; i++) {
            rec->x[i].nbl->Status = STATUS_PENDING;
            rec->x[i].id = (uintptr_t)rec->x[i].nbl;
        }
    uint64_t wakes = g->wakes;
    NTSTATUS st = FwpsStreamInjectAsync0(g->inj, NULL, 0, g->flow_id, s->callout_id, g->layer_id,
                                         flags, rec ? rec->x[0].nbl : NULL, len, inj_complete,
                                         rec);
    CHECK(st == STATUS_SUCCESS, "FwpsStreamInjectAsync0 returned 0x%08" PRIx32, (uint32_t)st);
    if (!g->in_classify)
        CHECK(g->wakes > wakes, "out-of-band injection did not call the wake-up function");
    if (!rec)
        return;
    if (st == STATUS_SUCCESS) {
        rec->next = g->recs;
        g->recs = rec;
        return;
    }
    for (uint32_t i = 0; i < rec->n; i++)
        free_inj_nbl(&rec->x[i]);
    free(rec);
}

/* Reads the bytes an NBL chain carries. */
static size_t nbl_read(NET_BUFFER_LIST *nbl, uint8_t *dst, size_t max)
{
    size_t done = 0;
    for (; nbl; nbl = NET_BUFFER_LIST_NEXT_NBL(nbl))
        for (NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(nbl); nb; nb = NET_BUFFER_NEXT_NB(nb)) {
            size_t left = NET_BUFFER_DATA_LENGTH(nb);
            size_t off = NET_BUFFER_CURRENT_MDL_OFFSET(nb);
            for (MDL *m = NET_BUFFER_CURRENT_MDL(nb); m && left; m = m->Next, off = 0) {
                size_t take = MmGetMdlByteCount(m) - off;
                take = take < left ? take : left;
                if (done + take > max)
                    return SIZE_MAX;
                memcpy(dst + done,
                       (uint8_t *)MmGetSystemAddressForMdlSafe(m, NormalPagePriority) + off, take);
                done += take;
                left -= take;
            }
        }
    return done;
}

static const char *action_name(uint32_t a);

/* ---- the callouts ------------------------------------------------------------- */

static struct stage *stage_of_filter(UINT64 filter_id)
{
    for (uint32_t k = 0; k < g->nstages; k++)
        if (g->st[k].filter_id == filter_id &&
            (g->st[k].kind == K_INLINE || g->st[k].kind == K_OOB))
            return &g->st[k];
    return NULL;
}

static void inline_insert(struct stage *s, int d, const struct insert *ins)
{
    g_stats.inline_injects++;
    inject(s, d, make_chain(ins->bytes, ins->len), ins->len, false);
}

static SIZE_T enforce_all(size_t len)
{
    /* S15: 0 means all, more than there is is clamped. */
    switch (below(&g->rng, 3)) {
    case 0:
        return 0;
    case 1:
        return len;
    default:
        return len + 1 + below(&g->rng, 1000);
    }
}

static UINT32 pick_required(const struct sdir *x, uint32_t want, size_t len)
{
    switch (below(&g->rng, 6)) {
    case 0:
        return want; /* the total the callout needs */
    case 1:
        return (UINT32)len + 1; /* "one more byte" */
    case 2:
        return 0;
    case 3:
        return 1 + below(&g->rng, want);
    default:
        /* More than it needs holds the data until the FIN: only where a FIN
         * will come. */
        return x->expect_fin ? want + below(&g->rng, 1000) : want;
    }
}

static void oob_take(struct stage *s, int d, FWPS_STREAM_DATA0 *sd, bool fin)
{
    struct sdir *x = &s->d[d];
    struct oob_entry *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    e->pos = x->pos;
    e->len = (uint32_t)sd->dataLength;
    e->fin = fin;
    NTSTATUS st = FwpsCloneStreamData0(sd, NULL, NULL, 0, &e->clone);
    CHECK(st == STATUS_SUCCESS, "FwpsCloneStreamData0 returned 0x%08" PRIx32, (uint32_t)st);
    if (st != STATUS_SUCCESS) {
        free(e);
        return;
    }
    if (x->fifo_tail)
        x->fifo_tail->next = e;
    else
        x->fifo = e;
    x->fifo_tail = e;
    x->nfifo++;
}

static void NTAPI prop_classify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                void *layerData, const FWPS_FILTER0 *filter, UINT64 flowContext,
                                FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(flowContext);
    g_stats.classifies++;
    UINT32 entry_action = classifyOut->actionType, entry_rights = classifyOut->rights;
    classifyOut->actionType = FWP_ACTION_BLOCK;
    if (g->failed)
        return;
    struct stage *s = stage_of_filter(filter->filterId);
    CHECK(s, "classify for unknown filter %" PRIu64, filter->filterId);
    if (!s)
        return;
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    FWPS_STREAM_DATA0 *sd = io->streamData;
    CHECK(inFixedValues->layerId == g->layer_id, "layer %u", inFixedValues->layerId);
    CHECK(inMetaValues->flowHandle == g->flow_id, "flow handle");
    bool send = sd->flags & FWPS_STREAM_FLAG_SEND, recv = sd->flags & FWPS_STREAM_FLAG_RECEIVE;
    CHECK(send != recv, "stream flags 0x%x", (unsigned)sd->flags);
    CHECK(io->countBytesRequired == 0 && io->countBytesEnforced == 0 &&
              io->streamAction == FWPS_STREAM_ACTION_NONE && entry_action == 0 &&
              entry_rights == FWPS_RIGHT_ACTION_WRITE,
          "output fields not reset on entry (S6)");
    CHECK(!(sd->flags & (FWPS_STREAM_FLAG_SEND_ABORT | FWPS_STREAM_FLAG_RECEIVE_ABORT)),
          "abort indication");
    if (g->failed)
        return;
    int d = send ? SEND : RECV;
    struct sdir *x = &s->d[d];
    const struct prog *p = &x->prog;
    bool final = classifyOut->flags &
                 (FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA | FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED);
    size_t len = sd->dataLength;
    x->missed += io->missedBytes;
    CHECK(!x->deferred, "stage %u dir %d classified while deferred (S19)", (unsigned)(s - g->st), d);
    if (g->remainder_of) {
        CHECK(g->remainder_of == x && len == g->remainder,
              "stage %u dir %d classified with %zu bytes; expected the remainder (%zu bytes) of "
              "the previous indication (S16)",
              (unsigned)(s - g->st), d, len, g->remainder);
        g->remainder_of = NULL;
    }
    if (x->waiting) {
        /* S17: held + new as one indication, once enough is there (and
         * never the FIN while bytes are held). */
        CHECK(len > x->wait_len || (final && len == x->wait_len),
              "stage %u dir %d re-indicated %zu bytes after NEED_MORE_DATA on %zu",
              (unsigned)(s - g->st), d, len, x->wait_len);
        CHECK(len >= x->wait_required || final,
              "stage %u dir %d re-indicated %zu bytes, asked for %u", (unsigned)(s - g->st), d,
              len, x->wait_required);
    }
    x->waiting = false;
    g->in_classify = true;
    TRACE("classify stage %u %s pos %u len %zu flags 0x%x out 0x%x missed %zu\n",
          (unsigned)(s - g->st), d == SEND ? "SEND" : "RECV", x->pos, len, (unsigned)sd->flags,
          (unsigned)classifyOut->flags, (size_t)io->missedBytes);

    if (sd->flags & disconnect_flag(d)) {
        CHECK(len == 0, "FIN indication with %zu bytes", len);
        CHECK(classifyOut->flags & FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA,
              "FIN indication without NO_MORE_DATA");
        CHECK(!x->saw_fin, "stage %u dir %d: second FIN indication", (unsigned)(s - g->st), d);
        CHECK(x->pos == x->expect_len, "stage %u dir %d: FIN at position %u, model input is %u",
              (unsigned)(s - g->st), d, x->pos, x->expect_len);
        x->saw_fin = true;
        if (s->kind == K_OOB) {
            oob_take(s, d, sd, true); /* S29: pend the FIN, inject it later */
            classifyOut->actionType = FWP_ACTION_BLOCK;
        } else {
            for (; x->next_insert < p->ninserts; x->next_insert++)
                inline_insert(s, d, &p->ins[x->next_insert]);
            classifyOut->actionType = p->fin_answer;
        }
        g->in_classify = false;
        return;
    }

    CHECK(len > 0, "empty data indication");
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    SIZE_T copied = 0;
    FwpsCopyStreamDataToBuffer0(sd, buf, len, &copied);
    CHECK(copied == len, "copied %zu of %zu", (size_t)copied, len);
    CHECK(x->pos + len <= x->expect_len,
          "stage %u dir %d shown [%u,%zu) but the model's input for it has %u bytes",
          (unsigned)(s - g->st), d, x->pos, x->pos + len, x->expect_len);
    if (!g->failed)
        for (size_t i = 0; i < len; i++)
            if (buf[i] != x->expect[x->pos + i]) {
                CHECK(false, "stage %u dir %d: byte at input position %zu is 0x%02x, model 0x%02x",
                      (unsigned)(s - g->st), d, x->pos + i, buf[i], x->expect[x->pos + i]);
                break;
            }
    free(buf);
    if (g->failed) {
        g->in_classify = false;
        return;
    }

    if (s->kind == K_OOB) {
        oob_take(s, d, sd, false);
        x->pos += (uint32_t)len;
        classifyOut->actionType = FWP_ACTION_BLOCK;
        io->countBytesEnforced = chance(&g->rng, 50) ? 0 : len;
        g->in_classify = false;
        return;
    }

    /* S19: defer once at each defer point. */
    if (x->next_defer < p->ndefers && p->defer[x->next_defer] == x->pos) {
        x->next_defer++;
        x->deferred = true;
        g_stats.defers++;
        TRACE("  -> DEFER\n");
        io->streamAction = FWPS_STREAM_ACTION_DEFER;
        if (chance(&g->rng, 30))
            classifyOut->actionType = FWP_ACTION_CONTINUE; /* ignored (S14) */
        g->in_classify = false;
        return;
    }
    CHECK(x->next_defer == p->ndefers || p->defer[x->next_defer] > x->pos, "skipped a defer point");

    /* S17: wait for `want` bytes from here unless no more will come. */
    uint32_t want = need_at(p, x->pos);
    if (want > len && !final) {
        g_stats.need_more++;
        io->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
        io->countBytesRequired = pick_required(x, want, len);
        x->waiting = true;
        x->wait_len = len;
        x->wait_required = io->countBytesRequired;
        TRACE("  -> NEED_MORE_DATA want %u required %u\n", want, io->countBytesRequired);
        if (chance(&g->rng, 20))
            io->countBytesEnforced = below(&g->rng, (uint32_t)len + 1); /* ignored */
        if (chance(&g->rng, 30))
            classifyOut->actionType = FWP_ACTION_CONTINUE; /* ignored (S14) */
        g->in_classify = false;
        return;
    }

    /* Decide up to the next boundary of the program (S15, S16). */
    uint32_t end = next_boundary(p, x->pos);
    size_t n = end - x->pos < len ? end - x->pos : len;
    for (; x->next_insert < p->ninserts && p->ins[x->next_insert].pos == x->pos; x->next_insert++)
        inline_insert(s, d, &p->ins[x->next_insert]);
    CHECK(x->next_insert == p->ninserts || p->ins[x->next_insert].pos > x->pos,
          "skipped an insertion point");
    classifyOut->actionType = answer_at(p, x->pos);
    io->countBytesEnforced = n < len ? n : enforce_all(len);
    if (n < len) {
        g->remainder_of = x;
        g->remainder = len - n;
    }
    TRACE("  -> %s for %zu (enforced %zu)\n", action_name(classifyOut->actionType), n,
          (size_t)io->countBytesEnforced);
    x->pos += (uint32_t)n;
    g->in_classify = false;
}

/* ---- out-of-band injection, from outside classify ------------------------------ */

static void oob_flush_one(struct stage *s, int d)
{
    TRACE("out-of-band flush stage %u %s pos %u len %u%s\n", (unsigned)(s - g->st),
          d == SEND ? "SEND" : "RECV", s->d[d].fifo->pos, s->d[d].fifo->len,
          s->d[d].fifo->fin ? " FIN" : "");
    struct sdir *x = &s->d[d];
    const struct prog *p = &x->prog;
    struct oob_entry *e = x->fifo;
    x->fifo = e->next;
    if (!x->fifo)
        x->fifo_tail = NULL;
    x->nfifo--;
    struct bytes t = {0};
    bool changed = false;
    if (!e->fin) {
        uint8_t *orig = malloc(e->len ? e->len : 1);
        assert_non_null(orig);
        size_t got = nbl_read(e->clone, orig, e->len);
        CHECK(got == e->len, "clone carries %zu bytes, indication had %u", got, e->len);
        CHECK(got != e->len || !memcmp(orig, x->expect + e->pos, e->len),
              "clone differs from the indicated bytes");
        for (uint32_t i = 0; i < e->len && got == e->len; i++) {
            uint32_t pos = e->pos + i;
            for (; x->oob_next_insert < p->ninserts && p->ins[x->oob_next_insert].pos == pos;
                 x->oob_next_insert++) {
                const struct insert *in = &p->ins[x->oob_next_insert];
                for (uint32_t j = 0; j < in->len; j++)
                    bytes_push(&t, in->bytes[j], OWFP_SPAN_INJECTED);
                changed = true;
            }
            if (answer_at(p, pos) == FWP_ACTION_PERMIT)
                bytes_push(&t, orig[i], OWFP_SPAN_INJECTED);
            else
                changed = true;
        }
        free(orig);
        g_stats.oob_injects++;
        if (!changed && chance(&g->rng, 70)) {
            inject(s, d, clone_rec(e->clone), e->len, false);
        } else {
            FwpsDiscardClonedStreamData0(e->clone, 0, FALSE);
            if (t.n || chance(&g->rng, 10))
                inject(s, d, make_chain(t.b, t.n), t.n, false);
        }
    } else {
        for (; x->oob_next_insert < p->ninserts; x->oob_next_insert++) {
            const struct insert *in = &p->ins[x->oob_next_insert];
            for (uint32_t j = 0; j < in->len; j++)
                bytes_push(&t, in->bytes[j], OWFP_SPAN_INJECTED);
        }
        g_stats.oob_injects++;
        switch (below(&g->rng, 3)) {
        case 0: /* the data, then the cloned FIN indication with DISCONNECT */
            if (t.n)
                inject(s, d, make_chain(t.b, t.n), t.n, false);
            inject(s, d, clone_rec(e->clone), 0, true);
            break;
        case 1: /* the data, then a pure FIN (no NBL) */
            FwpsDiscardClonedStreamData0(e->clone, 0, FALSE);
            if (t.n)
                inject(s, d, make_chain(t.b, t.n), t.n, false);
            inject(s, d, NULL, 0, true);
            break;
        default: /* data and DISCONNECT in one call */
            if (t.n) {
                FwpsDiscardClonedStreamData0(e->clone, 0, FALSE);
                inject(s, d, make_chain(t.b, t.n), t.n, true);
            } else {
                inject(s, d, clone_rec(e->clone), 0, true);
            }
            break;
        }
    }
    bytes_free(&t);
    free(e);
}

/* ---- the data plane ------------------------------------------------------------- */

static bool any_deferred(int d)
{
    for (uint32_t k = 0; k < g->nstages; k++)
        if (g->st[k].d[d].deferred)
            return true;
    return false;
}

static void take_result(NTSTATUS status, const struct owfp_stream_result *r, const char *what)
{
    CHECK(status == STATUS_SUCCESS, "%s returned 0x%08" PRIx32, what, (uint32_t)status);
    if (status != STATUS_SUCCESS)
        return;
    CHECK(r->flow_state == 0, "%s: flow_state 0x%x", what, r->flow_state);
    for (int d = 0; d < 2; d++) {
        const struct owfp_stream_output *o = &r->dir[d];
        uint64_t sum = 0;
        TRACE("%s: %s %zu spans %" PRIu64 " bytes state 0x%x held %" PRIu64 "\n", what,
              d == SEND ? "SEND" : "RECV", o->nspans, o->bytes, o->state, o->held_bytes);
        CHECK(!g->fin_seen[d] || o->nspans == 0, "dir %d: %zu spans after the FIN", d, o->nspans);
        for (size_t i = 0; i < o->nspans; i++) {
            const struct owfp_span *sp = &o->spans[i];
            CHECK(sp->len > 0, "empty span");
            CHECK(sp->origin == OWFP_SPAN_ORIGINAL || sp->origin == OWFP_SPAN_INJECTED,
                  "span origin %u", sp->origin);
            for (size_t j = 0; j < sp->len; j++)
                bytes_push(&g->out[d], sp->data[j], (uint8_t)sp->origin);
            sum += sp->len;
        }
        g_stats.spans += o->nspans;
        CHECK(sum == o->bytes, "dir %d: spans carry %" PRIu64 " bytes, result says %" PRIu64, d,
              sum, o->bytes);
        if (o->state & OWFP_DIR_FIN)
            g->fin_seen[d] = true;
        CHECK(!!(o->state & OWFP_DIR_DEFERRED) == any_deferred(d),
              "%s: dir %d DEFERRED bit %d, callouts deferred %d", what, d,
              !!(o->state & OWFP_DIR_DEFERRED), any_deferred(d));
        CHECK(!!(o->state & OWFP_DIR_CLOSED) == g->fin_sent[d], "dir %d CLOSED bit", d);
        CHECK(!o->held_bytes || (o->state & OWFP_DIR_HELD), "held bytes without HELD");
        g->last_held[d] = o->held_bytes;
        g->last_state[d] = o->state;
    }
}

/* Spans of the previous call are delivered; its input buffer may go. */
static void release_prev(void)
{
    if (g->prev_buf) {
        memset(g->prev_buf, 0xab, g->prev_len);
        free(g->prev_buf);
        g->prev_buf = NULL;
    }
}

static void do_indicate(int d, uint32_t n)
{
    TRACE("indicate %s %u bytes at %u\n", d == SEND ? "SEND" : "RECV", n, g->off[d]);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    memcpy(buf, g->in[d] + g->off[d], n);
    g->off[d] += n;
    uint32_t mods = 0;
    if (chance(&g->rng, 10))
        mods = below(&g->rng, 8) & (OWFP_STREAM_PUSH | OWFP_STREAM_URGENT | OWFP_STREAM_NODELAY);
    release_prev();
    struct owfp_stream_result r;
    NTSTATUS st = owfp_stream_indicate(g->flow, (enum owfp_stream_direction)d, buf, n, mods, &r);
    g->prev_buf = buf;
    g->prev_len = n;
    take_result(st, &r, "owfp_stream_indicate");
}

static void do_fin(int d)
{
    release_prev();
    g->fin_sent[d] = true;
    struct owfp_stream_result r;
    NTSTATUS st = owfp_stream_fin(g->flow, (enum owfp_stream_direction)d, &r);
    take_result(st, &r, "owfp_stream_fin");
}

static void do_poll(void)
{
    release_prev();
    struct owfp_stream_result r;
    NTSTATUS st = owfp_stream_poll(g->flow, &r);
    take_result(st, &r, "owfp_stream_poll");
}

static void do_continue(struct stage *s, int d)
{
    TRACE("continue stage %u %s\n", (unsigned)(s - g->st), d == SEND ? "SEND" : "RECV");
    uint64_t wakes = g->wakes;
    NTSTATUS st = FwpsStreamContinue0(g->flow_id, s->callout_id, g->layer_id, dir_flag(d));
    CHECK(st == STATUS_SUCCESS, "FwpsStreamContinue0 returned 0x%08" PRIx32, (uint32_t)st);
    CHECK(g->wakes > wakes, "FwpsStreamContinue0 did not call the wake-up function");
    s->d[d].deferred = false;
}

static void NTAPI wakeup(void *arg, owfp_flow *flow)
{
    (void)arg;
    CHECK(flow == g->flow, "wake-up for another flow");
    g->wakes++;
}

struct cand {
    uint32_t k;
    int d;
};

/* Injects a random number of pending clones of a random out-of-band stage. */
static bool random_oob_flush(void)
{
    struct cand cand[MAX_STAGES * 2];
    uint32_t n = 0;
    for (uint32_t k = 0; k < g->nstages; k++)
        for (int d = 0; d < 2; d++)
            if (g->st[k].d[d].nfifo)
                cand[n++] = (struct cand){k, d};
    if (!n)
        return false;
    uint32_t c = below(&g->rng, n);
    struct stage *s = &g->st[cand[c].k];
    uint32_t todo = 1 + below(&g->rng, s->d[cand[c].d].nfifo);
    while (todo-- && !g->failed)
        oob_flush_one(s, cand[c].d);
    return true;
}

static bool random_continue(void)
{
    struct cand cand[MAX_STAGES * 2];
    uint32_t n = 0;
    for (uint32_t k = 0; k < g->nstages; k++)
        for (int d = 0; d < 2; d++)
            if (g->st[k].d[d].deferred)
                cand[n++] = (struct cand){k, d};
    if (!n)
        return false;
    uint32_t c = below(&g->rng, n);
    do_continue(&g->st[cand[c].k], cand[c].d);
    return true;
}

/* ---- configuration ----------------------------------------------------------------- */

static uint32_t sorted_distinct(struct rng *r, uint32_t *out, uint32_t n, uint32_t lo,
                                uint32_t hi)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v = lo + below(r, hi - lo + 1);
        uint32_t j = m;
        while (j > 0 && out[j - 1] > v) {
            out[j] = out[j - 1];
            j--;
        }
        if (j > 0 && out[j - 1] == v) { /* duplicate: undo the shift */
            for (; j < m; j++)
                out[j] = out[j + 1];
            continue;
        }
        out[j] = v;
        m++;
    }
    return m;
}

static uint32_t pick_answer(struct rng *r, const struct stage *s, uint32_t features)
{
    if (s->kind == K_OOB)
        return chance(r, 75) ? FWP_ACTION_PERMIT : FWP_ACTION_BLOCK; /* keep / drop */
    if ((features & F_ODD_ANSWERS) && chance(r, 12)) {
        static const uint32_t odd[] = {0, FWP_ACTION_CONTINUE, FWP_ACTION_NONE,
                                       FWP_ACTION_NONE_NO_MATCH, FWP_ACTION_CALLOUT_TERMINATING};
        return odd[below(r, 5)];
    }
    uint32_t x = below(r, 100);
    switch (s->action) {
    case FWP_ACTION_CALLOUT_TERMINATING:
        return x < 60 ? FWP_ACTION_PERMIT : FWP_ACTION_BLOCK;
    case FWP_ACTION_CALLOUT_UNKNOWN:
        return x < 40 ? FWP_ACTION_PERMIT : x < 65 ? FWP_ACTION_BLOCK : FWP_ACTION_CONTINUE;
    default:
        return x < 33 ? FWP_ACTION_PERMIT : x < 66 ? FWP_ACTION_BLOCK : FWP_ACTION_CONTINUE;
    }
}

static void gen_prog(struct rng *r, struct stage *s, int d, uint32_t features)
{
    struct prog *p = &s->d[d].prog;
    uint32_t domain = g->in_len[d] + 8;
    memset(p, 0, sizeof(*p));
    if (!chance(r, 25))
        p->nbounds = sorted_distinct(r, p->bound, 1 + below(r, MAX_BOUNDS), 1, domain);
    for (uint32_t i = 0; i <= p->nbounds; i++)
        p->answer[i] = pick_answer(r, s, features);
    bool inject_ok = s->kind == K_OOB || (features & F_INLINE_INJECT);
    if (inject_ok && chance(r, 50)) {
        uint32_t pos[MAX_INSERTS];
        p->ninserts = sorted_distinct(r, pos, 1 + below(r, MAX_INSERTS), 0, domain + 4);
        for (uint32_t i = 0; i < p->ninserts; i++) {
            p->ins[i].pos = pos[i];
            p->ins[i].len = chance(r, 8) ? 0 : 1 + below(r, MAX_INSERT_LEN);
            for (uint32_t j = 0; j < p->ins[i].len; j++)
                p->ins[i].bytes[j] = (uint8_t)rnd(r);
        }
    }
    if (s->kind != K_INLINE)
        return;
    if ((features & F_DEFER) && chance(r, d == RECV ? 40 : 20))
        p->ndefers = sorted_distinct(r, p->defer, 1 + below(r, MAX_DEFERS), 0, domain);
    if ((features & F_NEED) && chance(r, 45)) {
        uint32_t pos[MAX_NEEDS];
        p->nneeds = sorted_distinct(r, pos, 1 + below(r, MAX_NEEDS), 0, domain);
        for (uint32_t i = 0; i < p->nneeds; i++) {
            p->need[i].pos = pos[i];
            p->need[i].want = 1 + below(r, chance(r, 50) ? 32 : 600);
        }
    }
    uint32_t x = below(r, 100);
    switch (s->action) {
    case FWP_ACTION_CALLOUT_TERMINATING:
        p->fin_answer = x < 96 ? FWP_ACTION_PERMIT : FWP_ACTION_BLOCK;
        break;
    case FWP_ACTION_CALLOUT_UNKNOWN:
        p->fin_answer = x < 48 ? FWP_ACTION_PERMIT : x < 96 ? FWP_ACTION_CONTINUE : FWP_ACTION_BLOCK;
        break;
    default:
        p->fin_answer = pick_answer(r, s, features);
        break;
    }
}

static int stage_order(const void *a, const void *b)
{
    const struct stage *x = a, *y = b;
    if (x->sub_weight != y->sub_weight)
        return x->sub_weight > y->sub_weight ? -1 : 1;
    return x->weight > y->weight ? -1 : x->weight < y->weight;
}

static void gen_case(uint32_t features)
{
    struct rng *r = &g->rng;
    g->ipv = chance(r, 50) ? 4 : 6;
    g->layer_id = g->ipv == 4 ? FWPS_LAYER_STREAM_V4 : FWPS_LAYER_STREAM_V6;
    g->nsub = 1 + below(r, MAX_SUBLAYERS);
    uint16_t subw[MAX_SUBLAYERS];
    for (uint32_t i = 0; i < g->nsub; i++) {
        bool dup;
        do {
            subw[i] = (uint16_t)(1 + below(r, 0xfffe));
            dup = subw[i] == 0x8000;
            for (uint32_t j = 0; j < i; j++)
                dup |= subw[j] == subw[i];
        } while (dup);
        uint32_t nf = 1 + below(r, MAX_PER_SUBLAYER);
        uint32_t w[MAX_PER_SUBLAYER];
        while (sorted_distinct(r, w, nf, 1, 1000) != nf)
            ;
        for (uint32_t j = 0; j < nf; j++) {
            struct stage *s = &g->st[g->nstages++];
            s->sub = i;
            s->sub_weight = subw[i];
            s->weight = w[j];
        }
    }
    qsort(g->st, g->nstages, sizeof(g->st[0]), stage_order);
    for (uint32_t k = 0; k < g->nstages; k++) {
        struct stage *s = &g->st[k];
        bool first_in_sublayer = k == 0 || g->st[k - 1].sub != s->sub;
        s->key = h_guid(0x5c000000u | k);
        /* An out-of-band callout must be first in its sublayer: data an
         * earlier filter of its sublayer permits would overtake its
         * re-injected bytes (why stmedit keeps it in a sublayer of its own). */
        if ((features & F_OOB) && first_in_sublayer && chance(r, 25)) {
            s->kind = K_OOB;
            s->action = chance(r, 50) ? FWP_ACTION_CALLOUT_TERMINATING : FWP_ACTION_CALLOUT_UNKNOWN;
        } else if ((features & F_STATIC) && chance(r, 12)) {
            s->kind = K_STATIC;
            uint32_t x = below(r, 100);
            s->action = x < 40 ? FWP_ACTION_PERMIT : x < 85 ? FWP_ACTION_CONTINUE : FWP_ACTION_BLOCK;
        } else if ((features & F_STATIC) && chance(r, 4)) {
            s->kind = K_UNREGISTERED;
            static const uint32_t acts[] = {FWP_ACTION_CALLOUT_TERMINATING,
                                            FWP_ACTION_CALLOUT_UNKNOWN,
                                            FWP_ACTION_CALLOUT_INSPECTION};
            s->action = acts[below(r, 3)];
            if (s->action != FWP_ACTION_CALLOUT_INSPECTION && chance(r, 60))
                s->flags = FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED;
        } else {
            s->kind = K_INLINE;
            uint32_t x = below(r, 100);
            s->action = x < 40   ? FWP_ACTION_CALLOUT_TERMINATING
                        : x < 65 ? FWP_ACTION_CALLOUT_INSPECTION
                                 : FWP_ACTION_CALLOUT_UNKNOWN;
        }
    }
    static const uint32_t segs[] = {1, 3, 8, 32, 128, 512, 1460, 4096};
    g->max_seg = segs[below(r, sizeof(segs) / sizeof(segs[0]))];
    uint32_t cap = g->max_seg * 64 < MAX_STREAM ? g->max_seg * 64 : MAX_STREAM;
    for (int d = 0; d < 2; d++) {
        g->in_len[d] = chance(r, 8) ? 0 : below(r, 1 + below(r, cap + 1));
        g->in[d] = malloc(g->in_len[d] ? g->in_len[d] : 1);
        assert_non_null(g->in[d]);
        for (uint32_t i = 0; i < g->in_len[d]; i++)
            g->in[d][i] = (uint8_t)rnd(r);
    }
    for (uint32_t k = 0; k < g->nstages; k++)
        for (int d = 0; d < 2; d++)
            gen_prog(r, &g->st[k], d, features);
}

static const char *kind_name(enum kind k)
{
    static const char *n[] = {"static", "unregistered", "inline", "out-of-band"};
    return n[k];
}

static const char *action_name(uint32_t a)
{
    switch (a) {
    case FWP_ACTION_PERMIT:
        return "PERMIT";
    case FWP_ACTION_BLOCK:
        return "BLOCK";
    case FWP_ACTION_CONTINUE:
        return "CONTINUE";
    case FWP_ACTION_CALLOUT_TERMINATING:
        return "CALLOUT_TERMINATING";
    case FWP_ACTION_CALLOUT_INSPECTION:
        return "CALLOUT_INSPECTION";
    case FWP_ACTION_CALLOUT_UNKNOWN:
        return "CALLOUT_UNKNOWN";
    case FWP_ACTION_NONE:
        return "NONE";
    case FWP_ACTION_NONE_NO_MATCH:
        return "NONE_NO_MATCH";
    case 0:
        return "0";
    default:
        return "?";
    }
}

static void dump_case(void)
{
    printf("  IPv%d, max piece %u, SEND %u bytes, RECEIVE %u bytes\n", g->ipv, g->max_seg,
           g->in_len[SEND], g->in_len[RECV]);
    for (uint32_t k = 0; k < g->nstages; k++) {
        const struct stage *s = &g->st[k];
        printf("  stage %u: sublayer %u (weight 0x%04x) filter weight %" PRIu64
               " %s %s%s callout %u filter %" PRIu64 "\n",
               k, s->sub, s->sub_weight, s->weight, kind_name(s->kind), action_name(s->action),
               s->flags ? " PERMIT_IF_CALLOUT_UNREGISTERED" : "", s->callout_id, s->filter_id);
        if (s->kind != K_INLINE && s->kind != K_OOB)
            continue;
        for (int d = 0; d < 2; d++) {
            const struct sdir *x = &s->d[d];
            const struct prog *p = &x->prog;
            printf("    %s: input %u consumed %u fin %d missed %" PRIu64 " | answers [0,",
                   d == SEND ? "SEND" : "RECV", x->expect_len, x->expect_consumed, x->expect_fin,
                   x->expect_missed);
            for (uint32_t i = 0; i < p->nbounds; i++)
                printf("%u):%s [%u,", p->bound[i], action_name(p->answer[i]), p->bound[i]);
            printf("..):%s fin:%s", action_name(p->answer[p->nbounds]), action_name(p->fin_answer));
            for (uint32_t i = 0; i < p->ninserts; i++)
                printf(" ins@%u(%u)", p->ins[i].pos, p->ins[i].len);
            for (uint32_t i = 0; i < p->ndefers; i++)
                printf(" defer@%u", p->defer[i]);
            for (uint32_t i = 0; i < p->nneeds; i++)
                printf(" need@%u(%u)", p->need[i].pos, p->need[i].want);
            printf("\n");
        }
    }
    for (int d = 0; d < 2; d++)
        printf("  %s: model output %zu bytes fin %d held %" PRIu64 "; engine output %zu bytes fin "
               "%d held %" PRIu64 "\n",
               d == SEND ? "SEND" : "RECV", g->expect_out[d].n, g->expect_fin[d],
               g->expect_held[d], g->out[d].n, g->fin_seen[d], g->last_held[d]);
}

/* ---- one case ------------------------------------------------------------------------- */

static void setup_engine(void)
{
    assert_int_equal(h_setup(NULL), 0);
    const GUID *layer = g->ipv == 4 ? &FWPM_LAYER_STREAM_V4 : &FWPM_LAYER_STREAM_V6;
    GUID subkeys[MAX_SUBLAYERS];
    for (uint32_t i = 0; i < MAX_SUBLAYERS; i++)
        for (uint32_t k = 0; k < g->nstages; k++)
            if (g->st[k].sub == i) {
                subkeys[i] = h_sublayer(i, g->st[k].sub_weight);
                break;
            }
    for (uint32_t k = 0; k < g->nstages; k++) {
        struct stage *s = &g->st[k];
        if (s->kind != K_STATIC) {
            assert_int_equal(h_callout_object(&s->key, layer), STATUS_SUCCESS);
            if (s->kind != K_UNREGISTERED)
                assert_int_equal(h_register0(&s->key, 0, prop_classify, h_notify_ok, NULL,
                                             &s->callout_id),
                                 STATUS_SUCCESS);
        }
        struct h_filter_spec spec = {
            .layer = layer,
            .sublayer = &subkeys[s->sub],
            .action = s->action,
            .callout = s->kind == K_STATIC ? NULL : &s->key,
            .weight = s->weight,
            .has_weight = 1,
            .flags = s->flags,
        };
        assert_int_equal(h_filter(&spec, &s->filter_id), STATUS_SUCCESS);
    }
    struct owfp_flow_params fp = g->ipv == 4 ? h_params4(40000, 443, OWFP_OUTBOUND)
                                             : h_params6(40000, 443, OWFP_INBOUND);
    g->flow = h_open(&fp, NULL);
    g->flow_id = owfp_flow_id(g->flow);
    assert_int_equal(owfp_flow_set_wakeup(g->flow, wakeup, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, &g->inj),
                     STATUS_SUCCESS);
}

static void drive(void)
{
    struct rng *r = &g->rng;
    unsigned send_bias = 20 + below(r, 61);
    while (!g->failed && !(g->fin_sent[SEND] && g->fin_sent[RECV])) {
        int d = g->fin_sent[SEND] ? RECV : g->fin_sent[RECV] ? SEND : chance(r, send_bias) ? SEND : RECV;
        uint32_t left = g->in_len[d] - g->off[d];
        if (left) {
            uint32_t most = left < g->max_seg ? left : g->max_seg;
            do_indicate(d, 1 + below(r, most));
        } else {
            do_fin(d);
        }
        if (chance(r, 20) && random_oob_flush() && chance(r, 50))
            do_poll();
        if (chance(r, 25) && random_continue() && chance(r, 60))
            do_poll();
        if (chance(r, 3))
            do_poll();
    }
    /* Let every out-of-band callout catch up and every deferral go; a poll
     * may bring new clones or deferrals. */
    for (int round = 0; round < 10000 && !g->failed; round++) {
        TRACE("quiesce round %d\n", round);
        for (uint32_t k = 0; k < g->nstages; k++)
            for (int d = 0; d < 2; d++) {
                while (g->st[k].d[d].nfifo && !g->failed)
                    oob_flush_one(&g->st[k], d);
                if (g->st[k].d[d].deferred)
                    do_continue(&g->st[k], d);
            }
        do_poll();
        bool pending = false;
        for (uint32_t k = 0; k < g->nstages; k++)
            for (int d = 0; d < 2; d++)
                pending |= g->st[k].d[d].nfifo || g->st[k].d[d].deferred;
        if (!pending)
            break;
    }
}

static void check_end(void)
{
    if (g->failed)
        return;
    for (int d = 0; d < 2; d++) {
        const struct bytes *e = &g->expect_out[d], *o = &g->out[d];
        size_t i = 0;
        while (i < e->n && i < o->n && e->b[i] == o->b[i] && e->o[i] == o->o[i])
            i++;
        CHECK(i == e->n && i == o->n,
              "dir %d: engine delivered %zu bytes, model %zu; first difference at %zu "
              "(engine 0x%02x/%s, model 0x%02x/%s)",
              d, o->n, e->n, i, i < o->n ? o->b[i] : 0,
              i < o->n ? (o->o[i] ? "injected" : "original") : "-", i < e->n ? e->b[i] : 0,
              i < e->n ? (e->o[i] ? "injected" : "original") : "-");
        CHECK(g->fin_seen[d] == g->expect_fin[d], "dir %d: FIN reported %d, model %d", d,
              g->fin_seen[d], g->expect_fin[d]);
        CHECK(g->last_held[d] == g->expect_held[d],
              "dir %d: held_bytes %" PRIu64 " at the end, model %" PRIu64, d, g->last_held[d],
              g->expect_held[d]);
        CHECK(!!(g->last_state[d] & OWFP_DIR_HELD) == (g->expect_held[d] > 0),
              "dir %d: HELD bit at the end", d);
        for (uint32_t k = 0; k < g->nstages; k++) {
            const struct sdir *x = &g->st[k].d[d];
            if (g->st[k].kind != K_INLINE && g->st[k].kind != K_OOB)
                continue;
            CHECK(x->pos == x->expect_consumed,
                  "stage %u dir %d decided %u input bytes, model %u", k, d, x->pos,
                  x->expect_consumed);
            CHECK(x->saw_fin == x->expect_fin, "stage %u dir %d saw FIN %d, model %d", k, d,
                  x->saw_fin, x->expect_fin);
            CHECK(!x->expect_fin || x->missed == x->expect_missed,
                  "stage %u dir %d: missedBytes add up to %" PRIu64 ", %" PRIu64
                  " bytes were blocked upstream",
                  k, d, x->missed, x->expect_missed);
        }
    }
}

static void cleanup_case(void)
{
    release_prev();
    bool stuck = g->expect_held[0] || g->expect_held[1];
    if (g->flow)
        owfp_flow_close(g->flow);
    for (struct inj_rec *rec = g->recs, *next; rec; rec = next) {
        next = rec->next;
        for (uint32_t i = 0; i < rec->n; i++) {
            struct inj_nbl *x = &rec->x[i];
            CHECK(x->done == 1, "an injected NBL completed %d times", x->done);
            CHECK(x->status == STATUS_SUCCESS || (stuck && x->status == STATUS_CANCELLED),
                  "an injected NBL completed with 0x%08" PRIx32, (uint32_t)x->status);
            if (!x->done)
                x->nbl = NULL; /* the engine may still own it; leak rather than corrupt */
        }
        free(rec);
    }
    g->recs = NULL;
    if (g->inj)
        CHECK(FwpsInjectionHandleDestroy0(g->inj) == STATUS_SUCCESS, "handle destroy");
    h_teardown(NULL);
    for (uint32_t k = 0; k < g->nstages; k++)
        for (int d = 0; d < 2; d++) {
            struct sdir *x = &g->st[k].d[d];
            while (x->fifo) {
                struct oob_entry *e = x->fifo;
                x->fifo = e->next;
                FwpsDiscardClonedStreamData0(e->clone, 0, FALSE);
                free(e);
            }
            free(x->expect);
        }
    for (int d = 0; d < 2; d++) {
        free(g->in[d]);
        bytes_free(&g->expect_out[d]);
        bytes_free(&g->out[d]);
    }
}

static uint64_t case_seed(uint64_t base, uint32_t family, uint32_t index)
{
    struct rng r = {base ^ ((uint64_t)family << 48) ^ ((uint64_t)index * UINT64_C(0x2545f4914f6cdd1d))};
    return rnd(&r);
}

/* Runs one case; false (with the reason printed) when the engine disagrees. */
static bool run_case(uint64_t base, uint32_t family, uint32_t index, uint32_t features,
                     bool verbose)
{
    struct case_state *cs = calloc(1, sizeof(*cs));
    assert_non_null(cs);
    g = cs;
    g->seed = base;
    g->index = index;
    g->features = features;
    g->rng.s = case_seed(base, family, index);
    gen_case(features);
    for (int d = 0; d < 2; d++)
        model_direction(d);
    if (g->expect_held[0] || g->expect_held[1])
        g_stats.stuck_cases++;
    for (int d = 0; d < 2; d++)
        g_stats.fin_blocked += !g->expect_fin[d];
    setup_engine();
    drive();
    check_end();
    for (int d = 0; d < 2; d++)
        g_stats.bytes_out += g->out[d].n;
    bool failed_before_cleanup = g->failed;
    if (failed_before_cleanup || verbose)
        dump_case();
    cleanup_case();
    g_stats.cases++;
    bool ok = !g->failed;
    if (!ok || verbose) {
        printf("%s: OWFP_TEST_SEED=0x%016" PRIx64 " OWFP_TEST_CASE=%u (family %u)\n",
               ok ? "case" : "FAILED", base, index, family);
        if (!ok)
            printf("  %s\n", g->err);
        if (!failed_before_cleanup && !verbose)
            dump_case();
    }
    g = NULL;
    free(cs);
    return ok;
}

static uint64_t env_u64(const char *name, uint64_t dflt, bool *set)
{
    const char *v = getenv(name);
    if (set)
        *set = v && *v;
    return v && *v ? strtoull(v, NULL, 0) : dflt;
}

static void run_family(uint32_t family, uint32_t features, uint32_t cases)
{
    bool one;
    uint64_t base = env_u64("OWFP_TEST_SEED", DEFAULT_SEED, NULL);
    uint32_t only = (uint32_t)env_u64("OWFP_TEST_CASE", 0, &one);
    NET_BUFFER_LIST_POOL_PARAMETERS pp;
    memset(&pp, 0, sizeof(pp));
    pp.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    pp.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    pp.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    pp.fAllocateNetBuffer = TRUE;
    g_pool = NdisAllocateNetBufferListPool(NULL, &pp);
    assert_non_null(g_pool);
    memset(&g_stats, 0, sizeof(g_stats));
    uint32_t failures = 0;
    g_trace = getenv("OWFP_TEST_TRACE") != NULL;
    if (one) {
        failures += !run_case(base, family, only, features, true);
    } else {
        for (uint32_t i = 0; i < cases && failures < 3; i++)
            failures += !run_case(base, family, i, features, false);
    }
    NdisFreeNetBufferListPool(g_pool);
    g_pool = NULL;
    printf("family %u: seed 0x%016" PRIx64 ", %" PRIu64 " cases, %" PRIu64 " classifies, %" PRIu64
           " defers, %" PRIu64 " NEED_MORE_DATA, %" PRIu64 " inline / %" PRIu64
           " out-of-band injections, %" PRIu64 " stuck cases, %" PRIu64
           " FINs blocked, %" PRIu64 " bytes in %" PRIu64 " spans\n",
           family, base, g_stats.cases, g_stats.classifies, g_stats.defers, g_stats.need_more,
           g_stats.inline_injects, g_stats.oob_injects, g_stats.stuck_cases, g_stats.fin_blocked,
           g_stats.bytes_out, g_stats.spans);
    if (failures)
        fail_msg("%u case(s) disagree with the reference model (see above)", failures);
}

/* ---- the tests ------------------------------------------------------------------------ */

/* Everything at once: the waterfall (S23) with partial enforcement (S15,
 * S16), NEED_MORE_DATA (S17), DEFER (S19), inline (S28) and out-of-band
 * (S29) injection, missedBytes (S7), FIN (S8) and A9 at the stream layer. */
static void test_S23_S15_S16_S17_S19_S28_S29_waterfall_matches_reference_model(void **state)
{
    (void)state;
    uint32_t cases = (uint32_t)env_u64("OWFP_TEST_CASES", MAIN_CASES, NULL);
    run_family(1, F_ALL, cases);
}

/* Verdicts and partial enforcement only: callouts and static filters. */
static void test_S23_S15_S16_S24_waterfall_verdicts_match_reference_model(void **state)
{
    (void)state;
    run_family(2, F_STATIC | F_ODD_ANSWERS, FAMILY_CASES);
}

static void test_S17_need_more_data_matches_reference_model(void **state)
{
    (void)state;
    run_family(3, F_NEED, FAMILY_CASES);
}

static void test_S19_defer_and_continue_match_reference_model(void **state)
{
    (void)state;
    run_family(4, F_DEFER | F_NEED, FAMILY_CASES);
}

static void test_S25_S28_inline_injection_matches_reference_model(void **state)
{
    (void)state;
    run_family(5, F_INLINE_INJECT | F_STATIC, FAMILY_CASES);
}

static void test_S29_out_of_band_injection_matches_reference_model(void **state)
{
    (void)state;
    run_family(6, F_OOB | F_NEED | F_DEFER, FAMILY_CASES);
}

int main(void)
{
    /* Each case creates and destroys its own engine. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_S23_S15_S16_S24_waterfall_verdicts_match_reference_model),
        cmocka_unit_test(test_S17_need_more_data_matches_reference_model),
        cmocka_unit_test(test_S19_defer_and_continue_match_reference_model),
        cmocka_unit_test(test_S25_S28_inline_injection_matches_reference_model),
        cmocka_unit_test(test_S29_out_of_band_injection_matches_reference_model),
        cmocka_unit_test(test_S23_S15_S16_S17_S19_S28_S29_waterfall_matches_reference_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
