/*
 * Per-thread IRQL. Nothing is masked: the level only records what the driver
 * asked for, so IRQL rules can be checked where Windows would bug-check.
 */
#include "kernel/kernel.h"

_Thread_local unsigned char owfp_irql;

const char *owfp_irql_name(KIRQL level)
{
    switch (level) {
    case PASSIVE_LEVEL:
        return "PASSIVE_LEVEL";
    case APC_LEVEL:
        return "APC_LEVEL";
    case DISPATCH_LEVEL:
        return "DISPATCH_LEVEL";
    case HIGH_LEVEL:
        return "HIGH_LEVEL";
    default:
        return "a device IRQL";
    }
}

void owfp_irql_violation(const char *api)
{
    owfp_kernel_finding("IRQL violation: %s at %s", api, owfp_irql_name(owfp_irql));
}

void owfp_irql_callout_returned_at(unsigned char level, const char *what)
{
    owfp_kernel_finding("IRQL violation: %s returned at %s", what, owfp_irql_name(level));
}

KIRQL NTAPI KeGetCurrentIrql(void)
{
    return owfp_irql;
}

KIRQL NTAPI KfRaiseIrql(KIRQL NewIrql)
{
    KIRQL old = owfp_irql;
    if (NewIrql < old)
        owfp_kernel_finding("IRQL violation: KeRaiseIrql to %s from %s", owfp_irql_name(NewIrql),
                            owfp_irql_name(old));
    owfp_irql = NewIrql;
    return old;
}

KIRQL NTAPI KeRaiseIrqlToDpcLevel(void)
{
    return KfRaiseIrql(DISPATCH_LEVEL);
}

VOID NTAPI KeLowerIrql(KIRQL NewIrql)
{
    /* "Lowering" upwards is the caller's bug; keeping the level stops it
     * from leaking into everything the thread does next. */
    if (NewIrql > owfp_irql) {
        owfp_kernel_finding("IRQL violation: KeLowerIrql to %s from %s", owfp_irql_name(NewIrql),
                            owfp_irql_name(owfp_irql));
        return;
    }
    owfp_irql = NewIrql;
}
