/* The offloaded path (spec O4): once no callout inspects a flow, its bytes
 * go socket -> pipe -> socket with splice(2) and never enter user space.
 * Without a pipe (out of descriptors) the flow falls back to a plain copy
 * loop; the statistics say which path each flow took. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/conn.h"
#include "proxy/worker.h"

/* Bigger pipes mean fewer splice calls per megabyte; the kernel caps the
 * size (fs.pipe-max-size), and a refusal leaves the default. */
#define PIPE_BYTES (1u << 20)

/* The slot count is what the kernel granted, which a refused resize
 * leaves smaller than asked for. */
static bool get_pipe(struct owfp_worker *w, int p[2], uint32_t *slots)
{
    if (w->nspare) {
        const struct owfp_spare_pipe *s = &w->spare_pipes[--w->nspare];
        p[0] = s->fd[0];
        p[1] = s->fd[1];
        *slots = s->slots;
        return true;
    }
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
        return false;
    int bytes = fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES);
    if (bytes < 0)
        bytes = fcntl(p[1], F_GETPIPE_SZ);
    long page = sysconf(_SC_PAGESIZE);
    *slots = bytes > 0 && page > 0 ? (uint32_t)(bytes / page) : 0;
    return true;
}

void owfp_offload_release(struct owfp_conn *c)
{
    struct owfp_worker *w = c->w;
    for (int dir = 0; dir < 2; dir++) {
        struct owfp_pdir *d = &c->d[dir];
        if (d->pipe[0] < 0)
            continue;
        /* An empty pipe is as good as new; one with bytes in it is not. */
        if (!d->in_pipe && w->nspare < OWFP_SPARE_PIPES) {
            w->spare_pipes[w->nspare++] = (struct owfp_spare_pipe){
                .fd = {d->pipe[0], d->pipe[1]}, .slots = d->pipe_slots};
        } else {
            close(d->pipe[0]);
            close(d->pipe[1]);
        }
        d->pipe[0] = d->pipe[1] = -1;
        d->in_pipe = 0;
    }
}

static void count(struct owfp_conn *c, int dir, size_t n)
{
    c->d[dir].offloaded += n;
    if (dir == OWFP_STREAM_SEND)
        OWFP_STAT_ADD(&c->w->stats, bytes_offloaded_send, n);
    else
        OWFP_STAT_ADD(&c->w->stats, bytes_offloaded_receive, n);
}

static void note_path(struct owfp_conn *c, bool copy)
{
    /* Counted once per flow, by the first direction that moves. */
    if (c->d[0].pipe[0] >= 0 || c->d[1].pipe[0] >= 0 || c->d[0].copy_only || c->d[1].copy_only)
        return;
    if (copy)
        OWFP_STAT_ADD(&c->w->stats, offloaded_copy, 1);
    else
        OWFP_STAT_ADD(&c->w->stats, offloaded_splice, 1);
}

/* The source ended: the relay's flush shuts the destination once the pipe
 * and the queue are empty, as it does for a FIN the callouts released. */
static void source_ended(struct owfp_pdir *d)
{
    d->eof = true;
    d->fin_out = true;
}

/* A failed socket ends the connection; the flow saw its last indication
 * when it was offloaded, so this is a plain reset. */
static bool fail(struct owfp_conn *c)
{
    OWFP_STAT_ADD(&c->w->stats, peer_resets, 1);
    owfp_conn_reset(c, "socket error after offload");
    return false;
}

static bool copy_pump(struct owfp_conn *c, int dir)
{
    struct owfp_pdir *d = &c->d[dir];
    struct owfp_worker *w = c->w;
    if (d->eof || !(c->leg[src_leg(dir)] & LEG_READABLE))
        return false;
    ssize_t n = recv(c->fd[src_leg(dir)], w->buf, w->buflen, MSG_DONTWAIT);
    if (n == 0) {
        source_ended(d);
        return true;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->leg[src_leg(dir)] &= (uint8_t)~LEG_READABLE;
            return false;
        }
        return errno == EINTR ? false : fail(c);
    }
    owfp_leg_read(c, src_leg(dir), (size_t)n, w->buflen);
    owfp_worker_touch(w, c);
    count(c, dir, (size_t)n);
    struct iovec iov = {w->buf, (size_t)n};
    int err;
    size_t done = owfp_send_iov(c->fd[dst_leg(dir)], &iov, 1, &err);
    if (err && err != EAGAIN)
        return fail(c);
    if (done < (size_t)n) {
        c->leg[dst_leg(dir)] &= (uint8_t)~LEG_WRITABLE;
        return owfp_conn_enqueue(c, dir, w->buf + done, (size_t)n - done);
    }
    return true;
}

/* Whether the socket's next byte is TCP urgent data, which stops splice(2)
 * with EAGAIN for good. Asked only after EPOLLPRI (LEG_DRAIN), so it costs
 * nothing in the common case. */
static bool at_urgent_mark(const struct owfp_conn *c, int leg)
{
    return (c->leg[leg] & LEG_DRAIN) && sockatmark(c->fd[leg]) == 1;
}

bool owfp_offload_pump(struct owfp_conn *c, int dir)
{
    struct owfp_pdir *d = &c->d[dir];
    if (d->shut)
        return false;
    if (d->pipe[0] < 0 && !d->copy_only) {
        /* No pipe before the source has something (bytes or its end): an
         * idle flow holds its two sockets, not four pipe descriptors more. */
        if (d->eof || !(c->leg[src_leg(dir)] & LEG_READABLE))
            return false;
        int p[2];
        uint32_t slots;
        bool have = get_pipe(c->w, p, &slots);
        note_path(c, !have);
        if (have) {
            d->pipe[0] = p[0];
            d->pipe[1] = p[1];
            d->pipe_slots = slots;
        } else {
            d->copy_only = true;
        }
    }
    if (d->copy_only)
        return copy_pump(c, dir);
    int src = c->fd[src_leg(dir)], dst = c->fd[dst_leg(dir)];
    bool progress = false;
    /* Fill only an empty pipe: then EAGAIN can only mean the socket is
     * empty, never that the pipe is full. */
    if (!d->in_pipe && !d->eof && (c->leg[src_leg(dir)] & LEG_READABLE)) {
        ssize_t n = splice(src, NULL, d->pipe[1], NULL, PIPE_BYTES, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            /* A pipe buffer holds at least one byte: fewer bytes than
             * buffers cannot have filled the pipe, so the socket ran out.
             * More bytes prove nothing (the pipe may be full of small
             * segments), and only EAGAIN says the socket is empty. */
            owfp_leg_read(c, src_leg(dir), (size_t)n, d->pipe_slots);
            d->in_pipe = (uint32_t)n;
            progress = true;
            owfp_worker_touch(c->w, c);
        } else if (n == 0) {
            source_ended(d);
            progress = true;
        } else if (errno == EAGAIN && at_urgent_mark(c, src_leg(dir))) {
            /* splice never reads past the urgent mark; recv does
             * (SO_OOBINLINE): the rest of this direction is copied. */
            d->copy_only = true;
            return copy_pump(c, dir) || progress;
        } else if (errno == EAGAIN) {
            c->leg[src_leg(dir)] &= (uint8_t)~LEG_READABLE;
        } else if (errno != EINTR) {
            return fail(c);
        }
    }
    while (d->in_pipe && (c->leg[dst_leg(dir)] & LEG_WRITABLE)) {
        ssize_t n = splice(d->pipe[0], NULL, dst, NULL, d->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            d->in_pipe -= (uint32_t)n;
            count(c, dir, (size_t)n);
            progress = true;
        } else if (n < 0 && errno == EAGAIN) {
            c->leg[dst_leg(dir)] &= (uint8_t)~LEG_WRITABLE;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return fail(c);
        }
    }
    return progress;
}
