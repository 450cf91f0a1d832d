/*
 * What the host prints when a loaded driver crashes it: the signal, the
 * faulting address, the driver whose code was running (or, for a crash in
 * code a driver called, the nearest driver frame), and a backtrace. Then the
 * signal is raised again with its default action, so the exit status and
 * any core dump are what they would have been.
 *
 * Only the driver host installs this, when it loads a driver: the engine
 * library never touches signal dispositions. Under AddressSanitizer,
 * ThreadSanitizer or MemorySanitizer nothing is installed (their own reports
 * are better), and a signal that already has a handler is left alone.
 */
#ifndef OPENWFP_CLI_CRASH_REPORT_H
#define OPENWFP_CLI_CRASH_REPORT_H

#include <stddef.h>
#include <stdint.h>

/* Idempotent. Call from the thread that loads drivers: it also gets an
 * alternate signal stack, so a stack overflow there is reported too. */
void owfp_crash_report_install(void);

/* The loaded modules the report names: `name` and `path` are copied
 * (truncated if long). Not thread-safe against each other; safe against a
 * crash report running meanwhile. */
void owfp_crash_report_add_module(const char *name, const char *path, uintptr_t start,
                                  size_t size);
void owfp_crash_report_remove_module(uintptr_t start);

#endif
