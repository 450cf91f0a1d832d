/*
 * Packet decoding: link layer, VLAN tags, LLC/SNAP, IPv4, IPv6 extension
 * headers and the TCP header, with fragments handed to defrag.c.
 *
 * Every header read is preceded by a check against the captured bytes.
 * Two lengths travel along: `cap`, what the capture holds from the current
 * position, and `avail`, what the frame held on the wire (or, past the IP
 * header, what the IP length promises). A header that fits `avail` but not
 * `cap` was cut by the snapshot (TRUNCATED); one that does not even fit
 * `avail` contradicts the frame (MALFORMED).
 *
 * What counts as what:
 *  - MALFORMED: an IP version that does not match the link layer's claim,
 *    IHL < 5, an IP length shorter than its own header, an extension header
 *    or TCP header longer than the IP length allows, TCP data offset < 5, a
 *    second IPv6 fragment header inside a reassembled datagram, and frames
 *    that end (uncut) before a header they announce.
 *  - NOT_TCP: well-formed frames of other ethertypes, LLC other than SNAP
 *    with an Ethernet OUI, address families other than IP, IP protocols
 *    other than TCP, ESP, "no next header", and fragments of non-TCP
 *    datagrams (IPv6: whose fragmentable part does not start with TCP or an
 *    extension header that may lead to it). Those fragments are not
 *    reassembled; they count in not_tcp only.
 *  - UNSUPPORTED: unknown link types and more than MAX_VLAN_TAGS tags.
 */
#include "replay/decode.h"

#include <pcap/dlt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "replay/defrag.h"
#include "replay/proto.h"

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86DD
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88A8
#define ETHERTYPE_QINQ_OLD 0x9100
/* Type/length values up to this are an 802.3 length: LLC follows. */
#define ETHER_MAX_LENGTH 1500
#define MAX_VLAN_TAGS 8

/* Linux cooked capture protocol value for an 802.2 LLC frame. */
#define SLL_PROTO_802_2 0x0004
/* On netlink captures the cooked protocol field is a netlink family. */
#define ARPHRD_NETLINK 824

/* pcap file headers say 101 for raw IP; libpcap maps it to DLT_RAW, but a
 * caller that reads headers itself may pass it on as is. */
#define LINKTYPE_RAW 101

enum link {
    LINK_NONE,
    LINK_ETHER,
    LINK_SLL,
    LINK_SLL2,
    LINK_RAW,
    LINK_IPV4,
    LINK_IPV6,
    LINK_NULL,
    LINK_LOOP,
};

struct owfp_decoder {
    struct owfp_decode_stats stats;
    uint64_t frag_deadline; /* owfp_defrag_deadline(), cached */
    struct owfp_defrag *defrag;
    const uint8_t *frame;   /* the frame being decoded, for pkt.l3_off */
};

/* The part of the frame not decoded yet. */
struct span {
    const uint8_t *p;
    uint32_t cap;   /* captured bytes from p */
    uint32_t avail; /* bytes from p the frame (or the IP length) says exist */
};

static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

static inline void skip(struct span *s, uint32_t n)
{
    s->p += n;
    s->cap -= n;
    s->avail -= n;
}

/* The result for a header of `n` bytes that does not fit s->cap. */
static inline enum owfp_decode_result short_of(const struct span *s, uint32_t n)
{
    return n <= s->avail ? OWFP_DECODE_TRUNCATED : OWFP_DECODE_MALFORMED;
}

static enum link link_kind(int dlt)
{
    switch (dlt) {
    case DLT_EN10MB:
        return LINK_ETHER;
    case DLT_LINUX_SLL:
        return LINK_SLL;
    case DLT_LINUX_SLL2:
        return LINK_SLL2;
    case DLT_RAW:
    case LINKTYPE_RAW:
        return LINK_RAW;
    case DLT_IPV4:
        return LINK_IPV4;
    case DLT_IPV6:
        return LINK_IPV6;
    case DLT_NULL:
        return LINK_NULL;
    case DLT_LOOP:
        return LINK_LOOP;
    default:
        /* DLT_RAW is 12 on most systems and 14 on OpenBSD; files carry
         * either. Checked here, after the platform's own values, so that a
         * platform where one of them means something else keeps it. */
        return dlt == 12 || dlt == 14 ? LINK_RAW : LINK_NONE;
    }
}

int owfp_decode_link_supported(int dlt)
{
    return link_kind(dlt) != LINK_NONE;
}

struct owfp_decoder *owfp_decoder_new(const struct owfp_decoder_config *cfg)
{
    struct owfp_decoder *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->defrag = owfp_defrag_new(cfg, &d->stats);
    if (d->defrag == NULL) {
        free(d);
        return NULL;
    }
    d->frag_deadline = UINT64_MAX;
    return d;
}

void owfp_decoder_free(struct owfp_decoder *d)
{
    if (d == NULL)
        return;
    owfp_defrag_free(d->defrag);
    free(d);
}

const struct owfp_decode_stats *owfp_decoder_stats(const struct owfp_decoder *d)
{
    return &d->stats;
}

/* ---- TCP ---- */

/* `s` starts at the TCP header; s->avail is the segment length the IP
 * layer promises, s->cap what of it was captured. */
static enum owfp_decode_result decode_tcp(struct span s, struct owfp_pkt *out)
{
    if (s.cap < 20)
        return short_of(&s, 20);
    const uint8_t *t = s.p;
    uint32_t hlen = (uint32_t)(t[12] >> 4) * 4;
    if (hlen < 20 || hlen > s.avail)
        return OWFP_DECODE_MALFORMED;
    if (hlen > s.cap)
        return OWFP_DECODE_TRUNCATED;
    out->sport = be16(t);
    out->dport = be16(t + 2);
    out->seq = be32(t + 4);
    out->ack = be32(t + 8);
    out->tcp_flags = t[13] & 0x3F;
    out->window = be16(t + 14);
    out->urgent_ptr = be16(t + 18);
    out->payload = t + hlen;
    out->payload_len = s.cap - hlen;
    out->payload_cut = s.avail - s.cap;
    return OWFP_DECODE_TCP;
}

/* ---- IPv4 ---- */

static void set_addrs4(struct owfp_pkt *out, const uint8_t *ip)
{
    out->ip_version = 4;
    memcpy(out->src, ip + 12, 4);
    memset(out->src + 4, 0, 12);
    memcpy(out->dst, ip + 16, 4);
    memset(out->dst + 4, 0, 12);
}

/* The IP datagram length to believe: the header's, unless it is 0 or more
 * than the frame held on the wire (TSO, GSO, BIG TCP captures), in which
 * case the frame is the datagram. */
static inline uint32_t ip_length(uint32_t field, uint32_t on_wire)
{
    return field == 0 || field > on_wire ? on_wire : field;
}

static void refresh_deadline(struct owfp_decoder *d)
{
    d->frag_deadline = owfp_defrag_deadline(d->defrag);
}

/* Hands a fragment to the defragmenter; true with the whole datagram (in
 * the decoder's buffer) once its last piece arrived. */
static bool add_fragment(struct owfp_decoder *d, const struct owfp_defrag_key *key,
                         const struct owfp_defrag_frag *fr, uint64_t ts_us, struct span *dgram,
                         uint8_t *nh)
{
    const uint8_t *data;
    uint32_t len;
    d->stats.fragments++;
    enum owfp_defrag_result r = owfp_defrag_add(d->defrag, key, fr, ts_us, &data, &len, nh);
    refresh_deadline(d);
    if (r != OWFP_DEFRAG_COMPLETE)
        return false;
    *dgram = (struct span){data, len, len};
    return true;
}

/* A fragment cut by the snapshot can never be rebuilt with real bytes. */
static enum owfp_decode_result fragment_cut(struct owfp_decoder *d)
{
    d->stats.fragments++;
    d->stats.fragments_dropped++;
    return OWFP_DECODE_FRAGMENT;
}

/* `s` starts after the IPv4 header and ends at the IP length. */
static enum owfp_decode_result ipv4_fragment(struct owfp_decoder *d, const uint8_t *ip,
                                             struct span s, uint64_t ts_us, struct owfp_pkt *out)
{
    if (s.cap < s.avail)
        return fragment_cut(d);
    struct owfp_defrag_key key;
    memcpy(key.src, ip + 12, 4);
    memset(key.src + 4, 0, 12);
    memcpy(key.dst, ip + 16, 4);
    memset(key.dst + 4, 0, 12);
    key.id = be16(ip + 4);
    key.version = 4;
    key.proto = PROTO_TCP;
    uint16_t frag = be16(ip + 6);
    struct owfp_defrag_frag fr = {
        .data = s.p,
        .len = s.cap,
        .offset = (uint32_t)(frag & 0x1FFF) * 8,
        .more = (frag & 0x2000) != 0,
        .next_hdr = PROTO_TCP,
    };
    struct span dgram;
    uint8_t nh;
    if (!add_fragment(d, &key, &fr, ts_us, &dgram, &nh))
        return OWFP_DECODE_FRAGMENT;
    set_addrs4(out, ip);
    return decode_tcp(dgram, out);
}

static enum owfp_decode_result decode_ipv4(struct owfp_decoder *d, struct span s, uint64_t ts_us,
                                           struct owfp_pkt *out)
{
    if (s.cap < 20)
        return short_of(&s, 20);
    const uint8_t *ip = s.p;
    out->l3_off = (uint16_t)(ip - d->frame);
    if (ip[0] >> 4 != 4)
        return OWFP_DECODE_MALFORMED;
    uint32_t hlen = (uint32_t)(ip[0] & 0x0F) * 4;
    uint32_t field = be16(ip + 2);
    if (hlen < 20 || (field != 0 && field < hlen))
        return OWFP_DECODE_MALFORMED;
    uint32_t len = ip_length(field, s.avail);
    if (len < hlen)
        return OWFP_DECODE_MALFORMED;
    if (s.cap < hlen)
        return OWFP_DECODE_TRUNCATED;
    if (ip[9] != PROTO_TCP)
        return OWFP_DECODE_NOT_TCP;

    struct span l4 = {ip + hlen, min_u32(s.cap, len) - hlen, len - hlen};
    if ((be16(ip + 6) & 0x3FFF) != 0) /* MF or a fragment offset */
        return ipv4_fragment(d, ip, l4, ts_us, out);
    set_addrs4(out, ip);
    return decode_tcp(l4, out);
}

/* ---- IPv6 ---- */

static void set_addrs6(struct owfp_pkt *out, const uint8_t *ip6)
{
    out->ip_version = 6;
    memcpy(out->src, ip6 + 8, 16);
    memcpy(out->dst, ip6 + 24, 16);
}

/* Whether a fragmented datagram whose fragmentable part starts with `nh`
 * may carry TCP. */
static bool may_lead_to_tcp(uint8_t nh)
{
    return nh == PROTO_TCP || nh == IP6_HOPOPTS || nh == IP6_ROUTING || nh == IP6_DSTOPTS ||
           nh == IP6_AH;
}

static enum owfp_decode_result ipv6_chain(struct owfp_decoder *d, const uint8_t *ip6, uint8_t nh,
                                          struct span s, bool in_fragment, uint64_t ts_us,
                                          struct owfp_pkt *out);

/* `s` starts at the fragment header and ends at the IPv6 payload length. */
static enum owfp_decode_result ipv6_fragment(struct owfp_decoder *d, const uint8_t *ip6,
                                             struct span s, uint64_t ts_us, struct owfp_pkt *out)
{
    uint8_t first = s.p[0];
    uint16_t off_flags = be16(s.p + 2);
    uint32_t id = be32(s.p + 4);
    skip(&s, 8);
    /* An atomic fragment (RFC 6946) is a whole datagram. */
    if ((off_flags & 0xFFF9) == 0)
        return ipv6_chain(d, ip6, first, s, true, ts_us, out);
    if (!may_lead_to_tcp(first))
        return OWFP_DECODE_NOT_TCP;
    if (s.cap < s.avail)
        return fragment_cut(d);

    struct owfp_defrag_key key;
    memcpy(key.src, ip6 + 8, 16);
    memcpy(key.dst, ip6 + 24, 16);
    key.id = id;
    key.version = 6;
    key.proto = 0;
    struct owfp_defrag_frag fr = {
        .data = s.p,
        .len = s.cap,
        .offset = off_flags & 0xFFF8,
        .more = (off_flags & 1) != 0,
        .next_hdr = first,
    };
    struct span dgram;
    uint8_t nh;
    if (!add_fragment(d, &key, &fr, ts_us, &dgram, &nh))
        return OWFP_DECODE_FRAGMENT;
    return ipv6_chain(d, ip6, nh, dgram, true, ts_us, out);
}

/* Walks the extension headers from `nh` at s.p. `in_fragment`: the bytes
 * are already a reassembled (or atomic) fragment, so another fragment
 * header cannot be right. */
static enum owfp_decode_result ipv6_chain(struct owfp_decoder *d, const uint8_t *ip6, uint8_t nh,
                                          struct span s, bool in_fragment, uint64_t ts_us,
                                          struct owfp_pkt *out)
{
    for (;;) {
        uint32_t hlen;
        switch (nh) {
        case PROTO_TCP:
            set_addrs6(out, ip6);
            return decode_tcp(s, out);
        case IP6_HOPOPTS:
        case IP6_ROUTING:
        case IP6_DSTOPTS:
            if (s.cap < 2)
                return short_of(&s, 2);
            hlen = ((uint32_t)s.p[1] + 1) * 8;
            break;
        case IP6_AH:
            if (s.cap < 2)
                return short_of(&s, 2);
            hlen = ((uint32_t)s.p[1] + 2) * 4;
            break;
        case IP6_FRAGMENT:
            if (in_fragment)
                return OWFP_DECODE_MALFORMED;
            if (s.cap < 8)
                return short_of(&s, 8);
            return ipv6_fragment(d, ip6, s, ts_us, out);
        default: /* ESP, no next header, UDP, ICMPv6, ... */
            return OWFP_DECODE_NOT_TCP;
        }
        if (hlen > s.avail)
            return OWFP_DECODE_MALFORMED;
        if (hlen > s.cap)
            return OWFP_DECODE_TRUNCATED;
        nh = s.p[0];
        skip(&s, hlen);
    }
}

static enum owfp_decode_result decode_ipv6(struct owfp_decoder *d, struct span s, uint64_t ts_us,
                                           struct owfp_pkt *out)
{
    if (s.cap < 40)
        return short_of(&s, 40);
    const uint8_t *ip6 = s.p;
    out->l3_off = (uint16_t)(ip6 - d->frame);
    if (ip6[0] >> 4 != 6)
        return OWFP_DECODE_MALFORMED;
    /* A payload length of 0 is either a jumbogram (RFC 2675) or a BIG TCP
     * capture that left the jumbo option out; either way the frame says how
     * long the datagram is. */
    uint32_t len = ip_length(be16(ip6 + 4), s.avail - 40);
    struct span payload = {ip6 + 40, min_u32(s.cap - 40, len), len};
    return ipv6_chain(d, ip6, ip6[6], payload, false, ts_us, out);
}

/* ---- link layers ---- */

static enum owfp_decode_result decode_by_version(struct owfp_decoder *d, struct span s,
                                                 uint64_t ts_us, struct owfp_pkt *out)
{
    if (s.cap < 1)
        return short_of(&s, 1);
    switch (s.p[0] >> 4) {
    case 4:
        return decode_ipv4(d, s, ts_us, out);
    case 6:
        return decode_ipv6(d, s, ts_us, out);
    default:
        return OWFP_DECODE_MALFORMED;
    }
}

static enum owfp_decode_result decode_network(struct owfp_decoder *d, uint16_t type,
                                              struct span s, uint64_t ts_us, struct owfp_pkt *out)
{
    switch (type) {
    case ETHERTYPE_IPV4:
        return decode_ipv4(d, s, ts_us, out);
    case ETHERTYPE_IPV6:
        return decode_ipv6(d, s, ts_us, out);
    default:
        return OWFP_DECODE_NOT_TCP;
    }
}

/* An 802.2 LLC header: only SNAP with an Ethernet-compatible OUI (RFC 1042
 * 00-00-00, or 802.1H 00-00-F8) carries an ethertype we can follow. */
static enum owfp_decode_result decode_llc(struct owfp_decoder *d, struct span s, uint64_t ts_us,
                                          struct owfp_pkt *out)
{
    if (s.cap < 3)
        return short_of(&s, 3);
    const uint8_t *l = s.p;
    /* The low bit of the SSAP is command/response, not part of the SAP. */
    if (l[0] != 0xAA || (l[1] & 0xFE) != 0xAA || l[2] != 0x03)
        return OWFP_DECODE_NOT_TCP;
    if (s.cap < 8)
        return short_of(&s, 8);
    if (l[3] != 0 || l[4] != 0 || (l[5] != 0 && l[5] != 0xF8))
        return OWFP_DECODE_NOT_TCP;
    uint16_t type = be16(l + 6);
    skip(&s, 8);
    return decode_network(d, type, s, ts_us, out);
}

static inline bool is_vlan_tpid(uint16_t type)
{
    return type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ || type == ETHERTYPE_QINQ_OLD;
}

/* What follows an Ethernet type/length field: VLAN tags, then an 802.3
 * length with LLC, or the ethertype of the network layer. */
static enum owfp_decode_result after_ethertype(struct owfp_decoder *d, uint16_t type,
                                               struct span s, uint64_t ts_us,
                                               struct owfp_pkt *out)
{
    for (unsigned tags = 0; is_vlan_tpid(type); tags++) {
        if (tags == MAX_VLAN_TAGS)
            return OWFP_DECODE_UNSUPPORTED;
        if (s.cap < 4)
            return short_of(&s, 4);
        type = be16(s.p + 2);
        skip(&s, 4);
    }
    if (type <= ETHER_MAX_LENGTH)
        return decode_llc(d, s, ts_us, out);
    return decode_network(d, type, s, ts_us, out);
}

static enum owfp_decode_result decode_ether(struct owfp_decoder *d, struct span s, uint64_t ts_us,
                                            struct owfp_pkt *out)
{
    if (s.cap < 14)
        return short_of(&s, 14);
    uint16_t type = be16(s.p + 12);
    skip(&s, 14);
    return after_ethertype(d, type, s, ts_us, out);
}

/* Linux cooked captures: the protocol is an ethertype, except for small
 * values that name non-Ethernet framings; of those only 802.2 LLC can
 * carry IP. */
static enum owfp_decode_result decode_sll_proto(struct owfp_decoder *d, uint16_t hatype,
                                                uint16_t proto, struct span s, uint64_t ts_us,
                                                struct owfp_pkt *out)
{
    if (hatype == ARPHRD_NETLINK)
        return OWFP_DECODE_NOT_TCP;
    if (proto == SLL_PROTO_802_2)
        return decode_llc(d, s, ts_us, out);
    if (proto <= ETHER_MAX_LENGTH)
        return OWFP_DECODE_NOT_TCP;
    return after_ethertype(d, proto, s, ts_us, out);
}

/* DLT_NULL writes the address family in the capturing host's byte order;
 * families are small numbers, so the order that gives one is right. */
static uint32_t null_family(const uint8_t *p)
{
    uint32_t v = le32(p);
    return v > 0xFFFF ? be32(p) : v;
}

static enum owfp_decode_result decode_family(struct owfp_decoder *d, uint32_t family,
                                             struct span s, uint64_t ts_us, struct owfp_pkt *out)
{
    switch (family) {
    case 2: /* AF_INET everywhere */
        return decode_ipv4(d, s, ts_us, out);
    case 10: /* AF_INET6: Linux */
    case 24: /* NetBSD, OpenBSD, BSD/OS */
    case 28: /* FreeBSD, DragonFly */
    case 30: /* macOS */
        return decode_ipv6(d, s, ts_us, out);
    default:
        return OWFP_DECODE_NOT_TCP;
    }
}

static enum owfp_decode_result decode_link(struct owfp_decoder *d, int dlt, struct span s,
                                           uint64_t ts_us, struct owfp_pkt *out)
{
    switch (link_kind(dlt)) {
    case LINK_ETHER:
        return decode_ether(d, s, ts_us, out);
    case LINK_SLL:
        if (s.cap < 16)
            return short_of(&s, 16);
        {
            uint16_t hatype = be16(s.p + 2), proto = be16(s.p + 14);
            skip(&s, 16);
            return decode_sll_proto(d, hatype, proto, s, ts_us, out);
        }
    case LINK_SLL2:
        if (s.cap < 20)
            return short_of(&s, 20);
        {
            uint16_t hatype = be16(s.p + 8), proto = be16(s.p);
            skip(&s, 20);
            return decode_sll_proto(d, hatype, proto, s, ts_us, out);
        }
    case LINK_RAW:
        return decode_by_version(d, s, ts_us, out);
    case LINK_IPV4:
        return decode_ipv4(d, s, ts_us, out);
    case LINK_IPV6:
        return decode_ipv6(d, s, ts_us, out);
    case LINK_NULL:
    case LINK_LOOP:
        if (s.cap < 4)
            return short_of(&s, 4);
        {
            uint32_t family = dlt == DLT_LOOP ? be32(s.p) : null_family(s.p);
            skip(&s, 4);
            return decode_family(d, family, s, ts_us, out);
        }
    case LINK_NONE:
        break;
    }
    return OWFP_DECODE_UNSUPPORTED;
}

static void count(struct owfp_decode_stats *st, enum owfp_decode_result r,
                  const struct owfp_pkt *out)
{
    st->frames++;
    switch (r) {
    case OWFP_DECODE_TCP:
        st->tcp++;
        if (out->payload_cut != 0)
            st->payload_cut++;
        break;
    case OWFP_DECODE_NOT_TCP:
        st->not_tcp++;
        break;
    case OWFP_DECODE_TRUNCATED:
        st->truncated++;
        break;
    case OWFP_DECODE_MALFORMED:
        st->malformed++;
        break;
    case OWFP_DECODE_UNSUPPORTED:
        st->unsupported++;
        break;
    case OWFP_DECODE_FRAGMENT: /* counted where it was taken in */
        break;
    }
}

enum owfp_decode_result owfp_decode(struct owfp_decoder *d, int dlt, const uint8_t *frame,
                                    uint32_t caplen, uint32_t wirelen, uint64_t ts_us,
                                    struct owfp_pkt *out)
{
    if (ts_us >= d->frag_deadline) {
        owfp_defrag_expire(d->defrag, ts_us);
        refresh_deadline(d);
    }
    /* A wire length below the captured length is a broken header; the
     * captured bytes are real, so believe them. */
    struct span s = {frame, caplen, wirelen < caplen ? caplen : wirelen};
    d->frame = frame;
    enum owfp_decode_result r = decode_link(d, dlt, s, ts_us, out);
    if (r == OWFP_DECODE_TCP)
        out->ts_us = ts_us;
    count(&d->stats, r, out);
    return r;
}

/* ---- looking ahead ---- */

/* The IP header at `ip` (`cap` bytes captured from it), for owfp_decode_peek. */
static bool peek_ip(const uint8_t *ip, uint32_t cap, struct owfp_pkt *out)
{
    const uint8_t *tcp;
    if (cap >= 20 && ip[0] >> 4 == 4) {
        uint32_t ihl = (uint32_t)(ip[0] & 0x0F) * 4;
        /* Fragments (MF or an offset) are the decoder's to reassemble. */
        if (ihl < 20 || ip[9] != PROTO_TCP || (be16(ip + 6) & 0x3FFF) || cap < ihl + 4)
            return false;
        set_addrs4(out, ip);
        tcp = ip + ihl;
    } else if (cap >= 44 && ip[0] >> 4 == 6) {
        if (ip[6] != PROTO_TCP)
            return false; /* extension headers: not worth walking for a hint */
        out->ip_version = 6;
        memcpy(out->src, ip + 8, 16);
        memcpy(out->dst, ip + 24, 16);
        tcp = ip + 40;
    } else {
        return false;
    }
    out->sport = be16(tcp);
    out->dport = be16(tcp + 2);
    return true;
}

bool owfp_decode_peek(int dlt, const uint8_t *frame, uint32_t caplen, struct owfp_pkt *out)
{
    enum link k = link_kind(dlt);
    if (k == LINK_RAW || k == LINK_IPV4 || k == LINK_IPV6)
        return peek_ip(frame, caplen, out);
    if (k != LINK_ETHER || caplen < 14)
        return false;
    uint32_t off = 14;
    uint16_t type = be16(frame + 12);
    for (unsigned tags = 0; is_vlan_tpid(type) && tags < 2; tags++) {
        if (caplen < off + 4)
            return false;
        type = be16(frame + off + 2);
        off += 4;
    }
    if (type != ETHERTYPE_IPV4 && type != ETHERTYPE_IPV6)
        return false;
    return peek_ip(frame + off, caplen - off, out);
}
