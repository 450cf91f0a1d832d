/*
 * A callout driver written as for Windows that breaks one rule of the WFP
 * callout contract on purpose, for the verifier's tests
 * (tests/verify_faults.py, docs/verifier.md). The Fault parameter (REG_SZ in
 * the Parameters subkey) picks the rule; everything else is done properly.
 *
 * Callouts (each for IPv4 and IPv6):
 *   - Stream:  the faulty stream callout, behind a CALLOUT_TERMINATING filter
 *              (CALLOUT_INSPECTION for drop-from-inspection) in sublayer MID;
 *   - Peek:    a stream inspection callout in sublayer HIGH (above MID), for
 *              the faults that need a second callout on the flow;
 *   - Ale:     a flow-established callout (inspection unless the fault
 *              needs a decision);
 *   - Bare:    a stream callout without flowDeleteFn, never in a filter.
 *
 * Faults: see g_faults below. The functions the verifier names in its
 * backtraces are exported (not static) so their names show.
 */
#include "test_driver.h"

#define INITGUID
#include <guiddef.h>

// {6f1d2a30-8b4c-4d5e-9f60-7a8b9c0d1e01}
DEFINE_GUID(FAULTY_SUBLAYER_MID, 0x6f1d2a30, 0x8b4c, 0x4d5e, 0x9f, 0x60, 0x7a, 0x8b, 0x9c, 0x0d,
            0x1e, 0x01);
// {6f1d2a30-8b4c-4d5e-9f60-7a8b9c0d1e02}
DEFINE_GUID(FAULTY_SUBLAYER_HIGH, 0x6f1d2a30, 0x8b4c, 0x4d5e, 0x9f, 0x60, 0x7a, 0x8b, 0x9c, 0x0d,
            0x1e, 0x02);
// {6f1d2a30-8b4c-4d5e-9f60-7a8b9c0d1e03}
DEFINE_GUID(FAULTY_SUBLAYER_TOP, 0x6f1d2a30, 0x8b4c, 0x4d5e, 0x9f, 0x60, 0x7a, 0x8b, 0x9c, 0x0d,
            0x1e, 0x03);
// {6f1d2a30-8b4c-4d5e-9f60-7a8b9c0d1e1X}: Stream, Peek, Ale, Bare for V4 then V6
DEFINE_GUID(FAULTY_STREAM_V4, 0x6f1d2a30, 0x8b4c, 0x4d5e, 0x9f, 0x60, 0x7a, 0x8b, 0x9c, 0x0d, 0x1e,
            0x10);
DEFINE_GUID(FAULTY_PEEK_V4, 0x6f1d2a30, 0x8b4c, 0x4d5e, 0x9f, 0x60, 0x7a, 0x8b, 0x9c, 0x0d, 0x1e,
            0x11);
DEFINE_GUID(FAULTY_ALE_V4, 0x6f1d2a30, 0x8b4c, 0x4d5e, 0x9f, 0x60, 0x7a, 0x8b, 0x9c, 0x0d, 0x1e,
            0x12);
DEFINE_GUID(FAULTY_BARE_V4, 0x6f1d2a30, 0x8b4c, 0x4d5e, 0x9f, 0x60, 0x7a, 0x8b, 0x9c, 0x0d, 0x1e,
            0x13);
DEFINE_GUID(FAULTY_STREAM_V6, 0x6f1d2a30, 0x8b4c, 0x4d5e, 0x9f, 0x60, 0x7a, 0x8b, 0x9c, 0x0d, 0x1e,
            0x14);
DEFINE_GUID(FAULTY_PEEK_V6, 0x6f1d2a30, 0x8b4c, 0x4d5e, 0x9f, 0x60, 0x7a, 0x8b, 0x9c, 0x0d, 0x1e,
            0x15);
DEFINE_GUID(FAULTY_ALE_V6, 0x6f1d2a30, 0x8b4c, 0x4d5e, 0x9f, 0x60, 0x7a, 0x8b, 0x9c, 0x0d, 0x1e,
            0x16);
DEFINE_GUID(FAULTY_BARE_V6, 0x6f1d2a30, 0x8b4c, 0x4d5e, 0x9f, 0x60, 0x7a, 0x8b, 0x9c, 0x0d, 0x1e,
            0x17);

#define FAULTY_TAG 'ltaF'

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD FaultyUnload;

typedef enum FAULT_ {
    FaultNone,
    /* classify answers */
    FaultTerminatingNoDecision, /* S24: CONTINUE from a TERMINATING stream filter */
    FaultEnforcedTooMany,       /* S15: countBytesEnforced > dataLength */
    FaultNeedMoreDataForever,   /* S17: NEED_MORE_DATA, also once NO_MORE_DATA is set */
    FaultDeferOnSend,           /* S19: DEFER on a SEND indication */
    FaultDropFromInspection,    /* S18: DROP_CONNECTION behind an INSPECTION filter */
    FaultActionOutOfRange,      /* S21: streamAction 9 */
    FaultWriteWithoutRight,     /* A5: PERMIT written although the right is clear */
    FaultBlockKeepsRight,       /* A6: BLOCK without clearing the right */
    FaultPermitKeepsRight,      /* A6: PERMIT for a CLEAR_ACTION_RIGHT filter, right kept */
    /* injection */
    FaultOobAfterPermit,        /* S27: out-of-band injection for a callout that lets data pass */
    FaultMixedInlineOob,        /* S29: inline and out-of-band injection on one flow */
    FaultFinInvented,           /* S29: a SEND FIN injected that was never held */
    FaultInjectAfterAbort,      /* S10: injection in answer to SEND_ABORT */
    /* flow contexts and registration */
    FaultAssociateNoFlowDelete, /* F4 */
    FaultRemoveMissing,         /* F6 */
    FaultUnloadKeepsCallouts,   /* R8 (and E3): callouts left registered at unload */
    /* IRQL and threading */
    FaultWaitInClassify,        /* C4: KeWaitForSingleObject with a timeout in classifyFn */
    FaultSleepUnderSpinLock,    /* C4: KeDelayExecutionThread holding a spin lock */
    FaultPassiveCallInClassify, /* C4: IoDeleteSymbolicLink (PASSIVE_LEVEL) in classifyFn */
    FaultFwpmInClassify,        /* C4: FwpmTransactionBegin0 in classifyFn */
    FaultContinueInClassify,    /* C4: FwpsStreamContinue0 in classifyFn */
    /* kernel services */
    FaultPoolWrongTag,          /* K: ExFreePoolWithTag with another tag */
    /* resources left at unload */
    FaultLeakPool,
    FaultLeakNbl,
    FaultLeakMdl,
    FaultLeakClone,
    FaultLeakWorkItem,
    FaultLeakInjectionHandle,
} FAULT;

static const struct {
    PCWSTR name;
    FAULT fault;
} g_faults[] = {
    {L"none", FaultNone},
    {L"terminating-no-decision", FaultTerminatingNoDecision},
    {L"enforced-too-many", FaultEnforcedTooMany},
    {L"need-more-data-forever", FaultNeedMoreDataForever},
    {L"defer-on-send", FaultDeferOnSend},
    {L"drop-from-inspection", FaultDropFromInspection},
    {L"action-out-of-range", FaultActionOutOfRange},
    {L"write-without-right", FaultWriteWithoutRight},
    {L"block-keeps-right", FaultBlockKeepsRight},
    {L"permit-keeps-right", FaultPermitKeepsRight},
    {L"oob-after-permit", FaultOobAfterPermit},
    {L"mixed-inline-oob", FaultMixedInlineOob},
    {L"fin-invented", FaultFinInvented},
    {L"inject-after-abort", FaultInjectAfterAbort},
    {L"associate-no-flow-delete", FaultAssociateNoFlowDelete},
    {L"remove-missing", FaultRemoveMissing},
    {L"unload-keeps-callouts", FaultUnloadKeepsCallouts},
    {L"wait-in-classify", FaultWaitInClassify},
    {L"sleep-under-spinlock", FaultSleepUnderSpinLock},
    {L"passive-call-in-classify", FaultPassiveCallInClassify},
    {L"fwpm-in-classify", FaultFwpmInClassify},
    {L"continue-in-classify", FaultContinueInClassify},
    {L"pool-wrong-tag", FaultPoolWrongTag},
    {L"leak-pool", FaultLeakPool},
    {L"leak-nbl", FaultLeakNbl},
    {L"leak-mdl", FaultLeakMdl},
    {L"leak-clone", FaultLeakClone},
    {L"leak-workitem", FaultLeakWorkItem},
    {L"leak-injection-handle", FaultLeakInjectionHandle},
};

static FAULT g_fault;
static HANDLE g_injection;
static NDIS_HANDLE g_nblPool;
static UINT32 g_streamIds[2], g_peekIds[2], g_aleIds[2], g_bareIds[2];
static KEVENT g_never;         /* never signalled: wait-in-classify */
static LONG volatile g_cloned; /* leak-clone: only the first clone leaks */
static NTSTATUS volatile g_lastStatus; /* keeps the faulty calls out of tail position */
static LONG volatile g_injectedForPeek; /* oob-after-permit: once (this callout sees it again) */

/* ---- helpers -------------------------------------------------------------------------- */

static BOOLEAN FaultyIsV6(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues)
{
    return inFixedValues->layerId == FWPS_LAYER_STREAM_V6 ||
           inFixedValues->layerId == FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6;
}

static void NTAPI FaultyInjectComplete(_In_ void *context, _Inout_ NET_BUFFER_LIST *netBufferList,
                                       _In_ BOOLEAN dispatchLevel)
{
    UNREFERENCED_PARAMETER(context);
    UNREFERENCED_PARAMETER(dispatchLevel);
    FwpsFreeCloneNetBufferList0(netBufferList, 0);
}

/* Clones the indication and injects the clone for `calloutId` in the same
 * direction; the clone is freed on completion or failure. */
NTSTATUS FaultyInjectClone(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                           _In_ UINT64 flowHandle, _In_ UINT32 calloutId,
                           _In_ FWPS_STREAM_DATA0 *streamData, _In_ UINT32 streamFlags)
{
    NET_BUFFER_LIST *clone = NULL;
    NTSTATUS status = FwpsCloneStreamData0(streamData, NULL, NULL, 0, &clone);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = FwpsStreamInjectAsync0(g_injection, NULL, 0, flowHandle, calloutId,
                                    inFixedValues->layerId, streamFlags, clone,
                                    streamData->dataLength, FaultyInjectComplete, NULL);
    if (!NT_SUCCESS(status)) {
        FwpsFreeCloneNetBufferList0(clone, 0);
    }
    return status;
}

/* ---- STREAM: the faulty callout --------------------------------------------------------- */

void NTAPI FaultyStreamClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                                _In_ UINT64 flowContext, _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    FWPS_STREAM_CALLOUT_IO_PACKET0 *packet = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    FWPS_STREAM_DATA0 *streamData;
    UINT32 direction;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(flowContext);
    classifyOut->actionType = FWP_ACTION_PERMIT;
    if (packet == NULL || packet->streamData == NULL) {
        return;
    }
    streamData = packet->streamData;
    direction = streamData->flags & (FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_RECEIVE);
    packet->streamAction = FWPS_STREAM_ACTION_NONE;
    packet->countBytesEnforced = 0;

    switch (g_fault) {
    case FaultTerminatingNoDecision:
        classifyOut->actionType = FWP_ACTION_CONTINUE;
        break;
    case FaultEnforcedTooMany:
        if (streamData->dataLength != 0) {
            packet->countBytesEnforced = streamData->dataLength + 100;
        }
        break;
    case FaultNeedMoreDataForever:
        packet->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
        packet->countBytesRequired = (UINT32)streamData->dataLength + 1;
        classifyOut->actionType = FWP_ACTION_NONE;
        break;
    case FaultDeferOnSend:
        if (direction == FWPS_STREAM_FLAG_SEND && streamData->dataLength != 0) {
            packet->streamAction = FWPS_STREAM_ACTION_DEFER;
            classifyOut->actionType = FWP_ACTION_NONE;
        }
        break;
    case FaultDropFromInspection:
        if (streamData->dataLength != 0) {
            packet->streamAction = FWPS_STREAM_ACTION_DROP_CONNECTION;
            classifyOut->actionType = FWP_ACTION_NONE;
        }
        break;
    case FaultActionOutOfRange:
        packet->streamAction = (FWPS_STREAM_ACTION_TYPE)9;
        break;
    case FaultOobAfterPermit:
        /* Injects for Peek, which let these bytes through above: from here
         * that is out of band for Peek. Once: the injected bytes come here
         * again (they enter below Peek). */
        if (streamData->dataLength != 0 && InterlockedExchange(&g_injectedForPeek, 1) == 0) {
            g_lastStatus = FaultyInjectClone(inFixedValues, inMetaValues->flowHandle,
                                             g_peekIds[FaultyIsV6(inFixedValues)], streamData,
                                             direction);
        }
        break;
    case FaultMixedInlineOob:
        /* Inline editing: the data goes again by injection, the original is
         * blocked. (Peek injects for this callout out of band as well.) */
        if (streamData->dataLength != 0) {
            status = FaultyInjectClone(inFixedValues, inMetaValues->flowHandle,
                                       filter->action.calloutId, streamData, direction);
            if (NT_SUCCESS(status)) {
                classifyOut->actionType = FWP_ACTION_BLOCK;
                classifyOut->rights &= ~FWPS_RIGHT_ACTION_WRITE;
            }
        }
        break;
    case FaultFinInvented:
        if (direction == FWPS_STREAM_FLAG_SEND && streamData->dataLength != 0 &&
            !(streamData->flags & FWPS_STREAM_FLAG_SEND_DISCONNECT)) {
            g_lastStatus = FwpsStreamInjectAsync0(
                g_injection, NULL, 0, inMetaValues->flowHandle, filter->action.calloutId,
                inFixedValues->layerId, FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_SEND_DISCONNECT,
                NULL, 0, FaultyInjectComplete, NULL);
        }
        break;
    case FaultInjectAfterAbort:
        if (streamData->flags & FWPS_STREAM_FLAG_SEND_ABORT) {
            g_lastStatus = FaultyInjectClone(inFixedValues, inMetaValues->flowHandle,
                                             filter->action.calloutId, streamData,
                                             FWPS_STREAM_FLAG_SEND);
        }
        break;
    case FaultWaitInClassify: {
        LARGE_INTEGER timeout;
        timeout.QuadPart = -10 * 1000; /* 1 ms */
        (void)KeWaitForSingleObject(&g_never, Executive, KernelMode, FALSE, &timeout);
        break;
    }
    case FaultPassiveCallInClassify: {
        UNICODE_STRING link = RTL_CONSTANT_STRING(L"\\DosDevices\\FaultyDriver");
        (void)IoDeleteSymbolicLink(&link);
        break;
    }
    case FaultFwpmInClassify:
        if (NT_SUCCESS(FwpmTransactionBegin0(g_engine, 0))) {
            FwpmTransactionAbort0(g_engine);
        }
        break;
    case FaultContinueInClassify:
        g_lastStatus = FwpsStreamContinue0(inMetaValues->flowHandle, filter->action.calloutId,
                                           inFixedValues->layerId, FWPS_STREAM_FLAG_RECEIVE);
        break;
    case FaultLeakClone:
        if (streamData->dataLength != 0 && InterlockedExchange(&g_cloned, 1) == 0) {
            NET_BUFFER_LIST *clone = NULL;
            (void)FwpsCloneStreamData0(streamData, NULL, NULL, 0, &clone); /* never freed */
        }
        break;
    default:
        break;
    }
}

/* ---- STREAM: the inspection callout above it ---------------------------------------------- */

void NTAPI FaultyPeekClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                              _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                              _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                              _In_ UINT64 flowContext, _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    FWPS_STREAM_CALLOUT_IO_PACKET0 *packet = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;

    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    classifyOut->actionType = FWP_ACTION_CONTINUE;
    if (packet == NULL || packet->streamData == NULL) {
        return;
    }
    packet->streamAction = FWPS_STREAM_ACTION_NONE;
    if (g_fault == FaultMixedInlineOob && packet->streamData->dataLength != 0) {
        /* Out of band for the faulty callout below, which edits inline. */
        g_lastStatus = FaultyInjectClone(inFixedValues, inMetaValues->flowHandle,
                                         g_streamIds[FaultyIsV6(inFixedValues)], packet->streamData,
                                         packet->streamData->flags &
                                             (FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_RECEIVE));
    }
}

/* ---- ALE_FLOW_ESTABLISHED ---------------------------------------------------------------- */

void NTAPI FaultyAleClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                             _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                             _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                             _In_ UINT64 flowContext, _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    BOOLEAN ipv6 = FaultyIsV6(inFixedValues);
    UINT16 streamLayer = ipv6 ? FWPS_LAYER_STREAM_V6 : FWPS_LAYER_STREAM_V4;

    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(filter);
    UNREFERENCED_PARAMETER(flowContext);
    if (!FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_FLOW_HANDLE)) {
        return;
    }
    switch (g_fault) {
    case FaultWriteWithoutRight:
        classifyOut->actionType = FWP_ACTION_PERMIT; /* without looking at the right */
        break;
    case FaultBlockKeepsRight:
        if (classifyOut->rights & FWPS_RIGHT_ACTION_WRITE) {
            classifyOut->actionType = FWP_ACTION_BLOCK; /* and the right stays */
        }
        break;
    case FaultPermitKeepsRight:
        if (classifyOut->rights & FWPS_RIGHT_ACTION_WRITE) {
            classifyOut->actionType = FWP_ACTION_PERMIT; /* CLEAR_ACTION_RIGHT ignored */
        }
        break;
    case FaultAssociateNoFlowDelete:
        /* Bare has no flowDeleteFn: the context could never come back. */
        (void)FwpsFlowAssociateContext0(inMetaValues->flowHandle, streamLayer, g_bareIds[ipv6],
                                        (UINT64)(ULONG_PTR)&g_never);
        if (classifyOut->rights & FWPS_RIGHT_ACTION_WRITE) {
            classifyOut->actionType = FWP_ACTION_CONTINUE;
        }
        break;
    case FaultRemoveMissing:
        (void)FwpsFlowRemoveContext0(inMetaValues->flowHandle, streamLayer, g_streamIds[ipv6]);
        if (classifyOut->rights & FWPS_RIGHT_ACTION_WRITE) {
            classifyOut->actionType = FWP_ACTION_CONTINUE;
        }
        break;
    default:
        if (classifyOut->rights & FWPS_RIGHT_ACTION_WRITE) {
            classifyOut->actionType = FWP_ACTION_CONTINUE;
        }
        break;
    }
}

/* ---- shared callout functions ----------------------------------------------------------- */

NTSTATUS NTAPI FaultyNotify(_In_ FWPS_CALLOUT_NOTIFY_TYPE notifyType, _In_ const GUID *filterKey,
                            _Inout_ FWPS_FILTER0 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

void NTAPI FaultyFlowDelete(_In_ UINT16 layerId, _In_ UINT32 calloutId, _In_ UINT64 flowContext)
{
    UNREFERENCED_PARAMETER(layerId);
    UNREFERENCED_PARAMETER(calloutId);
    UNREFERENCED_PARAMETER(flowContext);
}

/* ---- set-up and unload ------------------------------------------------------------------- */

static NTSTATUS FaultyRegister(_In_ const GUID *key, _In_ FWPS_CALLOUT_CLASSIFY_FN0 classify,
                               _In_ BOOLEAN withFlowDelete, _Out_ UINT32 *calloutId)
{
    FWPS_CALLOUT0 callout = {0};
    callout.calloutKey = *key;
    callout.classifyFn = classify;
    callout.notifyFn = FaultyNotify;
    callout.flowDeleteFn = withFlowDelete ? FaultyFlowDelete : NULL;
    return FwpsCalloutRegister0(g_device, &callout, calloutId);
}

static NTSTATUS FaultyAddFilter(_In_opt_ const GUID *calloutKey, _In_ const GUID *layerKey,
                                _In_ const GUID *sublayer, _In_ FWP_ACTION_TYPE action,
                                _In_ UINT32 flags)
{
    FWPM_FILTER0 filter = {0};
    NTSTATUS status;

    if (calloutKey != NULL) {
        FWPM_CALLOUT0 callout = {0};
        callout.calloutKey = *calloutKey;
        callout.displayData.name = L"Faulty callout";
        callout.applicableLayer = *layerKey;
        status = FwpmCalloutAdd0(g_engine, &callout, NULL, NULL);
        if (!NT_SUCCESS(status)) {
            return status;
        }
        filter.action.calloutKey = *calloutKey;
    }
    filter.displayData.name = L"Faulty filter";
    filter.layerKey = *layerKey;
    filter.subLayerKey = *sublayer;
    filter.action.type = action;
    filter.flags = flags;
    filter.weight.type = FWP_EMPTY;
    return FwpmFilterAdd0(g_engine, &filter, NULL, NULL);
}

static NTSTATUS FaultyAddSublayer(_In_ const GUID *key, _In_ UINT16 weight)
{
    FWPM_SUBLAYER0 sublayer = {0};
    sublayer.subLayerKey = *key;
    sublayer.displayData.name = L"Faulty sublayer";
    sublayer.weight = weight;
    return FwpmSubLayerAdd0(g_engine, &sublayer, NULL);
}

static NTSTATUS FaultyAddFilters(void)
{
    static const GUID *const streamLayers[2] = {&FWPM_LAYER_STREAM_V4, &FWPM_LAYER_STREAM_V6};
    static const GUID *const aleLayers[2] = {&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4,
                                             &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6};
    static const GUID *const streamKeys[2] = {&FAULTY_STREAM_V4, &FAULTY_STREAM_V6};
    static const GUID *const peekKeys[2] = {&FAULTY_PEEK_V4, &FAULTY_PEEK_V6};
    static const GUID *const aleKeys[2] = {&FAULTY_ALE_V4, &FAULTY_ALE_V6};
    BOOLEAN needPeek = g_fault == FaultOobAfterPermit || g_fault == FaultMixedInlineOob;
    BOOLEAN aleDecides = g_fault == FaultWriteWithoutRight || g_fault == FaultBlockKeepsRight ||
                         g_fault == FaultPermitKeepsRight;
    NTSTATUS status;

    status = FaultyAddSublayer(&FAULTY_SUBLAYER_MID, 0x200);
    if (NT_SUCCESS(status)) {
        status = FaultyAddSublayer(&FAULTY_SUBLAYER_HIGH, 0x300);
    }
    if (NT_SUCCESS(status)) {
        status = FaultyAddSublayer(&FAULTY_SUBLAYER_TOP, 0x400);
    }
    for (int v = 0; v < 2 && NT_SUCCESS(status); v++) {
        status = FaultyAddFilter(streamKeys[v], streamLayers[v], &FAULTY_SUBLAYER_MID,
                                 g_fault == FaultDropFromInspection
                                     ? FWP_ACTION_CALLOUT_INSPECTION
                                     : FWP_ACTION_CALLOUT_TERMINATING,
                                 0);
        if (NT_SUCCESS(status) && needPeek) {
            status = FaultyAddFilter(peekKeys[v], streamLayers[v], &FAULTY_SUBLAYER_HIGH,
                                     FWP_ACTION_CALLOUT_INSPECTION, 0);
        }
        if (NT_SUCCESS(status)) {
            status = FaultyAddFilter(aleKeys[v], aleLayers[v], &FAULTY_SUBLAYER_MID,
                                     aleDecides ? FWP_ACTION_CALLOUT_TERMINATING
                                                : FWP_ACTION_CALLOUT_INSPECTION,
                                     g_fault == FaultPermitKeepsRight
                                         ? FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT
                                         : 0);
        }
        if (NT_SUCCESS(status) && g_fault == FaultWriteWithoutRight) {
            /* A hard PERMIT above: the callout below gets no right. */
            status = FaultyAddFilter(NULL, aleLayers[v], &FAULTY_SUBLAYER_TOP, FWP_ACTION_PERMIT,
                                     FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT);
        }
    }
    return status;
}

static NTSTATUS FaultyReadParameters(_In_ PUNICODE_STRING RegistryPath)
{
    RTL_QUERY_REGISTRY_TABLE table[2];
    WCHAR buffer[64];
    UNICODE_STRING fault;
    UNICODE_STRING path;
    WCHAR pathBuffer[256];
    NTSTATUS status;

    fault.Buffer = buffer;
    fault.Length = 0;
    fault.MaximumLength = sizeof(buffer);
    path.Buffer = pathBuffer;
    path.Length = 0;
    path.MaximumLength = sizeof(pathBuffer);
    status = RtlAppendUnicodeStringToString(&path, RegistryPath);
    if (NT_SUCCESS(status)) {
        status = RtlAppendUnicodeToString(&path, L"\\Parameters");
    }
    if (!NT_SUCCESS(status)) {
        return status;
    }
    RtlZeroMemory(table, sizeof(table));
    table[0].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_REQUIRED;
    table[0].Name = L"Fault";
    table[0].EntryContext = &fault;
    status = RtlQueryRegistryValues(RTL_REGISTRY_ABSOLUTE, path.Buffer, table, NULL, NULL);
    if (!NT_SUCCESS(status)) {
        DbgPrint("FaultyDriver: no Fault parameter: 0x%08X\n", status);
        return status;
    }
    for (ULONG i = 0; i < RTL_NUMBER_OF(g_faults); i++) {
        UNICODE_STRING name;
        RtlInitUnicodeString(&name, g_faults[i].name);
        if (RtlEqualUnicodeString(&name, &fault, TRUE)) {
            g_fault = g_faults[i].fault;
            DbgPrint("FaultyDriver: fault %wZ\n", &fault);
            return STATUS_SUCCESS;
        }
    }
    DbgPrint("FaultyDriver: unknown fault %wZ\n", &fault);
    return STATUS_INVALID_PARAMETER;
}

static void FaultyCleanup(void)
{
    if (g_fault != FaultUnloadKeepsCallouts) {
        TestCloseSession();
        TestUnregisterCallouts(g_streamIds, 2);
        TestUnregisterCallouts(g_peekIds, 2);
        TestUnregisterCallouts(g_aleIds, 2);
        TestUnregisterCallouts(g_bareIds, 2);
    }
    if (g_fault == FaultLeakInjectionHandle) {
        g_injection = NULL; /* forgotten: never destroyed */
    }
    TestDestroyInjection(&g_injection, &g_nblPool);
    TestDeleteDevice();
}

_Use_decl_annotations_
VOID FaultyUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    FaultyCleanup();
    DbgPrint("FaultyDriver: unloaded\n");
}

/* The faults that happen once, at load. */
static void FaultyAtLoad(void)
{
    switch (g_fault) {
    case FaultSleepUnderSpinLock: {
        KSPIN_LOCK lock;
        KIRQL oldIrql;
        LARGE_INTEGER interval;
        interval.QuadPart = -10 * 1000; /* 1 ms */
        KeInitializeSpinLock(&lock);
        KeAcquireSpinLock(&lock, &oldIrql);
        (void)KeDelayExecutionThread(KernelMode, FALSE, &interval);
        KeReleaseSpinLock(&lock, oldIrql);
        break;
    }
    case FaultPoolWrongTag: {
        PVOID block = ExAllocatePool2(POOL_FLAG_NON_PAGED, 32, FAULTY_TAG);
        if (block != NULL) {
            ExFreePoolWithTag(block, 'gnrW');
        }
        break;
    }
    case FaultLeakPool:
        (void)ExAllocatePool2(POOL_FLAG_NON_PAGED, 100, FAULTY_TAG); /* never freed */
        break;
    case FaultLeakNbl:
        (void)NdisAllocateNetBufferAndNetBufferList(g_nblPool, 0, 0, NULL, 0, 0); /* never freed */
        break;
    case FaultLeakMdl: {
        static UCHAR bytes[16];
        (void)IoAllocateMdl(bytes, sizeof(bytes), FALSE, FALSE, NULL); /* never freed */
        break;
    }
    case FaultLeakWorkItem:
        (void)IoAllocateWorkItem(g_device); /* never freed */
        break;
    default:
        break;
    }
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    static const GUID *const streamKeys[2] = {&FAULTY_STREAM_V4, &FAULTY_STREAM_V6};
    static const GUID *const peekKeys[2] = {&FAULTY_PEEK_V4, &FAULTY_PEEK_V6};
    static const GUID *const aleKeys[2] = {&FAULTY_ALE_V4, &FAULTY_ALE_V6};
    static const GUID *const bareKeys[2] = {&FAULTY_BARE_V4, &FAULTY_BARE_V6};
    NTSTATUS status;

    KeInitializeEvent(&g_never, NotificationEvent, FALSE);
    status = FaultyReadParameters(RegistryPath);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = TestCreateDevice(DriverObject);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = TestCreateInjection(FAULTY_TAG, &g_injection, &g_nblPool);
    for (int v = 0; v < 2 && NT_SUCCESS(status); v++) {
        status = FaultyRegister(streamKeys[v], FaultyStreamClassify, TRUE, &g_streamIds[v]);
        if (NT_SUCCESS(status)) {
            status = FaultyRegister(peekKeys[v], FaultyPeekClassify, TRUE, &g_peekIds[v]);
        }
        if (NT_SUCCESS(status)) {
            status = FaultyRegister(aleKeys[v], FaultyAleClassify, FALSE, &g_aleIds[v]);
        }
        if (NT_SUCCESS(status)) {
            status = FaultyRegister(bareKeys[v], FaultyStreamClassify, FALSE, &g_bareIds[v]);
        }
    }
    if (NT_SUCCESS(status)) {
        status = TestOpenSession();
    }
    if (NT_SUCCESS(status)) {
        status = FwpmTransactionBegin0(g_engine, 0);
        if (NT_SUCCESS(status)) {
            status = TestEndTransaction(FaultyAddFilters());
        }
    }
    if (!NT_SUCCESS(status)) {
        DbgPrint("FaultyDriver: set-up failed: 0x%08X\n", status);
        g_fault = FaultNone;
        FaultyCleanup();
        return status;
    }
    FaultyAtLoad();
    DriverObject->DriverUnload = FaultyUnload;
    return STATUS_SUCCESS;
}
