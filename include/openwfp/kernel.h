/*
 * The host's view of the kernel API layer (src/kernel): findings recorded
 * when a driver breaks an IRQL or locking rule, what a driver still holds
 * (pool by tag, work items, system threads) so a host can report leaks at
 * unload, and the name DbgPrint puts in front of a driver's lines.
 *
 * Everything here is thread-safe.
 */
#ifndef OPENWFP_KERNEL_H
#define OPENWFP_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Findings: misuse the real kernel would bug-check or deadlock on
 * ("openwfp: IRQL violation: KeWaitForSingleObject at DISPATCH_LEVEL").
 * Each one is counted and printed as one line on stderr. */
unsigned long owfp_kernel_findings(void);
void owfp_kernel_findings_reset(void);
/* Copies the newest finding's message (without the "openwfp: " prefix);
 * returns its length, 0 when there is none. */
size_t owfp_kernel_last_finding(char *buf, size_t size);
/* Stops findings from being printed (they are still counted). */
void owfp_kernel_set_quiet(bool quiet);

/* Name shown in DbgPrint lines ("[name] ..."). The thread's own name, when
 * set, wins over the process-wide one. NULL clears. Copied. */
void owfp_kernel_set_driver_name(const char *name);
void owfp_kernel_set_thread_driver_name(const char *name);

/* Live pool allocations, by tag. The callback sees each tag with anything
 * outstanding once; `tag` prints as its four characters in memory order
 * (owfp_pool_tag_string). Returns the number of such tags. */
typedef void (*owfp_pool_tag_fn)(uint32_t tag, uint64_t allocations, uint64_t bytes, void *ctx);
size_t owfp_pool_outstanding(owfp_pool_tag_fn fn, void *ctx);
/* Writes the tag as Windows tools show it ('gaT1' -> "1Tag"), NUL-terminated. */
void owfp_pool_tag_string(uint32_t tag, char out[5]);

/* Work items allocated (or initialized) and not yet freed, and those queued
 * or running. */
unsigned long owfp_workitems_outstanding(void);
unsigned long owfp_workitems_pending(void);
/* Waits until no work item is queued or running; false on timeout. */
bool owfp_workitems_wait_idle(unsigned timeout_ms);

/* System threads created and not yet terminated. */
unsigned long owfp_system_threads_running(void);

/* The registry drivers read (ZwOpenKey, ZwQueryValueKey,
 * RtlQueryRegistryValues, ZwClose). Keys are named by full path
 * ("\\REGISTRY\\MACHINE\\SYSTEM\\...", printable ASCII, any case); setting a
 * value creates its key. Strings are UTF-8 here and REG_SZ (UTF-16) to
 * drivers. 0, -EINVAL (bad path, name or UTF-8) or -ENOMEM. */
int owfp_registry_create_key(const char *path);
int owfp_registry_set_dword(const char *path, const char *name, uint32_t value);
int owfp_registry_set_string(const char *path, const char *name, const char *utf8);
/* Key handles opened by drivers and not yet closed. */
unsigned long owfp_registry_open_handles(void);
/* Removes every key and forgets open handles. */
void owfp_registry_clear(void);

#ifdef __cplusplus
}
#endif

#endif
