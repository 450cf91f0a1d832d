/*
 * The TCP connection tracker: decoded segments in, connection events out.
 *
 * It finds each segment's connection, works out who initiated it (the SYN,
 * else the SYN/ACK, else ports and flags for a mid-stream pickup), feeds the
 * payload to the direction's reassembly, turns acknowledgements into gap
 * skips, and reports the connection's life through `events`: open, the
 * bytes of each side in order, holes, FINs, RST, end. Time is the capture's:
 * timeouts run on packet timestamps, so a replay does the same at any speed.
 */
#ifndef OPENWFP_REPLAY_TRACKER_H
#define OPENWFP_REPLAY_TRACKER_H

#include <stdint.h>

#include "replay/conn.h"
#include "replay/decode.h"
#include "replay/reasm.h"

struct owfp_track_events {
    /* The connection is established (or picked up): before any data. */
    void (*open)(void *arg, struct owfp_conn *c);
    /* In-order bytes of `side`; `p` borrowed for the call. */
    void (*data)(void *arg, struct owfp_conn *c, int side, const uint8_t *p, size_t n,
                 uint32_t flags);
    void (*gap)(void *arg, struct owfp_conn *c, int side, uint64_t n);
    /* Every byte of `side` before its FIN was reported. */
    void (*fin)(void *arg, struct owfp_conn *c, int side);
    /* `side` reset the connection; no more data follows. */
    void (*rst)(void *arg, struct owfp_conn *c, int side);
    /* The connection ended (c->end says why). It lingers, closed, to
     * absorb stray packets, until forget. */
    void (*end)(void *arg, struct owfp_conn *c);
    /* `c` is about to be freed. May be NULL. */
    void (*forget)(void *arg, struct owfp_conn *c);
};

struct owfp_tracker_config {
    struct owfp_reasm_config reasm;
    uint64_t idle_timeout_us;   /* 0 = default 600 s */
    uint64_t closed_linger_us;  /* 0 = default 60 s: a closed connection absorbs strays */
    uint64_t max_conns;         /* 0 = unlimited; past it the oldest idle one ends */
    /* Lingering closed connections kept at most (0 = default 65536); past
     * it the one closed longest is forgotten early. Bounds memory however
     * fast connections close. */
    uint64_t max_closed;
    /* 0: every packet moves its connection to the newest end of the expiry
     * list. Otherwise a packet moves it only when its time advanced this
     * much (capped at an eighth of the idle timeout) since the last move,
     * which spares most packets two neighbours' cache misses; expiry then
     * looks a step further down the list, so timeouts stay exact. Ignored
     * (0) with max_conns: eviction takes the oldest listed. */
    uint64_t touch_step_us;
    /* Bytes the user keeps in each connection (owfp_conn_user), zeroed at
     * its creation and kept until it is freed (after forget): one
     * allocation, and one cache miss less per packet than a separate one.
     * A lingering closed connection keeps them too. */
    size_t user_size;
};

struct owfp_tracker_stats {
    uint64_t segments;
    uint64_t conns;             /* connections created */
    uint64_t opened;            /* of which established or picked up */
    uint64_t midstream;         /* of which picked up without a handshake */
    uint64_t reused;            /* ended by a new SYN on the same 4-tuple */
    uint64_t timed_out;
    uint64_t evicted;           /* ended early by max_conns */
    uint64_t strays;            /* packets for no connection that start none (a lone RST) */
    uint64_t rst_ignored;       /* RSTs that failed the acceptance check */
    uint64_t rst_payload;       /* bytes carried by RSTs (never stream data) */
    uint64_t live, peak_live;
    uint64_t lingering;         /* closed connections kept to absorb strays */
    uint64_t linger_cut;        /* of them, forgotten early by max_closed */
};

struct owfp_tracker;

struct owfp_tracker *owfp_tracker_new(const struct owfp_tracker_config *cfg,
                                      const struct owfp_track_events *ev, void *arg);
/* Ends every connection (OWFP_END_CAPTURE for live ones) and frees all. */
void owfp_tracker_free(struct owfp_tracker *t);

/* One decoded segment, in capture order. Returns 0, or -ENOMEM when a new
 * connection could not be allocated (the segment is then dropped). *conn
 * (if `conn` is not NULL) is the segment's connection, or NULL for a stray;
 * valid until the next tracker call. */
int owfp_tracker_segment(struct owfp_tracker *t, const struct owfp_pkt *p,
                         struct owfp_conn **conn);

/* Ends every live connection (OWFP_END_CAPTURE). */
void owfp_tracker_close_all(struct owfp_tracker *t);

/* Ends connections idle since before `now_us` minus their timeout. */
void owfp_tracker_expire(struct owfp_tracker *t, uint64_t now_us);

const struct owfp_tracker_stats *owfp_tracker_stats(const struct owfp_tracker *t);

/*
 * Looking ahead: a caller that knows the endpoints of segments to come can
 * have their connections' state fetched into the cache a few segments
 * before it is needed. Hints change nothing the tracker does.
 */
struct owfp_tracker_hint {
    struct owfp_conn_key key;
    uint64_t hash;
    struct owfp_conn *conn; /* the last lookup's answer, as of ... */
    uint64_t added, removed; /* ... these counts of the tracker's */
};

/* Makes the hint of a segment to come (ip_version, src, dst, sport and
 * dport of `p` are read) and asks for its slot in the table. */
void owfp_tracker_hint(const struct owfp_tracker *t, const struct owfp_pkt *p,
                       struct owfp_tracker_hint *h);
/* Asks for the connection's lines; best once the slot has arrived. */
void owfp_tracker_hint_fetch(const struct owfp_tracker *t, const struct owfp_tracker_hint *h);
/* The hint's connection, or NULL: a lookup (remembered in the hint while
 * it holds), nothing else. */
struct owfp_conn *owfp_tracker_hint_conn(const struct owfp_tracker *t, struct owfp_tracker_hint *h);

#endif
