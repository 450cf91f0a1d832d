/*
 * IPv4/IPv6 addresses to and from text (the kernel's ip2string.h).
 *
 * Windows declares the address parameters as struct in_addr / in6_addr; here
 * those tags belong to the C library, so the parameters are untyped: drivers
 * pass an IN_ADDR / IN6_ADDR (or a cast of their own) unchanged. Addresses
 * are in network byte order.
 */
#ifndef OPENWFP_WDK_IP2STRING_H
#define OPENWFP_WDK_IP2STRING_H

#include "ntdef.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IPV4_ADDRESS_STRING_BUFFER_SIZE 16 /* "255.255.255.255" */
#define IPV6_ADDRESS_STRING_BUFFER_SIZE 46

/* Return a pointer to the terminating NUL written into S. */
NTSYSAPI PSTR NTAPI RtlIpv4AddressToStringA(const void *Addr, PSTR S);
NTSYSAPI PWSTR NTAPI RtlIpv4AddressToStringW(const void *Addr, PWSTR S);
NTSYSAPI PSTR NTAPI RtlIpv6AddressToStringA(const void *Addr, PSTR S);
NTSYSAPI PWSTR NTAPI RtlIpv6AddressToStringW(const void *Addr, PWSTR S);

/* Strict: exactly four decimal parts. Otherwise 1-4 parts, each decimal,
 * octal (leading 0) or hex (0x), as inet_aton. *Terminator is the first
 * character after the address. STATUS_INVALID_PARAMETER when none parses. */
NTSYSAPI NTSTATUS NTAPI RtlIpv4StringToAddressA(PCSTR S, BOOLEAN Strict, PCSTR *Terminator,
                                                void *Addr);
NTSYSAPI NTSTATUS NTAPI RtlIpv4StringToAddressW(PCWSTR S, BOOLEAN Strict, PCWSTR *Terminator,
                                                void *Addr);
NTSYSAPI NTSTATUS NTAPI RtlIpv6StringToAddressA(PCSTR S, PCSTR *Terminator, void *Addr);
NTSYSAPI NTSTATUS NTAPI RtlIpv6StringToAddressW(PCWSTR S, PCWSTR *Terminator, void *Addr);

#ifdef __cplusplus
}
#endif

#endif
