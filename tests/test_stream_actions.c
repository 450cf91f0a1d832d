/*
 * Spec §10.4 and §12 (S17-S22, S32, O1-O4) plus the T14, T15 and T19 rows
 * of the §13 matrix: the stream actions (NEED_MORE_DATA, DROP_CONNECTION,
 * DEFER, ALLOW_CONNECTION), FwpsStreamContinue0, filters coming and going
 * on established flows, offload, and callouts that break the contract —
 * none of which may crash, hang or make the engine hold unbounded memory.
 *
 * The recording callouts and the data-plane helpers are the same as in
 * test_stream.c.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEND OWFP_STREAM_SEND
#define RECV OWFP_STREAM_RECEIVE
#define NCO 4
#define MAXREC 48
#define RECBYTES 96
#define MAXNBL 8

/* ---- recording callouts --------------------------------------------------- */

struct rec {
    int seq; /* global classify order */
    UINT16 layer;
    UINT32 nvalues;
    UINT32 dir_value;
    UINT32 compartment_value;
    UINT32 meta_fields, meta_flags;
    UINT64 flow;
    UINT32 compartment;
    UINT64 filter_id; /* filter->filterId */
    UINT32 flags;     /* streamData->flags */
    SIZE_T len, missed;
    UINT32 in_required;
    SIZE_T in_enforced;
    UINT32 in_stream_action;
    UINT32 in_action, in_rights, in_flags;
    UINT64 in_filter_id; /* classifyOut->filterId */
    uint8_t bytes[RECBYTES];
    SIZE_T copied;
    UINT32 nnbl;
    SIZE_T nbl_len[MAXNBL];
    const void *nbl_va[MAXNBL];
    bool chain_ok; /* one NB and one MDL per NBL, lengths add up, offset at byte 0 */
};

struct ans {
    UINT32 action;
    SIZE_T enforced;
    UINT32 stream_action;
    UINT32 required;
    bool raw; /* write only actionType, leave the io packet alone */
};

struct co;
typedef void (*hook_fn)(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                        const FWPS_INCOMING_METADATA_VALUES0 *meta,
                        FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out);

struct co {
    UINT32 id;
    GUID key;
    int n; /* classifies */
    struct rec rec[MAXREC];
    struct ans script[MAXREC];
    int nscript;
    struct ans dflt;
    hook_fn hook;
};

struct outdir {
    uint8_t *buf;
    size_t n, cap;
    size_t nspans, ninjected;
    bool fin;
    uint32_t state; /* of the last result */
    uint64_t held;  /* of the last result */
};

static struct {
    struct co co[NCO];
    bool object_added[NCO];
    int seq;
    atomic_int in_classify;
    atomic_bool reentered;
    atomic_bool foreign_classify;
    pthread_t owner;
    struct owfp_stream_result res;
    struct outdir out[2];
    uint32_t flow_state;
    HANDLE inj;
    NDIS_HANDLE pool;
    atomic_int completions;
    atomic_int cancelled;
    NTSTATUS last_completion;
    atomic_bool completion_foreign;
    atomic_int wakeups;
    atomic_bool wakeup_foreign;
    /* per-test scratch for hooks */
    NTSTATUS hook_status[8];
    int nhook_status;
    UINT64 flow_id;
} g;

#define ANS(a) ((struct ans){.action = (a)})
#define ANSN(a, n) ((struct ans){.action = (a), .enforced = (n)})
#define NMD(req) ((struct ans){.stream_action = FWPS_STREAM_ACTION_NEED_MORE_DATA, .required = (req)})

static void classify_common(int slot, const FWPS_INCOMING_VALUES0 *in,
                            const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                            UINT64 filterId, FWPS_CLASSIFY_OUT0 *out)
{
    struct co *c = &g.co[slot];
    if (atomic_fetch_add(&g.in_classify, 1) != 0)
        atomic_store(&g.reentered, true);
    if (!pthread_equal(pthread_self(), g.owner))
        atomic_store(&g.foreign_classify, true);
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    FWPS_STREAM_DATA0 *sd = io->streamData;
    int i = c->n;
    if (i < MAXREC) {
        struct rec *r = &c->rec[i];
        memset(r, 0, sizeof(*r));
        r->seq = g.seq++;
        r->layer = in->layerId;
        r->nvalues = in->valueCount;
        r->dir_value = in->incomingValue[FWPS_FIELD_STREAM_V4_DIRECTION].value.uint32;
        r->compartment_value = in->incomingValue[FWPS_FIELD_STREAM_V4_COMPARTMENT_ID].value.uint32;
        r->meta_fields = meta->currentMetadataValues;
        r->meta_flags = meta->flags;
        r->flow = meta->flowHandle;
        r->compartment = meta->compartmentId;
        r->filter_id = filterId;
        r->flags = sd->flags;
        r->len = sd->dataLength;
        r->missed = io->missedBytes;
        r->in_required = io->countBytesRequired;
        r->in_enforced = io->countBytesEnforced;
        r->in_stream_action = io->streamAction;
        r->in_action = out->actionType;
        r->in_rights = out->rights;
        r->in_flags = out->flags;
        r->in_filter_id = out->filterId;
        FwpsCopyStreamDataToBuffer0(sd, r->bytes, sizeof(r->bytes), &r->copied);
        SIZE_T total = 0;
        r->chain_ok = sd->dataOffset.netBufferList == sd->netBufferListChain &&
                      sd->dataOffset.mdlOffset == 0;
        for (NET_BUFFER_LIST *nbl = sd->netBufferListChain; nbl; nbl = NET_BUFFER_LIST_NEXT_NBL(nbl)) {
            NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(nbl);
            if (!nb || NET_BUFFER_NEXT_NB(nb)) {
                r->chain_ok = false;
                break;
            }
            MDL *m = NET_BUFFER_FIRST_MDL(nb);
            if (nbl == sd->netBufferListChain &&
                (sd->dataOffset.netBuffer != nb || sd->dataOffset.mdl != m))
                r->chain_ok = false;
            if (r->nnbl < MAXNBL) {
                r->nbl_len[r->nnbl] = NET_BUFFER_DATA_LENGTH(nb);
                r->nbl_va[r->nnbl] =
                    m && MmGetMdlByteCount(m) ? MmGetSystemAddressForMdlSafe(m, NormalPagePriority)
                                              : NULL;
            }
            if (m && (m->Next || MmGetMdlByteCount(m) != NET_BUFFER_DATA_LENGTH(nb)))
                r->chain_ok = false;
            r->nnbl++;
            total += NET_BUFFER_DATA_LENGTH(nb);
        }
        if (total != sd->dataLength)
            r->chain_ok = false;
    }
    struct ans a = i < c->nscript ? c->script[i] : c->dflt;
    out->actionType = a.action;
    if (!a.raw) {
        io->countBytesEnforced = a.enforced;
        io->streamAction = a.stream_action;
        io->countBytesRequired = a.required;
    }
    c->n++;
    if (c->hook)
        c->hook(c, i, in, meta, io, out);
    atomic_fetch_sub(&g.in_classify, 1);
}

#define CLASSIFY_FNS(n)                                                                          \
    static void NTAPI cls0_##n(const FWPS_INCOMING_VALUES0 *in,                                  \
                               const FWPS_INCOMING_METADATA_VALUES0 *meta, void *ld,             \
                               const FWPS_FILTER0 *f, UINT64 ctx, FWPS_CLASSIFY_OUT0 *out)       \
    {                                                                                            \
        (void)ctx;                                                                               \
        classify_common(n, in, meta, ld, f->filterId, out);                                      \
    }                                                                                            \
    static void NTAPI cls3_##n(const FWPS_INCOMING_VALUES0 *in,                                  \
                               const FWPS_INCOMING_METADATA_VALUES0 *meta, void *ld,             \
                               const void *cc, const FWPS_FILTER3 *f, UINT64 ctx,                \
                               FWPS_CLASSIFY_OUT0 *out)                                          \
    {                                                                                            \
        (void)cc;                                                                                \
        (void)ctx;                                                                               \
        classify_common(n, in, meta, ld, f->filterId, out);                                      \
    }
CLASSIFY_FNS(0)
CLASSIFY_FNS(1)
CLASSIFY_FNS(2)
CLASSIFY_FNS(3)
static const FWPS_CALLOUT_CLASSIFY_FN0 cls0[NCO] = {cls0_0, cls0_1, cls0_2, cls0_3};
static const FWPS_CALLOUT_CLASSIFY_FN3 cls3[NCO] = {cls3_0, cls3_1, cls3_2, cls3_3};

static NTSTATUS NTAPI notify3_ok(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                                 FWPS_FILTER3 *filter)
{
    (void)type;
    (void)key;
    (void)filter;
    return STATUS_SUCCESS;
}

/* Registers slot's callout (FWPS_CALLOUT0, or CALLOUT3 for newer flags). */
static UINT32 reg(int slot, UINT32 flags)
{
    struct co *c = &g.co[slot];
    c->key = h_guid(0xc0de0000u + (uint32_t)slot);
    if (flags & ~(UINT32)0x3) {
        FWPS_CALLOUT3 cd;
        memset(&cd, 0, sizeof(cd));
        cd.calloutKey = c->key;
        cd.flags = flags;
        cd.classifyFn = cls3[slot];
        cd.notifyFn = notify3_ok;
        assert_int_equal(FwpsCalloutRegister3(NULL, &cd, &c->id), STATUS_SUCCESS);
    } else {
        assert_int_equal(h_register0(&c->key, flags, cls0[slot], h_notify_ok, NULL, &c->id),
                         STATUS_SUCCESS);
    }
    return c->id;
}

/* A stream filter; slot < 0 for a static action. */
static UINT64 filter_at(const GUID *layer, int slot, const GUID *sublayer, UINT32 action,
                        UINT64 weight, UINT32 flags, const FWPM_FILTER_CONDITION0 *conds,
                        uint32_t nconds)
{
    if (slot >= 0) {
        struct co *c = &g.co[slot];
        c->key = h_guid(0xc0de0000u + (uint32_t)slot);
        if (!g.object_added[slot]) {
            assert_int_equal(h_callout_object(&c->key, layer), STATUS_SUCCESS);
            g.object_added[slot] = true;
        }
    }
    struct h_filter_spec spec = {
        .layer = layer,
        .sublayer = sublayer,
        .action = action,
        .callout = slot >= 0 ? &g.co[slot].key : NULL,
        .weight = weight,
        .has_weight = 1,
        .flags = flags,
        .conds = conds,
        .nconds = nconds,
    };
    UINT64 id = 0;
    assert_int_equal(h_filter(&spec, &id), STATUS_SUCCESS);
    return id;
}

static UINT64 sf(int slot, const GUID *sublayer, UINT32 action, UINT64 weight)
{
    return filter_at(&FWPM_LAYER_STREAM_V4, slot, sublayer, action, weight, 0, NULL, 0);
}

/* ---- the data plane side ------------------------------------------------ */

static void append(struct outdir *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->n + n)
            cap *= 2;
        o->buf = realloc(o->buf, cap);
        assert_non_null(o->buf);
        o->cap = cap;
    }
    memcpy(o->buf + o->n, p, n);
    o->n += n;
}

static void take(const struct owfp_stream_result *r)
{
    for (int d = 0; d < 2; d++) {
        struct outdir *o = &g.out[d];
        const struct owfp_stream_output *ro = &r->dir[d];
        uint64_t sum = 0;
        for (size_t i = 0; i < ro->nspans; i++) {
            assert_non_null(ro->spans[i].data);
            assert_true(ro->spans[i].len > 0);
            append(o, ro->spans[i].data, ro->spans[i].len);
            sum += ro->spans[i].len;
            o->ninjected += ro->spans[i].origin == OWFP_SPAN_INJECTED;
        }
        assert_int_equal(sum, ro->bytes);
        o->nspans += ro->nspans;
        o->fin |= (ro->state & OWFP_DIR_FIN) != 0;
        o->state = ro->state;
        o->held = ro->held_bytes;
    }
    g.flow_state = r->flow_state;
}

static NTSTATUS indm(owfp_flow *f, int d, const void *p, size_t n, uint32_t mods)
{
    NTSTATUS st = owfp_stream_indicate(f, (enum owfp_stream_direction)d, p, n, mods, &g.res);
    if (NT_SUCCESS(st))
        take(&g.res);
    return st;
}

static void ind(owfp_flow *f, int d, const char *s)
{
    assert_int_equal(indm(f, d, s, strlen(s), 0), STATUS_SUCCESS);
}

static void fin(owfp_flow *f, int d)
{
    assert_int_equal(owfp_stream_fin(f, (enum owfp_stream_direction)d, &g.res), STATUS_SUCCESS);
    take(&g.res);
}

static void poll_flow(owfp_flow *f)
{
    assert_int_equal(owfp_stream_poll(f, &g.res), STATUS_SUCCESS);
    take(&g.res);
}

static void assert_out(int d, const char *want)
{
    size_t n = strlen(want);
    assert_int_equal(g.out[d].n, n);
    if (n)
        assert_memory_equal(g.out[d].buf, want, n);
}

static void assert_rec(const struct rec *r, const char *want)
{
    size_t n = strlen(want);
    assert_int_equal(r->len, n);
    assert_int_equal(r->copied, n < RECBYTES ? n : RECBYTES);
    if (n)
        assert_memory_equal(r->bytes, want, n);
}

static owfp_flow *open4(void)
{
    struct owfp_flow_params p = h_params4(49152, 80, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    g.flow_id = owfp_flow_id(f);
    return f;
}

/* ---- injection helpers --------------------------------------------------- */

#define CTX_CLONE ((void *)(uintptr_t)1)

static void inj_setup(void)
{
    if (!g.inj)
        assert_int_equal(FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, &g.inj),
                         STATUS_SUCCESS);
    if (!g.pool) {
        NET_BUFFER_LIST_POOL_PARAMETERS p;
        memset(&p, 0, sizeof(p));
        p.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
        p.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
        p.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
        p.ProtocolId = NDIS_PROTOCOL_ID_DEFAULT;
        p.fAllocateNetBuffer = TRUE;
        p.PoolTag = 0x73747374;
        g.pool = NdisAllocateNetBufferListPool(NULL, &p);
        assert_non_null(g.pool);
    }
}

/* An NBL over a private copy of `data` (freed by the completion). */
static NET_BUFFER_LIST *nbl_copy(const void *data, size_t len, void **ctx)
{
    uint8_t *copy = NULL;
    MDL *m = NULL;
    if (len) {
        copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, data, len);
        m = IoAllocateMdl(copy, (ULONG)len, FALSE, FALSE, NULL);
        assert_non_null(m);
    }
    NET_BUFFER_LIST *nbl = NULL;
    assert_int_equal(FwpsAllocateNetBufferAndNetBufferList0(g.pool, 0, 0, m, 0, len, &nbl),
                     STATUS_SUCCESS);
    *ctx = copy;
    return nbl;
}

static void free_nbl(void *ctx, NET_BUFFER_LIST *nbl)
{
    if (ctx == CTX_CLONE) {
        FwpsFreeCloneNetBufferList0(nbl, 0);
        return;
    }
    NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(nbl);
    MDL *m = nb ? NET_BUFFER_FIRST_MDL(nb) : NULL;
    FwpsFreeNetBufferList0(nbl);
    if (m)
        IoFreeMdl(m);
    free(ctx);
}

static void NTAPI inj_done(void *ctx, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    (void)dispatchLevel;
    if (!pthread_equal(pthread_self(), g.owner))
        atomic_store(&g.completion_foreign, true);
    g.last_completion = nbl->Status;
    if (nbl->Status == STATUS_CANCELLED)
        atomic_fetch_add(&g.cancelled, 1);
    free_nbl(ctx, nbl);
    atomic_fetch_add(&g.completions, 1);
}

/* Injects a copy of `data` for slot's callout into the flow. */
static NTSTATUS inject(int slot, UINT32 sflags, const void *data, size_t len)
{
    void *ctx;
    NET_BUFFER_LIST *nbl = nbl_copy(data, len, &ctx);
    NTSTATUS st = FwpsStreamInjectAsync0(g.inj, NULL, 0, g.flow_id, g.co[slot].id,
                                         FWPS_LAYER_STREAM_V4, sflags, nbl, len, inj_done, ctx);
    if (!NT_SUCCESS(st))
        free_nbl(ctx, nbl);
    return st;
}

static void NTAPI wakeup(void *arg, owfp_flow *flow)
{
    (void)arg;
    (void)flow;
    if (!pthread_equal(pthread_self(), g.owner))
        atomic_store(&g.wakeup_foreign, true);
    atomic_fetch_add(&g.wakeups, 1);
}

/* ---- per-test state ----------------------------------------------------- */

static void reset(void)
{
    for (int d = 0; d < 2; d++)
        free(g.out[d].buf);
    memset(&g, 0, sizeof(g));
    g.owner = pthread_self();
    for (int i = 0; i < NCO; i++)
        g.co[i].dflt = ANS(FWP_ACTION_PERMIT);
}

static void done(void)
{
    if (g.inj)
        assert_int_equal(FwpsInjectionHandleDestroy0(g.inj), STATUS_SUCCESS);
    g.inj = NULL;
    if (g.pool)
        NdisFreeNetBufferListPool(g.pool);
    g.pool = NULL;
    assert_false(atomic_load(&g.reentered));
    assert_false(atomic_load(&g.foreign_classify));
}

static int group_teardown(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++)
        free(g.out[d].buf);
    memset(&g, 0, sizeof(g));
    return 0;
}

static GUID g_hi, g_lo; /* sublayers 0x40 and 0x20, as stmedit's OOB and inline sets */

static void sublayers(void)
{
    g_hi = h_sublayer(0x40, 0x40);
    g_lo = h_sublayer(0x20, 0x20);
}

#define KiB 1024u
#define MiB (1024u * 1024u)
#define CHUNK (64u * KiB)
#define LIMIT (8u * MiB)

static struct ans defer_ans(UINT32 action)
{
    return (struct ans){.action = action, .stream_action = FWPS_STREAM_ACTION_DEFER};
}

static struct ans stream_ans(UINT32 stream_action, UINT32 action)
{
    return (struct ans){.action = action, .stream_action = stream_action};
}

static owfp_flow *open_port(uint16_t remote_port)
{
    struct owfp_flow_params p = h_params4(40000, remote_port, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    g.flow_id = owfp_flow_id(f);
    return f;
}

static FWPM_FILTER_CONDITION0 port_cond(uint16_t port)
{
    FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    c.matchType = FWP_MATCH_EQUAL;
    c.conditionValue.type = FWP_UINT16;
    c.conditionValue.uint16 = port;
    return c;
}

static UINT64 sf_port(int slot, const GUID *sublayer, UINT32 action, uint16_t port, UINT32 flags)
{
    FWPM_FILTER_CONDITION0 c = port_cond(port);
    return filter_at(&FWPM_LAYER_STREAM_V4, slot, sublayer, action, 1, flags, &c, 1);
}

/* ---- S17 NEED_MORE_DATA --------------------------------------------------- */

static void test_S17_need_more_data_ignores_count_and_action_type(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    /* trustbase: a count with NEED_MORE_DATA; deep-inspection example:
     * actionType CONTINUE. Everything is held, nothing passes. */
    g.co[0].script[0] = (struct ans){.action = FWP_ACTION_CONTINUE,
                                     .enforced = 2,
                                     .stream_action = FWPS_STREAM_ACTION_NEED_MORE_DATA,
                                     .required = 6};
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    ind(f, RECV, "abcd");
    assert_out(RECV, "");
    assert_int_equal(g.res.dir[RECV].held_bytes, 4);
    assert_int_equal(g.res.dir[RECV].state, OWFP_DIR_HELD);
    assert_int_equal(g.flow_state, 0);
    ind(f, RECV, "ef");
    assert_int_equal(g.co[0].n, 2);
    assert_rec(&g.co[0].rec[1], "abcdef");
    assert_out(RECV, "abcdef");
    owfp_flow_close(f);
    done();
}

static void test_S17_threshold_is_a_total_and_needs_new_bytes(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = NMD(2); /* already satisfied: waits for the next bytes */
    g.co[0].script[1] = ANS(FWP_ACTION_PERMIT);
    g.co[0].script[2] = NMD(5); /* dataLength + 1: one more byte */
    g.co[0].nscript = 3;
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    poll_flow(f);
    ind(f, SEND, "other direction");
    assert_int_equal(g.co[0].n, 2); /* abc, then the send data */
    assert_rec(&g.co[0].rec[1], "other direction");
    ind(f, RECV, "d");
    assert_int_equal(g.co[0].n, 3);
    assert_rec(&g.co[0].rec[2], "abcd");
    /* Asked for 5 in total (the "additional" reading would wait for 9). */
    ind(f, RECV, "e");
    assert_int_equal(g.co[0].n, 4);
    assert_rec(&g.co[0].rec[3], "abcde");
    assert_out(RECV, "abcde");
    owfp_flow_close(f);
    done();
}

static void test_S17_held_bytes_outlive_the_callers_buffer(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = NMD(6);
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    char buf[4] = "abc";
    ind(f, RECV, buf);
    memcpy(buf, "XYZ", 3); /* the data plane reuses its buffer */
    char buf2[4] = "def";
    ind(f, RECV, buf2);
    assert_rec(&g.co[0].rec[1], "abcdef");
    assert_out(RECV, "abcdef");
    owfp_flow_close(f);
    done();
}

static void test_S17_held_bytes_are_copied_once(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = NMD(6);
    g.co[0].script[1] = NMD(12);
    g.co[0].nscript = 2;
    owfp_flow *f = open4();
    static const char b1[] = "ab", b2[] = "cd", b3[] = "ef", b4[] = "ghijkl";
    ind(f, RECV, b1);
    ind(f, RECV, b2);
    ind(f, RECV, b3);
    assert_int_equal(g.co[0].n, 2);
    const struct rec *r1 = &g.co[0].rec[1];
    assert_rec(r1, "abcdef");
    assert_int_equal(r1->nnbl, 3);
    /* Held pieces live in engine memory, the newest piece is the caller's. */
    assert_ptr_not_equal(r1->nbl_va[0], b1);
    assert_ptr_not_equal(r1->nbl_va[1], b2);
    assert_ptr_equal(r1->nbl_va[2], b3);
    ind(f, RECV, b4);
    const struct rec *r2 = &g.co[0].rec[2];
    assert_rec(r2, "abcdefghijkl");
    assert_int_equal(r2->nnbl, 4);
    /* Bytes already held are not copied again. */
    assert_ptr_equal(r2->nbl_va[0], r1->nbl_va[0]);
    assert_ptr_equal(r2->nbl_va[1], r1->nbl_va[1]);
    assert_ptr_not_equal(r2->nbl_va[2], b3);
    assert_ptr_equal(r2->nbl_va[3], b4);
    assert_int_equal(g.res.dir[RECV].nspans, 4);
    assert_ptr_equal(g.res.dir[RECV].spans[3].data, b4);
    assert_out(RECV, "abcdefghijkl");
    owfp_flow_close(f);
    done();
}

static uint8_t chunk_byte(size_t chunk, size_t i)
{
    return (uint8_t)(chunk * 7 + i * 13 + (i >> 8));
}

static void fill_chunk(uint8_t *buf, size_t chunk)
{
    for (size_t i = 0; i < CHUNK; i++)
        buf[i] = chunk_byte(chunk, i);
}

static void hook_limit(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                       const FWPS_INCOMING_METADATA_VALUES0 *meta,
                       FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)call;
    (void)in;
    (void)meta;
    if (out->flags & FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED) {
        out->actionType = FWP_ACTION_PERMIT;
        io->streamAction = FWPS_STREAM_ACTION_NONE;
        io->countBytesEnforced = 0;
    } else {
        io->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
        io->countBytesRequired = 0xffffffffu;
    }
}

static void test_S17_buffer_limit_reached_at_8MiB(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].hook = hook_limit;
    owfp_flow *f = open4();
    uint8_t *buf = malloc(CHUNK);
    assert_non_null(buf);
    size_t chunks = LIMIT / CHUNK;
    for (size_t c = 0; c < chunks; c++) {
        fill_chunk(buf, c);
        assert_int_equal(indm(f, RECV, buf, CHUNK, 0), STATUS_SUCCESS);
        assert_true(g.res.dir[RECV].held_bytes <= LIMIT);
        if (c + 1 < chunks) {
            assert_int_equal(g.res.dir[RECV].held_bytes, (c + 1) * CHUNK);
            assert_int_equal(g.out[RECV].n, 0);
        }
    }
    /* Re-indicated once, whole, with BUFFER_LIMIT_REACHED; then permitted. */
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[0].rec[0].in_flags, 0);
    assert_int_equal(g.co[0].rec[1].len, LIMIT);
    assert_int_equal(g.co[0].rec[1].in_flags, FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED);
    assert_int_equal(g.res.dir[RECV].held_bytes, 0);
    assert_int_equal(g.flow_state, 0);
    assert_int_equal(g.out[RECV].n, LIMIT);
    for (size_t c = 0; c < chunks; c++) {
        fill_chunk(buf, c);
        assert_memory_equal(g.out[RECV].buf + c * CHUNK, buf, CHUNK);
    }
    free(buf);
    owfp_flow_close(f);
    done();
}

static void test_S17_Q16_need_more_data_past_the_8MiB_limit_drops(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].dflt = NMD(0xffffffffu); /* ignores the limit */
    owfp_flow *f = open4();
    uint8_t *buf = malloc(CHUNK);
    assert_non_null(buf);
    size_t c;
    for (c = 0; c < 2 * LIMIT / CHUNK; c++) {
        fill_chunk(buf, c);
        assert_int_equal(indm(f, RECV, buf, CHUNK, 0), STATUS_SUCCESS);
        assert_true(g.res.dir[RECV].held_bytes <= LIMIT + CHUNK);
        if (g.flow_state & OWFP_FLOW_DROPPED)
            break;
    }
    assert_int_equal(g.flow_state & OWFP_FLOW_DROPPED, OWFP_FLOW_DROPPED);
    assert_int_equal(c + 1, LIMIT / CHUNK);
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[0].rec[1].in_flags, FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED);
    assert_int_equal(g.res.dir[RECV].held_bytes, 0);
    assert_int_equal(g.out[RECV].n, 0);
    /* Later data is accepted and discarded; the callout is not asked again. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(indm(f, RECV, buf, CHUNK, 0), STATUS_SUCCESS);
        assert_int_equal(g.res.dir[RECV].held_bytes, 0);
        assert_int_equal(g.res.dir[RECV].nspans, 0);
    }
    assert_int_equal(g.co[0].n, 2);
    free(buf);
    owfp_flow_close(f);
    done();
}

static void test_S17_Q16_need_more_data_with_no_more_data_drops(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    reg(1, 0);
    sf_port(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1001, 0);
    sf_port(1, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1002, 0);
    g.co[0].dflt = NMD(100); /* also when NO_MORE_DATA is set */
    owfp_flow *f = open_port(1001);
    ind(f, RECV, "abc");
    ind(f, SEND, "xyz");
    assert_int_equal(g.flow_state, 0);
    fin(f, RECV);
    assert_int_equal(g.co[0].n, 3);
    assert_int_equal(g.co[0].rec[2].in_flags, FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA);
    assert_int_equal(g.flow_state & OWFP_FLOW_DROPPED, OWFP_FLOW_DROPPED);
    assert_false(g.out[RECV].fin);
    for (int d = 0; d < 2; d++)
        assert_int_equal(g.res.dir[d].held_bytes, 0);
    assert_out(RECV, "");
    assert_out(SEND, "");
    owfp_flow_close(f);

    /* NEED_MORE_DATA on the empty DISCONNECT indication itself. */
    g.co[1].dflt = ANS(FWP_ACTION_PERMIT);
    g.co[1].script[1] = NMD(1);
    g.co[1].nscript = 2;
    f = open_port(1002);
    ind(f, SEND, "data");
    fin(f, SEND);
    assert_int_equal(g.co[1].n, 2);
    assert_int_equal(g.co[1].rec[1].flags, FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_SEND_DISCONNECT);
    assert_int_equal(g.flow_state & OWFP_FLOW_DROPPED, OWFP_FLOW_DROPPED);
    assert_false(g.out[SEND].fin);
    owfp_flow_close(f);
    done();
}

/* ---- S18 DROP_CONNECTION (T15) ------------------------------------------- */

static void test_S18_T15_drop_connection_by_filter_type(void **state)
{
    (void)state;
    reset();
    sublayers();
    for (int i = 0; i < 4; i++)
        reg(i, 0);
    sf_port(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1001, 0);
    sf_port(1, &g_hi, FWP_ACTION_CALLOUT_UNKNOWN, 1002, 0);
    sf_port(2, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 1003, 0);
    sf(3, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].dflt = stream_ans(FWPS_STREAM_ACTION_DROP_CONNECTION, FWP_ACTION_NONE);
    g.co[1].dflt = stream_ans(FWPS_STREAM_ACTION_DROP_CONNECTION, FWP_ACTION_BLOCK);
    g.co[2].dflt = stream_ans(FWPS_STREAM_ACTION_DROP_CONNECTION, FWP_ACTION_CONTINUE);
    g.co[3].dflt = ANS(FWP_ACTION_CONTINUE);

    owfp_flow *f1 = open_port(1001);
    ind(f1, RECV, "abc");
    assert_int_equal(g.flow_state, OWFP_FLOW_DROPPED);
    assert_out(RECV, "");
    owfp_flow *f2 = open_port(1002);
    ind(f2, SEND, "abc");
    assert_int_equal(g.flow_state, OWFP_FLOW_DROPPED);
    assert_out(SEND, "");
    assert_int_equal(g.co[3].n, 0);
    /* From an INSPECTION filter it is ignored: the data continues. */
    owfp_flow *f3 = open_port(1003);
    ind(f3, RECV, "inspected");
    assert_int_equal(g.flow_state, 0);
    assert_out(RECV, "inspected");
    assert_int_equal(g.co[3].n, 1);
    assert_rec(&g.co[3].rec[0], "inspected");
    ind(f3, RECV, "again");
    assert_out(RECV, "inspectedagain");
    assert_int_equal(g.co[2].n, 2);

    /* A dropped flow accepts and discards later data without classifying. */
    ind(f1, RECV, "later");
    ind(f1, SEND, "later");
    assert_int_equal(g.flow_state, OWFP_FLOW_DROPPED);
    assert_int_equal(g.res.dir[RECV].nspans + g.res.dir[SEND].nspans, 0);
    assert_int_equal(g.co[0].n, 1);
    fin(f1, RECV);
    assert_false(g.out[RECV].fin);
    owfp_flow_close(f1);
    owfp_flow_close(f2);
    owfp_flow_close(f3);
    done();
}

static void hook_drop_after_inject(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                                   const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                   FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)in;
    (void)meta;
    (void)out;
    if (call == 1) { /* the remainder "def" */
        g.hook_status[g.nhook_status++] = inject(1, FWPS_STREAM_FLAG_RECEIVE, "inj", 3);
        io->streamAction = FWPS_STREAM_ACTION_DROP_CONNECTION;
    }
}

static void test_S18_drop_discards_everything_of_both_directions(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = defer_ans(FWP_ACTION_NONE); /* SEND: deferred */
    g.co[0].script[1] = ANS(FWP_ACTION_PERMIT);
    g.co[0].nscript = 2;
    g.co[1].script[0] = ANSN(FWP_ACTION_PERMIT, 3); /* RECV abcdef: abc passes */
    g.co[1].nscript = 1;
    g.co[1].hook = hook_drop_after_inject;
    inj_setup();
    owfp_flow *f = open4();
    ind(f, SEND, "held");
    assert_int_equal(g.res.dir[SEND].held_bytes, 4);
    assert_int_equal(g.res.dir[SEND].state, OWFP_DIR_DEFERRED | OWFP_DIR_HELD);
    ind(f, RECV, "abcdef");
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[1].n, 2);
    assert_rec(&g.co[1].rec[1], "def");
    assert_int_equal(g.nhook_status, 1);
    assert_int_equal(g.hook_status[0], STATUS_SUCCESS);
    /* "abc" had passed the last stage but is not handed out, the injection
     * is cancelled at once, nothing stays held in either direction. */
    assert_int_equal(g.flow_state, OWFP_FLOW_DROPPED);
    for (int d = 0; d < 2; d++) {
        assert_int_equal(g.res.dir[d].nspans, 0);
        assert_int_equal(g.res.dir[d].held_bytes, 0);
        assert_int_equal(g.res.dir[d].state & (OWFP_DIR_HELD | OWFP_DIR_DEFERRED), 0);
    }
    assert_int_equal(atomic_load(&g.completions), 1);
    assert_int_equal(g.last_completion, STATUS_CANCELLED);
    /* An out-of-band injection after the drop completes cancelled too. */
    assert_int_equal(inject(0, FWPS_STREAM_FLAG_SEND, "oob", 3), STATUS_SUCCESS);
    ind(f, RECV, "more");
    assert_int_equal(atomic_load(&g.completions), 2);
    assert_int_equal(atomic_load(&g.cancelled), 2);
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[1].n, 2);
    assert_out(RECV, "");
    assert_out(SEND, "");
    owfp_flow_close(f);
    done();
}

/* ---- S19 DEFER and FwpsStreamContinue0 (T14) ------------------------------ */

struct continue_job {
    UINT64 flow;
    UINT32 callout;
    UINT32 flags;
    NTSTATUS status;
};

static void *continue_worker(void *arg)
{
    struct continue_job *j = arg;
    j->status = FwpsStreamContinue0(j->flow, j->callout, FWPS_LAYER_STREAM_V4, j->flags);
    return NULL;
}

static void test_S19_T14_defer_then_continue_from_a_worker(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = defer_ans(FWP_ACTION_NONE);
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    assert_int_equal(owfp_flow_set_wakeup(f, wakeup, NULL), STATUS_SUCCESS);
    static const char b1[] = "abc", b2[] = "def";
    ind(f, RECV, b1);
    assert_int_equal(g.res.dir[RECV].nspans, 0);
    assert_int_equal(g.res.dir[RECV].state, OWFP_DIR_DEFERRED | OWFP_DIR_HELD);
    assert_int_equal(g.res.dir[RECV].held_bytes, 3);
    /* Data arriving meanwhile queues; nothing is indicated. */
    ind(f, RECV, b2);
    assert_int_equal(g.co[0].n, 1);
    assert_int_equal(g.res.dir[RECV].state, OWFP_DIR_DEFERRED | OWFP_DIR_HELD);
    assert_int_equal(g.res.dir[RECV].held_bytes, 6);
    /* The other direction is not held up. */
    ind(f, SEND, "send");
    assert_int_equal(g.co[0].n, 2);
    assert_out(SEND, "send");
    assert_true(g.res.dir[RECV].state & OWFP_DIR_DEFERRED);
    poll_flow(f);
    assert_int_equal(g.co[0].n, 2);

    struct continue_job j = {g.flow_id, g.co[0].id, FWPS_STREAM_FLAG_RECEIVE, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, continue_worker, &j), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(j.status, STATUS_SUCCESS);
    assert_int_equal(atomic_load(&g.wakeups), 1);
    assert_true(atomic_load(&g.wakeup_foreign));
    assert_int_equal(g.co[0].n, 2); /* takes effect at the owner's next call */
    poll_flow(f);
    assert_int_equal(g.co[0].n, 3);
    const struct rec *r = &g.co[0].rec[2];
    assert_rec(r, "abcdef");
    assert_int_equal(r->flags, FWPS_STREAM_FLAG_RECEIVE);
    assert_int_equal(r->nnbl, 2);
    assert_out(RECV, "abcdef");
    assert_int_equal(g.res.dir[RECV].state, 0);
    assert_int_equal(g.res.dir[RECV].held_bytes, 0);
    /* Once continued, continuing again is refused. */
    assert_int_equal(FwpsStreamContinue0(g.flow_id, g.co[0].id, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_INVALID_PARAMETER);
    owfp_flow_close(f);
    done();
}

/* A stmedit-style worker may continue while the deferring classify is still
 * running: the continue is accepted and takes effect at the next call. */
static void hook_continue_while_deferring(struct co *c, int call,
                                          const FWPS_INCOMING_VALUES0 *in,
                                          const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                          FWPS_STREAM_CALLOUT_IO_PACKET0 *io,
                                          FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)io;
    (void)out;
    if (call != 0)
        return;
    struct continue_job j = {g.flow_id, c->id, FWPS_STREAM_FLAG_RECEIVE, -1};
    pthread_t t;
    if (pthread_create(&t, NULL, continue_worker, &j) == 0 && pthread_join(t, NULL) == 0)
        g.hook_status[g.nhook_status++] = j.status;
}

static void test_S19_continue_during_the_deferring_classify(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = defer_ans(FWP_ACTION_NONE);
    g.co[0].nscript = 1;
    g.co[0].hook = hook_continue_while_deferring;
    owfp_flow *f = open4();
    assert_int_equal(owfp_flow_set_wakeup(f, wakeup, NULL), STATUS_SUCCESS);
    ind(f, RECV, "abc");
    assert_int_equal(g.nhook_status, 1);
    assert_int_equal(g.hook_status[0], STATUS_SUCCESS);
    assert_int_equal(atomic_load(&g.wakeups), 1);
    assert_true(g.res.dir[RECV].state & OWFP_DIR_DEFERRED);
    poll_flow(f);
    assert_int_equal(g.co[0].n, 2);
    assert_rec(&g.co[0].rec[1], "abc");
    assert_out(RECV, "abc");
    assert_int_equal(g.res.dir[RECV].state, 0);
    owfp_flow_close(f);
    done();
}

static void test_S19_Q19_defer_on_send_is_honoured(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = defer_ans(FWP_ACTION_PERMIT);
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    ind(f, SEND, "abc");
    ind(f, SEND, "de");
    assert_int_equal(g.co[0].n, 1);
    assert_out(SEND, "");
    assert_int_equal(g.res.dir[SEND].state, OWFP_DIR_DEFERRED | OWFP_DIR_HELD);
    assert_int_equal(g.res.dir[SEND].held_bytes, 5);
    /* The other direction's flag does not continue it. */
    assert_int_equal(FwpsStreamContinue0(g.flow_id, g.co[0].id, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_INVALID_PARAMETER);
    /* Continued from the owner thread, outside any classify. */
    assert_int_equal(FwpsStreamContinue0(g.flow_id, g.co[0].id, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_SEND),
                     STATUS_SUCCESS);
    poll_flow(f);
    assert_int_equal(g.co[0].n, 2);
    assert_rec(&g.co[0].rec[1], "abcde");
    assert_out(SEND, "abcde");
    assert_int_equal(g.res.dir[SEND].state, 0);
    owfp_flow_close(f);
    done();
}

static void test_S19_continue_status_codes(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    reg(1, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 2);
    sf(1, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[1] = defer_ans(FWP_ACTION_NONE);
    g.co[0].nscript = 2;
    owfp_flow *f = open4();
    UINT64 id = g.flow_id;
    UINT32 co = g.co[0].id;
    /* Before anything was deferred: a continue without a defer. */
    ind(f, SEND, "x");
    assert_int_equal(FwpsStreamContinue0(id, co, FWPS_LAYER_STREAM_V4, FWPS_STREAM_FLAG_SEND),
                     STATUS_INVALID_PARAMETER);
    ind(f, RECV, "abc"); /* deferred now */
    assert_int_equal(g.res.dir[RECV].state & OWFP_DIR_DEFERRED, OWFP_DIR_DEFERRED);
    assert_int_equal(FwpsStreamContinue0(id, co, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4,
                                         FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_FWP_INVALID_PARAMETER);
    assert_int_equal(FwpsStreamContinue0(id, co, FWPS_LAYER_STREAM_V4, 0),
                     STATUS_FWP_INVALID_PARAMETER);
    assert_int_equal(FwpsStreamContinue0(id, co, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_SEND),
                     STATUS_FWP_INVALID_PARAMETER);
    assert_int_equal(FwpsStreamContinue0(id + 1000, co, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_NOT_FOUND);
    /* A callout on the path that did not defer, and one not on it. */
    assert_int_equal(FwpsStreamContinue0(id, g.co[1].id, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(FwpsStreamContinue0(id, 0xfff0, FWPS_LAYER_STREAM_V4, FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_INVALID_PARAMETER);
    poll_flow(f);
    assert_int_equal(g.res.dir[RECV].state & OWFP_DIR_DEFERRED, OWFP_DIR_DEFERRED);
    assert_int_equal(FwpsStreamContinue0(id, co, FWPS_LAYER_STREAM_V4, FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_SUCCESS);
    poll_flow(f);
    assert_out(RECV, "abc");
    owfp_flow_close(f);
    assert_int_equal(FwpsStreamContinue0(id, co, FWPS_LAYER_STREAM_V4, FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_NOT_FOUND);
    done();
}

static void hook_continue_inside(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                 FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)call;
    (void)in;
    (void)io;
    (void)out;
    g.hook_status[g.nhook_status++] = FwpsStreamContinue0(
        meta->flowHandle, g.co[0].id, FWPS_LAYER_STREAM_V4, FWPS_STREAM_FLAG_RECEIVE);
}

static void test_S19_continue_from_inside_classify_is_refused(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[0] = defer_ans(FWP_ACTION_NONE);
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    g.co[0].hook = hook_continue_inside; /* the deferring callout itself */
    g.co[1].hook = hook_continue_inside; /* and another one */
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    ind(f, SEND, "x");
    assert_int_equal(g.nhook_status, 2);
    assert_int_equal(g.hook_status[0], STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g.hook_status[1], STATUS_INVALID_DEVICE_STATE);
    poll_flow(f);
    assert_int_equal(g.res.dir[RECV].state & OWFP_DIR_DEFERRED, OWFP_DIR_DEFERRED);
    assert_out(RECV, "");
    owfp_flow_close(f);
    done();
}

/* ---- S20 ALLOW_CONNECTION, O1-O4 ----------------------------------------- */

static void test_S20_allow_connection_permits_and_stops_both_directions(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    /* With a partial count and BLOCK: still the whole indication passes. */
    g.co[0].dflt = (struct ans){.action = FWP_ACTION_BLOCK,
                                .enforced = 2,
                                .stream_action = FWPS_STREAM_ACTION_ALLOW_CONNECTION};
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *f = open4();
    ind(f, RECV, "abcdef");
    assert_int_equal(g.co[0].n, 1);
    assert_out(RECV, "abcdef");
    assert_int_equal(g.co[1].n, 1);
    assert_rec(&g.co[1].rec[0], "abcdef");
    ind(f, RECV, "x");
    ind(f, SEND, "y");
    fin(f, SEND);
    assert_int_equal(g.co[0].n, 1); /* never again, either direction */
    assert_int_equal(g.co[1].n, 4);
    assert_out(RECV, "abcdefx");
    assert_out(SEND, "y");
    assert_true(g.out[SEND].fin);
    assert_int_equal(g.flow_state & OWFP_FLOW_DROPPED, 0);
    owfp_flow_close(f);

    /* PERMIT, NONE or CONTINUE beside it: all the same. */
    const UINT32 actions[] = {FWP_ACTION_PERMIT, FWP_ACTION_NONE, FWP_ACTION_CONTINUE};
    for (int i = 0; i < 3; i++) {
        g.co[0].dflt = stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, actions[i]);
        int before = g.co[0].n;
        f = open4();
        ind(f, SEND, "1");
        ind(f, SEND, "2");
        assert_int_equal(g.co[0].n, before + 1);
        owfp_flow_close(f);
    }
    assert_out(SEND, "y121212");
    done();
}

static void test_S20_allow_connection_releases_what_the_callout_held(void **state)
{
    (void)state;
    reset();
    reg(0, FWP_CALLOUT_FLAG_ALLOW_OFFLOAD);
    sf_port(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1001, 0);
    sf_port(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1002, 0);
    /* Flow 1: RECV waits (NEED_MORE_DATA), then SEND lets go of the flow. */
    g.co[0].script[0] = NMD(100);
    g.co[0].script[1] = stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, FWP_ACTION_PERMIT);
    /* Flow 2: RECV deferred, then SEND lets go of the flow. */
    g.co[0].script[2] = defer_ans(FWP_ACTION_NONE);
    g.co[0].script[3] = stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, FWP_ACTION_PERMIT);
    g.co[0].nscript = 4;
    owfp_flow *f = open_port(1001);
    ind(f, RECV, "held");
    assert_int_equal(g.res.dir[RECV].held_bytes, 4);
    ind(f, SEND, "go");
    /* The stage passes everything now, held bytes included, unclassified. */
    assert_int_equal(g.co[0].n, 2);
    assert_out(RECV, "held");
    assert_out(SEND, "go");
    assert_int_equal(g.res.dir[RECV].held_bytes, 0);
    assert_int_equal(g.res.dir[RECV].state & OWFP_DIR_HELD, 0);
    assert_int_equal(g.flow_state, OWFP_FLOW_OFFLOADABLE);
    owfp_flow_close(f);

    f = open_port(1002);
    ind(f, RECV, "deferred");
    assert_int_equal(g.res.dir[RECV].state, OWFP_DIR_DEFERRED | OWFP_DIR_HELD);
    ind(f, SEND, "go");
    assert_int_equal(g.co[0].n, 4);
    assert_out(RECV, "helddeferred");
    assert_out(SEND, "gogo");
    assert_int_equal(g.res.dir[RECV].held_bytes, 0);
    assert_int_equal(g.res.dir[RECV].state & (OWFP_DIR_HELD | OWFP_DIR_DEFERRED), 0);
    assert_int_equal(g.flow_state, OWFP_FLOW_OFFLOADABLE);
    ind(f, RECV, "more");
    assert_int_equal(g.co[0].n, 4);
    assert_out(RECV, "helddeferredmore");
    owfp_flow_close(f);
    done();
}

static void test_O4_allow_connection_makes_the_flow_offloadable(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, FWP_CALLOUT_FLAG_ALLOW_OFFLOAD);
    reg(1, FWP_CALLOUT_FLAG_ALLOW_OFFLOAD);
    sf_port(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 80, 0);
    sf_port(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 80, 0);
    g.co[0].dflt = stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, FWP_ACTION_PERMIT);
    g.co[1].script[0] = ANS(FWP_ACTION_CONTINUE);
    g.co[1].nscript = 1;
    g.co[1].dflt = stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, FWP_ACTION_CONTINUE);
    owfp_flow *f = open_port(80);
    ind(f, RECV, "a"); /* callout 0 lets go, callout 1 still inspects */
    assert_int_equal(g.flow_state, 0);
    ind(f, SEND, "b"); /* now callout 1 lets go too */
    assert_int_equal(g.flow_state, OWFP_FLOW_OFFLOADABLE);
    ind(f, RECV, "c");
    assert_int_equal(g.flow_state, OWFP_FLOW_OFFLOADABLE);
    assert_int_equal(g.co[0].n + g.co[1].n, 3);
    assert_out(RECV, "ac");
    assert_out(SEND, "b");
    owfp_flow_close(f);
    /* A flow that matches no stream filter is offloadable at once. */
    f = open_port(443);
    ind(f, RECV, "tls");
    assert_int_equal(g.flow_state, OWFP_FLOW_OFFLOADABLE);
    assert_out(RECV, "actls");
    owfp_flow_close(f);
    done();
}

static void test_O1_callout_without_allow_offload_keeps_the_flow_inspected(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, FWP_CALLOUT_FLAG_ALLOW_OFFLOAD);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].dflt = g.co[1].dflt = stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, FWP_ACTION_PERMIT);
    owfp_flow *f = open4();
    ind(f, RECV, "a");
    ind(f, SEND, "b");
    /* Both let go (S20), but callout 1 does not allow offload. */
    assert_int_equal(g.co[0].n, 1);
    assert_int_equal(g.co[1].n, 1);
    assert_int_equal(g.flow_state, 0);
    assert_out(RECV, "a");
    assert_out(SEND, "b");
    owfp_flow_close(f);
    done();
}

static void test_O2_rsc_uso_uro_flags_do_not_change_stream_indications(void **state)
{
    (void)state;
    reset();
    reg(0, FWP_CALLOUT_FLAG_ALLOW_RSC | FWP_CALLOUT_FLAG_ALLOW_USO | FWP_CALLOUT_FLAG_ALLOW_URO);
    reg(1, 0);
    sublayers();
    sf(0, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[0] = g.co[1].script[0] = ANS(FWP_ACTION_CONTINUE);
    g.co[0].nscript = g.co[1].nscript = 1;
    g.co[0].dflt = g.co[1].dflt =
        stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, FWP_ACTION_CONTINUE);
    owfp_flow *f = open4();
    /* A coalesced 100 KiB receive reaches both callouts whole. */
    size_t n = 100 * KiB;
    uint8_t *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 31);
    assert_int_equal(indm(f, RECV, big, n, OWFP_STREAM_PUSH), STATUS_SUCCESS);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(g.co[k].n, 1);
        assert_int_equal(g.co[k].rec[0].len, n);
        assert_int_equal(g.co[k].rec[0].nnbl, 1);
        assert_int_equal(g.co[k].rec[0].flags,
                         FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_RECEIVE_PUSH);
        assert_memory_equal(g.co[k].rec[0].bytes, big, RECBYTES);
    }
    assert_int_equal(g.out[RECV].n, n);
    assert_memory_equal(g.out[RECV].buf, big, n);
    /* They do not stand for ALLOW_OFFLOAD either. */
    ind(f, SEND, "x");
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[1].n, 2);
    assert_int_equal(g.flow_state, 0);
    free(big);
    owfp_flow_close(f);
    done();
}

static void hook_clone(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                       const FWPS_INCOMING_METADATA_VALUES0 *meta,
                       FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)call;
    (void)in;
    (void)meta;
    (void)out;
    NET_BUFFER_LIST *clone = NULL;
    g.hook_status[g.nhook_status++] = FwpsCloneStreamData0(io->streamData, NULL, NULL, 0, &clone);
    if (clone)
        FwpsDiscardClonedStreamData0(clone, 0, FALSE);
}

static void test_O3_l2_batch_flag_does_not_change_stream_indications(void **state)
{
    (void)state;
    reset();
    reg(0, FWP_CALLOUT_FLAG_ALLOW_L2_BATCH_CLASSIFY);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].hook = hook_clone;
    owfp_flow *f = open4();
    ind(f, RECV, "one");
    ind(f, RECV, "two");
    assert_int_equal(g.co[0].n, 2);
    for (int i = 0; i < 2; i++) {
        assert_true(g.co[0].rec[i].chain_ok);
        assert_int_equal(g.co[0].rec[i].nnbl, 1);
        assert_int_equal(g.hook_status[i], STATUS_SUCCESS);
    }
    assert_out(RECV, "onetwo");
    owfp_flow_close(f);
    done();
}

/* ---- S21, S22, S32 ----------------------------------------------------------- */

static void test_S21_out_of_range_stream_action_drops(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    reg(2, 0);
    sf_port(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1001, 0);
    sf_port(1, &g_hi, FWP_ACTION_CALLOUT_UNKNOWN, 1002, 0);
    sf_port(2, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 1003, 0);
    g.co[0].dflt = stream_ans(FWPS_STREAM_ACTION_TYPE_MAX, FWP_ACTION_PERMIT);
    g.co[1].dflt = stream_ans(0x7fffffff, FWP_ACTION_PERMIT);
    g.co[2].dflt = stream_ans(FWPS_STREAM_ACTION_TYPE_MAX + 3, FWP_ACTION_CONTINUE);
    owfp_flow *f1 = open_port(1001);
    ind(f1, RECV, "abc");
    assert_int_equal(g.flow_state, OWFP_FLOW_DROPPED);
    owfp_flow *f2 = open_port(1002);
    ind(f2, SEND, "abc");
    assert_int_equal(g.flow_state, OWFP_FLOW_DROPPED);
    assert_out(RECV, "");
    assert_out(SEND, "");
    /* From an INSPECTION filter a drop, and so this, is ignored. */
    owfp_flow *f3 = open_port(1003);
    ind(f3, RECV, "abc");
    assert_int_equal(g.flow_state, 0);
    assert_out(RECV, "abc");
    owfp_flow_close(f1);
    owfp_flow_close(f2);
    owfp_flow_close(f3);
    done();
}

static void test_S22_deleted_filter_releases_held_data_as_permitted(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    reg(2, 0);
    UINT64 f0 = sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 9);
    sf(2, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 5);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[0] = NMD(100);                  /* RECV: waiting */
    g.co[0].script[1] = defer_ans(FWP_ACTION_NONE); /* SEND: deferred */
    g.co[0].nscript = 2;
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    g.co[2].dflt = ANS(FWP_ACTION_BLOCK);
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    ind(f, SEND, "xyz");
    assert_int_equal(g.res.dir[RECV].held_bytes, 3);
    assert_int_equal(g.res.dir[SEND].state, OWFP_DIR_DEFERRED | OWFP_DIR_HELD);
    assert_int_equal(FwpmFilterDeleteById0(h_session, f0), STATUS_SUCCESS);
    ind(f, RECV, "def");
    /* Held data leaves as if permitted: past the rest of its sublayer
     * (callout 2 would block it), on to the lower sublayer, in order. */
    assert_int_equal(g.co[0].n, 2);
    assert_out(RECV, "abc");
    assert_out(SEND, "xyz");
    assert_int_equal(g.co[2].n, 1); /* only "def" */
    assert_rec(&g.co[2].rec[0], "def");
    assert_int_equal(g.co[1].n, 2);
    int r = g.co[1].rec[0].flags & FWPS_STREAM_FLAG_RECEIVE ? 0 : 1;
    assert_rec(&g.co[1].rec[r], "abc");
    assert_rec(&g.co[1].rec[1 - r], "xyz");
    for (int d = 0; d < 2; d++) {
        assert_int_equal(g.res.dir[d].held_bytes, 0);
        assert_int_equal(g.res.dir[d].state & (OWFP_DIR_DEFERRED | OWFP_DIR_HELD), 0);
    }
    /* The removed callout has nothing left to continue. */
    assert_int_equal(FwpsStreamContinue0(g.flow_id, g.co[0].id, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_SEND),
                     STATUS_INVALID_PARAMETER);
    owfp_flow_close(f);
    done();
}

static void test_S32_mid_stream_filter_joins_only_with_the_flag(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    reg(1, FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION);
    reg(2, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_INSPECTION, 3);
    g.co[0].dflt = g.co[1].dflt = g.co[2].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *old = open4();
    ind(old, RECV, "a"); /* the flow's stream path exists now */
    owfp_flow *fresh = open_port(81); /* opened, no stream data yet */
    sf(1, NULL, FWP_ACTION_CALLOUT_INSPECTION, 2);
    sf(2, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1);

    ind(old, RECV, "b");
    assert_int_equal(g.co[1].n, 1);
    assert_int_equal(g.co[2].n, 0);
    assert_rec(&g.co[1].rec[0], "b");
    assert_int_equal(g.co[1].rec[0].meta_flags & FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION,
                     FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION);
    ind(old, SEND, "c");
    assert_int_equal(g.co[1].n, 2);
    assert_int_equal(g.co[1].rec[1].meta_flags & FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION, 0);
    assert_int_equal(g.co[2].n, 0);

    /* Flows whose stream starts later get both, without the flag. */
    ind(fresh, SEND, "d");
    assert_int_equal(g.co[1].n, 3);
    assert_int_equal(g.co[2].n, 1);
    assert_int_equal(g.co[1].rec[2].meta_flags, 0);
    assert_int_equal(g.co[2].rec[0].meta_flags, 0);
    assert_out(RECV, "ab");
    assert_out(SEND, "cd");
    owfp_flow_close(old);
    owfp_flow_close(fresh);
    done();
}

/* ---- R5 at the stream layer (T19) ----------------------------------------- */

static void test_R5_T19_unregistered_stream_callout(void **state)
{
    (void)state;
    reset();
    sublayers();
    for (int i = 0; i < 4; i++)
        reg(i, 0);
    sf_port(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1001, 0);
    sf_port(1, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1002,
            FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED);
    sf_port(2, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 1003, 0);
    sf(3, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[3].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *f[3];
    for (int i = 0; i < 3; i++) {
        f[i] = open_port((uint16_t)(1001 + i));
        ind(f[i], RECV, "before|");
        assert_int_equal(g.co[i].n, 1);
    }
    assert_out(RECV, "before|before|before|");
    for (int i = 0; i < 3; i++)
        assert_int_equal(FwpsCalloutUnregisterById0(g.co[i].id), STATUS_SUCCESS);
    int lower = g.co[3].n;
    ind(f[0], RECV, "blocked");
    assert_out(RECV, "before|before|before|");
    assert_int_equal(g.co[3].n, lower);
    assert_int_equal(g.flow_state, 0);
    ind(f[1], RECV, "permitted");
    assert_out(RECV, "before|before|before|permitted");
    ind(f[2], RECV, "inspected");
    assert_out(RECV, "before|before|before|permittedinspected");
    assert_int_equal(g.co[3].n, lower + 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g.co[i].n, 1);
        owfp_flow_close(f[i]);
    }
    done();
}

/* ---- misbehaving callouts --------------------------------------------------- */

static void test_S15_Q14_count_beyond_the_length_is_clamped(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = ANSN(FWP_ACTION_PERMIT, 100);
    g.co[0].script[1] = ANSN(FWP_ACTION_BLOCK, (SIZE_T)-1);
    g.co[0].nscript = 2;
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    assert_int_equal(g.co[0].n, 1);
    ind(f, RECV, "def");
    assert_int_equal(g.co[0].n, 2);
    ind(f, RECV, "ghi");
    assert_int_equal(g.co[0].n, 3);
    assert_out(RECV, "abcghi");
    assert_int_equal(g.flow_state, 0);
    owfp_flow_close(f);
    done();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_S19_continue_during_the_deferring_classify, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_need_more_data_ignores_count_and_action_type, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_threshold_is_a_total_and_needs_new_bytes, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_held_bytes_outlive_the_callers_buffer, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_held_bytes_are_copied_once, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_buffer_limit_reached_at_8MiB, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_Q16_need_more_data_past_the_8MiB_limit_drops, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_Q16_need_more_data_with_no_more_data_drops, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S18_T15_drop_connection_by_filter_type, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S18_drop_discards_everything_of_both_directions, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S19_T14_defer_then_continue_from_a_worker, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S19_Q19_defer_on_send_is_honoured, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S19_continue_status_codes, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S19_continue_from_inside_classify_is_refused, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S20_allow_connection_permits_and_stops_both_directions, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S20_allow_connection_releases_what_the_callout_held, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_O1_callout_without_allow_offload_keeps_the_flow_inspected, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_O2_rsc_uso_uro_flags_do_not_change_stream_indications, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_O3_l2_batch_flag_does_not_change_stream_indications, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_O4_allow_connection_makes_the_flow_offloadable, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S21_out_of_range_stream_action_drops, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S22_deleted_filter_releases_held_data_as_permitted, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S32_mid_stream_filter_joins_only_with_the_flag, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R5_T19_unregistered_stream_callout, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S15_Q14_count_beyond_the_length_is_clamped, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
