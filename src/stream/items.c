/* Stream items and queues; the one place stream bytes are ever copied. */
#include <pthread.h>
#include <string.h>

#include "common/alloc.h"
#include "stream.h"

struct owned {
    struct owfp_ref ref;
    uint8_t bytes[];
};

static void release_owned(struct owfp_ref *ref, NTSTATUS status)
{
    (void)status;
    owfp_free(ref);
}

/* Items come and go once per indication: each thread keeps a few spare
 * ones instead of going to the allocator every time. */
#define ITEM_CACHE_MAX 64

struct item_cache {
    struct owfp_item *head;
    unsigned count;
    bool registered; /* freed at thread exit */
};

static _Thread_local struct item_cache cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void drop_cache(void *arg)
{
    struct item_cache *c = arg;
    while (c->head) {
        struct owfp_item *next = c->head->next;
        owfp_free(c->head);
        c->head = next;
    }
    c->count = 0;
}

static void make_cache_key(void)
{
    pthread_key_create(&cache_key, drop_cache);
}

static struct owfp_item *cache_pop(void)
{
    struct owfp_item *it = cache.head;
    if (it) {
        cache.head = it->next;
        cache.count--;
        return it;
    }
    return owfp_malloc(sizeof(*it));
}

static void cache_push(struct owfp_item *it)
{
    if (cache.count >= ITEM_CACHE_MAX) {
        owfp_free(it);
        return;
    }
    if (!cache.registered) {
        pthread_once(&cache_once, make_cache_key);
        pthread_setspecific(cache_key, &cache);
        cache.registered = true;
    }
    it->next = cache.head;
    cache.head = it;
    cache.count++;
}

struct owfp_item *owfp_item_new(void)
{
    struct owfp_item *it = cache_pop();
    if (it)
        *it = (struct owfp_item){.skip_rank = OWFP_NO_SKIP};
    return it;
}

void owfp_item_free(struct owfp_item *it, NTSTATUS status)
{
    if (it->ref && --it->ref->refs == 0)
        it->ref->release(it->ref, status);
    cache_push(it);
}

struct owfp_item *owfp_item_take(void)
{
    return cache_pop();
}

void owfp_item_give(struct owfp_item *it)
{
    cache_push(it);
}

void owfp_item_cache_drop(void)
{
    drop_cache(&cache);
}

void owfp_queue_push(struct owfp_queue *q, struct owfp_item *it)
{
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->bytes += it->len;
}

struct owfp_item *owfp_queue_pop(struct owfp_queue *q)
{
    struct owfp_item *it = q->head;
    if (!it)
        return NULL;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    q->bytes -= it->len;
    it->next = NULL;
    return it;
}

void owfp_queue_append(struct owfp_queue *dst, struct owfp_queue *src)
{
    if (!src->head)
        return;
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    dst->bytes += src->bytes;
    *src = (struct owfp_queue){0};
}

void owfp_queue_clear(struct owfp_queue *q, NTSTATUS status)
{
    struct owfp_item *it;
    while ((it = owfp_queue_pop(q)))
        owfp_item_free(it, status);
}

bool owfp_item_split(struct owfp_item *it, size_t n)
{
    struct owfp_item *tail = owfp_item_new();
    if (!tail)
        return false;
    *tail = *it;
    tail->data = it->data + n;
    tail->len = it->len - n;
    if (tail->ref)
        tail->ref->refs++;
    it->len = n;
    it->next = tail;
    return true;
}

/* Held bytes must outlive the caller's buffer: one copy per queue, shared by
 * the queue's borrowed items. */
bool owfp_queue_own(struct owfp_queue *q)
{
    size_t need = 0;
    for (struct owfp_item *it = q->head; it; it = it->next)
        if (!it->ref)
            need += it->len;
    if (!need) {
        for (struct owfp_item *it = q->head; it; it = it->next)
            if (!it->ref)
                it->data = NULL; /* zero-length borrowed item: nothing to keep */
        return true;
    }
    struct owned *o = owfp_malloc(sizeof(*o) + need);
    if (!o)
        return false;
    o->ref = (struct owfp_ref){0, release_owned};
    uint8_t *p = o->bytes;
    for (struct owfp_item *it = q->head; it; it = it->next) {
        if (it->ref)
            continue;
        if (it->len) {
            memcpy(p, it->data, it->len);
            it->data = p;
            p += it->len;
        } else {
            it->data = NULL;
        }
        it->ref = &o->ref;
        o->ref.refs++;
    }
    return true;
}
