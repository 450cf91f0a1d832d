/* One proxied connection: the client leg, the upstream leg and the flow
 * between them. Owned by one worker for its whole life. */
#ifndef OPENWFP_PROXY_CONN_H
#define OPENWFP_PROXY_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openwfp/openwfp.h>

#include "proxy/outq.h"

struct owfp_worker;
struct owfp_proxy_route;

enum { LEG_CLIENT = 0, LEG_SERVER = 1 };

/* What epoll said about a leg; cleared when a call returns EAGAIN, and
 * LEG_READABLE also by a read that returned less than it could have (the
 * edge-triggered epoll reports the next arrival). */
#define LEG_READABLE 0x1
#define LEG_WRITABLE 0x2
/* An event showed a hang-up, an error or urgent data: a short read is then
 * no proof of an empty socket (the FIN, the error or the bytes past the
 * urgent mark may still wait, and no new event would come for them), so
 * the leg is read until EAGAIN or EOF. Never cleared: a hang-up or an
 * error stays, and after urgent data it costs one read per message. */
#define LEG_DRAIN 0x4

enum owfp_conn_state {
    CONN_CONNECTING, /* the upstream connect is in progress */
    CONN_RELAY,      /* the flow is open */
    CONN_DEAD,       /* closed; freed after the current batch of events */
};

/* One direction: d[OWFP_STREAM_SEND] reads the client and writes the
 * server, d[OWFP_STREAM_RECEIVE] the other way. */
struct owfp_pdir {
    struct owfp_outq q;   /* for the destination leg, in order */
    uint64_t read, permitted, injected, offloaded;
    int pipe[2];          /* splice path, -1 until first used */
    uint32_t in_pipe;
    uint32_t pipe_slots;  /* the pipe's buffers (pages) */
    bool eof;             /* the source ended (FIN indicated) */
    bool fin_out;         /* the FIN is released: shut the destination after q */
    bool shut;            /* shutdown(destination, SHUT_WR) done */
    bool deferred;        /* a callout deferred: the source is not read */
    bool spliced;         /* this direction left the engine (offload) */
    bool copy_only;       /* offloaded without pipes: plain read/write */
};

struct owfp_conn {
    struct owfp_worker *w;
    const struct owfp_proxy_route *route;
    struct owfp_conn *prev, *next; /* the worker's activity list, oldest first */
    struct owfp_conn *ready_next;  /* the worker's list of connections to pump again */
    struct owfp_conn *dead_next;
    int fd[2];
    uint8_t leg[2];
    uint8_t state;
    bool on_ready, starved, offloaded;
    owfp_flow *flow;
    uint64_t flow_id;
    uint64_t last_us;
    struct owfp_pdir d[2];
    struct sockaddr_storage addr[2]; /* client, server (original destination) */
};

/* Latency over batching (the proxy writes what it has at once), and urgent
 * bytes stay in the stream instead of being lost to MSG_OOB. Set on the
 * listeners, whose accepted sockets inherit both, and on upstream sockets. */
void owfp_conn_tune(int fd);

/* conn.c: life of a connection. Returns 0, or the errno when the proxy
 * itself is out of descriptors or memory for the upstream socket (the
 * client was reset; the caller pauses accepting as for a failed accept). */
int owfp_conn_accept(struct owfp_worker *w, const struct owfp_proxy_route *route, int fd,
                     const struct sockaddr_storage *peer);
void owfp_conn_connected(struct owfp_conn *c);
/* Reset both legs (RST) and end the flow. `why` is logged. */
void owfp_conn_reset(struct owfp_conn *c, const char *why);
/* Both directions done: close both legs and end the flow. */
void owfp_conn_finish(struct owfp_conn *c);

/* relay.c: moving bytes. Runs until nothing more can be done now. */
void owfp_conn_pump(struct owfp_conn *c);
/* Work queued by another thread (injection, continue) is ready. */
void owfp_conn_poll(struct owfp_conn *c);
/* Copies bytes the destination of `dir` could not take to its queue; false
 * when that ended the connection (--max-buffered, out of memory). */
bool owfp_conn_enqueue(struct owfp_conn *c, int dir, const uint8_t *data, size_t len);
/* The engine's answer to one call, applied to the sockets. */
void owfp_conn_apply(struct owfp_conn *c, owfp_status st, const struct owfp_stream_result *res);

/* offload.c: the splice path of an offloaded direction. Returns whether it
 * made progress. */
bool owfp_offload_pump(struct owfp_conn *c, int dir);
void owfp_offload_release(struct owfp_conn *c);

/* After a read of `got` bytes where `max` could have come: a short read
 * on an edge-triggered leg means the socket is empty for now. */
static inline void owfp_leg_read(struct owfp_conn *c, int leg, size_t got, size_t max)
{
    if (got < max && !(c->leg[leg] & LEG_DRAIN))
        c->leg[leg] &= (uint8_t)~LEG_READABLE;
}

static inline int src_leg(int dir)
{
    return dir == OWFP_STREAM_SEND ? LEG_CLIENT : LEG_SERVER;
}

static inline int dst_leg(int dir)
{
    return dir == OWFP_STREAM_SEND ? LEG_SERVER : LEG_CLIENT;
}

#endif
