/*
 * Checks on flow contexts and registration (spec F4, F6, R7): contexts a
 * callout can never get back, removals of nothing, and unregistering while
 * contexts the driver never removed are still associated.
 */
#include <inttypes.h>

#include "verify/verify_internal.h"

void owfp_verify_associate_no_flow_delete(uint32_t callout_id, uint64_t flow)
{
    owfp_verify_report("F4", "associate-without-flow-delete", callout_id, flow, NULL, NULL,
                       OWFP_VERIFY_BT_STACK,
                       "FwpsFlowAssociateContext0(flow 0x%" PRIx64 ", callout %" PRIu32
                       "): the callout has no flowDeleteFn, so the context could never be "
                       "handed back (refused with STATUS_INVALID_PARAMETER)",
                       flow, callout_id);
}

void owfp_verify_remove_missing(uint32_t callout_id, uint64_t flow, uint16_t layer)
{
    owfp_verify_report("F6", "remove-missing-context", callout_id, flow, NULL, NULL,
                       OWFP_VERIFY_BT_STACK,
                       "FwpsFlowRemoveContext0(flow 0x%" PRIx64 ", layer %u, callout %" PRIu32
                       "): no context is associated (or its removal is already under way): "
                       "STATUS_UNSUCCESSFUL",
                       flow, (unsigned)layer, callout_id);
}

void owfp_verify_remove_pending(uint32_t callout_id)
{
    /* Called under the flow's spin lock: no allocation (the callout's entry
     * exists since it registered). */
    struct owfp_verify_callout *vc = owfp_verify_callout(callout_id, false);
    if (vc)
        atomic_fetch_add(&vc->pending, 1);
}

void owfp_verify_pending_delivered(uint32_t callout_id)
{
    struct owfp_verify_callout *vc = owfp_verify_callout(callout_id, false);
    if (vc)
        atomic_fetch_sub(&vc->pending, 1);
}

void owfp_verify_unregister_busy(uint32_t callout_id, int64_t contexts)
{
    const struct owfp_verify_callout *vc = owfp_verify_callout(callout_id, false);
    long long pending = vc ? atomic_load(&vc->pending) : 0;
    if (pending < 0)
        pending = 0;
    long long never_removed = contexts - pending;
    if (never_removed <= 0)
        return; /* only removals still completing: the retry will succeed */
    owfp_verify_report("R7", "unregister-with-contexts", callout_id, 0, NULL, NULL,
                       OWFP_VERIFY_BT_STACK,
                       "FwpsCalloutUnregister* for callout %" PRIu32 " with %lld flow "
                       "context(s) still associated that the driver never removed: "
                       "STATUS_DEVICE_BUSY (remove each with FwpsFlowRemoveContext0 first)",
                       callout_id, never_removed);
}
