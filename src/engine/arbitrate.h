/*
 * Filter arbitration for one classify at one layer (spec A1-A11, C1-C5, R5,
 * F9): sublayers by priority, filters by weight, callouts called with the
 * rights in force, decisions combined soft/hard with callout vetoes.
 */
#ifndef OPENWFP_ENGINE_ARBITRATE_H
#define OPENWFP_ENGINE_ARBITRATE_H

#include "engine.h"
#include "flow.h"

struct owfp_classify_args {
    uint16_t layer_id;
    const FWPS_INCOMING_VALUES0 *in;
    const FWPS_INCOMING_METADATA_VALUES0 *meta;
    void *layer_data;
    struct owfp_flow *flow; /* NULL at flow-less classifies */
};

struct owfp_verdict {
    uint32_t action;    /* FWP_ACTION_PERMIT or FWP_ACTION_BLOCK */
    bool hard;          /* FWPS_RIGHT_ACTION_WRITE was cleared */
    bool vetoed;        /* a callout's BLOCK overrode a hard PERMIT (A5) */
    bool absorb;        /* FWPS_CLASSIFY_OUT_FLAG_ABSORB with the BLOCK */
    uint64_t filter_id; /* the filter whose decision stands, 0 if none */
};

/* Runs the layer's filters. Must be called inside a read section; brackets
 * the flow's classify state itself. */
void owfp_arbitrate(struct owfp_engine *e, const struct owfp_classify_args *args,
                    struct owfp_verdict *verdict);

#endif
