/*
 * --write-pcap's state of one connection (in owfp_conn.out): for each side
 * the headers its rebuilt segments borrow, and its output sequence space.
 *
 * A side's output starts where its stream starts (ISN + 1 when the SYN was
 * seen, else its first sequence number), so an unedited stream keeps its
 * numbers; from there it advances by the bytes the callouts released, plus
 * one for a released FIN. Sequence and acknowledgement numbers of captured
 * frames are carried into that space through the side's seqmap.
 */
#ifndef OPENWFP_REPLAY_PCAP_CONN_H
#define OPENWFP_REPLAY_PCAP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replay/conn.h"
#include "replay/pcap_tmpl.h"
#include "replay/seqmap.h"

struct owfp_pcap_side {
    struct owfp_seg_tmpl tmpl;
    bool have_tmpl;
    uint64_t tmpl_frame;   /* the frame it was last taken from (frames count from 1) */
    uint64_t out;          /* stream bytes written */
    uint64_t max_seen;     /* the largest payload a frame of this side carried */
    bool fin;              /* the FIN was written */
    struct owfp_seqmap map;
};

struct owfp_pcap_conn {
    struct owfp_pcap_side s[2];
    bool reset;            /* RSTs written: nothing more of it is */
};

/* NULL when out of memory. */
struct owfp_pcap_conn *owfp_pcap_conn_new(void);

/* The side of `c` that sent `p`, or -1 when `p` is not one of c's. */
int owfp_pcap_conn_side(const struct owfp_conn *c, const struct owfp_pkt *p);

/* The sequence number of `side`'s next output byte; false when nothing
 * says where its stream starts. */
bool owfp_pcap_next_seq(const struct owfp_conn *c, const struct owfp_pcap_conn *pc, int side,
                        uint32_t *seq);

/* A captured sequence number of `side` (or an acknowledgement of it) in
 * the output space; unchanged before the stream starts (the SYN). */
uint32_t owfp_pcap_to_out(const struct owfp_conn *c, const struct owfp_pcap_conn *pc, int side,
                          uint32_t seq);

/* What `side` acknowledges now: its last captured ACK carried into the
 * output space (so a rebuilt segment acknowledges what its frame did, and
 * a later pure ACK is no duplicate); false when the side never sent an ACK
 * (a SYN carrying data), and its segments then carry none either. */
bool owfp_pcap_ack_of(const struct owfp_conn *c, const struct owfp_pcap_conn *pc, int side,
                      uint32_t *ack);

/* `side` wrote output: note where the original stream stood. */
void owfp_pcap_note(const struct owfp_conn *c, struct owfp_pcap_conn *pc, int side);
/* `side` wrote its FIN (after owfp_pcap_side.fin is set). */
void owfp_pcap_note_fin(const struct owfp_conn *c, struct owfp_pcap_conn *pc, int side);

/* How much payload a rebuilt segment of `side` carries at most: the
 * largest the side sent (at least 536, 1460 when it sent none), within one
 * IP datagram. */
size_t owfp_pcap_seg_size(const struct owfp_pcap_side *ps, uint8_t ip_version);

#endif
