/*
 * Interlocked singly linked lists. Windows makes these lock-free with a
 * 16-byte compare-exchange; here the lowest bit of the header's second word
 * (one of the four bits a 16-byte aligned entry address never uses) is a
 * short lock serializing the operations. That keeps them atomic with
 * respect to each other from any thread at any IRQL (nothing blocks while
 * the bit is held, so nothing can deadlock on it) without needing
 * cmpxchg16b.
 *
 * The words keep the Windows x64 layout: Alignment = depth (16 bits, wrapping
 * as on Windows) | sequence << 16; Region = the first entry's address.
 */
#include <sched.h>

#include "kernel/kernel.h"

#define LOCK_BIT 1ull
#define ADDRESS_MASK (~15ull)
#define DEPTH_MASK 0xffffull
#define SEQ_ONE (1ull << 16)

static bool aligned(const void *p, const char *what, const char *api)
{
    if (((uintptr_t)p & 15) == 0)
        return true;
    owfp_kernel_finding("SLIST violation: %s with %s that is not 16-byte aligned", api, what);
    return false;
}

/* Takes the lock; returns the first entry. */
static PSLIST_ENTRY lock(PSLIST_HEADER h)
{
    for (unsigned spins = 0;; spins++) {
        ULONGLONG r = __atomic_load_n(&h->Region, __ATOMIC_RELAXED);
        if (!(r & LOCK_BIT) && __atomic_compare_exchange_n(&h->Region, &r, r | LOCK_BIT, true,
                                                           __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return (PSLIST_ENTRY)(uintptr_t)(r & ADDRESS_MASK);
        /* A holder preempted in user space: give way instead of spinning. */
        if (spins >= 64)
            sched_yield();
    }
}

static void unlock_unchanged(PSLIST_HEADER h)
{
    __atomic_fetch_and(&h->Region, ~LOCK_BIT, __ATOMIC_RELEASE);
}

/* Publishes the new first entry and depth, bumps the sequence, unlocks. */
static void unlock(PSLIST_HEADER h, PSLIST_ENTRY first, ULONGLONG depth)
{
    ULONGLONG a = __atomic_load_n(&h->Alignment, __ATOMIC_RELAXED);
    ULONGLONG seq = (a & ~DEPTH_MASK) + SEQ_ONE;
    __atomic_store_n(&h->Alignment, seq | (depth & DEPTH_MASK), __ATOMIC_RELAXED);
    __atomic_store_n(&h->Region, (ULONGLONG)(uintptr_t)first, __ATOMIC_RELEASE);
}

static ULONGLONG depth_of(const SLIST_HEADER *h)
{
    return __atomic_load_n(&h->Alignment, __ATOMIC_RELAXED) & DEPTH_MASK;
}

VOID NTAPI InitializeSListHead(PSLIST_HEADER SListHead)
{
    aligned(SListHead, "a header", "InitializeSListHead");
    __atomic_store_n(&SListHead->Alignment, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&SListHead->Region, 0, __ATOMIC_RELEASE);
}

PSLIST_ENTRY FASTCALL InterlockedPushEntrySList(PSLIST_HEADER ListHead, PSLIST_ENTRY ListEntry)
{
    /* Its low address bits would be lost in the header: refused. */
    if (!aligned(ListEntry, "an entry", "InterlockedPushEntrySList"))
        return NULL;
    PSLIST_ENTRY old = lock(ListHead);
    ListEntry->Next = old;
    unlock(ListHead, ListEntry, depth_of(ListHead) + 1);
    return old;
}

/* Takes the first entry, or with `all` the whole list; NULL when empty. */
static PSLIST_ENTRY take(PSLIST_HEADER h, bool all)
{
    PSLIST_ENTRY e = lock(h);
    if (!e)
        unlock_unchanged(h);
    else if (all)
        unlock(h, NULL, 0);
    else
        unlock(h, e->Next, depth_of(h) - 1);
    return e;
}

PSLIST_ENTRY FASTCALL InterlockedPopEntrySList(PSLIST_HEADER ListHead)
{
    return take(ListHead, false);
}

PSLIST_ENTRY FASTCALL InterlockedFlushSList(PSLIST_HEADER ListHead)
{
    return take(ListHead, true);
}

USHORT NTAPI QueryDepthSList(PSLIST_HEADER ListHead)
{
    return (USHORT)depth_of(ListHead);
}

PSLIST_ENTRY NTAPI RtlFirstEntrySList(const SLIST_HEADER *ListHead)
{
    ULONGLONG r = __atomic_load_n(&ListHead->Region, __ATOMIC_ACQUIRE);
    return (PSLIST_ENTRY)(uintptr_t)(r & ADDRESS_MASK);
}
