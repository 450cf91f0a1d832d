/*
 * Spec §10.1-10.3 and §10.5 (S1-S16, S23-S25) plus the T9-T12 and T16-T18
 * rows of the §13 matrix: what a stream callout is shown, how its answer
 * is applied, and the waterfall through several stream filters.
 *
 * Every callout here is one of NCO recording callouts (stream_harness.h):
 * each classify is written down (flags, lengths, the bytes via
 * FwpsCopyStreamDataToBuffer0, classifyOut on entry, metadata, incoming
 * values) and answered from a per-callout script, optionally refined by a
 * hook. The data plane side concatenates the spans of every result per
 * direction, so output is compared byte for byte.
 */
#include "stream_harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* r is an empty indication (a FIN or an abort) carrying exactly `flags`. */
static void assert_empty_rec(const struct rec *r, UINT32 flags)
{
    assert_int_equal(r->len, 0);
    assert_int_equal(r->flags, flags);
}

/* S17 end of stream (T12): c's classify i shows the pending receive bytes
 * `data` again, flagged NO_MORE_DATA but without DISCONNECT; classify i + 1
 * is the empty RECEIVE_DISCONNECT indication, also flagged NO_MORE_DATA. */
static void assert_pending_then_fin(const struct co *c, int i, const char *data)
{
    assert_rec(&c->rec[i], data);
    assert_int_equal(c->rec[i].flags, FWPS_STREAM_FLAG_RECEIVE);
    assert_int_equal(c->rec[i].in_flags, FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA);
    assert_empty_rec(&c->rec[i + 1],
                     FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_RECEIVE_DISCONNECT);
    assert_int_equal(c->rec[i + 1].in_flags, FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA);
}

/* ---- S1-S4: layer, direction, conditions, metadata ---------------------- */

static void test_S1_payload_of_both_directions_at_stream_v4_and_v6(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    reg(1, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1);
    filter_at(&FWPM_LAYER_STREAM_V6, 1, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1, 0, NULL, 0);
    struct owfp_flow_params p4 = h_params4(49152, 80, OWFP_OUTBOUND);
    struct owfp_flow_params p6 = h_params6(49153, 443, OWFP_OUTBOUND);
    owfp_flow *f4 = h_open(&p4, NULL);
    owfp_flow *f6 = h_open(&p6, NULL);

    ind(f4, SEND, "GET / HTTP/1.1\r\n");
    ind(f4, RECV, "HTTP/1.1 200 OK\r\n");
    assert_out(SEND, "GET / HTTP/1.1\r\n");
    assert_out(RECV, "HTTP/1.1 200 OK\r\n");
    ind(f6, SEND, "v6 payload");

    /* The v4 flow reaches the STREAM_V4 callout only, both directions on
     * one flow; the bytes are the payload exactly (no headers). */
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[0].rec[0].layer, FWPS_LAYER_STREAM_V4);
    assert_int_equal(FWPS_LAYER_STREAM_V4, 20);
    assert_int_equal(g.co[0].rec[0].flags, FWPS_STREAM_FLAG_SEND);
    assert_rec(&g.co[0].rec[0], "GET / HTTP/1.1\r\n");
    assert_int_equal(g.co[0].rec[1].flags, FWPS_STREAM_FLAG_RECEIVE);
    assert_rec(&g.co[0].rec[1], "HTTP/1.1 200 OK\r\n");
    assert_int_equal(g.co[0].rec[0].flow, owfp_flow_id(f4));
    assert_int_equal(g.co[0].rec[1].flow, owfp_flow_id(f4));
    /* The v6 flow reaches the STREAM_V6 callout only. */
    assert_int_equal(g.co[1].n, 1);
    assert_int_equal(g.co[1].rec[0].layer, FWPS_LAYER_STREAM_V6);
    assert_int_equal(FWPS_LAYER_STREAM_V6, 22);
    assert_int_equal(g.co[1].rec[0].nvalues, FWPS_FIELD_STREAM_V6_MAX);
    assert_rec(&g.co[1].rec[0], "v6 payload");
    assert_int_equal(g.co[1].rec[0].flow, owfp_flow_id(f6));
    owfp_flow_close(f4);
    owfp_flow_close(f6);
    done();
}

static void test_S2_direction_field_is_the_connections_not_the_segments(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    reg(1, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_INSPECTION, 2);
    FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldKey = FWPM_CONDITION_DIRECTION;
    c.matchType = FWP_MATCH_EQUAL;
    c.conditionValue.type = FWP_UINT32;
    c.conditionValue.uint32 = FWP_DIRECTION_OUTBOUND;
    filter_at(&FWPM_LAYER_STREAM_V4, 1, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1, 0, &c, 1);

    struct owfp_flow_params po = h_params4(49152, 80, OWFP_OUTBOUND);
    struct owfp_flow_params pi = h_params4(80, 49152, OWFP_INBOUND);
    owfp_flow *fo = h_open(&po, NULL);
    owfp_flow *fi = h_open(&pi, NULL);
    /* Data received on a locally initiated connection still says OUTBOUND. */
    ind(fo, RECV, "response");
    assert_int_equal(g.co[0].rec[0].flags, FWPS_STREAM_FLAG_RECEIVE);
    assert_int_equal(g.co[0].rec[0].dir_value, FWP_DIRECTION_OUTBOUND);
    assert_int_equal(g.co[1].n, 1);
    assert_int_equal(g.co[1].rec[0].dir_value, FWP_DIRECTION_OUTBOUND);
    /* Data sent on an accepted connection says INBOUND; the DIRECTION ==
     * OUTBOUND filter does not match it. */
    ind(fi, SEND, "reply");
    assert_int_equal(g.co[0].rec[1].flags, FWPS_STREAM_FLAG_SEND);
    assert_int_equal(g.co[0].rec[1].dir_value, FWP_DIRECTION_INBOUND);
    assert_int_equal(g.co[1].n, 1);
    owfp_flow_close(fo);
    owfp_flow_close(fi);
    done();
}

static void test_S3_conditions_select_the_flows_a_stream_filter_sees(void **state)
{
    (void)state;
    reset();
    for (int i = 0; i < 3; i++)
        reg(i, 0);
    FWPM_FILTER_CONDITION0 a[3];
    memset(a, 0, sizeof(a));
    a[0].fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    a[0].matchType = FWP_MATCH_EQUAL;
    a[0].conditionValue.type = FWP_UINT16;
    a[0].conditionValue.uint16 = 80;
    a[1].fieldKey = FWPM_CONDITION_IP_LOCAL_ADDRESS;
    a[1].matchType = FWP_MATCH_EQUAL;
    a[1].conditionValue.type = FWP_UINT32;
    a[1].conditionValue.uint32 = 0x0a000001; /* 10.0.0.1 */
    a[2].fieldKey = FWPM_CONDITION_IP_LOCAL_ADDRESS_TYPE;
    a[2].matchType = FWP_MATCH_EQUAL;
    a[2].conditionValue.type = FWP_UINT8;
    a[2].conditionValue.uint8 = 1; /* unicast */
    filter_at(&FWPM_LAYER_STREAM_V4, 0, NULL, FWP_ACTION_CALLOUT_INSPECTION, 3, 0, a, 3);
    FWPM_FILTER_CONDITION0 b[2];
    memset(b, 0, sizeof(b));
    b[0].fieldKey = FWPM_CONDITION_IP_LOCAL_PORT;
    b[0].matchType = FWP_MATCH_EQUAL;
    b[0].conditionValue.type = FWP_UINT16;
    b[0].conditionValue.uint16 = 5555;
    b[1].fieldKey = FWPM_CONDITION_FLAGS;
    b[1].matchType = FWP_MATCH_FLAGS_ALL_SET;
    b[1].conditionValue.type = FWP_UINT32;
    b[1].conditionValue.uint32 = FWP_CONDITION_FLAG_IS_LOOPBACK;
    filter_at(&FWPM_LAYER_STREAM_V4, 1, NULL, FWP_ACTION_CALLOUT_INSPECTION, 2, 0, b, 2);
    FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldKey = FWPM_CONDITION_IP_REMOTE_ADDRESS;
    c.matchType = FWP_MATCH_EQUAL;
    c.conditionValue.type = FWP_UINT32;
    c.conditionValue.uint32 = 0x0a000009; /* 10.0.0.9: no flow here */
    filter_at(&FWPM_LAYER_STREAM_V4, 2, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1, 0, &c, 1);

    /* IP_PROTOCOL is not a stream-layer condition. */
    FWPM_FILTER_CONDITION0 proto;
    memset(&proto, 0, sizeof(proto));
    proto.fieldKey = FWPM_CONDITION_IP_PROTOCOL;
    proto.matchType = FWP_MATCH_EQUAL;
    proto.conditionValue.type = FWP_UINT8;
    proto.conditionValue.uint8 = 6;
    struct h_filter_spec bad = {.layer = &FWPM_LAYER_STREAM_V4, .action = FWP_ACTION_PERMIT,
                                .conds = &proto, .nconds = 1};
    assert_int_equal(h_filter(&bad, NULL), STATUS_FWP_CONDITION_NOT_FOUND);

    struct owfp_flow_params p1 = h_params4(1234, 80, OWFP_OUTBOUND);
    struct owfp_flow_params p2 = h_params4(5555, 81, OWFP_INBOUND);
    p2.condition_flags = FWP_CONDITION_FLAG_IS_LOOPBACK;
    owfp_flow *f1 = h_open(&p1, NULL);
    owfp_flow *f2 = h_open(&p2, NULL);
    ind(f1, SEND, "to port 80");
    assert_int_equal(g.co[0].n, 1);
    assert_int_equal(g.co[1].n, 0);
    ind(f2, RECV, "loopback 5555");
    assert_int_equal(g.co[0].n, 1);
    assert_int_equal(g.co[1].n, 1);
    assert_int_equal(g.co[1].rec[0].flow, owfp_flow_id(f2));
    assert_int_equal(g.co[2].n, 0);
    owfp_flow_close(f1);
    owfp_flow_close(f2);
    done();
}

static void test_S4_metadata_flow_handle_and_compartment(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    UINT64 fid = sf(0, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1);
    struct owfp_flow_params p = h_params4(49152, 80, OWFP_OUTBOUND);
    p.compartment_id = 7;
    owfp_flow *f = h_open(&p, NULL);
    ind(f, SEND, "x");
    ind(f, RECV, "y");
    for (int i = 0; i < 2; i++) {
        const struct rec *r = &g.co[0].rec[i];
        assert_int_equal(r->meta_fields,
                         FWPS_METADATA_FIELD_FLOW_HANDLE | FWPS_METADATA_FIELD_COMPARTMENT_ID);
        assert_int_equal(r->flow, owfp_flow_id(f));
        assert_int_equal(r->compartment, 7);
        assert_int_equal(r->compartment_value, 7);
        assert_int_equal(r->meta_flags, 0);
        assert_int_equal(r->nvalues, FWPS_FIELD_STREAM_V4_MAX);
        assert_int_equal(FWPS_FIELD_STREAM_V4_MAX, 8);
        assert_int_equal(r->filter_id, fid);
        assert_int_equal(r->in_filter_id, fid);
    }
    owfp_flow_close(f);
    done();
}

/* ---- S5-S8: the indication ------------------------------------------------ */

static void test_S5_stream_data_is_one_nbl_per_contiguous_piece(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = NMD(6);
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    static const char b1[] = "ab", b2[] = "cd", b3[] = "efg";
    ind(f, RECV, b1);
    ind(f, RECV, b2); /* 4 < 6: no classify */
    assert_int_equal(g.co[0].n, 1);
    ind(f, RECV, b3);
    assert_int_equal(g.co[0].n, 2);
    const struct rec *r = &g.co[0].rec[1];
    assert_int_equal(r->flags, FWPS_STREAM_FLAG_RECEIVE);
    assert_rec(r, "abcdefg");
    assert_true(r->chain_ok);
    assert_int_equal(r->nnbl, 3);
    assert_int_equal(r->nbl_len[0], 2);
    assert_int_equal(r->nbl_len[1], 2);
    assert_int_equal(r->nbl_len[2], 3);
    /* The newest piece is described where the data plane keeps it. */
    assert_ptr_equal(r->nbl_va[2], b3);
    assert_out(RECV, "abcdefg");

    /* A single piece: one NBL over the caller's bytes, SEND alone. */
    static const char s1[] = "hello";
    ind(f, SEND, s1);
    r = &g.co[0].rec[2];
    assert_int_equal(r->flags, FWPS_STREAM_FLAG_SEND);
    assert_true(r->chain_ok);
    assert_int_equal(r->nnbl, 1);
    assert_ptr_equal(r->nbl_va[0], s1);
    assert_rec(r, "hello");
    owfp_flow_close(f);
    done();
}

/* One indication's result, with no stream filter on the path: `p` itself,
 * as one original span, and nothing in the other direction. */
static void assert_passed_as_is(const struct owfp_stream_result *r, int d, const char *p)
{
    const struct owfp_stream_output *o = &r->dir[d], *other = &r->dir[!d];
    assert_int_equal(o->nspans, 1);
    assert_ptr_equal(o->spans[0].data, p);
    assert_int_equal(o->spans[0].len, strlen(p));
    assert_int_equal(o->spans[0].origin, OWFP_SPAN_ORIGINAL);
    assert_int_equal(o->bytes, strlen(p));
    assert_int_equal(o->held_bytes, 0);
    assert_int_equal(other->nspans, 0);
    assert_int_equal(other->bytes, 0);
    assert_int_equal(other->held_bytes, 0);
    assert_int_equal(r->flow_state, OWFP_FLOW_OFFLOADABLE);
}

/* Indications of an idle flow take a shortcut (src/stream/fast.c) that must
 * answer as the general path does, also after a FIN in one direction. */
static void test_S5_without_stream_filters_each_indication_is_its_own_span(void **state)
{
    (void)state;
    reset();
    owfp_flow *f = open4();
    static const char *const pieces[] = {"one", "two", "three", "four"};
    static const int dirs[] = {SEND, RECV, RECV, SEND};
    struct owfp_stream_result r;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(owfp_stream_indicate(f, (enum owfp_stream_direction)dirs[i], pieces[i],
                                              strlen(pieces[i]), 0, &r),
                         STATUS_SUCCESS);
        assert_passed_as_is(&r, dirs[i], pieces[i]);
        assert_int_equal(r.dir[SEND].state | r.dir[RECV].state, 0);
    }
    assert_int_equal(owfp_stream_fin(f, OWFP_STREAM_SEND, &r), STATUS_SUCCESS);
    assert_int_equal(r.dir[SEND].state, OWFP_DIR_FIN | OWFP_DIR_CLOSED);
    assert_int_equal(owfp_stream_indicate(f, OWFP_STREAM_SEND, "x", 1, 0, &r),
                     STATUS_INVALID_DEVICE_STATE);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(owfp_stream_indicate(f, OWFP_STREAM_RECEIVE, pieces[i],
                                              strlen(pieces[i]), OWFP_STREAM_PUSH, &r),
                         STATUS_SUCCESS);
        assert_passed_as_is(&r, RECV, pieces[i]);
        assert_int_equal(r.dir[SEND].state, OWFP_DIR_FIN | OWFP_DIR_CLOSED);
        assert_int_equal(r.dir[RECV].state, 0);
    }
    owfp_flow_close(f);
    done();
}

static void hook_s6(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                    const FWPS_INCOMING_METADATA_VALUES0 *meta,
                    FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)in;
    (void)meta;
    /* Leaves junk behind for the engine to reset. */
    if (call == 0) {
        io->countBytesRequired = 1234;
        io->countBytesEnforced = io->streamData->dataLength;
        out->rights = 0;
    }
}

static void test_S6_out_fields_are_reset_on_every_call(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    UINT64 fid = sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].hook = hook_s6;
    /* msnmntr style: writes actionType only, relies on streamAction NONE. */
    g.co[1].dflt = (struct ans){.action = FWP_ACTION_CONTINUE, .raw = true};
    owfp_flow *f = open4();
    ind(f, RECV, "first");
    ind(f, RECV, "second");
    assert_int_equal(g.co[0].n, 2);
    for (int i = 0; i < 2; i++) {
        const struct rec *r = &g.co[0].rec[i];
        assert_int_equal(r->in_required, 0);
        assert_int_equal(r->in_enforced, 0);
        assert_int_equal(r->in_stream_action, FWPS_STREAM_ACTION_NONE);
        assert_int_equal(r->in_action, 0);
        assert_int_equal(r->in_rights, FWPS_RIGHT_ACTION_WRITE);
        assert_int_equal(r->in_flags, 0);
        assert_int_equal(r->in_filter_id, fid);
        assert_int_equal(r->missed, 0);
    }
    assert_int_equal(g.co[1].n, 2);
    assert_int_equal(g.co[1].rec[1].in_stream_action, FWPS_STREAM_ACTION_NONE);
    assert_out(RECV, "firstsecond");
    owfp_flow_close(f);
    done();
}

static void test_S7_missed_bytes_count_bytes_blocked_above_per_direction(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    reg(2, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 2);
    sf(2, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    struct ans s0[] = {ANS(FWP_ACTION_BLOCK),     /* RECV hello */
                       ANS(FWP_ACTION_PERMIT),    /* SEND xyz */
                       ANS(FWP_ACTION_PERMIT),    /* RECV world */
                       ANSN(FWP_ACTION_BLOCK, 2), /* RECV abcde: ab */
                       ANS(FWP_ACTION_PERMIT),    /* cde */
                       ANS(FWP_ACTION_PERMIT)};   /* again */
    memcpy(g.co[0].script, s0, sizeof(s0));
    g.co[0].nscript = 6;
    g.co[1].dflt = g.co[2].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *f = open4();
    ind(f, RECV, "hello");
    assert_int_equal(g.co[1].n, 0);
    ind(f, SEND, "xyz"); /* the other direction missed nothing */
    ind(f, RECV, "world");
    ind(f, RECV, "abcde");
    ind(f, RECV, "again");
    assert_int_equal(g.co[0].n, 6);
    for (int k = 1; k <= 2; k++) {
        const struct co *c = &g.co[k];
        assert_int_equal(c->n, 4);
        assert_int_equal(c->rec[0].flags, FWPS_STREAM_FLAG_SEND);
        assert_int_equal(c->rec[0].missed, 0);
        assert_rec(&c->rec[1], "world");
        assert_int_equal(c->rec[1].missed, 5);
        assert_rec(&c->rec[2], "cde");
        assert_int_equal(c->rec[2].missed, 2);
        assert_rec(&c->rec[3], "again");
        assert_int_equal(c->rec[3].missed, 0); /* reported once, then reset */
    }
    assert_out(RECV, "worldcdeagain");
    assert_out(SEND, "xyz");
    owfp_flow_close(f);
    done();
}

/* Q12: bytes a higher filter of the same sublayer permitted past a stage
 * are missed by it; injected bytes are not. */
static void test_S7_missed_bytes_count_bytes_permitted_past_in_the_sublayer(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_UNKNOWN, 2);
    sf(1, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 1);
    struct ans s0[] = {ANSN(FWP_ACTION_PERMIT, 3), /* "abc" decided: skips stage 1 */
                       ANS(FWP_ACTION_CONTINUE)};  /* "de" goes on to stage 1 */
    memcpy(g.co[0].script, s0, sizeof(s0));
    g.co[0].nscript = 2;
    g.co[0].dflt = ANS(FWP_ACTION_CONTINUE);
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *f = open4();
    ind(f, RECV, "abcde");
    ind(f, RECV, "fgh");
    assert_int_equal(g.co[1].n, 2);
    assert_rec(&g.co[1].rec[0], "de");
    assert_int_equal(g.co[1].rec[0].missed, 3);
    assert_rec(&g.co[1].rec[1], "fgh");
    assert_int_equal(g.co[1].rec[1].missed, 0);
    owfp_flow_close(f);
    done();
}

static void test_S7_gap_from_the_data_plane_is_reported_as_missed_bytes(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].dflt = g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    assert_int_equal(owfp_stream_gap(f, RECV, 7, &g.res), STATUS_SUCCESS);
    take(&g.res);
    assert_int_equal(owfp_stream_gap(f, RECV, 0, &g.res), STATUS_INVALID_PARAMETER);
    ind(f, SEND, "xy"); /* the other direction lost nothing */
    ind(f, RECV, "def");
    ind(f, RECV, "gh");
    for (int k = 0; k < 2; k++) {
        const struct co *c = &g.co[k];
        assert_int_equal(c->n, 4);
        assert_int_equal(c->rec[0].missed, 0);
        assert_int_equal(c->rec[1].missed, 0);
        assert_rec(&c->rec[2], "def");
        assert_int_equal(c->rec[2].missed, 7);
        assert_int_equal(c->rec[3].missed, 0);
    }
    assert_out(RECV, "abcdefgh");
    fin(f, RECV);
    assert_int_equal(owfp_stream_gap(f, RECV, 1, &g.res), STATUS_INVALID_DEVICE_STATE);
    owfp_flow_close(f);
    done();
}

static void test_S8_fin_is_a_separate_zero_length_disconnect_indication(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *f = open4();
    ind(f, SEND, "abc");
    assert_int_equal(g.co[0].rec[0].in_flags, 0);
    assert_false(g.out[SEND].state & (OWFP_DIR_FIN | OWFP_DIR_CLOSED));
    fin(f, SEND);
    assert_int_equal(g.co[0].n, 2);
    const struct rec *r = &g.co[0].rec[1];
    assert_empty_rec(r, FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_SEND_DISCONNECT);
    assert_int_equal(r->in_flags, FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA);
    assert_int_equal(g.res.dir[SEND].nspans, 0);
    assert_int_equal(g.res.dir[SEND].state & (OWFP_DIR_FIN | OWFP_DIR_CLOSED),
                     OWFP_DIR_FIN | OWFP_DIR_CLOSED);
    assert_int_equal(g.res.dir[RECV].state, 0);
    assert_out(SEND, "abc");
    /* Nothing may follow the FIN of a direction; the other one still flows. */
    assert_int_equal(indm(f, SEND, "late", 4, 0), STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(owfp_stream_fin(f, SEND, &g.res), STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g.co[0].n, 2);
    ind(f, RECV, "still open");
    assert_out(RECV, "still open");
    fin(f, RECV);
    assert_int_equal(g.co[0].rec[3].flags,
                     FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_RECEIVE_DISCONNECT);
    assert_true(g.out[RECV].fin);
    owfp_flow_close(f);
    done();
}

static void test_S8_no_more_data_on_the_data_right_before_fin(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[0] = NMD(100);
    g.co[0].nscript = 1;
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    assert_int_equal(g.co[1].n, 0);
    fin(f, RECV);
    /* The lower callout gets the data with NO_MORE_DATA, then the FIN. */
    assert_int_equal(g.co[1].n, 2);
    assert_pending_then_fin(&g.co[1], 0, "abc");
    assert_out(RECV, "abc");
    assert_true(g.out[RECV].fin);
    owfp_flow_close(f);
    done();
}

static void hook_block_fin(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                           const FWPS_INCOMING_METADATA_VALUES0 *meta,
                           FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)call;
    (void)in;
    (void)meta;
    out->actionType = io->streamData->flags & FWPS_STREAM_FLAG_RECEIVE_DISCONNECT
                          ? FWP_ACTION_BLOCK
                          : FWP_ACTION_PERMIT;
}

static void test_S8_blocked_fin_is_pended_until_injected(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].hook = hook_block_fin;
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    inj_setup();
    owfp_flow *f = open4();
    ind(f, RECV, "data");
    fin(f, RECV);
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[1].n, 1);
    assert_false(g.out[RECV].fin);
    assert_true(g.res.dir[RECV].state & OWFP_DIR_CLOSED);
    /* The callout later injects the FIN (a NULL NBL with DISCONNECT). */
    assert_int_equal(FwpsStreamInjectAsync0(g.inj, NULL, 0, g.flow_id, g.co[0].id,
                                            FWPS_LAYER_STREAM_V4,
                                            FWPS_STREAM_FLAG_RECEIVE |
                                                FWPS_STREAM_FLAG_RECEIVE_DISCONNECT,
                                            NULL, 0, inj_done, NULL),
                     STATUS_SUCCESS);
    poll_flow(f);
    assert_true(g.out[RECV].fin);
    assert_int_equal(g.co[1].n, 2);
    assert_empty_rec(&g.co[1].rec[1],
                     FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_RECEIVE_DISCONNECT);
    assert_int_equal(g.co[0].n, 2); /* never sees its own injection */
    assert_out(RECV, "data");
    owfp_flow_close(f);
    assert_int_equal(atomic_load(&g.completions), 0);
    done();
}

/* ---- S9-S13: modifiers, RST, urgent data, serialisation, empty data ------ */

static void test_S9_push_and_nodelay_modifiers(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *f = open4();
    assert_int_equal(indm(f, RECV, "a", 1, OWFP_STREAM_PUSH), STATUS_SUCCESS);
    assert_int_equal(indm(f, RECV, "b", 1, 0), STATUS_SUCCESS);
    assert_int_equal(indm(f, SEND, "c", 1, OWFP_STREAM_NODELAY), STATUS_SUCCESS);
    assert_int_equal(indm(f, SEND, "d", 1, OWFP_STREAM_PUSH), STATUS_SUCCESS);
    assert_int_equal(indm(f, RECV, "e", 1, OWFP_STREAM_NODELAY), STATUS_SUCCESS);
    assert_int_equal(indm(f, SEND, "f", 1, 0), STATUS_SUCCESS);
    assert_int_equal(indm(f, SEND, "g", 1, 0x8), STATUS_INVALID_PARAMETER);
    assert_int_equal(g.co[0].n, 6);
    assert_int_equal(g.co[0].rec[0].flags,
                     FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_RECEIVE_PUSH);
    assert_int_equal(g.co[0].rec[1].flags, FWPS_STREAM_FLAG_RECEIVE);
    assert_int_equal(g.co[0].rec[2].flags, FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_SEND_NODELAY);
    assert_int_equal(g.co[0].rec[3].flags, FWPS_STREAM_FLAG_SEND);
    assert_int_equal(g.co[0].rec[4].flags, FWPS_STREAM_FLAG_RECEIVE);
    assert_int_equal(g.co[0].rec[5].flags, FWPS_STREAM_FLAG_SEND);
    assert_out(RECV, "abe");
    assert_out(SEND, "cdf");
    owfp_flow_close(f);
    done();
}

static void hook_inject_on_abort(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                 FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)call;
    (void)in;
    (void)meta;
    (void)out;
    (void)c;
    if (io->streamData->flags & FWPS_STREAM_FLAG_RECEIVE_ABORT) {
        g.hook_status[g.nhook_status++] =
            inject(0, FWPS_STREAM_FLAG_RECEIVE, "late", 4);
        io->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
        io->countBytesRequired = 10;
    }
}

static void test_S10_rst_shows_abort_and_drops_the_flow(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    reg(2, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 2);
    sf(2, &g_lo, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = NMD(100); /* holds the received bytes */
    g.co[0].nscript = 1;
    g.co[0].hook = hook_inject_on_abort;
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    g.co[2].dflt = (struct ans){.stream_action = FWPS_STREAM_ACTION_ALLOW_CONNECTION};
    inj_setup();
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    ind(f, SEND, "xy"); /* callout 2 lets go of the flow */
    assert_int_equal(g.co[2].n, 1);
    assert_int_equal(g.out[RECV].held, 3);
    assert_int_equal(owfp_stream_abort(f, RECV, &g.res), STATUS_SUCCESS);
    take(&g.res);
    /* Every stage still inspecting sees one empty RECEIVE|ABORT indication. */
    assert_int_equal(g.co[0].n, 3);
    assert_empty_rec(&g.co[0].rec[2], FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_RECEIVE_ABORT);
    assert_int_equal(g.co[0].rec[2].in_flags, FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA);
    assert_int_equal(g.co[1].n, 2);
    assert_empty_rec(&g.co[1].rec[1], FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_RECEIVE_ABORT);
    assert_int_equal(g.co[2].n, 1);
    /* Answers and injections are void; held data is gone. */
    assert_int_equal(g.nhook_status, 1);
    assert_int_equal(g.hook_status[0], STATUS_SUCCESS);
    assert_int_equal(atomic_load(&g.completions), 1);
    assert_int_equal(g.last_completion, STATUS_CANCELLED);
    assert_int_equal(g.res.flow_state & OWFP_FLOW_DROPPED, OWFP_FLOW_DROPPED);
    for (int d = 0; d < 2; d++) {
        assert_int_equal(g.res.dir[d].nspans, 0);
        assert_int_equal(g.res.dir[d].held_bytes, 0);
        assert_true(g.res.dir[d].state & OWFP_DIR_CLOSED);
    }
    assert_out(RECV, "");
    assert_out(SEND, "xy");
    assert_int_equal(indm(f, SEND, "more", 4, 0), STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(g.co[0].n, 3);
    owfp_flow_close(f);
    done();
}

static void test_S11_urgent_data_is_expedited(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    owfp_flow *f = open4();
    static const char u[] = "!";
    assert_int_equal(indm(f, RECV, u, 1, OWFP_STREAM_URGENT), STATUS_SUCCESS);
    assert_int_equal(indm(f, SEND, "?", 1, OWFP_STREAM_URGENT | OWFP_STREAM_NODELAY),
                     STATUS_SUCCESS);
    assert_int_equal(g.co[0].rec[0].flags,
                     FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_RECEIVE_EXPEDITED);
    assert_int_equal(g.co[0].rec[1].flags, FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_SEND_EXPEDITED |
                                               FWPS_STREAM_FLAG_SEND_NODELAY);
    assert_out(RECV, "!");
    assert_out(SEND, "?");
    owfp_flow_close(f);
    done();
}

/* An out-of-band worker: injects numbered pieces for callout 0 in order. */
#define S12_INJECTIONS 200

static void *s12_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < S12_INJECTIONS; i++) {
        char piece[8];
        snprintf(piece, sizeof(piece), "<%03d>", i);
        NTSTATUS st = inject(0, i % 2 ? FWPS_STREAM_FLAG_SEND : FWPS_STREAM_FLAG_RECEIVE, piece, 5);
        if (!NT_SUCCESS(st))
            return (void *)1;
    }
    return NULL;
}

static void test_S12_classifies_of_a_flow_are_never_concurrent(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].dflt = ANS(FWP_ACTION_BLOCK); /* out-of-band: blocks everything */
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    inj_setup();
    owfp_flow *f = open4();
    assert_int_equal(owfp_flow_set_wakeup(f, wakeup, NULL), STATUS_SUCCESS);
    ind(f, RECV, "first");
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s12_worker, NULL), 0);
    for (int i = 0; i < 300; i++) {
        ind(f, i % 2 ? SEND : RECV, "original");
        poll_flow(f);
    }
    void *ret;
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_null(ret);
    poll_flow(f);
    poll_flow(f); /* completes what the previous poll delivered */
    /* Every classify ran on the owner thread, one at a time (done() checks),
     * the worker only woke the owner, and its pieces came out in call order. */
    assert_true(atomic_load(&g.wakeups) >= 1);
    assert_true(atomic_load(&g.wakeup_foreign));
    assert_false(atomic_load(&g.completion_foreign));
    assert_int_equal(atomic_load(&g.completions), S12_INJECTIONS);
    assert_int_equal(atomic_load(&g.cancelled), 0);
    char want[2][S12_INJECTIONS * 5 + 1];
    size_t wn[2] = {0, 0};
    for (int i = 0; i < S12_INJECTIONS; i++) {
        int d = i % 2 ? SEND : RECV;
        snprintf(want[d] + wn[d], 6, "<%03d>", i);
        wn[d] += 5;
    }
    assert_out(RECV, want[RECV]);
    assert_out(SEND, want[SEND]);
    assert_int_equal(g.out[RECV].ninjected, g.out[RECV].nspans);
    owfp_flow_close(f);
    done();
}

static void hook_inject_empty(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                              const FWPS_INCOMING_METADATA_VALUES0 *meta,
                              FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)call;
    (void)in;
    (void)meta;
    (void)io;
    (void)out;
    g.hook_status[g.nhook_status++] = inject(0, FWPS_STREAM_FLAG_RECEIVE, NULL, 0);
}

static void test_S13_engine_makes_no_empty_data_indications(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].hook = hook_inject_empty; /* injects a zero-byte NBL, then PERMIT */
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    inj_setup();
    owfp_flow *f = open4();
    assert_int_equal(owfp_stream_indicate(f, RECV, "", 0, 0, &g.res), STATUS_INVALID_PARAMETER);
    assert_int_equal(owfp_stream_indicate(f, RECV, NULL, 3, 0, &g.res), STATUS_INVALID_PARAMETER);
    assert_int_equal(g.co[0].n, 0);
    ind(f, RECV, "abc");
    assert_int_equal(g.hook_status[0], STATUS_SUCCESS);
    /* The empty injection is never shown and yields no span. */
    assert_int_equal(g.co[1].n, 1);
    assert_rec(&g.co[1].rec[0], "abc");
    assert_int_equal(g.res.dir[RECV].nspans, 1);
    assert_out(RECV, "abc");
    assert_int_equal(atomic_load(&g.completions), 0);
    poll_flow(f);
    assert_int_equal(atomic_load(&g.completions), 1);
    assert_int_equal(g.last_completion, STATUS_SUCCESS);
    assert_int_equal(g.co[1].n, 1);
    owfp_flow_close(f);
    done();
}

/* ---- S14-S17: applying the answer ---------------------------------------- */

static void test_S14_stream_action_overrides_action_type(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    /* NEED_MORE_DATA with actionType BLOCK and a count: the data is held,
     * not blocked. */
    g.co[0].script[0] = (struct ans){.action = FWP_ACTION_BLOCK,
                                     .enforced = 1,
                                     .stream_action = FWPS_STREAM_ACTION_NEED_MORE_DATA,
                                     .required = 5};
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    assert_out(RECV, "");
    assert_int_equal(g.out[RECV].held, 3);
    ind(f, RECV, "def");
    assert_int_equal(g.co[0].n, 2);
    assert_rec(&g.co[0].rec[1], "abcdef");
    assert_out(RECV, "abcdef");
    owfp_flow_close(f);
    done();
}

static void test_S15_T10_permit_with_zero_and_with_full_count(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = ANSN(FWP_ACTION_PERMIT, 0);
    g.co[0].script[1] = ANSN(FWP_ACTION_PERMIT, 4);
    g.co[0].nscript = 2;
    owfp_flow *f = open4();
    static const char b1[] = "abcdef", b2[] = "ghij";
    ind(f, RECV, b1);
    assert_int_equal(g.co[0].n, 1);
    /* Zero copy: the permitted span is the caller's buffer itself. */
    assert_int_equal(g.res.dir[RECV].nspans, 1);
    assert_ptr_equal(g.res.dir[RECV].spans[0].data, b1);
    assert_int_equal(g.res.dir[RECV].spans[0].len, 6);
    assert_int_equal(g.res.dir[RECV].spans[0].origin, OWFP_SPAN_ORIGINAL);
    ind(f, RECV, b2);
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.res.dir[RECV].nspans, 1);
    assert_ptr_equal(g.res.dir[RECV].spans[0].data, b2);
    assert_int_equal(g.res.dir[RECV].held_bytes, 0);
    assert_int_equal(g.res.dir[RECV].state & OWFP_DIR_HELD, 0);
    assert_out(RECV, "abcdefghij");
    owfp_flow_close(f);
    done();
}

static void test_S15_count_covers_the_leading_bytes(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = ANSN(FWP_ACTION_BLOCK, 2);
    g.co[0].script[1] = ANSN(FWP_ACTION_PERMIT, 3);
    g.co[0].script[2] = ANSN(FWP_ACTION_BLOCK, 0); /* 0: the whole rest */
    g.co[0].script[3] = ANSN(FWP_ACTION_BLOCK, 0);
    g.co[0].nscript = 4;
    owfp_flow *f = open4();
    static const char b[] = "abcdef";
    ind(f, SEND, b);
    assert_int_equal(g.co[0].n, 3);
    assert_rec(&g.co[0].rec[0], "abcdef");
    assert_rec(&g.co[0].rec[1], "cdef");
    assert_rec(&g.co[0].rec[2], "f");
    assert_out(SEND, "cde");
    assert_int_equal(g.res.dir[SEND].nspans, 1);
    assert_ptr_equal(g.res.dir[SEND].spans[0].data, b + 2);
    /* BLOCK with count 0 removes the whole indication (stmedit SKIPPING). */
    ind(f, SEND, "xyz");
    assert_int_equal(g.co[0].n, 4);
    assert_out(SEND, "cde");
    assert_int_equal(g.flow_state, 0);
    owfp_flow_close(f);
    done();
}

static void test_S16_remainder_is_reindicated_at_once(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].dflt = ANSN(FWP_ACTION_PERMIT, 1);
    owfp_flow *f = open4();
    static const char b[] = "abc";
    ind(f, RECV, b);
    /* Three classifies within the one call: abc, bc, c, each described
     * from its first byte, over the caller's bytes. */
    assert_int_equal(g.co[0].n, 3);
    assert_rec(&g.co[0].rec[0], "abc");
    assert_rec(&g.co[0].rec[1], "bc");
    assert_rec(&g.co[0].rec[2], "c");
    for (int i = 0; i < 3; i++) {
        assert_true(g.co[0].rec[i].chain_ok);
        assert_int_equal(g.co[0].rec[i].nnbl, 1);
        assert_ptr_equal(g.co[0].rec[i].nbl_va[0], b + i);
    }
    assert_out(RECV, "abc");
    owfp_flow_close(f);
    done();
}

static void test_S16_remainder_never_carries_newer_data(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    /* stmedit SKIPPING: permit a prefix, block the re-indicated tail whole. */
    g.co[0].script[0] = ANSN(FWP_ACTION_PERMIT, 2);
    g.co[0].script[1] = ANSN(FWP_ACTION_BLOCK, 0);
    g.co[0].script[2] = ANSN(FWP_ACTION_PERMIT, 0);
    g.co[0].script[3] = ANSN(FWP_ACTION_PERMIT, 2);
    g.co[0].script[4] = NMD(6); /* the remainder asks for more */
    g.co[0].nscript = 5;
    owfp_flow *f = open4();
    ind(f, RECV, "abcdef");
    assert_int_equal(g.co[0].n, 2);
    assert_rec(&g.co[0].rec[1], "cdef");
    ind(f, RECV, "gh"); /* shown alone, nothing of the old tail survived */
    assert_int_equal(g.co[0].n, 3);
    assert_rec(&g.co[0].rec[2], "gh");
    assert_out(RECV, "abgh");
    ind(f, RECV, "ijklmn");
    assert_int_equal(g.co[0].n, 5);
    assert_rec(&g.co[0].rec[4], "klmn");
    ind(f, RECV, "op"); /* NEED_MORE_DATA on the remainder: held + new */
    assert_int_equal(g.co[0].n, 6);
    assert_rec(&g.co[0].rec[5], "klmnop");
    assert_out(RECV, "abghijklmnop");
    owfp_flow_close(f);
    done();
}

static void test_S16_remainder_before_fin_keeps_no_more_data(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = NMD(100);
    g.co[0].script[1] = ANSN(FWP_ACTION_PERMIT, 1);
    g.co[0].script[2] = ANSN(FWP_ACTION_PERMIT, 0);
    g.co[0].nscript = 3;
    owfp_flow *f = open4();
    ind(f, SEND, "abcd");
    fin(f, SEND);
    assert_int_equal(g.co[0].n, 4);
    assert_rec(&g.co[0].rec[1], "abcd");
    assert_int_equal(g.co[0].rec[1].in_flags, FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA);
    assert_rec(&g.co[0].rec[2], "bcd");
    assert_int_equal(g.co[0].rec[2].in_flags, FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA);
    assert_int_equal(g.co[0].rec[2].flags, FWPS_STREAM_FLAG_SEND);
    assert_empty_rec(&g.co[0].rec[3], FWPS_STREAM_FLAG_SEND | FWPS_STREAM_FLAG_SEND_DISCONNECT);
    assert_out(SEND, "abcd");
    assert_true(g.out[SEND].fin);
    owfp_flow_close(f);
    done();
}

/* stmedit's inline editor: replace "foo" by "BARBAZ". */
static const char t9_repl[] = "BARBAZ";

static void hook_t9_replace(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                            const FWPS_INCOMING_METADATA_VALUES0 *meta,
                            FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)call;
    char buf[RECBYTES];
    SIZE_T n = 0;
    FwpsCopyStreamDataToBuffer0(io->streamData, buf, sizeof(buf), &n);
    SIZE_T at = n;
    for (SIZE_T i = 0; i + 3 <= n; i++)
        if (!memcmp(buf + i, "foo", 3)) {
            at = i;
            break;
        }
    io->streamAction = FWPS_STREAM_ACTION_NONE;
    if (at == n) {
        out->actionType = FWP_ACTION_PERMIT;
        io->countBytesEnforced = 0;
    } else if (at > 0) {
        out->actionType = FWP_ACTION_PERMIT;
        io->countBytesEnforced = at;
    } else {
        /* Inject the replacement where "foo" is, then block "foo". */
        NET_BUFFER_LIST *nbl = NULL;
        MDL *m = IoAllocateMdl((PVOID)t9_repl, 6, FALSE, FALSE, NULL);
        FwpsAllocateNetBufferAndNetBufferList0(g.pool, 0, 0, m, 0, 6, &nbl);
        g.hook_status[g.nhook_status++] = FwpsStreamInjectAsync0(
            g.inj, NULL, 0, meta->flowHandle, c->id, in->layerId,
            io->streamData->flags & (FWPS_STREAM_FLAG_RECEIVE | FWPS_STREAM_FLAG_SEND), nbl, 6,
            inj_done, NULL);
        out->actionType = FWP_ACTION_BLOCK;
        io->countBytesEnforced = 3;
    }
}

static void test_S16_T9_inline_replace_n_p_m(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].hook = hook_t9_replace;
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    inj_setup();
    owfp_flow *f = open4();
    static const char data[] = "hello foo world";
    ind(f, RECV, data);
    assert_int_equal(g.nhook_status, 1);
    assert_int_equal(g.hook_status[0], STATUS_SUCCESS);
    /* Reclassified with p+m, then m. */
    assert_int_equal(g.co[0].n, 3);
    assert_rec(&g.co[0].rec[0], "hello foo world");
    assert_rec(&g.co[0].rec[1], "foo world");
    assert_rec(&g.co[0].rec[2], " world");
    /* Output n p' m: n and m are the caller's bytes, p' the NBL's own. */
    assert_out(RECV, "hello BARBAZ world");
    const struct owfp_stream_output *o = &g.res.dir[RECV];
    assert_int_equal(o->nspans, 3);
    assert_ptr_equal(o->spans[0].data, data);
    assert_int_equal(o->spans[0].origin, OWFP_SPAN_ORIGINAL);
    assert_ptr_equal(o->spans[1].data, t9_repl);
    assert_int_equal(o->spans[1].origin, OWFP_SPAN_INJECTED);
    assert_ptr_equal(o->spans[2].data, data + 9);
    assert_int_equal(o->spans[2].origin, OWFP_SPAN_ORIGINAL);
    /* The lower sublayer sees the edited stream as one indication. */
    assert_int_equal(g.co[1].n, 1);
    assert_rec(&g.co[1].rec[0], "hello BARBAZ world");
    assert_int_equal(g.co[1].rec[0].nnbl, 3);
    assert_int_equal(g.co[1].rec[0].missed, 3);
    /* The completion runs once the span was handed out and the owner is back. */
    assert_int_equal(atomic_load(&g.completions), 0);
    poll_flow(f);
    assert_int_equal(atomic_load(&g.completions), 1);
    assert_int_equal(g.last_completion, STATUS_SUCCESS);
    owfp_flow_close(f);
    done();
}

static void hook_t11(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                     const FWPS_INCOMING_METADATA_VALUES0 *meta,
                     FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)call;
    (void)in;
    (void)meta;
    if (io->streamData->dataLength < 5) {
        io->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
        io->countBytesRequired = 5;
        out->actionType = FWP_ACTION_NONE;
    } else {
        out->actionType = FWP_ACTION_PERMIT;
    }
}

static void test_S17_T11_need_more_data_with_three_byte_segments(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].hook = hook_t11;
    owfp_flow *f = open4();
    static const char b1[] = "abc", b2[] = "def", b3[] = "ghi", b4[] = "jkl";
    ind(f, RECV, b1);
    assert_int_equal(g.co[0].n, 1);
    assert_int_equal(g.res.dir[RECV].nspans, 0);
    assert_int_equal(g.res.dir[RECV].held_bytes, 3);
    assert_true(g.res.dir[RECV].state & OWFP_DIR_HELD);
    ind(f, RECV, b2);
    /* Re-indicated with all 6 accumulated bytes as one streamData. */
    assert_int_equal(g.co[0].n, 2);
    assert_rec(&g.co[0].rec[1], "abcdef");
    assert_int_equal(g.co[0].rec[1].nnbl, 2);
    assert_out(RECV, "abcdef");
    assert_int_equal(g.res.dir[RECV].held_bytes, 0);
    assert_int_equal(g.res.dir[RECV].state & OWFP_DIR_HELD, 0);
    /* The held piece was copied once; the new piece was not copied at all. */
    assert_int_equal(g.res.dir[RECV].nspans, 2);
    assert_ptr_not_equal(g.res.dir[RECV].spans[0].data, b1);
    assert_ptr_equal(g.res.dir[RECV].spans[1].data, b2);
    assert_ptr_not_equal(g.co[0].rec[1].nbl_va[0], b1);
    assert_ptr_equal(g.co[0].rec[1].nbl_va[1], b2);
    /* Again: nothing is delivered while the callout waits. */
    ind(f, SEND, b3);
    assert_out(SEND, "");
    ind(f, SEND, b4);
    assert_out(SEND, "ghijkl");
    assert_int_equal(g.co[0].n, 4);
    owfp_flow_close(f);
    done();
}

static void test_S17_T12_fin_while_need_more_data_pending(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = NMD(10);
    g.co[0].nscript = 1;
    owfp_flow *f = open4();
    ind(f, RECV, "abc");
    assert_out(RECV, "");
    fin(f, RECV);
    assert_int_equal(g.co[0].n, 3);
    /* The pending data again, flagged NO_MORE_DATA, without DISCONNECT,
     * then the empty DISCONNECT indication. */
    assert_pending_then_fin(&g.co[0], 1, "abc");
    assert_out(RECV, "abc");
    assert_int_equal(g.res.dir[RECV].state & (OWFP_DIR_FIN | OWFP_DIR_CLOSED | OWFP_DIR_HELD),
                     OWFP_DIR_FIN | OWFP_DIR_CLOSED);
    assert_int_equal(g.flow_state & OWFP_FLOW_DROPPED, 0);
    owfp_flow_close(f);
    done();
}

/* ---- S23-S25: the waterfall ---------------------------------------------- */

static void test_S23_blocked_bytes_never_reach_lower_sublayers(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].dflt = ANS(FWP_ACTION_BLOCK);
    owfp_flow *f = open4();
    ind(f, RECV, "secret");
    ind(f, SEND, "secret");
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[1].n, 0);
    assert_out(RECV, "");
    assert_out(SEND, "");
    assert_int_equal(g.flow_state, 0); /* the connection stays */
    owfp_flow_close(f);
    done();
}

static void test_S23_permit_skips_only_the_rest_of_its_sublayer(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    reg(2, 0);
    sf(2, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 5); /* same sublayer, lower weight */
    sf(0, &g_hi, FWP_ACTION_CALLOUT_UNKNOWN, 9);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].script[0] = ANS(FWP_ACTION_PERMIT);
    g.co[0].script[1] = ANS(FWP_ACTION_CONTINUE);
    g.co[0].nscript = 2;
    owfp_flow *f = open4();
    ind(f, RECV, "data");
    assert_int_equal(g.co[0].n, 1);
    assert_int_equal(g.co[2].n, 0);
    assert_int_equal(g.co[1].n, 1);
    assert_true(g.co[0].rec[0].seq < g.co[1].rec[0].seq);
    assert_int_equal(g.co[1].rec[0].missed, 0);
    /* CONTINUE moves on to the next filter of the sublayer, by weight. */
    ind(f, RECV, "more");
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[2].n, 1);
    assert_int_equal(g.co[1].n, 2);
    assert_true(g.co[0].rec[1].seq < g.co[2].rec[0].seq);
    assert_true(g.co[2].rec[0].seq < g.co[1].rec[1].seq);
    assert_out(RECV, "datamore");
    owfp_flow_close(f);
    done();
}

static void test_S23_static_filters_take_part_in_the_waterfall(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(1, 0);
    FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    c.matchType = FWP_MATCH_EQUAL;
    c.conditionValue.type = FWP_UINT16;
    c.conditionValue.uint16 = 25;
    filter_at(&FWPM_LAYER_STREAM_V4, -1, &g_hi, FWP_ACTION_BLOCK, 2, 0, &c, 1);
    c.conditionValue.uint16 = 80;
    filter_at(&FWPM_LAYER_STREAM_V4, -1, &g_hi, FWP_ACTION_PERMIT, 2, 0, &c, 1);
    c.conditionValue.uint16 = 110;
    filter_at(&FWPM_LAYER_STREAM_V4, -1, &g_hi, FWP_ACTION_CONTINUE, 2, 0, &c, 1);
    reg(0, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1); /* below the static ones */
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    struct owfp_flow_params p25 = h_params4(40000, 25, OWFP_OUTBOUND);
    struct owfp_flow_params p80 = h_params4(40001, 80, OWFP_OUTBOUND);
    struct owfp_flow_params p110 = h_params4(40002, 110, OWFP_OUTBOUND);
    owfp_flow *f25 = h_open(&p25, NULL);
    owfp_flow *f80 = h_open(&p80, NULL);
    owfp_flow *f110 = h_open(&p110, NULL);
    ind(f25, SEND, "MAIL");
    assert_out(SEND, "");
    assert_int_equal(g.co[0].n + g.co[1].n, 0);
    ind(f80, SEND, "GET");
    assert_out(SEND, "GET");
    assert_int_equal(g.co[0].n, 0); /* permitted past the rest of its sublayer */
    assert_int_equal(g.co[1].n, 1); /* but the lower sublayer sees it */
    ind(f110, SEND, "USER");
    assert_out(SEND, "GETUSER");
    assert_int_equal(g.co[0].n, 1);
    assert_int_equal(g.co[1].n, 2);
    owfp_flow_close(f25);
    owfp_flow_close(f80);
    owfp_flow_close(f110);
    done();
}

static void hook_s24_clear_rights(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                                  const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                  FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)call;
    (void)in;
    (void)meta;
    (void)io;
    out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static void test_S24_rights_mean_nothing_and_no_answer_blocks(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].hook = hook_s24_clear_rights; /* PERMIT and clear the right */
    g.co[1].script[0] = ANS(0);           /* forgets to answer */
    g.co[1].script[1] = ANS(FWP_ACTION_BLOCK);
    g.co[1].script[2] = ANS(FWP_ACTION_PERMIT);
    g.co[1].nscript = 3;
    owfp_flow *f = open4();
    ind(f, RECV, "one");
    ind(f, RECV, "two");
    ind(f, RECV, "three");
    assert_int_equal(g.co[1].n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(g.co[1].rec[i].in_rights, FWPS_RIGHT_ACTION_WRITE);
    assert_out(RECV, "three");
    owfp_flow_close(f);
    done();
}

static void test_S24_T17_terminating_continue_is_block(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[0] = ANS(FWP_ACTION_CONTINUE);
    g.co[0].script[1] = ANS(FWP_ACTION_NONE);
    g.co[0].script[2] = ANS(FWP_ACTION_NONE_NO_MATCH);
    g.co[0].script[3] = ANS(FWP_ACTION_PERMIT);
    g.co[0].nscript = 4;
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *f = open4();
    ind(f, RECV, "aaa");
    ind(f, RECV, "bbb");
    ind(f, RECV, "ccc");
    assert_out(RECV, "");
    assert_int_equal(g.co[1].n, 0);
    ind(f, RECV, "ddd");
    assert_out(RECV, "ddd");
    assert_int_equal(g.co[1].n, 1);
    assert_int_equal(g.co[1].rec[0].missed, 9); /* the data was removed */
    owfp_flow_close(f);
    done();
}

static void test_S24_T18_inspection_block_is_continue(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    reg(2, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 9);
    sf(2, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 5);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[0] = ANS(FWP_ACTION_BLOCK);
    g.co[0].script[1] = ANS(FWP_ACTION_PERMIT); /* not a decision either */
    g.co[0].nscript = 2;
    g.co[1].dflt = g.co[2].dflt = ANS(FWP_ACTION_BLOCK);
    owfp_flow *f = open4();
    ind(f, RECV, "blocked?");
    ind(f, SEND, "permitted?");
    assert_out(RECV, "blocked?");
    assert_out(SEND, "permitted?");
    /* Everyone below saw both, nothing missed. */
    for (int k = 1; k <= 2; k++) {
        assert_int_equal(g.co[k].n, 2);
        assert_rec(&g.co[k].rec[0], "blocked?");
        assert_int_equal(g.co[k].rec[0].missed, 0);
        assert_rec(&g.co[k].rec[1], "permitted?");
    }
    owfp_flow_close(f);
    done();
}

static void test_S24_unknown_filter_answers(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_UNKNOWN, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[0] = ANS(FWP_ACTION_BLOCK);
    g.co[0].script[1] = ANS(FWP_ACTION_PERMIT);
    g.co[0].script[2] = ANS(FWP_ACTION_CONTINUE);
    g.co[0].script[3] = ANS(FWP_ACTION_NONE); /* Q10: other = CONTINUE */
    g.co[0].nscript = 4;
    g.co[1].dflt = ANS(FWP_ACTION_CONTINUE);
    owfp_flow *f = open4();
    ind(f, RECV, "a");
    ind(f, RECV, "b");
    ind(f, RECV, "c");
    ind(f, RECV, "d");
    assert_out(RECV, "bcd");
    assert_int_equal(g.co[1].n, 3);
    owfp_flow_close(f);
    done();
}

/* T16: the 0x40 callout clones and blocks everything and re-injects the
 * clones from a worker thread; the 0x20 callout edits inline. */
static NET_BUFFER_LIST *g_clones[8];
static int g_nclones;

static void hook_clone_and_block(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                 FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)call;
    (void)in;
    (void)meta;
    NET_BUFFER_LIST *clone = NULL;
    g.hook_status[g.nhook_status++] = FwpsCloneStreamData0(io->streamData, NULL, NULL, 0, &clone);
    g_clones[g_nclones++] = clone;
    out->actionType = FWP_ACTION_BLOCK;
    io->countBytesEnforced = 0;
}

struct oob_job {
    NET_BUFFER_LIST *nbl;
    SIZE_T len;
    UINT32 flags;
    NTSTATUS status;
};

static void *oob_inject(void *arg)
{
    struct oob_job *j = arg;
    j->status = FwpsStreamInjectAsync0(g.inj, NULL, 0, g.flow_id, g.co[0].id, FWPS_LAYER_STREAM_V4,
                                       j->flags, j->nbl, j->len, inj_done, CTX_CLONE);
    return NULL;
}

static void test_S25_T16_lower_sublayer_sees_injected_data_injector_does_not(void **state)
{
    (void)state;
    reset();
    sublayers();
    g_nclones = 0;
    reg(0, 0);
    reg(1, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 1);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_TERMINATING, 1);
    g.co[0].hook = hook_clone_and_block;
    inj_setup();
    owfp_flow *f = open4();
    assert_int_equal(owfp_flow_set_wakeup(f, wakeup, NULL), STATUS_SUCCESS);
    ind(f, RECV, "hello");
    assert_int_equal(g.hook_status[0], STATUS_SUCCESS);
    assert_int_equal(g.co[1].n, 0);
    assert_out(RECV, "");
    struct oob_job j = {g_clones[0], 5, FWPS_STREAM_FLAG_RECEIVE, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, oob_inject, &j), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(j.status, STATUS_SUCCESS);
    assert_int_equal(atomic_load(&g.wakeups), 1);
    assert_true(atomic_load(&g.wakeup_foreign));
    poll_flow(f);
    /* The inline callout below sees the injected copy; the injector never. */
    assert_int_equal(g.co[0].n, 1);
    assert_int_equal(g.co[1].n, 1);
    assert_rec(&g.co[1].rec[0], "hello");
    assert_int_equal(g.co[1].rec[0].flags, FWPS_STREAM_FLAG_RECEIVE);
    assert_out(RECV, "hello");
    assert_int_equal(g.out[RECV].ninjected, 1);
    assert_int_equal(atomic_load(&g.completions), 0);
    poll_flow(f);
    assert_int_equal(atomic_load(&g.completions), 1);
    assert_int_equal(g.last_completion, STATUS_SUCCESS);
    assert_false(atomic_load(&g.completion_foreign));
    owfp_flow_close(f);
    done();
}

static void hook_inline_inject_both(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                                    const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                    FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c;
    (void)call;
    (void)in;
    (void)meta;
    (void)io;
    /* Replace the received bytes and answer on the send side. */
    g.hook_status[g.nhook_status++] = inject(0, FWPS_STREAM_FLAG_RECEIVE, "PING", 4);
    g.hook_status[g.nhook_status++] = inject(0, FWPS_STREAM_FLAG_SEND, "pong", 4);
    out->actionType = FWP_ACTION_BLOCK;
}

static void test_S25_inline_injection_skips_injector_and_its_sublayer(void **state)
{
    (void)state;
    reset();
    sublayers();
    reg(0, 0);
    reg(1, 0);
    reg(2, 0);
    sf(0, &g_hi, FWP_ACTION_CALLOUT_TERMINATING, 9);
    sf(2, &g_hi, FWP_ACTION_CALLOUT_INSPECTION, 5);
    sf(1, &g_lo, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].script[0] = ANS(FWP_ACTION_PERMIT); /* SEND "before" */
    g.co[0].nscript = 1;
    g.co[0].dflt = ANS(FWP_ACTION_BLOCK);
    g.co[1].dflt = g.co[2].dflt = ANS(FWP_ACTION_CONTINUE);
    inj_setup();
    owfp_flow *f = open4();
    ind(f, SEND, "before|");
    g.co[0].hook = hook_inline_inject_both;
    ind(f, RECV, "ping");
    assert_int_equal(g.nhook_status, 2);
    assert_int_equal(g.hook_status[0], STATUS_SUCCESS);
    assert_int_equal(g.hook_status[1], STATUS_SUCCESS);
    assert_out(RECV, "PING");
    assert_out(SEND, "before|pong");
    /* Q22: neither the injector nor the lower filter of its sublayer sees
     * the injected bytes; the lower sublayer does, in both directions. */
    assert_int_equal(g.co[0].n, 2);
    assert_int_equal(g.co[2].n, 0);
    assert_int_equal(g.co[1].n, 3);
    assert_rec(&g.co[1].rec[0], "before|");
    assert_rec(&g.co[1].rec[1], "PING");
    assert_int_equal(g.co[1].rec[1].flags, FWPS_STREAM_FLAG_RECEIVE);
    assert_int_equal(g.co[1].rec[1].missed, 4);
    assert_rec(&g.co[1].rec[2], "pong");
    assert_int_equal(g.co[1].rec[2].flags, FWPS_STREAM_FLAG_SEND);
    poll_flow(f);
    assert_int_equal(atomic_load(&g.completions), 2);
    assert_int_equal(atomic_load(&g.cancelled), 0);
    owfp_flow_close(f);
    done();
}

/* ---- descriptors and hints --------------------------------------------- */

/* A callout that, from its classify, indicates on another flow (nesting
 * classifies deeper than the engine keeps descriptor arrays per depth):
 * each level must find its own stream data intact afterwards. */
#define NEST 7
static owfp_flow *g_nest[NEST];
static int g_depth;

static void hook_nest(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                      const FWPS_INCOMING_METADATA_VALUES0 *meta,
                      FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    (void)c, (void)call, (void)in, (void)meta, (void)out;
    char want[24], got[24];
    SIZE_T n = 0;
    snprintf(want, sizeof(want), "level %d", g_depth);
    if (++g_depth < NEST) {
        char next[24];
        snprintf(next, sizeof(next), "level %d", g_depth);
        struct owfp_stream_result r;
        if (owfp_stream_indicate(g_nest[g_depth], SEND, next, strlen(next), 0, &r) !=
                STATUS_SUCCESS ||
            r.dir[SEND].nspans != 1 || r.dir[SEND].spans[0].len != strlen(next))
            g.hook_status[g.nhook_status < 8 ? g.nhook_status++ : 7] = STATUS_UNSUCCESSFUL;
    }
    g_depth--;
    FwpsCopyStreamDataToBuffer0(io->streamData, got, sizeof(got) - 1, &n);
    got[n] = 0;
    if (strcmp(got, want) != 0 || io->streamData->dataLength != strlen(want))
        g.hook_status[g.nhook_status < 8 ? g.nhook_status++ : 7] = STATUS_INTERNAL_ERROR;
}

static void test_nested_classifies_keep_their_descriptors(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1);
    g.co[0].hook = hook_nest;
    for (int i = 0; i < NEST; i++) {
        struct owfp_flow_params p = h_params4((uint16_t)(50000 + i), 80, OWFP_OUTBOUND);
        g_nest[i] = h_open(&p, NULL);
    }
    g_depth = 0;
    for (int round = 0; round < 2; round++) {
        ind(g_nest[0], SEND, "level 0");
        assert_int_equal(g.nhook_status, 0);
    }
    assert_int_equal(g.co[0].n, 2 * NEST);
    assert_out(SEND, "level 0level 0");
    for (int i = 0; i < NEST; i++)
        owfp_flow_close(g_nest[i]);
    atomic_store(&g.reentered, false); /* nesting is what this test does */
    done();
}

/* owfp_flow_prefetch is a hint: at any depth, before or after the flow has
 * stream state, it changes nothing. */
static void test_flow_prefetch_changes_nothing(void **state)
{
    (void)state;
    reset();
    reg(0, 0);
    sf(0, NULL, FWP_ACTION_CALLOUT_INSPECTION, 1);
    owfp_flow *f = open4();
    owfp_flow_prefetch(NULL, 0);
    for (unsigned depth = 0; depth < 4; depth++)
        owfp_flow_prefetch(f, depth);
    ind(f, SEND, "one");
    for (unsigned depth = 0; depth < 4; depth++)
        owfp_flow_prefetch(f, depth);
    ind(f, SEND, "two");
    assert_int_equal(g.co[0].n, 2);
    assert_rec(&g.co[0].rec[1], "two");
    assert_out(SEND, "onetwo");
    owfp_flow_close(f);
    done();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nested_classifies_keep_their_descriptors, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_flow_prefetch_changes_nothing, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S1_payload_of_both_directions_at_stream_v4_and_v6, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S2_direction_field_is_the_connections_not_the_segments, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S3_conditions_select_the_flows_a_stream_filter_sees, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S4_metadata_flow_handle_and_compartment, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S5_stream_data_is_one_nbl_per_contiguous_piece, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S5_without_stream_filters_each_indication_is_its_own_span, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S6_out_fields_are_reset_on_every_call, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S7_missed_bytes_count_bytes_blocked_above_per_direction, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S7_missed_bytes_count_bytes_permitted_past_in_the_sublayer, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S7_gap_from_the_data_plane_is_reported_as_missed_bytes, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S8_fin_is_a_separate_zero_length_disconnect_indication, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S8_no_more_data_on_the_data_right_before_fin, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S8_blocked_fin_is_pended_until_injected, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S9_push_and_nodelay_modifiers, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S10_rst_shows_abort_and_drops_the_flow, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S11_urgent_data_is_expedited, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S12_classifies_of_a_flow_are_never_concurrent, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S13_engine_makes_no_empty_data_indications, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S14_stream_action_overrides_action_type, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S15_T10_permit_with_zero_and_with_full_count, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S15_count_covers_the_leading_bytes, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S16_remainder_is_reindicated_at_once, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S16_remainder_never_carries_newer_data, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S16_remainder_before_fin_keeps_no_more_data, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S16_T9_inline_replace_n_p_m, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_T11_need_more_data_with_three_byte_segments, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S17_T12_fin_while_need_more_data_pending, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S23_blocked_bytes_never_reach_lower_sublayers, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S23_permit_skips_only_the_rest_of_its_sublayer, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S23_static_filters_take_part_in_the_waterfall, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S24_rights_mean_nothing_and_no_answer_blocks, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S24_T17_terminating_continue_is_block, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S24_T18_inspection_block_is_continue, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S24_unknown_filter_answers, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S25_T16_lower_sublayer_sees_injected_data_injector_does_not, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_S25_inline_injection_skips_injector_and_its_sublayer, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
