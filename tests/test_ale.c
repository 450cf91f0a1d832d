/*
 * Spec §11 (E1-E5): the ALE_FLOW_ESTABLISHED layer — one classify per flow,
 * the metadata there, and the stmedit/msnmntr pattern of associating a
 * stream-layer context from the flow-established classify.
 */
#include "harness.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const GUID *const ALE4 = &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
static const GUID *const ALE6 = &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6;

/* ---- a plain recording callout ------------------------------------------------------- */

#define MAX_SEEN 8

struct seen {
    UINT16 layer_id;
    uint32_t direction_type;
    uint32_t direction;
    UINT32 metadata_bits;
    UINT64 flow_handle;
    UINT64 process_id;
    bool path_null;
    UINT32 path_size;
    uint8_t path[128];
};

static struct seen g_seen[MAX_SEEN];
static unsigned g_nseen;

static void NTAPI record_classify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                  const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                  void *layerData, const FWPS_FILTER0 *filter, UINT64 flowContext,
                                  FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    if (g_nseen < MAX_SEEN) {
        struct seen *s = &g_seen[g_nseen];
        memset(s, 0, sizeof(*s));
        s->layer_id = inFixedValues->layerId;
        const FWP_VALUE0 *d =
            &inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_DIRECTION].value;
        s->direction_type = d->type;
        s->direction = d->uint32;
        s->metadata_bits = inMetaValues->currentMetadataValues;
        s->flow_handle = inMetaValues->flowHandle;
        s->process_id = inMetaValues->processId;
        s->path_null = inMetaValues->processPath == NULL;
        if (inMetaValues->processPath) {
            /* As msnmntr does: copy processPath->size bytes. */
            s->path_size = inMetaValues->processPath->size;
            if (s->path_size <= sizeof(s->path))
                memcpy(s->path, inMetaValues->processPath->data, s->path_size);
        }
    }
    g_nseen++;
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

/* ---- the canonical pair: A at flow-established, B at the stream layer ------------------------ */

#define CTX_MAGIC 0x5354454dU /* "STEM" */

struct flow_ctx {
    uint32_t magic;
    UINT64 flow_handle;
};

static struct {
    UINT32 b_id, b6_id;
    unsigned a_calls;
    NTSTATUS assoc;          /* first FwpsFlowAssociateContext0 in A */
    NTSTATUS assoc_again;    /* second one, same triple, other context */
    bool associate_twice;
    uint32_t a_answer;       /* what A returns */
    struct flow_ctx *ctx;    /* the context A associated */
    unsigned b_classifies;
    unsigned deletes;
    UINT16 del_layer;
    UINT32 del_callout;
    UINT64 del_context;
    bool del_magic_ok;
} g;

static void NTAPI a_classify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                             const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                             const FWPS_FILTER0 *filter, UINT64 flowContext,
                             FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    g.a_calls++;
    if (FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_FLOW_HANDLE)) {
        bool v6 = inFixedValues->layerId == FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6;
        UINT16 stream = v6 ? FWPS_LAYER_STREAM_V6 : FWPS_LAYER_STREAM_V4;
        UINT32 b = v6 ? g.b6_id : g.b_id;
        struct flow_ctx *ctx = malloc(sizeof(*ctx));
        assert_non_null(ctx);
        ctx->magic = CTX_MAGIC;
        ctx->flow_handle = inMetaValues->flowHandle;
        g.assoc = FwpsFlowAssociateContext0(inMetaValues->flowHandle, stream, b,
                                            (UINT64)(uintptr_t)ctx);
        if (g.assoc == STATUS_SUCCESS)
            g.ctx = ctx;
        else
            free(ctx);
        if (g.associate_twice) {
            struct flow_ctx *other = malloc(sizeof(*other));
            assert_non_null(other);
            other->magic = CTX_MAGIC;
            other->flow_handle = 0;
            g.assoc_again = FwpsFlowAssociateContext0(inMetaValues->flowHandle, stream, b,
                                                      (UINT64)(uintptr_t)other);
            /* stmedit tests !NT_SUCCESS, the docs != STATUS_SUCCESS: free either way. */
            if (g.assoc_again != STATUS_SUCCESS)
                free(other);
        }
    }
    classifyOut->actionType = g.a_answer;
    if (g.a_answer == FWP_ACTION_BLOCK)
        classifyOut->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static void NTAPI b_classify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                             const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                             const FWPS_FILTER0 *filter, UINT64 flowContext,
                             FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    g.b_classifies++;
    classifyOut->actionType = FWP_ACTION_PERMIT;
}

static void NTAPI b_flow_delete(UINT16 layerId, UINT32 calloutId, UINT64 flowContext)
{
    struct flow_ctx *ctx = (struct flow_ctx *)(uintptr_t)flowContext;
    g.deletes++;
    g.del_layer = layerId;
    g.del_callout = calloutId;
    g.del_context = flowContext;
    g.del_magic_ok = ctx && ctx->magic == CTX_MAGIC;
    if (ctx)
        ctx->magic = 0;
    free(ctx);
}

static GUID g_sublayer;

static int setup(void **state)
{
    memset(g_seen, 0, sizeof(g_seen));
    g_nseen = 0;
    memset(&g, 0, sizeof(g));
    g.a_answer = FWP_ACTION_CONTINUE;
    return h_setup(state);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void record_callout(const GUID *key, const GUID *layer)
{
    assert_int_equal(h_register0(key, 0, record_classify, h_notify_ok, NULL, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(h_callout_object(key, layer), STATUS_SUCCESS);
    struct h_filter_spec spec = {.layer = layer, .action = FWP_ACTION_CALLOUT_INSPECTION,
                                 .callout = key};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
}

static FWPM_FILTER_CONDITION0 u16_eq(const GUID *field, uint16_t v)
{
    FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldKey = *field;
    c.matchType = FWP_MATCH_EQUAL;
    c.conditionValue.type = FWP_UINT16;
    c.conditionValue.uint16 = v;
    return c;
}

/*
 * Sets up the stmedit pattern for IP version `v` (4 or 6):
 * callout A at ALE_FLOW_ESTABLISHED (flags 0, no flowDeleteFn) with a
 * filter on TCP to port 80 of type `a_type`; callout B at STREAM with a
 * flowDeleteFn and CONDITIONAL_ON_FLOW, with an unconditional TERMINATING
 * stream filter; both in the driver's own sublayer.
 */
static void canonical_pattern(int v, uint32_t a_type)
{
    bool v6 = v == 6;
    GUID a_key = h_guid(v6 ? 0xa6 : 0xa4), b_key = h_guid(v6 ? 0xb6 : 0xb4);
    g_sublayer = h_sublayer(0x51, 0x4000);
    UINT32 a_id = 0, b_id = 0;
    assert_int_equal(h_register0(&a_key, 0, a_classify, h_notify_ok, NULL, &a_id),
                     STATUS_SUCCESS);
    assert_int_equal(h_register0(&b_key, FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW, b_classify,
                                 h_notify_ok, b_flow_delete, &b_id),
                     STATUS_SUCCESS);
    assert_int_not_equal(a_id, b_id);
    if (v6)
        g.b6_id = b_id;
    else
        g.b_id = b_id;
    const GUID *ale = v6 ? ALE6 : ALE4;
    const GUID *stream = v6 ? &FWPM_LAYER_STREAM_V6 : &FWPM_LAYER_STREAM_V4;
    assert_int_equal(h_callout_object(&a_key, ale), STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&b_key, stream), STATUS_SUCCESS);

    FWPM_FILTER_CONDITION0 c[2];
    memset(&c[0], 0, sizeof(c[0]));
    c[0].fieldKey = FWPM_CONDITION_IP_PROTOCOL;
    c[0].matchType = FWP_MATCH_EQUAL;
    c[0].conditionValue.type = FWP_UINT8;
    c[0].conditionValue.uint8 = 6; /* IPPROTO_TCP */
    c[1] = u16_eq(&FWPM_CONDITION_IP_REMOTE_PORT, 80);
    struct h_filter_spec fa = {.layer = ale, .sublayer = &g_sublayer, .action = a_type,
                               .callout = &a_key, .conds = c, .nconds = 2};
    assert_int_equal(h_filter(&fa, NULL), STATUS_SUCCESS);
    struct h_filter_spec fb = {.layer = stream, .sublayer = &g_sublayer,
                               .action = FWP_ACTION_CALLOUT_TERMINATING, .callout = &b_key};
    assert_int_equal(h_filter(&fb, NULL), STATUS_SUCCESS);
}

static struct owfp_engine_stats stats(void)
{
    struct owfp_engine_stats st;
    owfp_engine_get_stats(h_engine, &st);
    return st;
}

/* ---- E1: one classify per flow --------------------------------------------------------------- */

static void test_E1_classified_once_per_flow_v4(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    record_callout(&k, ALE4);
    owfp_flow *f[3];
    for (int i = 0; i < 3; i++) {
        struct owfp_flow_params p = h_params4((uint16_t)(1000 + i), 80, OWFP_OUTBOUND);
        f[i] = h_open(&p, NULL);
        assert_int_equal(g_nseen, i + 1);
        assert_int_equal(g_seen[i].layer_id, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4);
    }
    assert_int_equal(stats().classifies, 3);
    assert_int_equal(stats().flows_open, 3);
    for (int i = 0; i < 3; i++)
        owfp_flow_close(f[i]);
    /* Closing classifies nothing. */
    assert_int_equal(g_nseen, 3);
    assert_int_equal(stats().flows_open, 0);
}

static void test_E1_classified_once_per_flow_v6(void **state)
{
    (void)state;
    GUID k4 = h_guid(1), k6 = h_guid(2);
    record_callout(&k6, ALE6);
    struct owfp_flow_params p = h_params6(1000, 80, OWFP_INBOUND);
    owfp_flow_close(h_open(&p, NULL));
    assert_int_equal(g_nseen, 1);
    assert_int_equal(g_seen[0].layer_id, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6);
    /* A V4 flow is not classified at the V6 layer ... */
    p = h_params4(1000, 80, OWFP_INBOUND);
    owfp_flow_close(h_open(&p, NULL));
    assert_int_equal(g_nseen, 1);
    /* ... but at the V4 one. */
    record_callout(&k4, ALE4);
    owfp_flow_close(h_open(&p, NULL));
    assert_int_equal(g_nseen, 2);
    assert_int_equal(g_seen[1].layer_id, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4);
}

static void test_E1_direction_field(void **state)
{
    (void)state;
    GUID k4 = h_guid(1), k6 = h_guid(2);
    record_callout(&k4, ALE4);
    record_callout(&k6, ALE6);
    struct owfp_flow_params p[4] = {
        h_params4(1000, 80, OWFP_INBOUND), h_params4(1000, 80, OWFP_OUTBOUND),
        h_params6(1000, 80, OWFP_INBOUND), h_params6(1000, 80, OWFP_OUTBOUND)};
    static const uint32_t expect[4] = {FWP_DIRECTION_INBOUND, FWP_DIRECTION_OUTBOUND,
                                       FWP_DIRECTION_INBOUND, FWP_DIRECTION_OUTBOUND};
    for (int i = 0; i < 4; i++) {
        owfp_flow_close(h_open(&p[i], NULL));
        assert_int_equal(g_nseen, i + 1);
        assert_int_equal(g_seen[i].direction_type, FWP_UINT32);
        assert_int_equal(g_seen[i].direction, expect[i]);
    }
}

static void test_E1_flow_open_invalid_params(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    record_callout(&k, ALE4);
    owfp_flow *f = NULL;
    enum owfp_flow_verdict v;
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(owfp_flow_open(h_engine, NULL, &f, &v), STATUS_INVALID_PARAMETER);
    assert_int_equal(owfp_flow_open(h_engine, &p, NULL, &v), STATUS_INVALID_PARAMETER);
    p.ip_version = 5;
    assert_int_equal(owfp_flow_open(h_engine, &p, &f, &v), STATUS_INVALID_PARAMETER);
    p.ip_version = 0;
    assert_int_equal(owfp_flow_open(h_engine, &p, &f, &v), STATUS_INVALID_PARAMETER);
    p = h_params4(1000, 80, OWFP_OUTBOUND);
    p.direction = 2;
    assert_int_equal(owfp_flow_open(h_engine, &p, &f, &v), STATUS_INVALID_PARAMETER);
    assert_null(f);
    assert_int_equal(g_nseen, 0);
    assert_int_equal(stats().flows_open, 0);
    /* The verdict is optional. */
    p = h_params4(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(owfp_flow_open(h_engine, &p, &f, NULL), STATUS_SUCCESS);
    assert_non_null(f);
    owfp_flow_close(f);
    assert_int_equal(g_nseen, 1);
}

static void test_E1_flow_open_without_engine(void **state)
{
    (void)state;
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    owfp_flow *f = NULL;
    enum owfp_flow_verdict v;
    assert_int_equal(owfp_flow_open(NULL, &p, &f, &v), STATUS_FWP_TCPIP_NOT_READY);
    assert_null(f);
}

/* ---- E2: metadata ------------------------------------------------------------------------------ */

static void test_E2_metadata_flow_handle(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    record_callout(&k, ALE4);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    owfp_flow *a = h_open(&p, NULL);
    owfp_flow *b = h_open(&p, NULL);
    assert_int_equal(g_nseen, 2);
    assert_true(g_seen[0].metadata_bits & FWPS_METADATA_FIELD_FLOW_HANDLE);
    assert_true(g_seen[1].metadata_bits & FWPS_METADATA_FIELD_FLOW_HANDLE);
    assert_int_equal(g_seen[0].flow_handle, owfp_flow_id(a));
    assert_int_equal(g_seen[1].flow_handle, owfp_flow_id(b));
    /* The same 5-tuple twice is still two endpoints. */
    assert_int_not_equal(owfp_flow_id(a), owfp_flow_id(b));
    owfp_flow_close(a);
    owfp_flow_close(b);
}

static const uint16_t g_app[] = {'\\', 'd', 'e', 'v', 'i', 'c', 'e', '\\', 'a', 'p', 'p', '.',
                                 'e', 'x', 'e', 0};

static void test_E2_metadata_process_path_and_id(void **state)
{
    (void)state;
    GUID k4 = h_guid(1), k6 = h_guid(2);
    record_callout(&k4, ALE4);
    record_callout(&k6, ALE6);
    struct owfp_flow_params p[2] = {h_params4(1000, 80, OWFP_OUTBOUND),
                                    h_params6(1000, 80, OWFP_OUTBOUND)};
    for (int i = 0; i < 2; i++) {
        p[i].app_path = g_app;
        p[i].process_id = 4242;
        owfp_flow_close(h_open(&p[i], NULL));
        assert_int_equal(g_nseen, i + 1);
        const struct seen *s = &g_seen[i];
        assert_true(FWPS_METADATA_FIELD_PROCESS_PATH & s->metadata_bits);
        assert_true(FWPS_METADATA_FIELD_PROCESS_ID & s->metadata_bits);
        assert_false(s->path_null);
        assert_int_equal(s->path_size, sizeof(g_app));
        assert_memory_equal(s->path, g_app, sizeof(g_app));
        assert_int_equal(s->process_id, 4242);
    }
}

static void test_E2_metadata_process_path_empty_when_unknown(void **state)
{
    (void)state;
    GUID k = h_guid(1);
    record_callout(&k, ALE4);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    p.app_path = NULL;
    owfp_flow_close(h_open(&p, NULL));
    assert_int_equal(g_nseen, 1);
    const struct seen *s = &g_seen[0];
    assert_true(FWPS_METADATA_FIELD_PROCESS_PATH & s->metadata_bits);
    assert_true(FWPS_METADATA_FIELD_PROCESS_ID & s->metadata_bits);
    assert_false(s->path_null);
    /* An empty UTF-16 string: just the terminator. */
    assert_int_equal(s->path_size, sizeof(uint16_t));
    assert_int_equal(s->path[0], 0);
    assert_int_equal(s->path[1], 0);
    assert_int_equal(s->process_id, 0);
}

/* ---- E3: the stmedit / msnmntr pattern ---------------------------------------------------------- */

static void check_canonical(int v)
{
    canonical_pattern(v, FWP_ACTION_CALLOUT_INSPECTION);
    UINT32 b_id = v == 6 ? g.b6_id : g.b_id;
    uint16_t stream = v == 6 ? FWPS_LAYER_STREAM_V6 : FWPS_LAYER_STREAM_V4;
    struct owfp_flow_params p = v == 6 ? h_params6(50000, 80, OWFP_OUTBOUND)
                                       : h_params4(50000, 80, OWFP_OUTBOUND);
    enum owfp_flow_verdict verdict;
    owfp_flow *f = h_open(&p, &verdict);
    assert_int_equal(verdict, OWFP_FLOW_PERMITTED);
    assert_int_equal(g.a_calls, 1);
    assert_int_equal(g.assoc, STATUS_SUCCESS);
    assert_non_null(g.ctx);
    assert_int_equal(g.ctx->flow_handle, owfp_flow_id(f));
    assert_int_equal(stats().flow_contexts, 1);
    /* The stream callout is not classified at flow-established. */
    assert_int_equal(g.b_classifies, 0);
    assert_int_equal(g.deletes, 0);
    UINT64 ctx = (UINT64)(uintptr_t)g.ctx;
    owfp_flow_close(f);
    assert_int_equal(g.deletes, 1);
    assert_int_equal(g.del_layer, stream);
    assert_int_equal(g.del_callout, b_id);
    assert_int_equal(g.del_context, ctx);
    assert_true(g.del_magic_ok);
    assert_int_equal(stats().flow_contexts, 0);

    /* A flow the A filter does not match gets no context and no delete. */
    g.a_calls = 0;
    p.remote_port = 81;
    owfp_flow_close(h_open(&p, &verdict));
    assert_int_equal(verdict, OWFP_FLOW_PERMITTED);
    assert_int_equal(g.a_calls, 0);
    assert_int_equal(g.deletes, 1);
    p.remote_port = 80;
    p.protocol = 17;
    owfp_flow_close(h_open(&p, &verdict));
    assert_int_equal(g.a_calls, 0);
    assert_int_equal(g.deletes, 1);
}

static void test_E3_canonical_pattern_v4(void **state)
{
    (void)state;
    check_canonical(4);
}

static void test_E3_canonical_pattern_v6(void **state)
{
    (void)state;
    check_canonical(6);
}

static void test_E3_msnmntr_permit_from_inspection_filter(void **state)
{
    (void)state;
    /* msnmntr answers PERMIT from its inspection filter: no decision, and
     * the association stands. */
    g.a_answer = FWP_ACTION_PERMIT;
    canonical_pattern(4, FWP_ACTION_CALLOUT_INSPECTION);
    struct h_filter_spec block = {.layer = ALE4, .sublayer = &g_sublayer,
                                  .action = FWP_ACTION_BLOCK, .has_weight = 1, .weight = 0};
    assert_int_equal(h_filter(&block, NULL), STATUS_SUCCESS);
    struct owfp_flow_params p = h_params4(50000, 80, OWFP_OUTBOUND);
    enum owfp_flow_verdict verdict;
    owfp_flow *f = h_open(&p, &verdict);
    assert_int_equal(g.a_calls, 1);
    assert_int_equal(g.assoc, STATUS_SUCCESS);
    /* The PERMIT of an inspection callout did not end the sublayer. */
    assert_int_equal(verdict, OWFP_FLOW_BLOCKED);
    owfp_flow_close(f);
    assert_int_equal(g.deletes, 1);
}

/* ---- E4: the association is visible at once ------------------------------------------------------ */

static void test_E4_association_visible_inside_classify(void **state)
{
    (void)state;
    g.associate_twice = true;
    canonical_pattern(4, FWP_ACTION_CALLOUT_INSPECTION);
    struct owfp_flow_params p = h_params4(50000, 80, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    assert_int_equal(g.assoc, STATUS_SUCCESS);
    assert_int_equal(g.assoc_again, STATUS_OBJECT_NAME_EXISTS);
    assert_int_equal(stats().flow_contexts, 1);
    UINT64 first = (UINT64)(uintptr_t)g.ctx;
    owfp_flow_close(f);
    /* The first context was kept and is the one handed back. */
    assert_int_equal(g.deletes, 1);
    assert_int_equal(g.del_context, first);
}

static void test_E4_association_visible_after_flow_open(void **state)
{
    (void)state;
    canonical_pattern(4, FWP_ACTION_CALLOUT_INSPECTION);
    struct owfp_flow_params p = h_params4(50000, 80, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    assert_int_equal(g.assoc, STATUS_SUCCESS);
    UINT64 first = (UINT64)(uintptr_t)g.ctx;
    /* What the first stream indication would look up is already there. */
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f), FWPS_LAYER_STREAM_V4, g.b_id,
                                               0x1234),
                     STATUS_OBJECT_NAME_EXISTS);
    owfp_flow_close(f);
    assert_int_equal(g.deletes, 1);
    assert_int_equal(g.del_context, first);
}

/* ---- E5: blocking at flow-established ------------------------------------------------------------ */

static void test_E5_blocked_flow_closable_contexts_deleted(void **state)
{
    (void)state;
    g.a_answer = FWP_ACTION_BLOCK;
    canonical_pattern(4, FWP_ACTION_CALLOUT_TERMINATING);
    struct owfp_flow_params p = h_params4(50000, 80, OWFP_OUTBOUND);
    owfp_flow *f = NULL;
    enum owfp_flow_verdict verdict = OWFP_FLOW_PERMITTED;
    assert_int_equal(owfp_flow_open(h_engine, &p, &f, &verdict), STATUS_SUCCESS);
    assert_non_null(f);
    assert_int_equal(verdict, OWFP_FLOW_BLOCKED);
    assert_int_equal(g.assoc, STATUS_SUCCESS);
    assert_int_equal(stats().flow_contexts, 1);
    assert_int_equal(stats().flows_open, 1);
    UINT64 ctx = (UINT64)(uintptr_t)g.ctx;
    owfp_flow_close(f);
    assert_int_equal(g.deletes, 1);
    assert_int_equal(g.del_context, ctx);
    assert_int_equal(g.del_layer, FWPS_LAYER_STREAM_V4);
    assert_int_equal(stats().flow_contexts, 0);
    assert_int_equal(stats().flows_open, 0);
}

static void test_E5_static_block_after_association(void **state)
{
    (void)state;
    canonical_pattern(6, FWP_ACTION_CALLOUT_INSPECTION);
    GUID lower = h_sublayer(0x52, 0x100);
    struct h_filter_spec block = {.layer = ALE6, .sublayer = &lower, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&block, NULL), STATUS_SUCCESS);
    struct owfp_flow_params p = h_params6(50000, 80, OWFP_OUTBOUND);
    enum owfp_flow_verdict verdict;
    owfp_flow *f = h_open(&p, &verdict);
    assert_int_equal(verdict, OWFP_FLOW_BLOCKED);
    assert_int_equal(g.assoc, STATUS_SUCCESS);
    owfp_flow_close(f);
    assert_int_equal(g.deletes, 1);
    assert_int_equal(g.del_layer, FWPS_LAYER_STREAM_V6);
    assert_int_equal(g.del_callout, g.b6_id);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, h_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_E1_classified_once_per_flow_v4),
        T(test_E1_classified_once_per_flow_v6),
        T(test_E1_direction_field),
        T(test_E1_flow_open_invalid_params),
        T(test_E1_flow_open_without_engine),
        T(test_E2_metadata_flow_handle),
        T(test_E2_metadata_process_path_and_id),
        T(test_E2_metadata_process_path_empty_when_unknown),
        T(test_E3_canonical_pattern_v4),
        T(test_E3_canonical_pattern_v6),
        T(test_E3_msnmntr_permit_from_inspection_filter),
        T(test_E4_association_visible_inside_classify),
        T(test_E4_association_visible_after_flow_open),
        T(test_E5_blocked_flow_closable_contexts_deleted),
        T(test_E5_static_block_after_association),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
