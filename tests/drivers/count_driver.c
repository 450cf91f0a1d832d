/*
 * A stream callout driver written as for Windows: DriverEntry creates a
 * device, registers a stream callout for IPv4 and IPv6, and adds a sublayer,
 * the callouts and a filter per layer in one dynamic session; the callout
 * counts every stream byte it is shown and permits it. DriverUnload prints
 * the count and takes everything down again.
 */
#include <ntddk.h>
#include <wdm.h>
#include <fwpsk.h>
#include <fwpmk.h>

#define INITGUID
#include <guiddef.h>

// {7b3f0c1e-5a2d-4e8f-9c61-0d1e2f3a4b01}
DEFINE_GUID(COUNT_SUBLAYER, 0x7b3f0c1e, 0x5a2d, 0x4e8f, 0x9c, 0x61, 0x0d, 0x1e, 0x2f, 0x3a, 0x4b,
            0x01);
// {7b3f0c1e-5a2d-4e8f-9c61-0d1e2f3a4b02}
DEFINE_GUID(COUNT_CALLOUT_V4, 0x7b3f0c1e, 0x5a2d, 0x4e8f, 0x9c, 0x61, 0x0d, 0x1e, 0x2f, 0x3a,
            0x4b, 0x02);
// {7b3f0c1e-5a2d-4e8f-9c61-0d1e2f3a4b03}
DEFINE_GUID(COUNT_CALLOUT_V6, 0x7b3f0c1e, 0x5a2d, 0x4e8f, 0x9c, 0x61, 0x0d, 0x1e, 0x2f, 0x3a,
            0x4b, 0x03);

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD CountUnload;

static PDEVICE_OBJECT g_device;
static HANDLE g_engine;
static UINT32 g_calloutIds[2];
static LONG64 volatile g_bytes;
static LONG64 volatile g_classifies;

static void NTAPI CountClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                                _In_ UINT64 flowContext, _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    FWPS_STREAM_CALLOUT_IO_PACKET0 *packet = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);

    if (packet != NULL && packet->streamData != NULL) {
        InterlockedAdd64(&g_bytes, (LONG64)packet->streamData->dataLength);
    }
    InterlockedIncrement64(&g_classifies);
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

static NTSTATUS NTAPI CountNotify(_In_ FWPS_CALLOUT_NOTIFY_TYPE notifyType,
                                  _In_ const GUID *filterKey, _Inout_ FWPS_FILTER0 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

static NTSTATUS CountAddCallout(_In_ const GUID *calloutKey, _In_ const GUID *layerKey,
                                _Out_ UINT32 *calloutId)
{
    FWPS_CALLOUT0 sCallout = {0};
    FWPM_CALLOUT0 mCallout = {0};
    NTSTATUS status;

    sCallout.calloutKey = *calloutKey;
    sCallout.classifyFn = CountClassify;
    sCallout.notifyFn = CountNotify;
    status = FwpsCalloutRegister0(g_device, &sCallout, calloutId);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    mCallout.calloutKey = *calloutKey;
    mCallout.displayData.name = L"Byte counter";
    mCallout.applicableLayer = *layerKey;
    status = FwpmCalloutAdd0(g_engine, &mCallout, NULL, NULL);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    FWPM_FILTER0 filter = {0};
    filter.displayData.name = L"Count every stream byte";
    filter.layerKey = *layerKey;
    filter.subLayerKey = COUNT_SUBLAYER;
    filter.action.type = FWP_ACTION_CALLOUT_INSPECTION;
    filter.action.calloutKey = *calloutKey;
    filter.weight.type = FWP_EMPTY;
    return FwpmFilterAdd0(g_engine, &filter, NULL, NULL);
}

static void CountCleanup(void)
{
    if (g_engine != NULL) {
        FwpmEngineClose0(g_engine); /* dynamic session: its objects go with it */
        g_engine = NULL;
    }
    for (int i = 0; i < 2; i++) {
        if (g_calloutIds[i] != 0) {
            FwpsCalloutUnregisterById0(g_calloutIds[i]);
            g_calloutIds[i] = 0;
        }
    }
    if (g_device != NULL) {
        IoDeleteDevice(g_device);
        g_device = NULL;
    }
}

_Use_decl_annotations_
VOID CountUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    CountCleanup();
    DbgPrint("CountDriver: unloaded after %I64d classifies, %I64d stream bytes\n", g_classifies,
             g_bytes);
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    FWPM_SESSION0 session = {0};
    FWPM_SUBLAYER0 sublayer = {0};
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);
    NT_ASSERT(KeGetCurrentIrql() == PASSIVE_LEVEL);

    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN,
                            FALSE, &g_device);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &g_engine);
    if (NT_SUCCESS(status)) {
        status = FwpmTransactionBegin0(g_engine, 0);
    }
    if (NT_SUCCESS(status)) {
        sublayer.subLayerKey = COUNT_SUBLAYER;
        sublayer.displayData.name = L"Byte counter";
        sublayer.weight = 0x100;
        status = FwpmSubLayerAdd0(g_engine, &sublayer, NULL);
        if (NT_SUCCESS(status)) {
            status = CountAddCallout(&COUNT_CALLOUT_V4, &FWPM_LAYER_STREAM_V4, &g_calloutIds[0]);
        }
        if (NT_SUCCESS(status)) {
            status = CountAddCallout(&COUNT_CALLOUT_V6, &FWPM_LAYER_STREAM_V6, &g_calloutIds[1]);
        }
        if (NT_SUCCESS(status)) {
            status = FwpmTransactionCommit0(g_engine);
        } else {
            FwpmTransactionAbort0(g_engine);
        }
    }
    if (!NT_SUCCESS(status)) {
        DbgPrint("CountDriver: set-up failed: 0x%08X\n", status);
        CountCleanup();
        return status;
    }

    DriverObject->DriverUnload = CountUnload;
    DbgPrint("CountDriver: loaded as %wZ\n", &DriverObject->DriverName);
    return STATUS_SUCCESS;
}
