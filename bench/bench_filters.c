/*
 * bench_filters: FwpmFilterAdd0 / FwpmFilterDeleteById0 rates into one layer
 * (ALE_FLOW_ESTABLISHED_V4), with the filter mix of bench_common.c.
 *
 *   explicit  FwpmTransactionBegin0, N adds (or deletes), FwpmTransactionCommit0:
 *             the layer view is rebuilt once, at commit.
 *   implicit  N adds (or deletes) with no transaction open: every call is its
 *             own transaction, and its commit rebuilds the view of the whole
 *             layer, so call k costs O(k) and N calls cost O(N^2).
 *
 * Filters are generated before the clock starts; every repetition starts
 * from a fresh engine with an empty layer. Rates are filters per second of
 * wall time, including the commit; medians [min..max] over the runs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define MAX_SIZES 8
#define MAX_RUNS 101

struct opts {
    uint64_t seed;
    uint32_t runs, implicit_runs;
    uint32_t callout_every;
    uint32_t txn[MAX_SIZES], ntxn;
    uint32_t implicit[MAX_SIZES], nimplicit;
    enum b_mix mix;
};

static void usage(FILE *to)
{
    fprintf(to,
            "usage: bench_filters [options]\n"
            "  --txn-sizes LIST       filter counts added/deleted in one explicit transaction\n"
            "                         (default 1000,10000,100000)\n"
            "  --implicit-sizes LIST  filter counts added/deleted one implicit transaction\n"
            "                         per call (default 1000,10000)\n"
            "  --runs N               repetitions of each explicit size (default 5)\n"
            "  --implicit-runs N      repetitions of each implicit size (default 1)\n"
            "  --mix M                mixed | indexable (default mixed)\n"
            "  --callout-every N      2 of every N filters are callout filters (default 500)\n"
            "  --seed N               random seed (default 1)\n"
            "  --help                 this text\n"
            "Prints filters/s for add and delete, explicit and implicit transactions; for\n"
            "implicit transactions also the cost of one call at the start and at the end\n"
            "(first and last 10%% of the calls), which shows the per-call view rebuild.\n");
}

static uint32_t parse_list(const char *opt, const char *v, uint32_t *out)
{
    if (!v) {
        fprintf(stderr, "bench_filters: %s needs a value\n", opt);
        exit(2);
    }
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", v);
    uint32_t n = 0;
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == MAX_SIZES) {
            fprintf(stderr, "bench_filters: at most %d sizes\n", MAX_SIZES);
            exit(2);
        }
        out[n++] = (uint32_t)b_parse_u64(opt, t);
        if (!out[n - 1]) {
            fprintf(stderr, "bench_filters: sizes must be > 0\n");
            exit(2);
        }
    }
    return n;
}

static void parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.seed = 1, .runs = 5, .implicit_runs = 1, .callout_every = 500,
                       .txn = {1000, 10000, 100000}, .ntxn = 3,
                       .implicit = {1000, 10000}, .nimplicit = 2, .mix = B_MIX_MIXED};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--seed")) {
            o->seed = b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--runs")) {
            o->runs = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--implicit-runs")) {
            o->implicit_runs = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--callout-every")) {
            o->callout_every = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--txn-sizes")) {
            o->ntxn = parse_list(a, v, o->txn), i++;
        } else if (!strcmp(a, "--implicit-sizes")) {
            o->nimplicit = parse_list(a, v, o->implicit), i++;
        } else if (!strcmp(a, "--mix")) {
            if (!v || (strcmp(v, "mixed") && strcmp(v, "indexable"))) {
                fprintf(stderr, "bench_filters: --mix takes mixed or indexable\n");
                exit(2);
            }
            o->mix = !strcmp(v, "mixed") ? B_MIX_MIXED : B_MIX_INDEXABLE;
            i++;
        } else {
            fprintf(stderr, "bench_filters: unknown option %s\n", a);
            usage(stderr);
            exit(2);
        }
    }
    if (!o->runs || o->runs > MAX_RUNS || !o->implicit_runs || o->implicit_runs > MAX_RUNS) {
        fprintf(stderr, "bench_filters: runs must be 1..%d\n", MAX_RUNS);
        exit(2);
    }
}

static struct b_filter *generate(const struct opts *o, uint32_t n)
{
    struct b_filter *f = malloc(sizeof(*f) * n);
    if (!f) {
        fprintf(stderr, "bench_filters: out of memory\n");
        exit(1);
    }
    struct b_rng r = {o->seed * 0x100000001b3u + n};
    for (uint32_t i = 0; i < n; i++)
        b_gen_filter(&r, o->mix, i, o->callout_every, &f[i]);
    return f;
}

static double rate(uint32_t n, uint64_t ns)
{
    return ns ? (double)n * 1e9 / (double)ns : 0;
}

static void fmt_rate(char *buf, size_t len, struct b_stats s)
{
    snprintf(buf, len, "%.0f [%.0f..%.0f]", s.median, s.min, s.max);
}

static void explicit_runs(const struct opts *o, uint32_t n)
{
    struct b_filter *f = generate(o, n);
    UINT64 *ids = malloc(sizeof(*ids) * n);
    double add[MAX_RUNS], del[MAX_RUNS], add_commit[MAX_RUNS], del_commit[MAX_RUNS];
    if (!ids) {
        fprintf(stderr, "bench_filters: out of memory\n");
        exit(1);
    }
    for (uint32_t run = 0; run < o->runs; run++) {
        struct b_env env;
        b_env_up(&env);
        uint64_t t0 = b_now_ns();
        b_check("FwpmTransactionBegin0", FwpmTransactionBegin0(env.session, 0));
        for (uint32_t i = 0; i < n; i++)
            b_check("FwpmFilterAdd0", FwpmFilterAdd0(env.session, &f[i].f, NULL, &ids[i]));
        uint64_t t1 = b_now_ns();
        b_check("FwpmTransactionCommit0", FwpmTransactionCommit0(env.session));
        uint64_t t2 = b_now_ns();
        b_check("FwpmTransactionBegin0", FwpmTransactionBegin0(env.session, 0));
        for (uint32_t i = 0; i < n; i++)
            b_check("FwpmFilterDeleteById0", FwpmFilterDeleteById0(env.session, ids[i]));
        uint64_t t3 = b_now_ns();
        b_check("FwpmTransactionCommit0", FwpmTransactionCommit0(env.session));
        uint64_t t4 = b_now_ns();
        b_env_down(&env);
        add[run] = rate(n, t2 - t0);
        add_commit[run] = (double)(t2 - t1) / 1e6;
        del[run] = rate(n, t4 - t2);
        del_commit[run] = (double)(t4 - t3) / 1e6;
    }
    struct b_stats a = b_summarise(add, o->runs), d = b_summarise(del, o->runs);
    struct b_stats ac = b_summarise(add_commit, o->runs), dc = b_summarise(del_commit, o->runs);
    char ab[64], db[64];
    fmt_rate(ab, sizeof(ab), a);
    fmt_rate(db, sizeof(db), d);
    printf("%-9s %8" PRIu32 " %4" PRIu32 " %28s %10.1f %28s %10.1f\n", "explicit", n, o->runs,
           ab, ac.median, db, dc.median);
    fflush(stdout);
    free(ids);
    free(f);
}

struct implicit_result {
    double add_rate, del_rate;
    double add_first_us, add_last_us, del_first_us, del_last_us;
};

/* Mean µs per call over calls [from, to) from the cumulative clock. */
static double span_us(const uint64_t *at, uint32_t from, uint32_t to)
{
    return to > from ? (double)(at[to] - at[from]) / 1e3 / (to - from) : 0;
}

static void implicit_runs(const struct opts *o, uint32_t n)
{
    struct b_filter *f = generate(o, n);
    UINT64 *ids = malloc(sizeof(*ids) * n);
    uint64_t *at = malloc(sizeof(*at) * (n + 1));
    double add[MAX_RUNS], del[MAX_RUNS], af[MAX_RUNS], al[MAX_RUNS], df[MAX_RUNS], dl[MAX_RUNS];
    if (!ids || !at) {
        fprintf(stderr, "bench_filters: out of memory\n");
        exit(1);
    }
    uint32_t tenth = n / 10 ? n / 10 : 1;
    for (uint32_t run = 0; run < o->implicit_runs; run++) {
        struct b_env env;
        b_env_up(&env);
        at[0] = b_now_ns();
        for (uint32_t i = 0; i < n; i++) {
            b_check("FwpmFilterAdd0", FwpmFilterAdd0(env.session, &f[i].f, NULL, &ids[i]));
            at[i + 1] = b_now_ns();
        }
        add[run] = rate(n, at[n] - at[0]);
        af[run] = span_us(at, 0, tenth);
        al[run] = span_us(at, n - tenth, n);
        at[0] = b_now_ns();
        for (uint32_t i = 0; i < n; i++) {
            b_check("FwpmFilterDeleteById0", FwpmFilterDeleteById0(env.session, ids[i]));
            at[i + 1] = b_now_ns();
        }
        del[run] = rate(n, at[n] - at[0]);
        df[run] = span_us(at, 0, tenth);     /* layer still full */
        dl[run] = span_us(at, n - tenth, n); /* layer nearly empty */
        b_env_down(&env);
    }
    struct b_stats a = b_summarise(add, o->implicit_runs), d = b_summarise(del, o->implicit_runs);
    char ab[64], db[64];
    fmt_rate(ab, sizeof(ab), a);
    fmt_rate(db, sizeof(db), d);
    printf("%-9s %8" PRIu32 " %4" PRIu32 " %28s %10s %28s %10s\n", "implicit", n,
           o->implicit_runs, ab, "-", db, "-");
    printf("          per call: add %.1f us at the start (layer 0..%" PRIu32
           " filters), %.1f us at the end (..%" PRIu32 "); delete %.1f us at the start, "
           "%.1f us at the end\n",
           b_summarise(af, o->implicit_runs).median, tenth,
           b_summarise(al, o->implicit_runs).median, n, b_summarise(df, o->implicit_runs).median,
           b_summarise(dl, o->implicit_runs).median);
    fflush(stdout);
    free(at);
    free(ids);
    free(f);
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    b_print_machine();
    printf("# bench_filters: seed %" PRIu64 ", mix %s, callout filters 2 per %" PRIu32
           ", one layer (ALE_FLOW_ESTABLISHED_V4), 5 sublayers\n",
           o.seed, o.mix == B_MIX_MIXED ? "mixed" : "indexable", o.callout_every);
    printf("# filters/s: median [min..max] over the runs, commit included; commit_ms: median\n");
    printf("%-9s %8s %4s %28s %10s %28s %10s\n", "txn", "filters", "runs", "add filters/s",
           "commit_ms", "delete filters/s", "commit_ms");
    fflush(stdout);
    uint64_t start = b_now_ns();
    for (uint32_t i = 0; i < o.ntxn; i++)
        explicit_runs(&o, o.txn[i]);
    for (uint32_t i = 0; i < o.nimplicit; i++)
        implicit_runs(&o, o.implicit[i]);
    printf("# total time %.1f s\n", (double)(b_now_ns() - start) / 1e9);
    return 0;
}
