/*
 * A KMDF callout driver written exactly as for Windows, compiled with
 * -Werror against openwfp's WDK headers: WdfDriverCreate for a non-PnP
 * driver, parameters through WdfDriverOpenParametersRegistryKey and the
 * WdfRegistryQuery* family, a control device with a typed context whose WDM
 * device registers an ALE callout, WPP tracing with its own trace function
 * and a .tmh include, EvtDriverUnload.
 *
 * Only the CompatKmdf* query functions at the end exist for the test;
 * everything else would build unchanged with the WDK.
 */
#include <ntddk.h>
#include <wdf.h>
#include <fwpsk.h>
#include <fwpmk.h>

#define INITGUID
#include <guiddef.h>

// {0b1e7c52-3d4a-4e8f-9a6b-7c8d9e0f1a01}
#define WPP_CONTROL_GUIDS                                                                \
    WPP_DEFINE_CONTROL_GUID(CompatKmdfTraceGuid, (0b1e7c52, 3d4a, 4e8f, 9a6b, 7c8d9e0f1a01), \
                            WPP_DEFINE_BIT(TRACE_DRIVER)                                 \
                            WPP_DEFINE_BIT(TRACE_CALLOUT))

#define WPP_LEVEL_FLAGS_LOGGER(lvl, flags) WPP_LEVEL_LOGGER(flags)
#define WPP_LEVEL_FLAGS_ENABLED(lvl, flags) \
    (WPP_LEVEL_ENABLED(flags) && WPP_CONTROL(WPP_BIT_##flags).Level >= lvl)

/*
 * begin_wpp config
 * FUNC TraceEvents(LEVEL, FLAGS, MSG, ...);
 * FUNC TraceError{LEVEL=TRACE_LEVEL_ERROR}(FLAGS, MSG, ...);
 * end_wpp
 */

#include "compat_kmdf_driver.tmh"

// {0b1e7c52-3d4a-4e8f-9a6b-7c8d9e0f1a10}
DEFINE_GUID(COMPAT_KMDF_CALLOUT, 0x0b1e7c52, 0x3d4a, 0x4e8f, 0x9a, 0x6b, 0x7c, 0x8d, 0x9e, 0x0f,
            0x1a, 0x10);
// {0b1e7c52-3d4a-4e8f-9a6b-7c8d9e0f1a11}
DEFINE_GUID(COMPAT_KMDF_SUBLAYER, 0x0b1e7c52, 0x3d4a, 0x4e8f, 0x9a, 0x6b, 0x7c, 0x8d, 0x9e, 0x0f,
            0x1a, 0x11);

#define COMPAT_NAME_CHARS 32

typedef struct _COMPAT_DEVICE_CONTEXT {
    LONG volatile Classified;
    ULONG Level;
} COMPAT_DEVICE_CONTEXT, *PCOMPAT_DEVICE_CONTEXT;

WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(COMPAT_DEVICE_CONTEXT, CompatGetDeviceContext)

typedef struct _COMPAT_KMDF_GLOBALS {
    WDFDEVICE Device;
    WDFSTRING NameObject;
    HANDLE EngineHandle;
    UINT32 CalloutId;
    ULONG Level;
    ULONG LevelType;
    WCHAR Name[COMPAT_NAME_CHARS];
    USHORT NameBytes;
    BOOLEAN Unloaded;
    LONG DriverCleanups;
} COMPAT_KMDF_GLOBALS;

static COMPAT_KMDF_GLOBALS g_Kmdf;

DRIVER_INITIALIZE DriverEntry;
EVT_WDF_DRIVER_UNLOAD CompatKmdfEvtDriverUnload;
EVT_WDF_OBJECT_CONTEXT_CLEANUP CompatKmdfEvtDriverCleanup;

_IRQL_requires_max_(DISPATCH_LEVEL)
static void NTAPI CompatKmdfClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                     _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                     _Inout_opt_ void *layerData,
                                     _In_opt_ const void *classifyContext,
                                     _In_ const FWPS_FILTER1 *filter, _In_ UINT64 flowContext,
                                     _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    PCOMPAT_DEVICE_CONTEXT context = CompatGetDeviceContext(g_Kmdf.Device);
    UINT16 remotePort =
        inFixedValues->incomingValue[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT]
            .value.uint16;

    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(classifyContext);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);

    /* remotePort is only traced: a no-op trace must still count as a use. */
    TraceEvents(TRACE_LEVEL_VERBOSE, TRACE_CALLOUT, "flow to port %u (driver %p)", remotePort,
                WdfGetDriver());
    if (context != NULL) {
        InterlockedIncrement(&context->Classified);
    }
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

_IRQL_requires_max_(DISPATCH_LEVEL)
static NTSTATUS NTAPI CompatKmdfNotify(_In_ FWPS_CALLOUT_NOTIFY_TYPE notifyType,
                                       _In_ const GUID *filterKey, _Inout_ FWPS_FILTER1 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

static NTSTATUS CompatKmdfReadParameters(_In_ WDFDRIVER Driver)
{
    DECLARE_CONST_UNICODE_STRING(levelName, L"Level");
    DECLARE_CONST_UNICODE_STRING(nameName, L"Name");
    DECLARE_UNICODE_STRING_SIZE(name, COMPAT_NAME_CHARS);
    WDFKEY key;
    ULONG levelCopy = 0;
    ULONG length = 0;
    NTSTATUS status;

    status = WdfDriverOpenParametersRegistryKey(Driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES, &key);
    if (!NT_SUCCESS(status)) {
        TraceError(TRACE_DRIVER, "cannot open the Parameters key: %!STATUS!", status);
        return status;
    }
    status = WdfRegistryQueryULong(key, &levelName, &g_Kmdf.Level);
    if (NT_SUCCESS(status)) {
        status = WdfRegistryQueryValue(key, &levelName, sizeof(levelCopy), &levelCopy, &length,
                                       &g_Kmdf.LevelType);
    }
    if (NT_SUCCESS(status) && (length != sizeof(ULONG) || levelCopy != g_Kmdf.Level)) {
        status = STATUS_INTERNAL_ERROR;
    }
    if (NT_SUCCESS(status)) {
        status = WdfRegistryQueryUnicodeString(key, &nameName, NULL, &name);
    }
    if (NT_SUCCESS(status)) {
        RtlCopyMemory(g_Kmdf.Name, name.Buffer, name.Length);
        g_Kmdf.NameBytes = name.Length;
        status = WdfStringCreate(NULL, WDF_NO_OBJECT_ATTRIBUTES, &g_Kmdf.NameObject);
    }
    if (NT_SUCCESS(status)) {
        status = WdfRegistryQueryString(key, &nameName, g_Kmdf.NameObject);
    }
    WdfRegistryClose(key);
    TraceEvents(TRACE_LEVEL_INFORMATION, TRACE_DRIVER, "Level=%lu Name=%wZ: %!STATUS!",
                g_Kmdf.Level, &name, status);
    return status;
}

static NTSTATUS CompatKmdfCreateDevice(_In_ WDFDRIVER Driver)
{
    DECLARE_CONST_UNICODE_STRING(deviceName, L"\\Device\\OpenWfpCompatKmdf");
    DECLARE_CONST_UNICODE_STRING(linkName, L"\\DosDevices\\OpenWfpCompatKmdf");
    WDF_OBJECT_ATTRIBUTES attributes;
    PWDFDEVICE_INIT deviceInit;
    NTSTATUS status;

    deviceInit = WdfControlDeviceInitAllocate(Driver, &SDDL_DEVOBJ_KERNEL_ONLY);
    if (deviceInit == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    WdfDeviceInitSetDeviceType(deviceInit, FILE_DEVICE_NETWORK);
    WdfDeviceInitSetCharacteristics(deviceInit, FILE_DEVICE_SECURE_OPEN, FALSE);
    status = WdfDeviceInitAssignName(deviceInit, &deviceName);
    if (NT_SUCCESS(status)) {
        WDF_OBJECT_ATTRIBUTES_INIT_CONTEXT_TYPE(&attributes, COMPAT_DEVICE_CONTEXT);
        status = WdfDeviceCreate(&deviceInit, &attributes, &g_Kmdf.Device);
    }
    if (!NT_SUCCESS(status)) {
        WdfDeviceInitFree(deviceInit);
        return status;
    }
    CompatGetDeviceContext(g_Kmdf.Device)->Level = g_Kmdf.Level;
    status = WdfDeviceCreateSymbolicLink(g_Kmdf.Device, &linkName);
    WdfControlFinishInitializing(g_Kmdf.Device);
    return status;
}

static NTSTATUS CompatKmdfAddCallout(void)
{
    FWPS_CALLOUT1 sCallout = {0};
    FWPM_SESSION0 session = {0};
    FWPM_SUBLAYER0 subLayer = {0};
    FWPM_CALLOUT0 mCallout = {0};
    FWPM_FILTER0 filter = {0};
    NTSTATUS status;

    sCallout.calloutKey = COMPAT_KMDF_CALLOUT;
    sCallout.classifyFn = CompatKmdfClassify;
    sCallout.notifyFn = CompatKmdfNotify;
    status = FwpsCalloutRegister1(WdfDeviceWdmGetDeviceObject(g_Kmdf.Device), &sCallout,
                                  &g_Kmdf.CalloutId);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &g_Kmdf.EngineHandle);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    subLayer.subLayerKey = COMPAT_KMDF_SUBLAYER;
    subLayer.displayData.name = L"Compat KMDF sublayer";
    status = FwpmSubLayerAdd0(g_Kmdf.EngineHandle, &subLayer, NULL);
    if (NT_SUCCESS(status)) {
        mCallout.calloutKey = COMPAT_KMDF_CALLOUT;
        mCallout.displayData.name = L"Compat KMDF callout";
        mCallout.applicableLayer = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
        status = FwpmCalloutAdd0(g_Kmdf.EngineHandle, &mCallout, NULL, NULL);
    }
    if (NT_SUCCESS(status)) {
        filter.layerKey = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
        filter.subLayerKey = COMPAT_KMDF_SUBLAYER;
        filter.displayData.name = L"Compat KMDF filter";
        filter.action.type = FWP_ACTION_CALLOUT_INSPECTION;
        filter.action.calloutKey = COMPAT_KMDF_CALLOUT;
        filter.weight.type = FWP_EMPTY;
        status = FwpmFilterAdd0(g_Kmdf.EngineHandle, &filter, NULL, NULL);
    }
    return status;
}

static void CompatKmdfCleanup(void)
{
    if (g_Kmdf.EngineHandle != NULL) {
        FwpmEngineClose0(g_Kmdf.EngineHandle);
        g_Kmdf.EngineHandle = NULL;
    }
    if (g_Kmdf.CalloutId != 0) {
        FwpsCalloutUnregisterById0(g_Kmdf.CalloutId);
        g_Kmdf.CalloutId = 0;
    }
}

_Use_decl_annotations_
VOID CompatKmdfEvtDriverCleanup(WDFOBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    InterlockedIncrement(&g_Kmdf.DriverCleanups);
}

_Use_decl_annotations_
VOID CompatKmdfEvtDriverUnload(WDFDRIVER Driver)
{
    CompatKmdfCleanup();
    if (g_Kmdf.NameObject != NULL) {
        WdfObjectDelete(g_Kmdf.NameObject);
        g_Kmdf.NameObject = NULL;
    }
    g_Kmdf.Unloaded = TRUE;
    DoTraceMessage(TRACE_DRIVER, "%!FUNC!: unloading");
    WPP_CLEANUP(WdfDriverWdmGetDriverObject(Driver));
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDF_OBJECT_ATTRIBUTES attributes;
    WDFDRIVER driver;
    NTSTATUS status;

    WPP_INIT_TRACING(DriverObject, RegistryPath);
    RtlZeroMemory(&g_Kmdf, sizeof(g_Kmdf));

    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    config.EvtDriverUnload = CompatKmdfEvtDriverUnload;
    WDF_OBJECT_ATTRIBUTES_INIT(&attributes);
    attributes.EvtCleanupCallback = CompatKmdfEvtDriverCleanup;
    status = WdfDriverCreate(DriverObject, RegistryPath, &attributes, &config, &driver);
    if (!NT_SUCCESS(status)) {
        WPP_CLEANUP(DriverObject);
        return status;
    }
    NT_ASSERT(WdfGetDriver() == driver);
    NT_ASSERT(WdfDriverWdmGetDriverObject(driver) == DriverObject);

    status = CompatKmdfReadParameters(driver);
    if (NT_SUCCESS(status)) {
        status = CompatKmdfCreateDevice(driver);
    }
    if (NT_SUCCESS(status)) {
        status = CompatKmdfAddCallout();
    }
    if (!NT_SUCCESS(status)) {
        TraceError(TRACE_DRIVER, "DriverEntry failed: %!STATUS!", status);
        CompatKmdfCleanup();
        WPP_CLEANUP(DriverObject);
    }
    return status;
}

/* ---- for the test only ---------------------------------------------------- */

ULONG CompatKmdfLevel(void)
{
    return g_Kmdf.Level;
}

ULONG CompatKmdfLevelType(void)
{
    return g_Kmdf.LevelType;
}

USHORT CompatKmdfName(PWCHAR buffer, USHORT bytes)
{
    USHORT n = g_Kmdf.NameBytes < bytes ? g_Kmdf.NameBytes : bytes;
    RtlCopyMemory(buffer, g_Kmdf.Name, n);
    return n;
}

WDFSTRING CompatKmdfNameObject(void)
{
    return g_Kmdf.NameObject;
}

WDFDEVICE CompatKmdfDevice(void)
{
    return g_Kmdf.Device;
}

LONG CompatKmdfClassified(void)
{
    return CompatGetDeviceContext(g_Kmdf.Device)->Classified;
}

BOOLEAN CompatKmdfUnloaded(void)
{
    return g_Kmdf.Unloaded;
}

LONG CompatKmdfDriverCleanups(void)
{
    return g_Kmdf.DriverCleanups;
}
