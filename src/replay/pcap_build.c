/* Frames for rebuilt TCP segments (pcap_build.h). */
#include "replay/pcap_build.h"

#include <pcap/dlt.h>
#include <string.h>

#include "replay/proto.h"

#define IPV4_HDR 20
#define IPV6_HDR 40
#define TCP_HDR 20
#define IPV4_DF 0x4000
#define ETHER_MAX_LENGTH 1500

static inline void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v);
}

size_t owfp_build_max_payload(uint8_t ip_version)
{
    return OWFP_BUILD_IP_MAX - (ip_version == 4 ? IPV4_HDR : IPV6_HDR) - TCP_HDR;
}

/* ---- checksums (RFC 1071) ---- */

/* Adds `n` bytes as big-endian 16-bit words; an odd last byte is padded
 * with zero, so only the last piece of a sum may be odd. */
static uint64_t sum_add(uint64_t sum, const uint8_t *p, size_t n)
{
    for (; n >= 2; p += 2, n -= 2)
        sum += be16(p);
    if (n)
        sum += (uint32_t)p[0] << 8;
    return sum;
}

static uint16_t sum_fold(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

/* ---- headers ---- */

/* An 802.3 frame says its own length after the addresses (and VLAN tags):
 * it must be the new frame's, not the captured one's. */
static void fix_8023_length(uint8_t *link, size_t link_len, size_t ip_len)
{
    size_t at = 12;
    while (at + 4 <= link_len && (be16(link + at) == 0x8100 || be16(link + at) == 0x88A8 ||
                                  be16(link + at) == 0x9100))
        at += 4;
    if (at + 2 > link_len || be16(link + at) > ETHER_MAX_LENGTH)
        return;
    size_t len = link_len - at - 2 + ip_len;
    put16(link + at, len > ETHER_MAX_LENGTH ? ETHER_MAX_LENGTH : (uint32_t)len);
}

static size_t ipv4_header(uint8_t *ip, const struct owfp_seg_tmpl *t, size_t tcp_len)
{
    ip[0] = 0x45;
    ip[1] = t->tos;
    put16(ip + 2, (uint32_t)(IPV4_HDR + tcp_len));
    put16(ip + 4, t->ip_id);
    put16(ip + 6, IPV4_DF);
    ip[8] = t->ttl;
    ip[9] = PROTO_TCP;
    put16(ip + 10, 0);
    memcpy(ip + 12, t->src, 4);
    memcpy(ip + 16, t->dst, 4);
    put16(ip + 10, sum_fold(sum_add(0, ip, IPV4_HDR)));
    return IPV4_HDR;
}

static size_t ipv6_header(uint8_t *ip, const struct owfp_seg_tmpl *t, size_t tcp_len)
{
    put32(ip, 6u << 28 | (uint32_t)t->tos << 20 | (t->flow_label & 0xFFFFF));
    put16(ip + 4, (uint32_t)tcp_len);
    ip[6] = PROTO_TCP;
    ip[7] = t->ttl;
    memcpy(ip + 8, t->src, 16);
    memcpy(ip + 24, t->dst, 16);
    return IPV6_HDR;
}

/* The pseudo-header's part of the TCP checksum (RFC 793, RFC 8200). */
static uint64_t pseudo_sum(const struct owfp_seg_tmpl *t, size_t tcp_len)
{
    size_t alen = t->ip_version == 4 ? 4 : 16;
    uint8_t tail[8] = {0};
    put32(tail, (uint32_t)tcp_len);
    tail[7] = PROTO_TCP;
    uint64_t sum = sum_add(sum_add(0, t->src, alen), t->dst, alen);
    return sum_add(sum, tail, sizeof(tail));
}

static void tcp_segment(uint8_t *tcp, const struct owfp_seg_tmpl *t,
                        const struct owfp_build_seg *s)
{
    size_t hlen = TCP_HDR + s->opts_len;
    put16(tcp, t->sport);
    put16(tcp + 2, t->dport);
    put32(tcp + 4, s->seq);
    put32(tcp + 8, s->ack);
    tcp[12] = (uint8_t)((hlen / 4) << 4);
    tcp[13] = s->flags;
    put16(tcp + 14, t->window);
    put16(tcp + 16, 0);
    put16(tcp + 18, 0);
    if (s->opts_len)
        memcpy(tcp + TCP_HDR, s->opts, s->opts_len);
    if (s->len)
        memcpy(tcp + hlen, s->payload, s->len);
    uint64_t sum = sum_add(pseudo_sum(t, hlen + s->len), tcp, hlen + s->len);
    put16(tcp + 16, sum_fold(sum));
}

size_t owfp_build_segment(uint8_t *buf, int dlt, const struct owfp_seg_tmpl *t,
                          const struct owfp_build_seg *s)
{
    size_t tcp_len = TCP_HDR + s->opts_len + s->len;
    size_t n = t->link_len;
    memcpy(buf, t->link, n);
    n += t->ip_version == 4 ? ipv4_header(buf + n, t, tcp_len) : ipv6_header(buf + n, t, tcp_len);
    if (dlt == DLT_EN10MB)
        fix_8023_length(buf, t->link_len, n - t->link_len + tcp_len);
    tcp_segment(buf + n, t, s);
    return n + tcp_len;
}
