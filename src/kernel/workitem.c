/*
 * Work items: routines queued from any IRQL ≤ DISPATCH_LEVEL and run at
 * PASSIVE_LEVEL on a small pool of worker threads, in queue order per worker
 * and otherwise concurrently, as Windows' system worker threads run them.
 * The queue type only picks a priority on Windows and is ignored here.
 *
 * An item is off the queue before its routine is called, so the routine may
 * queue it again or free it (the usual pattern) itself.
 *
 * Scheduled mode (owfp_workitems_set_scheduled) makes a run repeatable, as
 * replaying a fuzz input must be: queued items wait until the host releases
 * them, one at a time, in the order it picks, and each finishes before the
 * host goes on.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common/alloc.h"
#include "kernel/kernel.h"

#define WORKERS 4
#define ITEM_MAGIC 0x776b6974u

struct _IO_WORKITEM {
    uint32_t magic;
    bool allocated; /* by IoAllocateWorkItem, rather than caller memory */
    bool queued;    /* under q.mu */
    PVOID io_object;
    PIO_WORKITEM_ROUTINE routine;       /* IoQueueWorkItem's, or */
    PIO_WORKITEM_ROUTINE_EX routine_ex; /* IoQueueWorkItemEx's */
    PVOID context;
    struct _IO_WORKITEM *next;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work;
    pthread_cond_t idle;
    struct _IO_WORKITEM *head, *tail;
    unsigned long pending; /* queued or running */
    bool started;
    bool scheduled;       /* items run only when released */
    unsigned long grants; /* scheduled: items released, not yet taken */
    unsigned long done;   /* items whose routine returned */
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
       NULL, NULL, 0, false, false, 0, 0};

static atomic_ulong outstanding;

static void *worker(void *arg)
{
    (void)arg;
    owfp_irql = PASSIVE_LEVEL;
    pthread_mutex_lock(&q.mu);
    for (;;) {
        while (!q.head || (q.scheduled && !q.grants))
            pthread_cond_wait(&q.work, &q.mu);
        if (q.grants)
            q.grants--;
        struct _IO_WORKITEM *it = q.head;
        q.head = it->next;
        if (!q.head)
            q.tail = NULL;
        it->queued = false;
        /* Copied out: the routine may free or requeue the item. */
        PIO_WORKITEM_ROUTINE routine = it->routine;
        PIO_WORKITEM_ROUTINE_EX routine_ex = it->routine_ex;
        PVOID obj = it->io_object, ctx = it->context;
        pthread_mutex_unlock(&q.mu);

        if (routine_ex)
            routine_ex(obj, ctx, it);
        else
            routine((PDEVICE_OBJECT)obj, ctx);
        if (owfp_irql != PASSIVE_LEVEL) {
            owfp_irql_callout_returned_at(owfp_irql, "work item routine");
            owfp_irql = PASSIVE_LEVEL;
        }

        pthread_mutex_lock(&q.mu);
        q.done++;
        if (--q.pending == 0 || q.scheduled)
            pthread_cond_broadcast(&q.idle);
    }
    return NULL;
}

/* Called with q.mu held. Workers live for the rest of the process. */
static void start_workers(void)
{
    if (q.started)
        return;
    for (int i = 0; i < WORKERS; i++)
        if (owfp_start_thread(worker, NULL))
            q.started = true;
}

static bool valid(PIO_WORKITEM it, const char *api)
{
    if (it && it->magic == ITEM_MAGIC)
        return true;
    owfp_kernel_finding("work item violation: %s on a work item that is not initialized", api);
    return false;
}

PIO_WORKITEM NTAPI IoAllocateWorkItem(PDEVICE_OBJECT DeviceObject)
{
    owfp_irql_check_max(DISPATCH_LEVEL, "IoAllocateWorkItem");
    struct _IO_WORKITEM *it = owfp_calloc(1, sizeof(*it));
    if (!it)
        return NULL;
    it->magic = ITEM_MAGIC;
    it->allocated = true;
    it->io_object = DeviceObject;
    atomic_fetch_add(&outstanding, 1);
    return it;
}

ULONG NTAPI IoSizeofWorkItem(void)
{
    return (ULONG)sizeof(struct _IO_WORKITEM);
}

VOID NTAPI IoInitializeWorkItem(PVOID IoObject, PIO_WORKITEM IoWorkItem)
{
    memset(IoWorkItem, 0, sizeof(*IoWorkItem));
    IoWorkItem->magic = ITEM_MAGIC;
    IoWorkItem->io_object = IoObject;
    atomic_fetch_add(&outstanding, 1);
}

/* Refuses (with a finding) to release an item still queued: its memory would
 * be reused under the worker. */
static bool release(PIO_WORKITEM it, const char *api)
{
    if (!valid(it, api))
        return false;
    pthread_mutex_lock(&q.mu);
    bool queued = it->queued;
    if (!queued)
        it->magic = 0;
    pthread_mutex_unlock(&q.mu);
    if (queued) {
        owfp_kernel_finding("work item violation: %s on a queued work item", api);
        return false;
    }
    atomic_fetch_sub(&outstanding, 1);
    return true;
}

VOID NTAPI IoFreeWorkItem(PIO_WORKITEM IoWorkItem)
{
    owfp_irql_check_max(DISPATCH_LEVEL, "IoFreeWorkItem");
    if (IoWorkItem && IoWorkItem->magic == ITEM_MAGIC && !IoWorkItem->allocated) {
        owfp_kernel_finding("work item violation: IoFreeWorkItem on an item from "
                            "IoInitializeWorkItem");
        return;
    }
    if (release(IoWorkItem, "IoFreeWorkItem"))
        owfp_free(IoWorkItem);
}

VOID NTAPI IoUninitializeWorkItem(PIO_WORKITEM IoWorkItem)
{
    release(IoWorkItem, "IoUninitializeWorkItem");
}

static void enqueue(PIO_WORKITEM it, PIO_WORKITEM_ROUTINE r, PIO_WORKITEM_ROUTINE_EX rx,
                    PVOID context, const char *api)
{
    owfp_irql_check_max(DISPATCH_LEVEL, api);
    if (!valid(it, api))
        return;
    pthread_mutex_lock(&q.mu);
    if (it->queued) {
        pthread_mutex_unlock(&q.mu);
        owfp_kernel_finding("work item violation: %s on a work item already queued", api);
        return;
    }
    it->queued = true;
    it->routine = r;
    it->routine_ex = rx;
    it->context = context;
    it->next = NULL;
    if (q.tail)
        q.tail->next = it;
    else
        q.head = it;
    q.tail = it;
    q.pending++;
    start_workers();
    pthread_cond_signal(&q.work);
    pthread_mutex_unlock(&q.mu);
}

VOID NTAPI IoQueueWorkItem(PIO_WORKITEM IoWorkItem, PIO_WORKITEM_ROUTINE WorkerRoutine,
                           WORK_QUEUE_TYPE QueueType, PVOID Context)
{
    (void)QueueType;
    enqueue(IoWorkItem, WorkerRoutine, NULL, Context, "IoQueueWorkItem");
}

VOID NTAPI IoQueueWorkItemEx(PIO_WORKITEM IoWorkItem, PIO_WORKITEM_ROUTINE_EX WorkerRoutine,
                             WORK_QUEUE_TYPE QueueType, PVOID Context)
{
    (void)QueueType;
    enqueue(IoWorkItem, NULL, WorkerRoutine, Context, "IoQueueWorkItemEx");
}

unsigned long owfp_workitems_outstanding(void)
{
    return atomic_load(&outstanding);
}

unsigned long owfp_workitems_pending(void)
{
    pthread_mutex_lock(&q.mu);
    unsigned long n = q.pending;
    pthread_mutex_unlock(&q.mu);
    return n;
}

void owfp_workitems_set_scheduled(bool on)
{
    pthread_mutex_lock(&q.mu);
    q.scheduled = on;
    q.grants = 0;
    pthread_cond_broadcast(&q.work);
    pthread_mutex_unlock(&q.mu);
}

static unsigned long queued_locked(void)
{
    unsigned long n = 0;
    for (const struct _IO_WORKITEM *it = q.head; it; it = it->next)
        n++;
    return n;
}

/* Scheduled mode, q.mu held: moves the queued item number `pick` (modulo
 * their count) to the front, releases it and waits until it returned.
 * false when none is queued, or on timeout. */
static bool run_one_locked(unsigned pick, const struct timespec *until)
{
    unsigned long n = queued_locked();
    if (!n)
        return false;
    struct _IO_WORKITEM *prev = NULL, *it = q.head;
    for (unsigned long i = pick % n; i; i--) {
        prev = it;
        it = it->next;
    }
    if (prev) {
        prev->next = it->next;
        if (q.tail == it)
            q.tail = prev;
        it->next = q.head;
        q.head = it;
    }
    unsigned long target = q.done + 1;
    q.grants = 1;
    pthread_cond_broadcast(&q.work);
    int rc = 0;
    while (q.done < target && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&q.idle, &q.mu, until);
    return q.done >= target;
}

bool owfp_workitems_run_one(unsigned pick, unsigned timeout_ms)
{
    struct timespec until = owfp_realtime_after_ms(timeout_ms);
    pthread_mutex_lock(&q.mu);
    bool ran = q.scheduled && run_one_locked(pick, &until);
    pthread_mutex_unlock(&q.mu);
    return ran;
}

bool owfp_workitems_wait_idle(unsigned timeout_ms)
{
    struct timespec until = owfp_realtime_after_ms(timeout_ms); /* q.idle: default clock */
    pthread_mutex_lock(&q.mu);
    int rc = 0;
    if (q.scheduled) /* in queue order, each to its end: the same every run */
        while (q.pending && run_one_locked(0, &until))
            ;
    while (q.pending && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&q.idle, &q.mu, &until);
    bool idle = q.pending == 0;
    pthread_mutex_unlock(&q.mu);
    return idle;
}
