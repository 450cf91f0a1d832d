#include "proxy/outq.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/alloc.h"

/* Small leftovers share a chunk; a big one gets a chunk of its own size. */
#define CHUNK_MIN (16u * 1024)
#define IOV_BATCH 64

struct owfp_chunk {
    struct owfp_chunk *next;
    size_t off, len, cap;
    uint8_t data[];
};

bool owfp_outq_push(struct owfp_outq *q, const void *data, size_t len)
{
    struct owfp_chunk *t = q->tail;
    if (t && t->cap - t->len >= len) {
        memcpy(t->data + t->len, data, len);
        t->len += len;
        q->bytes += len;
        return true;
    }
    size_t cap = len > CHUNK_MIN ? len : CHUNK_MIN;
    struct owfp_chunk *c = owfp_malloc(sizeof(*c) + cap);
    if (!c)
        return false;
    c->next = NULL;
    c->off = 0;
    c->len = len;
    c->cap = cap;
    memcpy(c->data, data, len);
    if (t)
        t->next = c;
    else
        q->head = c;
    q->tail = c;
    q->bytes += len;
    return true;
}

size_t owfp_send_iov(int fd, struct iovec *iov, int niov, int *err)
{
    size_t total = 0;
    *err = 0;
    while (niov > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            *err = errno == EWOULDBLOCK ? EAGAIN : errno;
            return total;
        }
        total += (size_t)n;
        size_t left = (size_t)n;
        while (niov > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            niov--;
        }
        if (niov > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
            /* A short write: the socket buffer is full. */
            *err = EAGAIN;
            return total;
        }
    }
    return total;
}

size_t owfp_outq_flush(struct owfp_outq *q, int fd, int *err)
{
    size_t total = 0;
    *err = 0;
    while (q->head) {
        struct iovec iov[IOV_BATCH];
        int n = 0;
        for (struct owfp_chunk *c = q->head; c && n < IOV_BATCH; c = c->next, n++) {
            iov[n].iov_base = c->data + c->off;
            iov[n].iov_len = c->len - c->off;
        }
        size_t done = owfp_send_iov(fd, iov, n, err);
        total += done;
        q->bytes -= done;
        while (done) {
            struct owfp_chunk *c = q->head;
            size_t take = c->len - c->off < done ? c->len - c->off : done;
            c->off += take;
            done -= take;
            if (c->off == c->len) {
                q->head = c->next;
                owfp_free(c);
            }
        }
        if (!q->head)
            q->tail = NULL;
        if (*err)
            return total;
    }
    return total;
}

void owfp_outq_clear(struct owfp_outq *q)
{
    while (q->head) {
        struct owfp_chunk *c = q->head;
        q->head = c->next;
        owfp_free(c);
    }
    q->tail = NULL;
    q->bytes = 0;
}
