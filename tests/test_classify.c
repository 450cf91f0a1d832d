/*
 * Spec §9 (C1-C5): the generic classify contract at ALE_FLOW_ESTABLISHED —
 * when a callout is called, what it is given, the classifyOut it starts
 * from, what it may not call, and what a BLOCK there means.
 */
#include "harness.h"

#include <stdbool.h>
#include <string.h>

static const GUID *const ALE4 = &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
static const GUID *const ALE6 = &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6;

/* ---- what a classify showed ------------------------------------------------------ */

#define MAXV FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_MAX

struct seen_value {
    uint32_t type;
    uint64_t scalar;      /* UINT8/16/32, *UINT64 */
    uint8_t bytes16[16];  /* BYTE_ARRAY16 */
};

struct seen {
    unsigned calls;
    UINT16 layer_id;
    UINT32 value_count;
    struct seen_value v[MAXV];
    bool layer_data_null;
    bool meta_present;
    bool classify_context_null;
    unsigned version;
    UINT64 filter_id;
    UINT64 filter_context;
    UINT64 flow_context;
    FWPS_CLASSIFY_OUT0 out_on_entry;
};

static struct seen g_seen;

static void record(unsigned version, const FWPS_INCOMING_VALUES0 *in,
                   const FWPS_INCOMING_METADATA_VALUES0 *meta, const void *layerData,
                   const void *classifyContext, const FWPS_FILTER0 *filter, UINT64 flowContext,
                   const FWPS_CLASSIFY_OUT0 *out)
{
    g_seen.calls++;
    g_seen.version = version;
    g_seen.layer_id = in->layerId;
    g_seen.value_count = in->valueCount;
    for (UINT32 i = 0; i < in->valueCount && i < MAXV; i++) {
        const FWP_VALUE0 *v = &in->incomingValue[i].value;
        struct seen_value *s = &g_seen.v[i];
        memset(s, 0, sizeof(*s));
        s->type = v->type;
        switch (v->type) {
        case FWP_UINT8:
            s->scalar = v->uint8;
            break;
        case FWP_UINT16:
            s->scalar = v->uint16;
            break;
        case FWP_UINT32:
            s->scalar = v->uint32;
            break;
        case FWP_UINT64:
            s->scalar = v->uint64 ? *v->uint64 : 0;
            break;
        case FWP_BYTE_ARRAY16_TYPE:
            if (v->byteArray16)
                memcpy(s->bytes16, v->byteArray16->byteArray16, 16);
            break;
        default:
            break;
        }
    }
    g_seen.layer_data_null = layerData == NULL;
    g_seen.meta_present = meta != NULL;
    g_seen.classify_context_null = classifyContext == NULL;
    g_seen.filter_id = filter->filterId;
    g_seen.filter_context = filter->context;
    g_seen.flow_context = flowContext;
    g_seen.out_on_entry = *out;
}

static void NTAPI classify0(const FWPS_INCOMING_VALUES0 *inFixedValues,
                            const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                            const FWPS_FILTER0 *filter, UINT64 flowContext,
                            FWPS_CLASSIFY_OUT0 *classifyOut)
{
    record(0, inFixedValues, inMetaValues, layerData, NULL, filter, flowContext, classifyOut);
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

static void NTAPI classify1(const FWPS_INCOMING_VALUES0 *inFixedValues,
                            const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                            const void *classifyContext, const FWPS_FILTER1 *filter,
                            UINT64 flowContext, FWPS_CLASSIFY_OUT0 *classifyOut)
{
    record(1, inFixedValues, inMetaValues, layerData, classifyContext,
           (const FWPS_FILTER0 *)filter, flowContext, classifyOut);
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

static void NTAPI classify2(const FWPS_INCOMING_VALUES0 *inFixedValues,
                            const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                            const void *classifyContext, const FWPS_FILTER2 *filter,
                            UINT64 flowContext, FWPS_CLASSIFY_OUT0 *classifyOut)
{
    record(2, inFixedValues, inMetaValues, layerData, classifyContext,
           (const FWPS_FILTER0 *)filter, flowContext, classifyOut);
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

static void NTAPI classify3(const FWPS_INCOMING_VALUES0 *inFixedValues,
                            const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues, void *layerData,
                            const void *classifyContext, const FWPS_FILTER3 *filter,
                            UINT64 flowContext, FWPS_CLASSIFY_OUT0 *classifyOut)
{
    record(3, inFixedValues, inMetaValues, layerData, classifyContext,
           (const FWPS_FILTER0 *)filter, flowContext, classifyOut);
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

/* Counts calls per filter context; answers what the context says. */
static unsigned g_count[8];
static void NTAPI count_classify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                 const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                 void *layerData, const FWPS_FILTER0 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(flowContext);
    if (filter->context < 8)
        g_count[filter->context]++;
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

static GUID g_key0, g_key0_6;

static int setup(void **state)
{
    memset(&g_seen, 0, sizeof(g_seen));
    memset(g_count, 0, sizeof(g_count));
    if (h_setup(state) != 0)
        return -1;
    g_key0 = h_guid(0xc000);
    g_key0_6 = h_guid(0xc006);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

static void callout0(const GUID *key, const GUID *layer, FWPS_CALLOUT_CLASSIFY_FN0 fn)
{
    assert_int_equal(h_register0(key, 0, fn, h_notify_ok, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(h_callout_object(key, layer), STATUS_SUCCESS);
}

static UINT64 filter_for(const GUID *layer, const GUID *key, uint32_t type, uint64_t ctx,
                         const FWPM_FILTER_CONDITION0 *conds, uint32_t n)
{
    struct h_filter_spec spec = {.layer = layer, .action = type, .callout = key,
                                 .raw_context = ctx, .conds = conds, .nconds = n};
    UINT64 id = 0;
    assert_int_equal(h_filter(&spec, &id), STATUS_SUCCESS);
    return id;
}

static enum owfp_flow_verdict open_close(const struct owfp_flow_params *p)
{
    enum owfp_flow_verdict v;
    owfp_flow_close(h_open(p, &v));
    return v;
}

/* Calls the counting callout's filter 1 made for a flow with params `p`. */
static unsigned calls_for(const struct owfp_flow_params *p)
{
    unsigned before = g_count[1];
    open_close(p);
    return g_count[1] - before;
}

static FWPM_FILTER_CONDITION0 cond(const GUID *field, uint32_t match)
{
    FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldKey = *field;
    c.matchType = match;
    return c;
}

static FWPM_FILTER_CONDITION0 u8_eq(const GUID *field, uint8_t v)
{
    FWPM_FILTER_CONDITION0 c = cond(field, FWP_MATCH_EQUAL);
    c.conditionValue.type = FWP_UINT8;
    c.conditionValue.uint8 = v;
    return c;
}

static FWPM_FILTER_CONDITION0 u16_eq(const GUID *field, uint16_t v)
{
    FWPM_FILTER_CONDITION0 c = cond(field, FWP_MATCH_EQUAL);
    c.conditionValue.type = FWP_UINT16;
    c.conditionValue.uint16 = v;
    return c;
}

static FWPM_FILTER_CONDITION0 u32_cond(const GUID *field, uint32_t match, uint32_t v)
{
    FWPM_FILTER_CONDITION0 c = cond(field, match);
    c.conditionValue.type = FWP_UINT32;
    c.conditionValue.uint32 = v;
    return c;
}

/* One counting filter (context 1) at `layer` with these conditions. */
static void counting_filter(const GUID *layer, const FWPM_FILTER_CONDITION0 *conds, uint32_t n)
{
    const GUID *key = layer == ALE4 ? &g_key0 : &g_key0_6;
    callout0(key, layer, count_classify);
    filter_for(layer, key, FWP_ACTION_CALLOUT_INSPECTION, 1, conds, n);
}

/* ---- C1: when the callout is called ------------------------------------------------------ */

static void test_C1_local_port_equal(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 c = u16_eq(&FWPM_CONDITION_IP_LOCAL_PORT, 1000);
    counting_filter(ALE4, &c, 1);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(calls_for(&p), 1);
    p.local_port = 1001;
    assert_int_equal(calls_for(&p), 0);
    p = h_params4(80, 1000, OWFP_OUTBOUND); /* the remote port does not count */
    assert_int_equal(calls_for(&p), 0);
}

static void test_C1_remote_port_range_inclusive(void **state)
{
    (void)state;
    FWP_RANGE0 r;
    memset(&r, 0, sizeof(r));
    r.valueLow.type = FWP_UINT16;
    r.valueLow.uint16 = 1000;
    r.valueHigh.type = FWP_UINT16;
    r.valueHigh.uint16 = 2000;
    FWPM_FILTER_CONDITION0 c = cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_RANGE);
    c.conditionValue.type = FWP_RANGE_TYPE;
    c.conditionValue.rangeValue = &r;
    counting_filter(ALE4, &c, 1);
    static const struct {
        uint16_t port;
        unsigned calls;
    } cases[] = {{999, 0}, {1000, 1}, {1500, 1}, {2000, 1}, {2001, 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct owfp_flow_params p = h_params4(50000, cases[i].port, OWFP_OUTBOUND);
        assert_int_equal(calls_for(&p), cases[i].calls);
    }
}

static void test_C1_v4_addresses_host_order_and_mask(void **state)
{
    (void)state;
    FWP_V4_ADDR_AND_MASK m = {0x0a000000u, 0xff000000u}; /* 10.0.0.0/8, host order */
    FWPM_FILTER_CONDITION0 c[2];
    c[0] = cond(&FWPM_CONDITION_IP_REMOTE_ADDRESS, FWP_MATCH_EQUAL);
    c[0].conditionValue.type = FWP_V4_ADDR_MASK;
    c[0].conditionValue.v4AddrMask = &m;
    c[1] = u32_cond(&FWPM_CONDITION_IP_LOCAL_ADDRESS, FWP_MATCH_EQUAL, 0x0a000001u); /* 10.0.0.1 */
    counting_filter(ALE4, c, 2);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(calls_for(&p), 1);
    p.remote_addr[3] = 200; /* 10.0.0.200: still in 10/8 */
    assert_int_equal(calls_for(&p), 1);
    p.remote_addr[0] = 11; /* 11.0.0.200 */
    assert_int_equal(calls_for(&p), 0);
    p = h_params4(1000, 80, OWFP_OUTBOUND);
    p.local_addr[3] = 3; /* 10.0.0.3 */
    assert_int_equal(calls_for(&p), 0);
}

static void test_C1_v4_address_network_order_does_not_match(void **state)
{
    (void)state;
    /* 10.0.0.1 byte-swapped */
    FWPM_FILTER_CONDITION0 c =
        u32_cond(&FWPM_CONDITION_IP_LOCAL_ADDRESS, FWP_MATCH_EQUAL, 0x0100000au);
    counting_filter(ALE4, &c, 1);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(calls_for(&p), 0);
}

static void test_C1_v6_addresses_and_prefix(void **state)
{
    (void)state;
    FWP_V6_ADDR_AND_MASK m;
    memset(&m, 0, sizeof(m));
    m.addr[0] = 0x20;
    m.addr[1] = 0x01;
    m.addr[2] = 0x0d;
    m.addr[3] = 0xb8;
    m.prefixLength = 32;
    FWP_BYTE_ARRAY16 local = {{0x20, 0x01, 0x0d, 0xb8, [15] = 1}};
    FWPM_FILTER_CONDITION0 c[2];
    c[0] = cond(&FWPM_CONDITION_IP_REMOTE_ADDRESS, FWP_MATCH_EQUAL);
    c[0].conditionValue.type = FWP_V6_ADDR_MASK;
    c[0].conditionValue.v6AddrMask = &m;
    c[1] = cond(&FWPM_CONDITION_IP_LOCAL_ADDRESS, FWP_MATCH_EQUAL);
    c[1].conditionValue.type = FWP_BYTE_ARRAY16_TYPE;
    c[1].conditionValue.byteArray16 = &local;
    counting_filter(ALE6, c, 2);
    struct owfp_flow_params p = h_params6(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(calls_for(&p), 1);
    p.remote_addr[4] = 0xff; /* 2001:db8:ff00::2, still in the /32 */
    assert_int_equal(calls_for(&p), 1);
    p.remote_addr[3] = 0xb9; /* 2001:db9:... */
    assert_int_equal(calls_for(&p), 0);
    p = h_params6(1000, 80, OWFP_OUTBOUND);
    p.local_addr[15] = 9;
    assert_int_equal(calls_for(&p), 0);
    /* An IPv4 flow never reaches the V6 layer's filter. */
    p = h_params4(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(calls_for(&p), 0);
}

static void test_C1_protocol(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 c = u8_eq(&FWPM_CONDITION_IP_PROTOCOL, 6);
    counting_filter(ALE4, &c, 1);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(calls_for(&p), 1);
    p.protocol = 17;
    assert_int_equal(calls_for(&p), 0);
}

static void test_C1_direction(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 c =
        u32_cond(&FWPM_CONDITION_DIRECTION, FWP_MATCH_EQUAL, FWP_DIRECTION_INBOUND);
    counting_filter(ALE4, &c, 1);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_INBOUND);
    assert_int_equal(calls_for(&p), 1);
    p.direction = OWFP_OUTBOUND;
    assert_int_equal(calls_for(&p), 0);
}

static void test_C1_flags(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 c =
        u32_cond(&FWPM_CONDITION_FLAGS, FWP_MATCH_FLAGS_ALL_SET, FWP_CONDITION_FLAG_IS_LOOPBACK);
    counting_filter(ALE4, &c, 1);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    p.condition_flags = FWP_CONDITION_FLAG_IS_LOOPBACK | FWP_CONDITION_FLAG_IS_IPSEC_SECURED;
    assert_int_equal(calls_for(&p), 1);
    p.condition_flags = FWP_CONDITION_FLAG_IS_IPSEC_SECURED;
    assert_int_equal(calls_for(&p), 0);
    p.condition_flags = 0;
    assert_int_equal(calls_for(&p), 0);
}

static void test_C1_flags_none_set(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 c =
        u32_cond(&FWPM_CONDITION_FLAGS, FWP_MATCH_FLAGS_NONE_SET, FWP_CONDITION_FLAG_IS_LOOPBACK);
    counting_filter(ALE4, &c, 1);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(calls_for(&p), 1);
    p.condition_flags = FWP_CONDITION_FLAG_IS_LOOPBACK;
    assert_int_equal(calls_for(&p), 0);
}

static void test_C1_all_conditions_must_match(void **state)
{
    (void)state;
    FWP_V4_ADDR_AND_MASK m = {0x0a000000u, 0xffffff00u};
    FWP_RANGE0 r;
    memset(&r, 0, sizeof(r));
    r.valueLow.type = FWP_UINT16;
    r.valueLow.uint16 = 1000;
    r.valueHigh.type = FWP_UINT16;
    r.valueHigh.uint16 = 1999;
    FWPM_FILTER_CONDITION0 c[6];
    c[0] = u16_eq(&FWPM_CONDITION_IP_REMOTE_PORT, 443);
    c[1] = cond(&FWPM_CONDITION_IP_LOCAL_PORT, FWP_MATCH_RANGE);
    c[1].conditionValue.type = FWP_RANGE_TYPE;
    c[1].conditionValue.rangeValue = &r;
    c[2] = cond(&FWPM_CONDITION_IP_REMOTE_ADDRESS, FWP_MATCH_EQUAL);
    c[2].conditionValue.type = FWP_V4_ADDR_MASK;
    c[2].conditionValue.v4AddrMask = &m;
    c[3] = u8_eq(&FWPM_CONDITION_IP_PROTOCOL, 6);
    c[4] = u32_cond(&FWPM_CONDITION_DIRECTION, FWP_MATCH_EQUAL, FWP_DIRECTION_OUTBOUND);
    c[5] =
        u32_cond(&FWPM_CONDITION_FLAGS, FWP_MATCH_FLAGS_NONE_SET, FWP_CONDITION_FLAG_IS_LOOPBACK);
    counting_filter(ALE4, c, 6);

    const struct owfp_flow_params base = h_params4(1500, 443, OWFP_OUTBOUND);
    struct owfp_flow_params p = base;
    assert_int_equal(calls_for(&p), 1);
    p.remote_port = 444;
    assert_int_equal(calls_for(&p), 0);
    p = base;
    p.local_port = 2000;
    assert_int_equal(calls_for(&p), 0);
    p = base;
    p.remote_addr[2] = 1; /* 10.0.1.2 */
    assert_int_equal(calls_for(&p), 0);
    p = base;
    p.protocol = 17;
    assert_int_equal(calls_for(&p), 0);
    p = base;
    p.direction = OWFP_INBOUND;
    assert_int_equal(calls_for(&p), 0);
    p = base;
    p.condition_flags = FWP_CONDITION_FLAG_IS_LOOPBACK;
    assert_int_equal(calls_for(&p), 0);
    p = base;
    assert_int_equal(calls_for(&p), 1);
}

static void test_C1_v6_layer_ports_and_protocol(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 c[3];
    c[0] = u16_eq(&FWPM_CONDITION_IP_REMOTE_PORT, 80);
    c[1] = u16_eq(&FWPM_CONDITION_IP_LOCAL_PORT, 1000);
    c[2] = u8_eq(&FWPM_CONDITION_IP_PROTOCOL, 6);
    counting_filter(ALE6, c, 3);
    struct owfp_flow_params p = h_params6(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(calls_for(&p), 1);
    p.remote_port = 81;
    assert_int_equal(calls_for(&p), 0);
    p = h_params6(1000, 80, OWFP_OUTBOUND);
    p.protocol = 17;
    assert_int_equal(calls_for(&p), 0);
}

/* ---- C2: the arguments ------------------------------------------------------------------ */

static void test_C2_fixed_values_v4(void **state)
{
    (void)state;
    callout0(&g_key0, ALE4, classify0);
    filter_for(ALE4, &g_key0, FWP_ACTION_CALLOUT_INSPECTION, 0, NULL, 0);
    struct owfp_flow_params p = h_params4(1234, 443, OWFP_OUTBOUND);
    p.condition_flags = FWP_CONDITION_FLAG_IS_LOOPBACK;
    p.compartment_id = 1;
    open_close(&p);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.layer_id, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4);
    assert_int_equal(g_seen.value_count, FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_MAX);
    assert_int_equal(g_seen.value_count, 24);
    const struct seen_value *v = g_seen.v;
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_ADDRESS].type, FWP_UINT32);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_ADDRESS].scalar, 0x0a000001u);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_ADDRESS].type, FWP_UINT32);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_ADDRESS].scalar,
                     0x0a000002u);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_PORT].type, FWP_UINT16);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_PORT].scalar, 1234);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT].type, FWP_UINT16);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT].scalar, 443);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_PROTOCOL].type, FWP_UINT8);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_PROTOCOL].scalar, 6);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_DIRECTION].type, FWP_UINT32);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_DIRECTION].scalar,
                     FWP_DIRECTION_OUTBOUND);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_FLAGS].type, FWP_UINT32);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_FLAGS].scalar,
                     FWP_CONDITION_FLAG_IS_LOOPBACK);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_ADDRESS_TYPE].type,
                     FWP_UINT8);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_ADDRESS_TYPE].scalar,
                     1 /* NlatUnicast */);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_COMPARTMENT_ID].type, FWP_UINT32);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_COMPARTMENT_ID].scalar, 1);
    /* Unknown security values are empty, not made up. */
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_ALE_USER_ID].type, FWP_EMPTY);
}

static void test_C2_fixed_values_v6(void **state)
{
    (void)state;
    callout0(&g_key0_6, ALE6, classify0);
    filter_for(ALE6, &g_key0_6, FWP_ACTION_CALLOUT_INSPECTION, 0, NULL, 0);
    struct owfp_flow_params p = h_params6(1234, 443, OWFP_INBOUND);
    open_close(&p);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.layer_id, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6);
    assert_int_equal(g_seen.value_count, FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_MAX);
    const struct seen_value *v = g_seen.v;
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_LOCAL_ADDRESS].type,
                     FWP_BYTE_ARRAY16_TYPE);
    assert_memory_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_LOCAL_ADDRESS].bytes16,
                        p.local_addr, 16);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_REMOTE_ADDRESS].type,
                     FWP_BYTE_ARRAY16_TYPE);
    assert_memory_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_REMOTE_ADDRESS].bytes16,
                        p.remote_addr, 16);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_LOCAL_PORT].type, FWP_UINT16);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_LOCAL_PORT].scalar, 1234);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_REMOTE_PORT].type, FWP_UINT16);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_REMOTE_PORT].scalar, 443);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_PROTOCOL].type, FWP_UINT8);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_PROTOCOL].scalar, 6);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_DIRECTION].type, FWP_UINT32);
    assert_int_equal(v[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_DIRECTION].scalar,
                     FWP_DIRECTION_INBOUND);
}

static void test_C2_layer_data_null_and_metadata_present(void **state)
{
    (void)state;
    callout0(&g_key0, ALE4, classify0);
    filter_for(ALE4, &g_key0, FWP_ACTION_CALLOUT_INSPECTION, 0, NULL, 0);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    open_close(&p);
    assert_int_equal(g_seen.calls, 1);
    assert_true(g_seen.layer_data_null);
    assert_true(g_seen.meta_present);
}

static void test_C2_classify_context_for_v1_and_later(void **state)
{
    (void)state;
    GUID k1 = h_guid(1), k2 = h_guid(2), k3 = h_guid(3);
    FWPS_CALLOUT1 c1;
    memset(&c1, 0, sizeof(c1));
    c1.calloutKey = k1;
    c1.classifyFn = classify1;
    FWPS_CALLOUT2 c2;
    memset(&c2, 0, sizeof(c2));
    c2.calloutKey = k2;
    c2.classifyFn = classify2;
    FWPS_CALLOUT3 c3;
    memset(&c3, 0, sizeof(c3));
    c3.calloutKey = k3;
    c3.classifyFn = classify3;
    assert_int_equal(FwpsCalloutRegister1(NULL, &c1, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutRegister2(NULL, &c2, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutRegister3(NULL, &c3, NULL), STATUS_SUCCESS);
    const GUID *keys[3] = {&k1, &k2, &k3};
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(h_callout_object(keys[i], ALE4), STATUS_SUCCESS);
        /* Each filter matches its own remote port. */
        FWPM_FILTER_CONDITION0 c = u16_eq(&FWPM_CONDITION_IP_REMOTE_PORT, (uint16_t)(81 + i));
        UINT64 id = filter_for(ALE4, keys[i], FWP_ACTION_CALLOUT_INSPECTION, 0x100 + i, &c, 1);
        memset(&g_seen, 0, sizeof(g_seen));
        struct owfp_flow_params p = h_params4(1000, (uint16_t)(81 + i), OWFP_OUTBOUND);
        open_close(&p);
        assert_int_equal(g_seen.calls, 1);
        assert_int_equal(g_seen.version, i + 1);
        assert_false(g_seen.classify_context_null);
        /* The arguments after classifyContext are where they belong. */
        assert_int_equal(g_seen.filter_id, id);
        assert_int_equal(g_seen.filter_context, 0x100 + i);
        assert_int_equal(g_seen.flow_context, 0);
        assert_int_equal(g_seen.out_on_entry.rights, FWPS_RIGHT_ACTION_WRITE);
        assert_int_equal(g_seen.out_on_entry.filterId, id);
        assert_int_equal(g_seen.layer_id, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4);
        assert_true(g_seen.layer_data_null);
    }
}

static void test_C2_filter_is_the_matched_filter(void **state)
{
    (void)state;
    callout0(&g_key0, ALE4, classify0);
    FWPM_FILTER_CONDITION0 c80 = u16_eq(&FWPM_CONDITION_IP_REMOTE_PORT, 80);
    FWPM_FILTER_CONDITION0 c443 = u16_eq(&FWPM_CONDITION_IP_REMOTE_PORT, 443);
    UINT64 id80 = filter_for(ALE4, &g_key0, FWP_ACTION_CALLOUT_INSPECTION, 80, &c80, 1);
    UINT64 id443 = filter_for(ALE4, &g_key0, FWP_ACTION_CALLOUT_INSPECTION, 443, &c443, 1);
    struct owfp_flow_params p = h_params4(1000, 443, OWFP_OUTBOUND);
    open_close(&p);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.filter_id, id443);
    assert_int_equal(g_seen.filter_context, 443);
    p.remote_port = 80;
    open_close(&p);
    assert_int_equal(g_seen.calls, 2);
    assert_int_equal(g_seen.filter_id, id80);
    assert_int_equal(g_seen.filter_context, 80);
}

static void test_C2_flow_context_zero_without_association(void **state)
{
    (void)state;
    callout0(&g_key0, ALE4, classify0);
    filter_for(ALE4, &g_key0, FWP_ACTION_CALLOUT_INSPECTION, 0, NULL, 0);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    open_close(&p);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.flow_context, 0);
}

/* ---- C3: classifyOut on entry ------------------------------------------------------------- */

static void test_C3_classify_out_on_entry(void **state)
{
    (void)state;
    callout0(&g_key0, ALE4, classify0);
    UINT64 id = filter_for(ALE4, &g_key0, FWP_ACTION_CALLOUT_TERMINATING, 0, NULL, 0);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    open_close(&p);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.out_on_entry.actionType, 0);
    assert_int_equal(g_seen.out_on_entry.rights, FWPS_RIGHT_ACTION_WRITE);
    assert_int_equal(g_seen.out_on_entry.flags, 0);
    assert_int_equal(g_seen.out_on_entry.filterId, id);
}

/* Scribbles over everything in classifyOut without deciding anything. */
static void NTAPI scribble_classify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                    const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                    void *layerData, const FWPS_FILTER0 *filter,
                                    UINT64 flowContext, FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    classifyOut->actionType = FWP_ACTION_BLOCK;
    classifyOut->rights = 0;
    classifyOut->flags = 0xffffffffu;
    classifyOut->filterId = 12345;
}

static void test_C3_classify_out_fresh_for_each_callout(void **state)
{
    (void)state;
    GUID scribbler = h_guid(0x5c);
    callout0(&scribbler, ALE4, scribble_classify);
    callout0(&g_key0, ALE4, classify0);
    GUID sl = h_sublayer(1, 0x100);
    struct h_filter_spec first = {.layer = ALE4, .sublayer = &sl,
                                  .action = FWP_ACTION_CALLOUT_INSPECTION,
                                  .callout = &scribbler, .has_weight = 1, .weight = 10};
    assert_int_equal(h_filter(&first, NULL), STATUS_SUCCESS);
    struct h_filter_spec second = {.layer = ALE4, .sublayer = &sl,
                                   .action = FWP_ACTION_CALLOUT_INSPECTION, .callout = &g_key0,
                                   .has_weight = 1, .weight = 5};
    UINT64 id = 0;
    assert_int_equal(h_filter(&second, &id), STATUS_SUCCESS);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(open_close(&p), OWFP_FLOW_PERMITTED);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.out_on_entry.actionType, 0);
    assert_int_equal(g_seen.out_on_entry.rights, FWPS_RIGHT_ACTION_WRITE);
    assert_int_equal(g_seen.out_on_entry.flags, 0);
    assert_int_equal(g_seen.out_on_entry.filterId, id);
}

static void test_C3_rights_absent_after_hard_decision(void **state)
{
    (void)state;
    callout0(&g_key0, ALE4, classify0);
    GUID hi = h_sublayer(1, 0x200), lo = h_sublayer(2, 0x100);
    struct h_filter_spec block = {.layer = ALE4, .sublayer = &hi, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&block, NULL), STATUS_SUCCESS);
    struct h_filter_spec spec = {.layer = ALE4, .sublayer = &lo,
                                 .action = FWP_ACTION_CALLOUT_INSPECTION, .callout = &g_key0};
    UINT64 id = 0;
    assert_int_equal(h_filter(&spec, &id), STATUS_SUCCESS);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(open_close(&p), OWFP_FLOW_BLOCKED);
    assert_int_equal(g_seen.calls, 1);
    assert_int_equal(g_seen.out_on_entry.actionType, 0);
    assert_int_equal(g_seen.out_on_entry.rights, 0);
    assert_int_equal(g_seen.out_on_entry.flags, 0);
    assert_int_equal(g_seen.out_on_entry.filterId, id);
}

/* ---- C4: PASSIVE functions are refused inside classify --------------------------------------- */

static struct {
    NTSTATUS filter_add, sublayer_add, filter_delete, register0, unregister, engine_open,
        engine_close, txn_begin, txn_commit;
    unsigned calls;
} g_passive;
static UINT32 g_passive_id;

static void NTAPI passive_classify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                   const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                   void *layerData, const FWPS_FILTER0 *filter,
                                   UINT64 flowContext, FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(flowContext);
    static WCHAR name[] = L"from classify";
    g_passive.calls++;
    FWPM_FILTER0 f;
    memset(&f, 0, sizeof(f));
    f.displayData.name = name;
    f.layerKey = *ALE4;
    f.action.type = FWP_ACTION_BLOCK;
    g_passive.filter_add = FwpmFilterAdd0(h_session, &f, NULL, NULL);
    FWPM_SUBLAYER0 sl;
    memset(&sl, 0, sizeof(sl));
    sl.displayData.name = name;
    g_passive.sublayer_add = FwpmSubLayerAdd0(h_session, &sl, NULL);
    g_passive.filter_delete = FwpmFilterDeleteById0(h_session, filter->filterId);
    GUID k = h_guid(0x9999);
    g_passive.register0 = h_register0(&k, 0, classify0, NULL, NULL, NULL);
    g_passive.unregister = FwpsCalloutUnregisterById0(g_passive_id);
    HANDLE h = NULL;
    g_passive.engine_open = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &h);
    g_passive.engine_close = FwpmEngineClose0(h_session);
    g_passive.txn_begin = FwpmTransactionBegin0(h_session, 0);
    g_passive.txn_commit = FwpmTransactionCommit0(h_session);
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

static void test_C4_passive_functions_refused_in_classify(void **state)
{
    (void)state;
    memset(&g_passive, 0, sizeof(g_passive));
    GUID key = h_guid(0xc4);
    assert_int_equal(h_register0(&key, 0, passive_classify, h_notify_ok, NULL, &g_passive_id),
                     STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&key, ALE4), STATUS_SUCCESS);
    filter_for(ALE4, &key, FWP_ACTION_CALLOUT_INSPECTION, 0, NULL, 0);
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    assert_int_equal(open_close(&p), OWFP_FLOW_PERMITTED);
    assert_int_equal(g_passive.calls, 1);
    assert_int_equal(g_passive.filter_add, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g_passive.sublayer_add, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g_passive.filter_delete, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g_passive.register0, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g_passive.unregister, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g_passive.engine_open, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g_passive.engine_close, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g_passive.txn_begin, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g_passive.txn_commit, STATUS_INVALID_DEVICE_STATE);

    /* None of it took effect: same filters, session and callout as before. */
    struct owfp_engine_stats st;
    owfp_engine_get_stats(h_engine, &st);
    assert_int_equal(st.filters, 1);
    assert_int_equal(st.callouts_registered, 1);
    assert_int_equal(open_close(&p), OWFP_FLOW_PERMITTED);
    assert_int_equal(g_passive.calls, 2);
    /* Outside classify the same calls work. */
    GUID k = h_guid(0x9999);
    assert_int_equal(h_register0(&k, 0, classify0, NULL, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
}

/* ---- C5: BLOCK at ALE_FLOW_ESTABLISHED ----------------------------------------------------- */

static void NTAPI block_classify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                 const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                 void *layerData, const FWPS_FILTER0 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    g_seen.calls++;
    classifyOut->actionType = FWP_ACTION_BLOCK;
    classifyOut->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static void test_C5_callout_block_gives_blocked_flow(void **state)
{
    (void)state;
    callout0(&g_key0, ALE4, block_classify);
    FWPM_FILTER_CONDITION0 c = u16_eq(&FWPM_CONDITION_IP_REMOTE_PORT, 23);
    filter_for(ALE4, &g_key0, FWP_ACTION_CALLOUT_TERMINATING, 0, &c, 1);
    struct owfp_flow_params p = h_params4(1000, 23, OWFP_OUTBOUND);
    owfp_flow *f = NULL;
    enum owfp_flow_verdict v = OWFP_FLOW_PERMITTED;
    assert_int_equal(owfp_flow_open(h_engine, &p, &f, &v), STATUS_SUCCESS);
    assert_non_null(f);
    assert_int_equal(v, OWFP_FLOW_BLOCKED);
    assert_int_equal(g_seen.calls, 1);
    owfp_flow_close(f);
    p.remote_port = 80;
    assert_int_equal(open_close(&p), OWFP_FLOW_PERMITTED);
    assert_int_equal(g_seen.calls, 1);
}

static void test_C5_static_block_gives_blocked_flow(void **state)
{
    (void)state;
    struct h_filter_spec spec = {.layer = ALE6, .action = FWP_ACTION_BLOCK};
    assert_int_equal(h_filter(&spec, NULL), STATUS_SUCCESS);
    struct owfp_flow_params p = h_params6(1000, 80, OWFP_INBOUND);
    assert_int_equal(open_close(&p), OWFP_FLOW_BLOCKED);
    p = h_params4(1000, 80, OWFP_INBOUND);
    assert_int_equal(open_close(&p), OWFP_FLOW_PERMITTED);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, h_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_C1_local_port_equal),
        T(test_C1_remote_port_range_inclusive),
        T(test_C1_v4_addresses_host_order_and_mask),
        T(test_C1_v4_address_network_order_does_not_match),
        T(test_C1_v6_addresses_and_prefix),
        T(test_C1_protocol),
        T(test_C1_direction),
        T(test_C1_flags),
        T(test_C1_flags_none_set),
        T(test_C1_all_conditions_must_match),
        T(test_C1_v6_layer_ports_and_protocol),
        T(test_C2_fixed_values_v4),
        T(test_C2_fixed_values_v6),
        T(test_C2_layer_data_null_and_metadata_present),
        T(test_C2_classify_context_for_v1_and_later),
        T(test_C2_filter_is_the_matched_filter),
        T(test_C2_flow_context_zero_without_association),
        T(test_C3_classify_out_on_entry),
        T(test_C3_classify_out_fresh_for_each_callout),
        T(test_C3_rights_absent_after_hard_decision),
        T(test_C4_passive_functions_refused_in_classify),
        T(test_C5_callout_block_gives_blocked_flow),
        T(test_C5_static_block_gives_blocked_flow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
