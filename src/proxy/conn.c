/* The life of a proxied connection: accept, the upstream connect, the flow
 * at ALE_FLOW_ESTABLISHED, and the two ways out (finish and reset). */
#include "proxy/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "proxy/log.h"
#include "proxy/worker.h"

#define FWP_CONDITION_FLAG_IS_LOOPBACK 0x00000001u

static void set_int(int fd, int level, int name, int v)
{
    /* Best effort: a socket that refuses an option still relays. */
    (void)setsockopt(fd, level, name, &v, sizeof(v));
}

void owfp_conn_tune(int fd)
{
    set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    set_int(fd, SOL_SOCKET, SO_OOBINLINE, 1);
}

static void log_conn(const struct owfp_conn *c, enum owfp_log_level level, const char *event,
                     const char *why)
{
    if (!owfp_log_enabled(level))
        return;
    char a[OWFP_ENDPOINT_TEXT], b[OWFP_ENDPOINT_TEXT];
    owfp_endpoint_text((const struct sockaddr *)&c->addr[LEG_CLIENT], a, sizeof(a));
    owfp_endpoint_text((const struct sockaddr *)&c->addr[LEG_SERVER], b, sizeof(b));
    struct owfp_log_line l;
    owfp_log_begin(&l, level, event);
    owfp_log_str(&l, "client", a);
    owfp_log_str(&l, "server", b);
    if (c->flow_id)
        owfp_log_u64(&l, "flow", c->flow_id);
    if (why)
        owfp_log_str(&l, "reason", why);
    static const char *const names[2] = {"send", "receive"};
    for (int d = 0; d < 2; d++) {
        char k[32];
        snprintf(k, sizeof(k), "%s_read", names[d]);
        owfp_log_u64(&l, k, c->d[d].read);
        snprintf(k, sizeof(k), "%s_permitted", names[d]);
        owfp_log_u64(&l, k, c->d[d].permitted);
        snprintf(k, sizeof(k), "%s_injected", names[d]);
        owfp_log_u64(&l, k, c->d[d].injected);
        snprintf(k, sizeof(k), "%s_offloaded", names[d]);
        owfp_log_u64(&l, k, c->d[d].offloaded);
    }
    if (c->offloaded)
        owfp_log_str(&l, "offload", c->d[0].copy_only || c->d[1].copy_only ? "copy" : "splice");
    owfp_log_end(&l);
}

static void reset_fd(int fd)
{
    struct linger lg = {1, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* Ends everything but the sockets: the flow (flowDeleteFn runs here), the
 * queues, the lists. The connection is freed after the current batch of
 * events, which may still name it. */
static void retire(struct owfp_conn *c, bool reset)
{
    struct owfp_worker *w = c->w;
    for (int leg = 0; leg < 2; leg++) {
        if (c->fd[leg] < 0)
            continue;
        if (reset)
            reset_fd(c->fd[leg]);
        else
            close(c->fd[leg]);
        c->fd[leg] = -1;
    }
    if (c->flow) {
        owfp_hmap_remove(&w->flows, owfp_hash_u64(c->flow_id), c);
        owfp_flow_close(c->flow);
        c->flow = NULL;
    }
    for (int d = 0; d < 2; d++) {
        struct owfp_pdir *pd = &c->d[d];
        owfp_worker_buffered_add(w, -(int64_t)pd->q.bytes);
        owfp_outq_clear(&pd->q);
        /* Whatever was read and neither passed on nor offloaded went nowhere. */
        uint64_t out = pd->permitted + pd->offloaded;
        uint64_t in = pd->read;
        if (d == OWFP_STREAM_SEND)
            OWFP_STAT_ADD(&w->stats, bytes_blocked_send, in > out ? in - out : 0);
        else
            OWFP_STAT_ADD(&w->stats, bytes_blocked_receive, in > out ? in - out : 0);
    }
    owfp_offload_release(c);
    owfp_worker_unlink(w, c);
    OWFP_STAT_ADD(&w->stats, connections_closed, 1);
    atomic_fetch_sub(&w->px->conns, 1);
    w->nconns--;
    c->state = CONN_DEAD;
    c->dead_next = w->dead;
    w->dead = c;
}

void owfp_conn_reset(struct owfp_conn *c, const char *why)
{
    if (c->state == CONN_DEAD)
        return;
    log_conn(c, OWFP_LOG_DEBUG, "reset", why);
    retire(c, true);
}

void owfp_conn_finish(struct owfp_conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    log_conn(c, OWFP_LOG_DEBUG, "close", NULL);
    retire(c, false);
}

/* ---- opening ------------------------------------------------------------- */

static bool same_endpoint(const struct sockaddr_storage *a, const struct owfp_endpoint *b)
{
    uint8_t x[16], y[16];
    uint16_t px, py;
    uint8_t vx = owfp_endpoint_bytes((const struct sockaddr *)a, x, &px);
    uint8_t vy = owfp_endpoint_bytes((const struct sockaddr *)&b->ss, y, &py);
    static const uint8_t any[16];
    return vx == vy && px == py && (memcmp(x, y, 16) == 0 || memcmp(y, any, 16) == 0);
}

/* Where the connection goes: the fixed upstream, or in transparent mode the
 * address the client asked for, which TPROXY left as the socket's own. */
static int destination(struct owfp_conn *c, int fd)
{
    if (!c->route->transparent) {
        memcpy(&c->addr[LEG_SERVER], &c->route->upstream.ss, c->route->upstream.len);
        return 0;
    }
    socklen_t len = sizeof(c->addr[LEG_SERVER]);
    if (getsockname(fd, (struct sockaddr *)&c->addr[LEG_SERVER], &len) != 0)
        return -1;
    /* Connecting to ourselves would loop until the descriptors run out. */
    return same_endpoint(&c->addr[LEG_SERVER], &c->route->listen) ? -1 : 0;
}

static socklen_t addr_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static int spoof(int fd, const struct sockaddr_storage *client)
{
    int one = 1;
    int r = client->ss_family == AF_INET
                ? setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one))
                : setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));
    if (r != 0)
        return -1;
    struct sockaddr_storage src = *client;
    /* The client's address, a port of the kernel's choosing. */
    if (src.ss_family == AF_INET)
        ((struct sockaddr_in *)&src)->sin_port = 0;
    else
        ((struct sockaddr_in6 *)&src)->sin6_port = 0;
    set_int(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1);
    return bind(fd, (const struct sockaddr *)&src, addr_len(&src));
}

static int connect_upstream(struct owfp_conn *c)
{
    const struct sockaddr_storage *to = &c->addr[LEG_SERVER];
    int fd = socket(to->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -1;
    c->fd[LEG_SERVER] = fd;
    owfp_conn_tune(fd);
    if (c->route->transparent && c->w->opt->spoof_source &&
        c->addr[LEG_CLIENT].ss_family == to->ss_family && spoof(fd, &c->addr[LEG_CLIENT]) != 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)to, addr_len(to)) != 0 && errno != EINPROGRESS)
        return -1;
    return 0;
}

int owfp_conn_accept(struct owfp_worker *w, const struct owfp_proxy_route *route, int fd,
                     const struct sockaddr_storage *peer)
{
    struct owfp_conn *c = owfp_calloc(1, sizeof(*c));
    if (!c) {
        reset_fd(fd);
        atomic_fetch_sub(&w->px->conns, 1); /* taken by the caller for this one */
        OWFP_STAT_ADD(&w->stats, accept_errors, 1);
        return ENOMEM;
    }
    c->w = w;
    c->route = route;
    c->fd[LEG_CLIENT] = fd;
    c->fd[LEG_SERVER] = -1;
    c->d[0].pipe[0] = c->d[0].pipe[1] = c->d[1].pipe[0] = c->d[1].pipe[1] = -1;
    c->addr[LEG_CLIENT] = *peer;
    c->state = CONN_CONNECTING;
    w->nconns++;
    OWFP_STAT_ADD(&w->stats, connections_accepted, 1);
    owfp_worker_link(w, c);
    if (destination(c, fd) != 0) {
        OWFP_STAT_ADD(&w->stats, upstream_failures, 1);
        owfp_conn_reset(c, "no usable original destination");
        return 0;
    }
    if (connect_upstream(c) != 0) {
        int e = errno;
        /* No socket for the upstream: the proxy's own shortage, not the
         * upstream's failure. Accepting more would only reset every client
         * waiting in the listen queue, one after the other. */
        bool local = c->fd[LEG_SERVER] < 0 &&
                     (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM);
        if (local)
            OWFP_STAT_ADD(&w->stats, accept_errors, 1);
        else
            OWFP_STAT_ADD(&w->stats, upstream_failures, 1);
        owfp_conn_reset(c, strerror(e));
        return local ? e : 0;
    }
    if (owfp_worker_watch(w, c, LEG_CLIENT) != 0 || owfp_worker_watch(w, c, LEG_SERVER) != 0)
        owfp_conn_reset(c, "epoll");
    return 0;
}

static void flow_params(const struct owfp_conn *c, struct owfp_flow_params *fp)
{
    uint8_t la[16], ra[16];
    memset(fp, 0, sizeof(*fp));
    uint8_t lv = owfp_endpoint_bytes((const struct sockaddr *)&c->addr[LEG_CLIENT], la, &fp->local_port);
    uint8_t rv = owfp_endpoint_bytes((const struct sockaddr *)&c->addr[LEG_SERVER], ra, &fp->remote_port);
    /* One version for both ends: mixed families are shown as IPv6 with the
     * IPv4 end v4-mapped. */
    fp->ip_version = lv == rv ? lv : 6;
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    const uint8_t *src[2] = {la, ra};
    uint8_t *dst[2] = {fp->local_addr, fp->remote_addr};
    uint8_t ver[2] = {lv, rv};
    for (int i = 0; i < 2; i++) {
        if (fp->ip_version == 6 && ver[i] == 4) {
            memcpy(dst[i], mapped, 12);
            memcpy(dst[i] + 12, src[i], 4);
        } else {
            memcpy(dst[i], src[i], 16);
        }
    }
    fp->protocol = IPPROTO_TCP;
    fp->direction = OWFP_OUTBOUND; /* the client, our local side, connected */
    bool loop = fp->ip_version == 4 ? fp->remote_addr[0] == 127
                                    : (memcmp(fp->remote_addr, (uint8_t[16]){[15] = 1}, 16) == 0);
    if (loop)
        fp->condition_flags |= FWP_CONDITION_FLAG_IS_LOOPBACK;
    fp->process_id = c->w->px->pid;
    fp->interface_index = 1;
    fp->interface_type = 6; /* IF_TYPE_ETHERNET_CSMACD */
    fp->compartment_id = 1;
}

/* Both legs are up: the flow starts (ALE_FLOW_ESTABLISHED). */
void owfp_conn_connected(struct owfp_conn *c)
{
    struct owfp_worker *w = c->w;
    struct owfp_flow_params fp;
    flow_params(c, &fp);
    enum owfp_flow_verdict v = OWFP_FLOW_PERMITTED;
    owfp_status st = owfp_flow_open(owfp_engine_current(), &fp, &c->flow, &v);
    if (st < 0) {
        c->flow = NULL;
        OWFP_STAT_ADD(&w->stats, engine_errors, 1);
        owfp_conn_reset(c, "flow open failed");
        return;
    }
    c->flow_id = owfp_flow_id(c->flow);
    owfp_worker_unlink(w, c); /* from the connecting list */
    c->state = CONN_RELAY;
    owfp_worker_link(w, c);
    if (!owfp_hmap_insert(&w->flows, owfp_hash_u64(c->flow_id), c)) {
        owfp_flow_close(c->flow);
        c->flow = NULL;
        OWFP_STAT_ADD(&w->stats, engine_errors, 1);
        owfp_conn_reset(c, "out of memory");
        return;
    }
    if (v == OWFP_FLOW_BLOCKED) {
        OWFP_STAT_ADD(&w->stats, ale_blocked, 1);
        owfp_conn_reset(c, "blocked at ALE_FLOW_ESTABLISHED");
        return;
    }
    st = owfp_flow_set_wakeup(c->flow, owfp_worker_wake, w);
    log_conn(c, OWFP_LOG_DEBUG, "open", NULL);
    /* Learns at once whether any stream callout wants this flow. */
    struct owfp_stream_result res = {0};
    if (st >= 0)
        st = owfp_stream_poll(c->flow, &res);
    owfp_conn_apply(c, st, &res);
    owfp_conn_pump(c);
}
