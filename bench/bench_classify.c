/*
 * bench_classify: cost of one ALE_FLOW_ESTABLISHED_V4 classify as the filter
 * count in the layer grows (10, 100, 1,000, 10,000, 100,000 by default).
 *
 * For every filter count, a fresh engine gets the generated filters (one
 * transaction, so one view build), then the same seeded sequence of flows is
 * run through it `runs` times, measured three ways:
 *   open+close  owfp_flow_open + owfp_flow_close per flow (the data-plane API)
 *   classify    open+close minus the open+close median with 0 filters
 *   direct      the engine's classify entry (owfp_ale_flow_established, an
 *               internal function) on one flow held open: the classify alone
 * Each run's ns/flow is one sample; the table shows median [min..max] of the
 * thread's CPU time (the machine may be shared) and the median wall time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "engine/ale.h"

#define MAX_SIZES 8
#define MAX_RUNS 101
#define MIN_FLOWS 5000u

struct opts {
    uint64_t seed;
    uint32_t runs;
    uint32_t flows;
    uint32_t budget_ms;
    uint32_t callout_every;
    uint32_t sizes[MAX_SIZES];
    uint32_t nsizes;
    int mixes; /* bit 0: mixed, bit 1: indexable */
};

static void usage(FILE *to)
{
    fprintf(to, "usage: bench_classify [options]\n"
                "  --sizes LIST        filter counts, comma separated\n"
                "                      (default 10,100,1000,10000,100000)\n"
                "  --runs N            measured repetitions per size (default 7)\n"
                "  --flows N           at most N flows per repetition (default 200000)\n"
                "  --budget-ms N       fewer flows (not below 5000) when a repetition would\n"
                "                      take more than N ms of CPU (default 120)\n"
                "  --mix M             mixed | indexable | both (default both)\n"
                "  --callout-every N   2 of every N filters are callout filters (default 500)\n"
                "  --seed N            random seed for filters and flows (default 1)\n"
                "  --help              this text\n"
                "Prints CPU ns per flow (median [min..max] over the runs; wall-clock median\n"
                "beside) for open+close, for classify alone (open+close minus the 0-filter\n"
                "baseline) and for a direct call of the engine's classify on one open flow,\n"
                "then the growth ratios vs. the smallest size. The filter and flow mix is\n"
                "described in bench_common.c.\n");
}

static void parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.seed = 1,
                       .runs = 7,
                       .flows = 200000,
                       .budget_ms = 120,
                       .callout_every = 500,
                       .sizes = {10, 100, 1000, 10000, 100000},
                       .nsizes = 5,
                       .mixes = 3};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--seed")) {
            o->seed = b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--runs")) {
            o->runs = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--flows")) {
            o->flows = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--budget-ms")) {
            o->budget_ms = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--callout-every")) {
            o->callout_every = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--mix")) {
            if (!v || (strcmp(v, "mixed") && strcmp(v, "indexable") && strcmp(v, "both"))) {
                fprintf(stderr, "bench_classify: --mix takes mixed, indexable or both\n");
                exit(2);
            }
            o->mixes = !strcmp(v, "mixed") ? 1 : !strcmp(v, "indexable") ? 2 : 3;
            i++;
        } else if (!strcmp(a, "--sizes")) {
            o->nsizes = b_parse_list(a, v, o->sizes, MAX_SIZES, 0, UINT32_MAX), i++;
        } else {
            fprintf(stderr, "bench_classify: unknown option %s\n", a);
            usage(stderr);
            exit(2);
        }
    }
    if (!o->runs || o->runs > MAX_RUNS || !o->flows || !o->nsizes) {
        fprintf(stderr, "bench_classify: need 1..%d runs, flows > 0 and sizes\n", MAX_RUNS);
        exit(2);
    }
}

struct result {
    uint32_t filters;
    uint32_t flows; /* per run */
    double commit_ms;
    struct b_stats open_close, direct;   /* CPU time */
    double open_close_wall, direct_wall; /* medians */
    double decided_pct, blocked_pct, callouts_per_flow;
};

struct pass {
    double cpu, wall; /* ns per flow */
};

static struct pass per_flow(struct b_clock c, uint32_t n)
{
    return (struct pass){(double)c.cpu / n, (double)c.wall / n};
}

/* One pass of open+close over the first n flows. */
static struct pass pass_open_close(owfp_engine *e, const struct owfp_flow_params *p, uint32_t n,
                                   uint32_t *blocked)
{
    struct b_clock t0 = b_clock_now();
    uint32_t nb = 0;
    for (uint32_t i = 0; i < n; i++) {
        owfp_flow *f;
        enum owfp_flow_verdict v;
        if (owfp_flow_open(e, &p[i], &f, &v) != STATUS_SUCCESS) {
            fprintf(stderr, "bench_classify: owfp_flow_open failed\n");
            exit(1);
        }
        nb += v == OWFP_FLOW_BLOCKED;
        owfp_flow_close(f);
    }
    struct pass r = per_flow(b_clock_since(t0), n);
    if (blocked)
        *blocked = nb;
    return r;
}

/* One pass of the engine's classify on one held flow over the first n flows. */
static struct pass pass_direct(owfp_engine *e, struct owfp_flow *held,
                               const struct owfp_flow_params *p, uint32_t n, uint32_t *decided)
{
    struct b_clock t0 = b_clock_now();
    uint32_t nd = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct owfp_verdict v;
        owfp_ale_flow_established((struct owfp_engine *)e, held, &p[i], &v);
        nd += v.filter_id != 0;
    }
    struct pass r = per_flow(b_clock_since(t0), n);
    if (decided)
        *decided = nd;
    return r;
}

static void measure(const struct opts *o, enum b_mix mix, uint32_t nfilters,
                    const struct owfp_flow_params *flows, struct result *res)
{
    struct b_env env;
    b_env_up(&env);
    struct b_rng r = {o->seed * 0x100000001b3u + nfilters};
    b_check("FwpmTransactionBegin0", FwpmTransactionBegin0(env.session, 0));
    b_add_filters(env.session, &r, mix, nfilters, o->callout_every, NULL);
    struct b_clock t = b_clock_now();
    b_check("FwpmTransactionCommit0", FwpmTransactionCommit0(env.session));
    res->filters = nfilters;
    res->commit_ms = (double)b_clock_since(t).cpu / 1e6;

    /* Warm-up pass, which also sizes the runs to the time budget. */
    uint32_t n = o->flows < MIN_FLOWS ? o->flows : MIN_FLOWS;
    struct pass est = pass_open_close(env.engine, flows, n, NULL);
    double fit = (double)o->budget_ms * 1e6 / est.cpu;
    if (fit > n)
        n = fit >= o->flows ? o->flows : (uint32_t)fit;
    res->flows = n;

    double oc[MAX_RUNS], ocw[MAX_RUNS], dc[MAX_RUNS], dcw[MAX_RUNS];
    uint32_t blocked = 0, decided = 0;
    pass_open_close(env.engine, flows, n, NULL);
    for (uint32_t run = 0; run < o->runs; run++) {
        struct pass x = pass_open_close(env.engine, flows, n, &blocked);
        oc[run] = x.cpu;
        ocw[run] = x.wall;
    }

    owfp_flow *held;
    enum owfp_flow_verdict v;
    b_check("owfp_flow_open", owfp_flow_open(env.engine, &flows[0], &held, &v));
    pass_direct(env.engine, (struct owfp_flow *)held, flows, n, NULL); /* warm-up */
    uint64_t calls0 = b_callout_calls;
    for (uint32_t run = 0; run < o->runs; run++) {
        struct pass x = pass_direct(env.engine, (struct owfp_flow *)held, flows, n, &decided);
        dc[run] = x.cpu;
        dcw[run] = x.wall;
    }
    uint64_t calls = b_callout_calls - calls0;
    owfp_flow_close(held);

    res->open_close = b_summarise(oc, o->runs);
    res->direct = b_summarise(dc, o->runs);
    res->open_close_wall = b_summarise(ocw, o->runs).median;
    res->direct_wall = b_summarise(dcw, o->runs).median;
    res->blocked_pct = 100.0 * blocked / n;
    res->decided_pct = 100.0 * decided / n;
    res->callouts_per_flow = (double)calls / ((double)n * o->runs);
    b_env_down(&env);
}

static void report(const char *mix_name, const struct result *base, const struct result *res,
                   uint32_t n)
{
    printf("\n## mix=%s: CPU ns per flow, median [min..max] over the runs (wall: median)\n",
           mix_name);
    printf("%8s %9s %9s %20s %7s %8s %20s %7s %7s %7s %8s\n", "filters", "commit_ms", "flows/run",
           "open+close", "wall", "classify", "direct classify", "wall", "decided", "blocked",
           "callouts");
    const struct result *rows[MAX_SIZES + 1];
    rows[0] = base;
    for (uint32_t i = 0; i < n; i++)
        rows[i + 1] = &res[i];
    for (uint32_t i = 0; i <= n; i++) {
        const struct result *x = rows[i];
        char oc[64], dc[64];
        snprintf(oc, sizeof(oc), "%.0f [%.0f..%.0f]", x->open_close.median, x->open_close.min,
                 x->open_close.max);
        snprintf(dc, sizeof(dc), "%.0f [%.0f..%.0f]", x->direct.median, x->direct.min,
                 x->direct.max);
        printf("%8" PRIu32 " %9.1f %9" PRIu32
               " %20s %7.0f %8.0f %20s %7.0f %6.1f%% %6.1f%% %8.3f\n",
               x->filters, x->commit_ms, x->flows, oc, x->open_close_wall,
               x->open_close.median - base->open_close.median, dc, x->direct_wall, x->decided_pct,
               x->blocked_pct, x->callouts_per_flow);
    }
    printf("growth vs %" PRIu32 " filters (filter ratio -> cost ratio, CPU medians):\n",
           res[0].filters);
    double c0 = res[0].open_close.median - base->open_close.median;
    for (uint32_t i = 1; i < n; i++) {
        double ci = res[i].open_close.median - base->open_close.median;
        printf("  %" PRIu32 "/%" PRIu32 " = x%.0f filters: open+close x%.2f, classify x%.2f, "
               "direct x%.2f\n",
               res[i].filters, res[0].filters, (double)res[i].filters / res[0].filters,
               res[i].open_close.median / res[0].open_close.median, c0 > 0 ? ci / c0 : 0.0,
               res[i].direct.median / res[0].direct.median);
    }
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    b_print_machine();
    printf("# bench_classify: seed %" PRIu64 ", %" PRIu32 " runs x %" PRIu32
           " flows, callout filters 2 per %" PRIu32 "\n",
           o.seed, o.runs, o.flows, o.callout_every);
    printf("# columns: decided = flows where a filter's PERMIT/BLOCK stood; callouts = callout\n"
           "# invocations per classify; classify = open+close - open+close(0 filters)\n");
    fflush(stdout);

    struct owfp_flow_params *flows = malloc(sizeof(*flows) * o.flows);
    if (!flows) {
        fprintf(stderr, "bench_classify: out of memory\n");
        return 1;
    }
    struct b_rng fr = {o.seed ^ UINT64_C(0xf10f10f10)};
    for (uint32_t i = 0; i < o.flows; i++)
        b_gen_flow(&fr, &flows[i]);

    struct b_clock start = b_clock_now();
    for (int m = 0; m < 2; m++) {
        if (!(o.mixes & (1 << m)))
            continue;
        enum b_mix mix = m ? B_MIX_INDEXABLE : B_MIX_MIXED;
        struct result base, res[MAX_SIZES];
        measure(&o, mix, 0, flows, &base);
        for (uint32_t i = 0; i < o.nsizes; i++)
            measure(&o, mix, o.sizes[i], flows, &res[i]);
        report(m ? "indexable" : "mixed", &base, res, o.nsizes);
        fflush(stdout);
    }
    struct b_clock total = b_clock_since(start);
    printf("\n# total: wall %.1f s, CPU %.1f s; load average now %.2f\n", (double)total.wall / 1e9,
           (double)total.cpu / 1e9, b_loadavg());
    free(flows);
    return 0;
}
