/*
 * Dispatcher objects (events and thread objects) and waits on them.
 *
 * A KEVENT has no destructor, so it can own no OS resource: every object
 * hashes to one of a fixed set of mutex/condition buckets, and the event's
 * own 24 bytes hold its state and the wait bookkeeping. Semantics follow the
 * documentation: setting a notification event releases every thread waiting
 * at that moment (even if it is reset at once); setting a synchronization
 * event releases exactly one waiter and stays non-signaled, or becomes
 * signaled when nobody waits.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "kernel/kernel.h"

#define BUCKETS 64
static struct bucket {
    pthread_mutex_t mu;
    pthread_cond_t cv;
} buckets[BUCKETS];
static pthread_once_t buckets_once = PTHREAD_ONCE_INIT;

static void init_buckets(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* relative timeouts ignore clock steps */
    for (int i = 0; i < BUCKETS; i++) {
        pthread_mutex_init(&buckets[i].mu, NULL);
        pthread_cond_init(&buckets[i].cv, &attr);
    }
    pthread_condattr_destroy(&attr);
}

static struct bucket *bucket_of(const void *object)
{
    pthread_once(&buckets_once, init_buckets);
    uintptr_t h = ((uintptr_t)object >> 3) * 0x9E3779B97F4A7C15ull;
    return &buckets[(h >> 32) % BUCKETS];
}

static LONG state(const DISPATCHER_HEADER *h)
{
    return __atomic_load_n(&h->SignalState, __ATOMIC_ACQUIRE);
}

static void set_state(DISPATCHER_HEADER *h, LONG s)
{
    __atomic_store_n(&h->SignalState, s, __ATOMIC_RELEASE);
}

VOID NTAPI KeInitializeEvent(PRKEVENT Event, EVENT_TYPE Type, BOOLEAN State)
{
    DISPATCHER_HEADER *h = &Event->Header;
    memset(h, 0, sizeof(*h));
    h->Type = Type == SynchronizationEvent ? EventSynchronizationObject : EventNotificationObject;
    h->Size = sizeof(KEVENT) / sizeof(LONG);
    set_state(h, State ? 1 : 0);
}

LONG NTAPI KeSetEvent(PRKEVENT Event, KPRIORITY Increment, BOOLEAN Wait)
{
    (void)Increment;
    (void)Wait; /* only tells Windows the caller waits next; nothing to keep here */
    owfp_irql_check_max(DISPATCH_LEVEL, "KeSetEvent");
    DISPATCHER_HEADER *h = &Event->Header;
    struct bucket *b = bucket_of(h);
    pthread_mutex_lock(&b->mu);
    LONG prev = state(h);
    if (h->Type == EventSynchronizationObject && h->OwfpWaiters > h->OwfpGrants)
        h->OwfpGrants++; /* hand it to one waiter; the event stays non-signaled */
    else
        set_state(h, 1);
    h->OwfpGeneration++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return prev;
}

void owfp_dispatcher_signal_all(DISPATCHER_HEADER *h)
{
    struct bucket *b = bucket_of(h);
    pthread_mutex_lock(&b->mu);
    set_state(h, 1);
    h->OwfpGeneration++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

LONG NTAPI KeResetEvent(PRKEVENT Event)
{
    owfp_irql_check_max(DISPATCH_LEVEL, "KeResetEvent");
    struct bucket *b = bucket_of(&Event->Header);
    pthread_mutex_lock(&b->mu);
    LONG prev = state(&Event->Header);
    set_state(&Event->Header, 0);
    pthread_mutex_unlock(&b->mu);
    return prev;
}

VOID NTAPI KeClearEvent(PRKEVENT Event)
{
    (void)KeResetEvent(Event);
}

LONG NTAPI KeReadStateEvent(PRKEVENT Event)
{
    return state(&Event->Header);
}

/* Monotonic deadline for a WDK timeout (100 ns units; negative = relative,
 * positive = absolute system time). */
static struct timespec deadline_of(LONGLONG timeout)
{
    int64_t rel;
    if (timeout < 0)
        rel = timeout == INT64_MIN ? INT64_MAX : -timeout;
    else
        rel = timeout > owfp_time_system() ? timeout - owfp_time_system() : 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* Beyond ~290 years counts as forever. */
    int64_t sec = rel / 10000000;
    if (sec > INT32_MAX)
        sec = INT32_MAX;
    ts.tv_sec += (time_t)sec;
    ts.tv_nsec += (long)(rel % 10000000) * 100;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Takes the object if it is signaled (consuming a synchronization event).
 * Called with the bucket lock held. */
static bool try_satisfy(DISPATCHER_HEADER *h, bool waiting, ULONGLONG since)
{
    bool sync = h->Type == EventSynchronizationObject;
    if (sync && waiting && h->OwfpGrants > 0) {
        h->OwfpGrants--;
        return true;
    }
    if (state(h)) {
        if (sync)
            set_state(h, 0);
        return true;
    }
    /* A notification set (and maybe reset) since we began waiting releases us. */
    return !sync && waiting && h->OwfpGeneration != since;
}

NTSTATUS NTAPI KeWaitForSingleObject(PVOID Object, KWAIT_REASON WaitReason,
                                     KPROCESSOR_MODE WaitMode, BOOLEAN Alertable,
                                     PLARGE_INTEGER Timeout)
{
    (void)WaitReason;
    (void)WaitMode;
    (void)Alertable; /* there are no APCs to alert the wait */
    DISPATCHER_HEADER *h = Object;
    if (!h || (h->Type != EventNotificationObject && h->Type != EventSynchronizationObject &&
               h->Type != ThreadObject)) {
        owfp_kernel_finding("KeWaitForSingleObject on an object that is not an event or thread");
        return STATUS_INVALID_PARAMETER;
    }
    bool poll = Timeout && Timeout->QuadPart == 0;
    /* At DISPATCH_LEVEL only a zero timeout is allowed. Blocking there could
     * deadlock against the lock the caller holds, so the wait becomes a poll. */
    if (!poll && owfp_irql > APC_LEVEL) {
        owfp_kernel_finding("IRQL violation: KeWaitForSingleObject at %s",
                            owfp_irql_name(owfp_irql));
        poll = true;
    }
    struct bucket *b = bucket_of(h);
    pthread_mutex_lock(&b->mu);
    NTSTATUS st = STATUS_SUCCESS;
    if (!try_satisfy(h, false, 0)) {
        if (poll) {
            st = STATUS_TIMEOUT;
        } else {
            struct timespec until = Timeout ? deadline_of(Timeout->QuadPart) : (struct timespec){0};
            ULONGLONG since = h->OwfpGeneration;
            h->OwfpWaiters++;
            for (;;) {
                if (try_satisfy(h, true, since))
                    break;
                int rc = Timeout ? pthread_cond_timedwait(&b->cv, &b->mu, &until)
                                 : pthread_cond_wait(&b->cv, &b->mu);
                if (rc == ETIMEDOUT && !try_satisfy(h, true, since)) {
                    st = STATUS_TIMEOUT;
                    break;
                }
            }
            h->OwfpWaiters--;
        }
    }
    pthread_mutex_unlock(&b->mu);
    return st;
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
