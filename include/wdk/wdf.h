/*
 * A KMDF subset for callout drivers that are non-PnP framework drivers: the
 * framework driver object, a control device whose WDM DEVICE_OBJECT goes to
 * FwpsCalloutRegister, the driver's Parameters registry key, framework
 * strings and typed object contexts. src/kernel/wdf_*.c implement it;
 * docs/porting.md lists what is there and what is not.
 *
 * On Windows these methods are inline wrappers that call the framework
 * through a function table (WdfFunctions) bound at load time. Here they are
 * plain functions with the documented names and signatures, resolved from the
 * openwfp executable like every other kernel API; a driver sees no
 * difference at the source level.
 *
 * Handles are validated: a handle that is not a live framework object of the
 * expected type is recorded as a finding (Windows would bug-check) and the
 * call fails or does nothing.
 */
#ifndef OPENWFP_WDK_WDF_H
#define OPENWFP_WDK_WDF_H

#include "wdm.h"
#include "wdmsec.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef DECLARE_HANDLE
#define DECLARE_HANDLE(name) \
    struct name##__ {        \
        int unused;          \
    };                       \
    typedef struct name##__ *name
#endif

#ifndef DECLARE_CONST_UNICODE_STRING
#define DECLARE_CONST_UNICODE_STRING(_var, _string)        \
    const WCHAR _var##_buffer[] = _string;                 \
    const UNICODE_STRING _var = {sizeof(_string) - sizeof(WCHAR), sizeof(_string), \
                                 (PWCH)_var##_buffer}
#endif
#ifndef DECLARE_UNICODE_STRING_SIZE
#define DECLARE_UNICODE_STRING_SIZE(_var, _size) \
    WCHAR _var##_buffer[_size];                  \
    UNICODE_STRING _var = {0, (_size) * sizeof(WCHAR), _var##_buffer}
#endif

#define WDFAPI

/* ---- handles ----------------------------------------------------------------------- */

typedef HANDLE WDFOBJECT, *PWDFOBJECT;
DECLARE_HANDLE(WDFDRIVER);
DECLARE_HANDLE(WDFDEVICE);
DECLARE_HANDLE(WDFKEY);
DECLARE_HANDLE(WDFSTRING);
typedef struct WDFDEVICE_INIT WDFDEVICE_INIT, *PWDFDEVICE_INIT;

#define WDF_NO_OBJECT_ATTRIBUTES NULL
#define WDF_NO_EVENT_CALLBACK NULL
#define WDF_NO_HANDLE NULL
#define WDF_NO_CONTEXT NULL

/* ---- object attributes and contexts ------------------------------------------------ */

typedef enum _WDF_EXECUTION_LEVEL {
    WdfExecutionLevelInvalid = 0,
    WdfExecutionLevelInheritFromParent,
    WdfExecutionLevelPassive,
    WdfExecutionLevelDispatch,
} WDF_EXECUTION_LEVEL;

typedef enum _WDF_SYNCHRONIZATION_SCOPE {
    WdfSynchronizationScopeInvalid = 0,
    WdfSynchronizationScopeInheritFromParent,
    WdfSynchronizationScopeDevice,
    WdfSynchronizationScopeQueue,
    WdfSynchronizationScopeNone,
} WDF_SYNCHRONIZATION_SCOPE;

typedef VOID EVT_WDF_OBJECT_CONTEXT_CLEANUP(_In_ WDFOBJECT Object);
typedef EVT_WDF_OBJECT_CONTEXT_CLEANUP *PFN_WDF_OBJECT_CONTEXT_CLEANUP;
typedef VOID EVT_WDF_OBJECT_CONTEXT_DESTROY(_In_ WDFOBJECT Object);
typedef EVT_WDF_OBJECT_CONTEXT_DESTROY *PFN_WDF_OBJECT_CONTEXT_DESTROY;

typedef struct _WDF_OBJECT_CONTEXT_TYPE_INFO WDF_OBJECT_CONTEXT_TYPE_INFO,
    *PWDF_OBJECT_CONTEXT_TYPE_INFO;
typedef const WDF_OBJECT_CONTEXT_TYPE_INFO *PCWDF_OBJECT_CONTEXT_TYPE_INFO;
typedef PCWDF_OBJECT_CONTEXT_TYPE_INFO (*PFN_GET_UNIQUE_CONTEXT_TYPE)(VOID);

struct _WDF_OBJECT_CONTEXT_TYPE_INFO {
    ULONG Size;
    PCHAR ContextName; /* contexts are matched by this name */
    size_t ContextSize;
    PCWDF_OBJECT_CONTEXT_TYPE_INFO UniqueType;
    PFN_GET_UNIQUE_CONTEXT_TYPE EvtDriverGetUniqueContextType;
};

typedef struct _WDF_OBJECT_ATTRIBUTES {
    ULONG Size;
    PFN_WDF_OBJECT_CONTEXT_CLEANUP EvtCleanupCallback;
    PFN_WDF_OBJECT_CONTEXT_DESTROY EvtDestroyCallback;
    WDF_EXECUTION_LEVEL ExecutionLevel;           /* accepted, not enforced */
    WDF_SYNCHRONIZATION_SCOPE SynchronizationScope; /* accepted, not enforced */
    WDFOBJECT ParentObject;
    size_t ContextSizeOverride;
    PCWDF_OBJECT_CONTEXT_TYPE_INFO ContextTypeInfo;
} WDF_OBJECT_ATTRIBUTES, *PWDF_OBJECT_ATTRIBUTES;

FORCEINLINE VOID WDF_OBJECT_ATTRIBUTES_INIT(_Out_ PWDF_OBJECT_ATTRIBUTES Attributes)
{
    RtlZeroMemory(Attributes, sizeof(WDF_OBJECT_ATTRIBUTES));
    Attributes->Size = sizeof(WDF_OBJECT_ATTRIBUTES);
    Attributes->ExecutionLevel = WdfExecutionLevelInheritFromParent;
    Attributes->SynchronizationScope = WdfSynchronizationScopeInheritFromParent;
}

#define WDF_TYPE_NAME_TO_TYPE_INFO(_contexttype) _WDF_##_contexttype##_TYPE_INFO
#define WDF_TYPE_NAME_POINTER_TYPE(_contexttype) WDF_POINTER_TYPE_##_contexttype
#define WDF_GET_CONTEXT_TYPE_INFO(_contexttype) (&WDF_TYPE_NAME_TO_TYPE_INFO(_contexttype))

/* One type-info object per translation unit: the framework matches contexts
 * by ContextName, so the copies agree. */
#define WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(_contexttype, _castingfunction)                     \
    typedef _contexttype *WDF_TYPE_NAME_POINTER_TYPE(_contexttype);                            \
    __attribute__((unused)) static const WDF_OBJECT_CONTEXT_TYPE_INFO                          \
        WDF_TYPE_NAME_TO_TYPE_INFO(_contexttype) = {sizeof(WDF_OBJECT_CONTEXT_TYPE_INFO),      \
                                                    (PCHAR) #_contexttype,                     \
                                                    sizeof(_contexttype), NULL, NULL};         \
    FORCEINLINE _contexttype *_castingfunction(_In_ WDFOBJECT Handle)                          \
    {                                                                                          \
        return (_contexttype *)WdfObjectGetTypedContextWorker(                                 \
            Handle, WDF_GET_CONTEXT_TYPE_INFO(_contexttype));                                  \
    }
#define WDF_DECLARE_CONTEXT_TYPE(_contexttype) \
    WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(_contexttype, WdfObjectGet_##_contexttype)

#define WDF_OBJECT_ATTRIBUTES_SET_CONTEXT_TYPE(_attributes, _contexttype) \
    ((_attributes)->ContextTypeInfo = WDF_GET_CONTEXT_TYPE_INFO(_contexttype))
#define WDF_OBJECT_ATTRIBUTES_INIT_CONTEXT_TYPE(_attributes, _contexttype) \
    do {                                                                  \
        WDF_OBJECT_ATTRIBUTES_INIT(_attributes);                          \
        WDF_OBJECT_ATTRIBUTES_SET_CONTEXT_TYPE(_attributes, _contexttype); \
    } while (0)
#define WdfObjectGetTypedContext(handle, type) \
    ((type *)WdfObjectGetTypedContextWorker((WDFOBJECT)(handle), WDF_GET_CONTEXT_TYPE_INFO(type)))

/* ≤ DISPATCH_LEVEL. The object's context of that type, zeroed at creation;
 * NULL when the object has none of that name. */
WDFAPI PVOID WdfObjectGetTypedContextWorker(_In_ WDFOBJECT Handle,
                                            _In_ PCWDF_OBJECT_CONTEXT_TYPE_INFO TypeInfo);

/* ≤ DISPATCH_LEVEL (PASSIVE_LEVEL for a control device). Deletes the object
 * and its children, running their EvtCleanupCallback then EvtDestroyCallback.
 * A WDFDRIVER cannot be deleted (a finding). */
WDFAPI VOID WdfObjectDelete(_In_ WDFOBJECT Object);

/* ---- driver ------------------------------------------------------------------------- */

typedef enum _WDF_DRIVER_INIT_FLAGS {
    WdfDriverInitNonPnpDriver = 0x00000001,
    WdfDriverInitNoDispatchOverride = 0x00000002,
    WdfVerifyOn = 0x00000004,
    WdfVerifierOn = 0x00000008,
    WdfDriverInitCompanion = 0x00000010,
} WDF_DRIVER_INIT_FLAGS;

typedef NTSTATUS EVT_WDF_DRIVER_DEVICE_ADD(_In_ WDFDRIVER Driver,
                                           _Inout_ PWDFDEVICE_INIT DeviceInit);
typedef EVT_WDF_DRIVER_DEVICE_ADD *PFN_WDF_DRIVER_DEVICE_ADD;
typedef VOID EVT_WDF_DRIVER_UNLOAD(_In_ WDFDRIVER Driver);
typedef EVT_WDF_DRIVER_UNLOAD *PFN_WDF_DRIVER_UNLOAD;

typedef struct _WDF_DRIVER_CONFIG {
    ULONG Size;
    PFN_WDF_DRIVER_DEVICE_ADD EvtDriverDeviceAdd; /* never called: there is no PnP manager */
    PFN_WDF_DRIVER_UNLOAD EvtDriverUnload;
    ULONG DriverInitFlags;
    ULONG DriverPoolTag;
} WDF_DRIVER_CONFIG, *PWDF_DRIVER_CONFIG;

FORCEINLINE VOID WDF_DRIVER_CONFIG_INIT(_Out_ PWDF_DRIVER_CONFIG Config,
                                        _In_opt_ PFN_WDF_DRIVER_DEVICE_ADD EvtDriverDeviceAdd)
{
    RtlZeroMemory(Config, sizeof(WDF_DRIVER_CONFIG));
    Config->Size = sizeof(WDF_DRIVER_CONFIG);
    Config->EvtDriverDeviceAdd = EvtDriverDeviceAdd;
}

/* PASSIVE_LEVEL, from DriverEntry, once per driver. Only non-PnP drivers
 * (WdfDriverInitNonPnpDriver) are supported (STATUS_NOT_SUPPORTED otherwise).
 * With an EvtDriverUnload the framework installs DriverObject->DriverUnload:
 * it calls EvtDriverUnload, then deletes the driver's framework objects.
 * Without one the driver cannot be unloaded, as on Windows. Wrong Size
 * fields: STATUS_INFO_LENGTH_MISMATCH. */
_Must_inspect_result_
WDFAPI NTSTATUS WdfDriverCreate(_In_ PDRIVER_OBJECT DriverObject,
                                _In_ PCUNICODE_STRING RegistryPath,
                                _In_opt_ PWDF_OBJECT_ATTRIBUTES DriverAttributes,
                                _In_ PWDF_DRIVER_CONFIG DriverConfig,
                                _Out_opt_ WDFDRIVER *Driver);
/* The framework driver object of the calling driver module; NULL before
 * WdfDriverCreate. */
WDFAPI WDFDRIVER WdfGetDriver(VOID);
WDFAPI PDRIVER_OBJECT WdfDriverWdmGetDriverObject(_In_ WDFDRIVER Driver);
/* The RegistryPath given to WdfDriverCreate, NUL-terminated. */
WDFAPI PWSTR WdfDriverGetRegistryPath(_In_ WDFDRIVER Driver);

/* ---- control device ----------------------------------------------------------------- */

/* PASSIVE_LEVEL. NULL without a driver or an SDDL string (which is kept
 * uninterpreted: there is no object security). */
WDFAPI PWDFDEVICE_INIT WdfControlDeviceInitAllocate(_In_ WDFDRIVER Driver,
                                                    _In_ const UNICODE_STRING *SDDLString);
/* Frees an init structure WdfDeviceCreate did not take. NULL is ignored. */
WDFAPI VOID WdfDeviceInitFree(_In_ PWDFDEVICE_INIT DeviceInit);
/* Defaults: FILE_DEVICE_UNKNOWN, FILE_DEVICE_SECURE_OPEN (always set), no
 * name, not exclusive. */
WDFAPI VOID WdfDeviceInitSetDeviceType(_In_ PWDFDEVICE_INIT DeviceInit,
                                       _In_ DEVICE_TYPE DeviceType);
WDFAPI VOID WdfDeviceInitSetCharacteristics(_In_ PWDFDEVICE_INIT DeviceInit,
                                            _In_ ULONG DeviceCharacteristics,
                                            _In_ BOOLEAN OrInValues);
WDFAPI VOID WdfDeviceInitSetExclusive(_In_ PWDFDEVICE_INIT DeviceInit, _In_ BOOLEAN IsExclusive);
/* The name is copied; NULL removes it. */
_Must_inspect_result_
WDFAPI NTSTATUS WdfDeviceInitAssignName(_In_ PWDFDEVICE_INIT DeviceInit,
                                        _In_opt_ PCUNICODE_STRING DeviceName);
/* PASSIVE_LEVEL. Creates the WDM device with IoCreateDevice; on success
 * *DeviceInit is freed and set to NULL, on failure the caller still owns it
 * (WdfDeviceInitFree). */
_Must_inspect_result_
WDFAPI NTSTATUS WdfDeviceCreate(_Inout_ PWDFDEVICE_INIT *DeviceInit,
                                _In_opt_ PWDF_OBJECT_ATTRIBUTES DeviceAttributes,
                                _Out_ WDFDEVICE *Device);
/* Clears DO_DEVICE_INITIALIZING. */
WDFAPI VOID WdfControlFinishInitializing(_In_ WDFDEVICE Device);
WDFAPI PDEVICE_OBJECT WdfDeviceWdmGetDeviceObject(_In_ WDFDEVICE Device);
/* Accepted and not recorded: there is no object namespace. */
_Must_inspect_result_
WDFAPI NTSTATUS WdfDeviceCreateSymbolicLink(_In_ WDFDEVICE Device,
                                            _In_ PCUNICODE_STRING SymbolicLinkName);

/* ---- strings ------------------------------------------------------------------------ */

/* PASSIVE_LEVEL. A copy of UnicodeString (or an empty string). */
_Must_inspect_result_
WDFAPI NTSTATUS WdfStringCreate(_In_opt_ PCUNICODE_STRING UnicodeString,
                                _In_opt_ PWDF_OBJECT_ATTRIBUTES StringAttributes,
                                _Out_ WDFSTRING *String);
/* Points UnicodeString at the object's buffer (valid until the object goes). */
WDFAPI VOID WdfStringGetUnicodeString(_In_ WDFSTRING String, _Out_ PUNICODE_STRING UnicodeString);

/* ---- registry ----------------------------------------------------------------------- */

/* PASSIVE_LEVEL, read-only like the rest of the registry here (write access:
 * STATUS_ACCESS_DENIED). The Parameters subkey of the driver's service key;
 * `openwfp replay --driver-param` values are there (and in the service key). */
_Must_inspect_result_
WDFAPI NTSTATUS WdfDriverOpenParametersRegistryKey(_In_ WDFDRIVER Driver,
                                                   _In_ ACCESS_MASK DesiredAccess,
                                                   _In_opt_ PWDF_OBJECT_ATTRIBUTES KeyAttributes,
                                                   _Out_ WDFKEY *Key);
/* A subkey of ParentKey. */
_Must_inspect_result_
WDFAPI NTSTATUS WdfRegistryOpenKey(_In_opt_ WDFKEY ParentKey, _In_ PCUNICODE_STRING KeyName,
                                   _In_ ACCESS_MASK DesiredAccess,
                                   _In_opt_ PWDF_OBJECT_ATTRIBUTES KeyAttributes,
                                   _Out_ WDFKEY *Key);
WDFAPI VOID WdfRegistryClose(_In_ WDFKEY Key);
WDFAPI HANDLE WdfRegistryWdmGetHandle(_In_ WDFKEY Key);

/*
 * PASSIVE_LEVEL (else STATUS_INVALID_DEVICE_REQUEST). Common statuses: a
 * missing value is STATUS_OBJECT_NAME_NOT_FOUND, a value of another type
 * STATUS_OBJECT_TYPE_MISMATCH, a key opened without KEY_QUERY_VALUE
 * STATUS_ACCESS_DENIED. A buffer too small for the data is
 * STATUS_BUFFER_OVERFLOW with nothing written and the needed length
 * returned.
 */
/* REG_DWORD. */
_Must_inspect_result_
WDFAPI NTSTATUS WdfRegistryQueryULong(_In_ WDFKEY Key, _In_ PCUNICODE_STRING ValueName,
                                      _Out_ PULONG Value);
/* REG_SZ into Value->Buffer (Value->MaximumLength bytes); Value->Length
 * excludes the terminating NUL, which is stored when there is room.
 * *ValueByteLength: the data's length including the NUL. With Value NULL and
 * ValueByteLength set, only the length (STATUS_SUCCESS). */
_Must_inspect_result_
WDFAPI NTSTATUS WdfRegistryQueryUnicodeString(_In_ WDFKEY Key, _In_ PCUNICODE_STRING ValueName,
                                              _Out_opt_ PUSHORT ValueByteLength,
                                              _Inout_opt_ PUNICODE_STRING Value);
/* REG_SZ into a framework string object. */
_Must_inspect_result_
WDFAPI NTSTATUS WdfRegistryQueryString(_In_ WDFKEY Key, _In_ PCUNICODE_STRING ValueName,
                                       _In_ WDFSTRING String);
/* Any type. With Value NULL, only the length and type (STATUS_SUCCESS). */
_Must_inspect_result_
WDFAPI NTSTATUS WdfRegistryQueryValue(_In_ WDFKEY Key, _In_ PCUNICODE_STRING ValueName,
                                      _In_ ULONG ValueLength,
                                      _Out_writes_bytes_opt_(ValueLength) PVOID Value,
                                      _Out_opt_ PULONG ValueLengthQueried,
                                      _Out_opt_ PULONG ValueType);

#ifdef __cplusplus
}
#endif

#endif
