#include "proxy/stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "proxy/log.h"

void owfp_stats_sum(struct owfp_proxy_totals *t, const struct owfp_proxy_stats *s)
{
#define OWFP_STAT_SUM(name, help) t->name += atomic_load_explicit(&s->name, memory_order_relaxed);
    OWFP_PROXY_COUNTERS(OWFP_STAT_SUM)
#undef OWFP_STAT_SUM
}

void owfp_stats_log(const struct owfp_proxy_totals *t)
{
    struct owfp_log_line l;
    owfp_log_begin(&l, OWFP_LOG_INFO, "stats");
#define OWFP_STAT_LOG(name, help) owfp_log_u64(&l, #name, t->name);
    OWFP_PROXY_COUNTERS(OWFP_STAT_LOG)
#undef OWFP_STAT_LOG
    owfp_log_u64(&l, "connections_open", t->connections_open);
    owfp_log_u64(&l, "buffered_bytes", t->buffered_bytes);
    owfp_log_end(&l);
}

struct sink {
    char *buf;
    size_t n, len;
};

static void put(struct sink *s, const char *name, const char *help, const char *type, uint64_t v)
{
    if (s->n - s->len < 2)
        return; /* full */
    int k = snprintf(s->buf + s->len, s->n - s->len,
                     "# HELP openwfp_proxy_%s %s\n# TYPE openwfp_proxy_%s %s\nopenwfp_proxy_%s %" PRIu64
                     "\n",
                     name, help, name, type, name, v);
    if (k > 0 && (size_t)k < s->n - s->len) {
        s->len += (size_t)k;
    } else {
        s->buf[s->len] = 0; /* truncated: whole lines only, and nothing after */
        s->n = s->len;      /* the caller sized buf for every counter */
    }
}

size_t owfp_stats_prometheus(char *buf, size_t n, const struct owfp_proxy_totals *t)
{
    struct sink s = {buf, n, 0};
    buf[0] = 0;
#define OWFP_STAT_PROM(name, help) put(&s, #name "_total", help, "counter", t->name);
    OWFP_PROXY_COUNTERS(OWFP_STAT_PROM)
#undef OWFP_STAT_PROM
    put(&s, "connections_open", "connections being relayed now", "gauge", t->connections_open);
    put(&s, "buffered_bytes", "bytes waiting in the proxy for a slow socket", "gauge",
        t->buffered_bytes);
    return s.len;
}
