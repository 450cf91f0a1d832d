/*
 * Critical and guarded regions. They only hold off APCs, which do not exist
 * here, but some calls are only correct inside one (ERESOURCE acquisition,
 * the unsafe fast-mutex calls): counting them per thread lets those calls
 * check, as Driver Verifier does.
 */
#include "kernel/kernel.h"

static _Thread_local unsigned critical_depth, guarded_depth;

static void enter(unsigned *depth, const char *api)
{
    owfp_irql_check_max(APC_LEVEL, api);
    ++*depth;
}

/* Leaving a region not entered is a finding and changes nothing. */
static void leave(unsigned *depth, const char *api, const char *enter_api)
{
    owfp_irql_check_max(APC_LEVEL, api);
    if (!*depth) {
        owfp_kernel_finding("%s without %s", api, enter_api);
        return;
    }
    --*depth;
}

VOID NTAPI KeEnterCriticalRegion(void)
{
    enter(&critical_depth, "KeEnterCriticalRegion");
}

VOID NTAPI KeLeaveCriticalRegion(void)
{
    leave(&critical_depth, "KeLeaveCriticalRegion", "KeEnterCriticalRegion");
}

VOID NTAPI KeEnterGuardedRegion(void)
{
    enter(&guarded_depth, "KeEnterGuardedRegion");
}

VOID NTAPI KeLeaveGuardedRegion(void)
{
    leave(&guarded_depth, "KeLeaveGuardedRegion", "KeEnterGuardedRegion");
}

BOOLEAN NTAPI KeAreApcsDisabled(void)
{
    return critical_depth || guarded_depth || owfp_irql >= APC_LEVEL;
}

BOOLEAN NTAPI KeAreAllApcsDisabled(void)
{
    return guarded_depth || owfp_irql >= APC_LEVEL;
}
