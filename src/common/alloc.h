/*
 * Every allocation of the engine goes through here, so tests can make the
 * Nth allocation fail and check that each path answers with
 * STATUS_INSUFFICIENT_RESOURCES and leaks nothing.
 */
#ifndef OPENWFP_COMMON_ALLOC_H
#define OPENWFP_COMMON_ALLOC_H

#include <stddef.h>

void *owfp_malloc(size_t size);
void *owfp_calloc(size_t count, size_t size);
void *owfp_realloc(void *ptr, size_t size);
void owfp_free(void *ptr);

/* Fault injection: after `n` more successful allocations, every allocation
 * fails until owfp_alloc_fail_reset(). n < 0 disables. Process-wide. */
void owfp_alloc_fail_after(long n);
void owfp_alloc_fail_reset(void);
/* Number of allocations refused since the last reset. */
unsigned long owfp_alloc_failures(void);

#endif
