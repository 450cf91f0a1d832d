/*
 * Counted-string conversions and editing: ANSI <-> Unicode, appending,
 * integers to text, upper-casing, and the ANSI compare helpers.
 *
 * "ANSI" is Latin-1 here: the host has no Windows code page, and Latin-1 is
 * the one whose every byte has a UTF-16 unit of the same value, so
 * ANSI -> Unicode -> ANSI gives back the same bytes. Windows-1252 differs
 * only in 0x80-0x9F. UTF-16 units above 0xFF have no Latin-1 byte and become
 * '?', one per unit.
 *
 * Buffers these functions allocate come from paged pool tagged 'Strg', so
 * one a driver forgets to free shows in the unload report under that tag.
 */
#include "kernel/kernel.h"

#define STRING_TAG 0x67727453u /* 'grtS': "Strg" in memory order */
#define MAX_USHORT 0xFFFFu

static PVOID allocate(size_t bytes)
{
    return ExAllocatePoolWithTag(PagedPool, bytes, STRING_TAG);
}

ULONG NTAPI RtlxAnsiStringToUnicodeSize(PCANSI_STRING AnsiString)
{
    return ((ULONG)AnsiString->Length + 1) * sizeof(WCHAR);
}

ULONG NTAPI RtlxUnicodeStringToAnsiSize(PCUNICODE_STRING UnicodeString)
{
    return (ULONG)UnicodeString->Length / sizeof(WCHAR) + 1;
}

/* Sets up the destination of a conversion of `bytes` bytes (terminator not
 * included) whose elements are `unit` bytes: allocated, or checked for room.
 * The buffer is returned through *buffer. */
static NTSTATUS destination(USHORT *maximum, void **buffer, size_t bytes, size_t unit,
                            BOOLEAN allocate_it)
{
    if (bytes + unit > MAX_USHORT)
        return STATUS_INVALID_PARAMETER_2;
    if (allocate_it) {
        void *p = allocate(bytes + unit);
        if (!p)
            return STATUS_NO_MEMORY;
        *buffer = p;
        *maximum = (USHORT)(bytes + unit);
        return STATUS_SUCCESS;
    }
    return *maximum < bytes ? STATUS_BUFFER_OVERFLOW : STATUS_SUCCESS;
}

/* destination() for a UNICODE_STRING of `chars` characters. */
static NTSTATUS unicode_destination(PUNICODE_STRING d, size_t chars, BOOLEAN allocate_it)
{
    void *buffer = d->Buffer;
    NTSTATUS st = destination(&d->MaximumLength, &buffer, chars * sizeof(WCHAR), sizeof(WCHAR),
                              allocate_it);
    d->Buffer = buffer;
    return st;
}

/* Sets the length to `chars` characters, terminated when there is room. */
static void set_chars(PUNICODE_STRING d, size_t chars)
{
    d->Length = (USHORT)(chars * sizeof(WCHAR));
    if ((chars + 1) * sizeof(WCHAR) <= d->MaximumLength)
        d->Buffer[chars] = 0;
}

NTSTATUS NTAPI RtlAnsiStringToUnicodeString(PUNICODE_STRING DestinationString,
                                            PCANSI_STRING SourceString,
                                            BOOLEAN AllocateDestinationString)
{
    owfp_irql_check_max(PASSIVE_LEVEL, "RtlAnsiStringToUnicodeString");
    size_t n = SourceString->Length;
    NTSTATUS st = unicode_destination(DestinationString, n, AllocateDestinationString);
    if (!NT_SUCCESS(st))
        return st;
    for (size_t i = 0; i < n; i++)
        DestinationString->Buffer[i] = (WCHAR)(unsigned char)SourceString->Buffer[i];
    set_chars(DestinationString, n);
    return STATUS_SUCCESS;
}

NTSTATUS NTAPI RtlUnicodeStringToAnsiString(PANSI_STRING DestinationString,
                                            PCUNICODE_STRING SourceString,
                                            BOOLEAN AllocateDestinationString)
{
    owfp_irql_check_max(PASSIVE_LEVEL, "RtlUnicodeStringToAnsiString");
    size_t n = SourceString->Length / sizeof(WCHAR);
    void *buffer = DestinationString->Buffer;
    NTSTATUS st = destination(&DestinationString->MaximumLength, &buffer, n, 1,
                              AllocateDestinationString);
    if (!NT_SUCCESS(st))
        return st;
    DestinationString->Buffer = buffer;
    for (size_t i = 0; i < n; i++) {
        WCHAR c = SourceString->Buffer[i];
        DestinationString->Buffer[i] = c <= 0xFF ? (CHAR)(unsigned char)c : '?';
    }
    DestinationString->Length = (USHORT)n;
    if (n + 1 <= DestinationString->MaximumLength)
        DestinationString->Buffer[n] = '\0';
    return STATUS_SUCCESS;
}

VOID NTAPI RtlFreeUnicodeString(PUNICODE_STRING UnicodeString)
{
    owfp_irql_check_max(PASSIVE_LEVEL, "RtlFreeUnicodeString");
    if (UnicodeString->Buffer)
        ExFreePool(UnicodeString->Buffer);
    memset(UnicodeString, 0, sizeof(*UnicodeString));
}

VOID NTAPI RtlFreeAnsiString(PANSI_STRING AnsiString)
{
    owfp_irql_check_max(PASSIVE_LEVEL, "RtlFreeAnsiString");
    if (AnsiString->Buffer)
        ExFreePool(AnsiString->Buffer);
    memset(AnsiString, 0, sizeof(*AnsiString));
}

/* ---- appending ------------------------------------------------------------------ */

static NTSTATUS append(PUNICODE_STRING d, const WCHAR *s, size_t bytes)
{
    if ((size_t)d->Length + bytes > d->MaximumLength)
        return STATUS_BUFFER_TOO_SMALL;
    memmove((char *)d->Buffer + d->Length, s, bytes);
    d->Length = (USHORT)(d->Length + bytes);
    if ((size_t)d->Length + sizeof(WCHAR) <= d->MaximumLength)
        d->Buffer[d->Length / sizeof(WCHAR)] = 0;
    return STATUS_SUCCESS;
}

NTSTATUS NTAPI RtlAppendUnicodeToString(PUNICODE_STRING Destination, PCWSTR Source)
{
    return Source ? append(Destination, Source, owfp_wcslen(Source) * sizeof(WCHAR))
                  : STATUS_SUCCESS;
}

NTSTATUS NTAPI RtlAppendUnicodeStringToString(PUNICODE_STRING Destination,
                                              PCUNICODE_STRING Source)
{
    if (!Source || !Source->Length)
        return STATUS_SUCCESS;
    return append(Destination, Source->Buffer, Source->Length & ~(size_t)1);
}

/* ---- integers ------------------------------------------------------------------- */

static NTSTATUS to_text(ULONGLONG value, ULONG base, PUNICODE_STRING out, const char *api)
{
    owfp_irql_check_max(PASSIVE_LEVEL, api);
    if (base == 0)
        base = 10;
    if (base != 2 && base != 8 && base != 10 && base != 16)
        return STATUS_INVALID_PARAMETER;
    WCHAR digits[64];
    size_t n = 0;
    do {
        unsigned d = (unsigned)(value % base);
        digits[n++] = (WCHAR)(d < 10 ? '0' + d : 'A' + d - 10);
        value /= base;
    } while (value);
    if (n * sizeof(WCHAR) > out->MaximumLength)
        return STATUS_BUFFER_OVERFLOW;
    for (size_t i = 0; i < n; i++)
        out->Buffer[i] = digits[n - 1 - i];
    set_chars(out, n);
    return STATUS_SUCCESS;
}

NTSTATUS NTAPI RtlIntegerToUnicodeString(ULONG Value, ULONG Base, PUNICODE_STRING String)
{
    return to_text(Value, Base, String, "RtlIntegerToUnicodeString");
}

NTSTATUS NTAPI RtlInt64ToUnicodeString(ULONGLONG Value, ULONG Base, PUNICODE_STRING String)
{
    return to_text(Value, Base, String, "RtlInt64ToUnicodeString");
}

/* ---- case ----------------------------------------------------------------------- */

/* The inverse of RtlUpcaseUnicodeChar (rtl.c): ASCII and Latin-1. */
WCHAR NTAPI RtlDowncaseUnicodeChar(WCHAR c)
{
    if (c >= 'A' && c <= 'Z')
        return (WCHAR)(c - 'A' + 'a');
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
        return (WCHAR)(c + 0x20);
    if (c == 0x178)
        return 0xFF;
    return c;
}

NTSTATUS NTAPI RtlUpcaseUnicodeString(PUNICODE_STRING DestinationString,
                                      PCUNICODE_STRING SourceString,
                                      BOOLEAN AllocateDestinationString)
{
    owfp_irql_check_max(PASSIVE_LEVEL, "RtlUpcaseUnicodeString");
    size_t n = SourceString->Length / sizeof(WCHAR);
    NTSTATUS st = unicode_destination(DestinationString, n, AllocateDestinationString);
    if (!NT_SUCCESS(st))
        return st;
    for (size_t i = 0; i < n; i++)
        DestinationString->Buffer[i] = RtlUpcaseUnicodeChar(SourceString->Buffer[i]);
    set_chars(DestinationString, n);
    return STATUS_SUCCESS;
}

/* ---- ANSI strings --------------------------------------------------------------- */

static unsigned char fold(unsigned char c, bool ci)
{
    return ci && c >= 'a' && c <= 'z' ? (unsigned char)(c - 'a' + 'A') : c;
}

LONG NTAPI RtlCompareString(const STRING *String1, const STRING *String2, BOOLEAN CaseInSensitive)
{
    size_t n1 = String1->Length, n2 = String2->Length;
    for (size_t i = 0; i < n1 && i < n2; i++) {
        unsigned char x = fold((unsigned char)String1->Buffer[i], CaseInSensitive);
        unsigned char y = fold((unsigned char)String2->Buffer[i], CaseInSensitive);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return n1 < n2 ? -1 : n1 > n2 ? 1 : 0;
}

BOOLEAN NTAPI RtlEqualString(const STRING *String1, const STRING *String2,
                             BOOLEAN CaseInSensitive)
{
    return String1->Length == String2->Length &&
           RtlCompareString(String1, String2, CaseInSensitive) == 0;
}
