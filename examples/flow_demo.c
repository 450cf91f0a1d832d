/*
 * A small end-to-end run of the engine: a callout written as a Windows
 * driver would write it watches new connections at ALE_FLOW_ESTABLISHED,
 * keeps a per-flow context for web traffic, and a static filter blocks
 * telnet. The data plane opens a handful of IPv4 and IPv6 connections and
 * prints what the engine and the callout did.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fwpmk.h>
#include <fwpsk.h>
#include <openwfp/openwfp.h>
/* As in Windows drivers: our own GUIDs get storage in this file. */
#define INITGUID
#include <guiddef.h>

/* ---- the callout, in WDK style ---------------------------------------- */

DEFINE_GUID(DEMO_ALE_CALLOUT_V4, 0x6d0f1a2b, 0x3c4d, 0x4e5f, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5,
            0xe6, 0xf7);
DEFINE_GUID(DEMO_ALE_CALLOUT_V6, 0x6d0f1a2b, 0x3c4d, 0x4e5f, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5,
            0xe6, 0xf8);
DEFINE_GUID(DEMO_SUBLAYER, 0x6d0f1a2b, 0x3c4d, 0x4e5f, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5, 0xe6,
            0xf9);

typedef struct DEMO_FLOW_CONTEXT {
    UINT64 flowHandle;
    UINT16 remotePort;
} DEMO_FLOW_CONTEXT;

static UINT32 g_calloutIdV4, g_calloutIdV6;
static unsigned g_classified, g_associated, g_deleted;

static void NTAPI DemoClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                               const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                               void *layerData, const FWPS_FILTER0 *filter, UINT64 flowContext,
                               FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    g_classified++;
    UINT16 remotePort =
        inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT]
            .value.uint16;
    if (remotePort == 80 && FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues,
                                                            FWPS_METADATA_FIELD_FLOW_HANDLE)) {
        DEMO_FLOW_CONTEXT *ctx = malloc(sizeof(*ctx));
        if (ctx) {
            ctx->flowHandle = inMetaValues->flowHandle;
            ctx->remotePort = remotePort;
            BOOLEAN v6 = inFixedValues->layerId == FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6;
            NTSTATUS status = FwpsFlowAssociateContext0(
                inMetaValues->flowHandle, inFixedValues->layerId,
                v6 ? g_calloutIdV6 : g_calloutIdV4, (UINT64)(uintptr_t)ctx);
            if (status == STATUS_SUCCESS)
                g_associated++;
            else
                free(ctx);
        }
    }
    /* An inspection callout never decides; CONTINUE says so explicitly. */
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

static NTSTATUS NTAPI DemoNotify(FWPS_CALLOUT_NOTIFY_TYPE notifyType, const GUID *filterKey,
                                 FWPS_FILTER0 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

static void NTAPI DemoFlowDelete(UINT16 layerId, UINT32 calloutId, UINT64 flowContext)
{
    DEMO_FLOW_CONTEXT *ctx = (DEMO_FLOW_CONTEXT *)(uintptr_t)flowContext;
    printf("  flowDeleteFn  layer=%u callout=%u flow=0x%016" PRIx64 " port=%u\n", layerId,
           calloutId, ctx->flowHandle, ctx->remotePort);
    g_deleted++;
    free(ctx);
}

/* ---- the host: register, configure, drive flows ------------------------ */

static WCHAR g_name[] = L"openwfp demo";

static NTSTATUS AddFilters(HANDLE engine)
{
    FWPM_SUBLAYER0 sublayer = {0};
    sublayer.subLayerKey = DEMO_SUBLAYER;
    sublayer.displayData.name = g_name;
    sublayer.weight = 0x100;
    NTSTATUS status = FwpmSubLayerAdd0(engine, &sublayer, NULL);
    const GUID *layers[2] = {&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4,
                             &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6};
    const GUID *callouts[2] = {&DEMO_ALE_CALLOUT_V4, &DEMO_ALE_CALLOUT_V6};
    for (int i = 0; i < 2 && NT_SUCCESS(status); i++) {
        FWPM_CALLOUT0 callout = {0};
        callout.calloutKey = *callouts[i];
        callout.displayData.name = g_name;
        callout.applicableLayer = *layers[i];
        status = FwpmCalloutAdd0(engine, &callout, NULL, NULL);
        if (!NT_SUCCESS(status))
            break;

        FWPM_FILTER0 filter = {0};
        filter.displayData.name = g_name;
        filter.layerKey = *layers[i];
        filter.subLayerKey = DEMO_SUBLAYER;
        filter.action.type = FWP_ACTION_CALLOUT_INSPECTION;
        filter.action.calloutKey = *callouts[i];
        status = FwpmFilterAdd0(engine, &filter, NULL, NULL);
        if (!NT_SUCCESS(status))
            break;

        FWPM_FILTER_CONDITION0 telnet = {0};
        telnet.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
        telnet.matchType = FWP_MATCH_EQUAL;
        telnet.conditionValue.type = FWP_UINT16;
        telnet.conditionValue.uint16 = 23;
        FWPM_FILTER0 block = {0};
        block.displayData.name = g_name;
        block.layerKey = *layers[i];
        block.action.type = FWP_ACTION_BLOCK;
        block.numFilterConditions = 1;
        block.filterCondition = &telnet;
        status = FwpmFilterAdd0(engine, &block, NULL, NULL);
    }
    return status;
}

static NTSTATUS RegisterCallouts(void)
{
    FWPS_CALLOUT0 callout = {0};
    callout.classifyFn = DemoClassify;
    callout.notifyFn = DemoNotify;
    callout.flowDeleteFn = DemoFlowDelete;
    callout.calloutKey = DEMO_ALE_CALLOUT_V4;
    NTSTATUS status = FwpsCalloutRegister0(NULL, &callout, &g_calloutIdV4);
    if (!NT_SUCCESS(status))
        return status;
    callout.calloutKey = DEMO_ALE_CALLOUT_V6;
    return FwpsCalloutRegister0(NULL, &callout, &g_calloutIdV6);
}

static void Fail(const char *what, NTSTATUS status)
{
    fprintf(stderr, "flow_demo: %s failed: 0x%08" PRIx32 "\n", what, (uint32_t)status);
    exit(1);
}

int main(void)
{
    owfp_engine *engine;
    NTSTATUS status = owfp_engine_create(NULL, &engine);
    if (!NT_SUCCESS(status))
        Fail("owfp_engine_create", status);
    if (!NT_SUCCESS(status = RegisterCallouts()))
        Fail("FwpsCalloutRegister0", status);
    HANDLE session;
    if (!NT_SUCCESS(status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &session)))
        Fail("FwpmEngineOpen0", status);
    if (!NT_SUCCESS(status = AddFilters(session)))
        Fail("adding filters", status);

    static const struct {
        uint8_t ipv;
        uint16_t lport, rport;
    } conns[] = {{4, 50000, 80}, {4, 50001, 443}, {4, 50002, 23}, {6, 50003, 80}, {6, 50004, 23}};
    owfp_flow *flows[sizeof(conns) / sizeof(conns[0])];
    printf("openwfp flow demo: %zu connections through ALE_FLOW_ESTABLISHED\n",
           sizeof(conns) / sizeof(conns[0]));
    for (size_t i = 0; i < sizeof(conns) / sizeof(conns[0]); i++) {
        struct owfp_flow_params p = {0};
        p.ip_version = conns[i].ipv;
        p.protocol = 6;
        p.direction = OWFP_OUTBOUND;
        if (p.ip_version == 4) {
            memcpy(p.local_addr, (uint8_t[]){192, 0, 2, 10}, 4);
            memcpy(p.remote_addr, (uint8_t[]){198, 51, 100, 7}, 4);
        } else {
            memcpy(p.local_addr, (uint8_t[]){0x20, 0x01, 0x0d, 0xb8, [15] = 0x10}, 16);
            memcpy(p.remote_addr, (uint8_t[]){0x20, 0x01, 0x0d, 0xb8, 1, [15] = 0x07}, 16);
        }
        p.local_port = conns[i].lport;
        p.remote_port = conns[i].rport;
        enum owfp_flow_verdict verdict;
        if (!NT_SUCCESS(status = owfp_flow_open(engine, &p, &flows[i], &verdict)))
            Fail("owfp_flow_open", status);
        printf("  IPv%u :%u -> :%-4u flow=0x%016" PRIx64 "  %s\n", p.ip_version, p.local_port,
               p.remote_port, owfp_flow_id(flows[i]),
               verdict == OWFP_FLOW_BLOCKED ? "BLOCKED" : "permitted");
    }
    printf("closing flows\n");
    for (size_t i = 0; i < sizeof(conns) / sizeof(conns[0]); i++)
        owfp_flow_close(flows[i]);
    printf("callout: %u classifies, %u contexts associated, %u flowDeleteFn calls\n",
           g_classified, g_associated, g_deleted);

    FwpmEngineClose0(session);
    FwpsCalloutUnregisterById0(g_calloutIdV4);
    FwpsCalloutUnregisterById0(g_calloutIdV6);
    owfp_engine_destroy(engine);
    return g_associated == g_deleted ? 0 : 1;
}
