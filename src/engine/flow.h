/*
 * Flows and their contexts (spec F1-F10).
 *
 * A flow is one connection endpoint. Its id is (generation << 32 | slot), so
 * a stale id never finds a reused slot. Any thread may look a flow up by id
 * (FwpsFlowAssociateContext0 and friends) inside a read section; the flow's
 * memory is retired through RCU when it closes.
 */
#ifndef OPENWFP_ENGINE_FLOW_H
#define OPENWFP_ENGINE_FLOW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/rcu.h"
#include "engine.h"

struct owfp_stream;

struct owfp_flow_ctx {
    uint16_t layer;
    bool pending_delete; /* removed during a classify; flowDeleteFn when it ends */
    uint32_t callout_id;
    uint64_t context;
};

struct owfp_flow {
    uint64_t id;
    struct owfp_engine *engine;
    _Atomic int lock;
    uint8_t ip_version;
    bool closing;
    _Atomic bool aborted;
    uint16_t nctx, capctx;
    /* Classifies in progress, and whether an association waits for them to
     * end (FwpsFlowRemoveContext0 answered PENDING). Atomics so that a
     * classify takes the lock only when there is something to do. */
    _Atomic uint32_t classifying;
    _Atomic bool pending_deletes;
    _Atomic bool any_ctx; /* nctx > 0, readable without the lock */
    struct owfp_flow_ctx *ctx; /* points at one_ctx until a second context */
    struct owfp_flow_ctx one_ctx;
    /* What the stream layer's incoming values are built from. */
    uint8_t direction; /* enum owfp_direction */
    uint16_t local_port, remote_port;
    uint32_t condition_flags;
    uint32_t compartment_id;
    uint8_t local_addr[16], remote_addr[16];
    struct owfp_stream *stream; /* created by the first stream call */
    _Atomic(void *) verify;     /* the verifier's notes (src/verify), freed with the flow */
    struct owfp_rcu_head rcu;
};

struct owfp_flow_table *owfp_flow_table_create(void);
/* Closes whatever flows are still open, then frees the table. */
void owfp_flow_table_destroy(struct owfp_engine *e);

/* Allocates and publishes a flow. NULL when out of memory or slots. */
struct owfp_flow *owfp_flow_new(struct owfp_engine *e, uint8_t ip_version);
/* Delivers every remaining flowDeleteFn and retires the flow. */
void owfp_flow_end(struct owfp_flow *f);

/* Inside a read section: the open flow with that id, or NULL. */
struct owfp_flow *owfp_flow_lookup(struct owfp_engine *e, uint64_t id);

/* The flow's spin lock: its contexts, its stream's inbox and stage array. */
void owfp_flow_lock(struct owfp_flow *f);
void owfp_flow_unlock(struct owfp_flow *f);

/* Brackets a classify of `f` so FwpsFlowRemoveContext0 answers PENDING
 * meanwhile and the deferred flowDeleteFns run at the end (spec F6).
 * Inline, as every classify of a flow pays for them. */
static inline void owfp_flow_classify_begin(struct owfp_flow *f)
{
    atomic_fetch_add(&f->classifying, 1);
}

/* Delivers the flowDeleteFns that waited for classifies to end. */
void owfp_flow_deliver_pending(struct owfp_flow *f);

/* The remover publishes pending_deletes before it reads classifying, and
 * this side drops classifying before it reads pending_deletes, so one of
 * the two always sees the other. */
static inline void owfp_flow_classify_end(struct owfp_flow *f)
{
    atomic_fetch_sub(&f->classifying, 1);
    if (atomic_load(&f->pending_deletes))
        owfp_flow_deliver_pending(f);
}

/* The context of (f, layer, callout), if one is associated (spec F5). */
bool owfp_flow_context(struct owfp_flow *f, uint16_t layer, uint32_t callout_id, uint64_t *ctx);

uint64_t owfp_flow_open_count(const struct owfp_engine *e);
uint64_t owfp_flow_context_count(const struct owfp_engine *e);

#endif
