/*
 * Pool allocations. Every block carries a 16-byte header (size, tag, a magic
 * word and its distance from the malloc'd start) right before the caller's
 * bytes, so frees can be checked and live bytes counted per tag. Blocks come
 * from owfp_malloc, so the engine's fault injection reaches drivers' pool
 * allocations too. Paged and non-paged pool are the same memory here; only
 * the IRQL rule for paged pool is kept.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "kernel/kernel.h"

#define POOL_MAGIC 0x6f50u /* "Po" */
#define POOL_FREED 0xdeadu
#define TAG_NONE 0x656e6f4eu /* 'enoN': what ExAllocatePool tags with */

struct pool_header {
    uint64_t size;
    uint32_t tag;
    uint16_t offset; /* from the malloc'd start to the caller's bytes */
    uint16_t magic;
};
_Static_assert(sizeof(struct pool_header) == 16, "keeps MEMORY_ALLOCATION_ALIGNMENT");

/* Live counts per tag: open addressing keyed by (1 << 32 | tag), slots
 * claimed with one CAS and never released, so updates need no lock. When the
 * table is full, counts go to `overflow` (reported as tag 0). */
#define TAG_SLOTS 1024
struct tag_slot {
    _Atomic uint64_t key; /* 0 = free */
    _Atomic int64_t count;
    _Atomic int64_t bytes;
};
static struct tag_slot tags[TAG_SLOTS], overflow = {1ull << 32, 0, 0};

static struct tag_slot *slot_for(uint32_t tag)
{
    uint64_t key = 1ull << 32 | tag;
    uint32_t h = (tag * 2654435761u) % TAG_SLOTS;
    for (unsigned i = 0; i < TAG_SLOTS; i++) {
        struct tag_slot *s = &tags[(h + i) % TAG_SLOTS];
        uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
        if (k == 0 && atomic_compare_exchange_strong(&s->key, &k, key))
            return s;
        if (k == key)
            return s;
    }
    return &overflow;
}

static void account(uint32_t tag, int64_t count, int64_t bytes)
{
    struct tag_slot *s = slot_for(tag);
    atomic_fetch_add_explicit(&s->count, count, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes, bytes, memory_order_relaxed);
}

static PVOID allocate(SIZE_T size, ULONG tag, bool zero, size_t align)
{
    size_t hdr = sizeof(struct pool_header);
    if (size > SIZE_MAX - hdr - align)
        return NULL;
    unsigned char *raw = owfp_malloc(size + hdr + (align - 16));
    if (!raw)
        return NULL;
    /* malloc gives 16-byte alignment; step forward to the wanted boundary. */
    uintptr_t user = ((uintptr_t)raw + hdr + align - 1) & ~(uintptr_t)(align - 1);
    size_t off = (size_t)(user - (uintptr_t)raw); /* at least hdr */
    unsigned char *p = raw + off; /* a pointer into raw, not one made from an integer */
    struct pool_header h = {size, tag, (uint16_t)off, POOL_MAGIC};
    memcpy(raw + (off - hdr), &h, hdr);
    if (zero)
        memset(p, 0, size);
    account(tag, 1, (int64_t)size);
    return p;
}

static void release(PVOID P, ULONG tag, bool check_tag, const char *api)
{
    if (!P) {
        owfp_kernel_finding("pool violation: %s(NULL)", api);
        return;
    }
    struct pool_header h;
    unsigned char *p = P;
    memcpy(&h, p - sizeof(h), sizeof(h));
    if (h.magic != POOL_MAGIC) {
        /* Not ours (or freed already): freeing it would corrupt the heap. */
        owfp_kernel_finding("pool violation: %s on memory that is not a live pool block", api);
        return;
    }
    if (check_tag && h.tag != tag) {
        char want[5], got[5];
        owfp_pool_tag_string(tag, want);
        owfp_pool_tag_string(h.tag, got);
        owfp_kernel_finding("pool violation: %s with tag '%s' on a block tagged '%s'", api, want,
                            got);
    }
    account(h.tag, -1, -(int64_t)h.size);
    h.magic = POOL_FREED;
    memcpy(p - sizeof(h), &h, sizeof(h));
    owfp_free(p - h.offset);
}

static bool paged(POOL_TYPE type)
{
    return (type & 1) != 0; /* PagedPool, PagedPoolCacheAligned, PagedPoolSession... */
}

static size_t alignment(POOL_TYPE type)
{
    return (type & 4) ? 64 : 16; /* the CacheAligned types */
}

PVOID NTAPI ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag)
{
    POOL_FLAGS kind = Flags & (POOL_FLAG_NON_PAGED | POOL_FLAG_NON_PAGED_EXECUTE | POOL_FLAG_PAGED);
    /* Exactly one pool must be named, and no unknown required flag given. */
    POOL_FLAGS unknown_required = (POOL_FLAG_REQUIRED_END | (POOL_FLAG_REQUIRED_END - 1)) &
                                  ~(POOL_FLAG_LAST_KNOWN_REQUIRED * 2 - 1);
    if (kind == 0 || (kind & (kind - 1)) != 0 || (Flags & unknown_required) != 0) {
        owfp_kernel_finding("pool violation: ExAllocatePool2 with invalid flags 0x%llx",
                            (unsigned long long)Flags);
        return NULL;
    }
    if (kind == POOL_FLAG_PAGED)
        owfp_irql_check_max(APC_LEVEL, "ExAllocatePool2(POOL_FLAG_PAGED)");
    else
        owfp_irql_check_max(DISPATCH_LEVEL, "ExAllocatePool2");
    return allocate(NumberOfBytes, Tag, !(Flags & POOL_FLAG_UNINITIALIZED),
                    (Flags & POOL_FLAG_CACHE_ALIGNED) ? 64 : 16);
}

static PVOID allocate_typed(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag, bool zero,
                            const char *api)
{
    owfp_irql_check_max(paged(PoolType) ? APC_LEVEL : DISPATCH_LEVEL, api);
    return allocate(NumberOfBytes, Tag, zero, alignment(PoolType));
}

PVOID NTAPI ExAllocatePoolZero(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag)
{
    return allocate_typed(PoolType, NumberOfBytes, Tag, true, "ExAllocatePoolZero");
}

PVOID NTAPI ExAllocatePoolUninitialized(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag)
{
    return allocate_typed(PoolType, NumberOfBytes, Tag, false, "ExAllocatePoolUninitialized");
}

PVOID NTAPI ExAllocatePoolWithTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag)
{
    return allocate_typed(PoolType, NumberOfBytes, Tag, false, "ExAllocatePoolWithTag");
}

PVOID NTAPI ExAllocatePool(POOL_TYPE PoolType, SIZE_T NumberOfBytes)
{
    return allocate_typed(PoolType, NumberOfBytes, TAG_NONE, false, "ExAllocatePool");
}

VOID NTAPI ExFreePoolWithTag(PVOID P, ULONG Tag)
{
    owfp_irql_check_max(DISPATCH_LEVEL, "ExFreePoolWithTag");
    release(P, Tag, true, "ExFreePoolWithTag");
}

VOID NTAPI ExFreePool(PVOID P)
{
    owfp_irql_check_max(DISPATCH_LEVEL, "ExFreePool");
    release(P, 0, false, "ExFreePool");
}

void owfp_pool_tag_string(uint32_t tag, char out[5])
{
    /* Memory order, as pool tools print them: 'gaT1' shows as "1Tag". */
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)(tag >> (8 * i));
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '.';
    }
    out[4] = '\0';
}

size_t owfp_pool_outstanding(owfp_pool_tag_fn fn, void *ctx)
{
    size_t n = 0;
    for (unsigned i = 0; i <= TAG_SLOTS; i++) {
        struct tag_slot *s = i < TAG_SLOTS ? &tags[i] : &overflow;
        if (!atomic_load_explicit(&s->key, memory_order_acquire))
            continue;
        int64_t count = atomic_load_explicit(&s->count, memory_order_relaxed);
        int64_t bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed);
        if (count <= 0)
            continue;
        n++;
        if (fn)
            fn(i < TAG_SLOTS ? (uint32_t)atomic_load_explicit(&s->key, memory_order_relaxed) : 0,
               (uint64_t)count,
               (uint64_t)bytes, ctx);
    }
    return n;
}
