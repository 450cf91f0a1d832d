/*
 * IPv4 and IPv6 fragment reassembly for the packet decoder (internal).
 *
 * The defragmenter only ever sees the fragmentable part of a datagram (the
 * bytes after the IPv4 header or after the IPv6 fragment header); the
 * decoder keeps the addresses from the frame that completes the datagram.
 *
 * Policy:
 *  - Overlaps: the first copy of a byte wins; later copies of bytes already
 *    held are ignored, whatever their value. A fragment that only repeats
 *    held bytes (a duplicate) is accepted and adds nothing.
 *  - Time: a datagram must complete within the timeout, measured on the
 *    capture clock from its first fragment. Expiry happens as timestamps
 *    advance (owfp_defrag_expire), never from a timer.
 *  - Caps: when a new datagram would exceed the number in progress, or a
 *    fragment would exceed the byte budget, the oldest datagrams are evicted
 *    first; a fragment that cannot fit even then is dropped with its own
 *    datagram. Bytes are charged with a per-piece overhead so that many tiny
 *    fragments cannot use more memory than the budget says.
 *  - Inconsistency: a fragment that is wrong on its own (an empty or not
 *    8-byte-multiple non-last fragment, an end beyond 65535) is dropped
 *    alone; one that contradicts its datagram (a second last fragment with
 *    another end, data beyond the end) drops the whole datagram.
 * Every fragment dropped (alone, with its datagram, evicted or timed out) is
 * counted once in stats->fragments_dropped.
 */
#ifndef OPENWFP_REPLAY_DEFRAG_H
#define OPENWFP_REPLAY_DEFRAG_H

#include <stdbool.h>
#include <stdint.h>

#include "replay/decode.h"

/* Largest fragmentable part we rebuild: the 16-bit length fields of IPv4
 * and IPv6 cannot describe more. */
#define OWFP_DEFRAG_MAX_DATAGRAM 65535u

/* Identifies the datagram a fragment belongs to. IPv4: src, dst, protocol,
 * id (16 bits). IPv6: src, dst, id (32 bits); proto is 0. Addresses as in
 * struct owfp_pkt (IPv4 in the first 4 bytes, the rest zero). */
struct owfp_defrag_key {
    uint8_t src[16], dst[16];
    uint32_t id;
    uint8_t version;
    uint8_t proto;
};

struct owfp_defrag_frag {
    const uint8_t *data;
    uint32_t len;
    uint32_t offset;   /* in bytes */
    bool more;         /* more fragments follow (MF / M flag) */
    uint8_t next_hdr;  /* IPv6: the fragment header's next header */
};

enum owfp_defrag_result {
    OWFP_DEFRAG_HELD,     /* kept (or a harmless duplicate); not complete */
    OWFP_DEFRAG_DROPPED,  /* refused; counted in fragments_dropped */
    OWFP_DEFRAG_COMPLETE, /* the whole fragmentable part is in data, len */
};

struct owfp_defrag;

/* `stats` is the decoder's; the defragmenter updates fragments_dropped and
 * datagrams_reassembled in it. NULL when out of memory. */
struct owfp_defrag *owfp_defrag_new(const struct owfp_decoder_config *cfg,
                                    struct owfp_decode_stats *stats);
void owfp_defrag_free(struct owfp_defrag *f);

/* Takes in one fragment seen at `ts_us`. On COMPLETE, *data points into the
 * defragmenter's own buffer (valid until the next call to owfp_defrag_add)
 * and *next_hdr is the IPv6 next header of the offset-0 fragment (for
 * IPv4, the key's protocol). */
enum owfp_defrag_result owfp_defrag_add(struct owfp_defrag *f, const struct owfp_defrag_key *key,
                                        const struct owfp_defrag_frag *frag, uint64_t ts_us,
                                        const uint8_t **data, uint32_t *len, uint8_t *next_hdr);

/* Drops the datagrams whose timeout has passed at `now_us`. */
void owfp_defrag_expire(struct owfp_defrag *f, uint64_t now_us);

/* The capture time at which the oldest datagram in progress expires, or
 * UINT64_MAX when none is; lets the caller skip owfp_defrag_expire() with
 * one comparison per frame. */
uint64_t owfp_defrag_deadline(const struct owfp_defrag *f);

#endif
