/*
 * A stream callout driver that crashes in classifyFn when its "Crash"
 * parameter is non-zero: a write through a null pointer, as a real driver
 * bug would. It finds the parameter by enumerating its Parameters key
 * (ZwQueryKey, ZwEnumerateValueKey), so it also shows those calls at work.
 */
#include <ntddk.h>
#include <wdm.h>
#include <fwpsk.h>
#include <fwpmk.h>

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

static PDEVICE_OBJECT g_device;
static HANDLE g_engine;
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

static NTSTATUS NTAPI CrashNotify(_In_ FWPS_CALLOUT_NOTIFY_TYPE notifyType,
                                  _In_ const GUID *filterKey, _Inout_ FWPS_FILTER0 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
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

static NTSTATUS CrashAddCallout(_In_ const GUID *calloutKey, _In_ const GUID *layerKey,
                                _Out_ UINT32 *calloutId)
{
    FWPS_CALLOUT0 sCallout = {0};
    FWPM_CALLOUT0 mCallout = {0};
    FWPM_FILTER0 filter = {0};
    NTSTATUS status;

    sCallout.calloutKey = *calloutKey;
    sCallout.classifyFn = CrashClassify;
    sCallout.notifyFn = CrashNotify;
    status = FwpsCalloutRegister0(g_device, &sCallout, calloutId);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    mCallout.calloutKey = *calloutKey;
    mCallout.displayData.name = L"Crash on demand";
    mCallout.applicableLayer = *layerKey;
    status = FwpmCalloutAdd0(g_engine, &mCallout, NULL, NULL);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    filter.displayData.name = L"Crash on demand";
    filter.layerKey = *layerKey;
    filter.action.type = FWP_ACTION_CALLOUT_INSPECTION;
    filter.action.calloutKey = *calloutKey;
    filter.weight.type = FWP_EMPTY;
    return FwpmFilterAdd0(g_engine, &filter, NULL, NULL);
}

static void CrashCleanup(void)
{
    if (g_engine != NULL) {
        FwpmEngineClose0(g_engine);
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
VOID CrashUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    CrashCleanup();
    DbgPrint("CrashDriver: unloaded\n");
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    OBJECT_ATTRIBUTES attributes;
    UNICODE_STRING parameters = RTL_CONSTANT_STRING(L"Parameters");
    HANDLE serviceKey = NULL;
    HANDLE parametersKey = NULL;
    FWPM_SESSION0 session = {0};
    NTSTATUS status;

    InitializeObjectAttributes(&attributes, RegistryPath,
                               OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
    status = ZwOpenKey(&serviceKey, KEY_READ, &attributes);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    InitializeObjectAttributes(&attributes, &parameters, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
                               serviceKey, NULL);
    status = ZwOpenKey(&parametersKey, KEY_READ, &attributes);
    ZwClose(serviceKey);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = CrashReadParameters(parametersKey);
    ZwClose(parametersKey);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN,
                            FALSE, &g_device);
    if (NT_SUCCESS(status)) {
        session.flags = FWPM_SESSION_FLAG_DYNAMIC;
        status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &g_engine);
    }
    if (NT_SUCCESS(status)) {
        status = CrashAddCallout(&CRASH_CALLOUT_V4, &FWPM_LAYER_STREAM_V4, &g_calloutIds[0]);
    }
    if (NT_SUCCESS(status)) {
        status = CrashAddCallout(&CRASH_CALLOUT_V6, &FWPM_LAYER_STREAM_V6, &g_calloutIds[1]);
    }
    if (!NT_SUCCESS(status)) {
        CrashCleanup();
        return status;
    }
    DriverObject->DriverUnload = CrashUnload;
    return STATUS_SUCCESS;
}
