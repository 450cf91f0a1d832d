/* --write-pcap's per-connection state (pcap_conn.h). */
#include "replay/pcap_conn.h"

#include <stdlib.h>
#include <string.h>

#include "replay/pcap_build.h"

/* The smallest segment any IPv4 host accepts (RFC 1122), and what an
 * Ethernet sender usually uses. */
#define MIN_SEG 536
#define DEFAULT_SEG 1460

struct owfp_pcap_conn *owfp_pcap_conn_new(void)
{
    struct owfp_pcap_conn *pc = calloc(1, sizeof(*pc));
    if (!pc)
        return NULL;
    owfp_seqmap_init(&pc->s[0].map);
    owfp_seqmap_init(&pc->s[1].map);
    return pc;
}

int owfp_pcap_conn_side(const struct owfp_conn *c, const struct owfp_pkt *p)
{
    if (p->ip_version != c->key.ip_version)
        return -1;
    for (int side = 0; side < 2; side++) {
        if (p->sport == owfp_conn_port(c, side) && p->dport == owfp_conn_port(c, 1 - side) &&
            memcmp(p->src, owfp_conn_addr(c, side), 16) == 0 &&
            memcmp(p->dst, owfp_conn_addr(c, 1 - side), 16) == 0)
            return side;
    }
    return -1;
}

/* Where `side`'s stream (and output) starts. Before the side sent
 * anything, the peer's ACK is the best guess. */
static bool first_seq(const struct owfp_conn *c, int side, uint32_t *seq)
{
    const struct owfp_conn_dir *d = &c->d[side], *o = &c->d[1 - side];
    if (d->started)
        *seq = d->r.base_seq;
    else if (d->isn_known)
        *seq = d->isn + 1;
    else if (o->ack_known)
        *seq = o->last_ack;
    else
        return false;
    return true;
}

bool owfp_pcap_next_seq(const struct owfp_conn *c, const struct owfp_pcap_conn *pc, int side,
                        uint32_t *seq)
{
    const struct owfp_pcap_side *ps = &pc->s[side];
    if (!first_seq(c, side, seq))
        return false;
    *seq += (uint32_t)(ps->out + ps->fin);
    return true;
}

/* a - b for sequence numbers within 2 GiB of each other. */
static int64_t seq_diff(uint32_t a, uint32_t b)
{
    uint32_t d = a - b;
    return d < UINT32_C(0x80000000) ? (int64_t)d : (int64_t)d - INT64_C(0x100000000);
}

uint32_t owfp_pcap_to_out(const struct owfp_conn *c, const struct owfp_pcap_conn *pc, int side,
                          uint32_t seq)
{
    const struct owfp_conn_dir *d = &c->d[side];
    if (!d->started)
        return seq;
    /* Relative to the reassembly's next byte: 64-bit stream offsets stay
     * right past 4 GiB, where sequence numbers wrap. */
    int64_t in = (int64_t)d->r.next + seq_diff(seq, d->r.base_seq + (uint32_t)d->r.next);
    if (in < 0)
        return seq;
    return d->r.base_seq + (uint32_t)owfp_seqmap_out(&pc->s[side].map, (uint64_t)in);
}

bool owfp_pcap_ack_of(const struct owfp_conn *c, const struct owfp_pcap_conn *pc, int side,
                      uint32_t *ack)
{
    const struct owfp_conn_dir *d = &c->d[side];
    if (!d->ack_known)
        return false;
    *ack = owfp_pcap_to_out(c, pc, 1 - side, d->last_ack);
    return true;
}

void owfp_pcap_note(const struct owfp_conn *c, struct owfp_pcap_conn *pc, int side)
{
    const struct owfp_conn_dir *d = &c->d[side];
    struct owfp_pcap_side *ps = &pc->s[side];
    owfp_seqmap_note(&ps->map, d->started ? d->r.next : 0, ps->out);
}

void owfp_pcap_note_fin(const struct owfp_conn *c, struct owfp_pcap_conn *pc, int side)
{
    const struct owfp_conn_dir *d = &c->d[side];
    struct owfp_pcap_side *ps = &pc->s[side];
    uint64_t fin = 0;
    if (d->started)
        fin = d->r.fin_off != UINT64_MAX && d->r.fin_off > d->r.next ? d->r.fin_off : d->r.next;
    /* The FIN takes one sequence number in both streams. */
    owfp_seqmap_note(&ps->map, fin + 1, ps->out + 1);
}

size_t owfp_pcap_seg_size(const struct owfp_pcap_side *ps, uint8_t ip_version)
{
    uint64_t n = ps->max_seen ? ps->max_seen : DEFAULT_SEG;
    if (n < MIN_SEG)
        n = MIN_SEG;
    size_t max = owfp_build_max_payload(ip_version);
    return n < max ? (size_t)n : max;
}
