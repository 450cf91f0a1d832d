/* A minimal TCP relay, the reference for bench/proxy.sh: the issue's
 * "minimal read/write relay" and "minimal splice relay" anchors.
 *
 *   relay_ref --listen PORT --upstream PORT [--mode copy|splice]
 *             [--buf BYTES] [--pipe BYTES]
 *
 * One thread, one level-triggered epoll loop, 127.0.0.1 only. Each client
 * connection gets a blocking connect(2) to the upstream (loopback connects
 * at once), then two directions, each either a user-space buffer (copy:
 * read(2) into it, write(2) out of it) or a pipe (splice: socket -> pipe
 * -> socket, no byte enters user space). A direction is read only when its
 * buffer or pipe is empty; EOF becomes shutdown(SHUT_WR) on the other side
 * once everything before it is out; an error closes both sockets. Both
 * sockets get TCP_NODELAY, as in `openwfp proxy`.
 *
 * --buf: copy buffer, and the most one splice(2) asks for (default 64 KiB).
 * --pipe: F_SETPIPE_SZ for each pipe (default: the kernel's, 64 KiB).
 * SIGTERM/SIGINT end it; it prints the bytes moved and the read-side call
 * count to stderr. Nothing here is production code: no timeouts, no limits.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn;
struct end {
    struct conn *c;
    int leg; /* 0: client, 1: upstream */
};
struct dir {
    char *buf; /* copy mode */
    int pipe[2];
    size_t off, len; /* copy: bytes waiting in buf; splice: len = bytes in the pipe */
    bool eof, shut;
};
struct conn {
    int fd[2];
    struct end end[2];
    struct dir d[2]; /* d[0]: client -> upstream, d[1]: upstream -> client */
    unsigned ev[2];  /* events each fd is registered for */
};

static int epfd;
static bool splice_mode;
static size_t bufsize = 65536, pipesize;
static volatile sig_atomic_t stop;
static unsigned long long moved, reads;

static void on_signal(int s)
{
    (void)s;
    stop = 1;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void set_int(int fd, int level, int name, int v)
{
    (void)setsockopt(fd, level, name, &v, sizeof(v));
}

static void drop(struct conn *c)
{
    for (int i = 0; i < 2; i++) {
        close(c->fd[i]);
        free(c->d[i].buf);
        if (c->d[i].pipe[0] >= 0) {
            close(c->d[i].pipe[0]);
            close(c->d[i].pipe[1]);
        }
    }
    free(c);
}

/* Direction k reads fd[k] and writes fd[1 - k]. */
static void update(struct conn *c)
{
    unsigned want[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        struct dir *d = &c->d[k];
        if (d->len)
            want[1 - k] |= EPOLLOUT;
        else if (!d->eof)
            want[k] |= EPOLLIN;
    }
    for (int i = 0; i < 2; i++) {
        if (want[i] == c->ev[i])
            continue;
        struct epoll_event ev = {.events = want[i], .data.ptr = &c->end[i]};
        if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd[i], &ev) != 0)
            die("epoll_ctl");
        c->ev[i] = want[i];
    }
}

/* Writes what direction k holds. Returns -1 on a socket error. */
static int flush(struct conn *c, int k)
{
    struct dir *d = &c->d[k];
    int dst = c->fd[1 - k];
    while (d->len) {
        ssize_t n = splice_mode
                        ? splice(d->pipe[0], NULL, dst, NULL, d->len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                        : write(dst, d->buf + d->off, d->len);
        if (n < 0)
            return errno == EAGAIN ? 0 : errno == EINTR ? 0 : -1;
        d->off += (size_t)n;
        d->len -= (size_t)n;
        moved += (unsigned long long)n;
    }
    d->off = 0;
    if (d->eof && !d->shut) {
        d->shut = true;
        (void)shutdown(dst, SHUT_WR);
    }
    return 0;
}

static int fill(struct conn *c, int k)
{
    struct dir *d = &c->d[k];
    int src = c->fd[k];
    ssize_t n = splice_mode
                    ? splice(src, NULL, d->pipe[1], NULL, bufsize, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                    : read(src, d->buf, bufsize);
    reads++;
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n == 0)
        d->eof = true;
    d->len = (size_t)n;
    return flush(c, k);
}

static void accept_one(int lfd, const struct sockaddr_in *up)
{
    int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    int ufd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ufd < 0 || connect(ufd, (const struct sockaddr *)up, sizeof(*up)) != 0) {
        close(cfd);
        if (ufd >= 0)
            close(ufd);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        die("calloc");
    c->fd[0] = cfd;
    c->fd[1] = ufd;
    for (int i = 0; i < 2; i++) {
        fcntl(c->fd[i], F_SETFL, O_NONBLOCK);
        set_int(c->fd[i], IPPROTO_TCP, TCP_NODELAY, 1);
        c->end[i] = (struct end){c, i};
        c->d[i].pipe[0] = c->d[i].pipe[1] = -1;
        if (splice_mode) {
            if (pipe2(c->d[i].pipe, O_NONBLOCK | O_CLOEXEC) != 0)
                die("pipe2");
            if (pipesize)
                (void)fcntl(c->d[i].pipe[1], F_SETPIPE_SZ, (int)pipesize);
        } else if (!(c->d[i].buf = malloc(bufsize))) {
            die("malloc");
        }
        c->ev[i] = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->end[i]};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd[i], &ev) != 0)
            die("epoll_ctl");
    }
}

static void usage(void)
{
    fputs("usage: relay_ref --listen PORT --upstream PORT [--mode copy|splice] [--buf BYTES]"
          " [--pipe BYTES]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    int lport = 0, uport = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--listen"))
            lport = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--upstream"))
            uport = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mode"))
            splice_mode = !strcmp(argv[++i], "splice");
        else if (!strcmp(argv[i], "--buf"))
            bufsize = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--pipe"))
            pipesize = strtoull(argv[++i], NULL, 0);
        else
            usage();
    }
    if (!lport || !uport || !bufsize)
        usage();
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lport),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in ua = la;
    ua.sin_port = htons((uint16_t)uport);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    set_int(lfd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (bind(lfd, (struct sockaddr *)&la, sizeof(la)) != 0 || listen(lfd, 4096) != 0)
        die("bind/listen");
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1");
    static struct end listener; /* its address tags the listening socket */
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listener};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) != 0)
        die("epoll_ctl");

    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(epfd, evs, 256, 500);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct end *e = evs[i].data.ptr;
            if (e == &listener) {
                accept_one(lfd, &ua);
                continue;
            }
            if (!e)
                continue; /* its connection was dropped earlier in this batch */
            struct conn *c = e->c;
            int leg = e->leg, err = 0;
            /* This fd is the source of direction `leg` and the destination
             * of direction 1 - leg. */
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                err |= flush(c, 1 - leg);
            if (!err && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !c->d[leg].len &&
                !c->d[leg].eof)
                err |= fill(c, leg);
            if (err || (c->d[0].shut && c->d[1].shut)) {
                /* Later events of this batch may name c: take them out. */
                for (int j = i + 1; j < n; j++) {
                    struct end *o = evs[j].data.ptr;
                    if (o && o != &listener && o->c == c)
                        evs[j].data.ptr = NULL;
                }
                drop(c);
                continue;
            }
            update(c);
        }
    }
    fprintf(stderr, "relay_ref: moved=%llu reads=%llu\n", moved, reads);
    return 0;
}
