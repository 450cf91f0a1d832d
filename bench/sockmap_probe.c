/* sockmap_probe: does a sockmap / sk_skb redirect relay forward TCP byte-exactly
 * and with bounded memory on this kernel? Evidence for docs/proxy.md and
 * docs/BENCHMARKS.md section 8, not production code.
 *
 *   sockmap_probe [--scenario all|1|2|3|4|5|6] [--attach verdict|parser|skb]
 *                 [--maps 1|2] [--trials N] [--seed S] [--bulk-mib M]
 *                 [--tput-mib M] [--reps R] [--cap-mib C]
 *
 * Root only, 127.0.0.1 only, no libbpf: two hand-assembled BPF_PROG_TYPE_SK_SKB
 * programs are loaded with the raw bpf(2) system call.
 *
 *   verdict: key = (skb->local_port == relay listening port) ? 1 : 0;
 *            return bpf_sk_redirect_map(skb, peers, key, 0);   (egress)
 *   parser:  return skb->len;   (only for --attach parser)
 *
 * Every trial builds: a client socket, a relay that accepts it (leg 0, the
 * "client leg") and connects to a server (leg 1, the "upstream leg"), and a
 * fresh set of maps and programs. With --maps 2 (default) the verdict program
 * is attached to map V and redirects through a second map P that has no
 * programs: both legs join P first, then V, so no byte can be redirected to
 * a leg that has not joined yet. --maps 1 uses one map for both (the gap
 * between the two joins is scenario 5d).
 *
 * Each stream is a 1,048,573-byte random pattern read from a per-stream
 * offset; receivers compare every byte (memcmp) and the byte count, and
 * require EOF. A trial passes only if every byte arrived, in order, then EOF.
 *
 * Relay EOF protocols (what the relay does on EPOLLRDHUP of leg i before
 * shutdown(SHUT_WR) of the other leg j):
 *   naive:  nothing.
 *   outq:   wait until SIOCOUTQ(j) == 0.
 *   unlink: delete both legs from the maps.
 *   count:  wait until every byte received on leg i is in leg j's send
 *           stream: TCP_INFO bytes_acked(j) + SIOCOUTQ(j) == bytes_received(i)
 *           (less the FIN, relative to values read at setup).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PLEN 1048573u /* pattern period: prime, so block shifts show */
#define MIB (1024u * 1024u)

static unsigned char *pat; /* 2 * PLEN bytes: any window of PLEN is contiguous */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static int fin_adj; /* does tcpi_bytes_received count the FIN? (calibrated) */
static uint16_t relay_port, server_port;
static int relay_lfd, server_lfd;

/* options */
static int opt_attach; /* 0 verdict, 1 parser, 2 skb */
static int opt_maps = 2;
static int opt_zero_drop = 1;
static int opt_trials = 1000;
static unsigned opt_bulk_mib = 256, opt_tput_mib = 1024, opt_reps = 5, opt_cap_mib = 1024;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void die(const char *what)
{
    fprintf(stderr, "sockmap_probe: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* ---------- bpf(2) ---------- */

static int sys_bpf(int cmd, union bpf_attr *a)
{
    return (int)syscall(__NR_bpf, cmd, a, sizeof *a);
}

static int map_create(void)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_type = BPF_MAP_TYPE_SOCKMAP;
    a.key_size = 4;
    a.value_size = 4;
    a.max_entries = 2;
    return sys_bpf(BPF_MAP_CREATE, &a);
}

static int map_set(int map, uint32_t key, int fd)
{
    union bpf_attr a;
    uint32_t v = (uint32_t)fd;
    memset(&a, 0, sizeof a);
    a.map_fd = (uint32_t)map;
    a.key = (uint64_t)(uintptr_t)&key;
    a.value = (uint64_t)(uintptr_t)&v;
    a.flags = BPF_ANY;
    return sys_bpf(BPF_MAP_UPDATE_ELEM, &a);
}

static int map_del(int map, uint32_t key)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_fd = (uint32_t)map;
    a.key = (uint64_t)(uintptr_t)&key;
    return sys_bpf(BPF_MAP_DELETE_ELEM, &a);
}

#define INSN(c, d, s, o, i)                                                   \
    ((struct bpf_insn){.code = (uint8_t)(c), .dst_reg = (d), .src_reg = (s), \
                       .off = (int16_t)(o), .imm = (int32_t)(i)})

static char bpf_log[65536];

static int prog_load(const struct bpf_insn *insns, unsigned n)
{
    static const char license[] = "GPL";
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_SK_SKB;
    a.insns = (uint64_t)(uintptr_t)insns;
    a.insn_cnt = n;
    a.license = (uint64_t)(uintptr_t)license;
    a.log_buf = (uint64_t)(uintptr_t)bpf_log;
    a.log_size = sizeof bpf_log;
    a.log_level = 1;
    bpf_log[0] = 0;
    int fd = sys_bpf(BPF_PROG_LOAD, &a);
    if (fd < 0)
        fprintf(stderr, "BPF_PROG_LOAD: %s\n%s\n", strerror(errno), bpf_log);
    return fd;
}

static int prog_attach(int prog, int map, enum bpf_attach_type type)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.target_fd = (uint32_t)map;
    a.attach_bpf_fd = (uint32_t)prog;
    a.attach_type = type;
    return sys_bpf(BPF_PROG_ATTACH, &a);
}

static int prog_detach(int prog, int map, enum bpf_attach_type type)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.target_fd = (uint32_t)map;
    a.attach_bpf_fd = (uint32_t)prog;
    a.attach_type = type;
    return sys_bpf(BPF_PROG_DETACH, &a);
}

struct bpfset {
    int vmap, pmap, parser, verdict;
    enum bpf_attach_type vtype;
};

static int bpfset_open(struct bpfset *b, int maps, int attach)
{
    b->vmap = b->pmap = b->parser = b->verdict = -1;
    b->vtype = attach == 2 ? BPF_SK_SKB_VERDICT : BPF_SK_SKB_STREAM_VERDICT;
    b->vmap = map_create();
    if (b->vmap < 0)
        return -1;
    b->pmap = maps == 2 ? map_create() : b->vmap;
    if (b->pmap < 0)
        return -1;
    const struct bpf_insn verdict[] = {
        /* a zero-length skb (a bare FIN) is dropped, not redirected: sent on,
         * it makes the peer's psock report EPIPE and stop transmitting */
        INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 1, offsetof(struct __sk_buff, len), 0),
        opt_zero_drop ? INSN(BPF_JMP | BPF_JNE | BPF_K, 2, 0, 2, 0) : INSN(BPF_JMP | BPF_JA, 0, 0, 2, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, SK_DROP),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
        INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 1, offsetof(struct __sk_buff, local_port), 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, 0),
        INSN(BPF_JMP | BPF_JNE | BPF_K, 2, 0, 1, relay_port),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, 1),
        INSN(BPF_LD | BPF_DW | BPF_IMM, 2, BPF_PSEUDO_MAP_FD, 0, b->pmap),
        INSN(0, 0, 0, 0, 0),
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, 4, 0, 0, 0),
        INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_redirect_map),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    const struct bpf_insn parser[] = {
        INSN(BPF_LDX | BPF_MEM | BPF_W, 0, 1, offsetof(struct __sk_buff, len), 0),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    b->verdict = prog_load(verdict, sizeof verdict / sizeof verdict[0]);
    if (b->verdict < 0)
        return -1;
    if (attach == 1) {
        b->parser = prog_load(parser, sizeof parser / sizeof parser[0]);
        if (b->parser < 0 || prog_attach(b->parser, b->vmap, BPF_SK_SKB_STREAM_PARSER) < 0)
            return -1;
    }
    if (prog_attach(b->verdict, b->vmap, b->vtype) < 0)
        return -1;
    return 0;
}

static void bpfset_close(struct bpfset *b)
{
    if (b->verdict >= 0) {
        prog_detach(b->verdict, b->vmap, b->vtype);
        close(b->verdict);
    }
    if (b->parser >= 0) {
        prog_detach(b->parser, b->vmap, BPF_SK_SKB_STREAM_PARSER);
        close(b->parser);
    }
    if (b->pmap >= 0 && b->pmap != b->vmap)
        close(b->pmap);
    if (b->vmap >= 0)
        close(b->vmap);
    b->vmap = b->pmap = b->parser = b->verdict = -1;
}

/* ---------- sockets ---------- */

static int listen_lo(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sl) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
        die("bind/listen");
    *port = ntohs(sa.sin_port);
    return fd;
}

static int connect_lo(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("connect");
    return fd;
}

static void set_timeouts(int fd, int sec)
{
    struct timeval tv = {sec, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int outq(int fd)
{
    int v = -1;
    if (ioctl(fd, SIOCOUTQ, &v) < 0)
        return -1;
    return v;
}

static int inq(int fd)
{
    int v = -1;
    if (ioctl(fd, SIOCINQ, &v) < 0)
        return -1;
    return v;
}

static int so_error(int fd)
{
    int e = 0;
    socklen_t l = sizeof e;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
    return e;
}

static bool tinfo(int fd, struct tcp_info *ti)
{
    socklen_t l = sizeof *ti;
    memset(ti, 0, sizeof *ti);
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &l) == 0 &&
           l >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti->tcpi_bytes_received;
}

static uint64_t bytes_received(int fd)
{
    struct tcp_info ti;
    return tinfo(fd, &ti) ? ti.tcpi_bytes_received : 0;
}

/* bytes in this socket's send stream so far: acknowledged + queued */
static uint64_t bytes_out(int fd)
{
    /* TCP_INFO first, then SIOCOUTQ: an ACK between the two makes the sum
     * too small (the caller polls again), never too large */
    struct tcp_info ti;
    bool ok = tinfo(fd, &ti);
    int q = outq(fd);
    return ok && q >= 0 ? ti.tcpi_bytes_acked + (uint64_t)q : 0;
}

static long sockstat_tcp_mem_pages(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    char line[256];
    long mem = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, " mem ");
        if (strncmp(line, "TCP:", 4) == 0 && p)
            mem = strtol(p + 5, NULL, 10);
    }
    fclose(f);
    return mem;
}

/* busy jiffies of all CPUs (user nice system irq softirq steal excluded) */
static long long proc_stat_busy(void)
{
    FILE *f = fopen("/proc/stat", "r");
    long long u = 0, n = 0, s = 0, idle = 0, iow = 0, irq = 0, sirq = 0;
    if (!f)
        return -1;
    int k = fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld", &u, &n, &s, &idle, &iow, &irq, &sirq);
    fclose(f);
    return k == 7 ? u + n + s + irq + sirq : -1;
}

/* ---------- endpoints ---------- */

static const unsigned char *pat_at(uint64_t pos)
{
    return pat + pos % PLEN;
}

struct tx {
    int fd;
    uint64_t start, n;
    bool shut;
    uint64_t hold_at;          /* with hold: after this many bytes wait for *hold */
    atomic_int *hold;
    long pace_us;              /* after hold_at: sleep between chunks */
    size_t chunk;
    uint64_t sent;
    int err;
};

static void *tx_main(void *arg)
{
    struct tx *t = arg;
    size_t chunk = t->chunk ? t->chunk : 256 * 1024;
    while (t->sent < t->n) {
        if (t->hold && t->sent >= t->hold_at) {
            double t0 = now_s();
            while (!atomic_load(t->hold) && now_s() - t0 < 10)
                sleep_us(200);
        }
        uint64_t k = t->n - t->sent;
        if (k > chunk)
            k = chunk;
        if (t->hold && t->sent < t->hold_at && k > t->hold_at - t->sent)
            k = t->hold_at - t->sent;
        ssize_t w = send(t->fd, pat_at(t->start + t->sent), (size_t)k, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            t->err = errno;
            break;
        }
        t->sent += (uint64_t)w;
        if (t->pace_us && t->sent > t->hold_at)
            sleep_us(t->pace_us);
    }
    if (t->shut && !t->err)
        shutdown(t->fd, SHUT_WR);
    return NULL;
}

struct rx {
    int fd;
    uint64_t start, expect;
    atomic_uint_fast64_t got;
    int64_t bad; /* first offset that differs, -1 if none */
    bool eof;
    int err;
    atomic_int eof_flag;
};

static void rx_init(struct rx *r, int fd, uint64_t start, uint64_t expect)
{
    r->fd = fd;
    r->start = start;
    r->expect = expect;
    atomic_init(&r->got, 0);
    r->bad = -1;
    r->eof = false;
    r->err = 0;
    atomic_init(&r->eof_flag, 0);
}

static void *rx_main(void *arg)
{
    struct rx *r = arg;
    size_t cap = 512 * 1024;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        r->err = ENOMEM;
        return NULL;
    }
    for (;;) {
        ssize_t n = recv(r->fd, buf, cap, 0);
        if (n == 0) {
            r->eof = true;
            atomic_store(&r->eof_flag, 1);
            break;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r->err = errno;
            break;
        }
        uint64_t got = atomic_load(&r->got);
        if (r->bad < 0) {
            size_t off = 0;
            while (off < (size_t)n) {
                size_t k = (size_t)n - off;
                if (k > PLEN)
                    k = PLEN;
                const unsigned char *e = pat_at(r->start + got + off);
                if (memcmp(buf + off, e, k) != 0) {
                    size_t i = 0;
                    while (buf[off + i] == e[i])
                        i++;
                    r->bad = (int64_t)(got + off + i);
                    break;
                }
                off += k;
            }
        }
        atomic_store(&r->got, got + (uint64_t)n);
    }
    free(buf);
    return NULL;
}

static bool rx_ok(const struct rx *r)
{
    return !r->err && r->eof && r->bad < 0 && atomic_load(&r->got) == r->expect;
}

/* ---------- relay ---------- */

enum kind { K_SOCKMAP, K_SPLICE, K_DIRECT };
enum eofp { E_NAIVE, E_OUTQ, E_UNLINK, E_COUNT };
static const char *const eof_name[] = {"naive", "outq", "unlink", "count"};
static const char *const attach_name[] = {"verdict", "parser", "skb"};

struct relay {
    enum kind kind;
    enum eofp eof;
    int leg[2]; /* 0: client leg (accepted), 1: upstream leg (connected) */
    struct bpfset b;
    uint64_t rcv_base[2], out_base[2];
    uint64_t user_in[2], user_out[2]; /* bytes the relay copied itself (pre-join) */
    bool joined;
    atomic_int stop;
    double timeout_s;
    /* results */
    int err;
    char why[160];
    double cpu_s;
    unsigned wakeups;
    double max_drain_ms;
    uint64_t spliced;
    /* back-pressure by watching: pause leg i (leave the verdict map) while
     * more than watch_hi bytes from it wait inside the kernel, resume below
     * watch_lo */
    uint64_t watch_hi, watch_lo;
    int64_t max_held;
    unsigned pauses;
};

/* a connected client, a relay with both legs, and the server's socket */
struct conn {
    int c, s;
    struct relay r;
};

static int accept_one(int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        die("accept");
    return fd;
}

static void conn_open(struct conn *x, enum kind kind, enum eofp eof)
{
    memset(x, 0, sizeof *x);
    x->r.kind = kind;
    x->r.eof = eof;
    x->r.leg[0] = x->r.leg[1] = -1;
    x->r.b.vmap = x->r.b.pmap = x->r.b.parser = x->r.b.verdict = -1;
    x->r.timeout_s = 30;
    atomic_init(&x->r.stop, 0);
    if (kind == K_DIRECT) {
        x->c = connect_lo(server_port);
        x->s = accept_one(server_lfd);
    } else {
        x->c = connect_lo(relay_port);
        x->r.leg[0] = accept_one(relay_lfd);
        x->r.leg[1] = connect_lo(server_port);
        x->s = accept_one(server_lfd);
        for (int i = 0; i < 2; i++) {
            nodelay(x->r.leg[i]);
            x->r.rcv_base[i] = bytes_received(x->r.leg[i]);
            x->r.out_base[i] = bytes_out(x->r.leg[i]);
        }
    }
    nodelay(x->c);
    nodelay(x->s);
    set_timeouts(x->c, 10);
    set_timeouts(x->s, 10);
}

static void conn_close(struct conn *x)
{
    close(x->c);
    close(x->s);
    for (int i = 0; i < 2; i++)
        if (x->r.leg[i] >= 0)
            close(x->r.leg[i]);
    bpfset_close(&x->r.b);
}

static int fail(struct relay *r, const char *what)
{
    if (!r->err) {
        r->err = errno ? errno : EIO;
        snprintf(r->why, sizeof r->why, "%s: %s", what, strerror(r->err));
    }
    return -1;
}

/* both legs into the peer map, then into the verdict map; optionally kick */
static int relay_join(struct relay *r, bool kick)
{
    if (bpfset_open(&r->b, opt_maps, opt_attach) < 0)
        return fail(r, "bpf setup");
    if (r->b.pmap != r->b.vmap)
        for (uint32_t i = 0; i < 2; i++)
            if (map_set(r->b.pmap, i, r->leg[i]) < 0)
                return fail(r, "peer map update");
    for (uint32_t i = 0; i < 2; i++)
        if (map_set(r->b.vmap, i, r->leg[i]) < 0)
            return fail(r, "verdict map update");
    r->joined = true;
    if (kick) {
        /* tcp_set_rcvlowat() calls tcp_data_ready(): the verdict program
         * runs over bytes that were queued before the socket joined */
        int one = 1;
        for (int i = 0; i < 2; i++)
            setsockopt(r->leg[i], SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    }
    return 0;
}

static uint64_t stream_in(struct relay *r, int i, bool eof)
{
    return bytes_received(r->leg[i]) - r->rcv_base[i] - (eof ? (uint64_t)fin_adj : 0);
}

/* leg i reached EOF: pass it on to the other leg */
static int eof_forward(struct relay *r, int i)
{
    int j = 1 - i;
    double t0 = now_s();
    switch (r->eof) {
    case E_NAIVE:
        break;
    case E_OUTQ:
        while (outq(r->leg[j]) > 0 && now_s() - t0 < 10)
            sleep_us(50);
        break;
    case E_UNLINK:
        for (uint32_t k = 0; k < 2; k++) {
            map_del(r->b.vmap, k);
            if (r->b.pmap != r->b.vmap)
                map_del(r->b.pmap, k);
        }
        break;
    case E_COUNT: {
        uint64_t want = stream_in(r, i, true) - r->user_in[i] + r->user_out[j];
        for (;;) {
            uint64_t have = bytes_out(r->leg[j]) - r->out_base[j];
            if (have == want)
                break;
            if (have > want) {
                errno = EPROTO;
                return fail(r, "count: egress ahead of ingress");
            }
            if (now_s() - t0 > 10) {
                errno = ETIMEDOUT;
                snprintf(r->why, sizeof r->why, "count: %" PRIu64 " of %" PRIu64 " bytes drained",
                         have, want);
                r->err = ETIMEDOUT;
                return -1;
            }
            sleep_us(50);
        }
        break;
    }
    }
    double ms = (now_s() - t0) * 1e3;
    if (ms > r->max_drain_ms)
        r->max_drain_ms = ms;
    if (shutdown(r->leg[j], SHUT_WR) < 0)
        return fail(r, "shutdown");
    return 0;
}

/* bytes received on leg i that are not yet in the other leg's send stream */
static int64_t held(struct relay *r, int i)
{
    uint64_t in = stream_in(r, i, false) - r->user_in[i] + r->user_out[1 - i];
    return (int64_t)(in - (bytes_out(r->leg[1 - i]) - r->out_base[1 - i]));
}

static void watch(struct relay *r, const bool *done, bool *paused)
{
    for (int i = 0; i < 2; i++) {
        if (done[i])
            continue;
        int64_t h = held(r, i);
        if (h > r->max_held)
            r->max_held = h;
        if (!paused[i] && h > (int64_t)r->watch_hi) {
            if (map_del(r->b.vmap, (uint32_t)i) == 0) {
                paused[i] = true;
                r->pauses++;
            }
        } else if (paused[i] && h < (int64_t)r->watch_lo) {
            if (map_set(r->b.vmap, (uint32_t)i, r->leg[i]) == 0) {
                int one = 1;
                paused[i] = false;
                setsockopt(r->leg[i], SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
            }
        }
    }
}

/* One wait of a relay loop: -1 on failure (recorded) or after the
 * relay's time limit, 0 when nothing happened, else the events. */
static int relay_poll(struct relay *r, struct pollfd p[2], int timeout_ms, double t0)
{
    int n = poll(p, 2, timeout_ms);
    if (n < 0 && errno != EINTR)
        return fail(r, "poll");
    if (now_s() - t0 > r->timeout_s) {
        errno = ETIMEDOUT;
        return fail(r, "relay");
    }
    if (n <= 0)
        return 0;
    r->wakeups++;
    return n;
}

static void sockmap_loop(struct relay *r)
{
    bool done[2] = {false, false}, paused[2] = {false, false};
    double t0 = now_s();
    while (!(done[0] && done[1]) && !atomic_load(&r->stop)) {
        if (r->watch_hi)
            watch(r, done, paused);
        struct pollfd p[2];
        for (int i = 0; i < 2; i++) {
            p[i].fd = done[i] ? -1 : r->leg[i];
            p[i].events = POLLRDHUP;
            p[i].revents = 0;
        }
        int n = relay_poll(r, p, r->watch_hi ? 2 : 100, t0);
        if (n < 0)
            return;
        if (n == 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (p[i].revents & POLLERR) {
                errno = so_error(r->leg[i]);
                fail(r, i ? "upstream leg error" : "client leg error");
                return;
            }
            if (p[i].revents & (POLLRDHUP | POLLHUP)) {
                done[i] = true;
                if (eof_forward(r, i) < 0)
                    return;
            }
        }
    }
}

static void splice_loop(struct relay *r)
{
    int pipes[2][2];
    size_t inpipe[2] = {0, 0};
    bool eof[2] = {false, false}, shut[2] = {false, false};
    for (int d = 0; d < 2; d++) {
        if (pipe2(pipes[d], O_CLOEXEC | O_NONBLOCK) < 0) {
            fail(r, "pipe");
            return;
        }
        fcntl(pipes[d][1], F_SETPIPE_SZ, (int)MIB);
    }
    double t0 = now_s();
    while (!(shut[0] && shut[1]) && !atomic_load(&r->stop)) {
        struct pollfd p[2];
        for (int i = 0; i < 2; i++) {
            p[i].fd = r->leg[i];
            p[i].events = 0;
            p[i].revents = 0;
        }
        for (int d = 0; d < 2; d++) { /* direction d: leg d -> leg 1-d */
            if (!eof[d] && inpipe[d] == 0)
                p[d].events |= POLLIN;
            if (inpipe[d] > 0)
                p[1 - d].events |= POLLOUT;
        }
        int n = relay_poll(r, p, 100, t0);
        if (n < 0)
            break;
        if (n == 0)
            continue;
        for (int d = 0; d < 2; d++) {
            if (!eof[d] && inpipe[d] == 0 && (p[d].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t k = splice(r->leg[d], NULL, pipes[d][1], NULL, MIB,
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (k > 0)
                    inpipe[d] += (size_t)k;
                else if (k == 0)
                    eof[d] = true;
                else if (errno != EAGAIN) {
                    fail(r, "splice in");
                    goto out;
                }
            }
            if (inpipe[d] > 0) {
                ssize_t k = splice(pipes[d][0], NULL, r->leg[1 - d], NULL, inpipe[d],
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (k > 0) {
                    inpipe[d] -= (size_t)k;
                    r->spliced += (uint64_t)k;
                } else if (k < 0 && errno != EAGAIN) {
                    fail(r, "splice out");
                    goto out;
                }
            }
            if (eof[d] && inpipe[d] == 0 && !shut[d]) {
                shutdown(r->leg[1 - d], SHUT_WR);
                shut[d] = true;
            }
        }
    }
out:
    for (int d = 0; d < 2; d++) {
        close(pipes[d][0]);
        close(pipes[d][1]);
    }
}

static int opt_debug;

static void ss_dump(const char *when)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "echo '--- %s'; ss -tnieom state all '( sport = :%u or dport = :%u )'", when,
             (unsigned)server_port, (unsigned)relay_port);
    if (system(cmd) != 0)
        fprintf(stderr, "ss failed\n");
}

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    double c0 = thread_cpu_s();
    if (r->kind == K_SOCKMAP) {
        if (!r->joined && relay_join(r, true) < 0)
            goto out;
        sockmap_loop(r);
    } else if (r->kind == K_SPLICE) {
        splice_loop(r);
    }
out:
    if (r->err && r->kind == K_SOCKMAP) {
        /* what any relay does on an error: both legs go */
        if (opt_debug)
            ss_dump(r->why);
        shutdown(r->leg[0], SHUT_RDWR);
        shutdown(r->leg[1], SHUT_RDWR);
    }
    r->cpu_s = thread_cpu_s() - c0;
    return NULL;
}

static void start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    if (pthread_create(t, NULL, fn, arg) != 0) {
        errno = EAGAIN;
        die("pthread_create");
    }
}

static void join(pthread_t t)
{
    pthread_join(t, NULL);
}

/* ---------- scenarios ---------- */

static const char *kind_name(enum kind k)
{
    return k == K_SOCKMAP ? "sockmap" : k == K_SPLICE ? "splice" : "direct";
}

/* one transfer: c2s bytes client->server and s2c server->client, both ends
 * shut down after sending; the relay joins before any byte is sent. */
struct xfer_result {
    bool ok;
    uint64_t c2s_got, s2c_got;
    int64_t c2s_bad, s2c_bad;
    double wall_s, relay_cpu_s;
    long long busy_jiffies;
    unsigned wakeups;
    double max_drain_ms;
    char why[512];
};

static struct xfer_result xfer(enum kind kind, enum eofp eof, uint64_t c2s, uint64_t s2c,
                               bool half_close)
{
    struct xfer_result res;
    memset(&res, 0, sizeof res);
    struct conn x;
    conn_open(&x, kind, eof);
    if (kind == K_SOCKMAP && relay_join(&x.r, false) < 0) {
        snprintf(res.why, sizeof res.why, "%s", x.r.why);
        conn_close(&x);
        return res;
    }
    struct tx ct = {.fd = x.c, .start = rnd() % PLEN, .n = c2s, .shut = true};
    struct tx st = {.fd = x.s, .start = rnd() % PLEN, .n = s2c, .shut = true};
    struct rx sr, cr;
    rx_init(&sr, x.s, ct.start, c2s);
    rx_init(&cr, x.c, st.start, s2c);
    if (half_close) {
        /* the server sends half, waits until it has seen the client's EOF,
         * then sends the rest in paced chunks */
        st.hold_at = s2c / 2;
        st.hold = &sr.eof_flag;
        st.chunk = 64 * 1024;
        st.pace_us = 500;
    }
    pthread_t th[5];
    long long b0 = proc_stat_busy();
    double t0 = now_s();
    if (kind != K_DIRECT)
        start(&th[4], relay_main, &x.r);
    start(&th[0], rx_main, &sr);
    start(&th[1], rx_main, &cr);
    start(&th[2], tx_main, &ct);
    start(&th[3], tx_main, &st);
    for (int i = 0; i < 4; i++)
        join(th[i]);
    res.wall_s = now_s() - t0;
    if (kind != K_DIRECT) {
        atomic_store(&x.r.stop, 1);
        join(th[4]);
    }
    res.busy_jiffies = proc_stat_busy() - b0;
    res.c2s_got = atomic_load(&sr.got);
    res.s2c_got = atomic_load(&cr.got);
    res.c2s_bad = sr.bad;
    res.s2c_bad = cr.bad;
    res.relay_cpu_s = x.r.cpu_s;
    res.wakeups = x.r.wakeups;
    res.max_drain_ms = x.r.max_drain_ms;
    res.ok = rx_ok(&sr) && rx_ok(&cr) && !ct.err && !st.err && !x.r.err;
    if (!res.ok && opt_debug)
        ss_dump("failed trial");
    if (!res.ok)
        snprintf(res.why, sizeof res.why,
                 "c2s %" PRIu64 "/%" PRIu64 " bad@%" PRId64 " eof=%d err=%d; s2c %" PRIu64 "/%" PRIu64
                 " bad@%" PRId64 " eof=%d err=%d; tx err %d/%d; relay: %s",
                 res.c2s_got, c2s, sr.bad, sr.eof, sr.err, res.s2c_got, s2c, cr.bad, cr.eof, cr.err,
                 ct.err, st.err, x.r.err ? x.r.why : "ok");
    conn_close(&x);
    return res;
}

static int failures;

static void verdict(const char *name, bool pass, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verdict(const char *name, bool pass, const char *fmt, ...)
{
    va_list ap;
    printf("%s %s: ", pass ? "PASS" : "FAIL", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!pass)
        failures++;
}

static void scenario1(void)
{
    uint64_t n = (uint64_t)opt_bulk_mib * MIB;
    struct xfer_result r = xfer(K_SOCKMAP, E_COUNT, n, n, false);
    verdict("1 bulk", r.ok,
            "%u MiB each way at once through sockmap (attach %s, %d map(s)): c2s %" PRIu64
            " bytes, s2c %" PRIu64 " bytes, byte-compared; %.2f s wall, relay thread %.3f s CPU, "
            "%u relay wake-ups%s%s",
            opt_bulk_mib, attach_name[opt_attach], opt_maps, r.c2s_got, r.s2c_got, r.wall_s,
            r.relay_cpu_s, r.wakeups, r.ok ? "" : "; ", r.why);
}

static uint64_t pick_n(unsigned t)
{
    switch (t % 4) {
    case 0:
        return rnd() % 4096; /* small, including 0 */
    case 1: {                /* around a multiple of 64 KiB */
        uint64_t k = 1 + rnd() % 32;
        int64_t d = (int64_t)(rnd() % 9) - 4;
        return (uint64_t)((int64_t)(k * 65536) + d);
    }
    case 2:
        return rnd() % (4 * MIB);
    default:
        return rnd() % (256 * 1024);
    }
}

/* client sends N then shuts down; the server reads to EOF, then shuts down */
static void scenario2_one(enum kind kind, enum eofp eof, int trials)
{
    int ok = 0;
    uint64_t lost_total = 0, worst_lost = 0, worst_n = 0;
    double max_drain = 0;
    char first[640] = "";
    double t0 = now_s();
    for (int t = 0; t < trials; t++) {
        uint64_t n = pick_n((unsigned)t);
        struct xfer_result r = xfer(kind, eof, n, 0, false);
        if (r.ok)
            ok++;
        else {
            uint64_t lost = n > r.c2s_got ? n - r.c2s_got : 0;
            lost_total += lost;
            if (lost > worst_lost) {
                worst_lost = lost;
                worst_n = n;
            }
            if (!first[0])
                snprintf(first, sizeof first, "N=%" PRIu64 ": %s", n, r.why);
        }
        if (r.max_drain_ms > max_drain)
            max_drain = r.max_drain_ms;
    }
    char name[96];
    snprintf(name, sizeof name, "2 eof %s/%s/%s", kind_name(kind), kind == K_SOCKMAP ? eof_name[eof] : "-",
             kind == K_SOCKMAP ? attach_name[opt_attach] : "-");
    verdict(name, ok == trials,
            "%d/%d trials byte-exact with EOF; bytes lost %" PRIu64 " (worst trial %" PRIu64
            " of N=%" PRIu64 "); longest EOF wait %.2f ms; %.1f s%s%s",
            ok, trials, lost_total, worst_lost, worst_n, max_drain, now_s() - t0, first[0] ? "; first failure " : "",
            first);
}

static void scenario2(void)
{
    scenario2_one(K_SPLICE, E_NAIVE, opt_trials / 5);
    scenario2_one(K_SOCKMAP, E_NAIVE, opt_trials);
    scenario2_one(K_SOCKMAP, E_OUTQ, opt_trials);
    scenario2_one(K_SOCKMAP, E_UNLINK, opt_trials / 20 > 0 ? opt_trials / 20 : 1);
    scenario2_one(K_SOCKMAP, E_COUNT, opt_trials);
}

static void scenario3_one(enum kind kind, enum eofp eof, int trials)
{
    int ok = 0;
    char first[640] = "";
    uint64_t c2s_tot = 0, s2c_tot = 0;
    for (int t = 0; t < trials; t++) {
        uint64_t c2s = pick_n((unsigned)t), s2c = 1 + rnd() % (8 * MIB);
        struct xfer_result r = xfer(kind, eof, c2s, s2c, true);
        c2s_tot += r.c2s_got;
        s2c_tot += r.s2c_got;
        if (r.ok)
            ok++;
        else if (!first[0])
            snprintf(first, sizeof first, "%s", r.why);
    }
    char name[96];
    snprintf(name, sizeof name, "3 half-close %s/%s/%s", kind_name(kind),
             kind == K_SOCKMAP ? eof_name[eof] : "-", kind == K_SOCKMAP ? attach_name[opt_attach] : "-");
    verdict(name, ok == trials,
            "%d/%d trials byte-exact both ways (server kept sending, paced, after the client's FIN); "
            "%" PRIu64 " + %" PRIu64 " bytes%s%s",
            ok, trials, c2s_tot, s2c_tot, first[0] ? "; first failure " : "", first);
}

static void scenario3(void)
{
    int n = opt_trials / 10 > 0 ? opt_trials / 10 : 1;
    scenario3_one(K_SPLICE, E_NAIVE, n / 2 > 0 ? n / 2 : 1);
    scenario3_one(K_SOCKMAP, E_NAIVE, n);
    scenario3_one(K_SOCKMAP, E_COUNT, n);
}

/* the server never reads: does the client block, and what does the relay hold? */
static void scenario4_one(enum kind kind, uint64_t watch_hi)
{
    struct conn x;
    conn_open(&x, kind, E_COUNT);
    x.r.timeout_s = 120;
    x.r.watch_hi = watch_hi;
    x.r.watch_lo = watch_hi / 4;
    long mem0 = sockstat_tcp_mem_pages();
    if (kind == K_SOCKMAP && relay_join(&x.r, false) < 0) {
        verdict("4 back-pressure", false, "join: %s", x.r.why);
        conn_close(&x);
        return;
    }
    pthread_t th;
    start(&th, relay_main, &x.r);
    int fl = fcntl(x.c, F_GETFL);
    fcntl(x.c, F_SETFL, fl | O_NONBLOCK);
    uint64_t cap = (uint64_t)opt_cap_mib * MIB, sent = 0, start_off = rnd() % PLEN;
    double t0 = now_s(), last = t0;
    int err = 0;
    while (sent < cap && now_s() - last < 2.0) {
        ssize_t w = send(x.c, pat_at(start_off + sent), 256 * 1024, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (uint64_t)w;
            last = now_s();
        } else if (w < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = x.c, .events = POLLOUT};
            poll(&p, 1, 100);
        } else if (w < 0 && errno != EINTR) {
            err = errno;
            break;
        }
    }
    bool blocked = sent < cap && !err;
    long mem1 = sockstat_tcp_mem_pages();
    int c_outq = outq(x.c), s_inq = inq(x.s);
    int l0_inq = inq(x.r.leg[0]), l1_outq = outq(x.r.leg[1]);
    int64_t held = (int64_t)sent - c_outq - s_inq - l1_outq;
    int meminfo_len = 0;
    uint32_t mi[SK_MEMINFO_VARS];
    socklen_t ml = sizeof mi;
    memset(mi, 0, sizeof mi);
    if (getsockopt(x.r.leg[0], SOL_SOCKET, SO_MEMINFO, mi, &ml) == 0)
        meminfo_len = (int)ml;
    /* now let the server read everything and check it byte for byte */
    fcntl(x.c, F_SETFL, fl);
    shutdown(x.c, SHUT_WR);
    struct rx sr;
    rx_init(&sr, x.s, start_off, sent);
    rx_main(&sr);
    shutdown(x.s, SHUT_WR);
    join(th);
    bool exact = rx_ok(&sr) && !x.r.err;
    char name[96];
    snprintf(name, sizeof name, "4 back-pressure %s%s%s%s", kind_name(kind), kind == K_SOCKMAP ? "/" : "",
             kind == K_SOCKMAP ? attach_name[opt_attach] : "", watch_hi ? "/watch" : "");
    if (watch_hi)
        printf("  watch: pause above %.1f MiB, resume below %.1f MiB, polled every 2 ms: %u pauses, "
               "most held %.2f MiB\n",
               (double)watch_hi / MIB, (double)x.r.watch_lo / MIB, x.r.pauses, (double)x.r.max_held / MIB);
    verdict(name, blocked && exact,
            "client %s after %.1f MiB in %.1f s (cap %u MiB); then: client SIOCOUTQ %.2f MiB, "
            "server SIOCINQ %.2f MiB, upstream leg SIOCOUTQ %.2f MiB, client leg SIOCINQ %d, "
            "held inside the relay %.2f MiB; client leg rmem_alloc %.2f MiB (rcvbuf %.2f MiB)%s; "
            "TCP mem %+.1f MiB (sockstat); afterwards the server read %" PRIu64 " bytes, %s%s%s",
            blocked ? "blocked" : err ? "failed" : "NEVER blocked", (double)sent / MIB, last - t0,
            opt_cap_mib, (double)c_outq / MIB, (double)s_inq / MIB, (double)l1_outq / MIB, l0_inq,
            (double)held / MIB, (double)mi[SK_MEMINFO_RMEM_ALLOC] / MIB, (double)mi[SK_MEMINFO_RCVBUF] / MIB,
            meminfo_len ? "" : " (SO_MEMINFO failed)", (double)(mem1 - mem0) * 4096 / MIB,
            atomic_load(&sr.got), exact ? "byte-exact" : "NOT byte-exact",
            x.r.err ? "; relay: " : "", x.r.err ? x.r.why : "");
    conn_close(&x);
}

static void scenario4(void)
{
    scenario4_one(K_SPLICE, 0);
    scenario4_one(K_SOCKMAP, 0);
    scenario4_one(K_SOCKMAP, 4 * MIB);
}

/* bytes queued on the client leg before it joins */
static void scenario5_stall(bool kick)
{
    struct conn x;
    conn_open(&x, K_SOCKMAP, E_COUNT);
    uint64_t k1 = 100000, k2 = 1000, start_off = rnd() % PLEN;
    if (send(x.c, pat_at(start_off), k1, MSG_NOSIGNAL) != (ssize_t)k1)
        die("send");
    double t0 = now_s();
    while (inq(x.r.leg[0]) < (int)k1 && now_s() - t0 < 2)
        sleep_us(100);
    int queued = inq(x.r.leg[0]);
    struct rx sr;
    rx_init(&sr, x.s, start_off, k1 + k2);
    pthread_t rth, relay;
    start(&rth, rx_main, &sr);
    if (relay_join(&x.r, kick) < 0) {
        verdict("5 pre-join", false, "%s", x.r.why);
        atomic_store(&x.r.stop, 1);
        shutdown(x.s, SHUT_RDWR);
        join(rth);
        conn_close(&x);
        return;
    }
    start(&relay, relay_main, &x.r);
    sleep_us(1000000);
    uint64_t after1s = atomic_load(&sr.got);
    if (send(x.c, pat_at(start_off + k1), k2, MSG_NOSIGNAL) != (ssize_t)k2)
        die("send");
    shutdown(x.c, SHUT_WR);
    join(rth);
    shutdown(x.s, SHUT_WR);
    join(relay);
    bool exact = rx_ok(&sr) && !x.r.err;
    char name[64];
    snprintf(name, sizeof name, "5a pre-join %s/%s", kick ? "kick" : "no-kick", attach_name[opt_attach]);
    verdict(name, after1s == k1 && exact,
            "%d bytes queued on the client leg before it joined; the server had %" PRIu64
            " of them 1 s after the join%s; after %" PRIu64 " more bytes and FIN: %" PRIu64
            " bytes, %s (bad@%" PRId64 " eof=%d err=%d relay %s)",
            queued, after1s, kick ? " and SO_RCVLOWAT kick" : " (no kick)", k2, atomic_load(&sr.got),
            exact ? "byte-exact" : "NOT byte-exact", sr.bad, sr.eof, sr.err, x.r.err ? x.r.why : "ok");
    conn_close(&x);
}

/* the relay copies the first U bytes itself (as before a callout allows the
 * flow), stops reading, writes them all out, joins and kicks, while the
 * client keeps streaming; then EOF by the count protocol */
static void scenario5_stream(int trials, bool kick, bool drain)
{
    int ok = 0, fallbacks = 0;
    char first[640] = "";
    for (int t = 0; t < trials && fallbacks < 100; t++) {
        struct conn x;
        conn_open(&x, K_SOCKMAP, E_COUNT);
        uint64_t n = 8 * MIB + rnd() % (24 * MIB), u = rnd() % (2 * MIB);
        struct tx ct = {.fd = x.c, .start = rnd() % PLEN, .n = n, .shut = true, .chunk = 16384 + rnd() % 65536,
                        .pace_us = 200};
        struct rx sr;
        rx_init(&sr, x.s, ct.start, n);
        pthread_t th[3];
        start(&th[0], rx_main, &sr);
        start(&th[1], tx_main, &ct);
        unsigned char *buf = malloc(65536);
        if (!buf)
            die("malloc");
        set_timeouts(x.r.leg[0], 10);
        while (x.r.user_in[0] < u) {
            size_t want = u - x.r.user_in[0] < 65536 ? (size_t)(u - x.r.user_in[0]) : 65536;
            ssize_t k = recv(x.r.leg[0], buf, want, 0);
            if (k <= 0)
                break;
            x.r.user_in[0] += (uint64_t)k;
            for (ssize_t off = 0; off < k;) {
                ssize_t w = send(x.r.leg[1], buf + off, (size_t)(k - off), MSG_NOSIGNAL);
                if (w <= 0)
                    die("relay send");
                off += w;
            }
            x.r.user_out[1] += (uint64_t)k;
        }
        while (drain) { /* read to EAGAIN: no partly read skb is left behind */
            ssize_t k = recv(x.r.leg[0], buf, 65536, MSG_DONTWAIT);
            if (k <= 0)
                break;
            x.r.user_in[0] += (uint64_t)k;
            for (ssize_t off = 0; off < k;) {
                ssize_t w = send(x.r.leg[1], buf + off, (size_t)(k - off), MSG_NOSIGNAL);
                if (w <= 0)
                    die("relay send");
                off += w;
            }
            x.r.user_out[1] += (uint64_t)k;
        }
        free(buf);
        if (relay_join(&x.r, kick) < 0) {
            /* e.g. EOPNOTSUPP: the client's FIN came first (CLOSE_WAIT) */
            fallbacks++;
            atomic_store(&x.r.stop, 1);
            shutdown(x.c, SHUT_RDWR);
            shutdown(x.s, SHUT_RDWR);
            join(th[1]);
            join(th[0]);
            conn_close(&x);
            t--;
            continue;
        }
        start(&th[2], relay_main, &x.r);
        join(th[1]);
        join(th[0]);
        shutdown(x.s, SHUT_WR);
        join(th[2]);
        if (rx_ok(&sr) && !x.r.err)
            ok++;
        else if (!first[0])
            snprintf(first, sizeof first, "N=%" PRIu64 " U=%" PRIu64 ": got %" PRIu64 " bad@%" PRId64 " eof=%d relay %s",
                     n, u, atomic_load(&sr.got), sr.bad, sr.eof, x.r.err ? x.r.why : "ok");
        conn_close(&x);
    }
    char name[64];
    snprintf(name, sizeof name, "5c copy-then-join %s/%s/%s", drain ? "drain" : "stop-at-U",
             kick ? "kick" : "no-kick", attach_name[opt_attach]);
    verdict(name, ok == trials,
            "%d/%d trials byte-exact: relay copied the first 0-2 MiB in user space%s, "
            "then joined while the client kept streaming 8-32 MiB (%d join(s) refused, retried)%s%s",
            ok, trials, drain ? " and then read to EAGAIN" : ", stopping mid-stream", fallbacks,
            first[0] ? "; first failure " : "", first);
}

/* the gap between the two joins, with one map: the server sends while only
 * the upstream leg is in the map */
static void scenario5_gap(void)
{
    struct conn x;
    conn_open(&x, K_SOCKMAP, E_COUNT);
    if (bpfset_open(&x.r.b, opt_maps, opt_attach) < 0)
        die("bpf");
    if (x.r.b.pmap != x.r.b.vmap && map_set(x.r.b.pmap, 0, x.r.leg[0]) < 0)
        die("map");
    if (x.r.b.pmap != x.r.b.vmap && map_set(x.r.b.pmap, 1, x.r.leg[1]) < 0)
        die("map");
    if (map_set(x.r.b.vmap, 1, x.r.leg[1]) < 0)
        die("map");
    uint64_t k = 50000, start_off = rnd() % PLEN;
    if (send(x.s, pat_at(start_off), k, MSG_NOSIGNAL) != (ssize_t)k)
        die("send");
    sleep_us(200000);
    if (map_set(x.r.b.vmap, 0, x.r.leg[0]) < 0)
        die("map");
    x.r.joined = true;
    int one = 1;
    for (int i = 0; i < 2; i++)
        setsockopt(x.r.leg[i], SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    struct rx cr;
    rx_init(&cr, x.c, start_off, k);
    pthread_t rth, relay;
    start(&relay, relay_main, &x.r);
    start(&rth, rx_main, &cr);
    sleep_us(500000);
    shutdown(x.s, SHUT_WR);
    join(rth);
    shutdown(x.c, SHUT_WR);
    join(relay);
    bool exact = rx_ok(&cr) && !x.r.err;
    char name[64];
    snprintf(name, sizeof name, "5d join gap %d map(s)/%s", opt_maps, attach_name[opt_attach]);
    verdict(name, exact,
            "the server sent %" PRIu64 " bytes while only the upstream leg was in the verdict map; "
            "the client received %" PRIu64 ", %s%s%s",
            k, atomic_load(&cr.got), exact ? "byte-exact" : "NOT byte-exact", x.r.err ? "; relay: " : "",
            x.r.err ? x.r.why : "");
    conn_close(&x);
}

static void scenario5(void)
{
    scenario5_stall(false);
    for (int t = 0; t < 10; t++)
        scenario5_stall(true);
    int n = opt_trials / 20 > 0 ? opt_trials / 20 : 1;
    scenario5_stream(n, true, false);
    scenario5_stream(n, true, true);
    int saved = opt_maps;
    opt_maps = 1;
    scenario5_gap();
    opt_maps = 2;
    scenario5_gap();
    opt_maps = saved;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void scenario6(void)
{
    enum kind kinds[3] = {K_DIRECT, K_SPLICE, K_SOCKMAP};
    double wall[3][16], cpu[3][16], busy[3][16];
    unsigned reps = opt_reps > 16 ? 16 : opt_reps;
    uint64_t n = (uint64_t)opt_tput_mib * MIB;
    bool all_ok = true;
    long hz = sysconf(_SC_CLK_TCK);
    for (unsigned rep = 0; rep < reps; rep++)
        for (int k = 0; k < 3; k++) { /* interleaved, so drift hits all three */
            struct xfer_result r = xfer(kinds[k], E_COUNT, n, 0, false);
            if (!r.ok) {
                all_ok = false;
                printf("  %s rep %u failed: %s\n", kind_name(kinds[k]), rep, r.why);
            }
            wall[k][rep] = r.wall_s;
            cpu[k][rep] = r.relay_cpu_s;
            busy[k][rep] = (double)r.busy_jiffies / (double)hz;
        }
    double mw[3], mc[3], mb[3];
    for (int k = 0; k < 3; k++) {
        mw[k] = median(wall[k], reps);
        mc[k] = median(cpu[k], reps);
        mb[k] = median(busy[k], reps);
    }
    verdict("6 throughput", all_ok,
            "%u MiB client->server, medians of %u, byte-compared (attach %s)", opt_tput_mib, reps,
            attach_name[opt_attach]);
    for (int k = 0; k < 3; k++)
        printf("  %-8s wall %.3f s = %6.0f MiB/s (%.2fx direct); relay thread CPU %.3f s; "
               "machine busy CPU %.2f s\n",
               kind_name(kinds[k]), mw[k], opt_tput_mib / mw[k], mw[0] / mw[k], mc[k], mb[k]);
    fflush(stdout);
}

static int calibrate(void)
{
    /* a plain pair: does tcpi_bytes_received count the FIN? */
    int c = connect_lo(server_port), s = accept_one(server_lfd);
    uint64_t b0 = bytes_received(s);
    char buf[64] = "0123456789";
    if (send(c, buf, 10, 0) != 10)
        die("send");
    shutdown(c, SHUT_WR);
    set_timeouts(s, 5);
    ssize_t n, tot = 0;
    while ((n = recv(s, buf, sizeof buf, 0)) > 0)
        tot += n;
    uint64_t b1 = bytes_received(s);
    close(c);
    close(s);
    if (tot != 10)
        return -1;
    fin_adj = (int)(b1 - b0 - 10);
    printf("calibration: tcpi_bytes_received after 10 bytes + FIN = %+d (FIN %scounted)\n",
           (int)(b1 - b0), fin_adj ? "" : "not ");
    return 0;
}

int main(int argc, char **argv)
{
    const char *scen = "all";
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "usage: see the comment at the top of bench/sockmap_probe.c\n");
            return 2;
        }
        i++;
        if (!strcmp(a, "--scenario"))
            scen = v;
        else if (!strcmp(a, "--attach"))
            opt_attach = !strcmp(v, "parser") ? 1 : !strcmp(v, "skb") ? 2 : 0;
        else if (!strcmp(a, "--maps"))
            opt_maps = atoi(v) == 1 ? 1 : 2;
        else if (!strcmp(a, "--trials"))
            opt_trials = atoi(v);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--bulk-mib"))
            opt_bulk_mib = (unsigned)atoi(v);
        else if (!strcmp(a, "--tput-mib"))
            opt_tput_mib = (unsigned)atoi(v);
        else if (!strcmp(a, "--reps"))
            opt_reps = (unsigned)atoi(v);
        else if (!strcmp(a, "--zero-drop"))
            opt_zero_drop = atoi(v);
        else if (!strcmp(a, "--debug"))
            opt_debug = atoi(v);
        else if (!strcmp(a, "--cap-mib"))
            opt_cap_mib = (unsigned)atoi(v);
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (opt_trials < 1 || opt_reps < 1)
        return 2;
    rng_state ^= seed * 0x2545f4914f6cdd1dull;
    pat = malloc(2 * (size_t)PLEN);
    if (!pat)
        die("malloc");
    for (size_t i = 0; i < 2 * (size_t)PLEN; i++)
        pat[i] = i < PLEN ? (unsigned char)rnd() : pat[i - PLEN];
    relay_lfd = listen_lo(&relay_port);
    server_lfd = listen_lo(&server_port);

    /* can we load and attach at all? Never silently skip. */
    struct bpfset probe;
    if (bpfset_open(&probe, opt_maps, opt_attach) < 0) {
        printf("SKIP: sockmap/sk_skb unavailable: %s\n", strerror(errno));
        bpfset_close(&probe);
        return 77;
    }
    bpfset_close(&probe);
    if (calibrate() < 0) {
        fprintf(stderr, "calibration failed\n");
        return 2;
    }
    printf("sockmap_probe: attach %s, %d map(s), trials %d, seed %" PRIu64 "\n", attach_name[opt_attach],
           opt_maps, opt_trials, seed);
    fflush(stdout);
    bool all = !strcmp(scen, "all");
    if (all || strchr(scen, '1'))
        scenario1();
    if (all || strchr(scen, '2'))
        scenario2();
    if (all || strchr(scen, '3'))
        scenario3();
    if (all || strchr(scen, '4'))
        scenario4();
    if (all || strchr(scen, '5'))
        scenario5();
    if (all || strchr(scen, '6'))
        scenario6();
    close(relay_lfd);
    close(server_lfd);
    free(pat);
    printf("%d scenario(s) failed\n", failures);
    return failures ? 1 : 0;
}
