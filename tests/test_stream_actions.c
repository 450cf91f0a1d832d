/*
 * Spec §10.4 and §12 (S17-S22, S32, O1-O4) plus the T14, T15 and T19 rows
 * of the §13 matrix: the stream actions (NEED_MORE_DATA, DROP_CONNECTION,
 * DEFER, ALLOW_CONNECTION), FwpsStreamContinue0, filters coming and going
 * on established flows, offload, and callouts that break the contract —
 * none of which may crash, hang or make the engine hold unbounded memory.
 *
 * The recording callouts and the data-plane helpers are those of
 * stream_harness.h, shared with test_stream.c.
 */
#include "stream_harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define KiB 1024u
#define MiB (1024u * 1024u)
#define CHUNK (64u * KiB)
#define LIMIT (8u * MiB)

static struct ans defer_ans(UINT32 action)
{
    return (struct ans){.action = action, .stream_action = FWPS_STREAM_ACTION_DEFER};
}

static struct ans stream_ans(UINT32 stream_action, UINT32 action)
{
    return (struct ans){.action = action, .stream_action = stream_action};
}

static owfp_flow *open_port(uint16_t remote_port)
{
    struct owfp_flow_params p = h_params4(40000, remote_port, OWFP_OUTBOUND);
    owfp_flow *f = h_open(&p, NULL);
    g.flow_id = owfp_flow_id(f);
    return f;
}

static FWPM_FILTER_CONDITION0 port_cond(uint16_t port)
{
    FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    c.matchType = FWP_MATCH_EQUAL;
    c.conditionValue.type = FWP_UINT16;
    c.conditionValue.uint16 = port;
    return c;
}

static UINT64 sf_port(int slot, const GUID *sublayer, UINT32 action, uint16_t port, UINT32 flags)
{
    FWPM_FILTER_CONDITION0 c = port_cond(port);
    return filter_at(&FWPM_LAYER_STREAM_V4, slot, sublayer, action, 1, flags, &c, 1);
}

/* ---- S17 NEED_MORE_DATA --------------------------------------------------- */

static void test_S17_need_more_data_ignores_count_and_action_type(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    /* trustbase: a count with NEED_MORE_DATA; deep-inspection example:
     * actionType CONTINUE. Everything is held, nothing passes. */
    g.co[0].script[0] = (struct ans){.action = FWP_ACTION_CONTINUE,
                                     .enforced = 2,
                                     .stream_action = FWPS_STREAM_ACTION_NEED_MORE_DATA,
                                     .required = 6};
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    ind(f, RECV, "abcd");
    assert_out(RECV, "");
    assert_int_equal(g.res.dir[RECV].held_bytes, 4);
    assert_int_equal(g.res.dir[RECV].state, OWFP_DIR_HELD);
    assert_int_equal(g.flow_state, 0);
    ind(f, RECV, "ef");
    assert_int_equal(g.co[0].n, 2);
    assert_rec(&g.co[0].rec[1], "abcdef");
    assert_out(RECV, "abcdef");
    owfp_flow_close(f);
    done();
}

static void test_S17_threshold_is_a_total_and_needs_new_bytes(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = NMD(2); /* already satisfied: waits for the next bytes */
    g.co[0].script[1] = ANS(FWP_ACTION_PERMIT);
    g.co[0].script[2] = NMD(5); /* dataLength + 1: one more byte */
    g.co[0].nscript = 3;
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    poll_flow(f);
    ind(f, SEND, "other direction");
    assert_int_equal(g.co[0].n, 2); /* abc, then the send data */
    assert_rec(&g.co[0].rec[1], "other direction");
    ind(f, RECV, "d");
    assert_int_equal(g.co[0].n, 3);
    assert_rec(&g.co[0].rec[2], "abcd");
    /* Asked for 5 in total (the "additional" reading would wait for 9). */
    ind(f, RECV, "e");
    assert_int_equal(g.co[0].n, 4);
    assert_rec(&g.co[0].rec[3], "abcde");
    assert_out(RECV, "abcde");
    owfp_flow_close(f);
    done();
}

static void test_S17_held_bytes_outlive_the_callers_buffer(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = NMD(6);
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    char buf[4] = "abc";
    ind(f, RECV, buf);
    memcpy(buf, "XYZ", 3); /* the data plane reuses its buffer */
    char buf2[4] = "def";
    ind(f, RECV, buf2);
    assert_rec(&g.co[0].rec[1], "abcdef");
    assert_out(RECV, "abcdef");
    owfp_flow_close(f);
    done();
}

static void test_S17_held_bytes_are_copied_once(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = NMD(6);
    g.co[0].script[1] = NMD(12);
    g.co[0].nscript = 2;
    owfp_flow *f = open4();
    static const char b1[] = "ab", b2[] = "cd", b3[] = "ef", b4[] = "ghijkl";
    ind(f, RECV, b1);
    ind(f, RECV, b2);
    ind(f, RECV, b3);
    assert_int_equal(g.co[0].n, 2);
    const struct rec *r1 = &g.co[0].rec[1];
    assert_rec(r1, "abcdef");
    assert_int_equal(r1->nnbl, 3);
    /* Held pieces live in engine memory, the newest piece is the caller's. */
    assert_ptr_not_equal(r1->nbl_va[0], b1);
    assert_ptr_not_equal(r1->nbl_va[1], b2);
    assert_ptr_equal(r1->nbl_va[2], b3);
    ind(f, RECV, b4);
    const struct rec *r2 = &g.co[0].rec[2];
    assert_rec(r2, "abcdefghijkl");
    assert_int_equal(r2->nnbl, 4);
    /* Bytes already held are not copied again. */
    assert_ptr_equal(r2->nbl_va[0], r1->nbl_va[0]);
    assert_ptr_equal(r2->nbl_va[1], r1->nbl_va[1]);
    assert_ptr_not_equal(r2->nbl_va[2], b3);
    assert_ptr_equal(r2->nbl_va[3], b4);
    assert_int_equal(g.res.dir[RECV].nspans, 4);
    assert_ptr_equal(g.res.dir[RECV].spans[3].data, b4);
    assert_out(RECV, "abcdefghijkl");
    owfp_flow_close(f);
    done();
}

static uint8_t chunk_byte(size_t chunk, size_t i)
{
    return (uint8_t)(chunk * 7 + i * 13 + (i >> 8));
}

static void fill_chunk(uint8_t *buf, size_t chunk)
{
    for (size_t i = 0; i < CHUNK; i++)
        buf[i] = chunk_byte(chunk, i);
}

static void hook_limit(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                       const FWPS_INCOMING_METADATA_VALUES0 *meta,
                       FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)call;
    (void)in;
    (void)meta;
    if (out->flags & FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED) {
        out->actionType = FWP_ACTION_PERMIT;
        io->streamAction = FWPS_STREAM_ACTION_NONE;
        io->countBytesEnforced = 0;
    } else {
        io->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
        io->countBytesRequired = 0xffffffffu;
    }
}

static void test_S17_buffer_limit_reached_at_8MiB(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].hook = hook_limit;
    owfp_flow *f = open4();
    uint8_t *buf = malloc(CHUNK);
    assert_non_null(buf);
    size_t chunks = LIMIT / CHUNK;
    for (size_t c = 0; c < chunks; c++) {
        fill_chunk(buf, c);
        assert_int_equal(indm(f, RECV, buf, CHUNK, 0), STATUS_SUCCESS);
        assert_true(g.res.dir[RECV].held_bytes <= LIMIT);
        if (c + 1 < chunks) {
            assert_int_equal(g.res.dir[RECV].held_bytes, (c + 1) * CHUNK);
            assert_int_equal(g.out[RECV].n, 0);
        }
    }
    /* Re-indicated once, whole, with BUFFER_LIMIT_REACHED; then permitted. */
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[0].rec[0].in_flags, 0);
    assert_int_equal(g.co[0].rec[1].len, LIMIT);
    assert_int_equal(g.co[0].rec[1].in_flags, FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED);
    assert_int_equal(g.res.dir[RECV].held_bytes, 0);
    assert_int_equal(g.flow_state, 0);
    assert_int_equal(g.out[RECV].n, LIMIT);
    for (size_t c = 0; c < chunks; c++) {
        fill_chunk(buf, c);
        assert_memory_equal(g.out[RECV].buf + c * CHUNK, buf, CHUNK);
    }
    free(buf);
    owfp_flow_close(f);
    done();
}

static void test_S17_Q16_need_more_data_past_the_8MiB_limit_drops(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].dflt = NMD(0xffffffffu); /* ignores the limit */
    owfp_flow *f = open4();
    uint8_t *buf = malloc(CHUNK);
    assert_non_null(buf);
    size_t c;
    for (c = 0; c < 2 * LIMIT / CHUNK; c++) {
        fill_chunk(buf, c);
        assert_int_equal(indm(f, RECV, buf, CHUNK, 0), STATUS_SUCCESS);
        assert_true(g.res.dir[RECV].held_bytes <= LIMIT + CHUNK);
        if (g.flow_state & OWFP_FLOW_DROPPED)
            break;
    }
    assert_int_equal(g.flow_state & OWFP_FLOW_DROPPED, OWFP_FLOW_DROPPED);
    assert_int_equal(c + 1, LIMIT / CHUNK);
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[0].rec[1].in_flags, FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED);
    assert_int_equal(g.res.dir[RECV].held_bytes, 0);
    assert_int_equal(g.out[RECV].n, 0);
    /* Later data is accepted and discarded; the callout is not asked again. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(indm(f, RECV, buf, CHUNK, 0), STATUS_SUCCESS);
        assert_int_equal(g.res.dir[RECV].held_bytes, 0);
        assert_int_equal(g.res.dir[RECV].nspans, 0);
    }
    assert_int_equal(g.co[0].n, 2);
    free(buf);
    owfp_flow_close(f);
    done();
}

static void test_S17_Q16_need_more_data_with_no_more_data_drops(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    reg(1, 0);
    sf_port(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1001, 0);
    sf_port(1, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1002, 0);
    g.co[0].dflt = NMD(100); /* also when NO_MORE_DATA is set */
    owfp_flow *f = open_port(1001);
    ind(f, RECV, "abc");
    ind(f, SEND, "xyz");
    assert_int_equal(g.flow_state, 0);
    fin(f, RECV);
    assert_int_equal(g.co[0].n, 3);
    assert_int_equal(g.co[0].rec[2].in_flags, FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA);
    assert_int_equal(g.flow_state & OWFP_FLOW_DROPPED, OWFP_FLOW_DROPPED);
    assert_false(g.out[RECV].fin);
    for (int d = 0; d < 2; d++)
        assert_int_equal(g.res.dir[d].held_bytes, 0);
    assert_out(RECV, "");
    assert_out(SEND, "");
    owfp_flow_close(f);

    /* NEED_MORE_DATA on the empty DISCONNECT indication itself. */
    g.co[1].dflt = ANS(FWP_ACTION_PERMIT);
    g.co[1].script[1] = NMD(1);
    g.co[1].nscript = 2;
    f = open_port(1002);
    ind(f, SEND, "data");
    fin(f, SEND);
    assert_int_equal(g.co[1].n, 2);
    assert_int_equal(g.co[1].rec[1].flags, FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_SEND_DISCONNECT);
    assert_int_equal(g.flow_state & OWFP_FLOW_DROPPED, OWFP_FLOW_DROPPED);
    assert_false(g.out[SEND].fin);
    owfp_flow_close(f);
    done();
}

/* ---- S18 DROP_CONNECTION (T15) ------------------------------------------- */

static void test_S18_T15_drop_connection_by_filter_type(void **state)
{
    (void)state;
    reset();
    sublayers();
    for (int i = 0; i < 4; i++)
        reg(i, 0);
    sf_port(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1001, 0);
    sf_port(1, &g_hi, FWP_ACTION_CALLOUT_UNKNOWN, 1002, 0);
    sf_port(2, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 1003, 0);
    sf(3, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].dflt = stream_ans(FWPS_STREAM_ACTION_DROP_CONNECTION, FWP_ACTION_NONE);
    g.co[1].dflt = stream_ans(FWPS_STREAM_ACTION_DROP_CONNECTION, FWP_ACTION_BLOCK);
    g.co[2].dflt = stream_ans(FWPS_STREAM_ACTION_DROP_CONNECTION, FWP_ACTION_CONTINUE);
    g.co[3].dflt = ANS(FWP_ACTION_CONTINUE);

    owfp_flow *f1 = open_port(1001);
    ind(f1, RECV, "abc");
    assert_int_equal(g.flow_state, OWFP_FLOW_DROPPED);
    assert_out(RECV, "");
    owfp_flow *f2 = open_port(1002);
    ind(f2, SEND, "abc");
    assert_int_equal(g.flow_state, OWFP_FLOW_DROPPED);
    assert_out(SEND, "");
    assert_int_equal(g.co[3].n, 0);
    /* From an INSPECTION filter it is ignored: the data continues. */
    owfp_flow *f3 = open_port(1003);
    ind(f3, RECV, "inspected");
    assert_int_equal(g.flow_state, 0);
    assert_out(RECV, "inspected");
    assert_int_equal(g.co[3].n, 1);
    assert_rec(&g.co[3].rec[0], "inspected");
    ind(f3, RECV, "again");
    assert_out(RECV, "inspectedagain");
    assert_int_equal(g.co[2].n, 2);

    /* A dropped flow accepts and discards later data without classifying. */
    ind(f1, RECV, "later");
    ind(f1, SEND, "later");
    assert_int_equal(g.flow_state, OWFP_FLOW_DROPPED);
    assert_int_equal(g.res.dir[RECV].nspans + g.res.dir[SEND].nspans, 0);
    assert_int_equal(g.co[0].n, 1);
    fin(f1, RECV);
    assert_false(g.out[RECV].fin);
    owfp_flow_close(f1);
    owfp_flow_close(f2);
    owfp_flow_close(f3);
    done();
}

static void hook_drop_after_inject(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                                   const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                   FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)in;
    (void)meta;
    (void)out;
    if (call == 1) { /* the remainder "def" */
        g.hook_status[g.nhook_status++] = inject(1, FWPS_STREAM_FLAG_RECEIVE, "inj", 3);
        io->streamAction = FWPS_STREAM_ACTION_DROP_CONNECTION;
    }
}

static void test_S18_drop_discards_everything_of_both_directions(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = defer_ans(FWP_ACTION_NONE); /* SEND: deferred */
    g.co[0].script[1] = ANS(FWP_ACTION_PERMIT);
    g.co[0].nscript = 2;
    g.co[1].script[0] = ANSN(FWP_ACTION_PERMIT, 3); /* RECV abcdef: abc passes */
    g.co[1].nscript = 1;
    g.co[1].hook = hook_drop_after_inject;
    inj_setup();
    owfp_flow *f = open4();
    ind(f, SEND, "held");
    assert_int_equal(g.res.dir[SEND].held_bytes, 4);
    assert_int_equal(g.res.dir[SEND].state, OWFP_DIR_DEFERRED | OWFP_DIR_HELD);
    ind(f, RECV, "abcdef");
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[1].n, 2);
    assert_rec(&g.co[1].rec[1], "def");
    assert_int_equal(g.nhook_status, 1);
    assert_int_equal(g.hook_status[0], STATUS_SUCCESS);
    /* "abc" had passed the last stage but is not handed out, the injection
     * is cancelled at once, nothing stays held in either direction. */
    assert_int_equal(g.flow_state, OWFP_FLOW_DROPPED);
    for (int d = 0; d < 2; d++) {
        assert_int_equal(g.res.dir[d].nspans, 0);
        assert_int_equal(g.res.dir[d].held_bytes, 0);
        assert_int_equal(g.res.dir[d].state & (OWFP_DIR_HELD | OWFP_DIR_DEFERRED), 0);
    }
    assert_int_equal(atomic_load(&g.completions), 1);
    assert_int_equal(g.last_completion, STATUS_CANCELLED);
    /* An out-of-band injection after the drop completes cancelled too. */
    assert_int_equal(inject(0, FWPS_STREAM_FLAG_SEND, "oob", 3), STATUS_SUCCESS);
    ind(f, RECV, "more");
    assert_int_equal(atomic_load(&g.completions), 2);
    assert_int_equal(atomic_load(&g.cancelled), 2);
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[1].n, 2);
    assert_out(RECV, "");
    assert_out(SEND, "");
    owfp_flow_close(f);
    done();
}

/* ---- S19 DEFER and FwpsStreamContinue0 (T14) ------------------------------ */

struct continue_job {
    UINT64 flow;
    UINT32 callout;
    UINT32 flags;
    NTSTATUS status;
};

static void *continue_worker(void *arg)
{
    struct continue_job *j = arg;
    j->status = FwpsStreamContinue0(j->flow, j->callout, FWPS_LAYER_STREAM_V4, j->flags);
    return NULL;
}

static void test_S19_T14_defer_then_continue_from_a_worker(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = defer_ans(FWP_ACTION_NONE);
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    assert_int_equal(owfp_flow_set_wakeup(f, wakeup, NULL), STATUS_SUCCESS);
    static const char b1[] = "abc", b2[] = "def";
    ind(f, RECV, b1);
    assert_int_equal(g.res.dir[RECV].nspans, 0);
    assert_int_equal(g.res.dir[RECV].state, OWFP_DIR_DEFERRED | OWFP_DIR_HELD);
    assert_int_equal(g.res.dir[RECV].held_bytes, 3);
    /* Data arriving meanwhile queues; nothing is indicated. */
    ind(f, RECV, b2);
    assert_int_equal(g.co[0].n, 1);
    assert_int_equal(g.res.dir[RECV].state, OWFP_DIR_DEFERRED | OWFP_DIR_HELD);
    assert_int_equal(g.res.dir[RECV].held_bytes, 6);
    /* The other direction is not held up. */
    ind(f, SEND, "send");
    assert_int_equal(g.co[0].n, 2);
    assert_out(SEND, "send");
    assert_true(g.res.dir[RECV].state & OWFP_DIR_DEFERRED);
    poll_flow(f);
    assert_int_equal(g.co[0].n, 2);

    struct continue_job j = {g.flow_id, g.co[0].id, FWPS_STREAM_FLAG_RECEIVE, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, continue_worker, &j), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(j.status, STATUS_SUCCESS);
    assert_int_equal(atomic_load(&g.wakeups), 1);
    assert_true(atomic_load(&g.wakeup_foreign));
    assert_int_equal(g.co[0].n, 2); /* takes effect at the owner's next call */
    poll_flow(f);
    assert_int_equal(g.co[0].n, 3);
    const struct rec *r = &g.co[0].rec[2];
    assert_rec(r, "abcdef");
    assert_int_equal(r->flags, FWPS_STREAM_FLAG_RECEIVE);
    assert_int_equal(r->nnbl, 2);
    assert_out(RECV, "abcdef");
    assert_int_equal(g.res.dir[RECV].state, 0);
    assert_int_equal(g.res.dir[RECV].held_bytes, 0);
    /* Once continued, continuing again is refused. */
    assert_int_equal(FwpsStreamContinue0(g.flow_id, g.co[0].id, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_INVALID_PARAMETER);
    owfp_flow_close(f);
    done();
}

/* A stmedit-style worker may continue while the deferring classify is still
 * running: the continue is accepted and takes effect at the next call. */
static void hook_continue_while_deferring(struct co *c, int call,
                                          const FWPS_INCOMING_VALUES0 *in,
                                          const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                          FWPS_STREAM_CALLOUT_IO_PACKET0 *io,
                                          FWPS_CLASSIFY_OUT0 *out)
{
    (void)in;
    (void)meta;
    (void)io;
    (void)out;
    if (call != 0)
        return;
    struct continue_job j = {g.flow_id, c->id, FWPS_STREAM_FLAG_RECEIVE, -1};
    pthread_t t;
    if (pthread_create(&t, NULL, continue_worker, &j) == 0 && pthread_join(t, NULL) == 0)
        g.hook_status[g.nhook_status++] = j.status;
}

static void test_S19_continue_during_the_deferring_classify(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = defer_ans(FWP_ACTION_NONE);
    g.co[0].nscript = 1;
    g.co[0].hook = hook_continue_while_deferring;
    owfp_flow *f = open4();
    assert_int_equal(owfp_flow_set_wakeup(f, wakeup, NULL), STATUS_SUCCESS);
    ind(f, RECV, "abc");
    assert_int_equal(g.nhook_status, 1);
    assert_int_equal(g.hook_status[0], STATUS_SUCCESS);
    assert_int_equal(atomic_load(&g.wakeups), 1);
    assert_true(g.res.dir[RECV].state & OWFP_DIR_DEFERRED);
    poll_flow(f);
    assert_int_equal(g.co[0].n, 2);
    assert_rec(&g.co[0].rec[1], "abc");
    assert_out(RECV, "abc");
    assert_int_equal(g.res.dir[RECV].state, 0);
    owfp_flow_close(f);
    done();
}

static void test_S19_Q19_defer_on_send_is_honoured(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = defer_ans(FWP_ACTION_PERMIT);
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    ind(f, SEND, "abc");
    ind(f, SEND, "de");
    assert_int_equal(g.co[0].n, 1);
    assert_out(SEND, "");
    assert_int_equal(g.res.dir[SEND].state, OWFP_DIR_DEFERRED | OWFP_DIR_HELD);
    assert_int_equal(g.res.dir[SEND].held_bytes, 5);
    /* The other direction's flag does not continue it. */
    assert_int_equal(FwpsStreamContinue0(g.flow_id, g.co[0].id, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_INVALID_PARAMETER);
    /* Continued from the owner thread, outside any classify. */
    assert_int_equal(FwpsStreamContinue0(g.flow_id, g.co[0].id, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_SEND),
                     STATUS_SUCCESS);
    poll_flow(f);
    assert_int_equal(g.co[0].n, 2);
    assert_rec(&g.co[0].rec[1], "abcde");
    assert_out(SEND, "abcde");
    assert_int_equal(g.res.dir[SEND].state, 0);
    owfp_flow_close(f);
    done();
}

static void test_S19_continue_status_codes(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    reg(1, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 2);
    sf(1, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[1] = defer_ans(FWP_ACTION_NONE);
    g.co[0].nscript = 2;
    owfp_flow *f = open4();
    UINT64 id = g.flow_id;
    UINT32 co = g.co[0].id;
    /* Before anything was deferred: a continue without a defer. */
    ind(f, SEND, "x");
    assert_int_equal(FwpsStreamContinue0(id, co, FWPS_LAYER_STREAM_V4, FWPS_STREAM_FLAG_SEND),
                     STATUS_INVALID_PARAMETER);
    ind(f, RECV, "abc"); /* deferred now */
    assert_int_equal(g.res.dir[RECV].state & OWFP_DIR_DEFERRED, OWFP_DIR_DEFERRED);
    assert_int_equal(FwpsStreamContinue0(id, co, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4,
                                         FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_FWP_INVALID_PARAMETER);
    assert_int_equal(FwpsStreamContinue0(id, co, FWPS_LAYER_STREAM_V4, 0),
                     STATUS_FWP_INVALID_PARAMETER);
    assert_int_equal(FwpsStreamContinue0(id, co, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_SEND),
                     STATUS_FWP_INVALID_PARAMETER);
    assert_int_equal(FwpsStreamContinue0(id + 1000, co, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_NOT_FOUND);
    /* A callout on the path that did not defer, and one not on it. */
    assert_int_equal(FwpsStreamContinue0(id, g.co[1].id, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(FwpsStreamContinue0(id, 0xfff0, FWPS_LAYER_STREAM_V4, FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_INVALID_PARAMETER);
    poll_flow(f);
    assert_int_equal(g.res.dir[RECV].state & OWFP_DIR_DEFERRED, OWFP_DIR_DEFERRED);
    assert_int_equal(FwpsStreamContinue0(id, co, FWPS_LAYER_STREAM_V4, FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_SUCCESS);
    poll_flow(f);
    assert_out(RECV, "abc");
    owfp_flow_close(f);
    assert_int_equal(FwpsStreamContinue0(id, co, FWPS_LAYER_STREAM_V4, FWPS_STREAM_FLAG_RECEIVE),
                     STATUS_NOT_FOUND);
    done();
}

static void hook_continue_inside(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                 FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)call;
    (void)in;
    (void)io;
    (void)out;
    g.hook_status[g.nhook_status++] = FwpsStreamContinue0(
        meta->flowHandle, g.co[0].id, FWPS_LAYER_STREAM_V4, FWPS_STREAM_FLAG_RECEIVE);
}

static void test_S19_continue_from_inside_classify_is_refused(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[0] = defer_ans(FWP_ACTION_NONE);
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    g.co[0].hook = hook_continue_inside; /* the deferring callout itself */
    g.co[1].hook = hook_continue_inside; /* and another one */
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    ind(f, SEND, "x");
    assert_int_equal(g.nhook_status, 2);
    assert_int_equal(g.hook_status[0], STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g.hook_status[1], STATUS_INVALID_DEVICE_STATE);
    poll_flow(f);
    assert_int_equal(g.res.dir[RECV].state & OWFP_DIR_DEFERRED, OWFP_DIR_DEFERRED);
    assert_out(RECV, "");
    owfp_flow_close(f);
    done();
}

/* ---- S20 ALLOW_CONNECTION, O1-O4 ----------------------------------------- */

static void test_S20_allow_connection_permits_and_stops_both_directions(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    /* With a partial count and BLOCK: still the whole indication passes. */
    g.co[0].dflt = (struct ans){.action = FWP_ACTION_BLOCK,
                                .enforced = 2,
                                .stream_action = FWPS_STREAM_ACTION_ALLOW_CONNECTION};
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *f = open4();
    ind(f, RECV, "abcdef");
    assert_int_equal(g.co[0].n, 1);
    assert_out(RECV, "abcdef");
    assert_int_equal(g.co[1].n, 1);
    assert_rec(&g.co[1].rec[0], "abcdef");
    ind(f, RECV, "x");
    ind(f, SEND, "y");
    fin(f, SEND);
    assert_int_equal(g.co[0].n, 1); /* never again, either direction */
    assert_int_equal(g.co[1].n, 4);
    assert_out(RECV, "abcdefx");
    assert_out(SEND, "y");
    assert_true(g.out[SEND].fin);
    assert_int_equal(g.flow_state & OWFP_FLOW_DROPPED, 0);
    owfp_flow_close(f);

    /* PERMIT, NONE or CONTINUE beside it: all the same. */
    const UINT32 actions[] = {FWP_ACTION_PERMIT, FWP_ACTION_NONE, FWP_ACTION_CONTINUE};
    for (int i = 0; i < 3; i++) {
        g.co[0].dflt = stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, actions[i]);
        int before = g.co[0].n;
        f = open4();
        ind(f, SEND, "1");
        ind(f, SEND, "2");
        assert_int_equal(g.co[0].n, before + 1);
        owfp_flow_close(f);
    }
    assert_out(SEND, "y121212");
    done();
}

static void test_S20_allow_connection_releases_what_the_callout_held(void **state)
{
    (void)state;
    reset();
    reg(0, FWP_CALLOUT_FLAG_ALLOW_OFFLOAD);
    sf_port(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1001, 0);
    sf_port(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1002, 0);
    /* Flow 1: RECV waits (NEED_MORE_DATA), then SEND lets go of the flow. */
    g.co[0].script[0] = NMD(100);
    g.co[0].script[1] = stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, FWP_ACTION_PERMIT);
    /* Flow 2: RECV deferred, then SEND lets go of the flow. */
    g.co[0].script[2] = defer_ans(FWP_ACTION_NONE);
    g.co[0].script[3] = stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, FWP_ACTION_PERMIT);
    g.co[0].nscript = 4;
    owfp_flow *f = open_port(1001);
    ind(f, RECV, "held");
    assert_int_equal(g.res.dir[RECV].held_bytes, 4);
    ind(f, SEND, "go");
    /* The stage passes everything now, held bytes included, unclassified. */
    assert_int_equal(g.co[0].n, 2);
    assert_out(RECV, "held");
    assert_out(SEND, "go");
    assert_int_equal(g.res.dir[RECV].held_bytes, 0);
    assert_int_equal(g.res.dir[RECV].state & OWFP_DIR_HELD, 0);
    assert_int_equal(g.flow_state, OWFP_FLOW_OFFLOADABLE);
    owfp_flow_close(f);

    f = open_port(1002);
    ind(f, RECV, "deferred");
    assert_int_equal(g.res.dir[RECV].state, OWFP_DIR_DEFERRED | OWFP_DIR_HELD);
    ind(f, SEND, "go");
    assert_int_equal(g.co[0].n, 4);
    assert_out(RECV, "helddeferred");
    assert_out(SEND, "gogo");
    assert_int_equal(g.res.dir[RECV].held_bytes, 0);
    assert_int_equal(g.res.dir[RECV].state & (OWFP_DIR_HELD | OWFP_DIR_DEFERRED), 0);
    assert_int_equal(g.flow_state, OWFP_FLOW_OFFLOADABLE);
    ind(f, RECV, "more");
    assert_int_equal(g.co[0].n, 4);
    assert_out(RECV, "helddeferredmore");
    owfp_flow_close(f);
    done();
}

static void test_O4_allow_connection_makes_the_flow_offloadable(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, FWP_CALLOUT_FLAG_ALLOW_OFFLOAD);
    reg(1, FWP_CALLOUT_FLAG_ALLOW_OFFLOAD);
    sf_port(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 80, 0);
    sf_port(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 80, 0);
    g.co[0].dflt = stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, FWP_ACTION_PERMIT);
    g.co[1].script[0] = ANS(FWP_ACTION_CONTINUE);
    g.co[1].nscript = 1;
    g.co[1].dflt = stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, FWP_ACTION_CONTINUE);
    owfp_flow *f = open_port(80);
    ind(f, RECV, "a"); /* callout 0 lets go, callout 1 still inspects */
    assert_int_equal(g.flow_state, 0);
    ind(f, SEND, "b"); /* now callout 1 lets go too */
    assert_int_equal(g.flow_state, OWFP_FLOW_OFFLOADABLE);
    ind(f, RECV, "c");
    assert_int_equal(g.flow_state, OWFP_FLOW_OFFLOADABLE);
    assert_int_equal(g.co[0].n + g.co[1].n, 3);
    assert_out(RECV, "ac");
    assert_out(SEND, "b");
    owfp_flow_close(f);
    /* A flow that matches no stream filter is offloadable at once. */
    f = open_port(443);
    ind(f, RECV, "tls");
    assert_int_equal(g.flow_state, OWFP_FLOW_OFFLOADABLE);
    assert_out(RECV, "actls");
    owfp_flow_close(f);
    done();
}

static void test_O1_callout_without_allow_offload_keeps_the_flow_inspected(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, FWP_CALLOUT_FLAG_ALLOW_OFFLOAD);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].dflt = g.co[1].dflt = stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, FWP_ACTION_PERMIT);
    owfp_flow *f = open4();
    ind(f, RECV, "a");
    ind(f, SEND, "b");
    /* Both let go (S20), but callout 1 does not allow offload. */
    assert_int_equal(g.co[0].n, 1);
    assert_int_equal(g.co[1].n, 1);
    assert_int_equal(g.flow_state, 0);
    assert_out(RECV, "a");
    assert_out(SEND, "b");
    owfp_flow_close(f);
    done();
}

static void test_O2_rsc_uso_uro_flags_do_not_change_stream_indications(void **state)
{
    (void)state;
    reset();
    reg(0, FWP_CALLOUT_FLAG_ALLOW_RSC | FWP_CALLOUT_FLAG_ALLOW_USO | FWP_CALLOUT_FLAG_ALLOW_URO);
    reg(1, 0);
    sublayers();
    sf(0, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[0] = g.co[1].script[0] = ANS(FWP_ACTION_CONTINUE);
    g.co[0].nscript = g.co[1].nscript = 1;
    g.co[0].dflt = g.co[1].dflt =
        stream_ans(FWPS_STREAM_ACTION_ALLOW_CONNECTION, FWP_ACTION_CONTINUE);
    owfp_flow *f = open4();
    /* A coalesced 100 KiB receive reaches both callouts whole. */
    size_t n = 100 * KiB;
    uint8_t *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 31);
    assert_int_equal(indm(f, RECV, big, n, OWFP_STREAM_PUSH), STATUS_SUCCESS);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(g.co[k].n, 1);
        assert_int_equal(g.co[k].rec[0].len, n);
        assert_int_equal(g.co[k].rec[0].nnbl, 1);
        assert_int_equal(g.co[k].rec[0].flags,
                         FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_RECEIVE_PUSH);
        assert_memory_equal(g.co[k].rec[0].bytes, big, RECBYTES);
    }
    assert_int_equal(g.out[RECV].n, n);
    assert_memory_equal(g.out[RECV].buf, big, n);
    /* They do not stand for ALLOW_OFFLOAD either. */
    ind(f, SEND, "x");
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[1].n, 2);
    assert_int_equal(g.flow_state, 0);
    free(big);
    owfp_flow_close(f);
    done();
}

static void hook_clone(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                       const FWPS_INCOMING_METADATA_VALUES0 *meta,
                       FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)call;
    (void)in;
    (void)meta;
    (void)out;
    NET_BUFFER_LIST *clone = NULL;
    g.hook_status[g.nhook_status++] = FwpsCloneStreamData0(io->streamData, NULL, NULL, 0, &clone);
    if (clone)
        FwpsDiscardClonedStreamData0(clone, 0, FALSE);
}

static void test_O3_l2_batch_flag_does_not_change_stream_indications(void **state)
{
    (void)state;
    reset();
    reg(0, FWP_CALLOUT_FLAG_ALLOW_L2_BATCH_CLASSIFY);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].hook = hook_clone;
    owfp_flow *f = open4();
    ind(f, RECV, "one");
    ind(f, RECV, "two");
    assert_int_equal(g.co[0].n, 2);
    for (int i = 0; i < 2; i++) {
        assert_true(g.co[0].rec[i].chain_ok);
        assert_int_equal(g.co[0].rec[i].nnbl, 1);
        assert_int_equal(g.hook_status[i], STATUS_SUCCESS);
    }
    assert_out(RECV, "onetwo");
    owfp_flow_close(f);
    done();
}

/* ---- S21, S22, S32 ----------------------------------------------------------- */

static void test_S21_out_of_range_stream_action_drops(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    reg(2, 0);
    sf_port(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1001, 0);
    sf_port(1, &g_hi, FWP_ACTION_CALLOUT_UNKNOWN, 1002, 0);
    sf_port(2, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 1003, 0);
    g.co[0].dflt = stream_ans(FWPS_STREAM_ACTION_TYPE_MAX, FWP_ACTION_PERMIT);
    g.co[1].dflt = stream_ans(0x7fffffff, FWP_ACTION_PERMIT);
    g.co[2].dflt = stream_ans(FWPS_STREAM_ACTION_TYPE_MAX + 3, FWP_ACTION_CONTINUE);
    owfp_flow *f1 = open_port(1001);
    ind(f1, RECV, "abc");
    assert_int_equal(g.flow_state, OWFP_FLOW_DROPPED);
    owfp_flow *f2 = open_port(1002);
    ind(f2, SEND, "abc");
    assert_int_equal(g.flow_state, OWFP_FLOW_DROPPED);
    assert_out(RECV, "");
    assert_out(SEND, "");
    /* From an INSPECTION filter a drop, and so this, is ignored. */
    owfp_flow *f3 = open_port(1003);
    ind(f3, RECV, "abc");
    assert_int_equal(g.flow_state, 0);
    assert_out(RECV, "abc");
    owfp_flow_close(f1);
    owfp_flow_close(f2);
    owfp_flow_close(f3);
    done();
}

static void test_S22_deleted_filter_releases_held_data_as_permitted(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    reg(2, 0);
    UINT64 f0 = sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 9);
    sf(2, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 5);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[0] = NMD(100);                  /* RECV: waiting */
    g.co[0].script[1] = defer_ans(FWP_ACTION_NONE); /* SEND: deferred */
    g.co[0].nscript = 2;
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    g.co[2].dflt = ANS(FWP_ACTION_BLOCK);
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    ind(f, SEND, "xyz");
    assert_int_equal(g.res.dir[RECV].held_bytes, 3);
    assert_int_equal(g.res.dir[SEND].state, OWFP_DIR_DEFERRED | OWFP_DIR_HELD);
    assert_int_equal(FwpmFilterDeleteById0(h_session, f0), STATUS_SUCCESS);
    ind(f, RECV, "def");
    /* Held data leaves as if permitted: past the rest of its sublayer
     * (callout 2 would block it), on to the lower sublayer, in order. */
    assert_int_equal(g.co[0].n, 2);
    assert_out(RECV, "abc");
    assert_out(SEND, "xyz");
    assert_int_equal(g.co[2].n, 1); /* only "def" */
    assert_rec(&g.co[2].rec[0], "def");
    assert_int_equal(g.co[1].n, 2);
    int r = g.co[1].rec[0].flags & FWPS_STREAM_FLAG_RECEIVE ? 0 : 1;
    assert_rec(&g.co[1].rec[r], "abc");
    assert_rec(&g.co[1].rec[1 - r], "xyz");
    for (int d = 0; d < 2; d++) {
        assert_int_equal(g.res.dir[d].held_bytes, 0);
        assert_int_equal(g.res.dir[d].state & (OWFP_DIR_DEFERRED | OWFP_DIR_HELD), 0);
    }
    /* The removed callout has nothing left to continue. */
    assert_int_equal(FwpsStreamContinue0(g.flow_id, g.co[0].id, FWPS_LAYER_STREAM_V4,
                                         FWPS_STREAM_FLAG_SEND),
                     STATUS_INVALID_PARAMETER);
    owfp_flow_close(f);
    done();
}

static void test_S32_mid_stream_filter_joins_only_with_the_flag(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    reg(1, FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION);
    reg(2, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_INSPECTION, 3);
    g.co[0].dflt = g.co[1].dflt = g.co[2].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *old = open4();
    ind(old, RECV, "a"); /* the flow's stream path exists now */
    owfp_flow *fresh = open_port(81); /* opened, no stream data yet */
    sf(1, NULL, FWP_ACTION_CALLOUT_INSPECTION, 2);
    sf(2, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1);

    ind(old, RECV, "b");
    assert_int_equal(g.co[1].n, 1);
    assert_int_equal(g.co[2].n, 0);
    assert_rec(&g.co[1].rec[0], "b");
    assert_int_equal(g.co[1].rec[0].meta_flags & FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION,
                     FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION);
    ind(old, SEND, "c");
    assert_int_equal(g.co[1].n, 2);
    assert_int_equal(g.co[1].rec[1].meta_flags & FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION, 0);
    assert_int_equal(g.co[2].n, 0);

    /* Flows whose stream starts later get both, without the flag. */
    ind(fresh, SEND, "d");
    assert_int_equal(g.co[1].n, 3);
    assert_int_equal(g.co[2].n, 1);
    assert_int_equal(g.co[1].rec[2].meta_flags, 0);
    assert_int_equal(g.co[2].rec[0].meta_flags, 0);
    assert_out(RECV, "ab");
    assert_out(SEND, "cd");
    owfp_flow_close(old);
    owfp_flow_close(fresh);
    done();
}

/* ---- R5 at the stream layer (T19) ----------------------------------------- */

static void test_R5_T19_unregistered_stream_callout(void **state)
{
    (void)state;
    reset();
    sublayers();
    for (int i = 0; i < 4; i++)
        reg(i, 0);
    sf_port(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1001, 0);
    sf_port(1, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1002,
            FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED);
    sf_port(2, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 1003, 0);
    sf(3, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[3].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *f[3];
    for (int i = 0; i < 3; i++) {
        f[i] = open_port((uint16_t)(1001 + i));
        ind(f[i], RECV, "before|");
        assert_int_equal(g.co[i].n, 1);
    }
    assert_out(RECV, "before|before|before|");
    for (int i = 0; i < 3; i++)
        assert_int_equal(FwpsCalloutUnregisterById0(g.co[i].id), STATUS_SUCCESS);
    int lower = g.co[3].n;
    ind(f[0], RECV, "blocked");
    assert_out(RECV, "before|before|before|");
    assert_int_equal(g.co[3].n, lower);
    assert_int_equal(g.flow_state, 0);
    ind(f[1], RECV, "permitted");
    assert_out(RECV, "before|before|before|permitted");
    ind(f[2], RECV, "inspected");
    assert_out(RECV, "before|before|before|permittedinspected");
    assert_int_equal(g.co[3].n, lower + 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g.co[i].n, 1);
        owfp_flow_close(f[i]);
    }
    done();
}

/* ---- misbehaving callouts --------------------------------------------------- */

static void test_S15_Q14_count_beyond_the_length_is_clamped(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = ANSN(FWP_ACTION_PERMIT, 100);
    g.co[0].script[1] = ANSN(FWP_ACTION_BLOCK, (SIZE_T)-1);
    g.co[0].nscript = 2;
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    assert_int_equal(g.co[0].n, 1);
    ind(f, RECV, "def");
    assert_int_equal(g.co[0].n, 2);
    ind(f, RECV, "ghi");
    assert_int_equal(g.co[0].n, 3);
    assert_out(RECV, "abcghi");
    assert_int_equal(g.flow_state, 0);
    owfp_flow_close(f);
    done();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_S19_continue_during_the_deferring_classify, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_need_more_data_ignores_count_and_action_type, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_threshold_is_a_total_and_needs_new_bytes, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_held_bytes_outlive_the_callers_buffer, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_held_bytes_are_copied_once, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_buffer_limit_reached_at_8MiB, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_Q16_need_more_data_past_the_8MiB_limit_drops, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_Q16_need_more_data_with_no_more_data_drops, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S18_T15_drop_connection_by_filter_type, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S18_drop_discards_everything_of_both_directions, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S19_T14_defer_then_continue_from_a_worker, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S19_Q19_defer_on_send_is_honoured, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S19_continue_status_codes, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S19_continue_from_inside_classify_is_refused, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S20_allow_connection_permits_and_stops_both_directions, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S20_allow_connection_releases_what_the_callout_held, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_O1_callout_without_allow_offload_keeps_the_flow_inspected, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_O2_rsc_uso_uro_flags_do_not_change_stream_indications, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_O3_l2_batch_flag_does_not_change_stream_indications, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_O4_allow_connection_makes_the_flow_offloadable, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S21_out_of_range_stream_action_drops, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S22_deleted_filter_releases_held_data_as_permitted, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S32_mid_stream_filter_joins_only_with_the_flag, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_R5_T19_unregistered_stream_callout, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S15_Q14_count_beyond_the_length_is_clamped, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
