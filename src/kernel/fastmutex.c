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

/* The unsafe forms leave the IRQL alone: the caller must keep APCs off.
 * Fast and guarded mutexes share them. */
static void acquire_unsafe(PFAST_MUTEX m, const char *api)
{
    if (!initialized(m, api))
        return;
    if (owfp_irql_check_max(APC_LEVEL, api) && !KeAreApcsDisabled())
        owfp_kernel_finding("lock violation: %s at PASSIVE_LEVEL outside a critical or guarded "
                            "region",
                            api);
    take(m, true, api);
}

static void release_unsafe(PFAST_MUTEX m, const char *api)
{
    if (initialized(m, api))
        give(m, api);
}

VOID NTAPI ExInitializeFastMutex(PFAST_MUTEX FastMutex)
{
    init(FastMutex);
}

/* A fast mutex raises to APC_LEVEL for as long as it is held. */
static bool acquire_fast(PFAST_MUTEX m, bool wait, const char *api)
{
    if (!initialized(m, api))
        return false;
    owfp_irql_check_max(APC_LEVEL, api);
    KIRQL old = owfp_irql;
    if (old < APC_LEVEL)
        owfp_irql = APC_LEVEL;
    if (!take(m, wait, api)) {
        owfp_irql = old;
        return false;
    }
    m->OldIrql = old;
    return true;
}

VOID FASTCALL ExAcquireFastMutex(PFAST_MUTEX FastMutex)
{
    acquire_fast(FastMutex, true, "ExAcquireFastMutex");
}

BOOLEAN FASTCALL ExTryToAcquireFastMutex(PFAST_MUTEX FastMutex)
{
    return acquire_fast(FastMutex, false, "ExTryToAcquireFastMutex");
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
        owfp_irql_violation(api);
    owfp_irql = old;
}

VOID FASTCALL ExAcquireFastMutexUnsafe(PFAST_MUTEX FastMutex)
{
    acquire_unsafe(FastMutex, "ExAcquireFastMutexUnsafe");
}

VOID FASTCALL ExReleaseFastMutexUnsafe(PFAST_MUTEX FastMutex)
{
    release_unsafe(FastMutex, "ExReleaseFastMutexUnsafe");
}

VOID FASTCALL KeInitializeGuardedMutex(PKGUARDED_MUTEX Mutex)
{
    init(Mutex);
}

/* A guarded mutex holds a guarded region for as long as it is held. */
static bool acquire_guarded(PKGUARDED_MUTEX m, bool wait, const char *api)
{
    if (!initialized(m, api))
        return false;
    owfp_irql_check_max(APC_LEVEL, api);
    KeEnterGuardedRegion();
    if (take(m, wait, api))
        return true;
    KeLeaveGuardedRegion();
    return false;
}

VOID FASTCALL KeAcquireGuardedMutex(PKGUARDED_MUTEX Mutex)
{
    acquire_guarded(Mutex, true, "KeAcquireGuardedMutex");
}

BOOLEAN FASTCALL KeTryToAcquireGuardedMutex(PKGUARDED_MUTEX Mutex)
{
    return acquire_guarded(Mutex, false, "KeTryToAcquireGuardedMutex");
}

VOID FASTCALL KeReleaseGuardedMutex(PKGUARDED_MUTEX Mutex)
{
    if (initialized(Mutex, "KeReleaseGuardedMutex") && give(Mutex, "KeReleaseGuardedMutex"))
        KeLeaveGuardedRegion();
}

VOID FASTCALL KeAcquireGuardedMutexUnsafe(PKGUARDED_MUTEX Mutex)
{
    acquire_unsafe(Mutex, "KeAcquireGuardedMutexUnsafe");
}

VOID FASTCALL KeReleaseGuardedMutexUnsafe(PKGUARDED_MUTEX Mutex)
{
    release_unsafe(Mutex, "KeReleaseGuardedMutexUnsafe");
}
