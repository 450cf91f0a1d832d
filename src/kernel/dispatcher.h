/*
 * The dispatcher lock and the signal path shared by the waitable objects
 * (events, mutexes, semaphores, timers, threads) and the timer queue.
 *
 * One lock guards every object's state and wait list, as the original NT
 * dispatcher lock did: a wait on several objects, and the signaler that
 * satisfies it, then see all of them at once without a lock order.
 */
#ifndef OPENWFP_KERNEL_DISPATCHER_H
#define OPENWFP_KERNEL_DISPATCHER_H

#include <pthread.h>
#include <time.h>

#include "kernel/kernel.h"

void owfp_dispatcher_lock(void);
void owfp_dispatcher_unlock(void);
/* For threads that sleep on their own condition variable (created with
 * owfp_dispatcher_cond_init) under the dispatcher lock. */
pthread_mutex_t *owfp_dispatcher_mutex(void);
void owfp_dispatcher_cond_init(pthread_cond_t *cv);

/* Lock held. Hands the object to its waiters for as long as it stays
 * signaled: call after anything that may have made it signaled. */
void owfp_dispatcher_wake(DISPATCHER_HEADER *header);

/* Lock held. The state, read and written with atomics so KeRead* may look
 * without the lock. */
LONG owfp_dispatcher_state(const DISPATCHER_HEADER *header);
void owfp_dispatcher_set_state(DISPATCHER_HEADER *header, LONG state);

/* The wait itself. `check_irql` false for callers that must block whatever
 * the IRQL (a fast mutex acquired at the wrong IRQL has been reported
 * already and cannot return without the mutex). */
NTSTATUS owfp_dispatcher_wait(ULONG count, DISPATCHER_HEADER *const *objects, bool wait_all,
                              const LARGE_INTEGER *timeout, bool check_irql, const char *api);

/* The interrupt time (owfp_time_interrupt units) a WDK timeout ends at
 * (100 ns units; negative = relative, positive = absolute system time). */
int64_t owfp_interrupt_time_of(LONGLONG timeout);
/* CLOCK_MONOTONIC timespec of an interrupt time. */
struct timespec owfp_timespec_of_interrupt(int64_t t);

#endif
