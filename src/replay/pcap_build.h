/*
 * A new frame for one TCP segment: the template's link-layer header, a
 * fresh IPv4 header (20 bytes, DF) or IPv6 header (40 bytes, no extension
 * headers), a TCP header with the given options, the payload, and correct
 * IP and TCP checksums.
 */
#ifndef OPENWFP_REPLAY_PCAP_BUILD_H
#define OPENWFP_REPLAY_PCAP_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "replay/pcap_tmpl.h"

/* The datagram, headers included, stays within what an IPv4 total length
 * or (without a jumbo option) an IPv6 payload length can say. */
#define OWFP_BUILD_IP_MAX 65535u
/* Room for any frame owfp_build_segment() writes. */
#define OWFP_BUILD_FRAME_MAX (OWFP_TMPL_LINK_MAX + OWFP_BUILD_IP_MAX)

struct owfp_build_seg {
    uint32_t seq, ack;
    uint8_t flags;           /* OWFP_TCP_* */
    const uint8_t *opts;     /* TCP options, a multiple of 4 bytes, at most 40 */
    size_t opts_len;
    const uint8_t *payload;
    size_t len;
};

/* The most payload one segment with no options may carry. */
size_t owfp_build_max_payload(uint8_t ip_version);

/* Writes the frame into `buf` (OWFP_BUILD_FRAME_MAX bytes) and returns its
 * length. The IPv4 id is t->ip_id as it is. The payload must fit
 * owfp_build_max_payload() less the options. */
size_t owfp_build_segment(uint8_t *buf, int dlt, const struct owfp_seg_tmpl *t,
                          const struct owfp_build_seg *s);

#endif
