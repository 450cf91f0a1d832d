/* Proxy counters. Each worker writes its own set (single writer, relaxed
 * atomics so readers on other threads see whole values); the control
 * thread sums them for SIGUSR1 and the metrics endpoint. */
#ifndef OPENWFP_PROXY_STATS_H
#define OPENWFP_PROXY_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>

/* X(name, help) for every counter; gauges are marked in stats.c. */
#define OWFP_PROXY_COUNTERS(X)                                                              \
    X(connections_accepted, "client connections accepted")                                  \
    X(connections_closed, "connections finished (any way)")                                 \
    X(connections_rejected, "connections reset at accept: --max-connections reached")       \
    X(upstream_failures, "upstream connects refused, unreachable or timed out")             \
    X(ale_blocked, "connections blocked at ALE_FLOW_ESTABLISHED")                           \
    X(dropped, "connections reset by DROP_CONNECTION or FwpsFlowAbort0")                    \
    X(peer_resets, "connections aborted by a peer's RST or a socket error")                 \
    X(idle_timeouts, "connections reset after --idle-timeout")                              \
    X(defers, "times a direction was deferred (reading stopped until continue)")           \
    X(buffer_limit_hits, "times a flow hit --max-buffered or the total budget")             \
    X(engine_errors, "engine calls that failed (the connection was reset)")                 \
    X(offloaded_splice, "flows moved to splice(2) after ALLOW_CONNECTION")                  \
    X(offloaded_copy, "flows moved to the plain copy loop (splice pipes unavailable)")     \
    X(accept_errors, "accept(2) or upstream socket(2) failures (e.g. out of descriptors)")  \
    X(bytes_read_send, "client-to-server bytes read")                                       \
    X(bytes_read_receive, "server-to-client bytes read")                                    \
    X(bytes_permitted_send, "client-to-server bytes permitted by the callouts")             \
    X(bytes_permitted_receive, "server-to-client bytes permitted by the callouts")          \
    X(bytes_injected_send, "client-to-server bytes injected by callouts")                   \
    X(bytes_injected_receive, "server-to-client bytes injected by callouts")                \
    X(bytes_blocked_send, "client-to-server bytes blocked or dropped")                      \
    X(bytes_blocked_receive, "server-to-client bytes blocked or dropped")                   \
    X(bytes_offloaded_send, "client-to-server bytes relayed after offload")                 \
    X(bytes_offloaded_receive, "server-to-client bytes relayed after offload")

struct owfp_proxy_stats {
#define OWFP_STAT_FIELD(name, help) _Atomic uint64_t name;
    OWFP_PROXY_COUNTERS(OWFP_STAT_FIELD)
#undef OWFP_STAT_FIELD
};

/* Plain values, for sums and output. */
struct owfp_proxy_totals {
#define OWFP_STAT_FIELD(name, help) uint64_t name;
    OWFP_PROXY_COUNTERS(OWFP_STAT_FIELD)
#undef OWFP_STAT_FIELD
    uint64_t connections_open;
    uint64_t buffered_bytes;
};

/* The one writer adds: a load and a store, no locked instruction. */
#define OWFP_STAT_ADD(st, field, n)                                                       \
    atomic_store_explicit(&(st)->field,                                                   \
                          atomic_load_explicit(&(st)->field, memory_order_relaxed) + (n), \
                          memory_order_relaxed)

void owfp_stats_sum(struct owfp_proxy_totals *t, const struct owfp_proxy_stats *s);
/* The "stats" log line (text or JSON, as the log is set up). */
void owfp_stats_log(const struct owfp_proxy_totals *t);
/* The Prometheus text exposition format into buf; returns the length. */
size_t owfp_stats_prometheus(char *buf, size_t n, const struct owfp_proxy_totals *t);

#endif
