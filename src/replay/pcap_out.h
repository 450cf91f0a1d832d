/*
 * --write-pcap: a capture of the connections as the callouts left them.
 *
 * Frames that are not TCP, and TCP frames of connections that never opened
 * a flow, are copied as they were. For a connection with a flow, the
 * payload-carrying frames are replaced by new segments carrying the bytes
 * the engine released (permitted and injected), built from the headers of
 * the connection's own frames; its control frames (ACK, RST) are kept with
 * sequence and acknowledgement numbers moved into the edited sequence
 * space, so a reader follows the edited streams cleanly. A FIN is written
 * when the callouts release it. A connection a callout dropped (or ALE
 * blocked) ends with a RST each way and nothing of it is written after.
 */
#ifndef OPENWFP_REPLAY_PCAP_OUT_H
#define OPENWFP_REPLAY_PCAP_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "replay/conn.h"
#include "replay/decode.h"

struct owfp_pcap_out;

/* NULL (after a message on stderr) when `path` cannot be created. */
struct owfp_pcap_out *owfp_pcap_out_new(const char *path);
/* Flushes and closes: 0, or 2 when a write failed (said on stderr). */
int owfp_pcap_out_free(struct owfp_pcap_out *po);

/* Each captured frame, before the tracker sees it: borrowed until frame_end.
 * `p` is its decoded TCP segment, or NULL. */
void owfp_pcap_out_frame_begin(struct owfp_pcap_out *po, int dlt, const uint8_t *frame,
                               uint32_t caplen, uint32_t wirelen, uint64_t ts_us,
                               const struct owfp_pkt *p);
/* After the tracker: `c` is the frame's connection, or NULL (a stray). */
void owfp_pcap_out_frame_end(struct owfp_pcap_out *po, struct owfp_conn *c);

/* The connection opened its flow (its state goes in c->out). */
void owfp_pcap_out_open(struct owfp_pcap_out *po, struct owfp_conn *c);
/* Bytes of tracker side `side` released by the engine, in stream order. */
void owfp_pcap_out_bytes(struct owfp_pcap_out *po, struct owfp_conn *c, int side,
                         const uint8_t *p, size_t n);
/* The FIN of `side` is released. */
void owfp_pcap_out_fin(struct owfp_pcap_out *po, struct owfp_conn *c, int side);
/* A callout dropped the connection, or ALE blocked it. */
void owfp_pcap_out_reset(struct owfp_pcap_out *po, struct owfp_conn *c);
/* The tracker frees `c`. */
void owfp_pcap_out_forget(struct owfp_pcap_out *po, struct owfp_conn *c);

#endif
