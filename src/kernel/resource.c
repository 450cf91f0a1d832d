/*
 * Executive resources (ERESOURCE): reader/writer locks, recursive for every
 * owner. The ERESOURCE the driver embeds holds a pointer to openwfp's state
 * (owners, waiter counts, a host mutex and condition variable), which
 * ExInitializeResourceLite allocates and ExDeleteResourceLite frees, so a
 * resource never deleted is a leak the host can report.
 *
 * Exclusive waiters hold back threads that do not hold the resource yet
 * (ExAcquireResourceSharedLite), so writers are not starved; shared owners
 * get in again at once.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "common/alloc.h"
#include "kernel/kernel.h"

#define RESOURCE_MAGIC 0x45525352u
#define FIRST_OWNERS 4

struct owner {
    ERESOURCE_THREAD thread;
    ULONG count;
};

struct _OWFP_RESOURCE {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* an owner let go */
    ERESOURCE_THREAD exclusive;
    ULONG exclusive_count;
    struct owner *shared;
    ULONG nshared, cap;
    ULONG shared_waiters, exclusive_waiters;
};

enum access { EXCLUSIVE, SHARED, SHARED_STARVE_EXCLUSIVE, SHARED_WAIT_FOR_EXCLUSIVE };
enum grant { GRANTED, BUSY, SELF_DEADLOCK, NO_MEMORY };

static atomic_ulong live;

unsigned long owfp_resources_live(void)
{
    return atomic_load(&live);
}

static struct _OWFP_RESOURCE *state_of(PERESOURCE r, const char *api)
{
    if (r && r->OwfpMagic == RESOURCE_MAGIC && r->OwfpState)
        return r->OwfpState;
    owfp_kernel_finding("lock violation: %s on an ERESOURCE that is not initialized", api);
    return NULL;
}

static struct owner *find_shared(struct _OWFP_RESOURCE *s, ERESOURCE_THREAD t)
{
    for (ULONG i = 0; i < s->nshared; i++)
        if (s->shared[i].thread == t)
            return &s->shared[i];
    return NULL;
}

static enum grant add_shared(struct _OWFP_RESOURCE *s, ERESOURCE_THREAD t)
{
    if (s->nshared == s->cap) {
        struct owner *v = owfp_realloc(s->shared, (size_t)s->cap * 2 * sizeof(*v));
        if (!v)
            return NO_MEMORY;
        s->shared = v;
        s->cap *= 2;
    }
    s->shared[s->nshared++] = (struct owner){t, 1};
    return GRANTED;
}

/* Under s->mu. */
static enum grant try_grant(struct _OWFP_RESOURCE *s, enum access a, ERESOURCE_THREAD me)
{
    if (s->exclusive == me) {
        s->exclusive_count++;
        return GRANTED;
    }
    struct owner *mine = find_shared(s, me);
    if (a == EXCLUSIVE) {
        if (mine)
            return SELF_DEADLOCK;
        if (s->exclusive || s->nshared)
            return BUSY;
        s->exclusive = me;
        s->exclusive_count = 1;
        return GRANTED;
    }
    if (s->exclusive)
        return BUSY;
    bool yield = a == SHARED_WAIT_FOR_EXCLUSIVE || (a == SHARED && !mine);
    if (yield && s->exclusive_waiters)
        return BUSY;
    if (mine) {
        mine->count++;
        return GRANTED;
    }
    return add_shared(s, me);
}

static BOOLEAN acquire(PERESOURCE r, enum access a, BOOLEAN wait, const char *api)
{
    struct _OWFP_RESOURCE *s = state_of(r, api);
    if (!s)
        return FALSE;
    /* Above APC_LEVEL the thread must not wait: the call only tries. */
    if (!owfp_irql_check_max(APC_LEVEL, api))
        wait = FALSE;
    else if (!KeAreApcsDisabled())
        owfp_kernel_finding("lock violation: %s with normal kernel APCs enabled (call "
                            "KeEnterCriticalRegion first)",
                            api);
    ERESOURCE_THREAD me = ExGetCurrentResourceThread();
    pthread_mutex_lock(&s->mu);
    enum grant g;
    while ((g = try_grant(s, a, me)) == BUSY && wait) {
        ULONG *waiters = a == EXCLUSIVE ? &s->exclusive_waiters : &s->shared_waiters;
        ++*waiters;
        pthread_cond_wait(&s->changed, &s->mu);
        --*waiters;
    }
    pthread_mutex_unlock(&s->mu);
    if (g == SELF_DEADLOCK)
        owfp_kernel_finding("lock violation: %s by a thread that holds the resource shared "
                            "(a deadlock on Windows)",
                            api);
    else if (g == NO_MEMORY)
        owfp_kernel_finding("%s: out of memory for another shared owner", api);
    return g == GRANTED;
}

static void release_for(PERESOURCE r, ERESOURCE_THREAD t, const char *api)
{
    owfp_irql_check_max(DISPATCH_LEVEL, api);
    struct _OWFP_RESOURCE *s = state_of(r, api);
    if (!s)
        return;
    bool held = true;
    pthread_mutex_lock(&s->mu);
    struct owner *o;
    if (s->exclusive == t) {
        if (--s->exclusive_count == 0) {
            s->exclusive = 0;
            pthread_cond_broadcast(&s->changed);
        }
    } else if ((o = find_shared(s, t))) {
        if (--o->count == 0) {
            *o = s->shared[--s->nshared];
            if (s->nshared == 0) /* only exclusive waiters wait for sharers */
                pthread_cond_broadcast(&s->changed);
        }
    } else {
        held = false;
    }
    pthread_mutex_unlock(&s->mu);
    if (!held)
        owfp_kernel_finding("lock violation: %s on a resource the thread does not hold", api);
}

static void reset(struct _OWFP_RESOURCE *s)
{
    s->exclusive = 0;
    s->exclusive_count = 0;
    s->nshared = 0;
}

NTSTATUS NTAPI ExInitializeResourceLite(PERESOURCE Resource)
{
    owfp_irql_check_max(DISPATCH_LEVEL, "ExInitializeResourceLite");
    memset(Resource, 0, sizeof(*Resource));
    struct _OWFP_RESOURCE *s = owfp_calloc(1, sizeof(*s));
    struct owner *owners = owfp_calloc(FIRST_OWNERS, sizeof(*owners));
    if (!s || !owners) {
        owfp_free(s);
        owfp_free(owners);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->changed, NULL);
    s->shared = owners;
    s->cap = FIRST_OWNERS;
    InitializeListHead(&Resource->SystemResourcesList);
    Resource->OwfpState = s;
    Resource->OwfpMagic = RESOURCE_MAGIC;
    atomic_fetch_add(&live, 1);
    return STATUS_SUCCESS;
}

/* Held or waited for: refused, since a waiter would wake in freed memory. */
static bool busy(struct _OWFP_RESOURCE *s, const char *api)
{
    pthread_mutex_lock(&s->mu);
    bool b = s->exclusive || s->nshared || s->shared_waiters || s->exclusive_waiters;
    pthread_mutex_unlock(&s->mu);
    if (b)
        owfp_kernel_finding("lock violation: %s on a resource that is held or waited for", api);
    return b;
}

NTSTATUS NTAPI ExReinitializeResourceLite(PERESOURCE Resource)
{
    if (!Resource || Resource->OwfpMagic != RESOURCE_MAGIC || !Resource->OwfpState)
        return ExInitializeResourceLite(Resource);
    if (busy(Resource->OwfpState, "ExReinitializeResourceLite"))
        return STATUS_INVALID_DEVICE_STATE;
    reset(Resource->OwfpState);
    return STATUS_SUCCESS;
}

NTSTATUS NTAPI ExDeleteResourceLite(PERESOURCE Resource)
{
    owfp_irql_check_max(APC_LEVEL, "ExDeleteResourceLite");
    struct _OWFP_RESOURCE *s = state_of(Resource, "ExDeleteResourceLite");
    if (!s)
        return STATUS_INVALID_PARAMETER;
    if (busy(s, "ExDeleteResourceLite"))
        return STATUS_INVALID_DEVICE_STATE;
    Resource->OwfpMagic = 0;
    Resource->OwfpState = NULL;
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->mu);
    owfp_free(s->shared);
    owfp_free(s);
    atomic_fetch_sub(&live, 1);
    return STATUS_SUCCESS;
}

BOOLEAN NTAPI ExAcquireResourceExclusiveLite(PERESOURCE Resource, BOOLEAN Wait)
{
    return acquire(Resource, EXCLUSIVE, Wait, "ExAcquireResourceExclusiveLite");
}

BOOLEAN NTAPI ExAcquireResourceSharedLite(PERESOURCE Resource, BOOLEAN Wait)
{
    return acquire(Resource, SHARED, Wait, "ExAcquireResourceSharedLite");
}

BOOLEAN NTAPI ExAcquireSharedStarveExclusive(PERESOURCE Resource, BOOLEAN Wait)
{
    return acquire(Resource, SHARED_STARVE_EXCLUSIVE, Wait, "ExAcquireSharedStarveExclusive");
}

BOOLEAN NTAPI ExAcquireSharedWaitForExclusive(PERESOURCE Resource, BOOLEAN Wait)
{
    return acquire(Resource, SHARED_WAIT_FOR_EXCLUSIVE, Wait, "ExAcquireSharedWaitForExclusive");
}

VOID FASTCALL ExReleaseResourceLite(PERESOURCE Resource)
{
    release_for(Resource, ExGetCurrentResourceThread(), "ExReleaseResourceLite");
}

VOID NTAPI ExReleaseResourceForThreadLite(PERESOURCE Resource, ERESOURCE_THREAD ResourceThreadId)
{
    release_for(Resource, ResourceThreadId, "ExReleaseResourceForThreadLite");
}

ERESOURCE_THREAD NTAPI ExGetCurrentResourceThread(void)
{
    return (ERESOURCE_THREAD)owfp_thread_token();
}

VOID NTAPI ExConvertExclusiveToSharedLite(PERESOURCE Resource)
{
    const char *api = "ExConvertExclusiveToSharedLite";
    struct _OWFP_RESOURCE *s = state_of(Resource, api);
    if (!s)
        return;
    ERESOURCE_THREAD me = ExGetCurrentResourceThread();
    pthread_mutex_lock(&s->mu);
    bool owner = s->exclusive == me;
    /* The table always has room for the first owner. */
    if (owner) {
        s->shared[s->nshared++] = (struct owner){me, s->exclusive_count};
        s->exclusive = 0;
        s->exclusive_count = 0;
        pthread_cond_broadcast(&s->changed);
    }
    pthread_mutex_unlock(&s->mu);
    if (!owner)
        owfp_kernel_finding("lock violation: %s on a resource the thread does not hold "
                            "exclusively",
                            api);
}

BOOLEAN NTAPI ExIsResourceAcquiredExclusiveLite(PERESOURCE Resource)
{
    struct _OWFP_RESOURCE *s = state_of(Resource, "ExIsResourceAcquiredExclusiveLite");
    if (!s)
        return FALSE;
    pthread_mutex_lock(&s->mu);
    bool mine = s->exclusive == ExGetCurrentResourceThread();
    pthread_mutex_unlock(&s->mu);
    return mine;
}

ULONG NTAPI ExIsResourceAcquiredSharedLite(PERESOURCE Resource)
{
    struct _OWFP_RESOURCE *s = state_of(Resource, "ExIsResourceAcquiredSharedLite");
    if (!s)
        return 0;
    ERESOURCE_THREAD me = ExGetCurrentResourceThread();
    pthread_mutex_lock(&s->mu);
    struct owner *o = find_shared(s, me);
    ULONG n = s->exclusive == me ? s->exclusive_count : o ? o->count : 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static ULONG waiters(PERESOURCE Resource, bool exclusive, const char *api)
{
    struct _OWFP_RESOURCE *s = state_of(Resource, api);
    if (!s)
        return 0;
    pthread_mutex_lock(&s->mu);
    ULONG n = exclusive ? s->exclusive_waiters : s->shared_waiters;
    pthread_mutex_unlock(&s->mu);
    return n;
}

ULONG NTAPI ExGetExclusiveWaiterCount(PERESOURCE Resource)
{
    return waiters(Resource, true, "ExGetExclusiveWaiterCount");
}

ULONG NTAPI ExGetSharedWaiterCount(PERESOURCE Resource)
{
    return waiters(Resource, false, "ExGetSharedWaiterCount");
}

/* The combined calls: the return value is opaque, as documented. */
static PVOID enter_and_acquire(PERESOURCE r, enum access a, const char *api)
{
    KeEnterCriticalRegion();
    acquire(r, a, TRUE, api);
    return r;
}

PVOID NTAPI ExEnterCriticalRegionAndAcquireResourceExclusive(PERESOURCE Resource)
{
    return enter_and_acquire(Resource, EXCLUSIVE,
                             "ExEnterCriticalRegionAndAcquireResourceExclusive");
}

PVOID NTAPI ExEnterCriticalRegionAndAcquireResourceShared(PERESOURCE Resource)
{
    return enter_and_acquire(Resource, SHARED, "ExEnterCriticalRegionAndAcquireResourceShared");
}

PVOID NTAPI ExEnterCriticalRegionAndAcquireSharedWaitForExclusive(PERESOURCE Resource)
{
    return enter_and_acquire(Resource, SHARED_WAIT_FOR_EXCLUSIVE,
                             "ExEnterCriticalRegionAndAcquireSharedWaitForExclusive");
}

VOID FASTCALL ExReleaseResourceAndLeaveCriticalRegion(PERESOURCE Resource)
{
    release_for(Resource, ExGetCurrentResourceThread(), "ExReleaseResourceAndLeaveCriticalRegion");
    KeLeaveCriticalRegion();
}
