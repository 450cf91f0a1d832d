/*
 * bench_flow_memory: bytes the engine keeps per open flow, with no flow
 * context, with one, and with two (default 100,000 and 1,000,000 flows).
 *
 * One CALLOUT_INSPECTION filter per callout at ALE_FLOW_ESTABLISHED_V4, no
 * conditions; the callouts associate a context on every flow (or not, for
 * the "0 contexts" rows). The context value is the flow id, so the callout
 * allocates nothing: the numbers are the engine's own cost. A real callout's
 * context structure comes on top.
 *
 * Measured as deltas around opening N flows (the array of flow pointers is
 * allocated before the first snapshot):
 *   heap  mallinfo2() uordblks + hblkhd: bytes handed out by malloc,
 *         chunk headers and padding included
 *   rss   resident set from /proc/self/statm
 * then all flows are closed (each flowDeleteFn runs), retired memory is
 * reclaimed, and what stays allocated is reported as "kept".
 *
 * The flow table (slot segments, 8 bytes per slot, and the free-slot list,
 * 4 bytes per slot) is filled before the snapshots and reported apart as
 * "table bytes/slot": the engine (src/engine/flow.c, owfp_flow_new) only
 * grows its free-slot list when the list is full, so closing more than 1024
 * flows that were open at the same time writes past the list's end (heap
 * buffer overflow). Warming the table with rounds of 1024, 2048, .. flows,
 * each closed before the next, grows the list to cover every slot and keeps
 * the measurement clear of that bug. malloc_trim(0) then returns the freed
 * pages, so the RSS delta of the measured flows is a delta of fresh pages.
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "common/rcu.h"
#include "engine/flow.h"

#define MAX_COUNTS 8
#define MAX_RUNS 101

struct opts {
    uint64_t seed;
    uint32_t runs;
    uint32_t counts[MAX_COUNTS], ncounts;
};

static void usage(FILE *to)
{
    fprintf(to, "usage: bench_flow_memory [options]\n"
                "  --counts LIST   numbers of flows held open at once (default 100000,1000000)\n"
                "  --runs N        repetitions of each row (default 3)\n"
                "  --seed N        random seed for the flow endpoints (default 1)\n"
                "  --help          this text\n"
                "Prints bytes per open flow (heap from mallinfo2, RSS from /proc/self/statm)\n"
                "with 0, 1 and 2 flow contexts per flow, the heap bytes per flow still\n"
                "allocated after every flow was closed (kept), the flow table's bytes per\n"
                "slot (allocated before the measurement, see the source), and the CPU ns per\n"
                "open and per close.\n");
}

static void parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.seed = 1, .runs = 3, .counts = {100000, 1000000}, .ncounts = 2};
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
            o->ncounts = b_parse_list(a, v, o->counts, MAX_COUNTS, 1, UINT32_MAX), i++;
        } else {
            fprintf(stderr, "bench_flow_memory: unknown option %s\n", a);
            usage(stderr);
            exit(2);
        }
    }
    if (!o->runs || o->runs > MAX_RUNS || !o->ncounts) {
        fprintf(stderr, "bench_flow_memory: runs must be 1..%d\n", MAX_RUNS);
        exit(2);
    }
}

/* ---- the callouts: associate the flow id as context ------------------ */

static const GUID ctx_callout_key[2] = {
    {0xb3c1c000, 0x6e7c, 0x4b1a, {0x9a, 0x1e, 0, 0, 0, 0, 0, 1}},
    {0xb3c1c000, 0x6e7c, 0x4b1a, {0x9a, 0x1e, 0, 0, 0, 0, 0, 2}},
};
static UINT32 ctx_callout_id[2];
static int g_associate; /* contexts per flow wanted: 0, 1 or 2 */
static uint64_t g_assoc_failed, g_deleted;

static void NTAPI ctx_classify(const FWPS_INCOMING_VALUES0 *in,
                               const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layer_data,
                               const FWPS_FILTER0 *filter, UINT64 flow_context,
                               FWPS_CLASSIFY_OUT0 *out)
{
    (void)layer_data, (void)flow_context;
    out->actionType = FWP_ACTION_CONTINUE;
    /* Filter i (by its raw context) is served by callout i. */
    int which = (int)filter->context;
    if (which >= g_associate)
        return;
    if (FwpsFlowAssociateContext0(meta->flowHandle, in->layerId, ctx_callout_id[which],
                                  meta->flowHandle) != STATUS_SUCCESS)
        g_assoc_failed++;
}

static void NTAPI ctx_flow_delete(UINT16 layer, UINT32 callout, UINT64 context)
{
    (void)layer, (void)callout, (void)context;
    g_deleted++;
}

static NTSTATUS NTAPI ctx_notify(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                                 FWPS_FILTER0 *filter)
{
    (void)type, (void)key, (void)filter;
    return STATUS_SUCCESS;
}

static WCHAR bench_name[] = {'b', 'e', 'n', 'c', 'h', 0};

static void setup(owfp_engine **engine, HANDLE *session)
{
    b_check("owfp_engine_create", owfp_engine_create(NULL, engine));
    b_check("FwpmEngineOpen0", FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, session));
    for (int i = 0; i < 2; i++) {
        FWPS_CALLOUT0 c;
        memset(&c, 0, sizeof(c));
        c.calloutKey = ctx_callout_key[i];
        c.classifyFn = ctx_classify;
        c.notifyFn = ctx_notify;
        c.flowDeleteFn = ctx_flow_delete;
        b_check("FwpsCalloutRegister0", FwpsCalloutRegister0(NULL, &c, &ctx_callout_id[i]));
        FWPM_CALLOUT0 mc;
        memset(&mc, 0, sizeof(mc));
        mc.calloutKey = ctx_callout_key[i];
        mc.displayData.name = bench_name;
        mc.applicableLayer = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
        b_check("FwpmCalloutAdd0", FwpmCalloutAdd0(*session, &mc, NULL, NULL));
        FWPM_FILTER0 f;
        memset(&f, 0, sizeof(f));
        f.displayData.name = bench_name;
        f.layerKey = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
        f.action.type = FWP_ACTION_CALLOUT_INSPECTION;
        f.action.calloutKey = ctx_callout_key[i];
        f.rawContext = (UINT64)i;
        b_check("FwpmFilterAdd0", FwpmFilterAdd0(*session, &f, NULL, NULL));
    }
}

static void teardown(owfp_engine *engine, HANDLE session)
{
    FwpmEngineClose0(session);
    for (int i = 0; i < 2; i++)
        FwpsCalloutUnregisterById0(ctx_callout_id[i]);
    owfp_engine_destroy(engine);
}

/* ---- measurement ----------------------------------------------------- */

struct sample {
    double heap, rss, kept; /* bytes per flow */
    double table;           /* bytes per flow-table slot */
    double open_ns, close_ns;
};

/* Grows the flow table to at least n slots with every slot free (see the
 * comment at the top); returns the number of slots. flows[] holds 2n. */
static uint32_t warm_table(owfp_engine *engine, uint32_t n, owfp_flow **flows)
{
    struct b_rng r = {12345};
    struct owfp_flow_params p;
    b_gen_flow(&r, &p);
    int saved = g_associate;
    g_associate = 0;
    uint32_t s = 1024;
    for (;; s *= 2) {
        for (uint32_t i = 0; i < s; i++) {
            enum owfp_flow_verdict v;
            b_check("owfp_flow_open", owfp_flow_open(engine, &p, &flows[i], &v));
        }
        for (uint32_t i = 0; i < s; i++)
            owfp_flow_close(flows[i]);
        if (s >= n)
            break;
    }
    g_associate = saved;
    return s;
}

static struct sample run_once(const struct opts *o, uint32_t n, int contexts, owfp_flow **flows)
{
    owfp_engine *engine;
    HANDLE session;
    setup(&engine, &session);
    g_associate = contexts;
    g_assoc_failed = g_deleted = 0;
    struct b_rng r = {o->seed};
    struct owfp_flow_params p;

    owfp_rcu_reclaim(true);
    uint64_t heapw = b_heap_bytes();
    uint32_t slots = warm_table(engine, n, flows);
    owfp_rcu_reclaim(true);
    double table = ((double)b_heap_bytes() - (double)heapw) / slots;
    malloc_trim(0);
    uint64_t heap0 = b_heap_bytes(), rss0 = b_rss_bytes();
    struct b_clock t0 = b_clock_now();
    for (uint32_t i = 0; i < n; i++) {
        enum owfp_flow_verdict v;
        b_gen_flow(&r, &p);
        b_check("owfp_flow_open", owfp_flow_open(engine, &p, &flows[i], &v));
    }
    struct b_clock opening = b_clock_since(t0);
    uint64_t heap1 = b_heap_bytes(), rss1 = b_rss_bytes();
    struct owfp_engine_stats st;
    owfp_engine_get_stats(engine, &st);
    if (st.flows_open != n || st.flow_contexts != (uint64_t)n * contexts || g_assoc_failed) {
        fprintf(stderr,
                "bench_flow_memory: expected %" PRIu32 " flows / %" PRIu64
                " contexts, engine has %" PRIu64 " / %" PRIu64 " (%" PRIu64 " failed)\n",
                n, (uint64_t)n * contexts, st.flows_open, st.flow_contexts, g_assoc_failed);
        exit(1);
    }
    t0 = b_clock_now();
    for (uint32_t i = 0; i < n; i++)
        owfp_flow_close(flows[i]);
    struct b_clock closing = b_clock_since(t0);
    owfp_rcu_reclaim(true);
    uint64_t heap2 = b_heap_bytes();
    if (g_deleted != (uint64_t)n * contexts) {
        fprintf(stderr, "bench_flow_memory: %" PRIu64 " flowDeleteFn calls, expected %" PRIu64 "\n",
                g_deleted, (uint64_t)n * contexts);
        exit(1);
    }
    teardown(engine, session);
    return (struct sample){
        .heap = ((double)heap1 - (double)heap0) / n,
        .rss = ((double)rss1 - (double)rss0) / n,
        .kept = ((double)heap2 - (double)heap0) / n,
        .table = table,
        .open_ns = (double)opening.cpu / n,
        .close_ns = (double)closing.cpu / n,
    };
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    b_print_machine();
    printf("# bench_flow_memory: seed %" PRIu64 ", %" PRIu32
           " runs per row; struct owfp_flow %zu bytes, struct owfp_flow_ctx %zu bytes\n",
           o.seed, o.runs, sizeof(struct owfp_flow), sizeof(struct owfp_flow_ctx));
    printf("# bytes per open flow (median [min..max] over the runs for heap); rss and\n"
           "# kept: medians; open/close: CPU ns per call, medians\n");
    printf("%9s %8s %24s %8s %8s %11s %8s %8s\n", "flows", "contexts", "heap bytes/flow", "rss",
           "kept", "table/slot", "open_ns", "close_ns");
    fflush(stdout);
    uint32_t max = 0;
    for (uint32_t i = 0; i < o.ncounts; i++)
        max = o.counts[i] > max ? o.counts[i] : max;
    owfp_flow **flows = malloc(sizeof(*flows) * 2 * (size_t)max);
    if (!flows) {
        fprintf(stderr, "bench_flow_memory: out of memory\n");
        return 1;
    }
    memset(flows, 0, sizeof(*flows) * 2 * (size_t)max); /* touched before the snapshots */
    struct b_clock start = b_clock_now();
    for (uint32_t c = 0; c < o.ncounts; c++) {
        for (int contexts = 0; contexts <= 2; contexts++) {
            double heap[MAX_RUNS], rss[MAX_RUNS], kept[MAX_RUNS], on[MAX_RUNS], cn[MAX_RUNS];
            double table[MAX_RUNS];
            for (uint32_t run = 0; run < o.runs; run++) {
                struct sample s = run_once(&o, o.counts[c], contexts, flows);
                heap[run] = s.heap;
                rss[run] = s.rss;
                kept[run] = s.kept;
                table[run] = s.table;
                on[run] = s.open_ns;
                cn[run] = s.close_ns;
            }
            struct b_stats h = b_summarise(heap, o.runs);
            char hb[64];
            snprintf(hb, sizeof(hb), "%.1f [%.1f..%.1f]", h.median, h.min, h.max);
            printf("%9" PRIu32 " %8d %24s %8.1f %8.2f %11.1f %8.0f %8.0f\n", o.counts[c], contexts,
                   hb, b_summarise(rss, o.runs).median, b_summarise(kept, o.runs).median,
                   b_summarise(table, o.runs).median, b_summarise(on, o.runs).median,
                   b_summarise(cn, o.runs).median);
            fflush(stdout);
        }
    }
    struct b_clock total = b_clock_since(start);
    printf("# total: wall %.1f s, CPU %.1f s; load average now %.2f\n", (double)total.wall / 1e9,
           (double)total.cpu / 1e9, b_loadavg());
    free(flows);
    return 0;
}
