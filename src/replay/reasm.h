/*
 * TCP reassembly of one direction of one connection.
 *
 * Segments go in in capture order; bytes come out in stream order through
 * the sink, each exactly once. Under the FIRST overlap policy in-order bytes
 * are passed straight from the caller's buffer (no copy): only out-of-order
 * bytes are copied, once, into storage the direction owns until they are
 * delivered. Under LAST every byte is copied, since it must wait for its
 * acknowledgement (see enum owfp_overlap_policy).
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
 * What a byte seen twice becomes, and so when bytes may go out.
 *
 * FIRST (as Windows' stack): the first copy of a byte wins. A later copy
 * can change nothing, so bytes in order go out at once, without a copy;
 * only bytes behind a hole are stored.
 *
 * LAST: a later copy replaces an earlier one for as long as the receiver
 * has not acknowledged the byte, which is what "last wins" means for a
 * receiver: until its ACK, the byte may still be overwritten. So every
 * byte, in order or not, is stored and goes out only when owfp_reasm_ack()
 * covers it, or at owfp_reasm_flush(). An ack delivers the stored pieces
 * contiguous with the stream that start before the ack point, each whole
 * (a piece is the part of one segment that was new when it arrived), so
 * delivery may run past the ack point to the end of a piece. With "GOOD"
 * then "EVIL" at one offset, the stream carries "EVIL" once acknowledged.
 * A byte in order (at the next byte to deliver, or right after the bytes
 * stored contiguously from there) that cannot be stored (cap, budget or
 * memory) goes out at once, after the stored bytes before it, as under
 * FIRST, rather than be lost; those bytes can then no longer be replaced.
 * Bytes out of order that are refused count in `refused` and become part of
 * a later gap, as under FIRST.
 *
 * Under both policies bytes already passed to data() never change, since
 * the sink has consumed them; a later copy of them is counted as
 * retransmitted (it cannot be compared any more).
 */
enum owfp_overlap_policy {
    OWFP_OVERLAP_FIRST = 0, /* the first copy of a byte wins; in-order bytes go at once */
    OWFP_OVERLAP_LAST = 1,  /* the last copy before the byte's ACK wins; all bytes wait for it */
};

/* Flags of delivered bytes. */
#define OWFP_REASM_PUSH 0x1   /* from a segment with PSH */
#define OWFP_REASM_URGENT 0x2 /* from a segment with URG */

/* Data starting more than this beyond the next byte to deliver, and acks
 * or FINs that far ahead, are taken as bogus and ignored. Under LAST the
 * next byte to deliver is the oldest unacknowledged one, so without a cap
 * (max_buffered, budget) a peer silent this long loses later data here. */
#define OWFP_REASM_MAX_AHEAD (UINT64_C(1) << 30)

struct owfp_reasm_sink {
    /* `n` (> 0) bytes, next in the stream. `p` is borrowed for the call.
     * One call never spans two segments; `flags` are those of the segment
     * that first supplied the bytes. */
    void (*data)(void *arg, const uint8_t *p, size_t n, uint32_t flags);
    /* `n` (> 0) bytes of the stream will never be delivered. */
    void (*gap)(void *arg, uint64_t n);
};

/* Storage shared by all directions of a replay: bytes behind a hole, and
 * under LAST also bytes awaiting their ACK. Counts payload bytes only (each
 * buffered piece also costs a ~32-byte header). */
struct owfp_reasm_budget {
    uint64_t used;
    uint64_t limit;       /* total bytes; 0 = unlimited */
};

/* A NULL config means FIRST, no cap, no budget. */
struct owfp_reasm_config {
    enum owfp_overlap_policy overlap;
    uint32_t max_buffered; /* stored bytes per direction (see budget); 0 = unlimited */
    struct owfp_reasm_budget *budget; /* may be NULL */
};

/* Byte counts unless stated otherwise. */
struct owfp_reasm_stats {
    uint64_t delivered;     /* bytes passed to data() */
    uint64_t gap_bytes;     /* bytes passed to gap() */
    uint64_t gaps;          /* gap() calls */
    uint64_t retransmitted; /* bytes seen again with the same value */
    uint64_t conflicts;     /* bytes seen again with a different value */
    uint64_t out_of_order;  /* segments with bytes stored behind a hole (count) */
    uint64_t refused;       /* out-of-order bytes refused by a cap (they become a gap);
                             * bytes in order are never refused */
    uint64_t late;          /* bytes that arrived after their place was skipped */
    uint64_t after_fin;     /* bytes at or beyond the FIN */
    uint64_t out_of_window; /* bytes of segments starting > MAX_AHEAD beyond next */
    uint64_t bad_fins;      /* FINs ignored: behind next, too far, not at the first (count) */
};

struct owfp_reasm_seg;
struct owfp_reasm_rare;

/* What a segment in order reads and writes comes first (see conn.h). Only
 * that is kept in line: a connection holds two of these, and most
 * directions never have a hole, a retransmission or a buffered byte. */
struct owfp_reasm {
    uint32_t base_seq;   /* sequence number of offset 0 */
    bool incomplete;     /* `rare` could not be allocated: counts or a skipped range were lost */
    uint64_t next;       /* offset of the next byte to deliver */
    uint64_t fin_off;    /* offset of the FIN, or UINT64_MAX */
    struct owfp_reasm_seg *ooo; /* buffered segments: splay tree by offset */
    uint64_t delivered;  /* owfp_reasm_stats.delivered */
    /* The other counts, the skipped range and the storage accounting,
     * allocated when one of them first becomes non-zero (NULL: all zero). */
    struct owfp_reasm_rare *rare;
};

/* Starts a direction whose first byte has sequence number `first_seq`
 * (ISN + 1 when the SYN was seen). */
void owfp_reasm_init(struct owfp_reasm *r, uint32_t first_seq);

/* The payload of one segment starting at `seq`; `flags` OWFP_REASM_*.
 * Under FIRST, delivers what became contiguous; under LAST, delivers only
 * in-order bytes that could not be stored (see the policy). */
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

/* True once every byte before the FIN was delivered or skipped (under
 * LAST: once the peer acknowledged them, or after flush). */
bool owfp_reasm_fin_reached(const struct owfp_reasm *r);

/* The peer acknowledged every byte before `ack`: skip the holes before it
 * (never past the FIN) and deliver what follows them: under FIRST all that
 * became contiguous, under LAST the pieces starting before `ack`, each
 * whole. Acks at or behind next, or more than MAX_AHEAD ahead, do
 * nothing. */
void owfp_reasm_ack(struct owfp_reasm *r, const struct owfp_reasm_config *cfg, uint32_t ack,
                    const struct owfp_reasm_sink *sink, void *arg);

/* The stream ends (FIN reached, RST, timeout, end of capture): skip every
 * hole and deliver everything buffered, in order. With a FIN known, the
 * stream runs up to it (a final gap covers bytes never seen before it). */
void owfp_reasm_flush(struct owfp_reasm *r, const struct owfp_reasm_config *cfg,
                      const struct owfp_reasm_sink *sink, void *arg);

/* Frees buffered bytes without delivering them. The counts stay. */
void owfp_reasm_release(struct owfp_reasm *r, const struct owfp_reasm_config *cfg);

/* Frees everything the direction holds, its counts too; `r` may then only
 * be initialised again. */
void owfp_reasm_free(struct owfp_reasm *r, const struct owfp_reasm_config *cfg);

/* The direction's counts. */
struct owfp_reasm_stats owfp_reasm_get_stats(const struct owfp_reasm *r);

/* Bytes buffered now (charged to max_buffered and the budget). */
uint64_t owfp_reasm_buffered(const struct owfp_reasm *r);

#endif
