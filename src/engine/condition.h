/*
 * Filter conditions: validation and translation of FWPM_FILTER_CONDITION0
 * (management form) into FWPS_FILTER_CONDITION0 (run-time form), and
 * evaluation against the incoming values of a classify.
 */
#ifndef OPENWFP_ENGINE_CONDITION_H
#define OPENWFP_ENGINE_CONDITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <fwpmk.h>
#include <fwpsk.h>

#include "layers.h"

/* Validates `n` management conditions for `layer` and builds their run-time
 * form in one allocation (values deep-copied), sorted stably by fieldId with
 * equal fields adjacent. Only runs of consecutive conditions on one field are
 * ORed (FWPM_FILTER0 docs); `reserved` numbers those runs per field so that
 * sorting does not merge two runs (see owfp_condition_same_group).
 * *or_groups is set when some run has more than one condition (the filter then
 * carries FWPS_FILTER_FLAG_OR_CONDITIONS). On n == 0, *out is NULL.
 * Returns STATUS_SUCCESS, STATUS_FWP_CONDITION_NOT_FOUND,
 * STATUS_FWP_TYPE_MISMATCH, STATUS_FWP_MATCH_TYPE_MISMATCH,
 * STATUS_FWP_INVALID_RANGE, STATUS_FWP_OUT_OF_BOUNDS, STATUS_FWP_NULL_POINTER,
 * STATUS_FWP_INVALID_NET_MASK, STATUS_INSUFFICIENT_RESOURCES, and
 * STATUS_FWP_INVALID_PARAMETER for a SID with more than 15 sub-authorities. */
NTSTATUS owfp_conditions_compile(const struct owfp_layer_desc *layer,
                                 const FWPM_FILTER_CONDITION0 *conds, uint32_t n,
                                 FWPS_FILTER_CONDITION0 **out, bool *or_groups);
void owfp_conditions_free(FWPS_FILTER_CONDITION0 *conds);

/* A condition value of a plain type (below FWP_SINGLE_DATA_TYPE_MAX) seen as
 * an FWP_VALUE0: the two unions share offset and size (fwptypes.h). */
static inline FWP_VALUE0 owfp_condition_value_plain(const FWP_CONDITION_VALUE0 *c)
{
    FWP_VALUE0 v;
    v.type = c->type;
    memcpy((char *)&v + offsetof(FWP_VALUE0, uint8),
           (const char *)c + offsetof(FWP_CONDITION_VALUE0, uint8),
           sizeof(v) - offsetof(FWP_VALUE0, uint8));
    return v;
}

/* Adjacent compiled conditions `a`, `b` belong to one OR group. */
static inline bool owfp_condition_same_group(const FWPS_FILTER_CONDITION0 *a,
                                             const FWPS_FILTER_CONDITION0 *b)
{
    return a->fieldId == b->fieldId && a->reserved == b->reserved;
}

/* One past the last condition of the OR group that starts at `i`. */
static inline uint32_t owfp_condition_group_end(const FWPS_FILTER_CONDITION0 *conds, uint32_t n,
                                                uint32_t i)
{
    uint32_t end = i + 1;
    while (end < n && owfp_condition_same_group(&conds[i], &conds[end]))
        end++;
    return end;
}

/* One condition against one incoming value. A value of another type than the
 * condition expects never matches (no implicit conversion, spec §2.4). */
bool owfp_condition_match(const FWPS_FILTER_CONDITION0 *cond, const FWP_VALUE0 *value);

/* All conditions of a filter: OR inside a group (owfp_condition_same_group),
 * AND across groups; zero conditions always match. */
bool owfp_conditions_match(const FWPS_FILTER_CONDITION0 *conds, uint32_t n,
                           const FWPS_INCOMING_VALUES0 *in);

#endif
