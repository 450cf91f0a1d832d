/* The Prometheus text endpoint (--metrics ADDR:PORT): GET /metrics answers
 * the proxy's counters. Served by the control thread, one short request at
 * a time, so a slow scraper cannot hold a worker. */
#ifndef OPENWFP_PROXY_METRICS_H
#define OPENWFP_PROXY_METRICS_H

#include "proxy/endpoint.h"

struct owfp_metrics;
struct owfp_proxy;

/* NULL after logging why the address could not be opened. */
struct owfp_metrics *owfp_metrics_open(const struct owfp_endpoint *ep);
int owfp_metrics_fd(const struct owfp_metrics *m);
/* Accepts and answers whatever is waiting. */
void owfp_metrics_serve(struct owfp_metrics *m, const struct owfp_proxy *px);
void owfp_metrics_close(struct owfp_metrics *m);

#endif
