/* Effective filter weights (spec A7): explicit, range-prefixed or automatic. */
#ifndef OPENWFP_ENGINE_WEIGHT_H
#define OPENWFP_ENGINE_WEIGHT_H

#include <stdint.h>

#include <fwpsk.h>

/* `requested` is FWPM_FILTER0.weight; `conds` the compiled conditions.
 * FWP_UINT64: used verbatim. FWP_EMPTY: automatic weight in [0, 2^60).
 * FWP_UINT8 k (0..15): k in the top 4 bits, automatic weight below.
 * Anything else, or k > 15: STATUS_FWP_INVALID_WEIGHT. */
NTSTATUS owfp_weight_effective(const FWP_VALUE0 *requested, const FWPS_FILTER_CONDITION0 *conds,
                               uint32_t n, uint64_t *out);

/* The automatic part alone: more specific conditions give larger values. */
uint64_t owfp_weight_auto(const FWPS_FILTER_CONDITION0 *conds, uint32_t n);

#endif
