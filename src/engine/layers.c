#include "layers.h"

#include <fwpmk.h>

#define FIELD(guid, id, type) {&(guid), (id), (type)}

#define STREAM_FIELDS(v, ADDR_TYPE)                                                          \
    static const struct owfp_field_desc stream_##v##_fields[] = {                             \
        FIELD(FWPM_CONDITION_IP_LOCAL_ADDRESS, FWPS_FIELD_STREAM_##v##_IP_LOCAL_ADDRESS,       \
              ADDR_TYPE),                                                                    \
        FIELD(FWPM_CONDITION_IP_LOCAL_ADDRESS_TYPE,                                          \
              FWPS_FIELD_STREAM_##v##_IP_LOCAL_ADDRESS_TYPE, FWP_UINT8),                       \
        FIELD(FWPM_CONDITION_IP_REMOTE_ADDRESS, FWPS_FIELD_STREAM_##v##_IP_REMOTE_ADDRESS,     \
              ADDR_TYPE),                                                                    \
        FIELD(FWPM_CONDITION_IP_LOCAL_PORT, FWPS_FIELD_STREAM_##v##_IP_LOCAL_PORT, FWP_UINT16), \
        FIELD(FWPM_CONDITION_IP_REMOTE_PORT, FWPS_FIELD_STREAM_##v##_IP_REMOTE_PORT,           \
              FWP_UINT16),                                                                   \
        FIELD(FWPM_CONDITION_DIRECTION, FWPS_FIELD_STREAM_##v##_DIRECTION, FWP_UINT32),        \
        FIELD(FWPM_CONDITION_FLAGS, FWPS_FIELD_STREAM_##v##_FLAGS, FWP_UINT32),                \
        FIELD(FWPM_CONDITION_COMPARTMENT_ID, FWPS_FIELD_STREAM_##v##_COMPARTMENT_ID,           \
              FWP_UINT32),                                                                   \
    }

STREAM_FIELDS(V4, FWP_UINT32);
STREAM_FIELDS(V6, FWP_BYTE_ARRAY16_TYPE);

/* User ids and the package id are security objects the engine cannot
 * evaluate; their incoming values are FWP_EMPTY, so conditions on them never
 * match (documented in docs/semantics.md). */
#define ALE_FIELDS(v, ADDR_TYPE)                                                             \
    static const struct owfp_field_desc ale_##v##_fields[] = {                                \
        FIELD(FWPM_CONDITION_ALE_APP_ID, FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_ALE_APP_ID,     \
              FWP_BYTE_BLOB_TYPE),                                                           \
        FIELD(FWPM_CONDITION_ALE_USER_ID, FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_ALE_USER_ID,   \
              FWP_TOKEN_ACCESS_INFORMATION_TYPE),                                            \
        FIELD(FWPM_CONDITION_IP_LOCAL_ADDRESS,                                               \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_IP_LOCAL_ADDRESS, ADDR_TYPE),              \
        FIELD(FWPM_CONDITION_IP_LOCAL_ADDRESS_TYPE,                                          \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_IP_LOCAL_ADDRESS_TYPE, FWP_UINT8),         \
        FIELD(FWPM_CONDITION_IP_LOCAL_PORT, FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_IP_LOCAL_PORT, \
              FWP_UINT16),                                                                   \
        FIELD(FWPM_CONDITION_IP_PROTOCOL, FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_IP_PROTOCOL,   \
              FWP_UINT8),                                                                    \
        FIELD(FWPM_CONDITION_IP_REMOTE_ADDRESS,                                              \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_IP_REMOTE_ADDRESS, ADDR_TYPE),             \
        FIELD(FWPM_CONDITION_IP_REMOTE_PORT,                                                 \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_IP_REMOTE_PORT, FWP_UINT16),               \
        FIELD(FWPM_CONDITION_ALE_REMOTE_USER_ID,                                             \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_ALE_REMOTE_USER_ID,                        \
              FWP_TOKEN_ACCESS_INFORMATION_TYPE),                                            \
        FIELD(FWPM_CONDITION_ALE_REMOTE_MACHINE_ID,                                          \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_ALE_REMOTE_MACHINE_ID,                     \
              FWP_TOKEN_ACCESS_INFORMATION_TYPE),                                            \
        FIELD(FWPM_CONDITION_IP_DESTINATION_ADDRESS_TYPE,                                    \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_IP_DESTINATION_ADDRESS_TYPE, FWP_UINT8),   \
        FIELD(FWPM_CONDITION_IP_LOCAL_INTERFACE,                                             \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_IP_LOCAL_INTERFACE, FWP_UINT64),           \
        FIELD(FWPM_CONDITION_DIRECTION, FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_DIRECTION,       \
              FWP_UINT32),                                                                   \
        FIELD(FWPM_CONDITION_INTERFACE_TYPE,                                                 \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_INTERFACE_TYPE, FWP_UINT32),               \
        FIELD(FWPM_CONDITION_TUNNEL_TYPE, FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_TUNNEL_TYPE,   \
              FWP_UINT32),                                                                   \
        FIELD(FWPM_CONDITION_FLAGS, FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_FLAGS, FWP_UINT32),  \
        FIELD(FWPM_CONDITION_ALE_ORIGINAL_APP_ID,                                            \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_ALE_ORIGINAL_APP_ID, FWP_BYTE_BLOB_TYPE),  \
        FIELD(FWPM_CONDITION_ALE_PACKAGE_ID,                                                 \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_ALE_PACKAGE_ID, FWP_SID),                  \
        FIELD(FWPM_CONDITION_ALE_SECURITY_ATTRIBUTE_FQBN_VALUE,                              \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_ALE_SECURITY_ATTRIBUTE_FQBN_VALUE,         \
              FWP_BYTE_BLOB_TYPE),                                                           \
        FIELD(FWPM_CONDITION_COMPARTMENT_ID,                                                 \
              FWPS_FIELD_ALE_FLOW_ESTABLISHED_##v##_COMPARTMENT_ID, FWP_UINT32),               \
    }

ALE_FIELDS(V4, FWP_UINT32);
ALE_FIELDS(V6, FWP_BYTE_ARRAY16_TYPE);

#define N(a) (uint32_t)(sizeof(a) / sizeof((a)[0]))

/* Layers without fields here only take flow contexts (spec F3). */
static const struct owfp_layer_desc layers[] = {
    {FWPS_LAYER_STREAM_V4, &FWPM_LAYER_STREAM_V4, "STREAM_V4", FWPS_FIELD_STREAM_V4_MAX,
     stream_V4_fields, N(stream_V4_fields), true, true, true, FWP_IP_VERSION_V4},
    {FWPS_LAYER_STREAM_V6, &FWPM_LAYER_STREAM_V6, "STREAM_V6", FWPS_FIELD_STREAM_V6_MAX,
     stream_V6_fields, N(stream_V6_fields), true, true, true, FWP_IP_VERSION_V6},
    {FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4, &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4,
     "ALE_FLOW_ESTABLISHED_V4", FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_MAX, ale_V4_fields,
     N(ale_V4_fields), true, true, false, FWP_IP_VERSION_V4},
    {FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6, &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6,
     "ALE_FLOW_ESTABLISHED_V6", FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_MAX, ale_V6_fields,
     N(ale_V6_fields), true, true, false, FWP_IP_VERSION_V6},
    {FWPS_LAYER_DATAGRAM_DATA_V4, &FWPM_LAYER_DATAGRAM_DATA_V4, "DATAGRAM_DATA_V4", 0, NULL, 0,
     false, true, false, FWP_IP_VERSION_V4},
    {FWPS_LAYER_DATAGRAM_DATA_V6, &FWPM_LAYER_DATAGRAM_DATA_V6, "DATAGRAM_DATA_V6", 0, NULL, 0,
     false, true, false, FWP_IP_VERSION_V6},
    {FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V4, &FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V4,
     "ALE_ENDPOINT_CLOSURE_V4", 0, NULL, 0, false, true, false, FWP_IP_VERSION_V4},
    {FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V6, &FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V6,
     "ALE_ENDPOINT_CLOSURE_V6", 0, NULL, 0, false, true, false, FWP_IP_VERSION_V6},
    {FWPS_LAYER_INBOUND_TRANSPORT_V4, &FWPM_LAYER_INBOUND_TRANSPORT_V4, "INBOUND_TRANSPORT_V4",
     0, NULL, 0, false, true, false, FWP_IP_VERSION_V4},
    {FWPS_LAYER_INBOUND_TRANSPORT_V6, &FWPM_LAYER_INBOUND_TRANSPORT_V6, "INBOUND_TRANSPORT_V6",
     0, NULL, 0, false, true, false, FWP_IP_VERSION_V6},
    {FWPS_LAYER_OUTBOUND_TRANSPORT_V4, &FWPM_LAYER_OUTBOUND_TRANSPORT_V4,
     "OUTBOUND_TRANSPORT_V4", 0, NULL, 0, false, true, false, FWP_IP_VERSION_V4},
    {FWPS_LAYER_OUTBOUND_TRANSPORT_V6, &FWPM_LAYER_OUTBOUND_TRANSPORT_V6,
     "OUTBOUND_TRANSPORT_V6", 0, NULL, 0, false, true, false, FWP_IP_VERSION_V6},
    {FWPS_LAYER_STREAM_PACKET_V4, &FWPM_LAYER_STREAM_PACKET_V4, "STREAM_PACKET_V4", 0, NULL, 0,
     false, true, false, FWP_IP_VERSION_V4},
    {FWPS_LAYER_STREAM_PACKET_V6, &FWPM_LAYER_STREAM_PACKET_V6, "STREAM_PACKET_V6", 0, NULL, 0,
     false, true, false, FWP_IP_VERSION_V6},
};

const struct owfp_layer_desc *owfp_layer_by_id(uint16_t id)
{
    for (uint32_t i = 0; i < N(layers); i++)
        if (layers[i].id == id)
            return &layers[i];
    return NULL;
}

const struct owfp_layer_desc *owfp_layer_by_key(const GUID *key)
{
    if (!key)
        return NULL;
    for (uint32_t i = 0; i < N(layers); i++)
        if (IsEqualGUID(layers[i].key, key))
            return &layers[i];
    return NULL;
}

const struct owfp_field_desc *owfp_layer_field_by_key(const struct owfp_layer_desc *layer,
                                                      const GUID *key)
{
    for (uint32_t i = 0; i < layer->field_count; i++)
        if (IsEqualGUID(layer->fields[i].key, key))
            return &layer->fields[i];
    return NULL;
}

const struct owfp_field_desc *owfp_layer_field_by_id(const struct owfp_layer_desc *layer,
                                                     uint16_t id)
{
    for (uint32_t i = 0; i < layer->field_count; i++)
        if (layer->fields[i].id == id)
            return &layer->fields[i];
    return NULL;
}
