/*
 * bench_stream_memory: bytes the stream layer adds to an open flow once its
 * stream state exists, with nothing held (default 100,000 flows).
 *
 * The stream state of a flow is allocated at its first owfp_stream_* call.
 * Rows:
 *   no stream    flows opened, no stream call: the flow alone (the baseline)
 *   0 callouts   one 64-byte indication per direction, no stream filter
 *   1, 4         the same with 1 or 4 no-op stream callouts (TERMINATING
 *                filters answering PERMIT, each in its own sublayer)
 * Every indication is permitted in full, so nothing is held when the
 * snapshot is taken. No ALE filters: the flows carry no context.
 *
 * Measured as deltas (heap: mallinfo2 uordblks + hblkhd, chunk headers and
 * padding included; rss: /proc/self/statm) around opening N flows ("flow")
 * and then around the two indications on each of them ("stream"); then all
 * flows are closed, retired memory is reclaimed, and the heap still
 * allocated is "kept". The flow table is grown before the snapshots (open
 * and close N flows once), as in bench_flow_memory. The breakdown line per
 * row reads the stream state of the first flow (internal structures,
 * malloc_usable_size + 8 bytes of chunk header per block).
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "common/rcu.h"
#include "engine/flow.h"
#include "stream/stream.h"

#define MAX_COUNTS 8
#define MAX_RUNS 101
#define NROWS 4

static const int row_callouts[NROWS] = {-1, 0, 1, 4}; /* -1: no stream call */

struct opts {
    uint64_t seed;
    uint32_t runs;
    uint32_t counts[MAX_COUNTS], ncounts;
};

static void usage(FILE *to)
{
    fprintf(to, "usage: bench_stream_memory [options]\n"
                "  --counts LIST   numbers of flows held open at once (default 100000)\n"
                "  --runs N        repetitions of each row (default 3)\n"
                "  --seed N        random seed for the flow endpoints (default 1)\n"
                "  --help          this text\n"
                "Prints heap and RSS bytes per open flow without stream state and after one\n"
                "64-byte indication per direction with 0, 1 and 4 no-op stream callouts\n"
                "(nothing held), the stream state's share, what stays allocated after\n"
                "closing (kept), a breakdown of one flow's stream state, and CPU ns per\n"
                "open, per flow for the two first indications, and per close.\n");
}

static void parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.seed = 1, .runs = 3, .counts = {100000}, .ncounts = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--seed")) {
            o->seed = b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--runs")) {
            o->runs = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--counts")) {
            o->ncounts = b_parse_list(a, v, o->counts, MAX_COUNTS, 1, 10000000), i++;
        } else {
            fprintf(stderr, "bench_stream_memory: unknown option %s\n", a);
            usage(stderr);
            exit(2);
        }
    }
    if (!o->runs || o->runs > MAX_RUNS || !o->ncounts) {
        fprintf(stderr, "bench_stream_memory: runs must be 1..%d\n", MAX_RUNS);
        exit(2);
    }
}

struct sample {
    double flow, stream, rss_flow, rss_stream, kept; /* bytes per flow */
    double open_ns, indicate_ns, close_ns;           /* CPU ns per flow */
};

/* malloc's view of one block: usable size plus the 8-byte chunk header. */
static size_t block(const void *p)
{
    return p ? malloc_usable_size((void *)p) + 8 : 0;
}

/* One line describing the first flow's stream state. */
static void breakdown(owfp_flow *flow, char *buf, size_t len)
{
    const struct owfp_flow *f = (const struct owfp_flow *)flow;
    const struct owfp_stream *s = f->stream;
    if (!s) {
        snprintf(buf, len, "no stream state");
        return;
    }
    size_t items = 0, nitems = 0;
    for (const struct owfp_item *it = s->delivered.head; it; it = it->next)
        items += block(it), nitems++;
    for (uint32_t k = 0; k < s->nstages; k++)
        for (int d = 0; d < 2; d++)
            for (const struct owfp_item *it = s->stages[k].d[d].q.head; it; it = it->next)
                items += block(it), nitems++;
    /* A one-stage path may live in the stream's own block. */
    size_t stages = s->stages == s->slot ? 0 : block(s->stages);
    size_t total = block(s) + stages + block(s->out[0].spans) +
                   block(s->out[1].spans) + items;
    snprintf(buf, len,
             "stream %zu + stages %zu (%" PRIu32 " x %zu) + spans %zu + %zu + items %zu (%zu "
             "delivered, kept until the next call) = %zu; descriptors: per thread",
             block(s), stages, s->nstages, sizeof(struct owfp_stage),
             block(s->out[0].spans), block(s->out[1].spans), items, nitems, total);
}

static struct sample run_once(const struct opts *o, uint32_t n, int callouts, owfp_flow **flows,
                              char *desc, size_t desclen)
{
    struct b_stream_env env;
    b_stream_env_up(&env, callouts > 0 ? (uint32_t)callouts : 0, FWP_ACTION_CALLOUT_TERMINATING,
                    b_stream_permit);
    struct b_rng r = {o->seed};
    struct owfp_flow_params p;
    static const uint8_t data[64] = {1, 2, 3};

    /* Grow the flow table first. */
    b_stream_flow(&r, &p);
    for (uint32_t i = 0; i < n; i++) {
        enum owfp_flow_verdict v;
        b_check("owfp_flow_open", owfp_flow_open(env.engine, &p, &flows[i], &v));
    }
    for (uint32_t i = 0; i < n; i++)
        owfp_flow_close(flows[i]);
    owfp_rcu_reclaim(true);
    malloc_trim(0);

    uint64_t heap0 = b_heap_bytes(), rss0 = b_rss_bytes();
    struct b_clock t0 = b_clock_now();
    for (uint32_t i = 0; i < n; i++) {
        enum owfp_flow_verdict v;
        b_stream_flow(&r, &p);
        b_check("owfp_flow_open", owfp_flow_open(env.engine, &p, &flows[i], &v));
    }
    struct b_clock opening = b_clock_since(t0);
    uint64_t heap1 = b_heap_bytes(), rss1 = b_rss_bytes();
    t0 = b_clock_now();
    if (callouts >= 0) {
        for (uint32_t i = 0; i < n; i++) {
            for (int d = 0; d < 2; d++) {
                struct owfp_stream_result res;
                b_check("owfp_stream_indicate",
                        owfp_stream_indicate(flows[i], (enum owfp_stream_direction)d, data,
                                             sizeof(data), 0, &res));
                if (res.dir[d].bytes != sizeof(data) || res.dir[d].held_bytes) {
                    fprintf(stderr, "bench_stream_memory: indication not passed in full\n");
                    exit(1);
                }
            }
        }
    }
    struct b_clock indicating = b_clock_since(t0);
    uint64_t heap2 = b_heap_bytes(), rss2 = b_rss_bytes();
    breakdown(flows[0], desc, desclen);
    t0 = b_clock_now();
    for (uint32_t i = 0; i < n; i++)
        owfp_flow_close(flows[i]);
    struct b_clock closing = b_clock_since(t0);
    owfp_rcu_reclaim(true);
    uint64_t heap3 = b_heap_bytes();
    b_stream_env_down(&env);
    return (struct sample){
        .flow = ((double)heap1 - (double)heap0) / n,
        .stream = ((double)heap2 - (double)heap1) / n,
        .rss_flow = ((double)rss1 - (double)rss0) / n,
        .rss_stream = ((double)rss2 - (double)rss1) / n,
        .kept = ((double)heap3 - (double)heap0) / n,
        .open_ns = (double)opening.cpu / n,
        .indicate_ns = (double)indicating.cpu / n,
        .close_ns = (double)closing.cpu / n,
    };
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    b_print_machine();
    printf("# bench_stream_memory: seed %" PRIu64 ", %" PRIu32
           " runs per row; struct owfp_flow %zu B, owfp_stream %zu B, owfp_stage %zu B,"
           " owfp_item %zu B, owfp_desc %zu B, owfp_span %zu B\n",
           o.seed, o.runs, sizeof(struct owfp_flow), sizeof(struct owfp_stream),
           sizeof(struct owfp_stage), sizeof(struct owfp_item), sizeof(struct owfp_desc),
           sizeof(struct owfp_span));
    printf("# heap bytes per open flow: flow = opening it, stream = one 64-byte indication\n"
           "# per direction (median [min..max] over the runs); total = flow + stream; rss:\n"
           "# medians; kept: heap per flow still allocated after closing; CPU ns per flow:\n"
           "# open, the two first indications, close (medians)\n");
    printf("%8s %10s %8s %22s %8s %8s %8s %8s %8s %9s %8s\n", "flows", "callouts", "flow",
           "stream bytes/flow", "total", "rss flow", "rss strm", "kept", "open_ns",
           "2 ind ns", "close_ns");
    fflush(stdout);
    uint32_t max = 0;
    for (uint32_t i = 0; i < o.ncounts; i++)
        max = o.counts[i] > max ? o.counts[i] : max;
    owfp_flow **flows = calloc(max, sizeof(*flows)); /* touched before the snapshots */
    if (!flows) {
        fprintf(stderr, "bench_stream_memory: out of memory\n");
        return 1;
    }
    memset(flows, 0, sizeof(*flows) * max);
    char desc[NROWS][512];
    struct b_clock start = b_clock_now();
    for (uint32_t c = 0; c < o.ncounts; c++) {
        for (int row = 0; row < NROWS; row++) {
            double fl[MAX_RUNS], st[MAX_RUNS], rf[MAX_RUNS], rs[MAX_RUNS], kept[MAX_RUNS];
            double on[MAX_RUNS], in[MAX_RUNS], cn[MAX_RUNS];
            for (uint32_t run = 0; run < o.runs; run++) {
                struct sample s =
                    run_once(&o, o.counts[c], row_callouts[row], flows, desc[row], sizeof(desc[row]));
                fl[run] = s.flow;
                st[run] = s.stream;
                rf[run] = s.rss_flow;
                rs[run] = s.rss_stream;
                kept[run] = s.kept;
                on[run] = s.open_ns;
                in[run] = s.indicate_ns;
                cn[run] = s.close_ns;
            }
            struct b_stats f = b_summarise(fl, o.runs), s = b_summarise(st, o.runs);
            char sb[64], cb[16];
            snprintf(sb, sizeof(sb), "%.1f [%.1f..%.1f]", s.median, s.min, s.max);
            if (row_callouts[row] < 0)
                snprintf(cb, sizeof(cb), "no stream");
            else
                snprintf(cb, sizeof(cb), "%d", row_callouts[row]);
            printf("%8" PRIu32 " %10s %8.1f %22s %8.1f %8.1f %8.1f %8.2f %8.0f %9.0f %8.0f\n",
                   o.counts[c], cb, f.median, sb, f.median + s.median,
                   b_summarise(rf, o.runs).median, b_summarise(rs, o.runs).median,
                   b_summarise(kept, o.runs).median, b_summarise(on, o.runs).median,
                   b_summarise(in, o.runs).median, b_summarise(cn, o.runs).median);
            fflush(stdout);
        }
        printf("# breakdown of the first flow's stream state, bytes (malloc chunks):\n");
        for (int row = 1; row < NROWS; row++)
            printf("#   %d callouts: %s\n", row_callouts[row], desc[row]);
    }
    struct b_clock total = b_clock_since(start);
    printf("# total: wall %.1f s, CPU %.1f s; load average now %.2f\n", (double)total.wall / 1e9,
           (double)total.cpu / 1e9, b_loadavg());
    free(flows);
    return 0;
}
