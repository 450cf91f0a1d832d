/* A worker thread: one epoll loop, its own SO_REUSEPORT listeners, the
 * connections it accepted, and the wake-up queue other threads use to hand
 * it engine work for its flows. */
#ifndef OPENWFP_PROXY_WORKER_H
#define OPENWFP_PROXY_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hashmap.h"
#include "proxy/conn.h"
#include "proxy/proxy.h"
#include "proxy/stats.h"

/* Empty pipes a worker keeps for the next offloaded flow. */
#define OWFP_SPARE_PIPES 64

/* Tags in the low bits of epoll_data.u64 (every tagged object is 8-aligned). */
enum { TAG_LISTENER = 0, TAG_WAKE = 1, TAG_CLIENT = 2, TAG_SERVER = 3 };

struct owfp_listener {
    const struct owfp_proxy_route *route;
    int fd;
};

/* An empty pipe and how many buffers (pages) the kernel gave it. */
struct owfp_spare_pipe {
    int fd[2];
    uint32_t slots;
};

struct owfp_proxy;

struct owfp_worker {
    struct owfp_proxy *px;
    const struct owfp_proxy_options *opt;
    pthread_t thread;
    int epfd, wakefd;
    struct owfp_listener *listeners;
    size_t nlisteners;
    bool accepting;
    uint64_t accept_resume_us; /* after EMFILE: accept again at this time */

    uint8_t *buf; /* one read at a time goes through here */
    size_t buflen;

    struct owfp_hmap flows; /* flow id -> connection, for wake-ups */
    /* Activity lists, oldest first: connecting (connect timeout) and
     * relaying (idle timeout). */
    struct owfp_conn_list {
        struct owfp_conn *oldest, *newest;
    } lists[2];
    struct owfp_conn *ready, *ready_tail;
    struct owfp_conn *dead;
    struct owfp_conn **starved; /* waiting for the buffer budget */
    size_t nstarved, capstarved;
    uint64_t nconns;
    _Atomic uint64_t buffered;  /* bytes in this worker's output queues (one writer) */
    uint64_t budget;            /* its share of --max-buffered-total */

    struct owfp_spare_pipe spare_pipes[OWFP_SPARE_PIPES]; /* for the next offload */
    size_t nspare;

    pthread_mutex_t wake_lock;  /* guards the three fields below */
    uint64_t *woken;
    size_t nwoken, capwoken;

    struct owfp_proxy_stats stats;
};

/* Shared by all workers. */
struct owfp_proxy {
    const struct owfp_proxy_options *opt;
    struct owfp_worker *workers;
    unsigned nworkers;
    _Atomic bool stopping;      /* SIGTERM: stop accepting */
    _Atomic bool closing;       /* grace over: reset what is left */
    _Atomic uint64_t conns;     /* live connections, for --max-connections */
    uint64_t pid;               /* each flow's process id, asked for once */
};

/* Every worker's counters summed. Any thread. */
void owfp_proxy_totals(const struct owfp_proxy *px, struct owfp_proxy_totals *t);

/* A non-blocking SO_REUSEPORT listener for the route, tuned as
 * owfp_conn_tune says; -1 and errno on failure. */
int owfp_worker_listen(const struct owfp_proxy_route *r);
int owfp_worker_init(struct owfp_worker *w, struct owfp_proxy *px);
void owfp_worker_destroy(struct owfp_worker *w);
int owfp_worker_start(struct owfp_worker *w);
/* Wakes the loop (stop, grace over). Any thread. */
void owfp_worker_kick(struct owfp_worker *w);

uint64_t owfp_now_us(void);

/* For conn.c and relay.c. */
void owfp_worker_ready(struct owfp_worker *w, struct owfp_conn *c);
void owfp_worker_touch(struct owfp_worker *w, struct owfp_conn *c);
void owfp_worker_link(struct owfp_worker *w, struct owfp_conn *c);
void owfp_worker_unlink(struct owfp_worker *w, struct owfp_conn *c);
void owfp_worker_starve(struct owfp_worker *w, struct owfp_conn *c);
int owfp_worker_watch(struct owfp_worker *w, struct owfp_conn *c, int leg);
/* The worker's thread is the only writer of `buffered`; others read it. */
static inline void owfp_worker_buffered_add(struct owfp_worker *w, int64_t n)
{
    atomic_store_explicit(&w->buffered,
                          atomic_load_explicit(&w->buffered, memory_order_relaxed) + (uint64_t)n,
                          memory_order_relaxed);
}

/* The engine's wake-up function for flows of this worker. */
void owfp_worker_wake(void *arg, owfp_flow *flow);

#endif
