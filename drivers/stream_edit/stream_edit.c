/*
 * stream_edit: a WFP stream callout driver that edits one direction of every
 * TCP stream inline, replacing each occurrence of a byte pattern (Find) with
 * another (Replace, of any length, also empty: the pattern is deleted).
 *
 * The stream callout (behind a CALLOUT_TERMINATING filter at STREAM_V4/V6)
 * copies a bounded chunk of each indication of the edited direction with
 * FwpsCopyStreamDataToBuffer0 and looks for the first occurrence:
 *   - bytes before it: PERMIT with countBytesEnforced = its offset (the engine
 *     indicates the rest again at once);
 *   - a full match at offset 0: Replace is injected inline
 *     (FwpsStreamInjectAsync0 from an NBL over an MDL) and the pattern is
 *     BLOCKed with countBytesEnforced = len(Find);
 *   - the start of the pattern at the end of the data: NEED_MORE_DATA with
 *     countBytesRequired = len(Find), unless no more data can come
 *     (FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA): then it is permitted;
 *   - no occurrence: PERMIT (the whole indication, or the copied chunk).
 * The other direction is permitted untouched.
 *
 * Parameters (the Parameters subkey of the service key):
 *   Find       REG_SZ     required, ASCII, 1..SE_FIND_MAX characters
 *   Replace    REG_SZ     ASCII, 0..SE_REPLACE_MAX characters (default empty)
 *   Direction  REG_DWORD  0 = outbound (send, default), 1 = inbound (receive)
 */
#include <ntddk.h>
#include <wdm.h>
#include <ndis.h>
#include <fwpsk.h>
#include <fwpmk.h>

#define INITGUID
#include <guiddef.h>

// {5e7d0c3a-92b1-4f6e-8a4d-1c2b3a4d5e01}
DEFINE_GUID(SE_SUBLAYER, 0x5e7d0c3a, 0x92b1, 0x4f6e, 0x8a, 0x4d, 0x1c, 0x2b, 0x3a, 0x4d, 0x5e,
            0x01);
// {5e7d0c3a-92b1-4f6e-8a4d-1c2b3a4d5e20}
DEFINE_GUID(SE_STREAM_CALLOUT_V4, 0x5e7d0c3a, 0x92b1, 0x4f6e, 0x8a, 0x4d, 0x1c, 0x2b, 0x3a, 0x4d,
            0x5e, 0x20);
// {5e7d0c3a-92b1-4f6e-8a4d-1c2b3a4d5e21}
DEFINE_GUID(SE_STREAM_CALLOUT_V6, 0x5e7d0c3a, 0x92b1, 0x4f6e, 0x8a, 0x4d, 0x1c, 0x2b, 0x3a, 0x4d,
            0x5e, 0x21);

#define SE_TAG 'tdEs'        /* "sEdt" in a pool dump */
#define SE_FIND_MAX 128      /* longest pattern accepted */
#define SE_REPLACE_MAX 1024  /* longest replacement accepted */
#define SE_CHUNK 2048        /* bytes looked at per classify; the rest is indicated again */

C_ASSERT(SE_CHUNK >= SE_FIND_MAX); /* a chunk always holds a whole pattern */

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD StreamEditUnload;

static PDEVICE_OBJECT g_device;
static HANDLE g_engine;
static HANDLE g_injection;
static NDIS_HANDLE g_nblPool;
static UINT32 g_streamCalloutIds[2];

/* Set in DriverEntry, read-only afterwards. */
static UINT8 g_find[SE_FIND_MAX];
static SIZE_T g_findLength;
static UINT8 g_replace[SE_REPLACE_MAX];
static SIZE_T g_replaceLength;
static ULONG g_direction; /* 0: send, 1: receive */

static LONG volatile g_pendingInjections;
static LONG volatile g_replaced;
static LONG volatile g_injectFailures;

/* ---- STREAM ------------------------------------------------------------------------- */

static void NTAPI SeInjectComplete(_In_ void *context, _Inout_ NET_BUFFER_LIST *netBufferList,
                                   _In_ BOOLEAN dispatchLevel)
{
    MDL *mdl = NET_BUFFER_FIRST_MDL(NET_BUFFER_LIST_FIRST_NB(netBufferList));

    UNREFERENCED_PARAMETER(context);
    UNREFERENCED_PARAMETER(dispatchLevel);
    if (!NT_SUCCESS(NET_BUFFER_LIST_STATUS(netBufferList))) {
        DbgPrint("StreamEdit: injection completed with 0x%08X\n",
                 NET_BUFFER_LIST_STATUS(netBufferList));
    }
    FwpsFreeNetBufferList0(netBufferList);
    IoFreeMdl(mdl);
    InterlockedDecrement(&g_pendingInjections);
}

/* Where the pattern first starts in data, or length if nowhere; *partial is
 * set when what starts there is only the beginning of the pattern, cut off by
 * the end of the data. */
static SIZE_T SeFind(_In_reads_(length) const UINT8 *data, _In_ SIZE_T length,
                     _Out_ BOOLEAN *partial)
{
    *partial = FALSE;
    for (SIZE_T i = 0; i < length; i++) {
        SIZE_T matched = 0;
        if (data[i] != g_find[0]) {
            continue;
        }
        while (matched < g_findLength && i + matched < length &&
               data[i + matched] == g_find[matched]) {
            matched++;
        }
        if (matched == g_findLength) {
            return i;
        }
        if (i + matched == length) {
            *partial = TRUE;
            return i;
        }
    }
    return length;
}

/* Injects Replace inline in front of the bytes about to be blocked. */
static NTSTATUS SeInjectReplacement(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                    _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                    _In_ const FWPS_FILTER0 *filter, _In_ UINT32 streamFlags)
{
    NET_BUFFER_LIST *netBufferList = NULL;
    MDL *mdl;
    NTSTATUS status;

    mdl = IoAllocateMdl(g_replace, (ULONG)g_replaceLength, FALSE, FALSE, NULL);
    if (mdl == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    MmBuildMdlForNonPagedPool(mdl);
    status = FwpsAllocateNetBufferAndNetBufferList0(g_nblPool, 0, 0, mdl, 0, g_replaceLength,
                                                    &netBufferList);
    if (!NT_SUCCESS(status)) {
        IoFreeMdl(mdl);
        return status;
    }
    InterlockedIncrement(&g_pendingInjections);
    status = FwpsStreamInjectAsync0(g_injection, NULL, 0, inMetaValues->flowHandle,
                                    filter->action.calloutId, inFixedValues->layerId,
                                    streamFlags, netBufferList, g_replaceLength,
                                    SeInjectComplete, NULL);
    if (!NT_SUCCESS(status)) {
        InterlockedDecrement(&g_pendingInjections);
        FwpsFreeNetBufferList0(netBufferList);
        IoFreeMdl(mdl);
    }
    return status;
}

static void NTAPI SeStreamClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                   _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                   _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                                   _In_ UINT64 flowContext, _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    FWPS_STREAM_CALLOUT_IO_PACKET0 *packet = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    FWPS_STREAM_DATA0 *streamData;
    UINT32 directionFlag = g_direction == 0 ? FWPS_STREAM_FLAG_SEND : FWPS_STREAM_FLAG_RECEIVE;
    UINT8 *buffer;
    SIZE_T chunk;
    SIZE_T copied = 0;
    SIZE_T at;
    BOOLEAN partial = FALSE;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(flowContext);

    if (!(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) {
        return; /* a higher-weight filter has decided already */
    }
    classifyOut->actionType = FWP_ACTION_PERMIT;
    if (packet == NULL || packet->streamData == NULL) {
        return;
    }
    packet->streamAction = FWPS_STREAM_ACTION_NONE;
    packet->countBytesEnforced = 0;
    streamData = packet->streamData;
    if (streamData->dataLength == 0 || !(streamData->flags & directionFlag) ||
        !FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_FLOW_HANDLE)) {
        return; /* a disconnect, the other direction, or nothing to inject on */
    }

    chunk = streamData->dataLength < SE_CHUNK ? streamData->dataLength : SE_CHUNK;
    buffer = (UINT8 *)ExAllocatePool2(POOL_FLAG_NON_PAGED, chunk, SE_TAG);
    if (buffer == NULL) {
        return; /* cannot look: let it pass rather than stall the connection */
    }
    FwpsCopyStreamDataToBuffer0(streamData, buffer, chunk, &copied);
    if (copied > chunk) {
        copied = chunk;
    }
    at = copied == 0 ? 0 : SeFind(buffer, copied, &partial);
    ExFreePoolWithTag(buffer, SE_TAG);
    if (copied == 0) {
        return;
    }

    if (at == copied) {
        /* Clean. Only the copied chunk is decided; the engine indicates the rest again. */
        if (copied < streamData->dataLength) {
            packet->countBytesEnforced = copied;
        }
        return;
    }
    if (at > 0) {
        /* The bytes before the match go now; the match is indicated again first. */
        packet->countBytesEnforced = at;
        return;
    }
    if (partial) {
        /* The data ends inside what may become the pattern (the chunk holds a whole
         * pattern, so here copied is all the data). */
        if (!(classifyOut->flags & FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA)) {
            packet->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
            packet->countBytesRequired = (UINT32)g_findLength;
        }
        return;
    }

    /* The pattern at offset 0: Replace goes in its place, the pattern is blocked. */
    if (g_replaceLength != 0) {
        status = SeInjectReplacement(inFixedValues, inMetaValues, filter,
                                     streamData->flags &
                                         (FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_RECEIVE));
        if (!NT_SUCCESS(status)) {
            /* Blocking without the replacement would corrupt the stream more: pass it. */
            if (InterlockedIncrement(&g_injectFailures) == 1) {
                DbgPrint("StreamEdit: FwpsStreamInjectAsync0 failed: 0x%08X, pattern left in place\n",
                         status);
            }
            packet->countBytesEnforced = g_findLength;
            return;
        }
    }
    InterlockedIncrement(&g_replaced);
    packet->countBytesEnforced = g_findLength;
    classifyOut->actionType = FWP_ACTION_BLOCK;
    classifyOut->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static NTSTATUS NTAPI SeNotify(_In_ FWPS_CALLOUT_NOTIFY_TYPE notifyType, _In_ const GUID *filterKey,
                               _Inout_ FWPS_FILTER0 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

/* ---- parameters --------------------------------------------------------------------- */

/* Reads one value of the key into pool the caller frees with SE_TAG. */
static NTSTATUS SeQueryValue(_In_ HANDLE key, _In_ PCWSTR name,
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
    *info = (PKEY_VALUE_PARTIAL_INFORMATION)ExAllocatePool2(POOL_FLAG_PAGED, length, SE_TAG);
    if (*info == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    status = ZwQueryValueKey(key, &valueName, KeyValuePartialInformation, *info, length, &length);
    if (!NT_SUCCESS(status)) {
        ExFreePoolWithTag(*info, SE_TAG);
        *info = NULL;
    }
    return status;
}

/* A REG_SZ value as ASCII bytes (UTF-16 -> ASCII), up to maxLength of them. */
static NTSTATUS SeQueryAscii(_In_ HANDLE key, _In_ PCWSTR name,
                             _Out_writes_to_(maxLength, *length) UINT8 *bytes,
                             _In_ SIZE_T maxLength, _Out_ SIZE_T *length)
{
    PKEY_VALUE_PARTIAL_INFORMATION info = NULL;
    NTSTATUS status;

    *length = 0;
    status = SeQueryValue(key, name, &info);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    if (info->Type != REG_SZ) {
        status = STATUS_OBJECT_TYPE_MISMATCH;
    }
    for (SIZE_T i = 0; NT_SUCCESS(status) && i < info->DataLength / sizeof(WCHAR); i++) {
        WCHAR c;
        RtlCopyMemory(&c, info->Data + i * sizeof(WCHAR), sizeof(c)); /* Data may be unaligned */
        if (c == L'\0') {
            break;
        }
        if (c > 0x7f || *length == maxLength) {
            status = STATUS_INVALID_PARAMETER; /* not ASCII, or too long */
        } else {
            bytes[(*length)++] = (UINT8)c;
        }
    }
    ExFreePoolWithTag(info, SE_TAG);
    return status;
}

/* Find and Replace (REG_SZ, ASCII) and Direction (REG_DWORD). */
static NTSTATUS SeReadParameters(_In_ PUNICODE_STRING RegistryPath)
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

    status = SeQueryAscii(parametersKey, L"Find", g_find, SE_FIND_MAX, &g_findLength);
    if (status == STATUS_OBJECT_NAME_NOT_FOUND) {
        DbgPrint("StreamEdit: no Find parameter\n");
    } else if (NT_SUCCESS(status) && g_findLength == 0) {
        status = STATUS_INVALID_PARAMETER;
    }
    if (!NT_SUCCESS(status) && status != STATUS_OBJECT_NAME_NOT_FOUND) {
        DbgPrint("StreamEdit: Find must be 1..%d ASCII characters (REG_SZ)\n", SE_FIND_MAX);
    }

    if (NT_SUCCESS(status)) {
        status = SeQueryAscii(parametersKey, L"Replace", g_replace, SE_REPLACE_MAX,
                              &g_replaceLength);
        if (status == STATUS_OBJECT_NAME_NOT_FOUND) {
            g_replaceLength = 0; /* default: delete the pattern */
            status = STATUS_SUCCESS;
        } else if (!NT_SUCCESS(status)) {
            DbgPrint("StreamEdit: Replace must be 0..%d ASCII characters (REG_SZ)\n",
                     SE_REPLACE_MAX);
        }
    }

    if (NT_SUCCESS(status)) {
        NTSTATUS directionStatus = SeQueryValue(parametersKey, L"Direction", &info);
        if (NT_SUCCESS(directionStatus)) {
            if (info->Type == REG_DWORD && info->DataLength == sizeof(ULONG)) {
                RtlCopyMemory(&g_direction, info->Data, sizeof(ULONG));
            }
            if (info->Type != REG_DWORD || info->DataLength != sizeof(ULONG) || g_direction > 1) {
                DbgPrint("StreamEdit: Direction must be a REG_DWORD, 0 (send) or 1 (receive)\n");
                status = STATUS_INVALID_PARAMETER;
            }
            ExFreePoolWithTag(info, SE_TAG);
        } else if (directionStatus != STATUS_OBJECT_NAME_NOT_FOUND) {
            status = directionStatus;
        }
    }
    ZwClose(parametersKey);
    return status;
}

/* ---- registration ------------------------------------------------------------------- */

static NTSTATUS SeRegisterCallout(_In_ const GUID *calloutKey, _Out_ UINT32 *calloutId)
{
    FWPS_CALLOUT0 callout = {0};
    callout.calloutKey = *calloutKey;
    callout.classifyFn = SeStreamClassify;
    callout.notifyFn = SeNotify;
    return FwpsCalloutRegister0(g_device, &callout, calloutId);
}

static NTSTATUS SeAddCalloutAndFilter(_In_ const GUID *calloutKey, _In_ const GUID *layerKey,
                                      _In_ PWSTR name)
{
    FWPM_CALLOUT0 callout = {0};
    FWPM_FILTER0 filter = {0};
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
    filter.subLayerKey = SE_SUBLAYER;
    filter.action.type = FWP_ACTION_CALLOUT_TERMINATING;
    filter.action.calloutKey = *calloutKey;
    filter.weight.type = FWP_EMPTY;
    return FwpmFilterAdd0(g_engine, &filter, NULL, NULL);
}

static void SeCleanup(void)
{
    LARGE_INTEGER interval;

    if (g_engine != NULL) {
        FwpmEngineClose0(g_engine); /* dynamic session: the filters go with it */
        g_engine = NULL;
    }
    for (int i = 0; i < 2; i++) {
        if (g_streamCalloutIds[i] != 0) {
            FwpsCalloutUnregisterById0(g_streamCalloutIds[i]);
            g_streamCalloutIds[i] = 0;
        }
    }
    /* The NBLs and MDLs of injections still pending are freed by their completion. */
    interval.QuadPart = -10 * 1000 * 10; /* 10 ms */
    while (InterlockedCompareExchange(&g_pendingInjections, 0, 0) != 0) {
        KeDelayExecutionThread(KernelMode, FALSE, &interval);
    }
    if (g_injection != NULL) {
        FwpsInjectionHandleDestroy0(g_injection);
        g_injection = NULL;
    }
    if (g_nblPool != NULL) {
        NdisFreeNetBufferListPool(g_nblPool);
        g_nblPool = NULL;
    }
    if (g_device != NULL) {
        IoDeleteDevice(g_device);
        g_device = NULL;
    }
}

_Use_decl_annotations_
VOID StreamEditUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    SeCleanup();
    DbgPrint("StreamEdit: unloaded: %ld replaced, %ld injections failed\n", g_replaced,
             g_injectFailures);
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    FWPM_SESSION0 session = {0};
    FWPM_SUBLAYER0 sublayer = {0};
    NET_BUFFER_LIST_POOL_PARAMETERS poolParameters = {0};
    NTSTATUS status;

    NT_ASSERT(KeGetCurrentIrql() == PASSIVE_LEVEL);

    status = SeReadParameters(RegistryPath);
    if (!NT_SUCCESS(status)) {
        DbgPrint("StreamEdit: bad parameters in %wZ: 0x%08X\n", RegistryPath, status);
        return status;
    }

    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN,
                            FALSE, &g_device);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, &g_injection);
    if (NT_SUCCESS(status)) {
        poolParameters.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
        poolParameters.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
        poolParameters.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
        poolParameters.fAllocateNetBuffer = TRUE;
        poolParameters.PoolTag = SE_TAG;
        g_nblPool = NdisAllocateNetBufferListPool(NULL, &poolParameters);
        if (g_nblPool == NULL) {
            status = STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    if (NT_SUCCESS(status)) {
        status = SeRegisterCallout(&SE_STREAM_CALLOUT_V4, &g_streamCalloutIds[0]);
    }
    if (NT_SUCCESS(status)) {
        status = SeRegisterCallout(&SE_STREAM_CALLOUT_V6, &g_streamCalloutIds[1]);
    }
    if (NT_SUCCESS(status)) {
        session.flags = FWPM_SESSION_FLAG_DYNAMIC;
        status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &g_engine);
    }
    if (NT_SUCCESS(status)) {
        status = FwpmTransactionBegin0(g_engine, 0);
        if (NT_SUCCESS(status)) {
            sublayer.subLayerKey = SE_SUBLAYER;
            sublayer.displayData.name = L"Stream edit";
            sublayer.weight = 0x100;
            status = FwpmSubLayerAdd0(g_engine, &sublayer, NULL);
            if (NT_SUCCESS(status)) {
                status = SeAddCalloutAndFilter(&SE_STREAM_CALLOUT_V4, &FWPM_LAYER_STREAM_V4,
                                               L"Stream edit: stream (IPv4)");
            }
            if (NT_SUCCESS(status)) {
                status = SeAddCalloutAndFilter(&SE_STREAM_CALLOUT_V6, &FWPM_LAYER_STREAM_V6,
                                               L"Stream edit: stream (IPv6)");
            }
            if (NT_SUCCESS(status)) {
                status = FwpmTransactionCommit0(g_engine);
            } else {
                FwpmTransactionAbort0(g_engine);
            }
        }
    }
    if (!NT_SUCCESS(status)) {
        DbgPrint("StreamEdit: set-up failed: 0x%08X\n", status);
        SeCleanup();
        return status;
    }

    DriverObject->DriverUnload = StreamEditUnload;
    DbgPrint("StreamEdit: loaded, %Iu bytes -> %Iu bytes in the %s direction\n", g_findLength,
             g_replaceLength, g_direction == 0 ? "send" : "receive");
    return STATUS_SUCCESS;
}
