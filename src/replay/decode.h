/*
 * Packet decoding for replay: one captured frame in, one TCP segment out.
 *
 * No I/O: the caller hands each frame with its link type (a DLT_* value as
 * pcap_datalink() returns it). IPv4 and IPv6 fragments are kept inside the
 * decoder until their datagram is complete; the completed datagram then
 * decodes like any frame. A decoder is not thread-safe: one per thread.
 *
 * Lengths: a frame cut by the snapshot length (caplen < wirelen) yields the
 * captured part of the payload plus a count of the bytes cut; an IP length
 * of 0 or larger than an uncut frame (TSO, GSO, BIG TCP captures) is not an
 * error: the frame is trusted. In general the IP length is believed up to
 * what the frame held on the wire (wirelen), and bytes past it (Ethernet
 * padding, trailers) are never payload. The decoder never reads past
 * `caplen`.
 *
 * Fragments (see defrag.h for the details): only datagrams that can carry
 * TCP are reassembled (IPv4 protocol 6; IPv6 fragments whose fragmentable
 * part starts with TCP or an extension header); other fragments are
 * NOT_TCP. Overlapping bytes: the first copy wins. Fragments cut by the
 * snapshot, invalid, inconsistent, timed out or over a limit are dropped
 * and counted in fragments_dropped; their frames still answer FRAGMENT.
 */
#ifndef OPENWFP_REPLAY_DECODE_H
#define OPENWFP_REPLAY_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OWFP_TCP_FIN 0x01
#define OWFP_TCP_SYN 0x02
#define OWFP_TCP_RST 0x04
#define OWFP_TCP_PSH 0x08
#define OWFP_TCP_ACK 0x10
#define OWFP_TCP_URG 0x20

/* One decoded TCP segment. Addresses in network byte order (IPv4 in the
 * first 4 bytes, the other 12 zero); ports and numbers in host order.
 * Filled only when owfp_decode() answers OWFP_DECODE_TCP. */
struct owfp_pkt {
    uint8_t ip_version; /* 4 or 6 */
    uint8_t tcp_flags;  /* OWFP_TCP_* */
    uint16_t sport, dport;
    uint8_t src[16], dst[16];
    uint32_t seq, ack;
    uint16_t window;
    uint16_t urgent_ptr;
    /* The captured payload. Borrowed: it points into the frame, or into the
     * decoder's reassembled datagram; valid until the next owfp_decode(). */
    const uint8_t *payload;
    uint32_t payload_len;
    /* Payload bytes the headers promise beyond `payload` that the capture
     * cut off (snapshot length). They follow `payload` in sequence space.
     * Always 0 for a reassembled datagram. */
    uint32_t payload_cut;
    uint64_t ts_us; /* capture time, microseconds */
    /* Where the IPv4/IPv6 header starts in the frame given to owfp_decode()
     * (for a datagram rebuilt from fragments: in the last fragment's frame),
     * so that a writer can reuse the link-layer header in front of it. */
    uint16_t l3_off;
};

enum owfp_decode_result {
    OWFP_DECODE_TCP = 0,      /* *out holds a segment */
    OWFP_DECODE_NOT_TCP,      /* well formed, not TCP (ARP, UDP, ICMP, ...) */
    OWFP_DECODE_FRAGMENT,     /* an IP fragment, kept until its datagram completes
                                 (or dropped: see fragments_dropped) */
    OWFP_DECODE_TRUNCATED,    /* cut by the snapshot before the end of the TCP header */
    OWFP_DECODE_MALFORMED,    /* headers that contradict themselves or the frame */
    OWFP_DECODE_UNSUPPORTED,  /* a link type or encapsulation we do not decode
                                 (also: more than 8 stacked VLAN tags) */
};

struct owfp_decode_stats {
    uint64_t frames;
    uint64_t tcp;
    uint64_t not_tcp;
    uint64_t truncated;       /* TRUNCATED results */
    uint64_t payload_cut;     /* TCP segments whose payload the capture cut */
    uint64_t malformed;
    uint64_t unsupported;
    uint64_t fragments;       /* fragments taken in (also the one that completes a
                                 datagram, whose result is then TCP) */
    uint64_t datagrams_reassembled;
    uint64_t fragments_dropped; /* timed out, over a cap, or inconsistent */
};

struct owfp_decoder_config {
    /* Limits of fragment reassembly; 0 = default (4096 datagrams in
     * progress, 64 MiB of fragment bytes in total, 30 s timeout).
     * Fragment bytes are charged with a small per-piece overhead. When a
     * limit is reached the oldest datagrams are evicted first. The timeout
     * runs on capture timestamps from a datagram's first fragment. */
    uint32_t max_datagrams;
    uint64_t max_frag_bytes;
    uint64_t frag_timeout_us;
};

struct owfp_decoder;

/* NULL when out of memory. `cfg` may be NULL for the defaults. */
struct owfp_decoder *owfp_decoder_new(const struct owfp_decoder_config *cfg);
void owfp_decoder_free(struct owfp_decoder *d);

/* Whether owfp_decode() understands this link type. */
int owfp_decode_link_supported(int dlt);

/* Decodes one frame captured at `ts_us`. `frame` is borrowed for the call
 * (and, through out->payload, until the next call). */
enum owfp_decode_result owfp_decode(struct owfp_decoder *d, int dlt, const uint8_t *frame,
                                    uint32_t caplen, uint32_t wirelen, uint64_t ts_us,
                                    struct owfp_pkt *out);

const struct owfp_decode_stats *owfp_decoder_stats(const struct owfp_decoder *d);

/* A frame's TCP endpoints without decoding it: ip_version, src, dst, sport
 * and dport of *out, for the plain cases (Ethernet with up to two VLAN
 * tags, or raw IP; IPv4 unfragmented, IPv6 without extension headers).
 * Only a hint, to fetch a connection's state ahead of its packet: it keeps
 * no state and does not check what owfp_decode() checks. */
bool owfp_decode_peek(int dlt, const uint8_t *frame, uint32_t caplen, struct owfp_pkt *out);

#endif
