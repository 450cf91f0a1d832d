/*
 * The filtering layers the engine knows: run-time id, management GUID, the
 * fields a filter may test there and the type of each incoming value.
 */
#ifndef OPENWFP_ENGINE_LAYERS_H
#define OPENWFP_ENGINE_LAYERS_H

#include <stdbool.h>
#include <stdint.h>

#include <fwpsk.h>

struct owfp_field_desc {
    const GUID *key;     /* FWPM_CONDITION_* */
    uint16_t id;         /* FWPS_FIELD_<layer>_* */
    uint32_t value_type; /* FWP_DATA_TYPE of the incoming value */
};

struct owfp_layer_desc {
    uint16_t id;         /* FWPS_LAYER_* */
    const GUID *key;     /* FWPM_LAYER_* */
    const char *name;
    uint32_t value_count; /* FWPS_FIELD_<layer>_MAX, 0 for layers without fields */
    const struct owfp_field_desc *fields;
    uint32_t field_count;
    bool filterable;      /* filters may be added here */
    bool flow_capable;    /* FwpsFlowAssociateContext0 accepts it (spec F3) */
    bool is_stream;       /* layerData is FWPS_STREAM_CALLOUT_IO_PACKET0 */
    uint8_t ip_version;   /* FWP_IP_VERSION_V4 / _V6 / _NONE */
};

const struct owfp_layer_desc *owfp_layer_by_id(uint16_t id);
const struct owfp_layer_desc *owfp_layer_by_key(const GUID *key);
const struct owfp_field_desc *owfp_layer_field_by_key(const struct owfp_layer_desc *layer,
                                                      const GUID *key);
const struct owfp_field_desc *owfp_layer_field_by_id(const struct owfp_layer_desc *layer,
                                                     uint16_t id);

#endif
