/*
 * Kernel mutexes (KMUTEX). SignalState counts as on Windows: 1 when free, and
 * 1 - n while the owner holds it n times. Acquiring is a wait
 * (dispatcher.c), which also lets the owner in again; the owner is recorded
 * by its thread token because plain host threads have no KTHREAD.
 */
#include "kernel/dispatcher.h"

VOID NTAPI KeInitializeMutex(PRKMUTEX Mutex, ULONG Level)
{
    (void)Level; /* a lock-order hint for checked builds of Windows */
    memset(Mutex, 0, sizeof(*Mutex));
    Mutex->Header.Type = MutantObject;
    Mutex->Header.Size = sizeof(KMUTEX) / sizeof(LONG);
    owfp_dispatcher_set_state(&Mutex->Header, 1);
    InitializeListHead(&Mutex->MutantListEntry);
}

LONG NTAPI KeReleaseMutex(PRKMUTEX Mutex, BOOLEAN Wait)
{
    (void)Wait;
    owfp_irql_check_max(DISPATCH_LEVEL, "KeReleaseMutex");
    DISPATCHER_HEADER *h = &Mutex->Header;
    owfp_dispatcher_lock();
    LONG prev = owfp_dispatcher_state(h);
    bool owner = prev <= 0 && (uintptr_t)Mutex->OwnerThread == owfp_thread_token();
    if (owner) {
        owfp_dispatcher_set_state(h, prev + 1);
        if (prev + 1 == 1) {
            Mutex->OwnerThread = NULL;
            owfp_dispatcher_wake(h);
        }
    }
    owfp_dispatcher_unlock();
    if (!owner)
        owfp_kernel_finding("lock violation: KeReleaseMutex on a mutex %s",
                            prev > 0 ? "that is not held" : "held by another thread");
    return prev;
}

LONG NTAPI KeReadStateMutex(PRKMUTEX Mutex)
{
    return owfp_dispatcher_state(&Mutex->Header);
}
