/*
 * Memory descriptor lists, as callouts see them in NET_BUFFERs.
 *
 * An MDL here describes one contiguous range of this process's memory; there
 * are no physical pages, no probing and no locking. The engine builds MDLs
 * over the data plane's own buffers (capture or socket memory) so stream
 * bytes are never copied just to be shown to a callout.
 *
 * Address convention (kept by every MDL the library creates, and by
 * MmInitializeMdl / MmBuildMdlForNonPagedPool for MDLs drivers create):
 *   StartVa        = the first byte's address rounded down to PAGE_SIZE
 *   ByteOffset     = the first byte's offset inside that page
 *   ByteCount      = length of the range
 *   MappedSystemVa = the exact address of the first byte, valid whenever
 *                    MDL_MAPPED_TO_SYSTEM_VA or MDL_SOURCE_IS_NONPAGED_POOL
 *                    is set
 * so MmGetSystemAddressForMdlSafe(mdl, p) == MmGetMdlVirtualAddress(mdl)
 * always, and `(PUCHAR)MmGetSystemAddressForMdlSafe(m, p) + off` reaches
 * byte `off` of the range as on Windows.
 *
 * No PFN array follows our MDLs: Size is always sizeof(MDL) and
 * MmSizeOfMdl() answers sizeof(MDL).
 *
 * wdm.h includes this header; the names below are defined only here.
 */
#ifndef OPENWFP_WDK_MDL_H
#define OPENWFP_WDK_MDL_H

#include "ntdef.h"

typedef SHORT CSHORT;

struct _EPROCESS;

typedef struct _MDL {
    struct _MDL *Next;
    CSHORT Size;
    CSHORT MdlFlags;
    struct _EPROCESS *Process; /* unused by the engine except as an owner tag */
    PVOID MappedSystemVa;
    PVOID StartVa;
    ULONG ByteCount;
    ULONG ByteOffset;
} MDL, *PMDL;

#define MDL_MAPPED_TO_SYSTEM_VA 0x0001
#define MDL_PAGES_LOCKED 0x0002
#define MDL_SOURCE_IS_NONPAGED_POOL 0x0004
#define MDL_ALLOCATED_FIXED_SIZE 0x0008
#define MDL_PARTIAL 0x0010
#define MDL_PARTIAL_HAS_BEEN_MAPPED 0x0020
#define MDL_IO_PAGE_READ 0x0040
#define MDL_WRITE_OPERATION 0x0080
#define MDL_LOCKED_PAGE_TABLES 0x0100
#define MDL_PARENT_MAPPED_SYSTEM_VA MDL_LOCKED_PAGE_TABLES
#define MDL_FREE_EXTRA_PTES 0x0200
#define MDL_DESCRIBES_AWE 0x0400
#define MDL_IO_SPACE 0x0800
#define MDL_NETWORK_HEADER 0x1000
#define MDL_MAPPING_CAN_FAIL 0x2000
#define MDL_PAGE_CONTENTS_INVARIANT 0x4000
#define MDL_ALLOCATED_MUST_SUCCEED MDL_PAGE_CONTENTS_INVARIANT
#define MDL_INTERNAL 0x8000

#define MDL_MAPPING_FLAGS (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL)

typedef enum _MM_PAGE_PRIORITY {
    LowPagePriority = 0,
    NormalPagePriority = 16,
    HighPagePriority = 32
} MM_PAGE_PRIORITY;

/* Flags drivers OR into the priority argument (Windows 8 and later). */
#define MdlMappingNoWrite 0x80000000
#define MdlMappingNoExecute 0x40000000
#define MdlMappingWithGuardPtes 0x20000000

/* Guarded: a system header may already have defined the same page size. */
#ifndef PAGE_SIZE
#define PAGE_SIZE 0x1000
#endif
#ifndef PAGE_SHIFT
#define PAGE_SHIFT 12
#endif
#ifndef PAGE_ALIGN
#define PAGE_ALIGN(Va) ((PVOID)((ULONG_PTR)(Va) & ~((ULONG_PTR)PAGE_SIZE - 1)))
#endif
#ifndef BYTE_OFFSET
#define BYTE_OFFSET(Va) ((ULONG)((ULONG_PTR)(Va) & ((ULONG_PTR)PAGE_SIZE - 1)))
#endif
#ifndef ADDRESS_AND_SIZE_TO_SPAN_PAGES
#define ADDRESS_AND_SIZE_TO_SPAN_PAGES(Va, Size) \
    ((ULONG)((BYTE_OFFSET(Va) + (SIZE_T)(Size) + (PAGE_SIZE - 1)) >> PAGE_SHIFT))
#endif

#define MmGetMdlByteCount(Mdl) ((Mdl)->ByteCount)
#define MmGetMdlByteOffset(Mdl) ((Mdl)->ByteOffset)
#define MmGetMdlBaseVa(Mdl) ((Mdl)->StartVa)
/* Integer arithmetic: StartVa lies before the described object. */
#define MmGetMdlVirtualAddress(Mdl) \
    ((PVOID)((ULONG_PTR)(Mdl)->StartVa + (Mdl)->ByteOffset))

static inline SIZE_T MmSizeOfMdl(PVOID Base, SIZE_T Length)
{
    (void)Base;
    (void)Length;
    return sizeof(MDL);
}

static inline void MmInitializeMdl(PMDL Mdl, PVOID BaseVa, SIZE_T Length)
{
    Mdl->Next = NULL;
    Mdl->Size = (CSHORT)sizeof(MDL);
    Mdl->MdlFlags = 0;
    Mdl->Process = NULL;
    Mdl->MappedSystemVa = NULL;
    Mdl->StartVa = PAGE_ALIGN(BaseVa);
    Mdl->ByteOffset = BYTE_OFFSET(BaseVa);
    Mdl->ByteCount = (ULONG)Length;
}

/* All memory is addressable here; this only records that fact. */
static inline void MmBuildMdlForNonPagedPool(PMDL Mdl)
{
    Mdl->MappedSystemVa = MmGetMdlVirtualAddress(Mdl);
    Mdl->MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
}

/* Never fails and never maps: the range is already in our address space. */
static inline PVOID MmGetSystemAddressForMdlSafe(PMDL Mdl, ULONG Priority)
{
    (void)Priority;
    if (Mdl->MdlFlags & MDL_MAPPING_FLAGS)
        return Mdl->MappedSystemVa;
    return MmGetMdlVirtualAddress(Mdl);
}

static inline void MmPrepareMdlForReuse(PMDL Mdl)
{
    Mdl->MdlFlags &= (CSHORT)~MDL_PARTIAL_HAS_BEEN_MAPPED;
}

/*
 * IoAllocateMdl: describes [VirtualAddress, +Length) in a new MDL.
 * SecondaryBuffer, ChargeQuota and Irp are accepted and ignored (no IRP
 * chaining). The MDL is not marked mapped; MmGetSystemAddressForMdlSafe
 * works on it anyway. Returns NULL when out of memory.
 */
PMDL IoAllocateMdl(PVOID VirtualAddress, ULONG Length, BOOLEAN SecondaryBuffer,
                   BOOLEAN ChargeQuota, PVOID Irp);
/* Frees an MDL from IoAllocateMdl / NdisAllocateMdl (or a retreat MDL). */
void IoFreeMdl(PMDL Mdl);
/*
 * Makes TargetMdl describe [VirtualAddress, +Length) inside SourceMdl's
 * range (Length 0: up to the end of the source). TargetMdl->Next is kept.
 * A range outside the source is a driver bug (a bug check on Windows); here
 * the target then describes zero bytes at the source's start.
 */
void IoBuildPartialMdl(PMDL SourceMdl, PMDL TargetMdl, PVOID VirtualAddress, ULONG Length);

#endif
