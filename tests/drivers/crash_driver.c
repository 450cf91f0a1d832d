/*
 * A stream callout driver that crashes in classifyFn when its "Crash"
 * parameter is non-zero: a write through a null pointer, as a real driver
 * bug would. It finds the parameter by enumerating its Parameters key
 * (ZwQueryKey, ZwEnumerateValueKey), so it also shows those calls at work.
 */
#include "test_driver.h"

#define INITGUID
#include <guiddef.h>

#define CRASH_TAG 'hsrC'

// {5d0e8a43-91c2-4b7f-a3e6-2f1c0b9d7e01}
DEFINE_GUID(CRASH_CALLOUT_V4, 0x5d0e8a43, 0x91c2, 0x4b7f, 0xa3, 0xe6, 0x2f, 0x1c, 0x0b, 0x9d, 0x7e,
            0x01);
// {5d0e8a43-91c2-4b7f-a3e6-2f1c0b9d7e02}
DEFINE_GUID(CRASH_CALLOUT_V6, 0x5d0e8a43, 0x91c2, 0x4b7f, 0xa3, 0xe6, 0x2f, 0x1c, 0x0b, 0x9d, 0x7e,
            0x02);

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD CrashUnload;

static UINT32 g_calloutIds[2];
static ULONG g_crash;

static void NTAPI CrashClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                                _In_ UINT64 flowContext, _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);

    if (g_crash != 0) {
        /* volatile pointer and target: an optimising compiler must emit the
         * store (it drops a plain store through a pointer it cannot see as
         * NULL when nothing reads the value back). */
        volatile LONG *volatile nowhere = NULL;
        *nowhere = 1;
    }
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

/* Looks at every value of the key for a REG_DWORD named "Crash". */
static NTSTATUS CrashReadParameters(_In_ HANDLE key)
{
    KEY_FULL_INFORMATION keyInfo;
    PKEY_VALUE_FULL_INFORMATION info;
    ULONG length = 0;
    ULONG size;
    NTSTATUS status;
    UNICODE_STRING wanted = RTL_CONSTANT_STRING(L"Crash");

    status = ZwQueryKey(key, KeyFullInformation, &keyInfo, sizeof(keyInfo), &length);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    size = FIELD_OFFSET(KEY_VALUE_FULL_INFORMATION, Name) + keyInfo.MaxValueNameLen + 4 +
           keyInfo.MaxValueDataLen;
    info = (PKEY_VALUE_FULL_INFORMATION)ExAllocatePool2(POOL_FLAG_PAGED, size, CRASH_TAG);
    if (info == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    for (ULONG i = 0;; i++) {
        UNICODE_STRING name;
        status = ZwEnumerateValueKey(key, i, KeyValueFullInformation, info, size, &length);
        if (status == STATUS_NO_MORE_ENTRIES) {
            status = STATUS_SUCCESS;
            break;
        }
        if (!NT_SUCCESS(status)) {
            break;
        }
        name.Buffer = info->Name;
        name.Length = (USHORT)info->NameLength;
        name.MaximumLength = (USHORT)info->NameLength;
        if (RtlEqualUnicodeString(&name, &wanted, TRUE) && info->Type == REG_DWORD &&
            info->DataLength == sizeof(ULONG)) {
            RtlCopyMemory(&g_crash, (PUCHAR)info + info->DataOffset, sizeof(ULONG));
        }
    }
    DbgPrint("CrashDriver: %lu parameter(s), Crash=%lu\n", keyInfo.Values, g_crash);
    ExFreePoolWithTag(info, CRASH_TAG);
    return status;
}

static const TEST_STREAM_CALLOUT g_callout = {
    .calloutKeys = {&CRASH_CALLOUT_V4, &CRASH_CALLOUT_V6},
    .classifyFn = CrashClassify,
    .calloutName = L"Crash on demand",
    .filterName = L"Crash on demand",
    .filterAction = FWP_ACTION_CALLOUT_INSPECTION,
};

_Use_decl_annotations_
VOID CrashUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    TestCleanup(g_calloutIds);
    DbgPrint("CrashDriver: unloaded\n");
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE parametersKey = NULL;
    NTSTATUS status;

    status = TestOpenParametersKey(RegistryPath, &parametersKey);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = CrashReadParameters(parametersKey);
    ZwClose(parametersKey);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    status = TestCreateDevice(DriverObject);
    if (NT_SUCCESS(status)) {
        status = TestAddStreamCallout(&g_callout, g_calloutIds);
    }
    if (!NT_SUCCESS(status)) {
        TestCleanup(g_calloutIds);
        return status;
    }
    DriverObject->DriverUnload = CrashUnload;
    return STATUS_SUCCESS;
}
