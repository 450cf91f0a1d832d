/*
 * Shared benchmark code. The filter mix (per 100 filters; all in
 * ALE_FLOW_ESTABLISHED_V4, spread evenly over 4 custom sublayers and
 * FWPM_SUBLAYER_UNIVERSAL):
 *
 *   kind        share  conditions
 *   rport         15   remote port EQUAL (uniform 1..65535), half with protocol EQUAL
 *   lport          8   local port EQUAL (uniform) + protocol EQUAL TCP
 *   raddr/32      25   remote address 10.x.y.z/32, 30% with remote port EQUAL
 *   raddr/24      12   remote address 10.x.y.0/24 + remote port RANGE (2..16 wide)
 *   raddr/16       6   remote address 10.x.0.0/16 + remote port EQUAL
 *   raddr/8        2   remote address N.0.0.0/8 (N in 11..126) + local port EQUAL
 *   narrow         6   remote port RANGE (2..16 wide) + protocol EQUAL
 *   laddr+flags    8   local address 192.168.x.0/24 + local port EQUAL + FLAGS NONE_SET LOOPBACK
 *   wide          17   remote port RANGE (1000..25000 wide) + remote address 10.x.y.0/24
 *   wide-only      1   remote port RANGE (1000..25000 wide) + protocol EQUAL
 *                      + FLAGS ALL_SET LOOPBACK
 *
 * Values are drawn from spaces large enough that, even at 100,000 filters,
 * a flow matches few filters (a 16-bit port value is shared by about
 * 100,000 * 0.15 / 65536 = 0.23 "rport" filters).
 * "wide-only" filters have no selective condition an index could use (a wide
 * range, a protocol, flags): in the "indexable" mix they become "wide".
 * Actions: 40% PERMIT, 30% BLOCK, 30% CONTINUE; weights: half automatic
 * (FWP_EMPTY), half FWP_UINT8 0..15. Two of every `callout_every` filters
 * are callout filters (one inspection, one terminating) with the same kind
 * of conditions, except filter 0: an inspection callout filter with no
 * conditions, as a monitoring driver adds, so every classify calls the
 * trivial callout once.
 *
 * Flows: 80% TCP / 20% UDP, 70% outbound; remote address in 10.0.0.0/8 for
 * 25% of flows, otherwise uniform over 1.0.0.0..223.255.255.255; local
 * address uniform in 192.168.0.0/16; service ports from a list of 10
 * well-known ports 60% of the time, otherwise uniform; 3% loopback.
 */
#include "bench_common.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- misc */

uint64_t b_next(struct b_rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

uint32_t b_below(struct b_rng *r, uint32_t n)
{
    return (uint32_t)(((b_next(r) >> 32) * (uint64_t)n) >> 32);
}

uint64_t b_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct b_clock b_clock_now(void)
{
    struct timespec cpu;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    return (struct b_clock){b_now_ns(), (uint64_t)cpu.tv_sec * 1000000000u + (uint64_t)cpu.tv_nsec};
}

struct b_clock b_clock_since(struct b_clock since)
{
    struct b_clock now = b_clock_now();
    return (struct b_clock){now.wall - since.wall, now.cpu - since.cpu};
}

double b_loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct b_stats b_summarise(double *samples, size_t n)
{
    struct b_stats s = {0, 0, 0};
    if (!n)
        return s;
    qsort(samples, n, sizeof(*samples), cmp_double);
    s.min = samples[0];
    s.max = samples[n - 1];
    s.median = n % 2 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
    return s;
}

void b_check(const char *what, NTSTATUS status)
{
    if (status != STATUS_SUCCESS) {
        fprintf(stderr, "bench: %s failed: 0x%08" PRIx32 "\n", what, (uint32_t)status);
        exit(1);
    }
}

uint64_t b_parse_u64(const char *opt, const char *value)
{
    char *end;
    if (!value || !*value) {
        fprintf(stderr, "bench: %s needs a value\n", opt);
        exit(2);
    }
    unsigned long long v = strtoull(value, &end, 10);
    if (*end) {
        fprintf(stderr, "bench: %s: not a number: %s\n", opt, value);
        exit(2);
    }
    return v;
}

uint32_t b_parse_list(const char *opt, const char *value, uint32_t *out, uint32_t max,
                      uint64_t lo, uint64_t hi)
{
    if (!value || !*value) {
        fprintf(stderr, "bench: %s needs a value\n", opt);
        exit(2);
    }
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", value);
    uint32_t n = 0;
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        uint64_t v = b_parse_u64(opt, t);
        if (n == max || v < lo || v > hi) {
            fprintf(stderr, "bench: %s takes at most %" PRIu32 " values in %" PRIu64 "..%" PRIu64 "\n",
                    opt, max, lo, hi);
            exit(2);
        }
        out[n++] = (uint32_t)v;
    }
    return n;
}

uint64_t b_heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

uint64_t b_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

void b_print_machine(void)
{
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            if (!strncmp(line, "model name", 10)) {
                char *colon = strchr(line, ':');
                if (colon) {
                    colon++;
                    while (*colon == ' ' || *colon == '\t')
                        colon++;
                    snprintf(model, sizeof(model), "%s", colon);
                    model[strcspn(model, "\n")] = 0;
                }
                break;
            }
        }
        fclose(f);
    }
    struct utsname u;
    if (uname(&u) != 0)
        snprintf(u.release, sizeof(u.release), "unknown");
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    printf("# machine: %s, nproc %ld, kernel %s; %s; load average %.2f\n", model,
           sysconf(_SC_NPROCESSORS_ONLN), u.release, date, b_loadavg());
}

/* ------------------------------------------------------ engine set-up */

const GUID B_CALLOUT_INSPECT = {0xb3c10001, 0x6e7c, 0x4b1a, {0x9a, 0x1e, 0, 0, 0, 0, 0, 1}};
const GUID B_CALLOUT_TERMINATE = {0xb3c10001, 0x6e7c, 0x4b1a, {0x9a, 0x1e, 0, 0, 0, 0, 0, 2}};
static const GUID sublayer_key_base = {0xb3c1a000, 0x6e7c, 0x4b1a, {0x9a, 0x1e, 0, 0, 0, 0, 0, 0}};
static const UINT16 sublayer_weight[B_SUBLAYERS] = {0xF000, 0xC000, 0x4000, 0x1000};
volatile uint64_t b_callout_calls;

static WCHAR bench_name[] = {'b', 'e', 'n', 'c', 'h', 0};

static GUID sublayer_key(unsigned i)
{
    GUID g = sublayer_key_base;
    g.Data4[7] = (UINT8)(i + 1);
    return g;
}

static void NTAPI inspect_classify(const FWPS_INCOMING_VALUES0 *in,
                                   const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layer_data,
                                   const FWPS_FILTER0 *filter, UINT64 flow_context,
                                   FWPS_CLASSIFY_OUT0 *out)
{
    (void)in, (void)meta, (void)layer_data, (void)filter, (void)flow_context;
    b_callout_calls = b_callout_calls + 1;
    out->actionType = FWP_ACTION_CONTINUE;
}

static void NTAPI terminate_classify(const FWPS_INCOMING_VALUES0 *in,
                                     const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layer_data,
                                     const FWPS_FILTER0 *filter, UINT64 flow_context,
                                     FWPS_CLASSIFY_OUT0 *out)
{
    (void)in, (void)meta, (void)layer_data, (void)filter, (void)flow_context;
    b_callout_calls = b_callout_calls + 1;
    out->actionType = FWP_ACTION_PERMIT;
}

static NTSTATUS NTAPI notify_ok(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,
                                FWPS_FILTER0 *filter)
{
    (void)type, (void)key, (void)filter;
    return STATUS_SUCCESS;
}

void b_env_up(struct b_env *env)
{
    memset(env, 0, sizeof(*env));
    b_check("owfp_engine_create", owfp_engine_create(NULL, &env->engine));
    const GUID *keys[2] = {&B_CALLOUT_INSPECT, &B_CALLOUT_TERMINATE};
    FWPS_CALLOUT_CLASSIFY_FN0 fns[2] = {inspect_classify, terminate_classify};
    for (int i = 0; i < 2; i++) {
        FWPS_CALLOUT0 c;
        memset(&c, 0, sizeof(c));
        c.calloutKey = *keys[i];
        c.classifyFn = fns[i];
        c.notifyFn = notify_ok;
        b_check("FwpsCalloutRegister0", FwpsCalloutRegister0(NULL, &c, &env->callout_ids[i]));
    }
    b_check("FwpmEngineOpen0", FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &env->session));
    for (unsigned i = 0; i < B_SUBLAYERS; i++) {
        FWPM_SUBLAYER0 sl;
        memset(&sl, 0, sizeof(sl));
        sl.subLayerKey = sublayer_key(i);
        sl.displayData.name = bench_name;
        sl.weight = sublayer_weight[i];
        b_check("FwpmSubLayerAdd0", FwpmSubLayerAdd0(env->session, &sl, NULL));
    }
    for (int i = 0; i < 2; i++) {
        FWPM_CALLOUT0 c;
        memset(&c, 0, sizeof(c));
        c.calloutKey = *keys[i];
        c.displayData.name = bench_name;
        c.applicableLayer = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
        b_check("FwpmCalloutAdd0", FwpmCalloutAdd0(env->session, &c, NULL, NULL));
    }
}

void b_env_down(struct b_env *env)
{
    FwpmEngineClose0(env->session);
    FwpsCalloutUnregisterById0(env->callout_ids[0]);
    FwpsCalloutUnregisterById0(env->callout_ids[1]);
    owfp_engine_destroy(env->engine);
    memset(env, 0, sizeof(*env));
}

/* ---------------------------------------------------- filter generator */

enum {
    K_RPORT,
    K_LPORT,
    K_RADDR32,
    K_RADDR24,
    K_RADDR16,
    K_RADDR8,
    K_NARROW,
    K_LADDR_FLAGS,
    K_WIDE,
    K_WIDE_ONLY,
};

const char *const b_kind_name[B_KINDS] = {
    "rport",   "lport",  "raddr/32",    "raddr/24", "raddr/16",
    "raddr/8", "narrow", "laddr+flags", "wide",     "wide-only",
};

/* Cumulative shares in percent, in enum order. */
static const unsigned kind_cum[B_KINDS] = {15, 23, 48, 60, 66, 68, 74, 82, 99, 100};

static const UINT16 well_known[] = {80, 443, 53, 22, 25, 123, 3389, 8080, 993, 5353};
#define N_WELL_KNOWN (sizeof(well_known) / sizeof(well_known[0]))

static FWPM_FILTER_CONDITION0 *next_cond(struct b_filter *b)
{
    FWPM_FILTER_CONDITION0 *c = &b->cond[b->f.numFilterConditions++];
    memset(c, 0, sizeof(*c));
    c->matchType = FWP_MATCH_EQUAL;
    return c;
}

static void cond_u16(struct b_filter *b, const GUID *field, UINT16 v)
{
    FWPM_FILTER_CONDITION0 *c = next_cond(b);
    c->fieldKey = *field;
    c->conditionValue.type = FWP_UINT16;
    c->conditionValue.uint16 = v;
}

static void cond_protocol(struct b_filter *b, UINT8 proto)
{
    FWPM_FILTER_CONDITION0 *c = next_cond(b);
    c->fieldKey = FWPM_CONDITION_IP_PROTOCOL;
    c->conditionValue.type = FWP_UINT8;
    c->conditionValue.uint8 = proto;
}

static void cond_addr(struct b_filter *b, const GUID *field, UINT32 addr, unsigned plen)
{
    FWP_V4_ADDR_AND_MASK *m = &b->mask[b->f.numFilterConditions & 1];
    m->mask = plen ? UINT32_MAX << (32 - plen) : 0;
    m->addr = addr & m->mask;
    FWPM_FILTER_CONDITION0 *c = next_cond(b);
    c->fieldKey = *field;
    c->conditionValue.type = FWP_V4_ADDR_MASK;
    c->conditionValue.v4AddrMask = m;
}

static void cond_port_range(struct b_filter *b, const GUID *field, UINT16 lo, UINT16 hi)
{
    FWP_RANGE0 *r = &b->range[b->f.numFilterConditions & 1];
    memset(r, 0, sizeof(*r));
    r->valueLow.type = FWP_UINT16;
    r->valueLow.uint16 = lo;
    r->valueHigh.type = FWP_UINT16;
    r->valueHigh.uint16 = hi;
    FWPM_FILTER_CONDITION0 *c = next_cond(b);
    c->fieldKey = *field;
    c->matchType = FWP_MATCH_RANGE;
    c->conditionValue.type = FWP_RANGE_TYPE;
    c->conditionValue.rangeValue = r;
}

static void cond_flags(struct b_filter *b, FWP_MATCH_TYPE match)
{
    FWPM_FILTER_CONDITION0 *c = next_cond(b);
    c->fieldKey = FWPM_CONDITION_FLAGS;
    c->matchType = match;
    c->conditionValue.type = FWP_UINT32;
    c->conditionValue.uint32 = FWP_CONDITION_FLAG_IS_LOOPBACK;
}

static UINT16 any_port(struct b_rng *r)
{
    return (UINT16)(1 + b_below(r, 65535));
}

static UINT32 ten_net(struct b_rng *r)
{
    return (UINT32)10 << 24 | b_below(r, 1u << 24);
}

static void narrow_range(struct b_rng *r, struct b_filter *b)
{
    UINT16 width = (UINT16)(2 + b_below(r, 15));
    UINT16 lo = (UINT16)(1 + b_below(r, 65535u - width));
    cond_port_range(b, &FWPM_CONDITION_IP_REMOTE_PORT, lo, (UINT16)(lo + width - 1));
}

static UINT8 tcp_or_udp(struct b_rng *r)
{
    return b_below(r, 2) ? 6 : 17;
}

void b_gen_filter(struct b_rng *r, enum b_mix mix, uint32_t i, uint32_t callout_every,
                  struct b_filter *b)
{
    memset(b, 0, sizeof(*b));
    b->f.displayData.name = bench_name;
    b->f.layerKey = FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
    unsigned sl = b_below(r, B_SUBLAYERS + 1);
    if (sl < B_SUBLAYERS)
        b->f.subLayerKey = sublayer_key(sl); /* else zero: FWPM_SUBLAYER_UNIVERSAL */
    if (b_below(r, 2)) {
        b->f.weight.type = FWP_UINT8;
        b->f.weight.uint8 = (UINT8)b_below(r, 16);
    }
    uint32_t pick = b_below(r, 100);
    if (callout_every && i % callout_every < 2) {
        b->f.action.type =
            i % callout_every == 0 ? FWP_ACTION_CALLOUT_INSPECTION : FWP_ACTION_CALLOUT_TERMINATING;
        b->f.action.calloutKey = i % callout_every == 0 ? B_CALLOUT_INSPECT : B_CALLOUT_TERMINATE;
    } else {
        b->f.action.type = pick < 40   ? FWP_ACTION_PERMIT
                           : pick < 70 ? FWP_ACTION_BLOCK
                                       : FWP_ACTION_CONTINUE;
    }
    b->f.filterCondition = b->cond;
    if (callout_every && i == 0)
        return; /* the catch-all inspection filter */

    unsigned k = 0, p = b_below(r, 100);
    while (p >= kind_cum[k])
        k++;
    if (k == K_WIDE_ONLY && mix == B_MIX_INDEXABLE)
        k = K_WIDE;
    b->kind = k;
    switch (k) {
    case K_RPORT:
        cond_u16(b, &FWPM_CONDITION_IP_REMOTE_PORT, any_port(r));
        if (b_below(r, 2))
            cond_protocol(b, tcp_or_udp(r));
        break;
    case K_LPORT:
        cond_u16(b, &FWPM_CONDITION_IP_LOCAL_PORT, any_port(r));
        cond_protocol(b, 6);
        break;
    case K_RADDR32:
        cond_addr(b, &FWPM_CONDITION_IP_REMOTE_ADDRESS, ten_net(r), 32);
        if (b_below(r, 10) < 3)
            cond_u16(b, &FWPM_CONDITION_IP_REMOTE_PORT, any_port(r));
        break;
    case K_RADDR24:
        cond_addr(b, &FWPM_CONDITION_IP_REMOTE_ADDRESS, ten_net(r), 24);
        narrow_range(r, b);
        break;
    case K_RADDR16:
        cond_addr(b, &FWPM_CONDITION_IP_REMOTE_ADDRESS, ten_net(r), 16);
        cond_u16(b, &FWPM_CONDITION_IP_REMOTE_PORT, any_port(r));
        break;
    case K_RADDR8:
        cond_addr(b, &FWPM_CONDITION_IP_REMOTE_ADDRESS, (UINT32)(11 + b_below(r, 116)) << 24, 8);
        cond_u16(b, &FWPM_CONDITION_IP_LOCAL_PORT, any_port(r));
        break;
    case K_NARROW:
        narrow_range(r, b);
        cond_protocol(b, tcp_or_udp(r));
        break;
    case K_LADDR_FLAGS:
        cond_addr(b, &FWPM_CONDITION_IP_LOCAL_ADDRESS, 0xC0A80000u | b_below(r, 65536), 24);
        cond_u16(b, &FWPM_CONDITION_IP_LOCAL_PORT, any_port(r));
        cond_flags(b, FWP_MATCH_FLAGS_NONE_SET);
        break;
    case K_WIDE: {
        UINT16 width = (UINT16)(1000 + b_below(r, 24001));
        UINT16 lo = (UINT16)(1024 + b_below(r, 39000));
        cond_port_range(b, &FWPM_CONDITION_IP_REMOTE_PORT, lo, (UINT16)(lo + width));
        cond_addr(b, &FWPM_CONDITION_IP_REMOTE_ADDRESS, ten_net(r), 24);
        break;
    }
    default: { /* K_WIDE_ONLY */
        UINT16 width = (UINT16)(1000 + b_below(r, 24001));
        UINT16 lo = (UINT16)(1024 + b_below(r, 39000));
        cond_port_range(b, &FWPM_CONDITION_IP_REMOTE_PORT, lo, (UINT16)(lo + width));
        cond_protocol(b, tcp_or_udp(r));
        cond_flags(b, FWP_MATCH_FLAGS_ALL_SET);
        break;
    }
    }
}

void b_add_filters(HANDLE session, struct b_rng *r, enum b_mix mix, uint32_t n,
                   uint32_t callout_every, UINT64 *ids)
{
    struct b_filter b;
    for (uint32_t i = 0; i < n; i++) {
        UINT64 id;
        b_gen_filter(r, mix, i, callout_every, &b);
        b_check("FwpmFilterAdd0", FwpmFilterAdd0(session, &b.f, NULL, &id));
        if (ids)
            ids[i] = id;
    }
}

void b_gen_flow(struct b_rng *r, struct owfp_flow_params *p)
{
    memset(p, 0, sizeof(*p));
    p->ip_version = 4;
    p->protocol = b_below(r, 10) < 8 ? 6 : 17;
    p->direction = b_below(r, 10) < 7 ? OWFP_OUTBOUND : OWFP_INBOUND;
    UINT32 remote;
    if (b_below(r, 4) == 0)
        remote = ten_net(r);
    else
        remote = (UINT32)(1 + b_below(r, 223)) << 24 | b_below(r, 1u << 24);
    UINT32 local = 0xC0A80000u | b_below(r, 65536);
    for (int i = 0; i < 4; i++) {
        p->remote_addr[i] = (uint8_t)(remote >> (24 - 8 * i));
        p->local_addr[i] = (uint8_t)(local >> (24 - 8 * i));
    }
    UINT16 service = b_below(r, 10) < 6 ? well_known[b_below(r, N_WELL_KNOWN)] : any_port(r);
    UINT16 ephemeral = (UINT16)(49152 + b_below(r, 16384));
    if (p->direction == OWFP_OUTBOUND) {
        p->remote_port = service;
        p->local_port = ephemeral;
    } else {
        p->local_port = service;
        p->remote_port = (UINT16)(1024 + b_below(r, 64512));
    }
    p->condition_flags = b_below(r, 100) < 3 ? FWP_CONDITION_FLAG_IS_LOOPBACK : 0;
    p->interface_type = 6;
    p->compartment_id = 1;
}

/* ------------------------------------------------------- stream set-up */

static const GUID stream_callout_base = {0xb3c15000, 0x6e7c, 0x4b1a, {0x9a, 0x1e, 0, 0, 0, 0, 0, 0}};
static const GUID stream_sublayer_base = {0xb3c15100, 0x6e7c, 0x4b1a, {0x9a, 0x1e, 0, 0, 0, 0, 0, 0}};

static GUID numbered(GUID g, unsigned i)
{
    g.Data4[7] = (UINT8)(i + 1);
    return g;
}

void NTAPI b_stream_permit(const FWPS_INCOMING_VALUES0 *in,
                           const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layer_data,
                           const FWPS_FILTER0 *filter, UINT64 flow_context,
                           FWPS_CLASSIFY_OUT0 *out)
{
    (void)in, (void)meta, (void)layer_data, (void)filter, (void)flow_context;
    out->actionType = FWP_ACTION_PERMIT;
}

void NTAPI b_stream_continue(const FWPS_INCOMING_VALUES0 *in,
                             const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layer_data,
                             const FWPS_FILTER0 *filter, UINT64 flow_context,
                             FWPS_CLASSIFY_OUT0 *out)
{
    (void)in, (void)meta, (void)layer_data, (void)filter, (void)flow_context;
    out->actionType = FWP_ACTION_CONTINUE;
}

void b_stream_env_up(struct b_stream_env *env, uint32_t n, FWP_ACTION_TYPE action,
                     FWPS_CALLOUT_CLASSIFY_FN0 classify)
{
    memset(env, 0, sizeof(*env));
    if (n > B_STREAM_MAX) {
        fprintf(stderr, "bench: at most %d stream callouts\n", B_STREAM_MAX);
        exit(2);
    }
    env->n = n;
    b_check("owfp_engine_create", owfp_engine_create(NULL, &env->engine));
    b_check("FwpmEngineOpen0", FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &env->session));
    for (uint32_t i = 0; i < n; i++) {
        FWPS_CALLOUT0 c;
        memset(&c, 0, sizeof(c));
        c.calloutKey = numbered(stream_callout_base, i);
        c.classifyFn = classify;
        c.notifyFn = notify_ok;
        b_check("FwpsCalloutRegister0", FwpsCalloutRegister0(NULL, &c, &env->callout_ids[i]));

        FWPM_SUBLAYER0 sl;
        memset(&sl, 0, sizeof(sl));
        sl.subLayerKey = numbered(stream_sublayer_base, i);
        sl.displayData.name = bench_name;
        sl.weight = (UINT16)(0xF000 - 0x100 * i);
        b_check("FwpmSubLayerAdd0", FwpmSubLayerAdd0(env->session, &sl, NULL));

        FWPM_CALLOUT0 mc;
        memset(&mc, 0, sizeof(mc));
        mc.calloutKey = c.calloutKey;
        mc.displayData.name = bench_name;
        mc.applicableLayer = FWPM_LAYER_STREAM_V4;
        b_check("FwpmCalloutAdd0", FwpmCalloutAdd0(env->session, &mc, NULL, NULL));

        FWPM_FILTER0 f;
        memset(&f, 0, sizeof(f));
        f.displayData.name = bench_name;
        f.layerKey = FWPM_LAYER_STREAM_V4;
        f.subLayerKey = sl.subLayerKey;
        f.action.type = action;
        f.action.calloutKey = c.calloutKey;
        b_check("FwpmFilterAdd0", FwpmFilterAdd0(env->session, &f, NULL, &env->filter_ids[i]));
    }
}

void b_stream_env_down(struct b_stream_env *env)
{
    FwpmEngineClose0(env->session);
    for (uint32_t i = 0; i < env->n; i++)
        FwpsCalloutUnregisterById0(env->callout_ids[i]);
    owfp_engine_destroy(env->engine);
    memset(env, 0, sizeof(*env));
}

void b_stream_flow(struct b_rng *r, struct owfp_flow_params *p)
{
    memset(p, 0, sizeof(*p));
    p->ip_version = 4;
    p->protocol = 6;
    p->direction = OWFP_OUTBOUND;
    UINT32 remote = ten_net(r);
    UINT32 local = 0xC0A80000u | b_below(r, 65536);
    for (int i = 0; i < 4; i++) {
        p->remote_addr[i] = (uint8_t)(remote >> (24 - 8 * i));
        p->local_addr[i] = (uint8_t)(local >> (24 - 8 * i));
    }
    p->remote_port = 443;
    p->local_port = (UINT16)(49152 + b_below(r, 16384));
    p->interface_type = 6;
    p->compartment_id = 1;
}
