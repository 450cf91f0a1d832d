/*
 * Events. Setting a notification event releases every thread waiting at
 * that moment (even if it is reset at once) and leaves it signaled; setting
 * a synchronization event releases exactly one waiter and stays
 * non-signaled, or becomes signaled when nobody waits. The waiting itself is
 * the dispatcher's (dispatcher.c).
 */
#include "kernel/dispatcher.h"

VOID NTAPI KeInitializeEvent(PRKEVENT Event, EVENT_TYPE Type, BOOLEAN State)
{
    DISPATCHER_HEADER *h = &Event->Header;
    memset(h, 0, sizeof(*h));
    h->Type = Type == SynchronizationEvent ? EventSynchronizationObject : EventNotificationObject;
    h->Size = sizeof(KEVENT) / sizeof(LONG);
    owfp_dispatcher_set_state(h, State ? 1 : 0);
}

LONG NTAPI KeSetEvent(PRKEVENT Event, KPRIORITY Increment, BOOLEAN Wait)
{
    (void)Increment;
    (void)Wait; /* only tells Windows the caller waits next; nothing to keep here */
    owfp_irql_check_max(DISPATCH_LEVEL, "KeSetEvent");
    return owfp_dispatcher_signal(&Event->Header);
}

LONG NTAPI KeResetEvent(PRKEVENT Event)
{
    owfp_irql_check_max(DISPATCH_LEVEL, "KeResetEvent");
    owfp_dispatcher_lock();
    LONG prev = owfp_dispatcher_state(&Event->Header);
    owfp_dispatcher_set_state(&Event->Header, 0);
    owfp_dispatcher_unlock();
    return prev;
}

VOID NTAPI KeClearEvent(PRKEVENT Event)
{
    (void)KeResetEvent(Event);
}

LONG NTAPI KeReadStateEvent(PRKEVENT Event)
{
    return owfp_dispatcher_state(&Event->Header);
}
