/*
 * Spec §7 (M1-M7): sessions, transactions and the management objects
 * (sublayers, callout objects, filters, providers), and how they translate
 * into what callouts see at classify time.
 */
#include "harness.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static WCHAR g_name[] = L"management test";

static const GUID *const ALE4 = &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
static const GUID *const ALE6 = &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6;
static const GUID *const STREAM4 = &FWPM_LAYER_STREAM_V4;

/* ---- a recording callout -------------------------------------------------- */

#define MAX_CONDS 8

/* What the last classify showed; copied because the filter is only valid
 * during the call. */
static struct {
    unsigned calls;
    UINT16 layer_id;
    UINT64 filter_id;
    UINT64 context;
    UINT16 flags;
    UINT16 sublayer_weight;
    UINT32 action_type;
    UINT32 callout_id;
    UINT32 nconds;
    UINT16 field_ids[MAX_CONDS];
    UINT32 match_types[MAX_CONDS];
} g_seen;

static void reset_seen(void)
{
    memset(&g_seen, 0, sizeof(g_seen));
}

static void NTAPI record_classify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                  const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                  void *layerData, const FWPS_FILTER0 *filter, UINT64 flowContext,
                                  FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(flowContext);
    g_seen.calls++;
    g_seen.layer_id = inFixedValues->layerId;
    g_seen.filter_id = filter->filterId;
    g_seen.context = filter->context;
    g_seen.flags = filter->flags;
    g_seen.sublayer_weight = filter->subLayerWeight;
    g_seen.action_type = filter->action.type;
    g_seen.callout_id = filter->action.calloutId;
    g_seen.nconds = filter->numFilterConditions;
    for (UINT32 i = 0; i < filter->numFilterConditions && i < MAX_CONDS; i++) {
        g_seen.field_ids[i] = filter->filterCondition[i].fieldId;
        g_seen.match_types[i] = filter->filterCondition[i].matchType;
    }
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

static int setup(void **state)
{
    reset_seen();
    return h_setup(state);
}

/* ---- helpers ---------------------------------------------------------------- */

static HANDLE open_session(uint32_t flags, uint32_t timeout_ms)
{
    FWPM_SESSION0 s;
    memset(&s, 0, sizeof(s));
    s.flags = flags;
    s.txnWaitTimeoutInMSec = timeout_ms;
    HANDLE h = NULL;
    assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &s, &h), STATUS_SUCCESS);
    assert_non_null(h);
    return h;
}

static NTSTATUS add_provider(HANDLE s, const GUID *key)
{
    FWPM_PROVIDER0 p;
    memset(&p, 0, sizeof(p));
    p.providerKey = *key;
    p.displayData.name = g_name;
    return FwpmProviderAdd0(s, &p, NULL);
}

static NTSTATUS add_sublayer(HANDLE s, const GUID *key, uint16_t weight, GUID *provider)
{
    FWPM_SUBLAYER0 sl;
    memset(&sl, 0, sizeof(sl));
    if (key)
        sl.subLayerKey = *key;
    sl.displayData.name = g_name;
    sl.weight = weight;
    sl.providerKey = provider;
    return FwpmSubLayerAdd0(s, &sl, NULL);
}

static NTSTATUS add_callout_object(HANDLE s, const GUID *key, const GUID *layer, GUID *provider,
                                   UINT32 *id)
{
    FWPM_CALLOUT0 c;
    memset(&c, 0, sizeof(c));
    c.calloutKey = *key;
    c.displayData.name = g_name;
    c.applicableLayer = *layer;
    c.providerKey = provider;
    return FwpmCalloutAdd0(s, &c, NULL, id);
}

/* A filter at `layer` with `action`, a name and nothing else. */
static FWPM_FILTER0 base_filter(const GUID *layer, uint32_t action)
{
    FWPM_FILTER0 f;
    memset(&f, 0, sizeof(f));
    f.displayData.name = g_name;
    f.layerKey = *layer;
    f.action.type = action;
    return f;
}

static FWPM_FILTER_CONDITION0 port_cond(const GUID *field, uint16_t port)
{
    FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldKey = *field;
    c.matchType = FWP_MATCH_EQUAL;
    c.conditionValue.type = FWP_UINT16;
    c.conditionValue.uint16 = port;
    return c;
}

/* Opens and closes an outbound TCP/IPv4 flow; returns its verdict. */
static enum owfp_flow_verdict verdict4(uint16_t local_port, uint16_t remote_port)
{
    struct owfp_flow_params p = h_params4(local_port, remote_port, OWFP_OUTBOUND);
    enum owfp_flow_verdict v;
    owfp_flow_close(h_open(&p, &v));
    return v;
}

static enum owfp_flow_verdict verdict6(uint16_t local_port, uint16_t remote_port)
{
    struct owfp_flow_params p = h_params6(local_port, remote_port, OWFP_OUTBOUND);
    enum owfp_flow_verdict v;
    owfp_flow_close(h_open(&p, &v));
    return v;
}

/* Registers the recording callout at `key` and adds its callout object. */
static UINT32 recording_callout(const GUID *key, const GUID *layer)
{
    UINT32 id = 0;
    assert_int_equal(h_register0(key, 0, record_classify, h_notify_ok, NULL, &id),
                     STATUS_SUCCESS);
    assert_int_equal(h_callout_object(key, layer), STATUS_SUCCESS);
    return id;
}

static uint64_t filter_count(void)
{
    struct owfp_engine_stats st;
    owfp_engine_get_stats(h_engine, &st);
    return st.filters;
}

/* ---- M1: sessions ------------------------------------------------------------ */

static void test_M1_engine_open_null_handle_out(void **state)
{
    (void)state;
    assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, NULL),
                     STATUS_FWP_NULL_POINTER);
}

static void test_M1_engine_open_server_name_rejected(void **state)
{
    (void)state;
    WCHAR server[] = L"remotehost";
    HANDLE h = NULL;
    assert_int_equal(FwpmEngineOpen0(server, RPC_C_AUTHN_WINNT, NULL, NULL, &h),
                     STATUS_INVALID_PARAMETER);
}

static void test_M1_engine_open_bad_authn_service_rejected(void **state)
{
    (void)state;
    HANDLE h = NULL;
    assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_NONE, NULL, NULL, &h),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(FwpmEngineOpen0(NULL, 9 /* RPC_C_AUTHN_GSS_NEGOTIATE */, NULL, NULL, &h),
                     STATUS_INVALID_PARAMETER);
}

static void test_M1_engine_open_authn_default_accepted(void **state)
{
    (void)state;
    HANDLE h = NULL;
    assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_DEFAULT, NULL, NULL, &h), STATUS_SUCCESS);
    assert_non_null(h);
    assert_ptr_not_equal(h, h_session);
    /* The session works. */
    assert_int_equal(add_sublayer(h, NULL, 1, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpmEngineClose0(h), STATUS_SUCCESS);
}

static void test_M1_engine_open_unknown_session_flags_rejected(void **state)
{
    (void)state;
    FWPM_SESSION0 s;
    memset(&s, 0, sizeof(s));
    s.flags = 0x2;
    HANDLE h = NULL;
    assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &s, &h),
                     STATUS_FWP_INVALID_FLAGS);
    s.flags = FWPM_SESSION_FLAG_DYNAMIC | 0x80000000u;
    assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &s, &h),
                     STATUS_FWP_INVALID_FLAGS);
}

static void test_M1_engine_open_without_engine_not_ready(void **state)
{
    (void)state;
    assert_int_equal(FwpmEngineClose0(h_session), STATUS_SUCCESS);
    owfp_engine_destroy(h_engine);
    HANDLE h = NULL;
    assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &h),
                     STATUS_FWP_TCPIP_NOT_READY);
    /* Give the teardown a fresh engine and session again. */
    assert_int_equal(owfp_engine_create(NULL, &h_engine), STATUS_SUCCESS);
    assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &h_session),
                     STATUS_SUCCESS);
}

static void test_M1_engine_close_unknown_handle(void **state)
{
    (void)state;
    assert_int_equal(FwpmEngineClose0((HANDLE)(uintptr_t)0xdead0000u), STATUS_INVALID_HANDLE);
    HANDLE h = open_session(0, 0);
    assert_int_equal(FwpmEngineClose0(h), STATUS_SUCCESS);
    /* A closed handle is unknown from then on. */
    assert_int_equal(FwpmEngineClose0(h), STATUS_INVALID_HANDLE);
    assert_int_equal(add_sublayer(h, NULL, 1, NULL), STATUS_INVALID_HANDLE);
}

static void test_M1_unknown_handle_rejected_by_every_call(void **state)
{
    (void)state;
    HANDLE bad = (HANDLE)(uintptr_t)0xbad0000u;
    GUID k = h_guid(1);
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_BLOCK);
    assert_int_equal(FwpmTransactionBegin0(bad, 0), STATUS_INVALID_HANDLE);
    assert_int_equal(FwpmTransactionCommit0(bad), STATUS_INVALID_HANDLE);
    assert_int_equal(FwpmTransactionAbort0(bad), STATUS_INVALID_HANDLE);
    assert_int_equal(add_provider(bad, &k), STATUS_INVALID_HANDLE);
    assert_int_equal(add_sublayer(bad, &k, 1, NULL), STATUS_INVALID_HANDLE);
    assert_int_equal(add_callout_object(bad, &k, ALE4, NULL, NULL), STATUS_INVALID_HANDLE);
    assert_int_equal(FwpmFilterAdd0(bad, &f, NULL, NULL), STATUS_INVALID_HANDLE);
    assert_int_equal(FwpmFilterDeleteById0(bad, 1), STATUS_INVALID_HANDLE);
    assert_int_equal(FwpmFilterDeleteByKey0(bad, &k), STATUS_INVALID_HANDLE);
    assert_int_equal(FwpmCalloutDeleteById0(bad, 1), STATUS_INVALID_HANDLE);
    assert_int_equal(FwpmCalloutDeleteByKey0(bad, &k), STATUS_INVALID_HANDLE);
    assert_int_equal(FwpmSubLayerDeleteByKey0(bad, &k), STATUS_INVALID_HANDLE);
    assert_int_equal(FwpmProviderDeleteByKey0(bad, &k), STATUS_INVALID_HANDLE);
    assert_int_equal(filter_count(), 0);
}

/* Adds provider P, sublayer S (of P), callout object C (of P) and filters
 * in S through session `s`: a BLOCK on remote port 23 and an inspection
 * filter naming C. */
struct objs {
    GUID provider, sublayer, callout, block_filter, callout_filter;
};

static void add_objects(HANDLE s, struct objs *o)
{
    o->provider = h_guid(0x100);
    o->sublayer = h_guid(0x101);
    o->callout = h_guid(0x102);
    o->block_filter = h_guid(0x103);
    o->callout_filter = h_guid(0x104);
    assert_int_equal(add_provider(s, &o->provider), STATUS_SUCCESS);
    assert_int_equal(add_sublayer(s, &o->sublayer, 0x100, &o->provider), STATUS_SUCCESS);
    assert_int_equal(add_callout_object(s, &o->callout, ALE4, &o->provider, NULL),
                     STATUS_SUCCESS);
    FWPM_FILTER_CONDITION0 c = port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 23);
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_BLOCK);
    f.filterKey = o->block_filter;
    f.subLayerKey = o->sublayer;
    f.providerKey = &o->provider;
    f.numFilterConditions = 1;
    f.filterCondition = &c;
    assert_int_equal(FwpmFilterAdd0(s, &f, NULL, NULL), STATUS_SUCCESS);
    f = base_filter(ALE4, FWP_ACTION_CALLOUT_INSPECTION);
    f.filterKey = o->callout_filter;
    f.subLayerKey = o->sublayer;
    f.action.calloutKey = o->callout;
    assert_int_equal(FwpmFilterAdd0(s, &f, NULL, NULL), STATUS_SUCCESS);
}

static void test_M1_dynamic_session_objects_deleted_at_close(void **state)
{
    (void)state;
    HANDLE dyn = open_session(FWPM_SESSION_FLAG_DYNAMIC, 0);
    struct objs o;
    add_objects(dyn, &o);
    assert_int_equal(filter_count(), 2);
    assert_int_equal(verdict4(50000, 23), OWFP_FLOW_BLOCKED);

    assert_int_equal(FwpmEngineClose0(dyn), STATUS_SUCCESS);
    assert_int_equal(filter_count(), 0);
    assert_int_equal(verdict4(50000, 23), OWFP_FLOW_PERMITTED);
    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &o.block_filter),
                     STATUS_FWP_FILTER_NOT_FOUND);
    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &o.callout_filter),
                     STATUS_FWP_FILTER_NOT_FOUND);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &o.callout),
                     STATUS_FWP_CALLOUT_NOT_FOUND);
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &o.sublayer),
                     STATUS_FWP_SUBLAYER_NOT_FOUND);
    assert_int_equal(FwpmProviderDeleteByKey0(h_session, &o.provider),
                     STATUS_FWP_PROVIDER_NOT_FOUND);
    /* The keys are free again. */
    add_objects(h_session, &o);
}

static void test_M1_static_session_objects_survive_close(void **state)
{
    (void)state;
    HANDLE s = open_session(0, 0);
    struct objs o;
    add_objects(s, &o);
    assert_int_equal(FwpmEngineClose0(s), STATUS_SUCCESS);
    assert_int_equal(filter_count(), 2);
    assert_int_equal(verdict4(50000, 23), OWFP_FLOW_BLOCKED);
    /* Everything is still there, and another static session may delete it. */
    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &o.block_filter), STATUS_SUCCESS);
    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &o.callout_filter), STATUS_SUCCESS);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &o.callout), STATUS_SUCCESS);
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &o.sublayer), STATUS_SUCCESS);
    assert_int_equal(FwpmProviderDeleteByKey0(h_session, &o.provider), STATUS_SUCCESS);
    assert_int_equal(verdict4(50000, 23), OWFP_FLOW_PERMITTED);
}

/* ---- M2: transactions ------------------------------------------------------- */

static void test_M2_begin_inside_transaction_fails(void **state)
{
    (void)state;
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_FWP_TXN_IN_PROGRESS);
    assert_int_equal(FwpmTransactionBegin0(h_session, FWPM_TXN_READ_ONLY),
                     STATUS_FWP_TXN_IN_PROGRESS);
    /* The first transaction is still usable. */
    assert_int_equal(add_sublayer(h_session, NULL, 1, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
}

static void test_M2_commit_abort_without_transaction_fail(void **state)
{
    (void)state;
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_FWP_NO_TXN_IN_PROGRESS);
    assert_int_equal(FwpmTransactionAbort0(h_session), STATUS_FWP_NO_TXN_IN_PROGRESS);
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_FWP_NO_TXN_IN_PROGRESS);
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionAbort0(h_session), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionAbort0(h_session), STATUS_FWP_NO_TXN_IN_PROGRESS);
}

static void test_M2_uncommitted_filter_invisible_same_thread(void **state)
{
    (void)state;
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_PERMITTED);
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_BLOCKED);
}

static void *open_flow_thread(void *arg)
{
    enum owfp_flow_verdict *v = arg;
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    owfp_flow *f = NULL;
    if (owfp_flow_open(h_engine, &p, &f, v) != STATUS_SUCCESS)
        *v = (enum owfp_flow_verdict)-1;
    else
        owfp_flow_close(f);
    return NULL;
}

static enum owfp_flow_verdict verdict_on_other_thread(void)
{
    pthread_t t;
    enum owfp_flow_verdict v = (enum owfp_flow_verdict)-1;
    assert_int_equal(pthread_create(&t, NULL, open_flow_thread, &v), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    return v;
}

static void test_M2_uncommitted_filter_invisible_other_thread(void **state)
{
    (void)state;
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    assert_int_equal(verdict_on_other_thread(), OWFP_FLOW_PERMITTED);
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
    assert_int_equal(verdict_on_other_thread(), OWFP_FLOW_BLOCKED);
}

static void test_M2_abort_rolls_back_add(void **state)
{
    (void)state;
    GUID key = h_guid(7);
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_BLOCK);
    f.filterKey = key;
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    UINT64 id = 0;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionAbort0(h_session), STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_PERMITTED);
    assert_int_equal(filter_count(), 0);
    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &key), STATUS_FWP_FILTER_NOT_FOUND);
    assert_int_equal(FwpmFilterDeleteById0(h_session, id), STATUS_FWP_FILTER_NOT_FOUND);
    /* The key is free again. */
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_BLOCKED);
}

static void test_M2_abort_rolls_back_delete(void **state)
{
    (void)state;
    UINT64 id = 0;
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&spec, &id), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    assert_int_equal(FwpmFilterDeleteById0(h_session, id), STATUS_SUCCESS);
    /* The delete is not visible before commit either. */
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_BLOCKED);
    assert_int_equal(FwpmTransactionAbort0(h_session), STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_BLOCKED);
    assert_int_equal(filter_count(), 1);
    /* The filter is back under its id and can be deleted for good. */
    assert_int_equal(FwpmFilterDeleteById0(h_session, id), STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_PERMITTED);
}

static void test_M2_abort_restores_deleted_objects(void **state)
{
    (void)state;
    GUID p = h_guid(1), sl = h_guid(2), co = h_guid(3);
    assert_int_equal(add_provider(h_session, &p), STATUS_SUCCESS);
    assert_int_equal(add_sublayer(h_session, &sl, 0x10, &p), STATUS_SUCCESS);
    assert_int_equal(add_callout_object(h_session, &co, ALE4, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &sl), STATUS_SUCCESS);
    assert_int_equal(FwpmProviderDeleteByKey0(h_session, &p), STATUS_SUCCESS);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &co), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionAbort0(h_session), STATUS_SUCCESS);
    /* All three exist again, with their references. */
    assert_int_equal(add_sublayer(h_session, &sl, 0x10, NULL), STATUS_FWP_ALREADY_EXISTS);
    assert_int_equal(add_callout_object(h_session, &co, ALE4, NULL, NULL),
                     STATUS_FWP_ALREADY_EXISTS);
    assert_int_equal(FwpmProviderDeleteByKey0(h_session, &p), STATUS_FWP_IN_USE);
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_CALLOUT_INSPECTION);
    f.subLayerKey = sl;
    f.action.calloutKey = co;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_SUCCESS);
}

static void test_M2_failed_call_does_not_doom_transaction(void **state)
{
    (void)state;
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    FWPM_FILTER_CONDITION0 c23 = port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 23);
    FWPM_FILTER_CONDITION0 c25 = port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 25);
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_BLOCK);
    f.numFilterConditions = 1;
    f.filterCondition = &c23;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_SUCCESS);
    FWPM_FILTER0 bad = f;
    bad.displayData.name = NULL;
    assert_int_equal(FwpmFilterAdd0(h_session, &bad, NULL, NULL), STATUS_FWP_NULL_DISPLAY_NAME);
    bad = f;
    bad.layerKey = h_guid(99);
    assert_int_equal(FwpmFilterAdd0(h_session, &bad, NULL, NULL), STATUS_FWP_LAYER_NOT_FOUND);
    f.filterCondition = &c25;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
    assert_int_equal(filter_count(), 2);
    assert_int_equal(verdict4(1000, 23), OWFP_FLOW_BLOCKED);
    assert_int_equal(verdict4(1000, 25), OWFP_FLOW_BLOCKED);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_PERMITTED);
}

static void test_M2_read_only_transaction_refuses_writes(void **state)
{
    (void)state;
    UINT64 id = 0;
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&spec, &id), STATUS_SUCCESS);
    GUID k = h_guid(5);
    assert_int_equal(FwpmTransactionBegin0(h_session, FWPM_TXN_READ_ONLY), STATUS_SUCCESS);
    assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_INCOMPATIBLE_TXN);
    assert_int_equal(FwpmFilterDeleteById0(h_session, id), STATUS_FWP_INCOMPATIBLE_TXN);
    assert_int_equal(add_sublayer(h_session, &k, 1, NULL), STATUS_FWP_INCOMPATIBLE_TXN);
    assert_int_equal(add_provider(h_session, &k), STATUS_FWP_INCOMPATIBLE_TXN);
    assert_int_equal(add_callout_object(h_session, &k, ALE4, NULL, NULL),
                     STATUS_FWP_INCOMPATIBLE_TXN);
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
    assert_int_equal(filter_count(), 1);
    /* Writable again after the read-only transaction. */
    assert_int_equal(FwpmFilterDeleteById0(h_session, id), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionBegin0(h_session, FWPM_TXN_READ_ONLY), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionAbort0(h_session), STATUS_SUCCESS);
    assert_int_equal(add_sublayer(h_session, &k, 1, NULL), STATUS_SUCCESS);
}

static void test_M2_close_session_aborts_its_transaction(void **state)
{
    (void)state;
    HANDLE s = open_session(0, 0);
    GUID key = h_guid(9);
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_BLOCK);
    f.filterKey = key;
    assert_int_equal(FwpmTransactionBegin0(s, 0), STATUS_SUCCESS);
    assert_int_equal(FwpmFilterAdd0(s, &f, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpmEngineClose0(s), STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_PERMITTED);
    assert_int_equal(filter_count(), 0);
    /* The transaction lock is free: a session that would time out gets it. */
    HANDLE t = open_session(0, 200);
    assert_int_equal(FwpmFilterDeleteByKey0(t, &key), STATUS_FWP_FILTER_NOT_FOUND);
    assert_int_equal(FwpmTransactionBegin0(t, 0), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionCommit0(t), STATUS_SUCCESS);
    assert_int_equal(FwpmEngineClose0(t), STATUS_SUCCESS);
}

static double elapsed_ms(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void test_M2_second_session_write_times_out(void **state)
{
    (void)state;
    HANDLE other = open_session(0, 100);
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter_in(other, &spec, NULL), STATUS_FWP_TIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(elapsed_ms(&t0, &t1) >= 90.0);
    assert_int_equal(FwpmTransactionBegin0(other, 0), STATUS_FWP_TIMEOUT);
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
    /* Nothing of the timed-out call remains; the lock is free now. */
    assert_int_equal(filter_count(), 0);
    assert_int_equal(h_filter_in(other, &spec, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpmEngineClose0(other), STATUS_SUCCESS);
}

struct waiter {
    HANDLE session;
    atomic_int done;
    NTSTATUS status;
};

static void *add_filter_thread(void *arg)
{
    struct waiter *w = arg;
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_BLOCK};
    w->status = h_filter_in(w->session, &spec, NULL);
    atomic_store(&w->done, 1);
    return NULL;
}

static void test_M2_second_session_waits_without_timeout(void **state)
{
    (void)state;
    struct waiter w = {.session = open_session(0, 0), .status = -1};
    atomic_init(&w.done, 0);
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, add_filter_thread, &w), 0);
    usleep(150 * 1000);
    assert_int_equal(atomic_load(&w.done), 0);
    assert_int_equal(filter_count(), 0);
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(atomic_load(&w.done), 1);
    assert_int_equal(w.status, STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_BLOCKED);
    assert_int_equal(FwpmEngineClose0(w.session), STATUS_SUCCESS);
}

/* ---- M3: sublayers ------------------------------------------------------------ */

static void test_M3_sublayer_zero_key_generated(void **state)
{
    (void)state;
    /* Two zero keys would collide unless the engine makes up a key each. */
    assert_int_equal(add_sublayer(h_session, NULL, 1, NULL), STATUS_SUCCESS);
    assert_int_equal(add_sublayer(h_session, NULL, 2, NULL), STATUS_SUCCESS);
    static const GUID zero;
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &zero), STATUS_FWP_SUBLAYER_NOT_FOUND);
}

static void test_M3_sublayer_null_name_rejected(void **state)
{
    (void)state;
    FWPM_SUBLAYER0 sl;
    memset(&sl, 0, sizeof(sl));
    sl.subLayerKey = h_guid(1);
    assert_int_equal(FwpmSubLayerAdd0(h_session, &sl, NULL), STATUS_FWP_NULL_DISPLAY_NAME);
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &sl.subLayerKey),
                     STATUS_FWP_SUBLAYER_NOT_FOUND);
}

static void test_M3_sublayer_duplicate_key_rejected(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    assert_int_equal(add_sublayer(h_session, &k, 1, NULL), STATUS_SUCCESS);
    assert_int_equal(add_sublayer(h_session, &k, 2, NULL), STATUS_FWP_ALREADY_EXISTS);
    assert_int_equal(add_sublayer(h_session, &FWPM_SUBLAYER_UNIVERSAL, 2, NULL),
                     STATUS_FWP_ALREADY_EXISTS);
}

/* Records the order in which filters of several sublayers are evaluated. */
static uint64_t g_order[8];
static unsigned g_norder;

static void NTAPI order_classify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                 const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                 void *layerData, const FWPS_FILTER0 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(flowContext);
    if (g_norder < 8)
        g_order[g_norder++] = filter->context;
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

static void test_M3_sublayer_higher_weight_evaluated_first(void **state)
{
    (void)state;
    GUID key = h_guid(0xc0);
    assert_int_equal(h_register0(&key, 0, order_classify, h_notify_ok, NULL, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&key, ALE4), STATUS_SUCCESS);
    GUID low = h_guid(1), high = h_guid(2), top = h_guid(3);
    assert_int_equal(add_sublayer(h_session, &low, 0x100, NULL), STATUS_SUCCESS);
    assert_int_equal(add_sublayer(h_session, &high, 0x200, NULL), STATUS_SUCCESS);
    assert_int_equal(add_sublayer(h_session, &top, 0xffff, NULL), STATUS_SUCCESS);
    /* Added lowest first; the universal sublayer (0x8000) sits in between. */
    const GUID *order[] = {&low, &high, NULL, &top};
    for (uint64_t i = 0; i < 4; i++) {
        struct h_filter_spec spec = {.layer = ALE4,
                                     .sublayer = order[i],
                                     .action = FWP_ACTION_CALLOUT_INSPECTION,
                                     .callout = &key,
                                     .raw_context = i + 1};
        assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    }
    g_norder = 0;
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_PERMITTED);
    assert_int_equal(g_norder, 4);
    assert_int_equal(g_order[0], 4); /* 0xffff */
    assert_int_equal(g_order[1], 3); /* universal, 0x8000 */
    assert_int_equal(g_order[2], 2); /* 0x200 */
    assert_int_equal(g_order[3], 1); /* 0x100 */
}

static void test_M3_sublayer_delete_in_use(void **state)
{
    (void)state;
    GUID sl = h_guid(1);
    assert_int_equal(add_sublayer(h_session, &sl, 1, NULL), STATUS_SUCCESS);
    UINT64 id = 0;
    struct h_filter_spec spec = {.layer = ALE4, .sublayer = &sl, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&spec, &id), STATUS_SUCCESS);
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &sl), STATUS_FWP_IN_USE);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_BLOCKED);
    assert_int_equal(FwpmFilterDeleteById0(h_session, id), STATUS_SUCCESS);
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &sl), STATUS_SUCCESS);
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &sl), STATUS_FWP_SUBLAYER_NOT_FOUND);
}

static void test_M3_sublayer_delete_unknown(void **state)
{
    (void)state;
    GUID k = h_guid(42);
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &k), STATUS_FWP_SUBLAYER_NOT_FOUND);
}

static void test_M3_universal_sublayer_is_builtin(void **state)
{
    (void)state;
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &FWPM_SUBLAYER_UNIVERSAL),
                     STATUS_FWP_BUILTIN_OBJECT);
    /* Still usable. */
    struct h_filter_spec spec = {.layer = ALE4, .sublayer = &FWPM_SUBLAYER_UNIVERSAL,
                                 .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_BLOCKED);
}

/* ---- M4: callout objects -------------------------------------------------------- */

static void test_M4_callout_add_duplicate_key(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    assert_int_equal(add_callout_object(h_session, &k, ALE4, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(add_callout_object(h_session, &k, ALE4, NULL, NULL),
                     STATUS_FWP_ALREADY_EXISTS);
    assert_int_equal(add_callout_object(h_session, &k, STREAM4, NULL, NULL),
                     STATUS_FWP_ALREADY_EXISTS);
}

static void test_M4_callout_add_unknown_layer(void **state)
{
    (void)state;
    GUID k = h_guid(1), layer = h_guid(2);
    assert_int_equal(add_callout_object(h_session, &k, &layer, NULL, NULL),
                     STATUS_FWP_LAYER_NOT_FOUND);
    /* Nothing was added under the key. */
    assert_int_equal(add_callout_object(h_session, &k, ALE4, NULL, NULL), STATUS_SUCCESS);
}

static void test_M4_callout_delete_in_use(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    UINT32 cid = 0;
    assert_int_equal(add_callout_object(h_session, &k, ALE4, NULL, &cid), STATUS_SUCCESS);
    assert_int_not_equal(cid, 0);
    UINT64 fid = 0;
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_INSPECTION,
                                 .callout = &k};
    assert_int_equal(h_filter(&spec, &fid), STATUS_SUCCESS);
    assert_int_equal(FwpmCalloutDeleteById0(h_session, cid), STATUS_FWP_IN_USE);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &k), STATUS_FWP_IN_USE);
    assert_int_equal(FwpmFilterDeleteById0(h_session, fid), STATUS_SUCCESS);
    assert_int_equal(FwpmCalloutDeleteById0(h_session, cid), STATUS_SUCCESS);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &k), STATUS_FWP_CALLOUT_NOT_FOUND);
    /* Same by key. */
    assert_int_equal(add_callout_object(h_session, &k, ALE4, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(h_filter(&spec, &fid), STATUS_SUCCESS);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &k), STATUS_FWP_IN_USE);
    assert_int_equal(FwpmFilterDeleteById0(h_session, fid), STATUS_SUCCESS);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &k), STATUS_SUCCESS);
}

static void test_M4_callout_delete_unknown(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &k), STATUS_FWP_CALLOUT_NOT_FOUND);
    assert_int_equal(FwpmCalloutDeleteById0(h_session, 12345), STATUS_FWP_CALLOUT_NOT_FOUND);
    /* A registered callout without a callout object is not a callout object. */
    UINT32 id = 0;
    assert_int_equal(h_register0(&k, 0, record_classify, h_notify_ok, NULL, &id),
                     STATUS_SUCCESS);
    assert_int_equal(FwpmCalloutDeleteById0(h_session, id), STATUS_FWP_CALLOUT_NOT_FOUND);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &k), STATUS_FWP_CALLOUT_NOT_FOUND);
}

static void test_M4_filter_at_other_layer_than_applicable_layer(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    assert_int_equal(add_callout_object(h_session, &k, STREAM4, NULL, NULL), STATUS_SUCCESS);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_TERMINATING,
                                 .callout = &k};
    assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_INCOMPATIBLE_LAYER);
    spec.layer = ALE6;
    assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_INCOMPATIBLE_LAYER);
    spec.layer = STREAM4;
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    assert_int_equal(filter_count(), 1);
}

/* ---- M5: filters ------------------------------------------------------------------ */

static void test_M5_filter_null_display_name(void **state)
{
    (void)state;
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_BLOCK);
    f.displayData.name = NULL;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_FWP_NULL_DISPLAY_NAME);
    assert_int_equal(filter_count(), 0);
}

static void test_M5_filter_null_pointer(void **state)
{
    (void)state;
    assert_int_equal(FwpmFilterAdd0(h_session, NULL, NULL, NULL), STATUS_FWP_NULL_POINTER);
}

static void test_M5_filter_zero_key_generated(void **state)
{
    (void)state;
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_PERMIT);
    UINT64 a = 0, b = 0;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, &a), STATUS_SUCCESS);
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, &b), STATUS_SUCCESS);
    assert_int_not_equal(a, 0);
    assert_int_not_equal(b, 0);
    assert_int_not_equal(a, b);
    assert_int_equal(filter_count(), 2);
    static const GUID zero;
    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &zero), STATUS_FWP_FILTER_NOT_FOUND);
}

static void test_M5_zero_sublayer_key_is_universal(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    recording_callout(&k, ALE4);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_INSPECTION,
                                 .callout = &k};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_PERMITTED);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.sublayer_weight, 0x8000);
    /* The universal sublayer is now referenced. */
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &FWPM_SUBLAYER_UNIVERSAL),
                     STATUS_FWP_BUILTIN_OBJECT);
}

static void test_M5_zero_conditions_always_match(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    recording_callout(&k, ALE4);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_INSPECTION,
                                 .callout = &k};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    struct owfp_flow_params p[3] = {h_params4(1, 2, OWFP_OUTBOUND),
                                    h_params4(65535, 443, OWFP_INBOUND),
                                    h_params4(5000, 53, OWFP_OUTBOUND)};
    p[2].protocol = 17;
    for (int i = 0; i < 3; i++)
        owfp_flow_close(h_open(&p[i], NULL));
    assert_int_equal(g_seen.calls, 3);
    assert_int_equal(g_seen.nconds, 0);
}

static void test_M5_zero_conditions_ignore_condition_pointer(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    recording_callout(&k, ALE4);
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_CALLOUT_INSPECTION);
    f.action.calloutKey = k;
    f.numFilterConditions = 0;
    /* A stale pointer the engine must not follow (trustbase-windows). */
    f.filterCondition = (FWPM_FILTER_CONDITION0 *)(uintptr_t)0x10;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_PERMITTED);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.nconds, 0);
}

static void test_M5_conditions_are_anded(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 c[2] = {port_cond(&FWPM_CONDITION_IP_LOCAL_PORT, 100),
                                   port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 200)};
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_BLOCK);
    f.numFilterConditions = 2;
    f.filterCondition = c;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(verdict4(100, 200), OWFP_FLOW_BLOCKED);
    assert_int_equal(verdict4(100, 201), OWFP_FLOW_PERMITTED);
    assert_int_equal(verdict4(101, 200), OWFP_FLOW_PERMITTED);
}

static void test_M5_same_field_conditions_are_ored(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    recording_callout(&k, ALE4);
    FWPM_FILTER_CONDITION0 c[3] = {port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 80),
                                   port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 443),
                                   port_cond(&FWPM_CONDITION_IP_LOCAL_PORT, 1000)};
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_CALLOUT_INSPECTION);
    f.action.calloutKey = k;
    f.numFilterConditions = 3;
    f.filterCondition = c;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_SUCCESS);
    verdict4(1000, 80);
    assert_int_equal(g_seen.calls, 1);
    assert_true(g_seen.flags & FWPS_FILTER_FLAG_OR_CONDITIONS);
    verdict4(1000, 443);
    assert_int_equal(g_seen.calls, 2);
    verdict4(1000, 8080); /* neither alternative */
    verdict4(1001, 80);   /* the AND-ed local port fails */
    assert_int_equal(g_seen.calls, 2);
}

static void test_M5_distinct_fields_no_or_flag(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    recording_callout(&k, ALE4);
    FWPM_FILTER_CONDITION0 c[2] = {port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 80),
                                   port_cond(&FWPM_CONDITION_IP_LOCAL_PORT, 1000)};
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_CALLOUT_INSPECTION);
    f.action.calloutKey = k;
    f.numFilterConditions = 2;
    f.filterCondition = c;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_SUCCESS);
    verdict4(1000, 80);
    assert_int_equal(g_seen.calls, 1);
    assert_false(g_seen.flags & FWPS_FILTER_FLAG_OR_CONDITIONS);
}

static void test_M5_raw_context_copied_to_runtime_filter(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    recording_callout(&k, ALE4);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_INSPECTION,
                                 .callout = &k, .raw_context = 0x1122334455667788ull};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    verdict4(1000, 80);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.context, 0x1122334455667788ull);
}

static void test_M5_returned_id_is_runtime_filter_id(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    recording_callout(&k, ALE4);
    UINT64 ids[3] = {0};
    for (int i = 0; i < 3; i++) {
        FWPM_FILTER_CONDITION0 c = port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, (uint16_t)(80 + i));
        struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_INSPECTION,
                                     .callout = &k, .conds = &c, .nconds = 1};
        assert_int_equal(h_filter(&spec, &ids[i]), STATUS_SUCCESS);
    }
    for (int i = 0; i < 3; i++) {
        verdict4(1000, (uint16_t)(80 + i));
        assert_int_equal(g_seen.calls, i + 1);
        assert_int_equal(g_seen.filter_id, ids[i]);
    }
}

static void test_M5_continue_accepted_as_static_action(void **state)
{
    (void)state;
    GUID sl = h_guid(1);
    assert_int_equal(add_sublayer(h_session, &sl, 1, NULL), STATUS_SUCCESS);
    struct h_filter_spec cont = {.layer = ALE4, .sublayer = &sl, .action = FWP_ACTION_CONTINUE,
                                 .has_weight = 1, .weight = 100};
    assert_int_equal(h_filter(&cont, NULL), STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_PERMITTED);
    /* CONTINUE decides nothing: a lower filter of the sublayer still counts. */
    struct h_filter_spec block = {.layer = ALE4, .sublayer = &sl, .action = FWP_ACTION_BLOCK,
                                  .has_weight = 1, .weight = 1};
    assert_int_equal(h_filter(&block, NULL), STATUS_SUCCESS);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_BLOCKED);
}

static void test_M5_flag_0x8_is_clear_action_right(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    recording_callout(&k, ALE4);
    /* Fort Firewall ORs FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION (0x8)
     * into the filter flags; that bit is CLEAR_ACTION_RIGHT. */
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_TERMINATING,
                                 .callout = &k,
                                 .flags = FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED |
                                          FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    verdict4(1000, 80);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.flags & (FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT |
                                     FWPS_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED),
                     FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT |
                         FWPS_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED);
    struct h_filter_spec plain = {.layer = ALE4, .action = FWP_ACTION_PERMIT,
                                  .flags = FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT};
    assert_int_equal(h_filter(&plain, NULL), STATUS_SUCCESS);
}

static void test_M5_disabled_flag_rejected_on_add(void **state)
{
    (void)state;
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_BLOCK,
                                 .flags = FWPM_FILTER_FLAG_DISABLED};
    assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_INVALID_FLAGS);
    assert_int_equal(filter_count(), 0);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_PERMITTED);
}

static void test_M5_invalid_action_type(void **state)
{
    (void)state;
    static const uint32_t bad[] = {0, FWP_ACTION_NONE, FWP_ACTION_NONE_NO_MATCH,
                                   FWP_ACTION_FLAG_TERMINATING, 0xdeadbeef};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct h_filter_spec spec = {.layer = ALE4, .action = bad[i]};
        assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_INVALID_ACTION_TYPE);
    }
    assert_int_equal(filter_count(), 0);
}

static void test_M5_unknown_layer(void **state)
{
    (void)state;
    GUID layer = h_guid(0x77);
    struct h_filter_spec spec = {.layer = &layer, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_LAYER_NOT_FOUND);
}

static void test_M5_unknown_sublayer(void **state)
{
    (void)state;
    GUID sl = h_guid(0x77);
    struct h_filter_spec spec = {.layer = ALE4, .sublayer = &sl, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_SUBLAYER_NOT_FOUND);
}

static void test_M5_unknown_callout(void **state)
{
    (void)state;
    GUID k = h_guid(0x77);
    static const uint32_t types[] = {FWP_ACTION_CALLOUT_TERMINATING,
                                     FWP_ACTION_CALLOUT_INSPECTION, FWP_ACTION_CALLOUT_UNKNOWN};
    for (size_t i = 0; i < 3; i++) {
        struct h_filter_spec spec = {.layer = ALE4, .action = types[i], .callout = &k};
        assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_CALLOUT_NOT_FOUND);
    }
    /* A registered callout still needs its callout object. */
    assert_int_equal(h_register0(&k, 0, record_classify, h_notify_ok, NULL, NULL),
                     STATUS_SUCCESS);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_TERMINATING,
                                 .callout = &k};
    assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_CALLOUT_NOT_FOUND);
    assert_int_equal(filter_count(), 0);
}

static void test_M5_unknown_provider(void **state)
{
    (void)state;
    GUID p = h_guid(0x77);
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_BLOCK);
    f.providerKey = &p;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_FWP_PROVIDER_NOT_FOUND);
    assert_int_equal(add_provider(h_session, &p), STATUS_SUCCESS);
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_SUCCESS);
}

static void test_M5_duplicate_filter_key(void **state)
{
    (void)state;
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_PERMIT);
    f.filterKey = h_guid(1);
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_SUCCESS);
    f.action.type = FWP_ACTION_BLOCK;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_FWP_ALREADY_EXISTS);
    f.layerKey = *ALE6;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_FWP_ALREADY_EXISTS);
    assert_int_equal(filter_count(), 1);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_PERMITTED);
}

static void test_M5_condition_not_available_at_layer(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldKey = FWPM_CONDITION_IP_PROTOCOL;
    c.matchType = FWP_MATCH_EQUAL;
    c.conditionValue.type = FWP_UINT8;
    c.conditionValue.uint8 = 6;
    struct h_filter_spec spec = {.layer = STREAM4, .action = FWP_ACTION_BLOCK, .conds = &c,
                                 .nconds = 1};
    assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_CONDITION_NOT_FOUND);
    GUID unknown = h_guid(0x99);
    c.fieldKey = unknown;
    spec.layer = ALE4;
    assert_int_equal(h_filter(&spec, NULL), STATUS_FWP_CONDITION_NOT_FOUND);
    /* The same protocol condition is fine at flow-established. */
    c.fieldKey = FWPM_CONDITION_IP_PROTOCOL;
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
}

static void test_M5_delete_unknown_filter(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    assert_int_equal(FwpmFilterDeleteById0(h_session, 1), STATUS_FWP_FILTER_NOT_FOUND);
    assert_int_equal(FwpmFilterDeleteById0(h_session, 0), STATUS_FWP_FILTER_NOT_FOUND);
    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &k), STATUS_FWP_FILTER_NOT_FOUND);
    UINT64 id = 0;
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_PERMIT);
    f.filterKey = k;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &k), STATUS_SUCCESS);
    assert_int_equal(FwpmFilterDeleteById0(h_session, id), STATUS_FWP_FILTER_NOT_FOUND);
    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &k), STATUS_FWP_FILTER_NOT_FOUND);
}

/* ---- M6: references and sessions ---------------------------------------------------- */

static void test_M6_dynamic_objects_not_referenceable_from_other_sessions(void **state)
{
    (void)state;
    HANDLE dyn = open_session(FWPM_SESSION_FLAG_DYNAMIC, 0);
    HANDLE dyn2 = open_session(FWPM_SESSION_FLAG_DYNAMIC, 0);
    GUID p = h_guid(1), sl = h_guid(2), co = h_guid(3);
    assert_int_equal(add_provider(dyn, &p), STATUS_SUCCESS);
    assert_int_equal(add_sublayer(dyn, &sl, 1, NULL), STATUS_SUCCESS);
    assert_int_equal(add_callout_object(dyn, &co, ALE4, NULL, NULL), STATUS_SUCCESS);

    HANDLE others[2] = {h_session, dyn2};
    for (int i = 0; i < 2; i++) {
        FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_BLOCK);
        f.subLayerKey = sl;
        assert_int_equal(FwpmFilterAdd0(others[i], &f, NULL, NULL), STATUS_FWP_WRONG_SESSION);
        f = base_filter(ALE4, FWP_ACTION_CALLOUT_INSPECTION);
        f.action.calloutKey = co;
        assert_int_equal(FwpmFilterAdd0(others[i], &f, NULL, NULL), STATUS_FWP_WRONG_SESSION);
        f = base_filter(ALE4, FWP_ACTION_BLOCK);
        f.providerKey = &p;
        assert_int_equal(FwpmFilterAdd0(others[i], &f, NULL, NULL), STATUS_FWP_WRONG_SESSION);
        GUID sl2 = h_guid(10 + (uint32_t)i), co2 = h_guid(20 + (uint32_t)i);
        assert_int_equal(add_sublayer(others[i], &sl2, 1, &p), STATUS_FWP_WRONG_SESSION);
        assert_int_equal(add_callout_object(others[i], &co2, ALE4, &p, NULL),
                         STATUS_FWP_WRONG_SESSION);
    }
    assert_int_equal(filter_count(), 0);
    /* The owning session may reference them. */
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_CALLOUT_INSPECTION);
    f.subLayerKey = sl;
    f.providerKey = &p;
    f.action.calloutKey = co;
    assert_int_equal(FwpmFilterAdd0(dyn, &f, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpmEngineClose0(dyn2), STATUS_SUCCESS);
    assert_int_equal(FwpmEngineClose0(dyn), STATUS_SUCCESS);
}

static void test_M6_dynamic_session_may_reference_static_objects(void **state)
{
    (void)state;
    GUID sl = h_guid(1);
    assert_int_equal(add_sublayer(h_session, &sl, 1, NULL), STATUS_SUCCESS);
    HANDLE dyn = open_session(FWPM_SESSION_FLAG_DYNAMIC, 0);
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_BLOCK);
    f.subLayerKey = sl;
    assert_int_equal(FwpmFilterAdd0(dyn, &f, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &sl), STATUS_FWP_IN_USE);
    assert_int_equal(FwpmEngineClose0(dyn), STATUS_SUCCESS);
    /* The dynamic filter went with its session; the static sublayer stays. */
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &sl), STATUS_SUCCESS);
}

static void test_M6_delete_other_sessions_dynamic_object(void **state)
{
    (void)state;
    HANDLE dyn = open_session(FWPM_SESSION_FLAG_DYNAMIC, 0);
    HANDLE dyn2 = open_session(FWPM_SESSION_FLAG_DYNAMIC, 0);
    GUID p = h_guid(1), sl = h_guid(2), co = h_guid(3), fk = h_guid(4);
    UINT32 cid = 0;
    UINT64 fid = 0;
    assert_int_equal(add_provider(dyn, &p), STATUS_SUCCESS);
    assert_int_equal(add_sublayer(dyn, &sl, 1, NULL), STATUS_SUCCESS);
    assert_int_equal(add_callout_object(dyn, &co, ALE4, NULL, &cid), STATUS_SUCCESS);
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_BLOCK);
    f.filterKey = fk;
    assert_int_equal(FwpmFilterAdd0(dyn, &f, NULL, &fid), STATUS_SUCCESS);

    HANDLE others[2] = {h_session, dyn2};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(FwpmFilterDeleteById0(others[i], fid), STATUS_FWP_WRONG_SESSION);
        assert_int_equal(FwpmFilterDeleteByKey0(others[i], &fk), STATUS_FWP_WRONG_SESSION);
        assert_int_equal(FwpmCalloutDeleteById0(others[i], cid), STATUS_FWP_WRONG_SESSION);
        assert_int_equal(FwpmCalloutDeleteByKey0(others[i], &co), STATUS_FWP_WRONG_SESSION);
        assert_int_equal(FwpmSubLayerDeleteByKey0(others[i], &sl), STATUS_FWP_WRONG_SESSION);
        assert_int_equal(FwpmProviderDeleteByKey0(others[i], &p), STATUS_FWP_WRONG_SESSION);
    }
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_BLOCKED);
    /* The owner may delete them. */
    assert_int_equal(FwpmFilterDeleteByKey0(dyn, &fk), STATUS_SUCCESS);
    assert_int_equal(FwpmCalloutDeleteByKey0(dyn, &co), STATUS_SUCCESS);
    assert_int_equal(FwpmSubLayerDeleteByKey0(dyn, &sl), STATUS_SUCCESS);
    assert_int_equal(FwpmProviderDeleteByKey0(dyn, &p), STATUS_SUCCESS);
    assert_int_equal(FwpmEngineClose0(dyn2), STATUS_SUCCESS);
    assert_int_equal(FwpmEngineClose0(dyn), STATUS_SUCCESS);
}

static void test_M6_delete_static_object_from_dynamic_session(void **state)
{
    (void)state;
    GUID p = h_guid(1), sl = h_guid(2), co = h_guid(3), fk = h_guid(4);
    UINT32 cid = 0;
    UINT64 fid = 0;
    assert_int_equal(add_provider(h_session, &p), STATUS_SUCCESS);
    assert_int_equal(add_sublayer(h_session, &sl, 1, NULL), STATUS_SUCCESS);
    assert_int_equal(add_callout_object(h_session, &co, ALE4, NULL, &cid), STATUS_SUCCESS);
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_BLOCK);
    f.filterKey = fk;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, &fid), STATUS_SUCCESS);
    HANDLE dyn = open_session(FWPM_SESSION_FLAG_DYNAMIC, 0);
    assert_int_equal(FwpmFilterDeleteById0(dyn, fid), STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS);
    assert_int_equal(FwpmFilterDeleteByKey0(dyn, &fk), STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS);
    assert_int_equal(FwpmCalloutDeleteById0(dyn, cid), STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS);
    assert_int_equal(FwpmCalloutDeleteByKey0(dyn, &co), STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS);
    assert_int_equal(FwpmSubLayerDeleteByKey0(dyn, &sl), STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS);
    assert_int_equal(FwpmProviderDeleteByKey0(dyn, &p), STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS);
    assert_int_equal(FwpmEngineClose0(dyn), STATUS_SUCCESS);
    assert_int_equal(filter_count(), 1);
    assert_int_equal(verdict4(1000, 80), OWFP_FLOW_BLOCKED);
}

static void test_M6_referenced_provider_cannot_be_deleted(void **state)
{
    (void)state;
    GUID p = h_guid(1), sl = h_guid(2), co = h_guid(3);
    assert_int_equal(add_provider(h_session, &p), STATUS_SUCCESS);

    assert_int_equal(add_sublayer(h_session, &sl, 1, &p), STATUS_SUCCESS);
    assert_int_equal(FwpmProviderDeleteByKey0(h_session, &p), STATUS_FWP_IN_USE);
    assert_int_equal(FwpmSubLayerDeleteByKey0(h_session, &sl), STATUS_SUCCESS);

    assert_int_equal(add_callout_object(h_session, &co, ALE4, &p, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpmProviderDeleteByKey0(h_session, &p), STATUS_FWP_IN_USE);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &co), STATUS_SUCCESS);

    UINT64 fid = 0;
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_PERMIT);
    f.providerKey = &p;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, &fid), STATUS_SUCCESS);
    assert_int_equal(FwpmProviderDeleteByKey0(h_session, &p), STATUS_FWP_IN_USE);
    assert_int_equal(FwpmFilterDeleteById0(h_session, fid), STATUS_SUCCESS);

    assert_int_equal(FwpmProviderDeleteByKey0(h_session, &p), STATUS_SUCCESS);
    assert_int_equal(FwpmProviderDeleteByKey0(h_session, &p), STATUS_FWP_PROVIDER_NOT_FOUND);
}

/* ---- M7: GUID -> run-time id translation ------------------------------------------------ */

static void test_M7_layer_guid_to_layer_id(void **state)
{
    (void)state;
    GUID k4 = h_guid(1), k6 = h_guid(2);
    recording_callout(&k4, ALE4);
    recording_callout(&k6, ALE6);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_INSPECTION,
                                 .callout = &k4};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    spec.layer = ALE6;
    spec.callout = &k6;
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    verdict4(1000, 80);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.layer_id, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4);
    assert_int_equal(g_seen.layer_id, 52);
    verdict6(1000, 80);
    assert_int_equal(g_seen.calls, 2);
    assert_int_equal(g_seen.layer_id, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6);
    assert_int_equal(g_seen.layer_id, 54);
}

static void test_M7_condition_guid_to_field_id(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    recording_callout(&k, ALE4);
    FWPM_FILTER_CONDITION0 c[4];
    c[0] = port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 80);
    memset(&c[1], 0, sizeof(c[1]));
    c[1].fieldKey = FWPM_CONDITION_IP_PROTOCOL;
    c[1].matchType = FWP_MATCH_EQUAL;
    c[1].conditionValue.type = FWP_UINT8;
    c[1].conditionValue.uint8 = 6;
    memset(&c[2], 0, sizeof(c[2]));
    c[2].fieldKey = FWPM_CONDITION_DIRECTION;
    c[2].matchType = FWP_MATCH_EQUAL;
    c[2].conditionValue.type = FWP_UINT32;
    c[2].conditionValue.uint32 = FWP_DIRECTION_OUTBOUND;
    c[3] = port_cond(&FWPM_CONDITION_IP_LOCAL_PORT, 1000);
    c[3].matchType = FWP_MATCH_GREATER_OR_EQUAL;
    FWPM_FILTER0 f = base_filter(ALE4, FWP_ACTION_CALLOUT_INSPECTION);
    f.action.calloutKey = k;
    f.numFilterConditions = 4;
    f.filterCondition = c;
    assert_int_equal(FwpmFilterAdd0(h_session, &f, NULL, NULL), STATUS_SUCCESS);
    verdict4(1000, 80);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.nconds, 4);
    /* Each condition shows up once, with the field index of this layer. */
    bool seen_port = false, seen_proto = false, seen_dir = false, seen_local = false;
    for (unsigned i = 0; i < 4; i++) {
        switch (g_seen.field_ids[i]) {
        case FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT:
            assert_false(seen_port);
            seen_port = true;
            assert_int_equal(g_seen.match_types[i], FWP_MATCH_EQUAL);
            break;
        case FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_PROTOCOL:
            assert_false(seen_proto);
            seen_proto = true;
            break;
        case FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_DIRECTION:
            assert_false(seen_dir);
            seen_dir = true;
            break;
        case FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_PORT:
            assert_false(seen_local);
            seen_local = true;
            assert_int_equal(g_seen.match_types[i], FWP_MATCH_GREATER_OR_EQUAL);
            break;
        default:
            fail_msg("unexpected fieldId %u", g_seen.field_ids[i]);
        }
    }
    assert_true(seen_port && seen_proto && seen_dir && seen_local);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT, 7);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_PROTOCOL, 5);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_DIRECTION, 12);
}

static void test_M7_sublayer_weight_in_runtime_filter(void **state)
{
    (void)state;
    GUID k = h_guid(1), sl = h_guid(2);
    recording_callout(&k, ALE4);
    assert_int_equal(add_sublayer(h_session, &sl, 0x1234, NULL), STATUS_SUCCESS);
    struct h_filter_spec spec = {.layer = ALE4, .sublayer = &sl,
                                 .action = FWP_ACTION_CALLOUT_INSPECTION, .callout = &k};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    verdict4(1000, 80);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.sublayer_weight, 0x1234);
}

static void test_M7_callout_key_to_callout_id(void **state)
{
    (void)state;
    GUID other = h_guid(9), k = h_guid(1);
    /* Another key first, so the id is not trivially 1. */
    assert_int_equal(h_register0(&other, 0, record_classify, h_notify_ok, NULL, NULL),
                     STATUS_SUCCESS);
    UINT32 reg_id = 0, obj_id = 0;
    assert_int_equal(h_register0(&k, 0, record_classify, h_notify_ok, NULL, &reg_id),
                     STATUS_SUCCESS);
    assert_int_equal(add_callout_object(h_session, &k, ALE4, NULL, &obj_id), STATUS_SUCCESS);
    assert_int_equal(obj_id, reg_id);
    struct h_filter_spec spec = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_UNKNOWN,
                                 .callout = &k};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    verdict4(1000, 80);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.callout_id, reg_id);
    assert_int_equal(g_seen.action_type, FWP_ACTION_CALLOUT_UNKNOWN);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, h_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_M1_engine_open_null_handle_out),
        T(test_M1_engine_open_server_name_rejected),
        T(test_M1_engine_open_bad_authn_service_rejected),
        T(test_M1_engine_open_authn_default_accepted),
        T(test_M1_engine_open_unknown_session_flags_rejected),
        T(test_M1_engine_open_without_engine_not_ready),
        T(test_M1_engine_close_unknown_handle),
        T(test_M1_unknown_handle_rejected_by_every_call),
        T(test_M1_dynamic_session_objects_deleted_at_close),
        T(test_M1_static_session_objects_survive_close),
        T(test_M2_begin_inside_transaction_fails),
        T(test_M2_commit_abort_without_transaction_fail),
        T(test_M2_uncommitted_filter_invisible_same_thread),
        T(test_M2_uncommitted_filter_invisible_other_thread),
        T(test_M2_abort_rolls_back_add),
        T(test_M2_abort_rolls_back_delete),
        T(test_M2_abort_restores_deleted_objects),
        T(test_M2_failed_call_does_not_doom_transaction),
        T(test_M2_read_only_transaction_refuses_writes),
        T(test_M2_close_session_aborts_its_transaction),
        T(test_M2_second_session_write_times_out),
        T(test_M2_second_session_waits_without_timeout),
        T(test_M3_sublayer_zero_key_generated),
        T(test_M3_sublayer_null_name_rejected),
        T(test_M3_sublayer_duplicate_key_rejected),
        T(test_M3_sublayer_higher_weight_evaluated_first),
        T(test_M3_sublayer_delete_in_use),
        T(test_M3_sublayer_delete_unknown),
        T(test_M3_universal_sublayer_is_builtin),
        T(test_M4_callout_add_duplicate_key),
        T(test_M4_callout_add_unknown_layer),
        T(test_M4_callout_delete_in_use),
        T(test_M4_callout_delete_unknown),
        T(test_M4_filter_at_other_layer_than_applicable_layer),
        T(test_M5_filter_null_display_name),
        T(test_M5_filter_null_pointer),
        T(test_M5_filter_zero_key_generated),
        T(test_M5_zero_sublayer_key_is_universal),
        T(test_M5_zero_conditions_always_match),
        T(test_M5_zero_conditions_ignore_condition_pointer),
        T(test_M5_conditions_are_anded),
        T(test_M5_same_field_conditions_are_ored),
        T(test_M5_distinct_fields_no_or_flag),
        T(test_M5_raw_context_copied_to_runtime_filter),
        T(test_M5_returned_id_is_runtime_filter_id),
        T(test_M5_continue_accepted_as_static_action),
        T(test_M5_flag_0x8_is_clear_action_right),
        T(test_M5_disabled_flag_rejected_on_add),
        T(test_M5_invalid_action_type),
        T(test_M5_unknown_layer),
        T(test_M5_unknown_sublayer),
        T(test_M5_unknown_callout),
        T(test_M5_unknown_provider),
        T(test_M5_duplicate_filter_key),
        T(test_M5_condition_not_available_at_layer),
        T(test_M5_delete_unknown_filter),
        T(test_M6_dynamic_objects_not_referenceable_from_other_sessions),
        T(test_M6_dynamic_session_may_reference_static_objects),
        T(test_M6_delete_other_sessions_dynamic_object),
        T(test_M6_delete_static_object_from_dynamic_session),
        T(test_M6_referenced_provider_cannot_be_deleted),
        T(test_M7_layer_guid_to_layer_id),
        T(test_M7_condition_guid_to_field_id),
        T(test_M7_sublayer_weight_in_runtime_filter),
        T(test_M7_callout_key_to_callout_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
