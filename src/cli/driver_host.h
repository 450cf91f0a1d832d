/*
 * Callout drivers as shared objects: `openwfp replay --driver PATH.so`.
 *
 * A driver is loaded (dlopen, RTLD_NOW | RTLD_LOCAL), given a DRIVER_OBJECT
 * named \Driver\<base> and the registry path
 * \REGISTRY\MACHINE\SYSTEM\CurrentControlSet\Services\<base> (<base>: the
 * file name up to its first dot), and its DriverEntry runs at PASSIVE_LEVEL.
 * Unloading runs DriverUnload, waits for the driver's work items and system
 * threads, reports what it left behind and unmaps it. See docs/porting.md.
 *
 * The engine must exist before the first load and outlive the unloads.
 * Not thread-safe: the command's main thread calls all of this.
 */
#ifndef OPENWFP_CLI_DRIVER_HOST_H
#define OPENWFP_CLI_DRIVER_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* NAME=VALUE for the driver's registry key: a REG_DWORD when VALUE is a
 * decimal or 0x-hex number that fits 32 bits, else a REG_SZ. */
struct owfp_driver_param {
    const char *name;
    const char *value;
};

struct owfp_driver_spec {
    const char *path;
    const struct owfp_driver_param *params;
    size_t nparams;
};

/* Splits "NAME=VALUE"; false (and a message on stderr) when malformed. The
 * strings point into `text`, which is modified. */
bool owfp_driver_param_parse(char *text, struct owfp_driver_param *out);

/* Loads the drivers in order. On a failure (the message, naming the driver,
 * is on stderr) the drivers loaded so far are unloaded again and 2 is
 * returned; else 0. */
int owfp_drivers_load(const struct owfp_driver_spec *specs, size_t n);

/* Unloads every loaded driver, newest first, writing leak reports to `out`.
 * Modules that may still be called (callouts left registered, threads or
 * work items still running) stay mapped until owfp_drivers_release.
 * Returns the number of problems reported (0: everything was clean). */
unsigned long owfp_drivers_unload(FILE *out);

/* Unmaps what owfp_drivers_unload kept; call after owfp_engine_destroy. */
void owfp_drivers_release(void);

#endif
