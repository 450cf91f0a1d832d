/*
 * Management sessions and transactions (spec M1, M2): every Fwpm* call runs
 * inside mgmt_enter/mgmt_leave, which validate the handle, take the engine
 * lock and the transaction lock, and open an implicit transaction when the
 * session has none.
 */
#ifndef OPENWFP_ENGINE_SESSION_H
#define OPENWFP_ENGINE_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "store.h"

struct owfp_session {
    uint64_t id; /* the handle value */
    uint32_t flags;
    uint32_t txn_timeout_ms; /* INFINITE for kernel callers unless set */
    bool in_txn;
    bool txn_read_only;
    struct owfp_session *next;
};

struct owfp_mgmt_call {
    struct owfp_engine *e;
    struct owfp_session *session;
    bool implicit; /* this call opened (and will commit) its own transaction */
};

/* Validates `handle`, locks, and joins or opens a transaction. `write`
 * calls in a read-only transaction fail with STATUS_FWP_INCOMPATIBLE_TXN. */
NTSTATUS owfp_mgmt_enter(HANDLE handle, bool write, struct owfp_mgmt_call *call);
/* Commits an implicit transaction and unlocks. Returns `status`, or the
 * commit's failure. */
NTSTATUS owfp_mgmt_leave(struct owfp_mgmt_call *call, NTSTATUS status);

/* The object is owned by a session other than `s` (spec M6). */
bool owfp_mgmt_wrong_session(const struct owfp_session *s, const struct owfp_object *o);
/* Checks that `s` may delete `o`: WRONG_SESSION / DYNAMIC_SESSION_IN_PROGRESS. */
NTSTATUS owfp_mgmt_may_delete(const struct owfp_session *s, const struct owfp_object *o);
/* Checks that an object added by `s` may reference `target` (spec M6). */
NTSTATUS owfp_mgmt_may_reference(const struct owfp_session *s, const struct owfp_object *target);

/* Closes every session (engine teardown). */
void owfp_sessions_close_all(struct owfp_engine *e);

/* Deletes a filter inside the current transaction (used by FwpmFilterDelete*
 * and session teardown). With e->mu held. */
void owfp_filter_delete_locked(struct owfp_engine *e, struct owfp_filter *f);
/* Undo/commit helpers for a journal entry's object. */
void owfp_filter_unref(struct owfp_filter *f);
void owfp_filter_ref(struct owfp_filter *f);
void owfp_filter_notify_delete(struct owfp_engine *e, struct owfp_filter *f);
void owfp_filter_notify_post_commit(struct owfp_engine *e, struct owfp_filter *f);

#endif
