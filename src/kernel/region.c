/*
 * Critical and guarded regions. They only hold off APCs, which do not exist
 * here, but some calls are only correct inside one (ERESOURCE acquisition,
 * the unsafe fast-mutex calls): counting them per thread lets those calls
 * check, as Driver Verifier does.
 */
#include "kernel/kernel.h"

static _Thread_local unsigned critical_depth, guarded_depth;

VOID NTAPI KeEnterCriticalRegion(void)
{
    owfp_irql_check_max(APC_LEVEL, "KeEnterCriticalRegion");
    critical_depth++;
}

VOID NTAPI KeLeaveCriticalRegion(void)
{
    owfp_irql_check_max(APC_LEVEL, "KeLeaveCriticalRegion");
    if (!critical_depth) {
        owfp_kernel_finding("KeLeaveCriticalRegion without KeEnterCriticalRegion");
        return;
    }
    critical_depth--;
}

VOID NTAPI KeEnterGuardedRegion(void)
{
    owfp_irql_check_max(APC_LEVEL, "KeEnterGuardedRegion");
    guarded_depth++;
}

VOID NTAPI KeLeaveGuardedRegion(void)
{
    owfp_irql_check_max(APC_LEVEL, "KeLeaveGuardedRegion");
    if (!guarded_depth) {
        owfp_kernel_finding("KeLeaveGuardedRegion without KeEnterGuardedRegion");
        return;
    }
    guarded_depth--;
}

BOOLEAN NTAPI KeAreApcsDisabled(void)
{
    return critical_depth || guarded_depth || owfp_irql >= APC_LEVEL;
}

BOOLEAN NTAPI KeAreAllApcsDisabled(void)
{
    return guarded_depth || owfp_irql >= APC_LEVEL;
}
