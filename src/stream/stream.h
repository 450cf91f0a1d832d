/*
 * The stream layer of one flow (spec §10): the path of stream filters the
 * flow's data passes through, each stage's queue of pending data per
 * direction, and the spans handed back to the data plane.
 *
 * Everything here belongs to the flow's owner thread, except the inbox,
 * which other threads fill (out-of-band injection, FwpsStreamContinue0)
 * under the flow lock.
 */
#ifndef OPENWFP_STREAM_STREAM_H
#define OPENWFP_STREAM_STREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <fwpsk.h>
#include <openwfp/openwfp.h>

struct owfp_engine;
struct owfp_flow;
struct owfp_filter;

/* Who keeps an item's bytes alive. NULL in an item means the bytes are the
 * caller's, borrowed for the current call only. */
struct owfp_ref {
    uint32_t refs;
    void (*release)(struct owfp_ref *ref, NTSTATUS status);
};

enum owfp_item_kind {
    OWFP_ITEM_DATA = 0,
    OWFP_ITEM_FIN = 1,
};

#define OWFP_NO_SKIP UINT32_MAX

/* A contiguous piece of one direction's stream, or its FIN. */
struct owfp_item {
    struct owfp_item *next;
    const uint8_t *data;
    size_t len;
    struct owfp_ref *ref;
    /* Stages of this sublayer rank pass the item on unclassified: it was
     * permitted or injected there (spec A2, S25). */
    uint32_t skip_rank;
    uint32_t modifiers; /* OWFP_STREAM_PUSH / URGENT / NODELAY */
    uint8_t kind;
    uint8_t origin; /* enum owfp_span_origin */
};

struct owfp_queue {
    struct owfp_item *head, *tail;
    uint64_t bytes;
};

struct owfp_stage_dir {
    struct owfp_queue q;
    uint64_t missed;         /* spec S7 */
    uint64_t waiting_len;    /* NEED_MORE_DATA: bytes held when it was asked */
    uint64_t batch_left;     /* S16: bytes left of a partly enforced indication */
    uint32_t required;       /* NEED_MORE_DATA countBytesRequired */
    bool waiting;
    bool deferred;
};

struct owfp_stage {
    struct owfp_filter *filter; /* valid while the path's generation is current */
    uint64_t filter_id;
    uint32_t callout_id;        /* 0 for a static filter */
    uint32_t rank;              /* sublayer rank */
    uint32_t action;            /* the filter's action type */
    bool gone;                  /* ALLOW_CONNECTION or filter deleted: passes everything */
    bool allowed_offload;       /* its callout carries FWP_CALLOUT_FLAG_ALLOW_OFFLOAD */
    bool mid_stream;            /* joined an established flow (spec S32) */
    struct owfp_stage_dir d[2];
};

enum owfp_inbox_kind { OWFP_INBOX_INJECT, OWFP_INBOX_CONTINUE };

/* Work queued by other threads for the owner thread. */
struct owfp_inbox_op {
    struct owfp_inbox_op *next;
    uint8_t kind;
    uint8_t dir;
    uint32_t callout_id;
    struct owfp_item *items; /* INJECT: data and/or FIN, in order */
};

struct owfp_out {
    struct owfp_queue q;       /* reached the end of the path this call */
    struct owfp_span *spans;   /* returned to the data plane */
    uint32_t nspans, capspans;
    bool fin;                  /* FIN released */
    bool closed;               /* the data plane sent FIN or RST */
};

struct owfp_stream {
    struct owfp_flow *flow;
    uint64_t serial; /* unique for the process's life: names it to the classify scratch */
    struct owfp_stage *stages;
    uint32_t nstages;
    bool path_built;
    /* Set by the last call that ran the path when it left every stage
     * empty and ready for new data; cleared when a call starts on the
     * general path. An idle flow's indication may take the fast path. */
    bool idle;
    bool has_slot; /* slot[] was allocated with the stream */
    uint64_t generation;

    struct owfp_out out[2];
    /* Items behind the previous call's spans that must outlive them (held
     * copies, injected NBLs): released, and completed, at the next call. */
    struct owfp_queue delivered;
    struct owfp_span fast_span; /* the fast path's one span (fast.c): no allocation */
    uint32_t flow_state;         /* OWFP_FLOW_* */
    bool dropped;
    bool nomem; /* a drop this call was for lack of memory: report it */

    /* Under the flow lock; the head is also read without it to skip the
     * lock when nothing was queued. */
    _Atomic(struct owfp_inbox_op *) inbox;
    struct owfp_inbox_op *inbox_tail;
    _Atomic uint32_t busy_stage;               /* stage index + 1 being stepped, or 0 */
    owfp_wakeup_fn wake;
    void *wake_arg;
    /* Room for a one-stage path in the stream's own allocation (when
     * has_slot): the usual path, one callout, then costs no malloc chunk
     * of its own. stages points here or to an array of its own. */
    struct owfp_stage slot[];
};

/* One NBL/NB/MDL triple describing one item to a callout. */
struct owfp_desc {
    NET_BUFFER_LIST nbl;
    NET_BUFFER nb;
    MDL mdl;
};

/* The classify in progress on this thread, for inline injection (S28). */
struct owfp_stream_call {
    struct owfp_stream *stream;
    uint32_t stage;
    uint8_t dir;
    struct owfp_queue injected[2]; /* inline injections, per direction */
    bool in_classify;
};
extern _Thread_local struct owfp_stream_call *owfp_stream_current;

/* Data a stage is shown: not what its sublayer already permitted or
 * injected (spec A2, S25), nor empty injected NBLs. */
static inline bool owfp_item_shown(const struct owfp_stage *st, const struct owfp_item *it)
{
    return it->kind == OWFP_ITEM_DATA && it->len && it->skip_rank != st->rank;
}

/* Where a classify sends the bytes it decided on. */
enum owfp_route {
    OWFP_ROUTE_PERMIT,   /* on, past the rest of this sublayer */
    OWFP_ROUTE_CONTINUE, /* on, to the next stage */
    OWFP_ROUTE_BLOCK,    /* removed from the stream */
};

/* The indication a stage is shown next: the run of data at the head of its
 * queue (up to the rest of a partly enforced indication, S16), or a FIN. */
struct owfp_batch {
    uint32_t nitems;
    uint64_t len;
    bool fin;              /* the batch is the FIN itself */
    bool fin_follows;      /* NO_MORE_DATA */
    uint32_t out_flags;    /* FWPS_CLASSIFY_OUT_FLAG_* */
    uint32_t stream_flags; /* FWPS_STREAM_FLAG_* beyond the direction and modifiers */
};

/* The answer of one classify, as the engine will apply it. */
struct owfp_answer {
    uint32_t action;       /* FWPS_STREAM_ACTION_* */
    enum owfp_route route; /* with FWPS_STREAM_ACTION_NONE */
    uint64_t enforced;     /* with NONE: leading bytes the route covers */
    uint32_t required;
    bool injected; /* the callout injected inline: data now waits after its stage */
};

/* Spec A9 at the stream layer (S24): where a filter with action type
 * `filter_action` sends the bytes its callout answered `answer` for. */
static inline enum owfp_route owfp_stream_route(uint32_t filter_action, uint32_t answer)
{
    switch (filter_action) {
    case FWP_ACTION_PERMIT:
        return OWFP_ROUTE_PERMIT;
    case FWP_ACTION_BLOCK:
        return OWFP_ROUTE_BLOCK;
    case FWP_ACTION_CONTINUE:
    case FWP_ACTION_CALLOUT_INSPECTION:
        return OWFP_ROUTE_CONTINUE;
    case FWP_ACTION_CALLOUT_TERMINATING:
        return answer == FWP_ACTION_PERMIT ? OWFP_ROUTE_PERMIT : OWFP_ROUTE_BLOCK;
    default:
        return answer == FWP_ACTION_PERMIT  ? OWFP_ROUTE_PERMIT
               : answer == FWP_ACTION_BLOCK ? OWFP_ROUTE_BLOCK
                                            : OWFP_ROUTE_CONTINUE;
    }
}

/* How the engine reads a stream callout's answer to an indication of `len`
 * bytes (spec S15, S18, S21, A9); sets every field of `a` but `injected`.
 * The callout verifier reads it the same way. */
static inline void owfp_stream_read_answer(uint32_t filter_action,
                                           const FWPS_STREAM_CALLOUT_IO_PACKET0 *io,
                                           const FWPS_CLASSIFY_OUT0 *out, uint64_t len,
                                           struct owfp_answer *a)
{
    a->action = io->streamAction;
    a->required = io->countBytesRequired;
    if (a->action >= FWPS_STREAM_ACTION_TYPE_MAX)
        a->action = FWPS_STREAM_ACTION_DROP_CONNECTION; /* spec S21 */
    if (a->action == FWPS_STREAM_ACTION_DROP_CONNECTION &&
        filter_action == FWP_ACTION_CALLOUT_INSPECTION)
        a->action = FWPS_STREAM_ACTION_NONE; /* spec S18: ignored for inspection */
    if (a->action == FWPS_STREAM_ACTION_NONE) {
        a->route = owfp_stream_route(filter_action, out->actionType);
        /* Spec S15: 0 covers everything; more than there is is clamped. */
        a->enforced = io->countBytesEnforced && io->countBytesEnforced < len
                          ? io->countBytesEnforced
                          : len;
    }
}

/* Spec S17: what NEED_MORE_DATA may accumulate at one stage. */
#define OWFP_STREAM_LIMIT (8u * 1024 * 1024)

/* items.c */
struct owfp_item *owfp_item_new(void);
void owfp_item_free(struct owfp_item *it, NTSTATUS status);
/* The fast path's piece (fast.c): an item from the thread's cache whose
 * fields the caller sets, all of them; given back when no queue took it. */
struct owfp_item *owfp_item_take(void);
void owfp_item_give(struct owfp_item *it);
/* Frees the calling thread's spare items (at engine teardown). */
void owfp_item_cache_drop(void);
void owfp_queue_push(struct owfp_queue *q, struct owfp_item *it);
struct owfp_item *owfp_queue_pop(struct owfp_queue *q);
void owfp_queue_append(struct owfp_queue *dst, struct owfp_queue *src);
void owfp_queue_clear(struct owfp_queue *q, NTSTATUS status);
/* Splits `it` after `n` bytes; the tail becomes a new item after it. */
bool owfp_item_split(struct owfp_item *it, size_t n);
/* Copies borrowed bytes of every queued item into flow-owned memory. */
bool owfp_queue_own(struct owfp_queue *q);

/* path.c */
NTSTATUS owfp_stream_path_sync(struct owfp_stream *s);
void owfp_stream_fixed_values(const struct owfp_flow *f, FWPS_INCOMING_VALUE0 *values,
                              FWP_BYTE_ARRAY16 *local6, FWP_BYTE_ARRAY16 *remote6);

/* classify.c: frees the calling thread's classify scratch (at engine teardown). */
void owfp_stream_desc_cache_drop(void);
/* Shows stage k the batch whose first item is `head` (NULL for
 * an ABORT indication); false when out of memory. */
bool owfp_stream_classify(struct owfp_stream *s, uint32_t k, int d, const struct owfp_batch *b,
                          const struct owfp_item *head, struct owfp_answer *a);

/* pipeline.c */
void owfp_stream_run(struct owfp_stream *s);
/* Applies stage k's answer to the batch at the head of its queue (a NULL
 * answer: the classify ran out of memory); false when the stage cannot
 * move. */
bool owfp_stream_apply(struct owfp_stream *s, uint32_t k, int d, const struct owfp_batch *b,
                       const struct owfp_answer *a);
/* Finishes the pass over the path that stopped after stage k of direction
 * d, then passes as owfp_stream_run does; `moved` as that pass had found. */
void owfp_stream_run_from(struct owfp_stream *s, int d, uint32_t k, bool moved);
void owfp_stream_drop(struct owfp_stream *s);
void owfp_stream_abort_path(struct owfp_stream *s, int d);

/* inject.c */
void owfp_stream_drain_inbox(struct owfp_stream *s);
void owfp_stream_discard_inbox(struct owfp_stream *s);

/* stream.c */
struct owfp_stream *owfp_stream_of(struct owfp_flow *f);
void owfp_stream_destroy(struct owfp_stream *s);
/* Whether the flow may leave the inspection path (spec O1, O4). */
bool owfp_stream_offloadable(const struct owfp_stream *s);
/* The result of a call whose path has run; ends the call's read section. */
NTSTATUS owfp_stream_report(struct owfp_stream *s, struct owfp_stream_result *r);
/* owfp_stream_indicate (fast.c) when the fast path does not apply. */
NTSTATUS owfp_stream_indicate_general(owfp_flow *flow, int dir, const void *data, size_t len,
                                      uint32_t flags, struct owfp_stream_result *result);

static inline bool owfp_stream_indication_valid(int dir, const void *data, size_t len,
                                                uint32_t flags,
                                                const struct owfp_stream_result *result)
{
    return (dir == OWFP_STREAM_SEND || dir == OWFP_STREAM_RECEIVE) && data && len && result &&
           !(flags & ~(uint32_t)(OWFP_STREAM_PUSH | OWFP_STREAM_URGENT | OWFP_STREAM_NODELAY));
}

#endif
