#include "proxy/metrics.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "proxy/log.h"
#include "proxy/worker.h"

/* A scraper gets this long to send its request line. */
#define REQUEST_WAIT_MS 1000

struct owfp_metrics {
    int fd;
};

struct owfp_metrics *owfp_metrics_open(const struct owfp_endpoint *ep)
{
    struct owfp_metrics *m = owfp_calloc(1, sizeof(*m));
    int fd = socket(ep->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (!m || fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)&ep->ss, ep->len) != 0 || listen(fd, 16) != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "--metrics: %s", strerror(errno));
        owfp_log_msg(OWFP_LOG_ERROR, "start_failed", msg);
        if (fd >= 0)
            close(fd);
        owfp_free(m);
        return NULL;
    }
    m->fd = fd;
    return m;
}

int owfp_metrics_fd(const struct owfp_metrics *m)
{
    return m->fd;
}

/* Reads up to the end of the request head; returns its length or -1. */
static int read_request(int fd, char *buf, size_t n)
{
    size_t len = 0;
    while (len + 1 < n) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, REQUEST_WAIT_MS) <= 0)
            return -1;
        ssize_t r = recv(fd, buf + len, n - 1 - len, MSG_DONTWAIT);
        if (r <= 0)
            return r == 0 || (errno != EAGAIN && errno != EINTR) ? -1 : (int)len;
        len += (size_t)r;
        buf[len] = 0;
        if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
            return (int)len;
    }
    return (int)len;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        struct pollfd pf = {fd, POLLOUT, 0};
        if (poll(&pf, 1, REQUEST_WAIT_MS) <= 0)
            return;
        ssize_t r = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0 && errno != EAGAIN && errno != EINTR)
            return;
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        }
    }
}

static void answer(int fd, const struct owfp_proxy *px)
{
    char req[2048];
    if (read_request(fd, req, sizeof(req)) < 0)
        return;
    static char body[16384];
    char head[256];
    size_t blen;
    const char *status;
    if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET / ", 6) == 0) {
        struct owfp_proxy_totals t;
        owfp_proxy_totals(px, &t);
        blen = owfp_stats_prometheus(body, sizeof(body), &t);
        status = "200 OK";
    } else {
        blen = (size_t)snprintf(body, sizeof(body), "not found: GET /metrics\n");
        status = "404 Not Found";
    }
    int h = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, blen);
    send_all(fd, head, (size_t)h);
    send_all(fd, body, blen);
}

void owfp_metrics_serve(struct owfp_metrics *m, const struct owfp_proxy *px)
{
    for (;;) {
        int fd = accept4(m->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        answer(fd, px);
        close(fd);
    }
}

void owfp_metrics_close(struct owfp_metrics *m)
{
    if (!m)
        return;
    close(m->fd);
    owfp_free(m);
}
