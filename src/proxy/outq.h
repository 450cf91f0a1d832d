/* Bytes for a socket that could not take them yet. The relay writes spans
 * straight from its read buffer; only what a short write leaves over is
 * copied here, and the source is not read again until this drains. */
#ifndef OPENWFP_PROXY_OUTQ_H
#define OPENWFP_PROXY_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

struct owfp_chunk;

struct owfp_outq {
    struct owfp_chunk *head, *tail;
    size_t bytes;
};

/* Copies `len` bytes in. False when out of memory (nothing was queued). */
bool owfp_outq_push(struct owfp_outq *q, const void *data, size_t len);

/* Writes as much as `fd` takes. Returns the bytes written; *err is 0, or
 * EAGAIN when the socket is full, or the errno of a failed write. */
size_t owfp_outq_flush(struct owfp_outq *q, int fd, int *err);

void owfp_outq_clear(struct owfp_outq *q);

/* Writes `iov` with MSG_NOSIGNAL until done or the socket is full. Returns
 * the bytes written and sets *err as owfp_outq_flush does. */
size_t owfp_send_iov(int fd, struct iovec *iov, int niov, int *err);

#endif
