/* A driver that forgets a pool allocation (tag "Leak") at unload. */
#include <ntddk.h>

#define LEAK_TAG 'kaeL'

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD LeakUnload;

static PVOID g_buffer;

_Use_decl_annotations_
VOID LeakUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    DbgPrint("LeakDriver: unloading (and forgetting %p)\n", g_buffer);
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    g_buffer = ExAllocatePool2(POOL_FLAG_NON_PAGED, 100, LEAK_TAG);
    if (g_buffer == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    DriverObject->DriverUnload = LeakUnload;
    return STATUS_SUCCESS;
}
