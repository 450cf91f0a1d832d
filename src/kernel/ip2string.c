/*
 * IP addresses to and from text. Output follows RFC 5952, as Windows does:
 * lower-case hex, the longest run of two or more zero groups (the first one
 * on a tie) written "::", and IPv4-mapped addresses as ::ffff:a.b.c.d.
 */
#include <stdio.h>

#include <ip2string.h>

#include "kernel/kernel.h"

static size_t v4_text(const UCHAR *a, char *out)
{
    return (size_t)sprintf(out, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
}

static size_t v6_text(const UCHAR *a, char *out)
{
    uint16_t g[8];
    for (int i = 0; i < 8; i++)
        g[i] = (uint16_t)(a[2 * i] << 8 | a[2 * i + 1]);
    static const UCHAR mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0) {
        memcpy(out, "::ffff:", 7);
        return 7 + v4_text(a + 12, out + 7);
    }
    int best = -1, best_len = 1; /* a single zero group is not compressed */
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && g[j] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j > i ? j : i + 1;
    }
    size_t n = 0;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            out[n++] = ':';
            if (i == 0)
                out[n++] = ':';
            i += best_len - 1;
            continue;
        }
        n += (size_t)sprintf(out + n, "%x", g[i]);
        if (i < 7)
            out[n++] = ':';
    }
    out[n] = '\0';
    return n;
}

static PWSTR widen(const char *s, size_t n, PWSTR out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (WCHAR)(unsigned char)s[i];
    out[n] = 0;
    return out + n;
}

PSTR NTAPI RtlIpv4AddressToStringA(const void *Addr, PSTR S)
{
    return S + v4_text(Addr, S);
}

PWSTR NTAPI RtlIpv4AddressToStringW(const void *Addr, PWSTR S)
{
    char t[IPV4_ADDRESS_STRING_BUFFER_SIZE];
    return widen(t, v4_text(Addr, t), S);
}

PSTR NTAPI RtlIpv6AddressToStringA(const void *Addr, PSTR S)
{
    return S + v6_text(Addr, S);
}

PWSTR NTAPI RtlIpv6AddressToStringW(const void *Addr, PWSTR S)
{
    char t[IPV6_ADDRESS_STRING_BUFFER_SIZE];
    return widen(t, v6_text(Addr, t), S);
}

/* ---- parsing ---------------------------------------------------------------- */

static int digit(unsigned c, unsigned base)
{
    unsigned d = c >= '0' && c <= '9'   ? c - '0'
                 : c >= 'a' && c <= 'f' ? c - 'a' + 10
                 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                        : 99;
    return d < base ? (int)d : -1;
}

/* Parses from character i0; returns the characters consumed (0 = no address). */
static size_t parse_v4(const void *s, bool wide, size_t i0, bool strict, UCHAR out[4])
{
    uint64_t part[4];
    int parts = 0;
    size_t i = i0;
    for (;;) {
        unsigned base = 10;
        if (!strict && owfp_unit_at(s, wide, i) == '0') {
            base = 8;
            if (owfp_unit_at(s, wide, i + 1) == 'x' || owfp_unit_at(s, wide, i + 1) == 'X') {
                base = 16;
                i += 2;
            }
        }
        size_t start = i;
        uint64_t v = 0;
        int d;
        while ((d = digit(owfp_unit_at(s, wide, i), base)) >= 0) {
            v = v * base + (unsigned)d;
            if (v > 0xFFFFFFFFu)
                return 0;
            i++;
        }
        if (i == start || (strict && v > 255))
            return 0;
        part[parts++] = v;
        if (parts == 4 || owfp_unit_at(s, wide, i) != '.')
            break;
        i++;
    }
    if (strict && parts != 4)
        return 0;
    uint32_t addr = 0;
    for (int k = 0; k < parts - 1; k++) {
        if (part[k] > 255)
            return 0;
        addr |= (uint32_t)part[k] << (24 - 8 * k);
    }
    uint64_t last = part[parts - 1], room = parts == 1 ? 0xFFFFFFFFu : (1u << (8 * (5 - parts))) - 1;
    if (last > room)
        return 0;
    addr |= (uint32_t)last;
    for (int k = 0; k < 4; k++)
        out[k] = (UCHAR)(addr >> (24 - 8 * k));
    return i - i0;
}

static size_t parse_v6(const void *s, bool wide, UCHAR out[16])
{
    uint16_t g[8] = {0};
    int n = 0, gap = -1;
    size_t i = 0;
    if (owfp_unit_at(s, wide, 0) == ':') {
        if (owfp_unit_at(s, wide, 1) != ':')
            return 0;
        gap = 0;
        i = 2;
        if (owfp_unit_at(s, wide, i) == ':')
            return 0;
    }
    while (n < 8) {
        size_t start = i;
        unsigned v = 0;
        int d;
        while (i - start < 4 && (d = digit(owfp_unit_at(s, wide, i), 16)) >= 0) {
            v = v * 16 + (unsigned)d;
            i++;
        }
        if (i == start)
            break;
        if (owfp_unit_at(s, wide, i) == '.' && n <= 6) { /* trailing dotted IPv4 */
            UCHAR v4[4];
            size_t used = parse_v4(s, wide, start, true, v4);
            if (!used)
                return 0;
            g[n++] = (uint16_t)(v4[0] << 8 | v4[1]);
            g[n++] = (uint16_t)(v4[2] << 8 | v4[3]);
            i = start + used;
            break;
        }
        g[n++] = (uint16_t)v;
        if (owfp_unit_at(s, wide, i) != ':')
            break;
        if (owfp_unit_at(s, wide, i + 1) == ':') {
            if (gap >= 0)
                return 0;
            gap = n;
            i += 2;
            if (owfp_unit_at(s, wide, i) == ':')
                return 0;
        } else {
            if (digit(owfp_unit_at(s, wide, i + 1), 16) < 0)
                return 0;
            i++;
        }
    }
    if (gap < 0 && n != 8)
        return 0;
    if (gap >= 0 && n == 8)
        return 0;
    uint16_t full[8] = {0};
    if (gap < 0) {
        memcpy(full, g, sizeof(full));
    } else {
        for (int k = 0; k < gap; k++)
            full[k] = g[k];
        for (int k = gap; k < n; k++)
            full[8 - (n - k)] = g[k];
    }
    for (int k = 0; k < 8; k++) {
        out[2 * k] = (UCHAR)(full[k] >> 8);
        out[2 * k + 1] = (UCHAR)full[k];
    }
    return i;
}

/* Parses the IPv4 or IPv6 address S starts with into Addr (4 or 16 bytes);
 * returns the characters used, 0 when none parses (Addr untouched). */
static size_t parse(const void *S, bool wide, bool v6, bool strict, void *Addr)
{
    UCHAR a[16];
    size_t n = !S ? 0 : v6 ? parse_v6(S, wide, a) : parse_v4(S, wide, 0, strict, a);
    if (n)
        memcpy(Addr, a, v6 ? 16 : 4);
    return n;
}

NTSTATUS NTAPI RtlIpv4StringToAddressA(PCSTR S, BOOLEAN Strict, PCSTR *Terminator, void *Addr)
{
    size_t n = parse(S, false, false, Strict, Addr);
    if (Terminator)
        *Terminator = S ? S + n : S;
    return n ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
}

NTSTATUS NTAPI RtlIpv4StringToAddressW(PCWSTR S, BOOLEAN Strict, PCWSTR *Terminator, void *Addr)
{
    size_t n = parse(S, true, false, Strict, Addr);
    if (Terminator)
        *Terminator = S ? S + n : S;
    return n ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
}

NTSTATUS NTAPI RtlIpv6StringToAddressA(PCSTR S, PCSTR *Terminator, void *Addr)
{
    size_t n = parse(S, false, true, false, Addr);
    if (Terminator)
        *Terminator = S ? S + n : S;
    return n ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
}

NTSTATUS NTAPI RtlIpv6StringToAddressW(PCWSTR S, PCWSTR *Terminator, void *Addr)
{
    size_t n = parse(S, true, true, false, Addr);
    if (Terminator)
        *Terminator = S ? S + n : S;
    return n ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
}
