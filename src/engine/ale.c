#include "ale.h"

#include <string.h>

/* NL_ADDRESS_TYPE (spec §2.10). */
enum { NL_UNSPECIFIED = 0, NL_UNICAST = 1, NL_MULTICAST = 3, NL_BROADCAST = 4 };

static uint8_t address_type(uint8_t ip_version, const uint8_t *a)
{
    if (ip_version == 4) {
        if (a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 0)
            return NL_UNSPECIFIED;
        if (a[0] >= 224 && a[0] <= 239)
            return NL_MULTICAST;
        if (a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255)
            return NL_BROADCAST;
        return NL_UNICAST;
    }
    static const uint8_t zero[16];
    if (!memcmp(a, zero, 16))
        return NL_UNSPECIFIED;
    return a[0] == 0xff ? NL_MULTICAST : NL_UNICAST;
}

static uint32_t v4_host_order(const uint8_t *a)
{
    return (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
}

static size_t utf16_bytes_with_nul(const uint16_t *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return (n + 1) * sizeof(uint16_t);
}

static void set_addr(FWP_VALUE0 *v, uint8_t ipv, const uint8_t *a, FWP_BYTE_ARRAY16 *storage)
{
    if (ipv == 4) {
        v->type = FWP_UINT32;
        v->uint32 = v4_host_order(a); /* WFP hands IPv4 addresses in host order */
    } else {
        memcpy(storage->byteArray16, a, 16);
        v->type = FWP_BYTE_ARRAY16_TYPE;
        v->byteArray16 = storage;
    }
}

void owfp_ale_flow_established(struct owfp_engine *e, struct owfp_flow *flow,
                               const struct owfp_flow_params *p, struct owfp_verdict *verdict)
{
    bool v6 = p->ip_version == 6;
    uint16_t layer = v6 ? FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6 : FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4;
    FWPS_INCOMING_VALUE0 values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_MAX];
    memset(values, 0, sizeof(values)); /* unset fields are FWP_EMPTY */
    FWP_BYTE_ARRAY16 local6, remote6;
    FWP_BYTE_BLOB app = {0};
    UINT64 luid = p->interface_luid;

    /* The V4 and V6 field numbering is identical (spec §2.11). */
    set_addr(&values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_ADDRESS].value, p->ip_version,
             p->local_addr, &local6);
    set_addr(&values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_ADDRESS].value, p->ip_version,
             p->remote_addr, &remote6);
    FWP_VALUE0 *v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_ADDRESS_TYPE].value;
    v->type = FWP_UINT8;
    v->uint8 = address_type(p->ip_version, p->local_addr);
    v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_DESTINATION_ADDRESS_TYPE].value;
    v->type = FWP_UINT8;
    v->uint8 = address_type(p->ip_version,
                            p->direction == OWFP_OUTBOUND ? p->remote_addr : p->local_addr);
    v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_PORT].value;
    v->type = FWP_UINT16;
    v->uint16 = p->local_port;
    v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT].value;
    v->type = FWP_UINT16;
    v->uint16 = p->remote_port;
    v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_PROTOCOL].value;
    v->type = FWP_UINT8;
    v->uint8 = p->protocol;
    v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_DIRECTION].value;
    v->type = FWP_UINT32;
    v->uint32 = p->direction == OWFP_INBOUND ? FWP_DIRECTION_INBOUND : FWP_DIRECTION_OUTBOUND;
    v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_FLAGS].value;
    v->type = FWP_UINT32;
    v->uint32 = p->condition_flags;
    v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_INTERFACE].value;
    v->type = FWP_UINT64;
    v->uint64 = &luid;
    v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_INTERFACE_TYPE].value;
    v->type = FWP_UINT32;
    v->uint32 = p->interface_type;
    v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_TUNNEL_TYPE].value;
    v->type = FWP_UINT32;
    v->uint32 = 0;
    v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_COMPARTMENT_ID].value;
    v->type = FWP_UINT32;
    v->uint32 = p->compartment_id;
    if (p->app_path) {
        app.size = (UINT32)utf16_bytes_with_nul(p->app_path);
        app.data = (UINT8 *)p->app_path;
        v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_ALE_APP_ID].value;
        v->type = FWP_BYTE_BLOB_TYPE;
        v->byteBlob = &app;
        v = &values[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_ALE_ORIGINAL_APP_ID].value;
        v->type = FWP_BYTE_BLOB_TYPE;
        v->byteBlob = &app;
    }

    FWPS_INCOMING_VALUES0 in = {
        .layerId = layer,
        .valueCount = FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_MAX,
        .incomingValue = values,
    };
    /* Spec E2: msnmntr reads processPath, so it is always present (empty
     * when the data plane does not know the application). */
    static const uint16_t no_path[1] = {0};
    FWP_BYTE_BLOB path = p->app_path ? app : (FWP_BYTE_BLOB){sizeof(no_path), (UINT8 *)no_path};
    FWPS_INCOMING_METADATA_VALUES0 meta;
    memset(&meta, 0, sizeof(meta));
    meta.currentMetadataValues = FWPS_METADATA_FIELD_FLOW_HANDLE |
                                 FWPS_METADATA_FIELD_PROCESS_PATH |
                                 FWPS_METADATA_FIELD_PROCESS_ID |
                                 FWPS_METADATA_FIELD_TRANSPORT_ENDPOINT_HANDLE |
                                 FWPS_METADATA_FIELD_COMPARTMENT_ID |
                                 FWPS_METADATA_FIELD_PACKET_DIRECTION;
    meta.flowHandle = flow->id;
    meta.processPath = &path;
    meta.processId = p->process_id;
    meta.transportEndpointHandle = flow->id;
    meta.compartmentId = p->compartment_id;
    meta.packetDirection =
        p->direction == OWFP_INBOUND ? FWP_DIRECTION_INBOUND : FWP_DIRECTION_OUTBOUND;

    struct owfp_classify_args args = {layer, &in, &meta, NULL, flow};
    owfp_rcu_read_lock();
    owfp_arbitrate(e, &args, verdict);
    owfp_rcu_read_unlock();
}
