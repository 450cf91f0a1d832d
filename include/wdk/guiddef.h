/*
 * GUID and DEFINE_GUID. As in the WDK, the DEFINE_GUID part is evaluated on
 * every inclusion: a file that defines INITGUID and includes this header again
 * gets storage for every DEFINE_GUID that follows. Definitions are weak so the
 * same GUID may be instantiated in several translation units.
 */
#ifndef OPENWFP_WDK_GUIDDEF_TYPES
#define OPENWFP_WDK_GUIDDEF_TYPES

#include <stdint.h>
#include <string.h>

typedef struct _GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID, UUID, *PGUID, *LPGUID;
typedef const GUID *LPCGUID, *PCGUID;
typedef const GUID *REFGUID;
typedef GUID IID, CLSID;
typedef const GUID *REFIID;

_Static_assert(sizeof(GUID) == 16, "GUID is 16 bytes");
_Static_assert(_Alignof(GUID) == 4, "GUID is 4-byte aligned");

static inline int IsEqualGUID(const GUID *a, const GUID *b)
{
    return memcmp(a, b, sizeof(GUID)) == 0;
}
#define InlineIsEqualGUID(a, b) IsEqualGUID(a, b)

#endif

#ifdef DEFINE_GUID
#undef DEFINE_GUID
#endif

#ifdef __cplusplus
#define OPENWFP_GUID_EXTERN extern "C"
#else
#define OPENWFP_GUID_EXTERN extern
#endif

#ifdef INITGUID
#define DEFINE_GUID(name, l, w1, w2, b1, b2, b3, b4, b5, b6, b7, b8) \
    OPENWFP_GUID_EXTERN const GUID name __attribute__((weak));       \
    const GUID name __attribute__((weak)) = {l, w1, w2, {b1, b2, b3, b4, b5, b6, b7, b8}}
#else
#define DEFINE_GUID(name, l, w1, w2, b1, b2, b3, b4, b5, b6, b7, b8) \
    OPENWFP_GUID_EXTERN const GUID name
#endif
