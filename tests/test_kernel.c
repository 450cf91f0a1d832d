/*
 * The kernel API layer (src/kernel), single-threaded parts: IRQL and its
 * misuse findings, spin locks, pool and tag tracking, lookaside lists, lists,
 * interlocked operations, Rtl memory/string helpers and the IP string
 * helpers, each against its documented behaviour.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <ip2string.h>
#include <ntddk.h>
#include <openwfp/kernel.h>
#include <ws2ipdef.h>

static int quiet_setup(void **state)
{
    (void)state;
    owfp_kernel_set_quiet(true);
    owfp_kernel_findings_reset();
    return 0;
}

static bool last_finding_has(const char *text)
{
    char buf[256];
    owfp_kernel_last_finding(buf, sizeof(buf));
    return strstr(buf, text) != NULL;
}

/* ---- IRQL ------------------------------------------------------------------ */

static void test_irql_raise_lower(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    KIRQL old;
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    assert_int_equal(old, PASSIVE_LEVEL);
    assert_int_equal(KeGetCurrentIrql(), DISPATCH_LEVEL);
    KeLowerIrql(old);
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    old = KeRaiseIrqlToDpcLevel();
    assert_int_equal(KeGetCurrentIrql(), DISPATCH_LEVEL);
    KeLowerIrql(old);
    assert_int_equal(owfp_kernel_findings(), 0);
}

static void test_irql_misuse_findings(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    /* Lowering above the current level: a finding, the level is kept. */
    KeLowerIrql(DISPATCH_LEVEL);
    assert_int_equal(owfp_kernel_findings(), 1);
    assert_true(last_finding_has("KeLowerIrql"));
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);

    KIRQL old;
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    /* Raising to a lower level. */
    KIRQL dummy;
    KeRaiseIrql(APC_LEVEL, &dummy);
    assert_int_equal(owfp_kernel_findings(), 2);
    KeLowerIrql(PASSIVE_LEVEL);

    /* PASSIVE-only and ≤ APC calls at DISPATCH_LEVEL. */
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    LARGE_INTEGER t = {.QuadPart = -10000000}; /* 1 s: must not sleep */
    assert_int_equal(KeDelayExecutionThread(KernelMode, FALSE, &t), STATUS_SUCCESS);
    assert_true(last_finding_has("IRQL violation: KeDelayExecutionThread at DISPATCH_LEVEL"));
    HANDLE h;
    assert_int_equal(PsCreateSystemThread(&h, THREAD_ALL_ACCESS, NULL, NULL, NULL, NULL, NULL),
                     STATUS_INVALID_DEVICE_STATE);
    assert_true(last_finding_has("PsCreateSystemThread at DISPATCH_LEVEL"));
    void *p = ExAllocatePool2(POOL_FLAG_PAGED, 8, 'tseT');
    assert_true(last_finding_has("POOL_FLAG_PAGED"));
    ExFreePoolWithTag(p, 'tseT');
    assert_int_equal(owfp_kernel_findings(), 5);
    KeLowerIrql(old);
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    owfp_kernel_findings_reset();
    assert_int_equal(owfp_kernel_findings(), 0);
}

/* ---- spin locks ------------------------------------------------------------ */

static void test_spinlock_raise_restore(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KSPIN_LOCK lock;
    KeInitializeSpinLock(&lock);
    assert_true(KeTestSpinLock(&lock));
    KIRQL old;
    KeAcquireSpinLock(&lock, &old);
    assert_int_equal(old, PASSIVE_LEVEL);
    assert_int_equal(KeGetCurrentIrql(), DISPATCH_LEVEL);
    assert_false(KeTestSpinLock(&lock));
    assert_false(KeTryToAcquireSpinLockAtDpcLevel(&lock));
    KeReleaseSpinLock(&lock, old);
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    assert_true(KeTestSpinLock(&lock));

    /* Nested at DISPATCH: the inner acquire keeps DISPATCH_LEVEL. */
    KSPIN_LOCK inner;
    KeInitializeSpinLock(&inner);
    KeAcquireSpinLock(&lock, &old);
    KIRQL old2;
    KeAcquireSpinLock(&inner, &old2);
    assert_int_equal(old2, DISPATCH_LEVEL);
    KeReleaseSpinLock(&inner, old2);
    assert_int_equal(KeGetCurrentIrql(), DISPATCH_LEVEL);
    KeAcquireSpinLockAtDpcLevel(&inner);
    KeReleaseSpinLockFromDpcLevel(&inner);
    assert_true(KeTryToAcquireSpinLockAtDpcLevel(&inner));
    KeReleaseSpinLockFromDpcLevel(&inner);
    KeReleaseSpinLock(&lock, old);
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    assert_int_equal(owfp_kernel_findings(), 0);
}

static void test_spinlock_queued(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KSPIN_LOCK lock;
    KeInitializeSpinLock(&lock);
    KLOCK_QUEUE_HANDLE h;
    KeAcquireInStackQueuedSpinLock(&lock, &h);
    assert_int_equal(KeGetCurrentIrql(), DISPATCH_LEVEL);
    assert_int_equal(h.OldIrql, PASSIVE_LEVEL);
    assert_false(KeTestSpinLock(&lock));
    KeReleaseInStackQueuedSpinLock(&h);
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
    assert_true(KeTestSpinLock(&lock));

    KIRQL old = KeRaiseIrqlToDpcLevel();
    KeAcquireInStackQueuedSpinLockAtDpcLevel(&lock, &h);
    assert_false(KeTestSpinLock(&lock));
    KeReleaseInStackQueuedSpinLockFromDpcLevel(&h);
    assert_int_equal(KeGetCurrentIrql(), DISPATCH_LEVEL);
    KeLowerIrql(old);
    assert_int_equal(owfp_kernel_findings(), 0);
}

static void test_spinlock_misuse(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    KSPIN_LOCK lock;
    KeInitializeSpinLock(&lock);
    /* Releasing a lock that is not held. */
    KeReleaseSpinLock(&lock, PASSIVE_LEVEL);
    assert_int_equal(owfp_kernel_findings(), 1);
    assert_true(last_finding_has("KeReleaseSpinLock on a spin lock that is not held"));
    /* Acquiring at DPC level from PASSIVE. */
    KeAcquireSpinLockAtDpcLevel(&lock);
    assert_int_equal(owfp_kernel_findings(), 2);
    /* Recursive acquire would deadlock on Windows; here it is a finding. */
    KIRQL old;
    KeAcquireSpinLock(&lock, &old);
    assert_int_equal(owfp_kernel_findings(), 3);
    assert_true(last_finding_has("already holds"));
    KeReleaseSpinLock(&lock, old);
    assert_true(KeTestSpinLock(&lock));
    assert_int_equal(KeGetCurrentIrql(), PASSIVE_LEVEL);
}

/* ---- pool ------------------------------------------------------------------ */

struct tag_seen {
    uint32_t tag;
    uint64_t count, bytes;
};

static void find_tag(uint32_t tag, uint64_t count, uint64_t bytes, void *ctx)
{
    struct tag_seen *s = ctx;
    if (tag == s->tag) {
        s->count = count;
        s->bytes = bytes;
    }
}

static struct tag_seen outstanding(uint32_t tag)
{
    struct tag_seen s = {tag, 0, 0};
    owfp_pool_outstanding(find_tag, &s);
    return s;
}

static void test_pool_zeroing_and_tags(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    const ULONG tag = '1gaT';
    unsigned char *a = ExAllocatePool2(POOL_FLAG_NON_PAGED, 100, tag);
    assert_non_null(a);
    for (int i = 0; i < 100; i++)
        assert_int_equal(a[i], 0);
    assert_int_equal((uintptr_t)a % MEMORY_ALLOCATION_ALIGNMENT, 0);
    unsigned char *b = ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_CACHE_ALIGNED, 10, tag);
    assert_int_equal((uintptr_t)b % 64, 0);
    unsigned char *c = ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_UNINITIALIZED, 5, tag);
    assert_non_null(c);
    unsigned char *z = ExAllocatePoolZero(NonPagedPoolNx, 33, tag);
    for (int i = 0; i < 33; i++)
        assert_int_equal(z[i], 0);
    struct tag_seen s = outstanding(tag);
    assert_int_equal(s.count, 4);
    assert_int_equal(s.bytes, 100 + 10 + 5 + 33);
    char name[5];
    owfp_pool_tag_string(tag, name);
    assert_string_equal(name, "Tag1");

    ExFreePoolWithTag(a, tag);
    ExFreePool(b);
    ExFreePoolWithTag(c, tag);
    ExFreePoolWithTag(z, tag);
    s = outstanding(tag);
    assert_int_equal(s.count, 0);
    assert_int_equal(owfp_kernel_findings(), 0);

    /* ExAllocatePool tags 'None'; ExAllocatePoolWithTag does not zero but tracks. */
    void *n = ExAllocatePool(NonPagedPool, 7);
    assert_int_equal(outstanding('enoN').count, 1);
    ExFreePool(n);
    void *w = ExAllocatePoolWithTag(PagedPool, 9, 'xxxx');
    assert_int_equal(outstanding('xxxx').bytes, 9);
    ExFreePoolWithTag(w, 'xxxx');
}

static void test_pool_invalid_and_mismatch(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    /* No pool named, or two pools named. */
    assert_null(ExAllocatePool2(0, 8, 'bad1'));
    assert_null(ExAllocatePool2(POOL_FLAG_PAGED | POOL_FLAG_NON_PAGED, 8, 'bad1'));
    assert_int_equal(owfp_kernel_findings(), 2);
    void *p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, 'ogaT');
    ExFreePoolWithTag(p, 'rhtO');
    assert_int_equal(owfp_kernel_findings(), 3);
    assert_true(last_finding_has("tag 'Othr' on a block tagged 'Tago'"));
    assert_int_equal(outstanding('ogaT').count, 0);
    char stack[32] = {0};
    ExFreePool(stack + 16);
    assert_int_equal(owfp_kernel_findings(), 4);
}

/* ---- lookaside lists ----------------------------------------------------- */

static int custom_allocs, custom_frees;

static PVOID custom_alloc(POOL_TYPE type, SIZE_T size, ULONG tag)
{
    custom_allocs++;
    return ExAllocatePoolWithTag(type, size, tag);
}

static VOID custom_free(PVOID p)
{
    custom_frees++;
    ExFreePool(p);
}

static void test_lookaside_reuse(void **state)
{
    (void)state;
    NPAGED_LOOKASIDE_LIST la;
    ExInitializeNPagedLookasideList(&la, custom_alloc, custom_free, 0, 48, 'kooL', 0);
    void *a = ExAllocateFromNPagedLookasideList(&la);
    void *b = ExAllocateFromNPagedLookasideList(&la);
    assert_int_equal(custom_allocs, 2);
    ExFreeToNPagedLookasideList(&la, a);
    void *c = ExAllocateFromNPagedLookasideList(&la);
    assert_ptr_equal(c, a); /* reused, not allocated */
    assert_int_equal(custom_allocs, 2);
    assert_int_equal(la.L.TotalAllocates, 3);
    assert_int_equal(la.L.AllocateMisses, 2);
    ExFreeToNPagedLookasideList(&la, b);
    ExFreeToNPagedLookasideList(&la, c);
    assert_int_equal(outstanding('kooL').count, 2); /* held by the list */
    ExDeleteNPagedLookasideList(&la);
    assert_int_equal(custom_frees, 2);
    assert_int_equal(outstanding('kooL').count, 0);

    /* The Ex form with default allocator. */
    LOOKASIDE_LIST_EX ex;
    assert_int_equal(ExInitializeLookasideListEx(&ex, NULL, NULL, NonPagedPoolNx, 0, 4, 'xEaL', 0),
                     STATUS_SUCCESS);
    void *e1 = ExAllocateFromLookasideListEx(&ex);
    ExFreeToLookasideListEx(&ex, e1);
    void *e2 = ExAllocateFromLookasideListEx(&ex);
    assert_ptr_equal(e1, e2);
    ExFreeToLookasideListEx(&ex, e2);
    ExDeleteLookasideListEx(&ex);
    assert_int_equal(outstanding('xEaL').count, 0);
    assert_int_equal(ExInitializeLookasideListEx(&ex, NULL, NULL, NonPagedPool, 3, 8, 'xEaL', 0),
                     STATUS_INVALID_PARAMETER);
}

/* ---- lists ------------------------------------------------------------------ */

struct item {
    int v;
    LIST_ENTRY link;
    SINGLE_LIST_ENTRY slink;
};

static void test_lists(void **state)
{
    (void)state;
    LIST_ENTRY head;
    InitializeListHead(&head);
    assert_true(IsListEmpty(&head));
    assert_ptr_equal(RemoveHeadList(&head), &head); /* empty: the head itself */
    struct item it[4] = {{.v = 1}, {.v = 2}, {.v = 3}, {.v = 4}};
    InsertTailList(&head, &it[1].link);
    InsertTailList(&head, &it[2].link);
    InsertHeadList(&head, &it[0].link);
    InsertTailList(&head, &it[3].link);
    int expect = 1;
    for (PLIST_ENTRY e = head.Flink; e != &head; e = e->Flink)
        assert_int_equal(CONTAINING_RECORD(e, struct item, link)->v, expect++);
    assert_int_equal(CONTAINING_RECORD(RemoveTailList(&head), struct item, link)->v, 4);
    assert_int_equal(CONTAINING_RECORD(RemoveHeadList(&head), struct item, link)->v, 1);
    assert_false(RemoveEntryList(&it[1].link));
    assert_true(RemoveEntryList(&it[2].link)); /* now empty */
    assert_true(IsListEmpty(&head));
    assert_int_equal(FIELD_OFFSET(struct item, link), offsetof(struct item, link));

    SINGLE_LIST_ENTRY s = {NULL};
    assert_null(PopEntryList(&s));
    PushEntryList(&s, &it[0].slink);
    PushEntryList(&s, &it[1].slink);
    assert_int_equal(CONTAINING_RECORD(PopEntryList(&s), struct item, slink)->v, 2);
    assert_int_equal(CONTAINING_RECORD(PopEntryList(&s), struct item, slink)->v, 1);
    assert_null(PopEntryList(&s));

    KSPIN_LOCK lock;
    KeInitializeSpinLock(&lock);
    assert_null(ExInterlockedInsertTailList(&head, &it[0].link, &lock));
    assert_ptr_equal(ExInterlockedInsertTailList(&head, &it[1].link, &lock), &it[0].link);
    assert_ptr_equal(ExInterlockedRemoveHeadList(&head, &lock), &it[0].link);
    assert_ptr_equal(ExInterlockedRemoveHeadList(&head, &lock), &it[1].link);
    assert_null(ExInterlockedRemoveHeadList(&head, &lock));
    assert_int_equal(max(3, 7), 7);
    assert_int_equal(min(3, 7), 3);
}

/* ---- interlocked ------------------------------------------------------------ */

static void test_interlocked_long(void **state)
{
    (void)state;
    LONG volatile v = 0x7fffffff;
    assert_int_equal(InterlockedIncrement(&v), (LONG)0x80000000); /* 32-bit wrap */
    assert_int_equal(InterlockedDecrement(&v), 0x7fffffff);
    assert_int_equal(InterlockedExchange(&v, 5), 0x7fffffff);
    assert_int_equal(InterlockedExchangeAdd(&v, 3), 5);
    assert_int_equal(InterlockedAdd(&v, 2), 10);
    assert_int_equal(InterlockedCompareExchange(&v, 99, 1), 10); /* no match */
    assert_int_equal(v, 10);
    assert_int_equal(InterlockedCompareExchange(&v, 99, 10), 10);
    assert_int_equal(v, 99);
    assert_int_equal(InterlockedOr(&v, 0x100), 99);
    assert_int_equal(InterlockedAnd(&v, 0x100), 0x163);
    assert_int_equal(InterlockedXor(&v, 0x101), 0x100);
    assert_int_equal(v, 1);
    v = 0;
    assert_int_equal(InterlockedDecrement(&v), -1);
    assert_int_equal(sizeof(v), 4);

    LONG64 volatile w = INT64_MAX;
    assert_true(InterlockedIncrement64(&w) == INT64_MIN);
    assert_true(InterlockedExchangeAdd64(&w, 1) == INT64_MIN);
    assert_true(InterlockedCompareExchange64(&w, 7, INT64_MIN + 1) == INT64_MIN + 1);
    assert_true(w == 7);
    assert_true(InterlockedAdd64(&w, 3) == 10 && InterlockedExchange64(&w, 1) == 10);
    assert_true(InterlockedDecrement64(&w) == 0);

    int x, y;
    PVOID volatile p = &x;
    assert_ptr_equal(InterlockedExchangePointer(&p, &y), &x);
    assert_ptr_equal(InterlockedCompareExchangePointer(&p, &x, &x), &y); /* no match */
    assert_ptr_equal(InterlockedCompareExchangePointer(&p, &x, &y), &y);
    assert_ptr_equal(p, &x);
}

/* ---- Rtl ---------------------------------------------------------------------- */

static void test_rtl_memory(void **state)
{
    (void)state;
    char a[8] = "abcdefg", b[8] = "abcXefg";
    assert_int_equal(RtlCompareMemory(a, b, 8), 3);
    assert_int_equal(RtlCompareMemory(a, a, 8), 8);
    assert_int_equal(RtlCompareMemory(a, b, 0), 0);
    RtlZeroMemory(b, 3);
    assert_int_equal(b[0] | b[1] | b[2], 0);
    RtlFillMemory(b, 2, 'z');
    assert_int_equal(b[1], 'z');
    RtlCopyMemory(b, a, 8);
    assert_true(RtlEqualMemory(a, b, 8));
    RtlMoveMemory(b + 1, b, 4);
    assert_memory_equal(b, "aabcdfg", 8);
    RtlSecureZeroMemory(b, sizeof(b));
    assert_int_equal(b[7], 0);
    assert_int_equal(RtlUlongByteSwap(0x11223344u), 0x44332211u);
    assert_int_equal(RtlUshortByteSwap(0x1122), 0x2211);
}

static void test_rtl_unicode(void **state)
{
    (void)state;
    UNICODE_STRING u;
    RtlInitUnicodeString(&u, L"Device");
    assert_int_equal(u.Length, 12);
    assert_int_equal(u.MaximumLength, 14);
    RtlInitUnicodeString(&u, NULL);
    assert_int_equal(u.Length, 0);
    assert_null(u.Buffer);

    UNICODE_STRING a = RTL_CONSTANT_STRING(L"\\Device\\Foo");
    assert_int_equal(a.Length, 22);
    UNICODE_STRING b;
    RtlInitUnicodeString(&b, L"\\DEVICE\\foo");
    assert_false(RtlEqualUnicodeString(&a, &b, FALSE));
    assert_true(RtlEqualUnicodeString(&a, &b, TRUE));
    assert_true(RtlCompareUnicodeString(&a, &b, FALSE) > 0); /* 'e' > 'E' */
    assert_int_equal(RtlCompareUnicodeString(&a, &b, TRUE), 0);
    UNICODE_STRING pre = RTL_CONSTANT_STRING(L"\\device");
    assert_true(RtlPrefixUnicodeString(&pre, &a, TRUE));
    assert_true(RtlCompareUnicodeString(&pre, &a, TRUE) < 0); /* shorter first */

    WCHAR buf[6];
    UNICODE_STRING d = {0, sizeof(buf), buf};
    RtlCopyUnicodeString(&d, &a); /* truncated to 6 chars, no room for NUL */
    assert_int_equal(d.Length, 12);
    assert_memory_equal(buf, L"\\Devic", 12);
    WCHAR big[32];
    UNICODE_STRING e = {0, sizeof(big), big};
    RtlCopyUnicodeString(&e, &a);
    assert_int_equal(e.Length, 22);
    assert_int_equal(big[11], 0);
    RtlCopyUnicodeString(&e, NULL);
    assert_int_equal(e.Length, 0);

    ULONG v = 0;
    UNICODE_STRING n1 = RTL_CONSTANT_STRING(L"  -123");
    assert_int_equal(RtlUnicodeStringToInteger(&n1, 0, &v), STATUS_SUCCESS);
    assert_int_equal((LONG)v, -123);
    UNICODE_STRING n2 = RTL_CONSTANT_STRING(L"0x1F");
    assert_int_equal(RtlUnicodeStringToInteger(&n2, 0, &v), STATUS_SUCCESS);
    assert_int_equal(v, 31);
    UNICODE_STRING n3 = RTL_CONSTANT_STRING(L"777");
    assert_int_equal(RtlUnicodeStringToInteger(&n3, 8, &v), STATUS_SUCCESS);
    assert_int_equal(v, 511);
    assert_int_equal(RtlUnicodeStringToInteger(&n3, 7, &v), STATUS_INVALID_PARAMETER);
    assert_int_equal(RtlCharToInteger("42abc", 10, &v), STATUS_SUCCESS);
    assert_int_equal(v, 42);

    ANSI_STRING as;
    RtlInitAnsiString(&as, "abc");
    assert_int_equal(as.Length, 3);
    assert_int_equal(as.MaximumLength, 4);
}

/* ---- IP strings ------------------------------------------------------------ */

static void test_ip_strings(void **state)
{
    (void)state;
    IN_ADDR a4;
    a4.S_un.S_addr = RtlUlongByteSwap(0xC0A80001u); /* 192.168.0.1, network order */
    char s[IPV6_ADDRESS_STRING_BUFFER_SIZE];
    char *end = RtlIpv4AddressToStringA(&a4, s);
    assert_string_equal(s, "192.168.0.1");
    assert_ptr_equal(end, s + strlen(s));
    WCHAR w[IPV6_ADDRESS_STRING_BUFFER_SIZE];
    PWSTR wend = RtlIpv4AddressToStringW(&a4, w);
    assert_int_equal(wend - w, 11);
    assert_memory_equal(w, L"192.168.0.1", 12 * sizeof(WCHAR));

    struct {
        UCHAR b[16];
        const char *text;
    } v6[] = {
        {{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "2001:db8::1"},
        {{0}, "::"},
        {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "::1"},
        {{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, "2001:db8:0:1::1"},
        {{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1}, "2001:db8::1:0:0:1"},
        {{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "fe80::"},
        {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2}, "::ffff:10.0.0.2"},
        {{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6}, "2001:db8:1:2:3:4:5:6"},
    };
    for (size_t i = 0; i < ARRAYSIZE(v6); i++) {
        RtlIpv6AddressToStringA(v6[i].b, s);
        assert_string_equal(s, v6[i].text);
        UCHAR back[16];
        PCSTR term;
        assert_int_equal(RtlIpv6StringToAddressA(v6[i].text, &term, back), STATUS_SUCCESS);
        assert_memory_equal(back, v6[i].b, 16);
        assert_int_equal(*term, '\0');
    }
    RtlIpv6AddressToStringW(v6[0].b, w);
    assert_memory_equal(w, L"2001:db8::1", 12 * sizeof(WCHAR));

    UCHAR out[4];
    PCSTR term;
    assert_int_equal(RtlIpv4StringToAddressA("10.1.2.3:80", TRUE, &term, out), STATUS_SUCCESS);
    assert_memory_equal(out, "\x0a\x01\x02\x03", 4);
    assert_string_equal(term, ":80");
    assert_int_equal(RtlIpv4StringToAddressA("10.1.2", TRUE, &term, out),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(RtlIpv4StringToAddressA("256.1.2.3", TRUE, &term, out),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(RtlIpv4StringToAddressA("10.258", FALSE, &term, out), STATUS_SUCCESS);
    assert_memory_equal(out, "\x0a\x00\x01\x02", 4);
    assert_int_equal(RtlIpv4StringToAddressA("0x7f.1", FALSE, &term, out), STATUS_SUCCESS);
    assert_memory_equal(out, "\x7f\x00\x00\x01", 4);
    assert_int_equal(RtlIpv4StringToAddressA("010.0.0.1", FALSE, &term, out), STATUS_SUCCESS);
    assert_int_equal(out[0], 8);
    PCWSTR wterm;
    assert_int_equal(RtlIpv4StringToAddressW(L"127.0.0.1", TRUE, &wterm, out), STATUS_SUCCESS);
    assert_memory_equal(out, "\x7f\x00\x00\x01", 4);
    assert_int_equal(*wterm, 0);
    assert_int_equal(RtlIpv6StringToAddressA("1:::2", &term, out), STATUS_INVALID_PARAMETER);
    assert_int_equal(IPPROTO_TCP, 6);
    assert_int_equal(IPPROTO_UDP, 17);
    assert_int_equal(IPPROTO_ICMPV6, 58);
}

/* ---- time and processors -------------------------------------------------- */

static void test_time_and_processors(void **state)
{
    (void)state;
    LARGE_INTEGER t;
    KeQuerySystemTime(&t);
    /* After 2020-01-01 (132223104000000000) in the NT epoch. */
    assert_true(t.QuadPart > 132223104000000000LL);
    LARGE_INTEGER f;
    LARGE_INTEGER c1 = KeQueryPerformanceCounter(&f), c2 = KeQueryPerformanceCounter(NULL);
    assert_int_equal(f.QuadPart, 10000000);
    assert_true(c2.QuadPart >= c1.QuadPart);
    KAFFINITY aff;
    ULONG n = KeQueryActiveProcessorCount(&aff);
    assert_true(n >= 1);
    assert_true(aff != 0);
    assert_true(KeGetCurrentProcessorNumber() < n);
    PROCESSOR_NUMBER pn;
    assert_true(KeGetCurrentProcessorNumberEx(&pn) < n);
    assert_int_equal(pn.Group, 0);
    assert_int_equal(KeQueryActiveProcessorCountEx(ALL_PROCESSOR_GROUPS), n);
}

/* ---- devices -------------------------------------------------------------- */

static void test_devices(void **state)
{
    (void)state;
    DRIVER_OBJECT drv;
    memset(&drv, 0, sizeof(drv));
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\KernelTest");
    PDEVICE_OBJECT d1 = NULL, d2 = NULL, d3 = NULL;
    assert_int_equal(IoCreateDevice(&drv, 40, &name, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN,
                                    FALSE, &d1),
                     STATUS_SUCCESS);
    assert_ptr_equal(drv.DeviceObject, d1);
    assert_ptr_equal(d1->DriverObject, &drv);
    assert_non_null(d1->DeviceExtension);
    for (int i = 0; i < 40; i++)
        assert_int_equal(((UCHAR *)d1->DeviceExtension)[i], 0);
    assert_true(d1->Flags & DO_DEVICE_INITIALIZING);
    UNICODE_STRING same = RTL_CONSTANT_STRING(L"\\device\\kerneltest");
    assert_int_equal(IoCreateDevice(&drv, 0, &same, FILE_DEVICE_NETWORK, 0, FALSE, &d2),
                     STATUS_OBJECT_NAME_COLLISION);
    assert_null(d2);
    assert_int_equal(IoCreateDevice(&drv, 0, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &d3),
                     STATUS_SUCCESS);
    assert_ptr_equal(drv.DeviceObject, d3);
    assert_ptr_equal(d3->NextDevice, d1);
    assert_null(d3->DeviceExtension);
    IoDeleteDevice(d1);
    assert_ptr_equal(drv.DeviceObject, d3);
    assert_null(d3->NextDevice);
    IoDeleteDevice(d3);
    assert_null(drv.DeviceObject);
    assert_int_equal(IoCreateDevice(&drv, 0, &same, FILE_DEVICE_NETWORK, 0, FALSE, &d2),
                     STATUS_SUCCESS); /* the name is free again */
    IoDeleteDevice(d2);
    assert_int_equal(outstanding('veDO').count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_irql_raise_lower),
        cmocka_unit_test(test_irql_misuse_findings),
        cmocka_unit_test(test_spinlock_raise_restore),
        cmocka_unit_test(test_spinlock_queued),
        cmocka_unit_test(test_spinlock_misuse),
        cmocka_unit_test(test_pool_zeroing_and_tags),
        cmocka_unit_test(test_pool_invalid_and_mismatch),
        cmocka_unit_test(test_lookaside_reuse),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_interlocked_long),
        cmocka_unit_test(test_rtl_memory),
        cmocka_unit_test(test_rtl_unicode),
        cmocka_unit_test(test_ip_strings),
        cmocka_unit_test(test_time_and_processors),
        cmocka_unit_test(test_devices),
    };
    return cmocka_run_group_tests(tests, quiet_setup, NULL);
}
