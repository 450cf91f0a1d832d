/*
 * Semaphores (KSEMAPHORE): SignalState is the count; each satisfied wait
 * takes one (dispatcher.c), a release adds Adjustment and hands the units to
 * waiters at once.
 */
#include "kernel/dispatcher.h"

VOID NTAPI KeInitializeSemaphore(PRKSEMAPHORE Semaphore, LONG Count, LONG Limit)
{
    memset(Semaphore, 0, sizeof(*Semaphore));
    Semaphore->Header.Type = SemaphoreObject;
    Semaphore->Header.Size = sizeof(KSEMAPHORE) / sizeof(LONG);
    if (Count < 0 || Limit <= 0 || Count > Limit)
        owfp_kernel_finding("KeInitializeSemaphore with count %ld and limit %ld (0 <= count <= "
                            "limit, limit > 0)",
                            (long)Count, (long)Limit);
    Semaphore->Limit = Limit;
    owfp_dispatcher_set_state(&Semaphore->Header, Count);
}

LONG NTAPI KeReleaseSemaphore(PRKSEMAPHORE Semaphore, KPRIORITY Increment, LONG Adjustment,
                              BOOLEAN Wait)
{
    (void)Increment;
    (void)Wait;
    owfp_irql_check_max(DISPATCH_LEVEL, "KeReleaseSemaphore");
    DISPATCHER_HEADER *h = &Semaphore->Header;
    owfp_dispatcher_lock();
    LONG prev = owfp_dispatcher_state(h);
    /* Windows raises STATUS_SEMAPHORE_LIMIT_EXCEEDED here: there are no
     * exceptions to raise, so the count is left as it was. */
    bool ok = Adjustment > 0 && prev <= Semaphore->Limit - Adjustment;
    if (ok) {
        owfp_dispatcher_set_state(h, prev + Adjustment);
        owfp_dispatcher_wake(h);
    }
    owfp_dispatcher_unlock();
    if (!ok && Adjustment <= 0)
        owfp_kernel_finding("KeReleaseSemaphore with adjustment %ld (it must be positive)",
                            (long)Adjustment);
    else if (!ok)
        owfp_kernel_finding("KeReleaseSemaphore: count %ld + %ld exceeds the limit %ld "
                            "(STATUS_SEMAPHORE_LIMIT_EXCEEDED)",
                            (long)prev, (long)Adjustment, (long)Semaphore->Limit);
    return prev;
}

LONG NTAPI KeReadStateSemaphore(PRKSEMAPHORE Semaphore)
{
    return owfp_dispatcher_state(&Semaphore->Header);
}
