/*
 * The callout verifier (src/verify, docs/verifier.md) driven through the
 * engine directly, for what `openwfp replay` cannot provoke (tests/
 * verify_faults.py covers the rest with a faulty driver): the finding table
 * itself (dedupe, counts, the sink, reset), NEED_MORE_DATA at the 8 MB limit
 * (S17), a classify of a flow entered while one of the same flow runs (C4,
 * S12), unregistering with live contexts (R7), calls into a driver after its
 * DriverUnload (R8), injection after SEND_ABORT (S10, judged per callout),
 * out-of-band injection that is legal (S27 b, d: no finding) and not, and
 * injection handles left at unload with injections pending (E3, S26).
 *
 * Callouts never assert (a longjmp out of a classify would leave the engine
 * mid-call): they record, and the test body asserts.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openwfp/verify.h>

#include "engine/engine.h"
#include "engine/flow.h"
#include "verify/verify.h"

#define STREAM4 (&FWPM_LAYER_STREAM_V4)
#define ALE4 (&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4)

enum mode {
    M_PERMIT,
    M_NEED_MORE,       /* NEED_MORE_DATA whatever the flags */
    M_BLOCK_ALL,       /* BLOCK everything (an out-of-band callout) */
    M_DEFER_RECV,      /* DEFER received data, permit the rest */
    M_INJECT_ON_ABORT, /* inject inline when the indication carries SEND_ABORT */
};

static struct {
    int mode;
    UINT32 stream_id, ale_id;
    HANDLE inj;
    NDIS_HANDLE pool;
    int sink_calls;
    uint64_t sink_count;
    size_t sink_frames;
    owfp_flow *reenter_flow; /* the ALE callout indicates on it: C4 re-entry */
    NTSTATUS reenter_status;
    int classifies;
    UINT32 injector_id, victim_id; /* S10 per callout: who injects, as whom */
    owfp_flow *abort_flow;
    NTSTATUS injector_status;
} g;

/* ---- findings as the host sees them --------------------------------------------- */

struct want {
    const char *rule, *check;
    bool found;
    uint64_t count;
    size_t nframes;
    char driver[64];
    char first_frame[256];
};

static void match(const struct owfp_verify_finding *f, void *ctx)
{
    struct want *w = ctx;
    if (strcmp(f->rule, w->rule) || strcmp(f->check, w->check))
        return;
    w->found = true;
    w->count += f->count;
    w->nframes = f->nframes;
    snprintf(w->driver, sizeof(w->driver), "%s", f->driver);
    snprintf(w->first_frame, sizeof(w->first_frame), "%s", f->nframes ? f->backtrace[0] : "");
}

static struct want finding(const char *rule, const char *check)
{
    struct want w = {rule, check, false, 0, 0, "", ""};
    owfp_verify_findings(match, &w);
    return w;
}

/* Also prints each new finding as `openwfp --verify` does, for the log. */
static void sink(const struct owfp_verify_finding *f, void *ctx)
{
    (void)ctx;
    printf("# openwfp: verify %s %s driver=%s callout=%s flow=0x%llx: %s\n", f->rule, f->check,
           f->driver[0] ? f->driver : "-", f->callout_key[0] ? f->callout_key : "-",
           (unsigned long long)f->flow, f->message);
    for (size_t i = 0; i < f->nframes; i++)
        printf("#     %s\n", f->backtrace[i]);
    g.sink_calls++;
    g.sink_count = f->count;
    g.sink_frames = f->nframes;
}

/* ---- callouts ------------------------------------------------------------------- */

static NTSTATUS inject_oob(owfp_flow *f, UINT32 callout, UINT32 flags, const char *text);

static void NTAPI on_complete(void *context, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel)
{
    (void)context;
    (void)dispatchLevel;
    FwpsFreeCloneNetBufferList0(nbl, 0);
}

static void NTAPI stream_classify(const FWPS_INCOMING_VALUES0 *in,
                                  const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                                  const FWPS_FILTER0 *filter, UINT64 flowContext,
                                  FWPS_CLASSIFY_OUT0 *out)
{
    (void)flowContext;
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    FWPS_STREAM_DATA0 *sd = io->streamData;
    g.classifies++;
    out->actionType = FWP_ACTION_PERMIT;
    switch (g.mode) {
    case M_NEED_MORE:
        io->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
        io->countBytesRequired = (UINT32)sd->dataLength + 1;
        out->actionType = FWP_ACTION_NONE;
        break;
    case M_BLOCK_ALL:
        out->actionType = FWP_ACTION_BLOCK;
        out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
        break;
    case M_DEFER_RECV:
        if ((sd->flags & FWPS_STREAM_FLAG_RECEIVE) && sd->dataLength) {
            io->streamAction = FWPS_STREAM_ACTION_DEFER;
            out->actionType = FWP_ACTION_NONE;
        }
        break;
    case M_INJECT_ON_ABORT:
        if (sd->flags & FWPS_STREAM_FLAG_SEND_ABORT) {
            NET_BUFFER_LIST *clone = NULL;
            if (FwpsCloneStreamData0(sd, NULL, NULL, 0, &clone) == STATUS_SUCCESS &&
                FwpsStreamInjectAsync0(g.inj, NULL, 0, meta->flowHandle, filter->action.calloutId,
                                       in->layerId, FWPS_STREAM_FLAG_SEND, clone, 0, on_complete,
                                       NULL) != STATUS_SUCCESS)
                FwpsFreeCloneNetBufferList0(clone, 0);
        }
        break;
    default:
        break;
    }
}

static void NTAPI ale_classify(const FWPS_INCOMING_VALUES0 *in,
                               const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                               const FWPS_FILTER0 *filter, UINT64 flowContext,
                               FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)layerData;
    (void)filter;
    (void)flowContext;
    out->actionType = FWP_ACTION_CONTINUE;
    if (g.reenter_flow == (owfp_flow *)1) {
        /* A data plane calling into the flow from inside its classify
         * (e.g. from a wake-up function run on this thread). */
        owfp_flow *f = (owfp_flow *)owfp_flow_lookup(owfp_engine_get(), meta->flowHandle);
        static const char data[] = "hello";
        struct owfp_stream_result r;
        g.reenter_flow = f;
        g.reenter_status = f ? owfp_stream_indicate(f, OWFP_STREAM_SEND, data, 5, 0, &r)
                             : STATUS_NOT_FOUND;
    }
}

static void NTAPI flow_delete(UINT16 layerId, UINT32 calloutId, UINT64 flowContext)
{
    (void)layerId;
    (void)calloutId;
    (void)flowContext;
}

/* ---- set-up ------------------------------------------------------------------------ */

static int setup(void **state)
{
    memset(&g, 0, sizeof(g));
    owfp_verify_reset();
    owfp_verify_enable(true);
    owfp_verify_set_sink(sink, NULL);
    if (h_setup(state) != 0)
        return -1;
    if (FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, &g.inj) !=
        STATUS_SUCCESS)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    int rc = h_teardown(state);
    if (g.inj)
        FwpsInjectionHandleDestroy0(g.inj);
    owfp_verify_set_sink(NULL, NULL);
    owfp_verify_enable(false);
    owfp_verify_reset();
    return rc;
}

/* A stream callout behind a TERMINATING filter, an ALE inspection callout. */
static void add_callouts(void)
{
    GUID sk = h_guid(0x7e1f0001), ak = h_guid(0x7e1f0002);
    GUID sub = h_sublayer(1, 0x100);
    assert_int_equal(h_register0(&sk, 0, stream_classify, h_notify_ok, flow_delete, &g.stream_id),
                     STATUS_SUCCESS);
    assert_int_equal(h_register0(&ak, 0, ale_classify, h_notify_ok, NULL, &g.ale_id),
                     STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&sk, STREAM4), STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&ak, ALE4), STATUS_SUCCESS);
    struct h_filter_spec s = {.layer = STREAM4, .sublayer = &sub,
                              .action = FWP_ACTION_CALLOUT_TERMINATING, .callout = &sk};
    assert_int_equal(h_filter(&s, NULL), STATUS_SUCCESS);
    struct h_filter_spec a = {.layer = ALE4, .sublayer = &sub,
                              .action = FWP_ACTION_CALLOUT_INSPECTION, .callout = &ak};
    assert_int_equal(h_filter(&a, NULL), STATUS_SUCCESS);
}

static owfp_flow *open_flow(uint16_t port)
{
    struct owfp_flow_params p = h_params4(port, 80, OWFP_OUTBOUND);
    return h_open(&p, NULL);
}

/* Returns the direction's state after the call (OWFP_DIR_*). */
static uint32_t indicate(owfp_flow *f, int dir, const void *data, size_t len)
{
    struct owfp_stream_result r;
    assert_true(owfp_stream_indicate(f, dir, data, len, 0, &r) >= 0);
    return r.dir[dir].state;
}

static NTSTATUS inject_oob(owfp_flow *f, UINT32 callout, UINT32 flags, const char *text)
{
    /* A clone is the handiest injectable NBL: built from a fake indication. */
    MDL mdl;
    NET_BUFFER nb;
    NET_BUFFER_LIST nbl;
    memset(&mdl, 0, sizeof(mdl));
    memset(&nb, 0, sizeof(nb));
    memset(&nbl, 0, sizeof(nbl));
    MmInitializeMdl(&mdl, (PVOID)text, (ULONG)strlen(text));
    MmBuildMdlForNonPagedPool(&mdl);
    nb.MdlChain = nb.CurrentMdl = &mdl;
    nb.stDataLength = strlen(text);
    nbl.FirstNetBuffer = &nb;
    FWPS_STREAM_DATA0 sd = {.flags = flags,
                            .dataOffset = {.netBufferList = &nbl, .netBuffer = &nb, .mdl = &mdl},
                            .dataLength = strlen(text),
                            .netBufferListChain = &nbl};
    NET_BUFFER_LIST *clone = NULL;
    NTSTATUS st = FwpsCloneStreamData0(&sd, NULL, NULL, 0, &clone);
    if (st != STATUS_SUCCESS)
        return st; /* no assert here: a callout calls it too */
    st = FwpsStreamInjectAsync0(g.inj, NULL, 0, owfp_flow_id(f), callout,
                                         FWPS_LAYER_STREAM_V4, flags, clone, strlen(text),
                                         on_complete, NULL);
    if (st != STATUS_SUCCESS)
        FwpsFreeCloneNetBufferList0(clone, 0);
    return st;
}

/* ---- the table ------------------------------------------------------------------------ */

static void test_verify_table_dedupe_counts_reset(void **state)
{
    (void)state;
    owfp_verify_report("S19", "defer-on-send", 7, 0x11, "drvA", NULL, OWFP_VERIFY_BT_STACK,
                       "first %d", 1);
    owfp_verify_report("S19", "defer-on-send", 7, 0x22, "drvA", NULL, OWFP_VERIFY_BT_STACK,
                       "second %d", 2);
    owfp_verify_report("S19", "defer-on-send", 8, 0x33, "drvA", NULL, OWFP_VERIFY_BT_NONE,
                       "other callout");
    owfp_verify_report("S19", "defer-on-send", 7, 0x44, "drvB", NULL, OWFP_VERIFY_BT_NONE,
                       "other driver");
    owfp_verify_report("S18", "drop-from-inspection", 7, 0x55, "drvA", NULL, OWFP_VERIFY_BT_NONE,
                       "other check");
    assert_int_equal(owfp_verify_findings(NULL, NULL), 4);
    assert_int_equal(owfp_verify_occurrences(), 5);
    /* The sink saw each new finding once, with count 1. */
    assert_int_equal(g.sink_calls, 4);
    struct want w = finding("S19", "defer-on-send");
    assert_int_equal(w.count, 4); /* 2 + 1 + 1 over three findings */
    assert_int_equal(finding("S18", "drop-from-inspection").count, 1);

    owfp_verify_reset();
    assert_int_equal(owfp_verify_findings(NULL, NULL), 0);
    assert_int_equal(owfp_verify_occurrences(), 0);
    owfp_verify_report("S19", "defer-on-send", 7, 0x66, "drvA", NULL, OWFP_VERIFY_BT_NONE, "again");
    assert_int_equal(owfp_verify_findings(NULL, NULL), 1);
    assert_int_equal(g.sink_calls, 5);
}

static void keep_first(const struct owfp_verify_finding *f, void *ctx)
{
    struct owfp_verify_finding *out = ctx;
    if (!strcmp(f->check, "defer-on-send") && f->callout_id == 7)
        *out = *f;
}

static void test_verify_first_occurrence_kept(void **state)
{
    (void)state;
    owfp_verify_report("S19", "defer-on-send", 7, 0x11, "drvA", NULL, OWFP_VERIFY_BT_STACK,
                       "first");
    owfp_verify_report("S19", "defer-on-send", 7, 0x22, "drvA", NULL, OWFP_VERIFY_BT_STACK,
                       "second");
    struct owfp_verify_finding f;
    memset(&f, 0, sizeof(f));
    owfp_verify_findings(keep_first, &f);
    assert_int_equal(f.flow, 0x11);
    assert_int_equal(f.count, 2);
    assert_string_equal(f.message, "first");
    assert_string_equal(f.driver, "drvA");
    assert_true(f.nframes > 0); /* BT_STACK: where it was reported from */
    assert_int_equal(g.sink_frames, f.nframes);
}

/* Off: nothing is recorded, whatever the callouts do. */
static void test_verify_off_records_nothing(void **state)
{
    (void)state;
    owfp_verify_enable(false);
    add_callouts();
    g.mode = M_NEED_MORE;
    owfp_flow *f = open_flow(1000);
    indicate(f, OWFP_STREAM_SEND, "abc", 3);
    struct owfp_stream_result r;
    owfp_stream_fin(f, OWFP_STREAM_SEND, &r); /* NEED_MORE_DATA after NO_MORE_DATA */
    owfp_flow_close(f);
    assert_int_equal(owfp_verify_findings(NULL, NULL), 0);
}

/* ---- S17 at the limit --------------------------------------------------------------------- */

static void test_S17_need_more_data_at_limit(void **state)
{
    (void)state;
    add_callouts();
    g.mode = M_NEED_MORE;
    owfp_flow *f = open_flow(1001);
    static uint8_t chunk[64 * 1024];
    for (int i = 0; i < 130 && !finding("S17", "need-more-data-at-limit").found; i++)
        indicate(f, OWFP_STREAM_SEND, chunk, sizeof(chunk));
    owfp_flow_close(f);
    struct want w = finding("S17", "need-more-data-at-limit");
    assert_true(w.found);
    assert_int_equal(w.nframes, 1); /* the classifyFn that answered */
    assert_non_null(strstr(w.first_frame, "+0x"));
    assert_false(finding("S17", "need-more-data-after-end").found);
}

static void test_S17_need_more_data_after_end(void **state)
{
    (void)state;
    add_callouts();
    g.mode = M_NEED_MORE;
    owfp_flow *f = open_flow(1002);
    indicate(f, OWFP_STREAM_SEND, "abc", 3);
    assert_false(finding("S17", "need-more-data-after-end").found);
    struct owfp_stream_result r;
    owfp_stream_fin(f, OWFP_STREAM_SEND, &r);
    owfp_flow_close(f);
    assert_true(finding("S17", "need-more-data-after-end").found);
}

/* ---- C4: classify of a flow entered from inside a classify of it ------------------------- */

static void test_C4_classify_reentered(void **state)
{
    (void)state;
    add_callouts();
    g.reenter_flow = (owfp_flow *)1;
    owfp_flow *f = open_flow(1003);
    assert_ptr_equal(g.reenter_flow, f);
    assert_true(g.reenter_status >= 0);
    struct want w = finding("C4", "classify-reentered");
    assert_true(w.found);
    assert_true(w.nframes > 0);
    owfp_flow_close(f);
    /* Not when classifies follow each other. */
    owfp_verify_reset();
    g.reenter_flow = NULL;
    f = open_flow(1004);
    indicate(f, OWFP_STREAM_SEND, "abc", 3);
    indicate(f, OWFP_STREAM_RECEIVE, "def", 3);
    owfp_flow_close(f);
    assert_false(finding("C4", "classify-reentered").found);
}

/* ---- R7, F4, F6 ---------------------------------------------------------------------------- */

static void test_R7_unregister_with_contexts(void **state)
{
    (void)state;
    add_callouts();
    owfp_flow *f = open_flow(1005);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f), FWPS_LAYER_STREAM_V4,
                                               g.stream_id, 0x1234),
                     STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterById0(g.stream_id), STATUS_DEVICE_BUSY);
    struct want w = finding("R7", "unregister-with-contexts");
    assert_true(w.found);
    assert_true(w.nframes > 0);
    /* Done right: remove first, then unregister. No second finding. */
    assert_int_equal(FwpsFlowRemoveContext0(owfp_flow_id(f), FWPS_LAYER_STREAM_V4, g.stream_id),
                     STATUS_SUCCESS);
    assert_int_equal(FwpsCalloutUnregisterById0(g.stream_id), STATUS_SUCCESS);
    assert_int_equal(finding("R7", "unregister-with-contexts").count, 1);
    owfp_flow_close(f);
}

static void test_F6_remove_missing_context(void **state)
{
    (void)state;
    add_callouts();
    owfp_flow *f = open_flow(1006);
    assert_int_equal(FwpsFlowRemoveContext0(owfp_flow_id(f), FWPS_LAYER_STREAM_V4, g.stream_id),
                     STATUS_UNSUCCESSFUL);
    assert_true(finding("F6", "remove-missing-context").found);
    /* A flow already gone (teardown raced with the driver) is not a finding. */
    owfp_verify_reset();
    uint64_t id = owfp_flow_id(f);
    owfp_flow_close(f);
    assert_int_equal(FwpsFlowRemoveContext0(id, FWPS_LAYER_STREAM_V4, g.stream_id),
                     STATUS_UNSUCCESSFUL);
    assert_false(finding("F6", "remove-missing-context").found);
}

static void test_F4_associate_without_flow_delete(void **state)
{
    (void)state;
    add_callouts();
    owfp_flow *f = open_flow(1007);
    assert_int_equal(FwpsFlowAssociateContext0(owfp_flow_id(f), FWPS_LAYER_STREAM_V4, g.ale_id, 1),
                     STATUS_INVALID_PARAMETER);
    assert_true(finding("F4", "associate-without-flow-delete").found);
    owfp_flow_close(f);
}

/* ---- R8: calls into an unloaded driver ---------------------------------------------------- */

static void test_R8_call_after_unload(void **state)
{
    (void)state;
    /* The "module" is the ALE classifyFn's first byte. */
    owfp_verify_driver_loaded("fake_drv", (const void *)ale_classify, 1);
    add_callouts();
    owfp_flow *f = open_flow(1008);
    owfp_flow_close(f);
    assert_false(finding("R8", "call-after-unload").found);
    owfp_verify_driver_unloaded("fake_drv");
    f = open_flow(1009);
    owfp_flow_close(f);
    struct want w = finding("R8", "call-after-unload");
    assert_true(w.found);
    assert_string_equal(w.driver, "fake_drv");
    assert_int_equal(w.nframes, 1);
    /* A new module mapped there replaces the unloaded one. */
    owfp_verify_driver_loaded("fake_drv2", (const void *)ale_classify, 1);
    owfp_verify_reset();
    f = open_flow(1010);
    owfp_flow_close(f);
    assert_false(finding("R8", "call-after-unload").found);
    owfp_verify_driver_leaks("fake_drv2");
}

/* ---- S10, S27 ------------------------------------------------------------------------------- */

static void test_S10_inject_after_send_abort(void **state)
{
    (void)state;
    add_callouts();
    g.mode = M_INJECT_ON_ABORT;
    owfp_flow *f = open_flow(1011);
    indicate(f, OWFP_STREAM_SEND, "abc", 3);
    assert_false(finding("S10", "inject-after-send-abort").found);
    struct owfp_stream_result r;
    owfp_stream_abort(f, OWFP_STREAM_SEND, &r);
    owfp_flow_close(f);
    struct want w = finding("S10", "inject-after-send-abort");
    assert_true(w.found);
    assert_true(w.nframes > 0);
}

/* Stream callouts that permit everything, except the injector: shown the
 * SEND_ABORT, it injects out of band on behalf of g.victim_id, as that
 * callout's worker on another CPU might. */
static void NTAPI abort_neighbour_classify(const FWPS_INCOMING_VALUES0 *in,
                                           const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                           void *layerData, const FWPS_FILTER0 *filter,
                                           UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)flowContext;
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    out->actionType = FWP_ACTION_PERMIT;
    if (filter->action.calloutId == g.injector_id &&
        (io->streamData->flags & FWPS_STREAM_FLAG_SEND_ABORT))
        g.injector_status = inject_oob(g.abort_flow, g.victim_id, FWPS_STREAM_FLAG_SEND, "late");
}

/* Registers a neighbour callout in a sublayer of its own; the stream callout
 * of add_callouts sits at sublayer weight 0x100, so a lighter one runs after. */
static UINT32 add_neighbour(uint32_t n, uint16_t sublayer_weight)
{
    GUID key = h_guid(0x7e1f0100 + n);
    GUID sub = h_sublayer(n, sublayer_weight);
    UINT32 id = 0;
    assert_int_equal(h_register0(&key, 0, abort_neighbour_classify, h_notify_ok, NULL, &id),
                     STATUS_SUCCESS);
    assert_int_equal(h_callout_object(&key, STREAM4), STATUS_SUCCESS);
    struct h_filter_spec s = {.layer = STREAM4, .sublayer = &sub,
                              .action = FWP_ACTION_CALLOUT_INSPECTION, .callout = &key};
    assert_int_equal(h_filter(&s, NULL), STATUS_SUCCESS);
    return id;
}

/* The callouts of a flow are shown its ABORT one after another: an injection
 * by a callout not yet shown it is no finding, even when one before it has
 * been (seen in the proxy under live resets); by one already shown it is. */
static void test_S10_send_abort_is_per_callout(void **state)
{
    (void)state;
    add_callouts();              /* the stream callout, first (sublayer 0x100) */
    g.injector_id = add_neighbour(2, 0x80); /* second */
    UINT32 last = add_neighbour(3, 0x40);   /* third */
    g.mode = M_PERMIT;
    struct owfp_stream_result r;

    /* The injector injects as the third callout, not yet shown the ABORT. */
    g.victim_id = last;
    g.injector_status = STATUS_UNSUCCESSFUL; /* until it has injected */
    g.abort_flow = open_flow(1016);
    indicate(g.abort_flow, OWFP_STREAM_SEND, "abc", 3);
    owfp_stream_abort(g.abort_flow, OWFP_STREAM_SEND, &r);
    owfp_flow_close(g.abort_flow);
    assert_int_equal(g.injector_status, STATUS_SUCCESS);
    assert_false(finding("S10", "inject-after-send-abort").found);

    /* As the first one, which has been shown it. */
    g.victim_id = g.stream_id;
    g.injector_status = STATUS_UNSUCCESSFUL;
    g.abort_flow = open_flow(1017);
    indicate(g.abort_flow, OWFP_STREAM_SEND, "abc", 3);
    owfp_stream_abort(g.abort_flow, OWFP_STREAM_SEND, &r);
    owfp_flow_close(g.abort_flow);
    assert_int_equal(g.injector_status, STATUS_SUCCESS);
    struct want w = finding("S10", "inject-after-send-abort");
    assert_true(w.found);
    assert_int_equal(w.count, 1);
}

static void test_S27_oob_injection(void **state)
{
    (void)state;
    add_callouts();
    struct owfp_stream_result r;

    /* (d) the callout blocks all it is shown: out of band is legal. */
    g.mode = M_BLOCK_ALL;
    owfp_flow *f = open_flow(1012);
    indicate(f, OWFP_STREAM_SEND, "abc", 3);
    assert_int_equal(inject_oob(f, g.stream_id, FWPS_STREAM_FLAG_SEND, "xyz"), STATUS_SUCCESS);
    owfp_stream_poll(f, &r);
    owfp_flow_close(f);
    assert_false(finding("S27", "inject-outside-classify").found);

    /* (b) the direction is deferred: legal too, even after permitting. */
    g.mode = M_PERMIT;
    f = open_flow(1013);
    indicate(f, OWFP_STREAM_RECEIVE, "abc", 3);
    g.mode = M_DEFER_RECV;
    assert_true(indicate(f, OWFP_STREAM_RECEIVE, "def", 3) & OWFP_DIR_DEFERRED);
    assert_int_equal(inject_oob(f, g.stream_id, FWPS_STREAM_FLAG_RECEIVE, "xyz"),
                     STATUS_SUCCESS);
    owfp_flow_close(f);
    assert_false(finding("S27", "inject-outside-classify").found);

    /* It let bytes through and is not deferred: a finding. */
    g.mode = M_PERMIT;
    f = open_flow(1014);
    indicate(f, OWFP_STREAM_SEND, "abc", 3);
    assert_int_equal(inject_oob(f, g.stream_id, FWPS_STREAM_FLAG_SEND, "xyz"), STATUS_SUCCESS);
    owfp_stream_poll(f, &r);
    owfp_flow_close(f);
    struct want w = finding("S27", "inject-outside-classify");
    assert_true(w.found);
    assert_true(w.nframes > 0);
    assert_false(finding("S29", "mixed-inline-oob").found);
}

/* Out of band from another thread while the owner classifies (the verifier's
 * per-flow notes are shared between them; TSan runs this). */
struct oob_worker {
    owfp_flow *flow;
    atomic_bool stop;
    atomic_int injected;
};

static void *oob_worker(void *arg)
{
    struct oob_worker *w = arg;
    while (!atomic_load(&w->stop) && atomic_load(&w->injected) < 200)
        if (inject_oob(w->flow, g.stream_id, FWPS_STREAM_FLAG_SEND, "oob") == STATUS_SUCCESS)
            atomic_fetch_add(&w->injected, 1);
    return NULL;
}

static void test_S27_oob_from_another_thread(void **state)
{
    (void)state;
    add_callouts();
    g.mode = M_BLOCK_ALL;
    owfp_flow *f = open_flow(1016);
    indicate(f, OWFP_STREAM_SEND, "first", 5);
    struct oob_worker w = {.flow = f};
    atomic_init(&w.stop, false);
    atomic_init(&w.injected, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, oob_worker, &w), 0);
    static const char data[] = "0123456789";
    /* Until the worker has injected a good part, however the threads run. */
    for (int i = 0; i < 200 || (atomic_load(&w.injected) < 50 && i < 1000000); i++) {
        indicate(f, i % 2 ? OWFP_STREAM_SEND : OWFP_STREAM_RECEIVE, data, sizeof(data) - 1);
        struct owfp_stream_result r;
        owfp_stream_poll(f, &r);
    }
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    struct owfp_stream_result r;
    owfp_stream_poll(f, &r);
    owfp_flow_close(f);
    assert_true(atomic_load(&w.injected) >= 50);
    /* It blocks everything it is shown: legal (S27 d), nothing to report. */
    assert_int_equal(owfp_verify_findings(NULL, NULL), 0);
}

/* ---- E3, S26: injection handles at unload ---------------------------------------------------- */

static void test_E3_injection_handle_left_with_pending(void **state)
{
    (void)state;
    add_callouts();
    owfp_verify_driver_loaded("inj_drv", NULL, 0);
    HANDLE h = NULL;
    assert_int_equal(FwpsInjectionHandleCreate0(AF_INET, FWPS_INJECTION_TYPE_STREAM, &h),
                     STATUS_SUCCESS);
    g.mode = M_BLOCK_ALL;
    owfp_flow *f = open_flow(1015);
    indicate(f, OWFP_STREAM_SEND, "abc", 3);
    HANDLE keep = g.inj;
    g.inj = h;
    assert_int_equal(inject_oob(f, g.stream_id, FWPS_STREAM_FLAG_SEND, "xyz"), STATUS_SUCCESS);
    g.inj = keep;
    /* Not polled: the injection is still pending when the "driver" goes. */
    owfp_verify_driver_unloaded("inj_drv");
    owfp_verify_driver_leaks("inj_drv");
    struct want handle = finding("E3", "leak-injection-handle");
    struct want pending = finding("S26", "injection-pending-at-unload");
    assert_true(handle.found);
    assert_int_equal(handle.count, 1);
    assert_string_equal(handle.driver, "inj_drv");
    assert_true(pending.found);
    assert_int_equal(pending.count, 1);
    owfp_flow_close(f); /* completes the injection */
    assert_int_equal(FwpsInjectionHandleDestroy0(h), STATUS_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_verify_table_dedupe_counts_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_first_occurrence_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_off_records_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_S17_need_more_data_at_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_S17_need_more_data_after_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_C4_classify_reentered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_R7_unregister_with_contexts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_F6_remove_missing_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_F4_associate_without_flow_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_R8_call_after_unload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_S10_inject_after_send_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_S10_send_abort_is_per_callout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_S27_oob_injection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_S27_oob_from_another_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_E3_injection_handle_left_with_pending, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
