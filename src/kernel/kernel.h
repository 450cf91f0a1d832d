/*
 * What the files of src/kernel share: findings, IRQL checks, the raw spin
 * lock underneath every kernel lock, the dispatcher objects' signal path,
 * clocks, host threads, and the narrow/wide string helpers.
 */
#ifndef OPENWFP_KERNEL_KERNEL_H
#define OPENWFP_KERNEL_KERNEL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <openwfp/kernel.h>
#include <wdm.h>

#include "kernel/irql.h"

/* Counts a finding and prints "openwfp: <message>" on stderr. */
void owfp_kernel_finding(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

const char *owfp_irql_name(KIRQL level);

/* Records "IRQL violation: <api> at <current LEVEL>". */
void owfp_irql_violation(const char *api);

/* True when the current IRQL is at most `max`; otherwise records the
 * violation and returns false. Inline: most kernel calls check it. */
static inline bool owfp_irql_check_max(KIRQL max, const char *api)
{
    if (owfp_irql <= max)
        return true;
    owfp_irql_violation(api);
    return false;
}

/* The lock word: 0 when free, else the owner thread's token. No IRQL change. */
uintptr_t owfp_thread_token(void);
void owfp_spin_raw_acquire(PKSPIN_LOCK lock);
void owfp_spin_raw_release(PKSPIN_LOCK lock);

/* Sets a dispatcher object to signaled (an event, a thread that
 * terminates) and hands it to its waiters; returns the previous state. */
LONG owfp_dispatcher_signal(DISPATCHER_HEADER *header);

/* Clocks in 100 ns units: since boot (never going back), and since 1601. */
int64_t owfp_time_interrupt(void);
int64_t owfp_time_system(void);
/* CLOCK_REALTIME `ms` from now, for condition variables with the default
 * clock. */
struct timespec owfp_realtime_after_ms(unsigned ms);

/* Starts fn(arg) on a detached host thread; false when it could not be. */
bool owfp_start_thread(void *(*fn)(void *), void *arg);

/* Whether p lies in [start, start + size): code or data of a module. */
static inline bool owfp_in_range(const void *p, const void *start, size_t size)
{
    return (uintptr_t)p >= (uintptr_t)start && (uintptr_t)p - (uintptr_t)start < size;
}

/* Unit i of a narrow (bytes) or 16-bit wide string. */
static inline unsigned owfp_unit_at(const void *s, bool wide, size_t i)
{
    return wide ? ((const WCHAR *)s)[i] : ((const unsigned char *)s)[i];
}

/* Length in 16-bit units of a NUL-terminated WCHAR string. */
size_t owfp_wcslen(PCWSTR s);

/* The debug formatter (format.c): kernel printf conversions, for narrow or
 * 16-bit wide formats and outputs. Writes at most `cap` units, which with
 * `terminate` include a terminator (nothing at all when cap is 0), and
 * returns the full length the result would have (terminator excluded), so
 * `result >= cap` (terminated) or `result > cap` (counted) means it was
 * truncated. */
size_t owfp_format(void *out, bool out_wide, size_t cap, bool terminate, const void *fmt,
                   bool fmt_wide, va_list ap);

/* ZwClose for registry keys (registry.c): true when `handle` was an open key
 * handle (now closed, *status set); false when it is not one. */
bool owfp_registry_close(HANDLE handle, NTSTATUS *status);

#endif
