/*
 * DPCs and timers: DPC routines at DISPATCH_LEVEL on the DPC thread, queue
 * order and importance, KeRemoveQueueDpc, KeFlushQueuedDpcs; notification,
 * synchronization and periodic timers as waitable objects and with DPCs;
 * what the host takes out before unmapping a driver. Built for the
 * ThreadSanitizer run too.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <ntddk.h>
#include <openwfp/kernel.h>

#define MS(n) ((LONGLONG)(n) * -10000)

static LARGE_INTEGER zero_timeout = {.QuadPart = 0};

static int quiet_setup(void **state)
{
    (void)state;
    owfp_kernel_set_quiet(true);
    return 0;
}

static void sleep_ms(int ms)
{
    LARGE_INTEGER d = {.QuadPart = MS(ms)};
    KeDelayExecutionThread(KernelMode, FALSE, &d);
}

static LONGLONG now_ms(void)
{
    return (LONGLONG)(KeQueryInterruptTime() / 10000);
}

static void assert_last_finding(const char *want)
{
    char msg[256];
    owfp_kernel_last_finding(msg, sizeof(msg));
    assert_string_equal(msg, want);
}

/* ---- DPC bookkeeping ----------------------------------------------------------------- */

static struct {
    KEVENT ran;
    KIRQL irql;
    pthread_t thread;
    PVOID context, arg1, arg2;
    LONG volatile order[8];
    LONG volatile norder;
    LONG volatile gate_open, gate_entered;
} d;

static VOID NTAPI record_dpc(PKDPC dpc, PVOID context, PVOID a1, PVOID a2)
{
    (void)dpc;
    d.irql = KeGetCurrentIrql();
    d.thread = pthread_self();
    d.context = context;
    d.arg1 = a1;
    d.arg2 = a2;
    KeSetEvent(&d.ran, 0, FALSE);
}

static VOID NTAPI order_dpc(PKDPC dpc, PVOID context, PVOID a1, PVOID a2)
{
    (void)dpc;
    (void)a1;
    (void)a2;
    LONG i = InterlockedIncrement(&d.norder) - 1;
    if (i < 8)
        InterlockedExchange(&d.order[i], (LONG)(intptr_t)context);
}

/* Holds the DPC thread (spinning, as a DPC may) until the gate opens. */
static VOID NTAPI gate_dpc(PKDPC dpc, PVOID context, PVOID a1, PVOID a2)
{
    (void)dpc;
    (void)context;
    (void)a1;
    (void)a2;
    InterlockedExchange(&d.gate_entered, 1);
    while (!ReadAcquire(&d.gate_open))
        KeStallExecutionProcessor(100);
}

static KDPC gate;

static void close_gate(void)
{
    InterlockedExchange(&d.gate_open, 0);
    InterlockedExchange(&d.gate_entered, 0);
    KeInitializeDpc(&gate, gate_dpc, NULL);
    assert_true(KeInsertQueueDpc(&gate, NULL, NULL));
    while (!ReadAcquire(&d.gate_entered))
        sleep_ms(1);
}

static void open_gate(void)
{
    InterlockedExchange(&d.gate_open, 1);
}

static void reset_dpc_record(void)
{
    memset(&d, 0, sizeof(d));
    KeInitializeEvent(&d.ran, SynchronizationEvent, FALSE);
}

/* ---- DPCs ------------------------------------------------------------------------------ */

static void test_dpc_runs_at_dispatch_on_the_dpc_thread(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    reset_dpc_record();
    KDPC dpc;
    KeInitializeDpc(&dpc, record_dpc, (PVOID)0x1234);
    assert_true(KeInsertQueueDpc(&dpc, (PVOID)1, (PVOID)2));
    LARGE_INTEGER t = {.QuadPart = MS(5000)};
    assert_int_equal(KeWaitForSingleObject(&d.ran, Executive, KernelMode, FALSE, &t),
                     STATUS_SUCCESS);
    assert_int_equal(d.irql, DISPATCH_LEVEL);
    assert_false(pthread_equal(d.thread, pthread_self()));
    assert_ptr_equal(d.context, (PVOID)0x1234);
    assert_ptr_equal(d.arg1, (PVOID)1);
    assert_ptr_equal(d.arg2, (PVOID)2);
    /* Queued from DISPATCH_LEVEL too, and again once it ran. */
    KIRQL old = KeRaiseIrqlToDpcLevel();
    assert_true(KeInsertQueueDpc(&dpc, (PVOID)3, NULL));
    KeLowerIrql(old);
    assert_int_equal(KeWaitForSingleObject(&d.ran, Executive, KernelMode, FALSE, &t),
                     STATUS_SUCCESS);
    assert_ptr_equal(d.arg1, (PVOID)3);
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    assert_int_equal(owfp_kernel_findings(), 0);
}

static void test_dpc_queue_order_and_removal(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    reset_dpc_record();
    KDPC a, b, c;
    KeInitializeDpc(&a, order_dpc, (PVOID)1);
    KeInitializeDpc(&b, order_dpc, (PVOID)2);
    KeInitializeThreadedDpc(&c, order_dpc, (PVOID)3);
    KeSetImportanceDpc(&c, HighImportance);
    close_gate();
    assert_true(KeInsertQueueDpc(&a, NULL, NULL));
    assert_false(KeInsertQueueDpc(&a, NULL, NULL)); /* already queued */
    assert_true(KeInsertQueueDpc(&b, NULL, NULL));
    assert_true(KeRemoveQueueDpc(&a));
    assert_false(KeRemoveQueueDpc(&a));
    assert_true(KeInsertQueueDpc(&a, NULL, NULL)); /* now behind b */
    assert_true(KeInsertQueueDpc(&c, NULL, NULL)); /* high importance: first */
    assert_int_equal(owfp_dpcs_pending(), 4);      /* the gate runs, three queued */
    open_gate();
    KeFlushQueuedDpcs();
    assert_int_equal(d.norder, 3);
    assert_int_equal(d.order[0], 3);
    assert_int_equal(d.order[1], 2);
    assert_int_equal(d.order[2], 1);
    assert_int_equal(owfp_dpcs_pending(), 0);
    assert_int_equal(owfp_kernel_findings(), 0);
}

static void *flush_thread(void *arg)
{
    KeFlushQueuedDpcs();
    InterlockedExchange((LONG volatile *)arg, 1);
    return NULL;
}

static void test_flush_waits_for_queued_and_running_dpcs(void **state)
{
    (void)state;
    reset_dpc_record();
    KDPC a;
    KeInitializeDpc(&a, order_dpc, (PVOID)7);
    close_gate();
    KeInsertQueueDpc(&a, NULL, NULL);
    LONG volatile flushed = 0;
    pthread_t t;
    pthread_create(&t, NULL, flush_thread, (void *)&flushed);
    sleep_ms(50);
    assert_int_equal(ReadAcquire(&flushed), 0);
    open_gate();
    pthread_join(t, NULL);
    assert_int_equal(flushed, 1);
    assert_int_equal(d.norder, 1);
    assert_int_equal(d.order[0], 7);
}

static VOID NTAPI raising_dpc(PKDPC dpc, PVOID context, PVOID a1, PVOID a2)
{
    (void)dpc;
    (void)context;
    (void)a1;
    (void)a2;
    KIRQL old;
    KeRaiseIrql(HIGH_LEVEL, &old); /* and never lowered */
}

static void test_dpc_misuse(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KDPC zeroed;
    memset(&zeroed, 0, sizeof(zeroed));
    assert_false(KeInsertQueueDpc(&zeroed, NULL, NULL));
    assert_last_finding("DPC violation: KeInsertQueueDpc on a DPC that is not initialized");
    KIRQL old = KeRaiseIrqlToDpcLevel();
    KeFlushQueuedDpcs(); /* would wait for itself from a DPC */
    KeLowerIrql(old);
    assert_last_finding("IRQL violation: KeFlushQueuedDpcs at DISPATCH_LEVEL");
    KDPC r;
    KeInitializeDpc(&r, raising_dpc, NULL);
    KeInsertQueueDpc(&r, NULL, NULL);
    KeFlushQueuedDpcs();
    assert_int_equal(owfp_kernel_findings(), 3);
    assert_last_finding("IRQL violation: DPC routine returned at HIGH_LEVEL");
    owfp_kernel_findings_reset();
}

/* ---- timers ------------------------------------------------------------------------------ */

static void test_notification_timer_is_waitable(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KTIMER t;
    KeInitializeTimer(&t);
    assert_false(KeReadStateTimer(&t));
    LARGE_INTEGER due = {.QuadPart = MS(30)};
    LONGLONG start = now_ms();
    assert_false(KeSetTimer(&t, due, NULL));
    assert_int_equal(KeWaitForSingleObject(&t, Executive, KernelMode, FALSE, NULL),
                     STATUS_SUCCESS);
    assert_true(now_ms() - start >= 25);
    assert_true(KeReadStateTimer(&t));
    /* A notification timer stays signaled. */
    assert_int_equal(KeWaitForSingleObject(&t, Executive, KernelMode, FALSE, &zero_timeout),
                     STATUS_SUCCESS);
    assert_false(KeCancelTimer(&t)); /* expired: not set any more */
    /* Setting it again makes it non-signaled until it expires. */
    due.QuadPart = MS(10000);
    assert_false(KeSetTimer(&t, due, NULL));
    assert_false(KeReadStateTimer(&t));
    assert_true(KeCancelTimer(&t));
    assert_false(KeCancelTimer(&t));
    LARGE_INTEGER wait = {.QuadPart = MS(40)};
    assert_int_equal(KeWaitForSingleObject(&t, Executive, KernelMode, FALSE, &wait),
                     STATUS_TIMEOUT);

    /* Absolute due time: system time + 20 ms. */
    KeQuerySystemTime(&due);
    due.QuadPart += 20 * 10000;
    start = now_ms();
    KeSetTimer(&t, due, NULL);
    assert_int_equal(KeWaitForSingleObject(&t, Executive, KernelMode, FALSE, NULL),
                     STATUS_SUCCESS);
    assert_true(now_ms() - start >= 10);
    assert_int_equal(owfp_kernel_findings(), 0);
}

static void test_timer_set_again_rearms(void **state)
{
    (void)state;
    KTIMER t;
    KeInitializeTimerEx(&t, NotificationTimer);
    unsigned long before = owfp_timers_set();
    LARGE_INTEGER far = {.QuadPart = MS(60000)}, soon = {.QuadPart = MS(20)};
    assert_false(KeSetTimer(&t, far, NULL));
    assert_int_equal(owfp_timers_set(), before + 1);
    assert_true(KeSetTimer(&t, soon, NULL)); /* it was set: re-armed */
    assert_int_equal(owfp_timers_set(), before + 1);
    LARGE_INTEGER wait = {.QuadPart = MS(5000)};
    assert_int_equal(KeWaitForSingleObject(&t, Executive, KernelMode, FALSE, &wait),
                     STATUS_SUCCESS);
    assert_int_equal(owfp_timers_set(), before);
}

struct timer_waiter {
    PKTIMER t;
    NTSTATUS st;
    LONG volatile *released;
};

static void *timer_wait_thread(void *arg)
{
    struct timer_waiter *w = arg;
    LARGE_INTEGER t = {.QuadPart = MS(5000)};
    w->st = KeWaitForSingleObject(w->t, Executive, KernelMode, FALSE, &t);
    if (w->st == STATUS_SUCCESS)
        InterlockedIncrement(w->released);
    return NULL;
}

static void test_synchronization_timer_releases_one_waiter(void **state)
{
    (void)state;
    KTIMER t;
    KeInitializeTimerEx(&t, SynchronizationTimer);
    LONG volatile released = 0;
    struct timer_waiter w[2] = {{&t, -1, &released}, {&t, -1, &released}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, timer_wait_thread, &w[i]);
    sleep_ms(50);
    LARGE_INTEGER due = {.QuadPart = MS(10)};
    KeSetTimer(&t, due, NULL);
    for (int i = 0; i < 1000 && ReadAcquire(&released) < 1; i++)
        sleep_ms(1);
    sleep_ms(50);
    assert_int_equal(ReadAcquire(&released), 1);
    assert_false(KeReadStateTimer(&t)); /* consumed by the waiter it released */
    KeSetTimer(&t, due, NULL);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].st, STATUS_SUCCESS);
    }
}

static struct {
    LONG volatile ticks;
    KEVENT five;
    PVOID arg1, arg2;
} periodic;

static VOID NTAPI tick_dpc(PKDPC dpc, PVOID context, PVOID a1, PVOID a2)
{
    (void)dpc;
    (void)context;
    periodic.arg1 = a1;
    periodic.arg2 = a2;
    if (InterlockedIncrement(&periodic.ticks) == 5)
        KeSetEvent(&periodic.five, 0, FALSE);
}

static void test_periodic_timer_queues_its_dpc(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    memset(&periodic, 0, sizeof(periodic));
    KeInitializeEvent(&periodic.five, NotificationEvent, FALSE);
    KTIMER t;
    KDPC dpc;
    KeInitializeTimerEx(&t, SynchronizationTimer);
    KeInitializeDpc(&dpc, tick_dpc, NULL);
    LARGE_INTEGER due = {.QuadPart = MS(5)};
    LARGE_INTEGER before;
    KeQuerySystemTime(&before);
    LONGLONG start = now_ms();
    KeSetTimerEx(&t, due, 10, &dpc);
    /* The timer and the event together: both signaled once five ticks ran. */
    PVOID objects[] = {&periodic.five, &t};
    LARGE_INTEGER wait = {.QuadPart = MS(5000)};
    assert_int_equal(KeWaitForMultipleObjects(2, objects, WaitAll, Executive, KernelMode, FALSE,
                                              &wait, NULL),
                     STATUS_SUCCESS);
    assert_true(now_ms() - start >= 40); /* 5 + 4 * 10 ms at least */
    /* The DPC gets the expiry's system time, low part then high part. */
    ULONGLONG when =
        (ULONGLONG)(ULONG_PTR)periodic.arg1 | (ULONGLONG)(ULONG_PTR)periodic.arg2 << 32;
    assert_true(when >= (ULONGLONG)before.QuadPart);
    assert_true(KeCancelTimer(&t)); /* periodic: still set */
    KeFlushQueuedDpcs();
    LONG ticks = ReadAcquire(&periodic.ticks);
    sleep_ms(50);
    assert_int_equal(ReadAcquire(&periodic.ticks), ticks);
    assert_int_equal(owfp_kernel_findings(), 0);
}

static void test_wait_any_on_timer_and_event(void **state)
{
    (void)state;
    KEVENT never;
    KTIMER t;
    KeInitializeEvent(&never, NotificationEvent, FALSE);
    KeInitializeTimer(&t);
    LARGE_INTEGER due = {.QuadPart = MS(20)};
    KeSetTimer(&t, due, NULL);
    PVOID objects[] = {&never, &t};
    assert_int_equal(KeWaitForMultipleObjects(2, objects, WaitAny, Executive, KernelMode, FALSE,
                                              NULL, NULL),
                     STATUS_WAIT_1);
}

static void test_timer_misuse(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KTIMER zeroed;
    memset(&zeroed, 0, sizeof(zeroed));
    LARGE_INTEGER due = {.QuadPart = MS(10)};
    assert_false(KeSetTimer(&zeroed, due, NULL));
    assert_last_finding("timer violation: KeSetTimer on a timer that is not initialized");
    KTIMER t;
    KeInitializeTimer(&t);
    KeSetTimerEx(&t, due, -5, NULL);
    assert_last_finding("timer violation: KeSetTimerEx with a negative period (-5 ms)");
    KeCancelTimer(&t);
    unsigned long before = owfp_timers_set();
    due.QuadPart = MS(60000);
    KeSetTimer(&t, due, NULL);
    KeInitializeTimer(&t); /* while set: taken out of the queue first */
    assert_last_finding("timer violation: KeInitializeTimer on a timer that is set");
    assert_int_equal(owfp_timers_set(), before);
    assert_int_equal(owfp_kernel_findings(), 3);
    owfp_kernel_findings_reset();
}

/* ---- what the host takes out at unload ---------------------------------------------------- */

static void test_host_cancels_timers_and_dpcs_by_range(void **state)
{
    (void)state;
    reset_dpc_record();
    static struct {
        KTIMER timer;
        KDPC dpc;
    } module; /* stands for a driver's data */
    KeInitializeTimer(&module.timer);
    KeInitializeDpc(&module.dpc, order_dpc, (PVOID)9);
    LARGE_INTEGER due = {.QuadPart = MS(60000)};
    KeSetTimerEx(&module.timer, due, 1000, &module.dpc);
    unsigned long set = owfp_timers_set();
    assert_int_equal(owfp_timers_cancel_range(&module, sizeof(module)), 1);
    assert_int_equal(owfp_timers_set(), set - 1);
    assert_false(KeCancelTimer(&module.timer));

    /* Queued DPCs of the range are removed; a running one is waited for. */
    close_gate();
    assert_true(KeInsertQueueDpc(&module.dpc, NULL, NULL));
    assert_int_equal(owfp_dpcs_remove_range(&module, sizeof(module)), 1);
    assert_false(KeRemoveQueueDpc(&module.dpc));
    assert_int_equal(owfp_dpcs_remove_range(&module, sizeof(module)), 0);
    /* The gate's routine is the "module" now: it runs until opened. */
    const void *code = (const void *)(uintptr_t)gate_dpc;
    assert_false(owfp_dpcs_wait_range(code, 1, 50));
    assert_true(owfp_dpcs_wait_range(&module, sizeof(module), 50)); /* not this range */
    open_gate();
    assert_true(owfp_dpcs_wait_range(code, 1, 5000));
    KeFlushQueuedDpcs();
    assert_int_equal(d.norder, 0); /* the removed DPC never ran */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dpc_runs_at_dispatch_on_the_dpc_thread),
        cmocka_unit_test(test_dpc_queue_order_and_removal),
        cmocka_unit_test(test_flush_waits_for_queued_and_running_dpcs),
        cmocka_unit_test(test_dpc_misuse),
        cmocka_unit_test(test_notification_timer_is_waitable),
        cmocka_unit_test(test_timer_set_again_rearms),
        cmocka_unit_test(test_synchronization_timer_releases_one_waiter),
        cmocka_unit_test(test_periodic_timer_queues_its_dpc),
        cmocka_unit_test(test_wait_any_on_timer_and_event),
        cmocka_unit_test(test_timer_misuse),
        cmocka_unit_test(test_host_cancels_timers_and_dpcs_by_range),
    };
    return cmocka_run_group_tests(tests, quiet_setup, NULL);
}
