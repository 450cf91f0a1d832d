/*
 * Winsock base definitions that the WFP run-time structures embed, with the
 * Windows (LLP64) layouts. Only what fwpsk.h needs is here.
 *
 * The structure tags are private (_OWFP_*) so that these types can share a
 * translation unit with the C library's struct sockaddr and friends; the
 * typedef names are the Windows ones.
 */
#ifndef OPENWFP_WDK_WS2DEF_H
#define OPENWFP_WDK_WS2DEF_H

#include "ntdef.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef USHORT ADDRESS_FAMILY;

/*
 * Address families. Windows numbers AF_INET6 23, Linux 10. On Linux the
 * macros are spelled exactly as the C library spells them, so <sys/socket.h>
 * may be included before or after this header without a redefinition; the
 * engine accepts both 10 and 23 wherever a caller passes an address family.
 */
#if defined(__linux__)
#ifndef PF_UNSPEC
#define PF_UNSPEC 0
#endif
#ifndef PF_INET
#define PF_INET 2
#endif
#ifndef PF_INET6
#define PF_INET6 10
#endif
#ifndef AF_UNSPEC
#define AF_UNSPEC PF_UNSPEC
#endif
#ifndef AF_INET
#define AF_INET PF_INET
#endif
#ifndef AF_INET6
#define AF_INET6 PF_INET6
#endif
#else
#ifndef AF_UNSPEC
#define AF_UNSPEC 0
#endif
#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 23
#endif
#endif

/* The Windows value of AF_INET6, for code that must recognise it explicitly. */
#define OPENWFP_AF_INET6_WINDOWS 23

#ifndef OPENWFP_SOCKADDR_DEFINED
#define OPENWFP_SOCKADDR_DEFINED
typedef struct _OWFP_SOCKADDR {
    ADDRESS_FAMILY sa_family;
    CHAR sa_data[14];
} SOCKADDR, *PSOCKADDR, *LPSOCKADDR;
#endif

#ifndef OPENWFP_SCOPE_ID_DEFINED
#define OPENWFP_SCOPE_ID_DEFINED
typedef enum {
    ScopeLevelInterface = 1,
    ScopeLevelLink = 2,
    ScopeLevelSubnet = 3,
    ScopeLevelAdmin = 4,
    ScopeLevelSite = 5,
    ScopeLevelOrganization = 8,
    ScopeLevelGlobal = 14,
    ScopeLevelCount = 16
} SCOPE_LEVEL;

typedef struct _OWFP_SCOPE_ID {
    union {
        struct {
            ULONG Zone : 28;
            ULONG Level : 4;
        };
        ULONG Value;
    };
} SCOPE_ID, *PSCOPE_ID;

#define SCOPEID_UNSPECIFIED_INIT {0}
#endif

#ifndef OPENWFP_WSACMSGHDR_DEFINED
#define OPENWFP_WSACMSGHDR_DEFINED
/* Ancillary-data header handed to transport injection; size first, as on Windows. */
typedef struct _WSACMSGHDR {
    SIZE_T cmsg_len;
    INT cmsg_level;
    INT cmsg_type;
} WSACMSGHDR, *PWSACMSGHDR, *LPWSACMSGHDR;
#endif

/*
 * IP protocol numbers (IANA; Windows and Linux agree on every value). The
 * C library declares the same names as enumerators in <netinet/in.h>: when it
 * came first its names are used; host code that wants both headers includes
 * <netinet/in.h> before this one.
 */
#ifndef OPENWFP_IPPROTO_DEFINED
#define OPENWFP_IPPROTO_DEFINED
#if defined(_NETINET_IN_H)
typedef int IPPROTO, *PIPPROTO;
#else
typedef enum {
    IPPROTO_IP = 0,
    IPPROTO_HOPOPTS = 0,
    IPPROTO_ICMP = 1,
    IPPROTO_IGMP = 2,
    IPPROTO_GGP = 3,
    IPPROTO_IPV4 = 4,
    IPPROTO_ST = 5,
    IPPROTO_TCP = 6,
    IPPROTO_CBT = 7,
    IPPROTO_EGP = 8,
    IPPROTO_IGP = 9,
    IPPROTO_PUP = 12,
    IPPROTO_UDP = 17,
    IPPROTO_IDP = 22,
    IPPROTO_RDP = 27,
    IPPROTO_IPV6 = 41,
    IPPROTO_ROUTING = 43,
    IPPROTO_FRAGMENT = 44,
    IPPROTO_ESP = 50,
    IPPROTO_AH = 51,
    IPPROTO_ICMPV6 = 58,
    IPPROTO_NONE = 59,
    IPPROTO_DSTOPTS = 60,
    IPPROTO_ND = 77,
    IPPROTO_ICLFXBM = 78,
    IPPROTO_PIM = 103,
    IPPROTO_PGM = 113,
    IPPROTO_L2TP = 115,
    IPPROTO_SCTP = 132,
    IPPROTO_RAW = 255,
    IPPROTO_MAX = 256,
} IPPROTO, *PIPPROTO;
#endif
#endif

#if defined(__x86_64__) || defined(__aarch64__)
_Static_assert(sizeof(SOCKADDR) == 16, "SOCKADDR layout");
_Static_assert(sizeof(SCOPE_ID) == 4, "SCOPE_ID layout");
_Static_assert(sizeof(WSACMSGHDR) == 16, "WSACMSGHDR layout");
#endif

#ifdef __cplusplus
}
#endif

#endif
