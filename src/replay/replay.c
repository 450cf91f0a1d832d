/* The replay loop (replay.h): capture -> decode -> tracker -> engine -> outputs. */
#include "replay/replay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#include <openwfp/kernel.h>

#include "replay/capture.h"
#include "replay/decode.h"
#include "replay/progress.h"
#include "replay/replay_conn.h"
#include "replay/report.h"
#include "replay/tape.h"
#include "replay/tracker.h"

#define EXPIRE_EVERY 4096 /* packets between timeout scans */
/* A fuzz tape is a program, not a recording: what it may hold is bounded
 * here rather than by a disk. */
#define TAPE_MAX (16u << 20)
/* How long one work item a tape runs may take before the replay goes on. */
#define TAPE_WORK_MS 5000u
#define AHEAD_LAST 3        /* the last step of a hint: the flow's stages */

/* One step of a hint (see struct owfp_ahead): the connection's lines, then
 * its flow's state three levels deep, unless the engine does not look at
 * the connection's bytes (no flow, blocked, offloaded), which ends it. */
static void ahead_step(struct owfp_replay *r, struct owfp_ahead *a)
{
    if (a->step > AHEAD_LAST)
        return;
    unsigned step = a->step++;
    if (step == 0)
        owfp_tracker_hint_fetch(r->tracker, &a->h);
    else if (!owfp_replay_hint_flow(r, &a->h, step - 1))
        a->step = AHEAD_LAST + 1;
}

/* Looking ahead costs a few hundred instructions a packet and pays when
 * the engine inspects most packets' bytes (its flow, stream and stages
 * are then fetched early); a connection's table slot and lines alone are
 * not worth it. So it runs for the next EXPIRE_EVERY packets if at least
 * a quarter of the last ones went to the stream layer. */
static void decide_look_ahead(struct owfp_replay *r)
{
    bool on = r->indicated * 4 >= EXPIRE_EVERY;
    if (on && !r->looking_ahead)
        r->nahead = 0; /* hints left from before are stale */
    r->looking_ahead = on;
    r->indicated = 0;
}

/* Before the record at `off` is replayed: its hint is done with, the others
 * go a step further, and new ones are made for the records after them
 * (each record is looked at once; a run of frames that are not TCP is
 * skipped a few at a time). */
static void look_ahead(struct owfp_replay *r, struct owfp_capture *cap, int dlt, uint64_t off)
{
    while (r->nahead && r->ahead[r->first].off <= off) {
        r->first = (r->first + 1) % OWFP_LOOKAHEAD;
        r->nahead--;
    }
    for (unsigned i = 0; i < r->nahead; i++)
        ahead_step(r, &r->ahead[(r->first + i) % OWFP_LOOKAHEAD]);
    for (unsigned looked = 0; r->nahead < OWFP_LOOKAHEAD && looked < 2 * OWFP_LOOKAHEAD;
         looked++) {
        struct owfp_ahead *a = &r->ahead[(r->first + r->nahead) % OWFP_LOOKAHEAD];
        const uint8_t *frame;
        uint32_t caplen;
        struct owfp_pkt p;
        if (!owfp_capture_peek(cap, &r->ahead_cursor, &a->off, &frame, &caplen))
            break;
        if (owfp_decode_peek(dlt, frame, caplen, &p)) {
            a->step = 0;
            owfp_tracker_hint(r->tracker, &p, &a->h);
            r->nahead++;
        }
    }
}

static int replay_file(struct owfp_replay *r, const char *name)
{
    char err[PCAP_ERRBUF_SIZE] = "";
    struct owfp_capture *cap = owfp_capture_open(name, true, err, sizeof(err));
    if (!cap) {
        fprintf(stderr, "openwfp replay: %s: %s\n", name, err);
        return 1;
    }
    int dlt = owfp_capture_dlt(cap);
    if (!owfp_decode_link_supported(dlt)) {
        fprintf(stderr, "openwfp replay: %s: link type %s (%d) is not supported\n", name,
                pcap_datalink_val_to_name(dlt) ? pcap_datalink_val_to_name(dlt) : "?", dlt);
        owfp_capture_close(cap);
        return 1;
    }
    owfp_progress_file(&r->progress, name);
    struct owfp_capture_rec rec;
    int ret, status = 0;
    r->first = r->nahead = 0;
    r->ahead_cursor = 0;
    for (;;) {
        /* Only a mapped file can be looked into ahead of reading. */
        bool ahead = r->looking_ahead && owfp_capture_is_mapped(cap);
        long long off = ahead ? owfp_capture_pos(cap) : -1;
        if ((ret = owfp_capture_next(cap, &rec)) != 1)
            break;
        if (off >= 0)
            look_ahead(r, cap, dlt, (uint64_t)off);
        owfp_replay_frame(r, dlt, rec.data, rec.caplen, rec.len, rec.ts_us);
        if (++r->packets % EXPIRE_EVERY == 0) {
            owfp_tracker_expire(r->tracker, rec.ts_us);
            owfp_progress_update(&r->progress, r->packets, owfp_capture_pos(cap));
            decide_look_ahead(r);
        }
    }
    if (ret < 0) {
        fprintf(stderr, "openwfp replay: %s: %s (after %llu packets)\n", name,
                owfp_capture_error(cap), (unsigned long long)r->packets);
        status = 1;
    }
    owfp_capture_close(cap);
    return status;
}

/* A tape's frames run as a capture's would, with a timeout scan after
 * each: tapes are short and their clock jumps. */
static void tape_frame(void *arg, const uint8_t *frame, uint32_t len, uint64_t ts_us)
{
    struct owfp_replay *r = arg;
    owfp_replay_frame(r, OWFP_TAPE_DLT, frame, len, len, ts_us);
    r->packets++;
    owfp_tracker_expire(r->tracker, ts_us);
}

static void tape_work(void *arg, int pick)
{
    struct owfp_replay *r = arg;
    if (pick < 0) {
        owfp_replay_settle(r);
        return;
    }
    owfp_workitems_run_one((unsigned)pick, TAPE_WORK_MS);
    owfp_replay_poll(r);
}

int owfp_replay_tape(struct owfp_replay *r, const uint8_t *tape, size_t len)
{
    struct owfp_tape_sink sink = {tape_frame, tape_work, r, r->tapes, r->tape_clock_us};
    r->in_tape = true;
    int failed = owfp_tape_play(tape, len, &sink);
    r->in_tape = false;
    if (failed) {
        fprintf(stderr, "openwfp replay: out of memory\n");
        return 1;
    }
    r->tapes++;
    r->tape_clock_us = sink.clock_us;
    return 0;
}

static int replay_tape_file(struct owfp_replay *r, const char *name)
{
    FILE *f = strcmp(name, "-") == 0 ? stdin : fopen(name, "rb");
    uint8_t *buf = malloc(TAPE_MAX + 1);
    size_t n = f && buf ? fread(buf, 1, TAPE_MAX + 1, f) : 0;
    int status = 1;
    if (!f || !buf || ferror(f))
        fprintf(stderr, "openwfp replay: %s: %s\n", name, buf ? strerror(errno) : "out of memory");
    else if (n > TAPE_MAX)
        fprintf(stderr, "openwfp replay: %s: a fuzz input is at most %u bytes\n", name, TAPE_MAX);
    else
        status = owfp_replay_tape(r, buf, n);
    if (f && f != stdin)
        fclose(f);
    free(buf);
    return status;
}

int owfp_replay_run(const struct owfp_replay_options *opt)
{
    struct owfp_replay *r = owfp_replay_new(opt);
    if (!r)
        return 2;
    /* A tape says when the drivers' work items run: they wait for it. */
    if (opt->tapes)
        owfp_workitems_set_scheduled(true);
    int status = 0;
    for (size_t i = 0; i < opt->ncaptures; i++)
        if ((opt->tapes ? replay_tape_file : replay_file)(r, opt->captures[i]))
            status = 1;
    int fst = owfp_replay_finish(r);
    if (opt->tapes)
        owfp_workitems_set_scheduled(false);
    return fst ? fst : status;
}

int owfp_net_parse(const char *text, struct owfp_net *net)
{
    char buf[64];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    if (alen == 0 || alen >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, text, alen);
    buf[alen] = 0;
    memset(net, 0, sizeof(*net));
    if (inet_pton(AF_INET, buf, net->addr) == 1)
        net->ip_version = 4;
    else if (inet_pton(AF_INET6, buf, net->addr) == 1)
        net->ip_version = 6;
    else
        return -EINVAL;
    unsigned max = net->ip_version == 4 ? 32 : 128;
    unsigned long prefix = max;
    if (slash) {
        char *end;
        prefix = strtoul(slash + 1, &end, 10);
        if (end == slash + 1 || *end || prefix > max)
            return -EINVAL;
    }
    net->prefix = (uint8_t)prefix;
    return 0;
}
