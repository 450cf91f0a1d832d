/*
 * The registry calls drivers read their parameters with (src/kernel/
 * registry.c): ZwOpenKey (absolute and relative, any case), ZwQueryValueKey
 * (KeyValuePartialInformation and its buffer-size answers), ZwClose,
 * RtlQueryRegistryValues (DIRECT, defaults, REQUIRED, TYPECHECK, routines),
 * and enumeration: ZwEnumerateValueKey, ZwQueryKey.
 */
#include "harness.h"

#include <errno.h>
#include <string.h>

#include <ntddk.h>
#include <wdm.h>
#include <openwfp/kernel.h>

#define SVC "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\regtest"

static int setup(void **state)
{
    (void)state;
    owfp_registry_clear();
    assert_int_equal(owfp_registry_create_key(SVC), 0);
    assert_int_equal(owfp_registry_set_dword(SVC "\\Parameters", "Threshold", 0x01020304u), 0);
    assert_int_equal(owfp_registry_set_string(SVC "\\Parameters", "Text", "h\xc3\xa9\xf0\x9f\x98\x80"), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(owfp_registry_open_handles(), 0);
    owfp_registry_clear();
    return 0;
}

static HANDLE open_key(HANDLE root, PCWSTR name, NTSTATUS *status)
{
    UNICODE_STRING u;
    OBJECT_ATTRIBUTES oa;
    HANDLE h = (HANDLE)1;
    RtlInitUnicodeString(&u, name);
    InitializeObjectAttributes(&oa, &u, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, root, NULL);
    *status = ZwOpenKey(&h, KEY_READ, &oa);
    return h;
}

static void test_registry_open_and_query(void **state)
{
    (void)state;
    NTSTATUS st;
    HANDLE svc = open_key(NULL, L"\\Registry\\Machine\\System\\CURRENTCONTROLSET\\services\\RegTest\\",
                          &st);
    assert_int_equal(st, STATUS_SUCCESS);
    HANDLE params = open_key(svc, L"parameters", &st);
    assert_int_equal(st, STATUS_SUCCESS);
    assert_int_equal(owfp_registry_open_handles(), 2);
    assert_int_equal(ZwClose(svc), STATUS_SUCCESS);
    assert_int_equal(ZwClose(svc), STATUS_INVALID_HANDLE);

    UNICODE_STRING name = RTL_CONSTANT_STRING(L"THRESHOLD");
    ULONG need = 0;
    union {
        KEY_VALUE_PARTIAL_INFORMATION info;
        UCHAR bytes[64];
    } buf;
    assert_int_equal(ZwQueryValueKey(params, &name, KeyValuePartialInformation, NULL, 0, &need),
                     STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(need, FIELD_OFFSET(KEY_VALUE_PARTIAL_INFORMATION, Data) + 4);
    memset(&buf, 0xaa, sizeof(buf));
    assert_int_equal(ZwQueryValueKey(params, &name, KeyValuePartialInformation, &buf, need - 1,
                                     &need),
                     STATUS_BUFFER_OVERFLOW);
    assert_int_equal(buf.info.Type, REG_DWORD);
    assert_int_equal(buf.info.DataLength, 4);
    assert_int_equal(buf.info.Data[0], 0xaa); /* the data did not fit: not written */
    assert_int_equal(ZwQueryValueKey(params, &name, KeyValuePartialInformation, &buf, sizeof(buf),
                                     &need),
                     STATUS_SUCCESS);
    ULONG v;
    memcpy(&v, buf.info.Data, sizeof(v));
    assert_int_equal(v, 0x01020304u);

    /* UTF-8 "hé😀" as UTF-16 with a surrogate pair and the NUL. */
    UNICODE_STRING text = RTL_CONSTANT_STRING(L"Text");
    assert_int_equal(ZwQueryValueKey(params, &text, KeyValuePartialInformation, &buf, sizeof(buf),
                                     &need),
                     STATUS_SUCCESS);
    assert_int_equal(buf.info.Type, REG_SZ);
    assert_int_equal(buf.info.DataLength, 5 * sizeof(WCHAR));
    WCHAR w[5];
    memcpy(w, buf.info.Data, sizeof(w));
    assert_int_equal(w[0], 'h');
    assert_int_equal(w[1], 0xe9);
    assert_int_equal(w[2], 0xd83d);
    assert_int_equal(w[3], 0xde00);
    assert_int_equal(w[4], 0);

    UNICODE_STRING missing = RTL_CONSTANT_STRING(L"Missing");
    assert_int_equal(ZwQueryValueKey(params, &missing, KeyValuePartialInformation, &buf,
                                     sizeof(buf), &need),
                     STATUS_OBJECT_NAME_NOT_FOUND);
    assert_int_equal(ZwQueryValueKey(params, &name, KeyValueLayerInformation, &buf, sizeof(buf),
                                     &need),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(ZwClose(params), STATUS_SUCCESS);
    assert_int_equal(ZwQueryValueKey(params, &name, KeyValuePartialInformation, &buf, sizeof(buf),
                                     &need),
                     STATUS_INVALID_HANDLE);
}

static void test_registry_open_errors(void **state)
{
    (void)state;
    NTSTATUS st;
    HANDLE h = open_key(NULL, L"\\Registry\\Machine\\System\\Nope", &st);
    assert_int_equal(st, STATUS_OBJECT_NAME_NOT_FOUND);
    assert_null(h);
    open_key(NULL, L"Registry\\Machine", &st); /* relative without a root */
    assert_int_equal(st, STATUS_OBJECT_NAME_NOT_FOUND);
}

static NTSTATUS NTAPI count_values(PWSTR ValueName, ULONG ValueType, PVOID ValueData,
                                   ULONG ValueLength, PVOID Context, PVOID EntryContext)
{
    (void)ValueName;
    (void)ValueType;
    (void)ValueData;
    (void)ValueLength;
    (void)EntryContext;
    (*(int *)Context)++;
    return STATUS_SUCCESS;
}

static void test_registry_rtl_query(void **state)
{
    (void)state;
    ULONG threshold = 0, fallback = 0, defaulted = 99;
    WCHAR textbuf[8];
    UNICODE_STRING text = {0, sizeof(textbuf), textbuf};
    RTL_QUERY_REGISTRY_TABLE t[5];
    memset(t, 0, sizeof(t));
    t[0].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK;
    t[0].Name = L"Threshold";
    t[0].EntryContext = &threshold;
    t[0].DefaultType = REG_DWORD << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT;
    t[1].Flags = RTL_QUERY_REGISTRY_DIRECT;
    t[1].Name = L"Text";
    t[1].EntryContext = &text;
    t[2].Flags = RTL_QUERY_REGISTRY_DIRECT;
    t[2].Name = L"Absent";
    t[2].EntryContext = &fallback;
    t[2].DefaultType = REG_DWORD;
    t[2].DefaultData = &defaulted;
    t[2].DefaultLength = sizeof(ULONG);
    assert_int_equal(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"regtest\\Parameters", t,
                                            NULL, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(threshold, 0x01020304u);
    assert_int_equal(fallback, 99);
    assert_int_equal(text.Length, 4 * sizeof(WCHAR));
    assert_int_equal(textbuf[4], 0);

    /* A value of another type than TYPECHECK asks for. */
    t[1].Flags |= RTL_QUERY_REGISTRY_TYPECHECK;
    t[1].DefaultType = REG_DWORD << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT;
    assert_int_equal(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"regtest\\Parameters", t,
                                            NULL, NULL),
                     STATUS_OBJECT_TYPE_MISMATCH);

    /* REQUIRED and missing. */
    RTL_QUERY_REGISTRY_TABLE req[2];
    memset(req, 0, sizeof(req));
    req[0].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_REQUIRED;
    req[0].Name = L"Absent";
    req[0].EntryContext = &fallback;
    assert_int_equal(RtlQueryRegistryValues(RTL_REGISTRY_ABSOLUTE,
                                            L"\\Registry\\Machine\\System\\CurrentControlSet"
                                            L"\\Services\\regtest\\Parameters",
                                            req, NULL, NULL),
                     STATUS_OBJECT_NAME_NOT_FOUND);
    /* A string buffer too small. */
    WCHAR tiny[2];
    UNICODE_STRING small = {0, sizeof(tiny), tiny};
    req[0].Name = L"Text";
    req[0].EntryContext = &small;
    assert_int_equal(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"regtest\\Parameters", req,
                                            NULL, NULL),
                     STATUS_BUFFER_TOO_SMALL);

    /* DIRECT without TYPECHECK, a value of another type than the default's:
     * refused and recorded instead of written over the ULONG. */
    owfp_kernel_set_quiet(true);
    unsigned long findings = owfp_kernel_findings();
    req[0].Flags = RTL_QUERY_REGISTRY_DIRECT;
    req[0].Name = L"Text";
    req[0].EntryContext = &fallback;
    req[0].DefaultType = REG_DWORD;
    req[0].DefaultData = &defaulted;
    assert_int_equal(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"regtest\\Parameters", req,
                                            NULL, NULL),
                     STATUS_OBJECT_TYPE_MISMATCH);
    assert_int_equal(owfp_kernel_findings(), findings + 1);
    owfp_kernel_set_quiet(false);

    /* A routine with no name: every value. */
    int seen = 0;
    RTL_QUERY_REGISTRY_TABLE all[2];
    memset(all, 0, sizeof(all));
    all[0].QueryRoutine = count_values;
    assert_int_equal(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"regtest\\Parameters", all,
                                            &seen, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(seen, 2);
    assert_int_equal(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"nosuchservice", all, &seen,
                                            NULL),
                     STATUS_OBJECT_NAME_NOT_FOUND);
}

static void test_registry_host_side(void **state)
{
    (void)state;
    assert_int_equal(owfp_registry_set_string(SVC, "Bad", "\xc3\x28"), -EINVAL); /* bad UTF-8 */
    assert_int_equal(owfp_registry_set_string(SVC, "Bad", "\xed\xa0\x80"), -EINVAL); /* surrogate */
    assert_int_equal(owfp_registry_set_dword("relative\\path", "x", 1), -EINVAL);
    /* A value set again replaces the old one. */
    assert_int_equal(owfp_registry_set_dword(SVC, "V", 1), 0);
    assert_int_equal(owfp_registry_set_dword(SVC, "v", 2), 0);
    ULONG v = 0;
    RTL_QUERY_REGISTRY_TABLE t[2];
    memset(t, 0, sizeof(t));
    t[0].Flags = RTL_QUERY_REGISTRY_DIRECT;
    t[0].Name = L"V";
    t[0].EntryContext = &v;
    assert_int_equal(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"regtest", t, NULL, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(v, 2);
    /* Write access is refused: the registry is read-only for drivers. */
    UNICODE_STRING u = RTL_CONSTANT_STRING(L"\\Registry\\Machine\\System\\CurrentControlSet"
                                           L"\\Services\\regtest");
    OBJECT_ATTRIBUTES oa;
    HANDLE h;
    InitializeObjectAttributes(&oa, &u, OBJ_CASE_INSENSITIVE, NULL, NULL);
    assert_int_equal(ZwOpenKey(&h, KEY_ALL_ACCESS, &oa), STATUS_ACCESS_DENIED);
}

/* The UTF-16 name at `w` (`bytes` long) equals the ASCII `want`. */
static void assert_wide_name(const void *w, ULONG bytes, const char *want)
{
    assert_int_equal(bytes, strlen(want) * sizeof(WCHAR));
    for (size_t i = 0; i < strlen(want); i++) {
        WCHAR c;
        memcpy(&c, (const UCHAR *)w + i * sizeof(WCHAR), sizeof(c));
        assert_int_equal(c, (WCHAR)want[i]);
    }
}

static void test_registry_enumerate_values(void **state)
{
    (void)state;
    NTSTATUS st;
    /* Creation order, first spelling kept, a value set again keeps its place. */
    assert_int_equal(owfp_registry_set_dword(SVC "\\Parameters", "Extra", 7), 0);
    assert_int_equal(owfp_registry_set_dword(SVC "\\Parameters", "THRESHOLD", 9), 0);
    HANDLE params = open_key(NULL, L"\\Registry\\Machine\\System\\CurrentControlSet\\Services"
                                   L"\\regtest\\Parameters",
                             &st);
    assert_int_equal(st, STATUS_SUCCESS);
    union {
        KEY_VALUE_BASIC_INFORMATION basic;
        KEY_VALUE_FULL_INFORMATION full;
        KEY_VALUE_PARTIAL_INFORMATION partial;
        UCHAR bytes[128];
    } buf;
    ULONG need = 0;
    const char *names[] = {"Threshold", "Text", "Extra"};
    for (ULONG i = 0; i < 3; i++) {
        assert_int_equal(ZwEnumerateValueKey(params, i, KeyValueBasicInformation, &buf,
                                             sizeof(buf), &need),
                         STATUS_SUCCESS);
        assert_int_equal(need, FIELD_OFFSET(KEY_VALUE_BASIC_INFORMATION, Name) +
                                   strlen(names[i]) * sizeof(WCHAR));
        assert_wide_name(buf.basic.Name, buf.basic.NameLength, names[i]);
        assert_int_equal(buf.basic.Type, i == 1 ? REG_SZ : REG_DWORD);
    }
    assert_int_equal(ZwEnumerateValueKey(params, 3, KeyValueBasicInformation, &buf, sizeof(buf),
                                         &need),
                     STATUS_NO_MORE_ENTRIES);

    /* Full: the name, then the data at a 4-byte aligned DataOffset. */
    assert_int_equal(ZwEnumerateValueKey(params, 0, KeyValueFullInformation, &buf, sizeof(buf),
                                         &need),
                     STATUS_SUCCESS);
    ULONG name_end = FIELD_OFFSET(KEY_VALUE_FULL_INFORMATION, Name) + 9 * sizeof(WCHAR);
    assert_int_equal(buf.full.DataOffset, (name_end + 3) & ~3u);
    assert_int_equal(buf.full.DataLength, 4);
    assert_int_equal(need, buf.full.DataOffset + 4);
    ULONG v;
    memcpy(&v, buf.bytes + buf.full.DataOffset, sizeof(v));
    assert_int_equal(v, 9);
    assert_wide_name(buf.full.Name, buf.full.NameLength, "Threshold");

    /* Too small for the fixed part: nothing written; for the rest: the
     * fixed part only. */
    memset(&buf, 0xaa, sizeof(buf));
    assert_int_equal(ZwEnumerateValueKey(params, 1, KeyValueFullInformation, &buf,
                                         FIELD_OFFSET(KEY_VALUE_FULL_INFORMATION, Name) - 1,
                                         &need),
                     STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(buf.bytes[0], 0xaa);
    ULONG full_need = need;
    assert_int_equal(ZwEnumerateValueKey(params, 1, KeyValueFullInformation, &buf, full_need - 1,
                                         &need),
                     STATUS_BUFFER_OVERFLOW);
    assert_int_equal(need, full_need);
    assert_int_equal(buf.full.Type, REG_SZ);
    assert_int_equal(buf.full.NameLength, 4 * sizeof(WCHAR));
    assert_int_equal(buf.bytes[FIELD_OFFSET(KEY_VALUE_FULL_INFORMATION, Name)], 0xaa);
    assert_int_equal(ZwEnumerateValueKey(params, 2, KeyValuePartialInformation, &buf, sizeof(buf),
                                         &need),
                     STATUS_SUCCESS);
    memcpy(&v, buf.partial.Data, sizeof(v));
    assert_int_equal(v, 7);

    /* ZwQueryValueKey answers the same classes. */
    UNICODE_STRING text = RTL_CONSTANT_STRING(L"text");
    assert_int_equal(ZwQueryValueKey(params, &text, KeyValueBasicInformation, &buf, sizeof(buf),
                                     &need),
                     STATUS_SUCCESS);
    assert_wide_name(buf.basic.Name, buf.basic.NameLength, "Text");
    assert_int_equal(ZwEnumerateValueKey(params, 0, KeyValueLayerInformation, &buf, sizeof(buf),
                                         &need),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(ZwClose(params), STATUS_SUCCESS);
    assert_int_equal(ZwEnumerateValueKey(params, 0, KeyValueBasicInformation, &buf, sizeof(buf),
                                         &need),
                     STATUS_INVALID_HANDLE);
}

static void test_registry_query_key(void **state)
{
    (void)state;
    NTSTATUS st;
    assert_int_equal(owfp_registry_create_key(SVC "\\Other"), 0);
    HANDLE svc = open_key(
        NULL, L"\\registry\\machine\\system\\currentcontrolset\\services\\regtest", &st);
    assert_int_equal(st, STATUS_SUCCESS);
    union {
        KEY_BASIC_INFORMATION basic;
        KEY_FULL_INFORMATION full;
        KEY_NAME_INFORMATION name;
        UCHAR bytes[256];
    } buf;
    ULONG need = 0;
    LARGE_INTEGER before;
    KeQuerySystemTime(&before);

    /* Basic: the key's own name as it was created. */
    assert_int_equal(ZwQueryKey(svc, KeyBasicInformation, &buf, sizeof(buf), &need),
                     STATUS_SUCCESS);
    assert_wide_name(buf.basic.Name, buf.basic.NameLength, "regtest");
    assert_true(buf.basic.LastWriteTime.QuadPart > 0);
    assert_true(buf.basic.LastWriteTime.QuadPart <= before.QuadPart);
    assert_int_equal(ZwQueryKey(svc, KeyBasicInformation, &buf, 4, &need),
                     STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(need, FIELD_OFFSET(KEY_BASIC_INFORMATION, Name) + 7 * sizeof(WCHAR));
    assert_int_equal(ZwQueryKey(svc, KeyBasicInformation, &buf, need - 2, &need),
                     STATUS_BUFFER_OVERFLOW);
    assert_int_equal(buf.basic.NameLength, 7 * sizeof(WCHAR));

    /* Full: two subkeys (Parameters, Other), no values of its own yet. */
    assert_int_equal(ZwQueryKey(svc, KeyFullInformation, &buf, sizeof(buf), &need),
                     STATUS_SUCCESS);
    assert_int_equal(need, FIELD_OFFSET(KEY_FULL_INFORMATION, Class));
    assert_int_equal(buf.full.SubKeys, 2);
    assert_int_equal(buf.full.MaxNameLen, strlen("parameters") * sizeof(WCHAR));
    assert_int_equal(buf.full.Values, 0);
    assert_int_equal(buf.full.ClassLength, 0);
    assert_int_equal(ZwQueryKey(svc, KeyFullInformation, &buf, need - 1, &need),
                     STATUS_BUFFER_TOO_SMALL);

    HANDLE params = open_key(svc, L"Parameters", &st);
    assert_int_equal(st, STATUS_SUCCESS);
    assert_int_equal(ZwQueryKey(params, KeyFullInformation, &buf, sizeof(buf), &need),
                     STATUS_SUCCESS);
    assert_int_equal(buf.full.SubKeys, 0);
    assert_int_equal(buf.full.Values, 2);
    assert_int_equal(buf.full.MaxValueNameLen, strlen("Threshold") * sizeof(WCHAR));
    assert_int_equal(buf.full.MaxValueDataLen, 5 * sizeof(WCHAR)); /* "hé😀" + NUL */

    /* Name: the full path. */
    assert_int_equal(ZwQueryKey(params, KeyNameInformation, &buf, sizeof(buf), &need),
                     STATUS_SUCCESS);
    assert_wide_name(buf.name.Name, buf.name.NameLength, SVC "\\Parameters");
    assert_int_equal(ZwQueryKey(params, KeyCachedInformation, &buf, sizeof(buf), &need),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(ZwClose(params), STATUS_SUCCESS);
    assert_int_equal(ZwClose(svc), STATUS_SUCCESS);
    assert_int_equal(ZwQueryKey(svc, KeyBasicInformation, &buf, sizeof(buf), &need),
                     STATUS_INVALID_HANDLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registry_open_and_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_rtl_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_host_side, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_enumerate_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_query_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
