/*
 * Allocation failure along the main paths. For N = 0, 1, 2, ...: the Nth and
 * every later allocation fails (owfp_alloc_fail_after), the operation runs,
 * injection stops. Each failing attempt must answer exactly
 * STATUS_INSUFFICIENT_RESOURCES and leave the engine usable and as it was;
 * the loop ends at the first N where the operation succeeds, and that
 * success must be complete. The ASan/LSan build checks that no attempt leaks.
 */
#include "harness.h"

#include <stdbool.h>
#include <string.h>

#include "common/alloc.h"

#define ALE4_ID FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4
#define ALE4 (&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4)
#define STREAM4_ID FWPS_LAYER_STREAM_V4

/* No operation here needs anywhere near this many allocations. */
#define MAX_ATTEMPTS 2000

static WCHAR test_name[] = {'a', 'f', 0};

/* ------------------------------------------------------------ helpers */

/* Opens a flow to 10.0.0.2:remote_port, returns the verdict, closes it. */
static enum owfp_flow_verdict probe(uint16_t remote_port)
{
    struct owfp_flow_params p = h_params4(40000, remote_port, OWFP_OUTBOUND);
    enum owfp_flow_verdict v;
    owfp_flow *f = h_open(&p, &v);
    owfp_flow_close(f);
    return v;
}

static struct owfp_engine_stats stats(void)
{
    struct owfp_engine_stats s;
    owfp_engine_get_stats(h_engine, &s);
    return s;
}

/* Injection on for one call: the status, and how many allocations failed. */
#define WITH_FAILURE(n, expr, st, refused)                                                       \
    do {                                                                                         \
        owfp_alloc_fail_after(n);                                                                \
        (st) = (expr);                                                                           \
        (refused) = owfp_alloc_failures();                                                       \
        owfp_alloc_fail_reset();                                                                 \
    } while (0)

/* A failing attempt failed because of the injection, with the right status. */
static void assert_failed_for_memory(NTSTATUS st, unsigned long refused, long n)
{
    if (st != STATUS_INSUFFICIENT_RESOURCES)
        fail_msg("attempt %ld: status 0x%08x, want STATUS_INSUFFICIENT_RESOURCES", n,
                 (unsigned)st);
    assert_true(refused > 0);
}

/* Conditions: TCP to 10.0.0.2:port. */
struct conds3 {
    FWPM_FILTER_CONDITION0 c[3];
};

static struct conds3 tcp_to(uint16_t port)
{
    struct conds3 k;
    memset(&k, 0, sizeof(k));
    k.c[0].fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    k.c[0].matchType = FWP_MATCH_EQUAL;
    k.c[0].conditionValue.type = FWP_UINT16;
    k.c[0].conditionValue.uint16 = port;
    k.c[1].fieldKey = FWPM_CONDITION_IP_PROTOCOL;
    k.c[1].matchType = FWP_MATCH_EQUAL;
    k.c[1].conditionValue.type = FWP_UINT8;
    k.c[1].conditionValue.uint8 = 6;
    k.c[2].fieldKey = FWPM_CONDITION_IP_REMOTE_ADDRESS;
    k.c[2].matchType = FWP_MATCH_EQUAL;
    k.c[2].conditionValue.type = FWP_UINT32;
    k.c[2].conditionValue.uint32 = 0x0a000002; /* 10.0.0.2, host order */
    return k;
}

/* FwpmFilterAdd0 with a fixed key, so the filter can be looked for. */
static NTSTATUS add_filter(HANDLE session, const GUID *key, uint32_t action,
                           const GUID *callout, const struct conds3 *conds, UINT64 *id)
{
    FWPM_FILTER0 f;
    memset(&f, 0, sizeof(f));
    f.filterKey = *key;
    f.displayData.name = test_name;
    f.layerKey = *ALE4;
    f.action.type = action;
    if (callout)
        f.action.calloutKey = *callout;
    if (conds) {
        f.numFilterConditions = 3;
        f.filterCondition = (FWPM_FILTER_CONDITION0 *)conds->c;
    }
    return FwpmFilterAdd0(session, &f, NULL, id);
}

/* A callout that answers BLOCK and counts its calls and notifications. */
static int classify_calls, adds, deletes, flow_deletes;
static UINT64 last_deleted_ctx;

static void reset_counts(void)
{
    classify_calls = adds = deletes = flow_deletes = 0;
    last_deleted_ctx = 0;
}

static void NTAPI block_classify(const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                 const FWPS_FILTER0 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)layerData;
    (void)filter;
    (void)flowContext;
    classify_calls++;
    out->actionType = FWP_ACTION_BLOCK;
    out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static NTSTATUS NTAPI count_notify(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                                   FWPS_FILTER0 *filter)
{
    (void)key;
    (void)filter;
    if (type == FWPS_CALLOUT_NOTIFY_ADD_FILTER)
        adds++;
    else if (type == FWPS_CALLOUT_NOTIFY_DELETE_FILTER)
        deletes++;
    return STATUS_SUCCESS;
}

static void NTAPI count_flow_delete(UINT16 layerId, UINT32 calloutId, UINT64 ctx)
{
    (void)layerId;
    (void)calloutId;
    flow_deletes++;
    last_deleted_ctx = ctx;
}

/* ------------------------------------------------------- registration */

static void test_alloc_failure_FwpsCalloutRegister0(void **state)
{
    (void)state;
    reset_counts();
    /* Key 1 has a TERMINATING filter: BLOCK while it is not registered (R5),
     * the callout's own BLOCK once it is. */
    GUID first = h_guid(0xa000);
    /* The object comes first: it allocates the key's id (R3). */
    UINT32 object_id = 0;
    FWPM_CALLOUT0 c;
    memset(&c, 0, sizeof(c));
    c.calloutKey = first;
    c.displayData.name = test_name;
    c.applicableLayer = *ALE4;
    assert_int_equal(FwpmCalloutAdd0(h_session, &c, NULL, &object_id), STATUS_SUCCESS);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_TERMINATING,
                                 .callout = &first};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    assert_int_equal(probe(80), OWFP_FLOW_BLOCKED);

    /* 40 keys: the first allocates the tables; later ones grow the key-id
     * list (17th) and the slot table (id 32). */
    for (uint32_t k = 0; k < 40; k++) {
        GUID key = h_guid(0xa000 + k);
        UINT32 id = 0;
        long n;
        for (n = 0; n < MAX_ATTEMPTS; n++) {
            NTSTATUS st;
            unsigned long refused;
            UINT32 out = 0xdeadbeef;
            WITH_FAILURE(n, h_register0(&key, 0, block_classify, count_notify, count_flow_delete,
                                        &out),
                         st, refused);
            if (st == STATUS_SUCCESS) {
                assert_int_equal(refused, 0);
                id = out;
                break;
            }
            assert_failed_for_memory(st, refused, n);
            assert_int_equal(out, 0xdeadbeef);
            /* Not registered: nothing to unregister, nothing classified. */
            assert_int_equal(FwpsCalloutUnregisterByKey0(&key), STATUS_FWP_CALLOUT_NOT_FOUND);
            assert_int_equal(stats().callouts_registered, k);
            if (k == 0) {
                assert_int_equal(probe(80), OWFP_FLOW_BLOCKED);
                assert_int_equal(classify_calls, 0);
            }
        }
        assert_true(n < MAX_ATTEMPTS);
        assert_true(n > 0); /* the path allocates: some attempts failed */
        assert_int_not_equal(id, 0);
        if (k == 0)
            assert_int_equal(id, object_id);
        assert_int_equal(stats().callouts_registered, k + 1);
        /* The retry registered it for real. */
        assert_int_equal(h_register0(&key, 0, block_classify, count_notify, NULL, NULL),
                         STATUS_FWP_ALREADY_EXISTS);
    }
    assert_int_equal(probe(80), OWFP_FLOW_BLOCKED);
    assert_int_equal(classify_calls, 1);
    /* And every registration can be undone. */
    for (uint32_t k = 0; k < 40; k++) {
        GUID key = h_guid(0xa000 + k);
        assert_int_equal(FwpsCalloutUnregisterByKey0(&key), STATUS_SUCCESS);
    }
    assert_int_equal(stats().callouts_registered, 0);
}

/* ---------------------------------------------------------- sessions */

static void test_alloc_failure_FwpmEngineOpen0(void **state)
{
    (void)state;
    for (int dynamic = 0; dynamic < 2; dynamic++) {
        FWPM_SESSION0 s;
        memset(&s, 0, sizeof(s));
        s.flags = dynamic ? FWPM_SESSION_FLAG_DYNAMIC : 0;
        HANDLE h = NULL;
        long n;
        for (n = 0; n < MAX_ATTEMPTS; n++) {
            NTSTATUS st;
            unsigned long refused;
            h = NULL;
            WITH_FAILURE(n, FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &s, &h), st, refused);
            if (st == STATUS_SUCCESS) {
                assert_int_equal(refused, 0);
                break;
            }
            assert_failed_for_memory(st, refused, n);
            assert_null(h);
        }
        assert_true(n < MAX_ATTEMPTS);
        assert_true(n > 0); /* the path allocates: some attempts failed */
        assert_non_null(h);
        /* The session works. */
        GUID sl = h_guid(0xb000 + (uint32_t)dynamic);
        FWPM_SUBLAYER0 sub;
        memset(&sub, 0, sizeof(sub));
        sub.subLayerKey = sl;
        sub.displayData.name = test_name;
        assert_int_equal(FwpmSubLayerAdd0(h, &sub, NULL), STATUS_SUCCESS);
        assert_int_equal(FwpmSubLayerDeleteByKey0(h, &sl), STATUS_SUCCESS);
        assert_int_equal(FwpmEngineClose0(h), STATUS_SUCCESS);
        assert_int_equal(FwpmEngineClose0(h), STATUS_INVALID_HANDLE);
    }
}

/* ------------------------------------------------------ management */

static void test_alloc_failure_FwpmSubLayerAdd0(void **state)
{
    (void)state;
    /* Several sublayers, so the table grows under injection as well. */
    for (uint32_t k = 0; k < 20; k++) {
        GUID key = h_guid(0xc000 + k);
        FWPM_SUBLAYER0 sl;
        memset(&sl, 0, sizeof(sl));
        sl.subLayerKey = key;
        sl.displayData.name = test_name;
        sl.weight = (UINT16)(0x100 + k);
        long n;
        NTSTATUS st = STATUS_UNSUCCESSFUL;
        for (n = 0; n < MAX_ATTEMPTS; n++) {
            unsigned long refused;
            WITH_FAILURE(n, FwpmSubLayerAdd0(h_session, &sl, NULL), st, refused);
            if (st == STATUS_SUCCESS) {
                assert_int_equal(refused, 0);
                break;
            }
            assert_failed_for_memory(st, refused, n);
            /* Absent: cannot be deleted or used by a filter. */
            assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &key),
                             STATUS_FWP_SUBLAYER_NOT_FOUND);
            struct h_filter_spec spec = {.layer = ALE4, .sublayer = &key,
                                         .action = FWP_ACTION_BLOCK};
            assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_SUBLAYER_NOT_FOUND);
        }
        assert_true(n < MAX_ATTEMPTS);
        assert_true(n > 0); /* the path allocates: some attempts failed */
        assert_int_equal(st, STATUS_SUCCESS);
        assert_int_equal(FwpmSubLayerAdd0(h_session, &sl, NULL), STATUS_FWP_ALREADY_EXISTS);
    }
    /* All 20 usable: a BLOCK filter in the last one blocks. */
    GUID last = h_guid(0xc000 + 19);
    struct h_filter_spec spec = {.layer = ALE4, .sublayer = &last, .action = FWP_ACTION_BLOCK};
    UINT64 fid;
    assert_int_equal(h_filter(&spec, &fid), STATUS_SUCCESS);
    assert_int_equal(probe(80), OWFP_FLOW_BLOCKED);
    assert_int_equal(FwpmFilterDeleteById0(h_session, fid), STATUS_SUCCESS);
    /* Deleting under failure (the commit's rebuild fails) puts the
     * sublayer back as it was. */
    for (uint32_t k = 0; k < 20; k++) {
        GUID key = h_guid(0xc000 + k);
        long n;
        NTSTATUS st = STATUS_UNSUCCESSFUL;
        for (n = 0; n < MAX_ATTEMPTS; n++) {
            unsigned long refused;
            WITH_FAILURE(n, FwpmSubLayerDeleteByKey0(h_session, &key), st, refused);
            if (st == STATUS_SUCCESS) {
                assert_int_equal(refused, 0);
                break;
            }
            assert_failed_for_memory(st, refused, n);
            FWPM_SUBLAYER0 sl;
            memset(&sl, 0, sizeof(sl));
            sl.subLayerKey = key;
            sl.displayData.name = test_name;
            assert_int_equal(FwpmSubLayerAdd0(h_session, &sl, NULL), STATUS_FWP_ALREADY_EXISTS);
        }
        assert_true(n < MAX_ATTEMPTS);
        assert_true(n > 0);
        assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &key), STATUS_FWP_SUBLAYER_NOT_FOUND);
    }
}

static void test_alloc_failure_FwpmCalloutAdd0(void **state)
{
    (void)state;
    for (uint32_t k = 0; k < 20; k++) {
        GUID key = h_guid(0xd000 + k);
        /* Half registered first (the object must get the registered id),
         * half added first (the later registration must get the object's). */
        UINT32 registered = 0;
        if (k % 2 == 0)
            assert_int_equal(h_register0(&key, 0, block_classify, count_notify, NULL,
                                         &registered),
                             STATUS_SUCCESS);
        FWPM_CALLOUT0 c;
        memset(&c, 0, sizeof(c));
        c.calloutKey = key;
        c.displayData.name = test_name;
        c.applicableLayer = *ALE4;
        UINT32 id = 0;
        long n;
        NTSTATUS st = STATUS_UNSUCCESSFUL;
        for (n = 0; n < MAX_ATTEMPTS; n++) {
            unsigned long refused;
            id = 0;
            WITH_FAILURE(n, FwpmCalloutAdd0(h_session, &c, NULL, &id), st, refused);
            if (st == STATUS_SUCCESS) {
                assert_int_equal(refused, 0);
                break;
            }
            assert_failed_for_memory(st, refused, n);
            assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &key),
                             STATUS_FWP_CALLOUT_NOT_FOUND);
            struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_TERMINATING,
                                         .callout = &key};
            assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_CALLOUT_NOT_FOUND);
        }
        assert_true(n < MAX_ATTEMPTS);
        assert_true(n > 0); /* the path allocates: some attempts failed */
        assert_int_equal(st, STATUS_SUCCESS);
        if (k % 2 == 0) {
            assert_int_equal(id, registered);
        } else {
            assert_int_equal(h_register0(&key, 0, block_classify, count_notify, NULL,
                                         &registered),
                             STATUS_SUCCESS);
            assert_int_equal(registered, id);
        }
        assert_int_equal(FwpmCalloutAdd0(h_session, &c, NULL, NULL), STATUS_FWP_ALREADY_EXISTS);
    }
    /* A filter on the last one works (the callout blocks). */
    GUID last = h_guid(0xd000 + 19);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_TERMINATING,
                                 .callout = &last};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    reset_counts();
    assert_int_equal(probe(80), OWFP_FLOW_BLOCKED);
    assert_int_equal(classify_calls, 1);
}

/* Filters with conditions, added in implicit transactions; one static
 * BLOCK, one callout filter whose callout sees ADD (and must see a DELETE
 * for every ADD of an attempt that then failed). */
static void test_alloc_failure_FwpmFilterAdd0(void **state)
{
    (void)state;
    reset_counts();
    GUID callout = h_guid(0xe000);
    UINT32 cid;
    assert_int_equal(h_register0(&callout, 0, block_classify, count_notify, NULL, &cid),
                     STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&callout, ALE4), STATUS_SUCCESS);

    for (uint32_t k = 0; k < 24; k++) {
        bool with_callout = k % 2 == 1;
        uint16_t port = (uint16_t)(1000 + k);
        struct conds3 conds = tcp_to(port);
        GUID key = h_guid(0xe100 + k);
        uint64_t before = stats().filters;
        long n;
        NTSTATUS st = STATUS_UNSUCCESSFUL;
        UINT64 id = 0;
        for (n = 0; n < MAX_ATTEMPTS; n++) {
            unsigned long refused;
            int adds_before = adds, deletes_before = deletes;
            WITH_FAILURE(n,
                         add_filter(h_session, &key,
                                    with_callout ? FWP_ACTION_CALLOUT_TERMINATING
                                                 : FWP_ACTION_BLOCK,
                                    with_callout ? &callout : NULL, &conds, &id),
                         st, refused);
            if (st == STATUS_SUCCESS) {
                assert_int_equal(refused, 0);
                break;
            }
            assert_failed_for_memory(st, refused, n);
            /* Absent, and classification is as before. */
            assert_int_equal(stats().filters, before);
            assert_int_equal(FwpmFilterDeleteByKey0(h_session, &key), STATUS_FWP_FILTER_NOT_FOUND);
            assert_int_equal(probe(port), OWFP_FLOW_PERMITTED);
            /* If the callout accepted an ADD, it was told of the removal. */
            assert_int_equal(adds - adds_before, deletes - deletes_before);
        }
        assert_true(n < MAX_ATTEMPTS);
        assert_true(n > 0); /* the path allocates: some attempts failed */
        assert_int_equal(st, STATUS_SUCCESS);
        assert_int_equal(stats().filters, before + 1);
        assert_int_equal(probe(port), OWFP_FLOW_BLOCKED);
        assert_int_equal(probe((uint16_t)(port + 500)), OWFP_FLOW_PERMITTED);
    }
    assert_int_equal(adds - deletes, 12);
    /* All of them deletable. */
    for (uint32_t k = 0; k < 24; k++) {
        GUID key = h_guid(0xe100 + k);
        assert_int_equal(FwpmFilterDeleteByKey0(h_session, &key), STATUS_SUCCESS);
    }
    assert_int_equal(adds, deletes);
    assert_int_equal(probe(1000), OWFP_FLOW_PERMITTED);
}

/* Inside an explicit transaction a failed add does not doom the
 * transaction (M2): the commit keeps exactly the filters that were added. */
static void test_M2_alloc_failure_in_transaction_does_not_doom_it(void **state)
{
    (void)state;
    reset_counts();
    GUID callout = h_guid(0xe200);
    assert_int_equal(h_register0(&callout, 0, block_classify, count_notify, NULL, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&callout, ALE4), STATUS_SUCCESS);
    uint64_t before = stats().filters;
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    for (uint32_t k = 0; k < 24; k++) {
        bool with_callout = k % 2 == 1;
        uint16_t port = (uint16_t)(2000 + k);
        struct conds3 conds = tcp_to(port);
        GUID key = h_guid(0xe300 + k);
        long n;
        NTSTATUS st = STATUS_UNSUCCESSFUL;
        for (n = 0; n < MAX_ATTEMPTS; n++) {
            unsigned long refused;
            int adds_before = adds, deletes_before = deletes;
            WITH_FAILURE(n,
                         add_filter(h_session, &key,
                                    with_callout ? FWP_ACTION_CALLOUT_TERMINATING
                                                 : FWP_ACTION_BLOCK,
                                    with_callout ? &callout : NULL, &conds, NULL),
                         st, refused);
            if (st == STATUS_SUCCESS) {
                assert_int_equal(refused, 0);
                break;
            }
            assert_failed_for_memory(st, refused, n);
            assert_int_equal(adds - adds_before, deletes - deletes_before);
            /* Still the open transaction's: beginning another is refused. */
            assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_FWP_TXN_IN_PROGRESS);
        }
        assert_true(n < MAX_ATTEMPTS);
        assert_true(n > 0); /* the path allocates: some attempts failed */
        assert_int_equal(st, STATUS_SUCCESS);
        /* Uncommitted: invisible to classification (M2). */
        assert_int_equal(probe(port), OWFP_FLOW_PERMITTED);
    }
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
    assert_int_equal(stats().filters, before + 24);
    for (uint32_t k = 0; k < 24; k++)
        assert_int_equal(probe((uint16_t)(2000 + k)), OWFP_FLOW_BLOCKED);
    assert_int_equal(adds - deletes, 12);
}

/* Delete under failure: the filter stays, fully (still classified, still
 * deletable, no DELETE notification). Different filter counts put the key
 * and id tables at different fill levels when the delete is undone. */
static void test_alloc_failure_FwpmFilterDeleteById0(void **state)
{
    (void)state;
    GUID callout = h_guid(0xe400);
    assert_int_equal(h_register0(&callout, 0, block_classify, count_notify, NULL, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&callout, ALE4), STATUS_SUCCESS);
    for (uint32_t total = 1; total <= 26; total++) {
        reset_counts();
        UINT64 ids[26];
        for (uint32_t k = 0; k < total; k++) {
            struct conds3 conds = tcp_to((uint16_t)(3000 + k));
            GUID key = h_guid(0xe500 + k);
            assert_int_equal(add_filter(h_session, &key,
                                        k == 0 ? FWP_ACTION_CALLOUT_TERMINATING : FWP_ACTION_BLOCK,
                                        k == 0 ? &callout : NULL, &conds, &ids[k]),
                             STATUS_SUCCESS);
        }
        uint64_t before = stats().filters;
        long n;
        NTSTATUS st = STATUS_UNSUCCESSFUL;
        for (n = 0; n < MAX_ATTEMPTS; n++) {
            unsigned long refused;
            WITH_FAILURE(n, FwpmFilterDeleteById0(h_session, ids[0]), st, refused);
            if (st == STATUS_SUCCESS) {
                assert_int_equal(refused, 0);
                break;
            }
            assert_failed_for_memory(st, refused, n);
            assert_int_equal(stats().filters, before);
            assert_int_equal(deletes, 0);
            int calls = classify_calls;
            assert_int_equal(probe(3000), OWFP_FLOW_BLOCKED);
            assert_int_equal(classify_calls, calls + 1);
            /* Still findable by key as well as by id. */
            GUID key0 = h_guid(0xe500);
            FWPM_FILTER0 dup;
            memset(&dup, 0, sizeof(dup));
            dup.filterKey = key0;
            dup.displayData.name = test_name;
            dup.layerKey = *ALE4;
            dup.action.type = FWP_ACTION_BLOCK;
            assert_int_equal(FwpmFilterAdd0(h_session, &dup, NULL, NULL),
                             STATUS_FWP_ALREADY_EXISTS);
        }
        assert_true(n < MAX_ATTEMPTS);
        assert_true(n > 0); /* the path allocates: some attempts failed */
        assert_int_equal(st, STATUS_SUCCESS);
        assert_int_equal(deletes, 1);
        assert_int_equal(stats().filters, before - 1);
        assert_int_equal(probe(3000), OWFP_FLOW_PERMITTED);
        assert_int_equal(FwpmFilterDeleteById0(h_session, ids[0]), STATUS_FWP_FILTER_NOT_FOUND);
        GUID key0 = h_guid(0xe500);
        assert_int_equal(FwpmFilterDeleteByKey0(h_session, &key0), STATUS_FWP_FILTER_NOT_FOUND);
        /* The others are intact; clean up for the next round. */
        for (uint32_t k = 1; k < total; k++) {
            assert_int_equal(probe((uint16_t)(3000 + k)), OWFP_FLOW_BLOCKED);
            assert_int_equal(FwpmFilterDeleteById0(h_session, ids[k]), STATUS_SUCCESS);
        }
        assert_int_equal(stats().filters, 0);
    }
}

/* The commit's view rebuild fails: the whole transaction is rolled back
 * and ended (the engine's choice), the published state is untouched, and
 * callouts get a DELETE for each filter whose ADD they accepted. */
static void test_alloc_failure_FwpmTransactionCommit0(void **state)
{
    (void)state;
    reset_counts();
    GUID callout = h_guid(0xe600);
    assert_int_equal(h_register0(&callout, 0, block_classify, count_notify, NULL, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&callout, ALE4), STATUS_SUCCESS);
    /* Committed before: port 4000 blocked by a filter the transaction deletes. */
    GUID old_key = h_guid(0xe700);
    struct conds3 c4000 = tcp_to(4000);
    assert_int_equal(add_filter(h_session, &old_key, FWP_ACTION_BLOCK, NULL, &c4000, NULL),
                     STATUS_SUCCESS);
    GUID sublayer = h_guid(0xe701), k1 = h_guid(0xe702), k2 = h_guid(0xe703);
    struct conds3 c4001 = tcp_to(4001), c4002 = tcp_to(4002);
    uint64_t before = stats().filters;
    long n;
    NTSTATUS st = STATUS_UNSUCCESSFUL;
    for (n = 0; n < MAX_ATTEMPTS; n++) {
        int adds_before = adds, deletes_before = deletes;
        assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
        FWPM_SUBLAYER0 sl;
        memset(&sl, 0, sizeof(sl));
        sl.subLayerKey = sublayer;
        sl.displayData.name = test_name;
        sl.weight = 0x200;
        assert_int_equal(FwpmSubLayerAdd0(h_session, &sl, NULL), STATUS_SUCCESS);
        FWPM_FILTER0 f;
        memset(&f, 0, sizeof(f));
        f.filterKey = k1;
        f.displayData.name = test_name;
        f.layerKey = *ALE4;
        f.subLayerKey = sublayer;
        f.action.type = FWP_ACTION_BLOCK;
        f.numFilterConditions = 3;
        f.filterCondition = c4001.c;
        assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_SUCCESS);
        assert_int_equal(add_filter(h_session, &k2, FWP_ACTION_CALLOUT_TERMINATING, &callout,
                                    &c4002, NULL),
                         STATUS_SUCCESS);
        assert_int_equal(FwpmFilterDeleteByKey0(h_session, &old_key), STATUS_SUCCESS);
        unsigned long refused;
        WITH_FAILURE(n, FwpmTransactionCommit0(h_session), st, refused);
        if (st == STATUS_SUCCESS) {
            assert_int_equal(refused, 0);
            break;
        }
        assert_failed_for_memory(st, refused, n);
        /* Rolled back and ended. */
        assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_FWP_NO_TXN_IN_PROGRESS);
        assert_int_equal(stats().filters, before);
        assert_int_equal(probe(4000), OWFP_FLOW_BLOCKED);
        assert_int_equal(probe(4001), OWFP_FLOW_PERMITTED);
        assert_int_equal(probe(4002), OWFP_FLOW_PERMITTED);
        assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &sublayer),
                         STATUS_FWP_SUBLAYER_NOT_FOUND);
        assert_int_equal(FwpmFilterDeleteByKey0(h_session, &k1), STATUS_FWP_FILTER_NOT_FOUND);
        assert_int_equal(FwpmFilterDeleteByKey0(h_session, &k2), STATUS_FWP_FILTER_NOT_FOUND);
        assert_int_equal(adds - adds_before, 1);
        assert_int_equal(deletes - deletes_before, 1);
    }
    assert_true(n < MAX_ATTEMPTS);
    assert_true(n > 0); /* the path allocates: some attempts failed */
    assert_int_equal(st, STATUS_SUCCESS);
    assert_int_equal(stats().filters, before + 1);
    assert_int_equal(probe(4000), OWFP_FLOW_PERMITTED);
    assert_int_equal(probe(4001), OWFP_FLOW_BLOCKED);
    assert_int_equal(probe(4002), OWFP_FLOW_BLOCKED);
    assert_int_equal(adds - deletes, 1);
}

/* Closing a dynamic session deletes its objects in a transaction whose
 * commit rebuilds the views. If that fails, the close fails as a whole:
 * the session and everything it added stay, and closing again works (M1). */
static void test_M1_alloc_failure_closing_dynamic_session_keeps_it_open(void **state)
{
    (void)state;
    reset_counts();
    GUID callout = h_guid(0xe800), sublayer = h_guid(0xe801);
    assert_int_equal(h_register0(&callout, 0, block_classify, count_notify, NULL, NULL),
                     STATUS_SUCCESS);
    long n;
    NTSTATUS st = STATUS_UNSUCCESSFUL;
    for (n = 0; n < MAX_ATTEMPTS; n++) {
        FWPM_SESSION0 sess;
        memset(&sess, 0, sizeof(sess));
        sess.flags = FWPM_SESSION_FLAG_DYNAMIC;
        HANDLE h;
        assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &sess, &h),
                         STATUS_SUCCESS);
        FWPM_SUBLAYER0 sl;
        memset(&sl, 0, sizeof(sl));
        sl.subLayerKey = sublayer;
        sl.displayData.name = test_name;
        assert_int_equal(FwpmSubLayerAdd0(h, &sl, NULL), STATUS_SUCCESS);
        FWPM_CALLOUT0 c;
        memset(&c, 0, sizeof(c));
        c.calloutKey = callout;
        c.displayData.name = test_name;
        c.applicableLayer = *ALE4;
        assert_int_equal(FwpmCalloutAdd0(h, &c, NULL, NULL), STATUS_SUCCESS);
        struct conds3 c5000 = tcp_to(5000), c5001 = tcp_to(5001);
        GUID k1 = h_guid(0xe802), k2 = h_guid(0xe803);
        assert_int_equal(add_filter(h, &k1, FWP_ACTION_BLOCK, NULL, &c5000, NULL),
                         STATUS_SUCCESS);
        assert_int_equal(add_filter(h, &k2, FWP_ACTION_CALLOUT_TERMINATING, &callout, &c5001,
                                    NULL),
                         STATUS_SUCCESS);
        int deletes_before = deletes;
        unsigned long refused;
        WITH_FAILURE(n, FwpmEngineClose0(h), st, refused);
        if (st == STATUS_SUCCESS) {
            assert_int_equal(refused, 0);
            assert_int_equal(deletes - deletes_before, 1);
            break;
        }
        assert_failed_for_memory(st, refused, n);
        /* Still open, everything in place. */
        assert_int_equal(deletes, deletes_before);
        assert_int_equal(probe(5000), OWFP_FLOW_BLOCKED);
        assert_int_equal(probe(5001), OWFP_FLOW_BLOCKED);
        assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &sublayer), STATUS_FWP_WRONG_SESSION);
        assert_int_equal(FwpmEngineClose0(h), STATUS_SUCCESS);
        assert_int_equal(deletes - deletes_before, 1);
        assert_int_equal(FwpmEngineClose0(h), STATUS_INVALID_HANDLE);
    }
    assert_true(n < MAX_ATTEMPTS);
    assert_true(n > 0); /* the path allocates: some attempts failed */
    assert_int_equal(st, STATUS_SUCCESS);
    assert_int_equal(stats().filters, 0);
    assert_int_equal(probe(5000), OWFP_FLOW_PERMITTED);
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &sublayer), STATUS_FWP_SUBLAYER_NOT_FOUND);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &callout), STATUS_FWP_CALLOUT_NOT_FOUND);
}

/* ----------------------------------------------------------- flows */

static UINT32 assoc_callout_id;
static NTSTATUS assoc_status;

static void NTAPI assoc_classify(const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                 const FWPS_FILTER0 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *out)
{
    (void)layerData;
    (void)filter;
    (void)flowContext;
    classify_calls++;
    assoc_status = FwpsFlowAssociateContext0(meta->flowHandle, in->layerId, assoc_callout_id,
                                             0x1000 + (UINT64)classify_calls);
    out->actionType = FWP_ACTION_CONTINUE;
}

static void test_alloc_failure_owfp_flow_open(void **state)
{
    (void)state;
    reset_counts();
    GUID callout = h_guid(0xf000);
    assert_int_equal(h_register0(&callout, 0, assoc_classify, count_notify, count_flow_delete,
                                 &assoc_callout_id),
                     STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&callout, ALE4), STATUS_SUCCESS);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_INSPECTION,
                                 .callout = &callout};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    /* The first flow allocates the flow table's pieces; later ones less. */
    owfp_flow *flows[3];
    for (int k = 0; k < 3; k++) {
        struct owfp_flow_params p = h_params4((uint16_t)(5000 + k), 80, OWFP_OUTBOUND);
        long n;
        NTSTATUS st = STATUS_UNSUCCESSFUL;
        for (n = 0; n < MAX_ATTEMPTS; n++) {
            unsigned long refused;
            owfp_flow *f = NULL;
            enum owfp_flow_verdict v = OWFP_FLOW_BLOCKED;
            int calls = classify_calls;
            WITH_FAILURE(n, owfp_flow_open(h_engine, &p, &f, &v), st, refused);
            if (st == STATUS_SUCCESS) {
                assert_int_equal(refused, 0);
                assert_int_equal(v, OWFP_FLOW_PERMITTED);
                flows[k] = f;
                break;
            }
            assert_failed_for_memory(st, refused, n);
            assert_null(f);
            /* No flow: nothing classified, nothing open. */
            assert_int_equal(classify_calls, calls);
            assert_int_equal(stats().flows_open, (uint64_t)k);
        }
        assert_true(n < MAX_ATTEMPTS);
        assert_true(n > 0); /* the path allocates: some attempts failed */
        assert_int_equal(st, STATUS_SUCCESS);
        assert_int_equal(assoc_status, STATUS_SUCCESS);
    }
    assert_int_equal(stats().flow_contexts, 3);
    for (int k = 0; k < 3; k++)
        owfp_flow_close(flows[k]);
    assert_int_equal(flow_deletes, 3);
    assert_int_equal(stats().flows_open, 0);
}

/* The first context of a flow needs no allocation, the second does. */
static void test_alloc_failure_FwpsFlowAssociateContext0(void **state)
{
    (void)state;
    reset_counts();
    enum { CALLOUTS = 6 };
    UINT32 ids[CALLOUTS];
    for (int c = 0; c < CALLOUTS; c++) {
        GUID key = h_guid(0xf100 + (uint32_t)c);
        assert_int_equal(h_register0(&key, 0, assoc_classify, count_notify, count_flow_delete,
                                     &ids[c]),
                         STATUS_SUCCESS);
    }
    struct owfp_flow_params p = h_params4(6000, 80, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    UINT64 flow = owfp_flow_id(f);
    /* Contexts 2..6 grow the flow's table (to 4, then 8). */
    for (int c = 0; c < CALLOUTS; c++) {
        uint16_t layer = c % 2 ? STREAM4_ID : ALE4_ID;
        long n;
        NTSTATUS st = STATUS_UNSUCCESSFUL;
        for (n = 0; n < MAX_ATTEMPTS; n++) {
            unsigned long refused;
            WITH_FAILURE(n, FwpsFlowAssociateContext0(flow, layer, ids[c], 0x100 + (UINT64)c), st,
                         refused);
            if (st == STATUS_SUCCESS) {
                assert_int_equal(refused, 0);
                break;
            }
            assert_failed_for_memory(st, refused, n);
            assert_true(c > 0); /* the first one cannot fail */
            /* Not associated: not counted, no flowDeleteFn, and the callout
             * can be unregistered (no BUSY, R7) and registered again. */
            assert_int_equal(stats().flow_contexts, (uint64_t)c);
            assert_int_equal(FwpsFlowRemoveContext0(flow, layer, ids[c]), STATUS_UNSUCCESSFUL);
            assert_int_equal(flow_deletes, 0);
            assert_int_equal(FwpsCalloutUnregisterById0(ids[c]), STATUS_SUCCESS);
            GUID key = h_guid(0xf100 + (uint32_t)c);
            UINT32 again;
            assert_int_equal(h_register0(&key, 0, assoc_classify, count_notify,
                                         count_flow_delete, &again),
                             STATUS_SUCCESS);
            assert_int_equal(again, ids[c]);
        }
        assert_true(n < MAX_ATTEMPTS);
        /* Only the 2nd and 5th context grow the table (1 -> 4 -> 8). */
        assert_int_equal(n > 0, c == 1 || c == 4);
        assert_int_equal(st, STATUS_SUCCESS);
        assert_int_equal(stats().flow_contexts, (uint64_t)c + 1);
        assert_int_equal(FwpsFlowAssociateContext0(flow, layer, ids[c], 0x999),
                         STATUS_OBJECT_NAME_EXISTS);
    }
    /* Earlier contexts survived the failed growths: removing one gives
     * back its own value. */
    assert_int_equal(FwpsFlowRemoveContext0(flow, ALE4_ID, ids[0]), STATUS_SUCCESS);
    assert_int_equal(flow_deletes, 1);
    assert_int_equal(last_deleted_ctx, 0x100);
    owfp_flow_close(f);
    assert_int_equal(flow_deletes, CALLOUTS);
    assert_int_equal(stats().flow_contexts, 0);
}

/* ---------------------------------------------------------- engine */

static int no_engine_setup(void **state)
{
    (void)state;
    return owfp_engine_current() == NULL ? 0 : -1;
}

static int no_engine_teardown(void **state)
{
    (void)state;
    owfp_alloc_fail_reset();
    if (owfp_engine_current())
        owfp_engine_destroy(owfp_engine_current());
    h_engine = NULL;
    return 0;
}

static void test_alloc_failure_owfp_engine_create(void **state)
{
    (void)state;
    long n;
    NTSTATUS st = STATUS_UNSUCCESSFUL;
    owfp_engine *e = NULL;
    for (n = 0; n < MAX_ATTEMPTS; n++) {
        unsigned long refused;
        e = NULL;
        WITH_FAILURE(n, owfp_engine_create(NULL, &e), st, refused);
        if (st == STATUS_SUCCESS) {
            assert_int_equal(refused, 0);
            break;
        }
        assert_failed_for_memory(st, refused, n);
        /* Nothing to destroy: no engine exists. */
        assert_null(e);
        assert_null(owfp_engine_current());
        HANDLE h;
        assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &h),
                         STATUS_FWP_TCPIP_NOT_READY);
    }
    assert_true(n < MAX_ATTEMPTS);
    assert_true(n > 0); /* the path allocates: some attempts failed */
    assert_int_equal(st, STATUS_SUCCESS);
    assert_non_null(e);
    assert_ptr_equal(owfp_engine_current(), e);
    /* A working engine: session, built-in sublayer, filter, flow. */
    h_engine = e;
    assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &h_session),
                     STATUS_SUCCESS);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    assert_int_equal(probe(80), OWFP_FLOW_BLOCKED);
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &FWPM_SUBLAYER_UNIVERSAL),
                     STATUS_FWP_BUILTIN_OBJECT);
    assert_int_equal(FwpmEngineClose0(h_session), STATUS_SUCCESS);
    owfp_engine_destroy(e);
    h_engine = NULL;
    assert_null(owfp_engine_current());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_alloc_failure_FwpsCalloutRegister0, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_FwpmEngineOpen0, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_FwpmSubLayerAdd0, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_FwpmCalloutAdd0, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_FwpmFilterAdd0, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_M2_alloc_failure_in_transaction_does_not_doom_it,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_FwpmFilterDeleteById0, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_FwpmTransactionCommit0, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(
            test_M1_alloc_failure_closing_dynamic_session_keeps_it_open, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_owfp_flow_open, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_FwpsFlowAssociateContext0, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_owfp_engine_create, no_engine_setup,
                                        no_engine_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
