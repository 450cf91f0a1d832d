/*
 * The recording stream callouts and data-plane helpers shared by
 * test_stream.c and test_stream_actions.c (see stream_harness.h).
 */
#include "stream_harness.h"

#include <stdlib.h>
#include <string.h>

struct stream_test_state g;
GUID g_hi, g_lo;

/* ---- recording callouts --------------------------------------------------- */

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
UINT32 reg(int slot, UINT32 flags)
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
UINT64 filter_at(const GUID *layer, int slot, const GUID *sublayer, UINT32 action,
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

UINT64 sf(int slot, const GUID *sublayer, UINT32 action, UINT64 weight)
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

void take(const struct owfp_stream_result *r)
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

NTSTATUS indm(owfp_flow *f, int d, const void *p, size_t n, uint32_t mods)
{
    NTSTATUS st = owfp_stream_indicate(f, (enum owfp_stream_direction)d, p, n, mods, &g.res);
    if (NT_SUCCESS(st))
        take(&g.res);
    return st;
}

void ind(owfp_flow *f, int d, const char *s)
{
    assert_int_equal(indm(f, d, s, strlen(s), 0), STATUS_SUCCESS);
}

void fin(owfp_flow *f, int d)
{
    assert_int_equal(owfp_stream_fin(f, (enum owfp_stream_direction)d, &g.res), STATUS_SUCCESS);
    take(&g.res);
}

void poll_flow(owfp_flow *f)
{
    assert_int_equal(owfp_stream_poll(f, &g.res), STATUS_SUCCESS);
    take(&g.res);
}

void assert_out(int d, const char *want)
{
    size_t n = strlen(want);
    assert_int_equal(g.out[d].n, n);
    if (n)
        assert_memory_equal(g.out[d].buf, want, n);
}

void assert_rec(const struct rec *r, const char *want)
{
    size_t n = strlen(want);
    assert_int_equal(r->len, n);
    assert_int_equal(r->copied, n < RECBYTES ? n : RECBYTES);
    if (n)
        assert_memory_equal(r->bytes, want, n);
}

owfp_flow *open4(void)
{
    struct owfp_flow_params p = h_params4(49152, 80, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    g.flow_id = owfp_flow_id(f);
    return f;
}

/* ---- injection helpers --------------------------------------------------- */

void inj_setup(void)
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

void NTAPI inj_done(void *ctx, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
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
NTSTATUS inject(int slot, UINT32 sflags, const void *data, size_t len)
{
    void *ctx;
    NET_BUFFER_LIST *nbl = nbl_copy(data, len, &ctx);
    NTSTATUS st = FwpsStreamInjectAsync0(g.inj, NULL, 0, g.flow_id, g.co[slot].id,
                                         FWPS_LAYER_STREAM_V4, sflags, nbl, len, inj_done, ctx);
    if (!NT_SUCCESS(st))
        free_nbl(ctx, nbl);
    return st;
}

void NTAPI wakeup(void *arg, owfp_flow *flow)
{
    (void)arg;
    (void)flow;
    if (!pthread_equal(pthread_self(), g.owner))
        atomic_store(&g.wakeup_foreign, true);
    atomic_fetch_add(&g.wakeups, 1);
}

/* ---- per-test state ----------------------------------------------------- */

void reset(void)
{
    for (int d = 0; d < 2; d++)
        free(g.out[d].buf);
    memset(&g, 0, sizeof(g));
    g.owner = pthread_self();
    for (int i = 0; i < NCO; i++)
        g.co[i].dflt = ANS(FWP_ACTION_PERMIT);
}

void done(void)
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

int group_teardown(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++)
        free(g.out[d].buf);
    memset(&g, 0, sizeof(g));
    return 0;
}

void sublayers(void)
{
    g_hi = h_sublayer(0x40, 0x40);
    g_lo = h_sublayer(0x20, 0x20);
}
