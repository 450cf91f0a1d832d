/*
 * Waits on dispatcher objects (KeWaitForSingleObject, KeWaitForMultipleObjects)
 * and what "signaled" and "acquired" mean for each kind of object.
 *
 * A waiting thread links one wait block per object into the objects' wait
 * lists and sleeps on a condition variable of its own. Whoever makes an
 * object signaled walks its list under the dispatcher lock and satisfies
 * the waiters itself, acquiring the objects on their behalf as Windows does.
 * So a notification event set and reset at once still releases every thread
 * that was waiting, a synchronization event or a free mutex goes to exactly
 * one waiter, and a semaphore released by n to at most n; a WaitAll is
 * satisfied only at a moment when all its objects are signaled together.
 *
 * No object owns an OS resource (a KEVENT has no destructor): the wait
 * blocks and the condition variable live on the waiting thread's stack.
 */
#include <errno.h>

#include "kernel/dispatcher.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_condattr_t monotonic_attr;
static pthread_once_t attr_once = PTHREAD_ONCE_INIT;

struct waiter;

struct wait_block {
    struct wait_block *next; /* the object's wait list, oldest first */
    struct wait_block *prev; /* the head's prev is the tail */
    struct waiter *waiter;
    DISPATCHER_HEADER *object;
    ULONG index;
};

struct waiter {
    pthread_cond_t cv;
    uintptr_t thread; /* owfp_thread_token(): mutex ownership */
    bool all;
    ULONG count;
    struct wait_block *blocks;
    NTSTATUS status; /* STATUS_PENDING until satisfied or timed out */
};

/* ---- the lock ---------------------------------------------------------------- */

static void init_attr(void)
{
    pthread_condattr_init(&monotonic_attr);
    /* Relative timeouts must not move when the wall clock is stepped. */
    pthread_condattr_setclock(&monotonic_attr, CLOCK_MONOTONIC);
}

void owfp_dispatcher_cond_init(pthread_cond_t *cv)
{
    pthread_once(&attr_once, init_attr);
    pthread_cond_init(cv, &monotonic_attr);
}

void owfp_dispatcher_lock(void)
{
    pthread_mutex_lock(&mu);
}

void owfp_dispatcher_unlock(void)
{
    pthread_mutex_unlock(&mu);
}

pthread_mutex_t *owfp_dispatcher_mutex(void)
{
    return &mu;
}

LONG owfp_dispatcher_state(const DISPATCHER_HEADER *h)
{
    return __atomic_load_n(&h->SignalState, __ATOMIC_ACQUIRE);
}

void owfp_dispatcher_set_state(DISPATCHER_HEADER *h, LONG s)
{
    __atomic_store_n(&h->SignalState, s, __ATOMIC_RELEASE);
}

/* ---- time -------------------------------------------------------------------- */

#define UNITS_PER_SEC 10000000LL
/* Beyond ~68 years counts as forever. */
#define MAX_WAIT ((int64_t)INT32_MAX * UNITS_PER_SEC)

int64_t owfp_interrupt_time_of(LONGLONG timeout)
{
    int64_t rel;
    if (timeout < 0) {
        rel = timeout == INT64_MIN ? MAX_WAIT : -timeout;
    } else {
        int64_t sys = owfp_time_system();
        rel = timeout > sys ? timeout - sys : 0;
    }
    if (rel > MAX_WAIT)
        rel = MAX_WAIT;
    return owfp_time_interrupt() + rel;
}

struct timespec owfp_timespec_of_interrupt(int64_t t)
{
    /* owfp_time_interrupt() is CLOCK_MONOTONIC in 100 ns units. */
    struct timespec ts;
    ts.tv_sec = (time_t)(t / UNITS_PER_SEC);
    ts.tv_nsec = (long)(t % UNITS_PER_SEC) * 100;
    return ts;
}

/* CLOCK_MONOTONIC deadline of a WDK timeout. */
static struct timespec deadline_of(LONGLONG timeout)
{
    return owfp_timespec_of_interrupt(owfp_interrupt_time_of(timeout));
}

/* ---- object kinds -------------------------------------------------------------- */

static bool waitable(const DISPATCHER_HEADER *h)
{
    switch (h->Type) {
    case EventNotificationObject:
    case EventSynchronizationObject:
    case MutantObject:
    case SemaphoreObject:
    case ThreadObject:
    case TimerNotificationObject:
    case TimerSynchronizationObject:
        return true;
    default:
        return false;
    }
}

static uintptr_t mutex_owner(const DISPATCHER_HEADER *h)
{
    return (uintptr_t)CONTAINING_RECORD(h, KMUTEX, Header)->OwnerThread;
}

/* A mutex is signaled for its owner too: that is what makes it recursive. */
static bool signaled_for(const DISPATCHER_HEADER *h, uintptr_t thread)
{
    if (h->Type == MutantObject)
        return owfp_dispatcher_state(h) > 0 || mutex_owner(h) == thread;
    return owfp_dispatcher_state(h) > 0;
}

/* The side effect of a satisfied wait on the object. */
static void acquire(DISPATCHER_HEADER *h, uintptr_t thread)
{
    switch (h->Type) {
    case EventSynchronizationObject:
    case TimerSynchronizationObject:
        owfp_dispatcher_set_state(h, 0);
        break;
    case SemaphoreObject:
        owfp_dispatcher_set_state(h, owfp_dispatcher_state(h) - 1);
        break;
    case MutantObject:
        owfp_dispatcher_set_state(h, owfp_dispatcher_state(h) - 1);
        CONTAINING_RECORD(h, KMUTEX, Header)->OwnerThread = (struct _KTHREAD *)thread;
        break;
    default: /* notification events and timers, threads: nothing consumed */
        break;
    }
}

/* ---- wait lists ---------------------------------------------------------------- */

static void link_block(struct wait_block *b)
{
    struct wait_block *head = b->object->OwfpWaitList;
    b->next = NULL;
    if (!head) {
        b->prev = b;
        b->object->OwfpWaitList = b;
        return;
    }
    struct wait_block *tail = head->prev;
    tail->next = b;
    b->prev = tail;
    head->prev = b;
}

static void unlink_block(struct wait_block *b)
{
    struct wait_block *head = b->object->OwfpWaitList;
    if (b == head) {
        if (b->next)
            b->next->prev = b->prev;
        b->object->OwfpWaitList = b->next;
    } else {
        b->prev->next = b->next;
        if (b->next)
            b->next->prev = b->prev;
        else
            head->prev = b->prev;
    }
    b->next = b->prev = NULL;
}

static bool all_signaled(const struct waiter *w)
{
    for (ULONG i = 0; i < w->count; i++)
        if (!signaled_for(w->blocks[i].object, w->thread))
            return false;
    return true;
}

/* Satisfies the wait if it can be now; `b` is the block that is being
 * signaled (NULL: look at every object, for the check before sleeping). */
static bool try_satisfy(struct waiter *w, const struct wait_block *b)
{
    if (w->all) {
        if (!all_signaled(w))
            return false;
        for (ULONG i = 0; i < w->count; i++)
            acquire(w->blocks[i].object, w->thread);
        w->status = STATUS_SUCCESS;
        return true;
    }
    for (ULONG i = b ? b->index : 0; i < (b ? b->index + 1 : w->count); i++) {
        if (signaled_for(w->blocks[i].object, w->thread)) {
            acquire(w->blocks[i].object, w->thread);
            w->status = STATUS_WAIT_0 + (NTSTATUS)i;
            return true;
        }
    }
    return false;
}

void owfp_dispatcher_wake(DISPATCHER_HEADER *h)
{
    /* From the head again after each hand-off: satisfying a waiter unlinks
     * all its blocks, possibly the next one of this list too. */
    for (;;) {
        struct wait_block *b = h->OwfpWaitList;
        while (b && !try_satisfy(b->waiter, b))
            b = b->next;
        if (!b)
            return;
        struct waiter *w = b->waiter;
        for (ULONG i = 0; i < w->count; i++)
            unlink_block(&w->blocks[i]);
        pthread_cond_signal(&w->cv);
    }
}

LONG owfp_dispatcher_signal(DISPATCHER_HEADER *h)
{
    pthread_mutex_lock(&mu);
    LONG prev = owfp_dispatcher_state(h);
    owfp_dispatcher_set_state(h, 1);
    owfp_dispatcher_wake(h);
    pthread_mutex_unlock(&mu);
    return prev;
}

/* ---- waiting ------------------------------------------------------------------- */

NTSTATUS owfp_dispatcher_wait(ULONG count, DISPATCHER_HEADER *const *objects, bool wait_all,
                              const LARGE_INTEGER *timeout, bool check_irql, const char *api)
{
    bool poll = timeout && timeout->QuadPart == 0;
    /* Above APC_LEVEL only a zero timeout is allowed. Blocking there could
     * deadlock against the lock the caller holds, so the wait becomes a poll. */
    if (check_irql && !poll && owfp_irql > APC_LEVEL) {
        owfp_irql_violation(api);
        poll = true;
    }
    struct timespec until = {0};
    if (timeout && !poll)
        until = deadline_of(timeout->QuadPart);

    struct wait_block blocks[MAXIMUM_WAIT_OBJECTS];
    struct waiter w = {.thread = owfp_thread_token(),
                       .all = wait_all,
                       .count = count,
                       .blocks = blocks,
                       .status = STATUS_PENDING};
    for (ULONG i = 0; i < count; i++)
        blocks[i] = (struct wait_block){NULL, NULL, &w, objects[i], i};

    pthread_mutex_lock(&mu);
    if (try_satisfy(&w, NULL) || poll) {
        pthread_mutex_unlock(&mu);
        return w.status == STATUS_PENDING ? STATUS_TIMEOUT : w.status;
    }
    owfp_dispatcher_cond_init(&w.cv);
    for (ULONG i = 0; i < count; i++)
        link_block(&blocks[i]);
    while (w.status == STATUS_PENDING) {
        int rc = timeout ? pthread_cond_timedwait(&w.cv, &mu, &until)
                         : pthread_cond_wait(&w.cv, &mu);
        if (rc == ETIMEDOUT && w.status == STATUS_PENDING) {
            for (ULONG i = 0; i < count; i++)
                unlink_block(&blocks[i]);
            w.status = STATUS_TIMEOUT;
        }
    }
    pthread_mutex_unlock(&mu);
    /* The signaler signalled under the lock we held since: nobody uses cv now. */
    pthread_cond_destroy(&w.cv);
    return w.status;
}

static bool check_object(const void *object, const char *api)
{
    if (object && waitable(object))
        return true;
    owfp_kernel_finding("%s on an object that is not a dispatcher object (event, mutex, "
                        "semaphore, timer or thread)",
                        api);
    return false;
}

NTSTATUS NTAPI KeWaitForSingleObject(PVOID Object, KWAIT_REASON WaitReason,
                                     KPROCESSOR_MODE WaitMode, BOOLEAN Alertable,
                                     PLARGE_INTEGER Timeout)
{
    (void)WaitReason;
    (void)WaitMode;
    (void)Alertable; /* there are no APCs to alert the wait */
    if (!check_object(Object, "KeWaitForSingleObject"))
        return STATUS_INVALID_PARAMETER;
    DISPATCHER_HEADER *h = Object;
    return owfp_dispatcher_wait(1, &h, false, Timeout, true, "KeWaitForSingleObject");
}

/* Windows bug-checks on these (MAXIMUM_WAIT_OBJECTS_EXCEEDED and others). */
static bool check_multiple(ULONG count, PVOID *objects, WAIT_TYPE type, PKWAIT_BLOCK blocks)
{
    const char *api = "KeWaitForMultipleObjects";
    if (type != WaitAll && type != WaitAny) {
        owfp_kernel_finding("%s with wait type %d (WaitAll or WaitAny)", api, (int)type);
        return false;
    }
    if (count == 0 || count > MAXIMUM_WAIT_OBJECTS || (count > THREAD_WAIT_OBJECTS && !blocks)) {
        owfp_kernel_finding("%s on %lu objects (1 to %d, more than %d only with a wait block "
                            "array)",
                            api, (unsigned long)count, MAXIMUM_WAIT_OBJECTS, THREAD_WAIT_OBJECTS);
        return false;
    }
    if (!objects) {
        owfp_kernel_finding("%s with no object array", api);
        return false;
    }
    for (ULONG i = 0; i < count; i++) {
        if (!check_object(objects[i], api))
            return false;
        for (ULONG j = 0; type == WaitAll && j < i; j++)
            if (objects[j] == objects[i]) {
                owfp_kernel_finding("%s: WaitAll with object %lu also at index %lu", api,
                                    (unsigned long)i, (unsigned long)j);
                return false;
            }
    }
    return true;
}

NTSTATUS NTAPI KeWaitForMultipleObjects(ULONG Count, PVOID Object[], WAIT_TYPE WaitType,
                                        KWAIT_REASON WaitReason, KPROCESSOR_MODE WaitMode,
                                        BOOLEAN Alertable, PLARGE_INTEGER Timeout,
                                        PKWAIT_BLOCK WaitBlockArray)
{
    (void)WaitReason;
    (void)WaitMode;
    (void)Alertable;
    if (!check_multiple(Count, Object, WaitType, WaitBlockArray))
        return STATUS_INVALID_PARAMETER;
    DISPATCHER_HEADER *objects[MAXIMUM_WAIT_OBJECTS];
    for (ULONG i = 0; i < Count; i++)
        objects[i] = Object[i];
    return owfp_dispatcher_wait(Count, objects, WaitType == WaitAll, Timeout, true,
                                "KeWaitForMultipleObjects");
}

NTSTATUS NTAPI KeDelayExecutionThread(KPROCESSOR_MODE WaitMode, BOOLEAN Alertable,
                                      PLARGE_INTEGER Interval)
{
    (void)WaitMode;
    (void)Alertable;
    /* Sleeping above APC_LEVEL is a bug check on Windows; here it returns at once. */
    if (!owfp_irql_check_max(APC_LEVEL, "KeDelayExecutionThread") || !Interval)
        return STATUS_SUCCESS;
    struct timespec until = deadline_of(Interval->QuadPart);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
        ;
    return STATUS_SUCCESS;
}
