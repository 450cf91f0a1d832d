/*
 * Control devices of the KMDF subset: an init structure collects type,
 * characteristics and name, WdfDeviceCreate turns it into a WDM device
 * through IoCreateDevice (so FwpsCalloutRegister gets a real DEVICE_OBJECT
 * and the host's device accounting sees it), and deleting the WDFDEVICE
 * deletes the WDM device. Also the SDDL constants of <wdmsec.h>.
 */
#include <string.h>

#include "common/alloc.h"
#include "kernel/wdf_object.h"

#define SDDL_CONSTANT(name, text)                                                         \
    static const WCHAR name##_text[] = text;                                              \
    const UNICODE_STRING name = {sizeof(name##_text) - sizeof(WCHAR), sizeof(name##_text), \
                                 (PWCH)name##_text}

SDDL_CONSTANT(SDDL_DEVOBJ_KERNEL_ONLY, L"D:P");
SDDL_CONSTANT(SDDL_DEVOBJ_SYS_ALL, L"D:P(A;;GA;;;SY)");
SDDL_CONSTANT(SDDL_DEVOBJ_SYS_ALL_ADM_ALL, L"D:P(A;;GA;;;SY)(A;;GA;;;BA)");
SDDL_CONSTANT(SDDL_DEVOBJ_SYS_ALL_ADM_RWX_WORLD_RW_RES_R,
              L"D:P(A;;GA;;;SY)(A;;GRGWGX;;;BA)(A;;GRGW;;;WD)(A;;GR;;;RC)");

/* PWDFDEVICE_INIT points at this. */
struct wdf_device_init {
    struct owfp_wdf_object h;
    DEVICE_TYPE type;
    ULONG characteristics;
    BOOLEAN exclusive;
    WCHAR *name; /* NULL: unnamed */
    USHORT name_bytes;
};

struct wdf_device {
    struct owfp_wdf_object h;
    PDEVICE_OBJECT wdm;
};

static struct wdf_device_init *init_of(PWDFDEVICE_INIT init, const char *api)
{
    return (struct wdf_device_init *)owfp_wdf_lookup(init, OWFP_WDF_DEVICE_INIT, api);
}

static struct wdf_device *device_of(WDFDEVICE device, const char *api)
{
    return (struct wdf_device *)owfp_wdf_lookup(device, OWFP_WDF_DEVICE, api);
}

void owfp_wdf_device_init_release(struct owfp_wdf_object *o)
{
    struct wdf_device_init *i = (struct wdf_device_init *)o;
    owfp_free(i->name);
    i->name = NULL;
}

void owfp_wdf_device_release(struct owfp_wdf_object *o)
{
    struct wdf_device *d = (struct wdf_device *)o;
    if (d->wdm)
        IoDeleteDevice(d->wdm);
    d->wdm = NULL;
}

PWDFDEVICE_INIT WdfControlDeviceInitAllocate(WDFDRIVER Driver, const UNICODE_STRING *SDDLString)
{
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "WdfControlDeviceInitAllocate"))
        return NULL;
    struct owfp_wdf_object *drv = owfp_wdf_lookup(Driver, OWFP_WDF_DRIVER,
                                                  "WdfControlDeviceInitAllocate");
    if (!drv || !SDDLString || !SDDLString->Buffer || !SDDLString->Length)
        return NULL;
    struct owfp_wdf_object *o;
    if (!NT_SUCCESS(owfp_wdf_create(OWFP_WDF_DEVICE_INIT, sizeof(struct wdf_device_init), drv,
                                    NULL, &o)))
        return NULL;
    struct wdf_device_init *i = (struct wdf_device_init *)o;
    i->type = FILE_DEVICE_UNKNOWN;
    i->characteristics = FILE_DEVICE_SECURE_OPEN;
    owfp_wdf_publish(o);
    return (PWDFDEVICE_INIT)o;
}

VOID WdfDeviceInitFree(PWDFDEVICE_INIT DeviceInit)
{
    if (!DeviceInit)
        return;
    struct wdf_device_init *i = init_of(DeviceInit, "WdfDeviceInitFree");
    if (i)
        owfp_wdf_delete(&i->h);
}

VOID WdfDeviceInitSetDeviceType(PWDFDEVICE_INIT DeviceInit, DEVICE_TYPE DeviceType)
{
    struct wdf_device_init *i = init_of(DeviceInit, "WdfDeviceInitSetDeviceType");
    if (i)
        i->type = DeviceType;
}

VOID WdfDeviceInitSetCharacteristics(PWDFDEVICE_INIT DeviceInit, ULONG DeviceCharacteristics,
                                     BOOLEAN OrInValues)
{
    struct wdf_device_init *i = init_of(DeviceInit, "WdfDeviceInitSetCharacteristics");
    if (!i)
        return;
    ULONG c = OrInValues ? i->characteristics | DeviceCharacteristics : DeviceCharacteristics;
    i->characteristics = c | FILE_DEVICE_SECURE_OPEN; /* the framework always sets it */
}

VOID WdfDeviceInitSetExclusive(PWDFDEVICE_INIT DeviceInit, BOOLEAN IsExclusive)
{
    struct wdf_device_init *i = init_of(DeviceInit, "WdfDeviceInitSetExclusive");
    if (i)
        i->exclusive = IsExclusive;
}

NTSTATUS WdfDeviceInitAssignName(PWDFDEVICE_INIT DeviceInit, PCUNICODE_STRING DeviceName)
{
    struct wdf_device_init *i = init_of(DeviceInit, "WdfDeviceInitAssignName");
    if (!i)
        return STATUS_INVALID_PARAMETER;
    WCHAR *copy = NULL;
    if (DeviceName && DeviceName->Length) {
        if (!DeviceName->Buffer)
            return STATUS_INVALID_PARAMETER;
        copy = owfp_wdf_wcsdup(DeviceName->Buffer, DeviceName->Length / sizeof(WCHAR));
        if (!copy)
            return STATUS_INSUFFICIENT_RESOURCES;
    }
    owfp_free(i->name);
    i->name = copy;
    i->name_bytes = copy ? (USHORT)(DeviceName->Length & ~1u) : 0;
    return STATUS_SUCCESS;
}

NTSTATUS WdfDeviceCreate(PWDFDEVICE_INIT *DeviceInit, PWDF_OBJECT_ATTRIBUTES DeviceAttributes,
                         WDFDEVICE *Device)
{
    if (Device)
        *Device = NULL;
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "WdfDeviceCreate"))
        return STATUS_INVALID_DEVICE_REQUEST;
    if (!DeviceInit || !Device)
        return STATUS_INVALID_PARAMETER;
    struct wdf_device_init *i = init_of(*DeviceInit, "WdfDeviceCreate");
    if (!i)
        return STATUS_INVALID_PARAMETER;
    if (DeviceAttributes && DeviceAttributes->ParentObject)
        return STATUS_INVALID_PARAMETER; /* a device's parent is its driver */
    struct owfp_wdf_object *o;
    NTSTATUS st = owfp_wdf_create(OWFP_WDF_DEVICE, sizeof(struct wdf_device), i->h.driver,
                                  DeviceAttributes, &o);
    if (!NT_SUCCESS(st))
        return st;
    struct wdf_device *d = (struct wdf_device *)o;
    UNICODE_STRING name = {i->name_bytes, i->name_bytes, i->name};
    st = IoCreateDevice(WdfDriverWdmGetDriverObject((WDFDRIVER)i->h.driver), 0,
                        i->name ? &name : NULL, i->type, i->characteristics, i->exclusive,
                        &d->wdm);
    if (!NT_SUCCESS(st)) {
        owfp_wdf_discard(o);
        return st;
    }
    owfp_wdf_publish(o);
    owfp_wdf_delete(&i->h);
    *DeviceInit = NULL;
    *Device = (WDFDEVICE)d;
    return STATUS_SUCCESS;
}

VOID WdfControlFinishInitializing(WDFDEVICE Device)
{
    struct wdf_device *d = device_of(Device, "WdfControlFinishInitializing");
    if (d && d->wdm)
        d->wdm->Flags &= ~(ULONG)DO_DEVICE_INITIALIZING;
}

PDEVICE_OBJECT WdfDeviceWdmGetDeviceObject(WDFDEVICE Device)
{
    struct wdf_device *d = device_of(Device, "WdfDeviceWdmGetDeviceObject");
    return d ? d->wdm : NULL;
}

NTSTATUS WdfDeviceCreateSymbolicLink(WDFDEVICE Device, PCUNICODE_STRING SymbolicLinkName)
{
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "WdfDeviceCreateSymbolicLink"))
        return STATUS_INVALID_DEVICE_REQUEST;
    struct wdf_device *d = device_of(Device, "WdfDeviceCreateSymbolicLink");
    if (!d || !SymbolicLinkName || !SymbolicLinkName->Length)
        return STATUS_INVALID_PARAMETER;
    return STATUS_SUCCESS;
}
