/*
 * A WFP callout driver written exactly as for Windows, compiled with -Werror
 * against openwfp's WDK headers: a control device, an ALE flow-established
 * callout that queues each new flow for a worker system thread (a LIST_ENTRY
 * queue under a spin lock, an event to wake the worker), a per-flow context
 * freed in flowDeleteFn, pool tags, SAL annotations and ntstrsafe.
 *
 * Only the Compat* query functions at the end exist for the test; everything
 * else would build unchanged with the WDK.
 */
#include <ntddk.h>
#include <wdm.h>
#include <fwpsk.h>
#include <fwpmk.h>
#include <ntstrsafe.h>

#define INITGUID
#include <guiddef.h>

#define COMPAT_POOL_TAG 'pmoC'
#define COMPAT_CTX_TAG 'xtCC'

// {5c0de7a1-0b1e-4c0a-9d1f-0a2b3c4d5e01}
DEFINE_GUID(COMPAT_CALLOUT_ALE_V4, 0x5c0de7a1, 0x0b1e, 0x4c0a, 0x9d, 0x1f, 0x0a, 0x2b, 0x3c, 0x4d,
            0x5e, 0x01);
// {5c0de7a1-0b1e-4c0a-9d1f-0a2b3c4d5e02}
DEFINE_GUID(COMPAT_SUBLAYER, 0x5c0de7a1, 0x0b1e, 0x4c0a, 0x9d, 0x1f, 0x0a, 0x2b, 0x3c, 0x4d, 0x5e,
            0x02);

typedef struct _COMPAT_WORK {
    LIST_ENTRY Link;
    UINT64 FlowHandle;
    UINT16 RemotePort;
} COMPAT_WORK, *PCOMPAT_WORK;

typedef struct _COMPAT_FLOW_CONTEXT {
    UINT64 FlowHandle;
    ULONG Magic;
} COMPAT_FLOW_CONTEXT, *PCOMPAT_FLOW_CONTEXT;

typedef struct _COMPAT_GLOBALS {
    KSPIN_LOCK QueueLock;
    _Guarded_by_(QueueLock) LIST_ENTRY Queue;
    _Guarded_by_(QueueLock) BOOLEAN ShuttingDown;
    KEVENT WorkReady;
    PETHREAD Worker;
    PDEVICE_OBJECT Device;
    HANDLE EngineHandle;
    UINT32 CalloutId;
    LONG volatile Classified;
    LONG volatile Processed;
    LONG volatile Deleted;
    KIRQL ClassifyIrql;
    KIRQL NotifyIrql;
    KIRQL FlowDeleteIrql;
    CHAR LastMessage[64];
} COMPAT_GLOBALS;

static COMPAT_GLOBALS g_Compat;

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD CompatUnload;
KSTART_ROUTINE CompatWorker;

_IRQL_requires_max_(DISPATCH_LEVEL)
static void NTAPI CompatClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                 _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                 _Inout_opt_ void *layerData,
                                 _In_opt_ const void *classifyContext,
                                 _In_ const FWPS_FILTER1 *filter, _In_ UINT64 flowContext,
                                 _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);

    g_Compat.ClassifyIrql = KeGetCurrentIrql();
    InterlockedIncrement(&g_Compat.Classified);
    NT_ASSERT(KeGetCurrentIrql() <= DISPATCH_LEVEL);

    if (FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_FLOW_HANDLE)) {
        PCOMPAT_FLOW_CONTEXT ctx = (PCOMPAT_FLOW_CONTEXT)ExAllocatePool2(
            POOL_FLAG_NON_PAGED, sizeof(COMPAT_FLOW_CONTEXT), COMPAT_CTX_TAG);
        if (ctx != NULL) {
            ctx->FlowHandle = inMetaValues->flowHandle;
            ctx->Magic = 'galF';
            NTSTATUS status = FwpsFlowAssociateContext0(
                inMetaValues->flowHandle, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4, g_Compat.CalloutId,
                (UINT64)(ULONG_PTR)ctx);
            if (!NT_SUCCESS(status)) {
                ExFreePoolWithTag(ctx, COMPAT_CTX_TAG);
            }
        }

        PCOMPAT_WORK work = (PCOMPAT_WORK)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(COMPAT_WORK),
                                                          COMPAT_POOL_TAG);
        if (work != NULL) {
            KIRQL oldIrql;
            work->FlowHandle = inMetaValues->flowHandle;
            work->RemotePort =
                inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT]
                    .value.uint16;
            KeAcquireSpinLock(&g_Compat.QueueLock, &oldIrql);
            InsertTailList(&g_Compat.Queue, &work->Link);
            KeReleaseSpinLock(&g_Compat.QueueLock, oldIrql);
            KeSetEvent(&g_Compat.WorkReady, IO_NO_INCREMENT, FALSE);
        }
    }
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

_IRQL_requires_max_(DISPATCH_LEVEL)
static NTSTATUS NTAPI CompatNotify(_In_ FWPS_CALLOUT_NOTIFY_TYPE notifyType,
                                   _In_ const GUID *filterKey, _Inout_ FWPS_FILTER1 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    g_Compat.NotifyIrql = KeGetCurrentIrql();
    return STATUS_SUCCESS;
}

_IRQL_requires_max_(DISPATCH_LEVEL)
static void NTAPI CompatFlowDelete(_In_ UINT16 layerId, _In_ UINT32 calloutId,
                                   _In_ UINT64 flowContext)
{
    PCOMPAT_FLOW_CONTEXT ctx = (PCOMPAT_FLOW_CONTEXT)(ULONG_PTR)flowContext;
    UNREFERENCED_PARAMETER(layerId);
    UNREFERENCED_PARAMETER(calloutId);
    g_Compat.FlowDeleteIrql = KeGetCurrentIrql();
    if (ctx != NULL && ctx->Magic == 'galF') {
        InterlockedIncrement(&g_Compat.Deleted);
    }
    ExFreePoolWithTag(ctx, COMPAT_CTX_TAG);
}

_Use_decl_annotations_
VOID CompatWorker(PVOID StartContext)
{
    UNREFERENCED_PARAMETER(StartContext);
    NT_ASSERT(KeGetCurrentIrql() == PASSIVE_LEVEL);

    for (;;) {
        KeWaitForSingleObject(&g_Compat.WorkReady, Executive, KernelMode, FALSE, NULL);
        for (;;) {
            KLOCK_QUEUE_HANDLE lockHandle;
            PLIST_ENTRY entry = NULL;
            BOOLEAN stop;

            KeAcquireInStackQueuedSpinLock(&g_Compat.QueueLock, &lockHandle);
            if (!IsListEmpty(&g_Compat.Queue)) {
                entry = RemoveHeadList(&g_Compat.Queue);
            }
            stop = g_Compat.ShuttingDown;
            KeReleaseInStackQueuedSpinLock(&lockHandle);

            if (entry == NULL) {
                if (stop) {
                    PsTerminateSystemThread(STATUS_SUCCESS);
                }
                break;
            }

            PCOMPAT_WORK work = CONTAINING_RECORD(entry, COMPAT_WORK, Link);
            (void)RtlStringCbPrintfA(g_Compat.LastMessage, sizeof(g_Compat.LastMessage),
                                     "flow %I64u to port %hu", work->FlowHandle,
                                     work->RemotePort);
            InterlockedIncrement(&g_Compat.Processed);
            ExFreePoolWithTag(work, COMPAT_POOL_TAG);
        }
    }
}

static NTSTATUS CompatAddFilters(void)
{
    FWPM_SESSION0 session = {0};
    FWPM_SUBLAYER0 subLayer = {0};
    FWPM_CALLOUT0 mCallout = {0};
    FWPM_FILTER0 filter = {0};
    NTSTATUS status;

    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &g_Compat.EngineHandle);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = FwpmTransactionBegin0(g_Compat.EngineHandle, 0);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    subLayer.subLayerKey = COMPAT_SUBLAYER;
    subLayer.displayData.name = L"Compat sublayer";
    subLayer.weight = 0x100;
    status = FwpmSubLayerAdd0(g_Compat.EngineHandle, &subLayer, NULL);

    if (NT_SUCCESS(status)) {
        mCallout.calloutKey = COMPAT_CALLOUT_ALE_V4;
        mCallout.displayData.name = L"Compat ALE callout";
        mCallout.applicableLayer = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
        status = FwpmCalloutAdd0(g_Compat.EngineHandle, &mCallout, NULL, NULL);
    }
    if (NT_SUCCESS(status)) {
        filter.layerKey = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
        filter.subLayerKey = COMPAT_SUBLAYER;
        filter.displayData.name = L"Compat filter";
        filter.action.type = FWP_ACTION_CALLOUT_INSPECTION;
        filter.action.calloutKey = COMPAT_CALLOUT_ALE_V4;
        filter.weight.type = FWP_EMPTY;
        status = FwpmFilterAdd0(g_Compat.EngineHandle, &filter, NULL, NULL);
    }
    if (NT_SUCCESS(status)) {
        status = FwpmTransactionCommit0(g_Compat.EngineHandle);
    } else {
        FwpmTransactionAbort0(g_Compat.EngineHandle);
    }
    return status;
}

_Use_decl_annotations_
VOID CompatUnload(PDRIVER_OBJECT DriverObject)
{
    KLOCK_QUEUE_HANDLE lockHandle;
    UNREFERENCED_PARAMETER(DriverObject);

    if (g_Compat.EngineHandle != NULL) {
        FwpmEngineClose0(g_Compat.EngineHandle);
        g_Compat.EngineHandle = NULL;
    }
    FwpsCalloutUnregisterById0(g_Compat.CalloutId);

    KeAcquireInStackQueuedSpinLock(&g_Compat.QueueLock, &lockHandle);
    g_Compat.ShuttingDown = TRUE;
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    KeSetEvent(&g_Compat.WorkReady, IO_NO_INCREMENT, FALSE);

    if (g_Compat.Worker != NULL) {
        KeWaitForSingleObject(g_Compat.Worker, Executive, KernelMode, FALSE, NULL);
        ObDereferenceObject(g_Compat.Worker);
        g_Compat.Worker = NULL;
    }
    if (g_Compat.Device != NULL) {
        IoDeleteDevice(g_Compat.Device);
        g_Compat.Device = NULL;
    }
    KdPrint(("compat: unloaded\n"));
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING deviceName = RTL_CONSTANT_STRING(L"\\Device\\OpenWfpCompat");
    FWPS_CALLOUT1 sCallout = {0};
    HANDLE threadHandle;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);
    RtlZeroMemory(&g_Compat, sizeof(g_Compat));
    KeInitializeSpinLock(&g_Compat.QueueLock);
    InitializeListHead(&g_Compat.Queue);
    KeInitializeEvent(&g_Compat.WorkReady, SynchronizationEvent, FALSE);

    status = IoCreateDevice(DriverObject, 0, &deviceName, FILE_DEVICE_NETWORK,
                            FILE_DEVICE_SECURE_OPEN, FALSE, &g_Compat.Device);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    DriverObject->DriverUnload = CompatUnload;

    status = PsCreateSystemThread(&threadHandle, THREAD_ALL_ACCESS, NULL, NULL, NULL,
                                  CompatWorker, NULL);
    if (NT_SUCCESS(status)) {
        status = ObReferenceObjectByHandle(threadHandle, THREAD_ALL_ACCESS, *PsThreadType,
                                           KernelMode, (PVOID *)&g_Compat.Worker, NULL);
        ZwClose(threadHandle);
    }

    if (NT_SUCCESS(status)) {
        sCallout.calloutKey = COMPAT_CALLOUT_ALE_V4;
        sCallout.classifyFn = CompatClassify;
        sCallout.notifyFn = CompatNotify;
        sCallout.flowDeleteFn = CompatFlowDelete;
        status = FwpsCalloutRegister1(g_Compat.Device, &sCallout, &g_Compat.CalloutId);
    }
    if (NT_SUCCESS(status)) {
        status = CompatAddFilters();
    }
    if (!NT_SUCCESS(status)) {
        DbgPrintEx(DPFLTR_IHVNETWORK_ID, DPFLTR_ERROR_LEVEL, "compat: DriverEntry failed 0x%08X\n",
                   status);
        CompatUnload(DriverObject);
    }
    return status;
}

/* ---- for the test only ---------------------------------------------------- */

LONG CompatClassified(void)
{
    return g_Compat.Classified;
}

LONG CompatProcessed(void)
{
    return InterlockedCompareExchange((LONG volatile *)&g_Compat.Processed, 0, 0);
}

LONG CompatDeleted(void)
{
    return g_Compat.Deleted;
}

KIRQL CompatIrql(int which)
{
    return which == 0 ? g_Compat.ClassifyIrql
           : which == 1 ? g_Compat.NotifyIrql
                        : g_Compat.FlowDeleteIrql;
}

PCSTR CompatLastMessage(void)
{
    return g_Compat.LastMessage;
}
