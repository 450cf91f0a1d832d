/*
 * The thread's IRQL, and the hooks the engine puts around every call into a
 * callout. Kept apart from kernel.h so src/engine and src/stream need nothing
 * but this: one thread-local byte, read and written around the call.
 */
#ifndef OPENWFP_KERNEL_IRQL_H
#define OPENWFP_KERNEL_IRQL_H

extern _Thread_local unsigned char owfp_irql;

/* Records that a callout (or a DPC or work item routine) returned at another
 * IRQL than it was called at; `what` names it. */
void owfp_irql_callout_returned_at(unsigned char level, const char *what);

/* Windows calls classifyFn, notifyFn and flowDeleteFn at ≤ DISPATCH_LEVEL and
 * the stream layer always at DISPATCH_LEVEL; running every callout at
 * DISPATCH_LEVEL is the strictest reading, so IRQL checks in the driver
 * trip here as they would on the busiest Windows path. */
static inline unsigned char owfp_irql_enter_callout(void)
{
    unsigned char old = owfp_irql;
    if (old < 2)
        owfp_irql = 2;
    return old;
}

/* `what` names the callout function for the finding (e.g. "classifyFn"). */
static inline void owfp_irql_leave_callout(unsigned char old, const char *what)
{
    unsigned char expected = old < 2 ? 2 : old;
    if (owfp_irql != expected)
        owfp_irql_callout_returned_at(owfp_irql, what);
    owfp_irql = old;
}

#endif
