/*
 * Where the engine's answers go besides the report: --write-streams files
 * and the --write-pcap capture. Each call fans out to the outputs enabled.
 */
#ifndef OPENWFP_REPLAY_OUTPUTS_H
#define OPENWFP_REPLAY_OUTPUTS_H

#include "replay/decode.h"
#include "replay/replay_conn.h"

/* 0, or -1 after printing why an output cannot be created. */
int owfp_outputs_start(struct owfp_replay *r);
/* Closes the outputs: 0, or 2 if anything could not be written. */
int owfp_outputs_stop(struct owfp_replay *r);

/* Every captured frame, with its decoded segment (NULL when not TCP),
 * before the tracker sees it; the frame is borrowed until frame_end. IP
 * fragments the decoder keeps are not frames here: the datagram they make
 * comes with the frame of the fragment that completes it. */
void owfp_outputs_frame_begin(struct owfp_replay *r, int dlt, const uint8_t *frame,
                              uint32_t caplen, uint32_t wirelen, uint64_t ts_us,
                              const struct owfp_pkt *p);
/* After the tracker: `c` is the frame's connection, or NULL. */
void owfp_outputs_frame_end(struct owfp_replay *r, struct owfp_conn *c);
void owfp_outputs_open(struct owfp_replay *r, struct owfp_rconn *rc);
/* Bytes of `side` as the callouts left them, in order. */
void owfp_outputs_bytes(struct owfp_replay *r, struct owfp_rconn *rc, int side,
                        const uint8_t *p, size_t n, bool injected);
void owfp_outputs_gap(struct owfp_replay *r, struct owfp_rconn *rc, int side, uint64_t n);
void owfp_outputs_fin(struct owfp_replay *r, struct owfp_rconn *rc, int side);
/* The connection is reset (dropped by a callout, or a RST in the capture). */
void owfp_outputs_reset(struct owfp_replay *r, struct owfp_rconn *rc);
void owfp_outputs_end(struct owfp_replay *r, struct owfp_rconn *rc);
/* The tracker frees `c`: drop what outputs kept in c->out. */
void owfp_outputs_forget(struct owfp_replay *r, struct owfp_conn *c);

#endif
