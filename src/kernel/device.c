/*
 * Device objects and the little of the I/O manager drivers touch in
 * DriverEntry and DriverUnload. There is no object namespace: names are only
 * kept to refuse a second device of the same name, as Windows does.
 */
#include <pthread.h>

#include "common/alloc.h"
#include "kernel/kernel.h"

#define DEVICE_TAG 'veDO'

static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;
static PDEVICE_OBJECT named; /* every device that has a name */

static bool same_name(PCUNICODE_STRING a, PCUNICODE_STRING b)
{
    return RtlEqualUnicodeString(a, b, TRUE); /* object names ignore case */
}

NTSTATUS NTAPI IoCreateDevice(PDRIVER_OBJECT DriverObject, ULONG DeviceExtensionSize,
                              PUNICODE_STRING DeviceName, DEVICE_TYPE DeviceType,
                              ULONG DeviceCharacteristics, BOOLEAN Exclusive,
                              PDEVICE_OBJECT *DeviceObject)
{
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "IoCreateDevice"))
        return STATUS_INVALID_DEVICE_STATE;
    if (!DriverObject || !DeviceObject)
        return STATUS_INVALID_PARAMETER;
    *DeviceObject = NULL;
    size_t name_bytes = DeviceName && DeviceName->Buffer ? DeviceName->Length : 0;
    size_t ext = (DeviceExtensionSize + 15u) & ~(size_t)15; /* the name follows, aligned */
    PDEVICE_OBJECT d = ExAllocatePool2(POOL_FLAG_NON_PAGED,
                                       sizeof(DEVICE_OBJECT) + ext + name_bytes + sizeof(WCHAR),
                                       DEVICE_TAG);
    if (!d)
        return STATUS_INSUFFICIENT_RESOURCES;
    d->Type = IO_TYPE_DEVICE;
    d->Size = (USHORT)sizeof(DEVICE_OBJECT);
    d->ReferenceCount = 0;
    d->DriverObject = DriverObject;
    d->DeviceType = DeviceType;
    d->Characteristics = DeviceCharacteristics;
    d->Flags = DO_DEVICE_INITIALIZING | (Exclusive ? DO_EXCLUSIVE : 0);
    d->StackSize = 1;
    d->DeviceExtension = DeviceExtensionSize ? (PVOID)(d + 1) : NULL;
    if (name_bytes) {
        d->OwfpName.Buffer = (PWCH)((char *)(d + 1) + ext);
        memcpy(d->OwfpName.Buffer, DeviceName->Buffer, name_bytes);
        d->OwfpName.Length = (USHORT)name_bytes;
        d->OwfpName.MaximumLength = (USHORT)(name_bytes + sizeof(WCHAR));
        d->OwfpName.Buffer[name_bytes / sizeof(WCHAR)] = 0;
        pthread_mutex_lock(&names_mu);
        for (PDEVICE_OBJECT o = named; o; o = o->OwfpNextNamed) {
            if (same_name(&o->OwfpName, &d->OwfpName)) {
                pthread_mutex_unlock(&names_mu);
                ExFreePoolWithTag(d, DEVICE_TAG);
                return STATUS_OBJECT_NAME_COLLISION;
            }
        }
        d->OwfpNextNamed = named;
        named = d;
        pthread_mutex_unlock(&names_mu);
    }
    /* Newest first, as drivers walking DriverObject->DeviceObject expect. */
    d->NextDevice = DriverObject->DeviceObject;
    DriverObject->DeviceObject = d;
    *DeviceObject = d;
    return STATUS_SUCCESS;
}

VOID NTAPI IoDeleteDevice(PDEVICE_OBJECT DeviceObject)
{
    owfp_irql_check_max(PASSIVE_LEVEL, "IoDeleteDevice");
    if (!DeviceObject)
        return;
    PDRIVER_OBJECT drv = DeviceObject->DriverObject;
    PDEVICE_OBJECT *p = drv ? &drv->DeviceObject : NULL;
    while (p && *p && *p != DeviceObject)
        p = &(*p)->NextDevice;
    if (!p || !*p) {
        owfp_kernel_finding("IoDeleteDevice on a device that is not in its driver's list");
        return;
    }
    *p = DeviceObject->NextDevice;
    if (DeviceObject->OwfpName.Length) {
        pthread_mutex_lock(&names_mu);
        for (PDEVICE_OBJECT *q = &named; *q; q = &(*q)->OwfpNextNamed)
            if (*q == DeviceObject) {
                *q = DeviceObject->OwfpNextNamed;
                break;
            }
        pthread_mutex_unlock(&names_mu);
    }
    ExFreePoolWithTag(DeviceObject, DEVICE_TAG);
}

NTSTATUS NTAPI IoCreateSymbolicLink(PUNICODE_STRING SymbolicLinkName, PUNICODE_STRING DeviceName)
{
    (void)SymbolicLinkName;
    (void)DeviceName;
    return owfp_irql_check_max(PASSIVE_LEVEL, "IoCreateSymbolicLink") ? STATUS_SUCCESS
                                                                       : STATUS_INVALID_DEVICE_STATE;
}

NTSTATUS NTAPI IoDeleteSymbolicLink(PUNICODE_STRING SymbolicLinkName)
{
    (void)SymbolicLinkName;
    return owfp_irql_check_max(PASSIVE_LEVEL, "IoDeleteSymbolicLink") ? STATUS_SUCCESS
                                                                       : STATUS_INVALID_DEVICE_STATE;
}

VOID FASTCALL IofCompleteRequest(PIRP Irp, CCHAR PriorityBoost)
{
    (void)PriorityBoost;
    owfp_irql_check_max(DISPATCH_LEVEL, "IoCompleteRequest");
    if (Irp->OwfpCompleted)
        owfp_kernel_finding("IoCompleteRequest on an IRP completed already");
    Irp->OwfpCompleted = TRUE;
}
