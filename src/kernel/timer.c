/*
 * Timers (KTIMER). A set timer is linked, by its TimerListEntry, into one
 * queue sorted by due time (interrupt time, the monotonic clock), guarded by
 * the dispatcher lock like the timer's signal state. One host thread sleeps
 * until the first due time, then signals the timer (releasing its waiters as
 * any dispatcher object does), re-arms a periodic one and queues its DPC.
 *
 * Expiry is as precise as the host's condition variable, not rounded to the
 * 15.6 ms Windows clock tick. A periodic timer that fell behind (the process
 * was stopped) fires once and goes on from now, without catching up. An
 * absolute due time is converted to interrupt time when the timer is set, so
 * a later wall-clock step does not move it.
 */
#include "kernel/dispatcher.h"

#define UNITS_PER_MS 10000

static LIST_ENTRY queue = {&queue, &queue};
static pthread_cond_t changed; /* the first due time moved */
static pthread_once_t changed_once = PTHREAD_ONCE_INIT;
static bool started;

static void init_changed(void)
{
    owfp_dispatcher_cond_init(&changed);
}

static bool is_set(const KTIMER *t)
{
    return t->TimerListEntry.Flink != NULL;
}

/* Dispatcher lock held, for the helpers below. Equal due times keep the
 * order they were set in. */
static void insert(PKTIMER t)
{
    PLIST_ENTRY e = queue.Flink;
    while (e != &queue &&
           CONTAINING_RECORD(e, KTIMER, TimerListEntry)->DueTime.QuadPart <= t->DueTime.QuadPart)
        e = e->Flink;
    InsertTailList(e, &t->TimerListEntry); /* before e */
}

static void unqueue(PKTIMER t)
{
    RemoveEntryList(&t->TimerListEntry);
    t->TimerListEntry.Flink = t->TimerListEntry.Blink = NULL;
}

static bool queued(const KTIMER *t)
{
    for (PLIST_ENTRY e = queue.Flink; e != &queue; e = e->Flink)
        if (e == &t->TimerListEntry)
            return true;
    return false;
}

static void expire(PKTIMER t, int64_t now)
{
    unqueue(t);
    owfp_dispatcher_set_state(&t->Header, 1);
    owfp_dispatcher_wake(&t->Header);
    if (t->Period > 0) {
        int64_t period = (int64_t)t->Period * UNITS_PER_MS;
        int64_t next = (int64_t)t->DueTime.QuadPart + period;
        t->DueTime.QuadPart = (ULONGLONG)(next > now ? next : now + period);
        insert(t);
    }
    if (t->Dpc) {
        /* As on Windows, the routine receives the expiry time (system time). */
        LONGLONG sys = owfp_time_system();
        KeInsertQueueDpc(t->Dpc, (PVOID)(ULONG_PTR)(ULONG)sys,
                         (PVOID)(ULONG_PTR)(ULONG)((ULONGLONG)sys >> 32));
    }
}

static void *timer_thread(void *arg)
{
    (void)arg;
    pthread_mutex_t *mu = owfp_dispatcher_mutex();
    pthread_mutex_lock(mu);
    for (;;) {
        if (IsListEmpty(&queue)) {
            pthread_cond_wait(&changed, mu);
            continue;
        }
        PKTIMER first = CONTAINING_RECORD(queue.Flink, KTIMER, TimerListEntry);
        int64_t now = owfp_time_interrupt();
        if ((int64_t)first->DueTime.QuadPart <= now) {
            expire(first, now);
            continue;
        }
        struct timespec until = owfp_timespec_of_interrupt((int64_t)first->DueTime.QuadPart);
        pthread_cond_timedwait(&changed, mu, &until);
    }
    return NULL;
}

/* Dispatcher lock held. The thread lives for the rest of the process. */
static void start_thread(void)
{
    if (started)
        return;
    started = owfp_start_thread(timer_thread, NULL);
    if (!started)
        owfp_kernel_finding("timer thread could not be started: timers will not expire");
}

VOID NTAPI KeInitializeTimerEx(PKTIMER Timer, TIMER_TYPE Type)
{
    owfp_dispatcher_lock();
    /* Re-initializing a set timer would corrupt the queue. The list is only
     * compared against, so stale bytes in fresh memory are harmless. */
    bool was_set = queued(Timer);
    if (was_set)
        unqueue(Timer);
    memset(Timer, 0, sizeof(*Timer));
    Timer->Header.Type =
        Type == SynchronizationTimer ? TimerSynchronizationObject : TimerNotificationObject;
    Timer->Header.Size = sizeof(KTIMER) / sizeof(LONG);
    owfp_dispatcher_unlock();
    if (was_set)
        owfp_kernel_finding("timer violation: KeInitializeTimer on a timer that is set");
}

VOID NTAPI KeInitializeTimer(PKTIMER Timer)
{
    KeInitializeTimerEx(Timer, NotificationTimer);
}

static bool valid(const KTIMER *t, const char *api)
{
    if (t && (t->Header.Type == TimerNotificationObject ||
              t->Header.Type == TimerSynchronizationObject) &&
        t->Header.Size == sizeof(KTIMER) / sizeof(LONG))
        return true;
    owfp_kernel_finding("timer violation: %s on a timer that is not initialized", api);
    return false;
}

static BOOLEAN set_timer(PKTIMER t, LONGLONG due, LONG period, PKDPC dpc, void *caller,
                         const char *api)
{
    owfp_irql_check_max(DISPATCH_LEVEL, api);
    if (!valid(t, api))
        return FALSE;
    if (period < 0) {
        owfp_kernel_finding("timer violation: %s with a negative period (%ld ms)", api,
                            (long)period);
        period = 0;
    }
    pthread_once(&changed_once, init_changed); /* before the first signal */
    int64_t when = owfp_interrupt_time_of(due);
    owfp_dispatcher_lock();
    bool was_set = is_set(t);
    if (was_set)
        unqueue(t);
    owfp_dispatcher_set_state(&t->Header, 0);
    t->DueTime.QuadPart = (ULONGLONG)when;
    t->Period = period;
    t->Dpc = dpc;
    t->OwfpSetBy = caller;
    insert(t);
    start_thread();
    pthread_cond_signal(&changed);
    owfp_dispatcher_unlock();
    return was_set;
}

BOOLEAN NTAPI KeSetTimer(PKTIMER Timer, LARGE_INTEGER DueTime, PKDPC Dpc)
{
    return set_timer(Timer, DueTime.QuadPart, 0, Dpc, __builtin_return_address(0), "KeSetTimer");
}

BOOLEAN NTAPI KeSetTimerEx(PKTIMER Timer, LARGE_INTEGER DueTime, LONG Period, PKDPC Dpc)
{
    return set_timer(Timer, DueTime.QuadPart, Period, Dpc, __builtin_return_address(0),
                     "KeSetTimerEx");
}

BOOLEAN NTAPI KeCancelTimer(PKTIMER Timer)
{
    owfp_irql_check_max(DISPATCH_LEVEL, "KeCancelTimer");
    if (!valid(Timer, "KeCancelTimer"))
        return FALSE;
    owfp_dispatcher_lock();
    bool was_set = is_set(Timer);
    if (was_set)
        unqueue(Timer);
    owfp_dispatcher_unlock();
    return was_set;
}

BOOLEAN NTAPI KeReadStateTimer(PKTIMER Timer)
{
    return owfp_dispatcher_state(&Timer->Header) != 0;
}

/* ---- host side ---------------------------------------------------------------- */

unsigned long owfp_timers_set(void)
{
    owfp_dispatcher_lock();
    unsigned long n = 0;
    for (PLIST_ENTRY e = queue.Flink; e != &queue; e = e->Flink)
        n++;
    owfp_dispatcher_unlock();
    return n;
}

/* The timer, its DPC, the DPC's routine or the code that set it is there. */
static bool timer_in_range(const KTIMER *t, const void *start, size_t size)
{
    return owfp_in_range(t, start, size) || owfp_in_range(t->Dpc, start, size) ||
           (t->Dpc && owfp_in_range((const void *)t->Dpc->DeferredRoutine, start, size)) ||
           owfp_in_range(t->OwfpSetBy, start, size);
}

unsigned long owfp_timers_cancel_range(const void *start, size_t size)
{
    unsigned long n = 0;
    owfp_dispatcher_lock();
    for (PLIST_ENTRY e = queue.Flink; e != &queue;) {
        PKTIMER t = CONTAINING_RECORD(e, KTIMER, TimerListEntry);
        e = e->Flink;
        if (timer_in_range(t, start, size)) {
            unqueue(t);
            n++;
        }
    }
    owfp_dispatcher_unlock();
    return n;
}
