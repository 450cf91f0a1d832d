/*
 * openwfp data-plane API: what a data plane (capture replay, proxy, test or
 * fuzz harness) calls to drive the filter engine. Callouts never see this
 * header; they use the WDK names in <fwpsk.h> and <fwpmk.h>.
 *
 * Conventions
 * - Every function returns an NTSTATUS (int32_t; negative = failure), the
 *   same convention as the WDK functions, so one status space covers both.
 * - The engine is a process-wide singleton, as the Windows filter engine is
 *   per machine: the WDK functions (FwpsCalloutRegister0, ...) take no engine
 *   argument. Create it before any callout registers; destroy it last.
 * - Threads: any thread may open flows. One flow is driven by one thread at a
 *   time (the data plane serialises its calls per flow); different flows run
 *   in parallel. Filter and callout changes are safe while classifies run.
 * - Ownership: pointers passed in are borrowed for the duration of the call
 *   unless stated otherwise; nothing returned needs freeing unless stated.
 */
#ifndef OPENWFP_OPENWFP_H
#define OPENWFP_OPENWFP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t owfp_status;

typedef struct owfp_engine owfp_engine;
typedef struct owfp_flow owfp_flow;

struct owfp_engine_config {
    /* Reserved for future options; zero-initialise. */
    uint32_t flags;
};

/* Creates the process-wide engine. A second create before destroy fails with
 * STATUS_FWP_ALREADY_EXISTS. `config` may be NULL. */
owfp_status owfp_engine_create(const struct owfp_engine_config *config, owfp_engine **engine);

/* Tears the engine down: every open flow is closed (flowDeleteFn runs for
 * each remaining context), every session is closed (dynamic objects deleted,
 * DELETE notifications sent), remaining filters are deleted with DELETE
 * notifications, callouts still registered are dropped without further calls.
 * No other thread may use the engine during or after this call. */
void owfp_engine_destroy(owfp_engine *engine);

/* The engine created by owfp_engine_create, or NULL. */
owfp_engine *owfp_engine_current(void);

enum owfp_direction {
    OWFP_OUTBOUND = 0, /* the local side initiated the connection (FWP_DIRECTION_OUTBOUND) */
    OWFP_INBOUND = 1,  /* the remote side initiated it (FWP_DIRECTION_INBOUND) */
};

/* A connection endpoint as the local host sees it. Addresses are in network
 * byte order (IPv4 in the first 4 bytes); ports in host byte order. */
struct owfp_flow_params {
    uint8_t ip_version; /* 4 or 6 */
    uint8_t protocol;   /* IP protocol number; 6 = TCP */
    uint8_t direction;  /* enum owfp_direction */
    uint8_t local_addr[16];
    uint8_t remote_addr[16];
    uint16_t local_port;
    uint16_t remote_port;
    uint32_t condition_flags;   /* FWP_CONDITION_FLAG_* (e.g. IS_LOOPBACK) */
    uint64_t process_id;        /* reported in metadata; 0 when unknown */
    /* Application path as UTF-16 with a terminating 0, or NULL. Borrowed for the call. */
    const uint16_t *app_path;
    uint64_t interface_luid;    /* FWPS_FIELD_*_IP_LOCAL_INTERFACE */
    uint32_t interface_index;
    uint32_t interface_type;    /* IF_TYPE_* (6 = ethernet) */
    uint32_t compartment_id;    /* 1 = default compartment */
};

enum owfp_flow_verdict {
    OWFP_FLOW_PERMITTED = 0, /* ALE_FLOW_ESTABLISHED permitted the connection */
    OWFP_FLOW_BLOCKED = 1,   /* a filter or callout blocked it: tear it down */
};

/* Opens a flow and classifies it at ALE_FLOW_ESTABLISHED_V4/V6 (spec E1):
 * once, with the endpoint's values; callouts may associate flow contexts
 * there. On success *flow is valid until owfp_flow_close(), whatever the
 * verdict (a blocked flow still needs closing so contexts are deleted).
 * Returns STATUS_INVALID_PARAMETER for bad params, STATUS_FWP_TCPIP_NOT_READY
 * with no engine, STATUS_INSUFFICIENT_RESOURCES when out of memory. */
owfp_status owfp_flow_open(owfp_engine *engine, const struct owfp_flow_params *params,
                           owfp_flow **flow, enum owfp_flow_verdict *verdict);

/* The 64-bit run-time flow id callouts see as inMetaValues->flowHandle. */
uint64_t owfp_flow_id(const owfp_flow *flow);

/* Set once FwpsFlowAbort0 was called for the flow: the data plane should
 * reset the connection and close the flow. */
int owfp_flow_aborted(const owfp_flow *flow);

/* Ends the flow: every context still associated gets its flowDeleteFn,
 * exactly once (spec F7). `flow` is invalid afterwards. */
void owfp_flow_close(owfp_flow *flow);

/* ---- The stream layer ---------------------------------------------------
 *
 * The data plane hands the engine each direction's TCP payload in order; the
 * engine runs the flow's stream callouts (STREAM_V4/V6, spec §10) and answers
 * with what to deliver, in order, per direction.
 *
 * Buffers: `data` passed to owfp_stream_indicate() is borrowed. The engine
 * never copies it to pass it on: permitted bytes come back as spans pointing
 * into it. Only bytes the engine must keep after the call (held by a callout
 * with NEED_MORE_DATA or DEFER) are copied, once, into flow-owned memory.
 * Spans stay valid until the next owfp_stream_*() call on the same flow or
 * owfp_flow_close(): the caller keeps its input buffer until then, and
 * delivers (or copies) the spans before calling again.
 *
 * Threads: the owner thread of a flow makes every owfp_stream_*() call for it.
 * Callouts may inject or continue from other threads; the engine then calls
 * the flow's wake-up function (from that thread) and the owner collects the
 * results with owfp_stream_poll().
 */

enum owfp_stream_direction {
    OWFP_STREAM_SEND = 0,    /* local -> remote (FWPS_STREAM_FLAG_SEND) */
    OWFP_STREAM_RECEIVE = 1, /* remote -> local (FWPS_STREAM_FLAG_RECEIVE) */
};

/* Modifiers for owfp_stream_indicate (spec S9, S11). */
#define OWFP_STREAM_PUSH 0x1      /* PSH seen: RECEIVE_PUSH on inbound data */
#define OWFP_STREAM_URGENT 0x2    /* urgent data: *_EXPEDITED */
#define OWFP_STREAM_NODELAY 0x4   /* SEND_NODELAY on outbound data */

enum owfp_span_origin {
    OWFP_SPAN_ORIGINAL = 0, /* bytes the data plane indicated, permitted */
    OWFP_SPAN_INJECTED = 1, /* bytes a callout injected */
};

struct owfp_span {
    const uint8_t *data;
    size_t len;
    uint32_t origin; /* enum owfp_span_origin */
};

/* Direction state bits. */
#define OWFP_DIR_HELD 0x01     /* bytes wait inside the engine (NEED_MORE_DATA) */
#define OWFP_DIR_DEFERRED 0x02 /* a callout deferred: stop reading this direction */
#define OWFP_DIR_FIN 0x04      /* the FIN is released: shut the direction down after the spans */
#define OWFP_DIR_CLOSED 0x08   /* the data plane indicated FIN or RST for it */

/* Flow state bits. */
#define OWFP_FLOW_DROPPED 0x01     /* DROP_CONNECTION or FwpsFlowAbort0: reset both sides */
#define OWFP_FLOW_OFFLOADABLE 0x02 /* no stream callout left and all allow offload (spec O1, O4) */

struct owfp_stream_output {
    const struct owfp_span *spans; /* in stream order */
    size_t nspans;
    uint64_t bytes;      /* sum of span lengths */
    uint32_t state;      /* OWFP_DIR_* */
    uint64_t held_bytes; /* bytes inside the engine for this direction */
};

struct owfp_stream_result {
    struct owfp_stream_output dir[2]; /* indexed by enum owfp_stream_direction */
    uint32_t flow_state;              /* OWFP_FLOW_* */
};

/* Indicates `len` (> 0) new in-order bytes of one direction. */
owfp_status owfp_stream_indicate(owfp_flow *flow, enum owfp_stream_direction dir,
                                 const void *data, size_t len, uint32_t flags,
                                 struct owfp_stream_result *result);
/* The direction's FIN (spec S8): a zero-length DISCONNECT indication. */
owfp_status owfp_stream_fin(owfp_flow *flow, enum owfp_stream_direction dir,
                            struct owfp_stream_result *result);
/* A RST seen travelling in `dir` (spec S10): callouts get a zero-length ABORT
 * indication, held data is discarded and the flow is done. */
owfp_status owfp_stream_abort(owfp_flow *flow, enum owfp_stream_direction dir,
                              struct owfp_stream_result *result);
/* `len` bytes of the direction are lost for good (a hole in a capture):
 * they are never indicated. Every stream callout of the direction gets them
 * added to `missedBytes` of its next indication (spec S7; docs/semantics.md,
 * "Gaps"). The gap sits before any byte not yet shown to that callout. */
owfp_status owfp_stream_gap(owfp_flow *flow, enum owfp_stream_direction dir, uint64_t len,
                            struct owfp_stream_result *result);
/* Collects what other threads caused (out-of-band injection,
 * FwpsStreamContinue0) since the last call. */
owfp_status owfp_stream_poll(owfp_flow *flow, struct owfp_stream_result *result);

/* Called from whatever thread queued work for `flow` (an injecting or
 * continuing callout); must be cheap and thread-safe, e.g. write an eventfd.
 * The owner thread then calls owfp_stream_poll(). */
typedef void (*owfp_wakeup_fn)(void *arg, owfp_flow *flow);
owfp_status owfp_flow_set_wakeup(owfp_flow *flow, owfp_wakeup_fn fn, void *arg);

/* A hint for a data plane that knows which flow its next calls are for:
 * asks the CPU for the flow's state ahead of the call, and has no other
 * effect. Each step reads what the one before fetched, so a caller looking
 * a few packets ahead calls it with depth 0 (the flow), then, a packet or
 * so later, 1 (its stream state), then 2 (the stages of its stream path).
 * On the owner thread only. */
void owfp_flow_prefetch(owfp_flow *flow, unsigned depth);

/* Engine statistics for tests and benchmarks. */
struct owfp_engine_stats {
    uint64_t flows_open;
    uint64_t flow_contexts;
    uint64_t filters;
    uint64_t callouts_registered;
    uint64_t classifies;
};
void owfp_engine_get_stats(const owfp_engine *engine, struct owfp_engine_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
