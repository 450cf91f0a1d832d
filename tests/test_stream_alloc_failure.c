/*
 * Allocation failure along the stream paths (spec §10; S17, S26, S30). For
 * N = 0, 1, 2, ...: owfp_alloc_fail_after(N) (the Nth and every later
 * allocation fails), the operation, owfp_alloc_fail_reset(); the loop ends
 * at the first N where the operation succeeds, and that success must be
 * complete. Every failing attempt must answer STATUS_INSUFFICIENT_RESOURCES
 * and either leave the flow as it was (nothing accepted: the same call
 * again works) or, where data the engine had already taken would be lost,
 * drop the flow (OWFP_FLOW_DROPPED, nothing delivered or held, pending
 * injections completed as STATUS_CANCELLED) — never lose data silently.
 * Another flow keeps working throughout. The ASan/LSan build checks that
 * no attempt leaks.
 *
 * Each attempt first empties the engine's per-thread item cache
 * (owfp_item_cache_drop) so that the items an operation needs are really
 * allocated.
 *
 * The path: callout A (CALLOUT_TERMINATING, sublayer HI) does what g.mode
 * says; callout B (CALLOUT_INSPECTION, sublayer LO) records what reaches it.
 */
#include "harness.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ndis.h>

#include "common/alloc.h"
#include "stream/stream.h"

#define STREAM4_ID FWPS_LAYER_STREAM_V4
#define STREAM4 (&FWPM_LAYER_STREAM_V4)
#define SEND OWFP_STREAM_SEND
#define RECV OWFP_STREAM_RECEIVE

/* No operation here needs anywhere near this many allocations. */
#define MAX_ATTEMPTS 500

enum mode {
    A_PERMIT,
    A_HOLD,   /* NEED_MORE_DATA (10 bytes) while the data starts with 'H' and is shorter */
    A_INJECT, /* inline FwpsStreamInjectAsync0 of "INJ" under g.fail_n, then PERMIT */
    A_CLONE,  /* FwpsCloneStreamData0 under g.fail_n, then PERMIT */
};

#define MAX_NBL 8

struct nbl_rec {
    NET_BUFFER_LIST *nbl;
    MDL *mdl;
    uint8_t *mem;
    int done;
    NTSTATUS status;
};

static struct {
    NDIS_HANDLE pool;
    HANDLE inj;
    UINT32 id_a, id_b;
    int mode;
    long fail_n;
    NTSTATUS inner_status;
    unsigned long inner_refused;
    int a_calls;
    uint8_t b_seen[256];
    size_t b_seen_len;
    int b_calls;
    uint64_t wakes;
    /* injected NBLs of the current attempt */
    struct nbl_rec rec[MAX_NBL];
    int nrec;
    int stray_completions; /* completions for NBLs not (or no longer) ours */
    /* A_CLONE */
    uint8_t clone_bytes[64];
    size_t clone_len;
} g;

/* ---- NBLs ----------------------------------------------------------------------- */

static NET_BUFFER_LIST *make_nbl(struct nbl_rec *r, const char *s)
{
    size_t len = strlen(s);
    r->mem = malloc(len);
    assert_non_null(r->mem);
    memcpy(r->mem, s, len);
    r->mdl = NdisAllocateMdl(NULL, r->mem, (UINT)len);
    assert_non_null(r->mdl);
    assert_int_equal(FwpsAllocateNetBufferAndNetBufferList0(g.pool, 0, 0, r->mdl, 0, len, &r->nbl),
                     STATUS_SUCCESS);
    r->done = 0;
    r->status = STATUS_PENDING;
    return r->nbl;
}

static void free_nbl(struct nbl_rec *r)
{
    if (!r->nbl)
        return;
    FwpsFreeNetBufferList0(r->nbl);
    NdisFreeMdl(r->mdl);
    free(r->mem);
    r->nbl = NULL;
}

/* A chain of one NBL per string. */
static NET_BUFFER_LIST *make_chain(const char *const *parts, int n)
{
    g.nrec = 0;
    for (int i = 0; i < n; i++) {
        make_nbl(&g.rec[g.nrec], parts[i]);
        if (i)
            NET_BUFFER_LIST_NEXT_NBL(g.rec[i - 1].nbl) = g.rec[i].nbl;
        g.nrec++;
    }
    return g.rec[0].nbl;
}

/* The caller still owns NBLs whose injection failed (S26). */
static void free_refused(void)
{
    for (int i = 0; i < g.nrec; i++)
        free_nbl(&g.rec[i]);
    g.nrec = 0;
}

static void NTAPI complete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    (void)dispatchLevel;
    (void)context;
    for (int i = 0; i < g.nrec; i++) {
        if (g.rec[i].nbl == nbl) {
            g.rec[i].done++;
            g.rec[i].status = nbl->Status;
            free_nbl(&g.rec[i]);
            return;
        }
    }
    g.stray_completions++;
}

/* ---- callouts ------------------------------------------------------------------- */

static void NTAPI classify_a(const FWPS_INCOMING_VALUES0 *in,
                             const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                             const FWPS_FILTER0 *filter, UINT64 flowContext,
                             FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)filter;
    (void)flowContext;
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    FWPS_STREAM_DATA0 *sd = io->streamData;
    g.a_calls++;
    out->actionType = FWP_ACTION_PERMIT;
    if (sd->dataLength == 0)
        return;
    uint8_t first = 0;
    SIZE_T got = 0;
    FwpsCopyStreamDataToBuffer0(sd, &first, 1, &got);
    switch (g.mode) {
    case A_HOLD:
        if (first == 'H' && sd->dataLength < 10 &&
            !(out->flags & FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA)) {
            io->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
            io->countBytesRequired = 10;
            out->actionType = FWP_ACTION_CONTINUE;
        }
        break;
    case A_INJECT: {
        NET_BUFFER_LIST *nbl = make_chain((const char *const[]){"INJ"}, 1);
        owfp_item_cache_drop();
        owfp_alloc_fail_after(g.fail_n);
        g.inner_status = FwpsStreamInjectAsync0(g.inj, NULL, 0, meta->flowHandle, g.id_a,
                                                STREAM4_ID, sd->flags & FWPS_STREAM_FLAG_SEND
                                                                ? FWPS_STREAM_FLAG_SEND
                                                                : FWPS_STREAM_FLAG_RECEIVE,
                                                nbl, 3, complete, NULL);
        g.inner_refused = owfp_alloc_failures();
        owfp_alloc_fail_reset();
        if (g.inner_status != STATUS_SUCCESS)
            free_refused();
        break;
    }
    case A_CLONE: {
        NET_BUFFER_LIST *clone = NULL;
        owfp_alloc_fail_after(g.fail_n);
        g.inner_status = FwpsCloneStreamData0(sd, NULL, NULL, 0, &clone);
        g.inner_refused = owfp_alloc_failures();
        owfp_alloc_fail_reset();
        g.clone_len = SIZE_MAX;
        if (g.inner_status == STATUS_SUCCESS) {
            NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(clone);
            g.clone_len = NET_BUFFER_DATA_LENGTH(nb);
            FWPS_STREAM_DATA0 view;
            memset(&view, 0, sizeof(view));
            view.dataOffset.netBufferList = clone;
            view.dataOffset.netBuffer = nb;
            view.dataOffset.mdl = NET_BUFFER_CURRENT_MDL(nb);
            view.dataOffset.mdlOffset = NET_BUFFER_CURRENT_MDL_OFFSET(nb);
            view.dataLength = g.clone_len;
            view.netBufferListChain = clone;
            SIZE_T copied = 0;
            FwpsCopyStreamDataToBuffer0(&view, g.clone_bytes, sizeof(g.clone_bytes), &copied);
            FwpsFreeCloneNetBufferList0(clone, 0);
        } else if (clone) {
            g.clone_len = SIZE_MAX - 1; /* an out value on failure */
        }
        break;
    }
    default:
        break;
    }
}

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
    SIZE_T got = 0;
    FwpsCopyStreamDataToBuffer0(sd, g.b_seen, sizeof(g.b_seen), &got);
    g.b_seen_len = got;
    out->actionType = FWP_ACTION_CONTINUE;
}

static void NTAPI wakeup(void *arg, owfp_flow *flow)
{
    (void)arg;
    (void)flow;
    g.wakes++;
}

/* ---- set-up --------------------------------------------------------------------- */

static int setup(void **state)
{
    memset(&g, 0, sizeof(g));
    if (h_setup(state) != 0)
        return -1;
    NET_BUFFER_LIST_POOL_PARAMETERS pp;
    memset(&pp, 0, sizeof(pp));
    pp.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    pp.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    pp.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    pp.fAllocateNetBuffer = TRUE;
    g.pool = NdisAllocateNetBufferListPool(NULL, &pp);
    if (!g.pool ||
        FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, &g.inj) != STATUS_SUCCESS)
        return -1;
    GUID ka = h_guid(0x5a10), kb = h_guid(0x5a11);
    GUID hi = h_sublayer(1, 0x40), lo = h_sublayer(2, 0x20);
    if (h_register0(&ka, 0, classify_a, h_notify_ok, NULL, &g.id_a) != STATUS_SUCCESS ||
        h_register0(&kb, 0, classify_b, h_notify_ok, NULL, &g.id_b) != STATUS_SUCCESS ||
        h_callout_object(&ka, STREAM4) != STATUS_SUCCESS ||
        h_callout_object(&kb, STREAM4) != STATUS_SUCCESS)
        return -1;
    struct h_filter_spec a = {.layer = STREAM4, .sublayer = &hi,
                              .action = FWP_ACTION_CALLOUT_TERMINATING, .callout = &ka};
    struct h_filter_spec b = {.layer = STREAM4, .sublayer = &lo,
                              .action = FWP_ACTION_CALLOUT_INSPECTION, .callout = &kb};
    if (h_filter(&a, NULL) != STATUS_SUCCESS || h_filter(&b, NULL) != STATUS_SUCCESS)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    owfp_alloc_fail_reset();
    /* The engine first: closing the flows completes what a failed test
     * left injected, so destroying the handle does not wait for ever. */
    int rc = h_teardown(state);
    if (FwpsInjectionHandleDestroy0(g.inj) != STATUS_SUCCESS)
        rc = -1;
    for (int i = 0; i < MAX_NBL; i++)
        free_nbl(&g.rec[i]);
    NdisFreeNetBufferListPool(g.pool);
    return rc;
}

static owfp_flow *open_flow(uint16_t port)
{
    struct owfp_flow_params p = h_params4(port, 443, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    assert_int_equal(owfp_flow_set_wakeup(f, wakeup, NULL), STATUS_SUCCESS);
    return f;
}

/* The bytes of a direction's spans, concatenated. */
static size_t collect(const struct owfp_stream_output *o, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < o->nspans; i++) {
        assert_true(n + o->spans[i].len <= cap);
        memcpy(buf + n, o->spans[i].data, o->spans[i].len);
        n += o->spans[i].len;
    }
    buf[n] = 0;
    return n;
}

static void assert_delivers(const struct owfp_stream_result *r, int d, const char *want)
{
    char buf[256];
    collect(&r->dir[d], buf, sizeof(buf) - 1);
    assert_string_equal(buf, want);
}

static NTSTATUS indicate(owfp_flow *f, int d, const char *s, struct owfp_stream_result *r)
{
    return owfp_stream_indicate(f, (enum owfp_stream_direction)d, s, strlen(s), 0, r);
}

/* The flow that is never failed keeps working. */
static void assert_other_flow_works(owfp_flow *other)
{
    struct owfp_stream_result r;
    int calls = g.a_calls;
    assert_int_equal(indicate(other, RECV, "ok", &r), STATUS_SUCCESS);
    assert_int_equal(r.flow_state & OWFP_FLOW_DROPPED, 0);
    assert_delivers(&r, RECV, "ok");
    assert_int_equal(g.a_calls, calls + 1);
}

/* A failing attempt that dropped the flow: nothing delivered or held, and
 * the flow stays dropped. */
static void assert_dropped(owfp_flow *f, const struct owfp_stream_result *r)
{
    for (int d = 0; d < 2; d++) {
        assert_int_equal(r->dir[d].nspans, 0);
        assert_int_equal(r->dir[d].held_bytes, 0);
        assert_int_equal(r->dir[d].state & (OWFP_DIR_HELD | OWFP_DIR_DEFERRED), 0);
    }
    struct owfp_stream_result again;
    assert_int_equal(indicate(f, SEND, "late", &again), STATUS_SUCCESS);
    assert_true(again.flow_state & OWFP_FLOW_DROPPED);
    assert_int_equal(again.dir[SEND].nspans, 0);
}

#define WITH_FAILURE(n, expr, st, refused)                                                       \
    do {                                                                                         \
        owfp_item_cache_drop();                                                                  \
        owfp_alloc_fail_after(n);                                                                \
        (st) = (expr);                                                                           \
        (refused) = owfp_alloc_failures();                                                       \
        owfp_alloc_fail_reset();                                                                 \
    } while (0)

static void assert_failed_for_memory(NTSTATUS st, unsigned long refused, long n)
{
    if (st != STATUS_INSUFFICIENT_RESOURCES)
        fail_msg("attempt %ld: status 0x%08x, want STATUS_INSUFFICIENT_RESOURCES", n,
                 (unsigned)st);
    assert_true(refused > 0);
}

#define UNTOUCHED 0x5a5a5a5au

/* ---- the first indication of a flow: stream state, path, item ---------------- */

static void test_alloc_failure_first_stream_indicate(void **state)
{
    (void)state;
    owfp_flow *other = open_flow(5000);
    assert_other_flow_works(other);
    long n;
    NTSTATUS st = STATUS_UNSUCCESSFUL;
    int drops = 0, refusals = 0;
    for (n = 0; n < MAX_ATTEMPTS; n++) {
        owfp_flow *f = open_flow(6000);
        struct owfp_stream_result r;
        r.flow_state = UNTOUCHED;
        unsigned long refused;
        int calls = g.a_calls;
        WITH_FAILURE(n, indicate(f, SEND, "hello", &r), st, refused);
        if (st == STATUS_SUCCESS) {
            assert_int_equal(refused, 0);
            assert_int_equal(r.flow_state & OWFP_FLOW_DROPPED, 0);
            assert_delivers(&r, SEND, "hello");
            assert_int_equal(g.a_calls, calls + 1);
            owfp_flow_close(f);
            break;
        }
        assert_failed_for_memory(st, refused, n);
        if (r.flow_state != UNTOUCHED && (r.flow_state & OWFP_FLOW_DROPPED)) {
            drops++;
            assert_dropped(f, &r);
        } else {
            /* Nothing was accepted: the same indication again goes through,
             * once. */
            refusals++;
            if (r.flow_state != UNTOUCHED)
                assert_int_equal(r.dir[SEND].nspans, 0);
            struct owfp_stream_result again;
            assert_int_equal(indicate(f, SEND, "hello", &again), STATUS_SUCCESS);
            assert_delivers(&again, SEND, "hello");
        }
        owfp_flow_close(f);
        assert_other_flow_works(other);
    }
    assert_true(n < MAX_ATTEMPTS);
    assert_true(refusals > 0); /* stream state, path or item could not be made */
    /* Nothing is allocated once the bytes are taken (descriptors are the
     * thread's, the first span is kept in the stream): never a drop. */
    assert_int_equal(drops, 0);
    owfp_flow_close(other);
    struct owfp_engine_stats s;
    owfp_engine_get_stats(h_engine, &s);
    assert_int_equal(s.flows_open, 0);
}

/* ---- an indication a NEED_MORE_DATA callout holds: the held copy (S17) ----- */

static void test_S17_alloc_failure_held_copy(void **state)
{
    (void)state;
    g.mode = A_HOLD;
    owfp_flow *other = open_flow(5000);
    long n;
    NTSTATUS st = STATUS_UNSUCCESSFUL;
    int drops = 0;
    for (n = 0; n < MAX_ATTEMPTS; n++) {
        owfp_flow *f = open_flow(6000);
        struct owfp_stream_result r;
        assert_int_equal(indicate(f, SEND, "pre", &r), STATUS_SUCCESS);
        assert_delivers(&r, SEND, "pre");
        r.flow_state = UNTOUCHED;
        unsigned long refused;
        char hold[8] = "Hold";
        WITH_FAILURE(n, indicate(f, SEND, hold, &r), st, refused);
        if (st == STATUS_SUCCESS) {
            assert_int_equal(refused, 0);
            assert_int_equal(r.dir[SEND].nspans, 0);
            assert_int_equal(r.dir[SEND].held_bytes, 4);
            assert_true(r.dir[SEND].state & OWFP_DIR_HELD);
            /* The copy outlives the caller's buffer: the held bytes come
             * out with the next ones. */
            memset(hold, 'x', 4);
            assert_int_equal(indicate(f, SEND, "ing+more", &r), STATUS_SUCCESS);
            assert_delivers(&r, SEND, "Holding+more");
            owfp_flow_close(f);
            break;
        }
        assert_failed_for_memory(st, refused, n);
        assert_true(r.flow_state != UNTOUCHED);
        if (r.flow_state & OWFP_FLOW_DROPPED) {
            /* The held bytes could not be kept: the flow is dropped. */
            drops++;
            assert_dropped(f, &r);
        } else {
            assert_int_equal(r.dir[SEND].held_bytes, 0);
            assert_int_equal(r.dir[SEND].nspans, 0);
            assert_int_equal(indicate(f, SEND, "Hold", &r), STATUS_SUCCESS);
            assert_int_equal(r.dir[SEND].held_bytes, 4);
        }
        owfp_flow_close(f);
        assert_other_flow_works(other);
    }
    assert_true(n < MAX_ATTEMPTS);
    assert_true(drops > 0);
    owfp_flow_close(other);
}

/* ---- FwpsStreamInjectAsync0 inline (S26, S28) -------------------------------- */

static void test_S26_alloc_failure_inline_inject_leaves_nbl_with_caller(void **state)
{
    (void)state;
    g.mode = A_INJECT;
    owfp_flow *f = open_flow(6000);
    owfp_flow *other = open_flow(5000);
    long n;
    for (n = 0; n < MAX_ATTEMPTS; n++) {
        g.fail_n = n;
        g.inner_status = STATUS_UNSUCCESSFUL;
        struct owfp_stream_result r;
        assert_int_equal(indicate(f, SEND, "data", &r), STATUS_SUCCESS);
        assert_int_equal(r.flow_state & OWFP_FLOW_DROPPED, 0);
        if (g.inner_status == STATUS_SUCCESS) {
            assert_int_equal(g.inner_refused, 0);
            assert_delivers(&r, SEND, "INJdata");
            assert_int_equal(g.rec[0].done, 0);
            g.mode = A_PERMIT;
            assert_int_equal(owfp_stream_poll(f, &r), STATUS_SUCCESS);
            assert_int_equal(g.rec[0].done, 1);
            assert_int_equal(g.rec[0].status, STATUS_SUCCESS);
            break;
        }
        assert_failed_for_memory(g.inner_status, g.inner_refused, n);
        /* Not injected: the indication alone comes out, and the NBL was
         * the caller's to free (a completion for it would be stray). */
        assert_delivers(&r, SEND, "data");
        assert_int_equal(owfp_stream_poll(f, &r), STATUS_SUCCESS);
        assert_int_equal(r.dir[SEND].nspans, 0);
        assert_int_equal(g.stray_completions, 0);
        g.mode = A_PERMIT;
        assert_other_flow_works(other);
        g.mode = A_INJECT;
    }
    assert_true(n < MAX_ATTEMPTS);
    assert_true(n > 0); /* the path allocates */
    owfp_flow_close(f);
    owfp_flow_close(other);
    assert_int_equal(g.stray_completions, 0);
}

/* ---- FwpsStreamInjectAsync0 out-of-band (S26, S29) ---------------------------- */

static void test_S26_alloc_failure_inject_leaves_nbl_with_caller(void **state)
{
    (void)state;
    owfp_flow *f = open_flow(6000);
    owfp_flow *other = open_flow(5000);
    struct owfp_stream_result r;
    assert_int_equal(indicate(f, RECV, "abc", &r), STATUS_SUCCESS);
    assert_delivers(&r, RECV, "abc");
    long n;
    NTSTATUS st = STATUS_UNSUCCESSFUL;
    for (n = 0; n < MAX_ATTEMPTS; n++) {
        NET_BUFFER_LIST *nbl = make_chain((const char *const[]){"OO", "B"}, 2);
        uint64_t wakes = g.wakes;
        unsigned long refused;
        WITH_FAILURE(n,
                     FwpsStreamInjectAsync0(g.inj, NULL, 0, owfp_flow_id(f), g.id_a, STREAM4_ID,
                                            FWPS_STREAM_FLAG_RECEIVE, nbl, 3, complete, NULL),
                     st, refused);
        if (st == STATUS_SUCCESS) {
            assert_int_equal(refused, 0);
            assert_true(g.wakes > wakes);
            break;
        }
        assert_failed_for_memory(st, refused, n);
        /* Nothing queued, nobody woken, no completion: the NBLs are ours. */
        assert_int_equal(g.wakes, wakes);
        assert_int_equal(owfp_stream_poll(f, &r), STATUS_SUCCESS);
        assert_int_equal(r.dir[RECV].nspans, 0);
        assert_int_equal(g.rec[0].done + g.rec[1].done, 0);
        free_refused();
        assert_other_flow_works(other);
    }
    assert_true(n < MAX_ATTEMPTS);
    assert_true(n > 0);
    assert_int_equal(owfp_stream_poll(f, &r), STATUS_SUCCESS);
    assert_delivers(&r, RECV, "OOB");
    assert_int_equal(owfp_stream_poll(f, &r), STATUS_SUCCESS);
    assert_int_equal(g.rec[0].done, 1);
    assert_int_equal(g.rec[1].done, 1);
    assert_int_equal(g.rec[0].status, STATUS_SUCCESS);
    assert_int_equal(g.stray_completions, 0);
    owfp_flow_close(f);
    owfp_flow_close(other);
}

/* ---- FwpsCloneStreamData0 (S30) ----------------------------------------------- */

static void test_S30_alloc_failure_clone_stream_data(void **state)
{
    (void)state;
    g.mode = A_CLONE;
    owfp_flow *f = open_flow(6000);
    long n;
    for (n = 0; n < MAX_ATTEMPTS; n++) {
        g.fail_n = n;
        g.inner_status = STATUS_UNSUCCESSFUL;
        struct owfp_stream_result r;
        assert_int_equal(indicate(f, SEND, "clone me", &r), STATUS_SUCCESS);
        /* The indication itself is unaffected. */
        assert_delivers(&r, SEND, "clone me");
        if (g.inner_status == STATUS_SUCCESS) {
            assert_int_equal(g.inner_refused, 0);
            assert_int_equal(g.clone_len, 8);
            assert_memory_equal(g.clone_bytes, "clone me", 8);
            break;
        }
        assert_failed_for_memory(g.inner_status, g.inner_refused, n);
        assert_int_equal(g.clone_len, SIZE_MAX); /* no NBL handed out */
    }
    assert_true(n < MAX_ATTEMPTS);
    assert_true(n > 0);
    owfp_flow_close(f);
}

/* ---- FwpsInjectionHandleCreate0 (S26) ------------------------------------------- */

/* Handles live in a fixed table: creating and destroying one never
 * allocates, so it works with every allocation failing. */
static void test_S26_alloc_failure_FwpsInjectionHandleCreate0(void **state)
{
    (void)state;
    HANDLE h = NULL;
    NTSTATUS st;
    unsigned long refused;
    WITH_FAILURE(0, FwpsInjectionHandleCreate0(AF_INET, FWPS_INJECTION_TYPE_STREAM, &h), st,
                 refused);
    assert_int_equal(st, STATUS_SUCCESS);
    assert_int_equal(refused, 0);
    assert_non_null(h);
    WITH_FAILURE(0, FwpsInjectionHandleDestroy0(h), st, refused);
    assert_int_equal(st, STATUS_SUCCESS);
    assert_int_equal(refused, 0);
}

/* ---- owfp_stream_poll applying an inbox --------------------------------------- */

static void test_alloc_failure_stream_poll_applies_inbox(void **state)
{
    (void)state;
    owfp_flow *other = open_flow(5000);
    static const char *const parts[6] = {"a", "b", "c", "d", "e", "f"};
    long n;
    NTSTATUS st = STATUS_UNSUCCESSFUL;
    int drops = 0;
    for (n = 0; n < MAX_ATTEMPTS; n++) {
        owfp_flow *f = open_flow(6000);
        struct owfp_stream_result r;
        assert_int_equal(indicate(f, SEND, "x", &r), STATUS_SUCCESS);
        assert_delivers(&r, SEND, "x");
        /* Six NBLs queued by A from outside classify: B is shown them as
         * one indication of six pieces, and six spans come out. */
        NET_BUFFER_LIST *chain = make_chain(parts, 6);
        assert_int_equal(FwpsStreamInjectAsync0(g.inj, NULL, 0, owfp_flow_id(f), g.id_a,
                                                STREAM4_ID, FWPS_STREAM_FLAG_SEND, chain, 6,
                                                complete, NULL),
                         STATUS_SUCCESS);
        int b_calls = g.b_calls;
        r.flow_state = UNTOUCHED;
        unsigned long refused;
        WITH_FAILURE(n, owfp_stream_poll(f, &r), st, refused);
        if (st == STATUS_SUCCESS) {
            assert_int_equal(refused, 0);
            assert_delivers(&r, SEND, "abcdef");
            assert_int_equal(r.dir[SEND].nspans, 6);
            for (size_t i = 0; i < 6; i++)
                assert_int_equal(r.dir[SEND].spans[i].origin, OWFP_SPAN_INJECTED);
            assert_int_equal(g.b_calls, b_calls + 1);
            assert_int_equal(g.b_seen_len, 6);
            assert_memory_equal(g.b_seen, "abcdef", 6);
            owfp_flow_close(f);
            for (int i = 0; i < 6; i++) {
                assert_int_equal(g.rec[i].done, 1);
                assert_int_equal(g.rec[i].status, STATUS_SUCCESS);
            }
            break;
        }
        assert_failed_for_memory(st, refused, n);
        if (r.flow_state != UNTOUCHED && (r.flow_state & OWFP_FLOW_DROPPED)) {
            drops++;
            assert_dropped(f, &r);
            owfp_flow_close(f);
            /* S26: a dropped flow cancels what was injected, once each. */
            for (int i = 0; i < 6; i++) {
                assert_int_equal(g.rec[i].done, 1);
                assert_int_equal(g.rec[i].status, STATUS_CANCELLED);
            }
        } else {
            assert_int_equal(owfp_stream_poll(f, &r), STATUS_SUCCESS);
            assert_delivers(&r, SEND, "abcdef");
            owfp_flow_close(f);
            for (int i = 0; i < 6; i++)
                assert_int_equal(g.rec[i].done, 1);
        }
        assert_int_equal(g.stray_completions, 0);
        assert_other_flow_works(other);
    }
    assert_true(n < MAX_ATTEMPTS);
    assert_true(drops > 0);
    owfp_flow_close(other);
}

/* ---- the FIN (S8) ------------------------------------------------------------------ */

/* A FIN the engine could not take leaves the direction open: the data plane
 * sends it again (found by fuzz/fuzz_stream.c: the direction used to be
 * marked closed with its FIN lost, so it could never end). */
static void test_S8_alloc_failure_fin_can_be_sent_again(void **state)
{
    (void)state;
    owfp_flow *f = open_flow(6000);
    owfp_flow *other = open_flow(5000);
    struct owfp_stream_result r;
    assert_int_equal(indicate(f, SEND, "x", &r), STATUS_SUCCESS);
    long n;
    NTSTATUS st = STATUS_UNSUCCESSFUL;
    int refusals = 0;
    for (n = 0; n < MAX_ATTEMPTS; n++) {
        /* Release the last call's items now, so that the FIN's item is not
         * one of them coming back through the item cache. */
        assert_int_equal(owfp_stream_poll(f, &r), STATUS_SUCCESS);
        r.flow_state = UNTOUCHED;
        unsigned long refused;
        WITH_FAILURE(n, owfp_stream_fin(f, SEND, &r), st, refused);
        if (st == STATUS_SUCCESS) {
            assert_int_equal(refused, 0);
            assert_true(r.dir[SEND].state & OWFP_DIR_FIN);
            assert_true(r.dir[SEND].state & OWFP_DIR_CLOSED);
            break;
        }
        assert_failed_for_memory(st, refused, n);
        assert_true(r.flow_state != UNTOUCHED);
        if (r.flow_state & OWFP_FLOW_DROPPED) {
            assert_dropped(f, &r);
            owfp_flow_close(f);
            f = open_flow(6000);
            assert_int_equal(indicate(f, SEND, "x", &r), STATUS_SUCCESS);
        } else {
            refusals++;
            assert_int_equal(r.dir[SEND].state & (OWFP_DIR_CLOSED | OWFP_DIR_FIN), 0);
            /* Still open: data goes through, and the FIN can come again. */
            assert_int_equal(indicate(f, SEND, "y", &r), STATUS_SUCCESS);
            assert_delivers(&r, SEND, "y");
        }
        assert_other_flow_works(other);
    }
    assert_true(n < MAX_ATTEMPTS);
    assert_true(refusals > 0);
    assert_int_equal(owfp_stream_fin(f, SEND, &r), STATUS_INVALID_DEVICE_STATE);
    owfp_flow_close(f);
    owfp_flow_close(other);
}

/* ---- a drop while the result is assembled --------------------------------------- */

/* The spans of the second direction cannot be listed: the flow is dropped,
 * and nothing of the first direction is reported as delivered or held
 * either (found by fuzz/fuzz_stream.c). */
static void test_S18_alloc_failure_drop_discards_both_directions(void **state)
{
    (void)state;
    owfp_flow *f = open_flow(6000);
    struct owfp_stream_result r;
    /* SEND has room for one span from now on, RECEIVE has none yet. */
    assert_int_equal(indicate(f, SEND, "x", &r), STATUS_SUCCESS);
    g.nrec = 2;
    make_nbl(&g.rec[0], "s");
    make_nbl(&g.rec[1], "r");
    assert_int_equal(FwpsStreamInjectAsync0(g.inj, NULL, 0, owfp_flow_id(f), g.id_a, STREAM4_ID,
                                            FWPS_STREAM_FLAG_SEND, g.rec[0].nbl, 1, complete,
                                            NULL),
                     STATUS_SUCCESS);
    assert_int_equal(FwpsStreamInjectAsync0(g.inj, NULL, 0, owfp_flow_id(f), g.id_a, STREAM4_ID,
                                            FWPS_STREAM_FLAG_RECEIVE, g.rec[1].nbl, 1, complete,
                                            NULL),
                     STATUS_SUCCESS);
    NTSTATUS st;
    unsigned long refused;
    WITH_FAILURE(0, owfp_stream_poll(f, &r), st, refused);
    assert_failed_for_memory(st, refused, 0);
    assert_true(r.flow_state & OWFP_FLOW_DROPPED);
    for (int d = 0; d < 2; d++) {
        assert_int_equal(r.dir[d].nspans, 0);
        assert_int_equal(r.dir[d].held_bytes, 0);
    }
    /* Both injections were cancelled, once each. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(g.rec[i].done, 1);
        assert_int_equal(g.rec[i].status, STATUS_CANCELLED);
    }
    owfp_flow_close(f);
    assert_int_equal(g.stray_completions, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_alloc_failure_first_stream_indicate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_S17_alloc_failure_held_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_S26_alloc_failure_inline_inject_leaves_nbl_with_caller,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_S26_alloc_failure_inject_leaves_nbl_with_caller,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_S30_alloc_failure_clone_stream_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_S26_alloc_failure_FwpsInjectionHandleCreate0, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_stream_poll_applies_inbox, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_S8_alloc_failure_fin_can_be_sent_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_S18_alloc_failure_drop_discards_both_directions,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
