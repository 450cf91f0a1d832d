/*
 * Lookaside lists: a per-list stack of freed entries, reused before the
 * allocator is called again. Windows tunes the depth over time; here it is
 * fixed at the documented maximum (256), so a steady alloc/free pattern
 * never reaches the allocator after warm-up. Entries held by the list still
 * count against their tag until the list is deleted.
 */
#include "kernel/kernel.h"

#define DEPTH EX_MAXIMUM_LOOKASIDE_DEPTH_BASE

/* The caller sets Allocate/Free (or the Ex pair) afterwards. */
static void init(PGENERAL_LOOKASIDE L, bool ex, POOL_TYPE type, SIZE_T size, ULONG tag)
{
    memset(L, 0, sizeof(*L));
    /* A free entry stores the list link in its own first bytes. */
    if (size < sizeof(SINGLE_LIST_ENTRY))
        size = sizeof(SINGLE_LIST_ENTRY);
    L->Type = type;
    L->Tag = tag;
    L->Size = (ULONG)size;
    L->Depth = L->MaximumDepth = DEPTH;
    L->OwfpIsEx = ex;
    InitializeListHead(&L->ListEntry);
    KeInitializeSpinLock(&L->OwfpLock);
    L->OwfpLive = 1;
}

static PVOID call_allocate(PGENERAL_LOOKASIDE L)
{
    if (L->OwfpIsEx && L->AllocateEx)
        return L->AllocateEx(L->Type, L->Size, L->Tag, (PLOOKASIDE_LIST_EX)L);
    if (!L->OwfpIsEx && L->Allocate)
        return L->Allocate(L->Type, L->Size, L->Tag);
    return ExAllocatePoolWithTag(L->Type, L->Size, L->Tag);
}

static void call_free(PGENERAL_LOOKASIDE L, PVOID entry)
{
    if (L->OwfpIsEx && L->FreeEx)
        L->FreeEx(entry, (PLOOKASIDE_LIST_EX)L);
    else if (!L->OwfpIsEx && L->Free)
        L->Free(entry);
    else
        ExFreePool(entry);
}

/* The IRQL check every call makes (`max`: APC_LEVEL for the paged lists),
 * then whether the list is initialized. */
static bool usable(PGENERAL_LOOKASIDE L, KIRQL max, const char *api)
{
    owfp_irql_check_max(max, api);
    if (L->OwfpLive)
        return true;
    owfp_kernel_finding("lookaside violation: %s on a list that is not initialized", api);
    return false;
}

static PVOID allocate(PGENERAL_LOOKASIDE L, KIRQL max, const char *api)
{
    if (!usable(L, max, api))
        return NULL;
    owfp_spin_raw_acquire(&L->OwfpLock);
    L->TotalAllocates++;
    PSINGLE_LIST_ENTRY e = PopEntryList(&L->ListHead);
    if (e)
        L->OwfpCount--;
    else
        L->AllocateMisses++;
    owfp_spin_raw_release(&L->OwfpLock);
    return e ? (PVOID)e : call_allocate(L);
}

static void free_to(PGENERAL_LOOKASIDE L, PVOID entry, KIRQL max, const char *api)
{
    if (!usable(L, max, api))
        return;
    owfp_spin_raw_acquire(&L->OwfpLock);
    L->TotalFrees++;
    bool keep = L->OwfpCount < L->Depth;
    if (keep) {
        PushEntryList(&L->ListHead, entry);
        L->OwfpCount++;
    } else {
        L->FreeMisses++;
    }
    owfp_spin_raw_release(&L->OwfpLock);
    if (!keep)
        call_free(L, entry);
}

static void flush(PGENERAL_LOOKASIDE L)
{
    owfp_spin_raw_acquire(&L->OwfpLock);
    PSINGLE_LIST_ENTRY e = L->ListHead.Next;
    L->ListHead.Next = NULL;
    L->OwfpCount = 0;
    owfp_spin_raw_release(&L->OwfpLock);
    while (e) {
        PSINGLE_LIST_ENTRY next = e->Next;
        call_free(L, e);
        e = next;
    }
}

static void delete_list(PGENERAL_LOOKASIDE L, KIRQL max, const char *api)
{
    if (!usable(L, max, api))
        return;
    flush(L);
    L->OwfpLive = 0;
}

/* The two lists without Ex: only the pool type and IRQL limit differ. */
static void init_classic(PGENERAL_LOOKASIDE L, POOL_TYPE type, PALLOCATE_FUNCTION Allocate,
                         PFREE_FUNCTION Free, SIZE_T Size, ULONG Tag, const char *api)
{
    owfp_irql_check_max(type == PagedPool ? APC_LEVEL : DISPATCH_LEVEL, api);
    init(L, false, type, Size, Tag);
    L->Allocate = Allocate;
    L->Free = Free;
}

VOID NTAPI ExInitializeNPagedLookasideList(PNPAGED_LOOKASIDE_LIST Lookaside,
                                           PALLOCATE_FUNCTION Allocate, PFREE_FUNCTION Free,
                                           ULONG Flags, SIZE_T Size, ULONG Tag, USHORT Depth)
{
    (void)Flags;
    (void)Depth; /* reserved: must be zero */
    init_classic(&Lookaside->L, NonPagedPool, Allocate, Free, Size, Tag,
                 "ExInitializeNPagedLookasideList");
}

PVOID NTAPI ExAllocateFromNPagedLookasideList(PNPAGED_LOOKASIDE_LIST Lookaside)
{
    return allocate(&Lookaside->L, DISPATCH_LEVEL, "ExAllocateFromNPagedLookasideList");
}

VOID NTAPI ExFreeToNPagedLookasideList(PNPAGED_LOOKASIDE_LIST Lookaside, PVOID Entry)
{
    free_to(&Lookaside->L, Entry, DISPATCH_LEVEL, "ExFreeToNPagedLookasideList");
}

VOID NTAPI ExDeleteNPagedLookasideList(PNPAGED_LOOKASIDE_LIST Lookaside)
{
    delete_list(&Lookaside->L, DISPATCH_LEVEL, "ExDeleteNPagedLookasideList");
}

VOID NTAPI ExInitializePagedLookasideList(PPAGED_LOOKASIDE_LIST Lookaside,
                                          PALLOCATE_FUNCTION Allocate, PFREE_FUNCTION Free,
                                          ULONG Flags, SIZE_T Size, ULONG Tag, USHORT Depth)
{
    (void)Flags;
    (void)Depth;
    init_classic(&Lookaside->L, PagedPool, Allocate, Free, Size, Tag,
                 "ExInitializePagedLookasideList");
}

PVOID NTAPI ExAllocateFromPagedLookasideList(PPAGED_LOOKASIDE_LIST Lookaside)
{
    return allocate(&Lookaside->L, APC_LEVEL, "ExAllocateFromPagedLookasideList");
}

VOID NTAPI ExFreeToPagedLookasideList(PPAGED_LOOKASIDE_LIST Lookaside, PVOID Entry)
{
    free_to(&Lookaside->L, Entry, APC_LEVEL, "ExFreeToPagedLookasideList");
}

VOID NTAPI ExDeletePagedLookasideList(PPAGED_LOOKASIDE_LIST Lookaside)
{
    delete_list(&Lookaside->L, APC_LEVEL, "ExDeletePagedLookasideList");
}

NTSTATUS NTAPI ExInitializeLookasideListEx(PLOOKASIDE_LIST_EX Lookaside,
                                           PALLOCATE_FUNCTION_EX Allocate, PFREE_FUNCTION_EX Free,
                                           POOL_TYPE PoolType, ULONG Flags, SIZE_T Size, ULONG Tag,
                                           USHORT Depth)
{
    (void)Depth;
    owfp_irql_check_max(DISPATCH_LEVEL, "ExInitializeLookasideListEx");
    if (!Lookaside || (Flags & ~(EX_LOOKASIDE_LIST_EX_FLAGS_RAISE_ON_FAIL |
                                 EX_LOOKASIDE_LIST_EX_FLAGS_FAIL_NO_RAISE)) ||
        Flags == (EX_LOOKASIDE_LIST_EX_FLAGS_RAISE_ON_FAIL |
                  EX_LOOKASIDE_LIST_EX_FLAGS_FAIL_NO_RAISE))
        return STATUS_INVALID_PARAMETER;
    init(&Lookaside->L, true, PoolType, Size, Tag);
    Lookaside->L.AllocateEx = Allocate;
    Lookaside->L.FreeEx = Free;
    return STATUS_SUCCESS;
}

PVOID NTAPI ExAllocateFromLookasideListEx(PLOOKASIDE_LIST_EX Lookaside)
{
    return allocate(&Lookaside->L, DISPATCH_LEVEL, "ExAllocateFromLookasideListEx");
}

VOID NTAPI ExFreeToLookasideListEx(PLOOKASIDE_LIST_EX Lookaside, PVOID Entry)
{
    free_to(&Lookaside->L, Entry, DISPATCH_LEVEL, "ExFreeToLookasideListEx");
}

VOID NTAPI ExDeleteLookasideListEx(PLOOKASIDE_LIST_EX Lookaside)
{
    delete_list(&Lookaside->L, DISPATCH_LEVEL, "ExDeleteLookasideListEx");
}

VOID NTAPI ExFlushLookasideListEx(PLOOKASIDE_LIST_EX Lookaside)
{
    owfp_irql_check_max(DISPATCH_LEVEL, "ExFlushLookasideListEx");
    flush(&Lookaside->L);
}
