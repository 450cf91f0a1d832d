/* The built-in example callouts (example_callouts.h), in WDK style. */
#include "cli/example_callouts.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fwpmk.h>
#include <fwpsk.h>
#define INITGUID
#include <guiddef.h>

DEFINE_GUID(EXAMPLE_SUBLAYER, 0x0c7a11e5, 0x6e3a, 0x4b8e, 0x9d, 0x1f, 0x2a, 0x3b, 0x4c, 0x5d,
            0x6e, 0x01);
DEFINE_GUID(EXAMPLE_NOOP_V4, 0x0c7a11e5, 0x6e3a, 0x4b8e, 0x9d, 0x1f, 0x2a, 0x3b, 0x4c, 0x5d,
            0x6e, 0x10);
DEFINE_GUID(EXAMPLE_NOOP_V6, 0x0c7a11e5, 0x6e3a, 0x4b8e, 0x9d, 0x1f, 0x2a, 0x3b, 0x4c, 0x5d,
            0x6e, 0x11);
DEFINE_GUID(EXAMPLE_MASK_V4, 0x0c7a11e5, 0x6e3a, 0x4b8e, 0x9d, 0x1f, 0x2a, 0x3b, 0x4c, 0x5d,
            0x6e, 0x20);
DEFINE_GUID(EXAMPLE_MASK_V6, 0x0c7a11e5, 0x6e3a, 0x4b8e, 0x9d, 0x1f, 0x2a, 0x3b, 0x4c, 0x5d,
            0x6e, 0x21);

#define MAX_WORD 256
#define MAX_CALLOUTS 8

static HANDLE g_session;
static HANDLE g_injection;
static NDIS_HANDLE g_pool;
static UINT32 g_ids[MAX_CALLOUTS];
static int g_nids;
static char g_word[MAX_WORD + 1], g_stars[MAX_WORD + 1];
static SIZE_T g_wordLength;
static UINT64 g_noopBytes, g_maskBytes, g_masked;
static UINT16 g_blockedPort;
static BOOLEAN g_any;

/* ---- noop ----------------------------------------------------------------------- */

static void NTAPI NoopClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                               const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                               void *layerData, const FWPS_FILTER0 *filter, UINT64 flowContext,
                               FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(inFixedValues);
    UNREFERENCED_PARAMETER(inMetaValues);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    g_noopBytes += io->streamData->dataLength;
    classifyOut->actionType = FWP_ACTION_CONTINUE;
}

/* ---- mask ----------------------------------------------------------------------- */

static void NTAPI MaskInjectComplete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    UNREFERENCED_PARAMETER(context);
    UNREFERENCED_PARAMETER(dispatchLevel);
    MDL *mdl = NET_BUFFER_FIRST_MDL(NET_BUFFER_LIST_FIRST_NB(nbl));
    FwpsFreeNetBufferList0(nbl);
    IoFreeMdl(mdl);
}

/* Where the word starts in `data`, or `length` if it does not; *partial is
 * set when the data ends with the start of the word. */
static SIZE_T FindWord(const char *data, SIZE_T length, BOOLEAN *partial)
{
    *partial = FALSE;
    for (SIZE_T i = 0; i < length; i++) {
        if (data[i] != g_word[0])
            continue;
        SIZE_T m = 1;
        while (m < g_wordLength && i + m < length && data[i + m] == g_word[m])
            m++;
        if (m == g_wordLength)
            return i;
        if (i + m == length) {
            *partial = TRUE;
            return i;
        }
    }
    return length;
}

/* Injects the asterisks in place of the word (the caller blocks the word). */
static BOOLEAN InjectStars(const FWPS_INCOMING_VALUES0 *inFixedValues,
                           const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                           const FWPS_FILTER0 *filter, UINT32 streamFlags)
{
    MDL *mdl = IoAllocateMdl(g_stars, (ULONG)g_wordLength, FALSE, FALSE, NULL);
    NET_BUFFER_LIST *nbl = NULL;
    if (!mdl)
        return FALSE;
    MmBuildMdlForNonPagedPool(mdl);
    if (NT_SUCCESS(FwpsAllocateNetBufferAndNetBufferList0(g_pool, 0, 0, mdl, 0, g_wordLength,
                                                          &nbl)) &&
        NT_SUCCESS(FwpsStreamInjectAsync0(g_injection, NULL, 0, inMetaValues->flowHandle,
                                          filter->action.calloutId, inFixedValues->layerId,
                                          streamFlags, nbl, g_wordLength, MaskInjectComplete,
                                          NULL)))
        return TRUE;
    if (nbl)
        FwpsFreeNetBufferList0(nbl);
    IoFreeMdl(mdl);
    return FALSE;
}

static void NTAPI MaskClassify(const FWPS_INCOMING_VALUES0 *inFixedValues,
                               const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                               void *layerData, const FWPS_FILTER0 *filter, UINT64 flowContext,
                               FWPS_CLASSIFY_OUT0 *classifyOut)
{
    UNREFERENCED_PARAMETER(flowContext);
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    FWPS_STREAM_DATA0 *data = io->streamData;
    classifyOut->actionType = FWP_ACTION_PERMIT;
    if (data->dataLength == 0 || !(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE))
        return;
    char stackBuffer[2048];
    char *buffer = data->dataLength <= sizeof(stackBuffer) ? stackBuffer : malloc(data->dataLength);
    if (!buffer)
        return; /* cannot look: let it pass rather than stall the connection */
    SIZE_T copied = 0;
    FwpsCopyStreamDataToBuffer0(data, buffer, data->dataLength, &copied);
    BOOLEAN partial;
    SIZE_T at = FindWord(buffer, copied, &partial);
    if (buffer != stackBuffer)
        free(buffer);
    if (at > 0) {
        /* The clean bytes go now; the rest is indicated again at once. */
        io->countBytesEnforced = at;
        g_maskBytes += at;
        return;
    }
    if (partial) {
        if (!(classifyOut->flags & FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA)) {
            io->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
            io->countBytesRequired = (UINT32)g_wordLength;
        }
        g_maskBytes += copied;
        return;
    }
    UINT32 direction = data->flags & (FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_RECEIVE);
    if (InjectStars(inFixedValues, inMetaValues, filter, direction)) {
        g_masked++;
        g_maskBytes += g_wordLength;
        io->countBytesEnforced = g_wordLength;
        classifyOut->actionType = FWP_ACTION_BLOCK;
        classifyOut->rights &= ~FWPS_RIGHT_ACTION_WRITE;
    }
}

/* ---- registration ---------------------------------------------------------------- */

static NTSTATUS NTAPI ExampleNotify(FWPS_CALLOUT_NOTIFY_TYPE notifyType, const GUID *filterKey,
                                    FWPS_FILTER0 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

static WCHAR g_name[] = L"openwfp example";

static NTSTATUS OpenSession(void)
{
    if (g_session)
        return STATUS_SUCCESS;
    NTSTATUS status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &g_session);
    if (!NT_SUCCESS(status))
        return status;
    FWPM_SUBLAYER0 sublayer = {0};
    sublayer.subLayerKey = EXAMPLE_SUBLAYER;
    sublayer.displayData.name = g_name;
    sublayer.weight = 0x100;
    return FwpmSubLayerAdd0(g_session, &sublayer, NULL);
}

static NTSTATUS AddStreamCallout(const GUID *key, const GUID *layer,
                                 FWPS_CALLOUT_CLASSIFY_FN0 classifyFn, UINT32 action)
{
    if (g_nids == MAX_CALLOUTS)
        return STATUS_INSUFFICIENT_RESOURCES;
    FWPS_CALLOUT0 callout = {0};
    callout.calloutKey = *key;
    callout.classifyFn = classifyFn;
    callout.notifyFn = ExampleNotify;
    NTSTATUS status = FwpsCalloutRegister0(NULL, &callout, &g_ids[g_nids]);
    if (!NT_SUCCESS(status))
        return status;
    g_nids++;
    FWPM_CALLOUT0 mc = {0};
    mc.calloutKey = *key;
    mc.displayData.name = g_name;
    mc.applicableLayer = *layer;
    status = FwpmCalloutAdd0(g_session, &mc, NULL, NULL);
    if (!NT_SUCCESS(status))
        return status;
    FWPM_FILTER0 filter = {0};
    filter.displayData.name = g_name;
    filter.layerKey = *layer;
    filter.subLayerKey = EXAMPLE_SUBLAYER;
    filter.action.type = action;
    filter.action.calloutKey = *key;
    return FwpmFilterAdd0(g_session, &filter, NULL, NULL);
}

static NTSTATUS AddBlockPort(UINT16 port)
{
    const GUID *layers[2] = {&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4,
                             &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6};
    NTSTATUS status = STATUS_SUCCESS;
    for (int i = 0; i < 2 && NT_SUCCESS(status); i++) {
        FWPM_FILTER_CONDITION0 cond = {0};
        cond.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
        cond.matchType = FWP_MATCH_EQUAL;
        cond.conditionValue.type = FWP_UINT16;
        cond.conditionValue.uint16 = port;
        FWPM_FILTER0 block = {0};
        block.displayData.name = g_name;
        block.layerKey = *layers[i];
        block.subLayerKey = EXAMPLE_SUBLAYER;
        block.action.type = FWP_ACTION_BLOCK;
        block.numFilterConditions = 1;
        block.filterCondition = &cond;
        status = FwpmFilterAdd0(g_session, &block, NULL, NULL);
    }
    return status;
}

static NTSTATUS MaskSetup(const char *word)
{
    g_wordLength = strlen(word);
    if (g_wordLength == 0 || g_wordLength > MAX_WORD || g_word[0])
        return STATUS_INVALID_PARAMETER;
    memcpy(g_word, word, g_wordLength);
    memset(g_stars, '*', g_wordLength);
    NTSTATUS status =
        FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, &g_injection);
    if (!NT_SUCCESS(status))
        return status;
    NET_BUFFER_LIST_POOL_PARAMETERS params = {0};
    params.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    params.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    params.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    params.fAllocateNetBuffer = TRUE;
    params.PoolTag = 0x6b73614d; /* "Mask" */
    g_pool = NdisAllocateNetBufferListPool(NULL, &params);
    if (!g_pool)
        return STATUS_INSUFFICIENT_RESOURCES;
    status = AddStreamCallout(&EXAMPLE_MASK_V4, &FWPM_LAYER_STREAM_V4, MaskClassify,
                              FWP_ACTION_CALLOUT_TERMINATING);
    if (NT_SUCCESS(status))
        status = AddStreamCallout(&EXAMPLE_MASK_V6, &FWPM_LAYER_STREAM_V6, MaskClassify,
                                  FWP_ACTION_CALLOUT_TERMINATING);
    return status;
}

/* Each example registers fixed callout keys: a second one of a kind would
 * collide, so it is refused by name instead of by a status code. */
static BOOLEAN FirstOfItsKind(const char *spec)
{
    static char seen[3][16];
    size_t len = strcspn(spec, "=");
    for (int i = 0; i < 3; i++) {
        if (!seen[i][0]) {
            snprintf(seen[i], sizeof(seen[i]), "%.*s", (int)len, spec);
            return TRUE;
        }
        if (strlen(seen[i]) == len && strncmp(seen[i], spec, len) == 0)
            return FALSE;
    }
    return TRUE;
}

int owfp_examples_add(const char *spec)
{
    if (!FirstOfItsKind(spec)) {
        fprintf(stderr, "openwfp: --example %s: each example may be given once\n", spec);
        return -1;
    }
    NTSTATUS status = OpenSession();
    const char *eq = strchr(spec, '=');
    if (!NT_SUCCESS(status)) {
        /* reported below */
    } else if (strcmp(spec, "noop") == 0) {
        status = AddStreamCallout(&EXAMPLE_NOOP_V4, &FWPM_LAYER_STREAM_V4, NoopClassify,
                                  FWP_ACTION_CALLOUT_INSPECTION);
        if (NT_SUCCESS(status))
            status = AddStreamCallout(&EXAMPLE_NOOP_V6, &FWPM_LAYER_STREAM_V6, NoopClassify,
                                      FWP_ACTION_CALLOUT_INSPECTION);
    } else if (eq && strncmp(spec, "mask", (size_t)(eq - spec)) == 0 && eq - spec == 4) {
        status = MaskSetup(eq + 1);
    } else if (eq && strncmp(spec, "block-port", 10) == 0 && eq - spec == 10) {
        char *end;
        unsigned long port = strtoul(eq + 1, &end, 10);
        status = *end || port == 0 || port > 65535 ? STATUS_INVALID_PARAMETER
                     : AddBlockPort((UINT16)(g_blockedPort = (UINT16)port));
    } else {
        fprintf(stderr, "openwfp: unknown --example %s (noop, mask=WORD, block-port=N)\n", spec);
        return -1;
    }
    if (!NT_SUCCESS(status)) {
        fprintf(stderr, "openwfp: --example %s: failed with status 0x%08" PRIx32 "\n", spec,
                (uint32_t)status);
        return -1;
    }
    g_any = TRUE;
    return 0;
}

void owfp_examples_remove(void)
{
    if (g_session)
        FwpmEngineClose0(g_session);
    g_session = NULL;
    for (int i = 0; i < g_nids; i++)
        FwpsCalloutUnregisterById0(g_ids[i]);
    g_nids = 0;
    if (g_injection)
        FwpsInjectionHandleDestroy0(g_injection);
    g_injection = NULL;
    if (g_pool)
        NdisFreeNetBufferListPool(g_pool);
    g_pool = NULL;
}

void owfp_examples_report(void *out)
{
    if (!g_any)
        return;
    fprintf(out, "examples");
    if (g_noopBytes)
        fprintf(out, " noop_bytes=%" PRIu64, g_noopBytes);
    if (g_word[0])
        fprintf(out, " mask_word=%s mask_bytes=%" PRIu64 " masked=%" PRIu64, g_word, g_maskBytes,
                g_masked);
    if (g_blockedPort)
        fprintf(out, " block_port=%u", g_blockedPort);
    fputc('\n', out);
}
