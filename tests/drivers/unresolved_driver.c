/* A driver calling a kernel function openwfp does not provide: loading it
 * must fail with a message naming the function. */
#include <ntddk.h>

DRIVER_INITIALIZE DriverEntry;
NTSTATUS NTAPI KeNotImplementedByOpenwfp(void);

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    return KeNotImplementedByOpenwfp();
}
