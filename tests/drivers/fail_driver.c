/* A driver whose DriverEntry fails: it frees what it took and says why. */
#include <ntddk.h>

DRIVER_INITIALIZE DriverEntry;

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PVOID scratch = ExAllocatePool2(POOL_FLAG_NON_PAGED, 32, 'liaF');
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    if (scratch != NULL) {
        ExFreePoolWithTag(scratch, 'liaF');
    }
    DbgPrint("FailDriver: refusing to start\n");
    return STATUS_INSUFFICIENT_RESOURCES;
}
