/*
 * A stream callout that defers the first received data of every flow
 * (FWPS_STREAM_ACTION_DEFER) and resumes it DeferMs milliseconds later with
 * FwpsStreamContinue0, as spec S19 asks:
 *   - DEFER only for inbound data: never for a SEND indication, never for a
 *     DISCONNECT (zero-length) one;
 *   - FwpsStreamContinue0 never from classifyFn: a system thread calls it,
 *     with the flags of the deferred indication and the stream layer id;
 *   - no injection at all, so never one at the same time as the continue.
 * While the flow is deferred the host stops reading the receive side: the
 * TCP window closes (tests/proxy_actions.py watches it with ss).
 *
 * The callout keeps one context per flow, associated at the stream layer on
 * the first deferral (FwpsFlowAssociateContext0): a flow with a context was
 * deferred once and is permitted from then on. flowDeleteFn frees it.
 *
 * Parameters (the Parameters subkey of the service key):
 *   DeferMs  REG_DWORD  how long each flow stays deferred (default 1500)
 *
 * Lines: "DeferDriver: deferring flow N (B bytes received)",
 *        "DeferDriver: continued flow N after M ms: 0xSTATUS",
 *        "DeferDriver: unloaded: D deferred, C continued, F failed".
 */
#include "test_driver.h"

#define INITGUID
#include <guiddef.h>

// {5b0e7d4a-2c61-4f3e-8a9d-1e2f3a4b5c01}
DEFINE_GUID(DEFER_SUBLAYER, 0x5b0e7d4a, 0x2c61, 0x4f3e, 0x8a, 0x9d, 0x1e, 0x2f, 0x3a, 0x4b, 0x5c,
            0x01);
// {5b0e7d4a-2c61-4f3e-8a9d-1e2f3a4b5c10}
DEFINE_GUID(DEFER_CALLOUT_V4, 0x5b0e7d4a, 0x2c61, 0x4f3e, 0x8a, 0x9d, 0x1e, 0x2f, 0x3a, 0x4b, 0x5c,
            0x10);
// {5b0e7d4a-2c61-4f3e-8a9d-1e2f3a4b5c11}
DEFINE_GUID(DEFER_CALLOUT_V6, 0x5b0e7d4a, 0x2c61, 0x4f3e, 0x8a, 0x9d, 0x1e, 0x2f, 0x3a, 0x4b, 0x5c,
            0x11);

#define DEFER_TAG 'rfeD'
#define DEFER_DEFAULT_MS 1500

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD DeferUnload;
KSTART_ROUTINE DeferWorker;

typedef struct DEFER_FLOW_ {
    LIST_ENTRY link;        /* on g_flows while associated; under g_lock */
    LIST_ENTRY pendingLink; /* on g_pending while it owes a continue; under g_lock */
    BOOLEAN onList;
    BOOLEAN pending;
    UINT64 flowHandle;
    UINT16 layerId;
    UINT32 calloutId;
    UINT32 deferredFlags;   /* the deferred indication's flags, for FwpsStreamContinue0 */
    ULONGLONG deferredAt;   /* KeQueryInterruptTime units (100 ns) */
} DEFER_FLOW;

static UINT32 g_calloutIds[2];
static ULONG g_deferMs = DEFER_DEFAULT_MS;

static KSPIN_LOCK g_lock;
static LIST_ENTRY g_flows;
static LIST_ENTRY g_pending;
static BOOLEAN g_stopping;
static KEVENT g_wake;
static PETHREAD g_worker;
static LONG volatile g_liveContexts;
static LONG volatile g_deferred;
static LONG volatile g_continued;
static LONG volatile g_failed;

/* ---- STREAM ------------------------------------------------------------------------- */

static void NTAPI DeferClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                                _In_ UINT64 flowContext, _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    FWPS_STREAM_CALLOUT_IO_PACKET0 *packet = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    FWPS_STREAM_DATA0 *streamData;
    KLOCK_QUEUE_HANDLE lockHandle;
    DEFER_FLOW *flow;
    BOOLEAN stopping;
    NTSTATUS status;

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
    /* S19: inbound data only; a FIN (zero-length DISCONNECT) is never deferred. */
    if (!(streamData->flags & FWPS_STREAM_FLAG_RECEIVE) || streamData->dataLength == 0) {
        return;
    }
    if (flowContext != 0) {
        return; /* deferred once already: everything passes from now on */
    }
    if (!FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_FLOW_HANDLE)) {
        return;
    }

    flow = (DEFER_FLOW *)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(*flow), DEFER_TAG);
    if (flow == NULL) {
        return; /* cannot keep track: let it pass */
    }
    flow->flowHandle = inMetaValues->flowHandle;
    flow->layerId = inFixedValues->layerId;
    flow->calloutId = filter->action.calloutId;
    flow->deferredFlags = streamData->flags;
    flow->deferredAt = KeQueryInterruptTime();
    flow->onList = FALSE;
    flow->pending = FALSE;

    KeAcquireInStackQueuedSpinLock(&g_lock, &lockHandle);
    stopping = g_stopping;
    if (!stopping) {
        InsertTailList(&g_flows, &flow->link);
        flow->onList = TRUE;
        InterlockedIncrement(&g_liveContexts);
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    if (stopping) {
        ExFreePoolWithTag(flow, DEFER_TAG);
        return;
    }

    status = FwpsFlowAssociateContext0(flow->flowHandle, flow->layerId, flow->calloutId,
                                       (UINT64)(ULONG_PTR)flow);
    if (status != STATUS_SUCCESS) {
        KeAcquireInStackQueuedSpinLock(&g_lock, &lockHandle);
        RemoveEntryList(&flow->link);
        flow->onList = FALSE;
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        InterlockedDecrement(&g_liveContexts);
        ExFreePoolWithTag(flow, DEFER_TAG);
        DbgPrint("DeferDriver: FwpsFlowAssociateContext0 failed: 0x%08X, not deferring\n", status);
        return;
    }

    /* The worker owes this flow its continue from now on. */
    KeAcquireInStackQueuedSpinLock(&g_lock, &lockHandle);
    InsertTailList(&g_pending, &flow->pendingLink);
    flow->pending = TRUE;
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    KeSetEvent(&g_wake, IO_NO_INCREMENT, FALSE);

    InterlockedIncrement(&g_deferred);
    DbgPrint("DeferDriver: deferring flow %I64u (%Iu bytes received)\n", inMetaValues->flowHandle,
             streamData->dataLength);
    /* The bytes stay held and are indicated again after the continue;
     * actionType is ignored along with a stream action (S14). */
    packet->streamAction = FWPS_STREAM_ACTION_DEFER;
    classifyOut->actionType = FWP_ACTION_NONE;
}

static void NTAPI DeferFlowDelete(_In_ UINT16 layerId, _In_ UINT32 calloutId,
                                  _In_ UINT64 flowContext)
{
    DEFER_FLOW *flow = (DEFER_FLOW *)(ULONG_PTR)flowContext;
    KLOCK_QUEUE_HANDLE lockHandle;

    UNREFERENCED_PARAMETER(layerId);
    UNREFERENCED_PARAMETER(calloutId);
    if (flow == NULL) {
        return;
    }
    KeAcquireInStackQueuedSpinLock(&g_lock, &lockHandle);
    if (flow->onList) {
        RemoveEntryList(&flow->link);
        flow->onList = FALSE;
    }
    if (flow->pending) {
        RemoveEntryList(&flow->pendingLink); /* gone before its continue was due */
        flow->pending = FALSE;
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    ExFreePoolWithTag(flow, DEFER_TAG);
    InterlockedDecrement(&g_liveContexts);
}

/* ---- the continuing thread ----------------------------------------------------------- */

/* PASSIVE_LEVEL, outside any classifyFn: the only place FwpsStreamContinue0
 * is called. Flows are taken off g_pending under the lock and their ids
 * copied, so flowDeleteFn may free the context at any time after. */
_Use_decl_annotations_
VOID DeferWorker(PVOID StartContext)
{
    const ULONGLONG delay = (ULONGLONG)g_deferMs * 10000; /* 100 ns units */

    UNREFERENCED_PARAMETER(StartContext);
    NT_ASSERT(KeGetCurrentIrql() == PASSIVE_LEVEL);
    for (;;) {
        KLOCK_QUEUE_HANDLE lockHandle;
        ULONGLONG now = KeQueryInterruptTime();
        ULONGLONG wait = 0;
        BOOLEAN due = FALSE;
        BOOLEAN stop;
        UINT64 flowHandle = 0;
        UINT16 layerId = 0;
        UINT32 calloutId = 0;
        UINT32 flags = 0;
        ULONGLONG deferredAt = 0;

        KeAcquireInStackQueuedSpinLock(&g_lock, &lockHandle);
        stop = g_stopping;
        if (!IsListEmpty(&g_pending)) {
            /* Oldest first: every flow waits the same time. */
            DEFER_FLOW *flow = CONTAINING_RECORD(g_pending.Flink, DEFER_FLOW, pendingLink);
            if (stop || now - flow->deferredAt >= delay) {
                RemoveEntryList(&flow->pendingLink);
                flow->pending = FALSE;
                flowHandle = flow->flowHandle;
                layerId = flow->layerId;
                calloutId = flow->calloutId;
                flags = flow->deferredFlags;
                deferredAt = flow->deferredAt;
                due = TRUE;
            } else {
                wait = delay - (now - flow->deferredAt);
            }
        }
        KeReleaseInStackQueuedSpinLock(&lockHandle);

        if (due) {
            /* The flags of the deferred indication (S19): RECEIVE and
             * whatever modifiers it carried. */
            NTSTATUS status = FwpsStreamContinue0(flowHandle, calloutId, layerId, flags);
            if (NT_SUCCESS(status)) {
                InterlockedIncrement(&g_continued);
            } else {
                InterlockedIncrement(&g_failed);
            }
            DbgPrint("DeferDriver: continued flow %I64u after %I64u ms: 0x%08X\n", flowHandle,
                     (KeQueryInterruptTime() - deferredAt) / 10000, status);
            continue;
        }
        if (stop) {
            PsTerminateSystemThread(STATUS_SUCCESS);
        }
        if (wait != 0) {
            LARGE_INTEGER timeout;
            timeout.QuadPart = -(LONGLONG)wait;
            KeWaitForSingleObject(&g_wake, Executive, KernelMode, FALSE, &timeout);
        } else {
            KeWaitForSingleObject(&g_wake, Executive, KernelMode, FALSE, NULL);
        }
    }
}

/* ---- set-up and unload ---------------------------------------------------------------- */

static const TEST_STREAM_CALLOUT g_callout = {
    .calloutKeys = {&DEFER_CALLOUT_V4, &DEFER_CALLOUT_V6},
    .classifyFn = DeferClassify,
    .flowDeleteFn = DeferFlowDelete,
    .calloutName = L"Defer test: stream",
    .filterName = L"Defer test: stream",
    .filterAction = FWP_ACTION_CALLOUT_TERMINATING,
    .sublayerKey = &DEFER_SUBLAYER,
    .sublayerName = L"Defer test",
};

static void DeferCleanup(void)
{
    KLOCK_QUEUE_HANDLE lockHandle;

    TestCloseSession(); /* no classify comes any more */
    KeAcquireInStackQueuedSpinLock(&g_lock, &lockHandle);
    g_stopping = TRUE;
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    KeSetEvent(&g_wake, IO_NO_INCREMENT, FALSE);
    if (g_worker != NULL) {
        /* It continues what is still pending, then ends. */
        KeWaitForSingleObject(g_worker, Executive, KernelMode, FALSE, NULL);
        ObDereferenceObject(g_worker);
        g_worker = NULL;
    }

    /* Contexts of flows still alive (E3 step 5). */
    KeAcquireInStackQueuedSpinLock(&g_lock, &lockHandle);
    while (!IsListEmpty(&g_flows)) {
        DEFER_FLOW *flow = CONTAINING_RECORD(RemoveHeadList(&g_flows), DEFER_FLOW, link);
        UINT64 flowHandle = flow->flowHandle;
        UINT16 layerId = flow->layerId;
        UINT32 calloutId = flow->calloutId;
        flow->onList = FALSE;
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        (void)FwpsFlowRemoveContext0(flowHandle, layerId, calloutId);
        KeAcquireInStackQueuedSpinLock(&g_lock, &lockHandle);
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    TestWaitForZero(&g_liveContexts);

    TestUnregisterCallouts(g_calloutIds, 2);
    TestDeleteDevice();
}

_Use_decl_annotations_
VOID DeferUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    DeferCleanup();
    DbgPrint("DeferDriver: unloaded: %ld deferred, %ld continued, %ld failed\n", g_deferred,
             g_continued, g_failed);
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    RTL_QUERY_REGISTRY_TABLE table[2];
    HANDLE threadHandle;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);
    NT_ASSERT(KeGetCurrentIrql() == PASSIVE_LEVEL);
    KeInitializeSpinLock(&g_lock);
    InitializeListHead(&g_flows);
    InitializeListHead(&g_pending);
    KeInitializeEvent(&g_wake, SynchronizationEvent, FALSE);

    RtlZeroMemory(table, sizeof(table));
    table[0].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK;
    table[0].Name = L"DeferMs";
    table[0].EntryContext = &g_deferMs;
    table[0].DefaultType = (REG_DWORD << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) | REG_NONE;
    status = RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"defer_driver\\Parameters", table,
                                    NULL, NULL);
    if (!NT_SUCCESS(status)) {
        DbgPrint("DeferDriver: bad parameters: 0x%08X\n", status);
        return status;
    }

    status = TestCreateDevice(DriverObject);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = PsCreateSystemThread(&threadHandle, THREAD_ALL_ACCESS, NULL, NULL, NULL, DeferWorker,
                                  NULL);
    if (NT_SUCCESS(status)) {
        status = ObReferenceObjectByHandle(threadHandle, THREAD_ALL_ACCESS, *PsThreadType,
                                           KernelMode, (PVOID *)&g_worker, NULL);
        ZwClose(threadHandle);
    }
    if (NT_SUCCESS(status)) {
        status = TestAddStreamCallout(&g_callout, g_calloutIds);
    }
    if (!NT_SUCCESS(status)) {
        DbgPrint("DeferDriver: set-up failed: 0x%08X\n", status);
        DeferCleanup();
        return status;
    }
    DriverObject->DriverUnload = DeferUnload;
    DbgPrint("DeferDriver: loaded, flows deferred for %lu ms\n", g_deferMs);
    return STATUS_SUCCESS;
}
