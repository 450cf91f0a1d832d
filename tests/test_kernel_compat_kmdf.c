/*
 * The KMDF subset (<wdf.h>, src/kernel/wdf_*.c) and WPP no-ops: the KMDF
 * driver of compat_kmdf_driver.c through DriverEntry, a flow, the framework's
 * DriverUnload and the host's leak check; then the documented statuses,
 * handle checks and leak reports one by one, with a framework driver made
 * here.
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>

#include <ntddk.h>
#include <wdf.h>
#include <openwfp/kernel.h>

#define SERVICE "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\compat_kmdf"

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath);
ULONG CompatKmdfLevel(void);
ULONG CompatKmdfLevelType(void);
USHORT CompatKmdfName(PWCHAR buffer, USHORT bytes);
WDFSTRING CompatKmdfNameObject(void);
WDFDEVICE CompatKmdfDevice(void);
LONG CompatKmdfClassified(void);
BOOLEAN CompatKmdfUnloaded(void);
LONG CompatKmdfDriverCleanups(void);

static UNICODE_STRING service_path = RTL_CONSTANT_STRING(
    L"\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\compat_kmdf");

static void make_service(void)
{
    assert_int_equal(owfp_registry_create_key(SERVICE), 0);
    assert_int_equal(owfp_registry_set_dword(SERVICE "\\Parameters", "Level", 3), 0);
    assert_int_equal(owfp_registry_set_string(SERVICE "\\Parameters", "Name", "kmdf"), 0);
    assert_int_equal(owfp_registry_set_string(SERVICE "\\Parameters", "Long", "0123456789"), 0);
}

static int setup(void **state)
{
    owfp_kernel_findings_reset();
    make_service();
    return h_setup(state);
}

static int teardown(void **state)
{
    owfp_registry_clear();
    return h_teardown(state);
}

struct leak {
    char type[32];
    char release[32];
    unsigned long count;
};

struct leaks {
    struct leak v[8];
    int n;
};

static void note_leak(const char *type, const char *release, unsigned long count, void *ctx)
{
    struct leaks *l = ctx;
    if (l->n < 8) {
        snprintf(l->v[l->n].type, sizeof(l->v[0].type), "%s", type);
        snprintf(l->v[l->n].release, sizeof(l->v[0].release), "%s", release);
        l->v[l->n++].count = count;
    }
}

static void test_kmdf_driver_lifecycle(void **state)
{
    (void)state;
    DRIVER_OBJECT driver;
    memset(&driver, 0, sizeof(driver));
    assert_int_equal(DriverEntry(&driver, &service_path), STATUS_SUCCESS);

    /* The framework installed its DriverUnload; the control device is a
     * WDM device of the driver, initialized, with its type and name. */
    assert_non_null(driver.DriverUnload);
    PDEVICE_OBJECT wdm = WdfDeviceWdmGetDeviceObject(CompatKmdfDevice());
    assert_ptr_equal(driver.DeviceObject, wdm);
    assert_ptr_equal(wdm->DriverObject, &driver);
    assert_int_equal(wdm->DeviceType, FILE_DEVICE_NETWORK);
    assert_true(wdm->Characteristics & FILE_DEVICE_SECURE_OPEN);
    assert_false(wdm->Flags & DO_DEVICE_INITIALIZING);

    /* Parameters, through each query. */
    assert_int_equal(CompatKmdfLevel(), 3);
    assert_int_equal(CompatKmdfLevelType(), REG_DWORD);
    WCHAR name[16];
    assert_int_equal(CompatKmdfName(name, sizeof(name)), 4 * sizeof(WCHAR));
    assert_memory_equal(name, L"kmdf", 4 * sizeof(WCHAR));
    UNICODE_STRING s;
    WdfStringGetUnicodeString(CompatKmdfNameObject(), &s);
    assert_int_equal(s.Length, 4 * sizeof(WCHAR));
    assert_memory_equal(s.Buffer, L"kmdf", 4 * sizeof(WCHAR));
    assert_int_equal(owfp_registry_open_handles(), 0);

    /* The callout registered with the WDM device runs and finds its context. */
    struct owfp_flow_params p = h_params4(40000, 443, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    owfp_flow_close(f);
    assert_int_equal(CompatKmdfClassified(), 1);

    /* Unload: EvtDriverUnload, then the framework deletes the control device
     * (KMDF does so for non-PnP drivers) and the driver object. */
    driver.DriverUnload(&driver);
    assert_true(CompatKmdfUnloaded());
    assert_int_equal(CompatKmdfDriverCleanups(), 1);
    assert_null(driver.DeviceObject);
    struct leaks l = {0};
    assert_int_equal(owfp_wdf_driver_gone(&driver, note_leak, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(owfp_kernel_findings(), 0);
}

/* A framework driver of this test, for the calls below. */
static WDFDRIVER make_driver(PDRIVER_OBJECT driver, PFN_WDF_DRIVER_UNLOAD unload)
{
    memset(driver, 0, sizeof(*driver));
    WDF_DRIVER_CONFIG config;
    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags = WdfDriverInitNonPnpDriver;
    config.EvtDriverUnload = unload;
    WDFDRIVER d = NULL;
    assert_int_equal(WdfDriverCreate(driver, &service_path, WDF_NO_OBJECT_ATTRIBUTES, &config, &d),
                     STATUS_SUCCESS);
    assert_non_null(d);
    return d;
}

static void test_driver_create_checks(void **state)
{
    (void)state;
    DRIVER_OBJECT driver;
    memset(&driver, 0, sizeof(driver));
    WDF_DRIVER_CONFIG config;
    WDFDRIVER d = (WDFDRIVER)1;

    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags = WdfDriverInitNonPnpDriver;
    config.Size = sizeof(config) - 1;
    assert_int_equal(WdfDriverCreate(&driver, &service_path, NULL, &config, &d),
                     STATUS_INFO_LENGTH_MISMATCH);
    assert_null(d);
    config.Size = sizeof(config);
    WDF_OBJECT_ATTRIBUTES attributes;
    WDF_OBJECT_ATTRIBUTES_INIT(&attributes);
    attributes.Size = 8;
    assert_int_equal(WdfDriverCreate(&driver, &service_path, &attributes, &config, &d),
                     STATUS_INFO_LENGTH_MISMATCH);

    /* A PnP driver would never get EvtDriverDeviceAdd: refused, recorded. */
    owfp_kernel_set_quiet(true);
    config.DriverInitFlags = 0;
    assert_int_equal(WdfDriverCreate(&driver, &service_path, NULL, &config, &d),
                     STATUS_NOT_SUPPORTED);
    assert_int_equal(owfp_kernel_findings(), 1);
    owfp_kernel_set_quiet(false);
    owfp_kernel_findings_reset();

    /* Without EvtDriverUnload the driver cannot be unloaded, as on Windows. */
    d = make_driver(&driver, NULL);
    assert_null(driver.DriverUnload);
    assert_ptr_equal(WdfGetDriver(), d);
    assert_ptr_equal(WdfDriverWdmGetDriverObject(d), &driver);
    PWSTR path = WdfDriverGetRegistryPath(d);
    assert_int_equal(memcmp(path, service_path.Buffer, service_path.Length), 0);
    assert_int_equal(path[service_path.Length / sizeof(WCHAR)], 0);
    assert_int_equal(owfp_wdf_driver_gone(&driver, NULL, NULL), 0);
    assert_null(WdfGetDriver());
    assert_int_equal(owfp_kernel_findings(), 0);
}

static void test_registry_statuses(void **state)
{
    (void)state;
    DRIVER_OBJECT driver;
    WDFDRIVER d = make_driver(&driver, NULL);
    WDFKEY key;
    assert_int_equal(WdfDriverOpenParametersRegistryKey(d, KEY_READ, NULL, &key), STATUS_SUCCESS);

    DECLARE_CONST_UNICODE_STRING(missing, L"Missing");
    DECLARE_CONST_UNICODE_STRING(level, L"level"); /* names ignore case */
    DECLARE_CONST_UNICODE_STRING(lng, L"Long");
    ULONG v = 7;
    assert_int_equal(WdfRegistryQueryULong(key, &missing, &v), STATUS_OBJECT_NAME_NOT_FOUND);
    assert_int_equal(v, 7);
    assert_int_equal(WdfRegistryQueryULong(key, &lng, &v), STATUS_OBJECT_TYPE_MISMATCH);
    assert_int_equal(WdfRegistryQueryULong(key, &level, &v), STATUS_SUCCESS);
    assert_int_equal(v, 3);

    /* Strings: the length alone, a buffer too small (nothing written), one
     * that fits exactly (no room for the NUL), one with room. */
    USHORT bytes = 0;
    assert_int_equal(WdfRegistryQueryUnicodeString(key, &lng, &bytes, NULL), STATUS_SUCCESS);
    assert_int_equal(bytes, 11 * sizeof(WCHAR));
    WCHAR buf[16];
    memset(buf, 0xAA, sizeof(buf));
    UNICODE_STRING u = {0, 9 * sizeof(WCHAR), buf};
    assert_int_equal(WdfRegistryQueryUnicodeString(key, &lng, &bytes, &u), STATUS_BUFFER_OVERFLOW);
    assert_int_equal(u.Length, 0);
    assert_int_equal(buf[0], 0xAAAA);
    u.MaximumLength = 10 * sizeof(WCHAR);
    assert_int_equal(WdfRegistryQueryUnicodeString(key, &lng, NULL, &u), STATUS_SUCCESS);
    assert_int_equal(u.Length, 10 * sizeof(WCHAR));
    assert_memory_equal(buf, L"0123456789", 10 * sizeof(WCHAR));
    assert_int_equal(buf[10], 0xAAAA);
    u.MaximumLength = sizeof(buf);
    assert_int_equal(WdfRegistryQueryUnicodeString(key, &lng, NULL, &u), STATUS_SUCCESS);
    assert_int_equal(buf[10], 0);
    assert_int_equal(WdfRegistryQueryUnicodeString(key, &level, NULL, &u),
                     STATUS_OBJECT_TYPE_MISMATCH);
    assert_int_equal(WdfRegistryQueryUnicodeString(key, &missing, &bytes, NULL),
                     STATUS_OBJECT_NAME_NOT_FOUND);
    assert_int_equal(WdfRegistryQueryUnicodeString(key, &lng, NULL, NULL),
                     STATUS_INVALID_PARAMETER);

    /* Any type. */
    ULONG length = 0, type = 0;
    assert_int_equal(WdfRegistryQueryValue(key, &lng, 0, NULL, &length, &type), STATUS_SUCCESS);
    assert_int_equal(length, 11 * sizeof(WCHAR));
    assert_int_equal(type, REG_SZ);
    assert_int_equal(WdfRegistryQueryValue(key, &lng, 4, buf, &length, NULL),
                     STATUS_BUFFER_OVERFLOW);
    assert_int_equal(WdfRegistryQueryValue(key, &level, sizeof(v), &v, NULL, &type),
                     STATUS_SUCCESS);
    assert_int_equal(type, REG_DWORD);

    /* A WDFSTRING. */
    WDFSTRING str;
    assert_int_equal(WdfStringCreate(NULL, NULL, &str), STATUS_SUCCESS);
    assert_int_equal(WdfRegistryQueryString(key, &lng, str), STATUS_SUCCESS);
    UNICODE_STRING got;
    WdfStringGetUnicodeString(str, &got);
    assert_int_equal(got.Length, 10 * sizeof(WCHAR));
    assert_memory_equal(got.Buffer, L"0123456789", got.Length);
    WdfObjectDelete(str);

    /* The parent key, from the Parameters subkey's handle, is the same
     * registry ZwOpenKey reads. */
    HANDLE h = WdfRegistryWdmGetHandle(key);
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"Name");
    UCHAR raw[64];
    ULONG result;
    assert_int_equal(ZwQueryValueKey(h, &name, KeyValuePartialInformation, raw, sizeof(raw),
                                     &result),
                     STATUS_SUCCESS);
    WdfRegistryClose(key);

    /* Write access is refused; a key opened without KEY_QUERY_VALUE cannot
     * be read. */
    assert_int_equal(WdfDriverOpenParametersRegistryKey(d, KEY_ALL_ACCESS, NULL, &key),
                     STATUS_ACCESS_DENIED);
    assert_null(key);
    assert_int_equal(WdfDriverOpenParametersRegistryKey(d, KEY_ENUMERATE_SUB_KEYS, NULL, &key),
                     STATUS_SUCCESS);
    assert_int_equal(WdfRegistryQueryULong(key, &level, &v), STATUS_ACCESS_DENIED);
    WdfRegistryClose(key);
    assert_int_equal(owfp_registry_open_handles(), 0);

    assert_int_equal(owfp_wdf_driver_gone(&driver, NULL, NULL), 0);
    assert_int_equal(owfp_kernel_findings(), 0);
}

/* The service key has no Parameters subkey: what the caller gets. */
static void test_parameters_key_missing(void **state)
{
    (void)state;
    owfp_registry_clear();
    assert_int_equal(owfp_registry_create_key(SERVICE), 0);
    DRIVER_OBJECT driver;
    WDFDRIVER d = make_driver(&driver, NULL);
    WDFKEY key = (WDFKEY)1;
    assert_int_equal(WdfDriverOpenParametersRegistryKey(d, KEY_READ, NULL, &key),
                     STATUS_OBJECT_NAME_NOT_FOUND);
    assert_null(key);
    assert_int_equal(owfp_wdf_driver_gone(&driver, NULL, NULL), 0);
}

static LONG cleanups, destroys;

static VOID NTAPI count_cleanup(WDFOBJECT object)
{
    (void)object;
    cleanups++;
}

static VOID NTAPI count_destroy(WDFOBJECT object)
{
    (void)object;
    destroys++;
}

static VOID NTAPI leave_things(WDFDRIVER driver)
{
    (void)driver;
}

/* What a driver leaves is deleted by the framework and reported by type;
 * the control device is not a leak. Children go with their parent. */
static void test_leftovers_are_reported(void **state)
{
    (void)state;
    DRIVER_OBJECT driver;
    WDFDRIVER d = make_driver(&driver, leave_things);
    WDFKEY key;
    assert_int_equal(WdfDriverOpenParametersRegistryKey(d, KEY_READ, NULL, &key), STATUS_SUCCESS);
    WDF_OBJECT_ATTRIBUTES attributes;
    WDF_OBJECT_ATTRIBUTES_INIT(&attributes);
    attributes.EvtCleanupCallback = count_cleanup;
    attributes.EvtDestroyCallback = count_destroy;
    WDFSTRING s1, s2, child;
    assert_int_equal(WdfStringCreate(NULL, &attributes, &s1), STATUS_SUCCESS);
    assert_int_equal(WdfStringCreate(NULL, &attributes, &s2), STATUS_SUCCESS);
    attributes.ParentObject = key;
    assert_int_equal(WdfStringCreate(NULL, &attributes, &child), STATUS_SUCCESS);
    PWDFDEVICE_INIT init = WdfControlDeviceInitAllocate(d, &SDDL_DEVOBJ_KERNEL_ONLY);
    assert_non_null(init);
    PWDFDEVICE_INIT init2 = WdfControlDeviceInitAllocate(d, &SDDL_DEVOBJ_SYS_ALL_ADM_ALL);
    WDFDEVICE device;
    assert_int_equal(WdfDeviceCreate(&init2, NULL, &device), STATUS_SUCCESS);
    assert_null(init2);
    assert_non_null(driver.DeviceObject);
    assert_int_equal(owfp_registry_open_handles(), 1);

    driver.DriverUnload(&driver);
    assert_null(driver.DeviceObject);
    assert_int_equal(owfp_registry_open_handles(), 0);
    assert_int_equal(cleanups, 3);
    assert_int_equal(destroys, 3);
    struct leaks l = {0};
    assert_int_equal(owfp_wdf_driver_gone(&driver, note_leak, &l), 4);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.v[0].type, "WDFDEVICE_INIT");
    assert_string_equal(l.v[0].release, "WdfDeviceInitFree");
    assert_int_equal(l.v[0].count, 1);
    assert_string_equal(l.v[1].type, "WDFKEY");
    assert_string_equal(l.v[1].release, "WdfRegistryClose");
    assert_int_equal(l.v[1].count, 1);
    assert_string_equal(l.v[2].type, "WDFSTRING");
    assert_int_equal(l.v[2].count, 2);
    /* Reported once. */
    assert_int_equal(owfp_wdf_driver_gone(&driver, note_leak, &l), 0);
    assert_int_equal(owfp_kernel_findings(), 0);
}

/* After a failed DriverEntry there is no unload: the host's call deletes
 * what is there. */
static void test_objects_of_a_failed_driver_entry(void **state)
{
    (void)state;
    DRIVER_OBJECT driver;
    WDFDRIVER d = make_driver(&driver, leave_things);
    PWDFDEVICE_INIT init = WdfControlDeviceInitAllocate(d, &SDDL_DEVOBJ_KERNEL_ONLY);
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\WdfFailed");
    assert_int_equal(WdfDeviceInitAssignName(init, &name), STATUS_SUCCESS);
    WDFDEVICE device;
    assert_int_equal(WdfDeviceCreate(&init, NULL, &device), STATUS_SUCCESS);
    assert_int_equal(owfp_wdf_driver_gone(&driver, NULL, NULL), 0);
    assert_null(driver.DeviceObject);
    /* The name is free again. */
    d = make_driver(&driver, leave_things);
    init = WdfControlDeviceInitAllocate(d, &SDDL_DEVOBJ_KERNEL_ONLY);
    assert_int_equal(WdfDeviceInitAssignName(init, &name), STATUS_SUCCESS);
    assert_int_equal(WdfDeviceCreate(&init, NULL, &device), STATUS_SUCCESS);
    WdfObjectDelete(device);
    assert_null(driver.DeviceObject);
    assert_int_equal(owfp_wdf_driver_gone(&driver, NULL, NULL), 0);
    assert_int_equal(owfp_kernel_findings(), 0);
}

/* A name already in use: WdfDeviceCreate fails and the init structure is
 * still the caller's. */
static void test_device_create_failure_keeps_init(void **state)
{
    (void)state;
    DRIVER_OBJECT driver;
    WDFDRIVER d = make_driver(&driver, leave_things);
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\WdfTwice");
    WDFDEVICE first, second;
    PWDFDEVICE_INIT init = WdfControlDeviceInitAllocate(d, &SDDL_DEVOBJ_KERNEL_ONLY);
    assert_int_equal(WdfDeviceInitAssignName(init, &name), STATUS_SUCCESS);
    assert_int_equal(WdfDeviceCreate(&init, NULL, &first), STATUS_SUCCESS);
    init = WdfControlDeviceInitAllocate(d, &SDDL_DEVOBJ_KERNEL_ONLY);
    assert_int_equal(WdfDeviceInitAssignName(init, &name), STATUS_SUCCESS);
    assert_int_equal(WdfDeviceCreate(&init, NULL, &second), STATUS_OBJECT_NAME_COLLISION);
    assert_non_null(init);
    assert_null(second);
    WdfDeviceInitFree(init);
    assert_null(WdfControlDeviceInitAllocate(d, NULL)); /* an SDDL string is required */
    driver.DriverUnload(&driver);
    assert_int_equal(owfp_wdf_driver_gone(&driver, NULL, NULL), 0);
    assert_int_equal(owfp_kernel_findings(), 0);
}

/* Handles that are not live framework objects are findings, not crashes. */
static void test_bad_handles_are_findings(void **state)
{
    (void)state;
    owfp_kernel_set_quiet(true);
    DRIVER_OBJECT driver;
    WDFDRIVER d = make_driver(&driver, NULL);
    WDFKEY key;
    assert_int_equal(WdfDriverOpenParametersRegistryKey(d, KEY_READ, NULL, &key), STATUS_SUCCESS);
    WdfRegistryClose(key);
    WdfRegistryClose(key); /* closed twice */
    assert_int_equal(owfp_kernel_findings(), 1);
    char msg[128];
    owfp_kernel_last_finding(msg, sizeof(msg));
    assert_non_null(strstr(msg, "WdfRegistryClose: "));
    assert_non_null(strstr(msg, "is not a live WDFKEY handle"));
    WdfObjectDelete(d); /* drivers are the framework's to delete */
    assert_int_equal(owfp_kernel_findings(), 2);
    int local;
    assert_null(WdfDeviceWdmGetDeviceObject((WDFDEVICE)&local));
    assert_int_equal(owfp_kernel_findings(), 3);
    assert_int_equal(owfp_wdf_driver_gone(&driver, NULL, NULL), 0);
    owfp_kernel_set_quiet(false);
    owfp_kernel_findings_reset();
}

typedef struct _TEST_CONTEXT {
    ULONG Value;
} TEST_CONTEXT;
WDF_DECLARE_CONTEXT_TYPE(TEST_CONTEXT)

typedef struct _OTHER_CONTEXT {
    ULONG Other;
} OTHER_CONTEXT;
WDF_DECLARE_CONTEXT_TYPE(OTHER_CONTEXT)

static void test_typed_contexts(void **state)
{
    (void)state;
    DRIVER_OBJECT driver;
    WDFDRIVER d = make_driver(&driver, NULL);
    WDF_OBJECT_ATTRIBUTES attributes;
    WDF_OBJECT_ATTRIBUTES_INIT_CONTEXT_TYPE(&attributes, TEST_CONTEXT);
    attributes.ContextSizeOverride = 64;
    WDFSTRING s;
    assert_int_equal(WdfStringCreate(NULL, &attributes, &s), STATUS_SUCCESS);
    TEST_CONTEXT *c = WdfObjectGet_TEST_CONTEXT(s);
    assert_non_null(c);
    assert_int_equal(c->Value, 0);
    c->Value = 5;
    assert_ptr_equal(WdfObjectGetTypedContext(s, TEST_CONTEXT), c);
    assert_null(WdfObjectGet_OTHER_CONTEXT(s));
    WdfObjectDelete(s);
    (void)d;
    assert_int_equal(owfp_wdf_driver_gone(&driver, NULL, NULL), 0);
    assert_int_equal(owfp_kernel_findings(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kmdf_driver_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_driver_create_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parameters_key_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftovers_are_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_objects_of_a_failed_driver_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_create_failure_keeps_init, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_handles_are_findings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_typed_contexts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
