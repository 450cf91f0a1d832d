/*
 * A KMDF driver for the host's framework-object report. Mode (REG_DWORD):
 * 0 leaves its Parameters key open and a string undeleted at unload, 1
 * releases both, 2 fails DriverEntry with the key still open, 3 has no
 * EvtDriverUnload (so it cannot be unloaded). The control device is never
 * deleted by the driver: the framework does that.
 */
#include <ntddk.h>
#include <wdf.h>

DRIVER_INITIALIZE DriverEntry;
EVT_WDF_DRIVER_UNLOAD WdfLeakEvtDriverUnload;

static WDFKEY g_key;
static WDFSTRING g_string;
static ULONG g_mode;

_Use_decl_annotations_
VOID WdfLeakEvtDriverUnload(WDFDRIVER Driver)
{
    UNREFERENCED_PARAMETER(Driver);
    if (g_mode == 1) {
        WdfRegistryClose(g_key);
        WdfObjectDelete(g_string);
    }
    DbgPrint("WdfLeak: EvtDriverUnload, mode %lu\n", g_mode);
}

static NTSTATUS WdfLeakCreateDevice(_In_ WDFDRIVER driver)
{
    PWDFDEVICE_INIT init = WdfControlDeviceInitAllocate(driver, &SDDL_DEVOBJ_KERNEL_ONLY);
    WDFDEVICE device;
    NTSTATUS status;

    if (init == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    status = WdfDeviceCreate(&init, WDF_NO_OBJECT_ATTRIBUTES, &device);
    if (!NT_SUCCESS(status)) {
        WdfDeviceInitFree(init);
        return status;
    }
    WdfControlFinishInitializing(device);
    return STATUS_SUCCESS;
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    DECLARE_CONST_UNICODE_STRING(modeName, L"Mode");
    RTL_QUERY_REGISTRY_TABLE query[2];
    WDF_DRIVER_CONFIG config;
    WDFDRIVER driver;
    NTSTATUS status;

    RtlZeroMemory(query, sizeof(query));
    query[0].Flags = RTL_QUERY_REGISTRY_DIRECT;
    query[0].Name = L"Mode";
    query[0].EntryContext = &g_mode;
    (void)RtlQueryRegistryValues(RTL_REGISTRY_ABSOLUTE, RegistryPath->Buffer, query, NULL, NULL);

    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    config.EvtDriverUnload = g_mode == 3 ? NULL : WdfLeakEvtDriverUnload;
    status = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config,
                             &driver);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = WdfDriverOpenParametersRegistryKey(driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES,
                                                &g_key);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = WdfRegistryQueryULong(g_key, &modeName, &g_mode);
    if (status == STATUS_OBJECT_NAME_NOT_FOUND) {
        status = STATUS_SUCCESS;
    }
    if (NT_SUCCESS(status)) {
        status = WdfStringCreate(NULL, WDF_NO_OBJECT_ATTRIBUTES, &g_string);
    }
    if (NT_SUCCESS(status)) {
        status = WdfLeakCreateDevice(driver);
    }
    if (NT_SUCCESS(status) && g_mode == 2) {
        status = STATUS_UNSUCCESSFUL;
    }
    DbgPrint("WdfLeak: DriverEntry, mode %lu: 0x%08X\n", g_mode, status);
    return status;
}
