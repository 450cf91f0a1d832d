/*
 * The kernel API layer's threads and synchronisation: events (notification
 * and synchronization), waits and their timeouts, system threads and waits
 * on thread objects, work items, and spin locks and interlocked operations
 * under contention. Built for the ThreadSanitizer run too.
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

#define MS(n) ((LONGLONG)(n) * -10000) /* relative timeout of n milliseconds */

static int quiet_setup(void **state)
{
    (void)state;
    owfp_kernel_set_quiet(true);
    return 0;
}

static LONGLONG now_ms(void)
{
    return (LONGLONG)(KeQueryInterruptTime() / 10000);
}

/* ---- events --------------------------------------------------------------- */

static void test_event_notification_stays_set(void **state)
{
    (void)state;
    KEVENT e;
    KeInitializeEvent(&e, NotificationEvent, FALSE);
    assert_int_equal(KeReadStateEvent(&e), 0);
    LARGE_INTEGER zero = {.QuadPart = 0};
    assert_int_equal(KeWaitForSingleObject(&e, Executive, KernelMode, FALSE, &zero),
                     STATUS_TIMEOUT);
    assert_int_equal(KeSetEvent(&e, IO_NO_INCREMENT, FALSE), 0);
    assert_int_equal(KeSetEvent(&e, IO_NO_INCREMENT, FALSE), 1);
    /* Stays signaled through any number of waits. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(KeWaitForSingleObject(&e, Executive, KernelMode, FALSE, &zero),
                         STATUS_SUCCESS);
    assert_int_equal(KeResetEvent(&e), 1);
    assert_int_equal(KeReadStateEvent(&e), 0);
    KeSetEvent(&e, 0, FALSE);
    KeClearEvent(&e);
    assert_int_equal(KeReadStateEvent(&e), 0);
}

static void test_event_synchronization_auto_resets(void **state)
{
    (void)state;
    KEVENT e;
    KeInitializeEvent(&e, SynchronizationEvent, TRUE);
    LARGE_INTEGER zero = {.QuadPart = 0};
    assert_int_equal(KeWaitForSingleObject(&e, Executive, KernelMode, FALSE, &zero),
                     STATUS_SUCCESS);
    assert_int_equal(KeReadStateEvent(&e), 0); /* consumed by the wait */
    assert_int_equal(KeWaitForSingleObject(&e, Executive, KernelMode, FALSE, &zero),
                     STATUS_TIMEOUT);
    KeSetEvent(&e, 0, FALSE);
    assert_int_equal(KeReadStateEvent(&e), 1);
    assert_int_equal(KeWaitForSingleObject(&e, Executive, KernelMode, FALSE, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(KeReadStateEvent(&e), 0);
}

static void test_wait_relative_timeout(void **state)
{
    (void)state;
    KEVENT e;
    KeInitializeEvent(&e, NotificationEvent, FALSE);
    LARGE_INTEGER t = {.QuadPart = MS(50)};
    LONGLONG start = now_ms();
    assert_int_equal(KeWaitForSingleObject(&e, Executive, KernelMode, FALSE, &t), STATUS_TIMEOUT);
    LONGLONG took = now_ms() - start;
    assert_true(took >= 45);
    assert_true(took < 2000);

    /* Absolute: now + 30 ms in system time. */
    LARGE_INTEGER abs;
    KeQuerySystemTime(&abs);
    abs.QuadPart += 30 * 10000;
    start = now_ms();
    assert_int_equal(KeWaitForSingleObject(&e, Executive, KernelMode, FALSE, &abs),
                     STATUS_TIMEOUT);
    assert_true(now_ms() - start >= 20);

    LARGE_INTEGER d = {.QuadPart = MS(20)};
    start = now_ms();
    assert_int_equal(KeDelayExecutionThread(KernelMode, FALSE, &d), STATUS_SUCCESS);
    assert_true(now_ms() - start >= 18);
}

static void test_wait_at_dispatch_is_a_finding_not_a_hang(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KEVENT e;
    KeInitializeEvent(&e, NotificationEvent, FALSE);
    KIRQL old = KeRaiseIrqlToDpcLevel();
    LONGLONG start = now_ms();
    assert_int_equal(KeWaitForSingleObject(&e, Executive, KernelMode, FALSE, NULL),
                     STATUS_TIMEOUT);
    assert_true(now_ms() - start < 1000);
    assert_int_equal(owfp_kernel_findings(), 1);
    char msg[128];
    owfp_kernel_last_finding(msg, sizeof(msg));
    assert_string_equal(msg, "IRQL violation: KeWaitForSingleObject at DISPATCH_LEVEL");
    /* A zero timeout is allowed at DISPATCH_LEVEL. */
    LARGE_INTEGER zero = {.QuadPart = 0};
    KeSetEvent(&e, 0, FALSE);
    assert_int_equal(KeWaitForSingleObject(&e, Executive, KernelMode, FALSE, &zero),
                     STATUS_SUCCESS);
    assert_int_equal(owfp_kernel_findings(), 1);
    KeLowerIrql(old);
    owfp_kernel_findings_reset();
}

/* ---- waiters on other threads ---------------------------------------------- */

struct waiter {
    KEVENT *e;
    LONGLONG timeout; /* 0 = forever */
    NTSTATUS st;
    LONG volatile *released;
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    LARGE_INTEGER t = {.QuadPart = w->timeout};
    w->st = KeWaitForSingleObject(w->e, Executive, KernelMode, FALSE, w->timeout ? &t : NULL);
    if (w->st == STATUS_SUCCESS && w->released)
        InterlockedIncrement(w->released);
    return NULL;
}

static void test_notification_releases_all_waiters(void **state)
{
    (void)state;
    KEVENT e;
    KeInitializeEvent(&e, NotificationEvent, FALSE);
    LONG volatile released = 0;
    pthread_t t[4];
    struct waiter w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct waiter){&e, 0, -1, &released};
        pthread_create(&t[i], NULL, wait_thread, &w[i]);
    }
    LARGE_INTEGER d = {.QuadPart = MS(20)};
    KeDelayExecutionThread(KernelMode, FALSE, &d);
    KeSetEvent(&e, 0, FALSE);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].st, STATUS_SUCCESS);
    }
    assert_int_equal(released, 4);
}

static void test_synchronization_releases_one_per_set(void **state)
{
    (void)state;
    KEVENT e;
    KeInitializeEvent(&e, SynchronizationEvent, FALSE);
    LONG volatile released = 0;
    pthread_t t[3];
    struct waiter w[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){&e, MS(3000), -1, &released};
        pthread_create(&t[i], NULL, wait_thread, &w[i]);
    }
    /* Give the waiters time to block: a set with nobody waiting would only
     * leave the event signaled. */
    LARGE_INTEGER d = {.QuadPart = MS(100)};
    KeDelayExecutionThread(KernelMode, FALSE, &d);
    KeSetEvent(&e, 0, FALSE);
    for (int i = 0; i < 200 && ReadAcquire(&released) < 1; i++)
        KeDelayExecutionThread(KernelMode, FALSE, &(LARGE_INTEGER){.QuadPart = MS(10)});
    KeDelayExecutionThread(KernelMode, FALSE, &(LARGE_INTEGER){.QuadPart = MS(50)});
    assert_int_equal(ReadAcquire(&released), 1);
    /* Two sets in a row with two waiters left release both. */
    KeSetEvent(&e, 0, FALSE);
    KeSetEvent(&e, 0, FALSE);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(released, 3);
    assert_int_equal(KeReadStateEvent(&e), 0);
}

/* ---- system threads ----------------------------------------------------------- */

static struct {
    KEVENT go;
    LONG volatile ran;
    KIRQL irql;
    PETHREAD self;
} st;

static VOID NTAPI system_thread(PVOID ctx)
{
    st.irql = KeGetCurrentIrql();
    st.self = PsGetCurrentThread();
    KeWaitForSingleObject(&st.go, Executive, KernelMode, FALSE, NULL);
    InterlockedIncrement(&st.ran);
    if (ctx)
        PsTerminateSystemThread(STATUS_SUCCESS);
    /* returning ends the thread too */
}

static void run_system_thread(bool terminate)
{
    memset(&st, 0, sizeof(st));
    KeInitializeEvent(&st.go, NotificationEvent, FALSE);
    HANDLE h = NULL;
    assert_int_equal(PsCreateSystemThread(&h, THREAD_ALL_ACCESS, NULL, NULL, NULL, system_thread,
                                          terminate ? (PVOID)1 : NULL),
                     STATUS_SUCCESS);
    PVOID obj = NULL;
    assert_int_equal(ObReferenceObjectByHandle(h, THREAD_ALL_ACCESS, *PsThreadType, KernelMode,
                                               &obj, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(ZwClose(h), STATUS_SUCCESS);
    assert_int_equal(ZwClose(h), STATUS_INVALID_HANDLE); /* closed already */
    LARGE_INTEGER short_wait = {.QuadPart = MS(20)};
    assert_int_equal(KeWaitForSingleObject(obj, Executive, KernelMode, FALSE, &short_wait),
                     STATUS_TIMEOUT); /* still running */
    assert_true(owfp_system_threads_running() >= 1);
    KeSetEvent(&st.go, 0, FALSE);
    assert_int_equal(KeWaitForSingleObject(obj, Executive, KernelMode, FALSE, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(st.ran, 1);
    assert_int_equal(st.irql, PASSIVE_LEVEL);
    assert_ptr_equal(st.self, obj);
    assert_int_equal(owfp_system_threads_running(), 0);
    /* Signaled for good: a second wait returns at once. */
    LARGE_INTEGER zero = {.QuadPart = 0};
    assert_int_equal(KeWaitForSingleObject(obj, Executive, KernelMode, FALSE, &zero),
                     STATUS_SUCCESS);
    ObDereferenceObject(obj);
}

static void test_system_thread_wait_on_object(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    run_system_thread(false);
    run_system_thread(true);
    assert_int_equal(owfp_kernel_findings(), 0);
    PVOID obj;
    assert_int_equal(ObReferenceObjectByHandle((HANDLE)&obj, 0, *PsThreadType, KernelMode, &obj,
                                               NULL),
                     STATUS_INVALID_HANDLE);
}

/* ---- work items ----------------------------------------------------------------- */

static struct {
    KEVENT done;
    KIRQL irql;
    PDEVICE_OBJECT device;
    PVOID context;
    bool other_thread;
    pthread_t queuer;
} wi;

static VOID NTAPI work_routine(PDEVICE_OBJECT device, PVOID context)
{
    wi.irql = KeGetCurrentIrql();
    wi.device = device;
    wi.other_thread = !pthread_equal(pthread_self(), wi.queuer);
    PIO_WORKITEM self = context;
    wi.context = context;
    IoFreeWorkItem(self); /* the usual pattern: the routine frees its item */
    KeSetEvent(&wi.done, 0, FALSE);
}

static VOID NTAPI work_routine_ex(PVOID io_object, PVOID context, PIO_WORKITEM item)
{
    wi.irql = KeGetCurrentIrql();
    wi.device = io_object;
    wi.context = context;
    (void)item;
    KeSetEvent(&wi.done, 0, FALSE);
}

/* A device for work items to name; IoDeleteDevice it at the end. */
static PDEVICE_OBJECT new_device(void)
{
    static DRIVER_OBJECT drv; /* the device points at its driver */
    PDEVICE_OBJECT dev;
    assert_int_equal(IoCreateDevice(&drv, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &dev),
                     STATUS_SUCCESS);
    return dev;
}

static void test_work_items(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    PDEVICE_OBJECT dev = new_device();
    memset(&wi, 0, sizeof(wi));
    KeInitializeEvent(&wi.done, SynchronizationEvent, FALSE);
    wi.queuer = pthread_self();
    unsigned long before = owfp_workitems_outstanding();
    PIO_WORKITEM item = IoAllocateWorkItem(dev);
    assert_non_null(item);
    assert_int_equal(owfp_workitems_outstanding(), before + 1);
    /* Queued at DISPATCH_LEVEL, run at PASSIVE_LEVEL elsewhere. */
    KIRQL old = KeRaiseIrqlToDpcLevel();
    IoQueueWorkItem(item, work_routine, DelayedWorkQueue, item);
    KeLowerIrql(old);
    assert_int_equal(KeWaitForSingleObject(&wi.done, Executive, KernelMode, FALSE, NULL),
                     STATUS_SUCCESS);
    assert_true(owfp_workitems_wait_idle(5000));
    assert_int_equal(wi.irql, PASSIVE_LEVEL);
    assert_ptr_equal(wi.device, dev);
    assert_ptr_equal(wi.context, item);
    assert_true(wi.other_thread);
    assert_int_equal(owfp_workitems_outstanding(), before);
    assert_int_equal(owfp_workitems_pending(), 0);

    /* Caller-allocated item with the Ex routine, queued twice in sequence. */
    PIO_WORKITEM mine = ExAllocatePool2(POOL_FLAG_NON_PAGED, IoSizeofWorkItem(), 'krWO');
    IoInitializeWorkItem(dev, mine);
    for (int round = 0; round < 2; round++) {
        IoQueueWorkItemEx(mine, work_routine_ex, NormalWorkQueue, (PVOID)(uintptr_t)(round + 7));
        KeWaitForSingleObject(&wi.done, Executive, KernelMode, FALSE, NULL);
        assert_true(owfp_workitems_wait_idle(5000));
        assert_ptr_equal(wi.context, (PVOID)(uintptr_t)(round + 7));
    }
    IoUninitializeWorkItem(mine);
    ExFreePoolWithTag(mine, 'krWO');
    assert_int_equal(owfp_workitems_outstanding(), before);
    assert_int_equal(owfp_kernel_findings(), 0);
    IoDeleteDevice(dev);
}

/* Scheduled mode (replaying a fuzz input): items wait until released, and
 * run one at a time in the order picked, each on a worker thread. */
static struct {
    KSPIN_LOCK lock;
    char order[8]; /* guarded by lock */
    int n;
    bool other_thread;
} sched;

static VOID NTAPI sched_routine(PDEVICE_OBJECT device, PVOID context)
{
    (void)device;
    KIRQL old;
    KeAcquireSpinLock(&sched.lock, &old);
    if (sched.n < (int)sizeof(sched.order) - 1)
        sched.order[sched.n++] = (char)(uintptr_t)context;
    sched.other_thread = !pthread_equal(pthread_self(), wi.queuer);
    KeReleaseSpinLock(&sched.lock, old);
}

static const char *sched_order(void)
{
    KIRQL old;
    KeAcquireSpinLock(&sched.lock, &old);
    static char copy[sizeof(sched.order)];
    memcpy(copy, sched.order, sizeof(copy));
    KeReleaseSpinLock(&sched.lock, old);
    return copy;
}

static void test_work_items_scheduled_run_when_and_as_released(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    PDEVICE_OBJECT dev = new_device();
    memset(&sched, 0, sizeof(sched));
    KeInitializeSpinLock(&sched.lock);
    wi.queuer = pthread_self();
    assert_false(owfp_workitems_run_one(0, 1000)); /* not in scheduled mode */

    owfp_workitems_set_scheduled(true);
    assert_false(owfp_workitems_run_one(0, 1000)); /* nothing queued */
    PIO_WORKITEM items[3];
    for (int i = 0; i < 3; i++) {
        items[i] = IoAllocateWorkItem(dev);
        assert_non_null(items[i]);
        IoQueueWorkItem(items[i], sched_routine, DelayedWorkQueue, (PVOID)(uintptr_t)('A' + i));
    }
    /* Held: given time, none runs on its own. */
    LARGE_INTEGER wait = {.QuadPart = MS(50)};
    KeDelayExecutionThread(KernelMode, FALSE, &wait);
    assert_string_equal(sched_order(), "");
    assert_int_equal(owfp_workitems_pending(), 3);

    assert_true(owfp_workitems_run_one(1, 5000)); /* B, done when this returns */
    assert_string_equal(sched_order(), "B");
    assert_true(sched.other_thread);
    assert_true(owfp_workitems_run_one(5, 5000)); /* 5 mod 2 queued (A, C): C */
    assert_string_equal(sched_order(), "BC");
    assert_true(owfp_workitems_wait_idle(5000)); /* runs what is left, oldest first */
    assert_string_equal(sched_order(), "BCA");
    assert_int_equal(owfp_workitems_pending(), 0);

    /* Leaving the mode lets a waiting item run by itself. */
    IoQueueWorkItem(items[0], sched_routine, DelayedWorkQueue, (PVOID)(uintptr_t)'D');
    owfp_workitems_set_scheduled(false);
    assert_true(owfp_workitems_wait_idle(5000));
    assert_string_equal(sched_order(), "BCAD");
    for (int i = 0; i < 3; i++)
        IoFreeWorkItem(items[i]);
    assert_int_equal(owfp_kernel_findings(), 0);
    IoDeleteDevice(dev);
}

/* ---- contention ------------------------------------------------------------------- */

#define THREADS 8
#define ROUNDS 20000

static struct {
    KSPIN_LOCK lock;
    long counter; /* guarded by lock */
    LONG volatile atomic;
    LIST_ENTRY list;
} shared;

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        if (i & 1) {
            KIRQL old;
            KeAcquireSpinLock(&shared.lock, &old);
            shared.counter++;
            KeReleaseSpinLock(&shared.lock, old);
        } else {
            KLOCK_QUEUE_HANDLE h;
            KeAcquireInStackQueuedSpinLock(&shared.lock, &h);
            shared.counter++;
            KeReleaseInStackQueuedSpinLock(&h);
        }
        InterlockedIncrement(&shared.atomic);
    }
    return NULL;
}

static void test_spinlock_and_interlocked_contention(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KeInitializeSpinLock(&shared.lock);
    shared.counter = 0;
    shared.atomic = 0;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(shared.counter, THREADS * ROUNDS);
    assert_int_equal(shared.atomic, THREADS * ROUNDS);
    assert_int_equal(owfp_kernel_findings(), 0);
}

static void *pool_hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        void *p = ExAllocatePool2(POOL_FLAG_NON_PAGED, (SIZE_T)(i % 64) + 1, 'hcnB');
        ExFreePoolWithTag(p, 'hcnB');
    }
    return NULL;
}

static void count_tag(uint32_t tag, uint64_t n, uint64_t bytes, void *ctx)
{
    (void)bytes;
    if (tag == 'hcnB')
        *(uint64_t *)ctx += n;
}

static void test_pool_from_many_threads(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, pool_hammer, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    uint64_t left = 0;
    owfp_pool_outstanding(count_tag, &left);
    assert_int_equal(left, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_notification_stays_set),
        cmocka_unit_test(test_event_synchronization_auto_resets),
        cmocka_unit_test(test_wait_relative_timeout),
        cmocka_unit_test(test_wait_at_dispatch_is_a_finding_not_a_hang),
        cmocka_unit_test(test_notification_releases_all_waiters),
        cmocka_unit_test(test_synchronization_releases_one_per_set),
        cmocka_unit_test(test_system_thread_wait_on_object),
        cmocka_unit_test(test_work_items),
        cmocka_unit_test(test_work_items_scheduled_run_when_and_as_released),
        cmocka_unit_test(test_spinlock_and_interlocked_contention),
        cmocka_unit_test(test_pool_from_many_threads),
    };
    return cmocka_run_group_tests(tests, quiet_setup, NULL);
}
