/*
 * ntstrsafe: bounded copy, concatenation, length and printf. One generic
 * body per operation works on "units" of either width; the A/W and Cch/Cb
 * entry points only convert sizes.
 */
#include <ntstrsafe.h>

#include "kernel/kernel.h"

static void unit_set(void *s, bool wide, size_t i, unsigned c)
{
    if (wide)
        ((WCHAR *)s)[i] = (WCHAR)c;
    else
        ((char *)s)[i] = (char)c;
}

static bool bad_size(size_t cch)
{
    return cch == 0 || cch > NTSTRSAFE_MAX_CCH;
}

/* The checks of copy and printf: a destination with room, and a source
 * (without one the destination is left empty). */
static NTSTATUS check_args(void *dest, bool wide, size_t cch, const void *src)
{
    if (bad_size(cch) || !dest)
        return STATUS_INVALID_PARAMETER;
    if (!src) {
        unit_set(dest, wide, 0, 0);
        return STATUS_INVALID_PARAMETER;
    }
    return STATUS_SUCCESS;
}

/* Copies at most `max_src` units of src into dest[at..cch). */
static NTSTATUS copy_at(void *dest, bool wide, size_t cch, size_t at, const void *src,
                        size_t max_src)
{
    size_t i = 0;
    while (i < max_src && owfp_unit_at(src, wide, i) != 0) {
        if (at + i + 1 >= cch) {
            unit_set(dest, wide, at + i, 0);
            return STATUS_BUFFER_OVERFLOW;
        }
        unit_set(dest, wide, at + i, owfp_unit_at(src, wide, i));
        i++;
    }
    unit_set(dest, wide, at + i, 0);
    return STATUS_SUCCESS;
}

static NTSTATUS copy(void *dest, bool wide, size_t cch, const void *src, size_t max_src)
{
    NTSTATUS st = check_args(dest, wide, cch, src);
    return NT_SUCCESS(st) ? copy_at(dest, wide, cch, 0, src, max_src) : st;
}

static NTSTATUS length(const void *s, bool wide, size_t cch_max, size_t *out)
{
    size_t n = 0;
    NTSTATUS st = STATUS_INVALID_PARAMETER;
    if (s && cch_max <= NTSTRSAFE_MAX_CCH) {
        while (n < cch_max && owfp_unit_at(s, wide, n) != 0)
            n++;
        if (n < cch_max)
            st = STATUS_SUCCESS;
        else
            n = 0;
    }
    if (out)
        *out = n;
    return st;
}

static NTSTATUS cat(void *dest, bool wide, size_t cch, const void *src)
{
    if (bad_size(cch) || !dest || !src)
        return STATUS_INVALID_PARAMETER;
    size_t used;
    if (!NT_SUCCESS(length(dest, wide, cch, &used)))
        return STATUS_INVALID_PARAMETER; /* dest has no terminator within cchDest */
    return copy_at(dest, wide, cch, used, src, SIZE_MAX);
}

static NTSTATUS vprint(void *dest, bool wide, size_t cch, const void *fmt, va_list ap)
{
    NTSTATUS st = check_args(dest, wide, cch, fmt);
    if (!NT_SUCCESS(st))
        return st;
    size_t n = owfp_format(dest, wide, cch, true, fmt, wide, ap);
    return n >= cch ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;
}

#define W sizeof(WCHAR)

NTSTATUS RtlStringCchCopyA(NTSTRSAFE_PSTR d, size_t cch, NTSTRSAFE_PCSTR s)
{
    return copy(d, false, cch, s, SIZE_MAX);
}
NTSTATUS RtlStringCchCopyW(NTSTRSAFE_PWSTR d, size_t cch, NTSTRSAFE_PCWSTR s)
{
    return copy(d, true, cch, s, SIZE_MAX);
}
NTSTATUS RtlStringCbCopyA(NTSTRSAFE_PSTR d, size_t cb, NTSTRSAFE_PCSTR s)
{
    return copy(d, false, cb, s, SIZE_MAX);
}
NTSTATUS RtlStringCbCopyW(NTSTRSAFE_PWSTR d, size_t cb, NTSTRSAFE_PCWSTR s)
{
    return copy(d, true, cb / W, s, SIZE_MAX);
}
NTSTATUS RtlStringCchCopyNA(NTSTRSAFE_PSTR d, size_t cch, NTSTRSAFE_PCSTR s, size_t n)
{
    return n > NTSTRSAFE_MAX_LENGTH ? STATUS_INVALID_PARAMETER : copy(d, false, cch, s, n);
}
NTSTATUS RtlStringCchCopyNW(NTSTRSAFE_PWSTR d, size_t cch, NTSTRSAFE_PCWSTR s, size_t n)
{
    return n > NTSTRSAFE_MAX_LENGTH ? STATUS_INVALID_PARAMETER : copy(d, true, cch, s, n);
}
NTSTATUS RtlStringCbCopyNA(NTSTRSAFE_PSTR d, size_t cb, NTSTRSAFE_PCSTR s, size_t n)
{
    return n > NTSTRSAFE_MAX_LENGTH ? STATUS_INVALID_PARAMETER : copy(d, false, cb, s, n);
}
NTSTATUS RtlStringCbCopyNW(NTSTRSAFE_PWSTR d, size_t cb, NTSTRSAFE_PCWSTR s, size_t n)
{
    return n / W > NTSTRSAFE_MAX_LENGTH ? STATUS_INVALID_PARAMETER : copy(d, true, cb / W, s, n / W);
}

NTSTATUS RtlStringCchCatA(NTSTRSAFE_PSTR d, size_t cch, NTSTRSAFE_PCSTR s)
{
    return cat(d, false, cch, s);
}
NTSTATUS RtlStringCchCatW(NTSTRSAFE_PWSTR d, size_t cch, NTSTRSAFE_PCWSTR s)
{
    return cat(d, true, cch, s);
}
NTSTATUS RtlStringCbCatA(NTSTRSAFE_PSTR d, size_t cb, NTSTRSAFE_PCSTR s)
{
    return cat(d, false, cb, s);
}
NTSTATUS RtlStringCbCatW(NTSTRSAFE_PWSTR d, size_t cb, NTSTRSAFE_PCWSTR s)
{
    return cat(d, true, cb / W, s);
}

NTSTATUS RtlStringCchLengthA(NTSTRSAFE_PCSTR s, size_t cch_max, size_t *out)
{
    return length(s, false, cch_max, out);
}
NTSTATUS RtlStringCchLengthW(NTSTRSAFE_PCWSTR s, size_t cch_max, size_t *out)
{
    return length(s, true, cch_max, out);
}
NTSTATUS RtlStringCbLengthA(NTSTRSAFE_PCSTR s, size_t cb_max, size_t *out)
{
    return length(s, false, cb_max, out);
}
NTSTATUS RtlStringCbLengthW(NTSTRSAFE_PCWSTR s, size_t cb_max, size_t *out)
{
    NTSTATUS st = length(s, true, cb_max / W, out);
    if (out)
        *out *= W;
    return st;
}

NTSTATUS RtlStringCchVPrintfA(NTSTRSAFE_PSTR d, size_t cch, NTSTRSAFE_PCSTR f, va_list ap)
{
    return vprint(d, false, cch, f, ap);
}
NTSTATUS RtlStringCchVPrintfW(NTSTRSAFE_PWSTR d, size_t cch, NTSTRSAFE_PCWSTR f, va_list ap)
{
    return vprint(d, true, cch, f, ap);
}
NTSTATUS RtlStringCbVPrintfA(NTSTRSAFE_PSTR d, size_t cb, NTSTRSAFE_PCSTR f, va_list ap)
{
    return vprint(d, false, cb, f, ap);
}
NTSTATUS RtlStringCbVPrintfW(NTSTRSAFE_PWSTR d, size_t cb, NTSTRSAFE_PCWSTR f, va_list ap)
{
    return vprint(d, true, cb / W, f, ap);
}

#define VARIADIC(call)      \
    va_list ap;             \
    va_start(ap, f);        \
    NTSTATUS st = call;     \
    va_end(ap);             \
    return st

NTSTATUS RtlStringCchPrintfA(NTSTRSAFE_PSTR d, size_t cch, NTSTRSAFE_PCSTR f, ...)
{
    VARIADIC(vprint(d, false, cch, f, ap));
}
NTSTATUS RtlStringCchPrintfW(NTSTRSAFE_PWSTR d, size_t cch, NTSTRSAFE_PCWSTR f, ...)
{
    VARIADIC(vprint(d, true, cch, f, ap));
}
NTSTATUS RtlStringCbPrintfA(NTSTRSAFE_PSTR d, size_t cb, NTSTRSAFE_PCSTR f, ...)
{
    VARIADIC(vprint(d, false, cb, f, ap));
}
NTSTATUS RtlStringCbPrintfW(NTSTRSAFE_PWSTR d, size_t cb, NTSTRSAFE_PCWSTR f, ...)
{
    VARIADIC(vprint(d, true, cb / W, f, ap));
}

/* ---- UNICODE_STRING destinations: counted, never NUL-terminated ------------ */

static NTSTATUS unicode_dest_ok(PCUNICODE_STRING u)
{
    if (!u || (u->MaximumLength & 1) || (!u->Buffer && u->MaximumLength))
        return STATUS_INVALID_PARAMETER;
    return STATUS_SUCCESS;
}

NTSTATUS RtlUnicodeStringPrintf(PUNICODE_STRING DestinationString, NTSTRSAFE_PCWSTR pszFormat,
                                ...)
{
    NTSTATUS st = unicode_dest_ok(DestinationString);
    if (!NT_SUCCESS(st) || !pszFormat)
        return STATUS_INVALID_PARAMETER;
    size_t cap = DestinationString->MaximumLength / W;
    va_list ap;
    va_start(ap, pszFormat);
    size_t n = owfp_format(DestinationString->Buffer, true, cap, false, pszFormat, true, ap);
    va_end(ap);
    DestinationString->Length = (USHORT)((n < cap ? n : cap) * W);
    return n > cap ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;
}

NTSTATUS RtlUnicodeStringCopyString(PUNICODE_STRING DestinationString, NTSTRSAFE_PCWSTR pszSrc)
{
    if (!NT_SUCCESS(unicode_dest_ok(DestinationString)) || !pszSrc)
        return STATUS_INVALID_PARAMETER;
    size_t cap = DestinationString->MaximumLength / W, n = 0;
    while (pszSrc[n] && n < cap) {
        DestinationString->Buffer[n] = pszSrc[n];
        n++;
    }
    DestinationString->Length = (USHORT)(n * W);
    return pszSrc[n] ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;
}
