/*
 * A driver that reads its parameters as drivers do: the Parameters subkey of
 * its service key with ZwOpenKey / ZwQueryValueKey, and the same values
 * again with RtlQueryRegistryValues.
 */
#include "test_driver.h"

#define PARAM_TAG 'mraP'

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD ParamUnload;

static NTSTATUS ParamQuery(_In_ HANDLE key, _In_ PCWSTR name,
                           _Outptr_result_maybenull_ PKEY_VALUE_PARTIAL_INFORMATION *info)
{
    UNICODE_STRING valueName;
    ULONG length = 0;
    NTSTATUS status;

    *info = NULL;
    RtlInitUnicodeString(&valueName, name);
    status = ZwQueryValueKey(key, &valueName, KeyValuePartialInformation, NULL, 0, &length);
    if (status != STATUS_BUFFER_TOO_SMALL && status != STATUS_BUFFER_OVERFLOW) {
        return status;
    }
    *info = (PKEY_VALUE_PARTIAL_INFORMATION)ExAllocatePool2(POOL_FLAG_PAGED, length, PARAM_TAG);
    if (*info == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    status = ZwQueryValueKey(key, &valueName, KeyValuePartialInformation, *info, length, &length);
    if (!NT_SUCCESS(status)) {
        ExFreePoolWithTag(*info, PARAM_TAG);
        *info = NULL;
    }
    return status;
}

_Use_decl_annotations_
VOID ParamUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    DbgPrint("ParamDriver: unloaded\n");
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE parametersKey = NULL;
    PKEY_VALUE_PARTIAL_INFORMATION info = NULL;
    ULONG threshold = 0;
    WCHAR greeting[64] = {0};
    NTSTATUS status;

    status = TestOpenParametersKey(RegistryPath, &parametersKey);
    if (!NT_SUCCESS(status)) {
        DbgPrint("ParamDriver: cannot open the Parameters key of %wZ: 0x%08X\n", RegistryPath,
                 status);
        return status;
    }

    status = ParamQuery(parametersKey, L"Threshold", &info);
    if (NT_SUCCESS(status) && info->Type == REG_DWORD && info->DataLength == sizeof(ULONG)) {
        RtlCopyMemory(&threshold, info->Data, sizeof(ULONG));
        DbgPrint("ParamDriver: Threshold=%lu (REG_DWORD)\n", threshold);
    } else {
        DbgPrint("ParamDriver: Threshold: 0x%08X\n", status);
    }
    if (info != NULL) {
        ExFreePoolWithTag(info, PARAM_TAG);
        info = NULL;
    }

    status = ParamQuery(parametersKey, L"Greeting", &info);
    if (NT_SUCCESS(status) && info->Type == REG_SZ) {
        UNICODE_STRING text;
        text.Buffer = (PWCH)info->Data;
        text.Length = (USHORT)(info->DataLength >= sizeof(WCHAR) ? info->DataLength - sizeof(WCHAR)
                                                                 : 0);
        text.MaximumLength = (USHORT)info->DataLength;
        DbgPrint("ParamDriver: Greeting=%wZ (REG_SZ)\n", &text);
    } else {
        DbgPrint("ParamDriver: Greeting: 0x%08X\n", status);
    }
    if (info != NULL) {
        ExFreePoolWithTag(info, PARAM_TAG);
        info = NULL;
    }

    status = ParamQuery(parametersKey, L"Missing", &info);
    DbgPrint("ParamDriver: Missing: 0x%08X\n", status);
    if (info != NULL) {
        ExFreePoolWithTag(info, PARAM_TAG);
    }
    ZwClose(parametersKey);

    /* The same values through RtlQueryRegistryValues. */
    {
        RTL_QUERY_REGISTRY_TABLE table[3];
        ULONG direct = 0;
        UNICODE_STRING text;
        RtlZeroMemory(table, sizeof(table));
        text.Buffer = greeting;
        text.Length = 0;
        text.MaximumLength = sizeof(greeting);
        /* TYPECHECK: without it a REG_SZ would be written over the ULONG. */
        table[0].Flags =
            RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_REQUIRED | RTL_QUERY_REGISTRY_TYPECHECK;
        table[0].Name = L"Threshold";
        table[0].EntryContext = &direct;
        table[0].DefaultType = (REG_DWORD << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) | REG_NONE;
        table[1].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK;
        table[1].Name = L"Greeting";
        table[1].EntryContext = &text;
        table[1].DefaultType = (REG_SZ << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) | REG_NONE;
        status = RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"param_driver\\Parameters", table,
                                        NULL, NULL);
        DbgPrint("ParamDriver: RtlQueryRegistryValues: 0x%08X Threshold=%lu Greeting=%wZ\n",
                 status, direct, &text);
    }

    DriverObject->DriverUnload = ParamUnload;
    return STATUS_SUCCESS;
}
