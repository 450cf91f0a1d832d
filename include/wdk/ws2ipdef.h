/*
 * IPv4/IPv6 socket addresses with the Windows layouts (SOCKADDR_IN is 16
 * bytes, SOCKADDR_IN6 and SOCKADDR_INET 28, all 4-byte aligned).
 *
 * Member names are the Windows ones except where the C library defines a
 * macro of that name: <netinet/in.h> turns s6_addr into a path inside its own
 * struct in6_addr, so IN6_ADDR only offers the u.Byte / u.Word spellings.
 * IN_ADDR offers both S_un.S_addr and s_addr as real members, because the
 * Windows macro s_addr cannot be defined without breaking struct in_addr.
 */
#ifndef OPENWFP_WDK_WS2IPDEF_H
#define OPENWFP_WDK_WS2IPDEF_H

#include "ws2def.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef OPENWFP_IN_ADDR_DEFINED
#define OPENWFP_IN_ADDR_DEFINED
typedef struct _OWFP_IN_ADDR {
    union {
        union {
            struct {
                UCHAR s_b1, s_b2, s_b3, s_b4;
            } S_un_b;
            struct {
                USHORT s_w1, s_w2;
            } S_un_w;
            ULONG S_addr;
        } S_un;
        ULONG s_addr; /* network byte order */
    };
} IN_ADDR, *PIN_ADDR, *LPIN_ADDR;
#endif

#ifndef OPENWFP_IN6_ADDR_DEFINED
#define OPENWFP_IN6_ADDR_DEFINED
typedef struct _OWFP_IN6_ADDR {
    union {
        UCHAR Byte[16];
        USHORT Word[8];
    } u;
} IN6_ADDR, *PIN6_ADDR, *LPIN6_ADDR;
#endif

#ifndef OPENWFP_SOCKADDR_IN_DEFINED
#define OPENWFP_SOCKADDR_IN_DEFINED
typedef struct _OWFP_SOCKADDR_IN {
    ADDRESS_FAMILY sin_family;
    USHORT sin_port; /* network byte order */
    IN_ADDR sin_addr;
    CHAR sin_zero[8];
} SOCKADDR_IN, *PSOCKADDR_IN;

typedef struct _OWFP_SOCKADDR_IN6 {
    ADDRESS_FAMILY sin6_family;
    USHORT sin6_port; /* network byte order */
    ULONG sin6_flowinfo;
    IN6_ADDR sin6_addr;
    union {
        ULONG sin6_scope_id;
        SCOPE_ID sin6_scope_struct;
    };
} SOCKADDR_IN6, *PSOCKADDR_IN6, SOCKADDR_IN6_LH, *PSOCKADDR_IN6_LH;

typedef union _OWFP_SOCKADDR_INET {
    SOCKADDR_IN Ipv4;
    SOCKADDR_IN6 Ipv6;
    ADDRESS_FAMILY si_family;
} SOCKADDR_INET, *PSOCKADDR_INET;
#endif

#if defined(__x86_64__) || defined(__aarch64__)
_Static_assert(sizeof(IN_ADDR) == 4, "IN_ADDR layout");
_Static_assert(sizeof(IN6_ADDR) == 16, "IN6_ADDR layout");
_Static_assert(sizeof(SOCKADDR_IN) == 16, "SOCKADDR_IN layout");
_Static_assert(sizeof(SOCKADDR_IN6) == 28, "SOCKADDR_IN6 layout");
_Static_assert(sizeof(SOCKADDR_INET) == 28, "SOCKADDR_INET layout");
_Static_assert(_Alignof(SOCKADDR_INET) == 4, "SOCKADDR_INET layout");
#endif

#ifdef __cplusplus
}
#endif

#endif
