/*
 * gen_capture: writes a synthetic pcap of many concurrent HTTP-like TCP
 * connections, for the replay benchmark (bench/replay.sh). Nothing it
 * writes is committed; the same options and seed give the same bytes.
 *
 *   gen_capture --out FILE [--conns N] [--concurrency C] [--seed S] [--short]
 *               [--ipv6 PCT] [--reorder F] [--retransmit F] [--mbps R]
 *
 * Each connection: SYN, SYN/ACK, ACK; a request of 200-500 bytes; a
 * response whose size is drawn from a mixture (mostly small, a few large:
 * see response_size), in MSS-sized segments (1460, or 1448 with the TCP
 * timestamp option; 20 bytes less over IPv6); the client ACKs every second
 * segment and the last; then FIN from the server, FIN from the client, ACK.
 * Requests and responses start with HTTP headers so that a dissector sees
 * HTTP; the rest is text from a seeded buffer that contains the word
 * "secret" about once per 16 KiB (work for --example mask=secret).
 *
 * C connections are live at a time and take turns one packet each, round
 * robin, so the capture interleaves as much as it can; a finished
 * connection's slot starts the next one. --short: 1-byte request and
 * response (the many-connections memory tests). A fraction of the server's
 * data segments are swapped with the next one (--reorder) or sent twice
 * (--retransmit). Checksums are correct (cheap, and it keeps the capture
 * valid for every reader). Timestamps advance as on a link of R Mbit/s.
 *
 * Prints what it wrote (packets, bytes, stream payload) on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_SIZE (1u << 20)
#define MAX_FRAME 1600
#define QUEUE 4 /* pending packets per connection: a swap, a copy, an ACK */

enum { F_FIN = 1, F_SYN = 2, F_PSH = 8, F_ACK = 16 };
/* The next packet a connection sends when nothing is queued. */
enum { ST_SYN, ST_SYNACK, ST_ACK, ST_REQ, ST_DATA, ST_FIN_C, ST_LAST_ACK, ST_END };

struct opts {
    uint64_t conns, concurrency, seed;
    const char *out;
    bool short_conns;
    double ipv6, reorder, retransmit, mbps;
};

/* One packet to send: which side, flags, sequence and acknowledgement
 * numbers relative to the sender's and the peer's ISN, payload length (the
 * payload is the sender's stream from seq - 1). A client ACK of response
 * data (late_ack) takes its number when it is sent. */
struct pkt {
    uint8_t server, flags, late_ack;
    uint32_t seq, ack, len;
};

struct conn {
    uint64_t id;
    uint8_t v6, ts, state;
    uint16_t cport, sport;
    uint32_t sip;              /* server index */
    uint32_t isc, iss;         /* initial sequence numbers */
    uint32_t req, resp, mss;
    uint32_t sent;             /* response bytes generated */
    uint32_t delivered;        /* response bytes the client has in order */
    uint32_t ooo_lo, ooo_hi;   /* one out-of-order block the client holds */
    uint32_t unacked;          /* data segments since the last client ACK */
    struct pkt q[QUEUE];
    uint8_t nq;
};

static struct opts g_o = {60000, 4000, 1, NULL, false, 10, 0.001, 0.001, 1000};
static uint64_t g_rng;
static char *g_text;
static FILE *g_out;
static uint64_t g_time_ns, g_pkts, g_bytes, g_payload, g_payload_v6;

/* splitmix64: fast and the same on every machine. */
static uint64_t rnd(void)
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double unif(void) { return (double)(rnd() >> 11) * 0x1.0p-53; }
static double normal(void)
{
    double u = unif(), v = unif();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* Mostly small objects, some medium, a heavy Pareto tail capped at 16 MB:
 * mean about 15.9 kB, so 60,000 connections make about 1.07 GB of capture. */
static uint32_t response_size(void)
{
    double p = unif(), s;
    if (p < 0.55)
        s = 900 * exp(normal());           /* pages, API answers: median 900 B */
    else if (p < 0.92)
        s = 7000 * exp(0.9 * normal());    /* scripts, images: median 7 KB */
    else
        s = 44000 / pow(1.0 - unif(), 1 / 1.4); /* downloads: Pareto from 44 KB */
    if (s < 100)
        s = 100;
    return s > 16e6 ? 16000000u : (uint32_t)s;
}

static void start_conn(struct conn *c, uint64_t id)
{
    memset(c, 0, sizeof(*c));
    c->id = id;
    c->v6 = unif() * 100 < g_o.ipv6;
    c->ts = rnd() & 1;
    c->cport = (uint16_t)(1024 + rnd() % 64000);
    static const uint16_t ports[] = {80, 80, 80, 8080};
    c->sport = ports[rnd() % 4];
    c->sip = (uint32_t)(rnd() % 64);
    c->isc = (uint32_t)rnd();
    c->iss = (uint32_t)rnd();
    c->req = g_o.short_conns ? 1 : 200 + (uint32_t)(rnd() % 301);
    c->resp = g_o.short_conns ? 1 : response_size();
    c->mss = (c->v6 ? 1440 : 1460) - (c->ts ? 12 : 0);
}

static uint16_t fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}
static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
    for (; n > 1; p += 2, n -= 2)
        s += (uint32_t)p[0] << 8 | p[1];
    if (n)
        s += (uint32_t)p[0] << 8;
    return s;
}
static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16), put16(p + 2, v); }

/* The HTTP head at the start of each message; the rest is text. */
static size_t head(const struct conn *c, bool server, char *buf, size_t cap)
{
    int n = server ? snprintf(buf, cap,
                              "HTTP/1.1 200 OK\r\nServer: gen\r\nContent-Length: %u\r\n"
                              "Content-Type: text/plain\r\n\r\n",
                              c->resp)
                   : snprintf(buf, cap, "GET /obj/%" PRIu64 " HTTP/1.1\r\nHost: s%u.example\r\n"
                                        "User-Agent: gen\r\nAccept: */*\r\n\r\n",
                              c->id, c->sip);
    return n < 0 ? 0 : (size_t)n;
}

static void payload(const struct conn *c, bool server, uint32_t off, uint32_t len, uint8_t *dst)
{
    uint32_t total = server ? c->resp : c->req;
    char h[256];
    size_t hn = total > 1 ? head(c, server, h, sizeof(h)) : 0;
    if (hn > total)
        hn = total; /* a short message is cut, not padded */
    uint32_t i = 0;
    for (; i < len && off + i < hn; i++)
        dst[i] = (uint8_t)h[off + i];
    if (i < len) {
        uint32_t at = (uint32_t)((c->id * 7919u + off + i + server * 4099u) % (TEXT_SIZE - 65536));
        memcpy(dst + i, g_text + at, len - i);
    }
}

static void emit(struct conn *c, const struct pkt *k)
{
    uint8_t f[MAX_FRAME + 16];
    uint8_t *eth = f + 16, *ip = eth + 14;
    size_t iph = c->v6 ? 40 : 20;
    uint8_t *tcp = ip + iph;
    size_t opt = 0;
    uint8_t *o = tcp + 20;
    if (k->flags & F_SYN) {
        uint32_t mss = c->mss + (c->ts ? 12 : 0);
        o[0] = 2, o[1] = 4, put16(o + 2, mss), opt = 4;
        o[4] = 1, o[5] = 3, o[6] = 3, o[7] = 7, opt = 8; /* NOP, window scale 7 */
        o[8] = 1, o[9] = 1, o[10] = 4, o[11] = 2, opt = 12; /* NOP NOP SACK-permitted */
    }
    if (c->ts) {
        uint32_t now = (uint32_t)(g_time_ns / 1000000);
        o[opt] = 1, o[opt + 1] = 1, o[opt + 2] = 8, o[opt + 3] = 10;
        put32(o + opt + 4, now + (k->server ? 7777u : 0));
        put32(o + opt + 8, (k->flags & F_SYN) && !k->server ? 0 : now + (k->server ? 0 : 7777u));
        opt += 12;
    }
    size_t th = 20 + opt;
    uint8_t *data = tcp + th;
    payload(c, k->server, k->seq - 1, k->len, data);

    /* Ethernet: client MAC 02:00:00:00:00:01, the router's 02:..:02. */
    static const uint8_t macs[2][6] = {{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}};
    memcpy(eth, macs[!k->server], 6);
    memcpy(eth + 6, macs[k->server], 6);
    put16(eth + 12, c->v6 ? 0x86dd : 0x0800);

    uint8_t caddr[16], saddr[16];
    size_t alen = c->v6 ? 16 : 4;
    if (c->v6) {
        static const uint8_t cpre[8] = {0xfd, 0, 0, 0, 0, 0, 0, 1};
        static const uint8_t spre[8] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0x80};
        memcpy(caddr, cpre, 8), memset(caddr + 8, 0, 4), put32(caddr + 12, (uint32_t)c->id);
        memcpy(saddr, spre, 8), memset(saddr + 8, 0, 4), put32(saddr + 12, 1 + c->sip);
    } else {
        put32(caddr, 0x0a000000u | (uint32_t)(c->id & 0xffffff)); /* 10/8: one per conn */
        put32(saddr, 0xc6336400u | (1 + c->sip));                 /* 198.51.100.x */
    }
    const uint8_t *src = k->server ? saddr : caddr, *dst = k->server ? caddr : saddr;
    size_t tcplen = th + k->len;
    if (c->v6) {
        put32(ip, 0x60000000u), put16(ip + 4, (uint32_t)tcplen), ip[6] = 6, ip[7] = 64;
        memcpy(ip + 8, src, 16), memcpy(ip + 24, dst, 16);
    } else {
        ip[0] = 0x45, ip[1] = 0, put16(ip + 2, (uint32_t)(20 + tcplen));
        put16(ip + 4, (uint32_t)g_pkts), put16(ip + 6, 0x4000), ip[8] = 64, ip[9] = 6;
        put16(ip + 10, 0), memcpy(ip + 12, src, 4), memcpy(ip + 16, dst, 4);
        put16(ip + 10, (uint16_t)~fold(sum16(ip, 20, 0)));
    }

    uint32_t seq = (k->server ? c->iss : c->isc) + k->seq;
    uint32_t ack = k->late_ack ? c->iss + 1 + c->delivered
                               : k->flags & F_ACK ? (k->server ? c->isc : c->iss) + k->ack : 0;
    put16(tcp, k->server ? c->sport : c->cport);
    put16(tcp + 2, k->server ? c->cport : c->sport);
    put32(tcp + 4, seq), put32(tcp + 8, ack);
    tcp[12] = (uint8_t)((th / 4) << 4), tcp[13] = k->flags;
    put16(tcp + 14, 0xffff), put16(tcp + 16, 0), put16(tcp + 18, 0);
    uint32_t s = sum16(src, alen, 0);
    s = sum16(dst, alen, s) + 6 + (uint32_t)tcplen;
    put16(tcp + 16, (uint16_t)~fold(sum16(tcp, tcplen, s)));

    size_t flen = 14 + iph + tcplen;
    uint64_t usec = g_time_ns / 1000;
    uint8_t *rec = f;
    uint32_t hdr[4] = {(uint32_t)(usec / 1000000), (uint32_t)(usec % 1000000), (uint32_t)flen,
                       (uint32_t)flen};
    memcpy(rec, hdr, 16); /* native byte order, as the magic number says */
    if (fwrite(rec, 1, 16 + flen, g_out) != 16 + flen) {
        perror("gen_capture: write");
        exit(1);
    }
    g_pkts++;
    g_bytes += 16 + flen;
    /* Link time: frame plus preamble, start delimiter and inter-frame gap. */
    g_time_ns += (uint64_t)((double)(flen + 24) * 8000.0 / g_o.mbps);
}

static void push(struct conn *c, struct pkt k)
{
    if (c->nq < QUEUE)
        c->q[c->nq++] = k;
}

/* A server data segment reaches the client: what is in order advances. */
static void deliver(struct conn *c, const struct pkt *k)
{
    uint32_t lo = k->seq - 1, hi = lo + k->len;
    if (lo <= c->delivered) {
        if (hi > c->delivered)
            c->delivered = hi;
        if (c->ooo_hi && c->ooo_lo <= c->delivered) {
            if (c->ooo_hi > c->delivered)
                c->delivered = c->ooo_hi;
            c->ooo_lo = c->ooo_hi = 0;
        }
    } else if (!c->ooo_hi) {
        c->ooo_lo = lo, c->ooo_hi = hi;
    }
}

static struct pkt data_seg(struct conn *c)
{
    uint32_t n = c->resp - c->sent < c->mss ? c->resp - c->sent : c->mss;
    struct pkt k = {1, F_ACK, 0, 1 + c->sent, 1 + c->req, n};
    c->sent += n;
    if (c->sent == c->resp)
        k.flags |= F_PSH;
    return k;
}

/* Sends the connection's next packet; returns false once it has ended. */
static bool step(struct conn *c)
{
    struct pkt k = {0};
    if (c->nq) {
        k = c->q[0];
        memmove(c->q, c->q + 1, --c->nq * sizeof(k));
    } else {
        switch (c->state) {
        case ST_SYN: k = (struct pkt){0, F_SYN, 0, 0, 0, 0}, c->state = ST_SYNACK; break;
        case ST_SYNACK: k = (struct pkt){1, F_SYN | F_ACK, 0, 0, 1, 0}, c->state = ST_ACK; break;
        case ST_ACK: k = (struct pkt){0, F_ACK, 1, 1, 0, 0}, c->state = ST_REQ; break;
        case ST_REQ:
            k = (struct pkt){0, F_ACK | F_PSH, 1, 1, 0, c->req}, c->state = ST_DATA;
            break;
        case ST_DATA:
            if (c->sent == c->resp) { /* all sent and acknowledged: close */
                k = (struct pkt){1, F_FIN | F_ACK, 0, 1 + c->resp, 1 + c->req, 0};
                c->state = ST_FIN_C;
                break;
            }
            k = data_seg(c);
            if (c->sent < c->resp && unif() < g_o.reorder) { /* the next one overtakes */
                push(c, k);
                k = data_seg(c);
            } else if (unif() < g_o.retransmit) {
                push(c, k);
            }
            break;
        case ST_FIN_C:
            k = (struct pkt){0, F_FIN | F_ACK, 0, 1 + c->req, 2 + c->resp, 0};
            c->state = ST_LAST_ACK;
            break;
        case ST_LAST_ACK:
            k = (struct pkt){1, F_ACK, 0, 2 + c->resp, 2 + c->req, 0}, c->state = ST_END;
            break;
        default: return false;
        }
    }
    emit(c, &k);
    if (k.server && k.len) {
        deliver(c, &k);
        /* ACK every second segment, and when everything has arrived. */
        if ((++c->unacked >= 2 || c->delivered == c->resp) && !c->nq) {
            c->unacked = 0;
            push(c, (struct pkt){0, F_ACK, 1, 1 + c->req, 0, 0});
        }
    }
    return c->state != ST_END || c->nq;
}

static void usage(FILE *f)
{
    fputs("usage: gen_capture --out FILE [--conns N] [--concurrency C] [--seed S] [--short]\n"
          "                   [--ipv6 PCT] [--reorder F] [--retransmit F] [--mbps R]\n"
          "  --conns N        connections in all (default 60000)\n"
          "  --concurrency C  connections live at a time, round robin (default 4000)\n"
          "  --short          1-byte request and response\n"
          "  --ipv6 PCT       share of IPv6 connections, percent (default 10)\n"
          "  --reorder F      fraction of data segments swapped with the next (0.001)\n"
          "  --retransmit F   fraction of data segments sent twice (0.001)\n"
          "  --mbps R         link rate the timestamps follow, Mbit/s (default 1000)\n",
          f);
}

static double num(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "gen_capture: %s: bad value '%s'\n", opt, s);
        exit(2);
    }
    return v;
}

static void parse(int argc, char **argv)
{
    static const struct option lo[] = {
        {"conns", 1, 0, 'n'},  {"concurrency", 1, 0, 'c'}, {"seed", 1, 0, 's'},
        {"out", 1, 0, 'o'},    {"short", 0, 0, 'S'},       {"ipv6", 1, 0, '6'},
        {"reorder", 1, 0, 'r'}, {"retransmit", 1, 0, 't'}, {"mbps", 1, 0, 'm'},
        {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'n': g_o.conns = (uint64_t)num("--conns", optarg, 1, 1e9); break;
        case 'c': g_o.concurrency = (uint64_t)num("--concurrency", optarg, 1, 1e8); break;
        case 's': g_o.seed = (uint64_t)num("--seed", optarg, 0, 1e18); break;
        case 'o': g_o.out = optarg; break;
        case 'S': g_o.short_conns = true; break;
        case '6': g_o.ipv6 = num("--ipv6", optarg, 0, 100); break;
        case 'r': g_o.reorder = num("--reorder", optarg, 0, 0.5); break;
        case 't': g_o.retransmit = num("--retransmit", optarg, 0, 0.5); break;
        case 'm': g_o.mbps = num("--mbps", optarg, 0.001, 1e6); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (!g_o.out || optind != argc) {
        usage(stderr);
        exit(2);
    }
    if (g_o.concurrency > g_o.conns)
        g_o.concurrency = g_o.conns;
}

/* Lowercase words, "secret" about once per 16 KiB. */
static void make_text(void)
{
    g_text = malloc(TEXT_SIZE);
    if (!g_text)
        exit(1);
    for (uint32_t i = 0; i < TEXT_SIZE; i++)
        g_text[i] = (rnd() % 6 == 0) ? ' ' : (char)('a' + rnd() % 26);
    for (uint32_t i = 0; i + 16 < TEXT_SIZE; i += 16384)
        memcpy(g_text + i + rnd() % 16000, " secret ", 8);
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    g_rng = g_o.seed * 0x2545f4914f6cdd1dull + 1;
    make_text();
    g_out = strcmp(g_o.out, "-") ? fopen(g_o.out, "wb") : stdout;
    if (!g_out) {
        fprintf(stderr, "gen_capture: %s: %s\n", g_o.out, strerror(errno));
        return 1;
    }
    static char buf[1 << 20];
    setvbuf(g_out, buf, _IOFBF, sizeof(buf));
    uint32_t ghdr[6] = {0xa1b2c3d4u, 2 | 4u << 16, 0, 0, 65535, 1}; /* pcap 2.4, Ethernet */
    fwrite(ghdr, 4, 6, g_out);
    g_bytes = 24;
    g_time_ns = 1700000000ull * 1000000000ull;

    struct conn *live = calloc(g_o.concurrency, sizeof(*live));
    if (!live)
        return 1;
    uint64_t next = 0, nlive = 0;
    for (; next < g_o.concurrency; next++, nlive++)
        start_conn(&live[next], next + 1);
    uint64_t v6conns = 0;
    for (uint64_t i = 0; i < g_o.concurrency; i++)
        v6conns += live[i].v6, g_payload += live[i].req + live[i].resp,
            g_payload_v6 += live[i].v6 ? live[i].req + live[i].resp : 0;
    while (nlive) {
        for (uint64_t i = 0; i < g_o.concurrency; i++) {
            struct conn *c = &live[i];
            if (c->id == 0 || step(c))
                continue;
            if (next < g_o.conns) {
                start_conn(c, ++next);
                v6conns += c->v6;
                g_payload += c->req + c->resp;
                g_payload_v6 += c->v6 ? c->req + c->resp : 0;
            } else {
                c->id = 0;
                nlive--;
            }
        }
    }
    if (fflush(g_out) || (g_out != stdout && fclose(g_out))) {
        perror("gen_capture: write");
        return 1;
    }
    fprintf(stderr,
            "gen_capture: conns=%" PRIu64 " ipv6_conns=%" PRIu64 " concurrency=%" PRIu64
            " packets=%" PRIu64 " bytes=%" PRIu64 " stream_payload=%" PRIu64
            " stream_payload_v4=%" PRIu64 " mean_payload_per_conn=%.0f capture_seconds=%.1f\n",
            g_o.conns, v6conns, g_o.concurrency, g_pkts, g_bytes, g_payload,
            g_payload - g_payload_v6, (double)g_payload / (double)g_o.conns,
            (double)(g_time_ns - 1700000000ull * 1000000000ull) / 1e9);
    free(live);
    free(g_text);
    return 0;
}
