/*
 * The replay's state: one engine flow per tracked connection, what each
 * direction saw and what the callouts made of it, and the outputs.
 */
#ifndef OPENWFP_REPLAY_REPLAY_CONN_H
#define OPENWFP_REPLAY_REPLAY_CONN_H

#include <pthread.h>
#include <stdatomic.h>

#include <openwfp/openwfp.h>

#include "replay/conn.h"
#include "replay/progress.h"
#include "replay/replay.h"
#include "replay/tracker.h"

struct owfp_decoder;
struct owfp_tracker;
struct owfp_stream_files;
struct owfp_pcap_out;

/* Byte counts of one direction, as reported. */
struct owfp_rdir {
    uint64_t seen;      /* reassembled bytes handed on (holes excluded) */
    uint64_t permitted; /* original bytes the callouts let through */
    uint64_t injected;  /* bytes callouts injected */
    uint64_t gap_bytes; /* bytes that never arrived */
    uint64_t gaps;
    uint64_t refused;   /* bytes the engine refused (out of memory, backlog) */
    bool fin_out;       /* the FIN was released */
};

/* What a connection keeps of a direction beyond the reassembly's own
 * counts (bytes seen and holes: owfp_rconn_rdir). */
struct owfp_rside {
    uint64_t permitted;
    uint64_t injected;
    uint64_t refused;
};

/* The replay's state of one connection, kept in the tracker's connection
 * (owfp_conn_user): it is created zeroed with it, is live from the open
 * event to the end event, and is freed with it. */
struct owfp_rconn {
    struct owfp_replay *replay;
    owfp_flow *flow;
    struct owfp_rconn *woken_next;
    void *files;        /* --write-streams state */
    struct owfp_rside d[2]; /* by tracker side */
    int32_t error;      /* first engine failure, 0 if none */
    uint8_t send_side;  /* the tracker side whose sender is local */
    bool live;          /* between the open and the end event */
    bool blocked;       /* ALE_FLOW_ESTABLISHED blocked it */
    bool dropped;       /* DROP_CONNECTION or FwpsFlowAbort0 */
    bool offloaded;     /* left the stream layer (ALLOW_CONNECTION, no stream callout) */
    bool deferred;      /* a direction was deferred at some point */
    bool woken;         /* on the wake-up list (under the lock) */
    bool fin_out[2];    /* the FIN was released, by tracker side */
};

static inline struct owfp_conn *owfp_rconn_conn(const struct owfp_rconn *rc)
{
    return owfp_conn_of_user((void *)rc);
}

struct owfp_replay_totals {
    uint64_t conns, opened, blocked, dropped, offloaded, deferred, errors;
    struct owfp_rdir d[2]; /* summed over connections, by SEND/RECEIVE */
    struct owfp_reasm_stats reasm; /* summed over directions */
};

/* Looking ahead (replay.c): hints for the records after the one being
 * replayed, each taken one step further per record, so that what a packet
 * needs arrives a few packets before it: its table slot, its connection,
 * its engine flow, the flow's stream state, its stages. */
#define OWFP_LOOKAHEAD 5

struct owfp_ahead {
    uint64_t off;  /* of the record in the capture */
    unsigned step; /* the next step to take */
    struct owfp_tracker_hint h;
};

struct owfp_replay {
    struct owfp_replay_options opt;
    FILE *out;
    struct owfp_decoder *decoder;
    struct owfp_tracker *tracker;
    struct owfp_reasm_budget budget;
    uint64_t packets;
    struct owfp_progress progress;
    struct owfp_replay_totals totals;
    struct owfp_tracker_stats tracked; /* the tracker's, kept after it is freed */
    struct owfp_stream_files *files;
    struct owfp_pcap_out *pcap;
    int dlt;
    /* Connections whose flows other threads woke (injection, continue). */
    pthread_mutex_t wake_lock;
    struct owfp_rconn *woken;
    atomic_bool any_woken;
    bool settle_gave_up; /* work items did not go idle once: flows no longer wait */
    unsigned tapes;         /* fuzz tapes played (owfp_replay_tape) */
    bool in_tape;           /* a tape is playing: it says when work items run */
    uint64_t tape_clock_us; /* where the last one left the clock */
    struct owfp_ahead ahead[OWFP_LOOKAHEAD]; /* a ring: nahead from ahead[first] */
    unsigned first, nahead;
    uint64_t ahead_cursor; /* the record to look at next */
    bool looking_ahead;    /* for these packets (replay.c, decide_look_ahead) */
    uint64_t indicated;    /* data indications to the stream layer since it was decided */
};

struct owfp_replay *owfp_replay_new(const struct owfp_replay_options *opt);
/* One captured frame. */
void owfp_replay_frame(struct owfp_replay *r, int dlt, const uint8_t *frame, uint32_t caplen,
                       uint32_t wirelen, uint64_t ts_us);
/* Takes what other threads injected or continued (between frames). */
void owfp_replay_poll(struct owfp_replay *r);
/* Waits until the drivers' work items are idle and takes what they did. */
void owfp_replay_settle(struct owfp_replay *r);
/* Plays a fuzz tape (tape.h) into the replay: 0, or 1 when out of memory. */
int owfp_replay_tape(struct owfp_replay *r, const uint8_t *tape, size_t len);
/* Ends every connection, prints the totals, frees. Returns 0, or 2 when an
 * output could not be written. */
int owfp_replay_finish(struct owfp_replay *r);

/* Asks for the engine state of the hint's connection: the flow at depth 0,
 * deeper as owfp_flow_prefetch() says. False when the engine does not see
 * the connection's bytes (yet, or any more). */
bool owfp_replay_hint_flow(struct owfp_replay *r, struct owfp_tracker_hint *h, unsigned depth);

/* Everything counted of one side (tracker side) of a connection. */
void owfp_rconn_rdir(const struct owfp_rconn *rc, int side, struct owfp_rdir *out);

/* The engine direction of a tracker side. */
static inline enum owfp_stream_direction owfp_rconn_dir(const struct owfp_rconn *rc, int side)
{
    return side == rc->send_side ? OWFP_STREAM_SEND : OWFP_STREAM_RECEIVE;
}

#endif
