#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>

/* -1: no fault injection. Otherwise the number of allocations still allowed. */
static atomic_long budget = -1;
static atomic_ulong refused;

static int may_allocate(void)
{
    long b = atomic_load_explicit(&budget, memory_order_relaxed);
    if (b < 0)
        return 1;
    while (b > 0) {
        if (atomic_compare_exchange_weak(&budget, &b, b - 1))
            return 1;
        if (b < 0)
            return 1;
    }
    atomic_fetch_add(&refused, 1);
    return 0;
}

void *owfp_malloc(size_t size)
{
    return may_allocate() ? malloc(size ? size : 1) : NULL;
}

void *owfp_calloc(size_t count, size_t size)
{
    return may_allocate() ? calloc(count ? count : 1, size ? size : 1) : NULL;
}

void *owfp_realloc(void *ptr, size_t size)
{
    return may_allocate() ? realloc(ptr, size ? size : 1) : NULL;
}

void owfp_free(void *ptr)
{
    free(ptr);
}

void owfp_alloc_fail_after(long n)
{
    atomic_store(&refused, 0);
    atomic_store(&budget, n);
}

void owfp_alloc_fail_reset(void)
{
    atomic_store(&budget, -1);
}

unsigned long owfp_alloc_failures(void)
{
    return atomic_load(&refused);
}
