#include "rcu.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

struct reader {
    _Atomic uint64_t active; /* epoch at entry, 0 when outside */
    unsigned depth;
    bool listed;
    struct reader *next, *prev;
};

static _Atomic uint64_t global_epoch = 1;
static pthread_mutex_t readers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct reader *readers;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static _Thread_local struct reader self;

static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;
static struct owfp_rcu_head *retired;
static unsigned long retired_count;
#define RECLAIM_BATCH 256

static void unlist(void *arg)
{
    struct reader *r = arg;
    pthread_mutex_lock(&readers_lock);
    if (r->prev)
        r->prev->next = r->next;
    else
        readers = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->listed = false;
    pthread_mutex_unlock(&readers_lock);
}

static void make_exit_key(void)
{
    pthread_key_create(&exit_key, unlist);
}

static void enlist(void)
{
    pthread_once(&exit_key_once, make_exit_key);
    pthread_mutex_lock(&readers_lock);
    self.prev = NULL;
    self.next = readers;
    if (readers)
        readers->prev = &self;
    readers = &self;
    self.listed = true;
    pthread_mutex_unlock(&readers_lock);
    /* The destructor unlists the thread's slot before its TLS goes away. */
    pthread_setspecific(exit_key, &self);
}

void owfp_rcu_read_lock(void)
{
    if (self.depth++ > 0)
        return;
    if (!self.listed)
        enlist();
    /* One full barrier: the fence orders the store before the section's
     * loads (a seq_cst store would add a second one). */
    atomic_store_explicit(&self.active, atomic_load(&global_epoch), memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
}

void owfp_rcu_read_unlock(void)
{
    if (--self.depth > 0)
        return;
    atomic_store_explicit(&self.active, 0, memory_order_release);
}

bool owfp_rcu_in_read(void)
{
    return self.depth > 0;
}

/* Smallest epoch of any reader inside a section, or UINT64_MAX. */
static uint64_t oldest_reader(void)
{
    uint64_t oldest = UINT64_MAX;
    pthread_mutex_lock(&readers_lock);
    for (struct reader *r = readers; r; r = r->next) {
        uint64_t a = atomic_load(&r->active);
        if (a && a < oldest)
            oldest = a;
    }
    pthread_mutex_unlock(&readers_lock);
    return oldest;
}

void owfp_rcu_synchronize(void)
{
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t target = atomic_fetch_add(&global_epoch, 1) + 1;
    pthread_mutex_lock(&readers_lock);
    for (struct reader *r = readers; r; r = r->next) {
        if (r == &self)
            continue;
        for (unsigned spins = 0;; spins++) {
            uint64_t a = atomic_load(&r->active);
            if (a == 0 || a >= target)
                break;
            if (spins > 64)
                sched_yield();
        }
    }
    pthread_mutex_unlock(&readers_lock);
}

static void release_safe(uint64_t safe_below)
{
    struct owfp_rcu_head *keep = NULL, *done = NULL;
    pthread_mutex_lock(&retired_lock);
    struct owfp_rcu_head *h = retired;
    retired = NULL;
    retired_count = 0;
    while (h) {
        struct owfp_rcu_head *next = h->next;
        if (h->epoch <= safe_below) {
            h->next = done;
            done = h;
        } else {
            h->next = keep;
            keep = h;
            retired_count++;
        }
        h = next;
    }
    while (keep) {
        struct owfp_rcu_head *next = keep->next;
        keep->next = retired;
        retired = keep;
        keep = next;
    }
    pthread_mutex_unlock(&retired_lock);
    while (done) {
        struct owfp_rcu_head *next = done->next;
        done->release(done);
        done = next;
    }
}

void owfp_rcu_retire(struct owfp_rcu_head *head, void (*release)(struct owfp_rcu_head *))
{
    /* Readers that entered before this increment may hold `head`; readers
     * that entered after cannot, since it was unpublished before. */
    atomic_thread_fence(memory_order_seq_cst);
    head->epoch = atomic_fetch_add(&global_epoch, 1) + 1;
    head->release = release;
    pthread_mutex_lock(&retired_lock);
    head->next = retired;
    retired = head;
    bool full = ++retired_count >= RECLAIM_BATCH;
    pthread_mutex_unlock(&retired_lock);
    if (full)
        owfp_rcu_reclaim(false);
}

void owfp_rcu_reclaim(bool wait)
{
    if (wait && !owfp_rcu_in_read()) {
        owfp_rcu_synchronize();
        release_safe(UINT64_MAX);
        return;
    }
    release_safe(oldest_reader());
}
