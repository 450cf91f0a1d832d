/*
 * Stream injection and the stream helpers (spec §10.6: S25-S31; matrix T13,
 * T20, T21): injection handles, FwpsStreamInjectAsync0 inline and
 * out-of-band, its completions, FwpsInjectionHandleDestroy0, the flow's
 * wake-up function, FwpsCloneStreamData0, FwpsCopyStreamDataToBuffer0,
 * FwpsDiscardClonedStreamData0 and FwpsAllocateNetBufferAndNetBufferList0 /
 * FwpsFreeNetBufferList0.
 *
 * The usual path: callout A in sublayer HI (weight 0x40, CALLOUT_TERMINATING)
 * does what the test sets in g.a_mode; callout B in sublayer LO (0x20,
 * CALLOUT_INSPECTION) records what reaches it. Callouts never assert (a
 * longjmp out of a classify would leave the engine mid-call): they record,
 * and the test body asserts.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ndis/ndis_internal.h"

#define STREAM4_ID FWPS_LAYER_STREAM_V4
#define STREAM4 (&FWPM_LAYER_STREAM_V4)
#define STREAM6 (&FWPM_LAYER_STREAM_V6)
#define SEND OWFP_STREAM_SEND
#define RECV OWFP_STREAM_RECEIVE
#define F_SEND FWPS_STREAM_FLAG_SEND
#define F_RECV FWPS_STREAM_FLAG_RECEIVE
#define TAG 0x74736574u

enum a_mode {
    A_PERMIT,
    A_BLOCK,
    A_INJECT_BLOCK,        /* inject g.inline_nbl in this direction, then BLOCK (once) */
    A_INJECT_PERMIT,       /* inject, then PERMIT (once) */
    A_INJECT_OTHER_PERMIT, /* inject into the other direction, then PERMIT (once) */
    A_INJECT_DROP,         /* inject, then DROP_CONNECTION (once) */
    A_DEFER,               /* DEFER (once), then PERMIT */
    A_DESTROY_HANDLE,      /* FwpsInjectionHandleDestroy0 from inside classify */
    A_GATHER,              /* NEED_MORE_DATA until g.required bytes, then examine */
    A_CLONE_BLOCK,         /* clone every indication (data and FIN) and BLOCK it */
    A_CLONE_FLAGS,         /* FwpsCloneStreamData0 with allocateCloneFlags 1 */
    A_OOB_WORKER,          /* clone, hand to the worker thread, BLOCK (T13) */
};

#define MAX_REC 64

struct completion_rec {
    NET_BUFFER_LIST *nbl;
    NTSTATUS status;
    void *ctx;
    bool on_owner;
};

/* Reset by setup() before every test. */
static struct {
    HANDLE inj;
    NDIS_HANDLE pool;
    UINT32 id_a, id_b;
    int a_mode;
    int a_calls, b_calls;
    /* inline injection by A */
    NET_BUFFER_LIST *inline_nbl;
    SIZE_T inline_len;
    NTSTATUS inline_status;
    /* what reached B, per direction */
    uint8_t b_seen[2][256];
    size_t b_seen_len[2];
    UINT32 b_flags[16];
    int b_nflags;
    /* A_CLONE_BLOCK */
    NET_BUFFER_LIST *clones[MAX_REC];
    NTSTATUS clone_status[MAX_REC];
    SIZE_T clone_len[MAX_REC];
    UINT32 clone_flags[MAX_REC];
    int nclones;
    /* A_GATHER */
    UINT32 required;
    int gather_nbls;
    SIZE_T gather_len;
    uint8_t gather_part[16];
    SIZE_T gather_part_n;
    uint8_t gather_all[64];
    SIZE_T gather_all_n;
    NTSTATUS gather_clone_status;
    uint8_t gather_clone[64];
    SIZE_T gather_clone_n;
    bool gather_clone_single;
    /* completions */
    pthread_t owner;
    atomic_int ncompl;
    struct completion_rec compl[MAX_REC];
    /* wake-up function */
    atomic_int wakes;
    void *wake_arg;
    owfp_flow *wake_flow;
} g;

/* ------------------------------------------------------------ helpers */

static NDIS_HANDLE make_pool(BOOLEAN with_nb)
{
    NET_BUFFER_LIST_POOL_PARAMETERS p;
    memset(&p, 0, sizeof(p));
    p.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    p.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    p.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    p.ProtocolId = NDIS_PROTOCOL_ID_DEFAULT;
    p.fAllocateNetBuffer = with_nb;
    p.PoolTag = TAG;
    return NdisAllocateNetBufferListPool(NULL, &p);
}

static int setup(void **state)
{
    memset(&g, 0, sizeof(g));
    g.owner = pthread_self();
    g.pool = make_pool(TRUE);
    if (!g.pool)
        return -1;
    if (FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, &g.inj) != STATUS_SUCCESS)
        return -1;
    return h_setup(state);
}

static int teardown(void **state)
{
    int rc = h_teardown(state); /* closes flows: pending injections complete */
    if (g.inj)
        FwpsInjectionHandleDestroy0(g.inj);
    NdisFreeNetBufferListPool(g.pool);
    return rc;
}

/* An NBL (from the test's NDIS pool) over the caller's bytes: one MDL. */
static NET_BUFFER_LIST *make_nbl(const void *data, size_t len)
{
    MDL *mdl = NdisAllocateMdl(NULL, (PVOID)data, (UINT)len);
    assert_non_null(mdl);
    NET_BUFFER_LIST *nbl = NULL;
    assert_int_equal(FwpsAllocateNetBufferAndNetBufferList0(g.pool, 0, 0, mdl, 0, len, &nbl),
                     STATUS_SUCCESS);
    assert_non_null(nbl);
    return nbl;
}

static void free_nbl(NET_BUFFER_LIST *nbl)
{
    MDL *mdl = NET_BUFFER_FIRST_MDL(NET_BUFFER_LIST_FIRST_NB(nbl));
    FwpsFreeNetBufferList0(nbl);
    while (mdl) {
        MDL *next = mdl->Next;
        NdisFreeMdl(mdl);
        mdl = next;
    }
}

static void NTAPI on_complete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    (void)dispatchLevel;
    int i = atomic_fetch_add(&g.ncompl, 1);
    if (i < MAX_REC)
        g.compl[i] = (struct completion_rec){nbl, nbl->Status, context,
                                             pthread_equal(pthread_self(), g.owner) != 0};
}

/* How often `nbl` completed; its last status in *status. */
static int completions_of(const NET_BUFFER_LIST *nbl, NTSTATUS *status)
{
    int n = 0;
    int total = atomic_load(&g.ncompl);
    for (int i = 0; i < total && i < MAX_REC; i++) {
        if (g.compl[i].nbl == nbl) {
            n++;
            if (status)
                *status = g.compl[i].status;
        }
    }
    return n;
}

static void assert_completed_once(const NET_BUFFER_LIST *nbl, NTSTATUS status)
{
    NTSTATUS st = 0;
    assert_int_equal(completions_of(nbl, &st), 1);
    assert_int_equal(st, status);
    for (int i = 0; i < atomic_load(&g.ncompl) && i < MAX_REC; i++)
        if (g.compl[i].nbl == nbl)
            assert_true(g.compl[i].on_owner);
}

static NTSTATUS inject(owfp_flow *f, UINT32 calloutId, UINT32 flags, NET_BUFFER_LIST *nbl,
                       SIZE_T len)
{
    return FwpsStreamInjectAsync0(g.inj, NULL, 0, owfp_flow_id(f), calloutId, STREAM4_ID, flags,
                                  nbl, len, on_complete, nbl);
}

static UINT32 dir_flag(UINT32 streamFlags)
{
    return streamFlags & (F_SEND | F_RECV);
}

static int dir_index(UINT32 streamFlags)
{
    return (streamFlags & F_RECV) ? RECV : SEND;
}

/* ------------------------------------------------------------ callouts */

static void clone_record(FWPS_STREAM_DATA0 *sd)
{
    if (g.nclones >= MAX_REC)
        return;
    int i = g.nclones++;
    g.clone_status[i] = FwpsCloneStreamData0(sd, NULL, NULL, 0, &g.clones[i]);
    g.clone_len[i] = sd->dataLength;
    g.clone_flags[i] = sd->flags;
}

/* Set by the T13 test: hands a clone to its worker. */
static void (*g_hand_to_worker)(FWPS_STREAM_DATA0 *sd);

static void NTAPI classify_a(const FWPS_INCOMING_VALUES0 *in,
                             const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                             const FWPS_FILTER0 *filter, UINT64 flowContext,
                             FWPS_CLASSIFY_OUT0 *out)
{
    (void)filter;
    (void)flowContext;
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    FWPS_STREAM_DATA0 *sd = io->streamData;
    g.a_calls++;
    out->actionType = FWP_ACTION_PERMIT;
    UINT32 dir = dir_flag(sd->flags);
    switch (g.a_mode) {
    case A_PERMIT:
        break;
    case A_BLOCK:
        out->actionType = FWP_ACTION_BLOCK;
        break;
    case A_INJECT_BLOCK:
    case A_INJECT_PERMIT:
    case A_INJECT_OTHER_PERMIT:
    case A_INJECT_DROP: {
        UINT32 f = g.a_mode == A_INJECT_OTHER_PERMIT ? (dir == F_SEND ? F_RECV : F_SEND) : dir;
        g.inline_status = FwpsStreamInjectAsync0(g.inj, NULL, 0, meta->flowHandle, g.id_a,
                                                 in->layerId, f, g.inline_nbl, g.inline_len,
                                                 on_complete, g.inline_nbl);
        if (g.a_mode == A_INJECT_BLOCK)
            out->actionType = FWP_ACTION_BLOCK;
        if (g.a_mode == A_INJECT_DROP)
            io->streamAction = FWPS_STREAM_ACTION_DROP_CONNECTION;
        g.a_mode = A_PERMIT;
        break;
    }
    case A_DEFER:
        io->streamAction = FWPS_STREAM_ACTION_DEFER;
        out->actionType = FWP_ACTION_NONE;
        g.a_mode = A_PERMIT;
        break;
    case A_DESTROY_HANDLE:
        g.inline_status = FwpsInjectionHandleDestroy0(g.inj);
        break;
    case A_GATHER:
        if (sd->dataLength < g.required) {
            io->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
            io->countBytesRequired = g.required;
            out->actionType = FWP_ACTION_NONE;
            break;
        }
        g.gather_len = sd->dataLength;
        g.gather_nbls = 0;
        for (NET_BUFFER_LIST *n = sd->netBufferListChain; n; n = NET_BUFFER_LIST_NEXT_NBL(n))
            g.gather_nbls++;
        FwpsCopyStreamDataToBuffer0(sd, g.gather_part, 5, &g.gather_part_n);
        FwpsCopyStreamDataToBuffer0(sd, g.gather_all, sizeof(g.gather_all), &g.gather_all_n);
        {
            NET_BUFFER_LIST *c = NULL;
            g.gather_clone_status = FwpsCloneStreamData0(sd, NULL, NULL, 0, &c);
            if (g.gather_clone_status == STATUS_SUCCESS) {
                NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(c);
                g.gather_clone_single = !NET_BUFFER_LIST_NEXT_NBL(c) && nb && !NET_BUFFER_NEXT_NB(nb);
                g.gather_clone_n = owfp_mdl_chain_copy(NET_BUFFER_CURRENT_MDL(nb),
                                                       NET_BUFFER_CURRENT_MDL_OFFSET(nb),
                                                       g.gather_clone,
                                                       NET_BUFFER_DATA_LENGTH(nb) <
                                                               sizeof(g.gather_clone)
                                                           ? NET_BUFFER_DATA_LENGTH(nb)
                                                           : sizeof(g.gather_clone));
                if (NET_BUFFER_DATA_LENGTH(nb) != g.gather_clone_n)
                    g.gather_clone_n = (SIZE_T)-1;
                FwpsFreeCloneNetBufferList0(c, 0);
            }
        }
        g.a_mode = A_PERMIT;
        break;
    case A_CLONE_BLOCK:
        clone_record(sd);
        out->actionType = FWP_ACTION_BLOCK;
        break;
    case A_CLONE_FLAGS: {
        NET_BUFFER_LIST *c = NULL;
        g.inline_status = FwpsCloneStreamData0(sd, NULL, NULL, 1, &c);
        if (g.inline_status == STATUS_SUCCESS)
            FwpsFreeCloneNetBufferList0(c, 0);
        break;
    }
    case A_OOB_WORKER:
        g_hand_to_worker(sd);
        out->actionType = FWP_ACTION_BLOCK;
        break;
    }
}

/* B: inspection; records the bytes and flags of every indication it gets. */
static void NTAPI classify_b(const FWPS_INCOMING_VALUES0 *in,
                             const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                             const FWPS_FILTER0 *filter, UINT64 flowContext,
                             FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)filter;
    (void)flowContext;
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    FWPS_STREAM_DATA0 *sd = io->streamData;
    g.b_calls++;
    if (g.b_nflags < 16)
        g.b_flags[g.b_nflags++] = sd->flags;
    int d = dir_index(sd->flags);
    SIZE_T n = 0;
    size_t room = sizeof(g.b_seen[d]) - g.b_seen_len[d];
    FwpsCopyStreamDataToBuffer0(sd, g.b_seen[d] + g.b_seen_len[d], room, &n);
    g.b_seen_len[d] += n;
    out->actionType = FWP_ACTION_CONTINUE;
}

static UINT32 add_callout(uint32_t n, FWPS_CALLOUT_CLASSIFY_FN0 fn, const GUID *layer,
                          const GUID *sublayer, uint32_t action)
{
    GUID key = h_guid(0x5e000000u | n);
    UINT32 id = 0;
    assert_int_equal(h_register0(&key, 0, fn, h_notify_ok, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&key, layer), STATUS_SUCCESS);
    struct h_filter_spec spec = {.layer = layer, .sublayer = sublayer, .action = action,
                                 .callout = &key};
    UINT64 fid = 0;
    assert_int_equal(h_filter(&spec, &fid), STATUS_SUCCESS);
    return id;
}

/* A (HI, terminating) and B (LO, inspection) on STREAM_V4. */
static void std_path(void)
{
    GUID hi = h_sublayer(1, 0x40);
    GUID lo = h_sublayer(2, 0x20);
    g.id_a = add_callout(1, classify_a, STREAM4, &hi, FWP_ACTION_CALLOUT_TERMINATING);
    g.id_b = add_callout(2, classify_b, STREAM4, &lo, FWP_ACTION_CALLOUT_INSPECTION);
}

static owfp_flow *open_flow(uint16_t lport)
{
    struct owfp_flow_params p = h_params4(lport, 80, OWFP_OUTBOUND);
    return h_open(&p, NULL);
}

static void indicate(owfp_flow *f, int dir, const char *s, struct owfp_stream_result *r)
{
    assert_int_equal(owfp_stream_indicate(f, dir, s, strlen(s), 0, r), STATUS_SUCCESS);
}

static void poll_flow(owfp_flow *f, struct owfp_stream_result *r)
{
    assert_int_equal(owfp_stream_poll(f, r), STATUS_SUCCESS);
}

/* For injections the engine must refuse: a flow on lport whose first
 * indication ("x" in dir) A blocked, and a 3-byte NBL "abc" (the test's to
 * free). */
static owfp_flow *open_for_refusal(uint16_t lport, int dir, struct owfp_stream_result *r,
                                   NET_BUFFER_LIST **nbl)
{
    static uint8_t buf[] = "abc";
    owfp_flow *f = open_flow(lport);
    g.a_mode = A_BLOCK;
    indicate(f, dir, "x", r);
    *nbl = make_nbl(buf, 3);
    return f;
}

/* The refusals left no trace: nothing came out in dir, no completion ran,
 * also not at close; frees the NBL. */
static void close_after_refusal(owfp_flow *f, int dir, struct owfp_stream_result *r,
                                NET_BUFFER_LIST *nbl)
{
    poll_flow(f, r);
    assert_int_equal(r->dir[dir].nspans, 0);
    owfp_flow_close(f);
    assert_int_equal(atomic_load(&g.ncompl), 0);
    free_nbl(nbl);
}

static void assert_span(const struct owfp_stream_output *o, size_t i, const void *data,
                        size_t len, uint32_t origin)
{
    assert_true(i < o->nspans);
    assert_int_equal(o->spans[i].len, len);
    assert_memory_equal(o->spans[i].data, data, len);
    assert_int_equal(o->spans[i].origin, origin);
}

/* Concatenation of a direction's spans. */
static size_t concat(const struct owfp_stream_output *o, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < o->nspans; i++) {
        assert_true(n + o->spans[i].len <= cap);
        memcpy(buf + n, o->spans[i].data, o->spans[i].len);
        n += o->spans[i].len;
    }
    return n;
}

static void NTAPI count_wake(void *arg, owfp_flow *flow)
{
    atomic_fetch_add(&g.wakes, 1);
    g.wake_arg = arg;
    g.wake_flow = flow;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------- S26: handles */

static void test_S26_injection_handle_create_checks_family_flags_pointer(void **state)
{
    (void)state;
    const ADDRESS_FAMILY fams[] = {AF_UNSPEC, AF_INET, 23, 10};
    HANDLE h[4];
    for (int i = 0; i < 4; i++) {
        h[i] = NULL;
        assert_int_equal(FwpsInjectionHandleCreate0(fams[i], FWPS_INJECTION_TYPE_STREAM, &h[i]),
                         STATUS_SUCCESS);
        assert_non_null(h[i]);
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(h[i], h[j]);
    }
    HANDLE x = NULL;
    assert_int_equal(FwpsInjectionHandleCreate0(99, FWPS_INJECTION_TYPE_STREAM, &x),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(FwpsInjectionHandleCreate0(AF_INET, 0, &x), STATUS_INVALID_PARAMETER);
    assert_int_equal(FwpsInjectionHandleCreate0(AF_INET, FWPS_INJECTION_TYPE_STREAM, NULL),
                     STATUS_FWP_NULL_POINTER);
    for (int i = 0; i < 4; i++)
        assert_int_equal(FwpsInjectionHandleDestroy0(h[i]), STATUS_SUCCESS);
    /* Unknown handles. */
    assert_int_equal(FwpsInjectionHandleDestroy0(h[0]), STATUS_INVALID_PARAMETER);
    assert_int_equal(FwpsInjectionHandleDestroy0(NULL), STATUS_INVALID_PARAMETER);
    assert_int_equal(FwpsInjectionHandleDestroy0((HANDLE)(uintptr_t)0x12345),
                     STATUS_INVALID_PARAMETER);
}

/* ------------------------------------------- S26: FwpsStreamInjectAsync0 */

static void test_S26_inject_rejects_invalid_arguments_without_completion(void **state)
{
    (void)state;
    std_path();
    struct owfp_stream_result r;
    NET_BUFFER_LIST *nbl;
    owfp_flow *f = open_for_refusal(1000, SEND, &r, &nbl);
    UINT64 fid = owfp_flow_id(f);

    /* completionFn NULL */
    assert_int_equal(FwpsStreamInjectAsync0(g.inj, NULL, 0, fid, g.id_a, STREAM4_ID, F_SEND, nbl,
                                            3, NULL, NULL),
                     STATUS_FWP_NULL_POINTER);
    /* flags must be 0 */
    assert_int_equal(FwpsStreamInjectAsync0(g.inj, NULL, 1, fid, g.id_a, STREAM4_ID, F_SEND, nbl,
                                            3, on_complete, NULL),
                     STATUS_FWP_INVALID_PARAMETER);
    /* layer must be a stream layer */
    assert_int_equal(FwpsStreamInjectAsync0(g.inj, NULL, 0, fid, g.id_a,
                                            FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4, F_SEND, nbl, 3,
                                            on_complete, NULL),
                     STATUS_FWP_INVALID_PARAMETER);
    /* exactly one direction, with that direction's modifiers only */
    const UINT32 bad_flags[] = {
        0,
        F_SEND | F_RECV,
        FWPS_STREAM_FLAG_SEND_NODELAY,
        FWPS_STREAM_FLAG_RECEIVE_PUSH,
        F_SEND | FWPS_STREAM_FLAG_RECEIVE_PUSH,
        F_SEND | FWPS_STREAM_FLAG_RECEIVE_EXPEDITED,
        F_RECV | FWPS_STREAM_FLAG_SEND_NODELAY,
        F_RECV | FWPS_STREAM_FLAG_SEND_EXPEDITED,
    };
    for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++)
        assert_int_equal(inject(f, g.id_a, bad_flags[i], nbl, 3), STATUS_FWP_INVALID_PARAMETER);
    /* NULL NBL is only a FIN */
    assert_int_equal(inject(f, g.id_a, F_SEND, NULL, 0), STATUS_FWP_NULL_POINTER);
    assert_int_equal(inject(f, g.id_a, F_RECV | FWPS_STREAM_FLAG_RECEIVE_PUSH, NULL, 0),
                     STATUS_FWP_NULL_POINTER);

    /* Nothing was taken: no completion, nothing comes out, the NBL is ours. */
    assert_int_equal(atomic_load(&g.ncompl), 0);
    poll_flow(f, &r);
    assert_int_equal(r.dir[SEND].nspans, 0);
    assert_int_equal(r.dir[RECV].nspans, 0);
    poll_flow(f, &r);
    assert_int_equal(atomic_load(&g.ncompl), 0);
    owfp_flow_close(f);
    assert_int_equal(atomic_load(&g.ncompl), 0);
    free_nbl(nbl);
    assert_int_equal(owfp_ndis_pool_outstanding(g.pool), 0);
}

static void test_S26_T21_disconnect_without_its_direction_is_invalid(void **state)
{
    (void)state;
    std_path();
    struct owfp_stream_result r;
    NET_BUFFER_LIST *nbl;
    owfp_flow *f = open_for_refusal(1001, RECV, &r, &nbl);
    /* T21: RECEIVE_DISCONNECT without RECEIVE, with or without data. */
    assert_int_equal(inject(f, g.id_a, FWPS_STREAM_FLAG_RECEIVE_DISCONNECT, NULL, 0),
                     STATUS_FWP_INVALID_PARAMETER);
    assert_int_equal(inject(f, g.id_a, FWPS_STREAM_FLAG_RECEIVE_DISCONNECT, nbl, 3),
                     STATUS_FWP_INVALID_PARAMETER);
    assert_int_equal(inject(f, g.id_a, FWPS_STREAM_FLAG_SEND_DISCONNECT, NULL, 0),
                     STATUS_FWP_INVALID_PARAMETER);
    /* A disconnect of the other direction. */
    assert_int_equal(inject(f, g.id_a, F_SEND | FWPS_STREAM_FLAG_RECEIVE_DISCONNECT, NULL, 0),
                     STATUS_FWP_INVALID_PARAMETER);
    assert_int_equal(inject(f, g.id_a, F_RECV | FWPS_STREAM_FLAG_SEND_DISCONNECT, nbl, 3),
                     STATUS_FWP_INVALID_PARAMETER);
    poll_flow(f, &r);
    assert_int_equal(r.dir[RECV].state & OWFP_DIR_FIN, 0);
    assert_int_equal(r.dir[SEND].state & OWFP_DIR_FIN, 0);
    assert_int_equal(r.dir[RECV].nspans, 0);
    owfp_flow_close(f);
    assert_int_equal(atomic_load(&g.ncompl), 0);
    free_nbl(nbl);
}

/* T20 / S29: the callout pends the FIN by blocking it, then injects a pure
 * FIN (NULL NBL, SEND_DISCONNECT): accepted, never completed. */
static void test_S26_T20_pure_fin_injection_accepted_without_completion(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1002);
    struct owfp_stream_result r;
    g.a_mode = A_BLOCK;
    indicate(f, SEND, "data", &r);
    assert_int_equal(owfp_stream_fin(f, SEND, &r), STATUS_SUCCESS);
    assert_int_equal(r.dir[SEND].state & OWFP_DIR_FIN, 0); /* FIN pended by A */
    assert_int_equal(g.a_calls, 2);
    assert_int_equal(owfp_flow_set_wakeup(f, count_wake, &g), STATUS_SUCCESS);

    assert_int_equal(FwpsStreamInjectAsync0(g.inj, NULL, 0, owfp_flow_id(f), g.id_a, STREAM4_ID,
                                            F_SEND | FWPS_STREAM_FLAG_SEND_DISCONNECT, NULL, 0,
                                            on_complete, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(atomic_load(&g.wakes), 1);
    poll_flow(f, &r);
    assert_true(r.dir[SEND].state & OWFP_DIR_FIN);
    assert_int_equal(r.dir[SEND].nspans, 0);
    assert_int_equal(r.dir[RECV].state & OWFP_DIR_FIN, 0);
    /* B (lower sublayer) saw the injected FIN as a zero-length DISCONNECT. */
    assert_int_equal(g.b_calls, 1);
    assert_int_equal(g.b_flags[0], F_SEND | FWPS_STREAM_FLAG_SEND_DISCONNECT);
    assert_int_equal(g.a_calls, 2);
    poll_flow(f, &r);
    owfp_flow_close(f);
    assert_int_equal(atomic_load(&g.ncompl), 0);
}

static void test_S26_inject_bad_or_non_stream_handle_is_stale(void **state)
{
    (void)state;
    std_path();
    struct owfp_stream_result r;
    NET_BUFFER_LIST *nbl;
    owfp_flow *f = open_for_refusal(1003, SEND, &r, &nbl);
    UINT64 fid = owfp_flow_id(f);
    HANDLE transport = NULL;
    assert_int_equal(
        FwpsInjectionHandleCreate0(AF_INET, FWPS_INJECTION_TYPE_TRANSPORT, &transport),
        STATUS_SUCCESS);
    const HANDLE bad[] = {NULL, (HANDLE)(uintptr_t)0x12345, (HANDLE)(uintptr_t)~(uintptr_t)0,
                          transport};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(FwpsStreamInjectAsync0(bad[i], NULL, 0, fid, g.id_a, STREAM4_ID, F_SEND,
                                                nbl, 3, on_complete, NULL),
                         STATUS_FWP_INJECT_HANDLE_STALE);
    assert_int_equal(FwpsInjectionHandleDestroy0(transport), STATUS_SUCCESS);
    close_after_refusal(f, SEND, &r, nbl);
}

static void test_S26_inject_with_destroyed_handle_is_closing(void **state)
{
    (void)state;
    std_path();
    struct owfp_stream_result r;
    NET_BUFFER_LIST *nbl;
    owfp_flow *f = open_for_refusal(1004, SEND, &r, &nbl);
    HANDLE h = NULL;
    assert_int_equal(FwpsInjectionHandleCreate0(AF_INET, FWPS_INJECTION_TYPE_STREAM, &h),
                     STATUS_SUCCESS);
    assert_int_equal(FwpsInjectionHandleDestroy0(h), STATUS_SUCCESS); /* nothing pending */
    assert_int_equal(FwpsStreamInjectAsync0(h, NULL, 0, owfp_flow_id(f), g.id_a, STREAM4_ID,
                                            F_SEND, nbl, 3, on_complete, NULL),
                     STATUS_FWP_INJECT_HANDLE_CLOSING);
    close_after_refusal(f, SEND, &r, nbl);
}

static void test_S26_inject_into_unknown_or_closed_flow_not_found(void **state)
{
    (void)state;
    std_path();
    struct owfp_stream_result r;
    NET_BUFFER_LIST *nbl;
    owfp_flow *f = open_for_refusal(1005, SEND, &r, &nbl);
    UINT64 fid = owfp_flow_id(f);
    const UINT64 unknown[] = {0, fid ^ ((UINT64)1 << 40), fid + 1000, ~(UINT64)0};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        assert_int_equal(FwpsStreamInjectAsync0(g.inj, NULL, 0, unknown[i], g.id_a, STREAM4_ID,
                                                F_SEND, nbl, 3, on_complete, NULL),
                         STATUS_NOT_FOUND);
    owfp_flow_close(f);
    assert_int_equal(FwpsStreamInjectAsync0(g.inj, NULL, 0, fid, g.id_a, STREAM4_ID, F_SEND, nbl,
                                            3, on_complete, NULL),
                     STATUS_NOT_FOUND);
    assert_int_equal(FwpsStreamInjectAsync0(g.inj, NULL, 0, fid, g.id_a, STREAM4_ID,
                                            F_SEND | FWPS_STREAM_FLAG_SEND_DISCONNECT, NULL, 0,
                                            on_complete, NULL),
                     STATUS_NOT_FOUND);
    assert_int_equal(atomic_load(&g.ncompl), 0);
    free_nbl(nbl);
}

static void NTAPI classify_never(const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                 const FWPS_FILTER0 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)layerData;
    (void)filter;
    (void)flowContext;
    g.b_calls += 100;
    out->actionType = FWP_ACTION_PERMIT;
}

static void test_S26_oob_inject_by_callout_not_on_path_invalid_parameter(void **state)
{
    (void)state;
    std_path();
    /* C is registered with a filter, but only at STREAM_V6: not on a V4 flow's path. */
    GUID hi6 = h_sublayer(3, 0x30);
    UINT32 id_c = add_callout(3, classify_never, STREAM6, &hi6, FWP_ACTION_CALLOUT_TERMINATING);
    /* D is registered without any filter. */
    GUID key_d = h_guid(0x5e0000d0u);
    UINT32 id_d = 0;
    assert_int_equal(h_register0(&key_d, 0, classify_never, h_notify_ok, NULL, &id_d),
                     STATUS_SUCCESS);
    struct owfp_stream_result r;
    NET_BUFFER_LIST *nbl;
    owfp_flow *f = open_for_refusal(1006, SEND, &r, &nbl);
    assert_int_equal(inject(f, id_c, F_SEND, nbl, 3), STATUS_INVALID_PARAMETER);
    assert_int_equal(inject(f, id_d, F_SEND, nbl, 3), STATUS_INVALID_PARAMETER);
    assert_int_equal(inject(f, 0xfffe, F_SEND, nbl, 3), STATUS_INVALID_PARAMETER);
    assert_int_equal(inject(f, id_c, F_SEND | FWPS_STREAM_FLAG_SEND_DISCONNECT, NULL, 0),
                     STATUS_INVALID_PARAMETER);
    poll_flow(f, &r);
    assert_int_equal(r.dir[SEND].nspans, 0);
    assert_int_equal(r.dir[SEND].state & OWFP_DIR_FIN, 0);
    owfp_flow_close(f);
    assert_int_equal(atomic_load(&g.ncompl), 0);
    assert_int_equal(g.b_calls, 0); /* C never ran; B got nothing: A blocked "x" */
    free_nbl(nbl);
}

static void test_S26_inject_without_engine_is_tcpip_not_ready(void **state)
{
    (void)state;
    assert_null(owfp_engine_current());
    HANDLE h = NULL;
    assert_int_equal(FwpsInjectionHandleCreate0(AF_INET, FWPS_INJECTION_TYPE_STREAM, &h),
                     STATUS_SUCCESS);
    atomic_store(&g.ncompl, 0);
    assert_int_equal(FwpsStreamInjectAsync0(h, NULL, 0, 1, 1, STREAM4_ID,
                                            F_SEND | FWPS_STREAM_FLAG_SEND_DISCONNECT, NULL, 0,
                                            on_complete, NULL),
                     STATUS_FWP_TCPIP_NOT_READY);
    assert_int_equal(atomic_load(&g.ncompl), 0);
    assert_int_equal(FwpsInjectionHandleDestroy0(h), STATUS_SUCCESS);
}

/* ------------------------------------------------ S26: completions */

static void test_S26_completion_once_per_nbl_success_after_delivery(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1010);
    struct owfp_stream_result r;
    g.a_mode = A_BLOCK;
    indicate(f, SEND, "blocked", &r);
    static uint8_t b1[] = "ab", b2[] = "cde", b3[] = "f";
    NET_BUFFER_LIST *n1 = make_nbl(b1, 2), *n2 = make_nbl(b2, 3), *n3 = make_nbl(b3, 1);
    n1->Next = n2;
    n2->Next = n3;
    assert_int_equal(inject(f, g.id_a, F_SEND, n1, 6), STATUS_SUCCESS);
    assert_int_equal(atomic_load(&g.ncompl), 0);

    poll_flow(f, &r);
    assert_int_equal(r.dir[SEND].nspans, 3);
    assert_int_equal(r.dir[SEND].bytes, 6);
    /* Zero-copy: the spans are the NBLs' own memory. */
    assert_ptr_equal(r.dir[SEND].spans[0].data, b1);
    assert_ptr_equal(r.dir[SEND].spans[1].data, b2);
    assert_ptr_equal(r.dir[SEND].spans[2].data, b3);
    assert_span(&r.dir[SEND], 0, "ab", 2, OWFP_SPAN_INJECTED);
    assert_span(&r.dir[SEND], 1, "cde", 3, OWFP_SPAN_INJECTED);
    assert_span(&r.dir[SEND], 2, "f", 1, OWFP_SPAN_INJECTED);
    /* Completion only once the spans have been handed over, at the next call. */
    assert_int_equal(atomic_load(&g.ncompl), 0);

    poll_flow(f, &r);
    assert_int_equal(r.dir[SEND].nspans, 0);
    assert_int_equal(atomic_load(&g.ncompl), 3);
    assert_completed_once(n1, STATUS_SUCCESS);
    assert_completed_once(n2, STATUS_SUCCESS);
    assert_completed_once(n3, STATUS_SUCCESS);
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(g.compl[i].ctx, n1); /* completionContext */
    poll_flow(f, &r);
    owfp_flow_close(f);
    assert_int_equal(atomic_load(&g.ncompl), 3);
    n1->Next = n2->Next = NULL;
    free_nbl(n1);
    free_nbl(n2);
    free_nbl(n3);
    assert_int_equal(owfp_ndis_pool_outstanding(g.pool), 0);
}

static void test_S26_completion_cancelled_when_flow_closed_before_delivery(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1011);
    struct owfp_stream_result r;
    g.a_mode = A_BLOCK;
    indicate(f, RECV, "blocked", &r);
    static uint8_t b1[] = "delivered", b2[] = "pending";
    NET_BUFFER_LIST *n1 = make_nbl(b1, 9), *n2 = make_nbl(b2, 7);
    assert_int_equal(inject(f, g.id_a, F_RECV, n1, 9), STATUS_SUCCESS);
    poll_flow(f, &r);
    assert_span(&r.dir[RECV], 0, "delivered", 9, OWFP_SPAN_INJECTED);
    assert_int_equal(inject(f, g.id_a, F_RECV, n2, 7), STATUS_SUCCESS);
    assert_int_equal(atomic_load(&g.ncompl), 0);
    owfp_flow_close(f);
    assert_int_equal(atomic_load(&g.ncompl), 2);
    assert_completed_once(n1, STATUS_SUCCESS);
    assert_completed_once(n2, STATUS_CANCELLED);
    free_nbl(n1);
    free_nbl(n2);
}

static void test_S26_completion_cancelled_when_flow_dropped(void **state)
{
    (void)state;
    std_path();
    struct owfp_stream_result r;
    static uint8_t b1[] = "oob", b2[] = "inline";
    NET_BUFFER_LIST *n1 = make_nbl(b1, 3), *n2 = make_nbl(b2, 6);

    /* Queued out-of-band, then FwpsFlowAbort0: dropped at the next call. */
    owfp_flow *f = open_flow(1012);
    g.a_mode = A_BLOCK;
    indicate(f, SEND, "x", &r);
    assert_int_equal(inject(f, g.id_a, F_SEND, n1, 3), STATUS_SUCCESS);
    assert_int_equal(FwpsFlowAbort0(owfp_flow_id(f)), STATUS_SUCCESS);
    poll_flow(f, &r);
    assert_true(r.flow_state & OWFP_FLOW_DROPPED);
    assert_int_equal(r.dir[SEND].nspans, 0);
    assert_int_equal(atomic_load(&g.ncompl), 1);
    assert_completed_once(n1, STATUS_CANCELLED);
    owfp_flow_close(f);
    assert_int_equal(atomic_load(&g.ncompl), 1);

    /* Injected inline, then DROP_CONNECTION by the same classify. */
    f = open_flow(1013);
    g.a_mode = A_INJECT_DROP;
    g.inline_nbl = n2;
    g.inline_len = 6;
    indicate(f, SEND, "y", &r);
    assert_int_equal(g.inline_status, STATUS_SUCCESS);
    assert_true(r.flow_state & OWFP_FLOW_DROPPED);
    assert_int_equal(r.dir[SEND].nspans, 0);
    assert_int_equal(atomic_load(&g.ncompl), 2);
    assert_completed_once(n2, STATUS_CANCELLED);
    owfp_flow_close(f);
    assert_int_equal(atomic_load(&g.ncompl), 2);
    free_nbl(n1);
    free_nbl(n2);
}

static void test_S26_injected_spans_are_zero_copy_into_mdl_memory(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1014);
    struct owfp_stream_result r;
    g.a_mode = A_BLOCK;
    indicate(f, SEND, "x", &r);
    /* One NB over two MDLs, starting one byte into the first. */
    static uint8_t m1buf[] = "Xbc", m2buf[] = "defg";
    MDL *m1 = NdisAllocateMdl(NULL, m1buf, 3), *m2 = NdisAllocateMdl(NULL, m2buf, 4);
    assert_non_null(m1);
    assert_non_null(m2);
    m1->Next = m2;
    NET_BUFFER_LIST *nbl = NULL;
    assert_int_equal(FwpsAllocateNetBufferAndNetBufferList0(g.pool, 0, 0, m1, 1, 6, &nbl),
                     STATUS_SUCCESS);
    assert_int_equal(inject(f, g.id_a, F_SEND, nbl, 6), STATUS_SUCCESS);
    poll_flow(f, &r);
    assert_int_equal(r.dir[SEND].nspans, 2);
    assert_ptr_equal(r.dir[SEND].spans[0].data, m1buf + 1);
    assert_ptr_equal(r.dir[SEND].spans[1].data, m2buf);
    assert_span(&r.dir[SEND], 0, "bc", 2, OWFP_SPAN_INJECTED);
    assert_span(&r.dir[SEND], 1, "defg", 4, OWFP_SPAN_INJECTED);
    /* Permitted original bytes are the caller's buffer, origin ORIGINAL. */
    g.a_mode = A_PERMIT;
    static const char orig[] = "plain";
    assert_int_equal(owfp_stream_indicate(f, SEND, orig, 5, 0, &r), STATUS_SUCCESS);
    assert_int_equal(r.dir[SEND].nspans, 1);
    assert_ptr_equal(r.dir[SEND].spans[0].data, orig);
    assert_int_equal(r.dir[SEND].spans[0].origin, OWFP_SPAN_ORIGINAL);
    assert_completed_once(nbl, STATUS_SUCCESS);
    owfp_flow_close(f);
    free_nbl(nbl);
}

/* ------------------------------------------------ S28: placement */

static void test_S28_inline_inject_then_block_puts_data_in_place(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1020);
    struct owfp_stream_result r;
    static uint8_t repl[] = "HOLA!";
    g.inline_nbl = make_nbl(repl, 5);
    g.inline_len = 5;
    g.a_mode = A_PERMIT;
    indicate(f, SEND, "<<", &r);
    assert_int_equal(r.dir[SEND].nspans, 1);
    g.a_mode = A_INJECT_BLOCK;
    indicate(f, SEND, "hello", &r);
    assert_int_equal(g.inline_status, STATUS_SUCCESS);
    assert_int_equal(r.dir[SEND].nspans, 1);
    assert_ptr_equal(r.dir[SEND].spans[0].data, repl);
    assert_span(&r.dir[SEND], 0, "HOLA!", 5, OWFP_SPAN_INJECTED);
    assert_int_equal(atomic_load(&g.ncompl), 0);
    indicate(f, SEND, ">>", &r);
    assert_span(&r.dir[SEND], 0, ">>", 2, OWFP_SPAN_ORIGINAL);
    assert_completed_once(g.inline_nbl, STATUS_SUCCESS);
    /* A never saw its own injection; B (lower sublayer) saw it in place of p. */
    assert_int_equal(g.a_calls, 3);
    assert_int_equal(g.b_seen_len[SEND], 9);
    assert_memory_equal(g.b_seen[SEND], "<<HOLA!>>", 9);
    owfp_flow_close(f);
    free_nbl(g.inline_nbl);
}

static void test_S28_inline_inject_then_permit_keeps_order(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1021);
    struct owfp_stream_result r;
    static uint8_t flush[] = "XY";
    g.inline_nbl = make_nbl(flush, 2);
    g.inline_len = 2;
    g.a_mode = A_PERMIT;
    indicate(f, RECV, "ab", &r);
    assert_span(&r.dir[RECV], 0, "ab", 2, OWFP_SPAN_ORIGINAL);
    g.a_mode = A_INJECT_PERMIT;
    indicate(f, RECV, "cd", &r);
    assert_int_equal(g.inline_status, STATUS_SUCCESS);
    assert_int_equal(r.dir[RECV].nspans, 2);
    assert_span(&r.dir[RECV], 0, "XY", 2, OWFP_SPAN_INJECTED);
    assert_span(&r.dir[RECV], 1, "cd", 2, OWFP_SPAN_ORIGINAL);
    assert_int_equal(g.b_seen_len[RECV], 6);
    assert_memory_equal(g.b_seen[RECV], "abXYcd", 6);
    assert_int_equal(g.a_calls, 2);
    poll_flow(f, &r);
    assert_completed_once(g.inline_nbl, STATUS_SUCCESS);
    owfp_flow_close(f);
    free_nbl(g.inline_nbl);
}

static void test_S28_inline_inject_into_other_direction(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1022);
    struct owfp_stream_result r;
    static uint8_t resp[] = "resp";
    g.inline_nbl = make_nbl(resp, 4);
    g.inline_len = 4;
    g.a_mode = A_INJECT_OTHER_PERMIT;
    indicate(f, SEND, "req", &r);
    assert_int_equal(g.inline_status, STATUS_SUCCESS);
    assert_int_equal(r.dir[SEND].nspans, 1);
    assert_span(&r.dir[SEND], 0, "req", 3, OWFP_SPAN_ORIGINAL);
    assert_int_equal(r.dir[RECV].nspans, 1);
    assert_ptr_equal(r.dir[RECV].spans[0].data, resp);
    assert_span(&r.dir[RECV], 0, "resp", 4, OWFP_SPAN_INJECTED);
    /* It entered the receive path after A: B saw it as a RECEIVE indication. */
    assert_int_equal(g.a_calls, 1);
    assert_int_equal(g.b_seen_len[RECV], 4);
    assert_memory_equal(g.b_seen[RECV], "resp", 4);
    bool recv_seen = false;
    for (int i = 0; i < g.b_nflags; i++)
        if (dir_flag(g.b_flags[i]) == F_RECV)
            recv_seen = true;
    assert_true(recv_seen);
    poll_flow(f, &r);
    assert_completed_once(g.inline_nbl, STATUS_SUCCESS);
    owfp_flow_close(f);
    free_nbl(g.inline_nbl);
}

static void test_S28_oob_injections_append_in_call_order(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1023);
    struct owfp_stream_result r;
    g.a_mode = A_BLOCK;
    indicate(f, SEND, "gone", &r);
    assert_int_equal(r.dir[SEND].nspans, 0);
    static uint8_t w1[] = "one", w2[] = "two", w3[] = "three", w4[] = "four";
    NET_BUFFER_LIST *n1 = make_nbl(w1, 3), *n2 = make_nbl(w2, 3), *n3 = make_nbl(w3, 5),
                    *n4 = make_nbl(w4, 4);
    assert_int_equal(inject(f, g.id_a, F_SEND, n1, 3), STATUS_SUCCESS);
    assert_int_equal(inject(f, g.id_a, F_SEND, n2, 3), STATUS_SUCCESS);
    assert_int_equal(inject(f, g.id_a, F_SEND, n3, 5), STATUS_SUCCESS);
    poll_flow(f, &r);
    assert_int_equal(r.dir[SEND].nspans, 3);
    assert_span(&r.dir[SEND], 0, "one", 3, OWFP_SPAN_INJECTED);
    assert_span(&r.dir[SEND], 1, "two", 3, OWFP_SPAN_INJECTED);
    assert_span(&r.dir[SEND], 2, "three", 5, OWFP_SPAN_INJECTED);
    /* Injected while newer original data is blocked: still appended in order. */
    indicate(f, SEND, "gone too", &r);
    assert_int_equal(r.dir[SEND].nspans, 0);
    assert_int_equal(inject(f, g.id_a, F_SEND, n4, 4), STATUS_SUCCESS);
    poll_flow(f, &r);
    assert_int_equal(r.dir[SEND].nspans, 1);
    assert_span(&r.dir[SEND], 0, "four", 4, OWFP_SPAN_INJECTED);
    poll_flow(f, &r);
    /* A saw only the original data; B saw the injections, in order. */
    assert_int_equal(g.a_calls, 2);
    assert_int_equal(g.b_seen_len[SEND], 15);
    assert_memory_equal(g.b_seen[SEND], "onetwothreefour", 15);
    assert_int_equal(atomic_load(&g.ncompl), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(g.compl[i].status, STATUS_SUCCESS);
    assert_ptr_equal(g.compl[3].nbl, n4);
    owfp_flow_close(f);
    free_nbl(n1);
    free_nbl(n2);
    free_nbl(n3);
    free_nbl(n4);
}

/* ------------------------------------ S26: FwpsInjectionHandleDestroy0 */

static atomic_bool destroy_started, destroy_returned;
static NTSTATUS destroy_status;
static int destroy_saw_completions;

static void *destroy_thread(void *arg)
{
    HANDLE h = arg;
    atomic_store(&destroy_started, true);
    destroy_status = FwpsInjectionHandleDestroy0(h);
    destroy_saw_completions = atomic_load(&g.ncompl);
    atomic_store(&destroy_returned, true);
    return NULL;
}

static void test_S26_destroy_waits_for_pending_injection_until_owner_polls(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1030);
    struct owfp_stream_result r;
    g.a_mode = A_BLOCK;
    indicate(f, SEND, "x", &r);
    static uint8_t late[] = "late";
    static uint8_t probe[MAX_REC];
    NET_BUFFER_LIST *probes[MAX_REC];
    int nprobes = 0;
    NET_BUFFER_LIST *nbl = make_nbl(late, 4);
    assert_int_equal(inject(f, g.id_a, F_SEND, nbl, 4), STATUS_SUCCESS);

    atomic_store(&destroy_started, false);
    atomic_store(&destroy_returned, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, destroy_thread, g.inj), 0);
    while (!atomic_load(&destroy_started))
        sleep_ms(1);
    /* Once Destroy runs, new injections on the handle are refused as closing
     * (probes that got in before that are pending like the first). */
    NTSTATUS st;
    for (;;) {
        assert_true(nprobes < MAX_REC - 1);
        probes[nprobes] = make_nbl(&probe[nprobes], 1);
        st = inject(f, g.id_a, F_SEND, probes[nprobes], 1);
        if (st != STATUS_SUCCESS)
            break;
        nprobes++;
        sleep_ms(2);
    }
    assert_int_equal(st, STATUS_FWP_INJECT_HANDLE_CLOSING);
    free_nbl(probes[nprobes]);
    sleep_ms(30);
    assert_false(atomic_load(&destroy_returned));

    poll_flow(f, &r); /* delivers the spans; their completion is still due */
    assert_int_equal(r.dir[SEND].nspans, (size_t)(1 + nprobes));
    sleep_ms(30);
    assert_false(atomic_load(&destroy_returned));
    assert_int_equal(atomic_load(&g.ncompl), 0);

    poll_flow(f, &r); /* completes them: Destroy may return */
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(atomic_load(&destroy_returned));
    assert_int_equal(destroy_status, STATUS_SUCCESS);
    assert_int_equal(destroy_saw_completions, 1 + nprobes);
    assert_completed_once(nbl, STATUS_SUCCESS);
    /* Destroyed: refused as closing; a second destroy does not know it. */
    assert_int_equal(inject(f, g.id_a, F_SEND, nbl, 4), STATUS_FWP_INJECT_HANDLE_CLOSING);
    assert_int_equal(FwpsInjectionHandleDestroy0(g.inj), STATUS_INVALID_PARAMETER);
    g.inj = NULL;
    owfp_flow_close(f);
    free_nbl(nbl);
    for (int i = 0; i < nprobes; i++)
        free_nbl(probes[i]);
}

static void test_S26_destroy_from_inside_callout_is_invalid_device_state(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1031);
    struct owfp_stream_result r;
    g.a_mode = A_DESTROY_HANDLE;
    indicate(f, SEND, "x", &r);
    assert_int_equal(g.a_calls, 1);
    assert_int_equal(g.inline_status, STATUS_INVALID_DEVICE_STATE);
    /* The handle still works. */
    static uint8_t buf[] = "ok";
    NET_BUFFER_LIST *nbl = make_nbl(buf, 2);
    assert_int_equal(inject(f, g.id_a, F_SEND, nbl, 2), STATUS_SUCCESS);
    poll_flow(f, &r);
    assert_span(&r.dir[SEND], 0, "ok", 2, OWFP_SPAN_INJECTED);
    owfp_flow_close(f);
    assert_completed_once(nbl, STATUS_SUCCESS);
    free_nbl(nbl);
}

/* ------------------------------------------------ S27: the wake-up */

static void test_S27_wakeup_called_on_oob_inject_and_on_continue(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1032);
    struct owfp_stream_result r;
    static int marker;
    assert_int_equal(owfp_flow_set_wakeup(f, count_wake, &marker), STATUS_SUCCESS);
    g.a_mode = A_BLOCK;
    indicate(f, SEND, "x", &r);
    assert_int_equal(atomic_load(&g.wakes), 0);
    static uint8_t buf[] = "oob";
    NET_BUFFER_LIST *nbl = make_nbl(buf, 3);
    assert_int_equal(inject(f, g.id_a, F_SEND, nbl, 3), STATUS_SUCCESS);
    assert_int_equal(atomic_load(&g.wakes), 1);
    assert_ptr_equal(g.wake_arg, &marker);
    assert_ptr_equal(g.wake_flow, f);
    poll_flow(f, &r);
    assert_span(&r.dir[SEND], 0, "oob", 3, OWFP_SPAN_INJECTED);

    /* DEFER, then FwpsStreamContinue0 from outside classify. */
    g.a_mode = A_DEFER;
    indicate(f, RECV, "abc", &r);
    assert_true(r.dir[RECV].state & OWFP_DIR_DEFERRED);
    assert_int_equal(r.dir[RECV].nspans, 0);
    int before = atomic_load(&g.wakes);
    assert_int_equal(FwpsStreamContinue0(owfp_flow_id(f), g.id_a, STREAM4_ID, F_RECV),
                     STATUS_SUCCESS);
    assert_int_equal(atomic_load(&g.wakes), before + 1);
    assert_ptr_equal(g.wake_flow, f);
    poll_flow(f, &r);
    assert_int_equal(r.dir[RECV].state & OWFP_DIR_DEFERRED, 0);
    assert_span(&r.dir[RECV], 0, "abc", 3, OWFP_SPAN_ORIGINAL);
    owfp_flow_close(f);
    assert_completed_once(nbl, STATUS_SUCCESS);
    free_nbl(nbl);
}

/* ------------------------------------- T13: out-of-band, with a worker */

struct oob_job {
    struct oob_job *next;
    NET_BUFFER_LIST *clone;
    UINT32 flags;
    SIZE_T len;
    int ncompl;
    NTSTATUS status;
    bool on_owner;
};

#define T13_MAX_JOBS 256

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* jobs for the worker */
    pthread_cond_t wakecv; /* the flow's wake-up, for the owner */
    struct oob_job jobs[T13_MAX_JOBS];
    int njobs;
    struct oob_job *head, *tail;
    bool stop;
    unsigned wakes;
    int inject_failures;
    NTSTATUS first_failure;
    UINT64 flow_id;
    atomic_int clones_freed;
} t13 = {.mu = PTHREAD_MUTEX_INITIALIZER,
         .cv = PTHREAD_COND_INITIALIZER,
         .wakecv = PTHREAD_COND_INITIALIZER};

/* On the owner thread, inside A's classify. */
static void t13_hand(FWPS_STREAM_DATA0 *sd)
{
    pthread_mutex_lock(&t13.mu);
    if (t13.njobs < T13_MAX_JOBS) {
        struct oob_job *j = &t13.jobs[t13.njobs++];
        memset(j, 0, sizeof(*j));
        if (FwpsCloneStreamData0(sd, NULL, NULL, 0, &j->clone) != STATUS_SUCCESS)
            t13.inject_failures++;
        j->flags = sd->flags;
        j->len = sd->dataLength;
        if (t13.tail)
            t13.tail->next = j;
        else
            t13.head = j;
        t13.tail = j;
        pthread_cond_signal(&t13.cv);
    } else {
        t13.inject_failures++;
    }
    pthread_mutex_unlock(&t13.mu);
}

static void NTAPI t13_complete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    (void)dispatchLevel;
    struct oob_job *j = context;
    pthread_mutex_lock(&t13.mu);
    j->ncompl++;
    j->status = nbl->Status;
    j->on_owner = pthread_equal(pthread_self(), g.owner) != 0;
    pthread_mutex_unlock(&t13.mu);
    FwpsFreeCloneNetBufferList0(nbl, 0);
    atomic_fetch_add(&t13.clones_freed, 1);
}

static void *t13_worker(void *arg)
{
    (void)arg;
    unsigned seed = 7;
    pthread_mutex_lock(&t13.mu);
    for (;;) {
        while (!t13.head && !t13.stop)
            pthread_cond_wait(&t13.cv, &t13.mu);
        if (!t13.head)
            break;
        struct oob_job *j = t13.head;
        t13.head = j->next;
        if (!t13.head)
            t13.tail = NULL;
        pthread_mutex_unlock(&t13.mu);
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 4 == 0)
            sleep_ms(1);
        /* Exactly what was cloned, with the indication's flags (a FIN clone
         * carries the DISCONNECT flag and no bytes). */
        NTSTATUS st = FwpsStreamInjectAsync0(g.inj, NULL, 0, t13.flow_id, g.id_a, STREAM4_ID,
                                             j->flags, j->clone, j->len, t13_complete, j);
        pthread_mutex_lock(&t13.mu);
        if (st != STATUS_SUCCESS) {
            if (!t13.inject_failures++)
                t13.first_failure = st;
        }
    }
    pthread_mutex_unlock(&t13.mu);
    return NULL;
}

static void NTAPI t13_wake(void *arg, owfp_flow *flow)
{
    (void)arg;
    (void)flow;
    pthread_mutex_lock(&t13.mu);
    t13.wakes++;
    pthread_cond_signal(&t13.wakecv);
    pthread_mutex_unlock(&t13.mu);
}

struct t13_out {
    uint8_t got[2][8192];
    size_t n[2];
    bool fin[2];
    size_t fin_at[2];
    int late_spans; /* spans after the FIN */
    int original_spans;
};

static void t13_collect(struct t13_out *o, const struct owfp_stream_result *r)
{
    for (int d = 0; d < 2; d++) {
        const struct owfp_stream_output *ro = &r->dir[d];
        for (size_t i = 0; i < ro->nspans; i++) {
            if (o->fin[d])
                o->late_spans++;
            if (ro->spans[i].origin != OWFP_SPAN_INJECTED)
                o->original_spans++;
            size_t len = ro->spans[i].len;
            if (o->n[d] + len > sizeof(o->got[d]))
                len = sizeof(o->got[d]) - o->n[d];
            memcpy(o->got[d] + o->n[d], ro->spans[i].data, len);
            o->n[d] += len;
        }
        if ((ro->state & OWFP_DIR_FIN) && !o->fin[d]) {
            o->fin[d] = true;
            o->fin_at[d] = o->n[d];
        }
    }
}

static void test_S29_T13_oob_clone_block_worker_inject_fin_after_data(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1040);
    t13.flow_id = owfp_flow_id(f);
    t13.njobs = 0;
    t13.head = t13.tail = NULL;
    t13.stop = false;
    t13.wakes = 0;
    t13.inject_failures = 0;
    atomic_store(&t13.clones_freed, 0);
    g_hand_to_worker = t13_hand;
    g.a_mode = A_OOB_WORKER;
    assert_int_equal(owfp_flow_set_wakeup(f, t13_wake, NULL), STATUS_SUCCESS);

    static uint8_t src[2][6000];
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof(src[d]); i++)
            src[d][i] = (uint8_t)(i * 31u + (i >> 7) + (unsigned)d * 101u);
    static struct t13_out out;
    memset(&out, 0, sizeof(out));

    pthread_t worker;
    assert_int_equal(pthread_create(&worker, NULL, t13_worker, NULL), 0);
    struct owfp_stream_result r;
    size_t off[2] = {0, 0};
    unsigned chunk = 1;
    while (off[0] < sizeof(src[0]) || off[1] < sizeof(src[1])) {
        for (int d = 0; d < 2; d++) {
            size_t left = sizeof(src[d]) - off[d];
            if (!left)
                continue;
            size_t n = chunk % 700 + 1;
            n = n < left ? n : left;
            assert_int_equal(owfp_stream_indicate(f, d, src[d] + off[d], n, 0, &r),
                             STATUS_SUCCESS);
            t13_collect(&out, &r);
            off[d] += n;
            chunk = chunk * 7 + 3;
        }
    }
    assert_int_equal(owfp_stream_fin(f, SEND, &r), STATUS_SUCCESS);
    t13_collect(&out, &r);
    assert_int_equal(owfp_stream_fin(f, RECV, &r), STATUS_SUCCESS);
    t13_collect(&out, &r);

    /* Owner loop: wait for the wake-up, then poll, until both FINs are out. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    while (!(out.fin[0] && out.fin[1])) {
        pthread_mutex_lock(&t13.mu);
        int rc = 0;
        while (!t13.wakes && rc == 0)
            rc = pthread_cond_timedwait(&t13.wakecv, &t13.mu, &deadline);
        t13.wakes = 0;
        pthread_mutex_unlock(&t13.mu);
        assert_int_equal(rc, 0); /* no hang */
        poll_flow(f, &r);
        t13_collect(&out, &r);
    }
    poll_flow(f, &r); /* completes the last spans */
    t13_collect(&out, &r);

    pthread_mutex_lock(&t13.mu);
    t13.stop = true;
    pthread_cond_signal(&t13.cv);
    pthread_mutex_unlock(&t13.mu);
    assert_int_equal(pthread_join(worker, NULL), 0);

    assert_int_equal(t13.inject_failures, 0);
    assert_int_equal(out.original_spans, 0);
    assert_int_equal(out.late_spans, 0);
    for (int d = 0; d < 2; d++) {
        assert_int_equal(out.n[d], sizeof(src[d]));
        assert_memory_equal(out.got[d], src[d], sizeof(src[d]));
        assert_true(out.fin[d]);
        assert_int_equal(out.fin_at[d], sizeof(src[d])); /* FIN after the last byte */
    }
    /* One job per indication A saw (data of both directions + 2 FINs). */
    assert_int_equal(t13.njobs, g.a_calls);
    int fins = 0;
    for (int i = 0; i < t13.njobs; i++) {
        struct oob_job *j = &t13.jobs[i];
        if (j->flags & (FWPS_STREAM_FLAG_SEND_DISCONNECT | FWPS_STREAM_FLAG_RECEIVE_DISCONNECT)) {
            fins++;
            assert_int_equal(j->len, 0);
        }
        assert_int_equal(j->ncompl, 1);
        assert_int_equal(j->status, STATUS_SUCCESS);
        assert_true(j->on_owner);
    }
    assert_int_equal(fins, 2);
    assert_int_equal(atomic_load(&t13.clones_freed), t13.njobs);
    owfp_flow_close(f);
}

/* ------------------------------------------- S30, S31: the helpers */

static void test_S30_clone_of_multi_piece_indication_is_exact(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1050);
    struct owfp_stream_result r;
    g.a_mode = A_GATHER;
    g.required = 9;
    indicate(f, SEND, "abc", &r);
    indicate(f, SEND, "def", &r);
    assert_int_equal(g.a_calls, 1); /* 6 < 9: not re-indicated yet */
    indicate(f, SEND, "ghij", &r);
    assert_int_equal(g.a_calls, 2);
    /* One indication over three pieces: a chain of three NBLs. */
    assert_int_equal(g.gather_len, 10);
    assert_int_equal(g.gather_nbls, 3);
    assert_int_equal(g.gather_clone_status, STATUS_SUCCESS);
    assert_true(g.gather_clone_single);
    assert_int_equal(g.gather_clone_n, 10);
    assert_memory_equal(g.gather_clone, "abcdefghij", 10);
    uint8_t all[16];
    assert_int_equal(concat(&r.dir[SEND], all, sizeof(all)), 10);
    assert_memory_equal(all, "abcdefghij", 10);
    owfp_flow_close(f);
}

static void test_S31_copy_stream_data_partial_whole_and_across_nbls(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1051);
    struct owfp_stream_result r;
    g.a_mode = A_GATHER;
    g.required = 7;
    indicate(f, RECV, "AB", &r);
    indicate(f, RECV, "CD", &r);
    indicate(f, RECV, "EFG", &r);
    assert_int_equal(g.gather_nbls, 3);
    /* 5 of 7 bytes: across the first two NBL boundaries. */
    assert_int_equal(g.gather_part_n, 5);
    assert_memory_equal(g.gather_part, "ABCDE", 5);
    /* bytesToCopy larger than dataLength: dataLength bytes. */
    assert_int_equal(g.gather_all_n, 7);
    assert_memory_equal(g.gather_all, "ABCDEFG", 7);
    owfp_flow_close(f);
}

/* A chain built by hand with bytes before the offset, several NBs and MDLs,
 * and bytes after dataLength. */
struct hand_chain {
    MDL m[4];
    NET_BUFFER nb[3];
    NET_BUFFER_LIST nbl[2];
    FWPS_STREAM_DATA0 sd;
};

static void build_hand_chain(struct hand_chain *c)
{
    static const uint8_t d1[] = "0123", d2[] = "4567", d3[] = "89AB", d4[] = "CDEFGH";
    memset(c, 0, sizeof(*c));
    owfp_mdl_init_borrowed(&c->m[0], d1, 4);
    owfp_mdl_init_borrowed(&c->m[1], d2, 4);
    owfp_mdl_init_borrowed(&c->m[2], d3, 4);
    owfp_mdl_init_borrowed(&c->m[3], d4, 6);
    c->m[0].Next = &c->m[1];
    owfp_nb_init(&c->nb[0], &c->m[0], 2, 6); /* "234567" */
    owfp_nb_init(&c->nb[1], &c->m[2], 0, 4); /* "89AB" */
    owfp_nb_init(&c->nb[2], &c->m[3], 1, 5); /* "DEFGH" */
    c->nb[0].Next = &c->nb[1];
    owfp_nbl_init(&c->nbl[0], &c->nb[0]);
    owfp_nbl_init(&c->nbl[1], &c->nb[2]);
    c->nbl[0].Next = &c->nbl[1];
    /* First byte of interest: '5' (second MDL, offset 1); 9 bytes. */
    c->sd.flags = F_SEND;
    c->sd.netBufferListChain = &c->nbl[0];
    c->sd.dataOffset.netBufferList = &c->nbl[0];
    c->sd.dataOffset.netBuffer = &c->nb[0];
    c->sd.dataOffset.mdl = &c->m[1];
    c->sd.dataOffset.mdlOffset = 1;
    c->sd.dataLength = 9;
}

static void test_S30_S31_clone_and_copy_respect_offset_and_length(void **state)
{
    (void)state;
    static struct hand_chain c;
    build_hand_chain(&c);
    uint8_t buf[32];
    SIZE_T n = 99;
    FwpsCopyStreamDataToBuffer0(&c.sd, buf, sizeof(buf), &n);
    assert_int_equal(n, 9);
    assert_memory_equal(buf, "56789ABDE", 9);
    FwpsCopyStreamDataToBuffer0(&c.sd, buf, 4, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "5678", 4);
    FwpsCopyStreamDataToBuffer0(&c.sd, buf, 8, &n); /* ends inside the last NBL */
    assert_int_equal(n, 8);
    assert_memory_equal(buf, "56789ABD", 8);

    NET_BUFFER_LIST *clone = NULL;
    assert_int_equal(FwpsCloneStreamData0(&c.sd, NULL, NULL, 0, &clone), STATUS_SUCCESS);
    assert_non_null(clone);
    assert_null(NET_BUFFER_LIST_NEXT_NBL(clone));
    NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(clone);
    assert_non_null(nb);
    assert_int_equal(NET_BUFFER_DATA_LENGTH(nb), 9);
    assert_int_equal(owfp_mdl_chain_copy(NET_BUFFER_CURRENT_MDL(nb),
                                         NET_BUFFER_CURRENT_MDL_OFFSET(nb), buf, 9),
                     9);
    assert_memory_equal(buf, "56789ABDE", 9);
    /* The clone is a copy, not a view of the original. */
    assert_true((uint8_t *)MmGetSystemAddressForMdlSafe(NET_BUFFER_CURRENT_MDL(nb),
                                                        NormalPagePriority) !=
                (uint8_t *)MmGetSystemAddressForMdlSafe(&c.m[1], NormalPagePriority) + 1);
    FwpsFreeCloneNetBufferList0(clone, 0);
}

static void test_S30_fin_indication_clones_to_empty_injectable_nbl(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1052);
    struct owfp_stream_result r;
    g.a_mode = A_CLONE_BLOCK;
    indicate(f, SEND, "data", &r);
    assert_int_equal(owfp_stream_fin(f, SEND, &r), STATUS_SUCCESS);
    assert_int_equal(r.dir[SEND].state & OWFP_DIR_FIN, 0);
    assert_int_equal(g.nclones, 2);
    for (int i = 0; i < 2; i++)
        assert_int_equal(g.clone_status[i], STATUS_SUCCESS);
    /* The FIN clone: an NBL without bytes, from a DISCONNECT indication. */
    NET_BUFFER_LIST *fin = g.clones[1];
    assert_non_null(fin);
    assert_int_equal(g.clone_len[1], 0);
    assert_int_equal(g.clone_flags[1], F_SEND | FWPS_STREAM_FLAG_SEND_DISCONNECT);
    NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(fin);
    assert_true(nb == NULL || NET_BUFFER_DATA_LENGTH(nb) == 0);

    /* Inject the data clone, then the FIN clone with the same flags. */
    assert_int_equal(inject(f, g.id_a, F_SEND, g.clones[0], 4), STATUS_SUCCESS);
    assert_int_equal(inject(f, g.id_a, g.clone_flags[1], fin, 0), STATUS_SUCCESS);
    poll_flow(f, &r);
    assert_int_equal(r.dir[SEND].nspans, 1);
    assert_span(&r.dir[SEND], 0, "data", 4, OWFP_SPAN_INJECTED);
    assert_true(r.dir[SEND].state & OWFP_DIR_FIN);
    poll_flow(f, &r);
    assert_completed_once(g.clones[0], STATUS_SUCCESS);
    assert_completed_once(fin, STATUS_SUCCESS);
    owfp_flow_close(f);
    assert_int_equal(atomic_load(&g.ncompl), 2);
    FwpsFreeCloneNetBufferList0(g.clones[0], 0);
    FwpsFreeCloneNetBufferList0(fin, 0);
}

static void test_S30_clone_with_flags_is_invalid_parameter(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1053);
    struct owfp_stream_result r;
    g.a_mode = A_CLONE_FLAGS;
    g.inline_status = STATUS_SUCCESS;
    indicate(f, SEND, "abc", &r);
    assert_int_equal(g.a_calls, 1);
    assert_int_equal(g.inline_status, STATUS_INVALID_PARAMETER);
    assert_span(&r.dir[SEND], 0, "abc", 3, OWFP_SPAN_ORIGINAL);
    owfp_flow_close(f);
}

static void test_S30_discard_cloned_stream_data_chain(void **state)
{
    (void)state;
    std_path();
    owfp_flow *f = open_flow(1054);
    struct owfp_stream_result r;
    g.a_mode = A_CLONE_BLOCK;
    indicate(f, SEND, "one", &r);
    indicate(f, RECV, "two", &r);
    indicate(f, SEND, "three", &r);
    assert_int_equal(owfp_stream_fin(f, SEND, &r), STATUS_SUCCESS);
    assert_int_equal(g.nclones, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(g.clone_status[i], STATUS_SUCCESS);
        if (i)
            g.clones[i - 1]->Next = g.clones[i];
    }
    /* The whole chain, never injected, goes back at once (ASan checks it all). */
    FwpsDiscardClonedStreamData0(g.clones[0], 0, FALSE);
    owfp_flow_close(f);
    assert_int_equal(atomic_load(&g.ncompl), 0);
}

/* ------------------------------------- NBL allocation with an NDIS pool */

static void test_S26_allocate_nbl_from_ndis_pool_inject_and_free(void **state)
{
    (void)state;
    std_path();
    NDIS_HANDLE pool = make_pool(TRUE);
    assert_non_null(pool);
    static uint8_t buf[] = "xxhello";
    MDL *mdl = NdisAllocateMdl(NULL, buf, 7);
    assert_non_null(mdl);
    NET_BUFFER_LIST *nbl = NULL;
    assert_int_equal(owfp_ndis_pool_outstanding(pool), 0);
    assert_int_equal(FwpsAllocateNetBufferAndNetBufferList0(pool, 16, 0, mdl, 2, 5, &nbl),
                     STATUS_SUCCESS);
    assert_non_null(nbl);
    assert_int_equal(owfp_ndis_pool_outstanding(pool), 1);
    assert_ptr_equal(NdisGetPoolFromNetBufferList(nbl), pool);
    assert_null(NET_BUFFER_LIST_NEXT_NBL(nbl));
    NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(nbl);
    assert_non_null(nb);
    assert_null(NET_BUFFER_NEXT_NB(nb));
    assert_ptr_equal(NET_BUFFER_FIRST_MDL(nb), mdl);
    assert_ptr_equal(NET_BUFFER_CURRENT_MDL(nb), mdl);
    assert_int_equal(NET_BUFFER_CURRENT_MDL_OFFSET(nb), 2);
    assert_int_equal(NET_BUFFER_DATA_OFFSET(nb), 2);
    assert_int_equal(NET_BUFFER_DATA_LENGTH(nb), 5);
    assert_non_null(nbl->Context);

    owfp_flow *f = open_flow(1060);
    struct owfp_stream_result r;
    g.a_mode = A_BLOCK;
    indicate(f, SEND, "x", &r);
    assert_int_equal(inject(f, g.id_a, F_SEND, nbl, 5), STATUS_SUCCESS);
    poll_flow(f, &r);
    assert_int_equal(r.dir[SEND].nspans, 1);
    assert_ptr_equal(r.dir[SEND].spans[0].data, buf + 2);
    assert_span(&r.dir[SEND], 0, "hello", 5, OWFP_SPAN_INJECTED);
    poll_flow(f, &r);
    assert_completed_once(nbl, STATUS_SUCCESS);
    FwpsFreeNetBufferList0(nbl);
    assert_int_equal(owfp_ndis_pool_outstanding(pool), 0);
    FwpsFreeNetBufferList0(NULL); /* no-op */
    NdisFreeMdl(mdl);
    NdisFreeNetBufferListPool(pool);
    owfp_flow_close(f);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_S26_injection_handle_create_checks_family_flags_pointer),
        T(test_S26_inject_rejects_invalid_arguments_without_completion),
        T(test_S26_T21_disconnect_without_its_direction_is_invalid),
        T(test_S26_T20_pure_fin_injection_accepted_without_completion),
        T(test_S26_inject_bad_or_non_stream_handle_is_stale),
        T(test_S26_inject_with_destroyed_handle_is_closing),
        T(test_S26_inject_into_unknown_or_closed_flow_not_found),
        T(test_S26_oob_inject_by_callout_not_on_path_invalid_parameter),
        cmocka_unit_test(test_S26_inject_without_engine_is_tcpip_not_ready),
        T(test_S26_completion_once_per_nbl_success_after_delivery),
        T(test_S26_completion_cancelled_when_flow_closed_before_delivery),
        T(test_S26_completion_cancelled_when_flow_dropped),
        T(test_S26_injected_spans_are_zero_copy_into_mdl_memory),
        T(test_S28_inline_inject_then_block_puts_data_in_place),
        T(test_S28_inline_inject_then_permit_keeps_order),
        T(test_S28_inline_inject_into_other_direction),
        T(test_S28_oob_injections_append_in_call_order),
        T(test_S26_destroy_waits_for_pending_injection_until_owner_polls),
        T(test_S26_destroy_from_inside_callout_is_invalid_device_state),
        T(test_S27_wakeup_called_on_oob_inject_and_on_continue),
        T(test_S29_T13_oob_clone_block_worker_inject_fin_after_data),
        T(test_S30_clone_of_multi_piece_indication_is_exact),
        T(test_S31_copy_stream_data_partial_whole_and_across_nbls),
        cmocka_unit_test(test_S30_S31_clone_and_copy_respect_offset_and_length),
        T(test_S30_fin_indication_clones_to_empty_injectable_nbl),
        T(test_S30_clone_with_flags_is_invalid_parameter),
        T(test_S30_discard_cloned_stream_data_chain),
        T(test_S26_allocate_nbl_from_ndis_pool_inject_and_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
