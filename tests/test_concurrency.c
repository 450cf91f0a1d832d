/*
 * Concurrency (spec R7, R8, F4, F6, M1, M2): real threads drive flows while
 * other threads register, unregister, change filters, associate and remove
 * flow contexts, and open and close sessions.
 *
 * Every test is bounded in time (loops stop after a fixed number of rounds
 * or a wall-clock budget, whichever comes first) and asserts only what must
 * hold for every interleaving. Callouts and worker threads never call cmocka
 * asserts (they would longjmp across threads); they count violations, and
 * the main thread asserts after joining. The file also runs under
 * ThreadSanitizer (-Dtsan_tests=true), so all state shared between threads is
 * atomic or handed over through thread creation/join.
 */
#include "harness.h"

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ALE4_ID FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4
#define STREAM4_ID FWPS_LAYER_STREAM_V4
#define ALE4 (&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4)

/* Longest any single wait in a test may take before it counts as a hang. */
#define HANG_MS 10000

/* ------------------------------------------------------------ utilities */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    assert_int_equal(pthread_create(t, NULL, fn, arg), 0);
}

static void join_thread(pthread_t t)
{
    assert_int_equal(pthread_join(t, NULL), 0);
}

/* Violations seen on any thread; the first message is kept. */
static atomic_int g_violations;
static atomic_flag g_violation_msg_taken;
static char g_violation_msg[256];

static void violation(const char *fmt, ...)
{
    atomic_fetch_add(&g_violations, 1);
    if (atomic_flag_test_and_set(&g_violation_msg_taken))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_violation_msg, sizeof(g_violation_msg), fmt, ap);
    va_end(ap);
}

static void assert_no_violations(void)
{
    int n = atomic_load(&g_violations);
    if (n)
        fail_msg("%d violation(s); first: %s", n, g_violation_msg);
}

/* For the main thread while other threads run: a failed cmocka assert
 * would leave them running into the teardown, so record and go on; the
 * test asserts no violations after joining. */
#define EXPECT_EQ(a, b)                                                                         \
    do {                                                                                        \
        long long a_ = (long long)(a), b_ = (long long)(b);                                     \
        if (a_ != b_)                                                                           \
            violation("line %d: %s is %lld, want %lld", __LINE__, #a, a_, b_);                  \
    } while (0)
#define EXPECT_TRUE(c)                                                                          \
    do {                                                                                        \
        if (!(c))                                                                               \
            violation("line %d: %s is false", __LINE__, #c);                                    \
    } while (0)

/* Waits until *v >= want; false after HANG_MS. */
static bool wait_at_least(atomic_int *v, int want)
{
    uint64_t deadline = now_ms() + HANG_MS;
    while (atomic_load(v) < want) {
        if (now_ms() > deadline)
            return false;
        sched_yield();
    }
    return true;
}

static void NTAPI noop_classify(const FWPS_INCOMING_VALUES0 *in,
                                const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                const FWPS_FILTER0 *filter, UINT64 flowContext,
                                FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)layerData;
    (void)filter;
    (void)flowContext;
    out->actionType = FWP_ACTION_CONTINUE;
}

static struct owfp_flow_params flow_params(unsigned n)
{
    return h_params4((uint16_t)(1024 + n % 60000), 80, OWFP_OUTBOUND);
}

static NTSTATUS callout_object_in(HANDLE session, const GUID *key, UINT32 *id)
{
    static WCHAR name[] = {'c', 0};
    FWPM_CALLOUT0 c;
    memset(&c, 0, sizeof(c));
    c.calloutKey = *key;
    c.displayData.name = name;
    c.applicableLayer = *ALE4;
    return FwpmCalloutAdd0(session, &c, NULL, id);
}

static NTSTATUS sublayer_in(HANDLE session, const GUID *key, uint16_t weight)
{
    static WCHAR name[] = {'s', 0};
    FWPM_SUBLAYER0 sl;
    memset(&sl, 0, sizeof(sl));
    sl.subLayerKey = *key;
    sl.displayData.name = name;
    sl.weight = weight;
    return FwpmSubLayerAdd0(session, &sl, NULL);
}

static NTSTATUS add_callout_filter(HANDLE session, const GUID *sublayer, uint32_t action,
                                   const GUID *callout, uint32_t flags, uint64_t context,
                                   UINT64 *id)
{
    struct h_filter_spec spec = {
        .layer = ALE4,
        .sublayer = sublayer,
        .action = action,
        .callout = callout,
        .flags = flags,
        .raw_context = context,
    };
    return h_filter_in(session, &spec, id);
}

/* A callout object for key n at ALE_V4 and one filter calling it with
 * `action` (universal sublayer); returns the key. */
static GUID callout_with_filter(uint32_t n, uint32_t action)
{
    GUID key = h_guid(n);
    assert_int_equal(h_callout_object(&key, ALE4), STATUS_SUCCESS);
    assert_int_equal(add_callout_filter(h_session, NULL, action, &key, 0, 0, NULL),
                     STATUS_SUCCESS);
    return key;
}

static void reset_common(void)
{
    atomic_store(&g_violations, 0);
    atomic_flag_clear(&g_violation_msg_taken);
    g_violation_msg[0] = 0;
}

/* ------------------------------------------------ R8: drain on unregister */

static atomic_int r8_ins_gone, r8_term_gone; /* set once unregister returned SUCCESS */
static atomic_uint r8_ins_id;
static atomic_int r8_classifies, r8_opens, r8_assoc_ok, r8_assoc_refused, r8_deletes;
static atomic_int r8_stop;
static _Atomic uint64_t r8_next_ctx;

static void NTAPI r8_ins_classify(const FWPS_INCOMING_VALUES0 *in,
                                  const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                  const FWPS_FILTER0 *filter, UINT64 flowContext,
                                  FWPS_CLASSIFY_OUT0 *out)
{
    (void)layerData;
    (void)filter;
    (void)flowContext;
    if (atomic_load(&r8_ins_gone))
        violation("R8: inspection classifyFn called after unregister returned SUCCESS");
    atomic_fetch_add(&r8_classifies, 1);
    if (FWPS_IS_METADATA_FIELD_PRESENT(meta, FWPS_METADATA_FIELD_FLOW_HANDLE)) {
        uint64_t ctx = atomic_fetch_add(&r8_next_ctx, 1);
        NTSTATUS st = FwpsFlowAssociateContext0(meta->flowHandle, in->layerId,
                                                atomic_load(&r8_ins_id), ctx);
        if (st == STATUS_SUCCESS)
            atomic_fetch_add(&r8_assoc_ok, 1);
        else if (st == STATUS_INVALID_DEVICE_STATE || /* draining after BUSY (Q3) */
                 st == STATUS_FWP_CALLOUT_NOT_FOUND)   /* unregister completing meanwhile */
            atomic_fetch_add(&r8_assoc_refused, 1);
        else
            violation("R8: associate returned 0x%08x", (unsigned)st);
    }
    sched_yield(); /* widen the window in which unregister must wait */
    out->actionType = FWP_ACTION_CONTINUE;
}

static NTSTATUS NTAPI r8_ins_notify(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                                    FWPS_FILTER0 *filter)
{
    (void)type;
    (void)key;
    (void)filter;
    if (atomic_load(&r8_ins_gone))
        violation("R8: inspection notifyFn called after unregister returned SUCCESS");
    return STATUS_SUCCESS;
}

static void NTAPI r8_ins_delete(UINT16 layerId, UINT32 calloutId, UINT64 ctx)
{
    (void)ctx;
    if (atomic_load(&r8_ins_gone))
        violation("R8: flowDeleteFn called after unregister returned SUCCESS");
    if (layerId != ALE4_ID || calloutId != atomic_load(&r8_ins_id))
        violation("R8: flowDeleteFn with layer %u callout %u", layerId, calloutId);
    atomic_fetch_add(&r8_deletes, 1);
}

static void NTAPI r8_term_classify(const FWPS_INCOMING_VALUES0 *in,
                                   const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                   const FWPS_FILTER0 *filter, UINT64 flowContext,
                                   FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)layerData;
    (void)filter;
    (void)flowContext;
    if (atomic_load(&r8_term_gone))
        violation("R8: terminating classifyFn called after unregister returned SUCCESS");
    atomic_fetch_add(&r8_classifies, 1);
    sched_yield();
    out->actionType = FWP_ACTION_PERMIT;
}

static NTSTATUS NTAPI r8_term_notify(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                                     FWPS_FILTER0 *filter)
{
    (void)type;
    (void)key;
    (void)filter;
    if (atomic_load(&r8_term_gone))
        violation("R8: terminating notifyFn called after unregister returned SUCCESS");
    return STATUS_SUCCESS;
}

/* Opens and closes flows, keeping a few open so contexts outlive classifies. */
static void *r8_flow_worker(void *arg)
{
    unsigned base = (unsigned)(uintptr_t)arg * 10000u;
    owfp_flow *ring[4] = {0};
    for (unsigned n = 0; !atomic_load(&r8_stop); n++) {
        unsigned slot = n % 4;
        if (ring[slot])
            owfp_flow_close(ring[slot]);
        ring[slot] = NULL;
        struct owfp_flow_params p = flow_params(base + n);
        enum owfp_flow_verdict v;
        NTSTATUS st = owfp_flow_open(h_engine, &p, &ring[slot], &v);
        if (st != STATUS_SUCCESS) {
            violation("R8: owfp_flow_open returned 0x%08x", (unsigned)st);
            ring[slot] = NULL;
            continue;
        }
        /* PERMIT_IF_CALLOUT_UNREGISTERED: permitted whether or not the
         * terminating callout is registered at this moment (R5). */
        if (v != OWFP_FLOW_PERMITTED)
            violation("R8: flow blocked");
        atomic_fetch_add(&r8_opens, 1);
    }
    for (unsigned i = 0; i < 4; i++)
        if (ring[i])
            owfp_flow_close(ring[i]);
    return NULL;
}

static NTSTATUS r8_register(const GUID *key, bool inspection, UINT32 *id)
{
    return inspection ? h_register0(key, 0, r8_ins_classify, r8_ins_notify, r8_ins_delete, id)
                      : h_register0(key, 0, r8_term_classify, r8_term_notify, NULL, id);
}

static void test_R8_no_call_after_unregister_with_classifies_in_flight(void **state)
{
    (void)state;
    reset_common();
    atomic_store(&r8_ins_gone, 0);
    atomic_store(&r8_term_gone, 0);
    atomic_store(&r8_classifies, 0);
    atomic_store(&r8_opens, 0);
    atomic_store(&r8_assoc_ok, 0);
    atomic_store(&r8_assoc_refused, 0);
    atomic_store(&r8_deletes, 0);
    atomic_store(&r8_stop, 0);
    atomic_store(&r8_next_ctx, 1);

    GUID ins_key = h_guid(0x8001), term_key = h_guid(0x8002);
    UINT32 ins_id = 0, term_id = 0;
    assert_int_equal(r8_register(&ins_key, true, &ins_id), STATUS_SUCCESS);
    assert_int_equal(r8_register(&term_key, false, &term_id), STATUS_SUCCESS);
    atomic_store(&r8_ins_id, ins_id);
    assert_int_equal(h_callout_object(&ins_key, ALE4), STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&term_key, ALE4), STATUS_SUCCESS);
    UINT64 ins_filter = 0, term_filter = 0;
    assert_int_equal(add_callout_filter(h_session, NULL, FWP_ACTION_CALLOUT_INSPECTION, &ins_key,
                                        0, 0, &ins_filter),
                     STATUS_SUCCESS);
    assert_int_equal(add_callout_filter(h_session, NULL, FWP_ACTION_CALLOUT_TERMINATING,
                                        &term_key, FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED,
                                        0, &term_filter),
                     STATUS_SUCCESS);

    enum { WORKERS = 3, CYCLES = 60 };
    pthread_t workers[WORKERS];
    for (uintptr_t i = 0; i < WORKERS; i++)
        start_thread(&workers[i], r8_flow_worker, (void *)i);

    uint64_t budget_end = now_ms() + 4000;
    unsigned cycles = 0, busy = 0;
    bool hung = false;
    for (; cycles < CYCLES && (cycles < 3 || now_ms() < budget_end) && !hung; cycles++) {
        /* Let classifies run against the registered callouts. */
        if (!wait_at_least(&r8_classifies, atomic_load(&r8_classifies) + 10)) {
            hung = true;
            break;
        }
        NTSTATUS st = FwpsCalloutUnregisterById0(term_id);
        if (st != STATUS_SUCCESS)
            violation("R8: unregister (terminating) returned 0x%08x", (unsigned)st);
        atomic_store(&r8_term_gone, 1);

        /* Flows keep contexts: unregister is BUSY until the workers have
         * closed them (R7), then SUCCESS. */
        uint64_t deadline = now_ms() + HANG_MS;
        while ((st = FwpsCalloutUnregisterById0(ins_id)) == STATUS_DEVICE_BUSY) {
            busy++;
            if (now_ms() > deadline) {
                hung = true;
                break;
            }
            sched_yield();
        }
        if (hung)
            break;
        if (st != STATUS_SUCCESS)
            violation("R8: unregister (inspection) returned 0x%08x", (unsigned)st);
        atomic_store(&r8_ins_gone, 1);

        /* Classifies and filter changes go on without the callouts. */
        if (!wait_at_least(&r8_opens, atomic_load(&r8_opens) + 10)) {
            hung = true;
            break;
        }
        if (FwpmFilterDeleteById0(h_session, ins_filter) != STATUS_SUCCESS ||
            add_callout_filter(h_session, NULL, FWP_ACTION_CALLOUT_INSPECTION, &ins_key, 0, 0,
                               &ins_filter) != STATUS_SUCCESS)
            violation("R8: filter delete/re-add failed");
        if (!wait_at_least(&r8_opens, atomic_load(&r8_opens) + 10)) {
            hung = true;
            break;
        }

        /* A new key each cycle: the id table grows while classifies read it. */
        GUID extra = h_guid(0x8200 + cycles);
        UINT32 extra_id = 0;
        if (h_register0(&extra, 0, r8_term_classify, r8_term_notify, NULL, &extra_id) !=
                STATUS_SUCCESS ||
            FwpsCalloutUnregisterById0(extra_id) != STATUS_SUCCESS)
            violation("R8: register/unregister of a fresh key failed");

        /* Register again: nothing from the old registration is running. */
        UINT32 id2 = 0;
        atomic_store(&r8_ins_gone, 0);
        if (r8_register(&ins_key, true, &id2) != STATUS_SUCCESS || id2 != ins_id)
            violation("R8: re-register (inspection) failed or changed id (%u != %u)", id2, ins_id);
        atomic_store(&r8_term_gone, 0);
        if (r8_register(&term_key, false, &id2) != STATUS_SUCCESS || id2 != term_id)
            violation("R8: re-register (terminating) failed or changed id");
    }

    atomic_store(&r8_stop, 1);
    for (int i = 0; i < WORKERS; i++)
        join_thread(workers[i]);
    assert_false(hung);
    assert_no_violations();
    assert_true(cycles >= 3);
    assert_true(atomic_load(&r8_classifies) > 0);
    /* Every association got exactly its one flowDeleteFn: the workers
     * closed all their flows with the callout registered at the end. */
    assert_int_equal(atomic_load(&r8_deletes), atomic_load(&r8_assoc_ok));
    struct owfp_engine_stats s;
    owfp_engine_get_stats(h_engine, &s);
    assert_int_equal(s.flow_contexts, 0);
    assert_int_equal(s.flows_open, 0);
    print_message("R8: %u cycles, %u BUSY answers, %d classifies, %d associations refused\n",
                  cycles, busy, atomic_load(&r8_classifies), atomic_load(&r8_assoc_refused));
}

/* A classify that is running when unregister starts: unregister returns
 * only after that classify returned. */
static atomic_int r8w_entered, r8w_unregister_started, r8w_returned, r8w_calls;
/* When set, the classify also waits for r8w_poller_done before returning. */
static atomic_int r8w_hold_for_poller, r8w_poller_done;

static void NTAPI r8w_classify(const FWPS_INCOMING_VALUES0 *in,
                               const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                               const FWPS_FILTER0 *filter, UINT64 flowContext,
                               FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)layerData;
    (void)filter;
    (void)flowContext;
    atomic_fetch_add(&r8w_calls, 1);
    atomic_store(&r8w_entered, 1);
    uint64_t deadline = now_ms() + HANG_MS;
    while (!atomic_load(&r8w_unregister_started) && now_ms() < deadline)
        sched_yield();
    if (atomic_load(&r8w_hold_for_poller)) {
        while (!atomic_load(&r8w_poller_done) && now_ms() < deadline)
            sched_yield();
    }
    /* Unregister is now in progress on the other thread; stay a while. */
    sleep_ms(150);
    out->actionType = FWP_ACTION_PERMIT;
    atomic_store(&r8w_returned, 1);
}

static atomic_int r8w_verdict;

static void *r8w_open_one(void *arg)
{
    (void)arg;
    struct owfp_flow_params p = flow_params(7);
    owfp_flow *f = NULL;
    enum owfp_flow_verdict v = OWFP_FLOW_BLOCKED;
    if (owfp_flow_open(h_engine, &p, &f, &v) != STATUS_SUCCESS) {
        violation("R8: owfp_flow_open failed");
        return NULL;
    }
    atomic_store(&r8w_verdict, (int)v);
    owfp_flow_close(f);
    return NULL;
}

static void test_R8_unregister_waits_for_running_classify(void **state)
{
    (void)state;
    reset_common();
    GUID key = callout_with_filter(0x8101, FWP_ACTION_CALLOUT_TERMINATING);
    for (int round = 0; round < 3; round++) {
        atomic_store(&r8w_entered, 0);
        atomic_store(&r8w_unregister_started, 0);
        atomic_store(&r8w_returned, 0);
        atomic_store(&r8w_calls, 0);
        atomic_store(&r8w_verdict, -1);
        atomic_store(&r8w_hold_for_poller, 0);
        UINT32 id = 0;
        assert_int_equal(h_register0(&key, 0, r8w_classify, h_notify_ok, NULL, &id),
                         STATUS_SUCCESS);
        pthread_t t;
        start_thread(&t, r8w_open_one, NULL);
        EXPECT_TRUE(wait_at_least(&r8w_entered, 1));
        atomic_store(&r8w_unregister_started, 1);
        NTSTATUS st = FwpsCalloutUnregisterById0(id);
        int returned_before = atomic_load(&r8w_returned);
        join_thread(t);
        assert_int_equal(st, STATUS_SUCCESS);
        assert_int_equal(returned_before, 1);
        assert_int_equal(atomic_load(&r8w_verdict), OWFP_FLOW_PERMITTED);
        assert_no_violations();

        /* Unregistered: the TERMINATING filter blocks and the callout is
         * not called (R5, R8). */
        enum owfp_flow_verdict v;
        struct owfp_flow_params p = flow_params(8);
        owfp_flow *f = h_open(&p, &v);
        owfp_flow_close(f);
        assert_int_equal(v, OWFP_FLOW_BLOCKED);
        assert_int_equal(atomic_load(&r8w_calls), 1);
    }
}

/* While an unregister drains (a classify of the callout is still running),
 * registering or unregistering the same callout from another thread answers
 * STATUS_FWP_IN_USE (R7). The classify is held until the probing thread is
 * done, so the unregister cannot finish in between. */
static atomic_uint r7p_key_n, r7p_id;
static atomic_int r7p_register_status, r7p_unregister_status, r7p_early_answers;

static void *r7p_poller(void *arg)
{
    (void)arg;
    GUID key = h_guid(atomic_load(&r7p_key_n));
    uint64_t deadline = now_ms() + HANG_MS;
    while (!atomic_load(&r8w_unregister_started) && now_ms() < deadline)
        sched_yield();
    NTSTATUS st;
    UINT32 id = 0;
    /* ALREADY_EXISTS until the unregister has begun, then IN_USE. */
    while ((st = h_register0(&key, 0, r8w_classify, h_notify_ok, NULL, &id)) ==
               STATUS_FWP_ALREADY_EXISTS &&
           now_ms() < deadline) {
        atomic_fetch_add(&r7p_early_answers, 1);
        sched_yield();
    }
    atomic_store(&r7p_register_status, st);
    atomic_store(&r7p_unregister_status, FwpsCalloutUnregisterById0(atomic_load(&r7p_id)));
    atomic_store(&r8w_poller_done, 1);
    return NULL;
}

static void test_R7_register_or_unregister_while_draining_is_in_use(void **state)
{
    (void)state;
    reset_common();
    atomic_store(&r7p_key_n, 0x7101);
    GUID key = callout_with_filter(0x7101, FWP_ACTION_CALLOUT_TERMINATING);
    atomic_store(&r8w_entered, 0);
    atomic_store(&r8w_unregister_started, 0);
    atomic_store(&r8w_returned, 0);
    atomic_store(&r8w_calls, 0);
    atomic_store(&r8w_verdict, -1);
    atomic_store(&r8w_hold_for_poller, 1);
    atomic_store(&r8w_poller_done, 0);
    atomic_store(&r7p_early_answers, 0);
    UINT32 id = 0;
    assert_int_equal(h_register0(&key, 0, r8w_classify, h_notify_ok, NULL, &id), STATUS_SUCCESS);
    atomic_store(&r7p_id, id);
    pthread_t opener, poller;
    start_thread(&opener, r8w_open_one, NULL);
    EXPECT_TRUE(wait_at_least(&r8w_entered, 1));
    start_thread(&poller, r7p_poller, NULL);
    atomic_store(&r8w_unregister_started, 1);
    NTSTATUS st = FwpsCalloutUnregisterById0(id);
    int returned_before = atomic_load(&r8w_returned);
    join_thread(poller);
    join_thread(opener);
    atomic_store(&r8w_hold_for_poller, 0);
    assert_int_equal(st, STATUS_SUCCESS);
    assert_int_equal(returned_before, 1);
    assert_int_equal(atomic_load(&r7p_register_status), STATUS_FWP_IN_USE);
    assert_int_equal(atomic_load(&r7p_unregister_status), STATUS_FWP_IN_USE);
    assert_no_violations();
    /* The unregister finished; the key may be registered again, same id. */
    UINT32 id2 = 0;
    assert_int_equal(h_register0(&key, 0, r8w_classify, h_notify_ok, NULL, &id2),
                     STATUS_SUCCESS);
    assert_int_equal(id2, id);
    assert_int_equal(FwpsCalloutUnregisterById0(id2), STATUS_SUCCESS);
}

/* --------------------------- R7: BUSY, contexts removed elsewhere, SUCCESS */

#define R7_FLOWS 64
static atomic_int r7_gone, r7_assoc_ok, r7_assoc_refused, r7_classifies, r7_deletes;
static atomic_uint r7_id;
static atomic_int r7_deleted_ctx[R7_FLOWS + 2];
static _Atomic uint64_t r7_flow_ids[R7_FLOWS];
static atomic_int r7_next_ctx;

static void NTAPI r7_classify(const FWPS_INCOMING_VALUES0 *in,
                              const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                              const FWPS_FILTER0 *filter, UINT64 flowContext,
                              FWPS_CLASSIFY_OUT0 *out)
{
    (void)layerData;
    (void)filter;
    (void)flowContext;
    if (atomic_load(&r7_gone))
        violation("R7: classifyFn after unregister SUCCESS");
    atomic_fetch_add(&r7_classifies, 1);
    int ctx = atomic_fetch_add(&r7_next_ctx, 1);
    NTSTATUS st = FwpsFlowAssociateContext0(meta->flowHandle, in->layerId, atomic_load(&r7_id),
                                            (UINT64)ctx);
    if (st == STATUS_SUCCESS)
        atomic_fetch_add(&r7_assoc_ok, 1);
    else if (st == STATUS_INVALID_DEVICE_STATE)
        atomic_fetch_add(&r7_assoc_refused, 1);
    else
        violation("R7: associate returned 0x%08x", (unsigned)st);
    out->actionType = FWP_ACTION_CONTINUE;
}

static void NTAPI r7_delete(UINT16 layerId, UINT32 calloutId, UINT64 ctx)
{
    if (atomic_load(&r7_gone))
        violation("R7: flowDeleteFn after unregister SUCCESS");
    if (layerId != ALE4_ID || calloutId != atomic_load(&r7_id) || ctx < 1 || ctx > R7_FLOWS + 1)
        violation("R7: flowDeleteFn(%u, %u, %llu)", layerId, calloutId,
                  (unsigned long long)ctx);
    else
        atomic_fetch_add(&r7_deleted_ctx[ctx], 1);
    atomic_fetch_add(&r7_deletes, 1);
}

#define R7_REMOVERS 4

static void *r7_remover(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    for (unsigned i = t; i < R7_FLOWS; i += R7_REMOVERS) {
        NTSTATUS st = FwpsFlowRemoveContext0(atomic_load(&r7_flow_ids[i]), ALE4_ID,
                                             atomic_load(&r7_id));
        if (st != STATUS_SUCCESS)
            violation("R7: FwpsFlowRemoveContext0 returned 0x%08x", (unsigned)st);
        sched_yield();
    }
    return NULL;
}

static void test_R7_unregister_busy_then_success_across_threads(void **state)
{
    (void)state;
    reset_common();
    GUID key = callout_with_filter(0x7001, FWP_ACTION_CALLOUT_INSPECTION);
    for (int round = 0; round < 3; round++) {
        atomic_store(&r7_gone, 0);
        atomic_store(&r7_assoc_ok, 0);
        atomic_store(&r7_assoc_refused, 0);
        atomic_store(&r7_classifies, 0);
        atomic_store(&r7_deletes, 0);
        atomic_store(&r7_next_ctx, 1);
        for (int i = 0; i < R7_FLOWS + 2; i++)
            atomic_store(&r7_deleted_ctx[i], 0);
        UINT32 id = 0;
        assert_int_equal(h_register0(&key, 0, r7_classify, h_notify_ok, r7_delete, &id),
                         STATUS_SUCCESS);
        atomic_store(&r7_id, id);

        owfp_flow *flows[R7_FLOWS];
        for (unsigned i = 0; i < R7_FLOWS; i++) {
            struct owfp_flow_params p = flow_params(i);
            flows[i] = h_open(&p, NULL);
            atomic_store(&r7_flow_ids[i], owfp_flow_id(flows[i]));
        }
        assert_int_equal(atomic_load(&r7_assoc_ok), R7_FLOWS);

        /* Contexts are live: BUSY. The callout is still classified but
         * refuses new contexts (Q3). */
        assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_DEVICE_BUSY);
        struct owfp_flow_params p = flow_params(999);
        owfp_flow *extra = h_open(&p, NULL);
        assert_int_equal(atomic_load(&r7_classifies), R7_FLOWS + 1);
        assert_int_equal(atomic_load(&r7_assoc_refused), 1);
        owfp_flow_close(extra);
        assert_int_equal(atomic_load(&r7_deletes), 0);

        pthread_t removers[R7_REMOVERS];
        for (uintptr_t t = 0; t < R7_REMOVERS; t++)
            start_thread(&removers[t], r7_remover, (void *)t);
        NTSTATUS st;
        unsigned busy = 1;
        uint64_t deadline = now_ms() + HANG_MS;
        while ((st = FwpsCalloutUnregisterById0(id)) == STATUS_DEVICE_BUSY &&
               now_ms() < deadline) {
            busy++;
            sched_yield();
        }
        int deletes_at_success = atomic_load(&r7_deletes);
        atomic_store(&r7_gone, 1);
        for (int t = 0; t < R7_REMOVERS; t++)
            join_thread(removers[t]);
        assert_int_equal(st, STATUS_SUCCESS);
        /* SUCCESS only once every flowDeleteFn had run. */
        assert_int_equal(deletes_at_success, R7_FLOWS);
        for (int c = 1; c <= R7_FLOWS; c++)
            assert_int_equal(atomic_load(&r7_deleted_ctx[c]), 1);

        /* Gone for good: no more calls, the id names nothing. */
        assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_FWP_CALLOUT_NOT_FOUND);
        assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(flows[0]), ALE4_ID, id, 1),
                         STATUS_FWP_CALLOUT_NOT_FOUND);
        for (unsigned i = 0; i < R7_FLOWS; i++)
            owfp_flow_close(flows[i]);
        p = flow_params(1000);
        owfp_flow_close(h_open(&p, NULL));
        assert_int_equal(atomic_load(&r7_deletes), R7_FLOWS);
        assert_int_equal(atomic_load(&r7_classifies), R7_FLOWS + 1);
        assert_no_violations();
        print_message("R7 round %d: %u BUSY answers\n", round, busy);
    }
}

/* ------------------------- filter instances shared by the M1 / M2 tests */

/* Every filter these tests add carries a unique instance number in its
 * rawContext (hence FWPS_FILTER0.context), so callouts can tell which
 * filter they were called for and check its life cycle. */
#define MAX_INST 16384
enum { INST_FREE = 0, INST_ADDED = 1, INST_DELETED = 2 };
enum { KIND_PAIR_A = 1, KIND_PAIR_B = 2, KIND_OPTIONAL = 3, KIND_NEVER_VISIBLE = 4 };
static atomic_int inst_state[MAX_INST];
static atomic_int inst_inflight[MAX_INST];
static atomic_int inst_kind[MAX_INST];
static atomic_int inst_gen[MAX_INST];
static atomic_int inst_next;
static atomic_int inst_classifies, inst_adds, inst_deletes;

static _Thread_local unsigned tl_seen[32];
static _Thread_local unsigned tl_nseen;

static void inst_reset(void)
{
    for (int i = 0; i < MAX_INST; i++) {
        atomic_store(&inst_state[i], INST_FREE);
        atomic_store(&inst_inflight[i], 0);
        atomic_store(&inst_kind[i], 0);
        atomic_store(&inst_gen[i], 0);
    }
    atomic_store(&inst_next, 1);
    atomic_store(&inst_classifies, 0);
    atomic_store(&inst_adds, 0);
    atomic_store(&inst_deletes, 0);
}

/* A new instance number; 0 when the table is full (the caller stops). */
static unsigned inst_new(int kind, int gen)
{
    int i = atomic_fetch_add(&inst_next, 1);
    if (i >= MAX_INST)
        return 0;
    atomic_store(&inst_kind[i], kind);
    atomic_store(&inst_gen[i], gen);
    return (unsigned)i;
}

static void NTAPI inst_classify(const FWPS_INCOMING_VALUES0 *in,
                                const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                const FWPS_FILTER0 *filter, UINT64 flowContext,
                                FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)layerData;
    (void)flowContext;
    out->actionType = FWP_ACTION_CONTINUE;
    uint64_t i = filter->context;
    if (i == 0 || i >= MAX_INST) {
        violation("classify: filter context %llu is no instance", (unsigned long long)i);
        return;
    }
    atomic_fetch_add(&inst_classifies, 1);
    /* Announce the use first, then check the state: with the notifyFn
     * doing the opposite, one of the two sees the other (M2). */
    atomic_fetch_add(&inst_inflight[i], 1);
    int st = atomic_load(&inst_state[i]);
    if (st != INST_ADDED)
        violation("classify: filter %llu used in state %d (ADD not delivered, or DELETE "
                  "already delivered)",
                  (unsigned long long)i, st);
    if (atomic_load(&inst_kind[i]) == KIND_NEVER_VISIBLE)
        violation("classify: filter %llu of an aborted transaction is visible",
                  (unsigned long long)i);
    if (tl_nseen < 32)
        tl_seen[tl_nseen++] = (unsigned)i;
    sched_yield();
    atomic_fetch_sub(&inst_inflight[i], 1);
}

static NTSTATUS NTAPI inst_notify(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                                  FWPS_FILTER0 *filter)
{
    (void)key;
    uint64_t i = filter->context;
    if (i == 0 || i >= MAX_INST) {
        violation("notify: filter context %llu is no instance", (unsigned long long)i);
        return STATUS_SUCCESS;
    }
    if (type == FWPS_CALLOUT_NOTIFY_ADD_FILTER) {
        int expected = INST_FREE;
        if (!atomic_compare_exchange_strong(&inst_state[i], &expected, INST_ADDED))
            violation("notify: ADD for filter %llu in state %d", (unsigned long long)i, expected);
        atomic_fetch_add(&inst_adds, 1);
    } else if (type == FWPS_CALLOUT_NOTIFY_DELETE_FILTER) {
        int prev = atomic_exchange(&inst_state[i], INST_DELETED);
        if (prev != INST_ADDED)
            violation("notify: DELETE for filter %llu in state %d", (unsigned long long)i, prev);
        if (atomic_load(&inst_inflight[i]) > 0)
            violation("notify: DELETE for filter %llu while a classify uses it",
                      (unsigned long long)i);
        atomic_fetch_add(&inst_deletes, 1);
    }
    return STATUS_SUCCESS;
}

/* ------------------------------ M2: classify while transactions commit */

static atomic_int m2_stop, m2_opens;

/* What one classify saw must be one committed configuration: exactly one
 * A and one B filter of the same generation, at most one optional filter. */
static void m2_check_seen(void)
{
    int a = -1, b = -1, na = 0, nb = 0, nopt = 0;
    for (unsigned k = 0; k < tl_nseen; k++) {
        unsigned i = tl_seen[k];
        int kind = atomic_load(&inst_kind[i]);
        if (kind == KIND_PAIR_A) {
            na++;
            a = atomic_load(&inst_gen[i]);
        } else if (kind == KIND_PAIR_B) {
            nb++;
            b = atomic_load(&inst_gen[i]);
        } else if (kind == KIND_OPTIONAL) {
            nopt++;
        }
    }
    if (na != 1 || nb != 1 || a != b || nopt > 1)
        violation("M2: a classify saw %d A (gen %d), %d B (gen %d), %d optional: not one "
                  "committed state",
                  na, a, nb, b, nopt);
}

static void *m2_worker(void *arg)
{
    unsigned base = (unsigned)(uintptr_t)arg * 20000u;
    for (unsigned n = 0; !atomic_load(&m2_stop); n++) {
        struct owfp_flow_params p = flow_params(base + n);
        owfp_flow *f = NULL;
        enum owfp_flow_verdict v;
        tl_nseen = 0;
        if (owfp_flow_open(h_engine, &p, &f, &v) != STATUS_SUCCESS) {
            violation("M2: owfp_flow_open failed");
            continue;
        }
        m2_check_seen();
        owfp_flow_close(f);
        atomic_fetch_add(&m2_opens, 1);
    }
    return NULL;
}

struct m2_pair {
    unsigned a, b;
    UINT64 ida, idb;
};

static bool m2_add_pair(const GUID *key, const GUID *sublayer, int gen, struct m2_pair *pair)
{
    pair->a = inst_new(KIND_PAIR_A, gen);
    pair->b = inst_new(KIND_PAIR_B, gen);
    if (!pair->a || !pair->b)
        return false;
    NTSTATUS s1 = add_callout_filter(h_session, sublayer, FWP_ACTION_CALLOUT_INSPECTION, key, 0,
                                     pair->a, &pair->ida);
    NTSTATUS s2 = add_callout_filter(h_session, NULL, FWP_ACTION_CALLOUT_INSPECTION, key, 0,
                                     pair->b, &pair->idb);
    if (s1 != STATUS_SUCCESS || s2 != STATUS_SUCCESS)
        violation("M2: FwpmFilterAdd0 returned 0x%08x / 0x%08x", (unsigned)s1, (unsigned)s2);
    return true;
}

static void test_M2_classify_while_filters_change(void **state)
{
    (void)state;
    reset_common();
    inst_reset();
    atomic_store(&m2_stop, 0);
    atomic_store(&m2_opens, 0);
    GUID key = h_guid(0x2001);
    GUID sublayer = h_sublayer(0x2001, 0x4000);
    UINT32 id;
    assert_int_equal(h_register0(&key, 0, inst_classify, inst_notify, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&key, ALE4), STATUS_SUCCESS);

    /* Generation 0, committed before anyone classifies. The two halves
     * live in different sublayers. */
    int gen = 0;
    struct m2_pair cur;
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    assert_true(m2_add_pair(&key, &sublayer, gen, &cur));
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);

    enum { WORKERS = 2 };
    pthread_t workers[WORKERS];
    for (uintptr_t i = 0; i < WORKERS; i++)
        start_thread(&workers[i], m2_worker, (void *)i);

    unsigned optional = 0;
    UINT64 optional_id = 0;
    unsigned ops = 0, commits = 0, aborts = 0;
    uint64_t budget_end = now_ms() + 3000;
    for (; ops < 2000 && (ops < 8 || now_ms() < budget_end) && !atomic_load(&g_violations);
         ops++) {
        switch (ops % 4) {
        case 0: { /* swap both halves atomically */
            struct m2_pair next;
            EXPECT_EQ(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
            EXPECT_EQ(FwpmFilterDeleteById0(h_session, cur.ida), STATUS_SUCCESS);
            bool room = m2_add_pair(&key, &sublayer, gen + 1, &next);
            EXPECT_EQ(FwpmFilterDeleteById0(h_session, cur.idb), STATUS_SUCCESS);
            if (!room) {
                EXPECT_EQ(FwpmTransactionAbort0(h_session), STATUS_SUCCESS);
                ops = 2000;
                break;
            }
            EXPECT_EQ(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
            /* DELETE went out during the commit, after the old pair stopped
             * being visible. */
            EXPECT_EQ(atomic_load(&inst_state[cur.a]), INST_DELETED);
            EXPECT_EQ(atomic_load(&inst_state[cur.b]), INST_DELETED);
            cur = next;
            gen++;
            commits++;
            break;
        }
        case 1: { /* the same swap, aborted: never visible */
            unsigned x = inst_new(KIND_NEVER_VISIBLE, -1), y = inst_new(KIND_NEVER_VISIBLE, -1);
            if (!x || !y) {
                ops = 2000;
                break;
            }
            EXPECT_EQ(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
            EXPECT_EQ(FwpmFilterDeleteById0(h_session, cur.ida), STATUS_SUCCESS);
            EXPECT_EQ(add_callout_filter(h_session, &sublayer,
                                                FWP_ACTION_CALLOUT_INSPECTION, &key, 0, x, NULL),
                             STATUS_SUCCESS);
            EXPECT_EQ(add_callout_filter(h_session, NULL, FWP_ACTION_CALLOUT_INSPECTION,
                                                &key, 0, y, NULL),
                             STATUS_SUCCESS);
            EXPECT_EQ(FwpmFilterDeleteById0(h_session, cur.idb), STATUS_SUCCESS);
            sched_yield();
            EXPECT_EQ(FwpmTransactionAbort0(h_session), STATUS_SUCCESS);
            EXPECT_EQ(atomic_load(&inst_state[x]), INST_DELETED);
            EXPECT_EQ(atomic_load(&inst_state[y]), INST_DELETED);
            EXPECT_EQ(atomic_load(&inst_state[cur.a]), INST_ADDED);
            EXPECT_EQ(atomic_load(&inst_state[cur.b]), INST_ADDED);
            aborts++;
            break;
        }
        case 2: /* implicit transaction: one optional filter appears */
            optional = inst_new(KIND_OPTIONAL, -1);
            if (!optional) {
                ops = 2000;
                break;
            }
            EXPECT_EQ(add_callout_filter(h_session, NULL, FWP_ACTION_CALLOUT_INSPECTION,
                                                &key, 0, optional, &optional_id),
                             STATUS_SUCCESS);
            break;
        default: /* implicit transaction: and goes again */
            if (optional) {
                EXPECT_EQ(FwpmFilterDeleteById0(h_session, optional_id), STATUS_SUCCESS);
                EXPECT_EQ(atomic_load(&inst_state[optional]), INST_DELETED);
                optional = 0;
            }
            break;
        }
        /* Give the workers a chance to classify against this state. */
        int seen = atomic_load(&m2_opens);
        uint64_t until = now_ms() + 50;
        while (atomic_load(&m2_opens) < seen + 2 && now_ms() < until)
            sched_yield();
    }
    atomic_store(&m2_stop, 1);
    for (int i = 0; i < WORKERS; i++)
        join_thread(workers[i]);
    assert_no_violations();
    assert_true(commits >= 2);
    assert_true(aborts >= 2);
    assert_true(atomic_load(&m2_opens) > 0);
    /* Every filter that got an ADD got exactly one DELETE, except the
     * ones still present. */
    int present = 2 + (optional ? 1 : 0);
    assert_int_equal(atomic_load(&inst_adds) - atomic_load(&inst_deletes), present);
    print_message("M2: %u ops (%u commits, %u aborts), %d flows, %d classifies\n", ops, commits,
                  aborts, atomic_load(&m2_opens), atomic_load(&inst_classifies));
}

/* --------------------- F6: FwpsFlowRemoveContext0 during a classify */

#define F6_ROUNDS 60
static atomic_uint f6_id;
static atomic_int f6_phase, f6_in_classify, f6_round;
static _Atomic uint64_t f6_flow, f6_ctx;
static atomic_int f6_assoc_status;
static atomic_int f6_deleted[2 * F6_ROUNDS + 2];
static atomic_int f6_remove_status, f6_remove2_status, f6_deleted_at_return;
static atomic_int f6_racing, f6_stop;
/* A second callout whose filter comes after the first one's: the remover
 * thread associates a context for it while the flow is being classified. */
static atomic_uint f6b_id;
static atomic_int f6b_assoc_status;
static _Atomic int64_t f6b_seen;
static atomic_int f6b_deleted[2 * F6_ROUNDS + 2];
#define F6B_CTX_BASE 1000

static void NTAPI f6b_classify(const FWPS_INCOMING_VALUES0 *in,
                               const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                               const FWPS_FILTER0 *filter, UINT64 flowContext,
                               FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)layerData;
    (void)filter;
    atomic_store(&f6b_seen, (int64_t)flowContext);
    out->actionType = FWP_ACTION_CONTINUE;
}

static void NTAPI f6b_delete(UINT16 layerId, UINT32 calloutId, UINT64 ctx)
{
    if (layerId != ALE4_ID || calloutId != atomic_load(&f6b_id) || ctx <= F6B_CTX_BASE ||
        ctx >= F6B_CTX_BASE + 2 * F6_ROUNDS + 2) {
        violation("F6: second callout's flowDeleteFn(%u, %u, %llu)", layerId, calloutId,
                  (unsigned long long)ctx);
        return;
    }
    atomic_fetch_add(&f6b_deleted[ctx - F6B_CTX_BASE], 1);
}

static void NTAPI f6_classify(const FWPS_INCOMING_VALUES0 *in,
                              const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                              const FWPS_FILTER0 *filter, UINT64 flowContext,
                              FWPS_CLASSIFY_OUT0 *out)
{
    (void)layerData;
    (void)filter;
    (void)flowContext;
    out->actionType = FWP_ACTION_CONTINUE;
    uint64_t ctx = (uint64_t)atomic_load(&f6_round) + 1;
    atomic_store(&f6_in_classify, 1);
    atomic_store(&f6_assoc_status, FwpsFlowAssociateContext0(meta->flowHandle, in->layerId,
                                                             atomic_load(&f6_id), ctx));
    atomic_store(&f6_flow, meta->flowHandle);
    atomic_store(&f6_ctx, ctx); /* published last: the remover reads the flow after it */
    if (atomic_load(&f6_racing)) {
        /* Race: the remover may come now or after the classify. */
        for (uint64_t k = 0; k < ctx % 4; k++)
            sched_yield();
    } else {
        atomic_store(&f6_phase, 1);
        uint64_t deadline = now_ms() + HANG_MS;
        while (atomic_load(&f6_phase) != 2 && now_ms() < deadline)
            sched_yield();
        /* The removal was answered PENDING: no flowDeleteFn while the
         * classify is still running, on any thread. */
        sleep_ms(2);
        if (atomic_load(&f6_deleted[ctx]))
            violation("F6: flowDeleteFn ran while the classify was active");
    }
    atomic_store(&f6_in_classify, 0);
}

static void NTAPI f6_delete(UINT16 layerId, UINT32 calloutId, UINT64 ctx)
{
    if (layerId != ALE4_ID || calloutId != atomic_load(&f6_id) || ctx == 0 ||
        ctx >= 2 * F6_ROUNDS + 2) {
        violation("F6: flowDeleteFn(%u, %u, %llu)", layerId, calloutId,
                  (unsigned long long)ctx);
        return;
    }
    if (atomic_load(&f6_in_classify))
        violation("F6: flowDeleteFn while classifyFn runs");
    atomic_fetch_add(&f6_deleted[ctx], 1);
}

/* Removes the context of the flow the current round's classify published. */
static void *f6_remover(void *arg)
{
    (void)arg;
    for (int r = 0; r < 2 * F6_ROUNDS; r++) {
        uint64_t deadline = now_ms() + HANG_MS;
        /* Wait for this round's flow (ctx == round + 1). */
        while (atomic_load(&f6_ctx) != (uint64_t)r + 1 && now_ms() < deadline) {
            if (atomic_load(&f6_stop))
                return NULL;
            sched_yield();
        }
        if (!atomic_load(&f6_racing)) {
            while (atomic_load(&f6_phase) != 1 && now_ms() < deadline)
                sched_yield();
        }
        uint64_t flow = atomic_load(&f6_flow);
        atomic_store(&f6b_assoc_status,
                     FwpsFlowAssociateContext0(flow, ALE4_ID, atomic_load(&f6b_id),
                                               F6B_CTX_BASE + (uint64_t)r + 1));
        NTSTATUS st = FwpsFlowRemoveContext0(flow, ALE4_ID, atomic_load(&f6_id));
        atomic_store(&f6_deleted_at_return, atomic_load(&f6_deleted[r + 1]));
        atomic_store(&f6_remove_status, st);
        atomic_store(&f6_remove2_status, FwpsFlowRemoveContext0(flow, ALE4_ID,
                                                                atomic_load(&f6_id)));
        atomic_store(&f6_phase, 2);
    }
    return NULL;
}

static void test_F6_remove_context_from_other_thread_during_classify(void **state)
{
    (void)state;
    reset_common();
    GUID key = h_guid(0x6001);
    UINT32 id;
    assert_int_equal(h_register0(&key, 0, f6_classify, h_notify_ok, f6_delete, &id),
                     STATUS_SUCCESS);
    atomic_store(&f6_id, id);
    GUID key_b = h_guid(0x6002);
    UINT32 id_b;
    assert_int_equal(h_register0(&key_b, 0, f6b_classify, h_notify_ok, f6b_delete, &id_b),
                     STATUS_SUCCESS);
    atomic_store(&f6b_id, id_b);
    assert_int_equal(h_callout_object(&key, ALE4), STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&key_b, ALE4), STATUS_SUCCESS);
    struct h_filter_spec a = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_INSPECTION,
                              .callout = &key, .weight = 10, .has_weight = 1};
    struct h_filter_spec b = {.layer = ALE4, .action = FWP_ACTION_CALLOUT_INSPECTION,
                              .callout = &key_b, .weight = 5, .has_weight = 1};
    assert_int_equal(h_filter(&a, NULL), STATUS_SUCCESS);
    assert_int_equal(h_filter(&b, NULL), STATUS_SUCCESS);
    for (int i = 0; i < 2 * F6_ROUNDS + 2; i++) {
        atomic_store(&f6_deleted[i], 0);
        atomic_store(&f6b_deleted[i], 0);
    }
    atomic_store(&f6_ctx, 0);
    atomic_store(&f6_racing, 0);
    atomic_store(&f6_stop, 0);
    pthread_t remover;
    start_thread(&remover, f6_remover, NULL);
    unsigned pending = 0, sync = 0;
    for (int r = 0; r < 2 * F6_ROUNDS && !atomic_load(&g_violations); r++) {
        /* First half: handshake, the removal surely hits the classify.
         * Second half: no handshake, either outcome is possible. */
        bool racing = r >= F6_ROUNDS;
        atomic_store(&f6_racing, racing);
        atomic_store(&f6_phase, 0);
        atomic_store(&f6_round, r);
        atomic_store(&f6b_seen, -1);
        struct owfp_flow_params p = flow_params((unsigned)r);
        owfp_flow *f = NULL;
        enum owfp_flow_verdict v;
        if (owfp_flow_open(h_engine, &p, &f, &v) != STATUS_SUCCESS) {
            violation("F6: owfp_flow_open failed");
            break;
        }
        EXPECT_EQ(atomic_load(&f6_assoc_status), STATUS_SUCCESS);
        uint64_t deadline = now_ms() + HANG_MS;
        while (atomic_load(&f6_phase) != 2 && now_ms() < deadline)
            sched_yield();
        EXPECT_EQ(atomic_load(&f6_phase), 2);
        NTSTATUS st = atomic_load(&f6_remove_status);
        if (!racing)
            EXPECT_EQ(st, STATUS_PENDING);
        if (st == STATUS_PENDING) {
            pending++;
        } else {
            /* Not during a classify: flowDeleteFn ran before the return. */
            EXPECT_EQ(st, STATUS_SUCCESS);
            EXPECT_EQ(atomic_load(&f6_deleted_at_return), 1);
            sync++;
        }
        /* The context is gone (or going): a second removal finds none. */
        EXPECT_EQ(atomic_load(&f6_remove2_status), STATUS_UNSUCCESSFUL);
        /* The classify has returned: the deferred flowDeleteFn has run. */
        EXPECT_EQ(atomic_load(&f6_deleted[r + 1]), 1);
        /* A context associated from another thread is the one the later
         * filter's callout gets (F5) once it is in place; in the racing
         * half it may come after that callout ran. */
        EXPECT_EQ(atomic_load(&f6b_assoc_status), STATUS_SUCCESS);
        int64_t seen = atomic_load(&f6b_seen);
        if (!racing)
            EXPECT_EQ(seen, F6B_CTX_BASE + r + 1);
        else if (seen != 0)
            EXPECT_EQ(seen, F6B_CTX_BASE + r + 1);
        EXPECT_EQ(atomic_load(&f6b_deleted[r + 1]), 0);
        owfp_flow_close(f);
        EXPECT_EQ(atomic_load(&f6_deleted[r + 1]), 1);
        EXPECT_EQ(atomic_load(&f6b_deleted[r + 1]), 1);
    }
    atomic_store(&f6_stop, 1);
    join_thread(remover);
    assert_no_violations();
    struct owfp_engine_stats s;
    owfp_engine_get_stats(h_engine, &s);
    assert_int_equal(s.flow_contexts, 0);
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterById0(id_b), STATUS_SUCCESS);
    print_message("F6: %u PENDING, %u synchronous removals\n", pending, sync);
}

/* ------------------- F4: associate and remove from many threads at once */

#define F4_FLOWS 32
#define F4_CALLOUTS 4
#define F4_LAYERS 2
#define F4_TRIPLES (F4_FLOWS * F4_CALLOUTS * F4_LAYERS)
#define F4_THREADS 4
/* Context value = serial * F4_TRIPLES + triple; every attempt has its own
 * serial, so a value is associated at most once. */
#define F4_MAX_SERIAL (1u << 19)
static const uint16_t f4_layers[F4_LAYERS] = {ALE4_ID, STREAM4_ID};
static atomic_uint f4_ids[F4_CALLOUTS];
static _Atomic uint64_t f4_flow_ids[F4_FLOWS];
static atomic_int f4_triple_ok[F4_TRIPLES];
static atomic_uchar f4_assoc_ok[F4_MAX_SERIAL]; /* indexed by serial */
static atomic_uchar f4_deleted[F4_MAX_SERIAL];
static atomic_uint f4_serial;
static atomic_uint f4_serial_limit; /* phase 2 may use half, phase 3 the rest */
static atomic_int f4_phase, f4_stop, f4_phase1_done;
static atomic_long f4_success, f4_deletes;

static void f4_triple(unsigned t, unsigned *flow, unsigned *layer, unsigned *callout)
{
    *flow = t % F4_FLOWS;
    *layer = (t / F4_FLOWS) % F4_LAYERS;
    *callout = t / (F4_FLOWS * F4_LAYERS);
}

static void NTAPI f4_delete(UINT16 layerId, UINT32 calloutId, UINT64 ctx)
{
    unsigned triple = (unsigned)(ctx % F4_TRIPLES), flow, layer, callout;
    uint64_t serial = ctx / F4_TRIPLES;
    f4_triple(triple, &flow, &layer, &callout);
    if (serial == 0 || serial >= F4_MAX_SERIAL || layerId != f4_layers[layer] ||
        calloutId != atomic_load(&f4_ids[callout])) {
        violation("F4: flowDeleteFn(%u, %u, %llu) does not match the context", layerId,
                  calloutId, (unsigned long long)ctx);
        return;
    }
    if (!atomic_load(&f4_assoc_ok[serial]))
        violation("F4: flowDeleteFn for context %llu never associated", (unsigned long long)ctx);
    if (atomic_fetch_add(&f4_deleted[serial], 1) != 0)
        violation("F4: second flowDeleteFn for context %llu", (unsigned long long)ctx);
    atomic_fetch_add(&f4_deletes, 1);
}

/* Associates `triple` with a fresh context value. False when this phase's
 * serials are used up (nothing attempted). */
static bool f4_associate(unsigned triple, NTSTATUS *status)
{
    unsigned serial = atomic_fetch_add(&f4_serial, 1);
    if (serial >= atomic_load(&f4_serial_limit))
        return false;
    uint64_t ctx = (uint64_t)serial * F4_TRIPLES + triple;
    unsigned flow, layer, callout;
    f4_triple(triple, &flow, &layer, &callout);
    /* Marked before the call: a flowDeleteFn may follow at once (close). */
    atomic_store(&f4_assoc_ok[serial], 1);
    NTSTATUS st = FwpsFlowAssociateContext0(atomic_load(&f4_flow_ids[flow]), f4_layers[layer],
                                            atomic_load(&f4_ids[callout]), ctx);
    if (st == STATUS_SUCCESS)
        atomic_fetch_add(&f4_success, 1);
    else
        atomic_store(&f4_assoc_ok[serial], 0);
    *status = st;
    return true;
}

static void *f4_worker(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ULL * (t + 1);
    /* Phase 1: everyone associates every triple; one wins each. */
    for (unsigned k = 0; k < F4_TRIPLES; k++) {
        unsigned triple = (k + t * 7) % F4_TRIPLES;
        NTSTATUS st;
        if (!f4_associate(triple, &st))
            violation("F4 phase 1: out of serials");
        else if (st == STATUS_SUCCESS)
            atomic_fetch_add(&f4_triple_ok[triple], 1);
        else if (st != STATUS_OBJECT_NAME_EXISTS)
            violation("F4 phase 1: associate returned 0x%08x", (unsigned)st);
    }
    atomic_fetch_add(&f4_phase1_done, 1);
    while (atomic_load(&f4_phase) < 2)
        sched_yield();
    /* Phase 2: random remove / associate; phase 3: the flows close meanwhile. */
    while (!atomic_load(&f4_stop)) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        unsigned triple = (unsigned)(rng % F4_TRIPLES), flow, layer, callout;
        f4_triple(triple, &flow, &layer, &callout);
        if (rng & (1u << 20)) {
            NTSTATUS st = FwpsFlowRemoveContext0(atomic_load(&f4_flow_ids[flow]),
                                                 f4_layers[layer], atomic_load(&f4_ids[callout]));
            if (st != STATUS_SUCCESS && st != STATUS_UNSUCCESSFUL)
                violation("F4: remove returned 0x%08x", (unsigned)st);
        } else {
            NTSTATUS st;
            if (!f4_associate(triple, &st))
                sched_yield();
            /* NOT_FOUND only once the flows close (phase 3 starts first). */
            else if (st != STATUS_SUCCESS && st != STATUS_OBJECT_NAME_EXISTS &&
                     !(st == STATUS_NOT_FOUND && atomic_load(&f4_phase) >= 3))
                violation("F4: associate returned 0x%08x", (unsigned)st);
        }
    }
    return NULL;
}

static void test_F4_associate_concurrently_from_many_threads(void **state)
{
    (void)state;
    reset_common();
    for (unsigned i = 0; i < F4_TRIPLES; i++)
        atomic_store(&f4_triple_ok[i], 0);
    for (size_t i = 0; i < F4_MAX_SERIAL; i++) {
        atomic_store(&f4_assoc_ok[i], 0);
        atomic_store(&f4_deleted[i], 0);
    }
    /* Serials start at 1 so no context value is 0. */
    atomic_store(&f4_serial, 1);
    atomic_store(&f4_serial_limit, F4_MAX_SERIAL / 2);
    atomic_store(&f4_phase, 1);
    atomic_store(&f4_phase1_done, 0);
    atomic_store(&f4_stop, 0);
    atomic_store(&f4_success, 0);
    atomic_store(&f4_deletes, 0);
    for (unsigned c = 0; c < F4_CALLOUTS; c++) {
        GUID key = h_guid(0x4000 + c);
        UINT32 id;
        assert_int_equal(h_register0(&key, 0, noop_classify, h_notify_ok, f4_delete, &id),
                         STATUS_SUCCESS);
        atomic_store(&f4_ids[c], id);
    }
    owfp_flow *flows[F4_FLOWS];
    for (unsigned i = 0; i < F4_FLOWS; i++) {
        struct owfp_flow_params p = flow_params(i);
        flows[i] = h_open(&p, NULL);
        atomic_store(&f4_flow_ids[i], owfp_flow_id(flows[i]));
    }

    pthread_t workers[F4_THREADS];
    for (uintptr_t t = 0; t < F4_THREADS; t++)
        start_thread(&workers[t], f4_worker, (void *)t);
    /* Phase 1 ends when every thread went through every triple. */
    EXPECT_TRUE(wait_at_least(&f4_phase1_done, F4_THREADS));
    struct owfp_engine_stats s;
    owfp_engine_get_stats(h_engine, &s);
    EXPECT_EQ(s.flow_contexts, F4_TRIPLES);
    EXPECT_EQ(atomic_load(&f4_success), F4_TRIPLES);
    for (unsigned i = 0; i < F4_TRIPLES; i++)
        EXPECT_EQ(atomic_load(&f4_triple_ok[i]), 1);
    EXPECT_EQ(atomic_load(&f4_deletes), 0);

    /* Phase 2, bounded by time and by half the serials. */
    atomic_store(&f4_phase, 2);
    uint64_t phase2_end = now_ms() + 1000;
    while (atomic_load(&f4_serial) < F4_MAX_SERIAL / 2 && now_ms() < phase2_end)
        sleep_ms(5);
    atomic_store(&f4_serial_limit, F4_MAX_SERIAL);
    atomic_store(&f4_phase, 3);
    for (unsigned i = 0; i < F4_FLOWS; i++) {
        owfp_flow_close(flows[i]);
        sleep_ms(1);
    }
    atomic_store(&f4_stop, 1);
    for (int t = 0; t < F4_THREADS; t++)
        join_thread(workers[t]);
    assert_no_violations();

    /* Every successful association got exactly one flowDeleteFn. */
    owfp_engine_get_stats(h_engine, &s);
    assert_int_equal(s.flow_contexts, 0);
    assert_int_equal(s.flows_open, 0);
    assert_int_equal(atomic_load(&f4_deletes), atomic_load(&f4_success));
    for (size_t v = 0; v < F4_MAX_SERIAL; v++)
        if (atomic_load(&f4_deleted[v]) != atomic_load(&f4_assoc_ok[v]))
            fail_msg("F4: serial %zu associated %d, deleted %d", v, atomic_load(&f4_assoc_ok[v]),
                     atomic_load(&f4_deleted[v]));
    for (unsigned c = 0; c < F4_CALLOUTS; c++)
        assert_int_equal(FwpsCalloutUnregisterById0(atomic_load(&f4_ids[c])), STATUS_SUCCESS);
    unsigned attempts = atomic_load(&f4_serial) - 1;
    print_message("F4: %ld associations, %u attempts\n", atomic_load(&f4_success),
                  attempts < F4_MAX_SERIAL ? attempts : F4_MAX_SERIAL);
}

/* ------------------ M1: sessions opened and closed on many threads */

#define M1_THREADS 3
static atomic_int m1_stop, m1_opens, m1_sessions;
static atomic_uint m1_ids[M1_THREADS];

static void *m1_classifier(void *arg)
{
    unsigned base = (unsigned)(uintptr_t)arg * 30000u;
    for (unsigned n = 0; !atomic_load(&m1_stop); n++) {
        struct owfp_flow_params p = flow_params(base + n);
        owfp_flow *f = NULL;
        enum owfp_flow_verdict v;
        tl_nseen = 0;
        if (owfp_flow_open(h_engine, &p, &f, &v) != STATUS_SUCCESS) {
            violation("M1: owfp_flow_open failed");
            continue;
        }
        if (v != OWFP_FLOW_PERMITTED)
            violation("M1: flow blocked");
        owfp_flow_close(f);
        atomic_fetch_add(&m1_opens, 1);
    }
    return NULL;
}

#define M1_CHECK(expr, want)                                                                    \
    do {                                                                                        \
        NTSTATUS st_ = (expr);                                                                  \
        if (st_ != (want))                                                                      \
            violation("M1 thread %u: %s returned 0x%08x, want 0x%08x", t, #expr, (unsigned)st_, \
                      (unsigned)(want));                                                        \
    } while (0)

static void *m1_session_worker(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    GUID callout = h_guid(0x1000 + t);
    GUID sublayer = h_guid(0x1100 + t);
    uint64_t budget_end = now_ms() + 3000;
    for (unsigned it = 0; it < 400 && (it < 6 || now_ms() < budget_end); it++) {
        FWPM_SESSION0 sess;
        memset(&sess, 0, sizeof(sess));
        sess.flags = FWPM_SESSION_FLAG_DYNAMIC;
        HANDLE h = NULL;
        M1_CHECK(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &sess, &h), STATUS_SUCCESS);
        bool explicit_txn = it % 2 == 0;
        if (explicit_txn)
            M1_CHECK(FwpmTransactionBegin0(h, 0), STATUS_SUCCESS);
        M1_CHECK(sublayer_in(h, &sublayer, (uint16_t)(0x100 + t)), STATUS_SUCCESS);
        UINT32 cid = 0;
        M1_CHECK(callout_object_in(h, &callout, &cid), STATUS_SUCCESS);
        if (cid != atomic_load(&m1_ids[t]))
            violation("M1: FwpmCalloutAdd0 id %u != registered id %u (R3)", cid,
                      atomic_load(&m1_ids[t]));
        unsigned mine[3] = {0, 0, 0};
        UINT64 fid[3] = {0, 0, 0};
        for (int k = 0; k < 3; k++) {
            mine[k] = inst_new(KIND_OPTIONAL, (int)t);
            if (!mine[k]) {
                atomic_store(&m1_stop, 1);
                mine[k] = 0;
                continue;
            }
            M1_CHECK(add_callout_filter(h, &sublayer, FWP_ACTION_CALLOUT_INSPECTION, &callout, 0,
                                        mine[k], &fid[k]),
                     STATUS_SUCCESS);
        }
        if (explicit_txn)
            M1_CHECK(FwpmTransactionCommit0(h), STATUS_SUCCESS);
        /* A dynamic object is not another session's to delete (M6). */
        M1_CHECK(FwpmSubLayerDeleteByKey0(h_session, &sublayer), STATUS_FWP_WRONG_SESSION);
        if (mine[0]) {
            M1_CHECK(FwpmFilterDeleteById0(h, fid[0]), STATUS_SUCCESS);
            if (atomic_load(&inst_state[mine[0]]) != INST_DELETED)
                violation("M1: no DELETE notification after FwpmFilterDeleteById0");
        }
        unsigned pending = 0;
        if (it % 3 == 2) {
            /* Closing the session aborts its open transaction (M2). */
            pending = inst_new(KIND_NEVER_VISIBLE, (int)t);
            M1_CHECK(FwpmTransactionBegin0(h, 0), STATUS_SUCCESS);
            if (pending)
                M1_CHECK(add_callout_filter(h, &sublayer, FWP_ACTION_CALLOUT_INSPECTION,
                                            &callout, 0, pending, NULL),
                         STATUS_SUCCESS);
        }
        sched_yield();
        M1_CHECK(FwpmEngineClose0(h), STATUS_SUCCESS);
        M1_CHECK(FwpmEngineClose0(h), STATUS_INVALID_HANDLE);
        /* Everything the session added is gone, with DELETE notifications. */
        for (int k = 0; k < 3; k++)
            if (mine[k] && atomic_load(&inst_state[mine[k]]) != INST_DELETED)
                violation("M1: filter %u of a closed dynamic session not deleted", mine[k]);
        if (pending && atomic_load(&inst_state[pending]) != INST_DELETED)
            violation("M1: filter of the aborted transaction got no DELETE");
        M1_CHECK(FwpmSubLayerDeleteByKey0(h_session, &sublayer), STATUS_FWP_SUBLAYER_NOT_FOUND);
        M1_CHECK(FwpmCalloutDeleteByKey0(h_session, &callout), STATUS_FWP_CALLOUT_NOT_FOUND);
        atomic_fetch_add(&m1_sessions, 1);
        if (atomic_load(&m1_stop))
            break;
    }
    return NULL;
}

static void test_M1_sessions_open_close_concurrently(void **state)
{
    (void)state;
    reset_common();
    inst_reset();
    atomic_store(&m1_stop, 0);
    atomic_store(&m1_opens, 0);
    atomic_store(&m1_sessions, 0);
    for (unsigned t = 0; t < M1_THREADS; t++) {
        GUID key = h_guid(0x1000 + t);
        UINT32 id;
        assert_int_equal(h_register0(&key, 0, inst_classify, inst_notify, NULL, &id),
                         STATUS_SUCCESS);
        atomic_store(&m1_ids[t], id);
    }
    struct owfp_engine_stats before;
    owfp_engine_get_stats(h_engine, &before);

    pthread_t classifiers[2], sessions[M1_THREADS];
    for (uintptr_t i = 0; i < 2; i++)
        start_thread(&classifiers[i], m1_classifier, (void *)i);
    for (uintptr_t t = 0; t < M1_THREADS; t++)
        start_thread(&sessions[t], m1_session_worker, (void *)t);
    for (int t = 0; t < M1_THREADS; t++)
        join_thread(sessions[t]);
    atomic_store(&m1_stop, 1);
    for (int i = 0; i < 2; i++)
        join_thread(classifiers[i]);
    assert_no_violations();
    assert_true(atomic_load(&m1_sessions) >= M1_THREADS * 6);
    assert_true(atomic_load(&m1_opens) > 0);
    /* Nothing is left of the dynamic sessions; every ADD had its DELETE. */
    struct owfp_engine_stats after;
    owfp_engine_get_stats(h_engine, &after);
    assert_int_equal(after.filters, before.filters);
    assert_true(atomic_load(&inst_adds) > 0);
    assert_int_equal(atomic_load(&inst_adds), atomic_load(&inst_deletes));
    print_message("M1: %d sessions, %d filters, %d flows, %d classifies\n",
                  atomic_load(&m1_sessions), atomic_load(&inst_adds), atomic_load(&m1_opens),
                  atomic_load(&inst_classifies));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_R8_no_call_after_unregister_with_classifies_in_flight,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R8_unregister_waits_for_running_classify, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_register_or_unregister_while_draining_is_in_use,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R7_unregister_busy_then_success_across_threads,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_M2_classify_while_filters_change, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_F6_remove_context_from_other_thread_during_classify,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_F4_associate_concurrently_from_many_threads, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_M1_sessions_open_close_concurrently, h_setup,
                                        h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
