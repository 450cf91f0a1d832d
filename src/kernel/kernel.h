/*
 * What the files of src/kernel share: findings, IRQL checks, the raw spin
 * lock underneath every kernel lock, the dispatcher objects' signal path and
 * clocks.
 */
#ifndef OPENWFP_KERNEL_KERNEL_H
#define OPENWFP_KERNEL_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

#include <openwfp/kernel.h>
#include <wdm.h>

#include "kernel/irql.h"

/* Counts a finding and prints "openwfp: <message>" on stderr. */
void owfp_kernel_finding(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

const char *owfp_irql_name(KIRQL level);

/* True when the current IRQL is at most `max`; otherwise records
 * "IRQL violation: <api> at <LEVEL>" and returns false. */
bool owfp_irql_check_max(KIRQL max, const char *api);

/* The lock word: 0 when free, else the owner thread's token. No IRQL change. */
uintptr_t owfp_thread_token(void);
void owfp_spin_raw_acquire(PKSPIN_LOCK lock);
void owfp_spin_raw_release(PKSPIN_LOCK lock);

/* Sets a dispatcher object to signaled and releases every waiter, as a
 * notification event does; used for threads that terminate. */
void owfp_dispatcher_signal_all(DISPATCHER_HEADER *header);

/* Clocks in 100 ns units: since boot (never going back), and since 1601. */
int64_t owfp_time_interrupt(void);
int64_t owfp_time_system(void);

/* The debug formatter (format.c): kernel printf conversions, for narrow or
 * 16-bit wide formats and outputs. Writes at most `cap` units including the
 * terminator (nothing when cap is 0) and returns the full length the result
 * would have, so `result >= cap` means it was truncated. */
/* Length in 16-bit units of a NUL-terminated WCHAR string. */
size_t owfp_wcslen(PCWSTR s);

size_t owfp_format(void *out, bool out_wide, size_t cap, const void *fmt, bool fmt_wide,
                   va_list ap);

/* ZwClose for registry keys (registry.c): true when `handle` was an open key
 * handle (now closed, *status set); false when it is not one. */
bool owfp_registry_close(HANDLE handle, NTSTATUS *status);

#endif
