/* Connections through the engine: the tracker's events become ALE and
 * stream-layer calls, and the engine's answers go to the outputs. */
#include "replay/replay_conn.h"

#include <stdlib.h>
#include <string.h>

#include <openwfp/kernel.h>

#include "replay/decode.h"
#include "replay/outputs.h"
#include "replay/report.h"
#include "replay/tracker.h"

/* How long a flow's end waits for out-of-band work (settle) before the
 * replay stops waiting for work items altogether. */
#define SETTLE_MS 5000u
/* Defaults of the reassembly caps: enough for any real window, small enough
 * that a hostile capture cannot take the machine. */
#define DEFAULT_MAX_BUFFERED (4u << 20)
#define DEFAULT_MAX_BUFFERED_TOTAL (1ull << 30)
/* Expiry-list precision (tracker.h, touch_step_us): flow timeouts are in
 * seconds or more, and most packets then leave the list alone. */
#define TOUCH_STEP_US 1000000

#define STATUS_OK(st) ((st) >= 0)

/* ---- which side is local ---------------------------------------------------- */

static bool in_net(const struct owfp_net *n, uint8_t v, const uint8_t *addr)
{
    if (n->ip_version != v)
        return false;
    unsigned full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr, addr, full) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (n->addr[full] & mask) == (addr[full] & mask);
}

static bool is_local(const struct owfp_replay *r, uint8_t v, const uint8_t *addr)
{
    for (size_t i = 0; i < r->opt.nlocal_nets; i++)
        if (in_net(&r->opt.local_nets[i], v, addr))
            return true;
    return false;
}

/* The initiator is local unless --local names the responder's network only. */
static uint8_t send_side_of(const struct owfp_replay *r, const struct owfp_conn *c)
{
    if (!r->opt.nlocal_nets)
        return 0;
    bool ini = is_local(r, c->key.ip_version, owfp_conn_addr(c, 0));
    bool res = is_local(r, c->key.ip_version, owfp_conn_addr(c, 1));
    return !ini && res ? 1 : 0;
}

static bool loopback(uint8_t v, const uint8_t *a)
{
    static const uint8_t v6[16] = {[15] = 1};
    return v == 4 ? a[0] == 127 : memcmp(a, v6, 16) == 0;
}

/* ---- the engine's answers --------------------------------------------------- */

static void take(struct owfp_replay *r, struct owfp_rconn *rc, const struct owfp_stream_result *res)
{
    for (int dir = 0; dir < 2; dir++) {
        int side = dir == OWFP_STREAM_SEND ? rc->send_side : 1 - rc->send_side;
        const struct owfp_stream_output *o = &res->dir[dir];
        struct owfp_rside *d = &rc->d[side];
        for (size_t i = 0; i < o->nspans; i++) {
            const struct owfp_span *sp = &o->spans[i];
            bool inj = sp->origin == OWFP_SPAN_INJECTED;
            if (inj)
                d->injected += sp->len;
            else
                d->permitted += sp->len;
            owfp_outputs_bytes(r, rc, side, sp->data, sp->len, inj);
        }
        if (o->state & OWFP_DIR_DEFERRED)
            rc->deferred = true;
        if ((o->state & OWFP_DIR_FIN) && !rc->fin_out[side]) {
            rc->fin_out[side] = true;
            owfp_outputs_fin(r, rc, side);
        }
    }
    if (res->flow_state & OWFP_FLOW_OFFLOADABLE)
        rc->offloaded = true;
    if ((res->flow_state & OWFP_FLOW_DROPPED) && !rc->dropped) {
        rc->dropped = true;
        owfp_outputs_reset(r, rc);
    }
}

static void note_error(struct owfp_rconn *rc, owfp_status st)
{
    if (!rc->error)
        rc->error = st;
}

/* Whether the engine still sees this connection's bytes. */
static bool inspected(const struct owfp_rconn *rc)
{
    return rc->flow && !rc->blocked && !rc->dropped && !rc->offloaded;
}

/* ---- wake-ups from other threads -------------------------------------------- */

/* Called by whatever thread injected or continued: only queue the flow, the
 * replay thread polls it (owfp_stream_poll) between packets. */
static void wake(void *arg, owfp_flow *flow)
{
    (void)flow;
    struct owfp_rconn *rc = arg;
    struct owfp_replay *r = rc->replay;
    pthread_mutex_lock(&r->wake_lock);
    if (!rc->woken) {
        rc->woken = true;
        rc->woken_next = r->woken;
        r->woken = rc;
    }
    atomic_store(&r->any_woken, true);
    pthread_mutex_unlock(&r->wake_lock);
}

static void unqueue(struct owfp_replay *r, struct owfp_rconn *rc)
{
    pthread_mutex_lock(&r->wake_lock);
    for (struct owfp_rconn **pp = &r->woken; *pp; pp = &(*pp)->woken_next) {
        if (*pp == rc) {
            *pp = rc->woken_next;
            break;
        }
    }
    rc->woken = false;
    pthread_mutex_unlock(&r->wake_lock);
}

/* Whether any connection was woken. */
static bool poll_woken(struct owfp_replay *r)
{
    bool any = false;
    if (!atomic_load_explicit(&r->any_woken, memory_order_acquire))
        return false;
    for (;;) {
        pthread_mutex_lock(&r->wake_lock);
        struct owfp_rconn *rc = r->woken;
        if (rc) {
            r->woken = rc->woken_next;
            rc->woken = false;
        } else {
            atomic_store(&r->any_woken, false);
        }
        pthread_mutex_unlock(&r->wake_lock);
        if (!rc)
            return any;
        any = true;
        struct owfp_stream_result res = {0};
        owfp_status st = owfp_stream_poll(rc->flow, &res);
        if (!STATUS_OK(st))
            note_error(rc, st);
        take(r, rc, &res);
    }
}

/* Out-of-band work (spec S27 d) runs on other threads: a callout that
 * cloned and blocked data injects it, or continues a deferred direction,
 * from a work item. Before a flow ends or is reset: wait until no work item
 * is queued or running, then take what they injected or continued; that may
 * classify again and queue more work, so repeat until a pass finds nothing
 * woken. Then nothing the callouts still held is lost and the result does
 * not depend on scheduling. A driver whose work items never go idle is
 * waited for once, up to SETTLE_MS, and no more after that. Work done on a
 * driver's own system threads is not waited for. */
static void settle(struct owfp_replay *r)
{
    do {
        if (!r->settle_gave_up && !owfp_workitems_wait_idle(SETTLE_MS)) {
            r->settle_gave_up = true;
            fprintf(stderr, "openwfp replay: work items still busy after %u s; flows end "
                            "without waiting for them from now on\n",
                    SETTLE_MS / 1000);
        }
    } while (poll_woken(r));
}

/* ---- tracker events ---------------------------------------------------------- */

static void flow_params(const struct owfp_rconn *rc, struct owfp_flow_params *fp)
{
    const struct owfp_conn *c = owfp_rconn_conn(rc);
    int l = rc->send_side, rm = 1 - l;
    memset(fp, 0, sizeof(*fp));
    fp->ip_version = c->key.ip_version;
    fp->protocol = 6;
    fp->direction = l == 0 ? OWFP_OUTBOUND : OWFP_INBOUND;
    memcpy(fp->local_addr, owfp_conn_addr(c, l), 16);
    memcpy(fp->remote_addr, owfp_conn_addr(c, rm), 16);
    fp->local_port = owfp_conn_port(c, l);
    fp->remote_port = owfp_conn_port(c, rm);
    if (loopback(fp->ip_version, fp->local_addr))
        fp->condition_flags |= 0x00000001; /* FWP_CONDITION_FLAG_IS_LOOPBACK */
    fp->interface_index = 1;
    fp->interface_type = 6; /* IF_TYPE_ETHERNET_CSMACD */
    fp->compartment_id = 1;
}

static void ev_open(void *arg, struct owfp_conn *c)
{
    struct owfp_replay *r = arg;
    struct owfp_rconn *rc = owfp_conn_user(c);
    r->totals.conns++;
    rc->live = true;
    rc->replay = r;
    rc->send_side = send_side_of(r, c);
    struct owfp_flow_params fp;
    flow_params(rc, &fp);
    enum owfp_flow_verdict v = OWFP_FLOW_PERMITTED;
    owfp_status st = owfp_flow_open(owfp_engine_current(), &fp, &rc->flow, &v);
    if (!STATUS_OK(st)) {
        /* Fail closed, as the filter engine does when it cannot classify. */
        note_error(rc, st);
        rc->flow = NULL;
        rc->blocked = true;
    } else {
        rc->blocked = v == OWFP_FLOW_BLOCKED;
        st = owfp_flow_set_wakeup(rc->flow, wake, rc);
        if (!STATUS_OK(st))
            note_error(rc, st);
    }
    r->totals.opened++;
    owfp_outputs_open(r, rc);
    if (rc->blocked)
        owfp_outputs_reset(r, rc); /* a blocked connection is torn down */
}

static void ev_data(void *arg, struct owfp_conn *c, int side, const uint8_t *p, size_t n,
                    uint32_t flags)
{
    struct owfp_replay *r = arg;
    struct owfp_rconn *rc = owfp_conn_user(c);
    if (!rc->live)
        return;
    if (rc->offloaded && !rc->dropped) {
        rc->d[side].permitted += n;
        owfp_outputs_bytes(r, rc, side, p, n, false);
        return;
    }
    if (!inspected(rc))
        return;
    uint32_t mods = (flags & OWFP_REASM_PUSH ? OWFP_STREAM_PUSH : 0) |
                    (flags & OWFP_REASM_URGENT ? OWFP_STREAM_URGENT : 0);
    struct owfp_stream_result res = {0};
    r->indicated++;
    owfp_status st = owfp_stream_indicate(rc->flow, owfp_rconn_dir(rc, side), p, n, mods, &res);
    if (!STATUS_OK(st)) {
        note_error(rc, st);
        rc->d[side].refused += n;
    }
    take(r, rc, &res);
}

static void ev_gap(void *arg, struct owfp_conn *c, int side, uint64_t n)
{
    struct owfp_replay *r = arg;
    struct owfp_rconn *rc = owfp_conn_user(c);
    if (!rc->live)
        return;
    owfp_outputs_gap(r, rc, side, n);
    if (!inspected(rc))
        return;
    struct owfp_stream_result res = {0};
    owfp_status st = owfp_stream_gap(rc->flow, owfp_rconn_dir(rc, side), n, &res);
    if (!STATUS_OK(st))
        note_error(rc, st);
    take(r, rc, &res);
}

static void ev_fin(void *arg, struct owfp_conn *c, int side)
{
    struct owfp_replay *r = arg;
    struct owfp_rconn *rc = owfp_conn_user(c);
    if (!rc->live)
        return;
    if (!inspected(rc)) {
        /* Nothing inspects it: the FIN passes as it came (unless blocked). */
        if (rc->offloaded && !rc->dropped && !rc->fin_out[side]) {
            rc->fin_out[side] = true;
            owfp_outputs_fin(r, rc, side);
        }
        return;
    }
    struct owfp_stream_result res = {0};
    owfp_status st = owfp_stream_fin(rc->flow, owfp_rconn_dir(rc, side), &res);
    if (!STATUS_OK(st))
        note_error(rc, st);
    take(r, rc, &res);
}

static void ev_rst(void *arg, struct owfp_conn *c, int side)
{
    struct owfp_replay *r = arg;
    struct owfp_rconn *rc = owfp_conn_user(c);
    if (!rc->live)
        return;
    /* What callouts still hold out of band was sent before the RST. Not so
     * in a tape: there, as on Windows, a reset may overtake queued work
     * items, which then run after the ABORT indication (spec S10). */
    if (inspected(rc) && !r->in_tape)
        settle(r);
    if (inspected(rc)) { /* settling may have ended what the engine sees of it */
        struct owfp_stream_result res = {0};
        owfp_status st = owfp_stream_abort(rc->flow, owfp_rconn_dir(rc, side), &res);
        if (!STATUS_OK(st))
            note_error(rc, st);
        /* The engine marks an aborted flow dropped (spec S10); the capture
         * reset it, no callout did. */
        res.flow_state &= ~(uint32_t)OWFP_FLOW_DROPPED;
        take(r, rc, &res);
    }
    if (!rc->dropped)
        owfp_outputs_reset(r, rc);
}

static void add_reasm(struct owfp_reasm_stats *t, const struct owfp_reasm_stats *s)
{
    t->delivered += s->delivered;
    t->gap_bytes += s->gap_bytes;
    t->gaps += s->gaps;
    t->retransmitted += s->retransmitted;
    t->conflicts += s->conflicts;
    t->out_of_order += s->out_of_order;
    t->refused += s->refused;
    t->late += s->late;
    t->after_fin += s->after_fin;
    t->out_of_window += s->out_of_window;
    t->bad_fins += s->bad_fins;
}

void owfp_rconn_rdir(const struct owfp_rconn *rc, int side, struct owfp_rdir *out)
{
    /* Every byte the reassembly delivered or skipped went through ev_data
     * or ev_gap while the connection was live. */
    struct owfp_reasm_stats st = owfp_reasm_get_stats(&owfp_rconn_conn(rc)->d[side].r);
    const struct owfp_rside *d = &rc->d[side];
    *out = (struct owfp_rdir){
        .seen = st.delivered,
        .permitted = d->permitted,
        .injected = d->injected,
        .gap_bytes = st.gap_bytes,
        .gaps = st.gaps,
        .refused = d->refused,
        .fin_out = rc->fin_out[side],
    };
}

static void count_totals(struct owfp_replay_totals *t, const struct owfp_rconn *rc)
{
    const struct owfp_conn *c = owfp_rconn_conn(rc);
    for (int side = 0; side < 2; side++) {
        struct owfp_reasm_stats st = owfp_reasm_get_stats(&c->d[side].r);
        add_reasm(&t->reasm, &st);
    }
    t->blocked += rc->blocked;
    t->dropped += rc->dropped;
    t->offloaded += rc->offloaded;
    t->deferred += rc->deferred;
    /* Counts the reassembly had no memory to keep are a failure too. */
    t->errors += rc->error != 0 || c->d[0].r.incomplete || c->d[1].r.incomplete;
    for (int side = 0; side < 2; side++) {
        struct owfp_rdir s;
        owfp_rconn_rdir(rc, side, &s);
        struct owfp_rdir *d = &t->d[owfp_rconn_dir(rc, side)];
        d->seen += s.seen;
        d->permitted += s.permitted;
        d->injected += s.injected;
        d->gap_bytes += s.gap_bytes;
        d->gaps += s.gaps;
        d->refused += s.refused;
    }
}

static void ev_end(void *arg, struct owfp_conn *c)
{
    struct owfp_replay *r = arg;
    struct owfp_rconn *rc = owfp_conn_user(c);
    if (!c->opened) {
        /* A handshake that never completed: no flow, but still a connection. */
        r->totals.conns++;
        return;
    }
    if (!rc->live)
        return;
    if (rc->flow) {
        settle(r);
        unqueue(r, rc);
        owfp_flow_close(rc->flow);
        rc->flow = NULL;
    }
    owfp_outputs_end(r, rc);
    count_totals(&r->totals, rc);
    if (!r->opt.quiet)
        owfp_report_conn(r->out, r->opt.json, rc);
    rc->live = false;
}

bool owfp_replay_hint_flow(struct owfp_replay *r, struct owfp_tracker_hint *h, unsigned depth)
{
    struct owfp_conn *c = owfp_tracker_hint_conn(r->tracker, h);
    const struct owfp_rconn *rc = c ? owfp_conn_user(c) : NULL;
    if (!rc || !rc->live || !inspected(rc))
        return false;
    owfp_flow_prefetch(rc->flow, depth);
    return true;
}

static void ev_forget(void *arg, struct owfp_conn *c)
{
    owfp_outputs_forget(arg, c);
}

static const struct owfp_track_events g_events = {
    ev_open, ev_data, ev_gap, ev_fin, ev_rst, ev_end, ev_forget,
};

/* ---- the replay ---------------------------------------------------------------- */

struct owfp_replay *owfp_replay_new(const struct owfp_replay_options *opt)
{
    struct owfp_replay *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->opt = *opt;
    r->out = opt->out ? opt->out : stdout;
    pthread_mutex_init(&r->wake_lock, NULL);
    r->budget.limit = opt->max_buffered_total ? opt->max_buffered_total : DEFAULT_MAX_BUFFERED_TOTAL;
    struct owfp_tracker_config tc = {
        .reasm = {.overlap = opt->overlap,
                  .max_buffered = opt->max_buffered ? opt->max_buffered : DEFAULT_MAX_BUFFERED,
                  .budget = &r->budget},
        .idle_timeout_us = opt->flow_timeout_us,
        .max_conns = opt->max_conns,
        .touch_step_us = TOUCH_STEP_US,
        .user_size = sizeof(struct owfp_rconn),
    };
    owfp_progress_init(&r->progress, opt->progress && !opt->quiet, opt->captures, opt->ncaptures);
    r->decoder = owfp_decoder_new(NULL);
    r->tracker = owfp_tracker_new(&tc, &g_events, r);
    if (!r->decoder || !r->tracker || owfp_outputs_start(r) != 0) {
        fprintf(stderr, "openwfp replay: out of memory or cannot create outputs\n");
        owfp_tracker_free(r->tracker);
        owfp_decoder_free(r->decoder);
        owfp_outputs_stop(r);
        pthread_mutex_destroy(&r->wake_lock);
        free(r);
        return NULL;
    }
    return r;
}

void owfp_replay_frame(struct owfp_replay *r, int dlt, const uint8_t *frame, uint32_t caplen,
                       uint32_t wirelen, uint64_t ts_us)
{
    struct owfp_pkt p;
    enum owfp_decode_result d = owfp_decode(r->decoder, dlt, frame, caplen, wirelen, ts_us, &p);
    if (d == OWFP_DECODE_FRAGMENT) {
        /* Kept by the decoder: the datagram comes back whole with its last
         * fragment, which is the frame the outputs see. */
        poll_woken(r);
        return;
    }
    const struct owfp_pkt *tcp = d == OWFP_DECODE_TCP ? &p : NULL;
    struct owfp_conn *c = NULL;
    owfp_outputs_frame_begin(r, dlt, frame, caplen, wirelen, ts_us, tcp);
    if (tcp && owfp_tracker_segment(r->tracker, tcp, &c) != 0)
        r->totals.errors++;
    owfp_outputs_frame_end(r, c);
    poll_woken(r);
}

void owfp_replay_poll(struct owfp_replay *r)
{
    poll_woken(r);
}

void owfp_replay_settle(struct owfp_replay *r)
{
    settle(r);
}

int owfp_replay_finish(struct owfp_replay *r)
{
    poll_woken(r);
    owfp_tracker_close_all(r->tracker);
    r->tracked = *owfp_tracker_stats(r->tracker);
    owfp_tracker_free(r->tracker);
    owfp_progress_end(&r->progress);
    owfp_report_totals(r->out, r->opt.json, r);
    int status = owfp_outputs_stop(r);
    fflush(r->out);
    if (ferror(r->out)) {
        fprintf(stderr, "openwfp replay: cannot write the report\n");
        status = 2;
    }
    owfp_decoder_free(r->decoder);
    pthread_mutex_destroy(&r->wake_lock);
    free(r);
    return status;
}
