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
 * time, including the commit: CPU time of the thread (the machine may be
 * shared) with the wall-time median beside; medians [min..max] over the runs.
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
    uint32_t full_max; /* implicit sizes up to this are run as a full ramp */
    enum b_mix mix;
};

static void usage(FILE *to)
{
    fprintf(to, "usage: bench_filters [options]\n"
                "  --txn-sizes LIST       filter counts added/deleted in one explicit transaction\n"
                "                         (default 1000,10000,100000)\n"
                "  --implicit-sizes LIST  filter counts added/deleted one implicit transaction\n"
                "                         per call (default 1000,10000)\n"
                "  --runs N               repetitions of each explicit size (default 5)\n"
                "  --implicit-runs N      repetitions of each implicit size (default 1)\n"
                "  --full-max N           implicit sizes <= N run the full ramp of N calls;\n"
                "                         all sizes are also run sampled (default 1000; the\n"
                "                         full ramp costs O(N^2): 10000 takes about 80 s)\n"
                "  --mix M                mixed | indexable (default mixed)\n"
                "  --callout-every N      2 of every N filters are callout filters (default 500)\n"
                "  --seed N               random seed (default 1)\n"
                "  --help                 this text\n"
                "Prints filters/s for add and delete, explicit and implicit transactions. Rows\n"
                "\"implicit\" are a full ramp (N calls timed from an empty layer); rows\n"
                "\"implicit~\" are estimated from the per-call cost sampled at 11 layer sizes\n"
                "(printed below them), which shows the per-call view rebuild.\n");
}

static void parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.seed = 1,
                       .runs = 5,
                       .implicit_runs = 1,
                       .callout_every = 500,
                       .txn = {1000, 10000, 100000},
                       .ntxn = 3,
                       .implicit = {1000, 10000},
                       .nimplicit = 2,
                       .full_max = 1000,
                       .mix = B_MIX_MIXED};
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
        } else if (!strcmp(a, "--full-max")) {
            o->full_max = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--callout-every")) {
            o->callout_every = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--txn-sizes")) {
            o->ntxn = b_parse_list(a, v, o->txn, MAX_SIZES, 1, UINT32_MAX), i++;
        } else if (!strcmp(a, "--implicit-sizes")) {
            o->nimplicit = b_parse_list(a, v, o->implicit, MAX_SIZES, 1, UINT32_MAX), i++;
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
    double add[MAX_RUNS], del[MAX_RUNS], addw[MAX_RUNS], delw[MAX_RUNS];
    double add_commit[MAX_RUNS], del_commit[MAX_RUNS];
    if (!ids) {
        fprintf(stderr, "bench_filters: out of memory\n");
        exit(1);
    }
    for (uint32_t run = 0; run < o->runs; run++) {
        struct b_env env;
        b_env_up(&env);
        struct b_clock t0 = b_clock_now();
        b_check("FwpmTransactionBegin0", FwpmTransactionBegin0(env.session, 0));
        for (uint32_t i = 0; i < n; i++)
            b_check("FwpmFilterAdd0", FwpmFilterAdd0(env.session, &f[i].f, NULL, &ids[i]));
        struct b_clock t1 = b_clock_now();
        b_check("FwpmTransactionCommit0", FwpmTransactionCommit0(env.session));
        struct b_clock adding = b_clock_since(t0), commit = b_clock_since(t1);
        t0 = b_clock_now();
        b_check("FwpmTransactionBegin0", FwpmTransactionBegin0(env.session, 0));
        for (uint32_t i = 0; i < n; i++)
            b_check("FwpmFilterDeleteById0", FwpmFilterDeleteById0(env.session, ids[i]));
        t1 = b_clock_now();
        b_check("FwpmTransactionCommit0", FwpmTransactionCommit0(env.session));
        struct b_clock deleting = b_clock_since(t0), dcommit = b_clock_since(t1);
        b_env_down(&env);
        add[run] = rate(n, adding.cpu);
        addw[run] = rate(n, adding.wall);
        add_commit[run] = (double)commit.cpu / 1e6;
        del[run] = rate(n, deleting.cpu);
        delw[run] = rate(n, deleting.wall);
        del_commit[run] = (double)dcommit.cpu / 1e6;
    }
    struct b_stats a = b_summarise(add, o->runs), d = b_summarise(del, o->runs);
    struct b_stats ac = b_summarise(add_commit, o->runs), dc = b_summarise(del_commit, o->runs);
    char ab[64], db[64];
    fmt_rate(ab, sizeof(ab), a);
    fmt_rate(db, sizeof(db), d);
    printf("%-9s %8" PRIu32 " %4" PRIu32 " %26s %9.0f %9.1f %26s %9.0f %9.1f\n", "explicit", n,
           o->runs, ab, b_summarise(addw, o->runs).median, ac.median, db,
           b_summarise(delw, o->runs).median, dc.median);
    fflush(stdout);
    free(ids);
    free(f);
}

/* Mean µs per call over calls [from, to) from the cumulative clock. */
static double span_us(const uint64_t *at, uint32_t from, uint32_t to)
{
    return to > from ? (double)(at[to] - at[from]) / 1e3 / (to - from) : 0;
}

/* Full ramp: N implicit adds into an empty layer, then N implicit deletes. */
static void implicit_full(const struct opts *o, uint32_t n)
{
    struct b_filter *f = generate(o, n);
    UINT64 *ids = malloc(sizeof(*ids) * n);
    uint64_t *at = malloc(sizeof(*at) * (n + 1));
    double add[MAX_RUNS], del[MAX_RUNS], af[MAX_RUNS], al[MAX_RUNS], df[MAX_RUNS], dl[MAX_RUNS];
    double addw[MAX_RUNS], delw[MAX_RUNS];
    if (!ids || !at) {
        fprintf(stderr, "bench_filters: out of memory\n");
        exit(1);
    }
    uint32_t tenth = n / 10 ? n / 10 : 1;
    for (uint32_t run = 0; run < o->implicit_runs; run++) {
        struct b_env env;
        b_env_up(&env);
        struct b_clock w = b_clock_now();
        at[0] = w.cpu;
        for (uint32_t i = 0; i < n; i++) {
            b_check("FwpmFilterAdd0", FwpmFilterAdd0(env.session, &f[i].f, NULL, &ids[i]));
            at[i + 1] = b_clock_now().cpu;
        }
        addw[run] = rate(n, b_clock_since(w).wall);
        add[run] = rate(n, at[n] - at[0]);
        af[run] = span_us(at, 0, tenth);
        al[run] = span_us(at, n - tenth, n);
        w = b_clock_now();
        at[0] = w.cpu;
        for (uint32_t i = 0; i < n; i++) {
            b_check("FwpmFilterDeleteById0", FwpmFilterDeleteById0(env.session, ids[i]));
            at[i + 1] = b_clock_now().cpu;
        }
        delw[run] = rate(n, b_clock_since(w).wall);
        del[run] = rate(n, at[n] - at[0]);
        df[run] = span_us(at, 0, tenth);     /* layer still full */
        dl[run] = span_us(at, n - tenth, n); /* layer nearly empty */
        b_env_down(&env);
    }
    struct b_stats a = b_summarise(add, o->implicit_runs), d = b_summarise(del, o->implicit_runs);
    char ab[64], db[64];
    fmt_rate(ab, sizeof(ab), a);
    fmt_rate(db, sizeof(db), d);
    printf("%-9s %8" PRIu32 " %4" PRIu32 " %26s %9.0f %9s %26s %9.0f %9s\n", "implicit", n,
           o->implicit_runs, ab, b_summarise(addw, o->implicit_runs).median, "-", db,
           b_summarise(delw, o->implicit_runs).median, "-");
    printf("          full ramp; per call: add %.0f us while the layer holds 0..%" PRIu32
           " filters, %.0f us at %" PRIu32 "..%" PRIu32 "; delete %.0f us at %" PRIu32 "..%" PRIu32
           ", %.0f us at %" PRIu32 "..0\n",
           b_summarise(af, o->implicit_runs).median, tenth,
           b_summarise(al, o->implicit_runs).median, n - tenth, n,
           b_summarise(df, o->implicit_runs).median, n, n - tenth,
           b_summarise(dl, o->implicit_runs).median, tenth);
    fflush(stdout);
    free(at);
    free(ids);
    free(f);
}

#define POINTS 10
#define SAMPLES 40u

/* Sampled ramp: the layer is filled to k = N/10, 2N/10, .. N with one
 * explicit transaction per step (untimed), and SAMPLES implicit adds are
 * timed at each k; deletes likewise on the way down. The cost of the full
 * ramp is the integral of the per-call cost over k (trapezoids between the
 * points; the per-call cost at k = 0 is measured on an empty layer). */
static void implicit_sampled(const struct opts *o, uint32_t n)
{
    if (n < POINTS * SAMPLES) {
        printf("implicit %8" PRIu32 ": too small to sample (need >= %u)\n", n, POINTS * SAMPLES);
        return;
    }
    struct b_filter *f = generate(o, n);
    UINT64 *ids = malloc(sizeof(*ids) * n);
    if (!ids) {
        fprintf(stderr, "bench_filters: out of memory\n");
        exit(1);
    }
    double add_us[POINTS + 1][MAX_RUNS], del_us[POINTS + 1][MAX_RUNS];
    double add_tot[MAX_RUNS], del_tot[MAX_RUNS];
    for (uint32_t run = 0; run < o->implicit_runs; run++) {
        struct b_env env;
        b_env_up(&env);
        uint32_t have = 0;
        double us[POINTS + 1];
        for (uint32_t p = 0; p <= POINTS; p++) {
            uint32_t k = p == 0 ? SAMPLES : (uint32_t)((uint64_t)n * p / POINTS);
            b_check("FwpmTransactionBegin0", FwpmTransactionBegin0(env.session, 0));
            for (; have < k - SAMPLES; have++)
                b_check("FwpmFilterAdd0",
                        FwpmFilterAdd0(env.session, &f[have].f, NULL, &ids[have]));
            b_check("FwpmTransactionCommit0", FwpmTransactionCommit0(env.session));
            struct b_clock t0 = b_clock_now();
            for (; have < k; have++)
                b_check("FwpmFilterAdd0",
                        FwpmFilterAdd0(env.session, &f[have].f, NULL, &ids[have]));
            us[p] = (double)b_clock_since(t0).cpu / 1e3 / SAMPLES;
            add_us[p][run] = us[p];
        }
        double tot = 0;
        for (uint32_t p = 1; p <= POINTS; p++)
            tot += (us[p - 1] + us[p]) / 2 * ((double)n / POINTS);
        add_tot[run] = (double)n / (tot / 1e6);
        for (uint32_t p = POINTS + 1; p-- > 0;) {
            uint32_t k = p == 0 ? SAMPLES : (uint32_t)((uint64_t)n * p / POINTS);
            b_check("FwpmTransactionBegin0", FwpmTransactionBegin0(env.session, 0));
            for (; have > k; have--)
                b_check("FwpmFilterDeleteById0", FwpmFilterDeleteById0(env.session, ids[have - 1]));
            b_check("FwpmTransactionCommit0", FwpmTransactionCommit0(env.session));
            struct b_clock t0 = b_clock_now();
            for (uint32_t i = 0; i < SAMPLES; i++, have--)
                b_check("FwpmFilterDeleteById0", FwpmFilterDeleteById0(env.session, ids[have - 1]));
            us[p] = (double)b_clock_since(t0).cpu / 1e3 / SAMPLES;
            del_us[p][run] = us[p];
            /* Put the layer back to k so the next step starts from there. */
            b_check("FwpmTransactionBegin0", FwpmTransactionBegin0(env.session, 0));
            for (uint32_t i = 0; i < SAMPLES; i++, have++)
                b_check("FwpmFilterAdd0",
                        FwpmFilterAdd0(env.session, &f[have].f, NULL, &ids[have]));
            b_check("FwpmTransactionCommit0", FwpmTransactionCommit0(env.session));
        }
        tot = 0;
        for (uint32_t p = 1; p <= POINTS; p++)
            tot += (us[p - 1] + us[p]) / 2 * ((double)n / POINTS);
        del_tot[run] = (double)n / (tot / 1e6);
        b_env_down(&env);
    }
    struct b_stats a = b_summarise(add_tot, o->implicit_runs);
    struct b_stats d = b_summarise(del_tot, o->implicit_runs);
    char ab[64], db[64];
    fmt_rate(ab, sizeof(ab), a);
    fmt_rate(db, sizeof(db), d);
    printf("%-9s %8" PRIu32 " %4" PRIu32 " %26s %9s %9s %26s %9s %9s\n", "implicit~", n,
           o->implicit_runs, ab, "-", "-", db, "-", "-");
    printf("          sampled ramp (%u calls timed at each layer size, integrated); "
           "us per call by layer size:\n          %10s %10s %10s\n",
           SAMPLES, "filters", "add us", "delete us");
    for (uint32_t p = 0; p <= POINTS; p++) {
        uint32_t k = p == 0 ? SAMPLES : (uint32_t)((uint64_t)n * p / POINTS);
        printf("          %10" PRIu32 " %10.0f %10.0f\n", k,
               b_summarise(add_us[p], o->implicit_runs).median,
               b_summarise(del_us[p], o->implicit_runs).median);
    }
    fflush(stdout);
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
    printf("# filters/s of CPU time: median [min..max] over the runs, commit included;\n"
           "# wall: median filters/s of wall time; commit_ms: CPU ms of the commit, median\n");
    printf("%-9s %8s %4s %26s %9s %9s %26s %9s %9s\n", "txn", "filters", "runs", "add filters/s",
           "wall", "commit_ms", "delete filters/s", "wall", "commit_ms");
    fflush(stdout);
    struct b_clock start = b_clock_now();
    for (uint32_t i = 0; i < o.ntxn; i++)
        explicit_runs(&o, o.txn[i]);
    for (uint32_t i = 0; i < o.nimplicit; i++) {
        if (o.implicit[i] <= o.full_max)
            implicit_full(&o, o.implicit[i]);
        implicit_sampled(&o, o.implicit[i]);
    }
    struct b_clock total = b_clock_since(start);
    printf("# total: wall %.1f s, CPU %.1f s; load average now %.2f\n", (double)total.wall / 1e9,
           (double)total.cpu / 1e9, b_loadavg());
    return 0;
}
