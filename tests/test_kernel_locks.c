/*
 * Locks that are not dispatcher objects: fast and guarded mutexes (IRQL
 * raise, try-acquire, the unsafe forms, misuse as findings, exclusion under
 * contention) and executive resources (shared and exclusive access, Wait
 * FALSE, recursion, writers not starved, the critical-region rule), with
 * critical and guarded regions. Built for the ThreadSanitizer run too.
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

static void assert_last_finding(const char *want)
{
    char msg[256];
    owfp_kernel_last_finding(msg, sizeof(msg));
    assert_string_equal(msg, want);
}

/* ---- critical and guarded regions ------------------------------------------------- */

static void test_regions_nest_and_disable_apcs(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    assert_false(KeAreApcsDisabled());
    KeEnterCriticalRegion();
    KeEnterCriticalRegion();
    assert_true(KeAreApcsDisabled());
    assert_false(KeAreAllApcsDisabled());
    KeLeaveCriticalRegion();
    assert_true(KeAreApcsDisabled());
    KeLeaveCriticalRegion();
    assert_false(KeAreApcsDisabled());
    KeEnterGuardedRegion();
    assert_true(KeAreAllApcsDisabled());
    KeLeaveGuardedRegion();
    assert_false(KeAreAllApcsDisabled());
    KIRQL old;
    KeRaiseIrql(APC_LEVEL, &old);
    assert_true(KeAreAllApcsDisabled());
    KeLowerIrql(old);
    assert_int_equal(owfp_kernel_findings(), 0);
    KeLeaveCriticalRegion();
    assert_int_equal(owfp_kernel_findings(), 1);
    assert_last_finding("KeLeaveCriticalRegion without KeEnterCriticalRegion");
    owfp_kernel_findings_reset();
}

/* ---- fast mutexes ----------------------------------------------------------------- */

static void test_fast_mutex_raises_to_apc_level(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    FAST_MUTEX m;
    ExInitializeFastMutex(&m);
    ExAcquireFastMutex(&m);
    assert_int_equal(KeGetCurrentIrql(), APC_LEVEL);
    assert_int_equal(m.Count, 0);
    assert_false(ExTryToAcquireFastMutex(&m)); /* not recursive */
    ExReleaseFastMutex(&m);
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    assert_int_equal(m.Count, 1);
    assert_true(ExTryToAcquireFastMutex(&m));
    assert_int_equal(KeGetCurrentIrql(), APC_LEVEL);
    ExReleaseFastMutex(&m);
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    /* The unsafe forms leave the IRQL alone, inside a critical region. */
    KeEnterCriticalRegion();
    ExAcquireFastMutexUnsafe(&m);
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    ExReleaseFastMutexUnsafe(&m);
    KeLeaveCriticalRegion();
    assert_int_equal(owfp_kernel_findings(), 1); /* the recursive try above */
    assert_last_finding("lock violation: ExTryToAcquireFastMutex on a mutex this thread already "
                        "holds");
    owfp_kernel_findings_reset();
}

static void test_fast_mutex_misuse_is_a_finding(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    FAST_MUTEX m;
    ExInitializeFastMutex(&m);
    ExReleaseFastMutex(&m);
    assert_last_finding("lock violation: ExReleaseFastMutex on a mutex that is not held");
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);

    /* Acquired above APC_LEVEL: recorded; the IRQL is not lowered. */
    KIRQL old = KeRaiseIrqlToDpcLevel();
    ExAcquireFastMutex(&m);
    assert_last_finding("IRQL violation: ExAcquireFastMutex at DISPATCH_LEVEL");
    assert_int_equal(KeGetCurrentIrql(), DISPATCH_LEVEL);
    ExReleaseFastMutex(&m);
    assert_int_equal(KeGetCurrentIrql(), DISPATCH_LEVEL);
    KeLowerIrql(old);
    assert_int_equal(owfp_kernel_findings(), 2);

    /* Again on the owner would deadlock: refused, IRQL restored. */
    ExAcquireFastMutex(&m);
    ExAcquireFastMutex(&m);
    assert_last_finding("lock violation: ExAcquireFastMutex on a mutex this thread already holds");
    assert_int_equal(KeGetCurrentIrql(), APC_LEVEL);
    ExReleaseFastMutex(&m);
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);

    /* Unsafe at PASSIVE_LEVEL outside a critical region. */
    ExAcquireFastMutexUnsafe(&m);
    assert_last_finding("lock violation: ExAcquireFastMutexUnsafe at PASSIVE_LEVEL outside a "
                        "critical or guarded region");
    ExReleaseFastMutexUnsafe(&m);

    /* Never initialized (zeroed memory). */
    FAST_MUTEX zeroed;
    memset(&zeroed, 0, sizeof(zeroed));
    ExAcquireFastMutex(&zeroed);
    assert_last_finding("lock violation: ExAcquireFastMutex on a mutex that is not initialized");
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    assert_int_equal(owfp_kernel_findings(), 5);
    owfp_kernel_findings_reset();
}

static void test_guarded_mutex_enters_guarded_region(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KGUARDED_MUTEX g;
    KeInitializeGuardedMutex(&g);
    KeAcquireGuardedMutex(&g);
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    assert_true(KeAreAllApcsDisabled());
    assert_false(KeTryToAcquireGuardedMutex(&g));
    KeReleaseGuardedMutex(&g);
    assert_false(KeAreAllApcsDisabled());
    assert_true(KeTryToAcquireGuardedMutex(&g));
    KeReleaseGuardedMutex(&g);
    KeEnterGuardedRegion();
    KeAcquireGuardedMutexUnsafe(&g);
    KeReleaseGuardedMutexUnsafe(&g);
    KeLeaveGuardedRegion();
    assert_false(KeAreApcsDisabled());
    assert_int_equal(owfp_kernel_findings(), 1); /* the recursive try */
    owfp_kernel_findings_reset();
}

#define CONTENDERS 4
#define ROUNDS 3000

static struct {
    FAST_MUTEX fast;
    KGUARDED_MUTEX guarded;
    long counter; /* protected by the mutex under test only */
    LONG volatile inside, overlaps, bad_irql;
} fm;

static void *fast_contend(void *arg)
{
    bool guarded = arg != NULL;
    for (int i = 0; i < ROUNDS; i++) {
        if (guarded)
            KeAcquireGuardedMutex(&fm.guarded);
        else
            ExAcquireFastMutex(&fm.fast);
        if (KeGetCurrentIrql() != (guarded ? PASSIVE_LEVEL : APC_LEVEL))
            InterlockedIncrement(&fm.bad_irql);
        if (InterlockedIncrement(&fm.inside) != 1)
            InterlockedIncrement(&fm.overlaps);
        fm.counter++;
        InterlockedDecrement(&fm.inside);
        if (guarded)
            KeReleaseGuardedMutex(&fm.guarded);
        else
            ExReleaseFastMutex(&fm.fast);
    }
    return NULL;
}

static void test_fast_mutex_exclusion_under_contention(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    for (int guarded = 0; guarded < 2; guarded++) {
        memset(&fm, 0, sizeof(fm));
        ExInitializeFastMutex(&fm.fast);
        KeInitializeGuardedMutex(&fm.guarded);
        pthread_t t[CONTENDERS];
        for (int i = 0; i < CONTENDERS; i++)
            pthread_create(&t[i], NULL, fast_contend, guarded ? (void *)1 : NULL);
        for (int i = 0; i < CONTENDERS; i++)
            pthread_join(t[i], NULL);
        assert_int_equal(fm.counter, CONTENDERS * ROUNDS);
        assert_int_equal(fm.overlaps, 0);
        assert_int_equal(fm.bad_irql, 0);
        PFAST_MUTEX m = guarded ? &fm.guarded : &fm.fast;
        assert_int_equal(m->Count, 1);
        assert_null(m->Owner);
    }
    assert_int_equal(owfp_kernel_findings(), 0);
}

/* ---- executive resources ----------------------------------------------------------- */

static void test_resource_shared_and_exclusive(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    unsigned long live = owfp_resources_live();
    ERESOURCE r;
    assert_int_equal(ExInitializeResourceLite(&r), STATUS_SUCCESS);
    assert_int_equal(owfp_resources_live(), live + 1);
    KeEnterCriticalRegion();
    assert_true(ExAcquireResourceSharedLite(&r, TRUE));
    assert_true(ExAcquireResourceSharedLite(&r, FALSE)); /* recursive */
    assert_int_equal(ExIsResourceAcquiredSharedLite(&r), 2);
    assert_false(ExIsResourceAcquiredExclusiveLite(&r));
    /* A shared owner asking for exclusive access would deadlock on Windows. */
    assert_false(ExAcquireResourceExclusiveLite(&r, TRUE));
    assert_int_equal(owfp_kernel_findings(), 1);
    assert_last_finding("lock violation: ExAcquireResourceExclusiveLite by a thread that holds "
                        "the resource shared (a deadlock on Windows)");
    ExReleaseResourceLite(&r);
    ExReleaseResourceLite(&r);
    assert_int_equal(ExIsResourceAcquiredSharedLite(&r), 0);

    assert_true(ExAcquireResourceExclusiveLite(&r, TRUE));
    assert_true(ExAcquireResourceExclusiveLite(&r, FALSE));
    assert_true(ExAcquireResourceSharedLite(&r, FALSE)); /* counts as exclusive */
    assert_true(ExIsResourceAcquiredExclusiveLite(&r));
    assert_int_equal(ExIsResourceAcquiredSharedLite(&r), 3);
    ExReleaseResourceLite(&r);
    ExConvertExclusiveToSharedLite(&r);
    assert_false(ExIsResourceAcquiredExclusiveLite(&r));
    assert_int_equal(ExIsResourceAcquiredSharedLite(&r), 2);
    ExReleaseResourceForThreadLite(&r, ExGetCurrentResourceThread());
    ExReleaseResourceLite(&r);
    KeLeaveCriticalRegion();
    assert_int_equal(owfp_kernel_findings(), 1);

    ExReleaseResourceLite(&r);
    assert_last_finding("lock violation: ExReleaseResourceLite on a resource the thread does not "
                        "hold");
    assert_int_equal(ExDeleteResourceLite(&r), STATUS_SUCCESS);
    assert_int_equal(owfp_resources_live(), live);
    assert_false(ExAcquireResourceSharedLite(&r, TRUE));
    assert_last_finding("lock violation: ExAcquireResourceSharedLite on an ERESOURCE that is not "
                        "initialized");
    owfp_kernel_findings_reset();
}

static void test_resource_needs_critical_region(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    ERESOURCE r;
    assert_int_equal(ExInitializeResourceLite(&r), STATUS_SUCCESS);
    assert_true(ExAcquireResourceExclusiveLite(&r, TRUE));
    assert_int_equal(owfp_kernel_findings(), 1);
    assert_last_finding("lock violation: ExAcquireResourceExclusiveLite with normal kernel APCs "
                        "enabled (call KeEnterCriticalRegion first)");
    ExReleaseResourceLite(&r);
    /* The combined calls enter and leave the region themselves. */
    assert_ptr_equal(ExEnterCriticalRegionAndAcquireResourceExclusive(&r), &r);
    assert_true(KeAreApcsDisabled());
    assert_true(ExIsResourceAcquiredExclusiveLite(&r));
    ExReleaseResourceAndLeaveCriticalRegion(&r);
    ExEnterCriticalRegionAndAcquireResourceShared(&r);
    assert_int_equal(ExIsResourceAcquiredSharedLite(&r), 1);
    ExReleaseResourceAndLeaveCriticalRegion(&r);
    assert_false(KeAreApcsDisabled());
    /* Above APC_LEVEL the call only tries. */
    KIRQL old = KeRaiseIrqlToDpcLevel();
    assert_true(ExAcquireResourceSharedLite(&r, TRUE));
    ExReleaseResourceLite(&r);
    KeLowerIrql(old);
    assert_int_equal(owfp_kernel_findings(), 2);
    assert_last_finding("IRQL violation: ExAcquireResourceSharedLite at DISPATCH_LEVEL");
    assert_int_equal(ExDeleteResourceLite(&r), STATUS_SUCCESS);
    owfp_kernel_findings_reset();
}

struct resource_user {
    PERESOURCE r;
    bool exclusive;
    BOOLEAN got;
    LONG volatile stage; /* 1 acquired, 2 may release, 3 done */
};

static void *resource_thread(void *arg)
{
    struct resource_user *u = arg;
    KeEnterCriticalRegion();
    u->got = u->exclusive ? ExAcquireResourceExclusiveLite(u->r, TRUE)
                          : ExAcquireResourceSharedLite(u->r, TRUE);
    InterlockedExchange(&u->stage, 1);
    while (ReadAcquire(&u->stage) != 2)
        sleep_ms(1);
    if (u->got)
        ExReleaseResourceLite(u->r);
    KeLeaveCriticalRegion();
    InterlockedExchange(&u->stage, 3);
    return NULL;
}

struct try_result {
    PERESOURCE r;
    BOOLEAN shared, starve;
};

/* From a thread that does not hold the resource. */
static void *try_shared_thread(void *arg)
{
    struct try_result *t = arg;
    KeEnterCriticalRegion();
    t->shared = ExAcquireResourceSharedLite(t->r, FALSE);
    if (t->shared)
        ExReleaseResourceLite(t->r);
    t->starve = ExAcquireSharedStarveExclusive(t->r, FALSE);
    if (t->starve)
        ExReleaseResourceLite(t->r);
    KeLeaveCriticalRegion();
    return NULL;
}

static void test_resource_waiters_across_threads(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    ERESOURCE r;
    ExInitializeResourceLite(&r);
    KeEnterCriticalRegion();
    assert_true(ExAcquireResourceSharedLite(&r, TRUE));

    /* Another reader gets in beside us. */
    struct resource_user reader = {&r, false, FALSE, 0};
    pthread_t tr;
    pthread_create(&tr, NULL, resource_thread, &reader);
    while (ReadAcquire(&reader.stage) != 1)
        sleep_ms(1);
    assert_true(reader.got);

    /* A writer waits for both readers ... */
    struct resource_user writer = {&r, true, FALSE, 0};
    pthread_t tw;
    pthread_create(&tw, NULL, resource_thread, &writer);
    for (int i = 0; i < 1000 && ExGetExclusiveWaiterCount(&r) != 1; i++)
        sleep_ms(1);
    assert_int_equal(ExGetExclusiveWaiterCount(&r), 1);
    /* ... and holds back new readers (Wait FALSE: refused at once), though
     * not one that holds it already, nor one that starves the writer. */
    assert_true(ExAcquireResourceSharedLite(&r, FALSE)); /* we hold it: granted */
    ExReleaseResourceLite(&r);
    struct try_result tried = {&r, TRUE, FALSE};
    pthread_t tt;
    pthread_create(&tt, NULL, try_shared_thread, &tried);
    pthread_join(tt, NULL);
    assert_false(tried.shared);
    assert_true(tried.starve);
    struct resource_user late = {&r, false, FALSE, 0};
    pthread_t tl;
    pthread_create(&tl, NULL, resource_thread, &late);
    for (int i = 0; i < 1000 && ExGetSharedWaiterCount(&r) != 1; i++)
        sleep_ms(1);
    assert_int_equal(ExGetSharedWaiterCount(&r), 1);
    assert_int_equal(ReadAcquire(&late.stage), 0);

    /* The readers leave: the writer goes first, then the late reader. */
    InterlockedExchange(&reader.stage, 2);
    ExReleaseResourceLite(&r);
    while (ReadAcquire(&writer.stage) != 1)
        sleep_ms(1);
    assert_true(writer.got);
    assert_int_equal(ReadAcquire(&late.stage), 0);
    assert_false(ExAcquireResourceSharedLite(&r, FALSE));
    assert_false(ExAcquireSharedStarveExclusive(&r, FALSE)); /* an exclusive owner: no */
    InterlockedExchange(&writer.stage, 2);
    while (ReadAcquire(&late.stage) != 1)
        sleep_ms(1);
    assert_true(late.got);
    InterlockedExchange(&late.stage, 2);
    pthread_join(tr, NULL);
    pthread_join(tw, NULL);
    pthread_join(tl, NULL);
    KeLeaveCriticalRegion();
    assert_int_equal(ExDeleteResourceLite(&r), STATUS_SUCCESS);
    assert_int_equal(owfp_kernel_findings(), 0);
}

static void test_resource_delete_while_held_is_refused(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    ERESOURCE r;
    ExInitializeResourceLite(&r);
    KeEnterCriticalRegion();
    ExAcquireResourceExclusiveLite(&r, TRUE);
    assert_int_equal(ExDeleteResourceLite(&r), STATUS_INVALID_DEVICE_STATE);
    assert_last_finding("lock violation: ExDeleteResourceLite on a resource that is held or "
                        "waited for");
    ExReleaseResourceLite(&r);
    KeLeaveCriticalRegion();
    assert_int_equal(ExReinitializeResourceLite(&r), STATUS_SUCCESS);
    assert_int_equal(ExDeleteResourceLite(&r), STATUS_SUCCESS);
    assert_int_equal(owfp_kernel_findings(), 1);
    owfp_kernel_findings_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regions_nest_and_disable_apcs),
        cmocka_unit_test(test_fast_mutex_raises_to_apc_level),
        cmocka_unit_test(test_fast_mutex_misuse_is_a_finding),
        cmocka_unit_test(test_guarded_mutex_enters_guarded_region),
        cmocka_unit_test(test_fast_mutex_exclusion_under_contention),
        cmocka_unit_test(test_resource_shared_and_exclusive),
        cmocka_unit_test(test_resource_needs_critical_region),
        cmocka_unit_test(test_resource_waiters_across_threads),
        cmocka_unit_test(test_resource_delete_while_held_is_refused),
    };
    return cmocka_run_group_tests(tests, quiet_setup, NULL);
}
