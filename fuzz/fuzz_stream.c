/*
 * Fuzz target: the stream layer (spec §10, S1-S32, O1-O4) with callouts whose
 * every answer comes from the input.
 *
 * Input = [lenA: 2 bytes LE] [tape A: lenA bytes] [tape B: the rest]. Tape A
 * is the set-up and the data plane's program; tape B holds the callouts'
 * answers, one record per classify in the order the engine asks. Both tapes
 * read as 0 once exhausted, and 0 always means the benign default
 * (answer NONE + PERMIT, no extras), so every program ends.
 *
 * Set-up (tape A):
 *   s0: bit0 IPv6, bit1 flows are inbound, bits2-3 sublayers-1 (1-3),
 *       bits4-5 filters-1 (1-4), bit6 second flow's remote port is 80 (it
 *       then misses the port-conditioned filters), bit7 injection handle
 *       family AF_INET/AF_INET6 instead of AF_UNSPEC.
 *   per sublayer: 1 byte weight.
 *   per filter: f0 bits0-2 kind (TERMINATING, INSPECTION, UNKNOWN, static
 *       PERMIT, BLOCK, CONTINUE, TERMINATING and UNKNOWN with the callout not
 *       registered), bits3-4 sublayer, bit5 PERMIT_IF_CALLOUT_UNREGISTERED,
 *       bit6 condition remote port == 443, bit7 callout has no flowDeleteFn;
 *       f1 filter weight; f2 bit0 CONDITIONAL_ON_FLOW, bit1 ALLOW_OFFLOAD,
 *       bit2 ALLOW_MID_STREAM_INSPECTION, bits3-4 FWPS_CALLOUTn version
 *       (flags the version cannot carry must be refused), bits5-6 k > 0:
 *       the filter names filter k-1's callout (one callout, two filters).
 * Data-plane ops (tape A), op byte: bits0-3 opcode, bit4 direction, bits5-6
 * modifiers/variant, bit7 flow slot (two flows):
 *   0-2 indicate 1-256 bytes; 3 indicate 32 KiB-8 MiB; 4 FIN; 5 RST (abort);
 *   6 poll; 7 close the flow / open it again; 8 out-of-band injection (a
 *   clone a callout kept, or fresh bytes; valid and invalid arguments);
 *   9 FwpsStreamContinue0; 10 FwpsFlowAssociateContext0; 11
 *   FwpsFlowRemoveContext0; 12 FwpsFlowAbort0; 13 delete / re-add a filter
 *   (Q21, S32); 14 unregister / register a callout (R5, R7); 15 invalid
 *   data-plane calls, or (argument bit 7) run the next op with allocations
 *   failing after (argument & 0x3f) more (owfp_alloc_fail_after): every call
 *   may then also answer STATUS_INSUFFICIENT_RESOURCES, and from the first
 *   refused allocation on only the checks below marked (*) remain.
 * Callout record (tape B): a0 bits0-2 streamAction (NONE, NEED_MORE_DATA,
 *   DEFER, ALLOW_CONNECTION, DROP_CONNECTION, an invalid value), bits3-4
 *   actionType (PERMIT, BLOCK, CONTINUE, raw byte), bit5 countBytesEnforced
 *   byte follows (a fraction of dataLength, 0, or more than dataLength),
 *   bit6 extras byte follows, bit7 countBytesRequired byte follows. Extras:
 *   bits0-1 injection (inline same direction, inline other direction, clone
 *   and keep for a later out-of-band injection), bits2-3 payload (fresh
 *   bytes, clone of the indication, pure FIN, bytes + DISCONNECT), bits4-6
 *   argument variant (valid, or one invalid argument), bit7 misc-op byte
 *   follows (remove/associate context, FwpsFlowAbort0, PASSIVE-only calls,
 *   injection naming another callout, bad clone arguments, remove a context
 *   of the other flow).
 *
 * Checked after every step (abort() on violation): statuses from the
 * documented set (*), classifies of one flow never nested (S12) (*),
 * classify inputs as documented (S5, S6, S8, S13, F5, F9 (*); S32), a
 * deferred callout not classified before its continue (S19) (*), an
 * ALLOW_CONNECTION callout never again at any of its filters (S20) (*), the
 * remainder of a partly enforced indication next and alone (S16), held data
 * re-indicated only as S17 says, DROP_CONNECTION and FwpsFlowAbort0 drop the
 * flow (S18, S21, F10) (*), a dropped flow delivers and holds nothing (*),
 * held_bytes <= 16 MiB plus this call's indication and injected bytes (*),
 * spans readable (ASan: never freed memory; the data plane frees each input
 * buffer before its next call) (*), completions only on owner calls and
 * never in a classify (*), every accepted injected NBL completed exactly
 * once by flow close and a refused one never (*), every associated context
 * exactly one flowDeleteFn (*), the engine's counters agree (*), no leak
 * (LSan) (*).
 *
 * FUZZ_TRACE=1 in the environment logs every step of an input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <fwpmk.h>
#include <fwpsk.h>
#include <ndis.h>
#include <openwfp/openwfp.h>

#include "common/alloc.h"
#include "fuzz_util.h"
#include "stream/stream.h" /* owfp_item_cache_drop */

#define MAX_SUBLAYERS 3
#define MAX_SLOTS 4
#define MAX_FLOWS 2
#define MAX_STEPS 256
#define MAX_CLASSIFIES 4096
#define MAX_BATCHES 512
#define MAX_CTX 512
#define MAX_CLONES 32
#define MAX_INPUT_BYTES (24u << 20)
#define BACKLOG (16u << 20)
#define COPY_CAP 65536
#define CLONE_CAP (1u << 20)
#define CTX_BASE 0x10000u

enum { SEND = OWFP_STREAM_SEND, RECV = OWFP_STREAM_RECEIVE };

enum fkind {
    FK_TERM,
    FK_INSP,
    FK_UNKNOWN,
    FK_PERMIT,
    FK_BLOCK,
    FK_CONTINUE,
    FK_TERM_UNREG,
    FK_UNKNOWN_UNREG
};

struct per_flow {
    bool mid_join;  /* added while the flow's path existed (S32) */
    bool seen;      /* classified since the filter was (re)added */
    bool allowed;   /* answered ALLOW_CONNECTION (S20) */
    bool deleted_since; /* filter deleted since the flow's last call */
    bool deferred[2];
    bool continue_pending[2];
    bool waiting[2];
    uint64_t wait_len[2];
    uint32_t wait_req[2];
    UINT64 ctx;  /* stream-layer context, 0 = none */
    UINT64 ctx2; /* DATAGRAM_DATA context, 0 = none */
};

/* One filter and, for callout filters, its callout (one per filter). */
struct slot {
    enum fkind kind;
    uint32_t action;
    bool callout;
    struct slot *co; /* whose callout the filter names: itself, or a slot it shares with */
    bool registered;
    bool draining; /* unregister answered STATUS_DEVICE_BUSY (Q3) */
    bool has_delete_fn;
    uint32_t cflags;
    unsigned version;
    uint8_t sub;
    uint64_t weight;
    uint32_t fflags;
    bool port_cond;
    GUID ckey;
    UINT32 callout_id;
    bool present;
    UINT64 filter_id;
    uint32_t adds;
    struct per_flow pf[MAX_FLOWS];
};

struct clone_rec {
    struct clone_rec *next;
    NET_BUFFER_LIST *nbl;
    SIZE_T len;
    int dir;
    int slot;
    bool fin;
};

struct flow_state {
    owfp_flow *flow; /* NULL while closed */
    UINT64 id;       /* kept after close: a stale id */
    uint32_t gen;
    uint16_t remote_port;
    bool path_built;
    bool closed[2];
    bool dropped;
    bool offloadable;
    bool expect_drop;
    bool abort_called;
    bool abort_in_op;
    bool in_classify;
    uint8_t *buf;
    uint64_t last_held[2];
    uint64_t injected_since[2];
    uint64_t injected_total[2];
    uint64_t max_len; /* largest accepted indication */
    uint64_t wakes;
    struct {
        bool on;
        int slot, dir;
        uint64_t len;
    } rem;
    struct clone_rec *clones, *clones_tail;
    uint32_t nclones;
};

struct inj_nbl {
    NET_BUFFER_LIST *nbl;
    MDL *mdl;
    uint8_t *mem;
    bool clone;
    bool freed;
    int done;
};

struct batch {
    struct batch *next;
    int fi;
    uint32_t gen;
    bool accepted;
    uint32_t n;
    struct inj_nbl x[3];
};

struct ctx_rec {
    int fi;
    uint32_t gen;
    int slot;
    uint16_t layer;
    bool removed;
    int deletes;
};

static struct {
    struct tape a, b;
    bool v6;
    uint16_t layer_id;
    const GUID *layer_key;
    uint8_t direction;
    uint32_t nsub, nslots;
    GUID subkeys[MAX_SUBLAYERS];
    struct slot slots[MAX_SLOTS];
    struct flow_state flows[MAX_FLOWS];
    HANDLE session;
    HANDLE inj, inj_transport;
    NDIS_HANDLE pool;
    owfp_engine *engine;
    bool owner_call;
    bool faulting; /* allocations may fail during this op */
    bool degraded; /* some did: the model's finer expectations are off */
    unsigned classify_depth;
    uint32_t classifies;
    uint64_t bytes;
    struct batch *batches;
    uint32_t nbatches;
    struct ctx_rec ctx[MAX_CTX];
    uint32_t nctx;
    uint8_t scratch[COPY_CAP];
} g;

static WCHAR fuzz_name[] = {'f', 'u', 'z', 'z', 0};

/* Once an allocation was refused, the model's finer expectations (which
 * classify comes next, mid-stream flags, wake-ups) no longer hold. */
static bool model_loose(void)
{
    return g.degraded || (g.faulting && owfp_alloc_failures());
}

/* flow_state before a call: still there when the call filled no result. */
#define RESULT_UNTOUCHED 0x5a5a5a5au

/* While an op runs with allocation failures injected, every call may also
 * answer STATUS_INSUFFICIENT_RESOURCES. */
#undef CHECK_EQ_STATUS
#define CHECK_EQ_STATUS(st, want)                                                             \
    do {                                                                                      \
        int32_t got_ = (st), want_ = (want);                                                  \
        if (got_ != want_ && !(g.faulting && got_ == STATUS_INSUFFICIENT_RESOURCES)) {        \
            fprintf(stderr, "status 0x%08x, want 0x%08x\n", (unsigned)got_, (unsigned)want_); \
            fuzz_fail(__FILE__, __LINE__, #st " == " #want);                                  \
        }                                                                                     \
    } while (0)
#undef CHECK_STATUS
#define CHECK_STATUS(st, ...)                                                                 \
    do {                                                                                      \
        static const int32_t allowed_[] = {__VA_ARGS__};                                      \
        int32_t got_ = (st);                                                                  \
        if (!status_in(got_, allowed_, sizeof(allowed_) / sizeof(allowed_[0])) &&             \
            !(g.faulting && got_ == STATUS_INSUFFICIENT_RESOURCES)) {                         \
            fprintf(stderr, "status 0x%08x not in the documented set\n", (unsigned)got_);    \
            fuzz_fail(__FILE__, __LINE__, "status in {" #__VA_ARGS__ "}");                    \
        }                                                                                     \
    } while (0)

/* FUZZ_TRACE=1 in the environment logs every step (to reproduce a crash). */
static int trace = -1;
#define TRACE(...)                                       \
    do {                                                 \
        if (trace < 0)                                   \
            trace = getenv("FUZZ_TRACE") != NULL;        \
        if (trace)                                       \
            fprintf(stderr, __VA_ARGS__);                \
    } while (0)

/* ---- small helpers ------------------------------------------------------- */

static uint32_t dir_flag(int d)
{
    return d == SEND ? FWPS_STREAM_FLAG_SEND : FWPS_STREAM_FLAG_RECEIVE;
}

static uint32_t disconnect_flag(int d)
{
    return d == SEND ? FWPS_STREAM_FLAG_SEND_DISCONNECT : FWPS_STREAM_FLAG_RECEIVE_DISCONNECT;
}

static bool matches(const struct slot *s, const struct flow_state *fl)
{
    return !s->port_cond || fl->remote_port == 443;
}

static int flow_by_id(UINT64 id)
{
    for (int i = 0; i < MAX_FLOWS; i++)
        if (g.flows[i].flow && g.flows[i].id == id)
            return i;
    return -1;
}

static int slot_by_filter(UINT64 filter_id)
{
    for (uint32_t i = 0; i < g.nslots; i++)
        if (g.slots[i].present && g.slots[i].filter_id == filter_id)
            return (int)i;
    return -1;
}

static int slot_index(const struct slot *s)
{
    return (int)(s - g.slots);
}

/* Live contexts (associated, flowDeleteFn not yet run) of a callout. */
static uint32_t live_contexts(int slot)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < g.nctx; i++)
        n += g.ctx[i].slot == slot && g.ctx[i].deletes == 0;
    return n;
}

static UINT64 new_ctx(int fi, int slot, uint16_t layer)
{
    if (g.nctx == MAX_CTX)
        return 0;
    g.ctx[g.nctx] = (struct ctx_rec){fi, g.flows[fi].gen, slot, layer, false, 0};
    return CTX_BASE + g.nctx++;
}

static struct ctx_rec *ctx_of(UINT64 value)
{
    CHECK(value >= CTX_BASE && value < CTX_BASE + g.nctx);
    return &g.ctx[value - CTX_BASE];
}

static void set_remainder(struct flow_state *fl, int si, int d, uint64_t len)
{
    fl->rem.on = true;
    fl->rem.slot = si;
    fl->rem.dir = d;
    fl->rem.len = len;
}

/* The engine may let held data pass a callout it cannot call (R5, F9): the
 * model stops expecting a held re-indication for it. */
static void forget_waiting(struct slot *s)
{
    for (uint32_t j = 0; j < g.nslots; j++)
        if (g.slots[j].co == s->co)
            for (int fi = 0; fi < MAX_FLOWS; fi++)
                g.slots[j].pf[fi].waiting[0] = g.slots[j].pf[fi].waiting[1] = false;
}

/* ---- injected NBLs --------------------------------------------------------- */

static void free_nbl(struct inj_nbl *x)
{
    if (x->freed)
        return;
    x->freed = true;
    if (x->clone) {
        FwpsFreeCloneNetBufferList0(x->nbl, 0);
    } else {
        FwpsFreeNetBufferList0(x->nbl);
        if (x->mdl)
            NdisFreeMdl(x->mdl);
        free(x->mem);
    }
}

static void NTAPI inject_complete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    (void)dispatchLevel;
    struct batch *b = context;
    /* S26: completions run on the owner thread, in an owfp_stream_* call or
     * owfp_flow_close, never inside a classifyFn, and only for accepted
     * injections. */
    CHECK(g.owner_call);
    CHECK(g.classify_depth == 0);
    CHECK(b->accepted);
    CHECK(nbl->Status == STATUS_SUCCESS || nbl->Status == STATUS_CANCELLED);
    for (uint32_t i = 0; i < b->n; i++) {
        if (b->x[i].nbl != nbl || b->x[i].freed)
            continue;
        b->x[i].done++;
        CHECK(b->x[i].done == 1);
        free_nbl(&b->x[i]);
        return;
    }
    fuzz_fail(__FILE__, __LINE__, "completion for an NBL not in this injection");
}

static struct batch *new_batch(int fi)
{
    if (g.nbatches == MAX_BATCHES)
        return NULL;
    struct batch *b = calloc(1, sizeof(*b));
    CHECK(b);
    b->fi = fi;
    b->gen = g.flows[fi].gen;
    b->next = g.batches;
    g.batches = b;
    g.nbatches++;
    return b;
}

/* False when the NDIS allocations fail (only while allocations are being
 * failed on purpose). */
static bool add_fresh_nbl(struct batch *b, const uint8_t *data, size_t len)
{
    struct inj_nbl *x = &b->x[b->n];
    x->mem = malloc(len ? len : 1);
    CHECK(x->mem);
    if (len)
        memcpy(x->mem, data, len);
    if (len) {
        x->mdl = NdisAllocateMdl(NULL, x->mem, (UINT)len);
        if (!x->mdl) {
            CHECK(g.faulting);
            free(x->mem);
            *x = (struct inj_nbl){0};
            return false;
        }
    }
    NTSTATUS st = FwpsAllocateNetBufferAndNetBufferList0(g.pool, 0, 0, x->mdl, 0, len, &x->nbl);
    if (st != STATUS_SUCCESS) {
        CHECK(g.faulting && st == STATUS_INSUFFICIENT_RESOURCES);
        if (x->mdl)
            NdisFreeMdl(x->mdl);
        free(x->mem);
        *x = (struct inj_nbl){0};
        return false;
    }
    if (b->n)
        NET_BUFFER_LIST_NEXT_NBL(b->x[b->n - 1].nbl) = x->nbl;
    b->n++;
    return true;
}

/* A batch of 1-3 fresh NBLs carrying `len` bytes (plus an empty one). */
static struct batch *fresh_batch(int fi, size_t len, bool two, bool empty, SIZE_T *total)
{
    struct batch *b = new_batch(fi);
    if (!b)
        return NULL;
    uint8_t data[32];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(0xa0 + i);
    if (len > sizeof(data))
        len = sizeof(data);
    size_t first = two && len > 1 ? len / 2 : len;
    bool ok = add_fresh_nbl(b, data, first);
    if (ok && empty)
        ok = add_fresh_nbl(b, NULL, 0);
    if (ok && first < len)
        ok = add_fresh_nbl(b, data + first, len - first);
    if (!ok) {
        for (uint32_t i = 0; i < b->n; i++)
            free_nbl(&b->x[i]);
        return NULL;
    }
    *total = len;
    return b;
}

static void refuse_batch(struct batch *b)
{
    /* On failure the caller keeps its NBLs (S26): free them now; a later
     * completion for them would find b->accepted false. */
    for (uint32_t i = 0; i < b->n; i++)
        free_nbl(&b->x[i]);
}

/* FwpsStreamInjectAsync0 with one argument broken by `variant` (0 = none);
 * checks the status it must give and records what was accepted. */
static NTSTATUS do_inject(int fi, UINT32 callout_id, int d, uint32_t extra_flags,
                          struct batch *b, SIZE_T len, unsigned variant, bool inline_call,
                          const int32_t *loose, size_t nloose)
{
    struct flow_state *fl = &g.flows[fi];
    HANDLE h = g.inj;
    UINT32 flags = 0;
    UINT16 layer = g.layer_id;
    UINT32 sflags = dir_flag(d) | extra_flags;
    FWPS_INJECT_COMPLETE0 fn = inject_complete;
    NTSTATUS want = STATUS_SUCCESS;
    bool strict = true;
    switch (variant) {
    case 1:
        fn = NULL;
        want = STATUS_FWP_NULL_POINTER;
        break;
    case 2:
        flags = 1;
        want = STATUS_FWP_INVALID_PARAMETER;
        break;
    case 3:
        layer = FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4;
        want = STATUS_FWP_INVALID_PARAMETER;
        break;
    case 4:
        sflags |= FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_RECEIVE;
        want = STATUS_FWP_INVALID_PARAMETER;
        break;
    case 5:
        /* DISCONNECT of the other direction only. */
        sflags = dir_flag(d) | disconnect_flag(d ^ 1);
        want = STATUS_FWP_INVALID_PARAMETER;
        break;
    case 6:
        h = (HANDLE)(uintptr_t)0x7fff2345;
        want = STATUS_FWP_INJECT_HANDLE_STALE;
        break;
    case 7:
        h = g.inj_transport; /* not a stream handle */
        want = STATUS_FWP_INJECT_HANDLE_STALE;
        break;
    default:
        strict = inline_call;
        break;
    }
    if (!b && !(sflags & (FWPS_STREAM_FLAG_SEND_DISCONNECT | FWPS_STREAM_FLAG_RECEIVE_DISCONNECT)) &&
        want == STATUS_SUCCESS)
        want = STATUS_FWP_NULL_POINTER;
    NET_BUFFER_LIST *chain = b ? b->x[0].nbl : NULL;
    uint64_t wakes = fl->wakes;
    NTSTATUS st = FwpsStreamInjectAsync0(h, NULL, flags, fl->id, callout_id, layer, sflags, chain,
                                         len, fn, b);
    if (strict || want != STATUS_SUCCESS) {
        CHECK_EQ_STATUS(st, want);
    } else if (!fl->flow) {
        CHECK_EQ_STATUS(st, STATUS_NOT_FOUND); /* closed flow */
    } else if (!status_in(st, loose, nloose) &&
               !(g.faulting && st == STATUS_INSUFFICIENT_RESOURCES)) {
        fprintf(stderr, "FwpsStreamInjectAsync0(callout %u) = 0x%08x\n", (unsigned)callout_id,
                (unsigned)st);
        fuzz_fail(__FILE__, __LINE__, "out-of-band injection status in the documented set");
    }
    if (st == STATUS_SUCCESS) {
        if (b)
            b->accepted = true;
        fl->injected_since[d] += len;
        fl->injected_total[d] += len;
        if (!inline_call && !model_loose())
            CHECK(fl->wakes > wakes); /* the wake-up function ran */
    } else if (b) {
        refuse_batch(b);
    }
    return st;
}

/* ---- callouts -------------------------------------------------------------- */

static void NTAPI flow_delete(UINT16 layerId, UINT32 calloutId, UINT64 flowContext)
{
    struct ctx_rec *c = ctx_of(flowContext);
    CHECK(c->deletes == 0); /* F7: exactly once */
    CHECK(c->layer == layerId);
    CHECK(g.slots[c->slot].co->callout_id == calloutId);
    CHECK(g.slots[c->slot].co->registered); /* R8 */
    c->deletes++;
}

static void keep_clone(int fi, int si, int d, FWPS_STREAM_DATA0 *sd, bool fin)
{
    struct flow_state *fl = &g.flows[fi];
    if (sd->dataLength > CLONE_CAP || fl->nclones >= MAX_CLONES)
        return;
    NET_BUFFER_LIST *nbl = NULL;
    NTSTATUS st = FwpsCloneStreamData0(sd, NULL, NULL, 0, &nbl);
    CHECK_EQ_STATUS(st, STATUS_SUCCESS);
    if (st != STATUS_SUCCESS)
        return;
    CHECK(nbl);
    /* S30: exactly the indicated range. */
    CHECK(NET_BUFFER_DATA_LENGTH(NET_BUFFER_LIST_FIRST_NB(nbl)) == sd->dataLength);
    struct clone_rec *c = calloc(1, sizeof(*c));
    CHECK(c);
    *c = (struct clone_rec){NULL, nbl, sd->dataLength, d, si, fin};
    if (fl->clones_tail)
        fl->clones_tail->next = c;
    else
        fl->clones = c;
    fl->clones_tail = c;
    fl->nclones++;
}

static void inline_injection(int fi, int si, int d, FWPS_STREAM_DATA0 *sd, uint8_t x)
{
    struct slot *s = &g.slots[si];
    int kind = x & 3;
    if (kind == 3) {
        keep_clone(fi, si, d, sd, sd->flags & disconnect_flag(d));
        return;
    }
    int id = kind == 2 ? d ^ 1 : d;
    int payload = (x >> 2) & 3;
    static const unsigned variants[8] = {0, 0, 0, 0, 1, 3, 4, 6};
    unsigned variant = variants[(x >> 4) & 7];
    struct batch *b = NULL;
    SIZE_T len = 0;
    uint32_t extra = 0;
    if (payload == 1 && sd->dataLength <= CLONE_CAP) {
        NET_BUFFER_LIST *nbl = NULL;
        NTSTATUS st = FwpsCloneStreamData0(sd, NULL, NULL, 0, &nbl);
        CHECK_EQ_STATUS(st, STATUS_SUCCESS);
        if (st != STATUS_SUCCESS)
            return;
        b = new_batch(fi);
        if (!b) {
            FwpsFreeCloneNetBufferList0(nbl, 0);
            return;
        }
        b->x[0] = (struct inj_nbl){nbl, NULL, NULL, true, false, 0};
        b->n = 1;
        len = sd->dataLength;
    } else if (payload == 2) {
        extra = disconnect_flag(id); /* pure FIN: no NBL, no completion */
    } else {
        b = fresh_batch(fi, 1 + (x >> 4), x & 0x10, x & 0x20, &len);
        if (!b)
            return;
        if (payload == 3)
            extra = disconnect_flag(id);
    }
    do_inject(fi, s->co->callout_id, id, extra, b, len, variant, true, NULL, 0);
}

/* Something a callout may do besides injecting (x & 0x80). */
static void misc_op(int fi, int si, uint8_t c)
{
    struct slot *s = &g.slots[si];
    struct per_flow *pf = &s->co->pf[fi]; /* contexts are the callout's */
    struct flow_state *fl = &g.flows[fi];
    switch (c & 7) {
    case 0: { /* F6: inside the flow's classify the delete is deferred */
        NTSTATUS st = FwpsFlowRemoveContext0(fl->id, g.layer_id, s->co->callout_id);
        if (pf->ctx) {
            CHECK_EQ_STATUS(st, STATUS_PENDING);
            ctx_of(pf->ctx)->removed = true;
            pf->ctx = 0;
            forget_waiting(s);
        } else {
            CHECK_EQ_STATUS(st, STATUS_UNSUCCESSFUL);
        }
        break;
    }
    case 1: { /* F4 */
        UINT64 v = new_ctx(fi, slot_index(s->co), g.layer_id);
        if (!v)
            break;
        NTSTATUS st = FwpsFlowAssociateContext0(fl->id, g.layer_id, s->co->callout_id, v);
        NTSTATUS want = !s->co->has_delete_fn ? STATUS_INVALID_PARAMETER
                        : s->co->draining     ? STATUS_INVALID_DEVICE_STATE
                        : pf->ctx         ? STATUS_OBJECT_NAME_EXISTS
                                          : STATUS_SUCCESS;
        CHECK_EQ_STATUS(st, want);
        if (st == STATUS_SUCCESS)
            pf->ctx = v;
        else
            g.nctx--; /* never associated */
        break;
    }
    case 2: /* F10 */
        CHECK_EQ_STATUS(FwpsFlowAbort0(fl->id), STATUS_SUCCESS);
        fl->abort_in_op = true;
        break;
    case 3: /* S19: never from inside a classifyFn */
        CHECK_EQ_STATUS(FwpsStreamContinue0(fl->id, s->co->callout_id, g.layer_id, dir_flag(RECV)),
                        STATUS_INVALID_DEVICE_STATE);
        break;
    case 4: /* PASSIVE-only functions are refused inside a callout */
        CHECK_EQ_STATUS(FwpmFilterDeleteById0(g.session, s->filter_id), STATUS_INVALID_DEVICE_STATE);
        CHECK_EQ_STATUS(FwpsCalloutUnregisterById0(s->co->callout_id), STATUS_INVALID_DEVICE_STATE);
        CHECK_EQ_STATUS(FwpsInjectionHandleDestroy0(g.inj), STATUS_INVALID_DEVICE_STATE);
        break;
    case 5: { /* injection naming another callout: out-of-band (inbox) */
        uint32_t j = (uint32_t)(si + 1 + (c >> 3)) % g.nslots;
        if (g.slots[j].co == s->co)
            break; /* the same callout: that would be inline */
        SIZE_T len;
        struct batch *b = fresh_batch(fi, 1 + (c >> 4), false, false, &len);
        if (!b)
            break;
        static const int32_t ok[] = {STATUS_SUCCESS, STATUS_INVALID_PARAMETER};
        if (!g.slots[j].callout) {
            /* calloutId 0 names no callout (R3): never on the path. */
            do_inject(fi, 0, (c >> 3) & 1, 0, b, len, 0, false,
                      (const int32_t[]){STATUS_INVALID_PARAMETER}, 1);
        } else {
            do_inject(fi, g.slots[j].co->callout_id, (c >> 3) & 1, 0, b, len, 0, false, ok, 2);
        }
        break;
    }
    case 6: { /* S30 argument checks */
        NET_BUFFER_LIST *nbl = NULL;
        FWPS_STREAM_DATA0 dummy;
        memset(&dummy, 0, sizeof(dummy));
        CHECK_EQ_STATUS(FwpsCloneStreamData0(&dummy, NULL, NULL, 1, &nbl),
                        STATUS_INVALID_PARAMETER);
        CHECK_EQ_STATUS(FwpsCloneStreamData0(NULL, NULL, NULL, 0, &nbl), STATUS_FWP_NULL_POINTER);
        CHECK(nbl == NULL);
        break;
    }
    default: { /* the other flow's context, removed synchronously (F6) */
        int other = fi ^ 1;
        struct flow_state *ofl = &g.flows[other];
        if (!ofl->flow)
            break;
        struct per_flow *opf = &s->co->pf[other];
        NTSTATUS st = FwpsFlowRemoveContext0(ofl->id, g.layer_id, s->co->callout_id);
        if (opf->ctx) {
            CHECK_EQ_STATUS(st, STATUS_SUCCESS);
            struct ctx_rec *r = ctx_of(opf->ctx);
            CHECK(r->deletes == 1); /* flowDeleteFn ran before the return */
            r->removed = true;
            opf->ctx = 0;
        } else {
            CHECK_EQ_STATUS(st, STATUS_UNSUCCESSFUL);
        }
        break;
    }
    }
}

static void classify_common(const FWPS_INCOMING_VALUES0 *in,
                            const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                            const FWPS_FILTER0 *filter, UINT64 flowContext,
                            FWPS_CLASSIFY_OUT0 *out)
{
    CHECK(in && meta && layerData && filter && out);
    CHECK(in->layerId == g.layer_id);
    CHECK(in->valueCount == FWPS_FIELD_STREAM_V4_MAX);
    CHECK((meta->currentMetadataValues & FWPS_METADATA_FIELD_FLOW_HANDLE) &&
          (meta->currentMetadataValues & FWPS_METADATA_FIELD_COMPARTMENT_ID));
    CHECK(in->incomingValue[FWPS_FIELD_STREAM_V4_DIRECTION].value.uint32 ==
          (g.direction == OWFP_INBOUND ? FWP_DIRECTION_INBOUND : FWP_DIRECTION_OUTBOUND));
    int fi = flow_by_id(meta->flowHandle);
    CHECK(fi >= 0);
    struct flow_state *fl = &g.flows[fi];
    int si = slot_by_filter(filter->filterId);
    CHECK(si >= 0); /* a deleted filter is never classified again (Q21) */
    struct slot *s = &g.slots[si];
    struct per_flow *pf = &s->pf[fi];
    CHECK(s->callout && s->co->registered); /* R5, R8 */
    CHECK(filter->action.calloutId == s->co->callout_id);
    CHECK(matches(s, fl));
    CHECK(!fl->in_classify); /* S12 */
    fl->in_classify = true;
    g.classify_depth++;

    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    FWPS_STREAM_DATA0 *sd = io->streamData;
    CHECK(sd);
    /* S6, C3, Q11 */
    CHECK(io->countBytesRequired == 0 && io->countBytesEnforced == 0 &&
          io->streamAction == FWPS_STREAM_ACTION_NONE);
    CHECK(out->actionType == 0 && out->rights == FWPS_RIGHT_ACTION_WRITE);
    CHECK(out->filterId == filter->filterId);
    const UINT32 limit_flags = FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA |
                               FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED;
    UINT32 entry_flags = out->flags;
    CHECK((entry_flags & ~limit_flags) == 0);
    UINT32 f = sd->flags;
    bool recv = f & FWPS_STREAM_FLAG_RECEIVE, send = f & FWPS_STREAM_FLAG_SEND;
    CHECK(recv != send); /* exactly one direction (S5) */
    int d = recv ? RECV : SEND;
    CHECK(d == RECV ? !(f & 0xffff0000u) : !(f & 0x0000ffffu));
    bool abort_ind = f & (FWPS_STREAM_FLAG_RECEIVE_ABORT | FWPS_STREAM_FLAG_SEND_ABORT);
    bool fin_ind = f & (FWPS_STREAM_FLAG_RECEIVE_DISCONNECT | FWPS_STREAM_FLAG_SEND_DISCONNECT);
    size_t len = sd->dataLength;
    CHECK(!(abort_ind && fin_ind));
    CHECK(!(abort_ind || fin_ind) || len == 0); /* S8, S10 */
    CHECK(!(abort_ind || fin_ind) || (entry_flags & FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA));
    CHECK(abort_ind || fin_ind || len > 0); /* S13 */
    /* S5, S31: the chain describes dataLength bytes from dataOffset. */
    SIZE_T want = len < COPY_CAP ? len : COPY_CAP, got = (SIZE_T)-1;
    FwpsCopyStreamDataToBuffer0(sd, g.scratch, want, &got);
    CHECK(got == want);
    /* F5, F9 */
    CHECK(flowContext == s->co->pf[fi].ctx);
    CHECK(!(s->co->cflags & FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW) || flowContext);
    /* S32 */
    bool mid = meta->flags & FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION;
    if (!model_loose()) {
        CHECK(!pf->mid_join || (s->co->cflags & FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION));
        CHECK(mid == (pf->mid_join && !pf->seen));
    }
    pf->seen = true;
    CHECK(!pf->allowed);                     /* S20 */
    CHECK(abort_ind || !pf->deferred[d]);    /* S19 */
    if (fl->rem.on && !model_loose()) {         /* S16 */
        CHECK(fl->rem.slot == si && fl->rem.dir == d && fl->rem.len == len && !fin_ind &&
              !abort_ind);
        fl->rem.on = false;
    }
    if (pf->waiting[d] && !abort_ind && !model_loose()) { /* S17 */
        CHECK(!fin_ind && len >= pf->wait_len[d]);
        CHECK((entry_flags & limit_flags) ||
              (len > pf->wait_len[d] && len >= pf->wait_req[d]));
    }
    pf->waiting[d] = false;

    /* The answer. */
    struct tape *t = &g.b;
    bool capped = ++g.classifies > MAX_CLASSIFIES;
    uint8_t a0 = capped ? 0 : t8(t);
    uint32_t action;
    switch (a0 & 7) {
    case 2: action = FWPS_STREAM_ACTION_NEED_MORE_DATA; break;
    case 3: action = FWPS_STREAM_ACTION_DEFER; break;
    case 4: action = FWPS_STREAM_ACTION_ALLOW_CONNECTION; break;
    case 5: action = FWPS_STREAM_ACTION_DROP_CONNECTION; break;
    case 6: action = FWPS_STREAM_ACTION_TYPE_MAX + t8(t); break; /* S21 */
    default: action = FWPS_STREAM_ACTION_NONE; break;
    }
    uint32_t atype;
    switch ((a0 >> 3) & 3) {
    case 0: atype = FWP_ACTION_PERMIT; break;
    case 1: atype = FWP_ACTION_BLOCK; break;
    case 2: atype = FWP_ACTION_CONTINUE; break;
    default: atype = t8(t); break; /* A9: whatever the callout wrote */
    }
    SIZE_T enforced = 0;
    if (a0 & 0x20) {
        uint8_t e = t8(t);
        enforced = e == 0xff ? len + 1 + t8(t) : e ? (SIZE_T)((len * e) / 255) : 0;
        if (e && e != 0xff && !enforced)
            enforced = 1;
    }
    if (a0 & 0x40) {
        uint8_t x = t8(t);
        if (x & 3)
            inline_injection(fi, si, d, sd, x);
        if (x & 0x80)
            misc_op(fi, si, t8(t));
    }
    UINT32 required = 0;
    if (a0 & 0x80) {
        uint8_t r = t8(t);
        required = r < 0x80   ? (UINT32)len + r
                   : r == 0xff ? (9u << 20)
                               : (UINT32)(r - 0x80) * 65536u;
    }
    TRACE("  classify flow %d slot %d dir %d len %zu flags 0x%x out 0x%x ctx %llu -> action %u "
          "type 0x%x enforced %zu required %u\n",
          fi, si, d, len, (unsigned)f, (unsigned)entry_flags, (unsigned long long)flowContext,
          action, atype, (size_t)enforced, (unsigned)required);
    io->streamAction = (FWPS_STREAM_ACTION_TYPE)action;
    io->countBytesEnforced = enforced;
    io->countBytesRequired = required;
    out->actionType = atype;
    if (atype == FWP_ACTION_BLOCK)
        out->rights &= ~FWPS_RIGHT_ACTION_WRITE;

    /* What the engine must make of it. */
    if (!abort_ind) {
        uint32_t eff = action >= FWPS_STREAM_ACTION_TYPE_MAX ? FWPS_STREAM_ACTION_DROP_CONNECTION
                                                             : action;
        if (eff == FWPS_STREAM_ACTION_DROP_CONNECTION && s->action == FWP_ACTION_CALLOUT_INSPECTION)
            eff = FWPS_STREAM_ACTION_NONE; /* S18 */
        switch (eff) {
        case FWPS_STREAM_ACTION_NONE: {
            size_t e = enforced == 0 || enforced > len ? len : enforced; /* S15 */
            bool passed_over =
                (s->co->cflags & FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW) && !s->co->pf[fi].ctx;
            if (!fin_ind && e < len && !passed_over)
                set_remainder(fl, si, d, len - e);
            break;
        }
        case FWPS_STREAM_ACTION_NEED_MORE_DATA:
            if ((entry_flags & limit_flags) || fin_ind) {
                fl->expect_drop = true; /* Q16 */
            } else {
                pf->waiting[d] = true;
                pf->wait_len[d] = len;
                pf->wait_req[d] = required;
            }
            break;
        case FWPS_STREAM_ACTION_DEFER:
            pf->deferred[d] = true;
            break;
        case FWPS_STREAM_ACTION_ALLOW_CONNECTION:
            /* S20: the callout is not classified again for the flow, at
             * any of its filters. */
            for (uint32_t j = 0; j < g.nslots; j++) {
                if (g.slots[j].co != s->co || !g.slots[j].present)
                    continue;
                struct per_flow *o = &g.slots[j].pf[fi];
                o->allowed = true;
                /* What they deferred or held passes on. */
                o->deferred[0] = o->deferred[1] = false;
                o->waiting[0] = o->waiting[1] = false;
            }
            break;
        default:
            fl->expect_drop = true;
            break;
        }
    }
    g.classify_depth--;
    fl->in_classify = false;
}

static void NTAPI classify0(const FWPS_INCOMING_VALUES0 *in,
                            const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                            const FWPS_FILTER0 *filter, UINT64 flowContext,
                            FWPS_CLASSIFY_OUT0 *out)
{
    classify_common(in, meta, layerData, filter, flowContext, out);
}

#define CLASSIFY_N(n)                                                                           \
    static void NTAPI classify##n(const FWPS_INCOMING_VALUES0 *in,                              \
                                  const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData, \
                                  const void *classifyContext, const FWPS_FILTER##n *filter,   \
                                  UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)                 \
    {                                                                                           \
        (void)classifyContext;                                                                  \
        classify_common(in, meta, layerData, (const FWPS_FILTER0 *)filter, flowContext, out);   \
    }                                                                                           \
    static NTSTATUS NTAPI notify##n(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,            \
                                    FWPS_FILTER##n *filter)                                     \
    {                                                                                           \
        (void)type;                                                                             \
        (void)key;                                                                              \
        (void)filter;                                                                           \
        return STATUS_SUCCESS;                                                                  \
    }
CLASSIFY_N(1)
CLASSIFY_N(2)
CLASSIFY_N(3)

static NTSTATUS NTAPI notify0(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key, FWPS_FILTER0 *filter)
{
    (void)type;
    (void)key;
    (void)filter;
    return STATUS_SUCCESS;
}

static const uint32_t version_flags[4] = {0x3, 0x1f, 0xff, 0x7ff};

static void register_slot(struct slot *s)
{
    FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 del = s->co->has_delete_fn ? flow_delete : NULL;
    UINT32 id = 0;
    NTSTATUS st;
    switch (s->co->version) {
    case 0: {
        FWPS_CALLOUT0 c = {s->co->ckey, s->co->cflags, classify0, notify0, del};
        st = FwpsCalloutRegister0(NULL, &c, &id);
        break;
    }
    case 1: {
        FWPS_CALLOUT1 c = {s->co->ckey, s->co->cflags, classify1, notify1, del};
        st = FwpsCalloutRegister1(NULL, &c, &id);
        break;
    }
    case 2: {
        FWPS_CALLOUT2 c = {s->co->ckey, s->co->cflags, classify2, notify2, del};
        st = FwpsCalloutRegister2(NULL, &c, &id);
        break;
    }
    default: {
        FWPS_CALLOUT3 c = {s->co->ckey, s->co->cflags, classify3, notify3, del};
        st = FwpsCalloutRegister3(NULL, &c, &id);
        break;
    }
    }
    if (s->co->cflags & ~version_flags[s->co->version]) {
        CHECK_EQ_STATUS(st, STATUS_FWP_INVALID_FLAGS); /* R1 */
        return;
    }
    CHECK_EQ_STATUS(st, STATUS_SUCCESS);
    if (st != STATUS_SUCCESS)
        return;
    CHECK(id == s->co->callout_id); /* R3: the id is a function of the key */
    s->co->registered = true;
}

/* ---- the data plane ---------------------------------------------------------- */

static void NTAPI wakeup(void *arg, owfp_flow *flow)
{
    struct flow_state *fl = &g.flows[(uintptr_t)arg];
    CHECK(fl->flow == flow);
    fl->wakes++;
}

static uint32_t nfilter_adds;

static void add_filter(uint32_t i)
{
    struct slot *s = &g.slots[i];
    FWPM_FILTER_CONDITION0 cond;
    memset(&cond, 0, sizeof(cond));
    cond.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    cond.matchType = FWP_MATCH_EQUAL;
    cond.conditionValue.type = FWP_UINT16;
    cond.conditionValue.uint16 = 443;
    FWPM_FILTER0 f;
    memset(&f, 0, sizeof(f));
    f.filterKey = fuzz_guid(0x3000 + nfilter_adds++);
    f.displayData.name = fuzz_name;
    f.layerKey = *g.layer_key;
    f.subLayerKey = g.subkeys[s->sub];
    UINT64 w = s->weight;
    f.weight.type = FWP_UINT64;
    f.weight.uint64 = &w;
    f.flags = s->fflags;
    f.action.type = s->action;
    if (s->callout)
        f.action.calloutKey = s->co->ckey;
    if (s->port_cond) {
        f.numFilterConditions = 1;
        f.filterCondition = &cond;
    }
    UINT64 id = 0;
    NTSTATUS st = FwpmFilterAdd0(g.session, &f, NULL, &id);
    CHECK_EQ_STATUS(st, STATUS_SUCCESS);
    if (st != STATUS_SUCCESS)
        return;
    s->present = true;
    s->filter_id = id;
    s->adds++;
    for (int fi = 0; fi < MAX_FLOWS; fi++) {
        struct per_flow *pf = &s->pf[fi];
        UINT64 ctx = pf->ctx, ctx2 = pf->ctx2;
        *pf = (struct per_flow){0};
        pf->ctx = ctx; /* contexts belong to the callout, not the filter */
        pf->ctx2 = ctx2;
        pf->mid_join = g.flows[fi].flow && g.flows[fi].path_built;
    }
}

static void setup(void)
{
    struct tape *t = &g.a;
    uint8_t s0 = t8(t);
    g.v6 = s0 & 1;
    g.direction = s0 & 2 ? OWFP_INBOUND : OWFP_OUTBOUND;
    g.nsub = 1 + ((s0 >> 2) & 3);
    if (g.nsub > MAX_SUBLAYERS)
        g.nsub = MAX_SUBLAYERS;
    g.nslots = 1 + ((s0 >> 4) & 3);
    g.layer_id = g.v6 ? FWPS_LAYER_STREAM_V6 : FWPS_LAYER_STREAM_V4;
    g.layer_key = g.v6 ? &FWPM_LAYER_STREAM_V6 : &FWPM_LAYER_STREAM_V4;

    CHECK_EQ_STATUS(owfp_engine_create(NULL, &g.engine), STATUS_SUCCESS);
    CHECK_EQ_STATUS(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &g.session),
                    STATUS_SUCCESS);
    NET_BUFFER_LIST_POOL_PARAMETERS pp;
    memset(&pp, 0, sizeof(pp));
    pp.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    pp.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    pp.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    pp.fAllocateNetBuffer = TRUE;
    g.pool = NdisAllocateNetBufferListPool(NULL, &pp);
    CHECK(g.pool);
    /* S26 handle creation, good and bad. */
    HANDLE h;
    CHECK_EQ_STATUS(FwpsInjectionHandleCreate0(99, FWPS_INJECTION_TYPE_STREAM, &h),
                    STATUS_INVALID_PARAMETER);
    CHECK_EQ_STATUS(FwpsInjectionHandleCreate0(AF_UNSPEC, 0, &h), STATUS_INVALID_PARAMETER);
    CHECK_EQ_STATUS(FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, NULL),
                    STATUS_FWP_NULL_POINTER);
    ADDRESS_FAMILY af = s0 & 0x80 ? (g.v6 ? AF_INET6 : AF_INET) : AF_UNSPEC;
    CHECK_EQ_STATUS(FwpsInjectionHandleCreate0(af, FWPS_INJECTION_TYPE_STREAM, &g.inj),
                    STATUS_SUCCESS);
    CHECK_EQ_STATUS(FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_TRANSPORT,
                                               &g.inj_transport),
                    STATUS_SUCCESS);

    for (uint32_t i = 0; i < g.nsub; i++) {
        FWPM_SUBLAYER0 sl;
        memset(&sl, 0, sizeof(sl));
        sl.subLayerKey = fuzz_guid(0x1000 + i);
        sl.displayData.name = fuzz_name;
        sl.weight = (UINT16)(t8(t) << 8 | i);
        CHECK_EQ_STATUS(FwpmSubLayerAdd0(g.session, &sl, NULL), STATUS_SUCCESS);
        g.subkeys[i] = sl.subLayerKey;
    }
    static const uint32_t actions[8] = {
        FWP_ACTION_CALLOUT_TERMINATING, FWP_ACTION_CALLOUT_INSPECTION, FWP_ACTION_CALLOUT_UNKNOWN,
        FWP_ACTION_PERMIT,              FWP_ACTION_BLOCK,              FWP_ACTION_CONTINUE,
        FWP_ACTION_CALLOUT_TERMINATING, FWP_ACTION_CALLOUT_UNKNOWN,
    };
    for (uint32_t i = 0; i < g.nslots; i++) {
        struct slot *s = &g.slots[i];
        uint8_t f0 = t8(t), f1 = t8(t), f2 = t8(t);
        s->co = s;
        s->kind = (enum fkind)(f0 & 7);
        s->action = actions[s->kind];
        s->callout = s->action & FWP_ACTION_FLAG_CALLOUT;
        s->sub = (uint8_t)(((f0 >> 3) & 3) % g.nsub);
        if ((f0 & 0x20) && s->callout && s->action != FWP_ACTION_CALLOUT_INSPECTION)
            s->fflags = FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED;
        s->port_cond = f0 & 0x40;
        s->co->has_delete_fn = !(f0 & 0x80);
        s->weight = f1;
        s->co->cflags = (f2 & 1 ? FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW : 0) |
                    (f2 & 2 ? FWP_CALLOUT_FLAG_ALLOW_OFFLOAD : 0) |
                    (f2 & 4 ? FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION : 0);
        s->co->version = (f2 >> 3) & 3;
        s->co->ckey = fuzz_guid(0x2000 + i);
        uint32_t share = (f2 >> 5) & 3;
        if (s->callout && share && share - 1 < i && g.slots[share - 1].callout)
            s->co = g.slots[share - 1].co; /* two filters naming one callout */
        if (s->callout && s->co == s) {
            FWPM_CALLOUT0 c;
            memset(&c, 0, sizeof(c));
            c.calloutKey = s->co->ckey;
            c.displayData.name = fuzz_name;
            c.applicableLayer = *g.layer_key;
            CHECK_EQ_STATUS(FwpmCalloutAdd0(g.session, &c, NULL, &s->co->callout_id), STATUS_SUCCESS);
            CHECK(s->co->callout_id != 0);
            if (s->kind != FK_TERM_UNREG && s->kind != FK_UNKNOWN_UNREG)
                register_slot(s);
        }
        add_filter(i);
        TRACE("slot %u: kind %d sub %u (weight 0x%x) weight %llu callout of slot %d id %u flags 0x%x "
              "registered %d filter %llu\n",
              i, (int)s->kind, s->sub, (unsigned)(g.subkeys[s->sub].Data1), (unsigned long long)s->weight,
              slot_index(s->co), (unsigned)s->co->callout_id, (unsigned)s->co->cflags,
              s->co->registered, (unsigned long long)s->filter_id);
    }
}

static void open_flow(int fi)
{
    struct flow_state *fl = &g.flows[fi];
    uint32_t gen = fl->gen + 1;
    *fl = (struct flow_state){0};
    fl->gen = gen;
    struct owfp_flow_params p;
    memset(&p, 0, sizeof(p));
    p.ip_version = g.v6 ? 6 : 4;
    p.protocol = 6;
    p.direction = g.direction;
    if (g.v6) {
        p.local_addr[0] = p.remote_addr[0] = 0x20;
        p.local_addr[1] = p.remote_addr[1] = 0x01;
        p.local_addr[15] = 1;
        p.remote_addr[15] = 2;
    } else {
        memcpy(p.local_addr, (uint8_t[]){10, 0, 0, 1}, 4);
        memcpy(p.remote_addr, (uint8_t[]){10, 0, 0, 2}, 4);
    }
    p.local_port = (uint16_t)(40000 + fi);
    p.remote_port = fi == 1 && (g.a.n && (g.a.p[0] & 0x40)) ? 80 : 443;
    p.compartment_id = 1;
    enum owfp_flow_verdict v = OWFP_FLOW_BLOCKED;
    NTSTATUS st = owfp_flow_open(g.engine, &p, &fl->flow, &v);
    CHECK_EQ_STATUS(st, STATUS_SUCCESS);
    if (st != STATUS_SUCCESS) {
        CHECK(!fl->flow);
        return;
    }
    CHECK(v == OWFP_FLOW_PERMITTED); /* no ALE filters: A11 */
    fl->id = owfp_flow_id(fl->flow);
    fl->remote_port = p.remote_port;
    CHECK_EQ_STATUS(owfp_flow_set_wakeup(fl->flow, wakeup, (void *)(uintptr_t)fi),
                    STATUS_SUCCESS);
    for (uint32_t i = 0; i < g.nslots; i++) {
        g.slots[i].pf[fi] = (struct per_flow){0};
    }
}

static void discard_clones(struct flow_state *fl)
{
    while (fl->clones) {
        struct clone_rec *c = fl->clones;
        fl->clones = c->next;
        FwpsDiscardClonedStreamData0(c->nbl, 0, FALSE);
        free(c);
    }
    fl->clones_tail = NULL;
    fl->nclones = 0;
}

static void close_flow(int fi)
{
    struct flow_state *fl = &g.flows[fi];
    free(fl->buf);
    fl->buf = NULL;
    discard_clones(fl);
    g.owner_call = true;
    owfp_flow_close(fl->flow);
    g.owner_call = false;
    fl->flow = NULL;
    /* S26 / E3: every accepted injection of the flow completed, once. */
    for (struct batch *b = g.batches; b; b = b->next)
        if (b->fi == fi && b->gen == fl->gen && b->accepted)
            for (uint32_t i = 0; i < b->n; i++)
                CHECK(b->x[i].done == 1);
    /* F7: every context of the flow got its flowDeleteFn, once. */
    for (uint32_t i = 0; i < g.nctx; i++)
        if (g.ctx[i].fi == fi && g.ctx[i].gen == fl->gen)
            CHECK(g.ctx[i].deletes == 1);
    for (uint32_t i = 0; i < g.nslots; i++) {
        g.slots[i].pf[fi].ctx = 0;
        g.slots[i].pf[fi].ctx2 = 0;
    }
    CHECK(!fl->in_classify);
}

static volatile uint8_t sink;

static void check_result(int fi, const struct owfp_stream_result *r, size_t len)
{
    struct flow_state *fl = &g.flows[fi];
    bool dropped = r->flow_state & OWFP_FLOW_DROPPED;
    for (int d = 0; d < 2; d++) {
        const struct owfp_stream_output *o = &r->dir[d];
        TRACE("  result dir %d: %zu spans %llu bytes state 0x%x held %llu flow_state 0x%x\n", d,
              o->nspans, (unsigned long long)o->bytes, (unsigned)o->state,
              (unsigned long long)o->held_bytes, (unsigned)r->flow_state);
        uint64_t sum = 0;
        uint8_t x = 0;
        CHECK(o->nspans == 0 || o->spans);
        for (size_t i = 0; i < o->nspans; i++) {
            const struct owfp_span *sp = &o->spans[i];
            CHECK(sp->len > 0 && sp->data);
            CHECK(sp->origin == OWFP_SPAN_ORIGINAL || sp->origin == OWFP_SPAN_INJECTED);
            /* Reading every byte: ASan reports a span into freed memory. */
            for (size_t k = 0; k < sp->len; k += (sp->len > 4096 ? 61 : 1))
                x ^= sp->data[k];
            x ^= sp->data[sp->len - 1];
            sum += sp->len;
        }
        sink ^= x;
        CHECK(sum == o->bytes);
        /* Held data grows only by what this call accepted (refused at
         * 16 MiB, STATUS_DEVICE_BUSY) and what callouts injected. */
        uint64_t before = fl->last_held[d] > BACKLOG ? fl->last_held[d] : BACKLOG;
        CHECK(o->held_bytes <= before + len + fl->injected_since[d]);
        CHECK(o->held_bytes <= BACKLOG + fl->max_len + fl->injected_total[d]);
        CHECK(!o->held_bytes || (o->state & OWFP_DIR_HELD));
        CHECK(!!(o->state & OWFP_DIR_CLOSED) == fl->closed[d]);
        if (dropped) /* S18, S10: nothing delivered, nothing held */
            CHECK(o->nspans == 0 && o->held_bytes == 0 &&
                  !(o->state & (OWFP_DIR_HELD | OWFP_DIR_DEFERRED)));
        /* O1/O4: set once nothing is held; it stays set (the data plane
         * may bypass the engine from then on). */
        if ((r->flow_state & OWFP_FLOW_OFFLOADABLE) && !fl->offloadable)
            CHECK(dropped || o->held_bytes == 0);
        fl->last_held[d] = o->held_bytes;
    }
    if (fl->offloadable)
        CHECK(r->flow_state & OWFP_FLOW_OFFLOADABLE);
    fl->offloadable = r->flow_state & OWFP_FLOW_OFFLOADABLE;
    if (fl->dropped || fl->expect_drop || fl->abort_called)
        CHECK(dropped);
    if (dropped) {
        fl->dropped = true;
        for (uint32_t i = 0; i < g.nslots; i++) {
            struct per_flow *pf = &g.slots[i].pf[fi];
            pf->deferred[0] = pf->deferred[1] = false;
            pf->waiting[0] = pf->waiting[1] = false;
        }
    }
}

/* After every owfp_stream_* call on flow fi. */
static void after_call(int fi, NTSTATUS st, const struct owfp_stream_result *r, size_t len)
{
    TRACE("  status 0x%08x\n", (unsigned)st);
    struct flow_state *fl = &g.flows[fi];
    CHECK(!fl->rem.on || model_loose()); /* S16: the remainder came at once */
    fl->rem.on = false;
    /* A result is filled unless the call failed before it began its work
     * (the sentinel is still there). */
    if (r->flow_state != RESULT_UNTOUCHED)
        check_result(fi, r, len);
    fl->expect_drop = false;
    if (fl->abort_in_op) {
        fl->abort_in_op = false;
        fl->abort_called = true;
        CHECK(owfp_flow_aborted(fl->flow));
    }
    fl->path_built = true;
    for (int d = 0; d < 2; d++)
        fl->injected_since[d] = 0;
    for (uint32_t i = 0; i < g.nslots; i++) {
        struct per_flow *pf = &g.slots[i].pf[fi];
        pf->continue_pending[0] = pf->continue_pending[1] = false;
        pf->deleted_since = false;
    }
    /* F6: a delete deferred by a classify ran when it returned. */
    for (uint32_t i = 0; i < g.nctx; i++)
        if (g.ctx[i].removed)
            CHECK(g.ctx[i].deletes == 1);
}

static void before_call(struct flow_state *fl)
{
    /* The data plane may release its buffer once it calls again. */
    free(fl->buf);
    fl->buf = NULL;
}

static void op_indicate(int fi, int d, size_t len, uint32_t mods)
{
    struct flow_state *fl = &g.flows[fi];
    if (g.bytes + len > MAX_INPUT_BYTES)
        len = MAX_INPUT_BYTES - g.bytes;
    if (!len)
        return;
    g.bytes += len;
    before_call(fl);
    uint8_t *buf = malloc(len);
    CHECK(buf);
    if (len > 4096)
        memset(buf, 0x5a + d, len);
    else
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)(i * 7 + (size_t)d);
    struct owfp_stream_result r;
    r.flow_state = RESULT_UNTOUCHED;
    uint64_t could_be_busy = fl->last_held[d] + fl->injected_since[d];
    g.owner_call = true;
    NTSTATUS st = owfp_stream_indicate(fl->flow, (enum owfp_stream_direction)d, buf, len, mods, &r);
    g.owner_call = false;
    fl->buf = buf;
    if (fl->closed[d]) {
        CHECK_EQ_STATUS(st, STATUS_INVALID_DEVICE_STATE);
    } else if (st == STATUS_DEVICE_BUSY) {
        CHECK(could_be_busy >= BACKLOG);
    } else {
        CHECK_EQ_STATUS(st, STATUS_SUCCESS);
    }
    if (st == STATUS_SUCCESS && len > fl->max_len)
        fl->max_len = len;
    after_call(fi, st, &r, st == STATUS_SUCCESS ? len : 0);
}

static void op_fin(int fi, int d)
{
    struct flow_state *fl = &g.flows[fi];
    before_call(fl);
    struct owfp_stream_result r;
    r.flow_state = RESULT_UNTOUCHED;
    g.owner_call = true;
    NTSTATUS st = owfp_stream_fin(fl->flow, (enum owfp_stream_direction)d, &r);
    g.owner_call = false;
    CHECK_EQ_STATUS(st, fl->closed[d] ? STATUS_INVALID_DEVICE_STATE : STATUS_SUCCESS);
    /* A FIN that could not be taken leaves the direction open (the data
     * plane sends it again); one taken and then lost drops the flow (which
     * may also happen to one not taken, for another allocation). */
    if (st != STATUS_INSUFFICIENT_RESOURCES) {
        fl->closed[d] = true;
    } else if (r.flow_state != RESULT_UNTOUCHED) {
        if (!(r.flow_state & OWFP_FLOW_DROPPED))
            CHECK(!(r.dir[d].state & OWFP_DIR_CLOSED));
        fl->closed[d] = r.dir[d].state & OWFP_DIR_CLOSED;
    }
    after_call(fi, st, &r, 0);
}

static void op_abort(int fi, int d)
{
    struct flow_state *fl = &g.flows[fi];
    before_call(fl);
    struct owfp_stream_result r;
    r.flow_state = RESULT_UNTOUCHED;
    g.owner_call = true;
    NTSTATUS st = owfp_stream_abort(fl->flow, (enum owfp_stream_direction)d, &r);
    g.owner_call = false;
    CHECK_EQ_STATUS(st, STATUS_SUCCESS);
    if (r.flow_state != RESULT_UNTOUCHED) {
        fl->closed[0] = fl->closed[1] = true;
        fl->expect_drop = true; /* S10 */
    }
    after_call(fi, st, &r, 0);
}

static void op_poll(int fi)
{
    struct flow_state *fl = &g.flows[fi];
    before_call(fl);
    struct owfp_stream_result r;
    r.flow_state = RESULT_UNTOUCHED;
    g.owner_call = true;
    NTSTATUS st = owfp_stream_poll(fl->flow, &r);
    g.owner_call = false;
    CHECK_EQ_STATUS(st, STATUS_SUCCESS);
    after_call(fi, st, &r, 0);
}

static void op_oob_inject(int fi, int d, uint8_t a, uint8_t b)
{
    struct flow_state *fl = &g.flows[fi];
    static const int32_t loose[] = {STATUS_SUCCESS, STATUS_INVALID_PARAMETER};
    if ((a & 1) && fl->clones) {
        /* S29: what an out-of-band callout cloned and blocked goes back in. */
        struct clone_rec *c = fl->clones;
        fl->clones = c->next;
        if (!fl->clones)
            fl->clones_tail = NULL;
        fl->nclones--;
        struct batch *bt = new_batch(fi);
        if (!bt) {
            FwpsFreeCloneNetBufferList0(c->nbl, 0);
        } else {
            bt->x[0] = (struct inj_nbl){c->nbl, NULL, NULL, true, false, 0};
            bt->n = 1;
            do_inject(fi, g.slots[c->slot].co->callout_id, c->dir, c->fin ? disconnect_flag(c->dir) : 0,
                      bt, c->len, 0, false, loose, 2);
        }
        free(c);
        return;
    }
    uint32_t j = (uint32_t)(a >> 5) % g.nslots;
    struct slot *s = &g.slots[j];
    UINT32 id = s->callout ? s->co->callout_id : 0;
    unsigned variant = 0;
    uint32_t extra = 0;
    bool pure_fin = false;
    switch (b & 7) {
    case 1: extra = disconnect_flag(d); break;
    case 2: extra = d == SEND ? FWPS_STREAM_FLAG_SEND_NODELAY : FWPS_STREAM_FLAG_RECEIVE_PUSH; break;
    case 3: extra = disconnect_flag(d); pure_fin = true; break;
    case 4: variant = 4; break;
    case 5: variant = 1; break;
    case 6: variant = 2 + ((b >> 5) & 1); break;
    case 7: variant = b & 0x80 ? 5 : 6 + ((b >> 6) & 1); break;
    default: break;
    }
    SIZE_T len = 0;
    struct batch *bt = NULL;
    if (!pure_fin) {
        bt = fresh_batch(fi, ((a >> 1) & 15) + 1, b & 8, b & 16, &len);
        if (!bt)
            return;
    }
    if (!id && variant == 0)
        do_inject(fi, 0, d, extra, bt, len, 0, false, (const int32_t[]){STATUS_INVALID_PARAMETER}, 1);
    else
        do_inject(fi, id, d, extra, bt, len, variant, false, loose, 2);
}

static void op_continue(int fi, int d, uint8_t a)
{
    struct flow_state *fl = &g.flows[fi];
    uint32_t j = a % g.nslots;
    struct slot *s = &g.slots[j];
    UINT32 id = s->callout ? s->co->callout_id : 0;
    UINT16 layer = g.layer_id;
    UINT32 flags = dir_flag(d);
    NTSTATUS want = STATUS_SUCCESS;
    switch ((a >> 3) & 3) {
    case 1:
        layer = FWPS_LAYER_DATAGRAM_DATA_V4;
        want = STATUS_FWP_INVALID_PARAMETER;
        break;
    case 2:
        flags = FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_RECEIVE;
        want = STATUS_FWP_INVALID_PARAMETER;
        break;
    default:
        break;
    }
    uint64_t wakes = fl->wakes;
    NTSTATUS st = FwpsStreamContinue0(fl->id, id, layer, flags);
    if (want != STATUS_SUCCESS) {
        CHECK_EQ_STATUS(st, want);
        return;
    }
    if (!fl->flow) {
        CHECK_EQ_STATUS(st, STATUS_NOT_FOUND);
        return;
    }
    /* The callout's filters on the path (several when they share it). */
    bool unsure = false, deferred = false, pending = false;
    for (uint32_t k = 0; k < g.nslots && s->callout; k++) {
        struct slot *o = &g.slots[k];
        if (o->co != s->co)
            continue;
        unsure |= o->pf[fi].deleted_since;
        if (!o->present)
            continue;
        deferred |= o->pf[fi].deferred[d];
        pending |= o->pf[fi].continue_pending[d];
    }
    if (!s->callout) {
        CHECK_EQ_STATUS(st, STATUS_INVALID_PARAMETER);
    } else if (unsure || model_loose()) {
        CHECK_STATUS(st, STATUS_SUCCESS, STATUS_INVALID_PARAMETER);
    } else if (deferred) {
        CHECK_EQ_STATUS(st, STATUS_SUCCESS); /* S19: the callout is deferred there */
    } else if (!pending) {
        CHECK_EQ_STATUS(st, STATUS_INVALID_PARAMETER);
    } else {
        CHECK_STATUS(st, STATUS_SUCCESS, STATUS_INVALID_PARAMETER);
    }
    if (st == STATUS_SUCCESS) {
        CHECK(fl->wakes > wakes || model_loose());
        for (uint32_t k = 0; k < g.nslots; k++) {
            if (g.slots[k].co == s->co) {
                g.slots[k].pf[fi].deferred[d] = false;
                g.slots[k].pf[fi].continue_pending[d] = true;
            }
        }
    }
}

static void op_associate(int fi, uint8_t a)
{
    struct flow_state *fl = &g.flows[fi];
    uint32_t j = (a >> 3) % g.nslots;
    struct slot *s = &g.slots[j];
    bool other_layer = a & 1;
    uint16_t layer = other_layer ? (g.v6 ? FWPS_LAYER_DATAGRAM_DATA_V6 : FWPS_LAYER_DATAGRAM_DATA_V4)
                                 : g.layer_id;
    if (a & 2) { /* F4/F3 argument errors */
        CHECK_EQ_STATUS(FwpsFlowAssociateContext0(fl->id, layer, s->co->callout_id, 0),
                        STATUS_INVALID_PARAMETER);
        CHECK_EQ_STATUS(FwpsFlowAssociateContext0(fl->id, 0xfff0, s->co->callout_id, 1),
                        STATUS_FWP_INCOMPATIBLE_LAYER);
        return;
    }
    UINT32 id = s->callout ? s->co->callout_id : 0x7fff;
    UINT64 *cur = other_layer ? &s->co->pf[fi].ctx2 : &s->co->pf[fi].ctx;
    UINT64 v = new_ctx(fi, slot_index(s->co), layer);
    if (!v)
        return;
    NTSTATUS st = FwpsFlowAssociateContext0(fl->id, layer, id, v);
    NTSTATUS want = !s->callout || !s->co->registered ? STATUS_FWP_CALLOUT_NOT_FOUND
                    : !s->co->has_delete_fn           ? STATUS_INVALID_PARAMETER
                    : s->co->draining                 ? STATUS_INVALID_DEVICE_STATE
                    : !fl->flow                   ? STATUS_NOT_FOUND
                    : *cur                        ? STATUS_OBJECT_NAME_EXISTS
                                                  : STATUS_SUCCESS;
    CHECK_EQ_STATUS(st, want);
    if (st == STATUS_SUCCESS)
        *cur = v;
    else
        g.nctx--;
}

static void op_remove(int fi, uint8_t a)
{
    struct flow_state *fl = &g.flows[fi];
    uint32_t j = (a >> 3) % g.nslots;
    struct slot *s = &g.slots[j];
    bool other_layer = a & 1;
    uint16_t layer = other_layer ? (g.v6 ? FWPS_LAYER_DATAGRAM_DATA_V6 : FWPS_LAYER_DATAGRAM_DATA_V4)
                                 : g.layer_id;
    UINT64 *cur = other_layer ? &s->co->pf[fi].ctx2 : &s->co->pf[fi].ctx;
    NTSTATUS st = FwpsFlowRemoveContext0(fl->id, layer, s->callout ? s->co->callout_id : 0x7fff);
    if (fl->flow && *cur) {
        CHECK_EQ_STATUS(st, STATUS_SUCCESS);
        struct ctx_rec *r = ctx_of(*cur);
        CHECK(r->deletes == 1); /* F6: synchronously */
        r->removed = true;
        *cur = 0;
        forget_waiting(s);
    } else {
        CHECK_EQ_STATUS(st, STATUS_UNSUCCESSFUL);
    }
}

static void op_filter(uint8_t a)
{
    uint32_t j = a % g.nslots;
    struct slot *s = &g.slots[j];
    TRACE("  filter slot %u: %s\n", j, s->present ? "delete" : "add");
    if (s->present) {
        NTSTATUS st = FwpmFilterDeleteById0(g.session, s->filter_id);
        CHECK_EQ_STATUS(st, STATUS_SUCCESS);
        if (st != STATUS_SUCCESS)
            return;
        CHECK_EQ_STATUS(FwpmFilterDeleteById0(g.session, s->filter_id),
                        STATUS_FWP_FILTER_NOT_FOUND);
        s->present = false;
        for (int fi = 0; fi < MAX_FLOWS; fi++)
            s->pf[fi].deleted_since = true;
    } else if (s->adds < 8) {
        add_filter(j);
    }
}

static void op_callout(uint8_t a)
{
    uint32_t j = a % g.nslots;
    struct slot *s = &g.slots[j];
    if (!s->callout) {
        CHECK_EQ_STATUS(FwpsCalloutUnregisterById0(0), STATUS_FWP_CALLOUT_NOT_FOUND);
        return;
    }
    TRACE("  callout slot %u: %s\n", j, s->co->registered ? "unregister" : "register");
    if (!s->co->registered) {
        register_slot(s->co);
        return;
    }
    NTSTATUS st = a & 0x80 ? FwpsCalloutUnregisterByKey0(&s->co->ckey)
                           : FwpsCalloutUnregisterById0(s->co->callout_id);
    if (live_contexts(slot_index(s->co))) {
        CHECK_EQ_STATUS(st, STATUS_DEVICE_BUSY); /* R7, Q3 */
        s->co->draining = true;
    } else {
        CHECK_EQ_STATUS(st, STATUS_SUCCESS);
        s->co->registered = false;
        s->co->draining = false;
        forget_waiting(s);
        CHECK_EQ_STATUS(FwpsCalloutUnregisterById0(s->co->callout_id), STATUS_FWP_CALLOUT_NOT_FOUND);
    }
}

static long fail_next = -1;

static void op_invalid(int fi, uint8_t a)
{
    if (a & 0x80) {
        /* The next op runs with allocations failing after (a & 0x3f). */
        fail_next = a & 0x3f;
        return;
    }
    struct flow_state *fl = &g.flows[fi];
    struct owfp_stream_result r;
    uint8_t one = 1;
    switch (a & 3) {
    case 0:
        CHECK_EQ_STATUS(owfp_stream_indicate(fl->flow, (enum owfp_stream_direction)2, &one, 1, 0, &r),
                        STATUS_INVALID_PARAMETER);
        break;
    case 1:
        CHECK_EQ_STATUS(owfp_stream_indicate(fl->flow, OWFP_STREAM_SEND, &one, 0, 0, &r),
                        STATUS_INVALID_PARAMETER);
        break;
    case 2:
        CHECK_EQ_STATUS(owfp_stream_indicate(fl->flow, OWFP_STREAM_RECEIVE, &one, 1, 0x80, &r),
                        STATUS_INVALID_PARAMETER);
        break;
    default:
        CHECK_EQ_STATUS(owfp_stream_poll(fl->flow, NULL), STATUS_INVALID_PARAMETER);
        CHECK_EQ_STATUS(owfp_stream_fin(fl->flow, OWFP_STREAM_SEND, NULL),
                        STATUS_INVALID_PARAMETER);
        break;
    }
}

static void teardown(void)
{
    for (int fi = 0; fi < MAX_FLOWS; fi++)
        if (g.flows[fi].flow)
            close_flow(fi);
    for (int fi = 0; fi < MAX_FLOWS; fi++)
        discard_clones(&g.flows[fi]);
    /* Nothing is pending any more, so this does not wait. */
    CHECK_EQ_STATUS(FwpsInjectionHandleDestroy0(g.inj), STATUS_SUCCESS);
    CHECK_EQ_STATUS(FwpsInjectionHandleDestroy0(g.inj), STATUS_INVALID_PARAMETER);
    CHECK_EQ_STATUS(FwpsStreamInjectAsync0(g.inj, NULL, 0, g.flows[0].id, 1, g.layer_id,
                                           FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_SEND_DISCONNECT,
                                           NULL, 0, inject_complete, NULL),
                    STATUS_FWP_INJECT_HANDLE_CLOSING);
    CHECK_EQ_STATUS(FwpsInjectionHandleDestroy0(g.inj_transport), STATUS_SUCCESS);
    CHECK_EQ_STATUS(FwpmEngineClose0(g.session), STATUS_SUCCESS);
    g.owner_call = true;
    owfp_engine_destroy(g.engine);
    g.owner_call = false;
    for (uint32_t i = 0; i < g.nctx; i++)
        CHECK(g.ctx[i].deletes == 1);
    while (g.batches) {
        struct batch *b = g.batches;
        g.batches = b->next;
        for (uint32_t i = 0; i < b->n; i++)
            CHECK(b->x[i].freed); /* completed, or refused and freed */
        free(b);
    }
    NdisFreeNetBufferListPool(g.pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&g, 0, sizeof(g));
    nfilter_adds = 0;
    fail_next = -1;
    owfp_alloc_fail_reset();
    if (size < 2) {
        data = NULL;
        size = 0;
    }
    size_t body = size ? size - 2 : 0;
    size_t lena = size ? (size_t)(data[0] | data[1] << 8) : 0;
    if (lena > body)
        lena = body;
    g.a = (struct tape){size ? data + 2 : NULL, lena, 0};
    g.b = (struct tape){size ? data + 2 + lena : NULL, body - lena, 0};
    setup();
    open_flow(0);
    for (int step = 0; step < MAX_STEPS && tape_left(&g.a); step++) {
        uint8_t op = t8(&g.a);
        int fi = op >> 7;
        int d = (op >> 4) & 1;
        unsigned var = (op >> 5) & 3;
        struct flow_state *fl = &g.flows[fi];
        uint8_t code = op & 15;
        TRACE("op %d: code %u flow %d dir %d var %u%s\n", step, code, fi, d, var,
              fail_next >= 0 ? " (allocations failing)" : "");
        if (!fl->flow && code != 7 && code != 8 && code != 9 && code != 10 && code != 11 &&
            code != 12)
            code = 16; /* the ops below need an open flow */
        if (fail_next >= 0) {
            owfp_item_cache_drop(); /* items are really allocated */
            owfp_alloc_fail_after(fail_next);
            fail_next = -1;
            g.faulting = true;
        }
        switch (code) {
        case 0:
        case 1:
        case 2: {
            static const uint32_t mods[4] = {0, OWFP_STREAM_PUSH, OWFP_STREAM_URGENT,
                                             OWFP_STREAM_NODELAY};
            op_indicate(fi, d, (size_t)t8(&g.a) + 1, mods[var]);
            break;
        }
        case 3:
            op_indicate(fi, d, ((size_t)t8(&g.a) + 1) << 15, 0);
            break;
        case 4:
            op_fin(fi, d);
            break;
        case 5:
            op_abort(fi, d);
            break;
        case 6:
            op_poll(fi);
            break;
        case 7:
            if (fl->flow)
                close_flow(fi);
            else
                open_flow(fi);
            break;
        case 8: {
            uint8_t a = t8(&g.a);
            op_oob_inject(fi, d, a, t8(&g.a));
            break;
        }
        case 9:
            op_continue(fi, d, t8(&g.a));
            break;
        case 10:
            op_associate(fi, t8(&g.a));
            break;
        case 11:
            op_remove(fi, t8(&g.a));
            break;
        case 12:
            if (fl->flow) {
                CHECK_EQ_STATUS(FwpsFlowAbort0(fl->id), STATUS_SUCCESS);
                fl->abort_called = true;
                CHECK(owfp_flow_aborted(fl->flow));
            } else {
                CHECK_EQ_STATUS(FwpsFlowAbort0(fl->id), STATUS_NOT_FOUND);
            }
            break;
        case 13:
            op_filter(t8(&g.a));
            break;
        case 14:
            op_callout(t8(&g.a));
            break;
        case 15:
            op_invalid(fi, t8(&g.a));
            break;
        default:
            break;
        }
        if (g.faulting) {
            if (owfp_alloc_failures())
                g.degraded = true;
            owfp_alloc_fail_reset();
            g.faulting = false;
        }
        /* Nothing a callout removed inside a classify is still pending. */
        uint64_t live = 0;
        for (uint32_t i = 0; i < g.nctx; i++) {
            if (g.ctx[i].removed)
                CHECK(g.ctx[i].deletes == 1);
            live += g.ctx[i].deletes == 0;
        }
        CHECK(g.classify_depth == 0);
        struct owfp_engine_stats es;
        owfp_engine_get_stats(g.engine, &es);
        CHECK(es.flows_open == (uint64_t)(g.flows[0].flow != NULL) + (g.flows[1].flow != NULL));
        CHECK(es.flow_contexts == live);
    }
    teardown();
    return 0;
}
