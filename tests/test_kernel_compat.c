/*
 * Runs tests/compat_driver.c, a driver written for Windows, through its life:
 * DriverEntry, one flow (classifyFn at DISPATCH_LEVEL queues work for the
 * driver's system thread), flow close (flowDeleteFn at ≤ DISPATCH_LEVEL),
 * DriverUnload; then nothing may be left: no pool, no thread, no finding.
 */
#include "harness.h"

#include <string.h>

#include <ntddk.h>
#include <openwfp/kernel.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath);
LONG CompatClassified(void);
LONG CompatProcessed(void);
LONG CompatDeleted(void);
KIRQL CompatIrql(int which);
PCSTR CompatLastMessage(void);

struct tag_count {
    uint32_t tag;
    uint64_t n;
};

static void count_tag(uint32_t tag, uint64_t n, uint64_t bytes, void *ctx)
{
    (void)bytes;
    struct tag_count *w = ctx;
    if (tag == w->tag)
        w->n = n;
}

static uint64_t tagged(uint32_t tag)
{
    struct tag_count want = {tag, 0};
    owfp_pool_outstanding(count_tag, &want);
    return want.n;
}

static void test_compat_driver_lifecycle(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    DRIVER_OBJECT driver;
    memset(&driver, 0, sizeof(driver));
    UNICODE_STRING registry = RTL_CONSTANT_STRING(L"\\Registry\\Machine\\System\\compat");
    assert_int_equal(DriverEntry(&driver, &registry), STATUS_SUCCESS);
    assert_non_null(driver.DriverUnload);
    assert_non_null(driver.DeviceObject);
    assert_int_equal(owfp_system_threads_running(), 1);
    /* The filter add told the callout, at DISPATCH_LEVEL. */
    assert_int_equal(CompatIrql(1), DISPATCH_LEVEL);

    struct owfp_flow_params p = h_params4(40000, 443, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    assert_int_equal(CompatClassified(), 1);
    assert_int_equal(CompatIrql(0), DISPATCH_LEVEL);
    for (int i = 0; i < 500 && CompatProcessed() < 1; i++) {
        LARGE_INTEGER ms = {.QuadPart = -10000};
        KeDelayExecutionThread(KernelMode, FALSE, &ms);
    }
    assert_int_equal(CompatProcessed(), 1);
    assert_non_null(strstr(CompatLastMessage(), "to port 443"));
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL); /* restored after the callout */

    owfp_flow_close(f);
    assert_int_equal(CompatDeleted(), 1);
    assert_true(CompatIrql(2) <= DISPATCH_LEVEL);
    assert_int_equal(tagged('xtCC'), 0);

    driver.DriverUnload(&driver);
    assert_null(driver.DeviceObject);
    assert_int_equal(owfp_system_threads_running(), 0);
    assert_int_equal(tagged('pmoC'), 0);
    assert_int_equal(owfp_kernel_findings(), 0);
}

/* A classifyFn that returns with its spin lock still held is a finding. */
static KSPIN_LOCK leaked_lock;

static void NTAPI leaky_classify(const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta, void *data,
                                 const FWPS_FILTER0 *filter, UINT64 ctx, FWPS_CLASSIFY_OUT0 *out)
{
    (void)in, (void)meta, (void)data, (void)filter, (void)ctx;
    KIRQL old;
    KeAcquireSpinLock(&leaked_lock, &old);
    KeReleaseSpinLockFromDpcLevel(&leaked_lock);
    (void)old;
    KeLowerIrql(PASSIVE_LEVEL); /* drops below the level it was called at */
    out->actionType = FWP_ACTION_CONTINUE;
}

static void test_classify_returning_at_wrong_irql_is_a_finding(void **state)
{
    (void)state;
    owfp_kernel_set_quiet(true);
    owfp_kernel_findings_reset();
    KeInitializeSpinLock(&leaked_lock);
    GUID key = h_guid(0x1e4c);
    UINT32 id;
    assert_int_equal(h_register0(&key, 0, leaky_classify, h_notify_ok, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&key, &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4), STATUS_SUCCESS);
    struct h_filter_spec s = {0};
    s.layer = &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
    s.action = FWP_ACTION_CALLOUT_INSPECTION;
    s.callout = &key;
    assert_int_equal(h_filter(&s, NULL), STATUS_SUCCESS);
    struct owfp_flow_params p = h_params4(40001, 80, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    owfp_flow_close(f);
    assert_int_equal(owfp_kernel_findings(), 1);
    char msg[128];
    owfp_kernel_last_finding(msg, sizeof(msg));
    assert_string_equal(msg, "IRQL violation: classifyFn returned at PASSIVE_LEVEL");
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    owfp_kernel_set_quiet(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_compat_driver_lifecycle, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_classify_returning_at_wrong_irql_is_a_finding,
                                        h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
