/*
 * Fast mutexes and guarded mutexes (one structure, as since Windows 8).
 *
 * Count is 1 when free. Each acquirer decrements it: the one that takes it
 * from 1 to 0 owns the mutex, every other one waits on the synchronization
 * event. Each release increments it and, when that shows a waiter, sets the
 * event once. The hand-off cannot be lost: a set synchronization event that
 * nobody waits on yet stays signaled for the waiter about to arrive.
 *
 * The IRQL is only a record here, so holding one at DISPATCH_LEVEL would
 * not deadlock anything; it is still a finding, as on Windows.
 */
#include "kernel/dispatcher.h"

static void init(PFAST_MUTEX m)
{
    m->Count = 1;
    m->Owner = NULL;
    m->Contention = 0;
    m->OldIrql = 0;
    KeInitializeEvent(&m->Event, SynchronizationEvent, FALSE);
}

/* A zeroed, never initialized mutex would make its first acquirer wait
 * forever; its event's Size is 0, which is how it is caught. */
static bool initialized(PFAST_MUTEX m, const char *api)
{
    if (m && m->Event.Header.Type == EventSynchronizationObject &&
        m->Event.Header.Size == sizeof(KEVENT) / sizeof(LONG))
        return true;
    owfp_kernel_finding("lock violation: %s on a mutex that is not initialized", api);
    return false;
}

static uintptr_t owner(PFAST_MUTEX m)
{
    return (uintptr_t)__atomic_load_n(&m->Owner, __ATOMIC_RELAXED);
}

/* True once the mutex is this thread's. Taking it again would deadlock on
 * Windows: a finding, and the mutex stays as it is. */
static bool take(PFAST_MUTEX m, bool wait, const char *api)
{
    uintptr_t me = owfp_thread_token();
    if (owner(m) == me) {
        owfp_kernel_finding("lock violation: %s on a mutex this thread already holds", api);
        return false;
    }
    if (!wait) {
        LONG free = 1;
        if (!__atomic_compare_exchange_n(&m->Count, &free, 0, false, __ATOMIC_ACQUIRE,
                                         __ATOMIC_RELAXED))
            return false;
    } else if (__atomic_sub_fetch(&m->Count, 1, __ATOMIC_ACQ_REL) < 0) {
        __atomic_add_fetch(&m->Contention, 1, __ATOMIC_RELAXED);
        DISPATCHER_HEADER *h = &m->Event.Header;
        owfp_dispatcher_wait(1, &h, false, NULL, false, api);
    }
    __atomic_store_n(&m->Owner, (PVOID)me, __ATOMIC_RELAXED);
    return true;
}

static bool give(PFAST_MUTEX m, const char *api)
{
    uintptr_t who = owner(m);
    if (who != owfp_thread_token()) {
        owfp_kernel_finding("lock violation: %s on a mutex %s", api,
                            who ? "held by another thread" : "that is not held");
        return false;
    }
    __atomic_store_n(&m->Owner, NULL, __ATOMIC_RELAXED);
    if (__atomic_add_fetch(&m->Count, 1, __ATOMIC_ACQ_REL) < 1)
        KeSetEvent(&m->Event, IO_NO_INCREMENT, FALSE);
    return true;
}

/* The unsafe forms leave the IRQL alone: the caller must keep APCs off. */
static void check_unsafe(const char *api)
{
    if (!owfp_irql_check_max(APC_LEVEL, api))
        return;
    if (!KeAreApcsDisabled())
        owfp_kernel_finding("lock violation: %s at PASSIVE_LEVEL outside a critical or guarded "
                            "region",
                            api);
}

VOID NTAPI ExInitializeFastMutex(PFAST_MUTEX FastMutex)
{
    init(FastMutex);
}

VOID FASTCALL ExAcquireFastMutex(PFAST_MUTEX FastMutex)
{
    const char *api = "ExAcquireFastMutex";
    if (!initialized(FastMutex, api))
        return;
    owfp_irql_check_max(APC_LEVEL, api);
    KIRQL old = owfp_irql;
    if (old < APC_LEVEL)
        owfp_irql = APC_LEVEL;
    if (!take(FastMutex, true, api)) {
        owfp_irql = old;
        return;
    }
    FastMutex->OldIrql = old;
}

BOOLEAN FASTCALL ExTryToAcquireFastMutex(PFAST_MUTEX FastMutex)
{
    const char *api = "ExTryToAcquireFastMutex";
    if (!initialized(FastMutex, api))
        return FALSE;
    owfp_irql_check_max(APC_LEVEL, api);
    KIRQL old = owfp_irql;
    if (!take(FastMutex, false, api))
        return FALSE;
    if (old < APC_LEVEL)
        owfp_irql = APC_LEVEL;
    FastMutex->OldIrql = old;
    return TRUE;
}

VOID FASTCALL ExReleaseFastMutex(PFAST_MUTEX FastMutex)
{
    const char *api = "ExReleaseFastMutex";
    if (!initialized(FastMutex, api))
        return;
    KIRQL old = (KIRQL)FastMutex->OldIrql; /* the next owner overwrites it */
    if (!give(FastMutex, api))
        return;
    if (owfp_irql != APC_LEVEL && !(old > APC_LEVEL && owfp_irql == old))
        owfp_kernel_finding("IRQL violation: ExReleaseFastMutex at %s", owfp_irql_name(owfp_irql));
    owfp_irql = old;
}

VOID FASTCALL ExAcquireFastMutexUnsafe(PFAST_MUTEX FastMutex)
{
    const char *api = "ExAcquireFastMutexUnsafe";
    if (!initialized(FastMutex, api))
        return;
    check_unsafe(api);
    take(FastMutex, true, api);
}

VOID FASTCALL ExReleaseFastMutexUnsafe(PFAST_MUTEX FastMutex)
{
    if (initialized(FastMutex, "ExReleaseFastMutexUnsafe"))
        give(FastMutex, "ExReleaseFastMutexUnsafe");
}

VOID FASTCALL KeInitializeGuardedMutex(PKGUARDED_MUTEX Mutex)
{
    init(Mutex);
}

VOID FASTCALL KeAcquireGuardedMutex(PKGUARDED_MUTEX Mutex)
{
    const char *api = "KeAcquireGuardedMutex";
    if (!initialized(Mutex, api))
        return;
    owfp_irql_check_max(APC_LEVEL, api);
    KeEnterGuardedRegion();
    if (!take(Mutex, true, api))
        KeLeaveGuardedRegion();
}

BOOLEAN FASTCALL KeTryToAcquireGuardedMutex(PKGUARDED_MUTEX Mutex)
{
    const char *api = "KeTryToAcquireGuardedMutex";
    if (!initialized(Mutex, api))
        return FALSE;
    owfp_irql_check_max(APC_LEVEL, api);
    KeEnterGuardedRegion();
    if (take(Mutex, false, api))
        return TRUE;
    KeLeaveGuardedRegion();
    return FALSE;
}

VOID FASTCALL KeReleaseGuardedMutex(PKGUARDED_MUTEX Mutex)
{
    if (initialized(Mutex, "KeReleaseGuardedMutex") && give(Mutex, "KeReleaseGuardedMutex"))
        KeLeaveGuardedRegion();
}

VOID FASTCALL KeAcquireGuardedMutexUnsafe(PKGUARDED_MUTEX Mutex)
{
    const char *api = "KeAcquireGuardedMutexUnsafe";
    if (!initialized(Mutex, api))
        return;
    check_unsafe(api);
    take(Mutex, true, api);
}

VOID FASTCALL KeReleaseGuardedMutexUnsafe(PKGUARDED_MUTEX Mutex)
{
    if (initialized(Mutex, "KeReleaseGuardedMutexUnsafe"))
        give(Mutex, "KeReleaseGuardedMutexUnsafe");
}
