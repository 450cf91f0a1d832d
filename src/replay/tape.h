/*
 * Fuzz tapes: the input format of `openwfp fuzz`, and what
 * `openwfp replay --fuzz-input` plays. A tape is a program of small
 * operations (docs/fuzzing.md has the byte layout): open up to eight TCP
 * connections, send data from either side in segments of the tape's
 * choosing, urgent data, FIN and RST at any point, hold a segment back so
 * it arrives out of order or twice, leave holes, let time pass, and run
 * the drivers' queued work items, one at a time in the order the tape
 * picks, or all of them.
 *
 * Every byte string is a valid tape, and the same tape always makes the
 * same frames: the player is how a fuzzer's mutations become traffic.
 * It does no I/O; frames and work steps go to the caller.
 */
#ifndef OPENWFP_REPLAY_TAPE_H
#define OPENWFP_REPLAY_TAPE_H

#include <pcap/dlt.h>
#include <stddef.h>
#include <stdint.h>

/* The link type of the frames a tape makes: raw IPv4/IPv6. */
#define OWFP_TAPE_DLT DLT_RAW

/* Operation kinds: the low three bits of an operation byte. */
enum owfp_tape_op {
    OWFP_TAPE_DATA,   /* length (1 byte, or 2 little-endian with bit 7), then the bytes */
    OWFP_TAPE_URGENT, /* as DATA, each segment flagged URG */
    OWFP_TAPE_FIN,
    OWFP_TAPE_RST,
    OWFP_TAPE_HOLD,   /* this side's next segment arrives after the one behind it
                         (bit 7: and once more after that) */
    OWFP_TAPE_GAP,    /* 1 byte n: n + 1 bytes of this side never arrive */
    OWFP_TAPE_WORK,   /* 1 byte: run that queued work item; bit 7: run all, no byte */
    OWFP_TAPE_CTRL,   /* the slot bits pick: open, time, ack (owfp_tape_ctrl) */
};

/* CTRL operations: the slot bits pick one, the side bit is the side. */
enum owfp_tape_ctrl {
    OWFP_TAPE_OPEN, /* 2 bytes: how (bits0-2 slot, bit3 IPv6, bit4 no handshake,
                       bit5 the slot's last client port again), server port
                       (low 4 bits index a table; 15: 2 more bytes, LE) */
    OWFP_TAPE_TIME, /* 1 byte t: t * 100 ms pass (bit 7 of the op: t * 10 s) */
    OWFP_TAPE_ACK,  /* 1 byte slot: that side acknowledges all it was sent */
};

/* An operation byte: kind, connection slot 0-7, side (0 the client, 1 the
 * server), bit 7 the modifier. */
#define OWFP_TAPE_OP(kind, slot, side, mod) \
    ((uint8_t)((kind) | (slot) << 3 | (side) << 6 | ((mod) ? 0x80 : 0)))

struct owfp_tape_sink {
    /* A frame of link type OWFP_TAPE_DLT, captured at ts_us. */
    void (*frame)(void *arg, const uint8_t *frame, uint32_t len, uint64_t ts_us);
    /* Run queued work item number `pick`; -1: run them all until none is
     * left. */
    void (*work)(void *arg, int pick);
    void *arg;
    /* Tapes played one after the other into one replay: how many came
     * before (it picks the client addresses, so that their connections do
     * not meet), and the clock the last one left (0 to start). */
    unsigned index;
    uint64_t clock_us;
};

/* Plays the tape; sink->clock_us is advanced. 0, or -1 when out of memory
 * (nothing was played then). */
int owfp_tape_play(const uint8_t *tape, size_t len, struct owfp_tape_sink *sink);

/* Writes tapes that replay what a capture holds, one per TCP connection (at
 * most `max` of them, each up to `max_bytes` long), as files
 * DIR/seed-<capture base name>-<n>. Returns how many, or -1 after a message
 * on stderr. */
long owfp_tape_seeds_from_capture(const char *capture, const char *dir, size_t max,
                                  size_t max_bytes);

#endif
