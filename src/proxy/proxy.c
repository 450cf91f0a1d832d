/* The proxy's control thread: starts the workers, turns signals into
 * statistics and an orderly stop, and serves the metrics endpoint. */
#include "proxy/proxy.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/alloc.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/worker.h"

static unsigned worker_count(const struct owfp_proxy_options *o)
{
    if (o->workers)
        return o->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 1024 ? (unsigned)n : 1;
}

/* Two descriptors per connection, more for splicing: take what the hard
 * limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

void owfp_proxy_totals(const struct owfp_proxy *px, struct owfp_proxy_totals *t)
{
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < px->nworkers; i++) {
        owfp_stats_sum(t, &px->workers[i].stats);
        t->buffered_bytes += atomic_load_explicit(&px->workers[i].buffered, memory_order_relaxed);
    }
    t->connections_open = t->connections_accepted - t->connections_closed;
}

static void print_stats(const struct owfp_proxy *px)
{
    struct owfp_proxy_totals t;
    owfp_proxy_totals(px, &t);
    owfp_stats_log(&t);
}

static void log_listening(const struct owfp_proxy_options *o, unsigned workers)
{
    for (size_t i = 0; i < o->nroutes; i++) {
        char a[OWFP_ENDPOINT_TEXT], b[OWFP_ENDPOINT_TEXT];
        const struct owfp_proxy_route *r = &o->routes[i];
        owfp_endpoint_text((const struct sockaddr *)&r->listen.ss, a, sizeof(a));
        struct owfp_log_line l;
        owfp_log_begin(&l, OWFP_LOG_INFO, "listening");
        owfp_log_str(&l, "listen", a);
        if (r->transparent) {
            owfp_log_str(&l, "mode", "tproxy");
        } else {
            owfp_endpoint_text((const struct sockaddr *)&r->upstream.ss, b, sizeof(b));
            owfp_log_str(&l, "mode", "explicit");
            owfp_log_str(&l, "upstream", b);
        }
        owfp_log_u64(&l, "workers", workers);
        owfp_log_end(&l);
    }
}

/* *ninit: how many workers need owfp_worker_destroy, failed one included. */
static int start(struct owfp_proxy *px, unsigned *ninit)
{
    for (unsigned i = 0; i < px->nworkers; i++) {
        *ninit = i + 1;
        if (owfp_worker_init(&px->workers[i], px) != 0) {
            char msg[160];
            snprintf(msg, sizeof(msg), "cannot set up worker %u: %s", i, strerror(errno));
            owfp_log_msg(OWFP_LOG_ERROR, "start_failed", msg);
            return -1;
        }
    }
    return 0;
}

static void kick_all(struct owfp_proxy *px)
{
    for (unsigned i = 0; i < px->nworkers; i++)
        owfp_worker_kick(&px->workers[i]);
}

/* The stop request: no more accepting, then --grace for what is open. */
static uint64_t begin_stop(struct owfp_proxy *px, const char *why)
{
    owfp_log_msg(OWFP_LOG_INFO, "stopping", why);
    atomic_store(&px->stopping, true);
    kick_all(px);
    return owfp_now_us() + px->opt->grace_ms * 1000;
}

/* Serves signals and metrics until SIGTERM or SIGINT, then until every
 * worker has finished its connections; past the grace period the rest are
 * reset. Workers are joined as they end. */
static void control(struct owfp_proxy *px, int sfd, struct owfp_metrics *m)
{
    uint64_t deadline = 0; /* set once stopping */
    unsigned joined = 0;
    bool done[px->nworkers];
    memset(done, 0, sizeof(done));
    while (joined < px->nworkers) {
        struct pollfd p[2] = {{sfd, POLLIN, 0}, {m ? owfp_metrics_fd(m) : -1, POLLIN, 0}};
        /* While stopping, look at the workers every 50 ms. */
        if (poll(p, 2, deadline ? 50 : -1) < 0) {
            if (errno != EINTR && !deadline)
                deadline = begin_stop(px, strerror(errno));
            continue;
        }
        if (p[1].revents & POLLIN)
            owfp_metrics_serve(m, px);
        struct signalfd_siginfo si;
        if ((p[0].revents & POLLIN) && read(sfd, &si, sizeof(si)) == sizeof(si)) {
            if (si.ssi_signo == SIGUSR1)
                print_stats(px);
            else if (!deadline)
                deadline = begin_stop(px, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
        }
        if (!deadline)
            continue;
        for (unsigned i = 0; i < px->nworkers; i++)
            if (!done[i] && pthread_tryjoin_np(px->workers[i].thread, NULL) == 0) {
                done[i] = true;
                joined++;
            }
        if (joined < px->nworkers && owfp_now_us() >= deadline && !atomic_load(&px->closing)) {
            owfp_log_msg(OWFP_LOG_WARN, "grace_over", "resetting the remaining connections");
            atomic_store(&px->closing, true);
            kick_all(px);
        }
    }
}

int owfp_proxy_run(const struct owfp_proxy_options *opt)
{
    struct owfp_proxy px = {.opt = opt, .nworkers = worker_count(opt), .pid = (uint64_t)getpid()};
    raise_fd_limit();
    /* A peer that went away must not kill the process on the next write or
     * splice; every call checks its error instead. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    /* Workers inherit the mask: signals reach only the signalfd. */
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    px.workers = owfp_calloc(px.nworkers, sizeof(*px.workers));
    struct owfp_metrics *m = NULL;
    int status = 2;
    unsigned ninit = 0;
    if (sfd < 0 || !px.workers) {
        owfp_log_msg(OWFP_LOG_ERROR, "start_failed", strerror(errno));
        goto out;
    }
    if (start(&px, &ninit) != 0)
        goto out;
    if (opt->metrics && !(m = owfp_metrics_open(opt->metrics)))
        goto out;
    unsigned started = 0;
    for (; started < px.nworkers; started++)
        if (owfp_worker_start(&px.workers[started]) != 0)
            break;
    if (started < px.nworkers) {
        owfp_log_msg(OWFP_LOG_ERROR, "start_failed", "cannot start worker threads");
        atomic_store(&px.stopping, true);
        atomic_store(&px.closing, true);
        kick_all(&px);
        for (unsigned i = 0; i < started; i++)
            pthread_join(px.workers[i].thread, NULL);
        goto out;
    }
    log_listening(opt, px.nworkers);
    control(&px, sfd, m);
    print_stats(&px);
    status = 0;
out:
    owfp_metrics_close(m);
    for (unsigned i = 0; i < ninit; i++)
        owfp_worker_destroy(&px.workers[i]);
    owfp_free(px.workers);
    if (sfd >= 0)
        close(sfd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return status;
}
