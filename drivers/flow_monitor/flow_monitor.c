/*
 * flow_monitor: a WFP callout driver that reports, per TCP connection, how
 * many bytes went each way.
 *
 * - At ALE_FLOW_ESTABLISHED_V4/V6 an inspection callout allocates a per-flow
 *   context (addresses and ports of the connection) and associates it with
 *   the stream-layer callout of the same IP version
 *   (FwpsFlowAssociateContext0 at FWPS_LAYER_STREAM_V4/V6).
 * - The stream callout is registered with FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW,
 *   so it only sees flows that carry a context. It counts the bytes of each
 *   direction, copies the start of every indication into a bounded buffer
 *   (FwpsCopyStreamDataToBuffer0) to count printable bytes in it, and
 *   permits everything.
 * - flowDeleteFn prints one line per flow and frees the context.
 * - DriverUnload removes the contexts of flows still alive, prints a
 *   summary and takes the callouts, filters and sublayer down.
 *
 * Parameter (service key or its Parameters subkey):
 *   Verbose  REG_DWORD  1 (default): a line per flow; 0: only the summary.
 */
#include <ntddk.h>
#include <wdm.h>
#include <fwpsk.h>
#include <fwpmk.h>
#include <ip2string.h>

#define INITGUID
#include <guiddef.h>

// {5f1c9a40-2b7e-4d13-8a65-3c0e7f9d2a01}
DEFINE_GUID(FLOWMON_SUBLAYER, 0x5f1c9a40, 0x2b7e, 0x4d13, 0x8a, 0x65, 0x3c, 0x0e, 0x7f, 0x9d, 0x2a,
            0x01);
// {5f1c9a40-2b7e-4d13-8a65-3c0e7f9d2a10}
DEFINE_GUID(FLOWMON_ALE_CALLOUT_V4, 0x5f1c9a40, 0x2b7e, 0x4d13, 0x8a, 0x65, 0x3c, 0x0e, 0x7f, 0x9d,
            0x2a, 0x10);
// {5f1c9a40-2b7e-4d13-8a65-3c0e7f9d2a11}
DEFINE_GUID(FLOWMON_ALE_CALLOUT_V6, 0x5f1c9a40, 0x2b7e, 0x4d13, 0x8a, 0x65, 0x3c, 0x0e, 0x7f, 0x9d,
            0x2a, 0x11);
// {5f1c9a40-2b7e-4d13-8a65-3c0e7f9d2a20}
DEFINE_GUID(FLOWMON_STREAM_CALLOUT_V4, 0x5f1c9a40, 0x2b7e, 0x4d13, 0x8a, 0x65, 0x3c, 0x0e, 0x7f,
            0x9d, 0x2a, 0x20);
// {5f1c9a40-2b7e-4d13-8a65-3c0e7f9d2a21}
DEFINE_GUID(FLOWMON_STREAM_CALLOUT_V6, 0x5f1c9a40, 0x2b7e, 0x4d13, 0x8a, 0x65, 0x3c, 0x0e, 0x7f,
            0x9d, 0x2a, 0x21);

#define FLOWMON_TAG 'nMlF' /* "FlMn" in a pool dump */
#define FLOWMON_SAMPLE_BYTES 512 /* bytes of each indication looked at */

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD FlowMonUnload;

typedef struct FLOWMON_CONTEXT_ {
    LIST_ENTRY link;          /* on g_flows while associated; under g_flowsLock */
    BOOLEAN onList;           /* under g_flowsLock */
    UINT64 flowHandle;
    UINT16 streamLayerId;
    UINT32 streamCalloutId;
    BOOLEAN ipv6;
    BOOLEAN outbound;
    UINT8 localAddress[16];   /* IPv4: network byte order in the first 4 bytes */
    UINT8 remoteAddress[16];
    UINT16 localPort;
    UINT16 remotePort;
    /* Written by the stream callout only, which WFP does not run concurrently
     * for one flow (both directions share the context); read by flowDeleteFn
     * after the last classify. */
    UINT64 bytesSent;
    UINT64 bytesReceived;
    UINT64 sampledBytes;
    UINT64 printableBytes;
    UINT8 sample[FLOWMON_SAMPLE_BYTES];
} FLOWMON_CONTEXT;

static PDEVICE_OBJECT g_device;
static HANDLE g_engine;
static UINT32 g_aleCalloutIds[2];
static UINT32 g_streamCalloutIds[2];
static ULONG g_verbose = 1;

static KSPIN_LOCK g_flowsLock;
static LIST_ENTRY g_flows;        /* live contexts, for DriverUnload */
static BOOLEAN g_unloading;       /* under g_flowsLock: no new associations */
static LONG volatile g_liveContexts;

/* Totals for the summary; updated in flowDeleteFn under g_flowsLock. */
static UINT64 g_totalFlows;
static UINT64 g_totalSent;
static UINT64 g_totalReceived;
static LONG volatile g_associateFailures;

/* ---- ALE_FLOW_ESTABLISHED: create and associate the context ------------------- */

static void NTAPI FlowMonAleClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                     _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                     _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                                     _In_ UINT64 flowContext,
                                     _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    FLOWMON_CONTEXT *context;
    BOOLEAN ipv6 = inFixedValues->layerId == FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6;
    KLOCK_QUEUE_HANDLE lockHandle;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);

    /* Inspection only: never take a decision here. */
    classifyOut->actionType = FWP_ACTION_CONTINUE;

    if (!FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_FLOW_HANDLE)) {
        return;
    }

    /* Classify runs at DISPATCH_LEVEL: non-paged pool only. */
    context = (FLOWMON_CONTEXT *)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(*context),
                                                 FLOWMON_TAG);
    if (context == NULL) {
        InterlockedIncrement(&g_associateFailures);
        return;
    }
    context->flowHandle = inMetaValues->flowHandle;
    context->ipv6 = ipv6;
    if (ipv6) {
        const FWP_VALUE0 *local =
            &inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_LOCAL_ADDRESS].value;
        const FWP_VALUE0 *remote =
            &inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_REMOTE_ADDRESS].value;
        if (local->type == FWP_BYTE_ARRAY16_TYPE && local->byteArray16 != NULL) {
            RtlCopyMemory(context->localAddress, local->byteArray16->byteArray16, 16);
        }
        if (remote->type == FWP_BYTE_ARRAY16_TYPE && remote->byteArray16 != NULL) {
            RtlCopyMemory(context->remoteAddress, remote->byteArray16->byteArray16, 16);
        }
        context->localPort =
            inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_LOCAL_PORT].value.uint16;
        context->remotePort =
            inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_REMOTE_PORT].value.uint16;
        context->outbound =
            inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_DIRECTION].value.uint32 ==
            FWP_DIRECTION_OUTBOUND;
        context->streamLayerId = FWPS_LAYER_STREAM_V6;
        context->streamCalloutId = g_streamCalloutIds[1];
    } else {
        /* IPv4 addresses arrive as host-order UINT32; keep them in network order. */
        ULONG local = RtlUlongByteSwap(
            inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_ADDRESS].value.uint32);
        ULONG remote = RtlUlongByteSwap(
            inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_ADDRESS].value.uint32);
        RtlCopyMemory(context->localAddress, &local, sizeof(local));
        RtlCopyMemory(context->remoteAddress, &remote, sizeof(remote));
        context->localPort =
            inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_PORT].value.uint16;
        context->remotePort =
            inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT].value.uint16;
        context->outbound =
            inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_DIRECTION].value.uint32 ==
            FWP_DIRECTION_OUTBOUND;
        context->streamLayerId = FWPS_LAYER_STREAM_V4;
        context->streamCalloutId = g_streamCalloutIds[0];
    }

    /* On the list before the association: flowDeleteFn may run as soon as
     * the association exists, and it takes the context off the list. */
    KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
    if (g_unloading) {
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        ExFreePoolWithTag(context, FLOWMON_TAG);
        return;
    }
    InsertTailList(&g_flows, &context->link);
    context->onList = TRUE;
    InterlockedIncrement(&g_liveContexts);
    KeReleaseInStackQueuedSpinLock(&lockHandle);

    status = FwpsFlowAssociateContext0(context->flowHandle, context->streamLayerId,
                                       context->streamCalloutId, (UINT64)(ULONG_PTR)context);
    if (status != STATUS_SUCCESS) {
        /* Not associated (or a context already there): flowDeleteFn will not
         * be called for this one, so take it back ourselves. */
        KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
        if (context->onList) {
            RemoveEntryList(&context->link);
            context->onList = FALSE;
        }
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        InterlockedIncrement(&g_associateFailures);
        InterlockedDecrement(&g_liveContexts);
        ExFreePoolWithTag(context, FLOWMON_TAG);
    }
}

/* ---- STREAM: count ---------------------------------------------------------------- */

static void NTAPI FlowMonStreamClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                        _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                        _Inout_opt_ void *layerData,
                                        _In_ const FWPS_FILTER0 *filter, _In_ UINT64 flowContext,
                                        _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    FWPS_STREAM_CALLOUT_IO_PACKET0 *packet = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    FLOWMON_CONTEXT *context = (FLOWMON_CONTEXT *)(ULONG_PTR)flowContext;
    FWPS_STREAM_DATA0 *streamData;
    SIZE_T toCopy;
    SIZE_T copied = 0;

    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(filter);

    classifyOut->actionType = FWP_ACTION_CONTINUE;
    if (packet == NULL || context == NULL || packet->streamData == NULL) {
        return;
    }
    packet->streamAction = FWPS_STREAM_ACTION_NONE;
    streamData = packet->streamData;
    if (streamData->dataLength == 0) {
        return; /* a disconnect indication */
    }

    if (streamData->flags & FWPS_STREAM_FLAG_SEND) {
        context->bytesSent += streamData->dataLength;
    } else {
        context->bytesReceived += streamData->dataLength;
    }

    /* Look at the start of the indication in a bounded buffer. */
    toCopy = streamData->dataLength < sizeof(context->sample) ? streamData->dataLength
                                                              : sizeof(context->sample);
    FwpsCopyStreamDataToBuffer0(streamData, context->sample, toCopy, &copied);
    for (SIZE_T i = 0; i < copied && i < sizeof(context->sample); i++) {
        UINT8 c = context->sample[i];
        if ((c >= 0x20 && c < 0x7f) || c == '\r' || c == '\n' || c == '\t') {
            context->printableBytes++;
        }
    }
    context->sampledBytes += copied;
}

static void FlowMonFormatAddress(_In_ const FLOWMON_CONTEXT *context, _In_ const UINT8 *address,
                                 _Out_writes_(46) PSTR text)
{
    if (context->ipv6) {
        RtlIpv6AddressToStringA(address, text);
    } else {
        RtlIpv4AddressToStringA(address, text);
    }
}

static void NTAPI FlowMonFlowDelete(_In_ UINT16 layerId, _In_ UINT32 calloutId,
                                    _In_ UINT64 flowContext)
{
    FLOWMON_CONTEXT *context = (FLOWMON_CONTEXT *)(ULONG_PTR)flowContext;
    KLOCK_QUEUE_HANDLE lockHandle;
    CHAR local[46];
    CHAR remote[46];

    UNREFERENCED_PARAMETER(layerId);
    UNREFERENCED_PARAMETER(calloutId);
    if (context == NULL) {
        return;
    }

    KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
    if (context->onList) {
        RemoveEntryList(&context->link);
        context->onList = FALSE;
    }
    g_totalFlows++;
    g_totalSent += context->bytesSent;
    g_totalReceived += context->bytesReceived;
    KeReleaseInStackQueuedSpinLock(&lockHandle);

    if (g_verbose != 0) {
        FlowMonFormatAddress(context, context->localAddress, local);
        FlowMonFormatAddress(context, context->remoteAddress, remote);
        DbgPrint("FlowMonitor: flow %s %s%s%s:%u %s %s%s%s:%u sent=%I64u received=%I64u "
                 "printable=%I64u/%I64u\n",
                 context->ipv6 ? "ipv6" : "ipv4", context->ipv6 ? "[" : "", local,
                 context->ipv6 ? "]" : "", (ULONG)context->localPort,
                 context->outbound ? "->" : "<-", context->ipv6 ? "[" : "", remote,
                 context->ipv6 ? "]" : "", (ULONG)context->remotePort, context->bytesSent,
                 context->bytesReceived, context->printableBytes, context->sampledBytes);
    }
    ExFreePoolWithTag(context, FLOWMON_TAG);
    InterlockedDecrement(&g_liveContexts);
}

static NTSTATUS NTAPI FlowMonNotify(_In_ FWPS_CALLOUT_NOTIFY_TYPE notifyType,
                                    _In_ const GUID *filterKey, _Inout_ FWPS_FILTER0 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

/* ---- registration ----------------------------------------------------------------- */

static NTSTATUS FlowMonRegisterCallout(_In_ const GUID *calloutKey,
                                       _In_ FWPS_CALLOUT_CLASSIFY_FN0 classifyFn,
                                       _In_opt_ FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 flowDeleteFn,
                                       _In_ UINT32 flags, _Out_ UINT32 *calloutId)
{
    FWPS_CALLOUT0 callout = {0};
    callout.calloutKey = *calloutKey;
    callout.flags = flags;
    callout.classifyFn = classifyFn;
    callout.notifyFn = FlowMonNotify;
    callout.flowDeleteFn = flowDeleteFn;
    return FwpsCalloutRegister0(g_device, &callout, calloutId);
}

static NTSTATUS FlowMonAddCalloutAndFilter(_In_ const GUID *calloutKey, _In_ const GUID *layerKey,
                                           _In_ PWSTR name, _In_ BOOLEAN tcpOnly)
{
    FWPM_CALLOUT0 callout = {0};
    FWPM_FILTER0 filter = {0};
    FWPM_FILTER_CONDITION0 condition = {0};
    NTSTATUS status;

    callout.calloutKey = *calloutKey;
    callout.displayData.name = name;
    callout.applicableLayer = *layerKey;
    status = FwpmCalloutAdd0(g_engine, &callout, NULL, NULL);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    filter.displayData.name = name;
    filter.layerKey = *layerKey;
    filter.subLayerKey = FLOWMON_SUBLAYER;
    filter.action.type = FWP_ACTION_CALLOUT_INSPECTION;
    filter.action.calloutKey = *calloutKey;
    filter.weight.type = FWP_EMPTY;
    if (tcpOnly) {
        condition.fieldKey = FWPM_CONDITION_IP_PROTOCOL;
        condition.matchType = FWP_MATCH_EQUAL;
        condition.conditionValue.type = FWP_UINT8;
        condition.conditionValue.uint8 = IPPROTO_TCP;
        filter.numFilterConditions = 1;
        filter.filterCondition = &condition;
    }
    return FwpmFilterAdd0(g_engine, &filter, NULL, NULL);
}

/* Reads Verbose with RtlQueryRegistryValues from the service key. */
static NTSTATUS FlowMonReadParameters(_In_ PUNICODE_STRING RegistryPath)
{
    RTL_QUERY_REGISTRY_TABLE table[2];
    ULONG verbose = g_verbose;
    NTSTATUS status;

    RtlZeroMemory(table, sizeof(table));
    table[0].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK;
    table[0].Name = L"Verbose";
    table[0].EntryContext = &verbose;
    table[0].DefaultType = (REG_DWORD << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) | REG_NONE;
    /* RegistryPath->Buffer is NUL-terminated for a driver's DriverEntry. */
    status = RtlQueryRegistryValues(RTL_REGISTRY_ABSOLUTE, RegistryPath->Buffer, table, NULL,
                                    NULL);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    g_verbose = verbose;
    return STATUS_SUCCESS;
}

/* Removes the contexts of flows still alive and waits for their flowDeleteFn. */
static void FlowMonRemoveContexts(void)
{
    KLOCK_QUEUE_HANDLE lockHandle;
    LARGE_INTEGER interval;

    KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
    g_unloading = TRUE;
    while (!IsListEmpty(&g_flows)) {
        FLOWMON_CONTEXT *context = CONTAINING_RECORD(RemoveHeadList(&g_flows), FLOWMON_CONTEXT,
                                                     link);
        UINT64 flowHandle = context->flowHandle;
        UINT16 layerId = context->streamLayerId;
        UINT32 calloutId = context->streamCalloutId;
        context->onList = FALSE;
        /* flowDeleteFn takes the lock (and may free the context): call out
         * without it. */
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        (void)FwpsFlowRemoveContext0(flowHandle, layerId, calloutId);
        KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);

    interval.QuadPart = -10 * 1000 * 10; /* 10 ms, relative */
    while (InterlockedCompareExchange(&g_liveContexts, 0, 0) != 0) {
        KeDelayExecutionThread(KernelMode, FALSE, &interval);
    }
}

static void FlowMonCleanup(void)
{
    if (g_engine != NULL) {
        FwpmEngineClose0(g_engine); /* dynamic session: its filters and callouts go too */
        g_engine = NULL;
    }
    FlowMonRemoveContexts();
    for (int i = 0; i < 2; i++) {
        if (g_streamCalloutIds[i] != 0) {
            FwpsCalloutUnregisterById0(g_streamCalloutIds[i]);
            g_streamCalloutIds[i] = 0;
        }
        if (g_aleCalloutIds[i] != 0) {
            FwpsCalloutUnregisterById0(g_aleCalloutIds[i]);
            g_aleCalloutIds[i] = 0;
        }
    }
    if (g_device != NULL) {
        IoDeleteDevice(g_device);
        g_device = NULL;
    }
}

_Use_decl_annotations_
VOID FlowMonUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    FlowMonCleanup();
    DbgPrint("FlowMonitor: unloaded: %I64u flows, %I64u bytes sent, %I64u bytes received, "
             "%ld contexts not associated\n",
             g_totalFlows, g_totalSent, g_totalReceived, g_associateFailures);
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    FWPM_SESSION0 session = {0};
    FWPM_SUBLAYER0 sublayer = {0};
    NTSTATUS status;

    NT_ASSERT(KeGetCurrentIrql() == PASSIVE_LEVEL);
    KeInitializeSpinLock(&g_flowsLock);
    InitializeListHead(&g_flows);

    status = FlowMonReadParameters(RegistryPath);
    if (!NT_SUCCESS(status)) {
        DbgPrint("FlowMonitor: cannot read parameters of %wZ: 0x%08X\n", RegistryPath, status);
        return status;
    }

    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN,
                            FALSE, &g_device);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    /* Run-time callouts first, so the filters find them. */
    status = FlowMonRegisterCallout(&FLOWMON_ALE_CALLOUT_V4, FlowMonAleClassify, NULL, 0,
                                    &g_aleCalloutIds[0]);
    if (NT_SUCCESS(status)) {
        status = FlowMonRegisterCallout(&FLOWMON_ALE_CALLOUT_V6, FlowMonAleClassify, NULL, 0,
                                        &g_aleCalloutIds[1]);
    }
    if (NT_SUCCESS(status)) {
        status = FlowMonRegisterCallout(&FLOWMON_STREAM_CALLOUT_V4, FlowMonStreamClassify,
                                        FlowMonFlowDelete, FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW,
                                        &g_streamCalloutIds[0]);
    }
    if (NT_SUCCESS(status)) {
        status = FlowMonRegisterCallout(&FLOWMON_STREAM_CALLOUT_V6, FlowMonStreamClassify,
                                        FlowMonFlowDelete, FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW,
                                        &g_streamCalloutIds[1]);
    }

    if (NT_SUCCESS(status)) {
        session.flags = FWPM_SESSION_FLAG_DYNAMIC;
        status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &g_engine);
    }
    if (NT_SUCCESS(status)) {
        status = FwpmTransactionBegin0(g_engine, 0);
        if (NT_SUCCESS(status)) {
            sublayer.subLayerKey = FLOWMON_SUBLAYER;
            sublayer.displayData.name = L"Flow monitor";
            sublayer.weight = 0x100;
            status = FwpmSubLayerAdd0(g_engine, &sublayer, NULL);
            if (NT_SUCCESS(status)) {
                status = FlowMonAddCalloutAndFilter(&FLOWMON_ALE_CALLOUT_V4,
                                                    &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4,
                                                    L"Flow monitor: new TCP flows (IPv4)", TRUE);
            }
            if (NT_SUCCESS(status)) {
                status = FlowMonAddCalloutAndFilter(&FLOWMON_ALE_CALLOUT_V6,
                                                    &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6,
                                                    L"Flow monitor: new TCP flows (IPv6)", TRUE);
            }
            if (NT_SUCCESS(status)) {
                status = FlowMonAddCalloutAndFilter(&FLOWMON_STREAM_CALLOUT_V4,
                                                    &FWPM_LAYER_STREAM_V4,
                                                    L"Flow monitor: stream bytes (IPv4)", FALSE);
            }
            if (NT_SUCCESS(status)) {
                status = FlowMonAddCalloutAndFilter(&FLOWMON_STREAM_CALLOUT_V6,
                                                    &FWPM_LAYER_STREAM_V6,
                                                    L"Flow monitor: stream bytes (IPv6)", FALSE);
            }
            if (NT_SUCCESS(status)) {
                status = FwpmTransactionCommit0(g_engine);
            } else {
                FwpmTransactionAbort0(g_engine);
            }
        }
    }
    if (!NT_SUCCESS(status)) {
        DbgPrint("FlowMonitor: set-up failed: 0x%08X\n", status);
        FlowMonCleanup();
        return status;
    }

    DriverObject->DriverUnload = FlowMonUnload;
    DbgPrint("FlowMonitor: loaded (Verbose=%lu)\n", g_verbose);
    return STATUS_SUCCESS;
}
