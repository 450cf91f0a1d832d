/*
 * stream_edit: a WFP stream callout driver that edits one direction of every
 * TCP stream, replacing each occurrence of a byte pattern (Find) with another
 * (Replace, of any length, also empty: the pattern is deleted).
 *
 * The stream callout sits behind a CALLOUT_TERMINATING filter at
 * STREAM_V4/V6 and works in one of two modes (the Mode parameter):
 *
 * Mode=inline (default): every decision is taken inside classifyFn. It copies
 * a bounded chunk of each indication of the edited direction with
 * FwpsCopyStreamDataToBuffer0 and looks for the first occurrence:
 *   - bytes before it: PERMIT with countBytesEnforced = its offset (the engine
 *     indicates the rest again at once);
 *   - a full match at offset 0: Replace is injected inline
 *     (FwpsStreamInjectAsync0 from an NBL over an MDL) and the pattern is
 *     BLOCKed with countBytesEnforced = len(Find);
 *   - the start of the pattern at the end of the data: NEED_MORE_DATA with
 *     countBytesRequired = len(Find), unless no more data can come
 *     (FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA): then it is permitted;
 *   - no occurrence: PERMIT (the whole indication, or the copied chunk).
 *
 * Mode=oob (out of band): classifyFn only takes the data; the editing is
 * done later, at PASSIVE_LEVEL, by a worker:
 *   - classifyFn clones each indication of the edited direction
 *     (FwpsCloneStreamData0), queues the clone on the flow's context and
 *     BLOCKs all of it; the FIN (an empty DISCONNECT indication) is blocked
 *     and queued too, as a marker;
 *   - a per-flow IO work item takes the queue in order, replaces the pattern,
 *     keeps back the end that may be the start of a pattern until more bytes
 *     or the FIN arrive, and injects the result with FwpsStreamInjectAsync0;
 *     after the last bytes it injects the FIN (only if the flow had one);
 *   - back-pressure: while QueueLimit bytes or more wait for the worker,
 *     classifyFn answers DEFER to received data, and the worker calls
 *     FwpsStreamContinue0 once the queue is down to QueueLimit / 2. Sent data
 *     cannot be deferred (DEFER is for inbound data only), so the send queue
 *     is only capped: past SE_SEND_QUEUE_MAX the connection is dropped;
 *   - the flow context is created and associated at the first classify of a
 *     flow and freed when the flow is deleted and the worker and every
 *     injection it made are done with it.
 * A flow is never switched between the two modes: each mode registers its own
 * callouts.
 *
 * Either way the other direction is permitted untouched, and injected data
 * enters the stream below this callout, so a Replace that contains Find does
 * not loop. The two modes may run stacked (the driver loaded twice under two
 * file names): each has its own callout and sublayer keys, and the sublayer
 * with the higher weight sees the data first.
 *
 * Parameters (the Parameters subkey of the service key):
 *   Find            REG_SZ     required, ASCII, 1..SE_FIND_MAX characters
 *   Replace         REG_SZ     ASCII, 0..SE_REPLACE_MAX characters (default empty)
 *   Direction       REG_DWORD  0 = outbound (send, default), 1 = inbound (receive)
 *   Mode            REG_SZ     "inline" (default) or "oob"
 *   QueueLimit      REG_DWORD  oob: bytes queued for the worker at which received
 *                              data is deferred (default 65536, at least 1)
 *   SublayerWeight  REG_DWORD  weight of the driver's sublayer, 0..0xFFFF
 *                              (default 0x100 inline, 0x200 oob)
 */
#include <ntddk.h>
#include <wdm.h>
#include <ndis.h>
#include <fwpsk.h>
#include <fwpmk.h>

#define INITGUID
#include <guiddef.h>

/* Inline mode. */
// {5e7d0c3a-92b1-4f6e-8a4d-1c2b3a4d5e01}
DEFINE_GUID(SE_SUBLAYER, 0x5e7d0c3a, 0x92b1, 0x4f6e, 0x8a, 0x4d, 0x1c, 0x2b, 0x3a, 0x4d, 0x5e,
            0x01);
// {5e7d0c3a-92b1-4f6e-8a4d-1c2b3a4d5e20}
DEFINE_GUID(SE_STREAM_CALLOUT_V4, 0x5e7d0c3a, 0x92b1, 0x4f6e, 0x8a, 0x4d, 0x1c, 0x2b, 0x3a, 0x4d,
            0x5e, 0x20);
// {5e7d0c3a-92b1-4f6e-8a4d-1c2b3a4d5e21}
DEFINE_GUID(SE_STREAM_CALLOUT_V6, 0x5e7d0c3a, 0x92b1, 0x4f6e, 0x8a, 0x4d, 0x1c, 0x2b, 0x3a, 0x4d,
            0x5e, 0x21);

/* Out-of-band mode: keys of their own, so both modes can be loaded at once. */
// {5e7d0c3a-92b1-4f6e-8a4d-1c2b3a4d5e02}
DEFINE_GUID(SE_OOB_SUBLAYER, 0x5e7d0c3a, 0x92b1, 0x4f6e, 0x8a, 0x4d, 0x1c, 0x2b, 0x3a, 0x4d, 0x5e,
            0x02);
// {5e7d0c3a-92b1-4f6e-8a4d-1c2b3a4d5e30}
DEFINE_GUID(SE_OOB_STREAM_CALLOUT_V4, 0x5e7d0c3a, 0x92b1, 0x4f6e, 0x8a, 0x4d, 0x1c, 0x2b, 0x3a,
            0x4d, 0x5e, 0x30);
// {5e7d0c3a-92b1-4f6e-8a4d-1c2b3a4d5e31}
DEFINE_GUID(SE_OOB_STREAM_CALLOUT_V6, 0x5e7d0c3a, 0x92b1, 0x4f6e, 0x8a, 0x4d, 0x1c, 0x2b, 0x3a,
            0x4d, 0x5e, 0x31);

#define SE_TAG 'tdEs'        /* "sEdt" in a pool dump */
#define SE_FIND_MAX 128      /* longest pattern accepted */
#define SE_REPLACE_MAX 1024  /* longest replacement accepted */
#define SE_CHUNK 2048        /* inline: bytes looked at per classify; the rest is indicated again */

#define SE_QUEUE_LIMIT_DEFAULT (64 * 1024) /* oob: QueueLimit when not given */
#define SE_SEND_QUEUE_MAX (8 * 1024 * 1024) /* oob: sent bytes queued before the connection is dropped */
#define SE_INJECT_MAX (16 * 1024)           /* oob: largest buffer (and NBL) the worker injects */
#define SE_INLINE_WEIGHT 0x100
#define SE_OOB_WEIGHT 0x200 /* above inline: stacked, the inline editor sees the oob output */

C_ASSERT(SE_CHUNK >= SE_FIND_MAX); /* a chunk always holds a whole pattern */
C_ASSERT(SE_INJECT_MAX >= SE_REPLACE_MAX);

typedef enum SE_MODE_ { SeModeInline, SeModeOob } SE_MODE;

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD StreamEditUnload;

static PDEVICE_OBJECT g_device;
static HANDLE g_engine;
static HANDLE g_injection;
static NDIS_HANDLE g_nblPool;
static UINT32 g_streamCalloutIds[2];

/* Set in DriverEntry, read-only afterwards. */
static UINT8 g_find[SE_FIND_MAX];
static SIZE_T g_findLength;
static UINT8 g_replace[SE_REPLACE_MAX];
static SIZE_T g_replaceLength;
static ULONG g_direction; /* 0: send, 1: receive */
static SE_MODE g_mode;
static ULONG g_queueLimit = SE_QUEUE_LIMIT_DEFAULT;
static ULONG g_sublayerWeight;

static LONG volatile g_pendingInjections;
static LONG volatile g_replaced;
static LONG volatile g_injectFailures;
static LONG volatile g_deferrals;

/* ---- shared by both modes ----------------------------------------------------------- */

/* Where the pattern first starts in data, or length if nowhere; *partial is
 * set when what starts there is only the beginning of the pattern, cut off by
 * the end of the data. */
static SIZE_T SeFind(_In_reads_(length) const UINT8 *data, _In_ SIZE_T length,
                     _Out_ BOOLEAN *partial)
{
    *partial = FALSE;
    for (SIZE_T i = 0; i < length; i++) {
        SIZE_T matched = 0;
        if (data[i] != g_find[0]) {
            continue;
        }
        while (matched < g_findLength && i + matched < length &&
               data[i + matched] == g_find[matched]) {
            matched++;
        }
        if (matched == g_findLength) {
            return i;
        }
        if (i + matched == length) {
            *partial = TRUE;
            return i;
        }
    }
    return length;
}

static UINT32 SeDirectionFlag(void)
{
    return g_direction == 0 ? FWPS_STREAM_FLAG_SEND : FWPS_STREAM_FLAG_RECEIVE;
}

/* What both classifyFns do first: nothing if a higher-weight filter has
 * decided already; else PERMIT, no stream action, and the stream data if it
 * is of the edited direction and on a flow (without a flow nothing can be
 * injected). NULL: nothing more to do, the rest passes untouched. */
static FWPS_STREAM_DATA0 *SeClassifyBegin(_In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                          _Inout_opt_ FWPS_STREAM_CALLOUT_IO_PACKET0 *packet,
                                          _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    if (!(classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)) {
        return NULL; /* a higher-weight filter has decided already */
    }
    classifyOut->actionType = FWP_ACTION_PERMIT;
    if (packet == NULL || packet->streamData == NULL) {
        return NULL;
    }
    packet->streamAction = FWPS_STREAM_ACTION_NONE;
    packet->countBytesEnforced = 0;
    if (!(packet->streamData->flags & SeDirectionFlag()) ||
        !FWPS_IS_METADATA_FIELD_PRESENT(inMetaValues, FWPS_METADATA_FIELD_FLOW_HANDLE)) {
        return NULL;
    }
    return packet->streamData;
}

/* Injects `length` bytes at `buffer` (non-paged) into the flow, in the
 * direction of streamFlags, as one NBL over an MDL; completionFn gets
 * `context` and frees the NBL and the MDL. No completion comes for a failed
 * call: the NBL and the MDL are freed here, the buffer stays the caller's. */
static NTSTATUS SeInject(_In_ UINT64 flowHandle, _In_ UINT32 calloutId, _In_ UINT16 layerId,
                         _In_ UINT32 streamFlags, _In_reads_(length) UINT8 *buffer,
                         _In_ SIZE_T length, _In_ FWPS_INJECT_COMPLETE0 completionFn,
                         _In_opt_ void *context)
{
    NET_BUFFER_LIST *netBufferList = NULL;
    MDL *mdl;
    NTSTATUS status;

    mdl = IoAllocateMdl(buffer, (ULONG)length, FALSE, FALSE, NULL);
    if (mdl == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    MmBuildMdlForNonPagedPool(mdl);
    status = FwpsAllocateNetBufferAndNetBufferList0(g_nblPool, 0, 0, mdl, 0, length,
                                                    &netBufferList);
    if (!NT_SUCCESS(status)) {
        IoFreeMdl(mdl);
        return status;
    }
    InterlockedIncrement(&g_pendingInjections);
    status = FwpsStreamInjectAsync0(g_injection, NULL, 0, flowHandle, calloutId, layerId,
                                    streamFlags, netBufferList, length, completionFn, context);
    if (!NT_SUCCESS(status)) {
        InterlockedDecrement(&g_pendingInjections);
        FwpsFreeNetBufferList0(netBufferList);
        IoFreeMdl(mdl);
    }
    return status;
}

/* Waits, 10 ms at a time, until *count is 0 (PASSIVE_LEVEL). */
static void SeWaitForZero(_In_ LONG volatile *count)
{
    LARGE_INTEGER interval;

    interval.QuadPart = -10 * 1000 * 10; /* 10 ms, relative */
    while (InterlockedCompareExchange(count, 0, 0) != 0) {
        KeDelayExecutionThread(KernelMode, FALSE, &interval);
    }
}

/* ---- inline mode -------------------------------------------------------------------- */

static void NTAPI SeInlineInjectComplete(_In_ void *context, _Inout_ NET_BUFFER_LIST *netBufferList,
                                         _In_ BOOLEAN dispatchLevel)
{
    MDL *mdl = NET_BUFFER_FIRST_MDL(NET_BUFFER_LIST_FIRST_NB(netBufferList));

    UNREFERENCED_PARAMETER(context);
    UNREFERENCED_PARAMETER(dispatchLevel);
    if (!NT_SUCCESS(NET_BUFFER_LIST_STATUS(netBufferList))) {
        DbgPrint("StreamEdit: injection completed with 0x%08X\n",
                 NET_BUFFER_LIST_STATUS(netBufferList));
    }
    FwpsFreeNetBufferList0(netBufferList);
    IoFreeMdl(mdl); /* over g_replace, which is not ours to free */
    InterlockedDecrement(&g_pendingInjections);
}

static void NTAPI SeInlineClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                   _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                   _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                                   _In_ UINT64 flowContext, _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    FWPS_STREAM_CALLOUT_IO_PACKET0 *packet = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    FWPS_STREAM_DATA0 *streamData = SeClassifyBegin(inMetaValues, packet, classifyOut);
    UINT8 *buffer;
    SIZE_T chunk;
    SIZE_T copied = 0;
    SIZE_T at;
    BOOLEAN partial = FALSE;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(flowContext);
    if (streamData == NULL || streamData->dataLength == 0) {
        return; /* nothing to edit, or a disconnect */
    }

    chunk = streamData->dataLength < SE_CHUNK ? streamData->dataLength : SE_CHUNK;
    buffer = (UINT8 *)ExAllocatePool2(POOL_FLAG_NON_PAGED, chunk, SE_TAG);
    if (buffer == NULL) {
        return; /* cannot look: let it pass rather than stall the connection */
    }
    FwpsCopyStreamDataToBuffer0(streamData, buffer, chunk, &copied);
    at = SeFind(buffer, copied, &partial);
    ExFreePoolWithTag(buffer, SE_TAG);
    if (copied == 0) {
        return;
    }

    if (at == copied) {
        /* Clean. Only the copied chunk is decided; the engine indicates the rest again. */
        if (copied < streamData->dataLength) {
            packet->countBytesEnforced = copied;
        }
        return;
    }
    if (at > 0) {
        /* The bytes before the match go now; the match is indicated again first. */
        packet->countBytesEnforced = at;
        return;
    }
    if (partial) {
        /* The data ends inside what may become the pattern (the chunk holds a whole
         * pattern, so here copied is all the data). */
        if (!(classifyOut->flags & FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA)) {
            packet->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
            packet->countBytesRequired = (UINT32)g_findLength;
        }
        return;
    }

    /* The pattern at offset 0: Replace is injected inline in front of it, and
     * the pattern is blocked. */
    if (g_replaceLength != 0) {
        status = SeInject(inMetaValues->flowHandle, filter->action.calloutId,
                          inFixedValues->layerId,
                          streamData->flags & (FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_RECEIVE),
                          g_replace, g_replaceLength, SeInlineInjectComplete, NULL);
        if (!NT_SUCCESS(status)) {
            /* Blocking without the replacement would corrupt the stream more: pass it. */
            if (InterlockedIncrement(&g_injectFailures) == 1) {
                DbgPrint("StreamEdit: FwpsStreamInjectAsync0 failed: 0x%08X, pattern left in place\n",
                         status);
            }
            packet->countBytesEnforced = g_findLength;
            return;
        }
    }
    InterlockedIncrement(&g_replaced);
    packet->countBytesEnforced = g_findLength;
    classifyOut->actionType = FWP_ACTION_BLOCK;
    classifyOut->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

/* ---- out-of-band mode --------------------------------------------------------------- */

/*
 * Who does the work: an IO work item per flow, rather than one system thread
 * (PsCreateSystemThread waiting on a KEVENT):
 *   - nothing runs while there is nothing to do, and the flows' work spreads
 *     over the system worker threads instead of one thread for all flows;
 *   - IoQueueWorkItem keeps the device object, hence the driver, referenced
 *     while the routine runs, so DriverUnload cannot pull the code away from
 *     under it;
 *   - stopping is simply waiting for the flows to go (each queued work item
 *     holds a reference on its flow), with no thread to wake and join.
 * One flow's work stays in order because at most one work item runs for it:
 * classifyFn queues the work item only when workerScheduled is FALSE, and the
 * routine clears it, under the flow's lock, only once it found the queue
 * empty; after that it touches nothing but its reference.
 */

/* One indication taken by classifyFn, waiting for the worker. */
typedef struct SE_OOB_ITEM_ {
    LIST_ENTRY link;
    NET_BUFFER_LIST *clone;  /* the indicated bytes (FwpsCloneStreamData0); NULL for the FIN */
    SIZE_T length;           /* bytes in clone */
    UINT32 disconnectFlags;  /* the FIN's FWPS_STREAM_FLAG_*_DISCONNECT, else 0 */
} SE_OOB_ITEM;

/* The flow context: everything the out-of-band mode keeps per flow. */
typedef struct SE_FLOW_ {
    LIST_ENTRY link;          /* on g_flows while associated; under g_flowsLock */
    BOOLEAN onList;           /* under g_flowsLock */
    /* One for the association (dropped by flowDeleteFn), one while the work
     * item is scheduled, one per injection not yet completed. The last one
     * frees the context. */
    LONG volatile references;
    UINT64 flowHandle;
    UINT16 layerId;
    UINT32 calloutId;
    UINT32 directionFlag;     /* FWPS_STREAM_FLAG_SEND or FWPS_STREAM_FLAG_RECEIVE */
    PIO_WORKITEM workItem;

    KSPIN_LOCK lock;          /* classifyFn (DISPATCH_LEVEL) against the worker; guards: */
    LIST_ENTRY items;         /* SE_OOB_ITEM, oldest first */
    SIZE_T queuedBytes;       /* taken by classifyFn and not yet edited and injected */
    BOOLEAN workerScheduled;  /* the work item is queued or running */
    BOOLEAN deferred;         /* classifyFn answered DEFER: the worker owes FwpsStreamContinue0 */
    UINT32 deferredFlags;     /* the stream flags of the deferred indication, for it */
    BOOLEAN closed;           /* deleted or reset: nothing may be injected any more */
    BOOLEAN failed;           /* an edit could not be injected: the connection is aborted */

    /* The worker's alone (see above): the end of the data that may be the
     * start of a pattern, kept back until more bytes or the FIN come. */
    SIZE_T tailLength;
    UINT8 tail[SE_FIND_MAX];
} SE_FLOW;

static KSPIN_LOCK g_flowsLock;
static LIST_ENTRY g_flows;      /* live flow contexts, for DriverUnload */
static BOOLEAN g_unloading;     /* under g_flowsLock: no new contexts */
static LONG volatile g_liveFlows;

static IO_WORKITEM_ROUTINE SeOobWorker;

static void SeOobItemFree(_In_ SE_OOB_ITEM *item)
{
    if (item->clone != NULL) {
        FwpsDiscardClonedStreamData0(item->clone, 0, KeGetCurrentIrql() == DISPATCH_LEVEL);
    }
    ExFreePoolWithTag(item, SE_TAG);
}

static void SeOobFreeItems(_Inout_ LIST_ENTRY *items)
{
    while (!IsListEmpty(items)) {
        SeOobItemFree(CONTAINING_RECORD(RemoveHeadList(items), SE_OOB_ITEM, link));
    }
}

static void SeOobFlowFree(_In_ SE_FLOW *flow)
{
    SeOobFreeItems(&flow->items); /* only left there if the flow was never closed */
    IoFreeWorkItem(flow->workItem);
    ExFreePoolWithTag(flow, SE_TAG);
    InterlockedDecrement(&g_liveFlows);
}

static void SeOobFlowRelease(_In_ SE_FLOW *flow)
{
    if (InterlockedDecrement(&flow->references) == 0) {
        SeOobFlowFree(flow);
    }
}

/* The flow is gone or reset: drops what is queued; the worker injects nothing more. */
static void SeOobFlowClose(_In_ SE_FLOW *flow)
{
    KLOCK_QUEUE_HANDLE lockHandle;
    LIST_ENTRY dropped;

    InitializeListHead(&dropped);
    KeAcquireInStackQueuedSpinLock(&flow->lock, &lockHandle);
    flow->closed = TRUE;
    while (!IsListEmpty(&flow->items)) {
        SE_OOB_ITEM *item = CONTAINING_RECORD(RemoveHeadList(&flow->items), SE_OOB_ITEM, link);
        flow->queuedBytes -= item->length;
        InsertTailList(&dropped, &item->link);
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    SeOobFreeItems(&dropped);
}

/* An edit that cannot reach the stream leaves a hole in it: abort the
 * connection rather than let it go on without those bytes. */
static void SeOobFlowFail(_In_ SE_FLOW *flow, _In_ NTSTATUS status)
{
    KLOCK_QUEUE_HANDLE lockHandle;
    BOOLEAN first;

    KeAcquireInStackQueuedSpinLock(&flow->lock, &lockHandle);
    first = !flow->failed && !flow->closed; /* a closed flow refuses injections: expected */
    flow->failed = TRUE;
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    if (first) {
        if (InterlockedIncrement(&g_injectFailures) == 1) {
            DbgPrint("StreamEdit: out-of-band edit failed: 0x%08X, connection aborted\n",
                     status);
        }
        (void)FwpsFlowAbort0(flow->flowHandle);
    }
}

/* Creates the context of a flow at its first classify and associates it. */
static SE_FLOW *SeOobFlowCreate(_In_ UINT64 flowHandle, _In_ UINT16 layerId, _In_ UINT32 calloutId)
{
    SE_FLOW *flow;
    KLOCK_QUEUE_HANDLE lockHandle;
    NTSTATUS status;

    /* classifyFn runs at DISPATCH_LEVEL: non-paged pool (zeroed by ExAllocatePool2). */
    flow = (SE_FLOW *)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(*flow), SE_TAG);
    if (flow == NULL) {
        return NULL;
    }
    flow->workItem = IoAllocateWorkItem(g_device);
    if (flow->workItem == NULL) {
        ExFreePoolWithTag(flow, SE_TAG);
        return NULL;
    }
    flow->references = 1; /* the association's */
    flow->flowHandle = flowHandle;
    flow->layerId = layerId;
    flow->calloutId = calloutId;
    flow->directionFlag = SeDirectionFlag();
    KeInitializeSpinLock(&flow->lock);
    InitializeListHead(&flow->items);

    /* On the list before the association: flowDeleteFn may run as soon as
     * the association exists, and it takes the context off the list. */
    KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
    if (g_unloading) {
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        IoFreeWorkItem(flow->workItem);
        ExFreePoolWithTag(flow, SE_TAG);
        return NULL;
    }
    InsertTailList(&g_flows, &flow->link);
    flow->onList = TRUE;
    InterlockedIncrement(&g_liveFlows);
    KeReleaseInStackQueuedSpinLock(&lockHandle);

    status = FwpsFlowAssociateContext0(flowHandle, layerId, calloutId, (UINT64)(ULONG_PTR)flow);
    if (status != STATUS_SUCCESS) {
        /* Not associated: flowDeleteFn will not be called for it. */
        KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
        if (flow->onList) {
            RemoveEntryList(&flow->link);
            flow->onList = FALSE;
        }
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        SeOobFlowFree(flow);
        return NULL;
    }
    return flow;
}

static void NTAPI SeOobFlowDelete(_In_ UINT16 layerId, _In_ UINT32 calloutId,
                                  _In_ UINT64 flowContext)
{
    SE_FLOW *flow = (SE_FLOW *)(ULONG_PTR)flowContext;
    KLOCK_QUEUE_HANDLE lockHandle;

    UNREFERENCED_PARAMETER(layerId);
    UNREFERENCED_PARAMETER(calloutId);
    if (flow == NULL) {
        return;
    }
    KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
    if (flow->onList) {
        RemoveEntryList(&flow->link);
        flow->onList = FALSE;
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    SeOobFlowClose(flow);
    /* The context goes once a running worker and pending injections let go too. */
    SeOobFlowRelease(flow);
}

static void SeOobAnswerBlock(_Inout_ FWPS_STREAM_CALLOUT_IO_PACKET0 *packet,
                             _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    packet->streamAction = FWPS_STREAM_ACTION_NONE;
    packet->countBytesEnforced = packet->streamData->dataLength;
    classifyOut->actionType = FWP_ACTION_BLOCK;
    classifyOut->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

/* An out-of-band callout must not fall back to permitting data (that would
 * put the data ahead of what it still holds), and must not end the stream
 * with an invented FIN: it ends the connection. */
static void SeOobAnswerDrop(_Inout_ FWPS_STREAM_CALLOUT_IO_PACKET0 *packet,
                            _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    packet->streamAction = FWPS_STREAM_ACTION_DROP_CONNECTION;
    packet->countBytesEnforced = 0;
    classifyOut->actionType = FWP_ACTION_BLOCK;
    classifyOut->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static void NTAPI SeOobClassify(_In_ const FWPS_INCOMING_VALUES0 *inFixedValues,
                                _In_ const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                _Inout_opt_ void *layerData, _In_ const FWPS_FILTER0 *filter,
                                _In_ UINT64 flowContext, _Inout_ FWPS_CLASSIFY_OUT0 *classifyOut)
{
    FWPS_STREAM_CALLOUT_IO_PACKET0 *packet = (FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData;
    FWPS_STREAM_DATA0 *streamData;
    SE_FLOW *flow = (SE_FLOW *)(ULONG_PTR)flowContext;
    SE_OOB_ITEM *item;
    KLOCK_QUEUE_HANDLE lockHandle;
    BOOLEAN defer = FALSE;
    BOOLEAN drop = FALSE;
    BOOLEAN stopped;
    BOOLEAN schedule;
    NTSTATUS status;

    /* A reset in either direction ends the connection: nothing may be
     * injected into it any more (S10), whichever direction this callout
     * edits and whatever a higher-weight filter decided. So this comes
     * before SeClassifyBegin, which passes over both. */
    if (flow != NULL && packet != NULL && packet->streamData != NULL &&
        (packet->streamData->flags &
         (FWPS_STREAM_FLAG_SEND_ABORT | FWPS_STREAM_FLAG_RECEIVE_ABORT))) {
        SeOobFlowClose(flow);
    }
    streamData = SeClassifyBegin(inMetaValues, packet, classifyOut);
    if (streamData == NULL ||
        (streamData->flags & (FWPS_STREAM_FLAG_SEND_ABORT | FWPS_STREAM_FLAG_RECEIVE_ABORT))) {
        return;
    }
    if (streamData->dataLength == 0 &&
        !(streamData->flags & (FWPS_STREAM_FLAG_SEND_DISCONNECT | FWPS_STREAM_FLAG_RECEIVE_DISCONNECT))) {
        SeOobAnswerBlock(packet, classifyOut); /* empty and not a FIN: nothing to take */
        return;
    }
    if (flow == NULL) {
        flow = SeOobFlowCreate(inMetaValues->flowHandle, inFixedValues->layerId,
                               filter->action.calloutId);
        if (flow == NULL) {
            SeOobAnswerDrop(packet, classifyOut); /* no state, no editing in order */
            return;
        }
    }

    /* Back-pressure, decided on what still waits for the worker. A FIN is
     * never deferred, and sent data cannot be: DEFER is for inbound data. */
    KeAcquireInStackQueuedSpinLock(&flow->lock, &lockHandle);
    stopped = flow->closed || flow->failed;
    if (!stopped && streamData->dataLength != 0) {
        if (flow->directionFlag == FWPS_STREAM_FLAG_RECEIVE) {
            if (flow->queuedBytes >= g_queueLimit) {
                defer = TRUE;
                flow->deferred = TRUE; /* set before the worker can look, under the lock */
                flow->deferredFlags = streamData->flags;
            }
        } else if (flow->queuedBytes >= SE_SEND_QUEUE_MAX) {
            drop = TRUE;
        }
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    if (stopped) {
        SeOobAnswerBlock(packet, classifyOut); /* being aborted: nothing more goes through */
        return;
    }
    if (defer) {
        /* The engine keeps these bytes and indicates them again, with what
         * arrives meanwhile, after FwpsStreamContinue0. actionType is
         * ignored along with a stream action. */
        InterlockedIncrement(&g_deferrals);
        packet->streamAction = FWPS_STREAM_ACTION_DEFER;
        classifyOut->actionType = FWP_ACTION_NONE;
        return;
    }
    if (drop) {
        SeOobAnswerDrop(packet, classifyOut);
        return;
    }

    item = (SE_OOB_ITEM *)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(*item), SE_TAG);
    if (item == NULL) {
        SeOobAnswerDrop(packet, classifyOut);
        return;
    }
    item->length = streamData->dataLength;
    item->disconnectFlags =
        streamData->flags & (FWPS_STREAM_FLAG_SEND_DISCONNECT | FWPS_STREAM_FLAG_RECEIVE_DISCONNECT);
    if (item->length != 0) {
        status = FwpsCloneStreamData0(streamData, NULL, NULL, 0, &item->clone);
        if (!NT_SUCCESS(status)) {
            ExFreePoolWithTag(item, SE_TAG);
            SeOobAnswerDrop(packet, classifyOut);
            return;
        }
    }

    KeAcquireInStackQueuedSpinLock(&flow->lock, &lockHandle);
    stopped = flow->closed || flow->failed;
    schedule = FALSE;
    if (!stopped) {
        InsertTailList(&flow->items, &item->link);
        flow->queuedBytes += item->length;
        schedule = !flow->workerScheduled;
        if (schedule) {
            flow->workerScheduled = TRUE;
            InterlockedIncrement(&flow->references); /* the worker's, dropped when it is done */
        }
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    if (stopped) {
        SeOobItemFree(item);
    } else if (schedule) {
        IoQueueWorkItem(flow->workItem, SeOobWorker, DelayedWorkQueue, flow);
    }
    /* Taken (or dropped with a dead flow): none of it goes on from here. */
    SeOobAnswerBlock(packet, classifyOut);
}

static void NTAPI SeOobInjectComplete(_In_ void *context, _Inout_ NET_BUFFER_LIST *netBufferList,
                                      _In_ BOOLEAN dispatchLevel)
{
    SE_FLOW *flow = (SE_FLOW *)context;
    MDL *mdl = NET_BUFFER_FIRST_MDL(NET_BUFFER_LIST_FIRST_NB(netBufferList));
    void *buffer = MmGetMdlVirtualAddress(mdl);

    UNREFERENCED_PARAMETER(dispatchLevel);
    /* A failure here means the connection went away with the data on its
     * way (STATUS_CANCELLED at teardown): nothing is left to repair. */
    FwpsFreeNetBufferList0(netBufferList);
    IoFreeMdl(mdl);
    ExFreePoolWithTag(buffer, SE_TAG);
    InterlockedDecrement(&g_pendingInjections);
    SeOobFlowRelease(flow);
}

/* Injects `length` bytes of `buffer` (non-paged pool, SE_TAG), which the
 * completion frees; on failure, or into a closed flow, it is freed here.
 * The check and the injection are one step under the flow lock: a reset
 * indicated on another CPU between them would otherwise see an injection
 * after its SEND_ABORT (spec S10). Injecting at DISPATCH_LEVEL is allowed,
 * and the completion only drops a reference, so it may run inside. */
static void SeOobInject(_In_ SE_FLOW *flow, _In_ UINT8 *buffer, _In_ SIZE_T length)
{
    KLOCK_QUEUE_HANDLE lockHandle;
    NTSTATUS status = STATUS_SUCCESS;
    BOOLEAN stopped;

    InterlockedIncrement(&flow->references); /* the completion's */
    KeAcquireInStackQueuedSpinLock(&flow->lock, &lockHandle);
    stopped = flow->closed || flow->failed;
    if (!stopped) {
        status = SeInject(flow->flowHandle, flow->calloutId, flow->layerId, flow->directionFlag,
                          buffer, length, SeOobInjectComplete, flow);
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    if (stopped || !NT_SUCCESS(status)) {
        SeOobFlowRelease(flow); /* never the last: the worker holds one */
        ExFreePoolWithTag(buffer, SE_TAG);
    }
    if (!NT_SUCCESS(status)) {
        SeOobFlowFail(flow, status);
    }
}

/* The worker's output for one flow, gathered into buffers of at most
 * SE_INJECT_MAX bytes, each injected as one NBL as soon as it is full. */
typedef struct SE_OUTPUT_ {
    SE_FLOW *flow;
    SIZE_T left;     /* bytes still to come, so no buffer is larger than needed */
    UINT8 *buffer;
    SIZE_T size;
    SIZE_T length;
    BOOLEAN failed;
} SE_OUTPUT;

static void SeOutputFlush(_Inout_ SE_OUTPUT *out)
{
    if (out->buffer != NULL) {
        SeOobInject(out->flow, out->buffer, out->length); /* takes the buffer */
        out->buffer = NULL;
    }
}

static void SeOutputAppend(_Inout_opt_ SE_OUTPUT *out, _In_reads_(count) const UINT8 *bytes,
                           _In_ SIZE_T count)
{
    while (out != NULL && count != 0 && !out->failed) {
        SIZE_T n;
        if (out->buffer == NULL) {
            out->size = out->left > count ? out->left : count;
            out->size = out->size < SE_INJECT_MAX ? out->size : SE_INJECT_MAX;
            out->length = 0;
            out->buffer = (UINT8 *)ExAllocatePool2(POOL_FLAG_NON_PAGED, out->size, SE_TAG);
            if (out->buffer == NULL) {
                out->failed = TRUE;
                SeOobFlowFail(out->flow, STATUS_INSUFFICIENT_RESOURCES);
                return;
            }
        }
        n = out->size - out->length < count ? out->size - out->length : count;
        RtlCopyMemory(out->buffer + out->length, bytes, n);
        out->length += n;
        out->left = out->left > n ? out->left - n : 0;
        bytes += n;
        count -= n;
        if (out->length == out->size) {
            SeOutputFlush(out);
        }
    }
}

/* Replaces every whole pattern in input, left to right. Returns where the
 * end that may still be the start of a pattern begins (length if none); the
 * edit of everything before it is `*outputLength` bytes, written to `out`
 * unless it is NULL (a first pass that only measures). */
static SIZE_T SeOobScan(_In_reads_(length) const UINT8 *input, _In_ SIZE_T length,
                        _Inout_opt_ SE_OUTPUT *out, _Out_ SIZE_T *outputLength)
{
    SIZE_T pos = 0;

    *outputLength = 0;
    while (pos < length) {
        BOOLEAN partial;
        SIZE_T at = pos + SeFind(input + pos, length - pos, &partial);

        SeOutputAppend(out, input + pos, at - pos);
        *outputLength += at - pos;
        if (at == length || partial) {
            return at;
        }
        SeOutputAppend(out, g_replace, g_replaceLength);
        *outputLength += g_replaceLength;
        if (out != NULL) {
            InterlockedIncrement(&g_replaced);
        }
        pos = at + g_findLength;
    }
    return length;
}

/* Copies the first `length` bytes an NBL chain describes (each NB from its
 * current MDL and offset); FALSE if the chain holds fewer. */
static BOOLEAN SeCopyFromNetBufferLists(_In_ NET_BUFFER_LIST *chain,
                                        _Out_writes_(length) UINT8 *destination,
                                        _In_ SIZE_T length)
{
    SIZE_T copied = 0;

    for (NET_BUFFER_LIST *nbl = chain; nbl != NULL && copied < length;
         nbl = NET_BUFFER_LIST_NEXT_NBL(nbl)) {
        for (NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(nbl); nb != NULL && copied < length;
             nb = NET_BUFFER_NEXT_NB(nb)) {
            SIZE_T left = NET_BUFFER_DATA_LENGTH(nb);
            ULONG offset = NET_BUFFER_CURRENT_MDL_OFFSET(nb);
            for (MDL *mdl = NET_BUFFER_CURRENT_MDL(nb); mdl != NULL && left != 0 && copied < length;
                 mdl = mdl->Next, offset = 0) {
                UINT8 *va = (UINT8 *)MmGetSystemAddressForMdlSafe(
                    mdl, NormalPagePriority | MdlMappingNoExecute);
                SIZE_T n = MmGetMdlByteCount(mdl) > offset ? MmGetMdlByteCount(mdl) - offset : 0;
                if (va == NULL) {
                    return FALSE;
                }
                n = n < left ? n : left;
                n = n < length - copied ? n : length - copied;
                RtlCopyMemory(destination + copied, va + offset, n);
                copied += n;
                left -= n;
            }
        }
    }
    return copied == length;
}

/* Edits one queued item: its bytes after the kept-back tail, then, for the
 * FIN, the tail as it is and the FIN itself. PASSIVE_LEVEL, the flow's only
 * worker. */
static void SeOobProcess(_In_ SE_FLOW *flow, _In_ SE_OOB_ITEM *item)
{
    if (item->clone != NULL) {
        SIZE_T length = flow->tailLength + item->length;
        SIZE_T outputLength;
        SIZE_T keep;
        SE_OUTPUT out = {0};
        /* Scratch for the search, touched at PASSIVE_LEVEL only: paged pool. */
        UINT8 *input = (UINT8 *)ExAllocatePool2(POOL_FLAG_PAGED, length, SE_TAG);

        if (input == NULL) {
            SeOobFlowFail(flow, STATUS_INSUFFICIENT_RESOURCES);
            return;
        }
        RtlCopyMemory(input, flow->tail, flow->tailLength);
        if (!SeCopyFromNetBufferLists(item->clone, input + flow->tailLength, item->length)) {
            ExFreePoolWithTag(input, SE_TAG);
            SeOobFlowFail(flow, STATUS_UNSUCCESSFUL); /* shorter than indicated */
            return;
        }
        /* The bytes are copied out: the clone can go now rather than wait for an injection. */
        FwpsDiscardClonedStreamData0(item->clone, 0, FALSE);
        item->clone = NULL;

        keep = SeOobScan(input, length, NULL, &outputLength);
        out.flow = flow;
        out.left = outputLength;
        (void)SeOobScan(input, length, &out, &outputLength);
        SeOutputFlush(&out);
        /* What is kept back is shorter than the pattern. */
        NT_ASSERT(length - keep < SE_FIND_MAX);
        flow->tailLength = length - keep;
        RtlCopyMemory(flow->tail, input + keep, flow->tailLength);
        ExFreePoolWithTag(input, SE_TAG);
    }

    if (item->disconnectFlags != 0) {
        /* No more data: what was kept back cannot become a pattern any more. */
        SE_OUTPUT out = {0};
        KLOCK_QUEUE_HANDLE lockHandle;
        BOOLEAN stopped;
        NTSTATUS status;

        out.flow = flow;
        out.left = flow->tailLength;
        SeOutputAppend(&out, flow->tail, flow->tailLength);
        SeOutputFlush(&out);
        flow->tailLength = 0;
        if (out.failed) {
            return; /* no FIN after a hole */
        }
        /* The FIN the connection had, after its last bytes: an injection
         * without an NBL, with the DISCONNECT flag of the blocked indication
         * (no completion is called for it). Checked and made under the lock,
         * as in SeOobInject. */
        KeAcquireInStackQueuedSpinLock(&flow->lock, &lockHandle);
        stopped = flow->closed || flow->failed;
        status = STATUS_SUCCESS;
        if (!stopped) {
            status = FwpsStreamInjectAsync0(g_injection, NULL, 0, flow->flowHandle,
                                            flow->calloutId, flow->layerId,
                                            flow->directionFlag | item->disconnectFlags, NULL, 0,
                                            SeOobInjectComplete, flow);
        }
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        if (!NT_SUCCESS(status)) {
            SeOobFlowFail(flow, status);
        }
    }
}

_Use_decl_annotations_
static VOID SeOobWorker(PDEVICE_OBJECT DeviceObject, PVOID Context)
{
    SE_FLOW *flow = (SE_FLOW *)Context;
    KLOCK_QUEUE_HANDLE lockHandle;

    UNREFERENCED_PARAMETER(DeviceObject);
    NT_ASSERT(KeGetCurrentIrql() == PASSIVE_LEVEL);

    for (;;) {
        SE_OOB_ITEM *item;
        BOOLEAN skip;
        BOOLEAN resume;
        UINT32 resumeFlags = 0;

        KeAcquireInStackQueuedSpinLock(&flow->lock, &lockHandle);
        if (IsListEmpty(&flow->items)) {
            flow->workerScheduled = FALSE; /* the next classify queues the work item again */
            KeReleaseInStackQueuedSpinLock(&lockHandle);
            break;
        }
        item = CONTAINING_RECORD(RemoveHeadList(&flow->items), SE_OOB_ITEM, link);
        skip = flow->closed || flow->failed;
        KeReleaseInStackQueuedSpinLock(&lockHandle);

        /* Injections happen outside the lock: the engine may complete one at once. */
        if (!skip) {
            SeOobProcess(flow, item);
        }

        KeAcquireInStackQueuedSpinLock(&flow->lock, &lockHandle);
        flow->queuedBytes -= item->length;
        /* Resume the deferred receive side at the low-water mark, from here:
         * never from classifyFn, and never at the same time as an injection
         * of this flow (this routine makes them all). */
        resume = flow->deferred && !flow->closed && flow->queuedBytes <= g_queueLimit / 2;
        if (resume) {
            flow->deferred = FALSE;
            resumeFlags = flow->deferredFlags;
        }
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        SeOobItemFree(item);

        if (resume) {
            NTSTATUS status = FwpsStreamContinue0(flow->flowHandle, flow->calloutId,
                                                  flow->layerId, resumeFlags);
            if (!NT_SUCCESS(status)) {
                SeOobFlowFail(flow, status); /* left deferred, the connection would hang */
            }
        }
    }
    SeOobFlowRelease(flow); /* may free the context, and this work item with it */
}

/* DriverUnload: no new contexts; the flows still alive lose theirs (their
 * flowDeleteFn runs), then waits until every context is freed, which also
 * means their work items and injections are done. */
static void SeOobRemoveContexts(void)
{
    KLOCK_QUEUE_HANDLE lockHandle;

    KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
    g_unloading = TRUE;
    while (!IsListEmpty(&g_flows)) {
        SE_FLOW *flow = CONTAINING_RECORD(RemoveHeadList(&g_flows), SE_FLOW, link);
        UINT64 flowHandle = flow->flowHandle;
        UINT16 layerId = flow->layerId;
        UINT32 calloutId = flow->calloutId;
        flow->onList = FALSE;
        /* flowDeleteFn takes the lock (and may free the context): call out without it. */
        KeReleaseInStackQueuedSpinLock(&lockHandle);
        /* What the worker still holds can no longer reach the connection:
         * end it rather than let it go on with a hole. */
        (void)FwpsFlowAbort0(flowHandle);
        (void)FwpsFlowRemoveContext0(flowHandle, layerId, calloutId);
        KeAcquireInStackQueuedSpinLock(&g_flowsLock, &lockHandle);
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    SeWaitForZero(&g_liveFlows);
}

static NTSTATUS NTAPI SeNotify(_In_ FWPS_CALLOUT_NOTIFY_TYPE notifyType, _In_ const GUID *filterKey,
                               _Inout_ FWPS_FILTER0 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

/* ---- parameters --------------------------------------------------------------------- */

/* Reads one value of the key into pool the caller frees with SE_TAG. */
static NTSTATUS SeQueryValue(_In_ HANDLE key, _In_ PCWSTR name,
                             _Outptr_result_maybenull_ PKEY_VALUE_PARTIAL_INFORMATION *info)
{
    UNICODE_STRING valueName;
    ULONG length = 0;
    NTSTATUS status;

    *info = NULL;
    RtlInitUnicodeString(&valueName, name);
    status = ZwQueryValueKey(key, &valueName, KeyValuePartialInformation, NULL, 0, &length);
    if (status != STATUS_BUFFER_TOO_SMALL && status != STATUS_BUFFER_OVERFLOW) {
        return status;
    }
    *info = (PKEY_VALUE_PARTIAL_INFORMATION)ExAllocatePool2(POOL_FLAG_PAGED, length, SE_TAG);
    if (*info == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    status = ZwQueryValueKey(key, &valueName, KeyValuePartialInformation, *info, length, &length);
    if (!NT_SUCCESS(status)) {
        ExFreePoolWithTag(*info, SE_TAG);
        *info = NULL;
    }
    return status;
}

/* A REG_SZ value as ASCII bytes (UTF-16 -> ASCII), up to maxLength of them. */
static NTSTATUS SeQueryAscii(_In_ HANDLE key, _In_ PCWSTR name,
                             _Out_writes_to_(maxLength, *length) UINT8 *bytes,
                             _In_ SIZE_T maxLength, _Out_ SIZE_T *length)
{
    PKEY_VALUE_PARTIAL_INFORMATION info = NULL;
    NTSTATUS status;

    *length = 0;
    status = SeQueryValue(key, name, &info);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    if (info->Type != REG_SZ) {
        status = STATUS_OBJECT_TYPE_MISMATCH;
    }
    for (SIZE_T i = 0; NT_SUCCESS(status) && i < info->DataLength / sizeof(WCHAR); i++) {
        WCHAR c;
        RtlCopyMemory(&c, info->Data + i * sizeof(WCHAR), sizeof(c)); /* Data may be unaligned */
        if (c == L'\0') {
            break;
        }
        if (c > 0x7f || *length == maxLength) {
            status = STATUS_INVALID_PARAMETER; /* not ASCII, or too long */
        } else {
            bytes[(*length)++] = (UINT8)c;
        }
    }
    ExFreePoolWithTag(info, SE_TAG);
    return status;
}

/* A REG_DWORD value; *value is left alone when the value is missing. */
static NTSTATUS SeQueryDword(_In_ HANDLE key, _In_ PCWSTR name, _Inout_ ULONG *value)
{
    PKEY_VALUE_PARTIAL_INFORMATION info = NULL;
    NTSTATUS status = SeQueryValue(key, name, &info);

    if (!NT_SUCCESS(status)) {
        return status;
    }
    if (info->Type == REG_DWORD && info->DataLength == sizeof(ULONG)) {
        RtlCopyMemory(value, info->Data, sizeof(ULONG));
    } else {
        status = STATUS_OBJECT_TYPE_MISMATCH;
    }
    ExFreePoolWithTag(info, SE_TAG);
    return status;
}

/* Whether `bytes` spell `word` (lower-case ASCII), in any case. */
static BOOLEAN SeAsciiEqualNoCase(_In_reads_(length) const UINT8 *bytes, _In_ SIZE_T length,
                                  _In_z_ const char *word)
{
    SIZE_T i = 0;
    for (; i < length && word[i] != '\0'; i++) {
        UINT8 c = bytes[i] >= 'A' && bytes[i] <= 'Z' ? (UINT8)(bytes[i] - 'A' + 'a') : bytes[i];
        if (c != (UINT8)word[i]) {
            return FALSE;
        }
    }
    return i == length && word[i] == '\0';
}

/* Find and Replace (REG_SZ, ASCII), Direction (REG_DWORD), Mode (REG_SZ),
 * QueueLimit and SublayerWeight (REG_DWORD). */
static NTSTATUS SeReadParameters(_In_ PUNICODE_STRING RegistryPath)
{
    OBJECT_ATTRIBUTES attributes;
    UNICODE_STRING parametersName = RTL_CONSTANT_STRING(L"Parameters");
    HANDLE serviceKey = NULL;
    HANDLE parametersKey = NULL;
    UINT8 mode[8];
    SIZE_T modeLength = 0;
    ULONG weight = 0;
    NTSTATUS status;
    NTSTATUS valueStatus;

    InitializeObjectAttributes(&attributes, RegistryPath, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
                               NULL, NULL);
    status = ZwOpenKey(&serviceKey, KEY_READ, &attributes);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    InitializeObjectAttributes(&attributes, &parametersName,
                               OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, serviceKey, NULL);
    status = ZwOpenKey(&parametersKey, KEY_READ, &attributes);
    ZwClose(serviceKey);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    status = SeQueryAscii(parametersKey, L"Find", g_find, SE_FIND_MAX, &g_findLength);
    if (status == STATUS_OBJECT_NAME_NOT_FOUND) {
        DbgPrint("StreamEdit: no Find parameter\n");
    } else if (NT_SUCCESS(status) && g_findLength == 0) {
        status = STATUS_INVALID_PARAMETER;
    }
    if (!NT_SUCCESS(status) && status != STATUS_OBJECT_NAME_NOT_FOUND) {
        DbgPrint("StreamEdit: Find must be 1..%d ASCII characters (REG_SZ)\n", SE_FIND_MAX);
    }

    if (NT_SUCCESS(status)) {
        status = SeQueryAscii(parametersKey, L"Replace", g_replace, SE_REPLACE_MAX,
                              &g_replaceLength);
        if (status == STATUS_OBJECT_NAME_NOT_FOUND) {
            g_replaceLength = 0; /* default: delete the pattern */
            status = STATUS_SUCCESS;
        } else if (!NT_SUCCESS(status)) {
            DbgPrint("StreamEdit: Replace must be 0..%d ASCII characters (REG_SZ)\n",
                     SE_REPLACE_MAX);
        }
    }

    if (NT_SUCCESS(status)) {
        valueStatus = SeQueryDword(parametersKey, L"Direction", &g_direction);
        if (valueStatus != STATUS_OBJECT_NAME_NOT_FOUND &&
            (!NT_SUCCESS(valueStatus) || g_direction > 1)) {
            DbgPrint("StreamEdit: Direction must be a REG_DWORD, 0 (send) or 1 (receive)\n");
            status = STATUS_INVALID_PARAMETER;
        }
    }

    if (NT_SUCCESS(status)) {
        valueStatus = SeQueryAscii(parametersKey, L"Mode", mode, sizeof(mode), &modeLength);
        if (valueStatus == STATUS_OBJECT_NAME_NOT_FOUND) {
            g_mode = SeModeInline;
        } else if (NT_SUCCESS(valueStatus) && SeAsciiEqualNoCase(mode, modeLength, "inline")) {
            g_mode = SeModeInline;
        } else if (NT_SUCCESS(valueStatus) && SeAsciiEqualNoCase(mode, modeLength, "oob")) {
            g_mode = SeModeOob;
        } else {
            DbgPrint("StreamEdit: Mode must be inline or oob (REG_SZ)\n");
            status = STATUS_INVALID_PARAMETER;
        }
    }

    if (NT_SUCCESS(status)) {
        valueStatus = SeQueryDword(parametersKey, L"QueueLimit", &g_queueLimit);
        if (valueStatus != STATUS_OBJECT_NAME_NOT_FOUND &&
            (!NT_SUCCESS(valueStatus) || g_queueLimit == 0)) {
            DbgPrint("StreamEdit: QueueLimit must be a REG_DWORD of at least 1 (bytes)\n");
            status = STATUS_INVALID_PARAMETER;
        }
    }

    if (NT_SUCCESS(status)) {
        valueStatus = SeQueryDword(parametersKey, L"SublayerWeight", &weight);
        if (valueStatus == STATUS_OBJECT_NAME_NOT_FOUND) {
            weight = g_mode == SeModeOob ? SE_OOB_WEIGHT : SE_INLINE_WEIGHT;
        } else if (!NT_SUCCESS(valueStatus) || weight > 0xFFFF) {
            DbgPrint("StreamEdit: SublayerWeight must be a REG_DWORD, 0 to 0xFFFF\n");
            status = STATUS_INVALID_PARAMETER;
        }
        g_sublayerWeight = weight;
    }
    ZwClose(parametersKey);
    return status;
}

/* ---- registration ------------------------------------------------------------------- */

static NTSTATUS SeRegisterCallout(_In_ const GUID *calloutKey, _Out_ UINT32 *calloutId)
{
    FWPS_CALLOUT0 callout = {0};
    callout.calloutKey = *calloutKey;
    callout.notifyFn = SeNotify;
    if (g_mode == SeModeOob) {
        /* Not CONDITIONAL_ON_FLOW: the context is made at the first classify. */
        callout.classifyFn = SeOobClassify;
        callout.flowDeleteFn = SeOobFlowDelete;
    } else {
        callout.classifyFn = SeInlineClassify;
    }
    return FwpsCalloutRegister0(g_device, &callout, calloutId);
}

static NTSTATUS SeAddCalloutAndFilter(_In_ const GUID *calloutKey, _In_ const GUID *layerKey,
                                      _In_ const GUID *sublayerKey, _In_ PWSTR name)
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
    filter.subLayerKey = *sublayerKey;
    filter.action.type = FWP_ACTION_CALLOUT_TERMINATING;
    filter.action.calloutKey = *calloutKey;
    filter.weight.type = FWP_EMPTY;
    return FwpmFilterAdd0(g_engine, &filter, NULL, NULL);
}

static void SeCleanup(void)
{
    if (g_engine != NULL) {
        FwpmEngineClose0(g_engine); /* dynamic session: the filters go with it */
        g_engine = NULL;
    }
    /* No classify comes any more. The flows' work and their injections end
     * before the callouts they name go away. */
    SeOobRemoveContexts();
    /* The NBLs and MDLs of injections still pending are freed by their completion. */
    SeWaitForZero(&g_pendingInjections);
    for (int i = 0; i < 2; i++) {
        if (g_streamCalloutIds[i] != 0) {
            FwpsCalloutUnregisterById0(g_streamCalloutIds[i]);
            g_streamCalloutIds[i] = 0;
        }
    }
    if (g_injection != NULL) {
        FwpsInjectionHandleDestroy0(g_injection);
        g_injection = NULL;
    }
    if (g_nblPool != NULL) {
        NdisFreeNetBufferListPool(g_nblPool);
        g_nblPool = NULL;
    }
    if (g_device != NULL) {
        IoDeleteDevice(g_device);
        g_device = NULL;
    }
}

_Use_decl_annotations_
VOID StreamEditUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    SeCleanup();
    if (g_mode == SeModeOob) {
        DbgPrint("StreamEdit: unloaded (oob): %ld replaced, %ld injections failed, %ld deferred\n",
                 g_replaced, g_injectFailures, g_deferrals);
    } else {
        DbgPrint("StreamEdit: unloaded: %ld replaced, %ld injections failed\n", g_replaced,
                 g_injectFailures);
    }
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    FWPM_SESSION0 session = {0};
    FWPM_SUBLAYER0 sublayer = {0};
    NET_BUFFER_LIST_POOL_PARAMETERS poolParameters = {0};
    BOOLEAN oob;
    NTSTATUS status;

    NT_ASSERT(KeGetCurrentIrql() == PASSIVE_LEVEL);

    KeInitializeSpinLock(&g_flowsLock);
    InitializeListHead(&g_flows);

    status = SeReadParameters(RegistryPath);
    if (!NT_SUCCESS(status)) {
        DbgPrint("StreamEdit: bad parameters in %wZ: 0x%08X\n", RegistryPath, status);
        return status;
    }
    oob = g_mode == SeModeOob;

    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN,
                            FALSE, &g_device);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, &g_injection);
    if (NT_SUCCESS(status)) {
        poolParameters.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
        poolParameters.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
        poolParameters.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
        poolParameters.fAllocateNetBuffer = TRUE;
        poolParameters.PoolTag = SE_TAG;
        g_nblPool = NdisAllocateNetBufferListPool(NULL, &poolParameters);
        if (g_nblPool == NULL) {
            status = STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    if (NT_SUCCESS(status)) {
        status = SeRegisterCallout(oob ? &SE_OOB_STREAM_CALLOUT_V4 : &SE_STREAM_CALLOUT_V4,
                                   &g_streamCalloutIds[0]);
    }
    if (NT_SUCCESS(status)) {
        status = SeRegisterCallout(oob ? &SE_OOB_STREAM_CALLOUT_V6 : &SE_STREAM_CALLOUT_V6,
                                   &g_streamCalloutIds[1]);
    }
    if (NT_SUCCESS(status)) {
        session.flags = FWPM_SESSION_FLAG_DYNAMIC;
        status = FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &g_engine);
    }
    if (NT_SUCCESS(status)) {
        status = FwpmTransactionBegin0(g_engine, 0);
        if (NT_SUCCESS(status)) {
            const GUID *sublayerKey = oob ? &SE_OOB_SUBLAYER : &SE_SUBLAYER;
            sublayer.subLayerKey = *sublayerKey;
            sublayer.displayData.name = oob ? L"Stream edit (out-of-band)" : L"Stream edit";
            sublayer.weight = (UINT16)g_sublayerWeight;
            status = FwpmSubLayerAdd0(g_engine, &sublayer, NULL);
            if (NT_SUCCESS(status)) {
                status = SeAddCalloutAndFilter(oob ? &SE_OOB_STREAM_CALLOUT_V4
                                                   : &SE_STREAM_CALLOUT_V4,
                                               &FWPM_LAYER_STREAM_V4, sublayerKey,
                                               L"Stream edit: stream (IPv4)");
            }
            if (NT_SUCCESS(status)) {
                status = SeAddCalloutAndFilter(oob ? &SE_OOB_STREAM_CALLOUT_V6
                                                   : &SE_STREAM_CALLOUT_V6,
                                               &FWPM_LAYER_STREAM_V6, sublayerKey,
                                               L"Stream edit: stream (IPv6)");
            }
            if (NT_SUCCESS(status)) {
                status = FwpmTransactionCommit0(g_engine);
            } else {
                FwpmTransactionAbort0(g_engine);
            }
        }
    }
    if (!NT_SUCCESS(status)) {
        DbgPrint("StreamEdit: set-up failed: 0x%08X\n", status);
        SeCleanup();
        return status;
    }

    DriverObject->DriverUnload = StreamEditUnload;
    DbgPrint("StreamEdit: loaded (%s), %Iu bytes -> %Iu bytes in the %s direction, "
             "sublayer weight 0x%X\n",
             oob ? "oob" : "inline", g_findLength, g_replaceLength,
             g_direction == 0 ? "send" : "receive", g_sublayerWeight);
    return STATUS_SUCCESS;
}
