/*
 * The host's view of the kernel API layer (src/kernel): findings recorded
 * when a driver breaks an IRQL or locking rule, what a driver still holds
 * (pool by tag, work items, system threads, timers, DPCs, resources) so a
 * host can report leaks at unload, and the name DbgPrint puts in front of a
 * driver's lines.
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
/* Waits until no work item is queued or running; false on timeout. In
 * scheduled mode it runs the queued items itself, oldest first. */
bool owfp_workitems_wait_idle(unsigned timeout_ms);
/* Scheduled mode, for runs that must repeat exactly (replaying a fuzz
 * input): queued work items wait until owfp_workitems_run_one releases
 * them. Off by default; turning it off lets waiting items run. */
void owfp_workitems_set_scheduled(bool on);
/* Scheduled mode: runs the queued item number `pick` (modulo how many are
 * queued, 0 the oldest) on a worker thread and returns once its routine
 * returned. false when nothing is queued, outside scheduled mode, or after
 * timeout_ms. */
bool owfp_workitems_run_one(unsigned pick, unsigned timeout_ms);

/* System threads created and not yet terminated. */
unsigned long owfp_system_threads_running(void);

/* Timers set (not yet expired, or periodic) and not cancelled; DPCs queued
 * or running; ERESOURCEs initialized and not deleted. */
unsigned long owfp_timers_set(void);
unsigned long owfp_dpcs_pending(void);
unsigned long owfp_resources_live(void);
/* For unmapping a driver module at [start, start + size): cancel the timers
 * and remove the queued DPCs that belong to it (the timer or DPC object, the
 * DPC routine, or the code that set the timer lies there), returning how
 * many; then wait until no DPC routine of the module runs (false on
 * timeout, when the module must stay mapped). */
unsigned long owfp_timers_cancel_range(const void *start, size_t size);
unsigned long owfp_dpcs_remove_range(const void *start, size_t size);
bool owfp_dpcs_wait_range(const void *start, size_t size, unsigned timeout_ms);

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

/* Framework (KMDF subset, <wdf.h>) objects of a driver, once its unload ran
 * or its DriverEntry failed: deletes what is still there for
 * `driver_object`, then calls `fn` (may be NULL) once per object type the
 * driver left for the framework to delete, which it should have deleted
 * itself ("WDFKEY", "WdfRegistryClose", 1). Control devices are not
 * counted: the framework deletes those of non-PnP drivers. Returns the
 * number of such objects; 0 for a driver that never called WdfDriverCreate. */
typedef void (*owfp_wdf_leak_fn)(const char *type, const char *release, unsigned long count,
                                 void *ctx);
unsigned long owfp_wdf_driver_gone(void *driver_object, owfp_wdf_leak_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
