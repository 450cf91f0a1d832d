#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "common/alloc.h"
#include "view.h"

static struct owfp_session *find_session(struct owfp_engine *e, HANDLE handle)
{
    uint64_t id = (uint64_t)(uintptr_t)handle;
    for (struct owfp_session *s = e->sessions; s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

NTSTATUS FwpmEngineOpen0(const WCHAR *serverName, UINT32 authnService,
                         SEC_WINNT_AUTH_IDENTITY_W *authIdentity, const FWPM_SESSION0 *session,
                         HANDLE *engineHandle)
{
    (void)authIdentity;
    if (!engineHandle)
        return STATUS_FWP_NULL_POINTER;
    if (serverName)
        return STATUS_INVALID_PARAMETER; /* only the local engine exists */
    if (authnService != RPC_C_AUTHN_WINNT && authnService != RPC_C_AUTHN_DEFAULT)
        return STATUS_INVALID_PARAMETER;
    if (session && (session->flags & ~(UINT32)FWPM_SESSION_FLAG_DYNAMIC))
        return STATUS_FWP_INVALID_FLAGS;
    if (owfp_passive_refused("FwpmEngineOpen0"))
        return STATUS_INVALID_DEVICE_STATE;
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;
    struct owfp_session *s = owfp_calloc(1, sizeof(*s));
    if (!s)
        return STATUS_INSUFFICIENT_RESOURCES;
    s->flags = session ? session->flags : 0;
    /* Kernel-mode callers wait for the transaction lock without limit
     * unless they ask for one. */
    s->txn_timeout_ms = session && session->txnWaitTimeoutInMSec ? session->txnWaitTimeoutInMSec
                                                                  : INFINITE;
    pthread_mutex_lock(&e->mu);
    s->id = ++e->next_session_id;
    s->next = e->sessions;
    e->sessions = s;
    pthread_mutex_unlock(&e->mu);
    *engineHandle = (HANDLE)(uintptr_t)s->id;
    return STATUS_SUCCESS;
}

/* Waits for the transaction lock; with e->mu held. */
static NTSTATUS acquire_txn(struct owfp_engine *e, struct owfp_session *s, bool write)
{
    struct timespec deadline;
    if (s->txn_timeout_ms != INFINITE) {
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += s->txn_timeout_ms / 1000;
        deadline.tv_nsec += (long)(s->txn_timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    for (;;) {
        bool free_now = write ? !e->txn_writer && !e->txn_readers : !e->txn_writer;
        if (free_now)
            break;
        if (s->txn_timeout_ms == INFINITE) {
            pthread_cond_wait(&e->txn_released, &e->mu);
        } else if (pthread_cond_timedwait(&e->txn_released, &e->mu, &deadline) == ETIMEDOUT) {
            return STATUS_FWP_TIMEOUT;
        }
    }
    if (write)
        e->txn_writer = s;
    else
        e->txn_readers++;
    return STATUS_SUCCESS;
}

static void release_txn(struct owfp_engine *e, struct owfp_session *s)
{
    if (e->txn_writer == s)
        e->txn_writer = NULL;
    else if (e->txn_readers)
        e->txn_readers--;
    s->in_txn = false;
    pthread_cond_broadcast(&e->txn_released);
}

/* Rolls the journal back, newest first. */
static void abort_journal(struct owfp_engine *e)
{
    struct owfp_store *st = e->store;
    while (st->journal_len) {
        struct owfp_journal_entry *j = &st->journal[--st->journal_len];
        if (j->op == OWFP_J_ADD) {
            owfp_store_unlink(st, j->kind, j->object);
            if (j->kind == OWFP_K_FILTER) {
                struct owfp_filter *f = j->object;
                owfp_filter_unref(f);
                /* The callout accepted the ADD and may hold state for it. */
                owfp_filter_notify_delete(e, f);
            } else if (j->kind == OWFP_K_SUBLAYER) {
                struct owfp_sublayer *sl = j->object;
                if (sl->provider)
                    sl->provider->obj.refs--;
            } else if (j->kind == OWFP_K_CALLOUT) {
                struct owfp_mgmt_callout *c = j->object;
                if (c->provider)
                    c->provider->obj.refs--;
            }
            owfp_object_free(j->kind, j->object);
        } else {
            /* Re-linking cannot fail: the tables kept their capacity. */
            owfp_store_link(st, j->kind, j->object);
            if (j->kind == OWFP_K_FILTER) {
                owfp_filter_ref(j->object);
            } else if (j->kind == OWFP_K_SUBLAYER) {
                struct owfp_sublayer *sl = j->object;
                if (sl->provider)
                    sl->provider->obj.refs++;
            } else if (j->kind == OWFP_K_CALLOUT) {
                struct owfp_mgmt_callout *c = j->object;
                if (c->provider)
                    c->provider->obj.refs++;
            }
        }
    }
    for (int i = 0; i < OWFP_VIEW_SLOTS; i++)
        st->dirty[i] = false;
}

static NTSTATUS commit_journal(struct owfp_engine *e)
{
    struct owfp_store *st = e->store;
    NTSTATUS status = owfp_views_publish(e);
    if (!NT_SUCCESS(status)) {
        abort_journal(e);
        return status;
    }
    /* Views no longer show deleted filters and readers of the old ones have
     * left: callouts may now free what they keep for those filters. */
    for (size_t i = 0; i < st->journal_len; i++) {
        struct owfp_journal_entry *j = &st->journal[i];
        if (j->op == OWFP_J_ADD && j->kind == OWFP_K_FILTER &&
            ((struct owfp_object *)j->object)->live)
            owfp_filter_notify_post_commit(e, j->object);
    }
    for (size_t i = 0; i < st->journal_len; i++) {
        struct owfp_journal_entry *j = &st->journal[i];
        if (j->op != OWFP_J_DELETE)
            continue;
        if (j->kind == OWFP_K_FILTER)
            owfp_filter_notify_delete(e, j->object);
        owfp_object_free(j->kind, j->object);
    }
    st->journal_len = 0;
    return STATUS_SUCCESS;
}

NTSTATUS owfp_mgmt_enter(HANDLE handle, bool write, struct owfp_mgmt_call *call)
{
    if (owfp_passive_refused("a management function (Fwpm*)"))
        return STATUS_INVALID_DEVICE_STATE;
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;
    pthread_mutex_lock(&e->mu);
    struct owfp_session *s = find_session(e, handle);
    if (!s) {
        pthread_mutex_unlock(&e->mu);
        return STATUS_INVALID_HANDLE;
    }
    *call = (struct owfp_mgmt_call){e, s, false};
    if (s->in_txn) {
        if (write && s->txn_read_only) {
            pthread_mutex_unlock(&e->mu);
            return STATUS_FWP_INCOMPATIBLE_TXN;
        }
        return STATUS_SUCCESS;
    }
    NTSTATUS st = acquire_txn(e, s, write);
    if (!NT_SUCCESS(st)) {
        pthread_mutex_unlock(&e->mu);
        return st;
    }
    s->in_txn = true;
    s->txn_read_only = !write;
    call->implicit = true;
    return STATUS_SUCCESS;
}

NTSTATUS owfp_mgmt_leave(struct owfp_mgmt_call *call, NTSTATUS status)
{
    struct owfp_engine *e = call->e;
    if (call->implicit) {
        /* A failed call recorded nothing, so committing is right either way. */
        NTSTATUS cst = commit_journal(e);
        if (NT_SUCCESS(status) && !NT_SUCCESS(cst))
            status = cst;
        release_txn(e, call->session);
    }
    pthread_mutex_unlock(&e->mu);
    return status;
}

NTSTATUS FwpmTransactionBegin0(HANDLE engineHandle, UINT32 flags)
{
    if (flags & ~(UINT32)FWPM_TXN_READ_ONLY)
        return STATUS_FWP_INVALID_FLAGS;
    if (owfp_passive_refused("FwpmTransactionBegin0"))
        return STATUS_INVALID_DEVICE_STATE;
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;
    pthread_mutex_lock(&e->mu);
    NTSTATUS st = STATUS_SUCCESS;
    struct owfp_session *s = find_session(e, engineHandle);
    if (!s) {
        st = STATUS_INVALID_HANDLE;
    } else if (s->in_txn) {
        st = STATUS_FWP_TXN_IN_PROGRESS;
    } else {
        bool write = !(flags & FWPM_TXN_READ_ONLY);
        st = acquire_txn(e, s, write);
        if (NT_SUCCESS(st)) {
            s->in_txn = true;
            s->txn_read_only = !write;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return st;
}

static NTSTATUS end_txn(HANDLE engineHandle, bool commit)
{
    if (owfp_passive_refused(commit ? "FwpmTransactionCommit0" : "FwpmTransactionAbort0"))
        return STATUS_INVALID_DEVICE_STATE;
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;
    pthread_mutex_lock(&e->mu);
    NTSTATUS st = STATUS_SUCCESS;
    struct owfp_session *s = find_session(e, engineHandle);
    if (!s) {
        st = STATUS_INVALID_HANDLE;
    } else if (!s->in_txn) {
        st = STATUS_FWP_NO_TXN_IN_PROGRESS;
    } else {
        if (!s->txn_read_only) {
            if (commit)
                st = commit_journal(e);
            else
                abort_journal(e);
        }
        release_txn(e, s);
    }
    pthread_mutex_unlock(&e->mu);
    return st;
}

NTSTATUS FwpmTransactionCommit0(HANDLE engineHandle)
{
    return end_txn(engineHandle, true);
}

NTSTATUS FwpmTransactionAbort0(HANDLE engineHandle)
{
    return end_txn(engineHandle, false);
}

/* Deletes every object the dynamic session `s` owns, dependents first.
 * STATUS_INSUFFICIENT_RESOURCES when the journal cannot grow; the caller
 * then aborts what was recorded. */
static NTSTATUS delete_dynamic_objects(struct owfp_engine *e, struct owfp_session *s)
{
    struct owfp_store *st = e->store;
    for (int slot = 0; slot < OWFP_VIEW_SLOTS; slot++) {
        struct owfp_filter *f = st->layer_filters[slot];
        while (f) {
            struct owfp_filter *next = f->layer_next;
            if (f->obj.dynamic_owner == s) {
                if (!owfp_journal_reserve(st))
                    return STATUS_INSUFFICIENT_RESOURCES;
                owfp_filter_delete_locked(e, f);
            }
            f = next;
        }
    }
    static const enum owfp_object_kind kinds[] = {OWFP_K_CALLOUT, OWFP_K_SUBLAYER,
                                                  OWFP_K_PROVIDER};
    struct owfp_hmap *tables[] = {&st->callouts, &st->sublayers, &st->providers};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < tables[k]->capacity;) {
            struct owfp_object *o = owfp_hmap_at(tables[k], i);
            if (!o || o->dynamic_owner != s) {
                i++;
                continue;
            }
            if (!owfp_journal_reserve(st))
                return STATUS_INSUFFICIENT_RESOURCES;
            /* No i++: removing may move a later entry into slot i. */
            owfp_store_unlink(st, kinds[k], o);
            if (kinds[k] == OWFP_K_SUBLAYER && ((struct owfp_sublayer *)o)->provider)
                ((struct owfp_sublayer *)o)->provider->obj.refs--;
            if (kinds[k] == OWFP_K_CALLOUT && ((struct owfp_mgmt_callout *)o)->provider)
                ((struct owfp_mgmt_callout *)o)->provider->obj.refs--;
            owfp_journal_record(st, OWFP_J_DELETE, kinds[k], o);
        }
    }
    return STATUS_SUCCESS;
}

/* Fails (only for lack of memory, session left open with its objects)
 * when the dynamic objects cannot be deleted, unless `force`. */
static NTSTATUS close_session_locked(struct owfp_engine *e, struct owfp_session *s, bool force)
{
    /* Closing a session aborts its transaction (spec M2). */
    if (s->in_txn) {
        if (!s->txn_read_only)
            abort_journal(e);
        release_txn(e, s);
    }
    if (s->flags & FWPM_SESSION_FLAG_DYNAMIC) {
        if (NT_SUCCESS(acquire_txn(e, s, true))) {
            NTSTATUS st = delete_dynamic_objects(e, s);
            if (NT_SUCCESS(st))
                st = commit_journal(e); /* rolls back itself on failure */
            else
                abort_journal(e);
            release_txn(e, s);
            if (!NT_SUCCESS(st) && !force)
                return st;
        }
    }
    for (struct owfp_session **p = &e->sessions; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    owfp_free(s);
    return STATUS_SUCCESS;
}

NTSTATUS FwpmEngineClose0(HANDLE engineHandle)
{
    if (owfp_passive_refused("FwpmEngineClose0"))
        return STATUS_INVALID_DEVICE_STATE;
    struct owfp_engine *e = owfp_engine_get();
    if (!e)
        return STATUS_FWP_TCPIP_NOT_READY;
    pthread_mutex_lock(&e->mu);
    NTSTATUS st = STATUS_INVALID_HANDLE;
    struct owfp_session *s = find_session(e, engineHandle);
    if (s) {
        /* Another session's transaction must end before the dynamic
         * objects can go; waiting is what Windows does too. */
        uint32_t timeout = s->txn_timeout_ms;
        s->txn_timeout_ms = INFINITE;
        st = close_session_locked(e, s, false);
        if (!NT_SUCCESS(st))
            s->txn_timeout_ms = timeout;
    }
    pthread_mutex_unlock(&e->mu);
    return st;
}

void owfp_sessions_close_all(struct owfp_engine *e)
{
    pthread_mutex_lock(&e->mu);
    /* Every open transaction ends first: closing a dynamic session waits for
     * the transaction lock, and no thread is left to end another session's
     * transaction (found by fuzz/fuzz_mgmt.c). */
    for (struct owfp_session *s = e->sessions; s; s = s->next) {
        if (s->in_txn) {
            if (!s->txn_read_only)
                abort_journal(e);
            release_txn(e, s);
        }
    }
    while (e->sessions) {
        e->sessions->txn_timeout_ms = INFINITE;
        close_session_locked(e, e->sessions, true);
    }
    pthread_mutex_unlock(&e->mu);
}

bool owfp_mgmt_wrong_session(const struct owfp_session *s, const struct owfp_object *o)
{
    return o->dynamic_owner && o->dynamic_owner != s;
}

NTSTATUS owfp_mgmt_may_delete(const struct owfp_session *s, const struct owfp_object *o)
{
    if (owfp_mgmt_wrong_session(s, o))
        return STATUS_FWP_WRONG_SESSION;
    if ((s->flags & FWPM_SESSION_FLAG_DYNAMIC) && !o->dynamic_owner)
        return STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS;
    return STATUS_SUCCESS;
}

NTSTATUS owfp_mgmt_may_reference(const struct owfp_session *s, const struct owfp_object *target)
{
    /* A dynamic object is only visible to its own session; a static object
     * (added by a non-dynamic session) cannot depend on a dynamic one. */
    if (owfp_mgmt_wrong_session(s, target))
        return STATUS_FWP_WRONG_SESSION;
    return STATUS_SUCCESS;
}
