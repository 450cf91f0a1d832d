/*
 * Run-time (Fwps*) data types: the filter a callout is handed, the incoming
 * values of a classification and the classify result it writes back.
 *
 * FWPS_FILTER0..3 share one layout; they differ only in the provider-context
 * version the last member points to, which the engine fills only for callouts
 * registered with FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT.
 */
#ifndef OPENWFP_WDK_FWPSTYPES_H
#define OPENWFP_WDK_FWPSTYPES_H

#include "fwptypes.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct FWPS_FILTER_CONDITION0_ {
    UINT16 fieldId; /* FWPS_FIELD_<layer>_* index, not a GUID */
    UINT16 reserved;
    FWP_MATCH_TYPE matchType;
    FWP_CONDITION_VALUE0 conditionValue;
} FWPS_FILTER_CONDITION0;

typedef struct FWPS_ACTION0_ {
    FWP_ACTION_TYPE type;
    UINT32 calloutId;
} FWPS_ACTION0;

/* FWPS_FILTERn.flags. */
#define FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT (0x0001)
#define FWPS_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED (0x0002)
#define FWPS_FILTER_FLAG_OR_CONDITIONS (0x0004)
#define FWPS_FILTER_FLAG_HAS_SECURITY_REALM_PROVIDER_CONTEXT (0x0008)
#define FWPS_FILTER_FLAG_SILENT_MODE (0x0010)
#define FWPS_FILTER_FLAG_IPSEC_NO_ACQUIRE_INITIATE (0x0020)
#define FWPS_FILTER_FLAG_RESERVED0 (0x0040)
#define FWPS_FILTER_FLAG_RESERVED1 (0x0080)
#define FWPS_FILTER_FLAG_RESERVED2 (0x0100)

/*
 * Provider contexts carry IPsec/IKE policy unions the engine does not model;
 * callouts only ever receive them by pointer, so they stay incomplete here.
 */
typedef struct FWPM_PROVIDER_CONTEXT0_ FWPM_PROVIDER_CONTEXT0;
typedef struct FWPM_PROVIDER_CONTEXT1_ FWPM_PROVIDER_CONTEXT1;
typedef struct FWPM_PROVIDER_CONTEXT2_ FWPM_PROVIDER_CONTEXT2;
typedef struct FWPM_PROVIDER_CONTEXT3_ FWPM_PROVIDER_CONTEXT3;

typedef struct FWPS_FILTER0_ {
    UINT64 filterId;
    FWP_VALUE0 weight;
    UINT16 subLayerWeight;
    UINT16 flags;
    UINT32 numFilterConditions;
    FWPS_FILTER_CONDITION0 *filterCondition;
    FWPS_ACTION0 action;
    UINT64 context;
    FWPM_PROVIDER_CONTEXT0 *providerContext;
} FWPS_FILTER0;

#if (NTDDI_VERSION >= NTDDI_WIN7)
typedef struct FWPS_FILTER1_ {
    UINT64 filterId;
    FWP_VALUE0 weight;
    UINT16 subLayerWeight;
    UINT16 flags;
    UINT32 numFilterConditions;
    FWPS_FILTER_CONDITION0 *filterCondition;
    FWPS_ACTION0 action;
    UINT64 context;
    FWPM_PROVIDER_CONTEXT1 *providerContext;
} FWPS_FILTER1;
#endif

#if (NTDDI_VERSION >= NTDDI_WIN8)
typedef struct FWPS_FILTER2_ {
    UINT64 filterId;
    FWP_VALUE0 weight;
    UINT16 subLayerWeight;
    UINT16 flags;
    UINT32 numFilterConditions;
    FWPS_FILTER_CONDITION0 *filterCondition;
    FWPS_ACTION0 action;
    UINT64 context;
    FWPM_PROVIDER_CONTEXT2 *providerContext;
} FWPS_FILTER2;
#endif

#if (NTDDI_VERSION >= NTDDI_WIN10_RS3)
typedef struct FWPS_FILTER3_ {
    UINT64 filterId;
    FWP_VALUE0 weight;
    UINT16 subLayerWeight;
    UINT16 flags;
    UINT32 numFilterConditions;
    FWPS_FILTER_CONDITION0 *filterCondition;
    FWPS_ACTION0 action;
    UINT64 context;
    FWPM_PROVIDER_CONTEXT3 *providerContext;
} FWPS_FILTER3;
#endif

typedef struct FWPS_INCOMING_VALUE0_ {
    FWP_VALUE0 value;
} FWPS_INCOMING_VALUE0;

/* incomingValue is indexed by the FWPS_FIELD_<layer>_* ids of layerId. */
typedef struct FWPS_INCOMING_VALUES0_ {
    UINT16 layerId;
    UINT32 valueCount;
    FWPS_INCOMING_VALUE0 *incomingValue;
} FWPS_INCOMING_VALUES0;

typedef enum FWPS_DISCARD_MODULE0_ {
    FWPS_DISCARD_MODULE_NETWORK = 0,
    FWPS_DISCARD_MODULE_TRANSPORT = 1,
    FWPS_DISCARD_MODULE_GENERAL = 2,
    FWPS_DISCARD_MODULE_MAX = 3
} FWPS_DISCARD_MODULE0;

typedef enum FWPS_GENERAL_DISCARD_REASON_ {
    FWPS_DISCARD_FIREWALL_POLICY = 0,
    FWPS_DISCARD_IPSEC = 1,
    FWPS_GENERAL_DISCARD_REASON_MAX = 2
} FWPS_GENERAL_DISCARD_REASON;

typedef struct FWPS_DISCARD_METADATA0_ {
    FWPS_DISCARD_MODULE0 discardModule;
    UINT32 discardReason;
    UINT64 filterId;
} FWPS_DISCARD_METADATA0;

typedef struct FWPS_INBOUND_FRAGMENT_METADATA0_ {
    UINT32 fragmentIdentification;
    UINT16 fragmentOffset;
    ULONG fragmentLength;
} FWPS_INBOUND_FRAGMENT_METADATA0;

/* FWPS_INCOMING_METADATA_VALUES0.flags. */
#define FWPS_INCOMING_FLAG_CACHE_SAFE (0x00000001)
#define FWPS_INCOMING_FLAG_ENFORCE_QUERY (0x00000002)
#define FWPS_INCOMING_FLAG_ABSORB (0x00000004)
#define FWPS_INCOMING_FLAG_CONNECTION_FAILING_INDICATION (0x00000008)
#if (NTDDI_VERSION >= NTDDI_WIN7)
#define FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION (0x00000010)
#define FWPS_INCOMING_FLAG_RECLASSIFY (0x00000020)
#if (NTDDI_VERSION >= NTDDI_WIN8)
#define FWPS_INCOMING_FLAG_IS_LOOSE_SOURCE_FLOW (0x00000040)
#define FWPS_INCOMING_FLAG_IS_LOCAL_ONLY_FLOW (0x00000080)
#define FWPS_L2_INCOMING_FLAG_IS_RAW_IPV4_FRAMING (0x00000001)
#define FWPS_L2_INCOMING_FLAG_IS_RAW_IPV6_FRAMING (0x00000002)
#define FWPS_L2_INCOMING_FLAG_RECLASSIFY_MULTI_DESTINATION (0x00000008)
#if (NTDDI_VERSION >= NTDDI_WIN10_19H1)
#define FWPS_INCOMING_FLAG_RESERVED0 (0x00000100)
#endif
#endif
#endif

/* FWPS_CLASSIFY_OUT0.rights: present = the decision may still be overridden. */
#define FWPS_RIGHT_ACTION_WRITE (0x00000001)

/* FWPS_CLASSIFY_OUT0.flags. */
#define FWPS_CLASSIFY_OUT_FLAG_ABSORB (0x00000001)
#define FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED (0x00000002)
#define FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA (0x00000004)
#define FWPS_CLASSIFY_OUT_FLAG_ALE_FAST_CACHE_CHECK (0x00000008)
#define FWPS_CLASSIFY_OUT_FLAG_ALE_FAST_CACHE_POSSIBLE (0x00000010)

typedef struct FWPS_CLASSIFY_OUT0_ {
    FWP_ACTION_TYPE actionType;
    UINT64 outContext; /* reserved for the engine */
    UINT64 filterId;   /* reserved for the engine */
    UINT32 rights;
    UINT32 flags;
    UINT32 reserved;
} FWPS_CLASSIFY_OUT0;

typedef enum FWPS_CALLOUT_NOTIFY_TYPE_ {
    FWPS_CALLOUT_NOTIFY_ADD_FILTER = 0,
    FWPS_CALLOUT_NOTIFY_DELETE_FILTER = 1,
    FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT = 2,
    FWPS_CALLOUT_NOTIFY_TYPE_MAX = 3
} FWPS_CALLOUT_NOTIFY_TYPE;

#if (NTDDI_VERSION >= NTDDI_WIN7)
#define FWPS_ALE_ENDPOINT_FLAG_IPSEC_SECURED (0x00000001)
#endif

#if defined(__x86_64__) || defined(__aarch64__)
_Static_assert(sizeof(FWPS_FILTER_CONDITION0) == 24, "FWPS_FILTER_CONDITION0 layout");
_Static_assert(offsetof(FWPS_FILTER_CONDITION0, matchType) == 4, "FWPS_FILTER_CONDITION0 layout");
_Static_assert(offsetof(FWPS_FILTER_CONDITION0, conditionValue) == 8,
               "FWPS_FILTER_CONDITION0 layout");
_Static_assert(sizeof(FWPS_ACTION0) == 8, "FWPS_ACTION0 layout");
_Static_assert(sizeof(FWPS_FILTER0) == 64, "FWPS_FILTER0 layout");
_Static_assert(offsetof(FWPS_FILTER0, weight) == 8, "FWPS_FILTER0 layout");
_Static_assert(offsetof(FWPS_FILTER0, subLayerWeight) == 24, "FWPS_FILTER0 layout");
_Static_assert(offsetof(FWPS_FILTER0, flags) == 26, "FWPS_FILTER0 layout");
_Static_assert(offsetof(FWPS_FILTER0, numFilterConditions) == 28, "FWPS_FILTER0 layout");
_Static_assert(offsetof(FWPS_FILTER0, filterCondition) == 32, "FWPS_FILTER0 layout");
_Static_assert(offsetof(FWPS_FILTER0, action) == 40, "FWPS_FILTER0 layout");
_Static_assert(offsetof(FWPS_FILTER0, context) == 48, "FWPS_FILTER0 layout");
_Static_assert(offsetof(FWPS_FILTER0, providerContext) == 56, "FWPS_FILTER0 layout");
#if (NTDDI_VERSION >= NTDDI_WIN10_RS3)
_Static_assert(sizeof(FWPS_FILTER3) == 64, "FWPS_FILTER3 layout");
_Static_assert(offsetof(FWPS_FILTER3, context) == 48, "FWPS_FILTER3 layout");
_Static_assert(offsetof(FWPS_FILTER3, providerContext) == 56, "FWPS_FILTER3 layout");
#endif
_Static_assert(sizeof(FWPS_INCOMING_VALUES0) == 16, "FWPS_INCOMING_VALUES0 layout");
_Static_assert(offsetof(FWPS_INCOMING_VALUES0, valueCount) == 4, "FWPS_INCOMING_VALUES0 layout");
_Static_assert(offsetof(FWPS_INCOMING_VALUES0, incomingValue) == 8,
               "FWPS_INCOMING_VALUES0 layout");
_Static_assert(sizeof(FWPS_DISCARD_METADATA0) == 16, "FWPS_DISCARD_METADATA0 layout");
_Static_assert(sizeof(FWPS_INBOUND_FRAGMENT_METADATA0) == 12,
               "FWPS_INBOUND_FRAGMENT_METADATA0 layout");
_Static_assert(sizeof(FWPS_CLASSIFY_OUT0) == 40, "FWPS_CLASSIFY_OUT0 layout");
_Static_assert(offsetof(FWPS_CLASSIFY_OUT0, outContext) == 8, "FWPS_CLASSIFY_OUT0 layout");
_Static_assert(offsetof(FWPS_CLASSIFY_OUT0, filterId) == 16, "FWPS_CLASSIFY_OUT0 layout");
_Static_assert(offsetof(FWPS_CLASSIFY_OUT0, rights) == 24, "FWPS_CLASSIFY_OUT0 layout");
_Static_assert(offsetof(FWPS_CLASSIFY_OUT0, flags) == 28, "FWPS_CLASSIFY_OUT0 layout");
_Static_assert(offsetof(FWPS_CLASSIFY_OUT0, reserved) == 32, "FWPS_CLASSIFY_OUT0 layout");
#endif

#ifdef __cplusplus
}
#endif

#endif
