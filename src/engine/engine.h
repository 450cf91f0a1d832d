/*
 * The engine singleton and the locking rules every module follows.
 *
 * - `mu` guards management state (the object store, sessions, transactions)
 *   and registration state. It is never taken inside an RCU read section, so
 *   writers may wait for readers while holding it.
 * - Classification reads only RCU-published data (layer views, the callout
 *   table) and per-flow state under the flow's own lock.
 * - Callouts are only ever called inside a read section (classify,
 *   flowDeleteFn) or with `mu` held (notifyFn), and PASSIVE-only functions
 *   called from there are refused instead of deadlocking.
 */
#ifndef OPENWFP_ENGINE_ENGINE_H
#define OPENWFP_ENGINE_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <fwpmk.h>
#include <fwpsk.h>
#include <openwfp/openwfp.h>

#include "common/rcu.h"
#include "verify/verify.h"

struct owfp_callout_table;
struct owfp_layer_view;
struct owfp_store;
struct owfp_flow_table;
struct owfp_session;
struct owfp_key_id {
    GUID key;
    uint32_t id;
};

/* Filterable layers get a view slot each; indexes from owfp_view_slot(). */
#define OWFP_VIEW_SLOTS 4

struct owfp_engine {
    pthread_mutex_t mu;
    pthread_cond_t txn_released;

    /* Transactions: one writer or many read-only ones at a time. */
    struct owfp_session *txn_writer;
    unsigned txn_readers;

    struct owfp_session *sessions;
    uint64_t next_session_id;

    struct owfp_store *store;
    _Atomic(struct owfp_callout_table *) callouts;
    struct owfp_key_id *key_ids; /* callout key -> id, grows, never shrinks */
    uint32_t key_id_count, key_id_capacity;
    _Atomic(struct owfp_layer_view *) views[OWFP_VIEW_SLOTS];
    /* Bumped whenever a stream-layer view is republished, so flows rebuild
     * their stream paths (src/stream/path.c). */
    _Atomic uint64_t stream_generation;
    struct owfp_flow_table *flows;

    _Atomic uint64_t classifies;
};

extern _Atomic(struct owfp_engine *) owfp_the_engine;

static inline struct owfp_engine *owfp_engine_get(void)
{
    return atomic_load_explicit(&owfp_the_engine, memory_order_acquire);
}

/* Thread-local depth of notifyFn calls in progress on this thread. */
extern _Thread_local unsigned owfp_notify_depth;

/* True when the caller is a callout running inside the engine: the spot
 * where Windows runs at DISPATCH_LEVEL or under engine locks, and where
 * PASSIVE-only functions must be refused (STATUS_INVALID_DEVICE_STATE). */
static inline bool owfp_in_callout(void)
{
    return owfp_rcu_in_read() || owfp_notify_depth > 0;
}

/* For a PASSIVE_LEVEL-only WFP function `api`: true (refuse it) inside a
 * callout, which the verifier reports (spec C4). */
static inline bool owfp_passive_refused(const char *api)
{
    if (!owfp_in_callout())
        return false;
    if (OWFP_VERIFY_ON())
        owfp_verify_passive_in_callout(api);
    return true;
}

int owfp_view_slot(uint16_t layer_id);

#endif
