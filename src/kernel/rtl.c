/*
 * Rtl memory and counted-string helpers. UNICODE_STRING lengths are in bytes
 * and the buffers need not be NUL-terminated; every function here reads only
 * Length bytes.
 */
#include "kernel/kernel.h"

SIZE_T NTAPI RtlCompareMemory(const VOID *Source1, const VOID *Source2, SIZE_T Length)
{
    const UCHAR *a = Source1, *b = Source2;
    SIZE_T i = 0;
    while (i < Length && a[i] == b[i])
        i++;
    return i;
}

size_t owfp_wcslen(PCWSTR s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

VOID NTAPI RtlInitUnicodeString(PUNICODE_STRING DestinationString, PCWSTR SourceString)
{
    DestinationString->Buffer = (PWCH)SourceString;
    if (!SourceString) {
        DestinationString->Length = DestinationString->MaximumLength = 0;
        return;
    }
    /* Longer strings are cut to what a USHORT byte count can describe. */
    size_t bytes = owfp_wcslen(SourceString) * sizeof(WCHAR);
    if (bytes > UNICODE_STRING_MAX_BYTES - sizeof(WCHAR))
        bytes = UNICODE_STRING_MAX_BYTES - sizeof(WCHAR);
    DestinationString->Length = (USHORT)bytes;
    DestinationString->MaximumLength = (USHORT)(bytes + sizeof(WCHAR));
}

VOID NTAPI RtlInitAnsiString(PANSI_STRING DestinationString, PCSZ SourceString)
{
    DestinationString->Buffer = (PCHAR)SourceString;
    if (!SourceString) {
        DestinationString->Length = DestinationString->MaximumLength = 0;
        return;
    }
    size_t n = strlen(SourceString);
    if (n > 0xFFFE)
        n = 0xFFFE;
    DestinationString->Length = (USHORT)n;
    DestinationString->MaximumLength = (USHORT)(n + 1);
}

VOID NTAPI RtlInitString(PSTRING DestinationString, PCSZ SourceString)
{
    RtlInitAnsiString(DestinationString, SourceString);
}

/* Copies what fits of `len` bytes into `max` bytes at dst, whole units of
 * `unit` bytes only, and terminates when a unit of room is left; returns the
 * bytes copied. */
static USHORT copy_counted(void *dst, USHORT max, const void *src, USHORT len, size_t unit)
{
    USHORT n = len < max ? len : max;
    n = (USHORT)(n - n % unit);
    memmove(dst, src, n);
    if (n + unit <= max)
        memset((char *)dst + n, 0, unit);
    return n;
}

VOID NTAPI RtlCopyUnicodeString(PUNICODE_STRING DestinationString, PCUNICODE_STRING SourceString)
{
    DestinationString->Length =
        SourceString ? copy_counted(DestinationString->Buffer, DestinationString->MaximumLength,
                                    SourceString->Buffer, SourceString->Length, sizeof(WCHAR))
                     : 0;
}

VOID NTAPI RtlCopyString(PSTRING DestinationString, const STRING *SourceString)
{
    DestinationString->Length =
        SourceString ? copy_counted(DestinationString->Buffer, DestinationString->MaximumLength,
                                    SourceString->Buffer, SourceString->Length, 1)
                     : 0;
}

/* Simple case mapping for ASCII and Latin-1, which covers device names,
 * service names and protocol keywords; other scripts compare as written. */
WCHAR NTAPI RtlUpcaseUnicodeChar(WCHAR c)
{
    if (c >= 'a' && c <= 'z')
        return (WCHAR)(c - 'a' + 'A');
    if (c >= 0xE0 && c <= 0xFE && c != 0xF7)
        return (WCHAR)(c - 0x20);
    if (c == 0xFF)
        return 0x178;
    return c;
}

static int compare(PCUNICODE_STRING a, PCUNICODE_STRING b, size_t chars, bool fold)
{
    for (size_t i = 0; i < chars; i++) {
        WCHAR x = a->Buffer[i], y = b->Buffer[i];
        if (fold) {
            x = RtlUpcaseUnicodeChar(x);
            y = RtlUpcaseUnicodeChar(y);
        }
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

LONG NTAPI RtlCompareUnicodeString(PCUNICODE_STRING String1, PCUNICODE_STRING String2,
                                   BOOLEAN CaseInSensitive)
{
    size_t n1 = String1->Length / sizeof(WCHAR), n2 = String2->Length / sizeof(WCHAR);
    int c = compare(String1, String2, n1 < n2 ? n1 : n2, CaseInSensitive);
    if (c)
        return c;
    return n1 < n2 ? -1 : n1 > n2 ? 1 : 0;
}

BOOLEAN NTAPI RtlEqualUnicodeString(PCUNICODE_STRING String1, PCUNICODE_STRING String2,
                                    BOOLEAN CaseInSensitive)
{
    return String1->Length == String2->Length &&
           compare(String1, String2, String1->Length / sizeof(WCHAR), CaseInSensitive) == 0;
}

BOOLEAN NTAPI RtlPrefixUnicodeString(PCUNICODE_STRING String1, PCUNICODE_STRING String2,
                                     BOOLEAN CaseInSensitive)
{
    return String1->Length <= String2->Length &&
           compare(String1, String2, String1->Length / sizeof(WCHAR), CaseInSensitive) == 0;
}

/* ---- text to integer ------------------------------------------------------ */

/* Shared by the ANSI and Unicode forms: `n` characters of `s`. Leading
 * blanks, an optional sign, then a 0x/0o/0b prefix when Base is 0; digits
 * stop at the first character that is not one. The value wraps in 32 bits,
 * as on Windows. */
static NTSTATUS to_integer(const void *s, bool wide, size_t n, ULONG base, PULONG value)
{
    if (base != 0 && base != 2 && base != 8 && base != 10 && base != 16)
        return STATUS_INVALID_PARAMETER;
    if (!value)
        return STATUS_ACCESS_VIOLATION;
    size_t i = 0;
    while (i < n && owfp_unit_at(s, wide, i) <= ' ')
        i++;
    bool negative = false;
    if (i < n && (owfp_unit_at(s, wide, i) == '-' || owfp_unit_at(s, wide, i) == '+'))
        negative = owfp_unit_at(s, wide, i++) == '-';
    if (base == 0) {
        base = 10;
        if (i + 1 < n && owfp_unit_at(s, wide, i) == '0') {
            unsigned p = owfp_unit_at(s, wide, i + 1);
            if (p == 'x' || p == 'X')
                base = 16;
            else if (p == 'o' || p == 'O')
                base = 8;
            else if (p == 'b' || p == 'B')
                base = 2;
            if (base != 10)
                i += 2;
        }
    }
    ULONG v = 0;
    for (; i < n; i++) {
        unsigned c = owfp_unit_at(s, wide, i), d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            break;
        if (d >= base)
            break;
        v = v * base + d;
    }
    *value = negative ? (ULONG)(0u - v) : v;
    return STATUS_SUCCESS;
}

NTSTATUS NTAPI RtlUnicodeStringToInteger(PCUNICODE_STRING String, ULONG Base, PULONG Value)
{
    return to_integer(String->Buffer, true, String->Length / sizeof(WCHAR), Base, Value);
}

NTSTATUS NTAPI RtlCharToInteger(PCSZ String, ULONG Base, PULONG Value)
{
    return to_integer(String, false, String ? strlen(String) : 0, Base, Value);
}
