/* Segment templates read from captured frames (pcap_tmpl.h). */
#include "replay/pcap_tmpl.h"

#include <pcap/dlt.h>
#include <string.h>

#include "replay/proto.h"

/* More IPv6 extension headers than this in one frame is not a real frame. */
#define MAX_EXT_HEADERS 16

#define SLL_PKTTYPE_HOST 0
#define SLL_PKTTYPE_OUTGOING 4

static void ip_fields(struct owfp_seg_tmpl *t, const uint8_t *ip)
{
    if (t->ip_version == 4) {
        t->tos = ip[1];
        t->ip_id = be16(ip + 4);
        t->ttl = ip[8];
        t->flow_label = 0;
        return;
    }
    t->tos = (uint8_t)((ip[0] & 0x0F) << 4 | ip[1] >> 4);
    t->flow_label = be32(ip) & 0xFFFFF;
    t->ttl = ip[7];
    t->ip_id = 0;
}

bool owfp_tmpl_from_frame(struct owfp_seg_tmpl *t, const uint8_t *frame, uint32_t caplen,
                          const struct owfp_pkt *p)
{
    uint32_t ip_len = p->ip_version == 4 ? 20 : 40;
    if (p->l3_off > OWFP_TMPL_LINK_MAX || (uint32_t)p->l3_off + ip_len > caplen)
        return false;
    memcpy(t->link, frame, p->l3_off);
    t->link_len = p->l3_off;
    t->ip_version = p->ip_version;
    ip_fields(t, frame + p->l3_off);
    memcpy(t->src, p->src, 16);
    memcpy(t->dst, p->dst, 16);
    t->sport = p->sport;
    t->dport = p->dport;
    t->window = p->window;
    return true;
}

static void swap_bytes(uint8_t *a, uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t x = a[i];
        a[i] = b[i];
        b[i] = x;
    }
}

/* The cooked capture's packet type: received by us <-> sent by us. */
static void flip_pkttype(uint8_t *type)
{
    if (*type == SLL_PKTTYPE_HOST)
        *type = SLL_PKTTYPE_OUTGOING;
    else if (*type == SLL_PKTTYPE_OUTGOING)
        *type = SLL_PKTTYPE_HOST;
}

static void mirror_link(struct owfp_seg_tmpl *t, int dlt)
{
    if (dlt == DLT_EN10MB && t->link_len >= 12)
        swap_bytes(t->link, t->link + 6, 6);
    else if (dlt == DLT_LINUX_SLL && t->link_len >= 16)
        flip_pkttype(&t->link[1]);
    else if (dlt == DLT_LINUX_SLL2 && t->link_len >= 20)
        flip_pkttype(&t->link[10]);
}

void owfp_tmpl_mirror(struct owfp_seg_tmpl *t, const struct owfp_seg_tmpl *from, int dlt)
{
    *t = *from;
    memcpy(t->src, from->dst, 16);
    memcpy(t->dst, from->src, 16);
    t->sport = from->dport;
    t->dport = from->sport;
    mirror_link(t, dlt);
}

/* The offset of the TCP header after the IPv6 header at `off`, or 0 when
 * the frame does not hold it (a fragment, a cut header). */
static uint32_t ipv6_tcp_offset(const uint8_t *f, uint32_t caplen, uint32_t off)
{
    uint8_t nh = f[off + 6];
    off += 40;
    for (int i = 0; i < MAX_EXT_HEADERS; i++) {
        if (nh == PROTO_TCP)
            return off;
        if (off + 8 > caplen)
            return 0;
        uint8_t len = f[off + 1];
        switch (nh) {
        case IP6_HOPOPTS:
        case IP6_ROUTING:
        case IP6_DSTOPTS:
            nh = f[off];
            off += ((uint32_t)len + 1) * 8;
            break;
        case IP6_AH:
            nh = f[off];
            off += ((uint32_t)len + 2) * 4;
            break;
        case IP6_FRAGMENT:
            /* Only an atomic fragment holds its whole datagram. */
            if ((be16(f + off + 2) & 0xFFF9) != 0)
                return 0;
            nh = f[off];
            off += 8;
            break;
        default:
            return 0;
        }
    }
    return 0;
}

static uint32_t tcp_offset(const uint8_t *f, uint32_t caplen, const struct owfp_pkt *p)
{
    uint32_t off = p->l3_off;
    if (p->ip_version == 6)
        return off + 40 <= caplen ? ipv6_tcp_offset(f, caplen, off) : 0;
    if (off + 20 > caplen || (be16(f + off + 6) & 0x3FFF) != 0)
        return 0;
    return off + (uint32_t)(f[off] & 0x0F) * 4;
}

/* The frame's own TCP header, or NULL; *hlen its length. */
static const uint8_t *own_tcp(const uint8_t *frame, uint32_t caplen, const struct owfp_pkt *p,
                              uint32_t *hlen)
{
    uint32_t off = tcp_offset(frame, caplen, p);
    if (off == 0 || off + 20 > caplen)
        return NULL;
    const uint8_t *t = frame + off;
    /* The header the decoder read has these fields: anything else is not it. */
    if (be16(t) != p->sport || be16(t + 2) != p->dport || be32(t + 4) != p->seq)
        return NULL;
    *hlen = (uint32_t)(t[12] >> 4) * 4;
    if (*hlen < 20 || off + *hlen > caplen)
        return NULL;
    return t;
}

bool owfp_tmpl_holds_tcp(const uint8_t *frame, uint32_t caplen, const struct owfp_pkt *p)
{
    uint32_t hlen;
    return own_tcp(frame, caplen, p, &hlen) != NULL;
}

size_t owfp_tmpl_tcp_options(const uint8_t *frame, uint32_t caplen, const struct owfp_pkt *p,
                             const uint8_t **opts)
{
    uint32_t hlen;
    const uint8_t *t = own_tcp(frame, caplen, p, &hlen);
    if (!t)
        return 0;
    *opts = t + 20;
    return hlen - 20;
}
