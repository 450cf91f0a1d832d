#include "harness.h"

#include <string.h>

owfp_engine *h_engine;
HANDLE h_session;

static WCHAR test_name[] = {'t', 'e', 's', 't', 0};

int h_setup(void **state)
{
    (void)state;
    if (owfp_engine_create(NULL, &h_engine) != STATUS_SUCCESS)
        return -1;
    return FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &h_session) == STATUS_SUCCESS
               ? 0
               : -1;
}

int h_teardown(void **state)
{
    (void)state;
    FwpmEngineClose0(h_session);
    owfp_engine_destroy(h_engine);
    h_engine = NULL;
    return 0;
}

GUID h_guid(uint32_t n)
{
    GUID g = {n, 0x7e57, 0x4000, {0x80, 0x00, 0x0f, 0xfc, 0x00, 0x00, 0x00, 0x01}};
    return g;
}

GUID h_sublayer(uint32_t n, uint16_t weight)
{
    FWPM_SUBLAYER0 sl;
    memset(&sl, 0, sizeof(sl));
    sl.subLayerKey = h_guid(0x5b000000u | n);
    sl.displayData.name = test_name;
    sl.weight = weight;
    assert_int_equal(FwpmSubLayerAdd0(h_session, &sl, NULL), STATUS_SUCCESS);
    return sl.subLayerKey;
}

NTSTATUS h_callout_object(const GUID *key, const GUID *layer)
{
    FWPM_CALLOUT0 c;
    memset(&c, 0, sizeof(c));
    c.calloutKey = *key;
    c.displayData.name = test_name;
    c.applicableLayer = *layer;
    return FwpmCalloutAdd0(h_session, &c, NULL, NULL);
}

NTSTATUS h_filter_in(HANDLE session, const struct h_filter_spec *spec, UINT64 *id)
{
    FWPM_FILTER0 f;
    memset(&f, 0, sizeof(f));
    f.displayData.name = test_name;
    f.layerKey = *spec->layer;
    if (spec->sublayer)
        f.subLayerKey = *spec->sublayer;
    UINT64 w = spec->weight;
    if (spec->has_weight) {
        f.weight.type = FWP_UINT64;
        f.weight.uint64 = &w;
    }
    f.flags = spec->flags;
    f.action.type = spec->action;
    if (spec->callout)
        f.action.calloutKey = *spec->callout;
    f.rawContext = spec->raw_context;
    f.numFilterConditions = spec->nconds;
    f.filterCondition = (FWPM_FILTER_CONDITION0 *)spec->conds;
    return FwpmFilterAdd0(session, &f, NULL, id);
}

NTSTATUS h_filter(const struct h_filter_spec *spec, UINT64 *id)
{
    return h_filter_in(h_session, spec, id);
}

struct owfp_flow_params h_params4(uint16_t local_port, uint16_t remote_port, uint8_t direction)
{
    struct owfp_flow_params p;
    memset(&p, 0, sizeof(p));
    p.ip_version = 4;
    p.protocol = 6;
    p.direction = direction;
    memcpy(p.local_addr, (uint8_t[]){10, 0, 0, 1}, 4);
    memcpy(p.remote_addr, (uint8_t[]){10, 0, 0, 2}, 4);
    p.local_port = local_port;
    p.remote_port = remote_port;
    p.compartment_id = 1;
    return p;
}

struct owfp_flow_params h_params6(uint16_t local_port, uint16_t remote_port, uint8_t direction)
{
    struct owfp_flow_params p = h_params4(local_port, remote_port, direction);
    p.ip_version = 6;
    static const uint8_t l[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    static const uint8_t r[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};
    memcpy(p.local_addr, l, 16);
    memcpy(p.remote_addr, r, 16);
    return p;
}

owfp_flow *h_open(const struct owfp_flow_params *p, enum owfp_flow_verdict *verdict)
{
    owfp_flow *f = NULL;
    enum owfp_flow_verdict v;
    assert_int_equal(owfp_flow_open(h_engine, p, &f, &v), STATUS_SUCCESS);
    assert_non_null(f);
    if (verdict)
        *verdict = v;
    return f;
}

NTSTATUS h_register0(const GUID *key, uint32_t flags, FWPS_CALLOUT_CLASSIFY_FN0 classify,
                     FWPS_CALLOUT_NOTIFY_FN0 notify, FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 del,
                     UINT32 *id)
{
    FWPS_CALLOUT0 c;
    memset(&c, 0, sizeof(c));
    c.calloutKey = *key;
    c.flags = flags;
    c.classifyFn = classify;
    c.notifyFn = notify;
    c.flowDeleteFn = del;
    return FwpsCalloutRegister0(NULL, &c, id);
}

NTSTATUS NTAPI h_notify_ok(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key, FWPS_FILTER0 *filter)
{
    (void)type;
    (void)key;
    (void)filter;
    return STATUS_SUCCESS;
}
