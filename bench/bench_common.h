/*
 * Shared pieces of the openwfp benchmarks: a seeded random generator, a
 * monotonic clock, run statistics, and a generator of realistic
 * ALE_FLOW_ESTABLISHED_V4 filters and flows (see bench_common.c for the mix).
 */
#ifndef OPENWFP_BENCH_COMMON_H
#define OPENWFP_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <fwpmk.h>
#include <fwpsk.h>
#include <openwfp/openwfp.h>

/* ---------------------------------------------------------------- misc */

/* splitmix64: small, fast, and the same sequence on every machine. */
struct b_rng {
    uint64_t s;
};
uint64_t b_next(struct b_rng *r);
/* Uniform in [0, n). */
uint32_t b_below(struct b_rng *r, uint32_t n);

uint64_t b_now_ns(void);

/* Wall-clock and this thread's CPU time, in ns. The machine may be shared:
 * CPU time leaves out the time the thread waited for a CPU, wall time does
 * not; the benchmarks report both. */
struct b_clock {
    uint64_t wall, cpu;
};
struct b_clock b_clock_now(void);
/* Wall and CPU time from `since` to now, in ns. */
struct b_clock b_clock_since(struct b_clock since);

/* The 1-minute load average, for the reports. */
double b_loadavg(void);

/* Median, minimum and maximum of `n` samples (the array is sorted). */
struct b_stats {
    double median, min, max;
};
struct b_stats b_summarise(double *samples, size_t n);

/* Aborts with a message when `status` is not STATUS_SUCCESS. */
void b_check(const char *what, NTSTATUS status);

/* Parses an unsigned decimal option value or exits with a message. */
uint64_t b_parse_u64(const char *opt, const char *value);
/* Parses a comma-separated list of at most `max` values in [lo, hi] into
 * `out` and returns how many there were, or exits with a message. */
uint32_t b_parse_list(const char *opt, const char *value, uint32_t *out, uint32_t max,
                      uint64_t lo, uint64_t hi);

/* Bytes the C allocator has handed out (mallinfo2 uordblks + hblkhd) and
 * the resident set size (/proc/self/statm). */
uint64_t b_heap_bytes(void);
uint64_t b_rss_bytes(void);

/* A one-line description of the machine: CPU model, nproc, kernel. */
void b_print_machine(void);

/* ------------------------------------------------------ engine set-up */

#define B_SUBLAYERS 4 /* custom sublayers, plus FWPM_SUBLAYER_UNIVERSAL */

/* The trivial callouts the generated callout filters name. */
extern const GUID B_CALLOUT_INSPECT;   /* FWP_ACTION_CALLOUT_INSPECTION: answers CONTINUE */
extern const GUID B_CALLOUT_TERMINATE; /* FWP_ACTION_CALLOUT_TERMINATING: answers PERMIT */
extern volatile uint64_t b_callout_calls;

/* Creates the engine, registers the two trivial callouts, opens a session
 * and adds the sublayers and callout objects. */
struct b_env {
    owfp_engine *engine;
    HANDLE session;
    UINT32 callout_ids[2];
};
void b_env_up(struct b_env *env);
void b_env_down(struct b_env *env);

/* ---------------------------------------------------- filter generator */

enum b_mix {
    B_MIX_MIXED,     /* the default: 1% of filters have no selective indexable condition */
    B_MIX_INDEXABLE, /* every filter has a selective indexable condition */
};

/* One generated filter, ready for FwpmFilterAdd0 (pointers into itself:
 * do not copy the struct after b_gen_filter). */
struct b_filter {
    FWPM_FILTER0 f;
    FWPM_FILTER_CONDITION0 cond[4];
    FWP_V4_ADDR_AND_MASK mask[2];
    FWP_RANGE0 range[2];
    UINT64 weight;
    unsigned kind;
};

/* The kind names, for reports. */
#define B_KINDS 10
extern const char *const b_kind_name[B_KINDS];

/* Filter number `i` of a set: callout filters at i % callout_every < 2
 * (inspection at 0, terminating at 1; callout_every 0 = none), filter 0 with
 * no conditions; otherwise a static PERMIT/BLOCK/CONTINUE. */
void b_gen_filter(struct b_rng *r, enum b_mix mix, uint32_t i, uint32_t callout_every,
                  struct b_filter *out);

/* Adds `n` generated filters in the session's current transaction state;
 * ids (may be NULL) receive the filter ids. */
void b_add_filters(HANDLE session, struct b_rng *r, enum b_mix mix, uint32_t n,
                   uint32_t callout_every, UINT64 *ids);

/* A random IPv4 TCP/UDP endpoint: most do not match the generated filters,
 * some do (see bench_common.c). */
void b_gen_flow(struct b_rng *r, struct owfp_flow_params *p);

/* ------------------------------------------------------- stream set-up */

/* Stream callouts and filters for bench_stream and bench_stream_memory: n
 * callouts registered with one classifyFn, each named by one filter with no
 * conditions at FWPM_LAYER_STREAM_V4, in its own sublayer (weights 0xF000,
 * 0xEF00, ..., so callout 0 runs first). With FWP_ACTION_CALLOUT_TERMINATING
 * and b_stream_permit every callout still sees every byte: a PERMIT only
 * skips the rest of its own sublayer. */
#define B_STREAM_MAX 16

struct b_stream_env {
    owfp_engine *engine;
    HANDLE session;
    uint32_t n;
    UINT32 callout_ids[B_STREAM_MAX];
    UINT64 filter_ids[B_STREAM_MAX];
};
void b_stream_env_up(struct b_stream_env *env, uint32_t n, FWP_ACTION_TYPE action,
                     FWPS_CALLOUT_CLASSIFY_FN0 classify);
void b_stream_env_down(struct b_stream_env *env);

/* The no-op stream callouts: actionType = PERMIT (for TERMINATING filters)
 * or CONTINUE (for INSPECTION filters), and return. */
void NTAPI b_stream_permit(const FWPS_INCOMING_VALUES0 *in,
                           const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layer_data,
                           const FWPS_FILTER0 *filter, UINT64 flow_context,
                           FWPS_CLASSIFY_OUT0 *out);
void NTAPI b_stream_continue(const FWPS_INCOMING_VALUES0 *in,
                             const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layer_data,
                             const FWPS_FILTER0 *filter, UINT64 flow_context,
                             FWPS_CLASSIFY_OUT0 *out);

/* An outbound IPv4 TCP endpoint (192.168.x.y:49152.. -> 10.x.y.z:443). */
void b_stream_flow(struct b_rng *r, struct owfp_flow_params *p);

#endif
