/*
 * Spin locks. The lock word holds the owner thread's token, so a release by
 * a thread that does not hold the lock is caught (Windows would corrupt the
 * lock or bug-check). Queued spin locks share the same word: mixing the two
 * kinds on one lock is not allowed on Windows either, and FIFO hand-off is
 * not needed for correctness.
 */
#include <sched.h>

#include "kernel/kernel.h"

static _Thread_local char token_site;

uintptr_t owfp_thread_token(void)
{
    return (uintptr_t)&token_site;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static bool try_take(PKSPIN_LOCK lock, uintptr_t me)
{
    ULONG_PTR expected = 0;
    return __atomic_compare_exchange_n(lock, &expected, me, false, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

static void take(PKSPIN_LOCK lock, uintptr_t me)
{
    /* A holder can be preempted in user space, so spinning gives way to the
     * scheduler after a short while instead of burning the time slice. */
    for (unsigned spins = 0; !try_take(lock, me); spins++) {
        while (__atomic_load_n(lock, __ATOMIC_RELAXED) != 0) {
            if (++spins < 128)
                cpu_relax();
            else
                sched_yield();
        }
    }
}

void owfp_spin_raw_acquire(PKSPIN_LOCK lock)
{
    take(lock, owfp_thread_token());
}

void owfp_spin_raw_release(PKSPIN_LOCK lock)
{
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

/* Takes the lock unless this thread already holds it: that would deadlock
 * on Windows; here it is a finding and the lock stays as it is. */
static bool acquire_checked(PKSPIN_LOCK lock, const char *api)
{
    uintptr_t me = owfp_thread_token();
    if (__atomic_load_n(lock, __ATOMIC_RELAXED) == me) {
        owfp_kernel_finding("lock violation: %s on a spin lock this thread already holds", api);
        return false;
    }
    take(lock, me);
    return true;
}

/* Releases only a lock this thread holds; anything else is a finding. */
static void release_checked(PKSPIN_LOCK lock, const char *api)
{
    ULONG_PTR owner = __atomic_load_n(lock, __ATOMIC_RELAXED);
    if (owner == owfp_thread_token()) {
        owfp_spin_raw_release(lock);
        return;
    }
    owfp_kernel_finding("lock violation: %s on a spin lock %s", api,
                        owner ? "held by another thread" : "that is not held");
}

/* The acquiring forms that raise: to DISPATCH_LEVEL from at most there. */
static KIRQL raise_to_dpc(const char *api)
{
    owfp_irql_check_max(DISPATCH_LEVEL, api);
    KIRQL old = owfp_irql;
    owfp_irql = DISPATCH_LEVEL;
    return old;
}

/* The AtDpcLevel forms leave the IRQL alone: the caller must be there. */
static void check_at_dpc(const char *api)
{
    if (owfp_irql < DISPATCH_LEVEL)
        owfp_irql_violation(api);
}

/* A handle whose lock was not taken releases nothing later. */
static void queue_acquire(PKSPIN_LOCK lock, PKLOCK_QUEUE_HANDLE handle, KIRQL old,
                          const char *api)
{
    handle->OldIrql = old;
    handle->LockQueue.Next = NULL;
    handle->LockQueue.Lock = acquire_checked(lock, api) ? lock : NULL;
}

static void queue_release(PKLOCK_QUEUE_HANDLE handle, const char *api)
{
    if (handle->LockQueue.Lock)
        release_checked(handle->LockQueue.Lock, api);
    handle->LockQueue.Lock = NULL;
}

VOID NTAPI KeInitializeSpinLock(PKSPIN_LOCK SpinLock)
{
    __atomic_store_n(SpinLock, 0, __ATOMIC_RELAXED);
}

KIRQL NTAPI KeAcquireSpinLockRaiseToDpc(PKSPIN_LOCK SpinLock)
{
    KIRQL old = raise_to_dpc("KeAcquireSpinLock");
    acquire_checked(SpinLock, "KeAcquireSpinLock");
    return old;
}

VOID NTAPI KeReleaseSpinLock(PKSPIN_LOCK SpinLock, KIRQL NewIrql)
{
    release_checked(SpinLock, "KeReleaseSpinLock");
    KeLowerIrql(NewIrql);
}

VOID NTAPI KeAcquireSpinLockAtDpcLevel(PKSPIN_LOCK SpinLock)
{
    check_at_dpc("KeAcquireSpinLockAtDpcLevel");
    acquire_checked(SpinLock, "KeAcquireSpinLockAtDpcLevel");
}

VOID NTAPI KeReleaseSpinLockFromDpcLevel(PKSPIN_LOCK SpinLock)
{
    release_checked(SpinLock, "KeReleaseSpinLockFromDpcLevel");
}

BOOLEAN NTAPI KeTryToAcquireSpinLockAtDpcLevel(PKSPIN_LOCK SpinLock)
{
    check_at_dpc("KeTryToAcquireSpinLockAtDpcLevel");
    return try_take(SpinLock, owfp_thread_token());
}

BOOLEAN NTAPI KeTestSpinLock(PKSPIN_LOCK SpinLock)
{
    return __atomic_load_n(SpinLock, __ATOMIC_RELAXED) == 0;
}

VOID NTAPI KeAcquireInStackQueuedSpinLock(PKSPIN_LOCK SpinLock, PKLOCK_QUEUE_HANDLE LockHandle)
{
    const char *api = "KeAcquireInStackQueuedSpinLock";
    queue_acquire(SpinLock, LockHandle, raise_to_dpc(api), api);
}

VOID NTAPI KeReleaseInStackQueuedSpinLock(PKLOCK_QUEUE_HANDLE LockHandle)
{
    queue_release(LockHandle, "KeReleaseInStackQueuedSpinLock");
    KeLowerIrql(LockHandle->OldIrql);
}

VOID NTAPI KeAcquireInStackQueuedSpinLockAtDpcLevel(PKSPIN_LOCK SpinLock,
                                                    PKLOCK_QUEUE_HANDLE LockHandle)
{
    const char *api = "KeAcquireInStackQueuedSpinLockAtDpcLevel";
    check_at_dpc(api);
    queue_acquire(SpinLock, LockHandle, owfp_irql, api);
}

VOID NTAPI KeReleaseInStackQueuedSpinLockFromDpcLevel(PKLOCK_QUEUE_HANDLE LockHandle)
{
    queue_release(LockHandle, "KeReleaseInStackQueuedSpinLockFromDpcLevel");
}

/* ---- interlocked list helpers ------------------------------------------- */

PLIST_ENTRY NTAPI ExInterlockedInsertHeadList(PLIST_ENTRY ListHead, PLIST_ENTRY ListEntry,
                                              PKSPIN_LOCK Lock)
{
    owfp_spin_raw_acquire(Lock);
    PLIST_ENTRY first = IsListEmpty(ListHead) ? NULL : ListHead->Flink;
    InsertHeadList(ListHead, ListEntry);
    owfp_spin_raw_release(Lock);
    return first;
}

PLIST_ENTRY NTAPI ExInterlockedInsertTailList(PLIST_ENTRY ListHead, PLIST_ENTRY ListEntry,
                                              PKSPIN_LOCK Lock)
{
    owfp_spin_raw_acquire(Lock);
    PLIST_ENTRY last = IsListEmpty(ListHead) ? NULL : ListHead->Blink;
    InsertTailList(ListHead, ListEntry);
    owfp_spin_raw_release(Lock);
    return last;
}

PLIST_ENTRY NTAPI ExInterlockedRemoveHeadList(PLIST_ENTRY ListHead, PKSPIN_LOCK Lock)
{
    owfp_spin_raw_acquire(Lock);
    PLIST_ENTRY e = IsListEmpty(ListHead) ? NULL : RemoveHeadList(ListHead);
    owfp_spin_raw_release(Lock);
    return e;
}

PSINGLE_LIST_ENTRY NTAPI ExInterlockedPushEntryList(PSINGLE_LIST_ENTRY ListHead,
                                                    PSINGLE_LIST_ENTRY ListEntry,
                                                    PKSPIN_LOCK Lock)
{
    owfp_spin_raw_acquire(Lock);
    PSINGLE_LIST_ENTRY first = ListHead->Next;
    PushEntryList(ListHead, ListEntry);
    owfp_spin_raw_release(Lock);
    return first;
}

PSINGLE_LIST_ENTRY NTAPI ExInterlockedPopEntryList(PSINGLE_LIST_ENTRY ListHead, PKSPIN_LOCK Lock)
{
    owfp_spin_raw_acquire(Lock);
    PSINGLE_LIST_ENTRY e = PopEntryList(ListHead);
    owfp_spin_raw_release(Lock);
    return e;
}
