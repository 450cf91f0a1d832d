/*
 * `openwfp replay`: captures in, every TCP connection through the engine's
 * ALE and stream layers, reports and edited streams out.
 *
 * The engine and the callouts are set up by the caller (owfp_engine_create,
 * callout registration, filters); the replay opens one flow per connection.
 */
#ifndef OPENWFP_REPLAY_REPLAY_H
#define OPENWFP_REPLAY_REPLAY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "replay/reasm.h"

struct owfp_net {
    uint8_t ip_version;
    uint8_t addr[16];
    uint8_t prefix;
};

struct owfp_replay_options {
    const char *const *captures; /* "-" = standard input */
    size_t ncaptures;
    bool tapes;                  /* the captures are fuzz tapes (tape.h) */
    const struct owfp_net *local_nets; /* none: the initiator is local */
    size_t nlocal_nets;
    enum owfp_overlap_policy overlap;
    bool json;                   /* JSON Lines instead of text */
    bool quiet;                  /* no per-connection lines, no progress */
    bool progress;               /* a progress line on stderr (when it is a terminal) */
    const char *write_streams;   /* directory, or NULL */
    const char *write_pcap;      /* file, or NULL */
    uint64_t flow_timeout_us;    /* 0 = default */
    uint64_t max_conns;          /* 0 = unlimited */
    uint32_t max_buffered;       /* out-of-order bytes per direction; 0 = default */
    uint64_t max_buffered_total; /* out-of-order bytes in all; 0 = default */
    FILE *out;                   /* reports; stdout when NULL */
};

/* Parses "ADDR/PREFIX" (IPv4 or IPv6; a bare address is a host). 0 or -EINVAL. */
int owfp_net_parse(const char *text, struct owfp_net *net);

/* Runs the replay. Returns 0, 1 when a capture could not be read to its end
 * (the message is on stderr; everything before it was processed and
 * written), or 2 for bad options or output that could not be written. */
int owfp_replay_run(const struct owfp_replay_options *opt);

#endif
