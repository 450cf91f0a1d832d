/*
 * Spec §5 (N1-N8): notifyFn calls for filters that name a callout, and the
 * T8 row of the §13 matrix. Filters live at ALE_FLOW_ESTABLISHED_V4, where
 * owfp_flow_open() classifies them.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

static WCHAR g_name[] = L"notify test";

/* ---- shared state, reset by every test --------------------------------- */

struct note {
    char who; /* which callout: 'A', 'B', ... */
    FWPS_CALLOUT_NOTIFY_TYPE type;
    bool key_null;
    GUID key;
    UINT64 filter_id;
    UINT32 callout_id;
    UINT32 action;
    UINT64 context;
    int classifies_during; /* classify calls made by a flow opened inside this call */
};

static struct {
    struct note log[64];
    int n;
    NTSTATUS answer[FWPS_CALLOUT_NOTIFY_TYPE_MAX + 1]; /* per notify type */
    UINT64 set_context;  /* written into filter->context at ADD when non-zero */
    bool probe_on_delete; /* open a flow on another thread during DELETE */
    NTSTATUS inner_status;
    /* classify */
    atomic_int classifies;
    UINT64 seen_context;
    UINT64 seen_filter_id;
} g;

static void reset(void)
{
    memset(&g, 0, sizeof(g));
}

static int count(char who, FWPS_CALLOUT_NOTIFY_TYPE type)
{
    int n = 0;
    for (int i = 0; i < g.n; i++)
        n += g.log[i].who == who && g.log[i].type == type;
    return n;
}

static const struct note *last_of(char who, FWPS_CALLOUT_NOTIFY_TYPE type)
{
    for (int i = g.n - 1; i >= 0; i--)
        if (g.log[i].who == who && g.log[i].type == type)
            return &g.log[i];
    return NULL;
}

static void NTAPI classify(const FWPS_INCOMING_VALUES0 *in,
                           const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                           const FWPS_FILTER0 *filter, UINT64 flowContext,
                           FWPS_CLASSIFY_OUT0 *out)
{
    UNREFERENCED_PARAMETER(in);
    UNREFERENCED_PARAMETER(meta);
    UNREFERENCED_PARAMETER(layerData);
    UNREFERENCED_PARAMETER(flowContext);
    g.seen_context = filter->context;
    g.seen_filter_id = filter->filterId;
    atomic_fetch_add(&g.classifies, 1);
    out->actionType = FWP_ACTION_CONTINUE;
}

static void NTAPI classify1(const FWPS_INCOMING_VALUES0 *in,
                            const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                            const void *classifyContext, const FWPS_FILTER1 *filter,
                            UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    UNREFERENCED_PARAMETER(classifyContext);
    classify(in, meta, layerData, (const FWPS_FILTER0 *)filter, flowContext, out);
}

/* Opens and closes one flow on another thread; counts the classifies. */
static void *probe_thread(void *arg)
{
    int *classified = arg;
    int before = atomic_load(&g.classifies);
    struct owfp_flow_params p = h_params4(4000, 80, OWFP_OUTBOUND);
    owfp_flow *f = NULL;
    enum owfp_flow_verdict v;
    if (owfp_flow_open(h_engine, &p, &f, &v) == STATUS_SUCCESS)
        owfp_flow_close(f);
    else
        before = -1000;
    *classified = atomic_load(&g.classifies) - before;
    return NULL;
}

static NTSTATUS record(char who, FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                       FWPS_FILTER0 *filter)
{
    struct note *n = &g.log[g.n < 63 ? g.n++ : 63];
    n->who = who;
    n->type = type;
    n->key_null = key == NULL;
    if (key)
        n->key = *key;
    n->filter_id = filter->filterId;
    n->callout_id = filter->action.calloutId;
    n->action = filter->action.type;
    n->context = filter->context;
    if (type == FWPS_CALLOUT_NOTIFY_ADD_FILTER && g.set_context)
        filter->context = g.set_context;
    if (type == FWPS_CALLOUT_NOTIFY_DELETE_FILTER && g.probe_on_delete) {
        pthread_t t;
        if (pthread_create(&t, NULL, probe_thread, &n->classifies_during) == 0)
            pthread_join(t, NULL);
        else
            n->classifies_during = -1;
    }
    return (unsigned)type <= FWPS_CALLOUT_NOTIFY_TYPE_MAX ? g.answer[type] : STATUS_SUCCESS;
}

static NTSTATUS NTAPI notify_a(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                               FWPS_FILTER0 *filter)
{
    return record('A', type, key, filter);
}

static NTSTATUS NTAPI notify_b(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                               FWPS_FILTER0 *filter)
{
    return record('B', type, key, filter);
}

static NTSTATUS NTAPI notify1_c(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                                FWPS_FILTER1 *filter)
{
    return record('C', type, key, (FWPS_FILTER0 *)filter);
}

static NTSTATUS NTAPI notify1_d(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                                FWPS_FILTER1 *filter)
{
    return record('D', type, key, (FWPS_FILTER0 *)filter);
}

/* A FWPS_CALLOUT1 registration (needed for ENABLE_COMMIT_ADD_NOTIFY). */
static NTSTATUS register1(const GUID *key, UINT32 flags, FWPS_CALLOUT_NOTIFY_FN1 notify,
                          UINT32 *id)
{
    FWPS_CALLOUT1 c = {0};
    c.calloutKey = *key;
    c.flags = flags;
    c.classifyFn = classify1;
    c.notifyFn = notify;
    return FwpsCalloutRegister1(NULL, &c, id);
}

static NTSTATUS add_object(const GUID *key)
{
    return h_callout_object(key, &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4);
}

static NTSTATUS add_filter_in(HANDLE session, const GUID *key, UINT32 action, const GUID *callout,
                              UINT64 raw_context, UINT64 *id)
{
    FWPM_FILTER0 f;
    memset(&f, 0, sizeof(f));
    if (key)
        f.filterKey = *key;
    f.displayData.name = g_name;
    f.layerKey = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
    f.action.type = action;
    if (callout)
        f.action.calloutKey = *callout;
    f.rawContext = raw_context;
    return FwpmFilterAdd0(session, &f, NULL, id);
}

static NTSTATUS add_filter(const GUID *key, UINT32 action, const GUID *callout,
                           UINT64 raw_context, UINT64 *id)
{
    return add_filter_in(h_session, key, action, callout, raw_context, id);
}

static void open_close(uint16_t port)
{
    struct owfp_flow_params p = h_params4(port, 80, OWFP_OUTBOUND);
    owfp_flow_close(h_open(&p, NULL));
}

static UINT64 filter_count(void)
{
    struct owfp_engine_stats s;
    owfp_engine_get_stats(h_engine, &s);
    return s.filters;
}

/* ---- N1 ------------------------------------------------------------------ */

static void test_N1_add_notify_with_key_and_filter(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x100), fkey = h_guid(0x101);
    UINT32 id;
    assert_int_equal(h_register0(&ckey, 0, classify, notify_a, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    UINT64 fid = 0;
    assert_int_equal(add_filter(&fkey, FWP_ACTION_CALLOUT_TERMINATING, &ckey, 0x5eed, &fid),
                     STATUS_SUCCESS);
    assert_int_equal(g.n, 1);
    const struct note *n = &g.log[0];
    assert_int_equal(n->who, 'A');
    assert_int_equal(n->type, FWPS_CALLOUT_NOTIFY_ADD_FILTER);
    assert_false(n->key_null);
    assert_memory_equal(&n->key, &fkey, sizeof(GUID));
    assert_int_equal(n->filter_id, fid);
    assert_int_equal(n->callout_id, id);
    assert_int_equal(n->action, FWP_ACTION_CALLOUT_TERMINATING);
    /* Before the callout writes it, context is the rawContext. */
    assert_int_equal(n->context, 0x5eed);

    /* A filter added with a zero key is notified with the generated key. */
    UINT64 fid2;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0, &fid2),
                     STATUS_SUCCESS);
    assert_int_equal(g.n, 2);
    assert_false(g.log[1].key_null);
    static const GUID zero;
    assert_memory_not_equal(&g.log[1].key, &zero, sizeof(GUID));
    assert_int_equal(g.log[1].filter_id, fid2);
    assert_int_equal(g.log[1].context, 0);
    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &g.log[1].key), STATUS_SUCCESS);
}

static void test_N1_context_written_at_add_seen_by_classify(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x110);
    assert_int_equal(h_register0(&ckey, 0, classify, notify_a, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    g.set_context = 0xfeedface12345678ull;
    UINT64 fid;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0x1234, &fid),
                     STATUS_SUCCESS);
    assert_int_equal(g.log[0].context, 0x1234);
    open_close(1000);
    assert_int_equal(g.classifies, 1);
    assert_int_equal(g.seen_filter_id, fid);
    assert_int_equal(g.seen_context, 0xfeedface12345678ull);
    /* And the DELETE notification carries it too, so it can be freed (N3). */
    assert_int_equal(FwpmFilterDeleteById0(h_session, fid), STATUS_SUCCESS);
    const struct note *d = last_of('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER);
    assert_non_null(d);
    assert_int_equal(d->context, 0xfeedface12345678ull);
}

static void test_N1_raw_context_seen_by_classify_when_untouched(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x120);
    assert_int_equal(h_register0(&ckey, 0, classify, notify_a, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0xabcdef, NULL),
                     STATUS_SUCCESS);
    open_close(1000);
    assert_int_equal(g.classifies, 1);
    assert_int_equal(g.seen_context, 0xabcdef);
}

/* A notifyFn runs where Windows holds engine locks: management calls from it
 * are refused instead of deadlocking. */
static NTSTATUS NTAPI notify_adding_filter(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                                           FWPS_FILTER0 *filter)
{
    if (type == FWPS_CALLOUT_NOTIFY_ADD_FILTER)
        g.inner_status = add_filter(NULL, FWP_ACTION_PERMIT, NULL, 0, NULL);
    return record('A', type, key, filter);
}

static void test_N1_notify_calling_filter_add_refused(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x130);
    assert_int_equal(h_register0(&ckey, 0, classify, notify_adding_filter, NULL, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_ADD_FILTER), 1);
    assert_int_equal(g.inner_status, STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(filter_count(), 1);
}

/* ---- N2 ------------------------------------------------------------------ */

static void test_N2_T8_add_veto_fails_add(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x200), fkey = h_guid(0x201);
    assert_int_equal(h_register0(&ckey, 0, classify, notify_a, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    g.answer[FWPS_CALLOUT_NOTIFY_ADD_FILTER] = STATUS_UNSUCCESSFUL;
    UINT64 fid = 0x99;
    NTSTATUS st = add_filter(&fkey, FWP_ACTION_CALLOUT_TERMINATING, &ckey, 0, &fid);
    assert_int_equal(st, (NTSTATUS)0xC0220037);
    assert_int_equal(st, STATUS_FWP_CALLOUT_NOTIFICATION_FAILED);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_ADD_FILTER), 1);
    UINT64 vetoed_id = g.log[0].filter_id;

    /* The filter is absent: not classified (a TERMINATING filter would
     * block otherwise), not deletable, no DELETE notification. */
    struct owfp_flow_params p = h_params4(1000, 80, OWFP_OUTBOUND);
    enum owfp_flow_verdict v;
    owfp_flow_close(h_open(&p, &v));
    assert_int_equal(v, OWFP_FLOW_PERMITTED);
    assert_int_equal(g.classifies, 0);
    assert_int_equal(filter_count(), 0);
    assert_int_equal(FwpmFilterDeleteById0(h_session, vetoed_id), STATUS_FWP_FILTER_NOT_FOUND);
    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &fkey), STATUS_FWP_FILTER_NOT_FOUND);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 0);
    /* The key is free again, and the vetoed filter held no reference on
     * the callout object. */
    g.answer[FWPS_CALLOUT_NOTIFY_ADD_FILTER] = STATUS_SUCCESS;
    assert_int_equal(add_filter(&fkey, FWP_ACTION_CALLOUT_TERMINATING, &ckey, 0, &fid),
                     STATUS_SUCCESS);
    assert_int_not_equal(fid, 0x99);
    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &fkey), STATUS_SUCCESS);
    assert_int_equal(FwpmCalloutDeleteByKey0(h_session, &ckey), STATUS_SUCCESS);
}

static void test_N2_veto_inside_transaction_keeps_transaction(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x210), vkey = h_guid(0x211);
    assert_int_equal(h_register0(&ckey, 0, classify, notify_a, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(h_register0(&vkey, 0, classify, notify_b, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    assert_int_equal(add_object(&vkey), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    UINT64 ok_id;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0, &ok_id),
                     STATUS_SUCCESS);
    g.answer[FWPS_CALLOUT_NOTIFY_ADD_FILTER] = STATUS_INSUFFICIENT_RESOURCES;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &vkey, 0, NULL),
                     STATUS_FWP_CALLOUT_NOTIFICATION_FAILED);
    g.answer[FWPS_CALLOUT_NOTIFY_ADD_FILTER] = STATUS_SUCCESS;
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
    assert_int_equal(filter_count(), 1);
    open_close(1000);
    assert_int_equal(g.classifies, 1);
    assert_int_equal(g.seen_filter_id, ok_id);
    assert_int_equal(count('B', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 0);
}

/* ---- N3 ------------------------------------------------------------------ */

static void test_N3_delete_notify_null_key_and_context(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x300), fkey = h_guid(0x301);
    UINT32 id;
    assert_int_equal(h_register0(&ckey, 0, classify, notify_a, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    g.set_context = 0xc0ffee;
    UINT64 fid, fid2;
    assert_int_equal(add_filter(&fkey, FWP_ACTION_CALLOUT_TERMINATING, &ckey, 1, &fid),
                     STATUS_SUCCESS);
    g.set_context = 0;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_UNKNOWN, &ckey, 0x77, &fid2),
                     STATUS_SUCCESS);

    assert_int_equal(FwpmFilterDeleteByKey0(h_session, &fkey), STATUS_SUCCESS);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 1);
    const struct note *d = last_of('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER);
    assert_true(d->key_null);
    assert_int_equal(d->filter_id, fid);
    assert_int_equal(d->callout_id, id);
    assert_int_equal(d->context, 0xc0ffee);

    assert_int_equal(FwpmFilterDeleteById0(h_session, fid2), STATUS_SUCCESS);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 2);
    d = last_of('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER);
    assert_true(d->key_null);
    assert_int_equal(d->filter_id, fid2);
    assert_int_equal(d->context, 0x77);
}

static void test_N3_delete_notify_return_value_ignored(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x310);
    assert_int_equal(h_register0(&ckey, 0, classify, notify_a, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    UINT64 fid;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0, &fid),
                     STATUS_SUCCESS);
    g.answer[FWPS_CALLOUT_NOTIFY_DELETE_FILTER] = STATUS_UNSUCCESSFUL;
    assert_int_equal(FwpmFilterDeleteById0(h_session, fid), STATUS_SUCCESS);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 1);
    assert_int_equal(filter_count(), 0);
    assert_int_equal(FwpmFilterDeleteById0(h_session, fid), STATUS_FWP_FILTER_NOT_FOUND);
    open_close(1000);
    assert_int_equal(g.classifies, 0);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 1);
}

/* The DELETE notification comes once the filter can no longer be classified:
 * a flow opened on another thread during the notifyFn does not reach it. */
static void test_N3_delete_notify_after_filter_invisible(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x320);
    assert_int_equal(h_register0(&ckey, 0, classify, notify_a, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    UINT64 fid;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0, &fid),
                     STATUS_SUCCESS);
    open_close(1000);
    assert_int_equal(g.classifies, 1);
    g.probe_on_delete = true;
    assert_int_equal(FwpmFilterDeleteById0(h_session, fid), STATUS_SUCCESS);
    const struct note *d = last_of('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER);
    assert_non_null(d);
    assert_int_equal(d->classifies_during, 0);
}

/* ---- N4 ------------------------------------------------------------------ */

static void test_N4_delete_for_filter_added_before_registration(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x400);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    UINT64 fid;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_TERMINATING, &ckey, 0x42, &fid),
                     STATUS_SUCCESS);
    UINT32 id;
    assert_int_equal(h_register0(&ckey, 0, classify, notify_a, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(g.n, 0);
    assert_int_equal(FwpmFilterDeleteById0(h_session, fid), STATUS_SUCCESS);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.log[0].type, FWPS_CALLOUT_NOTIFY_DELETE_FILTER);
    assert_true(g.log[0].key_null);
    assert_int_equal(g.log[0].filter_id, fid);
    assert_int_equal(g.log[0].callout_id, id);
    assert_int_equal(g.log[0].context, 0x42);
}

/* A filter whose callout was unregistered in between: DELETE goes to the
 * callout registered now under that key. */
static void test_N4_delete_goes_to_current_registration(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x410);
    UINT32 id;
    assert_int_equal(h_register0(&ckey, 0, classify, notify_a, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    UINT64 fid;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0, &fid),
                     STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterById0(id), STATUS_SUCCESS);
    assert_int_equal(h_register0(&ckey, 0, classify, notify_b, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(FwpmFilterDeleteById0(h_session, fid), STATUS_SUCCESS);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 0);
    assert_int_equal(count('B', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 1);
    assert_int_equal(last_of('B', FWPS_CALLOUT_NOTIFY_DELETE_FILTER)->filter_id, fid);
}

/* ---- N5 ------------------------------------------------------------------ */

static void test_N5_no_add_for_preexisting_filters(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x500);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_UNKNOWN, &ckey, 0, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(h_register0(&ckey, 0, classify, notify_a, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(g.n, 0);
    /* Filters added from now on are notified. */
    UINT64 fid;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0, &fid),
                     STATUS_SUCCESS);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.log[0].type, FWPS_CALLOUT_NOTIFY_ADD_FILTER);
    assert_int_equal(g.log[0].filter_id, fid);
}

/* ---- N6 ------------------------------------------------------------------ */

/* ADD_FILTER_POST_COMMIT (a type the notifyFn pages do not list) is only
 * sent to callouts that asked for it. */
static void test_N6_post_commit_only_with_enable_commit_add_notify(void **state)
{
    (void)state;
    reset();
    GUID with = h_guid(0x600), without = h_guid(0x601), without0 = h_guid(0x602);
    assert_int_equal(register1(&with, FWP_CALLOUT_FLAG_ENABLE_COMMIT_ADD_NOTIFY, notify1_c, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(register1(&without, 0, notify1_d, NULL), STATUS_SUCCESS);
    assert_int_equal(h_register0(&without0, 0, classify, notify_a, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(add_object(&with), STATUS_SUCCESS);
    assert_int_equal(add_object(&without), STATUS_SUCCESS);
    assert_int_equal(add_object(&without0), STATUS_SUCCESS);
    UINT64 fc, fd, fa;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &with, 0, &fc),
                     STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &without, 0, &fd),
                     STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &without0, 0, &fa),
                     STATUS_SUCCESS);
    assert_int_equal(count('C', FWPS_CALLOUT_NOTIFY_ADD_FILTER), 1);
    assert_int_equal(count('C', FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT), 1);
    assert_int_equal(last_of('C', FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT)->filter_id, fc);
    assert_int_equal(count('D', FWPS_CALLOUT_NOTIFY_ADD_FILTER), 1);
    assert_int_equal(count('D', FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT), 0);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_ADD_FILTER), 1);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT), 0);
    /* Nothing but the three documented/header types is ever sent. */
    for (int i = 0; i < g.n; i++)
        assert_true(g.log[i].type <= FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT);
}

/* ---- N7 ------------------------------------------------------------------ */

static void test_N7_post_commit_after_explicit_commit(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x700), fkey = h_guid(0x701);
    UINT32 id;
    assert_int_equal(register1(&ckey, FWP_CALLOUT_FLAG_ENABLE_COMMIT_ADD_NOTIFY, notify1_c, &id),
                     STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    UINT64 fid;
    assert_int_equal(add_filter(&fkey, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0x31, &fid),
                     STATUS_SUCCESS);
    /* ADD at add time, POST_COMMIT not yet. */
    assert_int_equal(g.n, 1);
    assert_int_equal(g.log[0].type, FWPS_CALLOUT_NOTIFY_ADD_FILTER);
    assert_memory_equal(&g.log[0].key, &fkey, sizeof(GUID));
    /* Not committed: invisible to classify (M2). */
    open_close(1000);
    assert_int_equal(g.classifies, 0);
    assert_int_equal(g.n, 1);

    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
    assert_int_equal(g.n, 2);
    const struct note *pc = &g.log[1];
    assert_int_equal(pc->who, 'C');
    assert_int_equal(pc->type, FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT);
    assert_false(pc->key_null);
    assert_memory_equal(&pc->key, &fkey, sizeof(GUID));
    assert_int_equal(pc->filter_id, fid);
    assert_int_equal(pc->callout_id, id);
    assert_int_equal(pc->context, 0x31);
    open_close(1001);
    assert_int_equal(g.classifies, 1);
}

static void test_N7_abort_sends_delete(void **state)
{
    (void)state;
    reset();
    GUID with = h_guid(0x710), without = h_guid(0x711);
    assert_int_equal(register1(&with, FWP_CALLOUT_FLAG_ENABLE_COMMIT_ADD_NOTIFY, notify1_c, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(h_register0(&without, 0, classify, notify_a, NULL, NULL), STATUS_SUCCESS);
    assert_int_equal(add_object(&with), STATUS_SUCCESS);
    assert_int_equal(add_object(&without), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    UINT64 fc, fa;
    g.set_context = 0xdead;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &with, 0, &fc),
                     STATUS_SUCCESS);
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &without, 0, &fa),
                     STATUS_SUCCESS);
    assert_int_equal(count('C', FWPS_CALLOUT_NOTIFY_ADD_FILTER), 1);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_ADD_FILTER), 1);
    assert_int_equal(FwpmTransactionAbort0(h_session), STATUS_SUCCESS);

    /* Each callout that accepted an ADD hears the DELETE; no POST_COMMIT. */
    assert_int_equal(count('C', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 1);
    assert_int_equal(count('C', FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT), 0);
    const struct note *d = last_of('C', FWPS_CALLOUT_NOTIFY_DELETE_FILTER);
    assert_true(d->key_null);
    assert_int_equal(d->filter_id, fc);
    assert_int_equal(d->context, 0xdead);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 1);
    assert_int_equal(last_of('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER)->filter_id, fa);

    assert_int_equal(filter_count(), 0);
    assert_int_equal(FwpmFilterDeleteById0(h_session, fc), STATUS_FWP_FILTER_NOT_FOUND);
    open_close(1000);
    assert_int_equal(g.classifies, 0);
}

static void test_N7_post_commit_after_implicit_transaction(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x720);
    assert_int_equal(register1(&ckey, FWP_CALLOUT_FLAG_ENABLE_COMMIT_ADD_NOTIFY, notify1_c, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    UINT64 fid;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0, &fid),
                     STATUS_SUCCESS);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.log[0].type, FWPS_CALLOUT_NOTIFY_ADD_FILTER);
    assert_int_equal(g.log[1].type, FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT);
    assert_int_equal(g.log[1].filter_id, fid);
}

/* A vetoed ADD is never followed by POST_COMMIT. */
static void test_N7_vetoed_add_gets_no_post_commit(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x730);
    assert_int_equal(register1(&ckey, FWP_CALLOUT_FLAG_ENABLE_COMMIT_ADD_NOTIFY, notify1_c, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    assert_int_equal(FwpmTransactionBegin0(h_session, 0), STATUS_SUCCESS);
    g.answer[FWPS_CALLOUT_NOTIFY_ADD_FILTER] = STATUS_UNSUCCESSFUL;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0, NULL),
                     STATUS_FWP_CALLOUT_NOTIFICATION_FAILED);
    assert_int_equal(FwpmTransactionCommit0(h_session), STATUS_SUCCESS);
    assert_int_equal(count('C', FWPS_CALLOUT_NOTIFY_ADD_FILTER), 1);
    assert_int_equal(count('C', FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT), 0);
    assert_int_equal(count('C', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 0);
}

/* ---- N8 ------------------------------------------------------------------ */

static void test_N8_dynamic_session_close_deletes_filters(void **state)
{
    (void)state;
    reset();
    GUID ckey = h_guid(0x800);
    UINT32 id;
    assert_int_equal(h_register0(&ckey, 0, classify, notify_a, NULL, &id), STATUS_SUCCESS);
    assert_int_equal(add_object(&ckey), STATUS_SUCCESS);
    UINT64 static_fid;
    assert_int_equal(add_filter(NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0, &static_fid),
                     STATUS_SUCCESS);

    FWPM_SESSION0 session = {0};
    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    HANDLE dyn;
    assert_int_equal(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &dyn),
                     STATUS_SUCCESS);
    UINT64 d1, d2;
    g.set_context = 0x8888;
    assert_int_equal(add_filter_in(dyn, NULL, FWP_ACTION_CALLOUT_INSPECTION, &ckey, 0, &d1),
                     STATUS_SUCCESS);
    g.set_context = 0;
    assert_int_equal(add_filter_in(dyn, NULL, FWP_ACTION_CALLOUT_UNKNOWN, &ckey, 0, &d2),
                     STATUS_SUCCESS);
    assert_int_equal(filter_count(), 3);
    open_close(1000);
    assert_int_equal(g.classifies, 3);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 0);

    assert_int_equal(FwpmEngineClose0(dyn), STATUS_SUCCESS);
    assert_int_equal(count('A', FWPS_CALLOUT_NOTIFY_DELETE_FILTER), 2);
    bool saw1 = false, saw2 = false;
    for (int i = 0; i < g.n; i++) {
        if (g.log[i].type != FWPS_CALLOUT_NOTIFY_DELETE_FILTER)
            continue;
        assert_true(g.log[i].key_null);
        if (g.log[i].filter_id == d1) {
            saw1 = true;
            assert_int_equal(g.log[i].context, 0x8888);
        }
        saw2 |= g.log[i].filter_id == d2;
    }
    assert_true(saw1);
    assert_true(saw2);

    /* Gone; the static filter stays. */
    assert_int_equal(filter_count(), 1);
    assert_int_equal(FwpmFilterDeleteById0(h_session, d1), STATUS_FWP_FILTER_NOT_FOUND);
    open_close(1001);
    assert_int_equal(g.classifies, 4);
    assert_int_equal(g.seen_filter_id, static_fid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_N1_add_notify_with_key_and_filter, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_N1_context_written_at_add_seen_by_classify, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_N1_raw_context_seen_by_classify_when_untouched,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_N1_notify_calling_filter_add_refused, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_N2_T8_add_veto_fails_add, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_N2_veto_inside_transaction_keeps_transaction,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_N3_delete_notify_null_key_and_context, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_N3_delete_notify_return_value_ignored, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_N3_delete_notify_after_filter_invisible, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_N4_delete_for_filter_added_before_registration,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_N4_delete_goes_to_current_registration, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_N5_no_add_for_preexisting_filters, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_N6_post_commit_only_with_enable_commit_add_notify,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_N7_post_commit_after_explicit_commit, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_N7_abort_sends_delete, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_N7_post_commit_after_implicit_transaction, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_N7_vetoed_add_gets_no_post_commit, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_N8_dynamic_session_close_deletes_filters, h_setup,
                                        h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
