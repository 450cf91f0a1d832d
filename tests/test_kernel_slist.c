/*
 * Interlocked singly linked lists (SLIST): LIFO order, depth, flush, the Ex
 * forms, alignment findings, and pushes and pops from several threads at
 * once losing or duplicating nothing. Built for the ThreadSanitizer run too.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <ntddk.h>
#include <openwfp/kernel.h>

struct item {
    SLIST_ENTRY link; /* first, as drivers usually put it */
    int value;
    LONG volatile popped;
};

static int quiet_setup(void **state)
{
    (void)state;
    owfp_kernel_set_quiet(true);
    return 0;
}

static struct item *item_of(PSLIST_ENTRY e)
{
    return e ? CONTAINING_RECORD(e, struct item, link) : NULL;
}

static void test_slist_lifo_depth_and_flush(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    SLIST_HEADER head;
    InitializeSListHead(&head);
    assert_int_equal(QueryDepthSList(&head), 0);
    assert_null(InterlockedPopEntrySList(&head));
    assert_null(InterlockedFlushSList(&head));
    struct item items[3];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 3; i++) {
        items[i].value = i;
        PSLIST_ENTRY prev = InterlockedPushEntrySList(&head, &items[i].link);
        assert_ptr_equal(prev, i ? &items[i - 1].link : NULL);
        assert_int_equal(QueryDepthSList(&head), i + 1);
    }
    assert_ptr_equal(RtlFirstEntrySList(&head), &items[2].link);
    assert_int_equal(item_of(InterlockedPopEntrySList(&head))->value, 2);
    assert_int_equal(ExQueryDepthSList(&head), 2);
    /* Flush hands back the chain, newest first, and empties the list. */
    PSLIST_ENTRY chain = InterlockedFlushSList(&head);
    assert_int_equal(item_of(chain)->value, 1);
    assert_int_equal(item_of(chain->Next)->value, 0);
    assert_null(chain->Next->Next);
    assert_int_equal(QueryDepthSList(&head), 0);
    assert_null(RtlFirstEntrySList(&head));

    /* The Ex forms ignore their lock. */
    KSPIN_LOCK unused;
    KeInitializeSpinLock(&unused);
    ExInitializeSListHead(&head);
    ExInterlockedPushEntrySList(&head, &items[0].link, &unused);
    ExInterlockedPushEntrySList(&head, &items[1].link, &unused);
    assert_int_equal(item_of(ExInterlockedPopEntrySList(&head, &unused))->value, 1);
    assert_int_equal(item_of(ExInterlockedFlushSList(&head))->value, 0);
    assert_int_equal(unused, 0);
    assert_int_equal(owfp_kernel_findings(), 0);
}

static void test_slist_misaligned_entry_is_refused(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    SLIST_HEADER head;
    InitializeSListHead(&head);
    _Alignas(16) unsigned char raw[64];
    PSLIST_ENTRY odd = (PSLIST_ENTRY)(void *)(raw + 8);
    assert_null(InterlockedPushEntrySList(&head, odd));
    assert_int_equal(QueryDepthSList(&head), 0);
    assert_int_equal(owfp_kernel_findings(), 1);
    char msg[128];
    owfp_kernel_last_finding(msg, sizeof(msg));
    assert_string_equal(msg, "SLIST violation: InterlockedPushEntrySList with an entry that is "
                             "not 16-byte aligned");
    owfp_kernel_findings_reset();
}

#define THREADS 4
#define PER_THREAD 5000

static SLIST_HEADER shared_head;
static struct item pool_items[THREADS][PER_THREAD];
static LONG volatile duplicates;

/* Pushes its own items and pops whatever is there, many times over. */
static void *churn(void *arg)
{
    struct item *mine = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        InterlockedPushEntrySList(&shared_head, &mine[i].link);
        if (i % 2) {
            struct item *it = item_of(InterlockedPopEntrySList(&shared_head));
            if (!it)
                continue;
            /* Popped by two threads at once would count 2 here. */
            if (InterlockedIncrement(&it->popped) != 1)
                InterlockedIncrement(&duplicates);
            InterlockedExchange(&it->popped, 0);
            InterlockedPushEntrySList(&shared_head, &it->link); /* back in */
        }
    }
    return NULL;
}

static void test_slist_concurrent_push_pop(void **state)
{
    (void)state;
    InitializeSListHead(&shared_head);
    memset(pool_items, 0, sizeof(pool_items));
    duplicates = 0;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, churn, pool_items[i]);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(duplicates, 0);
    assert_int_equal(QueryDepthSList(&shared_head), THREADS * PER_THREAD % 65536);
    /* Every item exactly once. */
    unsigned long seen = 0;
    for (PSLIST_ENTRY e = InterlockedFlushSList(&shared_head); e; e = e->Next) {
        struct item *it = item_of(e);
        assert_int_equal(InterlockedIncrement(&it->popped), 1);
        seen++;
    }
    assert_int_equal(seen, THREADS * PER_THREAD);
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < PER_THREAD; j++)
            assert_int_equal(pool_items[i][j].popped, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slist_lifo_depth_and_flush),
        cmocka_unit_test(test_slist_misaligned_entry_is_refused),
        cmocka_unit_test(test_slist_concurrent_push_pop),
    };
    return cmocka_run_group_tests(tests, quiet_setup, NULL);
}
