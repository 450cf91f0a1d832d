/* The worker loop: epoll events, accepting, wake-ups from other threads,
 * timeouts, and the orderly stop. */
#include "proxy/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "proxy/log.h"

#define READ_BUFFER (256u * 1024)
#define MAX_EVENTS 256
#define ACCEPT_BATCH 64
#define TICK_MS 100
/* After accept fails for want of descriptors, try again this much later. */
#define ACCEPT_PAUSE_US 100000

uint64_t owfp_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t tag(void *p, unsigned t)
{
    return (uint64_t)(uintptr_t)p | t;
}

/* ---- lists ------------------------------------------------------------- */

static struct owfp_conn_list *list_of(struct owfp_worker *w, const struct owfp_conn *c)
{
    return &w->lists[c->state == CONN_CONNECTING ? 0 : 1];
}

void owfp_worker_link(struct owfp_worker *w, struct owfp_conn *c)
{
    struct owfp_conn_list *l = list_of(w, c);
    c->last_us = owfp_now_us();
    c->next = NULL;
    c->prev = l->newest;
    if (l->newest)
        l->newest->next = c;
    else
        l->oldest = c;
    l->newest = c;
}

void owfp_worker_unlink(struct owfp_worker *w, struct owfp_conn *c)
{
    struct owfp_conn_list *l = list_of(w, c);
    if (c->prev)
        c->prev->next = c->next;
    else if (l->oldest == c)
        l->oldest = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else if (l->newest == c)
        l->newest = c->prev;
    c->prev = c->next = NULL;
}

/* Moves an active connection to the young end of its list, at most once a
 * tick: timeouts are judged a tick at a time, and the list stays ordered by
 * last_us because last_us only changes with the move. */
void owfp_worker_touch(struct owfp_worker *w, struct owfp_conn *c)
{
    if (owfp_now_us() - c->last_us < TICK_MS * 1000u)
        return;
    owfp_worker_unlink(w, c);
    owfp_worker_link(w, c);
}

void owfp_worker_ready(struct owfp_worker *w, struct owfp_conn *c)
{
    if (c->on_ready || c->state == CONN_DEAD)
        return;
    c->on_ready = true;
    c->ready_next = NULL;
    if (w->ready_tail)
        w->ready_tail->ready_next = c;
    else
        w->ready = c;
    w->ready_tail = c;
}

void owfp_worker_starve(struct owfp_worker *w, struct owfp_conn *c)
{
    if (c->starved)
        return;
    if (w->nstarved == w->capstarved) {
        size_t cap = w->capstarved ? w->capstarved * 2 : 64;
        struct owfp_conn **n = owfp_realloc(w->starved, cap * sizeof(*n));
        if (!n)
            return; /* it is found again by its next event or the tick */
        w->starved = n;
        w->capstarved = cap;
    }
    c->starved = true;
    w->starved[w->nstarved++] = c;
}

int owfp_worker_watch(struct owfp_worker *w, struct owfp_conn *c, int leg)
{
    struct epoll_event ev = {
        /* EPOLLRDHUP and EPOLLPRI: see LEG_DRAIN. */
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET,
        .data.u64 = tag(c, leg == LEG_CLIENT ? TAG_CLIENT : TAG_SERVER),
    };
    return epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd[leg], &ev);
}

/* ---- wake-ups from other threads ------------------------------------- */

void owfp_worker_wake(void *arg, owfp_flow *flow)
{
    struct owfp_worker *w = arg;
    uint64_t id = owfp_flow_id(flow);
    pthread_mutex_lock(&w->wake_lock);
    bool first = w->nwoken == 0;
    if (w->nwoken == w->capwoken) {
        size_t cap = w->capwoken ? w->capwoken * 2 : 64;
        uint64_t *n = owfp_realloc(w->woken, cap * sizeof(*n));
        if (n) {
            w->woken = n;
            w->capwoken = cap;
        }
    }
    /* Out of memory: the flow is polled anyway at its next event. */
    if (w->nwoken < w->capwoken)
        w->woken[w->nwoken++] = id;
    pthread_mutex_unlock(&w->wake_lock);
    if (first)
        owfp_worker_kick(w);
}

void owfp_worker_kick(struct owfp_worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->wakefd, &one, sizeof(one));
    (void)r; /* a full counter still wakes the loop */
}

static bool match_flow(const void *value, const void *arg)
{
    return ((const struct owfp_conn *)value)->flow_id == *(const uint64_t *)arg;
}

static void run_wakeups(struct owfp_worker *w)
{
    uint64_t v;
    ssize_t r = read(w->wakefd, &v, sizeof(v));
    (void)r;
    for (;;) {
        uint64_t batch[64];
        size_t n;
        pthread_mutex_lock(&w->wake_lock);
        n = w->nwoken < 64 ? w->nwoken : 64;
        /* A kick (stop, grace over) also comes here with nothing queued,
         * and w->woken still NULL: no pointer arithmetic on it then. */
        if (n)
            memcpy(batch, w->woken + (w->nwoken - n), n * sizeof(*batch));
        w->nwoken -= n;
        pthread_mutex_unlock(&w->wake_lock);
        if (!n)
            return;
        for (size_t i = 0; i < n; i++) {
            /* The flow may have closed since: its id is then unknown. */
            struct owfp_conn *c = owfp_hmap_find(&w->flows, owfp_hash_u64(batch[i]), match_flow,
                                                 &batch[i]);
            if (c)
                owfp_conn_poll(c);
        }
    }
}

/* ---- accepting ------------------------------------------------------- */

static void listeners_enable(struct owfp_worker *w, bool on)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        struct epoll_event ev = {.events = on ? EPOLLIN : 0,
                                 .data.u64 = tag(&w->listeners[i], TAG_LISTENER)};
        (void)epoll_ctl(w->epfd, EPOLL_CTL_MOD, w->listeners[i].fd, &ev);
    }
}

static void reject(int fd)
{
    struct linger lg = {1, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* Out of descriptors or memory: stop accepting for a moment (the listen
 * queue holds the clients), then try again. */
static void pause_accepting(struct owfp_worker *w, int err)
{
    if (w->accept_resume_us == 0)
        owfp_log_msg(OWFP_LOG_WARN, "accept_paused", strerror(err));
    w->accept_resume_us = owfp_now_us() + ACCEPT_PAUSE_US;
    listeners_enable(w, false);
}

static void accept_some(struct owfp_worker *w, struct owfp_listener *l)
{
    for (int i = 0; i < ACCEPT_BATCH && w->accepting; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            OWFP_STAT_ADD(&w->stats, accept_errors, 1);
            pause_accepting(w, errno);
            return;
        }
        uint64_t max = w->opt->max_conns;
        if (atomic_fetch_add(&w->px->conns, 1) >= max && max) {
            atomic_fetch_sub(&w->px->conns, 1);
            OWFP_STAT_ADD(&w->stats, connections_rejected, 1);
            reject(fd);
            continue;
        }
        int err = owfp_conn_accept(w, l->route, fd, &peer);
        if (err) {
            pause_accepting(w, err); /* counted in accept_errors */
            return;
        }
    }
}

static void stop_accepting(struct owfp_worker *w)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i].fd >= 0)
            close(w->listeners[i].fd);
        w->listeners[i].fd = -1;
    }
    w->accepting = false;
}

/* ---- events ---------------------------------------------------------- */

static void upstream_ready(struct owfp_conn *c, uint32_t events)
{
    int err = 0;
    socklen_t len = sizeof(err);
    /* A failed connect shows EPOLLERR; with neither flag SO_ERROR is 0,
     * and asking would cost a call per connection. */
    if ((events & (EPOLLERR | EPOLLHUP)) &&
        getsockopt(c->fd[LEG_SERVER], SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == 0) {
        owfp_conn_connected(c);
        return;
    }
    OWFP_STAT_ADD(&c->w->stats, upstream_failures, 1);
    owfp_conn_reset(c, strerror(err));
}

static void leg_event(struct owfp_conn *c, int leg, uint32_t events)
{
    if (c->state == CONN_DEAD)
        return;
    /* Errors and hang-ups surface as the next read or write fails. */
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI))
        c->leg[leg] |= LEG_READABLE;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI))
        c->leg[leg] |= LEG_DRAIN;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        c->leg[leg] |= LEG_WRITABLE;
    if (c->state == CONN_CONNECTING) {
        if (leg == LEG_SERVER && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            upstream_ready(c, events);
        return;
    }
    owfp_conn_pump(c);
}

static void dispatch(struct owfp_worker *w, const struct epoll_event *ev)
{
    void *p = (void *)(uintptr_t)(ev->data.u64 & ~(uint64_t)7);
    switch (ev->data.u64 & 7) {
    case TAG_LISTENER: accept_some(w, p); break;
    case TAG_WAKE: run_wakeups(w); break;
    case TAG_CLIENT: leg_event(p, LEG_CLIENT, ev->events); break;
    case TAG_SERVER: leg_event(p, LEG_SERVER, ev->events); break;
    default: break;
    }
}

static void run_ready(struct owfp_worker *w)
{
    struct owfp_conn *c = w->ready;
    w->ready = w->ready_tail = NULL;
    while (c) {
        struct owfp_conn *next = c->ready_next;
        c->on_ready = false;
        if (c->state == CONN_RELAY)
            owfp_conn_pump(c);
        c = next;
    }
}

/* The budget freed up: connections that stopped for it read again. */
static void run_starved(struct owfp_worker *w)
{
    /* Twice the bytes against the whole budget: with a budget of 1, half
     * of it rounded down (0) would never be reached. */
    if (!w->nstarved || 2 * atomic_load_explicit(&w->buffered, memory_order_relaxed) >= w->budget)
        return;
    size_t n = w->nstarved;
    w->nstarved = 0;
    for (size_t i = 0; i < n; i++) {
        struct owfp_conn *c = w->starved[i];
        c->starved = false;
        if (c->state == CONN_RELAY)
            owfp_worker_ready(w, c);
    }
}

static void bury(struct owfp_worker *w)
{
    while (w->dead) {
        struct owfp_conn *c = w->dead;
        w->dead = c->dead_next;
        if (c->starved) {
            for (size_t i = 0; i < w->nstarved; i++)
                if (w->starved[i] == c)
                    w->starved[i] = w->starved[--w->nstarved];
        }
        owfp_free(c);
    }
}

static void expire(struct owfp_worker *w, uint64_t now)
{
    const struct owfp_proxy_options *o = w->opt;
    uint64_t ct = o->connect_timeout_ms * 1000, it = o->idle_timeout_ms * 1000;
    while (w->lists[0].oldest && now - w->lists[0].oldest->last_us >= ct) {
        OWFP_STAT_ADD(&w->stats, upstream_failures, 1);
        owfp_conn_reset(w->lists[0].oldest, "upstream connect timed out");
    }
    while (it && w->lists[1].oldest && now - w->lists[1].oldest->last_us >= it) {
        OWFP_STAT_ADD(&w->stats, idle_timeouts, 1);
        owfp_conn_reset(w->lists[1].oldest, "idle timeout");
    }
    if (w->accept_resume_us && now >= w->accept_resume_us && w->accepting) {
        w->accept_resume_us = 0;
        listeners_enable(w, true);
    }
}

static void reset_all(struct owfp_worker *w)
{
    for (int k = 0; k < 2; k++)
        while (w->lists[k].oldest)
            owfp_conn_reset(w->lists[k].oldest, "proxy stopping");
}

static void *loop(void *arg)
{
    struct owfp_worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    uint64_t last_tick = owfp_now_us();
    for (;;) {
        int timeout = w->ready ? 0 : TICK_MS;
        int n = epoll_wait(w->epfd, evs, MAX_EVENTS, timeout);
        for (int i = 0; i < n; i++)
            dispatch(w, &evs[i]);
        run_ready(w);
        run_starved(w);
        uint64_t now = owfp_now_us();
        if (now - last_tick >= TICK_MS * 1000u) {
            last_tick = now;
            expire(w, now);
        }
        if (atomic_load(&w->px->stopping) && w->accepting)
            stop_accepting(w);
        if (atomic_load(&w->px->closing))
            reset_all(w);
        bury(w);
        if (!w->accepting && w->nconns == 0 && atomic_load(&w->px->stopping))
            break;
    }
    return NULL;
}

/* ---- set-up ---------------------------------------------------------- */

int owfp_worker_listen(const struct owfp_proxy_route *r)
{
    const struct sockaddr *sa = (const struct sockaddr *)&r->listen.ss;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (r->transparent) {
        /* TPROXY hands us connections for addresses that are not ours. */
        if (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) != 0)
            goto fail;
        if (sa->sa_family == AF_INET6 &&
            setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)) != 0)
            goto fail;
    }
    owfp_conn_tune(fd);
    if (bind(fd, sa, r->listen.len) != 0 || listen(fd, 4096) != 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

int owfp_worker_init(struct owfp_worker *w, struct owfp_proxy *px)
{
    const struct owfp_proxy_options *o = px->opt;
    memset(w, 0, sizeof(*w));
    w->px = px;
    w->opt = o;
    w->epfd = w->wakefd = -1;
    pthread_mutex_init(&w->wake_lock, NULL);
    /* A share of 0 would starve every connection before its first read. */
    w->budget = o->max_buffered_total / px->nworkers ? o->max_buffered_total / px->nworkers : 1;
    w->buflen = READ_BUFFER;
    w->buf = owfp_malloc(w->buflen);
    w->listeners = owfp_calloc(o->nroutes, sizeof(*w->listeners));
    if (!w->buf || !w->listeners)
        return -1;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->epfd < 0 || w->wakefd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag(w, TAG_WAKE)};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev) != 0)
        return -1;
    for (size_t i = 0; i < o->nroutes; i++) {
        struct owfp_listener *l = &w->listeners[i];
        l->route = &o->routes[i];
        l->fd = owfp_worker_listen(l->route);
        w->nlisteners++;
        if (l->fd < 0)
            return -1;
        ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = tag(l, TAG_LISTENER)};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, l->fd, &ev) != 0)
            return -1;
    }
    w->accepting = true;
    return 0;
}

int owfp_worker_start(struct owfp_worker *w)
{
    return pthread_create(&w->thread, NULL, loop, w) == 0 ? 0 : -1;
}

void owfp_worker_destroy(struct owfp_worker *w)
{
    for (size_t i = 0; i < w->nlisteners; i++)
        if (w->listeners[i].fd >= 0)
            close(w->listeners[i].fd);
    for (size_t i = 0; i < w->nspare; i++) {
        close(w->spare_pipes[i].fd[0]);
        close(w->spare_pipes[i].fd[1]);
    }
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->wakefd >= 0)
        close(w->wakefd);
    owfp_hmap_free(&w->flows);
    owfp_free(w->listeners);
    owfp_free(w->buf);
    owfp_free(w->starved);
    owfp_free(w->woken);
    pthread_mutex_destroy(&w->wake_lock);
}
