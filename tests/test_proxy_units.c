/* The proxy's small parts on their own: addresses as options spell them,
 * the output queue that holds what a socket could not take yet, and the
 * options accepted sockets inherit from the proxy's listener. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/endpoint.h"
#include "proxy/outq.h"
#include "proxy/worker.h"

static void test_endpoint_parse_forms(void **state)
{
    (void)state;
    struct owfp_endpoint ep;
    char text[OWFP_ENDPOINT_TEXT];
    const char *good[] = {"127.0.0.1:8080", "0.0.0.0:1", "[::1]:443", "[::]:65535",
                          "[fd00::2]:80"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        assert_int_equal(owfp_endpoint_parse(good[i], &ep), 0);
        owfp_endpoint_text((const struct sockaddr *)&ep.ss, text, sizeof(text));
        assert_string_equal(text, good[i]);
    }
    const char *bad[] = {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                         "::1:80", "[::1]80", "[::1]:", "[127.0.0.1]:80", "host:80",
                         "1.2.3.4:80x", ":80", "[::1:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_int_equal(owfp_endpoint_parse(bad[i], &ep), -1);
}

static void test_endpoint_bytes_unmap_v4_mapped(void **state)
{
    (void)state;
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
    const uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff, [12] = 10, [13] = 1, [14] = 2, [15] = 3};
    memcpy(&v6.sin6_addr, mapped, 16);
    uint8_t a[16];
    uint16_t port;
    assert_int_equal(owfp_endpoint_bytes((struct sockaddr *)&v6, a, &port), 4);
    assert_int_equal(port, 443);
    const uint8_t want[16] = {10, 1, 2, 3};
    assert_memory_equal(a, want, 16);
    char text[OWFP_ENDPOINT_TEXT];
    owfp_endpoint_text((struct sockaddr *)&v6, text, sizeof(text));
    assert_string_equal(text, "10.1.2.3:443");
}

/* A socket pair whose sending side fills quickly. */
static void small_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    int sz = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

static size_t drain(int fd, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, out + n, cap - n);
        if (r <= 0)
            return n;
        n += (size_t)r;
    }
}

static void test_outq_keeps_order_across_short_writes(void **state)
{
    (void)state;
    int sv[2];
    small_pair(sv);
    static uint8_t in[300000], out[300000];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 7 + i / 251);
    struct owfp_outq q = {0};
    /* Pieces of odd sizes: some share a chunk, some need their own. */
    size_t off = 0, sizes[] = {1, 100, 70000, 3, 20000, 209896};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
        assert_true(owfp_outq_push(&q, in + off, sizes[i]));
        off += sizes[i];
    }
    assert_int_equal(off, sizeof(in));
    assert_int_equal(q.bytes, sizeof(in));
    size_t got = 0;
    int rounds = 0, err;
    while (q.bytes) {
        size_t before = q.bytes;
        size_t n = owfp_outq_flush(&q, sv[0], &err);
        assert_int_equal(before - q.bytes, n);
        /* The socket is far smaller than the queue: it fills. */
        if (q.bytes)
            assert_int_equal(err, EAGAIN);
        got += drain(sv[1], out + got, sizeof(out) - got);
        assert_true(++rounds < 100000);
    }
    assert_int_equal(err, 0);
    got += drain(sv[1], out + got, sizeof(out) - got);
    assert_true(rounds > 1);
    assert_int_equal(got, sizeof(in));
    assert_memory_equal(out, in, sizeof(in));
    assert_null(q.head);
    close(sv[0]);
    close(sv[1]);
}

static void test_outq_reports_a_dead_peer(void **state)
{
    (void)state;
    int sv[2];
    small_pair(sv);
    struct owfp_outq q = {0};
    assert_true(owfp_outq_push(&q, "hello", 5));
    close(sv[1]);
    int err;
    /* No SIGPIPE (MSG_NOSIGNAL): the error comes back instead. */
    size_t n = owfp_outq_flush(&q, sv[0], &err);
    assert_int_equal(n, 0);
    assert_int_equal(err, EPIPE);
    assert_int_equal(q.bytes, 5);
    owfp_outq_clear(&q);
    assert_int_equal(q.bytes, 0);
    assert_null(q.head);
    assert_null(q.tail);
    close(sv[0]);
}

static void test_send_iov_moves_past_partial_spans(void **state)
{
    (void)state;
    int sv[2];
    small_pair(sv);
    static uint8_t a[50000], b[50000], out[100000];
    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    struct iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
    int err;
    size_t done = owfp_send_iov(sv[0], iov, 2, &err);
    assert_int_equal(err, EAGAIN);
    assert_true(done > 0 && done < sizeof(a) + sizeof(b));
    size_t got = drain(sv[1], out, sizeof(out));
    assert_int_equal(got, done);
    for (size_t i = 0; i < got; i++)
        assert_int_equal(out[i], i < sizeof(a) ? 'a' : 'b');
    close(sv[0]);
    close(sv[1]);
}

static int get_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* The proxy sets TCP_NODELAY and SO_OOBINLINE on its listeners only and
 * counts on Linux copying them to every accepted socket. */
static void test_listener_options_reach_accepted_sockets(void **state)
{
    (void)state;
    const char *addrs[] = {"127.0.0.1:0", "[::1]:0"};
    for (size_t i = 0; i < sizeof(addrs) / sizeof(*addrs); i++) {
        struct owfp_proxy_route r = {0};
        assert_int_equal(owfp_endpoint_parse(addrs[i], &r.listen), 0);
        int l = owfp_worker_listen(&r);
        if (l < 0 && i == 1 && (errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT))
            continue; /* no IPv6 loopback here */
        assert_true(l >= 0);
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        assert_int_equal(getsockname(l, (struct sockaddr *)&ss, &len), 0);
        int c = socket(ss.ss_family, SOCK_STREAM, 0);
        assert_true(c >= 0);
        assert_int_equal(connect(c, (struct sockaddr *)&ss, len), 0);
        int a = -1;
        for (int tries = 0; tries < 1000 && a < 0; tries++) {
            a = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (a < 0)
                usleep(1000); /* the listener is non-blocking */
        }
        assert_true(a >= 0);
        assert_int_not_equal(get_int(a, IPPROTO_TCP, TCP_NODELAY), 0);
        assert_int_not_equal(get_int(a, SOL_SOCKET, SO_OOBINLINE), 0);
        close(a);
        close(c);
        close(l);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_parse_forms),
        cmocka_unit_test(test_endpoint_bytes_unmap_v4_mapped),
        cmocka_unit_test(test_outq_keeps_order_across_short_writes),
        cmocka_unit_test(test_outq_reports_a_dead_peer),
        cmocka_unit_test(test_send_iov_moves_past_partial_spans),
        cmocka_unit_test(test_listener_options_reach_accepted_sockets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
