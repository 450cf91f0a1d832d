/*
 * Dispatcher objects beyond events: KeWaitForMultipleObjects (WaitAny,
 * WaitAll, timeouts, the documented limits), kernel mutexes (recursion,
 * ownership, exclusion under contention) and semaphores (counts, the limit,
 * how many waiters a release wakes), with waiters on real threads. Built for
 * the ThreadSanitizer run too.
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

static NTSTATUS wait_many(ULONG n, PVOID *objects, WAIT_TYPE type, LARGE_INTEGER *timeout,
                          PKWAIT_BLOCK blocks)
{
    return KeWaitForMultipleObjects(n, objects, type, Executive, KernelMode, FALSE, timeout,
                                    blocks);
}

static void assert_last_finding(const char *want)
{
    char msg[256];
    owfp_kernel_last_finding(msg, sizeof(msg));
    assert_string_equal(msg, want);
}

/* ---- KeWaitForMultipleObjects on one thread ------------------------------------ */

static void test_wait_any_returns_lowest_signaled_index(void **state)
{
    (void)state;
    KEVENT e0, e1, e2;
    KeInitializeEvent(&e0, NotificationEvent, FALSE);
    KeInitializeEvent(&e1, SynchronizationEvent, TRUE);
    KeInitializeEvent(&e2, NotificationEvent, TRUE);
    PVOID objects[] = {&e0, &e1, &e2};
    assert_int_equal(wait_many(3, objects, WaitAny, &zero_timeout, NULL), STATUS_WAIT_0 + 1);
    /* Only the object that satisfied the wait is acquired. */
    assert_int_equal(KeReadStateEvent(&e1), 0);
    assert_int_equal(KeReadStateEvent(&e2), 1);
    assert_int_equal(wait_many(3, objects, WaitAny, &zero_timeout, NULL), STATUS_WAIT_0 + 2);
    assert_int_equal(wait_many(3, objects, WaitAny, NULL, NULL), STATUS_WAIT_0 + 2);
    KeResetEvent(&e2);
    assert_int_equal(wait_many(3, objects, WaitAny, &zero_timeout, NULL), STATUS_TIMEOUT);
    LARGE_INTEGER t = {.QuadPart = MS(30)};
    LONGLONG start = (LONGLONG)KeQueryInterruptTime();
    assert_int_equal(wait_many(3, objects, WaitAny, &t, NULL), STATUS_TIMEOUT);
    assert_true((LONGLONG)KeQueryInterruptTime() - start >= 25 * 10000);
}

static void test_wait_all_takes_all_or_nothing(void **state)
{
    (void)state;
    KEVENT sync, notification;
    KSEMAPHORE sem;
    KeInitializeEvent(&sync, SynchronizationEvent, TRUE);
    KeInitializeEvent(&notification, NotificationEvent, FALSE);
    KeInitializeSemaphore(&sem, 1, 2);
    PVOID objects[] = {&sync, &sem, &notification};
    assert_int_equal(wait_many(3, objects, WaitAll, &zero_timeout, NULL), STATUS_TIMEOUT);
    /* Nothing was taken while one object was not signaled. */
    assert_int_equal(KeReadStateEvent(&sync), 1);
    assert_int_equal(KeReadStateSemaphore(&sem), 1);
    KeSetEvent(&notification, 0, FALSE);
    assert_int_equal(wait_many(3, objects, WaitAll, &zero_timeout, NULL), STATUS_SUCCESS);
    assert_int_equal(KeReadStateEvent(&sync), 0);
    assert_int_equal(KeReadStateSemaphore(&sem), 0);
    assert_int_equal(KeReadStateEvent(&notification), 1);
}

static void test_wait_multiple_limits_are_findings(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KEVENT e[MAXIMUM_WAIT_OBJECTS + 1];
    PVOID objects[MAXIMUM_WAIT_OBJECTS + 1];
    for (int i = 0; i <= MAXIMUM_WAIT_OBJECTS; i++) {
        KeInitializeEvent(&e[i], NotificationEvent, FALSE);
        objects[i] = &e[i];
    }
    KWAIT_BLOCK blocks[MAXIMUM_WAIT_OBJECTS + 1];

    /* More than THREAD_WAIT_OBJECTS needs a wait block array. */
    assert_int_equal(wait_many(THREAD_WAIT_OBJECTS + 1, objects, WaitAny, &zero_timeout, NULL),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(owfp_kernel_findings(), 1);
    assert_last_finding("KeWaitForMultipleObjects on 4 objects (1 to 64, more than 3 only with "
                        "a wait block array)");
    assert_int_equal(wait_many(THREAD_WAIT_OBJECTS, objects, WaitAny, &zero_timeout, NULL),
                     STATUS_TIMEOUT);
    assert_int_equal(wait_many(MAXIMUM_WAIT_OBJECTS + 1, objects, WaitAny, &zero_timeout, blocks),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(wait_many(0, objects, WaitAny, &zero_timeout, blocks),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(owfp_kernel_findings(), 3);

    /* 64 with wait blocks: the last one satisfies a WaitAny. */
    KeSetEvent(&e[MAXIMUM_WAIT_OBJECTS - 1], 0, FALSE);
    assert_int_equal(wait_many(MAXIMUM_WAIT_OBJECTS, objects, WaitAny, NULL, blocks),
                     STATUS_WAIT_63);

    /* The same object twice: fine for WaitAny, a bug check for WaitAll. */
    PVOID twice[] = {&e[0], &e[0]};
    KeSetEvent(&e[0], 0, FALSE);
    assert_int_equal(wait_many(2, twice, WaitAny, &zero_timeout, NULL), STATUS_WAIT_0);
    assert_int_equal(wait_many(2, twice, WaitAll, &zero_timeout, NULL), STATUS_INVALID_PARAMETER);
    assert_last_finding("KeWaitForMultipleObjects: WaitAll with object 1 also at index 0");
    assert_int_equal(wait_many(1, objects, WaitNotification, &zero_timeout, NULL),
                     STATUS_INVALID_PARAMETER);

    /* Something that is not a dispatcher object. */
    KDPC dpc;
    memset(&dpc, 0, sizeof(dpc));
    dpc.Type = 0x13;
    PVOID bad[] = {&e[0], &dpc};
    assert_int_equal(wait_many(2, bad, WaitAny, &zero_timeout, NULL), STATUS_INVALID_PARAMETER);
    assert_int_equal(KeWaitForSingleObject(&dpc, Executive, KernelMode, FALSE, &zero_timeout),
                     STATUS_INVALID_PARAMETER);
    assert_last_finding("KeWaitForSingleObject on an object that is not a dispatcher object "
                        "(event, mutex, semaphore, timer or thread)");
    assert_int_equal(owfp_kernel_findings(), 7);
    owfp_kernel_findings_reset();
}

static void test_wait_multiple_at_dispatch_polls(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KEVENT a, b;
    KeInitializeEvent(&a, NotificationEvent, FALSE);
    KeInitializeEvent(&b, NotificationEvent, FALSE);
    PVOID objects[] = {&a, &b};
    KIRQL old = KeRaiseIrqlToDpcLevel();
    assert_int_equal(wait_many(2, objects, WaitAny, &zero_timeout, NULL), STATUS_TIMEOUT);
    assert_int_equal(owfp_kernel_findings(), 0); /* a zero timeout is allowed */
    assert_int_equal(wait_many(2, objects, WaitAll, NULL, NULL), STATUS_TIMEOUT);
    assert_int_equal(owfp_kernel_findings(), 1);
    assert_last_finding("IRQL violation: KeWaitForMultipleObjects at DISPATCH_LEVEL");
    KeLowerIrql(old);
    owfp_kernel_findings_reset();
}

/* ---- waits satisfied by other threads ------------------------------------------- */

struct multi_waiter {
    ULONG n;
    PVOID *objects;
    WAIT_TYPE type;
    LONGLONG timeout; /* 0 = forever */
    PKMUTEX release_after; /* a mutex the wait acquired, released by the waiter */
    NTSTATUS st;
    LONG volatile done;
};

static void *multi_wait_thread(void *arg)
{
    struct multi_waiter *w = arg;
    LARGE_INTEGER t = {.QuadPart = w->timeout};
    w->st = wait_many(w->n, w->objects, w->type, w->timeout ? &t : NULL, NULL);
    if (w->release_after && w->st == STATUS_SUCCESS) {
        /* Visible to the main thread while the waiter still owns it. */
        InterlockedExchange(&w->done, 1);
        while (ReadAcquire(&w->done) != 2)
            sleep_ms(1);
        KeReleaseMutex(w->release_after, FALSE);
    }
    InterlockedExchange(&w->done, 3);
    return NULL;
}

static void test_wait_any_woken_by_another_thread(void **state)
{
    (void)state;
    KEVENT e[3];
    for (int i = 0; i < 3; i++)
        KeInitializeEvent(&e[i], SynchronizationEvent, FALSE);
    PVOID objects[] = {&e[0], &e[1], &e[2]};
    struct multi_waiter w = {3, objects, WaitAny, 0, NULL, -1, 0};
    pthread_t t;
    pthread_create(&t, NULL, multi_wait_thread, &w);
    sleep_ms(50);
    assert_int_equal(ReadAcquire(&w.done), 0);
    KeSetEvent(&e[2], 0, FALSE);
    pthread_join(t, NULL);
    assert_int_equal(w.st, STATUS_WAIT_0 + 2);
    /* The synchronization event went to the waiter, not back to signaled. */
    assert_int_equal(KeReadStateEvent(&e[2]), 0);

    struct multi_waiter late = {3, objects, WaitAny, MS(40), NULL, -1, 0};
    pthread_create(&t, NULL, multi_wait_thread, &late);
    pthread_join(t, NULL);
    assert_int_equal(late.st, STATUS_TIMEOUT);
}

static void test_wait_all_across_threads(void **state)
{
    (void)state;
    KEVENT e;
    KSEMAPHORE sem;
    KMUTEX m;
    KeInitializeEvent(&e, NotificationEvent, FALSE);
    KeInitializeSemaphore(&sem, 0, 1);
    KeInitializeMutex(&m, 0);
    PVOID objects[] = {&e, &sem, &m};
    struct multi_waiter w = {3, objects, WaitAll, 0, &m, -1, 0};
    pthread_t t;
    pthread_create(&t, NULL, multi_wait_thread, &w);
    sleep_ms(30);
    KeSetEvent(&e, 0, FALSE);
    sleep_ms(30);
    assert_int_equal(ReadAcquire(&w.done), 0); /* the semaphore is still at 0 */
    assert_int_equal(KeReadStateMutex(&m), 1); /* and the mutex not taken meanwhile */
    KeReleaseSemaphore(&sem, 0, 1, FALSE);
    while (ReadAcquire(&w.done) != 1)
        sleep_ms(1);
    assert_int_equal(w.st, STATUS_SUCCESS);
    assert_int_equal(KeReadStateSemaphore(&sem), 0);
    assert_int_equal(KeReadStateMutex(&m), 0); /* the waiter owns it now */
    assert_int_equal(KeWaitForSingleObject(&m, Executive, KernelMode, FALSE, &zero_timeout),
                     STATUS_TIMEOUT);
    InterlockedExchange(&w.done, 2);
    pthread_join(t, NULL);
    assert_int_equal(KeReadStateMutex(&m), 1);
    assert_int_equal(KeWaitForSingleObject(&m, Executive, KernelMode, FALSE, &zero_timeout),
                     STATUS_SUCCESS);
    KeReleaseMutex(&m, FALSE);
}

/* ---- mutexes ------------------------------------------------------------------------ */

static void test_mutex_recursive_and_state(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KMUTEX m;
    KeInitializeMutex(&m, 0);
    assert_int_equal(KeReadStateMutex(&m), 1);
    assert_int_equal(KeWaitForMutexObject(&m, Executive, KernelMode, FALSE, NULL), STATUS_SUCCESS);
    assert_int_equal(KeReadStateMutex(&m), 0);
    /* The owner gets in again, and must release as often. */
    assert_int_equal(KeWaitForSingleObject(&m, Executive, KernelMode, FALSE, &zero_timeout),
                     STATUS_SUCCESS);
    assert_int_equal(KeReadStateMutex(&m), -1);
    assert_int_equal(KeReleaseMutex(&m, FALSE), -1);
    assert_int_equal(KeReadStateMutex(&m), 0);
    assert_int_equal(KeReleaseMutex(&m, FALSE), 0);
    assert_int_equal(KeReadStateMutex(&m), 1);
    assert_ptr_equal(m.OwnerThread, NULL);
    assert_int_equal(owfp_kernel_findings(), 0);
    assert_int_equal(KeReleaseMutex(&m, FALSE), 1);
    assert_int_equal(owfp_kernel_findings(), 1);
    assert_last_finding("lock violation: KeReleaseMutex on a mutex that is not held");
    assert_int_equal(KeReadStateMutex(&m), 1);
    owfp_kernel_findings_reset();
}

static void *hold_mutex_thread(void *arg)
{
    struct multi_waiter *w = arg;
    w->st = KeWaitForSingleObject(w->release_after, Executive, KernelMode, FALSE, NULL);
    InterlockedExchange(&w->done, 1);
    while (ReadAcquire(&w->done) != 2)
        sleep_ms(1);
    KeReleaseMutex(w->release_after, FALSE);
    return NULL;
}

static void test_mutex_owned_by_another_thread(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KMUTEX m;
    KeInitializeMutex(&m, 0);
    struct multi_waiter w = {0, NULL, WaitAny, 0, &m, -1, 0};
    pthread_t t;
    pthread_create(&t, NULL, hold_mutex_thread, &w);
    while (ReadAcquire(&w.done) != 1)
        sleep_ms(1);
    assert_int_equal(KeWaitForSingleObject(&m, Executive, KernelMode, FALSE, &zero_timeout),
                     STATUS_TIMEOUT);
    assert_int_equal(KeReleaseMutex(&m, FALSE), 0);
    assert_last_finding("lock violation: KeReleaseMutex on a mutex held by another thread");
    assert_int_equal(KeReadStateMutex(&m), 0);
    InterlockedExchange(&w.done, 2);
    /* Handed over when the owner releases it. */
    assert_int_equal(KeWaitForSingleObject(&m, Executive, KernelMode, FALSE, NULL),
                     STATUS_SUCCESS);
    pthread_join(t, NULL);
    assert_int_equal(KeReleaseMutex(&m, FALSE), 0);
    assert_int_equal(owfp_kernel_findings(), 1);
    owfp_kernel_findings_reset();
}

#define CONTENDERS 4
#define ROUNDS 2000

static struct {
    KMUTEX m;
    long counter; /* plain: only the mutex protects it */
    LONG volatile inside;
    LONG volatile overlaps;
} contention;

static void *contend_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        KeWaitForSingleObject(&contention.m, Executive, KernelMode, FALSE, NULL);
        if (InterlockedIncrement(&contention.inside) != 1)
            InterlockedIncrement(&contention.overlaps);
        contention.counter++;
        InterlockedDecrement(&contention.inside);
        KeReleaseMutex(&contention.m, FALSE);
    }
    return NULL;
}

static void test_mutex_exclusion_under_contention(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    memset(&contention, 0, sizeof(contention));
    KeInitializeMutex(&contention.m, 0);
    pthread_t t[CONTENDERS];
    for (int i = 0; i < CONTENDERS; i++)
        pthread_create(&t[i], NULL, contend_thread, NULL);
    for (int i = 0; i < CONTENDERS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(contention.counter, CONTENDERS * ROUNDS);
    assert_int_equal(contention.overlaps, 0);
    assert_int_equal(KeReadStateMutex(&contention.m), 1);
    assert_int_equal(owfp_kernel_findings(), 0);
}

/* ---- semaphores ---------------------------------------------------------------------- */

static void test_semaphore_counts_and_limit(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KSEMAPHORE s;
    KeInitializeSemaphore(&s, 2, 3);
    assert_int_equal(KeReadStateSemaphore(&s), 2);
    assert_int_equal(KeWaitForSingleObject(&s, Executive, KernelMode, FALSE, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(KeWaitForSingleObject(&s, Executive, KernelMode, FALSE, &zero_timeout),
                     STATUS_SUCCESS);
    assert_int_equal(KeWaitForSingleObject(&s, Executive, KernelMode, FALSE, &zero_timeout),
                     STATUS_TIMEOUT);
    assert_int_equal(KeReleaseSemaphore(&s, IO_NO_INCREMENT, 1, FALSE), 0);
    assert_int_equal(KeReleaseSemaphore(&s, IO_NO_INCREMENT, 2, FALSE), 1);
    assert_int_equal(KeReadStateSemaphore(&s), 3);
    assert_int_equal(owfp_kernel_findings(), 0);
    /* Above the limit: Windows raises STATUS_SEMAPHORE_LIMIT_EXCEEDED. */
    assert_int_equal(KeReleaseSemaphore(&s, IO_NO_INCREMENT, 1, FALSE), 3);
    assert_int_equal(KeReadStateSemaphore(&s), 3);
    assert_int_equal(owfp_kernel_findings(), 1);
    assert_last_finding("KeReleaseSemaphore: count 3 + 1 exceeds the limit 3 "
                        "(STATUS_SEMAPHORE_LIMIT_EXCEEDED)");
    assert_int_equal(KeReleaseSemaphore(&s, IO_NO_INCREMENT, 0, FALSE), 3);
    assert_int_equal(owfp_kernel_findings(), 2);
    owfp_kernel_findings_reset();
}

struct sem_waiter {
    PKSEMAPHORE s;
    NTSTATUS st;
    LONG volatile *released;
};

static void *sem_wait_thread(void *arg)
{
    struct sem_waiter *w = arg;
    LARGE_INTEGER t = {.QuadPart = MS(5000)};
    w->st = KeWaitForSingleObject(w->s, Executive, KernelMode, FALSE, &t);
    if (w->st == STATUS_SUCCESS)
        InterlockedIncrement(w->released);
    return NULL;
}

static void test_semaphore_release_wakes_that_many(void **state)
{
    (void)state;
    KSEMAPHORE s;
    KeInitializeSemaphore(&s, 0, 10);
    LONG volatile released = 0;
    pthread_t t[4];
    struct sem_waiter w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct sem_waiter){&s, -1, &released};
        pthread_create(&t[i], NULL, sem_wait_thread, &w[i]);
    }
    sleep_ms(100); /* all four blocked */
    assert_int_equal(KeReleaseSemaphore(&s, 0, 2, FALSE), 0);
    for (int i = 0; i < 500 && ReadAcquire(&released) < 2; i++)
        sleep_ms(1);
    sleep_ms(50);
    assert_int_equal(ReadAcquire(&released), 2);
    assert_int_equal(KeReadStateSemaphore(&s), 0); /* the units went to the waiters */
    KeReleaseSemaphore(&s, 0, 3, FALSE);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].st, STATUS_SUCCESS);
    }
    assert_int_equal(released, 4);
    assert_int_equal(KeReadStateSemaphore(&s), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_any_returns_lowest_signaled_index),
        cmocka_unit_test(test_wait_all_takes_all_or_nothing),
        cmocka_unit_test(test_wait_multiple_limits_are_findings),
        cmocka_unit_test(test_wait_multiple_at_dispatch_polls),
        cmocka_unit_test(test_wait_any_woken_by_another_thread),
        cmocka_unit_test(test_wait_all_across_threads),
        cmocka_unit_test(test_mutex_recursive_and_state),
        cmocka_unit_test(test_mutex_owned_by_another_thread),
        cmocka_unit_test(test_mutex_exclusion_under_contention),
        cmocka_unit_test(test_semaphore_counts_and_limit),
        cmocka_unit_test(test_semaphore_release_wakes_that_many),
    };
    return cmocka_run_group_tests(tests, quiet_setup, NULL);
}
