/*
 * TCP connections as the capture shows them: who initiated, each
 * direction's reassembly, and where the connection is in its life.
 *
 * "Side" 0 is the initiator -> responder direction, side 1 the way back;
 * which of them is SEND for the engine is the replay's choice (--local).
 */
#ifndef OPENWFP_REPLAY_CONN_H
#define OPENWFP_REPLAY_CONN_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replay/reasm.h"

struct owfp_tracker;

/* Endpoints in a canonical order (a < b), so both directions find it. */
struct owfp_conn_key {
    uint8_t a[16], b[16];
    uint16_t pa, pb;
    uint8_t ip_version;
    uint8_t zero[3]; /* always 0: keys compare as five words */
};
_Static_assert(sizeof(struct owfp_conn_key) % 8 == 0, "keys are compared as words");

enum owfp_conn_state {
    OWFP_CONN_HANDSHAKE = 0, /* SYN or SYN/ACK seen, not yet established */
    OWFP_CONN_OPEN,          /* established or picked up mid-stream */
    OWFP_CONN_CLOSED,        /* ended: kept a while to absorb stray packets */
};

enum owfp_conn_end {
    OWFP_END_NONE = 0,
    OWFP_END_FIN,      /* both FINs reached */
    OWFP_END_RST,      /* a RST ended it */
    OWFP_END_TIMEOUT,  /* idle longer than the flow timeout */
    OWFP_END_REUSED,   /* a new SYN took over its 4-tuple */
    OWFP_END_CAPTURE,  /* the capture ended first */
    OWFP_END_EVICTED,  /* ended early to stay under the connection limit */
};

/* The fields every segment reads or writes come first, in the conn and in
 * each direction (and in owfp_reasm): a segment then touches a few cache
 * lines of its connection, not all of them. */
struct owfp_conn_dir {
    uint64_t packets;
    uint64_t payload;     /* captured payload bytes, retransmissions included */
    uint32_t isn;
    uint32_t last_ack;    /* the last ACK this side sent */
    bool isn_known;
    bool started;         /* r is initialised */
    bool ack_known;
    bool fin_done;        /* FIN reached and reported */
    bool rst;             /* this side sent the RST that ended the connection */
    struct owfp_reasm r;
};

struct owfp_conn {
    struct owfp_conn_key key;
    uint64_t last_us;     /* its last packet */
    /* Live: when it was last moved to the newest end of the expiry list
     * (tracker_config.touch_step_us). Closed: when it ended; it lingers
     * from then. */
    uint64_t listed_us;
    uint64_t touched;     /* the tracker's segment count at its last packet */
    uint8_t initiator_is_a;
    uint8_t state;        /* enum owfp_conn_state */
    uint8_t end;          /* enum owfp_conn_end */
    bool handshake;       /* the initiator's SYN was seen */
    bool opened;          /* the open event ran */
    struct owfp_conn_dir d[2];
    struct owfp_conn *older, *newer; /* expiry list, by listed_us */
    uint64_t id;          /* 1, 2, ... in order of first packet */
    uint64_t first_us;    /* its first packet */
    void *out;            /* outputs' state, until the forget event (after lingering) */
    /* Then tracker_config.user_size bytes for the tracker's user, zeroed
     * when the connection is created (owfp_conn_user). */
};

/* The user's bytes of the connection: as long-lived as the connection. */
static inline void *owfp_conn_user(struct owfp_conn *c)
{
    return c + 1;
}

/* The connection whose user bytes these are. */
static inline struct owfp_conn *owfp_conn_of_user(void *user)
{
    return (struct owfp_conn *)user - 1;
}

_Static_assert(sizeof(struct owfp_conn) % alignof(max_align_t) == 0,
               "the user's bytes after a connection must be aligned for anything");

/* The initiator's or responder's address and port. */
static inline const uint8_t *owfp_conn_addr(const struct owfp_conn *c, int side)
{
    return (side == 0) == (c->initiator_is_a != 0) ? c->key.a : c->key.b;
}
static inline uint16_t owfp_conn_port(const struct owfp_conn *c, int side)
{
    return (side == 0) == (c->initiator_is_a != 0) ? c->key.pa : c->key.pb;
}

#endif
