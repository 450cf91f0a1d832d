/* Classification at ALE_FLOW_ESTABLISHED_V4/V6 when a flow opens (spec E1-E5). */
#ifndef OPENWFP_ENGINE_ALE_H
#define OPENWFP_ENGINE_ALE_H

#include "arbitrate.h"

void owfp_ale_flow_established(struct owfp_engine *e, struct owfp_flow *flow,
                               const struct owfp_flow_params *p, struct owfp_verdict *verdict);

#endif
