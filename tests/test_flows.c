/*
 * Spec §6 (F1-F10): flow ids, flow contexts (FwpsFlowAssociateContext0 /
 * FwpsFlowRemoveContext0 / FwpsFlowAbort0), flowDeleteFn and
 * CONDITIONAL_ON_FLOW, plus the T3-T7 rows of the §13 matrix.
 *
 * The usual arrangement, as in stmedit: callout A sits in a high-weight
 * sublayer at ALE_FLOW_ESTABLISHED behind an INSPECTION filter and runs a
 * small "script" of flow-context calls from its classifyFn; callout B sits
 * in a lower sublayer of the same layer, so it is classified later in the
 * same ALE classify and sees what A associated.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

static WCHAR g_name[] = L"flows test";

#define ALE_V4 FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4
#define ALE_V6 FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6
#define CTX_FLOW UINT64_MAX /* script: use the flow handle as the context */

/* ---- shared state, reset by every test --------------------------------- */

enum op_kind { OP_ASSOC, OP_REMOVE, OP_ABORT };

struct op {
    enum op_kind kind;
    UINT16 layer;
    const UINT32 *callout; /* points at g.id_a / g.id_b / g.id_c */
    UINT64 ctx;
    NTSTATUS status;    /* result of the last run */
    int deletes_after;  /* flowDeleteFn calls seen right after the call */
};

struct deletion {
    UINT16 layer;
    UINT32 callout;
    UINT64 ctx;
    bool during_a; /* ran while A's classifyFn was still running */
};

static struct {
    UINT32 id_a, id_b, id_c;
    /* callout A */
    struct op ops[20];
    int nops;
    int a_calls;
    bool a_in;
    UINT16 a_layer;
    UINT32 a_metadata;
    UINT64 a_flow_handle;
    UINT64 a_flow_context;
    /* callout B */
    int b_calls;
    UINT64 b_flow_context;
    UINT64 b_flow_handle;
    UINT32 b_answer;
    /* flowDeleteFn */
    struct deletion del[64];
    int ndel;
    /* a flowDeleteFn that removes another context of its flow (F6) */
    bool remove_in_delete;
    UINT64 remove_flow;
    NTSTATUS remove_in_delete_status;
    /* A's classifyFn removes (remove_flow, STREAM_V4, B) of another flow */
    bool remove_other;
    NTSTATUS remove_other_status;
    int remove_other_deletes;
} g;

static void reset(void)
{
    memset(&g, 0, sizeof(g));
    g.b_answer = FWP_ACTION_CONTINUE;
}

static void script(int i, enum op_kind kind, UINT16 layer, const UINT32 *callout, UINT64 ctx)
{
    g.ops[i] = (struct op){kind, layer, callout, ctx, 0, 0};
    if (g.nops <= i)
        g.nops = i + 1;
}

static int deletes_of(UINT32 callout, UINT16 layer, UINT64 ctx)
{
    int n = 0;
    for (int i = 0; i < g.ndel; i++)
        n += g.del[i].callout == callout && g.del[i].layer == layer && g.del[i].ctx == ctx;
    return n;
}

static int deletes_for(UINT32 callout)
{
    int n = 0;
    for (int i = 0; i < g.ndel; i++)
        n += g.del[i].callout == callout;
    return n;
}

static UINT64 contexts(void)
{
    struct owfp_engine_stats s;
    owfp_engine_get_stats(h_engine, &s);
    return s.flow_contexts;
}

/* ---- a classify that can be held on another thread ---------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool armed, entered, release;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, false};

static void gate_reset(bool armed)
{
    pthread_mutex_lock(&gate.mu);
    gate.armed = armed;
    gate.entered = gate.release = false;
    pthread_mutex_unlock(&gate.mu);
}

static void gate_pass(void)
{
    pthread_mutex_lock(&gate.mu);
    if (gate.armed) {
        gate.armed = false;
        gate.entered = true;
        pthread_cond_broadcast(&gate.cv);
        while (!gate.release)
            pthread_cond_wait(&gate.cv, &gate.mu);
    }
    pthread_mutex_unlock(&gate.mu);
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

/* ---- callouts ------------------------------------------------------------ */

static void NTAPI flow_delete(UINT16 layerId, UINT32 calloutId, UINT64 flowContext)
{
    if (g.ndel < 64)
        g.del[g.ndel++] = (struct deletion){layerId, calloutId, flowContext, g.a_in};
    if (g.remove_in_delete) {
        g.remove_in_delete = false;
        /* Remove whichever other context the flow still has with A. */
        g.remove_in_delete_status =
            FwpsFlowRemoveContext0(g.remove_flow, layerId == ALE_V4 ? FWPS_LAYER_STREAM_V4
                                                                    : ALE_V4,
                                   calloutId);
    }
}

static void NTAPI script_classify(const FWPS_INCOMING_VALUES0 *in,
                                  const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                  const FWPS_FILTER0 *filter, UINT64 flowContext,
                                  FWPS_CLASSIFY_OUT0 *out)
{
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    g.a_in = true;
    g.a_calls++;
    g.a_layer = in->layerId;
    g.a_metadata = meta->currentMetadataValues;
    g.a_flow_handle = meta->flowHandle;
    g.a_flow_context = flowContext;
    for (int i = 0; i < g.nops; i++) {
        struct op *o = &g.ops[i];
        UINT64 ctx = o->ctx == CTX_FLOW ? meta->flowHandle : o->ctx;
        switch (o->kind) {
        case OP_ASSOC:
            o->status = FwpsFlowAssociateContext0(meta->flowHandle, o->layer, *o->callout, ctx);
            break;
        case OP_REMOVE:
            o->status = FwpsFlowRemoveContext0(meta->flowHandle, o->layer, *o->callout);
            break;
        case OP_ABORT:
            o->status = FwpsFlowAbort0(meta->flowHandle);
            break;
        }
        o->deletes_after = g.ndel;
    }
    if (g.remove_other) {
        g.remove_other = false;
        g.remove_other_status = FwpsFlowRemoveContext0(g.remove_flow, FWPS_LAYER_STREAM_V4,
                                                       g.id_b);
        g.remove_other_deletes = g.ndel;
    }
    gate_pass();
    out->actionType = FWP_ACTION_CONTINUE;
    g.a_in = false;
}

static void NTAPI record_classify(const FWPS_INCOMING_VALUES0 *in,
                                  const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                  const FWPS_FILTER0 *filter, UINT64 flowContext,
                                  FWPS_CLASSIFY_OUT0 *out)
{
    UNREFERENCED_PARAMETER(in);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    g.b_calls++;
    g.b_flow_context = flowContext;
    g.b_flow_handle = meta->flowHandle;
    out->actionType = g.b_answer;
    if (g.b_answer == FWP_ACTION_BLOCK)
        out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

/* ---- set-up helpers ------------------------------------------------------- */

static UINT32 reg(const GUID *key, UINT32 flags, FWPS_CALLOUT_CLASSIFY_FN0 classify,
                  bool with_delete)
{
    UINT32 id = 0;
    assert_int_equal(h_register0(key, flags, classify, h_notify_ok,
                                 with_delete ? flow_delete : NULL, &id),
                     STATUS_SUCCESS);
    return id;
}

static void add_filter(const GUID *layer, const GUID *sublayer, UINT32 action,
                       const GUID *callout, UINT64 weight)
{
    struct h_filter_spec s = {0};
    s.layer = layer;
    s.sublayer = sublayer;
    s.action = action;
    s.callout = callout;
    s.weight = weight;
    s.has_weight = 1;
    assert_int_equal(h_filter(&s, NULL), STATUS_SUCCESS);
}

static GUID g_key_a, g_key_b, g_key_c, g_hi, g_lo;

/* A at ALE_V4 (high sublayer, INSPECTION), B registered with `b_flags`
 * behind a filter of type `b_action` in the low sublayer (0 = no filter),
 * C registered only (flowDeleteFn, never classified). */
static void setup_callouts(const GUID *layer, UINT32 b_flags, UINT32 b_action)
{
    g_key_a = h_guid(0xa);
    g_key_b = h_guid(0xb);
    g_key_c = h_guid(0xc);
    g_hi = h_sublayer(1, 0x200);
    g_lo = h_sublayer(2, 0x100);
    g.id_a = reg(&g_key_a, 0, script_classify, true);
    g.id_b = reg(&g_key_b, b_flags, record_classify, true);
    g.id_c = reg(&g_key_c, 0, record_classify, true);
    assert_int_equal(h_callout_object(&g_key_a, layer), STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&g_key_b, layer), STATUS_SUCCESS);
    add_filter(layer, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, &g_key_a, 1);
    if (b_action)
        add_filter(layer, &g_lo, b_action, &g_key_b, 1);
}

static owfp_flow *open4(uint16_t port, enum owfp_flow_verdict *v)
{
    struct owfp_flow_params p = h_params4(port, 80, OWFP_OUTBOUND);
    return h_open(&p, v);
}

/* ---- F1 ------------------------------------------------------------------ */

static void test_F1_flow_handle_metadata_v4(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, FWP_ACTION_CALLOUT_INSPECTION);
    owfp_flow *f = open4(1000, NULL);
    assert_int_equal(g.a_calls, 1);
    assert_int_equal(g.a_layer, ALE_V4);
    assert_true(g.a_metadata & FWPS_METADATA_FIELD_FLOW_HANDLE);
    assert_int_not_equal(owfp_flow_id(f), 0);
    assert_int_equal(g.a_flow_handle, owfp_flow_id(f));
    assert_int_equal(g.b_calls, 1);
    assert_int_equal(g.b_flow_handle, owfp_flow_id(f));
    owfp_flow_close(f);
}

static void test_F1_flow_handle_metadata_v6(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6, 0, 0);
    struct owfp_flow_params p = h_params6(1000, 443, OWFP_INBOUND);
    owfp_flow *f = h_open(&p, NULL);
    assert_int_equal(g.a_calls, 1);
    assert_int_equal(g.a_layer, ALE_V6);
    assert_true(g.a_metadata & FWPS_METADATA_FIELD_FLOW_HANDLE);
    assert_int_equal(g.a_flow_handle, owfp_flow_id(f));
    owfp_flow_close(f);
}

/* ---- F2 ------------------------------------------------------------------ */

static void test_F2_distinct_flows_distinct_ids(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    owfp_flow *f[4];
    UINT64 id[5];
    for (int i = 0; i < 4; i++) {
        f[i] = open4((uint16_t)(1000 + i), NULL);
        id[i] = owfp_flow_id(f[i]);
        assert_int_equal(g.a_flow_handle, id[i]);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(id[i], id[j]);
    }
    /* A closed flow's id never names a later flow. */
    owfp_flow_close(f[0]);
    owfp_flow *again = open4(1000, NULL);
    id[4] = owfp_flow_id(again);
    for (int j = 0; j < 4; j++)
        assert_int_not_equal(id[4], id[j]);
    assert_int_equal(FwpsFlowAbort0(id[0]), STATUS_NOT_FOUND);
    assert_int_equal(FwpsFlowAssociateContext0(id[0], ALE_V4, g.id_a, 1), STATUS_NOT_FOUND);
    owfp_flow_close(again);
    for (int i = 1; i < 4; i++)
        owfp_flow_close(f[i]);
}

static void test_F2_loopback_endpoints_distinct_flows(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    script(0, OP_ASSOC, ALE_V4, &g.id_a, CTX_FLOW);
    /* Both ends of one loopback connection 127.0.0.1:50000 <-> :80. */
    struct owfp_flow_params client = h_params4(50000, 80, OWFP_OUTBOUND);
    struct owfp_flow_params server = h_params4(80, 50000, OWFP_INBOUND);
    static const uint8_t lo[4] = {127, 0, 0, 1};
    memcpy(client.local_addr, lo, 4);
    memcpy(client.remote_addr, lo, 4);
    memcpy(server.local_addr, lo, 4);
    memcpy(server.remote_addr, lo, 4);
    client.condition_flags = server.condition_flags = FWP_CONDITION_FLAG_IS_LOOPBACK;

    owfp_flow *c = h_open(&client, NULL);
    assert_int_equal(g.ops[0].status, STATUS_SUCCESS);
    assert_int_equal(g.a_flow_handle, owfp_flow_id(c));
    owfp_flow *s = h_open(&server, NULL);
    /* Not "already associated": the server end is another flow. */
    assert_int_equal(g.ops[0].status, STATUS_SUCCESS);
    assert_int_equal(g.a_flow_handle, owfp_flow_id(s));
    assert_int_not_equal(owfp_flow_id(c), owfp_flow_id(s));
    assert_int_equal(contexts(), 2);

    UINT64 client_id = owfp_flow_id(c);
    owfp_flow_close(c);
    assert_int_equal(g.ndel, 1);
    assert_int_equal(g.del[0].ctx, client_id);
    assert_int_equal(FwpsFlowRemoveContext0(owfp_flow_id(s), ALE_V4, g.id_a), STATUS_SUCCESS);
    assert_int_equal(g.ndel, 2);
    assert_int_equal(g.del[1].ctx, owfp_flow_id(s));
    owfp_flow_close(s);
    assert_int_equal(g.ndel, 2);
}

/* ---- F3 ------------------------------------------------------------------ */

static const UINT16 flow_layers_v4[] = {
    FWPS_LAYER_STREAM_V4,
    FWPS_LAYER_DATAGRAM_DATA_V4,
    FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V4,
    FWPS_LAYER_INBOUND_TRANSPORT_V4,
    FWPS_LAYER_OUTBOUND_TRANSPORT_V4,
    FWPS_LAYER_STREAM_PACKET_V4,
    FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4,
};

static const UINT16 flow_layers_v6[] = {
    FWPS_LAYER_STREAM_V6,
    FWPS_LAYER_DATAGRAM_DATA_V6,
    FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V6,
    FWPS_LAYER_INBOUND_TRANSPORT_V6,
    FWPS_LAYER_OUTBOUND_TRANSPORT_V6,
    FWPS_LAYER_STREAM_PACKET_V6,
    FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6,
};

#define NLAYERS (int)(sizeof(flow_layers_v4) / sizeof(flow_layers_v4[0]))

/* From the flow-established classify, as Fort Firewall does. */
static void test_F3_associate_at_flow_layers_v4(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    for (int i = 0; i < NLAYERS; i++)
        script(i, OP_ASSOC, flow_layers_v4[i], &g.id_b, 0x100 + (UINT64)i);
    owfp_flow *f = open4(1000, NULL);
    for (int i = 0; i < NLAYERS; i++)
        assert_int_equal(g.ops[i].status, STATUS_SUCCESS);
    assert_int_equal(contexts(), NLAYERS);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, NLAYERS);
    for (int i = 0; i < NLAYERS; i++)
        assert_int_equal(deletes_of(g.id_b, flow_layers_v4[i], 0x100 + (UINT64)i), 1);
    assert_int_equal(contexts(), 0);
}

/* From outside any classify, for an IPv6 flow. */
static void test_F3_associate_at_flow_layers_v6(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6, 0, 0);
    struct owfp_flow_params p = h_params6(1000, 443, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    UINT64 id = owfp_flow_id(f);
    for (int i = 0; i < NLAYERS; i++)
        assert_int_equal(FwpsFlowAssociateContext0(id, flow_layers_v6[i], g.id_c, 0x600 + (UINT64)i),
                         STATUS_SUCCESS);
    assert_int_equal(contexts(), NLAYERS);
    owfp_flow_close(f);
    for (int i = 0; i < NLAYERS; i++)
        assert_int_equal(deletes_of(g.id_c, flow_layers_v6[i], 0x600 + (UINT64)i), 1);
    assert_int_equal(g.ndel, NLAYERS);
}

static void test_F3_non_flow_layer_incompatible(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    script(0, OP_ASSOC, FWPS_LAYER_INBOUND_IPPACKET_V4, &g.id_b, 5);
    script(1, OP_ASSOC, FWPS_LAYER_OUTBOUND_IPPACKET_V6, &g.id_b, 5);
    script(2, OP_ASSOC, 0xffff, &g.id_b, 5);
    owfp_flow *f = open4(1000, NULL);
    assert_int_equal(g.ops[0].status, STATUS_FWP_INCOMPATIBLE_LAYER);
    assert_int_equal(g.ops[1].status, STATUS_FWP_INCOMPATIBLE_LAYER);
    assert_int_equal(g.ops[2].status, STATUS_FWP_INCOMPATIBLE_LAYER);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f), FWPS_LAYER_INBOUND_IPPACKET_V4,
                                               g.id_c, 5),
                     STATUS_FWP_INCOMPATIBLE_LAYER);
    assert_int_equal(contexts(), 0);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, 0);
}

/* ---- F4 ------------------------------------------------------------------ */

static void test_F4_T4_zero_context_invalid_parameter(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    script(0, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_b, 0);
    owfp_flow *f = open4(1000, NULL);
    assert_int_equal(g.ops[0].status, STATUS_INVALID_PARAMETER);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f), ALE_V4, g.id_c, 0),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(contexts(), 0);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, 0);
}

static void test_F4_T4_callout_without_flow_delete_invalid_parameter(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    GUID nodel = h_guid(0xd);
    UINT32 id_d = reg(&nodel, 0, record_classify, false);
    script(0, OP_ASSOC, FWPS_LAYER_STREAM_V4, &id_d, 0x77);
    owfp_flow *f = open4(1000, NULL);
    assert_int_equal(g.ops[0].status, STATUS_INVALID_PARAMETER);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f), ALE_V4, id_d, 0x77),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(contexts(), 0);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, 0);
}

static void test_F4_T3_associate_same_triple_twice_keeps_old(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, FWP_ACTION_CALLOUT_INSPECTION);
    script(0, OP_ASSOC, ALE_V4, &g.id_b, 0x1111);
    script(1, OP_ASSOC, ALE_V4, &g.id_b, 0x2222);
    owfp_flow *f = open4(1000, NULL);
    assert_int_equal(g.ops[0].status, STATUS_SUCCESS);
    assert_int_equal(g.ops[1].status, (NTSTATUS)0x40000000);
    assert_int_equal(g.ops[1].status, STATUS_OBJECT_NAME_EXISTS);
    assert_true(NT_SUCCESS(g.ops[1].status));
    /* The old context stays: B sees it, and it is what flowDeleteFn gets. */
    assert_int_equal(g.b_calls, 1);
    assert_int_equal(g.b_flow_context, 0x1111);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f), ALE_V4, g.id_b, 0x3333),
                     STATUS_OBJECT_NAME_EXISTS);
    assert_int_equal(contexts(), 1);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, 1);
    assert_int_equal(deletes_of(g.id_b, ALE_V4, 0x1111), 1);
}

static void test_F4_several_contexts_per_flow(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    script(0, OP_ASSOC, ALE_V4, &g.id_a, 0xa1);
    script(1, OP_ASSOC, ALE_V4, &g.id_b, 0xb1);
    script(2, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_a, 0xa2);
    script(3, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_b, 0xb2);
    script(4, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_c, 0xc2);
    owfp_flow *f = open4(1000, NULL);
    for (int i = 0; i < 5; i++)
        assert_int_equal(g.ops[i].status, STATUS_SUCCESS);
    assert_int_equal(contexts(), 5);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, 5);
    assert_int_equal(deletes_of(g.id_a, ALE_V4, 0xa1), 1);
    assert_int_equal(deletes_of(g.id_b, ALE_V4, 0xb1), 1);
    assert_int_equal(deletes_of(g.id_a, FWPS_LAYER_STREAM_V4, 0xa2), 1);
    assert_int_equal(deletes_of(g.id_b, FWPS_LAYER_STREAM_V4, 0xb2), 1);
    assert_int_equal(deletes_of(g.id_c, FWPS_LAYER_STREAM_V4, 0xc2), 1);
}

static void test_F4_unknown_flow_or_callout(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    owfp_flow *f = open4(1000, NULL);
    UINT64 id = owfp_flow_id(f);
    assert_int_equal(FwpsFlowAssociateContext0(id ^ 0x5500000000ull, ALE_V4, g.id_b, 1),
                     STATUS_NOT_FOUND);
    assert_int_equal(FwpsFlowAssociateContext0(0, ALE_V4, g.id_b, 1), STATUS_NOT_FOUND);
    assert_int_equal(FwpsFlowAssociateContext0(id, ALE_V4, 0, 1), STATUS_FWP_CALLOUT_NOT_FOUND);
    assert_int_equal(FwpsFlowAssociateContext0(id, ALE_V4, 9999, 1),
                     STATUS_FWP_CALLOUT_NOT_FOUND);
    /* A callout object that was never registered. */
    GUID obj_only = h_guid(0xe);
    UINT32 obj_id = 0;
    FWPM_CALLOUT0 c = {0};
    c.calloutKey = obj_only;
    c.displayData.name = g_name;
    c.applicableLayer = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
    assert_int_equal(FwpmCalloutAdd0(h_session, &c, NULL, &obj_id), STATUS_SUCCESS);
    assert_int_equal(FwpsFlowAssociateContext0(id, ALE_V4, obj_id, 1),
                     STATUS_FWP_CALLOUT_NOT_FOUND);
    owfp_flow_close(f);
    assert_int_equal(FwpsFlowAssociateContext0(id, ALE_V4, g.id_b, 1), STATUS_NOT_FOUND);
    assert_int_equal(g.ndel, 0);
}

/* No setup: no engine at all. */
static void test_F4_no_engine_tcpip_not_ready(void **state)
{
    (void)state;
    reset();
    assert_null(owfp_engine_current());
    assert_int_equal(FwpsFlowAssociateContext0(1, ALE_V4, 1, 1), STATUS_FWP_TCPIP_NOT_READY);
    assert_int_equal(FwpsFlowRemoveContext0(1, ALE_V4, 1), STATUS_FWP_TCPIP_NOT_READY);
    assert_int_equal(FwpsFlowAbort0(1), STATUS_FWP_TCPIP_NOT_READY);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    owfp_flow *f = NULL;
    enum owfp_flow_verdict v;
    assert_int_equal(owfp_flow_open(NULL, &p, &f, &v), STATUS_FWP_TCPIP_NOT_READY);
    assert_null(f);
}

/* ---- F5 ------------------------------------------------------------------ */

static void test_F5_context_from_same_classify_reaches_lower_sublayer(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, FWP_ACTION_CALLOUT_INSPECTION);
    script(0, OP_ASSOC, ALE_V4, &g.id_b, CTX_FLOW);
    owfp_flow *f = open4(1000, NULL);
    assert_int_equal(g.ops[0].status, STATUS_SUCCESS);
    /* A itself had no context when it was called. */
    assert_int_equal(g.a_flow_context, 0);
    assert_int_equal(g.b_calls, 1);
    assert_int_equal(g.b_flow_context, owfp_flow_id(f));
    owfp_flow_close(f);
}

/* The key is (flow, layer, callout): a context for another layer, another
 * callout or another flow is not B's flowContext here. */
static void test_F5_context_keyed_by_flow_layer_callout(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, FWP_ACTION_CALLOUT_INSPECTION);
    script(0, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_b, 0x5);
    script(1, OP_ASSOC, ALE_V4, &g.id_c, 0x6);
    owfp_flow *f1 = open4(1000, NULL);
    for (int i = 0; i < 2; i++)
        assert_int_equal(g.ops[i].status, STATUS_SUCCESS);
    assert_int_equal(g.b_calls, 1);
    assert_int_equal(g.b_flow_context, 0);

    /* Another flow: its own context only. */
    g.nops = 0;
    owfp_flow *f2 = open4(1001, NULL);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f2), ALE_V4, g.id_b, 0x8),
                     STATUS_SUCCESS);
    script(0, OP_ASSOC, ALE_V4, &g.id_b, 0x9);
    owfp_flow *f3 = open4(1002, NULL);
    assert_int_equal(g.b_calls, 3);
    assert_int_equal(g.b_flow_context, 0x9);
    owfp_flow_close(f1);
    owfp_flow_close(f2);
    owfp_flow_close(f3);
    assert_int_equal(deletes_of(g.id_b, ALE_V4, 0x8), 1);
    assert_int_equal(deletes_of(g.id_b, ALE_V4, 0x9), 1);
}

/* ---- F6 ------------------------------------------------------------------ */

static void test_F6_T5_remove_outside_classify_synchronous(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    script(0, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_b, 0xabc);
    owfp_flow *f = open4(1000, NULL);
    assert_int_equal(g.ops[0].status, STATUS_SUCCESS);
    assert_int_equal(g.ndel, 0);
    assert_int_equal(FwpsFlowRemoveContext0(owfp_flow_id(f), FWPS_LAYER_STREAM_V4, g.id_b),
                     STATUS_SUCCESS);
    /* flowDeleteFn ran before the call returned. */
    assert_int_equal(g.ndel, 1);
    assert_int_equal(g.del[0].layer, FWPS_LAYER_STREAM_V4);
    assert_int_equal(g.del[0].callout, g.id_b);
    assert_int_equal(g.del[0].ctx, 0xabc);
    assert_int_equal(contexts(), 0);
    assert_int_equal(FwpsFlowRemoveContext0(owfp_flow_id(f), FWPS_LAYER_STREAM_V4, g.id_b),
                     STATUS_UNSUCCESSFUL);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, 1);
}

static void test_F6_T6_remove_inside_classify_pending(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    script(0, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_a, 0xdef);
    script(1, OP_REMOVE, FWPS_LAYER_STREAM_V4, &g.id_a, 0);
    /* Teardown of that context has started: a second remove finds none. */
    script(2, OP_REMOVE, FWPS_LAYER_STREAM_V4, &g.id_a, 0);
    owfp_flow *f = open4(1000, NULL);
    assert_int_equal(g.ops[0].status, STATUS_SUCCESS);
    assert_int_equal(g.ops[1].status, STATUS_PENDING);
    assert_int_equal(g.ops[1].deletes_after, 0);
    assert_int_equal(g.ops[2].status, STATUS_UNSUCCESSFUL);
    /* Delivered once the classify finished, not during it. */
    assert_int_equal(g.ndel, 1);
    assert_false(g.del[0].during_a);
    assert_int_equal(g.del[0].ctx, 0xdef);
    assert_int_equal(contexts(), 0);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, 1);
}

static void test_F6_remove_without_context_unsuccessful(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    script(0, OP_REMOVE, ALE_V4, &g.id_b, 0);
    owfp_flow *f = open4(1000, NULL);
    UINT64 id = owfp_flow_id(f);
    assert_int_equal(g.ops[0].status, STATUS_UNSUCCESSFUL);
    assert_int_equal(FwpsFlowRemoveContext0(id, ALE_V4, g.id_b), STATUS_UNSUCCESSFUL);
    /* A context for another layer or callout does not count. */
    assert_int_equal(FwpsFlowAssociateContext0(id, FWPS_LAYER_STREAM_V4, g.id_b, 1),
                     STATUS_SUCCESS);
    assert_int_equal(FwpsFlowRemoveContext0(id, ALE_V4, g.id_b), STATUS_UNSUCCESSFUL);
    assert_int_equal(FwpsFlowRemoveContext0(id, FWPS_LAYER_STREAM_V4, g.id_c),
                     STATUS_UNSUCCESSFUL);
    assert_int_equal(FwpsFlowRemoveContext0(id ^ 0x700000000ull, FWPS_LAYER_STREAM_V4, g.id_b),
                     STATUS_UNSUCCESSFUL);
    assert_int_equal(g.ndel, 0);
    owfp_flow_close(f);
    assert_int_equal(FwpsFlowRemoveContext0(id, FWPS_LAYER_STREAM_V4, g.id_b),
                     STATUS_UNSUCCESSFUL);
    assert_int_equal(g.ndel, 1);
}

static void test_F6_reassociate_after_remove(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, FWP_ACTION_CALLOUT_INSPECTION);
    /* Inside the classify: associate, remove (pending), associate again. */
    script(0, OP_ASSOC, ALE_V4, &g.id_b, 0x1);
    script(1, OP_REMOVE, ALE_V4, &g.id_b, 0);
    script(2, OP_ASSOC, ALE_V4, &g.id_b, 0x2);
    owfp_flow *f = open4(1000, NULL);
    UINT64 id = owfp_flow_id(f);
    assert_int_equal(g.ops[1].status, STATUS_PENDING);
    assert_int_equal(g.ops[2].status, STATUS_SUCCESS);
    assert_int_equal(g.b_flow_context, 0x2);
    assert_int_equal(g.ndel, 1);
    assert_int_equal(deletes_of(g.id_b, ALE_V4, 0x1), 1);
    /* Outside: remove (synchronous), associate again. */
    assert_int_equal(FwpsFlowRemoveContext0(id, ALE_V4, g.id_b), STATUS_SUCCESS);
    assert_int_equal(deletes_of(g.id_b, ALE_V4, 0x2), 1);
    assert_int_equal(FwpsFlowAssociateContext0(id, ALE_V4, g.id_b, 0x3), STATUS_SUCCESS);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, 3);
    assert_int_equal(deletes_of(g.id_b, ALE_V4, 0x3), 1);
}

struct open_thread {
    pthread_t thread;
    uint16_t port;
    NTSTATUS status;
    owfp_flow *flow;
};

static void *open_thread_main(void *arg)
{
    struct open_thread *t = arg;
    struct owfp_flow_params p = h_params4(t->port, 80, OWFP_OUTBOUND);
    enum owfp_flow_verdict v;
    t->status = owfp_flow_open(h_engine, &p, &t->flow, &v);
    return NULL;
}

/* A classify of the flow is running on another thread: PENDING, and the
 * flowDeleteFn follows when that classify ends. */
static void test_F6_remove_from_other_thread_during_classify_pending(void **state)
{
    (void)state;
    reset();
    gate_reset(true);
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    script(0, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_a, 0x4242);
    struct open_thread t = {.port = 1000};
    assert_int_equal(pthread_create(&t.thread, NULL, open_thread_main, &t), 0);
    gate_wait_entered();
    UINT64 id = g.a_flow_handle;
    NTSTATUS st = FwpsFlowRemoveContext0(id, FWPS_LAYER_STREAM_V4, g.id_a);
    NTSTATUS again = FwpsFlowRemoveContext0(id, FWPS_LAYER_STREAM_V4, g.id_a);
    int deletes_while_blocked = g.ndel;
    gate_open();
    pthread_join(t.thread, NULL);

    assert_int_equal(g.ops[0].status, STATUS_SUCCESS);
    assert_int_equal(st, STATUS_PENDING);
    assert_int_equal(again, STATUS_UNSUCCESSFUL);
    assert_int_equal(deletes_while_blocked, 0);
    assert_int_equal(t.status, STATUS_SUCCESS);
    assert_int_equal(g.ndel, 1);
    assert_false(g.del[0].during_a);
    assert_int_equal(g.del[0].ctx, 0x4242);
    owfp_flow_close(t.flow);
    assert_int_equal(g.ndel, 1);
}

/* PENDING only concerns the flow being classified: removing a context of
 * another flow from inside a classify is synchronous. */
static void test_F6_remove_other_flow_inside_classify_synchronous(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    owfp_flow *other = open4(1000, NULL);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(other), FWPS_LAYER_STREAM_V4,
                                               g.id_b, 0x0e),
                     STATUS_SUCCESS);
    g.remove_flow = owfp_flow_id(other);
    script(0, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_b, 0x0f);
    g.remove_other = true;
    owfp_flow *f = open4(1002, NULL);
    assert_int_equal(g.remove_other_status, STATUS_SUCCESS);
    assert_int_equal(g.remove_other_deletes, 1);
    assert_true(g.del[0].during_a);
    assert_int_equal(g.del[0].ctx, 0x0e);
    owfp_flow_close(f);
    owfp_flow_close(other);
    assert_int_equal(g.ndel, 2);
    assert_int_equal(deletes_of(g.id_b, FWPS_LAYER_STREAM_V4, 0x0f), 1);
}

/* Once the flow's teardown has started, removing is refused and each
 * context still gets exactly one flowDeleteFn. */
static void test_F6_remove_after_teardown_started_unsuccessful(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    owfp_flow *f = open4(1000, NULL);
    UINT64 id = owfp_flow_id(f);
    assert_int_equal(FwpsFlowAssociateContext0(id, ALE_V4, g.id_b, 0x10), STATUS_SUCCESS);
    assert_int_equal(FwpsFlowAssociateContext0(id, FWPS_LAYER_STREAM_V4, g.id_b, 0x20),
                     STATUS_SUCCESS);
    g.remove_in_delete = true;
    g.remove_flow = id;
    owfp_flow_close(f);
    assert_int_equal(g.remove_in_delete_status, STATUS_UNSUCCESSFUL);
    assert_int_equal(g.ndel, 2);
    assert_int_equal(deletes_of(g.id_b, ALE_V4, 0x10), 1);
    assert_int_equal(deletes_of(g.id_b, FWPS_LAYER_STREAM_V4, 0x20), 1);
}

/* ---- F7 ------------------------------------------------------------------ */

static void test_F7_flow_delete_once_per_association_at_close(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, FWP_ACTION_CALLOUT_INSPECTION);
    script(0, OP_ASSOC, ALE_V4, &g.id_a, 0xa);
    script(1, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_b, 0xb);
    owfp_flow *f1 = open4(1000, NULL);
    g.nops = 0;
    owfp_flow *f2 = open4(1001, NULL);
    assert_int_equal(g.ndel, 0);
    owfp_flow_close(f1);
    assert_int_equal(g.ndel, 2);
    assert_int_equal(deletes_of(g.id_a, ALE_V4, 0xa), 1);
    assert_int_equal(deletes_of(g.id_b, FWPS_LAYER_STREAM_V4, 0xb), 1);
    /* C is registered with a flowDeleteFn but never associated. */
    assert_int_equal(deletes_for(g.id_c), 0);
    owfp_flow_close(f2);
    assert_int_equal(g.ndel, 2);
    /* More traffic does not repeat them. */
    owfp_flow_close(open4(1002, NULL));
    assert_int_equal(g.ndel, 2);
    assert_int_equal(contexts(), 0);
}

static void test_F7_flow_delete_gets_latest_context(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    script(0, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_b, 0x100);
    owfp_flow *f = open4(1000, NULL);
    UINT64 id = owfp_flow_id(f);
    assert_int_equal(FwpsFlowRemoveContext0(id, FWPS_LAYER_STREAM_V4, g.id_b), STATUS_SUCCESS);
    assert_int_equal(FwpsFlowAssociateContext0(id, FWPS_LAYER_STREAM_V4, g.id_b, 0x200),
                     STATUS_SUCCESS);
    assert_int_equal(g.ndel, 1);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, 2);
    assert_int_equal(deletes_of(g.id_b, FWPS_LAYER_STREAM_V4, 0x100), 1);
    assert_int_equal(deletes_of(g.id_b, FWPS_LAYER_STREAM_V4, 0x200), 1);
    assert_int_equal(g.del[1].ctx, 0x200);
}

static void test_F7_flow_delete_for_blocked_flow(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    add_filter(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, &g_lo, FWP_ACTION_BLOCK, NULL, 1);
    script(0, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_b, 0xb10c);
    enum owfp_flow_verdict v;
    owfp_flow *f = open4(1000, &v);
    assert_int_equal(v, OWFP_FLOW_BLOCKED);
    assert_int_equal(g.ops[0].status, STATUS_SUCCESS);
    assert_int_equal(g.ndel, 0);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, 1);
    assert_int_equal(deletes_of(g.id_b, FWPS_LAYER_STREAM_V4, 0xb10c), 1);
}

/* ---- F8 ------------------------------------------------------------------ */

/* The data plane decides when an endpoint is torn down; until it closes the
 * flow, nothing (however much traffic) deletes the context. */
static void test_F8_flow_delete_not_before_close(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    script(0, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_b, 0xf8);
    owfp_flow *f = open4(1000, NULL);
    g.nops = 0;
    for (int i = 0; i < 3; i++)
        owfp_flow_close(open4((uint16_t)(2000 + i), NULL));
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    assert_int_equal(g.ndel, 0);
    assert_int_equal(contexts(), 1);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, 1);
    assert_int_equal(g.del[0].ctx, 0xf8);
}

/* ---- F9 ------------------------------------------------------------------ */

static void test_F9_T7_conditional_on_flow_without_context_not_called(void **state)
{
    (void)state;
    reset();
    /* B: CONDITIONAL_ON_FLOW, TERMINATING filter without conditions; it
     * would BLOCK if it were called. */
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW,
                   FWP_ACTION_CALLOUT_TERMINATING);
    g.b_answer = FWP_ACTION_BLOCK;
    enum owfp_flow_verdict v;
    owfp_flow *f = open4(1000, &v);
    assert_int_equal(g.a_calls, 1);
    assert_int_equal(g.b_calls, 0);
    assert_int_equal(v, OWFP_FLOW_PERMITTED);
    owfp_flow_close(f);
}

static void test_F9_conditional_on_flow_called_with_context(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW,
                   FWP_ACTION_CALLOUT_TERMINATING);
    g.b_answer = FWP_ACTION_BLOCK;
    script(0, OP_ASSOC, ALE_V4, &g.id_b, 0x99);
    enum owfp_flow_verdict v;
    owfp_flow *f = open4(1000, &v);
    assert_int_equal(g.ops[0].status, STATUS_SUCCESS);
    assert_int_equal(g.b_calls, 1);
    assert_int_equal(g.b_flow_context, 0x99);
    assert_int_equal(v, OWFP_FLOW_BLOCKED);
    owfp_flow_close(f);
    /* A flow whose context was removed is again not classified. */
    script(1, OP_REMOVE, ALE_V4, &g.id_b, 0);
    f = open4(1001, &v);
    assert_int_equal(g.ops[1].status, STATUS_PENDING);
    assert_int_equal(g.b_calls, 1);
    assert_int_equal(v, OWFP_FLOW_PERMITTED);
    owfp_flow_close(f);
}

static void test_F9_context_at_other_layer_does_not_count(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW,
                   FWP_ACTION_CALLOUT_TERMINATING);
    g.b_answer = FWP_ACTION_BLOCK;
    script(0, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_b, 0x1);
    script(1, OP_ASSOC, ALE_V4, &g.id_c, 0x2);
    enum owfp_flow_verdict v;
    owfp_flow *f = open4(1000, &v);
    assert_int_equal(g.ops[0].status, STATUS_SUCCESS);
    assert_int_equal(g.ops[1].status, STATUS_SUCCESS);
    assert_int_equal(g.b_calls, 0);
    assert_int_equal(v, OWFP_FLOW_PERMITTED);
    owfp_flow_close(f);
}

/* ---- F10 ----------------------------------------------------------------- */

static void test_F10_abort_marks_flow_and_deletes_at_close(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    script(0, OP_ASSOC, FWPS_LAYER_STREAM_V4, &g.id_b, 0xab);
    owfp_flow *f = open4(1000, NULL);
    owfp_flow *other = open4(1001, NULL);
    assert_false(owfp_flow_aborted(f));
    assert_int_equal(FwpsFlowAbort0(owfp_flow_id(f)), STATUS_SUCCESS);
    assert_true(owfp_flow_aborted(f));
    assert_false(owfp_flow_aborted(other));
    assert_int_equal(g.ndel, 0);
    owfp_flow_close(f);
    assert_int_equal(g.ndel, 1);
    assert_int_equal(deletes_of(g.id_b, FWPS_LAYER_STREAM_V4, 0xab), 1);
    owfp_flow_close(other);
}

static void test_F10_abort_unknown_flow_not_found(void **state)
{
    (void)state;
    reset();
    assert_int_equal(FwpsFlowAbort0(0), STATUS_NOT_FOUND);
    assert_int_equal(FwpsFlowAbort0(0x123456789ull), STATUS_NOT_FOUND);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    UINT64 id = owfp_flow_id(f);
    owfp_flow_close(f);
    assert_int_equal(FwpsFlowAbort0(id), STATUS_NOT_FOUND);
}

static void test_F10_abort_from_classify(void **state)
{
    (void)state;
    reset();
    setup_callouts(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, 0, 0);
    script(0, OP_ASSOC, ALE_V4, &g.id_a, 0xcd);
    script(1, OP_ABORT, 0, &g.id_a, 0);
    owfp_flow *f = open4(1000, NULL);
    assert_int_equal(g.ops[1].status, STATUS_SUCCESS);
    assert_true(owfp_flow_aborted(f));
    assert_int_equal(g.ndel, 0);
    owfp_flow_close(f);
    assert_int_equal(deletes_of(g.id_a, ALE_V4, 0xcd), 1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, h_setup, h_teardown)

/* More flows open at once than the flow table's first free-list block:
 * closing them all must neither overflow it nor lose a flowDeleteFn. */
static void test_F7_thousands_of_simultaneous_flows_all_deleted(void **state)
{
    (void)state;
    enum { N = 5000 };
    static owfp_flow *flows[N];
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    for (int i = 0; i < N; i++) {
        p.local_port = (uint16_t)(1000 + i);
        flows[i] = h_open(&p, NULL);
    }
    struct owfp_engine_stats st;
    owfp_engine_get_stats(h_engine, &st);
    assert_int_equal(st.flows_open, N);
    for (int i = 0; i < N; i++)
        owfp_flow_close(flows[i]);
    owfp_engine_get_stats(h_engine, &st);
    assert_int_equal(st.flows_open, 0);
    for (int i = 0; i < N; i++) {
        p.local_port = (uint16_t)(1000 + i);
        flows[i] = h_open(&p, NULL);
    }
    for (int i = N - 1; i >= 0; i--)
        owfp_flow_close(flows[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_F7_thousands_of_simultaneous_flows_all_deleted, h_setup, h_teardown),
        T(test_F1_flow_handle_metadata_v4),
        T(test_F1_flow_handle_metadata_v6),
        T(test_F2_distinct_flows_distinct_ids),
        T(test_F2_loopback_endpoints_distinct_flows),
        T(test_F3_associate_at_flow_layers_v4),
        T(test_F3_associate_at_flow_layers_v6),
        T(test_F3_non_flow_layer_incompatible),
        T(test_F4_T4_zero_context_invalid_parameter),
        T(test_F4_T4_callout_without_flow_delete_invalid_parameter),
        T(test_F4_T3_associate_same_triple_twice_keeps_old),
        T(test_F4_several_contexts_per_flow),
        T(test_F4_unknown_flow_or_callout),
        cmocka_unit_test(test_F4_no_engine_tcpip_not_ready),
        T(test_F5_context_from_same_classify_reaches_lower_sublayer),
        T(test_F5_context_keyed_by_flow_layer_callout),
        T(test_F6_T5_remove_outside_classify_synchronous),
        T(test_F6_T6_remove_inside_classify_pending),
        T(test_F6_remove_without_context_unsuccessful),
        T(test_F6_reassociate_after_remove),
        T(test_F6_remove_from_other_thread_during_classify_pending),
        T(test_F6_remove_other_flow_inside_classify_synchronous),
        T(test_F6_remove_after_teardown_started_unsuccessful),
        T(test_F7_flow_delete_once_per_association_at_close),
        T(test_F7_flow_delete_gets_latest_context),
        T(test_F7_flow_delete_for_blocked_flow),
        T(test_F8_flow_delete_not_before_close),
        T(test_F9_T7_conditional_on_flow_without_context_not_called),
        T(test_F9_conditional_on_flow_called_with_context),
        T(test_F9_context_at_other_layer_does_not_count),
        T(test_F10_abort_marks_flow_and_deletes_at_close),
        T(test_F10_abort_unknown_flow_not_found),
        T(test_F10_abort_from_classify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
