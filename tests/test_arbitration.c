/*
 * Spec §8 (A1-A11): filter arbitration at ALE_FLOW_ESTABLISHED — sublayer and
 * filter order, decisions inside a sublayer, soft/hard decisions across
 * sublayers, vetoes, weights, and how a callout's answer counts.
 *
 * One programmable callout serves every callout filter: the filter's
 * rawContext (filter->context) selects what it answers, and every call is
 * logged with the rights and classifyOut it saw on entry.
 */
#include "harness.h"

#include <stdbool.h>
#include <string.h>

static const GUID *const ALE4 = &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
static const GUID *const ALE6 = &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6;

static WCHAR g_name[] = L"arbitration test";

/* ---- the programmable callout -------------------------------------------------- */

struct behaviour {
    uint32_t tag;        /* what the log records */
    bool write;          /* writes classifyOut->actionType */
    uint32_t action;     /* ... with this value */
    bool clear_right;    /* clears FWPS_RIGHT_ACTION_WRITE */
    uint32_t out_flags;  /* ORed into classifyOut->flags */
};

struct call {
    uint32_t tag;
    uint32_t rights;    /* classifyOut->rights on entry */
    uint64_t filter_id;
    uint64_t weight;    /* *filter->weight.uint64 */
    uint32_t weight_type;
};

#define MAX_BEHAVIOURS 64
#define MAX_CALLS 32

static struct behaviour g_beh[MAX_BEHAVIOURS];
static unsigned g_nbeh;
static struct call g_calls[MAX_CALLS];
static unsigned g_ncalls;
static GUID g_callout_key;
static GUID g_callout_key6;

static void NTAPI prog_classify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                void *layerData, const FWPS_FILTER0 *filter, UINT64 flowContext,
                                FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(flowContext);
    if (filter->context >= g_nbeh)
        return;
    const struct behaviour *b = &g_beh[filter->context];
    if (g_ncalls < MAX_CALLS) {
        struct call *c = &g_calls[g_ncalls++];
        c->tag = b->tag;
        c->rights = classifyOut->rights;
        c->filter_id = filter->filterId;
        c->weight_type = filter->weight.type;
        c->weight = filter->weight.type == FWP_UINT64 && filter->weight.uint64
                        ? *filter->weight.uint64
                        : 0;
    }
    if (b->write)
        classifyOut->actionType = b->action;
    if (b->clear_right)
        classifyOut->rights &= ~FWPS_RIGHT_ACTION_WRITE;
    classifyOut->flags |= b->out_flags;
}

/* A behaviour that answers `action`; returns the context selecting it. */
static uint64_t answers(uint32_t tag, uint32_t action, bool clear_right)
{
    assert_true(g_nbeh < MAX_BEHAVIOURS);
    g_beh[g_nbeh] = (struct behaviour){tag, true, action, clear_right, 0};
    return g_nbeh++;
}

/* A behaviour that leaves classifyOut alone. */
static uint64_t silent(uint32_t tag)
{
    assert_true(g_nbeh < MAX_BEHAVIOURS);
    g_beh[g_nbeh] = (struct behaviour){tag, false, 0, false, 0};
    return g_nbeh++;
}

static int setup(void **state)
{
    memset(g_beh, 0, sizeof(g_beh));
    memset(g_calls, 0, sizeof(g_calls));
    g_nbeh = 0;
    g_ncalls = 0;
    /* Context 0 is never handed out, so a filter without one is noticed. */
    silent(0xdead);
    if (h_setup(state) != 0)
        return -1;
    g_callout_key = h_guid(0xa000);
    g_callout_key6 = h_guid(0xa006);
    if (h_register0(&g_callout_key, 0, prog_classify, h_notify_ok, NULL, NULL) !=
            STATUS_SUCCESS ||
        h_callout_object(&g_callout_key, ALE4) != STATUS_SUCCESS ||
        h_register0(&g_callout_key6, 0, prog_classify, h_notify_ok, NULL, NULL) !=
            STATUS_SUCCESS ||
        h_callout_object(&g_callout_key6, ALE6) != STATUS_SUCCESS)
        return -1;
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

/* A callout filter at ALE_FLOW_ESTABLISHED_V4 behaving as `ctx`. */
static UINT64 cfilter_c(const GUID *sublayer, uint32_t type, uint64_t weight, uint64_t ctx,
                        uint32_t flags, const FWPM_FILTER_CONDITION0 *conds, uint32_t nconds)
{
    struct h_filter_spec spec = {.layer = ALE4,
                                 .sublayer = sublayer,
                                 .action = type,
                                 .callout = &g_callout_key,
                                 .weight = weight,
                                 .has_weight = 1,
                                 .flags = flags,
                                 .raw_context = ctx,
                                 .conds = conds,
                                 .nconds = nconds};
    UINT64 id = 0;
    assert_int_equal(h_filter(&spec, &id), STATUS_SUCCESS);
    return id;
}

static UINT64 cfilter(const GUID *sublayer, uint32_t type, uint64_t weight, uint64_t ctx)
{
    return cfilter_c(sublayer, type, weight, ctx, 0, NULL, 0);
}

static UINT64 cfilter_flags(const GUID *sublayer, uint32_t type, uint64_t weight, uint64_t ctx,
                            uint32_t flags)
{
    return cfilter_c(sublayer, type, weight, ctx, flags, NULL, 0);
}

/* A static filter (PERMIT / BLOCK / CONTINUE). */
static UINT64 sfilter(const GUID *sublayer, uint32_t action, uint64_t weight, uint32_t flags)
{
    struct h_filter_spec spec = {.layer = ALE4,
                                 .sublayer = sublayer,
                                 .action = action,
                                 .weight = weight,
                                 .has_weight = 1,
                                 .flags = flags};
    UINT64 id = 0;
    assert_int_equal(h_filter(&spec, &id), STATUS_SUCCESS);
    return id;
}

static FWPM_FILTER_CONDITION0 u16_cond(const GUID *field, uint16_t v)
{
    FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldKey = *field;
    c.matchType = FWP_MATCH_EQUAL;
    c.conditionValue.type = FWP_UINT16;
    c.conditionValue.uint16 = v;
    return c;
}

static FWPM_FILTER_CONDITION0 proto_cond(uint8_t proto)
{
    FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldKey = FWPM_CONDITION_IP_PROTOCOL;
    c.matchType = FWP_MATCH_EQUAL;
    c.conditionValue.type = FWP_UINT8;
    c.conditionValue.uint8 = proto;
    return c;
}

/* Opens and closes an outbound TCP/IPv4 flow 10.0.0.1:1000 -> :80. */
static enum owfp_flow_verdict run(void)
{
    g_ncalls = 0;
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    enum owfp_flow_verdict v;
    owfp_flow_close(h_open(&p, &v));
    return v;
}

static void assert_order(const uint32_t *tags, unsigned n)
{
    assert_int_equal(g_ncalls, n);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(g_calls[i].tag, tags[i]);
}

#define ORDER(...)                                                                              \
    do {                                                                                        \
        static const uint32_t tags_[] = {__VA_ARGS__};                                          \
        assert_order(tags_, sizeof(tags_) / sizeof(tags_[0]));                                  \
    } while (0)

static GUID sublayer(uint32_t n, uint16_t weight)
{
    return h_sublayer(n, weight);
}

/* ---- A1: order ---------------------------------------------------------------------- */

static void test_A1_sublayers_by_weight_then_filters_by_weight(void **state)
{
    (void)state;
    GUID lo = sublayer(1, 0x100), hi = sublayer(2, 0x200);
    /* Added in an order that matches neither sublayer nor filter order. */
    cfilter(&lo, FWP_ACTION_CALLOUT_INSPECTION, 10, silent(1));
    cfilter(&hi, FWP_ACTION_CALLOUT_INSPECTION, 5, silent(2));
    cfilter(&lo, FWP_ACTION_CALLOUT_INSPECTION, 20, silent(3));
    cfilter(&hi, FWP_ACTION_CALLOUT_INSPECTION, 50, silent(4));
    /* Does not match this flow: never called. */
    FWPM_FILTER_CONDITION0 c = u16_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 81);
    cfilter_c(&hi, FWP_ACTION_CALLOUT_INSPECTION, 100, silent(5), 0, &c, 1);
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
    ORDER(4, 2, 3, 1);
}

static void test_A1_equal_sublayer_weights_lower_key_first(void **state)
{
    (void)state;
    /* Keys compared as bytes: {0x200,...} = 00 02 00 00 ... sorts before
     * {0x3,...} = 03 00 00 00 ... although 0x200 > 0x3 as a number. */
    FWPM_SUBLAYER0 sl;
    memset(&sl, 0, sizeof(sl));
    sl.displayData.name = g_name;
    sl.weight = 0x500;
    GUID a = h_guid(0x3), b = h_guid(0x200);
    sl.subLayerKey = a;
    assert_int_equal(FwpmSubLayerAdd0(h_session, &sl, NULL), STATUS_SUCCESS);
    sl.subLayerKey = b;
    assert_int_equal(FwpmSubLayerAdd0(h_session, &sl, NULL), STATUS_SUCCESS);
    cfilter(&a, FWP_ACTION_CALLOUT_INSPECTION, 1, silent(1));
    cfilter(&b, FWP_ACTION_CALLOUT_INSPECTION, 1, silent(2));
    run();
    ORDER(2, 1);
}

/* ---- A2: inside one sublayer ------------------------------------------------------------ */

static void test_A2_first_decision_ends_sublayer(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 30, silent(1));
    cfilter(&s, FWP_ACTION_CALLOUT_TERMINATING, 20, answers(2, FWP_ACTION_PERMIT, false));
    cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 10, silent(3));
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
    ORDER(1, 2);
}

static void test_A2_first_block_ends_sublayer(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    cfilter(&s, FWP_ACTION_CALLOUT_TERMINATING, 20, answers(1, FWP_ACTION_BLOCK, true));
    cfilter(&s, FWP_ACTION_CALLOUT_TERMINATING, 10, answers(2, FWP_ACTION_PERMIT, false));
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
    ORDER(1);
}

static void test_A2_static_decision_ends_sublayer(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    sfilter(&s, FWP_ACTION_PERMIT, 30, 0);
    cfilter(&s, FWP_ACTION_CALLOUT_TERMINATING, 20, answers(1, FWP_ACTION_BLOCK, true));
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
    ORDER();
}

static void test_A2_continue_goes_on(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    sfilter(&s, FWP_ACTION_CONTINUE, 40, 0);
    cfilter(&s, FWP_ACTION_CALLOUT_UNKNOWN, 30, answers(1, FWP_ACTION_CONTINUE, false));
    cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 25, answers(2, FWP_ACTION_PERMIT, false));
    cfilter(&s, FWP_ACTION_CALLOUT_TERMINATING, 20, answers(3, FWP_ACTION_BLOCK, true));
    cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 10, silent(4));
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
    ORDER(1, 2, 3);
}

/* ---- A3: every sublayer is evaluated ---------------------------------------------------- */

static void test_A3_lower_sublayers_evaluated_after_static_block(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), mid = sublayer(2, 0x200), lo = sublayer(3, 0x100);
    sfilter(&hi, FWP_ACTION_BLOCK, 1, 0);
    cfilter(&mid, FWP_ACTION_CALLOUT_INSPECTION, 1, silent(1));
    cfilter(&lo, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(2, FWP_ACTION_PERMIT, false));
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
    ORDER(1, 2);
}

static void test_A3_lower_sublayers_evaluated_after_callout_block(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), lo = sublayer(2, 0x100);
    cfilter(&hi, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(1, FWP_ACTION_BLOCK, true));
    cfilter(&lo, FWP_ACTION_CALLOUT_INSPECTION, 1, silent(2));
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
    ORDER(1, 2);
}

/* ---- A4: soft and hard decisions ---------------------------------------------------------- */

static void test_A4_static_permit_is_soft(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), lo = sublayer(2, 0x100);
    sfilter(&hi, FWP_ACTION_PERMIT, 1, 0);
    sfilter(&lo, FWP_ACTION_BLOCK, 1, 0);
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
}

static void test_A4_static_permit_leaves_right_to_lower_callouts(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), lo = sublayer(2, 0x100);
    sfilter(&hi, FWP_ACTION_PERMIT, 1, 0);
    cfilter(&lo, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(1, FWP_ACTION_BLOCK, true));
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
    ORDER(1);
    assert_int_equal(g_calls[0].rights, FWPS_RIGHT_ACTION_WRITE);
}

static void test_A4_static_block_is_hard(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), mid = sublayer(2, 0x200), lo = sublayer(3, 0x100);
    sfilter(&hi, FWP_ACTION_BLOCK, 1, 0);
    cfilter(&mid, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(1, FWP_ACTION_PERMIT, false));
    sfilter(&lo, FWP_ACTION_PERMIT, 1, 0);
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
    ORDER(1);
    /* Lower callouts see the decision is not theirs to change. */
    assert_int_equal(g_calls[0].rights & FWPS_RIGHT_ACTION_WRITE, 0);
}

static void test_A4_clear_action_right_makes_static_permit_hard(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), mid = sublayer(2, 0x200), lo = sublayer(3, 0x100);
    sfilter(&hi, FWP_ACTION_PERMIT, 1, FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT);
    cfilter(&mid, FWP_ACTION_CALLOUT_INSPECTION, 1, silent(1));
    sfilter(&lo, FWP_ACTION_BLOCK, 1, 0);
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
    ORDER(1);
    assert_int_equal(g_calls[0].rights & FWPS_RIGHT_ACTION_WRITE, 0);
}

static void test_A4_callout_block_keeping_right_is_soft(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), mid = sublayer(2, 0x200), lo = sublayer(3, 0x100);
    cfilter(&hi, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(1, FWP_ACTION_BLOCK, false));
    cfilter(&mid, FWP_ACTION_CALLOUT_INSPECTION, 1, silent(2));
    sfilter(&lo, FWP_ACTION_PERMIT, 1, 0);
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
    ORDER(1, 2);
    assert_int_equal(g_calls[1].rights, FWPS_RIGHT_ACTION_WRITE);
}

static void test_A4_callout_block_clearing_right_is_hard(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), mid = sublayer(2, 0x200), lo = sublayer(3, 0x100);
    cfilter(&hi, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(1, FWP_ACTION_BLOCK, true));
    cfilter(&mid, FWP_ACTION_CALLOUT_INSPECTION, 1, silent(2));
    sfilter(&lo, FWP_ACTION_PERMIT, 1, 0);
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
    ORDER(1, 2);
    assert_int_equal(g_calls[1].rights & FWPS_RIGHT_ACTION_WRITE, 0);
}

static void test_A4_callout_permit_is_soft(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), lo = sublayer(2, 0x100);
    cfilter(&hi, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(1, FWP_ACTION_PERMIT, false));
    sfilter(&lo, FWP_ACTION_BLOCK, 1, 0);
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
}

static void test_A4_clear_action_right_makes_callout_permit_hard(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), lo = sublayer(2, 0x100);
    /* The callout forgets to clear the right; the filter flag still counts. */
    cfilter_flags(&hi, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(1, FWP_ACTION_PERMIT, false),
                  FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT);
    sfilter(&lo, FWP_ACTION_BLOCK, 1, 0);
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
}

/* ---- A5: veto ---------------------------------------------------------------------------- */

static void test_A5_callout_block_vetoes_hard_static_permit(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), lo = sublayer(2, 0x100);
    sfilter(&hi, FWP_ACTION_PERMIT, 1, FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT);
    cfilter(&lo, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(1, FWP_ACTION_BLOCK, true));
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
    ORDER(1);
    assert_int_equal(g_calls[0].rights & FWPS_RIGHT_ACTION_WRITE, 0);
}

static void test_A5_callout_block_vetoes_hard_callout_permit(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), lo = sublayer(2, 0x100);
    cfilter(&hi, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(1, FWP_ACTION_PERMIT, true));
    cfilter(&lo, FWP_ACTION_CALLOUT_UNKNOWN, 1, answers(2, FWP_ACTION_BLOCK, false));
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
    ORDER(1, 2);
    assert_int_equal(g_calls[1].rights & FWPS_RIGHT_ACTION_WRITE, 0);
}

static void test_A5_static_block_cannot_override_hard_permit(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), lo = sublayer(2, 0x100);
    sfilter(&hi, FWP_ACTION_PERMIT, 1, FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT);
    sfilter(&lo, FWP_ACTION_BLOCK, 1, 0);
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
}

static void test_A5_callout_permit_cannot_override_hard_block(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), lo = sublayer(2, 0x100);
    cfilter(&hi, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(1, FWP_ACTION_BLOCK, true));
    cfilter(&lo, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(2, FWP_ACTION_PERMIT, true));
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
    ORDER(1, 2);
}

/* ---- A6: the engine reads the returned rights -------------------------------------------- */

static void test_A6_engine_reads_returned_rights(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), mid = sublayer(2, 0x200), lo = sublayer(3, 0x100);
    /* PERMIT with the right cleared by the callout itself: hard. */
    cfilter(&hi, FWP_ACTION_CALLOUT_TERMINATING, 1, answers(1, FWP_ACTION_PERMIT, true));
    cfilter(&mid, FWP_ACTION_CALLOUT_INSPECTION, 1, silent(2));
    sfilter(&lo, FWP_ACTION_BLOCK, 1, 0);
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
    ORDER(1, 2);
    assert_int_equal(g_calls[0].rights, FWPS_RIGHT_ACTION_WRITE);
    assert_int_equal(g_calls[1].rights & FWPS_RIGHT_ACTION_WRITE, 0);
}

/* ---- A7: weights ------------------------------------------------------------------------------ */

/* A callout filter with an explicit FWP_VALUE0 weight. */
static NTSTATUS weighted_filter(const GUID *sl, const FWP_VALUE0 *weight, uint64_t ctx,
                                const FWPM_FILTER_CONDITION0 *conds, uint32_t n)
{
    FWPM_FILTER0 f;
    memset(&f, 0, sizeof(f));
    f.displayData.name = g_name;
    f.layerKey = *ALE4;
    f.subLayerKey = *sl;
    f.weight = *weight;
    f.action.type = FWP_ACTION_CALLOUT_INSPECTION;
    f.action.calloutKey = g_callout_key;
    f.rawContext = ctx;
    f.numFilterConditions = n;
    f.filterCondition = (FWPM_FILTER_CONDITION0 *)conds;
    return FwpmFilterAdd0(h_session, &f, NULL, NULL);
}

static FWP_VALUE0 uint8_weight(uint8_t k)
{
    FWP_VALUE0 w;
    memset(&w, 0, sizeof(w));
    w.type = FWP_UINT8;
    w.uint8 = k;
    return w;
}

static void test_A7_uint8_weight_range_above_auto_weights(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    FWPM_FILTER_CONDITION0 c3[3] = {u16_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 80),
                                    u16_cond(&FWPM_CONDITION_IP_LOCAL_PORT, 1000),
                                    proto_cond(6)};
    FWP_VALUE0 empty;
    memset(&empty, 0, sizeof(empty));
    FWP_VALUE0 k1 = uint8_weight(1), k2 = uint8_weight(2);
    assert_int_equal(weighted_filter(&s, &k1, silent(1), NULL, 0), STATUS_SUCCESS);
    assert_int_equal(weighted_filter(&s, &empty, silent(2), c3, 3), STATUS_SUCCESS);
    assert_int_equal(weighted_filter(&s, &k2, silent(3), NULL, 0), STATUS_SUCCESS);
    assert_int_equal(weighted_filter(&s, &k1, silent(4), c3, 2), STATUS_SUCCESS);
    run();
    /* Range 2, then range 1 (more specific first), then the auto weight. */
    ORDER(3, 4, 1, 2);
    assert_int_equal(g_calls[0].weight_type, FWP_UINT64);
    assert_int_equal(g_calls[0].weight >> FWPM_AUTO_WEIGHT_BITS, 2);
    assert_int_equal(g_calls[1].weight >> FWPM_AUTO_WEIGHT_BITS, 1);
    assert_int_equal(g_calls[2].weight >> FWPM_AUTO_WEIGHT_BITS, 1);
    assert_int_equal(g_calls[3].weight >> FWPM_AUTO_WEIGHT_BITS, 0);
}

static void test_A7_uint8_weight_above_15_invalid(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    FWP_VALUE0 w = uint8_weight(16);
    assert_int_equal(weighted_filter(&s, &w, silent(1), NULL, 0), STATUS_FWP_INVALID_WEIGHT);
    w = uint8_weight(0xff);
    assert_int_equal(weighted_filter(&s, &w, silent(1), NULL, 0), STATUS_FWP_INVALID_WEIGHT);
    w = uint8_weight(15);
    assert_int_equal(weighted_filter(&s, &w, silent(1), NULL, 0), STATUS_SUCCESS);
    run();
    ORDER(1);
    assert_int_equal(g_calls[0].weight >> FWPM_AUTO_WEIGHT_BITS, 15);
}

static void test_A7_other_weight_types_invalid(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    static const uint32_t types[] = {FWP_UINT16, FWP_UINT32, FWP_INT8,  FWP_INT32,
                                     FWP_FLOAT,  FWP_BYTE_ARRAY16_TYPE, 0x5555};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        FWP_VALUE0 w;
        memset(&w, 0, sizeof(w));
        w.type = types[i];
        if (types[i] != FWP_BYTE_ARRAY16_TYPE)
            w.uint32 = 1;
        assert_int_equal(weighted_filter(&s, &w, silent(1), NULL, 0), STATUS_FWP_INVALID_WEIGHT);
    }
    run();
    ORDER();
}

static void test_A7_uint64_weight_used_verbatim(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 5, silent(1));
    cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, UINT64_MAX, silent(2));
    cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 1000, silent(3));
    run();
    ORDER(2, 3, 1);
    assert_int_equal(g_calls[0].weight, UINT64_MAX);
    assert_int_equal(g_calls[1].weight, 1000);
    assert_int_equal(g_calls[2].weight, 5);
}

static void test_A7_auto_weight_more_specific_first(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    FWP_VALUE0 empty;
    memset(&empty, 0, sizeof(empty));
    FWPM_FILTER_CONDITION0 c[2] = {u16_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 80), proto_cond(6)};
    /* Least specific first, so filterId order is the reverse of the expected one. */
    assert_int_equal(weighted_filter(&s, &empty, silent(1), NULL, 0), STATUS_SUCCESS);
    assert_int_equal(weighted_filter(&s, &empty, silent(2), c, 1), STATUS_SUCCESS);
    assert_int_equal(weighted_filter(&s, &empty, silent(3), c, 2), STATUS_SUCCESS);
    run();
    ORDER(3, 2, 1);
    assert_true(g_calls[0].weight > g_calls[1].weight);
    assert_true(g_calls[1].weight > g_calls[2].weight);
    assert_true(g_calls[0].weight < (UINT64_C(1) << FWPM_AUTO_WEIGHT_BITS));
}

/* ---- A8: ties --------------------------------------------------------------------------------- */

static void test_A8_equal_weights_lower_filter_id_first(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    UINT64 a = cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 7, silent(1));
    cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 9, silent(2));
    UINT64 b = cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 7, silent(3));
    UINT64 c = cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 7, silent(4));
    assert_true(a < b && b < c);
    run();
    ORDER(2, 1, 3, 4);
    assert_true(g_calls[1].filter_id < g_calls[2].filter_id);
    assert_true(g_calls[2].filter_id < g_calls[3].filter_id);
}

static void test_A8_equal_weights_survive_delete_and_re_add(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    UINT64 a = cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 7, silent(1));
    cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 7, silent(2));
    /* Re-adding the first filter gives it a higher id: it now comes last. */
    assert_int_equal(FwpmFilterDeleteById0(h_session, a), STATUS_SUCCESS);
    cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 7, silent(1));
    run();
    ORDER(2, 1);
}

/* ---- A9: what a callout's answer counts as ---------------------------------------------------- */

enum expect { DECIDES_PERMIT, DECIDES_BLOCK, NO_DECISION };

struct a9_case {
    uint32_t answer;
    bool write;
    enum expect expect;
};

/* For each case: a filter of `type` whose callout answers case.answer,
 * above an inspection filter (tag 99) of the same sublayer that shows
 * whether the sublayer went on. */
static void run_a9(uint32_t type, const struct a9_case *cases, size_t n)
{
    GUID s = sublayer(1, 0x100);
    cfilter(&s, FWP_ACTION_CALLOUT_INSPECTION, 1, silent(99));
    for (size_t i = 0; i < n; i++) {
        uint64_t ctx = cases[i].write ? answers(1, cases[i].answer, false) : silent(1);
        UINT64 id = cfilter(&s, type, 100, ctx);
        enum owfp_flow_verdict v = run();
        bool ok = g_ncalls >= 1 && g_calls[0].tag == 1;
        switch (cases[i].expect) {
        case DECIDES_PERMIT:
            ok = ok && v == OWFP_FLOW_PERMITTED && g_ncalls == 1;
            break;
        case DECIDES_BLOCK:
            ok = ok && v == OWFP_FLOW_BLOCKED && g_ncalls == 1;
            break;
        case NO_DECISION:
            ok = ok && v == OWFP_FLOW_PERMITTED && g_ncalls == 2 && g_calls[1].tag == 99;
            break;
        }
        if (!ok)
            fail_msg("filter type 0x%x, answer 0x%x (written: %d): verdict %d after %u calls, "
                     "expected %d",
                     type, cases[i].answer, cases[i].write, (int)v, g_ncalls,
                     (int)cases[i].expect);
        assert_int_equal(FwpmFilterDeleteById0(h_session, id), STATUS_SUCCESS);
    }
}

static void test_A9_terminating_answers(void **state)
{
    (void)state;
    static const struct a9_case cases[] = {
        {FWP_ACTION_PERMIT, true, DECIDES_PERMIT},
        {FWP_ACTION_BLOCK, true, DECIDES_BLOCK},
        {FWP_ACTION_CONTINUE, true, DECIDES_BLOCK},
        {FWP_ACTION_NONE, true, DECIDES_BLOCK},
        {FWP_ACTION_NONE_NO_MATCH, true, DECIDES_BLOCK},
        {0, true, DECIDES_BLOCK},
        {0, false, DECIDES_BLOCK}, /* never wrote actionType */
        {FWP_ACTION_CALLOUT_TERMINATING, true, DECIDES_BLOCK},
        {0xdeadbeef, true, DECIDES_BLOCK},
    };
    run_a9(FWP_ACTION_CALLOUT_TERMINATING, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_A9_inspection_answers_never_decide(void **state)
{
    (void)state;
    static const struct a9_case cases[] = {
        {FWP_ACTION_PERMIT, true, NO_DECISION}, /* msnmntr does this */
        {FWP_ACTION_BLOCK, true, NO_DECISION},
        {FWP_ACTION_CONTINUE, true, NO_DECISION},
        {FWP_ACTION_NONE, true, NO_DECISION},
        {0, true, NO_DECISION},
        {0, false, NO_DECISION},
        {0xdeadbeef, true, NO_DECISION},
    };
    run_a9(FWP_ACTION_CALLOUT_INSPECTION, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_A9_unknown_answers(void **state)
{
    (void)state;
    static const struct a9_case cases[] = {
        {FWP_ACTION_PERMIT, true, DECIDES_PERMIT},
        {FWP_ACTION_BLOCK, true, DECIDES_BLOCK},
        {FWP_ACTION_CONTINUE, true, NO_DECISION},
        /* Q10: anything else continues. */
        {FWP_ACTION_NONE, true, NO_DECISION},
        {FWP_ACTION_NONE_NO_MATCH, true, NO_DECISION},
        {0, true, NO_DECISION},
        {0, false, NO_DECISION},
        {0xdeadbeef, true, NO_DECISION},
    };
    run_a9(FWP_ACTION_CALLOUT_UNKNOWN, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_A9_inspection_block_cannot_veto(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), lo = sublayer(2, 0x100);
    sfilter(&hi, FWP_ACTION_PERMIT, 1, FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT);
    cfilter(&lo, FWP_ACTION_CALLOUT_INSPECTION, 1, answers(1, FWP_ACTION_BLOCK, true));
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
    ORDER(1);
}

static void test_A9_inspection_block_does_not_override_soft_permit(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), lo = sublayer(2, 0x100);
    sfilter(&hi, FWP_ACTION_PERMIT, 1, 0);
    cfilter(&lo, FWP_ACTION_CALLOUT_INSPECTION, 1, answers(1, FWP_ACTION_BLOCK, true));
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
    ORDER(1);
}

/* ---- A10: absorb ------------------------------------------------------------------------------- */

static void test_A10_absorb_with_block_blocks_flow(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    uint64_t ctx = answers(1, FWP_ACTION_BLOCK, true);
    g_beh[ctx].out_flags = FWPS_CLASSIFY_OUT_FLAG_ABSORB;
    cfilter(&s, FWP_ACTION_CALLOUT_TERMINATING, 1, ctx);
    assert_int_equal(run(), OWFP_FLOW_BLOCKED);
    ORDER(1);
}

static void test_A10_absorb_without_block_changes_nothing(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    uint64_t ctx = answers(1, FWP_ACTION_PERMIT, false);
    g_beh[ctx].out_flags = FWPS_CLASSIFY_OUT_FLAG_ABSORB;
    cfilter(&s, FWP_ACTION_CALLOUT_TERMINATING, 1, ctx);
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
    ORDER(1);
}

/* ---- A11: nothing decides ------------------------------------------------------------------------ */

static void test_A11_no_filters_permits(void **state)
{
    (void)state;
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
    struct owfp_flow_params p = h_params6(1000, 80, OWFP_INBOUND);
    enum owfp_flow_verdict v;
    owfp_flow_close(h_open(&p, &v));
    assert_int_equal(v, OWFP_FLOW_PERMITTED);
    ORDER();
}

static void test_A11_only_non_matching_filters_permits(void **state)
{
    (void)state;
    GUID s = sublayer(1, 0x100);
    FWPM_FILTER_CONDITION0 c23 = u16_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 23);
    FWPM_FILTER_CONDITION0 udp = proto_cond(17);
    struct h_filter_spec block = {.layer = ALE4, .sublayer = &s, .action = FWP_ACTION_BLOCK,
                                  .conds = &c23, .nconds = 1};
    assert_int_equal(h_filter(&block, NULL), STATUS_SUCCESS);
    cfilter_c(&s, FWP_ACTION_CALLOUT_TERMINATING, 5, answers(1, FWP_ACTION_BLOCK, true), 0,
              &udp, 1);
    /* A filter of the other IP version's layer does not apply either. */
    struct h_filter_spec v6 = {.layer = ALE6, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&v6, NULL), STATUS_SUCCESS);
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
    ORDER();
}

static void test_A11_no_decision_permits(void **state)
{
    (void)state;
    GUID hi = sublayer(1, 0x300), lo = sublayer(2, 0x100);
    sfilter(&hi, FWP_ACTION_CONTINUE, 1, 0);
    cfilter(&hi, FWP_ACTION_CALLOUT_INSPECTION, 0, answers(1, FWP_ACTION_BLOCK, true));
    cfilter(&lo, FWP_ACTION_CALLOUT_UNKNOWN, 0, answers(2, FWP_ACTION_CONTINUE, false));
    assert_int_equal(run(), OWFP_FLOW_PERMITTED);
    ORDER(1, 2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, h_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_A1_sublayers_by_weight_then_filters_by_weight),
        T(test_A1_equal_sublayer_weights_lower_key_first),
        T(test_A2_first_decision_ends_sublayer),
        T(test_A2_first_block_ends_sublayer),
        T(test_A2_static_decision_ends_sublayer),
        T(test_A2_continue_goes_on),
        T(test_A3_lower_sublayers_evaluated_after_static_block),
        T(test_A3_lower_sublayers_evaluated_after_callout_block),
        T(test_A4_static_permit_is_soft),
        T(test_A4_static_permit_leaves_right_to_lower_callouts),
        T(test_A4_static_block_is_hard),
        T(test_A4_clear_action_right_makes_static_permit_hard),
        T(test_A4_callout_block_keeping_right_is_soft),
        T(test_A4_callout_block_clearing_right_is_hard),
        T(test_A4_callout_permit_is_soft),
        T(test_A4_clear_action_right_makes_callout_permit_hard),
        T(test_A5_callout_block_vetoes_hard_static_permit),
        T(test_A5_callout_block_vetoes_hard_callout_permit),
        T(test_A5_static_block_cannot_override_hard_permit),
        T(test_A5_callout_permit_cannot_override_hard_block),
        T(test_A6_engine_reads_returned_rights),
        T(test_A7_uint8_weight_range_above_auto_weights),
        T(test_A7_uint8_weight_above_15_invalid),
        T(test_A7_other_weight_types_invalid),
        T(test_A7_uint64_weight_used_verbatim),
        T(test_A7_auto_weight_more_specific_first),
        T(test_A8_equal_weights_lower_filter_id_first),
        T(test_A8_equal_weights_survive_delete_and_re_add),
        T(test_A9_terminating_answers),
        T(test_A9_inspection_answers_never_decide),
        T(test_A9_unknown_answers),
        T(test_A9_inspection_block_cannot_veto),
        T(test_A9_inspection_block_does_not_override_soft_permit),
        T(test_A10_absorb_with_block_blocks_flow),
        T(test_A10_absorb_without_block_changes_nothing),
        T(test_A11_no_filters_permits),
        T(test_A11_only_non_matching_filters_permits),
        T(test_A11_no_decision_permits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
