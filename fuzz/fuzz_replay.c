/*
 * Fuzz target: the whole replay pipeline, as `openwfp replay` runs it:
 * capture file -> libpcap -> decoder -> tracker -> reassembly -> engine
 * (ALE and stream layers, with stream callouts) -> report.
 *
 * Input (a tape: bytes read as 0 once it is exhausted):
 *   c0: bit7 raw: the rest of the input after c3 is a whole capture file
 *       (pcap or pcapng, header included), so libpcap's own parser is
 *       fuzzed with ours; else frame records (fuzz_frames.h) that this
 *       target writes into a pcap file image in memory;
 *       bits0-3 link type of that image (fuzz_links[], modulo its size);
 *       bits4-6 callouts (modulo 5): 0 a no-op stream INSPECTION callout
 *       (FWP_ACTION_CONTINUE, like `--example noop`); 1 the same, also
 *       associating a flow context on its first classify of each flow;
 *       2 a TERMINATING callout answering from a hash of the data: permit,
 *       block, permit part (countBytesEnforced), NEED_MORE_DATA,
 *       DROP_CONNECTION, ALLOW_CONNECTION (registered ALLOW_OFFLOAD), with
 *       contexts; 3 the no-op callout plus an ALE_FLOW_ESTABLISHED filter
 *       blocking remote port 80; 4 no callout at all;
 *   c1: bit0 overlap LAST; bit1 --local 10.0.0.2/32 and 2001:db8::2/128
 *       (the responder of the generated seeds is then SEND's side);
 *       bits2-3 max_buffered (default, 64, 1 KiB, 16 KiB); bits4-5
 *       max_buffered_total (default, 256, 4 KiB, 64 KiB); bits6-7
 *       max_conns (unlimited, 1, 2, 4);
 *   c2: bit0 JSON reports; bit1 quiet; bit2 --write-pcap /dev/null (the
 *       edited capture is built and written, then thrown away);
 *   c3: flow timeout, c3 * 10 ms (0 = the default).
 * Frame records as in fuzz_frames.h, at most MAX_FRAMES; per-frame flag
 * bit0: run the tracker's timeout scan after the frame (the replay also
 * runs it every EXPIRE_EVERY frames, as replay.c does every 4096).
 *
 * The reports go to /dev/null. Checked after every frame: the engine has
 * at most as many flows open as the tracker has live connections, and as
 * many flow contexts as the callout associated and has not seen deleted.
 * Checked in the callout: flowContext is 0 or one of ours, the stream data
 * is readable (copied out). Once every connection ended: the bytes and
 * holes the connections' reassembly delivered are those the replay handed
 * on (seen, gap_bytes, gaps), no engine call failed, nothing was deferred,
 * injected or refused, permitted <= seen, and with a callout that decides
 * nothing (or none) every byte of a replay without a blocked or reset
 * connection was permitted. At the end (owfp_replay_finish): it answers 0,
 * the engine has no flow open and no flow context left, every context got
 * exactly one flowDeleteFn; no crash, UB or leak (ASan, UBSan, LSan).
 *
 * FUZZ_TRACE=1 in the environment sends the reports to stderr.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>

#include <fwpmk.h>
#include <fwpsk.h>
#include <openwfp/openwfp.h>

#include "fuzz_frames.h"
#include "fuzz_util.h"
#include "replay/replay_conn.h"
#include "replay/tracker.h"

#define MAX_FRAMES 256
#define EXPIRE_EVERY 16
#define CTX_MAGIC 0x6f776670637478ull
#define TS_START (1600000000ull * 1000000u) /* a plausible capture clock */
#define PCAP_SNAPLEN 262144u

enum mode { M_NOOP, M_CONTEXTS, M_ANSWERS, M_BLOCK_PORT, M_NONE, M_COUNT };

struct ctx {
    uint64_t magic;
    unsigned deletes;
};

static WCHAR fuzz_name[] = {'f', 'u', 'z', 'z', 0};

static struct {
    struct tape t;
    owfp_engine *engine;
    HANDLE session;
    UINT32 ids[2];
    int nids;
    enum mode mode;
    uint64_t associated, deleted;
    int dlt;       /* the capture's link type, -1 before one was read */
    bool write_pcap;
    uint8_t *copy; /* where the callout copies stream data */
    size_t copy_cap;
} g;

static FILE *devnull(void)
{
    /* One stream for every input: the replay flushes it, never closes it. */
    static FILE *f;
    if (!f)
        f = fopen("/dev/null", "w");
    CHECK(f != NULL);
    return f;
}

/* ---- callouts ----------------------------------------------------------------- */

static void NTAPI flow_delete(UINT16 layerId, UINT32 calloutId, UINT64 flowContext)
{
    (void)layerId;
    (void)calloutId;
    struct ctx *c = (struct ctx *)(uintptr_t)flowContext;
    CHECK(c != NULL && c->magic == CTX_MAGIC);
    CHECK(c->deletes == 0); /* F7: exactly once */
    c->deletes++;
    g.deleted++;
    c->magic = 0;
    free(c); /* a second delete would be a use after free */
}

static void associate(const FWPS_INCOMING_VALUES0 *in, const FWPS_INCOMING_METADATA_VALUES0 *meta,
                      const FWPS_FILTER0 *filter)
{
    struct ctx *c = calloc(1, sizeof(*c));
    CHECK(c != NULL);
    c->magic = CTX_MAGIC;
    NTSTATUS st = FwpsFlowAssociateContext0(meta->flowHandle, in->layerId,
                                            filter->action.calloutId, (UINT64)(uintptr_t)c);
    CHECK_EQ_STATUS(st, STATUS_SUCCESS);
    g.associated++;
}

/* Reads every byte the callout is shown (ASan checks the engine's spans). */
static uint32_t look(const FWPS_STREAM_DATA0 *sd)
{
    if (sd->dataLength == 0)
        return 0;
    if (sd->dataLength > g.copy_cap) {
        free(g.copy);
        g.copy = malloc(sd->dataLength);
        CHECK(g.copy != NULL);
        g.copy_cap = sd->dataLength;
    }
    SIZE_T copied = 0;
    FwpsCopyStreamDataToBuffer0(sd, g.copy, sd->dataLength, &copied);
    CHECK(copied == sd->dataLength);
    uint32_t h = (uint32_t)sd->dataLength * 2654435761u;
    for (SIZE_T i = 0; i < copied; i++)
        h = (h ^ g.copy[i]) * 16777619u;
    return h;
}

/* M_ANSWERS: a verdict that depends on the data, so the fuzzer steers it. */
static void answer(uint32_t h, FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out)
{
    SIZE_T len = io->streamData->dataLength;
    out->actionType = FWP_ACTION_PERMIT;
    switch (h % 11) {
    case 0:
        out->actionType = FWP_ACTION_BLOCK;
        break;
    case 1:
        io->countBytesEnforced = len / 2;
        break;
    case 2:
        if (!(out->flags & FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA) && len) {
            io->streamAction = FWPS_STREAM_ACTION_NEED_MORE_DATA;
            io->countBytesRequired = (UINT32)(len + 1 + (h >> 8) % 64);
            out->actionType = FWP_ACTION_NONE;
        }
        break;
    case 3:
        if (h & 0x100) {
            io->streamAction = FWPS_STREAM_ACTION_DROP_CONNECTION;
            out->actionType = FWP_ACTION_NONE;
        }
        break;
    case 4:
        if (h & 0x100) {
            io->streamAction = FWPS_STREAM_ACTION_ALLOW_CONNECTION;
            out->actionType = FWP_ACTION_NONE;
        }
        break;
    default:
        break;
    }
}

static void NTAPI classify(const FWPS_INCOMING_VALUES0 *in,
                           const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                           const FWPS_FILTER0 *filter, UINT64 flowContext,
                           FWPS_CLASSIFY_OUT0 *out)
{
    FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layerData;
    CHECK(io != NULL && io->streamData != NULL);
    if (flowContext) {
        const struct ctx *c = (const struct ctx *)(uintptr_t)flowContext;
        CHECK(c->magic == CTX_MAGIC && c->deletes == 0); /* F5 */
    } else if (g.mode == M_CONTEXTS || g.mode == M_ANSWERS) {
        associate(in, meta, filter);
    }
    uint32_t h = look(io->streamData);
    if (g.mode == M_ANSWERS && (out->rights & FWPS_RIGHT_ACTION_WRITE))
        answer(h, io, out);
    else
        out->actionType = FWP_ACTION_CONTINUE;
}

static NTSTATUS NTAPI notify(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key, FWPS_FILTER0 *filter)
{
    (void)type;
    (void)key;
    (void)filter;
    return STATUS_SUCCESS;
}

/* ---- engine set-up --------------------------------------------------------------- */

static void add_filter(const GUID *layer, UINT32 action, const GUID *callout, bool port80)
{
    FWPM_FILTER_CONDITION0 cond;
    memset(&cond, 0, sizeof(cond));
    cond.fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    cond.matchType = FWP_MATCH_EQUAL;
    cond.conditionValue.type = FWP_UINT16;
    cond.conditionValue.uint16 = 80;
    FWPM_FILTER0 f;
    memset(&f, 0, sizeof(f));
    f.displayData.name = fuzz_name;
    f.layerKey = *layer;
    f.subLayerKey = fuzz_guid(0x100);
    f.action.type = action;
    if (callout)
        f.action.calloutKey = *callout;
    if (port80) {
        f.numFilterConditions = 1;
        f.filterCondition = &cond;
    }
    CHECK_EQ_STATUS(FwpmFilterAdd0(g.session, &f, NULL, NULL), STATUS_SUCCESS);
}

static void add_callout(int i, const GUID *layer)
{
    GUID key = fuzz_guid(0x200 + (uint32_t)i);
    FWPS_CALLOUT0 c = {key, g.mode == M_ANSWERS ? FWP_CALLOUT_FLAG_ALLOW_OFFLOAD : 0, classify,
                       notify, flow_delete};
    CHECK_EQ_STATUS(FwpsCalloutRegister0(NULL, &c, &g.ids[i]), STATUS_SUCCESS);
    g.nids = i + 1;
    FWPM_CALLOUT0 mc;
    memset(&mc, 0, sizeof(mc));
    mc.calloutKey = key;
    mc.displayData.name = fuzz_name;
    mc.applicableLayer = *layer;
    CHECK_EQ_STATUS(FwpmCalloutAdd0(g.session, &mc, NULL, NULL), STATUS_SUCCESS);
    add_filter(layer,
               g.mode == M_ANSWERS ? FWP_ACTION_CALLOUT_TERMINATING : FWP_ACTION_CALLOUT_INSPECTION,
               &key, false);
}

static void engine_up(void)
{
    CHECK_EQ_STATUS(owfp_engine_create(NULL, &g.engine), STATUS_SUCCESS);
    CHECK_EQ_STATUS(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &g.session),
                    STATUS_SUCCESS);
    FWPM_SUBLAYER0 sl;
    memset(&sl, 0, sizeof(sl));
    sl.subLayerKey = fuzz_guid(0x100);
    sl.displayData.name = fuzz_name;
    sl.weight = 0x100;
    CHECK_EQ_STATUS(FwpmSubLayerAdd0(g.session, &sl, NULL), STATUS_SUCCESS);
    if (g.mode != M_NONE) {
        add_callout(0, &FWPM_LAYER_STREAM_V4);
        add_callout(1, &FWPM_LAYER_STREAM_V6);
    }
    if (g.mode == M_BLOCK_PORT) {
        add_filter(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, FWP_ACTION_BLOCK, NULL, true);
        add_filter(&FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6, FWP_ACTION_BLOCK, NULL, true);
    }
}

static void engine_down(void)
{
    struct owfp_engine_stats st;
    owfp_engine_get_stats(g.engine, &st);
    CHECK(st.flows_open == 0);
    CHECK(st.flow_contexts == 0);
    CHECK(g.deleted == g.associated);
    CHECK_EQ_STATUS(FwpmEngineClose0(g.session), STATUS_SUCCESS);
    for (int i = 0; i < g.nids; i++)
        CHECK_EQ_STATUS(FwpsCalloutUnregisterById0(g.ids[i]), STATUS_SUCCESS);
    owfp_engine_destroy(g.engine);
    free(g.copy);
}

/* ---- the capture ----------------------------------------------------------------- */

struct image {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct image *im, const void *p, size_t n)
{
    if (im->n + n > im->cap) {
        size_t cap = im->cap ? im->cap : 4096;
        while (cap < im->n + n)
            cap *= 2;
        uint8_t *q = realloc(im->p, cap);
        CHECK(q != NULL);
        im->p = q;
        im->cap = cap;
    }
    memcpy(im->p + im->n, p, n);
    im->n += n;
}

static void put32(struct image *im, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(im, b, 4);
}

/* A classic pcap file (little-endian, microseconds) of the input's frames;
 * `flags` gets each frame's per-frame flags. Returns the number of frames. */
static unsigned write_image(struct image *im, int link, uint8_t *flags)
{
    put32(im, 0xa1b2c3d4);
    put32(im, 2 | 4u << 16); /* version 2.4 */
    put32(im, 0);            /* thiszone */
    put32(im, 0);            /* sigfigs */
    put32(im, PCAP_SNAPLEN);
    put32(im, (uint32_t)link);
    uint64_t ts = TS_START;
    struct fuzz_frame f;
    unsigned n = 0;
    while (n < MAX_FRAMES && fuzz_frame_next(&g.t, &ts, &f)) {
        put32(im, (uint32_t)(f.ts_us / 1000000));
        put32(im, (uint32_t)(f.ts_us % 1000000));
        put32(im, f.caplen);
        put32(im, f.wirelen);
        put(im, f.data, f.caplen);
        free(f.data);
        flags[n++] = f.flags;
    }
    return n;
}

static void check_engine(const struct owfp_replay *r)
{
    struct owfp_engine_stats st;
    owfp_engine_get_stats(g.engine, &st);
    CHECK(st.flows_open <= owfp_tracker_stats(r->tracker)->live);
    CHECK(st.flow_contexts == g.associated - g.deleted);
}

static void replay_capture(struct owfp_replay *r, const uint8_t *bytes, size_t n,
                           const uint8_t *flags, unsigned nflags)
{
    if (n == 0)
        return;
    FILE *fp = fmemopen((void *)bytes, n, "rb");
    CHECK(fp != NULL);
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_fopen_offline(fp, err);
    if (!p) {
        fclose(fp);
        return; /* not a capture libpcap reads: the replay stops here too */
    }
    int dlt = g.dlt = pcap_datalink(p);
    struct pcap_pkthdr *h;
    const u_char *frame;
    unsigned i = 0;
    while (owfp_decode_link_supported(dlt) && i < 4 * MAX_FRAMES &&
           pcap_next_ex(p, &h, &frame) == 1) {
        uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000 + (uint64_t)h->ts.tv_usec;
        owfp_replay_frame(r, dlt, frame, h->caplen, h->len, ts);
        r->packets++;
        bool scan = ++i % EXPIRE_EVERY == 0 || (i <= nflags && (flags[i - 1] & 1));
        if (scan)
            owfp_tracker_expire(r->tracker, ts);
        check_engine(r);
    }
    pcap_close(p); /* closes fp */
}

/* The connections' totals, once every connection ended: the bytes the
 * tracker's reassembly delivered are the bytes the replay handed on, no
 * engine call failed, and a callout that decides nothing passes every byte
 * of a connection nothing blocked or reset. */
static void check_totals(const struct owfp_replay *r)
{
    const struct owfp_replay_totals *t = &r->totals;
    const struct owfp_rdir *d = t->d;
    CHECK(d[0].seen + d[1].seen == t->reasm.delivered);
    CHECK(d[0].gap_bytes + d[1].gap_bytes == t->reasm.gap_bytes);
    CHECK(d[0].gaps + d[1].gaps == t->reasm.gaps);
    CHECK(t->errors == 0);
    CHECK(t->deferred == 0);
    for (int i = 0; i < 2; i++) {
        CHECK(d[i].injected == 0);
        CHECK(d[i].permitted <= d[i].seen);
        CHECK(d[i].refused == 0);
    }
    bool passive = g.mode == M_NOOP || g.mode == M_CONTEXTS || g.mode == M_NONE;
    if (passive && t->blocked == 0 && t->dropped == 0)
        CHECK(d[0].permitted == d[0].seen && d[1].permitted == d[1].seen);
}

static struct owfp_replay *replay_new(uint8_t c1, uint8_t c2, uint8_t c3)
{
    static const struct owfp_net local[2] = {
        {4, {10, 0, 0, 2}, 32},
        {6, {0x20, 0x01, 0x0d, 0xb8, [15] = 2}, 128},
    };
    static const uint32_t bufs[4] = {0, 64, 1024, 16384};
    static const uint64_t totals[4] = {0, 256, 4096, 65536};
    static const uint64_t conns[4] = {0, 1, 2, 4};
    struct owfp_replay_options o;
    memset(&o, 0, sizeof(o));
    o.overlap = c1 & 1 ? OWFP_OVERLAP_LAST : OWFP_OVERLAP_FIRST;
    if (c1 & 2) {
        o.local_nets = local;
        o.nlocal_nets = 2;
    }
    o.max_buffered = bufs[(c1 >> 2) & 3];
    o.max_buffered_total = totals[(c1 >> 4) & 3];
    o.max_conns = conns[c1 >> 6];
    o.json = c2 & 1;
    o.quiet = (c2 & 2) != 0;
    o.write_pcap = c2 & 4 ? "/dev/null" : NULL;
    g.write_pcap = o.write_pcap != NULL;
    o.flow_timeout_us = (uint64_t)c3 * 10000;
    o.out = getenv("FUZZ_TRACE") ? stderr : devnull();
    struct owfp_replay *r = owfp_replay_new(&o);
    CHECK(r != NULL);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&g, 0, sizeof(g));
    g.t = (struct tape){data, size, 0};
    g.dlt = -1;
    uint8_t c0 = t8(&g.t), c1 = t8(&g.t), c2 = t8(&g.t), c3 = t8(&g.t);
    g.mode = (enum mode)(((c0 >> 4) & 7) % M_COUNT);
    engine_up();
    struct owfp_replay *r = replay_new(c1, c2, c3);
    if (c0 & 0x80) {
        if (size > g.t.i)
            replay_capture(r, data + g.t.i, size - g.t.i, NULL, 0);
    } else {
        static uint8_t flags[MAX_FRAMES];
        struct image im = {0};
        unsigned n = write_image(&im, fuzz_links[(c0 & 15) % FUZZ_NLINKS], flags);
        replay_capture(r, im.p, im.n, flags, n);
        free(im.p);
    }
    /* What owfp_replay_finish() does first (nothing is woken from other
     * threads here), so that the totals can be read before it frees them. */
    owfp_tracker_close_all(r->tracker);
    check_totals(r);
    int status = owfp_replay_finish(r);
    CHECK(status == 0);
    engine_down();
    return 0;
}
