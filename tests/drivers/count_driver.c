/*
 * A stream callout driver written as for Windows: DriverEntry creates a
 * device, registers a stream callout for IPv4 and IPv6, and adds a sublayer,
 * the callouts and a filter per layer in one dynamic session; the callout
 * counts every stream byte it is shown and permits it. DriverUnload prints
 * the count and takes everything down again.
 */
#include "test_driver.h"

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

static const TEST_STREAM_CALLOUT g_callout = {
    .calloutKeys = {&COUNT_CALLOUT_V4, &COUNT_CALLOUT_V6},
    .classifyFn = CountClassify,
    .calloutName = L"Byte counter",
    .filterName = L"Count every stream byte",
    .filterAction = FWP_ACTION_CALLOUT_INSPECTION,
    .sublayerKey = &COUNT_SUBLAYER,
    .sublayerName = L"Byte counter",
};

_Use_decl_annotations_
VOID CountUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    TestCleanup(g_calloutIds);
    DbgPrint("CountDriver: unloaded after %I64d classifies, %I64d stream bytes\n", g_classifies,
             g_bytes);
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);
    NT_ASSERT(KeGetCurrentIrql() == PASSIVE_LEVEL);

    status = TestCreateDevice(DriverObject);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = TestAddStreamCallout(&g_callout, g_calloutIds);
    if (!NT_SUCCESS(status)) {
        DbgPrint("CountDriver: set-up failed: 0x%08X\n", status);
        TestCleanup(g_calloutIds);
        return status;
    }

    DriverObject->DriverUnload = CountUnload;
    DbgPrint("CountDriver: loaded as %wZ\n", &DriverObject->DriverName);
    return STATUS_SUCCESS;
}
