/*
 * A small end-to-end run of the engine: callouts written as a Windows driver
 * would write them. At ALE_FLOW_ESTABLISHED one watches new connections and
 * gives web traffic a per-flow context for a stream callout, which counts the
 * bytes of each direction and masks the word "secret" in what the client
 * sends (inline editing: inject the replacement, block the original). A
 * static filter blocks telnet. The data plane opens IPv4 and IPv6
 * connections, feeds them a short HTTP exchange in small segments, and
 * prints what the engine and the callouts did.
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
DEFINE_GUID(DEMO_STREAM_CALLOUT_V4, 0x6d0f1a2b, 0x3c4d, 0x4e5f, 0x80, 0x91, 0xa2, 0xb3, 0xc4,
            0xd5, 0xe6, 0xfa);
DEFINE_GUID(DEMO_STREAM_CALLOUT_V6, 0x6d0f1a2b, 0x3c4d, 0x4e5f, 0x80, 0x91, 0xa2, 0xb3, 0xc4,
            0xd5, 0xe6, 0xfb);
DEFINE_GUID(DEMO_SUBLAYER, 0x6d0f1a2b, 0x3c4d, 0x4e5f, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5, 0xe6,
            0xf9);

typedef struct DEMO_FLOW_CONTEXT {
    UINT64 flowHandle;
    UINT16 remotePort;
    UINT64 bytesSent, bytesReceived;
} DEMO_FLOW_CONTEXT;

static UINT32 g_calloutIdV4, g_calloutIdV6, g_streamIdV4, g_streamIdV6;
static HANDLE g_injectionHandle;
static NDIS_HANDLE g_nblPool;
static const char g_secret[] = "secret";
static char g_mask[] = "******";
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
            ctx->bytesSent = ctx->bytesReceived = 0;
            /* As stmedit does: the context is for the stream callout. */
            NTSTATUS status = FwpsFlowAssociateContext0(
                inMetaValues->flowHandle, v6 ? FWPS_LAYER_STREAM_V6 : FWPS_LAYER_STREAM_V4,
                v6 ? g_streamIdV6 : g_streamIdV4, (UINT64)(uintptr_t)ctx);
            if (status == STATUS_SUCCESS)
                g_associated++;
            else
                free(ctx);
        }
    }
    /* An inspection callout never decides; CONTINUE says so explicitly. */
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

static void NTAPI DemoInjectComplete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    UNREFERENCED_PARAMETER(context);
    UNREFERENCED_PARAMETER(dispatchLevel);
    MDL *mdl = NET_BUFFER_FIRST_MDL(NET_BUFFER_LIST_FIRST_NB(nbl));
    FwpsFreeNetBufferList0(nbl);
    IoFreeMdl(mdl);
}

/* Offset of the first "secret" in the indicated bytes, or the length when
 * there is none; *partial is set when the data ends with a prefix of it. */
static SIZE_T FindSecret(const char *data, SIZE_T length, BOOLEAN *partial)
{
    SIZE_T n = sizeof(g_secret) - 1;
    *partial = FALSE;
    for (SIZE_T i = 0; i < length; i++) {
        SIZE_T m = 0;
        while (m < n && i + m < length && data[i + m] == g_secret[m])
            m++;
        if (m == n)
            return i;
        if (i + m == length && m > 0) {
            *partial = TRUE;
            return i;
        }
    }
    return length;
}

static void NTAPI DemoStreamClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                     const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                     void *layerData, const FWPS_FILTER0 *filter,
                                     UINT64 flowContext, FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(filter);
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    FWPS_STREAM_DATA0 *data = io->streamData;
    DEMO_FLOW_CONTEXT *ctx = (DEMO_FLOW_CONTEXT *)(uintptr_t)flowContext;
    classifyOut->actionType = FWP_ACTION_PERMIT;
    if (data->flags & FWPS_STREAM_FLAG_RECEIVE) {
        ctx->bytesReceived += data->dataLength;
        return;
    }
    char buffer[512];
    SIZE_T copied = 0;
    if (data->dataLength > sizeof(buffer)) {
        ctx->bytesSent += data->dataLength;
        return; /* the demo's traffic is small; pass anything larger untouched */
    }
    FwpsCopyStreamDataToBuffer0(data, buffer, data->dataLength, &copied);
    BOOLEAN partial;
    SIZE_T at = FindSecret(buffer, copied, &partial);
    if (at > 0) {
        /* Let the clean bytes before it through; the rest comes back at once. */
        io->countBytesEnforced = at;
        ctx->bytesSent += at;
        return;
    }
    if (partial && !(classifyOut->flags & FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA)) {
        io->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
        io->countBytesRequired = (UINT32)(sizeof(g_secret) - 1);
        return;
    }
    if (partial || copied == 0) {
        ctx->bytesSent += copied;
        return;
    }
    /* Inline edit: inject the mask where the word stands, block the word. */
    MDL *mdl = IoAllocateMdl(g_mask, sizeof(g_mask) - 1, FALSE, FALSE, NULL);
    NET_BUFFER_LIST *mask = NULL;
    if (mdl) {
        MmBuildMdlForNonPagedPool(mdl);
        BOOLEAN v6 = inFixedValues->layerId == FWPS_LAYER_STREAM_V6;
        if (NT_SUCCESS(FwpsAllocateNetBufferAndNetBufferList0(g_nblPool, 0, 0, mdl, 0,
                                                              sizeof(g_mask) - 1, &mask)) &&
            NT_SUCCESS(FwpsStreamInjectAsync0(
                g_injectionHandle, NULL, 0, inMetaValues->flowHandle,
                v6 ? g_streamIdV6 : g_streamIdV4, inFixedValues->layerId,
                FWPS_STREAM_FLAG_SEND, mask, sizeof(g_mask) - 1, DemoInjectComplete, NULL))) {
            ctx->bytesSent += sizeof(g_mask) - 1;
        } else {
            if (mask)
                FwpsFreeNetBufferList0(mask);
            IoFreeMdl(mdl);
        }
    }
    io->countBytesEnforced = sizeof(g_secret) - 1;
    classifyOut->actionType = FWP_ACTION_BLOCK;
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
    printf("  flowDeleteFn  layer=%u callout=%u flow=0x%016" PRIx64 " port=%u sent=%" PRIu64
           " received=%" PRIu64 "\n",
           layerId, calloutId, ctx->flowHandle, ctx->remotePort, ctx->bytesSent,
           ctx->bytesReceived);
    g_deleted++;
    free(ctx);
}

/* ---- the host: register, configure, drive flows ------------------------ */

static WCHAR g_name[] = L"openwfp demo";

static NTSTATUS AddCalloutAndFilter(HANDLE engine, const GUID *layer, const GUID *callout,
                                    UINT32 action)
{
    FWPM_CALLOUT0 mc = {0};
    mc.calloutKey = *callout;
    mc.displayData.name = g_name;
    mc.applicableLayer = *layer;
    NTSTATUS status = FwpmCalloutAdd0(engine, &mc, NULL, NULL);
    if (!NT_SUCCESS(status))
        return status;
    FWPM_FILTER0 filter = {0};
    filter.displayData.name = g_name;
    filter.layerKey = *layer;
    filter.subLayerKey = DEMO_SUBLAYER;
    filter.action.type = action;
    filter.action.calloutKey = *callout;
    return FwpmFilterAdd0(engine, &filter, NULL, NULL);
}

static NTSTATUS AddFilters(HANDLE engine)
{
    FWPM_SUBLAYER0 sublayer = {0};
    sublayer.subLayerKey = DEMO_SUBLAYER;
    sublayer.displayData.name = g_name;
    sublayer.weight = 0x100;
    NTSTATUS status = FwpmTransactionBegin0(engine, 0);
    if (!NT_SUCCESS(status))
        return status;
    status = FwpmSubLayerAdd0(engine, &sublayer, NULL);
    const GUID *ale[2] = {&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6};
    const GUID *stream[2] = {&FWPM_LAYER_STREAM_V4, &FWPM_LAYER_STREAM_V6};
    const GUID *aleCallouts[2] = {&DEMO_ALE_CALLOUT_V4, &DEMO_ALE_CALLOUT_V6};
    const GUID *streamCallouts[2] = {&DEMO_STREAM_CALLOUT_V4, &DEMO_STREAM_CALLOUT_V6};
    for (int i = 0; i < 2 && NT_SUCCESS(status); i++) {
        status = AddCalloutAndFilter(engine, ale[i], aleCallouts[i], FWP_ACTION_CALLOUT_INSPECTION);
        if (NT_SUCCESS(status))
            status = AddCalloutAndFilter(engine, stream[i], streamCallouts[i],
                                         FWP_ACTION_CALLOUT_TERMINATING);
        if (!NT_SUCCESS(status))
            break;
        FWPM_FILTER_CONDITION0 telnet = {0};
        telnet.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
        telnet.matchType = FWP_MATCH_EQUAL;
        telnet.conditionValue.type = FWP_UINT16;
        telnet.conditionValue.uint16 = 23;
        FWPM_FILTER0 block = {0};
        block.displayData.name = g_name;
        block.layerKey = *ale[i];
        block.action.type = FWP_ACTION_BLOCK;
        block.numFilterConditions = 1;
        block.filterCondition = &telnet;
        status = FwpmFilterAdd0(engine, &block, NULL, NULL);
    }
    if (NT_SUCCESS(status))
        return FwpmTransactionCommit0(engine);
    FwpmTransactionAbort0(engine);
    return status;
}

static NTSTATUS RegisterCallouts(void)
{
    FWPS_CALLOUT0 callout = {0};
    callout.classifyFn = DemoClassify;
    callout.notifyFn = DemoNotify;
    callout.calloutKey = DEMO_ALE_CALLOUT_V4;
    NTSTATUS status = FwpsCalloutRegister0(NULL, &callout, &g_calloutIdV4);
    callout.calloutKey = DEMO_ALE_CALLOUT_V6;
    if (NT_SUCCESS(status))
        status = FwpsCalloutRegister0(NULL, &callout, &g_calloutIdV6);
    /* Called only for flows the ALE callout gave a context (spec F9). */
    callout.classifyFn = DemoStreamClassify;
    callout.flowDeleteFn = DemoFlowDelete;
    callout.flags = FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW;
    callout.calloutKey = DEMO_STREAM_CALLOUT_V4;
    if (NT_SUCCESS(status))
        status = FwpsCalloutRegister0(NULL, &callout, &g_streamIdV4);
    callout.calloutKey = DEMO_STREAM_CALLOUT_V6;
    if (NT_SUCCESS(status))
        status = FwpsCalloutRegister0(NULL, &callout, &g_streamIdV6);
    if (NT_SUCCESS(status))
        status = FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM,
                                            &g_injectionHandle);
    if (NT_SUCCESS(status)) {
        NET_BUFFER_LIST_POOL_PARAMETERS params = {0};
        params.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
        params.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
        params.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
        params.fAllocateNetBuffer = TRUE;
        params.PoolTag = 0x6f6d6544; /* "Demo" */
        g_nblPool = NdisAllocateNetBufferListPool(NULL, &params);
        if (!g_nblPool)
            status = STATUS_INSUFFICIENT_RESOURCES;
    }
    return status;
}

static void Fail(const char *what, NTSTATUS status)
{
    fprintf(stderr, "flow_demo: %s failed: 0x%08" PRIx32 "\n", what, (uint32_t)status);
    exit(1);
}

static void PrintSpans(const struct owfp_stream_output *out)
{
    for (size_t i = 0; i < out->nspans; i++) {
        putchar(' ');
        putchar(out->spans[i].origin == OWFP_SPAN_INJECTED ? '{' : '[');
        for (size_t j = 0; j < out->spans[i].len; j++) {
            uint8_t c = out->spans[i].data[j];
            if (c == '\r')
                fputs("\\r", stdout);
            else if (c == '\n')
                fputs("\\n", stdout);
            else
                putchar(c);
        }
        putchar(out->spans[i].origin == OWFP_SPAN_INJECTED ? '}' : ']');
    }
}

/* Feeds one direction in segments of `piece` bytes, printing what passes:
 * [original bytes], {injected bytes}. */
static void Feed(owfp_flow *flow, enum owfp_stream_direction dir, const char *text, size_t piece)
{
    struct owfp_stream_result r;
    size_t len = strlen(text);
    printf("    %s:", dir == OWFP_STREAM_SEND ? "client->server" : "server->client");
    for (size_t at = 0; at < len; at += piece) {
        size_t n = len - at < piece ? len - at : piece;
        NTSTATUS status = owfp_stream_indicate(flow, dir, text + at, n, 0, &r);
        if (!NT_SUCCESS(status))
            Fail("owfp_stream_indicate", status);
        PrintSpans(&r.dir[dir]);
    }
    NTSTATUS status = owfp_stream_fin(flow, dir, &r);
    if (!NT_SUCCESS(status))
        Fail("owfp_stream_fin", status);
    PrintSpans(&r.dir[dir]);
    printf("%s\n", r.dir[dir].state & OWFP_DIR_FIN ? " FIN" : "");
}

int main(void)
{
    owfp_engine *engine;
    NTSTATUS status = owfp_engine_create(NULL, &engine);
    if (!NT_SUCCESS(status))
        Fail("owfp_engine_create", status);
    if (!NT_SUCCESS(status = RegisterCallouts()))
        Fail("registering callouts", status);
    HANDLE session;
    if (!NT_SUCCESS(status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &session)))
        Fail("FwpmEngineOpen0", status);
    if (!NT_SUCCESS(status = AddFilters(session)))
        Fail("adding filters", status);

    static const struct {
        uint8_t ipv;
        uint16_t lport, rport;
    } conns[] = {{4, 50000, 80}, {4, 50001, 443}, {4, 50002, 23}, {6, 50003, 80}, {6, 50004, 23}};
    static const char request[] = "GET /?token=secret HTTP/1.1\r\nHost: example.test\r\n\r\n";
    static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    printf("openwfp flow demo: %zu connections\n", sizeof(conns) / sizeof(conns[0]));
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
        owfp_flow *flow;
        enum owfp_flow_verdict verdict;
        if (!NT_SUCCESS(status = owfp_flow_open(engine, &p, &flow, &verdict)))
            Fail("owfp_flow_open", status);
        printf("  IPv%u :%u -> :%u flow=0x%016" PRIx64 " %s\n", p.ip_version, p.local_port,
               p.remote_port, owfp_flow_id(flow),
               verdict == OWFP_FLOW_BLOCKED ? "BLOCKED at ALE_FLOW_ESTABLISHED" : "permitted");
        if (verdict == OWFP_FLOW_PERMITTED) {
            /* Segments of 7 bytes split "secret" across indications. */
            Feed(flow, OWFP_STREAM_SEND, request, 7);
            Feed(flow, OWFP_STREAM_RECEIVE, response, 16);
        }
        owfp_flow_close(flow);
    }
    printf("ALE callout: %u classifies, %u stream contexts; %u flowDeleteFn calls\n",
           g_classified, g_associated, g_deleted);

    FwpmEngineClose0(session);
    FwpsInjectionHandleDestroy0(g_injectionHandle);
    NdisFreeNetBufferListPool(g_nblPool);
    FwpsCalloutUnregisterById0(g_calloutIdV4);
    FwpsCalloutUnregisterById0(g_calloutIdV6);
    FwpsCalloutUnregisterById0(g_streamIdV4);
    FwpsCalloutUnregisterById0(g_streamIdV6);
    owfp_engine_destroy(engine);
    return g_associated == g_deleted ? 0 : 1;
}
