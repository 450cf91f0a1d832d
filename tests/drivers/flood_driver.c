/*
 * A misbehaving stream callout driver, written as for Windows: it injects
 * far more into a stream than the stream carries, so the data plane's
 * buffer limits (`openwfp proxy --max-buffered`) must stop it rather than
 * the host's memory running out. Every byte it injects comes from one static
 * 1 MiB buffer (an MDL over it per NBL), so the driver itself stays small
 * however much it injects.
 *
 * An indication with data triggers the flood when it contains Trigger within
 * its first FLOOD_LOOK bytes (without a Trigger: any indication of the
 * flooded direction). Every indication is permitted unchanged.
 *
 * Parameters (the Parameters subkey of the service key):
 *   Mode       REG_SZ     "inline" (default): a triggering indication gets
 *                         FloodMiB NBLs of 1 MiB injected inline, from
 *                         classifyFn, into the flooded direction;
 *                         "oob": the first triggering indication of a flow
 *                         starts an IO work item that injects 1 MiB NBLs into
 *                         the flooded direction from its own thread, keeping
 *                         up to FLOOD_PENDING_MAX of them in flight, until an
 *                         injection fails (the flow is gone), the flow is
 *                         deleted, or FloodMiB MiB went in.
 *   FloodMiB   REG_DWORD  inline: MiB per triggering indication (default 64);
 *                         oob: MiB per flow at most (default 4096)
 *   Direction  REG_DWORD  0 = send, 1 = receive (default): the direction flooded
 *   Trigger    REG_SZ     ASCII, 1..FLOOD_TRIGGER_MAX characters (default none)
 *
 * DriverUnload prints how much was injected and how many injections
 * completed with a failure status (those the data plane discarded).
 */
#include "test_driver.h"

#define INITGUID
#include <guiddef.h>

// {3c9a5f70-1d2e-4b6a-8f01-6e5d4c3b2a01}
DEFINE_GUID(FLOOD_SUBLAYER, 0x3c9a5f70, 0x1d2e, 0x4b6a, 0x8f, 0x01, 0x6e, 0x5d, 0x4c, 0x3b, 0x2a,
            0x01);
// {3c9a5f70-1d2e-4b6a-8f01-6e5d4c3b2a02}
DEFINE_GUID(FLOOD_CALLOUT_V4, 0x3c9a5f70, 0x1d2e, 0x4b6a, 0x8f, 0x01, 0x6e, 0x5d, 0x4c, 0x3b,
            0x2a, 0x02);
// {3c9a5f70-1d2e-4b6a-8f01-6e5d4c3b2a03}
DEFINE_GUID(FLOOD_CALLOUT_V6, 0x3c9a5f70, 0x1d2e, 0x4b6a, 0x8f, 0x01, 0x6e, 0x5d, 0x4c, 0x3b,
            0x2a, 0x03);

#define FLOOD_TAG 'dolF'
#define FLOOD_CHUNK (1024 * 1024)   /* bytes per injected NBL */
#define FLOOD_PENDING_MAX 16        /* oob: NBLs in flight per flow */
#define FLOOD_TRIGGER_MAX 64
#define FLOOD_LOOK 512              /* bytes of an indication searched for Trigger */

typedef enum FLOOD_MODE_ { FloodInline, FloodOob } FLOOD_MODE;

/* One flow being flooded out of band. References: the association (dropped
 * by flowDeleteFn), the work item while it runs, one per pending injection. */
typedef struct FLOOD_FLOW_ {
    LONG volatile references;
    LONG volatile pending;
    LONG volatile closed;
    UINT64 flowHandle;
    UINT16 layerId;
    UINT32 calloutId;
    PIO_WORKITEM workItem;
    KEVENT completed; /* an injection completed, or the flow was deleted */
} FLOOD_FLOW;

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD FloodUnload;
static IO_WORKITEM_ROUTINE FloodWorker;

static HANDLE g_injection;
static NDIS_HANDLE g_nblPool;
static UINT32 g_calloutIds[2];
static UINT8 g_chunk[FLOOD_CHUNK];

static FLOOD_MODE g_mode;
static ULONG g_floodMiB;
static ULONG g_direction = 1;
static UINT8 g_trigger[FLOOD_TRIGGER_MAX];
static SIZE_T g_triggerLength;

static LONG volatile g_stopping;
static LONG volatile g_liveFlows;
static LONG volatile g_pendingInjections;
static LONG64 volatile g_injectedBytes;
static LONG volatile g_failedCompletions;

static UINT32 FloodDirectionFlag(void)
{
    return g_direction == 0 ? FWPS_STREAM_FLAG_SEND : FWPS_STREAM_FLAG_RECEIVE;
}

static void FloodFlowRelease(_In_ FLOOD_FLOW *flow)
{
    if (InterlockedDecrement(&flow->references) == 0) {
        IoFreeWorkItem(flow->workItem);
        ExFreePoolWithTag(flow, FLOOD_TAG);
        InterlockedDecrement(&g_liveFlows);
    }
}

static void NTAPI FloodInjectComplete(_In_ void *context, _Inout_ NET_BUFFER_LIST *netBufferList,
                                      _In_ BOOLEAN dispatchLevel)
{
    FLOOD_FLOW *flow = (FLOOD_FLOW *)context;
    MDL *mdl = NET_BUFFER_FIRST_MDL(NET_BUFFER_LIST_FIRST_NB(netBufferList));

    UNREFERENCED_PARAMETER(dispatchLevel);
    if (!NT_SUCCESS(NET_BUFFER_LIST_STATUS(netBufferList))) {
        InterlockedIncrement(&g_failedCompletions);
    }
    FwpsFreeNetBufferList0(netBufferList);
    IoFreeMdl(mdl); /* over g_chunk, which is not ours to free */
    InterlockedDecrement(&g_pendingInjections);
    if (flow != NULL) {
        InterlockedDecrement(&flow->pending);
        KeSetEvent(&flow->completed, IO_NO_INCREMENT, FALSE);
        FloodFlowRelease(flow);
    }
}

/* One 1 MiB NBL into the stream; `flow` (oob) is referenced by the completion. */
static NTSTATUS FloodInjectChunk(_In_ UINT64 flowHandle, _In_ UINT32 calloutId,
                                 _In_ UINT16 layerId, _In_opt_ FLOOD_FLOW *flow)
{
    NET_BUFFER_LIST *netBufferList = NULL;
    MDL *mdl;
    NTSTATUS status;

    mdl = IoAllocateMdl(g_chunk, FLOOD_CHUNK, FALSE, FALSE, NULL);
    if (mdl == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    MmBuildMdlForNonPagedPool(mdl);
    status = FwpsAllocateNetBufferAndNetBufferList0(g_nblPool, 0, 0, mdl, 0, FLOOD_CHUNK,
                                                    &netBufferList);
    if (!NT_SUCCESS(status)) {
        IoFreeMdl(mdl);
        return status;
    }
    InterlockedIncrement(&g_pendingInjections);
    if (flow != NULL) {
        InterlockedIncrement(&flow->references);
        InterlockedIncrement(&flow->pending);
    }
    status = FwpsStreamInjectAsync0(g_injection, NULL, 0, flowHandle, calloutId, layerId,
                                    FloodDirectionFlag(), netBufferList, FLOOD_CHUNK,
                                    FloodInjectComplete, flow);
    if (!NT_SUCCESS(status)) {
        /* No completion comes for a failed call: undo here. */
        if (flow != NULL) {
            InterlockedDecrement(&flow->pending);
            FloodFlowRelease(flow); /* never the last: the caller holds one */
        }
        InterlockedDecrement(&g_pendingInjections);
        FwpsFreeNetBufferList0(netBufferList);
        IoFreeMdl(mdl);
        return status;
    }
    InterlockedAdd64(&g_injectedBytes, FLOOD_CHUNK);
    return STATUS_SUCCESS;
}

/* ---- out of band ------------------------------------------------------------------ */

_Use_decl_annotations_
static VOID FloodWorker(PDEVICE_OBJECT DeviceObject, PVOID Context)
{
    FLOOD_FLOW *flow = (FLOOD_FLOW *)Context;
    UINT64 injected = 0;
    UINT64 limit = (UINT64)g_floodMiB * FLOOD_CHUNK;
    LARGE_INTEGER timeout;

    UNREFERENCED_PARAMETER(DeviceObject);
    timeout.QuadPart = -10 * 1000 * 50; /* 50 ms */
    while (!InterlockedCompareExchange(&flow->closed, 0, 0) &&
           !InterlockedCompareExchange(&g_stopping, 0, 0) && injected < limit) {
        if (InterlockedCompareExchange(&flow->pending, 0, 0) >= FLOOD_PENDING_MAX) {
            /* The data plane completes an injection once it took the bytes. */
            (void)KeWaitForSingleObject(&flow->completed, Executive, KernelMode, FALSE, &timeout);
            continue;
        }
        if (!NT_SUCCESS(FloodInjectChunk(flow->flowHandle, flow->calloutId, flow->layerId, flow))) {
            break; /* the flow is gone (or going): nothing more to flood */
        }
        injected += FLOOD_CHUNK;
    }
    FloodFlowRelease(flow); /* the work item's */
}

static void NTAPI FloodFlowDelete(_In_ UINT16 layerId, _In_ UINT32 calloutId,
                                  _In_ UINT64 flowContext)
{
    FLOOD_FLOW *flow = (FLOOD_FLOW *)(ULONG_PTR)flowContext;

    UNREFERENCED_PARAMETER(layerId);
    UNREFERENCED_PARAMETER(calloutId);
    if (flow == NULL) {
        return;
    }
    InterlockedExchange(&flow->closed, 1);
    KeSetEvent(&flow->completed, IO_NO_INCREMENT, FALSE);
    FloodFlowRelease(flow); /* the association's */
}

/* The first classify of a flow: a context, associated, and its work item queued. */
static void FloodOobStart(_In_ UINT64 flowHandle, _In_ UINT16 layerId, _In_ UINT32 calloutId)
{
    FLOOD_FLOW *flow;

    if (InterlockedCompareExchange(&g_stopping, 0, 0)) {
        return;
    }
    flow = (FLOOD_FLOW *)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(*flow), FLOOD_TAG);
    if (flow == NULL) {
        return;
    }
    flow->workItem = IoAllocateWorkItem(g_device);
    if (flow->workItem == NULL) {
        ExFreePoolWithTag(flow, FLOOD_TAG);
        return;
    }
    flow->references = 2; /* the association and the work item */
    flow->flowHandle = flowHandle;
    flow->layerId = layerId;
    flow->calloutId = calloutId;
    KeInitializeEvent(&flow->completed, SynchronizationEvent, FALSE);
    InterlockedIncrement(&g_liveFlows);
    if (FwpsFlowAssociateContext0(flowHandle, layerId, calloutId, (UINT64)(ULONG_PTR)flow) !=
        STATUS_SUCCESS) {
        IoFreeWorkItem(flow->workItem);
        ExFreePoolWithTag(flow, FLOOD_TAG);
        InterlockedDecrement(&g_liveFlows);
        return;
    }
    IoQueueWorkItem(flow->workItem, FloodWorker, DelayedWorkQueue, flow);
}

/* ---- classify ----------------------------------------------------------------------- */

/* Whether this indication starts the flood. */
static BOOLEAN FloodTriggered(_In_ const FWPS_STREAM_DATA0 *streamData)
{
    UINT8 look[FLOOD_LOOK];
    SIZE_T copied = 0;

    if (g_triggerLength == 0) {
        return (streamData->flags & FloodDirectionFlag()) != 0;
    }
    FwpsCopyStreamDataToBuffer0(streamData, look,
                                streamData->dataLength < FLOOD_LOOK ? streamData->dataLength
                                                                    : FLOOD_LOOK,
                                &copied);
    for (SIZE_T i = 0; i + g_triggerLength <= copied; i++) {
        if (RtlCompareMemory(look + i, g_trigger, g_triggerLength) == g_triggerLength) {
            return TRUE;
        }
    }
    return FALSE;
}

static void NTAPI FloodClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                                _In_ UINT64 flowContext, _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    FWPS_STREAM_CALLOUT_IO_PACKET0 *packet = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    FWPS_STREAM_DATA0 *streamData;

    if (!(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) {
        return;
    }
    classifyOut->actionType = FWP_ACTION_PERMIT;
    if (packet == NULL || packet->streamData == NULL) {
        return;
    }
    packet->streamAction = FWPS_STREAM_ACTION_NONE;
    packet->countBytesEnforced = 0;
    streamData = packet->streamData;
    if (streamData->dataLength == 0 ||
        !FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_FLOW_HANDLE)) {
        return; /* a FIN or an abort: nothing to flood on */
    }
    if (g_mode == FloodOob) {
        if (flowContext == 0 && FloodTriggered(streamData)) {
            FloodOobStart(inMetaValues->flowHandle, inFixedValues->layerId,
                          filter->action.calloutId);
        }
        return;
    }
    if (!FloodTriggered(streamData)) {
        return;
    }
    /* Inline: the injected bytes stand where this callout is (spec S28). */
    for (ULONG i = 0; i < g_floodMiB; i++) {
        if (!NT_SUCCESS(FloodInjectChunk(inMetaValues->flowHandle, filter->action.calloutId,
                                         inFixedValues->layerId, NULL))) {
            break;
        }
    }
}

/* ---- parameters --------------------------------------------------------------------- */

static NTSTATUS FloodReadParameters(_In_ PUNICODE_STRING RegistryPath)
{
    HANDLE parametersKey = NULL;
    RTL_QUERY_REGISTRY_TABLE table[5];
    WCHAR modeBuffer[16] = {0};
    WCHAR triggerBuffer[FLOOD_TRIGGER_MAX + 1] = {0};
    UNICODE_STRING mode;
    UNICODE_STRING trigger;
    UNICODE_STRING oob = RTL_CONSTANT_STRING(L"oob");
    UNICODE_STRING inlineMode = RTL_CONSTANT_STRING(L"inline");
    ULONG floodMiB = 0;
    ULONG direction = 1;
    NTSTATUS status;

    status = TestOpenParametersKey(RegistryPath, &parametersKey);
    mode.Buffer = modeBuffer;
    mode.Length = 0;
    mode.MaximumLength = sizeof(modeBuffer);
    trigger.Buffer = triggerBuffer;
    trigger.Length = 0;
    trigger.MaximumLength = sizeof(triggerBuffer);
    if (NT_SUCCESS(status)) {
        RtlZeroMemory(table, sizeof(table));
        table[0].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK;
        table[0].Name = L"Mode";
        table[0].EntryContext = &mode;
        table[0].DefaultType = (REG_SZ << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) | REG_NONE;
        table[1].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK;
        table[1].Name = L"FloodMiB";
        table[1].EntryContext = &floodMiB;
        table[1].DefaultType = (REG_DWORD << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) | REG_NONE;
        table[2].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK;
        table[2].Name = L"Direction";
        table[2].EntryContext = &direction;
        table[2].DefaultType = (REG_DWORD << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) | REG_NONE;
        table[3].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK;
        table[3].Name = L"Trigger";
        table[3].EntryContext = &trigger;
        table[3].DefaultType = (REG_SZ << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) | REG_NONE;
        status = RtlQueryRegistryValues(RTL_REGISTRY_HANDLE, (PCWSTR)parametersKey, table, NULL,
                                        NULL);
        ZwClose(parametersKey);
    }
    if (status == STATUS_OBJECT_NAME_NOT_FOUND) {
        status = STATUS_SUCCESS; /* no Parameters at all: every default */
    }
    if (!NT_SUCCESS(status)) {
        return status;
    }
    if (mode.Length == 0 || RtlEqualUnicodeString(&mode, &inlineMode, TRUE)) {
        g_mode = FloodInline;
    } else if (RtlEqualUnicodeString(&mode, &oob, TRUE)) {
        g_mode = FloodOob;
    } else {
        DbgPrint("FloodDriver: Mode must be inline or oob\n");
        return STATUS_INVALID_PARAMETER;
    }
    if (direction > 1) {
        DbgPrint("FloodDriver: Direction must be 0 (send) or 1 (receive)\n");
        return STATUS_INVALID_PARAMETER;
    }
    g_direction = direction;
    g_triggerLength = trigger.Length / sizeof(WCHAR);
    if (g_triggerLength > FLOOD_TRIGGER_MAX) {
        return STATUS_INVALID_PARAMETER;
    }
    for (SIZE_T i = 0; i < g_triggerLength; i++) {
        if (trigger.Buffer[i] > 0x7f) {
            DbgPrint("FloodDriver: Trigger must be ASCII\n");
            return STATUS_INVALID_PARAMETER;
        }
        g_trigger[i] = (UINT8)trigger.Buffer[i];
    }
    g_floodMiB = floodMiB != 0 ? floodMiB : (g_mode == FloodOob ? 4096 : 64);
    return STATUS_SUCCESS;
}

/* ---- registration ------------------------------------------------------------------- */

static const TEST_STREAM_CALLOUT g_callout = {
    .calloutKeys = {&FLOOD_CALLOUT_V4, &FLOOD_CALLOUT_V6},
    .classifyFn = FloodClassify,
    .flowDeleteFn = FloodFlowDelete,
    .calloutName = L"Flood",
    .filterName = L"Inject far more than the stream carries",
    .filterAction = FWP_ACTION_CALLOUT_TERMINATING,
    .sublayerKey = &FLOOD_SUBLAYER,
    .sublayerName = L"Flood",
};

static void FloodCleanup(void)
{
    InterlockedExchange(&g_stopping, 1);
    TestCloseSession();
    /* Flows are deleted before the driver unloads; their workers and
     * injections finish after that (no new flow starts once g_stopping is
     * set, and a flow's injections hold it). */
    TestWaitForZero(&g_liveFlows);
    TestWaitForZero(&g_pendingInjections);
    TestUnregisterCallouts(g_calloutIds, 2);
    TestDestroyInjection(&g_injection, &g_nblPool);
    TestDeleteDevice();
}

_Use_decl_annotations_
VOID FloodUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    FloodCleanup();
    DbgPrint("FloodDriver: unloaded after injecting %I64d bytes (%ld completed with an error)\n",
             g_injectedBytes, g_failedCompletions);
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    NTSTATUS status;

    NT_ASSERT(KeGetCurrentIrql() == PASSIVE_LEVEL);
    status = FloodReadParameters(RegistryPath);
    if (!NT_SUCCESS(status)) {
        DbgPrint("FloodDriver: bad parameters: 0x%08X\n", status);
        return status;
    }
    RtlFillMemory(g_chunk, sizeof(g_chunk), 'F');

    status = TestCreateDevice(DriverObject);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = TestCreateInjection(FLOOD_TAG, &g_injection, &g_nblPool);
    if (NT_SUCCESS(status)) {
        status = TestAddStreamCallout(&g_callout, g_calloutIds);
    }
    if (!NT_SUCCESS(status)) {
        DbgPrint("FloodDriver: set-up failed: 0x%08X\n", status);
        FloodCleanup();
        return status;
    }
    DriverObject->DriverUnload = FloodUnload;
    DbgPrint("FloodDriver: loaded, %s, %lu MiB, direction %lu\n",
             g_mode == FloodOob ? "oob" : "inline", g_floodMiB, g_direction);
    return STATUS_SUCCESS;
}
