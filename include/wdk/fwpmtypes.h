/*
 * Management (Fwpm*) object types: sessions, providers, sublayers, callouts
 * and filters as a callout driver adds them through the kernel Fwpm API.
 *
 * Only the objects the engine manages are declared. Provider contexts,
 * enumeration templates, net events and IPsec/IKE policy are left out; the
 * provider-context structs stay incomplete (see fwpstypes.h).
 */
#ifndef OPENWFP_WDK_FWPMTYPES_H
#define OPENWFP_WDK_FWPMTYPES_H

#include "fwptypes.h"
#include "fwpstypes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Authentication arguments of FwpmEngineOpen0; in-process callers pass these. */
#ifndef RPC_C_AUTHN_NONE
#define RPC_C_AUTHN_NONE 0
#endif
#ifndef RPC_C_AUTHN_WINNT
#define RPC_C_AUTHN_WINNT 10
#endif
#ifndef RPC_C_AUTHN_DEFAULT
#define RPC_C_AUTHN_DEFAULT 0xFFFFFFFF
#endif

#ifndef OPENWFP_SEC_WINNT_AUTH_IDENTITY_DEFINED
#define OPENWFP_SEC_WINNT_AUTH_IDENTITY_DEFINED
/* Remote-engine credentials; the in-process engine never looks inside. */
typedef struct _SEC_WINNT_AUTH_IDENTITY_W SEC_WINNT_AUTH_IDENTITY_W, *PSEC_WINNT_AUTH_IDENTITY_W;
#endif

#ifndef INFINITE
#define INFINITE 0xFFFFFFFF
#endif

typedef enum FWPM_CHANGE_TYPE_ {
    FWPM_CHANGE_ADD = 1,
    FWPM_CHANGE_DELETE = 2,
    FWPM_CHANGE_TYPE_MAX = 3
} FWPM_CHANGE_TYPE;

#define FWPM_SUBSCRIPTION_FLAG_NOTIFY_ON_ADD (0x00000001)
#define FWPM_SUBSCRIPTION_FLAG_NOTIFY_ON_DELETE (0x00000002)

typedef enum FWPM_SERVICE_STATE_ {
    FWPM_SERVICE_STOPPED = 0,
    FWPM_SERVICE_START_PENDING = 1,
    FWPM_SERVICE_STOP_PENDING = 2,
    FWPM_SERVICE_RUNNING = 3,
    FWPM_SERVICE_STATE_MAX = 4
} FWPM_SERVICE_STATE;

typedef enum FWPM_ENGINE_OPTION_ {
    FWPM_ENGINE_COLLECT_NET_EVENTS = 0,
    FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS = 1,
    FWPM_ENGINE_NAME_CACHE = 2,
    FWPM_ENGINE_MONITOR_IPSEC_CONNECTIONS = 3,
    FWPM_ENGINE_PACKET_QUEUING = 4,
    FWPM_ENGINE_TXN_WATCHDOG_TIMEOUT_IN_MSEC = 5,
    FWPM_ENGINE_OPTION_MAX = 6
} FWPM_ENGINE_OPTION;

/* Objects added through a dynamic session disappear when it closes. */
#define FWPM_SESSION_FLAG_DYNAMIC (0x00000001)
#if (NTDDI_VERSION >= NTDDI_WIN7)
#define FWPM_SESSION_FLAG_RESERVED (0x10000000)
#endif

typedef struct FWPM_SESSION0_ {
    GUID sessionKey;
    FWPM_DISPLAY_DATA0 displayData;
    UINT32 flags;
    UINT32 txnWaitTimeoutInMSec;
    DWORD processId;
    SID *sid;
    WCHAR *username;
    BOOL kernelMode;
} FWPM_SESSION0;

/* FwpmTransactionBegin0 flags. */
#define FWPM_TXN_READ_ONLY (0x00000001)

#define FWPM_PROVIDER_FLAG_PERSISTENT (0x00000001)
#define FWPM_PROVIDER_FLAG_DISABLED (0x00000010)

typedef struct FWPM_PROVIDER0_ {
    GUID providerKey;
    FWPM_DISPLAY_DATA0 displayData;
    UINT32 flags;
    FWP_BYTE_BLOB providerData;
    WCHAR *serviceName;
} FWPM_PROVIDER0;

#define FWPM_PROVIDER_CONTEXT_FLAG_PERSISTENT (0x00000001)
#if (NTDDI_VERSION >= NTDDI_WIN8)
#define FWPM_PROVIDER_CONTEXT_FLAG_DOWNLEVEL (0x00000002)
#endif

#define FWPM_SUBLAYER_FLAG_PERSISTENT (0x00000001)

/*
 * flags is 32 bits as in the Microsoft header (mingw-w64 says 16); the next
 * member is pointer-aligned, so both spellings give the same layout.
 */
typedef struct FWPM_SUBLAYER0_ {
    GUID subLayerKey;
    FWPM_DISPLAY_DATA0 displayData;
    UINT32 flags;
    GUID *providerKey;
    FWP_BYTE_BLOB providerData;
    UINT16 weight; /* higher is evaluated first */
} FWPM_SUBLAYER0;

#define FWPM_LAYER_FLAG_KERNEL (0x00000001)
#define FWPM_LAYER_FLAG_BUILTIN (0x00000002)
#define FWPM_LAYER_FLAG_CLASSIFY_MOSTLY (0x00000004)
#define FWPM_LAYER_FLAG_BUFFERED (0x00000008)

/* Flags live in the upper half so they cannot collide with FWP_CALLOUT_FLAG_*. */
#define FWPM_CALLOUT_FLAG_PERSISTENT (0x00010000)
#define FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT (0x00020000)
#define FWPM_CALLOUT_FLAG_REGISTERED (0x00040000)

typedef struct FWPM_CALLOUT0_ {
    GUID calloutKey;
    FWPM_DISPLAY_DATA0 displayData;
    UINT32 flags;
    GUID *providerKey;
    FWP_BYTE_BLOB providerData;
    GUID applicableLayer;
    UINT32 calloutId; /* output only */
} FWPM_CALLOUT0;

/* calloutKey is meaningful for the FWP_ACTION_CALLOUT_* types, filterType otherwise. */
typedef struct FWPM_ACTION0_ {
    FWP_ACTION_TYPE type;
    union {
        GUID filterType;
        GUID calloutKey;
    };
} FWPM_ACTION0;

typedef struct FWPM_FILTER_CONDITION0_ {
    GUID fieldKey; /* FWPM_CONDITION_* */
    FWP_MATCH_TYPE matchType;
    FWP_CONDITION_VALUE0 conditionValue;
} FWPM_FILTER_CONDITION0;

#define FWPM_FILTER_FLAG_NONE (0x00000000)
#define FWPM_FILTER_FLAG_PERSISTENT (0x00000001)
#define FWPM_FILTER_FLAG_BOOTTIME (0x00000002)
#define FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT (0x00000004)
#define FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT (0x00000008)
#define FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED (0x00000010)
#define FWPM_FILTER_FLAG_DISABLED (0x00000020)
#define FWPM_FILTER_FLAG_INDEXED (0x00000040)
#define FWPM_FILTER_FLAG_HAS_SECURITY_REALM_PROVIDER_CONTEXT (0x00000080)
#define FWPM_FILTER_FLAG_SYSTEMOS_ONLY (0x00000100)
#define FWPM_FILTER_FLAG_GAMEOS_ONLY (0x00000200)
#define FWPM_FILTER_FLAG_SILENT_MODE (0x00000400)
#define FWPM_FILTER_FLAG_IPSEC_NO_ACQUIRE_INITIATE (0x00000800)
#define FWPM_FILTER_FLAG_RESERVED0 (0x00001000)
#define FWPM_FILTER_FLAG_RESERVED1 (0x00002000)

typedef struct FWPM_FILTER0_ {
    GUID filterKey;
    FWPM_DISPLAY_DATA0 displayData;
    UINT32 flags;
    GUID *providerKey;
    FWP_BYTE_BLOB providerData;
    GUID layerKey;
    GUID subLayerKey;
    FWP_VALUE0 weight;
    UINT32 numFilterConditions;
    FWPM_FILTER_CONDITION0 *filterCondition;
    FWPM_ACTION0 action;
    /* providerContextKey when FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT is set */
    union {
        UINT64 rawContext;
        GUID providerContextKey;
    };
    GUID *reserved;
    UINT64 filterId;            /* output only */
    FWP_VALUE0 effectiveWeight; /* output only */
} FWPM_FILTER0;

/* Weight ranges: an FWP_UINT8 weight k in [0, FWPM_WEIGHT_RANGE_MAX] selects
 * the top four bits, the engine fills the low FWPM_AUTO_WEIGHT_BITS. */
#define FWPM_AUTO_WEIGHT_BITS (60)
#define FWPM_AUTO_WEIGHT_MAX (UINT64_MAX >> 4)
#define FWPM_WEIGHT_RANGE_MAX (UINT64_MAX >> 60)
#define FWPM_WEIGHT_RANGE_IPSEC (0x0)
#define FWPM_WEIGHT_RANGE_IKE_EXEMPTIONS (0xc)

#if defined(__x86_64__) || defined(__aarch64__)
_Static_assert(sizeof(FWPM_SESSION0) == 72, "FWPM_SESSION0 layout");
_Static_assert(offsetof(FWPM_SESSION0, kernelMode) == 64, "FWPM_SESSION0 layout");
_Static_assert(sizeof(FWPM_PROVIDER0) == 64, "FWPM_PROVIDER0 layout");
_Static_assert(sizeof(FWPM_SUBLAYER0) == 72, "FWPM_SUBLAYER0 layout");
_Static_assert(offsetof(FWPM_SUBLAYER0, flags) == 32, "FWPM_SUBLAYER0 layout");
_Static_assert(offsetof(FWPM_SUBLAYER0, providerKey) == 40, "FWPM_SUBLAYER0 layout");
_Static_assert(offsetof(FWPM_SUBLAYER0, weight) == 64, "FWPM_SUBLAYER0 layout");
_Static_assert(sizeof(FWPM_CALLOUT0) == 88, "FWPM_CALLOUT0 layout");
_Static_assert(offsetof(FWPM_CALLOUT0, applicableLayer) == 64, "FWPM_CALLOUT0 layout");
_Static_assert(offsetof(FWPM_CALLOUT0, calloutId) == 80, "FWPM_CALLOUT0 layout");
_Static_assert(sizeof(FWPM_ACTION0) == 20, "FWPM_ACTION0 layout");
_Static_assert(_Alignof(FWPM_ACTION0) == 4, "FWPM_ACTION0 layout");
_Static_assert(sizeof(FWPM_FILTER_CONDITION0) == 40, "FWPM_FILTER_CONDITION0 layout");
_Static_assert(sizeof(FWPM_FILTER0) == 200, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, flags) == 32, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, providerKey) == 40, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, providerData) == 48, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, layerKey) == 64, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, subLayerKey) == 80, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, weight) == 96, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, numFilterConditions) == 112, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, filterCondition) == 120, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, action) == 128, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, rawContext) == 152, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, reserved) == 168, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, filterId) == 176, "FWPM_FILTER0 layout");
_Static_assert(offsetof(FWPM_FILTER0, effectiveWeight) == 184, "FWPM_FILTER0 layout");
#endif

#ifdef __cplusplus
}
#endif

#endif
