/*
 * System threads and the object references drivers take on them.
 *
 * A thread object is a dispatcher object (signaled when the thread ends, so
 * KeWaitForSingleObject on it waits for termination) with a reference count:
 * one for the handle PsCreateSystemThread returns, one for the running
 * thread, one per ObReferenceObjectByHandle / ObReferenceObject. Handles are
 * the object's address, checked against the live set before use, so a stale
 * or foreign handle is refused instead of dereferenced.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "common/alloc.h"
#include "kernel/kernel.h"

struct owfp_thread {
    DISPATCHER_HEADER header; /* first: waits see a dispatcher object */
    _Atomic long refs;
    _Atomic bool handle_open;
    PKSTART_ROUTINE start;
    PVOID context;
    KPRIORITY priority;
    NTSTATUS exit_status;
    struct owfp_thread *next; /* live set, under live_mu */
};

/* Object types are compared by address only. */
static struct _OBJECT_TYPE {
    int unused;
} thread_type, process_type, event_type;
static POBJECT_TYPE thread_type_ptr = &thread_type, process_type_ptr = &process_type,
                    event_type_ptr = &event_type;
POBJECT_TYPE *PsThreadType = &thread_type_ptr;
POBJECT_TYPE *PsProcessType = &process_type_ptr;
POBJECT_TYPE *ExEventObjectType = &event_type_ptr;

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static struct owfp_thread *live;
static atomic_ulong running;
static _Thread_local struct owfp_thread *self;

/* live_mu held. Compares addresses only: `t` may be any handle. */
static bool live_locked(const struct owfp_thread *t)
{
    for (const struct owfp_thread *p = live; p; p = p->next)
        if (p == t)
            return true;
    return false;
}

static void unlink_locked(struct owfp_thread *t)
{
    for (struct owfp_thread **p = &live; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            return;
        }
}

static bool is_live(const struct owfp_thread *t)
{
    pthread_mutex_lock(&live_mu);
    bool found = live_locked(t);
    pthread_mutex_unlock(&live_mu);
    return found;
}

/* The last reference is dropped under live_mu, so a concurrent lookup by
 * handle cannot revive an object that is being freed. */
static void put(struct owfp_thread *t)
{
    pthread_mutex_lock(&live_mu);
    bool last = atomic_fetch_sub(&t->refs, 1) == 1;
    if (last)
        unlink_locked(t);
    pthread_mutex_unlock(&live_mu);
    if (last)
        owfp_free(t);
}

bool owfp_start_thread(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    bool ok = pthread_create(&t, &attr, fn, arg) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}

static void finish(void *arg)
{
    struct owfp_thread *t = arg;
    /* Not running any more before anyone waiting on the object wakes, so a
     * host that waited can check owfp_system_threads_running() at once. */
    atomic_fetch_sub(&running, 1);
    owfp_dispatcher_signal(&t->header);
    if (owfp_irql != PASSIVE_LEVEL)
        owfp_kernel_finding("IRQL violation: system thread exited at %s",
                            owfp_irql_name(owfp_irql));
    self = NULL;
    put(t);
}

static void *trampoline(void *arg)
{
    struct owfp_thread *t = arg;
    self = t;
    owfp_irql = PASSIVE_LEVEL;
    /* PsTerminateSystemThread leaves through pthread_exit; the cleanup
     * handler makes both exits end the same way. */
    pthread_cleanup_push(finish, t);
    t->start(t->context);
    pthread_cleanup_pop(1);
    return NULL;
}

NTSTATUS NTAPI PsCreateSystemThread(PHANDLE ThreadHandle, ULONG DesiredAccess,
                                    POBJECT_ATTRIBUTES ObjectAttributes, HANDLE ProcessHandle,
                                    PCLIENT_ID ClientId, PKSTART_ROUTINE StartRoutine,
                                    PVOID StartContext)
{
    (void)DesiredAccess;
    (void)ObjectAttributes;
    (void)ProcessHandle;
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "PsCreateSystemThread"))
        return STATUS_INVALID_DEVICE_STATE;
    if (!ThreadHandle || !StartRoutine)
        return STATUS_INVALID_PARAMETER;
    struct owfp_thread *t = owfp_calloc(1, sizeof(*t));
    if (!t)
        return STATUS_INSUFFICIENT_RESOURCES;
    t->header.Type = ThreadObject;
    atomic_init(&t->refs, 2); /* the handle and the running thread */
    atomic_init(&t->handle_open, true);
    t->start = StartRoutine;
    t->context = StartContext;
    t->priority = 8;
    pthread_mutex_lock(&live_mu);
    t->next = live;
    live = t;
    pthread_mutex_unlock(&live_mu);
    atomic_fetch_add(&running, 1);

    /* Nobody joins: the end of the thread is observed through its object. */
    if (!owfp_start_thread(trampoline, t)) {
        atomic_fetch_sub(&running, 1);
        pthread_mutex_lock(&live_mu);
        unlink_locked(t);
        pthread_mutex_unlock(&live_mu);
        owfp_free(t);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    if (ClientId) {
        ClientId->UniqueProcess = (HANDLE)(intptr_t)getpid();
        ClientId->UniqueThread = (HANDLE)t;
    }
    *ThreadHandle = (HANDLE)t;
    return STATUS_SUCCESS;
}

NTSTATUS NTAPI PsTerminateSystemThread(NTSTATUS ExitStatus)
{
    if (!self) {
        owfp_kernel_finding("PsTerminateSystemThread outside a system thread");
        return STATUS_INVALID_PARAMETER;
    }
    self->exit_status = ExitStatus;
    pthread_exit(NULL);
}

PETHREAD NTAPI PsGetCurrentThread(void)
{
    return (PETHREAD)self;
}

PKTHREAD NTAPI KeGetCurrentThread(void)
{
    return (PKTHREAD)self;
}

HANDLE NTAPI PsGetCurrentThreadId(void)
{
    return (HANDLE)owfp_thread_token();
}

HANDLE NTAPI PsGetCurrentProcessId(void)
{
    return (HANDLE)(intptr_t)getpid();
}

BOOLEAN NTAPI PsIsSystemThread(PETHREAD Thread)
{
    return Thread && is_live((struct owfp_thread *)Thread);
}

KPRIORITY NTAPI KeSetPriorityThread(PKTHREAD Thread, KPRIORITY Priority)
{
    /* Recorded only: the host's scheduler decides. */
    struct owfp_thread *t = (struct owfp_thread *)Thread;
    if (!t || !is_live(t))
        return 0;
    KPRIORITY old = t->priority;
    t->priority = Priority;
    return old;
}

LONG NTAPI KeSetBasePriorityThread(PKTHREAD Thread, LONG Increment)
{
    (void)Thread;
    (void)Increment;
    return 0;
}

NTSTATUS NTAPI ObReferenceObjectByHandle(HANDLE Handle, ACCESS_MASK DesiredAccess,
                                         POBJECT_TYPE ObjectType, KPROCESSOR_MODE AccessMode,
                                         PVOID *Object,
                                         POBJECT_HANDLE_INFORMATION HandleInformation)
{
    (void)AccessMode;
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "ObReferenceObjectByHandle"))
        return STATUS_INVALID_DEVICE_STATE;
    if (!Object)
        return STATUS_INVALID_PARAMETER;
    *Object = NULL;
    struct owfp_thread *t = (struct owfp_thread *)Handle;
    if (Handle == NtCurrentThread())
        t = self;
    pthread_mutex_lock(&live_mu);
    bool ok = live_locked(t) && (Handle == NtCurrentThread() || atomic_load(&t->handle_open));
    if (ok)
        atomic_fetch_add(&t->refs, 1);
    pthread_mutex_unlock(&live_mu);
    if (!ok)
        return STATUS_INVALID_HANDLE;
    if (ObjectType && ObjectType != *PsThreadType) {
        put(t);
        return STATUS_OBJECT_TYPE_MISMATCH;
    }
    if (HandleInformation) {
        HandleInformation->HandleAttributes = OBJ_KERNEL_HANDLE;
        HandleInformation->GrantedAccess = DesiredAccess;
    }
    *Object = t;
    return STATUS_SUCCESS;
}

LONG_PTR FASTCALL ObfReferenceObject(PVOID Object)
{
    struct owfp_thread *t = Object;
    if (!t || !is_live(t)) {
        owfp_kernel_finding("ObReferenceObject on an object that is not live");
        return 0;
    }
    return atomic_fetch_add(&t->refs, 1) + 1;
}

LONG_PTR FASTCALL ObfDereferenceObject(PVOID Object)
{
    struct owfp_thread *t = Object;
    if (!t || !is_live(t)) {
        owfp_kernel_finding("ObDereferenceObject on an object that is not live");
        return 0;
    }
    long left = atomic_load(&t->refs) - 1;
    put(t);
    return left;
}

NTSTATUS NTAPI ZwClose(HANDLE Handle)
{
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "ZwClose"))
        return STATUS_INVALID_DEVICE_STATE;
    NTSTATUS reg_status;
    if (owfp_registry_close(Handle, &reg_status)) /* a registry key (registry.c) */
        return reg_status;
    struct owfp_thread *t = (struct owfp_thread *)Handle;
    pthread_mutex_lock(&live_mu);
    bool was_open = live_locked(t) && atomic_exchange(&t->handle_open, false);
    pthread_mutex_unlock(&live_mu);
    if (!was_open)
        return STATUS_INVALID_HANDLE;
    put(t);
    return STATUS_SUCCESS;
}

NTSTATUS NTAPI NtClose(HANDLE Handle)
{
    return ZwClose(Handle);
}

unsigned long owfp_system_threads_running(void)
{
    return atomic_load(&running);
}
