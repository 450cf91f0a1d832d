/* Framework string objects (WDFSTRING): a counted UTF-16 copy the object owns. */
#include <string.h>

#include "common/alloc.h"
#include "kernel/wdf_object.h"

struct wdf_string {
    struct owfp_wdf_object h;
    WCHAR *text; /* NUL-terminated */
    USHORT bytes; /* without the NUL */
};

WCHAR *owfp_wdf_wcsdup(const void *s, size_t n)
{
    WCHAR *w = owfp_malloc((n + 1) * sizeof(WCHAR));
    if (w) {
        if (n)
            memcpy(w, s, n * sizeof(WCHAR));
        w[n] = 0;
    }
    return w;
}

void owfp_wdf_string_release(struct owfp_wdf_object *o)
{
    struct wdf_string *s = (struct wdf_string *)o;
    owfp_free(s->text);
    s->text = NULL;
}

NTSTATUS owfp_wdf_string_assign(WDFSTRING string, const void *s, size_t n, const char *api)
{
    struct wdf_string *str = (struct wdf_string *)owfp_wdf_lookup(string, OWFP_WDF_STRING, api);
    if (!str)
        return STATUS_INVALID_PARAMETER;
    if (n > UNICODE_STRING_MAX_CHARS)
        return STATUS_INVALID_PARAMETER;
    WCHAR *copy = owfp_wdf_wcsdup(s, n);
    if (!copy)
        return STATUS_INSUFFICIENT_RESOURCES;
    owfp_free(str->text);
    str->text = copy;
    str->bytes = (USHORT)(n * sizeof(WCHAR));
    return STATUS_SUCCESS;
}

NTSTATUS WdfStringCreate(PCUNICODE_STRING UnicodeString, PWDF_OBJECT_ATTRIBUTES StringAttributes,
                         WDFSTRING *String)
{
    const void *caller = __builtin_return_address(0);
    if (String)
        *String = NULL;
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "WdfStringCreate"))
        return STATUS_INVALID_DEVICE_REQUEST;
    if (!String || (UnicodeString && UnicodeString->Length && !UnicodeString->Buffer))
        return STATUS_INVALID_PARAMETER;
    /* The parent, if not given, is the calling driver. */
    struct owfp_wdf_object *drv = NULL;
    if (StringAttributes && StringAttributes->ParentObject) {
        struct owfp_wdf_object *parent = owfp_wdf_lookup(StringAttributes->ParentObject,
                                                         OWFP_WDF_ANY, "WdfStringCreate");
        drv = parent ? parent->driver : NULL;
    } else {
        drv = owfp_wdf_driver_for(caller);
    }
    if (!drv)
        return STATUS_INVALID_DEVICE_REQUEST; /* no framework driver to own it */
    struct owfp_wdf_object *o;
    NTSTATUS st = owfp_wdf_create(OWFP_WDF_STRING, sizeof(struct wdf_string), drv,
                                  StringAttributes, &o);
    if (!NT_SUCCESS(st))
        return st;
    struct wdf_string *s = (struct wdf_string *)o;
    size_t n = UnicodeString ? UnicodeString->Length / sizeof(WCHAR) : 0;
    s->text = owfp_wdf_wcsdup(n ? UnicodeString->Buffer : NULL, n);
    if (!s->text) {
        owfp_wdf_discard(o);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    s->bytes = (USHORT)(n * sizeof(WCHAR));
    owfp_wdf_publish(o);
    *String = (WDFSTRING)s;
    return STATUS_SUCCESS;
}

VOID WdfStringGetUnicodeString(WDFSTRING String, PUNICODE_STRING UnicodeString)
{
    struct wdf_string *s = (struct wdf_string *)owfp_wdf_lookup(String, OWFP_WDF_STRING,
                                                               "WdfStringGetUnicodeString");
    if (!UnicodeString)
        return;
    UnicodeString->Buffer = s ? s->text : NULL;
    UnicodeString->Length = s ? s->bytes : 0;
    UnicodeString->MaximumLength = s ? (USHORT)(s->bytes + sizeof(WCHAR)) : 0;
}
