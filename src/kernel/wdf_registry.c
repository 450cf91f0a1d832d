/*
 * Registry-key objects (WDFKEY) of the KMDF subset: a ZwOpenKey handle with
 * the access it was opened for, read through ZwQueryValueKey, so what a
 * framework driver reads is exactly what a WDM driver reads from the same
 * key (registry.c). The host puts --driver-param values in the service key
 * and in its Parameters subkey; WdfDriverOpenParametersRegistryKey opens the
 * latter.
 */
#include <string.h>

#include "common/alloc.h"
#include "kernel/wdf_object.h"

struct wdf_key {
    struct owfp_wdf_object h;
    HANDLE handle;
    ACCESS_MASK access;
};

static const WCHAR parameters[] = L"\\Parameters";

void owfp_wdf_key_release(struct owfp_wdf_object *o)
{
    struct wdf_key *k = (struct wdf_key *)o;
    if (k->handle)
        ZwClose(k->handle);
    k->handle = NULL;
}

static struct wdf_key *key_of(WDFKEY key, const char *api)
{
    return (struct wdf_key *)owfp_wdf_lookup(key, OWFP_WDF_KEY, api);
}

/* A new key object of `drv` for root + name, published on success. */
static NTSTATUS open_key(struct owfp_wdf_object *drv, HANDLE root, PUNICODE_STRING name,
                        ACCESS_MASK access, PWDF_OBJECT_ATTRIBUTES attributes, WDFKEY *out)
{
    struct owfp_wdf_object *o;
    NTSTATUS st = owfp_wdf_create(OWFP_WDF_KEY, sizeof(struct wdf_key), drv, attributes, &o);
    if (!NT_SUCCESS(st))
        return st;
    struct wdf_key *k = (struct wdf_key *)o;
    OBJECT_ATTRIBUTES oa;
    InitializeObjectAttributes(&oa, name, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, root, NULL);
    st = ZwOpenKey(&k->handle, access, &oa);
    if (!NT_SUCCESS(st)) {
        owfp_wdf_discard(o);
        return st;
    }
    k->access = access;
    owfp_wdf_publish(o);
    *out = (WDFKEY)k;
    return STATUS_SUCCESS;
}

NTSTATUS WdfDriverOpenParametersRegistryKey(WDFDRIVER Driver, ACCESS_MASK DesiredAccess,
                                            PWDF_OBJECT_ATTRIBUTES KeyAttributes, WDFKEY *Key)
{
    if (Key)
        *Key = NULL;
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "WdfDriverOpenParametersRegistryKey"))
        return STATUS_INVALID_DEVICE_REQUEST;
    struct owfp_wdf_object *drv = owfp_wdf_lookup(Driver, OWFP_WDF_DRIVER,
                                                  "WdfDriverOpenParametersRegistryKey");
    if (!drv || !Key)
        return STATUS_INVALID_PARAMETER;
    PCWSTR service = WdfDriverGetRegistryPath(Driver);
    size_t n = owfp_wcslen(service);
    size_t extra = sizeof(parameters) / sizeof(WCHAR) - 1;
    if ((n + extra) * sizeof(WCHAR) > UNICODE_STRING_MAX_BYTES)
        return STATUS_OBJECT_NAME_NOT_FOUND;
    WCHAR *path = owfp_malloc((n + extra + 1) * sizeof(WCHAR));
    if (!path)
        return STATUS_INSUFFICIENT_RESOURCES;
    memcpy(path, service, n * sizeof(WCHAR));
    memcpy(path + n, parameters, sizeof(parameters));
    UNICODE_STRING name = {(USHORT)((n + extra) * sizeof(WCHAR)),
                           (USHORT)((n + extra) * sizeof(WCHAR)), path};
    NTSTATUS st = open_key(drv, NULL, &name, DesiredAccess, KeyAttributes, Key);
    owfp_free(path);
    return st;
}

NTSTATUS WdfRegistryOpenKey(WDFKEY ParentKey, PCUNICODE_STRING KeyName, ACCESS_MASK DesiredAccess,
                            PWDF_OBJECT_ATTRIBUTES KeyAttributes, WDFKEY *Key)
{
    const void *caller = __builtin_return_address(0);
    if (Key)
        *Key = NULL;
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "WdfRegistryOpenKey"))
        return STATUS_INVALID_DEVICE_REQUEST;
    if (!KeyName || !Key)
        return STATUS_INVALID_PARAMETER;
    struct wdf_key *parent = NULL;
    struct owfp_wdf_object *drv;
    if (ParentKey) {
        parent = key_of(ParentKey, "WdfRegistryOpenKey");
        if (!parent)
            return STATUS_INVALID_PARAMETER;
        drv = parent->h.driver;
    } else {
        drv = owfp_wdf_driver_for(caller);
        if (!drv)
            return STATUS_INVALID_DEVICE_REQUEST; /* no framework driver to own it */
    }
    return open_key(drv, parent ? parent->handle : NULL, (PUNICODE_STRING)KeyName, DesiredAccess,
                    KeyAttributes, Key);
}

VOID WdfRegistryClose(WDFKEY Key)
{
    struct wdf_key *k = key_of(Key, "WdfRegistryClose");
    if (k)
        owfp_wdf_delete(&k->h);
}

HANDLE WdfRegistryWdmGetHandle(WDFKEY Key)
{
    struct wdf_key *k = key_of(Key, "WdfRegistryWdmGetHandle");
    return k ? k->handle : NULL;
}

/* The value's type and data in owfp_malloc memory (*info, freed by the
 * caller), after the checks every query makes. */
static NTSTATUS query(WDFKEY Key, PCUNICODE_STRING ValueName, const char *api,
                      PKEY_VALUE_PARTIAL_INFORMATION *info)
{
    *info = NULL;
    if (!owfp_irql_check_max(PASSIVE_LEVEL, api))
        return STATUS_INVALID_DEVICE_REQUEST;
    struct wdf_key *k = key_of(Key, api);
    if (!k || !ValueName)
        return STATUS_INVALID_PARAMETER;
    if (!(k->access & (KEY_QUERY_VALUE | GENERIC_READ | GENERIC_ALL | MAXIMUM_ALLOWED)))
        return STATUS_ACCESS_DENIED;
    PUNICODE_STRING name = (PUNICODE_STRING)ValueName;
    ULONG need = 0;
    NTSTATUS st = ZwQueryValueKey(k->handle, name, KeyValuePartialInformation, NULL, 0, &need);
    for (int tries = 0;
         tries < 4 && (st == STATUS_BUFFER_TOO_SMALL || st == STATUS_BUFFER_OVERFLOW); tries++) {
        /* The host may replace a value between the two calls: ask again. */
        owfp_free(*info);
        *info = owfp_malloc(need);
        if (!*info)
            return STATUS_INSUFFICIENT_RESOURCES;
        st = ZwQueryValueKey(k->handle, name, KeyValuePartialInformation, *info, need, &need);
    }
    if (!NT_SUCCESS(st)) {
        owfp_free(*info);
        *info = NULL;
    }
    return st;
}

NTSTATUS WdfRegistryQueryULong(WDFKEY Key, PCUNICODE_STRING ValueName, PULONG Value)
{
    if (!Value)
        return STATUS_INVALID_PARAMETER;
    PKEY_VALUE_PARTIAL_INFORMATION info;
    NTSTATUS st = query(Key, ValueName, "WdfRegistryQueryULong", &info);
    if (!NT_SUCCESS(st))
        return st;
    if (info->Type != REG_DWORD || info->DataLength != sizeof(ULONG))
        st = STATUS_OBJECT_TYPE_MISMATCH;
    else
        memcpy(Value, info->Data, sizeof(ULONG));
    owfp_free(info);
    return st;
}

/* Units of a REG_SZ value without its terminating NULs. */
static size_t string_units(const KEY_VALUE_PARTIAL_INFORMATION *info)
{
    size_t units = info->DataLength / sizeof(WCHAR);
    WCHAR last;
    while (units) {
        memcpy(&last, info->Data + (units - 1) * sizeof(WCHAR), sizeof(last));
        if (last != 0)
            break;
        units--;
    }
    return units;
}

NTSTATUS WdfRegistryQueryUnicodeString(WDFKEY Key, PCUNICODE_STRING ValueName,
                                       PUSHORT ValueByteLength, PUNICODE_STRING Value)
{
    if (!ValueByteLength && !Value)
        return STATUS_INVALID_PARAMETER;
    PKEY_VALUE_PARTIAL_INFORMATION info;
    NTSTATUS st = query(Key, ValueName, "WdfRegistryQueryUnicodeString", &info);
    if (!NT_SUCCESS(st))
        return st;
    size_t units = string_units(info);
    size_t bytes = units * sizeof(WCHAR);
    if (info->Type != REG_SZ) {
        st = STATUS_OBJECT_TYPE_MISMATCH;
    } else if (bytes + sizeof(WCHAR) > UNICODE_STRING_MAX_BYTES) {
        st = STATUS_INVALID_PARAMETER; /* cannot be described by a UNICODE_STRING */
    } else {
        if (ValueByteLength)
            *ValueByteLength = (USHORT)(bytes + sizeof(WCHAR));
        if (Value && (!Value->Buffer || bytes > Value->MaximumLength)) {
            st = STATUS_BUFFER_OVERFLOW;
        } else if (Value) {
            memcpy(Value->Buffer, info->Data, bytes);
            Value->Length = (USHORT)bytes;
            if (bytes + sizeof(WCHAR) <= Value->MaximumLength)
                Value->Buffer[units] = 0;
        }
    }
    owfp_free(info);
    return st;
}

NTSTATUS WdfRegistryQueryString(WDFKEY Key, PCUNICODE_STRING ValueName, WDFSTRING String)
{
    PKEY_VALUE_PARTIAL_INFORMATION info;
    NTSTATUS st = query(Key, ValueName, "WdfRegistryQueryString", &info);
    if (!NT_SUCCESS(st))
        return st;
    if (info->Type != REG_SZ)
        st = STATUS_OBJECT_TYPE_MISMATCH;
    else
        st = owfp_wdf_string_assign(String, info->Data, string_units(info),
                                    "WdfRegistryQueryString");
    owfp_free(info);
    return st;
}

NTSTATUS WdfRegistryQueryValue(WDFKEY Key, PCUNICODE_STRING ValueName, ULONG ValueLength,
                               PVOID Value, PULONG ValueLengthQueried, PULONG ValueType)
{
    PKEY_VALUE_PARTIAL_INFORMATION info;
    NTSTATUS st = query(Key, ValueName, "WdfRegistryQueryValue", &info);
    if (!NT_SUCCESS(st))
        return st;
    if (ValueLengthQueried)
        *ValueLengthQueried = info->DataLength;
    if (ValueType)
        *ValueType = info->Type;
    if (Value && ValueLength < info->DataLength)
        st = STATUS_BUFFER_OVERFLOW;
    else if (Value)
        memcpy(Value, info->Data, info->DataLength);
    owfp_free(info);
    return st;
}
