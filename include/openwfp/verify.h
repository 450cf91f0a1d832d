/*
 * The callout verifier (docs/verifier.md): while enabled, the engine checks
 * what callouts answer and how drivers call the WFP and kernel API against
 * the rules of the behaviour spec, and records every break as a *finding*.
 * It only reports: what the engine does is the same with the verifier on or
 * off. Off (the default), each check costs one predicted branch on a relaxed
 * atomic load.
 *
 * A finding is identified by its rule id, check name, callout id and driver;
 * repeats only raise its count. The first occurrence keeps the message, the
 * flow, the callout key and a backtrace of the call that broke the rule (for
 * a classify answer: the classifyFn that returned it).
 *
 * Everything here is thread-safe. Findings are process-wide, like the
 * engine; they outlive owfp_engine_destroy until owfp_verify_reset.
 */
#ifndef OPENWFP_VERIFY_H
#define OPENWFP_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One finding. Strings are NUL-terminated and stay valid until
 * owfp_verify_reset; the struct itself only for the callback it is passed
 * to. */
struct owfp_verify_finding {
    const char *rule;        /* spec rule id: "S19"; "K" for kernel-service misuse */
    const char *check;       /* check name: "defer-on-send" */
    const char *driver;      /* module base name ("bad_defer"), or "" when unknown */
    const char *callout_key; /* "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}", or "" */
    uint32_t callout_id;     /* 0 when no callout is involved */
    uint64_t flow;           /* flow id of the first occurrence, 0 when none */
    uint64_t count;          /* occurrences so far (1 in the sink callback) */
    const char *message;     /* what happened, first occurrence */
    const char *const *backtrace; /* frames, innermost first */
    size_t nframes;
};

/* Turns checking on or off. Turn it on before the engine is created and
 * drivers are loaded: resource checks compare against what was live when a
 * driver was loaded. */
void owfp_verify_enable(bool on);
bool owfp_verify_enabled(void);

/* Called once per new finding (its first occurrence), on the thread that
 * detected it, possibly from inside a callout: keep it short and do not
 * call into the engine. NULL removes the sink. */
typedef void (*owfp_verify_fn)(const struct owfp_verify_finding *finding, void *ctx);
void owfp_verify_set_sink(owfp_verify_fn fn, void *ctx);

/* Calls `fn` for every finding, oldest first, with current counts; returns
 * the number of findings. `fn` may be NULL (just count). */
size_t owfp_verify_findings(owfp_verify_fn fn, void *ctx);
/* Occurrences of all findings together. */
uint64_t owfp_verify_occurrences(void);

/* Forgets every finding (not the drivers below, nor the enabled state). */
void owfp_verify_reset(void);

/* For hosts that load callout drivers (openwfp's --driver does this):
 * - before DriverEntry: the module's name and where it is mapped, and a
 *   snapshot of what is live (pool by tag, NBLs, NBs, MDLs, clones, work
 *   items, injection handles);
 * - right after DriverUnload returned: from now on any call the engine makes
 *   into the module (classifyFn, notifyFn, flowDeleteFn) is a finding (R8);
 * - once the host has waited for the driver's work items and threads: what
 *   the driver left behind is reported, each resource as a finding. */
void owfp_verify_driver_loaded(const char *name, const void *base, size_t size);
void owfp_verify_driver_unloaded(const char *name);
void owfp_verify_driver_leaks(const char *name);

#ifdef __cplusplus
}
#endif

#endif
