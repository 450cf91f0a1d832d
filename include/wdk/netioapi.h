/*
 * The one NetIO helper type the WFP metadata embeds. The IP Helper functions
 * of the Windows header are not provided.
 */
#ifndef OPENWFP_WDK_NETIOAPI_H
#define OPENWFP_WDK_NETIOAPI_H

#include "ws2ipdef.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef OPENWFP_IP_ADDRESS_PREFIX_DEFINED
#define OPENWFP_IP_ADDRESS_PREFIX_DEFINED
typedef struct _IP_ADDRESS_PREFIX {
    SOCKADDR_INET Prefix;
    UINT8 PrefixLength;
} IP_ADDRESS_PREFIX, *PIP_ADDRESS_PREFIX;
#endif

#if defined(__x86_64__) || defined(__aarch64__)
_Static_assert(sizeof(IP_ADDRESS_PREFIX) == 32, "IP_ADDRESS_PREFIX layout");
_Static_assert(_Alignof(IP_ADDRESS_PREFIX) == 4, "IP_ADDRESS_PREFIX layout");
#endif

#ifdef __cplusplus
}
#endif

#endif
