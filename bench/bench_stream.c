/*
 * bench_stream: the stream layer's data path, owfp_stream_indicate, with
 * no-op stream callouts.
 *
 * 1. Cost per indication. One outbound IPv4 TCP flow; 0, 1, 4 or 16 stream
 *    callouts, each named by one condition-less FWPM_LAYER_STREAM_V4 filter
 *    in its own sublayer, all TERMINATING (classifyFn: actionType = PERMIT)
 *    or all INSPECTION (actionType = CONTINUE): every callout sees every
 *    indication. The flow's SEND direction gets indications of 64 B ..
 *    64 KiB, cycling over 16 buffers the benchmark owns. Measured:
 *      engine   CPU ns per owfp_stream_indicate call
 *      direct   CPU ns to call the same classifyFns directly over the same
 *               buffers: an FWPS_STREAM_CALLOUT_IO_PACKET0 and
 *               FWPS_CLASSIFY_OUT0 filled per call, the NBL/NB/MDL of each
 *               buffer and the incoming values built once beforehand
 *      overhead engine - direct, and the ratio engine / direct
 *    median [min..max] over the runs of the thread's CPU time (the machine
 *    may be shared), wall-clock median beside. One engine and flow per
 *    stack; every run measures every size, engine loop then direct loop, so
 *    a change of load falls on all sizes alike. The per-byte cost is the
 *    least-squares slope of ns per indication against the size.
 *
 * 2. Copies. The engine should never copy stream bytes a callout did not ask
 *    it to keep. Checked three ways:
 *      - every returned span must lie inside the buffer just indicated;
 *      - a probe callout checks that the MDL it is shown maps that buffer;
 *      - memcpy, owfp_malloc, owfp_calloc and owfp_realloc are wrapped at
 *        link time (-Wl,--wrap, see meson.build): the engine's memcpy calls
 *        whose source lies in the benchmark's buffers are counted as "bytes
 *        copied from the caller", and every engine allocation is counted.
 *    The counters stay on during the timed runs: a few ns per allocation.
 *
 * 3. NEED_MORE_DATA. A callout asks for more data until `required` bytes
 *    have accumulated, then permits them: either once with
 *    countBytesRequired = required ("total"), or one segment at a time with
 *    countBytesRequired = dataLength + 1 ("step", re-classified at every
 *    segment). Segments of 1460 B. Reported per cycle (the indications that
 *    fill one `required`): bytes held at the peak, bytes the engine copied
 *    out of the caller's buffers, bytes of held data moved again later
 *    (seen at a new address), how many pieces (NBLs) the final classify
 *    shows, allocations, and the CPU time per indicated byte against the
 *    same segments simply permitted.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "ndis/ndis_internal.h"
#include "stream/stream.h"

#define MAX_LIST 8
#define MAX_RUNS 101
#define NBUF 16
#define MIN_INDICATIONS 2000u

/* ---- link-time wrappers: copies and allocations ----------------------- */

void *__real_memcpy(void *dst, const void *src, size_t n);
void *__wrap_memcpy(void *dst, const void *src, size_t n);
void *__real_owfp_malloc(size_t size);
void *__wrap_owfp_malloc(size_t size);
void *__real_owfp_calloc(size_t count, size_t size);
void *__wrap_owfp_calloc(size_t count, size_t size);
void *__real_owfp_realloc(void *ptr, size_t size);
void *__wrap_owfp_realloc(void *ptr, size_t size);

struct counters {
    uint64_t memcpy_calls, memcpy_bytes;
    uint64_t from_caller; /* memcpy bytes whose source is in the buffer arena */
    uint64_t allocs, alloc_bytes;
};
static struct counters w;
static const uint8_t *arena_lo, *arena_hi;

void *__wrap_memcpy(void *dst, const void *src, size_t n)
{
    const uint8_t *s = src;
    w.memcpy_calls++;
    w.memcpy_bytes += n;
    if (n && s < arena_hi && s + n > arena_lo)
        w.from_caller += n;
    return __real_memcpy(dst, src, n);
}

void *__wrap_owfp_malloc(size_t size)
{
    w.allocs++;
    w.alloc_bytes += size;
    return __real_owfp_malloc(size);
}

void *__wrap_owfp_calloc(size_t count, size_t size)
{
    w.allocs++;
    w.alloc_bytes += count * size;
    return __real_owfp_calloc(count, size);
}

void *__wrap_owfp_realloc(void *ptr, size_t size)
{
    w.allocs++;
    w.alloc_bytes += size;
    return __real_owfp_realloc(ptr, size);
}

static struct counters counters_since(struct counters c0)
{
    return (struct counters){w.memcpy_calls - c0.memcpy_calls, w.memcpy_bytes - c0.memcpy_bytes,
                             w.from_caller - c0.from_caller, w.allocs - c0.allocs,
                             w.alloc_bytes - c0.alloc_bytes};
}

static bool in_arena(const void *p, size_t n)
{
    const uint8_t *b = p;
    return b >= arena_lo && b + n <= arena_hi;
}

/* ---- options ----------------------------------------------------------- */

struct opts {
    uint64_t seed;
    uint32_t runs;
    uint32_t indications;
    uint32_t budget_ms;
    uint32_t sizes[MAX_LIST], nsizes;
    uint32_t stacks[MAX_LIST], nstacks;
    uint32_t holds[MAX_LIST], nholds;
    uint32_t segment;
    int modes; /* bit 0: terminating, bit 1: inspection */
    int parts; /* bit 0: cost, bit 1: probe, bit 2: hold */
    int hold_modes; /* bit 0: total, bit 1: step */
};

static void usage(FILE *to)
{
    fprintf(to,
            "usage: bench_stream [options]\n"
            "  --sizes LIST        indication sizes in bytes (default 64,1024,1460,16384,65536)\n"
            "  --stacks LIST       numbers of stacked stream callouts, 0..16 (default 0,1,4,16)\n"
            "  --mode M            terminating | inspection | both (default both)\n"
            "  --runs N            measured repetitions of every row (default 11)\n"
            "  --indications N     at most N indications per repetition (default 200000)\n"
            "  --budget-ms N       fewer indications (not below 2000) when a repetition would\n"
            "                      take more than N ms of CPU (default 20)\n"
            "  --hold LIST         NEED_MORE_DATA thresholds in bytes (default 16384,65536,1048576)\n"
            "  --segment N         bytes per indication in the NEED_MORE_DATA part (default 1460)\n"
            "  --hold-mode M       total | step | both (default both)\n"
            "  --parts LIST        which parts to run: cost,probe,hold (default all three)\n"
            "  --seed N            random seed for the buffer contents and the flow (default 1)\n"
            "  --help              this text\n"
            "Prints, per stack and size, CPU ns per owfp_stream_indicate (median [min..max]\n"
            "over the runs; wall median beside), the same classifyFns called directly,\n"
            "the engine overhead and ratio, indications/s, GB/s, bytes copied and\n"
            "allocations per indication; then the per-byte slope, a zero-copy check with\n"
            "a probe callout, and the NEED_MORE_DATA accumulation table (see the source).\n");
}

static void parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.seed = 1,
                       .runs = 11,
                       .indications = 200000,
                       .budget_ms = 20,
                       .sizes = {64, 1024, 1460, 16384, 65536},
                       .nsizes = 5,
                       .stacks = {0, 1, 4, 16},
                       .nstacks = 4,
                       .holds = {16384, 65536, 1048576},
                       .nholds = 3,
                       .segment = 1460,
                       .modes = 3,
                       .parts = 7,
                       .hold_modes = 3};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--seed")) {
            o->seed = b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--runs")) {
            o->runs = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--indications")) {
            o->indications = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--budget-ms")) {
            o->budget_ms = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--segment")) {
            o->segment = (uint32_t)b_parse_u64(a, v), i++;
        } else if (!strcmp(a, "--sizes")) {
            o->nsizes = b_parse_list(a, v, o->sizes, MAX_LIST, 1, UINT32_MAX), i++;
        } else if (!strcmp(a, "--stacks")) {
            o->nstacks = b_parse_list(a, v, o->stacks, MAX_LIST, 0, UINT32_MAX), i++;
        } else if (!strcmp(a, "--hold")) {
            o->nholds = b_parse_list(a, v, o->holds, MAX_LIST, 1, UINT32_MAX), i++;
        } else if (!strcmp(a, "--parts")) {
            if (!v) {
                fprintf(stderr, "bench_stream: --parts needs a value\n");
                exit(2);
            }
            char buf[64];
            snprintf(buf, sizeof(buf), "%s", v);
            o->parts = 0;
            for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int bit = !strcmp(t, "cost")    ? 1
                          : !strcmp(t, "probe") ? 2
                          : !strcmp(t, "hold")  ? 4
                                                : 0;
                if (!bit) {
                    fprintf(stderr, "bench_stream: --parts takes cost, probe and hold\n");
                    exit(2);
                }
                o->parts |= bit;
            }
            i++;
        } else if (!strcmp(a, "--hold-mode")) {
            if (!v || (strcmp(v, "total") && strcmp(v, "step") && strcmp(v, "both"))) {
                fprintf(stderr, "bench_stream: --hold-mode takes total, step or both\n");
                exit(2);
            }
            o->hold_modes = !strcmp(v, "total") ? 1 : !strcmp(v, "step") ? 2 : 3;
            i++;
        } else if (!strcmp(a, "--mode")) {
            if (!v || (strcmp(v, "terminating") && strcmp(v, "inspection") && strcmp(v, "both"))) {
                fprintf(stderr, "bench_stream: --mode takes terminating, inspection or both\n");
                exit(2);
            }
            o->modes = !strcmp(v, "terminating") ? 1 : !strcmp(v, "inspection") ? 2 : 3;
            i++;
        } else {
            fprintf(stderr, "bench_stream: unknown option %s\n", a);
            usage(stderr);
            exit(2);
        }
    }
    for (uint32_t i = 0; i < o->nstacks; i++)
        if (o->stacks[i] > B_STREAM_MAX) {
            fprintf(stderr, "bench_stream: at most %d stacked callouts\n", B_STREAM_MAX);
            exit(2);
        }
    for (uint32_t i = 0; i < o->nholds; i++)
        if (o->holds[i] > (8u << 20)) {
            fprintf(stderr, "bench_stream: --hold values up to 8 MiB (the engine's limit)\n");
            exit(2);
        }
    for (uint32_t i = 0; i < o->nsizes; i++)
        if (o->sizes[i] > (1u << 24)) {
            fprintf(stderr, "bench_stream: sizes up to 16 MiB\n");
            exit(2);
        }
    if (!o->runs || o->runs > MAX_RUNS || !o->indications || !o->nsizes || !o->nstacks ||
        !o->segment || o->segment > (1u << 24)) {
        fprintf(stderr, "bench_stream: need 1..%d runs, indications > 0, sizes, stacks and a "
                        "segment of 1 B..16 MiB\n",
                MAX_RUNS);
        exit(2);
    }
}

/* ---- buffers ------------------------------------------------------------ */

static uint8_t *arena;
static size_t stride;

static const uint8_t *buffer(uint32_t i)
{
    return arena + (size_t)(i % NBUF) * stride;
}

static void arena_init(uint64_t seed, size_t max)
{
    stride = (max + 63) & ~(size_t)63;
    arena = malloc(stride * NBUF);
    if (!arena) {
        fprintf(stderr, "bench_stream: out of memory\n");
        exit(1);
    }
    struct b_rng r = {seed ^ UINT64_C(0x57ea3)};
    for (size_t i = 0; i < stride * NBUF; i += 8) {
        uint64_t x = b_next(&r);
        for (size_t j = 0; j < 8 && i + j < stride * NBUF; j++)
            arena[i + j] = (uint8_t)(x >> (8 * j));
    }
    arena_lo = arena;
    arena_hi = arena + stride * NBUF;
}

/* ---- 1. cost per indication -------------------------------------------- */

struct pass {
    double cpu, wall; /* ns per indication */
};

static struct pass per(struct b_clock c, uint32_t n)
{
    return (struct pass){(double)c.cpu / n, (double)c.wall / n};
}

static void die(const char *what, NTSTATUS st)
{
    fprintf(stderr, "bench_stream: %s: 0x%08" PRIx32 "\n", what, (uint32_t)st);
    exit(1);
}

/* n indications of `size` bytes on the flow's SEND direction; every byte
 * must come back. */
static struct pass pass_engine(owfp_flow *flow, size_t size, uint32_t n)
{
    struct owfp_stream_result r;
    uint64_t out = 0;
    struct b_clock t0 = b_clock_now();
    for (uint32_t i = 0; i < n; i++) {
        NTSTATUS st = owfp_stream_indicate(flow, OWFP_STREAM_SEND, buffer(i), size, 0, &r);
        if (st != STATUS_SUCCESS)
            die("owfp_stream_indicate", st);
        out += r.dir[OWFP_STREAM_SEND].bytes;
    }
    struct pass p = per(b_clock_since(t0), n);
    if (out != (uint64_t)n * size) {
        fprintf(stderr, "bench_stream: %" PRIu64 " of %" PRIu64 " bytes came back\n", out,
                (uint64_t)n * size);
        exit(1);
    }
    return p;
}

/* What a host would hand the classifyFns, built once per buffer. */
struct direct {
    uint32_t k;
    FWPS_CALLOUT_CLASSIFY_FN0 volatile fn[B_STREAM_MAX];
    FWPS_FILTER0 filter[B_STREAM_MAX];
    FWPS_INCOMING_VALUE0 values[FWPS_FIELD_STREAM_V4_MAX];
    FWP_BYTE_ARRAY16 l6, r6;
    FWPS_INCOMING_VALUES0 in;
    FWPS_INCOMING_METADATA_VALUES0 meta;
    MDL mdl[NBUF];
    NET_BUFFER nb[NBUF];
    NET_BUFFER_LIST nbl[NBUF];
    FWPS_STREAM_DATA0 sd[NBUF];
};

static void direct_init(struct direct *d, owfp_flow *flow, const struct b_stream_env *env,
                        FWPS_CALLOUT_CLASSIFY_FN0 fn, size_t size)
{
    memset(d, 0, sizeof(*d));
    d->k = env->n;
    for (uint32_t c = 0; c < d->k; c++) {
        d->fn[c] = fn;
        d->filter[c].filterId = env->filter_ids[c];
    }
    owfp_stream_fixed_values((const struct owfp_flow *)flow, d->values, &d->l6, &d->r6);
    d->in = (FWPS_INCOMING_VALUES0){FWPS_LAYER_STREAM_V4, FWPS_FIELD_STREAM_V4_MAX, d->values};
    d->meta.currentMetadataValues =
        FWPS_METADATA_FIELD_FLOW_HANDLE | FWPS_METADATA_FIELD_COMPARTMENT_ID;
    d->meta.flowHandle = owfp_flow_id(flow);
    d->meta.compartmentId = 1;
    for (uint32_t j = 0; j < NBUF; j++) {
        owfp_mdl_init_borrowed(&d->mdl[j], buffer(j), (ULONG)size);
        owfp_nb_init(&d->nb[j], &d->mdl[j], 0, size);
        owfp_nbl_init(&d->nbl[j], &d->nb[j]);
        d->sd[j].flags = FWPS_STREAM_FLAG_SEND;
        d->sd[j].dataOffset.netBufferList = &d->nbl[j];
        d->sd[j].dataOffset.netBuffer = &d->nb[j];
        d->sd[j].dataOffset.mdl = &d->mdl[j];
        d->sd[j].dataLength = size;
        d->sd[j].netBufferListChain = &d->nbl[j];
    }
}

static struct pass pass_direct(struct direct *d, uint32_t n, uint64_t *acc)
{
    uint64_t a = 0;
    struct b_clock t0 = b_clock_now();
    for (uint32_t i = 0; i < n; i++) {
        uint32_t j = i % NBUF;
        for (uint32_t c = 0; c < d->k; c++) {
            FWPS_STREAM_CALLOUT_IO_PACKET0 io = {.streamData = &d->sd[j]};
            FWPS_CLASSIFY_OUT0 out = {.filterId = d->filter[c].filterId,
                                      .rights = FWPS_RIGHT_ACTION_WRITE};
            d->fn[c](&d->in, &d->meta, &io, &d->filter[c], 0, &out);
            a += out.actionType + io.streamAction;
        }
    }
    struct pass p = per(b_clock_since(t0), n);
    *acc += a;
    return p;
}

struct row {
    int mode; /* 0 terminating, 1 inspection */
    uint32_t k, size, n;
    struct b_stats engine, direct;
    double engine_wall, direct_wall;
    double copied, memcpy_bytes, allocs; /* per indication */
    uint64_t spans, spans_in_buffer, checked;
};

static const char *const mode_name[2] = {"terminating", "inspection"};

/* All sizes of one (mode, k): one engine and flow; each run measures every
 * size, engine then direct, so load changes on a shared machine fall on all
 * sizes and on both loops alike. */
static void measure_stack(const struct opts *o, int mode, uint32_t k, struct row *rows)
{
    FWPS_CALLOUT_CLASSIFY_FN0 fn = mode ? b_stream_continue : b_stream_permit;
    struct b_stream_env env;
    b_stream_env_up(&env, k, mode ? FWP_ACTION_CALLOUT_INSPECTION : FWP_ACTION_CALLOUT_TERMINATING,
                    fn);
    struct b_rng r = {o->seed};
    struct owfp_flow_params p;
    b_stream_flow(&r, &p);
    owfp_flow *flow;
    enum owfp_flow_verdict v;
    b_check("owfp_flow_open", owfp_flow_open(env.engine, &p, &flow, &v));
    struct direct *d = malloc(sizeof(*d) * o->nsizes);
    double(*ec)[MAX_RUNS] = malloc(sizeof(*ec) * o->nsizes * 4);
    if (!d || !ec) {
        fprintf(stderr, "bench_stream: out of memory\n");
        exit(1);
    }
    double(*ew)[MAX_RUNS] = ec + o->nsizes, (*dc)[MAX_RUNS] = ec + 2 * o->nsizes,
          (*dw)[MAX_RUNS] = ec + 3 * o->nsizes;
    struct counters cnt[MAX_LIST];
    uint64_t acc = 0, want = 0;

    for (uint32_t z = 0; z < o->nsizes; z++) {
        uint32_t size = o->sizes[z];
        struct row *row = &rows[z];
        *row = (struct row){.mode = mode, .k = k, .size = size};
        /* Zero-copy check: every span inside the buffer just indicated. */
        for (uint32_t i = 0; i < 256; i++) {
            struct owfp_stream_result res;
            const uint8_t *b = buffer(i);
            NTSTATUS st = owfp_stream_indicate(flow, OWFP_STREAM_SEND, b, size, 0, &res);
            if (st != STATUS_SUCCESS)
                die("owfp_stream_indicate", st);
            const struct owfp_stream_output *out = &res.dir[OWFP_STREAM_SEND];
            for (size_t sp = 0; sp < out->nspans; sp++) {
                row->spans++;
                row->spans_in_buffer += out->spans[sp].data >= b &&
                                        out->spans[sp].data + out->spans[sp].len <= b + size;
            }
            row->checked++;
        }
        /* Size the runs to the budget; warm up both loops. */
        uint32_t n = o->indications < MIN_INDICATIONS ? o->indications : MIN_INDICATIONS;
        struct pass est = pass_engine(flow, size, n);
        double fit = (double)o->budget_ms * 1e6 / est.cpu;
        if (fit > n)
            n = fit >= o->indications ? o->indications : (uint32_t)fit;
        row->n = n;
        pass_engine(flow, size, n);
        direct_init(&d[z], flow, &env, fn, size);
        pass_direct(&d[z], n, &acc);
        want += (uint64_t)n * k;
        cnt[z] = (struct counters){0};
    }
    for (uint32_t run = 0; run < o->runs; run++) {
        for (uint32_t z = 0; z < o->nsizes; z++) {
            struct counters c0 = w;
            struct pass x = pass_engine(flow, o->sizes[z], rows[z].n);
            struct counters c = counters_since(c0);
            cnt[z].from_caller += c.from_caller;
            cnt[z].memcpy_bytes += c.memcpy_bytes;
            cnt[z].allocs += c.allocs;
            ec[z][run] = x.cpu;
            ew[z][run] = x.wall;
            x = pass_direct(&d[z], rows[z].n, &acc);
            want += (uint64_t)rows[z].n * k;
            dc[z][run] = x.cpu;
            dw[z][run] = x.wall;
        }
    }
    if (acc != want * (mode ? FWP_ACTION_CONTINUE : FWP_ACTION_PERMIT)) {
        fprintf(stderr, "bench_stream: direct calls answered wrong\n");
        exit(1);
    }
    owfp_flow_close(flow);
    b_stream_env_down(&env);
    for (uint32_t z = 0; z < o->nsizes; z++) {
        struct row *row = &rows[z];
        double total = (double)row->n * o->runs;
        row->copied = (double)cnt[z].from_caller / total;
        row->memcpy_bytes = (double)cnt[z].memcpy_bytes / total;
        row->allocs = (double)cnt[z].allocs / total;
        row->engine = b_summarise(ec[z], o->runs);
        row->direct = b_summarise(dc[z], o->runs);
        row->engine_wall = b_summarise(ew[z], o->runs).median;
        row->direct_wall = b_summarise(dw[z], o->runs).median;
    }
    free(ec);
    free(d);
}

static void print_rows(const struct row *rows, uint32_t n)
{
    printf("\n## 1. CPU ns per indication, median [min..max] over the runs (wall: median)\n");
    printf("# direct = the same classifyFns called in a loop; overhead = engine - direct;\n"
           "# copied = bytes per indication the engine memcpy'd out of the caller's buffer;\n"
           "# allocs = engine allocations per indication; spans ok = returned spans inside\n"
           "# the indicated buffer / spans returned (256 indications checked per row)\n");
    printf("%-11s %3s %6s %7s %20s %7s %17s %8s %6s %10s %7s %6s %6s %6s %9s\n", "mode",
           "k", "size", "n/run", "engine ns", "wall", "direct ns", "overhead", "ratio",
           "ind/s", "GB/s", "copied", "memcpy", "allocs", "spans ok");
    for (uint32_t i = 0; i < n; i++) {
        const struct row *x = &rows[i];
        char e[64], d[64], ratio[16], spans[32];
        snprintf(e, sizeof(e), "%.1f [%.1f..%.1f]", x->engine.median, x->engine.min,
                 x->engine.max);
        snprintf(d, sizeof(d), "%.1f [%.1f..%.1f]", x->direct.median, x->direct.min,
                 x->direct.max);
        if (x->k)
            snprintf(ratio, sizeof(ratio), "%.1f", x->engine.median / x->direct.median);
        else
            snprintf(ratio, sizeof(ratio), "-");
        snprintf(spans, sizeof(spans), "%" PRIu64 "/%" PRIu64, x->spans_in_buffer, x->spans);
        double ips = 1e9 / x->engine.median;
        printf("%-11s %3" PRIu32 " %6" PRIu32 " %7" PRIu32 " %20s %7.1f %17s %8.1f %6s %10.0f "
               "%7.2f %6.0f %6.1f %6.2f %9s\n",
               x->k ? mode_name[x->mode] : "(none)", x->k, x->size, x->n, e, x->engine_wall, d,
               x->engine.median - x->direct.median, ratio, ips, ips * x->size / 1e9, x->copied,
               x->memcpy_bytes, x->allocs, spans);
    }
}

/* Least-squares slope of y against size, in ns per KiB. */
static double slope(const struct row *rows, uint32_t n, double (*y)(const struct row *))
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (uint32_t j = 0; j < n; j++) {
        double kib = rows[j].size / 1024.0, v = y(&rows[j]);
        sx += kib, sy += v, sxx += kib * kib, sxy += kib * v;
    }
    double den = n * sxx - sx * sx;
    return den ? (n * sxy - sx * sy) / den : 0.0;
}

static double y_median(const struct row *x)
{
    return x->engine.median;
}

static double y_overhead(const struct row *x)
{
    return x->engine.median - x->direct.median;
}

static double y_min(const struct row *x)
{
    return x->engine.min;
}

static void print_slopes(const struct row *rows, uint32_t n, uint32_t nsizes)
{
    if (nsizes < 2)
        return;
    printf("\n## per-byte cost: least-squares slope vs indication size, ns per KiB, of the\n"
           "# engine median, the overhead median and the engine minimum; then the range of\n"
           "# the engine medians and minima over the sizes\n");
    printf("%-11s %3s %13s %13s %13s %20s %20s\n", "mode", "k", "median ns/KiB",
           "overhead", "min ns/KiB", "medians min..max", "minima min..max");
    for (uint32_t i = 0; i + nsizes <= n; i += nsizes) {
        double lo = 1e300, hi = 0, mlo = 1e300, mhi = 0;
        for (uint32_t j = 0; j < nsizes; j++) {
            const struct row *x = &rows[i + j];
            lo = x->engine.median < lo ? x->engine.median : lo;
            hi = x->engine.median > hi ? x->engine.median : hi;
            mlo = x->engine.min < mlo ? x->engine.min : mlo;
            mhi = x->engine.min > mhi ? x->engine.min : mhi;
        }
        char r1[48], r2[48];
        snprintf(r1, sizeof(r1), "%.1f..%.1f", lo, hi);
        snprintf(r2, sizeof(r2), "%.1f..%.1f", mlo, mhi);
        printf("%-11s %3" PRIu32 " %13.3f %13.3f %13.3f %20s %20s\n",
               rows[i].k ? mode_name[rows[i].mode] : "(none)", rows[i].k,
               slope(&rows[i], nsizes, y_median), slope(&rows[i], nsizes, y_overhead),
               slope(&rows[i], nsizes, y_min), r1, r2);
    }
}

/* ---- 2. what the callout is shown ------------------------------------- */

static struct {
    const uint8_t *expect;
    size_t len;
    uint64_t calls, nbls, same, other;
} g_probe;

static void NTAPI probe_classify(const FWPS_INCOMING_VALUES0 *in,
                                 const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layer_data,
                                 const FWPS_FILTER0 *filter, UINT64 flow_context,
                                 FWPS_CLASSIFY_OUT0 *out)
{
    (void)in, (void)meta, (void)filter, (void)flow_context;
    const FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layer_data;
    const FWPS_STREAM_DATA0 *sd = io->streamData;
    g_probe.calls++;
    for (NET_BUFFER_LIST *nbl = sd->netBufferListChain; nbl; nbl = NET_BUFFER_LIST_NEXT_NBL(nbl)) {
        NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(nbl);
        MDL *mdl = NET_BUFFER_CURRENT_MDL(nb);
        const uint8_t *va =
            (const uint8_t *)MmGetMdlVirtualAddress(mdl) + NET_BUFFER_CURRENT_MDL_OFFSET(nb);
        g_probe.nbls++;
        if (va == g_probe.expect && NET_BUFFER_DATA_LENGTH(nb) == g_probe.len)
            g_probe.same++;
        else
            g_probe.other++;
    }
    out->actionType = FWP_ACTION_PERMIT;
}

static void probe(const struct opts *o)
{
    printf("\n## 2. zero-copy check: 1 TERMINATING probe callout, 1000 indications per size\n");
    printf("# mdl = buffer: indications whose streamData is one NBL/NB/MDL mapping exactly\n"
           "# the caller's buffer; spans = buffer: returned spans inside the caller's buffer;\n"
           "# copied: bytes the engine memcpy'd out of caller buffers (all calls)\n");
    printf("%6s %8s %14s %15s %14s %10s %13s\n", "size", "calls", "nbls/classify",
           "mdl = buffer", "spans = buffer", "copied", "memcpy calls");
    for (uint32_t i = 0; i < o->nsizes; i++) {
        uint32_t size = o->sizes[i];
        struct b_stream_env env;
        b_stream_env_up(&env, 1, FWP_ACTION_CALLOUT_TERMINATING, probe_classify);
        struct b_rng r = {o->seed};
        struct owfp_flow_params p;
        b_stream_flow(&r, &p);
        owfp_flow *flow;
        enum owfp_flow_verdict v;
        b_check("owfp_flow_open", owfp_flow_open(env.engine, &p, &flow, &v));
        g_probe.calls = g_probe.nbls = g_probe.same = g_probe.other = 0;
        uint64_t spans = 0, spans_ok = 0;
        struct counters c0 = w;
        for (uint32_t j = 0; j < 1000; j++) {
            struct owfp_stream_result res;
            g_probe.expect = buffer(j);
            g_probe.len = size;
            NTSTATUS st = owfp_stream_indicate(flow, OWFP_STREAM_SEND, buffer(j), size, 0, &res);
            if (st != STATUS_SUCCESS)
                die("owfp_stream_indicate", st);
            const struct owfp_stream_output *out = &res.dir[OWFP_STREAM_SEND];
            for (size_t s = 0; s < out->nspans; s++) {
                spans++;
                spans_ok += out->spans[s].data == buffer(j) && out->spans[s].len == size;
            }
        }
        struct counters c = counters_since(c0);
        owfp_flow_close(flow);
        b_stream_env_down(&env);
        char mb[32], sb[32];
        snprintf(mb, sizeof(mb), "%" PRIu64 "/%" PRIu64, g_probe.same, g_probe.calls);
        snprintf(sb, sizeof(sb), "%" PRIu64 "/%" PRIu64, spans_ok, spans);
        printf("%6" PRIu32 " %8" PRIu64 " %14.2f %15s %14s %10" PRIu64 " %13" PRIu64 "\n", size,
               g_probe.calls, g_probe.calls ? (double)g_probe.nbls / g_probe.calls : 0.0, mb, sb,
               c.from_caller, c.memcpy_calls);
    }
}

/* ---- 3. NEED_MORE_DATA --------------------------------------------------- */

#define MAX_PIECES 8192

static struct {
    uint32_t required; /* 0: permit at once */
    bool step;
    bool probe;
    uint64_t classifies;
    /* probe: pieces of the current accumulation seen in engine memory */
    const uint8_t *known[MAX_PIECES];
    uint32_t last_nbls;
    uint64_t moved;           /* held bytes seen again at another address */
    uint64_t last_in_arena;   /* bytes of the last classify in caller buffers */
    uint64_t last_outside;    /* bytes of the last classify in engine memory */
    uint64_t pieces_overflow; /* chains longer than MAX_PIECES */
} g_hold;

static void hold_probe(const FWPS_STREAM_DATA0 *sd)
{
    uint32_t i = 0;
    g_hold.last_in_arena = g_hold.last_outside = 0;
    for (NET_BUFFER_LIST *nbl = sd->netBufferListChain; nbl;
         nbl = NET_BUFFER_LIST_NEXT_NBL(nbl), i++) {
        NET_BUFFER *nb = NET_BUFFER_LIST_FIRST_NB(nbl);
        MDL *mdl = NET_BUFFER_CURRENT_MDL(nb);
        const uint8_t *va =
            (const uint8_t *)MmGetMdlVirtualAddress(mdl) + NET_BUFFER_CURRENT_MDL_OFFSET(nb);
        size_t len = NET_BUFFER_DATA_LENGTH(nb);
        if (in_arena(va, len)) {
            g_hold.last_in_arena += len;
            continue;
        }
        g_hold.last_outside += len;
        if (i >= MAX_PIECES) {
            g_hold.pieces_overflow++;
        } else if (!g_hold.known[i]) {
            g_hold.known[i] = va;
        } else if (g_hold.known[i] != va) {
            g_hold.moved += len;
            g_hold.known[i] = va;
        }
    }
    g_hold.last_nbls = i;
}

static void NTAPI hold_classify(const FWPS_INCOMING_VALUES0 *in,
                                const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layer_data,
                                const FWPS_FILTER0 *filter, UINT64 flow_context,
                                FWPS_CLASSIFY_OUT0 *out)
{
    (void)in, (void)meta, (void)filter, (void)flow_context;
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layer_data;
    const FWPS_STREAM_DATA0 *sd = io->streamData;
    g_hold.classifies++;
    if (g_hold.probe)
        hold_probe(sd);
    if (sd->dataLength < g_hold.required &&
        !(out->flags &
          (FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA | FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED))) {
        io->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
        io->countBytesRequired = g_hold.step ? (UINT32)sd->dataLength + 1 : g_hold.required;
        return;
    }
    out->actionType = FWP_ACTION_PERMIT;
}

struct hold_row {
    const char *mode;
    uint32_t required, ind_per_cycle, cycles;
    uint64_t held_peak, copied, memcpy_bytes, moved, final_nbls, final_engine_bytes, out_engine;
    uint64_t out_spans, classifies, allocs;
    struct b_stats us; /* CPU us per cycle */
    double ns_per_byte, wall_us;
};

/* One cycle: indications until the accumulated bytes come out. */
static void cycle(owfp_flow *flow, uint32_t seg, uint32_t per_cycle, uint32_t *at,
                  struct hold_row *h)
{
    struct owfp_stream_result r;
    for (uint32_t i = 0; i < per_cycle; i++) {
        NTSTATUS st = owfp_stream_indicate(flow, OWFP_STREAM_SEND, buffer(*at), seg, 0, &r);
        if (st != STATUS_SUCCESS)
            die("owfp_stream_indicate", st);
        (*at)++;
        const struct owfp_stream_output *o = &r.dir[OWFP_STREAM_SEND];
        if (h) {
            if (o->held_bytes > h->held_peak)
                h->held_peak = o->held_bytes;
            if (i + 1 == per_cycle) {
                h->out_spans = o->nspans;
                for (size_t s = 0; s < o->nspans; s++)
                    if (!in_arena(o->spans[s].data, o->spans[s].len))
                        h->out_engine += o->spans[s].len;
            }
        }
        if ((i + 1 < per_cycle) != (o->bytes == 0) ||
            (i + 1 == per_cycle && o->bytes != (uint64_t)per_cycle * seg)) {
            fprintf(stderr, "bench_stream: NEED_MORE_DATA cycle: %" PRIu64
                            " bytes out at indication %" PRIu32 " of %" PRIu32 "\n",
                    o->bytes, i + 1, per_cycle);
            exit(1);
        }
    }
}

static void measure_hold(const struct opts *o, uint32_t required, bool step, struct hold_row *h)
{
    uint32_t seg = o->segment;
    struct b_stream_env env;
    b_stream_env_up(&env, 1, FWP_ACTION_CALLOUT_TERMINATING, hold_classify);
    struct b_rng r = {o->seed};
    struct owfp_flow_params p;
    b_stream_flow(&r, &p);
    owfp_flow *flow;
    enum owfp_flow_verdict v;
    b_check("owfp_flow_open", owfp_flow_open(env.engine, &p, &flow, &v));
    memset(&g_hold, 0, sizeof(g_hold));
    g_hold.required = required;
    g_hold.step = step;
    /* The callout permits at the first classify with dataLength >= required. */
    uint32_t per_cycle = required ? (required + seg - 1) / seg : 1;
    *h = (struct hold_row){.mode = !required ? "permit" : step ? "step" : "total",
                           .required = required,
                           .ind_per_cycle = per_cycle};
    uint32_t at = 0;

    /* A first cycle builds the flow's stream state; then one probed cycle:
     * counts, addresses, copies. */
    cycle(flow, seg, per_cycle, &at, NULL);
    g_hold.probe = true;
    struct counters c0 = w;
    uint64_t cl0 = g_hold.classifies;
    cycle(flow, seg, per_cycle, &at, h);
    struct counters c = counters_since(c0);
    g_hold.probe = false;
    h->copied = c.from_caller;
    h->memcpy_bytes = c.memcpy_bytes;
    h->allocs = c.allocs;
    h->classifies = g_hold.classifies - cl0;
    h->moved = g_hold.moved;
    h->final_nbls = g_hold.last_nbls;
    h->final_engine_bytes = g_hold.last_outside;

    /* Timed cycles. */
    struct b_clock t = b_clock_now();
    cycle(flow, seg, per_cycle, &at, NULL); /* warm-up and estimate */
    double one = (double)b_clock_since(t).cpu;
    uint32_t cycles = (uint32_t)((double)o->budget_ms * 1e6 / (one > 1 ? one : 1));
    uint32_t min_cycles = (MIN_INDICATIONS + per_cycle - 1) / per_cycle;
    if (cycles < 1)
        cycles = 1;
    if (cycles < min_cycles && one * min_cycles < 5.0 * o->budget_ms * 1e6)
        cycles = min_cycles;
    h->cycles = cycles;
    double us[MAX_RUNS], wall[MAX_RUNS];
    for (uint32_t run = 0; run < o->runs; run++) {
        struct b_clock t0 = b_clock_now();
        for (uint32_t i = 0; i < cycles; i++)
            cycle(flow, seg, per_cycle, &at, NULL);
        struct b_clock d = b_clock_since(t0);
        us[run] = (double)d.cpu / cycles / 1e3;
        wall[run] = (double)d.wall / cycles / 1e3;
    }
    owfp_flow_close(flow);
    b_stream_env_down(&env);
    h->us = b_summarise(us, o->runs);
    h->wall_us = b_summarise(wall, o->runs).median;
    h->ns_per_byte = h->us.median * 1e3 / ((double)per_cycle * seg);
}

static void hold_table(const struct opts *o)
{
    bool unseen = false;
    printf("\n## 3. NEED_MORE_DATA: 1 TERMINATING callout holds %" PRIu32
           "-byte segments until `required` bytes, then permits them\n",
           o->segment);
    printf("# per cycle (the indications that fill `required`; \"permit\": one segment, no hold):\n"
           "# held = peak held_bytes; copied = bytes memcpy'd out of the caller's buffers;\n"
           "# memcpy = all engine memcpy bytes; moved = held bytes later seen at another\n"
           "# address (a second copy); nbls = pieces in the final classify (in engine memory:\n"
           "# eng bytes); out eng = returned bytes that point into engine memory; allocs =\n"
           "# engine allocations; us/cycle CPU median [min..max]; ns/B = us per indicated byte;\n"
           "# extra = ns/B over the \"permit\" row\n");
    printf("%-6s %8s %5s %6s %8s %8s %5s %8s %5s %5s %8s %8s %6s %24s %7s %6s %6s\n", "mode",
           "required", "ind", "cls", "held", "copied", "c/h", "memcpy", "moved", "nbls",
           "eng B", "out eng", "allocs", "us/cycle", "wall", "ns/B", "extra");
    struct hold_row base;
    measure_hold(o, 0, false, &base);
    for (int pass = 0; pass <= (int)o->nholds * 2; pass++) {
        struct hold_row h;
        if (pass == 0)
            h = base;
        else if (!(o->hold_modes & (1 << ((pass - 1) % 2))))
            continue;
        else
            measure_hold(o, o->holds[(pass - 1) / 2], (pass - 1) % 2, &h);
        char us[64];
        snprintf(us, sizeof(us), "%.2f [%.2f..%.2f]", h.us.median, h.us.min, h.us.max);
        char ratio[16];
        if (h.held_peak)
            snprintf(ratio, sizeof(ratio), "%.2f", (double)h.copied / h.held_peak);
        else
            snprintf(ratio, sizeof(ratio), "-");
        printf("%-6s %8" PRIu32 " %5" PRIu32 " %6" PRIu64 " %8" PRIu64 " %8" PRIu64
               " %5s %8" PRIu64 " %5" PRIu64 " %5" PRIu64 " %8" PRIu64 " %8" PRIu64
               " %6" PRIu64 " %24s %7.2f %6.3f %6.3f\n",
               h.mode, h.required, h.ind_per_cycle, h.classifies, h.held_peak, h.copied, ratio,
               h.memcpy_bytes, h.moved, h.final_nbls, h.final_engine_bytes, h.out_engine,
               h.allocs, us, h.wall_us, h.ns_per_byte, h.ns_per_byte - base.ns_per_byte);
        fflush(stdout);
        unseen |= h.held_peak && !h.copied;
    }
    if (unseen)
        printf("# note: held bytes were kept without a memcpy the wrapper saw: a sanitizer\n"
               "# build (memcpy becomes __asan_memcpy) or a copy by other means\n");
}

/* ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    size_t max = o.segment;
    for (uint32_t i = 0; i < o.nsizes; i++)
        max = o.sizes[i] > max ? o.sizes[i] : max;
    arena_init(o.seed, max);
    b_print_machine();
    printf("# bench_stream: seed %" PRIu64 ", %" PRIu32 " runs, at most %" PRIu32
           " indications per run (budget %" PRIu32 " ms), %d buffers; struct owfp_item %zu B,"
           " owfp_desc %zu B\n",
           o.seed, o.runs, o.indications, o.budget_ms, NBUF, sizeof(struct owfp_item),
           sizeof(struct owfp_desc));
    fflush(stdout);
    struct b_clock start = b_clock_now();

    struct row rows[2 * MAX_LIST * MAX_LIST];
    uint32_t nrows = 0;
    bool none_done = false;
    for (int mode = 0; mode < 2 && (o.parts & 1); mode++) {
        if (!(o.modes & (1 << mode)))
            continue;
        for (uint32_t s = 0; s < o.nstacks; s++) {
            uint32_t k = o.stacks[s];
            if (!k && none_done)
                continue;
            none_done |= !k;
            measure_stack(&o, mode, k, &rows[nrows]);
            nrows += o.nsizes;
        }
    }
    if (o.parts & 1) {
        print_rows(rows, nrows);
        print_slopes(rows, nrows, o.nsizes);
        fflush(stdout);
    }
    if (o.parts & 2) {
        probe(&o);
        fflush(stdout);
    }
    if (o.parts & 4)
        hold_table(&o);

    struct b_clock total = b_clock_since(start);
    printf("\n# total: wall %.1f s, CPU %.1f s; load average now %.2f\n", (double)total.wall / 1e9,
           (double)total.cpu / 1e9, b_loadavg());
    free(arena);
    return 0;
}
