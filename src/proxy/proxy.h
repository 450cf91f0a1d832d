/*
 * `openwfp proxy`: live TCP connections through the filter engine.
 *
 * Each accepted client connection and its upstream connection form one WFP
 * flow: ALE_FLOW_ESTABLISHED when both legs are connected, client-to-server
 * bytes as SEND and server-to-client bytes as RECEIVE stream indications
 * (the client is the local side), FIN and RST as DISCONNECT and ABORT, the
 * flow closed (flowDeleteFn) when both legs are gone. docs/proxy.md.
 *
 * Worker threads each run one epoll loop with their own SO_REUSEPORT
 * listeners; a connection stays on the worker that accepted it, so the
 * engine sees every call for a flow from one thread (spec S12).
 */
#ifndef OPENWFP_PROXY_PROXY_H
#define OPENWFP_PROXY_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/endpoint.h"

/* One listening address: explicit (--listen with --upstream) or
 * transparent (--tproxy: the upstream is each connection's original
 * destination). */
struct owfp_proxy_route {
    struct owfp_endpoint listen;
    struct owfp_endpoint upstream;
    bool transparent;
};

enum owfp_offload_mode {
    OWFP_OFFLOAD_SPLICE = 0, /* splice(2) through a pipe once a flow is offloadable */
    OWFP_OFFLOAD_NONE = 1,   /* keep relaying through the engine's result path */
};

struct owfp_proxy_options {
    const struct owfp_proxy_route *routes;
    size_t nroutes;
    unsigned workers;           /* 0: one per online CPU */
    bool spoof_source;          /* transparent mode: connect upstream from the client's address */
    enum owfp_offload_mode offload;
    uint64_t max_conns;         /* 0: unlimited */
    uint64_t max_buffered;      /* per flow and direction, bytes waiting for a slow socket */
    uint64_t max_buffered_total;
    uint64_t connect_timeout_ms;
    uint64_t idle_timeout_ms;   /* 0: none */
    uint64_t grace_ms;          /* after SIGTERM/SIGINT: how long flows may finish */
    const struct owfp_endpoint *metrics; /* Prometheus endpoint, or NULL */
};

/* Runs until SIGTERM or SIGINT and the grace period. The engine and its
 * callouts must be set up; every flow is closed when this returns. Returns
 * 0, or 2 when the proxy could not start (the reason is logged). */
int owfp_proxy_run(const struct owfp_proxy_options *opt);

#endif
