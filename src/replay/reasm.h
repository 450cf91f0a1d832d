/*
 * TCP reassembly of one direction of one connection.
 *
 * Segments go in in capture order; bytes come out in stream order through
 * the sink, each exactly once. In-order bytes are passed straight from the
 * caller's buffer (no copy); only out-of-order bytes are copied, once, into
 * storage the direction owns until they are delivered.
 *
 * Sequence numbers are 32-bit and wrap; inside, positions are 64-bit
 * offsets from the first byte of the stream (ISN + 1), so nothing here
 * breaks after 4 GiB. A sequence number is placed relative to `next` by
 * signed 32-bit difference, so it must lie within 2 GiB of it.
 *
 * Holes: bytes that never arrive are skipped (the sink's gap()) when the
 * peer acknowledges data beyond them (owfp_reasm_ack) or when the stream
 * ends (owfp_reasm_flush). Bytes of a skipped hole that arrive later are
 * counted as late and dropped. Only the most recent skipped range (merged
 * with the one before it when they touch) is remembered: old bytes from an
 * earlier hole count as retransmitted instead.
 *
 * No locking: one direction, and the budget it shares, belong to one thread.
 * The sink must not call back into the same direction.
 */
#ifndef OPENWFP_REPLAY_REASM_H
#define OPENWFP_REPLAY_REASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What a byte seen twice becomes. Only bytes still buffered (waiting behind
 * a hole) can be replaced: bytes already passed to data() can never change
 * under either policy, since the sink has consumed them; a later copy of
 * them is counted as retransmitted (it cannot be compared any more).
 */
enum owfp_overlap_policy {
    OWFP_OVERLAP_FIRST = 0, /* the first copy of a byte wins (as Windows' stack) */
    OWFP_OVERLAP_LAST = 1,  /* a later copy replaces a buffered one */
};

/* Flags of delivered bytes. */
#define OWFP_REASM_PUSH 0x1   /* from a segment with PSH */
#define OWFP_REASM_URGENT 0x2 /* from a segment with URG */

/* Data starting more than this beyond the next byte to deliver, and acks
 * or FINs that far ahead, are taken as bogus and ignored. */
#define OWFP_REASM_MAX_AHEAD (UINT64_C(1) << 30)

struct owfp_reasm_sink {
    /* `n` (> 0) bytes, next in the stream. `p` is borrowed for the call.
     * One call never spans two segments; `flags` are those of the segment
     * that first supplied the bytes. */
    void (*data)(void *arg, const uint8_t *p, size_t n, uint32_t flags);
    /* `n` (> 0) bytes of the stream will never be delivered. */
    void (*gap)(void *arg, uint64_t n);
};

/* Out-of-order storage shared by all directions of a replay. Counts
 * payload bytes only (each buffered piece also costs a ~32-byte header). */
struct owfp_reasm_budget {
    uint64_t used;
    uint64_t limit;       /* total bytes; 0 = unlimited */
};

/* A NULL config means FIRST, no cap, no budget. */
struct owfp_reasm_config {
    enum owfp_overlap_policy overlap;
    uint32_t max_buffered; /* out-of-order bytes per direction; 0 = unlimited */
    struct owfp_reasm_budget *budget; /* may be NULL */
};

/* Byte counts unless stated otherwise. */
struct owfp_reasm_stats {
    uint64_t delivered;     /* bytes passed to data() */
    uint64_t gap_bytes;     /* bytes passed to gap() */
    uint64_t gaps;          /* gap() calls */
    uint64_t retransmitted; /* bytes seen again with the same value */
    uint64_t conflicts;     /* bytes seen again with a different value */
    uint64_t out_of_order;  /* segments that had to wait (count) */
    uint64_t refused;       /* out-of-order bytes refused by a cap (they become a gap) */
    uint64_t late;          /* bytes that arrived after their place was skipped */
    uint64_t after_fin;     /* bytes at or beyond the FIN */
    uint64_t out_of_window; /* bytes of segments starting > MAX_AHEAD beyond next */
    uint64_t bad_fins;      /* FINs ignored: behind next, too far, not at the first (count) */
};

struct owfp_reasm_seg;

struct owfp_reasm {
    uint32_t base_seq;   /* sequence number of offset 0 */
    uint64_t next;       /* offset of the next byte to deliver */
    uint64_t fin_off;    /* offset of the FIN, or UINT64_MAX */
    uint64_t skip_lo;    /* most recent skipped range [skip_lo, skip_hi) */
    uint64_t skip_hi;
    struct owfp_reasm_seg *ooo; /* buffered segments: splay tree by offset */
    uint64_t ooo_bytes;
    struct owfp_reasm_stats stats;
};

/* Starts a direction whose first byte has sequence number `first_seq`
 * (ISN + 1 when the SYN was seen). */
void owfp_reasm_init(struct owfp_reasm *r, uint32_t first_seq);

/* The payload of one segment starting at `seq`; `flags` OWFP_REASM_*.
 * Delivers what became contiguous. */
void owfp_reasm_segment(struct owfp_reasm *r, const struct owfp_reasm_config *cfg, uint32_t seq,
                        const uint8_t *p, uint32_t n, uint32_t flags,
                        const struct owfp_reasm_sink *sink, void *arg);

/* The FIN at sequence number `seq` (its own sequence slot). The first FIN
 * fixes the end of the stream; a FIN behind bytes already delivered, or
 * more than MAX_AHEAD ahead, is ignored, and so are later FINs elsewhere
 * (all counted in bad_fins). Bytes buffered beyond the FIN before it was
 * known are dropped (counted in after_fin) when delivery reaches the FIN or
 * at flush; release just frees them. */
void owfp_reasm_fin(struct owfp_reasm *r, uint32_t seq);

/* True once every byte before the FIN was delivered or skipped. */
bool owfp_reasm_fin_reached(const struct owfp_reasm *r);

/* The peer acknowledged every byte before `ack`: skip the holes before it
 * (never past the FIN) and deliver what follows them. Acks at or behind
 * next, or more than MAX_AHEAD ahead, do nothing. */
void owfp_reasm_ack(struct owfp_reasm *r, const struct owfp_reasm_config *cfg, uint32_t ack,
                    const struct owfp_reasm_sink *sink, void *arg);

/* The stream ends (FIN reached, RST, timeout, end of capture): skip every
 * hole and deliver everything buffered, in order. With a FIN known, the
 * stream runs up to it (a final gap covers bytes never seen before it). */
void owfp_reasm_flush(struct owfp_reasm *r, const struct owfp_reasm_config *cfg,
                      const struct owfp_reasm_sink *sink, void *arg);

/* Frees buffered bytes without delivering them. */
void owfp_reasm_release(struct owfp_reasm *r, const struct owfp_reasm_config *cfg);

#endif
