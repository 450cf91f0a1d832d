/*
 * tls_sni_block: a WFP stream callout driver that reads the server name
 * (SNI) of each outgoing TLS ClientHello and drops the connection when the
 * name is on a configured list; any other connection is let go with
 * FWPS_STREAM_ACTION_ALLOW_CONNECTION as soon as its hello has been judged,
 * so the engine may offload the rest of it.
 *
 * - A KMDF non-PnP driver: WdfDriverCreate, a control device whose WDM
 *   device object registers the callouts, parameters from the Parameters key
 *   through WdfDriverOpenParametersRegistryKey, EvtDriverUnload.
 * - WPP tracing (TraceEvents, DoTraceMessage); tls_sni_block.tmh comes from
 *   the WPP preprocessor on Windows and from scripts/wpp-tmh.sh here.
 * - No per-flow state: until the hello is judged the callout answers every
 *   send indication with FWPS_STREAM_ACTION_NEED_MORE_DATA, so the engine
 *   keeps the client's bytes and shows them again, from the first byte of
 *   the stream, together with what arrives next. countBytesRequired is
 *   computed from the TLS record and handshake headers.
 *
 * Parameters (Parameters subkey of the service key):
 *   BlockedNames   REG_SZ     required: names separated by commas (or
 *                             semicolons, spaces); "example.com" matches that
 *                             name only, ".example.com" matches it and every
 *                             name under it. ASCII, any case.
 *   FailClosed     REG_DWORD  0 (default): a hello that cannot be judged
 *                             (malformed, larger than MaxHelloBytes, cut off
 *                             by the end of the stream) is allowed; 1: dropped
 *   MaxHelloBytes  REG_DWORD  largest ClientHello handshake message looked at
 *                             (default 16384, 512..65536)
 */
#include <ntddk.h>
#include <wdf.h>
#include <fwpsk.h>
#include <fwpmk.h>

#define INITGUID
#include <guiddef.h>

/* ---- WPP ---------------------------------------------------------------------------- */

// {6a0d5c3e-8b2f-4f71-a9d4-1e3c5b7f9d02}
#define WPP_CONTROL_GUIDS                                                                   \
    WPP_DEFINE_CONTROL_GUID(TlsSniBlockTraceGuid, (6a0d5c3e, 8b2f, 4f71, a9d4, 1e3c5b7f9d02), \
                            WPP_DEFINE_BIT(TRACE_DRIVER)                                    \
                            WPP_DEFINE_BIT(TRACE_STREAM))

#define WPP_LEVEL_FLAGS_LOGGER(level, flags) WPP_LEVEL_LOGGER(flags)
#define WPP_LEVEL_FLAGS_ENABLED(level, flags) \
    (WPP_LEVEL_ENABLED(flags) && WPP_CONTROL(WPP_BIT_##flags).Level >= level)

// begin_wpp config
// FUNC TraceEvents(LEVEL, FLAGS, MSG, ...);
// end_wpp

#include "tls_sni_block.tmh"

/* ---- GUIDs and limits --------------------------------------------------------------- */

// {6a0d5c3e-8b2f-4f71-a9d4-1e3c5b7f9d10}
DEFINE_GUID(TSB_SUBLAYER, 0x6a0d5c3e, 0x8b2f, 0x4f71, 0xa9, 0xd4, 0x1e, 0x3c, 0x5b, 0x7f, 0x9d,
            0x10);
// {6a0d5c3e-8b2f-4f71-a9d4-1e3c5b7f9d20}
DEFINE_GUID(TSB_STREAM_CALLOUT_V4, 0x6a0d5c3e, 0x8b2f, 0x4f71, 0xa9, 0xd4, 0x1e, 0x3c, 0x5b, 0x7f,
            0x9d, 0x20);
// {6a0d5c3e-8b2f-4f71-a9d4-1e3c5b7f9d21}
DEFINE_GUID(TSB_STREAM_CALLOUT_V6, 0x6a0d5c3e, 0x8b2f, 0x4f71, 0xa9, 0xd4, 0x1e, 0x3c, 0x5b, 0x7f,
            0x9d, 0x21);

#define TSB_TAG 'bSsT' /* "TsSb" in a pool dump */

#define TLS_CONTENT_HANDSHAKE 22
#define TLS_HANDSHAKE_CLIENT_HELLO 1
#define TLS_EXTENSION_SERVER_NAME 0
#define TLS_NAME_TYPE_HOST_NAME 0

#define TSB_RECORD_HEADER 5
#define TSB_HANDSHAKE_HEADER 4
#define TSB_RECORD_MAX 16384 /* TLSPlaintext.length may not exceed 2^14 */
#define TSB_MAX_RECORDS 32   /* records one ClientHello may be split into */
#define TSB_DEFAULT_MAX_HELLO 16384
#define TSB_MIN_MAX_HELLO 512
#define TSB_MAX_MAX_HELLO 65536
#define TSB_NAME_MAX 253       /* a DNS name without its final dot */
#define TSB_MAX_NAMES 64
#define TSB_NAMES_MAX_BYTES 16384 /* BlockedNames, in bytes of UTF-16 */

DRIVER_INITIALIZE DriverEntry;
EVT_WDF_DRIVER_UNLOAD TsbEvtDriverUnload;

/* How far one look at the start of a send stream got. */
typedef enum _TSB_PARSE {
    TsbParseIncomplete, /* more bytes are needed: bytesRequired */
    TsbParseComplete,   /* the whole ClientHello was read */
    TsbParseNotTls,
    TsbParseMalformed,
    TsbParseTooLarge,
} TSB_PARSE;

typedef struct _TSB_HELLO {
    TSB_PARSE result;
    SIZE_T bytesRequired;          /* stream bytes to wait for, when Incomplete */
    SIZE_T nameLength;             /* 0: no server name (yet) */
    CHAR name[TSB_NAME_MAX + 1];   /* lower case, NUL-terminated */
} TSB_HELLO;

/* What became of a connection, for the counters and the log. */
typedef enum _TSB_OUTCOME {
    TsbBlocked,
    TsbAllowedName,
    TsbAllowedNoName,
    TsbNotTls,
    TsbMalformed,
    TsbTooLarge,
    TsbTruncated,
    TsbMidStream,
    TsbNoMemory,
    TsbOutcomeCount,
} TSB_OUTCOME;

static PCSTR const g_outcomeText[TsbOutcomeCount] = {
    "server name is blocked",   "server name not blocked", "ClientHello without server name",
    "not TLS",                  "malformed ClientHello",   "ClientHello larger than MaxHelloBytes",
    "stream ended inside the ClientHello", "start of the stream not seen",
    "no memory to look at the ClientHello",
};

typedef struct _TSB_NAME {
    BOOLEAN suffix; /* ".example.com": the name and everything under it */
    SIZE_T length;
    CHAR text[TSB_NAME_MAX + 1];
} TSB_NAME;

static WDFDEVICE g_device;
static HANDLE g_engine;
static UINT32 g_calloutIds[2];

/* Set in DriverEntry, read-only afterwards. */
static TSB_NAME g_names[TSB_MAX_NAMES];
static ULONG g_nameCount;
static ULONG g_failClosed;
static ULONG g_maxHello = TSB_DEFAULT_MAX_HELLO;

static LONG volatile g_outcomes[TsbOutcomeCount];

/* ---- the ClientHello ---------------------------------------------------------------- */

static ULONG TsbRead16(_In_reads_(2) const UINT8 *p)
{
    return (ULONG)p[0] << 8 | p[1];
}

static ULONG TsbRead24(_In_reads_(3) const UINT8 *p)
{
    return (ULONG)p[0] << 16 | (ULONG)p[1] << 8 | p[2];
}

/* The host name of a server_name extension body (RFC 6066 3), in lower case.
 * Like common servers, exactly one host_name entry is accepted; the name is
 * letters, digits, '-', '_' and '.', a final dot dropped. */
static BOOLEAN TsbParseServerName(_In_reads_(length) const UINT8 *body, _In_ SIZE_T length,
                                  _Inout_ TSB_HELLO *hello)
{
    SIZE_T nameLength;

    if (length < 5 || TsbRead16(body) != length - 2 || body[2] != TLS_NAME_TYPE_HOST_NAME) {
        return FALSE;
    }
    nameLength = TsbRead16(body + 3);
    if (nameLength == 0 || nameLength != length - 5) {
        return FALSE;
    }
    if (body[4 + nameLength] == '.') {
        nameLength--;
    }
    if (nameLength == 0 || nameLength > TSB_NAME_MAX) {
        return FALSE;
    }
    for (SIZE_T i = 0; i < nameLength; i++) {
        CHAR c = (CHAR)body[5 + i];
        if (c >= 'A' && c <= 'Z') {
            c = (CHAR)(c - 'A' + 'a');
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.')) {
            return FALSE;
        }
        hello->name[i] = c;
    }
    hello->name[nameLength] = '\0';
    hello->nameLength = nameLength;
    return TRUE;
}

/*
 * Reads the ClientHello body of the handshake message at hs (available
 * bytes of total). When the message is not all there, reads as far as it
 * can, so a server name can be seen before the rest arrives; running out of
 * bytes is then not an error.
 */
static void TsbParseClientHello(_In_reads_(available) const UINT8 *hs, _In_ SIZE_T available,
                                _In_ SIZE_T total, _Inout_ TSB_HELLO *hello)
{
    BOOLEAN complete = available >= total;
    SIZE_T end = complete ? total : available;
    SIZE_T p = TSB_HANDSHAKE_HEADER;
    SIZE_T extensionsEnd;
    SIZE_T length;
    BOOLEAN sawServerName = FALSE;

#define TSB_NEED(n)                          \
    if ((n) > end || p > end - (n)) {        \
        goto OutOfData;                      \
    }

    TSB_NEED(2 + 32 + 1); /* legacy_version, random, session id length */
    p += 2 + 32;
    length = hs[p++];
    if (length > 32) {
        goto Malformed;
    }
    TSB_NEED(length + 2);
    p += length;
    length = TsbRead16(hs + p); /* cipher suites */
    p += 2;
    if (length < 2 || length % 2 != 0) {
        goto Malformed;
    }
    TSB_NEED(length + 1);
    p += length;
    length = hs[p++]; /* compression methods */
    if (length < 1) {
        goto Malformed;
    }
    TSB_NEED(length);
    p += length;
    if (complete && p == total) {
        hello->result = TsbParseComplete; /* no extensions at all */
        return;
    }
    TSB_NEED(2);
    length = TsbRead16(hs + p);
    p += 2;
    if (p + length != total) {
        goto Malformed;
    }
    extensionsEnd = total;
    while (p < extensionsEnd) {
        ULONG type;
        TSB_NEED(4);
        type = TsbRead16(hs + p);
        length = TsbRead16(hs + p + 2);
        p += 4;
        if (length > extensionsEnd - p) {
            goto Malformed;
        }
        if (type == TLS_EXTENSION_SERVER_NAME) {
            if (sawServerName) {
                goto Malformed; /* one extension of a type per hello */
            }
            sawServerName = TRUE;
            TSB_NEED(length);
            if (!TsbParseServerName(hs + p, length, hello)) {
                goto Malformed;
            }
        }
        p += length;
    }
    if (complete) {
        hello->result = TsbParseComplete;
    }
    return;

OutOfData:
    if (complete) {
        goto Malformed;
    }
    return;

Malformed:
    hello->result = TsbParseMalformed;
#undef TSB_NEED
}

/*
 * Looks at the first `length` bytes of a send stream (data is modified:
 * the handshake bytes of each record are moved to the front, over the
 * record headers). A ClientHello may be split over several handshake
 * records, and each record over several segments.
 */
static void TsbParse(_Inout_updates_(length) UINT8 *data, _In_ SIZE_T length,
                     _Out_ TSB_HELLO *hello)
{
    SIZE_T pos = 0;  /* the next record header */
    SIZE_T out = 0;  /* handshake bytes gathered at the front */
    SIZE_T need = 0; /* the handshake message's length, header included, once known */
    ULONG records = 0;

    RtlZeroMemory(hello, sizeof(*hello));
    hello->result = TsbParseIncomplete;
    while (need == 0 || out < need) {
        SIZE_T recordLength;
        SIZE_T have;
        SIZE_T take;

        /* Judge the bytes of a record header there are before waiting for the rest. */
        if ((length > pos && data[pos] != TLS_CONTENT_HANDSHAKE) ||
            (length > pos + 1 && data[pos + 1] != 3) || (length > pos + 2 && data[pos + 2] > 4)) {
            hello->result = records == 0 ? TsbParseNotTls : TsbParseMalformed;
            return;
        }
        if (length - pos < TSB_RECORD_HEADER) {
            hello->bytesRequired = pos + TSB_RECORD_HEADER;
            break;
        }
        recordLength = TsbRead16(data + pos + 3);
        if (recordLength == 0 || recordLength > TSB_RECORD_MAX) {
            hello->result = TsbParseMalformed; /* handshake records are never empty */
            return;
        }
        if (++records > TSB_MAX_RECORDS) {
            hello->result = TsbParseTooLarge;
            break;
        }
        have = length - pos - TSB_RECORD_HEADER;
        if (have > recordLength) {
            have = recordLength;
        }
        take = need != 0 && have > need - out ? need - out : have;
        RtlMoveMemory(data + out, data + pos + TSB_RECORD_HEADER, take);
        out += take;
        if (need == 0 && out >= TSB_HANDSHAKE_HEADER) {
            if (data[0] != TLS_HANDSHAKE_CLIENT_HELLO) {
                hello->result = TsbParseMalformed;
                return;
            }
            need = TSB_HANDSHAKE_HEADER + TsbRead24(data + 1);
            if (need > g_maxHello) {
                hello->result = TsbParseTooLarge;
                break;
            }
            if (out > need) {
                out = need; /* what follows the hello in its record is not ours */
            }
        }
        if (need != 0 && out >= need) {
            break;
        }
        if (have < recordLength) {
            /* Wait for the rest of this record, or of the hello if it ends sooner. */
            SIZE_T missing = recordLength - have;
            SIZE_T wanted = need != 0 ? need - out : TSB_HANDSHAKE_HEADER - out;
            hello->bytesRequired = pos + TSB_RECORD_HEADER + have +
                                   (missing < wanted ? missing : wanted);
            break;
        }
        pos += TSB_RECORD_HEADER + recordLength;
    }
    if (need != 0) {
        /* Also when the hello is too large: a blocked name may be in what is there. */
        TSB_PARSE before = hello->result;
        TsbParseClientHello(data, out < need ? out : need, need, hello);
        if (before == TsbParseTooLarge && hello->result != TsbParseMalformed) {
            hello->result = TsbParseTooLarge;
        }
    }
}

static BOOLEAN TsbIsBlocked(_In_reads_(length) PCSTR name, _In_ SIZE_T length)
{
    for (ULONG i = 0; i < g_nameCount; i++) {
        const TSB_NAME *entry = &g_names[i];
        if (length == entry->length && RtlEqualMemory(name, entry->text, length)) {
            return TRUE;
        }
        if (entry->suffix && length > entry->length && name[length - entry->length - 1] == '.' &&
            RtlEqualMemory(name + length - entry->length, entry->text, entry->length)) {
            return TRUE;
        }
    }
    return FALSE;
}

/* ---- STREAM ------------------------------------------------------------------------- */

static BOOLEAN TsbDrops(_In_ TSB_OUTCOME outcome)
{
    switch (outcome) {
    case TsbBlocked:
        return TRUE;
    case TsbMalformed:
    case TsbTooLarge:
    case TsbTruncated:
    case TsbNoMemory:
        return g_failClosed != 0;
    default:
        return FALSE;
    }
}

/* Ends the inspection of this connection: drop it, or let it go for good. */
static void TsbDecide(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                      _Inout_ FWPS_STREAM_CALLOUT_IO_PACKET0 *packet,
                      _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut, _In_ TSB_OUTCOME outcome,
                      _In_opt_z_ PCSTR name)
{
    BOOLEAN ipv6 = inFixedValues->layerId == FWPS_LAYER_STREAM_V6;
    UINT16 localPort = inFixedValues
                           ->incomingValue[ipv6 ? FWPS_FIELD_STREAM_V6_IP_LOCAL_PORT
                                                : FWPS_FIELD_STREAM_V4_IP_LOCAL_PORT]
                           .value.uint16;
    UINT16 remotePort = inFixedValues
                            ->incomingValue[ipv6 ? FWPS_FIELD_STREAM_V6_IP_REMOTE_PORT
                                                 : FWPS_FIELD_STREAM_V4_IP_REMOTE_PORT]
                            .value.uint16;

    InterlockedIncrement(&g_outcomes[outcome]);
    if (TsbDrops(outcome)) {
        packet->streamAction = FWPS_STREAM_ACTION_DROP_CONNECTION;
        classifyOut->actionType = FWP_ACTION_NONE;
        DbgPrint("TlsSniBlock: port %u -> %u: dropped: %s%s%s%s\n", localPort, remotePort,
                 g_outcomeText[outcome], name != NULL ? " (" : "", name != NULL ? name : "",
                 name != NULL ? ")" : "");
        return;
    }
    /* Nothing more to look at: the engine may take the connection off the path. */
    packet->streamAction = FWPS_STREAM_ACTION_ALLOW_CONNECTION;
    classifyOut->actionType = FWP_ACTION_PERMIT;
    TraceEvents(TRACE_LEVEL_INFORMATION, TRACE_STREAM, "port %u -> %u: allowed: %s%s%s%s",
                localPort, remotePort, g_outcomeText[outcome], name != NULL ? " (" : "",
                name != NULL ? name : "", name != NULL ? ")" : "");
}

static void NTAPI TsbStreamClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                    _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                    _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                                    _In_ UINT64 flowContext,
                                    _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    FWPS_STREAM_CALLOUT_IO_PACKET0 *packet = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    FWPS_STREAM_DATA0 *streamData;
    SIZE_T limit;
    SIZE_T length;
    SIZE_T copied = 0;
    UINT8 *buffer;
    TSB_HELLO hello;

    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);

    if (!(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) {
        return; /* a higher-weight filter has decided already */
    }
    classifyOut->actionType = FWP_ACTION_PERMIT;
    if (packet == NULL || packet->streamData == NULL) {
        return;
    }
    streamData = packet->streamData;
    packet->streamAction = FWPS_STREAM_ACTION_NONE;
    packet->countBytesEnforced = 0;

    if (!(streamData->flags & FWPS_STREAM_FLAG_SEND)) {
        /* The client speaks first in TLS: the server's bytes pass while the
         * client's first bytes are still to be judged. */
        return;
    }
    if (streamData->dataLength == 0) {
        TsbDecide(inFixedValues, packet, classifyOut, TsbNotTls, NULL); /* closed unheard */
        return;
    }
    if (packet->missedBytes != 0) {
        TsbDecide(inFixedValues, packet, classifyOut, TsbMidStream, NULL);
        return;
    }

    /* Every earlier send indication was held, so this one starts at the
     * stream's first byte. Never look past what a hello may take. */
    limit = (SIZE_T)g_maxHello + TSB_MAX_RECORDS * TSB_RECORD_HEADER;
    length = streamData->dataLength < limit ? streamData->dataLength : limit;
    buffer = (UINT8 *)ExAllocatePool2(POOL_FLAG_NON_PAGED, length, TSB_TAG);
    if (buffer == NULL) {
        TsbDecide(inFixedValues, packet, classifyOut, TsbNoMemory, NULL);
        return;
    }
    FwpsCopyStreamDataToBuffer0(streamData, buffer, length, &copied);
    if (copied > length) {
        copied = length;
    }
    TsbParse(buffer, copied, &hello);
    ExFreePoolWithTag(buffer, TSB_TAG);

    if (hello.nameLength != 0 && TsbIsBlocked(hello.name, hello.nameLength)) {
        /* Decided, however the rest of the hello turns out. */
        TsbDecide(inFixedValues, packet, classifyOut, TsbBlocked, hello.name);
        return;
    }
    switch (hello.result) {
    case TsbParseComplete:
        TsbDecide(inFixedValues, packet, classifyOut,
                  hello.nameLength != 0 ? TsbAllowedName : TsbAllowedNoName,
                  hello.nameLength != 0 ? hello.name : NULL);
        return;
    case TsbParseNotTls:
        TsbDecide(inFixedValues, packet, classifyOut, TsbNotTls, NULL);
        return;
    case TsbParseMalformed:
        TsbDecide(inFixedValues, packet, classifyOut, TsbMalformed, NULL);
        return;
    case TsbParseTooLarge:
        TsbDecide(inFixedValues, packet, classifyOut, TsbTooLarge, NULL);
        return;
    default:
        break;
    }
    if (classifyOut->flags &
        (FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA | FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED)) {
        /* Asking for more now would drop the connection: no more can come. */
        TsbDecide(inFixedValues, packet, classifyOut, TsbTruncated, NULL);
        return;
    }
    TraceEvents(TRACE_LEVEL_VERBOSE, TRACE_STREAM, "holding %Iu bytes, waiting for %Iu",
                streamData->dataLength, hello.bytesRequired);
    packet->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
    packet->countBytesRequired = (UINT32)hello.bytesRequired;
    classifyOut->actionType = FWP_ACTION_NONE;
}

static NTSTATUS NTAPI TsbNotify(_In_ FWPS_CALLOUT_NOTIFY_TYPE notifyType,
                                _In_ const GUID *filterKey, _Inout_ FWPS_FILTER0 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

/* ---- parameters --------------------------------------------------------------------- */

/* Adds one BlockedNames entry (text[0..length), ASCII checked by the caller). */
static NTSTATUS TsbAddName(_In_reads_(length) const WCHAR *text, _In_ SIZE_T length)
{
    TSB_NAME *entry;
    BOOLEAN suffix = FALSE;

    if (length > 0 && text[0] == L'.') {
        suffix = TRUE;
        text++;
        length--;
    }
    if (length > 0 && text[length - 1] == L'.') {
        length--;
    }
    if (length == 0 || length > TSB_NAME_MAX || g_nameCount == TSB_MAX_NAMES) {
        return STATUS_INVALID_PARAMETER;
    }
    entry = &g_names[g_nameCount];
    for (SIZE_T i = 0; i < length; i++) {
        WCHAR c = text[i];
        if (c >= L'A' && c <= L'Z') {
            c = (WCHAR)(c - L'A' + L'a');
        }
        if (!((c >= L'a' && c <= L'z') || (c >= L'0' && c <= L'9') || c == L'-' || c == L'_' ||
              c == L'.')) {
            return STATUS_INVALID_PARAMETER;
        }
        entry->text[i] = (CHAR)c;
    }
    entry->text[length] = '\0';
    entry->length = length;
    entry->suffix = suffix;
    g_nameCount++;
    return STATUS_SUCCESS;
}

static BOOLEAN TsbIsSeparator(_In_ WCHAR c)
{
    return c == L',' || c == L';' || c == L' ' || c == L'\t' || c == L'\r' || c == L'\n';
}

static NTSTATUS TsbParseNames(_In_ PCUNICODE_STRING names)
{
    SIZE_T count = names->Length / sizeof(WCHAR);
    SIZE_T start = 0;

    g_nameCount = 0;
    for (SIZE_T i = 0; i <= count; i++) {
        if (i < count && !TsbIsSeparator(names->Buffer[i])) {
            continue;
        }
        if (i > start) {
            NTSTATUS status = TsbAddName(names->Buffer + start, i - start);
            if (!NT_SUCCESS(status)) {
                DbgPrint("TlsSniBlock: BlockedNames: bad entry '%.*ws' (names are ASCII "
                         "letters, digits, '-', '_' and '.', at most %d of them, each at most "
                         "%d characters; '.example.com' for a domain and its subdomains)\n",
                         (int)(i - start), names->Buffer + start, TSB_MAX_NAMES, TSB_NAME_MAX);
                return status;
            }
        }
        start = i + 1;
    }
    if (g_nameCount == 0) {
        DbgPrint("TlsSniBlock: BlockedNames names no server name\n");
        return STATUS_INVALID_PARAMETER;
    }
    return STATUS_SUCCESS;
}

/* BlockedNames (REG_SZ), read twice: first its length, then the string. */
static NTSTATUS TsbReadNames(_In_ WDFKEY key)
{
    DECLARE_CONST_UNICODE_STRING(valueName, L"BlockedNames");
    UNICODE_STRING names = {0};
    USHORT length = 0;
    NTSTATUS status;

    status = WdfRegistryQueryUnicodeString(key, &valueName, &length, NULL);
    if (!NT_SUCCESS(status)) {
        DbgPrint("TlsSniBlock: no BlockedNames parameter (REG_SZ): 0x%08X\n", status);
        return status;
    }
    if (length > TSB_NAMES_MAX_BYTES) {
        DbgPrint("TlsSniBlock: BlockedNames is longer than %d bytes\n", TSB_NAMES_MAX_BYTES);
        return STATUS_INVALID_PARAMETER;
    }
    names.Buffer = (PWCH)ExAllocatePool2(POOL_FLAG_PAGED, length, TSB_TAG);
    if (names.Buffer == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    names.MaximumLength = length;
    status = WdfRegistryQueryUnicodeString(key, &valueName, NULL, &names);
    if (NT_SUCCESS(status)) {
        status = TsbParseNames(&names);
    }
    ExFreePoolWithTag(names.Buffer, TSB_TAG);
    return status;
}

/* A REG_DWORD parameter; a missing one keeps its default. */
static NTSTATUS TsbReadULong(_In_ WDFKEY key, _In_ PCUNICODE_STRING name, _Inout_ PULONG value)
{
    NTSTATUS status = WdfRegistryQueryULong(key, name, value);
    if (status == STATUS_OBJECT_NAME_NOT_FOUND) {
        return STATUS_SUCCESS;
    }
    if (!NT_SUCCESS(status)) {
        DbgPrint("TlsSniBlock: %wZ must be a REG_DWORD: 0x%08X\n", name, status);
    }
    return status;
}

static NTSTATUS TsbReadParameters(_In_ WDFDRIVER driver)
{
    DECLARE_CONST_UNICODE_STRING(failClosedName, L"FailClosed");
    DECLARE_CONST_UNICODE_STRING(maxHelloName, L"MaxHelloBytes");
    WDFKEY key;
    NTSTATUS status;

    status = WdfDriverOpenParametersRegistryKey(driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES, &key);
    if (!NT_SUCCESS(status)) {
        DbgPrint("TlsSniBlock: cannot open the Parameters key: 0x%08X\n", status);
        return status;
    }
    status = TsbReadNames(key);
    if (NT_SUCCESS(status)) {
        status = TsbReadULong(key, &failClosedName, &g_failClosed);
    }
    if (NT_SUCCESS(status)) {
        status = TsbReadULong(key, &maxHelloName, &g_maxHello);
    }
    if (NT_SUCCESS(status) && (g_maxHello < TSB_MIN_MAX_HELLO || g_maxHello > TSB_MAX_MAX_HELLO)) {
        DbgPrint("TlsSniBlock: MaxHelloBytes must be %d..%d\n", TSB_MIN_MAX_HELLO,
                 TSB_MAX_MAX_HELLO);
        status = STATUS_INVALID_PARAMETER;
    }
    WdfRegistryClose(key);
    return status;
}

/* ---- registration ------------------------------------------------------------------- */

static NTSTATUS TsbCreateDevice(_In_ WDFDRIVER driver)
{
    DECLARE_CONST_UNICODE_STRING(deviceName, L"\\Device\\TlsSniBlock");
    PWDFDEVICE_INIT deviceInit;
    NTSTATUS status;

    deviceInit = WdfControlDeviceInitAllocate(driver, &SDDL_DEVOBJ_KERNEL_ONLY);
    if (deviceInit == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    WdfDeviceInitSetDeviceType(deviceInit, FILE_DEVICE_NETWORK);
    WdfDeviceInitSetCharacteristics(deviceInit, FILE_DEVICE_SECURE_OPEN, FALSE);
    status = WdfDeviceInitAssignName(deviceInit, &deviceName);
    if (NT_SUCCESS(status)) {
        status = WdfDeviceCreate(&deviceInit, WDF_NO_OBJECT_ATTRIBUTES, &g_device);
    }
    if (!NT_SUCCESS(status)) {
        WdfDeviceInitFree(deviceInit);
        return status;
    }
    WdfControlFinishInitializing(g_device);
    return STATUS_SUCCESS;
}

static NTSTATUS TsbRegisterCallout(_In_ const GUID *calloutKey, _Out_ UINT32 *calloutId)
{
    FWPS_CALLOUT0 callout = {0};
    callout.calloutKey = *calloutKey;
    callout.flags = FWP_CALLOUT_FLAG_ALLOW_OFFLOAD;
    callout.classifyFn = TsbStreamClassify;
    callout.notifyFn = TsbNotify;
    return FwpsCalloutRegister0(WdfDeviceWdmGetDeviceObject(g_device), &callout, calloutId);
}

static NTSTATUS TsbAddCalloutAndFilter(_In_ const GUID *calloutKey, _In_ const GUID *layerKey,
                                       _In_ PWSTR name)
{
    FWPM_CALLOUT0 callout = {0};
    FWPM_FILTER0 filter = {0};
    NTSTATUS status;

    callout.calloutKey = *calloutKey;
    callout.displayData.name = name;
    callout.applicableLayer = *layerKey;
    status = FwpmCalloutAdd0(g_engine, &callout, NULL, NULL);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    filter.displayData.name = name;
    filter.layerKey = *layerKey;
    filter.subLayerKey = TSB_SUBLAYER;
    filter.action.type = FWP_ACTION_CALLOUT_TERMINATING;
    filter.action.calloutKey = *calloutKey;
    filter.weight.type = FWP_EMPTY;
    return FwpmFilterAdd0(g_engine, &filter, NULL, NULL);
}

static NTSTATUS TsbAddFilters(void)
{
    FWPM_SESSION0 session = {0};
    FWPM_SUBLAYER0 sublayer = {0};
    NTSTATUS status;

    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &g_engine);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = FwpmTransactionBegin0(g_engine, 0);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    sublayer.subLayerKey = TSB_SUBLAYER;
    sublayer.displayData.name = L"TLS server name block";
    sublayer.weight = 0x100;
    status = FwpmSubLayerAdd0(g_engine, &sublayer, NULL);
    if (NT_SUCCESS(status)) {
        status = TsbAddCalloutAndFilter(&TSB_STREAM_CALLOUT_V4, &FWPM_LAYER_STREAM_V4,
                                        L"TLS server name block (IPv4)");
    }
    if (NT_SUCCESS(status)) {
        status = TsbAddCalloutAndFilter(&TSB_STREAM_CALLOUT_V6, &FWPM_LAYER_STREAM_V6,
                                        L"TLS server name block (IPv6)");
    }
    if (NT_SUCCESS(status)) {
        status = FwpmTransactionCommit0(g_engine);
    } else {
        FwpmTransactionAbort0(g_engine);
    }
    return status;
}

/* Filters first (the dynamic session takes them along), then the callouts.
 * The control device stays: the framework deletes it after EvtDriverUnload. */
static void TsbCleanup(void)
{
    if (g_engine != NULL) {
        FwpmEngineClose0(g_engine);
        g_engine = NULL;
    }
    for (int i = 0; i < 2; i++) {
        if (g_calloutIds[i] != 0) {
            FwpsCalloutUnregisterById0(g_calloutIds[i]);
            g_calloutIds[i] = 0;
        }
    }
}

_Use_decl_annotations_
VOID TsbEvtDriverUnload(WDFDRIVER Driver)
{
    TsbCleanup();
    DbgPrint("TlsSniBlock: unloaded: %ld blocked, %ld allowed by name, %ld without name, "
             "%ld not TLS, %ld malformed, %ld too large, %ld truncated\n",
             g_outcomes[TsbBlocked], g_outcomes[TsbAllowedName], g_outcomes[TsbAllowedNoName],
             g_outcomes[TsbNotTls], g_outcomes[TsbMalformed], g_outcomes[TsbTooLarge],
             g_outcomes[TsbTruncated]);
    DoTraceMessage(TRACE_DRIVER, "unloaded");
    WPP_CLEANUP(WdfDriverWdmGetDriverObject(Driver));
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDFDRIVER driver;
    NTSTATUS status;

    WPP_INIT_TRACING(DriverObject, RegistryPath);

    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    config.EvtDriverUnload = TsbEvtDriverUnload;
    config.DriverPoolTag = TSB_TAG;
    status = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config,
                             &driver);
    if (NT_SUCCESS(status)) {
        status = TsbReadParameters(driver);
    }
    if (NT_SUCCESS(status)) {
        status = TsbCreateDevice(driver);
    }
    if (NT_SUCCESS(status)) {
        status = TsbRegisterCallout(&TSB_STREAM_CALLOUT_V4, &g_calloutIds[0]);
    }
    if (NT_SUCCESS(status)) {
        status = TsbRegisterCallout(&TSB_STREAM_CALLOUT_V6, &g_calloutIds[1]);
    }
    if (NT_SUCCESS(status)) {
        status = TsbAddFilters();
    }
    if (!NT_SUCCESS(status)) {
        /* The framework does not call EvtDriverUnload after a failed DriverEntry. */
        DbgPrint("TlsSniBlock: set-up failed: 0x%08X\n", status);
        TsbCleanup();
        WPP_CLEANUP(DriverObject);
        return status;
    }
    DbgPrint("TlsSniBlock: loaded, %lu names, FailClosed=%lu, MaxHelloBytes=%lu\n", g_nameCount,
             g_failClosed, g_maxHello);
    DoTraceMessage(TRACE_DRIVER, "loaded from %wZ", RegistryPath);
    return STATUS_SUCCESS;
}
