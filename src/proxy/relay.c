/* Moving bytes through the engine: a read becomes one stream indication,
 * the engine's spans are written to the other leg at once, and only what a
 * socket cannot take yet is copied. A direction is not read again while its
 * destination has bytes waiting (back-pressure), while a callout defers it,
 * or while the worker's buffer budget is spent. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/conn.h"
#include "proxy/worker.h"

#define IOV_BATCH 64
/* Rounds of the pump before other connections get their turn. */
#define PUMP_ROUNDS 8

/* A peer reset (or a socket failed) while bytes travelled in `dir`'s source:
 * the callouts see ABORT for that direction, then both legs are reset. */
static void abort_dir(struct owfp_conn *c, int dir, const char *why)
{
    OWFP_STAT_ADD(&c->w->stats, peer_resets, 1);
    if (c->flow && !c->d[dir].eof) {
        struct owfp_stream_result res;
        c->d[dir].eof = true;
        (void)owfp_stream_abort(c->flow, (enum owfp_stream_direction)dir, &res);
    }
    owfp_conn_reset(c, why);
}

/* Copies what the destination could not take to the direction's queue.
 * Returns false when the connection ended: --max-buffered would be exceeded
 * (checked before copying, so a callout that injects without end costs at
 * most the limit, not what it injected), or out of memory. */
bool owfp_conn_enqueue(struct owfp_conn *c, int dir, const uint8_t *data, size_t len)
{
    struct owfp_pdir *d = &c->d[dir];
    struct owfp_worker *w = c->w;
    if (d->q.bytes + len > w->opt->max_buffered) {
        OWFP_STAT_ADD(&w->stats, buffer_limit_hits, 1);
        owfp_conn_reset(c, "--max-buffered exceeded");
        return false;
    }
    if (!owfp_outq_push(&d->q, data, len)) {
        owfp_conn_reset(c, "out of memory");
        return false;
    }
    owfp_worker_buffered_add(w, (int64_t)len);
    return true;
}

/* The spans of one direction: written now if the destination takes them,
 * the rest copied to its queue. Returns false when the connection ended. */
static bool deliver(struct owfp_conn *c, int dir, const struct owfp_stream_output *o)
{
    struct owfp_pdir *d = &c->d[dir];
    int fd = c->fd[dst_leg(dir)];
    for (size_t i = 0; i < o->nspans; i++) {
        if (o->spans[i].origin == OWFP_SPAN_INJECTED)
            d->injected += o->spans[i].len;
        else
            d->permitted += o->spans[i].len;
    }
    size_t i = 0;
    bool direct = !d->q.bytes && (c->leg[dst_leg(dir)] & LEG_WRITABLE);
    while (direct && i < o->nspans) {
        struct iovec iov[IOV_BATCH];
        int n = 0;
        size_t want = 0;
        for (size_t k = i; k < o->nspans && n < IOV_BATCH; k++, n++) {
            iov[n].iov_base = (void *)o->spans[k].data;
            iov[n].iov_len = o->spans[k].len;
            want += o->spans[k].len;
        }
        int err;
        size_t done = owfp_send_iov(fd, iov, n, &err);
        if (err && err != EAGAIN) {
            abort_dir(c, 1 - dir, "write failed");
            return false;
        }
        /* Skip what went out; a partly written span continues below. */
        size_t left = done;
        while (i < o->nspans && left >= o->spans[i].len)
            left -= o->spans[i++].len;
        if (done < want) {
            c->leg[dst_leg(dir)] &= (uint8_t)~LEG_WRITABLE;
            if (!owfp_conn_enqueue(c, dir, o->spans[i].data + left, o->spans[i].len - left))
                return false;
            i++;
            direct = false;
        }
    }
    for (; i < o->nspans; i++)
        if (!owfp_conn_enqueue(c, dir, o->spans[i].data, o->spans[i].len))
            return false;
    return true;
}

static void count_out(struct owfp_worker *w, int dir, uint64_t permitted, uint64_t injected)
{
    if (dir == OWFP_STREAM_SEND) {
        OWFP_STAT_ADD(&w->stats, bytes_permitted_send, permitted);
        OWFP_STAT_ADD(&w->stats, bytes_injected_send, injected);
    } else {
        OWFP_STAT_ADD(&w->stats, bytes_permitted_receive, permitted);
        OWFP_STAT_ADD(&w->stats, bytes_injected_receive, injected);
    }
}

void owfp_conn_apply(struct owfp_conn *c, owfp_status st, const struct owfp_stream_result *res)
{
    struct owfp_worker *w = c->w;
    if (c->state != CONN_RELAY)
        return;
    if (st < 0) {
        OWFP_STAT_ADD(&w->stats, engine_errors, 1);
        owfp_conn_reset(c, "engine call failed");
        return;
    }
    if (res->flow_state & OWFP_FLOW_DROPPED) {
        OWFP_STAT_ADD(&w->stats, dropped, 1);
        owfp_conn_reset(c, "DROP_CONNECTION");
        return;
    }
    for (int dir = 0; dir < 2; dir++) {
        const struct owfp_stream_output *o = &res->dir[dir];
        struct owfp_pdir *d = &c->d[dir];
        uint64_t p0 = d->permitted, i0 = d->injected;
        bool alive = deliver(c, dir, o);
        /* Counted either way: part of it may have reached the peer. */
        count_out(w, dir, d->permitted - p0, d->injected - i0);
        if (!alive)
            return;
        bool deferred = o->state & OWFP_DIR_DEFERRED;
        if (deferred && !d->deferred)
            OWFP_STAT_ADD(&w->stats, defers, 1);
        d->deferred = deferred;
        if (o->state & OWFP_DIR_FIN)
            d->fin_out = true;
    }
    if ((res->flow_state & OWFP_FLOW_OFFLOADABLE) && !c->offloaded &&
        w->opt->offload == OWFP_OFFLOAD_SPLICE) {
        /* Spec O4: nothing inspects this flow any more. The bytes still
         * queued go first; then each open direction leaves the engine. */
        c->offloaded = true;
        for (int dir = 0; dir < 2; dir++)
            c->d[dir].spliced = !c->d[dir].eof;
    }
}

/* ---- the pump ------------------------------------------------------------ */

/* Writes the direction's queue; shuts the destination once the FIN is
 * released and everything before it is out. */
static bool flush(struct owfp_conn *c, int dir)
{
    struct owfp_pdir *d = &c->d[dir];
    struct owfp_worker *w = c->w;
    int leg = dst_leg(dir);
    bool progress = false;
    if (d->q.bytes && (c->leg[leg] & LEG_WRITABLE)) {
        int err;
        size_t n = owfp_outq_flush(&d->q, c->fd[leg], &err);
        owfp_worker_buffered_add(w, -(int64_t)n);
        progress = n > 0;
        if (err == EAGAIN) {
            c->leg[leg] &= (uint8_t)~LEG_WRITABLE;
        } else if (err) {
            abort_dir(c, 1 - dir, "write failed");
            return false;
        }
    }
    if (!d->q.bytes && !d->in_pipe && d->fin_out && !d->shut) {
        d->shut = true;
        /* When the other direction is shut and its source read to the end,
         * the connection closes in this round (maybe_done) and that close
         * sends the FIN: nothing is left unread on this leg to turn it into
         * a reset. */
        const struct owfp_pdir *o = &c->d[1 - dir];
        if (!(o->shut && o->eof))
            (void)shutdown(c->fd[leg], SHUT_WR);
        progress = true;
    }
    return progress;
}

static bool may_read(struct owfp_conn *c, int dir)
{
    const struct owfp_pdir *d = &c->d[dir];
    if (!(c->leg[src_leg(dir)] & LEG_READABLE) || d->eof || d->deferred || d->q.bytes)
        return false;
    struct owfp_worker *w = c->w;
    if (atomic_load_explicit(&w->buffered, memory_order_relaxed) >= w->budget) {
        OWFP_STAT_ADD(&w->stats, buffer_limit_hits, 1);
        owfp_worker_starve(w, c);
        return false;
    }
    return true;
}

static bool read_once(struct owfp_conn *c, int dir)
{
    if (!may_read(c, dir))
        return false;
    struct owfp_worker *w = c->w;
    struct owfp_pdir *d = &c->d[dir];
    int fd = c->fd[src_leg(dir)];
    ssize_t n = recv(fd, w->buf, w->buflen, MSG_DONTWAIT);
    struct owfp_stream_result res;
    owfp_status st;
    if (n > 0) {
        owfp_leg_read(c, src_leg(dir), (size_t)n, w->buflen);
        d->read += (uint64_t)n;
        if (dir == OWFP_STREAM_SEND)
            OWFP_STAT_ADD(&w->stats, bytes_read_send, (uint64_t)n);
        else
            OWFP_STAT_ADD(&w->stats, bytes_read_receive, (uint64_t)n);
        owfp_worker_touch(w, c);
        st = owfp_stream_indicate(c->flow, (enum owfp_stream_direction)dir, w->buf, (size_t)n, 0,
                                  &res);
    } else if (n == 0) {
        d->eof = true;
        owfp_worker_touch(w, c);
        st = owfp_stream_fin(c->flow, (enum owfp_stream_direction)dir, &res);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        if (errno != EINTR)
            c->leg[src_leg(dir)] &= (uint8_t)~LEG_READABLE;
        return false;
    } else {
        abort_dir(c, dir, "read failed");
        return false;
    }
    owfp_conn_apply(c, st, &res);
    return true;
}

static void maybe_done(struct owfp_conn *c)
{
    if (c->state == CONN_RELAY && c->d[0].shut && c->d[1].shut)
        owfp_conn_finish(c);
}

void owfp_conn_pump(struct owfp_conn *c)
{
    for (int round = 0; round < PUMP_ROUNDS; round++) {
        bool progress = false;
        for (int dir = 0; dir < 2 && c->state == CONN_RELAY; dir++)
            progress |= flush(c, dir);
        for (int dir = 0; dir < 2 && c->state == CONN_RELAY; dir++) {
            if (c->d[dir].spliced)
                progress |= !c->d[dir].q.bytes && owfp_offload_pump(c, dir);
            else
                progress |= read_once(c, dir);
        }
        maybe_done(c);
        if (c->state != CONN_RELAY || !progress)
            return;
    }
    /* Still busy: let the worker's other connections run first. */
    owfp_worker_ready(c->w, c);
}

void owfp_conn_poll(struct owfp_conn *c)
{
    if (c->state != CONN_RELAY || !c->flow)
        return;
    struct owfp_stream_result res;
    owfp_status st = owfp_stream_poll(c->flow, &res);
    owfp_conn_apply(c, st, &res);
    owfp_conn_pump(c);
}
