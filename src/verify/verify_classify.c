/*
 * Checks on classify answers (spec A5, A6, A9, S15, S17-S21, S24), on stream
 * injection (S10, S27, S29) and on classifies of one flow overlapping (S12,
 * C4). The answer checks run when classifyFn returns, in the engine's call
 * wrapper (callout_registry.c), and look at what the callout wrote; the
 * engine reads the answer its own way afterwards (stream/classify.c,
 * engine/arbitrate.c) and never learns of them; the out-of-band checks read
 * a stream answer with the engine's own owfp_stream_read_answer.
 *
 * Per flow, the verifier remembers for each stream callout what it did with
 * each direction (let data through, blocked the FIN, injected inline or out
 * of band) in a small block hung on the flow and freed with it; every field
 * is atomic, so injecting threads read it without the flow lock.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "engine/flow.h"
#include "stream/stream.h"
#include "verify/verify_internal.h"

#define FLOW_CALLOUTS 8

enum {
    PASSED = 1u << 0,      /* << dir: let bytes of that direction through */
    FIN_BLOCKED = 1u << 2, /* << dir: blocked (pended) that direction's FIN */
    INJ_INLINE = 1u << 4,
    INJ_OOB = 1u << 5,
    /* << dir: shown that direction's FIN and not (yet) let it through. Set
     * before classifyFn runs: an out-of-band worker may act on the FIN the
     * classify hands it before that classify has returned its BLOCK. */
    FIN_HELD = 1u << 6,
    /* Shown an indication with SEND_ABORT (S10). Per callout: the callouts
     * of a flow see the ABORT one after another, and one not yet shown it
     * may still be injecting. */
    SEND_ABORT_SHOWN = 1u << 8,
};

struct vflow {
    struct {
        atomic_uint callout;
        atomic_uint bits;
    } c[FLOW_CALLOUTS];
};

void owfp_verify_flow_free(void *state)
{
    free(state);
}

static struct vflow *vflow_of(struct owfp_flow *f)
{
    struct vflow *v = atomic_load_explicit(&f->verify, memory_order_acquire);
    if (v)
        return v;
    struct vflow *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    void *expected = NULL;
    if (atomic_compare_exchange_strong(&f->verify, &expected, n))
        return n;
    free(n);
    return expected;
}

/* The bits of callout `id` on the flow; NULL when the flow tracks too many. */
static atomic_uint *bits_of(struct vflow *v, uint32_t id)
{
    for (int i = 0; v && i < FLOW_CALLOUTS; i++) {
        unsigned cur = atomic_load(&v->c[i].callout);
        if (cur == id)
            return &v->c[i].bits;
        if (cur == 0) {
            unsigned expected = 0;
            if (atomic_compare_exchange_strong(&v->c[i].callout, &expected, id) ||
                expected == id)
                return &v->c[i].bits;
        }
    }
    return NULL;
}

static const char *dir_name(int dir)
{
    return dir == OWFP_STREAM_RECEIVE ? "RECEIVE" : "SEND";
}

static const char *action_name(uint32_t a)
{
    switch (a) {
    case FWP_ACTION_BLOCK: return "BLOCK";
    case FWP_ACTION_PERMIT: return "PERMIT";
    case FWP_ACTION_CONTINUE: return "CONTINUE";
    case FWP_ACTION_NONE: return "NONE";
    case FWP_ACTION_NONE_NO_MATCH: return "NONE_NO_MATCH";
    case 0: return "0 (never written)";
    default: return "not an action type";
    }
}

/* ---- stream answers --------------------------------------------------------------- */

/* From owfp_verify_enter_classify: the classify has begun (its own count is
 * in f->classifying), callout `id` is about to be called. */
void owfp_verify_stream_start(struct owfp_flow *f, uint32_t id, uint32_t stream_flags)
{
    if (atomic_load(&f->classifying) > 1) {
        /* The frame of this classify is not pushed yet: an outer one of
         * the same flow on this thread is the one that re-entered. */
        const struct owfp_verify_frame *fr = owfp_verify_top;
        bool here = fr && fr->flow == f->id;
        owfp_verify_report("C4", "classify-reentered", here ? fr->callout_id : 0, f->id, NULL,
                           NULL, OWFP_VERIFY_BT_STACK,
                           "a stream classify of flow 0x%" PRIx64 " started while %s (S12: "
                           "classifies of one flow never overlap)",
                           f->id,
                           here ? "a callout function of the same flow was running on this "
                                  "thread"
                                : "another classify of the same flow was running");
    }
    if (stream_flags & (FWPS_STREAM_FLAG_SEND_DISCONNECT | FWPS_STREAM_FLAG_RECEIVE_DISCONNECT)) {
        int dir = (stream_flags & FWPS_STREAM_FLAG_RECEIVE) ? OWFP_STREAM_RECEIVE
                                                            : OWFP_STREAM_SEND;
        atomic_uint *bits = bits_of(vflow_of(f), id);
        if (bits)
            atomic_fetch_or(bits, FIN_HELD << dir);
    }
}

/* What the out-of-band checks need to know later of an answer, as the
 * engine reads it (owfp_stream_read_answer): did bytes pass, was the FIN
 * blocked. *clear: bits that no longer hold (a FIN let through). */
static unsigned answer_bits(const struct owfp_answer *a, int dir, uint64_t len, bool fin,
                            unsigned *clear)
{
    *clear = 0;
    if (a->action == FWPS_STREAM_ACTION_ALLOW_CONNECTION) {
        *clear = fin ? FIN_HELD << dir : 0;
        return PASSED | (PASSED << 1);
    }
    if (a->action != FWPS_STREAM_ACTION_NONE)
        return 0; /* held, deferred or dropped: a FIN stays held */
    if (a->route == OWFP_ROUTE_BLOCK)
        return fin ? FIN_BLOCKED << dir : 0;
    *clear = fin ? FIN_HELD << dir : 0;
    return len ? PASSED << dir : 0;
}

void owfp_verify_stream_answer(const struct owfp_verify_frame *fr)
{
    const FWPS_STREAM_CALLOUT_IO_PACKET0 *io = fr->layer_data;
    const FWPS_FILTER0 *filter = fr->filter;
    const FWPS_CLASSIFY_OUT0 *out = fr->out;
    if (!io->streamData)
        return;
    uint32_t filter_action = filter->action.type;
    uint32_t sflags = fr->stream_flags;
    int dir = (sflags & FWPS_STREAM_FLAG_RECEIVE) ? OWFP_STREAM_RECEIVE : OWFP_STREAM_SEND;
    uint64_t len = io->streamData->dataLength;
    bool fin = sflags & (FWPS_STREAM_FLAG_SEND_DISCONNECT | FWPS_STREAM_FLAG_RECEIVE_DISCONNECT);
    const void *fn = fr->fn;
    uint32_t id = fr->callout_id;
    uint64_t flow = fr->flow;
    uint32_t sa = io->streamAction;
    struct owfp_answer a = {0};
    owfp_stream_read_answer(filter_action, io, out, len, &a);

    if (sa >= FWPS_STREAM_ACTION_TYPE_MAX)
        owfp_verify_report("S21", "stream-action-out-of-range", id, flow, NULL, fn,
                           OWFP_VERIFY_BT_FN,
                           "streamAction %" PRIu32 " is no FWPS_STREAM_ACTION_TYPE (%s "
                           "indication of %" PRIu64 " bytes): treated as DROP_CONNECTION",
                           sa, dir_name(dir), len);
    if (sa == FWPS_STREAM_ACTION_DROP_CONNECTION && filter_action == FWP_ACTION_CALLOUT_INSPECTION)
        owfp_verify_report("S18", "drop-from-inspection", id, flow, NULL, fn, OWFP_VERIFY_BT_FN,
                           "FWPS_STREAM_ACTION_DROP_CONNECTION from a CALLOUT_INSPECTION filter: "
                           "ignored, the connection stays up");
    if (sa == FWPS_STREAM_ACTION_DEFER && (sflags & FWPS_STREAM_FLAG_SEND))
        owfp_verify_report("S19", "defer-on-send", id, flow, NULL, fn, OWFP_VERIFY_BT_FN,
                           "FWPS_STREAM_ACTION_DEFER on a SEND indication (%" PRIu64
                           " bytes): DEFER is for inbound data only",
                           len);
    if (sa == FWPS_STREAM_ACTION_NEED_MORE_DATA &&
        (fr->out_flags_in & FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA))
        owfp_verify_report("S17", "need-more-data-after-end", id, flow, NULL, fn,
                           OWFP_VERIFY_BT_FN,
                           "FWPS_STREAM_ACTION_NEED_MORE_DATA while "
                           "FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA is set (%s, %" PRIu64
                           " bytes): no more data can come, the engine drops the connection",
                           dir_name(dir), len);
    if (sa == FWPS_STREAM_ACTION_NEED_MORE_DATA &&
        (fr->out_flags_in & FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED))
        owfp_verify_report("S17", "need-more-data-at-limit", id, flow, NULL, fn,
                           OWFP_VERIFY_BT_FN,
                           "FWPS_STREAM_ACTION_NEED_MORE_DATA while "
                           "FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED is set (%" PRIu64
                           " bytes held): the callout must permit or block all of it",
                           len);
    if (sa == FWPS_STREAM_ACTION_NONE) {
        if (filter_action == FWP_ACTION_CALLOUT_TERMINATING &&
            out->actionType != FWP_ACTION_PERMIT && out->actionType != FWP_ACTION_BLOCK)
            owfp_verify_report("S24", "terminating-no-decision", id, flow, NULL, fn,
                               OWFP_VERIFY_BT_FN,
                               "actionType 0x%" PRIx32 " (%s) with streamAction NONE from a "
                               "CALLOUT_TERMINATING stream filter: treated as BLOCK (A9), "
                               "%" PRIu64 " bytes removed",
                               (uint32_t)out->actionType, action_name(out->actionType),
                               a.enforced);
        if (io->countBytesEnforced > len)
            owfp_verify_report("S15", "enforced-exceeds-indication", id, flow, NULL, fn,
                               OWFP_VERIFY_BT_FN,
                               "countBytesEnforced %" PRIu64 " is more than the %" PRIu64
                               " bytes indicated: clamped",
                               (uint64_t)io->countBytesEnforced, len);
    }

    unsigned clear;
    unsigned set = answer_bits(&a, dir, len, fin, &clear);
    if (sflags & FWPS_STREAM_FLAG_SEND_ABORT)
        set |= SEND_ABORT_SHOWN; /* S10: this callout's injections from now on */
    if ((set || clear) && fr->flowp) {
        atomic_uint *bits = bits_of(vflow_of(fr->flowp), id);
        if (bits && (atomic_load_explicit(bits, memory_order_relaxed) & set) != set)
            atomic_fetch_or(bits, set);
        if (bits && clear)
            atomic_fetch_and(bits, ~clear);
    }
}

/* ---- generic answers ---------------------------------------------------------------- */

void owfp_verify_generic_answer(const struct owfp_verify_frame *fr)
{
    const FWPS_FILTER0 *filter = fr->filter;
    const FWPS_CLASSIFY_OUT0 *out = fr->out;
    const void *fn = fr->fn;
    uint32_t id = fr->callout_id;
    uint32_t act = out->actionType;
    /* The engine hands actionType 0 in (C3, Q11): anything else was written. */
    if (!(fr->rights_in & FWPS_RIGHT_ACTION_WRITE) && act != 0 && act != FWP_ACTION_BLOCK)
        owfp_verify_report("A5", "action-write-without-right", id, fr->flow, NULL, fn,
                           OWFP_VERIFY_BT_FN,
                           "actionType set to 0x%" PRIx32 " (%s) although "
                           "FWPS_RIGHT_ACTION_WRITE was clear (a higher sublayer decided "
                           "hard): only a BLOCK veto may be written",
                           act, action_name(act));
    if (filter->action.type == FWP_ACTION_CALLOUT_INSPECTION)
        return; /* its answer never counts (A9) */
    if (act == FWP_ACTION_BLOCK && (out->rights & FWPS_RIGHT_ACTION_WRITE))
        owfp_verify_report("A6", "block-keeps-right", id, fr->flow, NULL, fn, OWFP_VERIFY_BT_FN,
                           "returned BLOCK without clearing FWPS_RIGHT_ACTION_WRITE: a lower "
                           "sublayer may override the block");
    if (act == FWP_ACTION_PERMIT && (filter->flags & FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT) &&
        (out->rights & FWPS_RIGHT_ACTION_WRITE))
        owfp_verify_report("A6", "permit-keeps-right", id, fr->flow, NULL, fn, OWFP_VERIFY_BT_FN,
                           "returned PERMIT for a filter with FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT "
                           "without clearing FWPS_RIGHT_ACTION_WRITE");
}

/* ---- injection ---------------------------------------------------------------------- */

void owfp_verify_inject(struct owfp_flow *f, uint32_t callout_id, int dir, uint32_t stream_flags,
                        bool inline_call, bool deferred)
{
    struct vflow *v = vflow_of(f);
    if (!v)
        return;
    /* Inline from the classify of the SEND_ABORT indication itself, or at
     * any time after this callout was shown it. */
    const struct owfp_verify_frame *fr = owfp_verify_top;
    bool abort_now = inline_call && fr && fr->flow == f->id &&
                     (fr->stream_flags & FWPS_STREAM_FLAG_SEND_ABORT);
    atomic_uint *bits = bits_of(v, callout_id);
    if (abort_now || (bits && (atomic_load(bits) & SEND_ABORT_SHOWN)))
        owfp_verify_report("S10", "inject-after-send-abort", callout_id, f->id, NULL, NULL,
                           OWFP_VERIFY_BT_STACK,
                           "FwpsStreamInjectAsync0 into flow 0x%" PRIx64 " after an indication "
                           "carried FWPS_STREAM_FLAG_SEND_ABORT",
                           f->id);
    if (!bits)
        return;
    unsigned kind = inline_call ? INJ_INLINE : INJ_OOB;
    unsigned before = atomic_fetch_or(bits, kind);
    if (!(before & kind) && (before & (INJ_INLINE | INJ_OOB)))
        owfp_verify_report("S29", "mixed-inline-oob", callout_id, f->id, NULL, NULL,
                           OWFP_VERIFY_BT_STACK,
                           "callout %" PRIu32 " injected into flow 0x%" PRIx64
                           " %s after injecting %s: a flow is edited inline or out of band, "
                           "never both",
                           callout_id, f->id,
                           inline_call ? "inline (from its classifyFn)" : "out of band",
                           inline_call ? "out of band" : "inline");
    if (!inline_call && !deferred && (before & (PASSED << dir)) &&
        !(before & ((FIN_BLOCKED | FIN_HELD) << dir)))
        owfp_verify_report("S27", "inject-outside-classify", callout_id, f->id, NULL, NULL,
                           OWFP_VERIFY_BT_STACK,
                           "out-of-band FwpsStreamInjectAsync0 (%s) into flow 0x%" PRIx64
                           " while the callout neither deferred that direction nor blocked all "
                           "of its data (it let bytes through) nor pended its FIN",
                           dir_name(dir), f->id);
    if (stream_flags & FWPS_STREAM_FLAG_SEND_DISCONNECT) {
        if (!(before & ((FIN_BLOCKED | FIN_HELD) << OWFP_STREAM_SEND)))
            owfp_verify_report("S29", "fin-invented", callout_id, f->id, NULL, NULL,
                               OWFP_VERIFY_BT_STACK,
                               "FWPS_STREAM_FLAG_SEND_DISCONNECT injected into flow 0x%" PRIx64
                               " whose outgoing FIN the callout never held: an invented FIN "
                               "(use DROP_CONNECTION to end a connection)",
                               f->id);
    }
}

void owfp_verify_continue_in_callout(uint32_t callout_id, uint64_t flow)
{
    const char *where = owfp_verify_where();
    owfp_verify_report("C4", "continue-in-classify", callout_id, flow, NULL, NULL,
                       OWFP_VERIFY_BT_STACK,
                       "FwpsStreamContinue0 called from inside %s: refused with "
                       "STATUS_INVALID_DEVICE_STATE (S19: continue from another context)",
                       where ? where : "a callout function");
}
