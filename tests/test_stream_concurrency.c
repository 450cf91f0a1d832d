/*
 * Stream-layer concurrency (spec S12, S19, S26-S29, S22/S32): owner threads
 * drive many flows (each flow by exactly one owner, both directions), while
 * worker threads inject out-of-band what an OOB callout cloned and blocked,
 * and call FwpsStreamContinue0 for flows a DEFER callout stopped. Owners
 * collect the results with owfp_stream_poll() only when the flow's wake-up
 * function told them to.
 *
 * Checked for every interleaving: each direction's output is byte-exact and
 * in order, the FIN comes after the last byte, every injected NBL completes
 * exactly once on its flow's owner thread (STATUS_SUCCESS, or
 * STATUS_CANCELLED for flows closed early), no classify of a flow runs
 * concurrently with another classify of the same flow or off its owner
 * thread (S12), no clone leaks, and FwpsInjectionHandleDestroy0 waits for
 * the completions still due and then returns.
 *
 * Bounded: every wait has a deadline (HANG_MS); sizes keep each test well
 * under a few seconds under ThreadSanitizer. Callouts and threads never call
 * cmocka asserts (they would longjmp across threads): they count violations
 * and the main thread asserts after joining. All shared state is atomic or
 * handed over under a mutex, so the file runs under TSan (-Dtsan_tests=true).
 */
#include "harness.h"

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STREAM4_ID FWPS_LAYER_STREAM_V4
#define STREAM4 (&FWPM_LAYER_STREAM_V4)
#define F_SEND FWPS_STREAM_FLAG_SEND
#define F_RECV FWPS_STREAM_FLAG_RECEIVE
#define F_DISCONNECT (FWPS_STREAM_FLAG_SEND_DISCONNECT | FWPS_STREAM_FLAG_RECEIVE_DISCONNECT)
#define F_ABORT (FWPS_STREAM_FLAG_SEND_ABORT | FWPS_STREAM_FLAG_RECEIVE_ABORT)

/* Longest any phase of a test may take before it counts as a hang. */
#define HANG_MS 10000

/* ------------------------------------------------------------ utilities */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static unsigned next_rand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 16;
}

static atomic_int g_violations;
static atomic_flag g_violation_msg_taken;
static char g_violation_msg[256];

static void violation(const char *fmt, ...)
{
    atomic_fetch_add(&g_violations, 1);
    if (atomic_flag_test_and_set(&g_violation_msg_taken))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_violation_msg, sizeof(g_violation_msg), fmt, ap);
    va_end(ap);
}

static void assert_no_violations(void)
{
    int n = atomic_load(&g_violations);
    if (n)
        fail_msg("%d violation(s); first: %s", n, g_violation_msg);
}

/* ------------------------------------------------------------ model */

struct cfg {
    int owners;
    int flows_per_owner;
    int workers;
    size_t bytes;      /* per direction and flow */
    bool oob;          /* OOB callout: clone + BLOCK everything, a worker injects */
    bool defer;        /* DEFER callout on received data, a worker continues */
    bool close_early;  /* every other flow is closed part-way */
    bool destroy_wait; /* FwpsInjectionHandleDestroy0 while completions are due */
    bool churn;        /* a thread adds and deletes a mid-stream filter meanwhile */
    bool allow;        /* a third callout lets go with ALLOW_CONNECTION (S20) */
};

enum job_kind { JOB_INJECT, JOB_CONTINUE };

struct tflow;

struct job {
    struct job *next;     /* worker queue */
    struct job *all_next; /* the flow's list of injection jobs */
    struct tflow *tf;
    int kind;
    NET_BUFFER_LIST *clone;
    UINT32 flags;
    SIZE_T len;
    atomic_int inject_status; /* NTSTATUS, written by the worker */
    atomic_int ncompl;
    atomic_int status; /* nbl->Status at completion */
};

struct owner;
struct worker;

struct tflow {
    int idx;
    owfp_flow *flow;
    UINT64 id;
    struct owner *owner;
    struct worker *worker;
    pthread_t owner_thread; /* set by the owner before its first call */
    atomic_int in_classify; /* S12 */
    unsigned rng;
    uint8_t *src[2];
    size_t sent[2], got[2];
    bool fin_sent[2], fin_seen[2];
    size_t close_at; /* close once this many bytes were indicated (0: never) */
    bool closed, done;
    bool close_cancels; /* closed with an injection queued */
    atomic_bool closing;
    /* DEFER callout state: 0 idle, 1 deferred, 2 continued by the worker */
    atomic_int defer_state;
    bool continue_handed; /* owner thread only */
    bool recv_deferred;   /* owner thread only: the last result said DEFERRED */
    bool back_pressure;   /* stop indicating received data while deferred */
    unsigned defer_tick;  /* owner thread only (inside classify) */
    int defers;
    SIZE_T deferred_len; /* owner thread only (inside classify) */
    int allow_calls;   /* owner thread only (inside classify) */
    bool allowed;      /* ALLOW_CONNECTION returned */
    struct job *jobs; /* owner thread only until the threads are joined */
    int njobs;
};

struct owner {
    int idx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned wakes;
    struct tflow **flows;
    int nflows;
};

struct worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    bool stop;
    unsigned seed;
};

static struct {
    struct cfg cfg;
    HANDLE inj;
    UINT32 id_oob, id_defer, id_churn, id_allow;
    GUID key_churn, sub_mid;
    struct tflow *flows;
    int nflows;
    struct owner *owners;
    struct worker *workers;
    atomic_int clones_made, clones_freed;
    atomic_int injected_nbls, completions;
    atomic_int continues;
    atomic_int flow_deletes;
    atomic_int churn_calls, churn_rounds;
    atomic_int owners_finished;
    atomic_bool destroy_started, destroy_returned, stop_churn, give_up;
    NTSTATUS destroy_status;
} T;

static uint8_t pattern(int flow, int dir, size_t off)
{
    return (uint8_t)(off * 131u + (off >> 8) + (unsigned)flow * 7u + (unsigned)dir * 13u);
}

/* ------------------------------------------------------------ workers */

static void worker_push(struct worker *w, struct job *j)
{
    pthread_mutex_lock(&w->mu);
    j->next = NULL;
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void NTAPI job_complete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    (void)dispatchLevel;
    struct job *j = context;
    if (atomic_fetch_add(&j->ncompl, 1) != 0)
        violation("S26: flow %d: an NBL completed twice", j->tf->idx);
    if (nbl != j->clone)
        violation("S26: flow %d: completion for another NBL", j->tf->idx);
    if (!pthread_equal(pthread_self(), j->tf->owner_thread))
        violation("S26: flow %d: completion off the owner thread", j->tf->idx);
    atomic_store(&j->status, nbl->Status);
    FwpsFreeCloneNetBufferList0(nbl, 0);
    atomic_fetch_add(&T.clones_freed, 1);
    atomic_fetch_add(&T.completions, 1);
}

static void run_job(struct job *j)
{
    struct tflow *tf = j->tf;
    if (j->kind == JOB_INJECT) {
        /* Exactly what was cloned, in clone order, with the indication's
         * flags (a FIN clone carries *_DISCONNECT and no bytes). */
        NTSTATUS st = FwpsStreamInjectAsync0(T.inj, NULL, 0, tf->id, T.id_oob, STREAM4_ID,
                                             j->flags, j->clone, j->len, job_complete, j);
        atomic_store(&j->inject_status, st);
        if (st == STATUS_SUCCESS) {
            atomic_fetch_add(&T.injected_nbls, 1);
            return;
        }
        /* The caller keeps its NBL on failure. */
        if (!(st == STATUS_NOT_FOUND && atomic_load(&tf->closing)))
            violation("S26: flow %d: inject -> 0x%08x", tf->idx, (unsigned)st);
        FwpsFreeCloneNetBufferList0(j->clone, 0);
        atomic_fetch_add(&T.clones_freed, 1);
        return;
    }
    /* Continue: the callout sees state 2 at its next classify. */
    atomic_store(&tf->defer_state, 2);
    NTSTATUS st = FwpsStreamContinue0(tf->id, T.id_defer, STREAM4_ID, F_RECV);
    if (st == STATUS_SUCCESS)
        atomic_fetch_add(&T.continues, 1);
    else if (!(st == STATUS_NOT_FOUND && atomic_load(&tf->closing)))
        violation("S19: flow %d: FwpsStreamContinue0 -> 0x%08x", tf->idx, (unsigned)st);
    free(j);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        struct job *j = w->head;
        if (!j)
            break;
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        unsigned r = next_rand(&w->seed);
        pthread_mutex_unlock(&w->mu);
        if (r % 16 == 0)
            sleep_ms(1);
        else if (r % 4 == 0)
            sched_yield();
        run_job(j);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void stop_workers(void)
{
    for (int i = 0; i < T.cfg.workers; i++) {
        struct worker *w = &T.workers[i];
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    for (int i = 0; i < T.cfg.workers; i++)
        assert_int_equal(pthread_join(T.workers[i].thread, NULL), 0);
}

/* ------------------------------------------------------------ callouts */

static void enter(struct tflow *tf)
{
    if (atomic_fetch_add(&tf->in_classify, 1) != 0)
        violation("S12: flow %d classified concurrently", tf->idx);
    if (!pthread_equal(pthread_self(), tf->owner_thread))
        violation("S11: flow %d classified off its owner thread", tf->idx);
}

static void leave(struct tflow *tf)
{
    atomic_fetch_sub(&tf->in_classify, 1);
}

/* Out-of-band editor (stmedit style): clone, hand to the worker, BLOCK. */
static void NTAPI oob_classify(const FWPS_INCOMING_VALUES0 *in,
                               const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                               const FWPS_FILTER0 *filter, UINT64 flowContext,
                               FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)filter;
    struct tflow *tf = (struct tflow *)(uintptr_t)flowContext;
    out->actionType = FWP_ACTION_BLOCK;
    if (!tf) {
        violation("F5: OOB classify without its flow context");
        return;
    }
    enter(tf);
    FWPS_STREAM_DATA0 *sd = ((FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData)->streamData;
    if (sd->flags & F_ABORT) {
        violation("S10: flow %d: unexpected ABORT", tf->idx);
        leave(tf);
        return;
    }
    struct job *j = calloc(1, sizeof(*j));
    if (!j) {
        violation("out of memory");
        leave(tf);
        return;
    }
    j->tf = tf;
    j->kind = JOB_INJECT;
    atomic_store(&j->inject_status, STATUS_PENDING); /* until the worker has injected it */
    j->flags = sd->flags;
    j->len = sd->dataLength;
    if ((sd->flags & F_DISCONNECT) && sd->dataLength)
        violation("S8: flow %d: FIN with data", tf->idx);
    NTSTATUS st = FwpsCloneStreamData0(sd, NULL, NULL, 0, &j->clone);
    if (st != STATUS_SUCCESS) {
        violation("S30: flow %d: clone -> 0x%08x", tf->idx, (unsigned)st);
        free(j);
        leave(tf);
        return;
    }
    atomic_fetch_add(&T.clones_made, 1);
    j->all_next = tf->jobs;
    tf->jobs = j;
    tf->njobs++;
    worker_push(tf->worker, j);
    leave(tf);
}

/* Defers every third receive indication; a worker continues it. */
static void NTAPI defer_classify(const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                 const FWPS_FILTER0 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)filter;
    struct tflow *tf = (struct tflow *)(uintptr_t)flowContext;
    out->actionType = FWP_ACTION_PERMIT;
    if (!tf) {
        violation("F5: DEFER classify without its flow context");
        return;
    }
    enter(tf);
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    FWPS_STREAM_DATA0 *sd = io->streamData;
    if ((sd->flags & F_RECV) && !(sd->flags & F_DISCONNECT) && sd->dataLength) {
        int state = atomic_load(&tf->defer_state);
        if (state == 1) {
            violation("S19: flow %d classified while deferred", tf->idx);
        } else if (state == 2) {
            /* The held indication again, with whatever queued behind it. */
            if (sd->dataLength < tf->deferred_len)
                violation("S19: flow %d: %zu bytes after continue, %zu were deferred", tf->idx,
                          (size_t)sd->dataLength, (size_t)tf->deferred_len);
            atomic_store(&tf->defer_state, 0);
            tf->continue_handed = false;
        } else if (tf->defer_tick++ % 3 == 0) {
            tf->deferred_len = sd->dataLength;
            atomic_store(&tf->defer_state, 1);
            io->streamAction = FWPS_STREAM_ACTION_DEFER;
            out->actionType = FWP_ACTION_NONE;
            tf->defers++;
        }
    }
    leave(tf);
}

/* Win7-style (FWPS_CALLOUT1) inspection callout that may join existing
 * flows (S32). */
static void NTAPI churn_classify(const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                 const void *classifyContext, const FWPS_FILTER1 *filter,
                                 UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)layerData;
    (void)classifyContext;
    (void)filter;
    (void)flowContext;
    atomic_fetch_add(&T.churn_calls, 1);
    out->actionType = FWP_ACTION_CONTINUE;
}

static NTSTATUS NTAPI notify1_ok(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                                 FWPS_FILTER1 *filter)
{
    (void)type;
    (void)key;
    (void)filter;
    return STATUS_SUCCESS;
}

/* Inspects a few indications of each flow, then waives the flow (S20). */
static void NTAPI allow_classify(const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                 const FWPS_FILTER0 *filter, UINT64 flowContext,
                                 FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)filter;
    struct tflow *tf = (struct tflow *)(uintptr_t)flowContext;
    out->actionType = FWP_ACTION_PERMIT;
    if (!tf) {
        violation("F5: ALLOW classify without its flow context");
        return;
    }
    enter(tf);
    if (tf->allowed)
        violation("S20: flow %d classified after ALLOW_CONNECTION", tf->idx);
    if (++tf->allow_calls == 4 + tf->idx % 5) {
        ((FWPS_STREAM_CALLOUT_IO_PACKET0 *)layerData)->streamAction =
            FWPS_STREAM_ACTION_ALLOW_CONNECTION;
        tf->allowed = true;
    }
    leave(tf);
}

static void NTAPI count_delete(UINT16 layerId, UINT32 calloutId, UINT64 flowContext)
{
    (void)layerId;
    (void)calloutId;
    (void)flowContext;
    atomic_fetch_add(&T.flow_deletes, 1);
}

static UINT32 add_stream_callout(uint32_t n, FWPS_CALLOUT_CLASSIFY_FN0 fn, const GUID *sublayer,
                                 uint32_t action)
{
    GUID key = h_guid(0x5c000000u | n);
    UINT32 id = 0;
    assert_int_equal(h_register0(&key, 0, fn, h_notify_ok, count_delete, &id), STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&key, STREAM4), STATUS_SUCCESS);
    struct h_filter_spec spec = {.layer = STREAM4, .sublayer = sublayer, .action = action,
                                 .callout = &key};
    UINT64 fid = 0;
    assert_int_equal(h_filter(&spec, &fid), STATUS_SUCCESS);
    return id;
}

/* ------------------------------------------------------------ owners */

static void NTAPI owner_wake(void *arg, owfp_flow *flow)
{
    (void)flow;
    struct owner *o = arg;
    pthread_mutex_lock(&o->mu);
    o->wakes++;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

/* Waits up to `ms` for a wake-up; returns how many arrived. */
static unsigned take_wakes(struct owner *o, unsigned ms)
{
    pthread_mutex_lock(&o->mu);
    if (!o->wakes && ms) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)ms * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!o->wakes) {
            if (pthread_cond_timedwait(&o->cv, &o->mu, &ts) != 0)
                break;
        }
    }
    unsigned w = o->wakes;
    o->wakes = 0;
    pthread_mutex_unlock(&o->mu);
    return w;
}

/* Checks a call's spans against the flow's pattern, byte for byte. */
static void after_call(struct tflow *tf, owfp_status st, const struct owfp_stream_result *r)
{
    if (st != STATUS_SUCCESS) {
        violation("flow %d: stream call -> 0x%08x", tf->idx, (unsigned)st);
        return;
    }
    if (r->flow_state & OWFP_FLOW_DROPPED)
        violation("flow %d: dropped", tf->idx);
    for (int d = 0; d < 2; d++) {
        const struct owfp_stream_output *o = &r->dir[d];
        for (size_t i = 0; i < o->nspans; i++) {
            const struct owfp_span *sp = &o->spans[i];
            if (tf->fin_seen[d])
                violation("S8: flow %d dir %d: data after the FIN", tf->idx, d);
            uint32_t want = T.cfg.oob ? OWFP_SPAN_INJECTED : OWFP_SPAN_ORIGINAL;
            if (sp->origin != want)
                violation("S26: flow %d dir %d: span origin %u", tf->idx, d, sp->origin);
            if (tf->got[d] + sp->len > T.cfg.bytes) {
                violation("flow %d dir %d: more bytes than sent", tf->idx, d);
                return;
            }
            for (size_t k = 0; k < sp->len; k++) {
                if (sp->data[k] != pattern(tf->idx, d, tf->got[d] + k)) {
                    violation("S28: flow %d dir %d: wrong byte at offset %zu", tf->idx, d,
                              tf->got[d] + k);
                    return;
                }
            }
            tf->got[d] += sp->len;
        }
        if ((o->state & OWFP_DIR_FIN) && !tf->fin_seen[d]) {
            tf->fin_seen[d] = true;
            if (tf->got[d] != T.cfg.bytes)
                violation("S8: flow %d dir %d: FIN after %zu of %zu bytes", tf->idx, d,
                          tf->got[d], T.cfg.bytes);
        }
    }
    tf->recv_deferred = r->dir[OWFP_STREAM_RECEIVE].state & OWFP_DIR_DEFERRED;
    /* The DEFER callout stopped the receive side: a worker will continue it. */
    if (T.cfg.defer && !tf->continue_handed && atomic_load(&tf->defer_state) == 1 &&
        (r->dir[OWFP_STREAM_RECEIVE].state & OWFP_DIR_DEFERRED)) {
        struct job *j = calloc(1, sizeof(*j));
        if (!j) {
            violation("out of memory");
            return;
        }
        j->tf = tf;
        j->kind = JOB_CONTINUE;
        tf->continue_handed = true;
        worker_push(tf->worker, j);
    }
    if (tf->fin_seen[0] && tf->fin_seen[1])
        tf->done = true;
}

static void close_flow(struct tflow *tf)
{
    atomic_store(&tf->closing, true);
    owfp_flow_close(tf->flow);
    tf->closed = true;
    tf->done = true;
}

static void poll_flow(struct tflow *tf)
{
    struct owfp_stream_result r;
    owfp_status st = owfp_stream_poll(tf->flow, &r);
    after_call(tf, st, &r);
}

/* Indicates the flow's next chunk or FIN; false when nothing is left. */
static bool feed(struct tflow *tf)
{
    struct owfp_stream_result r;
    owfp_status st;
    int njobs_before = tf->njobs;
    bool left0 = tf->sent[0] < T.cfg.bytes, left1 = tf->sent[1] < T.cfg.bytes;
    /* S19: a deferred receive side stops reading (back-pressure) on half
     * the flows; on the others received data keeps queueing behind it. */
    if (tf->back_pressure && tf->recv_deferred)
        left1 = false;
    if (left0 || left1) {
        int d = left0 && left1 ? (int)(next_rand(&tf->rng) & 1) : (left0 ? 0 : 1);
        size_t n = next_rand(&tf->rng) % 1400 + 1;
        if (n > T.cfg.bytes - tf->sent[d])
            n = T.cfg.bytes - tf->sent[d];
        st = owfp_stream_indicate(tf->flow, d, tf->src[d] + tf->sent[d], n, 0, &r);
        tf->sent[d] += n;
    } else if (tf->sent[0] == T.cfg.bytes && tf->sent[1] == T.cfg.bytes &&
               (!tf->fin_sent[0] || !tf->fin_sent[1])) {
        int d = tf->fin_sent[0] ? 1 : 0;
        st = owfp_stream_fin(tf->flow, d, &r);
        tf->fin_sent[d] = true;
    } else {
        return false;
    }
    after_call(tf, st, &r);
    if (tf->close_at && tf->sent[0] + tf->sent[1] >= tf->close_at) {
        /* Close while an injection is queued for the flow: the job cloned in
         * this call is injected after this call drained the flow's inbox, so
         * once the worker has made it, it waits there (-> CANCELLED). */
        struct job *last = tf->njobs > njobs_before ? tf->jobs : NULL;
        uint64_t until = now_ms() + 1000;
        while (last && atomic_load(&last->inject_status) == STATUS_PENDING && now_ms() < until)
            sched_yield();
        if (last && atomic_load(&last->inject_status) == STATUS_SUCCESS)
            tf->close_cancels = true;
        close_flow(tf);
    }
    return true;
}

static bool has_due_completion(const struct tflow *tf)
{
    for (const struct job *j = tf->jobs; j; j = j->all_next)
        if (atomic_load(&j->inject_status) == STATUS_SUCCESS && atomic_load(&j->ncompl) == 0)
            return true;
    return false;
}

static void *owner_main(void *arg)
{
    struct owner *o = arg;
    for (int i = 0; i < o->nflows; i++) {
        o->flows[i]->owner_thread = pthread_self();
        if (owfp_flow_set_wakeup(o->flows[i]->flow, owner_wake, o) != STATUS_SUCCESS)
            violation("owfp_flow_set_wakeup failed");
    }
    uint64_t deadline = now_ms() + HANG_MS;
    for (;;) {
        bool progressed = false, all_done = true;
        for (int i = 0; i < o->nflows; i++) {
            struct tflow *tf = o->flows[i];
            if (tf->done)
                continue;
            progressed |= feed(tf);
            if (tf->done && !tf->closed && !T.cfg.destroy_wait) {
                poll_flow(tf); /* completes the last spans */
                close_flow(tf);
            }
            all_done &= tf->done;
        }
        if (all_done)
            break;
        if (now_ms() > deadline || atomic_load(&T.give_up)) {
            violation("owner %d: flows not finished in time", o->idx);
            break;
        }
        /* Out-of-band work is collected only when the wake-up says so. */
        if (take_wakes(o, progressed ? 0 : 20)) {
            for (int i = 0; i < o->nflows; i++) {
                struct tflow *tf = o->flows[i];
                if (tf->done)
                    continue;
                poll_flow(tf);
                if (tf->done && !tf->closed && !T.cfg.destroy_wait) {
                    poll_flow(tf);
                    close_flow(tf);
                }
            }
        }
    }
    atomic_fetch_add(&T.owners_finished, 1);
    if (T.cfg.destroy_wait) {
        /* Completions of the last spans are still due: Destroy must wait
         * for this owner's next calls. */
        uint64_t until = now_ms() + HANG_MS;
        while (!atomic_load(&T.destroy_started) && !atomic_load(&T.give_up) && now_ms() < until)
            sleep_ms(1);
        sleep_ms(20);
        bool due = false;
        for (int i = 0; i < o->nflows; i++)
            due |= !o->flows[i]->closed && has_due_completion(o->flows[i]);
        if (due && atomic_load(&T.destroy_returned))
            violation("S26: FwpsInjectionHandleDestroy0 returned with completions due");
        if (!due && T.cfg.oob && !atomic_load(&T.give_up))
            violation("owner %d: no completion due at the end (test does not test)", o->idx);
        for (int i = 0; i < o->nflows; i++)
            if (!o->flows[i]->closed)
                poll_flow(o->flows[i]);
    }
    for (int i = 0; i < o->nflows; i++)
        if (!o->flows[i]->closed)
            close_flow(o->flows[i]);
    return NULL;
}

static void *destroyer_main(void *arg)
{
    (void)arg;
    atomic_store(&T.destroy_started, true);
    T.destroy_status = FwpsInjectionHandleDestroy0(T.inj);
    if (atomic_load(&T.completions) != atomic_load(&T.injected_nbls))
        violation("S26: Destroy returned after %d of %d completions", atomic_load(&T.completions),
                  atomic_load(&T.injected_nbls));
    atomic_store(&T.destroy_returned, true);
    return NULL;
}

/* ------------------------------------------------------------ churn */

static void *churn_main(void *arg)
{
    (void)arg;
    unsigned seed = 99;
    uint64_t until = now_ms() + HANG_MS;
    while (!atomic_load(&T.stop_churn) && now_ms() < until) {
        struct h_filter_spec spec = {.layer = STREAM4, .sublayer = &T.sub_mid,
                                     .action = FWP_ACTION_CALLOUT_INSPECTION,
                                     .callout = &T.key_churn};
        UINT64 fid = 0;
        NTSTATUS st = h_filter(&spec, &fid);
        if (st != STATUS_SUCCESS) {
            violation("churn: add -> 0x%08x", (unsigned)st);
            break;
        }
        sleep_ms(1 + next_rand(&seed) % 3);
        st = FwpmFilterDeleteById0(h_session, fid);
        if (st != STATUS_SUCCESS) {
            violation("churn: delete -> 0x%08x", (unsigned)st);
            break;
        }
        atomic_fetch_add(&T.churn_rounds, 1);
        sleep_ms(next_rand(&seed) % 2);
    }
    return NULL;
}

/* ------------------------------------------------------------ scenario */

static void run_scenario(const struct cfg *cfg)
{
    memset(&T, 0, sizeof(T));
    atomic_store(&g_violations, 0);
    atomic_flag_clear(&g_violation_msg_taken);
    T.cfg = *cfg;
    assert_int_equal(FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, &T.inj),
                     STATUS_SUCCESS);

    GUID hi = h_sublayer(1, 0x40);
    GUID lo = h_sublayer(2, 0x20);
    if (cfg->oob)
        T.id_oob = add_stream_callout(1, oob_classify, &hi, FWP_ACTION_CALLOUT_TERMINATING);
    if (cfg->defer)
        T.id_defer = add_stream_callout(2, defer_classify, &lo, FWP_ACTION_CALLOUT_TERMINATING);
    GUID low = h_sublayer(4, 0x10);
    if (cfg->allow)
        T.id_allow = add_stream_callout(4, allow_classify, &low, FWP_ACTION_CALLOUT_TERMINATING);
    if (cfg->churn) {
        T.sub_mid = h_sublayer(3, 0x30);
        T.key_churn = h_guid(0x5c000003u);
        FWPS_CALLOUT1 c1;
        memset(&c1, 0, sizeof(c1));
        c1.calloutKey = T.key_churn;
        c1.flags = FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION;
        c1.classifyFn = churn_classify;
        c1.notifyFn = notify1_ok;
        assert_int_equal(FwpsCalloutRegister1(NULL, &c1, &T.id_churn), STATUS_SUCCESS);
        assert_int_equal(h_callout_object(&T.key_churn, STREAM4), STATUS_SUCCESS);
    }

    T.nflows = cfg->owners * cfg->flows_per_owner;
    T.flows = calloc((size_t)T.nflows, sizeof(*T.flows));
    T.owners = calloc((size_t)cfg->owners, sizeof(*T.owners));
    T.workers = calloc((size_t)cfg->workers, sizeof(*T.workers));
    assert_non_null(T.flows);
    assert_non_null(T.owners);
    assert_non_null(T.workers);
    int contexts = 0;
    for (int i = 0; i < T.nflows; i++) {
        struct tflow *tf = &T.flows[i];
        tf->idx = i;
        tf->rng = 1234u + (unsigned)i * 77u;
        for (int d = 0; d < 2; d++) {
            tf->src[d] = malloc(cfg->bytes);
            assert_non_null(tf->src[d]);
            for (size_t k = 0; k < cfg->bytes; k++)
                tf->src[d][k] = pattern(i, d, k);
        }
        tf->back_pressure = i % 2 == 0;
        if (cfg->close_early && i % 2)
            tf->close_at = cfg->bytes / 4 + next_rand(&tf->rng) % cfg->bytes;
        struct owfp_flow_params p = h_params4((uint16_t)(20000 + i), 443, OWFP_OUTBOUND);
        tf->flow = h_open(&p, NULL);
        tf->id = owfp_flow_id(tf->flow);
        tf->owner = &T.owners[i % cfg->owners];
        tf->worker = &T.workers[i % cfg->workers];
        /* Both stream callouts find the flow through their context (E3). */
        if (cfg->oob) {
            assert_int_equal(FwpsFlowAssociateContext0(tf->id, STREAM4_ID, T.id_oob,
                                                       (UINT64)(uintptr_t)tf),
                             STATUS_SUCCESS);
            contexts++;
        }
        if (cfg->defer) {
            assert_int_equal(FwpsFlowAssociateContext0(tf->id, STREAM4_ID, T.id_defer,
                                                       (UINT64)(uintptr_t)tf),
                             STATUS_SUCCESS);
            contexts++;
        }
        if (cfg->allow) {
            assert_int_equal(FwpsFlowAssociateContext0(tf->id, STREAM4_ID, T.id_allow,
                                                       (UINT64)(uintptr_t)tf),
                             STATUS_SUCCESS);
            contexts++;
        }
    }
    for (int i = 0; i < cfg->owners; i++) {
        struct owner *o = &T.owners[i];
        o->idx = i;
        pthread_mutex_init(&o->mu, NULL);
        pthread_cond_init(&o->cv, NULL);
        o->flows = calloc((size_t)cfg->flows_per_owner, sizeof(*o->flows));
        assert_non_null(o->flows);
    }
    for (int i = 0; i < T.nflows; i++) {
        struct owner *o = T.flows[i].owner;
        o->flows[o->nflows++] = &T.flows[i];
    }

    uint64_t t0 = now_ms();
    for (int i = 0; i < cfg->workers; i++) {
        struct worker *w = &T.workers[i];
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        w->seed = 4321u + (unsigned)i;
        assert_int_equal(pthread_create(&w->thread, NULL, worker_main, w), 0);
    }
    pthread_t churn;
    if (cfg->churn)
        assert_int_equal(pthread_create(&churn, NULL, churn_main, NULL), 0);
    for (int i = 0; i < cfg->owners; i++)
        assert_int_equal(pthread_create(&T.owners[i].thread, NULL, owner_main, &T.owners[i]), 0);

    pthread_t destroyer;
    if (cfg->destroy_wait) {
        /* Every owner has seen both FINs of all its flows: every injection
         * was made; only completions are due. */
        uint64_t until = now_ms() + HANG_MS + 1000;
        while (atomic_load(&T.owners_finished) < cfg->owners && now_ms() < until)
            sleep_ms(1);
        if (atomic_load(&T.owners_finished) < cfg->owners) {
            violation("owners did not finish");
            atomic_store(&T.give_up, true);
        }
        if (cfg->churn)
            atomic_store(&T.stop_churn, true);
        stop_workers();
        assert_int_equal(pthread_create(&destroyer, NULL, destroyer_main, NULL), 0);
    }
    for (int i = 0; i < cfg->owners; i++)
        assert_int_equal(pthread_join(T.owners[i].thread, NULL), 0);
    if (cfg->churn) {
        atomic_store(&T.stop_churn, true);
        assert_int_equal(pthread_join(churn, NULL), 0);
    }
    if (cfg->destroy_wait) {
        assert_int_equal(pthread_join(destroyer, NULL), 0);
    } else {
        stop_workers();
        destroyer_main(NULL); /* nothing is pending: returns at once */
    }
    uint64_t elapsed = now_ms() - t0;

    assert_no_violations();
    assert_int_equal(T.destroy_status, STATUS_SUCCESS);
    assert_true(atomic_load(&T.destroy_returned));
    assert_true(elapsed < HANG_MS);

    /* Every flow that ran to the end got all its bytes and both FINs. */
    int cancelled = 0, closed_early = 0, defers = 0, must_cancel = 0, allowed = 0;
    for (int i = 0; i < T.nflows; i++) {
        struct tflow *tf = &T.flows[i];
        bool complete = tf->fin_seen[0] && tf->fin_seen[1];
        if (tf->close_at && !complete) {
            closed_early++;
        } else {
            assert_true(complete);
            assert_int_equal(tf->got[0], cfg->bytes);
            assert_int_equal(tf->got[1], cfg->bytes);
        }
        defers += tf->defers;
        must_cancel += tf->close_cancels;
        allowed += tf->allowed;
        while (tf->jobs) {
            struct job *j = tf->jobs;
            tf->jobs = j->all_next;
            NTSTATUS ist = atomic_load(&j->inject_status);
            assert_int_not_equal(ist, STATUS_PENDING);
            if (ist == STATUS_SUCCESS) {
                assert_int_equal(atomic_load(&j->ncompl), 1);
                NTSTATUS st = atomic_load(&j->status);
                if (st == STATUS_CANCELLED) {
                    assert_true(tf->close_at != 0);
                    cancelled++;
                } else {
                    assert_int_equal(st, STATUS_SUCCESS);
                }
            } else {
                assert_int_equal(atomic_load(&j->ncompl), 0);
            }
            free(j);
        }
        free(tf->src[0]);
        free(tf->src[1]);
    }
    assert_int_equal(atomic_load(&T.clones_made), atomic_load(&T.clones_freed));
    assert_int_equal(atomic_load(&T.completions), atomic_load(&T.injected_nbls));
    assert_int_equal(atomic_load(&T.flow_deletes), contexts);
    if (cfg->oob)
        assert_true(atomic_load(&T.injected_nbls) > 0);
    if (cfg->defer) {
        assert_true(defers > 0);
        assert_true(atomic_load(&T.continues) > 0);
    }
    if (cfg->churn)
        assert_true(atomic_load(&T.churn_rounds) > 0);
    if (cfg->allow)
        assert_true(allowed > 0);
    /* Each flow closed with an injection queued cancelled at least it. */
    assert_true(cancelled >= must_cancel);
    if (cfg->close_early)
        assert_true(must_cancel > 0);
    struct owfp_engine_stats stats;
    owfp_engine_get_stats(h_engine, &stats);
    assert_int_equal(stats.flows_open, 0);
    assert_int_equal(stats.flow_contexts, 0);
    if (getenv("STREAM_CONC_VERBOSE"))
        printf("  %llu ms: %d injected, %d continues, %d defers, %d cancelled, %d closed early, "
               "%d churn rounds, %d churn classifies\n",
               (unsigned long long)elapsed, atomic_load(&T.injected_nbls),
               atomic_load(&T.continues), defers, cancelled, closed_early,
               atomic_load(&T.churn_rounds), atomic_load(&T.churn_calls));

    for (int i = 0; i < cfg->owners; i++) {
        pthread_mutex_destroy(&T.owners[i].mu);
        pthread_cond_destroy(&T.owners[i].cv);
        free(T.owners[i].flows);
    }
    for (int i = 0; i < cfg->workers; i++) {
        pthread_mutex_destroy(&T.workers[i].mu);
        pthread_cond_destroy(&T.workers[i].cv);
    }
    free(T.flows);
    free(T.owners);
    free(T.workers);
}

/* ------------------------------------------------------------ tests */

static void test_S27_oob_injection_from_workers_byte_exact_many_flows(void **state)
{
    (void)state;
    struct cfg c = {.owners = 3, .flows_per_owner = 4, .workers = 3, .bytes = 24 * 1024,
                    .oob = true, .destroy_wait = true};
    run_scenario(&c);
}

static void test_S19_continue_from_other_threads_while_indicating(void **state)
{
    (void)state;
    struct cfg c = {.owners = 3, .flows_per_owner = 4, .workers = 2, .bytes = 24 * 1024,
                    .defer = true};
    run_scenario(&c);
}

static void test_S12_no_concurrent_classify_with_oob_injection_and_continue(void **state)
{
    (void)state;
    struct cfg c = {.owners = 3, .flows_per_owner = 6, .workers = 3, .bytes = 32 * 1024,
                    .oob = true, .defer = true, .allow = true, .destroy_wait = true};
    run_scenario(&c);
}

static void test_S27_flows_closed_while_injections_in_flight(void **state)
{
    (void)state;
    struct cfg c = {.owners = 2, .flows_per_owner = 6, .workers = 2, .bytes = 16 * 1024,
                    .oob = true, .defer = true, .close_early = true};
    run_scenario(&c);
}

static void test_S27_S32_mid_stream_filter_churn_while_injecting(void **state)
{
    (void)state;
    struct cfg c = {.owners = 2, .flows_per_owner = 4, .workers = 2, .bytes = 64 * 1024,
                    .oob = true, .defer = true, .allow = true, .churn = true,
                    .destroy_wait = true};
    run_scenario(&c);
}

#define T_(fn) cmocka_unit_test_setup_teardown(fn, h_setup, h_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_(test_S27_oob_injection_from_workers_byte_exact_many_flows),
        T_(test_S19_continue_from_other_threads_while_indicating),
        T_(test_S12_no_concurrent_classify_with_oob_injection_and_continue),
        T_(test_S27_flows_closed_while_injections_in_flight),
        T_(test_S27_S32_mid_stream_filter_churn_while_injecting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
