/*
 * content_block: a WFP stream callout driver that drops a TCP connection as
 * soon as a byte pattern appears in either direction, also when the pattern
 * is split across segments, and lets the connection go (and the engine
 * offload it) once enough bytes have passed clean.
 *
 * - At ALE_FLOW_ESTABLISHED_V4/V6 an inspection callout associates a per-flow
 *   context with the stream callout (FwpsFlowAssociateContext0).
 * - The stream callout (CONDITIONAL_ON_FLOW | ALLOW_OFFLOAD, behind a
 *   CALLOUT_TERMINATING filter) scans each indication together with the last
 *   (pattern length - 1) bytes of the same direction kept in the context:
 *   on a match it answers FWPS_STREAM_ACTION_DROP_CONNECTION; once AllowAfter
 *   bytes of the connection passed clean it answers
 *   FWPS_STREAM_ACTION_ALLOW_CONNECTION with PERMIT.
 *
 * Parameters (the Parameters subkey of the service key):
 *   Pattern     REG_SZ     required, ASCII, 1..CB_PATTERN_MAX characters
 *   AllowAfter  REG_DWORD  clean bytes after which the connection is let go
 *                          (default 65536; 0 = never)
 */
#include <ntddk.h>
#include <wdm.h>
#include <fwpsk.h>
#include <fwpmk.h>

#define INITGUID
#include <guiddef.h>

// {a3d85e2c-71f4-4b09-9e3a-6b2c1d0f4e01}
DEFINE_GUID(CB_SUBLAYER, 0xa3d85e2c, 0x71f4, 0x4b09, 0x9e, 0x3a, 0x6b, 0x2c, 0x1d, 0x0f, 0x4e,
            0x01);
// {a3d85e2c-71f4-4b09-9e3a-6b2c1d0f4e10}
DEFINE_GUID(CB_ALE_CALLOUT_V4, 0xa3d85e2c, 0x71f4, 0x4b09, 0x9e, 0x3a, 0x6b, 0x2c, 0x1d, 0x0f,
            0x4e, 0x10);
// {a3d85e2c-71f4-4b09-9e3a-6b2c1d0f4e11}
DEFINE_GUID(CB_ALE_CALLOUT_V6, 0xa3d85e2c, 0x71f4, 0x4b09, 0x9e, 0x3a, 0x6b, 0x2c, 0x1d, 0x0f,
            0x4e, 0x11);
// {a3d85e2c-71f4-4b09-9e3a-6b2c1d0f4e20}
DEFINE_GUID(CB_STREAM_CALLOUT_V4, 0xa3d85e2c, 0x71f4, 0x4b09, 0x9e, 0x3a, 0x6b, 0x2c, 0x1d, 0x0f,
            0x4e, 0x20);
// {a3d85e2c-71f4-4b09-9e3a-6b2c1d0f4e21}
DEFINE_GUID(CB_STREAM_CALLOUT_V6, 0xa3d85e2c, 0x71f4, 0x4b09, 0x9e, 0x3a, 0x6b, 0x2c, 0x1d, 0x0f,
            0x4e, 0x21);

#define CB_TAG 'kBtC'          /* "CtBk" in a pool dump */
#define CB_PATTERN_MAX 128     /* longest pattern accepted */
#define CB_CHUNK 2048          /* bytes scanned per classify; the rest is re-indicated */
#define CB_DEFAULT_ALLOW_AFTER 65536

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD ContentBlockUnload;

typedef struct CB_DIRECTION_ {
    UINT64 offset;                  /* stream bytes of this direction scanned so far */
    SIZE_T tailLength;              /* bytes in tail */
    UINT8 tail[CB_PATTERN_MAX - 1]; /* last bytes scanned, to find a split pattern */
} CB_DIRECTION;

typedef struct CB_CONTEXT_ {
    LIST_ENTRY link; /* on g_flows while associated; under g_flowsLock */
    BOOLEAN onList;  /* under g_flowsLock */
    UINT64 flowHandle;
    UINT16 streamLayerId;
    UINT32 streamCalloutId;
    /* The rest belongs to the stream callout, which WFP does not run
     * concurrently for one flow. */
    UINT64 cleanBytes;
    CB_DIRECTION direction[2]; /* [0] send, [1] receive */
    UINT8 scan[CB_PATTERN_MAX - 1 + CB_CHUNK];
} CB_CONTEXT;

static PDEVICE_OBJECT g_device;
static HANDLE g_engine;
static UINT32 g_aleCalloutIds[2];
static UINT32 g_streamCalloutIds[2];

/* Set in DriverEntry, read-only afterwards. */
static UINT8 g_pattern[CB_PATTERN_MAX];
static SIZE_T g_patternLength;
static ULONG g_allowAfter = CB_DEFAULT_ALLOW_AFTER;

static KSPIN_LOCK g_flowsLock;
static LIST_ENTRY g_flows;
static BOOLEAN g_unloading;
static LONG volatile g_liveContexts;
static LONG volatile g_dropped;
static LONG volatile g_allowed;

/* ---- ALE_FLOW_ESTABLISHED ----------------------------------------------------------- */

static void NTAPI CbAleClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                                _In_ UINT64 flowContext, _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    BOOLEAN ipv6 = inFixedValues->layerId == FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6;
    KLOCK_QUEUE_HANDLE lockHandle;
    CB_CONTEXT *context;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);

    classifyOut->actionType = FWP_ACTION_CONTINUE;
    if (!FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_FLOW_HANDLE)) {
        return;
    }
    context = (CB_CONTEXT *)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(*context), CB_TAG);
    if (context == NULL) {
        /* Without a context the stream callout does not see the flow: say so. */
        DbgPrint("ContentBlock: no memory for a flow context, flow not inspected\n");
        return;
    }
    context->flowHandle = inMetaValues->flowHandle;
    context->streamLayerId = ipv6 ? FWPS_LAYER_STREAM_V6 : FWPS_LAYER_STREAM_V4;
    context->streamCalloutId = g_streamCalloutIds[ipv6 ? 1 : 0];

    KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
    if (g_unloading) {
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        ExFreePoolWithTag(context, CB_TAG);
        return;
    }
    InsertTailList(&g_flows, &context->link);
    context->onList = TRUE;
    InterlockedIncrement(&g_liveContexts);
    KeReleaseInStackQueuedSpinLock(&lockHandle);

    status = FwpsFlowAssociateContext0(context->flowHandle, context->streamLayerId,
                                       context->streamCalloutId, (UINT64)(ULONG_PTR)context);
    if (status != STATUS_SUCCESS) {
        KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
        if (context->onList) {
            RemoveEntryList(&context->link);
            context->onList = FALSE;
        }
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        InterlockedDecrement(&g_liveContexts);
        ExFreePoolWithTag(context, CB_TAG);
        DbgPrint("ContentBlock: FwpsFlowAssociateContext0 failed: 0x%08X\n", status);
    }
}

/* ---- STREAM ------------------------------------------------------------------------- */

/* Index of the first occurrence of the pattern in data, or length if none. */
static SIZE_T CbFind(_In_reads_(length) const UINT8 *data, _In_ SIZE_T length)
{
    if (length < g_patternLength) {
        return length;
    }
    for (SIZE_T i = 0; i + g_patternLength <= length; i++) {
        if (data[i] == g_pattern[0] && RtlCompareMemory(data + i, g_pattern, g_patternLength) ==
                                           g_patternLength) {
            return i;
        }
    }
    return length;
}

static void NTAPI CbStreamClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                   _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                   _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                                   _In_ UINT64 flowContext, _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    FWPS_STREAM_CALLOUT_IO_PACKET0 *packet = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    CB_CONTEXT *context = (CB_CONTEXT *)(ULONG_PTR)flowContext;
    FWPS_STREAM_DATA0 *streamData;
    CB_DIRECTION *direction;
    BOOLEAN send;
    SIZE_T chunk;
    SIZE_T copied = 0;
    SIZE_T scanLength;
    SIZE_T at;
    SIZE_T keep;

    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(filter);

    if (!(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) {
        return; /* a higher-weight filter has decided already */
    }
    classifyOut->actionType = FWP_ACTION_PERMIT;
    if (packet == NULL || context == NULL || packet->streamData == NULL) {
        return;
    }
    packet->streamAction = FWPS_STREAM_ACTION_NONE;
    packet->countBytesEnforced = 0;
    streamData = packet->streamData;
    if (streamData->dataLength == 0) {
        return; /* a disconnect indication */
    }
    send = (streamData->flags & FWPS_STREAM_FLAG_SEND) != 0;
    direction = &context->direction[send ? 0 : 1];

    /* Scan the kept tail followed by (at most CB_CHUNK bytes of) the data. */
    chunk = streamData->dataLength < CB_CHUNK ? streamData->dataLength : CB_CHUNK;
    RtlCopyMemory(context->scan, direction->tail, direction->tailLength);
    FwpsCopyStreamDataToBuffer0(streamData, context->scan + direction->tailLength, chunk, &copied);
    if (copied > chunk) {
        copied = chunk;
    }
    if (copied == 0) {
        return; /* nothing could be copied: permit rather than stall */
    }
    scanLength = direction->tailLength + copied;

    at = CbFind(context->scan, scanLength);
    if (at < scanLength) {
        UINT64 streamOffset = direction->offset - direction->tailLength + at;
        InterlockedIncrement(&g_dropped);
        DbgPrint("ContentBlock: dropping flow %I64u: pattern in the %s stream at offset %I64u%s\n",
                 inMetaValues->flowHandle, send ? "send" : "receive", streamOffset,
                 at < direction->tailLength ? " (split across indications)" : "");
        packet->streamAction = FWPS_STREAM_ACTION_DROP_CONNECTION;
        classifyOut->actionType = FWP_ACTION_NONE;
        return;
    }

    /* Clean: keep the last (pattern length - 1) bytes for the next indication. */
    keep = g_patternLength - 1;
    if (keep > scanLength) {
        keep = scanLength;
    }
    RtlMoveMemory(direction->tail, context->scan + scanLength - keep, keep);
    direction->tailLength = keep;
    direction->offset += copied;
    context->cleanBytes += copied;

    if (copied < streamData->dataLength) {
        /* Only this much was looked at: the rest is indicated again at once. */
        packet->countBytesEnforced = copied;
        return;
    }
    if (g_allowAfter != 0 && context->cleanBytes >= g_allowAfter) {
        /* Enough seen: stop inspecting this connection and let WFP offload it. */
        InterlockedIncrement(&g_allowed);
        packet->streamAction = FWPS_STREAM_ACTION_ALLOW_CONNECTION;
    }
}

static void NTAPI CbFlowDelete(_In_ UINT16 layerId, _In_ UINT32 calloutId,
                               _In_ UINT64 flowContext)
{
    CB_CONTEXT *context = (CB_CONTEXT *)(ULONG_PTR)flowContext;
    KLOCK_QUEUE_HANDLE lockHandle;

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
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    ExFreePoolWithTag(context, CB_TAG);
    InterlockedDecrement(&g_liveContexts);
}

static NTSTATUS NTAPI CbNotify(_In_ FWPS_CALLOUT_NOTIFY_TYPE notifyType, _In_ const GUID *filterKey,
                               _Inout_ FWPS_FILTER0 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

/* ---- parameters --------------------------------------------------------------------- */

/* Reads one value of the key into pool the caller frees with CB_TAG. */
static NTSTATUS CbQueryValue(_In_ HANDLE key, _In_ PCWSTR name,
                             _Outptr_result_maybenull_ PKEY_VALUE_PARTIAL_INFORMATION *info)
{
    UNICODE_STRING valueName;
    ULONG length = 0;
    NTSTATUS status;

    *info = NULL;
    RtlInitUnicodeString(&valueName, name);
    status = ZwQueryValueKey(key, &valueName, KeyValuePartialInformation, NULL, 0, &length);
    if (status != STATUS_BUFFER_TOO_SMALL && status != STATUS_BUFFER_OVERFLOW) {
        return status;
    }
    *info = (PKEY_VALUE_PARTIAL_INFORMATION)ExAllocatePool2(POOL_FLAG_PAGED, length, CB_TAG);
    if (*info == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    status = ZwQueryValueKey(key, &valueName, KeyValuePartialInformation, *info, length, &length);
    if (!NT_SUCCESS(status)) {
        ExFreePoolWithTag(*info, CB_TAG);
        *info = NULL;
    }
    return status;
}

/* Pattern (REG_SZ, UTF-16 -> ASCII bytes) and AllowAfter (REG_DWORD). */
static NTSTATUS CbReadParameters(_In_ PUNICODE_STRING RegistryPath)
{
    OBJECT_ATTRIBUTES attributes;
    UNICODE_STRING parametersName = RTL_CONSTANT_STRING(L"Parameters");
    HANDLE serviceKey = NULL;
    HANDLE parametersKey = NULL;
    PKEY_VALUE_PARTIAL_INFORMATION info = NULL;
    NTSTATUS status;

    InitializeObjectAttributes(&attributes, RegistryPath, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
                               NULL, NULL);
    status = ZwOpenKey(&serviceKey, KEY_READ, &attributes);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    InitializeObjectAttributes(&attributes, &parametersName,
                               OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, serviceKey, NULL);
    status = ZwOpenKey(&parametersKey, KEY_READ, &attributes);
    ZwClose(serviceKey);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    status = CbQueryValue(parametersKey, L"Pattern", &info);
    if (NT_SUCCESS(status)) {
        const UINT8 *data = info->Data;
        SIZE_T characters = info->DataLength / sizeof(WCHAR);
        if (info->Type != REG_SZ) {
            status = STATUS_OBJECT_TYPE_MISMATCH;
        }
        g_patternLength = 0;
        for (SIZE_T i = 0; NT_SUCCESS(status) && i < characters; i++) {
            WCHAR c;
            RtlCopyMemory(&c, data + i * sizeof(WCHAR), sizeof(c)); /* Data may be unaligned */
            if (c == L'\0') {
                break;
            }
            if (c > 0x7f || g_patternLength == CB_PATTERN_MAX) {
                status = STATUS_INVALID_PARAMETER; /* not ASCII, or too long */
            } else {
                g_pattern[g_patternLength++] = (UINT8)c;
            }
        }
        if (NT_SUCCESS(status) && g_patternLength == 0) {
            status = STATUS_INVALID_PARAMETER;
        }
        if (!NT_SUCCESS(status)) {
            DbgPrint("ContentBlock: Pattern must be 1..%d ASCII characters (REG_SZ)\n",
                     CB_PATTERN_MAX);
        }
    } else {
        DbgPrint("ContentBlock: no Pattern parameter: 0x%08X\n", status);
    }
    if (info != NULL) {
        ExFreePoolWithTag(info, CB_TAG);
        info = NULL;
    }

    if (NT_SUCCESS(status)) {
        NTSTATUS allowStatus = CbQueryValue(parametersKey, L"AllowAfter", &info);
        if (NT_SUCCESS(allowStatus)) {
            if (info->Type == REG_DWORD && info->DataLength == sizeof(ULONG)) {
                RtlCopyMemory(&g_allowAfter, info->Data, sizeof(ULONG));
            } else {
                DbgPrint("ContentBlock: AllowAfter must be a REG_DWORD\n");
                status = STATUS_OBJECT_TYPE_MISMATCH;
            }
            ExFreePoolWithTag(info, CB_TAG);
        } else if (allowStatus != STATUS_OBJECT_NAME_NOT_FOUND) {
            status = allowStatus;
        }
    }
    ZwClose(parametersKey);
    return status;
}

/* ---- registration ------------------------------------------------------------------- */

static NTSTATUS CbRegisterCallout(_In_ const GUID *calloutKey,
                                  _In_ FWPS_CALLOUT_CLASSIFY_FN0 classifyFn,
                                  _In_opt_ FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 flowDeleteFn,
                                  _In_ UINT32 flags, _Out_ UINT32 *calloutId)
{
    FWPS_CALLOUT0 callout = {0};
    callout.calloutKey = *calloutKey;
    callout.flags = flags;
    callout.classifyFn = classifyFn;
    callout.notifyFn = CbNotify;
    callout.flowDeleteFn = flowDeleteFn;
    return FwpsCalloutRegister0(g_device, &callout, calloutId);
}

static NTSTATUS CbAddCalloutAndFilter(_In_ const GUID *calloutKey, _In_ const GUID *layerKey,
                                      _In_ PWSTR name, _In_ FWP_ACTION_TYPE action,
                                      _In_ BOOLEAN tcpOnly)
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
    filter.subLayerKey = CB_SUBLAYER;
    filter.action.type = action;
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

static void CbRemoveContexts(void)
{
    KLOCK_QUEUE_HANDLE lockHandle;
    LARGE_INTEGER interval;

    KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
    g_unloading = TRUE;
    while (!IsListEmpty(&g_flows)) {
        CB_CONTEXT *context = CONTAINING_RECORD(RemoveHeadList(&g_flows), CB_CONTEXT, link);
        UINT64 flowHandle = context->flowHandle;
        UINT16 layerId = context->streamLayerId;
        UINT32 calloutId = context->streamCalloutId;
        context->onList = FALSE;
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        (void)FwpsFlowRemoveContext0(flowHandle, layerId, calloutId);
        KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);

    interval.QuadPart = -10 * 1000 * 10; /* 10 ms */
    while (InterlockedCompareExchange(&g_liveContexts, 0, 0) != 0) {
        KeDelayExecutionThread(KernelMode, FALSE, &interval);
    }
}

static void CbCleanup(void)
{
    if (g_engine != NULL) {
        FwpmEngineClose0(g_engine);
        g_engine = NULL;
    }
    CbRemoveContexts();
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
VOID ContentBlockUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    CbCleanup();
    DbgPrint("ContentBlock: unloaded: %ld connections dropped, %ld let go\n", g_dropped,
             g_allowed);
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

    status = CbReadParameters(RegistryPath);
    if (!NT_SUCCESS(status)) {
        DbgPrint("ContentBlock: bad parameters in %wZ: 0x%08X\n", RegistryPath, status);
        return status;
    }

    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN,
                            FALSE, &g_device);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = CbRegisterCallout(&CB_ALE_CALLOUT_V4, CbAleClassify, NULL, 0, &g_aleCalloutIds[0]);
    if (NT_SUCCESS(status)) {
        status = CbRegisterCallout(&CB_ALE_CALLOUT_V6, CbAleClassify, NULL, 0, &g_aleCalloutIds[1]);
    }
    if (NT_SUCCESS(status)) {
        status = CbRegisterCallout(&CB_STREAM_CALLOUT_V4, CbStreamClassify, CbFlowDelete,
                                   FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW |
                                       FWP_CALLOUT_FLAG_ALLOW_OFFLOAD,
                                   &g_streamCalloutIds[0]);
    }
    if (NT_SUCCESS(status)) {
        status = CbRegisterCallout(&CB_STREAM_CALLOUT_V6, CbStreamClassify, CbFlowDelete,
                                   FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW |
                                       FWP_CALLOUT_FLAG_ALLOW_OFFLOAD,
                                   &g_streamCalloutIds[1]);
    }
    if (NT_SUCCESS(status)) {
        session.flags = FWPM_SESSION_FLAG_DYNAMIC;
        status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &g_engine);
    }
    if (NT_SUCCESS(status)) {
        status = FwpmTransactionBegin0(g_engine, 0);
        if (NT_SUCCESS(status)) {
            sublayer.subLayerKey = CB_SUBLAYER;
            sublayer.displayData.name = L"Content block";
            sublayer.weight = 0x100;
            status = FwpmSubLayerAdd0(g_engine, &sublayer, NULL);
            if (NT_SUCCESS(status)) {
                status = CbAddCalloutAndFilter(&CB_ALE_CALLOUT_V4,
                                               &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4,
                                               L"Content block: new TCP flows (IPv4)",
                                               FWP_ACTION_CALLOUT_INSPECTION, TRUE);
            }
            if (NT_SUCCESS(status)) {
                status = CbAddCalloutAndFilter(&CB_ALE_CALLOUT_V6,
                                               &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6,
                                               L"Content block: new TCP flows (IPv6)",
                                               FWP_ACTION_CALLOUT_INSPECTION, TRUE);
            }
            if (NT_SUCCESS(status)) {
                status = CbAddCalloutAndFilter(&CB_STREAM_CALLOUT_V4, &FWPM_LAYER_STREAM_V4,
                                               L"Content block: stream (IPv4)",
                                               FWP_ACTION_CALLOUT_TERMINATING, FALSE);
            }
            if (NT_SUCCESS(status)) {
                status = CbAddCalloutAndFilter(&CB_STREAM_CALLOUT_V6, &FWPM_LAYER_STREAM_V6,
                                               L"Content block: stream (IPv6)",
                                               FWP_ACTION_CALLOUT_TERMINATING, FALSE);
            }
            if (NT_SUCCESS(status)) {
                status = FwpmTransactionCommit0(g_engine);
            } else {
                FwpmTransactionAbort0(g_engine);
            }
        }
    }
    if (!NT_SUCCESS(status)) {
        DbgPrint("ContentBlock: set-up failed: 0x%08X\n", status);
        CbCleanup();
        return status;
    }

    DriverObject->DriverUnload = ContentBlockUnload;
    DbgPrint("ContentBlock: loaded, pattern of %Iu bytes, AllowAfter=%lu\n", g_patternLength,
             g_allowAfter);
    return STATUS_SUCCESS;
}
