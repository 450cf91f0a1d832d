/*
 * DPCs: queued from any IRQL, run one at a time, in queue order
 * (HighImportance ones go to the front), on a single host thread at
 * DISPATCH_LEVEL, as they would on one processor. A DPC is off the queue
 * before its routine is called, so the routine may queue it again.
 *
 * Queued DPCs are linked through DpcListEntry; DpcData marks one as queued
 * and ProcessorHistory holds its queueing sequence number, which
 * KeFlushQueuedDpcs waits on. The host can remove what a driver left
 * queued before unmapping it (owfp_dpcs_remove_range).
 */
#include <errno.h>
#include <pthread.h>

#include "kernel/kernel.h"

#define DPC_TYPE 0x13
#define THREADED_DPC_TYPE 0x1a

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work; /* something was queued */
    pthread_cond_t idle; /* a routine returned or a DPC was removed */
    PKDPC head, tail;
    bool started;
    PKDPC running; /* the DPC whose routine runs, NULL when none */
    PKDEFERRED_ROUTINE running_routine;
    ULONG64 running_seq;
    ULONG64 next_seq;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .work = PTHREAD_COND_INITIALIZER,
       .idle = PTHREAD_COND_INITIALIZER};

static PKDPC next_of(PKDPC d)
{
    return d->DpcListEntry.Next ? CONTAINING_RECORD(d->DpcListEntry.Next, KDPC, DpcListEntry)
                                : NULL;
}

static void set_next(PKDPC d, PKDPC next)
{
    d->DpcListEntry.Next = next ? &next->DpcListEntry : NULL;
}

/* Under q.mu; `prev` is the DPC before `d`, or NULL for the head. */
static void unlink_dpc(PKDPC d, PKDPC prev)
{
    PKDPC next = next_of(d);
    if (prev)
        set_next(prev, next);
    else
        q.head = next;
    if (q.tail == d)
        q.tail = prev;
    set_next(d, NULL);
    d->DpcData = NULL;
}

static void *dpc_thread(void *arg)
{
    (void)arg;
    owfp_irql = DISPATCH_LEVEL;
    pthread_mutex_lock(&q.mu);
    for (;;) {
        while (!q.head)
            pthread_cond_wait(&q.work, &q.mu);
        PKDPC d = q.head;
        unlink_dpc(d, NULL);
        /* Copied out: the routine may queue the DPC again or free it. */
        PKDEFERRED_ROUTINE routine = d->DeferredRoutine;
        PVOID ctx = d->DeferredContext, a1 = d->SystemArgument1, a2 = d->SystemArgument2;
        q.running = d;
        q.running_routine = routine;
        q.running_seq = d->ProcessorHistory;
        pthread_mutex_unlock(&q.mu);

        routine(d, ctx, a1, a2);
        if (owfp_irql != DISPATCH_LEVEL) {
            owfp_irql_callout_returned_at(owfp_irql, "DPC routine");
            owfp_irql = DISPATCH_LEVEL;
        }

        pthread_mutex_lock(&q.mu);
        q.running = NULL;
        q.running_routine = NULL;
        pthread_cond_broadcast(&q.idle);
    }
    return NULL;
}

/* Under q.mu. The thread lives for the rest of the process. */
static void start_thread(void)
{
    if (q.started)
        return;
    q.started = owfp_start_thread(dpc_thread, NULL);
    if (!q.started)
        owfp_kernel_finding("DPC thread could not be started: queued DPCs will not run");
}

static void init(PRKDPC Dpc, UCHAR type, PKDEFERRED_ROUTINE routine, PVOID context)
{
    memset(Dpc, 0, sizeof(*Dpc));
    Dpc->Type = type;
    Dpc->Importance = MediumImportance;
    Dpc->DeferredRoutine = routine;
    Dpc->DeferredContext = context;
}

VOID NTAPI KeInitializeDpc(PRKDPC Dpc, PKDEFERRED_ROUTINE DeferredRoutine, PVOID DeferredContext)
{
    init(Dpc, DPC_TYPE, DeferredRoutine, DeferredContext);
}

VOID NTAPI KeInitializeThreadedDpc(PRKDPC Dpc, PKDEFERRED_ROUTINE DeferredRoutine,
                                   PVOID DeferredContext)
{
    init(Dpc, THREADED_DPC_TYPE, DeferredRoutine, DeferredContext);
}

static bool valid(PRKDPC Dpc, const char *api)
{
    if (Dpc && (Dpc->Type == DPC_TYPE || Dpc->Type == THREADED_DPC_TYPE) && Dpc->DeferredRoutine)
        return true;
    owfp_kernel_finding("DPC violation: %s on a DPC that is not initialized", api);
    return false;
}

BOOLEAN NTAPI KeInsertQueueDpc(PRKDPC Dpc, PVOID SystemArgument1, PVOID SystemArgument2)
{
    if (!valid(Dpc, "KeInsertQueueDpc"))
        return FALSE;
    pthread_mutex_lock(&q.mu);
    bool queued = Dpc->DpcData != NULL;
    if (!queued) {
        Dpc->SystemArgument1 = SystemArgument1;
        Dpc->SystemArgument2 = SystemArgument2;
        Dpc->DpcData = &q;
        Dpc->ProcessorHistory = (KAFFINITY)q.next_seq++;
        if (Dpc->Importance == HighImportance || !q.head) {
            set_next(Dpc, q.head);
            q.head = Dpc;
            if (!q.tail)
                q.tail = Dpc;
        } else {
            set_next(Dpc, NULL);
            set_next(q.tail, Dpc);
            q.tail = Dpc;
        }
        start_thread();
        pthread_cond_signal(&q.work);
    }
    pthread_mutex_unlock(&q.mu);
    return !queued;
}

/* Under q.mu: the DPC before `d` in the queue, or NULL for the head. */
static PKDPC before(PKDPC d)
{
    PKDPC prev = NULL;
    for (PKDPC p = q.head; p && p != d; p = next_of(p))
        prev = p;
    return prev;
}

BOOLEAN NTAPI KeRemoveQueueDpc(PRKDPC Dpc)
{
    if (!valid(Dpc, "KeRemoveQueueDpc"))
        return FALSE;
    pthread_mutex_lock(&q.mu);
    bool queued = Dpc->DpcData != NULL;
    if (queued) {
        unlink_dpc(Dpc, before(Dpc));
        pthread_cond_broadcast(&q.idle);
    }
    pthread_mutex_unlock(&q.mu);
    return queued;
}

VOID NTAPI KeSetImportanceDpc(PRKDPC Dpc, KDPC_IMPORTANCE Importance)
{
    Dpc->Importance = (UCHAR)Importance;
}

VOID NTAPI KeSetTargetProcessorDpc(PRKDPC Dpc, CCHAR Number)
{
    Dpc->Number = (USHORT)(UCHAR)Number;
}

/* Under q.mu: whether a DPC queued before sequence `mark` is queued or runs. */
static bool older_pending(ULONG64 mark)
{
    if (q.running && q.running_seq < mark)
        return true;
    for (PKDPC p = q.head; p; p = next_of(p))
        if ((ULONG64)p->ProcessorHistory < mark)
            return true;
    return false;
}

VOID NTAPI KeFlushQueuedDpcs(void)
{
    /* The DPC thread waiting for itself would never return. */
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "KeFlushQueuedDpcs"))
        return;
    pthread_mutex_lock(&q.mu);
    ULONG64 mark = q.next_seq;
    while (older_pending(mark))
        pthread_cond_wait(&q.idle, &q.mu);
    pthread_mutex_unlock(&q.mu);
}

/* ---- host side ---------------------------------------------------------------- */

unsigned long owfp_dpcs_pending(void)
{
    pthread_mutex_lock(&q.mu);
    unsigned long n = q.running ? 1 : 0;
    for (PKDPC p = q.head; p; p = next_of(p))
        n++;
    pthread_mutex_unlock(&q.mu);
    return n;
}

static bool dpc_in_range(PKDPC d, PKDEFERRED_ROUTINE routine, const void *start, size_t size)
{
    return owfp_in_range(d, start, size) || owfp_in_range((const void *)routine, start, size);
}

unsigned long owfp_dpcs_remove_range(const void *start, size_t size)
{
    unsigned long n = 0;
    pthread_mutex_lock(&q.mu);
    PKDPC prev = NULL;
    for (PKDPC p = q.head; p;) {
        PKDPC next = next_of(p);
        if (dpc_in_range(p, p->DeferredRoutine, start, size)) {
            unlink_dpc(p, prev);
            n++;
        } else {
            prev = p;
        }
        p = next;
    }
    if (n)
        pthread_cond_broadcast(&q.idle);
    pthread_mutex_unlock(&q.mu);
    return n;
}

bool owfp_dpcs_wait_range(const void *start, size_t size, unsigned timeout_ms)
{
    struct timespec until = owfp_realtime_after_ms(timeout_ms); /* q.idle: default clock */
    pthread_mutex_lock(&q.mu);
    int rc = 0;
    while (q.running && dpc_in_range(q.running, q.running_routine, start, size) &&
           rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&q.idle, &q.mu, &until);
    bool done = !q.running || !dpc_in_range(q.running, q.running_routine, start, size);
    pthread_mutex_unlock(&q.mu);
    return done;
}
