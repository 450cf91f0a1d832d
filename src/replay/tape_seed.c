/* Fuzz tapes made from a capture (tape.h): each TCP connection's bytes, in
 * capture order, as one tape, so that a fuzzer starts from real traffic. */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/decode.h"
#include "replay/tape.h"

/* One connection's tape in the making. */
struct seed {
    uint8_t ip_version;
    uint8_t addr[2][16]; /* [0] the client's */
    uint16_t port[2];
    bool have_seq[2], fin[2], reset;
    uint32_t next[2]; /* each side's next sequence number, as the tape has it */
    uint8_t *tape;
    size_t len, cap, max;
};

static void put(struct seed *s, const uint8_t *p, size_t n)
{
    if (s->len + n > s->max)
        return;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        while (cap < s->len + n)
            cap *= 2;
        uint8_t *t = realloc(s->tape, cap);
        if (!t) {
            s->max = s->len; /* stop growing; what is there is still a tape */
            return;
        }
        s->tape = t;
        s->cap = cap;
    }
    memcpy(s->tape + s->len, p, n);
    s->len += n;
}

static void op(struct seed *s, int kind, int side, bool mod)
{
    uint8_t b = OWFP_TAPE_OP(kind, 0, side, mod);
    put(s, &b, 1);
}

/* The side of `s` that sent `p`: 0 the client, 1 the server, -1 another
 * connection. */
static int side_of(const struct seed *s, const struct owfp_pkt *p)
{
    size_t n = p->ip_version == 4 ? 4 : 16;
    if (p->ip_version != s->ip_version)
        return -1;
    for (int side = 0; side < 2; side++)
        if (p->sport == s->port[side] && p->dport == s->port[1 - side] &&
            !memcmp(p->src, s->addr[side], n) && !memcmp(p->dst, s->addr[1 - side], n))
            return side;
    return -1;
}

/* A new connection from its first packet: a SYN names the client; without
 * one the lower port is taken for the server's. */
static void start(struct seed *s, const struct owfp_pkt *p, size_t max)
{
    memset(s, 0, sizeof(*s));
    s->max = max;
    bool syn = p->tcp_flags & OWFP_TCP_SYN;
    int sender = syn ? !!(p->tcp_flags & OWFP_TCP_ACK) : p->sport < p->dport;
    s->ip_version = p->ip_version;
    memcpy(s->addr[sender], p->src, 16);
    memcpy(s->addr[1 - sender], p->dst, 16);
    s->port[sender] = p->sport;
    s->port[1 - sender] = p->dport;
    uint8_t open[5] = {OWFP_TAPE_OP(OWFP_TAPE_CTRL, OWFP_TAPE_OPEN, 0, 0),
                       (uint8_t)((p->ip_version == 6) << 3 | (!syn) << 4), 15,
                       (uint8_t)(s->port[1] & 0xff), (uint8_t)(s->port[1] >> 8)};
    put(s, open, sizeof(open));
}

static void data(struct seed *s, int side, const uint8_t *d, uint32_t n, bool urgent)
{
    while (n) {
        uint32_t k = n > 0xffff ? 0xffff : n;
        op(s, urgent ? OWFP_TAPE_URGENT : OWFP_TAPE_DATA, side, true);
        uint8_t len[2] = {(uint8_t)(k & 0xff), (uint8_t)(k >> 8)};
        put(s, len, 2);
        put(s, d, k);
        d += k;
        n -= k;
    }
}

/* Only what is new in sequence space goes on the tape: retransmitted bytes
 * are skipped, bytes the capture lacks become GAPs. */
static void segment(struct seed *s, int side, const struct owfp_pkt *p)
{
    uint32_t seq = p->seq + ((p->tcp_flags & OWFP_TCP_SYN) ? 1 : 0);
    if (!s->have_seq[side]) {
        s->have_seq[side] = true;
        s->next[side] = seq;
    }
    const uint8_t *d = p->payload;
    uint32_t n = p->payload_len;
    int32_t ahead = (int32_t)(seq - s->next[side]);
    if (ahead < 0) { /* starts with bytes already on the tape */
        uint32_t old = (uint32_t)-(int64_t)ahead;
        if (old >= n) {
            n = 0;
        } else {
            d += old;
            n -= old;
        }
        ahead = 0;
    }
    if (n) {
        for (uint32_t gap = (uint32_t)ahead; gap; ) {
            uint32_t k = gap > 256 ? 256 : gap;
            op(s, OWFP_TAPE_GAP, side, false);
            uint8_t b = (uint8_t)(k - 1);
            put(s, &b, 1);
            gap -= k;
        }
        data(s, side, d, n, p->tcp_flags & OWFP_TCP_URG);
        s->next[side] = seq + (uint32_t)ahead + n;
    }
    if ((p->tcp_flags & OWFP_TCP_FIN) && !s->fin[side]) {
        s->fin[side] = true;
        op(s, OWFP_TAPE_FIN, side, false);
    }
    if (p->tcp_flags & OWFP_TCP_RST) {
        s->reset = true;
        op(s, OWFP_TAPE_RST, side, false);
    }
}

static int write_seed(const struct seed *s, const char *dir, const char *base, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/seed-%s-%zu", dir, base, n);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s->tape, 1, s->len, f) != s->len || fclose(f) != 0) {
        fprintf(stderr, "openwfp: %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    return 0;
}

long owfp_tape_seeds_from_capture(const char *capture, const char *dir, size_t max,
                                  size_t max_bytes)
{
    char err[PCAP_ERRBUF_SIZE] = "";
    pcap_t *pc = pcap_open_offline(capture, err);
    if (!pc) {
        fprintf(stderr, "openwfp: %s: %s\n", capture, err);
        return -1;
    }
    struct owfp_decoder *dec = owfp_decoder_new(NULL);
    struct seed *seeds = calloc(max ? max : 1, sizeof(*seeds));
    size_t n = 0;
    long status = dec && seeds ? 0 : -1;
    struct pcap_pkthdr *h;
    const u_char *frame;
    int dlt = pcap_datalink(pc);
    while (status == 0 && pcap_next_ex(pc, &h, &frame) == 1) {
        struct owfp_pkt p;
        uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000 + (uint64_t)h->ts.tv_usec;
        if (owfp_decode(dec, dlt, frame, h->caplen, h->len, ts, &p) != OWFP_DECODE_TCP)
            continue;
        int side = -1;
        size_t i = 0;
        for (; i < n && (side = side_of(&seeds[i], &p)) < 0; i++)
            ;
        if (side < 0 && n < max) {
            i = n++;
            start(&seeds[i], &p, max_bytes);
            side = side_of(&seeds[i], &p);
        }
        if (side >= 0 && !seeds[i].reset)
            segment(&seeds[i], side, &p);
    }
    const char *slash = strrchr(capture, '/');
    const char *base = slash ? slash + 1 : capture;
    for (size_t i = 0; i < n; i++) {
        if (status == 0 && write_seed(&seeds[i], dir, base, i) != 0)
            status = -1;
        free(seeds[i].tape);
    }
    if (!dec || !seeds)
        fprintf(stderr, "openwfp: out of memory\n");
    free(seeds);
    owfp_decoder_free(dec);
    pcap_close(pc);
    return status ? status : (long)n;
}
