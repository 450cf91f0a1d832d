/*
 * What a rebuilt TCP segment borrows from a captured frame of its
 * direction: the link-layer header byte for byte, and the IP and TCP
 * fields a fresh header keeps (addresses, ports, TTL or hop limit, traffic
 * class, flow label, IPv4 id, window). IP options, IPv6 extension headers
 * and TCP options are not part of it.
 */
#ifndef OPENWFP_REPLAY_PCAP_TMPL_H
#define OPENWFP_REPLAY_PCAP_TMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replay/decode.h"

/* Ethernet with 8 VLAN tags and LLC/SNAP needs 54. */
#define OWFP_TMPL_LINK_MAX 64

struct owfp_seg_tmpl {
    uint8_t link[OWFP_TMPL_LINK_MAX];
    uint16_t link_len;
    uint8_t ip_version;
    uint8_t tos;         /* IPv4 type of service, IPv6 traffic class */
    uint8_t ttl;         /* IPv4 TTL, IPv6 hop limit */
    uint32_t flow_label; /* IPv6 */
    uint16_t ip_id;      /* IPv4 */
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    uint16_t window;
};

/* From a frame owfp_decode() turned into `p`; false when the link header is
 * longer than OWFP_TMPL_LINK_MAX or the IP header is not in the frame. */
bool owfp_tmpl_from_frame(struct owfp_seg_tmpl *t, const uint8_t *frame, uint32_t caplen,
                          const struct owfp_pkt *p);

/* `from` turned around, for a direction no frame showed: addresses and
 * ports swapped, and in the link header what says who sent it (Ethernet
 * addresses, the cooked capture's packet type). */
void owfp_tmpl_mirror(struct owfp_seg_tmpl *t, const struct owfp_seg_tmpl *from, int dlt);

/* Whether the frame holds the TCP header `p` was decoded from; not when
 * `p` is a datagram rebuilt from fragments (the frame is the last one). */
bool owfp_tmpl_holds_tcp(const uint8_t *frame, uint32_t caplen, const struct owfp_pkt *p);

/* The TCP options of the frame's own TCP header: their length (a multiple
 * of 4), with *opts pointing into `frame`; 0 when the frame does not hold
 * the header. */
size_t owfp_tmpl_tcp_options(const uint8_t *frame, uint32_t caplen, const struct owfp_pkt *p,
                             const uint8_t **opts);

#endif
