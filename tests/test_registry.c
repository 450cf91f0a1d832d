/*
 * Spec §4 (R1-R9): FwpsCalloutRegister0..3, FwpsCalloutUnregisterById0 /
 * ByKey0, what a registered / unregistered callout means for classify, and
 * the T1/T2 rows of the §13 matrix. Callouts are written as Windows drivers
 * write them. Classification happens at ALE_FLOW_ESTABLISHED_V4, driven by
 * owfp_flow_open().
 */
#include "harness.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

static WCHAR g_name[] = L"registry test";

#define ALE_V4 FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4

/* ---- shared state, reset by every test --------------------------------- */

struct seen_call {
    int version;             /* which classifyFn/notifyFn version ran */
    UINT16 layer_id;
    UINT64 flow_handle;
    UINT32 metadata;
    void *layer_data;
    UINT64 filter_id;
    UINT32 filter_callout_id;
    UINT32 filter_action;
    UINT64 filter_context;
    UINT64 flow_context;
    UINT32 rights;
    const void *classify_context; /* classifyFn1..3 only */
};

static struct {
    /* classify */
    atomic_int classify_calls;
    struct seen_call last;
    UINT32 answer;            /* actionType the recording classifyFn writes */
    bool clear_right;
    /* the associating callout (R1, R7) */
    UINT32 assoc_target;      /* callout id to associate for, 0 = none */
    UINT64 assoc_ctx;
    NTSTATUS assoc_status;
    atomic_int assoc_calls;
    /* notify */
    atomic_int notify_calls;
    int notify_version;
    FWPS_CALLOUT_NOTIFY_TYPE notify_type;
    bool notify_key_null;
    GUID notify_key;
    UINT64 notify_filter_id;
    /* flowDeleteFn */
    atomic_int deletes;
    UINT16 delete_layer;
    UINT32 delete_callout;
    UINT64 delete_ctx;
    /* PASSIVE-only calls made from inside callouts */
    NTSTATUS inner_status;
    NTSTATUS inner_status2;
    UINT32 self_id;
    GUID self_key;
} g;

static void reset(void)
{
    memset(&g, 0, sizeof(g));
    g.answer = FWP_ACTION_CONTINUE;
}

static GUID g_hi, g_lo; /* sublayers: high weight, low weight */

static void make_sublayers(void)
{
    g_hi = h_sublayer(1, 0x200);
    g_lo = h_sublayer(2, 0x100);
}

/* FwpmFilterAdd0 at ALE_FLOW_ESTABLISHED_V4 with an explicit key. */
static NTSTATUS add_filter(const GUID *key, const GUID *sublayer, UINT32 action,
                           const GUID *callout, UINT32 flags, UINT64 weight, UINT64 *id)
{
    FWPM_FILTER0 f;
    memset(&f, 0, sizeof(f));
    if (key)
        f.filterKey = *key;
    f.displayData.name = g_name;
    f.layerKey = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
    if (sublayer)
        f.subLayerKey = *sublayer;
    f.weight.type = FWP_UINT64;
    f.weight.uint64 = &weight;
    f.flags = flags;
    f.action.type = action;
    if (callout)
        f.action.calloutKey = *callout;
    return FwpmFilterAdd0(h_session, &f, NULL, id);
}

static NTSTATUS add_object(const GUID *key)
{
    return h_callout_object(key, &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4);
}

static enum owfp_flow_verdict open_close(uint16_t port)
{
    struct owfp_flow_params p = h_params4(port, 80, OWFP_OUTBOUND);
    enum owfp_flow_verdict v;
    owfp_flow *f = h_open(&p, &v);
    owfp_flow_close(f);
    return v;
}

/* ---- recording callouts, one per FWPS_CALLOUTn version ------------------- */

static void record(int version, const FWPS_INCOMING_VALUES0 *in,
                   const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                   const FWPS_FILTER0 *filter, UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    g.last.version = version;
    g.last.layer_id = in->layerId;
    g.last.metadata = meta->currentMetadataValues;
    g.last.flow_handle = meta->flowHandle;
    g.last.layer_data = layerData;
    g.last.filter_id = filter->filterId;
    g.last.filter_callout_id = filter->action.calloutId;
    g.last.filter_action = filter->action.type;
    g.last.filter_context = filter->context;
    g.last.flow_context = flowContext;
    g.last.rights = out->rights;
    out->actionType = g.answer;
    if (g.clear_right)
        out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
    atomic_fetch_add(&g.classify_calls, 1);
}

static void NTAPI classify0(const FWPS_INCOMING_VALUES0 *in,
                            const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                            const FWPS_FILTER0 *filter, UINT64 flowContext,
                            FWPS_CLASSIFY_OUT0 *out)
{
    record(0, in, meta, layerData, filter, flowContext, out);
}

/* classify1..3: the FWPS_CALLOUT1..3 signatures (a classifyContext, and
 * FWPS_FILTERn, whose leading fields are FWPS_FILTER0's). */
#define CLASSIFY_N(n)                                                                            \
    static void NTAPI classify##n(const FWPS_INCOMING_VALUES0 *in,                               \
                                  const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,   \
                                  const void *classifyContext, const FWPS_FILTER##n *filter,     \
                                  UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)                   \
    {                                                                                            \
        record(n, in, meta, layerData, (const FWPS_FILTER0 *)filter, flowContext, out);          \
        g.last.classify_context = classifyContext;                                               \
    }
CLASSIFY_N(1)
CLASSIFY_N(2)
CLASSIFY_N(3)

/* A second classifyFn, to tell two registrations apart (R2). */
static void NTAPI classify_other(const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                 const FWPS_FILTER0 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *out)
{
    record(100, in, meta, layerData, filter, flowContext, out);
}

static NTSTATUS note(int version, FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                     const FWPS_FILTER0 *filter)
{
    g.notify_version = version;
    g.notify_type = type;
    g.notify_key_null = key == NULL;
    if (key)
        g.notify_key = *key;
    g.notify_filter_id = filter->filterId;
    atomic_fetch_add(&g.notify_calls, 1);
    return STATUS_SUCCESS;
}

static NTSTATUS NTAPI notify0(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                              FWPS_FILTER0 *filter)
{
    return note(0, type, key, filter);
}

/* notify1..3: the same with FWPS_FILTER1..3. */
#define NOTIFY_N(n)                                                                              \
    static NTSTATUS NTAPI notify##n(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,              \
                                    FWPS_FILTER##n *filter)                                      \
    {                                                                                            \
        return note(n, type, key, (const FWPS_FILTER0 *)filter);                                 \
    }
NOTIFY_N(1)
NOTIFY_N(2)
NOTIFY_N(3)

static void NTAPI flow_delete(UINT16 layerId, UINT32 calloutId, UINT64 flowContext)
{
    g.delete_layer = layerId;
    g.delete_callout = calloutId;
    g.delete_ctx = flowContext;
    atomic_fetch_add(&g.deletes, 1);
}

/* An inspection callout that associates g.assoc_ctx with (flow, ALE_V4,
 * g.assoc_target) the way stmedit's flow-established callout does. */
static void NTAPI assoc_classify(const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                 const FWPS_FILTER0 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *out)
{
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    atomic_fetch_add(&g.assoc_calls, 1);
    if (g.assoc_target && FWPS_IS_METADATA_FIELD_PRESENT(meta, FWPS_METADATA_FIELD_FLOW_HANDLE))
        g.assoc_status =
            FwpsFlowAssociateContext0(meta->flowHandle, in->layerId, g.assoc_target, g.assoc_ctx);
    out->actionType = FWP_ACTION_CONTINUE;
}

static NTSTATUS register_version(unsigned version, const GUID *key, UINT32 flags, bool with_classify,
                                 bool with_notify, bool with_delete, UINT32 *id)
{
    switch (version) {
    case 0: {
        FWPS_CALLOUT0 c = {0};
        c.calloutKey = *key;
        c.flags = flags;
        c.classifyFn = with_classify ? classify0 : NULL;
        c.notifyFn = with_notify ? notify0 : NULL;
        c.flowDeleteFn = with_delete ? flow_delete : NULL;
        return FwpsCalloutRegister0(NULL, &c, id);
    }
    case 1: {
        FWPS_CALLOUT1 c = {0};
        c.calloutKey = *key;
        c.flags = flags;
        c.classifyFn = with_classify ? classify1 : NULL;
        c.notifyFn = with_notify ? notify1 : NULL;
        c.flowDeleteFn = with_delete ? flow_delete : NULL;
        return FwpsCalloutRegister1(NULL, &c, id);
    }
    case 2: {
        FWPS_CALLOUT2 c = {0};
        c.calloutKey = *key;
        c.flags = flags;
        c.classifyFn = with_classify ? classify2 : NULL;
        c.notifyFn = with_notify ? notify2 : NULL;
        c.flowDeleteFn = with_delete ? flow_delete : NULL;
        return FwpsCalloutRegister2(NULL, &c, id);
    }
    default: {
        FWPS_CALLOUT3 c = {0};
        c.calloutKey = *key;
        c.flags = flags;
        c.classifyFn = with_classify ? classify3 : NULL;
        c.notifyFn = with_notify ? notify3 : NULL;
        c.flowDeleteFn = with_delete ? flow_delete : NULL;
        return FwpsCalloutRegister3(NULL, &c, id);
    }
    }
}

static NTSTATUS register_full(unsigned version, const GUID *key, UINT32 flags, UINT32 *id)
{
    return register_version(version, key, flags, true, true, true, id);
}

/* ---- a classify that can be held on another thread ---------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool armed;   /* the next classify of the gated callout blocks */
    bool entered; /* it is inside its classifyFn */
    bool release;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, false};

static atomic_int gated_returned; /* set as the gated classifyFn's last action */

static void gate_reset(bool armed)
{
    pthread_mutex_lock(&gate.mu);
    gate.armed = armed;
    gate.entered = false;
    gate.release = false;
    pthread_mutex_unlock(&gate.mu);
    atomic_store(&gated_returned, 0);
}

static void gate_wait_entered(void)
{
    pthread_mutex_lock(&gate.mu);
    while (!gate.entered)
        pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.release = true;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

static void NTAPI gated_classify(const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                 const FWPS_FILTER0 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *out)
{
    atomic_store(&gated_returned, 0);
    pthread_mutex_lock(&gate.mu);
    if (gate.armed) {
        gate.armed = false;
        gate.entered = true;
        pthread_cond_broadcast(&gate.cv);
        while (!gate.release)
            pthread_cond_wait(&gate.cv, &gate.mu);
    }
    pthread_mutex_unlock(&gate.mu);
    record(0, in, meta, layerData, filter, flowContext, out);
    atomic_store(&gated_returned, 1);
}

struct flow_thread {
    pthread_t thread;
    uint16_t port;
    NTSTATUS status;
    enum owfp_flow_verdict verdict;
};

static void *flow_thread_main(void *arg)
{
    struct flow_thread *t = arg;
    struct owfp_flow_params p = h_params4(t->port, 80, OWFP_OUTBOUND);
    owfp_flow *f = NULL;
    t->status = owfp_flow_open(h_engine, &p, &f, &t->verdict);
    if (t->status == STATUS_SUCCESS)
        owfp_flow_close(f);
    return NULL;
}

struct unregister_thread {
    pthread_t thread;
    UINT32 id;
    NTSTATUS status;
    int classify_had_returned; /* gated_returned right after unregister returned */
    atomic_int done;
};

static void *unregister_thread_main(void *arg)
{
    struct unregister_thread *t = arg;
    t->status = FwpsCalloutUnregisterById0(t->id);
    t->classify_had_returned = atomic_load(&gated_returned);
    atomic_store(&t->done, 1);
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits until callout `id` refuses new flow contexts, i.e. an unregister of
 * it has started (spec Q3 state). The callout needs a flowDeleteFn. */
static bool wait_until_draining(UINT32 id)
{
    for (int i = 0; i < 20000; i++) {
        if (FwpsFlowAssociateContext0(0, ALE_V4, id, 1) == STATUS_INVALID_DEVICE_STATE)
            return true;
        sleep_ms(1);
    }
    return false;
}

/* Registers `key` (gated_classify, with a flowDeleteFn) behind an
 * inspection filter, holds its classify of a flow at the gate on ft's
 * thread, and starts an unregister of it on ut's thread. Returns whether the
 * callout was seen draining; the caller opens the gate and joins both. */
static bool start_draining_unregister(const GUID *key, UINT32 *id, struct flow_thread *ft,
                                      struct unregister_thread *ut)
{
    gate_reset(true);
    assert_int_equal(h_register0(key, 0, gated_classify, NULL, flow_delete, id), STATUS_SUCCESS);
    assert_int_equal(add_object(key), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_INSPECTION, key, 0, 1, NULL),
                     STATUS_SUCCESS);

    memset(ft, 0, sizeof(*ft));
    ft->port = 1000;
    assert_int_equal(pthread_create(&ft->thread, NULL, flow_thread_main, ft), 0);
    gate_wait_entered();
    memset(ut, 0, sizeof(*ut));
    ut->id = *id;
    assert_int_equal(pthread_create(&ut->thread, NULL, unregister_thread_main, ut), 0);
    return wait_until_draining(*id);
}

/* ---- R1 ------------------------------------------------------------------ */

/* Registers version n, then checks every argument the engine passes to that
 * version's notifyFn and classifyFn. */
static void check_version_signature(unsigned version)
{
    reset();
    make_sublayers();
    GUID key = h_guid(0x100 + version), assoc_key = h_guid(0x1ff);
    GUID fkey = h_guid(0xf00 + version);
    UINT32 id = 0, assoc_id = 0;
    assert_int_equal(register_full(version, &key, 0, &id), STATUS_SUCCESS);
    assert_int_not_equal(id, 0);
    assert_int_equal(h_register0(&assoc_key, 0, assoc_classify, h_notify_ok, NULL, &assoc_id),
                     STATUS_SUCCESS);
    assert_int_equal(add_object(&key), STATUS_SUCCESS);
    assert_int_equal(add_object(&assoc_key), STATUS_SUCCESS);
    UINT64 assoc_fid, fid = 0;
    assert_int_equal(add_filter(NULL, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, &assoc_key, 0, 1,
                                &assoc_fid),
                     STATUS_SUCCESS);
    assert_int_equal(add_filter(&fkey, &g_lo, FWP_ACTION_CALLOUT_TERMINATING, &key, 0, 1, &fid),
                     STATUS_SUCCESS);

    /* notifyFn of the registered version: ADD with the key and the filter. */
    assert_int_equal(g.notify_calls, 1);
    assert_int_equal(g.notify_version, version);
    assert_int_equal(g.notify_type, FWPS_CALLOUT_NOTIFY_ADD_FILTER);
    assert_false(g.notify_key_null);
    assert_memory_equal(&g.notify_key, &fkey, sizeof(GUID));
    assert_int_equal(g.notify_filter_id, fid);

    /* classifyFn of the registered version, every argument in its place. */
    g.assoc_target = id;
    g.assoc_ctx = 0xc0de00 + version;
    g.answer = FWP_ACTION_BLOCK;
    g.clear_right = true;
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    enum owfp_flow_verdict v;
    owfp_flow *f = h_open(&p, &v);
    assert_int_equal(g.assoc_status, STATUS_SUCCESS);
    assert_int_equal(g.classify_calls, 1);
    assert_int_equal(g.last.version, version);
    assert_int_equal(g.last.layer_id, ALE_V4);
    assert_true(g.last.metadata & FWPS_METADATA_FIELD_FLOW_HANDLE);
    assert_int_equal(g.last.flow_handle, owfp_flow_id(f));
    assert_int_equal(g.last.filter_id, fid);
    assert_int_equal(g.last.filter_callout_id, id);
    assert_int_equal(g.last.filter_action, FWP_ACTION_CALLOUT_TERMINATING);
    assert_int_equal(g.last.flow_context, 0xc0de00 + version);
    assert_int_equal(g.last.rights, FWPS_RIGHT_ACTION_WRITE);
    /* classifyFn1..3 get an opaque, non-NULL classifyContext (C2). */
    if (version > 0)
        assert_non_null(g.last.classify_context);
    /* classifyOut is where the engine reads the answer from. */
    assert_int_equal(v, OWFP_FLOW_BLOCKED);
    owfp_flow_close(f);
    assert_int_equal(g.deletes, 1);
    assert_int_equal(g.delete_callout, id);
    assert_int_equal(g.delete_layer, ALE_V4);
    assert_int_equal(g.delete_ctx, 0xc0de00 + version);

    assert_int_equal(FwpmFilterDeleteById0(h_session, fid), STATUS_SUCCESS);
    assert_int_equal(g.notify_calls, 2);
    assert_int_equal(g.notify_version, version);
    assert_int_equal(g.notify_type, FWPS_CALLOUT_NOTIFY_DELETE_FILTER);
    assert_int_equal(g.notify_filter_id, fid);
}

static void test_R1_register0_calls_classify0_and_notify0(void **state)
{
    (void)state;
    check_version_signature(0);
}

static void test_R1_register1_calls_classify1_and_notify1(void **state)
{
    (void)state;
    check_version_signature(1);
}

static void test_R1_register2_calls_classify2_and_notify2(void **state)
{
    (void)state;
    check_version_signature(2);
}

static void test_R1_register3_calls_classify3_and_notify3(void **state)
{
    (void)state;
    check_version_signature(3);
}

static void test_R1_flags_allowed_per_version(void **state)
{
    (void)state;
    reset();
    static const UINT32 allowed[4] = {0x003, 0x01f, 0x0ff, 0x7ff};
    for (unsigned v = 0; v < 4; v++) {
        GUID key = h_guid(0x200 + v);
        UINT32 id = 0;
        /* The first bit this version cannot carry, and a far one. */
        UINT32 next = allowed[v] + 1;
        assert_int_equal(register_full(v, &key, next, &id), STATUS_FWP_INVALID_FLAGS);
        assert_int_equal(register_full(v, &key, 0x80000000u, &id), STATUS_FWP_INVALID_FLAGS);
        assert_int_equal(register_full(v, &key, allowed[v] | next, &id),
                         STATUS_FWP_INVALID_FLAGS);
        /* A refused registration leaves nothing behind. */
        assert_int_equal(FwpsCalloutUnregisterByKey0(&key), STATUS_FWP_CALLOUT_NOT_FOUND);
        /* Every flag the version may carry, at once and one by one. */
        assert_int_equal(register_full(v, &key, allowed[v], &id), STATUS_SUCCESS);
        assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
        for (UINT32 bit = 1; bit <= allowed[v]; bit <<= 1) {
            assert_int_equal(register_full(v, &key, bit, &id), STATUS_SUCCESS);
            assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
        }
    }
}

static void test_R1_null_callout_struct_fails(void **state)
{
    (void)state;
    UINT32 id = 0x55;
    assert_int_equal(FwpsCalloutRegister0(NULL, NULL, &id), STATUS_FWP_NULL_POINTER);
    assert_int_equal(FwpsCalloutRegister1(NULL, NULL, &id), STATUS_FWP_NULL_POINTER);
    assert_int_equal(FwpsCalloutRegister2(NULL, NULL, &id), STATUS_FWP_NULL_POINTER);
    assert_int_equal(FwpsCalloutRegister3(NULL, NULL, &id), STATUS_FWP_NULL_POINTER);
    assert_int_equal(id, 0x55);
}

/* No setup: there is no engine at all. */
static void test_R1_no_engine_tcpip_not_ready(void **state)
{
    (void)state;
    reset();
    assert_null(owfp_engine_current());
    GUID key = h_guid(0x300);
    UINT32 id = 0;
    for (unsigned v = 0; v < 4; v++)
        assert_int_equal(register_full(v, &key, 0, &id), STATUS_FWP_TCPIP_NOT_READY);
    assert_int_equal(FwpsCalloutUnregisterById0(1), STATUS_FWP_TCPIP_NOT_READY);
    assert_int_equal(FwpsCalloutUnregisterByKey0(&key), STATUS_FWP_TCPIP_NOT_READY);
    HANDLE h;
    assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &h),
                     STATUS_FWP_TCPIP_NOT_READY);
}

/* Registering, like every PASSIVE-only call, is refused from a classifyFn. */
static void NTAPI register_from_classify(const FWPS_INCOMING_VALUES0 *in,
                                         const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                         void *layerData, const FWPS_FILTER0 *filter,
                                         UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    GUID other = h_guid(0x3ff);
    g.inner_status = h_register0(&other, 0, classify0, NULL, NULL, NULL);
    record(0, in, meta, layerData, filter, flowContext, out);
}

static void test_R1_register_from_classify_refused(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x310), other = h_guid(0x3ff);
    UINT32 id;
    assert_int_equal(h_register0(&key, 0, register_from_classify, NULL, NULL, &id),
                     STATUS_SUCCESS);
    assert_int_equal(add_object(&key), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_INSPECTION, &key, 0, 1, NULL),
                     STATUS_SUCCESS);
    open_close(1000);
    assert_int_equal(g.classify_calls, 1);
    assert_int_equal(g.inner_status, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(FwpsCalloutUnregisterByKey0(&other), STATUS_FWP_CALLOUT_NOT_FOUND);
}

/* ---- R2 ------------------------------------------------------------------ */

static void test_R2_T1_register_same_key_twice(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x400);
    UINT32 id = 0, id2 = 0;
    assert_int_equal(h_register0(&key, 0, classify0, NULL, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(h_register0(&key, 0, classify_other, NULL, NULL, &id2),
                     (NTSTATUS)0xC0220009);
    assert_int_equal(h_register0(&key, 0, classify_other, NULL, NULL, &id2),
                     STATUS_FWP_ALREADY_EXISTS);
    /* Whatever the struct version. */
    for (unsigned v = 1; v < 4; v++)
        assert_int_equal(register_full(v, &key, 0, &id2), STATUS_FWP_ALREADY_EXISTS);

    /* The first registration is untouched: its classifyFn still runs. */
    assert_int_equal(add_object(&key), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_INSPECTION, &key, 0, 1, NULL),
                     STATUS_SUCCESS);
    open_close(1000);
    assert_int_equal(g.classify_calls, 1);
    assert_int_equal(g.last.version, 0);
    assert_int_equal(g.last.filter_callout_id, id);
}

static void test_R2_register_again_after_unregister(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x410);
    UINT32 id = 0, id2 = 0;
    assert_int_equal(h_register0(&key, 0, classify0, NULL, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
    assert_int_equal(h_register0(&key, 0, classify_other, NULL, NULL, &id2), STATUS_SUCCESS);
    assert_int_equal(id2, id); /* R3: the id is a function of the key */
    assert_int_equal(h_register0(&key, 0, classify0, NULL, NULL, NULL),
                     STATUS_FWP_ALREADY_EXISTS);
}

/* ---- R3 ------------------------------------------------------------------ */

static void test_R3_callout_id_out_param(void **state)
{
    (void)state;
    reset();
    GUID a = h_guid(0x500), b = h_guid(0x501), c = h_guid(0x502);
    UINT32 ida = 0, idb = 0, idc;
    assert_int_equal(h_register0(&a, 0, classify0, NULL, NULL, &ida), STATUS_SUCCESS);
    /* Ids start at 1: the first key a fresh engine sees gets 1. */
    assert_int_equal(ida, 1);
    assert_int_equal(h_register0(&b, 0, classify0, NULL, NULL, &idb), STATUS_SUCCESS);
    assert_int_not_equal(ida, 0);
    assert_int_not_equal(idb, 0);
    assert_int_not_equal(ida, idb);
    /* The out parameter is optional; the id still exists and is the key's. */
    assert_int_equal(h_register0(&c, 0, classify0, NULL, NULL, NULL), STATUS_SUCCESS);
    FWPM_CALLOUT0 obj = {0};
    obj.calloutKey = c;
    obj.displayData.name = g_name;
    obj.applicableLayer = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
    idc = 0;
    assert_int_equal(FwpmCalloutAdd0(h_session, &obj, NULL, &idc), STATUS_SUCCESS);
    assert_int_not_equal(idc, 0);
    assert_int_not_equal(idc, ida);
    assert_int_not_equal(idc, idb);
    assert_int_equal(FwpsCalloutUnregisterById0(idc), STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterByKey0(&c), STATUS_FWP_CALLOUT_NOT_FOUND);
}

static UINT32 mgmt_add_id(const GUID *key)
{
    FWPM_CALLOUT0 obj = {0};
    obj.calloutKey = *key;
    obj.displayData.name = g_name;
    obj.applicableLayer = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
    UINT32 id = 0;
    assert_int_equal(FwpmCalloutAdd0(h_session, &obj, NULL, &id), STATUS_SUCCESS);
    assert_int_not_equal(id, 0);
    return id;
}

static void test_R3_mgmt_id_equals_registered_id_register_first(void **state)
{
    (void)state;
    reset();
    GUID other = h_guid(0x5ff), key = h_guid(0x510);
    /* Another key first, so "the first id" cannot match by luck. */
    assert_int_equal(h_register0(&other, 0, classify0, NULL, NULL, NULL), STATUS_SUCCESS);
    UINT32 id = 0;
    assert_int_equal(h_register0(&key, 0, classify0, NULL, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(mgmt_add_id(&key), id);
}

static void test_R3_mgmt_id_equals_registered_id_add_first(void **state)
{
    (void)state;
    reset();
    GUID other = h_guid(0x5fe), key = h_guid(0x520);
    (void)mgmt_add_id(&other);
    UINT32 mid = mgmt_add_id(&key);
    UINT32 id = 0;
    assert_int_equal(h_register0(&key, 0, classify0, NULL, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(id, mid);
    /* Deleting and re-adding the object keeps the id too. */
    assert_int_equal(FwpmCalloutDeleteById0(h_session, mid), STATUS_SUCCESS);
    assert_int_equal(mgmt_add_id(&key), id);
}

static void test_R3_filter_action_callout_id_in_classify(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x530);
    UINT32 mid = mgmt_add_id(&key);
    UINT64 fid;
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_INSPECTION, &key, 0, 1, &fid),
                     STATUS_SUCCESS);
    UINT32 id = 0;
    assert_int_equal(h_register0(&key, 0, classify0, NULL, NULL, &id), STATUS_SUCCESS);
    open_close(1000);
    assert_int_equal(g.classify_calls, 1);
    assert_int_equal(g.last.filter_callout_id, id);
    assert_int_equal(g.last.filter_callout_id, mid);
    assert_int_equal(g.last.filter_id, fid);
}

/* ---- R4 ------------------------------------------------------------------ */

/* Setup-less: the engine exists, but no session, no callout object and no
 * filter yet when the callout registers. */
static void test_R4_register_before_session_object_and_filter(void **state)
{
    (void)state;
    reset();
    assert_int_equal(owfp_engine_create(NULL, &h_engine), STATUS_SUCCESS);
    GUID key = h_guid(0x600);
    UINT32 id = 0;
    assert_int_equal(h_register0(&key, 0, classify0, notify0, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &h_session),
                     STATUS_SUCCESS);
    assert_int_equal(mgmt_add_id(&key), id);
    UINT64 fid;
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_TERMINATING, &key, 0, 1, &fid),
                     STATUS_SUCCESS);
    assert_int_equal(g.notify_calls, 1);
    assert_int_equal(g.notify_type, FWPS_CALLOUT_NOTIFY_ADD_FILTER);
    g.answer = FWP_ACTION_BLOCK;
    assert_int_equal(open_close(1000), OWFP_FLOW_BLOCKED);
    assert_int_equal(g.classify_calls, 1);
    assert_int_equal(g.last.filter_id, fid);
}

/* Registration after the object and the filter exist works the same. */
static void test_R4_register_after_object_and_filter(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x610);
    UINT32 mid = mgmt_add_id(&key);
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_TERMINATING, &key, 0, 1, NULL),
                     STATUS_SUCCESS);
    /* Not registered yet: the TERMINATING filter blocks (R5). */
    assert_int_equal(open_close(1000), OWFP_FLOW_BLOCKED);
    UINT32 id = 0;
    assert_int_equal(h_register0(&key, 0, classify0, NULL, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(id, mid);
    g.answer = FWP_ACTION_PERMIT;
    assert_int_equal(open_close(1001), OWFP_FLOW_PERMITTED);
    assert_int_equal(g.classify_calls, 1);
}

/* ---- R5 ------------------------------------------------------------------ */

/* One sublayer: the filter under test (weight 10) above a static filter
 * (weight 1) that decides only if the first one lets the walk continue. */
static enum owfp_flow_verdict unregistered_verdict(UINT32 action, UINT32 flags, UINT32 below)
{
    GUID key = h_guid(0x700);
    GUID sl = h_sublayer(7, 0x300);
    (void)add_object(&key);
    assert_int_equal(add_filter(NULL, &sl, action, &key, flags, 10, NULL), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, &sl, below, NULL, 0, 1, NULL), STATUS_SUCCESS);
    return open_close(1000);
}

static void test_R5_unregistered_terminating_blocks(void **state)
{
    (void)state;
    reset();
    assert_int_equal(unregistered_verdict(FWP_ACTION_CALLOUT_TERMINATING, 0, FWP_ACTION_PERMIT),
                     OWFP_FLOW_BLOCKED);
}

static void test_R5_unregistered_unknown_blocks(void **state)
{
    (void)state;
    reset();
    assert_int_equal(unregistered_verdict(FWP_ACTION_CALLOUT_UNKNOWN, 0, FWP_ACTION_PERMIT),
                     OWFP_FLOW_BLOCKED);
}

static void test_R5_unregistered_inspection_skipped(void **state)
{
    (void)state;
    reset();
    /* Skipped: the static BLOCK below it decides. */
    assert_int_equal(unregistered_verdict(FWP_ACTION_CALLOUT_INSPECTION, 0, FWP_ACTION_BLOCK),
                     OWFP_FLOW_BLOCKED);
}

static void test_R5_unregistered_inspection_alone_permits(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x710);
    assert_int_equal(add_object(&key), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_INSPECTION, &key, 0, 1, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(open_close(1000), OWFP_FLOW_PERMITTED);
}

static void test_R5_permit_if_unregistered_terminating_permits(void **state)
{
    (void)state;
    reset();
    /* A PERMIT decision: the static BLOCK below it is never reached. */
    assert_int_equal(unregistered_verdict(FWP_ACTION_CALLOUT_TERMINATING,
                                          FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED,
                                          FWP_ACTION_BLOCK),
                     OWFP_FLOW_PERMITTED);
}

static void test_R5_permit_if_unregistered_unknown_permits(void **state)
{
    (void)state;
    reset();
    assert_int_equal(unregistered_verdict(FWP_ACTION_CALLOUT_UNKNOWN,
                                          FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED,
                                          FWP_ACTION_BLOCK),
                     OWFP_FLOW_PERMITTED);
}

static void test_R5_permit_if_unregistered_on_inspection_invalid_flags(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x720);
    assert_int_equal(add_object(&key), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_INSPECTION, &key,
                                FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED, 1, NULL),
                     STATUS_FWP_INVALID_FLAGS);
    struct owfp_engine_stats s;
    owfp_engine_get_stats(h_engine, &s);
    assert_int_equal(s.filters, 0);
}

static void test_R5_after_unregister_terminating_blocks(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x730);
    UINT32 id;
    assert_int_equal(h_register0(&key, 0, classify0, NULL, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(add_object(&key), STATUS_SUCCESS);
    GUID sl = h_sublayer(1, 0x300);
    assert_int_equal(add_filter(NULL, &sl, FWP_ACTION_CALLOUT_TERMINATING, &key, 0, 10, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, &sl, FWP_ACTION_PERMIT, NULL, 0, 1, NULL), STATUS_SUCCESS);
    g.answer = FWP_ACTION_PERMIT;
    assert_int_equal(open_close(1000), OWFP_FLOW_PERMITTED);
    assert_int_equal(g.classify_calls, 1);

    /* Unregistered while the filter is still there: the filter blocks, and
     * the static PERMIT below it is not reached. */
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
    assert_int_equal(open_close(1001), OWFP_FLOW_BLOCKED);
    assert_int_equal(g.classify_calls, 1);
}

static void test_R5_after_unregister_permit_if_unregistered_permits(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x740);
    UINT32 id;
    assert_int_equal(h_register0(&key, 0, classify0, NULL, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(add_object(&key), STATUS_SUCCESS);
    GUID sl = h_sublayer(1, 0x300);
    assert_int_equal(add_filter(NULL, &sl, FWP_ACTION_CALLOUT_TERMINATING, &key,
                                FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED, 10, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, &sl, FWP_ACTION_BLOCK, NULL, 0, 1, NULL), STATUS_SUCCESS);
    /* Registered: the callout decides (BLOCK here). */
    g.answer = FWP_ACTION_BLOCK;
    assert_int_equal(open_close(1000), OWFP_FLOW_BLOCKED);
    assert_int_equal(g.classify_calls, 1);
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
    assert_int_equal(open_close(1001), OWFP_FLOW_PERMITTED);
    assert_int_equal(g.classify_calls, 1);
}

/* ---- R6 ------------------------------------------------------------------ */

static void test_R6_register_does_not_replay_add(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x800);
    assert_int_equal(add_object(&key), STATUS_SUCCESS);
    UINT64 fid;
    /* The inspection filter weighs more, so both are classified. */
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_INSPECTION, &key, 0, 2, &fid),
                     STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_TERMINATING, &key, 0, 1, NULL),
                     STATUS_SUCCESS);
    UINT32 id;
    for (unsigned v = 0; v < 4; v++) {
        assert_int_equal(register_full(v, &key, 0, &id), STATUS_SUCCESS);
        assert_int_equal(g.notify_calls, 0);
        assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
    }
    assert_int_equal(register_full(0, &key, 0, &id), STATUS_SUCCESS);
    assert_int_equal(g.notify_calls, 0);
    /* The filters are classified all the same. */
    g.answer = FWP_ACTION_PERMIT;
    assert_int_equal(open_close(1000), OWFP_FLOW_PERMITTED);
    assert_int_equal(g.classify_calls, 2);
}

/* ---- R7 ------------------------------------------------------------------ */

static void test_R7_unregister_success(void **state)
{
    (void)state;
    reset();
    GUID a = h_guid(0x900), b = h_guid(0x901);
    UINT32 ida, idb;
    assert_int_equal(h_register0(&a, 0, classify0, NULL, flow_delete, &ida), STATUS_SUCCESS);
    assert_int_equal(h_register0(&b, 0, classify0, NULL, NULL, &idb), STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterById0(ida), STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterByKey0(&b), STATUS_SUCCESS);
    struct owfp_engine_stats s;
    owfp_engine_get_stats(h_engine, &s);
    assert_int_equal(s.callouts_registered, 0);
    /* Gone: a second unregister finds nothing. */
    assert_int_equal(FwpsCalloutUnregisterById0(ida), STATUS_FWP_CALLOUT_NOT_FOUND);
    assert_int_equal(FwpsCalloutUnregisterByKey0(&b), STATUS_FWP_CALLOUT_NOT_FOUND);
}

static void test_R7_unregister_unknown_not_found(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x910), never = h_guid(0x911);
    UINT32 id;
    assert_int_equal(FwpsCalloutUnregisterById0(0), STATUS_FWP_CALLOUT_NOT_FOUND);
    assert_int_equal(FwpsCalloutUnregisterById0(1), STATUS_FWP_CALLOUT_NOT_FOUND);
    assert_int_equal(FwpsCalloutUnregisterById0(0xffffffffu), STATUS_FWP_CALLOUT_NOT_FOUND);
    assert_int_equal(FwpsCalloutUnregisterByKey0(&never), STATUS_FWP_CALLOUT_NOT_FOUND);
    /* A key known to management but never registered. */
    UINT32 mid = mgmt_add_id(&key);
    assert_int_equal(FwpsCalloutUnregisterById0(mid), STATUS_FWP_CALLOUT_NOT_FOUND);
    assert_int_equal(FwpsCalloutUnregisterByKey0(&key), STATUS_FWP_CALLOUT_NOT_FOUND);
    assert_int_equal(h_register0(&key, 0, classify0, NULL, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterById0(id + 1000), STATUS_FWP_CALLOUT_NOT_FOUND);
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
}

static void test_R7_unregister_null_key_fails(void **state)
{
    (void)state;
    assert_int_equal(FwpsCalloutUnregisterByKey0(NULL), STATUS_FWP_NULL_POINTER);
}

static void test_R7_unregister_with_filters_referencing_it(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x920);
    UINT32 id;
    assert_int_equal(h_register0(&key, 0, classify0, notify0, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(add_object(&key), STATUS_SUCCESS);
    UINT64 f1, f2;
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_INSPECTION, &key, 0, 1, &f1),
                     STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_UNKNOWN, &key, 0, 2, &f2),
                     STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
    /* The filters and the object are still there. */
    struct owfp_engine_stats s;
    owfp_engine_get_stats(h_engine, &s);
    assert_int_equal(s.filters, 2);
    assert_int_equal(s.callouts_registered, 0);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &key), STATUS_FWP_IN_USE);
}

/* T2: a live flow context keeps the callout from going away. */
static void test_R7_T2_unregister_with_live_context_busy(void **state)
{
    (void)state;
    reset();
    make_sublayers();
    GUID akey = h_guid(0x930), key = h_guid(0x931);
    UINT32 aid, id;
    assert_int_equal(h_register0(&akey, 0, assoc_classify, NULL, NULL, &aid), STATUS_SUCCESS);
    assert_int_equal(h_register0(&key, 0, classify0, notify0, flow_delete, &id),
                     STATUS_SUCCESS);
    assert_int_equal(add_object(&akey), STATUS_SUCCESS);
    assert_int_equal(add_object(&key), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, &akey, 0, 1, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, &key, 0, 1, NULL),
                     STATUS_SUCCESS);
    g.assoc_target = id;
    g.assoc_ctx = 0x1111;
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    owfp_flow *f1 = h_open(&p, NULL);
    assert_int_equal(g.assoc_status, STATUS_SUCCESS);
    assert_int_equal(g.classify_calls, 1);

    NTSTATUS st = FwpsCalloutUnregisterById0(id);
    assert_int_equal(st, (NTSTATUS)0x80000011);
    assert_int_equal(st, STATUS_DEVICE_BUSY);
    assert_false(NT_SUCCESS(st));
    assert_int_equal(g.deletes, 0);

    /* Meanwhile (Q3): still classified, refuses new contexts. */
    g.assoc_ctx = 0x2222;
    p.local_port = 1001;
    owfp_flow *f2 = h_open(&p, NULL);
    assert_int_equal(g.classify_calls, 2);
    assert_int_equal(g.last.flow_context, 0);
    assert_int_equal(g.assoc_status, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f2), ALE_V4, id, 0x3333),
                     STATUS_INVALID_DEVICE_STATE);
    /* Retrying before the context is gone is still busy, not "in use". */
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_DEVICE_BUSY);
    assert_int_equal(FwpsCalloutUnregisterByKey0(&key), STATUS_DEVICE_BUSY);
    /* The key is still taken. */
    assert_int_equal(h_register0(&key, 0, classify0, NULL, NULL, NULL),
                     STATUS_FWP_ALREADY_EXISTS);

    /* The driver removes its context; the retry then finishes. */
    assert_int_equal(FwpsFlowRemoveContext0(owfp_flow_id(f1), ALE_V4, id), STATUS_SUCCESS);
    assert_int_equal(g.deletes, 1);
    assert_int_equal(g.delete_ctx, 0x1111);
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_FWP_CALLOUT_NOT_FOUND);

    owfp_flow_close(f1);
    owfp_flow_close(f2);
    assert_int_equal(g.deletes, 1);
    int notes = g.notify_calls;
    p.local_port = 1002;
    owfp_flow_close(h_open(&p, NULL));
    assert_int_equal(g.classify_calls, 2);
    assert_int_equal(g.notify_calls, notes);
}

static void test_R7_unregister_by_key_busy_until_flow_closes(void **state)
{
    (void)state;
    reset();
    make_sublayers();
    GUID akey = h_guid(0x940), key = h_guid(0x941);
    UINT32 aid, id;
    assert_int_equal(h_register0(&akey, 0, assoc_classify, NULL, NULL, &aid), STATUS_SUCCESS);
    assert_int_equal(h_register0(&key, 0, classify0, NULL, flow_delete, &id), STATUS_SUCCESS);
    assert_int_equal(add_object(&akey), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, &akey, 0, 1, NULL),
                     STATUS_SUCCESS);
    g.assoc_target = id;
    g.assoc_ctx = 0x4444;
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    assert_int_equal(g.assoc_status, STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterByKey0(&key), STATUS_DEVICE_BUSY);
    /* Flow end delivers the flowDeleteFn even in this state (F7). */
    owfp_flow_close(f);
    assert_int_equal(g.deletes, 1);
    assert_int_equal(g.delete_callout, id);
    assert_int_equal(g.delete_ctx, 0x4444);
    assert_int_equal(FwpsCalloutUnregisterByKey0(&key), STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterByKey0(&key), STATUS_FWP_CALLOUT_NOT_FOUND);
}

/* The trustbase-windows pattern: retry unregister in a loop while another
 * thread ends the last flow; the retry must get through. */
struct close_thread {
    pthread_t thread;
    owfp_flow *flow;
};

static void *close_thread_main(void *arg)
{
    struct close_thread *t = arg;
    sleep_ms(20);
    owfp_flow_close(t->flow);
    return NULL;
}

static void test_R7_retry_loop_completes_when_contexts_go(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x945);
    UINT32 id;
    assert_int_equal(h_register0(&key, 0, classify0, NULL, flow_delete, &id), STATUS_SUCCESS);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    owfp_flow *f1 = h_open(&p, NULL);
    p.local_port = 1001;
    owfp_flow *f2 = h_open(&p, NULL);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f1), ALE_V4, id, 1), STATUS_SUCCESS);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f2), FWPS_LAYER_STREAM_V4, id, 2),
                     STATUS_SUCCESS);
    assert_int_equal(FwpsFlowRemoveContext0(owfp_flow_id(f1), ALE_V4, id), STATUS_SUCCESS);
    struct close_thread t = {.flow = f2};
    assert_int_equal(pthread_create(&t.thread, NULL, close_thread_main, &t), 0);
    NTSTATUS st;
    int busy = 0;
    while ((st = FwpsCalloutUnregisterById0(id)) == STATUS_DEVICE_BUSY && busy < 1000000) {
        busy++;
        sched_yield();
    }
    pthread_join(t.thread, NULL);
    assert_int_equal(st, STATUS_SUCCESS);
    assert_int_equal(g.deletes, 2);
    owfp_flow_close(f1);
    assert_int_equal(g.deletes, 2);
}

/* While one unregister drains (waiting for a classify blocked on another
 * thread), a second unregister or a register of the same callout is IN_USE. */
static void test_R7_concurrent_unregister_in_use(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x950);
    UINT32 id;
    struct flow_thread ft;
    struct unregister_thread ut;
    bool draining = start_draining_unregister(&key, &id, &ft, &ut);
    NTSTATUS second_by_id = FwpsCalloutUnregisterById0(id);
    NTSTATUS second_by_key = FwpsCalloutUnregisterByKey0(&key);
    NTSTATUS reregister = h_register0(&key, 0, classify0, NULL, NULL, NULL);
    int first_returned_early = atomic_load(&ut.done);
    gate_open();
    pthread_join(ft.thread, NULL);
    pthread_join(ut.thread, NULL);

    assert_true(draining);
    assert_int_equal(first_returned_early, 0);
    assert_int_equal(second_by_id, STATUS_FWP_IN_USE);
    assert_int_equal(second_by_key, STATUS_FWP_IN_USE);
    assert_int_equal(reregister, STATUS_FWP_IN_USE);
    assert_int_equal(ft.status, STATUS_SUCCESS);
    assert_int_equal(ut.status, STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_FWP_CALLOUT_NOT_FOUND);
    /* Once it is over, the key can be registered again. */
    assert_int_equal(h_register0(&key, 0, classify0, NULL, NULL, NULL), STATUS_SUCCESS);
}

/* A classifyFn that unregisters itself is refused and nothing hangs. */
static void NTAPI unregister_self_classify(const FWPS_INCOMING_VALUES0 *in,
                                           const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                           void *layerData, const FWPS_FILTER0 *filter,
                                           UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    g.inner_status = FwpsCalloutUnregisterById0(g.self_id);
    g.inner_status2 = FwpsCalloutUnregisterByKey0(&g.self_key);
    record(0, in, meta, layerData, filter, flowContext, out);
}

static void test_R7_unregister_from_classify_refused(void **state)
{
    (void)state;
    reset();
    g.self_key = h_guid(0x960);
    assert_int_equal(h_register0(&g.self_key, 0, unregister_self_classify, NULL, NULL,
                                 &g.self_id),
                     STATUS_SUCCESS);
    assert_int_equal(add_object(&g.self_key), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_TERMINATING, &g.self_key, 0, 1,
                                NULL),
                     STATUS_SUCCESS);
    g.answer = FWP_ACTION_PERMIT;
    assert_int_equal(open_close(1000), OWFP_FLOW_PERMITTED);
    assert_int_equal(g.classify_calls, 1);
    assert_int_equal(g.inner_status, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g.inner_status2, STATUS_INVALID_DEVICE_STATE);
    /* Still registered, still classified; a PASSIVE caller can unregister it. */
    assert_int_equal(open_close(1001), OWFP_FLOW_PERMITTED);
    assert_int_equal(g.classify_calls, 2);
    assert_int_equal(FwpsCalloutUnregisterById0(g.self_id), STATUS_SUCCESS);
}

static NTSTATUS NTAPI unregister_self_notify(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                                             FWPS_FILTER0 *filter)
{
    g.inner_status = FwpsCalloutUnregisterById0(g.self_id);
    return note(0, type, key, filter);
}

static void test_R7_unregister_from_notify_refused(void **state)
{
    (void)state;
    reset();
    g.self_key = h_guid(0x970);
    assert_int_equal(h_register0(&g.self_key, 0, classify0, unregister_self_notify, NULL,
                                 &g.self_id),
                     STATUS_SUCCESS);
    assert_int_equal(add_object(&g.self_key), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_INSPECTION, &g.self_key, 0, 1,
                                NULL),
                     STATUS_SUCCESS);
    assert_int_equal(g.notify_calls, 1);
    assert_int_equal(g.inner_status, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(FwpsCalloutUnregisterById0(g.self_id), STATUS_SUCCESS);
}

static void NTAPI unregister_self_flow_delete(UINT16 layerId, UINT32 calloutId,
                                              UINT64 flowContext)
{
    g.inner_status = FwpsCalloutUnregisterById0(calloutId);
    flow_delete(layerId, calloutId, flowContext);
}

static void test_R7_unregister_from_flow_delete_refused(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0x980);
    UINT32 id;
    assert_int_equal(h_register0(&key, 0, classify0, NULL, unregister_self_flow_delete, &id),
                     STATUS_SUCCESS);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f), ALE_V4, id, 7), STATUS_SUCCESS);
    owfp_flow_close(f);
    assert_int_equal(g.deletes, 1);
    assert_int_equal(g.inner_status, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
}

/* ---- R8 ------------------------------------------------------------------ */

/* Unregister returns only after a classify running on another thread has
 * returned. */
static void test_R8_unregister_waits_for_inflight_classify(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0xa00);
    UINT32 id;
    struct flow_thread ft;
    struct unregister_thread ut;
    bool draining = start_draining_unregister(&key, &id, &ft, &ut);
    sleep_ms(50);
    int returned_while_blocked = atomic_load(&ut.done);
    gate_open();
    pthread_join(ut.thread, NULL);
    pthread_join(ft.thread, NULL);

    assert_true(draining);
    assert_int_equal(returned_while_blocked, 0);
    assert_int_equal(ut.status, STATUS_SUCCESS);
    /* The classifyFn had returned by the time unregister returned. */
    assert_int_equal(ut.classify_had_returned, 1);
    assert_int_equal(g.classify_calls, 1);
    /* And it is never called again. */
    assert_int_equal(open_close(1001), OWFP_FLOW_PERMITTED);
    assert_int_equal(g.classify_calls, 1);
}

static void test_R8_no_calls_after_unregister(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0xa10);
    UINT32 id;
    assert_int_equal(h_register0(&key, 0, classify0, notify0, flow_delete, &id),
                     STATUS_SUCCESS);
    assert_int_equal(add_object(&key), STATUS_SUCCESS);
    UINT64 f1, f2;
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_INSPECTION, &key, 0, 2, &f1),
                     STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_TERMINATING, &key,
                                FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED, 1, &f2),
                     STATUS_SUCCESS);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    g.answer = FWP_ACTION_PERMIT;
    owfp_flow *f = h_open(&p, NULL);
    assert_int_equal(g.classify_calls, 2);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f), ALE_V4, id, 9), STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_DEVICE_BUSY);
    assert_int_equal(FwpsFlowRemoveContext0(owfp_flow_id(f), ALE_V4, id), STATUS_SUCCESS);
    assert_int_equal(g.deletes, 1);
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
    int notes = g.notify_calls;

    /* classify: a new flow reaches both filters, neither calls it. */
    p.local_port = 1001;
    enum owfp_flow_verdict v;
    owfp_flow *f3 = h_open(&p, &v);
    assert_int_equal(v, OWFP_FLOW_PERMITTED);
    assert_int_equal(g.classify_calls, 2);
    /* flowDeleteFn: closing flows does not call it. */
    owfp_flow_close(f);
    owfp_flow_close(f3);
    assert_int_equal(g.deletes, 1);
    /* notifyFn: deleting the filters does not call it. */
    assert_int_equal(FwpmFilterDeleteById0(h_session, f1), STATUS_SUCCESS);
    assert_int_equal(g.notify_calls, notes);
    /* Nor does engine teardown with a filter still naming the callout. */
    owfp_engine_destroy(h_engine);
    h_engine = NULL;
    assert_int_equal(g.notify_calls, notes);
    assert_int_equal(g.classify_calls, 2);
    assert_int_equal(g.deletes, 1);
}

/* ---- R9 ------------------------------------------------------------------ */

static void test_R9_null_flow_delete_accepted(void **state)
{
    (void)state;
    reset();
    for (unsigned v = 0; v < 4; v++) {
        GUID key = h_guid(0xb00 + v);
        UINT32 id;
        assert_int_equal(register_version(v, &key, 0, true, true, false, &id), STATUS_SUCCESS);
        /* Such a callout cannot own flow contexts (F4). */
        struct owfp_flow_params p = h_params4((uint16_t)(1000 + v), 80, OWFP_OUTBOUND);
        owfp_flow *f = h_open(&p, NULL);
        assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f), ALE_V4, id, 5),
                         STATUS_INVALID_PARAMETER);
        owfp_flow_close(f);
    }
}

static void test_R9_null_notify_accepted(void **state)
{
    (void)state;
    reset();
    for (unsigned v = 0; v < 4; v++) {
        GUID key = h_guid(0xb10 + v);
        UINT32 id;
        assert_int_equal(register_version(v, &key, 0, true, false, true, &id), STATUS_SUCCESS);
        assert_int_equal(add_object(&key), STATUS_SUCCESS);
        UINT64 fid;
        assert_int_equal(add_filter(NULL, NULL, FWP_ACTION_CALLOUT_INSPECTION, &key, 0, v + 1,
                                    &fid),
                         STATUS_SUCCESS);
        int before = g.classify_calls;
        open_close((uint16_t)(1000 + v));
        /* Every registered callout's filter is classified. */
        assert_int_equal(g.classify_calls, before + (int)v + 1);
    }
    assert_int_equal(g.notify_calls, 0);
    struct owfp_engine_stats s;
    owfp_engine_get_stats(h_engine, &s);
    assert_int_equal(s.filters, 4);
}

static void test_R9_null_classify_invalid_parameter(void **state)
{
    (void)state;
    reset();
    GUID key = h_guid(0xb20);
    UINT32 id = 0x77;
    for (unsigned v = 0; v < 4; v++) {
        assert_int_equal(register_version(v, &key, 0, false, true, true, &id),
                         STATUS_INVALID_PARAMETER);
        assert_int_equal(id, 0x77);
        assert_int_equal(FwpsCalloutUnregisterByKey0(&key), STATUS_FWP_CALLOUT_NOT_FOUND);
    }
    assert_int_equal(register_full(0, &key, 0, &id), STATUS_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_R1_register0_calls_classify0_and_notify0, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R1_register1_calls_classify1_and_notify1, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R1_register2_calls_classify2_and_notify2, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R1_register3_calls_classify3_and_notify3, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R1_flags_allowed_per_version, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R1_null_callout_struct_fails, h_setup, h_teardown),
        cmocka_unit_test(test_R1_no_engine_tcpip_not_ready),
        cmocka_unit_test_setup_teardown(test_R1_register_from_classify_refused, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R2_T1_register_same_key_twice, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R2_register_again_after_unregister, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R3_callout_id_out_param, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R3_mgmt_id_equals_registered_id_register_first,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R3_mgmt_id_equals_registered_id_add_first, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R3_filter_action_callout_id_in_classify, h_setup,
                                        h_teardown),
        cmocka_unit_test_teardown(test_R4_register_before_session_object_and_filter,
                                  h_teardown),
        cmocka_unit_test_setup_teardown(test_R4_register_after_object_and_filter, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R5_unregistered_terminating_blocks, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R5_unregistered_unknown_blocks, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R5_unregistered_inspection_skipped, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R5_unregistered_inspection_alone_permits, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R5_permit_if_unregistered_terminating_permits,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R5_permit_if_unregistered_unknown_permits, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R5_permit_if_unregistered_on_inspection_invalid_flags,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R5_after_unregister_terminating_blocks, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R5_after_unregister_permit_if_unregistered_permits,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R6_register_does_not_replay_add, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_unregister_success, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_unregister_unknown_not_found, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_unregister_null_key_fails, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_unregister_with_filters_referencing_it, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_T2_unregister_with_live_context_busy, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_unregister_by_key_busy_until_flow_closes,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_retry_loop_completes_when_contexts_go, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_concurrent_unregister_in_use, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_unregister_from_classify_refused, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_unregister_from_notify_refused, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_unregister_from_flow_delete_refused, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R8_unregister_waits_for_inflight_classify, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R8_no_calls_after_unregister, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R9_null_flow_delete_accepted, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R9_null_notify_accepted, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R9_null_classify_invalid_parameter, h_setup,
                                        h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
